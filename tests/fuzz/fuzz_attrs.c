/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the metadata (filter) index decoder, attr_index_deserialize
 * (index/filter/attr_serde.c, checkpoint section 3), including the CRoaring
 * bitmaps inside it. A decoded index must then answer every kind of filter,
 * serialise to bytes that decode again and serialise identically, and take
 * bulk removals and new rows.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz.h"

#include "common/qcommon.h"
#include "index/filter/filter.h"

/* Rows the decoder accepts (two CRoaring containers' worth). */
#define FUZZ_ROWS (1u << 17)

static const char *const FILTERS[] = {
    "{}",
    "{\"kw\":\"k1\"}",
    "{\"in\":{\"field\":\"kw\",\"values\":[\"k0\",\"k2\",1,true]}}",
    "{\"eq\":{\"field\":\"flag\",\"value\":false}}",
    "{\"range\":{\"field\":\"n\",\"gte\":-3,\"lt\":7}}",
    "{\"range\":{\"field\":\"n\",\"gt\":-100}}",
    "{\"range\":{\"field\":\"s\",\"gte\":\"b\",\"lte\":\"t3\"}}",
    "{\"and\":[{\"tags\":\"t1\"},{\"range\":{\"field\":\"n\",\"lt\":100}}]}",
    "{\"or\":[{\"exists\":\"tags\"},{\"not\":{\"flag\":true}}]}",
    "{\"not\":{\"exists\":\"kw\"}}",
};
#define NFILTERS (sizeof FILTERS / sizeof *FILTERS)

static filter_expr *g_expr[NFILTERS];
static roaring_bitmap_t *g_universe, *g_some, *g_few;

static void setup(void) {
    if (g_universe) return;
    for (size_t i = 0; i < NFILTERS; i++)
        if (filter_compile(FILTERS[i], strlen(FILTERS[i]), &g_expr[i])) abort();
    g_universe = roaring_bitmap_create();
    g_some = roaring_bitmap_create();
    g_few = roaring_bitmap_create();
    roaring_bitmap_add(g_few, 7); /* few rows: removed one by one */
    roaring_bitmap_add(g_few, 1000);
    roaring_bitmap_add_range(g_universe, 0, FUZZ_ROWS);
    for (uint32_t r = 0; r < 2048; r += 3) roaring_bitmap_add(g_some, r);
    roaring_bitmap_add(g_some, FUZZ_ROWS - 1); /* the row added below */
}

static void eval_all(const attr_index *ai) {
    for (size_t i = 0; i < NFILTERS; i++) {
        roaring_bitmap_t *res = NULL;
        if (filter_eval(g_expr[i], ai, g_universe, &res) == 0 && res) roaring_bitmap_free(res);
    }
}

static void one(const uint8_t *data, size_t size) {
    attr_index *ai;
    if (attr_index_new(&ai)) return;
    if (attr_index_deserialize(ai, data, size, FUZZ_ROWS) == 0) {
        eval_all(ai);
        uint8_t *b1 = NULL, *b2 = NULL;
        size_t l1, l2;
        if (attr_index_serialize(ai, &b1, &l1) == 0) {
            attr_index *again;
            if (attr_index_new(&again) == 0) {
                if (attr_index_deserialize(again, b1, l1, FUZZ_ROWS) != 0) abort();
                if (attr_index_serialize(again, &b2, &l2) == 0 &&
                    (l1 != l2 || memcmp(b1, b2, l1) != 0))
                    abort(); /* decode . encode is not idempotent */
                attr_index_free(again);
            }
        }
        q_free(b1);
        q_free(b2);
        attr_index_remove_rows(ai, g_few);
        eval_all(ai);
        attr_index_remove_rows(ai, g_some);
        json_t *meta =
            json_pack("{s:s,s:i,s:b,s:[s]}", "kw", "k1", "n", 3, "flag", 1, "tags", "t1");
        if (meta) (void)attr_index_add(ai, FUZZ_ROWS - 1, meta);
        eval_all(ai);
        if (meta) (void)attr_index_remove(ai, FUZZ_ROWS - 1, meta);
        json_decref(meta);
    } else if (attr_index_field_count(ai) != 0) {
        abort(); /* a failed decode must leave the index empty */
    }
    attr_index_free(ai);
}

/* Also feed the input with its trailing XXH3-64 recomputed, so mutations
 * reach the structure checks. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    fuzz_also_resealed(data, size, one);
    return 0;
}
