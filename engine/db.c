/* SPDX-License-Identifier: MIT */
/*
 * db.c -- the database: directory lock, manifest, recovery of every
 * collection at open, collection create/drop/list, and the background
 * flusher that serves the `interval` durability policy.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "engine/engine.h"

/* ============================================================== manifest */

/* Write the manifest from the in-memory state. Caller holds db->mu. */
int db_write_manifest_locked(struct quarry_db *db) {
    if (db->opts.read_only) return 0;
    manifest m = {0};
    m.next_collection_id = db->next_collection_id;
    m.colls = q_calloc(db->ncolls ? db->ncolls : 1, sizeof *m.colls);
    if (!m.colls) return q_err(QUARRY_NOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < db->ncolls; i++) {
        struct quarry_coll *c = db->colls[i];
        manifest_coll *mc = &m.colls[i];
        m.ncolls = i + 1;
        mc->id = c->id;
        snprintf(mc->name, sizeof mc->name, "%s", c->name);
        mc->dim = c->cfg.dim;
        mc->metric = c->cfg.metric, mc->index = c->cfg.index;
        mc->durability = c->cfg.durability, mc->interval_ms = c->cfg.interval_ms;
        mc->hnsw_m = c->cfg.hnsw_m, mc->hnsw_ef_construction = c->cfg.hnsw_ef_construction;
        mc->hnsw_ef_search = c->cfg.hnsw_ef_search, mc->ivf_nlist = c->cfg.ivf_nlist;
        mc->pq_m = c->cfg.pq_m, mc->ivf_nprobe = c->cfg.ivf_nprobe;
        mc->ivf_refine = c->cfg.ivf_refine, mc->ivf_train_rows = c->cfg.ivf_train_rows;
        mc->ivf_seed = c->cfg.ivf_seed;
        snprintf(mc->text_language, sizeof mc->text_language, "%s", c->cfg.text_language);
        mc->bm25_k1 = c->cfg.bm25_k1, mc->bm25_b = c->cfg.bm25_b;
        snprintf(mc->ckpt_file, sizeof mc->ckpt_file, "%s", c->ckpt_file);
        mc->ckpt_lsn = c->ckpt_lsn, mc->ckpt_rows = c->ckpt_rows;
        if (!c->log) {
            /* a closed log's segments are unknown here: writing the manifest
             * now would drop them (and open would delete them as orphans) */
            rc = q_err(QUARRY_INTERNAL, "manifest written while collection '%s' is closed",
                       c->name);
            goto out;
        }
        rc = seglog_segments(c->log, &mc->segments, &mc->nsegments, &mc->next_segment);
        if (rc) goto out;
    }
    rc = manifest_write(db->path, db->mio, &m);
out:
    manifest_clear(&m);
    return rc;
}

int db_on_segments(void *ctx) {
    struct quarry_coll *c = ctx;
    struct quarry_db *db = c->db;
    if (db->opening) return 0; /* written once at the end of open */
    pthread_mutex_lock(&db->mu);
    int rc = db_write_manifest_locked(db);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int db_write_manifest(struct quarry_db *db) {
    pthread_mutex_lock(&db->mu);
    int rc = db_write_manifest_locked(db);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ============================================================== flusher */

/* Graph changes (inserts + deletes) after which the background thread writes a
 * checkpoint; close writes one for any change. */
#define DB_CHECKPOINT_CHANGES 50000

static void *flusher_main(void *arg) {
    struct quarry_db *db = arg;
    pthread_mutex_lock(&db->mu);
    while (!db->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&db->flusher_cv, &db->mu, &ts);
        if (db->stopping) break;
        uint64_t now = q_now_ns();
        for (size_t i = 0; i < db->ncolls; i++) {
            struct quarry_coll *c = db->colls[i];
            /* an IVF-PQ collection reached its training size: start it here,
             * never in the writer that crossed the threshold */
            int trc;
            if (atomic_exchange(&c->train_want, 0) && !c->dropped &&
                (trc = coll_ivf_start(c)) != 0 && trc != QUARRY_INTERRUPTED)
                fprintf(stderr, "quarry: warning: collection '%s': %s\n", c->name,
                        quarry_errmsg());
            if (coll_checkpoint_due(c) >= db->checkpoint_every) {
                atomic_fetch_add(&c->refs, 1);
                pthread_mutex_unlock(&db->mu);
                pthread_rwlock_rdlock(&c->life);
                if (!c->dropped && coll_checkpoint(c) != 0)
                    fprintf(stderr, "quarry: warning: collection '%s': checkpoint: %s\n",
                            c->name, quarry_errmsg());
                pthread_rwlock_unlock(&c->life);
                coll_release(c);
                pthread_mutex_lock(&db->mu);
                break;
            }
            if (c->cfg.durability != QUARRY_DURABILITY_INTERVAL || !c->log) continue;
            if (now - c->last_sync_ns < (uint64_t)c->cfg.interval_ms * 1000000ull) continue;
            if (!seglog_dirty(c->log) || seglog_panic(c->log)) continue;
            atomic_fetch_add(&c->refs, 1);
            c->last_sync_ns = now;
            pthread_mutex_unlock(&db->mu);
            pthread_rwlock_rdlock(&c->life);
            if (!c->dropped && c->log) {
                if (seglog_sync(c->log) != 0)
                    fprintf(stderr, "quarry: warning: collection '%s': background sync: %s\n",
                            c->name, quarry_errmsg());
            }
            pthread_rwlock_unlock(&c->life);
            coll_release(c);
            pthread_mutex_lock(&db->mu);
            break; /* the list may have changed; rescan on the next tick */
        }
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

/* ============================================================== open/close */

static void remove_stale_checkpoints(struct quarry_coll *c);

static int open_collection(struct quarry_db *db, const manifest_coll *mc) {
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = mc->dim;
    cfg.metric = mc->metric, cfg.index = mc->index, cfg.durability = mc->durability;
    cfg.interval_ms = mc->interval_ms;
    cfg.hnsw_m = mc->hnsw_m, cfg.hnsw_ef_construction = mc->hnsw_ef_construction;
    cfg.hnsw_ef_search = mc->hnsw_ef_search, cfg.ivf_nlist = mc->ivf_nlist;
    cfg.pq_m = mc->pq_m, cfg.ivf_nprobe = mc->ivf_nprobe;
    cfg.ivf_refine = mc->ivf_refine ? mc->ivf_refine : 4, cfg.ivf_train_rows = mc->ivf_train_rows;
    cfg.ivf_seed = mc->ivf_seed;
    snprintf(cfg.text_language, sizeof cfg.text_language, "%s", mc->text_language);
    cfg.bm25_k1 = mc->bm25_k1, cfg.bm25_b = mc->bm25_b;
    struct quarry_coll *c;
    int rc = coll_new(db, mc->id, mc->name, &cfg, &c);
    if (rc) return rc;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/c-%u", db->path, mc->id);
    c->dir = q_strndup(dir, strlen(dir));
    if (!c->dir) {
        coll_free(c);
        return q_err(QUARRY_NOMEM, "out of memory");
    }
    snprintf(c->ckpt_file, sizeof c->ckpt_file, "%s", mc->ckpt_file);
    c->ckpt_lsn = mc->ckpt_lsn, c->ckpt_rows = mc->ckpt_rows;
    if ((rc = coll_index_init(c))) {
        coll_free(c);
        return rc;
    }
    c->replaying = 1;
    /* Size everything once from the log's bytes: growing by doubling during
     * replay copied the vectors (or the graph's node blocks) log2(n) times. */
    uint64_t log_bytes = 0;
    for (size_t i = 0; i < mc->nsegments; i++) {
        char path[4200];
        struct stat sst;
        snprintf(path, sizeof path, "%s/seg-%08" PRIu64 ".log", c->dir, mc->segments[i]);
        if (stat(path, &sst) == 0) log_bytes += (uint64_t)sst.st_size;
    }
    uint64_t per_row = OP_HEADER_LEN + 24 + (uint64_t)mc->dim * 4;
    uint64_t est = log_bytes / per_row;
    if (est > 4096 && est < UINT32_MAX / 2) (void)coll_reserve(c, (uint32_t)est);
    q_err_clear();
    seglog_config lc = {c->dir,
                        c->id,
                        db->io_kind,
                        db->opts.segment_max_bytes,
                        db->opts.read_only,
                        mc->segments,
                        mc->nsegments,
                        mc->next_segment,
                        db_on_segments,
                        c};
    rc = seglog_open(&lc, coll_replay, c, &c->log);
    if (!rc) rc = coll_finish_replay(c);
    if (rc) {
        q_err_prefix(rc, "collection '%s'", mc->name);
        seglog_close(c->log);
        coll_free(c);
        return rc;
    }
    if (!db->opts.read_only) remove_stale_checkpoints(c);
    c->last_sync_ns = q_now_ns();
    db->colls[db->ncolls++] = c;
    return 0;
}

/* Delete checkpoint files other than the current one (an interrupted
 * checkpoint or compaction leaves them). */
static void remove_stale_checkpoints(struct quarry_coll *c) {
    DIR *d = opendir(c->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "ckpt-", 5) != 0 || !strcmp(e->d_name, c->ckpt_file)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", c->dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Remove collection directories the manifest does not know (a crash between
 * creating one and installing the manifest, or after a drop). */
static void remove_orphan_dirs(struct quarry_db *db) {
    DIR *d = opendir(db->path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned id;
        char extra;
        if (sscanf(e->d_name, "c-%u%c", &id, &extra) != 1) continue;
        int known = 0;
        for (size_t i = 0; i < db->ncolls; i++) known |= db->colls[i]->id == id;
        if (!known) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", db->path, e->d_name);
            seglog_destroy_dir(dir);
        }
    }
    closedir(d);
}

static void db_free(struct quarry_db *db) {
    if (!db) return;
    for (size_t i = 0; i < db->ncolls; i++) {
        struct quarry_coll *c = db->colls[i];
        seglog_close(c->log);
        c->log = NULL;
        coll_free(c);
    }
    q_free(db->colls);
    io_ctx_free(db->mio);
    if (db->lockfd >= 0) close(db->lockfd);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->flusher_cv);
    q_free(db->path);
    q_free(db);
}

int quarry_open(const char *path, const quarry_options *opts, quarry_db **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return q_err(QUARRY_INVALID, "quarry_open: empty path");
    quarry_options o;
    quarry_options_init(&o);
    if (opts) {
        if (opts->size != sizeof o)
            return q_err(QUARRY_MISUSE, "quarry_open: options not set up by quarry_options_init");
        o = *opts;
    }
    struct quarry_db *db = q_calloc(1, sizeof *db);
    if (!db) return q_err(QUARRY_NOMEM, "out of memory");
    db->lockfd = -1;
    db->opts = o;
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->flusher_cv, NULL);
    db->path = q_strndup(path, strlen(path));
    int rc = 0;
    manifest m = {0};
    if (!db->path) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto fail;
    }
    db->io_kind = o.io == QUARRY_IO_URING ? IO_URING : o.io == QUARRY_IO_POSIX ? IO_POSIX : IO_AUTO;
    const char *env = getenv("QUARRY_IO");
    if (env && !strcmp(env, "posix")) db->io_kind = IO_POSIX;
    if (env && (!strcmp(env, "uring") || !strcmp(env, "io_uring"))) db->io_kind = IO_URING;

    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) {
            rc = q_err(QUARRY_IOERR_OPEN, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (!o.create_if_missing || o.read_only) {
            rc = q_err(QUARRY_NOTFOUND, "database %s does not exist", path);
            goto fail;
        }
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            rc = q_err(QUARRY_IOERR_OPEN, "create directory %s: %s", path, strerror(errno));
            goto fail;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        rc = q_err(QUARRY_INVALID, "%s is not a directory", path);
        goto fail;
    }
    char lockpath[4096];
    snprintf(lockpath, sizeof lockpath, "%s/LOCK", path);
    db->lockfd = open(lockpath, (o.read_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0644);
    if (db->lockfd < 0 && o.read_only && errno == ENOENT) {
        rc = q_err(QUARRY_NOTFOUND, "%s is not a Quarry database", path);
        goto fail;
    }
    if (db->lockfd < 0) {
        rc = q_err(QUARRY_IOERR_OPEN, "open %s: %s", lockpath, strerror(errno));
        goto fail;
    }
    if (flock(db->lockfd, LOCK_EX | LOCK_NB) != 0) {
        rc = q_err(QUARRY_BUSY, "database %s is open in another process", path);
        goto fail;
    }
    int ioerr = io_ctx_new(db->io_kind, &db->mio);
    if (ioerr < 0) {
        rc = q_err(QUARRY_UNSUPPORTED, "I/O back end %s unavailable: %s",
                   db->io_kind == IO_URING ? "io_uring" : "posix", strerror(-ioerr));
        goto fail;
    }
    db->io_name = db->mio->ops->name;
    /* QUARRY_CHECKPOINT_EVERY: graph changes between background checkpoints */
    const char *ce = getenv("QUARRY_CHECKPOINT_EVERY");
    db->checkpoint_every = ce && atol(ce) > 0 ? (uint64_t)atol(ce) : DB_CHECKPOINT_CHANGES;

    rc = manifest_read(path, db->mio, &m);
    if (rc == QUARRY_NOTFOUND) {
        if (o.read_only) goto fail;
        q_err_clear();
        rc = 0;
        m.next_collection_id = 1;
        db->next_collection_id = 1;
        if ((rc = db_write_manifest_locked(db))) goto fail;
    } else if (rc) {
        goto fail;
    }
    db->next_collection_id = m.next_collection_id;
    db->colls = q_calloc(m.ncolls + 8, sizeof *db->colls);
    db->colls_cap = m.ncolls + 8;
    if (!db->colls) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto fail;
    }
    db->opening = 1;
    for (size_t i = 0; i < m.ncolls; i++)
        if ((rc = open_collection(db, &m.colls[i]))) goto fail;
    db->opening = 0;
    if (!o.read_only) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", path);
        unlink(tmp);
        remove_orphan_dirs(db);
        /* recovery may have started new segments: record them */
        if ((rc = db_write_manifest_locked(db))) goto fail;
        if (pthread_create(&db->flusher, NULL, flusher_main, db) == 0) db->flusher_started = 1;
    }
    manifest_clear(&m);
    *out = db;
    return 0;
fail:
    manifest_clear(&m);
    db_free(db);
    return rc;
}

const char *quarry_io_backend_name(quarry_db *db) { return db && db->io_name ? db->io_name : ""; }

int quarry_close(quarry_db *db) {
    if (!db) return 0;
    q_err_clear();
    if (db->flusher_started) {
        pthread_mutex_lock(&db->mu);
        db->stopping = 1;
        pthread_cond_broadcast(&db->flusher_cv);
        pthread_mutex_unlock(&db->mu);
        pthread_join(db->flusher, NULL);
    }
    int rc = 0;
    /* trainings stop first: they checkpoint and read the rows */
    for (size_t i = 0; i < db->ncolls; i++) coll_ivf_stop(db->colls[i]);
    /* Checkpoints first, while every log is open: each one rewrites the
     * manifest, which lists every collection's segments. */
    for (size_t i = 0; i < db->ncolls; i++) {
        struct quarry_coll *c = db->colls[i];
        if (coll_checkpoint_due(c) && !c->panic && coll_checkpoint(c) != 0)
            fprintf(stderr, "quarry: warning: collection '%s': checkpoint at close: %s\n",
                    c->name, quarry_errmsg());
    }
    for (size_t i = 0; i < db->ncolls; i++) {
        struct quarry_coll *c = db->colls[i];
        int r = seglog_close(c->log);
        c->log = NULL;
        if (r && !rc) rc = r;
        if (atomic_load(&c->refs) > 1)
            fprintf(stderr, "quarry: warning: collection '%s' handle still open at close\n",
                    c->name);
        coll_free(c);
    }
    db->ncolls = 0;
    db_free(db);
    return rc;
}

int quarry_sync(quarry_db *db) {
    q_err_clear();
    if (!db) return q_err(QUARRY_MISUSE, "quarry_sync: db is NULL");
    if (db->opts.read_only) return 0;
    pthread_mutex_lock(&db->mu);
    int rc = 0;
    for (size_t i = 0; i < db->ncolls && !rc; i++) rc = seglog_sync(db->colls[i]->log);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ============================================================== collections */

static struct quarry_coll *find_locked(struct quarry_db *db, const char *name) {
    for (size_t i = 0; i < db->ncolls; i++)
        if (!strcmp(db->colls[i]->name, name)) return db->colls[i];
    return NULL;
}

static int check_config(const quarry_collection_config *cfg) {
    if (cfg->size != sizeof *cfg)
        return q_err(QUARRY_MISUSE, "config not set up by quarry_collection_config_init");
    if (cfg->dim > QUARRY_MAX_DIM)
        return q_err(QUARRY_INVALID, "dim %u is above the limit %u", cfg->dim, QUARRY_MAX_DIM);
    if ((unsigned)cfg->metric > QUARRY_METRIC_COSINE)
        return q_err(QUARRY_INVALID, "unknown metric %d", (int)cfg->metric);
    if ((unsigned)cfg->index > QUARRY_INDEX_IVFPQ)
        return q_err(QUARRY_INVALID, "unknown index kind %d", (int)cfg->index);
    if ((unsigned)cfg->durability > QUARRY_DURABILITY_NONE)
        return q_err(QUARRY_INVALID, "unknown durability policy %d", (int)cfg->durability);
    if (cfg->durability == QUARRY_DURABILITY_INTERVAL &&
        (cfg->interval_ms == 0 || cfg->interval_ms > 3600000))
        return q_err(QUARRY_INVALID, "interval_ms must be 1..3600000");
    if (cfg->index != QUARRY_INDEX_FLAT && cfg->dim == 0)
        return q_err(QUARRY_INVALID, "a %s index needs vectors: set dim",
                     quarry_index_name(cfg->index));
    if (!memchr(cfg->text_language, 0, sizeof cfg->text_language))
        return q_err(QUARRY_INVALID, "text_language is not NUL-terminated");
    if (!(cfg->bm25_k1 >= 0 && cfg->bm25_k1 <= 100) || !(cfg->bm25_b >= 0 && cfg->bm25_b <= 1))
        return q_err(QUARRY_INVALID, "BM25 parameters out of range (k1 0..100, b 0..1)");
    if ((cfg->hnsw_m && (cfg->hnsw_m < HNSW_MIN_M || cfg->hnsw_m > HNSW_MAX_M)) ||
        cfg->hnsw_ef_construction > 100000 || cfg->hnsw_ef_search > 100000)
        return q_err(QUARRY_INVALID,
                     "HNSW parameters out of range (m %d..%d, ef_construction and ef <= 100000)",
                     HNSW_MIN_M, HNSW_MAX_M);
    if (cfg->ivf_nlist > IVFPQ_MAX_NLIST || cfg->ivf_nprobe > IVFPQ_MAX_NLIST ||
        cfg->ivf_refine > QUARRY_MAX_IVF_REFINE)
        return q_err(QUARRY_INVALID, "IVF parameters out of range (nlist and nprobe <= %u, "
                                     "refine <= %u)",
                     IVFPQ_MAX_NLIST, QUARRY_MAX_IVF_REFINE);
    if (cfg->ivf_seed > INT64_MAX)
        return q_err(QUARRY_INVALID, "ivf_seed must be below 2^63");
    if (cfg->index == QUARRY_INDEX_IVFPQ && cfg->pq_m > cfg->dim)
        return q_err(QUARRY_INVALID, "pq_m %u is above dim %u (each code byte covers at least "
                                     "one dimension)",
                     cfg->pq_m, cfg->dim);
    return 0;
}

int quarry_collection_create(quarry_db *db, const char *name,
                             const quarry_collection_config *cfg_in, quarry_coll **out) {
    q_err_clear();
    if (out) *out = NULL;
    if (!db || !name) return q_err(QUARRY_MISUSE, "quarry_collection_create: NULL argument");
    if (!q_name_valid(name))
        return q_err(QUARRY_INVALID,
                     "collection name '%.80s' is invalid: use 1..%d of [A-Za-z0-9_-]", name,
                     QUARRY_MAX_NAME_LEN);
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    if (cfg_in) cfg = *cfg_in;
    int rc = check_config(&cfg);
    if (rc) return rc;
    if (cfg.hnsw_m == 0) cfg.hnsw_m = 16;
    if (cfg.hnsw_ef_construction == 0) cfg.hnsw_ef_construction = 200;
    if (cfg.hnsw_ef_search == 0) cfg.hnsw_ef_search = 64;
    if (cfg.ivf_nprobe == 0) cfg.ivf_nprobe = 16;
    if (cfg.ivf_refine == 0) cfg.ivf_refine = 4;
    if (cfg.interval_ms == 0) cfg.interval_ms = 100;
    if (db->opts.read_only) return q_err(QUARRY_READONLY, "the database is open read-only");

    pthread_mutex_lock(&db->mu);
    struct quarry_coll *c = NULL;
    if (find_locked(db, name)) {
        rc = q_err(QUARRY_EXISTS, "collection '%s' already exists", name);
        goto out;
    }
    if (db->ncolls == db->colls_cap) {
        size_t cap = db->colls_cap ? 2 * db->colls_cap : 8;
        struct quarry_coll **a = q_realloc(db->colls, cap * sizeof *a);
        if (!a) {
            rc = q_err(QUARRY_NOMEM, "out of memory");
            goto out;
        }
        db->colls = a, db->colls_cap = cap;
    }
    uint32_t id = db->next_collection_id;
    if ((rc = coll_new(db, id, name, &cfg, &c))) goto out;
    if ((rc = coll_index_init(c))) goto out;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/c-%u", db->path, id);
    c->dir = q_strndup(dir, strlen(dir));
    if (!c->dir) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto out;
    }
    seglog_destroy_dir(dir); /* a leftover of a crashed create */
    if (mkdir(dir, 0755) != 0) {
        rc = q_err(q_errno_rc(-errno, QUARRY_IOERR_OPEN), "create %s: %s", dir, strerror(errno));
        goto out;
    }
    if ((rc = storage_fsync_dir(db->path))) goto out;
    seglog_config lc = {c->dir, id,   db->io_kind,    db->opts.segment_max_bytes, 0, NULL, 0, 1,
                        db_on_segments, c};
    if ((rc = seglog_open(&lc, coll_replay, c, &c->log))) goto out;
    c->last_sync_ns = q_now_ns();
    db->next_collection_id++;
    db->colls[db->ncolls++] = c;
    rc = db_write_manifest_locked(db);
    if (rc) {
        db->ncolls--;
        db->next_collection_id--;
        goto out;
    }
    if (out) {
        atomic_fetch_add(&c->refs, 1);
        *out = c;
    }
    c = NULL;
out:
    if (c) {
        seglog_close(c->log);
        c->log = NULL;
        if (c->dir) seglog_destroy_dir(c->dir);
        coll_free(c);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int quarry_collection_open(quarry_db *db, const char *name, quarry_coll **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_collection_open: out is NULL");
    *out = NULL;
    if (!db || !name) return q_err(QUARRY_MISUSE, "quarry_collection_open: NULL argument");
    pthread_mutex_lock(&db->mu);
    struct quarry_coll *c = find_locked(db, name);
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&db->mu);
    if (!c) return q_err(QUARRY_NOTFOUND, "no collection named '%.80s'", name);
    *out = c;
    return 0;
}

void quarry_collection_close(quarry_coll *c) { coll_release(c); }

int quarry_collection_drop(quarry_db *db, const char *name) {
    q_err_clear();
    if (!db || !name) return q_err(QUARRY_MISUSE, "quarry_collection_drop: NULL argument");
    if (db->opts.read_only) return q_err(QUARRY_READONLY, "the database is open read-only");
    pthread_mutex_lock(&db->mu);
    struct quarry_coll *c = find_locked(db, name);
    if (!c) {
        pthread_mutex_unlock(&db->mu);
        return q_err(QUARRY_NOTFOUND, "no collection named '%.80s'", name);
    }
    size_t i = 0;
    while (db->colls[i] != c) i++;
    memmove(db->colls + i, db->colls + i + 1, (db->ncolls - i - 1) * sizeof *db->colls);
    db->ncolls--;
    int rc = db_write_manifest_locked(db);
    if (rc) {
        /* not dropped: put it back */
        memmove(db->colls + i + 1, db->colls + i, (db->ncolls - i) * sizeof *db->colls);
        db->colls[i] = c;
        db->ncolls++;
        pthread_mutex_unlock(&db->mu);
        return rc;
    }
    pthread_mutex_unlock(&db->mu);
    coll_ivf_stop(c); /* a training writes checkpoints into the directory */
    /* wait for in-flight calls, then tear down */
    pthread_rwlock_wrlock(&c->life);
    c->dropped = 1;
    seglog *log = c->log;
    c->log = NULL;
    pthread_rwlock_unlock(&c->life);
    /* the log may be mid-rotation callback: closing takes its append lock */
    seglog_close(log);
    seglog_destroy_dir(c->dir);
    storage_fsync_dir(db->path);
    pthread_rwlock_wrlock(&c->rw);
    /* rows are freed with the object when the last handle goes */
    pthread_rwlock_unlock(&c->rw);
    coll_release(c);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int quarry_collection_list(quarry_db *db, char ***names, size_t *count) {
    q_err_clear();
    if (!db || !names || !count) return q_err(QUARRY_MISUSE, "quarry_collection_list: NULL");
    *names = NULL, *count = 0;
    pthread_mutex_lock(&db->mu);
    size_t n = db->ncolls, bytes = (n + 1) * sizeof(char *);
    for (size_t i = 0; i < n; i++) bytes += strlen(db->colls[i]->name) + 1;
    char **a = q_malloc(bytes);
    if (!a) {
        pthread_mutex_unlock(&db->mu);
        return q_err(QUARRY_NOMEM, "out of memory");
    }
    char *p = (char *)(a + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(db->colls[i]->name) + 1;
        memcpy(p, db->colls[i]->name, l);
        a[i] = p;
        p += l;
    }
    a[n] = NULL;
    pthread_mutex_unlock(&db->mu);
    qsort(a, n, sizeof *a, cmp_str);
    *names = a;
    *count = n;
    return 0;
}
