/* SPDX-License-Identifier: MIT */
/*
 * A search that is already running stops when its call's deadline passes:
 * quarryd hands the engine the deadline (quarry_query_deadline) and the
 * answer is DEADLINE_EXCEEDED with the engine's "abandoned" message, well
 * before the search would have ended.
 *
 * An exact Query over 40,000 x 256-d rows takes a millisecond or more. The
 * test sends it with deadlines of 0.1, 0.2, 0.3 ... ms: short ones expire
 * before the handler runs or during the scan, long ones return the hits. At
 * least one must have been abandoned mid-search, every answer must be one of
 * the three, and the server must keep serving (the same query without a
 * deadline then returns its k hits).
 *
 * Then, with Queries on the workers (--query-inline 0), clients cancel the
 * same query after 0, 0.1, 0.2 ... ms: the log must show a search stopped by
 * its client ("interrupted by the caller"), and the server keeps serving.
 */
#include <signal.h>

#include <grpc/grpc_security.h>

#include "rpct.h"
#include "tdb.h"

#define DIM 256
#define ROWS 40000
#define BATCH 1000

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("rpc-deadline");
    char data[1100];
    snprintf(data, sizeof data, "%s/db", dir);
    rpct_server srv;
    rpct_start(&srv, data, NULL, NULL);
    qrpc_client *cl = rpct_client(&srv, NULL);
    qrpc_set_timeout(cl, 600000);

    Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = DIM;
    cfg.index = QUARRY__V1__INDEX_KIND__INDEX_FLAT;
    cfg.durability = QUARRY__V1__DURABILITY__DURABILITY_NONE;
    cr.name = "s";
    cr.config = &cfg;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);

    static float vecs[BATCH][DIM];
    static char ids[BATCH][16];
    static Quarry__V1__Row rows[BATCH], *rp[BATCH];
    uint64_t seed = 7;
    for (int b = 0; b < ROWS / BATCH; b++) {
        for (int i = 0; i < BATCH; i++) {
            quarry__v1__row__init(&rows[i]);
            snprintf(ids[i], sizeof ids[i], "r%d", b * BATCH + i);
            for (int j = 0; j < DIM; j++) vecs[i][j] = t_randf(&seed);
            rows[i].id = ids[i];
            rows[i].vector = vecs[i];
            rows[i].n_vector = DIM;
            rp[i] = &rows[i];
        }
        Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
        rq.collection = "s";
        rq.rows = rp;
        rq.n_rows = BATCH;
        protobuf_c_message_free_unpacked(
            RPCT_CALL(cl, "Upsert", rq, &quarry__v1__upsert_response__descriptor, ST_OK), NULL);
    }

    float qv[DIM];
    for (int j = 0; j < DIM; j++) qv[j] = t_randf(&seed);
    Quarry__V1__QueryRequest q = QUARRY__V1__QUERY_REQUEST__INIT;
    Quarry__V1__VectorClause vc = QUARRY__V1__VECTOR_CLAUSE__INIT;
    vc.vector = qv;
    vc.n_vector = DIM;
    vc.exact = 1;
    q.collection = "s";
    q.vector = &vc;
    q.k = 10;

    /* Sweeps of growing deadlines, each up to the first answer; a few rounds
     * in case a busy machine made one sweep jump over the scan. */
    int abandoned = 0, before = 0, ok = 0;
    for (int round = 0; round < 10 && !abandoned; round++) {
        for (int us = 100; us <= 200000; us += us < 5000 ? 100 : 1000) {
            qrpc_set_timeout_us(cl, us);
            char *msg = NULL;
            ProtobufCMessage *resp = NULL;
            int st = qrpc_call(cl, "/quarry.v1.Quarry/Query", &q.base,
                               &quarry__v1__query_response__descriptor, &resp, &msg);
            if (st == ST_DEADLINE_EXCEEDED) {
                if (strstr(msg, "abandoned"))
                    abandoned++;
                else
                    before++; /* before it ran, or the client's own timer */
                free(msg);
                continue;
            }
            if (st != ST_OK)
                T_FAIL("Query with a %d us deadline: %s (%s)", us, qrpc_status_name(st), msg);
            ok++;
            T_ASSERT_EQ(((Quarry__V1__QueryResponse *)resp)->n_hits, 10);
            protobuf_c_message_free_unpacked(resp, NULL);
            free(msg);
            break;
        }
    }
    printf("deadline sweep: %d abandoned mid-search, %d expired otherwise, %d answered\n",
           abandoned, before, ok);
    if (!abandoned) {
        rpct_dump_log(&srv);
        T_FAIL("no Query was abandoned mid-search by its deadline");
    }

    /* still serving, nothing left in flight */
    qrpc_set_timeout(cl, 600000);
    Quarry__V1__QueryResponse *r =
        RPCT_CALL(cl, "Query", q, &quarry__v1__query_response__descriptor, ST_OK);
    T_ASSERT_EQ(r->n_hits, 10);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    qrpc_close(cl);
    if (!rpct_log_has(&srv, "abandoned")) {
        rpct_dump_log(&srv);
        T_FAIL("the server log does not show the abandoned searches");
    }
    rpct_stop_clean(&srv);

    /* Queries on the workers: a client that cancels while its search runs
     * stops the search (the polling thread sees the cancel and the engine's
     * interrupt function reads it). Cancels after 0, 0.1, 0.2 ... ms. */
    const char *args[] = {"--query-inline", "0", NULL};
    rpct_start(&srv, data, args, NULL);
    int cancelled = 0, done = 0;
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(srv.addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    for (int round = 0; round < 10 && !rpct_log_has(&srv, "interrupted by the caller");
         round++) {
        for (int us = 0; us <= 20000; us += 100) {
            rpct_raw_call rc;
            rpct_raw_start(&rc, NULL, ch, "Query", &q.base);
            rpct_raw_wait(&rc, us);
            grpc_status_code st = rpct_raw_cancel(&rc);
            if (st == GRPC_STATUS_OK) {
                done++;
                break; /* the search ends before this delay: next round */
            }
            if (st != GRPC_STATUS_CANCELLED) T_FAIL("cancelled Query: status %d", (int)st);
            cancelled++;
        }
    }
    grpc_channel_destroy(ch);
    printf("cancel sweep: %d cancelled, %d finished first\n", cancelled, done);
    cl = rpct_client(&srv, NULL);
    r = RPCT_CALL(cl, "Query", q, &quarry__v1__query_response__descriptor, ST_OK);
    T_ASSERT_EQ(r->n_hits, 10);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    qrpc_close(cl);
    if (!rpct_log_has(&srv, "interrupted by the caller")) {
        rpct_dump_log(&srv);
        T_FAIL("no search was stopped by its client's cancel");
    }
    rpct_stop_clean(&srv);
    t_rmdir(dir);
    free(dir);
    return 0;
}
