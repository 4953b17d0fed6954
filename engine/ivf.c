/* SPDX-License-Identifier: MIT */
/*
 * ivf.c -- the life cycle of an IVF-PQ collection's index.
 *
 * Until trained (c->ivf == NULL) the collection answers exactly. Once it
 * holds ivf_train_threshold() rows with a vector, apply (or replay) raises
 * `train_want` and the database's background thread starts a training
 * thread (never the writer itself). quarry_collection_train starts one on
 * demand. A training never blocks readers or writers for long:
 *
 *   1. snapshot (read lock): the live rows with a vector; the training sample
 *      (a seeded choice of at most max(256*nlist, 65536) rows) is copied out;
 *   2. train on the copy, no lock held;
 *   3. encode the snapshot rows into the new index in chunks of ENCODE_CHUNK,
 *      each under the read lock (readers go on, a writer waits one chunk);
 *   4. catch up with the rows written since the snapshot the same way (a
 *      few rounds, while more than a chunk is new), then under the write
 *      lock encode the last few, swap the new index in, free the old one.
 * The old index (or the exact scan) serves until the swap, so every row stays
 * searchable. A vacuum (compaction) renumbers rows: the training notices the
 * generation change and starts over. The new index is then checkpointed so a
 * reopen does not retrain.
 *
 * Deleted and replaced rows stay in the lists until compaction re-encodes the
 * live rows (coll_ivf_rebuild); searches filter them with the live bitmap.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

#define ENCODE_CHUNK 16384
#define TRAIN_RETRIES 3
#define CATCHUP_ROUNDS 8
#define IVF_DEFAULT_TRAIN_ROWS 10000

static uint32_t resolve_nlist(const quarry_collection_config *cfg, uint64_t nvec) {
    if (cfg->ivf_nlist) return cfg->ivf_nlist;
    double nl = 4.0 * sqrt((double)nvec);
    if (nl > (double)(nvec / 39)) nl = (double)(nvec / 39);
    if (nl < 16) nl = 16;
    if (nl > IVFPQ_MAX_NLIST) nl = IVFPQ_MAX_NLIST;
    return (uint32_t)nl;
}

static uint32_t resolve_m(const quarry_collection_config *cfg) {
    if (cfg->pq_m) return cfg->pq_m;
    uint32_t m = cfg->dim / 4;
    if (m > 64) m = 64;
    return m ? m : 1;
}

uint64_t ivf_train_threshold(const quarry_collection_config *cfg) {
    uint64_t floor = cfg->ivf_nlist > IVFPQ_KSUB ? cfg->ivf_nlist : IVFPQ_KSUB;
    uint64_t t = cfg->ivf_train_rows;
    if (!t) {
        t = IVF_DEFAULT_TRAIN_ROWS;
        if (39ull * cfg->ivf_nlist > t) t = 39ull * cfg->ivf_nlist;
    }
    return t > floor ? t : floor;
}

ivfpq_config coll_ivf_config(struct quarry_coll *c) {
    ivfpq_config ic = {(flat_metric)c->cfg.metric, c->cfg.dim, 0, 0, 0,
                       c->cfg.ivf_seed ? c->cfg.ivf_seed : 0x1f5eed00u + c->id, NULL,
                       &c->train_stop};
    return ic;
}

void coll_ivf_init(struct quarry_coll *c) {
    pthread_mutex_init(&c->train_mu, NULL);
    pthread_cond_init(&c->train_cv, NULL);
}

void coll_ivf_destroy(struct quarry_coll *c) {
    coll_ivf_stop(c);
    ivfpq_free(c->ivf);
    c->ivf = NULL;
    pthread_mutex_destroy(&c->train_mu);
    pthread_cond_destroy(&c->train_cv);
}

static int is_live_vec(const struct quarry_coll *c, uint32_t r) {
    return (c->live_vec[r / 64] >> (r % 64)) & 1;
}

static void want_training(struct quarry_coll *c) {
    if (!c->ivf && c->nlive_vec >= ivf_train_threshold(&c->cfg)) atomic_store(&c->train_want, 1);
}

int coll_ivf_after_apply(struct quarry_coll *c, const uint32_t *rows, size_t n) {
    if (c->cfg.index != QUARRY_INDEX_IVFPQ) return 0;
    if (!c->ivf) {
        want_training(c);
        return 0;
    }
    uint32_t *live = q_malloc((n + 1) * sizeof *live);
    if (!live) return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ)");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (is_live_vec(c, rows[i])) live[k++] = rows[i];
    int rc = k ? ivfpq_add_batch(c->ivf, live, k, c->vecs, c->cfg.dim, k >= 256 ? 2 : 1) : 0;
    q_free(live);
    c->idx_changes += k;
    return rc ? q_err_prefix(rc, "adding to the IVF-PQ index") : 0;
}

/* ------------------------------------------------------------ training */

/* Steps 1-2: snapshot the rows and train on a copied sample. */
static int train_snapshot(struct quarry_coll *c, ivfpq **out, uint32_t **rows_out, size_t *nrows,
                          uint32_t *upto, uint64_t *gen) {
    *out = NULL;
    *rows_out = NULL;
    pthread_rwlock_rdlock(&c->rw);
    *gen = c->vacuum_gen;
    *upto = c->nrows;
    size_t n = 0;
    uint32_t *rows = q_malloc(((size_t)c->nlive_vec + 1) * sizeof *rows);
    if (!rows) {
        pthread_rwlock_unlock(&c->rw);
        return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ training)");
    }
    for (uint32_t r = 0; r < c->nrows; r++)
        if (is_live_vec(c, r)) rows[n++] = r;
    ivfpq_config ic = coll_ivf_config(c);
    ic.nlist = resolve_nlist(&c->cfg, n);
    ic.m = resolve_m(&c->cfg);
    size_t need = ic.nlist > IVFPQ_KSUB ? ic.nlist : IVFPQ_KSUB;
    if (n < need) {
        pthread_rwlock_unlock(&c->rw);
        q_free(rows);
        return q_err(QUARRY_INVALID,
                     "IVF-PQ training of '%s' needs at least %zu vectors (nlist %u), it has %zu",
                     c->name, need, ic.nlist, n);
    }
    /* the sample: a seeded partial shuffle of a copy of the row list */
    size_t ns = (size_t)ic.nlist * IVFPQ_MAX_POINTS_PER_CENTROID;
    if (ns < 65536) ns = 65536;
    if (ns > n) ns = n;
    size_t dim = c->cfg.dim;
    uint32_t *pick = q_malloc(n * sizeof *pick);
    float *sample = pick ? q_malloc_aligned(ns * dim * sizeof *sample) : NULL;
    if (!sample) {
        pthread_rwlock_unlock(&c->rw);
        q_free(rows);
        q_free(pick);
        return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ training sample)");
    }
    memcpy(pick, rows, n * sizeof *pick);
    ivfpq_sample(pick, n, ns, ic.seed);
    for (size_t i = 0; i < ns; i++)
        memcpy(sample + i * dim, c->vecs + (size_t)pick[i] * dim, dim * sizeof *sample);
    pthread_rwlock_unlock(&c->rw);
    q_free(pick);

    ivfpq *ix;
    int rc = ivfpq_new(&ic, &ix);
    if (!rc && (rc = ivfpq_train(ix, sample, NULL, ns, dim, 2))) {
        ivfpq_free(ix);
        ix = NULL;
    }
    q_free_aligned(sample);
    if (rc) {
        q_free(rows);
        return rc;
    }
    *out = ix;
    *rows_out = rows;
    *nrows = n;
    return 0;
}

/* Steps 3-4. QUARRY_BUSY when a vacuum renumbered the rows meanwhile. */
static int train_fill_swap(struct quarry_coll *c, ivfpq *ix, const uint32_t *rows, size_t n,
                           uint32_t upto, uint64_t gen) {
    int rc = 0;
    for (size_t at = 0; at < n && !rc; at += ENCODE_CHUNK) {
        size_t cnt = n - at < ENCODE_CHUNK ? n - at : ENCODE_CHUNK;
        pthread_rwlock_rdlock(&c->rw);
        if (c->vacuum_gen != gen) rc = QUARRY_BUSY;
        else rc = ivfpq_add_batch(ix, rows + at, cnt, c->vecs, c->cfg.dim, 2);
        pthread_rwlock_unlock(&c->rw);
    }
    /* Catch up with the rows written meanwhile, a chunk at a time under the
     * read lock, until the rest is small enough for the write lock. */
    for (int round = 0; !rc && round < CATCHUP_ROUNDS; round++) {
        pthread_rwlock_rdlock(&c->rw);
        uint32_t end = c->nrows;
        if (c->vacuum_gen != gen) rc = QUARRY_BUSY;
        pthread_rwlock_unlock(&c->rw);
        if (rc || end - upto <= ENCODE_CHUNK) break;
        for (uint32_t from = upto; !rc && from < end;) {
            uint32_t to = end - from > ENCODE_CHUNK ? from + ENCODE_CHUNK : end;
            pthread_rwlock_rdlock(&c->rw);
            if (c->vacuum_gen != gen) rc = QUARRY_BUSY;
            for (uint32_t r = from; !rc && r < to; r++)
                if (is_live_vec(c, r)) rc = ivfpq_add(ix, r, c->vecs + (size_t)r * c->cfg.dim);
            pthread_rwlock_unlock(&c->rw);
            from = to;
        }
        upto = end;
    }
    if (rc) return rc;
    pthread_rwlock_wrlock(&c->rw);
    if (c->vacuum_gen != gen) {
        pthread_rwlock_unlock(&c->rw);
        return QUARRY_BUSY;
    }
    for (uint32_t r = upto; r < c->nrows && !rc; r++)
        if (is_live_vec(c, r)) rc = ivfpq_add(ix, r, c->vecs + (size_t)r * c->cfg.dim);
    ivfpq *old = NULL;
    if (!rc) {
        ivfpq_shrink(ix); /* built in bulk: no growth slack */
        old = c->ivf;
        c->ivf = ix;
        c->idx_changes += ivfpq_size(ix) + 1;
    }
    pthread_rwlock_unlock(&c->rw);
    ivfpq_free(old);
    return rc;
}

static int train_run(struct quarry_coll *c) {
    int rc = QUARRY_BUSY;
    uint64_t t0 = q_now_ns();
    for (int attempt = 0; attempt < TRAIN_RETRIES && rc == QUARRY_BUSY; attempt++) {
        ivfpq *ix = NULL;
        uint32_t *rows = NULL, upto = 0;
        size_t n = 0;
        uint64_t gen = 0;
        if ((rc = train_snapshot(c, &ix, &rows, &n, &upto, &gen))) break;
        rc = train_fill_swap(c, ix, rows, n, upto, gen);
        q_free(rows);
        if (rc) ivfpq_free(ix);
    }
    if (rc == QUARRY_BUSY) rc = q_err(QUARRY_BUSY, "rows renumbered during every training try");
    if (rc) return rc;
    const ivfpq_config *ic = ivfpq_get_config(c->ivf);
    fprintf(stderr,
            "quarry: collection '%s': IVF-PQ trained (nlist %u, m %u) in %.2f s, %zu rows\n",
            c->name, ic->nlist, ic->m, (double)(q_now_ns() - t0) / 1e9, ivfpq_size(c->ivf));
    /* persist now: a reopen must not retrain */
    if (!c->train_stop && coll_checkpoint(c) != 0)
        fprintf(stderr, "quarry: warning: collection '%s': checkpoint after training: %s\n",
                c->name, quarry_errmsg());
    return 0;
}

static void *train_main(void *arg) {
    struct quarry_coll *c = arg;
    int rc = train_run(c);
    if (rc && rc != QUARRY_INTERRUPTED)
        fprintf(stderr, "quarry: warning: collection '%s': IVF-PQ training: %s\n", c->name,
                quarry_errmsg());
    pthread_mutex_lock(&c->train_mu);
    snprintf(c->train_msg, sizeof c->train_msg, "%s", rc ? quarry_errmsg() : "");
    c->train_rc = rc;
    c->training = 0;
    pthread_cond_broadcast(&c->train_cv);
    pthread_mutex_unlock(&c->train_mu);
    return NULL;
}

int coll_ivf_start(struct quarry_coll *c) {
    if (c->cfg.index != QUARRY_INDEX_IVFPQ)
        return q_err(QUARRY_UNSUPPORTED, "collection '%s' has a %s index, not ivfpq", c->name,
                     quarry_index_name(c->cfg.index));
    pthread_mutex_lock(&c->train_mu);
    int rc = 0;
    if (c->train_stop) {
        rc = q_err(QUARRY_INTERRUPTED, "collection '%s' is closing", c->name);
        goto out;
    }
    if (c->training) goto out;
    if (c->train_joinable) {
        pthread_join(c->train_thread, NULL); /* finished: it cleared `training` */
        c->train_joinable = 0;
    }
    c->training = 1;
    if (pthread_create(&c->train_thread, NULL, train_main, c) != 0) {
        c->training = 0;
        rc = q_err(QUARRY_NOMEM, "cannot start the training thread");
        goto out;
    }
    c->train_joinable = 1;
out:
    pthread_mutex_unlock(&c->train_mu);
    return rc;
}

int coll_ivf_wait(struct quarry_coll *c) {
    pthread_mutex_lock(&c->train_mu);
    while (c->training) pthread_cond_wait(&c->train_cv, &c->train_mu);
    /* a stop (close, drop) clears train_joinable when it joins the thread */
    int rc = c->train_joinable || c->train_stop ? c->train_rc : 0;
    if (rc) q_err(rc, "%s", c->train_msg);
    pthread_mutex_unlock(&c->train_mu);
    return rc;
}

void coll_ivf_stop(struct quarry_coll *c) {
    if (c->cfg.index != QUARRY_INDEX_IVFPQ) return;
    pthread_mutex_lock(&c->train_mu);
    c->train_stop = 1;
    int join = c->train_joinable;
    c->train_joinable = 0;
    pthread_mutex_unlock(&c->train_mu);
    if (join) pthread_join(c->train_thread, NULL);
}

/* ------------------------------------------------------------ vacuum, replay */

static int add_live_from(struct quarry_coll *c, uint32_t from) {
    size_t n = 0;
    uint32_t *rows = q_malloc(((size_t)c->nrows + 1) * sizeof *rows);
    if (!rows) return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ)");
    for (uint32_t r = from; r < c->nrows; r++)
        if (is_live_vec(c, r)) rows[n++] = r;
    int rc = n ? ivfpq_add_batch(c->ivf, rows, n, c->vecs, c->cfg.dim, 2) : 0;
    q_free(rows);
    c->idx_changes += n;
    return rc ? q_err_prefix(rc, "building the IVF lists") : 0;
}

int coll_ivf_rebuild(struct quarry_coll *c) {
    c->vacuum_gen++;
    if (!c->ivf) return 0;
    ivfpq_clear_lists(c->ivf);
    int rc = add_live_from(c, 0);
    ivfpq_shrink(c->ivf);
    return rc;
}

int coll_ivf_finish_replay(struct quarry_coll *c, uint32_t from) {
    if (c->cfg.index != QUARRY_INDEX_IVFPQ) return 0;
    if (c->ivf) return add_live_from(c, from);
    want_training(c);
    return 0;
}
