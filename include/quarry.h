/* SPDX-License-Identifier: MIT */
/*
 * quarry.h -- the public, embedded API of Quarry, a vector database and hybrid
 * search engine.
 *
 * A database is a directory. It holds collections. A collection has a name, a
 * vector dimension (0 for a text-only collection), a metric, an index kind and
 * a durability policy. A row has an external string id and any of a float32
 * vector, a UTF-8 text and a metadata JSON object. Upsert replaces by id;
 * quarry_batch_update changes some fields of an existing row.
 *
 * CAVEATS
 *  - Error reporting. Every function that can fail returns an int rc: QUARRY_OK
 *    (0) or a positive code below. Extended codes keep the primary code in the
 *    low byte, so `(rc & 0xff)` always gives a primary code. The detail text of
 *    the last failure on the calling thread is quarry_errmsg(); it is replaced
 *    by the next failing call on that thread.
 *  - A failed write changes nothing. A batch is atomic: after a crash it is
 *    wholly there or wholly absent; an acknowledged batch (commit returned OK
 *    under the `sync` policy) survives any crash of the process or machine.
 *  - After a failed fdatasync, a collection refuses every later write with
 *    QUARRY_PANIC until the database is reopened (the kernel may have dropped
 *    the dirty pages; pretending otherwise would lose acknowledged data).
 *  - One process at a time may open a database directory (a lock file enforces
 *    this; a second opener gets QUARRY_BUSY).
 *  - Threads: quarry_db and quarry_coll handles are thread-safe. Many readers
 *    run at once; writers of one collection are serialised, and concurrent
 *    writers share fdatasync calls (group commit). A quarry_batch, quarry_doc
 *    or quarry_result belongs to one thread at a time.
 *  - Memory: every _new/_open has exactly one _free/_close, and each accepts
 *    NULL. When a constructor fails, *out is set to NULL and nothing needs to be
 *    freed. Inputs are always copied. Returned pointers are borrowed; their
 *    lifetime is stated on each function.
 *  - Distances: search results carry a distance, smaller is closer:
 *      l2      squared Euclidean distance  sum((a-b)^2)
 *      ip      negative inner product      -sum(a*b)
 *      cosine  1 - cosine similarity       (vectors are normalised on insert,
 *                                           and get() returns the unit vector)
 */
#ifndef QUARRY_H
#define QUARRY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(QUARRY_BUILDING) && defined(__GNUC__)
#define QUARRY_API __attribute__((visibility("default")))
#else
#define QUARRY_API
#endif

#define QUARRY_VERSION_MAJOR 0
#define QUARRY_VERSION_MINOR 1
#define QUARRY_VERSION_PATCH 0
#define QUARRY_VERSION_STRING "0.1.0"
#define QUARRY_VERSION_NUMBER \
    (QUARRY_VERSION_MAJOR * 1000000 + QUARRY_VERSION_MINOR * 1000 + QUARRY_VERSION_PATCH)

/* ------------------------------------------------------------------------ */
/* Result codes. New codes are only ever appended.                          */
/* ------------------------------------------------------------------------ */
#define QUARRY_OK 0
#define QUARRY_ERROR 1       /* generic failure */
#define QUARRY_INTERNAL 2    /* an internal invariant failed (a bug) */
#define QUARRY_MISUSE 3      /* API used wrongly: NULL handle, closed handle ... */
#define QUARRY_INVALID 4     /* bad argument or input data (dim, NaN, UTF-8, JSON ...) */
#define QUARRY_NOMEM 5       /* an allocation failed */
#define QUARRY_NOTFOUND 6    /* no such collection or row */
#define QUARRY_EXISTS 7      /* collection already exists */
#define QUARRY_MISMATCH 8    /* vector dimension or type does not match the collection */
#define QUARRY_IOERR 9       /* an I/O call failed */
#define QUARRY_CORRUPT 10    /* persisted bytes fail validation */
#define QUARRY_FULL 11       /* disk full, or a size limit was reached */
#define QUARRY_BUSY 12       /* the database is locked by another process */
#define QUARRY_READONLY 13   /* write to a read-only database */
#define QUARRY_UNSUPPORTED 14 /* feature not available in this build or kernel */
#define QUARRY_INTERRUPTED 15 /* the operation was cancelled */
#define QUARRY_PANIC 16      /* sticky: a durability failure happened; reopen the db */

/* Extended codes: primary code in the low byte. */
#define QUARRY_IOERR_READ (QUARRY_IOERR | (1 << 8))
#define QUARRY_IOERR_WRITE (QUARRY_IOERR | (2 << 8))
#define QUARRY_IOERR_FSYNC (QUARRY_IOERR | (3 << 8))
#define QUARRY_IOERR_OPEN (QUARRY_IOERR | (4 << 8))
#define QUARRY_IOERR_RENAME (QUARRY_IOERR | (5 << 8))
#define QUARRY_IOERR_URING (QUARRY_IOERR | (6 << 8))
#define QUARRY_CORRUPT_RECORD (QUARRY_CORRUPT | (1 << 8))
#define QUARRY_CORRUPT_MANIFEST (QUARRY_CORRUPT | (2 << 8))
#define QUARRY_CORRUPT_SEGMENT (QUARRY_CORRUPT | (3 << 8))
#define QUARRY_INVALID_DIM (QUARRY_MISMATCH | (1 << 8))
#define QUARRY_INTERRUPTED_DEADLINE (QUARRY_INTERRUPTED | (1 << 8)) /* its deadline passed */

/* Limits (checked on every input; exceeding one gives QUARRY_INVALID). */
#define QUARRY_MAX_ID_LEN 256             /* bytes of UTF-8 */
#define QUARRY_MAX_NAME_LEN 64            /* collection name [A-Za-z0-9_-]{1,64} */
#define QUARRY_MAX_DIM 65536
#define QUARRY_MAX_TEXT_LEN (16u << 20)   /* bytes */
#define QUARRY_MAX_METADATA_LEN (1u << 20) /* bytes of JSON */
#define QUARRY_MAX_BATCH_ROWS 1000000
#define QUARRY_MAX_BATCH_BYTES (256u << 20) /* encoded size of one batch */
#define QUARRY_MAX_K 100000
#define QUARRY_MAX_IVF_REFINE 1000 /* re-ranking factor limit (refine * k candidates) */

/** Version string, e.g. "0.1.0". Static storage, never NULL. */
QUARRY_API const char *quarry_version(void);

/** Static English text for a result code (primary or extended). Never NULL. */
QUARRY_API const char *quarry_errstr(int rc);

/**
 * Detail text of the last failure on the calling thread, e.g.
 * "row 3: vector has 127 values, collection dim is 128". Never NULL ("" when
 * nothing failed yet). Valid until the next quarry_* call on this thread.
 */
QUARRY_API const char *quarry_errmsg(void);

/** The rc of the last failure on the calling thread (QUARRY_OK if none). */
QUARRY_API int quarry_errcode(void);

/* ------------------------------------------------------------------------ */
/* Enumerations                                                             */
/* ------------------------------------------------------------------------ */
typedef enum quarry_metric {
    QUARRY_METRIC_L2 = 0,
    QUARRY_METRIC_IP = 1,
    QUARRY_METRIC_COSINE = 2
} quarry_metric;

typedef enum quarry_index_kind {
    QUARRY_INDEX_FLAT = 0,
    QUARRY_INDEX_HNSW = 1,
    QUARRY_INDEX_IVFPQ = 2
} quarry_index_kind;

typedef enum quarry_durability {
    QUARRY_DURABILITY_SYNC = 0,     /* ack after fdatasync of the batch (default) */
    QUARRY_DURABILITY_INTERVAL = 1, /* fdatasync at most every interval_ms */
    QUARRY_DURABILITY_NONE = 2      /* leave it to the OS page cache */
} quarry_durability;

typedef enum quarry_io_backend {
    QUARRY_IO_AUTO = 0,     /* io_uring, or POSIX when the kernel refuses io_uring */
    QUARRY_IO_URING = 1,    /* io_uring only: open fails with UNSUPPORTED without it */
    QUARRY_IO_POSIX = 2     /* pwrite/fdatasync */
} quarry_io_backend;

/** Parse/format helpers: "l2", "ip", "cosine" etc. Return -1 on unknown names. */
QUARRY_API int quarry_metric_parse(const char *name);
QUARRY_API const char *quarry_metric_name(quarry_metric m);
QUARRY_API int quarry_index_parse(const char *name);
QUARRY_API const char *quarry_index_name(quarry_index_kind k);
QUARRY_API int quarry_durability_parse(const char *name);
QUARRY_API const char *quarry_durability_name(quarry_durability d);

/* ------------------------------------------------------------------------ */
/* Database                                                                 */
/* ------------------------------------------------------------------------ */
typedef struct quarry_db quarry_db;
typedef struct quarry_coll quarry_coll;

typedef struct quarry_options {
    size_t size;                /* sizeof(quarry_options), set by quarry_options_init */
    int create_if_missing;      /* default 1 */
    int read_only;              /* default 0: writes return QUARRY_READONLY */
    quarry_io_backend io;       /* default QUARRY_IO_AUTO; env QUARRY_IO=uring|posix overrides */
    uint64_t segment_max_bytes; /* seal the active segment beyond this; default 64 MiB */
} quarry_options;

/** Fill *opts with the defaults. */
QUARRY_API void quarry_options_init(quarry_options *opts);

/**
 * Open (or create) the database in directory `path`, recovering every
 * collection: segments are replayed, a torn tail of the last segment of a
 * collection is truncated (it was never acknowledged), and corruption anywhere
 * else makes the open fail with QUARRY_CORRUPT and a message naming the file
 * and offset.
 * @param[in]  path  directory; created when missing and opts->create_if_missing
 * @param[in]  opts  NULL for defaults
 * @param[out] out   the handle, or NULL on failure
 * @return OK, INVALID, NOTFOUND (missing and not create), BUSY (locked by
 *         another process), IOERR_*, CORRUPT_*, NOMEM, UNSUPPORTED.
 * Any thread. The handle is thread-safe.
 */
QUARRY_API int quarry_open(const char *path, const quarry_options *opts, quarry_db **out);

/**
 * Make every committed write durable, stop background threads and release the
 * database. Collection handles still open are closed too (using them after this
 * is undefined). NULL is a no-op. Returns OK or the sync failure.
 */
QUARRY_API int quarry_close(quarry_db *db);

/** fdatasync every collection's log now (for `interval`/`none` policies). */
QUARRY_API int quarry_sync(quarry_db *db);

/** The database's I/O back end name: "io_uring" or "posix". Static storage. */
QUARRY_API const char *quarry_io_backend_name(quarry_db *db);

/* ------------------------------------------------------------------------ */
/* Collections                                                              */
/* ------------------------------------------------------------------------ */
typedef struct quarry_collection_config {
    size_t size;                  /* sizeof(quarry_collection_config) */
    uint32_t dim;                 /* 0 = text-only collection; else 1..QUARRY_MAX_DIM */
    quarry_metric metric;         /* default L2 */
    quarry_index_kind index;      /* default FLAT */
    quarry_durability durability; /* default SYNC */
    uint32_t interval_ms;         /* for INTERVAL; default 100 */
    /* Index parameters, kept for the kinds that use them (0 = default). */
    uint32_t hnsw_m;              /* default 16 */
    uint32_t hnsw_ef_construction; /* default 200 */
    uint32_t hnsw_ef_search;      /* default 64 */
    uint32_t ivf_nlist;           /* IVF lists; 0 = chosen at training: 4*sqrt(rows),
                                     at most rows/39, 16..65536 */
    uint32_t pq_m;                /* PQ sub-quantisers (code bytes per vector), 1..dim;
                                     0 = dim/4, at most 64 */
    uint32_t ivf_nprobe;          /* lists searched per query; default 16 */
    /* Text (BM25) index of the rows' text. */
    char text_language[32];       /* Snowball stemmer: "english" (default), "none" (no
                                     stemming) or any libstemmer language ("french",
                                     "german", "porter" ...); CJK is always bigrammed */
    float bm25_k1;                /* default 1.2 (>= 0) */
    float bm25_b;                 /* default 0.75 (0..1) */
    /* IVF-PQ, continued. */
    uint32_t ivf_refine;          /* re-rank refine*k PQ candidates with the stored
                                     vectors; 1 = off; default 4 */
    uint32_t ivf_train_rows;      /* train once this many rows have a vector; 0 =
                                     max(10000, 39*ivf_nlist) (>= 256 and >= ivf_nlist) */
    uint64_t ivf_seed;            /* training sample and k-means initialisation: the same
                                     rows and seed train the same index; 0 = derived
                                     from the collection */
} quarry_collection_config;

/** Fill *cfg with defaults (dim 0, l2, flat, sync, 100 ms, english, k1 1.2, b 0.75). */
QUARRY_API void quarry_collection_config_init(quarry_collection_config *cfg);

/**
 * Create a collection. Durable (the manifest is replaced atomically) before it
 * returns. `out` may be NULL when the caller does not want a handle.
 * @return OK, INVALID (bad name or config), EXISTS, READONLY, IOERR_*, NOMEM,
 *         UNSUPPORTED (an index kind this build cannot serve yet).
 */
QUARRY_API int quarry_collection_create(quarry_db *db, const char *name,
                                        const quarry_collection_config *cfg, quarry_coll **out);

/** Open a collection by name. @return OK, NOTFOUND, INVALID, NOMEM. */
QUARRY_API int quarry_collection_open(quarry_db *db, const char *name, quarry_coll **out);

/** Release a handle (the collection stays). NULL is a no-op. */
QUARRY_API void quarry_collection_close(quarry_coll *coll);

/**
 * Drop a collection and delete its files. Handles still open on it return
 * QUARRY_NOTFOUND from then on. @return OK, NOTFOUND, READONLY, IOERR_*.
 */
QUARRY_API int quarry_collection_drop(quarry_db *db, const char *name);

/**
 * List collection names, sorted. *names is one allocation holding an array of
 * *count pointers and the strings; free it with quarry_free().
 */
QUARRY_API int quarry_collection_list(quarry_db *db, char ***names, size_t *count);

/** Copy the collection's configuration (with defaults resolved) into *cfg. */
QUARRY_API int quarry_collection_config_get(quarry_coll *coll, quarry_collection_config *cfg);

/** The collection's name. Valid until quarry_collection_close(). */
QUARRY_API const char *quarry_collection_name(quarry_coll *coll);

/** Free memory returned by quarry_collection_list. NULL is a no-op. */
QUARRY_API void quarry_free(void *p);

/* ------------------------------------------------------------------------ */
/* Writes                                                                   */
/* ------------------------------------------------------------------------ */
/**
 * One row to upsert. Only `id` is required. Everything is copied.
 *  id            UTF-8, 1..QUARRY_MAX_ID_LEN bytes; id_len 0 means strlen(id)
 *  vector        NULL or `dim` finite floats (NaN/Inf rejected). Rows without
 *                a vector are allowed (text-only rows); k-NN search never
 *                returns them. A text-only collection (dim 0) takes no vector.
 *  text          NULL or UTF-8; text_len 0 with text != NULL means strlen(text)
 *  metadata      NULL or a JSON object whose values are strings, numbers,
 *                booleans or arrays of strings; metadata_len 0 means strlen
 */
typedef struct quarry_row {
    const char *id;
    size_t id_len;
    const float *vector;
    uint32_t dim; /* number of floats at `vector` (must equal the collection dim) */
    const char *text;
    size_t text_len;
    const char *metadata;
    size_t metadata_len;
} quarry_row;

typedef struct quarry_batch quarry_batch;

/** Start a write batch on a collection. */
QUARRY_API int quarry_batch_new(quarry_coll *coll, quarry_batch **out);

/**
 * Validate and add an upsert to the batch (the data is copied). On error the
 * batch is unchanged and still usable. @return OK, INVALID, MISMATCH, NOMEM, FULL.
 */
QUARRY_API int quarry_batch_upsert(quarry_batch *b, const quarry_row *row);

/* Field bits of a partial update (the same values as QUARRY_RETURN_*). */
#define QUARRY_FIELD_TEXT 1u
#define QUARRY_FIELD_METADATA 2u
#define QUARRY_FIELD_VECTOR 4u

/**
 * Add a partial update to the batch: the fields named in `fields` (a non-empty
 * set of QUARRY_FIELD_* bits) are set from `row`, where a NULL field clears it
 * (vector NULL with dim 0, text NULL, metadata NULL); the row keeps its other
 * fields, and the fields of `row` not named are ignored. E.g. attach a vector
 * to a row stored with text only: row = {id, vector, dim}, fields =
 * QUARRY_FIELD_VECTOR. The named fields are validated now, like
 * quarry_batch_upsert does (a cosine vector is normalised).
 * The row must exist when the batch commits, counting the earlier operations
 * of the same batch (an earlier upsert or update of the id is merged with, an
 * earlier delete makes it missing); otherwise the commit fails with
 * QUARRY_NOTFOUND naming the id and nothing of the batch is written. The commit
 * logs the merged row as a whole-row upsert, resolved against the latest
 * committed state: concurrent updates of different fields of one row never
 * lose each other's changes. On error the batch is unchanged and still usable.
 * @return OK, INVALID (fields 0 or unknown bits, or a bad field value),
 *         MISMATCH, NOMEM, FULL.
 */
QUARRY_API int quarry_batch_update(quarry_batch *b, const quarry_row *row, unsigned fields);

/** Add a delete by id (id_len 0 = strlen). Deleting a missing id is not an error. */
QUARRY_API int quarry_batch_delete(quarry_batch *b, const char *id, size_t id_len);

/** Number of operations in the batch. */
QUARRY_API size_t quarry_batch_count(const quarry_batch *b);

/**
 * Commit atomically: log, wait for durability per the collection's policy,
 * apply, then return. Once it returns OK every operation is visible to readers
 * (read-your-writes). On failure nothing is applied or visible. The batch is
 * emptied in both cases and may be reused. A batch holding partial updates
 * first waits for the commits before it, and is limited in size like any
 * other batch after its updates were merged into whole rows.
 * @return OK, IOERR_*, FULL (disk full, or the merged batch is too large),
 *         PANIC, READONLY, NOTFOUND (dropped, or a partial update's row is
 *         missing).
 */
QUARRY_API int quarry_batch_commit(quarry_batch *b);

/** Discard a batch (uncommitted operations are dropped). NULL is a no-op. */
QUARRY_API void quarry_batch_free(quarry_batch *b);

/**
 * Convenience: upsert `nrows` rows as one atomic batch. On a validation error
 * nothing is written and quarry_errmsg() names the row index.
 */
QUARRY_API int quarry_upsert(quarry_coll *coll, const quarry_row *rows, size_t nrows);

/**
 * Convenience: partially update `nrows` rows (the same `fields` for each, see
 * quarry_batch_update) as one atomic batch. Every row must exist, else
 * NOTFOUND naming the id and nothing is written; a validation error names the
 * row index.
 */
QUARRY_API int quarry_update(quarry_coll *coll, const quarry_row *rows, size_t nrows,
                             unsigned fields);

/** Convenience: delete ids as one atomic batch; *ndeleted (may be NULL) = rows that existed. */
QUARRY_API int quarry_delete(quarry_coll *coll, const char *const *ids, size_t nids,
                             size_t *ndeleted);

/* ------------------------------------------------------------------------ */
/* Reads                                                                    */
/* ------------------------------------------------------------------------ */
typedef struct quarry_doc quarry_doc;

/** Fetch a row by id (id_len 0 = strlen). @return OK, NOTFOUND, INVALID. */
QUARRY_API int quarry_get(quarry_coll *coll, const char *id, size_t id_len, quarry_doc **out);

/* Accessors; the returned pointers are valid until quarry_doc_free(). Every
 * string is NUL-terminated; `len`/`dim` out-parameters may be NULL. */
QUARRY_API const char *quarry_doc_id(const quarry_doc *d, size_t *len);
/** NULL when the row has no vector; *dim receives the count. */
QUARRY_API const float *quarry_doc_vector(const quarry_doc *d, uint32_t *dim);
/** NULL when the row has no text. NUL-terminated. */
QUARRY_API const char *quarry_doc_text(const quarry_doc *d, size_t *len);
/** NULL when the row has no metadata. Compact JSON, NUL-terminated. */
QUARRY_API const char *quarry_doc_metadata(const quarry_doc *d, size_t *len);
QUARRY_API void quarry_doc_free(quarry_doc *d);

typedef struct quarry_search_params {
    size_t size;        /* sizeof(quarry_search_params) */
    const char *filter; /* NULL or a JSON filter expression:
                             {"and":[F,...]} {"or":[F,...]} {"not":F}
                             {"eq":{"field":f,"value":v}} {"in":{"field":f,"values":[v,...]}}
                             {"range":{"field":f,"gt"|"gte"|"lt"|"lte":n,...}} {"exists":f}
                           or the shorthand {"f":v,...} (all equal; a string-array field
                           equals a string it contains; numbers compare by value).
                           A malformed filter is QUARRY_INVALID naming the position. */
    uint32_t ef;        /* HNSW ef_search; 0 = collection default */
    uint32_t nprobe;    /* IVF nprobe; 0 = collection default */
    int exact;          /* 1 = force exact (flat) search whatever the index */
    uint32_t refine;    /* IVF re-ranking factor; 0 = collection default, 1 = off */
    /* Giving up on a running search. Every index polls these every few tens of
     * microseconds of work; a search that stops returns no hits and an error,
     * and changes nothing. */
    int64_t deadline_ns;          /* 0 = none; else an absolute time on quarry_clock_ns():
                                     past it the search fails with
                                     QUARRY_INTERRUPTED_DEADLINE */
    int (*interrupt)(void *ctx);  /* NULL, or nonzero = stop now (QUARRY_INTERRUPTED);
                                     called from the searching thread */
    void *interrupt_ctx;
} quarry_search_params;

QUARRY_API void quarry_search_params_init(quarry_search_params *p);

/** The clock of search deadlines: CLOCK_MONOTONIC in nanoseconds. */
QUARRY_API int64_t quarry_clock_ns(void);

typedef struct quarry_result quarry_result;

/**
 * k nearest rows to `query` (dim floats, finite). Rows without a vector and
 * rows rejected by the filter are never returned; fewer than k hits come back
 * only when fewer rows qualify. Results are sorted by distance, ties by row age.
 * @param params NULL for defaults
 * @return OK, INVALID (k = 0 or > QUARRY_MAX_K, NaN, bad filter), MISMATCH
 *         (dim), NOMEM, INTERRUPTED / INTERRUPTED_DEADLINE (params).
 *         Any thread; runs concurrently with other readers.
 */
QUARRY_API int quarry_search(quarry_coll *coll, const float *query, uint32_t dim, uint32_t k,
                             const quarry_search_params *params, quarry_result **out);

QUARRY_API size_t quarry_result_count(const quarry_result *r);
/** Id of hit i (< count), NUL-terminated; *len (may be NULL) gets its length.
 *  Valid until quarry_result_free(). NULL when i is out of range. */
QUARRY_API const char *quarry_result_id(const quarry_result *r, size_t i, size_t *len);
QUARRY_API float quarry_result_distance(const quarry_result *r, size_t i);
QUARRY_API void quarry_result_free(quarry_result *r);

/* ------------------------------------------------------------------------ */
/* Hybrid queries                                                           */
/* ------------------------------------------------------------------------ */
/*
 * A query has up to two retrievers -- a vector clause (k-NN) and a text clause
 * (BM25) -- a filter both honour, and a fusion of their ranked lists:
 *   QUARRY_FUSION_RRF       score = sum_i w_i / (k_rrf + rank_i), ranks from 1,
 *                           k_rrf = param (default 60)
 *   QUARRY_FUSION_RELATIVE  min-max normalise each list's scores to [0, 1]
 *                           (higher = better), score = sum_i w_i * norm_i
 *   QUARRY_FUSION_DBSF      normalise each list by mean +- 3 sigma, clip to
 *                           [0, 1], score = sum_i w_i * norm_i
 * A row missing from a list contributes 0 for that list. With one clause the
 * result is that retriever's order. Scores are "higher is better"; a vector
 * retriever's raw score is -distance.
 */
typedef struct quarry_query quarry_query;

typedef enum quarry_fusion {
    QUARRY_FUSION_RRF = 0,
    QUARRY_FUSION_RELATIVE = 1,
    QUARRY_FUSION_DBSF = 2
} quarry_fusion;

#define QUARRY_RETRIEVER_VECTOR 0
#define QUARRY_RETRIEVER_TEXT 1

#define QUARRY_RETURN_TEXT 1u
#define QUARRY_RETURN_METADATA 2u
#define QUARRY_RETURN_VECTOR 4u

QUARRY_API int quarry_query_new(quarry_coll *coll, quarry_query **out);
QUARRY_API void quarry_query_free(quarry_query *q);
/** Vector clause (copied). depth = candidates taken from it (0 = the limit);
 *  ef = HNSW beam (0 = collection default); weight for fusion (0 = 1). */
QUARRY_API int quarry_query_vector(quarry_query *q, const float *vec, uint32_t dim,
                                   uint32_t depth, uint32_t ef, float weight);
/** Text clause (UTF-8, copied): bag of words; `require_all` = every term must
 *  match; quoted "phrases" are matched as phrases. */
QUARRY_API int quarry_query_text(quarry_query *q, const char *text, size_t len, uint32_t depth,
                                 int require_all, float weight);
/** Metadata filter: the JSON filter language (see quarry_search_params). */
QUARRY_API int quarry_query_filter(quarry_query *q, const char *filter_json);
/** Fusion and its parameter (RRF: k_rrf, 0 = 60; others ignore it). */
QUARRY_API int quarry_query_fusion(quarry_query *q, quarry_fusion fusion, float param);
/** Number of results (1..QUARRY_MAX_K; default 10) and an offset into them. */
QUARRY_API int quarry_query_limit(quarry_query *q, uint32_t k, uint32_t offset);
/** Which row fields the results carry (QUARRY_RETURN_* bits; default none). */
QUARRY_API int quarry_query_return(quarry_query *q, unsigned fields);
/** 1 = exact retrieval (flat scan) for the vector clause. */
QUARRY_API int quarry_query_exact(quarry_query *q, int exact);
/** IVF-PQ knobs for the vector clause: lists probed and the re-ranking factor
 *  (0 = collection default for either; refine 1 = off). */
QUARRY_API int quarry_query_ivf(quarry_query *q, uint32_t nprobe, uint32_t refine);
/** Give up on the query past `deadline_ns` (quarry_clock_ns time; 0 = never)
 *  with QUARRY_INTERRUPTED_DEADLINE, or when `interrupt(ctx)` returns nonzero
 *  (NULL = never) with QUARRY_INTERRUPTED; both are polled while the
 *  retrievers run, as for quarry_search_params. */
QUARRY_API int quarry_query_deadline(quarry_query *q, int64_t deadline_ns,
                                     int (*interrupt)(void *ctx), void *ctx);
/**
 * Run the query. @return OK, INVALID (no clause, bad filter, bad text),
 * MISMATCH (dim), UNSUPPORTED (a clause the collection cannot serve), NOMEM,
 * INTERRUPTED / INTERRUPTED_DEADLINE (quarry_query_deadline).
 */
QUARRY_API int quarry_query_run(quarry_query *q, quarry_result **out);

/** Fused score of hit i (higher is better). */
QUARRY_API float quarry_result_score(const quarry_result *r, size_t i);
/** Explain: hit i's 1-based rank and raw score in a retriever's list.
 *  @return OK, or NOTFOUND when that retriever did not return the row. */
QUARRY_API int quarry_result_explain(const quarry_result *r, size_t i, int retriever,
                                     uint32_t *rank, float *raw_score);
/** Returned fields of hit i (NULL when not requested or absent). */
QUARRY_API const char *quarry_result_text(const quarry_result *r, size_t i, size_t *len);
QUARRY_API const char *quarry_result_metadata(const quarry_result *r, size_t i, size_t *len);
QUARRY_API const float *quarry_result_vector(const quarry_result *r, size_t i, uint32_t *dim);

/* ------------------------------------------------------------------------ */
/* Stats and maintenance                                                    */
/* ------------------------------------------------------------------------ */
typedef struct quarry_coll_stats {
    size_t size;             /* sizeof(quarry_coll_stats) */
    uint64_t rows;           /* live rows */
    uint64_t rows_with_vector;
    uint64_t dead_rows;      /* replaced or deleted versions still in memory */
    uint64_t segments;       /* segment files, active included */
    uint64_t disk_bytes;     /* bytes of all segment files */
    uint64_t live_bytes_estimate; /* log bytes that belong to live rows */
    uint64_t memory_bytes;   /* approximate heap bytes of the collection */
    uint64_t last_lsn;       /* LSN of the last committed batch */
    uint64_t batches;        /* batches committed since open */
    uint64_t syncs;          /* fdatasync calls since open */
    uint64_t compactions;    /* compactions since open */
    uint64_t searches;       /* k-NN searches since open */
    uint64_t searches_exact; /* ... answered by an exact scan (flat index, small or very
                                selectively filtered collection, params.exact, or a graph
                                search that found fewer than k passing rows) */
    uint64_t index_bytes;    /* heap bytes of the vector index, vectors included */
    /* IVF-PQ: 0 while the collection answers exactly (not trained yet) */
    uint32_t ivf_nlist;      /* lists of the trained index */
    uint32_t pq_m;           /* its code bytes per vector */
    int ivf_training;        /* 1 while a training runs in the background */
    uint64_t ivf_rows;       /* rows in the lists (dead ones until compaction included) */
    uint64_t ivf_code_bytes; /* bytes of codes and ids in the lists */
} quarry_coll_stats;

QUARRY_API int quarry_collection_stats(quarry_coll *coll, quarry_coll_stats *st);

/**
 * Compact the collection: rewrite sealed segments keeping only live rows, swap
 * them in through the manifest, delete the old files and reclaim dead rows in
 * memory. Writers and readers go on meanwhile (they wait only for the final
 * swap). `force` = 0 compacts only when at least half of the sealed bytes are
 * dead; 1 always compacts (and seals the active segment first).
 */
QUARRY_API int quarry_collection_compact(quarry_coll *coll, int force);

/**
 * (Re)train an IVF-PQ collection's index now, on the vectors it holds. An
 * IVF-PQ collection answers exactly (flat) until it holds ivf_train_rows
 * vectors, then trains by itself in the background; this call forces a
 * (re)training, e.g. after the data drifted. Training never blocks readers or
 * writers: the old index (or the exact scan) serves until the new one is
 * complete, rows written meanwhile included, and then it is swapped in and
 * checkpointed. `wait` = 1 returns when it is done (with its outcome), 0 as
 * soon as it started.
 * @return OK, UNSUPPORTED (not an IVF-PQ collection), INVALID (fewer vectors
 *         than max(256, nlist)), INTERRUPTED (the collection closed meanwhile),
 *         NOMEM, READONLY.
 */
QUARRY_API int quarry_collection_train(quarry_coll *coll, int wait);

/* ======================================================================== */
/* Chunking (engine/chunk.c)                                                */
/* ======================================================================== */
/*
 * Split a UTF-8 text into chunks for retrieval, and store a document as chunk
 * rows. Every chunk is a byte range [start, end) of the input, so a caller can
 * cite or highlight it; a chunk never splits a UTF-8 code point (nor a CRLF
 * pair, nor a character from the combining marks, variation selectors, emoji
 * modifiers or zero-width joiner that follow it). The output is a pure function
 * of the input bytes and the options: no locale, no randomness.
 *
 * Definitions used by every strategy:
 *  - character: a code point plus the marks attached to it (above; nothing
 *    attaches to whitespace); "\r\n" is one character.
 *  - whitespace: ASCII space, \t \n \v \f \r, U+0085, U+00A0, U+1680,
 *    U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF.
 *  - word: a maximal run of non-whitespace characters, except that every
 *    CJK ideograph, kana or bopomofo character is a word of its own (CJK text
 *    has no spaces); CJK and full-width punctuation joins the word before it.
 *  - sentence: ends after '.', '!', '?' or U+2026 followed by whitespace or
 *    the end of the text (closing quotes and brackets stay with it; a '.'
 *    followed by a lowercase ASCII letter, as in "e.g. this", does not end
 *    one), right after U+3002, U+FF01, U+FF1F (CJK stops need no space), and
 *    at a blank line. It spans its first to its last non-whitespace character.
 *  - blank line: a line holding only whitespace; it separates paragraphs.
 *
 * Strategies (`max` and `overlap` units; defaults when max = 0 and when
 * overlap = QUARRY_CHUNK_DEFAULT -- "max/5" means a fifth of the max in use):
 *  FIXED_CHARS  windows of `max` characters starting every max - overlap
 *               characters (default 1000 / max/5). Windows are not trimmed;
 *               windows of whitespace only are skipped.
 *  FIXED_WORDS  windows of `max` words starting every max - overlap words
 *               (default 200 / max/5), from the first word's first byte to
 *               the last word's last byte.
 *  SENTENCE     whole sentences packed while the chunk holds at most `max`
 *               words; the next chunk repeats the last `overlap` sentences
 *               (default 250 words / 1 sentence). Fewer are repeated when
 *               they and the next sentence would not fit, and a chunk always
 *               starts at least one sentence after the previous one. A
 *               sentence longer than `max` words is cut into windows of `max`
 *               words, never overlapped. (The default overlap is 0 when max
 *               is 1.)
 *  RECURSIVE    the text is cut into pieces of at most `max` characters:
 *               paragraphs (cut at blank lines); a paragraph too long is cut
 *               at line breaks, a line too long at sentence ends, a sentence
 *               between words, a word between characters (windows of `max`
 *               characters every max - overlap). The pieces are packed
 *               greedily into chunks of at most `max` characters (measured
 *               from the first piece's start to the last one's end), and the
 *               next chunk repeats whole trailing pieces of at most `overlap`
 *               characters that fit with the piece after them (default 1000
 *               / max/5 characters).
 *  MARKDOWN     the text is cut into sections at ATX headings ('#'..'######'
 *               after at most 3 spaces, then a space or the line end; not
 *               inside ``` or ~~~ fences). A section starts at its heading
 *               line, and a section holding nothing but its heading is joined
 *               to the next one. A section of at most `max` characters is one
 *               chunk, a longer one is cut like RECURSIVE, so chunks never
 *               cross a section (default 1000 characters / overlap 0). Each
 *               chunk carries its heading path: the texts of the enclosing
 *               headings (without '#' marks), outermost first.
 * Every chunk but FIXED_CHARS windows starts and ends on non-whitespace.
 * Empty or whitespace-only input gives zero chunks.
 */
typedef enum quarry_chunk_strategy {
    QUARRY_CHUNK_SENTENCE = 0, /* the default */
    QUARRY_CHUNK_FIXED_CHARS = 1,
    QUARRY_CHUNK_FIXED_WORDS = 2,
    QUARRY_CHUNK_RECURSIVE = 3,
    QUARRY_CHUNK_MARKDOWN = 4
} quarry_chunk_strategy;

#define QUARRY_CHUNK_DEFAULT 0xffffffffu /* overlap: the strategy's default */
#define QUARRY_CHUNK_MAX_SIZE 1000000u    /* largest `max` accepted */

typedef struct quarry_chunk_options {
    size_t size;                    /* sizeof(quarry_chunk_options) */
    quarry_chunk_strategy strategy; /* default SENTENCE */
    uint32_t max;                   /* chunk size in the strategy's unit; 0 = default */
    uint32_t overlap;               /* < max; QUARRY_CHUNK_DEFAULT = the default */
} quarry_chunk_options;

/** Fill *opts with the defaults (sentence, 250 words, 1 sentence overlap). */
QUARRY_API void quarry_chunk_options_init(quarry_chunk_options *opts);

/** "sentence", "fixed_chars", "fixed_words", "recursive", "markdown";
 *  parse returns -1 on an unknown name, name returns "" for a bad value. */
QUARRY_API int quarry_chunk_strategy_parse(const char *name);
QUARRY_API const char *quarry_chunk_strategy_name(quarry_chunk_strategy s);

typedef struct quarry_chunk {
    size_t start, end;  /* byte offsets [start, end) into the input text */
    uint32_t chars;     /* characters in [start, end) */
    uint32_t words;     /* words in [start, end) */
    uint32_t nheadings; /* MARKDOWN: depth of the heading path, else 0 */
    const char *const *headings; /* nheadings NUL-terminated heading texts, outermost
                                    first (NULL when 0); borrowed like the chunk */
} quarry_chunk;

typedef struct quarry_chunks quarry_chunks;

/**
 * Chunk `len` bytes of UTF-8 `text` (len 0 with text != NULL: strlen).
 * @param opts NULL for the defaults
 * @param[out] out the chunks, in text order (free with quarry_chunks_free)
 * @return OK, INVALID (not UTF-8, longer than QUARRY_MAX_TEXT_LEN, unknown
 *         strategy, max above QUARRY_CHUNK_MAX_SIZE, overlap >= max), NOMEM.
 * Pure function; any thread.
 */
QUARRY_API int quarry_chunk_text(const char *text, size_t len, const quarry_chunk_options *opts,
                                 quarry_chunks **out);
QUARRY_API size_t quarry_chunks_count(const quarry_chunks *c);
/** Chunk i (< count), or NULL. Valid until quarry_chunks_free(). */
QUARRY_API const quarry_chunk *quarry_chunks_get(const quarry_chunks *c, size_t i);
QUARRY_API void quarry_chunks_free(quarry_chunks *c);

/**
 * A document to store as chunk rows (everything is copied).
 *  id        the parent id, UTF-8; id_len 0 = strlen. The chunk rows get the
 *            ids "<id>#0", "<id>#1", ..., which must fit QUARRY_MAX_ID_LEN.
 *  text      UTF-8 (text_len 0 = strlen); empty text stores no chunk.
 *  metadata  NULL or a JSON object copied into every chunk row; it may not
 *            use the keys the chunker sets (below).
 *  vectors   NULL, or one vector of `dim` floats per chunk, in chunk order
 *            (chunk first with quarry_chunk_text and the same options to
 *            learn the count); nvectors must equal the chunk count.
 */
typedef struct quarry_document {
    const char *id;
    size_t id_len;
    const char *text;
    size_t text_len;
    const char *metadata;
    size_t metadata_len;
    const float *vectors;
    uint32_t dim;
    size_t nvectors;
} quarry_document;

/**
 * Chunk a document and store the chunks in ONE atomic batch: chunk n becomes
 * the row "<id>#<n>" with its text, its vector (when given) and the metadata
 * plus "_parent" (the id), "_chunk" (n), "_start" and "_end" (byte offsets
 * into the document text) and, for MARKDOWN, "_heading" (the heading path, an
 * array of strings). Chunk rows left by an earlier version of the document
 * beyond the new count ("<id>#<count>", ... while they exist) are deleted in
 * the same batch, so re-upserting a shorter document leaves no stale chunk.
 * Calls for the same collection and id are serialised within the process.
 * @param opts     NULL for the default chunking
 * @param[out] nchunks  (may be NULL) the number of chunk rows stored
 * @return as quarry_chunk_text and quarry_batch_commit, plus INVALID (bad id,
 *         metadata not an object or using a reserved key, vector count) and
 *         MISMATCH (vector dim).
 */
QUARRY_API int quarry_upsert_document(quarry_coll *coll, const quarry_document *doc,
                                      const quarry_chunk_options *opts, size_t *nchunks);
/* ====================================================== end of Chunking == */

#ifdef __cplusplus
}
#endif
#endif /* QUARRY_H */
