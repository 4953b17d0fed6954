/* SPDX-License-Identifier: MIT */
/*
 * flat.c -- exact k-NN by scanning every candidate row.
 *
 * The scan is organised around the batch distance kernel: rows are handed to
 * it in blocks of up to FLAT_BLOCK rows, it writes raw values (squared L2 or
 * dot product) into a small stack buffer that stays in L1, and a second tight
 * loop turns them into distances and offers only those that beat the current
 * k-th best to the heap. With k much smaller than the row count almost every
 * row fails that one comparison, so the heap costs nearly nothing and the scan
 * runs at the speed of the kernel (which is bound by memory bandwidth on large
 * sets).
 *
 * Deleted rows: the `live` bitmap is walked as runs of set bits. Finding the
 * next set (or clear) bit looks at whole 64-bit words, so long dead stretches
 * are skipped a word at a time and long live stretches go to the kernel in
 * full blocks; only live rows are ever read.
 *
 * The filter callback runs only for live rows whose distance would enter the
 * result, so a cheap scan with an expensive filter stays cheap.
 *
 * Distances: L2 is used as is; IP becomes -dot; COSINE becomes 1 - dot (the
 * vectors are unit length, so this is 1 - cosine similarity). Rows are visited
 * in ascending order and a candidate must be strictly better than the current
 * worst, so among equal distances the smaller row is kept (the heap enforces
 * the same rule for any order). NaN distances never qualify. Row numbers are
 * uint32_t: nrows must not exceed 2^32.
 */
#include "flat.h"

#include <math.h>

#define FLAT_BLOCK 512

typedef struct scan_state {
    const flat_scan *s;
    const float *query;
    dist_batch_fn batch;
    topk t;
    float worst;
    size_t work;  /* floats since the last stop poll */
    int stopped;
} scan_state;

/* Offer raw[0..n) (rows r0..r0+n) to the heap; CONV turns a raw value into a
 * distance. */
#define OFFER_LOOP(CONV)                                                       \
    for (size_t i = 0; i < n; i++) {                                           \
        float d = CONV(raw[i]);                                                \
        if (d < st->worst) {                                                   \
            uint32_t row = (uint32_t)(r0 + i);                                 \
            if (s->accept && !s->accept(s->accept_ctx, row)) continue;         \
            topk_push(&st->t, d, row);                                         \
            st->worst = topk_worst(&st->t);                                    \
        }                                                                      \
    }

#define CONV_L2(x) (x)
#define CONV_IP(x) (-(x))
#define CONV_COS(x) (1.0f - (x))

static void offer(scan_state *st, const float *raw, size_t r0, size_t n) {
    const flat_scan *s = st->s;
    switch (s->metric) {
    case FLAT_IP: OFFER_LOOP(CONV_IP) break;
    case FLAT_COSINE: OFFER_LOOP(CONV_COS) break;
    default: OFFER_LOOP(CONV_L2) break;
    }
}

/* Rows [r0, r0+n), all live. */
static void scan_run(scan_state *st, size_t r0, size_t n) {
    const flat_scan *s = st->s;
    float raw[FLAT_BLOCK];
    while (n > 0) {
        size_t m = n < FLAT_BLOCK ? n : FLAT_BLOCK;
        st->batch(st->query, s->base + r0 * s->stride, m, s->dim, s->stride, raw);
        offer(st, raw, r0, m);
        r0 += m;
        n -= m;
        if (s->stop && (st->work += m * s->dim) >= FLAT_STOP_EVERY) {
            st->work = 0;
            if (s->stop(s->stop_ctx)) {
                st->stopped = 1;
                return;
            }
        }
    }
}

/* First row >= r with its bit equal to `want`, or end. */
static size_t next_bit(const uint64_t *live, size_t r, size_t end, int want) {
    while (r < end) {
        uint64_t w = live[r / 64];
        if (!want) w = ~w;
        w >>= r % 64;
        if (w) {
            r += (size_t)__builtin_ctzll(w);
            return r < end ? r : end;
        }
        r = (r / 64 + 1) * 64; /* rest of this word has no such bit */
    }
    return end;
}

size_t flat_search(const flat_scan *s, const float *query, size_t k, topk_hit *out) {
    if (k == 0 || s->nrows == 0) return 0;
    const dist_kernels *kern = s->kern ? s->kern : dist_get();
    scan_state st = {
        .s = s,
        .query = query,
        .batch = s->metric == FLAT_L2 ? kern->l2_batch : kern->ip_batch,
        .worst = INFINITY,
    };
    topk_init(&st.t, out, k);

    if (!s->live) {
        scan_run(&st, 0, s->nrows);
    } else {
        size_t r = next_bit(s->live, 0, s->nrows, 1);
        while (r < s->nrows && !st.stopped) {
            size_t e = next_bit(s->live, r, s->nrows, 0);
            scan_run(&st, r, e - r);
            r = next_bit(s->live, e, s->nrows, 1);
        }
    }
    return topk_sort(&st.t);
}
