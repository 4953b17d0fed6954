/* SPDX-License-Identifier: MIT */
/*
 * test_filter_bench.c -- a micro-benchmark of filter_eval (printed, never
 * asserted beyond correctness of the cardinalities it can predict).
 *
 * Builds an attribute index over 200k rows (sanitizer builds: 50k; building
 * 1M rows takes about 2 s, past a quick test's budget, so that size runs with
 * QUARRY_FILTER_BENCH_ROWS=1000000) with a tenant keyword (1000 values), a
 * language (20 values, skewed), a boolean, a timestamp growing with the row
 * number, a price (random, 100k distinct values) and string-array tags, then
 * times typical filters: eq, ranges of several widths, and/or/not
 * combinations and large `in`s. Each filter runs until 50 ms or 200 runs have
 * passed; the median and the fastest run are printed with the result size.
 */
#include "t.h"

#include <jansson.h>
#include <stdlib.h>

#include "common/qcommon.h"
#include "index/filter/filter.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_ROWS 50000
#else
#define DEFAULT_ROWS 200000
#endif

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void bench(const char *label, const char *text, const attr_index *ai,
                  const roaring_bitmap_t *u, uint64_t expect) {
    filter_expr *e;
    if (filter_compile(text, strlen(text), &e)) T_FAIL("%s: %s", text, quarry_errmsg());
    uint64_t t[200], start = q_now_ns(), card = 0;
    int runs = 0;
    while (runs < 200 && (runs < 5 || q_now_ns() - start < 50000000ull)) {
        roaring_bitmap_t *r;
        uint64_t t0 = q_now_ns();
        T_ASSERT_OK(filter_eval(e, ai, u, &r));
        t[runs++] = q_now_ns() - t0;
        card = roaring_bitmap_get_cardinality(r);
        roaring_bitmap_free(r);
    }
    if (expect != UINT64_MAX) T_ASSERT_EQ(card, expect);
    qsort(t, (size_t)runs, sizeof *t, cmp_u64);
    uint64_t rows = roaring_bitmap_get_cardinality(u);
    printf("  %-40s %9.1f us median %9.1f us min  %8llu rows (%5.1f%%)\n", label,
           (double)t[runs / 2] / 1e3, (double)t[0] / 1e3, (unsigned long long)card,
           100.0 * (double)card / (double)rows);
    filter_expr_free(e);
}

int main(void) {
    uint32_t rows = DEFAULT_ROWS;
    const char *env = getenv("QUARRY_FILTER_BENCH_ROWS");
    if (env && atol(env) > 0) rows = (uint32_t)atol(env);
    uint64_t seed = 7;
    attr_index *ai;
    T_ASSERT_OK(attr_index_new(&ai));
    static const char *const LANGS[] = {"en", "en", "en", "en", "en", "de", "fr", "es", "it", "ja",
                                        "zh", "pt", "nl", "sv", "pl", "ru", "ko", "ar", "tr", "hi"};
    /* One metadata object whose values are overwritten in place for each
     * row, so that the time measured is the index's, not JSON allocation. */
    json_t *m = json_object(), *tenant = json_string(""), *lang = json_string(""),
           *ts = json_integer(0), *price = json_real(0), *tags[4], *tag[4][3];
    for (int k = 0; k < 4; k++) {
        tags[k] = json_array();
        for (int i = 0; i < k; i++) {
            tag[k][i] = json_string("");
            json_array_append(tags[k], tag[k][i]);
        }
    }
    json_object_set(m, "tenant", tenant);
    json_object_set(m, "lang", lang);
    json_object_set(m, "ts", ts);
    json_object_set(m, "price", price);
    uint64_t t0 = q_now_ns();
    uint64_t n_t7 = 0;
    for (uint32_t r = 0; r < rows; r++) {
        uint64_t x = t_rand(&seed);
        char buf8[16];
        uint32_t tn = (uint32_t)(x % 1000);
        n_t7 += tn == 7;
        snprintf(buf8, sizeof buf8, "t%u", tn);
        json_string_set(tenant, buf8);
        json_string_set(lang, LANGS[(x >> 32) % 20]);
        json_object_set_new(m, "published", json_boolean((x >> 36) & 1));
        json_integer_set(ts, (json_int_t)(1700000000000ll + (long long)r * 1000 +
                                          (long long)((x >> 44) % 5000)));
        json_real_set(price, (double)((x >> 20) % 100000) / 100.0);
        int k = (int)((x >> 40) % 4);
        for (int i = 0; i < k; i++) {
            snprintf(buf8, sizeof buf8, "g%u", (unsigned)((x >> (10 + 6 * i)) % 50));
            json_string_set(tag[k][i], buf8);
        }
        json_object_set(m, "tags", tags[k]);
        T_ASSERT_OK(attr_index_add(ai, r, m));
    }
    uint64_t t1 = q_now_ns();
    size_t mem = attr_index_memory(ai);
    attr_index_optimize(ai);
    uint64_t t2 = q_now_ns();
    printf("index of %u rows built in %.0f ms (%.2f us/row), %.1f MB; optimize %.0f ms "
           "-> %.1f MB\n",
           rows, (double)(t1 - t0) / 1e6, (double)(t1 - t0) / 1e3 / rows, (double)mem / 1048576.0,
           (double)(t2 - t1) / 1e6, (double)attr_index_memory(ai) / 1048576.0);

    roaring_bitmap_t *u = roaring_bitmap_from_range(0, rows, 1);
    roaring_bitmap_run_optimize(u);
    long long ts_lo = 1700000000000ll + (long long)rows * 900;
    char buf[8192];
    printf("filter_eval over %u live rows:\n", rows);
    bench("eq tenant (1 of 1000 values)", "{\"tenant\":\"t7\"}", ai, u, n_t7);
    bench("eq lang (1 of 20, skewed)", "{\"lang\":\"de\"}", ai, u, UINT64_MAX);
    bench("eq published (bool)", "{\"published\":true}", ai, u, UINT64_MAX);
    bench("eq tags (array membership)", "{\"tags\":\"g3\"}", ai, u, UINT64_MAX);
    snprintf(buf, sizeof buf, "{\"range\":{\"field\":\"ts\",\"gte\":%lld}}", ts_lo);
    bench("range ts, newest 10%", buf, ai, u, UINT64_MAX);
    bench("range price 1% (distinct reals)",
          "{\"range\":{\"field\":\"price\",\"gte\":100,\"lt\":110}}", ai, u, UINT64_MAX);
    bench("range price 10%", "{\"range\":{\"field\":\"price\",\"gte\":100,\"lt\":200}}", ai, u,
          UINT64_MAX);
    bench("range price 50%", "{\"range\":{\"field\":\"price\",\"gt\":500}}", ai, u, UINT64_MAX);
    bench("range price 90%", "{\"range\":{\"field\":\"price\",\"gte\":100}}", ai, u, UINT64_MAX);
    bench("eq price (one value)", "{\"price\":123.45}", ai, u, UINT64_MAX);
    bench("and: tenant + price 50%",
          "{\"and\":[{\"tenant\":\"t7\"},{\"range\":{\"field\":\"price\",\"lt\":500}}]}", ai, u,
          UINT64_MAX);
    snprintf(buf, sizeof buf,
             "{\"and\":[{\"lang\":\"en\"},{\"published\":true},"
             "{\"range\":{\"field\":\"ts\",\"gte\":%lld}}]}",
             ts_lo);
    bench("and: lang + bool + ts 10%", buf, ai, u, UINT64_MAX);
    bench("and: lang + not tags", "{\"and\":[{\"lang\":\"en\"},{\"not\":{\"tags\":\"g1\"}}]}", ai,
          u, UINT64_MAX);
    bench("or: 3 tenants", "{\"or\":[{\"tenant\":\"t1\"},{\"tenant\":\"t2\"},{\"tenant\":\"t3\"}]}",
          ai, u, UINT64_MAX);
    bench("not: lang en", "{\"not\":{\"lang\":\"en\"}}", ai, u, UINT64_MAX);
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"in\":{\"field\":\"tenant\",\"values\":[");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"t%d\"", i ? "," : "", i * 7);
    snprintf(buf + n, sizeof buf - n, "]}}");
    bench("in: 100 tenants", buf, ai, u, UINT64_MAX);
    n = (size_t)snprintf(buf, sizeof buf, "{\"in\":{\"field\":\"price\",\"values\":[");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d.5", i ? "," : "", i * 9);
    snprintf(buf + n, sizeof buf - n, "]}}");
    bench("in: 100 prices", buf, ai, u, UINT64_MAX);
    bench("exists tags", "{\"exists\":\"tags\"}", ai, u, UINT64_MAX);

    json_decref(m);
    json_decref(tenant);
    json_decref(lang);
    json_decref(ts);
    json_decref(price);
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < k; i++) json_decref(tag[k][i]);
        json_decref(tags[k]);
    }
    roaring_bitmap_free(u);
    attr_index_free(ai);
    return 0;
}
