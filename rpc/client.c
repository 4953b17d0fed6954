/* SPDX-License-Identifier: MIT */
/*
 * client.c -- the blocking quarryd client (see client.h).
 *
 * A unary call is one batch of six ops (send metadata + message + half
 * close, receive metadata + message + status) on a pluck queue, waited for
 * with the call's deadline. Each client asks for its own subchannel
 * (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL): otherwise every channel of the
 * process to the same target shares one TCP connection, which would make a
 * load generator's "N connections" a single one.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "rpc/client.h"

struct qrpc_client {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    char *auth; /* "Bearer <key>" or NULL */
    int64_t timeout_us;
};

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

int qrpc_set_api_key(qrpc_client *c, const char *key) {
    free(c->auth);
    c->auth = NULL;
    if (!key) return 0;
    size_t n = strlen(key) + 8;
    if (!(c->auth = malloc(n))) return -1;
    snprintf(c->auth, n, "Bearer %s", key);
    return 0;
}

void qrpc_set_timeout(qrpc_client *c, int timeout_ms) {
    qrpc_set_timeout_us(c, (int64_t)timeout_ms * 1000);
}

void qrpc_set_timeout_us(qrpc_client *c, int64_t timeout_us) {
    c->timeout_us = timeout_us > 0 ? timeout_us : 30000000;
}

int qrpc_connect(const char *target, const qrpc_options *o, qrpc_client **out, const char **err) {
    *out = NULL;
    qrpc_client *c = calloc(1, sizeof *c);
    if (!c) {
        *err = "out of memory";
        return -1;
    }
    grpc_init();
    qrpc_set_timeout(c, o ? o->timeout_ms : 0);
    if (o && o->api_key && qrpc_set_api_key(c, o->api_key)) {
        *err = "out of memory";
        goto fail;
    }
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = o && o->max_message_bytes ? (int)o->max_message_bytes : 64 << 20;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[1].value.integer = 1;
    grpc_channel_args chargs = {2, args};
    grpc_channel_credentials *creds;
    if (o && o->tls_ca_file) {
        char *ca = read_all(o->tls_ca_file);
        if (!ca) {
            *err = "cannot read the TLS CA file";
            goto fail;
        }
        creds = grpc_ssl_credentials_create(ca, NULL, NULL, NULL);
        free(ca);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    c->ch = grpc_channel_create(target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (!c->ch || !c->cq) {
        *err = "cannot create the channel";
        goto fail;
    }
    *out = c;
    return 0;
fail:
    qrpc_close(c);
    return -1;
}

void qrpc_close(qrpc_client *c) {
    if (!c) return;
    if (c->ch) grpc_channel_destroy(c->ch);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(c->cq);
    }
    free(c->auth);
    free(c);
    grpc_shutdown();
}

void qrpc_unary_ops(grpc_op ops[6], grpc_metadata *md, size_t nmd, grpc_byte_buffer *send,
                    grpc_metadata_array *md0, grpc_byte_buffer **recv, grpc_metadata_array *md1,
                    grpc_status_code *status, grpc_slice *details) {
    memset(ops, 0, 6 * sizeof *ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = nmd ? md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = md0;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = md1;
    ops[5].data.recv_status_on_client.status = status;
    ops[5].data.recv_status_on_client.status_details = details;
}

int qrpc_call_raw(qrpc_client *c, const char *method, const void *req, size_t req_len,
                  void **resp_bytes, size_t *resp_len, char **msg) {
    if (resp_bytes) *resp_bytes = NULL;
    if (resp_len) *resp_len = 0;
    if (msg) *msg = NULL;
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_micros(c->timeout_us, GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                               grpc_slice_from_static_string(method), NULL,
                                               deadline, NULL);
    grpc_slice s = grpc_slice_from_copied_buffer(req, req_len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    grpc_byte_buffer *recv = NULL;
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_metadata auth;
    memset(&auth, 0, sizeof auth);
    grpc_op ops[6];
    if (c->auth) {
        auth.key = grpc_slice_from_static_string("authorization");
        auth.value = grpc_slice_from_copied_string(c->auth);
    }
    qrpc_unary_ops(ops, &auth, c->auth ? 1 : 0, send, &md_init, &recv, &md_trail, &status,
                   &details);
    int tag;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        status = GRPC_STATUS_INTERNAL;
    } else {
        grpc_completion_queue_pluck(c->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    if (msg) *msg = grpc_slice_to_c_string(details);
    if (status == GRPC_STATUS_OK && recv && resp_bytes) {
        grpc_byte_buffer_reader r;
        if (grpc_byte_buffer_reader_init(&r, recv)) {
            grpc_slice all = grpc_byte_buffer_reader_readall(&r);
            grpc_byte_buffer_reader_destroy(&r);
            size_t n = GRPC_SLICE_LENGTH(all);
            *resp_bytes = malloc(n ? n : 1);
            if (*resp_bytes) memcpy(*resp_bytes, GRPC_SLICE_START_PTR(all), n);
            if (resp_len) *resp_len = n;
            grpc_slice_unref(all);
        }
    }
    if (c->auth) grpc_slice_unref(auth.value);
    if (msg && *msg) { /* gpr_malloc'd: hand the caller a malloc'd copy */
        char *m = strdup(*msg);
        gpr_free(*msg);
        *msg = m;
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
    grpc_byte_buffer_destroy(send);
    if (recv) grpc_byte_buffer_destroy(recv);
    grpc_call_unref(call);
    return (int)status;
}

int qrpc_call(qrpc_client *c, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, char **msg) {
    if (resp) *resp = NULL;
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        if (msg) *msg = strdup("out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    protobuf_c_message_pack(req, buf);
    void *rb = NULL;
    size_t rlen = 0;
    int st = qrpc_call_raw(c, method, buf, n, resp ? &rb : NULL, &rlen, msg);
    free(buf);
    if (st == GRPC_STATUS_OK && resp && resp_desc) {
        *resp = protobuf_c_message_unpack(resp_desc, NULL, rlen, rb);
        if (!*resp) {
            st = GRPC_STATUS_INTERNAL;
            if (msg) {
                free(*msg);
                *msg = strdup("the reply does not decode");
            }
        }
    }
    free(rb);
    return st;
}

const char *qrpc_status_name(int code) {
    static const char *const NAMES[] = {
        "OK",          "CANCELLED",      "UNKNOWN",          "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",  "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL",     "UNAVAILABLE",      "DATA_LOSS",
        "UNAUTHENTICATED"};
    return code >= 0 && (size_t)code < sizeof NAMES / sizeof NAMES[0] ? NAMES[code] : "UNKNOWN";
}
