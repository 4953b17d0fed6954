/* SPDX-License-Identifier: MIT */
/*
 * quarry.c -- `quarry`, a command-line shell over a local Quarry database
 * directory, in the spirit of the sqlite3 shell.
 *
 *   quarry [GLOBAL OPTIONS] DB COMMAND [ARGS...]   run one command
 *   quarry [GLOBAL OPTIONS] DB                     read commands from stdin
 *   quarry --remote HOST:PORT COMMAND [ARGS...]    run it against quarryd
 *                                                  (remote.c)
 *
 * Design:
 *  - The engine is reached only through the public API in quarry.h; JSON is
 *    parsed and printed with jansson.
 *  - An invocation opens the database once, runs one command (or a stream of
 *    them in shell mode) and closes it; closing makes committed writes durable.
 *    Only `create` and shell mode create a missing database directory, so a
 *    mistyped path in a read command is reported instead of silently created.
 *  - Commands live in one table (name, handler, synopsis, options, examples);
 *    the table also drives --help. Each handler receives the words after the
 *    command name and returns the process exit status: 0 on success, 1 for a
 *    usage error (the message is followed by a usage hint), 2 for an engine,
 *    data or I/O error. Errors are printed as `quarry: <what>: <detail>`, where
 *    the detail is quarry_errmsg() for engine failures.
 *  - Results go to stdout; errors, progress bars and timings go to stderr, so
 *    stdout can be piped into other programs unchanged.
 *  - Floats are printed with 9 significant digits, which round-trips float32.
 *  - .fvecs files are read in the host byte order (little-endian on the
 *    machines this targets), as written by the usual ANN benchmark tools.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "quarry.h"
#ifdef QUARRY_WITH_RPC
#include "remote.h"
#endif


#define DEFAULT_BATCH_ROWS 1000u

typedef struct cli {
    const char *db_path;
    quarry_db *db;
    int read_only;
    int bail;            /* shell mode: stop at the first failing command */
    quarry_io_backend io;
    const char *remote;  /* --remote HOST:PORT: run the command against quarryd */
    const char *tls_ca;  /* --tls-ca FILE (remote) */
    char *api_key;       /* --api-key-file FILE or $QUARRY_API_KEY (remote) */
} cli;

typedef struct command command;
typedef int (*command_fn)(cli *c, const command *cmd, int argc, char **argv);

struct command {
    const char *name;
    command_fn fn;
    int creates_db;       /* open with create_if_missing */
    const char *synopsis; /* words after the command name */
    const char *summary;  /* one line */
    const char *options;  /* one line per option, already indented */
    const char *example;  /* one example command line (after "quarry DB ") */
};

/* An option a command accepts; parse_args() fills `value` ("" for a flag). */
typedef struct opt {
    const char *name;
    int takes_value;
    const char *value;
} opt;

static const command *find_command(const char *name);

/* ------------------------------------------------------------------------ */
/* Errors and small helpers                                                 */
/* ------------------------------------------------------------------------ */

/* The engine's detail text for a failure with code rc. */
static const char *engine_msg(int rc) {
    int code = quarry_errcode(); /* before quarry_errmsg(): each call may reset it */
    const char *msg = quarry_errmsg();
    if (msg && *msg && (code & 0xff) == (rc & 0xff)) return msg;
    return quarry_errstr(rc);
}

/* Prints `quarry: <what>: <engine message>` and returns EXIT_ENGINE. */
static int engine_error(int rc, const char *fmt, ...) {
    const char *msg = engine_msg(rc);
    va_list ap;
    fputs("quarry: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", msg);
    return EXIT_ENGINE;
}

/* Prints the error, the command's synopsis and a hint; returns EXIT_USAGE. */
static int usage_error(const command *cmd, const char *fmt, ...) {
    va_list ap;
    fputs("quarry: ", stderr);
    if (cmd) fprintf(stderr, "%s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd) {
        fprintf(stderr, "usage: quarry DB %s %s\n", cmd->name, cmd->synopsis);
        fprintf(stderr, "Try 'quarry DB %s --help' for more information.\n", cmd->name);
    } else {
        fputs("usage: quarry [GLOBAL OPTIONS] DB [COMMAND [ARGS...]]\n"
              "Try 'quarry --help' for more information.\n",
              stderr);
    }
    return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

static int is_help_word(const char *s) {
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}

/* ------------------------------------------------------------------------ */
/* Option parsing                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Matches `--name value`, `--name=value` and flags against `opts` (ended by a
 * NULL name) and moves the positional words to the front of argv; `--` ends
 * the options. Returns 0, or EXIT_USAGE after printing the error.
 */
static int parse_args(const command *cmd, int argc, char **argv, opt *opts, int *npos) {
    int only_positional = 0;
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_positional || strncmp(a, "--", 2) != 0) {
            argv[(*npos)++] = a;
            continue;
        }
        if (a[2] == '\0') {
            only_positional = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        opt *o = opts;
        while (o->name && !(strlen(o->name) == len && strncmp(o->name, a, len) == 0)) o++;
        if (!o->name) return usage_error(cmd, "unknown option '%.*s'", (int)len, a);
        if (!o->takes_value) {
            if (eq) return usage_error(cmd, "option %s takes no value", o->name);
            o->value = "";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            return usage_error(cmd, "option %s needs a value", o->name);
        }
    }
    return 0;
}

static const char *opt_value(const opt *opts, const char *name) {
    for (; opts->name; opts++)
        if (strcmp(opts->name, name) == 0) return opts->value;
    return NULL;
}

/* Parses an optional unsigned option into *out (left alone when absent). */
static int opt_u32(const command *cmd, const opt *opts, const char *name, uint32_t max,
                   uint32_t *out) {
    const char *v = opt_value(opts, name);
    uint64_t x;
    if (!v) return 0;
    if (parse_u64(v, max, &x) != 0)
        return usage_error(cmd, "%s wants a whole number from 0 to %" PRIu32 ", not '%s'", name,
                           max, v);
    *out = (uint32_t)x;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Database and collection access                                           */
/* ------------------------------------------------------------------------ */

static int open_db(cli *c, int create) {
    quarry_options opts;
    quarry_options_init(&opts);
    opts.create_if_missing = create && !c->read_only;
    opts.read_only = c->read_only;
    opts.io = c->io;
    int rc = quarry_open(c->db_path, &opts, &c->db);
    if (rc == QUARRY_OK) return 0;
    engine_error(rc, "open %s", c->db_path);
    if ((rc & 0xff) == QUARRY_NOTFOUND)
        fprintf(stderr, "(create a database with 'quarry %s create NAME --dim N')\n", c->db_path);
    return EXIT_ENGINE;
}

static int open_coll(cli *c, const char *name, quarry_coll **out) {
    int rc = quarry_collection_open(c->db, name, out);
    if (rc == QUARRY_OK) return 0;
    return engine_error(rc, "collection %s", name);
}

/* Opens a collection and reads its configuration. */
static int open_coll_cfg(cli *c, const char *name, quarry_coll **out,
                         quarry_collection_config *cfg) {
    int status = open_coll(c, name, out);
    if (status) return status;
    quarry_collection_config_init(cfg);
    int rc = quarry_collection_config_get(*out, cfg);
    if (rc == QUARRY_OK) return 0;
    status = engine_error(rc, "collection %s", name);
    quarry_collection_close(*out);
    *out = NULL;
    return status;
}

/* ------------------------------------------------------------------------ */
/* .fvecs files: records of (int32 dim, dim float32)                        */
/* ------------------------------------------------------------------------ */

typedef struct fvecs {
    FILE *f;
    const char *path;
    uint32_t dim;
    uint64_t count;
} fvecs;

static int fvecs_open(fvecs *fv, const char *path) {
    struct stat st;
    int32_t d = 0;
    memset(fv, 0, sizeof *fv);
    fv->path = path;
    fv->f = fopen(path, "rb");
    if (!fv->f) return fail("%s: %s", path, strerror(errno));
    if (fstat(fileno(fv->f), &st) != 0) return fail("%s: %s", path, strerror(errno));
    if (st.st_size == 0) return 0;
    if (fread(&d, sizeof d, 1, fv->f) != 1 || d <= 0 || d > QUARRY_MAX_DIM)
        return fail("%s: not an .fvecs file (the first record's dimension is %d)", path, (int)d);
    uint64_t rec = 4 + 4 * (uint64_t)d;
    if ((uint64_t)st.st_size % rec != 0)
        return fail("%s: size %lld is not a multiple of the record size %" PRIu64
                    " (dim %d); is the file truncated?",
                    path, (long long)st.st_size, rec, (int)d);
    fv->dim = (uint32_t)d;
    fv->count = (uint64_t)st.st_size / rec;
    rewind(fv->f);
    return 0;
}

/* Reads record `idx` (the next one) into v[dim]. Returns 0 or EXIT_ENGINE. */
static int fvecs_read(fvecs *fv, uint64_t idx, float *v) {
    int32_t d;
    if (fread(&d, sizeof d, 1, fv->f) != 1 || fread(v, sizeof *v, fv->dim, fv->f) != fv->dim)
        return fail("%s: record %" PRIu64 ": %s", fv->path, idx,
                    ferror(fv->f) ? strerror(errno) : "unexpected end of file");
    if ((uint32_t)d != fv->dim)
        return fail("%s: record %" PRIu64 " has dimension %d, the first has %" PRIu32, fv->path,
                    idx, (int)d, fv->dim);
    return 0;
}

static void fvecs_close(fvecs *fv) {
    if (fv->f) fclose(fv->f);
    fv->f = NULL;
}

/* ------------------------------------------------------------------------ */
/* create, list, stats, drop, sync                                          */
/* ------------------------------------------------------------------------ */

static int parse_enum(const command *cmd, const opt *opts, const char *name,
                      int (*parse)(const char *), const char *choices, int *out) {
    const char *v = opt_value(opts, name);
    if (!v) return 0;
    int x = parse(v);
    if (x < 0) return usage_error(cmd, "%s must be one of %s, not '%s'", name, choices, v);
    *out = x;
    return 0;
}

static int cmd_create(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--dim", 1, NULL},         {"--metric", 1, NULL},   {"--index", 1, NULL},
                  {"--durability", 1, NULL},  {"--interval-ms", 1, NULL}, {"--m", 1, NULL},
                  {"--ef-construction", 1, NULL}, {"--ef", 1, NULL},   {"--nlist", 1, NULL},
                  {"--pq-m", 1, NULL},        {"--nprobe", 1, NULL},   {"--language", 1, NULL},
                  {"--k1", 1, NULL},          {"--b", 1, NULL},        {"--refine", 1, NULL},
                  {"--train-rows", 1, NULL},  {NULL, 0, NULL}};
    quarry_collection_config cfg;
    int n, status, metric, index, durability;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 1) return usage_error(cmd, "expected one collection NAME");
    /* no --dim: a text-only collection (dim 0) */
    quarry_collection_config_init(&cfg);
    metric = (int)cfg.metric;
    index = (int)cfg.index;
    durability = (int)cfg.durability;
    if ((status = opt_u32(cmd, opts, "--dim", QUARRY_MAX_DIM, &cfg.dim)) ||
        (status = parse_enum(cmd, opts, "--metric", quarry_metric_parse, "l2, ip, cosine",
                             &metric)) ||
        (status = parse_enum(cmd, opts, "--index", quarry_index_parse, "flat, hnsw, ivfpq",
                             &index)) ||
        (status = parse_enum(cmd, opts, "--durability", quarry_durability_parse,
                             "sync, interval, none", &durability)) ||
        (status = opt_u32(cmd, opts, "--interval-ms", UINT32_MAX, &cfg.interval_ms)) ||
        (status = opt_u32(cmd, opts, "--m", UINT32_MAX, &cfg.hnsw_m)) ||
        (status = opt_u32(cmd, opts, "--ef-construction", UINT32_MAX,
                          &cfg.hnsw_ef_construction)) ||
        (status = opt_u32(cmd, opts, "--ef", UINT32_MAX, &cfg.hnsw_ef_search)) ||
        (status = opt_u32(cmd, opts, "--nlist", UINT32_MAX, &cfg.ivf_nlist)) ||
        (status = opt_u32(cmd, opts, "--pq-m", UINT32_MAX, &cfg.pq_m)) ||
        (status = opt_u32(cmd, opts, "--nprobe", UINT32_MAX, &cfg.ivf_nprobe)) ||
        (status = opt_u32(cmd, opts, "--refine", UINT32_MAX, &cfg.ivf_refine)) ||
        (status = opt_u32(cmd, opts, "--train-rows", UINT32_MAX, &cfg.ivf_train_rows)))
        return status;
    cfg.metric = (quarry_metric)metric;
    cfg.index = (quarry_index_kind)index;
    cfg.durability = (quarry_durability)durability;
    const char *lang = opt_value(opts, "--language"), *k1 = opt_value(opts, "--k1"),
               *b = opt_value(opts, "--b");
    if (lang) {
        if (strlen(lang) >= sizeof cfg.text_language)
            return usage_error(cmd, "--language name too long");
        snprintf(cfg.text_language, sizeof cfg.text_language, "%s", lang);
    }
    char *end;
    if (k1 && ((cfg.bm25_k1 = strtof(k1, &end)), *end || end == k1))
        return usage_error(cmd, "--k1 must be a number");
    if (b && ((cfg.bm25_b = strtof(b, &end)), *end || end == b))
        return usage_error(cmd, "--b must be a number");
    int rc = quarry_collection_create(c->db, argv[0], &cfg, NULL);
    if (rc != QUARRY_OK) return engine_error(rc, "create %s", argv[0]);
    return 0;
}

static int cmd_list(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--long", 0, NULL}, {NULL, 0, NULL}};
    char **names = NULL;
    size_t count = 0;
    int n, status = 0;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 0) return usage_error(cmd, "takes no arguments");
    int rc = quarry_collection_list(c->db, &names, &count);
    if (rc != QUARRY_OK) return engine_error(rc, "list");
    int longfmt = opt_value(opts, "--long") != NULL;
    if (longfmt && count) printf("%-24s %6s %-7s %-6s %12s\n", "NAME", "DIM", "METRIC", "INDEX",
                                 "ROWS");
    for (size_t i = 0; i < count && !status; i++) {
        quarry_coll *coll = NULL;
        quarry_collection_config cfg;
        quarry_coll_stats st = {.size = sizeof st};
        if (!longfmt) {
            puts(names[i]);
            continue;
        }
        if ((status = open_coll_cfg(c, names[i], &coll, &cfg))) break;
        rc = quarry_collection_stats(coll, &st);
        if (rc != QUARRY_OK)
            status = engine_error(rc, "stats %s", names[i]);
        else
            printf("%-24s %6" PRIu32 " %-7s %-6s %12" PRIu64 "\n", names[i], cfg.dim,
                   quarry_metric_name(cfg.metric), quarry_index_name(cfg.index), st.rows);
        quarry_collection_close(coll);
    }
    quarry_free(names);
    return status;
}

static void set_u64(json_t *o, const char *key, uint64_t v) {
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* Collects a collection's configuration and statistics, in display order. */
static int coll_stats_json(cli *c, const char *name, json_t **out) {
    quarry_coll *coll = NULL;
    quarry_collection_config cfg;
    quarry_coll_stats st;
    int status = open_coll_cfg(c, name, &coll, &cfg);
    if (status) return status;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = quarry_collection_stats(coll, &st);
    quarry_collection_close(coll);
    if (rc != QUARRY_OK) return engine_error(rc, "stats %s", name);

    json_t *o = json_object();
    json_object_set_new(o, "collection", json_string(name));
    set_u64(o, "dim", cfg.dim);
    json_object_set_new(o, "metric", json_string(quarry_metric_name(cfg.metric)));
    json_object_set_new(o, "index", json_string(quarry_index_name(cfg.index)));
    json_object_set_new(o, "durability", json_string(quarry_durability_name(cfg.durability)));
    if (cfg.durability == QUARRY_DURABILITY_INTERVAL) set_u64(o, "interval_ms", cfg.interval_ms);
    if (cfg.index == QUARRY_INDEX_HNSW) {
        set_u64(o, "hnsw_m", cfg.hnsw_m);
        set_u64(o, "hnsw_ef_construction", cfg.hnsw_ef_construction);
        set_u64(o, "hnsw_ef_search", cfg.hnsw_ef_search);
    } else if (cfg.index == QUARRY_INDEX_IVFPQ) {
        set_u64(o, "ivf_nlist", cfg.ivf_nlist);
        set_u64(o, "pq_m", cfg.pq_m);
        set_u64(o, "ivf_nprobe", cfg.ivf_nprobe);
        set_u64(o, "ivf_refine", cfg.ivf_refine);
        set_u64(o, "ivf_train_rows", cfg.ivf_train_rows);
        /* the trained index (0 = answering exactly until trained) */
        set_u64(o, "ivf_trained_nlist", st.ivf_nlist);
        set_u64(o, "ivf_trained_pq_m", st.pq_m);
        set_u64(o, "ivf_training", (uint64_t)st.ivf_training);
        set_u64(o, "ivf_rows", st.ivf_rows);
        set_u64(o, "ivf_code_bytes", st.ivf_code_bytes);
    }
    set_u64(o, "rows", st.rows);
    set_u64(o, "rows_with_vector", st.rows_with_vector);
    set_u64(o, "dead_rows", st.dead_rows);
    set_u64(o, "segments", st.segments);
    set_u64(o, "disk_bytes", st.disk_bytes);
    set_u64(o, "live_bytes_estimate", st.live_bytes_estimate);
    set_u64(o, "memory_bytes", st.memory_bytes);
    set_u64(o, "last_lsn", st.last_lsn);
    set_u64(o, "batches", st.batches);
    set_u64(o, "syncs", st.syncs);
    set_u64(o, "compactions", st.compactions);
    json_object_set_new(o, "io_backend", json_string(quarry_io_backend_name(c->db)));
    *out = o;
    return 0;
}

static void print_key_values(json_t *o) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (json_is_string(v))
            printf("%s: %s\n", key, json_string_value(v));
        else
            printf("%s: %" JSON_INTEGER_FORMAT "\n", key, json_integer_value(v));
    }
}

static int cmd_stats(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--json", 0, NULL}, {NULL, 0, NULL}};
    char **names = NULL;
    size_t count = 1;
    int n, status;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n > 1) return usage_error(cmd, "expected at most one collection NAME");
    if (n == 0) {
        int rc = quarry_collection_list(c->db, &names, &count);
        if (rc != QUARRY_OK) return engine_error(rc, "stats");
    }
    for (size_t i = 0; i < count && !status; i++) {
        json_t *o = NULL;
        if ((status = coll_stats_json(c, names ? names[i] : argv[0], &o))) break;
        if (opt_value(opts, "--json")) {
            status = print_json(o);
        } else {
            if (i > 0) putchar('\n');
            print_key_values(o);
        }
        json_decref(o);
    }
    quarry_free(names);
    return status;
}

static int cmd_drop(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{NULL, 0, NULL}};
    int n, status;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 1) return usage_error(cmd, "expected one collection NAME");
    int rc = quarry_collection_drop(c->db, argv[0]);
    if (rc != QUARRY_OK) return engine_error(rc, "drop %s", argv[0]);
    return 0;
}

static int cmd_sync(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{NULL, 0, NULL}};
    int n, status;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 0) return usage_error(cmd, "takes no arguments");
    int rc = quarry_sync(c->db);
    if (rc != QUARRY_OK) return engine_error(rc, "sync");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* import                                                                   */
/* ------------------------------------------------------------------------ */

/* A progress bar on stderr, drawn only when stderr is a terminal. */
typedef struct progress {
    int on;
    int rows_known;   /* `total` counts rows (fvecs) rather than bytes (jsonl) */
    uint64_t total;
    double start, drawn;
} progress;

static void progress_draw(progress *p, uint64_t rows, uint64_t done) {
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    double t = now_seconds();
    if (!p->on || t - p->drawn < 0.1) return;
    p->drawn = t;
    double frac = p->total ? (double)done / (double)p->total : 0.0;
    if (frac > 1.0) frac = 1.0;
    int fill = (int)(frac * WIDTH);
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(WIDTH - fill));
    bar[WIDTH] = '\0';
    double rate = t > p->start ? (double)rows / (t - p->start) : 0.0;
    fprintf(stderr, "\r[%s] %3d%%  %" PRIu64, bar, (int)(frac * 100.0), rows);
    if (p->rows_known) fprintf(stderr, "/%" PRIu64, p->total);
    fprintf(stderr, " rows  %.0f rows/s\033[K", rate);
    fflush(stderr);
}

static void progress_clear(progress *p) {
    if (p->on && p->drawn > 0) fputs("\r\033[K", stderr);
}

typedef struct importer {
    const char *coll_name;
    const char *path;
    quarry_batch *batch;
    uint32_t batch_rows;
    unsigned update;    /* --update: QUARRY_FIELD_* of a partial update; 0 = whole rows */
    uint64_t committed; /* rows in committed batches */
    progress prog;
} importer;

/* A row into the batch: a whole-row upsert, or the --update fields. */
static int import_add(importer *im, const quarry_row *row) {
    return im->update ? quarry_batch_update(im->batch, row, im->update)
                      : quarry_batch_upsert(im->batch, row);
}

/* Commits the pending batch. first_line/last_line name it in messages. */
static int import_commit(importer *im, const char *unit, uint64_t first, uint64_t last) {
    size_t pending = quarry_batch_count(im->batch);
    if (pending == 0) return 0;
    int rc = quarry_batch_commit(im->batch);
    if (rc == QUARRY_OK) {
        im->committed += pending;
        return 0;
    }
    progress_clear(&im->prog);
    engine_error(rc, "import %s: %s: committing %ss %" PRIu64 "-%" PRIu64, im->coll_name,
                 im->path, unit, first, last);
    fprintf(stderr, "(%" PRIu64 " rows in earlier batches were committed and stay)\n",
            im->committed);
    return EXIT_ENGINE;
}

/* Reports a bad input line; rows of earlier committed batches stay. */
static int import_bad_line(importer *im, uint64_t lineno, const char *msg) {
    progress_clear(&im->prog);
    fail("import %s: %s: line %" PRIu64 ": %s", im->coll_name, im->path, lineno, msg);
    if (im->committed == 0)
        fputs("(nothing was imported)\n", stderr);
    else
        fprintf(stderr,
                "(%" PRIu64 " rows in earlier batches were committed and stay; the %zu rows "
                "read since the last commit were not imported)\n",
                im->committed, quarry_batch_count(im->batch));
    return EXIT_ENGINE;
}

/* Turns one parsed jsonl object into a row and adds it to the batch. */
static int import_json_row(importer *im, uint64_t lineno, json_t *obj, cli_row *cr) {
    char err[128];
    if (cli_row_parse(cr, obj, err, sizeof err) != 0) return import_bad_line(im, lineno, err);
    quarry_row row = {.id = cr->id, .id_len = cr->id_len, .vector = cr->vector, .dim = cr->dim,
                      .text = cr->text, .text_len = cr->text_len, .metadata = cr->metadata};
    int rc = import_add(im, &row);
    if (rc != QUARRY_OK) return import_bad_line(im, lineno, engine_msg(rc));
    return 0;
}

static int import_jsonl(importer *im, FILE *f, uint64_t size) {
    char *line = NULL;
    size_t cap = 0;
    cli_row row = {0};
    ssize_t len;
    uint64_t lineno = 0, bytes = 0, batch_first = 1;
    int status = 0;
    im->prog.total = size;
    while (!status && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        bytes += (uint64_t)len;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)len, 0, &jerr);
        if (!obj) {
            status = import_bad_line(im, lineno, jerr.text);
            break;
        }
        status = import_json_row(im, lineno, obj, &row);
        json_decref(obj);
        if (!status && quarry_batch_count(im->batch) >= im->batch_rows) {
            status = import_commit(im, "line", batch_first, lineno);
            batch_first = lineno + 1;
        }
        progress_draw(&im->prog, im->committed + quarry_batch_count(im->batch), bytes);
    }
    if (!status && ferror(f)) status = fail("%s: %s", im->path, strerror(errno));
    if (!status) status = import_commit(im, "line", batch_first, lineno);
    free(line);
    cli_row_free(&row);
    return status;
}

static int import_fvecs(importer *im, const quarry_collection_config *cfg, uint64_t first_id) {
    fvecs fv;
    float *vec = NULL;
    int status = fvecs_open(&fv, im->path);
    if (!status && fv.count && fv.dim != cfg->dim)
        status = fail("import %s: %s has dimension %" PRIu32 ", the collection has %" PRIu32,
                      im->coll_name, im->path, fv.dim, cfg->dim);
    if (!status && fv.count && !(vec = malloc(fv.dim * sizeof *vec)))
        status = fail("out of memory");
    im->prog.total = fv.count;
    im->prog.rows_known = 1;
    uint64_t batch_first = 0;
    for (uint64_t i = 0; !status && i < fv.count; i++) {
        char id[24];
        quarry_row row = {.id = id, .vector = vec, .dim = fv.dim};
        if ((status = fvecs_read(&fv, i, vec))) break;
        snprintf(id, sizeof id, "%" PRIu64, first_id + i);
        int rc = import_add(im, &row);
        if (rc != QUARRY_OK) {
            progress_clear(&im->prog);
            status = engine_error(rc, "import %s: %s: record %" PRIu64, im->coll_name, im->path,
                                  i);
            fprintf(stderr, "(%" PRIu64 " rows in earlier batches were committed and stay)\n",
                    im->committed);
            break;
        }
        if (quarry_batch_count(im->batch) >= im->batch_rows) {
            status = import_commit(im, "record", batch_first, i);
            batch_first = i + 1;
        }
        progress_draw(&im->prog, im->committed + quarry_batch_count(im->batch), i + 1);
    }
    if (!status && fv.count) status = import_commit(im, "record", batch_first, fv.count - 1);
    fvecs_close(&fv);
    free(vec);
    return status;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmd_import(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--batch", 1, NULL},     {"--format", 1, NULL}, {"--id-offset", 1, NULL},
                  {"--quiet", 0, NULL},     {"--update", 1, NULL}, {NULL, 0, NULL}};
    quarry_coll *coll = NULL;
    quarry_collection_config cfg;
    importer im;
    uint64_t first_id = 0;
    int n, status, is_fvecs;
    memset(&im, 0, sizeof im);
    im.batch_rows = DEFAULT_BATCH_ROWS;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 2) return usage_error(cmd, "expected a collection NAME and a FILE");
    if ((status = opt_u32(cmd, opts, "--batch", QUARRY_MAX_BATCH_ROWS, &im.batch_rows)))
        return status;
    if (im.batch_rows == 0) return usage_error(cmd, "--batch must be at least 1");
    const char *upd = opt_value(opts, "--update");
    if (upd && !(im.update = cli_update_fields(upd)))
        return usage_error(cmd, "--update wants a comma list of text, metadata and vector, "
                                "not '%s'", upd);
    const char *idoff = opt_value(opts, "--id-offset");
    if (idoff && parse_u64(idoff, UINT64_MAX / 2, &first_id) != 0)
        return usage_error(cmd, "--id-offset wants a whole number, not '%s'", idoff);
    const char *format = opt_value(opts, "--format");
    if (!format) format = has_suffix(argv[1], ".fvecs") ? "fvecs" : "jsonl";
    if (strcmp(format, "fvecs") != 0 && strcmp(format, "jsonl") != 0)
        return usage_error(cmd, "--format must be jsonl or fvecs, not '%s'", format);
    is_fvecs = strcmp(format, "fvecs") == 0;
    if (is_fvecs && strcmp(argv[1], "-") == 0)
        return usage_error(cmd, ".fvecs input must be a file, not standard input");

    im.coll_name = argv[0];
    im.path = strcmp(argv[1], "-") == 0 ? "(stdin)" : argv[1];
    if ((status = open_coll_cfg(c, argv[0], &coll, &cfg))) return status;
    int rc = quarry_batch_new(coll, &im.batch);
    if (rc != QUARRY_OK) {
        quarry_collection_close(coll);
        return engine_error(rc, "import %s", argv[0]);
    }
    im.prog.on = isatty(STDERR_FILENO);
    im.prog.start = now_seconds();
    if (is_fvecs) {
        status = import_fvecs(&im, &cfg, first_id);
    } else {
        FILE *f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "r");
        struct stat st;
        if (!f) {
            status = fail("%s: %s", argv[1], strerror(errno));
        } else {
            uint64_t size = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)
                                ? (uint64_t)st.st_size : 0;
            status = import_jsonl(&im, f, size);
            if (f != stdin) fclose(f);
        }
    }
    double secs = now_seconds() - im.prog.start;
    progress_clear(&im.prog);
    quarry_batch_free(im.batch);
    quarry_collection_close(coll);
    if (!status && !opt_value(opts, "--quiet"))
        printf("%s %" PRIu64 " rows in %.2f s (%.0f rows/s)\n",
               im.update ? "updated" : "imported", im.committed, secs,
               secs > 0 ? (double)im.committed / secs : 0.0);
    return status;
}

/* ------------------------------------------------------------------------ */
/* get, delete                                                              */
/* ------------------------------------------------------------------------ */

static json_t *doc_to_json(const quarry_doc *d) {
    size_t len;
    uint32_t dim;
    json_t *o = json_object();
    const char *id = quarry_doc_id(d, &len);
    json_object_set_new(o, "id", json_stringn(id, len));
    const float *v = quarry_doc_vector(d, &dim);
    json_t *arr = v ? json_array() : json_null();
    for (uint32_t i = 0; v && i < dim; i++) json_array_append_new(arr, json_float(v[i]));
    json_object_set_new(o, "vector", arr);
    const char *text = quarry_doc_text(d, &len);
    json_object_set_new(o, "text", text ? json_stringn(text, len) : json_null());
    const char *meta = quarry_doc_metadata(d, &len);
    json_t *m = meta ? json_loadb(meta, len, 0, NULL) : json_null();
    if (!m) m = json_stringn(meta, len); /* not JSON after all: keep the bytes */
    json_object_set_new(o, "metadata", m);
    return o;
}

static void print_doc_text(json_t *o) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (json_is_null(v)) continue;
        if (json_is_string(v)) {
            printf("%s: %s\n", key, json_string_value(v));
        } else {
            char *s = json_dumps(v, JSON_OUT_FLAGS);
            printf("%s: %s\n", key, s ? s : "?");
            free(s);
        }
    }
}

static int cmd_get(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--format", 1, NULL}, {NULL, 0, NULL}};
    quarry_coll *coll = NULL;
    int n, status;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n < 2) return usage_error(cmd, "expected a collection NAME and at least one ID");
    const char *format = opt_value(opts, "--format");
    if (!format) format = "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "text") != 0)
        return usage_error(cmd, "--format must be json or text, not '%s'", format);
    if ((status = open_coll(c, argv[0], &coll))) return status;
    for (int i = 1; i < n; i++) {
        quarry_doc *d = NULL;
        int rc = quarry_get(coll, argv[i], 0, &d);
        if (rc != QUARRY_OK) {
            status = engine_error(rc, "get %s %s", argv[0], argv[i]);
            continue;
        }
        json_t *o = doc_to_json(d);
        if (strcmp(format, "json") == 0) {
            if (print_json(o)) status = EXIT_ENGINE;
        } else {
            if (i > 1) putchar('\n');
            print_doc_text(o);
        }
        json_decref(o);
        quarry_doc_free(d);
    }
    quarry_collection_close(coll);
    return status;
}

static int cmd_delete(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--quiet", 0, NULL}, {NULL, 0, NULL}};
    quarry_coll *coll = NULL;
    size_t deleted = 0;
    int n, status;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n < 2) return usage_error(cmd, "expected a collection NAME and at least one ID");
    if ((status = open_coll(c, argv[0], &coll))) return status;
    int rc = quarry_delete(coll, (const char *const *)(argv + 1), (size_t)(n - 1), &deleted);
    quarry_collection_close(coll);
    if (rc != QUARRY_OK) return engine_error(rc, "delete %s", argv[0]);
    if (!opt_value(opts, "--quiet")) printf("deleted %zu of %d ids\n", deleted, n - 1);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* search, compact                                                          */
/* ------------------------------------------------------------------------ */

static void print_hits(const quarry_result *r, size_t query, int ids_only) {
    size_t count = quarry_result_count(r), len;
    if (ids_only) {
        for (size_t i = 0; i < count; i++) {
            const char *id = quarry_result_id(r, i, &len);
            if (i) putchar(' ');
            fwrite(id, 1, len, stdout);
        }
        putchar('\n');
        return;
    }
    json_t *hits = json_array();
    for (size_t i = 0; i < count; i++) {
        const char *id = quarry_result_id(r, i, &len);
        json_t *h = json_object();
        json_object_set_new(h, "id", json_stringn(id, len));
        json_object_set_new(h, "distance", json_float(quarry_result_distance(r, i)));
        json_array_append_new(hits, h);
    }
    json_t *o = json_object();
    json_object_set_new(o, "query", json_integer((json_int_t)query));
    json_object_set_new(o, "hits", hits);
    print_json(o);
    json_decref(o);
}

/* Loads the query vectors of --vector or --queries into *q (nq x dim). */
static int load_queries(const command *cmd, const char *vector, const char *file,
                        uint64_t max, float **q, size_t *nq, uint32_t *dim) {
    if (vector) {
        json_error_t jerr;
        size_t cap = 0;
        json_t *arr = json_loads(vector, 0, &jerr);
        int bad = !arr || json_to_floats(arr, q, &cap, dim) != 0;
        json_decref(arr);
        if (bad)
            return usage_error(cmd, "--vector must be a JSON array of numbers%s%s",
                               arr ? "" : ": ", arr ? "" : jerr.text);
        *nq = 1;
        return 0;
    }
    fvecs fv;
    int status = fvecs_open(&fv, file);
    uint64_t count = fv.count < max ? fv.count : max;
    if (!status && count && !(*q = malloc(count * fv.dim * sizeof **q)))
        status = fail("out of memory for %" PRIu64 " queries", count);
    for (uint64_t i = 0; !status && i < count; i++)
        status = fvecs_read(&fv, i, *q + i * fv.dim);
    fvecs_close(&fv);
    *nq = (size_t)count;
    *dim = fv.dim;
    return status;
}

/* Text and hybrid queries: one quarry_query per text (and the --vector clause
 * when given). Prints JSON (with fused score, distance and, with --explain,
 * each retriever's rank and raw score) or "QUERY_ID<TAB>ids..." lines. */
static int run_text_queries(quarry_coll *coll, const char *name, const char *const *ids,
                            const char *const *texts, size_t n, const float *vec, uint32_t dim,
                            uint32_t k, const quarry_search_params *sp, const opt *opts,
                            int ids_only, double *seconds) {
    static const char *fusions[] = {"rrf", "relative", "dbsf"};
    const char *fs = opt_value(opts, "--fusion");
    int fusion = 0;
    if (fs) {
        for (fusion = 0; fusion < 3 && strcmp(fs, fusions[fusion]); fusion++) {}
        if (fusion == 3) return fail("--fusion must be rrf, relative or dbsf, not '%s'", fs);
    }
    int explain = opt_value(opts, "--explain") != NULL;
    for (size_t i = 0; i < n; i++) {
        quarry_query *q = NULL;
        quarry_result *r = NULL;
        int rc = quarry_query_new(coll, &q);
        if (!rc) rc = quarry_query_text(q, texts[i], 0, 0, opt_value(opts, "--all-terms") != NULL,
                                        0);
        if (!rc && vec) rc = quarry_query_vector(q, vec, dim, 0, sp->ef, 0);
        if (!rc && vec) rc = quarry_query_ivf(q, sp->nprobe, sp->refine);
        if (!rc) rc = quarry_query_limit(q, k, 0);
        if (!rc) rc = quarry_query_fusion(q, (quarry_fusion)fusion, 0);
        if (!rc) rc = quarry_query_exact(q, opt_value(opts, "--exact") != NULL);
        if (!rc && opt_value(opts, "--filter")) rc = quarry_query_filter(q, opt_value(opts, "--filter"));
        double t0 = now_seconds();
        if (!rc) rc = quarry_query_run(q, &r);
        *seconds += now_seconds() - t0;
        quarry_query_free(q);
        if (rc != QUARRY_OK) return engine_error(rc, "search %s (query %s)", name, ids[i]);
        size_t cnt = quarry_result_count(r), len;
        if (ids_only) {
            fputs(ids[i], stdout);
            for (size_t j = 0; j < cnt; j++) {
                const char *id = quarry_result_id(r, j, &len);
                putchar(j ? ' ' : '\t');
                fwrite(id, 1, len, stdout);
            }
            putchar('\n');
        } else {
            json_t *hits = json_array();
            for (size_t j = 0; j < cnt; j++) {
                const char *id = quarry_result_id(r, j, &len);
                json_t *h = json_object();
                json_object_set_new(h, "id", json_stringn(id, len));
                json_object_set_new(h, "score", json_real(quarry_result_score(r, j)));
                float d = quarry_result_distance(r, j);
                if (d == d) json_object_set_new(h, "distance", json_real(d));
                if (explain) {
                    static const char *names[] = {"vector", "text"};
                    json_t *ex = json_object();
                    for (int ret = 0; ret < 2; ret++) {
                        uint32_t rank;
                        float raw;
                        if (quarry_result_explain(r, j, ret, &rank, &raw) == 0)
                            json_object_set_new(ex, names[ret],
                                                json_pack("{s:i, s:f}", "rank", (int)rank,
                                                          "score", (double)raw));
                    }
                    json_object_set_new(h, "explain", ex);
                }
                json_array_append_new(hits, h);
            }
            json_t *o = json_pack("{s:s, s:o}", "query", ids[i], "hits", hits);
            print_json(o);
            json_decref(o);
        }
        quarry_result_free(r);
    }
    return 0;
}

/* Reads a queries.jsonl ({"_id" or "id", "text"} per line) into arrays. */
static int load_text_queries(const char *file, char ***ids, char ***texts, size_t *n) {
    FILE *f = fopen(file, "r");
    if (!f) return fail("cannot open %s: %s", file, strerror(errno));
    char *line = NULL;
    size_t cap = 0, cnt = 0, alloc = 0;
    ssize_t len;
    int status = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (len <= 1) continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
        json_t *id = o ? json_object_get(o, "_id") : NULL;
        if (!id && o) id = json_object_get(o, "id");
        json_t *t = o ? json_object_get(o, "text") : NULL;
        if (!json_is_string(t) || !(json_is_string(id) || json_is_integer(id))) {
            json_decref(o);
            status = fail("%s line %zu: expected {\"_id\", \"text\"}", file, cnt + 1);
            break;
        }
        if (cnt == alloc) {
            alloc = alloc ? 2 * alloc : 64;
            *ids = realloc(*ids, alloc * sizeof **ids);
            *texts = realloc(*texts, alloc * sizeof **texts);
        }
        char buf[32];
        if (json_is_integer(id)) snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        (*ids)[cnt] = strdup(json_is_string(id) ? json_string_value(id) : buf);
        (*texts)[cnt] = strdup(json_string_value(t));
        cnt++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    *n = cnt;
    return status;
}

static int cmd_search(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--vector", 1, NULL},  {"--queries", 1, NULL}, {"--k", 1, NULL},
                  {"--filter", 1, NULL},  {"--format", 1, NULL},  {"--stats", 0, NULL},
                  {"--exact", 0, NULL},   {"--ef", 1, NULL},      {"--nprobe", 1, NULL},
                  {"--refine", 1, NULL},  {"--limit", 1, NULL},   {"--text", 1, NULL},    {"--text-queries", 1, NULL},
                  {"--fusion", 1, NULL},  {"--explain", 0, NULL}, {"--all-terms", 0, NULL},
                  {NULL, 0, NULL}};
    quarry_search_params params;
    quarry_coll *coll = NULL;
    float *q = NULL;
    size_t nq = 0;
    uint32_t k = 10, dim = 0, limit = UINT32_MAX;
    int n, status;
    quarry_search_params_init(&params);
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 1) return usage_error(cmd, "expected one collection NAME");
    const char *vector = opt_value(opts, "--vector"), *file = opt_value(opts, "--queries");
    const char *text = opt_value(opts, "--text"), *tfile = opt_value(opts, "--text-queries");
    if (text && tfile) return usage_error(cmd, "give --text or --text-queries, not both");
    if ((text || tfile) && file)
        return usage_error(cmd, "--queries (vectors) cannot be combined with text queries");
    if (!text && !tfile && !vector == !file)
        return usage_error(cmd, "give --vector, --queries, --text or --text-queries");
    const char *format = opt_value(opts, "--format");
    if (!format) format = "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "ids") != 0)
        return usage_error(cmd, "--format must be json or ids, not '%s'", format);
    if ((status = opt_u32(cmd, opts, "--k", QUARRY_MAX_K, &k)) ||
        (status = opt_u32(cmd, opts, "--ef", UINT32_MAX, &params.ef)) ||
        (status = opt_u32(cmd, opts, "--nprobe", UINT32_MAX, &params.nprobe)) ||
        (status = opt_u32(cmd, opts, "--refine", UINT32_MAX, &params.refine)) ||
        (status = opt_u32(cmd, opts, "--limit", UINT32_MAX, &limit)))
        return status;
    if (k == 0) return usage_error(cmd, "--k must be at least 1");
    params.filter = opt_value(opts, "--filter");
    params.exact = opt_value(opts, "--exact") != NULL;

    if (text || tfile) {
        char **ids = NULL, **texts = NULL;
        size_t nt = 0;
        const char *one_id = "0";
        if (tfile && (status = load_text_queries(tfile, &ids, &texts, &nt))) return status;
        if (vector && (status = load_queries(cmd, vector, NULL, 1, &q, &nq, &dim))) return status;
        if (!(status = open_coll(c, argv[0], &coll))) {
            double secs = 0;
            status = run_text_queries(coll, argv[0], tfile ? (const char *const *)ids : &one_id,
                                      tfile ? (const char *const *)texts : &text,
                                      tfile ? nt : 1, q, dim, k, &params, opts,
                                      strcmp(format, "ids") == 0, &secs);
            size_t cnt = tfile ? nt : 1;
            if (!status && opt_value(opts, "--stats")) {
                fflush(stdout);
                fprintf(stderr, "queries=%zu seconds=%.6f qps=%.1f\n", cnt, secs,
                        secs > 0 ? (double)cnt / secs : 0.0);
            }
            quarry_collection_close(coll);
        }
        for (size_t i = 0; i < nt; i++) free(ids[i]), free(texts[i]);
        free(ids), free(texts), free(q);
        return status;
    }
    if ((status = load_queries(cmd, vector, file, limit, &q, &nq, &dim)) ||
        (status = open_coll(c, argv[0], &coll))) {
        free(q);
        return status;
    }
    int ids_only = strcmp(format, "ids") == 0;
    double searching = 0.0;
    for (size_t i = 0; i < nq; i++) {
        quarry_result *r = NULL;
        double t0 = now_seconds();
        int rc = quarry_search(coll, q + i * dim, dim, k, &params, &r);
        searching += now_seconds() - t0;
        if (rc != QUARRY_OK) {
            status = nq > 1 ? engine_error(rc, "search %s (query %zu)", argv[0], i)
                            : engine_error(rc, "search %s", argv[0]);
            break;
        }
        print_hits(r, i, ids_only);
        quarry_result_free(r);
    }
    if (!status && opt_value(opts, "--stats")) {
        fflush(stdout);
        fprintf(stderr, "queries=%zu seconds=%.6f qps=%.1f\n", nq, searching,
                searching > 0 ? (double)nq / searching : 0.0);
    }
    quarry_collection_close(coll);
    free(q);
    return status;
}

static int cmd_train(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{NULL, 0, NULL}};
    quarry_coll *coll = NULL;
    int n, status;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 1) return usage_error(cmd, "expected one collection NAME");
    if ((status = open_coll(c, argv[0], &coll))) return status;
    double t0 = now_seconds();
    int rc = quarry_collection_train(coll, 1);
    quarry_coll_stats st = {.size = sizeof st};
    if (rc == QUARRY_OK) rc = quarry_collection_stats(coll, &st);
    if (rc != QUARRY_OK)
        status = engine_error(rc, "train %s", argv[0]);
    else
        printf("trained %s: nlist %u, pq_m %u, %" PRIu64 " rows encoded in %.2f s\n", argv[0],
               st.ivf_nlist, st.pq_m, st.ivf_rows, now_seconds() - t0);
    quarry_collection_close(coll);
    return status;
}

static int cmd_compact(cli *c, const command *cmd, int argc, char **argv) {
    opt opts[] = {{"--force", 0, NULL}, {NULL, 0, NULL}};
    quarry_coll *coll = NULL;
    quarry_coll_stats before = {.size = sizeof before}, after = {.size = sizeof after};
    int n, status, rc;
    if ((status = parse_args(cmd, argc, argv, opts, &n))) return status;
    if (n != 1) return usage_error(cmd, "expected one collection NAME");
    if ((status = open_coll(c, argv[0], &coll))) return status;
    if ((rc = quarry_collection_stats(coll, &before)) != QUARRY_OK ||
        (rc = quarry_collection_compact(coll, opt_value(opts, "--force") != NULL)) != QUARRY_OK ||
        (rc = quarry_collection_stats(coll, &after)) != QUARRY_OK)
        status = engine_error(rc, "compact %s", argv[0]);
    else
        printf("compacted %s: segments %" PRIu64 " -> %" PRIu64 ", disk_bytes %" PRIu64
               " -> %" PRIu64 ", dead_rows %" PRIu64 " -> %" PRIu64 "\n",
               argv[0], before.segments, after.segments, before.disk_bytes, after.disk_bytes,
               before.dead_rows, after.dead_rows);
    quarry_collection_close(coll);
    return status;
}

/* ------------------------------------------------------------------------ */
/* The command table and help                                               */
/* ------------------------------------------------------------------------ */

static const command commands[] = {
    {"create", cmd_create, 1, "NAME --dim N [OPTIONS]", "create a collection",
     "  --language L          text analyzer: english (default), none, or a Snowball\n"
     "                        language (french, german, porter, ...)\n"
     "  --k1 X, --b X         BM25 parameters (default 1.2 and 0.75)\n"
     "  --dim N               vector dimension, 1..65536 (0: text-only collection)\n"
     "  --metric M            distance: l2 (default), ip or cosine\n"
     "  --index K             index kind: flat (default), hnsw or ivfpq\n"
     "  --durability D        sync (default: ack after fdatasync), interval or none\n"
     "  --interval-ms N       fdatasync period for --durability interval (default 100)\n"
     "  --m N                 HNSW links per node (default 16)\n"
     "  --ef-construction N   HNSW build beam width (default 200)\n"
     "  --ef N                HNSW search beam width (default 64)\n"
     "  --nlist N             IVF lists (default: 4*sqrt(rows) at training, <= rows/39)\n"
     "  --pq-m N              PQ code bytes per vector, 1..dim (default dim/4, <= 64)\n"
     "  --nprobe N            IVF lists probed per search (default 16)\n"
     "  --refine R            IVF: re-rank R*k candidates exactly (default 4; 1 = off)\n"
     "  --train-rows N        IVF: train once N rows have vectors (default\n"
     "                        max(10000, 39*nlist)); exact answers until then\n",
     "create docs --dim 384 --metric cosine --index hnsw"},
    {"list", cmd_list, 0, "[--long]", "list the collections, one name per line",
     "  --long                also show dim, metric, index and row count\n", "list --long"},
    {"stats", cmd_stats, 0, "[NAME] [--json]",
     "show configuration and statistics of one collection or of all",
     "  --json                one JSON object per collection instead of key: value lines\n",
     "stats docs"},
    {"drop", cmd_drop, 0, "NAME", "delete a collection and its files", "", "drop docs"},
    {"import", cmd_import, 0, "NAME FILE [OPTIONS]",
     "load rows from a .jsonl file (or - for stdin) or a .fvecs file",
     "  --batch N             rows per atomic batch (default 1000)\n"
     "  --format F            jsonl or fvecs (default: from the file name)\n"
     "  --id-offset N         id of the first .fvecs row (default 0)\n"
     "  --quiet               no summary line\n"
     "  --update FIELDS       partial update of existing rows instead of whole-row\n"
     "                        upserts: set only FIELDS (a comma list of text, metadata,\n"
     "                        vector; one named but absent from a line is cleared) and\n"
     "                        keep the rest; a missing id fails its batch (e.g.\n"
     "                        --update vector attaches vectors to stored chunks)\n"
     "                        jsonl rows: {\"id\" (or \"_id\"), \"vector\", \"text\", "
     "\"metadata\"}\n"
     "                        .fvecs rows get the ids \"0\", \"1\", ... in file order\n",
     "import docs corpus.jsonl --batch 5000"},
    {"get", cmd_get, 0, "NAME ID... [--format json|text]", "print rows by id",
     "  --format F            json (default: {\"id\",\"vector\",\"text\",\"metadata\"}) "
     "or text\n",
     "get docs doc-17"},
    {"delete", cmd_delete, 0, "NAME ID... [--quiet]", "delete rows by id (one atomic batch)",
     "  --quiet               no summary line\n", "delete docs doc-17 doc-18"},
    {"search", cmd_search, 0,
     "NAME (--vector JSON | --queries FILE.fvecs | --text TEXT | --text-queries FILE.jsonl) "
     "[OPTIONS]",
     "k-nearest-neighbour search",
     "  --vector JSON         one query vector, e.g. '[0.1, 0.2, 0.3]'\n"
     "  --queries FILE        query vectors from an .fvecs file, one result line each\n"
     "  --text TEXT           a BM25 text query (words, \"quoted phrases\"); with --vector\n"
     "                        too, a hybrid query fused by --fusion\n"
     "  --text-queries FILE   one text query per line of a .jsonl ({\"_id\", \"text\"}):\n"
     "                        --format ids prints QUERY_ID<TAB>ids...\n"
     "  --fusion F            rrf (default), relative or dbsf for hybrid queries\n"
     "  --explain             each hit's rank and raw score per retriever\n"
     "  --all-terms           every query term must match\n"
     "  --limit N             use only the first N vectors of --queries\n"
     "  --k N                 hits per query (default 10)\n"
     "  --filter JSON         metadata filter, e.g. '{\"lang\": \"en\"}'\n"
     "  --format F            json (default: {\"query\",\"hits\":[{\"id\",\"distance\"}]}) "
     "or ids\n"
     "  --stats               print queries=N seconds=T qps=Q on stderr (search time only)\n"
     "  --exact               exact (flat) search whatever the index\n"
     "  --ef N                HNSW search beam width for this search\n"
     "  --nprobe N            IVF lists probed for this search\n"
     "  --refine R            IVF re-ranking factor for this search (1 = off)\n",
     "search docs --queries queries.fvecs --k 10 --format ids --stats"},
    {"train", cmd_train, 0, "NAME",
     "(re)train an ivfpq collection's index now and wait for it",
     "  an ivfpq collection trains by itself in the background once it holds\n"
     "  --train-rows vectors; this retrains on demand (e.g. after the data drifted)\n",
     "train docs"},
    {"compact", cmd_compact, 0, "NAME [--force]", "rewrite segments keeping only live rows",
     "  --force               compact even when less than half of the bytes are dead\n",
     "compact docs --force"},
    {"sync", cmd_sync, 0, "", "fdatasync every collection now (for interval/none durability)",
     "", "sync"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* Prints a command's synopsis, summary and options; `indent` prefixes every line. */
static void print_command_help(const command *cmd, FILE *out, const char *indent,
                               const char *prefix) {
    fprintf(out, "%s%s%s%s%s\n%s    %s\n", indent, prefix, cmd->name, *cmd->synopsis ? " " : "",
            cmd->synopsis, indent, cmd->summary);
    for (const char *p = cmd->options; *p;) {
        size_t len = strcspn(p, "\n");
        fprintf(out, "%s  %.*s\n", indent, (int)len, p);
        p += len + (p[len] == '\n');
    }
}

static void print_help(FILE *out) {
    fputs("Quarry " QUARRY_VERSION_STRING " -- a shell over a Quarry vector database.\n"
          "\n"
          "usage: quarry [GLOBAL OPTIONS] DB COMMAND [ARGS...]\n"
          "       quarry [GLOBAL OPTIONS] DB          (read commands from standard input)\n"
          "\n"
          "DB is a database directory; 'create' and the stdin shell create it when missing.\n"
          "Without a COMMAND, each line of standard input is one command without the\n"
          "'quarry DB' prefix (quoting as in sh: '...', \"...\", \\); .help and .quit work\n"
          "there, and a terminal gets a 'quarry> ' prompt.\n"
          "\n"
          "Global options (before DB):\n"
          "  --read-only           open the database read-only\n"
          "  --io B                I/O back end: auto (default), uring or posix\n"
          "  --bail                stdin shell: stop at the first failing command\n"
#ifdef QUARRY_WITH_RPC
          "  --remote HOST:PORT    run COMMAND against a quarryd server instead of a\n"
          "                        local DB (no DB argument; same commands and output,\n"
          "                        except compact and sync; no stdin shell)\n"
          "  --api-key-file FILE   --remote: send the key on FILE's first line (default:\n"
          "                        $QUARRY_API_KEY) as 'authorization: Bearer <key>'\n"
          "  --tls-ca FILE         --remote: connect with TLS, trusting these PEM roots\n"
#endif
          "  --help, -h            this help; 'quarry DB COMMAND --help' for one command\n"
          "  --version, -V         print the version\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < NCOMMANDS; i++) print_command_help(&commands[i], out, "  ", "");
    fputs("\n"
          "Exit status: 0 on success, 1 for a usage error, 2 for an engine, data or I/O\n"
          "error (printed as 'quarry: <what>: <detail>').\n"
          "\n"
          "Examples:\n"
          "  quarry ./db create docs --dim 4 --metric cosine\n"
          "  quarry ./db import docs docs.jsonl\n"
          "  quarry ./db search docs --vector '[0.1, 0.2, 0.3, 0.4]' --k 3 "
          "--filter '{\"lang\": \"en\"}'\n"
#ifdef QUARRY_WITH_RPC
          "  quarry --remote 127.0.0.1:7070 list --long\n"
#endif
          ,
          out);
}

/* ------------------------------------------------------------------------ */
/* The stdin shell                                                          */
/* ------------------------------------------------------------------------ */

typedef struct words {
    char *buf;  /* every word, NUL-terminated, back to back */
    char **v;
    int n;
} words;

/*
 * Splits a line into words like sh does, without expansions: blanks separate
 * words, '...' is literal, "..." honours \" and \\, and \ quotes the next
 * character. Returns 0, or -1 for an unterminated quote or no memory.
 */
static int split_words(const char *s, words *w) {
    size_t len = strlen(s);
    const char *p = s;
    w->n = 0;
    w->buf = malloc(2 * len + 2);
    w->v = malloc((len + 1) * sizeof *w->v);
    if (!w->buf || !w->v) return -1;
    char *o = w->buf;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) return 0;
        w->v[w->n++] = o;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            if (*p == '\'') {
                for (p++; *p && *p != '\''; ) *o++ = *p++;
                if (!*p++) return -1;
            } else if (*p == '"') {
                for (p++; *p && *p != '"'; ) {
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                    *o++ = *p++;
                }
                if (!*p++) return -1;
            } else if (*p == '\\') {
                p++;
                if (*p && *p != '\n') *o++ = *p++;
            } else {
                *o++ = *p++;
            }
        }
        *o++ = '\0';
    }
}

static void free_words(words *w) {
    free(w->buf);
    free(w->v);
}

static void print_shell_help(void) {
    fputs("Commands (as after 'quarry DB' on the command line):\n", stdout);
    for (size_t i = 0; i < NCOMMANDS; i++)
        printf("  %s %s\n      %s\n", commands[i].name, commands[i].synopsis, commands[i].summary);
    fputs("  COMMAND --help  options of one command\n"
          "  .help           this text\n"
          "  .quit, .exit    leave the shell (so does end of input)\n",
          stdout);
}

/* Runs one line of shell input; returns its exit status, -1 to leave. */
static int shell_line(cli *c, const char *line, unsigned long lineno) {
    words w;
    int status = 0;
    if (split_words(line, &w) != 0) {
        fprintf(stderr, "quarry: line %lu: unterminated quote\n", lineno);
        free_words(&w);
        return EXIT_USAGE;
    }
    if (w.n == 0 || w.v[0][0] == '#') {
        /* blank line or comment */
    } else if (strcmp(w.v[0], ".quit") == 0 || strcmp(w.v[0], ".exit") == 0) {
        status = -1;
    } else if (strcmp(w.v[0], ".help") == 0 || is_help_word(w.v[0])) {
        print_shell_help();
    } else {
        const command *cmd = find_command(w.v[0]);
        if (!cmd) {
            fprintf(stderr, "quarry: line %lu: unknown command '%s' (try .help)\n", lineno,
                    w.v[0]);
            status = EXIT_USAGE;
        } else if (w.n > 1 && is_help_word(w.v[w.n - 1])) {
            print_command_help(cmd, stdout, "", "");
        } else {
            status = cmd->fn(c, cmd, w.n - 1, w.v + 1);
        }
    }
    free_words(&w);
    fflush(stdout);
    return status;
}

static int run_shell(cli *c) {
    int tty = isatty(STDIN_FILENO), status = 0;
    char *line = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    if (tty)
        printf("Quarry %s shell on %s. Type .help for help, .quit to leave.\n",
               quarry_version(), c->db_path);
    for (;;) {
        if (tty) {
            fputs("quarry> ", stdout);
            fflush(stdout);
        }
        if (getline(&line, &cap, stdin) < 0) {
            if (tty) putchar('\n');
            break;
        }
        int rc = shell_line(c, line, ++lineno);
        if (rc < 0) break;
        if (rc) {
            status = rc;
            if (c->bail) break;
        }
    }
    free(line);
    return tty ? 0 : status;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

/* Parses the options before DB. Returns -1 to go on, else an exit status. */
static int parse_global_options(cli *c, int argc, char **argv, int *next) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        if (is_help_word(a)) {
            print_help(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("quarry %s\n", quarry_version());
            return 0;
        } else if (strcmp(a, "--read-only") == 0) {
            c->read_only = 1;
        } else if (strcmp(a, "--bail") == 0) {
            c->bail = 1;
#ifdef QUARRY_WITH_RPC
        } else if (strcmp(a, "--remote") == 0 && i + 1 < argc) {
            c->remote = argv[++i];
        } else if (strcmp(a, "--tls-ca") == 0 && i + 1 < argc) {
            c->tls_ca = argv[++i];
        } else if (strcmp(a, "--api-key-file") == 0 && i + 1 < argc) {
            const char *path = argv[++i];
            FILE *f = fopen(path, "r");
            size_t cap = 0;
            ssize_t len = f ? getline(&c->api_key, &cap, f) : -1;
            if (f) fclose(f);
            while (len > 0 && (c->api_key[len - 1] == '\n' || c->api_key[len - 1] == '\r'))
                c->api_key[--len] = '\0';
            if (len <= 0) return usage_error(NULL, "--api-key-file %s: no key on its first line",
                                             path);
#endif
        } else if (strcmp(a, "--io") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "auto") == 0) c->io = QUARRY_IO_AUTO;
            else if (strcmp(v, "uring") == 0) c->io = QUARRY_IO_URING;
            else if (strcmp(v, "posix") == 0) c->io = QUARRY_IO_POSIX;
            else return usage_error(NULL, "--io must be auto, uring or posix, not '%s'", v);
        } else {
            return usage_error(NULL, "unknown global option '%s'", a);
        }
    }
    if (i >= argc && !c->remote) return usage_error(NULL, "missing the database directory DB");
    *next = i;
    return -1;
}

#ifdef QUARRY_WITH_RPC
/* --remote: `quarry --remote ADDR COMMAND [ARGS...]` (no DB). */
static int run_remote(cli *c, int argc, char **argv) {
    const command *cmd = argc > 0 ? find_command(argv[0]) : NULL;
    for (int j = 1; cmd && j < argc && strcmp(argv[j], "--") != 0; j++) {
        if (is_help_word(argv[j])) {
            print_command_help(cmd, stdout, "", "quarry --remote HOST:PORT ");
            return 0;
        }
    }
    const char *key = c->api_key;
    if (!key && getenv("QUARRY_API_KEY") && *getenv("QUARRY_API_KEY"))
        key = getenv("QUARRY_API_KEY");
    int status = remote_main(c->remote, key, c->tls_ca, argc, argv);
    free(c->api_key);
    return status;
}
#endif

int main(int argc, char **argv) {
    cli c = {0};
    const command *cmd = NULL;
    int i = 0, status = parse_global_options(&c, argc, argv, &i);
    if (status >= 0) return status;
#ifdef QUARRY_WITH_RPC
    if (c.remote) return run_remote(&c, argc - i, argv + i);
#endif
    c.db_path = argv[i++];
    if (i < argc) {
        if (!(cmd = find_command(argv[i])))
            return usage_error(NULL, "unknown command '%s'", argv[i]);
        for (int j = i + 1; j < argc && strcmp(argv[j], "--") != 0; j++) {
            if (is_help_word(argv[j])) {
                print_command_help(cmd, stdout, "", "quarry DB ");
                printf("\nExample:\n  quarry ./db %s\n", cmd->example);
                return 0;
            }
        }
    } else if (find_command(c.db_path) && access(c.db_path, F_OK) != 0) {
        return usage_error(NULL, "'%s' is a command; the database directory comes first",
                           c.db_path);
    }
    if ((status = open_db(&c, cmd ? cmd->creates_db : 1))) return status;
    status = cmd ? cmd->fn(&c, cmd, argc - i - 1, argv + i + 1) : run_shell(&c);
    int rc = quarry_close(c.db);
    if (rc != QUARRY_OK && !status) status = engine_error(rc, "close %s", c.db_path);
    if (fflush(stdout) != 0 || ferror(stdout)) status = fail("writing the output failed");
    return status;
}
