/* SPDX-License-Identifier: MIT */
/*
 * Bad requests against a real quarryd: each gets its documented status
 * (docs/RPC.md) and a useful message, changes nothing (the collection's row
 * count, last LSN and batch count are the same afterwards), and the server
 * keeps serving. Covered: wrong dimension, NaN, empty / oversize / NUL ids,
 * a bad row in an otherwise good batch, unknown collection, k = 0, malformed
 * filter, no query clause, garbage bytes instead of a protobuf, a message
 * over --max-message-bytes, a batch over --max-batch-rows, bad collection
 * names and configs, reserved metadata keys, bad chunk options, a partial
 * update of a missing row or with a bad field list, unknown methods; missing
 * and wrong API keys; a second server on the same port or the same data
 * directory fails loudly; TLS when openssl is available.
 */
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "health.pb-c.h"
#include "rpct.h"
#include "tdb.h"

#define DIM 4

static void upsert_one(qrpc_client *cl, const char *coll, const char *id, const float *v,
                       size_t n, const char *meta, int want, const char *want_msg) {
    Quarry__V1__Row row = QUARRY__V1__ROW__INIT, *rp = &row;
    row.id = (char *)id;
    row.vector = (float *)v;
    row.n_vector = n;
    row.metadata = meta ? (char *)meta : "";
    Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
    rq.collection = (char *)coll;
    rq.rows = &rp;
    rq.n_rows = 1;
    void *r = rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base,
                        &quarry__v1__upsert_response__descriptor, want, want_msg);
    if (r) protobuf_c_message_free_unpacked(r, NULL);
}

static void query(qrpc_client *cl, const char *coll, const float *v, size_t n, uint32_t k,
                  const char *filter, int want, const char *want_msg) {
    Quarry__V1__QueryRequest rq = QUARRY__V1__QUERY_REQUEST__INIT;
    Quarry__V1__VectorClause vc = QUARRY__V1__VECTOR_CLAUSE__INIT;
    vc.vector = (float *)v;
    vc.n_vector = n;
    rq.collection = (char *)coll;
    rq.vector = v ? &vc : NULL;
    rq.k = k;
    rq.filter = filter ? (char *)filter : "";
    void *r = rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Query", &rq.base,
                        &quarry__v1__query_response__descriptor, want, want_msg);
    if (r) protobuf_c_message_free_unpacked(r, NULL);
}

static void raw(qrpc_client *cl, const char *method, const void *bytes, size_t len, int want,
                const char *want_msg) {
    char *msg = NULL;
    int st = qrpc_call_raw(cl, method, bytes, len, NULL, NULL, &msg);
    if (st != want || (want_msg && (!msg || !strstr(msg, want_msg))))
        T_FAIL("%s with raw bytes: %s (%s), want %s '%s'", method, qrpc_status_name(st),
               msg ? msg : "", qrpc_status_name(want), want_msg ? want_msg : "");
    free(msg);
}

static void same_stats(const Quarry__V1__CollectionStats *a, const Quarry__V1__CollectionStats *b) {
    T_ASSERT_EQ(a->rows, b->rows);
    T_ASSERT_EQ(a->last_lsn, b->last_lsn);
    T_ASSERT_EQ(a->batches, b->batches);
}

static void bad_requests(const rpct_server *srv) {
    qrpc_client *cl = rpct_client(srv, NULL);
    Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = DIM;
    cr.name = "c";
    cr.config = &cfg;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);
    const float v[DIM] = {1, 2, 3, 4};
    for (int i = 0; i < 10; i++) {
        char id[8];
        snprintf(id, sizeof id, "ok%d", i);
        upsert_one(cl, "c", id, v, DIM, "{\"k\":1}", ST_OK, NULL);
    }
    Quarry__V1__CollectionStats before = rpct_stats(cl, "c");
    T_ASSERT_EQ(before.rows, 10);

    /* rows */
    upsert_one(cl, "c", "x", v, 3, NULL, ST_INVALID_ARGUMENT, "dim");
    const float nan[DIM] = {1, NAN, 3, 4};
    upsert_one(cl, "c", "x", nan, DIM, NULL, ST_INVALID_ARGUMENT, "NaN");
    const float inf[DIM] = {1, INFINITY, 3, 4};
    upsert_one(cl, "c", "x", inf, DIM, NULL, ST_INVALID_ARGUMENT, "infinite");
    upsert_one(cl, "c", "", v, DIM, NULL, ST_INVALID_ARGUMENT, "id is empty");
    char longid[QUARRY_MAX_ID_LEN + 2];
    memset(longid, 'a', QUARRY_MAX_ID_LEN + 1);
    longid[QUARRY_MAX_ID_LEN + 1] = '\0';
    upsert_one(cl, "c", longid, v, DIM, NULL, ST_INVALID_ARGUMENT, "longer than");
    upsert_one(cl, "c", "x", v, DIM, "[1,2]", ST_INVALID_ARGUMENT, NULL);
    upsert_one(cl, "c", "x", v, DIM, "{\"a\":{\"b\":1}}", ST_INVALID_ARGUMENT, NULL);
    upsert_one(cl, "nope", "x", v, DIM, NULL, ST_NOT_FOUND, "nope");
    upsert_one(cl, "", "x", v, DIM, NULL, ST_INVALID_ARGUMENT, "collection");
    {
        /* a good row then a bad one: the batch is atomic, the good row is not stored */
        Quarry__V1__Row a = QUARRY__V1__ROW__INIT, b = QUARRY__V1__ROW__INIT, *rp[] = {&a, &b};
        a.id = "good";
        a.vector = (float *)v;
        a.n_vector = DIM;
        b.id = "bad";
        b.vector = (float *)nan;
        b.n_vector = DIM;
        Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
        rq.collection = "c";
        rq.rows = rp;
        rq.n_rows = 2;
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
                  ST_INVALID_ARGUMENT, "row 1 (id 'bad')");
    }
    /* an id with a NUL byte inside, written by hand: UpsertRequest{collection "c",
     * rows [{id "a\0b", vector [1,2,3,4]}]} */
    static const unsigned char nul_id[] = {
        0x0a, 0x01, 'c',  0x12, 0x17, 0x0a, 0x03, 'a',  0x00, 'b',  0x12, 0x10, 0,
        0,    0x80, 0x3f, 0,    0,    0,    0x40, 0,    0,    0x40, 0x40, 0,    0,
        0x80, 0x40};
    raw(cl, "/quarry.v1.Quarry/Upsert", nul_id, sizeof nul_id, ST_INVALID_ARGUMENT, "NUL");
    /* garbage bytes instead of a protobuf */
    static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x07, 0x13, 0x37};
    raw(cl, "/quarry.v1.Quarry/Upsert", garbage, sizeof garbage, ST_INVALID_ARGUMENT,
        "not a valid quarry.v1.UpsertRequest");
    raw(cl, "/quarry.v1.Quarry/Query", garbage, sizeof garbage, ST_INVALID_ARGUMENT, NULL);
    raw(cl, "/quarry.v1.Quarry/NoSuchMethod", "", 0, ST_UNIMPLEMENTED, "unknown method");
    raw(cl, "/other.Service/Call", "", 0, ST_UNIMPLEMENTED, NULL);

    /* queries */
    query(cl, "c", v, DIM, 0, NULL, ST_INVALID_ARGUMENT, "k must be");
    query(cl, "c", v, DIM, QUARRY_MAX_K + 1, NULL, ST_INVALID_ARGUMENT, "k must be");
    query(cl, "c", v, 3, 5, NULL, ST_INVALID_ARGUMENT, "dim");
    query(cl, "c", nan, DIM, 5, NULL, ST_INVALID_ARGUMENT, NULL);
    query(cl, "c", v, DIM, 5, "{\"k\":", ST_INVALID_ARGUMENT, "filter");
    query(cl, "c", v, DIM, 5, "[1]", ST_INVALID_ARGUMENT, "filter");
    query(cl, "nope", v, DIM, 5, NULL, ST_NOT_FOUND, "nope");
    query(cl, "c", NULL, 0, 5, NULL, ST_INVALID_ARGUMENT, "clause");

    /* collections */
    cr.name = "bad name!";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/CreateCollection", &cr.base, NULL,
              ST_INVALID_ARGUMENT, NULL);
    cr.name = "c";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/CreateCollection", &cr.base, NULL,
              ST_ALREADY_EXISTS, NULL);
    cr.name = "d";
    cfg.metric = (Quarry__V1__Metric)42;
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/CreateCollection", &cr.base, NULL,
              ST_INVALID_ARGUMENT, "metric");
    cfg.metric = QUARRY__V1__METRIC__METRIC_L2;
    cfg.dim = QUARRY_MAX_DIM + 1;
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/CreateCollection", &cr.base, NULL,
              ST_INVALID_ARGUMENT, NULL);
    Quarry__V1__DropCollectionRequest dr = QUARRY__V1__DROP_COLLECTION_REQUEST__INIT;
    dr.name = "never";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/DropCollection", &dr.base, NULL,
              ST_NOT_FOUND, "never");
    Quarry__V1__DescribeCollectionRequest de = QUARRY__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    de.name = "never";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/DescribeCollection", &de.base, NULL,
              ST_NOT_FOUND, NULL);

    /* documents and chunking */
    Quarry__V1__UpsertDocumentRequest ud = QUARRY__V1__UPSERT_DOCUMENT_REQUEST__INIT;
    ud.collection = "c";
    ud.id = "doc";
    ud.text = "One sentence. Two sentences.";
    ud.metadata = "{\"_parent\":\"x\"}";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/UpsertDocument", &ud.base, NULL,
              ST_INVALID_ARGUMENT, "reserved");
    ud.metadata = "";
    Quarry__V1__Vector vec = QUARRY__V1__VECTOR__INIT, *vp[] = {&vec, &vec};
    vec.values = (float *)v;
    vec.n_values = DIM;
    ud.vectors = vp;
    ud.n_vectors = 2; /* one chunk, two vectors */
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/UpsertDocument", &ud.base, NULL,
              ST_INVALID_ARGUMENT, "vectors");
    ud.n_vectors = 0;
    ud.id = "";
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/UpsertDocument", &ud.base, NULL,
              ST_INVALID_ARGUMENT, "id");
    Quarry__V1__ChunkRequest ch = QUARRY__V1__CHUNK_REQUEST__INIT;
    Quarry__V1__ChunkOptions co = QUARRY__V1__CHUNK_OPTIONS__INIT;
    co.max = 5;
    co.overlap = 5;
    ch.text = "a b c";
    ch.options = &co;
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Chunk", &ch.base, NULL,
              ST_INVALID_ARGUMENT, "overlap");
    co.overlap = 0;
    co.strategy = (Quarry__V1__ChunkStrategy)99;
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Chunk", &ch.base, NULL,
              ST_INVALID_ARGUMENT, "strategy");

    /* partial updates: a missing row among existing ones writes nothing; bad
     * field lists and bad values are refused */
    {
        const float w[DIM] = {4, 3, 2, 1};
        Quarry__V1__Row a = QUARRY__V1__ROW__INIT, b = QUARRY__V1__ROW__INIT, *rp[] = {&a, &b};
        a.id = "ok1";
        a.vector = (float *)w;
        a.n_vector = DIM;
        b.id = "ghost";
        b.vector = (float *)w;
        b.n_vector = DIM;
        Quarry__V1__Field f[] = {QUARRY__V1__FIELD__FIELD_VECTOR,
                                 QUARRY__V1__FIELD__FIELD_UNSPECIFIED};
        Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
        rq.collection = "c";
        rq.rows = rp;
        rq.n_rows = 2;
        rq.update_fields = f;
        rq.n_update_fields = 1;
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
                  ST_NOT_FOUND, "'ghost'");
        rq.n_update_fields = 2; /* FIELD_UNSPECIFIED */
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
                  ST_INVALID_ARGUMENT, "update_fields");
        f[1] = (Quarry__V1__Field)17; /* outside the schema */
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
                  ST_INVALID_ARGUMENT, "update_fields");
        rq.n_rows = 1;
        rq.n_update_fields = 1;
        a.n_vector = DIM - 1;
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
                  ST_INVALID_ARGUMENT, "row 0 (id 'ok1')");
        a.n_vector = DIM;
        a.vector = (float *)nan;
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
                  ST_INVALID_ARGUMENT, "NaN");
        a.vector = (float *)w;
        rq.collection = "nope";
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
                  ST_NOT_FOUND, "nope");
        /* ok1 still has its old vector */
        char *ids[] = {"ok1"};
        Quarry__V1__GetRequest g = QUARRY__V1__GET_REQUEST__INIT;
        g.collection = "c";
        g.ids = ids;
        g.n_ids = 1;
        Quarry__V1__GetResponse *gr =
            RPCT_CALL(cl, "Get", g, &quarry__v1__get_response__descriptor, ST_OK);
        T_ASSERT(gr->n_rows == 1 && gr->rows[0]->n_vector == DIM);
        T_ASSERT(memcmp(gr->rows[0]->vector, v, sizeof v) == 0);
        T_ASSERT_STREQ(gr->rows[0]->metadata, "{\"k\":1}");
        protobuf_c_message_free_unpacked(&gr->base, NULL);
    }

    /* nothing changed, and the server still serves */
    Quarry__V1__CollectionStats after = rpct_stats(cl, "c");
    same_stats(&before, &after);
    query(cl, "c", v, DIM, 3, NULL, ST_OK, NULL);
    upsert_one(cl, "c", "ok10", v, DIM, NULL, ST_OK, NULL);
    T_ASSERT_EQ(rpct_stats(cl, "c").rows, 11);
    qrpc_close(cl);
}

/* A server with small limits: oversize messages and batches are refused. */
static void limits(const char *dir) {
    char data[1100];
    snprintf(data, sizeof data, "%s/limits", dir);
    const char *args[] = {"--max-message-bytes", "65536", "--max-batch-rows", "50", NULL};
    rpct_server srv;
    rpct_start(&srv, data, args, NULL);
    qrpc_client *cl = rpct_client(&srv, NULL);
    Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = 128;
    cr.name = "big";
    cr.config = &cfg;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);
    Quarry__V1__CollectionStats before = rpct_stats(cl, "big");
    static float vecs[200][128];
    static char ids[200][8];
    Quarry__V1__Row rows[200], *rp[200];
    for (int i = 0; i < 200; i++) {
        quarry__v1__row__init(&rows[i]);
        snprintf(ids[i], sizeof ids[i], "%d", i);
        for (int j = 0; j < 128; j++) vecs[i][j] = (float)(i + j);
        rows[i].id = ids[i];
        rows[i].vector = vecs[i];
        rows[i].n_vector = 128;
        rp[i] = &rows[i];
    }
    Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
    rq.collection = "big";
    rq.rows = rp;
    rq.n_rows = 200; /* ~104 KB: over the 64 KiB message limit */
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
              ST_RESOURCE_EXHAUSTED, "larger than max");
    rq.n_rows = 51; /* ~27 KB, but over --max-batch-rows */
    rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/Upsert", &rq.base, NULL,
              ST_RESOURCE_EXHAUSTED, "max-batch-rows");
    Quarry__V1__CollectionStats after = rpct_stats(cl, "big");
    same_stats(&before, &after);
    rq.n_rows = 50;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(cl, "Upsert", rq, &quarry__v1__upsert_response__descriptor, ST_OK), NULL);
    /* the server keeps serving within the limits */
    char *gids[50];
    for (int i = 0; i < 50; i++) gids[i] = ids[i];
    Quarry__V1__GetRequest g = QUARRY__V1__GET_REQUEST__INIT;
    g.collection = "big";
    g.ids = gids;
    g.n_ids = 50;
    Quarry__V1__GetResponse *gr =
        RPCT_CALL(cl, "Get", g, &quarry__v1__get_response__descriptor, ST_OK);
    T_ASSERT_EQ(gr->n_rows, 50);
    protobuf_c_message_free_unpacked(&gr->base, NULL);
    qrpc_close(cl);

    /* a second server on the same port must fail loudly (no SO_REUSEPORT) */
    char data2[1100], listen[80];
    snprintf(data2, sizeof data2, "%s/second", dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", srv.port);
    const char *args2[] = {"--listen", listen, NULL};
    rpct_server srv2;
    int st = rpct_try_start(&srv2, data2, args2, NULL);
    if (st != 2) {
        if (st < 0) rpct_stop(&srv2, SIGKILL);
        rpct_dump_log(&srv2);
        T_FAIL("a second server on port %d: exit status %d, want 2", srv.port, st);
    }
    T_ASSERT(rpct_log_has(&srv2, "listen_failed"));
    /* ... and so must a second server on the same data directory */
    st = rpct_try_start(&srv2, data, NULL, NULL);
    if (st != 2) {
        if (st < 0) rpct_stop(&srv2, SIGKILL);
        T_FAIL("a second server on the same directory: exit status %d, want 2", st);
    }
    T_ASSERT(rpct_log_has(&srv2, "open_failed"));
    T_ASSERT_EQ(rpct_stop(&srv, SIGTERM), 0);
}

static void auth(const char *dir) {
    char data[1100];
    snprintf(data, sizeof data, "%s/auth", dir);
    rpct_server srv;
    rpct_start(&srv, data, NULL, "s3cret-key");
    qrpc_client *good = rpct_client(&srv, "s3cret-key");
    Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    cfg.dim = DIM;
    cr.name = "c";
    cr.config = &cfg;
    protobuf_c_message_free_unpacked(
        RPCT_CALL(good, "CreateCollection", cr, &quarry__v1__collection_info__descriptor, ST_OK),
        NULL);
    const float v[DIM] = {1, 2, 3, 4};
    upsert_one(good, "c", "a", v, DIM, NULL, ST_OK, NULL);
    Quarry__V1__CollectionStats before = rpct_stats(good, "c");

    const char *bad_keys[] = {NULL, "wrong", "s3cret-ke", "s3cret-key-", ""};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        qrpc_client *cl = rpct_client(&srv, bad_keys[i]);
        upsert_one(cl, "c", "b", v, DIM, NULL, ST_UNAUTHENTICATED, NULL);
        query(cl, "c", v, DIM, 1, NULL, ST_UNAUTHENTICATED, NULL);
        Quarry__V1__DropCollectionRequest dr = QUARRY__V1__DROP_COLLECTION_REQUEST__INIT;
        dr.name = "c";
        rpct_call(__FILE__, __LINE__, cl, "/quarry.v1.Quarry/DropCollection", &dr.base, NULL,
                  ST_UNAUTHENTICATED, NULL);
        /* health checks need no key */
        Grpc__Health__V1__HealthCheckRequest hq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
        void *r = rpct_call(__FILE__, __LINE__, cl, "/grpc.health.v1.Health/Check", &hq.base,
                            &grpc__health__v1__health_check_response__descriptor, ST_OK, NULL);
        protobuf_c_message_free_unpacked(r, NULL);
        qrpc_close(cl);
    }
    Quarry__V1__CollectionStats after = rpct_stats(good, "c");
    same_stats(&before, &after);
    query(good, "c", v, DIM, 1, NULL, ST_OK, NULL);
    qrpc_close(good);
    T_ASSERT_EQ(rpct_stop(&srv, SIGTERM), 0);
    T_ASSERT(rpct_log_has(&srv, "code=UNAUTHENTICATED"));
}

static void tls(const char *dir) {
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "note: no openssl: TLS not tested\n");
        return;
    }
    char cmd[4096], cert[1100], key[1100], data[1100];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(data, sizeof data, "%s/tls", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '%s' -out '%s' "
             ">/dev/null 2>&1",
             key, cert);
    if (system(cmd) != 0) T_FAIL("openssl could not make a test certificate");
    const char *args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    rpct_server srv;
    rpct_start(&srv, data, args, NULL);
    qrpc_options o = {.tls_ca_file = cert, .timeout_ms = 20000};
    qrpc_client *cl;
    const char *err;
    if (qrpc_connect(srv.addr, &o, &cl, &err) != 0) T_FAIL("connect: %s", err);
    Quarry__V1__ListCollectionsRequest lr = QUARRY__V1__LIST_COLLECTIONS_REQUEST__INIT;
    protobuf_c_message_free_unpacked(RPCT_CALL(cl, "ListCollections", lr,
                                               &quarry__v1__list_collections_response__descriptor,
                                               ST_OK),
                                     NULL);
    qrpc_close(cl);
    /* a plaintext client cannot talk to it */
    qrpc_options po = {.timeout_ms = 3000};
    if (qrpc_connect(srv.addr, &po, &cl, &err) != 0) T_FAIL("connect: %s", err);
    char *msg = NULL;
    int st = qrpc_call(cl, "/quarry.v1.Quarry/ListCollections", &lr.base, NULL, NULL, &msg);
    T_ASSERT(st == ST_UNAVAILABLE || st == ST_DEADLINE_EXCEEDED || st == ST_INTERNAL);
    free(msg);
    qrpc_close(cl);
    T_ASSERT_EQ(rpct_stop(&srv, SIGTERM), 0);
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("rpc-errors");
    char data[1100];
    snprintf(data, sizeof data, "%s/main", dir);
    rpct_server srv;
    rpct_start(&srv, data, NULL, NULL);
    bad_requests(&srv);
    rpct_stop_clean(&srv);
    T_ASSERT(rpct_log_has(&srv, "code=INVALID_ARGUMENT"));
    limits(dir);
    auth(dir);
    tls(dir);
    t_rmdir(dir);
    free(dir);
    printf("ok\n");
    return 0;
}
