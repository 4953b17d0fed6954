/* SPDX-License-Identifier: MIT */
/*
 * client.h -- a small blocking C client for quarryd on the gRPC C core API,
 * used by `quarry --remote`, the RPC tests and the load generator.
 *
 * One qrpc_client is one channel (its own TCP connection) and one pluck
 * completion queue; use it from one thread at a time. Messages are the
 * protobuf-c types generated from rpc/proto/quarry/v1/quarry.proto.
 */
#ifndef QUARRY_RPC_CLIENT_H
#define QUARRY_RPC_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct qrpc_client qrpc_client;

typedef struct qrpc_options {
    const char *api_key;     /* sent as 'authorization: Bearer <key>'; NULL = none */
    const char *tls_ca_file; /* PEM roots: connect with TLS; NULL = plaintext */
    int timeout_ms;          /* per call; 0 = 30 s */
    long max_message_bytes;  /* receive limit; 0 = 64 MiB */
} qrpc_options;

/* Calls grpc_init; qrpc_close calls grpc_shutdown. target: HOST:PORT or
 * unix:PATH. Returns 0, or -1 with *err (static text) set. */
int qrpc_connect(const char *target, const qrpc_options *opts, qrpc_client **out,
                 const char **err);
void qrpc_close(qrpc_client *c);

/*
 * One unary call: "/quarry.v1.Quarry/Query" etc. Returns the gRPC status code
 * (0 = OK). On OK and resp_desc != NULL, *resp is the decoded reply (free with
 * protobuf_c_message_free_unpacked); a reply that does not decode gives
 * status 13 (INTERNAL). *msg (may be NULL) receives the status message
 * (malloc'd, "" on OK; free it).
 */
int qrpc_call(qrpc_client *c, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, char **msg);

/* The same with raw request bytes (for tests that send garbage); *resp_bytes
 * (may be NULL) receives the reply bytes (malloc'd). */
int qrpc_call_raw(qrpc_client *c, const char *method, const void *req, size_t req_len,
                  void **resp_bytes, size_t *resp_len, char **msg);

/* Changes the per-call timeout (ms) and the API key (NULL = none; copied). */
void qrpc_set_timeout(qrpc_client *c, int timeout_ms);
void qrpc_set_timeout_us(qrpc_client *c, int64_t timeout_us); /* the same in microseconds */
int qrpc_set_api_key(qrpc_client *c, const char *api_key);

/* The six ops of a unary call into ops[0..6): send the initial metadata
 * (md[0..nmd)), `send` and the close; receive the initial metadata (md0), the
 * reply (*recv) and the status (md1, *status, *details). */
void qrpc_unary_ops(grpc_op ops[6], grpc_metadata *md, size_t nmd, grpc_byte_buffer *send,
                    grpc_metadata_array *md0, grpc_byte_buffer **recv, grpc_metadata_array *md1,
                    grpc_status_code *status, grpc_slice *details);

/* "OK", "INVALID_ARGUMENT", ... for a status code. */
const char *qrpc_status_name(int code);

#endif
