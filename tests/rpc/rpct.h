/* SPDX-License-Identifier: MIT */
/*
 * rpct.h -- helpers for the RPC tests: run a real quarryd (the binary built in
 * this tree, QUARRYD_PATH) on a free loopback port chosen at run time (it
 * binds port 0 and reports the port through --port-file), connect C clients
 * to it, and stop it with a signal.
 */
#ifndef QUARRY_RPCT_H
#define QUARRY_RPCT_H

#include <sys/types.h>

#include <grpc/grpc.h>

#include "quarry.pb-c.h"
#include "rpc/client.h"
#include "t.h"

typedef struct rpct_server {
    pid_t pid;
    int port;
    char addr[64];
    char data[1024];     /* database directory */
    char log[1100];      /* the server's stderr */
    char portfile[1100];
} rpct_server;

/* Starts quarryd --data DATA --listen 127.0.0.1:0 plus `args` (NULL-ended);
 * api_key (may be NULL) goes in QUARRY_API_KEY. Fails the test when the
 * server does not come up within 30 s. */
void rpct_start(rpct_server *s, const char *data, const char *const *args, const char *api_key);
/* Like rpct_start but returns the exit status when the server exits during
 * start-up (or -1 when it came up). */
int rpct_try_start(rpct_server *s, const char *data, const char *const *args,
                   const char *api_key);
/* Sends `sig`, waits for the exit; returns the exit status, or 128 + signal. */
int rpct_stop(rpct_server *s, int sig);
/* SIGTERM and expect a clean exit (0); otherwise print the log and fail. */
void rpct_stop_clean(rpct_server *s);
/* Prints the server's log to stderr (for failures). */
void rpct_dump_log(const rpct_server *s);
/* Does the server log contain `needle`? */
int rpct_log_has(const rpct_server *s, const char *needle);

qrpc_client *rpct_client(const rpct_server *s, const char *api_key);

/* Calls and asserts the status; returns the reply (free with
 * protobuf_c_message_free_unpacked) when `want` is OK. */
#define RPCT_CALL(cl, method, req, resp_desc, want)                                    \
    rpct_call(__FILE__, __LINE__, (cl), "/quarry.v1.Quarry/" method, &(req).base,       \
              (resp_desc), (want), NULL)
void *rpct_call(const char *file, int line, qrpc_client *cl, const char *method,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                int want, const char *want_in_msg);

/* A unary call on the raw C core API, so that a test can cancel it while it
 * is in flight: start it (on `ch`, or on a channel of its own to `addr` when
 * ch is NULL; a 600 s deadline), then cancel it and get its final status. */
typedef struct rpct_raw_call {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md0, md1;
    grpc_status_code status;
    grpc_slice details;
    int own_ch;
    int done; /* completed (rpct_raw_wait) */
} rpct_raw_call;
void rpct_raw_start(rpct_raw_call *rc, const char *addr, grpc_channel *ch, const char *method,
                    const ProtobufCMessage *req);
/* Polls the call's queue for up to `us` microseconds (the client's I/O runs
 * meanwhile); 1 when the call completed. */
int rpct_raw_wait(rpct_raw_call *rc, long us);
grpc_status_code rpct_raw_cancel(rpct_raw_call *rc);

/* Collection stats (rows, last_lsn, batches ...) over RPC. */
Quarry__V1__CollectionStats rpct_stats(qrpc_client *cl, const char *coll);

enum {
    ST_OK = 0,
    ST_CANCELLED = 1,
    ST_INVALID_ARGUMENT = 3,
    ST_DEADLINE_EXCEEDED = 4,
    ST_NOT_FOUND = 5,
    ST_ALREADY_EXISTS = 6,
    ST_RESOURCE_EXHAUSTED = 8,
    ST_FAILED_PRECONDITION = 9,
    ST_UNIMPLEMENTED = 12,
    ST_INTERNAL = 13,
    ST_UNAVAILABLE = 14,
    ST_UNAUTHENTICATED = 16
};

#endif
