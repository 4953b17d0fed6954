/* SPDX-License-Identifier: MIT */
/*
 * log.c -- a collection's append-only segment log: recovery, append, group
 * commit, rotation and compaction (storage/format.h is the on-disk spec).
 *
 * State of the active segment (each arrow names the function doing it):
 *
 *        seglog_open (create or recover)
 *                 |
 *                 v
 *   +--------> ACTIVE --- seglog_append ---> ACTIVE (written_pos grows)
 *   |             |  \
 *   |             |   `-- seglog_wait_durable / seglog_sync --> synced_pos grows
 *   |             |         (fdatasync fails) --> PANIC: every later write fails
 *   |             v
 *   |   seglog_rotate: write SEAL, fdatasync, create the next segment file,
 *   |   fsync the directory, on_segments() installs the manifest
 *   +-------------'
 *
 * Positions. written_pos and synced_pos count bytes over the life of this
 * handle across segments; seg_base is the position of byte 0 of the active
 * segment, so a record's synced_off is synced_pos - seg_base.
 *
 * Locks, in the order they nest:
 *   append_mu  one writer at a time appends (encodes the header, writes);
 *              rotation runs under it too.
 *   sync_mu    guards the group-commit state. A waiter whose bytes are not yet
 *              durable becomes the sync leader if no sync is in flight: it
 *              snapshots (fd, written_pos), drops the lock, fdatasyncs through
 *              its own ring, and publishes synced_pos. Everyone whose end_pos
 *              is covered returns; the rest elect the next leader. So N
 *              concurrent committers cost about two fdatasyncs, not N.
 *   segs_mu    guards the segment list (read by the manifest writer).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/qcommon.h"
#include "storage/storage.h"

typedef struct segmeta {
    uint64_t segno;
    uint64_t bytes;    /* file size (sealed) */
    uint64_t last_lsn; /* last LSN in it */
} segmeta;

struct seglog {
    char *dir;
    uint32_t coll_id;
    int io_kind;
    int read_only;
    uint64_t seg_max;
    seglog_segments_fn on_segments;
    void *ctx;

    pthread_mutex_t append_mu;
    io_ctx *wio;            /* append_mu */
    int fd;                 /* active segment; changed under append_mu + sync ownership */
    uint64_t salt;          /* active segment's checksum seed */
    uint64_t seg_off;       /* append_mu: end of data in the active segment */
    uint64_t seg_base;      /* position of the active segment's byte 0 */
    uint64_t seg_records;   /* BATCH records in the active segment */
    uint64_t last_lsn;
    _Atomic uint64_t written_pos;
    _Atomic uint64_t synced_pos;
    _Atomic int panic_rc;

    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    io_ctx *sio; /* used by the sync leader only */
    int syncing;
    _Atomic uint64_t nsyncs;

    pthread_mutex_t segs_mu;
    segmeta *segs; /* replay order; the last one is active */
    size_t nsegs, segs_cap;
    uint64_t next_segment;
    uint64_t truncated_bytes;
    uint8_t *rbuf; /* recovery: one read buffer reused for every segment */
    size_t rbuf_cap;
};

static void seg_path(const seglog *log, uint64_t segno, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/seg-%08" PRIu64 ".log", log->dir, segno);
}

int storage_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return q_err(QUARRY_IOERR_OPEN, "open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    if (rc) return q_err(QUARRY_IOERR_FSYNC, "fsync directory %s: %s", dir, strerror(rc));
    return 0;
}

static int set_panic(seglog *log, int rc) {
    int zero = 0;
    atomic_compare_exchange_strong(&log->panic_rc, &zero, rc);
    return rc;
}

static int segs_push(seglog *log, uint64_t segno, uint64_t bytes, uint64_t last_lsn) {
    if (log->nsegs == log->segs_cap) {
        size_t cap = log->segs_cap ? log->segs_cap * 2 : 8;
        segmeta *s = q_realloc(log->segs, cap * sizeof *s);
        if (!s) return q_err(QUARRY_NOMEM, "out of memory (segment list)");
        log->segs = s, log->segs_cap = cap;
    }
    log->segs[log->nsegs++] = (segmeta){segno, bytes, last_lsn};
    return 0;
}

/* Create segment file `segno` with its header, synced, directory synced.
 * Returns 0 and the open fd, or an rc. */
static int seg_create(seglog *log, io_ctx *io, uint64_t segno, int *fd_out, uint64_t *salt_out) {
    char path[4096];
    seg_path(log, segno, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return q_err(q_errno_rc(-e, QUARRY_IOERR_OPEN), "create %s: %s", path, strerror(e));
    }
    uint64_t salt = 0;
    if (getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt) salt = q_now_ns() ^ 0x9E37u;
    uint8_t hdr[SEG_HEADER_LEN];
    seg_header_encode(hdr, log->coll_id, segno, salt);
    int rc = io_pwrite_all(io, fd, hdr, sizeof hdr, 0);
    if (rc == 0) rc = io_sync(io, fd, 1);
    if (rc < 0) {
        close(fd);
        unlink(path);
        return q_err(q_errno_rc(rc, QUARRY_IOERR_WRITE), "write %s: %s", path, strerror(-rc));
    }
    rc = storage_fsync_dir(log->dir);
    if (rc) {
        close(fd);
        unlink(path);
        return rc;
    }
    *fd_out = fd;
    *salt_out = salt;
    return 0;
}

/* ============================================================== recovery */

/* Is there, after `bad` in buf[0..len), a valid BATCH record that claims the
 * bytes at `bad` were durable? (format.h invariant 5) */
static int tail_is_damaged(const uint8_t *buf, uint64_t len, uint64_t bad, uint64_t salt,
                           uint64_t *claim_off) {
    for (uint64_t p = bad + 8; p + REC_HEADER_LEN <= len; p += 8) {
        rec_view r;
        if (get_u32(buf + p) != REC_MAGIC) continue;
        if (rec_decode(buf + p, len - p, salt, &r) != 0) continue;
        if (r.type == REC_BATCH && get_u64(r.payload) > bad) {
            *claim_off = p;
            return 1;
        }
        p += r.total_len - 8;
    }
    return 0;
}

static int recover_segment(seglog *log, size_t idx, size_t nsegs, seglog_replay_fn replay,
                           void *rctx, int *sealed_out) {
    char path[4096];
    uint64_t segno = log->segs[idx].segno;
    int is_last = idx + 1 == nsegs;
    int rc = 0, fd = -1;
    uint8_t *buf = NULL;
    seg_path(log, segno, path, sizeof path);
    fd = open(path, (log->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return q_err(QUARRY_CORRUPT_SEGMENT, "segment %s is listed in the manifest but missing",
                         path);
        return q_err(QUARRY_IOERR_OPEN, "open %s: %s", path, strerror(e));
    }
    struct stat stt;
    if (fstat(fd, &stt) != 0) {
        rc = q_err(QUARRY_IOERR_READ, "stat %s: %s", path, strerror(errno));
        goto out;
    }
    uint64_t len = (uint64_t)stt.st_size;
    if (len + 1 > log->rbuf_cap) {
        /* Reused across segments: a fresh 64 MiB buffer per segment costs a
         * page fault per page every time (measured: ~20% of a 1M-row open). */
        q_region_free(log->rbuf, log->rbuf_cap);
        log->rbuf_cap = 0;
        log->rbuf = q_region_resize(NULL, 0, len + 1);
        if (!log->rbuf) {
            rc = q_err(QUARRY_NOMEM, "out of memory reading %s (%" PRIu64 " bytes)", path, len);
            goto out;
        }
        log->rbuf_cap = len + 1;
    }
    buf = log->rbuf;
    int64_t got = io_pread_all(log->wio, fd, buf, len, 0);
    if (got < 0 || (uint64_t)got != len) {
        rc = q_err(QUARRY_IOERR_READ, "read %s: %s", path,
                   got < 0 ? strerror((int)-got) : "short read");
        goto out;
    }
    uint64_t salt = 0;
    if (seg_header_check(buf, len, log->coll_id, segno, &salt) != 0) {
        /* A listed segment's header was synced before the manifest named it. */
        rc = q_err(QUARRY_CORRUPT_SEGMENT, "segment %s: bad or foreign file header", path);
        goto out;
    }
    uint64_t off = SEG_HEADER_LEN, nrec = 0;
    int sealed = 0;
    while (off < len) {
        rec_view r;
        if (rec_decode(buf + off, len - off, salt, &r) != 0) break;
        if (r.lsn < log->last_lsn) {
            rc = q_err(QUARRY_CORRUPT_SEGMENT,
                       "segment %s offset %" PRIu64 ": LSN %" PRIu64 " after LSN %" PRIu64, path,
                       off, r.lsn, log->last_lsn);
            goto out;
        }
        if (r.type == REC_SEAL) {
            if (get_u64(r.payload) != off || get_u64(r.payload + 8) != nrec ||
                off + r.total_len != len) {
                rc = q_err(QUARRY_CORRUPT_SEGMENT,
                           "segment %s offset %" PRIu64 ": seal record does not end the file",
                           path, off);
                goto out;
            }
            off += r.total_len;
            sealed = 1;
            break;
        }
        if (r.total_len > len - off) break; /* padding cut off: treat as torn */
        rc = replay(rctx, segno, r.lsn, r.payload, r.payload_len, (uint32_t)r.total_len);
        if (rc) goto out;
        log->last_lsn = r.lsn;
        nrec++;
        off += r.total_len;
    }
    if (off < len) {
        uint64_t claim = 0;
        if (!is_last) {
            rc = q_err(QUARRY_CORRUPT_SEGMENT,
                       "segment %s: invalid record at offset %" PRIu64 " of %" PRIu64
                       " in a sealed segment",
                       path, off, len);
            goto out;
        }
        if (tail_is_damaged(buf, len, off, salt, &claim)) {
            rc = q_err(QUARRY_CORRUPT_RECORD,
                       "segment %s: invalid record at offset %" PRIu64
                       ", but the record at offset %" PRIu64
                       " says those bytes were durable: acknowledged data is damaged",
                       path, off, claim);
            goto out;
        }
        /* torn tail: never acknowledged */
        if (!log->read_only) {
            if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0) {
                rc = q_err(QUARRY_IOERR_WRITE, "truncate torn tail of %s: %s", path,
                           strerror(errno));
                goto out;
            }
        }
        log->truncated_bytes += len - off;
        fprintf(stderr,
                "quarry: warning: %s: dropped a torn tail of %" PRIu64
                " bytes at offset %" PRIu64 " (an unacknowledged write)\n",
                path, len - off, off);
    } else if (!is_last && !sealed) {
        rc = q_err(QUARRY_CORRUPT_SEGMENT, "segment %s is not sealed but is not the last one",
                   path);
        goto out;
    }
    log->segs[idx].bytes = off;
    log->segs[idx].last_lsn = log->last_lsn;
    *sealed_out = sealed;
    if (is_last && !sealed) {
        log->fd = fd;
        fd = -1;
        log->salt = salt;
        log->seg_off = off;
        log->seg_records = nrec;
    }
out:
    if (fd >= 0) close(fd);
    return rc;
}

/* Delete segment files of this collection that the manifest does not list. */
static void remove_orphans(seglog *log) {
    DIR *d = opendir(log->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t segno;
        char tail[8];
        if (sscanf(e->d_name, "seg-%" SCNu64 ".lo%1s", &segno, tail) != 2) continue;
        int listed = 0;
        for (size_t i = 0; i < log->nsegs; i++) listed |= log->segs[i].segno == segno;
        if (!listed) {
            char path[4096];
            seg_path(log, segno, path, sizeof path);
            unlink(path);
        }
    }
    closedir(d);
}

/* Start a fresh active segment (append_mu held or single-threaded). */
/* Reserve a segment number (rotation and compaction both take them). A number
 * whose file could not be created is simply never used. */
static uint64_t reserve_segno(seglog *log) {
    pthread_mutex_lock(&log->segs_mu);
    uint64_t segno = log->next_segment++;
    pthread_mutex_unlock(&log->segs_mu);
    return segno;
}

static int start_new_segment(seglog *log) {
    uint64_t segno = reserve_segno(log);
    int fd;
    uint64_t salt;
    int rc = seg_create(log, log->wio, segno, &fd, &salt);
    if (rc) return rc;
    pthread_mutex_lock(&log->segs_mu);
    rc = segs_push(log, segno, SEG_HEADER_LEN, log->last_lsn);
    pthread_mutex_unlock(&log->segs_mu);
    if (rc) {
        close(fd);
        return rc;
    }
    log->fd = fd;
    log->salt = salt;
    log->seg_off = SEG_HEADER_LEN;
    log->seg_records = 0;
    return 0;
}

int seglog_open(const seglog_config *cfg, seglog_replay_fn replay, void *rctx, seglog **out) {
    *out = NULL;
    seglog *log = q_calloc(1, sizeof *log);
    if (!log) return q_err(QUARRY_NOMEM, "out of memory");
    log->fd = -1;
    log->dir = q_strndup(cfg->dir, strlen(cfg->dir));
    log->coll_id = cfg->coll_id;
    log->io_kind = cfg->io_kind;
    log->read_only = cfg->read_only;
    log->seg_max = cfg->segment_max_bytes ? cfg->segment_max_bytes : (64u << 20);
    log->on_segments = cfg->on_segments;
    log->ctx = cfg->ctx;
    log->next_segment = cfg->next_segment ? cfg->next_segment : 1;
    pthread_mutex_init(&log->append_mu, NULL);
    pthread_mutex_init(&log->sync_mu, NULL);
    pthread_cond_init(&log->sync_cv, NULL);
    pthread_mutex_init(&log->segs_mu, NULL);
    int rc = 0;
    if (!log->dir) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto fail;
    }
    int ioerr = io_ctx_new(cfg->io_kind, &log->wio);
    if (ioerr == 0) ioerr = io_ctx_new(cfg->io_kind, &log->sio);
    if (ioerr < 0) {
        rc = q_err(ioerr == -ENOMEM ? QUARRY_NOMEM : QUARRY_UNSUPPORTED,
                   "cannot set up the I/O back end: %s", strerror(-ioerr));
        goto fail;
    }
    for (size_t i = 0; i < cfg->nsegments; i++) {
        if ((rc = segs_push(log, cfg->segments[i], 0, 0))) goto fail;
        if (cfg->segments[i] >= log->next_segment) log->next_segment = cfg->segments[i] + 1;
    }
    int sealed = 0;
    for (size_t i = 0; i < log->nsegs; i++) {
        rc = recover_segment(log, i, log->nsegs, replay, rctx, &sealed);
        if (rc) goto fail;
    }
    if (!log->read_only) remove_orphans(log);
    if (log->fd < 0 && !log->read_only) {
        /* no segment yet, or the last one is sealed */
        rc = start_new_segment(log);
        if (rc) goto fail;
        if (cfg->nsegments && log->on_segments && (rc = log->on_segments(log->ctx))) goto fail;
    } else if (log->fd >= 0 && !log->read_only) {
        /* Replayed bytes may still sit in the page cache of a crashed process:
         * make them durable before any new record can claim they are. */
        int s = io_sync(log->wio, log->fd, 1);
        if (s < 0) {
            rc = q_err(QUARRY_IOERR_FSYNC, "fdatasync of the active segment: %s", strerror(-s));
            goto fail;
        }
    }
    q_region_free(log->rbuf, log->rbuf_cap);
    log->rbuf = NULL, log->rbuf_cap = 0;
    log->seg_base = 0;
    atomic_store(&log->written_pos, log->seg_off);
    atomic_store(&log->synced_pos, log->seg_off);
    *out = log;
    return 0;
fail:
    seglog_close(log);
    return rc;
}

int seglog_close(seglog *log) {
    if (!log) return 0;
    int rc = 0;
    if (!log->read_only && log->fd >= 0 && !atomic_load(&log->panic_rc) && seglog_dirty(log))
        rc = seglog_sync(log);
    if (log->fd >= 0) close(log->fd);
    io_ctx_free(log->wio);
    io_ctx_free(log->sio);
    pthread_mutex_destroy(&log->append_mu);
    pthread_mutex_destroy(&log->sync_mu);
    pthread_cond_destroy(&log->sync_cv);
    pthread_mutex_destroy(&log->segs_mu);
    q_region_free(log->rbuf, log->rbuf_cap);
    q_free(log->segs);
    q_free(log->dir);
    q_free(log);
    return rc;
}

int seglog_destroy_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : q_err(QUARRY_IOERR, "open %s: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    if (rmdir(dir) != 0) return q_err(QUARRY_IOERR, "remove %s: %s", dir, strerror(errno));
    return 0;
}

/* ============================================================== group commit */

/* Become the only one touching the fd's sync state (rotation, compaction). */
static void sync_own(seglog *log) {
    pthread_mutex_lock(&log->sync_mu);
    while (log->syncing) pthread_cond_wait(&log->sync_cv, &log->sync_mu);
    log->syncing = 1;
    pthread_mutex_unlock(&log->sync_mu);
}

static void sync_release(seglog *log, uint64_t synced) {
    pthread_mutex_lock(&log->sync_mu);
    if (synced > atomic_load(&log->synced_pos)) atomic_store(&log->synced_pos, synced);
    log->syncing = 0;
    pthread_cond_broadcast(&log->sync_cv);
    pthread_mutex_unlock(&log->sync_mu);
}

int seglog_wait_durable(seglog *log, uint64_t end_pos) {
    int rc = 0;
    pthread_mutex_lock(&log->sync_mu);
    while (atomic_load(&log->synced_pos) < end_pos) {
        if ((rc = atomic_load(&log->panic_rc))) break;
        if (log->syncing) {
            pthread_cond_wait(&log->sync_cv, &log->sync_mu);
            continue;
        }
        log->syncing = 1;
        int fd = log->fd;
        uint64_t upto = atomic_load(&log->written_pos);
        pthread_mutex_unlock(&log->sync_mu);
        int s = io_sync(log->sio, fd, 1);
        atomic_fetch_add(&log->nsyncs, 1);
        pthread_mutex_lock(&log->sync_mu);
        log->syncing = 0;
        if (s < 0) {
            rc = set_panic(log, QUARRY_PANIC);
            q_err(QUARRY_IOERR_FSYNC,
                  "fdatasync failed (%s): the collection refuses writes until reopened",
                  strerror(-s));
            pthread_cond_broadcast(&log->sync_cv);
            pthread_mutex_unlock(&log->sync_mu);
            return QUARRY_IOERR_FSYNC;
        }
        if (upto > atomic_load(&log->synced_pos)) atomic_store(&log->synced_pos, upto);
        pthread_cond_broadcast(&log->sync_cv);
    }
    pthread_mutex_unlock(&log->sync_mu);
    if (rc) return q_err(QUARRY_PANIC, "an earlier fdatasync failed: reopen the database");
    return 0;
}

int seglog_sync(seglog *log) {
    if (log->read_only) return 0;
    return seglog_wait_durable(log, atomic_load(&log->written_pos));
}

int seglog_dirty(seglog *log) {
    return atomic_load(&log->synced_pos) < atomic_load(&log->written_pos);
}

int seglog_panic(seglog *log) { return atomic_load(&log->panic_rc); }

/* ============================================================== append */

static int rotate_locked(seglog *log) {
    uint8_t seal[REC_HEADER_LEN + SEAL_PAYLOAD_LEN];
    put_u64(seal + REC_HEADER_LEN, log->seg_off);
    put_u64(seal + REC_HEADER_LEN + 8, log->seg_records);
    rec_seal_header(seal, REC_SEAL, SEAL_PAYLOAD_LEN, log->last_lsn, log->salt);
    sync_own(log);
    uint64_t synced = 0;
    int rc = io_pwrite_all(log->wio, log->fd, seal, sizeof seal, log->seg_off);
    if (rc < 0) {
        /* nothing changed: the seal is not past the committed end */
        sync_release(log, 0);
        return q_err(q_errno_rc(rc, QUARRY_IOERR_WRITE), "write seal record: %s", strerror(-rc));
    }
    rc = io_sync(log->wio, log->fd, 1);
    atomic_fetch_add(&log->nsyncs, 1);
    if (rc < 0) {
        set_panic(log, QUARRY_PANIC);
        sync_release(log, 0);
        return q_err(QUARRY_IOERR_FSYNC, "fdatasync while sealing a segment: %s", strerror(-rc));
    }
    uint64_t old_end = log->seg_off + sizeof seal;
    int old_fd = log->fd;
    uint64_t old_salt = log->salt, old_off = log->seg_off, old_records = log->seg_records;
    pthread_mutex_lock(&log->segs_mu);
    log->segs[log->nsegs - 1].bytes = old_end;
    log->segs[log->nsegs - 1].last_lsn = log->last_lsn;
    pthread_mutex_unlock(&log->segs_mu);
    rc = start_new_segment(log);
    if (rc == 0 && log->on_segments) {
        rc = log->on_segments(log->ctx);
        if (rc) {
            /* The manifest still lists the old segment as the last one; it is
             * sealed, which recovery accepts. Keep appending to a new file is
             * impossible without the manifest, so fail hard. */
            set_panic(log, QUARRY_PANIC);
        }
    }
    if (rc) {
        if (log->fd != old_fd) {
            /* undo the in-memory switch; the new file is an orphan */
            close(log->fd);
            pthread_mutex_lock(&log->segs_mu);
            log->nsegs--;
            pthread_mutex_unlock(&log->segs_mu);
        }
        /* The sealed segment stays active in memory only if no seal was made
         * durable; it was, so further appends must not follow it. */
        log->fd = old_fd, log->salt = old_salt, log->seg_off = old_off;
        log->seg_records = old_records;
        set_panic(log, QUARRY_PANIC);
        sync_release(log, 0);
        return rc;
    }
    close(old_fd);
    uint64_t pos = log->seg_base + old_end;
    log->seg_base = pos;
    atomic_store(&log->written_pos, pos + log->seg_off);
    synced = pos + log->seg_off;
    sync_release(log, synced);
    return 0;
}

int seglog_append(seglog *log, uint8_t *rec, uint32_t payload_len, uint64_t *lsn,
                  uint64_t *end_pos, uint64_t *segno) {
    if (log->read_only) return q_err(QUARRY_READONLY, "the database is open read-only");
    if (payload_len > SEG_MAX_PAYLOAD)
        return q_err(QUARRY_FULL, "batch of %u bytes exceeds the record limit", payload_len);
    pthread_mutex_lock(&log->append_mu);
    int rc = atomic_load(&log->panic_rc);
    if (rc) {
        pthread_mutex_unlock(&log->append_mu);
        return q_err(QUARRY_PANIC, "an earlier durability failure: reopen the database");
    }
    uint64_t my_lsn = log->last_lsn + 1;
    uint64_t synced = atomic_load(&log->synced_pos);
    uint64_t synced_off = synced > log->seg_base ? synced - log->seg_base : 0;
    if (synced_off > log->seg_off) synced_off = log->seg_off;
    put_u64(rec + REC_HEADER_LEN, synced_off);
    put_u32(rec + REC_HEADER_LEN + 12, 0);
    rec_seal_header(rec, REC_BATCH, payload_len, my_lsn, log->salt);
    uint64_t total = rec_padded(REC_HEADER_LEN + (uint64_t)payload_len);
    rc = io_pwrite_all(log->wio, log->fd, rec, total, log->seg_off);
    if (rc < 0) {
        /* Cut whatever part of the record reached the file so that no torn
         * bytes sit past the committed end while later records follow. */
        int e = -rc;
        if (ftruncate(log->fd, (off_t)log->seg_off) != 0) set_panic(log, QUARRY_PANIC);
        pthread_mutex_unlock(&log->append_mu);
        return q_err(q_errno_rc(-e, QUARRY_IOERR_WRITE), "append to the log: %s", strerror(e));
    }
    log->seg_off += total;
    log->seg_records++;
    log->last_lsn = my_lsn;
    uint64_t end = log->seg_base + log->seg_off;
    atomic_store(&log->written_pos, end);
    pthread_mutex_lock(&log->segs_mu);
    *segno = log->segs[log->nsegs - 1].segno;
    log->segs[log->nsegs - 1].bytes = log->seg_off;
    log->segs[log->nsegs - 1].last_lsn = my_lsn;
    pthread_mutex_unlock(&log->segs_mu);
    if (log->seg_off >= log->seg_max) {
        /* The record is written; a failed rotation makes the log PANIC but
         * this batch is still a normal commit subject to wait_durable. */
        (void)rotate_locked(log);
    }
    pthread_mutex_unlock(&log->append_mu);
    *lsn = my_lsn;
    *end_pos = end;
    return 0;
}

int seglog_rotate(seglog *log) {
    if (log->read_only) return q_err(QUARRY_READONLY, "the database is open read-only");
    pthread_mutex_lock(&log->append_mu);
    int rc = atomic_load(&log->panic_rc);
    if (rc)
        rc = q_err(QUARRY_PANIC, "an earlier durability failure: reopen the database");
    else if (log->seg_records > 0)
        rc = rotate_locked(log);
    pthread_mutex_unlock(&log->append_mu);
    return rc;
}

/* ============================================================== queries */

int seglog_segments(seglog *log, uint64_t **segs, size_t *n, uint64_t *next_segment) {
    pthread_mutex_lock(&log->segs_mu);
    uint64_t *a = q_malloc((log->nsegs ? log->nsegs : 1) * sizeof *a);
    if (a)
        for (size_t i = 0; i < log->nsegs; i++) a[i] = log->segs[i].segno;
    *n = log->nsegs;
    *next_segment = log->next_segment;
    pthread_mutex_unlock(&log->segs_mu);
    *segs = a;
    return a ? 0 : q_err(QUARRY_NOMEM, "out of memory");
}

int seglog_sealed(seglog *log, uint64_t **segs, size_t *n) {
    pthread_mutex_lock(&log->segs_mu);
    size_t k = log->nsegs ? log->nsegs - 1 : 0;
    uint64_t *a = q_malloc((k ? k : 1) * sizeof *a);
    if (a)
        for (size_t i = 0; i < k; i++) a[i] = log->segs[i].segno;
    pthread_mutex_unlock(&log->segs_mu);
    *segs = a;
    *n = k;
    return a ? 0 : q_err(QUARRY_NOMEM, "out of memory");
}

uint64_t seglog_segment_bytes(seglog *log, uint64_t segno) {
    uint64_t b = 0;
    pthread_mutex_lock(&log->segs_mu);
    for (size_t i = 0; i < log->nsegs; i++)
        if (log->segs[i].segno == segno) b = log->segs[i].bytes;
    pthread_mutex_unlock(&log->segs_mu);
    return b;
}

uint64_t seglog_last_lsn(seglog *log) {
    pthread_mutex_lock(&log->append_mu);
    uint64_t lsn = log->last_lsn;
    pthread_mutex_unlock(&log->append_mu);
    return lsn;
}

void seglog_get_stats(seglog *log, seglog_stats *st) {
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&log->segs_mu);
    st->segments = log->nsegs;
    for (size_t i = 0; i < log->nsegs; i++) st->disk_bytes += log->segs[i].bytes;
    if (log->nsegs) {
        st->active_segno = log->segs[log->nsegs - 1].segno;
        st->last_lsn = log->segs[log->nsegs - 1].last_lsn;
    }
    pthread_mutex_unlock(&log->segs_mu);
    if (log->last_lsn > st->last_lsn) st->last_lsn = log->last_lsn;
    st->syncs = atomic_load(&log->nsyncs);
    st->truncated_bytes = log->truncated_bytes;
}

/* ============================================================== compaction */

int seglog_compact(seglog *log, const uint64_t *sealed, size_t nsealed, seglog_fill_fn fill,
                   void *ctx) {
    if (log->read_only) return q_err(QUARRY_READONLY, "the database is open read-only");
    if (nsealed == 0) return 0;
    int rc = 0;
    io_ctx *io = NULL;
    int ioerr = io_ctx_new(log->io_kind, &io);
    if (ioerr < 0) return q_err(QUARRY_IOERR_URING, "compaction I/O: %s", strerror(-ioerr));
    /* The LSN all compacted records carry: the last LSN of the sealed prefix
     * (invariant 3: no later segment has a smaller one). */
    uint64_t lsn = 0;
    pthread_mutex_lock(&log->segs_mu);
    if (log->nsegs <= nsealed) rc = q_err(QUARRY_INTERNAL, "compaction: segment list changed");
    for (size_t i = 0; !rc && i < nsealed; i++) {
        if (log->segs[i].segno != sealed[i])
            rc = q_err(QUARRY_INTERNAL, "compaction: segment list changed");
        else if (log->segs[i].last_lsn > lsn)
            lsn = log->segs[i].last_lsn;
    }
    pthread_mutex_unlock(&log->segs_mu);
    if (rc) {
        io_ctx_free(io);
        return rc;
    }

    size_t cap = 8u << 20;
    uint8_t *buf = q_malloc(REC_HEADER_LEN + BATCH_PREFIX_LEN + cap + 8);
    uint64_t *news = NULL;
    size_t nnew = 0, news_cap = 0;
    int fd = -1;
    uint64_t salt = 0, off = 0, nrec = 0;
    if (!buf) {
        io_ctx_free(io);
        return q_err(QUARRY_NOMEM, "out of memory (compaction buffer)");
    }
    for (;;) {
        if (fd < 0) {
            if (nnew == news_cap) {
                news_cap = news_cap ? 2 * news_cap : 4;
                uint64_t *nn = q_realloc(news, news_cap * sizeof *nn);
                if (!nn) {
                    rc = q_err(QUARRY_NOMEM, "out of memory");
                    break;
                }
                news = nn;
            }
            uint64_t segno = reserve_segno(log);
            if ((rc = seg_create(log, io, segno, &fd, &salt))) break;
            news[nnew++] = segno;
            off = SEG_HEADER_LEN, nrec = 0;
        }
        uint32_t nops = 0;
        int64_t plen = fill(ctx, news[nnew - 1], buf + REC_HEADER_LEN, cap + BATCH_PREFIX_LEN,
                            &nops);
        if (plen < 0) {
            rc = (int)-plen;
            break;
        }
        if (plen > 0) {
            put_u64(buf + REC_HEADER_LEN, 0);
            put_u32(buf + REC_HEADER_LEN + 8, nops);
            put_u32(buf + REC_HEADER_LEN + 12, 0);
            rec_seal_header(buf, REC_BATCH, (uint32_t)plen, lsn, salt);
            uint64_t total = rec_padded(REC_HEADER_LEN + (uint64_t)plen);
            int w = io_pwrite_all(io, fd, buf, total, off);
            if (w < 0) {
                rc = q_err(q_errno_rc(w, QUARRY_IOERR_WRITE), "compaction write: %s",
                           strerror(-w));
                break;
            }
            off += total, nrec++;
        }
        if (plen == 0 || off >= log->seg_max) {
            uint8_t seal[REC_HEADER_LEN + SEAL_PAYLOAD_LEN];
            put_u64(seal + REC_HEADER_LEN, off);
            put_u64(seal + REC_HEADER_LEN + 8, nrec);
            rec_seal_header(seal, REC_SEAL, SEAL_PAYLOAD_LEN, lsn, salt);
            int w = io_pwrite_all(io, fd, seal, sizeof seal, off);
            if (w == 0) w = io_sync(io, fd, 1);
            close(fd);
            fd = -1;
            if (w < 0) {
                rc = q_err(q_errno_rc(w, QUARRY_IOERR_WRITE), "compaction seal: %s",
                           strerror(-w));
                break;
            }
            if (plen == 0) break;
        }
    }
    if (fd >= 0) close(fd);
    q_free(buf);
    if (!rc) rc = storage_fsync_dir(log->dir);

    /* Install: replace the sealed prefix by the new segments. */
    segmeta *saved = NULL;
    if (!rc) {
        pthread_mutex_lock(&log->segs_mu);
        saved = q_malloc(nsealed * sizeof *saved);
        size_t rest = log->nsegs - nsealed;
        size_t need = nnew + rest;
        if (saved && need > log->segs_cap) {
            segmeta *s = q_realloc(log->segs, need * sizeof *s);
            if (s) log->segs = s, log->segs_cap = need;
            else rc = q_err(QUARRY_NOMEM, "out of memory");
        }
        if (!saved) rc = q_err(QUARRY_NOMEM, "out of memory");
        if (!rc) {
            memcpy(saved, log->segs, nsealed * sizeof *saved);
            memmove(log->segs + nnew, log->segs + nsealed, rest * sizeof *log->segs);
            for (size_t i = 0; i < nnew; i++) {
                char path[4096];
                struct stat stt;
                seg_path(log, news[i], path, sizeof path);
                uint64_t bytes = stat(path, &stt) == 0 ? (uint64_t)stt.st_size : 0;
                log->segs[i] = (segmeta){news[i], bytes, lsn};
            }
            log->nsegs = need;
        }
        pthread_mutex_unlock(&log->segs_mu);
        if (!rc && log->on_segments && (rc = log->on_segments(log->ctx))) {
            /* manifest not installed: put the old list back */
            pthread_mutex_lock(&log->segs_mu);
            memmove(log->segs + nsealed, log->segs + nnew, rest * sizeof *log->segs);
            memcpy(log->segs, saved, nsealed * sizeof *saved);
            log->nsegs = nsealed + rest;
            pthread_mutex_unlock(&log->segs_mu);
        }
    }
    char path[4096];
    if (rc) {
        for (size_t i = 0; i < nnew; i++) {
            seg_path(log, news[i], path, sizeof path);
            unlink(path);
        }
    } else {
        for (size_t i = 0; i < nsealed; i++) {
            seg_path(log, sealed[i], path, sizeof path);
            unlink(path);
        }
        storage_fsync_dir(log->dir);
    }
    q_free(saved);
    q_free(news);
    io_ctx_free(io);
    return rc;
}
