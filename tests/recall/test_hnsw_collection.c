/* SPDX-License-Identifier: MIT */
/*
 * HNSW collections through the public API, against exact search on the same
 * collection (params.exact): recall@10 >= 0.95 at ef = 64 on a clustered set;
 * after 20% deletes; filtered queries at 50%, 5% and 0.1% selectivity return
 * only passing rows (exactly the flat answer on the fallback path); a reopen
 * loads the checkpoint and gives identical results; a crash after the
 * checkpoint replays the tail; a damaged checkpoint is ignored and the graph
 * rebuilt from the log; compaction rebuilds the graph.
 *
 * The metadata index is checkpointed too: after a crash whose tail deletes
 * rows, updates others' metadata and adds rows, filtered searches (exact and
 * graph; booleans, a keyword, a numeric range, tags, not/and/in/exists) give
 * exactly the results the crashed process saw, when the index comes from the
 * checkpoint (no warning), from an older checkpoint without the metadata
 * section (rebuilt alone, no warning) and from a checkpoint whose metadata
 * section is damaged (a warning, everything rebuilt).
 */
#include "t.h"
#include "tdb.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/qcommon.h"
#include "storage/format.h"

#define DIM 32
#define N 12000
#define NQ 100
#define K 10

static float centres[40][DIM];

static void make_vec(uint64_t i, float *v) {
    uint64_t s = i * 2654435761u + 17;
    const float *c = centres[t_rand(&s) % 40];
    for (int j = 0; j < DIM; j++) v[j] = c[j] + 0.8f * t_randf(&s);
}

/* Row i's metadata: p50: half the rows; p5: 1 in 20; p01: 1 in 1000; a
 * keyword g of 7 values and a number n of 100. An update (version 1) moves
 * the row into p5, renames its keyword, changes n and adds tags. */
static void row_meta(uint64_t i, int version, char *meta, size_t cap) {
    const char *p50 = i % 2 ? "true" : "false";
    if (version == 0)
        snprintf(meta, cap, "{\"p50\":%s,\"p5\":%s,\"p01\":%s,\"g\":\"g%u\",\"n\":%u}", p50,
                 i % 20 == 3 ? "true" : "false", i % 1000 == 7 ? "true" : "false",
                 (unsigned)(i % 7), (unsigned)(i % 100));
    else
        snprintf(meta, cap,
                 "{\"p50\":%s,\"p5\":true,\"g\":\"upd\",\"n\":%u,\"tags\":[\"t%u\",\"u\"]}", p50,
                 (unsigned)(i * 7 % 100), (unsigned)(i % 3));
}

static void upsert_rows_v(quarry_coll *c, uint64_t from, uint64_t to, uint64_t step, int version) {
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));
    for (uint64_t i = from; i < to; i += step) {
        if (version && (i % 5 == 0 || i % 7 == 1)) continue; /* updates: live rows only */
        char id[32], meta[160];
        float v[DIM];
        snprintf(id, sizeof id, "r%llu", (unsigned long long)i);
        row_meta(i, version, meta, sizeof meta);
        make_vec(i, v);
        quarry_row r = {.id = id, .vector = v, .dim = DIM, .metadata = meta};
        T_ASSERT_OK(quarry_batch_upsert(b, &r));
        if (quarry_batch_count(b) == 2000) T_ASSERT_OK(quarry_batch_commit(b));
    }
    T_ASSERT_OK(quarry_batch_commit(b));
    quarry_batch_free(b);
}

static void upsert_rows(quarry_coll *c, uint64_t from, uint64_t to) {
    upsert_rows_v(c, from, to, 1, 0);
}

static quarry_result *search(quarry_coll *c, const float *q, uint32_t ef, int exact,
                             const char *filter) {
    quarry_search_params p;
    quarry_search_params_init(&p);
    p.ef = ef, p.exact = exact, p.filter = filter;
    quarry_result *res;
    T_ASSERT_OK(quarry_search(c, q, DIM, K, &p, &res));
    return res;
}

/* recall@K of the graph vs exact; also checks every hit passes `pass`. */
static double recall(quarry_coll *c, uint32_t ef, const char *filter, int (*pass)(uint64_t)) {
    long hit = 0, total = 0;
    for (int qi = 0; qi < NQ; qi++) {
        float q[DIM];
        make_vec(1000000 + (uint64_t)qi, q);
        quarry_result *approx = search(c, q, ef, 0, filter), *exact = search(c, q, 0, 1, filter);
        size_t ne = quarry_result_count(exact), na = quarry_result_count(approx);
        T_ASSERT_EQ(na, ne); /* k rows whenever k rows qualify */
        for (size_t i = 0; i < na; i++) {
            const char *id = quarry_result_id(approx, i, NULL);
            if (pass) T_ASSERT(pass(strtoull(id + 1, NULL, 10)));
            for (size_t j = 0; j < ne; j++)
                if (!strcmp(id, quarry_result_id(exact, j, NULL))) {
                    hit++;
                    break;
                }
        }
        total += (long)ne;
        quarry_result_free(approx);
        quarry_result_free(exact);
    }
    return total ? (double)hit / (double)total : 1.0;
}

static int p50(uint64_t i) { return i % 2 == 1; }
static int p5(uint64_t i) { return i % 20 == 3; }
static int p01(uint64_t i) { return i % 1000 == 7; }

/* All result ids of NQ queries, concatenated (to compare runs). */
static char *fingerprint(quarry_coll *c) {
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (int qi = 0; qi < NQ; qi++) {
        float q[DIM];
        make_vec(1000000 + (uint64_t)qi, q);
        quarry_result *r = search(c, q, 64, 0, NULL);
        for (size_t i = 0; i < quarry_result_count(r); i++)
            len += (size_t)snprintf(out + len, cap - len, "%s,", quarry_result_id(r, i, NULL));
        quarry_result_free(r);
    }
    return out;
}

static char *find_ckpt(const char *dir) {
    char cdir[4096];
    snprintf(cdir, sizeof cdir, "%s/c-1", dir);
    DIR *d = opendir(cdir);
    struct dirent *e;
    char *found = NULL;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "ckpt-", 5)) {
            found = malloc(8192);
            snprintf(found, 8192, "%s/%s", cdir, e->d_name);
        }
    closedir(d);
    return found;
}

/* Filters over every kind of metadata value (the graph walk and the exact
 * path both run: selectivity from ~1% to ~40%). */
static const char *const FILTERS[] = {
    "{\"p5\":true}",
    "{\"g\":\"g3\"}",
    "{\"range\":{\"field\":\"n\",\"gte\":10,\"lt\":30}}",
    "{\"and\":[{\"p50\":true},{\"not\":{\"g\":\"g2\"}}]}",
    "{\"in\":{\"field\":\"g\",\"values\":[\"g1\",\"upd\"]}}",
    "{\"exists\":\"tags\"}",
    "{\"tags\":\"t1\"}",
    "{\"p01\":true}",
};

/* The result ids of 10 queries per filter: exact (graph = 0) or through the
 * graph (ef 64). */
static char *filtered_fingerprint(quarry_coll *c, int graph) {
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (size_t f = 0; f < sizeof FILTERS / sizeof *FILTERS; f++)
        for (int qi = 0; qi < 10; qi++) {
            float q[DIM];
            make_vec(2000000 + (uint64_t)qi, q);
            quarry_result *r = search(c, q, 64, !graph, FILTERS[f]);
            for (size_t i = 0; i < quarry_result_count(r); i++)
                len += (size_t)snprintf(out + len, cap - len, "%s,", quarry_result_id(r, i, NULL));
            len += (size_t)snprintf(out + len, cap - len, ";");
            quarry_result_free(r);
        }
    return out;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    T_ASSERT(f && fwrite(p, 1, n, f) == n);
    fclose(f);
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    T_ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    T_ASSERT(fread(p, 1, (size_t)len, f) == (size_t)len);
    p[len] = 0;
    fclose(f);
    if (n) *n = (size_t)len;
    return p;
}

/* Open read-only (no checkpoint is written at close, so the checkpoint and
 * the log tail stay as they are), with what the open prints on stderr in
 * *err. */
static quarry_db *open_ro(const char *dir, quarry_coll **c, char **err) {
    char path[4200];
    snprintf(path, sizeof path, "%s.stderr", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    T_ASSERT(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    quarry_options o;
    quarry_options_init(&o);
    o.read_only = 1;
    quarry_db *db;
    int rc = quarry_open(dir, &o, &db);
    if (!rc) rc = quarry_collection_open(db, "h", c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    *err = read_file(path, NULL);
    unlink(path);
    if (rc) T_FAIL("read-only open: %s (%s); stderr: %s", quarry_errmsg(), quarry_errstr(rc), *err);
    return db;
}

/* Rewrite the checkpoint file at path without section `drop`, or with one
 * byte of section `flip` changed, sealing both file checksums again (as if
 * written that way). 1 if the section was there. */
static int rewrite_ckpt(const char *path, uint32_t drop, uint32_t flip) {
    size_t len;
    uint8_t *in = (uint8_t *)read_file(path, &len), *out = malloc(len);
    T_ASSERT(len >= CKPT_HEADER_LEN);
    memcpy(out, in, CKPT_HEADER_LEN);
    size_t o = CKPT_HEADER_LEN;
    int found = 0;
    for (size_t off = CKPT_HEADER_LEN; off + CKPT_SECTION_HEADER <= len;) {
        uint32_t kind = get_u32(in + off);
        size_t slen = (size_t)get_u64(in + off + 8), whole = CKPT_SECTION_HEADER + slen;
        T_ASSERT(whole <= len - off);
        if (kind == drop || kind == flip) found = 1;
        if (kind != drop) {
            memcpy(out + o, in + off, whole);
            if (kind == flip) out[o + CKPT_SECTION_HEADER + slen / 2] ^= 0x55;
            o += whole;
        }
        off += whole;
    }
    put_u64(out + 32, o - CKPT_HEADER_LEN);
    put_u64(out + 40, XXH3_64bits(out + CKPT_HEADER_LEN, o - CKPT_HEADER_LEN));
    put_u64(out + 48, XXH3_64bits(out, 48));
    write_file(path, out, o);
    free(in);
    free(out);
    return found;
}

/* The crashed process's filtered results (exact, then graph) against a
 * read-only reopen. want_warning: NULL = the open must not warn. */
static void check_filtered_reopen(const char *dir, const char *exact, const char *graph,
                                  const char *want_warning, const char *what) {
    quarry_coll *c;
    char *err;
    quarry_db *db = open_ro(dir, &c, &err);
    if (want_warning ? !strstr(err, want_warning) : strstr(err, "warning") != NULL)
        T_FAIL("%s: the open printed \"%s\"", what, err);
    char *e = filtered_fingerprint(c, 0);
    T_ASSERT_STREQ(e, exact);
    if (graph) { /* the same graph (checkpoint + tail): the same walk */
        char *g = filtered_fingerprint(c, 1);
        T_ASSERT_STREQ(g, graph);
        free(g);
    }
    printf("filtered results after a reopen %s: identical\n", what);
    free(e);
    free(err);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
}

int main(void) {
    uint64_t s = 1234;
    for (int c = 0; c < 40; c++)
        for (int j = 0; j < DIM; j++) centres[c][j] = 2.0f * t_randf(&s);
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("hnsw");
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = DIM;
    cfg.index = QUARRY_INDEX_HNSW;
    cfg.durability = QUARRY_DURABILITY_NONE;
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_create(db, "h", &cfg, &c));
    upsert_rows(c, 0, N);

    quarry_coll_stats cs;
    T_ASSERT_OK(quarry_collection_stats(c, &cs));
    uint64_t exact0 = cs.searches_exact;
    double r = recall(c, 64, NULL, NULL);
    printf("recall@10 ef=64 after build: %.4f\n", r);
    T_ASSERT(r >= 0.95);
    /* the graph answered every unfiltered query (only the references were exact) */
    T_ASSERT_OK(quarry_collection_stats(c, &cs));
    T_ASSERT_EQ(cs.searches_exact - exact0, NQ);

    /* filters: 50% and 5% take the graph, 0.1% the exact path */
    T_ASSERT_OK(quarry_collection_stats(c, &cs));
    exact0 = cs.searches_exact;
    double f50 = recall(c, 64, "{\"p50\":true}", p50);
    T_ASSERT_OK(quarry_collection_stats(c, &cs));
    T_ASSERT_EQ(cs.searches_exact - exact0, NQ); /* 50%: the filtered graph walk */
    double f5 = recall(c, 64, "{\"p5\":true}", p5), f01 = recall(c, 64, "{\"p01\":true}", p01);
    printf("filtered recall@10: 50%% %.4f, 5%% %.4f, 0.1%% %.4f\n", f50, f5, f01);
    T_ASSERT(f50 >= 0.95 && f5 >= 0.95);
    T_ASSERT(f01 == 1.0);

    /* 20% deletes: never returned, recall holds */
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));
    for (uint64_t i = 0; i < N; i += 5) {
        char id[32];
        snprintf(id, sizeof id, "r%llu", (unsigned long long)i);
        T_ASSERT_OK(quarry_batch_delete(b, id, 0));
    }
    T_ASSERT_OK(quarry_batch_commit(b));
    quarry_batch_free(b);
    r = recall(c, 64, NULL, NULL);
    printf("recall@10 ef=64 after 20%% deletes: %.4f\n", r);
    T_ASSERT(r >= 0.95);
    for (int qi = 0; qi < 20; qi++) {
        float q[DIM];
        make_vec(1000000 + (uint64_t)qi, q);
        quarry_result *res = search(c, q, 64, 0, NULL);
        for (size_t i = 0; i < quarry_result_count(res); i++)
            T_ASSERT(strtoull(quarry_result_id(res, i, NULL) + 1, NULL, 10) % 5 != 0);
        quarry_result_free(res);
    }

    /* reopen: the checkpoint written at close gives identical results */
    char *before = fingerprint(c);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    char *ck = find_ckpt(dir);
    T_ASSERT(ck != NULL);
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "h", &c));
    char *after = fingerprint(c);
    T_ASSERT_STREQ(after, before);
    free(after);
    quarry_collection_close(c);
    quarry_close(db);

    /* a crash after the checkpoint: the tail is replayed into the graph. The
     * tail also deletes rows the checkpoint holds (1 in 7) and updates the
     * metadata of others (1 in 11); the crashed process's filtered results
     * are kept in a file. */
    char fp_path[4200];
    snprintf(fp_path, sizeof fp_path, "%s.filtered", dir);
    pid_t pid = fork();
    if (pid == 0) {
        quarry_db *cdb = tdb_open(dir, "uring", 0);
        quarry_coll *cc;
        T_ASSERT_OK(quarry_collection_open(cdb, "h", &cc));
        upsert_rows(cc, N, N + 3000);
        quarry_batch *cb;
        T_ASSERT_OK(quarry_batch_new(cc, &cb));
        for (uint64_t i = 1; i < N; i += 7) {
            char id[32];
            snprintf(id, sizeof id, "r%llu", (unsigned long long)i);
            if (i % 5) T_ASSERT_OK(quarry_batch_delete(cb, id, 0));
        }
        T_ASSERT_OK(quarry_batch_commit(cb));
        quarry_batch_free(cb);
        upsert_rows_v(cc, 2, N, 11, 1);
        char *fe = filtered_fingerprint(cc, 0), *fg = filtered_fingerprint(cc, 1);
        size_t le = strlen(fe), lg = strlen(fg);
        fe = realloc(fe, le + lg + 2);
        fe[le] = '\n';
        memcpy(fe + le + 1, fg, lg + 1);
        write_file(fp_path, fe, le + lg + 1);
        T_ASSERT_OK(quarry_sync(cdb));
        _exit(0); /* no close: no new checkpoint */
    }
    int st;
    waitpid(pid, &st, 0);
    T_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *fp_exact = read_file(fp_path, NULL), *fp_graph = strchr(fp_exact, '\n');
    T_ASSERT(fp_graph != NULL);
    *fp_graph++ = 0;
    unlink(fp_path);
    check_filtered_reopen(dir, fp_exact, fp_graph, NULL, "from the checkpoint");
    free(ck);
    ck = find_ckpt(dir);
    T_ASSERT(ck != NULL);
    size_t ck_len;
    char *ck_bytes = read_file(ck, &ck_len);
    T_ASSERT(rewrite_ckpt(ck, CKPT_SECTION_ATTRS, 0));
    check_filtered_reopen(dir, fp_exact, fp_graph, NULL, "without the metadata section");
    write_file(ck, ck_bytes, ck_len);
    T_ASSERT(rewrite_ckpt(ck, 0, CKPT_SECTION_ATTRS));
    check_filtered_reopen(dir, fp_exact, NULL, "metadata index does not decode",
                          "with a damaged metadata section");
    write_file(ck, ck_bytes, ck_len);
    free(ck_bytes);
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "h", &c));
    T_ASSERT_OK(quarry_collection_stats(c, &cs));
    uint64_t tail_deleted = 0;
    for (uint64_t i = 1; i < N; i += 7) tail_deleted += i % 5 != 0;
    T_ASSERT_EQ(cs.rows, N - N / 5 + 3000 - tail_deleted);
    r = recall(c, 64, NULL, NULL);
    printf("recall@10 after checkpoint + replayed tail: %.4f\n", r);
    T_ASSERT(r >= 0.95);
    /* every tail row is reachable: searching its own vector finds it */
    for (uint64_t i = N; i < N + 3000; i += 97) {
        float v[DIM];
        make_vec(i, v);
        quarry_result *res = search(c, v, 64, 0, NULL);
        char id[32];
        snprintf(id, sizeof id, "r%llu", (unsigned long long)i);
        T_ASSERT_STREQ(quarry_result_id(res, 0, NULL), id);
        quarry_result_free(res);
    }
    quarry_collection_close(c);
    quarry_close(db);
    free(ck);

    /* a damaged checkpoint is ignored: the graph is rebuilt from the log */
    ck = find_ckpt(dir);
    T_ASSERT(ck != NULL);
    int fd = open(ck, O_RDWR);
    unsigned char byte;
    T_ASSERT(pread(fd, &byte, 1, 200) == 1);
    byte ^= 0xff;
    T_ASSERT(pwrite(fd, &byte, 1, 200) == 1);
    close(fd);
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "h", &c));
    r = recall(c, 64, NULL, NULL);
    printf("recall@10 after a damaged checkpoint (rebuilt): %.4f\n", r);
    T_ASSERT(r >= 0.95);
    char *rebuilt = filtered_fingerprint(c, 0);
    T_ASSERT_STREQ(rebuilt, fp_exact);
    free(rebuilt);

    /* compaction renumbers rows and rebuilds the graph */
    T_ASSERT_OK(quarry_collection_compact(c, 1));
    T_ASSERT_OK(quarry_collection_stats(c, &cs));
    T_ASSERT_EQ(cs.dead_rows, 0);
    r = recall(c, 64, NULL, NULL);
    printf("recall@10 after compaction: %.4f\n", r);
    T_ASSERT(r >= 0.95);
    free(before);
    before = fingerprint(c);
    quarry_collection_close(c);
    quarry_close(db);
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "h", &c));
    after = fingerprint(c);
    T_ASSERT_STREQ(after, before);
    quarry_collection_close(c);
    quarry_close(db);
    free(before), free(after), free(ck), free(fp_exact);
    t_rmdir(dir);
    free(dir);
    return 0;
}
