/* SPDX-License-Identifier: MIT */
/*
 * IVF-PQ over RPC against a real quarryd: CreateCollection with the IVF
 * parameters (nlist 16, pq_m 8, refine, train_rows 1000) returns them
 * resolved; Train before there are enough vectors is INVALID_ARGUMENT; 3000
 * rows are upserted (the automatic training starts at 1000), Train(wait)
 * answers with the trained index, Stats and Describe show it (lists, code
 * bytes, rows); Query with nprobe/refine finds rows by their own vectors
 * (distance 0 after the exact re-ranking), with nprobe 1 and refine 1 (off)
 * too; Train(wait=false) answers at once. Errors: Train on a flat
 * collection (UNIMPLEMENTED), on an unknown one (NOT_FOUND), refine / nprobe
 * over their limits in Query (INVALID_ARGUMENT, before and after the engine),
 * pq_m > dim, refine and nlist over their limits at create
 * (INVALID_ARGUMENT), and the server keeps serving. A Train(wait) runs on a
 * worker: with one polling thread, health checks are answered while it
 * trains; a Drop while a Train(wait) trains goes through and the Train
 * answers. After a restart the trained index is there without retraining.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "health.pb-c.h"
#include "rpct.h"
#include "tdb.h"

#define DIM 16
#define NROWS 3000
#define NLIST 16
#define PQ_M 8

static void row_vec(int i, float *v) { tdb_vector((uint64_t)i, 1, DIM, v); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void health(qrpc_client *cl) {
    Grpc__Health__V1__HealthCheckRequest rq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckResponse *r =
        rpct_call(__FILE__, __LINE__, cl, "/grpc.health.v1.Health/Check", &rq.base,
                  &grpc__health__v1__health_check_response__descriptor, ST_OK, NULL);
    T_ASSERT_EQ(r->status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void create_ivf(qrpc_client *cl, const char *name, uint32_t dim, uint32_t nlist,
                       uint32_t pq_m, uint32_t refine, uint32_t train_rows, int want,
                       const char *want_msg) {
    Quarry__V1__CreateCollectionRequest rq = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = dim;
    cfg.index = QUARRY__V1__INDEX_KIND__INDEX_IVFPQ;
    cfg.durability = QUARRY__V1__DURABILITY__DURABILITY_NONE;
    cfg.ivf_nlist = nlist;
    cfg.pq_m = pq_m;
    cfg.ivf_refine = refine;
    cfg.ivf_train_rows = train_rows;
    rq.name = (char *)name;
    rq.config = &cfg;
    Quarry__V1__CollectionInfo *info =
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/CreateCollection", &rq.base,
                  &quarry__v1__collection_info__descriptor, want, want_msg);
    if (!info) return;
    T_ASSERT_EQ(info->config->index, QUARRY__V1__INDEX_KIND__INDEX_IVFPQ);
    T_ASSERT_EQ(info->config->dim, dim);
    T_ASSERT_EQ(info->config->ivf_nlist, nlist);
    T_ASSERT_EQ(info->config->pq_m, pq_m);
    T_ASSERT_EQ(info->config->ivf_nprobe, 16);                  /* the default */
    T_ASSERT_EQ(info->config->ivf_refine, refine ? refine : 4); /* the default */
    T_ASSERT_EQ(info->config->ivf_train_rows, train_rows);
    T_ASSERT_EQ(info->stats->ivf_nlist, 0); /* not trained */
    T_ASSERT_EQ(info->stats->ivf_rows, 0);
    protobuf_c_message_free_unpacked(&info->base, NULL);
}

static void upsert_range(qrpc_client *cl, const char *coll, int first, int n, uint32_t dim) {
    float *vecs = malloc((size_t)n * dim * sizeof *vecs);
    char(*ids)[16] = malloc((size_t)n * sizeof *ids);
    Quarry__V1__Row *rows = malloc((size_t)n * sizeof *rows);
    Quarry__V1__Row **rp = malloc((size_t)n * sizeof *rp);
    T_ASSERT(vecs && ids && rows && rp);
    for (int i = 0; i < n; i++) {
        quarry__v1__row__init(&rows[i]);
        tdb_vector((uint64_t)(first + i), 1, dim, vecs + (size_t)i * dim);
        snprintf(ids[i], sizeof ids[i], "v%d", first + i);
        rows[i].id = ids[i];
        rows[i].vector = vecs + (size_t)i * dim;
        rows[i].n_vector = dim;
        rp[i] = &rows[i];
    }
    Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
    rq.collection = (char *)coll;
    rq.rows = rp;
    rq.n_rows = (size_t)n;
    Quarry__V1__UpsertResponse *r =
        RPCT_CALL(cl, "Upsert", rq, &quarry__v1__upsert_response__descriptor, ST_OK);
    T_ASSERT_EQ(r->upserted, n);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    free(vecs);
    free(ids);
    free(rows);
    free(rp);
}

static Quarry__V1__TrainResponse *train(qrpc_client *cl, const char *coll, int wait, int want,
                                        const char *want_msg) {
    Quarry__V1__TrainRequest rq = QUARRY__V1__TRAIN_REQUEST__INIT;
    rq.collection = (char *)coll;
    rq.wait = wait;
    return rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Train", &rq.base,
                     &quarry__v1__train_response__descriptor, want, want_msg);
}

static Quarry__V1__QueryResponse *vquery(qrpc_client *cl, const char *coll, const float *v,
                                         uint32_t k, uint32_t nprobe, uint32_t refine,
                                         int want, const char *want_msg) {
    Quarry__V1__QueryRequest rq = QUARRY__V1__QUERY_REQUEST__INIT;
    Quarry__V1__VectorClause vc = QUARRY__V1__VECTOR_CLAUSE__INIT;
    vc.vector = (float *)v;
    vc.n_vector = DIM;
    vc.nprobe = nprobe;
    vc.refine = refine;
    rq.collection = (char *)coll;
    rq.vector = &vc;
    rq.k = k;
    return rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Query", &rq.base,
                     &quarry__v1__query_response__descriptor, want, want_msg);
}

/* Every probed query finds the row by its own vector first, at distance 0. */
static void self_queries(qrpc_client *cl, const char *coll) {
    for (int i = 0; i < NROWS; i += 97) {
        float v[DIM];
        char id[16];
        row_vec(i, v);
        snprintf(id, sizeof id, "v%d", i);
        Quarry__V1__QueryResponse *r = vquery(cl, coll, v, 5, NLIST, 10, ST_OK, NULL);
        T_ASSERT_EQ(r->n_hits, 5);
        T_ASSERT_STREQ(r->hits[0]->id, id);
        T_ASSERT(r->hits[0]->distance == 0.0f); /* re-ranked with the stored vector */
        for (size_t h = 1; h < r->n_hits; h++)
            T_ASSERT(r->hits[h]->distance >= r->hits[h - 1]->distance);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
}

static void ivf_roundtrip(qrpc_client *cl) {
    create_ivf(cl, "ivf", DIM, NLIST, PQ_M, 0, 1000, ST_OK, NULL);
    /* no vectors yet: training needs max(256, nlist) */
    train(cl, "ivf", 1, ST_INVALID_ARGUMENT, "needs at least");
    upsert_range(cl, "ivf", 0, 1000, DIM);
    upsert_range(cl, "ivf", 1000, 1000, DIM);
    upsert_range(cl, "ivf", 2000, NROWS - 2000, DIM);

    /* (re)train now on all 3000 and wait (joins the automatic one if it runs) */
    Quarry__V1__TrainResponse *t = train(cl, "ivf", 1, ST_OK, NULL);
    T_ASSERT_EQ(t->nlist, NLIST);
    T_ASSERT_EQ(t->pq_m, PQ_M);
    T_ASSERT(t->rows >= 1000 && t->rows <= NROWS);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    t = train(cl, "ivf", 1, ST_OK, NULL); /* a retraining sees every row */
    T_ASSERT_EQ(t->nlist, NLIST);
    T_ASSERT_EQ(t->rows, NROWS);
    T_ASSERT(!t->training);
    protobuf_c_message_free_unpacked(&t->base, NULL);

    Quarry__V1__CollectionStats st = rpct_stats(cl, "ivf");
    T_ASSERT_EQ(st.rows, NROWS);
    T_ASSERT_EQ(st.rows_with_vector, NROWS);
    T_ASSERT_EQ(st.ivf_nlist, NLIST);
    T_ASSERT_EQ(st.pq_m, PQ_M);
    T_ASSERT(!st.ivf_training);
    T_ASSERT_EQ(st.ivf_rows, NROWS);
    T_ASSERT(st.ivf_code_bytes >= (uint64_t)NROWS * PQ_M);

    Quarry__V1__DescribeCollectionRequest dr = QUARRY__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    dr.name = "ivf";
    Quarry__V1__CollectionInfo *info =
        RPCT_CALL(cl, "DescribeCollection", dr, &quarry__v1__collection_info__descriptor, ST_OK);
    T_ASSERT_EQ(info->config->ivf_refine, 4);
    T_ASSERT_EQ(info->config->ivf_train_rows, 1000);
    T_ASSERT_EQ(info->stats->ivf_nlist, NLIST);
    T_ASSERT_EQ(info->stats->ivf_rows, NROWS);
    protobuf_c_message_free_unpacked(&info->base, NULL);

    self_queries(cl, "ivf");
    /* one list, no re-ranking: approximate, but k hits and sorted */
    float v[DIM];
    row_vec(7, v);
    Quarry__V1__QueryResponse *r = vquery(cl, "ivf", v, 5, 1, 1, ST_OK, NULL);
    T_ASSERT_EQ(r->n_hits, 5);
    for (size_t h = 1; h < r->n_hits; h++)
        T_ASSERT(r->hits[h]->distance >= r->hits[h - 1]->distance);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* the limits themselves are accepted */
    r = vquery(cl, "ivf", v, 2, 65536, QUARRY_MAX_IVF_REFINE, ST_OK, NULL);
    T_ASSERT_STREQ(r->hits[0]->id, "v7");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* without wait: answers at once with the index serving now */
    t = train(cl, "ivf", 0, ST_OK, NULL);
    T_ASSERT_EQ(t->nlist, NLIST);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    double t0 = now_s();
    for (;;) {
        st = rpct_stats(cl, "ivf");
        if (!st.ivf_training) break;
        if (now_s() - t0 > 120) T_FAIL("the training started without wait never ended");
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    T_ASSERT_EQ(st.ivf_nlist, NLIST);
    T_ASSERT_EQ(st.ivf_rows, NROWS);
}

/* The automatic training: train_rows 1000, 1200 rows, no Train call. */
static void auto_training(qrpc_client *cl) {
    create_ivf(cl, "ivf_auto", DIM, NLIST, PQ_M, 2, 1000, ST_OK, NULL);
    upsert_range(cl, "ivf_auto", 0, 1200, DIM);
    double t0 = now_s();
    Quarry__V1__CollectionStats st;
    for (;;) {
        st = rpct_stats(cl, "ivf_auto");
        if (st.ivf_nlist && !st.ivf_training) break;
        if (now_s() - t0 > 120) T_FAIL("no automatic training after 120 s");
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    T_ASSERT_EQ(st.ivf_nlist, NLIST);
    T_ASSERT_EQ(st.pq_m, PQ_M);
    T_ASSERT_EQ(st.ivf_rows, 1200);
}

static void bad_requests(qrpc_client *cl) {
    Quarry__V1__CollectionStats before = rpct_stats(cl, "ivf");
    float v[DIM];
    row_vec(3, v);
    /* query knobs over their limits */
    vquery(cl, "ivf", v, 5, 0, QUARRY_MAX_IVF_REFINE + 1, ST_INVALID_ARGUMENT, "refine");
    vquery(cl, "ivf", v, 5, 65537, 0, ST_INVALID_ARGUMENT, "nprobe");
    vquery(cl, "ivf", v, 5, UINT32_MAX, UINT32_MAX, ST_INVALID_ARGUMENT, NULL);
    vquery(cl, "nope", v, 5, 0, QUARRY_MAX_IVF_REFINE + 1, ST_INVALID_ARGUMENT, "refine");

    /* Train: not an ivfpq collection, unknown, no name */
    Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = DIM;
    cr.name = "flat";
    cr.config = &cfg;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);
    upsert_range(cl, "flat", 0, 300, DIM);
    train(cl, "flat", 1, ST_UNIMPLEMENTED, "not ivfpq");
    train(cl, "flat", 0, ST_UNIMPLEMENTED, "not ivfpq");
    train(cl, "nope", 1, ST_NOT_FOUND, "nope");
    train(cl, "", 1, ST_INVALID_ARGUMENT, "collection name");
    /* nprobe/refine on a flat collection are accepted and ignored (like ef) */
    Quarry__V1__QueryResponse *r = vquery(cl, "flat", v, 1, 4, 2, ST_OK, NULL);
    T_ASSERT_STREQ(r->hits[0]->id, "v3");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* bad IVF configurations */
    create_ivf(cl, "bad", DIM, NLIST, DIM + 1, 0, 0, ST_INVALID_ARGUMENT, "pq_m");
    create_ivf(cl, "bad", DIM, NLIST, PQ_M, QUARRY_MAX_IVF_REFINE + 1, 0, ST_INVALID_ARGUMENT,
               "refine");
    create_ivf(cl, "bad", DIM, 65537, PQ_M, 0, 0, ST_INVALID_ARGUMENT, "nlist");
    Quarry__V1__DescribeCollectionRequest dr = QUARRY__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    dr.name = "bad";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/DescribeCollection", &dr.base, NULL,
              ST_NOT_FOUND, NULL);

    /* nothing changed, and the server keeps serving */
    Quarry__V1__CollectionStats after = rpct_stats(cl, "ivf");
    T_ASSERT_EQ(after.rows, before.rows);
    T_ASSERT_EQ(after.last_lsn, before.last_lsn);
    T_ASSERT_EQ(after.ivf_nlist, NLIST);
    health(cl);
    self_queries(cl, "ivf");
}

/* ---------------------------------------------- Train(wait) runs on a worker */

#define BIG_DIM 32
#define BIG_ROWS 10000

typedef struct {
    const rpct_server *srv;
    const char *coll;
    int status;   /* of the Train call */
    uint32_t nlist;
    char msg[256];
    double secs;
    int done;
    pthread_mutex_t mu;
} train_job;

static void *train_thread(void *arg) {
    train_job *j = arg;
    qrpc_client *cl = rpct_client(j->srv, NULL);
    Quarry__V1__TrainRequest rq = QUARRY__V1__TRAIN_REQUEST__INIT;
    rq.collection = (char *)j->coll;
    rq.wait = 1;
    ProtobufCMessage *resp = NULL;
    char *msg = NULL;
    double t0 = now_s();
    int st = qrpc_call(cl, "/quarry.v1.Quarry/Train", &rq.base,
                       &quarry__v1__train_response__descriptor, &resp, &msg);
    pthread_mutex_lock(&j->mu);
    j->secs = now_s() - t0;
    j->status = st;
    j->nlist = resp ? ((Quarry__V1__TrainResponse *)resp)->nlist : 0;
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "");
    j->done = 1;
    pthread_mutex_unlock(&j->mu);
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    free(msg);
    qrpc_close(cl);
    return NULL;
}

static int job_done(train_job *j) {
    pthread_mutex_lock(&j->mu);
    int done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done;
}

/* An ivfpq collection of BIG_ROWS x BIG_DIM that trains only when asked. */
static void create_big(qrpc_client *cl, const char *name) {
    Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = BIG_DIM;
    cfg.index = QUARRY__V1__INDEX_KIND__INDEX_IVFPQ;
    cfg.durability = QUARRY__V1__DURABILITY__DURABILITY_NONE;
    cfg.ivf_nlist = 128;
    cfg.pq_m = 16;
    cfg.ivf_train_rows = 1000000; /* only the Train call trains */
    cr.name = (char *)name;
    cr.config = &cfg;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);
    for (int at = 0; at < BIG_ROWS; at += 5000) upsert_range(cl, name, at, 5000, BIG_DIM);
}

/* One polling thread: if Train ran on it, a health check would wait for the
 * whole training. */
static void train_on_worker(const rpct_server *srv, qrpc_client *cl) {
    create_big(cl, "big");
    train_job j = {.srv = srv, .coll = "big"};
    pthread_mutex_init(&j.mu, NULL);
    pthread_t th;
    T_ASSERT(pthread_create(&th, NULL, train_thread, &j) == 0);
    int answered_during = 0, checks = 0;
    double worst = 0;
    while (!job_done(&j)) {
        double t0 = now_s();
        health(cl);
        double dt = now_s() - t0;
        if (dt > worst) worst = dt;
        checks++;
        pthread_mutex_lock(&j.mu);
        answered_during += !j.done;
        pthread_mutex_unlock(&j.mu);
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_join(th, NULL);
    pthread_mutex_destroy(&j.mu);
    if (j.status != ST_OK) T_FAIL("Train big: %s (%s)", qrpc_status_name(j.status), j.msg);
    T_ASSERT_EQ(j.nlist, 128);
    fprintf(stderr, "note: Train(wait) took %.3f s; %d of %d health checks answered while it "
                    "ran, the slowest in %.3f s\n",
            j.secs, answered_during, checks, worst);
    /* A training of 0.2 s or more leaves room for many checks; each must be
     * answered while it runs, not after it. */
    if (j.secs >= 0.2) {
        T_ASSERT(answered_during >= 2);
        T_ASSERT(worst < j.secs * 0.5);
    }
}

/* Drop while a Train(wait) trains: the drop stops the training and goes
 * through, the Train answers (OK when it had finished, else NOT_FOUND or
 * CANCELLED), and the server keeps serving. */
static void drop_while_training(const rpct_server *srv, qrpc_client *cl) {
    create_big(cl, "big2");
    train_job j = {.srv = srv, .coll = "big2"};
    pthread_mutex_init(&j.mu, NULL);
    pthread_t th;
    T_ASSERT(pthread_create(&th, NULL, train_thread, &j) == 0);
    double t0 = now_s();
    while (!job_done(&j) && now_s() - t0 < 30) {
        Quarry__V1__CollectionStats st = rpct_stats(cl, "big2");
        if (st.ivf_training) break;
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
    Quarry__V1__DropCollectionRequest dr = QUARRY__V1__DROP_COLLECTION_REQUEST__INIT;
    dr.name = "big2";
    Quarry__V1__DropCollectionResponse *d = RPCT_CALL(
        cl, "DropCollection", dr, &quarry__v1__drop_collection_response__descriptor, ST_OK);
    T_ASSERT(d->dropped);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&j.mu);
    fprintf(stderr, "note: Train(wait) of a collection dropped meanwhile: %s (%s) after %.3f s\n",
            qrpc_status_name(j.status), j.msg, j.secs);
    T_ASSERT(j.status == ST_OK || j.status == ST_NOT_FOUND || j.status == ST_CANCELLED);
    health(cl);
    Quarry__V1__DescribeCollectionRequest desc = QUARRY__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    desc.name = "big2";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/DescribeCollection", &desc.base, NULL,
              ST_NOT_FOUND, NULL);
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("rpc-ivfpq");
    char data[1024];
    snprintf(data, sizeof data, "%s/db", dir);
    const char *args[] = {"--cq-threads", "1", "--workers", "4", NULL};
    rpct_server srv;
    rpct_start(&srv, data, args, NULL);
    qrpc_client *cl = rpct_client(&srv, NULL);

    ivf_roundtrip(cl);
    auto_training(cl);
    bad_requests(cl);
    train_on_worker(&srv, cl);
    drop_while_training(&srv, cl);

    qrpc_close(cl);
    rpct_stop_clean(&srv);
    T_ASSERT(rpct_log_has(&srv, "event=collection_trained"));

    /* restart: the trained index was checkpointed, no retraining needed */
    rpct_start(&srv, data, NULL, NULL);
    cl = rpct_client(&srv, NULL);
    Quarry__V1__CollectionStats s2 = rpct_stats(cl, "ivf");
    T_ASSERT_EQ(s2.rows, NROWS);
    T_ASSERT_EQ(s2.ivf_nlist, NLIST);
    T_ASSERT_EQ(s2.ivf_rows, NROWS);
    self_queries(cl, "ivf");
    qrpc_close(cl);
    T_ASSERT_EQ(rpct_stop(&srv, SIGINT), 0);
    t_rmdir(dir);
    free(dir);
    printf("ok\n");
    return 0;
}
