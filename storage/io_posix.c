/* SPDX-License-Identifier: MIT */
/*
 * io_posix.c -- the POSIX I/O back end: pwrite/pread/fdatasync loops.
 * The fallback when io_uring is unavailable, and the reference the io_uring
 * back end is tested against.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/qcommon.h"
#include "storage/io.h"

static int posix_pwrite_all(io_ctx *c, int fd, const void *buf, size_t len, uint64_t off) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        p += n, len -= (size_t)n, off += (uint64_t)n;
    }
    return 0;
}

static int64_t posix_pread_all(io_ctx *c, int fd, void *buf, size_t len, uint64_t off) {
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    return (int64_t)done;
}

static int posix_sync(io_ctx *c, int fd, int datasync) {
    int rc = datasync ? fdatasync(fd) : fsync(fd);
    return rc ? -errno : 0;
}

static void posix_destroy(io_ctx *c) { q_free(c); }

static const io_ops posix_ops = {"posix", posix_pwrite_all, posix_pread_all, posix_sync,
                                 posix_destroy};

int io_posix_ctx_new(io_ctx **out) {
    io_ctx *c = q_calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->ops = &posix_ops;
    *out = c;
    return 0;
}

static io_wrap_fn g_wrapper;

void io_set_wrapper(io_wrap_fn fn) { g_wrapper = fn; }

int io_ctx_new(int kind, io_ctx **out) {
    io_ctx *c = NULL;
    int rc;
    *out = NULL;
    if (kind == IO_POSIX) {
        rc = io_posix_ctx_new(&c);
    } else {
        rc = io_uring_ctx_new(&c);
        if (rc < 0 && kind == IO_AUTO) rc = io_posix_ctx_new(&c);
    }
    if (rc < 0) return rc;
    if (g_wrapper) {
        io_ctx *w = NULL;
        rc = g_wrapper(c, &w);
        if (rc < 0) {
            io_ctx_free(c);
            return rc;
        }
        c = w;
    }
    *out = c;
    return 0;
}

void io_ctx_free(io_ctx *c) {
    if (c) c->ops->destroy(c);
}
