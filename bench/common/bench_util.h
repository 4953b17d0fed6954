/* SPDX-License-Identifier: MIT */
/*
 * bench_util.h -- the small helpers the benchmark programs share: fatal
 * errors (with the engine's detail text), a monotonic clock, medians, a
 * deterministic PRNG and recursive removal of a scratch directory. Define
 * BENCH_NAME (the program's name, for messages) before including it.
 */
#ifndef QUARRY_BENCH_UTIL_H
#define QUARRY_BENCH_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quarry.h"

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

static inline void die(const char *what, const char *detail) {
    fprintf(stderr, BENCH_NAME ": %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* die() with the engine's last error: "<detail> (<rc text>)". */
static inline void die_rc(const char *what, int rc) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s (%s)", quarry_errmsg(), quarry_errstr(rc));
    die(what, buf);
}

/* A positive whole number from an option value, or die naming the option. */
static inline size_t parse_size(const char *s, const char *name) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0) die("bad number for", name);
    return (size_t)v;
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v; n >= 1). */
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline int bench_rm_entry(const char *path, const struct stat *st, int flag,
                                 struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    if (remove(path) != 0) fprintf(stderr, BENCH_NAME ": remove %s: %s\n", path, strerror(errno));
    return 0;
}

/* rm -rf path */
static inline void rm_rf(const char *path) {
    nftw(path, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
