/* SPDX-License-Identifier: MIT */
/*
 * HNSW collections through the public API, against exact search on the same
 * collection (params.exact): recall@10 >= 0.95 at ef = 64 on a clustered set;
 * after 20% deletes; filtered queries at 50%, 5% and 0.1% selectivity return
 * only passing rows (exactly the flat answer on the fallback path); a reopen
 * loads the checkpoint and gives identical results; a crash after the
 * checkpoint replays the tail; a damaged checkpoint is ignored and the graph
 * rebuilt from the log; compaction rebuilds the graph.
 */
#include "t.h"
#include "tdb.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

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

static void upsert_rows(quarry_coll *c, uint64_t from, uint64_t to) {
    quarry_batch *b;
    T_ASSERT_OK(quarry_batch_new(c, &b));
    for (uint64_t i = from; i < to; i++) {
        char id[32], meta[96];
        float v[DIM];
        snprintf(id, sizeof id, "r%llu", (unsigned long long)i);
        /* p50: half the rows; p5: 1 in 20; p01: 1 in 1000 */
        snprintf(meta, sizeof meta, "{\"p50\":%s,\"p5\":%s,\"p01\":%s}", i % 2 ? "true" : "false",
                 i % 20 == 3 ? "true" : "false", i % 1000 == 7 ? "true" : "false");
        make_vec(i, v);
        quarry_row r = {.id = id, .vector = v, .dim = DIM, .metadata = meta};
        T_ASSERT_OK(quarry_batch_upsert(b, &r));
        if (quarry_batch_count(b) == 2000) T_ASSERT_OK(quarry_batch_commit(b));
    }
    T_ASSERT_OK(quarry_batch_commit(b));
    quarry_batch_free(b);
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

    /* a crash after the checkpoint: the tail is replayed into the graph */
    pid_t pid = fork();
    if (pid == 0) {
        quarry_db *cdb = tdb_open(dir, "uring", 0);
        quarry_coll *cc;
        T_ASSERT_OK(quarry_collection_open(cdb, "h", &cc));
        upsert_rows(cc, N, N + 3000);
        T_ASSERT_OK(quarry_sync(cdb));
        _exit(0); /* no close: no new checkpoint */
    }
    int st;
    waitpid(pid, &st, 0);
    T_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "h", &c));
    T_ASSERT_OK(quarry_collection_stats(c, &cs));
    T_ASSERT_EQ(cs.rows, N - N / 5 + 3000);
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
    free(before), free(after), free(ck);
    t_rmdir(dir);
    free(dir);
    return 0;
}
