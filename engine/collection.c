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
#include <unistd.h>

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
    pthread_rwlock_init(&c->commit_mu, NULL);
    pthread_mutex_init(&c->compact_mu, NULL);
    coll_ivf_init(c);
    *out = c;
    return 0;
}

static void free_rows(struct quarry_coll *c) {
    for (uint32_t r = 0; r < c->nrows; r++) {
        q_free(c->rows[r].blob);
        json_decref(c->rows[r].meta);
    }
    q_free(c->rows);
    q_region_free(c->vecs, (size_t)c->rows_cap * c->cfg.dim * sizeof(float));
    hnsw_free(c->graph);
    c->graph = NULL;
    bm25_free(c->text);
    c->text = NULL;
    attr_index_free(c->attrs);
    c->attrs = NULL;
    if (c->live) roaring_bitmap_free(c->live);
    c->live = NULL;
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
    coll_ivf_destroy(c); /* joins a training thread first */
    free_rows(c);
    q_free(c->dir);
    pthread_rwlock_destroy(&c->life);
    pthread_rwlock_destroy(&c->rw);
    pthread_mutex_destroy(&c->apply_mu);
    pthread_cond_destroy(&c->apply_cv);
    pthread_rwlock_destroy(&c->commit_mu);
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
    if (c->graph) {
        if (hnsw_reserve(c->graph, (uint32_t)cap) != 0)
            return q_err(QUARRY_NOMEM, "out of memory (graph for %" PRIu64 " rows)", cap);
    } else if (c->cfg.dim) {
        /* mremap: growth moves page tables, never the vectors */
        size_t vb = (size_t)c->cfg.dim * sizeof(float);
        float *v = q_region_resize(c->vecs, (size_t)c->rows_cap * vb, (size_t)cap * vb);
        if (!v) return q_err(QUARRY_NOMEM, "out of memory (vectors for %" PRIu64 " rows)", cap);
        c->vecs = v;
    }
    c->rows_cap = (uint32_t)cap;
    return 0;
}

int coll_reserve(struct quarry_coll *c, uint32_t rows) {
    int rc = grow_rows(c, rows);
    if (!rc) rc = idmap_reserve(&c->map, rows);
    return rc;
}

static void kill_row(struct quarry_coll *c, uint32_t r) {
    row *rw = &c->rows[r];
    if (!(rw->flags & ROW_LIVE)) return;
    rw->flags &= (uint8_t)~ROW_LIVE;
    if (rw->flags & ROW_VEC) {
        c->live_vec[r / 64] &= ~(1ull << (r % 64));
        c->nlive_vec--;
        if (c->graph && hnsw_contains(c->graph, r)) {
            hnsw_delete(c->graph, r);
            c->idx_changes++;
        }
    }
    if ((rw->flags & ROW_TEXT) && !c->replaying && bm25_delete(c->text, r)) c->idx_changes++;
    if (rw->meta && !c->replaying) { /* replay indexes metadata at the end */
        attr_index_remove(c->attrs, r, rw->meta);
        c->idx_changes++;
    }
    roaring_bitmap_remove(c->live, r);
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

/* Insert the rows of a batch that have a vector and are still live into the
 * graph: in parallel for large batches. Called with the write lock held. */
static int graph_insert_rows(struct quarry_coll *c, uint32_t *rows, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (c->rows[rows[i]].flags & ROW_LIVE) rows[k++] = rows[i];
    if (k == 0) return 0;
    int rc = k >= 256 ? hnsw_insert_batch(c->graph, rows, k, 2) : 0;
    for (size_t i = 0; k < 256 && i < k && !rc; i++) rc = hnsw_insert(c->graph, rows[i]);
    c->idx_changes += k;
    return rc ? q_err(rc, "inserting into the HNSW graph failed (out of memory)") : 0;
}

int coll_apply(struct quarry_coll *c, uint64_t segno, uint64_t lsn, const uint8_t *payload,
               uint32_t len, size_t *ndeleted) {
    uint32_t nops = get_u32(payload + 8), pos, nup = 0, i = 0;
    op_view op;
    int rc = 0, more;
    prepared *prep = q_calloc(nops, sizeof *prep);
    uint32_t *newvec = q_malloc((size_t)nops * sizeof *newvec);
    size_t nnew = 0;
    if (!prep || !newvec) {
        q_free(prep);
        q_free(newvec);
        return q_err(QUARRY_NOMEM, "out of memory");
    }

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
    if (more != 0) { /* batch_next_op's CORRUPT (records are validated at decode) */
        rc = more;
        goto fail;
    }
    if ((uint64_t)c->nrows + nup >= UINT32_MAX - 1) {
        rc = q_err(QUARRY_FULL, "collection holds 2^32 row versions; compact it");
        goto fail;
    }
    if ((rc = grow_rows(c, c->nrows + nup))) goto fail;
    if ((rc = idmap_reserve(&c->map, nup))) goto fail;
    if ((rc = segstat_reserve(c, segno))) goto fail;

    /* ---- install: cannot fail from here on */
    segstat *ss = segstat_get(c, segno);
    size_t ndel = 0;
    int attr_failed = 0;
    uint32_t first_new = c->nrows;
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
            memcpy(coll_vec(c, r), op.vector, (size_t)op.dim * 4);
            newvec[nnew++] = r;
            rw->flags |= ROW_VEC;
            c->live_vec[r / 64] |= 1ull << (r % 64);
            c->nlive_vec++;
        }
        c->nlive++;
        ss->live_bytes += op.enc_len;
        roaring_bitmap_add(c->live, r);
        if (rw->meta && !c->replaying) {
            if (attr_index_add(c->attrs, r, rw->meta) != 0)
                attr_failed = 1;
            else
                c->idx_changes++;
        }
        int64_t old = idmap_put(&c->map, c->rows, op.id, op.id_len, h, r);
        if (old >= 0) kill_row(c, (uint32_t)old);
    }
    if (ndeleted) *ndeleted = ndel;
    c->mem_lsn = lsn;
    /* During replay the graph, the text index and the metadata index are
     * built once at the end (or loaded from the checkpoint): rows replaced or
     * deleted later in the log are never indexed, and a checkpoint's rows
     * need no indexing at all. */
    if (attr_failed) rc = q_err(QUARRY_NOMEM, "out of memory (metadata index)");
    if (!rc && c->graph && !c->replaying) rc = graph_insert_rows(c, newvec, nnew);
    if (!rc && !c->replaying) rc = coll_ivf_after_apply(c, newvec, nnew);
    for (uint32_t r = first_new; !rc && !c->replaying && r < c->nrows; r++) {
        const row *rw = &c->rows[r];
        if ((rw->flags & (ROW_LIVE | ROW_TEXT)) != (ROW_LIVE | ROW_TEXT)) continue;
        rc = bm25_add(c->text, r, row_text(rw), rw->text_len);
        if (rc) q_err_prefix(rc, "indexing the text of row '%s'", row_id(rw));
        c->idx_changes++;
    }
    q_free(prep);
    q_free(newvec);
    return rc;
fail:
    for (uint32_t j = 0; j < nops; j++) {
        q_free(prep[j].blob);
        json_decref(prep[j].meta);
    }
    q_free(prep);
    q_free(newvec);
    return rc;
}

int coll_replay(void *ctx, uint64_t segno, uint64_t lsn, const uint8_t *payload, uint32_t len,
                uint32_t rec_len) {
    struct quarry_coll *c = ctx;
    int rc = coll_apply(c, segno, lsn, payload, len, NULL);
    if (rc == 0) {
        c->applied_lsn = lsn;
        if (c->ckpt_file[0] && lsn <= c->ckpt_lsn) c->ckpt_rows_seen = c->nrows;
    }
    return rc;
}

/* ============================================================== index */

int coll_index_init(struct quarry_coll *c) {
    int rc = 0;
    if (c->cfg.index == QUARRY_INDEX_HNSW && !c->graph) {
        hnsw_config hc = {(flat_metric)c->cfg.metric, c->cfg.dim, c->cfg.hnsw_m,
                          c->cfg.hnsw_ef_construction, 0x5eed0000u + c->id, NULL};
        if ((rc = hnsw_new(&hc, &c->graph))) return q_err(rc, "cannot create the HNSW index");
    }
    if (!c->text) {
        bm25_config bc;
        bm25_config_default(&bc);
        bc.k1 = c->cfg.bm25_k1;
        bc.b = c->cfg.bm25_b;
        bc.analyzer.language = c->cfg.text_language[0] ? c->cfg.text_language : NULL;
        if ((rc = bm25_new(&bc, &c->text)))
            return q_err_prefix(rc, "cannot create the text index");
    }
    if (!c->attrs && (rc = attr_index_new(&c->attrs)))
        return q_err(rc, "cannot create the metadata index");
    if (!c->live && !(c->live = roaring_bitmap_create()))
        return q_err(QUARRY_NOMEM, "out of memory");
    return 0;
}

/* Insert live rows with a vector from `from` on into the graph, on both cores. */
static int graph_build_all(struct quarry_coll *c, uint32_t from) {
    uint32_t *rows = q_malloc(((size_t)c->nrows + 1) * sizeof *rows);
    if (!rows) return q_err(QUARRY_NOMEM, "out of memory");
    size_t n = 0;
    for (uint32_t r = from; r < c->nrows; r++)
        if ((c->rows[r].flags & (ROW_LIVE | ROW_VEC)) == (ROW_LIVE | ROW_VEC)) rows[n++] = r;
    int rc = n ? hnsw_insert_batch(c->graph, rows, n, 2) : 0;
    q_free(rows);
    c->idx_changes += n;
    return rc ? q_err(rc, "building the HNSW graph failed (out of memory)") : 0;
}

/* Index the text of live rows from `from` on, in row order. */
static int text_build_all(struct quarry_coll *c, uint32_t from) {
    for (uint32_t r = from; r < c->nrows; r++) {
        const row *rw = &c->rows[r];
        if ((rw->flags & (ROW_LIVE | ROW_TEXT)) != (ROW_LIVE | ROW_TEXT)) continue;
        int rc = bm25_add(c->text, r, row_text(rw), rw->text_len);
        if (rc) return q_err_prefix(rc, "building the text index");
        c->idx_changes++;
    }
    bm25_shrink(c->text);
    return 0;
}

/* Index the metadata of live rows from `from` on, in row order. */
static int attrs_build_all(struct quarry_coll *c, uint32_t from) {
    for (uint32_t r = from; r < c->nrows; r++) {
        const row *rw = &c->rows[r];
        if (!(rw->flags & ROW_LIVE) || !rw->meta) continue;
        int rc = attr_index_add(c->attrs, r, rw->meta);
        if (rc) return q_err_prefix(rc, "building the metadata index");
        c->idx_changes++;
    }
    return 0;
}

/* Rows below the checkpoint that are dead now (most died before it and are
 * not in the index: removing them is a no-op) leave the loaded metadata
 * index. Their metadata is gone (freed when they died), so by row number. */
static int attrs_drop_dead(struct quarry_coll *c) {
    roaring_bitmap_t *dead = roaring_bitmap_create();
    if (!dead) return q_err(QUARRY_NOMEM, "out of memory");
    for (uint32_t r = 0; r < c->ckpt_rows; r++)
        if ((c->rows[r].flags & (ROW_LIVE | ROW_META)) == ROW_META) roaring_bitmap_add(dead, r);
    if (!roaring_bitmap_is_empty(dead)) attr_index_remove_rows(c->attrs, dead);
    roaring_bitmap_free(dead);
    return 0;
}

static int graph_fresh(struct quarry_coll *c) {
    /* a new, empty graph holding the current vectors */
    hnsw *old = c->graph;
    c->graph = NULL;
    int rc = coll_index_init(c);
    if (!rc) rc = hnsw_reserve(c->graph, c->rows_cap ? c->rows_cap : 1);
    if (rc) {
        hnsw_free(c->graph);
        c->graph = old;
        return q_err(QUARRY_NOMEM, "out of memory (graph)");
    }
    for (uint32_t r = 0; r < c->nrows; r++)
        if (c->rows[r].flags & ROW_VEC)
            memcpy(hnsw_vector(c->graph, r), hnsw_vector(old, r), (size_t)c->cfg.dim * 4);
    hnsw_free(old);
    return 0;
}

/* Load the checkpoint's sections; *have_graph / *have_text / *have_attrs say
 * which loaded. */
static int load_checkpoint(struct quarry_coll *c, int *have_graph, int *have_text,
                           int *have_attrs) {
    *have_graph = *have_text = *have_attrs = 0;
    if (!c->ckpt_file[0]) return QUARRY_NOTFOUND;
    if (c->mem_lsn < c->ckpt_lsn || c->ckpt_rows_seen != c->ckpt_rows || c->ckpt_rows > c->nrows)
        return q_err(QUARRY_CORRUPT, "checkpoint %s does not match the log (LSN %" PRIu64
                                     ", %u rows; the log has %u rows at that LSN)",
                     c->ckpt_file, c->ckpt_lsn, c->ckpt_rows, c->ckpt_rows_seen);
    ckpt_info want = {CKPT_KIND_INDEXES, c->id, c->ckpt_rows, c->ckpt_lsn};
    uint8_t *buf;
    size_t len;
    int rc = ckpt_read(c->dir, c->ckpt_file, &want, &buf, &len);
    if (rc) return rc;
    size_t off = 0, slen;
    uint32_t kind;
    const uint8_t *sec;
    int more;
    while (!rc && (more = ckpt_next_section(buf, len, &off, &kind, &sec, &slen)) == 1) {
        if (kind == CKPT_SECTION_HNSW && c->graph && !*have_graph) {
            if ((rc = hnsw_deserialize(c->graph, sec, slen, c->ckpt_rows)))
                q_err(rc, "checkpoint %s: the graph does not decode", c->ckpt_file);
            *have_graph = !rc;
        } else if (kind == CKPT_SECTION_IVFPQ && c->cfg.index == QUARRY_INDEX_IVFPQ && !c->ivf) {
            ivfpq_config ic = coll_ivf_config(c);
            if ((rc = ivfpq_load(&ic, sec, slen, c->ckpt_rows, &c->ivf)))
                q_err_prefix(rc, "checkpoint %s: the IVF-PQ index does not decode", c->ckpt_file);
        } else if (kind == CKPT_SECTION_BM25 && !*have_text) {
            if ((rc = bm25_deserialize(c->text, sec, slen)))
                q_err_prefix(rc, "checkpoint %s: the text index does not decode", c->ckpt_file);
            *have_text = !rc;
        } else if (kind == CKPT_SECTION_ATTRS && !*have_attrs) {
            if ((rc = attr_index_deserialize(c->attrs, sec, slen, c->ckpt_rows)))
                q_err_prefix(rc, "checkpoint %s: the metadata index does not decode",
                             c->ckpt_file);
            *have_attrs = !rc;
        } else {
            rc = q_err(QUARRY_CORRUPT, "checkpoint %s: unexpected section %u", c->ckpt_file, kind);
        }
    }
    if (!rc && more != 0 && more != 1) rc = more; /* ckpt_next_section's CORRUPT */
    q_free(buf);
    if (rc) return rc;
    /* rows that died after the checkpoint: tombstone them */
    for (uint32_t r = 0; r < c->ckpt_rows; r++) {
        const row *rw = &c->rows[r];
        if (rw->flags & ROW_LIVE) continue;
        if (*have_graph && (rw->flags & ROW_VEC) && hnsw_contains(c->graph, r) &&
            !hnsw_is_deleted(c->graph, r))
            hnsw_delete(c->graph, r);
        if (*have_text && (rw->flags & ROW_TEXT)) bm25_delete(c->text, r);
    }
    return *have_attrs ? attrs_drop_dead(c) : 0;
}

int coll_finish_replay(struct quarry_coll *c) {
    c->replaying = 0;
    int have_graph = 0, have_text = 0, have_attrs = 0;
    int rc = load_checkpoint(c, &have_graph, &have_text, &have_attrs);
    if (rc != 0 && rc != QUARRY_NOTFOUND) {
        fprintf(stderr,
                "quarry: warning: collection '%s': %s; rebuilding the indexes from the log\n",
                c->name, quarry_errmsg());
        if (c->graph && (rc = graph_fresh(c))) return rc;
        ivfpq_free(c->ivf); /* retrained in the background */
        c->ivf = NULL;
        bm25_clear(c->text);
        attr_index_clear(c->attrs);
        have_graph = have_text = have_attrs = 0;
    }
    q_err_clear();
    c->idx_changes = 0;
    if (c->graph && (rc = graph_build_all(c, have_graph ? c->ckpt_rows : 0))) return rc;
    if ((rc = text_build_all(c, have_text ? c->ckpt_rows : 0))) return rc;
    if ((rc = attrs_build_all(c, have_attrs ? c->ckpt_rows : 0))) return rc;
    if ((rc = coll_ivf_finish_replay(c, c->ivf ? c->ckpt_rows : 0))) return rc;
    if (!have_graph && !have_text && !c->ckpt_file[0] && c->idx_changes == 0) return 0;
    return 0;
}

uint64_t coll_checkpoint_due(struct quarry_coll *c) { return c->idx_changes; }

/* Append one section (kind, serialised index) to a growing buffer. */
static int add_section(uint8_t **buf, size_t *len, uint32_t kind, uint8_t *data, size_t dlen) {
    uint8_t *b = q_realloc(*buf, *len + CKPT_SECTION_HEADER + dlen);
    if (!b) return q_err(QUARRY_NOMEM, "out of memory (checkpoint)");
    put_u32(b + *len, kind);
    put_u32(b + *len + 4, 0);
    put_u64(b + *len + 8, dlen);
    memcpy(b + *len + CKPT_SECTION_HEADER, data, dlen);
    *buf = b;
    *len += CKPT_SECTION_HEADER + dlen;
    return 0;
}

int coll_checkpoint(struct quarry_coll *c) {
    if (c->db->opts.read_only) return 0;
    pthread_mutex_lock(&c->compact_mu);
    pthread_rwlock_rdlock(&c->rw);
    uint8_t *buf = NULL, *part = NULL;
    size_t len = 0, plen = 0;
    ckpt_info info = {CKPT_KIND_INDEXES, c->id, c->nrows, c->mem_lsn};
    int rc = 0;
    uint64_t changes = c->idx_changes;
    int changed = changes != 0;
    if (changed && c->graph && !(rc = hnsw_serialize(c->graph, &part, &plen))) {
        rc = add_section(&buf, &len, CKPT_SECTION_HNSW, part, plen);
        q_free(part);
    }
    if (changed && !rc && !(rc = bm25_serialize(c->text, &part, &plen))) {
        rc = add_section(&buf, &len, CKPT_SECTION_BM25, part, plen);
        q_free(part);
    }
    if (changed && !rc && !(rc = attr_index_serialize(c->attrs, &part, &plen))) {
        rc = add_section(&buf, &len, CKPT_SECTION_ATTRS, part, plen);
        q_free(part);
    }
    if (changed && !rc && c->ivf && !(rc = ivfpq_serialize(c->ivf, &part, &plen))) {
        rc = add_section(&buf, &len, CKPT_SECTION_IVFPQ, part, plen);
        q_free(part);
    }
    pthread_rwlock_unlock(&c->rw);
    if (!changed || rc) goto out;
    char name[64], old[64];
    snprintf(name, sizeof name, "ckpt-%020" PRIu64 "-%u.idx", info.lsn, info.rows);
    if ((rc = ckpt_write(c->dir, name, &info, buf, len))) goto out;
    snprintf(old, sizeof old, "%s", c->ckpt_file);
    pthread_mutex_lock(&c->db->mu);
    snprintf(c->ckpt_file, sizeof c->ckpt_file, "%s", name);
    uint64_t ol = c->ckpt_lsn;
    uint32_t orow = c->ckpt_rows;
    c->ckpt_lsn = info.lsn, c->ckpt_rows = info.rows;
    rc = db_write_manifest_locked(c->db);
    if (rc) {
        snprintf(c->ckpt_file, sizeof c->ckpt_file, "%s", old);
        c->ckpt_lsn = ol, c->ckpt_rows = orow;
    }
    pthread_mutex_unlock(&c->db->mu);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->dir, rc ? name : old);
    if ((rc || old[0]) && strcmp(name, old)) unlink(path);
    if (!rc) {
        pthread_rwlock_wrlock(&c->rw);
        c->idx_changes -= changes < c->idx_changes ? changes : c->idx_changes;
        pthread_rwlock_unlock(&c->rw);
    }
out:
    q_free(buf);
    pthread_mutex_unlock(&c->compact_mu);
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
            if (c->cfg.dim && (c->rows[n].flags & ROW_VEC))
                memmove(coll_vec(c, n), coll_vec(c, r), (size_t)c->cfg.dim * sizeof(float));
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
    rc = idmap_reserve(&c->map, n);
    if (rc) {
        c->panic = 1; /* cannot find rows by id any more */
        goto out;
    }
    for (uint32_t r = 0; r < n; r++) {
        const row *rw = &c->rows[r];
        idmap_put(&c->map, c->rows, row_id(rw), rw->id_len, idmap_hash(row_id(rw), rw->id_len),
                  r);
    }
    /* Row numbers changed: the graph, the text index and the metadata index
     * are rebuilt over the live rows (which also repairs the tombstones). */
    if (c->graph && ((rc = graph_fresh(c)) || (rc = graph_build_all(c, 0)))) c->panic = 1;
    if (!rc && (rc = coll_ivf_rebuild(c))) c->panic = 1;
    bm25_clear(c->text);
    if (!rc && (rc = text_build_all(c, 0))) c->panic = 1;
    attr_index_free(c->attrs);
    c->attrs = NULL;
    roaring_bitmap_clear(c->live);
    if (!rc && (rc = coll_index_init(c))) c->panic = 1;
    for (uint32_t r = 0; !rc && r < n; r++) {
        roaring_bitmap_add(c->live, r);
        if (c->rows[r].meta && (rc = attr_index_add(c->attrs, r, c->rows[r].meta))) c->panic = 1;
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
                  dim ? coll_vec(c, f->cursor) : NULL, dim,
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
    /* Compaction renumbers rows: the checkpoint stops matching the log, so it
     * leaves the manifest before the new segments arrive (format.h). */
    if (c->ckpt_file[0]) {
        char old[64];
        snprintf(old, sizeof old, "%s", c->ckpt_file);
        pthread_mutex_lock(&c->db->mu);
        c->ckpt_file[0] = 0;
        rc = db_write_manifest_locked(c->db);
        if (rc) snprintf(c->ckpt_file, sizeof c->ckpt_file, "%s", old);
        pthread_mutex_unlock(&c->db->mu);
        if (rc) goto out;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", c->dir, old);
        unlink(path);
        c->idx_changes++; /* a fresh checkpoint is due */
    }
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
