/* SPDX-License-Identifier: MIT */
/*
 * codec.c -- between grpc byte buffers and protobuf-c messages, plus the
 * per-call arena and the constant-time secret comparison.
 *
 * Requests are decoded with protobuf-c's generic unpack (the descriptor comes
 * from the method table), after reading the byte buffer into one slice (this
 * also handles multi-slice and compressed buffers). protobuf-c stores string
 * fields as NUL-terminated C strings without their length, so a string with
 * a NUL byte inside would be cut short silently ("a\0b" and "a\0c" would both
 * become "a"): a short walk over the wire format, guided by the same
 * descriptors, refuses such requests first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "rpc/rpc.h"

/* ------------------------------------------------------------------ arena */

struct arena_blk {
    arena_blk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK (16u << 10)

void *arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    arena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0, b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void *arena_array(arena *a, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return arena_alloc(a, n * size);
}

char *arena_strndup(arena *a, const char *s, size_t n) {
    char *d = arena_alloc(a, n + 1);
    if (d) memcpy(d, s, n);
    return d;
}

void arena_free(arena *a) {
    arena_blk *b = a->head;
    while (b) {
        arena_blk *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ------------------------------------------------------------------ packing */

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg, size_t size) {
    grpc_slice s = grpc_slice_malloc(size);
    if (protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s)) != size) {
        grpc_slice_unref(s);
        return NULL;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1); /* takes its own ref */
    grpc_slice_unref(s);
    return bb;
}

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *pos < len; shift += 7) {
        uint8_t b = p[(*pos)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* Finds a string field holding a NUL byte. Returns its name, or NULL. */
static const char *nul_in_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                  size_t len, int depth) {
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, l;
        if (!read_varint(p, len, &pos, &key)) return NULL; /* unpack already accepted it */
        switch (key & 7) {
        case 0:
            if (!read_varint(p, len, &pos, &l)) return NULL;
            break;
        case 1: pos += 8; break;
        case 5: pos += 4; break;
        case 2: {
            if (!read_varint(p, len, &pos, &l) || l > len - pos) return NULL;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p + pos, 0, l)) return f->name;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 32) {
                const char *bad = nul_in_strings(f->descriptor, p + pos, l, depth + 1);
                if (bad) return bad;
            }
            pos += l;
            break;
        }
        default: return NULL; /* groups: not in our schema */
        }
    }
    return NULL;
}

ProtobufCMessage *rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                             char *why, size_t why_len) {
    grpc_byte_buffer_reader r;
    grpc_slice s = grpc_empty_slice();
    if (bb) {
        if (!grpc_byte_buffer_reader_init(&r, bb)) {
            snprintf(why, why_len, "cannot read the request payload");
            return NULL;
        }
        s = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
    }
    const uint8_t *p = GRPC_SLICE_START_PTR(s);
    size_t len = GRPC_SLICE_LENGTH(s);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, p);
    if (!m) {
        snprintf(why, why_len, "the request is not a valid %s message", d->name);
    } else {
        const char *field = nul_in_strings(d, p, len, 0);
        if (field) {
            snprintf(why, why_len, "string field '%s' contains a NUL byte", field);
            protobuf_c_message_free_unpacked(m, NULL);
            m = NULL;
        }
    }
    grpc_slice_unref(s);
    return m;
}

int rpc_secret_equal(const char *given, size_t given_len, const char *want, size_t want_len) {
    /* Time depends only on want_len (the server's secret length), never on where
     * the first difference is. */
    volatile unsigned char diff = given_len != want_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)(want[i] ^ (i < given_len ? given[i] : 0));
    return diff == 0;
}
