/* SPDX-License-Identifier: MIT */
/*
 * test_text_analyzer.c -- known answers for the text analyzer.
 *
 * Each case is a text, an analyzer configuration and the expected
 * "term@position" list: case folding and NFKC (fullwidth, ligatures,
 * Roman numerals, ß, Greek final sigma), accent folding on Latin/Greek but
 * not on Devanagari, English stemming and stop words (with their position
 * gaps), apostrophes, decimals, emoji and punctuation as separators,
 * invisible joiners, CJK bigrams (Chinese, Japanese, Korean, halfwidth
 * katakana, mixed scripts), over-long words, custom stop words, other
 * Snowball languages. Invalid UTF-8 (bad bytes, overlong forms, surrogates,
 * truncated sequences) is rejected with QUARRY_INVALID. Finally four threads
 * analyse concurrently with the stemmer and must agree with a serial run.
 */
#include "t.h"

#include <pthread.h>

#include "index/text/text.h"

typedef struct out {
    char s[4096];
    size_t n;
} out;

static int put(void *ctx, const char *term, size_t len, uint32_t pos) {
    out *o = ctx;
    int k = snprintf(o->s + o->n, sizeof o->s - o->n, "%s%.*s@%u", o->n ? " " : "", (int)len, term,
                     pos);
    if (k > 0) o->n += (size_t)k;
    return 0;
}

static text_analyzer *make(const char *lang, text_stop_mode stop, text_accent_mode acc) {
    text_analyzer_config c = {.language = lang, .stopwords = stop, .accents = acc};
    text_analyzer *an;
    T_ASSERT_OK(text_analyzer_new(&c, &an));
    return an;
}

static void expect(const text_analyzer *an, const char *text, const char *want) {
    out o = {{0}, 0};
    T_ASSERT_OK(text_analyze(an, text, strlen(text), put, &o));
    if (strcmp(o.s, want) != 0) T_FAIL("analyze(\"%s\") = \"%s\", want \"%s\"", text, o.s, want);
}

static void expect_invalid(const text_analyzer *an, const char *text, size_t len) {
    out o = {{0}, 0};
    T_ASSERT_RC(text_analyze(an, text, len, put, &o), QUARRY_INVALID);
}

typedef struct job {
    const text_analyzer *an;
    const char *text;
    const char *want;
    int ok;
} job;

static void *worker(void *arg) {
    job *j = arg;
    j->ok = 1;
    for (int i = 0; i < 300; i++) {
        out o = {{0}, 0};
        if (text_analyze(j->an, j->text, strlen(j->text), put, &o) || strcmp(o.s, j->want))
            j->ok = 0;
    }
    return NULL;
}

int main(void) {
    text_analyzer *en = make(NULL, TEXT_STOP_DEFAULT, TEXT_ACCENTS_DEFAULT);
    text_analyzer *none = make("none", TEXT_STOP_DEFAULT, TEXT_ACCENTS_DEFAULT);
    text_analyzer *keep = make("none", TEXT_STOP_NONE, TEXT_ACCENTS_KEEP);
    T_ASSERT_STREQ(text_analyzer_language(en), "english");
    T_ASSERT_STREQ(text_analyzer_language(none), "none");

    /* English: stemming, stop words keep their positions, possessives */
    expect(en, "Running runs ran", "run@0 run@1 ran@2");
    expect(en, "The cat in the hat", "cat@1 hat@4");
    expect(en, "John's dogs don't bark", "john@0 dog@1 don't@2 bark@3");
    expect(en, "generously CONNECTIONS", "generous@0 connect@1");
    expect(en, "the and of", "");

    /* case folding, NFKC, accents */
    expect(none, "ÉCOLE école Ecole", "ecole@0 ecole@1 ecole@2");
    expect(keep, "ÉCOLE école", "école@0 école@1");
    expect(none, "Straße STRASSE", "strasse@0 strasse@1");
    expect(none, "ΣΊΣΥΦΟΣ σίσυφος", "σισυφοσ@0 σισυφοσ@1");
    expect(none, "ﬁle ＡＢＣ Ⅻ x²", "file@0 abc@1 xii@2 x2@3");
    expect(none, "Ærøskøbing Łódź naïve", "aeroskobing@0 lodz@1 naive@2");
    /* marks that are letters' vowel signs stay (Devanagari) */
    expect(none, "नमस्ते दुनिया", "नमस्ते@0 दुनिया@1");
    /* invisible joiners do not split words; ZWSP does */
    expect(none,
           "hy\xc2\xadphen a\xe2\x80\x8b"
           "b",
           "hyphen@0 a@1 b@2");

    /* separators: punctuation, symbols, emoji, '_' and '-' */
    expect(none, "hello\xf0\x9f\x91\x8bworld!!!foo_bar e-mail (x)",
           "hello@0 world@1 foo@2 bar@3 e@4 mail@5 x@6");
    expect(none, "3.14 1,000 v2.0 end.", "3.14@0 1@1 000@2 v2.0@3 end@4");
    expect(none, "o'neil 'quoted' 80's rock\xe2\x80\x99n\xe2\x80\x99roll",
           "o'neil@0 quoted@1 80@2 s@3 rock'n'roll@4");

    /* CJK bigrams */
    expect(none, "東京都", "東京@0 京都@1");
    expect(none, "東", "東@0");
    expect(none, "東京 大阪", "東京@0 大阪@1");
    expect(none, "すし 日本語テキスト", "すし@0 日本@1 本語@2 語テ@3 テキ@4 キス@5 スト@6");
    expect(none, "ｶﾞｷﾞ", "ガギ@0");
    expect(none, "한국어 안녕하세요", "한국@0 국어@1 안녕@2 녕하@3 하세@4 세요@5");
    expect(none, "iPhone手机 abc東京def", "iphone@0 手机@1 abc@2 東京@3 def@4");
    expect(en, "Running東京", "run@0 東京@1");

    /* over-long words are dropped but keep their position */
    {
        char buf[400];
        memset(buf, 'a', 300);
        memcpy(buf + 300, " b", 3);
        expect(none, buf, "b@1");
    }

    /* invalid UTF-8 */
    expect_invalid(none, "ok \xff", 4);
    expect_invalid(none, "\xc0\xaf", 2);         /* overlong '/' */
    expect_invalid(none, "\xed\xa0\x80", 3);     /* surrogate */
    expect_invalid(none, "ab\xe6\x9d", 4);       /* truncated */
    expect_invalid(none, "\xf4\x90\x80\x80", 4); /* above U+10FFFF */
    expect(none, "", "");
    {
        /* embedded NUL is valid UTF-8 and a separator */
        out o = {{0}, 0};
        T_ASSERT_OK(text_analyze(none, "a\0b", 3, put, &o));
        T_ASSERT_STREQ(o.s, "a@0 b@1");
    }

    /* configuration */
    {
        const char *sw[] = {"Foo", "ÉTÉ"};
        text_analyzer_config c = {.language = "none",
                                  .stopwords = TEXT_STOP_CUSTOM,
                                  .stopword_list = sw,
                                  .nstopwords = 2};
        text_analyzer *an;
        T_ASSERT_OK(text_analyzer_new(&c, &an));
        expect(an, "foo bar été the", "bar@1 the@3");
        T_ASSERT(text_analyzer_fingerprint(an) != text_analyzer_fingerprint(none));
        text_analyzer_free(an);
        const char *bad[] = {"two words"};
        c.stopword_list = bad;
        c.nstopwords = 1;
        T_ASSERT_RC(text_analyzer_new(&c, &an), QUARRY_INVALID);
        text_analyzer_config l = {.language = "klingon"};
        T_ASSERT_RC(text_analyzer_new(&l, &an), QUARRY_INVALID);
        text_analyzer_config m = {.max_term_bytes = 256};
        T_ASSERT_RC(text_analyzer_new(&m, &an), QUARRY_INVALID);
    }
    {
        text_analyzer *fr = make("french", TEXT_STOP_DEFAULT, TEXT_ACCENTS_DEFAULT);
        expect(fr, "continuellement maisons", "continuel@0 maison@1");
        text_analyzer *de = make("german", TEXT_STOP_DEFAULT, TEXT_ACCENTS_DEFAULT);
        expect(de, "Häuser", "haus@0");
        text_analyzer *po = make("porter", TEXT_STOP_DEFAULT, TEXT_ACCENTS_DEFAULT);
        expect(po, "the generalizations", "gener@1");
        T_ASSERT(text_analyzer_fingerprint(po) != text_analyzer_fingerprint(en));
        text_analyzer_free(fr);
        text_analyzer_free(de);
        text_analyzer_free(po);
    }
    {
        text_analyzer *en2 = make("english", TEXT_STOP_ENGLISH, TEXT_ACCENTS_FOLD);
        T_ASSERT(text_analyzer_fingerprint(en2) == text_analyzer_fingerprint(en));
        text_analyzer_free(en2);
    }

    /* concurrent analysis: each call borrows its own stemmer */
    {
        const char *text = "Connections of the generously running foxes jumped over lazy dogs "
                           "東京都 quickly 한국어 nationalization";
        out o = {{0}, 0};
        T_ASSERT_OK(text_analyze(en, text, strlen(text), put, &o));
        pthread_t th[4];
        job jobs[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (job){en, text, o.s, 0};
            T_ASSERT(pthread_create(&th[i], NULL, worker, &jobs[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            T_ASSERT(jobs[i].ok);
        }
    }
    text_analyzer_free(en);
    text_analyzer_free(none);
    text_analyzer_free(keep);
    return 0;
}
