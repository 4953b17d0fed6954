/* SPDX-License-Identifier: MIT */
/*
 * Record and manifest codecs: round trips, and decoders fed truncated,
 * bit-flipped and random bytes return a corruption error without crashing
 * (run under ASan in CI, so an out-of-bounds read fails the test).
 */
#include "t.h"

#include "common/qcommon.h"
#include "storage/format.h"
#include "storage/storage.h"

#define SALT 0x1234567890abcdefull

/* Build a BATCH record with a few operations into buf; returns total length. */
static size_t build_record(uint8_t *buf, size_t cap, uint64_t lsn) {
    float v[4] = {1.5f, -2.0f, 0.25f, 8.0f};
    size_t off = REC_HEADER_LEN + BATCH_PREFIX_LEN;
    op_encode(buf + off, OP_UPSERT, "alpha", 5, v, 4, "some text", 9, "{\"k\":1}", 7);
    off += op_encoded_len(5, 4, 9, 7);
    op_encode(buf + off, OP_UPSERT, "beta", 4, NULL, 0, NULL, 0, NULL, 0);
    off += op_encoded_len(4, 0, 0, 0);
    op_encode(buf + off, OP_DELETE, "gamma", 5, NULL, 0, NULL, 0, NULL, 0);
    off += op_encoded_len(5, 0, 0, 0);
    T_ASSERT(off + 8 <= cap);
    uint32_t plen = (uint32_t)(off - REC_HEADER_LEN);
    put_u64(buf + REC_HEADER_LEN, 40);
    put_u32(buf + REC_HEADER_LEN + 8, 3);
    put_u32(buf + REC_HEADER_LEN + 12, 0);
    rec_seal_header(buf, REC_BATCH, plen, lsn, SALT);
    return rec_padded(off);
}

static void test_round_trip(void) {
    uint8_t buf[1024];
    size_t len = build_record(buf, sizeof buf, 77);
    T_ASSERT_EQ(len % 8, 0);
    rec_view r;
    T_ASSERT_OK(rec_decode(buf, len, SALT, &r));
    T_ASSERT_EQ(r.type, REC_BATCH);
    T_ASSERT_EQ(r.lsn, 77);
    T_ASSERT_EQ(r.total_len, len);
    uint32_t pos = BATCH_PREFIX_LEN;
    op_view op;
    T_ASSERT_EQ(batch_next_op(r.payload, r.payload_len, &pos, &op), 1);
    T_ASSERT_EQ(op.op, OP_UPSERT);
    T_ASSERT_EQ(op.id_len, 5);
    T_ASSERT(!memcmp(op.id, "alpha", 5));
    T_ASSERT_EQ(op.dim, 4);
    float v3;
    memcpy(&v3, op.vector + 12, 4);
    T_ASSERT(v3 == 8.0f);
    T_ASSERT(op.text_len == 9 && !memcmp(op.text, "some text", 9));
    T_ASSERT(op.meta_len == 7 && !memcmp(op.meta, "{\"k\":1}", 7));
    T_ASSERT_EQ(batch_next_op(r.payload, r.payload_len, &pos, &op), 1);
    T_ASSERT(op.op == OP_UPSERT && op.vector == NULL && op.text == NULL && op.meta == NULL);
    T_ASSERT_EQ(batch_next_op(r.payload, r.payload_len, &pos, &op), 1);
    T_ASSERT_EQ(op.op, OP_DELETE);
    T_ASSERT_EQ(batch_next_op(r.payload, r.payload_len, &pos, &op), 0);
    /* a different salt (another file) never validates */
    T_ASSERT_RC(rec_decode(buf, len, SALT + 1, &r), QUARRY_CORRUPT);
}

static void test_truncated(void) {
    uint8_t buf[1024];
    size_t len = build_record(buf, sizeof buf, 1);
    rec_view r;
    /* the padding may be missing, the payload may not */
    size_t need = REC_HEADER_LEN + get_u32(buf + 8);
    for (size_t n = 0; n < need; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan catches overreads */
        memcpy(copy, buf, n);
        T_ASSERT_RC(rec_decode(copy, n, SALT, &r), QUARRY_CORRUPT);
        free(copy);
    }
    T_ASSERT_OK(rec_decode(buf, len, SALT, &r));
}

static void test_bit_flips(void) {
    uint8_t buf[1024];
    size_t len = build_record(buf, sizeof buf, 5);
    size_t covered = REC_HEADER_LEN + get_u32(buf + 8);
    rec_view r;
    for (size_t byte = 0; byte < covered; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[byte] ^= (uint8_t)(1u << bit);
            T_ASSERT_RC(rec_decode(buf, len, SALT, &r), QUARRY_CORRUPT);
            buf[byte] ^= (uint8_t)(1u << bit);
        }
    }
    T_ASSERT_OK(rec_decode(buf, len, SALT, &r));
}

/* A structurally bad payload with a correct checksum is still rejected. */
static void test_bad_structure(void) {
    uint8_t buf[1024];
    size_t len = build_record(buf, sizeof buf, 5);
    uint32_t plen = get_u32(buf + 8);
    rec_view r;
    struct {
        size_t off;
        uint8_t val;
    } cases[] = {
        {REC_HEADER_LEN + 8, 4},                               /* nops too large */
        {REC_HEADER_LEN + 8, 0},                               /* nops = 0 */
        {REC_HEADER_LEN + BATCH_PREFIX_LEN + 0, 9},            /* unknown op */
        {REC_HEADER_LEN + BATCH_PREFIX_LEN + 1, 0x80},         /* unknown flag */
        {REC_HEADER_LEN + BATCH_PREFIX_LEN + 2, 0},            /* id_len 0 */
        {REC_HEADER_LEN + BATCH_PREFIX_LEN + 4, 200},          /* dim overruns */
        {REC_HEADER_LEN + BATCH_PREFIX_LEN + 8, 0},            /* text flag, no text */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t copy[1024];
        memcpy(copy, buf, len);
        copy[cases[i].off] = cases[i].val;
        rec_seal_header(copy, REC_BATCH, plen, 5, SALT); /* checksum made valid again */
        T_ASSERT_RC(rec_decode(copy, len, SALT, &r), QUARRY_CORRUPT);
    }
}

static void test_random_bytes(void) {
    uint64_t seed = 42;
    uint8_t buf[4096];
    rec_view r;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = t_rand(&seed) % sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)t_rand(&seed);
        if (iter % 2 && n >= 8) put_u32(buf, REC_MAGIC); /* get past the magic check */
        T_ASSERT_RC(rec_decode(buf, n, SALT, &r), QUARRY_CORRUPT);
        uint32_t pos = BATCH_PREFIX_LEN;
        op_view op;
        while (batch_next_op(buf, (uint32_t)n, &pos, &op) == 1) {}
        manifest m;
        if (manifest_decode(buf, n, &m) == 0) manifest_clear(&m);
    }
}

static void test_manifest(void) {
    manifest m = {0};
    manifest_coll c[2] = {0};
    uint64_t segs[] = {3, 4, 7};
    c[0].id = 1;
    strcpy(c[0].name, "docs");
    c[0].dim = 128;
    c[0].metric = 2;
    c[0].next_segment = 8;
    c[0].segments = segs;
    c[0].nsegments = 3;
    c[1].id = 2;
    strcpy(c[1].name, "text-only");
    c[1].next_segment = 1;
    c[1].segments = segs;
    c[1].nsegments = 0;
    m.next_collection_id = 3;
    m.colls = c;
    m.ncolls = 2;
    uint8_t *buf;
    size_t len;
    T_ASSERT_OK(manifest_encode(&m, &buf, &len));
    manifest d;
    T_ASSERT_OK(manifest_decode(buf, len, &d));
    T_ASSERT_EQ(d.ncolls, 2);
    T_ASSERT_STREQ(d.colls[0].name, "docs");
    T_ASSERT_EQ(d.colls[0].dim, 128);
    T_ASSERT_EQ(d.colls[0].metric, 2);
    T_ASSERT_EQ(d.colls[0].nsegments, 3);
    T_ASSERT_EQ(d.colls[0].segments[2], 7);
    T_ASSERT_EQ(d.next_collection_id, 3);
    manifest_clear(&d);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x10;
        T_ASSERT_RC(manifest_decode(buf, len, &d), QUARRY_CORRUPT);
        buf[i] ^= 0x10;
    }
    for (size_t n = 0; n < len; n++) T_ASSERT_RC(manifest_decode(buf, n, &d), QUARRY_CORRUPT);
    quarry_free(buf);
}

int main(void) {
    test_round_trip();
    test_truncated();
    test_bit_flips();
    test_bad_structure();
    test_random_bytes();
    test_manifest();
    printf("record codec: ok\n");
    return 0;
}
