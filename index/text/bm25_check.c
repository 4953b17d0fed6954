/* SPDX-License-Identifier: MIT */
/*
 * bm25_check.c -- every invariant of the in-memory index, recomputed from
 * scratch (tests and debugging; O(index size)).
 *
 *  - dictionary: each term is found under its own bytes, the table holds
 *    exactly nterms entries, term bytes are 1..255 bytes;
 *  - postings: rows strictly increasing and < nrows, every row with a
 *    posting has a length, tf >= 1, block descriptors agree with the packed
 *    data (contiguous offsets, last row, bit widths <= 32);
 *  - impacts: every posting is dominated by one of its block's (or the
 *    tail's) impacts;
 *  - positions: per posting tf strictly increasing positions, blocks' and
 *    the tail's offsets where the stream says, the stream consumed exactly;
 *  - rows: the tfs of a row sum to its length; deletions only on rows with
 *    terms and below nrows;
 *  - statistics: df per term, N, the length sum, the deleted count and the
 *    posting count equal a recount;
 *  - forward index: per row the term ids are strictly increasing and are
 *    exactly the terms with a posting for the row (count and id sum).
 */
#include <stdarg.h>
#include <stdio.h>

#include "text_int.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(msg, msg_cap, __VA_ARGS__);                                                       \
        rc = q_err(QUARRY_CORRUPT, "bm25_check: %s", msg);                                         \
        goto out;                                                                                  \
    } while (0)

static int dominated(const bm25_impact *imp, unsigned n, uint32_t tf, uint32_t dl) {
    for (unsigned i = 0; i < n; i++)
        if (imp[i].tf >= tf && imp[i].dl <= dl) return 1;
    return 0;
}

int bm25_check(const bm25 *x, char *msg, size_t msg_cap) {
    char dummy[8];
    if (!msg || !msg_cap) {
        msg = dummy;
        msg_cap = sizeof dummy;
    }
    msg[0] = 0;
    int rc = 0;
    uint32_t nr = x->nrows;
    uint64_t *tfsum = q_calloc(nr ? nr : 1, sizeof *tfsum);
    uint64_t *cnt = q_calloc(nr ? nr : 1, sizeof *cnt);
    uint64_t *idsum = q_calloc(nr ? nr : 1, sizeof *idsum);
    if (!tfsum || !cnt || !idsum) {
        q_free(tfsum);
        q_free(cnt);
        q_free(idsum);
        return q_err(QUARRY_NOMEM, "bm25_check");
    }
    /* dictionary */
    uint64_t used = 0;
    if (x->table)
        for (uint32_t i = 0; i <= x->table_mask; i++) {
            const struct bm25_slot *e = &x->table[i];
            if (!e->id1) continue;
            used++;
            if (e->id1 > x->nterms || e->str_off != x->terms[e->id1 - 1].str_off ||
                e->len != x->terms[e->id1 - 1].str_len)
                FAIL("table slot %u disagrees with term %u", i, e->id1 - 1);
        }
    if (used != x->nterms)
        FAIL("table holds %llu entries for %u terms", (unsigned long long)used, x->nterms);
    uint64_t npost = 0;
    for (uint32_t tid = 0; tid < x->nterms; tid++) {
        const bm25_term *t = &x->terms[tid];
        if (!t->str_len || t->str_off + (size_t)t->str_len >= x->strs_len + 1)
            FAIL("term %u: bad string", tid);
        if (bm25_lookup(x, bm25_term_str(x, t), t->str_len) != (int64_t)tid)
            FAIL("term %u: not found under its bytes", tid);
        if (t->ntail >= BM25_BLOCK || t->ntail > t->cap_tail) FAIL("term %u: tail size", tid);
        if (t->ntail_imp > BM25_IMP) FAIL("term %u: impacts", tid);
        uint64_t prev = UINT64_MAX;
        uint32_t live = 0, off = 0;
        const uint8_t *pp = t->pos, *pe = t->pos ? t->pos + t->pos_len : NULL;
        if (!x->positions && t->pos_len) FAIL("term %u: positions without positions", tid);
        uint32_t rows[BM25_BLOCK], tfs[BM25_BLOCK];
        for (uint32_t bi = 0; bi <= t->nblocks; bi++) {
            uint32_t n;
            const bm25_impact *imp;
            unsigned nimp;
            if (bi < t->nblocks) {
                const bm25_block *b = &t->blocks[bi];
                if (b->data_off != off) FAIL("term %u block %u: data offset", tid, bi);
                if (t->data_len - off < 2) FAIL("term %u block %u: truncated", tid, bi);
                if (t->data[off] > 32 || t->data[off + 1] > 32)
                    FAIL("term %u block %u: bit width", tid, bi);
                size_t bytes = bm25_block_bytes(t, bi);
                if (bytes > t->data_len - off) FAIL("term %u block %u: truncated", tid, bi);
                if (t->data_len + (size_t)BM25_PAD > t->data_cap) FAIL("term %u: no padding", tid);
                off += (uint32_t)bytes;
                bm25_block_decode(t, bi, rows, tfs);
                if (b->last_row != rows[BM25_BLOCK - 1])
                    FAIL("term %u block %u: last row", tid, bi);
                if (b->nimp > BM25_IMP) FAIL("term %u block %u: impacts", tid, bi);
                if (x->positions && b->pos_off != (uint64_t)(pp - t->pos))
                    FAIL("term %u block %u: position offset", tid, bi);
                n = BM25_BLOCK;
                imp = b->imp;
                nimp = b->nimp;
            } else {
                n = t->ntail;
                if (n) {
                    memcpy(rows, t->tail, n * sizeof *rows);
                    memcpy(tfs, bm25_tail_tf(t), n * sizeof *tfs);
                }
                if (x->positions && t->tail_pos_off != (uint64_t)(pp - t->pos))
                    FAIL("term %u: tail position offset", tid);
                imp = t->tail_imp;
                nimp = t->ntail_imp;
            }
            for (uint32_t i = 0; i < n; i++) {
                uint64_t row = rows[i];
                if (prev != UINT64_MAX && row <= prev) FAIL("term %u: rows not increasing", tid);
                if (row >= nr)
                    FAIL("term %u: row %llu beyond %u", tid, (unsigned long long)row, nr);
                uint32_t dl = x->dl[row];
                if (!dl || tfs[i] == 0 || tfs[i] > dl)
                    FAIL("term %u row %llu: tf %u, length %u", tid, (unsigned long long)row, tfs[i],
                         dl);
                if (!dominated(imp, nimp, tfs[i], dl))
                    FAIL("term %u row %llu: (tf %u, dl %u) above the bounds", tid,
                         (unsigned long long)row, tfs[i], dl);
                tfsum[row] += tfs[i];
                cnt[row]++;
                idsum[row] += tid;
                live += !bm25_is_dead(x, (uint32_t)row);
                if (x->positions) {
                    uint64_t pos = 0;
                    for (uint32_t k = 0; k < tfs[i]; k++) {
                        uint64_t g;
                        size_t m = bm25_varint_get(pp, pe, &g);
                        if (!m || (k && !g))
                            FAIL("term %u row %llu: positions", tid, (unsigned long long)row);
                        pos += g;
                        if (pos >= UINT32_MAX) FAIL("term %u: position overflow", tid);
                        pp += m;
                    }
                }
                prev = row;
            }
        }
        if (off != t->data_len) FAIL("term %u: stray block bytes", tid);
        if (x->positions && pp != pe) FAIL("term %u: stray position bytes", tid);
        if (live != t->df) FAIL("term %u: df %u, %u live postings", tid, t->df, live);
        npost += bm25_npost(t);
    }
    if (npost != x->npost)
        FAIL("posting count %llu, recount %llu", (unsigned long long)x->npost,
             (unsigned long long)npost);
    /* rows */
    uint64_t live = 0, sum = 0, dead = 0;
    if (nr && x->fwd[0] != 0) FAIL("forward index does not start at 0");
    for (uint32_t r = 0; r < nr; r++) {
        if (tfsum[r] != x->dl[r])
            FAIL("row %u: length %u, tf sum %llu", r, x->dl[r], (unsigned long long)tfsum[r]);
        int d = bm25_is_dead(x, r);
        if (d && !x->dl[r]) FAIL("row %u: deleted without terms", r);
        if (d)
            dead++;
        else if (x->dl[r]) {
            live++;
            sum += x->dl[r];
        }
        if (x->fwd[r + 1] < x->fwd[r] || x->fwd[r + 1] > x->fwd_len)
            FAIL("row %u: forward offsets", r);
        const uint8_t *p = x->fwd_bytes + x->fwd[r], *e = x->fwd_bytes + x->fwd[r + 1];
        uint64_t c = 0, s = 0, tid = 0;
        while (p < e) {
            uint64_t v;
            size_t m = bm25_varint_get(p, e, &v);
            if (!m || (c && !v)) FAIL("row %u: forward entry", r);
            tid = c ? tid + v : v;
            if (tid >= x->nterms) FAIL("row %u: forward term out of range", r);
            c++;
            s += tid;
            p += m;
        }
        if (c != cnt[r] || s != idsum[r]) FAIL("row %u: forward entry disagrees with postings", r);
    }
    if (nr && x->fwd[nr] != x->fwd_len) FAIL("forward index length");
    for (uint64_t r = nr; r < ((uint64_t)nr + 63) / 64 * 64; r++)
        if (bm25_is_dead(x, (uint32_t)r)) FAIL("deletion bit beyond the last row");
    if (live != x->live || sum != x->sum_dl || dead != x->ndead)
        FAIL("statistics N %llu sum %llu deleted %llu, recount %llu %llu %llu",
             (unsigned long long)x->live, (unsigned long long)x->sum_dl,
             (unsigned long long)x->ndead, (unsigned long long)live, (unsigned long long)sum,
             (unsigned long long)dead);
out:
    q_free(tfsum);
    q_free(cnt);
    q_free(idsum);
    return rc;
}
