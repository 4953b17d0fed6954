/* SPDX-License-Identifier: MIT */
/*
 * Chunker known answers for every strategy (English, CJK, emoji sequences,
 * combining marks, CRLF, markdown headings and fences, empty and blank input,
 * a single word longer than the chunk size), option validation, a randomised
 * property check (offsets on character boundaries, in order, trimmed, every
 * non-space byte covered, size limits, determinism), and
 * quarry_upsert_document (chunk rows, metadata, vectors, stale chunks deleted,
 * a failed call changes nothing).
 */
#include "t.h"
#include "tdb.h"

#include <jansson.h>

typedef struct kc {
    size_t start, end;
} kc;

static quarry_chunks *chunk(const char *text, const char *strategy, uint32_t max,
                            uint32_t overlap) {
    quarry_chunk_options o;
    quarry_chunk_options_init(&o);
    int s = quarry_chunk_strategy_parse(strategy);
    T_ASSERT(s >= 0);
    o.strategy = (quarry_chunk_strategy)s;
    o.max = max;
    o.overlap = overlap;
    quarry_chunks *c = NULL;
    T_ASSERT_OK(quarry_chunk_text(text, strlen(text), &o, &c));
    return c;
}

#define EXPECT(text, strategy, max, overlap, ...)                                       \
    do {                                                                                \
        static const kc want_[] = {__VA_ARGS__};                                        \
        expect(__LINE__, text, strategy, max, overlap, want_, sizeof want_ / sizeof *want_); \
    } while (0)

static void expect(int line, const char *text, const char *strategy, uint32_t max,
                   uint32_t overlap, const kc *want, size_t n) {
    quarry_chunks *c = chunk(text, strategy, max, overlap);
    size_t got = quarry_chunks_count(c);
    int bad = got != n;
    for (size_t i = 0; !bad && i < n; i++) {
        const quarry_chunk *k = quarry_chunks_get(c, i);
        bad = k->start != want[i].start || k->end != want[i].end;
    }
    if (bad) {
        fprintf(stderr, "line %d: %s max %u overlap %u: got %zu chunks:\n", line, strategy, max,
                overlap, got);
        for (size_t i = 0; i < got; i++) {
            const quarry_chunk *k = quarry_chunks_get(c, i);
            fprintf(stderr, "  {%zu, %zu} |%.*s|\n", k->start, k->end, (int)(k->end - k->start),
                    text + k->start);
        }
        T_FAIL("chunks differ from the known answer (%zu wanted)", n);
    }
    quarry_chunks_free(c);
}

static void check_counts(const char *text, const char *strategy, uint32_t max, size_t i,
                         uint32_t chars, uint32_t words) {
    quarry_chunks *c = chunk(text, strategy, max, 0);
    const quarry_chunk *k = quarry_chunks_get(c, i);
    T_ASSERT(k != NULL);
    T_ASSERT_EQ(k->chars, chars);
    T_ASSERT_EQ(k->words, words);
    quarry_chunks_free(c);
}

static const char *EN = "Hello world. This is a test! Is it? Yes.\n\nNew para here. e.g. this "
                        "stays. U.S. policy. End";
static const char *FOX = "The quick brown fox jumps over the lazy dog.";
static const char *JA = "日本語のテキストです。二つ目の文！三つ目？終わり";
static const char *MD = "Preamble text.\n"
                        "\n"
                        "# Guide\n"
                        "\n"
                        "## Install\n"
                        "Run `make`.\n"
                        "\n"
                        "```sh\n"
                        "# not a heading\n"
                        "make install\n"
                        "```\n"
                        "\n"
                        "## Use ##\n"
                        "Call it. Then more text here that is long enough to be split into "
                        "several pieces by the recursive splitter.\n"
                        "\n"
                        "# C#\n"
                        "Last.\n";

static void known_answers(void) {
    /* fixed windows */
    EXPECT(FOX, "fixed_chars", 10, 3, {0, 10}, {7, 17}, {14, 24}, {21, 31}, {28, 38}, {35, 44});
    EXPECT(FOX, "fixed_words", 4, 1, {0, 19}, {16, 34}, {31, 44});
    EXPECT(FOX, "fixed_words", 9, 0, {0, 44});
    /* sentences: "e.g. this" and "U.S. policy" do not end a sentence; a blank line does */
    EXPECT(EN, "sentence", 6, 1, {0, 28}, {13, 35}, {29, 40}, {42, 73}, {74, 90});
    EXPECT(EN, "sentence", 0, QUARRY_CHUNK_DEFAULT, {0, 90});
    EXPECT("One.\r\nTwo.\r\n\r\nThree", "sentence", 1, 0, {0, 4}, {6, 10}, {14, 19});
    EXPECT("Stop.Go on. \"Quoted.\" (Paren!) Next", "sentence", 2, 0, {0, 11}, {12, 30},
           {31, 35});
    /* CJK: each ideograph/kana is a word, 。！？ end sentences without a space; a
     * sentence longer than max words is cut into windows of max words */
    EXPECT(JA, "sentence", 8, 1, {0, 24}, {24, 33}, {33, 63}, {51, 72});
    EXPECT(JA, "fixed_chars", 5, 0, {0, 15}, {15, 30}, {30, 45}, {45, 60}, {60, 72});
    EXPECT(JA, "fixed_words", 6, 0, {0, 18}, {18, 39}, {39, 63}, {63, 72});
    EXPECT(JA, "recursive", 12, 0, {0, 33}, {33, 63}, {63, 72});
    /* emoji sequences (skin tone, ZWJ family, flags) and a combining accent are one
     * character each: never split */
    EXPECT("a\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"
           "b\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7"
           "c\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7\xF0\x9F\x87\xA9\xF0\x9F\x87\xAA"
           "d e\xCC\x81"
           "f",
           "fixed_chars", 1, 0, {0, 1}, {1, 9}, {9, 10}, {10, 28}, {28, 29}, {29, 37}, {37, 45},
           {45, 46}, {47, 50}, {50, 51});
    EXPECT("\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82", "fixed_chars", 2, 1, {0, 8},
           {4, 12});
    /* CRLF: one character, never split, trimmed from chunk ends */
    EXPECT("a\r\nb", "fixed_chars", 2, 0, {0, 3}, {3, 4});
    EXPECT("line one\r\nline two\r\n\r\npara two\r\n", "recursive", 10, 0, {0, 8}, {10, 18},
           {22, 30});
    EXPECT("line one\r\nline two\r\n\r\npara two\r\n", "recursive", 17, 0, {0, 18}, {22, 30});
    /* recursive: paragraphs packed, overlap repeats whole trailing pieces */
    EXPECT("aa bb cc dd ee", "recursive", 5, 2, {0, 5}, {3, 8}, {6, 11}, {9, 14});
    EXPECT("P one.\n\nP two.\n\nP three is longer.", "recursive", 15, 0, {0, 14}, {16, 26},
           {27, 34});
    /* a single word longer than the chunk size */
    const char *LONG = "supercalifragilistic word";
    EXPECT(LONG, "recursive", 6, 2, {0, 6}, {4, 10}, {8, 14}, {12, 18}, {16, 20}, {21, 25});
    EXPECT(LONG, "markdown", 6, 0, {0, 6}, {6, 12}, {12, 18}, {18, 20}, {21, 25});
    EXPECT(LONG, "fixed_words", 1, 0, {0, 20}, {21, 25});
    EXPECT(LONG, "sentence", 1, 0, {0, 20}, {21, 25});
    EXPECT(LONG, "fixed_chars", 8, 0, {0, 8}, {8, 16}, {16, 24}, {24, 25});
    /* markdown: heading paths, fences, heading-only sections joined forward, closing #s */
    EXPECT(MD, "markdown", 60, 0, {0, 14}, {16, 47}, {49, 87}, {89, 147}, {148, 206},
           {208, 218});
    EXPECT("# Only\n## Headings\n", "markdown", 100, 0, {0, 18});
    /* empty and blank input: no chunk */
    const char *strategies[] = {"sentence", "fixed_chars", "fixed_words", "recursive",
                                "markdown"};
    for (size_t s = 0; s < 5; s++) {
        expect(__LINE__, "", strategies[s], 0, QUARRY_CHUNK_DEFAULT, NULL, 0);
        expect(__LINE__, " \t\r\n\r\n\xE3\x80\x80 ", strategies[s], 0, QUARRY_CHUNK_DEFAULT,
               NULL, 0);
        EXPECT("x", strategies[s], 1, 0, {0, 1});
    }

    /* character and word counts */
    check_counts(JA, "sentence", 250, 0, 24, 21);
    check_counts("e\xCC\x81t\xC3\xA9 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!", "fixed_chars", 100, 0,
                 6, 2);
    check_counts("a\r\nb", "fixed_chars", 100, 0, 3, 2);

    /* markdown heading paths */
    quarry_chunks *c = chunk(MD, "markdown", 60, 0);
    const char *paths[][2] = {{NULL, NULL},    {"Guide", "Install"}, {"Guide", "Install"},
                              {"Guide", "Use"}, {"Guide", "Use"},     {"C#", NULL}};
    const uint32_t depth[] = {0, 2, 2, 2, 2, 1};
    T_ASSERT_EQ(quarry_chunks_count(c), 6);
    for (size_t i = 0; i < 6; i++) {
        const quarry_chunk *k = quarry_chunks_get(c, i);
        T_ASSERT_EQ(k->nheadings, depth[i]);
        T_ASSERT(depth[i] ? k->headings != NULL : k->headings == NULL);
        for (uint32_t h = 0; h < depth[i]; h++) T_ASSERT_STREQ(k->headings[h], paths[i][h]);
    }
    T_ASSERT(quarry_chunks_get(c, 6) == NULL);
    quarry_chunks_free(c);
    c = chunk("# A\n## B\n### C\ntext\n## D\nmore\n", "markdown", 100, 0);
    T_ASSERT_EQ(quarry_chunks_count(c), 2);
    T_ASSERT_EQ(quarry_chunks_get(c, 0)->nheadings, 3);
    T_ASSERT_STREQ(quarry_chunks_get(c, 0)->headings[2], "C");
    T_ASSERT_EQ(quarry_chunks_get(c, 1)->nheadings, 2);
    T_ASSERT_STREQ(quarry_chunks_get(c, 1)->headings[1], "D");
    quarry_chunks_free(c);
}

static void options(void) {
    quarry_chunk_options o;
    quarry_chunks *c = (quarry_chunks *)&o;
    quarry_chunk_options_init(&o);
    T_ASSERT_EQ(o.strategy, QUARRY_CHUNK_SENTENCE);
    T_ASSERT_EQ(o.size, sizeof o);
    T_ASSERT_OK(quarry_chunk_text("a b", 0, NULL, &c));
    T_ASSERT_EQ(quarry_chunks_count(c), 1);
    quarry_chunks_free(c);
    for (int s = 0; s < 5; s++)
        T_ASSERT_EQ(quarry_chunk_strategy_parse(
                        quarry_chunk_strategy_name((quarry_chunk_strategy)s)),
                    s);
    T_ASSERT_EQ(quarry_chunk_strategy_parse("paragraph"), -1);
    T_ASSERT_STREQ(quarry_chunk_strategy_name((quarry_chunk_strategy)9), "");

    o.overlap = 5, o.max = 5;
    T_ASSERT_RC(quarry_chunk_text("a b", 3, &o, &c), QUARRY_INVALID);
    T_ASSERT(c == NULL);
    T_ASSERT(strstr(quarry_errmsg(), "overlap") != NULL);
    o.overlap = 0, o.max = QUARRY_CHUNK_MAX_SIZE + 1;
    T_ASSERT_RC(quarry_chunk_text("a b", 3, &o, &c), QUARRY_INVALID);
    o.max = 0, o.strategy = (quarry_chunk_strategy)17;
    T_ASSERT_RC(quarry_chunk_text("a b", 3, &o, &c), QUARRY_INVALID);
    quarry_chunk_options_init(&o);
    T_ASSERT_RC(quarry_chunk_text("ab\xC3(", 4, &o, &c), QUARRY_INVALID);
    T_ASSERT(strstr(quarry_errmsg(), "offset 2") != NULL);
    T_ASSERT_RC(quarry_chunk_text("\xED\xA0\x80", 3, &o, &c), QUARRY_INVALID); /* surrogate */
    T_ASSERT_RC(quarry_chunk_text("a", 1, &o, NULL), QUARRY_MISUSE);
    /* a small max with the default overlap */
    o.strategy = QUARRY_CHUNK_SENTENCE, o.max = 1;
    T_ASSERT_OK(quarry_chunk_text("A. B.", 0, &o, &c));
    T_ASSERT_EQ(quarry_chunks_count(c), 2);
    quarry_chunks_free(c);
    quarry_chunks_free(NULL);
    T_ASSERT_EQ(quarry_chunks_count(NULL), 0);
}

/* ------------------------------------------------------------------ properties */

static const char *const PIECES[] = {
    "word", "longerword", " ", " ", "  ", "\n", "\r\n", "\n\n", "\r\n\r\n", ". ", "! ", "? ",
    "e.g. ", "\"Quote.\" ", "日本", "語", "。", "！", "、", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9", "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7",
    "e\xCC\x81", "\xE2\x80\x8D", "\xC2\xA0", "\n# Heading\n", "\n## Sub #\n", "\n```\n",
    "\n   ### Deep\n", "#", "x", "Ünïcödé", "\t", "\xE2\x80\xA6 "};
#define NPIECES (sizeof PIECES / sizeof PIECES[0])

static size_t cp_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

static void properties(void) {
    uint64_t rng = 42;
    char *text = malloc(8192);
    unsigned char *covered = malloc(8192);
    unsigned char *boundary = malloc(8193);
    T_ASSERT(text && covered && boundary);
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0, npieces = t_rand(&rng) % 120;
        for (size_t p = 0; p < npieces; p++) {
            const char *s = PIECES[t_rand(&rng) % NPIECES];
            size_t l = strlen(s);
            if (len + l >= 8192) break;
            memcpy(text + len, s, l);
            len += l;
        }
        text[len] = '\0';
        memset(boundary, 0, len + 1);
        for (size_t i = 0; i < len; i += cp_len((unsigned char)text[i])) boundary[i] = 1;
        boundary[len] = 1;
        quarry_chunk_options o;
        quarry_chunk_options_init(&o);
        o.strategy = (quarry_chunk_strategy)(t_rand(&rng) % 5);
        o.max = 1 + (uint32_t)(t_rand(&rng) % 40);
        o.overlap = (uint32_t)(t_rand(&rng) % o.max);
        if (o.strategy == QUARRY_CHUNK_SENTENCE) o.overlap %= 3;
        quarry_chunks *c, *c2;
        T_ASSERT_OK(quarry_chunk_text(text, len, &o, &c));
        T_ASSERT_OK(quarry_chunk_text(text, len, &o, &c2));
        memset(covered, 0, len);
        size_t n = quarry_chunks_count(c), prev_start = 0;
        T_ASSERT_EQ(quarry_chunks_count(c2), n);
        for (size_t i = 0; i < n; i++) {
            const quarry_chunk *k = quarry_chunks_get(c, i), *k2 = quarry_chunks_get(c2, i);
            if (k->start != k2->start || k->end != k2->end || k->nheadings != k2->nheadings)
                T_FAIL("not deterministic (iteration %d chunk %zu)", iter, i);
            if (!(k->start < k->end && k->end <= len && boundary[k->start] && boundary[k->end]))
                T_FAIL("iteration %d (%s max %u overlap %u) chunk %zu: bad span [%zu, %zu) of %zu",
                       iter, quarry_chunk_strategy_name(o.strategy), o.max, o.overlap, i,
                       k->start, k->end, len);
            if (i > 0 && k->start <= prev_start)
                T_FAIL("iteration %d chunk %zu does not advance", iter, i);
            prev_start = k->start;
            if (o.strategy != QUARRY_CHUNK_FIXED_CHARS) {
                unsigned char a = (unsigned char)text[k->start];
                unsigned char z = (unsigned char)text[k->end - 1];
                T_ASSERT(a != ' ' && a != '\n' && a != '\r' && a != '\t');
                T_ASSERT(z != ' ' && z != '\n' && z != '\r' && z != '\t');
            }
            if (o.strategy == QUARRY_CHUNK_FIXED_CHARS || o.strategy == QUARRY_CHUNK_RECURSIVE ||
                o.strategy == QUARRY_CHUNK_MARKDOWN)
                T_ASSERT(k->chars <= o.max);
            else
                T_ASSERT(k->words <= o.max);
            T_ASSERT(k->words >= 1);
            memset(covered + k->start, 1, k->end - k->start);
        }
        for (size_t i = 0; i < len; i++) {
            char ch = text[i];
            if (!covered[i] && ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t' &&
                (unsigned char)ch < 0x80) {
                if (getenv("CHUNK_DUMP")) fprintf(stderr, "TEXT<<%s>>\n", text);
                T_FAIL("iteration %d (%s max %u overlap %u): byte %zu '%c' is in no chunk", iter,
                       quarry_chunk_strategy_name(o.strategy), o.max, o.overlap, i, ch);
            }
        }
        quarry_chunks_free(c);
        quarry_chunks_free(c2);
    }
    free(text);
    free(covered);
    free(boundary);
}

/* ------------------------------------------------------------------ documents */

static json_t *row_meta(quarry_coll *c, const char *id, char **text) {
    quarry_doc *d;
    T_ASSERT_OK(quarry_get(c, id, 0, &d));
    size_t ml = 0;
    const char *m = quarry_doc_metadata(d, &ml);
    T_ASSERT(m != NULL);
    json_t *j = json_loadb(m, ml, 0, NULL);
    T_ASSERT(j != NULL);
    if (text) {
        const char *t = quarry_doc_text(d, NULL);
        *text = t ? strdup(t) : NULL;
    }
    quarry_doc_free(d);
    return j;
}

static int exists(quarry_coll *c, const char *id) {
    quarry_doc *d = NULL;
    int rc = quarry_get(c, id, 0, &d);
    quarry_doc_free(d);
    return rc == QUARRY_OK;
}

static void documents(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("chunk");
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_coll *c = tdb_coll(db, "docs", 0, QUARRY_METRIC_L2, QUARRY_DURABILITY_NONE);
    quarry_coll *v = tdb_coll(db, "vecs", 2, QUARRY_METRIC_L2, QUARRY_DURABILITY_NONE);

    quarry_chunk_options o;
    quarry_chunk_options_init(&o);
    o.max = 6;
    o.overlap = 1;
    quarry_document doc = {.id = "en", .text = EN, .metadata = "{\"lang\":\"en\"}"};
    size_t n = 0;
    T_ASSERT_OK(quarry_upsert_document(c, &doc, &o, &n));
    T_ASSERT_EQ(n, 5);
    static const kc want[] = {{0, 28}, {13, 35}, {29, 40}, {42, 73}, {74, 90}};
    for (size_t i = 0; i < n; i++) {
        char id[32], *text = NULL;
        snprintf(id, sizeof id, "en#%zu", i);
        json_t *m = row_meta(c, id, &text);
        T_ASSERT_STREQ(json_string_value(json_object_get(m, "_parent")), "en");
        T_ASSERT_STREQ(json_string_value(json_object_get(m, "lang")), "en");
        T_ASSERT_EQ(json_integer_value(json_object_get(m, "_chunk")), i);
        T_ASSERT_EQ(json_integer_value(json_object_get(m, "_start")), want[i].start);
        T_ASSERT_EQ(json_integer_value(json_object_get(m, "_end")), want[i].end);
        T_ASSERT(json_object_get(m, "_heading") == NULL);
        T_ASSERT(text && strlen(text) == want[i].end - want[i].start);
        T_ASSERT(memcmp(text, EN + want[i].start, strlen(text)) == 0);
        free(text);
        json_decref(m);
    }
    T_ASSERT(!exists(c, "en#5"));

    /* a shorter version deletes the stale chunks */
    doc.text = "Short one. Two.";
    T_ASSERT_OK(quarry_upsert_document(c, &doc, &o, &n));
    T_ASSERT_EQ(n, 1);
    T_ASSERT(exists(c, "en#0") && !exists(c, "en#1") && !exists(c, "en#4"));

    /* failures change nothing */
    quarry_coll_stats before = {.size = sizeof before}, after = {.size = sizeof after};
    T_ASSERT_OK(quarry_collection_stats(c, &before));
    doc.text = EN;
    doc.metadata = "{\"_chunk\": 3}";
    T_ASSERT_RC(quarry_upsert_document(c, &doc, &o, &n), QUARRY_INVALID);
    T_ASSERT(strstr(quarry_errmsg(), "_chunk") != NULL);
    doc.metadata = "[1]";
    T_ASSERT_RC(quarry_upsert_document(c, &doc, &o, &n), QUARRY_INVALID);
    doc.metadata = "{\"nested\": {\"x\": 1}}";
    T_ASSERT_RC(quarry_upsert_document(c, &doc, &o, &n), QUARRY_INVALID);
    T_ASSERT(strstr(quarry_errmsg(), "chunk 0") != NULL);
    doc.metadata = NULL;
    doc.text = "bad \xFF utf8";
    T_ASSERT_RC(quarry_upsert_document(c, &doc, &o, &n), QUARRY_INVALID);
    doc.text = EN;
    char longid[QUARRY_MAX_ID_LEN + 1];
    memset(longid, 'x', QUARRY_MAX_ID_LEN - 2);
    longid[QUARRY_MAX_ID_LEN - 2] = '\0';
    doc.id = longid; /* "<id>#0" is 256 bytes, "<id>#4" too, fine; one more byte is not */
    T_ASSERT_OK(quarry_upsert_document(c, &doc, &o, &n));
    T_ASSERT_EQ(n, 5);
    doc.text = "";
    T_ASSERT_OK(quarry_upsert_document(c, &doc, &o, &n)); /* removes them again */
    T_ASSERT_EQ(n, 0);
    memset(longid, 'x', QUARRY_MAX_ID_LEN - 1);
    longid[QUARRY_MAX_ID_LEN - 1] = '\0';
    doc.text = EN;
    T_ASSERT_RC(quarry_upsert_document(c, &doc, &o, &n), QUARRY_INVALID);
    doc.id = "";
    T_ASSERT_RC(quarry_upsert_document(c, &doc, &o, &n), QUARRY_INVALID);
    doc.id = "en";
    o.overlap = 9;
    T_ASSERT_RC(quarry_upsert_document(c, &doc, &o, &n), QUARRY_INVALID);
    o.overlap = 1;
    T_ASSERT_RC(quarry_upsert_document(NULL, &doc, &o, &n), QUARRY_MISUSE);
    T_ASSERT_OK(quarry_collection_stats(c, &after));
    T_ASSERT_EQ(after.rows, before.rows);
    T_ASSERT_EQ(after.last_lsn, before.last_lsn + 2); /* the two long-id calls above */
    T_ASSERT(exists(c, "en#0") && !exists(c, "en#1"));

    /* vectors: one per chunk, in order; a wrong count or dim changes nothing */
    float vecs[5 * 3] = {1, 0, 0, 1, 1, 1, 2, 0, 0, 2};
    doc = (quarry_document){.id = "d", .text = EN, .vectors = vecs, .dim = 2, .nvectors = 4};
    T_ASSERT_RC(quarry_upsert_document(v, &doc, &o, &n), QUARRY_INVALID);
    doc.nvectors = 5, doc.dim = 3;
    T_ASSERT_RC(quarry_upsert_document(v, &doc, &o, &n), QUARRY_MISMATCH);
    T_ASSERT(!exists(v, "d#0"));
    doc.dim = 2;
    T_ASSERT_OK(quarry_upsert_document(v, &doc, &o, &n));
    quarry_result *r;
    const float q[2] = {2, 0.1f};
    T_ASSERT_OK(quarry_search(v, q, 2, 1, NULL, &r));
    T_ASSERT_STREQ(quarry_result_id(r, 0, NULL), "d#3");
    quarry_result_free(r);
    /* chunk rows are filterable by parent */
    quarry_search_params sp;
    quarry_search_params_init(&sp);
    sp.filter = "{\"_parent\": \"d\"}";
    T_ASSERT_OK(quarry_search(v, q, 2, 10, &sp, &r));
    T_ASSERT_EQ(quarry_result_count(r), 5);
    quarry_result_free(r);

    /* markdown: the heading path is an array of strings */
    quarry_chunk_options_init(&o);
    o.strategy = QUARRY_CHUNK_MARKDOWN;
    o.max = 60;
    doc = (quarry_document){.id = "md", .text = MD};
    T_ASSERT_OK(quarry_upsert_document(c, &doc, &o, &n));
    T_ASSERT_EQ(n, 6);
    json_t *m = row_meta(c, "md#3", NULL);
    json_t *h = json_object_get(m, "_heading");
    T_ASSERT(json_is_array(h) && json_array_size(h) == 2);
    T_ASSERT_STREQ(json_string_value(json_array_get(h, 1)), "Use");
    json_decref(m);
    m = row_meta(c, "md#0", NULL);
    T_ASSERT(json_object_get(m, "_heading") == NULL);
    json_decref(m);

    quarry_collection_close(c);
    quarry_collection_close(v);
    T_ASSERT_OK(quarry_close(db));
    t_rmdir(dir);
    free(dir);
}

int main(void) {
    known_answers();
    options();
    properties();
    documents();
    printf("ok\n");
    return 0;
}
