/* SPDX-License-Identifier: MIT */
/*
 * test_hnsw_serde.c -- HNSW graph serialisation, and hostile input.
 *
 * Round trip: serialise, deserialise into a fresh index holding the same
 * vectors: identical search results (filters and tombstones included), the
 * invariants hold, re-serialising gives the same bytes. Single-thread builds
 * are deterministic (same seed and order, same bytes).
 *
 * Hostile bytes must give QUARRY_CORRUPT, leave the index empty (and usable)
 * and never crash (the test also runs under ASan/UBSan): every truncation,
 * single-bit flips (whole bytes for the header, sampled positions elsewhere),
 * random buffers, and -- since a checksum only stops accidents -- targeted
 * structural damage with the checksum recomputed (links out of range or to
 * absent nodes, self and repeated links, over-long lists, levels beyond the
 * limit, a wrong entry point, bad counters, stray tombstones, trailing
 * bytes). Random structural noise behind a valid checksum must either be
 * rejected or yield a graph that passes hnsw_check.
 */
#include "t.h"

#include <xxhash.h>

#include "index/hnsw/hnsw.h"

#define DIM 8
#define M 4
#define K 10

static float vec_val(uint32_t n, size_t j) {
    uint64_t s = n * 1000003ull + j;
    return t_randf(&s) + (float)(n % 7); /* a few loose clusters */
}

static hnsw *make(uint32_t cap, uint32_t m) {
    hnsw_config cfg = {.metric = FLAT_L2, .dim = DIM, .m = m, .ef_construction = 40, .seed = 11};
    hnsw *h;
    T_ASSERT_OK(hnsw_new(&cfg, &h));
    T_ASSERT_OK(hnsw_reserve(h, cap));
    for (uint32_t n = 0; n < cap; n++)
        for (size_t j = 0; j < DIM; j++) hnsw_vector(h, n)[j] = vec_val(n, j);
    return h;
}

/* Insert every node but a few gaps (absent nodes inside the id range); delete some. */
static hnsw *build(uint32_t n) {
    hnsw *h = make(n, M);
    for (uint32_t i = 0; i < n; i++)
        if (i % 13 != 5) T_ASSERT_OK(hnsw_insert(h, i));
    for (uint32_t i = 0; i < n; i += 9)
        if (hnsw_contains(h, i)) hnsw_delete(h, i);
    return h;
}

static void check(const hnsw *h) {
    char msg[256];
    if (hnsw_check(h, msg, sizeof msg)) T_FAIL("hnsw_check: %s", msg);
}

static void ser(const hnsw *h, uint8_t **b, size_t *len) {
    T_ASSERT_OK(hnsw_serialize(h, b, len));
    T_ASSERT(*b && *len > 0);
}

static void reseal(uint8_t *b, size_t len) {
    uint64_t x = XXH3_64bits(b, len - 8);
    for (int i = 0; i < 8; i++) b[len - 8 + i] = (uint8_t)(x >> (8 * i));
}

static int odd_only(void *ctx, uint32_t row) {
    (void)ctx;
    return row & 1;
}

static void assert_empty(const hnsw *h) {
    T_ASSERT_EQ(hnsw_size(h), 0);
    T_ASSERT_EQ(hnsw_deleted_count(h), 0);
    topk_hit out[K];
    float q[DIM] = {0};
    T_ASSERT_EQ(hnsw_search(h, q, K, 10, NULL, NULL, out), 0);
    check(h);
}

static void same_results(const hnsw *a, const hnsw *b) {
    for (uint32_t i = 0; i < 50; i++) {
        float q[DIM];
        for (size_t j = 0; j < DIM; j++) q[j] = vec_val(i * 31 + 7, j) + 0.1f;
        for (int f = 0; f < 2; f++) {
            topk_hit ha[K], hb[K];
            size_t na = hnsw_search(a, q, K, 20, f ? odd_only : NULL, NULL, ha);
            size_t nb = hnsw_search(b, q, K, 20, f ? odd_only : NULL, NULL, hb);
            T_ASSERT_EQ(na, nb);
            T_ASSERT(na > 0);
            for (size_t j = 0; j < na; j++) {
                T_ASSERT_EQ(ha[j].row, hb[j].row);
                T_ASSERT(ha[j].dist == hb[j].dist);
            }
        }
    }
}

static void test_round_trip(void) {
    enum { n = 3000 };
    hnsw *h = build(n);
    check(h);
    uint8_t *b;
    size_t len;
    ser(h, &b, &len);

    hnsw *g = make(n, M);
    T_ASSERT_OK(hnsw_deserialize(g, b, len, n));
    check(g);
    T_ASSERT_EQ(hnsw_size(g), hnsw_size(h));
    T_ASSERT_EQ(hnsw_deleted_count(g), hnsw_deleted_count(h));
    for (uint32_t i = 0; i < n; i++) {
        T_ASSERT_EQ(hnsw_contains(g, i), hnsw_contains(h, i));
        T_ASSERT_EQ(hnsw_is_deleted(g, i), hnsw_is_deleted(h, i));
    }
    same_results(h, g);
    uint8_t *b2;
    size_t len2;
    ser(g, &b2, &len2);
    T_ASSERT(len2 == len && memcmp(b, b2, len) == 0);
    free(b2);

    /* deterministic single-thread build */
    hnsw *h2 = build(n);
    ser(h2, &b2, &len2);
    T_ASSERT(len2 == len && memcmp(b, b2, len) == 0);
    free(b2);
    hnsw_free(h2);

    /* the loaded graph keeps working: insert more, search */
    T_ASSERT(!hnsw_contains(g, 5));
    T_ASSERT_OK(hnsw_insert(g, 5));
    check(g);

    /* into a larger index (more capacity than nodes), with nodes > graph */
    hnsw *big = make(n + 100, M);
    T_ASSERT_OK(hnsw_deserialize(big, b, len, n + 50));
    check(big);
    same_results(h, big);
    /* the host has fewer nodes than the graph references */
    T_ASSERT_RC(hnsw_deserialize(big, b, len, n - 1), QUARRY_CORRUPT);
    assert_empty(big);
    /* more nodes than capacity: the caller's mistake */
    T_ASSERT_RC(hnsw_deserialize(big, b, len, n + 101), QUARRY_INVALID);
    assert_empty(big);
    /* a different config */
    hnsw *other = make(n, M + 1);
    T_ASSERT_RC(hnsw_deserialize(other, b, len, n), QUARRY_CORRUPT);
    assert_empty(other);

    /* an empty graph round-trips too */
    hnsw *e = make(10, M);
    uint8_t *eb;
    size_t elen;
    ser(e, &eb, &elen);
    T_ASSERT_OK(hnsw_deserialize(big, eb, elen, 0));
    assert_empty(big);
    free(eb);
    hnsw_free(e);
    hnsw_free(big);
    hnsw_free(other);
    hnsw_free(g);
    hnsw_free(h);
    free(b);
}

/* Every prefix, and flips: all must be rejected; the index ends up empty and usable. */
static void test_damage(void) {
    enum { n = 300 };
    hnsw *h = build(n);
    uint8_t *b;
    size_t len;
    ser(h, &b, &len);
    hnsw *g = make(n, M);
    uint8_t *c = malloc(len);
    T_ASSERT(c);

    for (size_t l = 0; l < len; l++) {
        memcpy(c, b, l);
        T_ASSERT_RC(hnsw_deserialize(g, c, l, n), QUARRY_CORRUPT);
    }
    assert_empty(g);
    T_ASSERT_RC(hnsw_deserialize(g, NULL, 0, n), QUARRY_CORRUPT);

    /* single-bit flips: every bit of the first 64 and last 16 bytes, then
     * every 7th bit elsewhere */
    uint64_t flips = 0;
    for (size_t bit = 0; bit < len * 8; bit++) {
        size_t byte = bit / 8;
        if (byte >= 64 && byte + 16 < len && bit % 7) continue;
        memcpy(c, b, len);
        c[byte] ^= (uint8_t)(1u << (bit % 8));
        T_ASSERT_RC(hnsw_deserialize(g, c, len, n), QUARRY_CORRUPT);
        flips++;
    }
    assert_empty(g);
    fprintf(stderr, "%zu truncations, %llu bit flips rejected (%zu-byte graph)\n", len,
            (unsigned long long)flips, len);

    /* trailing garbage, with and without a fixed checksum */
    uint8_t *t = malloc(len + 4);
    T_ASSERT(t);
    memcpy(t, b, len);
    memset(t + len, 0, 4);
    T_ASSERT_RC(hnsw_deserialize(g, t, len + 4, n), QUARRY_CORRUPT);
    reseal(t, len + 4);
    T_ASSERT_RC(hnsw_deserialize(g, t, len + 4, n), QUARRY_CORRUPT);
    free(t);

    /* random buffers */
    uint64_t s = 5;
    for (int i = 0; i < 3000; i++) {
        size_t l = t_rand(&s) % (len + 1);
        for (size_t j = 0; j < l; j++) c[j] = (uint8_t)t_rand(&s);
        if (i % 2 && l >= 56) { /* a plausible header: real magic, version, config */
            memcpy(c, b, 20);
            if (i % 4 == 1) reseal(c, l);
        }
        T_ASSERT_RC(hnsw_deserialize(g, c, l, n), QUARRY_CORRUPT);
    }
    assert_empty(g);

    /* still usable after all that */
    T_ASSERT_OK(hnsw_deserialize(g, b, len, n));
    check(g);
    same_results(h, g);
    free(c);
    free(b);
    hnsw_free(g);
    hnsw_free(h);
}

/* A hand-made, checksum-valid graph: 3 nodes, levels {1, 0, 0}. */
typedef struct wbuf {
    uint8_t b[512];
    size_t n;
} wbuf;

static void w32(wbuf *w, uint32_t v) {
    for (int i = 0; i < 4; i++) w->b[w->n++] = (uint8_t)(v >> (8 * i));
}
static void w64(wbuf *w, uint64_t v) {
    w32(w, (uint32_t)v);
    w32(w, (uint32_t)(v >> 32));
}

typedef struct spec {
    uint32_t magic, version, dim, m, metric, nodes, entry, top;
    uint64_t count, ndead;
    uint8_t lv[3];
    uint32_t l0[3][4]; /* count, links... */
    uint32_t l1[4];    /* node 0's level-1 list */
    uint64_t dead;
    int extra; /* trailing bytes before the checksum */
} spec;

static spec good_spec(void) {
    spec s = {.magic = 0x574E4851u, .version = 1, .dim = DIM, .m = M, .metric = FLAT_L2,
              .nodes = 3, .entry = 0, .top = 1, .count = 3, .ndead = 1,
              .lv = {1, 0, 0},
              .l0 = {{2, 1, 2}, {1, 0}, {2, 0, 1}},
              .l1 = {0},
              .dead = 2};
    return s;
}

static size_t encode(const spec *s, wbuf *w) {
    w->n = 0;
    w32(w, s->magic), w32(w, s->version), w32(w, s->dim), w32(w, s->m), w32(w, s->metric);
    w32(w, s->nodes), w32(w, s->entry), w32(w, s->top), w64(w, s->count), w64(w, s->ndead);
    for (int n = 0; n < 3; n++) {
        w->b[w->n++] = s->lv[n];
        if (s->lv[n] == 0xff) continue;
        for (int l = 0; l <= s->lv[n] && l <= 1; l++) {
            const uint32_t *ll = l == 0 ? s->l0[n] : s->l1;
            uint32_t cnt = ll[0] > 3 ? 3 : ll[0];
            w32(w, ll[0]);
            for (uint32_t j = 0; j < cnt; j++) w32(w, ll[1 + j]);
        }
    }
    w64(w, s->dead);
    for (int i = 0; i < s->extra; i++) w->b[w->n++] = 0;
    w64(w, 0);
    reseal(w->b, w->n);
    return w->n;
}

static void test_structural(void) {
    hnsw *g = make(3, M);
    wbuf w;
    spec s = good_spec();
    T_ASSERT_OK(hnsw_deserialize(g, w.b, encode(&s, &w), 3));
    check(g);
    T_ASSERT_EQ(hnsw_size(g), 3);
    T_ASSERT(hnsw_is_deleted(g, 1));

#define BAD(stmt)                                                                  \
    do {                                                                           \
        s = good_spec();                                                           \
        stmt;                                                                      \
        T_ASSERT_RC(hnsw_deserialize(g, w.b, encode(&s, &w), 3), QUARRY_CORRUPT);  \
        assert_empty(g);                                                           \
    } while (0)
    BAD(s.magic ^= 1);
    BAD(s.version = 2);
    BAD(s.dim = DIM + 1);
    BAD(s.m = M * 2);
    BAD(s.metric = FLAT_IP);
    BAD(s.nodes = 4);          /* more than the host's 3 */
    BAD(s.nodes = 2);          /* body does not match */
    BAD(s.entry = 1);          /* not on the top level */
    BAD(s.entry = 3);          /* out of range */
    BAD(s.entry = UINT32_MAX); /* non-empty graph without an entry */
    BAD(s.top = 0);
    BAD(s.top = 2);
    BAD(s.top = 40);
    BAD(s.count = 2);
    BAD(s.count = 4);
    BAD(s.ndead = 0);
    BAD(s.ndead = 4);
    BAD(s.l0[1][1] = 3);          /* link out of range */
    BAD(s.l0[1][1] = 0xffffffffu);
    BAD(s.l0[1][1] = 1);          /* self link */
    BAD((s.l0[0][0] = 2, s.l0[0][1] = 2, s.l0[0][2] = 2)); /* repeated link */
    BAD(s.l0[0][0] = 9);          /* longer than 2m, and than the buffer */
    BAD(s.l0[0][0] = 0x40000000u);
    BAD(s.l1[0] = 1);             /* level-1 self link (l1[1] is 0) */
    BAD((s.l1[0] = 1, s.l1[1] = 1)); /* level-1 link to a level-0 node */
    BAD(s.lv[0] = 33);
    BAD(s.lv[0] = 0xfe);
    BAD((s.lv[1] = 0xff, s.l0[0][0] = 1, s.l0[0][1] = 2, s.l0[2][0] = 1, s.l0[2][1] = 0,
         s.count = 2)); /* tombstone on an absent node */
    BAD((s.lv[2] = 0xff, s.count = 2)); /* links to an absent node */
    BAD(s.dead = 1ull << 5);            /* tombstone beyond the node range */
    BAD(s.extra = 4);
#undef BAD
    /* an absent node is fine when nothing points at it */
    s = good_spec();
    s.lv[2] = 0xff;
    s.count = 2;
    s.l0[0][0] = 1;
    s.l0[1][0] = 1;
    T_ASSERT_OK(hnsw_deserialize(g, w.b, encode(&s, &w), 3));
    check(g);
    T_ASSERT(!hnsw_contains(g, 2));
    T_ASSERT_EQ(hnsw_size(g), 2);
    hnsw_free(g);
}

/* Random structure behind a valid checksum: rejected, or a valid graph. */
static void test_noise(void) {
    enum { n = 64 };
    hnsw *h = build(n);
    uint8_t *b;
    size_t len;
    ser(h, &b, &len);
    hnsw *g = make(n, M);
    uint8_t *c = malloc(len);
    T_ASSERT(c);
    uint64_t s = 17;
    size_t ok = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(c, b, len);
        int edits = 1 + (int)(t_rand(&s) % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = 20 + t_rand(&s) % (len - 28); /* keep magic and config */
            uint32_t r = (uint32_t)t_rand(&s);
            switch (r % 4) {
            case 0: c[at] ^= (uint8_t)(1u << (r >> 8) % 8); break;
            case 1: c[at] = (uint8_t)(r >> 8); break;
            case 2: c[at] = (uint8_t)((r >> 8) % (n + 2)); break; /* plausible ids */
            default: c[at] = (uint8_t)((r >> 8) % 3); break;       /* small counts, levels */
            }
        }
        reseal(c, len);
        int rc = hnsw_deserialize(g, c, len, n);
        if (rc == 0) {
            check(g);
            ok++;
        } else {
            T_ASSERT_RC(rc, QUARRY_CORRUPT);
            assert_empty(g);
        }
    }
    fprintf(stderr, "noise: %zu of 20000 resealed mutations still valid graphs\n", ok);
    free(c);
    free(b);
    hnsw_free(g);
    hnsw_free(h);
}

int main(void) {
    test_round_trip();
    test_damage();
    test_structural();
    test_noise();
    return 0;
}
