/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: decoding of RPC requests as quarryd does it (rpc/codec.c:
 * protobuf-c unpack behind a gRPC byte buffer, then the NUL-in-string walk
 * over the wire format). The first input byte picks the request type, the
 * rest is the message. A decoded message is walked (packed again) and freed.
 */
#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stdlib.h>

#include "../fuzz.h"
#include "quarry.pb-c.h"
#include "rpc/rpc.h"

static const ProtobufCMessageDescriptor *const kinds[] = {
    &quarry__v1__create_collection_request__descriptor,
    &quarry__v1__drop_collection_request__descriptor,
    &quarry__v1__list_collections_request__descriptor,
    &quarry__v1__describe_collection_request__descriptor,
    &quarry__v1__upsert_request__descriptor,
    &quarry__v1__delete_request__descriptor,
    &quarry__v1__get_request__descriptor,
    &quarry__v1__query_request__descriptor,
    &quarry__v1__chunk_request__descriptor,
    &quarry__v1__upsert_document_request__descriptor,
    &quarry__v1__stats_request__descriptor,
    &quarry__v1__train_request__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const ProtobufCMessageDescriptor *d = kinds[data[0] % (sizeof kinds / sizeof *kinds)];
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)data + 1, size - 1);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    char why[256];
    ProtobufCMessage *m = rpc_unpack(d, bb, why, sizeof why);
    if (m) {
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *out = malloc(n ? n : 1);
        if (out) protobuf_c_message_pack(m, out);
        free(out);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    grpc_byte_buffer_destroy(bb);
    return 0;
}
