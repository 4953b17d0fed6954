/* SPDX-License-Identifier: MIT */
/*
 * test_filter_serde.c -- the attribute index to bytes and back
 * (attr_index_serialize / attr_index_deserialize) and attr_index_remove_rows.
 *
 * Round trip: on 70k generated rows (a keyword, a boolean, small integers,
 * reals with -0.0, near-distinct timestamps, string arrays, short strings
 * with the empty string, UTF-8 and a NUL byte, a field whose type changes
 * between rows, a unique string per row, missing fields, rows without
 * metadata), after adds, removals and optimize (run containers): the decoded
 * index gives the same bitmap as the original for every filter kind and a
 * few hundred generated filters, serialises to the same bytes, and keeps
 * working (adds and removals on both stay equal).
 *
 * remove_rows: removing a set of rows without their metadata equals removing
 * them one by one with it.
 *
 * Hostile bytes: every truncation, flipped bits (with the checksum fixed up
 * so the structure checks run), and hand-made images breaking one rule each
 * (bitmaps CRoaring's decoder would accept: unsorted arrays, runs past 16
 * bits, a bitset whose population is not its cardinality, a negative
 * container count; rows past the row count, a row with two numbers or two
 * kinds of value, unordered or duplicate names, values and pairs, bad block
 * sizes, non-finite numbers, trailing bytes) give QUARRY_CORRUPT and an
 * empty, usable index.
 */
#include "t.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/qcommon.h"
#include "index/filter/filter.h"

#define NROWS  70000
#define NRAND  150
#define NFLIPS 5000

static uint64_t g_seed = 0x5e7de5ULL;
static uint32_t rnd(uint32_t n) { return (uint32_t)(t_rand(&g_seed) % n); }

/* ---------------------------------------------------------------- corpus */

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
        double x = rnd(50) == 0 ? -0.0 : ((double)rnd(801) - 400.0) / 8.0;
        json_object_set_new(o, "x", json_real(x));
    }
    if (rnd(100) < 90)
        json_object_set_new(o, "ts", json_integer((json_int_t)(1.7e12 + rnd(1000000000))));
    if (rnd(100) < 75) {
        json_t *a = json_array();
        for (uint32_t i = 0, n = rnd(5); i < n; i++) {
            snprintf(buf, sizeof buf, "t%u", rnd(20));
            json_array_append_new(a, json_string(buf));
        }
        json_object_set_new(o, "tags", a);
    }
    if (rnd(100) < 80) {
        uint32_t q = rnd(100), len = rnd(4);
        if (q < 3) {
            json_object_set_new(o, "s", json_string("\xc3\xa9t\xc3\xa9"));
        } else if (q < 5) {
            json_object_set_new(o, "s", json_stringn("a\0b", 3));
        } else {
            for (uint32_t i = 0; i < len; i++) buf[i] = (char)('a' + rnd(6));
            buf[len] = 0;
            json_object_set_new(o, "s", json_string(buf));
        }
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
            v = rnd(2) ? json_null() : json_pack("{s:i}", "a", 1);
            break;
        }
        json_object_set_new(o, "mixed", v);
    }
    if (rnd(100) < 30) {
        snprintf(buf, sizeof buf, "u%u", row);
        json_object_set_new(o, "uid", json_string(buf));
    }
    return o;
}

/* ---------------------------------------------------------------- filters */

/* One of each kind, and the paths filter_eval takes (borrowed bitmaps,
 * unions, complements of wide ranges, probing in an `and`). */
static const char *const FIXED[] = {
    "{}",
    "{\"kw\":\"k3\"}",
    "{\"eq\":{\"field\":\"flag\",\"value\":true}}",
    "{\"eq\":{\"field\":\"flag\",\"value\":false}}",
    "{\"in\":{\"field\":\"kw\",\"values\":[\"k1\",\"k2\",3,true]}}",
    "{\"eq\":{\"field\":\"n\",\"value\":-4}}",
    "{\"range\":{\"field\":\"n\",\"gte\":-5,\"lt\":7}}",
    "{\"range\":{\"field\":\"x\",\"lte\":0}}",
    "{\"eq\":{\"field\":\"x\",\"value\":0}}",
    "{\"range\":{\"field\":\"ts\",\"gt\":1700000000000}}",
    "{\"range\":{\"field\":\"ts\",\"gte\":1700100000000,\"lt\":1700100900000}}",
    "{\"range\":{\"field\":\"ts\",\"lt\":1700900000000}}",
    "{\"range\":{\"field\":\"s\",\"gte\":\"b\",\"lt\":\"d\"}}",
    "{\"range\":{\"field\":\"s\",\"gt\":\"\"}}",
    "{\"range\":{\"field\":\"s\",\"gt\":\"a\",\"lt\":\"aa\"}}", /* holds "a\\0b" */
    "{\"eq\":{\"field\":\"s\",\"value\":\"\"}}",
    "{\"range\":{\"field\":\"tags\",\"gt\":\"t5\"}}",
    "{\"tags\":\"t7\"}",
    "{\"exists\":\"mixed\"}",
    "{\"not\":{\"exists\":\"tags\"}}",
    "{\"eq\":{\"field\":\"mixed\",\"value\":3}}",
    "{\"eq\":{\"field\":\"mixed\",\"value\":\"m4\"}}",
    "{\"range\":{\"field\":\"mixed\",\"gte\":3}}",
    "{\"uid\":\"u123\"}",
    "{\"range\":{\"field\":\"uid\",\"gte\":\"u5\",\"lt\":\"u6\"}}",
    "{\"and\":[{\"kw\":\"k1\"},{\"range\":{\"field\":\"ts\",\"gt\":1700000000000}}]}",
    "{\"and\":[{\"tags\":\"t3\"},{\"not\":{\"range\":{\"field\":\"x\",\"gt\":-10}}}]}",
    "{\"or\":[{\"kw\":\"k2\"},{\"flag\":false},{\"range\":{\"field\":\"n\",\"gt\":15}}]}",
    "{\"not\":{\"or\":[{\"kw\":\"k2\"},{\"exists\":\"uid\"}]}}",
    "{\"nope\":1}",
};
#define NFIXED (sizeof FIXED / sizeof *FIXED)

typedef struct sbuf {
    char p[4096];
    size_t n;
} sbuf;

static void sb(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, sizeof b->p - b->n, fmt, ap);
    va_end(ap);
    T_ASSERT(k >= 0 && (size_t)k < sizeof b->p - b->n);
    b->n += (size_t)k;
}

static void gen_leaf(sbuf *b) {
    switch (rnd(7)) {
    case 0:
        sb(b, "{\"kw\":\"k%u\"}", rnd(17));
        break;
    case 1:
        sb(b, "{\"eq\":{\"field\":\"tags\",\"value\":\"t%u\"}}", rnd(21));
        break;
    case 2:
        sb(b, "{\"range\":{\"field\":\"n\",\"gt\":%d,\"lte\":%d}}", (int)rnd(30) - 20,
           (int)rnd(30) - 5);
        break;
    case 3:
        sb(b, "{\"range\":{\"field\":\"ts\",\"gte\":%.17g}}", 1.7e12 + rnd(1000000000));
        break;
    case 4:
        sb(b, "{\"range\":{\"field\":\"s\",\"lt\":\"%c\"}}", 'a' + rnd(7));
        break;
    case 5:
        sb(b, "{\"exists\":\"%s\"}", rnd(2) ? "mixed" : "uid");
        break;
    default:
        sb(b, "{\"flag\":%s}", rnd(2) ? "true" : "false");
        break;
    }
}

static void gen_expr(sbuf *b, int depth) {
    uint32_t q = rnd(100);
    if (depth < 3 && q < 40) {
        sb(b, "{\"%s\":[", rnd(2) ? "and" : "or");
        for (uint32_t i = 0, n = 1 + rnd(3); i < n; i++) {
            if (i) sb(b, ",");
            gen_expr(b, depth + 1);
        }
        sb(b, "]}");
    } else if (depth < 3 && q < 50) {
        sb(b, "{\"not\":");
        gen_expr(b, depth + 1);
        sb(b, "}");
    } else {
        gen_leaf(b);
    }
}

static filter_expr *g_expr[NFIXED + NRAND];
static char g_text[NFIXED + NRAND][4096];

static void compile_filters(void) {
    for (size_t i = 0; i < NFIXED + NRAND; i++) {
        sbuf b = {{0}, 0};
        if (i < NFIXED)
            sb(&b, "%s", FIXED[i]);
        else
            gen_expr(&b, 0);
        memcpy(g_text[i], b.p, b.n + 1);
        if (filter_compile(b.p, b.n, &g_expr[i]))
            T_FAIL("filter %s does not compile: %s", b.p, quarry_errmsg());
    }
}

/* Every filter gives the same rows on a and b. */
static void same_results(const char *phase, const attr_index *a, const attr_index *b,
                         const roaring_bitmap_t *universe) {
    uint64_t rows = 0;
    for (size_t i = 0; i < NFIXED + NRAND; i++) {
        roaring_bitmap_t *ra, *rb;
        T_ASSERT_OK(filter_eval(g_expr[i], a, universe, &ra));
        T_ASSERT_OK(filter_eval(g_expr[i], b, universe, &rb));
        if (!roaring_bitmap_equals(ra, rb))
            T_FAIL("%s: filter %s: %llu rows before, %llu after", phase, g_text[i],
                   (unsigned long long)roaring_bitmap_get_cardinality(ra),
                   (unsigned long long)roaring_bitmap_get_cardinality(rb));
        rows += roaring_bitmap_get_cardinality(ra);
        roaring_bitmap_free(ra);
        roaring_bitmap_free(rb);
    }
    printf("%-34s %zu filters agree (%llu rows in all)\n", phase, NFIXED + NRAND,
           (unsigned long long)rows);
}

/* Serialise a, decode into a new index, compare results and bytes. */
static attr_index *round_trip(const char *phase, const attr_index *a,
                              const roaring_bitmap_t *universe) {
    uint8_t *buf, *again;
    size_t len, alen;
    T_ASSERT_OK(attr_index_serialize(a, &buf, &len));
    attr_index *b;
    T_ASSERT_OK(attr_index_new(&b));
    T_ASSERT_OK(attr_index_deserialize(b, buf, len, NROWS));
    same_results(phase, a, b, universe);
    T_ASSERT_OK(attr_index_serialize(b, &again, &alen));
    T_ASSERT_EQ(alen, len);
    T_ASSERT(memcmp(again, buf, len) == 0);
    printf("%-34s %zu bytes, %zu fields\n", "", len, attr_index_field_count(b));
    q_free(again);
    q_free(buf);
    return b;
}

/* ---------------------------------------------------------- hostile bytes */

/* A growing image. */
typedef struct img {
    uint8_t p[1 << 16];
    size_t n;
} img;

static void i_u32(img *m, uint32_t v) {
    put_u32(m->p + m->n, v);
    m->n += 4;
}
static void i_u64(img *m, uint64_t v) {
    put_u64(m->p + m->n, v);
    m->n += 8;
}
static void i_f64(img *m, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    i_u64(m, u);
}
static void i_bytes(img *m, const void *s, size_t k) {
    memcpy(m->p + m->n, s, k);
    m->n += k;
}
static void i_bitmap(img *m, const roaring_bitmap_t *bm) {
    size_t k = roaring_bitmap_portable_size_in_bytes(bm);
    i_u32(m, (uint32_t)k);
    roaring_bitmap_portable_serialize(bm, (char *)m->p + m->n);
    m->n += k;
}
/* Raw bitmap bytes (hand-made portable format). */
static void i_raw(img *m, const uint8_t *b, size_t k) {
    i_u32(m, (uint32_t)k);
    i_bytes(m, b, k);
}
static void i_begin(img *m, uint32_t nfields) {
    m->n = 0;
    i_u32(m, 0x31494151u);
    i_u32(m, 1);
    i_u32(m, nfields);
    i_u32(m, 0);
}
static void i_seal(img *m) {
    put_u64(m->p + m->n, XXH3_64bits(m->p, m->n));
    m->n += 8;
}

static roaring_bitmap_t *bm_of(int n, ...) {
    roaring_bitmap_t *b = roaring_bitmap_create();
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) roaring_bitmap_add(b, va_arg(ap, uint32_t));
    va_end(ap);
    return b;
}

/* Decoding must give `want`; on failure the index is empty and usable. */
static void expect(const char *what, const img *m, uint32_t rows, int want) {
    attr_index *ai;
    T_ASSERT_OK(attr_index_new(&ai));
    json_t *meta = json_pack("{s:s}", "kw", "k1");
    T_ASSERT_OK(attr_index_add(ai, 7, meta)); /* replaced either way */
    int rc = attr_index_deserialize(ai, m->p, m->n, rows);
    if (rc != want)
        T_FAIL("%s: deserialize returned %d (%s), want %d: %s", what, rc, quarry_errstr(rc), want,
               quarry_errmsg());
    if (rc) {
        T_ASSERT_EQ(attr_index_field_count(ai), 0);
        T_ASSERT_OK(attr_index_add(ai, 3, meta));
        roaring_bitmap_t *u = bm_of(2, 3u, 7u), *res;
        filter_expr *e;
        T_ASSERT_OK(filter_compile("{\"kw\":\"k1\"}", 11, &e));
        T_ASSERT_OK(filter_eval(e, ai, u, &res));
        T_ASSERT_EQ(roaring_bitmap_get_cardinality(res), 1);
        T_ASSERT(roaring_bitmap_contains(res, 3));
        roaring_bitmap_free(res);
        roaring_bitmap_free(u);
        filter_expr_free(e);
    }
    json_decref(meta);
    attr_index_free(ai);
}

/* One field "f": exists, true, false, string values, numeric blocks. The
 * raw-bytes variants let a case replace one bitmap. */
typedef struct fspec {
    const char *name;
    size_t name_len; /* 0: strlen(name) */
    const roaring_bitmap_t *exists, *btrue, *bfalse;
    const uint8_t *raw_exists;
    size_t raw_exists_len;
    uint32_t nvals;
    const char *vals[4];
    const roaring_bitmap_t *vbm[4];
    uint32_t nblocks;
    uint32_t bn[3];
    double v[8];
    uint32_t r[8];
} fspec;

static void i_field(img *m, const fspec *f) {
    roaring_bitmap_t *empty = roaring_bitmap_create();
    size_t nl = f->name_len ? f->name_len : strlen(f->name);
    i_u32(m, (uint32_t)nl);
    i_bytes(m, f->name, nl);
    if (f->raw_exists)
        i_raw(m, f->raw_exists, f->raw_exists_len);
    else
        i_bitmap(m, f->exists);
    i_bitmap(m, f->btrue ? f->btrue : empty);
    i_bitmap(m, f->bfalse ? f->bfalse : empty);
    i_u32(m, f->nvals);
    for (uint32_t i = 0; i < f->nvals; i++) {
        i_u32(m, (uint32_t)strlen(f->vals[i]));
        i_bytes(m, f->vals[i], strlen(f->vals[i]));
        i_bitmap(m, f->vbm[i]);
    }
    i_u32(m, f->nblocks);
    for (uint32_t bi = 0, at = 0; bi < f->nblocks; at += f->bn[bi++]) {
        i_u32(m, f->bn[bi]);
        for (uint32_t i = 0; i < f->bn[bi]; i++) i_f64(m, f->v[at + i]);
        for (uint32_t i = 0; i < f->bn[bi]; i++) i_u32(m, f->r[at + i]);
    }
    roaring_bitmap_free(empty);
}

static void one_field(const char *what, const fspec *f, uint32_t rows, int want) {
    static img m;
    i_begin(&m, 1);
    i_field(&m, f);
    i_seal(&m);
    expect(what, &m, rows, want);
}

/* A portable bitmap of one array container: key 0, values v[0..n). */
static size_t raw_array(uint8_t *b, const uint16_t *v, uint16_t n) {
    put_u32(b, 12346), put_u32(b + 4, 1);                  /* no runs, one container */
    put_u16(b + 8, 0), put_u16(b + 10, (uint16_t)(n - 1)); /* key, card - 1 */
    put_u32(b + 12, 16);                                   /* offset of the container */
    for (uint16_t i = 0; i < n; i++) put_u16(b + 16 + 2 * i, v[i]);
    return 16 + 2 * (size_t)n;
}

/* One run container (key 0) of n runs (start, length - 1), card - 1 stated. */
static size_t raw_runs(uint8_t *b, const uint16_t *runs, uint16_t n, uint16_t cardm1) {
    put_u32(b, 12347); /* runs, one container */
    b[4] = 1;          /* container 0 is a run container */
    put_u16(b + 5, 0), put_u16(b + 7, cardm1);
    put_u16(b + 9, n);
    for (uint16_t i = 0; i < 2 * n; i++) put_u16(b + 11 + 2 * i, runs[i]);
    return 11 + 4 * (size_t)n;
}

static void hostile_cases(void) {
    roaring_bitmap_t *e3 = bm_of(3, 1u, 2u, 3u), *e1 = bm_of(1, 1u), *e2 = bm_of(1, 2u),
                     *e12 = bm_of(2, 1u, 2u), *e9 = bm_of(1, 9u);
    fspec ok = {.name = "f",
                .exists = e3,
                .btrue = e1,
                .nvals = 1,
                .vals = {"a"},
                .vbm = {e2},
                .nblocks = 1,
                .bn = {1},
                .v = {1.5},
                .r = {3}};
    one_field("a valid one-field image", &ok, 10, 0);
    one_field("a row past the row count", &ok, 3, QUARRY_CORRUPT);

    fspec f = ok;
    f.vbm[0] = e12;
    one_field("a row holding true and a string", &f, 10, QUARRY_CORRUPT);
    f = ok;
    f.vbm[0] = e9;
    one_field("a value of a row without the field", &f, 10, QUARRY_CORRUPT);
    f = ok;
    f.bfalse = e1;
    one_field("a row both true and false", &f, 10, QUARRY_CORRUPT);
    f = ok;
    f.r[0] = 1;
    one_field("a row holding true and a number", &f, 10, QUARRY_CORRUPT);
    f = ok;
    f.exists = roaring_bitmap_create();
    one_field("a field without rows", &f, 10, QUARRY_CORRUPT);
    roaring_bitmap_free((roaring_bitmap_t *)f.exists);
    f = ok;
    f.nvals = 2, f.vals[1] = "a", f.vbm[1] = e2;
    one_field("a duplicate string value", &f, 10, QUARRY_CORRUPT);
    f.vals[0] = "b";
    one_field("string values out of order", &f, 10, QUARRY_CORRUPT);
    f = ok;
    f.vbm[0] = roaring_bitmap_create();
    one_field("a string value without rows", &f, 10, QUARRY_CORRUPT);
    roaring_bitmap_free((roaring_bitmap_t *)f.vbm[0]);

    /* numbers: (value, row) order, duplicates, blocks, finiteness */
    f = ok;
    f.btrue = NULL, f.nvals = 0, f.bn[0] = 3;
    double v3[3] = {1, 1, 2};
    uint32_t r3[3] = {1, 2, 3};
    memcpy(f.v, v3, sizeof v3), memcpy(f.r, r3, sizeof r3);
    one_field("three ordered pairs", &f, 10, 0);
    f.r[1] = 1;
    one_field("a pair repeated", &f, 10, QUARRY_CORRUPT);
    f.r[1] = 2, f.r[2] = 1, f.v[2] = 2;
    one_field("a row with two numbers", &f, 10, QUARRY_CORRUPT);
    f.r[2] = 3, f.v[2] = 0.5;
    one_field("values out of order", &f, 10, QUARRY_CORRUPT);
    f.v[2] = NAN;
    one_field("a NaN value", &f, 10, QUARRY_CORRUPT);
    f.v[2] = INFINITY;
    one_field("an infinite value", &f, 10, QUARRY_CORRUPT);
    f.v[2] = 2, f.nblocks = 2, f.bn[0] = 2, f.bn[1] = 1;
    one_field("two blocks", &f, 10, 0);
    f.v[2] = 0.5;
    one_field("pairs out of order across blocks", &f, 10, QUARRY_CORRUPT);
    f.v[2] = 2, f.bn[1] = 0;
    one_field("an empty block", &f, 10, QUARRY_CORRUPT);

    /* bitmaps CRoaring's _safe decoder takes but that break its invariants */
    uint8_t raw[256];
    uint16_t sorted[3] = {1, 2, 3}, unsorted[3] = {1, 3, 2}, dup[3] = {1, 1, 3};
    f = ok;
    f.raw_exists = raw;
    f.raw_exists_len = raw_array(raw, sorted, 3);
    one_field("a hand-made array container", &f, 10, 0);
    f.raw_exists_len = raw_array(raw, unsorted, 3);
    one_field("an unsorted array container", &f, 10, QUARRY_CORRUPT);
    f.raw_exists_len = raw_array(raw, dup, 3);
    one_field("an array container with a duplicate", &f, 10, QUARRY_CORRUPT);
    f.raw_exists_len = raw_array(raw, sorted, 3);
    put_u32(raw + 12, 15);
    one_field("a wrong container offset", &f, 10, QUARRY_CORRUPT);
    put_u32(raw + 4, 0xFFFFFFFFu);
    f.raw_exists_len = 16;
    one_field("a negative container count", &f, 10, QUARRY_CORRUPT);
    uint16_t runs_ok[2] = {1, 2}, runs_wrap[2] = {65530, 10}, runs_overlap[4] = {1, 2, 3, 0};
    f.raw_exists_len = raw_runs(raw, runs_ok, 1, 2);
    one_field("a run container", &f, 10, 0);
    f.raw_exists_len = raw_runs(raw, runs_ok, 1, 5);
    one_field("a run container of the wrong cardinality", &f, 10, QUARRY_CORRUPT);
    f.raw_exists_len = raw_runs(raw, runs_wrap, 1, 10);
    one_field("a run past 16 bits", &f, 1 << 20, QUARRY_CORRUPT);
    f.raw_exists_len = raw_runs(raw, runs_overlap, 2, 3);
    one_field("overlapping runs", &f, 10, QUARRY_CORRUPT);
    f.raw_exists_len = raw_runs(raw, runs_ok, 0, 0);
    one_field("a run container without runs", &f, 10, QUARRY_CORRUPT);
    {
        /* a bitset container whose population is not the stated cardinality */
        static uint8_t big[16 + 8192];
        roaring_bitmap_t *wide = roaring_bitmap_create();
        roaring_bitmap_add_range(wide, 1, 5001);
        fspec g = {.name = "f", .exists = wide};
        one_field("a bitset container", &g, 10000, 0);
        put_u32(big, 12346), put_u32(big + 4, 1), put_u16(big + 8, 0), put_u16(big + 10, 4999);
        put_u32(big + 12, 16);
        memset(big + 16, 0, 8192);
        for (uint32_t i = 1; i <= 4000; i++) big[16 + i / 8] |= (uint8_t)(1u << (i % 8));
        g.raw_exists = big, g.raw_exists_len = sizeof big;
        one_field("a bitset of the wrong population", &g, 10000, QUARRY_CORRUPT);
        roaring_bitmap_free(wide);
    }
    f = ok;
    f.raw_exists = raw;
    f.raw_exists_len = raw_array(raw, sorted, 3) - 1;
    one_field("a bitmap cut short", &f, 10, QUARRY_CORRUPT);

    /* names, header, trailing bytes */
    static img m;
    i_begin(&m, 2);
    i_field(&m, &ok);
    i_field(&m, &ok);
    i_seal(&m);
    expect("a duplicate field", &m, 10, QUARRY_CORRUPT);
    fspec g = ok;
    g.name = "e";
    i_begin(&m, 2);
    i_field(&m, &ok);
    i_field(&m, &g);
    i_seal(&m);
    expect("fields out of order", &m, 10, QUARRY_CORRUPT);
    i_begin(&m, 2);
    i_field(&m, &g);
    i_field(&m, &ok);
    i_seal(&m);
    expect("two fields in order", &m, 10, 0);
    g.name = "a\0b", g.name_len = 3;
    one_field("a name with a NUL byte", &g, 10, QUARRY_CORRUPT);
    i_begin(&m, 1);
    i_field(&m, &ok);
    i_u32(&m, 0); /* trailing bytes */
    i_seal(&m);
    expect("trailing bytes", &m, 10, QUARRY_CORRUPT);
    i_begin(&m, 1);
    i_field(&m, &ok);
    i_seal(&m);
    m.p[4] = 2;
    put_u64(m.p + m.n - 8, XXH3_64bits(m.p, m.n - 8));
    expect("version 2", &m, 10, QUARRY_CORRUPT);
    m.p[4] = 1;
    m.p[m.n - 1] ^= 1;
    expect("a bad checksum", &m, 10, QUARRY_CORRUPT);
    i_begin(&m, 0);
    i_seal(&m);
    expect("no fields", &m, 10, 0);
    i_begin(&m, 1000000);
    i_seal(&m);
    expect("a million fields in no bytes", &m, 10, QUARRY_CORRUPT);
    expect("nothing", &(img){{0}, 0}, 10, QUARRY_CORRUPT);

    roaring_bitmap_free(e3), roaring_bitmap_free(e1), roaring_bitmap_free(e2);
    roaring_bitmap_free(e12), roaring_bitmap_free(e9);
    printf("hand-made images: every rule enforced\n");
}

/* Every prefix of a small index's bytes, then flipped bits with the checksum
 * fixed up: CORRUPT (or, for a flip that happens to be consistent, a
 * usable index), never a crash. */
static void truncations_and_flips(const attr_index *small) {
    uint8_t *buf;
    size_t len;
    T_ASSERT_OK(attr_index_serialize(small, &buf, &len));
    attr_index *ai;
    T_ASSERT_OK(attr_index_new(&ai));
    for (size_t k = 0; k < len; k++) {
        uint8_t *cut = malloc(k ? k : 1); /* exact size: ASan sees overreads */
        memcpy(cut, buf, k);
        T_ASSERT_RC(attr_index_deserialize(ai, cut, k, NROWS), QUARRY_CORRUPT);
        T_ASSERT_EQ(attr_index_field_count(ai), 0);
        if (k > 8) { /* re-sealed: reaches the structure checks */
            put_u64(cut + k - 8, XXH3_64bits(cut, k - 8));
            T_ASSERT_RC(attr_index_deserialize(ai, cut, k, NROWS), QUARRY_CORRUPT);
        }
        free(cut);
    }
    size_t accepted = 0, rejected = 0;
    uint8_t *copy = malloc(len);
    for (int i = 0; i < NFLIPS; i++) {
        memcpy(copy, buf, len);
        for (uint32_t k = 0, n = 1 + rnd(3); k < n; k++)
            copy[rnd((uint32_t)len - 8)] ^= (uint8_t)(1u << rnd(8));
        T_ASSERT_RC(attr_index_deserialize(ai, copy, len, NROWS), QUARRY_CORRUPT); /* checksum */
        put_u64(copy + len - 8, XXH3_64bits(copy, len - 8));
        int rc = attr_index_deserialize(ai, copy, len, NROWS);
        if (rc == 0) {
            /* consistent after all (a flipped value byte, say): it must
             * round-trip and answer filters */
            uint8_t *again;
            size_t alen;
            T_ASSERT_OK(attr_index_serialize(ai, &again, &alen));
            T_ASSERT_OK(attr_index_deserialize(ai, again, alen, NROWS));
            q_free(again);
            roaring_bitmap_t *u = roaring_bitmap_create(), *res;
            roaring_bitmap_add_range(u, 0, NROWS);
            for (size_t j = 0; j < NFIXED; j++) {
                T_ASSERT_OK(filter_eval(g_expr[j], ai, u, &res));
                roaring_bitmap_free(res);
            }
            roaring_bitmap_free(u);
            accepted++;
        } else {
            T_ASSERT_RC(rc, QUARRY_CORRUPT);
            T_ASSERT_EQ(attr_index_field_count(ai), 0);
            rejected++;
        }
    }
    printf("%zu truncations rejected; %d flips: %zu rejected, %zu still consistent\n", len, NFLIPS,
           rejected, accepted);
    free(copy);
    q_free(buf);
    attr_index_free(ai);
}

/* ------------------------------------------------------------------ main */

static json_t *g_meta[NROWS];

int main(void) {
    compile_filters();
    attr_index *a;
    T_ASSERT_OK(attr_index_new(&a));
    roaring_bitmap_t *universe = roaring_bitmap_create();
    for (uint32_t r = 0; r < NROWS; r++) {
        g_meta[r] = gen_meta(r);
        T_ASSERT_OK(attr_index_add(a, r, g_meta[r]));
        roaring_bitmap_add(universe, r);
    }

    /* an empty index */
    {
        attr_index *e, *d;
        T_ASSERT_OK(attr_index_new(&e));
        d = round_trip("empty index", e, universe);
        attr_index_free(d);
        attr_index_free(e);
    }

    attr_index *b = round_trip("all rows", a, universe);

    /* Both keep working: remove a third of the rows (by metadata on a, by
     * row set on b), re-add some with new metadata on both. */
    roaring_bitmap_t *gone = roaring_bitmap_create();
    for (uint32_t r = 0; r < NROWS; r++) {
        if (rnd(3)) continue;
        T_ASSERT_OK(attr_index_remove(a, r, g_meta[r]));
        roaring_bitmap_add(gone, r);
        roaring_bitmap_remove(universe, r);
    }
    attr_index_remove_rows(b, gone);
    same_results("a third removed (remove_rows)", a, b, universe);
    attr_index *c = round_trip("a third removed", a, universe);
    attr_index_free(c);
    uint32_t readded = 0;
    for (uint32_t r = 0; r < NROWS; r++) {
        if (!roaring_bitmap_contains(gone, r) || rnd(2)) continue;
        json_decref(g_meta[r]);
        g_meta[r] = gen_meta(r);
        T_ASSERT_OK(attr_index_add(a, r, g_meta[r]));
        T_ASSERT_OK(attr_index_add(b, r, g_meta[r]));
        roaring_bitmap_add(universe, r);
        readded++;
    }
    same_results("re-added on both", a, b, universe);
    /* a few scattered rows: removed one by one through the values by row */
    roaring_bitmap_t *few = roaring_bitmap_create();
    for (uint32_t k = 0; k < 300; k++) {
        uint32_t r = rnd(NROWS);
        if (!roaring_bitmap_contains(universe, r)) continue;
        T_ASSERT_OK(attr_index_remove(a, r, g_meta[r]));
        roaring_bitmap_add(few, r);
        roaring_bitmap_remove(universe, r);
    }
    attr_index_remove_rows(b, few);
    roaring_bitmap_free(few);
    same_results("300 scattered rows removed", a, b, universe);
    attr_index_free(b);

    /* run containers */
    attr_index_optimize(a);
    b = round_trip("after optimize", a, universe);

    /* remove_rows on nearly everything: blocks close and merge, values go */
    roaring_bitmap_clear(gone);
    roaring_bitmap_add_range(gone, 0, NROWS - 500);
    attr_index_remove_rows(b, gone);
    for (uint32_t r = 0; r < NROWS - 500; r++) {
        if (!roaring_bitmap_contains(universe, r)) continue;
        T_ASSERT_OK(attr_index_remove(a, r, g_meta[r]));
        roaring_bitmap_remove(universe, r);
    }
    same_results("all but 500 removed", a, b, universe);
    c = round_trip("all but 500 removed", b, universe);
    attr_index_free(c);

    /* hostile bytes, on a small index (every prefix is tried) */
    attr_index *small;
    T_ASSERT_OK(attr_index_new(&small));
    for (uint32_t r = 0; r < 120; r++) T_ASSERT_OK(attr_index_add(small, r, g_meta[NROWS - 1 - r]));
    truncations_and_flips(small);
    hostile_cases();

    attr_index_free(small);
    attr_index_free(b);
    attr_index_free(a);
    roaring_bitmap_free(gone);
    roaring_bitmap_free(universe);
    for (uint32_t r = 0; r < NROWS; r++) json_decref(g_meta[r]);
    for (size_t i = 0; i < NFIXED + NRAND; i++) filter_expr_free(g_expr[i]);
    printf("ok (%u rows re-added)\n", readded);
    return 0;
}
