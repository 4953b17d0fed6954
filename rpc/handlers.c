/* SPDX-License-Identifier: MIT */
/*
 * handlers.c -- one function per RPC, and the method table.
 *
 * Each handler gets the decoded request, calls the public engine API, builds
 * the response in the call's arena (or borrows strings and vectors from the
 * engine's results, which it frees after rpc_reply_msg has packed them), and
 * finishes with exactly one rpc_reply_* call. Engine failures are answered by
 * rpc_reply_rc right after the failing call, on the same thread, so the
 * status detail is that call's quarry_errmsg().
 *
 * Validation lives in the engine (ids, dimensions, NaN, JSON, filters, k);
 * handlers only check what the engine cannot see: required request fields,
 * enum values outside the schema, and the server's own batch limit -- plus
 * the IVF query knobs (nprobe, refine), whose bounds are checked before the
 * collection is opened so the message names the request field.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.pb-c.h"
#include "quarry.pb-c.h"
#include "rpc/rpc.h"

#define NEW(var, desc)                                                                  \
    do {                                                                                \
        if (!((var) = msg_new(c, &(desc)))) goto nomem;                                 \
    } while (0)

/* IVF lists: at most 65536 (include/quarry.h, ivf_nlist), so nprobe too. */
#define RPC_MAX_IVF_NLIST 65536u

static void *msg_new(rpc_call *c, const ProtobufCMessageDescriptor *d) {
    void *p = arena_alloc(&c->ar, d->sizeof_message);
    if (p) protobuf_c_message_init(d, p);
    return p;
}

static void reply_nomem(rpc_call *c) {
    rpc_reply_status(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory building the response");
}

/* Opens the collection a request names; replies and returns -1 on failure. */
static int open_coll(rpc_call *c, const char *name, quarry_coll **out) {
    *out = NULL;
    if (!name || !*name) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the collection name is missing");
        return -1;
    }
    int rc = quarry_collection_open(c->srv->db, name, out);
    if (rc) {
        rpc_reply_rc(c, rc, NULL);
        return -1;
    }
    return 0;
}

static int over_limit(rpc_call *c, size_t n, const char *what) {
    if ((long)n <= c->srv->cfg.max_batch_rows) return 0;
    rpc_reply_status(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
                     "%zu %s in one request; the server's limit is %ld (--max-batch-rows)", n,
                     what, c->srv->cfg.max_batch_rows);
    return 1;
}

static const char *opt_str(const char *s) { return s && *s ? s : NULL; }

/* ------------------------------------------------------------------ enums */

static int metric_in(Quarry__V1__Metric m, quarry_metric *out) {
    switch (m) {
    case QUARRY__V1__METRIC__METRIC_UNSPECIFIED: return 1;
    case QUARRY__V1__METRIC__METRIC_L2: *out = QUARRY_METRIC_L2; return 1;
    case QUARRY__V1__METRIC__METRIC_IP: *out = QUARRY_METRIC_IP; return 1;
    case QUARRY__V1__METRIC__METRIC_COSINE: *out = QUARRY_METRIC_COSINE; return 1;
    default: return 0;
    }
}

static Quarry__V1__Metric metric_out(quarry_metric m) {
    return m == QUARRY_METRIC_IP       ? QUARRY__V1__METRIC__METRIC_IP
           : m == QUARRY_METRIC_COSINE ? QUARRY__V1__METRIC__METRIC_COSINE
                                       : QUARRY__V1__METRIC__METRIC_L2;
}

static int index_in(Quarry__V1__IndexKind k, quarry_index_kind *out) {
    switch (k) {
    case QUARRY__V1__INDEX_KIND__INDEX_UNSPECIFIED: return 1;
    case QUARRY__V1__INDEX_KIND__INDEX_FLAT: *out = QUARRY_INDEX_FLAT; return 1;
    case QUARRY__V1__INDEX_KIND__INDEX_HNSW: *out = QUARRY_INDEX_HNSW; return 1;
    case QUARRY__V1__INDEX_KIND__INDEX_IVFPQ: *out = QUARRY_INDEX_IVFPQ; return 1;
    default: return 0;
    }
}

static Quarry__V1__IndexKind index_out(quarry_index_kind k) {
    return k == QUARRY_INDEX_HNSW    ? QUARRY__V1__INDEX_KIND__INDEX_HNSW
           : k == QUARRY_INDEX_IVFPQ ? QUARRY__V1__INDEX_KIND__INDEX_IVFPQ
                                     : QUARRY__V1__INDEX_KIND__INDEX_FLAT;
}

static int durability_in(Quarry__V1__Durability d, quarry_durability *out) {
    switch (d) {
    case QUARRY__V1__DURABILITY__DURABILITY_UNSPECIFIED: return 1;
    case QUARRY__V1__DURABILITY__DURABILITY_SYNC: *out = QUARRY_DURABILITY_SYNC; return 1;
    case QUARRY__V1__DURABILITY__DURABILITY_INTERVAL:
        *out = QUARRY_DURABILITY_INTERVAL;
        return 1;
    case QUARRY__V1__DURABILITY__DURABILITY_NONE: *out = QUARRY_DURABILITY_NONE; return 1;
    default: return 0;
    }
}

static Quarry__V1__Durability durability_out(quarry_durability d) {
    return d == QUARRY_DURABILITY_INTERVAL ? QUARRY__V1__DURABILITY__DURABILITY_INTERVAL
           : d == QUARRY_DURABILITY_NONE   ? QUARRY__V1__DURABILITY__DURABILITY_NONE
                                           : QUARRY__V1__DURABILITY__DURABILITY_SYNC;
}

/* Field list -> QUARRY_RETURN_* bits; -1 for a value outside the schema. */
static int fields_in(const Quarry__V1__Field *f, size_t n, unsigned *bits) {
    *bits = 0;
    for (size_t i = 0; i < n; i++) {
        switch (f[i]) {
        case QUARRY__V1__FIELD__FIELD_TEXT: *bits |= QUARRY_RETURN_TEXT; break;
        case QUARRY__V1__FIELD__FIELD_METADATA: *bits |= QUARRY_RETURN_METADATA; break;
        case QUARRY__V1__FIELD__FIELD_VECTOR: *bits |= QUARRY_RETURN_VECTOR; break;
        default: return -1;
        }
    }
    return 0;
}

/* Chunk options from the request; replies and returns -1 when invalid. */
static int chunk_options_in(rpc_call *c, const Quarry__V1__ChunkOptions *in,
                            quarry_chunk_options *o) {
    quarry_chunk_options_init(o);
    if (!in) return 0;
    switch (in->strategy) {
    case QUARRY__V1__CHUNK_STRATEGY__CHUNK_STRATEGY_UNSPECIFIED:
    case QUARRY__V1__CHUNK_STRATEGY__CHUNK_SENTENCE: o->strategy = QUARRY_CHUNK_SENTENCE; break;
    case QUARRY__V1__CHUNK_STRATEGY__CHUNK_FIXED_CHARS:
        o->strategy = QUARRY_CHUNK_FIXED_CHARS;
        break;
    case QUARRY__V1__CHUNK_STRATEGY__CHUNK_FIXED_WORDS:
        o->strategy = QUARRY_CHUNK_FIXED_WORDS;
        break;
    case QUARRY__V1__CHUNK_STRATEGY__CHUNK_RECURSIVE: o->strategy = QUARRY_CHUNK_RECURSIVE; break;
    case QUARRY__V1__CHUNK_STRATEGY__CHUNK_MARKDOWN: o->strategy = QUARRY_CHUNK_MARKDOWN; break;
    default:
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "unknown chunk strategy %d",
                         (int)in->strategy);
        return -1;
    }
    o->max = in->max;
    if (in->no_overlap && in->overlap) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "overlap and no_overlap are both set");
        return -1;
    }
    o->overlap = in->no_overlap ? 0 : in->overlap ? in->overlap : QUARRY_CHUNK_DEFAULT;
    return 0;
}

/* ------------------------------------------------------------------ collections */

static Quarry__V1__CollectionInfo *collection_info(rpc_call *c, quarry_coll *coll, int *rc) {
    Quarry__V1__CollectionInfo *info = msg_new(c, &quarry__v1__collection_info__descriptor);
    Quarry__V1__CollectionConfig *cfg = msg_new(c, &quarry__v1__collection_config__descriptor);
    Quarry__V1__CollectionStats *st = msg_new(c, &quarry__v1__collection_stats__descriptor);
    const char *name = quarry_collection_name(coll);
    *rc = QUARRY_NOMEM;
    if (!info || !cfg || !st || !(info->name = arena_strndup(&c->ar, name, strlen(name))))
        return NULL;
    quarry_collection_config qc;
    quarry_coll_stats qs;
    quarry_collection_config_init(&qc);
    memset(&qs, 0, sizeof qs);
    qs.size = sizeof qs;
    if ((*rc = quarry_collection_config_get(coll, &qc)) ||
        (*rc = quarry_collection_stats(coll, &qs)))
        return NULL;
    cfg->dim = qc.dim;
    cfg->metric = metric_out(qc.metric);
    cfg->index = index_out(qc.index);
    cfg->durability = durability_out(qc.durability);
    cfg->interval_ms = qc.interval_ms;
    cfg->hnsw_m = qc.hnsw_m;
    cfg->hnsw_ef_construction = qc.hnsw_ef_construction;
    cfg->hnsw_ef_search = qc.hnsw_ef_search;
    cfg->ivf_nlist = qc.ivf_nlist;
    cfg->pq_m = qc.pq_m;
    cfg->ivf_nprobe = qc.ivf_nprobe;
    cfg->ivf_refine = qc.ivf_refine;
    cfg->ivf_train_rows = qc.ivf_train_rows;
    st->rows = qs.rows;
    st->rows_with_vector = qs.rows_with_vector;
    st->dead_rows = qs.dead_rows;
    st->segments = qs.segments;
    st->disk_bytes = qs.disk_bytes;
    st->live_bytes_estimate = qs.live_bytes_estimate;
    st->memory_bytes = qs.memory_bytes;
    st->last_lsn = qs.last_lsn;
    st->batches = qs.batches;
    st->syncs = qs.syncs;
    st->compactions = qs.compactions;
    st->searches = qs.searches;
    st->searches_exact = qs.searches_exact;
    st->index_bytes = qs.index_bytes;
    st->ivf_nlist = qs.ivf_nlist;
    st->pq_m = qs.pq_m;
    st->ivf_training = qs.ivf_training != 0;
    st->ivf_rows = qs.ivf_rows;
    st->ivf_code_bytes = qs.ivf_code_bytes;
    info->config = cfg;
    info->stats = st;
    *rc = 0;
    return info;
}

/* Replies with the CollectionInfo of `coll` (and closes it). */
static void reply_info(rpc_call *c, quarry_coll *coll) {
    int rc;
    Quarry__V1__CollectionInfo *info = collection_info(c, coll, &rc);
    if (info) rpc_reply_msg(c, &info->base);
    else if (rc == QUARRY_NOMEM) reply_nomem(c);
    else rpc_reply_rc(c, rc, NULL);
    quarry_collection_close(coll);
}

static void h_create_collection(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__CreateCollectionRequest *r = (const void *)m;
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    const Quarry__V1__CollectionConfig *in = r->config;
    if (in) {
        if (!metric_in(in->metric, &cfg.metric) || !index_in(in->index, &cfg.index) ||
            !durability_in(in->durability, &cfg.durability)) {
            rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT,
                             "unknown metric, index or durability value");
            return;
        }
        cfg.dim = in->dim;
        if (in->interval_ms) cfg.interval_ms = in->interval_ms;
        if (in->hnsw_m) cfg.hnsw_m = in->hnsw_m;
        if (in->hnsw_ef_construction) cfg.hnsw_ef_construction = in->hnsw_ef_construction;
        if (in->hnsw_ef_search) cfg.hnsw_ef_search = in->hnsw_ef_search;
        if (in->ivf_nlist) cfg.ivf_nlist = in->ivf_nlist;
        if (in->pq_m) cfg.pq_m = in->pq_m;
        if (in->ivf_nprobe) cfg.ivf_nprobe = in->ivf_nprobe;
        if (in->ivf_refine) cfg.ivf_refine = in->ivf_refine;
        if (in->ivf_train_rows) cfg.ivf_train_rows = in->ivf_train_rows;
    }
    if (!*r->name) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the collection name is missing");
        return;
    }
    quarry_coll *coll = NULL;
    int rc = quarry_collection_create(c->srv->db, r->name, &cfg, &coll);
    if ((rc & 0xff) == QUARRY_EXISTS && r->if_not_exists)
        rc = quarry_collection_open(c->srv->db, r->name, &coll);
    if (rc) {
        rpc_reply_rc(c, rc, NULL);
        return;
    }
    rpc_log(LOG_INFO, "collection_created", NULL, "collection=%s dim=%u", r->name, cfg.dim);
    reply_info(c, coll);
}

static void h_drop_collection(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__DropCollectionRequest *r = (const void *)m;
    Quarry__V1__DropCollectionResponse *resp;
    NEW(resp, quarry__v1__drop_collection_response__descriptor);
    if (!*r->name) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the collection name is missing");
        return;
    }
    int rc = quarry_collection_drop(c->srv->db, r->name);
    if (rc && !((rc & 0xff) == QUARRY_NOTFOUND && r->if_exists)) {
        rpc_reply_rc(c, rc, NULL);
        return;
    }
    resp->dropped = rc == 0;
    if (rc == 0) rpc_log(LOG_INFO, "collection_dropped", NULL, "collection=%s", r->name);
    rpc_reply_msg(c, &resp->base);
    return;
nomem:
    reply_nomem(c);
}

/* Infos of every collection (or of one); replies itself on failure. */
static int collect_infos(rpc_call *c, const char *only, Quarry__V1__CollectionInfo ***out,
                         size_t *nout) {
    char **names = NULL;
    size_t count = 0;
    int rc;
    *out = NULL, *nout = 0;
    if (only) {
        names = (char **)&only;
        count = 1;
    } else if ((rc = quarry_collection_list(c->srv->db, &names, &count))) {
        rpc_reply_rc(c, rc, NULL);
        return -1;
    }
    Quarry__V1__CollectionInfo **v = arena_array(&c->ar, count ? count : 1, sizeof *v);
    int status = v ? 0 : -1;
    if (!v) reply_nomem(c);
    for (size_t i = 0; !status && i < count; i++) {
        quarry_coll *coll = NULL;
        rc = quarry_collection_open(c->srv->db, names[i], &coll);
        if ((rc & 0xff) == QUARRY_NOTFOUND && !only) continue; /* dropped meanwhile */
        if (rc) {
            rpc_reply_rc(c, rc, NULL);
            status = -1;
            break;
        }
        Quarry__V1__CollectionInfo *info = collection_info(c, coll, &rc);
        if (!info) {
            if (rc == QUARRY_NOMEM) reply_nomem(c);
            else rpc_reply_rc(c, rc, NULL);
            status = -1;
        } else {
            v[(*nout)++] = info;
        }
        quarry_collection_close(coll);
    }
    if (!only) quarry_free(names);
    *out = v;
    return status;
}

static void h_list_collections(rpc_call *c, const ProtobufCMessage *m) {
    (void)m;
    Quarry__V1__ListCollectionsResponse *resp;
    NEW(resp, quarry__v1__list_collections_response__descriptor);
    if (collect_infos(c, NULL, &resp->collections, &resp->n_collections) == 0)
        rpc_reply_msg(c, &resp->base);
    return;
nomem:
    reply_nomem(c);
}

static void h_describe_collection(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__DescribeCollectionRequest *r = (const void *)m;
    quarry_coll *coll;
    if (open_coll(c, r->name, &coll) == 0) reply_info(c, coll);
}

static void h_stats(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__StatsRequest *r = (const void *)m;
    Quarry__V1__StatsResponse *resp;
    Quarry__V1__ServerStats *ss;
    NEW(resp, quarry__v1__stats_response__descriptor);
    NEW(ss, quarry__v1__server_stats__descriptor);
    if (collect_infos(c, opt_str(r->collection), &resp->collections, &resp->n_collections))
        return;
    rpc_server *s = c->srv;
    ss->version = (char *)quarry_version();
    ss->uptime_ms = (rpc_now_ns() - s->start_ns) / 1000000u;
    ss->calls = atomic_load(&s->calls);
    ss->failed = atomic_load(&s->failed);
    ss->in_flight = (uint32_t)atomic_load(&s->in_flight);
    ss->io_backend = (char *)quarry_io_backend_name(s->db);
    resp->server = ss;
    rpc_reply_msg(c, &resp->base);
    return;
nomem:
    reply_nomem(c);
}

/* ------------------------------------------------------------------ training */

/*
 * Train runs on a worker (RUN_WORKER): with wait it blocks until the training
 * thread is done, which takes minutes on a large collection. The engine gives
 * a waiting caller no interruption point, so a client that cancels or whose
 * deadline passes does not stop the training (it goes on in the background),
 * and a server shutdown waits for it like for any running handler.
 */
static void h_train(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__TrainRequest *r = (const void *)m;
    Quarry__V1__TrainResponse *resp;
    quarry_coll *coll;
    NEW(resp, quarry__v1__train_response__descriptor);
    if (open_coll(c, r->collection, &coll)) return;
    int rc = quarry_collection_train(coll, r->wait);
    quarry_coll_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (rc == 0) rc = quarry_collection_stats(coll, &st);
    if (rc) {
        rpc_reply_rc(c, rc, "train");
        quarry_collection_close(coll);
        return;
    }
    if (r->wait)
        rpc_log(LOG_INFO, "collection_trained", NULL,
                "collection=%s nlist=%u pq_m=%u rows=%lu", r->collection, st.ivf_nlist, st.pq_m,
                (unsigned long)st.ivf_rows);
    quarry_collection_close(coll);
    if (rpc_call_stopped(c)) return; /* nobody waits for the answer any more */
    resp->nlist = st.ivf_nlist;
    resp->pq_m = st.pq_m;
    resp->rows = st.ivf_rows;
    resp->training = st.ivf_training != 0;
    rpc_reply_msg(c, &resp->base);
    return;
nomem:
    reply_nomem(c);
}

/* ------------------------------------------------------------------ rows */

static void h_upsert(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__UpsertRequest *r = (const void *)m;
    Quarry__V1__UpsertResponse *resp;
    quarry_coll *coll = NULL;
    quarry_batch *b = NULL;
    unsigned update; /* QUARRY_FIELD_* of a partial update; 0 = whole rows */
    NEW(resp, quarry__v1__upsert_response__descriptor);
    if (fields_in(r->update_fields, r->n_update_fields, &update)) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT,
                         "update_fields: FIELD_UNSPECIFIED or an unknown field value");
        return;
    }
    if (over_limit(c, r->n_rows, "rows") || open_coll(c, r->collection, &coll)) return;
    int rc = quarry_batch_new(coll, &b);
    if (rc) {
        rpc_reply_rc(c, rc, NULL);
        goto out;
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        const Quarry__V1__Row *in = r->rows[i];
        char what[340];
        snprintf(what, sizeof what, "row %zu (id '%.256s')", i, in->id);
        if (in->n_vector > QUARRY_MAX_DIM) {
            rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: vector has %zu values", what,
                             in->n_vector);
            goto out;
        }
        quarry_row row = {.id = in->id,
                          .id_len = strlen(in->id),
                          .vector = in->n_vector ? in->vector : NULL,
                          .dim = (uint32_t)in->n_vector,
                          .text = opt_str(in->text),
                          .metadata = opt_str(in->metadata)};
        if (row.id_len == 0) {
            rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: id is empty", what);
            goto out;
        }
        rc = update ? quarry_batch_update(b, &row, update) : quarry_batch_upsert(b, &row);
        if (rc) {
            rpc_reply_rc(c, rc, what);
            goto out;
        }
    }
    if ((rc = quarry_batch_commit(b))) {
        rpc_reply_rc(c, rc, "commit");
        goto out;
    }
    resp->upserted = (uint32_t)r->n_rows;
    rpc_reply_msg(c, &resp->base);
out:
    quarry_batch_free(b);
    quarry_collection_close(coll);
    return;
nomem:
    reply_nomem(c);
}

static void h_delete(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__DeleteRequest *r = (const void *)m;
    Quarry__V1__DeleteResponse *resp;
    quarry_coll *coll;
    NEW(resp, quarry__v1__delete_response__descriptor);
    if (over_limit(c, r->n_ids, "ids") || open_coll(c, r->collection, &coll)) return;
    for (size_t i = 0; i < r->n_ids; i++)
        if (!*r->ids[i]) {
            rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "id %zu is empty", i);
            quarry_collection_close(coll);
            return;
        }
    size_t n = 0;
    int rc = quarry_delete(coll, (const char *const *)r->ids, r->n_ids, &n);
    if (rc) {
        rpc_reply_rc(c, rc, NULL);
    } else {
        resp->deleted = (uint32_t)n;
        rpc_reply_msg(c, &resp->base);
    }
    quarry_collection_close(coll);
    return;
nomem:
    reply_nomem(c);
}

static void h_get(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__GetRequest *r = (const void *)m;
    Quarry__V1__GetResponse *resp;
    quarry_coll *coll = NULL;
    quarry_doc **docs = NULL;
    size_t ndocs = 0;
    unsigned fields;
    NEW(resp, quarry__v1__get_response__descriptor);
    if (fields_in(r->fields, r->n_fields, &fields)) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "unknown field value");
        return;
    }
    if (r->n_fields == 0)
        fields = QUARRY_RETURN_TEXT | QUARRY_RETURN_METADATA | QUARRY_RETURN_VECTOR;
    if (over_limit(c, r->n_ids, "ids") || open_coll(c, r->collection, &coll)) return;
    size_t n = r->n_ids ? r->n_ids : 1;
    docs = calloc(n, sizeof *docs);
    resp->rows = arena_array(&c->ar, n, sizeof *resp->rows);
    resp->missing = arena_array(&c->ar, n, sizeof *resp->missing);
    if (!docs || !resp->rows || !resp->missing) {
        reply_nomem(c);
        goto out;
    }
    for (size_t i = 0; i < r->n_ids; i++) {
        if (!*r->ids[i]) {
            rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "id %zu is empty", i);
            goto out;
        }
        quarry_doc *d = NULL;
        int rc = quarry_get(coll, r->ids[i], 0, &d);
        if ((rc & 0xff) == QUARRY_NOTFOUND) {
            resp->missing[resp->n_missing++] = r->ids[i];
            continue;
        }
        if (rc) {
            rpc_reply_rc(c, rc, NULL);
            goto out;
        }
        docs[ndocs++] = d;
        Quarry__V1__Row *row = msg_new(c, &quarry__v1__row__descriptor);
        if (!row) {
            reply_nomem(c);
            goto out;
        }
        row->id = (char *)quarry_doc_id(d, NULL);
        uint32_t dim = 0;
        const float *v = quarry_doc_vector(d, &dim);
        if (v && (fields & QUARRY_RETURN_VECTOR)) row->vector = (float *)v, row->n_vector = dim;
        if (fields & QUARRY_RETURN_TEXT) row->text = (char *)quarry_doc_text(d, NULL);
        if (fields & QUARRY_RETURN_METADATA) row->metadata = (char *)quarry_doc_metadata(d, NULL);
        resp->rows[resp->n_rows++] = row;
    }
    rpc_reply_msg(c, &resp->base);
out:
    for (size_t i = 0; i < ndocs; i++) quarry_doc_free(docs[i]);
    free(docs);
    quarry_collection_close(coll);
    return;
nomem:
    reply_nomem(c);
}

/* ------------------------------------------------------------------ query */

static void h_query(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__QueryRequest *r = (const void *)m;
    Quarry__V1__QueryResponse *resp;
    quarry_coll *coll = NULL;
    quarry_query *q = NULL;
    quarry_result *res = NULL;
    unsigned fields;
    int rc;
    NEW(resp, quarry__v1__query_response__descriptor);
    if (fields_in(r->fields, r->n_fields, &fields)) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "unknown field value");
        return;
    }
    quarry_fusion fusion;
    switch (r->fusion) {
    case QUARRY__V1__FUSION__FUSION_UNSPECIFIED:
    case QUARRY__V1__FUSION__FUSION_RRF: fusion = QUARRY_FUSION_RRF; break;
    case QUARRY__V1__FUSION__FUSION_RELATIVE: fusion = QUARRY_FUSION_RELATIVE; break;
    case QUARRY__V1__FUSION__FUSION_DBSF: fusion = QUARRY_FUSION_DBSF; break;
    default:
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "unknown fusion %d", (int)r->fusion);
        return;
    }
    const Quarry__V1__VectorClause *vc = r->vector;
    const Quarry__V1__TextClause *tc = r->text;
    if (vc && vc->n_vector > QUARRY_MAX_DIM) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "query vector has %zu values",
                         vc->n_vector);
        return;
    }
    if (tc && !*tc->text) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the text clause has no text");
        return;
    }
    if (vc && vc->n_vector == 0) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the vector clause has no vector");
        return;
    }
    if (vc && vc->nprobe > RPC_MAX_IVF_NLIST) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT,
                         "vector.nprobe is %u; at most %u lists can be probed", vc->nprobe,
                         RPC_MAX_IVF_NLIST);
        return;
    }
    if (vc && vc->refine > QUARRY_MAX_IVF_REFINE) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT,
                         "vector.refine is %u; the re-ranking factor is at most %u", vc->refine,
                         QUARRY_MAX_IVF_REFINE);
        return;
    }
    if (!vc && !tc) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT,
                         "a query needs a vector clause, a text clause or both");
        return;
    }
    if (open_coll(c, r->collection, &coll)) return;
    if ((rc = quarry_query_new(coll, &q)) ||
        (vc && (rc = quarry_query_vector(q, vc->vector, (uint32_t)vc->n_vector, vc->depth, vc->ef,
                                         vc->weight))) ||
        (vc && vc->exact && (rc = quarry_query_exact(q, 1))) ||
        (vc && (vc->nprobe || vc->refine) &&
         (rc = quarry_query_ivf(q, vc->nprobe, vc->refine))) ||
        (tc && (rc = quarry_query_text(q, tc->text, strlen(tc->text), tc->depth, tc->require_all,
                                       tc->weight))) ||
        (*r->filter && (rc = quarry_query_filter(q, r->filter))) ||
        (rc = quarry_query_fusion(q, fusion, r->fusion_param)) ||
        (rc = quarry_query_limit(q, r->k, r->offset)) ||
        (rc = quarry_query_return(q, fields)) ||
        (rc = quarry_query_deadline(q, rpc_call_deadline_ns(c), rpc_call_interrupt, c)) ||
        (rc = quarry_query_run(q, &res))) {
        rpc_reply_rc(c, rc, NULL);
        goto out;
    }
    if (rpc_call_stopped(c)) goto out; /* nobody waits for the hits any more */
    size_t n = quarry_result_count(res);
    resp->hits = arena_array(&c->ar, n ? n : 1, sizeof *resp->hits);
    if (!resp->hits) {
        reply_nomem(c);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        Quarry__V1__Hit *h = msg_new(c, &quarry__v1__hit__descriptor);
        if (!h) {
            reply_nomem(c);
            goto out;
        }
        h->id = (char *)quarry_result_id(res, i, NULL);
        h->score = quarry_result_score(res, i);
        uint32_t rank, dim;
        float raw;
        h->distance = NAN;
        if (vc && quarry_result_explain(res, i, QUARRY_RETRIEVER_VECTOR, &rank, &raw) == 0)
            h->distance = quarry_result_distance(res, i);
        h->text = (char *)quarry_result_text(res, i, NULL);
        h->metadata = (char *)quarry_result_metadata(res, i, NULL);
        const float *v = quarry_result_vector(res, i, &dim);
        if (v) h->vector = (float *)v, h->n_vector = dim;
        if (r->explain) {
            h->explain = arena_array(&c->ar, 2, sizeof *h->explain);
            if (!h->explain) {
                reply_nomem(c);
                goto out;
            }
            static const struct {
                int engine;
                Quarry__V1__Retriever wire;
            } RET[] = {{QUARRY_RETRIEVER_VECTOR, QUARRY__V1__RETRIEVER__RETRIEVER_VECTOR},
                       {QUARRY_RETRIEVER_TEXT, QUARRY__V1__RETRIEVER__RETRIEVER_TEXT}};
            for (int k = 0; k < 2; k++) {
                if (quarry_result_explain(res, i, RET[k].engine, &rank, &raw) != 0) continue;
                Quarry__V1__Explain *e = msg_new(c, &quarry__v1__explain__descriptor);
                if (!e) {
                    reply_nomem(c);
                    goto out;
                }
                e->retriever = RET[k].wire, e->rank = rank, e->raw_score = raw;
                h->explain[h->n_explain++] = e;
            }
        }
        resp->hits[resp->n_hits++] = h;
    }
    rpc_reply_msg(c, &resp->base);
out:
    quarry_result_free(res);
    quarry_query_free(q);
    quarry_collection_close(coll);
    return;
nomem:
    reply_nomem(c);
}

/* ------------------------------------------------------------------ chunking */

/* ChunkSpans of `chunks` (text copied unless omit_text); NULL when out of memory. */
static Quarry__V1__ChunkSpan **chunk_spans(rpc_call *c, const quarry_chunks *ch, const char *text,
                                           int omit_text) {
    size_t n = quarry_chunks_count(ch);
    Quarry__V1__ChunkSpan **v = arena_array(&c->ar, n ? n : 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        const quarry_chunk *k = quarry_chunks_get(ch, i);
        Quarry__V1__ChunkSpan *s = msg_new(c, &quarry__v1__chunk_span__descriptor);
        if (!s) return NULL;
        s->start = k->start, s->end = k->end, s->chars = k->chars, s->words = k->words;
        s->n_headings = k->nheadings;
        s->headings = (char **)k->headings;
        if (!omit_text && !(s->text = arena_strndup(&c->ar, text + k->start, k->end - k->start)))
            return NULL;
        v[i] = s;
    }
    return v;
}

static void h_chunk(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__ChunkRequest *r = (const void *)m;
    Quarry__V1__ChunkResponse *resp;
    quarry_chunk_options o;
    quarry_chunks *ch = NULL;
    NEW(resp, quarry__v1__chunk_response__descriptor);
    if (chunk_options_in(c, r->options, &o)) return;
    int rc = quarry_chunk_text(r->text, strlen(r->text), &o, &ch);
    if (rc) {
        rpc_reply_rc(c, rc, NULL);
        return;
    }
    if (!(resp->chunks = chunk_spans(c, ch, r->text, r->omit_text))) {
        reply_nomem(c);
    } else {
        resp->n_chunks = quarry_chunks_count(ch);
        rpc_reply_msg(c, &resp->base);
    }
    quarry_chunks_free(ch);
    return;
nomem:
    reply_nomem(c);
}

static void h_upsert_document(rpc_call *c, const ProtobufCMessage *m) {
    const Quarry__V1__UpsertDocumentRequest *r = (const void *)m;
    Quarry__V1__UpsertDocumentResponse *resp;
    quarry_chunk_options o;
    quarry_coll *coll = NULL;
    quarry_chunks *ch = NULL;
    float *vecs = NULL;
    NEW(resp, quarry__v1__upsert_document_response__descriptor);
    if (chunk_options_in(c, r->options, &o) || over_limit(c, r->n_vectors, "vectors")) return;
    if (!*r->id) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the document id is missing");
        return;
    }
    size_t dim = r->n_vectors ? r->vectors[0]->n_values : 0;
    if (dim > QUARRY_MAX_DIM) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "vector 0 has %zu values", dim);
        return;
    }
    if (r->n_vectors) {
        if (!(vecs = malloc(r->n_vectors * dim * sizeof *vecs + 1))) goto nomem;
        for (size_t i = 0; i < r->n_vectors; i++) {
            if (r->vectors[i]->n_values != dim) {
                rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT,
                                 "vector %zu has %zu values, vector 0 has %zu", i,
                                 r->vectors[i]->n_values, dim);
                goto out;
            }
            memcpy(vecs + i * dim, r->vectors[i]->values, dim * sizeof *vecs);
        }
    }
    if (open_coll(c, r->collection, &coll)) goto out;
    quarry_document doc = {.id = r->id,
                           .id_len = strlen(r->id),
                           .text = r->text,
                           .text_len = strlen(r->text),
                           .metadata = opt_str(r->metadata),
                           .vectors = vecs,
                           .dim = (uint32_t)dim,
                           .nvectors = r->n_vectors};
    size_t n = 0;
    int rc = quarry_upsert_document(coll, &doc, &o, &n);
    if (rc) {
        rpc_reply_rc(c, rc, NULL);
        goto out;
    }
    /* The same options chunk the same text the same way: report the spans. */
    if ((rc = quarry_chunk_text(r->text, strlen(r->text), &o, &ch))) {
        rpc_reply_rc(c, rc, NULL);
        goto out;
    }
    if (!(resp->chunks = chunk_spans(c, ch, r->text, 1))) {
        reply_nomem(c);
        goto out;
    }
    resp->n_chunks = quarry_chunks_count(ch);
    rpc_reply_msg(c, &resp->base);
out:
    quarry_chunks_free(ch);
    quarry_collection_close(coll);
    free(vecs);
    return;
nomem:
    free(vecs);
    reply_nomem(c);
}

/* ------------------------------------------------------------------ health */

static void h_health_check(rpc_call *c, const ProtobufCMessage *m) {
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)m;
    Grpc__Health__V1__HealthCheckResponse *resp;
    NEW(resp, grpc__health__v1__health_check_response__descriptor);
    if (*r->service && strcmp(r->service, "quarry.v1.Quarry") != 0) {
        rpc_reply_status(c, GRPC_STATUS_NOT_FOUND, "unknown service '%.200s'", r->service);
        return;
    }
    resp->status = atomic_load(&c->srv->draining)
                       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    rpc_reply_msg(c, &resp->base);
    return;
nomem:
    reply_nomem(c);
}

/* ------------------------------------------------------------------ the table */

#define Q(name) "/quarry.v1.Quarry/" name
rpc_method rpc_methods[] = {
    {Q("CreateCollection"), &quarry__v1__create_collection_request__descriptor,
     h_create_collection, RUN_WORKER, 0, NULL},
    {Q("DropCollection"), &quarry__v1__drop_collection_request__descriptor, h_drop_collection,
     RUN_WORKER, 0, NULL},
    {Q("ListCollections"), &quarry__v1__list_collections_request__descriptor,
     h_list_collections, RUN_READ, 0, NULL},
    {Q("DescribeCollection"), &quarry__v1__describe_collection_request__descriptor,
     h_describe_collection, RUN_READ, 0, NULL},
    {Q("Upsert"), &quarry__v1__upsert_request__descriptor, h_upsert, RUN_WORKER, 0, NULL},
    {Q("Delete"), &quarry__v1__delete_request__descriptor, h_delete, RUN_WORKER, 0, NULL},
    {Q("Get"), &quarry__v1__get_request__descriptor, h_get, RUN_READ, 0, NULL},
    {Q("Query"), &quarry__v1__query_request__descriptor, h_query, RUN_READ, 0, NULL},
    {Q("Chunk"), &quarry__v1__chunk_request__descriptor, h_chunk, RUN_WORKER, 0, NULL},
    {Q("UpsertDocument"), &quarry__v1__upsert_document_request__descriptor, h_upsert_document,
     RUN_WORKER, 0, NULL},
    {Q("Stats"), &quarry__v1__stats_request__descriptor, h_stats, RUN_READ, 0, NULL},
    /* with wait it blocks for the whole training: never on a polling thread */
    {Q("Train"), &quarry__v1__train_request__descriptor, h_train, RUN_WORKER, 0, NULL},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor,
     h_health_check, RUN_INLINE, 1, NULL},
};
const size_t rpc_nmethods = sizeof rpc_methods / sizeof rpc_methods[0];
