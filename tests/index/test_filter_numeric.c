/* SPDX-License-Identifier: MIT */
/*
 * test_filter_numeric.c -- the blocked (value, row) index behind numeric
 * ranges, and the sorted string values behind string ranges, against a brute
 * force scan, under the insertion patterns that stress the block splitting:
 * increasing values (timestamps appended in row order), decreasing values
 * (every insert at the front), random values, five distinct values over
 * 60k rows (one value spans many blocks), and churn (random removals and
 * re-adds with new values, down to an empty index and back).
 *
 * After every phase the internal invariants are checked (white box): blocks
 * non-empty and within NB_MAX / SB_MAX, entries sorted across blocks, each
 * block's bitmap exactly its rows, the field's rows bitmap and row -> value
 * column equal to the pairs, empty column pages freed. Then NQ random ranges
 * with every bound combination (narrow and wide: more than half the pairs is
 * answered through the complement), and point lookups (eq, in), must equal
 * the brute force result.
 */
#include "t.h"

#include <jansson.h>
#include <math.h>

#include "index/filter/filter_int.h"

#define N  60000
#define NQ 160

static uint64_t g_seed = 42;
static uint32_t rnd(uint32_t n) { return (uint32_t)(t_rand(&g_seed) % n); }

static double g_val[N];
static char g_str[N][8];
static int g_has[N];

static void check_invariants(const attr_index *ai) {
    const afield *f = attr_field(ai, filter_hash("v", 1), "v", 1);
    size_t live = 0;
    for (uint32_t r = 0; r < N; r++) live += (size_t)g_has[r];
    if (!f) {
        T_ASSERT_EQ(live, 0);
        return;
    }
    const numidx *x = &f->num;
    size_t count = 0;
    for (size_t b = 0; b < x->nb; b++) {
        const nblock *blk = &x->b[b];
        T_ASSERT(blk->n > 0 && blk->n <= NB_MAX && blk->n <= blk->cap);
        T_ASSERT_EQ(roaring_bitmap_get_cardinality(blk->bm), blk->n);
        for (uint32_t i = 0; i < blk->n; i++) {
            T_ASSERT(roaring_bitmap_contains(blk->bm, blk->r[i]));
            T_ASSERT(g_has[blk->r[i]] && g_val[blk->r[i]] == blk->v[i]);
            const double *pv = i ? &blk->v[i - 1] : b ? &x->b[b - 1].v[x->b[b - 1].n - 1] : NULL;
            const uint32_t *pr = i ? &blk->r[i - 1] : b ? &x->b[b - 1].r[x->b[b - 1].n - 1] : NULL;
            if (pv) T_ASSERT(*pv < blk->v[i] || (*pv == blk->v[i] && *pr < blk->r[i]));
        }
        count += blk->n;
    }
    T_ASSERT_EQ(count, live);
    T_ASSERT_EQ(x->count, live);
    /* The rows bitmap and the row -> value column agree with the pairs. */
    T_ASSERT_EQ(x->rows ? roaring_bitmap_get_cardinality(x->rows) : 0, live);
    for (uint32_t r = 0; r < N; r++) {
        double v = num_value(x, r);
        if (g_has[r])
            T_ASSERT(v == g_val[r] && roaring_bitmap_contains(x->rows, r));
        else
            T_ASSERT(isnan(v) && (!x->rows || !roaring_bitmap_contains(x->rows, r)));
    }
    for (size_t p = 0; p < x->npages; p++)
        T_ASSERT((x->pages[p] == NULL) == (x->page_count[p] == 0));
    /* String values (field s): sorted, unique, each with a non-empty bitmap. */
    f = attr_field(ai, filter_hash("s", 1), "s", 1);
    T_ASSERT(f);
    const sdict *d = &f->sorted;
    const svalue *prev = NULL;
    size_t nvals = 0;
    for (size_t b = 0; b < d->nb; b++) {
        T_ASSERT(d->b[b].n > 0 && d->b[b].n <= SB_MAX);
        for (uint32_t i = 0; i < d->b[b].n; i++) {
            const svalue *sv = d->b[b].v[i];
            T_ASSERT(!roaring_bitmap_is_empty(sv->bm));
            if (prev) T_ASSERT(filter_strcmp(prev->h.s, prev->h.len, sv->h.s, sv->h.len) < 0);
            T_ASSERT(afield_str(f, sv->h.hash, sv->h.s, sv->h.len) == sv);
            prev = sv;
            nvals++;
        }
    }
    T_ASSERT_EQ(nvals, f->strs.n);
}

static json_t *meta_of(uint32_t r) { return json_pack("{s:f,s:s}", "v", g_val[r], "s", g_str[r]); }

static void add(attr_index *ai, uint32_t r, double v) {
    g_val[r] = v;
    uint32_t len = 1 + rnd(3);
    for (uint32_t i = 0; i < len; i++) g_str[r][i] = (char)('a' + rnd(8));
    g_str[r][len] = 0;
    json_t *m = meta_of(r);
    T_ASSERT_OK(attr_index_add(ai, r, m));
    json_decref(m);
    g_has[r] = 1;
}

static void del(attr_index *ai, uint32_t r) {
    json_t *m = meta_of(r);
    T_ASSERT_OK(attr_index_remove(ai, r, m));
    json_decref(m);
    g_has[r] = 0;
}

static double pick_value(void) {
    for (int tries = 0; tries < 100; tries++) {
        uint32_t r = rnd(N);
        if (g_has[r]) return g_val[r];
    }
    return 0;
}

/* A bound: an existing value (so bounds land on duplicates), or any. */
static double pick_bound(double lo, double hi) {
    if (rnd(2)) return pick_value();
    return lo + (hi - lo) * (double)rnd(1000001) / 1e6;
}

static int in_bounds(int c_lo, int c_hi, int kl, int kh) {
    /* c_lo = value <=> lower bound, c_hi = value <=> upper bound */
    if (kl == 1 && c_lo <= 0) return 0;
    if (kl == 2 && c_lo < 0) return 0;
    if (kh == 1 && c_hi >= 0) return 0;
    if (kh == 2 && c_hi > 0) return 0;
    return 1;
}

static int dcmp(double x, double y) { return x < y ? -1 : x > y; }

/* NQ random queries; the expected rows come from a scan of g_val / g_str. */
static void check_queries(const attr_index *ai, const roaring_bitmap_t *u, double lo, double hi,
                          const char *phase) {
    static const char *const LO[] = {"", "gt", "gte"}, *const HI[] = {"", "lt", "lte"};
    char text[512];
    size_t total = 0;
    for (int q = 0; q < NQ; q++) {
        int kl = (int)rnd(3), kh = (int)rnd(3), str = rnd(4) == 0, point = q % 5 == 0;
        if (!kl && !kh) kl = 1 + (int)rnd(2);
        double a = pick_bound(lo, hi), b = pick_bound(lo, hi), p[3];
        if (rnd(4) && a > b) {
            double t = a;
            a = b;
            b = t;
        }
        char sa[4] = {(char)('a' + rnd(9)), 0, 0, 0}, sb[4] = {(char)('a' + rnd(9)), 0, 0, 0};
        if (rnd(2)) sa[1] = (char)('a' + rnd(9));
        size_t n;
        if (point) {
            for (int i = 0; i < 3; i++) p[i] = pick_value();
            if (q % 10) p[1] = p[2] = p[0];
            n = (size_t)snprintf(text, sizeof text,
                                 "{\"in\":{\"field\":\"v\",\"values\":[%.17g,%.17g,%.17g]}}", p[0],
                                 p[1], p[2]);
        } else {
            n = (size_t)snprintf(text, sizeof text, "{\"range\":{\"field\":\"%s\"",
                                 str ? "s" : "v");
            if (kl && str)
                n += (size_t)snprintf(text + n, sizeof text - n, ",\"%s\":\"%s\"", LO[kl], sa);
            else if (kl)
                n += (size_t)snprintf(text + n, sizeof text - n, ",\"%s\":%.17g", LO[kl], a);
            if (kh && str)
                n += (size_t)snprintf(text + n, sizeof text - n, ",\"%s\":\"%s\"", HI[kh], sb);
            else if (kh)
                n += (size_t)snprintf(text + n, sizeof text - n, ",\"%s\":%.17g", HI[kh], b);
            n += (size_t)snprintf(text + n, sizeof text - n, "}}");
        }
        filter_expr *e;
        if (filter_compile(text, n, &e)) T_FAIL("%s: %s", text, quarry_errmsg());
        roaring_bitmap_t *got, *want = roaring_bitmap_create();
        T_ASSERT_OK(filter_eval(e, ai, u, &got));
        for (uint32_t r = 0; r < N; r++) {
            if (!g_has[r]) continue;
            double v = g_val[r];
            int ok;
            if (point)
                ok = v == p[0] || v == p[1] || v == p[2];
            else if (str)
                ok = in_bounds(strcmp(g_str[r], sa), strcmp(g_str[r], sb), kl, kh);
            else
                ok = in_bounds(dcmp(v, a), dcmp(v, b), kl, kh);
            if (ok) roaring_bitmap_add(want, r);
        }
        if (!roaring_bitmap_equals(got, want))
            T_FAIL("%s, %s: eval has %llu rows, brute force %llu", phase, text,
                   (unsigned long long)roaring_bitmap_get_cardinality(got),
                   (unsigned long long)roaring_bitmap_get_cardinality(want));
        total += roaring_bitmap_get_cardinality(got);
        roaring_bitmap_free(got);
        roaring_bitmap_free(want);
        filter_expr_free(e);
    }
    const afield *f = attr_field(ai, filter_hash("v", 1), "v", 1);
    const afield *fs = attr_field(ai, filter_hash("s", 1), "s", 1);
    printf("%-28s %4zu blocks, %3zu string values, %d queries agree (%zu rows matched)\n", phase,
           f ? f->num.nb : 0, fs ? fs->strs.n : 0, NQ, total);
}

static void run(const char *phase, int pattern) {
    attr_index *ai;
    T_ASSERT_OK(attr_index_new(&ai));
    memset(g_has, 0, sizeof g_has);
    roaring_bitmap_t *u = roaring_bitmap_from_range(0, N, 1);
    for (uint32_t r = 0; r < N; r++) {
        double v;
        switch (pattern) {
        case 0:
            v = 1.7e12 + (double)r * 1000;
            break; /* increasing */
        case 1:
            v = 1e6 - (double)r * 0.5;
            break; /* decreasing */
        case 2:
            v = ((double)rnd(2000001) - 1e6) / 3.0;
            break; /* random */
        default:
            v = (double)rnd(5) - 2;
            break; /* five values */
        }
        add(ai, r, v);
    }
    double lo = pattern == 0 ? 1.7e12 : pattern == 1 ? 1e6 - N * 0.5 : pattern == 2 ? -4e5 : -3;
    double hi = pattern == 0 ? 1.7e12 + N * 1000.0 : pattern == 1 ? 1e6 : pattern == 2 ? 4e5 : 3;
    check_invariants(ai);
    if (pattern == 0) { /* appended in order: blocks are full */
        const afield *f = attr_field(ai, filter_hash("v", 1), "v", 1);
        T_ASSERT_EQ(f->num.nb, (N + NB_MAX - 1) / NB_MAX);
    }
    check_queries(ai, u, lo, hi, phase);
    attr_index_free(ai);
    roaring_bitmap_free(u);
}

int main(void) {
    run("increasing (timestamps)", 0);
    run("decreasing", 1);
    run("random", 2);
    run("five distinct values", 3);

    /* Churn: random removals and re-adds with new values, to empty and back. */
    attr_index *ai;
    T_ASSERT_OK(attr_index_new(&ai));
    memset(g_has, 0, sizeof g_has);
    roaring_bitmap_t *u = roaring_bitmap_create();
    size_t empty_bytes = attr_index_memory(ai);
    for (int round = 0; round < 6; round++) {
        for (uint32_t k = 0; k < N; k++) {
            uint32_t r = rnd(N);
            if (g_has[r] && rnd(3)) {
                del(ai, r);
                roaring_bitmap_remove(u, r);
            } else if (!g_has[r]) {
                add(ai, r, (double)rnd(20000) - 10000 + (rnd(2) ? 0.5 : 0));
                roaring_bitmap_add(u, r);
            }
        }
        check_invariants(ai);
    }
    check_queries(ai, u, -10000, 10000, "churn");
    for (uint32_t r = 0; r < N; r++)
        if (g_has[r] && rnd(10)) {
            del(ai, r);
            roaring_bitmap_remove(u, r);
        }
    check_invariants(ai);
    check_queries(ai, u, -10000, 10000, "churn, nine tenths removed");
    for (uint32_t r = 0; r < N; r++)
        if (g_has[r]) del(ai, r);
    roaring_bitmap_clear(u);
    check_invariants(ai);
    const afield *f = attr_field(ai, filter_hash("v", 1), "v", 1);
    T_ASSERT_EQ(f->num.nb, 0);
    f = attr_field(ai, filter_hash("s", 1), "s", 1);
    T_ASSERT_EQ(f->sorted.nb, 0);
    T_ASSERT_EQ(f->strs.n, 0);
    printf("emptied: %zu bytes (%zu when new)\n", attr_index_memory(ai), empty_bytes);
    for (uint32_t r = 0; r < N / 2; r++) {
        add(ai, r, (double)(r % 1000));
        roaring_bitmap_add(u, r);
    }
    check_invariants(ai);
    check_queries(ai, u, 0, 1000, "refilled");
    roaring_bitmap_free(u);
    attr_index_free(ai);
    return 0;
}
