/* SPDX-License-Identifier: MIT */
/*
 * io.h -- the I/O back-end interface of the storage layer.
 *
 * storage/ does every data write, read and sync through an `io_ctx` so that
 * the back end can be switched without #ifdefs: io_uring (the default),
 * plain POSIX (fallback when the kernel or a seccomp policy refuses io_uring),
 * and test back ends that inject faults.
 *
 * An io_ctx is used by one thread at a time (callers hold the lock that owns
 * it). Every function returns 0 (or a byte count) on success and -errno on
 * failure; `storage/` converts -errno to QUARRY_IOERR_* once (qcommon.h).
 */
#ifndef QUARRY_IO_H
#define QUARRY_IO_H

#include <stddef.h>
#include <stdint.h>

typedef struct io_ctx io_ctx;

typedef struct io_ops {
    const char *name;
    /* Write all `len` bytes at `off`, resubmitting short writes. */
    int (*pwrite_all)(io_ctx *c, int fd, const void *buf, size_t len, uint64_t off);
    /* Read up to `len` bytes at `off`; returns bytes read (short only at EOF). */
    int64_t (*pread_all)(io_ctx *c, int fd, void *buf, size_t len, uint64_t off);
    /* fdatasync (datasync = 1) or fsync (0). */
    int (*sync)(io_ctx *c, int fd, int datasync);
    void (*destroy)(io_ctx *c);
} io_ops;

struct io_ctx {
    const io_ops *ops;
    uint64_t nsyncs; /* syncs issued through this context */
    uint64_t nwrites;
};

/* Back-end kinds (match quarry_io_backend). */
#define IO_AUTO 0
#define IO_URING 1
#define IO_POSIX 2

/*
 * Create a context of the given kind. IO_AUTO tries io_uring, then POSIX.
 * Returns 0 or -errno (-ENOSYS/-EPERM when io_uring is refused).
 */
int io_ctx_new(int kind, io_ctx **out);
void io_ctx_free(io_ctx *c);

int io_uring_ctx_new(io_ctx **out);
int io_posix_ctx_new(io_ctx **out);

/* Test hook: when set, io_ctx_new wraps every new context with this factory
 * (used by the fault-injection back end in tests). */
typedef int (*io_wrap_fn)(io_ctx *inner, io_ctx **out);
void io_set_wrapper(io_wrap_fn fn);

static inline int io_pwrite_all(io_ctx *c, int fd, const void *b, size_t n, uint64_t off) {
    c->nwrites++;
    return c->ops->pwrite_all(c, fd, b, n, off);
}
static inline int64_t io_pread_all(io_ctx *c, int fd, void *b, size_t n, uint64_t off) {
    return c->ops->pread_all(c, fd, b, n, off);
}
static inline int io_sync(io_ctx *c, int fd, int datasync) {
    c->nsyncs++;
    return c->ops->sync(c, fd, datasync);
}

#endif
