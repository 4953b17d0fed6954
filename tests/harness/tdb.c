/* SPDX-License-Identifier: MIT */
/* tdb.c -- see tdb.h. */
#include "tdb.h"

#include <liburing.h>

int tdb_uring_ok(void) {
    struct io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) < 0) return 0;
    io_uring_queue_exit(&ring);
    return 1;
}

int tdb_try_open(const char *dir, const char *io, uint64_t seg_max, quarry_db **out) {
    quarry_options o;
    quarry_options_init(&o);
    o.io = !strcmp(io, "posix") ? QUARRY_IO_POSIX : QUARRY_IO_URING;
    if (seg_max) o.segment_max_bytes = seg_max;
    return quarry_open(dir, &o, out);
}

quarry_db *tdb_open(const char *dir, const char *io, uint64_t seg_max) {
    quarry_db *db = NULL;
    T_ASSERT_OK(tdb_try_open(dir, io, seg_max, &db));
    return db;
}

quarry_coll *tdb_coll(quarry_db *db, const char *name, uint32_t dim, quarry_metric metric,
                      quarry_durability dur) {
    quarry_coll *c = NULL;
    if (quarry_collection_open(db, name, &c) == QUARRY_OK) return c;
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = dim;
    cfg.metric = metric;
    cfg.durability = dur;
    T_ASSERT_OK(quarry_collection_create(db, name, &cfg, &c));
    return c;
}

void tdb_vector(uint64_t key, uint64_t version, uint32_t dim, float *out) {
    uint64_t s = key * 1000003ull + version * 7919ull + 1;
    for (uint32_t i = 0; i < dim; i++) out[i] = t_randf(&s);
}

void tdb_text(uint64_t key, uint64_t version, char *out, size_t cap) {
    snprintf(out, cap, "row %llu version %llu \xc3\xa9t\xc3\xa9", (unsigned long long)key,
             (unsigned long long)version);
}

int tdb_upsert_range(quarry_coll *c, uint64_t first, size_t n, uint64_t version, uint32_t dim) {
    quarry_row *rows = calloc(n, sizeof *rows);
    float *vecs = malloc((n ? n : 1) * (dim ? dim : 1) * sizeof(float));
    char(*ids)[32] = malloc((n ? n : 1) * 32);
    char(*texts)[64] = malloc((n ? n : 1) * 64);
    char(*metas)[64] = malloc((n ? n : 1) * 64);
    for (size_t i = 0; i < n; i++) {
        uint64_t key = first + i;
        snprintf(ids[i], 32, "k%llu", (unsigned long long)key);
        tdb_text(key, version, texts[i], 64);
        snprintf(metas[i], 64, "{\"v\":%llu,\"g\":\"g%llu\"}", (unsigned long long)version,
                 (unsigned long long)(key % 7));
        rows[i].id = ids[i];
        if (dim) {
            tdb_vector(key, version, dim, vecs + i * dim);
            rows[i].vector = vecs + i * dim;
            rows[i].dim = dim;
        }
        rows[i].text = texts[i];
        rows[i].metadata = metas[i];
    }
    int rc = quarry_upsert(c, rows, n);
    free(rows), free(vecs), free(ids), free(texts), free(metas);
    return rc;
}

void tdb_check_row(quarry_coll *c, uint64_t key, uint64_t version, uint32_t dim) {
    char id[32], text[64], meta[64];
    snprintf(id, sizeof id, "k%llu", (unsigned long long)key);
    quarry_doc *d = NULL;
    int rc = quarry_get(c, id, 0, &d);
    if (rc) T_FAIL("row %s (version %llu) missing: %s", id, (unsigned long long)version,
                   quarry_errmsg());
    tdb_text(key, version, text, sizeof text);
    snprintf(meta, sizeof meta, "{\"v\":%llu,\"g\":\"g%llu\"}", (unsigned long long)version,
             (unsigned long long)(key % 7));
    size_t len;
    const char *t = quarry_doc_text(d, &len);
    if (!t || len != strlen(text) || memcmp(t, text, len))
        T_FAIL("row %s: text '%s', want '%s'", id, t ? t : "(null)", text);
    const char *m = quarry_doc_metadata(d, &len);
    if (!m || strcmp(m, meta)) T_FAIL("row %s: metadata '%s', want '%s'", id, m ? m : "", meta);
    if (dim) {
        uint32_t got_dim;
        const float *v = quarry_doc_vector(d, &got_dim);
        float want[4096];
        T_ASSERT(dim <= 4096);
        tdb_vector(key, version, dim, want);
        if (!v || got_dim != dim || memcmp(v, want, dim * sizeof(float)))
            T_FAIL("row %s: vector differs from version %llu", id, (unsigned long long)version);
    }
    quarry_doc_free(d);
}
