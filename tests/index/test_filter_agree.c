/* SPDX-License-Identifier: MIT */
/*
 * test_filter_agree.c -- the two evaluators agree: for hundreds of generated
 * filters over a generated corpus, filter_eval's bitmap holds exactly the rows
 * of the universe for which filter_match says yes.
 *
 * Corpus: 20k rows with a keyword, a boolean, small integers (negatives,
 * duplicates), reals on a grid (negatives, -0.0, values equal to integers),
 * near-distinct timestamps, string arrays (empty ones, repeated elements),
 * short strings for byte-order ranges (the empty string, UTF-8), a field whose
 * type changes from row to row (null included), missing fields, empty objects
 * and rows without metadata. Filters: nested and/or/not, eq, in with mixed
 * types, ranges with every combination of bounds (numbers and strings),
 * exists and shorthand objects, with values drawn so that many match, and
 * selective equalities joined to (negated) ranges, which filter_eval answers
 * by probing the rows left instead of computing the range.
 *
 * Then the index changes under the same filters: a quarter of the rows
 * removed, then nine tenths (numeric blocks merge), then every removed row
 * re-added with new metadata (the same row numbers), and checked again.
 */
#include "t.h"

#include <jansson.h>
#include <stdarg.h>

#include "index/filter/filter.h"

#define NROWS        20000
#define NEXPR        200
#define NEXPR_UPDATE 24

static uint64_t g_seed = 0x5eed1234abcdULL;
static uint32_t rnd(uint32_t n) { return (uint32_t)(t_rand(&g_seed) % n); }

/* ---------------------------------------------------------------- corpus */

static double g_ts[NROWS]; /* some timestamps, so that eq hits */

static json_t *gen_meta(uint32_t row) {
    uint32_t p = rnd(100);
    if (p < 3) return NULL;
    json_t *o = json_object();
    if (p < 5) return o;
    char buf[64];
    if (rnd(100) < 80) {
        snprintf(buf, sizeof buf, "k%u", rnd(16));
        json_object_set_new(o, "kw", json_string(buf));
    }
    if (rnd(100) < 70) json_object_set_new(o, "flag", json_boolean(rnd(2)));
    if (rnd(100) < 85) json_object_set_new(o, "n", json_integer((json_int_t)rnd(41) - 20));
    if (rnd(100) < 85) {
        uint32_t q = rnd(100);
        double x = q < 2 ? -0.0 : ((double)rnd(801) - 400.0) / 8.0;
        json_object_set_new(o, "x", json_real(x));
    }
    if (rnd(100) < 90) {
        double ts = 1.7e12 + (double)rnd(1000000000);
        g_ts[row] = ts;
        json_object_set_new(o, "ts", rnd(2) ? json_integer((json_int_t)ts) : json_real(ts));
    }
    if (rnd(100) < 75) {
        json_t *a = json_array();
        uint32_t n = rnd(5);
        for (uint32_t i = 0; i < n; i++) {
            snprintf(buf, sizeof buf, "t%u", rnd(20));
            json_array_append_new(a, json_string(buf));
        }
        json_object_set_new(o, "tags", a);
    }
    if (rnd(100) < 80) {
        uint32_t len = rnd(4), q = rnd(100);
        if (q < 3) {
            snprintf(buf, sizeof buf, "\xc3\xa9t\xc3\xa9"); /* "été" */
        } else {
            for (uint32_t i = 0; i < len; i++) buf[i] = (char)('a' + rnd(6));
            buf[len] = 0;
        }
        json_object_set_new(o, "s", json_string(buf));
    }
    if (rnd(100) < 70) {
        json_t *v;
        switch (rnd(6)) {
        case 0:
            v = json_string("m3");
            break;
        case 1:
            v = json_integer(3);
            break;
        case 2:
            v = json_real(3.5);
            break;
        case 3:
            v = json_boolean(rnd(2));
            break;
        case 4:
            v = json_pack("[ss]", "m3", "m4");
            break;
        default:
            v = json_null();
            break;
        }
        json_object_set_new(o, "mixed", v);
    }
    return o;
}

/* ---------------------------------------------------------------- filters */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)k + 64;
        b->p = realloc(b->p, b->cap);
        T_ASSERT(b->p);
    }
}

static const char *const FIELDS[] = {"kw", "flag", "n", "x", "ts", "tags", "s", "mixed", "nope"};
#define NFIELDS (sizeof FIELDS / sizeof *FIELDS)

/* A value likely to match field f (or some other type on purpose). */
static void gen_value(sbuf *b, const char *f) {
    uint32_t q = rnd(100);
    if (q < 10) { /* any type */
        switch (rnd(5)) {
        case 0:
            sb_printf(b, "\"k%u\"", rnd(16));
            return;
        case 1:
            sb_printf(b, "%d", (int)rnd(41) - 20);
            return;
        case 2:
            sb_printf(b, "%s", rnd(2) ? "true" : "false");
            return;
        case 3:
            sb_printf(b, "\"t%u\"", rnd(20));
            return;
        default:
            sb_printf(b, "3");
            return;
        }
    }
    if (!strcmp(f, "kw"))
        sb_printf(b, "\"k%u\"", rnd(17));
    else if (!strcmp(f, "flag"))
        sb_printf(b, "%s", rnd(2) ? "true" : "false");
    else if (!strcmp(f, "n"))
        sb_printf(b, rnd(3) ? "%d" : "%d.0", (int)rnd(45) - 22);
    else if (!strcmp(f, "x")) {
        uint32_t k = rnd(3);
        if (k == 0)
            sb_printf(b, "%.17g", ((double)rnd(801) - 400.0) / 8.0);
        else if (k == 1)
            sb_printf(b, "%d", (int)rnd(101) - 50);
        else
            sb_printf(b, rnd(2) ? "0" : "-0.0");
    } else if (!strcmp(f, "ts")) {
        double ts = g_ts[rnd(NROWS)];
        sb_printf(b, "%.17g", ts ? ts : 1.7e12);
    } else if (!strcmp(f, "tags"))
        sb_printf(b, "\"t%u\"", rnd(21));
    else if (!strcmp(f, "s")) {
        char s[8];
        uint32_t len = rnd(4);
        for (uint32_t i = 0; i < len; i++) s[i] = (char)('a' + rnd(6));
        s[len] = 0;
        sb_printf(b, "\"%s\"", s);
    } else if (!strcmp(f, "mixed")) {
        const char *vals[] = {"\"m3\"", "\"m4\"", "3", "3.0", "3.5", "true", "false", "\"m5\""};
        sb_printf(b, "%s", vals[rnd(8)]);
    } else
        sb_printf(b, "\"zz\"");
}

/* A range bound for field f: numbers, or strings for the string fields. */
static void gen_bound(sbuf *b, const char *f, int str) {
    if (str) {
        char s[8];
        uint32_t len = rnd(3);
        for (uint32_t i = 0; i < len; i++) s[i] = (char)('a' + rnd(7));
        s[len] = 0;
        if (!strcmp(f, "tags") || !strcmp(f, "kw")) {
            sb_printf(b, "\"%c%u\"", !strcmp(f, "tags") ? 't' : 'k', rnd(20));
            return;
        }
        sb_printf(b, "\"%s\"", s);
        return;
    }
    if (!strcmp(f, "ts"))
        sb_printf(b, "%.17g", 1.7e12 + (double)rnd(1000000000));
    else if (!strcmp(f, "x"))
        sb_printf(b, "%.17g", ((double)rnd(801) - 400.0) / 8.0);
    else
        sb_printf(b, "%d", (int)rnd(45) - 22);
}

static void gen_range(sbuf *b) {
    static const char *const rf[] = {"n", "x", "ts", "mixed", "s", "tags", "kw", "flag"};
    const char *f = rf[rnd(8)];
    int str = !strcmp(f, "s") || !strcmp(f, "tags") || !strcmp(f, "kw") ? rnd(5) != 0 : rnd(8) == 0;
    uint32_t lo = rnd(3), hi = rnd(3); /* 0 none, 1 strict, 2 inclusive */
    if (!lo && !hi) lo = 1 + rnd(2);
    sb_printf(b, "{\"range\":{\"field\":\"%s\"", f);
    if (lo) {
        sb_printf(b, ",\"%s\":", lo == 1 ? "gt" : "gte");
        gen_bound(b, f, str);
    }
    if (hi) {
        sb_printf(b, ",\"%s\":", hi == 1 ? "lt" : "lte");
        gen_bound(b, f, str);
    }
    sb_printf(b, "}}");
}

static void gen_expr(sbuf *b, int depth) {
    uint32_t q = rnd(100);
    if (q < 8) { /* a selective equality and ranges: filter_eval probes the ranges */
        sb_printf(b, "{\"and\":[{\"%s\":", rnd(2) ? "kw" : "tags");
        gen_value(b, rnd(2) ? "kw" : "tags");
        sb_printf(b, "}");
        uint32_t k = rnd(3); /* a range, a negated one, or both */
        if (k != 1) {
            sb_printf(b, ",");
            gen_range(b);
        }
        if (k != 0) {
            sb_printf(b, ",{\"not\":");
            gen_range(b);
            sb_printf(b, "}");
        }
        sb_printf(b, "]}");
        return;
    }
    q = rnd(100);
    if (depth < 4 && q < 30) {
        int and = rnd(2);
        uint32_t n = and? 1 + rnd(3) : rnd(5); /* empty ones too, now and then */
        if (rnd(20) == 0) n = 0;
        const char *op = and? "and" : "or";
        sb_printf(b, "{\"%s\":[", op);
        for (uint32_t i = 0; i < n; i++) {
            if (i) sb_printf(b, ",");
            gen_expr(b, depth + 1);
        }
        sb_printf(b, "]}");
        return;
    }
    if (depth < 4 && q < 40) {
        sb_printf(b, "{\"not\":");
        gen_expr(b, depth + 1);
        sb_printf(b, "}");
        return;
    }
    const char *f = FIELDS[rnd(NFIELDS)];
    q = rnd(100);
    if (q < 25) {
        sb_printf(b, "{\"eq\":{\"field\":\"%s\",\"value\":", f);
        gen_value(b, f);
        sb_printf(b, "}}");
    } else if (q < 45) {
        uint32_t n = rnd(7);
        sb_printf(b, "{\"in\":{\"field\":\"%s\",\"values\":[", f);
        for (uint32_t i = 0; i < n; i++) {
            if (i) sb_printf(b, ",");
            gen_value(b, f);
        }
        sb_printf(b, "]}}");
    } else if (q < 75) {
        gen_range(b);
    } else if (q < 85) {
        sb_printf(b, "{\"exists\":\"%s\"}", f);
    } else {
        uint32_t n = rnd(4);
        int used[NFIELDS] = {0};
        sb_printf(b, "{");
        for (uint32_t i = 0, k = 0; i < n; i++) {
            uint32_t fi = rnd(NFIELDS);
            if (used[fi]) continue;
            used[fi] = 1;
            sb_printf(b, "%s\"%s\":", k++ ? "," : "", FIELDS[fi]);
            gen_value(b, FIELDS[fi]);
        }
        sb_printf(b, "}");
    }
}

/* ------------------------------------------------------------------ check */

static json_t *g_meta[NROWS];
static uint8_t g_live[NROWS]; /* the universe, as an array */
static filter_expr *g_expr[NEXPR];
static char *g_text[NEXPR];

static size_t g_empty, g_full, g_some;

static void check_expr(int i, const attr_index *ai, const roaring_bitmap_t *universe) {
    roaring_bitmap_t *res;
    T_ASSERT_OK(filter_eval(g_expr[i], ai, universe, &res));
    T_ASSERT(roaring_bitmap_is_subset(res, universe));
    uint64_t want = 0, card = roaring_bitmap_get_cardinality(res);
    static uint32_t got[NROWS];
    roaring_bitmap_to_uint32_array(res, got);
    for (uint32_t r = 0, j = 0; r < NROWS; r++) {
        if (!g_live[r]) continue;
        int m = filter_match(g_expr[i], g_meta[r]);
        int e = j < card && got[j] == r;
        j += (uint32_t)e;
        if (m != e) {
            char *mj = g_meta[r] ? json_dumps(g_meta[r], JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            T_FAIL("filter %s\nrow %u %s: filter_match says %d, filter_eval says %d", g_text[i], r,
                   mj ? mj : "(no metadata)", m, e);
        }
        want += (uint64_t)m;
    }
    T_ASSERT_EQ(card, want);
    if (card == 0)
        g_empty++;
    else if (card == roaring_bitmap_get_cardinality(universe))
        g_full++;
    else
        g_some++;
    roaring_bitmap_free(res);
}

static void check_all(const char *phase, int nexpr, const attr_index *ai,
                      const roaring_bitmap_t *universe) {
    g_empty = g_full = g_some = 0;
    for (uint32_t r = 0; r < NROWS; r++) g_live[r] = roaring_bitmap_contains(universe, r);
    for (int i = 0; i < nexpr; i++) check_expr(i, ai, universe);
    printf("%-28s %6llu rows live, %3d filters agree: %zu empty, %zu all rows, %zu some\n", phase,
           (unsigned long long)roaring_bitmap_get_cardinality(universe), nexpr, g_empty, g_full,
           g_some);
}

int main(void) {
    attr_index *ai;
    T_ASSERT_OK(attr_index_new(&ai));
    roaring_bitmap_t *universe = roaring_bitmap_create();
    for (uint32_t r = 0; r < NROWS; r++) {
        g_meta[r] = gen_meta(r);
        T_ASSERT_OK(attr_index_add(ai, r, g_meta[r]));
        roaring_bitmap_add(universe, r);
    }
    sbuf b = {0};
    for (int i = 0; i < NEXPR; i++) {
        b.n = 0;
        gen_expr(&b, 0);
        g_text[i] = strndup(b.p, b.n);
        if (filter_compile(b.p, b.n, &g_expr[i]))
            T_FAIL("generated filter %s does not compile: %s", g_text[i], quarry_errmsg());
    }
    free(b.p);
    printf("index: %zu fields, %zu bytes\n", attr_index_field_count(ai), attr_index_memory(ai));
    check_all("all rows", NEXPR, ai, universe);

    /* Remove a quarter of the rows, then nine tenths. */
    uint32_t *order = malloc(NROWS * sizeof *order);
    for (uint32_t r = 0; r < NROWS; r++) order[r] = r;
    for (uint32_t r = NROWS - 1; r > 0; r--) {
        uint32_t j = rnd(r + 1), t = order[r];
        order[r] = order[j];
        order[j] = t;
    }
    uint32_t removed = 0;
    for (; removed < NROWS / 4; removed++) {
        uint32_t r = order[removed];
        T_ASSERT_OK(attr_index_remove(ai, r, g_meta[r]));
        roaring_bitmap_remove(universe, r);
    }
    check_all("a quarter removed", NEXPR_UPDATE, ai, universe);
    for (; removed < NROWS * 9 / 10; removed++) {
        uint32_t r = order[removed];
        T_ASSERT_OK(attr_index_remove(ai, r, g_meta[r]));
        roaring_bitmap_remove(universe, r);
    }
    check_all("nine tenths removed", NEXPR_UPDATE, ai, universe);

    /* Re-add the removed rows under the same numbers, with new metadata. */
    for (uint32_t i = 0; i < removed; i++) {
        uint32_t r = order[i];
        json_decref(g_meta[r]);
        g_meta[r] = gen_meta(r);
        T_ASSERT_OK(attr_index_add(ai, r, g_meta[r]));
        roaring_bitmap_add(universe, r);
    }
    check_all("re-added with new metadata", NEXPR_UPDATE, ai, universe);
    attr_index_optimize(ai);
    check_all("after optimize", NEXPR_UPDATE / 2, ai, universe);

    /* Everything removed: every row now behaves as a row without metadata. */
    for (uint32_t r = 0; r < NROWS; r++) T_ASSERT_OK(attr_index_remove(ai, r, g_meta[r]));
    for (int i = 0; i < NEXPR; i++) {
        roaring_bitmap_t *res;
        T_ASSERT_OK(filter_eval(g_expr[i], ai, universe, &res));
        uint64_t want = filter_match(g_expr[i], NULL) ? NROWS : 0;
        if (roaring_bitmap_get_cardinality(res) != want)
            T_FAIL("filter %s on an emptied index: %llu rows, want %llu", g_text[i],
                   (unsigned long long)roaring_bitmap_get_cardinality(res),
                   (unsigned long long)want);
        roaring_bitmap_free(res);
    }
    printf("index emptied: %zu fields, %zu bytes\n", attr_index_field_count(ai),
           attr_index_memory(ai));

    roaring_bitmap_free(universe);
    free(order);
    for (int i = 0; i < NEXPR; i++) {
        filter_expr_free(g_expr[i]);
        free(g_text[i]);
    }
    for (uint32_t r = 0; r < NROWS; r++) json_decref(g_meta[r]);
    attr_index_free(ai);
    return 0;
}
