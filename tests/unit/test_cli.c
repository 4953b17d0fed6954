/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c -- drives the built `quarry` program through a whole session in a
 * scratch directory: create, import of a generated .jsonl and .fvecs file,
 * list, stats, get, search (one vector, a query file, a filter, --stats),
 * import --update (partial updates), delete, the error paths (missing row,
 * duplicate collection, bad vector JSON, a bad import line), the stdin shell,
 * compact, sync and drop.
 *
 * The program is $QUARRY_BIN_DIR/clients/cli/quarry (the test harness sets
 * QUARRY_BIN_DIR to the build directory); without it the test is skipped. Each
 * run goes through sh via system() with stdout and stderr captured in files,
 * so the checks see exactly what a user or a script would.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

#define DIM 8
#define NDOCS 300 /* rows of docs.jsonl, ids doc-0 .. doc-299 */
#define NVECS 200 /* rows of vecs.fvecs, ids 0 .. 199 */
#define NQUERIES 10
#define NMANY 600 /* rows of many.fvecs (an ivfpq collection needs >= 256 to train) */

static char g_bin[4096], g_db[4096], g_cmd[16384];
static const char *g_dir;
static char *g_out, *g_err; /* stdout and stderr of the last run */
static float g_docs[NDOCS][DIM], g_vecs[NVECS][DIM], g_many[NMANY][DIM];

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) T_FAIL("open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0)
        if ((len += n) + 1 == cap) buf = realloc(buf, cap *= 2);
    if (!buf) T_FAIL("out of memory");
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static char *scratch(const char *name) {
    static char path[8][4096];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", g_dir, name);
    return p;
}

/* Runs `quarry [DB] ARGS` (ARGS is sh text) and returns its exit status. */
static int vrun(int with_db, const char *fmt, va_list ap) {
    char args[8192];
    vsnprintf(args, sizeof args, fmt, ap);
    if (snprintf(g_cmd, sizeof g_cmd, "'%s' %s%s%s %s >'%s/out' 2>'%s/err'", g_bin,
                 with_db ? "'" : "", with_db ? g_db : "", with_db ? "'" : "", args, g_dir,
                 g_dir) >= (int)sizeof g_cmd)
        T_FAIL("command too long: %s", args);
    int st = system(g_cmd);
    free(g_out);
    free(g_err);
    g_out = slurp(scratch("out"));
    g_err = slurp(scratch("err"));
    if (st == -1 || !WIFEXITED(st)) T_FAIL("`%s` did not exit normally", g_cmd);
    return WEXITSTATUS(st);
}

static int run(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int st = vrun(1, fmt, ap);
    va_end(ap);
    return st;
}

static int run_raw(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int st = vrun(0, fmt, ap);
    va_end(ap);
    return st;
}

#define EXPECT_STATUS(want, st)                                                         \
    do {                                                                                \
        int st_ = (st);                                                                 \
        if (st_ != (want))                                                              \
            T_FAIL("%s\nexit status %d, want %d\nstdout: %s\nstderr: %s", g_cmd, st_,   \
                   (int)(want), g_out, g_err);                                          \
    } while (0)
#define RUN_OK(...) EXPECT_STATUS(0, run(__VA_ARGS__))
#define EXPECT_IN(hay, needle)                                                          \
    do {                                                                                \
        if (!strstr((hay), (needle)))                                                   \
            T_FAIL("%s\n%s lacks \"%s\":\n%s", g_cmd, #hay, (needle), (hay));           \
    } while (0)

/* A vector as a JSON array; %.9g round-trips float32 exactly. */
static const char *vec_json(const float *v) {
    static char buf[2][512];
    static int next;
    char *p = buf[next++ % 2];
    size_t n = (size_t)snprintf(p, sizeof buf[0], "[");
    for (int i = 0; i < DIM; i++)
        n += (size_t)snprintf(p + n, sizeof buf[0] - n, "%s%.9g", i ? "," : "", (double)v[i]);
    snprintf(p + n, sizeof buf[0] - n, "]");
    return p;
}

static void write_fvecs(const char *path, float (*v)[DIM], int n) {
    FILE *f = fopen(path, "wb");
    int32_t d = DIM;
    T_ASSERT(f != NULL);
    for (int i = 0; i < n; i++) {
        T_ASSERT(fwrite(&d, sizeof d, 1, f) == 1);
        T_ASSERT(fwrite(v[i], sizeof(float), DIM, f) == DIM);
    }
    T_ASSERT(fclose(f) == 0);
}

static void make_inputs(void) {
    uint64_t seed = 42;
    FILE *f = fopen(scratch("docs.jsonl"), "w");
    T_ASSERT(f != NULL);
    for (int i = 0; i < NDOCS; i++) {
        for (int j = 0; j < DIM; j++) g_docs[i][j] = t_randf(&seed);
        /* every 100th row names its id BEIR-style, with "_id" */
        fprintf(f,
                "{\"%s\":\"doc-%d\",\"vector\":%s,\"text\":\"document number %d\","
                "\"metadata\":{\"group\":\"%s\",\"n\":%d,\"tags\":[\"x\",\"y\"]}}\n",
                i % 100 ? "id" : "_id", i, vec_json(g_docs[i]), i, i % 2 ? "b" : "a", i);
    }
    T_ASSERT(fclose(f) == 0);
    for (int i = 0; i < NVECS; i++)
        for (int j = 0; j < DIM; j++) g_vecs[i][j] = t_randf(&seed);
    write_fvecs(scratch("vecs.fvecs"), g_vecs, NVECS);
    write_fvecs(scratch("queries.fvecs"), g_vecs, NQUERIES);
    for (int i = 0; i < NMANY; i++)
        for (int j = 0; j < DIM; j++) g_many[i][j] = t_randf(&seed);
    write_fvecs(scratch("many.fvecs"), g_many, NMANY);

    /* Rows 1-5 are fine, line 6 has a 3-d vector. With --batch 2, rows 1-4 are
     * committed before the error and row 5 is discarded with its batch. */
    f = fopen(scratch("bad.jsonl"), "w");
    T_ASSERT(f != NULL);
    for (int i = 0; i < 5; i++)
        fprintf(f, "{\"id\":\"bad-%d\",\"vector\":%s}\n", i, vec_json(g_docs[i]));
    fprintf(f, "{\"id\":\"bad-5\",\"vector\":[1,2,3]}\n{\"id\":\"bad-6\"}\n");
    T_ASSERT(fclose(f) == 0);
    f = fopen(scratch("broken.jsonl"), "w");
    T_ASSERT(f != NULL);
    fprintf(f, "{\"id\":\"ok\"}\n\n{\"id\": oops}\n");
    T_ASSERT(fclose(f) == 0);
}

/* The first space-separated word of `line`. */
static const char *first_word(const char *line) {
    static char w[256];
    size_t n = strcspn(line, " \n");
    snprintf(w, sizeof w, "%.*s", (int)(n < sizeof w ? n : sizeof w - 1), line);
    return w;
}

static void test_help_and_usage(void) {
    EXPECT_STATUS(0, run_raw("--version"));
    EXPECT_IN(g_out, QUARRY_VERSION_STRING);
    EXPECT_STATUS(0, run_raw("--help"));
    EXPECT_IN(g_out, "Examples:");
    EXPECT_IN(g_out, "--queries");
    EXPECT_STATUS(0, run("search --help"));
    EXPECT_IN(g_out, "--filter");
    EXPECT_STATUS(1, run("frobnicate"));
    EXPECT_IN(g_err, "unknown command");
    /* a read command does not create a missing database */
    EXPECT_STATUS(2, run_raw("'%s' list", scratch("nowhere")));
    T_ASSERT(access(scratch("nowhere"), F_OK) != 0);
}

static void test_create_and_import(void) {
    RUN_OK("create docs --dim %d --metric cosine", DIM);
    RUN_OK("create vecs --dim %d --metric l2 --index flat --durability sync", DIM);
    EXPECT_STATUS(2, run("create docs --dim %d", DIM));
    EXPECT_IN(g_err, "quarry: create docs: ");
    RUN_OK("create nodim"); /* no --dim: a text-only collection */
    EXPECT_STATUS(2, run("import nodim '%s'", scratch("docs.jsonl"))); /* rows have vectors */
    RUN_OK("drop nodim");
    EXPECT_STATUS(1, run("create x --dim 4 --metric manhattan"));

    RUN_OK("import docs '%s'", scratch("docs.jsonl"));
    EXPECT_IN(g_out, "imported 300 rows in ");
    EXPECT_IN(g_out, "rows/s)");
    RUN_OK("import vecs '%s' --batch 64", scratch("vecs.fvecs"));
    EXPECT_IN(g_out, "imported 200 rows");

    RUN_OK("list");
    T_ASSERT_STREQ(g_out, "docs\nvecs\n");
    RUN_OK("stats docs");
    EXPECT_IN(g_out, "collection: docs\n");
    EXPECT_IN(g_out, "dim: 8\n");
    EXPECT_IN(g_out, "metric: cosine\n");
    EXPECT_IN(g_out, "rows: 300\n");
    EXPECT_IN(g_out, "io_backend: ");
    RUN_OK("stats");
    EXPECT_IN(g_out, "collection: docs\n");
    EXPECT_IN(g_out, "collection: vecs\n");
    RUN_OK("stats vecs --json");
    EXPECT_IN(g_out, "\"rows\":200");
    EXPECT_IN(g_out, "\"io_backend\":");
}

static void test_get_and_search(void) {
    char want[128];
    RUN_OK("get docs doc-7");
    EXPECT_IN(g_out, "{\"id\":\"doc-7\",\"vector\":[");
    EXPECT_IN(g_out, "\"text\":\"document number 7\"");
    EXPECT_IN(g_out, "\"metadata\":{"); /* an embedded object, not a string */
    EXPECT_IN(g_out, "\"group\":\"b\"");
    RUN_OK("get docs doc-100"); /* imported with "_id" */
    RUN_OK("get vecs 5");
    snprintf(want, sizeof want, "\"vector\":[%.9g,", (double)g_vecs[5][0]);
    EXPECT_IN(g_out, want);
    EXPECT_IN(g_out, "\"text\":null");

    /* an exact-match vector finds its own row first */
    RUN_OK("search vecs --vector '%s' --k 5 --format ids", vec_json(g_vecs[42]));
    T_ASSERT_STREQ(first_word(g_out), "42");
    RUN_OK("search docs --vector '%s' --k 3 --format ids", vec_json(g_docs[7]));
    T_ASSERT_STREQ(first_word(g_out), "doc-7");
    RUN_OK("search vecs --vector '%s' --k 3", vec_json(g_vecs[42]));
    EXPECT_IN(g_out, "{\"query\":0,\"hits\":[{\"id\":\"42\",\"distance\":");
    RUN_OK("search vecs --vector '%s' --k 3 --exact", vec_json(g_vecs[42]));

    /* a query file: one line per query, timing on stderr */
    RUN_OK("search vecs --queries '%s' --k 3 --format ids --stats", scratch("queries.fvecs"));
    EXPECT_IN(g_err, "queries=10 ");
    EXPECT_IN(g_err, "qps=");
    const char *line = g_out;
    for (int i = 0; i < NQUERIES; i++) {
        char id[32];
        snprintf(id, sizeof id, "%d", i);
        T_ASSERT(line && *line);
        T_ASSERT_STREQ(first_word(line), id);
        line = strchr(line, '\n');
        if (line) line++;
    }
    T_ASSERT(line && *line == '\0');

    /* a filter keeps only group "a", the even-numbered documents */
    RUN_OK("search docs --vector '%s' --k 20 --format ids --filter '{\"group\":\"a\"}'",
           vec_json(g_docs[7]));
    int hits = 0;
    for (const char *p = g_out; (p = strstr(p, "doc-")) != NULL; p += 4, hits++)
        T_ASSERT(atoi(p + 4) % 2 == 0);
    T_ASSERT_EQ(hits, 20);

    EXPECT_STATUS(1, run("search vecs --vector '[1,2,' --k 3"));
    EXPECT_IN(g_err, "--vector");
    EXPECT_STATUS(2, run("search vecs --vector '[1,2,3]'")); /* wrong dimension */
    EXPECT_STATUS(1, run("search vecs --k 3"));               /* no query at all */
}

static void test_ivfpq(void) {
    /* --train-rows beyond the data: nothing trains until `train` */
    RUN_OK("create ivf --dim %d --index ivfpq --nlist 8 --pq-m 4 --nprobe 4 --refine 2 "
           "--train-rows 1000000", DIM);
    RUN_OK("import ivf '%s'", scratch("many.fvecs"));
    RUN_OK("stats ivf");
    EXPECT_IN(g_out, "index: ivfpq\n");
    EXPECT_IN(g_out, "ivf_nlist: 8\n");
    EXPECT_IN(g_out, "ivf_refine: 2\n");
    EXPECT_IN(g_out, "ivf_trained_nlist: 0\n");
    RUN_OK("train ivf");
    EXPECT_IN(g_out, "trained ivf: nlist 8, pq_m 4, 600 rows encoded in ");
    RUN_OK("stats ivf --json");
    EXPECT_IN(g_out, "\"ivf_trained_nlist\":8");
    EXPECT_IN(g_out, "\"ivf_rows\":600");
    RUN_OK("search ivf --vector '%s' --k 3 --format ids --nprobe 8 --refine 4",
           vec_json(g_many[42]));
    T_ASSERT_STREQ(first_word(g_out), "42");
    EXPECT_STATUS(2, run("search ivf --vector '%s' --refine 5000", vec_json(g_many[42])));
    EXPECT_IN(g_err, "refine");
    EXPECT_STATUS(2, run("train vecs")); /* a flat collection */
    EXPECT_IN(g_err, "not ivfpq");
    EXPECT_STATUS(2, run("create bad --dim 4 --index ivfpq --pq-m 5"));
    EXPECT_IN(g_err, "pq_m 5 is above dim 4");
    RUN_OK("drop ivf");
}

/* import --update: text-only rows first, vectors attached later, a field
 * changed and one cleared; a missing id fails its batch and writes nothing. */
static void test_update(void) {
    static float v[3][DIM];
    uint64_t seed = 7;
    RUN_OK("create upd --dim %d", DIM);
    FILE *f = fopen(scratch("upd.jsonl"), "w");
    T_ASSERT(f != NULL);
    for (int i = 0; i < 3; i++)
        fprintf(f, "{\"id\":\"u%d\",\"text\":\"chunk number %d\",\"metadata\":{\"part\":%d}}\n",
                i, i, i);
    T_ASSERT(fclose(f) == 0);
    RUN_OK("import upd '%s'", scratch("upd.jsonl"));
    EXPECT_IN(g_out, "imported 3 rows");
    f = fopen(scratch("upd-vec.jsonl"), "w");
    T_ASSERT(f != NULL);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < DIM; j++) v[i][j] = t_randf(&seed);
        /* the text here is ignored: only the vector is updated */
        fprintf(f, "{\"id\":\"u%d\",\"vector\":%s,\"text\":\"ignored\"}\n", i, vec_json(v[i]));
    }
    T_ASSERT(fclose(f) == 0);
    RUN_OK("import upd '%s' --update vector", scratch("upd-vec.jsonl"));
    EXPECT_IN(g_out, "updated 3 rows");
    RUN_OK("get upd u1");
    EXPECT_IN(g_out, "\"text\":\"chunk number 1\"");
    EXPECT_IN(g_out, "\"metadata\":{\"part\":1}");
    T_ASSERT(strstr(g_out, "\"vector\":[") != NULL);
    RUN_OK("search upd --vector '%s' --k 1 --format ids", vec_json(v[1]));
    T_ASSERT_STREQ(first_word(g_out), "u1");
    RUN_OK("stats upd");
    EXPECT_IN(g_out, "rows: 3\n");
    EXPECT_IN(g_out, "rows_with_vector: 3\n");

    /* metadata changed, text cleared (named but absent), vector kept */
    f = fopen(scratch("upd-meta.jsonl"), "w");
    T_ASSERT(f != NULL);
    fprintf(f, "{\"id\":\"u2\",\"metadata\":{\"part\":9}}\n");
    T_ASSERT(fclose(f) == 0);
    RUN_OK("import upd '%s' --update metadata,text", scratch("upd-meta.jsonl"));
    RUN_OK("get upd u2");
    EXPECT_IN(g_out, "\"text\":null");
    EXPECT_IN(g_out, "\"metadata\":{\"part\":9}");
    RUN_OK("search upd --vector '%s' --k 1 --format ids --filter '{\"part\":9}'",
           vec_json(v[2]));
    T_ASSERT_STREQ(first_word(g_out), "u2");

    /* ids that do not exist ("0", "1" ... of an .fvecs file): nothing is written */
    EXPECT_STATUS(2, run("import upd '%s' --update vector", scratch("vecs.fvecs")));
    EXPECT_IN(g_err, "no such row");
    EXPECT_IN(g_err, "'0'");
    RUN_OK("stats upd");
    EXPECT_IN(g_out, "rows: 3\n");

    /* bad field lists are usage errors */
    EXPECT_STATUS(1, run("import upd '%s' --update colour", scratch("upd.jsonl")));
    EXPECT_IN(g_err, "--update wants a comma list");
    EXPECT_STATUS(1, run("import upd '%s' --update text,", scratch("upd.jsonl")));
    RUN_OK("import --help");
    EXPECT_IN(g_out, "--update FIELDS");
    RUN_OK("drop upd");
}

static void test_delete_and_errors(void) {
    RUN_OK("delete vecs 42 43 nosuch");
    EXPECT_IN(g_out, "deleted 2 of 3 ids");
    EXPECT_STATUS(2, run("get vecs 42"));
    EXPECT_IN(g_err, "quarry: get vecs 42: ");
    RUN_OK("search vecs --vector '%s' --k 1 --format ids", vec_json(g_vecs[42]));
    T_ASSERT(strcmp(first_word(g_out), "42") != 0);
    EXPECT_STATUS(1, run("get vecs"));
    EXPECT_IN(g_err, "usage:");

    /* a bad row names its line; earlier committed batches stay */
    EXPECT_STATUS(2, run("import docs '%s' --batch 2", scratch("bad.jsonl")));
    EXPECT_IN(g_err, "line 6: ");
    EXPECT_IN(g_err, "4 rows in earlier batches were committed");
    RUN_OK("stats docs");
    EXPECT_IN(g_out, "rows: 304\n");
    RUN_OK("get docs bad-3");
    EXPECT_STATUS(2, run("get docs bad-4"));
    EXPECT_STATUS(2, run("import docs '%s'", scratch("broken.jsonl")));
    EXPECT_IN(g_err, "line 3: ");
    EXPECT_STATUS(2, run("import nosuch '%s'", scratch("docs.jsonl")));
}

static void test_shell(void) {
    char cmd[8192];
    if (snprintf(cmd, sizeof cmd, "'%s' '%s' >'%s/out' 2>'%s/err'", g_bin, g_db, g_dir,
                 g_dir) >= (int)sizeof cmd)
        T_FAIL("command too long");
    FILE *p = popen(cmd, "w");
    T_ASSERT(p != NULL);
    fprintf(p, "list\nsearch vecs --vector '%s' --k 2 --format \"ids\"\n", vec_json(g_vecs[9]));
    int st = pclose(p);
    free(g_out);
    free(g_err);
    g_out = slurp(scratch("out"));
    g_err = slurp(scratch("err"));
    snprintf(g_cmd, sizeof g_cmd, "%s (shell)", cmd);
    EXPECT_STATUS(0, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    T_ASSERT(strncmp(g_out, "docs\nvecs\n9 ", 12) == 0);
    T_ASSERT(strstr(g_out, "quarry> ") == NULL); /* no prompt when stdin is not a tty */
}

static void test_maintenance(void) {
    RUN_OK("compact vecs --force");
    EXPECT_IN(g_out, "compacted vecs");
    RUN_OK("get vecs 7");
    RUN_OK("sync");
    RUN_OK("drop docs");
    RUN_OK("list");
    T_ASSERT_STREQ(g_out, "vecs\n");
    EXPECT_STATUS(2, run("get docs doc-1"));
    EXPECT_STATUS(2, run("drop docs"));
}

/* Text collections: create without --dim, BEIR rows (title + text indexed),
 * --text with --explain, --text-queries with --format ids, hybrid --fusion. */
static void test_text(void) {
    FILE *f = fopen(scratch("beir.jsonl"), "w");
    fputs("{\"_id\":\"b1\",\"title\":\"Glaciers\",\"text\":\"Ice moves slowly downhill.\"}\n"
          "{\"_id\":\"b2\",\"title\":\"Deserts\",\"text\":\"Dry sand and dunes.\"}\n"
          "{\"_id\":\"b3\",\"title\":\"Rivers\",\"text\":\"Water flows to the sea.\"}\n",
          f);
    fclose(f);
    f = fopen(scratch("q.jsonl"), "w");
    fputs("{\"_id\":\"q1\",\"text\":\"glacier ice\"}\n{\"_id\":\"q2\",\"text\":\"sand\"}\n", f);
    fclose(f);
    T_ASSERT_EQ(run("create notes"), 0);
    T_ASSERT_EQ(run("import notes '%s'", scratch("beir.jsonl")), 0);
    /* the title is indexed: "glaciers" is only in b1's title */
    T_ASSERT_EQ(run("search notes --text glaciers --k 3 --explain"), 0);
    T_ASSERT(strstr(g_out, "\"b1\"") && strstr(g_out, "\"explain\"") && !strstr(g_out, "\"b2\""));
    RUN_OK("stats notes");
    EXPECT_IN(g_out, "dim: 0\n");
    T_ASSERT_EQ(run("search notes --text-queries '%s' --k 2 --format ids", scratch("q.jsonl")), 0);
    T_ASSERT(strstr(g_out, "q1\tb1") && strstr(g_out, "q2\tb2"));
    T_ASSERT(run("search notes --text x --fusion nope") != 0);
    T_ASSERT(run("search notes --text ice --filter '{\"and\":3}'") != 0);
    T_ASSERT(strstr(g_err, "$.and") != NULL);
    /* hybrid on a vector collection: text + vector fused */
    T_ASSERT_EQ(run("search docs --text \"anything\" --vector '%s' --fusion rrf --k 3",
                    vec_json(g_docs[0])),
                0);
    RUN_OK("drop notes");
}

int main(void) {
    const char *bindir = getenv("QUARRY_BIN_DIR");
    if (!bindir || !*bindir) T_SKIP("QUARRY_BIN_DIR is not set");
    snprintf(g_bin, sizeof g_bin, "%s/clients/cli/quarry", bindir);
    if (access(g_bin, X_OK) != 0) T_SKIP("%s is missing", g_bin);
    g_dir = t_tmpdir("cli");
    snprintf(g_db, sizeof g_db, "%s/db", g_dir);

    make_inputs();
    test_help_and_usage();
    test_create_and_import();
    test_get_and_search();
    test_ivfpq();
    test_update();
    test_delete_and_errors();
    test_shell();
    test_text();
    test_maintenance();

    free(g_out);
    free(g_err);
    t_rmdir(g_dir);
    return 0;
}
