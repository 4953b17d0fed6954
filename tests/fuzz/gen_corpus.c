/* SPDX-License-Identifier: MIT */
/*
 * gen_corpus.c -- writes the seed corpus of every fuzz target (valid inputs
 * the mutations start from) into DIR/<target>/. Run once, commit the files:
 *     fuzz_gen_corpus tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/qcommon.h"
#include "index/filter/filter.h"
#include "index/hnsw/hnsw.h"
#include "index/text/text.h"
#include "storage/format.h"
#include "storage/storage.h"

static const char *g_root;

static void put(const char *target, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* A metadata index over rows [0, n): every kind of value (keyword, boolean,
 * integers and reals with -0.0, strings with the empty one, string arrays,
 * a field changing type, null), a few rows without a field or removed. The
 * caller serialises and frees it. */
static attr_index *attrs_sample(uint32_t n, int optimize) {
    attr_index *ai;
    if (attr_index_new(&ai)) exit(1);
    for (uint32_t r = 0; r < n; r++) {
        char kw[8], s[8];
        snprintf(kw, sizeof kw, "k%u", r % 5);
        snprintf(s, sizeof s, "%.*s", (int)(r % 4), "bcd");
        json_t *m = json_pack("{s:s,s:b,s:i,s:f,s:s,s:[s,s]}", "kw", kw, "flag", r % 3 == 0, "n",
                              (int)(r * 7919 % 101) - 50, "x", r % 17 ? r / 8.0 : -0.0, "s", s,
                              "tags", r % 2 ? "t1" : "t2", "t3");
        json_t *mixed = r % 4 == 0 ? json_integer(3) : r % 4 == 1 ? json_string("m3") : NULL;
        json_object_set_new(m, "mixed", mixed ? mixed : r % 4 == 2 ? json_true() : json_null());
        if (r % 11 == 5) json_object_del(m, "kw");
        if (attr_index_add(ai, r, m)) exit(1);
        if (r % 13 == 7 && attr_index_remove(ai, r, m)) exit(1);
        json_decref(m);
    }
    if (optimize) attr_index_optimize(ai);
    return ai;
}

/* Rows [0, n) with one field, `{"<field>": value}`: bitset containers (more
 * than 4096 rows) or several numeric blocks (more than 2048 numbers). */
static attr_index *attrs_one_field(uint32_t n, const char *field, int number) {
    attr_index *ai;
    if (attr_index_new(&ai)) exit(1);
    for (uint32_t r = 0; r < n; r++) {
        json_t *m = number ? json_pack("{s:i}", field, (int)(r % 300))
                           : json_pack("{s:b}", field, r % 7 != 0);
        if (attr_index_add(ai, r, m)) exit(1);
        json_decref(m);
    }
    return ai;
}

/* Write ai's serialisation as a fuzz_attrs seed and free ai. */
static void put_attrs(const char *name, attr_index *ai) {
    uint8_t *b;
    size_t l;
    if (attr_index_serialize(ai, &b, &l)) exit(1);
    put("fuzz_attrs", name, b, l);
    q_free(b);
    attr_index_free(ai);
}

/* A BATCH record of `nops` upserts (salt 0) at buf; returns its length. */
static size_t batch(uint8_t *buf, int nops, uint64_t lsn, uint64_t synced_off, int deletes) {
    size_t off = REC_HEADER_LEN + BATCH_PREFIX_LEN;
    for (int i = 0; i < nops; i++) {
        char id[16];
        int l = snprintf(id, sizeof id, "id-%d", i);
        if (deletes && i % 2) {
            op_encode(buf + off, OP_DELETE, id, (uint32_t)l, NULL, 0, NULL, 0, NULL, 0);
            off += op_encoded_len((uint32_t)l, 0, 0, 0);
            continue;
        }
        float v[4] = {(float)i, 1, 2, 3};
        const char *meta = "{\"g\":\"a\",\"n\":1}";
        op_encode(buf + off, OP_UPSERT, id, (uint32_t)l, v, 4, "some text", 9, meta,
                  (uint32_t)strlen(meta));
        off += op_encoded_len((uint32_t)l, 4, 9, (uint32_t)strlen(meta));
    }
    uint32_t plen = (uint32_t)(off - REC_HEADER_LEN);
    put_u64(buf + REC_HEADER_LEN, synced_off);
    put_u32(buf + REC_HEADER_LEN + 8, (uint32_t)nops);
    put_u32(buf + REC_HEADER_LEN + 12, 0);
    rec_seal_header(buf, REC_BATCH, plen, lsn, 0);
    return rec_padded(off);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus DIR\n");
        return 2;
    }
    g_root = argv[1];
    mkdir(g_root, 0755);
    static uint8_t buf[1 << 16];

    /* records: a segment header + batches, and lone records */
    size_t n = SEG_HEADER_LEN;
    seg_header_encode(buf, 1, 1, 0);
    n += batch(buf + n, 3, 1, 0, 0);
    n += batch(buf + n, 4, 2, n, 1);
    put("fuzz_record", "segment", buf, n);
    size_t one = batch(buf, 1, 7, 0, 0);
    put("fuzz_record", "one", buf, one);
    uint8_t seal[REC_HEADER_LEN + SEAL_PAYLOAD_LEN];
    put_u64(seal + REC_HEADER_LEN, 40);
    put_u64(seal + REC_HEADER_LEN + 8, 0);
    rec_seal_header(seal, REC_SEAL, SEAL_PAYLOAD_LEN, 0, 0);
    put("fuzz_record", "seal", seal, sizeof seal);

    /* recovery: segment bodies (the target prepends the header) */
    size_t body = 0;
    body += batch(buf + body, 2, 1, 0, 0);
    body += batch(buf + body, 3, 2, SEG_HEADER_LEN + body, 1);
    body += batch(buf + body, 1, 3, SEG_HEADER_LEN + body, 0);
    put("fuzz_recovery", "three-batches", buf, body);
    put_u64(seal + REC_HEADER_LEN, SEG_HEADER_LEN + body);
    put_u64(seal + REC_HEADER_LEN + 8, 3);
    rec_seal_header(seal, REC_SEAL, SEAL_PAYLOAD_LEN, 3, 0);
    memcpy(buf + body, seal, sizeof seal);
    put("fuzz_recovery", "sealed", buf, body + sizeof seal);

    /* manifest */
    manifest m = {0};
    manifest_coll c[2] = {{0}};
    uint64_t segs[3] = {1, 2, 5};
    c[0].id = 1, c[0].dim = 4, c[0].next_segment = 6, c[0].segments = segs, c[0].nsegments = 3;
    strcpy(c[0].name, "docs");
    strcpy(c[0].ckpt_file, "ckpt-00000000000000000009-10.hnsw");
    c[0].ckpt_lsn = 9, c[0].ckpt_rows = 10, c[0].index = 1, c[0].metric = 2;
    c[1].id = 2, c[1].next_segment = 1, c[1].segments = segs, c[1].durability = 1;
    strcpy(c[1].name, "texts");
    m.next_collection_id = 3, m.colls = c, m.ncolls = 2;
    uint8_t *mb;
    size_t ml;
    if (manifest_encode(&m, &mb, &ml) != 0) return 1;
    put("fuzz_manifest", "two-collections", mb, ml);
    q_free(mb);

    /* checkpoint of a 64-node graph (the target's shape) */
    hnsw_config cfg = {FLAT_L2, 4, 8, 32, 1, NULL};
    hnsw *h;
    if (hnsw_new(&cfg, &h) || hnsw_reserve(h, 64)) return 1;
    for (uint32_t i = 0; i < 64; i++) {
        float *v = hnsw_vector(h, i);
        for (int j = 0; j < 4; j++) v[j] = (float)((i * 7 + j * 13) % 17);
        if (i % 9 != 4 && hnsw_insert(h, i)) return 1;
    }
    hnsw_delete(h, 3);
    uint8_t *gb, *tb;
    size_t gl, tl;
    if (hnsw_serialize(h, &gb, &gl)) return 1;
    put("fuzz_checkpoint", "graph-raw", gb, gl);
    bm25 *t;
    const char *docs[] = {"alpha beta gamma", "beta gamma delta running", "東京都 の 天気",
                          "Café crème brûlée", "gamma gamma alpha"};
    if (bm25_new(NULL, &t)) return 1;
    for (uint32_t i = 0; i < 5; i++)
        if (bm25_add(t, i, docs[i], strlen(docs[i]))) return 1;
    bm25_delete(t, 1);
    if (bm25_serialize(t, &tb, &tl)) return 1;
    static uint8_t ck[1 << 20];
    size_t plen = 0;
    uint8_t *payload = ck + CKPT_HEADER_LEN;
    put_u32(payload, CKPT_SECTION_HNSW), put_u32(payload + 4, 0), put_u64(payload + 8, gl);
    memcpy(payload + CKPT_SECTION_HEADER, gb, gl);
    plen += CKPT_SECTION_HEADER + gl;
    put_u32(payload + plen, CKPT_SECTION_BM25), put_u32(payload + plen + 4, 0);
    put_u64(payload + plen + 8, tl);
    memcpy(payload + plen + CKPT_SECTION_HEADER, tb, tl);
    plen += CKPT_SECTION_HEADER + tl;
    /* the file layout, built like ckpt_write does */
    memcpy(ck, CKPT_MAGIC, 8);
    put_u32(ck + 8, CKPT_VERSION);
    put_u32(ck + 12, CKPT_KIND_INDEXES);
    put_u32(ck + 16, 1);
    put_u32(ck + 20, 64);
    put_u64(ck + 24, 9);
    put_u64(ck + 32, plen);
    extern uint64_t fuzz_xxh3(const void *, size_t);
    put_u64(ck + 40, fuzz_xxh3(payload, plen));
    put_u64(ck + 48, fuzz_xxh3(ck, 48));
    put("fuzz_checkpoint", "graph-file", ck, CKPT_HEADER_LEN + plen);
    put("fuzz_checkpoint", "sections", payload, plen);
    /* the same with the metadata index of the 64 rows */
    {
        attr_index *ai = attrs_sample(64, 0);
        uint8_t *ab;
        size_t al;
        if (attr_index_serialize(ai, &ab, &al) || plen + CKPT_SECTION_HEADER + al > sizeof ck)
            return 1;
        put_u32(payload + plen, CKPT_SECTION_ATTRS), put_u32(payload + plen + 4, 0);
        put_u64(payload + plen + 8, al);
        memcpy(payload + plen + CKPT_SECTION_HEADER, ab, al);
        size_t alen = plen + CKPT_SECTION_HEADER + al;
        put_u64(ck + 32, alen);
        put_u64(ck + 40, fuzz_xxh3(payload, alen));
        put_u64(ck + 48, fuzz_xxh3(ck, 48));
        put("fuzz_checkpoint", "attrs-file", ck, CKPT_HEADER_LEN + alen);
        q_free(ab);
        attr_index_free(ai);
    }
    q_free(tb);
    bm25_free(t);
    q_free(gb);
    hnsw_free(h);

    /* metadata indexes: small, with run containers, with bitset containers,
     * with several numeric blocks */
    put_attrs("small", attrs_sample(40, 0));
    put_attrs("optimized", attrs_sample(300, 1));
    put_attrs("bitsets", attrs_one_field(4500, "flag", 0));
    put_attrs("blocks", attrs_one_field(2200, "n", 1));

    /* filters and metadata */
    const char *texts[] = {"{\"lang\":\"en\"}", "{\"n\":3,\"ok\":true}", "{\"tags\":\"a\"}",
                           "{\"a\":{\"b\":1}}", "[1,2,3]", "{\"x\":\"\\u00e9t\\u00e9\"}",
                           "{\"k\":[\"a\",\"b\"],\"v\":1.5e3}"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char name[16];
        snprintf(name, sizeof name, "json-%zu", i);
        put("fuzz_filter", name, texts[i], strlen(texts[i]));
    }
    printf("corpus written to %s\n", g_root);
    return 0;
}

#define XXH_INLINE_ALL
#include <xxhash.h>
uint64_t fuzz_xxh3(const void *p, size_t n) { return XXH3_64bits(p, n); }
