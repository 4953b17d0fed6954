/* SPDX-License-Identifier: MIT */
/*
 * postings.c -- the block codec: 128 values bit-packed at one width, in the
 * "vertical" layout of Lemire & Boytsov's SIMD-BP128.
 *
 * Layout. The 128 values are dealt round-robin to 4 lanes (value i goes to
 * lane i % 4), each lane packs its 32 values LSB first into `bits` 32-bit
 * words, and the lanes' words are interleaved: bytes [16 w, 16 w + 16) hold
 * word w of lanes 0..3 (little-endian). A block of width b is 16 b bytes,
 * exactly as dense as plain packing, and one 128-bit load yields the next
 * word of all four lanes, so unpacking is 32 iterations of shift, or, and
 * store on 4 values at a time, with no per-value branch, and the values come
 * out in their natural order.
 *
 * Why not varints: measured by bench_text on the benchmark collections, the
 * packed row gaps and tfs take 1.1-1.2 bytes per posting against 2.0 for
 * LEB128 (a gap and a tf of one byte each, at least), and decode faster
 * (the numbers are printed on every run). Positions, read only by phrase
 * queries and skipped by everything else, stay LEB128.
 *
 * Written with SIMDe SSE2 intrinsics (native on x86-64, portable elsewhere;
 * little-endian hosts).
 */
#include <simde/x86/sse2.h>

#include "text_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

unsigned bm25_bits(uint32_t max) { return max ? 32u - (unsigned)__builtin_clz(max) : 0u; }

static void or_u32(uint8_t *p, uint32_t v) { put_u32(p, get_u32(p) | v); }

void bm25_pack(const uint32_t *v, unsigned bits, uint8_t *out) {
    memset(out, 0, 16 * (size_t)bits);
    if (!bits) return;
    for (unsigned j = 0; j < 4; j++) {
        unsigned p = 0;
        for (unsigned m = 0; m < 32; m++, p += bits) {
            uint32_t x = v[4 * m + j];
            unsigned w = p / 32, off = p % 32;
            or_u32(out + 16 * w + 4 * j, x << off);
            if (off + bits > 32) or_u32(out + 16 * (w + 1) + 4 * j, x >> (32 - off));
        }
    }
}

static ALWAYS_INLINE void unpack_w(const uint8_t *in, uint32_t *out, const unsigned b) {
    const simde__m128i mask = simde_mm_set1_epi32(b == 32 ? -1 : (int32_t)((1u << b) - 1));
    simde__m128i acc = simde_mm_loadu_si128((const simde__m128i *)in);
    unsigned off = 0, w = 0;
#pragma GCC unroll 32
    for (unsigned m = 0; m < 32; m++) {
        simde__m128i v = simde_mm_srl_epi32(acc, simde_mm_cvtsi32_si128((int)off));
        if (off + b > 32) {
            w++;
            acc = simde_mm_loadu_si128((const simde__m128i *)(in + 16 * w));
            v = simde_mm_or_si128(v,
                                  simde_mm_sll_epi32(acc, simde_mm_cvtsi32_si128((int)(32 - off))));
        } else if (off + b == 32 && m < 31) {
            w++;
            acc = simde_mm_loadu_si128((const simde__m128i *)(in + 16 * w));
        }
        simde_mm_storeu_si128((simde__m128i *)(out + 4 * m), simde_mm_and_si128(v, mask));
        off = (off + b) & 31;
    }
}

/* clang-format off */
#define C4(b) C(b) C(b + 1) C(b + 2) C(b + 3)
void bm25_unpack(const uint8_t *in, unsigned bits, uint32_t *v) {
    switch (bits) {
#define C(b) case b: unpack_w(in, v, b); return;
    C4(1) C4(5) C4(9) C4(13) C4(17) C4(21) C4(25) C4(29)
#undef C
    default: memset(v, 0, BM25_BLOCK * sizeof *v); return; /* 0 (or invalid: never stored) */
    }
}
#undef C4
/* clang-format on */

size_t bm25_block_bytes(const bm25_term *t, uint32_t bi) {
    const uint8_t *p = t->data + t->blocks[bi].data_off;
    return 2 + 16 * (size_t)p[0] + 16 * (size_t)p[1];
}

/* v[i] += 1 for all i; with `prefix`, then running sums starting from base. */
static void finish(uint32_t *v, int prefix, uint32_t base) {
    const simde__m128i one = simde_mm_set1_epi32(1);
    simde__m128i carry = simde_mm_set1_epi32((int32_t)base);
    for (unsigned i = 0; i < BM25_BLOCK; i += 4) {
        simde__m128i x = simde_mm_add_epi32(simde_mm_loadu_si128((simde__m128i *)(v + i)), one);
        if (prefix) {
            x = simde_mm_add_epi32(x, simde_mm_slli_si128(x, 4));
            x = simde_mm_add_epi32(x, simde_mm_slli_si128(x, 8));
            x = simde_mm_add_epi32(x, carry);
            carry = simde_mm_shuffle_epi32(x, 0xFF);
        }
        simde_mm_storeu_si128((simde__m128i *)(v + i), x);
    }
}

void bm25_decode(const uint8_t *p, uint32_t prev, uint32_t *rows, uint32_t *tfs) {
    unsigned bd = p[0], bt = p[1];
    bm25_unpack(p + 2, bd, rows);
    finish(rows, 1, prev); /* row = previous row + gap + 1 */
    if (tfs) {
        bm25_unpack(p + 2 + 16 * bd, bt, tfs);
        finish(tfs, 0, 0);
    }
}

void bm25_block_decode(const bm25_term *t, uint32_t bi, uint32_t *rows, uint32_t *tfs) {
    /* block 0 starts from row -1 */
    bm25_decode(t->data + t->blocks[bi].data_off, bi ? t->blocks[bi - 1].last_row : UINT32_MAX,
                rows, tfs);
}

void bm25_block_decode_tf(const bm25_term *t, uint32_t bi, uint32_t *tfs) {
    const uint8_t *p = t->data + t->blocks[bi].data_off;
    bm25_unpack(p + 2 + 16 * (size_t)p[0], p[1], tfs);
    finish(tfs, 0, 0);
}
