/* SPDX-License-Identifier: MIT */
/*
 * Exact search on real data: siftsmall (SIFT10K, 10,000 x 128) imported
 * through the public API, every one of the 100 queries searched with k = 100,
 * compared with the official ground truth: recall@100 must be 1.0 (a hit that
 * differs from the ground truth must be a tie at the same distance), and the
 * same after a reopen. Skipped when the data set is absent.
 */
#include "t.h"
#include "tdb.h"

#include <math.h>

static float *read_vecs(const char *path, int *n, int *d) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    int32_t dim;
    T_ASSERT(fread(&dim, 4, 1, f) == 1 && dim > 0);
    long rec = 4 + 4L * dim;
    T_ASSERT(size % rec == 0);
    *n = (int)(size / rec);
    *d = dim;
    float *out = malloc((size_t)*n * dim * 4);
    fseek(f, 0, SEEK_SET);
    for (int i = 0; i < *n; i++) {
        T_ASSERT(fread(&dim, 4, 1, f) == 1 && dim == *d);
        T_ASSERT(fread(out + (size_t)i * dim, 4, (size_t)dim, f) == (size_t)dim);
    }
    fclose(f);
    return out;
}

static double l2(const float *a, const float *b, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

static double run_queries(quarry_coll *c, const float *base, const float *q, const int32_t *gt,
                          int nq, int d) {
    long found = 0;
    for (int i = 0; i < nq; i++) {
        quarry_result *res;
        T_ASSERT_OK(quarry_search(c, q + (size_t)i * d, (uint32_t)d, 100, NULL, &res));
        T_ASSERT_EQ(quarry_result_count(res), 100);
        const int32_t *g = gt + (size_t)i * 100;
        double kth = l2(q + (size_t)i * d, base + (size_t)g[99] * d, d);
        for (int j = 0; j < 100; j++) {
            int id = atoi(quarry_result_id(res, (size_t)j, NULL));
            int in_gt = 0;
            for (int m = 0; m < 100; m++) in_gt |= g[m] == id;
            double dist = l2(q + (size_t)i * d, base + (size_t)id * d, d);
            if (in_gt || fabs(dist - kth) <= 1e-3 * kth) found++;
            else T_FAIL("query %d: hit %d (id %d, distance %g) is not in the ground truth", i, j, id, dist);
            T_ASSERT(fabs(quarry_result_distance(res, (size_t)j) - dist) <= 1e-3 * (1 + dist));
        }
        quarry_result_free(res);
    }
    return (double)found / (nq * 100.0);
}

int main(void) {
    const char *bp = t_data_path("siftsmall/siftsmall_base.fvecs");
    if (!bp) T_SKIP("siftsmall not found (set QUARRY_DATA to the folder holding siftsmall/)");
    char base_path[4096], qpath[4096], gpath[4096];
    snprintf(base_path, sizeof base_path, "%s", bp);
    snprintf(qpath, sizeof qpath, "%s", t_data_path("siftsmall/siftsmall_query.fvecs"));
    snprintf(gpath, sizeof gpath, "%s", t_data_path("siftsmall/siftsmall_groundtruth.ivecs"));
    int n, d, nq, dq, ng, dg;
    float *base = read_vecs(base_path, &n, &d);
    float *q = read_vecs(qpath, &nq, &dq);
    int32_t *gt = (int32_t *)read_vecs(gpath, &ng, &dg);
    T_ASSERT(base && q && gt && d == dq && dg == 100 && ng == nq);

    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("sift");
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_coll *c = tdb_coll(db, "sift", (uint32_t)d, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    quarry_row *rows = calloc(1000, sizeof *rows);
    char(*ids)[16] = malloc(1000 * 16);
    for (int start = 0; start < n; start += 1000) {
        int m = n - start < 1000 ? n - start : 1000;
        for (int i = 0; i < m; i++) {
            snprintf(ids[i], 16, "%d", start + i);
            rows[i] = (quarry_row){.id = ids[i], .vector = base + (size_t)(start + i) * d,
                                   .dim = (uint32_t)d};
        }
        T_ASSERT_OK(quarry_upsert(c, rows, (size_t)m));
    }
    double r = run_queries(c, base, q, gt, nq, d);
    printf("siftsmall: %d rows, %d queries, exact recall@100 = %.4f\n", n, nq, r);
    T_ASSERT(r == 1.0);
    quarry_collection_close(c);
    quarry_close(db);
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "sift", &c));
    r = run_queries(c, base, q, gt, nq, d);
    printf("siftsmall after reopen: recall@100 = %.4f\n", r);
    T_ASSERT(r == 1.0);
    quarry_collection_close(c);
    quarry_close(db);
    t_rmdir(dir);
    free(dir), free(rows), free(ids), free(base), free(q), free(gt);
    return 0;
}
