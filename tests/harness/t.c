/* SPDX-License-Identifier: MIT */
/* t.c -- scratch directories, PRNG and data-set lookup for the tests. */
#include "t.h"

#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

char *t_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char *p = malloc(4096);
    if (!p) T_FAIL("out of memory");
    snprintf(p, 4096, "%s/quarry-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) T_FAIL("mkdtemp(%s): %s", p, strerror(errno));
    return p;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void t_rmdir(const char *path) {
    if (path) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t t_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float t_randf(uint64_t *s) {
    return (float)((t_rand(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

const char *t_data_path(const char *rel) {
    static char buf[4096];
    const char *env = getenv("QUARRY_DATA");
    if (env && *env) {
        snprintf(buf, sizeof buf, "%s/%s", env, rel);
        if (access(buf, R_OK) == 0) return buf;
    }
#ifdef QUARRY_SOURCE_DIR
    snprintf(buf, sizeof buf, "%s/../shared/data/%s", QUARRY_SOURCE_DIR, rel);
    if (access(buf, R_OK) == 0) return buf;
#endif
    return NULL;
}
