/* SPDX-License-Identifier: MIT */
/*
 * collection.c -- a collection's in-memory row store: applying batches (from a
 * commit or from replay), vacuum (renumbering live rows) and the compaction
 * filler that re-encodes live rows for storage/.
 *
 * Applying is two-phase so that it can never fail halfway: `prepare`
 * allocates everything a batch needs (row strings, parsed metadata, array
 * capacity, id map room), then `install` only moves pointers and flips bits.
 * A batch that fails to prepare leaves memory untouched.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

/* ============================================================== lifetime */

int coll_new(struct quarry_db *db, uint32_t id, const char *name,
             const quarry_collection_config *cfg, struct quarry_coll **out) {
    struct quarry_coll *c = q_calloc(1, sizeof *c);
    if (!c) return q_err(QUARRY_NOMEM, "out of memory");
    c->db = db;
    atomic_store(&c->refs, 1);
    c->id = id;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->cfg = *cfg;
    pthread_rwlock_init(&c->life, NULL);
    pthread_rwlock_init(&c->rw, NULL);
    pthread_mutex_init(&c->apply_mu, NULL);
    pthread_cond_init(&c->apply_cv, NULL);
    pthread_mutex_init(&c->compact_mu, NULL);
    *out = c;
    return 0;
}

static void free_rows(struct quarry_coll *c) {
    for (uint32_t r = 0; r < c->nrows; r++) {
        q_free(c->rows[r].blob);
        json_decref(c->rows[r].meta);
    }
    q_free(c->rows);
    q_free_aligned(c->vecs);
    q_free(c->live_vec);
    idmap_free(&c->map);
    q_free(c->segst);
    c->rows = NULL, c->vecs = NULL, c->live_vec = NULL, c->segst = NULL;
    c->nrows = c->rows_cap = 0;
    c->nsegst = c->segst_cap = 0;
    c->nlive = c->nlive_vec = c->ndead = 0;
}

void coll_free(struct quarry_coll *c) {
    if (!c) return;
    free_rows(c);
    q_free(c->dir);
    pthread_rwlock_destroy(&c->life);
    pthread_rwlock_destroy(&c->rw);
    pthread_mutex_destroy(&c->apply_mu);
    pthread_cond_destroy(&c->apply_cv);
    pthread_mutex_destroy(&c->compact_mu);
    q_free(c);
}

void coll_release(struct quarry_coll *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) coll_free(c);
}

/* ============================================================== segment stats */

static segstat *segstat_get(struct quarry_coll *c, uint64_t segno) {
    for (size_t i = c->nsegst; i-- > 0;)
        if (c->segst[i].segno == segno) return &c->segst[i];
    return NULL;
}

static int segstat_reserve(struct quarry_coll *c, uint64_t segno) {
    if (segstat_get(c, segno)) return 0;
    if (c->nsegst == c->segst_cap) {
        size_t cap = c->segst_cap ? 2 * c->segst_cap : 8;
        segstat *s = q_realloc(c->segst, cap * sizeof *s);
        if (!s) return q_err(QUARRY_NOMEM, "out of memory");
        c->segst = s, c->segst_cap = cap;
    }
    c->segst[c->nsegst++] = (segstat){segno, 0};
    return 0;
}

/* ============================================================== apply */

static int grow_rows(struct quarry_coll *c, uint32_t need) {
    if (need <= c->rows_cap) return 0;
    uint64_t cap = c->rows_cap ? c->rows_cap : 1024;
    while (cap < need) cap *= 2;
    if (cap > UINT32_MAX - 1) cap = UINT32_MAX - 1;
    row *rows = q_realloc(c->rows, cap * sizeof *rows);
    if (!rows) return q_err(QUARRY_NOMEM, "out of memory (%" PRIu64 " rows)", cap);
    c->rows = rows;
    size_t words = (size_t)((cap + 63) / 64), old_words = (c->rows_cap + 63) / 64;
    uint64_t *bits = q_realloc(c->live_vec, words * sizeof *bits);
    if (!bits) return q_err(QUARRY_NOMEM, "out of memory (row bitmap)");
    memset(bits + old_words, 0, (words - old_words) * sizeof *bits);
    c->live_vec = bits;
    if (c->cfg.dim) {
        float *v = q_malloc_aligned((size_t)cap * c->cfg.dim * sizeof(float));
        if (!v) return q_err(QUARRY_NOMEM, "out of memory (vectors for %" PRIu64 " rows)", cap);
        if (c->vecs) memcpy(v, c->vecs, (size_t)c->nrows * c->cfg.dim * sizeof(float));
        q_free_aligned(c->vecs);
        c->vecs = v;
    }
    c->rows_cap = (uint32_t)cap;
    return 0;
}

static void kill_row(struct quarry_coll *c, uint32_t r) {
    row *rw = &c->rows[r];
    if (!(rw->flags & ROW_LIVE)) return;
    rw->flags &= (uint8_t)~ROW_LIVE;
    if (rw->flags & ROW_VEC) {
        c->live_vec[r / 64] &= ~(1ull << (r % 64));
        c->nlive_vec--;
    }
    segstat *s = segstat_get(c, rw->segno);
    if (s) s->live_bytes -= rw->enc_len;
    q_free(rw->blob);
    json_decref(rw->meta);
    rw->blob = NULL, rw->meta = NULL;
    c->nlive--, c->ndead++;
}

typedef struct prepared {
    char *blob;
    json_t *meta;
} prepared;

int coll_apply(struct quarry_coll *c, uint64_t segno, const uint8_t *payload, uint32_t len,
               size_t *ndeleted) {
    uint32_t nops = get_u32(payload + 8), pos, nup = 0, i = 0;
    op_view op;
    int rc = 0, more;
    prepared *prep = q_calloc(nops, sizeof *prep);
    if (!prep) return q_err(QUARRY_NOMEM, "out of memory");

    /* ---- prepare: every allocation the batch needs */
    for (pos = BATCH_PREFIX_LEN; (more = batch_next_op(payload, len, &pos, &op)) == 1; i++) {
        if (op.op != OP_UPSERT) continue;
        nup++;
        if (op.dim && op.dim != c->cfg.dim) {
            rc = q_err(QUARRY_CORRUPT_RECORD, "logged vector has dim %u, collection dim is %u",
                       op.dim, c->cfg.dim);
            goto fail;
        }
        size_t blen = (size_t)op.id_len + op.text_len + op.meta_len + 3;
        char *b = q_malloc(blen);
        if (!b) {
            rc = q_err(QUARRY_NOMEM, "out of memory");
            goto fail;
        }
        char *p = b;
        memcpy(p, op.id, op.id_len), p += op.id_len, *p++ = 0;
        if (op.text_len) memcpy(p, op.text, op.text_len);
        p += op.text_len, *p++ = 0;
        if (op.meta_len) memcpy(p, op.meta, op.meta_len);
        p[op.meta_len] = 0;
        prep[i].blob = b;
        if (op.meta) {
            prep[i].meta = json_loadb(op.meta, op.meta_len, 0, NULL);
            if (!prep[i].meta) {
                rc = q_err(QUARRY_CORRUPT_RECORD, "logged metadata of id '%.*s' does not parse",
                           (int)op.id_len, op.id);
                goto fail;
            }
        }
    }
    if (more < 0) {
        rc = more;
        goto fail;
    }
    if ((uint64_t)c->nrows + nup >= UINT32_MAX - 1) {
        rc = q_err(QUARRY_FULL, "collection holds 2^32 row versions; compact it");
        goto fail;
    }
    if ((rc = grow_rows(c, c->nrows + nup))) goto fail;
    if ((rc = idmap_reserve(&c->map, c->rows, nup))) goto fail;
    if ((rc = segstat_reserve(c, segno))) goto fail;

    /* ---- install: cannot fail from here on */
    segstat *ss = segstat_get(c, segno);
    size_t ndel = 0;
    i = 0;
    for (pos = BATCH_PREFIX_LEN; batch_next_op(payload, len, &pos, &op) == 1; i++) {
        uint64_t h = idmap_hash(op.id, op.id_len);
        if (op.op == OP_DELETE) {
            int64_t old = idmap_del(&c->map, c->rows, op.id, op.id_len, h);
            if (old >= 0) {
                kill_row(c, (uint32_t)old);
                ndel++;
            }
            continue;
        }
        uint32_t r = c->nrows++;
        row *rw = &c->rows[r];
        *rw = (row){prep[i].blob, prep[i].meta, segno, op.id_len, op.text_len, op.meta_len,
                    op.enc_len, ROW_LIVE};
        prep[i].blob = NULL, prep[i].meta = NULL;
        if (op.text) rw->flags |= ROW_TEXT;
        if (op.meta) rw->flags |= ROW_META;
        if (op.vector) {
            memcpy(c->vecs + (size_t)r * c->cfg.dim, op.vector, (size_t)op.dim * 4);
            rw->flags |= ROW_VEC;
            c->live_vec[r / 64] |= 1ull << (r % 64);
            c->nlive_vec++;
        }
        c->nlive++;
        ss->live_bytes += op.enc_len;
        int64_t old = idmap_put(&c->map, c->rows, op.id, op.id_len, h, r);
        if (old >= 0) kill_row(c, (uint32_t)old);
    }
    if (ndeleted) *ndeleted = ndel;
    q_free(prep);
    return 0;
fail:
    for (uint32_t j = 0; j < nops; j++) {
        q_free(prep[j].blob);
        json_decref(prep[j].meta);
    }
    q_free(prep);
    return rc;
}

int coll_replay(void *ctx, uint64_t segno, uint64_t lsn, const uint8_t *payload, uint32_t len,
                uint32_t rec_len) {
    struct quarry_coll *c = ctx;
    int rc = coll_apply(c, segno, payload, len, NULL);
    if (rc == 0) c->applied_lsn = lsn;
    return rc;
}

/* ============================================================== vacuum */

int coll_vacuum(struct quarry_coll *c) {
    pthread_rwlock_wrlock(&c->rw);
    int rc = 0;
    if (c->ndead == 0) goto out;
    uint32_t n = 0;
    for (uint32_t r = 0; r < c->nrows; r++) {
        if (!(c->rows[r].flags & ROW_LIVE)) continue;
        if (n != r) {
            c->rows[n] = c->rows[r];
            if (c->cfg.dim)
                memmove(c->vecs + (size_t)n * c->cfg.dim, c->vecs + (size_t)r * c->cfg.dim,
                        (size_t)c->cfg.dim * sizeof(float));
        }
        n++;
    }
    c->nrows = n;
    memset(c->live_vec, 0, ((c->rows_cap + 63) / 64) * sizeof *c->live_vec);
    for (uint32_t r = 0; r < n; r++)
        if (c->rows[r].flags & ROW_VEC) c->live_vec[r / 64] |= 1ull << (r % 64);
    c->ndead = 0;
    /* rebuild the id map at the right size */
    idmap_free(&c->map);
    rc = idmap_reserve(&c->map, c->rows, n);
    if (rc) {
        c->panic = 1; /* cannot find rows by id any more */
        goto out;
    }
    for (uint32_t r = 0; r < n; r++) {
        const row *rw = &c->rows[r];
        idmap_put(&c->map, c->rows, row_id(rw), rw->id_len, idmap_hash(row_id(rw), rw->id_len),
                  r);
    }
out:
    pthread_rwlock_unlock(&c->rw);
    return rc;
}

/* ============================================================== compaction */

typedef struct moved {
    uint32_t row;
    uint64_t segno;
} moved;

typedef struct fill_ctx {
    struct quarry_coll *c;
    const uint64_t *sealed;
    size_t nsealed;
    uint32_t cursor;
    moved *mv;
    size_t nmv, mv_cap;
} fill_ctx;

static int in_set(const uint64_t *a, size_t n, uint64_t x) {
    for (size_t i = 0; i < n; i++)
        if (a[i] == x) return 1;
    return 0;
}

static int64_t compact_fill(void *vctx, uint64_t segno, uint8_t *buf, size_t cap,
                            uint32_t *nops) {
    fill_ctx *f = vctx;
    struct quarry_coll *c = f->c;
    size_t off = BATCH_PREFIX_LEN;
    uint32_t n = 0;
    int64_t rc = 0;
    pthread_rwlock_rdlock(&c->rw);
    for (; f->cursor < c->nrows; f->cursor++) {
        const row *rw = &c->rows[f->cursor];
        if (!(rw->flags & ROW_LIVE) || !in_set(f->sealed, f->nsealed, rw->segno)) continue;
        uint32_t dim = (rw->flags & ROW_VEC) ? c->cfg.dim : 0;
        uint64_t need = op_encoded_len(rw->id_len, dim, rw->text_len, rw->meta_len);
        if (off + need > cap && n > 0) break;
        if (f->nmv == f->mv_cap) {
            size_t mc = f->mv_cap ? 2 * f->mv_cap : 1024;
            moved *m = q_realloc(f->mv, mc * sizeof *m);
            if (!m) {
                rc = -q_err(QUARRY_NOMEM, "out of memory");
                break;
            }
            f->mv = m, f->mv_cap = mc;
        }
        op_encode(buf + off, OP_UPSERT, row_id(rw), rw->id_len,
                  dim ? c->vecs + (size_t)f->cursor * c->cfg.dim : NULL, dim,
                  (rw->flags & ROW_TEXT) ? row_text(rw) : NULL, rw->text_len,
                  (rw->flags & ROW_META) ? row_meta(rw) : NULL, rw->meta_len);
        f->mv[f->nmv++] = (moved){f->cursor, segno};
        off += need;
        n++;
        if (off >= cap) {
            f->cursor++;
            break;
        }
    }
    pthread_rwlock_unlock(&c->rw);
    if (rc) return rc;
    *nops = n;
    return n ? (int64_t)off : 0;
}

int coll_compact(struct quarry_coll *c, int force) {
    pthread_mutex_lock(&c->compact_mu);
    int rc = 0;
    uint64_t *sealed = NULL;
    size_t nsealed = 0;
    fill_ctx f = {0};
    if (force && (rc = seglog_rotate(c->log))) goto out;
    if ((rc = seglog_sealed(c->log, &sealed, &nsealed))) goto out;
    if (nsealed > 0) {
        uint64_t total = 0, live = 0;
        pthread_rwlock_rdlock(&c->rw);
        for (size_t i = 0; i < nsealed; i++) {
            total += seglog_segment_bytes(c->log, sealed[i]);
            segstat *s = segstat_get(c, sealed[i]);
            if (s) live += s->live_bytes;
        }
        pthread_rwlock_unlock(&c->rw);
        if (force || live * 2 < total) {
            f = (fill_ctx){c, sealed, nsealed, 0, NULL, 0, 0};
            rc = seglog_compact(c->log, sealed, nsealed, compact_fill, &f);
            if (rc) goto out;
            pthread_rwlock_wrlock(&c->rw);
            for (size_t i = 0; i < f.nmv; i++) {
                row *rw = &c->rows[f.mv[i].row];
                if (rw->segno == f.mv[i].segno) continue;
                segstat *from = segstat_get(c, rw->segno);
                if ((rw->flags & ROW_LIVE) && from) from->live_bytes -= rw->enc_len;
                rw->segno = f.mv[i].segno;
                if (segstat_reserve(c, rw->segno) == 0 && (rw->flags & ROW_LIVE))
                    segstat_get(c, rw->segno)->live_bytes += rw->enc_len;
            }
            /* forget the stats of deleted segments */
            size_t k = 0;
            for (size_t i = 0; i < c->nsegst; i++)
                if (!in_set(sealed, nsealed, c->segst[i].segno)) c->segst[k++] = c->segst[i];
            c->nsegst = k;
            pthread_rwlock_unlock(&c->rw);
            atomic_fetch_add(&c->compactions, 1);
        }
    }
    rc = coll_vacuum(c);
out:
    q_free(f.mv);
    q_free(sealed);
    pthread_mutex_unlock(&c->compact_mu);
    return rc;
}
