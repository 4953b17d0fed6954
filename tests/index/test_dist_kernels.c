/* SPDX-License-Identifier: MIT */
/*
 * test_dist_kernels.c -- every distance kernel this CPU can run, against the
 * scalar reference and a double-precision reference.
 *
 * Covers: dims around every vector width and tail length (0 .. 1536),
 * unaligned inputs (pointers offset by one float), batch forms against pair
 * forms with stride > dim and row counts that are not a multiple of four, no
 * write past out[n), exact known answers, dist_normalize, and the QUARRY_SIMD
 * override (checked in forked children, before this process picks a table).
 */
#include "t.h"

#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "index/vec/distance.h"

static const size_t dims[] = {0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 128, 784, 1536};
#define NDIMS (sizeof dims / sizeof dims[0])

static const char *const isas[] = {"scalar", "avx2", "avx512"};
#define NISAS (sizeof isas / sizeof isas[0])

static double ref_l2(const float *a, const float *b, size_t dim, double *scale) {
    double s = 0.0;
    for (size_t i = 0; i < dim; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    *scale = s;
    return s;
}

static double ref_ip(const float *a, const float *b, size_t dim, double *scale) {
    double s = 0.0, m = 0.0;
    for (size_t i = 0; i < dim; i++) {
        s += (double)a[i] * (double)b[i];
        m += fabs((double)a[i] * (double)b[i]);
    }
    *scale = m; /* the error bound scales with sum |a_i b_i|, not |sum| */
    return s;
}

static void check_close(const char *what, const char *isa, size_t dim, double got, double want,
                        double scale) {
    double tol = 1e-4 * scale + 1e-6;
    if (!(fabs(got - want) <= tol))
        T_FAIL("%s[%s] dim=%zu: got %.9g, want %.9g (tol %.3g)", what, isa, dim, got, want, tol);
}

static void fill(float *v, size_t n, uint64_t *seed, float scale) {
    for (size_t i = 0; i < n; i++) v[i] = t_randf(seed) * scale;
}

/* Pair kernels on unaligned vectors against double and scalar. */
static void test_pair(const dist_kernels *k) {
    uint64_t seed = 42;
    for (size_t di = 0; di < NDIMS; di++) {
        size_t dim = dims[di];
        for (int rep = 0; rep < 4; rep++) {
            float scale = rep == 3 ? 255.0f : 1.0f; /* SIFT-like magnitudes too */
            float *abuf = malloc((dim + 1) * sizeof(float));
            float *bbuf = malloc((dim + 1) * sizeof(float));
            T_ASSERT(abuf && bbuf);
            float *a = abuf + 1, *b = bbuf + 1; /* deliberately not 16/32/64-aligned */
            fill(a, dim, &seed, scale);
            fill(b, dim, &seed, scale);
            double sc;
            double want = ref_l2(a, b, dim, &sc);
            check_close("l2", k->isa, dim, k->l2(a, b, dim), want, sc);
            check_close("l2 vs scalar", k->isa, dim, k->l2(a, b, dim),
                        dist_l2_f32_scalar(a, b, dim), sc);
            want = ref_ip(a, b, dim, &sc);
            check_close("ip", k->isa, dim, k->ip(a, b, dim), want, sc);
            check_close("ip vs scalar", k->isa, dim, k->ip(a, b, dim),
                        dist_ip_f32_scalar(a, b, dim), sc);
            /* symmetric */
            check_close("l2 sym", k->isa, dim, k->l2(b, a, dim), k->l2(a, b, dim), sc + 1e-6);
            if (dim == 0) {
                T_ASSERT(k->l2(a, b, 0) == 0.0f);
                T_ASSERT(k->ip(a, b, 0) == 0.0f);
            }
            /* identical vectors: l2 is exactly 0 in any summation order */
            T_ASSERT(k->l2(a, a, dim) == 0.0f);
            free(abuf);
            free(bbuf);
        }
    }
}

/* Batch kernels against the pair kernels: stride > dim, odd row counts. */
static void test_batch(const dist_kernels *k) {
    uint64_t seed = 7;
    static const size_t ns[] = {0, 1, 3, 4, 5, 13, 64, 67};
    for (size_t di = 0; di < NDIMS; di++) {
        size_t dim = dims[di];
        for (size_t pad = 0; pad <= 5; pad += 5) {
            size_t stride = dim + pad;
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                size_t n = ns[ni];
                float *bbuf = malloc((n * stride + 1) * sizeof(float));
                float *qbuf = malloc((dim + 1) * sizeof(float));
                float *out = malloc((n + 1) * sizeof(float));
                T_ASSERT(bbuf && qbuf && out);
                float *base = bbuf + 1, *q = qbuf + 1;
                fill(base, n * stride, &seed, 1.0f);
                fill(q, dim, &seed, 1.0f);
                for (int m = 0; m < 2; m++) {
                    dist_batch_fn bf = m ? k->ip_batch : k->l2_batch;
                    dist_pair_fn pf = m ? k->ip : k->l2;
                    out[n] = 12345.0f;
                    bf(q, base, n, dim, stride, out);
                    T_ASSERT(out[n] == 12345.0f); /* no write past out[n) */
                    for (size_t i = 0; i < n; i++) {
                        const float *row = base + i * stride;
                        double sc;
                        double want = m ? ref_ip(q, row, dim, &sc) : ref_l2(q, row, dim, &sc);
                        check_close(m ? "ip_batch" : "l2_batch", k->isa, dim, out[i], want, sc);
                        check_close(m ? "ip_batch vs pair" : "l2_batch vs pair", k->isa, dim,
                                    out[i], pf(q, row, dim), sc);
                    }
                }
                free(bbuf);
                free(qbuf);
                free(out);
            }
        }
    }
}

/* Integer-valued inputs: every partial sum is exact, so every ISA and every
 * summation order must give the exact answer. */
static void test_known(const dist_kernels *k) {
    const float a[3] = {1, 2, 3}, b[3] = {4, 6, 8};
    T_ASSERT(k->l2(a, b, 3) == 50.0f);
    T_ASSERT(k->ip(a, b, 3) == 40.0f);
    T_ASSERT(k->l2(a, b, 1) == 9.0f);
    for (size_t di = 0; di < NDIMS; di++) {
        size_t dim = dims[di];
        float *x = malloc((dim + 1) * sizeof(float)), *y = malloc((dim + 1) * sizeof(float));
        T_ASSERT(x && y);
        double l2 = 0, ip = 0;
        for (size_t i = 0; i < dim; i++) {
            x[i] = (float)((int)(i % 11) - 5);
            y[i] = (float)((int)(i % 7) - 3);
            l2 += (double)(x[i] - y[i]) * (x[i] - y[i]);
            ip += (double)x[i] * y[i];
        }
        T_ASSERT(k->l2(x, y, dim) == (float)l2);
        T_ASSERT(k->ip(x, y, dim) == (float)ip);
        /* five copies of y, stride dim + 1 */
        float *rows = malloc((5 * (dim + 1) + 1) * sizeof(float));
        T_ASSERT(rows);
        for (size_t r = 0; r < 5; r++) memcpy(rows + r * (dim + 1), y, dim * sizeof(float));
        float out[5];
        k->l2_batch(x, rows, 5, dim, dim + 1, out);
        for (size_t r = 0; r < 5; r++) T_ASSERT(out[r] == (float)l2);
        k->ip_batch(x, rows, 5, dim, dim + 1, out);
        for (size_t r = 0; r < 5; r++) T_ASSERT(out[r] == (float)ip);
        free(rows);
        free(x);
        free(y);
    }
}

static void test_normalize(void) {
    uint64_t seed = 99;
    for (size_t di = 1; di < NDIMS; di++) {
        size_t dim = dims[di];
        float *v = malloc(dim * sizeof(float));
        T_ASSERT(v);
        fill(v, dim, &seed, 1000.0f);
        v[0] = 1.0f; /* never all zero */
        T_ASSERT_EQ(dist_normalize(v, dim), 0);
        double s = 0;
        for (size_t i = 0; i < dim; i++) s += (double)v[i] * v[i];
        if (fabs(s - 1.0) > 1e-5) T_FAIL("dim=%zu: norm^2 after normalize = %.9g", dim, s);
        memset(v, 0, dim * sizeof(float));
        T_ASSERT_EQ(dist_normalize(v, dim), -1);
        for (size_t i = 0; i < dim; i++) T_ASSERT(v[i] == 0.0f); /* unchanged */
        free(v);
    }
    float one = -3.0f;
    T_ASSERT_EQ(dist_normalize(&one, 1), 0);
    T_ASSERT(one == -1.0f);
    T_ASSERT_EQ(dist_normalize(NULL, 0), -1);
    /* huge components: the norm must not overflow */
    float big[2] = {3e37f, 4e37f}; /* squares overflow float, not double */
    T_ASSERT_EQ(dist_normalize(big, 2), 0);
    T_ASSERT(fabsf(big[0] - 0.6f) < 1e-6f && fabsf(big[1] - 0.8f) < 1e-6f);
}

/* Child process: force QUARRY_SIMD=want before the first dist_get(), expect
 * the table named `expect`. */
static int child_forced(const char *want, const char *expect) {
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        setenv("QUARRY_SIMD", want, 1);
        const dist_kernels *k = dist_get();
        _exit(k && strcmp(k->isa, expect) == 0 ? 0 : 1);
    }
    int st = 0;
    T_ASSERT(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static const dist_kernels *best_isa(void) {
    for (size_t i = NISAS; i-- > 0;) {
        const dist_kernels *k = dist_get_isa(isas[i]);
        if (k) return k;
    }
    return NULL;
}

static void test_env_forcing(void) {
    const dist_kernels *best = best_isa();
    T_ASSERT(best != NULL);
    for (size_t i = 0; i < NISAS; i++) {
        const char *expect = dist_get_isa(isas[i]) ? isas[i] : best->isa;
        if (child_forced(isas[i], expect) != 0)
            T_FAIL("QUARRY_SIMD=%s did not give %s", isas[i], expect);
    }
    fprintf(stderr, "(one warning about QUARRY_SIMD=sse9 is expected next)\n");
    if (child_forced("sse9", best->isa) != 0) T_FAIL("unknown QUARRY_SIMD did not fall back");
}

int main(void) {
    /* Must run before this process calls dist_get() itself. */
    test_env_forcing();

    T_ASSERT(dist_get_isa("scalar") == &dist_kernels_scalar);
    T_ASSERT(dist_get_isa("nope") == NULL);
    T_ASSERT(dist_get_isa(NULL) == NULL);

    const dist_kernels *chosen = dist_get();
    T_ASSERT(chosen != NULL);
    T_ASSERT(dist_get() == chosen); /* stable */
    const char *env = getenv("QUARRY_SIMD");
    if (!env || !*env || !dist_get_isa(env)) T_ASSERT_STREQ(chosen->isa, best_isa()->isa);
    else T_ASSERT_STREQ(chosen->isa, env);

    int ran = 0;
    for (size_t i = 0; i < NISAS; i++) {
        const dist_kernels *k = dist_get_isa(isas[i]);
        if (!k) {
            printf("isa %-6s: not supported on this CPU, skipped\n", isas[i]);
            continue;
        }
        T_ASSERT_STREQ(k->isa, isas[i]);
        test_known(k);
        test_pair(k);
        test_batch(k);
        printf("isa %-6s: ok\n", isas[i]);
        ran++;
    }
    T_ASSERT(ran >= 1);
    test_normalize();
    printf("dispatch picked %s\n", chosen->isa);
    return 0;
}
