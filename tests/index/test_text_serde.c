/* SPDX-License-Identifier: MIT */
/*
 * test_text_serde.c -- BM25 index serialisation, and hostile input.
 *
 * Round trip: an index with sealed blocks, tails, positions, CJK terms,
 * deletions and row gaps is serialised and read into a fresh index: the
 * invariants hold, every query (OR, AND, phrases, filtered) returns the same
 * rows and bit-identical scores, and re-serialising gives the same bytes;
 * both indexes then take the same further appends and deletes and still
 * serialise identically (the restored tails and streams grow correctly).
 * An analyzer with another fingerprint, or positions on one side only, is
 * QUARRY_MISMATCH.
 *
 * Hostile bytes must give QUARRY_CORRUPT, leave the index empty and usable,
 * and never crash (the test also runs under ASan/UBSan): every truncation,
 * every single-bit flip of a small index (sampled on a larger one), random
 * buffers, and -- since a checksum only stops accidents -- random structural
 * damage behind a recomputed checksum, which must either be rejected or
 * yield an index that passes bm25_check and answers queries.
 */
#include "t.h"

#include <xxhash.h>

#include "common/qcommon.h"
#include "index/text/text.h"

static const char *words[] = {"alpha",  "beta",   "gamma", "delta",   "epsilon", "zeta",
                              "eta",    "theta",  "iota",  "kappa",   "lambda",  "mu",
                              "東京都", "한국어", "café",  "running", "runner",  "the"};
#define NW (sizeof words / sizeof words[0])

static bm25 *build(uint32_t nrows, int positions, uint64_t seed) {
    bm25_config cfg;
    bm25_config_default(&cfg);
    cfg.no_positions = !positions;
    bm25 *x;
    T_ASSERT_OK(bm25_new(&cfg, &x));
    uint64_t s = seed;
    char buf[2048];
    for (uint32_t r = 0; r < nrows; r++) {
        if (r % 17 == 3) continue; /* gaps */
        size_t o = 0;
        uint32_t n = 1 + (uint32_t)(t_rand(&s) % 30);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t w = (uint32_t)(t_rand(&s) % NW);
            if (t_rand(&s) % 2) w = w % 4; /* frequent words: several blocks */
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s ", words[w]);
        }
        if (r % 23 == 5) o = (size_t)snprintf(buf, sizeof buf, "!!!"); /* no terms */
        T_ASSERT_OK(bm25_add(x, r, buf, o));
    }
    for (uint32_t r = 0; r < nrows; r += 7) bm25_delete(x, r);
    return x;
}

static void check(const bm25 *x) {
    char msg[256];
    if (bm25_check(x, msg, sizeof msg)) T_FAIL("bm25_check: %s", msg);
}

static void ser(const bm25 *x, uint8_t **b, size_t *n) { T_ASSERT_OK(bm25_serialize(x, b, n)); }

static int odd(void *ctx, uint32_t row) { return (row & 1) != 0; }

static const char *queries[] = {
    "alpha beta",  "alpha alpha kappa", "\"alpha beta\"", "\"beta gamma delta\" mu",
    "東京 한국",   "cafe runs",         "iota",           "zeta \"the alpha\"",
    "nothing here"};

static void same_results(const bm25 *a, const bm25 *b) {
    for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++)
        for (int mode = 0; mode < 2; mode++)
            for (int f = 0; f < 2; f++) {
                topk_hit ha[50], hb[50];
                size_t na, nb;
                bm25_search_params p = {.k = 50, .mode = mode, .accept = f ? odd : NULL};
                const char *q = queries[qi];
                T_ASSERT_OK(bm25_search(a, q, strlen(q), &p, ha, &na));
                T_ASSERT_OK(bm25_search(b, q, strlen(q), &p, hb, &nb));
                T_ASSERT_EQ(na, nb);
                for (size_t i = 0; i < na; i++) {
                    T_ASSERT_EQ(ha[i].row, hb[i].row);
                    T_ASSERT(memcmp(&ha[i].dist, &hb[i].dist, sizeof(float)) == 0);
                }
            }
}

static void assert_empty(bm25 *x) {
    bm25_info info;
    bm25_get_info(x, &info);
    T_ASSERT_EQ(info.live_docs, 0);
    T_ASSERT_EQ(info.terms, 0);
    T_ASSERT_EQ(info.next_row, 0);
    check(x);
}

static bm25 *fresh(int positions) {
    bm25_config cfg;
    bm25_config_default(&cfg);
    cfg.no_positions = !positions;
    bm25 *x;
    T_ASSERT_OK(bm25_new(&cfg, &x));
    return x;
}

static void fix_checksum(uint8_t *b, size_t n) { put_u64(b + n - 8, XXH3_64bits(b, n - 8)); }

/* Damaged bytes: rejected with CORRUPT (index left empty), or accepted and sound. */
static int try_bytes(bm25 *y, const uint8_t *b, size_t n, int must_fail) {
    int rc = bm25_deserialize(y, b, n);
    if (rc) {
        /* a damaged fingerprint or flags field reads as another configuration */
        if (must_fail || (rc & 0xff) != QUARRY_MISMATCH) T_ASSERT_RC(rc, QUARRY_CORRUPT);
        assert_empty(y);
        return 0;
    }
    if (must_fail) T_FAIL("damaged bytes accepted");
    check(y);
    topk_hit h[10];
    size_t k;
    bm25_search_params p = {.k = 10};
    for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++)
        T_ASSERT_OK(bm25_search(y, queries[qi], strlen(queries[qi]), &p, h, &k));
    return 1;
}

static void round_trip(uint32_t nrows, int positions) {
    bm25 *x = build(nrows, positions, nrows);
    check(x);
    uint8_t *b, *b2;
    size_t n, n2;
    ser(x, &b, &n);
    bm25 *y = fresh(positions);
    T_ASSERT_OK(bm25_deserialize(y, b, n));
    check(y);
    same_results(x, y);
    ser(y, &b2, &n2);
    T_ASSERT(n == n2 && memcmp(b, b2, n) == 0);
    q_free(b2);
    /* same further history on both */
    char buf[256];
    for (uint32_t r = nrows; r < nrows + 300; r++) {
        size_t o =
            (size_t)snprintf(buf, sizeof buf, "%s %s beta", words[r % NW], words[(r * 7) % NW]);
        T_ASSERT_OK(bm25_add(x, r, buf, o));
        T_ASSERT_OK(bm25_add(y, r, buf, o));
        if (r % 5 == 0) {
            T_ASSERT_EQ(bm25_delete(x, r - 100), bm25_delete(y, r - 100));
        }
    }
    check(x);
    check(y);
    same_results(x, y);
    q_free(b);
    ser(x, &b, &n);
    ser(y, &b2, &n2);
    T_ASSERT(n == n2 && memcmp(b, b2, n) == 0);
    q_free(b2);
    q_free(b);
    bm25_free(x);
    bm25_free(y);
}

int main(void) {
    round_trip(1500, 1);
    round_trip(1500, 0);
    round_trip(0, 1);

    /* mismatches */
    {
        bm25 *x = build(50, 1, 1);
        uint8_t *b;
        size_t n;
        ser(x, &b, &n);
        bm25_config cfg;
        bm25_config_default(&cfg);
        cfg.analyzer.language = "none";
        bm25 *y;
        T_ASSERT_OK(bm25_new(&cfg, &y));
        T_ASSERT_RC(bm25_deserialize(y, b, n), QUARRY_MISMATCH);
        assert_empty(y);
        bm25_free(y);
        y = fresh(0);
        T_ASSERT_RC(bm25_deserialize(y, b, n), QUARRY_MISMATCH);
        bm25_free(y);
        q_free(b);
        bm25_free(x);
    }

    /* hostile: small index, exhaustive truncations and bit flips */
    {
        bm25 *x = build(40, 1, 7);
        uint8_t *b;
        size_t n;
        ser(x, &b, &n);
        bm25 *y = fresh(1);
        uint8_t *c = malloc(n);
        for (size_t len = 0; len < n; len++) {
            memcpy(c, b, len);
            T_ASSERT_RC(bm25_deserialize(y, c, len), QUARRY_CORRUPT);
            assert_empty(y);
        }
        for (size_t i = 0; i < n; i++)
            for (int bit = 0; bit < 8; bit++) {
                memcpy(c, b, n);
                c[i] ^= (uint8_t)(1u << bit);
                try_bytes(y, c, n, 1);
            }
        /* structural damage behind a valid checksum */
        uint64_t s = 99;
        int accepted = 0;
        for (int iter = 0; iter < 20000; iter++) {
            memcpy(c, b, n);
            int k = 1 + (int)(t_rand(&s) % 3);
            for (int j = 0; j < k; j++) {
                size_t at = (size_t)(t_rand(&s) % (n - 8));
                if (t_rand(&s) % 2)
                    c[at] ^= (uint8_t)(1u << (t_rand(&s) % 8));
                else
                    c[at] = (uint8_t)t_rand(&s);
            }
            fix_checksum(c, n);
            accepted += try_bytes(y, c, n, 0);
        }
        /* targeted: huge counts, a deletion on a row without terms, trailing bytes */
        memcpy(c, b, n);
        put_u32(c + 20, UINT32_MAX - 1);
        fix_checksum(c, n);
        T_ASSERT_RC(bm25_deserialize(y, c, n), QUARRY_CORRUPT);
        memcpy(c, b, n);
        put_u32(c + 24, 0x7fffffff);
        fix_checksum(c, n);
        T_ASSERT_RC(bm25_deserialize(y, c, n), QUARRY_CORRUPT);
        memcpy(c, b, n);
        put_u64(c + 32, get_u64(c + 32) + 1);
        fix_checksum(c, n);
        T_ASSERT_RC(bm25_deserialize(y, c, n), QUARRY_CORRUPT);
        {
            uint8_t *d = malloc(n + 1);
            memcpy(d, b, n - 8);
            d[n - 8] = 0;
            fix_checksum(d, n + 1);
            T_ASSERT_RC(bm25_deserialize(y, d, n + 1), QUARRY_CORRUPT);
            free(d);
        }
        /* still usable */
        T_ASSERT_OK(bm25_add(y, 0, "alpha", 5));
        check(y);
        printf("structural noise: %d of 20000 damaged buffers were still consistent\n", accepted);
        free(c);
        q_free(b);
        bm25_free(x);
        bm25_free(y);
    }

    /* hostile: larger index (sealed blocks), sampled flips, random buffers */
    {
        bm25 *x = build(3000, 1, 3);
        uint8_t *b;
        size_t n;
        ser(x, &b, &n);
        bm25 *y = fresh(1);
        uint8_t *c = malloc(n);
        uint64_t s = 5;
        for (int iter = 0; iter < 300; iter++) {
            memcpy(c, b, n);
            c[t_rand(&s) % n] ^= (uint8_t)(1u << (t_rand(&s) % 8));
            try_bytes(y, c, n, 1);
            size_t len = (size_t)(t_rand(&s) % n);
            T_ASSERT_RC(bm25_deserialize(y, b, len), QUARRY_CORRUPT);
        }
        for (int iter = 0; iter < 300; iter++) {
            memcpy(c, b, n);
            for (int j = 0; j < 4; j++) c[t_rand(&s) % (n - 8)] = (uint8_t)t_rand(&s);
            fix_checksum(c, n);
            try_bytes(y, c, n, 0);
        }
        for (int iter = 0; iter < 300; iter++) {
            size_t len = (size_t)(t_rand(&s) % 4096);
            for (size_t i = 0; i < len; i++) c[i] = (uint8_t)t_rand(&s);
            if (len >= 8 && iter % 2) {
                put_u32(c, 0x314D4251u); /* right magic, random rest */
                fix_checksum(c, len);
            }
            T_ASSERT_RC(bm25_deserialize(y, c, len), QUARRY_CORRUPT);
        }
        free(c);
        q_free(b);
        bm25_free(x);
        bm25_free(y);
    }
    return 0;
}
