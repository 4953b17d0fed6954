/* SPDX-License-Identifier: MIT */
/*
 * qbuf.h -- a growable little-endian write buffer for the serialisers of
 * index checkpoint sections. Writes never fail individually: the first
 * failed allocation sets `err` and later writes do nothing, so a serialiser
 * checks once at the end. Include after common/qcommon.h.
 */
#ifndef QUARRY_QBUF_H
#define QUARRY_QBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct wbuf {
    uint8_t *b;   /* q_malloc'd; the caller owns it (free it on err) */
    size_t n, cap;
    int err;      /* an allocation failed: the content is incomplete */
} wbuf;

/* Reserve k bytes at the end and return them, or NULL after a failure. */
static inline uint8_t *wb_room(wbuf *w, size_t k) {
    if (w->err) return NULL;
    if (w->n + k > w->cap) {
        size_t c = w->cap ? w->cap : 4096;
        while (c < w->n + k) c *= 2;
        uint8_t *p = q_realloc(w->b, c);
        if (!p) {
            w->err = 1;
            return NULL;
        }
        w->b = p;
        w->cap = c;
    }
    uint8_t *p = w->b + w->n;
    w->n += k;
    return p;
}

static inline void wb_u32(wbuf *w, uint32_t v) {
    uint8_t *p = wb_room(w, 4);
    if (p) put_u32(p, v);
}

static inline void wb_u64(wbuf *w, uint64_t v) {
    uint8_t *p = wb_room(w, 8);
    if (p) put_u64(p, v);
}

static inline void wb_bytes(wbuf *w, const void *s, size_t k) {
    uint8_t *p = wb_room(w, k);
    if (p && k) memcpy(p, s, k);
}

#endif
