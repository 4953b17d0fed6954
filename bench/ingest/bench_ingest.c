/* SPDX-License-Identifier: MIT */
/*
 * bench_ingest.c -- durable ingest throughput through the public API.
 *
 *   bench_ingest [--dir DIR] [--dim 128] [--rows 200000] [--rows-batch1 5000]
 *                [--repeat 3] [--threads 1,4] [--batches 1,100,1000]
 *                [--durability sync,none] [--io auto|uring|posix] [--seed 42]
 *
 * What is measured. For every (durability, batch size, threads) configuration
 * and every repeat, a fresh database is opened in a new subdirectory of the
 * scratch directory and one collection is created (dim, l2, flat, the
 * durability policy under test). N writer threads then each commit rows/N rows
 * (rounded down to whole batches) as batches of `batch` rows, each batch built
 * with quarry_batch_upsert and committed with quarry_batch_commit; thread t
 * uses ids "t<t>-<i>". Batch size 1 uses --rows-batch1 rows instead of --rows
 * because every commit then costs one fdatasync under `sync`.
 *
 * How. The vectors (uniform in [-1, 1), fixed seed) and the ids are generated
 * before the clock starts, so generation is not measured; building the batch
 * (validation, encoding, copying into the batch) is, as it is for any client.
 * The threads wait at a barrier; the clock runs from their release until the
 * last thread has committed its last batch. rows/s = rows / that wall time.
 * Opening the database, creating the collection and closing (which syncs
 * under `none`) are not timed, so `none` figures are page-cache throughput.
 *
 * syncs_per_batch is quarry_coll_stats.syncs / .batches, summed over the
 * repeats: fdatasync calls the log issued per committed batch. Under `sync`
 * with one writer it is 1 (plus the rare seal of a full segment); with
 * concurrent writers group commit lets one fdatasync cover several batches,
 * so it falls below 1. Under `none` it counts only segment seals.
 *
 * Output (stdout): '#' comment lines, a CSV header, then one line per
 * configuration, with the median, min and max of rows/s over the repeats:
 *   durability,batch,threads,rows,rows_per_s_median,rows_per_s_min,
 *   rows_per_s_max,syncs_per_batch
 * Progress goes to stderr. The scratch directory is a new mkdtemp directory
 * inside --dir (default $TMPDIR, else /tmp); it is removed at the end.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "bench_ingest"
#include "bench/common/bench_util.h"
#include "quarry.h"

#define MAX_LIST  16
#define ID_STRIDE 32

typedef struct options {
    const char *dir;
    uint32_t dim;
    size_t rows, rows_batch1;
    int repeat;
    int threads[MAX_LIST], nthreads;
    int batches[MAX_LIST], nbatches;
    int durability[MAX_LIST], ndurability;
    quarry_io_backend io;
    uint64_t seed;
} options;

typedef struct worker {
    pthread_t tid;
    pthread_barrier_t *start;
    quarry_coll *coll;
    const float *vecs; /* this thread's rows, back to back */
    const char *ids;   /* this thread's ids, ID_STRIDE bytes each */
    const uint8_t *id_lens;
    uint32_t dim;
    size_t rows, batch;
    int rc;
    char err[256];
} worker;


static int parse_int_list(const char *s, int *out, const char *name) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) die("out of memory", NULL);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(t, &end, 10);
        if (*end || v <= 0 || v > QUARRY_MAX_BATCH_ROWS || n == MAX_LIST) die("bad list", name);
        out[n++] = (int)v;
    }
    free(copy);
    if (n == 0) die("empty list", name);
    return n;
}

static int parse_durability_list(const char *s, int *out) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) die("out of memory", NULL);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int d = quarry_durability_parse(t);
        if (d < 0 || n == MAX_LIST) die("bad --durability value", t);
        out[n++] = d;
    }
    free(copy);
    if (n == 0) die("empty list", "--durability");
    return n;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_ingest [--dir DIR] [--dim 128] [--rows 200000] [--rows-batch1 5000]\n"
            "                    [--repeat 3] [--threads 1,4] [--batches 1,100,1000]\n"
            "                    [--durability sync,none] [--io auto|uring|posix] [--seed 42]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){0};
    o->dim = 128;
    o->rows = 200000;
    o->rows_batch1 = 5000;
    o->repeat = 3;
    o->nthreads = parse_int_list("1,4", o->threads, "--threads");
    o->nbatches = parse_int_list("1,100,1000", o->batches, "--batches");
    o->ndurability = parse_durability_list("sync,none", o->durability);
    o->io = QUARRY_IO_AUTO;
    o->seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--dir"))
            o->dir = v;
        else if (!strcmp(a, "--dim"))
            o->dim = (uint32_t)parse_size(v, a);
        else if (!strcmp(a, "--rows"))
            o->rows = parse_size(v, a);
        else if (!strcmp(a, "--rows-batch1"))
            o->rows_batch1 = parse_size(v, a);
        else if (!strcmp(a, "--repeat"))
            o->repeat = (int)parse_size(v, a);
        else if (!strcmp(a, "--threads"))
            o->nthreads = parse_int_list(v, o->threads, a);
        else if (!strcmp(a, "--batches"))
            o->nbatches = parse_int_list(v, o->batches, a);
        else if (!strcmp(a, "--durability"))
            o->ndurability = parse_durability_list(v, o->durability);
        else if (!strcmp(a, "--seed"))
            o->seed = parse_size(v, a);
        else if (!strcmp(a, "--io")) {
            if (!strcmp(v, "auto"))
                o->io = QUARRY_IO_AUTO;
            else if (!strcmp(v, "uring"))
                o->io = QUARRY_IO_URING;
            else if (!strcmp(v, "posix"))
                o->io = QUARRY_IO_POSIX;
            else
                usage();
        } else {
            usage();
        }
    }
    if (o->dim > QUARRY_MAX_DIM || o->repeat > 1000) usage();
}

static void *worker_main(void *arg) {
    worker *w = arg;
    quarry_batch *b = NULL;
    w->rc = quarry_batch_new(w->coll, &b);
    pthread_barrier_wait(w->start);
    for (size_t i = 0; w->rc == 0 && i < w->rows; i += w->batch) {
        for (size_t j = i; j < i + w->batch; j++) {
            quarry_row r = {0};
            r.id = w->ids + j * ID_STRIDE;
            r.id_len = w->id_lens[j];
            r.vector = w->vecs + j * w->dim;
            r.dim = w->dim;
            if ((w->rc = quarry_batch_upsert(b, &r))) break;
        }
        if (w->rc == 0) w->rc = quarry_batch_commit(b);
    }
    if (w->rc) snprintf(w->err, sizeof w->err, "%s (%s)", quarry_errmsg(), quarry_errstr(w->rc));
    quarry_batch_free(b);
    return NULL;
}

typedef struct run_result {
    double rows_per_s;
    uint64_t syncs, batches;
} run_result;

/* One timed run of one configuration in a fresh database at `path`. */
static run_result run_once(const options *o, const char *path, int durability, size_t batch,
                           int nthreads, size_t per_thread, const float *vecs, const char *ids,
                           const uint8_t *id_lens, const char **io_name) {
    quarry_options qo;
    quarry_options_init(&qo);
    qo.io = o->io;
    quarry_db *db;
    int rc = quarry_open(path, &qo, &db);
    if (rc) die_rc("quarry_open", rc);
    *io_name = quarry_io_backend_name(db);
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = o->dim;
    cfg.durability = (quarry_durability)durability;
    quarry_coll *coll;
    if ((rc = quarry_collection_create(db, "bench", &cfg, &coll))) die_rc("create", rc);

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    worker *ws = calloc((size_t)nthreads, sizeof *ws);
    if (!ws) die("out of memory", NULL);
    for (int t = 0; t < nthreads; t++) {
        worker *w = &ws[t];
        w->start = &start;
        w->coll = coll;
        w->vecs = vecs + (size_t)t * per_thread * o->dim;
        w->ids = ids + (size_t)t * per_thread * ID_STRIDE;
        w->id_lens = id_lens + (size_t)t * per_thread;
        w->dim = o->dim;
        w->rows = per_thread;
        w->batch = batch;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) die("pthread_create", NULL);
    }
    pthread_barrier_wait(&start);
    double t0 = now_s();
    for (int t = 0; t < nthreads; t++) pthread_join(ws[t].tid, NULL);
    double t1 = now_s();
    for (int t = 0; t < nthreads; t++)
        if (ws[t].rc) die("writer failed", ws[t].err);
    pthread_barrier_destroy(&start);
    free(ws);

    quarry_coll_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if ((rc = quarry_collection_stats(coll, &st))) die_rc("stats", rc);
    size_t rows = per_thread * (size_t)nthreads;
    if (st.rows != rows) die("row count after the run does not match", NULL);
    quarry_collection_close(coll);
    if ((rc = quarry_close(db))) die_rc("quarry_close", rc);
    rm_rf(path);
    return (run_result){(double)rows / (t1 - t0), st.syncs, st.batches};
}

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);

    /* Scratch directory. */
    const char *base = o.dir ? o.dir : getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    if (mkdir(base, 0755) != 0 && errno != EEXIST) die("cannot create --dir", base);
    char scratch[4096];
    snprintf(scratch, sizeof scratch, "%s/quarry-ingest-XXXXXX", base);
    if (!mkdtemp(scratch)) die("mkdtemp failed under", base);

    /* Data: enough rows for the largest configuration, generated once. */
    size_t max_rows = o.rows > o.rows_batch1 ? o.rows : o.rows_batch1;
    size_t nfloats = max_rows * o.dim;
    float *vecs = malloc(nfloats * sizeof *vecs);
    char *ids = malloc(max_rows * ID_STRIDE);
    uint8_t *id_lens = malloc(max_rows);
    if (!vecs || !ids || !id_lens) die("out of memory", NULL);
    uint64_t rng = o.seed;
    for (size_t i = 0; i < nfloats; i++)
        vecs[i] = (float)((double)(splitmix64(&rng) >> 11) * 0x1.0p-52 - 1.0);

    printf("# bench_ingest: dim=%u rows=%zu rows_batch1=%zu repeat=%d cpus=%ld\n", o.dim, o.rows,
           o.rows_batch1, o.repeat, sysconf(_SC_NPROCESSORS_ONLN));
    int printed_io = 0;
    double *rps = malloc((size_t)o.repeat * sizeof *rps);
    if (!rps) die("out of memory", NULL);
    int run_no = 0;
    for (int di = 0; di < o.ndurability; di++) {
        for (int bi = 0; bi < o.nbatches; bi++) {
            for (int ti = 0; ti < o.nthreads; ti++) {
                int durability = o.durability[di], nthreads = o.threads[ti];
                size_t batch = (size_t)o.batches[bi];
                size_t total = batch == 1 ? o.rows_batch1 : o.rows;
                size_t per_thread = total / (size_t)nthreads / batch * batch;
                if (per_thread == 0) {
                    fprintf(stderr, "bench_ingest: skip %s batch=%zu threads=%d: too few rows\n",
                            quarry_durability_name(durability), batch, nthreads);
                    continue;
                }
                /* ids "t<thread>-<row>" of this configuration (untimed) */
                for (int t = 0; t < nthreads; t++)
                    for (size_t i = 0; i < per_thread; i++) {
                        size_t k = (size_t)t * per_thread + i;
                        int n = snprintf(ids + k * ID_STRIDE, ID_STRIDE, "t%d-%zu", t, i);
                        id_lens[k] = (uint8_t)n;
                    }
                uint64_t syncs = 0, batches = 0;
                for (int r = 0; r < o.repeat; r++) {
                    char path[4200];
                    snprintf(path, sizeof path, "%s/run-%d", scratch, run_no++);
                    const char *io_name = "";
                    run_result rr = run_once(&o, path, durability, batch, nthreads, per_thread,
                                             vecs, ids, id_lens, &io_name);
                    if (!printed_io) {
                        printf("# io=%s\n", io_name);
                        printf("durability,batch,threads,rows,rows_per_s_median,rows_per_s_min,"
                               "rows_per_s_max,syncs_per_batch\n");
                        fflush(stdout);
                        printed_io = 1;
                    }
                    rps[r] = rr.rows_per_s;
                    syncs += rr.syncs;
                    batches += rr.batches;
                    fprintf(stderr, "  %s batch=%zu threads=%d repeat %d: %.0f rows/s\n",
                            quarry_durability_name(durability), batch, nthreads, r + 1,
                            rr.rows_per_s);
                }
                double med = median(rps, o.repeat); /* sorts rps */
                printf("%s,%zu,%d,%zu,%.0f,%.0f,%.0f,%.3f\n", quarry_durability_name(durability),
                       batch, nthreads, per_thread * (size_t)nthreads, med, rps[0],
                       rps[o.repeat - 1], batches ? (double)syncs / (double)batches : 0.0);
                fflush(stdout);
            }
        }
    }
    free(rps);
    free(vecs);
    free(ids);
    free(id_lens);
    rm_rf(scratch);
    return 0;
}
