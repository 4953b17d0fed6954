/* SPDX-License-Identifier: MIT */
/*
 * server.c -- quarryd: the Quarry database served over gRPC (C core API).
 *
 * Threads and queues (measured in bench/rpc, see docs/RPC.md):
 *  - `--cq-threads` threads call grpc_completion_queue_next. They do the
 *    network I/O, so they never run engine work: they only dispatch. By
 *    default they share ONE completion queue (calls from a single client
 *    connection land on one queue, so a queue per thread balances only
 *    across connections; --cq-per-thread selects that layout anyway).
 *  - Reads (Query, Get, Stats, List/Describe: CPU under the engine's read
 *    locks, never an fdatasync) run on the CQ thread that received them
 *    (--query-inline 1, the default): a hand-off to a worker and back cost
 *    about a third of a 784-d HNSW query's CPU on 2 cores (bench/rpc).
 *  - `--workers` threads run everything that may wait for the disk (writes
 *    wait for fdatasync, create/drop write the manifest) or for long (Train
 *    waits for a whole IVF-PQ training) and reads with --query-inline 0:
 *    decode, engine call, encode, start the reply batch.
 *    Health checks always run inline. --workers 0 runs every handler inline,
 *    for measurements.
 *  - The main thread blocks SIGINT/SIGTERM before grpc_init (grpc's own
 *    threads inherit the mask) and takes them with sigwait: no grpc call ever
 *    runs in a signal handler.
 *
 * A call's life: a context is allocated and posted with
 * grpc_server_request_registered_call (`--prepost` per method and queue, and
 * a few generic grpc_server_request_call posts that answer UNIMPLEMENTED for
 * unknown methods -- without them such calls hang until the client's
 * deadline). When the call arrives the CQ thread re-posts first. A call that
 * runs inline is handled at once and its reply batch carries the
 * RECV_CLOSE_ON_SERVER op (one completion per call). A call for a worker
 * first gets a separate RECV_CLOSE_ON_SERVER batch (its completion tells us
 * about client cancellation, and about the deadline, which the core enforces
 * by cancelling the call, while the call waits) and is queued. Before any
 * decoding or engine work, run_call checks the deadline and the cancelled
 * flag (rpc_call_stopped: DEADLINE_EXCEEDED / CANCELLED, nothing runs), then
 * the API key; it decodes, runs the handler, which may check again between
 * expensive steps (Query does after the search), and starts one batch
 * {initial metadata, message, status}. A reference count (one hold + one
 * per outstanding batch) frees the context when the last completion
 * arrives, on whichever thread.
 *
 * Shutdown (SIGTERM/SIGINT): health turns NOT_SERVING, the server stops
 * accepting (grpc_server_shutdown_and_notify), in-flight calls get
 * `--grace-ms` to finish before grpc_server_cancel_all_calls; we then wait
 * for our own live-context count to reach zero (the shutdown tag arrives
 * before the last batches complete), stop the workers and the CQ threads,
 * destroy grpc objects, and finally quarry_sync + quarry_close.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/cpu.h>
#include <grpc/support/log.h>

#include "rpc/rpc.h"

/* ------------------------------------------------------------------ options */

#define DEFAULT_LISTEN "127.0.0.1:7070"
#define GENERIC_POSTS 2

static void usage(FILE *out) {
    fputs(
        "quarryd " QUARRY_VERSION_STRING " -- the Quarry vector database served over gRPC.\n"
        "\n"
        "usage: quarryd --data DIR [OPTIONS]\n"
        "\n"
        "Serves the database directory DIR (created when missing) as the gRPC service\n"
        "quarry.v1.Quarry (rpc/proto/quarry/v1/quarry.proto) plus grpc.health.v1.Health.\n"
        "Logs are logfmt lines on stderr. SIGTERM or SIGINT shut down gracefully: stop\n"
        "accepting, finish in-flight calls, sync, close.\n"
        "\n"
        "Options:\n"
        "  --data DIR             database directory (required)\n"
        "  --listen ADDR          HOST:PORT or unix:PATH (default " DEFAULT_LISTEN ");\n"
        "                         port 0 picks a free port (see --port-file)\n"
        "  --port-file FILE       write the bound port number to FILE once listening\n"
        "  --api-key-file FILE    require 'authorization: Bearer <key>' metadata, the key\n"
        "                         being the first line of FILE (the environment variable\n"
        "                         QUARRY_API_KEY is used when this option is absent);\n"
        "                         health checks need no key\n"
        "  --tls-cert FILE        serve TLS with this PEM certificate chain ...\n"
        "  --tls-key FILE         ... and this PEM private key (both or neither)\n"
        "  --cq-threads N         threads polling completion queues (default 2)\n"
        "  --cq-per-thread        one completion queue per polling thread instead of one\n"
        "                         shared queue (balances only across connections)\n"
        "  --workers N            handler threads for writes and Train (and for reads\n"
        "                         with --query-inline 0; default 2 x cores, at least 4);\n"
        "                         0 runs every handler on the polling threads\n"
        "  --query-inline 0|1     1 (default): reads (Query, Get, Stats, List/Describe)\n"
        "                         run on the polling thread that received them, without a\n"
        "                         hand-off to a worker; 0: on the workers like writes\n"
        "  --prepost N            calls kept requested per method and queue (default 16)\n"
        "  --max-message-bytes N  largest request or response (default 67108864)\n"
        "  --max-batch-rows N     rows per Upsert, ids per Get/Delete, vectors per\n"
        "                         UpsertDocument (default 100000)\n"
        "  --max-queue N          calls waiting for a worker before new ones get\n"
        "                         RESOURCE_EXHAUSTED (default 10000)\n"
        "  --grace-ms N           shutdown: time given to in-flight calls (default 10000)\n"
        "  --read-only            open the database read-only\n"
        "  --io B                 I/O back end: auto (default), uring or posix\n"
        "  --demo                 create the collection 'demo' with generated articles\n"
        "                         when it does not exist\n"
        "  --log-level L          debug (one line per call), info (default: failed calls,\n"
        "                         start, stop), warn or error\n"
        "  --help, -h             this help\n"
        "  --version              print the version\n"
        "\n"
        "Exit status: 0 after a clean shutdown, 1 for a usage error, 2 when the database\n"
        "cannot be opened or the address cannot be bound.\n",
        out);
}

static int parse_long(const char *flag, const char *v, long min, long max, long *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < min || x > max) {
        fprintf(stderr, "quarryd: %s wants a whole number from %ld to %ld, not '%s'\n", flag, min,
                max, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

static char *read_key_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "quarryd: --api-key-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
    if (n <= 0) {
        fprintf(stderr, "quarryd: --api-key-file %s: the first line is empty\n", path);
        free(line);
        return NULL;
    }
    line[n] = '\0';
    return line;
}

/* Returns -1 to go on, else an exit status. */
static int parse_options(int argc, char **argv, rpc_config *cfg) {
    long v;
    int cores = gpr_cpu_num_cores();
    const char *key_file = NULL;
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = DEFAULT_LISTEN;
    cfg->cq_threads = 2;
    cfg->workers = 2 * cores < 4 ? 4 : 2 * cores;
    cfg->query_inline = 1;
    cfg->prepost = 16;
    cfg->max_message_bytes = 64l << 20;
    cfg->max_batch_rows = 100000;
    cfg->max_queue = 10000;
    cfg->grace_ms = 10000;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *val = NULL;
        char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq) *eq = '\0', val = eq + 1;
#define FLAG(name) (strcmp(a, name) == 0)
#define VALUE()                                                                        \
    (val ? val : i + 1 < argc ? argv[++i] : (fprintf(stderr, "quarryd: %s needs a value\n", a), \
                                              (char *)NULL))
        if (FLAG("--help") || FLAG("-h")) {
            usage(stdout);
            return 0;
        } else if (FLAG("--version")) {
            printf("quarryd %s\n", quarry_version());
            return 0;
        } else if (FLAG("--data")) {
            if (!(cfg->data_dir = VALUE())) return 1;
        } else if (FLAG("--listen")) {
            if (!(cfg->listen = VALUE())) return 1;
        } else if (FLAG("--port-file")) {
            if (!(cfg->port_file = VALUE())) return 1;
        } else if (FLAG("--api-key-file")) {
            if (!(key_file = VALUE())) return 1;
        } else if (FLAG("--tls-cert")) {
            if (!(cfg->tls_cert = VALUE())) return 1;
        } else if (FLAG("--tls-key")) {
            if (!(cfg->tls_key = VALUE())) return 1;
        } else if (FLAG("--cq-threads")) {
            if (parse_long(a, VALUE(), 1, 64, &v)) return 1;
            cfg->cq_threads = (int)v;
        } else if (FLAG("--cq-per-thread")) {
            cfg->cq_per_thread = 1;
        } else if (FLAG("--workers")) {
            if (parse_long(a, VALUE(), 0, 1024, &v)) return 1;
            cfg->workers = (int)v;
        } else if (FLAG("--query-inline")) {
            if (parse_long(a, VALUE(), 0, 1, &v)) return 1;
            cfg->query_inline = (int)v;
        } else if (FLAG("--prepost")) {
            if (parse_long(a, VALUE(), 1, 1024, &v)) return 1;
            cfg->prepost = (int)v;
        } else if (FLAG("--max-message-bytes")) {
            if (parse_long(a, VALUE(), 1024, INT_MAX, &v)) return 1;
            cfg->max_message_bytes = v;
        } else if (FLAG("--max-batch-rows")) {
            if (parse_long(a, VALUE(), 1, QUARRY_MAX_BATCH_ROWS, &v)) return 1;
            cfg->max_batch_rows = v;
        } else if (FLAG("--max-queue")) {
            if (parse_long(a, VALUE(), 1, INT_MAX, &v)) return 1;
            cfg->max_queue = (int)v;
        } else if (FLAG("--grace-ms")) {
            if (parse_long(a, VALUE(), 0, 3600000, &v)) return 1;
            cfg->grace_ms = (int)v;
        } else if (FLAG("--read-only")) {
            cfg->read_only = 1;
        } else if (FLAG("--demo")) {
            cfg->demo = 1;
        } else if (FLAG("--io")) {
            const char *b = VALUE();
            if (!b) return 1;
            if (strcmp(b, "auto") == 0) cfg->io = QUARRY_IO_AUTO;
            else if (strcmp(b, "uring") == 0) cfg->io = QUARRY_IO_URING;
            else if (strcmp(b, "posix") == 0) cfg->io = QUARRY_IO_POSIX;
            else {
                fprintf(stderr, "quarryd: --io must be auto, uring or posix, not '%s'\n", b);
                return 1;
            }
        } else if (FLAG("--log-level")) {
            const char *l = VALUE();
            if (!l) return 1;
            if ((rpc_log_level = rpc_log_level_parse(l)) < 0) {
                fprintf(stderr, "quarryd: --log-level must be debug, info, warn or error\n");
                return 1;
            }
        } else {
            fprintf(stderr, "quarryd: unknown option '%s'\nTry 'quarryd --help'.\n", a);
            return 1;
        }
#undef FLAG
#undef VALUE
    }
    if (!cfg->data_dir) {
        fprintf(stderr, "quarryd: --data DIR is required\nTry 'quarryd --help'.\n");
        return 1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "quarryd: --tls-cert and --tls-key go together\n");
        return 1;
    }
    if (key_file) {
        if (!(cfg->api_key = read_key_file(key_file))) return 1;
    } else if (getenv("QUARRY_API_KEY") && *getenv("QUARRY_API_KEY")) {
        cfg->api_key = strdup(getenv("QUARRY_API_KEY"));
    }
    return -1;
}

/* ------------------------------------------------------------------ call contexts */

static void live_add(rpc_server *s, long d) {
    pthread_mutex_lock(&s->live_mu);
    s->live += d;
    if (s->live == 0) pthread_cond_broadcast(&s->live_cv);
    pthread_mutex_unlock(&s->live_mu);
}

static void call_finish(rpc_call *c) {
    rpc_server *s = c->srv;
    if (c->t0_ns) {
        double ms = (double)(rpc_now_ns() - c->t0_ns) / 1e6;
        int failed = c->status != GRPC_STATUS_OK;
        atomic_fetch_add(&s->calls, 1);
        if (failed) atomic_fetch_add(&s->failed, 1);
        atomic_fetch_sub(&s->in_flight, 1);
        int level = !failed ? LOG_DEBUG
                    : (c->status == GRPC_STATUS_INTERNAL || c->status == GRPC_STATUS_DATA_LOSS ||
                       c->status == GRPC_STATUS_UNKNOWN)
                        ? LOG_ERROR
                        : LOG_INFO;
        if (level >= rpc_log_level) {
            char *peer = c->call ? grpc_call_get_peer(c->call) : NULL;
            char *method = NULL;
            if (!c->m && c->call) method = grpc_slice_to_c_string(c->details.method);
            rpc_log(level, "call", failed ? c->msg : NULL,
                    "method=%s code=%s ms=%.3f peer=%s%s",
                    c->m ? strrchr(c->m->path, '/') + 1 : (method ? method : "?"),
                    rpc_status_name(c->status), ms, peer ? peer : "?",
                    atomic_load(&c->cancelled) ? " cancelled=1" : "");
            gpr_free(peer);
            gpr_free(method);
        }
    }
    if (c->req) grpc_byte_buffer_destroy(c->req);
    if (c->resp) grpc_byte_buffer_destroy(c->resp);
    grpc_metadata_array_destroy(&c->md);
    if (!c->m) grpc_call_details_destroy(&c->details);
    if (c->call) grpc_call_unref(c->call);
    arena_free(&c->ar);
    free(c);
    live_add(s, -1);
}

static void call_release(rpc_call *c) {
    if (atomic_fetch_sub(&c->refs, 1) == 1) call_finish(c);
}

/* Requests the next call of method m (NULL: any unknown method) on queue cq. */
static int post_request(rpc_server *s, const rpc_method *m, int cq) {
    rpc_call *c = calloc(1, sizeof *c);
    if (!c) {
        rpc_log(LOG_ERROR, "post_failed", "out of memory", NULL);
        return -1;
    }
    c->t_new = (rpc_tag){TAG_NEW, c};
    c->t_done = (rpc_tag){TAG_DONE, c};
    c->t_close = (rpc_tag){TAG_CLOSE, c};
    c->srv = s, c->m = m, c->cq = cq;
    atomic_init(&c->refs, 1);
    atomic_init(&c->cancelled, 0);
    grpc_metadata_array_init(&c->md);
    live_add(s, 1);
    grpc_call_error e;
    if (m) {
        e = grpc_server_request_registered_call(s->gs, m->handle, &c->call, &c->deadline, &c->md,
                                                &c->req, s->cqs[cq], s->cqs[cq], &c->t_new);
    } else {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(s->gs, &c->call, &c->details, &c->md, s->cqs[cq], s->cqs[cq],
                                     &c->t_new);
    }
    if (e != GRPC_CALL_OK) {
        if (!atomic_load(&s->shutting_down))
            rpc_log(LOG_ERROR, "post_failed", NULL, "error=%d", (int)e);
        call_finish(c);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ replies */

static void send_reply(rpc_call *c) {
    if (c->replied) { /* a handler bug: keep the first reply */
        rpc_log(LOG_ERROR, "double_reply", c->msg, "method=%s", c->m ? c->m->path : "?");
        return;
    }
    c->replied = 1;
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->resp) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->resp;
    }
    grpc_slice details = grpc_slice_from_static_string(c->status == GRPC_STATUS_OK ? "" : c->msg);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c->status;
    ops[n++].data.send_status_from_server.status_details = &details;
    if (!c->close_batch) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->final_cancelled;
    }
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_done, NULL);
    if (e != GRPC_CALL_OK) {
        rpc_log(LOG_ERROR, "reply_failed", NULL, "error=%d", (int)e);
        atomic_fetch_sub(&c->refs, 1);
    }
    call_release(c); /* the hold taken when the call arrived */
}

int rpc_reply_msg(rpc_call *c, const ProtobufCMessage *msg) {
    size_t size = protobuf_c_message_get_packed_size(msg);
    if ((long)size > c->srv->cfg.max_message_bytes) {
        rpc_reply_status(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
                         "the response would be %zu bytes, over the server's limit of %ld "
                         "(--max-message-bytes); ask for fewer rows or fields",
                         size, c->srv->cfg.max_message_bytes);
        return -1;
    }
    if (!(c->resp = rpc_pack(msg, size))) {
        rpc_reply_status(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory packing the response");
        return -1;
    }
    c->status = GRPC_STATUS_OK;
    c->msg[0] = '\0';
    send_reply(c);
    return 0;
}

void rpc_reply_status(rpc_call *c, grpc_status_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->status = code;
    send_reply(c);
}

void rpc_reply_rc(rpc_call *c, int rc, const char *what) {
    int code = quarry_errcode(); /* read before quarry_errmsg() */
    const char *detail = quarry_errmsg();
    if (!detail || !*detail || (code & 0xff) != (rc & 0xff)) detail = quarry_errstr(rc);
    if (what) rpc_reply_status(c, rpc_status_from_rc(rc), "%s: %s", what, detail);
    else rpc_reply_status(c, rpc_status_from_rc(rc), "%s", detail);
}

/* ------------------------------------------------------------------ running calls */

static int authorized(rpc_call *c) {
    const char *want = c->srv->cfg.api_key;
    if (!want || c->m->no_auth) return 1;
    for (size_t i = 0; i < c->md.count; i++) {
        const grpc_metadata *md = &c->md.metadata[i];
        if (grpc_slice_str_cmp(md->key, "authorization") != 0) continue;
        const char *v = (const char *)GRPC_SLICE_START_PTR(md->value);
        size_t len = GRPC_SLICE_LENGTH(md->value);
        if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0) {
            rpc_reply_status(c, GRPC_STATUS_UNAUTHENTICATED,
                             "the authorization metadata must be 'Bearer <key>'");
            return 0;
        }
        if (rpc_secret_equal(v + 7, len - 7, want, strlen(want))) return 1;
        rpc_reply_status(c, GRPC_STATUS_UNAUTHENTICATED, "invalid API key");
        return 0;
    }
    rpc_reply_status(c, GRPC_STATUS_UNAUTHENTICATED,
                     "an API key is required (metadata 'authorization: Bearer <key>')");
    return 0;
}

int rpc_call_stopped(rpc_call *c) {
    const char *when = c->running ? "while it ran" : "before it ran";
    /* The deadline first: the core cancels a call whose deadline passed, so
     * `cancelled` is set in both cases. */
    if (gpr_time_cmp(c->deadline, gpr_now(c->deadline.clock_type)) <= 0) {
        rpc_reply_status(c, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed %s", when);
        return 1;
    }
    if (atomic_load(&c->cancelled)) {
        rpc_reply_status(c, GRPC_STATUS_CANCELLED, "cancelled by the client %s", when);
        return 1;
    }
    return 0;
}

int64_t rpc_call_deadline_ns(const rpc_call *c) {
    if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0) return 0;
    gpr_timespec left = gpr_time_sub(c->deadline, gpr_now(c->deadline.clock_type));
    int64_t ns = (int64_t)left.tv_sec * 1000000000 + left.tv_nsec;
    if (left.tv_sec > 100000000) return 0; /* years away: as good as none */
    int64_t now = quarry_clock_ns();
    return ns > 0 ? now + ns : now - 1;
}

int rpc_call_interrupt(void *call) {
    return atomic_load(&((rpc_call *)call)->cancelled) != 0;
}

static void run_call(rpc_call *c) {
    if (rpc_call_stopped(c)) return; /* no engine work for a call nobody waits for */
    c->running = 1;
    if (!authorized(c)) return;
    char why[256];
    ProtobufCMessage *req = rpc_unpack(c->m->in, c->req, why, sizeof why);
    if (!req) {
        rpc_reply_status(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
        return;
    }
    /* Keep the context alive past the reply: the handler may still free engine
     * objects, and we check that it replied. */
    atomic_fetch_add(&c->refs, 1);
    c->m->fn(c, req);
    protobuf_c_message_free_unpacked(req, NULL);
    if (!c->replied) rpc_reply_status(c, GRPC_STATUS_INTERNAL, "the handler sent no reply");
    call_release(c);
}

static void *worker_main(void *arg) {
    rpc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->q_mu);
        while (!s->q_head && !s->q_stop) pthread_cond_wait(&s->q_cv, &s->q_mu);
        rpc_call *c = s->q_head;
        if (c) {
            s->q_head = c->next;
            if (!s->q_head) s->q_tail = NULL;
            s->q_len--;
        }
        pthread_mutex_unlock(&s->q_mu);
        if (!c) break;
        run_call(c);
    }
    return NULL;
}

/* A new call arrived on queue c->cq. */
static void on_new_call(rpc_call *c, int ok) {
    rpc_server *s = c->srv;
    if (!ok) { /* the server is shutting down: the request was never matched */
        call_finish(c);
        return;
    }
    if (!atomic_load(&s->shutting_down)) post_request(s, c->m, c->cq);
    c->t0_ns = rpc_now_ns();
    atomic_fetch_add(&s->in_flight, 1);
    if (!c->m) {
        char *path = grpc_slice_to_c_string(c->details.method);
        rpc_reply_status(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %.300s", path);
        gpr_free(path);
        return;
    }
    if (s->cfg.workers == 0 || c->m->run == RUN_INLINE ||
        (c->m->run == RUN_READ && s->cfg.query_inline)) {
        /* Runs now, on this thread: nothing to learn while it waits, so the
         * RECV_CLOSE_ON_SERVER op goes into the reply batch (one completion
         * per call instead of two). The deadline is still checked. */
        run_call(c);
        return;
    }
    /* It will wait for a worker: learn about cancellation (by the client, or
     * by the core when the deadline passes) while it waits or runs. */
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    atomic_fetch_add(&c->refs, 1);
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) == GRPC_CALL_OK) {
        c->close_batch = 1;
    } else {
        atomic_fetch_sub(&c->refs, 1);
    }
    pthread_mutex_lock(&s->q_mu);
    if (s->q_len >= s->cfg.max_queue) {
        pthread_mutex_unlock(&s->q_mu);
        rpc_reply_status(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
                         "the server is overloaded (%d calls queued, --max-queue)",
                         s->cfg.max_queue);
        return;
    }
    c->next = NULL;
    if (s->q_tail) s->q_tail->next = c;
    else s->q_head = c;
    s->q_tail = c;
    s->q_len++;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

static void *cq_main(void *arg) {
    rpc_server *s = ((void **)arg)[0];
    grpc_completion_queue *cq = ((void **)arg)[1];
    free(arg);
    (void)s;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        rpc_tag *t = ev.tag;
        rpc_call *c = t->call;
        switch (t->kind) {
        case TAG_NEW: on_new_call(c, ev.success); break;
        case TAG_CLOSE:
            if (c->close_cancelled) atomic_store(&c->cancelled, 1);
            call_release(c);
            break;
        case TAG_DONE: call_release(c); break;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ setup */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

static grpc_server_credentials *make_credentials(const rpc_config *cfg) {
    if (!cfg->tls_cert) return grpc_insecure_server_credentials_create();
    char *cert = slurp(cfg->tls_cert), *key = slurp(cfg->tls_key);
    grpc_server_credentials *creds = NULL;
    if (!cert || !key) {
        rpc_log(LOG_ERROR, "tls_failed", strerror(errno), "cert=%s key=%s", cfg->tls_cert,
                cfg->tls_key);
    } else {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        grpc_ssl_server_certificate_config *sc =
            grpc_ssl_server_certificate_config_create(NULL, &pair, 1);
        grpc_ssl_server_credentials_options *o =
            grpc_ssl_server_credentials_create_options_using_config(
                GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, sc);
        creds = grpc_ssl_server_credentials_create_with_options(o);
    }
    free(cert);
    free(key);
    return creds;
}

static int write_port_file(const char *path, int port) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

/* Returns 0; -1 when nothing was started yet (bad address, TLS files); -2 for
 * a failure after threads may exist. */
static int server_start(rpc_server *s) {
    rpc_config *cfg = &s->cfg;
    grpc_arg args[3];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)cfg->max_message_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)cfg->max_message_bytes;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_ALLOW_REUSEPORT; /* a second server on the port must fail */
    args[2].value.integer = 0;
    grpc_channel_args chargs = {3, args};
    s->gs = grpc_server_create(&chargs, NULL);
    for (size_t i = 0; i < rpc_nmethods; i++) {
        rpc_methods[i].handle = grpc_server_register_method(
            s->gs, rpc_methods[i].path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!rpc_methods[i].handle) {
            rpc_log(LOG_ERROR, "register_failed", NULL, "method=%s", rpc_methods[i].path);
            return -2;
        }
    }
    s->ncqs = cfg->cq_per_thread ? cfg->cq_threads : 1;
    s->cqs = calloc((size_t)s->ncqs + 1, sizeof *s->cqs);
    s->cq_threads = calloc((size_t)cfg->cq_threads, sizeof *s->cq_threads);
    if (!s->cqs || !s->cq_threads) return -2;
    for (int i = 0; i <= s->ncqs; i++) { /* the last one is for the shutdown notification */
        s->cqs[i] = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->gs, s->cqs[i], NULL);
    }
    grpc_server_credentials *creds = make_credentials(cfg);
    if (!creds) return -1; /* logged */
    int port = grpc_server_add_http2_port(s->gs, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        rpc_log(LOG_ERROR, "listen_failed", "cannot bind the address (in use, or not valid)",
                "addr=%s", cfg->listen);
        return -1;
    }
    grpc_server_start(s->gs);
    for (int q = 0; q < s->ncqs; q++) {
        for (size_t i = 0; i < rpc_nmethods; i++)
            for (int k = 0; k < (rpc_methods[i].run == RUN_INLINE ? 2 : cfg->prepost); k++)
                if (post_request(s, &rpc_methods[i], q)) return -2;
        for (int k = 0; k < GENERIC_POSTS; k++)
            if (post_request(s, NULL, q)) return -2;
    }
    for (int i = 0; i < cfg->cq_threads; i++) {
        void **arg = malloc(2 * sizeof *arg);
        if (!arg) return -2;
        arg[0] = s, arg[1] = s->cqs[i % s->ncqs];
        if (pthread_create(&s->cq_threads[i], NULL, cq_main, arg) != 0) return -2;
    }
    if (cfg->workers > 0) {
        s->workers = calloc((size_t)cfg->workers, sizeof *s->workers);
        if (!s->workers) return -2;
        for (int i = 0; i < cfg->workers; i++)
            if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0) return -2;
    }
    if (cfg->port_file && write_port_file(cfg->port_file, port) != 0) {
        rpc_log(LOG_ERROR, "port_file_failed", strerror(errno), "path=%s", cfg->port_file);
        return -2;
    }
    int query_threads = cfg->workers == 0 || cfg->query_inline ? cfg->cq_threads : cfg->workers;
    rpc_log(LOG_INFO, "listening", NULL,
            "addr=%s port=%d tls=%d auth=%d cq_threads=%d cqs=%d workers=%d query_inline=%d "
            "query_threads=%d max_message_bytes=%ld",
            cfg->listen, port, cfg->tls_cert != NULL, cfg->api_key != NULL, cfg->cq_threads,
            s->ncqs, cfg->workers, cfg->query_inline, query_threads, cfg->max_message_bytes);
    return 0;
}

static void server_stop(rpc_server *s) {
    rpc_config *cfg = &s->cfg;
    atomic_store(&s->draining, 1);
    atomic_store(&s->shutting_down, 1);
    grpc_completion_queue *scq = s->cqs[s->ncqs];
    static int shutdown_tag;
    grpc_server_shutdown_and_notify(s->gs, scq, &shutdown_tag);
    gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(cfg->grace_ms, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(scq, grace, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        rpc_log(LOG_WARN, "shutdown_cancel", "grace period over: cancelling in-flight calls",
                "grace_ms=%d in_flight=%d", cfg->grace_ms, atomic_load(&s->in_flight));
        grpc_server_cancel_all_calls(s->gs);
        grpc_completion_queue_next(scq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    }
    /* The shutdown tag comes before the last batches complete: wait for every
     * context (posted requests come back failed, running calls finish). */
    pthread_mutex_lock(&s->live_mu);
    while (s->live > 0) pthread_cond_wait(&s->live_cv, &s->live_mu);
    pthread_mutex_unlock(&s->live_mu);
    if (s->workers) {
        pthread_mutex_lock(&s->q_mu);
        s->q_stop = 1;
        pthread_cond_broadcast(&s->q_cv);
        pthread_mutex_unlock(&s->q_mu);
        for (int i = 0; i < cfg->workers; i++) pthread_join(s->workers[i], NULL);
    }
    for (int i = 0; i <= s->ncqs; i++) grpc_completion_queue_shutdown(s->cqs[i]);
    for (int i = 0; i < cfg->cq_threads; i++) pthread_join(s->cq_threads[i], NULL);
    while (grpc_completion_queue_next(scq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    for (int i = 0; i <= s->ncqs; i++) grpc_completion_queue_destroy(s->cqs[i]);
    grpc_server_destroy(s->gs);
    free(s->cqs);
    free(s->cq_threads);
    free(s->workers);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
    static rpc_server srv;
    rpc_server *s = &srv;
    int status = parse_options(argc, argv, &s->cfg);
    if (status >= 0) return status;
    rpc_config *cfg = &s->cfg;

    /* Before any thread exists (grpc's included): signals go to sigwait only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    s->start_ns = rpc_now_ns();
    pthread_mutex_init(&s->live_mu, NULL);
    pthread_cond_init(&s->live_cv, NULL);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);

    quarry_options o;
    quarry_options_init(&o);
    o.read_only = cfg->read_only;
    o.create_if_missing = !cfg->read_only;
    o.io = cfg->io;
    uint64_t t0 = rpc_now_ns();
    int rc = quarry_open(cfg->data_dir, &o, &s->db);
    if (rc) {
        rpc_log(LOG_ERROR, "open_failed", quarry_errmsg(), "data=%s code=%s", cfg->data_dir,
                quarry_errstr(rc));
        free(cfg->api_key);
        return 2;
    }
    rpc_log(LOG_INFO, "opened", NULL, "data=%s io=%s ms=%.1f version=%s", cfg->data_dir,
            quarry_io_backend_name(s->db), (double)(rpc_now_ns() - t0) / 1e6, quarry_version());
    if (cfg->demo && (rc = rpc_demo_load(s->db))) {
        rpc_log(LOG_ERROR, "demo_failed", quarry_errmsg(), "code=%s", quarry_errstr(rc));
        quarry_close(s->db);
        free(cfg->api_key);
        return 2;
    }

    rpc_log_route_grpc();
    grpc_init();
    if ((rc = server_start(s)) != 0) {
        status = 2;
        if (rc == -1) { /* nothing was started: undo the setup */
            grpc_server_destroy(s->gs);
            for (int i = 0; s->cqs && i <= s->ncqs; i++) {
                grpc_completion_queue_shutdown(s->cqs[i]);
                while (grpc_completion_queue_next(s->cqs[i], gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                                  NULL)
                           .type != GRPC_QUEUE_SHUTDOWN) {
                }
                grpc_completion_queue_destroy(s->cqs[i]);
            }
            free(s->cqs);
            free(s->cq_threads);
        } else { /* half started (out of threads or memory): leave it to the exit */
            rpc_log(LOG_ERROR, "start_failed", "could not start threads", NULL);
            quarry_close(s->db);
            _exit(2);
        }
    } else {
        int sig = 0;
        sigwait(&sigs, &sig);
        rpc_log(LOG_INFO, "shutdown", NULL, "signal=%s in_flight=%d",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&s->in_flight));
        server_stop(s);
        status = 0;
    }
    grpc_shutdown();

    if ((rc = quarry_sync(s->db)) != 0) {
        rpc_log(LOG_ERROR, "sync_failed", quarry_errmsg(), "code=%s", quarry_errstr(rc));
        status = 2;
    }
    if ((rc = quarry_close(s->db)) != 0) {
        rpc_log(LOG_ERROR, "close_failed", quarry_errmsg(), "code=%s", quarry_errstr(rc));
        status = 2;
    }
    rpc_log(LOG_INFO, "stopped", NULL, "calls=%lu failed=%lu uptime_s=%.1f",
            (unsigned long)atomic_load(&s->calls), (unsigned long)atomic_load(&s->failed),
            (double)(rpc_now_ns() - s->start_ns) / 1e9);
    free(cfg->api_key);
    return status;
}
