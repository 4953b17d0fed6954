/* SPDX-License-Identifier: MIT */
/*
 * record.c -- encoders and decoders for segment headers, records and batch
 * operations (storage/format.h is the specification).
 *
 * Decoders treat every byte as hostile: each length is checked against what
 * remains before it is used, arithmetic is done in 64 bits, and a failure is
 * QUARRY_CORRUPT_RECORD, never an assert. They are fuzzed.
 */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/qcommon.h"
#include "storage/format.h"

static uint64_t rec_hash(const uint8_t *hdr24, const uint8_t *payload, uint32_t len,
                         uint64_t salt) {
    XXH3_state_t st;
    memset(&st, 0, sizeof st); /* silences a gcc false positive in xxhash.h */
    XXH3_64bits_reset_withSeed(&st, salt);
    XXH3_64bits_update(&st, hdr24, 24);
    if (len) XXH3_64bits_update(&st, payload, len);
    return XXH3_64bits_digest(&st);
}

void rec_seal_header(uint8_t *rec, uint16_t type, uint32_t payload_len, uint64_t lsn,
                     uint64_t salt) {
    put_u32(rec, REC_MAGIC);
    put_u16(rec + 4, type);
    put_u16(rec + 6, REC_VERSION);
    put_u32(rec + 8, payload_len);
    put_u32(rec + 12, 0);
    put_u64(rec + 16, lsn);
    put_u64(rec + 24, rec_hash(rec, rec + REC_HEADER_LEN, payload_len, salt));
    /* zero the padding so files are deterministic */
    uint64_t end = REC_HEADER_LEN + (uint64_t)payload_len;
    memset(rec + end, 0, rec_padded(end) - end);
}

int rec_decode(const uint8_t *buf, uint64_t avail, uint64_t salt, rec_view *out) {
    if (avail < REC_HEADER_LEN) return QUARRY_CORRUPT_RECORD;
    if (get_u32(buf) != REC_MAGIC) return QUARRY_CORRUPT_RECORD;
    uint16_t type = get_u16(buf + 4);
    if (type != REC_BATCH && type != REC_SEAL) return QUARRY_CORRUPT_RECORD;
    if (get_u16(buf + 6) != REC_VERSION || get_u32(buf + 12) != 0) return QUARRY_CORRUPT_RECORD;
    uint32_t plen = get_u32(buf + 8);
    if (plen > SEG_MAX_PAYLOAD || (uint64_t)plen > avail - REC_HEADER_LEN)
        return QUARRY_CORRUPT_RECORD;
    const uint8_t *payload = buf + REC_HEADER_LEN;
    if (rec_hash(buf, payload, plen, salt) != get_u64(buf + 24)) return QUARRY_CORRUPT_RECORD;
    if (type == REC_BATCH) {
        if (batch_validate(payload, plen) != 0) return QUARRY_CORRUPT_RECORD;
    } else if (plen != SEAL_PAYLOAD_LEN) {
        return QUARRY_CORRUPT_RECORD;
    }
    uint64_t total = rec_padded(REC_HEADER_LEN + (uint64_t)plen);
    out->type = type;
    out->lsn = get_u64(buf + 16);
    out->payload = payload;
    out->payload_len = plen;
    /* The padding of the very last record may be cut off by a truncation;
     * the caller treats total_len > avail as "ends at avail". */
    out->total_len = total;
    return 0;
}

/* The header fields of the operation at h. */
static void op_header(const uint8_t *h, op_view *op) {
    op->op = h[0];
    op->flags = h[1];
    op->id_len = get_u16(h + 2);
    op->dim = get_u32(h + 4);
    op->text_len = get_u32(h + 8);
    op->meta_len = get_u32(h + 12);
}

/* The body pointers of an operation whose header is in *op; the length of
 * the whole operation is `len`. */
static void op_body(const uint8_t *h, uint64_t len, op_view *op) {
    const uint8_t *q = h + OP_HEADER_LEN;
    op->id = (const char *)q;
    q += op->id_len;
    op->vector = op->dim ? q : NULL;
    q += 4ull * op->dim;
    op->text = (op->flags & OPF_TEXT) ? (const char *)q : NULL;
    q += op->text_len;
    op->meta = (op->flags & OPF_META) ? (const char *)q : NULL;
    op->enc_len = (uint32_t)len;
}

uint32_t op_view_raw(const uint8_t *h, op_view *op) {
    op_header(h, op);
    uint64_t len = op_encoded_len(op->id_len, op->dim, op->text_len, op->meta_len);
    op_body(h, len, op);
    return (uint32_t)len;
}

int batch_next_op(const uint8_t *payload, uint32_t payload_len, uint32_t *pos, op_view *op) {
    uint64_t p = *pos;
    if (p == payload_len) return 0;
    if (p > payload_len || payload_len - p < OP_HEADER_LEN) return QUARRY_CORRUPT_RECORD;
    const uint8_t *h = payload + p;
    op_header(h, op);
    if (op->op != OP_UPSERT && op->op != OP_DELETE) return QUARRY_CORRUPT_RECORD;
    if (op->flags & ~(OPF_VECTOR | OPF_TEXT | OPF_META)) return QUARRY_CORRUPT_RECORD;
    if (op->id_len == 0 || op->id_len > QUARRY_MAX_ID_LEN) return QUARRY_CORRUPT_RECORD;
    if (op->op == OP_DELETE && (op->flags || op->dim || op->text_len || op->meta_len))
        return QUARRY_CORRUPT_RECORD;
    if (!!(op->flags & OPF_VECTOR) != (op->dim != 0) || op->dim > QUARRY_MAX_DIM)
        return QUARRY_CORRUPT_RECORD;
    if (!(op->flags & OPF_TEXT) && op->text_len) return QUARRY_CORRUPT_RECORD;
    if (!(op->flags & OPF_META) && op->meta_len) return QUARRY_CORRUPT_RECORD;
    if (op->text_len > QUARRY_MAX_TEXT_LEN || op->meta_len > QUARRY_MAX_METADATA_LEN)
        return QUARRY_CORRUPT_RECORD;
    uint64_t len = op_encoded_len(op->id_len, op->dim, op->text_len, op->meta_len);
    if (len > payload_len - p) return QUARRY_CORRUPT_RECORD;
    op_body(h, len, op);
    *pos = (uint32_t)(p + len);
    return 1;
}

int batch_validate(const uint8_t *payload, uint32_t payload_len) {
    if (payload_len < BATCH_PREFIX_LEN) return QUARRY_CORRUPT_RECORD;
    uint32_t nops = get_u32(payload + 8);
    if (nops == 0 || get_u32(payload + 12) != 0) return QUARRY_CORRUPT_RECORD;
    uint32_t pos = BATCH_PREFIX_LEN, n = 0;
    op_view op;
    int rc;
    while ((rc = batch_next_op(payload, payload_len, &pos, &op)) == 1) n++;
    if (rc != 0 || n != nops) return QUARRY_CORRUPT_RECORD;
    return 0;
}

void op_encode(uint8_t *p, uint8_t op, const char *id, uint32_t id_len, const float *vec,
               uint32_t dim, const char *text, uint32_t text_len, const char *meta,
               uint32_t meta_len) {
    uint8_t flags = (uint8_t)((vec && dim ? OPF_VECTOR : 0) | (text ? OPF_TEXT : 0) |
                              (meta ? OPF_META : 0));
    p[0] = op;
    p[1] = flags;
    put_u16(p + 2, (uint16_t)id_len);
    put_u32(p + 4, (flags & OPF_VECTOR) ? dim : 0);
    put_u32(p + 8, text ? text_len : 0);
    put_u32(p + 12, meta ? meta_len : 0);
    uint8_t *q = p + OP_HEADER_LEN;
    memcpy(q, id, id_len);
    q += id_len;
    if (flags & OPF_VECTOR) {
        for (uint32_t i = 0; i < dim; i++) {
            uint32_t bits;
            memcpy(&bits, &vec[i], 4);
            put_u32(q + 4ull * i, bits);
        }
        q += 4ull * dim;
    }
    if (text) {
        memcpy(q, text, text_len);
        q += text_len;
    }
    if (meta) memcpy(q, meta, meta_len);
}

void seg_header_encode(uint8_t *hdr, uint32_t coll_id, uint64_t segno, uint64_t salt) {
    memcpy(hdr, SEG_MAGIC, 8);
    put_u32(hdr + 8, SEG_VERSION);
    put_u32(hdr + 12, coll_id);
    put_u64(hdr + 16, segno);
    put_u64(hdr + 24, salt);
    put_u64(hdr + 32, XXH3_64bits(hdr, 32));
}

int seg_header_check(const uint8_t *hdr, uint64_t len, uint32_t coll_id, uint64_t segno,
                     uint64_t *salt) {
    if (len < SEG_HEADER_LEN) return QUARRY_CORRUPT_SEGMENT;
    if (memcmp(hdr, SEG_MAGIC, 8) != 0 || get_u32(hdr + 8) != SEG_VERSION)
        return QUARRY_CORRUPT_SEGMENT;
    if (get_u64(hdr + 32) != XXH3_64bits(hdr, 32)) return QUARRY_CORRUPT_SEGMENT;
    if (get_u32(hdr + 12) != coll_id || get_u64(hdr + 16) != segno)
        return QUARRY_CORRUPT_SEGMENT;
    *salt = get_u64(hdr + 24);
    return 0;
}
