/* SPDX-License-Identifier: MIT */
/*
 * log.c -- structured log lines (logfmt) on stderr.
 *
 *   ts=2024-05-01T12:00:00.123Z level=info event=call method=Query code=OK ms=0.412
 *
 * One line per event, written with a single write(2) so lines from different
 * threads never interleave. Keys are fixed words; the free text of an event
 * goes last as msg="..." with quotes, backslashes and control characters
 * escaped, so every line parses with any logfmt reader. grpc's own log lines
 * are routed here too (event=grpc).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <grpc/support/log.h>

#include "rpc/rpc.h"

int rpc_log_level = LOG_INFO;

static const char *const LEVELS[] = {"debug", "info", "warn", "error"};

int rpc_log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, LEVELS[i]) == 0) return i;
    return -1;
}

uint64_t rpc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t append_escaped(char *out, size_t pos, size_t cap, const char *s) {
    for (; *s && pos + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)ch;
        } else if (ch == '\n') {
            out[pos++] = '\\', out[pos++] = 'n';
        } else if (ch < 0x20 || ch == 0x7f) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\x%02x", ch);
        } else {
            out[pos++] = (char)ch;
        }
    }
    return pos;
}

void rpc_log(int level, const char *event, const char *detail, const char *kv, ...) {
    if (level < rpc_log_level) return;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t cap = sizeof line, pos = strftime(line, cap, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    pos += (size_t)snprintf(line + pos, cap - pos, ".%03dZ level=%s event=%s",
                            (int)(tv.tv_usec / 1000), LEVELS[level], event);
    if (kv && *kv && pos < cap - 2) {
        line[pos++] = ' ';
        va_list ap;
        va_start(ap, kv);
        int n = vsnprintf(line + pos, cap - pos, kv, ap);
        va_end(ap);
        if (n > 0) pos += (size_t)n < cap - pos ? (size_t)n : cap - pos - 1;
    }
    if (detail && pos + 16 < cap) {
        memcpy(line + pos, " msg=\"", 6);
        pos = append_escaped(line, pos + 6, cap, detail);
        line[pos++] = '"';
    }
    if (pos >= cap) pos = cap - 1;
    line[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
}

static void grpc_log_fn(gpr_log_func_args *a) {
    int level = a->severity == GPR_LOG_SEVERITY_ERROR  ? LOG_ERROR
                : a->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO
                                                       : LOG_DEBUG;
    const char *file = a->file ? strrchr(a->file, '/') : NULL;
    rpc_log(level, "grpc", a->message, "src=%s:%d", file ? file + 1 : (a->file ? a->file : "?"),
            a->line);
}

void rpc_log_route_grpc(void) { gpr_set_log_function(grpc_log_fn); }
