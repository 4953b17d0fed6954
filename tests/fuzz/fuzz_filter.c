/* SPDX-License-Identifier: MIT */
/* Fuzz target: the filter compiler and both evaluators (bitmap and per-row,
 * which must agree), and the metadata validator, on hostile JSON text. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    filter_expr *f;
    if (filter_compile(s, size, &f) == 0) {
        /* both evaluators, which must agree */
        json_t *meta[3] = {
            json_loads("{\"lang\":\"en\",\"n\":3,\"ok\":true,\"tags\":[\"a\",\"b\"]}", 0,
                       NULL),
            json_loads("{\"n\":-2.5,\"d\":\"2024-01-02\"}", 0, NULL), NULL};
        attr_index *ai;
        roaring_bitmap_t *all = roaring_bitmap_create(), *out = NULL;
        if (attr_index_new(&ai) == 0) {
            for (uint32_t r = 0; r < 3; r++) {
                if (meta[r]) attr_index_add(ai, r, meta[r]);
                roaring_bitmap_add(all, r);
            }
            if (filter_eval(f, ai, all, &out) == 0) {
                for (uint32_t r = 0; r < 3; r++)
                    if (roaring_bitmap_contains(out, r) != !!filter_match(f, meta[r])) abort();
                roaring_bitmap_free(out);
            }
            attr_index_free(ai);
        }
        roaring_bitmap_free(all);
        for (int i = 0; i < 3; i++) json_decref(meta[i]);
        filter_expr_free(f);
    }
    char *canon;
    size_t clen;
    if (q_metadata_canon(s, size, &canon, &clen) == 0) free(canon);
    (void)q_utf8_valid(s, size);
    free(s);
    return 0;
}
