/* SPDX-License-Identifier: MIT */
/*
 * distance.h -- float32 distance kernels and their run-time dispatch.
 *
 * Every kernel exists once per ISA: `dist_scalar.c` is the reference and the
 * specification; `dist_avx2.c` and `dist_avx512.c` are written with SIMDe
 * intrinsics and compiled with per-file target flags; `dist_dispatch.c`
 * (baseline ISA) picks one table at start-up from cpuid. QUARRY_SIMD=
 * scalar|avx2|avx512 in the environment forces a table (an ISA the CPU lacks
 * falls back to the best supported one, with a warning on stderr).
 *
 * Conventions: `dim` may be any value >= 0 (0 gives 0); pointers need no
 * alignment; l2 is the *squared* Euclidean distance; ip is the plain dot
 * product (callers negate it to get a "smaller is closer" distance).
 */
#ifndef QUARRY_DISTANCE_H
#define QUARRY_DISTANCE_H

#include <stddef.h>
#include <stdint.h>

typedef float (*dist_pair_fn)(const float *a, const float *b, size_t dim);

/*
 * Batch form: out[i] = f(q, base + i*stride) for i in [0, n). `stride` is in
 * floats (>= dim). Lets a kernel keep the query in registers across rows and
 * prefetch ahead; it is the flat-scan hot path.
 */
typedef void (*dist_batch_fn)(const float *q, const float *base, size_t n, size_t dim,
                              size_t stride, float *out);

/*
 * PQ lookup-table scan (IVF-PQ, 8-bit codes): out[g*8 + v] = bias +
 * sum_j lut[j*256 + codes[g*8*m + j*8 + v]] for ngroups groups of 8 rows,
 * whose codes are stored sub-quantiser-major inside a group (index/ivfpq).
 * Sums run in j order, so every ISA gives bit-identical results.
 */
typedef void (*pq_scan_fn)(const float *lut, const uint8_t *codes, size_t ngroups, size_t m,
                           float bias, float *out);

/*
 * Nearest of k centroids stored transposed (coordinate i of centroid c at
 * ct[i*k + c]) to x (dim floats) by squared L2: returns its index (the lowest
 * on ties) and stores its distance in *best. For short vectors (PQ
 * sub-spaces, k-means on them) this vectorises across centroids. Sums are
 * (x_i - c_i)^2 added in i order without FMA: every ISA agrees bit for bit.
 */
typedef uint32_t (*nearest_t_fn)(const float *x, size_t dim, const float *ct, size_t k,
                                 float *best);

/* Dot products with k transposed centroids: out[c] = sum_i x[i] * ct[i*k + c]
 * (i in order, mul + add: bit-identical across ISAs). PQ query tables. */
typedef void (*ip_t_fn)(const float *x, size_t dim, const float *ct, size_t k, float *out);

typedef struct dist_kernels {
    const char *isa; /* "scalar", "avx2", "avx512" */
    dist_pair_fn l2;
    dist_pair_fn ip;
    dist_batch_fn l2_batch;
    dist_batch_fn ip_batch;
    pq_scan_fn pq_scan8;
    nearest_t_fn nearest_l2_t;
    ip_t_fn ip_t;
} dist_kernels;

/* The table chosen at start-up (thread-safe, computed once). Never NULL. */
const dist_kernels *dist_get(void);

/* A given ISA's table, or NULL if this CPU (or build) cannot run it. */
const dist_kernels *dist_get_isa(const char *isa);

/* Per-ISA tables (defined in each dist_<isa>.c). */
extern const dist_kernels dist_kernels_scalar;
extern const dist_kernels dist_kernels_avx2;
extern const dist_kernels dist_kernels_avx512;

/* Scalar reference kernels (also the tail loops' specification). */
float dist_l2_f32_scalar(const float *a, const float *b, size_t dim);
float dist_ip_f32_scalar(const float *a, const float *b, size_t dim);

/* Normalise v to unit length in place. Returns 0, or -1 if its norm is 0
 * (the vector is left unchanged: cosine is undefined for it). */
int dist_normalize(float *v, size_t dim);

/* The PQ scan kernels (the AVX-512 table uses the AVX2 one: a 16-lane gather
 * is no faster per row). */
void pq_scan8_scalar(const float *lut, const uint8_t *codes, size_t ngroups, size_t m, float bias,
                     float *out);
void pq_scan8_avx2(const float *lut, const uint8_t *codes, size_t ngroups, size_t m, float bias,
                   float *out);
uint32_t nearest_l2_t_scalar(const float *x, size_t dim, const float *ct, size_t k, float *best);
uint32_t nearest_l2_t_avx2(const float *x, size_t dim, const float *ct, size_t k, float *best);
void ip_t_scalar(const float *x, size_t dim, const float *ct, size_t k, float *out);
void ip_t_avx2(const float *x, size_t dim, const float *ct, size_t k, float *out);

#endif
