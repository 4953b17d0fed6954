/* SPDX-License-Identifier: MIT */
/*
 * test_text_prune.c -- dynamic pruning actually prunes, and concurrent
 * searches are safe.
 *
 * A skewed corpus (Zipf-like word frequencies: a few words in most rows, a
 * long tail of rare ones) of 40 000 rows; queries mix frequent and rarer
 * terms, k = 10. Block-max MaxScore (OR) and the block-max conjunction (AND)
 * must return exactly what exhaustive scoring returns while scoring a small
 * fraction of the postings (asserted: under a third on average, and fewer
 * blocks decoded than exist). Then four threads run the same queries at
 * once, with and without a filter, and must reproduce the serial results
 * bit for bit (each thread borrows its own stemmer; there is no shared
 * mutable state).
 */
#include "t.h"

#include <pthread.h>

#include "index/text/text.h"

#define NROWS 40000
#define NQ    60
#define K     10

static char qtext[NQ][128];
static topk_hit expect[2][2][NQ][K];
static size_t expect_n[2][2][NQ];

static const char *word(uint32_t id) {
    static char w[4096][8];
    if (!w[id][0]) {
        /* id < 4096: at most three letters */
        char *p = w[id];
        *p++ = 'q';
        *p++ = (char)('a' + id % 26);
        if (id >= 26) *p++ = (char)('a' + (id / 26) % 26);
        if (id >= 676) *p++ = (char)('a' + id / 676);
        *p = 0;
    }
    return w[id];
}

static uint32_t skewed(uint64_t *s) {
    double u = (double)(t_rand(s) >> 11) / 9007199254740992.0;
    return (uint32_t)(4000 * u * u * u * u);
}

static int third(void *ctx, uint32_t row) { return row % 3 == 0; }

static void run(const bm25 *x, int q, int mode, int filt, topk_hit *out, size_t *n,
                bm25_search_stats *st, int exhaustive) {
    bm25_search_params p = {
        .k = K, .mode = mode, .accept = filt ? third : NULL, .exhaustive = exhaustive, .stats = st};
    T_ASSERT_OK(bm25_search(x, qtext[q], strlen(qtext[q]), &p, out, n));
}

typedef struct job {
    const bm25 *x;
    int ok;
} job;

static void *worker(void *arg) {
    job *j = arg;
    j->ok = 1;
    for (int rep = 0; rep < 3; rep++)
        for (int q = 0; q < NQ; q++)
            for (int mode = 0; mode < 2; mode++)
                for (int f = 0; f < 2; f++) {
                    topk_hit out[K];
                    size_t n;
                    bm25_search_params p = {.k = K, .mode = mode, .accept = f ? third : NULL};
                    if (bm25_search(j->x, qtext[q], strlen(qtext[q]), &p, out, &n) ||
                        n != expect_n[mode][f][q] ||
                        memcmp(out, expect[mode][f][q], n * sizeof *out))
                        j->ok = 0;
                }
    return NULL;
}

int main(void) {
    bm25_config cfg;
    bm25_config_default(&cfg); /* English analyzer: the workers' stemmers are exercised */
    bm25 *x;
    T_ASSERT_OK(bm25_new(&cfg, &x));
    uint64_t s = 2024;
    char *buf = malloc(4096);
    for (uint32_t r = 0; r < NROWS; r++) {
        uint32_t n = 5 + (uint32_t)(t_rand(&s) % 60);
        size_t o = 0;
        for (uint32_t i = 0; i < n; i++) o += (size_t)sprintf(buf + o, "%s ", word(skewed(&s)));
        bm25_doc *d;
        T_ASSERT_OK(bm25_prepare(x, buf, o, &d));
        T_ASSERT_OK(bm25_add_prepared(x, r, d));
        bm25_doc_free(d);
    }
    for (int q = 0; q < NQ; q++) {
        /* two or three frequent words and one from the middle of the range */
        uint32_t a = (uint32_t)(t_rand(&s) % 8), b = (uint32_t)(t_rand(&s) % 30);
        uint32_t c = 30 + (uint32_t)(t_rand(&s) % 300);
        if (q % 2)
            snprintf(qtext[q], sizeof qtext[q], "%s %s %s", word(a), word(b), word(c));
        else
            snprintf(qtext[q], sizeof qtext[q], "%s %s", word(b), word(c));
    }
    uint64_t scored[2] = {0}, total[2] = {0}, dec[2] = {0}, blocks[2] = {0};
    for (int q = 0; q < NQ; q++)
        for (int mode = 0; mode < 2; mode++)
            for (int f = 0; f < 2; f++) {
                topk_hit ex[K];
                size_t nex;
                bm25_search_stats st;
                run(x, q, mode, f, expect[mode][f][q], &expect_n[mode][f][q], &st, 0);
                run(x, q, mode, f, ex, &nex, NULL, 1);
                T_ASSERT_EQ(expect_n[mode][f][q], nex);
                T_ASSERT_EQ(nex, K);
                T_ASSERT(memcmp(ex, expect[mode][f][q], nex * sizeof *ex) == 0);
                if (!f) {
                    scored[mode] += st.postings_scored;
                    total[mode] += st.postings_total;
                    dec[mode] += st.blocks_decoded;
                    blocks[mode] += st.blocks_total;
                }
            }
    for (int mode = 0; mode < 2; mode++) {
        double frac = (double)scored[mode] / (double)total[mode];
        printf("%s: scored %.1f%% of %llu postings, decoded %.1f%% of %llu blocks\n",
               mode ? "AND" : "OR", 100 * frac, (unsigned long long)total[mode],
               100.0 * (double)dec[mode] / (double)blocks[mode], (unsigned long long)blocks[mode]);
        T_ASSERT(frac < 0.33);
        T_ASSERT(dec[mode] < blocks[mode]);
    }

    pthread_t th[4];
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){x, 0};
        T_ASSERT(pthread_create(&th[i], NULL, worker, &jobs[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        T_ASSERT(jobs[i].ok);
    }
    char msg[256];
    if (bm25_check(x, msg, sizeof msg)) T_FAIL("bm25_check: %s", msg);
    bm25_free(x);
    free(buf);
    return 0;
}
