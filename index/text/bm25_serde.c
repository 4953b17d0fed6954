/* SPDX-License-Identifier: MIT */
/*
 * bm25_serde.c -- the index to and from bytes.
 *
 * Format, little-endian:
 *   header (64 bytes)
 *     u32 magic "QBM1"   u32 version (1)
 *     u64 analyzer fingerprint (text_analyzer_fingerprint)
 *     u32 flags (bit 0: positions stored)
 *     u32 nrows          -- rows are < nrows; the next add needs row >= nrows
 *     u32 nterms         -- terms with at least one posting, in id order
 *     u32 zero
 *     u64 live rows      u64 sum of live lengths
 *     u64 deleted rows   u64 postings
 *   nrows LEB128 document lengths (0 = no terms)
 *   (nrows + 63) / 64 u64 words: the deletion bitmap
 *   per term
 *     u8 length (1..255), the term bytes
 *     u32 postings       u32 df (live rows)
 *     u32 data bytes, then the sealed blocks exactly as in memory
 *         (postings / 128 blocks, see text_int.h)
 *     postings % 128 tail postings: LEB128 (row - previous row - 1),
 *         LEB128 (tf - 1)
 *     u64 position bytes, then the position stream (0 without positions)
 *   u64 XXH3-64 of every byte before it
 *
 * Not stored, rebuilt on load: the hash table, block descriptors, impacts
 * and the forward index (all derived from the postings), k1 and b.
 *
 * Reading treats the bytes as hostile. The checksum only catches accidents;
 * every field is still checked: counts against the bytes left before
 * anything is allocated, varints bounded, bit widths <= 32, rows strictly
 * increasing and < nrows, rows with postings have a length, tf >= 1, the
 * tfs of a row sum to its length, positions strictly increasing and the
 * position stream consumed exactly, no duplicate terms, df and every header
 * statistic equal to a recount, deletions only on rows with terms, and the
 * buffer consumed exactly. Any failure leaves the index empty.
 */
#include <xxhash.h>

#include "text_int.h"

#include "common/qbuf.h"

#define BM25_MAGIC   0x314D4251u /* "QBM1" */
#define BM25_VERSION 1u
#define HDR          64

/* ---------------------------------------------------------------- writing */

static void wb_var(wbuf *w, uint64_t v) {
    uint8_t tmp[10];
    size_t k = bm25_varint_put(tmp, v);
    uint8_t *p = wb_room(w, k);
    if (p) memcpy(p, tmp, k);
}

int bm25_serialize(const bm25 *x, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    wbuf w = {0};
    uint32_t nterms = 0;
    for (uint32_t i = 0; i < x->nterms; i++) nterms += bm25_npost(&x->terms[i]) > 0;
    wb_u32(&w, BM25_MAGIC);
    wb_u32(&w, BM25_VERSION);
    wb_u64(&w, text_analyzer_fingerprint(x->an));
    wb_u32(&w, x->positions ? 1u : 0u);
    wb_u32(&w, x->nrows);
    wb_u32(&w, nterms);
    wb_u32(&w, 0);
    wb_u64(&w, x->live);
    wb_u64(&w, x->sum_dl);
    wb_u64(&w, x->ndead);
    wb_u64(&w, x->npost);
    for (uint32_t r = 0; r < x->nrows; r++) wb_var(&w, x->dl[r]);
    for (uint32_t i = 0; i < (x->nrows + 63) / 64; i++) wb_u64(&w, x->dead[i]);
    for (uint32_t i = 0; i < x->nterms; i++) {
        const bm25_term *t = &x->terms[i];
        uint32_t np = bm25_npost(t);
        if (!np) continue;
        uint8_t *p = wb_room(&w, 1);
        if (p) *p = t->str_len;
        wb_bytes(&w, bm25_term_str(x, t), t->str_len);
        wb_u32(&w, np);
        wb_u32(&w, t->df);
        wb_u32(&w, t->data_len);
        wb_bytes(&w, t->data, t->data_len);
        uint32_t prev = t->nblocks ? t->blocks[t->nblocks - 1].last_row : UINT32_MAX;
        for (uint32_t j = 0; j < t->ntail; j++) {
            wb_var(&w, t->tail[j] - prev - 1);
            wb_var(&w, bm25_tail_tf(t)[j] - 1);
            prev = t->tail[j];
        }
        wb_u64(&w, t->pos_len);
        wb_bytes(&w, t->pos, (size_t)t->pos_len);
    }
    uint8_t *p = wb_room(&w, 8);
    if (w.err || !p) {
        q_free(w.b);
        return q_err(QUARRY_NOMEM, "bm25: serialize");
    }
    put_u64(p, XXH3_64bits(w.b, w.n - 8));
    *buf = w.b;
    *len = w.n;
    return 0;
}

/* ---------------------------------------------------------------- reading */

typedef struct rbuf {
    const uint8_t *p, *end;
} rbuf;

static size_t rb_left(const rbuf *r) { return (size_t)(r->end - r->p); }
static int rb_u32(rbuf *r, uint32_t *v) {
    if (rb_left(r) < 4) return 0;
    *v = get_u32(r->p);
    r->p += 4;
    return 1;
}
static int rb_u64(rbuf *r, uint64_t *v) {
    if (rb_left(r) < 8) return 0;
    *v = get_u64(r->p);
    r->p += 8;
    return 1;
}
static int rb_var(rbuf *r, uint64_t *v) {
    size_t k = bm25_varint_get(r->p, r->end, v);
    r->p += k;
    return k != 0;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        rc = q_err(QUARRY_CORRUPT, "bm25: " __VA_ARGS__);                                          \
        goto fail;                                                                                 \
    } while (0)

/* Account one posting (row, tf) of term tid. */
typedef struct acc {
    bm25 *x;
    uint64_t *tfsum;    /* per row */
    uint32_t *last_tid; /* per row, UINT32_MAX = none yet */
    uint64_t *fwdsz;    /* per row: forward entry bytes */
} acc;

static int posting(acc *a, uint32_t tid, uint64_t row, uint32_t tf, uint32_t *live) {
    bm25 *x = a->x;
    if (row >= x->nrows) return 0;
    uint32_t dl = x->dl[row];
    if (!dl || tf > dl || a->tfsum[row] + tf > dl) return 0;
    a->tfsum[row] += tf;
    uint32_t lt = a->last_tid[row];
    a->fwdsz[row] += bm25_varint_len(lt == UINT32_MAX ? tid : tid - lt);
    a->last_tid[row] = tid;
    *live += !bm25_is_dead(x, (uint32_t)row);
    return 1;
}

/* Validate tf positions for one posting; advances *p. */
static int positions_ok(const uint8_t **p, const uint8_t *end, uint32_t tf) {
    uint64_t pos = 0;
    for (uint32_t k = 0; k < tf; k++) {
        uint64_t g;
        size_t n = bm25_varint_get(*p, end, &g);
        if (!n || n > 5) return 0;
        if (k && g == 0) return 0;
        pos += g;
        if (pos >= UINT32_MAX) return 0;
        *p += n;
    }
    return 1;
}

int bm25_deserialize(bm25 *x, const uint8_t *buf, size_t len) {
    bm25_clear(x);
    int rc = 0;
    acc a = {.x = x};
    if (len < HDR + 8) BAD("%zu bytes is too short", len);
    if (XXH3_64bits(buf, len - 8) != get_u64(buf + len - 8)) BAD("checksum mismatch");
    if (get_u32(buf) != BM25_MAGIC) BAD("bad magic");
    if (get_u32(buf + 4) != BM25_VERSION) BAD("unsupported version %u", get_u32(buf + 4));
    if (get_u64(buf + 8) != text_analyzer_fingerprint(x->an)) {
        rc = q_err(QUARRY_MISMATCH, "bm25: the index was built with another analyzer");
        goto fail;
    }
    uint32_t flags = get_u32(buf + 16);
    if (flags > 1) BAD("unknown flags %#x", flags);
    if ((int)flags != x->positions) {
        rc = q_err(QUARRY_MISMATCH, "bm25: positions %s in the bytes but %s in the config",
                   flags ? "stored" : "absent", x->positions ? "on" : "off");
        goto fail;
    }
    uint32_t nrows = get_u32(buf + 20), nterms = get_u32(buf + 24);
    if (get_u32(buf + 28) != 0) BAD("reserved field set");
    uint64_t h_live = get_u64(buf + 32), h_sum = get_u64(buf + 40), h_dead = get_u64(buf + 48),
             h_post = get_u64(buf + 56);
    rbuf r = {buf + HDR, buf + len - 8};
    if (nrows > rb_left(&r)) BAD("%u rows in %zu bytes", nrows, rb_left(&r));
    if (nrows == UINT32_MAX) BAD("row count out of range");
    /* rows */
    if (nrows) {
        uint32_t cap = nrows;
        x->dl = q_malloc((size_t)cap * sizeof *x->dl);
        x->fwd = q_calloc((size_t)cap + 1, sizeof *x->fwd);
        x->dead = q_calloc(((size_t)cap + 63) / 64, sizeof *x->dead);
        a.tfsum = q_calloc(cap, sizeof *a.tfsum);
        a.last_tid = q_malloc((size_t)cap * sizeof *a.last_tid);
        a.fwdsz = q_calloc(cap, sizeof *a.fwdsz);
        if (!x->dl || !x->fwd || !x->dead || !a.tfsum || !a.last_tid || !a.fwdsz) {
            rc = q_err(QUARRY_NOMEM, "bm25: deserialize rows");
            goto fail;
        }
        x->cap_rows = cap;
        memset(a.last_tid, 0xff, (size_t)cap * sizeof *a.last_tid);
    }
    x->nrows = nrows;
    uint64_t live = 0, sum = 0, dead = 0;
    for (uint32_t i = 0; i < nrows; i++) {
        uint64_t v;
        if (!rb_var(&r, &v) || v > UINT32_MAX) BAD("bad length of row %u", i);
        x->dl[i] = (uint32_t)v;
    }
    size_t words = ((size_t)nrows + 63) / 64;
    if (rb_left(&r) / 8 < words) BAD("truncated deletion bitmap");
    for (size_t i = 0; i < words; i++) {
        rb_u64(&r, &x->dead[i]);
        if (nrows % 64 && i == words - 1 && (x->dead[i] >> (nrows % 64)))
            BAD("deletion bit beyond the last row");
    }
    for (uint32_t i = 0; i < nrows; i++) {
        int d = bm25_is_dead(x, i);
        if (d && !x->dl[i]) BAD("row %u deleted but has no terms", i);
        if (d) {
            dead++;
        } else if (x->dl[i]) {
            live++;
            sum += x->dl[i];
        }
    }
    if (live != h_live || sum != h_sum || dead != h_dead) BAD("row statistics do not match");
    if (nterms > rb_left(&r) / 22) BAD("%u terms in %zu bytes", nterms, rb_left(&r));
    float A, B;
    {
        double avg = live ? (double)sum / (double)live : 1.0;
        A = (float)(x->k1 * (1.0 - x->b));
        B = (float)(x->k1 * x->b / avg);
    }
    uint64_t npost = 0;
    for (uint32_t ti = 0; ti < nterms; ti++) {
        if (rb_left(&r) < 1) BAD("truncated term %u", ti);
        uint8_t slen = *r.p++;
        if (!slen || rb_left(&r) < slen) BAD("bad term %u", ti);
        const char *s = (const char *)r.p;
        r.p += slen;
        if (bm25_lookup(x, s, slen) >= 0) BAD("duplicate term %u", ti);
        uint32_t tid;
        rc = bm25_intern(x, s, slen, &tid);
        if (rc) goto fail;
        bm25_term *t = &x->terms[tid];
        uint32_t np, df, dlen;
        if (!rb_u32(&r, &np) || !rb_u32(&r, &df) || !rb_u32(&r, &dlen)) BAD("truncated term");
        if (!np || df > np) BAD("term %u: %u postings, df %u", ti, np, df);
        uint32_t nb = np / BM25_BLOCK, ntail = np % BM25_BLOCK;
        /* every block is at least 2 bytes; every tail posting at least 2 */
        if (dlen > rb_left(&r) || nb > dlen / 2 || (uint64_t)ntail * 2 > rb_left(&r) - dlen)
            BAD("term %u: sizes out of range", ti);
        if (nb) {
            t->data = q_malloc((size_t)dlen + BM25_PAD);
            t->blocks = q_malloc((size_t)nb * sizeof *t->blocks);
            if (!t->data || !t->blocks) {
                rc = q_err(QUARRY_NOMEM, "bm25: deserialize postings");
                goto fail;
            }
            memcpy(t->data, r.p, dlen);
            memset(t->data + dlen, 0, BM25_PAD);
            t->data_cap = dlen + BM25_PAD;
            t->cap_blocks = nb;
        } else if (dlen) {
            BAD("term %u: block bytes without blocks", ti);
        }
        r.p += dlen;
        t->data_len = dlen;
        uint32_t live_post = 0;
        uint64_t prev = UINT64_MAX; /* -1 */
        uint32_t off = 0;
        uint32_t rows[BM25_BLOCK], tfs[BM25_BLOCK];
        for (uint32_t bi = 0; bi < nb; bi++) {
            if (dlen - off < 2) BAD("term %u: truncated block", ti);
            unsigned bd = t->data[off], bt = t->data[off + 1];
            if (bd > 32 || bt > 32) BAD("term %u: bit width over 32", ti);
            size_t bytes = 2 + 16 * (size_t)bd + 16 * (size_t)bt;
            if (bytes > dlen - off) BAD("term %u: truncated block", ti);
            bm25_unpack(t->data + off + 2, bd, rows);
            bm25_unpack(t->data + off + 2 + 16 * bd, bt, tfs);
            bm25_block *b = &t->blocks[bi];
            memset(b, 0, sizeof *b);
            b->data_off = off;
            for (unsigned i = 0; i < BM25_BLOCK; i++) {
                uint64_t row = prev + (uint64_t)rows[i] + 1;
                if (tfs[i] == UINT32_MAX) BAD("term %u: tf out of range", ti);
                uint32_t tf = tfs[i] + 1;
                if (!posting(&a, tid, row, tf, &live_post)) BAD("term %u: bad posting", ti);
                bm25_imp_add(b->imp, &b->nimp, tf, x->dl[row], A, B);
                prev = row;
            }
            b->last_row = (uint32_t)prev;
            off += (uint32_t)bytes;
            t->nblocks++;
        }
        if (off != dlen) BAD("term %u: %u stray block bytes", ti, dlen - off);
        if (ntail) {
            t->tail = q_malloc(2 * (size_t)ntail * sizeof *t->tail);
            if (!t->tail) {
                rc = q_err(QUARRY_NOMEM, "bm25: deserialize postings");
                goto fail;
            }
            t->cap_tail = ntail;
        }
        for (uint32_t i = 0; i < ntail; i++) {
            uint64_t d, f;
            if (!rb_var(&r, &d) || !rb_var(&r, &f) || d > UINT32_MAX || f >= UINT32_MAX)
                BAD("term %u: bad tail posting", ti);
            uint64_t row = prev + d + 1;
            uint32_t tf = (uint32_t)f + 1;
            if (!posting(&a, tid, row, tf, &live_post)) BAD("term %u: bad posting", ti);
            t->tail[i] = (uint32_t)row;
            bm25_tail_tf(t)[i] = tf;
            t->ntail++;
            bm25_imp_add(t->tail_imp, &t->ntail_imp, tf, x->dl[row], A, B);
            prev = row;
        }
        if (live_post != df) BAD("term %u: df %u, %u live postings", ti, df, live_post);
        t->df = df;
        npost += np;
        uint64_t plen;
        if (!rb_u64(&r, &plen) || plen > rb_left(&r)) BAD("term %u: bad position length", ti);
        if (!x->positions && plen) BAD("term %u: positions in an index without", ti);
        if (x->positions) {
            if (plen < np) BAD("term %u: position stream too short", ti);
            t->pos = q_malloc((size_t)plen ? (size_t)plen : 1);
            if (!t->pos) {
                rc = q_err(QUARRY_NOMEM, "bm25: deserialize positions");
                goto fail;
            }
            memcpy(t->pos, r.p, (size_t)plen);
            t->pos_cap = t->pos_len = plen;
            const uint8_t *pp = t->pos, *pe = t->pos + plen;
            for (uint32_t bi = 0; bi <= nb; bi++) {
                uint32_t cnt = bi < nb ? BM25_BLOCK : ntail;
                if (bi < nb) {
                    t->blocks[bi].pos_off = (uint64_t)(pp - t->pos);
                    bm25_block_decode_tf(t, bi, tfs);
                } else {
                    t->tail_pos_off = (uint64_t)(pp - t->pos);
                    if (ntail) memcpy(tfs, bm25_tail_tf(t), ntail * sizeof *tfs);
                }
                for (uint32_t i = 0; i < cnt; i++)
                    if (!positions_ok(&pp, pe, tfs[i])) BAD("term %u: bad positions", ti);
            }
            if (pp != pe) BAD("term %u: stray position bytes", ti);
            r.p += plen;
        }
    }
    if (npost != h_post) BAD("posting count does not match");
    if (r.p != r.end) BAD("%zu trailing bytes", rb_left(&r));
    /* lengths are the tf sums */
    for (uint32_t i = 0; i < nrows; i++)
        if (a.tfsum[i] != x->dl[i])
            BAD("row %u: length %u, tf sum %llu", i, x->dl[i], (unsigned long long)a.tfsum[i]);
    x->live = live;
    x->sum_dl = sum;
    x->ndead = dead;
    x->npost = npost;
    /* forward index: one pass over the postings in term order */
    if (nrows) {
        uint64_t total = 0;
        for (uint32_t i = 0; i < nrows; i++) {
            x->fwd[i] = total;
            total += a.fwdsz[i];
        }
        x->fwd[nrows] = total;
        if (total) {
            x->fwd_bytes = q_malloc((size_t)total);
            if (!x->fwd_bytes) {
                rc = q_err(QUARRY_NOMEM, "bm25: deserialize forward index");
                goto fail;
            }
            x->fwd_cap = (size_t)total;
        }
        x->fwd_len = (size_t)total;
        uint64_t *wpos = a.tfsum; /* reuse: write cursor per row */
        for (uint32_t i = 0; i < nrows; i++) wpos[i] = x->fwd[i];
        memset(a.last_tid, 0xff, (size_t)nrows * sizeof *a.last_tid);
        uint32_t rows[BM25_BLOCK];
        for (uint32_t tid = 0; tid < x->nterms; tid++) {
            const bm25_term *t = &x->terms[tid];
            for (uint32_t bi = 0; bi <= t->nblocks; bi++) {
                const uint32_t *rs = rows;
                uint32_t cnt = BM25_BLOCK;
                if (bi < t->nblocks) {
                    bm25_block_decode(t, bi, rows, NULL);
                } else {
                    rs = t->tail;
                    cnt = t->ntail;
                }
                for (uint32_t i = 0; i < cnt; i++) {
                    uint32_t row = rs[i], lt = a.last_tid[row];
                    wpos[row] += bm25_varint_put(x->fwd_bytes + wpos[row],
                                                 lt == UINT32_MAX ? tid : tid - lt);
                    a.last_tid[row] = tid;
                }
            }
        }
    }
    q_free(a.tfsum);
    q_free(a.last_tid);
    q_free(a.fwdsz);
    bm25_shrink(x); /* the dictionary arrays grew by doubling */
    return 0;
fail:
    q_free(a.tfsum);
    q_free(a.last_tid);
    q_free(a.fwdsz);
    bm25_clear(x);
    return rc;
}
