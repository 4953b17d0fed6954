/* SPDX-License-Identifier: MIT */
/*
 * flat.h -- exact (brute-force) k-NN over vectors held contiguously in memory.
 *
 * The ground truth for every approximate index and the fallback for small or
 * heavily filtered sets. Never touches files.
 */
#ifndef QUARRY_FLAT_H
#define QUARRY_FLAT_H

#include <stddef.h>
#include <stdint.h>

#include "../vec/distance.h"
#include "topk.h"

typedef enum flat_metric {
    FLAT_L2 = 0,     /* squared L2 */
    FLAT_IP = 1,     /* distance = -dot */
    FLAT_COSINE = 2  /* distance = 1 - dot; base and query must be unit vectors */
} flat_metric;

/* Return nonzero to accept `row` (filter). */
typedef int (*flat_accept_fn)(void *ctx, uint32_t row);

/* Polled every few tens of microseconds of work by the searches of every
 * index (flat, HNSW, IVF-PQ, BM25): return nonzero to abandon the search. An
 * abandoned search returns what it has so far; the caller, which owns the
 * context, knows that it stopped and discards the hits. */
typedef int (*flat_stop_fn)(void *ctx);

/* Floats of distance work between two polls of a stop function (about 20-50
 * microseconds on one core). */
#define FLAT_STOP_EVERY (1u << 18)

typedef struct flat_scan {
    const dist_kernels *kern; /* NULL = dist_get() */
    flat_metric metric;
    const float *base;        /* row r starts at base + r*stride */
    size_t nrows;
    size_t dim;
    size_t stride;            /* floats between rows, >= dim */
    const uint64_t *live;     /* bit r set = row r is a candidate; NULL = all rows */
    flat_accept_fn accept;    /* NULL = no filter; called only for live rows */
    void *accept_ctx;
    flat_stop_fn stop;        /* NULL = run to the end */
    void *stop_ctx;
} flat_scan;

/*
 * The k nearest candidate rows to `query` (dim floats), written to out[0..ret)
 * sorted ascending by (dist, row). Returns the count (< k only when fewer rows
 * qualify). `out` has room for k hits. Thread-safe (no shared state).
 */
size_t flat_search(const flat_scan *s, const float *query, size_t k, topk_hit *out);

#endif
