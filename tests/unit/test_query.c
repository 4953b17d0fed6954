/* SPDX-License-Identifier: MIT */
/*
 * The hybrid query API on its vector path: a vector-only query returns what
 * quarry_search returns (same ids, distances, order), limit/offset slice the
 * ranking, requested fields come back byte for byte, explain reports rank
 * and raw score, filters apply, and bad clauses are refused.
 */
#include "t.h"
#include "tdb.h"

#include <math.h>

#define DIM 8

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("query");
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_coll *c = tdb_coll(db, "q", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_NONE);
    T_ASSERT_OK(tdb_upsert_range(c, 0, 300, 1, DIM));
    float qv[DIM];
    tdb_vector(12345, 1, DIM, qv);

    quarry_result *ref;
    T_ASSERT_OK(quarry_search(c, qv, DIM, 20, NULL, &ref));
    quarry_query *q;
    T_ASSERT_OK(quarry_query_new(c, &q));
    T_ASSERT_OK(quarry_query_vector(q, qv, DIM, 0, 0, 0));
    T_ASSERT_OK(quarry_query_limit(q, 20, 0));
    T_ASSERT_OK(quarry_query_return(q, QUARRY_RETURN_TEXT | QUARRY_RETURN_METADATA |
                                           QUARRY_RETURN_VECTOR));
    quarry_result *res;
    T_ASSERT_OK(quarry_query_run(q, &res));
    T_ASSERT_EQ(quarry_result_count(res), 20);
    for (size_t i = 0; i < 20; i++) {
        T_ASSERT_STREQ(quarry_result_id(res, i, NULL), quarry_result_id(ref, i, NULL));
        T_ASSERT(quarry_result_distance(res, i) == quarry_result_distance(ref, i));
        T_ASSERT(quarry_result_score(res, i) == -quarry_result_distance(ref, i));
        uint32_t rank;
        float raw;
        T_ASSERT_OK(quarry_result_explain(res, i, QUARRY_RETRIEVER_VECTOR, &rank, &raw));
        T_ASSERT_EQ(rank, i + 1);
        T_ASSERT(raw == quarry_result_score(res, i));
        T_ASSERT_RC(quarry_result_explain(res, i, QUARRY_RETRIEVER_TEXT, &rank, &raw),
                    QUARRY_NOTFOUND);
        /* fields equal what get returns */
        quarry_doc *d;
        T_ASSERT_OK(quarry_get(c, quarry_result_id(res, i, NULL), 0, &d));
        T_ASSERT_STREQ(quarry_result_text(res, i, NULL), quarry_doc_text(d, NULL));
        T_ASSERT_STREQ(quarry_result_metadata(res, i, NULL), quarry_doc_metadata(d, NULL));
        uint32_t d1, d2;
        const float *v1 = quarry_result_vector(res, i, &d1), *v2 = quarry_doc_vector(d, &d2);
        T_ASSERT(d1 == DIM && d2 == DIM && !memcmp(v1, v2, DIM * sizeof(float)));
        quarry_doc_free(d);
    }
    quarry_result_free(res);

    /* offset slices the same ranking; no fields unless asked */
    T_ASSERT_OK(quarry_query_limit(q, 5, 10));
    T_ASSERT_OK(quarry_query_return(q, 0));
    T_ASSERT_OK(quarry_query_run(q, &res));
    T_ASSERT_EQ(quarry_result_count(res), 5);
    for (size_t i = 0; i < 5; i++) {
        T_ASSERT_STREQ(quarry_result_id(res, i, NULL), quarry_result_id(ref, i + 10, NULL));
        T_ASSERT(quarry_result_text(res, i, NULL) == NULL);
        T_ASSERT(quarry_result_vector(res, i, NULL) == NULL);
    }
    quarry_result_free(res);
    quarry_result_free(ref);

    /* filter: only group g3 */
    T_ASSERT_OK(quarry_query_filter(q, "{\"g\":\"g3\"}"));
    T_ASSERT_OK(quarry_query_limit(q, 50, 0));
    T_ASSERT_OK(quarry_query_return(q, QUARRY_RETURN_METADATA));
    T_ASSERT_OK(quarry_query_run(q, &res));
    T_ASSERT(quarry_result_count(res) > 0);
    for (size_t i = 0; i < quarry_result_count(res); i++)
        T_ASSERT(strstr(quarry_result_metadata(res, i, NULL), "\"g3\"") != NULL);
    quarry_result_free(res);

    /* refusals */
    T_ASSERT_RC(quarry_query_filter(q, "{bad"), QUARRY_INVALID);
    T_ASSERT_RC(quarry_query_limit(q, 0, 0), QUARRY_INVALID);
    T_ASSERT_RC(quarry_query_fusion(q, (quarry_fusion)9, 0), QUARRY_INVALID);
    T_ASSERT_RC(quarry_query_return(q, 64), QUARRY_INVALID);
    T_ASSERT_RC(quarry_query_text(q, "caf\xe9", 0, 0, 0, 0), QUARRY_INVALID);
    float bad[DIM] = {NAN};
    quarry_query *q2;
    T_ASSERT_OK(quarry_query_new(c, &q2));
    T_ASSERT_RC(quarry_query_run(q2, &res), QUARRY_INVALID); /* no clause */
    T_ASSERT_OK(quarry_query_vector(q2, bad, DIM, 0, 0, 0));
    T_ASSERT_RC(quarry_query_run(q2, &res), QUARRY_INVALID);
    T_ASSERT_OK(quarry_query_vector(q2, qv, DIM - 1, 0, 0, 0));
    T_ASSERT_RC(quarry_query_run(q2, &res), QUARRY_MISMATCH);
    quarry_query_free(q2);
    quarry_query_free(q);
    quarry_collection_close(c);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
    return 0;
}
