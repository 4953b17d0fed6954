/* SPDX-License-Identifier: MIT */
/*
 * t.h -- the tiny test harness: assertions that print file:line and the values,
 * T_SKIP (exit 77, which ctest reports as skipped), and scratch directories.
 */
#ifndef QUARRY_T_H
#define QUARRY_T_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quarry.h"

#define T_FAIL(...)                                                                 \
    do {                                                                            \
        fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);                       \
        fprintf(stderr, __VA_ARGS__);                                               \
        fprintf(stderr, "\n");                                                      \
        exit(1);                                                                    \
    } while (0)

#define T_ASSERT(c)                                                                 \
    do {                                                                            \
        if (!(c)) T_FAIL("assertion `%s` is false", #c);                            \
    } while (0)

#define T_ASSERT_OK(expr)                                                           \
    do {                                                                            \
        int t_rc_ = (expr);                                                         \
        if (t_rc_ != 0)                                                             \
            T_FAIL("`%s` returned %d (%s): %s", #expr, t_rc_, quarry_errstr(t_rc_), \
                   quarry_errmsg());                                                \
    } while (0)

/* rc comparison on the primary code: T_ASSERT_RC(expr, QUARRY_INVALID) */
#define T_ASSERT_RC(expr, want)                                                     \
    do {                                                                            \
        int t_rc_ = (expr);                                                         \
        if ((t_rc_ & 0xff) != ((want) & 0xff))                                      \
            T_FAIL("`%s` returned %d (%s: %s), want %d (%s)", #expr, t_rc_,         \
                   quarry_errstr(t_rc_), quarry_errmsg(), (int)(want),              \
                   quarry_errstr(want));                                            \
    } while (0)

#define T_ASSERT_EQ(a, b)                                                           \
    do {                                                                            \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                     \
        if (t_a_ != t_b_) T_FAIL("%s == %lld, want %s == %lld", #a, t_a_, #b, t_b_); \
    } while (0)

#define T_ASSERT_STREQ(a, b)                                                        \
    do {                                                                            \
        const char *t_a_ = (a), *t_b_ = (b);                                        \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0)                              \
            T_FAIL("%s == \"%s\", want \"%s\"", #a, t_a_ ? t_a_ : "(null)",         \
                   t_b_ ? t_b_ : "(null)");                                         \
    } while (0)

#define T_SKIP(...)                                                                 \
    do {                                                                            \
        fprintf(stderr, "SKIP: ");                                                  \
        fprintf(stderr, __VA_ARGS__);                                               \
        fprintf(stderr, "\n");                                                      \
        exit(77);                                                                   \
    } while (0)

/* A fresh scratch directory under $TMPDIR (or /tmp); removed by t_rmdir. */
char *t_tmpdir(const char *tag);
/* rm -rf */
void t_rmdir(const char *path);
/* Deterministic PRNG (splitmix64). */
uint64_t t_rand(uint64_t *state);
float t_randf(uint64_t *state); /* uniform [-1, 1) */
/* Path of a shared data set file, or NULL (the caller skips) when absent.
 * Looks in $QUARRY_DATA, then ../shared/data relative to the source tree. */
const char *t_data_path(const char *rel);

#endif
