/* SPDX-License-Identifier: MIT */
/*
 * dist_scalar.c -- the scalar reference distance kernels.
 *
 * These loops are the specification of every other variant: each SIMD kernel
 * must agree with them up to floating-point reassociation. They are kept
 * deliberately plain -- one float accumulator, elements summed in index order
 * -- so that "what does l2 mean for this input" has one obvious answer. The
 * project is compiled without -ffast-math, so the compiler may not reorder the
 * sums and this file stays a true sequential reference (and the fallback on
 * CPUs without AVX2, or when QUARRY_SIMD=scalar).
 *
 * dist_normalize lives here too: it is not hot (it runs once per inserted
 * vector and once per cosine query), so it accumulates the squared norm in
 * double, which keeps it exact enough for any float input without overflow.
 */
#include "distance.h"

#include <math.h>

float dist_l2_f32_scalar(const float *a, const float *b, size_t dim) {
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

float dist_ip_f32_scalar(const float *a, const float *b, size_t dim) {
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++) s += a[i] * b[i];
    return s;
}

static void l2_batch_scalar(const float *q, const float *base, size_t n, size_t dim,
                            size_t stride, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = dist_l2_f32_scalar(q, base + i * stride, dim);
}

static void ip_batch_scalar(const float *q, const float *base, size_t n, size_t dim,
                            size_t stride, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = dist_ip_f32_scalar(q, base + i * stride, dim);
}

void pq_scan8_scalar(const float *lut, const uint8_t *codes, size_t ngroups, size_t m, float bias,
                     float *out) {
    for (size_t g = 0; g < ngroups; g++, codes += m * 8, out += 8) {
        float acc[8];
        for (int v = 0; v < 8; v++) acc[v] = bias;
        const float *t = lut;
        for (size_t j = 0; j < m; j++, t += 256)
            for (int v = 0; v < 8; v++) acc[v] += t[codes[j * 8 + v]];
        for (int v = 0; v < 8; v++) out[v] = acc[v];
    }
}

uint32_t nearest_l2_t_scalar(const float *x, size_t dim, const float *ct, size_t k, float *best) {
    uint32_t bi = 0;
    float bd = 0.0f;
    for (size_t c = 0; c < k; c++) {
        float d = 0.0f;
        for (size_t i = 0; i < dim; i++) {
            float t = x[i] - ct[i * k + c];
            d += t * t;
        }
        if (c == 0 || d < bd) bd = d, bi = (uint32_t)c;
    }
    *best = bd;
    return bi;
}

void ip_t_scalar(const float *x, size_t dim, const float *ct, size_t k, float *out) {
    for (size_t c = 0; c < k; c++) out[c] = 0.0f;
    for (size_t i = 0; i < dim; i++)
        for (size_t c = 0; c < k; c++) out[c] += x[i] * ct[i * k + c];
}

int dist_normalize(float *v, size_t dim) {
    double s = 0.0;
    for (size_t i = 0; i < dim; i++) s += (double)v[i] * (double)v[i];
    /* A zero (or empty) vector has no direction; a non-finite one has none we
     * could represent. Either way leave it untouched and report it. */
    if (!(s > 0.0) || !isfinite(s)) return -1;
    double inv = 1.0 / sqrt(s);
    for (size_t i = 0; i < dim; i++) v[i] = (float)((double)v[i] * inv);
    return 0;
}

const dist_kernels dist_kernels_scalar = {
    .isa = "scalar",
    .l2 = dist_l2_f32_scalar,
    .ip = dist_ip_f32_scalar,
    .l2_batch = l2_batch_scalar,
    .ip_batch = ip_batch_scalar,
    .pq_scan8 = pq_scan8_scalar,
    .nearest_l2_t = nearest_l2_t_scalar,
    .ip_t = ip_t_scalar,
};
