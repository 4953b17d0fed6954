/* SPDX-License-Identifier: MIT */
/*
 * bm25_search.c -- query parsing and top-k with dynamic pruning.
 *
 * Query model. The query text is split at double quotes ('"', or the pair
 * U+201C/U+201D); quoted parts are phrases, the rest is a bag of words, and
 * every part goes through the index's analyzer. A clause is a term or a
 * phrase (a phrase of one term is a term). Identical clauses merge and add
 * their boosts: "cat cat dog" scores cat twice, which is what Lucene's
 * BooleanQuery does with repeated SHOULD clauses (it rewrites them into one
 * clause with the summed boost) and what Anserini's bag-of-words queries do
 * (term count as boost). A phrase is scored as Lucene's PhraseQuery with
 * slop 0: idf = sum of its terms' idfs, tf = the number of positions where
 * the whole phrase starts. Without stored positions a phrase's terms are
 * treated as ordinary terms. Terms missing from the dictionary (or with no
 * live row) match nothing: they are dropped in OR mode and make the result
 * empty in AND mode; likewise for phrases.
 *
 * Scores. A clause contributes the float w * tf / (tf + A + B*dl) with
 * w = boost * idf (idf computed in double, as Lucene does, then rounded to
 * float), A = k1 (1 - b), B = k1 b / avgdl. A row's score is the sum of its
 * clauses' contributions, each first rounded to a fixed-point int64 with a
 * per-query scale (2^61 above the largest possible sum, so ~18 significant
 * digits): integer sums are exact and order-free, so a score does not
 * depend on the order in which pruning visited the clauses, and pruned and
 * exhaustive searches give bit-identical scores and the same top k. Bounds
 * use the same float expression (monotone in tf and dl) and round up, so a
 * bound can never fall below a score it covers; no slack is needed. The
 * k best are ranked by that exact score, ties to the smaller row; the
 * caller sees dist = -(float)score.
 *
 * OR: block-max MaxScore (Turtle & Flood's MaxScore with per-block bounds,
 * organised like Lucene's MaxScoreBulkScorer). Rows are processed in windows
 * of 512..4096 rows that end at a block end of the clauses that were
 * essential in the previous window. Each clause's bound for the window is
 * the maximum of its impact bounds over the blocks the window touches.
 * Sorted by bound, the clauses split into non-essential (the longest prefix
 * whose bounds sum to at most the k-th best score so far: a row matching
 * only those cannot enter the top k) and essential. Essential clauses are
 * scored term-at-a-time into a window accumulator (an array and a bitmap of
 * candidate rows); candidates whose partial score plus all non-essential
 * bounds cannot beat the k-th score are dropped, then deleted rows and rows
 * the filter rejects; the non-essential clauses, largest bound first, are
 * merged into the surviving candidates only (a merge of the clause's
 * postings in the window against the candidate bitmap; phrases are checked
 * per candidate), dropping candidates again after each clause. The window's
 * survivors are offered to the top-k heap, which raises the threshold. A
 * window where every clause is non-essential is skipped without decoding
 * anything.
 *
 * AND: the rarest clause leads (document-at-a-time); before aligning the
 * other clauses on a candidate, the sum of their current block bounds is
 * checked and the lead jumps past the nearest block end when it cannot beat
 * the k-th score.
 *
 * Filters and deletes are applied to candidates after the cheap bound test
 * and before they are completed; the k-th best score used for pruning comes
 * only from rows that passed, so pruning stays exact: k results come back
 * whenever k matching live rows pass the filter. The filter is called at
 * most once per row that reaches it, never for rows the bounds excluded.
 *
 * Memory per search: one cursor (two 128-entry decode buffers) per term
 * occurrence in the query, the window (4096 int64 + 512 bytes), the heap;
 * nothing shared is written, so searches run concurrently.
 */
#include <math.h>
#include <stdlib.h>

#include "text_int.h"

enum { CL_TERM = 0, CL_PHRASE = 1 };

typedef struct cursor {
    const bm25_term *t;
    const uint32_t *docs, *tfs;
    const uint8_t *pp; /* positions of docs[pdoc] start here */
    uint32_t *pbuf;    /* decoded positions of the current doc */
    uint32_t pcap;
    uint32_t pdoc;
    uint32_t bi, n, i, doc;
    int tf_ok;
    uint32_t sbi;    /* shallow block */
    uint32_t sb_key; /* sbi + 1 when sb_factor is valid for it */
    float sb_factor;
    bm25_search_stats *st;
    uint32_t dbuf[BM25_BLOCK], tbuf[BM25_BLOCK];
} cursor;

typedef struct clause {
    int kind;
    float w; /* boost * idf (sum of idfs for a phrase) */
    float boost;
    uint32_t ncur;
    cursor *cur;    /* ncur cursors (a phrase may repeat a term) */
    uint32_t *tids; /* the terms, for merging identical clauses */
    uint32_t *offs; /* phrase: position offset of each term */
    uint32_t lead;  /* phrase: the rarest term's cursor */
    uint32_t doc;   /* current matching row, BM25_END when exhausted */
    uint32_t pf;    /* phrase frequency at doc */
    int started;    /* doc is a real position (phrases start unpositioned) */
    uint64_t cost;
} clause;

typedef struct query {
    const bm25 *x;
    float A, B;
    clause *cl;
    uint32_t ncl, cap_cl;
    uint32_t ncur_total;
    int impossible; /* AND mode and a clause that cannot match */
    bm25_search_stats st;
} query;

/* ------------------------------------------------------------------ cursor */

static uint32_t tail_last(const bm25_term *t) { return t->tail[t->ntail - 1]; }

/* First block index >= from whose last row >= target: a sealed block,
 * nblocks for the tail, nblocks + 1 when nothing is left. */
static uint32_t find_block(const bm25_term *t, uint32_t from, uint32_t target) {
    uint32_t nb = t->nblocks;
    if (from < nb && t->blocks[from].last_row < target) {
        /* gallop, then binary search in (lo, hi] */
        uint32_t lo = from, step = 1, hi = from + 1;
        while (hi < nb && t->blocks[hi].last_row < target) {
            lo = hi;
            step *= 2;
            hi = (nb - hi > step) ? hi + step : nb;
        }
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (t->blocks[mid].last_row < target)
                lo = mid;
            else
                hi = mid;
        }
        from = hi;
    }
    if (from < nb) return from;
    if (t->ntail && tail_last(t) >= target) return nb;
    return nb + 1;
}

static void cur_load(cursor *c, uint32_t bi) {
    const bm25_term *t = c->t;
    c->bi = bi;
    c->i = 0;
    c->pdoc = 0;
    if (bi < t->nblocks) {
        bm25_block_decode(t, bi, c->dbuf, NULL);
        c->docs = c->dbuf;
        c->tfs = c->tbuf;
        c->tf_ok = 0;
        c->n = BM25_BLOCK;
        c->pp = t->pos ? t->pos + t->blocks[bi].pos_off : NULL;
        c->st->blocks_decoded++;
    } else if (bi == t->nblocks && t->ntail) {
        c->docs = t->tail;
        c->tfs = bm25_tail_tf(t);
        c->tf_ok = 1;
        c->n = t->ntail;
        c->pp = t->pos ? t->pos + t->tail_pos_off : NULL;
        c->st->blocks_decoded++;
    } else {
        c->n = 0;
        c->doc = BM25_END;
        return;
    }
    c->doc = c->docs[0];
}

static void cur_init(cursor *c, const bm25_term *t, bm25_search_stats *st) {
    memset(c, 0, offsetof(cursor, dbuf));
    c->t = t;
    c->st = st;
    cur_load(c, 0);
}

static uint32_t cur_advance(cursor *c, uint32_t target) {
    if (c->doc >= target) return c->doc;
    const bm25_term *t = c->t;
    uint32_t blast = c->bi < t->nblocks ? t->blocks[c->bi].last_row : tail_last(t);
    if (target > blast) {
        uint32_t b = find_block(t, c->bi + 1, target);
        cur_load(c, b);
        if (c->doc == BM25_END) return BM25_END;
    }
    uint32_t i = c->i;
    while (c->docs[i] < target) i++;
    c->i = i;
    c->doc = c->docs[i];
    return c->doc;
}

static uint32_t cur_tf(cursor *c) {
    if (!c->tf_ok) {
        bm25_block_decode_tf(c->t, c->bi, c->tbuf);
        c->tf_ok = 1;
    }
    return c->tfs[c->i];
}

/* Bound of the block holding target (or the first after it); 0 when none. */
static int cur_shallow(cursor *c, uint32_t target, uint32_t *last, float A, float B) {
    const bm25_term *t = c->t;
    uint32_t b = find_block(t, c->sbi, target);
    if (b > t->nblocks) return 0;
    c->sbi = b;
    if (c->sb_key != b + 1) {
        c->sb_key = b + 1;
        c->sb_factor = b < t->nblocks ? bm25_imp_bound(t->blocks[b].imp, t->blocks[b].nimp, A, B)
                                      : bm25_imp_bound(t->tail_imp, t->ntail_imp, A, B);
    }
    *last = b < t->nblocks ? t->blocks[b].last_row : tail_last(t);
    return 1;
}

/* Max factor bound over the blocks that intersect [lo, hi]; 0 = none left. */
static int cur_range(cursor *c, uint32_t lo, uint32_t hi, float *f, float A, float B) {
    const bm25_term *t = c->t;
    uint32_t last;
    if (!cur_shallow(c, lo, &last, A, B)) return 0;
    float m = c->sb_factor;
    for (uint32_t b = c->sbi + 1; last < hi && b <= t->nblocks; b++) {
        if (b == t->nblocks && !t->ntail) break;
        float g = b < t->nblocks ? bm25_imp_bound(t->blocks[b].imp, t->blocks[b].nimp, A, B)
                                 : bm25_imp_bound(t->tail_imp, t->ntail_imp, A, B);
        if (g > m) m = g;
        last = b < t->nblocks ? t->blocks[b].last_row : tail_last(t);
    }
    *f = m;
    return 1;
}

/* Decode the positions of the current doc into c->pbuf; returns the count. */
static int cur_positions(cursor *c, uint32_t *np) {
    uint32_t tf = cur_tf(c);
    const uint8_t *p = c->pp;
    for (; c->pdoc < c->i; c->pdoc++) { /* skip the positions of earlier docs */
        uint32_t k = c->tfs[c->pdoc];
        while (k) k -= !(*p++ & 0x80);
    }
    if (tf > c->pcap) {
        uint32_t cap = c->pcap ? c->pcap : 16;
        while (cap < tf) cap *= 2;
        uint32_t *b = q_realloc(c->pbuf, (size_t)cap * sizeof *b);
        if (!b) return QUARRY_NOMEM;
        c->pbuf = b;
        c->pcap = cap;
    }
    uint32_t pos = 0;
    for (uint32_t k = 0; k < tf; k++) {
        uint32_t g;
        p = bm25_varint_fast(p, &g);
        pos += g;
        c->pbuf[k] = pos;
    }
    c->pp = p;
    c->pdoc = c->i + 1;
    *np = tf;
    return 0;
}

/* ------------------------------------------------------------------ clause */

/* Number of starts s with term j at s + offs[j] for every j. */
static int phrase_freq(clause *cl, uint32_t *pf) {
    uint32_t cnt[64], *np = cl->ncur <= 64 ? cnt : q_malloc(cl->ncur * sizeof *np);
    uint32_t idx[64], *ix = cl->ncur <= 64 ? idx : q_malloc(cl->ncur * sizeof *ix);
    int rc = 0;
    if (!np || !ix) {
        rc = QUARRY_NOMEM;
        goto out;
    }
    for (uint32_t j = 0; j < cl->ncur && !rc; j++) {
        rc = cur_positions(&cl->cur[j], &np[j]);
        ix[j] = 0;
    }
    if (rc) goto out;
    uint32_t L = cl->lead, f = 0;
    const cursor *lc = &cl->cur[L];
    for (uint32_t a = 0; a < np[L]; a++) {
        uint32_t p = lc->pbuf[a];
        if (p < cl->offs[L]) continue;
        uint32_t s = p - cl->offs[L];
        int ok = 1;
        for (uint32_t j = 0; j < cl->ncur && ok; j++) {
            if (j == L) continue;
            const cursor *c = &cl->cur[j];
            uint64_t want = (uint64_t)s + cl->offs[j];
            while (ix[j] < np[j] && c->pbuf[ix[j]] < want) ix[j]++;
            if (ix[j] == np[j]) {
                a = np[L]; /* this term has no later position: done */
                ok = 0;
            } else if (c->pbuf[ix[j]] != want) {
                ok = 0;
            }
        }
        f += ok;
    }
    *pf = f;
out:
    if (np != cnt) q_free(np);
    if (ix != idx) q_free(ix);
    return rc;
}

/* Move to the first matching row >= target; returns it (BM25_END at the end)
 * or sets *err. */
static uint32_t cl_advance(clause *cl, uint32_t target, int *err) {
    if (cl->started && cl->doc >= target) return cl->doc;
    cl->started = 1;
    if (cl->kind == CL_TERM) return cl->doc = cur_advance(&cl->cur[0], target);
    cursor *lead = &cl->cur[cl->lead];
    uint32_t t = target;
    for (;;) {
        uint32_t d = cur_advance(lead, t);
        if (d == BM25_END) return cl->doc = BM25_END;
        uint32_t next = d;
        for (uint32_t j = 0; j < cl->ncur; j++) {
            if (j == cl->lead) continue;
            uint32_t dj = cur_advance(&cl->cur[j], d);
            if (dj > next) next = dj;
        }
        if (next == BM25_END) return cl->doc = BM25_END;
        if (next != d) {
            t = next;
            continue;
        }
        uint32_t pf = 0;
        int rc = phrase_freq(cl, &pf);
        if (rc) {
            *err = rc;
            return cl->doc = BM25_END;
        }
        if (pf) {
            cl->pf = pf;
            return cl->doc = d;
        }
        t = d + 1;
        if (t == BM25_END) return cl->doc = BM25_END;
    }
}

static float cl_score(clause *cl, float A, float B, uint32_t dl) {
    uint32_t tf = cl->kind == CL_TERM ? cur_tf(&cl->cur[0]) : cl->pf;
    return cl->w * bm25_tf_factor((float)tf, (float)dl, A, B);
}

/* Block bound (weighted) valid for rows in [target, *last]; 0 = exhausted. */
static int cl_shallow(clause *cl, uint32_t target, uint32_t *last, float *bound, float A, float B) {
    cursor *c = &cl->cur[cl->kind == CL_TERM ? 0 : cl->lead];
    if (cl->doc == BM25_END || !cur_shallow(c, target, last, A, B)) return 0;
    *bound = cl->w * c->sb_factor;
    return 1;
}

/* Bound (weighted) valid for rows in [lo, hi]; 0 = exhausted. */
static int cl_range(clause *cl, uint32_t lo, uint32_t hi, float *bound, float A, float B) {
    cursor *c = &cl->cur[cl->kind == CL_TERM ? 0 : cl->lead];
    float f;
    if (cl->doc == BM25_END || !cur_range(c, lo, hi, &f, A, B)) return 0;
    *bound = cl->w * f;
    return 1;
}

/* ----------------------------------------------------------------- parsing */

typedef struct qterm {
    int64_t tid; /* -1: no live row has it */
    uint32_t pos;
} qterm;

typedef struct qlist {
    const bm25 *x;
    qterm *v;
    size_t n, cap;
} qlist;

static int q_term(void *ctx, const char *term, size_t len, uint32_t pos) {
    qlist *l = ctx;
    if (l->n == l->cap) {
        size_t c = l->cap ? 2 * l->cap : 32;
        qterm *p = q_realloc(l->v, c * sizeof *p);
        if (!p) return QUARRY_NOMEM;
        l->v = p;
        l->cap = c;
    }
    int64_t tid = bm25_lookup(l->x, term, len);
    if (tid >= 0 && l->x->terms[tid].df == 0) tid = -1;
    l->v[l->n].tid = tid;
    l->v[l->n].pos = pos;
    l->n++;
    return 0;
}

static double idf(const bm25 *x, uint32_t df) {
    double N = (double)x->live;
    return log(1.0 + (N - (double)df + 0.5) / ((double)df + 0.5));
}

/* Add (or merge into) a clause of n terms; offs NULL for a single term. */
static int add_clause(query *q, const uint32_t *tids, const uint32_t *offs, uint32_t n) {
    int kind = n > 1 ? CL_PHRASE : CL_TERM;
    for (uint32_t i = 0; i < q->ncl; i++) {
        clause *c = &q->cl[i];
        if (c->kind != kind || c->ncur != n) continue;
        if (memcmp(c->tids, tids, n * sizeof *tids)) continue;
        if (kind == CL_PHRASE && memcmp(c->offs, offs, n * sizeof *offs)) continue;
        c->boost += 1.0f;
        return 0;
    }
    if (q->ncl >= BM25_MAX_QUERY_CLAUSES || q->ncur_total + n > 4 * BM25_MAX_QUERY_CLAUSES)
        return q_err(QUARRY_INVALID, "bm25: query has more than %d distinct terms and phrases",
                     BM25_MAX_QUERY_CLAUSES);
    if (q->ncl == q->cap_cl) {
        uint32_t c = q->cap_cl ? 2 * q->cap_cl : 8;
        clause *p = q_realloc(q->cl, c * sizeof *p);
        if (!p) return QUARRY_NOMEM;
        q->cl = p;
        q->cap_cl = c;
    }
    clause *c = &q->cl[q->ncl];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->boost = 1.0f;
    c->ncur = n;
    c->tids = q_malloc(n * sizeof *c->tids);
    c->offs = kind == CL_PHRASE ? q_malloc(n * sizeof *c->offs) : NULL;
    if (!c->tids || (kind == CL_PHRASE && !c->offs)) {
        q_free(c->tids);
        q_free(c->offs);
        return QUARRY_NOMEM;
    }
    memcpy(c->tids, tids, n * sizeof *tids);
    if (offs) memcpy(c->offs, offs, n * sizeof *offs);
    q->ncl++;
    q->ncur_total += n;
    return 0;
}

/* One analysed part of the query: a bag of words or a phrase. */
static int add_part(query *q, qlist *l, int phrase, bm25_mode mode) {
    if (!l->n) return 0;
    if (!phrase || !q->x->positions || l->n == 1) {
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].tid < 0) {
                if (mode == BM25_AND) q->impossible = 1;
                continue;
            }
            uint32_t tid = (uint32_t)l->v[i].tid;
            int rc = add_clause(q, &tid, NULL, 1);
            if (rc) return rc;
        }
        return 0;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].tid < 0) {
            if (mode == BM25_AND) q->impossible = 1;
            return 0;
        }
    if (l->n > 4 * BM25_MAX_QUERY_CLAUSES)
        return q_err(QUARRY_INVALID, "bm25: phrase of %zu terms", l->n);
    uint32_t *tids = q_malloc(l->n * sizeof *tids), *offs = q_malloc(l->n * sizeof *offs);
    int rc = 0;
    if (!tids || !offs) {
        rc = QUARRY_NOMEM;
    } else {
        for (size_t i = 0; i < l->n; i++) {
            tids[i] = (uint32_t)l->v[i].tid;
            offs[i] = l->v[i].pos - l->v[0].pos;
        }
        rc = add_clause(q, tids, offs, (uint32_t)l->n);
    }
    q_free(tids);
    q_free(offs);
    return rc;
}

/* Length of a quote character at s (0 if none). */
static size_t quote_at(const uint8_t *s, size_t left) {
    if (s[0] == '"') return 1;
    if (left >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x9C || s[2] == 0x9D)) return 3;
    return 0;
}

static int parse(query *q, const char *text, size_t len, bm25_mode mode) {
    const uint8_t *s = (const uint8_t *)text;
    size_t nq = 0;
    for (size_t i = 0; i < len;) {
        size_t k = quote_at(s + i, len - i);
        nq += k > 0;
        i += k ? k : 1;
    }
    size_t usable = nq & ~(size_t)1; /* an unmatched last quote is ignored */
    qlist l = {.x = q->x};
    int rc = 0, phrase = 0;
    size_t start = 0, seen = 0;
    for (size_t i = 0; i <= len && !rc;) {
        size_t k = i < len ? quote_at(s + i, len - i) : 0;
        if (i == len || (k && seen < usable)) {
            l.n = 0;
            rc = text_analyze(q->x->an, text + start, i - start, q_term, &l);
            if (!rc) rc = add_part(q, &l, phrase, mode);
            if (i == len) break;
            seen++;
            phrase = !phrase;
            i += k;
            start = i;
        } else {
            i += k ? k : 1;
        }
    }
    q_free(l.v);
    return rc;
}

/* ------------------------------------------------------------------- top-k */

typedef struct hit {
    int64_t acc; /* fixed-point score */
    uint32_t row;
} hit;

typedef struct run {
    query *q;
    const bm25_search_params *p;
    hit *heap; /* min-heap of the k best: root = worst */
    size_t n, k;
    int64_t thr; /* root's score once k are kept, else -1: prune when bound <= thr */
    int prune;
    double scale; /* fixed point: acc = llround(score * scale) */
    int err;
    int64_t *win;   /* per-window accumulators */
    uint64_t *bits; /* rows of the window with an essential match */
    uint32_t polls; /* steps since the last stop poll */
} run;

/* Poll the caller's stop function every `every` calls; 1 = abandon. */
static inline int stop_due(run *r, uint32_t every) {
    if (!r->p->stop || ++r->polls < every) return 0;
    r->polls = 0;
    return r->p->stop(r->p->stop_ctx) != 0;
}

#define WIN 4096 /* rows per window at most */
#ifndef MINWIN
#define MINWIN 512 /* rows per window at least (when pruning) */
#endif

/* a is worse than b: lower score, or equal score and higher row */
static inline int hit_worse(const hit *a, const hit *b) {
    return a->acc < b->acc || (a->acc == b->acc && a->row > b->row);
}

static inline void offer(run *r, int64_t acc, uint32_t row) {
    hit x = {acc, row};
    r->q->st.docs_scored++;
    if (r->n < r->k) {
        size_t i = r->n++;
        while (i > 0 && hit_worse(&x, &r->heap[(i - 1) / 2])) {
            r->heap[i] = r->heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        r->heap[i] = x;
    } else {
        if (!hit_worse(&r->heap[0], &x)) return;
        size_t i = 0;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= r->n) break;
            if (c + 1 < r->n && hit_worse(&r->heap[c + 1], &r->heap[c])) c++;
            if (!hit_worse(&r->heap[c], &x)) break;
            r->heap[i] = r->heap[c];
            i = c;
        }
        r->heap[i] = x;
    }
    if (r->prune && r->n == r->k) r->thr = r->heap[0].acc;
}

/* Contributions round to nearest, bounds round up: a contribution never
 * exceeds its bound, and integer sums are exact and order-free. */
static inline int64_t fx(const run *r, float s) { return (int64_t)((double)s * r->scale + 0.5); }
static inline int64_t fx_up(const run *r, float s) { return (int64_t)((double)s * r->scale) + 2; }

static inline int rejected(run *r, uint32_t d) {
    const bm25 *x = r->q->x;
    if (bm25_is_dead(x, d)) return 1;
    return r->p->accept && !r->p->accept(r->p->accept_ctx, d);
}

/* Accumulate clause cl's scores for rows in [lo, hi] into the window. */
static void accumulate(run *r, clause *cl, uint32_t lo, uint32_t hi) {
    query *q = r->q;
    const uint32_t *dl = q->x->dl;
    float A = q->A, B = q->B, w = cl->w;
    uint64_t cnt = 0;
    if (cl->kind == CL_TERM) {
        cursor *c = &cl->cur[0];
        cur_advance(c, lo);
        while (c->doc <= hi) {
            cur_tf(c);
            uint32_t i = c->i, n = c->n;
            const uint32_t *docs = c->docs, *tfs = c->tfs;
            for (; i < n && docs[i] <= hi; i++) {
                uint32_t d = docs[i], o = d - lo;
                float s = w * bm25_tf_factor((float)tfs[i], (float)dl[d], A, B);
                r->win[o] += fx(r, s);
                r->bits[o >> 6] |= 1ull << (o & 63);
            }
            cnt += i - c->i;
            if (i < n) {
                c->i = i;
                c->doc = docs[i];
                break;
            }
            cur_load(c, c->bi + 1);
        }
        cl->doc = c->doc;
    } else {
        for (uint32_t d = cl_advance(cl, lo, &r->err); d <= hi && !r->err;
             d = cl_advance(cl, d + 1, &r->err)) {
            uint32_t o = d - lo;
            r->win[o] += fx(r, cl_score(cl, A, B, dl[d]));
            r->bits[o >> 6] |= 1ull << (o & 63);
            cnt++;
            if (d == BM25_END - 1) break;
        }
    }
    q->st.postings_scored += cnt;
}

/* Add a non-essential clause's scores to the window's candidates: a merge of
 * its postings in [lo, hi] against the candidate bits (the window never
 * spans more than one of its blocks, so advancing per candidate would scan
 * the same postings); a phrase is checked per candidate. Returns the number
 * of candidates. */
static uint32_t nonessential(run *r, clause *cl, uint32_t lo, uint32_t hi, uint32_t words) {
    query *q = r->q;
    const uint32_t *dl = q->x->dl;
    float A = q->A, B = q->B;
    uint64_t cnt = 0;
    uint32_t alive = 0;
    if (cl->kind == CL_TERM) {
        cursor *c = &cl->cur[0];
        cur_advance(c, lo);
        while (c->doc <= hi) {
            uint32_t i = c->i, n = c->n;
            const uint32_t *docs = c->docs;
            for (; i < n && docs[i] <= hi; i++) {
                uint32_t o = docs[i] - lo;
                if (!((r->bits[o >> 6] >> (o & 63)) & 1)) continue;
                c->i = i;
                r->win[o] +=
                    fx(r, cl->w * bm25_tf_factor((float)cur_tf(c), (float)dl[docs[i]], A, B));
                cnt++;
            }
            if (i < n) {
                c->i = i;
                c->doc = docs[i];
                break;
            }
            cur_load(c, c->bi + 1);
        }
        cl->doc = c->doc;
        for (uint32_t wi = 0; wi < words; wi++)
            alive += (uint32_t)__builtin_popcountll(r->bits[wi]);
    } else {
        for (uint32_t wi = 0; wi < words; wi++)
            for (uint64_t bw = r->bits[wi]; bw; bw &= bw - 1) {
                uint32_t o = wi * 64 + (uint32_t)__builtin_ctzll(bw), d = lo + o;
                alive++;
                if (cl_advance(cl, d, &r->err) != d) continue;
                r->win[o] += fx(r, cl_score(cl, A, B, dl[d]));
                cnt++;
            }
    }
    q->st.postings_scored += cnt;
    return alive;
}

/* Drop candidates whose score plus `rest` (the bounds of the clauses still
 * to add) cannot beat the threshold. Returns the number left. */
static uint32_t cut(run *r, uint32_t words, int64_t rest) {
    uint32_t alive = 0;
    for (uint32_t wi = 0; wi < words; wi++)
        for (uint64_t bw = r->bits[wi]; bw; bw &= bw - 1) {
            uint32_t o = wi * 64 + (uint32_t)__builtin_ctzll(bw);
            if (r->win[o] + rest <= r->thr) {
                r->bits[wi] &= ~(1ull << (o & 63));
                r->win[o] = 0;
            } else {
                alive++;
            }
        }
    return alive;
}

typedef struct bkey {
    int64_t b;
    uint32_t i;
} bkey;

static int cmp_bkey(const void *x, const void *y) {
    const bkey *a = x, *b = y;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int run_or(run *r) {
    query *q = r->q;
    uint32_t n = q->ncl;
    float A = q->A, B = q->B;
    int64_t *wmax = q_malloc(n * sizeof *wmax), *pre = q_malloc((n + 1) * sizeof *pre);
    uint32_t *order = q_malloc(n * sizeof *order);
    uint8_t *ess = q_malloc(n);
    bkey *keyed = q_malloc(n * sizeof *keyed);
    r->win = q_calloc(WIN, sizeof *r->win);
    r->bits = q_calloc(WIN / 64, sizeof *r->bits);
    int rc = 0;
    if (!wmax || !pre || !order || !ess || !keyed || !r->win || !r->bits) {
        rc = QUARRY_NOMEM;
        goto out;
    }
    for (uint32_t c = 0; c < n; c++) ess[c] = 1;
    uint32_t lo = 0;
    while (!r->err) {
        /* The window: up to the nearest block end of the essential clauses of
         * the last window (so that non-essential clauses with short blocks do
         * not cut it into slivers), at least MINWIN and at most WIN rows;
         * every clause's bound is its maximum over the window. */
        uint32_t hi = BM25_END - 1 - lo < WIN - 1 ? BM25_END - 1 : lo + (WIN - 1);
        if (r->prune) {
            uint32_t e = BM25_END;
            for (uint32_t c = 0; c < n; c++) {
                uint32_t last;
                float bd;
                if (ess[c] && cl_shallow(&q->cl[c], lo, &last, &bd, A, B) && last < e) e = last;
            }
            uint32_t floor = BM25_END - 1 - lo < MINWIN - 1 ? BM25_END - 1 : lo + (MINWIN - 1);
            if (e < floor) e = floor;
            if (e < hi) hi = e;
        }
        int any = 0;
        for (uint32_t c = 0; c < n; c++) {
            float bd;
            if (!cl_range(&q->cl[c], lo, hi, &bd, A, B)) {
                wmax[c] = 0;
                continue;
            }
            wmax[c] = fx_up(r, bd);
            any = 1;
        }
        if (!any) break;
        /* order by window bound, ascending */
        if (n <= 32) {
            for (uint32_t i = 0; i < n; i++) {
                uint32_t v = i, j = i;
                while (j > 0 && wmax[order[j - 1]] > wmax[v]) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = v;
            }
        } else {
            for (uint32_t i = 0; i < n; i++) keyed[i] = (bkey){wmax[i], i};
            qsort(keyed, n, sizeof *keyed, cmp_bkey);
            for (uint32_t i = 0; i < n; i++) order[i] = keyed[i].i;
        }
        pre[0] = 0;
        for (uint32_t i = 0; i < n; i++) pre[i + 1] = pre[i] + wmax[order[i]];
        /* non-essential: exhausted clauses and the longest prefix that cannot beat thr */
        uint32_t ne = 0;
        while (ne < n && (wmax[order[ne]] == 0 || pre[ne + 1] <= r->thr)) ne++;
        for (uint32_t m = 0; m < n; m++) ess[order[m]] = m >= ne;
        if (ne < n) {
            for (uint32_t m = ne; m < n && !r->err; m++) accumulate(r, &q->cl[order[m]], lo, hi);
            uint32_t words = (hi - lo) / 64 + 1;
            /* 1. candidates that cannot make it, deleted or filtered out */
            uint32_t alive = 0;
            for (uint32_t wi = 0; wi < words; wi++)
                for (uint64_t bw = r->bits[wi]; bw; bw &= bw - 1) {
                    uint32_t o = wi * 64 + (uint32_t)__builtin_ctzll(bw);
                    if (r->win[o] + pre[ne] <= r->thr || rejected(r, lo + o)) {
                        r->bits[wi] &= ~(1ull << (o & 63));
                        r->win[o] = 0;
                    } else {
                        alive++;
                    }
                }
            /* 2. non-essential clauses, largest bound first, only for candidates */
            for (uint32_t m = ne; m-- > 0 && alive && !r->err;) {
                clause *cl = &q->cl[order[m]];
                if (wmax[order[m]] == 0) continue;
                alive = nonessential(r, cl, lo, hi, words);
                if (r->thr >= 0 && pre[m] > 0) alive = cut(r, words, pre[m]);
            }
            /* 3. the survivors */
            for (uint32_t wi = 0; wi < words; wi++) {
                for (uint64_t bw = r->bits[wi]; bw; bw &= bw - 1) {
                    uint32_t o = wi * 64 + (uint32_t)__builtin_ctzll(bw);
                    if (!r->err && r->win[o] > r->thr) offer(r, r->win[o], lo + o);
                    r->win[o] = 0;
                }
                r->bits[wi] = 0;
            }
        }
        if (hi >= BM25_END - 1 || stop_due(r, 4)) break;
        lo = hi + 1;
    }
out:
    q_free(wmax);
    q_free(pre);
    q_free(order);
    q_free(ess);
    q_free(keyed);
    q_free(r->win);
    q_free(r->bits);
    return rc ? rc : r->err;
}

static int cmp_cost(const void *a, const void *b) {
    const clause *x = *(clause *const *)a, *y = *(clause *const *)b;
    return x->cost < y->cost ? -1 : x->cost > y->cost;
}

static int run_and(run *r) {
    query *q = r->q;
    uint32_t n = q->ncl;
    float A = q->A, B = q->B;
    clause **ord = q_malloc(n * sizeof *ord);
    if (!ord) return QUARRY_NOMEM;
    for (uint32_t i = 0; i < n; i++) ord[i] = &q->cl[i];
    if (n > 1) qsort(ord, n, sizeof *ord, cmp_cost);
    uint32_t target = 0;
    while (!r->err && !stop_due(r, 1024)) {
        uint32_t hi = BM25_END;
        if (r->thr >= 0) {
            int64_t ub = 0;
            int done = 0;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t last;
                float bd;
                if (!cl_shallow(ord[i], target, &last, &bd, A, B)) {
                    done = 1;
                    break;
                }
                ub += fx_up(r, bd);
                if (last < hi) hi = last;
            }
            if (done) break;
            if (ub <= r->thr) {
                if (hi >= BM25_END - 1) break;
                target = hi + 1;
                continue;
            }
        }
        uint32_t d = cl_advance(ord[0], target, &r->err);
        if (d == BM25_END) break;
        if (d > hi) {
            target = d;
            continue;
        }
        uint32_t next = d;
        for (uint32_t i = 1; i < n && next == d; i++) next = cl_advance(ord[i], d, &r->err);
        if (next == BM25_END) break;
        if (next != d) {
            target = next;
            continue;
        }
        if (!rejected(r, d)) {
            uint32_t dl = q->x->dl[d];
            int64_t acc = 0;
            for (uint32_t c = 0; c < n; c++) acc += fx(r, cl_score(&q->cl[c], A, B, dl));
            q->st.postings_scored += n;
            offer(r, acc, d);
        }
        if (d == BM25_END - 1) break;
        target = d + 1;
    }
    q_free(ord);
    return r->err;
}

static void query_free(query *q) {
    for (uint32_t i = 0; i < q->ncl; i++) {
        clause *c = &q->cl[i];
        if (c->cur)
            for (uint32_t j = 0; j < c->ncur; j++) q_free(c->cur[j].pbuf);
        q_free(c->cur);
        q_free(c->tids);
        q_free(c->offs);
    }
    q_free(q->cl);
}

static int cmp_out(const void *a, const void *b) {
    const topk_hit *x = a, *y = b;
    if (x->dist != y->dist) return x->dist < y->dist ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

int bm25_search(const bm25 *x, const char *text, size_t len, const bm25_search_params *p,
                topk_hit *out, size_t *nout) {
    *nout = 0;
    if (p->stats) memset(p->stats, 0, sizeof *p->stats);
    if (len > QUARRY_MAX_TEXT_LEN) return q_err(QUARRY_INVALID, "bm25: query too long");
    query q;
    memset(&q, 0, sizeof q);
    q.x = x;
    run r;
    memset(&r, 0, sizeof r);
    int rc = parse(&q, text, len, p->mode);
    if (rc || p->k == 0 || q.ncl == 0 || q.impossible || x->live == 0) goto done;
    bm25_ab(x, &q.A, &q.B);
    double wsum = 0;
    for (uint32_t i = 0; i < q.ncl; i++) {
        clause *c = &q.cl[i];
        c->cur = q_malloc(c->ncur * sizeof *c->cur);
        if (!c->cur) {
            rc = QUARRY_NOMEM;
            goto done;
        }
        double w = 0;
        uint64_t cost = UINT64_MAX;
        for (uint32_t j = 0; j < c->ncur; j++) {
            const bm25_term *t = &x->terms[c->tids[j]];
            cursor *cu = &c->cur[j];
            cur_init(cu, t, &q.st);
            w += idf(x, t->df);
            uint64_t np = bm25_npost(t);
            q.st.postings_total += np;
            q.st.blocks_total += t->nblocks + (t->ntail > 0);
            if (np < cost) {
                cost = np;
                c->lead = j;
            }
        }
        c->w = (float)(c->boost * w);
        c->cost = cost;
        c->started = c->kind == CL_TERM;
        c->doc = c->started ? c->cur[0].doc : 0;
        wsum += (double)c->w;
    }
    /* Fixed point with 2^61 above any reachable sum (a score is below the
     * sum of the clause weights: every tf factor is below 1). */
    r.scale = ldexp(1.0, 61 - ilogb(wsum * 1.01 + 1e-30) - 1);
    r.q = &q;
    r.p = p;
    r.prune = !p->exhaustive;
    r.thr = -1;
    r.k = p->k < x->live ? p->k : (size_t)x->live; /* never more than the live rows */
    r.heap = q_malloc(r.k * sizeof *r.heap);
    if (!r.heap) {
        rc = QUARRY_NOMEM;
        goto done;
    }
    rc = p->mode == BM25_AND ? run_and(&r) : run_or(&r);
    if (!rc) {
        /* heap sort: pop the worst to the back, best ends up first */
        for (size_t n = r.n; n > 1; n--) {
            hit last = r.heap[n - 1];
            r.heap[n - 1] = r.heap[0];
            size_t i = 0;
            for (;;) {
                size_t c = 2 * i + 1;
                if (c >= n - 1) break;
                if (c + 1 < n - 1 && hit_worse(&r.heap[c + 1], &r.heap[c])) c++;
                if (!hit_worse(&r.heap[c], &last)) break;
                r.heap[i] = r.heap[c];
                i = c;
            }
            r.heap[i] = last;
        }
        for (size_t i = 0; i < r.n; i++) {
            out[i].row = r.heap[i].row;
            out[i].dist = -(float)((double)r.heap[i].acc / r.scale);
            /* distinct scores that round to one float: order those by row */
            for (size_t j = i; j > 0 && cmp_out(&out[j - 1], &out[j]) > 0; j--) {
                topk_hit t = out[j];
                out[j] = out[j - 1];
                out[j - 1] = t;
            }
        }
        *nout = r.n;
    }
done:
    q_free(r.heap);
    if (p->stats) *p->stats = q.st;
    query_free(&q);
    if (rc == QUARRY_NOMEM) return q_err(rc, "bm25: search");
    return rc;
}
