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
    uint32_t npatch; /* partial updates among the ops (resolved at commit) */
    size_t ndeleted;
    float *scratch; /* cosine normalisation */
};

#define BATCH_START (REC_HEADER_LEN + BATCH_PREFIX_LEN)

/* A partial update waits in the batch as a private operation: OP_PATCH | its
 * QUARRY_FIELD_* mask, laid out like an upsert holding just the fields it
 * sets. The commit resolves it into an OP_UPSERT of the whole row
 * (batch_resolve), so it never reaches the log. */
#define OP_PATCH 0x40
#define FIELDS_ALL (QUARRY_FIELD_TEXT | QUARRY_FIELD_METADATA | QUARRY_FIELD_VECTOR)

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

/* Validate and encode an upsert (patch 0: every field) or a partial update
 * of the fields in `fields` (the others are ignored). */
static int batch_add(quarry_batch *b, const quarry_row *rowin, int patch, unsigned fields) {
    const quarry_collection_config *cfg = &b->coll->cfg;
    size_t id_len = rowin->id_len, text_len = rowin->text_len;
    int rc = check_id(rowin->id, &id_len);
    if (rc) return rc;
    const float *vec = (fields & QUARRY_FIELD_VECTOR) ? rowin->vector : NULL;
    const char *text = (fields & QUARRY_FIELD_TEXT) ? rowin->text : NULL;
    const char *metain = (fields & QUARRY_FIELD_METADATA) ? rowin->metadata : NULL;
    if (!text) text_len = 0; /* a length without a text (or of a field not set) is no text */
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
    } else if ((fields & QUARRY_FIELD_VECTOR) && rowin->dim != 0) {
        return q_err(QUARRY_INVALID, "dim is %u but vector is NULL", rowin->dim);
    }
    if (text) {
        if (text_len == 0) text_len = strlen(text);
        if (text_len > QUARRY_MAX_TEXT_LEN)
            return q_err(QUARRY_INVALID, "text is %zu bytes, the limit is %u", text_len,
                         QUARRY_MAX_TEXT_LEN);
        if (!q_utf8_valid(text, text_len))
            return q_err(QUARRY_INVALID, "text is not valid UTF-8");
    }
    char *meta = NULL;
    size_t meta_len = 0;
    if (metain) {
        size_t l = rowin->metadata_len ? rowin->metadata_len : strlen(metain);
        if ((rc = q_metadata_canon(metain, l, &meta, &meta_len))) return rc;
    }
    uint32_t dim = vec ? cfg->dim : 0;
    uint64_t need = op_encoded_len((uint32_t)id_len, dim, (uint32_t)text_len, (uint32_t)meta_len);
    if ((rc = batch_room(b, need)) == 0) {
        op_encode(b->buf + b->len, OP_UPSERT, rowin->id, (uint32_t)id_len, vec, dim, text,
                  (uint32_t)text_len, meta, (uint32_t)meta_len);
        if (patch) {
            b->buf[b->len] = (uint8_t)(OP_PATCH | fields);
            b->npatch++;
        }
        b->len += need;
        b->nops++;
    }
    free(meta);
    return rc;
}

int quarry_batch_upsert(quarry_batch *b, const quarry_row *rowin) {
    q_err_clear();
    if (!b || !rowin) return q_err(QUARRY_MISUSE, "quarry_batch_upsert: NULL argument");
    return batch_add(b, rowin, 0, FIELDS_ALL);
}

int quarry_batch_update(quarry_batch *b, const quarry_row *rowin, unsigned fields) {
    q_err_clear();
    if (!b || !rowin) return q_err(QUARRY_MISUSE, "quarry_batch_update: NULL argument");
    if (fields == 0 || (fields & ~FIELDS_ALL))
        return q_err(QUARRY_INVALID,
                     "update fields 0x%x: want a non-empty set of QUARRY_FIELD_TEXT, "
                     "QUARRY_FIELD_METADATA and QUARRY_FIELD_VECTOR",
                     fields);
    return batch_add(b, rowin, 1, fields);
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
    b->npatch = 0;
}

/* ------------------------------------------------- resolving partial updates */

/* Decode an operation of the batch's own buffer (upsert, delete or patch; the
 * encoding is ours, so nothing is checked) and advance *pos past it. */
static void bop_next(const uint8_t *payload, size_t *pos, op_view *op) {
    *pos += op_view_raw(payload + *pos, op);
}

/* A logged (little-endian) vector as floats in `out`. */
static const float *le_floats(const uint8_t *v, uint32_t dim, float *out) {
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t bits = get_u32(v + 4ull * i);
        memcpy(&out[i], &bits, 4);
    }
    return out;
}

/* The ids a batch updates, with the state earlier operations of the batch
 * left them in: PEND_NONE (not touched yet: the stored row counts),
 * PEND_GONE (deleted) or the offset of their latest whole-row upsert in the
 * resolved payload. Open addressing; cap is a power of two above 2n. */
#define PEND_NONE (-2)
#define PEND_GONE (-1)

typedef struct pend_slot {
    const char *id; /* NULL = empty slot */
    uint32_t id_len;
    uint64_t h;
    int64_t off;
} pend_slot;

static pend_slot *pend_slot_of(pend_slot *t, size_t cap, const char *id, uint32_t len,
                               uint64_t h) {
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!t[i].id || (t[i].h == h && t[i].id_len == len && !memcmp(t[i].id, id, len)))
            return &t[i];
}

static int grow_buf(uint8_t **buf, size_t *cap, size_t want) {
    if (want <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < want) c *= 2;
    uint8_t *p = q_realloc(*buf, c);
    if (!p) return q_err(QUARRY_NOMEM, "out of memory (batch of %zu bytes)", c);
    *buf = p, *cap = c;
    return 0;
}

/*
 * Rewrite the batch with every partial update merged into a whole-row
 * upsert: the row as the earlier operations of the batch left it, else as
 * memory holds it. The caller holds commit_mu for writing and memory has
 * applied every appended batch, so memory is exactly the state this batch
 * will follow in the log. On success *out (REC_HEADER_LEN of room, the
 * payload, room for the record padding) and *out_len replace b->buf/b->len.
 */
static int batch_resolve(quarry_batch *b, uint8_t **out, size_t *out_len) {
    quarry_coll *c = b->coll;
    const uint8_t *in = b->buf + REC_HEADER_LEN;
    size_t in_len = b->len - REC_HEADER_LEN, pos, cap = 16, bcap = 0, len = BATCH_START;
    uint32_t dim = c->cfg.dim;
    while (cap < 2 * (size_t)b->npatch) cap *= 2;
    pend_slot *tab = q_calloc(cap, sizeof *tab);
    float *tmp = q_malloc((dim ? dim : 1) * sizeof(float));
    uint8_t *buf = NULL;
    int rc = 0;
    op_view op;
    if (!tab || !tmp || (rc = grow_buf(&buf, &bcap, b->len + 8))) {
        rc = rc ? rc : q_err(QUARRY_NOMEM, "out of memory");
        goto out;
    }
    memset(buf, 0, BATCH_START);
    /* the updated ids, in the state before the batch */
    for (pos = BATCH_PREFIX_LEN; pos < in_len;) {
        bop_next(in, &pos, &op);
        if ((op.op & ~FIELDS_ALL) != OP_PATCH) continue;
        uint64_t h = idmap_hash(op.id, op.id_len);
        pend_slot *s = pend_slot_of(tab, cap, op.id, op.id_len, h);
        if (!s->id) *s = (pend_slot){op.id, op.id_len, h, PEND_NONE};
    }
    pthread_rwlock_rdlock(&c->rw);
    for (pos = BATCH_PREFIX_LEN; pos < in_len;) {
        size_t at = pos;
        bop_next(in, &pos, &op);
        uint64_t h = idmap_hash(op.id, op.id_len);
        pend_slot *s = pend_slot_of(tab, cap, op.id, op.id_len, h);
        if (op.op == OP_UPSERT || op.op == OP_DELETE) { /* copied as they are */
            if ((rc = grow_buf(&buf, &bcap, len + op.enc_len + 8))) break;
            memcpy(buf + len, in + at, op.enc_len);
            if (s->id) s->off = op.op == OP_DELETE ? PEND_GONE : (int64_t)len;
            len += op.enc_len;
            continue;
        }
        unsigned fields = op.op & FIELDS_ALL;
        /* the base row: an earlier upsert of this batch, or memory */
        op_view base = {0};
        const row *rw = NULL;
        int64_t r = -1;
        if (s->off == PEND_NONE) {
            r = idmap_find(&c->map, c->rows, op.id, op.id_len, h);
            if (r >= 0) rw = &c->rows[r];
        } else if (s->off >= 0) {
            size_t bpos = (size_t)s->off - REC_HEADER_LEN;
            bop_next(buf + REC_HEADER_LEN, &bpos, &base);
        }
        if (!rw && s->off < 0) {
            rc = q_err(QUARRY_NOTFOUND, "update of id '%.*s': no such row in '%s'%s",
                       (int)op.id_len, op.id, c->name,
                       s->off == PEND_GONE ? " (deleted earlier in the batch)" : "");
            break;
        }
        uint32_t base_vdim = rw ? ((rw->flags & ROW_VEC) ? dim : 0) : base.dim;
        uint32_t base_tlen = rw ? rw->text_len : base.text_len;
        uint32_t base_mlen = rw ? rw->meta_len : base.meta_len;
        uint32_t vdim = (fields & QUARRY_FIELD_VECTOR) ? op.dim : base_vdim;
        uint32_t tlen = (fields & QUARRY_FIELD_TEXT) ? op.text_len : base_tlen;
        uint32_t mlen = (fields & QUARRY_FIELD_METADATA) ? op.meta_len : base_mlen;
        uint64_t need = op_encoded_len(op.id_len, vdim, tlen, mlen);
        if (len - REC_HEADER_LEN + need > QUARRY_MAX_BATCH_BYTES) {
            rc = q_err(QUARRY_FULL,
                       "the batch would exceed %u bytes once its updates are merged into "
                       "whole rows; commit fewer operations at once",
                       QUARRY_MAX_BATCH_BYTES);
            break;
        }
        if ((rc = grow_buf(&buf, &bcap, len + need + 8))) break;
        if (s->off >= 0) { /* the buffer may have moved */
            size_t bpos = (size_t)s->off - REC_HEADER_LEN;
            bop_next(buf + REC_HEADER_LEN, &bpos, &base);
        }
        const float *vec = NULL;
        const char *text, *meta;
        if (fields & QUARRY_FIELD_VECTOR)
            vec = op.vector ? le_floats(op.vector, op.dim, tmp) : NULL;
        else if (rw)
            vec = base_vdim ? coll_vec(c, (uint32_t)r) : NULL; /* as stored (normalised) */
        else
            vec = base.vector ? le_floats(base.vector, base.dim, tmp) : NULL;
        if (fields & QUARRY_FIELD_TEXT)
            text = op.text;
        else
            text = rw ? ((rw->flags & ROW_TEXT) ? row_text(rw) : NULL) : base.text;
        if (fields & QUARRY_FIELD_METADATA)
            meta = op.meta;
        else
            meta = rw ? ((rw->flags & ROW_META) ? row_meta(rw) : NULL) : base.meta;
        op_encode(buf + len, OP_UPSERT, op.id, op.id_len, vec, vdim, text, tlen, meta, mlen);
        s->off = (int64_t)len;
        len += need;
    }
    pthread_rwlock_unlock(&c->rw);
out:
    q_free(tab);
    q_free(tmp);
    if (rc) {
        q_free(buf);
        return rc;
    }
    *out = buf, *out_len = len;
    return 0;
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
    uint8_t *resolved = NULL; /* the batch with its partial updates merged */
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
    uint8_t *rec = b->buf;
    size_t rec_len = b->len;
    if (b->npatch) {
        /* No append may slip in while the updates are merged, and memory must
         * hold every batch appended before: then the merged rows are exactly
         * what the log says they were followed by. */
        pthread_rwlock_wrlock(&c->commit_mu);
        uint64_t want = seglog_last_lsn(c->log); /* final: commit_mu stops appends */
        pthread_mutex_lock(&c->apply_mu);
        while (c->applied_lsn < want) pthread_cond_wait(&c->apply_cv, &c->apply_mu);
        int panicked = c->panic;
        pthread_mutex_unlock(&c->apply_mu);
        if (panicked)
            rc = q_err(QUARRY_PANIC, "collection '%s' must be reopened after an earlier failure",
                       c->name);
        else
            rc = batch_resolve(b, &resolved, &rec_len);
        if (rc) {
            pthread_rwlock_unlock(&c->commit_mu);
            goto out;
        }
        rec = resolved;
    } else {
        pthread_rwlock_rdlock(&c->commit_mu);
    }
    uint8_t *payload = rec + REC_HEADER_LEN;
    uint32_t plen = (uint32_t)(rec_len - REC_HEADER_LEN);
    put_u32(payload + 8, b->nops);
    uint64_t lsn, end, segno;
    rc = seglog_append(c->log, rec, plen, &lsn, &end, &segno);
    pthread_rwlock_unlock(&c->commit_mu);
    if (rc) goto out;
    int durable = 0;
    if (c->cfg.durability == QUARRY_DURABILITY_SYNC) durable = seglog_wait_durable(c->log, end);
    rc = apply_ordered(c, lsn, segno, payload, plen, durable == 0, &b->ndeleted);
    if (durable) rc = durable;
    if (!rc) atomic_fetch_add(&c->batches, 1);
out:
    q_free(resolved);
    coll_leave(c);
    batch_reset(b);
    return rc;
}

/* Rows as one batch of upserts (patch 0) or of partial updates of `fields`. */
static int rows_commit(quarry_coll *c, const quarry_row *rows, size_t nrows, int patch,
                       unsigned fields) {
    quarry_batch *b;
    int rc = quarry_batch_new(c, &b);
    if (rc) return rc;
    for (size_t i = 0; i < nrows; i++) {
        rc = patch ? quarry_batch_update(b, &rows[i], fields) : quarry_batch_upsert(b, &rows[i]);
        if (rc) {
            q_err_prefix(rc, "row %zu", i);
            quarry_batch_free(b);
            return rc;
        }
    }
    rc = quarry_batch_commit(b);
    quarry_batch_free(b);
    return rc;
}

int quarry_upsert(quarry_coll *c, const quarry_row *rows, size_t nrows) {
    q_err_clear();
    if (!c || (!rows && nrows)) return q_err(QUARRY_MISUSE, "quarry_upsert: NULL argument");
    return rows_commit(c, rows, nrows, 0, FIELDS_ALL);
}

int quarry_update(quarry_coll *c, const quarry_row *rows, size_t nrows, unsigned fields) {
    q_err_clear();
    if (!c || (!rows && nrows)) return q_err(QUARRY_MISUSE, "quarry_update: NULL argument");
    if (fields == 0 || (fields & ~FIELDS_ALL))
        return q_err(QUARRY_INVALID, "update fields 0x%x: want a non-empty set of QUARRY_FIELD_*",
                     fields);
    return rows_commit(c, rows, nrows, 1, fields);
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
