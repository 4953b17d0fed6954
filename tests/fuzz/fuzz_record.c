/* SPDX-License-Identifier: MIT */
/* Fuzz target: the segment header check, the record decoder and the batch
 * operation iterator on hostile bytes (salt fixed at 0, as in the corpus). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "common/qcommon.h"
#include "storage/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t salt = 0;
    (void)seg_header_check(data, size, 1, 1, &salt);
    uint64_t off = 0;
    while (off + 8 <= size) {
        rec_view r;
        if (rec_decode(data + off, size - off, 0, &r) == 0) {
            if (r.type == REC_BATCH) {
                uint32_t pos = BATCH_PREFIX_LEN;
                op_view op;
                uint64_t sum = 0;
                while (batch_next_op(r.payload, r.payload_len, &pos, &op) == 1)
                    sum += op.id_len + op.dim + op.text_len + op.meta_len;
                (void)sum;
            }
            off += r.total_len;
        } else {
            off += 8;
        }
    }
    /* Again with the checksum made valid, so the structure checks behind it
     * are what the mutations reach. */
    if (size >= REC_HEADER_LEN && size < (1u << 20)) {
        uint8_t *copy = malloc(size + 8);
        if (!copy) return 0;
        memcpy(copy, data, size);
        uint32_t plen = get_u32(copy + 8);
        if ((uint64_t)plen <= size - REC_HEADER_LEN) {
            /* rec_seal_header zero-fills up to 7 padding bytes after the
             * payload: the copy has 8 bytes of slack for them */
            rec_seal_header(copy, get_u16(copy + 4), plen, get_u64(copy + 16), 0);
            rec_view r;
            if (rec_decode(copy, size, 0, &r) == 0 && r.type == REC_BATCH) {
                uint32_t pos = BATCH_PREFIX_LEN;
                op_view op;
                while (batch_next_op(r.payload, r.payload_len, &pos, &op) == 1) {}
            }
        }
        free(copy);
    }
    return 0;
}
