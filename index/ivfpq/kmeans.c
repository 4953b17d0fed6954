/* SPDX-License-Identifier: MIT */
/*
 * kmeans.c -- Lloyd's k-means for the coarse quantiser and the PQ codebooks.
 *
 * Initialisation takes k distinct sample points chosen with a seeded
 * shuffle (FAISS's default), so training is deterministic for a seed.
 * Assignment -- the O(n k d) part -- runs on `nthreads` threads through the
 * batch distance kernels; the centroid update is a single O(n d) pass in
 * double precision. An empty cluster takes over half of a large cluster: its
 * centroid becomes a copy of that cluster's, both nudged apart by a relative
 * 1/1024 in opposite directions, chosen with probability proportional to
 * size (FAISS's split_clusters), so no centroid is ever wasted.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "ivfpq_int.h"

#define KM_EPS (1.0f / 1024.0f)

typedef struct assign_ctx {
    const float *base;
    size_t stride, dim, k;
    const float *cent;
    const float *ct; /* transposed centroids (short vectors, L2), or NULL */
    int ip;
    const dist_kernels *kern;
    uint32_t *assign;
    float *best; /* distance to the chosen centroid (objective) */
    int nomem;
} assign_ctx;

void ivf_transpose(const float *cent, size_t k, size_t dim, float *ct) {
    for (size_t c = 0; c < k; c++)
        for (size_t i = 0; i < dim; i++) ct[i * k + c] = cent[c * dim + i];
}

static void assign_range(void *vctx, size_t lo, size_t hi) {
    assign_ctx *a = vctx;
    float *d = q_malloc(a->k * sizeof *d);
    if (!d) {
        a->nomem = 1;
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        const float *x = a->base + i * a->stride;
        uint32_t bi = 0;
        if (a->ct) {
            bi = a->kern->nearest_l2_t(x, a->dim, a->ct, a->k, &a->best[i]);
        } else if (a->ip) {
            a->kern->ip_batch(x, a->cent, a->k, a->dim, a->dim, d);
            for (size_t c = 1; c < a->k; c++)
                if (d[c] > d[bi]) bi = (uint32_t)c;
            a->best[i] = -d[bi];
        } else {
            a->kern->l2_batch(x, a->cent, a->k, a->dim, a->dim, d);
            for (size_t c = 1; c < a->k; c++)
                if (d[c] < d[bi]) bi = (uint32_t)c;
            a->best[i] = d[bi];
        }
        a->assign[i] = bi;
    }
    q_free(d);
}

typedef struct par_job {
    ivf_range_fn fn;
    void *ctx;
    size_t lo, hi;
} par_job;

static void *par_main(void *p) {
    par_job *j = p;
    j->fn(j->ctx, j->lo, j->hi);
    return NULL;
}

void ivfpq_sample(uint32_t *a, size_t n, size_t k, uint64_t seed) {
    for (size_t i = 0; i < k && i < n; i++) {
        size_t j = i + (size_t)(ivf_rand(&seed) % (n - i));
        uint32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void ivf_parallel(size_t n, int nthreads, ivf_range_fn fn, void *ctx) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;
    if ((size_t)nthreads > n / 64 + 1) nthreads = (int)(n / 64 + 1); /* not worth a thread */
    pthread_t tid[64];
    par_job job[64];
    int started[64] = {0};
    for (int t = 0; t < nthreads; t++) {
        job[t] = (par_job){fn, ctx, n * (size_t)t / (size_t)nthreads,
                           n * (size_t)(t + 1) / (size_t)nthreads};
        if (t > 0) started[t] = pthread_create(&tid[t], NULL, par_main, &job[t]) == 0;
    }
    fn(ctx, job[0].lo, job[0].hi);
    for (int t = 1; t < nthreads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else fn(ctx, job[t].lo, job[t].hi); /* no thread: do it here */
    }
}

/* Give every empty cluster half of a large one. */
static void split_empty(float *cent, size_t *count, size_t n, size_t dim, size_t k, uint64_t *rng) {
    for (size_t ci = 0; ci < k; ci++) {
        if (count[ci]) continue;
        size_t cj = 0;
        if (n > k) {
            for (size_t tries = 0;; cj = (cj + 1) % k, tries++) {
                double p = ((double)count[cj] - 1.0) / (double)(n - k);
                double r = (double)(ivf_rand(rng) >> 11) * 0x1.0p-53;
                if (r < p) break;
                if (tries > 64 * k) { /* improbable: take the largest */
                    for (size_t c = 0; c < k; c++)
                        if (count[c] > count[cj]) cj = c;
                    break;
                }
            }
        } else {
            for (size_t c = 0; c < k; c++)
                if (count[c] > count[cj]) cj = c;
        }
        if (count[cj] < 2) continue; /* nothing to split (duplicate points) */
        float *a = cent + ci * dim, *b = cent + cj * dim;
        memcpy(a, b, dim * sizeof *a);
        for (size_t d = 0; d < dim; d++) {
            if (d % 2 == 0) {
                a[d] *= 1 + KM_EPS;
                b[d] *= 1 - KM_EPS;
            } else {
                a[d] *= 1 - KM_EPS;
                b[d] *= 1 + KM_EPS;
            }
        }
        count[ci] = count[cj] / 2;
        count[cj] -= count[ci];
    }
}

int ivfpq_kmeans(const float *base, size_t n, size_t stride, size_t dim, size_t k,
                 uint32_t niter, uint64_t seed, int ip, int nthreads, const dist_kernels *kern,
                 const volatile int *cancel, float *cent) {
    if (k == 0 || dim == 0 || n < k || stride < dim)
        return q_err(QUARRY_INVALID, "k-means needs at least %zu points (got %zu)", k, n);
    if (!kern) kern = dist_get();
    if (niter == 0) niter = IVFPQ_DEFAULT_NITER;
    uint32_t *perm = q_malloc(n * sizeof *perm);
    uint32_t *assign = q_malloc(n * sizeof *assign);
    float *best = q_malloc(n * sizeof *best);
    double *sum = q_malloc(k * dim * sizeof *sum);
    size_t *count = q_malloc(k * sizeof *count);
    float *ct = NULL;
    int rc = 0;
    if (!perm || !assign || !best || !sum || !count) {
        rc = q_err(QUARRY_NOMEM, "out of memory (k-means)");
        goto out;
    }
    uint64_t rng = seed ^ 0x6b6d65616e73ull;
    /* k distinct points */
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    ivfpq_sample(perm, n, k, rng);
    for (size_t i = 0; i < k; i++)
        memcpy(cent + i * dim, base + (size_t)perm[i] * stride, dim * sizeof *cent);
    /* Short vectors (PQ sub-spaces): one pass over a transposed centroid
     * matrix vectorises across centroids; the row kernels would spend their
     * time in per-row overhead. */
    if (!ip && dim <= IVF_TRANSPOSED_MAX_DIM && !(ct = q_malloc(k * dim * sizeof *ct))) {
        rc = q_err(QUARRY_NOMEM, "out of memory (k-means)");
        goto out;
    }
    assign_ctx ac = {base, stride, dim, k, cent, ct, ip, kern, assign, best, 0};
    for (uint32_t it = 0; it < niter; it++) {
        if (cancel && *cancel) {
            rc = q_err(QUARRY_INTERRUPTED, "k-means cancelled");
            goto out;
        }
        if (ct) ivf_transpose(cent, k, dim, ct);
        ivf_parallel(n, nthreads, assign_range, &ac);
        if (ac.nomem) {
            rc = q_err(QUARRY_NOMEM, "out of memory (k-means)");
            goto out;
        }
        memset(sum, 0, k * dim * sizeof *sum);
        memset(count, 0, k * sizeof *count);
        for (size_t i = 0; i < n; i++) {
            const float *x = base + i * stride;
            double *s = sum + (size_t)assign[i] * dim;
            for (size_t d = 0; d < dim; d++) s[d] += x[d];
            count[assign[i]]++;
        }
        for (size_t c = 0; c < k; c++) {
            if (!count[c]) continue;
            double inv = 1.0 / (double)count[c];
            for (size_t d = 0; d < dim; d++) cent[c * dim + d] = (float)(sum[c * dim + d] * inv);
        }
        split_empty(cent, count, n, dim, k, &rng);
    }
out:
    q_free(ct);
    q_free(perm);
    q_free(assign);
    q_free(best);
    q_free(sum);
    q_free(count);
    return rc;
}
