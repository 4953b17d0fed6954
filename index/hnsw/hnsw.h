/* SPDX-License-Identifier: MIT */
/*
 * hnsw.h -- a host-free HNSW index (Malkov & Yashunin, with the neighbour
 * selection heuristic). It never touches files: the host persists what
 * hnsw_serialize returns.
 *
 * Storage. The index owns the vectors: node n's level-0 block holds its
 * level-0 links and, right after them, its vector, so a search touches one
 * contiguous block per visited node (hnswlib's layout). The host writes a
 * node's vector at hnsw_vector(h, n) and then inserts it. All vectors sit at
 * a fixed stride from hnsw_vectors(h), which lets the host run an exact flat
 * scan over the same memory (no second copy).
 *
 * Node ids are the host's dense row numbers. A node may exist without being
 * in the graph (a row without a vector, or one not inserted yet); a deleted
 * node stays in the graph as a tombstone: it still routes searches but is
 * never returned.
 *
 * Threads. Searches may run concurrently with each other. Inserts, deletes,
 * reserve and deserialize need exclusive access (the host's write lock);
 * hnsw_insert_batch parallelises internally over `nthreads` threads.
 */
#ifndef QUARRY_HNSW_H
#define QUARRY_HNSW_H

#include <stddef.h>
#include <stdint.h>

#include "../flat/flat.h"
#include "../vec/distance.h"

#define HNSW_DEFAULT_M 16
#define HNSW_MIN_M 2
#define HNSW_MAX_M 512
#define HNSW_DEFAULT_EF_CONSTRUCTION 200
#define HNSW_DEFAULT_EF_SEARCH 64

typedef struct hnsw hnsw;

typedef struct hnsw_config {
    flat_metric metric;  /* COSINE: the host stores unit vectors */
    uint32_t dim;        /* >= 1 */
    uint32_t m;          /* links per node on upper levels; level 0 has 2*m */
    uint32_t ef_construction;
    uint64_t seed;       /* level generator seed (deterministic builds) */
    const dist_kernels *kern; /* NULL = dist_get() */
} hnsw_config;

/* Create an empty index. Returns 0, QUARRY_INVALID or QUARRY_NOMEM. */
int hnsw_new(const hnsw_config *cfg, hnsw **out);
void hnsw_free(hnsw *h);

/* Make room for nodes [0, n). May move the vectors: hnsw_vector/hnsw_vectors
 * pointers taken before are invalid after. 0 or QUARRY_NOMEM. */
int hnsw_reserve(hnsw *h, uint32_t n);
/* Capacity in nodes. */
uint32_t hnsw_capacity(const hnsw *h);

/* Where node n's vector lives (n < capacity); the host writes dim floats. */
float *hnsw_vector(hnsw *h, uint32_t n);
/* Node 0's vector and the distance in floats between consecutive nodes'
 * vectors (for flat scans over the index's memory). */
const float *hnsw_vectors(const hnsw *h);
size_t hnsw_stride(const hnsw *h);

/* Insert node n (its vector written) into the graph. n < capacity, not yet
 * inserted. 0 or QUARRY_NOMEM. */
int hnsw_insert(hnsw *h, uint32_t n);
/* Insert many nodes using up to nthreads threads (the caller's included). */
int hnsw_insert_batch(hnsw *h, const uint32_t *nodes, size_t count, int nthreads);
/* Tombstone node n: it keeps routing, it is never returned. */
void hnsw_delete(hnsw *h, uint32_t n);
int hnsw_is_deleted(const hnsw *h, uint32_t n);
int hnsw_contains(const hnsw *h, uint32_t n); /* inserted (deleted or not) */

/* Number of inserted nodes, deleted ones included. */
size_t hnsw_size(const hnsw *h);
size_t hnsw_deleted_count(const hnsw *h);
/* Heap bytes held by the index (vectors included). */
size_t hnsw_memory(const hnsw *h);

/*
 * k nearest non-deleted nodes to q with beam width max(ef, k). When `accept`
 * is given, nodes it rejects still route the search but never enter the
 * results. Writes up to k hits to out sorted by (dist, node); returns the
 * count. Thread-safe against other searches.
 */
size_t hnsw_search(const hnsw *h, const float *q, size_t k, uint32_t ef, flat_accept_fn accept,
                   void *accept_ctx, topk_hit *out);
/* The same, polling `stop` (flat.h) every few dozen node expansions: when it
 * returns nonzero the beam search ends early with the best nodes found so
 * far. */
size_t hnsw_search_stop(const hnsw *h, const float *q, size_t k, uint32_t ef,
                        flat_accept_fn accept, void *accept_ctx, flat_stop_fn stop,
                        void *stop_ctx, topk_hit *out);

/*
 * The graph (levels, links, tombstones, entry point), not the vectors, in a
 * versioned, self-describing buffer (q_malloc'd). Deserialising needs an
 * index with the same config whose vectors the host has already written
 * (hnsw_reserve + hnsw_vector); it replaces the graph. Bytes are hostile:
 * any inconsistency gives QUARRY_CORRUPT and leaves the index empty.
 */
int hnsw_serialize(const hnsw *h, uint8_t **buf, size_t *len);
int hnsw_deserialize(hnsw *h, const uint8_t *buf, size_t len, uint32_t nodes);

/* Check the invariants (every link points at an inserted node, degrees
 * within bounds, no self links, levels consistent, entry point at the top
 * level). 0, or QUARRY_CORRUPT with a description in msg. */
int hnsw_check(const hnsw *h, char *msg, size_t msg_cap);

#endif
