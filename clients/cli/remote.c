/* SPDX-License-Identifier: MIT */
/*
 * remote.c -- `quarry --remote HOST:PORT COMMAND ...`: the shell's commands
 * run against a quarryd server instead of a local database directory.
 *
 *   quarry --remote 127.0.0.1:7070 list --long
 *   quarry --remote 127.0.0.1:7070 search docs --vector '[0.1, 0.2]' --k 5
 *
 * The commands, their options and their output are those of local mode
 * (create, list, stats, drop, import, get, delete, search, train), so scripts work
 * against either; compact and sync have no RPC and are refused. Each
 * invocation runs one command over one connection (no stdin shell). Import
 * sends one Upsert per --batch rows, so it is atomic per batch exactly like
 * local import. Failures print `quarry: <what>: <STATUS>: <server message>`
 * and exit 2 (1 for usage errors), as in local mode.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "quarry.h"
#include "quarry.pb-c.h"
#include "cli_common.h"
#include "remote.h"
#include "rpc/client.h"

#define Q(m) "/quarry.v1.Quarry/" m

typedef struct ropt {
    const char *name;
    int takes_value;
    const char *value;
} ropt;

static int usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "quarry: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'quarry DB %s --help' (the options are the same with --remote).\n",
            cmd);
    return EXIT_USAGE;
}

/* A call; on failure prints `quarry: what: STATUS: message` and returns EXIT_ENGINE. */
static int call(qrpc_client *cl, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp, const char *what) {
    char *msg = NULL;
    int st = qrpc_call(cl, method, req, rd, resp, &msg);
    if (st != 0) {
        fail("%s: %s: %s", what, qrpc_status_name(st), msg && *msg ? msg : "(no message)");
        free(msg);
        return EXIT_ENGINE;
    }
    free(msg);
    return 0;
}

/* Like the local parser: --name value, --name=value, flags; positionals first. */
static int parse(const char *cmd, int argc, char **argv, ropt *opts, int *npos) {
    *npos = 0;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || strncmp(a, "--", 2) != 0) {
            argv[(*npos)++] = a;
            continue;
        }
        if (!a[2]) {
            only_pos = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        ropt *o = opts;
        while (o->name && !(strlen(o->name) == len && strncmp(o->name, a, len) == 0)) o++;
        if (!o->name) return usage(cmd, "unknown option '%.*s'", (int)len, a);
        if (!o->takes_value) o->value = "";
        else if (eq) o->value = eq + 1;
        else if (i + 1 < argc) o->value = argv[++i];
        else return usage(cmd, "option %s needs a value", o->name);
    }
    return 0;
}

static const char *val(const ropt *o, const char *name) {
    for (; o->name; o++)
        if (strcmp(o->name, name) == 0) return o->value;
    return NULL;
}

static int u32(const char *cmd, const ropt *o, const char *name, uint32_t max, uint32_t *out) {
    const char *v = val(o, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*v < '0' || *v > '9' || errno || *end || x > max)
        return usage(cmd, "%s wants a whole number from 0 to %" PRIu32 ", not '%s'", name, max,
                     v);
    *out = (uint32_t)x;
    return 0;
}


/* ------------------------------------------------------------------ collections */

static const struct {
    const char *name;
    int value;
} METRICS[] = {{"l2", QUARRY__V1__METRIC__METRIC_L2},
               {"ip", QUARRY__V1__METRIC__METRIC_IP},
               {"cosine", QUARRY__V1__METRIC__METRIC_COSINE}},
  INDEXES[] = {{"flat", QUARRY__V1__INDEX_KIND__INDEX_FLAT},
               {"hnsw", QUARRY__V1__INDEX_KIND__INDEX_HNSW},
               {"ivfpq", QUARRY__V1__INDEX_KIND__INDEX_IVFPQ}},
  DURABILITIES[] = {{"sync", QUARRY__V1__DURABILITY__DURABILITY_SYNC},
                    {"interval", QUARRY__V1__DURABILITY__DURABILITY_INTERVAL},
                    {"none", QUARRY__V1__DURABILITY__DURABILITY_NONE}};

#define ENUM_IN(table, s, out)                                                         \
    do {                                                                               \
        *(out) = -1;                                                                   \
        for (size_t i_ = 0; i_ < 3; i_++)                                              \
            if (strcmp((table)[i_].name, (s)) == 0) *(out) = (table)[i_].value;        \
    } while (0)

static const char *enum_name(int which, int v) {
    const char *names[3][4] = {{"l2", "l2", "ip", "cosine"},
                               {"flat", "flat", "hnsw", "ivfpq"},
                               {"sync", "sync", "interval", "none"}};
    return v >= 0 && v < 4 ? names[which][v] : "?";
}

static int r_create(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{"--dim", 1, NULL},   {"--metric", 1, NULL},          {"--index", 1, NULL},
                {"--durability", 1, NULL}, {"--interval-ms", 1, NULL}, {"--m", 1, NULL},
                {"--ef-construction", 1, NULL}, {"--ef", 1, NULL},    {"--nlist", 1, NULL},
                {"--pq-m", 1, NULL},  {"--nprobe", 1, NULL},          {"--refine", 1, NULL},
                {"--train-rows", 1, NULL}, {NULL, 0, NULL}};
    int n, st;
    if ((st = parse("create", argc, argv, o, &n))) return st;
    if (n != 1) return usage("create", "expected one collection NAME");
    /* no --dim: a text-only collection (dim 0), as in local mode */
    Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
    int e;
    if (val(o, "--metric")) {
        ENUM_IN(METRICS, val(o, "--metric"), &e);
        if (e < 0) return usage("create", "--metric must be one of l2, ip, cosine");
        cfg.metric = (Quarry__V1__Metric)e;
    }
    if (val(o, "--index")) {
        ENUM_IN(INDEXES, val(o, "--index"), &e);
        if (e < 0) return usage("create", "--index must be one of flat, hnsw, ivfpq");
        cfg.index = (Quarry__V1__IndexKind)e;
    }
    if (val(o, "--durability")) {
        ENUM_IN(DURABILITIES, val(o, "--durability"), &e);
        if (e < 0) return usage("create", "--durability must be one of sync, interval, none");
        cfg.durability = (Quarry__V1__Durability)e;
    }
    if ((st = u32("create", o, "--dim", QUARRY_MAX_DIM, &cfg.dim)) ||
        (st = u32("create", o, "--interval-ms", UINT32_MAX, &cfg.interval_ms)) ||
        (st = u32("create", o, "--m", UINT32_MAX, &cfg.hnsw_m)) ||
        (st = u32("create", o, "--ef-construction", UINT32_MAX, &cfg.hnsw_ef_construction)) ||
        (st = u32("create", o, "--ef", UINT32_MAX, &cfg.hnsw_ef_search)) ||
        (st = u32("create", o, "--nlist", UINT32_MAX, &cfg.ivf_nlist)) ||
        (st = u32("create", o, "--pq-m", UINT32_MAX, &cfg.pq_m)) ||
        (st = u32("create", o, "--nprobe", UINT32_MAX, &cfg.ivf_nprobe)) ||
        (st = u32("create", o, "--refine", UINT32_MAX, &cfg.ivf_refine)) ||
        (st = u32("create", o, "--train-rows", UINT32_MAX, &cfg.ivf_train_rows)))
        return st;
    Quarry__V1__CreateCollectionRequest rq = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
    rq.name = argv[0];
    rq.config = &cfg;
    ProtobufCMessage *r = NULL;
    char what[128];
    snprintf(what, sizeof what, "create %s", argv[0]);
    if ((st = call(cl, Q("CreateCollection"), &rq.base, &quarry__v1__collection_info__descriptor,
                   &r, what)))
        return st;
    protobuf_c_message_free_unpacked(r, NULL);
    return 0;
}

static int list_infos(qrpc_client *cl, const char *only, Quarry__V1__StatsResponse **out) {
    Quarry__V1__StatsRequest rq = QUARRY__V1__STATS_REQUEST__INIT;
    rq.collection = only ? (char *)only : "";
    char what[128];
    snprintf(what, sizeof what, "stats%s%s", only ? " " : "", only ? only : "");
    ProtobufCMessage *m = NULL;
    int st = call(cl, Q("Stats"), &rq.base, &quarry__v1__stats_response__descriptor, &m, what);
    *out = (Quarry__V1__StatsResponse *)m;
    return st;
}

static int r_list(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{"--long", 0, NULL}, {NULL, 0, NULL}};
    int n, st;
    if ((st = parse("list", argc, argv, o, &n))) return st;
    if (n != 0) return usage("list", "takes no arguments");
    Quarry__V1__StatsResponse *r;
    if ((st = list_infos(cl, NULL, &r))) return st;
    int longfmt = val(o, "--long") != NULL;
    if (longfmt && r->n_collections)
        printf("%-24s %6s %-7s %-6s %12s\n", "NAME", "DIM", "METRIC", "INDEX", "ROWS");
    for (size_t i = 0; i < r->n_collections; i++) {
        const Quarry__V1__CollectionInfo *c = r->collections[i];
        if (!longfmt) puts(c->name);
        else
            printf("%-24s %6" PRIu32 " %-7s %-6s %12" PRIu64 "\n", c->name, c->config->dim,
                   enum_name(0, c->config->metric), enum_name(1, c->config->index),
                   c->stats->rows);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

static void set_u64(json_t *o, const char *k, uint64_t v) {
    json_object_set_new(o, k, json_integer((json_int_t)v));
}

static json_t *info_json(const Quarry__V1__CollectionInfo *c, const char *io) {
    const Quarry__V1__CollectionConfig *cfg = c->config;
    const Quarry__V1__CollectionStats *st = c->stats;
    json_t *o = json_object();
    json_object_set_new(o, "collection", json_string(c->name));
    set_u64(o, "dim", cfg->dim);
    json_object_set_new(o, "metric", json_string(enum_name(0, cfg->metric)));
    json_object_set_new(o, "index", json_string(enum_name(1, cfg->index)));
    json_object_set_new(o, "durability", json_string(enum_name(2, cfg->durability)));
    if (cfg->durability == QUARRY__V1__DURABILITY__DURABILITY_INTERVAL)
        set_u64(o, "interval_ms", cfg->interval_ms);
    if (cfg->index == QUARRY__V1__INDEX_KIND__INDEX_HNSW) {
        set_u64(o, "hnsw_m", cfg->hnsw_m);
        set_u64(o, "hnsw_ef_construction", cfg->hnsw_ef_construction);
        set_u64(o, "hnsw_ef_search", cfg->hnsw_ef_search);
    } else if (cfg->index == QUARRY__V1__INDEX_KIND__INDEX_IVFPQ) {
        set_u64(o, "ivf_nlist", cfg->ivf_nlist);
        set_u64(o, "pq_m", cfg->pq_m);
        set_u64(o, "ivf_nprobe", cfg->ivf_nprobe);
        set_u64(o, "ivf_refine", cfg->ivf_refine);
        set_u64(o, "ivf_train_rows", cfg->ivf_train_rows);
        /* the trained index (0 = answering exactly until trained) */
        set_u64(o, "ivf_trained_nlist", st->ivf_nlist);
        set_u64(o, "ivf_trained_pq_m", st->pq_m);
        set_u64(o, "ivf_training", st->ivf_training ? 1 : 0);
        set_u64(o, "ivf_rows", st->ivf_rows);
        set_u64(o, "ivf_code_bytes", st->ivf_code_bytes);
    }
    set_u64(o, "rows", st->rows);
    set_u64(o, "rows_with_vector", st->rows_with_vector);
    set_u64(o, "dead_rows", st->dead_rows);
    set_u64(o, "segments", st->segments);
    set_u64(o, "disk_bytes", st->disk_bytes);
    set_u64(o, "live_bytes_estimate", st->live_bytes_estimate);
    set_u64(o, "memory_bytes", st->memory_bytes);
    set_u64(o, "last_lsn", st->last_lsn);
    set_u64(o, "batches", st->batches);
    set_u64(o, "syncs", st->syncs);
    set_u64(o, "compactions", st->compactions);
    json_object_set_new(o, "io_backend", json_string(io));
    return o;
}

static int r_stats(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{"--json", 0, NULL}, {NULL, 0, NULL}};
    int n, st;
    if ((st = parse("stats", argc, argv, o, &n))) return st;
    if (n > 1) return usage("stats", "expected at most one collection NAME");
    Quarry__V1__StatsResponse *r;
    if ((st = list_infos(cl, n ? argv[0] : NULL, &r))) return st;
    for (size_t i = 0; i < r->n_collections && !st; i++) {
        json_t *j = info_json(r->collections[i], r->server ? r->server->io_backend : "?");
        if (val(o, "--json")) {
            st = print_json(j);
        } else {
            if (i) putchar('\n');
            const char *key;
            json_t *v;
            json_object_foreach(j, key, v) {
                if (json_is_string(v)) printf("%s: %s\n", key, json_string_value(v));
                else printf("%s: %" JSON_INTEGER_FORMAT "\n", key, json_integer_value(v));
            }
        }
        json_decref(j);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return st;
}

static int r_drop(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{NULL, 0, NULL}};
    int n, st;
    if ((st = parse("drop", argc, argv, o, &n))) return st;
    if (n != 1) return usage("drop", "expected one collection NAME");
    Quarry__V1__DropCollectionRequest rq = QUARRY__V1__DROP_COLLECTION_REQUEST__INIT;
    rq.name = argv[0];
    ProtobufCMessage *r = NULL;
    char what[128];
    snprintf(what, sizeof what, "drop %s", argv[0]);
    if ((st = call(cl, Q("DropCollection"), &rq.base,
                   &quarry__v1__drop_collection_response__descriptor, &r, what)))
        return st;
    protobuf_c_message_free_unpacked(r, NULL);
    return 0;
}

/* ------------------------------------------------------------------ import */

typedef struct batch {
    Quarry__V1__Row *rows;
    Quarry__V1__Row **ptrs;
    size_t n, cap;
    Quarry__V1__Field upd[3]; /* --update: the fields of a partial update */
    size_t nupd;              /* 0 = whole-row upserts */
} batch;

/* --update FIELDS into b->upd; -1 when the list is not valid. */
static int parse_update(batch *b, const char *s) {
    unsigned bits = cli_update_fields(s);
    if (!bits) return -1;
    b->nupd = 0;
    if (bits & QUARRY_FIELD_TEXT) b->upd[b->nupd++] = QUARRY__V1__FIELD__FIELD_TEXT;
    if (bits & QUARRY_FIELD_METADATA) b->upd[b->nupd++] = QUARRY__V1__FIELD__FIELD_METADATA;
    if (bits & QUARRY_FIELD_VECTOR) b->upd[b->nupd++] = QUARRY__V1__FIELD__FIELD_VECTOR;
    return 0;
}

static void batch_clear(batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        free(b->rows[i].id);
        free(b->rows[i].vector);
        if (b->rows[i].text != protobuf_c_empty_string) free(b->rows[i].text);
        if (b->rows[i].metadata != protobuf_c_empty_string) free(b->rows[i].metadata);
    }
    b->n = 0;
}

static Quarry__V1__Row *batch_add(batch *b) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        Quarry__V1__Row *r = realloc(b->rows, cap * sizeof *r);
        if (!r) return NULL;
        b->rows = r;
        Quarry__V1__Row **p = realloc(b->ptrs, cap * sizeof *p);
        if (!p) return NULL;
        b->ptrs = p;
        b->cap = cap;
    }
    Quarry__V1__Row *r = &b->rows[b->n++];
    quarry__v1__row__init(r);
    return r;
}

static int flush(qrpc_client *cl, const char *coll, batch *b, uint64_t *done, const char *unit,
                 uint64_t first, uint64_t last) {
    if (b->n == 0) return 0;
    for (size_t i = 0; i < b->n; i++) b->ptrs[i] = &b->rows[i];
    Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
    rq.collection = (char *)coll;
    rq.rows = b->ptrs;
    rq.n_rows = b->n;
    rq.update_fields = b->upd;
    rq.n_update_fields = b->nupd;
    char what[256];
    snprintf(what, sizeof what, "import %s: %ss %" PRIu64 "-%" PRIu64, coll, unit, first, last);
    ProtobufCMessage *r = NULL;
    int st = call(cl, Q("Upsert"), &rq.base, &quarry__v1__upsert_response__descriptor, &r, what);
    if (st) {
        fprintf(stderr, "(%" PRIu64 " rows in earlier batches were committed and stay)\n", *done);
        batch_clear(b);
        return st;
    }
    protobuf_c_message_free_unpacked(r, NULL);
    *done += b->n;
    batch_clear(b);
    return 0;
}

static int import_line(batch *b, json_t *obj, uint64_t lineno, cli_row *cr) {
    char err[128];
    if (cli_row_parse(cr, obj, err, sizeof err) != 0)
        return fail("line %" PRIu64 ": %s", lineno, err);
    Quarry__V1__Row *r = batch_add(b);
    if (!r || !(r->id = strndup(cr->id, cr->id_len))) return fail("out of memory");
    if (cr->vector) {
        if (!(r->vector = malloc((cr->dim ? cr->dim : 1) * sizeof(float))))
            return fail("out of memory");
        memcpy(r->vector, cr->vector, cr->dim * sizeof(float));
        r->n_vector = cr->dim;
    }
    if (cr->text && !(r->text = strndup(cr->text, cr->text_len))) return fail("out of memory");
    if (cr->metadata && !(r->metadata = strdup(cr->metadata))) return fail("out of memory");
    return 0;
}

static int r_import(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{"--batch", 1, NULL}, {"--format", 1, NULL}, {"--id-offset", 1, NULL},
                {"--quiet", 0, NULL}, {"--update", 1, NULL}, {NULL, 0, NULL}};
    uint32_t batch_rows = 1000, id_offset = 0;
    int n, st;
    if ((st = parse("import", argc, argv, o, &n))) return st;
    if (n != 2) return usage("import", "expected a collection NAME and a FILE");
    if ((st = u32("import", o, "--batch", QUARRY_MAX_BATCH_ROWS, &batch_rows)) ||
        (st = u32("import", o, "--id-offset", UINT32_MAX, &id_offset)))
        return st;
    if (batch_rows == 0) return usage("import", "--batch must be at least 1");
    batch b = {0};
    const char *upd = val(o, "--update");
    if (upd && parse_update(&b, upd))
        return usage("import", "--update wants a comma list of text, metadata and vector, "
                               "not '%s'", upd);
    const char *format = val(o, "--format");
    size_t plen = strlen(argv[1]);
    if (!format) format = plen > 6 && strcmp(argv[1] + plen - 6, ".fvecs") == 0 ? "fvecs" : "jsonl";
    int fvecs = strcmp(format, "fvecs") == 0;
    if (!fvecs && strcmp(format, "jsonl") != 0)
        return usage("import", "--format must be jsonl or fvecs, not '%s'", format);
    FILE *f = strcmp(argv[1], "-") == 0 && !fvecs ? stdin : fopen(argv[1], "rb");
    if (!f) return fail("%s: %s", argv[1], strerror(errno));
    cli_row row = {0};
    uint64_t done = 0, lineno = 0, first = fvecs ? 0 : 1;
    double t0 = now_seconds();
    if (fvecs) {
        int32_t d;
        while (!st && fread(&d, sizeof d, 1, f) == 1) {
            if (d <= 0 || d > QUARRY_MAX_DIM) {
                st = fail("%s: record %" PRIu64 ": bad dimension %d", argv[1], lineno, (int)d);
                break;
            }
            Quarry__V1__Row *r = batch_add(&b);
            char id[24];
            snprintf(id, sizeof id, "%" PRIu64, (uint64_t)id_offset + lineno);
            if (!r || !(r->id = strdup(id)) || !(r->vector = malloc((size_t)d * sizeof(float)))) {
                st = fail("out of memory");
                break;
            }
            r->n_vector = (size_t)d;
            if (fread(r->vector, sizeof(float), (size_t)d, f) != (size_t)d) {
                st = fail("%s: record %" PRIu64 ": unexpected end of file", argv[1], lineno);
                break;
            }
            lineno++;
            if (b.n >= batch_rows) {
                st = flush(cl, argv[0], &b, &done, "record", first, lineno - 1);
                first = lineno;
            }
        }
        if (!st) st = flush(cl, argv[0], &b, &done, "record", first, lineno ? lineno - 1 : 0);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (!st && (len = getline(&line, &cap, f)) >= 0) {
            lineno++;
            if (strspn(line, " \t\r\n") == (size_t)len) continue;
            json_error_t jerr;
            json_t *obj = json_loadb(line, (size_t)len, 0, &jerr);
            if (!obj) {
                st = fail("import %s: %s: line %" PRIu64 ": %s", argv[0], argv[1], lineno,
                          jerr.text);
                break;
            }
            st = import_line(&b, obj, lineno, &row);
            json_decref(obj);
            if (!st && b.n >= batch_rows) {
                st = flush(cl, argv[0], &b, &done, "line", first, lineno);
                first = lineno + 1;
            }
        }
        if (!st) st = flush(cl, argv[0], &b, &done, "line", first, lineno);
        free(line);
    }
    if (f != stdin) fclose(f);
    batch_clear(&b);
    free(b.rows);
    free(b.ptrs);
    cli_row_free(&row);
    double secs = now_seconds() - t0;
    if (!st && !val(o, "--quiet"))
        printf("%s %" PRIu64 " rows in %.2f s (%.0f rows/s)\n", b.nupd ? "updated" : "imported",
               done, secs, secs > 0 ? (double)done / secs : 0.0);
    return st;
}

/* ------------------------------------------------------------------ get, delete */

static int r_get(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{"--format", 1, NULL}, {NULL, 0, NULL}};
    int n, st;
    if ((st = parse("get", argc, argv, o, &n))) return st;
    if (n < 2) return usage("get", "expected a collection NAME and at least one ID");
    const char *format = val(o, "--format") ? val(o, "--format") : "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "text") != 0)
        return usage("get", "--format must be json or text, not '%s'", format);
    Quarry__V1__GetRequest rq = QUARRY__V1__GET_REQUEST__INIT;
    rq.collection = argv[0];
    rq.ids = argv + 1;
    rq.n_ids = (size_t)(n - 1);
    ProtobufCMessage *m = NULL;
    char what[128];
    snprintf(what, sizeof what, "get %s", argv[0]);
    if ((st = call(cl, Q("Get"), &rq.base, &quarry__v1__get_response__descriptor, &m, what)))
        return st;
    Quarry__V1__GetResponse *r = (Quarry__V1__GetResponse *)m;
    size_t k = 0;
    for (int i = 1; i < n; i++) {
        const Quarry__V1__Row *row = k < r->n_rows && strcmp(r->rows[k]->id, argv[i]) == 0
                                         ? r->rows[k++]
                                         : NULL;
        if (!row) {
            st = fail("get %s %s: NOT_FOUND: no row with id '%s' in '%s'", argv[0], argv[i],
                      argv[i], argv[0]);
            continue;
        }
        json_t *j = json_object();
        json_object_set_new(j, "id", json_string(row->id));
        json_t *arr = row->n_vector ? json_array() : json_null();
        for (size_t d = 0; d < row->n_vector; d++)
            json_array_append_new(arr, json_float(row->vector[d]));
        json_object_set_new(j, "vector", arr);
        json_object_set_new(j, "text", *row->text ? json_string(row->text) : json_null());
        json_t *meta = *row->metadata ? json_loads(row->metadata, 0, NULL) : json_null();
        json_object_set_new(j, "metadata", meta ? meta : json_string(row->metadata));
        if (strcmp(format, "json") == 0) {
            print_json(j);
        } else {
            if (i > 1) putchar('\n');
            const char *key;
            json_t *v;
            json_object_foreach(j, key, v) {
                if (json_is_null(v)) continue;
                char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_OUT_FLAGS);
                printf("%s: %s\n", key, s ? s : json_string_value(v));
                free(s);
            }
        }
        json_decref(j);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return st;
}

static int r_delete(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{"--quiet", 0, NULL}, {NULL, 0, NULL}};
    int n, st;
    if ((st = parse("delete", argc, argv, o, &n))) return st;
    if (n < 2) return usage("delete", "expected a collection NAME and at least one ID");
    Quarry__V1__DeleteRequest rq = QUARRY__V1__DELETE_REQUEST__INIT;
    rq.collection = argv[0];
    rq.ids = argv + 1;
    rq.n_ids = (size_t)(n - 1);
    ProtobufCMessage *m = NULL;
    char what[128];
    snprintf(what, sizeof what, "delete %s", argv[0]);
    if ((st = call(cl, Q("Delete"), &rq.base, &quarry__v1__delete_response__descriptor, &m,
                   what)))
        return st;
    Quarry__V1__DeleteResponse *r = (Quarry__V1__DeleteResponse *)m;
    if (!val(o, "--quiet")) printf("deleted %u of %d ids\n", r->deleted, n - 1);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

/* ------------------------------------------------------------------ search */

static int r_search(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{"--vector", 1, NULL}, {"--queries", 1, NULL}, {"--k", 1, NULL},
                {"--filter", 1, NULL}, {"--format", 1, NULL},  {"--stats", 0, NULL},
                {"--exact", 0, NULL},  {"--ef", 1, NULL},      {"--nprobe", 1, NULL},
                {"--refine", 1, NULL}, {"--limit", 1, NULL},   {"--text", 1, NULL},
                {NULL, 0, NULL}};
    uint32_t k = 10, ef = 0, nprobe = 0, refine = 0, limit = UINT32_MAX;
    int n, st;
    if ((st = parse("search", argc, argv, o, &n))) return st;
    if (n != 1) return usage("search", "expected one collection NAME");
    const char *vector = val(o, "--vector"), *file = val(o, "--queries"), *text = val(o, "--text");
    if (vector && file) return usage("search", "give either --vector or --queries");
    if (!vector && !file && !text) return usage("search", "give --vector, --queries or --text");
    const char *format = val(o, "--format") ? val(o, "--format") : "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "ids") != 0)
        return usage("search", "--format must be json or ids, not '%s'", format);
    if ((st = u32("search", o, "--k", QUARRY_MAX_K, &k)) ||
        (st = u32("search", o, "--ef", UINT32_MAX, &ef)) ||
        (st = u32("search", o, "--nprobe", UINT32_MAX, &nprobe)) ||
        (st = u32("search", o, "--refine", UINT32_MAX, &refine)) ||
        (st = u32("search", o, "--limit", UINT32_MAX, &limit)))
        return st;
    if (k == 0) return usage("search", "--k must be at least 1");
    float *q = NULL;
    uint32_t dim = 0;
    size_t nq = 1;
    if (vector) {
        json_error_t jerr;
        json_t *arr = json_loads(vector, 0, &jerr);
        size_t qcap = 0;
        int bad = !arr || json_to_floats(arr, &q, &qcap, &dim) != 0;
        json_decref(arr);
        if (bad) return usage("search", "--vector must be a JSON array of numbers");
    } else if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) return fail("%s: %s", file, strerror(errno));
        int32_t d;
        nq = 0;
        size_t cap = 0;
        while (nq < limit && fread(&d, sizeof d, 1, f) == 1) {
            if (d <= 0 || d > QUARRY_MAX_DIM || (dim && (uint32_t)d != dim)) {
                fclose(f);
                free(q);
                return fail("%s: record %zu: bad dimension %d", file, nq, (int)d);
            }
            dim = (uint32_t)d;
            if ((nq + 1) * dim > cap) {
                cap = cap ? cap * 2 : (size_t)dim * 64;
                float *p = realloc(q, cap * sizeof *p);
                if (!p) {
                    fclose(f);
                    free(q);
                    return fail("out of memory");
                }
                q = p;
            }
            if (fread(q + nq * dim, sizeof(float), dim, f) != dim) {
                fclose(f);
                free(q);
                return fail("%s: record %zu: unexpected end of file", file, nq);
            }
            nq++;
        }
        fclose(f);
    }
    int ids_only = strcmp(format, "ids") == 0;
    double secs = 0;
    for (size_t i = 0; i < nq && !st; i++) {
        Quarry__V1__QueryRequest rq = QUARRY__V1__QUERY_REQUEST__INIT;
        Quarry__V1__VectorClause vc = QUARRY__V1__VECTOR_CLAUSE__INIT;
        Quarry__V1__TextClause tc = QUARRY__V1__TEXT_CLAUSE__INIT;
        rq.collection = argv[0];
        rq.k = k;
        rq.filter = val(o, "--filter") ? (char *)val(o, "--filter") : "";
        if (q) {
            vc.vector = q + i * dim;
            vc.n_vector = dim;
            vc.ef = ef;
            vc.nprobe = nprobe;
            vc.refine = refine;
            vc.exact = val(o, "--exact") != NULL;
            rq.vector = &vc;
        }
        if (text) {
            tc.text = (char *)text;
            rq.text = &tc;
        }
        ProtobufCMessage *m = NULL;
        char what[128];
        if (nq > 1) snprintf(what, sizeof what, "search %s (query %zu)", argv[0], i);
        else snprintf(what, sizeof what, "search %s", argv[0]);
        double t0 = now_seconds();
        st = call(cl, Q("Query"), &rq.base, &quarry__v1__query_response__descriptor, &m, what);
        secs += now_seconds() - t0;
        if (st) break;
        Quarry__V1__QueryResponse *r = (Quarry__V1__QueryResponse *)m;
        if (ids_only) {
            for (size_t h = 0; h < r->n_hits; h++) printf("%s%s", h ? " " : "", r->hits[h]->id);
            putchar('\n');
        } else {
            json_t *hits = json_array(), *j = json_object();
            for (size_t h = 0; h < r->n_hits; h++) {
                json_t *x = json_object();
                json_object_set_new(x, "id", json_string(r->hits[h]->id));
                if (q) json_object_set_new(x, "distance", json_float(r->hits[h]->distance));
                else json_object_set_new(x, "score", json_float(r->hits[h]->score));
                json_array_append_new(hits, x);
            }
            json_object_set_new(j, "query", json_integer((json_int_t)i));
            json_object_set_new(j, "hits", hits);
            print_json(j);
            json_decref(j);
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    if (!st && val(o, "--stats")) {
        fflush(stdout);
        fprintf(stderr, "queries=%zu seconds=%.6f qps=%.1f\n", nq, secs,
                secs > 0 ? (double)nq / secs : 0.0);
    }
    free(q);
    return st;
}

/* ------------------------------------------------------------------ train */

/* A training of a large collection takes minutes: this call gets a day. */
#define TRAIN_TIMEOUT_MS (24 * 3600 * 1000)

static int r_train(qrpc_client *cl, int argc, char **argv) {
    ropt o[] = {{NULL, 0, NULL}};
    int n, st;
    if ((st = parse("train", argc, argv, o, &n))) return st;
    if (n != 1) return usage("train", "expected one collection NAME");
    Quarry__V1__TrainRequest rq = QUARRY__V1__TRAIN_REQUEST__INIT;
    rq.collection = argv[0];
    rq.wait = 1;
    ProtobufCMessage *m = NULL;
    char what[128];
    snprintf(what, sizeof what, "train %s", argv[0]);
    qrpc_set_timeout(cl, TRAIN_TIMEOUT_MS);
    double t0 = now_seconds();
    if ((st = call(cl, Q("Train"), &rq.base, &quarry__v1__train_response__descriptor, &m, what)))
        return st;
    Quarry__V1__TrainResponse *r = (Quarry__V1__TrainResponse *)m;
    printf("trained %s: nlist %" PRIu32 ", pq_m %" PRIu32 ", %" PRIu64
           " rows encoded in %.2f s\n",
           argv[0], r->nlist, r->pq_m, r->rows, now_seconds() - t0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

/* ------------------------------------------------------------------ entry */

int remote_main(const char *addr, const char *api_key, const char *tls_ca, int argc,
                char **argv) {
    static const struct {
        const char *name;
        int (*fn)(qrpc_client *, int, char **);
    } CMDS[] = {{"create", r_create}, {"list", r_list},     {"stats", r_stats},
                {"drop", r_drop},     {"import", r_import}, {"get", r_get},
                {"delete", r_delete}, {"search", r_search}, {"train", r_train}};
    if (argc < 1) {
        fputs("quarry: --remote needs a COMMAND (the stdin shell is local only)\n"
              "usage: quarry --remote HOST:PORT COMMAND [ARGS...]\n",
              stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++) {
        if (strcmp(CMDS[i].name, argv[0]) != 0) continue;
        qrpc_options o = {.api_key = api_key, .tls_ca_file = tls_ca, .timeout_ms = 600000};
        qrpc_client *cl;
        const char *err;
        if (qrpc_connect(addr, &o, &cl, &err) != 0) return fail("connect %s: %s", addr, err);
        int st = CMDS[i].fn(cl, argc - 1, argv + 1);
        qrpc_close(cl);
        if (fflush(stdout) != 0) st = fail("writing the output failed");
        return st;
    }
    if (strcmp(argv[0], "compact") == 0 || strcmp(argv[0], "sync") == 0) {
        fprintf(stderr, "quarry: %s is not available with --remote (no such RPC)\n", argv[0]);
        return EXIT_USAGE;
    }
    fprintf(stderr, "quarry: unknown command '%s'\nTry 'quarry --help'.\n", argv[0]);
    return EXIT_USAGE;
}
