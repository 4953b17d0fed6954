/* SPDX-License-Identifier: MIT */
/*
 * hnsw_search.c -- greedy descent and the beam search (the paper's
 * SEARCH-LAYER), shared by queries and inserts.
 *
 * The beam search keeps two heaps, as hnswlib does: a min-heap of candidates
 * to expand and a max-heap of at most ef results. A node whose distance beats
 * the worst result (or any node while fewer than ef are kept) becomes a
 * candidate; it also becomes a result only if it is kept -- not tombstoned
 * and accepted by the filter. So excluded nodes still route. Without
 * exclusions the search stops as soon as the best candidate is worse than the
 * worst result; with exclusions it stops only once ef results are kept (or
 * the reachable graph is exhausted), which is hnswlib's filtered rule and
 * what keeps recall up under selective filters (at the cost of a longer
 * walk: very selective filters are better served by a flat scan).
 *
 * Memory: expanding a node first walks its link list and collects the
 * unvisited neighbours, marking them and issuing software prefetches for
 * their vectors; only then are distances computed. All the neighbours'
 * cache misses are thus in flight together instead of one at a time. The
 * next candidate's link list is prefetched before the loop comes back to it.
 *
 * The loop is written once and instantiated (always_inline with constant
 * flags) for the query path, the locked insert path and the filtered path,
 * so the common case carries no test for locks or filters.
 */
#include <math.h>

#include "hnsw_int.h"

#ifndef HNSW_PF_LINES
#define HNSW_PF_LINES 64 /* at most this many cache lines of a vector prefetched */
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE void prefetch_vec(const hnsw *h, uint32_t n) {
    const char *p = (const char *)hnsw_vec(h, n);
    size_t lines = ((size_t)h->dim * sizeof(float) + 63) / 64;
    if (lines > HNSW_PF_LINES) lines = HNSW_PF_LINES;
    for (size_t i = 0; i < lines; i++) __builtin_prefetch(p + 64 * i, 0, 3);
}

static ALWAYS_INLINE int kept(const hnsw *h, const hnsw_filter *f, uint32_t n) {
    if (hnsw_dead(h, n)) return 0;
    return !f || !f->accept || f->accept(f->ctx, n);
}

/* The link list of n at lev: returns the count and points *ll at the links.
 * Under `locked` the list is copied into buf while n's lock is held. */
static ALWAYS_INLINE uint32_t get_links(const hnsw *h, uint32_t n, int lev, int locked,
                                        uint32_t *buf, const uint32_t **ll) {
    const uint32_t *l = hnsw_links(h, n, lev);
    if (!locked) {
        *ll = l + 1;
        return l[0];
    }
    hnsw_lock(h, n);
    uint32_t cnt = l[0];
    memcpy(buf, l + 1, cnt * sizeof *buf);
    hnsw_unlock(h, n);
    *ll = buf;
    return cnt;
}

static ALWAYS_INLINE size_t layer_impl(const hnsw *h, hnsw_tls *t, const float *q, uint32_t ep,
                                       float epd, size_t ef, int lev, const int locked,
                                       const int filtered, const hnsw_filter *f) {
    uint16_t *vis = t->vis;
    uint16_t tag = hnsw_tls_epoch(t);
    hpair *res = t->res;
    uint32_t *un = t->lbuf;
    size_t nres = 0, ncand = 0;
    float lb = INFINITY;

    vis[ep] = tag;
    if (!filtered || kept(h, f, ep)) {
        res[nres++] = (hpair){epd, ep};
        lb = epd;
    }
    t->cand[ncand++] = (hpair){epd, ep};

    while (ncand) {
        hpair c = t->cand[0];
        if (c.d > lb && (!filtered || nres == ef)) break;
        hmin_pop(t->cand, &ncand);

        const uint32_t *ll;
        uint32_t cnt = get_links(h, c.id, lev, locked, t->lbuf, &ll);
        /* Pass 1: unvisited neighbours, their vectors prefetched. (`un` may
         * alias `ll` under `locked`: it is written behind the read index.) */
        uint32_t nu = 0;
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t u = ll[j];
            if (vis[u] == tag) continue;
            vis[u] = tag;
            un[nu++] = u;
            prefetch_vec(h, u);
        }
        /* Pass 2: distances. */
        for (uint32_t j = 0; j < nu; j++) {
            uint32_t u = un[j];
            float d = hnsw_dist(h, q, hnsw_vec(h, u));
            if (nres < ef || d < lb) {
                if (ncand == t->ccap && hnsw_tls_grow_cand(t)) continue; /* NOMEM: drop */
                hmin_push(t->cand, &ncand, (hpair){d, u});
                if (!filtered || kept(h, f, u)) {
                    hmax_push(res, &nres, (hpair){d, u});
                    if (nres > ef) hmax_pop(res, &nres);
                    lb = res[0].d;
                }
            }
        }
        if (ncand) __builtin_prefetch(hnsw_links(h, t->cand[0].id, lev), 0, 3);
    }
    return nres;
}

size_t hnsw_search_layer(const hnsw *h, hnsw_tls *t, const float *q, uint32_t ep, float epd,
                         size_t ef, int lev, int locked, int skip_dead, const hnsw_filter *f) {
    int filtered = skip_dead || (f && f->accept);
    if (filtered) {
        if (locked) return layer_impl(h, t, q, ep, epd, ef, lev, 1, 1, f);
        return layer_impl(h, t, q, ep, epd, ef, lev, 0, 1, f);
    }
    if (locked) return layer_impl(h, t, q, ep, epd, ef, lev, 1, 0, NULL);
    if (lev == 0) return layer_impl(h, t, q, ep, epd, ef, 0, 0, 0, NULL);
    return layer_impl(h, t, q, ep, epd, ef, lev, 0, 0, NULL);
}

void hnsw_greedy(const hnsw *h, hnsw_tls *t, const float *q, uint32_t *cur, float *curd, int top,
                 int bottom, int locked) {
    uint32_t c = *cur;
    float cd = *curd;
    for (int l = top; l > bottom; l--) {
        int changed = 1;
        while (changed) {
            changed = 0;
            const uint32_t *ll;
            uint32_t cnt = locked ? get_links(h, c, l, 1, t->lbuf, &ll)
                                  : get_links(h, c, l, 0, t->lbuf, &ll);
            for (uint32_t j = 0; j < cnt; j++) {
                uint32_t u = ll[j];
                float d = hnsw_dist(h, q, hnsw_vec(h, u));
                if (d < cd) {
                    cd = d;
                    c = u;
                    changed = 1;
                }
            }
        }
    }
    *cur = c;
    *curd = cd;
}

void hnsw_res_sorted(hnsw_tls *t, size_t n) {
    size_t m = n;
    while (m) {
        t->sel[m - 1] = t->res[0];
        hmax_pop(t->res, &m);
    }
}

size_t hnsw_search(const hnsw *h, const float *q, size_t k, uint32_t ef, flat_accept_fn accept,
                   void *accept_ctx, topk_hit *out) {
    if (k == 0 || h->entry == HNSW_NONE) return 0;
    size_t efs = ef > k ? ef : k;
    if (efs > h->count) efs = h->count;
    hnsw_tls *t = hnsw_tls_get(h, efs);
    if (!t) {
        q_err(QUARRY_NOMEM, "hnsw: search scratch");
        return 0;
    }
    uint32_t cur = h->entry;
    float curd = hnsw_dist(h, q, hnsw_vec(h, cur));
    hnsw_greedy(h, t, q, &cur, &curd, h->max_level, 0, 0);
    hnsw_filter f = {accept, accept_ctx};
    size_t n = hnsw_search_layer(h, t, q, cur, curd, efs, 0, 0, h->ndead > 0, &f);
    hnsw_res_sorted(t, n);
    /* ascending by distance; order equal distances by node */
    hpair *s = t->sel;
    for (size_t i = 1; i < n; i++) {
        hpair x = s[i];
        size_t j = i;
        while (j > 0 && s[j - 1].d == x.d && s[j - 1].id > x.id) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = x;
    }
    size_t m = n < k ? n : k;
    float add = h->metric == FLAT_COSINE ? 1.0f : 0.0f;
    for (size_t i = 0; i < m; i++) {
        out[i].dist = s[i].d + add;
        out[i].row = s[i].id;
    }
    return m;
}
