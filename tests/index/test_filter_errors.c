/* SPDX-License-Identifier: MIT */
/*
 * test_filter_errors.c -- malformed filters are refused with QUARRY_INVALID
 * and a message naming the position: jansson's line, column and byte for
 * syntax errors, a JSON path for everything else. The limits (depth, nodes,
 * `in` values, field name length, text size) are enforced exactly at their
 * boundary, and a failed compile leaves *out NULL.
 */
#include "t.h"

#include "index/filter/filter.h"

typedef struct bad {
    const char *filter;
    const char *msg; /* the exact error detail */
} bad;

static const bad BAD[] = {
    /* Syntax: jansson's text and position. */
    {"{\"and\":[{\"eq\":{\"field\":\"a\",\"value\":1}},",
     "filter is not valid JSON: ']' expected near end of file (line 1, column 39, byte 39)"},
    {"{\"and\": [1, 2}",
     "filter is not valid JSON: ']' expected near '}' (line 1, column 14, byte 14)"},
    {"{\"or\": [\n  {\"a\": 1},\n  {\"b\": 2,}\n]}",
     "filter is not valid JSON: string or '}' expected near '}' (line 3, column 11, byte 32)"},
    {"{\"a\": 1, \"a\": 2}",
     "filter is not valid JSON: duplicate object key near '\"a\"' (line 1, column 12, byte 12)"},
    {"", "filter is not valid JSON: unexpected token near end of file (line 1, column 0, byte 0)"},
    {"{\"x\": 1e999}",
     "filter is not valid JSON: real number overflow near '1e999' (line 1, column 11, byte 11)"},
    /* Shape. */
    {"[1]", "filter: $: a filter must be an object, not an array"},
    {"\"x\"", "filter: $: a filter must be an object, not a string"},
    {"{\"and\":{}}", "filter: $.and: must be an array of filters, not an object"},
    {"{\"or\":[{\"a\":1},2]}", "filter: $.or[1]: a filter must be an object, not a number"},
    {"{\"not\":[]}", "filter: $.not: must be a filter (an object), not an array"},
    {"{\"and\":[], \"x\": 1}",
     "filter: $: \"and\" is an operator and cannot be combined with other keys (use {\"and\": "
     "[...]} to combine filters)"},
    /* eq */
    {"{\"eq\":[]}",
     "filter: $.eq: must be an object {\"field\": ..., \"value\": ...}, not an array"},
    {"{\"eq\":{\"field\":\"a\"}}", "filter: $.eq: missing \"value\""},
    {"{\"eq\":{\"value\":1}}", "filter: $.eq: missing \"field\""},
    {"{\"eq\":{\"field\":\"a\",\"value\":1,\"x\":2}}",
     "filter: $.eq: unknown key \"x\" (expected \"field\" and \"value\")"},
    {"{\"eq\":{\"field\":1,\"value\":1}}",
     "filter: $.eq.field: must be a field name (a string), not a number"},
    {"{\"eq\":{\"field\":\"\",\"value\":1}}",
     "filter: $.eq.field: field names are 1..256 bytes, this one has 0"},
    {"{\"eq\":{\"field\":\"a\",\"value\":null}}",
     "filter: $.eq.value: must be a string, number or boolean, not null"},
    {"{\"eq\":{\"field\":\"a\",\"value\":[1]}}",
     "filter: $.eq.value: must be a string, number or boolean, not an array (use \"in\" for "
     "several values)"},
    /* in */
    {"{\"in\":{\"field\":\"a\",\"values\":\"x\"}}",
     "filter: $.in.values: must be an array of values, not a string"},
    {"{\"in\":{\"field\":\"a\",\"values\":[1,null]}}",
     "filter: $.in.values[1]: must be a string, number or boolean, not null"},
    {"{\"in\":{\"field\":\"a\",\"value\":[1]}}",
     "filter: $.in: unknown key \"value\" (expected \"field\" and \"values\")"},
    /* range */
    {"{\"and\":[{\"eq\":{\"field\":\"a\",\"value\":1}},{},{\"range\":{\"field\":\"p\",\"gtx\":3}}]"
     "}",
     "filter: $.and[2].range: \"gtx\" is not an operator (use gt, gte, lt, lte)"},
    {"{\"range\":{\"field\":\"a\"}}",
     "filter: $.range: needs at least one bound (gt, gte, lt, lte)"},
    {"{\"range\":{\"gt\":1}}", "filter: $.range: missing \"field\""},
    {"{\"range\":{\"field\":\"a\",\"gt\":1,\"gte\":2}}",
     "filter: $.range: \"gt\" and \"gte\" cannot both be given"},
    {"{\"range\":{\"field\":\"a\",\"lt\":1,\"lte\":2}}",
     "filter: $.range: \"lt\" and \"lte\" cannot both be given"},
    {"{\"not\":{\"range\":{\"field\":\"a\",\"lte\":true}}}",
     "filter: $.not.range.lte: must be a number or a string, not a boolean"},
    {"{\"range\":{\"field\":\"a\",\"gt\":1,\"lt\":\"b\"}}",
     "filter: $.range: bounds must be all numbers or all strings, not a mix (\"gt\" is a "
     "number, \"lt\" is a string)"},
    {"{\"in\":[]}",
     "filter: $.in: must be an object {\"field\": ..., \"values\": [...]}, not an array"},
    {"{\"range\":5}",
     "filter: $.range: must be an object {\"field\": ..., \"gt\"|\"gte\"|\"lt\"|\"lte\": ...}, "
     "not a number"},
    /* exists */
    {"{\"exists\":1}", "filter: $.exists: must be a field name (a string), not a number"},
    {"{\"exists\":[\"a\"]}", "filter: $.exists: must be a field name (a string), not an array"},
    /* shorthand */
    {"{\"x\": {\"gt\": 1}}",
     "filter: $.x: a shorthand value must be a string, number or boolean, not an object (the "
     "key is taken as a field name; the operators are and, or, not, eq, in, range, exists)"},
    {"{\"foo\": [1,2]}",
     "filter: $.foo: must be a string, number or boolean, not an array (use {\"in\": "
     "{\"field\": ..., \"values\": [...]}})"},
    {"{\"ok\": 1, \"a b\": null}",
     "filter: $[\"a b\"]: must be a string, number or boolean, not null"},
    {"{\"or\":[{\"a\":1},{\"not\":{\"x\\\"y\":{}}}]}",
     "filter: $.or[1].not[\"x\\\"y\"]: a shorthand value must be a string, number or boolean, "
     "not an object (the key is taken as a field name; the operators are and, or, not, eq, "
     "in, range, exists)"},
};

static void expect_bad(const char *text, size_t len, const char *msg) {
    filter_expr *e = (filter_expr *)1;
    int rc = filter_compile(text, len, &e);
    if (rc != QUARRY_INVALID)
        T_FAIL("filter %.200s: rc %d (%s), want QUARRY_INVALID", text, rc, quarry_errmsg());
    T_ASSERT(e == NULL);
    if (msg && strcmp(quarry_errmsg(), msg) != 0)
        T_FAIL("filter %.200s:\n  message \"%s\"\n     want \"%s\"", text, quarry_errmsg(), msg);
}

static void expect_ok(const char *text, size_t len) {
    filter_expr *e = NULL;
    if (filter_compile(text, len, &e))
        T_FAIL("filter %.200s does not compile: %s", text, quarry_errmsg());
    filter_expr_free(e);
}

/* {"not":{"not":...{"exists":"a"}...}} with `levels` filters in all. */
static char *nested_not(int levels) {
    size_t cap = (size_t)levels * 10 + 64, n = 0;
    char *s = malloc(cap);
    for (int i = 1; i < levels; i++) n += (size_t)sprintf(s + n, "{\"not\":");
    n += (size_t)sprintf(s + n, "{\"exists\":\"a\"}");
    for (int i = 1; i < levels; i++) s[n++] = '}';
    s[n] = 0;
    return s;
}

/* {"or":[{"a":1},{"a":1},...]}: 1 + count nodes. */
static char *wide_or(int count) {
    char *s = malloc((size_t)count * 10 + 16);
    size_t n = (size_t)sprintf(s, "{\"or\":[");
    for (int i = 0; i < count; i++) n += (size_t)sprintf(s + n, "%s{\"a\":1}", i ? "," : "");
    sprintf(s + n, "]}");
    return s;
}

static char *big_in(int count) {
    char *s = malloc((size_t)count * 12 + 64);
    size_t n = (size_t)sprintf(s, "{\"in\":{\"field\":\"a\",\"values\":[");
    for (int i = 0; i < count; i++) n += (size_t)sprintf(s + n, "%s%d", i ? "," : "", i);
    sprintf(s + n, "]}}");
    return s;
}

int main(void) {
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++)
        expect_bad(BAD[i].filter, strlen(BAD[i].filter), BAD[i].msg);
    printf("%zu malformed filters refused with the expected message\n", sizeof BAD / sizeof *BAD);

    /* The length given is honoured: no NUL needed, bytes after it ignored. */
    expect_ok("{\"a\":1}garbage", 7);
    expect_bad("{\"a\":1}garbage", 10, NULL);

    /* Depth: 32 nested filters are fine, 33 are not. */
    char *s = nested_not(FILTER_MAX_DEPTH);
    expect_ok(s, strlen(s));
    free(s);
    s = nested_not(FILTER_MAX_DEPTH + 1);
    char want[1024] = "filter: $";
    for (int i = 0; i < FILTER_MAX_DEPTH; i++) strcat(want, ".not");
    strcat(want, ": filters are nested deeper than 32 levels");
    expect_bad(s, strlen(s), want);
    free(s);

    /* Nodes: an or of 1023 leaves is 1024 nodes; one more is refused. */
    s = wide_or(FILTER_MAX_NODES - 1);
    expect_ok(s, strlen(s));
    free(s);
    s = wide_or(FILTER_MAX_NODES);
    expect_bad(s, strlen(s), "filter: $.or[1023].a: the filter has more than 1024 nodes");
    free(s);
    /* Shorthand equalities count as nodes too. */
    s = malloc(FILTER_MAX_NODES * 16 + 16);
    size_t n = (size_t)sprintf(s, "{");
    for (int i = 0; i < FILTER_MAX_NODES; i++)
        n += (size_t)sprintf(s + n, "%s\"f%d\":1", i ? "," : "", i);
    sprintf(s + n, "}");
    expect_bad(s, strlen(s), "filter: $.f1023: the filter has more than 1024 nodes");
    free(s);

    /* A list longer than the node limit is refused before it is walked. */
    s = wide_or(2000);
    expect_bad(s, strlen(s), "filter: $.or: the filter has more than 1024 nodes");
    free(s);

    /* in: 10000 values are fine, 10001 are not. */
    s = big_in(FILTER_MAX_IN_VALUES);
    expect_ok(s, strlen(s));
    free(s);
    s = big_in(FILTER_MAX_IN_VALUES + 1);
    expect_bad(s, strlen(s), "filter: $.in.values: 10001 values, the limit is 10000");
    free(s);

    /* Field names: 256 bytes are fine, 257 are not (operators and shorthand). */
    char name[300];
    memset(name, 'f', 257);
    name[256] = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "{\"exists\":\"%s\"}", name);
    expect_ok(buf, strlen(buf));
    name[256] = 'f';
    name[257] = 0;
    snprintf(buf, sizeof buf, "{\"exists\":\"%s\"}", name);
    expect_bad(buf, strlen(buf),
               "filter: $.exists: field names are 1..256 bytes, this one has 257");
    snprintf(buf, sizeof buf, "{\"%s\":1, \"b\":2}", name);
    expect_bad(buf, strlen(buf), NULL);
    T_ASSERT(strstr(quarry_errmsg(), "field names are 1..256 bytes, this one has 257"));

    /* Control characters in a key are escaped, and a long key is cut with
     * "..." in the path. */
    n = (size_t)sprintf(buf, "{\"not\":{\"");
    for (int i = 0; i < 150; i++) n += (size_t)sprintf(buf + n, "\\u0001");
    sprintf(buf + n, "\": null}}");
    expect_bad(buf, strlen(buf), NULL);
    T_ASSERT(strncmp(quarry_errmsg(), "filter: $.not[\"\\u0001\\u0001", 26) == 0);
    T_ASSERT(
        strstr(quarry_errmsg(), "\\u0001...\"]: must be a string, number or boolean, not null"));
    T_ASSERT(strlen(quarry_errmsg()) < 700);

    /* Text size. */
    size_t big = FILTER_MAX_JSON_LEN + 1;
    s = malloc(big);
    memset(s, ' ', big);
    s[0] = '{';
    s[big - 1] = '}';
    expect_bad(s, big, "filter: the text is 4194305 bytes, the limit is 4194304");
    free(s);

    /* Valid odd-but-legal filters. */
    const char *ok[] = {"{}",
                        "{\"and\":[]}",
                        "{\"or\":[]}",
                        "{\"in\":{\"field\":\"a\",\"values\":[]}}",
                        "{\"eq\":{\"field\":\"in\",\"value\":\"x\"}}",
                        "{\"a b\":\"c\",\"d\":false}",
                        "{\"range\":{\"lt\":\"b\",\"field\":\"s\",\"gte\":\"a\"}}",
                        "  {\"not\" : {\"not\" : {}}}  "};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) expect_ok(ok[i], strlen(ok[i]));

    /* Misuse. */
    filter_expr *e;
    T_ASSERT_RC(filter_compile(NULL, 0, &e), QUARRY_MISUSE);
    T_ASSERT(e == NULL);
    T_ASSERT_OK(filter_compile("{}", 2, &e));
    T_ASSERT(filter_is_all(e));
    attr_index *ai;
    T_ASSERT_OK(attr_index_new(&ai));
    roaring_bitmap_t *out = (roaring_bitmap_t *)1;
    T_ASSERT_RC(filter_eval(e, ai, NULL, &out), QUARRY_MISUSE);
    T_ASSERT(out == NULL);
    json_t *arr = json_array();
    T_ASSERT_RC(attr_index_add(ai, 0, arr), QUARRY_INVALID);
    T_ASSERT_RC(attr_index_remove(ai, 0, arr), QUARRY_INVALID);
    T_ASSERT_OK(attr_index_add(ai, 0, NULL));
    json_decref(arr);
    attr_index_free(ai);
    filter_expr_free(e);
    filter_expr_free(NULL);
    attr_index_free(NULL);
    printf("limits enforced at their boundaries\n");
    return 0;
}
