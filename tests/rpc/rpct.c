/* SPDX-License-Identifier: MIT */
/* rpct.c -- run quarryd for the RPC tests (see rpct.h). */
#define _GNU_SOURCE
#include "rpct.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int rpct_try_start(rpct_server *s, const char *data, const char *const *args,
                   const char *api_key) {
    memset(s, 0, sizeof *s);
    snprintf(s->data, sizeof s->data, "%s", data);
    snprintf(s->log, sizeof s->log, "%s.log", data);
    snprintf(s->portfile, sizeof s->portfile, "%s.port", data);
    unlink(s->portfile);
    const char *argv[64];
    int n = 0;
    argv[n++] = QUARRYD_PATH;
    argv[n++] = "--data";
    argv[n++] = s->data;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = s->portfile;
    argv[n++] = "--grace-ms";
    argv[n++] = "5000";
    for (int i = 0; args && args[i] && n < 62; i++) argv[n++] = args[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) T_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        /* a test that fails (exit) or crashes must not leave its server behind */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *lf = freopen(s->log, "a", stderr);
        FILE *of = freopen("/dev/null", "w", stdout);
        (void)lf, (void)of;
        if (api_key) setenv("QUARRY_API_KEY", api_key, 1);
        else unsetenv("QUARRY_API_KEY");
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    for (int waited = 0; waited < 30000; waited += 10) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        FILE *f = fopen(s->portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &s->port) == 1;
            fclose(f);
            if (ok && s->port > 0) {
                snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
                return -1;
            }
        }
        sleep_ms(10);
    }
    rpct_dump_log(s);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    T_FAIL("quarryd did not start within 30 s");
}

void rpct_start(rpct_server *s, const char *data, const char *const *args, const char *api_key) {
    int st = rpct_try_start(s, data, args, api_key);
    if (st >= 0) {
        rpct_dump_log(s);
        T_FAIL("quarryd exited with status %d during start-up", st);
    }
}

int rpct_stop(rpct_server *s, int sig) {
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    int st = 0;
    if (waitpid(s->pid, &st, 0) != s->pid) T_FAIL("waitpid: %s", strerror(errno));
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void rpct_stop_clean(rpct_server *s) {
    int st = rpct_stop(s, SIGTERM);
    if (st != 0) {
        rpct_dump_log(s);
        T_FAIL("quarryd exited with %d after SIGTERM", st);
    }
}

void rpct_dump_log(const rpct_server *s) {
    FILE *f = fopen(s->log, "r");
    if (!f) return;
    char line[4096];
    fprintf(stderr, "---- %s\n", s->log);
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fprintf(stderr, "----\n");
    fclose(f);
}

int rpct_log_has(const rpct_server *s, const char *needle) {
    FILE *f = fopen(s->log, "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

qrpc_client *rpct_client(const rpct_server *s, const char *api_key) {
    qrpc_options o = {.api_key = api_key, .timeout_ms = 60000};
    qrpc_client *c;
    const char *err;
    if (qrpc_connect(s->addr, &o, &c, &err) != 0) T_FAIL("connect %s: %s", s->addr, err);
    return c;
}

void *rpct_call(const char *file, int line, qrpc_client *cl, const char *method,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                int want, const char *want_in_msg) {
    ProtobufCMessage *resp = NULL;
    char *msg = NULL;
    int st = qrpc_call(cl, method, req, resp_desc, want == ST_OK ? &resp : NULL, &msg);
    if (st != want) {
        fprintf(stderr, "%s:%d: FAIL: %s returned %s (%s), want %s\n", file, line, method,
                qrpc_status_name(st), msg ? msg : "", qrpc_status_name(want));
        exit(1);
    }
    if (want_in_msg && (!msg || !strstr(msg, want_in_msg))) {
        fprintf(stderr, "%s:%d: FAIL: %s: message '%s' lacks '%s'\n", file, line, method,
                msg ? msg : "", want_in_msg);
        exit(1);
    }
    free(msg);
    return resp;
}

Quarry__V1__CollectionStats rpct_stats(qrpc_client *cl, const char *coll) {
    Quarry__V1__StatsRequest rq = QUARRY__V1__STATS_REQUEST__INIT;
    rq.collection = (char *)coll;
    Quarry__V1__StatsResponse *r =
        RPCT_CALL(cl, "Stats", rq, &quarry__v1__stats_response__descriptor, ST_OK);
    T_ASSERT(r->n_collections == 1 && r->collections[0]->stats);
    Quarry__V1__CollectionStats st = *r->collections[0]->stats;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return st;
}

void rpct_raw_start(rpct_raw_call *rc, const char *addr, grpc_channel *ch, const char *method,
                    const ProtobufCMessage *req) {
    memset(rc, 0, sizeof *rc);
    rc->ch = ch;
    if (!ch) {
        grpc_channel_credentials *cr = grpc_insecure_credentials_create();
        rc->ch = grpc_channel_create(addr, cr, NULL);
        grpc_channel_credentials_release(cr);
        rc->own_ch = 1;
    }
    rc->cq = grpc_completion_queue_create_for_pluck(NULL);
    size_t len = protobuf_c_message_get_packed_size(req);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(s));
    rc->send = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    grpc_metadata_array_init(&rc->md0);
    grpc_metadata_array_init(&rc->md1);
    char path[128];
    snprintf(path, sizeof path, "/quarry.v1.Quarry/%s", method);
    grpc_slice ps = grpc_slice_from_copied_string(path);
    rc->call = grpc_channel_create_call(
        rc->ch, NULL, GRPC_PROPAGATE_DEFAULTS, rc->cq, ps, NULL,
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(600, GPR_TIMESPAN)),
        NULL);
    grpc_slice_unref(ps);
    grpc_op ops[6];
    qrpc_unary_ops(ops, NULL, 0, rc->send, &rc->md0, &rc->recv, &rc->md1, &rc->status,
                   &rc->details);
    T_ASSERT(grpc_call_start_batch(rc->call, ops, 6, rc, NULL) == GRPC_CALL_OK);
}

int rpct_raw_wait(rpct_raw_call *rc, long us) {
    if (rc->done) return 1;
    grpc_event ev = grpc_completion_queue_pluck(
        rc->cq, rc,
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(us, GPR_TIMESPAN)),
        NULL);
    if (ev.type == GRPC_OP_COMPLETE) rc->done = 1;
    return rc->done;
}

grpc_status_code rpct_raw_cancel(rpct_raw_call *rc) {
    T_ASSERT(grpc_call_cancel(rc->call, NULL) == GRPC_CALL_OK);
    if (!rpct_raw_wait(rc, 30 * 1000000L)) T_FAIL("a cancelled call did not complete in 30 s");
    grpc_status_code st = rc->status;
    grpc_byte_buffer_destroy(rc->send);
    if (rc->recv) grpc_byte_buffer_destroy(rc->recv);
    grpc_metadata_array_destroy(&rc->md0);
    grpc_metadata_array_destroy(&rc->md1);
    grpc_slice_unref(rc->details);
    grpc_call_unref(rc->call);
    if (rc->own_ch) grpc_channel_destroy(rc->ch);
    grpc_completion_queue_shutdown(rc->cq);
    while (grpc_completion_queue_pluck(rc->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(rc->cq);
    return st;
}
