/* SPDX-License-Identifier: MIT */
/*
 * analyzer.c -- text -> (term, position) stream, shared by documents and
 * queries.
 *
 * Pipeline
 *  1. Validation: the bytes must be UTF-8 (utf8proc's rules: no overlong
 *     forms, no surrogates, nothing above U+10FFFF). Invalid input is an
 *     error (QUARRY_INVALID naming the byte offset), never silently replaced:
 *     the host validates rows on the write path and a query with broken bytes
 *     is a client bug worth reporting.
 *  2. Normalisation: NFKD with Unicode case folding (utf8proc_decompose with
 *     DECOMPOSE | COMPAT | CASEFOLD), then a fold pass, then canonical
 *     composition -> NFKC_Casefold-like output. Fullwidth forms, ligatures
 *     ("ﬁ" -> "fi"), superscripts, Roman numerals and halfwidth katakana all
 *     fold to their plain forms; "Straße" -> "strasse", "ΣΊΣΥΦΟΣ" -> "σισυφοσ".
 *     The fold pass always drops invisible joiners that would otherwise split
 *     a word (soft hyphen, ZWJ/ZWNJ, word joiner, BOM, variation selectors);
 *     with accent folding it also drops combining marks that follow a Latin,
 *     Greek or Cyrillic letter ("École" -> "ecole") and maps the few Latin
 *     letters without a decomposition (ø ł đ ħ ŧ ı æ œ ð þ). We do not use
 *     UTF8PROC_STRIPMARK: it strips every mark, which destroys Devanagari,
 *     Thai or Tamil words (their vowel signs are marks) and Japanese voicing
 *     marks when they come uncomposed. Pure-ASCII text skips utf8proc (its
 *     NFKC_Casefold is ASCII lower-casing).
 *  3. Words (a subset of UAX #29 suited to search): maximal runs of letters,
 *     numbers and marks. An apostrophe (U+0027, U+2019) between two letters
 *     stays in the word ("don't", "o'neil"; the English stemmer then removes
 *     a possessive "'s"); a '.' between two digits too ("3.14"). Everything
 *     else separates: spaces, punctuation (so "e-mail" -> "e", "mail" and
 *     "snake_case" -> "snake", "case", as SQLite's unicode61 does; Lucene's
 *     StandardTokenizer keeps '_' inside words), symbols and emoji.
 *  4. CJK: a run of Han, Hiragana, Katakana or Hangul characters (a
 *     character's trailing marks belong to it) is indexed as overlapping
 *     bigrams, each at its own position ("東京都" -> "東京"@0 "京都"@1); a run
 *     of one character is a unigram. This is Lucene's CJKBigramFilter without
 *     unigram output. A run ends where a non-CJK letter starts
 *     ("iPhone手机" -> "iphone", "手机"). Thai, Lao, Khmer and Myanmar have no
 *     dictionary segmentation here: a run of them is one word.
 *  5. Words longer than max_term_bytes are dropped (Lucene splits them at 255
 *     characters); stop words are dropped; both still take a position, so a
 *     phrase keeps its gaps ("the cat in the hat" matches "cat" and "hat"
 *     three positions apart).
 *  6. Stemming: Snowball (libstemmer) for non-CJK words. The default
 *     "english" is Porter2; Lucene's EnglishAnalyzer uses the original Porter
 *     algorithm (language "porter" here) and, like us, the 33-word stop list
 *     below. sb_stemmer objects are not thread-safe: each text_analyze call
 *     borrows a worker (stemmer + buffers) from a mutex-protected free list
 *     and returns it, so concurrent queries never share one; the pool grows
 *     to the peak number of concurrent callers. Each worker keeps a small
 *     direct-mapped cache of recent (word -> stem) pairs: word frequencies
 *     are Zipfian and stemming is a pure function, so most words skip the
 *     stemmer (it was a third of the indexing time).
 *
 * Positions count words (one per word, stop words and dropped words
 * included; one per CJK gram), starting at 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <libstemmer.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "common/qcommon.h"
#include "text.h"

#define ANALYZER_VERSION 1u
#define WORKER_KEEP_CP   (1u << 18) /* code points a pooled worker keeps between calls */

/* Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET. */
static const char *const english_stop[] = {
    "a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
    "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
    "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};

/* A direct-mapped cache of recent stems: word frequencies are Zipfian, so
 * most words were stemmed moments ago (stemming is a pure function). */
#define STEM_CACHE 1024
#define STEM_SLOT  30
typedef struct stem_slot {
    uint8_t wlen, slen; /* wlen 0 = empty */
    char w[STEM_SLOT], s[STEM_SLOT];
} stem_slot;

typedef struct worker {
    struct worker *next;
    struct sb_stemmer *st;
    int32_t *cp, *cp2;
    size_t cap, cap2;
    stem_slot *cache; /* STEM_CACHE slots, NULL without stemming */
} worker;

typedef struct stopset {
    char *bytes;   /* the words, back to back */
    uint32_t *off; /* word i = bytes[off[i] .. off[i+1]) */
    uint32_t count;
    uint32_t *slot; /* open addressing: word index + 1, 0 = empty */
    uint32_t mask;
} stopset;

struct text_analyzer {
    char language[64]; /* resolved; "none" = no stemming */
    int stem;
    int fold_accents;
    uint32_t max_term;
    stopset stop;
    uint64_t fingerprint;
    pthread_mutex_t mu;
    worker *free_workers;
};

/* ---------------------------------------------------------------- classes */

enum { C_SEP = 0, C_WORD, C_CJK, C_MARK, C_APOS, C_DOT };

typedef struct range {
    int32_t lo, hi;
} range;

static int in_ranges(const range *r, size_t n, int32_t c) {
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].lo && c <= r[i].hi) return 1;
    return 0;
}

/* Han, Hiragana, Katakana and Hangul (letters and numbers of those blocks). */
static const range cjk[] = {
    {0x1100, 0x11FF},   /* Hangul Jamo */
    {0x3005, 0x3007},   /* 々 〆 〇 */
    {0x3021, 0x3029},   /* Hangzhou numerals */
    {0x3031, 0x3035},   /* kana repeat marks */
    {0x3038, 0x303C},   /* more ideographic marks */
    {0x3040, 0x30FF},   /* Hiragana, Katakana */
    {0x3130, 0x318F},   /* Hangul compatibility jamo */
    {0x31F0, 0x31FF},   /* Katakana phonetic extensions */
    {0x3400, 0x4DBF},   /* CJK extension A */
    {0x4E00, 0x9FFF},   /* CJK unified ideographs */
    {0xA960, 0xA97F},   /* Hangul Jamo extended A */
    {0xAC00, 0xD7FF},   /* Hangul syllables, Jamo extended B */
    {0xF900, 0xFAFF},   /* compatibility ideographs */
    {0xFF66, 0xFFDC},   /* halfwidth katakana and hangul */
    {0x1B000, 0x1B16F}, /* kana supplement and extended */
    {0x20000, 0x3FFFF}, /* ideographs, planes 2 and 3 */
};

static int in_cjk(int32_t c) {
    return c >= 0x1100 && in_ranges(cjk, sizeof cjk / sizeof cjk[0], c);
}

/* Latin, Greek and Cyrillic: the scripts whose marks are folded away. */
static const range lgc[] = {
    {0x0000, 0x02AF}, /* ASCII, Latin-1, Latin Extended-A/B, IPA */
    {0x0370, 0x052F}, /* Greek, Cyrillic */
    {0x1C80, 0x1C8F}, /* Cyrillic Extended-C */
    {0x1D00, 0x1DBF}, /* phonetic extensions */
    {0x1E00, 0x1FFF}, /* Latin Extended Additional, Greek Extended */
    {0x2C60, 0x2C7F}, /* Latin Extended-C */
    {0x2DE0, 0x2DFF}, /* Cyrillic Extended-A */
    {0xA640, 0xA69F}, /* Cyrillic Extended-B */
    {0xA720, 0xA7FF}, /* Latin Extended-D */
    {0xAB30, 0xAB6F}, /* Latin Extended-E */
    {0xFB00, 0xFB06}, /* Latin ligatures */
};

static int in_lgc(int32_t c) { return c < 0x0250 || in_ranges(lgc, sizeof lgc / sizeof lgc[0], c); }

static int is_letter_cat(utf8proc_category_t k) {
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int cp_class(int32_t c) {
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))
            return C_WORD;
        if (c == '\'') return C_APOS;
        if (c == '.') return C_DOT;
        return C_SEP;
    }
    if (c == 0x2019) return C_APOS;
    utf8proc_category_t k = utf8proc_category(c);
    int wordish = is_letter_cat(k) || (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
    if (k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME) return C_MARK;
    if (!wordish) return C_SEP;
    return in_cjk(c) ? C_CJK : C_WORD;
}

static int is_letter(int32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return is_letter_cat(utf8proc_category(c)) && !in_cjk(c);
}

static int is_digit(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return utf8proc_category(c) == UTF8PROC_CATEGORY_ND;
}

/* Invisible characters dropped before segmentation (they would split words). */
static int is_dropped(int32_t c) {
    return c == 0x00AD || c == 0x034F || c == 0x200C || c == 0x200D || c == 0x2060 || c == 0xFEFF ||
           (c >= 0x180B && c <= 0x180D) || (c >= 0xFE00 && c <= 0xFE0F) ||
           (c >= 0xE0000 && c <= 0xE01EF);
}

/* Latin letters with no decomposition, folded like ASCIIFoldingFilter. */
static const struct {
    int32_t c;
    char to[3];
} special[] = {
    {0x00F8, "o"},  /* ø */ {0x0111, "d"},  /* đ */ {0x00F0, "d"},  /* ð */
    {0x0142, "l"},  /* ł */ {0x0127, "h"},  /* ħ */ {0x0167, "t"},  /* ŧ */
    {0x0131, "i"},  /* ı */ {0x00E6, "ae"}, /* æ */ {0x0153, "oe"}, /* œ */
    {0x00FE, "th"},                                                 /* þ */
};

/* Writes up to 2 code points; returns the count, 0 when c is not special. */
static int fold_special(int32_t c, int32_t *o) {
    if (c < 0xE6 || c > 0x167) return 0;
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        if (special[i].c == c) {
            int n = 0;
            for (; special[i].to[n]; n++) o[n] = special[i].to[n];
            return n;
        }
    return 0;
}

/* --------------------------------------------------------------- stop set */

static uint32_t stop_hash(const char *s, size_t n) { return (uint32_t)XXH3_64bits(s, n); }

static int stopset_has(const stopset *s, const char *w, size_t n) {
    if (!s->count) return 0;
    uint32_t i = stop_hash(w, n) & s->mask;
    for (;;) {
        uint32_t v = s->slot[i];
        if (!v) return 0;
        uint32_t a = s->off[v - 1], b = s->off[v];
        if (b - a == n && memcmp(s->bytes + a, w, n) == 0) return 1;
        i = (i + 1) & s->mask;
    }
}

static void stopset_free(stopset *s) {
    q_free(s->bytes);
    q_free(s->off);
    q_free(s->slot);
    memset(s, 0, sizeof *s);
}

/* Build from already-normalised words (duplicates collapse). */
static int stopset_build(stopset *s, char **words, const size_t *lens, size_t n) {
    memset(s, 0, sizeof *s);
    if (!n) return 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += lens[i];
    if (n > (1u << 24) || total > (1u << 30)) return q_err(QUARRY_INVALID, "too many stop words");
    uint32_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    s->bytes = q_malloc(total + 1);
    s->off = q_malloc((n + 1) * sizeof *s->off);
    s->slot = q_calloc(cap, sizeof *s->slot);
    if (!s->bytes || !s->off || !s->slot) {
        stopset_free(s);
        return q_err(QUARRY_NOMEM, "stop words");
    }
    s->mask = cap - 1;
    s->off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (stopset_has(s, words[i], lens[i])) continue;
        uint32_t a = s->off[s->count];
        memcpy(s->bytes + a, words[i], lens[i]);
        s->off[s->count + 1] = a + (uint32_t)lens[i];
        s->count++;
        uint32_t j = stop_hash(words[i], lens[i]) & s->mask;
        while (s->slot[j]) j = (j + 1) & s->mask;
        s->slot[j] = s->count;
    }
    return 0;
}

/* ----------------------------------------------------------------- workers */

static void worker_free(worker *w) {
    if (!w) return;
    if (w->st) sb_stemmer_delete(w->st);
    q_free(w->cache);
    q_free(w->cp);
    q_free(w->cp2);
    q_free(w);
}

static worker *worker_get(const text_analyzer *an) {
    text_analyzer *m = (text_analyzer *)an; /* the pool is the only mutable part */
    pthread_mutex_lock(&m->mu);
    worker *w = m->free_workers;
    if (w) m->free_workers = w->next;
    pthread_mutex_unlock(&m->mu);
    if (w) return w;
    w = q_calloc(1, sizeof *w);
    if (!w) return NULL;
    if (an->stem) {
        w->st = sb_stemmer_new(an->language, NULL);
        w->cache = q_calloc(STEM_CACHE, sizeof *w->cache);
        if (!w->st || !w->cache) {
            worker_free(w);
            return NULL;
        }
    }
    return w;
}

static void worker_put(const text_analyzer *an, worker *w) {
    text_analyzer *m = (text_analyzer *)an;
    if (w->cap > WORKER_KEEP_CP) {
        q_free(w->cp);
        w->cp = NULL;
        w->cap = 0;
    }
    if (w->cap2 > WORKER_KEEP_CP) {
        q_free(w->cp2);
        w->cp2 = NULL;
        w->cap2 = 0;
    }
    pthread_mutex_lock(&m->mu);
    w->next = m->free_workers;
    m->free_workers = w;
    pthread_mutex_unlock(&m->mu);
}

static int grow(int32_t **p, size_t *cap, size_t need) {
    if (*cap >= need) return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    if (n > SIZE_MAX / sizeof(int32_t)) return QUARRY_NOMEM;
    int32_t *q = q_realloc(*p, n * sizeof *q);
    if (!q) return QUARRY_NOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* ------------------------------------------------------------ normalising */

static size_t first_invalid(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
        if (n <= 0) return i;
        i += (size_t)n;
    }
    return len;
}

/* text -> normalised code points in w->cp; returns the count or < 0 (rc). */
static ptrdiff_t normalise(const text_analyzer *an, worker *w, const char *text, size_t len) {
    const uint8_t *s = (const uint8_t *)text;
    int ascii = 1;
    for (size_t i = 0; i < len; i++)
        if (s[i] & 0x80) {
            ascii = 0;
            break;
        }
    if (ascii) {
        if (grow(&w->cp, &w->cap, len + 1)) return -QUARRY_NOMEM;
        for (size_t i = 0; i < len; i++) {
            int32_t c = s[i];
            w->cp[i] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        }
        return (ptrdiff_t)len;
    }
    if (len > (size_t)PTRDIFF_MAX / 64) return -QUARRY_INVALID;
    utf8proc_option_t opt =
        UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_STABLE;
    if (grow(&w->cp2, &w->cap2, len + 64)) return -QUARRY_NOMEM;
    utf8proc_ssize_t n;
    for (;;) {
        n = utf8proc_decompose(s, (utf8proc_ssize_t)len, w->cp2, (utf8proc_ssize_t)w->cap2, opt);
        if (n < 0) {
            if (n == UTF8PROC_ERROR_INVALIDUTF8)
                return -q_err(QUARRY_INVALID, "invalid UTF-8 at byte %zu", first_invalid(s, len));
            if (n == UTF8PROC_ERROR_NOMEM) return -QUARRY_NOMEM;
            return -q_err(QUARRY_INVALID, "text normalisation failed (%d)", (int)n);
        }
        if ((size_t)n <= w->cap2) break;
        if (grow(&w->cp2, &w->cap2, (size_t)n)) return -QUARRY_NOMEM;
    }
    /* Fold pass: cp2 -> cp (may expand by 2x for æ/œ/þ). */
    if (grow(&w->cp, &w->cap, 2 * (size_t)n + 1)) return -QUARRY_NOMEM;
    size_t o = 0;
    int base_lgc = 0;
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        int32_t c = w->cp2[i];
        if (is_dropped(c)) continue;
        utf8proc_category_t k = utf8proc_category(c);
        int mark = k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME;
        if (an->fold_accents) {
            if (mark) {
                if (base_lgc) continue;
            } else {
                base_lgc = in_lgc(c);
                int32_t f[2];
                int nf = base_lgc ? fold_special(c, f) : 0;
                if (nf) {
                    for (int j = 0; j < nf; j++) w->cp[o++] = f[j];
                    continue;
                }
            }
        }
        w->cp[o++] = c;
    }
    utf8proc_ssize_t m =
        utf8proc_normalize_utf32(w->cp, (utf8proc_ssize_t)o, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    if (m < 0) return -q_err(QUARRY_INVALID, "text normalisation failed (%d)", (int)m);
    return (ptrdiff_t)m;
}

/* --------------------------------------------------------------- emitting */

typedef struct emit {
    const text_analyzer *an;
    worker *w;
    text_term_fn fn;
    void *ctx;
    int raw; /* no stop words, no stemming (building the stop set) */
    uint32_t pos;
    char buf[TEXT_MAX_TERM + 8];
} emit;

/* UTF-8 of cp[a..b) into e->buf; apostrophes as U+0027. Returns the length,
 * or -1 when over the limit. */
static ptrdiff_t encode(emit *e, const int32_t *cp, size_t a, size_t b) {
    size_t n = 0, lim = e->an->max_term;
    for (size_t i = a; i < b; i++) {
        int32_t c = cp[i] == 0x2019 ? '\'' : cp[i];
        if (c < 0x80) {
            if (n + 1 > lim) return -1;
            e->buf[n++] = (char)c;
        } else {
            uint8_t tmp[4];
            utf8proc_ssize_t k = utf8proc_encode_char(c, tmp);
            if (n + (size_t)k > lim) return -1;
            memcpy(e->buf + n, tmp, (size_t)k);
            n += (size_t)k;
        }
    }
    return (ptrdiff_t)n;
}

static int next_pos(emit *e) {
    if (e->pos >= UINT32_MAX - 1) return q_err(QUARRY_INVALID, "text: too many words");
    e->pos++;
    return 0;
}

static int emit_word(emit *e, const int32_t *cp, size_t a, size_t b) {
    ptrdiff_t n = encode(e, cp, a, b);
    uint32_t pos = e->pos;
    int rc = next_pos(e);
    if (rc) return rc;
    if (n <= 0) return 0;
    if (!e->raw && stopset_has(&e->an->stop, e->buf, (size_t)n)) return 0;
    if (!e->raw && e->an->stem) {
        stem_slot *sl = NULL;
        if (n <= STEM_SLOT) {
            uint32_t h = 2166136261u;
            for (ptrdiff_t i = 0; i < n; i++) h = (h ^ (uint8_t)e->buf[i]) * 16777619u;
            sl = &e->w->cache[(h ^ (h >> 15)) & (STEM_CACHE - 1)];
            if (sl->wlen == n && memcmp(sl->w, e->buf, (size_t)n) == 0)
                return sl->slen ? e->fn(e->ctx, sl->s, sl->slen, pos) : 0;
        }
        const sb_symbol *st = sb_stemmer_stem(e->w->st, (const sb_symbol *)e->buf, (int)n);
        if (!st) return q_err(QUARRY_NOMEM, "stemmer");
        int len = sb_stemmer_length(e->w->st);
        if (len < 0) len = 0;
        if (sl && len <= STEM_SLOT) {
            sl->wlen = (uint8_t)n;
            memcpy(sl->w, e->buf, (size_t)n);
            sl->slen = (uint8_t)len;
            memcpy(sl->s, st, (size_t)len);
        }
        if (len == 0) return 0;
        return e->fn(e->ctx, (const char *)st, (size_t)len, pos);
    }
    return e->fn(e->ctx, e->buf, (size_t)n, pos);
}

static int emit_gram(emit *e, const int32_t *cp, size_t a, size_t b) {
    ptrdiff_t n = encode(e, cp, a, b);
    uint32_t pos = e->pos;
    int rc = next_pos(e);
    if (rc) return rc;
    if (n <= 0) return 0;
    if (!e->raw && stopset_has(&e->an->stop, e->buf, (size_t)n)) return 0;
    return e->fn(e->ctx, e->buf, (size_t)n, pos);
}

static int segment(emit *e, const int32_t *cp, size_t n) {
    size_t i = 0;
    while (i < n) {
        int cls = cp_class(cp[i]);
        if (cls == C_WORD) {
            size_t j = i + 1;
            while (j < n) {
                int c = cp_class(cp[j]);
                if (c == C_WORD || c == C_MARK) {
                    j++;
                } else if (c == C_APOS && j + 1 < n && is_letter(cp[j - 1]) &&
                           is_letter(cp[j + 1])) {
                    j += 2;
                } else if (c == C_DOT && j + 1 < n && is_digit(cp[j - 1]) && is_digit(cp[j + 1])) {
                    j += 2;
                } else {
                    break;
                }
            }
            int rc = emit_word(e, cp, i, j);
            if (rc) return rc;
            i = j;
        } else if (cls == C_CJK) {
            /* Units: a CJK character and its trailing marks. */
            size_t u0 = i, u1 = i + 1; /* current unit [u0, u1) */
            while (u1 < n && cp_class(cp[u1]) == C_MARK) u1++;
            size_t j = u1;
            if (j >= n || cp_class(cp[j]) != C_CJK) {
                int rc = emit_gram(e, cp, u0, u1); /* a lone character: unigram */
                if (rc) return rc;
                i = j;
                continue;
            }
            while (j < n && cp_class(cp[j]) == C_CJK) {
                size_t v1 = j + 1;
                while (v1 < n && cp_class(cp[v1]) == C_MARK) v1++;
                int rc = emit_gram(e, cp, u0, v1);
                if (rc) return rc;
                u0 = j;
                j = v1;
            }
            i = j;
        } else {
            i++;
        }
    }
    return 0;
}

static int analyze(const text_analyzer *an, const char *text, size_t len, text_term_fn fn,
                   void *ctx, int raw) {
    if (len && !text) return q_err(QUARRY_INVALID, "text: NULL");
    worker *w = worker_get(an);
    if (!w) return q_err(QUARRY_NOMEM, "text analyzer worker");
    int rc = 0;
    ptrdiff_t n = normalise(an, w, text, len);
    if (n < 0) {
        rc = (int)-n;
        if (rc == QUARRY_NOMEM) q_err(rc, "text: normalising %zu bytes", len);
    } else {
        emit e = {.an = an, .w = w, .fn = fn, .ctx = ctx, .raw = raw, .pos = 0};
        rc = segment(&e, w->cp, (size_t)n);
    }
    worker_put(an, w);
    return rc;
}

int text_analyze(const text_analyzer *an, const char *text, size_t len, text_term_fn fn,
                 void *ctx) {
    return analyze(an, text, len, fn, ctx, 0);
}

/* -------------------------------------------------------------- lifecycle */

typedef struct collect {
    char *w;
    size_t n;
    int count;
} collect;

static int collect_one(void *ctx, const char *term, size_t len, uint32_t pos) {
    collect *c = ctx;
    (void)pos;
    if (++c->count > 1) return QUARRY_INVALID;
    c->w = q_strndup(term, len);
    c->n = len;
    return c->w ? 0 : QUARRY_NOMEM;
}

static int is_fold_language(const char *l) {
    return !strcmp(l, "english") || !strcmp(l, "porter") || !strcmp(l, "none") ||
           !strcmp(l, "en") || !strcmp(l, "eng");
}

static int is_english(const char *l) {
    return !strcmp(l, "english") || !strcmp(l, "porter") || !strcmp(l, "en") || !strcmp(l, "eng");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int text_analyzer_new(const text_analyzer_config *cfg, text_analyzer **out) {
    *out = NULL;
    text_analyzer_config def;
    memset(&def, 0, sizeof def);
    if (!cfg) cfg = &def;
    const char *lang = cfg->language && cfg->language[0] ? cfg->language : TEXT_DEFAULT_LANGUAGE;
    if (strlen(lang) >= 64) return q_err(QUARRY_INVALID, "analyzer: language name too long");
    if (cfg->max_term_bytes > TEXT_MAX_TERM)
        return q_err(QUARRY_INVALID, "analyzer: max_term_bytes %u > %u", cfg->max_term_bytes,
                     TEXT_MAX_TERM);
    if (cfg->stopwords > TEXT_STOP_CUSTOM || cfg->accents > TEXT_ACCENTS_KEEP)
        return q_err(QUARRY_INVALID, "analyzer: bad stop word or accent mode");
    if (cfg->stopwords == TEXT_STOP_CUSTOM && cfg->nstopwords && !cfg->stopword_list)
        return q_err(QUARRY_INVALID, "analyzer: custom stop words without a list");
    int stem = strcmp(lang, "none") != 0;
    if (stem) {
        struct sb_stemmer *st = sb_stemmer_new(lang, NULL);
        if (!st) return q_err(QUARRY_INVALID, "analyzer: unknown stemming language \"%s\"", lang);
        sb_stemmer_delete(st);
    }
    text_analyzer *an = q_calloc(1, sizeof *an);
    if (!an) return q_err(QUARRY_NOMEM, "analyzer");
    snprintf(an->language, sizeof an->language, "%s", lang);
    an->stem = stem;
    an->fold_accents = cfg->accents == TEXT_ACCENTS_FOLD ||
                       (cfg->accents == TEXT_ACCENTS_DEFAULT && is_fold_language(lang));
    an->max_term = cfg->max_term_bytes ? cfg->max_term_bytes : TEXT_DEFAULT_MAX_TERM;
    pthread_mutex_init(&an->mu, NULL);

    /* Stop words, normalised like text (without stop words or stemming). */
    const char *const *list = NULL;
    size_t nlist = 0;
    text_stop_mode sm = cfg->stopwords;
    if (sm == TEXT_STOP_DEFAULT) sm = is_english(lang) ? TEXT_STOP_ENGLISH : TEXT_STOP_NONE;
    if (sm == TEXT_STOP_ENGLISH) {
        list = english_stop;
        nlist = sizeof english_stop / sizeof english_stop[0];
    } else if (sm == TEXT_STOP_CUSTOM) {
        list = cfg->stopword_list;
        nlist = cfg->nstopwords;
    }
    char **words = nlist ? q_calloc(nlist, sizeof *words) : NULL;
    size_t *lens = nlist ? q_calloc(nlist, sizeof *lens) : NULL;
    int rc = 0;
    size_t nw = 0;
    if (nlist && (!words || !lens)) rc = q_err(QUARRY_NOMEM, "analyzer: stop words");
    for (size_t i = 0; !rc && i < nlist; i++) {
        if (!list[i]) {
            rc = q_err(QUARRY_INVALID, "analyzer: stop word %zu is NULL", i);
            break;
        }
        collect c = {0};
        rc = analyze(an, list[i], strlen(list[i]), collect_one, &c, 1);
        if (rc == QUARRY_INVALID || (!rc && c.count != 1)) {
            q_free(c.w);
            rc = q_err(QUARRY_INVALID, "analyzer: stop word \"%s\" is not exactly one word",
                       list[i]);
            break;
        }
        if (rc) {
            q_free(c.w);
            break;
        }
        words[nw] = c.w;
        lens[nw++] = c.n;
    }
    if (!rc) rc = stopset_build(&an->stop, words, lens, nw);

    /* Fingerprint: version, language, accent mode, limit, sorted stop words. */
    if (!rc) {
        XXH3_state_t *h = XXH3_createState();
        if (!h) {
            rc = q_err(QUARRY_NOMEM, "analyzer");
        } else {
            XXH3_64bits_reset(h);
            uint32_t hdr[3] = {ANALYZER_VERSION, (uint32_t)an->fold_accents, an->max_term};
            XXH3_64bits_update(h, hdr, sizeof hdr);
            XXH3_64bits_update(h, an->language, strlen(an->language) + 1);
            if (nw > 1) qsort(words, nw, sizeof *words, cmp_str);
            for (size_t i = 0; i < nw; i++) {
                if (i && !strcmp(words[i], words[i - 1])) continue;
                XXH3_64bits_update(h, words[i], strlen(words[i]) + 1);
            }
            an->fingerprint = XXH3_64bits_digest(h);
            XXH3_freeState(h);
        }
    }
    for (size_t i = 0; i < nw; i++) q_free(words[i]);
    q_free(words);
    q_free(lens);
    if (rc) {
        text_analyzer_free(an);
        return rc;
    }
    *out = an;
    return 0;
}

void text_analyzer_free(text_analyzer *an) {
    if (!an) return;
    worker *w = an->free_workers;
    while (w) {
        worker *nx = w->next;
        worker_free(w);
        w = nx;
    }
    stopset_free(&an->stop);
    pthread_mutex_destroy(&an->mu);
    q_free(an);
}

uint64_t text_analyzer_fingerprint(const text_analyzer *an) { return an->fingerprint; }

const char *text_analyzer_language(const text_analyzer *an) {
    return an->stem ? an->language : "none";
}
