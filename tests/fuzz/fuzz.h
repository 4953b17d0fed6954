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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
