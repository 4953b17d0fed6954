/* SPDX-License-Identifier: MIT */
/*
 * bench_flat.c -- single-query latency of the exact flat scan.
 *
 *   bench_flat --base FILE --queries FILE [--gt FILE.ivecs] [--k 10]
 *              [--repeat 5] [--nq N] [--isa scalar|avx2|avx512] [--hugepages]
 *
 * Inputs are TEXMEX .fvecs or uncompressed IDX image files (.idx3-ubyte, uint8
 * pixels become floats); gzip is not read here -- run_flat_vs_faiss.py
 * converts Fashion-MNIST's .gz files to .fvecs first. The vectors are copied
 * into one 64-byte-aligned block, rows back to back (stride = dim), the same
 * layout FAISS IndexFlat uses, and searched with flat_search (squared L2),
 * one query per call, on the calling thread only.
 *
 * Each repeat times one pass over all queries after an untimed warm-up pass;
 * the reported figure is the median over repeats of (pass time / queries).
 * With --gt, recall@k is checked against the ground truth; a returned row
 * whose exact distance equals that of the k-th ground-truth row counts as a
 * hit, so that equal-distance ties ordered differently are not misses. An
 * exact scan must reach 1.0. The last line of output is machine-readable
 * (key=value) for the runner script.
 *
 * --hugepages asks the kernel for transparent huge pages on the base block
 * (madvise), which reduces TLB misses when the set is much larger than the
 * caches. It is off by default so that the comparison with FAISS, whose
 * arrays are ordinary heap memory, is like for like.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "index/flat/flat.h"

typedef struct vecs {
    float *v;
    size_t n, dim;
} vecs;

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "bench_flat: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    if (fseek(f, 0, SEEK_END) != 0) die("cannot seek %s", path);
    long sz = ftell(f);
    if (sz < 0) die("cannot size %s", path);
    rewind(f);
    unsigned char *buf = malloc((size_t)sz + 1);
    if (!buf) die("out of memory reading %s", path);
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) die("short read on %s", path);
    fclose(f);
    *len = (size_t)sz;
    return buf;
}

static float *alloc_floats(size_t count, int huge) {
    size_t bytes = count * sizeof(float);
    size_t align = huge ? (size_t)2 << 20 : 64;
    bytes = (bytes + align - 1) / align * align;
    float *p = aligned_alloc(align, bytes ? bytes : align);
    if (!p) die("out of memory (%s)", "vectors");
    if (huge) (void)madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* .fvecs (float records) or .ivecs (int records, returned as raw int32 bits). */
static vecs read_vecs(const char *path, int huge) {
    vecs out = {0};
    if (ends_with(path, ".gz")) die("%s: gzip input is not read here; decompress it first", path);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    if (len >= 16 && be32(buf) == 2051) { /* IDX images: magic, count, rows, cols */
        out.n = be32(buf + 4);
        out.dim = (size_t)be32(buf + 8) * be32(buf + 12);
        if (len < 16 + out.n * out.dim) die("%s: truncated IDX file", path);
        out.v = alloc_floats(out.n * out.dim, huge);
        for (size_t i = 0; i < out.n * out.dim; i++) out.v[i] = (float)buf[16 + i];
        free(buf);
        return out;
    }
    int32_t d;
    if (len < 4) die("%s: empty file", path);
    memcpy(&d, buf, 4);
    if (d <= 0 || d > 1 << 20) die("%s: not a .fvecs/.ivecs/IDX file", path);
    out.dim = (size_t)d;
    size_t rec = 4 * (out.dim + 1);
    if (len % rec) die("%s: size is not a multiple of the record size", path);
    out.n = len / rec;
    out.v = alloc_floats(out.n * out.dim, huge);
    for (size_t i = 0; i < out.n; i++)
        memcpy(out.v + i * out.dim, buf + i * rec + 4, out.dim * sizeof(float));
    free(buf);
    return out;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double exact_l2(const float *a, const float *b, size_t dim) {
    double s = 0;
    for (size_t i = 0; i < dim; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return s;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_flat --base FILE --queries FILE [--gt FILE.ivecs] [--k 10]\n"
                    "                  [--repeat 5] [--nq N] [--isa NAME] [--hugepages]\n"
                    "FILE: .fvecs or uncompressed IDX (.idx3-ubyte)\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *base_path = NULL, *query_path = NULL, *gt_path = NULL, *isa = NULL;
    size_t k = 10, repeat = 5, nq_max = 0;
    int huge = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--hugepages")) { huge = 1; continue; }
        if (!v) usage();
        if (!strcmp(a, "--base")) base_path = v;
        else if (!strcmp(a, "--queries")) query_path = v;
        else if (!strcmp(a, "--gt")) gt_path = v;
        else if (!strcmp(a, "--isa")) isa = v;
        else if (!strcmp(a, "--k")) k = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--repeat")) repeat = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--nq")) nq_max = strtoul(v, NULL, 10);
        else usage();
        i++;
    }
    if (!base_path || !query_path || k == 0 || repeat == 0) usage();

    const dist_kernels *kern = dist_get();
    if (isa && !(kern = dist_get_isa(isa))) die("ISA %s is not available here", isa);

    vecs base = read_vecs(base_path, huge);
    vecs qs = read_vecs(query_path, 0);
    if (qs.dim != base.dim) die("%s: dimension differs from the base", query_path);
    size_t nq = nq_max && nq_max < qs.n ? nq_max : qs.n;
    if (nq == 0) die("%s: no queries", query_path);

    flat_scan s = {
        .kern = kern,
        .metric = FLAT_L2,
        .base = base.v,
        .nrows = base.n,
        .dim = base.dim,
        .stride = base.dim,
    };
    topk_hit *hits = malloc(nq * k * sizeof *hits);
    double *per_q = malloc(repeat * sizeof *per_q);
    if (!hits || !per_q) die("out of memory (%s)", "results");

    for (size_t i = 0; i < nq; i++) /* warm-up, untimed */
        flat_search(&s, qs.v + i * qs.dim, k, hits + i * k);
    for (size_t r = 0; r < repeat; r++) {
        double t0 = now_s();
        for (size_t i = 0; i < nq; i++) flat_search(&s, qs.v + i * qs.dim, k, hits + i * k);
        per_q[r] = (now_s() - t0) / (double)nq * 1e6;
    }
    double min_us = per_q[0];
    for (size_t r = 1; r < repeat; r++) min_us = per_q[r] < min_us ? per_q[r] : min_us;
    qsort(per_q, repeat, sizeof *per_q, cmp_double);
    double median_us = repeat % 2 ? per_q[repeat / 2]
                                  : 0.5 * (per_q[repeat / 2 - 1] + per_q[repeat / 2]);

    double recall = -1;
    if (gt_path) {
        vecs gt = read_vecs(gt_path, 0);
        if (gt.n < nq || gt.dim < k) die("%s: fewer ground-truth rows or columns than needed",
                                         gt_path);
        size_t found = 0;
        for (size_t i = 0; i < nq; i++) {
            const int32_t *g = (const int32_t *)(const void *)(gt.v + i * gt.dim);
            const float *q = qs.v + i * qs.dim;
            double kth = exact_l2(q, base.v + (size_t)g[k - 1] * base.dim, base.dim);
            for (size_t j = 0; j < k; j++) {
                uint32_t row = hits[i * k + j].row;
                int hit = 0;
                for (size_t m = 0; m < k && !hit; m++) hit = (uint32_t)g[m] == row;
                if (!hit) hit = exact_l2(q, base.v + (size_t)row * base.dim, base.dim) <= kth;
                found += (size_t)hit;
            }
        }
        recall = (double)found / (double)(nq * k);
        free(gt.v);
    }

    printf("base %s: %zu x %zu, %zu queries, k=%zu, isa=%s%s\n", base_path, base.n, base.dim,
           nq, k, kern->isa, huge ? ", huge pages" : "");
    printf("per-query latency: median %.2f us, min %.2f us over %zu repeats\n", median_us,
           min_us, repeat);
    if (recall >= 0) printf("recall@%zu vs ground truth: %.4f\n", k, recall);
    printf("RESULT n=%zu dim=%zu nq=%zu k=%zu isa=%s repeat=%zu median_us=%.3f min_us=%.3f "
           "recall=%.4f\n",
           base.n, base.dim, nq, k, kern->isa, repeat, median_us, min_us, recall);
    free(hits);
    free(per_q);
    free(base.v);
    free(qs.v);
    return recall >= 0 && recall < 1.0 ? 1 : 0;
}
