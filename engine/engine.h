/* SPDX-License-Identifier: MIT */
/*
 * engine.h -- internal structures of the engine: the database, collections,
 * their in-memory row store and the id map. Public entry points live in
 * api.c; this header is for the engine sources and tests.
 *
 * Memory model of a collection. Every row version gets a dense uint32 row
 * number in log order (replaying the log reproduces the same numbers).
 * `rows[r]` holds the id, text and metadata (one allocation) and the parsed
 * metadata for filters; `vecs + r*dim` holds the vector in one 64-byte
 * aligned array; bit r of `live_vec` says row r is live and has a vector,
 * which is all the flat scan needs to know. A replaced or deleted row is
 * dead: its strings are freed at once, its number and vector slot stay
 * until compaction renumbers (vacuum).
 *
 * Concurrency. `rw` is a readers-writer lock: search/get/stats read, apply
 * and vacuum write. Writers reach the log one at a time (the log's append
 * mutex), wait for durability outside every engine lock (group commit), then
 * apply strictly in LSN order (apply_mu + apply_cv), so memory always equals
 * a prefix of the log. `commit_mu` is held for reading around the append of
 * an ordinary commit; a batch with partial updates holds it for writing, waits
 * until every appended batch is applied, resolves its updates against memory
 * into whole-row upserts and appends those (api.c), so the log only ever holds
 * whole rows. `life` is held for reading by every operation and for
 * writing by drop, so a drop waits for in-flight calls and later calls see
 * `dropped`.
 */
#ifndef QUARRY_ENGINE_H
#define QUARRY_ENGINE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/qcommon.h"
#include <roaring/roaring.h>

#include "index/filter/filter.h"
#include "index/hnsw/hnsw.h"
#include "index/ivfpq/ivfpq.h"
#include "index/text/text.h"
#include "storage/storage.h"

#define ROW_LIVE 1
#define ROW_VEC 2
#define ROW_TEXT 4
#define ROW_META 8

typedef struct row {
    char *blob;     /* id NUL text NUL meta NUL; NULL once dead */
    json_t *meta;   /* parsed metadata (filters); NULL if none or dead */
    uint64_t segno; /* segment holding this version */
    uint32_t id_len, text_len, meta_len;
    uint32_t enc_len; /* bytes of the operation in the log */
    uint8_t flags;
} row;

static inline const char *row_id(const row *r) { return r->blob; }
static inline const char *row_text(const row *r) { return r->blob + r->id_len + 1; }
static inline const char *row_meta(const row *r) {
    return r->blob + r->id_len + 1 + r->text_len + 1;
}

/* Open-addressing hash map: external id -> live row number (xxh3 keyed). */
typedef struct idmap_slot {
    uint32_t row1; /* row + 1; 0 = empty; UINT32_MAX = deleted */
    uint32_t tag;  /* low 32 bits of the hash (also the probe start) */
} idmap_slot;

typedef struct idmap {
    idmap_slot *slots;
    size_t cap;    /* power of two */
    size_t used;   /* live entries */
    size_t filled; /* live + deleted slots */
} idmap;

uint64_t idmap_hash(const char *id, size_t len);
/* Row number of `id`, or -1. */
int64_t idmap_find(const idmap *m, const row *rows, const char *id, size_t len, uint64_t h);
/* Make room for `extra` insertions without allocating. 0 or NOMEM. */
int idmap_reserve(idmap *m, size_t extra);
/* Insert or replace (capacity must be reserved). Returns the old row or -1. */
int64_t idmap_put(idmap *m, const row *rows, const char *id, size_t len, uint64_t h, uint32_t r);
/* Remove; returns the old row or -1. */
int64_t idmap_del(idmap *m, const row *rows, const char *id, size_t len, uint64_t h);
void idmap_free(idmap *m);

typedef struct segstat {
    uint64_t segno;
    uint64_t live_bytes;
} segstat;

struct quarry_coll {
    struct quarry_db *db;
    _Atomic int refs; /* the db's reference + open handles */
    pthread_rwlock_t life;
    int dropped;
    uint32_t id;
    char name[QUARRY_MAX_NAME_LEN + 1];
    quarry_collection_config cfg;
    char *dir;
    seglog *log;
    int panic; /* in-memory state could not follow the log; reopen */

    pthread_rwlock_t rw;
    pthread_mutex_t apply_mu;
    pthread_cond_t apply_cv;
    uint64_t applied_lsn;
    pthread_rwlock_t commit_mu;     /* appends: read; resolving partial updates: write */
    pthread_mutex_t compact_mu;

    row *rows;
    uint32_t nrows, rows_cap;
    float *vecs;  /* flat kind: rows_cap * dim floats, 64-byte aligned */
    hnsw *graph;  /* hnsw kind: the graph, which also holds the vectors */
    /* ivfpq kind (engine/ivf.c): NULL until trained (exact answers meanwhile);
     * the vectors stay in `vecs` for exact scans and re-ranking. Swapped
     * under the write lock. */
    ivfpq *ivf;
    pthread_mutex_t train_mu; /* the fields below */
    pthread_cond_t train_cv;
    pthread_t train_thread;
    int train_joinable;       /* a training thread was started and not joined */
    int training;             /* it is running */
    int train_rc;             /* outcome of the last training */
    char train_msg[256];      /* ... and its message */
    volatile int train_stop;  /* close/drop: stop training (checked between steps) */
    _Atomic int train_want;   /* apply/replay: enough rows, the flusher should train */
    uint64_t vacuum_gen;      /* bumped by vacuum (row numbers changed); under rw */
    bm25 *text;   /* the rows' text (every collection) */
    attr_index *attrs;      /* metadata values -> rows, for filters */
    roaring_bitmap_t *live; /* live rows (the universe of filters) */

    /* replay and checkpoints (hnsw kind) */
    int replaying;           /* open in progress: the indexes are built at the end */
    uint64_t mem_lsn;        /* LSN of the last batch applied to memory */
    char ckpt_file[64];      /* current checkpoint ("" = none) */
    uint64_t ckpt_lsn;
    uint32_t ckpt_rows;
    uint32_t ckpt_rows_seen; /* replay: rows numbered after the last batch <= ckpt_lsn */
    _Atomic uint64_t idx_changes; /* index changes since the checkpoint (the flusher polls it) */
    uint64_t *live_vec;
    idmap map;
    uint64_t nlive, nlive_vec, ndead;
    segstat *segst;
    size_t nsegst, segst_cap;
    _Atomic uint64_t batches, compactions, searches, searches_exact;
    uint64_t mem_bytes;
    uint64_t last_sync_ns;
};

struct quarry_db {
    char *path;
    int lockfd;
    quarry_options opts;
    int io_kind;
    const char *io_name;
    pthread_mutex_t mu; /* collections list, manifest */
    struct quarry_coll **colls;
    size_t ncolls, colls_cap;
    uint32_t next_collection_id;
    io_ctx *mio;
    int opening;
    pthread_t flusher;
    int flusher_started;
    pthread_cond_t flusher_cv;
    int stopping;
    uint64_t checkpoint_every;
};

/* Vector of row r (valid until the next apply/vacuum), and the flat-scan view. */
static inline float *coll_vec(struct quarry_coll *c, uint32_t r) {
    return c->graph ? hnsw_vector(c->graph, r) : c->vecs + (size_t)r * c->cfg.dim;
}
static inline const float *coll_vec_base(const struct quarry_coll *c, size_t *stride) {
    *stride = c->graph ? hnsw_stride(c->graph) : c->cfg.dim;
    return c->graph ? hnsw_vectors(c->graph) : c->vecs;
}

/* validate.c */
int q_utf8_valid(const char *s, size_t len);
int q_name_valid(const char *name);
/* Parse and check metadata; on success *out is compact canonical JSON
 * (malloc'd by jansson: free with free()). */
int q_metadata_canon(const char *json, size_t len, char **out, size_t *out_len);

/* collection.c */
int coll_new(struct quarry_db *db, uint32_t id, const char *name,
             const quarry_collection_config *cfg, struct quarry_coll **out);
void coll_free(struct quarry_coll *c);
int coll_replay(void *ctx, uint64_t segno, uint64_t lsn, const uint8_t *payload, uint32_t len,
                uint32_t rec_len);
int coll_apply(struct quarry_coll *c, uint64_t segno, uint64_t lsn, const uint8_t *payload,
               uint32_t len, size_t *ndeleted);
/* Size rows, vectors (or graph) and the id map for `rows` rows at once. */
int coll_reserve(struct quarry_coll *c, uint32_t rows);
/* Create the index structures for the collection's kind (before replay). */
int coll_index_init(struct quarry_coll *c);
/* After replay: load the checkpoint or (re)build the graph. */
int coll_finish_replay(struct quarry_coll *c);
/* Write a checkpoint of the graph if it changed since the last one. */
int coll_checkpoint(struct quarry_coll *c);
/* Index changes (graph, text and metadata inserts and deletes) since the last checkpoint. */
uint64_t coll_checkpoint_due(struct quarry_coll *c);
int coll_vacuum(struct quarry_coll *c);
int coll_compact(struct quarry_coll *c, int force);
void coll_release(struct quarry_coll *c);

/* ivf.c (ivfpq kind) */
/* Rows with a vector at which an untrained collection trains. */
uint64_t ivf_train_threshold(const quarry_collection_config *cfg);
/* After an apply (write lock held): encode the batch's new live rows into the
 * index, or flag that training is due. */
int coll_ivf_after_apply(struct quarry_coll *c, const uint32_t *rows, size_t n);
/* Start a background training unless one runs. 0, or an error. */
int coll_ivf_start(struct quarry_coll *c);
/* Stop and join the training thread (close, drop). */
void coll_ivf_stop(struct quarry_coll *c);
/* Wait for a running training; its outcome (0 if none ran). */
int coll_ivf_wait(struct quarry_coll *c);
/* Vacuum renumbered the rows (write lock held): re-encode the live ones. */
int coll_ivf_rebuild(struct quarry_coll *c);
/* After replay: rows the checkpoint did not cover (from `from` on) go into a
 * loaded index; with no index, flag training when due. */
int coll_ivf_finish_replay(struct quarry_coll *c, uint32_t from);
void coll_ivf_init(struct quarry_coll *c);
/* The index config every IVF-PQ index of c shares (nlist and m left 0). */
ivfpq_config coll_ivf_config(struct quarry_coll *c);
void coll_ivf_destroy(struct quarry_coll *c);

/* api.c: enter/leave a call on a collection (NOTFOUND once dropped). */
int coll_enter(struct quarry_coll *c, const char *fn);
void coll_leave(struct quarry_coll *c);

/* db.c */
int db_write_manifest(struct quarry_db *db);
int db_write_manifest_locked(struct quarry_db *db); /* caller holds db->mu */
int db_on_segments(void *ctx);

#endif
