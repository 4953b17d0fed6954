/* SPDX-License-Identifier: MIT */
/* Fuzz target: the segment header check, the record decoder and the batch
 * operation iterator on hostile bytes (salt fixed at 0, as in the corpus). */
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
    return 0;
}
