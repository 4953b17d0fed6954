/* SPDX-License-Identifier: MIT */
/*
 * hnsw_insert.c -- inserting nodes (the paper's INSERT with the neighbour
 * selection heuristic), one thread or several.
 *
 * Per node: draw a level; descend greedily from the entry point to the
 * node's level + 1; then on each level from min(level, top) down to 0, beam
 * search with ef_construction, keep m neighbours by the heuristic, link the
 * node to them and each of them back to the node (a neighbour whose list is
 * full re-runs the heuristic over its links plus the node). The closest
 * neighbour is the entry for the next level down.
 *
 * Threads (hnsw_insert_batch). Levels are drawn up front in the order the
 * caller gave (so levels, unlike the graph, do not depend on scheduling),
 * and every upper-level list is allocated before a thread starts: the
 * threaded phase allocates nothing but scratch. Each node has a one-byte
 * spinlock guarding its lists on all levels. A reader copies a list under
 * the lock; a writer updates one list under the lock. A thread never holds
 * two node locks, so there is no lock order and no deadlock (hnswlib instead
 * holds the new node's lock for its whole insert and takes neighbours' locks
 * inside it). The entry point and top level are guarded by a mutex which an
 * insert whose level exceeds the current top holds from start to finish, as
 * in hnswlib, so that two new top-level nodes cannot both miss each other.
 *
 * Two races that cannot occur single-threaded are handled: another thread
 * may reach the new node (through a level already linked) and link itself to
 * one of the node's lower lists before the node wrote that list -- the node
 * then merges instead of overwriting; and a node may thus find itself or a
 * node already linked to it -- self links are dropped and back links are not
 * duplicated.
 */
#include <stdlib.h>

#include "hnsw_int.h"

static int cmp_pair(const void *pa, const void *pb) {
    const hpair *a = pa, *b = pb;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void sort_pairs(hpair *a, size_t n) {
    if (n > 48) {
        qsort(a, n, sizeof *a, cmp_pair);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        hpair x = a[i];
        size_t j = i;
        while (j > 0 && cmp_pair(&a[j - 1], &x) > 0) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/*
 * The heuristic (Algorithm 4 without extension or kept pruned links): walk
 * the candidates c[0..n) in ascending distance to the base point and keep
 * one iff it is at least as close to the base as to every one kept so far;
 * stop at maxc. Fewer than maxc candidates are all kept (hnswlib). In place;
 * returns the count kept.
 */
static size_t heuristic(const hnsw *h, hpair *c, size_t n, size_t maxc) {
    if (n < maxc) return n;
    size_t ns = 0;
    for (size_t i = 0; i < n && ns < maxc; i++) {
        const float *v = hnsw_vec(h, c[i].id);
        int good = 1;
        for (size_t j = 0; j < ns; j++) {
            if (hnsw_dist(h, v, hnsw_vec(h, c[j].id)) < c[i].d) {
                good = 0;
                break;
            }
        }
        if (good) c[ns++] = c[i];
    }
    return ns;
}

/* Write n's list at level l: the selected sel[0..ns). Under threads another
 * insert may have appended itself already; then merge (and prune if over). */
static void set_own(const hnsw *h, hnsw_tls *t, uint32_t n, int l, const hpair *sel, size_t ns,
                    int locked) {
    if (locked) hnsw_lock(h, n);
    uint32_t *ll = hnsw_links(h, n, l);
    uint32_t cnt = ll[0];
    if (cnt == 0) {
        for (size_t i = 0; i < ns; i++) ll[1 + i] = sel[i].id;
        ll[0] = (uint32_t)ns;
    } else {
        hpair *w = t->work;
        size_t nw = 0;
        for (size_t i = 0; i < ns; i++) w[nw++] = sel[i];
        const float *v = hnsw_vec(h, n);
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t x = ll[1 + j];
            int dup = 0;
            for (size_t i = 0; i < ns && !dup; i++) dup = sel[i].id == x;
            if (!dup) w[nw++] = (hpair){hnsw_dist(h, v, hnsw_vec(h, x)), x};
        }
        size_t maxc = hnsw_maxdeg(h, l);
        if (nw > maxc) {
            sort_pairs(w, nw);
            nw = heuristic(h, w, nw, maxc);
        }
        for (size_t i = 0; i < nw; i++) ll[1 + i] = w[i].id;
        ll[0] = (uint32_t)nw;
    }
    if (locked) hnsw_unlock(h, n);
}

/* Link e (a selected neighbour of n at level l, at distance dn) back to n. */
static void link_back(const hnsw *h, hnsw_tls *t, uint32_t e, uint32_t n, float dn, int l,
                      int locked) {
    uint32_t maxc = hnsw_maxdeg(h, l);
    if (locked) hnsw_lock(h, e);
    uint32_t *ll = hnsw_links(h, e, l);
    uint32_t cnt = ll[0];
    int present = 0;
    if (locked)
        for (uint32_t j = 0; j < cnt && !present; j++) present = ll[1 + j] == n;
    if (!present) {
        if (cnt < maxc) {
            ll[1 + cnt] = n;
            ll[0] = cnt + 1;
        } else {
            hpair *w = t->work;
            const float *ve = hnsw_vec(h, e);
            w[0] = (hpair){dn, n};
            for (uint32_t j = 0; j < cnt; j++)
                w[1 + j] = (hpair){hnsw_dist(h, ve, hnsw_vec(h, ll[1 + j])), ll[1 + j]};
            sort_pairs(w, (size_t)cnt + 1);
            size_t ns = heuristic(h, w, (size_t)cnt + 1, maxc);
            for (size_t i = 0; i < ns; i++) ll[1 + i] = w[i].id;
            ll[0] = (uint32_t)ns;
        }
    }
    if (locked) hnsw_unlock(h, e);
}

/* Insert node n (level drawn, upper lists allocated, levels[n] set). */
static void insert_one(hnsw *h, hnsw_tls *t, uint32_t n, int level, int locked) {
    const float *q = hnsw_vec(h, n);
    if (locked) pthread_mutex_lock(&h->glock);
    uint32_t ep = h->entry;
    int top = h->max_level;
    if (ep == HNSW_NONE) {
        h->entry = n;
        h->max_level = level;
        if (locked) pthread_mutex_unlock(&h->glock);
        return;
    }
    int hold = level > top; /* keep the global lock until the entry is updated */
    if (locked && !hold) pthread_mutex_unlock(&h->glock);

    uint32_t cur = ep;
    float curd = hnsw_dist(h, q, hnsw_vec(h, ep));
    hnsw_greedy(h, t, q, &cur, &curd, top, level, locked);
    int skip_dead = h->ndead > 0;
    for (int l = level < top ? level : top; l >= 0; l--) {
        size_t nw = hnsw_search_layer(h, t, q, cur, curd, h->ef_construction, l, locked,
                                      skip_dead, NULL);
        hpair *sel = t->sel;
        if (locked) { /* the node may have been reached through a level above */
            size_t o = 0;
            for (size_t i = 0; i < nw; i++)
                if (sel[i].id != n) sel[o++] = sel[i];
            nw = o;
        }
        if (nw == 0) continue; /* everything reachable is tombstoned */
        size_t ns = heuristic(h, sel, nw, h->m);
        set_own(h, t, n, l, sel, ns, locked);
        for (size_t i = 0; i < ns; i++) link_back(h, t, sel[i].id, n, sel[i].d, l, locked);
        cur = sel[0].id;
        curd = sel[0].d;
    }
    if (hold) {
        h->entry = n;
        h->max_level = level;
        if (locked) pthread_mutex_unlock(&h->glock);
    }
}

/* ---------------------------------------------------------------- batch */

typedef struct batch {
    hnsw *h;
    const uint32_t *nodes;
    size_t count;
    atomic_size_t next;
} batch;

static void run_batch(batch *b, hnsw_tls *t) {
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
        if (i >= b->count) break;
        uint32_t n = b->nodes[i];
        insert_one(b->h, t, n, b->h->levels[n], 1);
    }
}

static void *worker(void *arg) {
    batch *b = arg;
    hnsw_tls *t = hnsw_tls_get(b->h, b->h->ef_construction);
    if (t) run_batch(b, t); /* without scratch, leave the work to the others */
    return NULL;
}

#define PENDING 0xFEu

int hnsw_insert_batch(hnsw *h, const uint32_t *nodes, size_t count, int nthreads) {
    if (count == 0) return 0;
    if (!nodes) return q_err(QUARRY_INVALID, "hnsw: no nodes");
    /* Validate (in range, not inserted, no repeats) before changing anything. */
    for (size_t i = 0; i < count; i++) {
        uint32_t n = nodes[i];
        if (n >= h->cap || h->levels[n] != HNSW_LEVEL_NONE) {
            for (size_t j = 0; j < i; j++) h->levels[nodes[j]] = HNSW_LEVEL_NONE;
            return q_err(QUARRY_INVALID, "hnsw: node %u %s", n,
                         n >= h->cap ? "beyond capacity" : "inserted twice");
        }
        h->levels[n] = PENDING;
    }
    hnsw_tls *t = hnsw_tls_get(h, h->ef_construction);
    uint64_t rng0 = h->rng;
    size_t ub0 = h->upper_bytes;
    for (size_t i = 0; t && i < count; i++) {
        uint32_t n = nodes[i];
        int level = hnsw_random_level(h);
        if (hnsw_alloc_upper(h, n, level)) {
            t = NULL;
            break;
        }
        h->levels[n] = (uint8_t)level;
    }
    if (!t) {
        for (size_t i = 0; i < count; i++) {
            q_free(h->upper[nodes[i]]);
            h->upper[nodes[i]] = NULL;
            h->levels[nodes[i]] = HNSW_LEVEL_NONE;
        }
        h->rng = rng0;
        h->upper_bytes = ub0;
        return q_err(QUARRY_NOMEM, "hnsw: insert");
    }

    size_t nt = nthreads > 1 ? (size_t)nthreads : 1;
    if (nt > count / 16) nt = count / 16 ? count / 16 : 1; /* not worth threads */
    if (nt > 1) h->locks = q_calloc(h->cap, sizeof *h->locks);
    if (nt <= 1 || !h->locks) {
        for (size_t i = 0; i < count; i++) insert_one(h, t, nodes[i], h->levels[nodes[i]], 0);
    } else {
        batch b = {.h = h, .nodes = nodes, .count = count};
        atomic_init(&b.next, 0);
        pthread_t *th = q_malloc((nt - 1) * sizeof *th);
        size_t started = 0;
        for (size_t i = 0; th && i < nt - 1; i++) {
            if (pthread_create(&th[i], NULL, worker, &b) != 0) break;
            started++;
        }
        run_batch(&b, t);
        for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
        q_free(th);
        q_free((void *)h->locks);
        h->locks = NULL;
    }
    h->count += count;
    return 0;
}

int hnsw_insert(hnsw *h, uint32_t n) { return hnsw_insert_batch(h, &n, 1, 1); }
