/* SPDX-License-Identifier: MIT */
/*
 * topk.h -- a bounded max-heap that keeps the k smallest (distance, row) pairs.
 *
 * Used by flat search and by every later index. Ties are broken by row number
 * (the smaller row -- the older version -- wins), so results are deterministic.
 */
#ifndef QUARRY_TOPK_H
#define QUARRY_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct topk_hit {
    float dist;
    uint32_t row;
} topk_hit;

typedef struct topk {
    topk_hit *h; /* caller-provided storage of capacity k */
    size_t n;
    size_t k;
} topk;

void topk_init(topk *t, topk_hit *storage, size_t k);
/* The current worst kept distance, +inf while fewer than k are kept. */
float topk_worst(const topk *t);
/* Offer a candidate; keeps it if it beats the current worst. */
void topk_push(topk *t, float dist, uint32_t row);
/* Sort the kept hits ascending by (dist, row) in place; returns the count. */
size_t topk_sort(topk *t);

#endif
