/* SPDX-License-Identifier: MIT */
/*
 * test_filter_threads.c -- concurrent readers: four threads evaluate the same
 * compiled filters on one attribute index at once (and ask for its memory
 * use), and every result equals the one computed alone. Run it under the
 * ThreadSanitizer build (QUARRY_TSAN) to check that evaluation never writes
 * shared state: borrowed bitmaps, the shared empty bitmap, probing.
 */
#include "t.h"

#include <jansson.h>
#include <pthread.h>

#include "index/filter/filter.h"

#define NROWS    20000
#define NTHREADS 4
#define ROUNDS   5

static const char *const FILTERS[] = {
    "{\"kw\":\"k3\"}",
    "{\"not\":{\"kw\":\"k3\"}}",
    "{\"exists\":\"tags\"}",
    "{\"exists\":\"missing\"}",
    "{\"range\":{\"field\":\"n\",\"gte\":-10,\"lt\":10}}",
    "{\"range\":{\"field\":\"n\",\"gt\":-90}}",
    "{\"range\":{\"field\":\"s\",\"gte\":\"b\",\"lt\":\"d\"}}",
    "{\"and\":[{\"kw\":\"k1\"},{\"range\":{\"field\":\"n\",\"gt\":0}}]}",
    "{\"and\":[{\"kw\":\"k1\"},{\"not\":{\"range\":{\"field\":\"n\",\"gt\":0}}}]}",
    "{\"and\":[{\"flag\":true},{\"not\":{\"tags\":\"t2\"}}]}",
    "{\"or\":[{\"tags\":\"t1\"},{\"tags\":\"t2\"},{\"range\":{\"field\":\"n\",\"lt\":-95}}]}",
    "{\"in\":{\"field\":\"n\",\"values\":[1,2,3,\"k1\",true]}}",
    "{}",
    "{\"or\":[]}",
};
#define NFILTERS (sizeof FILTERS / sizeof *FILTERS)

static attr_index *g_ai;
static roaring_bitmap_t *g_universe;
static filter_expr *g_expr[NFILTERS];
static roaring_bitmap_t *g_want[NFILTERS];
static int g_bad;

static void *reader(void *arg) {
    size_t start = (size_t)(uintptr_t)arg;
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t k = 0; k < NFILTERS; k++) {
            size_t i = (start + k) % NFILTERS;
            roaring_bitmap_t *r;
            if (filter_eval(g_expr[i], g_ai, g_universe, &r) != 0) {
                __atomic_store_n(&g_bad, 1, __ATOMIC_RELAXED);
                return NULL;
            }
            if (!roaring_bitmap_equals(r, g_want[i])) __atomic_store_n(&g_bad, 1, __ATOMIC_RELAXED);
            roaring_bitmap_free(r);
        }
        (void)attr_index_memory(g_ai);
    }
    return NULL;
}

int main(void) {
    uint64_t seed = 99;
    T_ASSERT_OK(attr_index_new(&g_ai));
    g_universe = roaring_bitmap_create();
    for (uint32_t r = 0; r < NROWS; r++) {
        uint64_t x = t_rand(&seed);
        char kw[8], s[4] = {(char)('a' + x % 6), (char)('a' + (x >> 3) % 6), 0, 0};
        snprintf(kw, sizeof kw, "k%u", (unsigned)((x >> 8) % 8));
        json_t *m = json_pack("{s:s,s:i,s:b,s:s,s:[ss]}", "kw", kw, "n",
                              (int)((x >> 16) % 201) - 100, "flag", (int)((x >> 30) & 1), "s", s,
                              "tags", (x >> 32) % 2 ? "t1" : "t3", (x >> 34) % 3 ? "t2" : "t4");
        T_ASSERT_OK(attr_index_add(g_ai, r, m));
        json_decref(m);
        if ((x >> 40) % 10) roaring_bitmap_add(g_universe, r); /* some rows not live */
    }
    for (size_t i = 0; i < NFILTERS; i++) {
        T_ASSERT_OK(filter_compile(FILTERS[i], strlen(FILTERS[i]), &g_expr[i]));
        T_ASSERT_OK(filter_eval(g_expr[i], g_ai, g_universe, &g_want[i]));
    }
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        T_ASSERT(pthread_create(&th[t], NULL, reader, (void *)(uintptr_t)(t * 3)) == 0);
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    T_ASSERT(!g_bad);
    printf("%d threads x %d rounds x %zu filters: every result equals the single-threaded one\n",
           NTHREADS, ROUNDS, NFILTERS);
    for (size_t i = 0; i < NFILTERS; i++) {
        filter_expr_free(g_expr[i]);
        roaring_bitmap_free(g_want[i]);
    }
    roaring_bitmap_free(g_universe);
    attr_index_free(g_ai);
    return 0;
}
