/* SPDX-License-Identifier: MIT */
/*
 * ivfpq.c -- IVF-PQ life cycle: creation, training, encoding and the lists.
 * Search is in ivfpq_search.c, serialisation in ivfpq_serde.c.
 */
#include <math.h>
#include <stdlib.h>

#include "ivfpq_int.h"

#define PQ_MAX_TRAIN 65536 /* points for the codebooks (256 per centroid) */

int ivfpq_new(const ivfpq_config *cfg, ivfpq **out) {
    *out = NULL;
    if (!cfg || cfg->dim == 0 || cfg->nlist == 0 || cfg->nlist > IVFPQ_MAX_NLIST || cfg->m == 0 ||
        cfg->m > cfg->dim || cfg->metric > FLAT_COSINE)
        return q_err(QUARRY_INVALID, "IVF-PQ needs dim >= 1, 1 <= nlist <= %u, 1 <= m <= dim",
                     IVFPQ_MAX_NLIST);
    ivfpq *ix = q_calloc(1, sizeof *ix);
    if (!ix || !(ix->sub_off = q_malloc(((size_t)cfg->m + 1) * sizeof *ix->sub_off))) {
        q_free(ix);
        return q_err(QUARRY_NOMEM, "out of memory");
    }
    ix->cfg = *cfg;
    if (!ix->cfg.niter) ix->cfg.niter = IVFPQ_DEFAULT_NITER;
    ix->kern = cfg->kern ? cfg->kern : dist_get();
    ix->cfg.kern = ix->kern;
    ix->ip = cfg->metric != FLAT_L2;
    for (uint32_t j = 0; j <= cfg->m; j++)
        ix->sub_off[j] = (uint32_t)((uint64_t)j * cfg->dim / cfg->m);
    *out = ix;
    return 0;
}

void ivf_reset(ivfpq *ix) {
    if (ix->lists)
        for (uint32_t l = 0; l < ix->cfg.nlist; l++) {
            q_free(ix->lists[l].ids);
            q_free(ix->lists[l].codes);
        }
    q_free(ix->lists);
    q_free_aligned(ix->cent);
    q_free_aligned(ix->books);
    q_free_aligned(ix->books_t);
    q_free_aligned(ix->precomp);
    ix->lists = NULL;
    ix->cent = ix->books = ix->books_t = ix->precomp = NULL;
    ix->trained = 0;
    ix->nrows = 0;
}

void ivfpq_free(ivfpq *ix) {
    if (!ix) return;
    ivf_reset(ix);
    q_free(ix->sub_off);
    q_free(ix);
}

const ivfpq_config *ivfpq_get_config(const ivfpq *ix) { return &ix->cfg; }
int ivfpq_is_trained(const ivfpq *ix) { return ix->trained; }
size_t ivfpq_size(const ivfpq *ix) { return ix->nrows; }

int ivf_alloc_trained(ivfpq *ix) {
    ivf_reset(ix);
    size_t dim = ix->cfg.dim;
    ix->cent = q_malloc_aligned((size_t)ix->cfg.nlist * dim * sizeof(float));
    ix->books = q_malloc_aligned((size_t)IVFPQ_KSUB * dim * sizeof(float));
    ix->lists = q_calloc(ix->cfg.nlist, sizeof *ix->lists);
    if (!ix->cent || !ix->books || !ix->lists) {
        ivf_reset(ix);
        return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ)");
    }
    return 0;
}

uint32_t ivf_assign(const ivfpq *ix, const float *v, float *d) {
    uint32_t n = ix->cfg.nlist, best = 0;
    if (ix->ip) {
        ix->kern->ip_batch(v, ix->cent, n, ix->cfg.dim, ix->cfg.dim, d);
        for (uint32_t c = 1; c < n; c++)
            if (d[c] > d[best]) best = c;
    } else {
        ix->kern->l2_batch(v, ix->cent, n, ix->cfg.dim, ix->cfg.dim, d);
        for (uint32_t c = 1; c < n; c++)
            if (d[c] < d[best]) best = c;
    }
    return best;
}

/* PQ-encode a residual (dim floats); scratch holds 256 floats. */
static void pq_encode(const ivfpq *ix, const float *r, uint8_t *code, float *d) {
    for (uint32_t j = 0; j < ix->cfg.m; j++) {
        uint32_t ds = ivf_dsub(ix, j), best = 0;
        if (ds <= IVF_TRANSPOSED_MAX_DIM) {
            float bd;
            best = ix->kern->nearest_l2_t(r + ix->sub_off[j], ds,
                                          ix->books_t + (size_t)IVFPQ_KSUB * ix->sub_off[j],
                                          IVFPQ_KSUB, &bd);
        } else {
            ix->kern->l2_batch(r + ix->sub_off[j], ivf_book(ix, j), IVFPQ_KSUB, ds, ds, d);
            for (uint32_t c = 1; c < IVFPQ_KSUB; c++)
                if (d[c] < d[best]) best = c;
        }
        code[j] = (uint8_t)best;
    }
}

/* Encode with caller scratch: nlist + 256 + dim floats. */
static void encode_with(const ivfpq *ix, const float *v, uint32_t *list, uint8_t *code,
                        float *scratch) {
    uint32_t dim = ix->cfg.dim;
    uint32_t l = ivf_assign(ix, v, scratch);
    float *res = scratch + ix->cfg.nlist + IVFPQ_KSUB;
    const float *c = ix->cent + (size_t)l * dim;
    for (uint32_t i = 0; i < dim; i++) res[i] = v[i] - c[i];
    pq_encode(ix, res, code, scratch + ix->cfg.nlist);
    *list = l;
}

static size_t scratch_floats(const ivfpq *ix) {
    return (size_t)ix->cfg.nlist + IVFPQ_KSUB + ix->cfg.dim;
}

void ivfpq_encode(const ivfpq *ix, const float *v, uint32_t *list, uint8_t *code) {
    float stackbuf[4096];
    size_t need = scratch_floats(ix);
    float *s = need <= 4096 ? stackbuf : q_malloc(need * sizeof *s);
    if (!s) { /* cannot happen in tests; keep the contract simple */
        *list = 0;
        memset(code, 0, ix->cfg.m);
        return;
    }
    encode_with(ix, v, list, code, s);
    if (s != stackbuf) q_free(s);
}

void ivfpq_decode(const ivfpq *ix, uint32_t list, const uint8_t *code, float *out) {
    const float *c = ix->cent + (size_t)list * ix->cfg.dim;
    for (uint32_t j = 0; j < ix->cfg.m; j++) {
        uint32_t ds = ivf_dsub(ix, j), o = ix->sub_off[j];
        const float *b = ivf_book(ix, j) + (size_t)code[j] * ds;
        for (uint32_t i = 0; i < ds; i++) out[o + i] = c[o + i] + b[i];
    }
}

int ivf_precompute(ivfpq *ix) {
    q_free_aligned(ix->precomp);
    q_free_aligned(ix->books_t);
    ix->precomp = ix->books_t = NULL;
    if (!(ix->books_t = q_malloc_aligned((size_t)IVFPQ_KSUB * ix->cfg.dim * sizeof(float))))
        return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ tables)");
    for (uint32_t j = 0; j < ix->cfg.m; j++)
        ivf_transpose(ivf_book(ix, j), IVFPQ_KSUB, ivf_dsub(ix, j),
                      ix->books_t + (size_t)IVFPQ_KSUB * ix->sub_off[j]);
    if (ix->ip) return 0;
    size_t m = ix->cfg.m, nl = ix->cfg.nlist;
    size_t bytes = nl * m * IVFPQ_KSUB * sizeof(float);
    if (bytes > IVFPQ_PRECOMP_MAX_BYTES) return 0; /* per-list tables at query time */
    float *t = q_malloc_aligned(bytes);
    if (!t) return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ tables)");
    float norms[IVFPQ_KSUB];
    for (uint32_t j = 0; j < m; j++) {
        uint32_t ds = ivf_dsub(ix, j), o = ix->sub_off[j];
        const float *bk = ivf_book(ix, j);
        for (uint32_t c = 0; c < IVFPQ_KSUB; c++)
            norms[c] = ix->kern->ip(bk + (size_t)c * ds, bk + (size_t)c * ds, ds);
        for (size_t l = 0; l < nl; l++) {
            float *row = t + (l * m + j) * IVFPQ_KSUB;
            ix->kern->ip_batch(ix->cent + l * ix->cfg.dim + o, bk, IVFPQ_KSUB, ds, ds, row);
            for (uint32_t c = 0; c < IVFPQ_KSUB; c++) row[c] = norms[c] + 2.0f * row[c];
        }
    }
    ix->precomp = t;
    return 0;
}

typedef struct resid_ctx {
    const ivfpq *ix;
    const float *x; /* n contiguous sample points */
    float *res;     /* their residuals */
    int nomem;
} resid_ctx;

static void resid_range(void *vctx, size_t lo, size_t hi) {
    resid_ctx *r = vctx;
    const ivfpq *ix = r->ix;
    size_t dim = ix->cfg.dim;
    float *d = q_malloc(ix->cfg.nlist * sizeof *d);
    if (!d) {
        r->nomem = 1;
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        const float *v = r->x + i * dim;
        const float *c = ix->cent + (size_t)ivf_assign(ix, v, d) * dim;
        for (size_t k = 0; k < dim; k++) r->res[i * dim + k] = v[k] - c[k];
    }
    q_free(d);
}

int ivfpq_train(ivfpq *ix, const float *base, const uint32_t *rows, size_t n, size_t stride,
                int nthreads) {
    size_t dim = ix->cfg.dim, nl = ix->cfg.nlist;
    size_t need = nl > IVFPQ_KSUB ? nl : IVFPQ_KSUB;
    if (n < need)
        return q_err(QUARRY_INVALID,
                     "IVF-PQ training needs at least %zu vectors (nlist %zu, 256 codes), got %zu",
                     need, nl, n);
    if (stride < dim) return q_err(QUARRY_INVALID, "stride < dim");
    size_t ncoarse = nl * IVFPQ_MAX_POINTS_PER_CENTROID;
    if (ncoarse > n) ncoarse = n;
    size_t npq = PQ_MAX_TRAIN < n ? PQ_MAX_TRAIN : n;
    size_t ns = ncoarse > npq ? ncoarse : npq;
    uint32_t *perm = q_malloc(n * sizeof *perm);
    float *x = q_malloc_aligned(ns * dim * sizeof *x);
    float *res = q_malloc_aligned(npq * dim * sizeof *res);
    float *sub = q_malloc_aligned(npq * dim * sizeof *sub);
    int rc = 0;
    if (!perm || !x || !res || !sub || (rc = ivf_alloc_trained(ix))) {
        rc = rc ? rc : q_err(QUARRY_NOMEM, "out of memory (IVF-PQ training)");
        goto out;
    }
    /* one seeded sample; the coarse and the PQ training take prefixes of it */
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    ivfpq_sample(perm, n, ns, ix->cfg.seed ^ 0x69766670717472ull);
    for (size_t i = 0; i < ns; i++) {
        size_t src = rows ? rows[perm[i]] : perm[i];
        memcpy(x + i * dim, base + src * stride, dim * sizeof *x);
    }
    if ((rc = ivfpq_kmeans(x, ncoarse, dim, dim, nl, ix->cfg.niter, ix->cfg.seed, ix->ip,
                           nthreads, ix->kern, ix->cfg.cancel, ix->cent)))
        goto out;
    resid_ctx rcx = {ix, x, res, 0};
    ivf_parallel(npq, nthreads, resid_range, &rcx);
    if (rcx.nomem) {
        rc = q_err(QUARRY_NOMEM, "out of memory (IVF-PQ training)");
        goto out;
    }
    for (uint32_t j = 0; j < ix->cfg.m && !rc; j++) {
        uint32_t ds = ivf_dsub(ix, j), o = ix->sub_off[j];
        for (size_t i = 0; i < npq; i++) memcpy(sub + i * ds, res + i * dim + o, ds * sizeof *sub);
        rc = ivfpq_kmeans(sub, npq, ds, ds, IVFPQ_KSUB, ix->cfg.niter, ix->cfg.seed + 1 + j, 0,
                          nthreads, ix->kern, ix->cfg.cancel, ix->books + (size_t)IVFPQ_KSUB * o);
    }
    if (!rc) rc = ivf_precompute(ix);
    if (!rc) ix->trained = 1;
out:
    if (rc) ivf_reset(ix);
    q_free(perm);
    q_free_aligned(x);
    q_free_aligned(res);
    q_free_aligned(sub);
    return rc;
}

/* ------------------------------------------------------------------ lists */

int ivf_list_grow(ivfpq *ix, ivf_list *L, uint32_t need) {
    if (need <= L->cap) return 0;
    uint32_t cap = L->cap ? L->cap : IVFPQ_GROUP;
    while (cap < need) cap = cap > UINT32_MAX / 2 ? need : cap * 2;
    cap = (cap + IVFPQ_GROUP - 1) / IVFPQ_GROUP * IVFPQ_GROUP;
    size_t m = ix->cfg.m;
    uint32_t *ids = q_realloc(L->ids, (size_t)cap * sizeof *ids);
    if (!ids) return q_err(QUARRY_NOMEM, "out of memory (IVF lists)");
    L->ids = ids;
    uint8_t *codes = q_realloc(L->codes, (size_t)cap * m);
    if (!codes) return q_err(QUARRY_NOMEM, "out of memory (IVF lists)");
    memset(codes + (size_t)L->cap * m, 0, (size_t)(cap - L->cap) * m);
    L->codes = codes;
    L->cap = cap;
    return 0;
}

void ivf_list_put(const ivfpq *ix, ivf_list *L, uint32_t row, const uint8_t *code) {
    size_t m = ix->cfg.m, g = L->n / IVFPQ_GROUP, v = L->n % IVFPQ_GROUP;
    uint8_t *grp = L->codes + g * m * IVFPQ_GROUP;
    for (size_t j = 0; j < m; j++) grp[j * IVFPQ_GROUP + v] = code[j];
    L->ids[L->n++] = row;
}

int ivfpq_add(ivfpq *ix, uint32_t row, const float *v) {
    if (!ix->trained) return q_err(QUARRY_INVALID, "the IVF-PQ index is not trained");
    uint8_t codebuf[4096];
    uint8_t *code = ix->cfg.m <= sizeof codebuf ? codebuf : q_malloc(ix->cfg.m);
    if (!code) return q_err(QUARRY_NOMEM, "out of memory");
    uint32_t l;
    ivfpq_encode(ix, v, &l, code);
    int rc = ivf_list_grow(ix, &ix->lists[l], ix->lists[l].n + 1);
    if (!rc) {
        ivf_list_put(ix, &ix->lists[l], row, code);
        ix->nrows++;
    }
    if (code != codebuf) q_free(code);
    return rc;
}

typedef struct enc_ctx {
    const ivfpq *ix;
    const uint32_t *rows;
    const float *base;
    size_t stride;
    uint32_t *lists;
    uint8_t *codes;
    int nomem;
} enc_ctx;

static void enc_range(void *vctx, size_t lo, size_t hi) {
    enc_ctx *e = vctx;
    float *s = q_malloc(scratch_floats(e->ix) * sizeof *s);
    if (!s) {
        e->nomem = 1;
        return;
    }
    for (size_t i = lo; i < hi; i++)
        encode_with(e->ix, e->base + (size_t)e->rows[i] * e->stride, &e->lists[i],
                    e->codes + i * e->ix->cfg.m, s);
    q_free(s);
}

int ivfpq_add_batch(ivfpq *ix, const uint32_t *rows, size_t n, const float *base, size_t stride,
                    int nthreads) {
    if (!ix->trained) return q_err(QUARRY_INVALID, "the IVF-PQ index is not trained");
    size_t m = ix->cfg.m;
    /* encode in chunks so the staging arrays stay small */
    size_t chunk = 65536;
    uint32_t *lists = q_malloc(chunk * sizeof *lists);
    uint8_t *codes = q_malloc(chunk * m);
    int rc = 0;
    if (!lists || !codes) rc = q_err(QUARRY_NOMEM, "out of memory (IVF-PQ encoding)");
    for (size_t at = 0; at < n && !rc; at += chunk) {
        if (ix->cfg.cancel && *ix->cfg.cancel) {
            rc = q_err(QUARRY_INTERRUPTED, "IVF-PQ encoding cancelled");
            break;
        }
        size_t cnt = n - at < chunk ? n - at : chunk;
        enc_ctx e = {ix, rows + at, base, stride, lists, codes, 0};
        ivf_parallel(cnt, nthreads, enc_range, &e);
        if (e.nomem) {
            rc = q_err(QUARRY_NOMEM, "out of memory (IVF-PQ encoding)");
            break;
        }
        for (size_t i = 0; i < cnt && !rc; i++) { /* append in row order: deterministic */
            ivf_list *L = &ix->lists[lists[i]];
            if (!(rc = ivf_list_grow(ix, L, L->n + 1))) {
                ivf_list_put(ix, L, rows[at + i], codes + i * m);
                ix->nrows++;
            }
        }
    }
    q_free(lists);
    q_free(codes);
    return rc;
}

void ivfpq_clear_lists(ivfpq *ix) {
    if (!ix->lists) return;
    for (uint32_t l = 0; l < ix->cfg.nlist; l++) {
        q_free(ix->lists[l].ids);
        q_free(ix->lists[l].codes);
        ix->lists[l] = (ivf_list){0};
    }
    ix->nrows = 0;
}

void ivfpq_shrink(ivfpq *ix) {
    if (!ix->lists) return;
    size_t m = ix->cfg.m;
    for (uint32_t l = 0; l < ix->cfg.nlist; l++) {
        ivf_list *L = &ix->lists[l];
        uint32_t cap = (L->n + IVFPQ_GROUP - 1) / IVFPQ_GROUP * IVFPQ_GROUP;
        if (cap == L->cap) continue;
        if (cap == 0) {
            q_free(L->ids);
            q_free(L->codes);
            *L = (ivf_list){0};
            continue;
        }
        uint32_t *ids = q_realloc(L->ids, (size_t)cap * sizeof *ids);
        if (!ids) continue;
        L->ids = ids;
        L->cap = cap; /* codes may stay larger when their realloc fails: harmless */
        uint8_t *codes = q_realloc(L->codes, (size_t)cap * m);
        if (codes) L->codes = codes;
    }
}

size_t ivfpq_code_bytes(const ivfpq *ix) {
    size_t b = 0;
    if (ix->lists)
        for (uint32_t l = 0; l < ix->cfg.nlist; l++)
            b += (size_t)ix->lists[l].cap * (ix->cfg.m + sizeof(uint32_t));
    return b;
}

size_t ivfpq_memory(const ivfpq *ix) {
    size_t b = sizeof *ix + ((size_t)ix->cfg.m + 1) * sizeof(uint32_t);
    if (!ix->trained) return b;
    b += (size_t)ix->cfg.nlist * (ix->cfg.dim * sizeof(float) + sizeof(ivf_list));
    b += 2 * (size_t)IVFPQ_KSUB * ix->cfg.dim * sizeof(float);
    if (ix->precomp) b += (size_t)ix->cfg.nlist * ix->cfg.m * IVFPQ_KSUB * sizeof(float);
    return b + ivfpq_code_bytes(ix);
}
