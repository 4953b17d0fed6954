/* SPDX-License-Identifier: MIT */
/*
 * chunk.c -- text chunking (fixed characters or words, sentences, recursive,
 * markdown) and quarry_upsert_document, which stores a document as chunk rows.
 *
 * The contract (units, boundaries, defaults) is documented with the API at the
 * end of include/quarry.h; this file follows it literally. Design notes:
 *
 *  - The input is validated as UTF-8 once; every scanner after that decodes
 *    without checks and moves one "character" at a time (char_end: a code
 *    point plus attached marks, CRLF as one). Every boundary we produce is
 *    the start or end of such a character, so no code point is ever split.
 *  - Offsets are kept as uint32_t internally: the input is at most
 *    QUARRY_MAX_TEXT_LEN (16 MiB) bytes, and pathological inputs ("a. a. a.")
 *    produce millions of sentences, so spans stay small (12 bytes).
 *  - Every strategy emits through one function (emit), which also counts the
 *    chunk's characters and words, so the counts always match the definitions.
 *  - Markdown heading paths are pointer arrays into one pool; chunks record an
 *    offset into it while the pool may still grow, and the pointers are fixed
 *    up once chunking has finished.
 *  - quarry_upsert_document is written against the public API only (batches
 *    and quarry_get), plus q_err for the error detail text: it is what any
 *    embedder could write, kept here so the C API and the RPC share it.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/qcommon.h"

/* ------------------------------------------------------------------------ */
/* Defaults                                                                 */
/* ------------------------------------------------------------------------ */

/* Default overlap: -1 = max / 5 (in the strategy's unit), else a constant
 * (capped below max). */
typedef struct strategy_info {
    const char *name;
    uint32_t max;
    int overlap;
} strategy_info;

static const strategy_info STRATEGIES[] = {
    [QUARRY_CHUNK_SENTENCE] = {"sentence", 250, 1},
    [QUARRY_CHUNK_FIXED_CHARS] = {"fixed_chars", 1000, -1},
    [QUARRY_CHUNK_FIXED_WORDS] = {"fixed_words", 200, -1},
    [QUARRY_CHUNK_RECURSIVE] = {"recursive", 1000, -1},
    [QUARRY_CHUNK_MARKDOWN] = {"markdown", 1000, 0},
};
#define NSTRATEGIES (sizeof STRATEGIES / sizeof STRATEGIES[0])

void quarry_chunk_options_init(quarry_chunk_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->strategy = QUARRY_CHUNK_SENTENCE;
    o->max = 0;
    o->overlap = QUARRY_CHUNK_DEFAULT;
}

int quarry_chunk_strategy_parse(const char *name) {
    for (size_t i = 0; name && i < NSTRATEGIES; i++)
        if (strcmp(name, STRATEGIES[i].name) == 0) return (int)i;
    return -1;
}

const char *quarry_chunk_strategy_name(quarry_chunk_strategy s) {
    return (unsigned)s < NSTRATEGIES ? STRATEGIES[s].name : "";
}

/* ------------------------------------------------------------------------ */
/* Characters                                                               */
/* ------------------------------------------------------------------------ */

typedef struct src {
    const unsigned char *s;
    uint32_t len;
} src;

static int utf8_check(const unsigned char *s, size_t len, size_t *bad) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
        else goto bad;
        if (len - i <= n) goto bad;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) goto bad;
        if (cp >= 0xD800 && cp <= 0xDFFF) goto bad;
        i += n + 1;
    }
    return 1;
bad:
    *bad = i;
    return 0;
}

/* Decodes the (valid) code point at i; returns its length in bytes. */
static uint32_t cp_at(const src *t, uint32_t i, uint32_t *cp) {
    const unsigned char *s = t->s + i;
    unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    if (c < 0xE0) return *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F), 2;
    if (c < 0xF0)
        return *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F),
               3;
    *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

static int is_space(uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

/* Marks that belong to the code point before them. */
static int is_extend(uint32_t c) {
    return (c >= 0x0300 && c <= 0x036F) || (c >= 0x0483 && c <= 0x0489) ||
           (c >= 0x0591 && c <= 0x05BD) || (c >= 0x0610 && c <= 0x061A) ||
           (c >= 0x064B && c <= 0x065F) || (c >= 0x0900 && c <= 0x0903) ||
           (c >= 0x093A && c <= 0x094F) || (c >= 0x0E31 && c <= 0x0E3A && c != 0x0E32 &&
                                            c != 0x0E33) ||
           (c >= 0x0E47 && c <= 0x0E4E) || (c >= 0x1AB0 && c <= 0x1AFF) ||
           (c >= 0x1DC0 && c <= 0x1DFF) || (c >= 0x20D0 && c <= 0x20FF) ||
           (c >= 0x3099 && c <= 0x309A) || (c >= 0xFE00 && c <= 0xFE0F) ||
           (c >= 0xFE20 && c <= 0xFE2F) || (c >= 0x1F3FB && c <= 0x1F3FF) ||
           (c >= 0xE0020 && c <= 0xE007F) || (c >= 0xE0100 && c <= 0xE01EF);
}

static int is_regional(uint32_t c) { return c >= 0x1F1E6 && c <= 0x1F1FF; }

/* CJK characters that are words by themselves (Hangul is spaced: not here). */
static int is_ideo(uint32_t c) {
    return (c >= 0x2E80 && c <= 0x2FDF) || (c >= 0x3040 && c <= 0x30FF) ||
           (c >= 0x3100 && c <= 0x312F) || (c >= 0x3190 && c <= 0x31FF) ||
           (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF66 && c <= 0xFF9F) ||
           (c >= 0x20000 && c <= 0x3FFFF);
}

/* CJK and full-width punctuation: joins the word before it. */
static int is_attach(uint32_t c) {
    return (c >= 0x3001 && c <= 0x303F && c != 0x3000) || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFF3B && c <= 0xFF40) ||
           (c >= 0xFF5B && c <= 0xFF65);
}

static int is_term(uint32_t c) {
    return c == '.' || c == '!' || c == '?' || c == 0x2026 || c == 0x3002 || c == 0xFF01 ||
           c == 0xFF1F;
}
static int is_cjk_term(uint32_t c) { return c == 0x3002 || c == 0xFF01 || c == 0xFF1F; }
static int is_closer(uint32_t c) {
    return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}' || c == 0x2019 ||
           c == 0x201D || c == 0xBB || c == 0x300D || c == 0x300F || c == 0x3011 || c == 0xFF09;
}

/*
 * End of the character that starts at i (never beyond lim): the code point,
 * then any marks, a zero-width joiner with the non-space code point after it,
 * the second regional indicator of a flag; "\r\n" is one character. Nothing
 * attaches to whitespace, so a non-space code point is never hidden in it.
 * *first receives the first code point.
 */
static uint32_t char_end(const src *t, uint32_t i, uint32_t lim, uint32_t *first) {
    uint32_t cp, nx;
    uint32_t j = i + cp_at(t, i, &cp);
    *first = cp;
    if (cp == '\r' && j < lim && t->s[j] == '\n') return j + 1;
    if (is_space(cp)) return j; /* marks after whitespace stand alone */
    int ri = is_regional(cp);
    while (j < lim) {
        uint32_t n = cp_at(t, j, &nx);
        if (is_extend(nx)) {
            j += n;
        } else if (nx == 0x200D) {
            j += n;
            if (j < lim) {
                uint32_t m = cp_at(t, j, &nx);
                if (!is_space(nx)) j += m;
            }
        } else if (ri && is_regional(nx)) {
            j += n;
            ri = 0;
        } else {
            break;
        }
    }
    return j;
}

/* A line break (a CRLF pair is one character whose first code point is CR). */
static int is_newline(uint32_t cp) {
    return cp == '\n' || cp == '\r' || cp == 0x2028 || cp == 0x2029 || cp == 0x85;
}

static uint32_t count_chars(const src *t, uint32_t a, uint32_t b) {
    uint32_t n = 0, cp;
    while (a < b) a = char_end(t, a, b, &cp), n++;
    return n;
}

/* Trims whitespace at both ends of [*a, *b). Returns 0 when nothing is left. */
static int trim(const src *t, uint32_t *a, uint32_t *b) {
    uint32_t i = *a, cp, last = *a;
    int any = 0;
    while (i < *b) {
        uint32_t j = char_end(t, i, *b, &cp);
        if (!is_space(cp)) {
            if (!any) *a = i;
            any = 1;
            last = j;
        }
        i = j;
    }
    if (any) *b = last;
    return any;
}

/* ------------------------------------------------------------------------ */
/* Words and sentences                                                      */
/* ------------------------------------------------------------------------ */

enum { C_SPACE, C_IDEO, C_ATTACH, C_OTHER };

static int char_class(uint32_t cp) {
    if (is_space(cp)) return C_SPACE;
    if (is_ideo(cp)) return C_IDEO;
    if (is_attach(cp)) return C_ATTACH;
    return C_OTHER;
}

/* The first word in [i, end): [*ws, *we). Returns 0 when there is none. */
static int word_next(const src *t, uint32_t i, uint32_t end, uint32_t *ws, uint32_t *we) {
    uint32_t cp, j;
    for (;;) {
        if (i >= end) return 0;
        j = char_end(t, i, end, &cp);
        if (char_class(cp) != C_SPACE) break;
        i = j;
    }
    *ws = i;
    int ideo = char_class(cp) == C_IDEO;
    while (j < end) {
        uint32_t k = char_end(t, j, end, &cp);
        int c = char_class(cp);
        if (c == C_SPACE || (!ideo && c == C_IDEO) || (ideo && c != C_ATTACH)) break;
        j = k;
    }
    *we = j;
    return 1;
}

static uint32_t count_words(const src *t, uint32_t a, uint32_t b) {
    uint32_t n = 0, ws, we;
    while (word_next(t, a, b, &ws, &we)) n++, a = we;
    return n;
}

typedef struct span {
    uint32_t start, end, n; /* n: words (sentences) or characters (pieces) */
} span;

typedef struct spanvec {
    span *v;
    size_t n, cap;
} spanvec;

static int sv_push(spanvec *sv, uint32_t a, uint32_t b, uint32_t n) {
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 64;
        span *p = realloc(sv->v, cap * sizeof *p);
        if (!p) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
        sv->v = p, sv->cap = cap;
    }
    sv->v[sv->n++] = (span){a, b, n};
    return 0;
}

/* Does a blank line start right after the line break that ends at i? */
static int blank_after(const src *t, uint32_t i, uint32_t end) {
    uint32_t cp;
    while (i < end) {
        uint32_t j = char_end(t, i, end, &cp);
        if (is_newline(cp)) return 1;
        if (!is_space(cp)) return 0;
        i = j;
    }
    return 0;
}

/* Sentences of [a, b) (see quarry.h), with their word counts when `words`. */
static int sentences(const src *t, uint32_t a, uint32_t b, int words, spanvec *out) {
    uint32_t i = a, start = UINT32_MAX, last = a, cp;
    int rc;
#define FLUSH()                                                                        \
    do {                                                                               \
        if (start != UINT32_MAX) {                                                     \
            if ((rc = sv_push(out, start, last, words ? count_words(t, start, last) : 0))) \
                return rc;                                                             \
            start = UINT32_MAX;                                                        \
        }                                                                              \
    } while (0)
    while (i < b) {
        uint32_t j = char_end(t, i, b, &cp);
        if (is_space(cp)) {
            if (is_newline(cp) && blank_after(t, j, b)) FLUSH();
            i = j;
            continue;
        }
        if (start == UINT32_MAX) start = i;
        last = j;
        if (!is_term(cp)) {
            i = j;
            continue;
        }
        int cjk = is_cjk_term(cp), only_dots = cp == '.';
        uint32_t k = j, c2;
        while (k < b) {
            uint32_t k2 = char_end(t, k, b, &c2);
            if (!is_term(c2) && !is_closer(c2)) break;
            cjk |= is_cjk_term(c2);
            if (is_term(c2) && c2 != '.') only_dots = 0;
            k = k2;
        }
        last = k;
        int boundary = 1;
        if (k < b && !cjk) {
            char_end(t, k, b, &c2);
            if (!is_space(c2)) {
                boundary = 0;
            } else if (only_dots) {
                /* "e.g. this": a lowercase ASCII letter after the space continues it */
                uint32_t m = k;
                while (m < b) {
                    uint32_t m2 = char_end(t, m, b, &c2);
                    if (!is_space(c2)) break;
                    m = m2;
                }
                if (m < b && c2 >= 'a' && c2 <= 'z') boundary = 0;
            }
        }
        if (boundary) FLUSH();
        i = k;
    }
    FLUSH();
#undef FLUSH
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

struct quarry_chunks {
    quarry_chunk *v;
    size_t n, cap;
    size_t *hoff;        /* per chunk: offset of its heading path in hptrs */
    const char **hptrs;  /* heading path pool */
    size_t nh, hcap;
    char **strs;         /* owned heading strings */
    size_t nstrs, scap;
};

typedef struct builder {
    src t;
    uint32_t max, overlap;
    quarry_chunks *out;
    size_t hoff;        /* heading path of chunks emitted now (markdown) */
    uint32_t hcount;
} builder;

static int emit(builder *b, uint32_t start, uint32_t end) {
    quarry_chunks *c = b->out;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        quarry_chunk *v = realloc(c->v, cap * sizeof *v);
        if (!v) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
        c->v = v;
        size_t *h = realloc(c->hoff, cap * sizeof *h);
        if (!h) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
        c->hoff = h, c->cap = cap;
    }
    quarry_chunk *k = &c->v[c->n];
    memset(k, 0, sizeof *k);
    k->start = start, k->end = end;
    k->chars = count_chars(&b->t, start, end);
    k->words = count_words(&b->t, start, end);
    k->nheadings = b->hcount;
    c->hoff[c->n++] = b->hoff;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Fixed windows                                                            */
/* ------------------------------------------------------------------------ */

/* Windows of `max` characters every max - overlap characters over [a, b). */
static int fixed_chars(builder *b, uint32_t a, uint32_t end, uint32_t max, uint32_t overlap,
                       int skip_blank) {
    const src *t = &b->t;
    uint32_t step = max - overlap, cp;
    while (a < end) {
        uint32_t e = a, n = 0, next = a;
        int blank = 1;
        while (e < end && n < max) {
            uint32_t j = char_end(t, e, end, &cp);
            if (!is_space(cp)) blank = 0;
            e = j;
            if (++n == step) next = e;
        }
        if (!(blank && skip_blank)) {
            int rc = emit(b, a, e);
            if (rc) return rc;
        }
        if (e >= end) break;
        a = next;
    }
    return 0;
}

/* Windows of `max` words every max - overlap words over [a, b). */
static int fixed_words(builder *b, uint32_t a, uint32_t end, uint32_t max, uint32_t overlap) {
    const src *t = &b->t;
    uint32_t step = max - overlap, ws, we;
    /* A ring of the window's word spans. */
    span *ring = malloc((size_t)max * sizeof *ring);
    if (!ring) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
    size_t head = 0, count = 0, fresh = 0;
    int rc = 0;
    while (word_next(t, a, end, &ws, &we)) {
        a = we;
        ring[(head + count) % max] = (span){ws, we, 0};
        count++, fresh++;
        if (count == max) {
            if ((rc = emit(b, ring[head].start, ring[(head + count - 1) % max].end))) goto out;
            head = (head + step) % max;
            count -= step;
            fresh = 0;
        }
    }
    if (fresh > 0 && count > 0)
        rc = emit(b, ring[head].start, ring[(head + count - 1) % max].end);
out:
    free(ring);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Sentences                                                                */
/* ------------------------------------------------------------------------ */

static int by_sentence(builder *b, uint32_t a, uint32_t end) {
    spanvec sv = {0};
    int rc = sentences(&b->t, a, end, 1, &sv);
    size_t s = 0;
    const span *v = sv.v;
    while (!rc && s < sv.n) {
        if (v[s].n > b->max) { /* a sentence too long for one chunk */
            rc = fixed_words(b, v[s].start, v[s].end, b->max, 0);
            s++;
            continue;
        }
        size_t j = s + 1;
        uint64_t words = v[s].n;
        while (j < sv.n && words + v[j].n <= b->max) words += v[j++].n;
        if ((rc = emit(b, v[s].start, v[j - 1].end)) || j >= sv.n) break;
        /* Repeat up to `overlap` trailing sentences that fit with sentence j. */
        size_t t = j;
        uint64_t ow = 0;
        if (v[j].n <= b->max) {
            while (t > s + 1 && j - (t - 1) <= b->overlap && ow + v[t - 1].n + v[j].n <= b->max)
                ow += v[--t].n;
        }
        s = t;
    }
    free(sv.v);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Recursive                                                                */
/* ------------------------------------------------------------------------ */

enum { LV_PARAGRAPH, LV_LINE, LV_SENTENCE, LV_WORD, LV_CHAR };

/* Non-empty, trimmed pieces of [a, b) at a level (n = characters). */
static int split_level(const src *t, uint32_t a, uint32_t b, int level, spanvec *out) {
    int rc = 0;
    if (level == LV_SENTENCE) {
        if ((rc = sentences(t, a, b, 0, out))) return rc;
    } else if (level == LV_WORD) {
        uint32_t ws, we;
        while (!rc && word_next(t, a, b, &ws, &we)) rc = sv_push(out, ws, we, 0), a = we;
    } else { /* paragraphs (cut at blank lines) or lines */
        uint32_t i = a, ps = a, cp;
        while (i < b) {
            uint32_t j = char_end(t, i, b, &cp);
            if (is_newline(cp) && (level == LV_LINE || blank_after(t, j, b))) {
                uint32_t x = ps, y = i;
                if (trim(t, &x, &y) && (rc = sv_push(out, x, y, 0))) return rc;
                ps = j;
            }
            i = j;
        }
        uint32_t x = ps, y = b;
        if (trim(t, &x, &y)) rc = sv_push(out, x, y, 0);
    }
    for (size_t k = 0; !rc && k < out->n; k++)
        out->v[k].n = count_chars(t, out->v[k].start, out->v[k].end);
    return rc;
}

/* Packs pieces p[0..n) (each at most max characters) into chunks. Pieces
 * may overlap only when they are character windows of max characters, which
 * are never packed with a neighbour. */
static int merge_pieces(builder *b, const span *p, size_t n) {
    const src *t = &b->t;
    size_t s = 0;
    while (s < n) {
        uint64_t len = p[s].n;
        size_t j = s + 1;
        while (j < n) {
            uint64_t gap = count_chars(t, p[j - 1].end, p[j].start);
            if (len + gap + p[j].n > b->max) break;
            len += gap + p[j].n;
            j++;
        }
        int rc = emit(b, p[s].start, p[j - 1].end);
        if (rc) return rc;
        if (j >= n) break;
        /* The next chunk repeats whole trailing pieces of at most `overlap` characters
         * that still fit together with piece j, and starts after piece s. */
        size_t next = j;
        if (b->overlap > 0) {
            uint64_t gj = count_chars(t, p[j - 1].end, p[j].start), ol = 0;
            for (size_t k = j - 1; k > s; k--) {
                uint64_t add = p[k].n + (k < j - 1 ? count_chars(t, p[k].end, p[k + 1].start) : 0);
                if (ol + add > b->overlap || ol + add + gj + p[j].n > b->max) break;
                ol += add;
                next = k;
            }
        }
        s = next;
    }
    return 0;
}

/*
 * Appends the atoms of [a, end) to `out`: the span itself when it fits in max
 * characters, else the atoms of its pieces at `level` (or at the next level
 * when that one does not cut it); at the last level, windows of max
 * characters every max - overlap characters.
 */
static int atoms(builder *b, uint32_t a, uint32_t end, int level, spanvec *out) {
    const src *t = &b->t;
    if (!trim(t, &a, &end)) return 0;
    uint32_t n = count_chars(t, a, end);
    if (n <= b->max) return sv_push(out, a, end, n);
    if (level >= LV_CHAR) {
        uint32_t step = b->max - b->overlap, cp;
        for (;;) {
            uint32_t e = a, k = 0, next = a;
            while (e < end && k < b->max) {
                e = char_end(t, e, end, &cp);
                if (++k == step) next = e;
            }
            int rc = sv_push(out, a, e, k);
            if (rc || e >= end) return rc;
            a = next;
        }
    }
    spanvec sv = {0};
    int rc = split_level(t, a, end, level, &sv);
    if (!rc && sv.n <= 1) rc = atoms(b, a, end, level + 1, out);
    else
        for (size_t k = 0; !rc && k < sv.n; k++)
            rc = sv.v[k].n <= b->max ? sv_push(out, sv.v[k].start, sv.v[k].end, sv.v[k].n)
                                     : atoms(b, sv.v[k].start, sv.v[k].end, level + 1, out);
    free(sv.v);
    return rc;
}

static int recursive(builder *b, uint32_t a, uint32_t end) {
    spanvec sv = {0};
    int rc = atoms(b, a, end, LV_PARAGRAPH, &sv);
    if (!rc) rc = merge_pieces(b, sv.v, sv.n);
    free(sv.v);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Markdown                                                                 */
/* ------------------------------------------------------------------------ */

static int push_str(quarry_chunks *c, const char *s, size_t len, char **out) {
    if (c->nstrs == c->scap) {
        size_t cap = c->scap ? c->scap * 2 : 16;
        char **p = realloc(c->strs, cap * sizeof *p);
        if (!p) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
        c->strs = p, c->scap = cap;
    }
    char *d = strndup(s, len);
    if (!d) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
    c->strs[c->nstrs++] = d;
    *out = d;
    return 0;
}

/* Appends a heading path (n pointers) to the pool; *off receives its offset. */
static int push_path(quarry_chunks *c, char *const *path, uint32_t n, size_t *off) {
    if (c->nh + n > c->hcap) {
        size_t cap = c->hcap ? c->hcap : 16;
        while (cap < c->nh + n) cap *= 2;
        const char **p = realloc(c->hptrs, cap * sizeof *p);
        if (!p) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
        c->hptrs = p, c->hcap = cap;
    }
    *off = c->nh;
    for (uint32_t i = 0; i < n; i++) c->hptrs[c->nh++] = path[i];
    return 0;
}

/* Is the line [a, e) an ATX heading? Sets its level and text span. */
static int atx_heading(const src *t, uint32_t a, uint32_t e, int *level, uint32_t *ts,
                       uint32_t *te) {
    const unsigned char *s = t->s;
    uint32_t i = a;
    for (int k = 0; k < 3 && i < e && s[i] == ' '; k++) i++;
    int n = 0;
    while (i < e && s[i] == '#' && n < 7) i++, n++;
    if (n < 1 || n > 6) return 0;
    if (i < e && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    uint32_t x = i, y = e;
    if (!trim(t, &x, &y)) {
        *ts = *te = i;
    } else {
        /* drop a closing sequence of '#' preceded by a space (or making up the text) */
        uint32_t z = y;
        while (z > x && s[z - 1] == '#') z--;
        if (z == x || s[z - 1] == ' ' || s[z - 1] == '\t') {
            y = z;
            if (!trim(t, &x, &y)) x = y = z;
        }
        *ts = x, *te = y;
    }
    *level = n;
    return 1;
}

/* A fence line: at most 3 spaces, then 3 or more '`' or '~'. */
static int fence(const src *t, uint32_t a, uint32_t e, unsigned char *ch) {
    const unsigned char *s = t->s;
    uint32_t i = a;
    for (int k = 0; k < 3 && i < e && s[i] == ' '; k++) i++;
    if (i >= e || (s[i] != '`' && s[i] != '~')) return 0;
    unsigned char c = s[i];
    int n = 0;
    while (i < e && s[i] == c) i++, n++;
    if (n < 3) return 0;
    *ch = c;
    return 1;
}

typedef struct section {
    uint32_t start, body, end; /* body: after the heading line (== start: no heading) */
    size_t hoff;
    uint32_t hcount;
} section;

static int chunk_section(builder *b, const section *sec, uint32_t start) {
    uint32_t a = start, e = sec->end;
    if (!trim(&b->t, &a, &e)) return 0;
    b->hoff = sec->hoff, b->hcount = sec->hcount;
    int rc = recursive(b, a, e);
    b->hoff = 0, b->hcount = 0;
    return rc;
}

static int by_markdown(builder *b) {
    const src *t = &b->t;
    quarry_chunks *c = b->out;
    char *path[6];
    uint32_t depth = 0;
    int levels[6];
    unsigned char in_fence = 0;
    section cur = {0, 0, 0, 0, 0};
    uint32_t pending = UINT32_MAX; /* start of heading-only sections joined forward */
    int rc = 0;
    uint32_t i = 0;
    while (i < t->len && !rc) {
        const unsigned char *nl = memchr(t->s + i, '\n', t->len - i);
        uint32_t e = nl ? (uint32_t)(nl - t->s) + 1 : t->len;
        unsigned char ch;
        int lvl;
        uint32_t ts, te;
        if (fence(t, i, e, &ch)) {
            in_fence = in_fence == 0 ? ch : (in_fence == ch ? 0 : in_fence);
        } else if (!in_fence && atx_heading(t, i, e, &lvl, &ts, &te)) {
            /* close the current section */
            cur.end = i;
            uint32_t x = cur.body, y = i;
            int has_body = trim(t, &x, &y);
            if (has_body || cur.body == cur.start) {
                uint32_t s0 = pending != UINT32_MAX ? pending : cur.start;
                if (has_body || pending != UINT32_MAX) rc = chunk_section(b, &cur, s0);
                pending = UINT32_MAX;
            } else if (pending == UINT32_MAX) {
                pending = cur.start; /* heading only: join the next section */
            }
            /* the new heading path */
            while (depth > 0 && levels[depth - 1] >= lvl) depth--;
            char *h = NULL;
            if (!rc) rc = push_str(c, (const char *)t->s + ts, te - ts, &h);
            if (!rc && depth < 6) path[depth] = h, levels[depth] = lvl, depth++;
            size_t off = 0;
            if (!rc) rc = push_path(c, path, depth, &off);
            cur = (section){i, e, t->len, off, depth};
        }
        i = e;
    }
    if (!rc) {
        cur.end = t->len;
        rc = chunk_section(b, &cur, pending != UINT32_MAX ? pending : cur.start);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

void quarry_chunks_free(quarry_chunks *c) {
    if (!c) return;
    for (size_t i = 0; i < c->nstrs; i++) free(c->strs[i]);
    free(c->strs);
    free(c->hptrs);
    free(c->hoff);
    free(c->v);
    free(c);
}

size_t quarry_chunks_count(const quarry_chunks *c) { return c ? c->n : 0; }

const quarry_chunk *quarry_chunks_get(const quarry_chunks *c, size_t i) {
    return c && i < c->n ? &c->v[i] : NULL;
}

/* Resolves the options: defaults, then range checks. */
static int resolve_options(const quarry_chunk_options *opts, quarry_chunk_strategy *strategy,
                           uint32_t *max, uint32_t *overlap) {
    quarry_chunk_options o;
    quarry_chunk_options_init(&o);
    if (opts) {
        if (opts->size != 0 && opts->size < sizeof o)
            return q_err(QUARRY_MISUSE, "quarry_chunk_options.size is %zu, want %zu", opts->size,
                         sizeof o);
        o.strategy = opts->strategy, o.max = opts->max, o.overlap = opts->overlap;
    }
    if ((unsigned)o.strategy >= NSTRATEGIES)
        return q_err(QUARRY_INVALID, "unknown chunking strategy %d", (int)o.strategy);
    const strategy_info *si = &STRATEGIES[o.strategy];
    *max = o.max ? o.max : si->max;
    if (o.overlap != QUARRY_CHUNK_DEFAULT) *overlap = o.overlap;
    else if (si->overlap < 0) *overlap = *max / 5;
    else *overlap = (uint32_t)si->overlap < *max ? (uint32_t)si->overlap : *max - 1;
    if (*max > QUARRY_CHUNK_MAX_SIZE)
        return q_err(QUARRY_INVALID, "chunk max %u is above %u", *max, QUARRY_CHUNK_MAX_SIZE);
    if (*overlap >= *max)
        return q_err(QUARRY_INVALID, "chunk overlap %u must be less than max %u", *overlap,
                     *max);
    *strategy = o.strategy;
    return 0;
}

int quarry_chunk_text(const char *text, size_t len, const quarry_chunk_options *opts,
                      quarry_chunks **out) {
    q_err_clear();
    if (!out) return q_err(QUARRY_MISUSE, "quarry_chunk_text: out is NULL");
    *out = NULL;
    if (!text && len) return q_err(QUARRY_MISUSE, "quarry_chunk_text: text is NULL");
    if (text && len == 0) len = strlen(text);
    if (len > QUARRY_MAX_TEXT_LEN)
        return q_err(QUARRY_INVALID, "text is %zu bytes, the limit is %u", len,
                     QUARRY_MAX_TEXT_LEN);
    size_t bad = 0;
    if (len && !utf8_check((const unsigned char *)text, len, &bad))
        return q_err(QUARRY_INVALID, "text is not valid UTF-8 (byte offset %zu)", bad);
    quarry_chunk_strategy strategy = QUARRY_CHUNK_SENTENCE;
    uint32_t max = 1, overlap = 0;
    int rc = resolve_options(opts, &strategy, &max, &overlap);
    if (rc) return rc;
    quarry_chunks *c = calloc(1, sizeof *c);
    if (!c) return q_err(QUARRY_NOMEM, "out of memory (chunking)");
    builder b = {.t = {(const unsigned char *)text, (uint32_t)len}, .max = max,
                 .overlap = overlap, .out = c};
    if (len) {
        switch (strategy) {
        case QUARRY_CHUNK_FIXED_CHARS: rc = fixed_chars(&b, 0, b.t.len, max, overlap, 1); break;
        case QUARRY_CHUNK_FIXED_WORDS: rc = fixed_words(&b, 0, b.t.len, max, overlap); break;
        case QUARRY_CHUNK_SENTENCE: rc = by_sentence(&b, 0, b.t.len); break;
        case QUARRY_CHUNK_RECURSIVE: rc = recursive(&b, 0, b.t.len); break;
        case QUARRY_CHUNK_MARKDOWN: rc = by_markdown(&b); break;
        }
    }
    if (rc) {
        quarry_chunks_free(c);
        return rc;
    }
    for (size_t i = 0; i < c->n; i++)
        c->v[i].headings = c->v[i].nheadings ? c->hptrs + c->hoff[i] : NULL;
    *out = c;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* quarry_upsert_document                                                   */
/* ------------------------------------------------------------------------ */

static const char *const RESERVED[] = {"_parent", "_chunk", "_start", "_end", "_heading"};

/* Upserts of one (collection, document id) are serialised by a striped lock,
 * so two concurrent versions of a document never interleave their reads of
 * the old chunk count with each other's commits. */
#define DOC_LOCKS 64
static pthread_mutex_t doc_locks[DOC_LOCKS];
static pthread_once_t doc_locks_once = PTHREAD_ONCE_INIT;

static void doc_locks_init(void) {
    for (int i = 0; i < DOC_LOCKS; i++) pthread_mutex_init(&doc_locks[i], NULL);
}

static pthread_mutex_t *doc_lock(const char *coll, const char *id, size_t id_len) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = coll; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (size_t i = 0; i < id_len; i++) h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
    pthread_once(&doc_locks_once, doc_locks_init);
    return &doc_locks[h % DOC_LOCKS];
}

static int chunk_id(char *buf, const char *id, size_t id_len, size_t n, size_t *len) {
    int w = snprintf(buf + id_len, 32, "#%zu", n);
    memcpy(buf, id, id_len);
    *len = id_len + (size_t)w;
    return *len <= QUARRY_MAX_ID_LEN;
}

int quarry_upsert_document(quarry_coll *coll, const quarry_document *doc,
                           const quarry_chunk_options *opts, size_t *nchunks) {
    q_err_clear();
    if (nchunks) *nchunks = 0;
    if (!coll || !doc) return q_err(QUARRY_MISUSE, "quarry_upsert_document: NULL argument");
    const char *id = doc->id;
    size_t id_len = doc->id_len;
    if (!id) return q_err(QUARRY_INVALID, "document id is NULL");
    if (id_len == 0) id_len = strnlen(id, QUARRY_MAX_ID_LEN + 1);
    size_t bad;
    if (id_len == 0) return q_err(QUARRY_INVALID, "document id is empty");
    if (id_len > QUARRY_MAX_ID_LEN - 2)
        return q_err(QUARRY_INVALID, "document id is longer than %d bytes (chunk ids add \"#N\")",
                     QUARRY_MAX_ID_LEN - 2);
    if (!utf8_check((const unsigned char *)id, id_len, &bad))
        return q_err(QUARRY_INVALID, "document id is not valid UTF-8");
    if (!doc->text && doc->text_len)
        return q_err(QUARRY_MISUSE, "quarry_upsert_document: text is NULL");

    json_t *meta = NULL;
    if (doc->metadata) {
        size_t ml = doc->metadata_len ? doc->metadata_len : strlen(doc->metadata);
        json_error_t jerr;
        meta = json_loadb(doc->metadata, ml, JSON_REJECT_DUPLICATES, &jerr);
        if (!meta) return q_err(QUARRY_INVALID, "metadata is not valid JSON: %s", jerr.text);
        if (!json_is_object(meta)) {
            json_decref(meta);
            return q_err(QUARRY_INVALID, "metadata must be a JSON object");
        }
        for (size_t i = 0; i < sizeof RESERVED / sizeof RESERVED[0]; i++)
            if (json_object_get(meta, RESERVED[i])) {
                json_decref(meta);
                return q_err(QUARRY_INVALID,
                             "metadata key '%s' is reserved for chunk rows", RESERVED[i]);
            }
    } else {
        meta = json_object();
        if (!meta) return q_err(QUARRY_NOMEM, "out of memory");
    }

    quarry_chunks *ch = NULL;
    quarry_batch *batch = NULL;
    pthread_mutex_t *lock = NULL;
    quarry_doc *old = NULL;
    char cid[QUARRY_MAX_ID_LEN + 40];
    size_t cid_len;
    int rc = quarry_chunk_text(doc->text ? doc->text : "", doc->text ? doc->text_len : 0, opts,
                               &ch);
    if (rc) goto out;
    size_t n = quarry_chunks_count(ch);
    if (doc->vectors && doc->nvectors != n) {
        rc = q_err(QUARRY_INVALID, "the document has %zu chunks but %zu vectors were given", n,
                   doc->nvectors);
        goto out;
    }
    if (!doc->vectors && doc->nvectors) {
        rc = q_err(QUARRY_INVALID, "nvectors is %zu but vectors is NULL", doc->nvectors);
        goto out;
    }
    if (n > 0 && !chunk_id(cid, id, id_len, n - 1, &cid_len)) {
        rc = q_err(QUARRY_INVALID, "chunk id '%.*s' would be longer than %d bytes", (int)cid_len,
                   cid, QUARRY_MAX_ID_LEN);
        goto out;
    }
    if ((rc = quarry_batch_new(coll, &batch))) goto out;
    lock = doc_lock(quarry_collection_name(coll), id, id_len);
    pthread_mutex_lock(lock);
    const char *text = doc->text;
    for (size_t i = 0; i < n; i++) {
        const quarry_chunk *k = quarry_chunks_get(ch, i);
        json_t *m = json_deep_copy(meta);
        json_t *hp = k->nheadings ? json_array() : NULL;
        int jr = !m || (k->nheadings && !hp);
        jr |= json_object_set_new(m, "_parent", json_stringn(id, id_len));
        jr |= json_object_set_new(m, "_chunk", json_integer((json_int_t)i));
        jr |= json_object_set_new(m, "_start", json_integer((json_int_t)k->start));
        jr |= json_object_set_new(m, "_end", json_integer((json_int_t)k->end));
        for (uint32_t h = 0; hp && h < k->nheadings; h++)
            jr |= json_array_append_new(hp, json_string(k->headings[h]));
        if (hp) jr |= json_object_set_new(m, "_heading", hp);
        char *ms = jr ? NULL : json_dumps(m, JSON_COMPACT);
        json_decref(m);
        if (!ms) {
            rc = q_err(QUARRY_NOMEM, "out of memory (chunk metadata)");
            goto out;
        }
        chunk_id(cid, id, id_len, i, &cid_len);
        quarry_row row = {.id = cid, .id_len = cid_len, .text = text + k->start,
                          .text_len = k->end - k->start, .metadata = ms,
                          .metadata_len = strlen(ms)};
        if (doc->vectors) {
            row.vector = doc->vectors + i * (size_t)doc->dim;
            row.dim = doc->dim;
        }
        rc = quarry_batch_upsert(batch, &row);
        free(ms);
        if (rc) {
            rc = q_err_prefix(rc, "chunk %zu", i);
            goto out;
        }
    }
    /* Delete chunk rows of an earlier, longer version: they are contiguous. */
    for (size_t i = n;; i++) {
        if (!chunk_id(cid, id, id_len, i, &cid_len)) break;
        rc = quarry_get(coll, cid, cid_len, &old);
        quarry_doc_free(old);
        old = NULL;
        if ((rc & 0xff) == QUARRY_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc || (rc = quarry_batch_delete(batch, cid, cid_len))) goto out;
    }
    if ((rc = quarry_batch_commit(batch))) goto out;
    if (nchunks) *nchunks = n;
out:
    if (lock) pthread_mutex_unlock(lock);
    quarry_batch_free(batch);
    quarry_chunks_free(ch);
    json_decref(meta);
    return rc;
}
