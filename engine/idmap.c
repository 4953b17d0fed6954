/* SPDX-License-Identifier: MIT */
/*
 * idmap.c -- external id -> live row number, open addressing with linear
 * probing over XXH3-64 hashes. A slot stores the row number and the hash's
 * low 32 bits (the tag). The slot index is taken from the tag too, so most
 * mismatches are rejected without touching the row's id bytes AND growing the
 * map never reads a row (rehashing 1M ids went from a cache miss per row to a
 * scan of the slot array). Maps hold at most 2^31 slots, within the tag's
 * reach. The id itself lives once, in the row (no duplicate key storage).
 * Capacity is reserved before a batch is applied so that applying never
 * allocates (and so never fails halfway).
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "engine/engine.h"

#define SLOT_EMPTY 0u
#define SLOT_DELETED UINT32_MAX

uint64_t idmap_hash(const char *id, size_t len) { return XXH3_64bits(id, len); }

static int key_eq(const row *rows, uint32_t r, const char *id, size_t len) {
    return rows[r].id_len == len && memcmp(row_id(&rows[r]), id, len) == 0;
}

int64_t idmap_find(const idmap *m, const row *rows, const char *id, size_t len, uint64_t h) {
    if (!m->cap) return -1;
    uint32_t tag = (uint32_t)h;
    for (size_t i = (size_t)(uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const idmap_slot *s = &m->slots[i];
        if (s->row1 == SLOT_EMPTY) return -1;
        if (s->row1 != SLOT_DELETED && s->tag == tag && key_eq(rows, s->row1 - 1, id, len))
            return s->row1 - 1;
    }
}

static void insert_fresh(idmap *m, uint32_t tag, uint32_t r) {
    for (size_t i = (size_t)tag & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].row1 == SLOT_EMPTY) {
            m->slots[i] = (idmap_slot){r + 1, tag};
            return;
        }
    }
}

int idmap_reserve(idmap *m, size_t extra) {
    size_t need = m->filled + extra;
    if (m->cap && need * 10 < m->cap * 7) return 0;
    size_t cap = m->cap ? m->cap : 64;
    while ((m->used + extra) * 10 >= cap * 5) cap *= 2;
    if (cap > ((size_t)1 << 31)) return q_err(QUARRY_FULL, "id map is full (2^31 slots)");
    idmap_slot *slots = q_calloc(cap, sizeof *slots);
    if (!slots) return q_err(QUARRY_NOMEM, "out of memory (id map of %zu slots)", cap);
    idmap old = *m;
    m->slots = slots, m->cap = cap, m->filled = m->used;
    for (size_t i = 0; i < old.cap; i++) {
        uint32_t r1 = old.slots[i].row1;
        if (r1 == SLOT_EMPTY || r1 == SLOT_DELETED) continue;
        insert_fresh(m, old.slots[i].tag, r1 - 1);
    }
    q_free(old.slots);
    return 0;
}

int64_t idmap_put(idmap *m, const row *rows, const char *id, size_t len, uint64_t h, uint32_t r) {
    uint32_t tag = (uint32_t)h;
    size_t first_free = SIZE_MAX;
    for (size_t i = (size_t)(uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        idmap_slot *s = &m->slots[i];
        if (s->row1 == SLOT_EMPTY) {
            if (first_free == SIZE_MAX) {
                first_free = i;
                m->filled++;
            }
            break;
        }
        if (s->row1 == SLOT_DELETED) {
            if (first_free == SIZE_MAX) first_free = i;
            continue;
        }
        if (s->tag == tag && key_eq(rows, s->row1 - 1, id, len)) {
            int64_t old = s->row1 - 1;
            s->row1 = r + 1;
            return old;
        }
    }
    m->slots[first_free] = (idmap_slot){r + 1, tag};
    m->used++;
    return -1;
}

int64_t idmap_del(idmap *m, const row *rows, const char *id, size_t len, uint64_t h) {
    if (!m->cap) return -1;
    uint32_t tag = (uint32_t)h;
    for (size_t i = (size_t)(uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        idmap_slot *s = &m->slots[i];
        if (s->row1 == SLOT_EMPTY) return -1;
        if (s->row1 != SLOT_DELETED && s->tag == tag && key_eq(rows, s->row1 - 1, id, len)) {
            int64_t old = s->row1 - 1;
            s->row1 = SLOT_DELETED;
            m->used--;
            return old;
        }
    }
}

void idmap_free(idmap *m) {
    q_free(m->slots);
    memset(m, 0, sizeof *m);
}
