/* SPDX-License-Identifier: MIT */
/*
 * hnsw_int.h -- the HNSW index's private structure and the helpers shared by
 * its per-phase files (hnsw.c, hnsw_search.c, hnsw_insert.c, hnsw_serde.c,
 * hnsw_check.c).
 *
 * Memory layout (see hnsw.h for the contract):
 *  - `blocks`: one 64-byte aligned array of `cap` level-0 blocks of `block`
 *    bytes. Block n = [u32 count][m0 u32 links][pad][dim floats][pad]. The
 *    vector starts at `vec_off`; both `vec_off` and `block` are multiples of
 *    64 unless HNSW_PACKED is defined (then only of 4), so every vector is
 *    cache-line aligned and a link list plus vector never share a line with
 *    another node.
 *  - `upper[n]`: NULL for level-0 nodes, else levels[n] lists of (1 + m) u32
 *    ([count][m links]) for levels 1..levels[n].
 *  - `levels[n]`: the node's top level, or HNSW_LEVEL_NONE if it is not in the
 *    graph. `dead`: the tombstone bitmap.
 *
 * Distances: internally "smaller is closer" values: squared L2, or -dot for
 * IP and COSINE (COSINE's 1 - dot is the same order; hnsw_search adds the 1
 * on output, which gives bit-identical values to flat_search's 1 - dot).
 */
#ifndef QUARRY_HNSW_INT_H
#define QUARRY_HNSW_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qcommon.h"
#include "hnsw.h"

#define HNSW_MAX_LEVEL 32         /* levels are clamped to [0, 32] */
#define HNSW_LEVEL_NONE 0xFFu     /* levels[n]: not in the graph */
#define HNSW_NONE UINT32_MAX      /* no node (empty index's entry point) */
#define HNSW_MAX_DIM (1u << 20)   /* keeps every block size computation small */
#define HNSW_MAX_NODES (UINT32_MAX - 1u)

typedef struct hpair {
    float d;
    uint32_t id;
} hpair;

struct hnsw {
    flat_metric metric;
    uint32_t dim;
    uint32_t m;  /* max links on levels >= 1 */
    uint32_t m0; /* max links on level 0 (2m) */
    uint32_t ef_construction;
    const dist_kernels *kern;
    dist_pair_fn raw; /* kern->l2 or kern->ip */
    int neg;          /* distance = -raw (IP, COSINE) */
    double mult;      /* level multiplier 1/ln(m) */
    uint64_t rng;     /* splitmix64 state of the level generator */

    size_t block;   /* bytes per level-0 block */
    size_t vec_off; /* byte offset of the vector in a block */
    uint8_t *blocks;
    uint32_t cap;
    uint8_t *levels;
    uint32_t **upper;
    uint64_t *dead;
    size_t count;       /* inserted nodes (tombstones included) */
    size_t ndead;       /* tombstones */
    size_t upper_bytes; /* heap bytes of the upper[] lists */
    uint32_t entry;     /* HNSW_NONE when empty */
    int max_level;      /* -1 when empty */

    /* Set only while hnsw_insert_batch runs threads: one spinlock per node
     * guards that node's link lists (all levels); `glock` guards entry and
     * max_level. No thread ever holds two node locks. */
    atomic_uchar *locks;
    pthread_mutex_t glock;
};

/* ---------------------------------------------------------------- access */

static inline uint32_t *hnsw_links0(const hnsw *h, uint32_t n) {
    return (uint32_t *)(void *)(h->blocks + (size_t)n * h->block);
}

static inline const float *hnsw_vec(const hnsw *h, uint32_t n) {
    return (const float *)(const void *)(h->blocks + (size_t)n * h->block + h->vec_off);
}

/* [count][links] of node n at level lev (n must have level >= lev). */
static inline uint32_t *hnsw_links(const hnsw *h, uint32_t n, int lev) {
    if (lev == 0) return hnsw_links0(h, n);
    return h->upper[n] + (size_t)(lev - 1) * (h->m + 1);
}

static inline uint32_t hnsw_maxdeg(const hnsw *h, int lev) { return lev == 0 ? h->m0 : h->m; }

static inline float hnsw_dist(const hnsw *h, const float *a, const float *b) {
    float d = h->raw(a, b, h->dim);
    return h->neg ? -d : d;
}

static inline int hnsw_dead(const hnsw *h, uint32_t n) {
    return (int)((h->dead[n >> 6] >> (n & 63)) & 1);
}

/* ---------------------------------------------------------------- locks */

static inline void hnsw_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void hnsw_lock_slow(atomic_uchar *l);

static inline void hnsw_lock(const hnsw *h, uint32_t n) {
    atomic_uchar *l = &h->locks[n];
    if (atomic_exchange_explicit(l, 1, memory_order_acquire)) hnsw_lock_slow(l);
}

static inline void hnsw_unlock(const hnsw *h, uint32_t n) {
    atomic_store_explicit(&h->locks[n], 0, memory_order_release);
}

/* ---------------------------------------------------------------- heaps */

/* Max-heap on d (the worst kept pair at [0]). */
static inline void hmax_push(hpair *a, size_t *n, hpair x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) >> 1;
        if (a[p].d >= x.d) break;
        a[i] = a[p];
        i = p;
    }
    a[i] = x;
}

static inline void hmax_pop(hpair *a, size_t *n) {
    size_t m = --(*n);
    if (m == 0) return;
    hpair x = a[m];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && a[c + 1].d > a[c].d) c++;
        if (a[c].d <= x.d) break;
        a[i] = a[c];
        i = c;
    }
    a[i] = x;
}

/* Min-heap on d (the best pair at [0]). */
static inline void hmin_push(hpair *a, size_t *n, hpair x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) >> 1;
        if (a[p].d <= x.d) break;
        a[i] = a[p];
        i = p;
    }
    a[i] = x;
}

static inline void hmin_pop(hpair *a, size_t *n) {
    size_t m = --(*n);
    if (m == 0) return;
    hpair x = a[m];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && a[c + 1].d < a[c].d) c++;
        if (a[c].d >= x.d) break;
        a[i] = a[c];
        i = c;
    }
    a[i] = x;
}

/* ---------------------------------------------------------------- per-thread scratch */

/*
 * One per thread, shared by every index the thread touches: the visited
 * tags (sized to the largest capacity seen; a node is visited in the current
 * search iff vis[n] == epoch, so starting a search is one increment, and the
 * array is cleared only when the 16-bit epoch wraps), the two heaps and small
 * buffers. Freed by a thread-exit destructor.
 */
typedef struct hnsw_tls {
    uint16_t *vis;
    size_t vcap;
    uint16_t epoch;
    hpair *cand; /* candidate min-heap (grows) */
    size_t ccap;
    hpair *res; /* result max-heap */
    size_t rcap;
    hpair *sel; /* sorted candidates / heuristic work */
    size_t scap;
    uint32_t *lbuf; /* a copied link list, or unvisited neighbours */
    size_t lcap;
    hpair *work; /* a neighbour's list being shrunk (m0 + 1) */
    size_t wcap;
    uint8_t *done; /* per sel[] entry: expanded (the pool search) */
    size_t dcap;
} hnsw_tls;

/* The calling thread's scratch with room for h's capacity, a result heap of
 * ef + 1 and a selection array of max(ef, m0) + 1. NULL on NOMEM. */
hnsw_tls *hnsw_tls_get(const hnsw *h, size_t ef);
/* Grow the candidate heap (called when full). 0 or -1. */
int hnsw_tls_grow_cand(hnsw_tls *t);

static inline uint16_t hnsw_tls_epoch(hnsw_tls *t) {
    if (++t->epoch == 0) {
        memset(t->vis, 0, t->vcap * sizeof *t->vis);
        t->epoch = 1;
    }
    return t->epoch;
}

/* ---------------------------------------------------------------- shared internals */

typedef struct hnsw_filter {
    flat_accept_fn accept;
    void *ctx;
    flat_stop_fn stop; /* NULL = never; polled every HNSW_STOP_EVERY expansions */
    void *stop_ctx;
} hnsw_filter;

#define HNSW_STOP_EVERY 32

/*
 * Beam search of width ef on level lev from ep (distance epd). Leaves up to
 * ef nodes in t->sel, ascending by distance, and returns their count. With
 * `locked` (threaded inserts) every link list is copied under its node's
 * lock. With a filter in `f`, or tombstones when `skip_dead`, excluded nodes
 * route but are not kept, and the search goes on until ef nodes are kept or
 * the candidates run out (hnswlib's rule).
 */
size_t hnsw_search_layer(const hnsw *h, hnsw_tls *t, const float *q, uint32_t ep, float epd,
                         size_t ef, int lev, int locked, int skip_dead, const hnsw_filter *f);

/* Greedy descent from (*cur, *curd) through levels top..bottom+1. */
void hnsw_greedy(const hnsw *h, hnsw_tls *t, const float *q, uint32_t *cur, float *curd, int top,
                 int bottom, int locked);

/* Draw a level from the index's generator. */
int hnsw_random_level(hnsw *h);

/* Forget the graph (levels, links, tombstones, entry), keep the vectors. */
void hnsw_clear_graph(hnsw *h);

/* Allocate node n's upper lists for `level` (count 0 each). 0 or -1. */
int hnsw_alloc_upper(hnsw *h, uint32_t n, int level);

#endif
