/* SPDX-License-Identifier: MIT */
/*
 * text_int.h -- the BM25 index's internal layout, shared by bm25*.c (and by
 * tests and benchmarks that look inside).
 *
 * Per term:
 *   sealed blocks of BM25_BLOCK postings, bit-packed in `data`:
 *       u8 bits_delta, u8 bits_tf, 16*bits_delta bytes of (row - previous row
 *       - 1) and 16*bits_tf bytes of (tf - 1), 128 values each in the
 *       4-lane layout described in postings.c. The first delta of a block
 *       is taken from the previous block's last row (from -1 for block 0).
 *       `data` keeps BM25_PAD spare bytes after data_len.
 *   the tail: up to 127 postings not yet sealed, uncompressed (rows and
 *       tfs), so appends are O(1) and a block is packed once, when full.
 *   positions, one stream for the whole list (sealed blocks and tail): per
 *       posting, tf LEB128 varints: the first position, then the gaps (>= 1).
 *       A block records where its postings' positions start; positions are
 *       decoded only by phrase queries.
 *   impacts: per block (and for the tail) up to
 *       BM25_IMP (tf, dl) pairs such that every posting's (tf, dl) is
 *       dominated by one of them (tf <= tf_i and dl >= dl_i). Since the BM25
 *       term score increases with tf and decreases with dl for any k1, b and
 *       avgdl, max over the pairs of score(tf_i, dl_i) bounds the block at
 *       query time with the statistics of that moment (Lucene's "impacts").
 *       The exact Pareto frontier is kept while it fits; when it does not,
 *       two neighbours (tf_a, dl_a), (tf_b, dl_b) with tf_a < tf_b merge into
 *       (tf_b, dl_a), choosing the pair whose merge loosens the bound least
 *       at the current statistics.
 */
#ifndef QUARRY_TEXT_INT_H
#define QUARRY_TEXT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/qcommon.h"
#include "text.h"

#define BM25_IMP             4
#define BM25_PAD             8 /* spare bytes after bit-packed data */
#define BM25_BLOCK_MAX_BYTES (2 + 16 * 32 * 2)
#define BM25_END             UINT32_MAX

typedef struct bm25_impact {
    uint32_t tf, dl;
} bm25_impact;

typedef struct bm25_block {
    uint32_t last_row;
    uint32_t data_off;
    uint64_t pos_off;
    bm25_impact imp[BM25_IMP];
    uint8_t nimp;
} bm25_block;

typedef struct bm25_term {
    uint8_t *data; /* sealed blocks */
    uint8_t *pos;  /* positions (empty without positions) */
    bm25_block *blocks;
    uint32_t *tail; /* rows [0, cap_tail), tfs [cap_tail, 2 * cap_tail) */
    uint64_t pos_len, pos_cap;
    uint64_t tail_pos_off; /* where the tail's positions start */
    uint32_t data_len, data_cap;
    uint32_t nblocks, cap_blocks;
    uint32_t ntail, cap_tail;
    uint32_t df;      /* live rows */
    uint32_t str_off; /* in bm25.strs */
    uint8_t str_len;
    uint8_t ntail_imp;
    bm25_impact tail_imp[BM25_IMP];
} bm25_term;

struct bm25 {
    float k1, b;
    int positions;
    text_analyzer *an;

    /* dictionary */
    bm25_term *terms;
    uint32_t nterms, cap_terms;
    char *strs;
    size_t strs_len, strs_cap;
    struct bm25_slot {
        uint32_t hash, id1;    /* id1 = term id + 1; 0 = empty */
        uint32_t str_off, len; /* copies, so a probe touches no term */
    } * table;
    uint32_t table_mask;

    /* rows [0, nrows) */
    uint32_t nrows, cap_rows;
    uint32_t *dl;       /* terms in the row (0 = no text) */
    uint64_t *dead;     /* bitmap */
    uint64_t *fwd;      /* [nrows + 1]: row r's term ids are fwd_bytes[fwd[r], fwd[r+1]) */
    uint8_t *fwd_bytes; /* sorted term ids, LEB128 gaps (first id, then id - previous) */
    size_t fwd_len, fwd_cap;

    /* live statistics */
    uint64_t live, sum_dl, ndead, npost;
};

struct bm25_doc {
    char *bytes; /* term bytes */
    size_t nbytes, cap_bytes;
    struct bm25_tok {
        uint32_t off;
        uint32_t pos;
        uint8_t len;
    } * toks;
    size_t ntoks, cap_toks;
};

static inline uint32_t bm25_npost(const bm25_term *t) { return t->nblocks * BM25_BLOCK + t->ntail; }
static inline uint32_t *bm25_tail_tf(const bm25_term *t) { return t->tail + t->cap_tail; }
static inline int bm25_is_dead(const bm25 *x, uint32_t r) {
    return (int)((x->dead[r >> 6] >> (r & 63)) & 1);
}
static inline const char *bm25_term_str(const bm25 *x, const bm25_term *t) {
    return x->strs + t->str_off;
}

/* The per-term score factor tf / (tf + A + B*dl), A = k1 (1 - b),
 * B = k1 b / avgdl. Written once so that bounds and scores round alike. */
static inline float bm25_tf_factor(float tf, float dl, float A, float B) {
    return tf / (tf + (A + B * dl));
}
static inline float bm25_imp_bound(const bm25_impact *imp, unsigned n, float A, float B) {
    float m = 0;
    for (unsigned i = 0; i < n; i++) {
        float f = bm25_tf_factor((float)imp[i].tf, (float)imp[i].dl, A, B);
        if (f > m) m = f;
    }
    return m;
}

/* codecs (postings.c) */
unsigned bm25_bits(uint32_t max);
/* Pack 128 values of at most `bits` bits (0..32) into 16 * bits bytes
 * (the vertical layout of postings.c) and back. */
void bm25_pack(const uint32_t *v, unsigned bits, uint8_t *out);
void bm25_unpack(const uint8_t *in, unsigned bits, uint32_t *v);
static inline size_t bm25_varint_put(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}
static inline unsigned bm25_varint_len(uint64_t v) {
    unsigned n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
/* Bounded decode: 0 on a truncated or over-long (> 10 bytes, > 64 bits) varint. */
static inline size_t bm25_varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        uint64_t b = p[i];
        if (i == 9 && b > 1) return 0;
        x |= (b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}
/* Unchecked decode of a varint known to be well formed (index memory). */
static inline const uint8_t *bm25_varint_fast(const uint8_t *p, uint32_t *v) {
    uint32_t x = p[0] & 0x7f;
    unsigned s = 7;
    while (*p++ & 0x80) {
        x |= (uint32_t)(*p & 0x7f) << s;
        s += 7;
    }
    *v = x;
    return p;
}

/* Decode a packed block at p whose first row follows `prev`: 128 rows and,
 * if tfs != NULL, 128 tfs. */
void bm25_decode(const uint8_t *p, uint32_t prev, uint32_t *rows, uint32_t *tfs);
/* Decode sealed block bi of t: rows (n = 128) and, if tfs != NULL, tfs. */
void bm25_block_decode(const bm25_term *t, uint32_t bi, uint32_t *rows, uint32_t *tfs);
void bm25_block_decode_tf(const bm25_term *t, uint32_t bi, uint32_t *tfs);
/* Bytes of sealed block bi. */
size_t bm25_block_bytes(const bm25_term *t, uint32_t bi);

/* Impact frontier maintenance (bm25.c). */
void bm25_imp_add(bm25_impact *s, uint8_t *n, uint32_t tf, uint32_t dl, float A, float B);

/* Dictionary (bm25.c): term id or -1. */
int64_t bm25_lookup(const bm25 *x, const char *s, size_t n);
/* Find or create a term (1 <= n <= TEXT_MAX_TERM); 0, QUARRY_NOMEM or QUARRY_FULL. */
int bm25_intern(bm25 *x, const char *s, size_t n, uint32_t *id);
/* Current A, B for the impact merge heuristic (avgdl of the moment). */
void bm25_ab(const bm25 *x, float *A, float *B);

#endif
