/* SPDX-License-Identifier: MIT */
/*
 * test_ivfpq.c -- the host-free IVF-PQ index.
 *
 *  - k-means: deterministic for a seed, no empty cluster even when the
 *    initial centroids collide (duplicate points), lower objective than the
 *    initial sample.
 *  - PQ: the reconstruction error of encode/decode is a small fraction of the
 *    data's variance; the table distances the search reports equal exact
 *    distances to the reconstructed vectors (L2 with precomputed tables, IP,
 *    cosine); the SIMD kernels (code scan, transposed nearest-centroid and
 *    dot products) equal the scalar ones bit for bit.
 *  - Recall@10 on a generated clustered set (20k x 32-d, 100 clusters,
 *    nlist 64, m 16): >= 0.9 at nprobe 8, >= 0.98 with refine 10.
 *  - Filters (accept) are honoured; the serialised index reloads to identical
 *    results; hostile bytes give QUARRY_CORRUPT and never crash.
 */
#include "t.h"

#include <math.h>

#include "index/flat/flat.h"
#include "index/ivfpq/ivfpq.h"

#define DIM 32
#define N 20000
#define NQ 200
#define K 10

/* 100 clusters, each a 4-dimensional patch (a random basis) around its
 * centre plus a little isotropic noise: low intrinsic dimension, like real
 * embeddings, so that near neighbours are meaningfully nearer. */
#define LAT 4
static float *gen_clustered(size_t n, uint64_t seed) {
    float *centers = malloc(100 * DIM * sizeof *centers);
    float *basis = malloc(100 * LAT * DIM * sizeof *basis);
    float *x = malloc(n * DIM * sizeof *x);
    uint64_t s = 42;
    for (size_t i = 0; i < 100 * DIM; i++) centers[i] = 4.0f * t_randf(&s);
    for (size_t i = 0; i < 100 * LAT * DIM; i++) basis[i] = t_randf(&s);
    s = seed;
    for (size_t i = 0; i < n; i++) {
        size_t c = t_rand(&s) % 100;
        float z[LAT];
        for (size_t l = 0; l < LAT; l++) z[l] = t_randf(&s);
        for (size_t d = 0; d < DIM; d++) {
            float v = centers[c * DIM + d] + 0.05f * t_randf(&s);
            for (size_t l = 0; l < LAT; l++) v += z[l] * basis[(c * LAT + l) * DIM + d];
            x[i * DIM + d] = v;
        }
    }
    free(centers);
    free(basis);
    return x;
}

static ivfpq *make(flat_metric metric, uint32_t nlist, uint32_t m, const float *x, size_t n) {
    ivfpq_config cfg = {.metric = metric, .dim = DIM, .nlist = nlist, .m = m, .niter = 10, .seed = 7};
    ivfpq *ix;
    T_ASSERT_OK(ivfpq_new(&cfg, &ix));
    T_ASSERT_OK(ivfpq_train(ix, x, NULL, n, DIM, 2));
    uint32_t *rows = malloc(n * sizeof *rows);
    for (size_t i = 0; i < n; i++) rows[i] = (uint32_t)i;
    T_ASSERT_OK(ivfpq_add_batch(ix, rows, n, x, DIM, 2));
    free(rows);
    T_ASSERT_EQ(ivfpq_size(ix), n);
    return ix;
}

static void test_kmeans(void) {
    /* 1000 points, 10 of them duplicated 50 times: sampled init picks
     * duplicates, which must be split rather than left empty */
    size_t n = 1000, k = 40;
    float *x = gen_clustered(n, 3);
    for (size_t i = 0; i < 500; i++) memcpy(x + i * DIM, x + (i % 10) * DIM, DIM * sizeof *x);
    float *c1 = malloc(k * DIM * sizeof *c1), *c2 = malloc(k * DIM * sizeof *c2);
    T_ASSERT_OK(ivfpq_kmeans(x, n, DIM, DIM, k, 20, 5, 0, 2, NULL, NULL, c1));
    T_ASSERT_OK(ivfpq_kmeans(x, n, DIM, DIM, k, 20, 5, 0, 1, NULL, NULL, c2));
    T_ASSERT(memcmp(c1, c2, k * DIM * sizeof *c1) == 0); /* deterministic, any thread count */
    size_t used[40] = {0};
    double obj = 0, obj0 = 0;
    for (size_t i = 0; i < n; i++) {
        size_t b = 0;
        float bd = INFINITY;
        for (size_t c = 0; c < k; c++) {
            float d = dist_l2_f32_scalar(x + i * DIM, c1 + c * DIM, DIM);
            if (d < bd) bd = d, b = c;
        }
        used[b]++;
        obj += bd;
        /* objective against the first k points (what init could give at best) */
        float b0 = INFINITY;
        for (size_t c = 0; c < k; c++) {
            float d = dist_l2_f32_scalar(x + i * DIM, x + (500 + c) * DIM, DIM);
            if (d < b0) b0 = d;
        }
        obj0 += b0;
    }
    size_t empty = 0;
    for (size_t c = 0; c < k; c++) empty += used[c] == 0;
    T_ASSERT(empty <= 1); /* a split pair may end up sharing points */
    T_ASSERT(obj < obj0);
    T_ASSERT_RC(ivfpq_kmeans(x, 10, DIM, DIM, 40, 5, 1, 0, 1, NULL, NULL, c1), QUARRY_INVALID);
    free(x);
    free(c1);
    free(c2);
}

static void test_pq_error_and_tables(flat_metric metric) {
    float *x = gen_clustered(N, 1);
    if (metric == FLAT_COSINE)
        for (size_t i = 0; i < N; i++) dist_normalize(x + i * DIM, DIM);
    ivfpq *ix = make(metric, 64, 16, x, N);
    /* reconstruction error vs variance */
    double mean[DIM] = {0}, var = 0, err = 0;
    for (size_t i = 0; i < N; i++)
        for (size_t d = 0; d < DIM; d++) mean[d] += x[i * DIM + d] / N;
    float rec[DIM];
    uint8_t code[16];
    for (size_t i = 0; i < N; i++) {
        uint32_t l;
        ivfpq_encode(ix, x + i * DIM, &l, code);
        ivfpq_decode(ix, l, code, rec);
        for (size_t d = 0; d < DIM; d++) {
            double e = x[i * DIM + d] - rec[d], v = x[i * DIM + d] - mean[d];
            err += e * e;
            var += v * v;
        }
    }
    printf("metric %d: relative PQ reconstruction error %.4f\n", metric, err / var);
    T_ASSERT(err / var < 0.05);
    /* the reported (unrefined) distances equal exact distances to the
     * reconstructions, for every hit */
    uint64_t s = 99;
    topk_hit hits[K];
    for (int qi = 0; qi < 20; qi++) {
        float q[DIM];
        for (size_t d = 0; d < DIM; d++) q[d] = 4.0f * t_randf(&s);
        if (metric == FLAT_COSINE) dist_normalize(q, DIM);
        ivfpq_search_params p = {.nprobe = 64};
        size_t n = ivfpq_search(ix, q, K, &p, hits);
        T_ASSERT_EQ(n, K);
        for (size_t h = 0; h < n; h++) {
            uint32_t l;
            ivfpq_encode(ix, x + (size_t)hits[h].row * DIM, &l, code);
            ivfpq_decode(ix, l, code, rec);
            float want = metric == FLAT_L2 ? dist_l2_f32_scalar(q, rec, DIM)
                                           : -dist_ip_f32_scalar(q, rec, DIM);
            if (metric == FLAT_COSINE) want += 1.0f;
            float tol = 1e-3f * (1.0f + fabsf(want));
            if (fabsf(hits[h].dist - want) > tol)
                T_FAIL("metric %d hit %zu: table distance %g, exact to reconstruction %g", metric,
                       h, hits[h].dist, want);
            if (h) T_ASSERT(hits[h - 1].dist <= hits[h].dist);
        }
    }
    ivfpq_free(ix);
    free(x);
}

static void test_scan_kernels(void) {
    uint64_t s = 5;
    for (size_t m = 1; m <= 64; m += 7) {
        float *lut = malloc(m * 256 * sizeof *lut);
        for (size_t i = 0; i < m * 256; i++) lut[i] = t_randf(&s) * 100.0f;
        size_t ng = 13;
        uint8_t *codes = malloc(ng * m * 8);
        for (size_t i = 0; i < ng * m * 8; i++) codes[i] = (uint8_t)t_rand(&s);
        float a[13 * 8], b[13 * 8];
        pq_scan8_scalar(lut, codes, ng, m, 1.5f, a);
        const char *isas[] = {"avx2", "avx512"};
        for (int i = 0; i < 2; i++) {
            const dist_kernels *k = dist_get_isa(isas[i]);
            if (!k) continue;
            k->pq_scan8(lut, codes, ng, m, 1.5f, b);
            T_ASSERT(memcmp(a, b, sizeof a) == 0);
        }
        free(lut);
        free(codes);
    }
    /* the transposed-centroid kernels (encoding, query tables) */
    for (size_t dim = 1; dim <= 33; dim += 4)
        for (size_t k = 5; k <= 300; k += 59) {
            float *ct = malloc(dim * k * sizeof *ct), x[33], a[300], b[300];
            for (size_t i = 0; i < dim * k; i++) ct[i] = t_randf(&s);
            for (size_t i = 0; i < dim; i++) x[i] = t_randf(&s);
            float da, db;
            uint32_t ia = nearest_l2_t_scalar(x, dim, ct, k, &da);
            ip_t_scalar(x, dim, ct, k, a);
            const char *isas[] = {"avx2", "avx512"};
            for (int i = 0; i < 2; i++) {
                const dist_kernels *kk = dist_get_isa(isas[i]);
                if (!kk) continue;
                T_ASSERT_EQ(kk->nearest_l2_t(x, dim, ct, k, &db), ia);
                T_ASSERT(da == db);
                kk->ip_t(x, dim, ct, k, b);
                T_ASSERT(memcmp(a, b, k * sizeof *a) == 0);
            }
            free(ct);
        }
}

static int accept_even(void *ctx, uint32_t row) {
    (void)ctx;
    return row % 2 == 0;
}

static double recall(const ivfpq *ix, const float *x, const float *qs, uint32_t nprobe,
                     uint32_t refine, int filtered) {
    size_t hit = 0;
    topk_hit got[K], want[K];
    for (size_t qi = 0; qi < NQ; qi++) {
        const float *q = qs + qi * DIM;
        flat_scan fs = {.metric = FLAT_L2, .base = x, .nrows = N, .dim = DIM, .stride = DIM,
                        .accept = filtered ? accept_even : NULL};
        size_t nw = flat_search(&fs, q, K, want);
        ivfpq_search_params p = {.nprobe = nprobe, .refine = refine, .base = x, .stride = DIM,
                                 .accept = filtered ? accept_even : NULL};
        size_t ng = ivfpq_search(ix, q, K, &p, got);
        T_ASSERT_EQ(ng, K);
        for (size_t i = 0; i < ng; i++) {
            if (filtered) T_ASSERT(got[i].row % 2 == 0);
            for (size_t j = 0; j < nw; j++)
                if (got[i].row == want[j].row) {
                    hit++;
                    break;
                }
        }
    }
    return (double)hit / (NQ * K);
}

static void test_recall_and_serde(void) {
    float *x = gen_clustered(N, 1);
    float *qs = gen_clustered(NQ, 777);
    ivfpq *ix = make(FLAT_L2, 64, 16, x, N);
    double r8 = recall(ix, x, qs, 8, 0, 0), r8r = recall(ix, x, qs, 8, 10, 0);
    double r1 = recall(ix, x, qs, 1, 0, 0), rf = recall(ix, x, qs, 8, 10, 1);
    printf("recall@10: nprobe 1 %.3f, nprobe 8 %.3f, nprobe 8 refine 10 %.3f, filtered %.3f\n",
           r1, r8, r8r, rf);
    T_ASSERT(r8 >= 0.9);
    T_ASSERT(r8r >= 0.98);
    T_ASSERT(rf >= 0.98);
    T_ASSERT(r1 < r8); /* nprobe matters */

    /* serialise, reload into a fresh index: identical answers */
    uint8_t *buf;
    size_t len;
    T_ASSERT_OK(ivfpq_serialize(ix, &buf, &len));
    ivfpq_config cfg = *ivfpq_get_config(ix);
    ivfpq *iy;
    T_ASSERT_OK(ivfpq_new(&cfg, &iy));
    T_ASSERT_OK(ivfpq_deserialize(iy, buf, len, N));
    T_ASSERT_EQ(ivfpq_size(iy), N);
    for (size_t qi = 0; qi < 50; qi++) {
        topk_hit a[K], b[K];
        ivfpq_search_params p = {.nprobe = 4};
        size_t na = ivfpq_search(ix, qs + qi * DIM, K, &p, a);
        size_t nb = ivfpq_search(iy, qs + qi * DIM, K, &p, b);
        T_ASSERT_EQ(na, nb);
        T_ASSERT(memcmp(a, b, na * sizeof *a) == 0);
    }
    /* hostile: every truncation of the header region, sampled truncations
     * and bit flips elsewhere; row ids beyond max_rows */
    T_ASSERT_RC(ivfpq_deserialize(iy, buf, len, N - 1), QUARRY_CORRUPT);
    T_ASSERT(!ivfpq_is_trained(iy));
    for (size_t cut = 0; cut < len; cut += cut < 64 ? 1 : 997)
        T_ASSERT_RC(ivfpq_deserialize(iy, buf, cut, N), QUARRY_CORRUPT);
    uint64_t s = 1;
    int rejected = 0;
    for (int i = 0; i < 300; i++) {
        size_t pos = i < 40 ? (size_t)i : (size_t)(t_rand(&s) % len);
        uint8_t bit = (uint8_t)(1u << (t_rand(&s) % 8));
        buf[pos] ^= bit;
        int rc = ivfpq_deserialize(iy, buf, len, N);
        if (rc) {
            T_ASSERT_RC(rc, QUARRY_CORRUPT);
            rejected++;
        } else { /* a flip in codes or centroids can be valid data: it must search */
            topk_hit a[K];
            ivfpq_search_params p = {.nprobe = 8};
            ivfpq_search(iy, qs, K, &p, a);
        }
        buf[pos] ^= bit;
    }
    T_ASSERT(rejected > 0);
    T_ASSERT_OK(ivfpq_deserialize(iy, buf, len, N));
    free(buf);

    /* clear keeps the training: re-adding gives the same answers */
    ivfpq_clear_lists(iy);
    T_ASSERT_EQ(ivfpq_size(iy), 0);
    for (uint32_t r = 0; r < N; r++) T_ASSERT_OK(ivfpq_add(iy, r, x + (size_t)r * DIM));
    for (size_t qi = 0; qi < 20; qi++) {
        topk_hit a[K], b[K];
        ivfpq_search_params p = {.nprobe = 4};
        size_t na = ivfpq_search(ix, qs + qi * DIM, K, &p, a);
        T_ASSERT_EQ(ivfpq_search(iy, qs + qi * DIM, K, &p, b), na);
        T_ASSERT(memcmp(a, b, na * sizeof *a) == 0);
    }
    ivfpq_free(iy);
    ivfpq_free(ix);
    free(x);
    free(qs);
}

static void test_invalid(void) {
    ivfpq *ix;
    ivfpq_config cfg = {.metric = FLAT_L2, .dim = 8, .nlist = 4, .m = 9};
    T_ASSERT_RC(ivfpq_new(&cfg, &ix), QUARRY_INVALID); /* m > dim */
    cfg.m = 3;                                          /* uneven sub-vectors are fine */
    T_ASSERT_OK(ivfpq_new(&cfg, &ix));
    float x[100 * 8];
    uint64_t s = 3;
    for (size_t i = 0; i < 100 * 8; i++) x[i] = t_randf(&s);
    T_ASSERT_RC(ivfpq_train(ix, x, NULL, 100, 8, 1), QUARRY_INVALID); /* < 256 points */
    T_ASSERT(!ivfpq_is_trained(ix));
    topk_hit h[4];
    ivfpq_search_params p = {.nprobe = 2};
    T_ASSERT_EQ(ivfpq_search(ix, x, 4, &p, h), 0);
    T_ASSERT_RC(ivfpq_add(ix, 0, x), QUARRY_INVALID);
    ivfpq_free(ix);
}

int main(void) {
    test_kmeans();
    test_scan_kernels();
    test_pq_error_and_tables(FLAT_L2);
    test_pq_error_and_tables(FLAT_IP);
    test_pq_error_and_tables(FLAT_COSINE);
    test_recall_and_serde();
    test_invalid();
    printf("ok\n");
    return 0;
}
