/* SPDX-License-Identifier: MIT */
/* Fuzz target: the manifest decoder (binary header + JSON body). */
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
    /* the body alone, behind a valid header, reaches the JSON validation */
    return 0;
}
