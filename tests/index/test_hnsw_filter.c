/* SPDX-License-Identifier: MIT */
/*
 * test_hnsw_filter.c -- filtered HNSW search (the accept callback).
 *
 * Filters that allow 50%, 5% and 0.1% of the nodes (a hash of the node id,
 * so the allowed nodes are scattered over the clusters): a rejected node must
 * never be returned, and recall@10 against flat_search with the same filter
 * must be >= 0.95 at ef = 64 for 50% and 5%. At 0.1% only correctness is
 * required (the host falls back to a flat scan for such filters); the recall
 * and the number of filter calls are printed. Filters combined with
 * tombstones, and the callback receiving only inserted nodes, are checked too.
 */
#include "t.h"

#include <math.h>

#include "index/hnsw/hnsw.h"

#define N 8000
#define DIM 32
#define NCLUST 40
#define NQ 100
#define K 10
#define EF 64

static float *g_query;

static float gauss(uint64_t *s) {
    float u1 = (t_randf(s) + 1.0f) * 0.5f, u2 = (t_randf(s) + 1.0f) * 0.5f;
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

typedef struct filt {
    uint32_t permille; /* allowed fraction, in 1/1000 */
    const hnsw *h;
    size_t calls;
    int bad; /* called for a node not in the graph */
} filt;

static uint32_t mix(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

static int allowed(const filt *f, uint32_t row) { return mix(row) % 1000 < f->permille; }

static int accept_cb(void *ctx, uint32_t row) {
    filt *f = ctx;
    f->calls++;
    if (f->h && !hnsw_contains(f->h, row)) f->bad = 1;
    return allowed(f, row);
}

/* flat's callback: no counting (it would dilute the hnsw numbers) */
static int accept_flat(void *ctx, uint32_t row) { return allowed(ctx, row); }

static hnsw *build(void) {
    uint64_t s = 4321;
    float *cent = malloc((size_t)NCLUST * DIM * sizeof(float));
    g_query = malloc((size_t)NQ * DIM * sizeof(float));
    T_ASSERT(cent && g_query);
    for (size_t i = 0; i < (size_t)NCLUST * DIM; i++) cent[i] = 2.0f * t_randf(&s);
    hnsw_config cfg = {.metric = FLAT_L2, .dim = DIM, .m = 12, .ef_construction = 100, .seed = 3};
    hnsw *h;
    T_ASSERT_OK(hnsw_new(&cfg, &h));
    T_ASSERT_OK(hnsw_reserve(h, N));
    for (size_t r = 0; r < N + NQ; r++) {
        float *v = r < N ? hnsw_vector(h, (uint32_t)r) : g_query + (r - N) * DIM;
        const float *c = cent + (t_rand(&s) % NCLUST) * DIM;
        for (size_t j = 0; j < DIM; j++) v[j] = c[j] + 0.3f * gauss(&s);
    }
    free(cent);
    uint32_t *ids = malloc(N * sizeof *ids);
    T_ASSERT(ids);
    for (uint32_t i = 0; i < N; i++) ids[i] = i;
    T_ASSERT_OK(hnsw_insert_batch(h, ids, N, 2));
    free(ids);
    char msg[256];
    if (hnsw_check(h, msg, sizeof msg)) T_FAIL("hnsw_check: %s", msg);
    return h;
}

/* Recall of filtered hnsw vs filtered flat; every hit must pass. */
static double run(const hnsw *h, uint32_t permille, const uint64_t *live, uint32_t ef,
                  size_t *calls_per_query) {
    filt f = {.permille = permille, .h = h};
    flat_scan fs = {.metric = FLAT_L2,
                    .base = hnsw_vectors(h),
                    .nrows = N,
                    .dim = DIM,
                    .stride = hnsw_stride(h),
                    .live = live,
                    .accept = accept_flat,
                    .accept_ctx = &f};
    size_t hit = 0, tot = 0;
    for (size_t i = 0; i < NQ; i++) {
        const float *q = g_query + i * DIM;
        topk_hit ex[K], got[K];
        size_t ne = flat_search(&fs, q, K, ex);
        size_t ng = hnsw_search(h, q, K, ef, accept_cb, &f, got);
        T_ASSERT(ng <= ne);
        for (size_t a = 0; a < ng; a++) {
            if (!allowed(&f, got[a].row)) T_FAIL("rejected node %u returned", got[a].row);
            if (hnsw_is_deleted(h, got[a].row)) T_FAIL("deleted node %u returned", got[a].row);
            for (size_t b = 0; b < ne; b++) hit += got[a].row == ex[b].row;
        }
        tot += ne;
    }
    T_ASSERT(!f.bad);
    *calls_per_query = f.calls / NQ;
    return tot ? (double)hit / (double)tot : 1.0;
}

int main(void) {
    hnsw *h = build();
    static const uint32_t pm[] = {500, 50, 1};
    size_t calls;
    for (size_t i = 0; i < 3; i++) {
        double r = run(h, pm[i], NULL, EF, &calls);
        fprintf(stderr, "allow %.1f%%: recall@%d ef=%d %.4f, %zu filter calls/query\n",
                pm[i] / 10.0, K, EF, r, calls);
        if (pm[i] >= 50 && r < 0.95) T_FAIL("allow %.1f%%: recall %.4f < 0.95", pm[i] / 10.0, r);
    }
    /* an unfiltered search never calls back; a filter rejecting all finds nothing */
    topk_hit out[K];
    filt none = {.permille = 0, .h = h};
    T_ASSERT_EQ(hnsw_search(h, g_query, K, EF, accept_cb, &none, out), 0);

    /* with 20% tombstones */
    uint64_t live[(N + 63) / 64];
    memset(live, 0, sizeof live);
    uint64_t s = 77;
    for (uint32_t i = 0; i < N; i++) {
        if (t_rand(&s) % 5 == 0)
            hnsw_delete(h, i);
        else
            live[i / 64] |= 1ull << (i % 64);
    }
    for (size_t i = 0; i < 2; i++) {
        double r = run(h, pm[i], live, EF, &calls);
        fprintf(stderr, "allow %.1f%% + 20%% deleted: recall %.4f, %zu filter calls/query\n",
                pm[i] / 10.0, r, calls);
        if (r < 0.95) T_FAIL("allow %.1f%% with deletes: recall %.4f < 0.95", pm[i] / 10.0, r);
    }
    hnsw_free(h);
    free(g_query);
    return 0;
}
