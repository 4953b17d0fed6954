/* SPDX-License-Identifier: MIT */
/*
 * hnsw_serde.c -- the graph (not the vectors) to and from bytes.
 *
 * Format, little-endian:
 *   header (48 bytes)
 *     u32 magic "QHNW"   u32 version (1)
 *     u32 dim            u32 m            u32 metric
 *     u32 nodes          -- ids in the graph are < nodes (highest + 1)
 *     u32 entry point    -- 0xffffffff when empty
 *     u32 top level      -- 0xffffffff when empty
 *     u64 inserted count u64 tombstone count
 *   per node n in [0, nodes)
 *     u8 level           -- 0xff: not in the graph, and nothing follows
 *     for each level 0..level: u32 count, then count u32 links
 *   tombstones: (nodes + 63) / 64 u64 words, bit n = node n
 *   u64 XXH3-64 of every byte before it
 *
 * Reading treats the bytes as hostile. The checksum only catches accidents;
 * every field is still checked: sizes against the bytes left (no arithmetic
 * that can overflow), config fields against the index, levels <= 32, counts
 * against the degree limits, links against `nodes`; then the parsed graph
 * must pass hnsw_check (links to inserted nodes of high enough level, no
 * self or repeated links, counters, entry point on the top level) and the
 * buffer must be consumed exactly. Any failure leaves the index empty.
 */
#include <xxhash.h>

#include "hnsw_int.h"

#define HNSW_MAGIC 0x574E4851u /* "QHNW" */
#define HNSW_VERSION 1u
#define HDR 48

int hnsw_serialize(const hnsw *h, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    uint32_t nodes = 0;
    for (uint32_t n = h->cap; n > 0; n--)
        if (h->levels[n - 1] != HNSW_LEVEL_NONE) {
            nodes = n;
            break;
        }
    size_t size = HDR + (size_t)nodes + (size_t)(nodes + 63) / 64 * 8 + 8;
    for (uint32_t n = 0; n < nodes; n++) {
        unsigned lv = h->levels[n];
        if (lv == HNSW_LEVEL_NONE) continue;
        for (int l = 0; l <= (int)lv; l++) size += 4 + 4 * (size_t)hnsw_links(h, n, l)[0];
    }
    uint8_t *b = q_malloc(size);
    if (!b) return q_err(QUARRY_NOMEM, "hnsw: serialize %zu bytes", size);
    uint8_t *p = b;
    put_u32(p, HNSW_MAGIC);
    put_u32(p + 4, HNSW_VERSION);
    put_u32(p + 8, h->dim);
    put_u32(p + 12, h->m);
    put_u32(p + 16, (uint32_t)h->metric);
    put_u32(p + 20, nodes);
    put_u32(p + 24, h->entry);
    put_u32(p + 28, h->max_level < 0 ? UINT32_MAX : (uint32_t)h->max_level);
    put_u64(p + 32, h->count);
    put_u64(p + 40, h->ndead);
    p += HDR;
    for (uint32_t n = 0; n < nodes; n++) {
        unsigned lv = h->levels[n];
        *p++ = (uint8_t)lv;
        if (lv == HNSW_LEVEL_NONE) continue;
        for (int l = 0; l <= (int)lv; l++) {
            const uint32_t *ll = hnsw_links(h, n, l);
            put_u32(p, ll[0]);
            p += 4;
            for (uint32_t j = 0; j < ll[0]; j++, p += 4) put_u32(p, ll[1 + j]);
        }
    }
    for (uint32_t w = 0; w < (nodes + 63) / 64; w++, p += 8) {
        uint64_t bits = h->dead[w];
        if (nodes % 64 && w == nodes / 64) bits &= (1ull << (nodes % 64)) - 1;
        put_u64(p, bits);
    }
    put_u64(p, XXH3_64bits(b, (size_t)(p - b)));
    p += 8;
    if (NEVER((size_t)(p - b) != size)) {
        q_free(b);
        return q_err(QUARRY_INTERNAL, "hnsw: serialize size");
    }
    *buf = b;
    *len = size;
    return 0;
}

static int corrupt(hnsw *h, const char *what) {
    hnsw_clear_graph(h);
    return q_err(QUARRY_CORRUPT, "hnsw graph: %s", what);
}

int hnsw_deserialize(hnsw *h, const uint8_t *buf, size_t len, uint32_t nodes) {
    hnsw_clear_graph(h);
    if (nodes > h->cap)
        return q_err(QUARRY_INVALID, "hnsw: %u nodes but capacity %u", nodes, h->cap);
    if (!buf || len < HDR + 8) return corrupt(h, "truncated");
    if (XXH3_64bits(buf, len - 8) != get_u64(buf + len - 8)) return corrupt(h, "checksum");
    if (get_u32(buf) != HNSW_MAGIC) return corrupt(h, "bad magic");
    if (get_u32(buf + 4) != HNSW_VERSION) return corrupt(h, "unknown version");
    if (get_u32(buf + 8) != h->dim || get_u32(buf + 12) != h->m ||
        get_u32(buf + 16) != (uint32_t)h->metric)
        return corrupt(h, "dim, m or metric differ from the index");
    uint32_t nn = get_u32(buf + 20);
    uint32_t entry = get_u32(buf + 24);
    uint32_t top = get_u32(buf + 28);
    uint64_t count = get_u64(buf + 32), ndead = get_u64(buf + 40);
    if (nn > nodes) return corrupt(h, "more nodes than the host has");
    if (top != UINT32_MAX && top > HNSW_MAX_LEVEL) return corrupt(h, "top level");
    if (count > nn || ndead > count) return corrupt(h, "counters");

    const uint8_t *p = buf + HDR, *end = buf + len - 8;
    for (uint32_t n = 0; n < nn; n++) {
        if (p >= end) return corrupt(h, "truncated node");
        unsigned lv = *p++;
        if (lv == HNSW_LEVEL_NONE) continue;
        if (lv > HNSW_MAX_LEVEL) return corrupt(h, "node level");
        if (hnsw_alloc_upper(h, n, (int)lv)) {
            hnsw_clear_graph(h);
            return q_err(QUARRY_NOMEM, "hnsw: deserialize");
        }
        h->levels[n] = (uint8_t)lv;
        h->count++;
        for (int l = 0; l <= (int)lv; l++) {
            if (end - p < 4) return corrupt(h, "truncated list");
            uint32_t cnt = get_u32(p);
            p += 4;
            if (cnt > hnsw_maxdeg(h, l)) return corrupt(h, "list too long");
            if ((size_t)(end - p) / 4 < cnt) return corrupt(h, "truncated links");
            uint32_t *ll = hnsw_links(h, n, l);
            for (uint32_t j = 0; j < cnt; j++, p += 4) {
                uint32_t x = get_u32(p);
                if (x >= nn) return corrupt(h, "link out of range");
                ll[1 + j] = x;
            }
            ll[0] = cnt;
        }
    }
    size_t words = (size_t)(nn + 63) / 64;
    if ((size_t)(end - p) != words * 8) return corrupt(h, "tombstone bitmap size");
    for (size_t w = 0; w < words; w++, p += 8) {
        uint64_t bits = get_u64(p);
        if (nn % 64 && w == nn / 64 && (bits >> (nn % 64))) return corrupt(h, "stray tombstone");
        h->dead[w] = bits;
        h->ndead += (size_t)__builtin_popcountll(bits);
    }
    if (h->count != count || h->ndead != ndead) return corrupt(h, "counters disagree");
    h->entry = entry;
    h->max_level = top == UINT32_MAX ? -1 : (int)top;
    char msg[160];
    if (hnsw_check(h, msg, sizeof msg)) return corrupt(h, msg);
    return 0;
}
