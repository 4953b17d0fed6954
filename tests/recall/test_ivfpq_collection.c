/* SPDX-License-Identifier: MIT */
/*
 * test_ivfpq_collection.c -- an `ivfpq` collection through the public API.
 *
 *  - Below its training size it answers exactly (equal to params.exact).
 *  - Crossing the size trains in the background while a writer keeps
 *    upserting: every row written is found by its own vector at once, before,
 *    during and after the switch-over; the stats report the trained index.
 *  - Recall@10 against exact search with the collection's defaults (refine 4)
 *    and without re-ranking; per-query nprobe and refine through both
 *    quarry_search and quarry_query; filters and deletes are honoured.
 *  - Close and reopen: the index comes back from the checkpoint (no
 *    retraining) and gives identical results; compaction re-encodes the live
 *    rows; an explicit quarry_collection_train retrains (recall holds).
 *  - Errors: train on a flat collection, too few vectors, pq_m > dim, bad
 *    nprobe/refine.
 */
#include "tdb.h"

#include <math.h>
#include <pthread.h>
#include <unistd.h>

#define DIM 32
#define NCLUST 64
#define K 10

static float centers[NCLUST][DIM];

/* Clustered rows with low intrinsic dimension (4-d patches). */
static void row_vec(uint64_t key, float *v) {
    uint64_t s = key * 0x9e3779b97f4a7c15ull + 1;
    size_t c = (size_t)(t_rand(&s) % NCLUST);
    float z[4];
    for (int l = 0; l < 4; l++) z[l] = t_randf(&s);
    for (size_t d = 0; d < DIM; d++) {
        uint64_t b = c * 1000 + d;
        float v0 = centers[c][d] + 0.05f * t_randf(&s);
        for (int l = 0; l < 4; l++) {
            uint64_t bs = b * 7 + (uint64_t)l;
            v0 += z[l] * t_randf(&bs);
        }
        v[d] = v0;
    }
}

static int upsert_keys(quarry_coll *c, uint64_t first, size_t n) {
    quarry_row *rows = calloc(n, sizeof *rows);
    float *vecs = malloc(n * DIM * sizeof *vecs);
    char (*ids)[32] = malloc(n * sizeof *ids);
    char (*meta)[48] = malloc(n * sizeof *meta);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "k%llu", (unsigned long long)(first + i));
        snprintf(meta[i], sizeof meta[i], "{\"even\":%s}", (first + i) % 2 ? "false" : "true");
        row_vec(first + i, vecs + i * DIM);
        rows[i] = (quarry_row){.id = ids[i], .vector = vecs + i * DIM, .dim = DIM,
                               .metadata = meta[i]};
    }
    int rc = quarry_upsert(c, rows, n);
    free(rows);
    free(vecs);
    free(ids);
    free(meta);
    return rc;
}

/* Search key's own vector: it must come first. */
static void find_self(quarry_coll *c, uint64_t key) {
    float v[DIM];
    row_vec(key, v);
    quarry_result *r;
    T_ASSERT_OK(quarry_search(c, v, DIM, 1, NULL, &r));
    char want[32];
    snprintf(want, sizeof want, "k%llu", (unsigned long long)key);
    T_ASSERT_EQ(quarry_result_count(r), 1);
    if (strcmp(quarry_result_id(r, 0, NULL), want) != 0)
        T_FAIL("searching %s's vector found %s", want, quarry_result_id(r, 0, NULL));
    quarry_result_free(r);
}

typedef struct writer_arg {
    quarry_coll *c;
    uint64_t from, to;
} writer_arg;

static void *writer(void *p) {
    writer_arg *w = p;
    for (uint64_t k = w->from; k < w->to; k += 50) {
        T_ASSERT_OK(upsert_keys(w->c, k, 50));
        find_self(w->c, k + 17); /* read-your-writes through every phase */
    }
    return NULL;
}

static double recall_vs_exact(quarry_coll *c, const quarry_search_params *base, int nq,
                              const char *filter) {
    int hit = 0, tot = 0;
    for (int qi = 0; qi < nq; qi++) {
        float q[DIM];
        row_vec(1000000 + (uint64_t)qi, q);
        quarry_search_params pe = *base, pa = *base;
        pe.exact = 1;
        pe.filter = pa.filter = filter;
        quarry_result *re, *ra;
        T_ASSERT_OK(quarry_search(c, q, DIM, K, &pe, &re));
        T_ASSERT_OK(quarry_search(c, q, DIM, K, &pa, &ra));
        T_ASSERT_EQ(quarry_result_count(ra), quarry_result_count(re));
        for (size_t i = 0; i < quarry_result_count(ra); i++) {
            const char *id = quarry_result_id(ra, i, NULL);
            if (filter) { /* {"even":true}: even keys only */
                unsigned long long key = strtoull(id + 1, NULL, 10);
                T_ASSERT(key % 2 == 0);
            }
            for (size_t j = 0; j < quarry_result_count(re); j++)
                if (!strcmp(id, quarry_result_id(re, j, NULL))) {
                    hit++;
                    break;
                }
        }
        tot += (int)quarry_result_count(re);
        quarry_result_free(re);
        quarry_result_free(ra);
    }
    return (double)hit / tot;
}

static void wait_trained(quarry_coll *c) {
    quarry_coll_stats st;
    st.size = sizeof st;
    for (int i = 0; i < 6000; i++) {
        T_ASSERT_OK(quarry_collection_stats(c, &st));
        if (st.ivf_nlist && !st.ivf_training) return;
        usleep(10000);
    }
    T_FAIL("the collection did not train within 60 s");
}

/* ids of the top K for a fixed query set, concatenated */
static char *answers(quarry_coll *c) {
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (int qi = 0; qi < 30; qi++) {
        float q[DIM];
        row_vec(2000000 + (uint64_t)qi, q);
        quarry_result *r;
        T_ASSERT_OK(quarry_search(c, q, DIM, K, NULL, &r));
        for (size_t i = 0; i < quarry_result_count(r); i++)
            len += (size_t)snprintf(out + len, cap - len, "%s:%.4f ", quarry_result_id(r, i, NULL),
                                    quarry_result_distance(r, i));
        quarry_result_free(r);
    }
    return out;
}

int main(void) {
    uint64_t s = 77;
    for (size_t i = 0; i < NCLUST; i++)
        for (size_t d = 0; d < DIM; d++) centers[i][d] = 4.0f * t_randf(&s);
    char *dir = t_tmpdir("ivfpq_coll");
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = DIM;
    cfg.index = QUARRY_INDEX_IVFPQ;
    cfg.ivf_nlist = 32;
    cfg.pq_m = 16;
    cfg.ivf_nprobe = 8;
    cfg.ivf_train_rows = 6000;
    cfg.durability = QUARRY_DURABILITY_NONE;

    /* errors first */
    quarry_collection_config bad = cfg;
    bad.pq_m = DIM + 1;
    T_ASSERT_RC(quarry_collection_create(db, "bad", &bad, NULL), QUARRY_INVALID);
    quarry_coll *flat = tdb_coll(db, "flat", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_NONE);
    T_ASSERT_RC(quarry_collection_train(flat, 1), QUARRY_UNSUPPORTED);
    quarry_collection_close(flat);

    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_create(db, "ivf", &cfg, &c));
    T_ASSERT_OK(upsert_keys(c, 0, 100));
    T_ASSERT_RC(quarry_collection_train(c, 1), QUARRY_INVALID); /* 100 < 256 */
    printf("too few: %s\n", quarry_errmsg());

    /* 1. exact until trained */
    T_ASSERT_OK(upsert_keys(c, 100, 4900));
    quarry_search_params p;
    quarry_search_params_init(&p);
    T_ASSERT(recall_vs_exact(c, &p, 20, NULL) == 1.0);
    quarry_coll_stats st;
    st.size = sizeof st;
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    T_ASSERT_EQ(st.ivf_nlist, 0);
    p.refine = QUARRY_MAX_IVF_REFINE + 1;
    float q0[DIM] = {0};
    quarry_result *r;
    T_ASSERT_RC(quarry_search(c, q0, DIM, 1, &p, &r), QUARRY_INVALID);
    p.refine = 0;

    /* 2. cross the threshold with two writers going on while it trains */
    pthread_t th[2];
    writer_arg wa[2] = {{c, 5000, 12000}, {c, 12000, 19000}};
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, writer, &wa[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    wait_trained(c);
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    printf("trained: nlist %u, m %u, rows %llu in lists, %llu code+id bytes\n", st.ivf_nlist,
           st.pq_m, (unsigned long long)st.ivf_rows, (unsigned long long)st.ivf_code_bytes);
    T_ASSERT_EQ(st.ivf_nlist, 32);
    T_ASSERT_EQ(st.pq_m, 16);
    T_ASSERT_EQ(st.ivf_rows, 19000);
    for (uint64_t k = 0; k < 19000; k += 97) find_self(c, k);

    /* 3. recall */
    uint64_t exact0 = st.searches_exact;
    double r_def = recall_vs_exact(c, &p, 100, NULL);
    p.refine = 1;
    double r_pq = recall_vs_exact(c, &p, 100, NULL);
    p.nprobe = 1;
    double r_np1 = recall_vs_exact(c, &p, 100, NULL);
    p.nprobe = 0, p.refine = 0;
    double r_filt = recall_vs_exact(c, &p, 100, "{\"even\":true}");
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    printf("recall@10: default (nprobe 8, refine 4) %.3f, no refine %.3f, nprobe 1 no refine "
           "%.3f, filtered %.3f\n",
           r_def, r_pq, r_np1, r_filt);
    T_ASSERT(st.searches_exact - exact0 == 400); /* exactly the exact=1 half */
    T_ASSERT(r_def >= 0.98);
    T_ASSERT(r_pq >= 0.85);
    T_ASSERT(r_np1 <= r_pq);
    /* nprobe reaches the index: one list (~600 rows) cannot give 10000 hits,
     * so that search falls back to an exact scan; all 32 lists can */
    {
        quarry_search_params pp;
        quarry_search_params_init(&pp);
        pp.nprobe = 1;
        T_ASSERT_OK(quarry_collection_stats(c, &st));
        uint64_t e0 = st.searches_exact;
        T_ASSERT_OK(quarry_search(c, q0, DIM, 10000, &pp, &r));
        T_ASSERT_EQ(quarry_result_count(r), 10000);
        quarry_result_free(r);
        pp.nprobe = 32;
        T_ASSERT_OK(quarry_search(c, q0, DIM, 10000, &pp, &r));
        T_ASSERT_EQ(quarry_result_count(r), 10000);
        quarry_result_free(r);
        T_ASSERT_OK(quarry_collection_stats(c, &st));
        T_ASSERT_EQ(st.searches_exact - e0, 1);
    }
    T_ASSERT(r_filt >= 0.97);

    /* the hybrid query API carries nprobe/refine too */
    quarry_query *qq;
    T_ASSERT_OK(quarry_query_new(c, &qq));
    float qv[DIM];
    row_vec(123, qv);
    T_ASSERT_OK(quarry_query_vector(qq, qv, DIM, 0, 0, 0));
    T_ASSERT_RC(quarry_query_ivf(qq, 70000, 0), QUARRY_INVALID);
    T_ASSERT_OK(quarry_query_ivf(qq, 32, 8));
    T_ASSERT_OK(quarry_query_run(qq, &r));
    T_ASSERT_STREQ(quarry_result_id(r, 0, NULL), "k123");
    quarry_result_free(r);
    quarry_query_free(qq);

    /* deletes: never returned */
    const char *gone[] = {"k123", "k124"};
    size_t nd;
    T_ASSERT_OK(quarry_delete(c, gone, 2, &nd));
    T_ASSERT_EQ(nd, 2);
    T_ASSERT_OK(quarry_search(c, qv, DIM, 5, NULL, &r));
    for (size_t i = 0; i < quarry_result_count(r); i++) {
        T_ASSERT(strcmp(quarry_result_id(r, i, NULL), "k123") != 0);
        T_ASSERT(strcmp(quarry_result_id(r, i, NULL), "k124") != 0);
    }
    quarry_result_free(r);

    /* 4. reopen: loaded from the checkpoint, identical answers */
    char *before = answers(c);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "ivf", &c));
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    T_ASSERT_EQ(st.ivf_nlist, 32); /* at once: no training ran */
    T_ASSERT_EQ(st.ivf_training, 0);
    char *after = answers(c);
    T_ASSERT_STREQ(after, before);
    free(after);

    /* 5. compaction re-encodes the live rows: same answers, dead rows gone */
    T_ASSERT_OK(upsert_keys(c, 0, 2000)); /* 2000 replaced versions */
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    T_ASSERT_EQ(st.ivf_rows, 21000);
    T_ASSERT_OK(quarry_collection_compact(c, 1));
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    printf("after compaction: %llu rows, %llu with vector, %llu dead, %llu in lists\n",
           (unsigned long long)st.rows, (unsigned long long)st.rows_with_vector,
           (unsigned long long)st.dead_rows, (unsigned long long)st.ivf_rows);
    T_ASSERT_EQ(st.ivf_rows, 19000); /* k123, k124 came back with the upsert */
    after = answers(c);
    T_ASSERT_STREQ(after, before);
    free(after);

    /* 6. explicit retraining (the row order changed, so the sample did) */
    T_ASSERT_OK(quarry_collection_train(c, 1));
    quarry_search_params_init(&p);
    double r_re = recall_vs_exact(c, &p, 100, NULL);
    printf("recall@10 after retraining: %.3f\n", r_re);
    T_ASSERT(r_re >= 0.98);
    free(before);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    t_rmdir(dir);
    free(dir);
    printf("ok\n");
    return 0;
}
