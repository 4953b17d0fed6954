/* SPDX-License-Identifier: MIT */
/*
 * dist_avx2.c -- AVX2 + FMA distance kernels (SIMDe intrinsics).
 *
 * Compiled with -mavx2 -mfma for this file only; dist_dispatch.c hands this
 * table out only after cpuid and XCR0 said the CPU and the OS support AVX2,
 * FMA and the YMM register state. Written against SIMDe names, so a non-x86
 * build still compiles it (to SIMDe's portable code).
 *
 * Design (the same shape as dist_avx512.c, with 8-lane vectors):
 *  - Pair kernels: four accumulators (32 floats per iteration) to cover the
 *    FMA latency, an 8-lane loop, then one masked load (vmaskmovps, which
 *    does not fault on masked-off lanes) for the last dim % 8 elements.
 *  - Batch kernels: four rows at a time, two accumulators per row, each query
 *    chunk loaded once per four rows; the four sums are reduced together with
 *    three horizontal adds and stored with one 128-bit store.
 *  - Optional software prefetch of the rows QUARRY_DIST_PF_BYTES ahead, off
 *    by default (see dist_avx512.c for why).
 */
#include "distance.h"

#include <stdint.h>

#include <simde/x86/avx2.h>
#include <simde/x86/fma.h>

#ifndef QUARRY_DIST_PF_BYTES
#define QUARRY_DIST_PF_BYTES 0
#endif

/* mask_tab + 8 - r selects the first r (0..8) lanes. */
static const int32_t mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline simde__m256i part_mask(size_t r) {
    return simde_mm256_loadu_si256((const simde__m256i *)(const void *)(mask_tab + 8 - r));
}

/* Zero-filled load of the first lanes selected by m; never touches the rest. */
static inline simde__m256 load_part(const float *p, simde__m256i m) {
    return simde_mm256_maskload_ps(p, m);
}

static inline float hsum8(simde__m256 v) {
    simde__m128 s4 = simde_mm_add_ps(simde_mm256_castps256_ps128(v),
                                     simde_mm256_extractf128_ps(v, 1));
    simde__m128 s2 = simde_mm_add_ps(s4, simde_mm_movehl_ps(s4, s4));
    simde__m128 s1 = simde_mm_add_ss(s2, simde_mm_shuffle_ps(s2, s2, 0x55));
    return simde_mm_cvtss_f32(s1);
}

/* {sum(a), sum(b), sum(c), sum(d)} */
static inline simde__m128 hsum8x4(simde__m256 a, simde__m256 b, simde__m256 c, simde__m256 d) {
    simde__m256 ab = simde_mm256_hadd_ps(a, b);  /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    simde__m256 cd = simde_mm256_hadd_ps(c, d);
    simde__m256 x = simde_mm256_hadd_ps(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 ... */
    return simde_mm_add_ps(simde_mm256_castps256_ps128(x), simde_mm256_extractf128_ps(x, 1));
}

#define PF(p) simde_mm_prefetch((const char *)(p), SIMDE_MM_HINT_T0)

/* ---------------------------------------------------------------- pair */

#define L2_ACC(acc, x, y)                                         \
    do {                                                          \
        simde__m256 d_ = simde_mm256_sub_ps((x), (y));            \
        (acc) = simde_mm256_fmadd_ps(d_, d_, (acc));              \
    } while (0)
#define IP_ACC(acc, x, y) ((acc) = simde_mm256_fmadd_ps((x), (y), (acc)))

static float l2_avx2(const float *a, const float *b, size_t dim) {
    simde__m256 s0 = simde_mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        L2_ACC(s0, simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
        L2_ACC(s1, simde_mm256_loadu_ps(a + i + 8), simde_mm256_loadu_ps(b + i + 8));
        L2_ACC(s2, simde_mm256_loadu_ps(a + i + 16), simde_mm256_loadu_ps(b + i + 16));
        L2_ACC(s3, simde_mm256_loadu_ps(a + i + 24), simde_mm256_loadu_ps(b + i + 24));
    }
    for (; i + 8 <= dim; i += 8)
        L2_ACC(s0, simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
    if (i < dim) {
        simde__m256i m = part_mask(dim - i);
        L2_ACC(s1, load_part(a + i, m), load_part(b + i, m));
    }
    return hsum8(simde_mm256_add_ps(simde_mm256_add_ps(s0, s1), simde_mm256_add_ps(s2, s3)));
}

static float ip_avx2(const float *a, const float *b, size_t dim) {
    simde__m256 s0 = simde_mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        IP_ACC(s0, simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
        IP_ACC(s1, simde_mm256_loadu_ps(a + i + 8), simde_mm256_loadu_ps(b + i + 8));
        IP_ACC(s2, simde_mm256_loadu_ps(a + i + 16), simde_mm256_loadu_ps(b + i + 16));
        IP_ACC(s3, simde_mm256_loadu_ps(a + i + 24), simde_mm256_loadu_ps(b + i + 24));
    }
    for (; i + 8 <= dim; i += 8)
        IP_ACC(s0, simde_mm256_loadu_ps(a + i), simde_mm256_loadu_ps(b + i));
    if (i < dim) {
        simde__m256i m = part_mask(dim - i);
        IP_ACC(s1, load_part(a + i, m), load_part(b + i, m));
    }
    return hsum8(simde_mm256_add_ps(simde_mm256_add_ps(s0, s1), simde_mm256_add_ps(s2, s3)));
}

/* ---------------------------------------------------------------- batch */

static inline size_t pf_rows(size_t stride) {
    size_t bytes = stride * sizeof(float);
    if (QUARRY_DIST_PF_BYTES == 0 || bytes == 0) return 0;
    size_t r = (QUARRY_DIST_PF_BYTES + bytes - 1) / bytes;
    return (r + 3) & ~(size_t)3;
}

#define BATCH_BODY(ACC, PAIR)                                                               \
    size_t ahead = pf_rows(stride);                                                         \
    simde__m256i tail = part_mask(dim & 7);                                                 \
    size_t i = 0;                                                                           \
    for (; i + 4 <= n; i += 4) {                                                            \
        const float *r0 = base + i * stride, *r1 = r0 + stride;                             \
        const float *r2 = r1 + stride, *r3 = r2 + stride;                                   \
        const float *p0 = (ahead && i + ahead + 4 <= n) ? r0 + ahead * stride : r0;         \
        const float *p1 = p0 + stride, *p2 = p1 + stride, *p3 = p2 + stride;                \
        if (ahead) { PF(p0); PF(p1); PF(p2); PF(p3); }                                      \
        simde__m256 a0 = simde_mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;               \
        simde__m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                     \
        size_t j = 0;                                                                       \
        for (; j + 16 <= dim; j += 16) {                                                    \
            simde__m256 qa = simde_mm256_loadu_ps(q + j);                                   \
            simde__m256 qb = simde_mm256_loadu_ps(q + j + 8);                               \
            ACC(a0, qa, simde_mm256_loadu_ps(r0 + j));                                      \
            ACC(a1, qa, simde_mm256_loadu_ps(r1 + j));                                      \
            ACC(a2, qa, simde_mm256_loadu_ps(r2 + j));                                      \
            ACC(a3, qa, simde_mm256_loadu_ps(r3 + j));                                      \
            ACC(b0, qb, simde_mm256_loadu_ps(r0 + j + 8));                                  \
            ACC(b1, qb, simde_mm256_loadu_ps(r1 + j + 8));                                  \
            ACC(b2, qb, simde_mm256_loadu_ps(r2 + j + 8));                                  \
            ACC(b3, qb, simde_mm256_loadu_ps(r3 + j + 8));                                  \
        }                                                                                   \
        if (j + 8 <= dim) {                                                                 \
            simde__m256 qa = simde_mm256_loadu_ps(q + j);                                   \
            ACC(a0, qa, simde_mm256_loadu_ps(r0 + j));                                      \
            ACC(a1, qa, simde_mm256_loadu_ps(r1 + j));                                      \
            ACC(a2, qa, simde_mm256_loadu_ps(r2 + j));                                      \
            ACC(a3, qa, simde_mm256_loadu_ps(r3 + j));                                      \
            j += 8;                                                                         \
        }                                                                                   \
        if (j < dim) {                                                                      \
            simde__m256 qb = load_part(q + j, tail);                                        \
            ACC(b0, qb, load_part(r0 + j, tail));                                           \
            ACC(b1, qb, load_part(r1 + j, tail));                                           \
            ACC(b2, qb, load_part(r2 + j, tail));                                           \
            ACC(b3, qb, load_part(r3 + j, tail));                                           \
        }                                                                                   \
        simde_mm_storeu_ps(out + i, hsum8x4(simde_mm256_add_ps(a0, b0),                     \
                                            simde_mm256_add_ps(a1, b1),                     \
                                            simde_mm256_add_ps(a2, b2),                     \
                                            simde_mm256_add_ps(a3, b3)));                   \
    }                                                                                       \
    for (; i < n; i++) out[i] = PAIR(q, base + i * stride, dim);

static void l2_batch_avx2(const float *q, const float *base, size_t n, size_t dim,
                          size_t stride, float *out) {
    BATCH_BODY(L2_ACC, l2_avx2)
}

static void ip_batch_avx2(const float *q, const float *base, size_t n, size_t dim,
                          size_t stride, float *out) {
    BATCH_BODY(IP_ACC, ip_avx2)
}

/* PQ scan: 8 rows per step, one 8-byte code load, a widening and a gather
 * per sub-quantiser; two groups in flight to hide the gather latency. */
void pq_scan8_avx2(const float *lut, const uint8_t *codes, size_t ngroups, size_t m, float bias,
                   float *out) {
    size_t g = 0, gs = m * 8;
    for (; g + 2 <= ngroups; g += 2) {
        const uint8_t *c0 = codes + g * gs, *c1 = c0 + gs;
        simde__m256 a0 = simde_mm256_set1_ps(bias), a1 = a0;
        const float *t = lut;
        for (size_t j = 0; j < m; j++, t += 256) {
            simde__m256i i0 = simde_mm256_cvtepu8_epi32(simde_mm_loadl_epi64(
                (const simde__m128i *)(const void *)(c0 + j * 8)));
            simde__m256i i1 = simde_mm256_cvtepu8_epi32(simde_mm_loadl_epi64(
                (const simde__m128i *)(const void *)(c1 + j * 8)));
            a0 = simde_mm256_add_ps(a0, simde_mm256_i32gather_ps(t, i0, 4));
            a1 = simde_mm256_add_ps(a1, simde_mm256_i32gather_ps(t, i1, 4));
        }
        simde_mm256_storeu_ps(out + g * 8, a0);
        simde_mm256_storeu_ps(out + g * 8 + 8, a1);
    }
    if (g < ngroups) pq_scan8_scalar(lut, codes + g * gs, ngroups - g, m, bias, out + g * 8);
}

/* Nearest transposed centroid: 8 centroids per lane group, a running
 * per-lane minimum with its index, one reduction at the end. Mul + add (no
 * FMA) so the sums equal the scalar kernel's. */
uint32_t nearest_l2_t_avx2(const float *x, size_t dim, const float *ct, size_t k, float *best) {
    size_t k8 = k / 8 * 8;
    uint32_t bi = 0;
    float bd = 0.0f;
    int have = 0;
    if (k8) {
        simde__m256 bestv = simde_mm256_set1_ps(__builtin_inff());
        simde__m256i besti = simde_mm256_setzero_si256();
        simde__m256i idx = simde_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const simde__m256i eight = simde_mm256_set1_epi32(8);
        for (size_t c = 0; c < k8; c += 8) {
            simde__m256 acc = simde_mm256_setzero_ps();
            for (size_t i = 0; i < dim; i++) {
                simde__m256 t = simde_mm256_sub_ps(simde_mm256_set1_ps(x[i]),
                                                   simde_mm256_loadu_ps(ct + i * k + c));
                acc = simde_mm256_add_ps(acc, simde_mm256_mul_ps(t, t));
            }
            simde__m256 lt = simde_mm256_cmp_ps(acc, bestv, SIMDE_CMP_LT_OQ);
            bestv = simde_mm256_blendv_ps(bestv, acc, lt);
            besti = simde_mm256_blendv_epi8(besti, idx, simde_mm256_castps_si256(lt));
            idx = simde_mm256_add_epi32(idx, eight);
        }
        float bv[8];
        int32_t bx[8];
        simde_mm256_storeu_ps(bv, bestv);
        simde_mm256_storeu_si256((simde__m256i *)(void *)bx, besti);
        for (int l = 0; l < 8; l++)
            if (!have || bv[l] < bd || (bv[l] == bd && (uint32_t)bx[l] < bi))
                bd = bv[l], bi = (uint32_t)bx[l], have = 1;
    }
    for (size_t c = k8; c < k; c++) {
        float d = 0.0f;
        for (size_t i = 0; i < dim; i++) {
            float t = x[i] - ct[i * k + c];
            d += t * t;
        }
        if (!have || d < bd) bd = d, bi = (uint32_t)c, have = 1;
    }
    *best = bd;
    return bi;
}

void ip_t_avx2(const float *x, size_t dim, const float *ct, size_t k, float *out) {
    size_t c = 0;
    for (; c + 32 <= k; c += 32) { /* four vectors in flight */
        simde__m256 a0 = simde_mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t i = 0; i < dim; i++) {
            const float *row = ct + i * k + c;
            simde__m256 xi = simde_mm256_set1_ps(x[i]);
            a0 = simde_mm256_add_ps(a0, simde_mm256_mul_ps(xi, simde_mm256_loadu_ps(row)));
            a1 = simde_mm256_add_ps(a1, simde_mm256_mul_ps(xi, simde_mm256_loadu_ps(row + 8)));
            a2 = simde_mm256_add_ps(a2, simde_mm256_mul_ps(xi, simde_mm256_loadu_ps(row + 16)));
            a3 = simde_mm256_add_ps(a3, simde_mm256_mul_ps(xi, simde_mm256_loadu_ps(row + 24)));
        }
        simde_mm256_storeu_ps(out + c, a0);
        simde_mm256_storeu_ps(out + c + 8, a1);
        simde_mm256_storeu_ps(out + c + 16, a2);
        simde_mm256_storeu_ps(out + c + 24, a3);
    }
    for (; c < k; c++) {
        float s = 0.0f;
        for (size_t i = 0; i < dim; i++) s += x[i] * ct[i * k + c];
        out[c] = s;
    }
}

const dist_kernels dist_kernels_avx2 = {
    .isa = "avx2",
    .l2 = l2_avx2,
    .ip = ip_avx2,
    .l2_batch = l2_batch_avx2,
    .ip_batch = ip_batch_avx2,
    .pq_scan8 = pq_scan8_avx2,
    .nearest_l2_t = nearest_l2_t_avx2,
    .ip_t = ip_t_avx2,
};
