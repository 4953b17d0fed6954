/* SPDX-License-Identifier: MIT */
/*
 * test_text_bm25.c -- BM25 scores and top-k against a brute-force reference.
 *
 * A generated corpus (Zipf-like word frequencies, lengths 0..400, some rows
 * without text or without terms, row gaps, random case and punctuation) is
 * indexed; a reference keeps every row's words and scores every live row
 * exhaustively in double precision with the same formula (Lucene's
 * BM25Similarity: idf = ln(1 + (N - df + 0.5)/(df + 0.5)), tf / (tf + k1 (1 -
 * b + b dl/avgdl)), repeated clauses adding their boosts, phrases scored
 * with the sum of their terms' idfs and the phrase frequency).
 *
 * For every query (bag of words with frequent and rare terms, repeated
 * terms, unknown terms, quoted phrases), in OR and AND mode, without a
 * filter and with filters passing 50 %, 5 % and 0.1 % of the rows, and for
 * k = 1, 10, 100:
 *   - the result count is min(k, matching rows that pass);
 *   - every returned row is live, matches, passes, appears once, and its
 *     score equals the reference's to 1e-5 (relative);
 *   - the i-th score equals the reference's i-th best score to 1e-5, so the
 *     result is the exhaustive top-k up to ties;
 *   - the pruned search and the index's exhaustive search return the same
 *     rows with bit-identical scores.
 * This runs on the fresh index, after deleting a quarter of the rows, after
 * appending more rows (after bm25_shrink), with other k1/b, and on a rebuilt
 * index; bm25_check passes at every stage.
 */
#include "t.h"

#include <math.h>

#include "index/text/text.h"

#define V    600
#define MAXW 8

typedef struct doc {
    uint16_t *w;
    uint32_t n;
    int live; /* added and not deleted, and has words */
    int added;
} doc;

static doc *docs;
static uint32_t ndocs;
static double K1 = 1.2, B = 0.75;

static void word(uint32_t id, char *buf) {
    int n = 0;
    buf[n++] = 'w';
    do {
        buf[n++] = (char)('a' + id % 26);
        id /= 26;
    } while (id);
    buf[n] = 0;
}

static uint32_t zipf(uint64_t *s) {
    double u = (double)(t_rand(s) >> 11) / 9007199254740992.0;
    return (uint32_t)(V * u * u * u);
}

/* Make row r's words and text (appended to buf). */
static size_t make_text(uint64_t *s, doc *d, char *buf) {
    uint32_t kind = (uint32_t)(t_rand(s) % 20);
    size_t len = 0;
    if (kind == 0) {
        d->n = 0; /* punctuation only: no terms */
        strcpy(buf, " ... !!! ");
        return strlen(buf);
    }
    uint32_t n = kind == 1 ? 200 + (uint32_t)(t_rand(s) % 200) : 1 + (uint32_t)(t_rand(s) % 60);
    d->w = malloc(n * sizeof *d->w);
    d->n = n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = (t_rand(s) % 7 == 0) ? (uint32_t)(t_rand(s) % V) : zipf(s);
        d->w[i] = (uint16_t)id;
        char wb[16];
        word(id, wb);
        if (t_rand(s) % 5 == 0)
            for (char *c = wb; *c; c++) *c = (char)(*c - 32);
        const char *sep = (t_rand(s) % 6 == 0) ? ", " : " ";
        len += (size_t)sprintf(buf + len, "%s%s", i ? sep : "", wb);
    }
    return len;
}

/* ---------------------------------------------------------------- queries */

typedef struct qclause {
    uint32_t n;
    uint32_t w[MAXW]; /* UINT32_MAX = a word not in the corpus */
    int phrase;
} qclause;

#define MAXC 72

typedef struct qry {
    qclause c[MAXC];
    uint32_t nc;
    char text[2048];
} qry;

static void make_query(uint64_t *s, qry *q) {
    memset(q, 0, sizeof *q);
    uint32_t nb = 1 + (uint32_t)(t_rand(s) % 5);
    if (t_rand(s) % 10 == 0) nb = 33 + (uint32_t)(t_rand(s) % 30); /* long queries */
    for (uint32_t i = 0; i < nb; i++) {
        qclause *c = &q->c[q->nc++];
        c->n = 1;
        uint32_t r = (uint32_t)(t_rand(s) % 10);
        c->w[0] = r < 6 ? zipf(s) : r < 9 ? (uint32_t)(t_rand(s) % V) : UINT32_MAX;
        if (t_rand(s) % 8 == 0 && q->nc < MAXC - 1) q->c[q->nc++] = *c; /* repeated term */
    }
    if (t_rand(s) % 3 == 0) {
        /* a phrase from a live row */
        for (int tries = 0; tries < 50; tries++) {
            doc *d = &docs[t_rand(s) % ndocs];
            if (!d->live || d->n < 4) continue;
            uint32_t len = 2 + (uint32_t)(t_rand(s) % 2), at = (uint32_t)(t_rand(s) % (d->n - len));
            qclause *c = &q->c[q->nc++];
            c->n = len;
            c->phrase = 1;
            for (uint32_t j = 0; j < len; j++) c->w[j] = d->w[at + j];
            break;
        }
    }
    size_t o = 0;
    for (uint32_t i = 0; i < q->nc; i++) {
        qclause *c = &q->c[i];
        if (c->phrase) o += (size_t)sprintf(q->text + o, " \"");
        for (uint32_t j = 0; j < c->n; j++) {
            char wb[16];
            if (c->w[j] == UINT32_MAX)
                strcpy(wb, "zzzunknown");
            else
                word(c->w[j], wb);
            o += (size_t)sprintf(q->text + o, "%s%s", j ? " " : " ", wb);
        }
        if (c->phrase) o += (size_t)sprintf(q->text + o, "\"");
    }
}

/* ------------------------------------------------------------- reference */

static uint32_t clause_tf(const qclause *c, const doc *d) {
    uint32_t f = 0;
    for (uint32_t s = 0; s + c->n <= d->n; s++) {
        uint32_t j = 0;
        while (j < c->n && d->w[s + j] == c->w[j]) j++;
        f += j == c->n;
    }
    return f;
}

typedef struct ref {
    double score;
    uint32_t row;
} ref;

static int cmp_ref(const void *a, const void *b) {
    const ref *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

typedef int (*acc_fn)(void *, uint32_t);

static int accept_sel(void *ctx, uint32_t row) {
    uint32_t per_mille = *(uint32_t *)ctx;
    uint64_t s = row * 0x9E3779B97F4A7C15ull;
    return t_rand(&s) % 1000 < per_mille;
}

/* Reference scores of every live row; returns the count of matching rows
 * (and fills all[row] with the score, -1 when not matching). */
static size_t reference(const qry *q, int and_mode, double *all) {
    double N = 0, sum = 0;
    for (uint32_t r = 0; r < ndocs; r++)
        if (docs[r].live) {
            N++;
            sum += docs[r].n;
        }
    double avgdl = sum / N;
    /* merge identical clauses */
    qclause u[MAXC];
    double boost[MAXC];
    uint32_t nu = 0;
    int impossible = 0;
    for (uint32_t i = 0; i < q->nc; i++) {
        const qclause *c = &q->c[i];
        int missing = 0;
        for (uint32_t j = 0; j < c->n; j++) missing |= c->w[j] == UINT32_MAX;
        if (!missing) {
            /* a word with no live row is missing too */
            for (uint32_t j = 0; j < c->n && !missing; j++) {
                int found = 0;
                for (uint32_t r = 0; r < ndocs && !found; r++)
                    if (docs[r].live)
                        for (uint32_t k = 0; k < docs[r].n; k++)
                            if (docs[r].w[k] == c->w[j]) {
                                found = 1;
                                break;
                            }
                missing = !found;
            }
        }
        if (missing) {
            impossible |= and_mode;
            continue;
        }
        uint32_t k = 0;
        for (; k < nu; k++)
            if (u[k].n == c->n && !memcmp(u[k].w, c->w, c->n * sizeof c->w[0])) break;
        if (k < nu) {
            boost[k] += 1;
        } else {
            u[nu] = *c;
            boost[nu++] = 1;
        }
    }
    double w[MAXC];
    for (uint32_t k = 0; k < nu; k++) {
        double idf = 0;
        for (uint32_t j = 0; j < u[k].n; j++) {
            double df = 0;
            for (uint32_t r = 0; r < ndocs; r++) {
                if (!docs[r].live) continue;
                for (uint32_t m = 0; m < docs[r].n; m++)
                    if (docs[r].w[m] == u[k].w[j]) {
                        df++;
                        break;
                    }
            }
            idf += log(1 + (N - df + 0.5) / (df + 0.5));
        }
        w[k] = boost[k] * idf;
    }
    size_t matching = 0;
    for (uint32_t r = 0; r < ndocs; r++) {
        all[r] = -1;
        if (!docs[r].live || impossible || !nu) continue;
        double s = 0;
        uint32_t hit = 0;
        for (uint32_t k = 0; k < nu; k++) {
            double tf = clause_tf(&u[k], &docs[r]);
            if (tf == 0) continue;
            hit++;
            s += w[k] * tf / (tf + K1 * (1 - B + B * docs[r].n / avgdl));
        }
        if (and_mode ? hit == nu : hit > 0) {
            all[r] = s;
            matching++;
        }
    }
    return matching;
}

static int close_to(double a, double b) { return fabs(a - b) <= 1e-5 * fmax(fabs(b), 1e-9); }

static uint64_t searches, scored, total;

/* all[] holds the reference scores for (q, and_mode). */
static void check_query(const bm25 *x, const qry *q, int and_mode, uint32_t *sel, size_t k,
                        const double *all, ref *sorted) {
    size_t m = 0;
    for (uint32_t r = 0; r < ndocs; r++)
        if (all[r] >= 0 && (!sel || accept_sel(sel, r))) sorted[m++] = (ref){all[r], r};
    qsort(sorted, m, sizeof *sorted, cmp_ref);
    topk_hit *out = malloc(k * sizeof *out), *ex = malloc(k * sizeof *ex);
    size_t n, nex;
    bm25_search_stats st;
    bm25_search_params p = {.k = k,
                            .mode = and_mode ? BM25_AND : BM25_OR,
                            .accept = sel ? accept_sel : NULL,
                            .accept_ctx = sel,
                            .stats = &st};
    T_ASSERT_OK(bm25_search(x, q->text, strlen(q->text), &p, out, &n));
    searches++;
    scored += st.postings_scored;
    total += st.postings_total;
    p.exhaustive = 1;
    p.stats = NULL;
    T_ASSERT_OK(bm25_search(x, q->text, strlen(q->text), &p, ex, &nex));
    size_t want = m < k ? m : k;
    if (n != want)
        T_FAIL("query [%s] %s sel %u k %zu: %zu results, want %zu", q->text,
               and_mode ? "AND" : "OR", sel ? *sel : 1000, k, n, want);
    T_ASSERT_EQ(nex, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t r = out[i].row;
        if (out[i].row != ex[i].row || memcmp(&out[i].dist, &ex[i].dist, sizeof(float)))
            T_FAIL("query [%s]: pruned hit %zu (%u, %g) != exhaustive (%u, %g)", q->text, i, r,
                   (double)out[i].dist, ex[i].row, (double)ex[i].dist);
        T_ASSERT(r < ndocs && all[r] >= 0);
        T_ASSERT(!sel || accept_sel(sel, r));
        for (size_t j = 0; j < i; j++) T_ASSERT(out[j].row != r);
        double got = -(double)out[i].dist;
        if (!close_to(got, all[r]))
            T_FAIL("query [%s] row %u: score %.9g, reference %.9g", q->text, r, got, all[r]);
        if (!close_to(got, sorted[i].score))
            T_FAIL("query [%s] %s rank %zu: score %.9g (row %u), reference %.9g (row %u)", q->text,
                   and_mode ? "AND" : "OR", i, got, r, sorted[i].score, sorted[i].row);
        if (i)
            T_ASSERT(out[i].dist > out[i - 1].dist ||
                     (out[i].dist == out[i - 1].dist && out[i].row > out[i - 1].row));
    }
    free(out);
    free(ex);
}

static void check_all(const bm25 *x, uint64_t seed, int nq) {
    char msg[256];
    if (bm25_check(x, msg, sizeof msg)) T_FAIL("bm25_check: %s", msg);
    bm25_info info;
    bm25_get_info(x, &info);
    uint64_t live = 0, sum = 0;
    for (uint32_t r = 0; r < ndocs; r++)
        if (docs[r].live) {
            live++;
            sum += docs[r].n;
            T_ASSERT(bm25_contains(x, r));
        } else {
            T_ASSERT(!bm25_contains(x, r));
        }
    T_ASSERT_EQ(info.live_docs, live);
    T_ASSERT_EQ(info.sum_dl, sum);
    double *all = malloc(ndocs * sizeof *all);
    ref *sorted = malloc(ndocs * sizeof *sorted);
    uint64_t s = seed;
    uint32_t sels[3] = {500, 50, 1};
    for (int i = 0; i < nq; i++) {
        qry q;
        make_query(&s, &q);
        size_t ks[3] = {1, 10, 100};
        for (int mode = 0; mode < 2; mode++) {
            reference(&q, mode, all);
            check_query(x, &q, mode, NULL, ks[i % 3], all, sorted);
            check_query(x, &q, mode, &sels[i % 3], 10, all, sorted);
        }
    }
    free(all);
    free(sorted);
}

static void add_rows(bm25 *x, uint64_t *s, uint32_t from, uint32_t to, char *buf) {
    for (uint32_t r = from; r < to; r++) {
        doc *d = &docs[r];
        memset(d, 0, sizeof *d);
        if (t_rand(s) % 15 == 0) continue; /* a row without text */
        size_t len = make_text(s, d, buf);
        T_ASSERT_OK(bm25_add(x, r, buf, len));
        d->added = 1;
        d->live = d->n > 0;
    }
}

int main(void) {
    uint32_t n1 = 2500, n2 = 3000;
    docs = calloc(n2, sizeof *docs);
    char *buf = malloc(1 << 16);
    bm25_config cfg;
    bm25_config_default(&cfg);
    cfg.analyzer.language = "none";
    bm25 *x;
    T_ASSERT_OK(bm25_new(&cfg, &x));
    uint64_t s = 42;

    /* 1. fresh index */
    ndocs = n1;
    add_rows(x, &s, 0, n1, buf);
    check_all(x, 1, 100);
    size_t before = bm25_memory(x);
    bm25_shrink(x); /* spare capacity goes; later appends regrow it */
    T_ASSERT(bm25_memory(x) <= before);
    check_all(x, 1, 10);

    /* row order is enforced */
    T_ASSERT_RC(bm25_add(x, n1 - 1, "late", 4), QUARRY_INVALID);
    T_ASSERT_RC(bm25_add(x, n1, "bad \xff", 5), QUARRY_INVALID);

    /* 2. delete a quarter of the rows (and some twice, and rows without text) */
    for (uint32_t r = 0; r < n1; r++) {
        if (t_rand(&s) % 4) continue;
        int was = docs[r].live;
        T_ASSERT_EQ(bm25_delete(x, r), was);
        T_ASSERT_EQ(bm25_delete(x, r), 0);
        docs[r].live = 0;
    }
    check_all(x, 2, 100);

    /* 3. append more rows after the deletes */
    ndocs = n2;
    add_rows(x, &s, n1 + 7, n2, buf); /* a gap of rows never added */
    for (uint32_t r = n1; r < n1 + 7; r++) memset(&docs[r], 0, sizeof docs[r]);
    check_all(x, 3, 100);

    /* 4. other parameters (query-time only) */
    T_ASSERT_OK(bm25_set_params(x, 0.9f, 0.4f));
    K1 = 0.9;
    B = 0.4;
    check_all(x, 4, 20);
    T_ASSERT_RC(bm25_set_params(x, -1.0f, 0.5f), QUARRY_INVALID);
    T_ASSERT_RC(bm25_set_params(x, 1.0f, 1.5f), QUARRY_INVALID);

    /* 5. rebuild from scratch: re-add the live rows in order */
    bm25_clear(x);
    T_ASSERT_OK(bm25_set_params(x, 1.2f, 0.75f));
    K1 = 1.2;
    B = 0.75;
    for (uint32_t r = 0; r < ndocs; r++) {
        if (!docs[r].live) continue;
        size_t o = 0;
        for (uint32_t i = 0; i < docs[r].n; i++) {
            char wb[16];
            word(docs[r].w[i], wb);
            o += (size_t)sprintf(buf + o, "%s%s", i ? " " : "", wb);
        }
        T_ASSERT_OK(bm25_add(x, r, buf, o));
    }
    check_all(x, 5, 20);

    /* 6. k = 0, empty and all-unknown queries */
    {
        topk_hit out[4];
        size_t n = 99;
        bm25_search_params p = {.k = 0};
        T_ASSERT_OK(bm25_search(x, "wa", 2, &p, out, &n));
        T_ASSERT_EQ(n, 0);
        p.k = 4;
        T_ASSERT_OK(bm25_search(x, "", 0, &p, out, &n));
        T_ASSERT_EQ(n, 0);
        T_ASSERT_OK(bm25_search(x, "\"\" ... zzzz", 11, &p, out, &n));
        T_ASSERT_EQ(n, 0);
        T_ASSERT_RC(bm25_search(x, "\xc3", 1, &p, out, &n), QUARRY_INVALID);
    }
    /* without positions a quoted phrase is searched as its words */
    {
        bm25_config c2;
        bm25_config_default(&c2);
        c2.no_positions = 1;
        bm25 *y;
        T_ASSERT_OK(bm25_new(&c2, &y));
        const char *t[] = {"black cat sat", "cat black", "a black dog", "cats"};
        for (uint32_t r = 0; r < 4; r++) T_ASSERT_OK(bm25_add(y, r, t[r], strlen(t[r])));
        topk_hit a[4], b[4];
        size_t na, nb;
        bm25_search_params p = {.k = 4, .mode = BM25_AND};
        T_ASSERT_OK(bm25_search(y, "\"black cat\"", 11, &p, a, &na));
        T_ASSERT_OK(bm25_search(y, "black cat", 9, &p, b, &nb));
        T_ASSERT_EQ(na, 2); /* rows 0 and 1 */
        T_ASSERT(na == nb && memcmp(a, b, na * sizeof *a) == 0);
        /* k beyond the live rows */
        p.k = 1000000;
        p.mode = BM25_OR;
        topk_hit *big = malloc(p.k * sizeof *big);
        T_ASSERT_OK(bm25_search(y, "cat", 3, &p, big, &na));
        T_ASSERT_EQ(na, 3);
        free(big);
        bm25_free(y);
    }
    printf("%llu searches; postings scored %.1f%% of the query terms' postings\n",
           (unsigned long long)searches, 100.0 * (double)scored / (double)(total ? total : 1));
    bm25_free(x);
    for (uint32_t r = 0; r < n2; r++) free(docs[r].w);
    free(docs);
    free(buf);
    return 0;
}
