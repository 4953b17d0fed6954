/* SPDX-License-Identifier: MIT */
/*
 * storage.h -- the storage layer's interface: a collection's segment log
 * (append with group commit, recovery, rotation, compaction) and the manifest.
 *
 * The engine owns the manifest's content (it knows every collection); a log
 * calls back `on_segments` whenever its list of segment files changes
 * (rotation, compaction) so that the engine installs a new manifest before the
 * change is relied upon.
 */
#ifndef QUARRY_STORAGE_H
#define QUARRY_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "storage/format.h"
#include "storage/io.h"

/* ------------------------------------------------------------ segment log */
typedef struct seglog seglog;

/* Called for every valid BATCH record in replay order. Returns 0 or an rc. */
typedef int (*seglog_replay_fn)(void *ctx, uint64_t segno, uint64_t lsn, const uint8_t *payload,
                                uint32_t payload_len, uint32_t rec_len);
/* The segment list changed: install a manifest that lists it. 0 or an rc. */
typedef int (*seglog_segments_fn)(void *ctx);

typedef struct seglog_config {
    const char *dir;            /* the collection's directory (exists) */
    uint32_t coll_id;
    int io_kind;                /* IO_AUTO / IO_URING / IO_POSIX */
    uint64_t segment_max_bytes;
    int read_only;
    const uint64_t *segments;   /* from the manifest, in replay order */
    size_t nsegments;
    uint64_t next_segment;      /* number for the next new segment file */
    seglog_segments_fn on_segments;
    void *ctx;
} seglog_config;

typedef struct seglog_stats {
    uint64_t segments;
    uint64_t disk_bytes;
    uint64_t syncs;
    uint64_t last_lsn;
    uint64_t truncated_bytes; /* torn tail dropped at open */
    uint64_t active_segno;
} seglog_stats;

/*
 * Open a collection's log and replay it through `replay`. With no segments in
 * cfg, a first segment is created (the caller installs the manifest). Returns
 * OK, CORRUPT_* (with the file and offset in the detail), IOERR_*, NOMEM.
 */
int seglog_open(const seglog_config *cfg, seglog_replay_fn replay, void *rctx, seglog **out);

/* Sync what is unsynced (unless read-only) and release. NULL is a no-op. */
int seglog_close(seglog *log);

/* Remove the collection's files and directory (after seglog_close). */
int seglog_destroy_dir(const char *dir);

/*
 * Append one BATCH record. `rec` holds REC_HEADER_LEN bytes of room, then the
 * payload (whose first BATCH_PREFIX_LEN bytes the log fills in, except nops),
 * then room for padding up to rec_padded(REC_HEADER_LEN + payload_len).
 * On success *lsn and *end_pos (the log position after the record, for
 * seglog_wait_durable) and *segno (the segment it went to) are set. On failure
 * nothing was appended.
 * @return OK, IOERR_WRITE, FULL, PANIC, READONLY.
 */
int seglog_append(seglog *log, uint8_t *rec, uint32_t payload_len, uint64_t *lsn,
                  uint64_t *end_pos, uint64_t *segno);

/* Group commit: return once every byte up to end_pos is durable. Concurrent
 * callers share fdatasync calls. A failed fdatasync makes the log PANIC. */
int seglog_wait_durable(seglog *log, uint64_t end_pos);

/* Make everything appended so far durable. */
int seglog_sync(seglog *log);

/* Seal the active segment and start a new one. */
int seglog_rotate(seglog *log);

/* True if some appended byte is not yet known durable. */
int seglog_dirty(seglog *log);

/* Copy the segment list (q_malloc'd, caller frees) and next_segment. */
int seglog_segments(seglog *log, uint64_t **segs, size_t *n, uint64_t *next_segment);

void seglog_get_stats(seglog *log, seglog_stats *st);
/* LSN of the last record appended (0 for an empty log). */
uint64_t seglog_last_lsn(seglog *log);

/* Sticky failure: 0 or the rc every write now returns. */
int seglog_panic(seglog *log);

/*
 * Compaction. The log takes every sealed segment (all but the active one, a
 * prefix of the replay order) and rewrites the live rows of them into new
 * sealed segments, then swaps them in through on_segments and deletes the old
 * files. `fill` is asked for BATCH payloads of live rows until it reports none
 * left: it writes operations at buf[BATCH_PREFIX_LEN..) (at most cap bytes
 * in all), sets nops and returns the payload length (0 = done), or a negative
 * -rc on failure. It is told the segment number the ops go to. `sealed` lists
 * the segments being replaced (for the filler to select rows).
 */
typedef int64_t (*seglog_fill_fn)(void *ctx, uint64_t segno, uint8_t *buf, size_t cap,
                                  uint32_t *nops);
int seglog_compact(seglog *log, const uint64_t *sealed, size_t nsealed, seglog_fill_fn fill,
                   void *ctx);
/* The sealed prefix right now (q_malloc'd). */
int seglog_sealed(seglog *log, uint64_t **segs, size_t *n);
/* Bytes of a segment file (0 if unknown). */
uint64_t seglog_segment_bytes(seglog *log, uint64_t segno);

/* ------------------------------------------------------------ manifest */
typedef struct manifest_coll {
    uint32_t id;
    char name[65];
    uint32_t dim;
    int metric, index, durability;
    uint32_t interval_ms;
    uint32_t hnsw_m, hnsw_ef_construction, hnsw_ef_search;
    uint32_t ivf_nlist, pq_m, ivf_nprobe;
    uint32_t ivf_refine, ivf_train_rows; /* optional in the file (0 = default) */
    uint64_t ivf_seed;                   /* optional (0 = derived) */
    uint64_t next_segment;
    uint64_t *segments; /* q_malloc'd */
    size_t nsegments;
    char text_language[32];
    float bm25_k1, bm25_b;
    char ckpt_file[64]; /* "" = no checkpoint */
    uint64_t ckpt_lsn;
    uint32_t ckpt_rows;
} manifest_coll;

typedef struct manifest {
    uint32_t next_collection_id;
    manifest_coll *colls; /* q_malloc'd array */
    size_t ncolls;
} manifest;

/* Encode to a q_malloc'd buffer (header + JSON body). */
int manifest_encode(const manifest *m, uint8_t **buf, size_t *len);
/* Decode bytes (hostile); OK or CORRUPT_MANIFEST with detail. */
int manifest_decode(const uint8_t *buf, size_t len, manifest *out);
void manifest_clear(manifest *m);
/* Read DB/MANIFEST. NOTFOUND if absent. */
int manifest_read(const char *dbdir, io_ctx *io, manifest *out);
/* Atomically replace DB/MANIFEST (tmp + fsync + rename + fsync dir). */
int manifest_write(const char *dbdir, io_ctx *io, const manifest *m);

/* ------------------------------------------------------------ checkpoints */
typedef struct ckpt_info {
    uint32_t kind, coll_id, rows;
    uint64_t lsn;
} ckpt_info;

/* Write dir/name atomically (tmp, fsync, rename, fsync dir). 0 or an rc. */
int ckpt_write(const char *dir, const char *name, const ckpt_info *info, const uint8_t *payload,
               size_t len);
/* Read and verify dir/name against `want` (every field must match).
 * On success *payload (q_malloc'd) and *len. CORRUPT / NOTFOUND / IOERR. */
int ckpt_read(const char *dir, const char *name, const ckpt_info *want, uint8_t **payload,
              size_t *len);
/* Decode a checkpoint held in memory (hostile bytes); payload points into buf. */
int ckpt_decode(const uint8_t *buf, size_t len, ckpt_info *info, const uint8_t **payload,
                size_t *plen);

/* Walk the sections of a checkpoint payload: *off starts at 0. Returns 1 and
 * the next section, 0 at the end, QUARRY_CORRUPT on a malformed header. */
int ckpt_next_section(const uint8_t *buf, size_t len, size_t *off, uint32_t *kind,
                      const uint8_t **sec, size_t *slen);

/* fsync a directory. 0 or an rc. */
int storage_fsync_dir(const char *dir);

#endif
