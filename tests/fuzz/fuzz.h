/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h -- every fuzz target defines LLVMFuzzerTestOneInput. With clang and
 * -DQUARRY_FUZZ=ON each target links libFuzzer; otherwise it links replay.c,
 * which runs the committed corpus plus deterministic mutations of it, so the
 * gcc build checks the same decoders as an ordinary ctest.
 */
#ifndef QUARRY_FUZZ_H
#define QUARRY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/qcommon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run one(data, size), then one() again on a copy whose trailing XXH3-64 is
 * recomputed over the bytes before it, so that mutations get past a format's
 * own checksum and reach the structure checks behind it. */
static inline void fuzz_also_resealed(const uint8_t *data, size_t size,
                                      void (*one)(const uint8_t *, size_t)) {
    one(data, size);
    if (size < 8) return;
    uint8_t *copy = malloc(size);
    if (!copy) return;
    memcpy(copy, data, size);
    put_u64(copy + size - 8, XXH3_64bits(copy, size - 8));
    one(copy, size);
    free(copy);
}

#endif
