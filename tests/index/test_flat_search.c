/* SPDX-License-Identifier: MIT */
/*
 * test_flat_search.c -- exact k-NN against a double-precision brute force.
 *
 * flat_search must return, for every metric and every kernel table this CPU
 * runs, the same rows in the same order as "compute every distance in double,
 * sort by (distance, row)", for k = 1, 10, n and n + 5; dead rows (live
 * bitmap) and filtered rows (accept callback) never appear; the filter is only
 * consulted for live rows; ties are ordered by row. Plus unit tests of topk.
 */
#include "t.h"

#include <math.h>

#include "index/flat/flat.h"

#define N 1237 /* crosses several scan blocks, not a multiple of 4 or 64 */
#define DIM 37
#define STRIDE (DIM + 3)

typedef struct ref_hit {
    double dist;
    uint32_t row;
} ref_hit;

static int ref_cmp(const void *pa, const void *pb) {
    const ref_hit *a = pa, *b = pb;
    if (a->dist != b->dist) return a->dist < b->dist ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

static double ref_dist(flat_metric m, const float *q, const float *x, size_t dim) {
    double s = 0;
    for (size_t i = 0; i < dim; i++) {
        if (m == FLAT_L2) {
            double d = (double)q[i] - x[i];
            s += d * d;
        } else {
            s += (double)q[i] * x[i];
        }
    }
    return m == FLAT_L2 ? s : m == FLAT_IP ? -s : 1.0 - s;
}

static int is_live(const uint64_t *live, size_t r) {
    return !live || (live[r / 64] >> (r % 64)) & 1;
}

typedef struct filt {
    const uint64_t *live;
    size_t calls;
    int bad_call; /* called for a dead row */
} filt;

static int accept_not_mult3(void *ctx, uint32_t row) {
    filt *f = ctx;
    f->calls++;
    if (!is_live(f->live, row)) f->bad_call = 1;
    return row % 3 != 0;
}

static int accept_all(void *ctx, uint32_t row) {
    (void)ctx, (void)row;
    return 1;
}

/* Compare flat_search with the reference over the qualifying rows. */
static void check_query(const flat_scan *s, const float *q, size_t k, const char *what) {
    ref_hit *ref = malloc(s->nrows * sizeof *ref);
    topk_hit *out = malloc((k + 1) * sizeof *out);
    T_ASSERT(ref && out);
    size_t nref = 0;
    for (size_t r = 0; r < s->nrows; r++) {
        if (!is_live(s->live, r)) continue;
        if (s->accept == accept_not_mult3 && r % 3 == 0) continue;
        ref[nref].dist = ref_dist(s->metric, q, s->base + r * s->stride, s->dim);
        ref[nref].row = (uint32_t)r;
        nref++;
    }
    qsort(ref, nref, sizeof *ref, ref_cmp);

    size_t want = k < nref ? k : nref;
    size_t got = flat_search(s, q, k, out);
    if (got != want) T_FAIL("%s k=%zu: %zu hits, want %zu", what, k, got, want);
    for (size_t i = 0; i < got; i++) {
        uint32_t row = out[i].row;
        T_ASSERT(row < s->nrows);
        if (!is_live(s->live, row)) T_FAIL("%s: dead row %u returned", what, row);
        if (s->accept == accept_not_mult3 && row % 3 == 0)
            T_FAIL("%s: filtered row %u returned", what, row);
        double exact = ref_dist(s->metric, q, s->base + row * s->stride, s->dim);
        double tol = 1e-4 * (1.0 + fabs(exact));
        if (fabs(out[i].dist - exact) > tol)
            T_FAIL("%s: row %u dist %.9g, exact %.9g", what, row, out[i].dist, exact);
        if (fabs(out[i].dist - ref[i].dist) > tol)
            T_FAIL("%s: hit %zu dist %.9g, reference %.9g", what, i, out[i].dist, ref[i].dist);
        if (i > 0) {
            T_ASSERT(out[i - 1].dist <= out[i].dist);
            if (out[i - 1].dist == out[i].dist) T_ASSERT(out[i - 1].row < out[i].row);
        }
        /* Same row as the reference unless a near-tie (closer than float
         * rounding) makes the order legitimately ambiguous. */
        int near_tie = (i > 0 && ref[i].dist - ref[i - 1].dist < tol) ||
                       (i + 1 < nref && ref[i + 1].dist - ref[i].dist < tol);
        if (!near_tie && row != ref[i].row)
            T_FAIL("%s k=%zu: hit %zu is row %u, reference row %u", what, k, i, row,
                   ref[i].row);
    }
    free(ref);
    free(out);
}

static void fill_data(float *base, size_t n, float *qs, size_t nq, int unit, uint64_t *seed) {
    for (size_t r = 0; r < n; r++) {
        for (size_t j = 0; j < STRIDE; j++) base[r * STRIDE + j] = t_randf(seed);
        if (unit) T_ASSERT_EQ(dist_normalize(base + r * STRIDE, DIM), 0);
    }
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < DIM; j++) qs[i * DIM + j] = t_randf(seed);
        if (unit) T_ASSERT_EQ(dist_normalize(qs + i * DIM, DIM), 0);
    }
}

static void test_search(const dist_kernels *kern) {
    static const flat_metric metrics[] = {FLAT_L2, FLAT_IP, FLAT_COSINE};
    static const char *const mname[] = {"l2", "ip", "cosine"};
    const size_t ks[] = {1, 10, N, N + 5};
    enum { NQ = 4 };
    float *base = malloc((size_t)N * STRIDE * sizeof(float));
    float *qs = malloc(NQ * DIM * sizeof(float));
    uint64_t live[(N + 63) / 64];
    T_ASSERT(base && qs);

    /* live bitmap: random 70%, a dead stretch of whole words, a fully live
     * stretch, dead first and last rows */
    uint64_t seed = 5;
    memset(live, 0, sizeof live);
    for (size_t r = 0; r < N; r++) {
        int on = (t_rand(&seed) % 10) < 7;
        if (r >= 128 && r < 448) on = 0;
        if (r >= 512 && r < 900) on = 1;
        if (r == 0 || r == N - 1) on = 0;
        if (on) live[r / 64] |= 1ull << (r % 64);
    }
    live[N / 64] |= ~0ull << (N % 64); /* garbage bits past nrows must be ignored */

    for (size_t mi = 0; mi < 3; mi++) {
        fill_data(base, N, qs, NQ, metrics[mi] == FLAT_COSINE, &seed);
        for (int variant = 0; variant < 4; variant++) {
            filt f = {0};
            flat_scan s = {
                .kern = kern,
                .metric = metrics[mi],
                .base = base,
                .nrows = N,
                .dim = DIM,
                .stride = STRIDE,
            };
            if (variant & 1) s.live = live;
            if (variant & 2) {
                f.live = s.live;
                s.accept = accept_not_mult3;
                s.accept_ctx = &f;
            }
            char what[96];
            snprintf(what, sizeof what, "%s/%s live=%d filter=%d", kern ? kern->isa : "default",
                     mname[mi], variant & 1, (variant & 2) >> 1);
            for (size_t qi = 0; qi < NQ; qi++)
                for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                    check_query(&s, qs + qi * DIM, ks[ki], what);
            T_ASSERT(!f.bad_call);
            if (variant & 2) T_ASSERT(f.calls > 0);
        }
    }
    /* k = 0, nrows = 0 */
    flat_scan s = {.kern = kern, .base = base, .nrows = N, .dim = DIM, .stride = STRIDE};
    topk_hit one;
    T_ASSERT_EQ(flat_search(&s, qs, 0, &one), 0);
    s.nrows = 0;
    T_ASSERT_EQ(flat_search(&s, qs, 1, &one), 0);
    /* everything dead */
    uint64_t none[(N + 63) / 64] = {0};
    s.nrows = N;
    s.live = none;
    T_ASSERT_EQ(flat_search(&s, qs, 5, &one), 0);
    free(base);
    free(qs);
}

/* Equal distances: the smaller row wins and hits are ordered by row. */
static void test_ties(const dist_kernels *kern) {
    enum { n = 700, dim = 5 };
    float *base = calloc(n * dim, sizeof(float));
    T_ASSERT(base);
    float q[dim] = {1, 2, 3, 4, 5};
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < dim; j++) base[r * dim + j] = (float)(r % 7 == 3 ? 9 : 1);
    /* exact copies of q at scattered rows */
    const uint32_t dup[] = {5, 100, 101, 517, 699};
    for (size_t i = 0; i < 5; i++) memcpy(base + dup[i] * dim, q, sizeof q);
    flat_scan s = {.kern = kern, .metric = FLAT_L2, .base = base, .nrows = n, .dim = dim,
                   .stride = dim, .accept = accept_all};
    topk_hit out[12];
    T_ASSERT_EQ(flat_search(&s, q, 3, out), 3);
    for (size_t i = 0; i < 3; i++) {
        T_ASSERT(out[i].dist == 0.0f);
        T_ASSERT_EQ(out[i].row, dup[i]);
    }
    T_ASSERT_EQ(flat_search(&s, q, 12, out), 12);
    for (size_t i = 0; i < 5; i++) T_ASSERT_EQ(out[i].row, dup[i]);
    /* then the rows equal to all-ones (distance 30), smallest rows first */
    uint32_t expect = 0;
    for (size_t i = 5; i < 12; i++) {
        while (expect % 7 == 3 || expect == 5) expect++;
        T_ASSERT(out[i].dist == 30.0f);
        T_ASSERT_EQ(out[i].row, expect);
        expect++;
    }
    free(base);
}

/* ---------------------------------------------------------------- topk */

static int hit_cmp(const void *pa, const void *pb) {
    const topk_hit *a = pa, *b = pb;
    if (a->dist != b->dist) return a->dist < b->dist ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

static void test_topk(void) {
    topk t;
    topk_hit h[8];

    topk_init(&t, h, 0);
    T_ASSERT(topk_worst(&t) == -INFINITY);
    topk_push(&t, 1.0f, 1);
    T_ASSERT_EQ(topk_sort(&t), 0);

    topk_init(&t, h, 3);
    T_ASSERT(topk_worst(&t) == INFINITY);
    topk_push(&t, 5.0f, 0);
    topk_push(&t, 3.0f, 1);
    T_ASSERT(topk_worst(&t) == INFINITY);
    topk_push(&t, 4.0f, 2);
    T_ASSERT(topk_worst(&t) == 5.0f);
    topk_push(&t, 9.0f, 3); /* worse: dropped */
    T_ASSERT(topk_worst(&t) == 5.0f);
    topk_push(&t, 1.0f, 4);
    T_ASSERT(topk_worst(&t) == 4.0f);
    topk_push(&t, NAN, 5); /* refused */
    T_ASSERT_EQ(topk_sort(&t), 3);
    T_ASSERT(h[0].dist == 1.0f && h[0].row == 4);
    T_ASSERT(h[1].dist == 3.0f && h[1].row == 1);
    T_ASSERT(h[2].dist == 4.0f && h[2].row == 2);

    /* ties: the smaller row wins whatever the arrival order */
    topk_init(&t, h, 2);
    topk_push(&t, 1.0f, 7);
    topk_push(&t, 1.0f, 3);
    topk_push(&t, 1.0f, 5);
    topk_push(&t, 1.0f, 1);
    topk_push(&t, 1.0f, 9);
    T_ASSERT_EQ(topk_sort(&t), 2);
    T_ASSERT_EQ(h[0].row, 1);
    T_ASSERT_EQ(h[1].row, 3);

    /* random pushes with many equal distances against a full sort */
    uint64_t seed = 11;
    enum { M = 2000 };
    topk_hit *all = malloc(M * sizeof *all);
    topk_hit kept[50];
    T_ASSERT(all);
    for (int rep = 0; rep < 20; rep++) {
        size_t k = 1 + t_rand(&seed) % 50;
        for (size_t i = 0; i < M; i++) {
            all[i].dist = (float)(t_rand(&seed) % 40);
            all[i].row = (uint32_t)i;
        }
        for (size_t i = M - 1; i > 0; i--) { /* shuffle the arrival order */
            size_t j = t_rand(&seed) % (i + 1);
            topk_hit x = all[i];
            all[i] = all[j];
            all[j] = x;
        }
        topk_init(&t, kept, k);
        for (size_t i = 0; i < M; i++) topk_push(&t, all[i].dist, all[i].row);
        T_ASSERT_EQ(topk_sort(&t), k);
        qsort(all, M, sizeof *all, hit_cmp);
        for (size_t i = 0; i < k; i++) {
            T_ASSERT(kept[i].dist == all[i].dist);
            T_ASSERT_EQ(kept[i].row, all[i].row);
        }
    }
    free(all);
}

int main(void) {
    test_topk();
    static const char *const isas[] = {"scalar", "avx2", "avx512"};
    test_search(NULL);
    test_ties(NULL);
    for (size_t i = 0; i < 3; i++) {
        const dist_kernels *k = dist_get_isa(isas[i]);
        if (!k) continue;
        test_search(k);
        test_ties(k);
        printf("flat_search with %s: ok\n", isas[i]);
    }
    return 0;
}
