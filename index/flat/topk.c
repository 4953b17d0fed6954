/* SPDX-License-Identifier: MIT */
/*
 * topk.c -- bounded max-heap of the k best (distance, row) pairs.
 *
 * The heap is ordered by the pair (dist, row) compared lexicographically, with
 * the *worst* pair at the root, so "does this candidate make it" is one
 * comparison against h[0] and a replacement is one sift-down (O(log k)). Using
 * the row as the second key makes the kept set, not just its order, independent
 * of the order candidates arrive in: among equal distances the smaller row
 * always wins.
 *
 * NaN distances are refused outright (they compare false with everything and
 * would corrupt the heap order). topk_sort turns the heap into an ascending
 * array in place (heap sort, no extra memory); afterwards the structure is no
 * longer a heap, so call topk_init before pushing again.
 */
#include "topk.h"

#include <math.h>

/* a is worse (sorts after) b */
static inline int worse(const topk_hit *a, const topk_hit *b) {
    return a->dist > b->dist || (a->dist == b->dist && a->row > b->row);
}

void topk_init(topk *t, topk_hit *storage, size_t k) {
    t->h = storage;
    t->n = 0;
    t->k = k;
}

float topk_worst(const topk *t) {
    if (t->k == 0) return -INFINITY; /* nothing can be kept */
    if (t->n < t->k) return INFINITY;
    return t->h[0].dist;
}

static void sift_down(topk_hit *h, size_t n, size_t i) {
    topk_hit x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(&h[c + 1], &h[c])) c++;
        if (!worse(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

void topk_push(topk *t, float dist, uint32_t row) {
    if (isnan(dist) || t->k == 0) return;
    topk_hit x = {dist, row};
    topk_hit *h = t->h;
    if (t->n < t->k) {
        size_t i = t->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(&x, &h[p])) break;
            h[i] = h[p];
            i = p;
        }
        h[i] = x;
        return;
    }
    if (!worse(&h[0], &x)) return; /* not better than the current worst */
    h[0] = x;
    sift_down(h, t->n, 0);
}

size_t topk_sort(topk *t) {
    topk_hit *h = t->h;
    for (size_t m = t->n; m > 1; m--) {
        topk_hit top = h[0];
        h[0] = h[m - 1];
        h[m - 1] = top;
        sift_down(h, m - 1, 0);
    }
    return t->n;
}
