/* SPDX-License-Identifier: MIT */
/*
 * ivfpq.h -- a host-free IVF-PQ index: a k-means coarse quantiser with
 * `nlist` inverted lists and a product quantiser (m sub-quantisers of 8 bits,
 * 256 centroids each) on the residuals x - c(x). It never touches files: the
 * host persists what ivfpq_serialize returns.
 *
 * Distances. Asymmetric: the query stays in float32, the stored vector is its
 * list centroid plus the decoded residual. For L2 the per-list lookup table
 * comes from FAISS's decomposition
 *     ||q - c - r||^2 = ||q - c||^2 + (||r||^2 + 2<c, r>) - 2<q, r>
 * where the middle term is precomputed per (list, sub-quantiser, code) at
 * training time (when it fits in IVFPQ_PRECOMP_MAX_BYTES) and the last term
 * once per query. For IP (and COSINE, whose vectors the host normalises),
 * -<q, c + r> = -<q, c> - <q, r> needs only the per-query table. The coarse
 * quantiser assigns and probes by L2 for L2 and by largest dot product for
 * IP and COSINE. Reported distances use the flat_metric conventions (squared
 * L2, -dot, 1 - dot).
 *
 * Layout. A list stores its rows' ids and their codes in groups of 8 rows,
 * sub-quantiser-major inside a group (byte j*8 + v is row v's code j), so a
 * SIMD kernel scores 8 rows per step with one 8-byte load and one gather per
 * sub-quantiser (dist_kernels.pq_scan8). Memory per row: m bytes + a 4-byte
 * id (+ the padding of a list's last group).
 *
 * Sub-quantiser j covers dimensions [j*dim/m, (j+1)*dim/m): m need not divide
 * dim (it must be <= dim).
 *
 * Lifecycle. ivfpq_train learns centroids and codebooks from a sample (capped
 * at IVFPQ_MAX_POINTS_PER_CENTROID points per centroid, like FAISS) and leaves
 * the lists empty; the host then adds rows. Deletes are the host's: searches
 * take an accept callback (the host's live set and filter). Rows stay in their
 * lists until ivfpq_clear_lists; the host rebuilds the lists at compaction
 * (vacuum), which needs no retraining.
 *
 * Threads. Searches may run concurrently with each other. Train, add, clear
 * and deserialize need exclusive access. ivfpq_train and ivfpq_add_batch
 * parallelise internally over `nthreads` threads.
 */
#ifndef QUARRY_IVFPQ_H
#define QUARRY_IVFPQ_H

#include <stddef.h>
#include <stdint.h>

#include "../flat/flat.h"
#include "../vec/distance.h"

#define IVFPQ_KSUB 256 /* 8-bit codes */
#define IVFPQ_GROUP 8  /* rows per code group */
#define IVFPQ_MAX_NLIST 65536u
#define IVFPQ_DEFAULT_NITER 25
#define IVFPQ_MAX_POINTS_PER_CENTROID 256
#define IVFPQ_PRECOMP_MAX_BYTES (512u << 20)

typedef struct ivfpq ivfpq;

typedef struct ivfpq_config {
    flat_metric metric;
    uint32_t dim;   /* >= 1 */
    uint32_t nlist; /* 1..IVFPQ_MAX_NLIST */
    uint32_t m;     /* 1..dim sub-quantisers */
    uint32_t niter; /* k-means iterations; 0 = IVFPQ_DEFAULT_NITER */
    uint64_t seed;  /* sampling and initialisation (deterministic training) */
    const dist_kernels *kern; /* NULL = dist_get() */
    const volatile int *cancel; /* NULL, or nonzero = stop training/adding:
                                   QUARRY_INTERRUPTED */
} ivfpq_config;

/* Create an untrained index. 0, QUARRY_INVALID or QUARRY_NOMEM. */
int ivfpq_new(const ivfpq_config *cfg, ivfpq **out);
void ivfpq_free(ivfpq *ix);
const ivfpq_config *ivfpq_get_config(const ivfpq *ix);

/*
 * k-means on n points (point i at base + i*stride floats, stride >= dim) into
 * k centroids written to `cent` (k*dim floats). Sampled initialisation with
 * `seed`, `niter` Lloyd iterations, empty clusters repaired by splitting a
 * large one (FAISS's rule). `ip` = assign by largest dot product instead of
 * smallest L2. Needs n >= k. 0, QUARRY_INVALID or QUARRY_NOMEM.
 */
int ivfpq_kmeans(const float *base, size_t n, size_t stride, size_t dim, size_t k,
                 uint32_t niter, uint64_t seed, int ip, int nthreads, const dist_kernels *kern,
                 const volatile int *cancel, float *cent);

/*
 * Seeded sampling without replacement: a partial Fisher-Yates shuffle that
 * moves a uniform choice of k of a[0..n) to a[0..k) (k <= n). Deterministic
 * for a seed; used for training samples and k-means initialisation.
 */
void ivfpq_sample(uint32_t *a, size_t n, size_t k, uint64_t seed);

/*
 * Train on the n vectors at base + rows[i]*stride (rows NULL = rows 0..n-1).
 * Samples at most nlist*256 points for the coarse quantiser and 65536 for the
 * codebooks. Needs n >= max(nlist, 256). Empties the lists. 0, QUARRY_INVALID
 * (too few points) or QUARRY_NOMEM; on failure the index is left untrained.
 */
int ivfpq_train(ivfpq *ix, const float *base, const uint32_t *rows, size_t n, size_t stride,
                int nthreads);
int ivfpq_is_trained(const ivfpq *ix);

/* Encode v: its list and its m code bytes. The index must be trained. */
void ivfpq_encode(const ivfpq *ix, const float *v, uint32_t *list, uint8_t *code);
/* The vector a (list, code) pair stands for (dim floats). */
void ivfpq_decode(const ivfpq *ix, uint32_t list, const uint8_t *code, float *out);

/* Encode and append rows (vector of rows[i] at base + rows[i]*stride).
 * 0 or QUARRY_NOMEM (then some rows may have been added). */
int ivfpq_add_batch(ivfpq *ix, const uint32_t *rows, size_t n, const float *base, size_t stride,
                    int nthreads);
int ivfpq_add(ivfpq *ix, uint32_t row, const float *v);
/* Drop every row, keep the training. */
void ivfpq_clear_lists(ivfpq *ix);
/* Give back the lists' growth slack (capacity down to the next group of 8),
 * e.g. after a bulk build. Never fails (a failed realloc keeps the block). */
void ivfpq_shrink(ivfpq *ix);

size_t ivfpq_size(const ivfpq *ix);   /* rows in the lists */
size_t ivfpq_memory(const ivfpq *ix); /* heap bytes: centroids, codebooks, tables, lists */
size_t ivfpq_code_bytes(const ivfpq *ix); /* bytes of codes + ids (the per-row cost) */

typedef struct ivfpq_search_params {
    uint32_t nprobe;       /* lists scanned; clamped to [1, nlist] */
    uint32_t refine;       /* > 1: rank refine*k PQ candidates exactly with `base` */
    const float *base;     /* the host's float vectors (row r at base + r*stride) */
    size_t stride;
    flat_accept_fn accept; /* NULL = every row; called only for rows that can enter */
    void *accept_ctx;
    flat_stop_fn stop;     /* NULL = never; polled between lists (flat.h) */
    void *stop_ctx;
} ivfpq_search_params;

/*
 * Up to k rows nearest to q, sorted ascending by (dist, row), written to out.
 * Returns the count. Distances are PQ estimates, or exact ones when refined.
 * Thread-safe against other searches. An untrained index returns 0.
 */
size_t ivfpq_search(const ivfpq *ix, const float *q, size_t k, const ivfpq_search_params *p,
                    topk_hit *out);

/*
 * Training and lists in a versioned, self-describing buffer (q_malloc'd).
 * Deserialising needs an index created with the same config; it replaces
 * the training and the lists. Bytes are hostile: any inconsistency (a row
 * >= max_rows included) gives QUARRY_CORRUPT and leaves the index untrained.
 */
int ivfpq_serialize(const ivfpq *ix, uint8_t **buf, size_t *len);
int ivfpq_deserialize(ivfpq *ix, const uint8_t *buf, size_t len, uint32_t max_rows);
/* Create an index from bytes, taking nlist and m from them; `base` gives the
 * metric, dim, seed, kernels and cancel flag, which the bytes must match.
 * 0, QUARRY_CORRUPT or QUARRY_NOMEM. */
int ivfpq_load(const ivfpq_config *base, const uint8_t *buf, size_t len, uint32_t max_rows,
               ivfpq **out);

#endif
