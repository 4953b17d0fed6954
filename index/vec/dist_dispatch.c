/* SPDX-License-Identifier: MIT */
/*
 * dist_dispatch.c -- choose the distance kernel table for this CPU, once.
 *
 * This file is compiled for the baseline ISA: it must run on any x86-64 to
 * find out what the CPU can do before any AVX instruction executes.
 *
 * A CPU feature is usable only if the processor has it (cpuid, via
 * __builtin_cpu_supports) *and* the OS saves the matching register state on a
 * context switch. The latter is XCR0, readable with xgetbv once cpuid reports
 * OSXSAVE: AVX needs the XMM and YMM bits (0x6), AVX-512 additionally the
 * opmask and ZMM bits (0xe0). A kernel or hypervisor that disabled AVX-512
 * state would otherwise leave us executing instructions that fault. (The same
 * check xxHash's x86 dispatcher makes.)
 *
 * The choice is made once under pthread_once and cached: dist_get() is then a
 * plain load. QUARRY_SIMD=scalar|avx2|avx512 overrides the choice (for tests
 * and for measuring); asking for an ISA this CPU cannot run, or an unknown
 * name, falls back to the best supported table with one warning on stderr.
 */
#include "distance.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define QUARRY_X86 1
#endif

#if defined(QUARRY_X86)
static unsigned long long read_xcr0(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(ecx & bit_OSXSAVE)) return 0; /* xgetbv would fault */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static int cpu_has_avx2(void) {
#if defined(QUARRY_X86)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    return (read_xcr0() & 0x6) == 0x6; /* XMM | YMM state */
#else
    return 0;
#endif
}

static int cpu_has_avx512(void) {
#if defined(QUARRY_X86)
    __builtin_cpu_init();
    if (!cpu_has_avx2()) return 0;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return 0;
    return (read_xcr0() & 0xe6) == 0xe6; /* XMM | YMM | opmask | ZMM_Hi256 | Hi16_ZMM */
#else
    return 0;
#endif
}

const dist_kernels *dist_get_isa(const char *isa) {
    if (!isa) return NULL;
    if (strcmp(isa, "scalar") == 0) return &dist_kernels_scalar;
    if (strcmp(isa, "avx2") == 0) return cpu_has_avx2() ? &dist_kernels_avx2 : NULL;
    if (strcmp(isa, "avx512") == 0) return cpu_has_avx512() ? &dist_kernels_avx512 : NULL;
    return NULL;
}

static const dist_kernels *best(void) {
    if (cpu_has_avx512()) return &dist_kernels_avx512;
    if (cpu_has_avx2()) return &dist_kernels_avx2;
    return &dist_kernels_scalar;
}

static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;
static const dist_kernels *chosen;

static void choose(void) {
    const dist_kernels *k = best();
    const char *want = getenv("QUARRY_SIMD");
    if (want && *want) {
        const dist_kernels *forced = dist_get_isa(want);
        if (forced) {
            k = forced;
        } else {
            fprintf(stderr, "quarry: QUARRY_SIMD=%s is not supported here; using %s\n", want,
                    k->isa);
        }
    }
    chosen = k;
}

const dist_kernels *dist_get(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}
