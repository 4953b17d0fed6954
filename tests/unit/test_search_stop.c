/* SPDX-License-Identifier: MIT */
/*
 * Giving up on a running search: quarry_search_params.deadline_ns/.interrupt
 * and quarry_query_deadline, on every retriever (flat scan, filtered scan,
 * HNSW, IVF-PQ, BM25, hybrid).
 *  - An interrupt function is polled while a large search runs (more than
 *    once: it is an interruption point inside the search, not a check at the
 *    start), and stopping at the N-th poll fails the search with INTERRUPTED
 *    and no result.
 *  - A deadline already past fails with INTERRUPTED_DEADLINE before any work.
 *  - An interrupt that never fires changes nothing: same hits as no params.
 *  - Params sized by the header before these fields still work.
 */
#include "t.h"
#include "tdb.h"

#include <stddef.h>

#define DIM 32
#define ROWS 60000

typedef struct poller {
    int polls;   /* calls so far */
    int stop_at; /* return 1 from this call on (0 = never) */
} poller;

static int poll_fn(void *ctx) {
    poller *p = ctx;
    p->polls++;
    return p->stop_at && p->polls >= p->stop_at;
}

/* Same hits in the same order. */
static void same_hits(const quarry_result *a, const quarry_result *b) {
    T_ASSERT_EQ(quarry_result_count(a), quarry_result_count(b));
    for (size_t i = 0; i < quarry_result_count(a); i++) {
        T_ASSERT_STREQ(quarry_result_id(a, i, NULL), quarry_result_id(b, i, NULL));
        T_ASSERT(quarry_result_distance(a, i) == quarry_result_distance(b, i));
    }
}

/* One vector search with the given knobs: polled several times when left
 * alone, stopped at poll 2, refused at once past a deadline. */
static void check_search(quarry_coll *c, const char *what, quarry_search_params base, uint32_t k) {
    float qv[DIM];
    tdb_vector(987654, 1, DIM, qv);
    quarry_result *ref, *res = NULL;
    T_ASSERT_OK(quarry_search(c, qv, DIM, k, &base, &ref));

    quarry_search_params p = base;
    poller pl = {0, 0};
    p.interrupt = poll_fn, p.interrupt_ctx = &pl;
    T_ASSERT_OK(quarry_search(c, qv, DIM, k, &p, &res));
    same_hits(ref, res);
    quarry_result_free(res);
    if (pl.polls < 3) T_FAIL("%s: interrupt polled %d times during the search", what, pl.polls);
    int seen = pl.polls;

    pl = (poller){0, 2};
    res = NULL;
    T_ASSERT_RC(quarry_search(c, qv, DIM, k, &p, &res), QUARRY_INTERRUPTED);
    T_ASSERT(res == NULL);
    T_ASSERT(strstr(quarry_errmsg(), "interrupted") != NULL);
    if (pl.polls != 2) T_FAIL("%s: polled %d times after asking to stop", what, pl.polls);

    p = base;
    p.deadline_ns = quarry_clock_ns() - 1;
    T_ASSERT_RC(quarry_search(c, qv, DIM, k, &p, &res), QUARRY_INTERRUPTED_DEADLINE);
    T_ASSERT(res == NULL);
    T_ASSERT(strstr(quarry_errmsg(), "deadline") != NULL);

    /* a generous deadline: same answer */
    p.deadline_ns = quarry_clock_ns() + 60ll * 1000000000;
    T_ASSERT_OK(quarry_search(c, qv, DIM, k, &p, &res));
    same_hits(ref, res);
    quarry_result_free(res);
    quarry_result_free(ref);
    printf("%-28s polled %d times\n", what, seen);
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("search_stop");
    quarry_db *db = tdb_open(dir, "uring", 0);

    /* flat: exact scans, whole and filtered */
    quarry_coll *flat = tdb_coll(db, "flat", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_NONE);
    T_ASSERT_OK(tdb_upsert_range(flat, 0, ROWS, 1, DIM));
    quarry_search_params p;
    quarry_search_params_init(&p);
    check_search(flat, "flat scan", p, 10);
    /* three sevenths of the rows, scanned through the filter's bitmap */
    p.filter = "{\"in\":{\"field\":\"g\",\"values\":[\"g1\",\"g2\",\"g3\"]}}";
    check_search(flat, "filtered scan", p, 10);

    /* HNSW: a wide beam */
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = DIM;
    cfg.index = QUARRY_INDEX_HNSW;
    cfg.durability = QUARRY_DURABILITY_NONE;
    quarry_coll *hn;
    T_ASSERT_OK(quarry_collection_create(db, "hnsw", &cfg, &hn));
    T_ASSERT_OK(tdb_upsert_range(hn, 0, 20000, 1, DIM));
    quarry_search_params_init(&p);
    p.ef = 2000;
    check_search(hn, "hnsw ef 2000", p, 10);
    p.filter = "{\"in\":{\"field\":\"g\",\"values\":[\"g1\",\"g2\",\"g3\"]}}";
    check_search(hn, "hnsw filtered", p, 10);

    /* IVF-PQ: every list probed */
    quarry_collection_config_init(&cfg);
    cfg.dim = DIM;
    cfg.index = QUARRY_INDEX_IVFPQ;
    cfg.durability = QUARRY_DURABILITY_NONE;
    cfg.ivf_nlist = 64;
    cfg.pq_m = 8;
    quarry_coll *iv;
    T_ASSERT_OK(quarry_collection_create(db, "ivf", &cfg, &iv));
    T_ASSERT_OK(tdb_upsert_range(iv, 0, 20000, 1, DIM));
    T_ASSERT_OK(quarry_collection_train(iv, 1));
    quarry_search_params_init(&p);
    p.nprobe = 64;
    check_search(iv, "ivfpq nprobe 64", p, 10);

    /* params from the header before the stop fields */
    {
        float qv[DIM];
        tdb_vector(5, 1, DIM, qv);
        quarry_search_params old;
        quarry_search_params_init(&old);
        old.size = offsetof(quarry_search_params, deadline_ns);
        old.deadline_ns = 1; /* beyond the caller's struct: must be ignored */
        quarry_result *r;
        T_ASSERT_OK(quarry_search(flat, qv, DIM, 5, &old, &r));
        T_ASSERT_EQ(quarry_result_count(r), 5);
        quarry_result_free(r);
        old.size = 7;
        T_ASSERT_RC(quarry_search(flat, qv, DIM, 5, &old, &r), QUARRY_MISUSE);
    }

    /* BM25 and hybrid through quarry_query: every row's text matches */
    for (int hybrid = 0; hybrid <= 1; hybrid++) {
        quarry_query *q;
        T_ASSERT_OK(quarry_query_new(flat, &q));
        T_ASSERT_OK(quarry_query_text(q, "row version", 0, 0, 0, 0));
        if (hybrid) {
            float qv[DIM];
            tdb_vector(77, 1, DIM, qv);
            T_ASSERT_OK(quarry_query_vector(q, qv, DIM, 0, 0, 0));
        }
        quarry_result *ref, *res = NULL;
        T_ASSERT_OK(quarry_query_run(q, &ref));
        poller pl = {0, 0};
        T_ASSERT_OK(quarry_query_deadline(q, 0, poll_fn, &pl));
        T_ASSERT_OK(quarry_query_run(q, &res));
        T_ASSERT_EQ(quarry_result_count(res), quarry_result_count(ref));
        for (size_t i = 0; i < quarry_result_count(res); i++)
            T_ASSERT_STREQ(quarry_result_id(res, i, NULL), quarry_result_id(ref, i, NULL));
        quarry_result_free(res);
        if (pl.polls < 3) T_FAIL("text query: interrupt polled %d times", pl.polls);
        printf("%-28s polled %d times\n", hybrid ? "hybrid (scan + bm25)" : "bm25", pl.polls);
        pl = (poller){0, 2};
        res = NULL;
        T_ASSERT_RC(quarry_query_run(q, &res), QUARRY_INTERRUPTED);
        T_ASSERT(res == NULL);
        T_ASSERT_EQ(pl.polls, 2);
        T_ASSERT_OK(quarry_query_deadline(q, quarry_clock_ns() - 1, NULL, NULL));
        T_ASSERT_RC(quarry_query_run(q, &res), QUARRY_INTERRUPTED_DEADLINE);
        T_ASSERT_RC(quarry_query_deadline(q, -5, NULL, NULL), QUARRY_INVALID);
        /* cleared: runs again, and the stopped runs left nothing behind */
        T_ASSERT_OK(quarry_query_deadline(q, 0, NULL, NULL));
        T_ASSERT_OK(quarry_query_run(q, &res));
        T_ASSERT_EQ(quarry_result_count(res), quarry_result_count(ref));
        quarry_result_free(res);
        quarry_result_free(ref);
        quarry_query_free(q);
    }
    T_ASSERT_STREQ(quarry_errstr(QUARRY_INTERRUPTED_DEADLINE), "deadline exceeded");

    quarry_collection_close(iv);
    quarry_collection_close(hn);
    quarry_collection_close(flat);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
    return 0;
}
