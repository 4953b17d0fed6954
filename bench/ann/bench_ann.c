/* SPDX-License-Identifier: MIT */
/*
 * bench_ann.c -- approximate nearest-neighbour search through the public API:
 * build time, memory, and the recall / queries-per-second curve.
 *
 *   bench_ann --base FILE.fvecs --queries FILE.fvecs --gt FILE.ivecs
 *             [--name NAME] [--dir DIR] [--index hnsw|ivfpq|flat]
 *             [--metric l2|ip|cosine] [--k 10] [--nq N] [--batch 10000]
 *             [--m 16] [--ef-construction 200]
 *             [--ef-list 10,16,24,32,48,64,96,128,192,256]
 *             [--nlist 0] [--pq-m 0] [--nprobe-list 1,2,4,8,16,32,64,128]
 *             [--refine 0[,R...]] [--seed S | --seeds S1,S2,...]
 *             [--repeat 3] [--min-time 0.2] [--no-header]
 *
 * Inputs are TEXMEX .fvecs (base, queries) and .ivecs (ground truth: row i
 * holds the ids of query i's nearest base rows, nearest first, at least k of
 * them). Base row i is upserted with the id "<i>" (decimal), so a hit's id
 * parses back to its base row number.
 *
 * Build. A new database is opened in a fresh mkdtemp directory inside --dir
 * (default $TMPDIR, else /tmp), removed at the end, and one collection is
 * created with durability `none`, so that ingest is not bound by fdatasync.
 * The base rows are upserted in batches of --batch rows (quarry_batch_upsert +
 * quarry_batch_commit). build_s is the wall time from the first upsert to the
 * return of the last commit: everything the engine does to make the rows
 * searchable (log append, row store, index insertion) is inside it. The ids
 * are formatted before the clock starts. quarry_sync runs after the clock
 * stops; its time is reported on a comment line.
 *
 * IVF-PQ (--index ivfpq). The collection is created with ivf_train_rows =
 * UINT32_MAX, so that no background training starts during the import (the
 * rows are only stored, and searches would be exact). After the import,
 * quarry_collection_train(coll, 1) trains the index on every stored vector
 * (k-means for the --nlist coarse centroids and the --pq-m codebooks of 8-bit
 * codes, on the 2 threads the engine trains with), encodes all rows into the
 * lists and checkpoints the index; train_s is the wall time of that call, and
 * build_s = import + train_s. Comment lines report them apart:
 *   # train_s=T ingest_s=I cpu_s=C       (C: CPU seconds of the call, all threads)
 *   # ivf: nlist=L m=M rows=N code_bytes=B bytes_per_vector=B/N memory_bytes=...
 * (code_bytes is quarry_coll_stats.ivf_code_bytes: the lists' codes and ids,
 * allocated capacity included). The index column reads "ivfpq-nl<L>-m<M>"
 * with the trained nlist and m. --refine takes a comma-separated list of
 * re-ranking factors, each swept over every nprobe on the same trained index:
 * R > 1 re-ranks the best R*k PQ candidates of every query exactly with the
 * stored vectors (search param refine = R; index "ivfpq-nl<L>-m<M>+refine<R>"),
 * 0 or 1 turns re-ranking off by passing refine = 1 explicitly, so that the
 * collection's default (4) does not apply. After the sweep, "# searches:
 * total=S exact=E" shows that the timed queries went through the index (E
 * counts searches the engine answered by an exact scan), and "# search:
 * wall_s=W cpu_s=C" that they ran on one thread (C/W <= 1).
 *
 * K-means seeds (--seed S, --seeds S1,S2,...). The recall at small nprobe
 * depends on the coarse partition, that is on the k-means seed. --seeds
 * builds and sweeps one collection per seed, one after the other in this
 * process (each created with ivf_seed = S, imported, trained, swept, then
 * closed and dropped before the next), and its rows carry the seed at the end
 * of the index column: "ivfpq-nl<L>-m<M>[+refine<R>]@s<S>" (the CSV columns
 * stay the same; the header line is printed once). Each seed's comment lines
 * follow a line "# seed: S" (train_s, ivf, build, cpu_qps, searches and
 * search lines as above, per seed). --seed S is --seeds S. Without either
 * option ivf_seed is 0 (derived from the collection) and the index column has
 * no suffix. Seed 0 given explicitly means the same derived seed.
 *
 * Search. Every query runs alone (one quarry_search call, k hits) on the
 * calling thread, one after the other; nothing runs concurrently. After an
 * untimed warm-up of up to 100 queries, each sweep point (ef for hnsw and
 * flat, where flat ignores it; nprobe for ivfpq) is timed --repeat times; one
 * timing runs whole passes over all queries until at least --min-time seconds
 * have gone by (so that small query sets still give a measurable interval),
 * and its rate is queries run / time. qps is the median rate over the
 * repeats. After each CSV row, "# cpu_qps: index=I <param>=V qps_cpu=Q" gives
 * the same median computed with the process's CPU time (getrusage) in place
 * of wall time: on a shared machine, where the benchmark loses the CPU to
 * other processes now and then, it is the steadier figure (the search runs on
 * this one thread). The timed loop includes
 * what any client does per query: the call, reading the k hit ids (parsed
 * from decimal) and freeing the result.
 *
 * Recall@k counts, over all queries, the returned rows that are among the k
 * ground-truth rows, divided by nq * k. A returned row that is not listed but
 * whose exact distance to the query (recomputed in double precision with the
 * collection's metric) is within 1e-6 relative of the k-th ground-truth row's
 * is counted too: it is an equally good answer to a tie that was broken the
 * other way. bench/ann/peers.py applies the same rule to hnswlib and FAISS.
 *
 * Memory. peak_rss_mb is the process's peak resident set (VmHWM; getrusage's
 * ru_maxrss where /proc is missing, but that one inherits the parent's size
 * across fork + exec): the whole process, including this program's own copy
 * of the base and query vectors.
 * index_bytes is quarry_coll_stats.memory_bytes after the build (the
 * collection's heap: row store, ids and index). The growth of VmRSS across
 * the build is printed on a comment line as well.
 *
 * Output (stdout): '#' comment lines, a CSV header (unless --no-header), then
 * one line per sweep point:
 *   engine,dataset,index,param,value,recall,qps,build_s,peak_rss_mb,index_bytes
 * Progress goes to stderr. Exit status 0 on success, 1 on an engine error,
 * 2 on bad usage or input.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "bench_ann"
#include "bench/common/bench_util.h"
#include "quarry.h"

#define MAX_LIST  64
#define ID_STRIDE 12 /* "4294967295" + NUL fits */
#define NO_ROW    UINT32_MAX

typedef struct vecs {
    float *v; /* n rows of dim values (floats, or int32 bits for .ivecs) */
    size_t n, dim;
} vecs;

typedef struct options {
    const char *base, *queries, *gt, *name, *dir;
    quarry_index_kind index;
    quarry_metric metric;
    uint32_t k, m, ef_construction, nlist, pq_m;
    size_t nq, batch;
    int repeat, header;
    double min_time;
    uint32_t ef[MAX_LIST], nprobe[MAX_LIST], refine[MAX_LIST];
    int nef, nnprobe, nrefine;
    uint64_t seeds[MAX_LIST]; /* k-means seeds (ivf_seed), one collection each */
    int nseeds, seeded;       /* seeded: --seed/--seeds given (index names get "@s<S>") */
} options;

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* A "Vm...:" line of /proc/self/status in bytes ("VmRSS: %llu kB"), 0 if absent. */
static uint64_t proc_status_bytes(const char *fmt) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

static uint64_t rss_bytes(void) { return proc_status_bytes("VmRSS: %llu kB"); }

/* Peak resident set of this program in MiB. VmHWM first: ru_maxrss also
 * carries the parent's resident set at fork time across exec, so under a
 * large parent (a Python runner) it would report the parent's size. */
static double peak_rss_mb(void) {
    uint64_t hwm = proc_status_bytes("VmHWM: %llu kB");
    if (hwm) return (double)hwm / 1048576.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}


/* .fvecs (float records) or .ivecs (int32 records, kept as raw bits). */
static vecs read_vecs(const char *path) {
    vecs out = {0};
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path);
    int32_t d;
    if (fread(&d, 4, 1, f) != 1) die("empty file", path);
    if (d <= 0 || d > QUARRY_MAX_DIM) die("not a .fvecs/.ivecs file", path);
    if (fseek(f, 0, SEEK_END) != 0) die("cannot seek", path);
    long sz = ftell(f);
    if (sz < 0) die("cannot size", path);
    rewind(f);
    out.dim = (size_t)d;
    size_t rec = 4 * (out.dim + 1);
    if ((size_t)sz % rec) die("size is not a multiple of the record size", path);
    out.n = (size_t)sz / rec;
    out.v = malloc(out.n * out.dim * sizeof(float) + 1);
    if (!out.v) die("out of memory reading", path);
    for (size_t i = 0; i < out.n; i++) {
        int32_t di;
        if (fread(&di, 4, 1, f) != 1 || di != d) die("inconsistent record dimension in", path);
        if (fread(out.v + i * out.dim, sizeof(float), out.dim, f) != out.dim)
            die("short read on", path);
    }
    fclose(f);
    return out;
}

static int parse_u32_list(const char *s, uint32_t *out, const char *name, int zero_ok) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) die("out of memory", NULL);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long v = strtoul(t, &end, 10);
        if (*end || (v == 0 && !zero_ok) || v > UINT32_MAX || n == MAX_LIST)
            die("bad list for", name);
        out[n++] = (uint32_t)v;
    }
    free(copy);
    if (n == 0) die("empty list for", name);
    return n;
}

static int parse_u64_list(const char *s, uint64_t *out, const char *name) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) die("out of memory", NULL);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(t, &end, 10);
        if (*end || errno || *t == '-' || n == MAX_LIST) die("bad list for", name);
        out[n++] = (uint64_t)v;
    }
    free(copy);
    if (n == 0) die("empty list for", name);
    return n;
}

static unsigned long parse_num(const char *s, const char *name, int zero_ok) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || (!zero_ok && v == 0) || v > UINT32_MAX) die("bad number for", name);
    return v;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_ann --base FILE.fvecs --queries FILE.fvecs --gt FILE.ivecs\n"
                    "                 [--name NAME] [--dir DIR] [--index hnsw|ivfpq|flat]\n"
                    "                 [--metric l2|ip|cosine] [--k 10] [--nq N] [--batch 10000]\n"
                    "                 [--m 16] [--ef-construction 200] [--ef-list 10,16,...,256]\n"
                    "                 [--nlist 0] [--pq-m 0] [--nprobe-list 1,2,...,128]\n"
                    "                 [--refine 0[,R...]] [--seed S | --seeds S1,S2,...]\n"
                    "                 [--repeat 3] [--min-time 0.2] [--no-header]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){0};
    o->index = QUARRY_INDEX_HNSW;
    o->metric = QUARRY_METRIC_L2;
    o->k = 10;
    o->batch = 10000;
    o->m = 16;
    o->ef_construction = 200;
    o->repeat = 3;
    o->min_time = 0.2;
    o->header = 1;
    o->nef = parse_u32_list("10,16,24,32,48,64,96,128,192,256", o->ef, "--ef-list", 0);
    o->nnprobe = parse_u32_list("1,2,4,8,16,32,64,128", o->nprobe, "--nprobe-list", 0);
    o->nrefine = parse_u32_list("1", o->refine, "--refine", 1);
    o->nseeds = 1; /* seeds[0] = 0: the collection's derived seed */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
        if (!strcmp(a, "--no-header")) {
            o->header = 0;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--base")) {
            o->base = v;
        } else if (!strcmp(a, "--queries")) {
            o->queries = v;
        } else if (!strcmp(a, "--gt")) {
            o->gt = v;
        } else if (!strcmp(a, "--name")) {
            o->name = v;
        } else if (!strcmp(a, "--dir")) {
            o->dir = v;
        } else if (!strcmp(a, "--index")) {
            int x = quarry_index_parse(v);
            if (x < 0) die("unknown --index", v);
            o->index = (quarry_index_kind)x;
        } else if (!strcmp(a, "--metric")) {
            int x = quarry_metric_parse(v);
            if (x < 0) die("unknown --metric", v);
            o->metric = (quarry_metric)x;
        } else if (!strcmp(a, "--k")) {
            o->k = (uint32_t)parse_num(v, a, 0);
        } else if (!strcmp(a, "--nq")) {
            o->nq = parse_num(v, a, 0);
        } else if (!strcmp(a, "--batch")) {
            o->batch = parse_num(v, a, 0);
        } else if (!strcmp(a, "--m")) {
            o->m = (uint32_t)parse_num(v, a, 0);
        } else if (!strcmp(a, "--ef-construction")) {
            o->ef_construction = (uint32_t)parse_num(v, a, 0);
        } else if (!strcmp(a, "--ef-list")) {
            o->nef = parse_u32_list(v, o->ef, a, 0);
        } else if (!strcmp(a, "--nlist")) {
            o->nlist = (uint32_t)parse_num(v, a, 1);
        } else if (!strcmp(a, "--pq-m")) {
            o->pq_m = (uint32_t)parse_num(v, a, 1);
        } else if (!strcmp(a, "--refine")) {
            o->nrefine = parse_u32_list(v, o->refine, a, 1);
        } else if (!strcmp(a, "--seed") || !strcmp(a, "--seeds")) {
            o->nseeds = parse_u64_list(v, o->seeds, a);
            if (!strcmp(a, "--seed") && o->nseeds != 1) die("--seed takes one number", v);
            o->seeded = 1;
        } else if (!strcmp(a, "--nprobe-list")) {
            o->nnprobe = parse_u32_list(v, o->nprobe, a, 0);
        } else if (!strcmp(a, "--repeat")) {
            o->repeat = (int)parse_num(v, a, 0);
        } else if (!strcmp(a, "--min-time")) {
            char *end;
            o->min_time = strtod(v, &end);
            if (*end || !(o->min_time >= 0 && o->min_time <= 3600)) die("bad number for", a);
        } else {
            usage();
        }
    }
    if (!o->base || !o->queries || !o->gt) usage();
    if (o->k > QUARRY_MAX_K || o->batch > QUARRY_MAX_BATCH_ROWS || o->repeat > 1000 ||
        o->nrefine > MAX_LIST)
        usage();
    for (int i = 0; i < o->nrefine; i++) {
        if (o->refine[i] > QUARRY_MAX_IVF_REFINE) die("--refine above", "QUARRY_MAX_IVF_REFINE");
        if (o->refine[i] < 1) o->refine[i] = 1; /* 0 = off = 1 */
    }
}

/* Exact distance in double precision, smaller is closer (the API's convention). */
static double exact_dist(quarry_metric metric, const float *a, const float *b, size_t dim) {
    double s = 0, na = 0, nb = 0;
    for (size_t i = 0; i < dim; i++) {
        double x = a[i], y = b[i];
        if (metric == QUARRY_METRIC_L2) {
            s += (x - y) * (x - y);
        } else {
            s += x * y;
            na += x * x;
            nb += y * y;
        }
    }
    if (metric == QUARRY_METRIC_L2) return s;
    if (metric == QUARRY_METRIC_IP) return -s;
    return na > 0 && nb > 0 ? 1.0 - s / sqrt(na * nb) : 1.0;
}

/* Recall@k of hits[nq][k] against the ground truth, ties counted (see the header). */
static double recall_at_k(const options *o, const vecs *base, const vecs *qs, const vecs *gt,
                          size_t nq, const uint32_t *hits) {
    size_t found = 0, k = o->k;
    for (size_t i = 0; i < nq; i++) {
        const int32_t *g = (const int32_t *)(const void *)(gt->v + i * gt->dim);
        const float *q = qs->v + i * qs->dim;
        double kth = exact_dist(o->metric, q, base->v + (size_t)g[k - 1] * base->dim, base->dim);
        double limit = kth + 1e-6 * fabs(kth);
        for (size_t j = 0; j < k; j++) {
            uint32_t row = hits[i * k + j];
            if (row == NO_ROW) continue;
            int hit = 0;
            for (size_t m = 0; m < k && !hit; m++) hit = (uint32_t)g[m] == row;
            if (!hit)
                hit =
                    exact_dist(o->metric, q, base->v + (size_t)row * base->dim, base->dim) <= limit;
            found += (size_t)hit;
        }
    }
    return (double)found / (double)(nq * k);
}

/* One pass over the queries; hit row numbers go to hits[nq][k] (NO_ROW when fewer). */
static void search_pass(quarry_coll *coll, const vecs *qs, size_t nq, uint32_t k,
                        const quarry_search_params *sp, uint32_t *hits) {
    for (size_t i = 0; i < nq; i++) {
        quarry_result *res;
        int rc = quarry_search(coll, qs->v + i * qs->dim, (uint32_t)qs->dim, k, sp, &res);
        if (rc) die_rc("quarry_search", rc);
        size_t cnt = quarry_result_count(res);
        uint32_t *h = hits + i * k;
        for (size_t j = 0; j < k; j++) {
            const char *id = j < cnt ? quarry_result_id(res, j, NULL) : NULL;
            h[j] = id ? (uint32_t)strtoul(id, NULL, 10) : NO_ROW;
        }
        quarry_result_free(res);
    }
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* What every seed's build and sweep share. */
typedef struct run_ctx {
    const options *o;
    quarry_db *db;
    const char *scratch; /* the database directory, removed on a create error */
    const vecs *base, *qs, *gt;
    size_t nq;
    const char *ids;
    const uint8_t *id_lens;
    uint32_t *hits;
    double *rate, *rate_cpu;
    int header_done;
} run_ctx;

/* One collection: create (ivf_seed = seed), import, train (IVF-PQ), sweep,
 * then close and drop it. seed_ix indexes o->seeds. */
static void run_seed(run_ctx *x, int seed_ix) {
    const options *o = x->o;
    const vecs *base = x->base;
    size_t nq = x->nq;
    uint64_t seed = o->seeds[seed_ix];
    int ivf = o->index == QUARRY_INDEX_IVFPQ;
    int rc;
    char coll_name[64], suffix[32] = "";
    if (o->seeded) {
        snprintf(coll_name, sizeof coll_name, "ann-s%llu", (unsigned long long)seed);
        snprintf(suffix, sizeof suffix, "@s%llu", (unsigned long long)seed);
        printf("# seed: %llu collection=%s\n", (unsigned long long)seed, coll_name);
        fprintf(stderr, "bench_ann: %s: seed %llu (%d of %d)\n", o->name,
                (unsigned long long)seed, seed_ix + 1, o->nseeds);
    } else {
        snprintf(coll_name, sizeof coll_name, "ann");
    }

    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = (uint32_t)base->dim;
    cfg.metric = o->metric;
    cfg.index = o->index;
    cfg.durability = QUARRY_DURABILITY_NONE;
    cfg.hnsw_m = o->m;
    cfg.hnsw_ef_construction = o->ef_construction;
    cfg.ivf_nlist = o->nlist;
    cfg.pq_m = o->pq_m;
    cfg.ivf_seed = seed;
    if (ivf) cfg.ivf_train_rows = UINT32_MAX; /* no background training during the import */
    quarry_coll *coll;
    if ((rc = quarry_collection_create(x->db, coll_name, &cfg, &coll))) {
        rm_rf(x->scratch);
        die_rc("quarry_collection_create", rc);
    }

    /* Build: batched upserts, timed from the first upsert to the last commit. */
    fprintf(stderr, "bench_ann: %s: importing %zu rows (%s)\n", o->name, base->n,
            quarry_index_name(o->index));
    quarry_batch *b;
    if ((rc = quarry_batch_new(coll, &b))) die_rc("quarry_batch_new", rc);
    uint64_t rss0 = rss_bytes();
    double cpu0 = cpu_s(), t0 = now_s();
    for (size_t i = 0; i < base->n; i += o->batch) {
        size_t end = i + o->batch < base->n ? i + o->batch : base->n;
        for (size_t j = i; j < end; j++) {
            quarry_row r = {0};
            r.id = x->ids + j * ID_STRIDE;
            r.id_len = x->id_lens[j];
            r.vector = base->v + j * base->dim;
            r.dim = (uint32_t)base->dim;
            if ((rc = quarry_batch_upsert(b, &r))) die_rc("quarry_batch_upsert", rc);
        }
        if ((rc = quarry_batch_commit(b))) die_rc("quarry_batch_commit", rc);
    }
    double build_s = now_s() - t0, build_cpu = cpu_s() - cpu0;
    quarry_batch_free(b);
    /* IVF-PQ: train on everything now, on its own clock (see the header). */
    double ingest_s = build_s, train_s = 0, train_cpu = 0;
    if (ivf) {
        fprintf(stderr, "bench_ann: %s: training IVF-PQ (nlist %u, m %u)\n", o->name, o->nlist,
                o->pq_m);
        double c0 = cpu_s(), t1 = now_s();
        if ((rc = quarry_collection_train(coll, 1))) die_rc("quarry_collection_train", rc);
        train_s = now_s() - t1;
        train_cpu = cpu_s() - c0;
        build_s += train_s;
        build_cpu += train_cpu;
    }
    uint64_t rss1 = rss_bytes();
    double ts = now_s();
    if ((rc = quarry_sync(x->db))) die_rc("quarry_sync", rc);
    double sync_s = now_s() - ts;

    quarry_coll_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if ((rc = quarry_collection_stats(coll, &st))) die_rc("quarry_collection_stats", rc);
    if (st.rows != base->n) die("row count after the import does not match the base", NULL);
    if (ivf) {
        if (st.ivf_training || !st.ivf_nlist || st.ivf_rows != base->n)
            die("the IVF-PQ index is not trained over every row after quarry_collection_train",
                NULL);
        printf("# train_s=%.3f ingest_s=%.3f cpu_s=%.3f\n", train_s, ingest_s, train_cpu);
        printf("# ivf: nlist=%u m=%u rows=%llu code_bytes=%llu bytes_per_vector=%.2f "
               "memory_bytes=%llu index_bytes=%llu\n",
               st.ivf_nlist, st.pq_m, (unsigned long long)st.ivf_rows,
               (unsigned long long)st.ivf_code_bytes,
               (double)st.ivf_code_bytes / (double)st.ivf_rows, (unsigned long long)st.memory_bytes,
               (unsigned long long)st.index_bytes);
    }
    printf("# build: wall_s=%.3f cpu_s=%.3f sync_s=%.3f rss_delta_mb=%.1f memory_bytes=%llu "
           "disk_bytes=%llu\n",
           build_s, build_cpu, sync_s, (double)(rss1 > rss0 ? rss1 - rss0 : 0) / 1048576.0,
           (unsigned long long)st.memory_bytes, (unsigned long long)st.disk_bytes);
    fflush(stdout);

    /* Search sweep: every value of ef (hnsw, flat) or, for ivfpq, every
     * (refine, nprobe) pair, refine outermost. */
    const char *param = ivf ? "nprobe" : "ef";
    const uint32_t *values = ivf ? o->nprobe : o->ef;
    int nvalues = ivf ? o->nnprobe : o->nef;
    int nouter = ivf ? o->nrefine : 1;
    quarry_search_params sp;
    quarry_search_params_init(&sp);
    sp.ef = values[0];
    sp.nprobe = values[0];
    sp.refine = o->refine[0];
    search_pass(coll, x->qs, nq < 100 ? nq : 100, o->k, &sp, x->hits); /* warm-up, untimed */
    if (o->header && !x->header_done)
        printf("engine,dataset,index,param,value,recall,qps,build_s,peak_rss_mb,"
               "index_bytes\n");
    x->header_done = 1;
    double sweep_wall = 0, sweep_cpu = 0;
    for (int u = 0; u < nouter; u++) {
        char index_name[96];
        if (ivf)
            snprintf(index_name, sizeof index_name, "ivfpq-nl%u-m%u", st.ivf_nlist, st.pq_m);
        else
            snprintf(index_name, sizeof index_name, "%s", quarry_index_name(o->index));
        size_t len = strlen(index_name);
        if (ivf && o->refine[u] > 1)
            snprintf(index_name + len, sizeof index_name - len, "+refine%u", o->refine[u]);
        len = strlen(index_name);
        snprintf(index_name + len, sizeof index_name - len, "%s", suffix);
        for (int v = 0; v < nvalues; v++) {
            quarry_search_params_init(&sp);
            if (ivf) {
                sp.nprobe = values[v];
                sp.refine = o->refine[u]; /* 1 = off, never the collection's default */
            } else {
                sp.ef = values[v];
            }
            double w0 = now_s(), c0 = cpu_s();
            for (int r = 0; r < o->repeat; r++) {
                size_t done = 0;
                double p0 = now_s(), pc = cpu_s(), dt;
                do {
                    search_pass(coll, x->qs, nq, o->k, &sp, x->hits);
                    done += nq;
                    dt = now_s() - p0;
                } while (dt < o->min_time);
                double dc = cpu_s() - pc;
                x->rate[r] = (double)done / dt;
                x->rate_cpu[r] = dc > 0 ? (double)done / dc : 0;
            }
            sweep_wall += now_s() - w0;
            sweep_cpu += cpu_s() - c0;
            double qps = median(x->rate, o->repeat), qps_cpu = median(x->rate_cpu, o->repeat);
            double recall = recall_at_k(o, base, x->qs, x->gt, nq, x->hits);
            printf("quarry,%s,%s,%s,%u,%.4f,%.1f,%.3f,%.1f,%llu\n", o->name, index_name, param,
                   values[v], recall, qps, build_s, peak_rss_mb(),
                   (unsigned long long)st.memory_bytes);
            printf("# cpu_qps: index=%s %s=%u qps_cpu=%.1f\n", index_name, param, values[v],
                   qps_cpu);
            fflush(stdout);
            fprintf(stderr, "bench_ann: %s %s %s=%u recall=%.4f qps=%.0f\n", o->name,
                    index_name, param, values[v], recall, qps);
        }
    }

    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if ((rc = quarry_collection_stats(coll, &st))) die_rc("quarry_collection_stats", rc);
    printf("# searches: total=%llu exact=%llu\n", (unsigned long long)st.searches,
           (unsigned long long)st.searches_exact);
    printf("# search: wall_s=%.3f cpu_s=%.3f\n", sweep_wall, sweep_cpu);
    fflush(stdout);

    quarry_collection_close(coll);
    /* the next seed starts from an empty database (memory and disk) */
    if (o->nseeds > 1 && (rc = quarry_collection_drop(x->db, coll_name)))
        die_rc("quarry_collection_drop", rc);
}

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);

    vecs base = read_vecs(o.base);
    vecs qs = read_vecs(o.queries);
    vecs gt = read_vecs(o.gt);
    if (qs.dim != base.dim) die("query dimension differs from the base", o.queries);
    if (base.n == 0 || base.n > UINT32_MAX) die("unusable base row count", o.base);
    size_t nq = o.nq && o.nq < qs.n ? o.nq : qs.n;
    if (nq == 0) die("no queries", o.queries);
    if (gt.n < nq || gt.dim < o.k) die("fewer ground-truth rows or columns than needed", o.gt);
    for (size_t i = 0; i < nq * gt.dim; i++) {
        int32_t g;
        memcpy(&g, gt.v + i, 4);
        if (g < 0 || (size_t)g >= base.n) die("ground-truth id out of range", o.gt);
    }
    char name_buf[256];
    if (!o.name) {
        snprintf(name_buf, sizeof name_buf, "%s", base_name(o.base));
        char *dot = strstr(name_buf, ".fvecs");
        if (dot) *dot = '\0';
        size_t len = strlen(name_buf);
        if (len > 5 && !strcmp(name_buf + len - 5, "_base")) name_buf[len - 5] = '\0';
        o.name = name_buf;
    }

    /* Ids "<row>", formatted before any clock starts. */
    char *ids = malloc(base.n * ID_STRIDE);
    uint8_t *id_lens = malloc(base.n);
    uint32_t *hits = malloc(nq * o.k * sizeof *hits);
    double *rate = malloc((size_t)o.repeat * sizeof *rate);
    double *rate_cpu = malloc((size_t)o.repeat * sizeof *rate_cpu);
    if (!ids || !id_lens || !hits || !rate || !rate_cpu) die("out of memory", NULL);
    for (size_t i = 0; i < base.n; i++)
        id_lens[i] = (uint8_t)snprintf(ids + i * ID_STRIDE, ID_STRIDE, "%zu", i);

    /* Scratch directory and database. */
    const char *parent = o.dir ? o.dir : getenv("TMPDIR");
    if (!parent || !*parent) parent = "/tmp";
    if (mkdir(parent, 0755) != 0 && errno != EEXIST) die("cannot create --dir", parent);
    char scratch[4096];
    snprintf(scratch, sizeof scratch, "%s/quarry-ann-XXXXXX", parent);
    if (!mkdtemp(scratch)) die("mkdtemp failed under", parent);

    quarry_db *db;
    int rc = quarry_open(scratch, NULL, &db);
    if (rc) {
        rm_rf(scratch);
        die_rc("quarry_open", rc);
    }
    int ivf = o.index == QUARRY_INDEX_IVFPQ;

    printf("# bench_ann: quarry %s io=%s dataset=%s n=%zu dim=%zu nq=%zu k=%u index=%s "
           "metric=%s m=%u ef_construction=%u batch=%zu repeat=%d min_time=%.2f cpus=%ld "
           "QUARRY_SIMD=%s",
           quarry_version(), quarry_io_backend_name(db), o.name, base.n, base.dim, nq, o.k,
           quarry_index_name(o.index), quarry_metric_name(o.metric), o.m, o.ef_construction,
           o.batch, o.repeat, o.min_time, sysconf(_SC_NPROCESSORS_ONLN),
           getenv("QUARRY_SIMD") && *getenv("QUARRY_SIMD") ? getenv("QUARRY_SIMD") : "best");
    if (ivf) {
        printf(" nlist=%u pq_m=%u refine=", o.nlist, o.pq_m);
        for (int i = 0; i < o.nrefine; i++) printf("%s%u", i ? "," : "", o.refine[i]);
    }
    if (o.seeded) {
        printf(" seeds=");
        for (int i = 0; i < o.nseeds; i++)
            printf("%s%llu", i ? "," : "", (unsigned long long)o.seeds[i]);
    }
    printf("\n");
    fflush(stdout);

    run_ctx x = {&o, db, scratch, &base, &qs, &gt, nq, ids, id_lens, hits, rate, rate_cpu, 0};
    for (int s = 0; s < o.nseeds; s++) run_seed(&x, s);

    if ((rc = quarry_close(db))) die_rc("quarry_close", rc);
    rm_rf(scratch);
    free(ids);
    free(id_lens);
    free(hits);
    free(rate);
    free(rate_cpu);
    free(base.v);
    free(qs.v);
    free(gt.v);
    return 0;
}
