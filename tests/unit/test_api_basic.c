/* SPDX-License-Identifier: MIT */
/*
 * The public API end to end on a real database directory: collections
 * (create/list/open/drop/recreate), upsert/replace/delete/get, rows without
 * vectors, text-only collections, search equal to a brute-force reference
 * (all metrics, with filters), durability policies, read-only opens, and
 * persistence of all of it across reopen.
 */
#include "t.h"
#include "tdb.h"

#include <math.h>

#define DIM 16
#define N 500

static double ref_dist(int metric, const float *a, const float *b) {
    double s = 0, na = 0, nb = 0;
    for (int i = 0; i < DIM; i++) {
        if (metric == QUARRY_METRIC_L2) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        else s += (double)a[i] * b[i];
        na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
    }
    if (metric == QUARRY_METRIC_IP) return -s;
    if (metric == QUARRY_METRIC_COSINE) return 1 - s / sqrt(na * nb);
    return s;
}

/* Compare quarry_search with a brute force over keys [0, N) at `version`,
 * skipping keys where skip(key) is true. */
static void check_search(quarry_coll *c, int metric, int (*skip)(uint64_t), const char *filter,
                         int (*keep)(uint64_t)) {
    uint64_t seed = 99;
    for (int q = 0; q < 20; q++) {
        float query[DIM];
        for (int i = 0; i < DIM; i++) query[i] = t_randf(&seed);
        double best[N];
        uint64_t keys[N];
        size_t n = 0;
        for (uint64_t k = 0; k < N; k++) {
            if (skip && skip(k)) continue;
            if (keep && !keep(k)) continue;
            float v[DIM];
            tdb_vector(k, 1, DIM, v);
            best[n] = ref_dist(metric, query, v);
            keys[n++] = k;
        }
        /* selection of the 10 best */
        size_t kk = n < 10 ? n : 10;
        for (size_t i = 0; i < kk; i++)
            for (size_t j = i + 1; j < n; j++)
                if (best[j] < best[i]) {
                    double t = best[i];
                    best[i] = best[j], best[j] = t;
                    uint64_t u = keys[i];
                    keys[i] = keys[j], keys[j] = u;
                }
        quarry_search_params p;
        quarry_search_params_init(&p);
        p.filter = filter;
        quarry_result *res;
        T_ASSERT_OK(quarry_search(c, query, DIM, 10, &p, &res));
        T_ASSERT_EQ(quarry_result_count(res), kk);
        for (size_t i = 0; i < kk; i++) {
            char want[32];
            snprintf(want, sizeof want, "k%llu", (unsigned long long)keys[i]);
            float d = quarry_result_distance(res, i);
            if (fabs(d - best[i]) > 1e-4 * (1 + fabs(best[i])))
                T_FAIL("hit %zu distance %g, want %g", i, d, best[i]);
            /* ids must match except where distances tie */
            if (strcmp(quarry_result_id(res, i, NULL), want) != 0 &&
                fabs(best[i] - (i + 1 < kk ? best[i + 1] : best[i])) > 1e-6 &&
                (i == 0 || fabs(best[i] - best[i - 1]) > 1e-6))
                T_FAIL("hit %zu is %s, want %s", i, quarry_result_id(res, i, NULL), want);
            if (i) T_ASSERT(quarry_result_distance(res, i - 1) <= d);
        }
        quarry_result_free(res);
    }
}

static int odd(uint64_t k) { return k % 2 == 1; }
static int group3(uint64_t k) { return k % 7 == 3; }

static void test_metrics(const char *dir) {
    quarry_db *db = tdb_open(dir, "uring", 0);
    const char *names[] = {"l2", "ip", "cosine"};
    for (int m = 0; m < 3; m++) {
        quarry_coll *c = tdb_coll(db, names[m], DIM, (quarry_metric)m, QUARRY_DURABILITY_NONE);
        for (uint64_t k = 0; k < N; k += 100) T_ASSERT_OK(tdb_upsert_range(c, k, 100, 1, DIM));
        check_search(c, m, NULL, NULL, NULL);
        check_search(c, m, NULL, "{\"g\":\"g3\"}", group3);
        /* delete the odd keys: they never come back */
        const char *ids[N / 2];
        char buf[N / 2][16];
        for (int i = 0; i < N / 2; i++) {
            snprintf(buf[i], 16, "k%d", 2 * i + 1);
            ids[i] = buf[i];
        }
        size_t nd;
        T_ASSERT_OK(quarry_delete(c, ids, N / 2, &nd));
        T_ASSERT_EQ(nd, N / 2);
        T_ASSERT_OK(quarry_delete(c, ids, 3, &nd));
        T_ASSERT_EQ(nd, 0);
        check_search(c, m, odd, NULL, NULL);
        quarry_collection_close(c);
    }
    T_ASSERT_OK(quarry_close(db));
    /* the same after a reopen (the log replays to the same state) */
    db = tdb_open(dir, "uring", 0);
    for (int m = 0; m < 3; m++) {
        quarry_coll *c;
        T_ASSERT_OK(quarry_collection_open(db, names[m], &c));
        check_search(c, m, odd, NULL, NULL);
        quarry_coll_stats st;
        T_ASSERT_OK(quarry_collection_stats(c, &st));
        T_ASSERT_EQ(st.rows, N / 2);
        quarry_collection_close(c);
    }
    quarry_close(db);
}

static void test_rows_and_replace(const char *dir) {
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_coll *c = tdb_coll(db, "rows", 3, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    float v1[3] = {1, 2, 3}, v2[3] = {4, 5, 6};
    quarry_row r = {.id = "doc-\xc3\xa9", .vector = v1, .dim = 3, .text = "first",
                    .metadata = "{ \"lang\" : \"en\", \"n\": 2.5, \"ok\": true, \"tags\":[\"a\"] }"};
    T_ASSERT_OK(quarry_upsert(c, &r, 1));
    r.vector = v2, r.text = NULL, r.metadata = NULL; /* replace: fields not given are gone */
    T_ASSERT_OK(quarry_upsert(c, &r, 1));
    quarry_row nov = {.id = "no-vector", .text = "only text"};
    T_ASSERT_OK(quarry_upsert(c, &nov, 1));
    quarry_doc *d;
    T_ASSERT_OK(quarry_get(c, "doc-\xc3\xa9", 0, &d));
    uint32_t dim;
    const float *v = quarry_doc_vector(d, &dim);
    T_ASSERT(dim == 3 && v[0] == 4 && v[2] == 6);
    T_ASSERT(quarry_doc_text(d, NULL) == NULL);
    T_ASSERT(quarry_doc_metadata(d, NULL) == NULL);
    quarry_doc_free(d);
    T_ASSERT_OK(quarry_get(c, "no-vector", 0, &d));
    T_ASSERT(quarry_doc_vector(d, &dim) == NULL && dim == 0);
    T_ASSERT_STREQ(quarry_doc_text(d, NULL), "only text");
    quarry_doc_free(d);
    /* a row without vector is never a search hit */
    quarry_result *res;
    T_ASSERT_OK(quarry_search(c, v1, 3, 10, NULL, &res));
    T_ASSERT_EQ(quarry_result_count(res), 1);
    quarry_result_free(res);
    /* metadata comes back as canonical compact JSON */
    r.metadata = "{ \"lang\" : \"en\", \"n\": 2.5, \"ok\": true, \"tags\":[\"a\"] }";
    T_ASSERT_OK(quarry_upsert(c, &r, 1));
    T_ASSERT_OK(quarry_get(c, "doc-\xc3\xa9", 0, &d));
    T_ASSERT_STREQ(quarry_doc_metadata(d, NULL), "{\"lang\":\"en\",\"n\":2.5,\"ok\":true,\"tags\":[\"a\"]}");
    quarry_doc_free(d);
    /* filters: numbers compare by value, arrays by membership, booleans */
    quarry_search_params p;
    quarry_search_params_init(&p);
    const char *hit[] = {"{\"n\":2.5}", "{\"tags\":\"a\"}", "{\"ok\":true,\"lang\":\"en\"}"};
    const char *miss[] = {"{\"n\":2}", "{\"tags\":\"b\"}", "{\"ok\":false}", "{\"absent\":1}"};
    for (int i = 0; i < 3; i++) {
        p.filter = hit[i];
        T_ASSERT_OK(quarry_search(c, v1, 3, 5, &p, &res));
        T_ASSERT_EQ(quarry_result_count(res), 1);
        quarry_result_free(res);
    }
    for (int i = 0; i < 4; i++) {
        p.filter = miss[i];
        T_ASSERT_OK(quarry_search(c, v1, 3, 5, &p, &res));
        T_ASSERT_EQ(quarry_result_count(res), 0);
        quarry_result_free(res);
    }
    /* a batch mixing upserts and deletes of the same id applies in order */
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));
    quarry_row x = {.id = "x", .vector = v1, .dim = 3};
    T_ASSERT_OK(quarry_batch_upsert(b, &x));
    T_ASSERT_OK(quarry_batch_delete(b, "x", 0));
    quarry_row y = {.id = "y", .vector = v2, .dim = 3};
    T_ASSERT_OK(quarry_batch_delete(b, "y", 0));
    T_ASSERT_OK(quarry_batch_upsert(b, &y));
    T_ASSERT_EQ(quarry_batch_count(b), 4);
    T_ASSERT_OK(quarry_batch_commit(b));
    T_ASSERT_EQ(quarry_batch_count(b), 0);
    quarry_batch_free(b);
    T_ASSERT_RC(quarry_get(c, "x", 0, &d), QUARRY_NOTFOUND);
    T_ASSERT_OK(quarry_get(c, "y", 0, &d));
    quarry_doc_free(d);
    quarry_collection_close(c);

    /* text-only collection */
    quarry_coll *t = tdb_coll(db, "texts", 0, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    quarry_row tr = {.id = "t1", .text = "hello"};
    T_ASSERT_OK(quarry_upsert(t, &tr, 1));
    tr.vector = v1, tr.dim = 3;
    T_ASSERT_RC(quarry_upsert(t, &tr, 1), QUARRY_MISMATCH);
    T_ASSERT_RC(quarry_search(t, v1, 3, 1, NULL, &res), QUARRY_INVALID);
    quarry_collection_close(t);

    /* drop, handles see NOTFOUND, recreate the same name empty */
    quarry_coll *h;
    T_ASSERT_OK(quarry_collection_open(db, "texts", &h));
    T_ASSERT_OK(quarry_collection_drop(db, "texts"));
    T_ASSERT_RC(quarry_get(h, "t1", 0, &d), QUARRY_NOTFOUND);
    T_ASSERT_RC(quarry_upsert(h, &(quarry_row){.id = "z"}, 1), QUARRY_NOTFOUND);
    quarry_collection_close(h);
    t = tdb_coll(db, "texts", 0, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    T_ASSERT_RC(quarry_get(t, "t1", 0, &d), QUARRY_NOTFOUND);
    quarry_collection_close(t);
    T_ASSERT_OK(quarry_close(db));

    /* read-only: reads work, writes say READONLY */
    quarry_options o;
    quarry_options_init(&o);
    o.read_only = 1;
    T_ASSERT_OK(quarry_open(dir, &o, &db));
    T_ASSERT_OK(quarry_collection_open(db, "rows", &c));
    T_ASSERT_OK(quarry_get(c, "y", 0, &d));
    quarry_doc_free(d);
    T_ASSERT_RC(quarry_upsert(c, &y, 1), QUARRY_READONLY);
    T_ASSERT_RC(quarry_collection_drop(db, "rows"), QUARRY_READONLY);
    quarry_collection_close(c);
    char **names;
    size_t n;
    T_ASSERT_OK(quarry_collection_list(db, &names, &n));
    T_ASSERT(n >= 2 && !strcmp(names[0], "cosine"));
    quarry_free(names);
    quarry_close(db);
}

static void test_durability_policies(const char *dir) {
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_coll *c[3];
    const char *names[] = {"d-sync", "d-interval", "d-none"};
    for (int i = 0; i < 3; i++) {
        c[i] = tdb_coll(db, names[i], 8, QUARRY_METRIC_L2, (quarry_durability)i);
        for (int b = 0; b < 20; b++) T_ASSERT_OK(tdb_upsert_range(c[i], b * 10, 10, 1, 8));
    }
    quarry_coll_stats st;
    T_ASSERT_OK(quarry_collection_stats(c[0], &st));
    T_ASSERT(st.syncs >= 20); /* one per sequential batch */
    T_ASSERT_OK(quarry_collection_stats(c[2], &st));
    T_ASSERT_EQ(st.syncs, 0);
    T_ASSERT_OK(quarry_sync(db));
    T_ASSERT_OK(quarry_collection_stats(c[2], &st));
    T_ASSERT_EQ(st.syncs, 1);
    for (int i = 0; i < 3; i++) quarry_collection_close(c[i]);
    quarry_close(db);
    db = tdb_open(dir, "uring", 0);
    for (int i = 0; i < 3; i++) {
        T_ASSERT_OK(quarry_collection_open(db, names[i], &c[i]));
        for (uint64_t k = 0; k < 200; k++) tdb_check_row(c[i], k, 1, 8);
        quarry_collection_close(c[i]);
    }
    quarry_close(db);
}

int main(void) {
    char *dir = t_tmpdir("api");
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    test_metrics(dir);
    test_rows_and_replace(dir);
    test_durability_policies(dir);
    t_rmdir(dir);
    free(dir);
    printf("api basic: ok\n");
    return 0;
}
