/* SPDX-License-Identifier: MIT */
/*
 * status.c -- the one table from Quarry result codes to gRPC status codes.
 *
 * Extended codes map through their primary code (rc & 0xff). The choices
 * follow the gRPC status code definitions (grpc/impl/codegen/status.h):
 *  - INVALID_ARGUMENT for input that is wrong whatever the server state:
 *    bad ids, NaN, malformed JSON or filters, and a vector whose dimension
 *    does not match the collection (MISMATCH) -- the request, not the
 *    server, has to change;
 *  - FAILED_PRECONDITION when the database is in a state that refuses the
 *    operation and a retry will not help until an operator acts: read-only,
 *    and PANIC (a durability failure; the server must be restarted);
 *  - RESOURCE_EXHAUSTED for out-of-memory and a full disk or size limit;
 *  - UNAVAILABLE only for BUSY (the directory is locked: retry later);
 *  - DATA_LOSS for corruption, INTERNAL for I/O failures and our own bugs
 *    (MISUSE means quarryd called the library wrongly);
 *  - UNIMPLEMENTED for a feature this build or collection cannot serve yet
 *    (UNSUPPORTED: e.g. a text query before the BM25 index exists, Train on a
 *    collection that is not IVF-PQ), which per gRPC tells clients not to retry;
 *  - CANCELLED for INTERRUPTED: the engine stopped the operation itself (a
 *    Train on a collection being dropped, a search whose client cancelled)
 *    -- the request was fine, and nothing it asked for happened;
 *    DEADLINE_EXCEEDED for INTERRUPTED_DEADLINE (a search that ran past the
 *    call's deadline).
 * docs/RPC.md lists the same table for users; keep them in step.
 */
#include "rpc/rpc.h"

static const struct {
    int rc;
    grpc_status_code code;
} RC_STATUS[] = {
    {QUARRY_OK, GRPC_STATUS_OK},
    {QUARRY_ERROR, GRPC_STATUS_UNKNOWN},
    {QUARRY_INTERNAL, GRPC_STATUS_INTERNAL},
    {QUARRY_MISUSE, GRPC_STATUS_INTERNAL},
    {QUARRY_INVALID, GRPC_STATUS_INVALID_ARGUMENT},
    {QUARRY_NOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED},
    {QUARRY_NOTFOUND, GRPC_STATUS_NOT_FOUND},
    {QUARRY_EXISTS, GRPC_STATUS_ALREADY_EXISTS},
    {QUARRY_MISMATCH, GRPC_STATUS_INVALID_ARGUMENT},
    {QUARRY_IOERR, GRPC_STATUS_INTERNAL},
    {QUARRY_CORRUPT, GRPC_STATUS_DATA_LOSS},
    {QUARRY_FULL, GRPC_STATUS_RESOURCE_EXHAUSTED},
    {QUARRY_BUSY, GRPC_STATUS_UNAVAILABLE},
    {QUARRY_READONLY, GRPC_STATUS_FAILED_PRECONDITION},
    {QUARRY_UNSUPPORTED, GRPC_STATUS_UNIMPLEMENTED},
    {QUARRY_INTERRUPTED, GRPC_STATUS_CANCELLED},
    {QUARRY_PANIC, GRPC_STATUS_FAILED_PRECONDITION},
};

grpc_status_code rpc_status_from_rc(int rc) {
    if (rc == QUARRY_INTERRUPTED_DEADLINE) return GRPC_STATUS_DEADLINE_EXCEEDED;
    int primary = rc & 0xff;
    for (size_t i = 0; i < sizeof RC_STATUS / sizeof RC_STATUS[0]; i++)
        if (RC_STATUS[i].rc == primary) return RC_STATUS[i].code;
    return GRPC_STATUS_UNKNOWN; /* a code newer than this table */
}

const char *rpc_status_name(grpc_status_code code) {
    static const char *const NAMES[] = {
        "OK",           "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS",    "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",    "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",       "DATA_LOSS",
        "UNAUTHENTICATED"};
    if ((unsigned)code < sizeof NAMES / sizeof NAMES[0]) return NAMES[code];
    return "UNKNOWN";
}
