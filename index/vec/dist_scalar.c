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
};
