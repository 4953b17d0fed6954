/* SPDX-License-Identifier: MIT */
/*
 * text.h -- a host-free full-text index: the analyzer and a BM25 inverted
 * index with dynamic pruning. Like the vector indexes it never touches files:
 * the host persists what bm25_serialize returns and rebuilds otherwise.
 *
 * Analyzer (analyzer.c has the details)
 *   text -> UTF-8 validation (invalid input is QUARRY_INVALID, never
 *   replaced) -> NFKC + Unicode case folding (utf8proc) -> accent folding on
 *   Latin/Greek/Cyrillic letters only (marks that carry meaning in other
 *   scripts -- Devanagari vowel signs, Japanese voicing marks -- are kept)
 *   -> words: runs of letters, digits and marks; an apostrophe between two
 *   letters stays inside the word ("don't", "o'neil"), a '.' between two
 *   digits too ("3.14"); everything else (punctuation, symbols, emoji,
 *   spaces, '_', '-') separates -> runs of Han/Hiragana/Katakana/Hangul
 *   become overlapping character bigrams (a lone CJK character is a unigram)
 *   -> stop words (removed words keep their position, so phrases keep their
 *   gaps) -> Snowball stemming (libstemmer; not applied to CJK grams).
 *   Every emitted term carries a position: 0, 1, 2, ... over the words of the
 *   text (stop words and over-long words included).
 *
 * Index (bm25.c, bm25_search.c)
 *   Lucene's BM25Similarity (Lucene >= 8, without the classic (k1 + 1)
 *   numerator factor; scores are 1/(k1+1) of the classic form, same order):
 *       score(d, q) = sum over the query's clauses c of
 *                       boost_c * idf_c * tf / (tf + k1 * (1 - b + b * dl / avgdl))
 *       idf(t)      = ln(1 + (N - df + 0.5) / (df + 0.5))
 *   N = live rows with at least one term, df = live rows containing the term,
 *   dl = the row's number of terms (exact, not Lucene's 1-byte norm),
 *   avgdl = (sum of dl over live rows) / N. Statistics are exact and live:
 *   a delete decrements N, df and the length sum at once (Lucene keeps
 *   deleted documents in df until a merge).
 *
 * Row numbers are the host's dense row numbers; bm25_add takes them strictly
 * increasing (the host appends). A delete makes a row invisible at once; its
 * postings stay (skipped) until the host rebuilds the index (compaction:
 * create a new index and re-add the live rows in order).
 *
 * Positions are stored (per term one LEB128 stream beside the packed
 * row/tf blocks, decoded only by phrase queries) because the query language
 * has quoted phrases; bm25_config.no_positions drops them (and phrases).
 *
 * Threads: searches (and text_analyze) may run concurrently with each other.
 * Adds, deletes, clear, shrink, bm25_set_params and deserialize need
 * exclusive access (the host's write lock). bm25_prepare only reads the
 * analyzer and may run concurrently with anything, so the host can analyze
 * outside its lock.
 */
#ifndef QUARRY_TEXT_H
#define QUARRY_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "../flat/flat.h"
#include "../flat/topk.h"

/* ------------------------------------------------------------------ analyzer */

typedef enum text_stop_mode {
    TEXT_STOP_DEFAULT = 0, /* English list when the language is "english" or "porter", else none */
    TEXT_STOP_NONE = 1,
    TEXT_STOP_ENGLISH = 2, /* Lucene EnglishAnalyzer's 33 words */
    TEXT_STOP_CUSTOM = 3   /* stopword_list (normalised like any text; stemming not applied) */
} text_stop_mode;

typedef enum text_accent_mode {
    TEXT_ACCENTS_DEFAULT = 0, /* fold for "english", "porter" and "none"; keep otherwise */
    TEXT_ACCENTS_FOLD = 1,    /* drop marks on Latin/Greek/Cyrillic letters: "École" -> "ecole" */
    TEXT_ACCENTS_KEEP = 2     /* "École" -> "école" */
} text_accent_mode;

#define TEXT_DEFAULT_LANGUAGE "english"
#define TEXT_DEFAULT_MAX_TERM 255 /* bytes; longer words are dropped (position kept) */
#define TEXT_MAX_TERM         255

typedef struct text_analyzer_config {
    const char *language; /* NULL/"" = "english"; "none" = no stemming; else any
                             libstemmer algorithm name ("french", "porter", "ru" ...) */
    text_stop_mode stopwords;
    const char *const *stopword_list; /* TEXT_STOP_CUSTOM only */
    size_t nstopwords;
    text_accent_mode accents;
    uint32_t max_term_bytes; /* 0 = TEXT_DEFAULT_MAX_TERM; at most TEXT_MAX_TERM */
} text_analyzer_config;

typedef struct text_analyzer text_analyzer;

/* Create an analyzer (cfg NULL = all defaults). 0, QUARRY_INVALID (unknown
 * language, bad stop word, max_term_bytes > TEXT_MAX_TERM) or QUARRY_NOMEM. */
int text_analyzer_new(const text_analyzer_config *cfg, text_analyzer **out);
void text_analyzer_free(text_analyzer *an);

/* Called once per term, in text order: term bytes (UTF-8, not NUL-terminated,
 * valid until the callback returns), its length and position. Nonzero stops
 * the analysis and is returned by text_analyze. */
typedef int (*text_term_fn)(void *ctx, const char *term, size_t len, uint32_t pos);

/* Analyze len bytes of UTF-8. 0, QUARRY_INVALID (invalid UTF-8, or more than
 * UINT32_MAX - 1 words), QUARRY_NOMEM, or the callback's nonzero value.
 * Thread-safe: each call borrows its own stemmer from a small pool. */
int text_analyze(const text_analyzer *an, const char *text, size_t len, text_term_fn fn, void *ctx);

/* A 64-bit digest of everything that changes the analyzer's output
 * (language, stop words, accent mode, term limit, analyzer version). */
uint64_t text_analyzer_fingerprint(const text_analyzer *an);
/* The resolved language name ("none" when not stemming). */
const char *text_analyzer_language(const text_analyzer *an);

/* -------------------------------------------------------------------- index */

#define BM25_DEFAULT_K1        1.2f
#define BM25_DEFAULT_B         0.75f
#define BM25_BLOCK             128 /* postings per compressed block */
#define BM25_MAX_QUERY_CLAUSES 1024

typedef struct bm25 bm25;

typedef struct bm25_config {
    float k1;         /* >= 0 and finite */
    float b;          /* in [0, 1] */
    int no_positions; /* 1 = no positions: quoted text is searched as unquoted */
    text_analyzer_config analyzer;
} bm25_config;

/* {k1 = 1.2, b = 0.75, positions on, default analyzer} */
void bm25_config_default(bm25_config *cfg);

/* Create an empty index. 0, QUARRY_INVALID or QUARRY_NOMEM. */
int bm25_new(const bm25_config *cfg, bm25 **out);
void bm25_free(bm25 *idx);
/* Drop every row (the analyzer and parameters stay): for a rebuild. */
void bm25_clear(bm25 *idx);
/* Change k1 / b (query-time parameters: nothing is re-indexed). */
int bm25_set_params(bm25 *idx, float k1, float b);
const text_analyzer *bm25_analyzer(const bm25 *idx);

/* Index `text` as row `row`. Rows must be strictly increasing across calls
 * (row < UINT32_MAX). A text with no terms is accepted and matches nothing.
 * 0, QUARRY_INVALID (invalid UTF-8, row not increasing), QUARRY_FULL (a
 * posting list over 4 GiB) or QUARRY_NOMEM; on failure the index is
 * unchanged (but for dictionary entries without postings, which are
 * invisible and dropped by serialisation). */
int bm25_add(bm25 *idx, uint32_t row, const char *text, size_t len);

/* Analyze outside the write lock, add under it: bm25_add == prepare + add_prepared. */
typedef struct bm25_doc bm25_doc;
int bm25_prepare(const bm25 *idx, const char *text, size_t len, bm25_doc **out);
int bm25_add_prepared(bm25 *idx, uint32_t row, const bm25_doc *doc);
void bm25_doc_free(bm25_doc *doc);

/* Make `row` invisible and remove it from N, df and the length sum. Returns 1
 * when the row was live in the index, 0 otherwise (never added, no terms,
 * already deleted). Never fails. */
int bm25_delete(bm25 *idx, uint32_t row);
int bm25_contains(const bm25 *idx, uint32_t row); /* live with at least one term */

typedef struct bm25_info {
    uint64_t live_docs;      /* N */
    uint64_t deleted_docs;   /* rows whose postings are still stored */
    uint64_t sum_dl;         /* over live rows */
    uint64_t terms;          /* dictionary size (terms whose df fell to 0 included) */
    uint64_t postings;       /* stored (row, term) pairs, deleted rows included */
    uint64_t blocks;         /* sealed (compressed) blocks */
    uint64_t posting_bytes;  /* compressed row/tf streams */
    uint64_t position_bytes; /* position streams */
    uint32_t next_row;       /* rows added must be >= this */
} bm25_info;
void bm25_get_info(const bm25 *idx, bm25_info *info);
/* Heap bytes held by the index (analyzer excluded). */
size_t bm25_memory(const bm25 *idx);
/* Give back spare capacity (after a bulk build or a rebuild); appends keep
 * working and regrow what they need. Never fails. */
void bm25_shrink(bm25 *idx);

/* ------------------------------------------------------------------- search */

typedef enum bm25_mode {
    BM25_OR = 0, /* bag of words: any clause may match */
    BM25_AND = 1 /* every clause (term or phrase) must match */
} bm25_mode;

typedef struct bm25_search_stats {
    uint64_t postings_total;  /* postings of the query's terms (what exhaustive scoring reads) */
    uint64_t postings_scored; /* clause scores actually computed */
    uint64_t docs_scored;     /* rows offered to the top-k heap */
    uint64_t blocks_total;    /* blocks (tails included) of the query's terms */
    uint64_t blocks_decoded;
} bm25_search_stats;

typedef struct bm25_search_params {
    size_t k;
    bm25_mode mode;
    flat_accept_fn accept; /* NULL = every row; rejected rows never enter the results */
    void *accept_ctx;
    int exhaustive;           /* 1 = score every matching posting (reference; no pruning) */
    bm25_search_stats *stats; /* optional out */
    flat_stop_fn stop;        /* NULL = never; polled every few windows of rows (flat.h) */
    void *stop_ctx;
} bm25_search_params;

/*
 * The k best live rows for `query` (UTF-8). The query is analyzed like the
 * documents; text between double quotes ("..." or the curly pair) is a phrase
 * (consecutive positions, stop-word gaps kept; an unmatched quote is
 * ignored). A term repeated in the query counts that many times (its boost
 * is the count, as Lucene's BooleanQuery of repeated SHOULD term clauses and
 * Anserini's bag-of-words queries); identical phrases likewise.
 * Results go to out[0..*n) sorted by (dist, row) with dist = -score rounded
 * to float (smaller is better, as for the vector indexes; the BM25 score is
 * -dist; ties go to the smaller row). At most k are returned and fewer only
 * when fewer live rows pass the filter and match. Top-k by block-max
 * MaxScore (OR) or a block-max conjunction (AND); the result is exactly
 * that of exhaustive scoring (p->exhaustive = 1).
 * 0, QUARRY_INVALID (invalid UTF-8, too many clauses) or QUARRY_NOMEM.
 */
int bm25_search(const bm25 *idx, const char *query, size_t len, const bm25_search_params *p,
                topk_hit *out, size_t *n);

/* ------------------------------------------------------------ persistence */

/*
 * The whole index (statistics, dictionary, postings, positions, document
 * lengths, deletions) in a versioned buffer (q_malloc'd) ending with its
 * XXH3-64. k1 and b are not stored (query-time). Deserialising needs an index
 * whose analyzer has the same fingerprint (else QUARRY_MISMATCH) and replaces
 * its content. Bytes are hostile: any inconsistency gives QUARRY_CORRUPT and
 * leaves the index empty.
 */
int bm25_serialize(const bm25 *idx, uint8_t **buf, size_t *len);
int bm25_deserialize(bm25 *idx, const uint8_t *buf, size_t len);

/* Check every invariant (postings sorted and within range, tf and positions
 * consistent with document lengths, df/N/length sum equal to a recount,
 * block bounds dominate their postings, dictionary and forward index
 * consistent). 0, or QUARRY_CORRUPT with a description in msg. O(index). */
int bm25_check(const bm25 *idx, char *msg, size_t msg_cap);

#endif
