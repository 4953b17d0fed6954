/* SPDX-License-Identifier: MIT */
/*
 * io_fault.c -- the fault-injecting test back end (see io_fault.h).
 *
 * Power loss is modelled with pre-images: before a tracked write lands, the
 * bytes it overwrites (and the file's size) are saved; a successful sync of a
 * file forgets its pre-images (those bytes are on disk now). Reverting them
 * newest-first restores the file as the disk last saw it. Each entry keeps a
 * dup() of the fd so that files the engine closed can still be reverted.
 * One global mutex: tests are not about I/O speed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/qcommon.h"
#include "storage/io.h"
#include "storage/io_fault.h"

typedef struct pre {
    int fd;         /* dup of the written fd */
    dev_t dev;
    ino_t ino;
    uint64_t off;
    size_t len;
    uint8_t *old;   /* old bytes of [off, off+len) that existed */
    size_t old_len; /* how many of them existed (the rest extended the file) */
    uint64_t size_before;
} pre;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static io_fault_plan g_plan;
static int g_armed, g_track, g_writes, g_syncs, g_reads, g_faults;
static int g_write_failed, g_sync_failed, g_read_failed;
static pre *g_pre;
static size_t g_npre, g_cap;

typedef struct fctx {
    io_ctx base;
    io_ctx *inner;
} fctx;

static int same_file(int fd, dev_t dev, ino_t ino) {
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static void record(int fd, uint64_t off, size_t len) {
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    if (g_npre == g_cap) {
        g_cap = g_cap ? 2 * g_cap : 64;
        g_pre = realloc(g_pre, g_cap * sizeof *g_pre);
    }
    pre *p = &g_pre[g_npre++];
    p->fd = dup(fd);
    p->dev = st.st_dev, p->ino = st.st_ino;
    p->off = off, p->len = len;
    p->size_before = (uint64_t)st.st_size;
    p->old_len = off >= (uint64_t)st.st_size ? 0
                 : (size_t)((uint64_t)st.st_size - off < len ? (uint64_t)st.st_size - off : len);
    p->old = malloc(p->old_len ? p->old_len : 1);
    if (p->old_len && pread(fd, p->old, p->old_len, (off_t)off) != (ssize_t)p->old_len)
        p->old_len = 0;
}

static void forget_file(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    size_t k = 0;
    for (size_t i = 0; i < g_npre; i++) {
        if (g_pre[i].dev == st.st_dev && g_pre[i].ino == st.st_ino) {
            close(g_pre[i].fd);
            free(g_pre[i].old);
        } else {
            g_pre[k++] = g_pre[i];
        }
    }
    g_npre = k;
}

static int hit(int *counter, int at, int *failed) {
    (*counter)++;
    if (!g_armed) return 0;
    if ((at && *counter == at) || (g_plan.sticky && *failed)) {
        *failed = 1;
        g_faults++;
        return 1;
    }
    return 0;
}

static int f_pwrite_all(io_ctx *base, int fd, const void *buf, size_t len, uint64_t off) {
    fctx *c = (fctx *)base;
    pthread_mutex_lock(&g_mu);
    int fail = hit(&g_writes, g_plan.fail_write_at, &g_write_failed);
    if (g_track) record(fd, off, len);
    size_t part = fail ? (g_plan.short_bytes < len ? g_plan.short_bytes : len) : len;
    int err = g_plan.write_errno ? g_plan.write_errno : EIO;
    pthread_mutex_unlock(&g_mu);
    if (fail) {
        if (part && c->inner->ops->pwrite_all(c->inner, fd, buf, part, off) < 0) return -EIO;
        return -err;
    }
    return c->inner->ops->pwrite_all(c->inner, fd, buf, len, off);
}

static int64_t f_pread_all(io_ctx *base, int fd, void *buf, size_t len, uint64_t off) {
    fctx *c = (fctx *)base;
    pthread_mutex_lock(&g_mu);
    int fail = hit(&g_reads, g_plan.fail_read_at, &g_read_failed);
    int err = g_plan.read_errno ? g_plan.read_errno : EIO;
    pthread_mutex_unlock(&g_mu);
    if (fail) return -err;
    return c->inner->ops->pread_all(c->inner, fd, buf, len, off);
}

static int f_sync(io_ctx *base, int fd, int datasync) {
    fctx *c = (fctx *)base;
    pthread_mutex_lock(&g_mu);
    int fail = hit(&g_syncs, g_plan.fail_sync_at, &g_sync_failed);
    int err = g_plan.sync_errno ? g_plan.sync_errno : EIO;
    pthread_mutex_unlock(&g_mu);
    if (fail) return -err; /* like Linux after writeback failed: the pages may be gone */
    int rc = c->inner->ops->sync(c->inner, fd, datasync);
    if (rc == 0) {
        pthread_mutex_lock(&g_mu);
        forget_file(fd);
        pthread_mutex_unlock(&g_mu);
    }
    return rc;
}

static void f_destroy(io_ctx *base) {
    fctx *c = (fctx *)base;
    io_ctx_free(c->inner);
    free(c);
}

static const io_ops fault_ops = {"fault", f_pwrite_all, f_pread_all, f_sync, f_destroy};

static int fault_wrap(io_ctx *inner, io_ctx **out) {
    fctx *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->base.ops = &fault_ops;
    c->inner = inner;
    *out = &c->base;
    return 0;
}

void io_fault_install(void) { io_set_wrapper(fault_wrap); }

void io_fault_arm(const io_fault_plan *p) {
    pthread_mutex_lock(&g_mu);
    g_plan = *p;
    g_armed = 1;
    g_writes = g_syncs = g_reads = g_faults = 0;
    g_write_failed = g_sync_failed = g_read_failed = 0;
    pthread_mutex_unlock(&g_mu);
}

void io_fault_disarm(void) {
    pthread_mutex_lock(&g_mu);
    g_armed = 0;
    pthread_mutex_unlock(&g_mu);
}

void io_fault_counts(int *writes, int *syncs, int *reads, int *faults) {
    pthread_mutex_lock(&g_mu);
    if (writes) *writes = g_writes;
    if (syncs) *syncs = g_syncs;
    if (reads) *reads = g_reads;
    if (faults) *faults = g_faults;
    pthread_mutex_unlock(&g_mu);
}

void io_fault_track(int on) {
    pthread_mutex_lock(&g_mu);
    g_track = on;
    pthread_mutex_unlock(&g_mu);
}

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t io_fault_power_loss(uint64_t seed, int keep_percent) {
    pthread_mutex_lock(&g_mu);
    uint64_t reverted = 0;
    static const uint8_t zeros[4096];
    for (size_t i = g_npre; i-- > 0;) {
        pre *p = &g_pre[i];
        for (uint64_t piece = p->off & ~4095ull; piece < p->off + p->len; piece += 4096) {
            uint64_t a = piece > p->off ? piece : p->off;
            uint64_t b = piece + 4096 < p->off + p->len ? piece + 4096 : p->off + p->len;
            if (keep_percent && (int)(mix(seed ^ (i * 1000003ull) ^ piece) % 100) < keep_percent)
                continue;
            /* restore the pre-image (or zeros where the write extended the file) */
            for (uint64_t x = a; x < b;) {
                uint64_t rel = x - p->off;
                size_t n;
                if (rel < p->old_len) {
                    n = (size_t)((p->old_len - rel) < (b - x) ? (p->old_len - rel) : (b - x));
                    if (pwrite(p->fd, p->old + rel, n, (off_t)x) < 0) break;
                } else {
                    n = (size_t)(b - x < sizeof zeros ? b - x : sizeof zeros);
                    if (pwrite(p->fd, zeros, n, (off_t)x) < 0) break;
                }
                x += n, reverted += n;
            }
        }
    }
    /* files end at the size the oldest pre-image saw, unless a surviving
     * piece lies beyond (then the torn file keeps that length) */
    for (size_t i = 0; i < g_npre; i++) {
        int first = 1;
        for (size_t j = 0; j < i; j++)
            if (g_pre[j].dev == g_pre[i].dev && g_pre[j].ino == g_pre[i].ino) first = 0;
        if (!first) continue;
        if (keep_percent == 0 && same_file(g_pre[i].fd, g_pre[i].dev, g_pre[i].ino))
            if (ftruncate(g_pre[i].fd, (off_t)g_pre[i].size_before) != 0) continue;
    }
    for (size_t i = 0; i < g_npre; i++) {
        close(g_pre[i].fd);
        free(g_pre[i].old);
    }
    g_npre = 0;
    pthread_mutex_unlock(&g_mu);
    return reverted;
}
