/* SPDX-License-Identifier: MIT */
/*
 * Deadlines and cancellation against a real quarryd: a call that waits for a
 * worker and whose deadline passes meanwhile, or whose client cancels it, is
 * answered DEADLINE_EXCEEDED / CANCELLED at once, and the server never runs
 * it (the rows it would have written are absent; the log says "before it
 * ran").
 *
 * The server runs with one worker. A large Upsert keeps that worker busy for
 * a while (the test waits until the server reports it in flight); two small
 * Upserts queued behind it get a 200 ms deadline and a client cancel.
 * Reads (Stats of another collection) run on the polling threads, so the test
 * can watch the server while the worker is busy.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "rpct.h"
#include "tdb.h"

#define DIM 128
/* The batch must keep the worker busy for well over 200 ms (a few seconds in
 * a Release build); sanitizers make the server several times slower. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BIG_ROWS 8000
#else
#define BIG_ROWS 20000
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float big_vectors[BIG_ROWS][DIM];
static char big_ids[BIG_ROWS][16];

typedef struct big_upsert {
    const rpct_server *srv;
    atomic_int done;
    double seconds;
} big_upsert;

static void *big_upsert_main(void *arg) {
    big_upsert *b = arg;
    qrpc_client *cl = rpct_client(b->srv, NULL);
    qrpc_set_timeout(cl, 600000);
    Quarry__V1__Row *rows = calloc(BIG_ROWS, sizeof *rows);
    Quarry__V1__Row **rp = calloc(BIG_ROWS, sizeof *rp);
    T_ASSERT(rows && rp);
    for (int i = 0; i < BIG_ROWS; i++) {
        quarry__v1__row__init(&rows[i]);
        rows[i].id = big_ids[i];
        rows[i].vector = big_vectors[i];
        rows[i].n_vector = DIM;
        rp[i] = &rows[i];
    }
    Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
    rq.collection = "c";
    rq.rows = rp;
    rq.n_rows = BIG_ROWS;
    double t0 = now_s();
    void *r = RPCT_CALL(cl, "Upsert", rq, &quarry__v1__upsert_response__descriptor, ST_OK);
    b->seconds = now_s() - t0;
    protobuf_c_message_free_unpacked(r, NULL);
    atomic_store(&b->done, 1);
    free(rows);
    free(rp);
    qrpc_close(cl);
    return NULL;
}

/* The server's calls in flight. Stats of the small collection "probe": the
 * statistics of "c" would wait for its write lock while the batch is applied. */
static uint32_t in_flight(qrpc_client *cl) {
    Quarry__V1__StatsRequest rq = QUARRY__V1__STATS_REQUEST__INIT;
    rq.collection = "probe";
    Quarry__V1__StatsResponse *r =
        RPCT_CALL(cl, "Stats", rq, &quarry__v1__stats_response__descriptor, ST_OK);
    T_ASSERT(r->server);
    uint32_t n = r->server->in_flight; /* this Stats call included */
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return n;
}

/* Waits until only the Stats call itself is in flight: the contexts of
 * earlier calls are released a little after their replies. */
static void wait_idle(qrpc_client *cl) {
    double t0 = now_s();
    while (in_flight(cl) != 1) {
        if (now_s() - t0 > 30) T_FAIL("calls stay in flight after they were answered");
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Waits until the server has at least `n` calls in flight (Stats included). */
static void wait_in_flight(qrpc_client *cl, uint32_t n) {
    double t0 = now_s();
    while (in_flight(cl) < n) {
        if (now_s() - t0 > 60) T_FAIL("the server never had %u calls in flight", n);
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void pack_one(Quarry__V1__UpsertRequest *rq, Quarry__V1__Row *row, Quarry__V1__Row **rp,
                     const char *id, float *v) {
    quarry__v1__upsert_request__init(rq);
    quarry__v1__row__init(row);
    row->id = (char *)id;
    row->vector = v;
    row->n_vector = DIM;
    *rp = row;
    rq->collection = "c";
    rq->rows = rp;
    rq->n_rows = 1;
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("rpc-cancel");
    char data[1100];
    snprintf(data, sizeof data, "%s/db", dir);
    uint64_t seed = 42;
    for (int i = 0; i < BIG_ROWS; i++) {
        snprintf(big_ids[i], sizeof big_ids[i], "r%d", i);
        for (int j = 0; j < DIM; j++) big_vectors[i][j] = t_randf(&seed);
    }
    float v[DIM];
    for (int j = 0; j < DIM; j++) v[j] = t_randf(&seed);

    const char *args[] = {"--workers", "1", NULL};
    rpct_server srv;
    rpct_start(&srv, data, args, NULL);
    grpc_init();
    qrpc_client *cl = rpct_client(&srv, NULL);
    Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = DIM;
    cfg.index = QUARRY__V1__INDEX_KIND__INDEX_HNSW;
    cr.name = "c";
    cr.config = &cfg;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);
    cr.name = "probe";
    cfg.dim = 4;
    cfg.index = QUARRY__V1__INDEX_KIND__INDEX_FLAT;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);

    /* 1. the only worker is busy with a large batch */
    wait_idle(cl);
    big_upsert big = {.srv = &srv};
    atomic_init(&big.done, 0);
    pthread_t th;
    T_ASSERT(pthread_create(&th, NULL, big_upsert_main, &big) == 0);
    wait_in_flight(cl, 2); /* the big Upsert + this Stats */

    /* 2. a call queued behind it with a 200 ms deadline */
    qrpc_client *late = rpct_client(&srv, NULL);
    qrpc_set_timeout(late, 200);
    Quarry__V1__UpsertRequest rq;
    Quarry__V1__Row row, *rp;
    pack_one(&rq, &row, &rp, "late", v);
    double t0 = now_s();
    char *msg = NULL;
    int st = qrpc_call(late, "/quarry.v1.Quarry/Upsert", &rq.base, NULL, NULL, &msg);
    double waited = now_s() - t0;
    free(msg);
    qrpc_close(late);
    if (atomic_load(&big.done))
        T_SKIP("the large batch finished within %.0f ms: the machine is too fast for this test",
               waited * 1e3);
    if (st != ST_DEADLINE_EXCEEDED)
        T_FAIL("queued call with a 200 ms deadline: %s, want DEADLINE_EXCEEDED",
               qrpc_status_name(st));
    T_ASSERT(waited < 10.0); /* answered at its deadline, not when the worker got to it */

    /* 3. a call queued behind it that its client cancels */
    Quarry__V1__UpsertRequest crq;
    Quarry__V1__Row crow, *crp;
    pack_one(&crq, &crow, &crp, "cancelled", v);
    rpct_raw_call rc;
    rpct_raw_start(&rc, srv.addr, NULL, "Upsert", &crq.base);
    wait_in_flight(cl, 4); /* big + late (still queued) + this one + Stats */
    if (atomic_load(&big.done)) T_SKIP("the large batch finished before the cancel");
    T_ASSERT_EQ(rpct_raw_cancel(&rc), GRPC_STATUS_CANCELLED);

    /* 4. the worker finishes the large batch, then skips both */
    pthread_join(th, NULL);
    fprintf(stderr, "note: the large batch took %.2f s\n", big.seconds);
    /* A Delete queues behind the two skipped calls on the one worker. */
    Quarry__V1__DeleteRequest dr = QUARRY__V1__DELETE_REQUEST__INIT;
    char *none[] = {"none"};
    dr.collection = "c";
    dr.ids = none;
    dr.n_ids = 1;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "Delete", dr, &quarry__v1__delete_response__descriptor, ST_OK), NULL);
    Quarry__V1__GetRequest gr = QUARRY__V1__GET_REQUEST__INIT;
    char *ids[] = {"late", "cancelled", "r0"};
    gr.collection = "c";
    gr.ids = ids;
    gr.n_ids = 3;
    Quarry__V1__GetResponse *g =
        RPCT_CALL(cl, "Get", gr, &quarry__v1__get_response__descriptor, ST_OK);
    T_ASSERT_EQ(g->n_rows, 1); /* r0 only: the skipped calls wrote nothing */
    T_ASSERT_EQ(g->n_missing, 2);
    protobuf_c_message_free_unpacked(&g->base, NULL);
    Quarry__V1__CollectionStats cs = rpct_stats(cl, "c");
    T_ASSERT_EQ(cs.rows, BIG_ROWS);
    wait_idle(cl); /* nothing left behind */
    qrpc_close(cl);
    grpc_shutdown();

    int code = rpct_stop(&srv, SIGTERM);
    if (code != 0 || !rpct_log_has(&srv, "code=DEADLINE_EXCEEDED") ||
        !rpct_log_has(&srv, "the deadline passed before it ran") ||
        !rpct_log_has(&srv, "code=CANCELLED") ||
        !rpct_log_has(&srv, "cancelled by the client before it ran")) {
        rpct_dump_log(&srv);
        T_FAIL("quarryd exited with %d, or its log lacks the skipped calls", code);
    }
    t_rmdir(dir);
    free(dir);
    printf("ok\n");
    return 0;
}
