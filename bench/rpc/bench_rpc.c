/* SPDX-License-Identifier: MIT */
/*
 * bench_rpc -- what the RPC layer costs: Query QPS and latency served by
 * quarryd over loopback gRPC, against the same queries run in-process in the
 * same run, plus Upsert throughput over RPC in batches of 1000.
 *
 *   bench_rpc [--rows 60000] [--dim 128 | --fmnist DIR] [--queries 1000] [--k 10] [--ef 64]
 *             [--seconds 3] [--repeat 3] [--clients 1,4,16,64] [--configs default,...]
 *             [--server NAME=FLAGS] [--no-upsert] [--keep DIR] [--split-cores S]
 *
 * Steps:
 *  1. Build the collection in-process: `rows` vectors (Fashion-MNIST's 60,000
 *     training images when --fmnist names its folder, else clustered random
 *     vectors of --dim) into an HNSW collection (M 16, ef_construction 100),
 *     then close the database (which checkpoints the graph) and copy the
 *     directory: the server gets the copy, the in-process side keeps the
 *     original open, so the two can alternate without restarting the server.
 *  2. In-process: the query set through quarry_query_* (what the Query
 *     handler calls, same k, ef and returned fields: ids and scores) on 1
 *     thread and on as many threads as cores, closed loop: QPS, p50, p99.
 *  3. For each server configuration (--configs, see CONFIGS below, plus any
 *     --server NAME=FLAGS) start quarryd on the copy (a free loopback port);
 *     after a short untimed warm-up, --repeat times: for each client
 *     concurrency C, an in-process run on T = min(C, the server's query
 *     threads) threads, then at once a closed loop of C calls in flight (one
 *     async completion queue; C/8 connections, at least 1) for --seconds.
 *     The ratio of each pair is served QPS / in-process QPS; the tables give
 *     medians over the repeats, plus the CPU time per call of the server
 *     (/proc/PID/stat) and of this process (the load generator, getrusage),
 *     and the in-process CPU time per query. Then an open loop at half of the
 *     best configuration's median peak (calls sent at a fixed rate whatever
 *     the replies), --repeat times: p50, p99.
 *  4. Upsert over RPC (skipped with --no-upsert): batches of 1000 new rows
 *     into a fresh collection (durability sync) from 1 and 4 concurrent
 *     clients, and the same batches in-process: rows/s.
 * Client and server share the machine's cores, so served QPS includes the
 * load generator's own CPU cost: it is a lower bound for a remote client.
 * The CPU columns say how much of each call is the server's and how much the
 * client's.
 *
 * --split-cores S gives the server the cores 0..S-1 and the load generator
 * the others (CPU affinity): quarryd and the in-process runs share cores
 * 0..S-1, so each pair compares the same cores doing the same queries, once
 * behind gRPC and once in-process, while the client's own cost runs
 * elsewhere, as it does for a remote client. On 2 cores, S = 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "quarry.h"
#include "quarry.pb-c.h"
#include "rpc/client.h"

/* ------------------------------------------------------------------ options */

#define MAX_REPEAT 15
#define MAX_CONFIGS 16

typedef struct opts {
    uint32_t rows, dim, nq, k, ef;
    double seconds;
    int repeat, no_upsert;
    int split; /* --split-cores: the server's cores (0 = no split) */
    const char *fmnist, *keep;
    int clients[16], nclients;
    char configs[256];
} opts;

/* Server configurations compared (quarryd flags); --server adds more. */
typedef struct server_config {
    const char *name, *flags;
} server_config;
static server_config CONFIGS[MAX_CONFIGS] = {
    {"default", ""},
    {"workers", "--query-inline 0"},
    {"inline", "--workers 0"},
    {"percq-inline", "--cq-per-thread --workers 0"},
    {"1cq-4w", "--cq-threads 1 --workers 4 --query-inline 0"},
    {"2cq-8w", "--cq-threads 2 --workers 8 --query-inline 0"},
};
static size_t nconfigs = 6;

static const char *config_flags(const char *name) {
    for (size_t c = 0; c < nconfigs; c++)
        if (!strcmp(CONFIGS[c].name, name)) return CONFIGS[c].flags;
    return NULL;
}

/* CPU seconds used so far by this process (all threads). */
static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* CPU seconds used so far by process `pid` (utime + stime, clock ticks). */
static double proc_cpu_s(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return NAN;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Pins the calling thread (or a child before exec: the process) to cores
 * first..first+n-1. */
static void pin_cores(int first, int n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = first; c < first + n; c++) CPU_SET(c, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
}

static int g_split; /* --split-cores, for the threads that pin themselves */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float urand(uint64_t *s) {
    return (float)((double)(splitmix(s) >> 11) / 9007199254740992.0);
}

#define CHECK(call)                                                                    \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_) {                                                                     \
            fprintf(stderr, "%s: %s: %s\n", #call, quarry_errstr(rc_), quarry_errmsg()); \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* ------------------------------------------------------------------ data */

/* Fashion-MNIST training images (idx3, gzip'd) as floats in [0, 1]. */
static float *load_fmnist(const char *dir, uint32_t *n, uint32_t *dim) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s/train-images-idx3-ubyte.gz'", dir);
    FILE *f = popen(cmd, "r");
    unsigned char hdr[16];
    if (!f || fread(hdr, 1, 16, f) != 16) {
        fprintf(stderr, "cannot read %s/train-images-idx3-ubyte.gz\n", dir);
        exit(1);
    }
    uint32_t count = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | hdr[6] << 8 | hdr[7];
    uint32_t d = 28 * 28;
    if (*n > count) *n = count;
    float *v = malloc((size_t)*n * d * sizeof *v);
    unsigned char *img = malloc(d);
    for (uint32_t i = 0; i < *n; i++) {
        if (fread(img, 1, d, f) != d) {
            fprintf(stderr, "short read in Fashion-MNIST\n");
            exit(1);
        }
        for (uint32_t j = 0; j < d; j++) v[(size_t)i * d + j] = (float)img[j] / 255.0f;
    }
    free(img);
    pclose(f);
    *dim = d;
    return v;
}

/* Clustered random vectors: 100 centres, each row = centre + noise. */
static float *gen_vectors(uint32_t n, uint32_t dim, uint64_t seed) {
    float *c = malloc(100 * (size_t)dim * sizeof *c), *v = malloc((size_t)n * dim * sizeof *v);
    for (size_t i = 0; i < 100 * (size_t)dim; i++) c[i] = urand(&seed) * 2 - 1;
    for (uint32_t i = 0; i < n; i++) {
        const float *cc = c + (splitmix(&seed) % 100) * dim;
        for (uint32_t j = 0; j < dim; j++)
            v[(size_t)i * dim + j] = cc[j] + (urand(&seed) - 0.5f) * 0.6f;
    }
    free(c);
    return v;
}

/* ------------------------------------------------------------------ latency stats */

typedef struct lat {
    double *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, double x) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = x;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(lat *l, double p) {
    if (!l->n) return NAN;
    qsort(l->v, l->n, sizeof *l->v, cmpd);
    size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
    return l->v[i];
}

/* ------------------------------------------------------------------ in-process */

typedef struct inproc {
    quarry_coll *coll;
    const float *q;
    uint32_t nq, dim, k, ef;
    double until;
    lat l;
    uint64_t done;
    int id;
} inproc;

static void *inproc_main(void *arg) {
    inproc *w = arg;
    if (g_split) pin_cores(0, g_split); /* the server's cores */
    uint32_t i = (uint32_t)w->id * 7919u;
    while (now_s() < w->until) {
        quarry_query *q;
        quarry_result *r;
        double t0 = now_s();
        CHECK(quarry_query_new(w->coll, &q));
        CHECK(quarry_query_vector(q, w->q + (size_t)(i % w->nq) * w->dim, w->dim, 0, w->ef, 0));
        CHECK(quarry_query_limit(q, w->k, 0));
        CHECK(quarry_query_run(q, &r));
        quarry_result_free(r);
        quarry_query_free(q);
        lat_add(&w->l, now_s() - t0);
        w->done++;
        i++;
    }
    return NULL;
}

/* Closed loop on `threads` threads; *cpu_us = CPU microseconds per query. */
static void run_inproc(quarry_coll *coll, const float *q, const opts *o, int threads,
                       double *qps, double *p50, double *p99, double *cpu_us) {
    inproc w[64];
    pthread_t th[64];
    lat all = {0};
    uint64_t done = 0;
    double t0 = now_s(), c0 = self_cpu_s();
    for (int t = 0; t < threads; t++) {
        w[t] = (inproc){coll, q, o->nq, o->dim, o->k, o->ef, t0 + o->seconds, {0}, 0, t};
        pthread_create(&th[t], NULL, inproc_main, &w[t]);
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        for (size_t i = 0; i < w[t].l.n; i++) lat_add(&all, w[t].l.v[i]);
        free(w[t].l.v);
        done += w[t].done;
    }
    double secs = now_s() - t0;
    *qps = (double)done / secs;
    *cpu_us = done ? (self_cpu_s() - c0) / (double)done * 1e6 : NAN;
    *p50 = pct(&all, 0.5) * 1e3;
    *p99 = pct(&all, 0.99) * 1e3;
    free(all.v);
}

/* ------------------------------------------------------------------ quarryd */

/* Starts quarryd on `data` with `flags`; *port is its port, *query_threads
 * the number of threads that run Query handlers (from its "listening" line). */
static pid_t start_server(const char *data, const char *flags, int *port, int *query_threads) {
    char portfile[4200], log[4200];
    snprintf(portfile, sizeof portfile, "%s.port", data);
    snprintf(log, sizeof log, "%s.log", data);
    unlink(portfile);
    unlink(log);
    char *argv[40];
    int n = 0;
    argv[n++] = QUARRYD_PATH;
    argv[n++] = "--data";
    argv[n++] = (char *)data;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    argv[n++] = "--log-level";
    argv[n++] = "info";
    char *fl = strdup(flags), *save = NULL;
    for (char *tok = strtok_r(fl, " ", &save); tok && n < 38; tok = strtok_r(NULL, " ", &save))
        argv[n++] = tok;
    argv[n] = NULL;
    fflush(NULL); /* the child must not inherit unwritten output */
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */
        if (g_split) pin_cores(0, g_split);
        if (!freopen(log, "a", stderr) || !freopen("/dev/null", "w", stdout)) _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    free(fl);
    for (int i = 0; i < 120000; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", port) == 1;
            fclose(f);
            if (ok) {
                *query_threads = 0;
                FILE *lf = fopen(log, "r");
                char line[1024];
                while (lf && fgets(line, sizeof line, lf)) {
                    const char *qt = strstr(line, " query_threads=");
                    if (strstr(line, "event=listening") && qt)
                        *query_threads = atoi(qt + strlen(" query_threads="));
                }
                if (lf) fclose(lf);
                if (*query_threads <= 0) *query_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
                return pid;
            }
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) break;
        usleep(1000);
    }
    fprintf(stderr, "quarryd did not start (see %s)\n", log);
    exit(1);
}

static void stop_server(pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* ------------------------------------------------------------------ async load generator */

typedef struct slot {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md0, md1;
    grpc_status_code status;
    grpc_slice details;
    double t0;
    int busy;
} slot;

typedef struct loadgen {
    grpc_channel **ch;
    int nch;
    grpc_completion_queue *cq;
    grpc_slice *reqs; /* pre-packed requests */
    size_t nreqs, next;
    const char *method;
    uint64_t errors, completed;
    int last_error;
} loadgen;

static void lg_start(loadgen *g, slot *s, int idx) {
    memset(s, 0, sizeof *s);
    grpc_slice req = g->reqs[g->next++ % g->nreqs];
    grpc_slice_ref(req);
    s->send = grpc_raw_byte_buffer_create(&req, 1);
    grpc_slice_unref(req);
    grpc_metadata_array_init(&s->md0);
    grpc_metadata_array_init(&s->md1);
    s->call = grpc_channel_create_call(
        g->ch[idx % g->nch], NULL, GRPC_PROPAGATE_DEFAULTS, g->cq,
        grpc_slice_from_static_string(g->method), NULL,
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(60, GPR_TIMESPAN)),
        NULL);
    grpc_op ops[6];
    qrpc_unary_ops(ops, NULL, 0, s->send, &s->md0, &s->recv, &s->md1, &s->status,
                   &s->details);
    s->t0 = now_s();
    s->busy = 1;
    if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
        fprintf(stderr, "start_batch failed\n");
        exit(1);
    }
}

static void lg_finish(loadgen *g, slot *s) {
    g->completed++;
    if (s->status != GRPC_STATUS_OK) {
        g->errors++;
        g->last_error = s->status;
    }
    grpc_byte_buffer_destroy(s->send);
    if (s->recv) grpc_byte_buffer_destroy(s->recv);
    grpc_metadata_array_destroy(&s->md0);
    grpc_metadata_array_destroy(&s->md1);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    s->busy = 0;
}

static void lg_open(loadgen *g, int port, int nch, grpc_slice *reqs, size_t nreqs,
                    const char *method) {
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    memset(g, 0, sizeof *g);
    grpc_arg a[2];
    a[0].type = GRPC_ARG_INTEGER, a[0].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
    a[0].value.integer = 1;
    a[1].type = GRPC_ARG_INTEGER, a[1].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
    a[1].value.integer = 64 << 20;
    grpc_channel_args args = {2, a};
    g->nch = nch;
    g->ch = calloc((size_t)nch, sizeof *g->ch);
    for (int i = 0; i < nch; i++) {
        grpc_channel_credentials *cr = grpc_insecure_credentials_create();
        g->ch[i] = grpc_channel_create(target, cr, &args);
        grpc_channel_credentials_release(cr);
    }
    g->cq = grpc_completion_queue_create_for_next(NULL);
    g->reqs = reqs, g->nreqs = nreqs, g->method = method;
}

static void lg_close(loadgen *g) {
    for (int i = 0; i < g->nch; i++) grpc_channel_destroy(g->ch[i]);
    free(g->ch);
    grpc_completion_queue_shutdown(g->cq);
    while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(g->cq);
}

/*
 * Closed loop with `conc` calls in flight (rate <= 0), or an open loop sending
 * `rate` calls per second (at most 1024 in flight). Latencies of calls that
 * complete after `warm` seconds are kept.
 */
static void lg_run(loadgen *g, int conc, double rate, double seconds, double *qps, double *p50,
                   double *p99) {
    int nslots = rate > 0 ? 1024 : conc;
    slot *slots = calloc((size_t)nslots, sizeof *slots);
    lat l = {0};
    double warm = 0.3, t0 = now_s(), tend = t0 + warm + seconds, next_send = t0;
    uint64_t done = 0;
    int inflight = 0, free_hint = 0;
    if (rate <= 0)
        for (int i = 0; i < conc; i++) lg_start(g, &slots[i], i), inflight++;
    for (;;) {
        double now = now_s();
        if (rate > 0 && now < tend) {
            while (next_send <= now) { /* calls due by now, whatever the replies */
                int i = free_hint;
                while (i < nslots && slots[i].busy) i++;
                if (i >= nslots)
                    for (i = 0; i < nslots && slots[i].busy; i++) {
                    }
                if (i < nslots) lg_start(g, &slots[i], i), inflight++, free_hint = i + 1;
                next_send += 1.0 / rate;
            }
        }
        if (inflight == 0 && now >= tend) break;
        double wait_us = rate > 0 ? (next_send - now_s()) * 1e6 : 100000;
        if (wait_us < 0) wait_us = 0;
        gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_micros((int64_t)wait_us, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(g->cq, dl, NULL);
        if (ev.type != GRPC_OP_COMPLETE) continue;
        slot *s = ev.tag;
        double t = now_s();
        if (t > t0 + warm && t <= tend) {
            lat_add(&l, t - s->t0);
            done++;
        }
        lg_finish(g, s);
        inflight--;
        if (rate <= 0 && t < tend) lg_start(g, s, (int)(s - slots)), inflight++;
    }
    *qps = (double)done / seconds;
    *p50 = pct(&l, 0.5) * 1e3;
    *p99 = pct(&l, 0.99) * 1e3;
    free(l.v);
    free(slots);
}

/* ------------------------------------------------------------------ upserts */

static grpc_slice pack_upsert(const char *coll, const float *v, uint32_t nv, uint32_t dim,
                              uint32_t first, uint32_t n) {
    Quarry__V1__Row *rows = calloc(n, sizeof *rows);
    Quarry__V1__Row **rp = calloc(n, sizeof *rp);
    char (*ids)[24] = calloc(n, sizeof *ids);
    for (uint32_t i = 0; i < n; i++) {
        quarry__v1__row__init(&rows[i]);
        snprintf(ids[i], sizeof ids[i], "u%u", first + i);
        rows[i].id = ids[i];
        rows[i].vector = (float *)v + (size_t)((first + i) % nv) * dim;
        rows[i].n_vector = dim;
        rp[i] = &rows[i];
    }
    Quarry__V1__UpsertRequest rq = QUARRY__V1__UPSERT_REQUEST__INIT;
    rq.collection = (char *)coll;
    rq.rows = rp;
    rq.n_rows = n;
    size_t len = protobuf_c_message_get_packed_size(&rq.base);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(&rq.base, GRPC_SLICE_START_PTR(s));
    free(rows);
    free(rp);
    free(ids);
    return s;
}

/* ------------------------------------------------------------------ main */

static void parse_list(const char *s, int *out, int *n) {
    *n = 0;
    char *d = strdup(s);
    for (char *t = strtok(d, ","); t && *n < 16; t = strtok(NULL, ",")) out[(*n)++] = atoi(t);
    free(d);
}

static double med(const double *v, int n) {
    double t[MAX_REPEAT];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmpd);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* One (configuration, concurrency) point over the repeats. */
typedef struct point {
    double qps[MAX_REPEAT], p50[MAX_REPEAT], p99[MAX_REPEAT], in_qps[MAX_REPEAT],
        ratio[MAX_REPEAT], srv_us[MAX_REPEAT], cli_us[MAX_REPEAT], in_us[MAX_REPEAT];
    int in_threads;
} point;

/* A served closed or open loop with the CPU time per call of server and client. */
static void served_run(int port, pid_t pid, int conc, int nch, double rate, const opts *o,
                       grpc_slice *reqs, double *qps, double *p50, double *p99, double *srv_us,
                       double *cli_us) {
    loadgen g;
    lg_open(&g, port, nch, reqs, o->nq, "/quarry.v1.Quarry/Query");
    double s0 = proc_cpu_s(pid), c0 = self_cpu_s();
    lg_run(&g, conc, rate, o->seconds, qps, p50, p99);
    double calls = (double)g.completed; /* all of them: the CPU times cover all */
    *srv_us = (proc_cpu_s(pid) - s0) / calls * 1e6;
    *cli_us = (self_cpu_s() - c0) / calls * 1e6;
    if (g.errors)
        fprintf(stderr, "%lu errors (status %d)\n", (unsigned long)g.errors, g.last_error);
    lg_close(&g);
}

int main(int argc, char **argv) {
    opts o = {.rows = 60000, .dim = 128, .nq = 1000, .k = 10, .ef = 64, .seconds = 3,
              .repeat = 3};
    parse_list("1,4,16,64", o.clients, &o.nclients);
    snprintf(o.configs, sizeof o.configs, "default,workers,inline");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--rows") && v) o.rows = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--dim") && v) o.dim = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--queries") && v) o.nq = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--k") && v) o.k = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--ef") && v) o.ef = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--seconds") && v) o.seconds = atof(v), i++;
        else if (!strcmp(a, "--repeat") && v) o.repeat = atoi(v), i++;
        else if (!strcmp(a, "--fmnist") && v) o.fmnist = v, i++;
        else if (!strcmp(a, "--keep") && v) o.keep = v, i++;
        else if (!strcmp(a, "--no-upsert")) o.no_upsert = 1;
        else if (!strcmp(a, "--split-cores") && v) o.split = atoi(v), i++;
        else if (!strcmp(a, "--clients") && v) parse_list(v, o.clients, &o.nclients), i++;
        else if (!strcmp(a, "--configs") && v) snprintf(o.configs, sizeof o.configs, "%s", v), i++;
        else if (!strcmp(a, "--server") && v && strchr(v, '=') && nconfigs < MAX_CONFIGS) {
            char *d = strdup(v), *eq = strchr(d, '=');
            *eq = '\0';
            CONFIGS[nconfigs++] = (server_config){d, eq + 1};
            i++;
        } else {
            fprintf(stderr,
                    "usage: bench_rpc [--rows N] [--dim D | --fmnist DIR] [--queries N] [--k K]\n"
                    "                 [--ef EF] [--seconds S] [--repeat R] [--clients 1,4,16,64]\n"
                    "                 [--configs default,workers,inline,percq-inline,1cq-4w,2cq-8w]\n"
                    "                 [--server NAME=FLAGS]... [--no-upsert] [--keep DIR]\n"
                    "                 [--split-cores S]\n");
            return 1;
        }
    }
    if (o.repeat < 1 || o.repeat > MAX_REPEAT || o.nclients < 1) {
        fprintf(stderr, "--repeat wants 1..%d\n", MAX_REPEAT);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    char dir[4096], data[4200], srv_data[4200];
    if (o.keep) snprintf(dir, sizeof dir, "%s", o.keep), mkdir(dir, 0755);
    else snprintf(dir, sizeof dir, "%s/quarry-bench-rpc-XXXXXX",
                  getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!o.keep && !mkdtemp(dir)) return perror("mkdtemp"), 1;
    snprintf(data, sizeof data, "%s/db", dir);
    snprintf(srv_data, sizeof srv_data, "%s/db-served", dir);

    /* 1. data and the collection */
    float *base = o.fmnist ? load_fmnist(o.fmnist, &o.rows, &o.dim)
                           : gen_vectors(o.rows, o.dim, 42);
    float *queries = malloc((size_t)o.nq * o.dim * sizeof *queries);
    uint64_t seed = 7;
    for (uint32_t i = 0; i < o.nq; i++) { /* a base row plus a little noise */
        const float *b = base + (splitmix(&seed) % o.rows) * o.dim;
        for (uint32_t j = 0; j < o.dim; j++)
            queries[(size_t)i * o.dim + j] = b[j] + (urand(&seed) - 0.5f) * 0.05f;
    }
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("# bench_rpc: %u rows x %u dims (%s), HNSW M 16 efC 100, k %u, ef %u, %d cores, "
           "%d repeats of %.1f s\n",
           o.rows, o.dim, o.fmnist ? "Fashion-MNIST" : "generated", o.k, o.ef, cores, o.repeat,
           o.seconds);
    if (o.split) {
        if (o.split < 1 || o.split >= cores) {
            fprintf(stderr, "--split-cores wants 1..%d on this machine\n", cores - 1);
            return 1;
        }
        g_split = o.split;
        pin_cores(o.split, cores - o.split); /* this thread: the load generator and gRPC's */
        printf("# split cores: quarryd and the in-process runs on cores 0..%d, the load "
               "generator on %d..%d\n",
               o.split - 1, o.split, cores - 1);
    }
    quarry_db *db;
    quarry_coll *coll;
    CHECK(quarry_open(data, NULL, &db));
    if (quarry_collection_open(db, "bench", &coll) != QUARRY_OK) {
        quarry_collection_config cfg;
        quarry_collection_config_init(&cfg);
        cfg.dim = o.dim;
        cfg.index = QUARRY_INDEX_HNSW;
        cfg.hnsw_ef_construction = 100;
        cfg.durability = QUARRY_DURABILITY_NONE;
        CHECK(quarry_collection_create(db, "bench", &cfg, &coll));
        double t0 = now_s();
        quarry_batch *b;
        CHECK(quarry_batch_new(coll, &b));
        for (uint32_t i = 0; i < o.rows; i++) {
            char id[16];
            snprintf(id, sizeof id, "%u", i);
            quarry_row r = {.id = id, .vector = base + (size_t)i * o.dim, .dim = o.dim};
            CHECK(quarry_batch_upsert(b, &r));
            if ((i + 1) % 5000 == 0 || i + 1 == o.rows) CHECK(quarry_batch_commit(b));
        }
        quarry_batch_free(b);
        printf("# built the collection in %.1f s\n", now_s() - t0);
    }
    quarry_collection_close(coll);
    CHECK(quarry_close(db)); /* checkpoints the graph */
    {
        char cmd[3 * sizeof data + 32];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", srv_data, data, srv_data);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot copy %s\n", data);
            return 1;
        }
    }
    CHECK(quarry_open(data, NULL, &db));
    CHECK(quarry_collection_open(db, "bench", &coll));

    /* 2. in-process */
    int ip_cores = o.split ? o.split : cores;
    int tcounts[2] = {1, ip_cores < 64 ? ip_cores : 64};
    printf("\n## In-process (quarry_query_run), closed loop\n\n");
    printf("| threads | QPS | p50 ms | p99 ms | CPU us/query |\n|---:|---:|---:|---:|---:|\n");
    for (int t = 0; t < 2; t++) {
        double q, p50, p99, cpu;
        run_inproc(coll, queries, &o, tcounts[t], &q, &p50, &p99, &cpu);
        printf("| %d | %.0f | %.3f | %.3f | %.1f |\n", tcounts[t], q, p50, p99, cpu);
    }
    fflush(stdout);

    /* 3. served queries */
    grpc_init();
    grpc_slice *reqs = malloc(o.nq * sizeof *reqs);
    for (uint32_t i = 0; i < o.nq; i++) {
        Quarry__V1__QueryRequest rq = QUARRY__V1__QUERY_REQUEST__INIT;
        Quarry__V1__VectorClause vc = QUARRY__V1__VECTOR_CLAUSE__INIT;
        vc.vector = queries + (size_t)i * o.dim;
        vc.n_vector = o.dim;
        vc.ef = o.ef;
        rq.collection = "bench";
        rq.vector = &vc;
        rq.k = o.k;
        size_t len = protobuf_c_message_get_packed_size(&rq.base);
        reqs[i] = grpc_slice_malloc(len);
        protobuf_c_message_pack(&rq.base, GRPC_SLICE_START_PTR(reqs[i]));
    }
    printf("\n## Served by quarryd over loopback gRPC (C async client), closed loop\n\n");
    printf("Medians of %d repeats. Each served run follows at once an in-process run on\n"
           "T = min(clients, the server's query threads) threads; ratio = median of the\n"
           "per-pair ratios. CPU: microseconds of CPU per call in quarryd (srv) and in the\n"
           "load generator (cli), and per query in-process (in); in/srv is the share of the\n"
           "server's CPU that is engine work, i.e. the served/in-process QPS ratio of a\n"
           "CPU-bound server whose clients run elsewhere.\n\n",
           o.repeat);
    printf("| server config | clients | QPS | p50 ms | p99 ms | in-process QPS (T) | ratio | "
           "srv us | cli us | in us | in/srv |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double best_qps = 0;
    char best_cfg[64] = "default";
    char summary[MAX_CONFIGS][160];
    int nsummary = 0;
    char *cfgs = strdup(o.configs), *save = NULL;
    for (char *name = strtok_r(cfgs, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const char *flags = config_flags(name);
        if (!flags) {
            fprintf(stderr, "unknown config %s\n", name);
            continue;
        }
        int port, qthreads;
        pid_t pid = start_server(srv_data, flags, &port, &qthreads);
        { /* warm-up (connections, page faults, caches) */
            opts w = o;
            w.seconds = 0.5;
            double a, b, c, d, e;
            served_run(port, pid, 16, 2, 0, &w, reqs, &a, &b, &c, &d, &e);
        }
        point pts[16];
        memset(pts, 0, sizeof pts);
        for (int r = 0; r < o.repeat; r++) {
            for (int ci = 0; ci < o.nclients; ci++) {
                point *p = &pts[ci];
                int conc = o.clients[ci], nch = conc / 8 > 0 ? conc / 8 : 1;
                int t = conc < qthreads ? conc : qthreads;
                double d50, d99;
                p->in_threads = t;
                run_inproc(coll, queries, &o, t, &p->in_qps[r], &d50, &d99, &p->in_us[r]);
                served_run(port, pid, conc, nch, 0, &o, reqs, &p->qps[r], &p->p50[r], &p->p99[r],
                           &p->srv_us[r], &p->cli_us[r]);
                p->ratio[r] = p->qps[r] / p->in_qps[r];
            }
        }
        double cfg_best = 0, cfg_ratio = 0;
        int cfg_c = 0;
        for (int ci = 0; ci < o.nclients; ci++) {
            point *p = &pts[ci];
            int n = o.repeat;
            double q = med(p->qps, n);
            printf("| %s | %d | %.0f | %.3f | %.3f | %.0f (%d) | %.2f | %.0f | %.0f | %.0f | %.2f "
                   "|\n",
                   name, o.clients[ci], q, med(p->p50, n), med(p->p99, n), med(p->in_qps, n),
                   p->in_threads, med(p->ratio, n), med(p->srv_us, n), med(p->cli_us, n),
                   med(p->in_us, n), med(p->in_us, n) / med(p->srv_us, n));
            if (q > cfg_best) cfg_best = q, cfg_ratio = med(p->ratio, n), cfg_c = o.clients[ci];
        }
        fflush(stdout);
        snprintf(summary[nsummary++], sizeof summary[0],
                 "# %s: peak median QPS %.0f at %d clients, ratio %.2f", name, cfg_best, cfg_c,
                 cfg_ratio);
        if (cfg_best > best_qps) {
            best_qps = cfg_best;
            snprintf(best_cfg, sizeof best_cfg, "%s", name);
        }
        stop_server(pid);
    }
    free(cfgs);
    quarry_collection_close(coll);
    CHECK(quarry_close(db));

    /* open loop at half the best served QPS, on the best configuration */
    int port, qthreads;
    pid_t pid = start_server(srv_data, config_flags(best_cfg), &port, &qthreads);
    double ol50[MAX_REPEAT], ol99[MAX_REPEAT], olq[MAX_REPEAT], ols[MAX_REPEAT], olc[MAX_REPEAT];
    {
        opts w = o;
        w.seconds = 0.5;
        double a, b, c, d, e;
        served_run(port, pid, 16, 2, 0, &w, reqs, &a, &b, &c, &d, &e);
    }
    printf("\n## Open loop at half the peak (%s, %.0f calls/s offered, 4 connections)\n\n",
           best_cfg, best_qps / 2);
    printf("| repeat | served QPS | p50 ms | p99 ms | srv us | cli us |\n"
           "|---:|---:|---:|---:|---:|---:|\n");
    for (int r = 0; r < o.repeat; r++) {
        served_run(port, pid, 0, 4, best_qps / 2, &o, reqs, &olq[r], &ol50[r], &ol99[r], &ols[r],
                   &olc[r]);
        printf("| %d | %.0f | %.3f | %.3f | %.0f | %.0f |\n", r + 1, olq[r], ol50[r], ol99[r],
               ols[r], olc[r]);
        fflush(stdout);
    }
    printf("| median | %.0f | %.3f | %.3f | %.0f | %.0f |\n", med(olq, o.repeat),
           med(ol50, o.repeat), med(ol99, o.repeat), med(ols, o.repeat), med(olc, o.repeat));
    fflush(stdout);

    /* 4. upserts over RPC: batches of 1000 into a fresh collection (sync) */
    if (!o.no_upsert) {
        printf("\n## Upsert, batches of 1000 rows (durability sync)\n\n");
        printf("| path | writers | rows/s | p50 ms/batch | p99 ms/batch |\n");
        printf("|---|---:|---:|---:|---:|\n");
        {
            char target[64];
            snprintf(target, sizeof target, "127.0.0.1:%d", port);
            qrpc_client *cl;
            const char *err;
            if (qrpc_connect(target, NULL, &cl, &err) != 0) {
                fprintf(stderr, "connect: %s\n", err);
                return 1;
            }
            Quarry__V1__DropCollectionRequest dr = QUARRY__V1__DROP_COLLECTION_REQUEST__INIT;
            dr.name = "ingest";
            dr.if_exists = 1;
            char *msg = NULL;
            if (qrpc_call(cl, "/quarry.v1.Quarry/DropCollection", &dr.base, NULL, NULL, &msg)) {
                fprintf(stderr, "DropCollection: %s\n", msg);
                return 1;
            }
            free(msg);
            Quarry__V1__CreateCollectionRequest cr = QUARRY__V1__CREATE_COLLECTION_REQUEST__INIT;
            Quarry__V1__CollectionConfig cfg = QUARRY__V1__COLLECTION_CONFIG__INIT;
            cfg.dim = o.dim;
            cfg.index = QUARRY__V1__INDEX_KIND__INDEX_HNSW;
            cfg.hnsw_ef_construction = 100;
            cr.name = "ingest";
            cr.config = &cfg;
            msg = NULL;
            if (qrpc_call(cl, "/quarry.v1.Quarry/CreateCollection", &cr.base, NULL, NULL, &msg)) {
                fprintf(stderr, "CreateCollection: %s\n", msg);
                return 1;
            }
            free(msg);
            qrpc_close(cl);
        }
        uint32_t nb = 60; /* distinct batches (60k rows) cycled over */
        grpc_slice *ups = malloc(nb * sizeof *ups);
        for (uint32_t b = 0; b < nb; b++)
            ups[b] = pack_upsert("ingest", base, o.rows, o.dim, b * 1000, 1000);
        int writers[2] = {1, 4};
        for (int w = 0; w < 2; w++) {
            loadgen g;
            double qps, p50, p99;
            lg_open(&g, port, writers[w], ups, nb, "/quarry.v1.Quarry/Upsert");
            lg_run(&g, writers[w], 0, o.seconds, &qps, &p50, &p99);
            if (g.errors) fprintf(stderr, "upsert: %lu errors (status %d)\n",
                                  (unsigned long)g.errors, g.last_error);
            lg_close(&g);
            printf("| RPC | %d | %.0f | %.1f | %.1f |\n", writers[w], qps * 1000, p50, p99);
            fflush(stdout);
        }
        stop_server(pid);
        pid = 0;
        for (uint32_t b = 0; b < nb; b++) grpc_slice_unref(ups[b]);
        free(ups);

        /* the same batches in-process, one writer, into another fresh collection */
        CHECK(quarry_open(data, NULL, &db));
        quarry_collection_config cfg;
        quarry_collection_config_init(&cfg);
        cfg.dim = o.dim;
        cfg.index = QUARRY_INDEX_HNSW;
        cfg.hnsw_ef_construction = 100;
        quarry_collection_drop(db, "ingest_local");
        CHECK(quarry_collection_create(db, "ingest_local", &cfg, &coll));
        quarry_batch *bt;
        CHECK(quarry_batch_new(coll, &bt));
        lat l = {0};
        double t0 = now_s();
        uint32_t rows = 0;
        while (now_s() - t0 < o.seconds) {
            double tb = now_s();
            for (uint32_t i = 0; i < 1000; i++, rows++) {
                char id[24];
                snprintf(id, sizeof id, "u%u", rows);
                quarry_row r = {.id = id, .vector = base + (size_t)(rows % o.rows) * o.dim,
                                .dim = o.dim};
                CHECK(quarry_batch_upsert(bt, &r));
            }
            CHECK(quarry_batch_commit(bt));
            lat_add(&l, now_s() - tb);
        }
        double secs = now_s() - t0;
        printf("| in-process | 1 | %.0f | %.1f | %.1f |\n", rows / secs, pct(&l, 0.5) * 1e3,
               pct(&l, 0.99) * 1e3);
        free(l.v);
        quarry_batch_free(bt);
        CHECK(quarry_collection_drop(db, "ingest_local"));
        quarry_collection_close(coll);
        CHECK(quarry_close(db));
    }
    if (pid) stop_server(pid);
    printf("\n");
    for (int i = 0; i < nsummary; i++) printf("%s\n", summary[i]);
    printf("# open loop at half of %s's peak: p99 %.3f ms (median of %d)\n", best_cfg,
           med(ol99, o.repeat), o.repeat);
    for (uint32_t i = 0; i < o.nq; i++) grpc_slice_unref(reqs[i]);
    free(reqs);
    grpc_shutdown();
    free(base);
    free(queries);
    if (!o.keep) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
