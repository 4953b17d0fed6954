/* SPDX-License-Identifier: MIT */
/*
 * attr_serde.c -- the attribute index to and from bytes (a checkpoint
 * section, storage/format.h), so that a reopen does not re-index every row's
 * metadata.
 *
 * Format, little-endian:
 *   header (16 bytes)
 *     u32 magic "QAI1"   u32 version (1)
 *     u32 nfields        u32 reserved, 0
 *   nfields fields, names in strictly increasing byte order
 *     u32 name length, the name (no NUL byte)
 *     bitmap exists      -- the rows having the field; never empty
 *     bitmap true        bitmap false  -- rows holding true / false (may be empty)
 *     u32 nvalues        -- string values, in strictly increasing byte order
 *       per value: u32 length, the bytes, bitmap of its rows (never empty)
 *     u32 nblocks        -- the numeric blocks, in order
 *       per block: u32 n (1..NB_MAX), n f64 values, n u32 rows; the pairs
 *       strictly increasing in (value, row) order across the field, values
 *       finite, no row twice
 *   u64 XXH3-64 of every byte before it
 *   bitmap := u32 length L, then L bytes of CRoaring's portable format
 *
 * Fields without rows are not written. Not stored, rebuilt on load: the hash
 * maps, the sorted blocks of string values (cut into full blocks, as an
 * in-order load leaves them), the numeric blocks' bitmaps, the rows having a
 * number and the values by row. The numeric block boundaries are kept (they
 * come from the insert history and decide how later inserts split).
 *
 * Reading treats the bytes as hostile. The checksum only catches accidents;
 * every count is checked against the bytes left before anything is
 * allocated for it, and every CRoaring bitmap is walked completely before
 * CRoaring sees it: this CRoaring version's _safe decoder keeps its reads in
 * bounds but trusts container cardinalities, the order of keys and values
 * and run lengths, and a bitmap breaking them can make later operations
 * write out of bounds. Then the index's own invariants: every row < the
 * host's row count, every value bitmap a subset of the field's exists
 * bitmap, a row holding at most one kind of value per field (strings, one
 * number, true or false), no duplicate field or value. Any failure leaves
 * the index empty.
 *
 * Cost, measured on 1M rows with a keyword (50 values), an integer (100k
 * distinct), a boolean and two tags (200 values): 18.8 MB, serialize 11 ms,
 * deserialize 72 ms (mostly copying; the numeric blocks' bitmaps and the
 * values by row are rebuilt from the pairs), against 1.2 s to index the rows
 * one by one with attr_index_add (and 0.9 s to parse their JSON, which the
 * host still does).
 */
#include <stdlib.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "filter_int.h"

#include "common/qbuf.h"

#define AI_MAGIC   0x31494151u /* "QAI1" */
#define AI_VERSION 1u
#define AI_HDR     16

/* CRoaring's portable format (RoaringFormatSpec): the cookies and the
 * container count from which container offsets are always written. */
#define RB_COOKIE        12347u
#define RB_COOKIE_NORUN  12346u
#define RB_NO_OFFSET_MAX 4u

/* ---------------------------------------------------------------- writing */

static void wb_bitmap(wbuf *w, const roaring_bitmap_t *bm) {
    size_t k = roaring_bitmap_portable_size_in_bytes(bm);
    if (k > UINT32_MAX) {
        w->err = 1;
        return;
    }
    uint8_t *p = wb_room(w, 4 + k);
    if (!p) return;
    put_u32(p, (uint32_t)k);
    roaring_bitmap_portable_serialize(bm, (char *)p + 4);
}

static int field_order(const void *a, const void *b) {
    const afield *x = *(const afield *const *)a, *y = *(const afield *const *)b;
    return filter_strcmp(x->h.s, x->h.len, y->h.s, y->h.len);
}

static void write_field(wbuf *w, const attr_index *ai, const afield *f) {
    wb_u32(w, f->h.len);
    wb_bytes(w, f->h.s, f->h.len);
    wb_bitmap(w, f->exists);
    wb_bitmap(w, f->btrue ? f->btrue : ai->empty);
    wb_bitmap(w, f->bfalse ? f->bfalse : ai->empty);
    wb_u32(w, (uint32_t)f->strs.n);
    for (size_t bi = 0; bi < f->sorted.nb; bi++) {
        const sblock *b = &f->sorted.b[bi];
        for (uint32_t i = 0; i < b->n; i++) {
            wb_u32(w, b->v[i]->h.len);
            wb_bytes(w, b->v[i]->h.s, b->v[i]->h.len);
            wb_bitmap(w, b->v[i]->bm);
        }
    }
    wb_u32(w, (uint32_t)f->num.nb);
    for (size_t bi = 0; bi < f->num.nb; bi++) {
        const nblock *b = &f->num.b[bi];
        wb_u32(w, b->n);
        uint8_t *p = wb_room(w, (size_t)b->n * 12);
        if (!p) return;
        for (uint32_t i = 0; i < b->n; i++) {
            uint64_t bits;
            memcpy(&bits, &b->v[i], 8);
            put_u64(p + 8 * (size_t)i, bits);
            put_u32(p + 8 * (size_t)b->n + 4 * (size_t)i, b->r[i]);
        }
    }
}

int attr_index_serialize(const attr_index *ai, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    /* Fields in name order, so that equal indexes give equal bytes. */
    const afield **fs = q_malloc((ai->fields.n + 1) * sizeof *fs);
    if (!fs) return q_err(QUARRY_NOMEM, "attr index: out of memory (serialize)");
    size_t nf = 0;
    for (size_t i = 0; i < ai->fields.cap; i++) {
        const afield *f = (const afield *)ai->fields.slot[i];
        if (f && !roaring_bitmap_is_empty(f->exists)) fs[nf++] = f;
    }
    qsort(fs, nf, sizeof *fs, field_order);
    wbuf w = {0};
    wb_u32(&w, AI_MAGIC);
    wb_u32(&w, AI_VERSION);
    wb_u32(&w, (uint32_t)nf);
    wb_u32(&w, 0);
    for (size_t i = 0; i < nf && !w.err; i++) write_field(&w, ai, fs[i]);
    q_free(fs);
    uint8_t *p = wb_room(&w, 8);
    if (w.err || !p) {
        q_free(w.b);
        return q_err(QUARRY_NOMEM, "attr index: out of memory (serialize)");
    }
    put_u64(p, XXH3_64bits(w.b, w.n - 8));
    *buf = w.b;
    *len = w.n;
    return 0;
}

/* ---------------------------------------------------------------- reading */

typedef struct rbuf {
    const uint8_t *p, *end;
    uint32_t rows; /* every row must be below */
} rbuf;

static size_t rb_left(const rbuf *r) { return (size_t)(r->end - r->p); }

static int rb_u32(rbuf *r, uint32_t *v) {
    if (rb_left(r) < 4) return 0;
    *v = get_u32(r->p);
    r->p += 4;
    return 1;
}

#define BAD(...) q_err(QUARRY_CORRUPT, "attr index: " __VA_ARGS__)

/* Walk the run container at p[0..n) (after its key): 0 and its size, or -1. */
static int64_t run_check(const uint8_t *p, size_t n, uint32_t card, uint32_t *last) {
    if (n < 2) return -1;
    uint32_t nr = get_u16(p), sum = 0;
    if (nr == 0 || n - 2 < (size_t)nr * 4) return -1;
    int64_t prev_end = -1;
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t start = get_u16(p + 2 + 4 * (size_t)i), lm1 = get_u16(p + 4 + 4 * (size_t)i);
        if ((int64_t)start <= prev_end || start + lm1 > 0xFFFF) return -1;
        prev_end = start + lm1;
        sum += lm1 + 1;
    }
    if (sum != card) return -1;
    *last = (uint32_t)prev_end;
    return 2 + 4 * (int64_t)nr;
}

static int64_t bitset_check(const uint8_t *p, size_t n, uint32_t card, uint32_t *last) {
    if (n < 8192) return -1;
    uint32_t pop = 0;
    for (uint32_t i = 0; i < 1024; i++) {
        uint64_t word = get_u64(p + 8 * (size_t)i);
        pop += (uint32_t)__builtin_popcountll(word);
        if (word) *last = 64 * i + 63 - (uint32_t)__builtin_clzll(word);
    }
    return pop == card ? 8192 : -1;
}

static int64_t array_check(const uint8_t *p, size_t n, uint32_t card, uint32_t *last) {
    if (n < 2 * (size_t)card) return -1;
    int64_t prev = -1;
    for (uint32_t i = 0; i < card; i++) {
        uint32_t v = get_u16(p + 2 * (size_t)i);
        if ((int64_t)v <= prev) return -1;
        prev = v;
    }
    *last = (uint32_t)prev;
    return 2 * (int64_t)card;
}

/*
 * Check that p[0..n) is exactly one CRoaring portable bitmap (the format
 * spec, as this CRoaring version reads it) satisfying CRoaring's invariants:
 * keys strictly increasing; arrays of 1..4096 strictly increasing values;
 * bitsets of more than 4096 whose population is the stated cardinality;
 * runs sorted, not overlapping, within 16 bits and adding up to the stated
 * cardinality; offsets, when present, right. *end = largest value + 1 (0 if
 * empty). 0 or -1.
 */
static int portable_check(const uint8_t *p, size_t n, uint64_t *end) {
    *end = 0;
    if (n < 4) return -1;
    uint32_t cookie = get_u32(p), size;
    size_t pos = 4;
    int hasrun = (cookie & 0xFFFF) == RB_COOKIE;
    if (hasrun) {
        size = (cookie >> 16) + 1;
    } else if (cookie == RB_COOKIE_NORUN && n >= 8) {
        size = get_u32(p + 4); /* CRoaring reads it as int32: negative passes its check */
        pos = 8;
    } else {
        return -1;
    }
    if (size > 65536) return -1;
    const uint8_t *runbits = p + pos;
    if (hasrun) {
        size_t s = (size + 7) / 8;
        if (n - pos < s || (size % 8 && (runbits[s - 1] >> (size % 8)))) return -1;
        pos += s;
    }
    if (n - pos < (size_t)size * 4) return -1;
    const uint8_t *kc = p + pos;
    pos += (size_t)size * 4;
    const uint8_t *offs = NULL;
    if (!hasrun || size >= RB_NO_OFFSET_MAX) {
        if (n - pos < (size_t)size * 4) return -1;
        offs = p + pos;
        pos += (size_t)size * 4;
    }
    int64_t prev_key = -1;
    for (uint32_t k = 0; k < size; k++) {
        uint32_t key = get_u16(kc + 4 * (size_t)k), card = get_u16(kc + 4 * (size_t)k + 2) + 1u;
        if ((int64_t)key <= prev_key || (offs && get_u32(offs + 4 * (size_t)k) != pos)) return -1;
        prev_key = key;
        uint32_t last = 0;
        int64_t used;
        if (hasrun && ((runbits[k / 8] >> (k % 8)) & 1))
            used = run_check(p + pos, n - pos, card, &last);
        else if (card > 4096)
            used = bitset_check(p + pos, n - pos, card, &last);
        else
            used = array_check(p + pos, n - pos, card, &last);
        if (used < 0) return -1;
        pos += (size_t)used;
        *end = ((uint64_t)key << 16 | last) + 1;
    }
    return pos == n ? 0 : -1;
}

/* Read one bitmap (NULL when empty and may_be_empty). 0, CORRUPT or NOMEM. */
static int rb_bitmap(rbuf *r, const char *what, const afield *f, int may_be_empty,
                     roaring_bitmap_t **out) {
    *out = NULL;
    uint32_t k;
    uint64_t end;
    if (!rb_u32(r, &k) || k > rb_left(r) || portable_check(r->p, k, &end) != 0)
        return BAD("field \"%.64s\": %s: bad bitmap", f->name, what);
    if (end > r->rows)
        return BAD("field \"%.64s\": %s: row %llu, the index has %u rows", f->name, what,
                   (unsigned long long)end - 1, r->rows);
    if (end == 0 && !may_be_empty) return BAD("field \"%.64s\": %s: no rows", f->name, what);
    const uint8_t *p = r->p;
    r->p += k;
    if (end == 0) return 0;
    *out = roaring_bitmap_portable_deserialize_safe((const char *)p, k);
    return *out ? 0 : q_err(QUARRY_NOMEM, "attr index: out of memory (bitmap)");
}

static int read_strings(rbuf *r, afield *f) {
    uint32_t nv;
    if (!rb_u32(r, &nv) || nv > rb_left(r) / 16)
        return BAD("field \"%.64s\": bad value count", f->name);
    const svalue *prev = NULL;
    for (uint32_t i = 0; i < nv; i++) {
        uint32_t len;
        if (!rb_u32(r, &len) || len > rb_left(r))
            return BAD("field \"%.64s\": value %u truncated", f->name, i);
        const char *s = (const char *)r->p;
        r->p += len;
        if (prev && filter_strcmp(prev->h.s, prev->h.len, s, len) >= 0)
            return BAD("field \"%.64s\": value %u out of order", f->name, i);
        svalue *sv = q_malloc(sizeof *sv + len + 1);
        if (!sv) return q_err(QUARRY_NOMEM, "attr index: out of memory (values)");
        memcpy(sv->s, s, len);
        sv->s[len] = 0;
        sv->h = (hent){filter_hash(s, len), len, sv->s};
        int rc = rb_bitmap(r, "string value", f, 0, &sv->bm);
        if (!rc && (rc = attr_str_insert(f, sv)))
            rc = q_err(QUARRY_NOMEM, "attr index: out of memory (values)");
        if (rc) {
            if (sv->bm) roaring_bitmap_free(sv->bm);
            q_free(sv);
            return rc;
        }
        prev = sv;
    }
    return 0;
}

/* The numeric blocks, through a scratch of NB_MAX pairs. */
static int read_numbers(rbuf *r, afield *f, double *v, uint32_t *rows) {
    uint32_t nb;
    if (!rb_u32(r, &nb) || nb > rb_left(r) / 16)
        return BAD("field \"%.64s\": bad block count", f->name);
    double pv = 0;
    int64_t pr = -1; /* previous pair's row; -1 before the first */
    for (uint32_t bi = 0; bi < nb; bi++) {
        uint32_t n;
        if (!rb_u32(r, &n) || n == 0 || n > NB_MAX || (size_t)n * 12 > rb_left(r))
            return BAD("field \"%.64s\": bad numeric block %u", f->name, bi);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t bits = get_u64(r->p + 8 * (size_t)i);
            memcpy(&v[i], &bits, 8);
            rows[i] = get_u32(r->p + 8 * (size_t)n + 4 * (size_t)i);
            if (!isfinite(v[i]) || rows[i] >= r->rows)
                return BAD("field \"%.64s\": block %u: bad pair %u", f->name, bi, i);
            if (pr >= 0 && (v[i] < pv || (v[i] == pv && (int64_t)rows[i] <= pr)))
                return BAD("field \"%.64s\": block %u: pair %u out of order", f->name, bi, i);
            pv = v[i];
            pr = rows[i];
        }
        r->p += (size_t)n * 12;
        if (num_append_block(&f->num, v, rows, n))
            return q_err(QUARRY_NOMEM, "attr index: out of memory (numbers)");
    }
    if (f->num.rows && roaring_bitmap_get_cardinality(f->num.rows) != f->num.count)
        return BAD("field \"%.64s\": a row has two numbers", f->name);
    return 0;
}

/* Every value bitmap within exists, and a row holding one kind of value. */
static int check_field(afield *f) {
    const roaring_bitmap_t *kinds[4] = {f->btrue, f->bfalse, f->num.rows, NULL};
    roaring_bitmap_t *strs = NULL;
    if (f->strs.n) {
        const roaring_bitmap_t **bms = q_malloc(f->strs.n * sizeof *bms);
        if (!bms) return q_err(QUARRY_NOMEM, "attr index: out of memory (check)");
        size_t k = 0;
        for (size_t bi = 0; bi < f->sorted.nb; bi++)
            for (uint32_t i = 0; i < f->sorted.b[bi].n; i++) bms[k++] = f->sorted.b[bi].v[i]->bm;
        strs = roaring_bitmap_or_many(k, bms);
        q_free(bms);
        if (!strs) return q_err(QUARRY_NOMEM, "attr index: out of memory (check)");
        kinds[3] = strs;
    }
    int rc = 0;
    for (int i = 0; i < 4 && !rc; i++) {
        if (!kinds[i]) continue;
        if (!roaring_bitmap_is_subset(kinds[i], f->exists))
            rc = BAD("field \"%.64s\": values of rows without the field", f->name);
        for (int j = i + 1; j < 4 && !rc; j++)
            if (kinds[j] && roaring_bitmap_intersect(kinds[i], kinds[j]))
                rc = BAD("field \"%.64s\": a row holds two kinds of value", f->name);
    }
    if (strs) roaring_bitmap_free(strs);
    return rc;
}

static int read_field(attr_index *ai, rbuf *r, const afield **prev, double *v, uint32_t *rows) {
    uint32_t len;
    if (!rb_u32(r, &len) || len > rb_left(r)) return BAD("field name truncated");
    const char *name = (const char *)r->p;
    r->p += len;
    if (memchr(name, 0, len)) return BAD("field name with a NUL byte");
    if (*prev && filter_strcmp((*prev)->h.s, (*prev)->h.len, name, len) >= 0)
        return BAD("field \"%.*s\" out of order", (int)(len < 64 ? len : 64), name);
    afield *f = attr_field_create(ai, name, len);
    if (!f) return q_err(QUARRY_NOMEM, "attr index: out of memory (fields)");
    *prev = f;
    roaring_bitmap_free(f->exists); /* replaced by the decoded one */
    f->exists = NULL;
    int rc = rb_bitmap(r, "exists", f, 0, &f->exists);
    if (!rc) rc = rb_bitmap(r, "true", f, 1, &f->btrue);
    if (!rc) rc = rb_bitmap(r, "false", f, 1, &f->bfalse);
    if (!rc) rc = read_strings(r, f);
    if (!rc) rc = read_numbers(r, f, v, rows);
    if (!rc) rc = check_field(f);
    return rc; /* on failure the caller clears the index (field_free takes NULLs) */
}

int attr_index_deserialize(attr_index *ai, const uint8_t *buf, size_t len, uint32_t rows) {
    attr_index_clear(ai);
    double *v = NULL;
    uint32_t *rv = NULL;
    int rc = 0;
    if (!buf || len < AI_HDR + 8) {
        rc = BAD("%zu bytes is too short", len);
        goto out;
    }
    if (XXH3_64bits(buf, len - 8) != get_u64(buf + len - 8)) {
        rc = BAD("checksum mismatch");
        goto out;
    }
    if (get_u32(buf) != AI_MAGIC || get_u32(buf + 4) != AI_VERSION || get_u32(buf + 12) != 0) {
        rc = BAD("bad magic, version %u or reserved field", get_u32(buf + 4));
        goto out;
    }
    rbuf r = {buf + AI_HDR, buf + len - 8, rows};
    uint32_t nf = get_u32(buf + 8);
    /* a field takes at least 4 + 3 * (4 + 8) + 4 + 4 bytes */
    if (nf > rb_left(&r) / 48) {
        rc = BAD("%u fields in %zu bytes", nf, rb_left(&r));
        goto out;
    }
    v = q_malloc(NB_MAX * sizeof *v);
    rv = q_malloc(NB_MAX * sizeof *rv);
    if (!v || !rv) {
        rc = q_err(QUARRY_NOMEM, "attr index: out of memory");
        goto out;
    }
    const afield *prev = NULL;
    for (uint32_t i = 0; i < nf && !rc; i++) rc = read_field(ai, &r, &prev, v, rv);
    if (!rc && r.p != r.end) rc = BAD("%zu trailing bytes", rb_left(&r));
out:
    q_free(v);
    q_free(rv);
    if (rc) attr_index_clear(ai);
    return rc;
}
