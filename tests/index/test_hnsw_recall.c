/* SPDX-License-Identifier: MIT */
/*
 * test_hnsw_recall.c -- HNSW recall against exact search, and its invariants.
 *
 * A clustered set (Gaussian clusters, fixed seed) is indexed for L2, IP and
 * COSINE; recall@10 at ef = 64 against flat_search over the index's own
 * vector memory (hnsw_vectors/hnsw_stride) must be >= 0.95. Then 20% of the
 * nodes are deleted: they must never come back and recall among the live
 * ones must hold; more nodes are inserted after the deletes, through a
 * reserve that moves the vectors, and never link to a tombstone. A build with
 * two threads must reach the same recall; searches from several threads at
 * once must give the single-threaded answers. hnsw_check passes after every
 * step. Plus the argument checks and the empty/small corner cases.
 */
#include "t.h"

#include <math.h>
#include <pthread.h>

#include "index/hnsw/hnsw_int.h"

#define N 8000
#define DIM 32
#define NCLUST 50
#define NQ 200
#define K 10
#define EF 64

static float *g_base; /* N + N/20 rows, then NQ queries */
static float *g_query;

static float gauss(uint64_t *s) {
    float u1 = (t_randf(s) + 1.0f) * 0.5f, u2 = (t_randf(s) + 1.0f) * 0.5f;
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

static void make_data(void) {
    size_t rows = N + N / 20;
    uint64_t s = 1234;
    float *cent = malloc((size_t)NCLUST * DIM * sizeof(float));
    g_base = malloc(rows * DIM * sizeof(float));
    g_query = malloc((size_t)NQ * DIM * sizeof(float));
    T_ASSERT(cent && g_base && g_query);
    for (size_t i = 0; i < (size_t)NCLUST * DIM; i++) cent[i] = 2.0f * t_randf(&s);
    for (size_t r = 0; r < rows + NQ; r++) {
        float *v = r < rows ? g_base + r * DIM : g_query + (r - rows) * DIM;
        const float *c = cent + (t_rand(&s) % NCLUST) * DIM;
        for (size_t j = 0; j < DIM; j++) v[j] = c[j] + 0.3f * gauss(&s);
    }
    free(cent);
}

static void copy_vec(hnsw *h, uint32_t n, int unit) {
    float *v = hnsw_vector(h, n);
    T_ASSERT(v);
    memcpy(v, g_base + (size_t)n * DIM, DIM * sizeof(float));
    if (unit) T_ASSERT_EQ(dist_normalize(v, DIM), 0);
}

static void check(const hnsw *h, const char *when) {
    char msg[256];
    if (hnsw_check(h, msg, sizeof msg) != 0) T_FAIL("hnsw_check %s: %s", when, msg);
}

static hnsw *build(flat_metric metric, uint32_t n, int nthreads, int one_by_one) {
    hnsw_config cfg = {.metric = metric, .dim = DIM, .m = 8, .ef_construction = 64, .seed = 7};
    hnsw *h;
    T_ASSERT_OK(hnsw_new(&cfg, &h));
    T_ASSERT_OK(hnsw_reserve(h, n));
    T_ASSERT(hnsw_capacity(h) >= n);
    for (uint32_t i = 0; i < n; i++) copy_vec(h, i, metric == FLAT_COSINE);
    if (one_by_one) {
        for (uint32_t i = 0; i < n; i++) T_ASSERT_OK(hnsw_insert(h, i));
    } else {
        uint32_t *ids = malloc(n * sizeof *ids);
        T_ASSERT(ids);
        for (uint32_t i = 0; i < n; i++) ids[i] = i;
        T_ASSERT_OK(hnsw_insert_batch(h, ids, n, nthreads));
        free(ids);
    }
    T_ASSERT_EQ(hnsw_size(h), n);
    check(h, "after build");
    return h;
}

/* Recall@K of hnsw_search vs flat_search over the same memory and rows. */
static double recall(const hnsw *h, flat_metric metric, uint32_t nrows, const uint64_t *live) {
    flat_scan fs = {.metric = metric,
                    .base = hnsw_vectors(h),
                    .nrows = nrows,
                    .dim = DIM,
                    .stride = hnsw_stride(h),
                    .live = live};
    size_t hit = 0, tot = 0;
    float q[DIM];
    for (size_t i = 0; i < NQ; i++) {
        memcpy(q, g_query + i * DIM, sizeof q);
        if (metric == FLAT_COSINE) T_ASSERT_EQ(dist_normalize(q, DIM), 0);
        topk_hit ex[K], got[K];
        size_t ne = flat_search(&fs, q, K, ex);
        size_t ng = hnsw_search(h, q, K, EF, NULL, NULL, got);
        T_ASSERT_EQ(ng, ne);
        for (size_t a = 0; a < ng; a++) {
            T_ASSERT(got[a].row < nrows);
            T_ASSERT(!hnsw_is_deleted(h, got[a].row));
            if (live) T_ASSERT((live[got[a].row / 64] >> (got[a].row % 64)) & 1);
            if (a) {
                T_ASSERT(got[a - 1].dist <= got[a].dist);
                if (got[a - 1].dist == got[a].dist) T_ASSERT(got[a - 1].row < got[a].row);
            }
            for (size_t b = 0; b < ne; b++)
                if (got[a].row == ex[b].row) {
                    hit++;
                    /* same memory, same kernel: the same distance */
                    T_ASSERT(fabsf(got[a].dist - ex[b].dist) <= 1e-5f * (1 + fabsf(ex[b].dist)));
                    break;
                }
        }
        tot += ne;
    }
    return tot ? (double)hit / (double)tot : 1.0;
}

static void test_metric(flat_metric metric, const char *name) {
    hnsw *h = build(metric, N, 1, metric == FLAT_L2);
    double r = recall(h, metric, N, NULL);
    fprintf(stderr, "%s: recall@%d ef=%d %.4f, %zu bytes\n", name, K, EF, r, hnsw_memory(h));
    if (r < 0.95) T_FAIL("%s recall %.4f < 0.95", name, r);

    /* delete 20% (random), including the entry point's neighbourhood */
    uint64_t *live = calloc((N + N / 20 + 63) / 64, sizeof *live);
    T_ASSERT(live);
    uint64_t s = 99;
    size_t ndel = 0;
    for (uint32_t i = 0; i < N; i++) {
        if (t_rand(&s) % 5 == 0) {
            hnsw_delete(h, i);
            hnsw_delete(h, i); /* twice: no-op */
            ndel++;
        } else {
            live[i / 64] |= 1ull << (i % 64);
        }
    }
    T_ASSERT_EQ(hnsw_deleted_count(h), ndel);
    T_ASSERT_EQ(hnsw_size(h), N);
    check(h, "after deletes");
    r = recall(h, metric, N, live);
    fprintf(stderr, "%s: after %zu deletes recall %.4f\n", name, ndel, r);
    if (r < 0.95) T_FAIL("%s recall after deletes %.4f < 0.95", name, r);

    /* grow (moves the vectors) and insert 5% more: no links to tombstones */
    float keep[DIM];
    memcpy(keep, hnsw_vector(h, 17), sizeof keep);
    T_ASSERT_OK(hnsw_reserve(h, N + N / 20));
    T_ASSERT(hnsw_capacity(h) >= N + N / 20);
    T_ASSERT(memcmp(keep, hnsw_vector(h, 17), sizeof keep) == 0);
    uint32_t extra[N / 20];
    for (uint32_t i = 0; i < N / 20; i++) {
        extra[i] = N + i;
        copy_vec(h, N + i, metric == FLAT_COSINE);
        live[(N + i) / 64] |= 1ull << ((N + i) % 64);
    }
    T_ASSERT_OK(hnsw_insert_batch(h, extra, N / 20, 1));
    T_ASSERT_EQ(hnsw_size(h), N + N / 20);
    check(h, "after inserts over tombstones");
    r = recall(h, metric, N + N / 20, live);
    fprintf(stderr, "%s: after more inserts recall %.4f\n", name, r);
    if (r < 0.95) T_FAIL("%s recall after more inserts %.4f < 0.95", name, r);
    /* a node inserted while tombstones exist never links to one */
    for (uint32_t n = N; n < N + N / 20; n++)
        for (int l = 0; l <= (int)h->levels[n]; l++) {
            const uint32_t *ll = hnsw_links(h, n, l);
            for (uint32_t j = 0; j < ll[0]; j++)
                if (hnsw_is_deleted(h, ll[1 + j]))
                    T_FAIL("node %u level %d links to tombstone %u", n, l, ll[1 + j]);
        }
    free(live);
    hnsw_free(h);
}

typedef struct searcher {
    const hnsw *h;
    const topk_hit *want; /* NQ x K single-threaded answers */
    int bad;
} searcher;

static void *search_thread(void *arg) {
    searcher *s = arg;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < NQ; i++) {
            topk_hit got[K];
            size_t n = hnsw_search(s->h, g_query + i * DIM, K, EF, NULL, NULL, got);
            if (n != K) s->bad = 1;
            for (size_t j = 0; j < n; j++)
                if (got[j].row != s->want[i * K + j].row) s->bad = 1;
        }
    return NULL;
}

static void test_threads(void) {
    hnsw *h = build(FLAT_L2, N, 2, 0);
    double r = recall(h, FLAT_L2, N, NULL);
    fprintf(stderr, "l2 2 threads: recall %.4f\n", r);
    if (r < 0.95) T_FAIL("2-thread recall %.4f < 0.95", r);

    /* concurrent searches (each thread has its own scratch) */
    topk_hit *want = malloc((size_t)NQ * K * sizeof *want);
    T_ASSERT(want);
    for (size_t i = 0; i < NQ; i++)
        T_ASSERT_EQ(hnsw_search(h, g_query + i * DIM, K, EF, NULL, NULL, want + i * K), K);
    enum { NT = 3 };
    searcher s[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        s[i] = (searcher){.h = h, .want = want};
        T_ASSERT_EQ(pthread_create(&th[i], NULL, search_thread, &s[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        T_ASSERT(!s[i].bad);
    }
    free(want);
    hnsw_free(h);
}

/* A single-thread build is a function of (seed, order): same graph twice. */
static void test_determinism(void) {
    hnsw *a = build(FLAT_L2, 1500, 1, 1), *b = build(FLAT_L2, 1500, 1, 0);
    for (size_t i = 0; i < 20; i++) {
        topk_hit ha[K], hb[K];
        size_t na = hnsw_search(a, g_query + i * DIM, K, 16, NULL, NULL, ha);
        size_t nb = hnsw_search(b, g_query + i * DIM, K, 16, NULL, NULL, hb);
        T_ASSERT_EQ(na, nb);
        for (size_t j = 0; j < na; j++) T_ASSERT_EQ(ha[j].row, hb[j].row);
    }
    hnsw_free(a);
    hnsw_free(b);
}

static void test_edges(void) {
    hnsw_config cfg = {.metric = FLAT_L2, .dim = 4, .m = 4, .ef_construction = 0, .seed = 1};
    hnsw *h;
    hnsw_config bad = cfg;
    bad.dim = 0;
    T_ASSERT_RC(hnsw_new(&bad, &h), QUARRY_INVALID);
    bad = cfg;
    bad.m = 1;
    T_ASSERT_RC(hnsw_new(&bad, &h), QUARRY_INVALID);
    bad.m = HNSW_MAX_M + 1;
    T_ASSERT_RC(hnsw_new(&bad, &h), QUARRY_INVALID);
    bad = cfg;
    bad.metric = (flat_metric)7;
    T_ASSERT_RC(hnsw_new(&bad, &h), QUARRY_INVALID);
    T_ASSERT_RC(hnsw_new(NULL, &h), QUARRY_INVALID);

    T_ASSERT_OK(hnsw_new(&cfg, &h));
    topk_hit out[8];
    float q[4] = {0, 0, 0, 0};
    T_ASSERT_EQ(hnsw_capacity(h), 0);
    T_ASSERT(hnsw_vector(h, 0) == NULL);
    T_ASSERT_EQ(hnsw_search(h, q, 5, 10, NULL, NULL, out), 0); /* empty */
    check(h, "empty");
    T_ASSERT_RC(hnsw_insert(h, 0), QUARRY_INVALID); /* beyond capacity */
    T_ASSERT_OK(hnsw_reserve(h, 3));
    T_ASSERT_EQ(hnsw_stride(h) * sizeof(float) % 64, 0);
    for (uint32_t i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) hnsw_vector(h, i)[j] = (float)(i * 4 + j);
    T_ASSERT(!hnsw_contains(h, 1));
    hnsw_delete(h, 1); /* not inserted: no-op */
    T_ASSERT_EQ(hnsw_deleted_count(h), 0);
    T_ASSERT_OK(hnsw_insert(h, 1));
    T_ASSERT(hnsw_contains(h, 1));
    T_ASSERT_RC(hnsw_insert(h, 1), QUARRY_INVALID); /* twice */
    uint32_t dup[2] = {0, 0};
    T_ASSERT_RC(hnsw_insert_batch(h, dup, 2, 2), QUARRY_INVALID); /* repeated in a batch */
    T_ASSERT(!hnsw_contains(h, 0));
    T_ASSERT_EQ(hnsw_search(h, q, 5, 0, NULL, NULL, out), 1); /* k > size */
    T_ASSERT_EQ(out[0].row, 1);
    T_ASSERT(out[0].dist == 4 * 4 + 5 * 5 + 6 * 6 + 7 * 7);
    T_ASSERT_EQ(hnsw_search(h, q, 0, 10, NULL, NULL, out), 0);
    T_ASSERT_OK(hnsw_insert(h, 0));
    T_ASSERT_OK(hnsw_insert(h, 2));
    check(h, "three nodes");
    T_ASSERT_EQ(hnsw_search(h, q, 5, 1, NULL, NULL, out), 3);
    T_ASSERT_EQ(out[0].row, 0);
    T_ASSERT_EQ(out[2].row, 2);
    hnsw_delete(h, 0);
    hnsw_delete(h, 1);
    hnsw_delete(h, 2);
    T_ASSERT_EQ(hnsw_search(h, q, 5, 10, NULL, NULL, out), 0); /* all deleted */
    check(h, "all deleted");
    T_ASSERT(hnsw_memory(h) >= 3 * hnsw_stride(h) * sizeof(float));
    hnsw_free(h);
    hnsw_free(NULL);
}

int main(void) {
    make_data();
    test_edges();
    test_determinism();
    test_metric(FLAT_L2, "l2");
    test_metric(FLAT_IP, "ip");
    test_metric(FLAT_COSINE, "cosine");
    test_threads();
    free(g_base);
    free(g_query);
    return 0;
}
