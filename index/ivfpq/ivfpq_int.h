/* SPDX-License-Identifier: MIT */
/*
 * ivfpq_int.h -- the IVF-PQ index's private structure, shared by ivfpq.c
 * (training, encoding, lists), kmeans.c, ivfpq_search.c and ivfpq_serde.c.
 *
 *  - cent: nlist * dim floats, the coarse centroids.
 *  - books: the m codebooks back to back; sub-quantiser j's 256 centroids of
 *    dsub(j) floats start at books + 256 * sub_off[j].
 *  - precomp (L2 only, NULL when too large or for IP): nlist * m * 256 floats,
 *    precomp[(l*m + j)*256 + c] = ||b_jc||^2 + 2 <c_l[j], b_jc>.
 *  - lists[l]: ids[n] and codes in groups of IVFPQ_GROUP rows (see ivfpq.h).
 */
#ifndef QUARRY_IVFPQ_INT_H
#define QUARRY_IVFPQ_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/qcommon.h"
#include "ivfpq.h"

typedef struct ivf_list {
    uint32_t *ids;
    uint8_t *codes; /* cap / 8 groups of m * 8 bytes */
    uint32_t n;
    uint32_t cap; /* rows; a multiple of IVFPQ_GROUP */
} ivf_list;

struct ivfpq {
    ivfpq_config cfg;
    const dist_kernels *kern;
    int ip; /* IP or COSINE: coarse by largest dot, tables of -dot */
    int trained;
    uint32_t *sub_off; /* m + 1 offsets into a vector */
    float *cent;
    float *books;
    float *books_t; /* each codebook transposed (dsub x 256), for encoding */
    float *precomp;
    ivf_list *lists;
    size_t nrows;
};

static inline uint32_t ivf_dsub(const ivfpq *ix, uint32_t j) {
    return ix->sub_off[j + 1] - ix->sub_off[j];
}
static inline const float *ivf_book(const ivfpq *ix, uint32_t j) {
    return ix->books + (size_t)IVFPQ_KSUB * ix->sub_off[j];
}

/* Sub-spaces up to this many floats are searched through transposed
 * centroid matrices (k-means assignment, PQ encoding). */
#define IVF_TRANSPOSED_MAX_DIM 32
void ivf_transpose(const float *cent, size_t k, size_t dim, float *ct);

/* Index of the coarse centroid for v (smallest L2, or largest dot). */
uint32_t ivf_assign(const ivfpq *ix, const float *v, float *scratch /* nlist */);
/* Derived tables after training or loading: the transposed codebooks and
 * the L2 precomputed table (left NULL when too large). 0 or NOMEM. */
int ivf_precompute(ivfpq *ix);
/* Allocate the trained arrays (centroids, books, lists). 0 or NOMEM. */
int ivf_alloc_trained(ivfpq *ix);
/* Free the trained arrays and the lists; the index becomes untrained. */
void ivf_reset(ivfpq *ix);
/* Make room for one more row in list l. 0 or NOMEM. */
int ivf_list_grow(ivfpq *ix, ivf_list *L, uint32_t need);
/* Append (row, code) to list l (room reserved). */
void ivf_list_put(const ivfpq *ix, ivf_list *L, uint32_t row, const uint8_t *code);

/* Run fn(ctx, lo, hi) over [0, n) split into up to nthreads ranges, one per
 * thread (the caller runs the first). 0, or NOMEM when no thread could start
 * (then the caller ran everything itself: the work is still done). */
typedef void (*ivf_range_fn)(void *ctx, size_t lo, size_t hi);
void ivf_parallel(size_t n, int nthreads, ivf_range_fn fn, void *ctx);

/* splitmix64 */
static inline uint64_t ivf_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
