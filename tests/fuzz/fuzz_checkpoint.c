/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the checkpoint file decoder, its section walker, and the
 * index decoders behind it: the HNSW graph (on an index of 64 nodes of
 * dimension 4, the corpus's shape), the BM25 text index and the metadata
 * index (tests/fuzz/fuzz_attrs.c fuzzes that one on its own too).
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz.h"

#include "common/qcommon.h"
#include "index/filter/filter.h"
#include "index/hnsw/hnsw.h"
#include "index/text/text.h"
#include "storage/storage.h"

static void one(const uint8_t *data, size_t size);

/* Also feed the input with its trailing XXH3-64 (the graph format's own
 * checksum) recomputed, so mutations reach the structure checks. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_also_resealed(data, size, one);
    return 0;
}

static void one(const uint8_t *data, size_t size) {
    ckpt_info info;
    const uint8_t *payload = data;
    size_t plen = size;
    if (ckpt_decode(data, size, &info, &payload, &plen) != 0) {
        payload = data; /* also treat raw bytes as a payload of sections */
        plen = size;
    }
    hnsw_config cfg = {FLAT_L2, 4, 8, 32, 1, NULL};
    hnsw *h = NULL;
    bm25 *t = NULL;
    attr_index *ai = NULL;
    if (hnsw_new(&cfg, &h) != 0 || hnsw_reserve(h, 64) != 0 || bm25_new(NULL, &t) != 0 ||
        attr_index_new(&ai) != 0)
        goto out;
    for (uint32_t n = 0; n < 64; n++) {
        float *v = hnsw_vector(h, n);
        for (int j = 0; j < 4; j++) v[j] = (float)((n * 7 + j * 13) % 17);
    }
    size_t off = 0, slen;
    uint32_t kind;
    const uint8_t *sec;
    while (ckpt_next_section(payload, plen, &off, &kind, &sec, &slen) == 1) {
        char msg[256];
        if (kind == CKPT_SECTION_HNSW && hnsw_deserialize(h, sec, slen, 64) == 0 &&
            hnsw_check(h, msg, sizeof msg) == 0) {
            float q[4] = {1, 2, 3, 4};
            topk_hit hits[5];
            (void)hnsw_search(h, q, 5, 16, NULL, NULL, hits);
        }
        if (kind == CKPT_SECTION_BM25 && bm25_deserialize(t, sec, slen) == 0 &&
            bm25_check(t, msg, sizeof msg) == 0) {
            topk_hit hits[5];
            size_t n;
            bm25_search_params p = {5, BM25_OR, NULL, NULL, 0, NULL, NULL, NULL};
            (void)bm25_search(t, "alpha \"beta gamma\"", 18, &p, hits, &n);
        }
        if (kind == CKPT_SECTION_ATTRS && attr_index_deserialize(ai, sec, slen, 64) == 0) {
            filter_expr *e;
            const char *f = "{\"or\":[{\"g\":\"a\"},{\"range\":{\"field\":\"n\",\"gt\":0}}]}";
            roaring_bitmap_t *u = roaring_bitmap_create(), *res = NULL;
            if (u && filter_compile(f, strlen(f), &e) == 0) {
                roaring_bitmap_add_range(u, 0, 64);
                if (filter_eval(e, ai, u, &res) == 0 && res) roaring_bitmap_free(res);
                filter_expr_free(e);
            }
            if (u) roaring_bitmap_free(u);
        }
    }
    /* the graph decoder alone, on raw bytes */
    (void)hnsw_deserialize(h, data, size, 64);
out:
    hnsw_free(h);
    bm25_free(t);
    attr_index_free(ai);
}
