/* SPDX-License-Identifier: MIT */
/*
 * Crash test: a child process commits batches (random sizes, upserts and
 * deletes) under the `sync` policy and reports each acknowledged batch on a
 * pipe; the parent SIGKILLs it at a random moment, reopens the database and
 * checks that it holds exactly the state after the last acknowledged batch,
 * or after the one batch that was in flight -- every acknowledged row
 * byte-identical, no half batch visible -- and that the vector index agrees
 * with the log: a search for every live row's own vector finds that row, and
 * exactly the live rows are searchable.
 *
 * QUARRY_CRASH_ITERS sets the number of kills (default 8), QUARRY_CRASH_INDEX
 * = flat|hnsw|ivfpq the collection kind (default flat). The HNSW run starts
 * with 2,500 rows (above the exact-search threshold, so the graph answers) and
 * writes background checkpoints every 300 graph changes, so kills also land
 * during checkpoints and reopens load a checkpoint plus a replayed tail. The
 * IVF-PQ run trains in the background right after those 2,500 rows (training
 * threshold 2,000) and checkpoints the trained lists, so kills land before,
 * during and after training; a reopen either loads the trained index plus the
 * tail or (killed before its checkpoint) trains again, and the lists must
 * hold every live row.
 */
#include "t.h"
#include "tdb.h"

#include "engine/engine.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIM 32
#define KEYS 3000
#define BASE_ROWS 2500
#define MAX_BATCHES 100000

typedef struct op {
    uint32_t key;
    int del;
} op;

/* The deterministic content of batch b (1-based) for a seed. */
static size_t batch_ops(uint64_t seed, uint64_t b, op *ops) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + b;
    size_t n = 1 + t_rand(&s) % 40;
    for (size_t i = 0; i < n; i++) {
        ops[i].key = (uint32_t)(t_rand(&s) % KEYS);
        ops[i].del = t_rand(&s) % 10 == 0;
    }
    return n;
}

static int g_hnsw, g_ivf;

static void child(const char *dir, uint64_t seed, int fd) {
    quarry_db *db = tdb_open(dir, "uring", 256 * 1024);
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = DIM;
    cfg.index = g_hnsw ? QUARRY_INDEX_HNSW : g_ivf ? QUARRY_INDEX_IVFPQ : QUARRY_INDEX_FLAT;
    cfg.hnsw_ef_construction = 64;
    cfg.ivf_train_rows = 2000;
    cfg.pq_m = 8;
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_create(db, "crash", &cfg, &c));
    /* batch 0: keys [0, BASE_ROWS) */
    T_ASSERT_OK(tdb_upsert_range(c, 0, BASE_ROWS, 0, DIM));
    if (write(fd, "R\n", 2) != 2) _exit(3);
    op ops[64];
    for (uint64_t b = 1; b < MAX_BATCHES; b++) {
        size_t n = batch_ops(seed, b, ops);
        quarry_batch *bt;
        T_ASSERT_OK(quarry_batch_new(c, &bt));
        for (size_t i = 0; i < n; i++) {
            char id[32], text[64], meta[64];
            float v[DIM];
            snprintf(id, sizeof id, "k%u", ops[i].key);
            if (ops[i].del) {
                T_ASSERT_OK(quarry_batch_delete(bt, id, 0));
                continue;
            }
            tdb_vector(ops[i].key, b, DIM, v);
            tdb_text(ops[i].key, b, text, sizeof text);
            snprintf(meta, sizeof meta, "{\"v\":%llu,\"g\":\"g%u\"}", (unsigned long long)b,
                     ops[i].key % 7);
            quarry_row r = {.id = id, .vector = v, .dim = DIM, .text = text, .metadata = meta};
            T_ASSERT_OK(quarry_batch_upsert(bt, &r));
        }
        T_ASSERT_OK(quarry_batch_commit(bt));
        quarry_batch_free(bt);
        char line[32];
        int l = snprintf(line, sizeof line, "A %llu\n", (unsigned long long)b);
        if (write(fd, line, (size_t)l) != l) _exit(3);
    }
    _exit(0);
}

#define ABSENT UINT64_MAX

/* Does row `key` hold exactly `version` (ABSENT = no row)? */
static int row_is(quarry_coll *c, uint32_t key, uint64_t version) {
    char id[32], text[64], meta[64];
    snprintf(id, sizeof id, "k%u", key);
    quarry_doc *d = NULL;
    int rc = quarry_get(c, id, 0, &d);
    if (version == ABSENT) {
        quarry_doc_free(d);
        return rc == QUARRY_NOTFOUND;
    }
    if (rc) return 0;
    tdb_text(key, version, text, sizeof text);
    snprintf(meta, sizeof meta, "{\"v\":%llu,\"g\":\"g%llu\"}", (unsigned long long)version,
             (unsigned long long)(key % 7));
    float want[DIM];
    tdb_vector(key, version, DIM, want);
    uint32_t dim;
    const float *v = quarry_doc_vector(d, &dim);
    const char *t = quarry_doc_text(d, NULL), *m = quarry_doc_metadata(d, NULL);
    int ok = v && dim == DIM && !memcmp(v, want, sizeof want) && t && !strcmp(t, text) && m &&
             !strcmp(m, meta);
    quarry_doc_free(d);
    return ok;
}

static int state_matches(quarry_coll *c, const uint64_t *state) {
    for (uint32_t k = 0; k < KEYS; k++)
        if (!row_is(c, k, state[k])) return 0;
    return 1;
}

static void apply(uint64_t seed, uint64_t b, uint64_t *state) {
    op ops[64];
    size_t n = batch_ops(seed, b, ops);
    for (size_t i = 0; i < n; i++) state[ops[i].key] = ops[i].del ? ABSENT : b;
}

/* The vector index agrees with the log, exactly: a row is a live node of the
 * graph if and only if it is a live row with a vector, and the graph passes
 * its invariant check. Search agrees too: a search for each live row's own
 * vector finds it (exact collections: always; the graph, an approximate
 * index: at least 98% of the time), and an exact search serves exactly the
 * live rows. */
static void check_index(quarry_coll *c, const uint64_t *state) {
    if (c->graph) {
        char msg[256];
        if (hnsw_check(c->graph, msg, sizeof msg) != 0) T_FAIL("graph check: %s", msg);
        for (uint32_t r = 0; r < c->nrows; r++) {
            int row_live = (c->rows[r].flags & (ROW_LIVE | ROW_VEC)) == (ROW_LIVE | ROW_VEC);
            int node_live = hnsw_contains(c->graph, r) && !hnsw_is_deleted(c->graph, r);
            if (row_live != node_live)
                T_FAIL("row %u: live row %d but live graph node %d", r, row_live, node_live);
        }
    }
    uint64_t live = 0, found = 0;
    for (uint32_t k = 0; k < KEYS; k++) {
        if (state[k] == ABSENT) continue;
        live++;
        float v[DIM];
        tdb_vector(k, state[k], DIM, v);
        quarry_search_params p;
        quarry_search_params_init(&p);
        p.ef = 64;
        quarry_result *res;
        T_ASSERT_OK(quarry_search(c, v, DIM, 1, &p, &res));
        char id[32];
        snprintf(id, sizeof id, "k%u", k);
        found += quarry_result_count(res) == 1 && !strcmp(quarry_result_id(res, 0, NULL), id) &&
                 quarry_result_distance(res, 0) == 0.0f;
        quarry_result_free(res);
    }
    int approx = c->graph || g_ivf;
    if (approx ? found < live * 98 / 100 : found != live)
        T_FAIL("a search for its own vector found only %llu of %llu live rows",
               (unsigned long long)found, (unsigned long long)live);
    quarry_coll_stats st;
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    T_ASSERT_EQ(st.rows_with_vector, live);
    /* a trained IVF index holds every live row (dead ones until compaction) */
    if (st.ivf_nlist) T_ASSERT(st.ivf_rows >= live);
    /* an exact search for everything returns exactly the live rows */
    float z[DIM] = {0};
    quarry_search_params p;
    quarry_search_params_init(&p);
    p.exact = 1;
    quarry_result *all;
    T_ASSERT_OK(quarry_search(c, z, DIM, KEYS + 10, &p, &all));
    T_ASSERT_EQ(quarry_result_count(all), live);
    quarry_result_free(all);
}

static uint64_t run_once(uint64_t seed, uint64_t *acked_total, uint64_t *checked) {
    char *dir = t_tmpdir("crash");
    int p[2];
    T_ASSERT(pipe(p) == 0);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child(dir, seed, p[1]);
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    char line[64];
    T_ASSERT(fgets(line, sizeof line, in) && line[0] == 'R');
    uint64_t s = seed;
    useconds_t delay = (useconds_t)(20000 + t_rand(&s) % 400000);
    usleep(delay);
    kill(pid, SIGKILL);
    uint64_t acked = 0;
    while (fgets(line, sizeof line, in))
        if (line[0] == 'A') acked = strtoull(line + 2, NULL, 10);
    fclose(in);
    int status;
    waitpid(pid, &status, 0);
    T_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    static uint64_t state[KEYS], next[KEYS];
    for (uint32_t k = 0; k < KEYS; k++) state[k] = k < BASE_ROWS ? 0 : ABSENT;
    for (uint64_t b = 1; b <= acked; b++) apply(seed, b, state);
    memcpy(next, state, sizeof next);
    apply(seed, acked + 1, next);

    quarry_db *db = tdb_open(dir, "uring", 256 * 1024);
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_open(db, "crash", &c));
    quarry_coll_stats st;
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    int exact = state_matches(c, state);
    int in_flight = !exact && state_matches(c, next);
    if (!exact && !in_flight)
        T_FAIL("seed %llu: after %llu acknowledged batches the database matches neither that "
               "state nor the next batch's (lost or half-applied write); last_lsn %llu",
               (unsigned long long)seed, (unsigned long long)acked,
               (unsigned long long)st.last_lsn);
    T_ASSERT(st.last_lsn == acked + 1 || st.last_lsn == acked + 2); /* + batch 0 */
    check_index(c, exact ? state : next);
    *checked += st.rows;
    /* the reopened database takes writes and survives another reopen */
    T_ASSERT_OK(tdb_upsert_range(c, 10000, 3, 1, DIM));
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    db = tdb_open(dir, "uring", 256 * 1024);
    T_ASSERT_OK(quarry_collection_open(db, "crash", &c));
    for (uint64_t k = 10000; k < 10003; k++) tdb_check_row(c, k, 1, DIM);
    quarry_collection_close(c);
    quarry_close(db);
    printf("seed %llu: killed after %u us, %llu batches acknowledged, %s%s\n",
           (unsigned long long)seed, (unsigned)delay, (unsigned long long)acked,
           exact ? "exact" : "in-flight batch also durable",
           !g_ivf ? "" : st.ivf_nlist ? ", IVF index loaded from its checkpoint" : ", IVF untrained at reopen");
    *acked_total += acked;
    t_rmdir(dir);
    free(dir);
    return acked;
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    int iters = getenv("QUARRY_CRASH_ITERS") ? atoi(getenv("QUARRY_CRASH_ITERS")) : 8;
    uint64_t base = getenv("QUARRY_CRASH_SEED") ? strtoull(getenv("QUARRY_CRASH_SEED"), 0, 10)
                                                : (uint64_t)time(NULL);
    uint64_t total = 0;
    const char *kind = getenv("QUARRY_CRASH_INDEX");
    g_hnsw = kind && !strcmp(kind, "hnsw");
    g_ivf = kind && !strcmp(kind, "ivfpq");
    if ((g_hnsw || g_ivf) && !getenv("QUARRY_CHECKPOINT_EVERY")) setenv("QUARRY_CHECKPOINT_EVERY", "300", 1);
    uint64_t checked = 0;
    printf("crash test (%s): %d iterations from seed %llu\n", kind ? kind : "flat", iters,
           (unsigned long long)base);
    for (int i = 0; i < iters; i++) run_once(base + (uint64_t)i, &total, &checked);
    printf("crash test (%s): %d kills, %llu acknowledged batches, %llu rows checked "
           "byte for byte and found by the index, lost = 0\n",
           kind ? kind : "flat", iters, (unsigned long long)total,
           (unsigned long long)checked);
    return 0;
}
