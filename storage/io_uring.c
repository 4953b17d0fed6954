/* SPDX-License-Identifier: MIT */
/*
 * io_uring.c -- the io_uring I/O back end (liburing).
 *
 * A large write is split into chunks of IOU_CHUNK bytes that are submitted
 * together (one io_uring_submit for the batch) and reaped together; a short
 * completion is resubmitted for its remainder. fdatasync is an
 * IORING_OP_FSYNC with IORING_FSYNC_DATASYNC. Each context owns one ring and
 * is used by one thread at a time, so there is no locking here.
 *
 * Why chunks: one SQE per MiB keeps several requests in flight for a large
 * batch (the block layer merges them) while bounding the work redone after a
 * short write. Completions may arrive out of order; recovery's torn-tail rule
 * (format.h invariant 5) is written for exactly that.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "common/qcommon.h"
#include "storage/io.h"

#define IOU_DEPTH 64
#define IOU_CHUNK (1u << 20)

typedef struct iou_ctx {
    io_ctx base;
    struct io_uring ring;
} iou_ctx;

typedef struct iou_piece {
    const char *buf;
    size_t len;
    uint64_t off;
} iou_piece;

/* Submit pieces[0..n) as writes (or reads), wait for all of them, and update
 * each piece to its unfinished remainder. Returns 0 or -errno. A read that
 * returns 0 lowers *eof_off to the file offset where it hit end of file. */
static int iou_run(iou_ctx *c, int fd, iou_piece *pieces, size_t n, int is_read,
                   uint64_t *eof_off) {
    size_t submitted = 0;
    for (size_t i = 0; i < n; i++) {
        if (pieces[i].len == 0) continue;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
        if (!sqe) return -EBUSY; /* n <= IOU_DEPTH, cannot happen */
        if (is_read)
            io_uring_prep_read(sqe, fd, (void *)pieces[i].buf, (unsigned)pieces[i].len,
                               pieces[i].off);
        else
            io_uring_prep_write(sqe, fd, pieces[i].buf, (unsigned)pieces[i].len, pieces[i].off);
        io_uring_sqe_set_data64(sqe, i);
        submitted++;
    }
    if (submitted == 0) return 0;
    int rc = io_uring_submit_and_wait(&c->ring, (unsigned)submitted);
    if (rc < 0 && rc != -EINTR) return rc;
    int first_err = 0;
    for (size_t done = 0; done < submitted;) {
        struct io_uring_cqe *cqe;
        rc = io_uring_wait_cqe(&c->ring, &cqe);
        if (rc == -EINTR) continue;
        if (rc < 0) return rc;
        size_t i = (size_t)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&c->ring, cqe);
        done++;
        if (res < 0) {
            if (res == -EINTR || res == -EAGAIN) continue; /* retried by the caller loop */
            if (!first_err) first_err = res;
            continue;
        }
        if (res == 0) {
            if (is_read) {
                if (pieces[i].off < *eof_off) *eof_off = pieces[i].off;
                pieces[i].len = 0;
            } else if (!first_err) {
                first_err = -EIO;
            }
            continue;
        }
        pieces[i].buf += res;
        pieces[i].len -= (size_t)res;
        pieces[i].off += (uint64_t)res;
    }
    return first_err;
}

static int iou_rw(iou_ctx *c, int fd, const void *buf, size_t len, uint64_t off, int is_read,
                  size_t *done_out) {
    const char *p = buf;
    uint64_t start = off, eof_off = UINT64_MAX;
    while (len > 0) {
        iou_piece pieces[IOU_DEPTH];
        size_t n = 0, span = 0;
        while (n < IOU_DEPTH && span < len) {
            size_t l = len - span < IOU_CHUNK ? len - span : IOU_CHUNK;
            pieces[n++] = (iou_piece){p + span, l, off + span};
            span += l;
        }
        for (;;) {
            int rc = iou_run(c, fd, pieces, n, is_read, &eof_off);
            if (rc < 0) return rc;
            size_t left = 0;
            for (size_t i = 0; i < n; i++) left += pieces[i].len;
            if (left == 0) break;
        }
        if (eof_off != UINT64_MAX) {
            *done_out = (size_t)(eof_off - start);
            return 0;
        }
        p += span, len -= span, off += span;
    }
    *done_out = (size_t)(off - start);
    return 0;
}

static int iou_pwrite_all(io_ctx *base, int fd, const void *buf, size_t len, uint64_t off) {
    size_t done;
    return iou_rw((iou_ctx *)base, fd, buf, len, off, 0, &done);
}

static int64_t iou_pread_all(io_ctx *base, int fd, void *buf, size_t len, uint64_t off) {
    size_t done = 0;
    int rc = iou_rw((iou_ctx *)base, fd, buf, len, off, 1, &done);
    return rc < 0 ? rc : (int64_t)done;
}

static int iou_sync(io_ctx *base, int fd, int datasync) {
    iou_ctx *c = (iou_ctx *)base;
    for (;;) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
        if (!sqe) return -EBUSY;
        io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
        int rc = io_uring_submit_and_wait(&c->ring, 1);
        if (rc < 0 && rc != -EINTR) return rc;
        struct io_uring_cqe *cqe;
        do rc = io_uring_wait_cqe(&c->ring, &cqe);
        while (rc == -EINTR);
        if (rc < 0) return rc;
        int res = cqe->res;
        io_uring_cqe_seen(&c->ring, cqe);
        if (res == -EINTR || res == -EAGAIN) continue;
        return res < 0 ? res : 0;
    }
}

static void iou_destroy(io_ctx *base) {
    iou_ctx *c = (iou_ctx *)base;
    io_uring_queue_exit(&c->ring);
    q_free(c);
}

static const io_ops iou_ops = {"io_uring", iou_pwrite_all, iou_pread_all, iou_sync, iou_destroy};

int io_uring_ctx_new(io_ctx **out) {
    iou_ctx *c = q_calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    int rc = io_uring_queue_init(IOU_DEPTH, &c->ring, 0);
    if (rc < 0) {
        q_free(c);
        return rc;
    }
    c->base.ops = &iou_ops;
    *out = &c->base;
    return 0;
}
