/* SPDX-License-Identifier: MIT */
/* Fuzz target: the manifest decoder (binary header + JSON body). */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz.h"

#include "common/qcommon.h"
#include "storage/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    manifest m;
    if (manifest_decode(data, size, &m) == 0) {
        uint8_t *buf;
        size_t len;
        if (manifest_encode(&m, &buf, &len) == 0) q_free(buf);
        manifest_clear(&m);
    }
    /* The input as a body behind a valid header and checksum: the mutations
     * then reach the JSON validation instead of dying at the checksum. */
    uint8_t *f = malloc(MANIFEST_HEADER_LEN + size + 1);
    if (!f) return 0;
    memcpy(f, MANIFEST_MAGIC, 8);
    put_u32(f + 8, MANIFEST_VERSION);
    put_u32(f + 12, (uint32_t)size);
    put_u64(f + 16, XXH3_64bits(data, size));
    memcpy(f + MANIFEST_HEADER_LEN, data, size);
    if (manifest_decode(f, MANIFEST_HEADER_LEN + size, &m) == 0) manifest_clear(&m);
    free(f);
    return 0;
}
