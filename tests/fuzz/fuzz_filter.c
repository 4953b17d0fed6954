/* SPDX-License-Identifier: MIT */
/* Fuzz target: the filter parser and matcher, and the metadata validator
 * (jansson underneath; our checks on top), on hostile JSON text. */
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
    json_t *f;
    if (q_filter_parse(s, &f) == 0) {
        json_t *meta = json_loads("{\"lang\":\"en\",\"n\":3,\"ok\":true,\"tags\":[\"a\",\"b\"]}",
                                  0, NULL);
        (void)q_filter_match(f, meta);
        (void)q_filter_match(f, NULL);
        json_decref(meta);
        json_decref(f);
    }
    char *canon;
    size_t clen;
    if (q_metadata_canon(s, size, &canon, &clen) == 0) free(canon);
    (void)q_utf8_valid(s, size);
    free(s);
    return 0;
}
