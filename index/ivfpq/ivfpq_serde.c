/* SPDX-License-Identifier: MIT */
/*
 * ivfpq_serde.c -- the IVF-PQ index as bytes (a checkpoint section).
 *
 * Layout, little-endian (version 1):
 *   0   4  magic "QIVP"
 *   4   4  version (1)
 *   8   4  metric (flat_metric)
 *  12   4  dim
 *  16   4  nlist
 *  20   4  m
 *  24   4  trained (0 or 1); an untrained index ends here
 *  28   4  reserved (0)
 *  32   8  rows in the lists
 *  40      centroids: nlist * dim float32
 *          codebooks: 256 * dim float32 (sub-quantiser j's at 256 * (j*dim/m))
 *          nlist lists: u32 n, n u32 row ids, ceil(n/8) * 8 * m code bytes
 *          (the grouped layout of ivfpq.h; padding rows are zero)
 * The precomputed L2 tables are derived data and recomputed on load. The
 * checkpoint file around the section carries the checksum.
 */
#include <math.h>

#include "ivfpq_int.h"

#define SERDE_MAGIC 0x50564951u /* "QIVP" */
#define SERDE_VERSION 1u
#define HDR 40

static size_t group_bytes(const ivfpq *ix, uint32_t n) {
    return (size_t)((n + IVFPQ_GROUP - 1) / IVFPQ_GROUP) * IVFPQ_GROUP * ix->cfg.m;
}

int ivfpq_serialize(const ivfpq *ix, uint8_t **buf, size_t *len) {
    size_t dim = ix->cfg.dim, nl = ix->cfg.nlist;
    size_t n = HDR;
    if (ix->trained) {
        n += (nl + IVFPQ_KSUB) * dim * 4;
        for (size_t l = 0; l < nl; l++)
            n += 4 + (size_t)ix->lists[l].n * 4 + group_bytes(ix, ix->lists[l].n);
    }
    uint8_t *b = q_malloc(n), *p = b;
    if (!b) return q_err(QUARRY_NOMEM, "out of memory (IVF-PQ checkpoint)");
    put_u32(p, SERDE_MAGIC);
    put_u32(p + 4, SERDE_VERSION);
    put_u32(p + 8, (uint32_t)ix->cfg.metric);
    put_u32(p + 12, ix->cfg.dim);
    put_u32(p + 16, ix->cfg.nlist);
    put_u32(p + 20, ix->cfg.m);
    put_u32(p + 24, (uint32_t)ix->trained);
    put_u32(p + 28, 0);
    put_u64(p + 32, ix->trained ? ix->nrows : 0);
    p += HDR;
    if (ix->trained) {
        for (size_t i = 0; i < nl * dim; i++, p += 4) {
            uint32_t u;
            memcpy(&u, &ix->cent[i], 4);
            put_u32(p, u);
        }
        for (size_t i = 0; i < IVFPQ_KSUB * dim; i++, p += 4) {
            uint32_t u;
            memcpy(&u, &ix->books[i], 4);
            put_u32(p, u);
        }
        for (size_t l = 0; l < nl; l++) {
            const ivf_list *L = &ix->lists[l];
            put_u32(p, L->n);
            p += 4;
            for (uint32_t i = 0; i < L->n; i++, p += 4) put_u32(p, L->ids[i]);
            size_t gb = group_bytes(ix, L->n);
            if (gb) memcpy(p, L->codes, gb);
            p += gb;
        }
    }
    *buf = b;
    *len = n;
    return 0;
}

static int corrupt(ivfpq *ix, const char *what) {
    ivf_reset(ix);
    return q_err(QUARRY_CORRUPT, "IVF-PQ index: %s", what);
}

/* Read n little-endian floats; all must be finite. */
static int read_floats(const uint8_t *p, size_t n, float *out) {
    for (size_t i = 0; i < n; i++, p += 4) {
        uint32_t u = get_u32(p);
        memcpy(&out[i], &u, 4);
        if (!isfinite(out[i])) return -1;
    }
    return 0;
}

int ivfpq_load(const ivfpq_config *base, const uint8_t *buf, size_t len, uint32_t max_rows,
               ivfpq **out) {
    *out = NULL;
    if (len < HDR || get_u32(buf) != SERDE_MAGIC)
        return q_err(QUARRY_CORRUPT, "IVF-PQ index: bad header");
    ivfpq_config cfg = *base;
    cfg.nlist = get_u32(buf + 16);
    cfg.m = get_u32(buf + 20);
    if (get_u32(buf + 8) != (uint32_t)base->metric || get_u32(buf + 12) != base->dim)
        return q_err(QUARRY_CORRUPT, "IVF-PQ index: metric or dimension differs");
    ivfpq *ix;
    int rc = ivfpq_new(&cfg, &ix);
    if (rc) return rc == QUARRY_NOMEM ? rc : q_err(QUARRY_CORRUPT, "IVF-PQ index: bad parameters");
    if ((rc = ivfpq_deserialize(ix, buf, len, max_rows))) {
        ivfpq_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

int ivfpq_deserialize(ivfpq *ix, const uint8_t *buf, size_t len, uint32_t max_rows) {
    ivf_reset(ix);
    if (len < HDR) return corrupt(ix, "truncated header");
    if (get_u32(buf) != SERDE_MAGIC) return corrupt(ix, "bad magic");
    if (get_u32(buf + 4) != SERDE_VERSION) return corrupt(ix, "unknown version");
    if (get_u32(buf + 8) != (uint32_t)ix->cfg.metric || get_u32(buf + 12) != ix->cfg.dim ||
        get_u32(buf + 16) != ix->cfg.nlist || get_u32(buf + 20) != ix->cfg.m)
        return corrupt(ix, "configuration differs from the collection's");
    uint32_t trained = get_u32(buf + 24);
    uint64_t nrows = get_u64(buf + 32);
    if (trained > 1 || get_u32(buf + 28) != 0) return corrupt(ix, "bad header flags");
    if (!trained) return len == HDR && nrows == 0 ? 0 : corrupt(ix, "untrained index with data");
    size_t dim = ix->cfg.dim, nl = ix->cfg.nlist, off = HDR;
    size_t fbytes = (nl + IVFPQ_KSUB) * dim * 4;
    if (len - off < fbytes) return corrupt(ix, "truncated centroids");
    if (ivf_alloc_trained(ix)) return QUARRY_NOMEM;
    if (read_floats(buf + off, nl * dim, ix->cent) ||
        read_floats(buf + off + nl * dim * 4, IVFPQ_KSUB * dim, ix->books))
        return corrupt(ix, "non-finite centroid");
    off += fbytes;
    uint64_t total = 0;
    for (size_t l = 0; l < nl; l++) {
        if (len - off < 4) return corrupt(ix, "truncated list");
        uint32_t n = get_u32(buf + off);
        off += 4;
        /* bound n by the bytes left before allocating anything */
        if (n > (len - off) / 4 || group_bytes(ix, n) > len - off - (size_t)n * 4)
            return corrupt(ix, "list longer than the data");
        ivf_list *L = &ix->lists[l];
        if (n && ivf_list_grow(ix, L, n)) {
            ivf_reset(ix);
            return QUARRY_NOMEM;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t r = get_u32(buf + off + (size_t)i * 4);
            if (r >= max_rows) return corrupt(ix, "row id out of range");
            L->ids[i] = r;
        }
        off += (size_t)n * 4;
        size_t gb = group_bytes(ix, n);
        if (gb) memcpy(L->codes, buf + off, gb);
        off += gb;
        L->n = n;
        total += n;
    }
    if (off != len) return corrupt(ix, "trailing bytes");
    if (total != nrows) return corrupt(ix, "row count mismatch");
    ix->nrows = (size_t)total;
    ivfpq_shrink(ix);
    if (ivf_precompute(ix)) {
        ivf_reset(ix);
        return QUARRY_NOMEM;
    }
    ix->trained = 1;
    return 0;
}
