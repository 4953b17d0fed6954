/* SPDX-License-Identifier: MIT */
/*
 * hnsw_check.c -- the graph's invariants, checked in one pass.
 *
 * Every link points at an inserted node whose level reaches the list's level;
 * no self links, no repeated link in a list; list lengths within m0 (level 0)
 * and m (above); nodes not in the graph own no lists and are not tombstoned;
 * the counters match the levels array and the tombstone bitmap; the entry
 * point exists iff the graph is not empty and sits on the top level, which is
 * the highest level of any node. hnsw_deserialize runs the same check on
 * what it parsed, so it must never trust the structure it examines: every
 * index is range-checked before use.
 */
#include <stdarg.h>
#include <stdio.h>

#include "hnsw_int.h"

static int fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t cap, const char *fmt, ...) {
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return QUARRY_CORRUPT;
}

int hnsw_check(const hnsw *h, char *msg, size_t msg_cap) {
    if (msg && msg_cap) msg[0] = 0;
    /* tags for the repeated-link test; without memory fall back to pairs */
    hnsw_tls *t = hnsw_tls_get(h, 1);
    size_t count = 0, ndead = 0;
    int top = -1;
    for (uint32_t n = 0; n < h->cap; n++) {
        unsigned lv = h->levels[n];
        int dead = hnsw_dead(h, n);
        if (lv == HNSW_LEVEL_NONE) {
            if (h->upper[n]) return fail(msg, msg_cap, "node %u: not inserted, has lists", n);
            if (hnsw_links0(h, n)[0])
                return fail(msg, msg_cap, "node %u: not inserted, has level-0 links", n);
            if (dead) return fail(msg, msg_cap, "node %u: not inserted, tombstoned", n);
            continue;
        }
        if (lv > HNSW_MAX_LEVEL) return fail(msg, msg_cap, "node %u: level %u", n, lv);
        if (lv > 0 && !h->upper[n]) return fail(msg, msg_cap, "node %u: no upper lists", n);
        if (lv == 0 && h->upper[n]) return fail(msg, msg_cap, "node %u: stray upper lists", n);
        count++;
        ndead += (size_t)dead;
        if ((int)lv > top) top = (int)lv;
        for (int l = 0; l <= (int)lv; l++) {
            const uint32_t *ll = hnsw_links(h, n, l);
            uint32_t cnt = ll[0];
            if (cnt > hnsw_maxdeg(h, l))
                return fail(msg, msg_cap, "node %u level %d: %u links > %u", n, l, cnt,
                            hnsw_maxdeg(h, l));
            uint16_t tag = t ? hnsw_tls_epoch(t) : 0;
            for (uint32_t j = 0; j < cnt; j++) {
                uint32_t x = ll[1 + j];
                if (x >= h->cap || h->levels[x] == HNSW_LEVEL_NONE)
                    return fail(msg, msg_cap, "node %u level %d: link to absent node %u", n, l,
                                x);
                if (x == n) return fail(msg, msg_cap, "node %u level %d: self link", n, l);
                if ((int)h->levels[x] < l)
                    return fail(msg, msg_cap, "node %u level %d: link to %u of level %u", n, l,
                                x, h->levels[x]);
                int dup = 0;
                if (t) {
                    dup = t->vis[x] == tag;
                    t->vis[x] = tag;
                } else {
                    for (uint32_t i = 0; i < j && !dup; i++) dup = ll[1 + i] == x;
                }
                if (dup) return fail(msg, msg_cap, "node %u level %d: %u linked twice", n, l, x);
            }
        }
    }
    if (count != h->count)
        return fail(msg, msg_cap, "%zu nodes inserted, counter says %zu", count, h->count);
    if (ndead != h->ndead)
        return fail(msg, msg_cap, "%zu tombstones, counter says %zu", ndead, h->ndead);
    if (count == 0) {
        if (h->entry != HNSW_NONE || h->max_level != -1)
            return fail(msg, msg_cap, "empty graph with an entry point");
        return 0;
    }
    if (h->entry >= h->cap || h->levels[h->entry] == HNSW_LEVEL_NONE)
        return fail(msg, msg_cap, "entry point %u not inserted", h->entry);
    if (h->max_level != top || (int)h->levels[h->entry] != top)
        return fail(msg, msg_cap, "entry point %u at level %u, top level %d, recorded %d",
                    h->entry, h->levels[h->entry], top, h->max_level);
    return 0;
}
