/* SPDX-License-Identifier: MIT */
/*
 * Partial updates (quarry_batch_update, quarry_update): attaching a vector to
 * a text-only row, changing only the metadata (filters follow) or only the
 * text (BM25 follows), clearing a field, a missing row (NOTFOUND, nothing
 * written), merging with earlier operations of the same batch, validation,
 * every index kind and metric (a kept vector is copied as stored), replay
 * after a reopen, compaction, and concurrent updaters of different fields of
 * the same rows that must never lose each other's changes.
 */
#include "t.h"
#include "tdb.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#define DIM 8

static const char *io_name(void) { return tdb_uring_ok() ? "uring" : "posix"; }

static quarry_coll *mk(quarry_db *db, const char *name, uint32_t dim, quarry_metric metric,
                       quarry_index_kind kind, quarry_durability dur) {
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = dim;
    cfg.metric = metric;
    cfg.index = kind;
    cfg.durability = dur;
    if (kind == QUARRY_INDEX_IVFPQ) {
        cfg.ivf_nlist = 8;
        cfg.pq_m = 4;
        cfg.ivf_train_rows = 1000000; /* trained by hand */
    }
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_create(db, name, &cfg, &c));
    return c;
}

static void vec_of(int key, int version, float *v) {
    uint64_t s = (uint64_t)key * 7919u + (uint64_t)version * 104729u + 17;
    for (int i = 0; i < DIM; i++) v[i] = t_randf(&s);
}

static void normalise(float *v) {
    double n = 0;
    for (int i = 0; i < DIM; i++) n += (double)v[i] * v[i];
    n = sqrt(n);
    for (int i = 0; i < DIM; i++) v[i] = (float)(v[i] / n);
}

/* The row `id` holds exactly these fields (NULL = absent). A vector is
 * compared with a tolerance (cosine rows hold the normalised vector). */
static void expect_row(quarry_coll *c, const char *id, const float *vec, const char *text,
                       const char *meta) {
    quarry_doc *d;
    int rc = quarry_get(c, id, 0, &d);
    if (rc) T_FAIL("get '%s': %s", id, quarry_errmsg());
    uint32_t dim;
    const float *v = quarry_doc_vector(d, &dim);
    if (!vec != !v) T_FAIL("row '%s' %s a vector", id, v ? "has" : "has no");
    if (vec) {
        T_ASSERT_EQ(dim, DIM);
        for (int i = 0; i < DIM; i++)
            if (fabsf(v[i] - vec[i]) > 1e-5f)
                T_FAIL("row '%s' vector[%d] = %g, want %g", id, i, v[i], vec[i]);
    }
    const char *t = quarry_doc_text(d, NULL), *m = quarry_doc_metadata(d, NULL);
    if (!text != !t) T_FAIL("row '%s' text is %s", id, t ? t : "(none)");
    if (text) T_ASSERT_STREQ(t, text);
    if (!meta != !m) T_FAIL("row '%s' metadata is %s", id, m ? m : "(none)");
    if (meta) T_ASSERT_STREQ(m, meta);
    quarry_doc_free(d);
}

static void expect_missing(quarry_coll *c, const char *id) {
    quarry_doc *d = NULL;
    T_ASSERT_RC(quarry_get(c, id, 0, &d), QUARRY_NOTFOUND);
}

static quarry_coll_stats stats(quarry_coll *c) {
    quarry_coll_stats st;
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    return st;
}

/* The nearest row to v (NULL when none) and its distance. */
static char *nearest(quarry_coll *c, const float *v, const char *filter, float *dist) {
    quarry_search_params p;
    quarry_search_params_init(&p);
    p.filter = filter;
    quarry_result *r;
    T_ASSERT_OK(quarry_search(c, v, DIM, 5, &p, &r));
    char *id = quarry_result_count(r) ? strdup(quarry_result_id(r, 0, NULL)) : NULL;
    *dist = id ? quarry_result_distance(r, 0) : INFINITY;
    quarry_result_free(r);
    return id;
}

/* The row found at distance 0 from v is `want` (NULL: no row is). */
static void expect_nearest(quarry_coll *c, const float *v, const char *filter, const char *want) {
    float dist;
    char *got = nearest(c, v, filter, &dist);
    if (got && fabsf(dist) > 1e-4f) {
        free(got);
        got = NULL;
    }
    if (!want != !got || (want && strcmp(got, want)))
        T_FAIL("nearest%s%s is %s, want %s", filter ? " with " : "", filter ? filter : "",
               got ? got : "(none)", want ? want : "(none)");
    free(got);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ids found by a BM25 query (and a filter), sorted, as "a,b,". */
static void text_ids(quarry_coll *c, const char *text, const char *filter, char *out, size_t cap) {
    quarry_query *q;
    T_ASSERT_OK(quarry_query_new(c, &q));
    T_ASSERT_OK(quarry_query_text(q, text, 0, 0, 0, 0));
    if (filter) T_ASSERT_OK(quarry_query_filter(q, filter));
    T_ASSERT_OK(quarry_query_limit(q, 50, 0));
    quarry_result *r;
    T_ASSERT_OK(quarry_query_run(q, &r));
    size_t len = 0, n = quarry_result_count(r);
    const char **ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = quarry_result_id(r, i, NULL);
    qsort(ids, n, sizeof *ids, cmp_str);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(out + len, cap - len, "%s,", ids[i]);
    free(ids);
    quarry_result_free(r);
    quarry_query_free(q);
}

static void expect_text(quarry_coll *c, const char *text, const char *filter, const char *want) {
    char got[1024];
    text_ids(c, text, filter, got, sizeof got);
    if (strcmp(got, want))
        T_FAIL("text query '%s'%s%s finds '%s', want '%s'", text, filter ? " with " : "",
               filter ? filter : "", got, want);
}

/* ------------------------------------------------------------ single fields */

static void test_fields(quarry_db *db) {
    quarry_coll *c =
        mk(db, "fields", DIM, QUARRY_METRIC_L2, QUARRY_INDEX_FLAT, QUARRY_DURABILITY_SYNC);
    float va[DIM], vb[DIM], vb2[DIM];
    vec_of(1, 1, va), vec_of(2, 1, vb), vec_of(2, 2, vb2);
    quarry_row rows[2] = {
        {.id = "a", .text = "alpha bravo", .metadata = "{\"color\":\"red\",\"n\":1}"},
        {.id = "b",
         .vector = vb,
         .dim = DIM,
         .text = "charlie delta",
         .metadata = "{\"color\":\"red\",\"n\":2}"}};
    T_ASSERT_OK(quarry_upsert(c, rows, 2));
    T_ASSERT_EQ(stats(c).rows_with_vector, 1);

    /* attach a vector to the text-only row: text and metadata stay */
    quarry_row up = {.id = "a", .vector = va, .dim = DIM};
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_VECTOR));
    expect_row(c, "a", va, "alpha bravo", "{\"color\":\"red\",\"n\":1}");
    quarry_coll_stats st = stats(c);
    T_ASSERT_EQ(st.rows, 2);
    T_ASSERT_EQ(st.rows_with_vector, 2);
    expect_nearest(c, va, NULL, "a");
    expect_nearest(c, va, "{\"color\":\"red\"}", "a");
    expect_text(c, "alpha", NULL, "a,");

    /* metadata only: filters see the new value, not the old one */
    up = (quarry_row){.id = "a", .metadata = "{\"color\":\"blue\",\"n\":1}"};
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_METADATA));
    expect_row(c, "a", va, "alpha bravo", "{\"color\":\"blue\",\"n\":1}");
    expect_nearest(c, va, "{\"color\":\"blue\"}", "a");
    expect_nearest(c, va, "{\"color\":\"red\"}", NULL);
    float dist;
    char *got = nearest(c, va, "{\"color\":\"red\"}", &dist);
    T_ASSERT(got && !strcmp(got, "b")); /* the only red row now */
    free(got);
    expect_text(c, "alpha charlie", "{\"color\":\"red\"}", "b,");
    expect_text(c, "alpha charlie", "{\"color\":\"blue\"}", "a,");

    /* text only: BM25 finds the new words, not the old ones */
    up = (quarry_row){.id = "a", .text = "echo foxtrot"};
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_TEXT));
    expect_row(c, "a", va, "echo foxtrot", "{\"color\":\"blue\",\"n\":1}");
    expect_text(c, "alpha", NULL, "");
    expect_text(c, "bravo", NULL, "");
    expect_text(c, "foxtrot", NULL, "a,");
    expect_nearest(c, va, NULL, "a");

    /* two fields at once; a field not named is ignored even when set */
    up = (quarry_row){
        .id = "b", .vector = vb2, .dim = DIM, .text = "golf", .metadata = "{\"color\":\"green\"}"};
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_VECTOR | QUARRY_FIELD_METADATA));
    expect_row(c, "b", vb2, "charlie delta", "{\"color\":\"green\"}");
    expect_nearest(c, vb2, NULL, "b");
    expect_nearest(c, vb2, "{\"color\":\"green\"}", "b");
    expect_text(c, "golf", NULL, "");

    /* clear fields: a NULL field named in the mask */
    up = (quarry_row){.id = "a"};
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_TEXT));
    expect_row(c, "a", va, NULL, "{\"color\":\"blue\",\"n\":1}");
    expect_text(c, "foxtrot", NULL, "");
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_METADATA));
    expect_row(c, "a", va, NULL, NULL);
    expect_nearest(c, va, "{\"color\":\"blue\"}", NULL);
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_VECTOR));
    expect_row(c, "a", NULL, NULL, NULL);
    st = stats(c);
    T_ASSERT_EQ(st.rows, 2);
    T_ASSERT_EQ(st.rows_with_vector, 1);
    got = nearest(c, va, NULL, &dist);
    T_ASSERT(got && !strcmp(got, "b")); /* "a" has no vector any more */
    free(got);
    /* and back: every field from an empty row */
    up = (quarry_row){
        .id = "a", .vector = va, .dim = DIM, .text = "hotel", .metadata = "{\"k\":[\"x\",\"y\"]}"};
    T_ASSERT_OK(
        quarry_update(c, &up, 1, QUARRY_FIELD_VECTOR | QUARRY_FIELD_TEXT | QUARRY_FIELD_METADATA));
    expect_row(c, "a", va, "hotel", "{\"k\":[\"x\",\"y\"]}");
    expect_nearest(c, va, "{\"k\":\"y\"}", "a");
    /* an empty text is a text (not a cleared one) */
    up = (quarry_row){.id = "a", .text = ""};
    T_ASSERT_OK(quarry_update(c, &up, 1, QUARRY_FIELD_TEXT));
    expect_row(c, "a", va, "", "{\"k\":[\"x\",\"y\"]}");
    quarry_collection_close(c);
}

/* ------------------------------------------------------------ missing rows */

static void test_missing(quarry_db *db) {
    quarry_coll *c =
        mk(db, "missing", DIM, QUARRY_METRIC_L2, QUARRY_INDEX_FLAT, QUARRY_DURABILITY_SYNC);
    float v[DIM];
    vec_of(3, 1, v);
    quarry_row r = {.id = "here", .text = "present", .metadata = "{\"n\":1}"};
    T_ASSERT_OK(quarry_upsert(c, &r, 1));
    quarry_coll_stats before = stats(c);

    quarry_row up = {.id = "ghost", .vector = v, .dim = DIM};
    T_ASSERT_RC(quarry_update(c, &up, 1, QUARRY_FIELD_VECTOR), QUARRY_NOTFOUND);
    T_ASSERT(strstr(quarry_errmsg(), "'ghost'") != NULL);

    /* a batch with good operations and one update of a missing row: none lands */
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));
    quarry_row fresh = {.id = "fresh", .text = "new row"};
    quarry_row ok = {.id = "here", .vector = v, .dim = DIM};
    T_ASSERT_OK(quarry_batch_upsert(b, &fresh));
    T_ASSERT_OK(quarry_batch_update(b, &ok, QUARRY_FIELD_VECTOR));
    T_ASSERT_OK(quarry_batch_delete(b, "here", 0));
    T_ASSERT_OK(quarry_batch_update(b, &up, QUARRY_FIELD_VECTOR));
    T_ASSERT_EQ(quarry_batch_count(b), 4);
    T_ASSERT_RC(quarry_batch_commit(b), QUARRY_NOTFOUND);
    T_ASSERT(strstr(quarry_errmsg(), "ghost") != NULL);
    T_ASSERT_EQ(quarry_batch_count(b), 0); /* emptied, reusable */

    /* update after a delete of the same batch: missing */
    T_ASSERT_OK(quarry_batch_delete(b, "here", 0));
    T_ASSERT_OK(quarry_batch_update(b, &ok, QUARRY_FIELD_VECTOR));
    T_ASSERT_RC(quarry_batch_commit(b), QUARRY_NOTFOUND);
    T_ASSERT(strstr(quarry_errmsg(), "deleted earlier in the batch") != NULL);

    quarry_coll_stats after = stats(c);
    T_ASSERT_EQ(after.rows, before.rows);
    T_ASSERT_EQ(after.rows_with_vector, before.rows_with_vector);
    T_ASSERT_EQ(after.dead_rows, before.dead_rows);
    T_ASSERT_EQ(after.last_lsn, before.last_lsn);
    T_ASSERT_EQ(after.batches, before.batches);
    expect_row(c, "here", NULL, "present", "{\"n\":1}");
    expect_missing(c, "fresh");
    expect_missing(c, "ghost");

    /* the batch still works */
    T_ASSERT_OK(quarry_batch_update(b, &ok, QUARRY_FIELD_VECTOR));
    T_ASSERT_OK(quarry_batch_commit(b));
    expect_row(c, "here", v, "present", "{\"n\":1}");
    quarry_batch_free(b);
    quarry_collection_close(c);
}

/* ------------------------------------------------------------ same batch */

static void test_same_batch(quarry_db *db) {
    quarry_coll *c =
        mk(db, "same", DIM, QUARRY_METRIC_L2, QUARRY_INDEX_FLAT, QUARRY_DURABILITY_SYNC);
    float v1[DIM], v2[DIM];
    vec_of(4, 1, v1), vec_of(4, 2, v2);
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));

    /* upsert then update of the new row, then a second update */
    quarry_row r = {.id = "n1", .text = "november one", .metadata = "{\"a\":1}"};
    T_ASSERT_OK(quarry_batch_upsert(b, &r));
    quarry_row u = {.id = "n1", .vector = v1, .dim = DIM};
    T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR));
    u = (quarry_row){.id = "n1", .metadata = "{\"a\":2}"};
    T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_METADATA));
    T_ASSERT_OK(quarry_batch_commit(b));
    expect_row(c, "n1", v1, "november one", "{\"a\":2}");
    T_ASSERT_EQ(stats(c).rows, 1);

    /* update of a stored row, then a whole-row upsert replaces it, then an update */
    u = (quarry_row){.id = "n1", .text = "changed"};
    T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_TEXT));
    r = (quarry_row){.id = "n1", .vector = v2, .dim = DIM};
    T_ASSERT_OK(quarry_batch_upsert(b, &r));
    u = (quarry_row){.id = "n1", .metadata = "{\"a\":3}"};
    T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_METADATA));
    T_ASSERT_OK(quarry_batch_commit(b));
    expect_row(c, "n1", v2, NULL, "{\"a\":3}");

    /* delete, upsert again, update: the re-created row is updated */
    T_ASSERT_OK(quarry_batch_delete(b, "n1", 0));
    r = (quarry_row){.id = "n1", .text = "reborn"};
    T_ASSERT_OK(quarry_batch_upsert(b, &r));
    u = (quarry_row){.id = "n1", .vector = v1, .dim = DIM};
    T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR));
    T_ASSERT_OK(quarry_batch_commit(b));
    expect_row(c, "n1", v1, "reborn", NULL);
    expect_nearest(c, v1, NULL, "n1");

    /* update then delete in the same batch: gone */
    u = (quarry_row){.id = "n1", .text = "doomed"};
    T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_TEXT));
    T_ASSERT_OK(quarry_batch_delete(b, "n1", 0));
    T_ASSERT_OK(quarry_batch_commit(b));
    expect_missing(c, "n1");
    quarry_coll_stats st = stats(c);
    T_ASSERT_EQ(st.rows, 0);
    T_ASSERT_EQ(st.rows_with_vector, 0);

    /* many rows, several updates each, in one batch */
    for (int i = 0; i < 40; i++) {
        char id[16], text[32];
        snprintf(id, sizeof id, "m%d", i);
        snprintf(text, sizeof text, "row %d", i);
        r = (quarry_row){.id = id, .text = text};
        T_ASSERT_OK(quarry_batch_upsert(b, &r));
    }
    T_ASSERT_OK(quarry_batch_commit(b));
    for (int i = 0; i < 40; i++) {
        char id[16], meta[32];
        float v[DIM];
        snprintf(id, sizeof id, "m%d", i);
        snprintf(meta, sizeof meta, "{\"i\":%d}", i);
        vec_of(100 + i, 1, v);
        u = (quarry_row){.id = id, .vector = v, .dim = DIM};
        T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR));
        u = (quarry_row){.id = id, .metadata = meta};
        T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_METADATA));
    }
    T_ASSERT_OK(quarry_batch_commit(b));
    for (int i = 0; i < 40; i++) {
        char id[16], text[32], meta[32];
        float v[DIM];
        snprintf(id, sizeof id, "m%d", i);
        snprintf(text, sizeof text, "row %d", i);
        snprintf(meta, sizeof meta, "{\"i\":%d}", i);
        vec_of(100 + i, 1, v);
        expect_row(c, id, v, text, meta);
    }
    T_ASSERT_EQ(stats(c).rows, 40);
    quarry_batch_free(b);
    quarry_collection_close(c);
}

/* ------------------------------------------------------------ validation */

static void test_invalid(quarry_db *db) {
    quarry_coll *c =
        mk(db, "invalid", DIM, QUARRY_METRIC_COSINE, QUARRY_INDEX_FLAT, QUARRY_DURABILITY_SYNC);
    quarry_coll *t =
        mk(db, "textonly", 0, QUARRY_METRIC_L2, QUARRY_INDEX_FLAT, QUARRY_DURABILITY_SYNC);
    float v[DIM], zero[DIM] = {0};
    vec_of(5, 1, v);
    quarry_row r = {.id = "x", .text = "x"};
    T_ASSERT_OK(quarry_upsert(c, &r, 1));
    T_ASSERT_OK(quarry_upsert(t, &r, 1));
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));
    quarry_row u = {.id = "x", .vector = v, .dim = DIM};
    T_ASSERT_RC(quarry_batch_update(b, &u, 0), QUARRY_INVALID);
    T_ASSERT_RC(quarry_batch_update(b, &u, 8), QUARRY_INVALID);
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR | 0x100), QUARRY_INVALID);
    T_ASSERT_RC(quarry_update(c, &u, 1, 0), QUARRY_INVALID);
    T_ASSERT_RC(quarry_update(c, NULL, 0, 16), QUARRY_INVALID);
    T_ASSERT_RC(quarry_batch_update(NULL, &u, QUARRY_FIELD_VECTOR), QUARRY_MISUSE);
    T_ASSERT_RC(quarry_batch_update(b, NULL, QUARRY_FIELD_VECTOR), QUARRY_MISUSE);
    u.dim = DIM - 1;
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR), QUARRY_MISMATCH);
    u.dim = DIM;
    float nan_v[DIM];
    memcpy(nan_v, v, sizeof v);
    nan_v[3] = NAN;
    u.vector = nan_v;
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR), QUARRY_INVALID);
    nan_v[3] = INFINITY;
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR), QUARRY_INVALID);
    u.vector = zero; /* no cosine direction */
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR), QUARRY_INVALID);
    u = (quarry_row){.id = "x", .dim = DIM};
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR), QUARRY_INVALID);
    u = (quarry_row){.id = "x", .text = "bad \xff utf8"};
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_TEXT), QUARRY_INVALID);
    u = (quarry_row){.id = "x", .metadata = "{\"a\":"};
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_METADATA), QUARRY_INVALID);
    u = (quarry_row){.id = "x", .metadata = "[1,2]"};
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_METADATA), QUARRY_INVALID);
    u = (quarry_row){.id = "", .text = "y"};
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_TEXT), QUARRY_INVALID);
    u = (quarry_row){.id = NULL, .text = "y"};
    T_ASSERT_RC(quarry_batch_update(b, &u, QUARRY_FIELD_TEXT), QUARRY_INVALID);
    T_ASSERT_EQ(quarry_batch_count(b), 0); /* nothing was added */
    /* fields not named are not looked at */
    u = (quarry_row){.id = "x",
                     .vector = v,
                     .dim = DIM,
                     .text = "bad \xff utf8",
                     .text_len = 9,
                     .metadata = "{",
                     .metadata_len = 1};
    T_ASSERT_OK(quarry_batch_update(b, &u, QUARRY_FIELD_VECTOR));
    T_ASSERT_OK(quarry_batch_commit(b));
    quarry_row lone = {.id = "lone", .text = NULL, .text_len = 5}; /* a length, no text */
    T_ASSERT_OK(quarry_upsert(c, &lone, 1));
    expect_row(c, "lone", NULL, NULL, NULL);
    T_ASSERT_OK(quarry_update(c, &lone, 1, QUARRY_FIELD_TEXT));
    expect_row(c, "lone", NULL, NULL, NULL);
    float unit[DIM];
    memcpy(unit, v, sizeof v);
    normalise(unit); /* cosine: the patched vector is normalised */
    expect_row(c, "x", unit, "x", NULL);
    /* the row index is named by quarry_update */
    quarry_row two[2] = {{.id = "x", .vector = v, .dim = DIM}, {.id = "x", .vector = v, .dim = 3}};
    T_ASSERT_RC(quarry_update(c, two, 2, QUARRY_FIELD_VECTOR), QUARRY_MISMATCH);
    T_ASSERT(strstr(quarry_errmsg(), "row 1") != NULL);
    quarry_batch_free(b);

    /* a text-only collection takes no vector, but clearing one is fine */
    u = (quarry_row){.id = "x", .vector = v, .dim = DIM};
    T_ASSERT_RC(quarry_update(t, &u, 1, QUARRY_FIELD_VECTOR), QUARRY_MISMATCH);
    u = (quarry_row){.id = "x"};
    T_ASSERT_OK(quarry_update(t, &u, 1, QUARRY_FIELD_VECTOR));
    u = (quarry_row){.id = "x", .metadata = "{\"t\":true}"};
    T_ASSERT_OK(quarry_update(t, &u, 1, QUARRY_FIELD_METADATA));
    quarry_doc *d;
    T_ASSERT_OK(quarry_get(t, "x", 0, &d));
    T_ASSERT_STREQ(quarry_doc_text(d, NULL), "x");
    T_ASSERT_STREQ(quarry_doc_metadata(d, NULL), "{\"t\":true}");
    quarry_doc_free(d);
    quarry_collection_close(t);
    quarry_collection_close(c);
}

/* ------------------------------------------------------------ index kinds */

#define NK 300

static void kind_meta(int i, int version, char *out, size_t cap) {
    snprintf(out, cap, "{\"g\":\"g%d\",\"v\":%d}", i % 5, version);
}

static void check_kind(quarry_coll *c, quarry_metric metric, int version, int with_text) {
    for (int i = 0; i < NK; i += 7) {
        char id[16], text[32], meta[48];
        float v[DIM];
        snprintf(id, sizeof id, "r%d", i);
        snprintf(text, sizeof text, "word%d common", i);
        kind_meta(i, version, meta, sizeof meta);
        vec_of(i, 1, v);
        if (metric == QUARRY_METRIC_COSINE) normalise(v);
        expect_row(c, id, v, with_text ? text : NULL, meta);
        expect_nearest(c, v, NULL, id);
        char filter[32];
        snprintf(filter, sizeof filter, "{\"g\":\"g%d\"}", i % 5);
        expect_nearest(c, v, filter, id);
        char want[24];
        snprintf(want, sizeof want, "%s,", id);
        snprintf(text, sizeof text, "word%d", i);
        expect_text(c, text, NULL, with_text ? want : "");
    }
}

static void test_kinds(quarry_db *db) {
    static const struct {
        quarry_index_kind kind;
        quarry_metric metric;
        const char *name;
    } K[] = {{QUARRY_INDEX_FLAT, QUARRY_METRIC_L2, "k_flat"},
             {QUARRY_INDEX_HNSW, QUARRY_METRIC_L2, "k_hnsw"},
             {QUARRY_INDEX_IVFPQ, QUARRY_METRIC_L2, "k_ivfpq"},
             {QUARRY_INDEX_FLAT, QUARRY_METRIC_COSINE, "k_flat_cos"},
             {QUARRY_INDEX_HNSW, QUARRY_METRIC_COSINE, "k_hnsw_cos"},
             {QUARRY_INDEX_IVFPQ, QUARRY_METRIC_COSINE, "k_ivfpq_cos"}};
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
        quarry_coll *c = mk(db, K[k].name, DIM, K[k].metric, K[k].kind, QUARRY_DURABILITY_NONE);
        static quarry_row rows[NK];
        static char ids[NK][16], texts[NK][32], metas[NK][48];
        static float vecs[NK][DIM];
        /* text-only rows first (chunks stored without vectors) */
        for (int i = 0; i < NK; i++) {
            snprintf(ids[i], 16, "r%d", i);
            snprintf(texts[i], 32, "word%d common", i);
            kind_meta(i, 0, metas[i], 48);
            rows[i] = (quarry_row){.id = ids[i], .text = texts[i], .metadata = metas[i]};
        }
        T_ASSERT_OK(quarry_upsert(c, rows, NK));
        T_ASSERT_EQ(stats(c).rows_with_vector, 0);
        /* attach every vector in one update batch */
        for (int i = 0; i < NK; i++) {
            vec_of(i, 1, vecs[i]);
            rows[i] = (quarry_row){.id = ids[i], .vector = vecs[i], .dim = DIM};
        }
        T_ASSERT_OK(quarry_update(c, rows, NK, QUARRY_FIELD_VECTOR));
        quarry_coll_stats st = stats(c);
        T_ASSERT_EQ(st.rows, NK);
        T_ASSERT_EQ(st.rows_with_vector, NK);
        if (K[k].kind == QUARRY_INDEX_IVFPQ) {
            T_ASSERT_OK(quarry_collection_train(c, 1));
            T_ASSERT_EQ(stats(c).ivf_rows, NK);
        }
        check_kind(c, K[k].metric, 0, 1);

        /* keep the vectors: they are copied exactly as stored */
        quarry_doc *before;
        T_ASSERT_OK(quarry_get(c, "r7", 0, &before));
        for (int i = 0; i < NK; i++) {
            kind_meta(i, 1, metas[i], 48);
            rows[i] = (quarry_row){.id = ids[i], .metadata = metas[i]};
        }
        T_ASSERT_OK(quarry_update(c, rows, NK, QUARRY_FIELD_METADATA));
        quarry_doc *after;
        T_ASSERT_OK(quarry_get(c, "r7", 0, &after));
        uint32_t d1, d2;
        const float *v1 = quarry_doc_vector(before, &d1), *v2 = quarry_doc_vector(after, &d2);
        T_ASSERT(d1 == DIM && d2 == DIM && memcmp(v1, v2, DIM * sizeof(float)) == 0);
        quarry_doc_free(before);
        quarry_doc_free(after);
        check_kind(c, K[k].metric, 1, 1);

        /* clear the text of every row: BM25 forgets them, vectors stay */
        for (int i = 0; i < NK; i++) rows[i] = (quarry_row){.id = ids[i]};
        T_ASSERT_OK(quarry_update(c, rows, NK, QUARRY_FIELD_TEXT));
        check_kind(c, K[k].metric, 1, 0);
        expect_text(c, "common", NULL, "");
        st = stats(c);
        T_ASSERT_EQ(st.rows, NK);
        T_ASSERT_EQ(st.rows_with_vector, NK);
        quarry_collection_close(c);
    }
}

/* ------------------------------------------------------------ reopen, compaction */

static void check_persist(quarry_coll *c) {
    float v[DIM];
    for (int i = 0; i < 20; i++) {
        char id[16], text[32], meta[32];
        snprintf(id, sizeof id, "p%d", i);
        snprintf(text, sizeof text, "persist %d", i);
        snprintf(meta, sizeof meta, "{\"i\":%d}", i);
        vec_of(200 + i, 1, v);
        expect_row(c, id, i % 4 == 3 ? NULL : v, i % 2 ? text : "changed", meta);
        if (i % 4 != 3) expect_nearest(c, v, NULL, id);
    }
    expect_text(c, "changed", NULL, "p0,p10,p12,p14,p16,p18,p2,p4,p6,p8,");
    quarry_coll_stats st = stats(c);
    T_ASSERT_EQ(st.rows, 20);
    T_ASSERT_EQ(st.rows_with_vector, 15);
}

static void test_persist(const char *dir) {
    quarry_db *db = tdb_open(dir, io_name(), 4096); /* small segments: compaction has work */
    quarry_coll *c =
        mk(db, "persist", DIM, QUARRY_METRIC_L2, QUARRY_INDEX_HNSW, QUARRY_DURABILITY_SYNC);
    for (int i = 0; i < 20; i++) {
        char id[16], text[32];
        snprintf(id, sizeof id, "p%d", i);
        snprintf(text, sizeof text, "persist %d", i);
        quarry_row r = {.id = id, .text = text};
        T_ASSERT_OK(quarry_upsert(c, &r, 1));
    }
    for (int i = 0; i < 20; i++) {
        char id[16], meta[32];
        float v[DIM];
        snprintf(id, sizeof id, "p%d", i);
        snprintf(meta, sizeof meta, "{\"i\":%d}", i);
        vec_of(200 + i, 1, v);
        quarry_row u = {.id = id,
                        .vector = i % 4 == 3 ? NULL : v,
                        .dim = i % 4 == 3 ? 0 : DIM,
                        .metadata = meta};
        T_ASSERT_OK(quarry_update(c, &u, 1, QUARRY_FIELD_VECTOR | QUARRY_FIELD_METADATA));
        if (i % 2 == 0) {
            u = (quarry_row){.id = id, .text = "changed"};
            T_ASSERT_OK(quarry_update(c, &u, 1, QUARRY_FIELD_TEXT));
        }
    }
    check_persist(c);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));

    /* replay: the log holds the merged rows */
    db = tdb_open(dir, io_name(), 4096);
    T_ASSERT_OK(quarry_collection_open(db, "persist", &c));
    check_persist(c);
    T_ASSERT(stats(c).segments > 1);
    /* compaction rewrites the live (merged) rows; all fields survive */
    T_ASSERT_OK(quarry_collection_compact(c, 1));
    quarry_coll_stats st = stats(c);
    T_ASSERT_EQ(st.dead_rows, 0);
    check_persist(c);
    /* an update after compaction, then reopen again */
    quarry_row u = {.id = "p3", .metadata = "{\"i\":3,\"late\":true}"};
    T_ASSERT_OK(quarry_update(c, &u, 1, QUARRY_FIELD_METADATA));
    u = (quarry_row){.id = "p3", .metadata = "{\"i\":3}"};
    T_ASSERT_OK(quarry_update(c, &u, 1, QUARRY_FIELD_METADATA));
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    db = tdb_open(dir, io_name(), 4096);
    T_ASSERT_OK(quarry_collection_open(db, "persist", &c));
    check_persist(c);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
}

/* ------------------------------------------------------------ concurrency */

#define NSHARED 24
#define ROUNDS  150

typedef struct worker {
    quarry_coll *c;
    int field; /* 0 text, 1 metadata, 2 vector; 3 the upsert/delete thread; 4 reader */
    int last;  /* last round committed */
    _Atomic int *stop;
    int failures;
} worker;

static void shared_id(int i, char *out) { snprintf(out, 16, "s%d", i); }

/* Shared row i as the final round leaves it: id, text, metadata, vector. */
static void final_row(int i, char id[16], char text[32], char meta[32], float *v) {
    shared_id(i, id);
    snprintf(text, 32, "text final %d", i);
    snprintf(meta, 32, "{\"m\":%d}", -i);
    vec_of(i, 9999, v);
}

static void *work(void *arg) {
    worker *w = arg;
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(w->c, &b));
    if (w->field == 4) { /* reader: a shared row always has all three fields */
        while (!*w->stop) {
            for (int i = 0; i < NSHARED; i++) {
                char id[16];
                shared_id(i, id);
                quarry_doc *d;
                T_ASSERT_OK(quarry_get(w->c, id, 0, &d));
                if (!quarry_doc_text(d, NULL) || !quarry_doc_metadata(d, NULL) ||
                    !quarry_doc_vector(d, NULL))
                    w->failures++;
                quarry_doc_free(d);
            }
        }
    } else if (w->field == 3) { /* other rows come and go; compactions now and then */
        for (int round = 0; !*w->stop; round++) {
            char id[16];
            float v[DIM];
            snprintf(id, sizeof id, "o%d", round % 10);
            vec_of(round, 9, v);
            quarry_row r = {.id = id, .vector = v, .dim = DIM, .text = "other"};
            T_ASSERT_OK(quarry_batch_upsert(b, &r));
            if (round % 4 == 1) {
                r = (quarry_row){.id = id, .metadata = "{\"o\":1}"};
                T_ASSERT_OK(quarry_batch_update(b, &r, QUARRY_FIELD_METADATA));
            }
            if (round % 3 == 2) T_ASSERT_OK(quarry_batch_delete(b, id, 0));
            T_ASSERT_OK(quarry_batch_commit(b));
            if (round % 50 == 49) T_ASSERT_OK(quarry_collection_compact(w->c, 1));
        }
    } else {
        for (int round = 1; round <= ROUNDS; round++) {
            for (int i = (round % 3) * 8; i < NSHARED; i += 3) { /* a few ids per batch */
                char id[16], text[32], meta[32];
                float v[DIM];
                shared_id(i, id);
                quarry_row r = {.id = id};
                if (w->field == 0) {
                    snprintf(text, sizeof text, "text %d", round);
                    r.text = text;
                } else if (w->field == 1) {
                    snprintf(meta, sizeof meta, "{\"m\":%d}", round);
                    r.metadata = meta;
                } else {
                    vec_of(i, round, v);
                    r.vector = v, r.dim = DIM;
                }
                T_ASSERT_OK(quarry_batch_update(b, &r, 1u << w->field));
            }
            T_ASSERT_OK(quarry_batch_commit(b));
            w->last = round;
        }
        /* a final round over every id, so each field's last value is known */
        for (int i = 0; i < NSHARED; i++) {
            char id[16], text[32], meta[32];
            float v[DIM];
            final_row(i, id, text, meta, v);
            quarry_row r = {.id = id, .vector = v, .dim = DIM, .text = text, .metadata = meta};
            T_ASSERT_OK(quarry_batch_update(b, &r, 1u << w->field));
        }
        T_ASSERT_OK(quarry_batch_commit(b));
    }
    quarry_batch_free(b);
    return NULL;
}

static void test_concurrent(quarry_db *db) {
    quarry_coll *c =
        mk(db, "race", DIM, QUARRY_METRIC_L2, QUARRY_INDEX_HNSW, QUARRY_DURABILITY_NONE);
    for (int i = 0; i < NSHARED; i++) {
        char id[16];
        float v[DIM];
        shared_id(i, id);
        vec_of(i, 0, v);
        quarry_row r = {
            .id = id, .vector = v, .dim = DIM, .text = "text 0", .metadata = "{\"m\":0}"};
        T_ASSERT_OK(quarry_upsert(c, &r, 1));
    }
    _Atomic int stop = 0;
    worker w[5];
    pthread_t th[5];
    for (int i = 0; i < 5; i++) {
        w[i] = (worker){c, i, 0, &stop, 0};
        T_ASSERT(pthread_create(&th[i], NULL, work, &w[i]) == 0);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    stop = 1;
    pthread_join(th[3], NULL);
    pthread_join(th[4], NULL);
    T_ASSERT_EQ(w[4].failures, 0);
    for (int i = 0; i < NSHARED; i++) {
        char id[16], text[32], meta[32];
        float v[DIM];
        final_row(i, id, text, meta, v);
        expect_row(c, id, v, text, meta);
        expect_nearest(c, v, NULL, id);
    }
    expect_text(c, "final", "{\"m\":-5}", "s5,");
    quarry_collection_close(c);
}

int main(void) {
    char *dir = t_tmpdir("update");
    quarry_db *db = tdb_open(dir, io_name(), 0);
    test_fields(db);
    test_missing(db);
    test_same_batch(db);
    test_invalid(db);
    test_kinds(db);
    test_concurrent(db);
    T_ASSERT_OK(quarry_close(db));
    t_rmdir(dir);
    free(dir);
    dir = t_tmpdir("update-persist");
    test_persist(dir);
    t_rmdir(dir);
    free(dir);
    printf("test_update: ok\n");
    return 0;
}
