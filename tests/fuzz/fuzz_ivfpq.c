/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the IVF-PQ index decoder (a checkpoint section), on the corpus's
 * shape: dimension 4, row ids below 64. Whatever decodes must then search
 * (every nprobe path, with and without re-ranking) and accept new rows
 * without tripping the sanitizers. Tried as L2 (precomputed tables) and as IP.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "common/qcommon.h"
#include "index/ivfpq/ivfpq.h"

#define DIM 4
#define ROWS 64

static float g_base[ROWS * DIM];

static void one(const uint8_t *data, size_t size, flat_metric metric) {
    ivfpq_config cfg = {metric, DIM, 0, 0, 0, 1, NULL, NULL};
    ivfpq *ix = NULL;
    if (ivfpq_load(&cfg, data, size, ROWS, &ix) != 0) return;
    float q[DIM] = {0.5f, -1.0f, 2.0f, 0.25f};
    topk_hit hits[8];
    for (uint32_t np = 1; np <= 3; np++) {
        ivfpq_search_params p = {np * 7, np == 2 ? 3 : 0, g_base, DIM, NULL, NULL, NULL, NULL};
        (void)ivfpq_search(ix, q, 8, &p, hits);
    }
    (void)ivfpq_add(ix, 5, g_base + 5 * DIM);
    uint8_t *out = NULL;
    size_t len = 0;
    if (ivfpq_serialize(ix, &out, &len) == 0) q_free(out);
    ivfpq_free(ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_base[1])
        for (int i = 0; i < ROWS * DIM; i++) g_base[i] = (float)((i * 37) % 23) - 11.0f;
    one(data, size, FLAT_L2);
    /* the same bytes claiming the IP metric (the header's metric field) */
    if (size >= 12) {
        uint8_t *copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        put_u32(copy + 8, FLAT_IP);
        one(copy, size, FLAT_IP);
        free(copy);
    }
    return 0;
}
