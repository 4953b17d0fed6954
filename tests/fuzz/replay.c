/* SPDX-License-Identifier: MIT */
/*
 * replay.c -- the plain driver for fuzz targets: feed every file of the
 * target's committed corpus, then QUARRY_FUZZ_MUTATIONS (default 2000)
 * deterministic mutations of them (bit flips, truncations, splices, random
 * bytes) to LLVMFuzzerTestOneInput. A crash or sanitizer report fails the test.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

typedef struct blob {
    uint8_t *p;
    size_t n;
} blob;

static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : QUARRY_FUZZ_CORPUS;
    blob *seeds = NULL;
    size_t nseeds = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "no corpus at %s\n", dir);
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        seeds = realloc(seeds, (nseeds + 1) * sizeof *seeds);
        seeds[nseeds].p = malloc((size_t)n + 1);
        seeds[nseeds].n = fread(seeds[nseeds].p, 1, (size_t)n, f);
        fclose(f);
        /* an exact-size copy so that ASan sees any read past the end */
        uint8_t *exact = malloc(seeds[nseeds].n ? seeds[nseeds].n : 1);
        memcpy(exact, seeds[nseeds].p, seeds[nseeds].n);
        LLVMFuzzerTestOneInput(exact, seeds[nseeds].n);
        free(exact);
        nseeds++;
    }
    closedir(d);
    if (nseeds == 0) {
        fprintf(stderr, "empty corpus at %s\n", dir);
        return 1;
    }
    const char *m = getenv("QUARRY_FUZZ_MUTATIONS");
    long mutations = m ? atol(m) : 2000;
    uint64_t s = 42;
    for (long i = 0; i < mutations; i++) {
        const blob *b = &seeds[rnd(&s) % nseeds];
        size_t n = b->n;
        uint8_t *buf = malloc(n + 64);
        memcpy(buf, b->p, n);
        switch (rnd(&s) % 5) {
        case 0: /* bit flips */
            for (int k = 0; n && k < 1 + (int)(rnd(&s) % 4); k++)
                buf[rnd(&s) % n] ^= (uint8_t)(1u << (rnd(&s) % 8));
            break;
        case 1: /* truncation */
            n = n ? rnd(&s) % n : 0;
            break;
        case 2: /* overwrite a run with random bytes */
            for (size_t k = 0, at = n ? rnd(&s) % n : 0; n && k < 16 && at + k < n; k++)
                buf[at + k] = (uint8_t)rnd(&s);
            break;
        case 3: /* append garbage */
            for (int k = 0; k < 32; k++) buf[n++] = (uint8_t)rnd(&s);
            break;
        default: /* interesting integers at a random aligned place */
            if (n >= 4) {
                static const uint32_t vals[] = {0, 1, 0x7fffffff, 0xffffffff, 0x80000000, 256};
                uint32_t v = vals[rnd(&s) % 6];
                memcpy(buf + (rnd(&s) % (n - 3) & ~(size_t)3), &v, 4);
            }
        }
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        free(buf);
    }
    printf("%s: %zu corpus inputs and %ld mutations, no crash\n", argv[0], nseeds, mutations);
    for (size_t i = 0; i < nseeds; i++) free(seeds[i].p);
    free(seeds);
    return 0;
}
