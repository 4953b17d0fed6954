/* SPDX-License-Identifier: MIT */
/*
 * Durability across server stops: four client threads stream upsert batches
 * into quarryd (sync durability) and record every batch the server
 * acknowledged; mid-stream the server gets SIGTERM (it must drain and exit 0),
 * and in a second round SIGKILL. After each restart every acknowledged row is
 * present with its exact vector, and the server accepts writes again.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "rpct.h"
#include "tdb.h"

#define DIM 8
#define THREADS 4
#define BATCH 20
#define MAX_BATCHES 100000

typedef struct writer {
    const rpct_server *srv;
    int id, round;
    int acked;           /* batches acknowledged: 0 .. acked-1 */
    int first_error;     /* status that stopped the thread */
    atomic_int *go;
} writer;

static void row_id(char *buf, size_t cap, int round, int thread, int batch, int i) {
    snprintf(buf, cap, "r%d-t%d-b%d-%d", round, thread, batch, i);
}

static void row_vec(int round, int thread, int batch, int i, float *v) {
    tdb_vector((uint64_t)(round * 1000000 + thread * 100000 + batch) * 64 + (uint64_t)i, 1, DIM,
               v);
}

static void *writer_main(void *arg) {
    writer *w = arg;
    qrpc_client *cl = rpct_client(w->srv, NULL);
    qrpc_set_timeout(cl, 10000);
    static _Thread_local float vecs[BATCH][DIM];
    static _Thread_local char ids[BATCH][48];
    Quarry__V1__Row rows[BATCH], *rp[BATCH];
    atomic_fetch_add(w->go, 1);
    for (int b = 0; b < MAX_BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            quarry__v1__row__init(&rows[i]);
            row_id(ids[i], sizeof ids[i], w->round, w->id, b, i);
            row_vec(w->round, w->id, b, i, vecs[i]);
            rows[i].id = ids[i];
            rows[i].vector = vecs[i];
            rows[i].n_vector = DIM;
            rp[i] = &rows[i];
        }
        Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
        rq.collection = "d";
        rq.rows = rp;
        rq.n_rows = BATCH;
        char *msg = NULL;
        int st = qrpc_call(cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL, NULL, &msg);
        free(msg);
        if (st != 0) {
            w->first_error = st;
            break;
        }
        w->acked = b + 1;
    }
    qrpc_close(cl);
    return NULL;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void check_acked(const rpct_server *srv, const writer *w) {
    qrpc_client *cl = rpct_client(srv, NULL);
    char ids[BATCH][48], *idp[BATCH];
    for (int t = 0; t < THREADS; t++) {
        for (int b = 0; b < w[t].acked; b++) {
            for (int i = 0; i < BATCH; i++) {
                row_id(ids[i], sizeof ids[i], w[t].round, t, b, i);
                idp[i] = ids[i];
            }
            Quarry__V1__GetRequest g = QUARRY__V1__GET_REQUEST__INIT;
            g.collection = "d";
            g.ids = idp;
            g.n_ids = BATCH;
            Quarry__V1__GetResponse *r =
                RPCT_CALL(cl, "Get", g, &quarry__v1__get_response__descriptor, ST_OK);
            if (r->n_missing)
                T_FAIL("round %d: acknowledged row %s is missing after restart", w[t].round,
                       r->missing[0]);
            for (int i = 0; i < BATCH; i++) {
                float v[DIM];
                row_vec(w[t].round, t, b, i, v);
                T_ASSERT(r->rows[i]->n_vector == DIM &&
                         memcmp(r->rows[i]->vector, v, sizeof v) == 0);
            }
            protobuf_c_message_free_unpacked(&r->base, NULL);
        }
    }
    qrpc_close(cl);
}

static void round_trip(const char *data, int round, int sig) {
    rpct_server srv;
    rpct_start(&srv, data, NULL, NULL);
    if (round == 0) {
        qrpc_client *cl = rpct_client(&srv, NULL);
        Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
        Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
        cfg.dim = DIM;
        cfg.index = QUARRY__V1__INDEX_KIND__INDEX_HNSW;
        cr.name = "d";
        cr.config = &cfg;
        protobuf_c_message_free_unpacked(
            RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor,
                      ST_OK),
            NULL);
        qrpc_close(cl);
    }
    writer w[THREADS];
    pthread_t th[THREADS];
    atomic_int go = 0;
    for (int t = 0; t < THREADS; t++) {
        w[t] = (writer){.srv = &srv, .id = t, .round = round, .go = &go};
        pthread_create(&th[t], NULL, writer_main, &w[t]);
    }
    /* let the stream run, then stop the server under it */
    int total = 0;
    for (int waited = 0; waited < 20000; waited += 10) {
        total = 0;
        for (int t = 0; t < THREADS; t++) total += w[t].acked;
        if (atomic_load(&go) == THREADS && total >= 40 && waited >= 300) break;
        sleep_ms(10);
    }
    int st = rpct_stop(&srv, sig);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    total = 0;
    for (int t = 0; t < THREADS; t++) total += w[t].acked;
    fprintf(stderr, "round %d (%s): %d batches acknowledged; writers stopped with %s\n", round,
            sig == SIGTERM ? "SIGTERM" : "SIGKILL", total, qrpc_status_name(w[0].first_error));
    if (sig == SIGTERM && st != 0) {
        rpct_dump_log(&srv);
        T_FAIL("quarryd exited with %d after SIGTERM, want 0", st);
    }
    if (sig == SIGTERM) T_ASSERT(rpct_log_has(&srv, "event=stopped"));
    T_ASSERT(total > 0);
    for (int t = 0; t < THREADS; t++) T_ASSERT(w[t].first_error != 0);

    rpct_start(&srv, data, NULL, NULL);
    check_acked(&srv, w);
    T_ASSERT_EQ(rpct_stop(&srv, SIGTERM), 0);
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("rpc-sigterm");
    char data[1024];
    snprintf(data, sizeof data, "%s/db", dir);
    round_trip(data, 0, SIGTERM);
    round_trip(data, 1, SIGKILL);
    t_rmdir(dir);
    free(dir);
    printf("ok\n");
    return 0;
}
