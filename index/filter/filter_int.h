/* SPDX-License-Identifier: MIT */
/*
 * filter_int.h -- the filter module's internals, shared by the attribute
 * index (attr_index.c), the compiler (filter_compile.c) and the evaluators
 * (filter_eval.c).
 *
 * Attribute index layout (per field, found through a hash map of names):
 *
 *   exists         bitmap of the rows having the field
 *   strs, sorted   each distinct string value (string fields and string-array
 *                  elements) is an svalue {string, bitmap of rows}, in a hash
 *                  map (eq, in) and in byte order in sorted blocks (ranges)
 *   btrue, bfalse  rows holding true / false (NULL until first needed)
 *   num            the (value, row) pairs of number values in (value, row)
 *                  order, cut into blocks of <= NB_MAX pairs; each block has
 *                  the bitmap of its rows (a row has one number per field)
 *
 * Both block lists keep blocks non-empty and ordered: every entry of block i
 * sorts before every entry of block i + 1, so a binary search over the last
 * entries finds a block and a second one the position inside it.
 */
#ifndef QUARRY_FILTER_INT_H
#define QUARRY_FILTER_INT_H

#include <math.h>
#include <stdint.h>

#include "common/qcommon.h"
#include "filter.h"

/* Pairs per numeric block, and string values per sorted block (overridable
 * at build time for measurements). */
#ifndef NB_MAX
#define NB_MAX 2048
#endif
#ifndef SB_MAX
#define SB_MAX 256
#endif

/* ------------------------------------------------------------ hash map */

/* The first member of every hashed entry; s points into the entry. */
typedef struct hent {
    uint64_t hash;
    uint32_t len;
    const char *s;
} hent;

typedef struct htab {
    hent **slot; /* cap slots, NULL = free; cap is 0 or a power of two */
    size_t cap, n;
} htab;

uint64_t filter_hash(const char *s, size_t len);
/* Byte-wise order of (a, al) and (b, bl): <0, 0, >0. */
int filter_strcmp(const char *a, size_t al, const char *b, size_t bl);

/* ------------------------------------------------------- index structures */

typedef struct svalue {
    hent h;
    roaring_bitmap_t *bm;
    char s[];
} svalue;

typedef struct sblock {
    uint32_t n, cap;
    svalue **v;
} sblock;

typedef struct sdict {
    sblock *b;
    size_t nb, cap;
} sdict;

typedef struct nblock {
    uint32_t n, cap;
    double *v;
    uint32_t *r;
    roaring_bitmap_t *bm;
} nblock;

/* Rows per page of the row -> value column. */
#define NPAGE_BITS 12
#define NPAGE      (1u << NPAGE_BITS)

typedef struct numidx {
    nblock *b;
    size_t nb, cap;
    size_t count;           /* pairs */
    roaring_bitmap_t *rows; /* rows having a number (NULL until the first) */
    /* The same values by row, for probing a few candidate rows: pages of
     * NPAGE doubles allocated on first use, NaN where a row has no number
     * (stored numbers are always finite), freed when their count drops to 0. */
    double **pages;
    uint32_t *page_count;
    size_t npages;
} numidx;

/* Row r's number in x, or NaN. */
static inline double num_value(const numidx *x, uint32_t r) {
    size_t p = r >> NPAGE_BITS;
    return p < x->npages && x->pages[p] ? x->pages[p][r & (NPAGE - 1)] : NAN;
}

typedef struct afield {
    hent h;
    roaring_bitmap_t *exists;
    roaring_bitmap_t *btrue, *bfalse;
    htab strs;
    sdict sorted;
    numidx num;
    char name[];
} afield;

struct attr_index {
    htab fields;
    roaring_bitmap_t *empty; /* never modified: what a missing field yields */
};

const afield *attr_field(const attr_index *ai, uint64_t hash, const char *name, size_t len);
const svalue *afield_str(const afield *f, uint64_t hash, const char *s, size_t len);

/* Bulk construction, for the decoder (attr_serde.c). A new field named
 * name[0..len) (not present; empty exists bitmap), or NULL (out of memory). */
afield *attr_field_create(attr_index *ai, const char *name, size_t len);
/* Enter string value sv (not present; sv->bm set) into f's hash map and
 * sorted blocks. 0, or NOMEM with f unchanged (sv still the caller's). */
int attr_str_insert(afield *f, svalue *sv);
/* Append a block of n (1..NB_MAX) pairs, in order and all after x's last
 * pair, each row not in x yet: the block, its bitmap, x->rows, the values by
 * row, the count. 0, NOMEM or INVALID (bad n); the caller checks the order. */
int num_append_block(numidx *x, const double *v, const uint32_t *r, uint32_t n);

/* --------------------------------------------------------- union builder */

/* Collects bitmaps (borrowed) and loose rows whose union is wanted. */
typedef struct ubuild {
    const roaring_bitmap_t **bms;
    size_t nbms, capbms;
    uint32_t *rows;
    size_t nrows, caprows;
} ubuild;

int ub_bitmap(ubuild *u, const roaring_bitmap_t *bm);
int ub_rows(ubuild *u, const uint32_t *rows, size_t n);
/* The union as a new bitmap (NULL: out of memory). Leaves u intact. */
roaring_bitmap_t *ub_union(const ubuild *u);
void ub_free(ubuild *u);

/*
 * Add to u the rows whose number lies within the bounds: lower bound lo
 * (inclusive when lo_incl) if has_lo, upper bound hi likewise. With
 * complement non-NULL, a range covering more than half the pairs adds the
 * rows outside it instead and sets *complement (the answer is then x->rows
 * minus the union). 0 or NOMEM.
 */
int num_range(const numidx *x, int has_lo, double lo, int lo_incl, int has_hi, double hi,
              int hi_incl, ubuild *u, int *complement);
/* How many pairs num_range would cover (O(log n + blocks covered)). */
size_t num_range_count(const numidx *x, int has_lo, double lo, int lo_incl, int has_hi, double hi,
                       int hi_incl);
/* The same over the sorted string values of a field. */
int str_range(const sdict *d, int has_lo, const char *lo, size_t lo_len, int lo_incl, int has_hi,
              const char *hi, size_t hi_len, int hi_incl, ubuild *u);

/* ------------------------------------------------------------ expressions */

enum { FN_AND = 1, FN_OR, FN_NOT, FN_IN, FN_RANGE, FN_EXISTS };

typedef struct fstr {
    const char *s; /* NUL-terminated copy */
    uint32_t len;
    uint64_t hash;
} fstr;

typedef struct fnode {
    int op;
    uint32_t nkids;
    struct fnode **kids; /* and, or: nkids; not: 1 */
    fstr field;          /* in, range, exists */
    /* in (eq is an in of one value): sorted, without duplicates */
    fstr *strs;
    uint32_t nstrs;
    double *nums;
    uint32_t nnums;
    uint8_t bools; /* bit 0: false, bit 1: true */
    /* range */
    uint8_t is_str, has_lo, lo_incl, has_hi, hi_incl;
    double nlo, nhi;
    fstr slo, shi;
} fnode;

struct filter_expr {
    fnode *root;
    void *arena; /* every allocation of the tree */
};

#endif
