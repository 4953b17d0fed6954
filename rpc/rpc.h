/* SPDX-License-Identifier: MIT */
/*
 * rpc.h -- internals shared by the files of quarryd: the server and call
 * structures, the method table, reply helpers, the rc -> status table, the
 * protobuf codec helpers, a per-call arena and structured logging.
 *
 * quarryd is an embedder of include/quarry.h like any other program: nothing
 * here reaches below the public API.
 */
#ifndef QUARRY_RPC_H
#define QUARRY_RPC_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "quarry.h"

/* ------------------------------------------------------------------ arena */

/* A bump allocator for one call's response structures: everything is freed
 * at once when the call ends. Allocations are zeroed and 16-byte aligned. */
typedef struct arena_blk arena_blk;
typedef struct arena {
    arena_blk *head;
} arena;

void *arena_alloc(arena *a, size_t n);
/* n elements of `size` bytes with overflow check. */
void *arena_array(arena *a, size_t n, size_t size);
char *arena_strndup(arena *a, const char *s, size_t n);
void arena_free(arena *a);

/* ------------------------------------------------------------------ config */

typedef struct rpc_config {
    const char *listen;          /* HOST:PORT or unix:PATH */
    const char *data_dir;
    const char *port_file;       /* write the bound port here once listening */
    const char *tls_cert, *tls_key;
    char *api_key;               /* NULL = no authentication */
    int cq_threads;              /* threads polling completion queues */
    int cq_per_thread;           /* 1 = one CQ per thread, 0 = one shared CQ */
    int workers;                 /* handler threads; 0 = handlers run on the CQ threads */
    int query_inline;            /* 1 = RUN_READ methods run on the CQ threads */
    int prepost;                 /* requests kept posted per method and CQ */
    long max_message_bytes;      /* receive and send limit */
    long max_batch_rows;         /* rows per Upsert, ids per Get/Delete */
    int max_queue;               /* calls waiting for a worker before RESOURCE_EXHAUSTED */
    int grace_ms;                /* shutdown: wait this long for calls, then cancel */
    int read_only;
    int demo;
    quarry_io_backend io;
} rpc_config;

/* ------------------------------------------------------------------ calls */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;
typedef struct rpc_method rpc_method;

enum { TAG_NEW = 1, TAG_DONE, TAG_CLOSE };

typedef struct rpc_tag {
    int kind;
    rpc_call *call;
} rpc_tag;

struct rpc_call {
    rpc_tag t_new, t_done, t_close;
    rpc_server *srv;
    const rpc_method *m; /* NULL: an unknown method (generic request) */
    int cq;              /* index of the completion queue the call is bound to */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details; /* generic requests only */
    grpc_byte_buffer *req;
    /* the reply */
    grpc_byte_buffer *resp;
    grpc_status_code status;
    char msg[512];
    int replied;             /* the reply batch was started */
    int running;             /* run_call got past the cancellation check */
    int close_batch;         /* a separate RECV_CLOSE_ON_SERVER batch is outstanding */
    int close_cancelled;     /* written by that batch */
    int final_cancelled;     /* RECV_CLOSE in the final batch (generic calls) */
    atomic_int cancelled;    /* the client cancelled or the deadline passed */
    atomic_int refs;         /* hold + outstanding batches */
    uint64_t t0_ns;
    rpc_call *next; /* worker queue */
    arena ar;
};

/* A handler decodes nothing and packs nothing: it gets the decoded request
 * and finishes by calling exactly one of the rpc_reply_* functions. */
typedef void (*rpc_handler)(rpc_call *c, const ProtobufCMessage *req);

/* Where a method's handler runs. */
enum {
    RUN_WORKER = 0, /* on a worker: may wait for the disk (writes, fdatasync) */
    RUN_READ = 1,   /* on the CQ thread that received the call unless --query-inline 0:
                       reads under the engine's read locks, CPU only, never fdatasync */
    RUN_INLINE = 2  /* always on the CQ thread: trivial (health) */
};

struct rpc_method {
    const char *path; /* "/quarry.v1.Quarry/Query" */
    const ProtobufCMessageDescriptor *in;
    rpc_handler fn;
    int run;     /* RUN_WORKER, RUN_READ or RUN_INLINE */
    int no_auth; /* answered without an API key (health checks) */
    void *handle; /* from grpc_server_register_method */
};

extern rpc_method rpc_methods[];
extern const size_t rpc_nmethods;

/* ------------------------------------------------------------------ server */

struct rpc_server {
    rpc_config cfg;
    quarry_db *db;
    grpc_server *gs;
    grpc_completion_queue **cqs;
    int ncqs;
    pthread_t *cq_threads;
    atomic_int shutting_down; /* no more re-posting */
    atomic_int draining;      /* health answers NOT_SERVING */
    /* live call contexts (posted requests included) */
    pthread_mutex_t live_mu;
    pthread_cond_t live_cv;
    long live;
    /* worker pool */
    pthread_t *workers;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    rpc_call *q_head, *q_tail;
    int q_len, q_stop;
    /* counters */
    atomic_uint_fast64_t calls, failed;
    atomic_int in_flight;
    uint64_t start_ns;
};

/* Reply with a packed message (status OK). Returns 0, or replies with an error
 * status itself (message too large, out of memory) and returns -1. */
int rpc_reply_msg(rpc_call *c, const ProtobufCMessage *msg);
/* Reply with an error status and a printf-style message. */
void rpc_reply_status(rpc_call *c, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Has the call been cancelled by its client, or has its deadline passed? If so
 * replies CANCELLED or DEADLINE_EXCEEDED (nobody reads the answer: the gRPC
 * core has already ended the call) and returns 1. Handlers call it between
 * expensive steps; run_call calls it before decoding.
 */
int rpc_call_stopped(rpc_call *c);
/* The call's deadline on the engine's clock (quarry_clock_ns), 0 = none, and
 * an interrupt function for the engine's searches (quarry_query_deadline):
 * nonzero once the client cancelled. A call running inline on a polling
 * thread learns of a cancellation only from its deadline. */
int64_t rpc_call_deadline_ns(const rpc_call *c);
int rpc_call_interrupt(void *call);
/* Reply with the status mapped from an engine rc; the message is the engine's
 * detail text (quarry_errmsg()), prefixed by `what` when not NULL. Call it on
 * the thread that made the failing engine call, before any other engine call. */
void rpc_reply_rc(rpc_call *c, int rc, const char *what);

/* ------------------------------------------------------------------ status.c */

/* The one table from engine result codes to gRPC status codes. */
grpc_status_code rpc_status_from_rc(int rc);
/* "OK", "INVALID_ARGUMENT", ... */
const char *rpc_status_name(grpc_status_code code);

/* ------------------------------------------------------------------ codec.c */

/* Packs a message into a new byte buffer, or NULL (out of memory). */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg, size_t size);
/*
 * Decodes a request. Returns the message (free with protobuf_c_message_free_unpacked)
 * or NULL with `why` filled: not a valid protobuf of that type, or a string
 * field holding a NUL byte (protobuf-c would silently cut it there).
 */
ProtobufCMessage *rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                             char *why, size_t why_len);
/* Constant-time comparison of a presented secret with the expected one. */
int rpc_secret_equal(const char *given, size_t given_len, const char *want, size_t want_len);

/* ------------------------------------------------------------------ log.c */

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
extern int rpc_log_level;
int rpc_log_level_parse(const char *s);
/*
 * One structured line on stderr (logfmt):
 *   ts=2024-05-01T12:00:00.123Z level=info event=EVENT KEY=VALUE... msg="DETAIL"
 * `kv` is a printf format for the KEY=VALUE part (may be NULL); `detail` is
 * quoted and escaped (may be NULL).
 */
void rpc_log(int level, const char *event, const char *detail, const char *kv, ...)
    __attribute__((format(printf, 4, 5)));
/* Routes grpc's own log lines through rpc_log (event=grpc). */
void rpc_log_route_grpc(void);

/* ------------------------------------------------------------------ demo.c */

/* Creates the collection "demo" with generated articles if it is absent. */
int rpc_demo_load(quarry_db *db);

/* ------------------------------------------------------------------ misc */

uint64_t rpc_now_ns(void);

#endif
