/* SPDX-License-Identifier: MIT */
/*
 * api.c -- public entry points that act on a collection: argument checks
 * (they stay on in release builds), write batches and commit, get, search,
 * results, stats, compaction, and the small enum helpers.
 *
 * Every entry point clears the thread's error state, checks its arguments
 * before touching anything, and on failure returns an rc with a detail text
 * that names what was wrong (the row index, the field, the limit).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "index/vec/distance.h"

/* ============================================================== enums */

static const char *const METRIC_NAMES[] = {"l2", "ip", "cosine"};
static const char *const INDEX_NAMES[] = {"flat", "hnsw", "ivfpq"};
static const char *const DURABILITY_NAMES[] = {"sync", "interval", "none"};

static int parse_name(const char *s, const char *const *names, int n) {
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

int quarry_metric_parse(const char *s) { return parse_name(s, METRIC_NAMES, 3); }
int quarry_index_parse(const char *s) { return parse_name(s, INDEX_NAMES, 3); }
int quarry_durability_parse(const char *s) { return parse_name(s, DURABILITY_NAMES, 3); }
const char *quarry_metric_name(quarry_metric m) {
    return (unsigned)m < 3 ? METRIC_NAMES[m] : "?";
}
const char *quarry_index_name(quarry_index_kind k) {
    return (unsigned)k < 3 ? INDEX_NAMES[k] : "?";
}
const char *quarry_durability_name(quarry_durability d) {
    return (unsigned)d < 3 ? DURABILITY_NAMES[d] : "?";
}

void quarry_options_init(quarry_options *o) {
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->create_if_missing = 1;
    o->io = QUARRY_IO_AUTO;
    o->segment_max_bytes = 64u << 20;
}

void quarry_collection_config_init(quarry_collection_config *c) {
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
    c->metric = QUARRY_METRIC_L2;
    c->index = QUARRY_INDEX_FLAT;
    c->durability = QUARRY_DURABILITY_SYNC;
    c->interval_ms = 100;
    c->hnsw_m = 16;
    c->hnsw_ef_construction = 200;
    c->hnsw_ef_search = 64;
    c->ivf_nprobe = 16;
    c->ivf_refine = 4;
    snprintf(c->text_language, sizeof c->text_language, "english");
    c->bm25_k1 = 1.2f;
    c->bm25_b = 0.75f;
}

void quarry_search_params_init(quarry_search_params *p) {
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
}

void quarry_free(void *p) { q_free(p); }

/* Enter a collection call: the collection must not be dropped. On success the
 * caller holds c->life for reading. */
int coll_enter(quarry_coll *c, const char *fn) {
    if (!c) return q_err(QUARRY_MISUSE, "%s: collection handle is NULL", fn);
    pthread_rwlock_rdlock(&c->life);
    if (c->dropped) {
        pthread_rwlock_unlock(&c->life);
        return q_err(QUARRY_NOTFOUND, "collection '%s' was dropped", c->name);
    }
    return 0;
}

void coll_leave(quarry_coll *c) { pthread_rwlock_unlock(&c->life); }

int quarry_collection_config_get(quarry_coll *c, quarry_collection_config *cfg) {
    q_err_clear();
    if (!c || !cfg) return q_err(QUARRY_MISUSE, "quarry_collection_config_get: NULL argument");
    *cfg = c->cfg;
    return 0;
}

const char *quarry_collection_name(quarry_coll *c) { return c ? c->name : ""; }

/* ============================================================== batches */

struct quarry_batch {
    quarry_coll *coll;
    uint8_t *buf; /* REC_HEADER_LEN + BATCH_PREFIX_LEN reserved, then ops */
    size_t len, cap;
    uint32_t nops;
    size_t ndeleted;
    float *scratch; /* cosine normalisation */
};

#define BATCH_START (REC_HEADER_LEN + BATCH_PREFIX_LEN)

int quarry_batch_new(quarry_coll *c, quarry_batch **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_batch_new: out is NULL");
    *out = NULL;
    if (!c) return q_err(QUARRY_MISUSE, "quarry_batch_new: collection handle is NULL");
    quarry_batch *b = q_calloc(1, sizeof *b);
    if (!b) return q_err(QUARRY_NOMEM, "out of memory");
    b->coll = c;
    b->len = BATCH_START;
    *out = b;
    return 0;
}

void quarry_batch_free(quarry_batch *b) {
    if (!b) return;
    q_free(b->buf);
    q_free(b->scratch);
    q_free(b);
}

size_t quarry_batch_count(const quarry_batch *b) { return b ? b->nops : 0; }

static int batch_room(quarry_batch *b, uint64_t need) {
    if (b->nops >= QUARRY_MAX_BATCH_ROWS)
        return q_err(QUARRY_FULL, "a batch holds at most %u operations; commit it first",
                     QUARRY_MAX_BATCH_ROWS);
    if (b->len - REC_HEADER_LEN + need > QUARRY_MAX_BATCH_BYTES)
        return q_err(QUARRY_FULL, "the batch would exceed %u bytes; commit it first",
                     QUARRY_MAX_BATCH_BYTES);
    uint64_t want = b->len + need + 8; /* + record padding */
    if (want <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < want) cap *= 2;
    uint8_t *p = q_realloc(b->buf, cap);
    if (!p) return q_err(QUARRY_NOMEM, "out of memory (batch of %zu bytes)", cap);
    b->buf = p, b->cap = cap;
    return 0;
}

static int check_id(const char *id, size_t *len) {
    if (!id) return q_err(QUARRY_INVALID, "id is NULL");
    if (*len == 0) *len = strnlen(id, QUARRY_MAX_ID_LEN + 1);
    if (*len == 0) return q_err(QUARRY_INVALID, "id is empty");
    if (*len > QUARRY_MAX_ID_LEN)
        return q_err(QUARRY_INVALID, "id is longer than %d bytes", QUARRY_MAX_ID_LEN);
    if (!q_utf8_valid(id, *len)) return q_err(QUARRY_INVALID, "id is not valid UTF-8");
    return 0;
}

int quarry_batch_upsert(quarry_batch *b, const quarry_row *rowin) {
    q_err_clear();
    if (!b || !rowin) return q_err(QUARRY_MISUSE, "quarry_batch_upsert: NULL argument");
    const quarry_collection_config *cfg = &b->coll->cfg;
    size_t id_len = rowin->id_len, text_len = rowin->text_len;
    int rc = check_id(rowin->id, &id_len);
    if (rc) return rc;
    const float *vec = rowin->vector;
    if (vec) {
        if (cfg->dim == 0)
            return q_err(QUARRY_INVALID_DIM,
                         "collection '%s' is text-only (dim 0) but the row has a vector",
                         b->coll->name);
        if (rowin->dim != cfg->dim)
            return q_err(QUARRY_INVALID_DIM, "vector has %u values, collection '%s' has dim %u",
                         rowin->dim, b->coll->name, cfg->dim);
        for (uint32_t i = 0; i < cfg->dim; i++)
            if (!isfinite(vec[i]))
                return q_err(QUARRY_INVALID, "vector value %u is %s", i,
                             isnan(vec[i]) ? "NaN" : "infinite");
        if (cfg->metric == QUARRY_METRIC_COSINE) {
            if (!b->scratch && !(b->scratch = q_malloc(cfg->dim * sizeof(float))))
                return q_err(QUARRY_NOMEM, "out of memory");
            memcpy(b->scratch, vec, cfg->dim * sizeof(float));
            if (dist_normalize(b->scratch, cfg->dim) != 0)
                return q_err(QUARRY_INVALID, "a zero vector has no cosine direction");
            vec = b->scratch;
        }
    } else if (rowin->dim != 0) {
        return q_err(QUARRY_INVALID, "dim is %u but vector is NULL", rowin->dim);
    }
    if (rowin->text) {
        if (text_len == 0) text_len = strlen(rowin->text);
        if (text_len > QUARRY_MAX_TEXT_LEN)
            return q_err(QUARRY_INVALID, "text is %zu bytes, the limit is %u", text_len,
                         QUARRY_MAX_TEXT_LEN);
        if (!q_utf8_valid(rowin->text, text_len))
            return q_err(QUARRY_INVALID, "text is not valid UTF-8");
    }
    char *meta = NULL;
    size_t meta_len = 0;
    if (rowin->metadata) {
        size_t l = rowin->metadata_len ? rowin->metadata_len : strlen(rowin->metadata);
        if ((rc = q_metadata_canon(rowin->metadata, l, &meta, &meta_len))) return rc;
    }
    uint32_t dim = vec ? cfg->dim : 0;
    uint64_t need = op_encoded_len((uint32_t)id_len, dim, (uint32_t)text_len, (uint32_t)meta_len);
    if ((rc = batch_room(b, need)) == 0) {
        op_encode(b->buf + b->len, OP_UPSERT, rowin->id, (uint32_t)id_len, vec, dim, rowin->text,
                  (uint32_t)text_len, meta, (uint32_t)meta_len);
        b->len += need;
        b->nops++;
    }
    free(meta);
    return rc;
}

int quarry_batch_delete(quarry_batch *b, const char *id, size_t id_len) {
    q_err_clear();
    if (!b) return q_err(QUARRY_MISUSE, "quarry_batch_delete: batch is NULL");
    int rc = check_id(id, &id_len);
    if (rc) return rc;
    uint64_t need = op_encoded_len((uint32_t)id_len, 0, 0, 0);
    if ((rc = batch_room(b, need))) return rc;
    op_encode(b->buf + b->len, OP_DELETE, id, (uint32_t)id_len, NULL, 0, NULL, 0, NULL, 0);
    b->len += need;
    b->nops++;
    return 0;
}

static void batch_reset(quarry_batch *b) {
    b->len = BATCH_START;
    b->nops = 0;
}

/* Apply in LSN order: wait for lsn-1, apply (if ok), publish lsn. */
static int apply_ordered(quarry_coll *c, uint64_t lsn, uint64_t segno, const uint8_t *payload,
                         uint32_t len, int ok, size_t *ndeleted) {
    int rc = 0;
    pthread_mutex_lock(&c->apply_mu);
    while (c->applied_lsn + 1 != lsn) pthread_cond_wait(&c->apply_cv, &c->apply_mu);
    if (ok && !c->panic) {
        pthread_rwlock_wrlock(&c->rw);
        rc = coll_apply(c, segno, lsn, payload, len, ndeleted);
        pthread_rwlock_unlock(&c->rw);
        if (rc) {
            /* the log has the batch but memory cannot follow: refuse writes */
            c->panic = 1;
            q_err_prefix(rc, "applying a logged batch failed; reopen the database");
        }
    }
    c->applied_lsn = lsn;
    pthread_cond_broadcast(&c->apply_cv);
    pthread_mutex_unlock(&c->apply_mu);
    return rc;
}

int quarry_batch_commit(quarry_batch *b) {
    q_err_clear();
    if (!b) return q_err(QUARRY_MISUSE, "quarry_batch_commit: batch is NULL");
    quarry_coll *c = b->coll;
    b->ndeleted = 0;
    if (b->nops == 0) return 0;
    int rc = coll_enter(c, "quarry_batch_commit");
    if (rc) {
        batch_reset(b);
        return rc;
    }
    if (c->db->opts.read_only) {
        rc = q_err(QUARRY_READONLY, "the database is open read-only");
        goto out;
    }
    if (c->panic) {
        rc = q_err(QUARRY_PANIC, "collection '%s' must be reopened after an earlier failure",
                   c->name);
        goto out;
    }
    uint8_t *payload = b->buf + REC_HEADER_LEN;
    uint32_t plen = (uint32_t)(b->len - REC_HEADER_LEN);
    put_u32(payload + 8, b->nops);
    uint64_t lsn, end, segno;
    if ((rc = seglog_append(c->log, b->buf, plen, &lsn, &end, &segno))) goto out;
    int durable = 0;
    if (c->cfg.durability == QUARRY_DURABILITY_SYNC) durable = seglog_wait_durable(c->log, end);
    rc = apply_ordered(c, lsn, segno, payload, plen, durable == 0, &b->ndeleted);
    if (durable) rc = durable;
    if (!rc) atomic_fetch_add(&c->batches, 1);
out:
    coll_leave(c);
    batch_reset(b);
    return rc;
}

int quarry_upsert(quarry_coll *c, const quarry_row *rows, size_t nrows) {
    q_err_clear();
    if (!c || (!rows && nrows)) return q_err(QUARRY_MISUSE, "quarry_upsert: NULL argument");
    quarry_batch *b;
    int rc = quarry_batch_new(c, &b);
    if (rc) return rc;
    for (size_t i = 0; i < nrows; i++) {
        if ((rc = quarry_batch_upsert(b, &rows[i]))) {
            q_err_prefix(rc, "row %zu", i);
            quarry_batch_free(b);
            return rc;
        }
    }
    rc = quarry_batch_commit(b);
    quarry_batch_free(b);
    return rc;
}

int quarry_delete(quarry_coll *c, const char *const *ids, size_t nids, size_t *ndeleted) {
    q_err_clear();
    if (ndeleted) *ndeleted = 0;
    if (!c || (!ids && nids)) return q_err(QUARRY_MISUSE, "quarry_delete: NULL argument");
    quarry_batch *b;
    int rc = quarry_batch_new(c, &b);
    if (rc) return rc;
    for (size_t i = 0; i < nids; i++) {
        if ((rc = quarry_batch_delete(b, ids[i], 0))) {
            q_err_prefix(rc, "id %zu", i);
            quarry_batch_free(b);
            return rc;
        }
    }
    rc = quarry_batch_commit(b);
    if (!rc && ndeleted) *ndeleted = b->ndeleted;
    quarry_batch_free(b);
    return rc;
}

/* ============================================================== get */

struct quarry_doc {
    char *id, *text, *meta;
    float *vec;
    size_t id_len, text_len, meta_len;
    uint32_t dim;
};

int quarry_get(quarry_coll *c, const char *id, size_t id_len, quarry_doc **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_get: out is NULL");
    *out = NULL;
    int rc = coll_enter(c, "quarry_get");
    if (rc) return rc;
    if ((rc = check_id(id, &id_len))) goto leave;
    pthread_rwlock_rdlock(&c->rw);
    int64_t r = idmap_find(&c->map, c->rows, id, id_len, idmap_hash(id, id_len));
    if (r < 0) {
        rc = q_err(QUARRY_NOTFOUND, "no row with id '%.*s' in '%s'", (int)id_len, id, c->name);
        goto unlock;
    }
    const row *rw = &c->rows[r];
    uint32_t dim = (rw->flags & ROW_VEC) ? c->cfg.dim : 0;
    size_t bytes = sizeof(quarry_doc) + (size_t)dim * 4 + rw->id_len + rw->text_len +
                   rw->meta_len + 3 + 8;
    quarry_doc *d = q_calloc(1, bytes);
    if (!d) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto unlock;
    }
    char *p = (char *)(d + 1);
    if (dim) {
        d->vec = (float *)p;
        memcpy(d->vec, coll_vec(c, (uint32_t)r), (size_t)dim * 4);
        p += (size_t)dim * 4;
    }
    d->dim = dim;
    d->id = p, d->id_len = rw->id_len;
    memcpy(p, row_id(rw), rw->id_len + 1), p += rw->id_len + 1;
    if (rw->flags & ROW_TEXT) {
        d->text = p, d->text_len = rw->text_len;
        memcpy(p, row_text(rw), rw->text_len + 1), p += rw->text_len + 1;
    }
    if (rw->flags & ROW_META) {
        d->meta = p, d->meta_len = rw->meta_len;
        memcpy(p, row_meta(rw), rw->meta_len + 1);
    }
    *out = d;
unlock:
    pthread_rwlock_unlock(&c->rw);
leave:
    coll_leave(c);
    return rc;
}

const char *quarry_doc_id(const quarry_doc *d, size_t *len) {
    if (len) *len = d ? d->id_len : 0;
    return d ? d->id : NULL;
}
const float *quarry_doc_vector(const quarry_doc *d, uint32_t *dim) {
    if (dim) *dim = d ? d->dim : 0;
    return d ? d->vec : NULL;
}
const char *quarry_doc_text(const quarry_doc *d, size_t *len) {
    if (len) *len = d ? d->text_len : 0;
    return d ? d->text : NULL;
}
const char *quarry_doc_metadata(const quarry_doc *d, size_t *len) {
    if (len) *len = d ? d->meta_len : 0;
    return d ? d->meta : NULL;
}
void quarry_doc_free(quarry_doc *d) { q_free(d); }

/* ============================================================== stats */

int quarry_collection_stats(quarry_coll *c, quarry_coll_stats *st) {
    q_err_clear();
    if (!st) return q_err(QUARRY_MISUSE, "quarry_collection_stats: st is NULL");
    int rc = coll_enter(c, "quarry_collection_stats");
    if (rc) return rc;
    memset(st, 0, sizeof *st);
    st->size = sizeof *st;
    seglog_stats ls;
    seglog_get_stats(c->log, &ls);
    pthread_rwlock_rdlock(&c->rw);
    st->rows = c->nlive;
    st->rows_with_vector = c->nlive_vec;
    st->dead_rows = c->ndead;
    for (size_t i = 0; i < c->nsegst; i++) st->live_bytes_estimate += c->segst[i].live_bytes;
    uint64_t mem = (uint64_t)c->rows_cap * (sizeof(row) + 1) + c->map.cap * sizeof(idmap_slot);
    st->index_bytes = c->graph ? hnsw_memory(c->graph) : (uint64_t)c->rows_cap * c->cfg.dim * 4;
    st->index_bytes += bm25_memory(c->text) + attr_index_memory(c->attrs);
    if (c->ivf) {
        const ivfpq_config *ic = ivfpq_get_config(c->ivf);
        st->index_bytes += ivfpq_memory(c->ivf);
        st->ivf_nlist = ic->nlist, st->pq_m = ic->m;
        st->ivf_rows = ivfpq_size(c->ivf);
        st->ivf_code_bytes = ivfpq_code_bytes(c->ivf);
    }
    mem += st->index_bytes;
    for (uint32_t r = 0; r < c->nrows; r++)
        if (c->rows[r].blob)
            mem += c->rows[r].id_len + c->rows[r].text_len + c->rows[r].meta_len + 3;
    st->memory_bytes = mem;
    pthread_rwlock_unlock(&c->rw);
    st->segments = ls.segments;
    st->disk_bytes = ls.disk_bytes;
    st->last_lsn = ls.last_lsn;
    st->syncs = ls.syncs;
    st->batches = atomic_load(&c->batches);
    st->compactions = atomic_load(&c->compactions);
    st->searches = atomic_load(&c->searches);
    st->searches_exact = atomic_load(&c->searches_exact);
    pthread_mutex_lock(&c->train_mu);
    st->ivf_training = c->training;
    pthread_mutex_unlock(&c->train_mu);
    coll_leave(c);
    return 0;
}

int quarry_collection_train(quarry_coll *c, int wait) {
    q_err_clear();
    int rc = coll_enter(c, "quarry_collection_train");
    if (rc) return rc;
    if (c->db->opts.read_only) rc = q_err(QUARRY_READONLY, "the database is open read-only");
    else if (c->train_stop) rc = q_err(QUARRY_INTERRUPTED, "the collection is closing");
    else if (!(rc = coll_ivf_start(c)) && wait) {
        rc = coll_ivf_wait(c);
    }
    coll_leave(c);
    return rc;
}

int quarry_collection_compact(quarry_coll *c, int force) {
    q_err_clear();
    int rc = coll_enter(c, "quarry_collection_compact");
    if (rc) return rc;
    if (c->db->opts.read_only)
        rc = q_err(QUARRY_READONLY, "the database is open read-only");
    else
        rc = coll_compact(c, force);
    coll_leave(c);
    return rc;
}
