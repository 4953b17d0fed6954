/* SPDX-License-Identifier: MIT */
/*
 * Text and hybrid queries through the public API: BM25 ranking (a rare term
 * wins), require-all and phrases, updates and deletes never return stale rows,
 * filters apply to the text retriever, the three fusions compute exactly the
 * documented formulas from each retriever's ranks and raw scores (explain),
 * and results are identical after a reopen (checkpoint) and a compaction.
 */
#include "t.h"
#include "tdb.h"

#include <math.h>

#define DIM 4
#define NDOC 24

static const char *words[] = {"river", "mountain", "forest", "desert", "ocean", "valley",
                              "glacier", "canyon"};

static void doc_text(int i, char *out, size_t cap) {
    snprintf(out, cap, "The %s and the %s near the %s %s", words[i % 8], words[(i / 3) % 8],
             words[(i * 5) % 8], i == 7 ? "volcano erupted" : "lay quiet");
}

static void upsert_docs(quarry_coll *c) {
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));
    for (int i = 0; i < NDOC; i++) {
        char id[16], text[128], meta[64];
        float v[DIM] = {(float)(i % 5), (float)(i % 3), 1.0f, (float)i / NDOC};
        snprintf(id, sizeof id, "d%d", i);
        doc_text(i, text, sizeof text);
        snprintf(meta, sizeof meta, "{\"even\":%s,\"n\":%d}", i % 2 ? "false" : "true", i);
        quarry_row r = {.id = id, .vector = v, .dim = DIM, .text = text, .metadata = meta};
        T_ASSERT_OK(quarry_batch_upsert(b, &r));
    }
    T_ASSERT_OK(quarry_batch_commit(b));
    quarry_batch_free(b);
}

static quarry_result *text_query(quarry_coll *c, const char *text, int all, const char *filter,
                                 uint32_t k) {
    quarry_query *q;
    T_ASSERT_OK(quarry_query_new(c, &q));
    T_ASSERT_OK(quarry_query_text(q, text, 0, 0, all, 0));
    if (filter) T_ASSERT_OK(quarry_query_filter(q, filter));
    T_ASSERT_OK(quarry_query_limit(q, k, 0));
    T_ASSERT_OK(quarry_query_return(q, QUARRY_RETURN_TEXT));
    quarry_result *r;
    T_ASSERT_OK(quarry_query_run(q, &r));
    quarry_query_free(q);
    return r;
}

static char *fingerprint(quarry_coll *c) {
    static const char *qs[] = {"river forest", "volcano", "glacier canyon ocean", "\"the river\""};
    char *out = malloc(1 << 16);
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < 4; i++) {
        quarry_result *r = text_query(c, qs[i], 0, NULL, 10);
        for (size_t j = 0; j < quarry_result_count(r); j++)
            len += (size_t)snprintf(out + len, (1 << 16) - len, "%s:%.6f,",
                                    quarry_result_id(r, j, NULL), quarry_result_score(r, j));
        quarry_result_free(r);
    }
    return out;
}

/* Run a hybrid query returning every candidate, and check the fused score of
 * each hit against the formula applied to the explain data. */
static void check_fusion(quarry_coll *c, quarry_fusion f) {
    quarry_query *q;
    float v[DIM] = {1, 1, 1, 0.5f};
    T_ASSERT_OK(quarry_query_new(c, &q));
    T_ASSERT_OK(quarry_query_vector(q, v, DIM, NDOC, 0, 0.7f));
    T_ASSERT_OK(quarry_query_text(q, "river mountain", 0, NDOC, 0, 0.3f));
    T_ASSERT_OK(quarry_query_fusion(q, f, 0));
    T_ASSERT_OK(quarry_query_limit(q, 2 * NDOC, 0));
    quarry_result *r;
    T_ASSERT_OK(quarry_query_run(q, &r));
    size_t n = quarry_result_count(r);
    T_ASSERT(n >= NDOC); /* every row has a vector */
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY}, sum[2] = {0}, sq[2] = {0};
    int cnt[2] = {0};
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l < 2; l++) {
            uint32_t rank;
            float raw;
            if (quarry_result_explain(r, i, l, &rank, &raw) != 0) continue;
            lo[l] = fmin(lo[l], raw), hi[l] = fmax(hi[l], raw);
            sum[l] += raw, sq[l] += (double)raw * raw, cnt[l]++;
        }
    if (f == QUARRY_FUSION_DBSF)
        for (int l = 0; l < 2; l++) {
            double mean = sum[l] / cnt[l], var = sq[l] / cnt[l] - mean * mean;
            double sd = var > 0 ? sqrt(var) : 0;
            lo[l] = mean - 3 * sd, hi[l] = mean + 3 * sd;
        }
    double w[2] = {0.7, 0.3};
    for (size_t i = 0; i < n; i++) {
        double want = 0;
        for (int l = 0; l < 2; l++) {
            uint32_t rank;
            float raw;
            if (quarry_result_explain(r, i, l, &rank, &raw) != 0) continue;
            if (f == QUARRY_FUSION_RRF) {
                want += w[l] / (60.0 + rank);
            } else {
                double norm = hi[l] > lo[l] ? (raw - lo[l]) / (hi[l] - lo[l]) : 1.0;
                want += w[l] * fmin(1.0, fmax(0.0, norm));
            }
        }
        if (fabs(want - quarry_result_score(r, i)) > 1e-5)
            T_FAIL("fusion %d: hit %zu score %g, formula gives %g", f, i,
                   quarry_result_score(r, i), want);
        if (i) T_ASSERT(quarry_result_score(r, i - 1) >= quarry_result_score(r, i));
    }
    quarry_result_free(r);
    quarry_query_free(q);
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("hybrid");
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_coll *c = tdb_coll(db, "h", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    upsert_docs(c);

    /* the rare term wins; stemming: "erupting" finds "erupted" */
    quarry_result *r = text_query(c, "volcano", 0, NULL, 5);
    T_ASSERT_EQ(quarry_result_count(r), 1);
    T_ASSERT_STREQ(quarry_result_id(r, 0, NULL), "d7");
    T_ASSERT(quarry_result_score(r, 0) > 0);
    quarry_result_free(r);
    r = text_query(c, "erupting volcanoes", 0, NULL, 5);
    T_ASSERT(quarry_result_count(r) == 1 && !strcmp(quarry_result_id(r, 0, NULL), "d7"));
    quarry_result_free(r);

    /* require-all: every hit holds both terms */
    r = text_query(c, "river forest", 1, NULL, NDOC);
    T_ASSERT(quarry_result_count(r) > 0);
    for (size_t i = 0; i < quarry_result_count(r); i++) {
        const char *t = quarry_result_text(r, i, NULL);
        T_ASSERT(strstr(t, "river") && strstr(t, "forest"));
    }
    quarry_result_free(r);

    /* filter on the text retriever */
    r = text_query(c, "river mountain forest desert", 0, "{\"even\":true}", NDOC);
    T_ASSERT(quarry_result_count(r) > 0);
    for (size_t i = 0; i < quarry_result_count(r); i++)
        T_ASSERT(atoi(quarry_result_id(r, i, NULL) + 1) % 2 == 0);
    quarry_result_free(r);

    /* fusion formulas */
    check_fusion(c, QUARRY_FUSION_RRF);
    check_fusion(c, QUARRY_FUSION_RELATIVE);
    check_fusion(c, QUARRY_FUSION_DBSF);

    /* updates and deletes: the old text is gone at once */
    quarry_row upd = {.id = "d7", .text = "nothing to see"};
    T_ASSERT_OK(quarry_upsert(c, &upd, 1));
    r = text_query(c, "volcano", 0, NULL, 5);
    T_ASSERT_EQ(quarry_result_count(r), 0);
    quarry_result_free(r);
    const char *del[] = {"d0"};
    T_ASSERT_OK(quarry_delete(c, del, 1, NULL));
    r = text_query(c, "river", 0, NULL, NDOC);
    for (size_t i = 0; i < quarry_result_count(r); i++)
        T_ASSERT(strcmp(quarry_result_id(r, i, NULL), "d0") != 0);
    quarry_result_free(r);

    /* reopen (checkpoint) and compaction keep results identical */
    char *before = fingerprint(c);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "h", &c));
    char *after = fingerprint(c);
    T_ASSERT_STREQ(after, before);
    free(after);
    T_ASSERT_OK(quarry_collection_compact(c, 1));
    after = fingerprint(c);
    T_ASSERT_STREQ(after, before);
    free(after);
    free(before);

    /* a text-only collection, and bad text */
    quarry_coll *t = tdb_coll(db, "notes", 0, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    quarry_row n1 = {.id = "n1", .text = "東京都の天気は晴れ"};
    T_ASSERT_OK(quarry_upsert(t, &n1, 1));
    r = text_query(t, "東京", 0, NULL, 3);
    T_ASSERT_EQ(quarry_result_count(r), 1);
    quarry_result_free(r);
    quarry_query *q;
    T_ASSERT_OK(quarry_query_new(t, &q));
    T_ASSERT_RC(quarry_query_text(q, "\xff\xfe", 0, 0, 0, 0), QUARRY_INVALID);
    quarry_query_free(q);
    quarry_collection_close(t);
    quarry_collection_close(c);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
    return 0;
}
