/* SPDX-License-Identifier: MIT */
/*
 * bm25.c -- the inverted index: dictionary, appends, deletes, statistics.
 *
 * Dictionary: an open-addressing hash table (XXH3 of the term bytes, linear
 * probing, load <= 1/2) from term to a dense term id; term bytes live in one
 * arena. Terms are never removed (a term whose df falls to 0 stays until
 * the host rebuilds); a rebuild or deserialisation drops them.
 *
 * Appends: rows arrive in increasing order, so a row's postings go to the end
 * of each of its terms' lists: into the uncompressed tail, which is
 * bit-packed into a sealed block when it reaches 128 postings (see
 * text_int.h). An add first reserves every byte it could need and only then
 * writes, so a failed allocation leaves the index as it was.
 *
 * Deletes and statistics (a departure from Lucene). Lucene counts deleted
 * documents in docCount, docFreq and sumTotalTermFreq until their segment
 * is merged, so scores drift with the deletion history. We keep exact live
 * statistics instead: every row keeps its sorted term ids (the forward
 * index, LEB128 gaps) so a delete can decrement each term's df, N and the
 * length sum at once; the row's postings stay in the lists, skipped through
 * the deletion bitmap, until a rebuild. A search therefore scores exactly as
 * a fresh index of the live rows would.
 *
 * Document length: the exact number of terms the analyzer emitted for the
 * row (stop words excluded, every CJK gram counted; Lucene's
 * discountOverlaps has nothing to discount: we never stack tokens), kept as
 * a uint32. Lucene stores a 1-byte lossy norm (SmallFloat.intToByte4),
 * exact only up to about 40 terms, so its scores for longer documents
 * differ slightly from ours.
 */
#include <math.h>
#include <stdlib.h>

#include <xxhash.h>

#include "text_int.h"

/* ------------------------------------------------------------------ config */

void bm25_config_default(bm25_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->k1 = BM25_DEFAULT_K1;
    cfg->b = BM25_DEFAULT_B;
}

static int check_params(float k1, float b) {
    if (!(k1 >= 0.0f) || !isfinite(k1) || !(b >= 0.0f && b <= 1.0f))
        return q_err(QUARRY_INVALID, "bm25: k1 must be >= 0 and finite, b in [0, 1]");
    return 0;
}

int bm25_new(const bm25_config *cfg, bm25 **out) {
    *out = NULL;
    bm25_config def;
    if (!cfg) {
        bm25_config_default(&def);
        cfg = &def;
    }
    int rc = check_params(cfg->k1, cfg->b);
    if (rc) return rc;
    bm25 *x = q_calloc(1, sizeof *x);
    if (!x) return q_err(QUARRY_NOMEM, "bm25");
    x->k1 = cfg->k1;
    x->b = cfg->b;
    x->positions = !cfg->no_positions;
    rc = text_analyzer_new(&cfg->analyzer, &x->an);
    if (rc) {
        q_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

static void free_content(bm25 *x) {
    for (uint32_t i = 0; i < x->nterms; i++) {
        bm25_term *t = &x->terms[i];
        q_free(t->data);
        q_free(t->pos);
        q_free(t->blocks);
        q_free(t->tail);
    }
    q_free(x->terms);
    q_free(x->strs);
    q_free(x->table);
    q_free(x->dl);
    q_free(x->dead);
    q_free(x->fwd);
    q_free(x->fwd_bytes);
    x->terms = NULL;
    x->strs = NULL;
    x->table = NULL;
    x->dl = NULL;
    x->dead = NULL;
    x->fwd = NULL;
    x->fwd_bytes = NULL;
    x->nterms = x->cap_terms = 0;
    x->strs_len = x->strs_cap = 0;
    x->table_mask = 0;
    x->nrows = x->cap_rows = 0;
    x->fwd_len = x->fwd_cap = 0;
    x->live = x->sum_dl = x->ndead = x->npost = 0;
}

void bm25_clear(bm25 *x) { free_content(x); }

void bm25_free(bm25 *x) {
    if (!x) return;
    free_content(x);
    text_analyzer_free(x->an);
    q_free(x);
}

int bm25_set_params(bm25 *x, float k1, float b) {
    int rc = check_params(k1, b);
    if (rc) return rc;
    x->k1 = k1;
    x->b = b;
    return 0;
}

const text_analyzer *bm25_analyzer(const bm25 *x) { return x->an; }

void bm25_ab(const bm25 *x, float *A, float *B) {
    double avgdl = x->live ? (double)x->sum_dl / (double)x->live : 1.0;
    *A = (float)(x->k1 * (1.0 - x->b));
    *B = (float)(x->k1 * x->b / avgdl);
}

/* ----------------------------------------------------------------- impacts */

void bm25_imp_add(bm25_impact *s, uint8_t *n, uint32_t tf, uint32_t dl, float A, float B) {
    unsigned m = *n;
    for (unsigned i = 0; i < m; i++)
        if (s[i].tf >= tf && s[i].dl <= dl) return; /* dominated */
    unsigned j = 0;
    for (unsigned i = 0; i < m; i++)
        if (!(tf >= s[i].tf && dl <= s[i].dl)) s[j++] = s[i];
    m = j;
    /* Insert in tf order (the frontier is sorted by tf and by dl). */
    bm25_impact tmp[BM25_IMP + 1];
    unsigned o = 0, i = 0;
    while (i < m && s[i].tf < tf) tmp[o++] = s[i++];
    tmp[o].tf = tf;
    tmp[o++].dl = dl;
    while (i < m) tmp[o++] = s[i++];
    if (o > BM25_IMP) {
        /* Merge the neighbours whose union (tf_b, dl_a) loosens the bound least. */
        unsigned best = 0;
        float best_loss = INFINITY;
        for (unsigned a = 0; a + 1 < o; a++) {
            float fa = bm25_tf_factor((float)tmp[a].tf, (float)tmp[a].dl, A, B);
            float fb = bm25_tf_factor((float)tmp[a + 1].tf, (float)tmp[a + 1].dl, A, B);
            float fm = bm25_tf_factor((float)tmp[a + 1].tf, (float)tmp[a].dl, A, B);
            float loss = fm - (fa > fb ? fa : fb);
            if (loss < best_loss) {
                best_loss = loss;
                best = a;
            }
        }
        tmp[best].tf = tmp[best + 1].tf;
        for (unsigned a = best + 1; a + 1 < o; a++) tmp[a] = tmp[a + 1];
        o--;
    }
    memcpy(s, tmp, o * sizeof *s);
    *n = (uint8_t)o;
}

/* -------------------------------------------------------------- dictionary */

static uint32_t term_hash(const char *s, size_t n) { return (uint32_t)XXH3_64bits(s, n); }

int64_t bm25_lookup(const bm25 *x, const char *s, size_t n) {
    if (!x->table || n == 0 || n > TEXT_MAX_TERM) return -1;
    uint32_t h = term_hash(s, n);
    for (uint32_t i = h & x->table_mask;; i = (i + 1) & x->table_mask) {
        const struct bm25_slot *e = &x->table[i];
        if (!e->id1) return -1;
        if (e->hash == h && e->len == n && memcmp(x->strs + e->str_off, s, n) == 0)
            return e->id1 - 1;
    }
}

static int table_grow(bm25 *x) {
    uint32_t cap = x->table ? (x->table_mask + 1) * 2 : 1024;
    if (cap == 0 || cap > (1u << 31)) return q_err(QUARRY_FULL, "bm25: too many terms");
    struct bm25_slot *tb = q_calloc(cap, sizeof *tb);
    if (!tb) return q_err(QUARRY_NOMEM, "bm25: term table");
    uint32_t mask = cap - 1;
    if (x->table)
        for (uint32_t i = 0; i <= x->table_mask; i++) {
            if (!x->table[i].id1) continue;
            uint32_t j = x->table[i].hash & mask;
            while (tb[j].id1) j = (j + 1) & mask;
            tb[j] = x->table[i];
        }
    q_free(x->table);
    x->table = tb;
    x->table_mask = mask;
    return 0;
}

/* Find or create; *id = term id. */
int bm25_intern(bm25 *x, const char *s, size_t n, uint32_t *id) {
    int64_t f = bm25_lookup(x, s, n);
    if (f >= 0) {
        *id = (uint32_t)f;
        return 0;
    }
    if (!x->table || (uint64_t)(x->nterms + 1) * 2 > (uint64_t)x->table_mask + 1) {
        int rc = table_grow(x);
        if (rc) return rc;
    }
    if (x->nterms >= UINT32_MAX - 2) return q_err(QUARRY_FULL, "bm25: too many terms");
    if (x->nterms == x->cap_terms) {
        uint32_t c = x->cap_terms ? x->cap_terms * 2 : 256;
        if (c < x->cap_terms) return q_err(QUARRY_FULL, "bm25: too many terms");
        bm25_term *p = q_realloc(x->terms, (size_t)c * sizeof *p);
        if (!p) return q_err(QUARRY_NOMEM, "bm25: terms");
        x->terms = p;
        x->cap_terms = c;
    }
    if (x->strs_len + n + 1 > x->strs_cap) {
        size_t c = x->strs_cap ? x->strs_cap * 2 : 4096;
        while (c < x->strs_len + n + 1) c *= 2;
        if (c > UINT32_MAX) return q_err(QUARRY_FULL, "bm25: dictionary over 4 GiB");
        char *p = q_realloc(x->strs, c);
        if (!p) return q_err(QUARRY_NOMEM, "bm25: dictionary");
        x->strs = p;
        x->strs_cap = c;
    }
    uint32_t tid = x->nterms++;
    bm25_term *t = &x->terms[tid];
    memset(t, 0, sizeof *t);
    t->str_off = (uint32_t)x->strs_len;
    t->str_len = (uint8_t)n;
    memcpy(x->strs + x->strs_len, s, n);
    x->strs[x->strs_len + n] = 0;
    x->strs_len += n + 1;
    uint32_t h = term_hash(s, n);
    uint32_t j = h & x->table_mask;
    while (x->table[j].id1) j = (j + 1) & x->table_mask;
    x->table[j] = (struct bm25_slot){h, tid + 1, t->str_off, (uint32_t)n};
    *id = tid;
    return 0;
}

/* ------------------------------------------------------------------ prepare */

static int doc_term(void *ctx, const char *term, size_t len, uint32_t pos) {
    bm25_doc *d = ctx;
    if (len == 0 || len > TEXT_MAX_TERM) return 0;
    if (d->ntoks == d->cap_toks) {
        size_t c = d->cap_toks ? 2 * d->cap_toks : 64;
        struct bm25_tok *p = q_realloc(d->toks, c * sizeof *p);
        if (!p) return QUARRY_NOMEM;
        d->toks = p;
        d->cap_toks = c;
    }
    size_t need = d->nbytes + len;
    if (need > UINT32_MAX) return q_err(QUARRY_INVALID, "bm25: text too long");
    if (need > d->cap_bytes) {
        size_t c = d->cap_bytes ? 2 * d->cap_bytes : 512;
        while (c < need) c *= 2;
        char *p = q_realloc(d->bytes, c);
        if (!p) return QUARRY_NOMEM;
        d->bytes = p;
        d->cap_bytes = c;
    }
    memcpy(d->bytes + d->nbytes, term, len);
    d->toks[d->ntoks].off = (uint32_t)d->nbytes;
    d->toks[d->ntoks].len = (uint8_t)len;
    d->toks[d->ntoks].pos = pos;
    d->ntoks++;
    d->nbytes = need;
    return 0;
}

int bm25_prepare(const bm25 *x, const char *text, size_t len, bm25_doc **out) {
    *out = NULL;
    if (len > QUARRY_MAX_TEXT_LEN)
        return q_err(QUARRY_INVALID, "bm25: text of %zu bytes over the limit", len);
    bm25_doc *d = q_calloc(1, sizeof *d);
    if (!d) return q_err(QUARRY_NOMEM, "bm25: document");
    int rc = text_analyze(x->an, text, len, doc_term, d);
    if (rc) {
        bm25_doc_free(d);
        if (rc == QUARRY_NOMEM) return q_err(rc, "bm25: analysing %zu bytes", len);
        return rc;
    }
    *out = d;
    return 0;
}

void bm25_doc_free(bm25_doc *d) {
    if (!d) return;
    q_free(d->bytes);
    q_free(d->toks);
    q_free(d);
}

/* --------------------------------------------------------------------- add */

static int grow_bytes(uint8_t **p, uint64_t *cap, uint64_t need, uint64_t limit) {
    if (need <= *cap) return 0;
    if (need > limit) return q_err(QUARRY_FULL, "bm25: posting list over 4 GiB");
    uint64_t c = *cap + *cap / 2; /* 1.5x: lists are many and mostly short */
    if (c < need) c = need;
    if (c < 16) c = 16;
    if (c > limit) c = limit;
    uint8_t *q = q_realloc(*p, (size_t)c);
    if (!q) return q_err(QUARRY_NOMEM, "bm25: postings");
    *p = q;
    *cap = c;
    return 0;
}

/* Room for one more posting with tf positions. */
static int term_reserve(bm25 *x, bm25_term *t, uint32_t tf) {
    if (t->ntail == t->cap_tail) {
        uint32_t c = t->cap_tail ? t->cap_tail * 2 : 1;
        if (c > BM25_BLOCK) c = BM25_BLOCK;
        uint32_t *p = q_malloc(2 * (size_t)c * sizeof *p);
        if (!p) return q_err(QUARRY_NOMEM, "bm25: postings");
        if (t->tail) {
            memcpy(p, t->tail, t->ntail * sizeof *p);
            memcpy(p + c, t->tail + t->cap_tail, t->ntail * sizeof *p);
        }
        q_free(t->tail);
        t->tail = p;
        t->cap_tail = c;
    }
    if (x->positions) {
        int rc = grow_bytes(&t->pos, &t->pos_cap, t->pos_len + 5 * (uint64_t)tf, UINT64_MAX / 2);
        if (rc) return rc;
    }
    if (t->ntail + 1 == BM25_BLOCK) {
        uint64_t cap = t->data_cap;
        int rc = grow_bytes(&t->data, &cap, (uint64_t)t->data_len + BM25_BLOCK_MAX_BYTES + BM25_PAD,
                            UINT32_MAX);
        if (rc) return rc;
        t->data_cap = (uint32_t)cap;
        if (t->nblocks == t->cap_blocks) {
            uint32_t c = t->cap_blocks ? t->cap_blocks * 2 : 1;
            bm25_block *p = q_realloc(t->blocks, (size_t)c * sizeof *p);
            if (!p) return q_err(QUARRY_NOMEM, "bm25: blocks");
            t->blocks = p;
            t->cap_blocks = c;
        }
    }
    return 0;
}

static void term_seal(bm25_term *t) {
    uint32_t d[BM25_BLOCK], f[BM25_BLOCK];
    uint32_t prev = t->nblocks ? t->blocks[t->nblocks - 1].last_row : UINT32_MAX;
    uint32_t md = 0, mf = 0;
    const uint32_t *tf = bm25_tail_tf(t);
    for (unsigned i = 0; i < BM25_BLOCK; i++) {
        d[i] = t->tail[i] - prev - 1;
        prev = t->tail[i];
        f[i] = tf[i] - 1;
        if (d[i] > md) md = d[i];
        if (f[i] > mf) mf = f[i];
    }
    unsigned bd = bm25_bits(md), bt = bm25_bits(mf);
    uint8_t *p = t->data + t->data_len;
    p[0] = (uint8_t)bd;
    p[1] = (uint8_t)bt;
    bm25_pack(d, bd, p + 2);
    bm25_pack(f, bt, p + 2 + 16 * bd);
    memset(p + 2 + 16 * bd + 16 * bt, 0, BM25_PAD);
    bm25_block *b = &t->blocks[t->nblocks++];
    b->last_row = t->tail[BM25_BLOCK - 1];
    b->data_off = t->data_len;
    b->pos_off = t->tail_pos_off;
    memcpy(b->imp, t->tail_imp, sizeof b->imp);
    b->nimp = t->ntail_imp;
    t->data_len += 2 + 16 * bd + 16 * bt;
    t->ntail = 0;
    t->ntail_imp = 0;
    t->tail_pos_off = t->pos_len;
}

static int rows_reserve(bm25 *x, uint32_t row, size_t fwd_bytes) {
    if (row >= x->cap_rows) {
        uint64_t c = x->cap_rows ? x->cap_rows : 1024;
        while (c <= row) c *= 2;
        if (c > UINT32_MAX) c = UINT32_MAX;
        uint32_t *dl = q_realloc(x->dl, (size_t)c * sizeof *dl);
        if (dl) x->dl = dl;
        uint64_t *fwd = q_realloc(x->fwd, ((size_t)c + 1) * sizeof *fwd);
        if (fwd) x->fwd = fwd;
        size_t ow = ((size_t)x->cap_rows + 63) / 64, nw = ((size_t)c + 63) / 64;
        uint64_t *dead = q_realloc(x->dead, nw * sizeof *dead);
        if (dead) {
            x->dead = dead;
            memset(dead + ow, 0, (nw - ow) * sizeof *dead);
        }
        if (!dl || !fwd || !dead) return q_err(QUARRY_NOMEM, "bm25: rows");
        if (!x->cap_rows) x->fwd[0] = 0;
        x->cap_rows = (uint32_t)c;
    }
    if (x->fwd_len + fwd_bytes > x->fwd_cap) {
        size_t c = x->fwd_cap ? x->fwd_cap : 4096;
        while (c < x->fwd_len + fwd_bytes) c *= 2;
        uint8_t *p = q_realloc(x->fwd_bytes, c);
        if (!p) return q_err(QUARRY_NOMEM, "bm25: forward index");
        x->fwd_bytes = p;
        x->fwd_cap = c;
    }
    return 0;
}

/* Stable LSD radix sort of keys by their high 32 bits (the term id); the low
 * 32 bits (positions) arrive ascending and stay so within a term. tmp has
 * room for n keys. 11-bit digits; a digit that is the same for every key
 * costs one counting pass and no move. */
static void sort_by_term(uint64_t *key, uint64_t *tmp, size_t n) {
    uint32_t cnt[2048];
    for (unsigned shift = 32; shift < 64; shift += 11) {
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++) cnt[(key[i] >> shift) & 2047]++;
        if (cnt[(key[0] >> shift) & 2047] == n) continue;
        uint32_t sum = 0;
        for (unsigned d = 0; d < 2048; d++) {
            uint32_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) tmp[cnt[(key[i] >> shift) & 2047]++] = key[i];
        memcpy(key, tmp, n * sizeof *key);
    }
}

int bm25_add_prepared(bm25 *x, uint32_t row, const bm25_doc *d) {
    if (row == UINT32_MAX || row < x->nrows)
        return q_err(QUARRY_INVALID, "bm25: row %u added after row %u", row,
                     x->nrows ? x->nrows - 1 : 0);
    size_t n = d->ntoks;
    if (n > UINT32_MAX) return q_err(QUARRY_INVALID, "bm25: too many terms in a row");
    uint64_t *key = n ? q_malloc(2 * n * sizeof *key) : NULL;
    if (n && !key) return q_err(QUARRY_NOMEM, "bm25: add");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t tid;
        rc = bm25_intern(x, d->bytes + d->toks[i].off, d->toks[i].len, &tid);
        key[i] = ((uint64_t)tid << 32) | d->toks[i].pos;
    }
    if (rc) {
        q_free(key);
        return rc;
    }
    if (n > 1) sort_by_term(key, key + n, n);
    /* Reserve: postings of every distinct term, the row arrays, the forward entry. */
    size_t fwd_need = 0;
    uint32_t prev_tid = 0;
    for (size_t i = 0; i < n && !rc;) {
        uint32_t tid = (uint32_t)(key[i] >> 32);
        size_t j = i + 1;
        while (j < n && (uint32_t)(key[j] >> 32) == tid) j++;
        rc = term_reserve(x, &x->terms[tid], (uint32_t)(j - i));
        fwd_need += bm25_varint_len(i ? tid - prev_tid : tid);
        prev_tid = tid;
        i = j;
    }
    if (!rc) rc = rows_reserve(x, row, fwd_need);
    if (rc) {
        q_free(key);
        return rc;
    }
    /* Commit (nothing below can fail). */
    for (uint32_t g = x->nrows; g < row; g++) {
        x->dl[g] = 0;
        x->fwd[g + 1] = x->fwd_len;
    }
    x->dl[row] = (uint32_t)n;
    if (n) {
        x->live++;
        x->sum_dl += n;
    }
    float A, B;
    bm25_ab(x, &A, &B);
    prev_tid = 0;
    for (size_t i = 0; i < n;) {
        uint32_t tid = (uint32_t)(key[i] >> 32);
        size_t j = i + 1;
        while (j < n && (uint32_t)(key[j] >> 32) == tid) j++;
        bm25_term *t = &x->terms[tid];
        uint32_t tf = (uint32_t)(j - i);
        t->tail[t->ntail] = row;
        bm25_tail_tf(t)[t->ntail] = tf;
        t->ntail++;
        if (x->positions) {
            uint32_t pp = 0;
            for (size_t k = i; k < j; k++) {
                uint32_t pos = (uint32_t)key[k];
                t->pos_len += bm25_varint_put(t->pos + t->pos_len, pos - pp);
                pp = pos;
            }
        }
        bm25_imp_add(t->tail_imp, &t->ntail_imp, tf, (uint32_t)n, A, B);
        t->df++;
        x->npost++;
        if (t->ntail == BM25_BLOCK) term_seal(t);
        x->fwd_len += bm25_varint_put(x->fwd_bytes + x->fwd_len, i ? tid - prev_tid : tid);
        prev_tid = tid;
        i = j;
    }
    x->fwd[row + 1] = x->fwd_len;
    x->nrows = row + 1;
    q_free(key);
    return 0;
}

int bm25_add(bm25 *x, uint32_t row, const char *text, size_t len) {
    if (row == UINT32_MAX || row < x->nrows)
        return q_err(QUARRY_INVALID, "bm25: row %u added after row %u", row,
                     x->nrows ? x->nrows - 1 : 0);
    bm25_doc *d;
    int rc = bm25_prepare(x, text, len, &d);
    if (rc) return rc;
    rc = bm25_add_prepared(x, row, d);
    bm25_doc_free(d);
    return rc;
}

/* ------------------------------------------------------------------ delete */

int bm25_contains(const bm25 *x, uint32_t row) {
    return row < x->nrows && x->dl[row] > 0 && !bm25_is_dead(x, row);
}

int bm25_delete(bm25 *x, uint32_t row) {
    if (!bm25_contains(x, row)) return 0;
    const uint8_t *p = x->fwd_bytes + x->fwd[row], *end = x->fwd_bytes + x->fwd[row + 1];
    uint32_t tid = 0;
    int first = 1;
    while (p < end) {
        uint32_t v;
        p = bm25_varint_fast(p, &v);
        tid = first ? v : tid + v;
        first = 0;
        x->terms[tid].df--;
    }
    x->dead[row >> 6] |= 1ull << (row & 63);
    x->live--;
    x->sum_dl -= x->dl[row];
    x->ndead++;
    return 1;
}

/* ------------------------------------------------------------------ shrink */

/* Shrink p to n bytes (n > 0); keeps p when the allocator refuses. Recording
 * the smaller capacity is safe either way. */
static void *trim(void *p, size_t n) {
    void *q = q_realloc(p, n);
    return q ? q : p;
}

void bm25_shrink(bm25 *x) {
    for (uint32_t i = 0; i < x->nterms; i++) {
        bm25_term *t = &x->terms[i];
        if (t->data && t->data_cap > t->data_len + BM25_PAD) {
            t->data = trim(t->data, (size_t)t->data_len + BM25_PAD);
            t->data_cap = t->data_len + BM25_PAD;
        }
        if (t->pos && t->pos_cap > t->pos_len && t->pos_len) {
            t->pos = trim(t->pos, (size_t)t->pos_len);
            t->pos_cap = t->pos_len;
        }
        if (t->tail && t->cap_tail > t->ntail) {
            uint32_t *p = t->ntail ? q_malloc(2 * (size_t)t->ntail * sizeof *p) : NULL;
            if (p || !t->ntail) {
                if (p) {
                    memcpy(p, t->tail, t->ntail * sizeof *p);
                    memcpy(p + t->ntail, bm25_tail_tf(t), t->ntail * sizeof *p);
                }
                q_free(t->tail);
                t->tail = p;
                t->cap_tail = t->ntail;
            }
        }
        if (t->blocks && t->cap_blocks > t->nblocks && t->nblocks) {
            t->blocks = trim(t->blocks, (size_t)t->nblocks * sizeof *t->blocks);
            t->cap_blocks = t->nblocks;
        }
    }
    if (x->cap_terms > x->nterms && x->nterms) {
        x->terms = trim(x->terms, (size_t)x->nterms * sizeof *x->terms);
        x->cap_terms = x->nterms;
    }
    if (x->strs && x->strs_cap > x->strs_len && x->strs_len) {
        x->strs = trim(x->strs, x->strs_len);
        x->strs_cap = x->strs_len;
    }
    if (x->fwd_bytes && x->fwd_cap > x->fwd_len && x->fwd_len) {
        x->fwd_bytes = trim(x->fwd_bytes, x->fwd_len);
        x->fwd_cap = x->fwd_len;
    }
    if (x->cap_rows > x->nrows && x->nrows) {
        x->dl = trim(x->dl, (size_t)x->nrows * sizeof *x->dl);
        x->fwd = trim(x->fwd, ((size_t)x->nrows + 1) * sizeof *x->fwd);
        x->dead = trim(x->dead, ((size_t)x->nrows + 63) / 64 * sizeof *x->dead);
        x->cap_rows = x->nrows;
    }
}

/* -------------------------------------------------------------------- info */

void bm25_get_info(const bm25 *x, bm25_info *info) {
    memset(info, 0, sizeof *info);
    info->live_docs = x->live;
    info->deleted_docs = x->ndead;
    info->sum_dl = x->sum_dl;
    info->terms = x->nterms;
    info->postings = x->npost;
    info->next_row = x->nrows;
    for (uint32_t i = 0; i < x->nterms; i++) {
        const bm25_term *t = &x->terms[i];
        info->blocks += t->nblocks;
        info->posting_bytes += t->data_len + 8ull * t->ntail;
        info->position_bytes += t->pos_len;
    }
}

size_t bm25_memory(const bm25 *x) {
    size_t m = sizeof *x + (size_t)x->cap_terms * sizeof(bm25_term) + x->strs_cap +
               (x->table ? ((size_t)x->table_mask + 1) * sizeof *x->table : 0);
    m += (size_t)x->cap_rows * (sizeof(uint32_t) + sizeof(uint64_t)) +
         ((size_t)x->cap_rows + 63) / 64 * 8 + (x->cap_rows ? 8 : 0) + x->fwd_cap;
    for (uint32_t i = 0; i < x->nterms; i++) {
        const bm25_term *t = &x->terms[i];
        m += t->data_cap + (size_t)t->pos_cap + (size_t)t->cap_blocks * sizeof(bm25_block) +
             2 * (size_t)t->cap_tail * sizeof(uint32_t);
    }
    return m;
}
