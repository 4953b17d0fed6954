/* SPDX-License-Identifier: MIT */
/*
 * ivfpq_search.c -- probe the nprobe nearest lists, score their codes with a
 * lookup table, optionally re-rank the best refine*k exactly.
 *
 * Per query: distances to the nlist centroids (batch kernel) and the nprobe
 * best; one table of -2<q_j, b_jc> (L2) or -<q_j, b_jc> (IP). Per probed
 * list: the list's table = precomputed term + query term (m*256 adds), or,
 * when the precomputed table did not fit, ||q_j - c_j - b_jc||^2 directly;
 * then the SIMD scan (dist_kernels.pq_scan8) in chunks of SCAN_GROUPS groups,
 * and only rows that beat the current k-th distance reach the accept callback
 * and the heap.
 */
#include <math.h>
#include <stdlib.h>

#include "ivfpq_int.h"

#define SCAN_GROUPS 64 /* 512 rows per kernel call */

size_t ivfpq_search(const ivfpq *ix, const float *q, size_t k, const ivfpq_search_params *p,
                    topk_hit *out) {
    if (!ix->trained || k == 0 || ix->nrows == 0) return 0;
    size_t dim = ix->cfg.dim, m = ix->cfg.m, nl = ix->cfg.nlist;
    uint32_t nprobe = p->nprobe ? p->nprobe : 1;
    if (nprobe > nl) nprobe = (uint32_t)nl;
    int refine = p->refine > 1 && p->base;
    size_t kk = refine ? k * p->refine : k;
    if (kk > ix->nrows) kk = ix->nrows > k ? ix->nrows : k;

    size_t lut_n = m * IVFPQ_KSUB;
    size_t floats = nl + 2 * lut_n + SCAN_GROUPS * IVFPQ_GROUP + dim;
    float *mem = q_malloc(floats * sizeof *mem);
    topk_hit *probe = q_malloc(nprobe * sizeof *probe);
    topk_hit *cand = refine ? q_malloc(kk * sizeof *cand) : out;
    if (!mem || !probe || !cand) {
        q_free(mem);
        q_free(probe);
        if (cand != out) q_free(cand);
        return 0;
    }
    float *coarse = mem, *qt = mem + nl, *lut = qt + lut_n;
    float *dist = lut + lut_n, *res = dist + SCAN_GROUPS * IVFPQ_GROUP;

    /* 1. the nprobe nearest lists (smaller is closer: -dot for IP) */
    if (ix->ip) {
        ix->kern->ip_batch(q, ix->cent, nl, dim, dim, coarse);
        for (size_t l = 0; l < nl; l++) coarse[l] = -coarse[l];
    } else {
        ix->kern->l2_batch(q, ix->cent, nl, dim, dim, coarse);
    }
    topk pt;
    topk_init(&pt, probe, nprobe);
    for (size_t l = 0; l < nl; l++)
        if (ix->lists[l].n) topk_push(&pt, coarse[l], (uint32_t)l);
    size_t np = topk_sort(&pt);

    /* 2. the query's table: -2<q_j, b_jc> (L2) or -<q_j, b_jc> (IP) */
    float scale = ix->ip ? -1.0f : -2.0f;
    if (ix->ip || ix->precomp)
        for (uint32_t j = 0; j < m; j++) {
            uint32_t ds = ivf_dsub(ix, j);
            float *row = qt + (size_t)j * IVFPQ_KSUB;
            if (ds <= IVF_TRANSPOSED_MAX_DIM) /* across the 256 centroids at once */
                ix->kern->ip_t(q + ix->sub_off[j], ds,
                               ix->books_t + (size_t)IVFPQ_KSUB * ix->sub_off[j], IVFPQ_KSUB,
                               row);
            else
                ix->kern->ip_batch(q + ix->sub_off[j], ivf_book(ix, j), IVFPQ_KSUB, ds, ds, row);
            for (uint32_t c = 0; c < IVFPQ_KSUB; c++) row[c] *= scale;
        }

    /* 3. scan the lists */
    topk tk;
    topk_init(&tk, cand, kk);
    float worst = topk_worst(&tk); /* kept current after each push */
    size_t work = 0;               /* table lookups since the last stop poll */
    for (size_t pi = 0; pi < np; pi++) {
        if (p->stop && work >= FLAT_STOP_EVERY / 4) {
            work = 0;
            if (p->stop(p->stop_ctx)) break;
        }
        uint32_t l = probe[pi].row;
        const ivf_list *L = &ix->lists[l];
        const float *table = qt;
        if (!ix->ip) {
            if (ix->precomp) {
                const float *pre = ix->precomp + (size_t)l * lut_n;
                for (size_t i = 0; i < lut_n; i++) lut[i] = pre[i] + qt[i];
            } else {
                const float *c = ix->cent + (size_t)l * dim;
                for (size_t i = 0; i < dim; i++) res[i] = q[i] - c[i];
                for (uint32_t j = 0; j < m; j++) {
                    uint32_t ds = ivf_dsub(ix, j);
                    ix->kern->l2_batch(res + ix->sub_off[j], ivf_book(ix, j), IVFPQ_KSUB, ds, ds,
                                       lut + (size_t)j * IVFPQ_KSUB);
                }
            }
            table = lut;
        }
        /* ||q - c||^2 or -<q, c>; a direct L2 table already holds all of it */
        float bias = (!ix->ip && !ix->precomp) ? 0.0f : probe[pi].dist;
        size_t ngroups = (L->n + IVFPQ_GROUP - 1) / IVFPQ_GROUP;
        work += (size_t)L->n * m + lut_n;
        for (size_t g0 = 0; g0 < ngroups; g0 += SCAN_GROUPS) {
            size_t ng = ngroups - g0 < SCAN_GROUPS ? ngroups - g0 : SCAN_GROUPS;
            ix->kern->pq_scan8(table, L->codes + g0 * m * IVFPQ_GROUP, ng, m, bias, dist);
            size_t base = g0 * IVFPQ_GROUP, cnt = ng * IVFPQ_GROUP;
            if (base + cnt > L->n) cnt = L->n - base;
            for (size_t v = 0; v < cnt; v++) {
                float d = dist[v];
                if (d > worst) continue;
                uint32_t row = L->ids[base + v];
                if (p->accept && !p->accept(p->accept_ctx, row)) continue;
                topk_push(&tk, d, row);
                worst = topk_worst(&tk);
            }
        }
    }
    size_t n = topk_sort(&tk);

    /* 4. exact re-ranking, or the metric's output convention */
    if (refine) {
        topk fin;
        topk_init(&fin, out, k);
        for (size_t i = 0; i < n; i++) {
            const float *v = p->base + (size_t)cand[i].row * p->stride;
            float d = ix->ip ? -ix->kern->ip(q, v, dim) : ix->kern->l2(q, v, dim);
            topk_push(&fin, d, cand[i].row);
        }
        n = topk_sort(&fin);
        q_free(cand);
    }
    if (ix->cfg.metric == FLAT_COSINE)
        for (size_t i = 0; i < n; i++) out[i].dist += 1.0f;
    q_free(mem);
    q_free(probe);
    return n;
}
