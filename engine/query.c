/* SPDX-License-Identifier: MIT */
/*
 * query.c -- the read side: k-NN search (quarry_search), hybrid queries
 * (quarry_query_*: a vector clause and a text clause fused by RRF, relative
 * score or distribution-based score fusion), and the result object both
 * return.
 *
 * Path choice for a vector clause (search_hits): the HNSW graph or the
 * trained IVF-PQ index when the collection has one and the query suits it,
 * an exact flat scan otherwise.
 * Every retriever runs under the collection's read lock; result rows are
 * copied out (ids and any requested fields) before the lock is dropped, so a
 * result stays valid whatever writers do next.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "index/flat/flat.h"
#include "index/vec/distance.h"

/* ============================================================== retrieval */

static int allowed_accept(void *ctx, uint32_t r) {
    return roaring_bitmap_contains((const roaring_bitmap_t *)ctx, r);
}

/* Below this many live vectors a collection is searched exactly: a flat scan
 * of a few thousand rows is as fast as a graph search and exact. */
#define SEARCH_FLAT_BELOW 2048
/* A filtered query scans exactly the rows that pass (its bitmap) when they
 * are fewer than SEARCH_FILTER_MIN_ROWS or than this fraction of the live
 * vectors: the graph walk would find too few passing neighbours, and a scan of
 * a few thousand rows costs less than a graph search anyway. */
#define SEARCH_FILTER_MIN_FRACTION 0.02
#define SEARCH_FILTER_MIN_ROWS 4096

/* A search's stop conditions: a deadline and the caller's interrupt
 * function, polled by the retrievers through qstop_poll. */
typedef struct qstop {
    int64_t deadline_ns; /* 0 = none (quarry_clock_ns time) */
    int (*fn)(void *);
    void *ctx;
    int rc; /* set once stopped: INTERRUPTED or INTERRUPTED_DEADLINE */
} qstop;

static int qstop_poll(void *v) {
    qstop *s = v;
    if (s->rc) return 1;
    if (s->fn && s->fn(s->ctx))
        s->rc = QUARRY_INTERRUPTED;
    else if (s->deadline_ns && quarry_clock_ns() >= s->deadline_ns)
        s->rc = QUARRY_INTERRUPTED_DEADLINE;
    return s->rc != 0;
}

/* The poll function to hand to an index, or NULL when nothing can stop it. */
static flat_stop_fn qstop_fn(const qstop *s) {
    return s && (s->fn || s->deadline_ns) ? qstop_poll : NULL;
}

/* The error of a stopped search. */
static int qstop_err(const qstop *s) {
    return s->rc == QUARRY_INTERRUPTED_DEADLINE
               ? q_err(s->rc, "the search passed its deadline and was abandoned")
               : q_err(s->rc, "the search was interrupted by the caller");
}

/* Exact k-NN over the rows of `allowed` that have a live vector. */
static size_t scan_rows(quarry_coll *c, const float *query, uint32_t k,
                        const roaring_bitmap_t *allowed, qstop *stop, topk_hit *hits) {
    flat_stop_fn poll = qstop_fn(stop);
    size_t work = 0;
    const dist_kernels *kern = dist_get();
    size_t stride;
    const float *base = coll_vec_base(c, &stride);
    topk t;
    topk_init(&t, hits, k);
    roaring_uint32_iterator_t *it = roaring_create_iterator(allowed);
    for (; it && it->has_value; roaring_advance_uint32_iterator(it)) {
        uint32_t r = it->current_value;
        if (r >= c->nrows || !(c->live_vec[r / 64] >> (r % 64) & 1)) continue;
        const float *v = base + (size_t)r * stride;
        float d;
        switch (c->cfg.metric) {
        case QUARRY_METRIC_IP: d = -kern->ip(query, v, c->cfg.dim); break;
        case QUARRY_METRIC_COSINE: d = 1.0f - kern->ip(query, v, c->cfg.dim); break;
        default: d = kern->l2(query, v, c->cfg.dim); break;
        }
        topk_push(&t, d, r);
        if (poll && (work += c->cfg.dim) >= FLAT_STOP_EVERY) {
            work = 0;
            if (poll(stop)) break;
        }
    }
    roaring_free_uint32_iterator(it);
    return topk_sort(&t);
}

/* Per-query knobs of the approximate indexes (0 = the collection's default). */
typedef struct ann_knobs {
    uint32_t ef;     /* HNSW beam */
    uint32_t nprobe; /* IVF lists probed */
    uint32_t refine; /* IVF re-ranking factor (1 = off) */
    int exact;
    qstop *stop;     /* NULL = runs to the end */
} ann_knobs;

/* IVF lists keep dead rows until compaction: accept live vectors that pass
 * the filter. */
typedef struct ivf_gate {
    const uint64_t *live_vec;
    const roaring_bitmap_t *allowed;
} ivf_gate;

static int ivf_accept(void *ctx, uint32_t r) {
    const ivf_gate *g = ctx;
    return ((g->live_vec[r / 64] >> (r % 64)) & 1) &&
           (!g->allowed || roaring_bitmap_contains(g->allowed, r));
}

static size_t ivf_hits(quarry_coll *c, const float *query, uint32_t k, const ann_knobs *kn,
                       const roaring_bitmap_t *allowed, topk_hit *hits) {
    ivf_gate g = {c->live_vec, allowed};
    ivfpq_search_params p = {kn->nprobe ? kn->nprobe : c->cfg.ivf_nprobe,
                             kn->refine ? kn->refine : c->cfg.ivf_refine,
                             c->vecs, c->cfg.dim, ivf_accept, &g, qstop_fn(kn->stop), kn->stop};
    return ivfpq_search(c->ivf, query, k, &p, hits);
}

/* The k best hits for a query (read lock held); `allowed` NULL = no filter.
 * An approximate search that comes back with fewer than k hits is redone
 * exactly, so a query returns k rows whenever k rows qualify. */
static size_t search_hits(quarry_coll *c, const float *query, uint32_t k, const ann_knobs *kn,
                          const roaring_bitmap_t *allowed, topk_hit *hits) {
    atomic_fetch_add(&c->searches, 1);
    int exact = kn->exact, ann = c->graph || c->ivf;
    if (allowed) {
        uint64_t card = roaring_bitmap_get_cardinality(allowed);
        if (exact || !ann || card < SEARCH_FILTER_MIN_ROWS ||
            (double)card < SEARCH_FILTER_MIN_FRACTION * (double)c->nlive_vec) {
            atomic_fetch_add(&c->searches_exact, 1);
            return scan_rows(c, query, k, allowed, kn->stop, hits);
        }
    }
    if (ann && !exact && c->nlive_vec >= SEARCH_FLAT_BELOW) {
        size_t n = c->graph ? hnsw_search_stop(c->graph, query, k,
                                               kn->ef ? kn->ef : c->cfg.hnsw_ef_search,
                                               allowed ? allowed_accept : NULL, (void *)allowed,
                                               qstop_fn(kn->stop), kn->stop, hits)
                            : ivf_hits(c, query, k, kn, allowed, hits);
        if (n == k || n == c->nlive_vec || (kn->stop && kn->stop->rc)) return n;
    }
    atomic_fetch_add(&c->searches_exact, 1);
    if (allowed) return scan_rows(c, query, k, allowed, kn->stop, hits);
    size_t stride;
    const float *base = coll_vec_base(c, &stride);
    flat_scan s = {NULL,   (flat_metric)c->cfg.metric, base, c->nrows,         c->cfg.dim,
                   stride, c->live_vec,                NULL, NULL, qstop_fn(kn->stop),
                   kn->stop};
    return flat_search(&s, query, k, hits);
}

/* Evaluate a compiled filter into the bitmap of passing live rows (read lock
 * held). *out stays NULL for "no filter" (or one that accepts everything). */
static int eval_filter(quarry_coll *c, const filter_expr *f, roaring_bitmap_t **out) {
    *out = NULL;
    if (!f || filter_is_all(f)) return 0;
    int rc = filter_eval(f, c->attrs, c->live, out);
    return rc ? q_err_prefix(rc, "evaluating the filter") : 0;
}

/* Check a query vector and return the one to search with (normalised into
 * *scratch for cosine; the caller frees *scratch). */
static int prep_vector(quarry_coll *c, const float *vec, uint32_t dim, float **scratch,
                       const float **use) {
    *scratch = NULL;
    if (!vec) return q_err(QUARRY_INVALID, "query vector is NULL");
    if (c->cfg.dim == 0)
        return q_err(QUARRY_INVALID, "collection '%s' is text-only: it has no vectors to search",
                     c->name);
    if (dim != c->cfg.dim)
        return q_err(QUARRY_INVALID_DIM, "query has %u values, collection '%s' has dim %u", dim,
                     c->name, c->cfg.dim);
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(vec[i]))
            return q_err(QUARRY_INVALID, "query value %u is %s", i,
                         isnan(vec[i]) ? "NaN" : "infinite");
    *use = vec;
    if (c->cfg.metric == QUARRY_METRIC_COSINE) {
        float *qn = q_malloc((size_t)dim * sizeof *qn);
        if (!qn) return q_err(QUARRY_NOMEM, "out of memory");
        memcpy(qn, vec, (size_t)dim * sizeof *qn);
        if (dist_normalize(qn, dim) != 0) {
            q_free(qn);
            return q_err(QUARRY_INVALID, "a zero query vector has no cosine direction");
        }
        *scratch = qn;
        *use = qn;
    }
    return 0;
}

/* Text retrieval: BM25 top-k (read lock held), filtered by `allowed`. */
static int text_hits(quarry_coll *c, const char *text, size_t len, uint32_t depth,
                     int require_all, const roaring_bitmap_t *allowed, qstop *stop,
                     topk_hit *hits, size_t *n) {
    bm25_search_params p = {depth, require_all ? BM25_AND : BM25_OR,
                            allowed ? allowed_accept : NULL, (void *)allowed, 0, NULL,
                            qstop_fn(stop), stop};
    int rc = bm25_search(c->text, text, len, &p, hits, n);
    return rc ? q_err_prefix(rc, "text clause") : 0;
}

/* ============================================================== results */

#define NRET 2

typedef struct qhit {
    uint32_t row;
    float score;          /* fused, higher is better */
    uint32_t rank[NRET];  /* 1-based; 0 = not found by that retriever */
    float raw[NRET];      /* retriever's own score, higher is better */
} qhit;

typedef struct rhit {
    float score, dist;
    uint32_t rank[NRET];
    float raw[NRET];
    uint32_t id_off, id_len;
    uint32_t text_off, text_len, meta_off, meta_len, vec_off, dim;
    uint8_t has_text, has_meta;
} rhit;

struct quarry_result {
    size_t n;
    rhit *h;
    char *blob;
};

/* Copy hits and the requested fields out of the collection (read lock held). */
static int build_result(quarry_coll *c, const qhit *hits, size_t n, unsigned fields,
                        quarry_result **out) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const row *rw = &c->rows[hits[i].row];
        bytes += rw->id_len + 1;
        if ((fields & QUARRY_RETURN_TEXT) && (rw->flags & ROW_TEXT)) bytes += rw->text_len + 1;
        if ((fields & QUARRY_RETURN_METADATA) && (rw->flags & ROW_META)) bytes += rw->meta_len + 1;
        if ((fields & QUARRY_RETURN_VECTOR) && (rw->flags & ROW_VEC))
            bytes = ((bytes + 3) & ~(size_t)3) + (size_t)c->cfg.dim * 4;
    }
    size_t head = (sizeof(quarry_result) + 15) & ~(size_t)15;
    size_t hits_bytes = n * sizeof(rhit);
    quarry_result *r = q_calloc(1, head + hits_bytes + bytes + 8);
    if (!r) return q_err(QUARRY_NOMEM, "out of memory (result)");
    r->n = n;
    r->h = (rhit *)((char *)r + head);
    r->blob = (char *)(r->h + n);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const row *rw = &c->rows[hits[i].row];
        rhit *h = &r->h[i];
        h->score = hits[i].score;
        memcpy(h->rank, hits[i].rank, sizeof h->rank);
        memcpy(h->raw, hits[i].raw, sizeof h->raw);
        h->dist = hits[i].rank[QUARRY_RETRIEVER_VECTOR] ? -hits[i].raw[QUARRY_RETRIEVER_VECTOR]
                                                        : NAN;
        h->id_off = (uint32_t)off, h->id_len = rw->id_len;
        memcpy(r->blob + off, row_id(rw), rw->id_len + 1);
        off += rw->id_len + 1;
        if ((fields & QUARRY_RETURN_TEXT) && (rw->flags & ROW_TEXT)) {
            h->has_text = 1, h->text_off = (uint32_t)off, h->text_len = rw->text_len;
            memcpy(r->blob + off, row_text(rw), rw->text_len + 1);
            off += rw->text_len + 1;
        }
        if ((fields & QUARRY_RETURN_METADATA) && (rw->flags & ROW_META)) {
            h->has_meta = 1, h->meta_off = (uint32_t)off, h->meta_len = rw->meta_len;
            memcpy(r->blob + off, row_meta(rw), rw->meta_len + 1);
            off += rw->meta_len + 1;
        }
        if ((fields & QUARRY_RETURN_VECTOR) && (rw->flags & ROW_VEC)) {
            off = (off + 3) & ~(size_t)3;
            h->vec_off = (uint32_t)off, h->dim = c->cfg.dim;
            memcpy(r->blob + off, coll_vec(c, hits[i].row), (size_t)c->cfg.dim * 4);
            off += (size_t)c->cfg.dim * 4;
        }
    }
    *out = r;
    return 0;
}

size_t quarry_result_count(const quarry_result *r) { return r ? r->n : 0; }

const char *quarry_result_id(const quarry_result *r, size_t i, size_t *len) {
    if (!r || i >= r->n) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = r->h[i].id_len;
    return r->blob + r->h[i].id_off;
}

float quarry_result_distance(const quarry_result *r, size_t i) {
    return r && i < r->n ? r->h[i].dist : NAN;
}

float quarry_result_score(const quarry_result *r, size_t i) {
    return r && i < r->n ? r->h[i].score : NAN;
}

int quarry_result_explain(const quarry_result *r, size_t i, int retriever, uint32_t *rank,
                          float *raw_score) {
    if (!r || i >= r->n || retriever < 0 || retriever >= NRET)
        return q_err(QUARRY_MISUSE, "quarry_result_explain: bad hit or retriever");
    if (rank) *rank = r->h[i].rank[retriever];
    if (raw_score) *raw_score = r->h[i].raw[retriever];
    return r->h[i].rank[retriever] ? 0 : QUARRY_NOTFOUND;
}

const char *quarry_result_text(const quarry_result *r, size_t i, size_t *len) {
    int ok = r && i < r->n && r->h[i].has_text;
    if (len) *len = ok ? r->h[i].text_len : 0;
    return ok ? r->blob + r->h[i].text_off : NULL;
}

const char *quarry_result_metadata(const quarry_result *r, size_t i, size_t *len) {
    int ok = r && i < r->n && r->h[i].has_meta;
    if (len) *len = ok ? r->h[i].meta_len : 0;
    return ok ? r->blob + r->h[i].meta_off : NULL;
}

const float *quarry_result_vector(const quarry_result *r, size_t i, uint32_t *dim) {
    int ok = r && i < r->n && r->h[i].dim;
    if (dim) *dim = ok ? r->h[i].dim : 0;
    return ok ? (const float *)(r->blob + r->h[i].vec_off) : NULL;
}

void quarry_result_free(quarry_result *r) { q_free(r); }

/* ============================================================== quarry_search */

int quarry_search(quarry_coll *c, const float *query, uint32_t dim, uint32_t k,
                  const quarry_search_params *params, quarry_result **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_search: out is NULL");
    *out = NULL;
    /* callers built against the header before the stop fields pass its size */
    quarry_search_params pv;
    if (params) {
        size_t old = offsetof(quarry_search_params, deadline_ns);
        if (params->size != sizeof *params && params->size != old)
            return q_err(QUARRY_MISUSE, "search params not set up by quarry_search_params_init");
        memset(&pv, 0, sizeof pv);
        memcpy(&pv, params, params->size);
        params = &pv;
    }
    int rc = coll_enter(c, "quarry_search");
    if (rc) return rc;
    filter_expr *filter = NULL;
    roaring_bitmap_t *allowed = NULL;
    topk_hit *hits = NULL;
    qhit *qh = NULL;
    float *scratch = NULL;
    const float *q;
    if ((rc = prep_vector(c, query, dim, &scratch, &q))) goto leave;
    if (k == 0 || k > QUARRY_MAX_K) {
        rc = q_err(QUARRY_INVALID, "k must be 1..%d (got %u)", QUARRY_MAX_K, k);
        goto leave;
    }
    if (params && (params->nprobe > IVFPQ_MAX_NLIST || params->refine > QUARRY_MAX_IVF_REFINE)) {
        rc = q_err(QUARRY_INVALID, "nprobe must be <= %u and refine <= %u", IVFPQ_MAX_NLIST,
                   QUARRY_MAX_IVF_REFINE);
        goto leave;
    }
    if (params && params->filter &&
        (rc = filter_compile(params->filter, strlen(params->filter), &filter)))
        goto leave;
    hits = q_malloc((size_t)k * sizeof *hits);
    qh = q_malloc((size_t)k * sizeof *qh);
    if (!hits || !qh) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto leave;
    }
    qstop stop = {0};
    if (params) stop = (qstop){params->deadline_ns, params->interrupt, params->interrupt_ctx, 0};
    if (qstop_fn(&stop) && qstop_poll(&stop)) { /* do not even take the lock */
        rc = qstop_err(&stop);
        goto leave;
    }
    pthread_rwlock_rdlock(&c->rw);
    if ((rc = eval_filter(c, filter, &allowed)) == 0) {
        ann_knobs kn = {0, 0, 0, 0, &stop};
        if (params)
            kn = (ann_knobs){params->ef, params->nprobe, params->refine, params->exact, &stop};
        size_t n = search_hits(c, q, k, &kn, allowed, hits);
        for (size_t i = 0; i < n; i++)
            qh[i] = (qhit){hits[i].row, -hits[i].dist, {(uint32_t)i + 1, 0}, {-hits[i].dist, 0}};
        rc = stop.rc ? qstop_err(&stop) : build_result(c, qh, n, 0, out);
    }
    pthread_rwlock_unlock(&c->rw);
leave:
    if (allowed) roaring_bitmap_free(allowed);
    filter_expr_free(filter);
    q_free(hits);
    q_free(qh);
    q_free(scratch);
    coll_leave(c);
    return rc;
}

/* ============================================================== hybrid query */

struct quarry_query {
    quarry_coll *coll;
    float *vec;
    uint32_t dim, vdepth, ef;
    float vweight;
    char *text;
    size_t text_len;
    uint32_t tdepth;
    int require_all;
    float tweight;
    filter_expr *filter;
    quarry_fusion fusion;
    float fusion_param;
    uint32_t k, offset;
    unsigned fields;
    int exact;
    uint32_t nprobe, refine;
    qstop stop;
};

int quarry_query_new(quarry_coll *c, quarry_query **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_query_new: out is NULL");
    *out = NULL;
    if (!c) return q_err(QUARRY_MISUSE, "quarry_query_new: collection handle is NULL");
    quarry_query *q = q_calloc(1, sizeof *q);
    if (!q) return q_err(QUARRY_NOMEM, "out of memory");
    q->coll = c;
    q->k = 10;
    q->fusion = QUARRY_FUSION_RRF;
    *out = q;
    return 0;
}

void quarry_query_free(quarry_query *q) {
    if (!q) return;
    q_free(q->vec);
    q_free(q->text);
    filter_expr_free(q->filter);
    q_free(q);
}

static float weight_or_one(float w) { return w == 0.0f ? 1.0f : w; }

int quarry_query_vector(quarry_query *q, const float *vec, uint32_t dim, uint32_t depth,
                        uint32_t ef, float weight) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_vector: query is NULL");
    if (!vec || dim == 0 || dim > QUARRY_MAX_DIM)
        return q_err(QUARRY_INVALID, "vector clause: bad vector or dim %u", dim);
    if (depth > QUARRY_MAX_K) return q_err(QUARRY_INVALID, "vector clause: depth above %d", QUARRY_MAX_K);
    if (!isfinite(weight) || weight < 0) return q_err(QUARRY_INVALID, "vector clause: bad weight");
    float *v = q_malloc((size_t)dim * sizeof *v);
    if (!v) return q_err(QUARRY_NOMEM, "out of memory");
    memcpy(v, vec, (size_t)dim * sizeof *v);
    q_free(q->vec);
    q->vec = v, q->dim = dim, q->vdepth = depth, q->ef = ef, q->vweight = weight_or_one(weight);
    return 0;
}

int quarry_query_text(quarry_query *q, const char *text, size_t len, uint32_t depth,
                      int require_all, float weight) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_text: query is NULL");
    if (!text) return q_err(QUARRY_INVALID, "text clause is NULL");
    if (len == 0) len = strlen(text);
    if (len > QUARRY_MAX_TEXT_LEN) return q_err(QUARRY_INVALID, "text clause too long");
    if (!q_utf8_valid(text, len)) return q_err(QUARRY_INVALID, "text clause is not valid UTF-8");
    if (depth > QUARRY_MAX_K) return q_err(QUARRY_INVALID, "text clause: depth above %d", QUARRY_MAX_K);
    if (!isfinite(weight) || weight < 0) return q_err(QUARRY_INVALID, "text clause: bad weight");
    char *t = q_strndup(text, len);
    if (!t) return q_err(QUARRY_NOMEM, "out of memory");
    q_free(q->text);
    q->text = t, q->text_len = len, q->tdepth = depth, q->require_all = require_all;
    q->tweight = weight_or_one(weight);
    return 0;
}

int quarry_query_filter(quarry_query *q, const char *filter_json) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_filter: query is NULL");
    filter_expr *f = NULL;
    if (filter_json) {
        int rc = filter_compile(filter_json, strlen(filter_json), &f);
        if (rc) return rc;
    }
    filter_expr_free(q->filter);
    q->filter = f;
    return 0;
}

int quarry_query_fusion(quarry_query *q, quarry_fusion fusion, float param) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_fusion: query is NULL");
    if ((unsigned)fusion > QUARRY_FUSION_DBSF)
        return q_err(QUARRY_INVALID, "unknown fusion %d", (int)fusion);
    if (!isfinite(param) || param < 0) return q_err(QUARRY_INVALID, "bad fusion parameter");
    q->fusion = fusion, q->fusion_param = param;
    return 0;
}

int quarry_query_limit(quarry_query *q, uint32_t k, uint32_t offset) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_limit: query is NULL");
    if (k == 0 || k > QUARRY_MAX_K || offset > QUARRY_MAX_K - k)
        return q_err(QUARRY_INVALID, "k must be 1..%d and k + offset at most %d (got %u, %u)",
                     QUARRY_MAX_K, QUARRY_MAX_K, k, offset);
    q->k = k, q->offset = offset;
    return 0;
}

int quarry_query_return(quarry_query *q, unsigned fields) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_return: query is NULL");
    if (fields & ~(QUARRY_RETURN_TEXT | QUARRY_RETURN_METADATA | QUARRY_RETURN_VECTOR))
        return q_err(QUARRY_INVALID, "unknown return field bits 0x%x", fields);
    q->fields = fields;
    return 0;
}

int quarry_query_ivf(quarry_query *q, uint32_t nprobe, uint32_t refine) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_ivf: query is NULL");
    if (nprobe > IVFPQ_MAX_NLIST || refine > QUARRY_MAX_IVF_REFINE)
        return q_err(QUARRY_INVALID, "nprobe must be <= %u and refine <= %u", IVFPQ_MAX_NLIST,
                     QUARRY_MAX_IVF_REFINE);
    q->nprobe = nprobe, q->refine = refine;
    return 0;
}

int quarry_query_deadline(quarry_query *q, int64_t deadline_ns, int (*interrupt)(void *ctx),
                          void *ctx) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_deadline: query is NULL");
    if (deadline_ns < 0) return q_err(QUARRY_INVALID, "deadline_ns must be >= 0");
    q->stop = (qstop){deadline_ns, interrupt, ctx, 0};
    return 0;
}

int quarry_query_exact(quarry_query *q, int exact) {
    q_err_clear();
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_exact: query is NULL");
    q->exact = exact != 0;
    return 0;
}

typedef struct entry {
    uint32_t row, list, rank;
    float raw;
} entry;

static int cmp_entry_row(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return x->row < y->row ? -1 : x->row > y->row;
}

static int cmp_qhit_score(const void *a, const void *b) {
    const qhit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Per-list normalisation bounds for RELATIVE (min-max) and DBSF (mean +- 3 sigma). */
static void list_bounds(const entry *e, size_t n, uint32_t list, quarry_fusion f, double *lo,
                        double *hi) {
    double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].list != list) continue;
        double v = e[i].raw;
        mn = v < mn ? v : mn, mx = v > mx ? v : mx;
        sum += v, sq += v * v, cnt++;
    }
    if (f == QUARRY_FUSION_DBSF && cnt) {
        double mean = sum / (double)cnt, var = sq / (double)cnt - mean * mean;
        double sd = var > 0 ? sqrt(var) : 0;
        *lo = mean - 3 * sd, *hi = mean + 3 * sd;
    } else {
        *lo = mn, *hi = mx;
    }
}

/* Fuse the retrievers' lists into hits sorted by fused score. */
static size_t fuse(const quarry_query *q, entry *e, size_t ne, int nlists, qhit *out) {
    double lo[NRET] = {0}, hi[NRET] = {0};
    float w[NRET] = {q->vweight, q->tweight};
    for (int l = 0; l < NRET; l++) list_bounds(e, ne, (uint32_t)l, q->fusion, &lo[l], &hi[l]);
    double k_rrf = q->fusion_param > 0 ? q->fusion_param : 60.0;
    qsort(e, ne, sizeof *e, cmp_entry_row);
    size_t n = 0;
    for (size_t i = 0; i < ne;) {
        qhit h = {e[i].row, 0, {0, 0}, {0, 0}};
        double score = 0;
        for (; i < ne && e[i].row == h.row; i++) {
            uint32_t l = e[i].list;
            h.rank[l] = e[i].rank, h.raw[l] = e[i].raw;
            if (nlists == 1) {
                score = e[i].raw;
            } else if (q->fusion == QUARRY_FUSION_RRF) {
                score += w[l] / (k_rrf + e[i].rank);
            } else {
                double span = hi[l] - lo[l];
                double norm = span > 0 ? (e[i].raw - lo[l]) / span : 1.0;
                norm = norm < 0 ? 0 : norm > 1 ? 1 : norm;
                score += w[l] * norm;
            }
        }
        h.score = (float)score;
        out[n++] = h;
    }
    qsort(out, n, sizeof *out, cmp_qhit_score);
    return n;
}

int quarry_query_run(quarry_query *q, quarry_result **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_query_run: out is NULL");
    *out = NULL;
    if (!q) return q_err(QUARRY_MISUSE, "quarry_query_run: query is NULL");
    quarry_coll *c = q->coll;
    if (!q->vec && !q->text)
        return q_err(QUARRY_INVALID, "a query needs a vector clause, a text clause or both");
    int rc = coll_enter(c, "quarry_query_run");
    if (rc) return rc;
    int nlists = (q->vec != NULL) + (q->text != NULL);
    uint32_t want = q->k + q->offset;
    uint32_t dflt = nlists > 1 ? (want > 100 ? want : 100) : want;
    uint32_t vdepth = q->vdepth ? (q->vdepth > want || nlists > 1 ? q->vdepth : want) : dflt;
    uint32_t tdepth = q->tdepth ? (q->tdepth > want || nlists > 1 ? q->tdepth : want) : dflt;
    float *scratch = NULL;
    const float *vq = NULL;
    topk_hit *hits = NULL;
    entry *e = NULL;
    qhit *fused = NULL;
    size_t ne = 0;
    if (q->vec && (rc = prep_vector(c, q->vec, q->dim, &scratch, &vq))) goto leave;
    size_t cap = (q->vec ? vdepth : 0) + (q->text ? tdepth : 0);
    hits = q_malloc(((q->vec ? vdepth : 0) > tdepth ? vdepth : tdepth) * sizeof *hits + 1);
    e = q_malloc(cap * sizeof *e + 1);
    fused = q_malloc(cap * sizeof *fused + 1);
    if (!hits || !e || !fused) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto leave;
    }
    qstop stop = q->stop; /* a fresh copy: the query may run again */
    stop.rc = 0;
    if (qstop_fn(&stop) && qstop_poll(&stop)) {
        rc = qstop_err(&stop);
        goto leave;
    }
    pthread_rwlock_rdlock(&c->rw);
    roaring_bitmap_t *allowed = NULL;
    rc = eval_filter(c, q->filter, &allowed);
    if (!rc && q->vec) {
        ann_knobs kn = {q->ef, q->nprobe, q->refine, q->exact, &stop};
        size_t n = search_hits(c, vq, vdepth, &kn, allowed, hits);
        for (size_t i = 0; i < n; i++)
            e[ne++] = (entry){hits[i].row, QUARRY_RETRIEVER_VECTOR, (uint32_t)i + 1, -hits[i].dist};
    }
    if (!rc && q->text && !stop.rc) {
        size_t n = 0;
        rc = text_hits(c, q->text, q->text_len, tdepth, q->require_all, allowed, &stop, hits,
                       &n);
        for (size_t i = 0; !rc && i < n; i++)
            e[ne++] = (entry){hits[i].row, QUARRY_RETRIEVER_TEXT, (uint32_t)i + 1, -hits[i].dist};
    }
    if (!rc && stop.rc) rc = qstop_err(&stop);
    if (!rc) {
        size_t n = fuse(q, e, ne, nlists, fused);
        size_t from = q->offset < n ? q->offset : n;
        size_t cnt = n - from < q->k ? n - from : q->k;
        rc = build_result(c, fused + from, cnt, q->fields, out);
    }
    pthread_rwlock_unlock(&c->rw);
    if (allowed) roaring_bitmap_free(allowed);
leave:
    q_free(scratch);
    q_free(hits);
    q_free(e);
    q_free(fused);
    coll_leave(c);
    return rc;
}
