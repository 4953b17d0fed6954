/* SPDX-License-Identifier: MIT */
/*
 * bench_restart.c -- restart time: quarry_open of a database whose one
 * collection holds many rows (open + full recovery of the segment log), and
 * the bytes it takes on disk.
 *
 *   bench_restart [--dir DIR] [--rows 1000000] [--dim 128] [--batch 1000]
 *                 [--repeat 5] [--drop-caches] [--io auto|uring|posix]
 *                 [--keep] [--reuse] [--seed 42] [--meta]
 *                 [--index flat|hnsw] [--m 16] [--ef-construction 200] [--no-rebuild]
 *
 * Build. A collection "bench" (dim, l2, flat, durability `none`) is filled
 * with --rows random vectors (uniform in [-1, 1), fixed seed, ids "r<i>") in
 * batches of --batch rows, then quarry_sync makes it durable and the database
 * is closed. Only the upsert + commit calls are timed (reported for
 * information). With --reuse and an existing database in --dir, the build is
 * skipped. With --meta every row also gets metadata with four fields: a
 * keyword of 50 values, an integer price with ~100k distinct values, a
 * boolean and an array of two tags out of 200, e.g.
 *     {"cat":"c17","price":48213,"ok":true,"tags":["t3","t150"]}
 * so the open also rebuilds (or loads) the metadata index.
 *
 * Restart. quarry_open is timed --repeat times; each open reads every segment
 * file, checks every record's checksum, decodes the batches and applies them
 * to the in-memory row store (the timed call also writes the manifest and
 * starts the background flusher). After each open the collection's row count
 * is checked, then the database is closed (untimed).
 *   warm  the files are in the page cache (one untimed open first);
 *   cold  with --drop-caches, before each open the page cache is dropped
 *         (sync, then "3" into /proc/sys/vm/drop_caches; this needs root and
 *         is skipped with a warning otherwise).
 * For scale, a "read floor" is timed the same way: reading every file of the
 * database with read() in 4 MiB chunks and doing nothing else. open - floor
 * is roughly what decoding, checksums and applying cost. The process's CPU
 * time during each warm open is reported too: on a shared machine it moves
 * much less than the elapsed time.
 *
 * Without the checkpoint. For an HNSW collection (once: it takes minutes at
 * 1M rows) or with --meta (--repeat times), the open is also timed with the
 * index checkpoint hidden, so that every index is rebuilt from the log (the
 * open warns; the close writes a fresh checkpoint, hidden again before the
 * next run). --no-rebuild skips this.
 *
 * Size. disk_bytes is the sum of the sizes of the regular files under the
 * database directory; raw_bytes is rows * dim * 4; their ratio is the storage
 * overhead (record and op headers, ids, padding, manifest).
 *
 * Output (stdout): a small table with median, min and max over the repeats,
 * then a CSV header and one CSV line (cold columns are empty when not
 * measured). The database directory (by default a mkdtemp directory under
 * $TMPDIR or /tmp; with --dir, DIR itself, which must not exist or be empty)
 * is removed at the end unless --keep or --reuse is given.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "bench_restart"
#include "bench/common/bench_util.h"
#include "quarry.h"

typedef struct options {
    const char *dir;
    size_t rows, batch;
    uint32_t dim;
    int repeat, drop_caches, keep, reuse;
    quarry_io_backend io;
    uint64_t seed;
    int hnsw;                 /* --index hnsw */
    int no_rebuild;           /* --no-rebuild: skip the open without checkpoint */
    int meta;                 /* --meta: rows carry metadata */
    uint32_t m, ef_construction;
} options;

typedef struct stat3 {
    double med, min, max;
    int n;
} stat3;

static stat3 summarize(double *v, int n) {
    stat3 s = {0, 0, 0, n};
    if (n == 0) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    s.min = v[0];
    s.max = v[n - 1];
    return s;
}

/* ------------------------------------------------------------ files */


static uint64_t g_bytes, g_files;
static char *g_buf;
#define READ_CHUNK (4u << 20)

static int size_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)path, (void)ftw;
    if (flag == FTW_F && S_ISREG(st->st_mode)) g_bytes += (uint64_t)st->st_size, g_files++;
    return 0;
}

static int read_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode)) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open for the read floor", path);
    ssize_t n;
    while ((n = read(fd, g_buf, READ_CHUNK)) > 0) g_bytes += (uint64_t)n;
    if (n < 0) die("read for the read floor", path);
    close(fd);
    return 0;
}

/* Sum of the sizes of the regular files under dir. */
static uint64_t dir_bytes(const char *dir, uint64_t *files) {
    g_bytes = g_files = 0;
    if (nftw(dir, size_entry, 16, FTW_PHYS) != 0) die("cannot walk", dir);
    *files = g_files;
    return g_bytes;
}

/* Seconds to read every regular file under dir once. */
static double read_all(const char *dir) {
    g_bytes = 0;
    double t0 = now_s();
    if (nftw(dir, read_entry, 16, FTW_PHYS) != 0) die("cannot walk", dir);
    return now_s() - t0;
}

static int drop_caches(void) {
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok ? 0 : -1;
}

static int dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

/* ------------------------------------------------------------ database */

static quarry_db *open_db(const options *o, const char *dir) {
    quarry_options qo;
    quarry_options_init(&qo);
    qo.io = o->io;
    quarry_db *db;
    int rc = quarry_open(dir, &qo, &db);
    if (rc) die_rc("quarry_open", rc);
    return db;
}

/* Live rows of collection "bench" (and its dim into *dim when not NULL). */
static uint64_t coll_rows(quarry_db *db, uint32_t *dim) {
    quarry_coll *c;
    int rc = quarry_collection_open(db, "bench", &c);
    if (rc) die_rc("quarry_collection_open", rc);
    if (dim) {
        quarry_collection_config cfg;
        if ((rc = quarry_collection_config_get(c, &cfg))) die_rc("config_get", rc);
        *dim = cfg.dim;
    }
    quarry_coll_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if ((rc = quarry_collection_stats(c, &st))) die_rc("stats", rc);
    quarry_collection_close(c);
    return st.rows;
}

/* The --meta metadata of one row (see the header comment). */
static void make_meta(char *buf, size_t cap, uint64_t *rng) {
    uint64_t x = splitmix64(rng);
    snprintf(buf, cap, "{\"cat\":\"c%u\",\"price\":%u,\"ok\":%s,\"tags\":[\"t%u\",\"t%u\"]}",
             (unsigned)(x % 50), (unsigned)((x >> 8) % 100000), (x >> 40) & 1 ? "true" : "false",
             (unsigned)((x >> 41) % 200), (unsigned)((x >> 49) % 200));
}

/* Fill the collection; returns the seconds spent in upsert + commit. */
static double build(const options *o, const char *dir) {
    quarry_db *db = open_db(o, dir);
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = o->dim;
    cfg.durability = QUARRY_DURABILITY_NONE;
    if (o->hnsw) {
        cfg.index = QUARRY_INDEX_HNSW;
        cfg.hnsw_m = o->m;
        cfg.hnsw_ef_construction = o->ef_construction;
    }
    quarry_coll *c;
    int rc = quarry_collection_create(db, "bench", &cfg, &c);
    if (rc) die_rc("quarry_collection_create", rc);
    quarry_batch *b;
    if ((rc = quarry_batch_new(c, &b))) die_rc("quarry_batch_new", rc);
    float *vecs = malloc(o->batch * o->dim * sizeof *vecs);
    char(*ids)[32] = malloc(o->batch * sizeof *ids);
    char(*metas)[96] = malloc(o->batch * sizeof *metas);
    if (!vecs || !ids || !metas) die("out of memory", NULL);
    uint64_t rng = o->seed;
    double spent = 0;
    for (size_t i = 0; i < o->rows; i += o->batch) {
        size_t n = o->rows - i < o->batch ? o->rows - i : o->batch;
        for (size_t k = 0; k < n * o->dim; k++)
            vecs[k] = (float)((double)(splitmix64(&rng) >> 11) * 0x1.0p-52 - 1.0);
        for (size_t k = 0; k < n; k++) snprintf(ids[k], sizeof ids[k], "r%zu", i + k);
        for (size_t k = 0; o->meta && k < n; k++) make_meta(metas[k], sizeof metas[k], &rng);
        double t0 = now_s();
        for (size_t k = 0; k < n; k++) {
            quarry_row r = {0};
            r.id = ids[k];
            r.vector = vecs + k * o->dim;
            r.dim = o->dim;
            if (o->meta) {
                r.metadata = metas[k];
                r.metadata_len = strlen(metas[k]);
            }
            if ((rc = quarry_batch_upsert(b, &r))) die_rc("quarry_batch_upsert", rc);
        }
        if ((rc = quarry_batch_commit(b))) die_rc("quarry_batch_commit", rc);
        spent += now_s() - t0;
        if ((i / o->batch) % 100 == 99)
            fprintf(stderr, "  built %zu of %zu rows\n", i + n, o->rows);
    }
    free(vecs);
    free(ids);
    free(metas);
    quarry_batch_free(b);
    quarry_collection_close(c);
    double t0 = now_s();
    if ((rc = quarry_sync(db))) die_rc("quarry_sync", rc);
    spent += now_s() - t0;
    if ((rc = quarry_close(db))) die_rc("quarry_close", rc);
    return spent;
}

/* CPU seconds of the whole process (every thread): on a shared machine it
 * moves much less than the elapsed time when other jobs compete. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Time quarry_open `n` times into v[] (and its CPU time into cpu[]); cold =
 * drop the page cache first. */
static int time_opens(const options *o, const char *dir, uint64_t rows, int cold, double *v,
                      double *cpu, int n) {
    for (int i = 0; i < n; i++) {
        if (cold && drop_caches() != 0) return -1;
        double t0 = now_s(), c0 = cpu_s();
        quarry_db *db = open_db(o, dir);
        v[i] = now_s() - t0;
        cpu[i] = cpu_s() - c0;
        if (coll_rows(db, NULL) != rows) die("row count after reopening does not match", NULL);
        int rc = quarry_close(db);
        if (rc) die_rc("quarry_close", rc);
        fprintf(stderr, "  open %s %d: %.1f ms\n", cold ? "cold" : "warm", i + 1, v[i] * 1e3);
    }
    return 0;
}

/* Hide the collection's index checkpoint so that the next open rebuilds the
 * indexes from the log (the open warns and writes a new checkpoint at close).
 * Returns the number of files hidden (0: there was none, e.g. a collection
 * without indexed data, or a build that does not checkpoint it). */
static int hide_checkpoint(const char *dir) {
    char cdir[4200];
    snprintf(cdir, sizeof cdir, "%s/c-1", dir);
    DIR *d = opendir(cdir);
    if (!d) die("no collection directory in", dir);
    struct dirent *e;
    int hidden = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "ckpt-", 5) || l < 9 || strcmp(e->d_name + l - 4, ".idx")) continue;
        char from[4600], to[4700];
        snprintf(from, sizeof from, "%s/%s", cdir, e->d_name);
        snprintf(to, sizeof to, "%s.hidden", from);
        if (rename(from, to) == 0) hidden++;
    }
    closedir(d);
    return hidden;
}

static int time_reads(const char *dir, int cold, double *v, int n) {
    for (int i = 0; i < n; i++) {
        if (cold && drop_caches() != 0) return -1;
        v[i] = read_all(dir);
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_restart [--dir DIR] [--rows 1000000] [--dim 128] [--batch 1000]\n"
                    "                     [--repeat 5] [--drop-caches] [--io auto|uring|posix]\n"
                    "                     [--keep] [--reuse] [--seed 42] [--meta]\n"
                    "                     [--index flat|hnsw] [--m 16] [--ef-construction 200]\n"
                    "                     [--no-rebuild]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){0};
    o->rows = 1000000;
    o->batch = 1000;
    o->dim = 128;
    o->repeat = 5;
    o->io = QUARRY_IO_AUTO;
    o->seed = 42;
    o->m = 16;
    o->ef_construction = 200;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--drop-caches"))
            o->drop_caches = 1;
        else if (!strcmp(a, "--keep"))
            o->keep = 1;
        else if (!strcmp(a, "--reuse"))
            o->reuse = 1;
        else if (!strcmp(a, "--no-rebuild"))
            o->no_rebuild = 1;
        else if (!strcmp(a, "--meta"))
            o->meta = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help") || i + 1 >= argc)
            usage();
        else {
            const char *v = argv[++i];
            if (!strcmp(a, "--dir"))
                o->dir = v;
            else if (!strcmp(a, "--rows"))
                o->rows = parse_size(v, a);
            else if (!strcmp(a, "--dim"))
                o->dim = (uint32_t)parse_size(v, a);
            else if (!strcmp(a, "--batch"))
                o->batch = parse_size(v, a);
            else if (!strcmp(a, "--repeat"))
                o->repeat = (int)parse_size(v, a);
            else if (!strcmp(a, "--seed"))
                o->seed = parse_size(v, a);
            else if (!strcmp(a, "--m"))
                o->m = (uint32_t)parse_size(v, a);
            else if (!strcmp(a, "--ef-construction"))
                o->ef_construction = (uint32_t)parse_size(v, a);
            else if (!strcmp(a, "--index")) {
                if (strcmp(v, "flat") && strcmp(v, "hnsw")) usage();
                o->hnsw = !strcmp(v, "hnsw");
            }
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
    }
    if (o->dim > QUARRY_MAX_DIM || o->batch > QUARRY_MAX_BATCH_ROWS || o->repeat > 1000) usage();
}

static void print_row(const char *name, stat3 s, double scale) {
    if (s.n == 0) {
        printf("%-24s %12s %12s %12s\n", name, "-", "-", "-");
        return;
    }
    printf("%-24s %12.1f %12.1f %12.1f\n", name, s.med * scale, s.min * scale, s.max * scale);
}

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);

    char dir[4096];
    int built = 0;
    if (o.dir) {
        snprintf(dir, sizeof dir, "%s", o.dir);
        char manifest[4200];
        snprintf(manifest, sizeof manifest, "%s/MANIFEST", dir);
        int have_db = access(manifest, F_OK) == 0;
        if (have_db && !o.reuse) die("a database already exists here (use --reuse)", dir);
        if (!have_db && !dir_is_empty(dir)) die("--dir must not exist or be empty", dir);
        if (have_db) o.keep = 1; /* never delete a database we did not build */
        built = !have_db;
    } else {
        const char *base = getenv("TMPDIR");
        if (!base || !*base) base = "/tmp";
        snprintf(dir, sizeof dir, "%s/quarry-restart-XXXXXX", base);
        if (!mkdtemp(dir)) die("mkdtemp failed under", base);
        built = 1;
    }

    double build_s = 0;
    if (built) {
        fprintf(stderr, "bench_restart: building %zu rows of dim %u in %s\n", o.rows, o.dim, dir);
        build_s = build(&o, dir);
    }
    uint64_t rows;
    uint32_t dim;
    const char *io_name;
    {
        quarry_db *db = open_db(&o, dir); /* warms the page cache too */
        rows = coll_rows(db, &dim);
        io_name = quarry_io_backend_name(db);
        int rc = quarry_close(db);
        if (rc) die_rc("quarry_close", rc);
    }
    uint64_t nfiles = 0, disk = dir_bytes(dir, &nfiles);
    uint64_t raw = rows * dim * 4ull;

    g_buf = malloc(READ_CHUNK);
    double *v = malloc((size_t)o.repeat * sizeof *v), *cpu = malloc((size_t)o.repeat * sizeof *cpu);
    if (!g_buf || !v || !cpu) die("out of memory", NULL);
    stat3 open_warm, open_cold = {0}, read_warm, read_cold = {0}, open_cpu;
    time_opens(&o, dir, rows, 0, v, cpu, o.repeat);
    open_warm = summarize(v, o.repeat);
    open_cpu = summarize(cpu, o.repeat);
    time_reads(dir, 0, v, o.repeat);
    read_warm = summarize(v, o.repeat);
    if (o.drop_caches) {
        if (time_opens(&o, dir, rows, 1, v, cpu, o.repeat) == 0) {
            open_cold = summarize(v, o.repeat);
            time_reads(dir, 1, v, o.repeat);
            read_cold = summarize(v, o.repeat);
        } else {
            fprintf(stderr,
                    "bench_restart: warning: cannot drop the page cache (%s); "
                    "cold runs skipped\n",
                    strerror(errno));
        }
    }

    /* The same open without the checkpoint, i.e. rebuilding the indexes from
     * the log: HNSW once (it takes minutes at 1M rows), metadata --repeat
     * times (each close writes a new checkpoint, hidden before each open). */
    stat3 rebuild = {0}, rebuild_cpu = {0};
    if ((o.hnsw || o.meta) && !o.no_rebuild) {
        int n = o.hnsw ? 1 : o.repeat;
        for (int i = 0; i < n; i++) {
            if (!hide_checkpoint(dir))
                fprintf(stderr, "bench_restart: note: no checkpoint to hide in %s/c-1\n", dir);
            time_opens(&o, dir, rows, 0, v + i, cpu + i, 1);
        }
        rebuild = summarize(v, n);
        rebuild_cpu = summarize(cpu, n);
    }

    printf("# bench_restart: rows=%llu dim=%u io=%s repeat=%d files=%llu%s\n",
           (unsigned long long)rows, dim, io_name, o.repeat, (unsigned long long)nfiles,
           o.meta ? " meta=4 fields" : "");
    if (built)
        printf("# build (durability none, batches of %zu, then quarry_sync): %.0f rows/s\n",
               o.batch, (double)rows / build_s);
    printf("%-24s %12s %12s %12s\n", "", "median", "min", "max");
    print_row("open warm (ms)", open_warm, 1e3);
    print_row("open warm, CPU (ms)", open_cpu, 1e3);
    print_row("open cold (ms)", open_cold, 1e3);
    if (rebuild.n) {
        print_row("open, no checkpoint (ms)", rebuild, 1e3);
        print_row("  the same, CPU (ms)", rebuild_cpu, 1e3);
        printf("%-24s %12.3f\n", "checkpoint / rebuild", open_warm.med / rebuild.med);
    }
    print_row("read floor warm (ms)", read_warm, 1e3);
    print_row("read floor cold (ms)", read_cold, 1e3);
    printf("%-24s %12.0f\n", "replay warm (rows/s)", (double)rows / open_warm.med);
    if (open_cold.n) printf("%-24s %12.0f\n", "replay cold (rows/s)", (double)rows / open_cold.med);
    printf("%-24s %12llu\n", "disk bytes", (unsigned long long)disk);
    printf("%-24s %12llu\n", "raw vector bytes", (unsigned long long)raw);
    printf("%-24s %12.3f\n", "disk / raw", (double)disk / (double)raw);

    printf("rows,dim,disk_bytes,raw_bytes,disk_ratio,open_warm_ms_median,open_warm_ms_min,"
           "open_warm_ms_max,open_cold_ms_median,open_cold_ms_min,open_cold_ms_max,"
           "read_warm_ms_median,read_cold_ms_median\n");
    printf("%llu,%u,%llu,%llu,%.4f,%.1f,%.1f,%.1f,", (unsigned long long)rows, dim,
           (unsigned long long)disk, (unsigned long long)raw, (double)disk / (double)raw,
           open_warm.med * 1e3, open_warm.min * 1e3, open_warm.max * 1e3);
    if (open_cold.n)
        printf("%.1f,%.1f,%.1f,", open_cold.med * 1e3, open_cold.min * 1e3, open_cold.max * 1e3);
    else
        printf(",,,");
    printf("%.1f,", read_warm.med * 1e3);
    if (read_cold.n) printf("%.1f", read_cold.med * 1e3);
    printf("\n");

    free(v);
    free(cpu);
    free(g_buf);
    if (!o.keep)
        rm_rf(dir);
    else
        fprintf(stderr, "bench_restart: database kept in %s\n", dir);
    return 0;
}
