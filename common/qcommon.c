/* SPDX-License-Identifier: MIT */
/*
 * qcommon.c -- allocation wrappers, the thread-local error detail and the
 * rc -> text table.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "qcommon.h"

void *q_malloc(size_t n) { return malloc(n ? n : 1); }
void *q_calloc(size_t n, size_t size) { return calloc(n ? n : 1, size ? size : 1); }
void *q_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
void q_free(void *p) { free(p); }

void *q_malloc_aligned(size_t n) {
    void *p = NULL;
    n = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}
void q_free_aligned(void *p) { free(p); }

static size_t region_round(size_t n) { return (n + 4095) & ~(size_t)4095; }

void *q_region_resize(void *old, size_t old_len, size_t new_len) {
    size_t ol = region_round(old_len), nl = region_round(new_len ? new_len : 1);
    void *p;
    if (!old || ol == 0) {
        p = mmap(NULL, nl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else if (ol == nl) {
        return old;
    } else {
        p = mremap(old, ol, nl, MREMAP_MAYMOVE);
    }
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (nl >= (4u << 20)) madvise(p, nl, MADV_HUGEPAGE);
#endif
    return p;
}

void q_region_free(void *p, size_t len) {
    if (p) munmap(p, region_round(len));
}

char *q_strndup(const char *s, size_t n) {
    char *p = q_malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static _Thread_local char t_errmsg[1024];
static _Thread_local int t_errcode;

int q_err(int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_errmsg, sizeof t_errmsg, fmt, ap);
    va_end(ap);
    t_errcode = rc;
    return rc;
}

int q_err_prefix(int rc, const char *fmt, ...) {
    char head[256], old[sizeof t_errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, t_errmsg, sizeof old);
    size_t hl = strlen(head);
    memcpy(t_errmsg, head, hl + 1);
    if (old[0] && hl + 2 < sizeof t_errmsg) {
        memcpy(t_errmsg + hl, ": ", 2);
        size_t room = sizeof t_errmsg - hl - 3;
        size_t ol = strnlen(old, room);
        memcpy(t_errmsg + hl + 2, old, ol);
        t_errmsg[hl + 2 + ol] = 0;
    }
    t_errcode = rc;
    return rc;
}

void q_err_clear(void) {
    t_errmsg[0] = 0;
    t_errcode = 0;
}

int q_errno_rc(int neg_errno, int ioerr_code) {
    int e = -neg_errno;
    if (e == ENOSPC || e == EDQUOT) return QUARRY_FULL;
    return ioerr_code;
}

int64_t quarry_clock_ns(void) { return (int64_t)q_now_ns(); }

uint64_t q_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *quarry_errmsg(void) { return t_errmsg; }
int quarry_errcode(void) { return t_errcode; }

const char *quarry_version(void) { return QUARRY_VERSION_STRING; }

const char *quarry_errstr(int rc) {
    switch (rc) {
    case QUARRY_IOERR_READ: return "I/O error while reading";
    case QUARRY_IOERR_WRITE: return "I/O error while writing";
    case QUARRY_IOERR_FSYNC: return "I/O error while syncing to disk";
    case QUARRY_IOERR_OPEN: return "I/O error while opening a file";
    case QUARRY_IOERR_RENAME: return "I/O error while renaming a file";
    case QUARRY_IOERR_URING: return "io_uring setup failed";
    case QUARRY_CORRUPT_RECORD: return "corrupt log record";
    case QUARRY_CORRUPT_MANIFEST: return "corrupt manifest";
    case QUARRY_CORRUPT_SEGMENT: return "corrupt segment file";
    case QUARRY_INVALID_DIM: return "vector dimension mismatch";
    case QUARRY_INTERRUPTED_DEADLINE: return "deadline exceeded";
    default: break;
    }
    switch (rc & 0xff) {
    case QUARRY_OK: return "not an error";
    case QUARRY_ERROR: return "error";
    case QUARRY_INTERNAL: return "internal error";
    case QUARRY_MISUSE: return "API misuse";
    case QUARRY_INVALID: return "invalid argument";
    case QUARRY_NOMEM: return "out of memory";
    case QUARRY_NOTFOUND: return "not found";
    case QUARRY_EXISTS: return "already exists";
    case QUARRY_MISMATCH: return "dimension or type mismatch";
    case QUARRY_IOERR: return "I/O error";
    case QUARRY_CORRUPT: return "data is corrupt";
    case QUARRY_FULL: return "disk full or limit reached";
    case QUARRY_BUSY: return "database is locked by another process";
    case QUARRY_READONLY: return "database is read-only";
    case QUARRY_UNSUPPORTED: return "not supported";
    case QUARRY_INTERRUPTED: return "interrupted";
    case QUARRY_PANIC: return "database must be reopened after a durability failure";
    default: return "unknown error";
    }
}
