/* SPDX-License-Identifier: MIT */
/*
 * Bad input always gets the documented error and a message, and changes
 * nothing: after each rejected call, stats and get prove the collection is
 * exactly as before (and still is after a reopen).
 */
#include "t.h"
#include "tdb.h"

#include <math.h>

#define DIM 4

static quarry_coll_stats stats_of(quarry_coll *c) {
    quarry_coll_stats st;
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    return st;
}

static void assert_unchanged(quarry_coll *c, const quarry_coll_stats *before) {
    quarry_coll_stats now = stats_of(c);
    T_ASSERT_EQ(now.rows, before->rows);
    T_ASSERT_EQ(now.last_lsn, before->last_lsn);
    T_ASSERT_EQ(now.disk_bytes, before->disk_bytes);
    tdb_check_row(c, 0, 1, DIM);
    tdb_check_row(c, 1, 1, DIM);
}

/* The rc must match and the message must say something. */
static char g_msg[1024]; /* the rejected call's message (checks below clear it) */
#define T_REJECT(expr, want)                                                  \
    do {                                                                      \
        T_ASSERT_RC(expr, want);                                              \
        T_ASSERT(quarry_errmsg()[0] != 0);                                    \
        snprintf(g_msg, sizeof g_msg, "%s", quarry_errmsg());                 \
        assert_unchanged(c, &before);                                         \
    } while (0)

int main(void) {
    char *dir = t_tmpdir("validation");
    quarry_db *db = tdb_open(dir, "posix", 0);
    quarry_coll *c = tdb_coll(db, "v", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    T_ASSERT_OK(tdb_upsert_range(c, 0, 2, 1, DIM));
    quarry_coll_stats before = stats_of(c);

    float good[DIM] = {1, 2, 3, 4}, five[5] = {1, 2, 3, 4, 5};
    float nan_v[DIM] = {1, NAN, 3, 4}, inf_v[DIM] = {1, 2, INFINITY, 4};
    quarry_row r = {.id = "new", .vector = good, .dim = DIM};

    /* wrong dimension, NaN, Inf */
    r.vector = five, r.dim = 5;
    T_REJECT(quarry_upsert(c, &r, 1), QUARRY_MISMATCH);
    T_ASSERT(strstr(g_msg, "dim") != NULL);
    r.vector = nan_v, r.dim = DIM;
    T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
    T_ASSERT(strstr(g_msg, "NaN") != NULL);
    r.vector = inf_v;
    T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
    r.vector = NULL, r.dim = DIM;
    T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
    r.vector = good;

    /* ids: empty, oversize, invalid UTF-8 (overlong, surrogate, truncated) */
    char big[QUARRY_MAX_ID_LEN + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    r.id = big;
    T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
    T_ASSERT(strstr(g_msg, "256") != NULL);
    big[QUARRY_MAX_ID_LEN] = 0; /* exactly the limit is fine (checked below) */
    const char *bad_utf8[] = {"\xc0\xaf", "\xed\xa0\x80", "abc\xe2\x82", "\xff", "\xf5\x80\x80\x80"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        r.id = bad_utf8[i];
        T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
        T_ASSERT(strstr(g_msg, "UTF-8") != NULL);
    }
    r.id = "";
    r.id_len = 0;
    T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
    r.id = "new";

    /* text must be UTF-8 */
    r.text = "caf\xe9";
    T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
    r.text = NULL;

    /* metadata: not JSON, not an object, nested, bad arrays, duplicates */
    const char *bad_meta[] = {"{", "[1,2]", "\"s\"", "{\"a\":{\"b\":1}}", "{\"a\":[1,2]}",
                              "{\"a\":null}", "{\"a\":1,\"a\":2}", "{\"\":1}", "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof bad_meta / sizeof *bad_meta; i++) {
        r.metadata = bad_meta[i];
        T_REJECT(quarry_upsert(c, &r, 1), QUARRY_INVALID);
    }
    r.metadata = NULL;

    /* a bad row anywhere in a batch rejects the whole batch, naming the row */
    quarry_row batch[3] = {{.id = "b0", .vector = good, .dim = DIM},
                           {.id = "b1", .vector = good, .dim = DIM},
                           {.id = "b2", .vector = nan_v, .dim = DIM}};
    T_REJECT(quarry_upsert(c, batch, 3), QUARRY_INVALID);
    T_ASSERT(strstr(g_msg, "row 2") != NULL);
    quarry_doc *d = NULL;
    T_ASSERT_RC(quarry_get(c, "b0", 0, &d), QUARRY_NOTFOUND);

    /* search: k = 0, k too large, wrong dim, NaN query, bad filters */
    quarry_result *res = NULL;
    T_REJECT(quarry_search(c, good, DIM, 0, NULL, &res), QUARRY_INVALID);
    T_ASSERT(res == NULL);
    T_REJECT(quarry_search(c, good, DIM, QUARRY_MAX_K + 1, NULL, &res), QUARRY_INVALID);
    T_REJECT(quarry_search(c, five, 5, 3, NULL, &res), QUARRY_MISMATCH);
    T_REJECT(quarry_search(c, nan_v, DIM, 3, NULL, &res), QUARRY_INVALID);
    T_REJECT(quarry_search(c, NULL, DIM, 3, NULL, &res), QUARRY_INVALID);
    quarry_search_params p;
    quarry_search_params_init(&p);
    const char *bad_filters[] = {"{", "[]", "{\"a\":{\"$gt\":1}}", "{\"a\":[1]}", "nul"};
    for (size_t i = 0; i < sizeof bad_filters / sizeof *bad_filters; i++) {
        p.filter = bad_filters[i];
        T_REJECT(quarry_search(c, good, DIM, 3, &p, &res), QUARRY_INVALID);
    }

    /* unknown collection, bad names, bad config, duplicates */
    quarry_coll *c2 = NULL;
    T_ASSERT_RC(quarry_collection_open(db, "nope", &c2), QUARRY_NOTFOUND);
    T_ASSERT_RC(quarry_collection_drop(db, "nope"), QUARRY_NOTFOUND);
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = 3;
    const char *bad_names[] = {"", "has space", "slash/x", "dot.x",
                               "ab123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        T_ASSERT_RC(quarry_collection_create(db, bad_names[i], &cfg, &c2), QUARRY_INVALID);
    T_ASSERT_RC(quarry_collection_create(db, "v", &cfg, &c2), QUARRY_EXISTS);
    cfg.dim = QUARRY_MAX_DIM + 1;
    T_ASSERT_RC(quarry_collection_create(db, "big", &cfg, &c2), QUARRY_INVALID);
    cfg.dim = 3;
    cfg.metric = (quarry_metric)7;
    T_ASSERT_RC(quarry_collection_create(db, "m", &cfg, &c2), QUARRY_INVALID);
    quarry_collection_config_init(&cfg);
    cfg.dim = 3;
    cfg.durability = QUARRY_DURABILITY_INTERVAL;
    cfg.interval_ms = 0;
    T_ASSERT_RC(quarry_collection_create(db, "iv", &cfg, &c2), QUARRY_INVALID);
    char **names;
    size_t n;
    T_ASSERT_OK(quarry_collection_list(db, &names, &n));
    T_ASSERT_EQ(n, 1);
    quarry_free(names);

    /* misuse: NULL handles never crash */
    T_ASSERT_RC(quarry_upsert(NULL, &r, 1), QUARRY_MISUSE);
    T_ASSERT_RC(quarry_get(NULL, "x", 0, &d), QUARRY_MISUSE);
    T_ASSERT_RC(quarry_search(NULL, good, DIM, 1, NULL, &res), QUARRY_MISUSE);
    T_ASSERT_RC(quarry_collection_stats(NULL, &before), QUARRY_MISUSE);
    quarry_collection_close(NULL);
    quarry_batch_free(NULL);
    quarry_result_free(NULL);
    quarry_doc_free(NULL);

    /* a zero vector in a cosine collection has no direction */
    quarry_coll *cc = tdb_coll(db, "cos", DIM, QUARRY_METRIC_COSINE, QUARRY_DURABILITY_SYNC);
    float zero[DIM] = {0};
    quarry_row zr = {.id = "z", .vector = zero, .dim = DIM};
    T_ASSERT_RC(quarry_upsert(cc, &zr, 1), QUARRY_INVALID);
    quarry_collection_close(cc);

    /* the boundary values are accepted */
    r.id = big;
    r.id_len = 0;
    T_ASSERT_OK(quarry_upsert(c, &r, 1));
    T_ASSERT_OK(quarry_get(c, big, 0, &d));
    quarry_doc_free(d);

    /* and after a reopen the rejected calls left no trace */
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    db = tdb_open(dir, "posix", 0);
    T_ASSERT_OK(quarry_collection_open(db, "v", &c));
    quarry_coll_stats st = stats_of(c);
    T_ASSERT_EQ(st.rows, 3);
    tdb_check_row(c, 0, 1, DIM);
    tdb_check_row(c, 1, 1, DIM);
    quarry_collection_close(c);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
    printf("validation: ok\n");
    return 0;
}
