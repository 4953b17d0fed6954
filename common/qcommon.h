/* SPDX-License-Identifier: MIT */
/*
 * qcommon.h -- what every layer shares: allocation wrappers, the thread-local
 * error detail, little-endian helpers and the defensive-check macros.
 *
 * Include it after the system headers. All heap memory goes through
 * q_malloc/q_free so that a test allocator can be installed and so that a
 * failed allocation is always reported as QUARRY_NOMEM (a library never aborts
 * on OOM).
 */
#ifndef QUARRY_QCOMMON_H
#define QUARRY_QCOMMON_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quarry.h"

void *q_malloc(size_t n);
void *q_calloc(size_t n, size_t size);
void *q_realloc(void *p, size_t n);
void q_free(void *p);
/* 64-byte aligned allocation (vectors); free with q_free_aligned. */
void *q_malloc_aligned(size_t n);
void q_free_aligned(void *p);
char *q_strndup(const char *s, size_t n);
/* Large, growable, page-aligned regions (vectors): mmap'd, grown with mremap so
 * growth never copies, transparent huge pages advised. Resize returns NULL on
 * failure with the old region untouched; lengths are the caller's byte counts
 * (rounded internally). q_region_resize(NULL, 0, n) allocates. */
void *q_region_resize(void *old, size_t old_len, size_t new_len);
void q_region_free(void *p, size_t len);

/* Record an error for quarry_errmsg()/quarry_errcode() and return rc. */
int q_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current detail text: "what: <old detail>". Returns rc. */
int q_err_prefix(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear the thread's error state (called on entry of public functions). */
void q_err_clear(void);
/* Map -errno from an I/O back end to an extended IOERR code (ENOSPC -> FULL). */
int q_errno_rc(int neg_errno, int ioerr_code);

/* Defensive checks that must hold; in release builds they still evaluate. */
#ifdef NDEBUG
#define ALWAYS(x) (x)
#define NEVER(x) (x)
#else
#define ALWAYS(x) ((x) ? 1 : (assert(0), 0))
#define NEVER(x) ((x) ? (assert(0), 1) : 0)
#endif

static inline void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

/* Monotonic clock in nanoseconds. */
uint64_t q_now_ns(void);

#endif
