/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the checkpoint file decoder and the HNSW graph decoder. The
 * input is a checkpoint file; its payload is handed to hnsw_deserialize on an
 * index of 64 nodes of dimension 4 (the corpus is made with that shape).
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz.h"

#include "common/qcommon.h"
#include "index/hnsw/hnsw.h"
#include "storage/storage.h"

static void one(const uint8_t *data, size_t size);

/* Also feed the input with its trailing XXH3-64 (the graph format's own
 * checksum) recomputed, so mutations reach the structure checks. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(data, size);
    if (size >= 8) {
        uint8_t *copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        put_u64(copy + size - 8, XXH3_64bits(copy, size - 8));
        one(copy, size);
        free(copy);
    }
    return 0;
}

static void one(const uint8_t *data, size_t size) {
    ckpt_info info;
    const uint8_t *payload = data;
    size_t plen = size;
    if (ckpt_decode(data, size, &info, &payload, &plen) != 0) {
        payload = data; /* also feed raw bytes straight to the graph decoder */
        plen = size;
    }
    hnsw_config cfg = {FLAT_L2, 4, 8, 32, 1, NULL};
    hnsw *h;
    if (hnsw_new(&cfg, &h) != 0) return;
    if (hnsw_reserve(h, 64) == 0) {
        for (uint32_t n = 0; n < 64; n++) {
            float *v = hnsw_vector(h, n);
            for (int j = 0; j < 4; j++) v[j] = (float)((n * 7 + j * 13) % 17);
        }
        if (hnsw_deserialize(h, payload, plen, 64) == 0) {
            char msg[256];
            if (hnsw_check(h, msg, sizeof msg) == 0) {
                float q[4] = {1, 2, 3, 4};
                topk_hit out[5];
                (void)hnsw_search(h, q, 5, 16, NULL, NULL, out);
            }
        }
    }
    hnsw_free(h);
}
