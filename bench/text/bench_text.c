/* SPDX-License-Identifier: MIT */
/*
 * bench_text.c -- BM25 retrieval quality and latency of the text index
 * (index/text) on a BEIR-layout collection, driven through the index API
 * directly (no engine, no storage).
 *
 *   bench_text DIR [--name NAME] [--k 100] [--k1 1.2] [--b 0.75]
 *              [--language english] [--stopwords default|none|english]
 *              [--mode or|and] [--repeat 5] [--run FILE] [--json]
 *
 * DIR holds corpus.jsonl ({"_id", "title", "text"}; row i indexes
 * title + " " + text of line i), queries.jsonl ({"_id", "text"}) and
 * qrels/test.tsv (a header line, then query-id, corpus-id, score).
 *
 * Restart: the serialised index is read back into a fresh index (every
 * byte validated, hash table and forward index rebuilt): time and memory.
 *
 * Build: every document is added in file order on one thread; build_s is
 * the wall time of the bm25_add calls and the final bm25_shrink (JSON
 * parsing excluded), and the
 * throughput is given in docs/s and MB/s of raw text. Index size: heap bytes
 * (bm25_memory) and the serialised size, next to the raw text size.
 *
 * Search: the judged queries (those in the qrels) run one at a time on one
 * thread, k hits each, in OR mode by default; one untimed warm-up pass, then
 * --repeat timed passes. Latency is per bm25_search call (query analysis
 * included); median and p99 over all timed calls. The same is measured with
 * pruning off (exhaustive scoring) for comparison, and the postings scored
 * by the pruned search are reported against the postings of the query
 * terms (what exhaustive scoring reads).
 *
 * Quality: nDCG@10 as trec_eval computes it (gain = the qrels score, log2
 * discount, ideal ranking from the qrels; scores <= 0 are not relevant) and
 * recall@k (relevant = score > 0), averaged over the judged queries.
 *
 * Codec: all sealed blocks of the index are copied into one buffer and, for
 * comparison, re-encoded as LEB128 varints (row gap, tf) into another; both
 * are decoded to rows and tfs in the same order: bytes and ns per posting.
 *
 * --run FILE writes the ranking as "qid<TAB>doc-id<TAB>rank<TAB>score" lines;
 * --json adds one final line "json {...}" with every figure, for
 * bench/text/run_text.py.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "index/text/text.h"
#include "index/text/text_int.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "bench_text: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

/* ------------------------------------------------------------------ loading */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static void strs_push(strs *s, char *x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) die("%s", "out of memory");
    }
    s->v[s->n++] = x;
}

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* ids[i], texts[i] from a JSON-lines file; title + " " + text when with_title. */
static void load_jsonl(const char *path, int with_title, strs *ids, strs *texts, size_t *bytes) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t err;
        json_t *o = json_loadb(line, (size_t)n, 0, &err);
        if (!o) continue;
        const char *title = with_title ? jstr(o, "title") : "", *text = jstr(o, "text");
        size_t tl = strlen(title), xl = strlen(text);
        char *t = malloc(tl + xl + 2);
        if (!t) die("%s", "out of memory");
        memcpy(t, title, tl);
        size_t o2 = tl;
        if (tl) t[o2++] = ' ';
        memcpy(t + o2, text, xl + 1);
        strs_push(ids, strdup(jstr(o, "_id")));
        strs_push(texts, t);
        if (bytes) *bytes += o2 + xl;
        json_decref(o);
    }
    free(line);
    fclose(f);
}

/* qrels: per query a list of (doc index, score). Lookups by id are linear
 * hashes built here (small collections). */
typedef struct idmap {
    char **keys;
    uint32_t *vals;
    size_t mask;
} idmap;

static uint64_t hs(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static void idmap_build(idmap *m, const strs *ids) {
    size_t cap = 16;
    while (cap < 2 * ids->n) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->mask = cap - 1;
    for (size_t i = 0; i < ids->n; i++) {
        size_t j = hs(ids->v[i]) & m->mask;
        while (m->keys[j] && strcmp(m->keys[j], ids->v[i])) j = (j + 1) & m->mask;
        if (m->keys[j]) continue; /* duplicate id: keep the first */
        m->keys[j] = ids->v[i];
        m->vals[j] = (uint32_t)i;
    }
}

static int64_t idmap_get(const idmap *m, const char *k) {
    for (size_t j = hs(k) & m->mask; m->keys[j]; j = (j + 1) & m->mask)
        if (!strcmp(m->keys[j], k)) return m->vals[j];
    return -1;
}

typedef struct judg {
    uint32_t doc;
    int score;
} judg;

typedef struct qrel {
    judg *v;
    size_t n, cap;
} qrel;

/* ------------------------------------------------------------------ metrics */

static double ndcg10(const topk_hit *h, size_t n, const qrel *q) {
    double dcg = 0, idcg = 0;
    for (size_t i = 0; i < n && i < 10; i++)
        for (size_t j = 0; j < q->n; j++)
            if (q->v[j].doc == h[i].row && q->v[j].score > 0) dcg += q->v[j].score / log2(i + 2.0);
    /* ideal: the qrels scores sorted descending */
    int top[10] = {0};
    for (size_t j = 0; j < q->n; j++) {
        int s = q->v[j].score;
        for (int i = 0; i < 10; i++)
            if (s > top[i]) {
                for (int m = 9; m > i; m--) top[m] = top[m - 1];
                top[i] = s;
                break;
            }
    }
    for (int i = 0; i < 10; i++) idcg += top[i] / log2(i + 2.0);
    return idcg > 0 ? dcg / idcg : 0;
}

static double recall(const topk_hit *h, size_t n, const qrel *q) {
    size_t rel = 0, hit = 0;
    for (size_t j = 0; j < q->n; j++) {
        if (q->v[j].score <= 0) continue;
        rel++;
        for (size_t i = 0; i < n; i++)
            if (h[i].row == q->v[j].doc) {
                hit++;
                break;
            }
    }
    return rel ? (double)hit / (double)rel : 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p) {
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    if (i >= n) i = n - 1;
    return v[i];
}

/* ------------------------------------------------------------------- codec */

/* Both codecs decode the same blocks (rows and tfs, 128 postings each) from
 * one contiguous buffer each, in the same order, so that only the decoding
 * differs. */
static void codec(const bm25 *x, double *packed_bpp, double *varint_bpp, double *packed_ns,
                  double *varint_ns) {
    uint64_t nb = 0, pbytes = 0;
    for (uint32_t t = 0; t < x->nterms; t++) {
        nb += x->terms[t].nblocks;
        for (uint32_t b = 0; b < x->terms[t].nblocks; b++)
            pbytes += bm25_block_bytes(&x->terms[t], b);
    }
    *packed_bpp = *varint_bpp = *packed_ns = *varint_ns = 0;
    if (!nb) return;
    uint8_t *pb = malloc((size_t)pbytes + 16), *vb = malloc((size_t)nb * BM25_BLOCK * 10 + 16);
    uint32_t *base = malloc((size_t)nb * sizeof *base);
    uint32_t rows[BM25_BLOCK], tfs[BM25_BLOCK];
    uint64_t sink = 0;
    size_t po = 0, vo = 0, bi = 0;
    for (uint32_t t = 0; t < x->nterms; t++)
        for (uint32_t b = 0; b < x->terms[t].nblocks; b++, bi++) {
            size_t n = bm25_block_bytes(&x->terms[t], b);
            memcpy(pb + po, x->terms[t].data + x->terms[t].blocks[b].data_off, n);
            po += n;
            bm25_block_decode(&x->terms[t], b, rows, tfs);
            uint32_t prev = b ? x->terms[t].blocks[b - 1].last_row : UINT32_MAX;
            base[bi] = prev;
            for (int i = 0; i < BM25_BLOCK; i++) {
                vo += bm25_varint_put(vb + vo, rows[i] - prev - 1);
                vo += bm25_varint_put(vb + vo, tfs[i] - 1);
                prev = rows[i];
            }
        }
    int reps = 1;
    double t0 = now_s(), el;
    do {
        for (int r = 0; r < reps; r++) {
            const uint8_t *p = pb;
            for (uint64_t b = 0; b < nb; b++) {
                bm25_decode(p, base[b], rows, tfs);
                sink += rows[127] + tfs[5];
                p += 2 + 16 * (p[0] + p[1]);
            }
        }
        el = now_s() - t0;
        if (el < 0.05) reps *= 2, t0 = now_s();
    } while (el < 0.05);
    *packed_ns = el * 1e9 / ((double)reps * (double)nb * BM25_BLOCK);
    reps = 1;
    t0 = now_s();
    do {
        for (int r = 0; r < reps; r++) {
            const uint8_t *p = vb;
            for (uint64_t b = 0; b < nb; b++) {
                uint32_t prev = base[b];
                for (int i = 0; i < BM25_BLOCK; i++) {
                    uint32_t d, f;
                    p = bm25_varint_fast(p, &d);
                    p = bm25_varint_fast(p, &f);
                    prev = prev + d + 1;
                    rows[i] = prev;
                    tfs[i] = f + 1;
                }
                sink += rows[127] + tfs[5];
            }
        }
        el = now_s() - t0;
        if (el < 0.05) reps *= 2, t0 = now_s();
    } while (el < 0.05);
    *varint_ns = el * 1e9 / ((double)reps * (double)nb * BM25_BLOCK);
    *packed_bpp = (double)pbytes / ((double)nb * BM25_BLOCK);
    *varint_bpp = (double)vo / ((double)nb * BM25_BLOCK);
    if (sink == 42) fprintf(stderr, " ");
    free(pb);
    free(vb);
    free(base);
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    const char *dir = NULL, *name = NULL, *runpath = NULL, *lang = "english", *stop = "default";
    size_t k = 100;
    int repeat = 5, json = 0, mode = BM25_OR;
    double k1 = 1.2, b = 0.75;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            json = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            if (!v) die("%s needs a value", a);
            i++;
            if (!strcmp(a, "--name"))
                name = v;
            else if (!strcmp(a, "--k"))
                k = (size_t)atol(v);
            else if (!strcmp(a, "--k1"))
                k1 = atof(v);
            else if (!strcmp(a, "--b"))
                b = atof(v);
            else if (!strcmp(a, "--language"))
                lang = v;
            else if (!strcmp(a, "--stopwords"))
                stop = v;
            else if (!strcmp(a, "--repeat"))
                repeat = atoi(v);
            else if (!strcmp(a, "--run"))
                runpath = v;
            else if (!strcmp(a, "--mode"))
                mode = !strcmp(v, "and") ? BM25_AND : BM25_OR;
            else
                die("unknown option %s", a);
        } else {
            dir = a;
        }
    }
    if (!dir || k == 0 || repeat < 1)
        die("%s", "usage: bench_text DIR [--name N] [--k 100] [--k1 1.2] [--b 0.75] "
                  "[--language english] [--stopwords default|none|english] [--mode or|and] "
                  "[--repeat 5] [--run FILE] [--json]");
    if (!name) {
        name = strrchr(dir, '/');
        name = name && name[1] ? name + 1 : dir;
    }
    char path[4096];
    strs dids = {0}, dtext = {0}, qids = {0}, qtext = {0};
    size_t raw = 0;
    snprintf(path, sizeof path, "%s/corpus.jsonl", dir);
    load_jsonl(path, 1, &dids, &dtext, &raw);
    snprintf(path, sizeof path, "%s/queries.jsonl", dir);
    load_jsonl(path, 0, &qids, &qtext, NULL);
    if (!dids.n || !qids.n) die("no documents or queries in %s", dir);
    idmap dmap, qmap;
    idmap_build(&dmap, &dids);
    idmap_build(&qmap, &qids);
    qrel *qr = calloc(qids.n, sizeof *qr);
    snprintf(path, sizeof path, "%s/qrels/test.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    char line[1024], qid[512], did[512];
    int score, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        if (lineno++ == 0) continue; /* header */
        if (sscanf(line, "%511s %511s %d", qid, did, &score) != 3) continue;
        int64_t qi = idmap_get(&qmap, qid), di = idmap_get(&dmap, did);
        if (qi < 0 || di < 0) continue;
        qrel *q = &qr[qi];
        if (q->n == q->cap) {
            q->cap = q->cap ? 2 * q->cap : 8;
            q->v = realloc(q->v, q->cap * sizeof *q->v);
        }
        q->v[q->n++] = (judg){(uint32_t)di, score};
    }
    fclose(f);
    uint32_t *judged = malloc(qids.n * sizeof *judged);
    size_t nj = 0;
    for (size_t i = 0; i < qids.n; i++)
        if (qr[i].n) judged[nj++] = (uint32_t)i;
    if (!nj) die("no judged queries in %s", dir);

    /* build */
    bm25_config cfg;
    bm25_config_default(&cfg);
    cfg.k1 = (float)k1;
    cfg.b = (float)b;
    cfg.analyzer.language = lang;
    cfg.analyzer.stopwords = !strcmp(stop, "none")      ? TEXT_STOP_NONE
                             : !strcmp(stop, "english") ? TEXT_STOP_ENGLISH
                                                        : TEXT_STOP_DEFAULT;
    bm25 *x;
    if (bm25_new(&cfg, &x)) die("bm25_new: %s", quarry_errmsg());
    double t0 = now_s();
    for (size_t i = 0; i < dtext.n; i++)
        if (bm25_add(x, (uint32_t)i, dtext.v[i], strlen(dtext.v[i])))
            die("bm25_add: %s", quarry_errmsg());
    bm25_shrink(x);
    double build_s = now_s() - t0;
    uint8_t *ser;
    size_t ser_len;
    if (bm25_serialize(x, &ser, &ser_len)) die("serialize: %s", quarry_errmsg());
    /* restart: load the serialised index into a fresh one */
    bm25 *y;
    if (bm25_new(&cfg, &y)) die("bm25_new: %s", quarry_errmsg());
    t0 = now_s();
    if (bm25_deserialize(y, ser, ser_len)) die("deserialize: %s", quarry_errmsg());
    double load_s = now_s() - t0;
    size_t load_mem = bm25_memory(y);
    bm25_free(y);
    free(ser);
    size_t mem = bm25_memory(x);
    bm25_info info;
    bm25_get_info(x, &info);

    /* search */
    topk_hit *hits = malloc(nj * k * sizeof *hits);
    size_t *nh = malloc(nj * sizeof *nh);
    double *lat = malloc(nj * (size_t)repeat * sizeof *lat);
    double *lat_ex = malloc(nj * (size_t)repeat * sizeof *lat_ex);
    uint64_t scored = 0, total = 0, dec = 0, blocks = 0;
    topk_hit *tmp = malloc(k * sizeof *tmp);
    for (int pass = 0; pass <= repeat; pass++)
        for (size_t j = 0; j < nj; j++) {
            const char *q = qtext.v[judged[j]];
            bm25_search_stats st;
            bm25_search_params p = {.k = k, .mode = mode, .stats = &st};
            double a = now_s();
            if (bm25_search(x, q, strlen(q), &p, hits + j * k, &nh[j]))
                die("search: %s", quarry_errmsg());
            double e = now_s() - a;
            p.exhaustive = 1;
            p.stats = NULL;
            size_t ne;
            a = now_s();
            if (bm25_search(x, q, strlen(q), &p, tmp, &ne)) die("search: %s", quarry_errmsg());
            double e2 = now_s() - a;
            if (pass == 0) {
                scored += st.postings_scored;
                total += st.postings_total;
                dec += st.blocks_decoded;
                blocks += st.blocks_total;
                if (ne != nh[j] || memcmp(tmp, hits + j * k, ne * sizeof *tmp))
                    die("%s", "pruned and exhaustive results differ");
                continue;
            }
            lat[(size_t)(pass - 1) * nj + j] = e;
            lat_ex[(size_t)(pass - 1) * nj + j] = e2;
        }
    double nd = 0, rc = 0;
    for (size_t j = 0; j < nj; j++) {
        nd += ndcg10(hits + j * k, nh[j], &qr[judged[j]]);
        rc += recall(hits + j * k, nh[j], &qr[judged[j]]);
    }
    nd /= (double)nj;
    rc /= (double)nj;
    size_t nl = nj * (size_t)repeat;
    double med = pct(lat, nl, 0.5) * 1e6, p99 = pct(lat, nl, 0.99) * 1e6;
    double med_ex = pct(lat_ex, nl, 0.5) * 1e6, p99_ex = pct(lat_ex, nl, 0.99) * 1e6;
    double pbpp, vbpp, pns, vns;
    codec(x, &pbpp, &vbpp, &pns, &vns);

    if (runpath) {
        FILE *rf = fopen(runpath, "w");
        if (!rf) die("cannot write %s", runpath);
        for (size_t j = 0; j < nj; j++)
            for (size_t i = 0; i < nh[j]; i++)
                fprintf(rf, "%s\t%s\t%zu\t%.6f\n", qids.v[judged[j]], dids.v[hits[j * k + i].row],
                        i + 1, -(double)hits[j * k + i].dist);
        fclose(rf);
    }

    printf("dataset            %s (%zu docs, %.1f MB of text, %zu judged queries)\n", name, dids.n,
           (double)raw / 1e6, nj);
    printf("analyzer           %s, stop words %s; k1 %.2f b %.2f; mode %s; k %zu\n",
           text_analyzer_language(bm25_analyzer(x)), stop, k1, b, mode ? "and" : "or", k);
    printf("nDCG@10            %.4f\n", nd);
    printf("recall@%-3zu         %.4f\n", k, rc);
    printf("latency (pruned)   median %.1f us, p99 %.1f us\n", med, p99);
    printf("latency (no prune) median %.1f us, p99 %.1f us\n", med_ex, p99_ex);
    printf("postings scored    %llu of %llu (%.1f%%); blocks decoded %llu of %llu\n",
           (unsigned long long)scored, (unsigned long long)total,
           100.0 * (double)scored / (double)(total ? total : 1), (unsigned long long)dec,
           (unsigned long long)blocks);
    printf("build              %.3f s (%.0f docs/s, %.1f MB/s)\n", build_s,
           (double)dids.n / build_s, (double)raw / 1e6 / build_s);
    printf("index              %zu bytes in memory, %zu serialised (%.2fx / %.2fx the text); "
           "%llu terms, %llu postings\n",
           mem, ser_len, (double)mem / (double)raw, (double)ser_len / (double)raw,
           (unsigned long long)info.terms, (unsigned long long)info.postings);
    printf("restart            deserialise in %.3f s (%.0f MB/s), %zu bytes in memory after\n",
           load_s, (double)ser_len / 1e6 / load_s, load_mem);
    printf("codec              bit-packed %.2f B/posting %.2f ns/posting; varint %.2f B/posting "
           "%.2f ns/posting\n",
           pbpp, pns, vbpp, vns);
    if (json)
        printf("json {\"dataset\": \"%s\", \"docs\": %zu, \"queries\": %zu, \"ndcg10\": %.6f, "
               "\"recall\": %.6f, \"lat_median_us\": %.3f, \"lat_p99_us\": %.3f, "
               "\"lat_exh_median_us\": %.3f, \"lat_exh_p99_us\": %.3f, \"postings_scored\": %llu, "
               "\"postings_total\": %llu, \"build_s\": %.6f, \"mem_bytes\": %zu, "
               "\"ser_bytes\": %zu, \"raw_bytes\": %zu, \"load_s\": %.6f}\n",
               name, dids.n, nj, nd, rc, med, p99, med_ex, p99_ex, (unsigned long long)scored,
               (unsigned long long)total, build_s, mem, ser_len, raw, load_s);
    bm25_free(x);
    strs *all[4] = {&dids, &dtext, &qids, &qtext};
    for (int i = 0; i < 4; i++) {
        for (size_t j = 0; j < all[i]->n; j++) free(all[i]->v[j]);
        free(all[i]->v);
    }
    for (size_t i = 0; i < qids.n; i++) free(qr[i].v);
    free(qr);
    free(dmap.keys);
    free(dmap.vals);
    free(qmap.keys);
    free(qmap.vals);
    free(judged);
    free(hits);
    free(nh);
    free(lat);
    free(lat_ex);
    free(tmp);
    return 0;
}
