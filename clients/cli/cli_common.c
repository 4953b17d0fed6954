/* SPDX-License-Identifier: MIT */
/* cli_common.c -- see cli_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli_common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quarry.h"

int fail(const char *fmt, ...) {
    va_list ap;
    fputs("quarry: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_ENGINE;
}

int print_json(json_t *v) {
    char *s = v ? json_dumps(v, JSON_OUT_FLAGS | JSON_ENCODE_ANY) : NULL;
    if (!s) return fail("out of memory while printing JSON");
    puts(s);
    free(s);
    return 0;
}

json_t *json_float(float f) { return isfinite(f) ? json_real(f) : json_null(); }

int json_to_floats(const json_t *arr, float **buf, size_t *cap, uint32_t *n) {
    size_t len = json_array_size(arr);
    if (!json_is_array(arr) || len > QUARRY_MAX_DIM) return -1;
    if (len > *cap) {
        float *p = realloc(*buf, len * sizeof *p);
        if (!p) return -1;
        *buf = p;
        *cap = len;
    }
    for (size_t i = 0; i < len; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_number(v)) return -1;
        (*buf)[i] = (float)json_number_value(v);
    }
    *n = (uint32_t)len;
    return 0;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bad(char *err, size_t cap, const char *msg) {
    snprintf(err, cap, "%s", msg);
    return -1;
}

int cli_row_parse(cli_row *r, json_t *obj, char *err, size_t errcap) {
    free(r->text_buf);
    free(r->meta_buf);
    r->text_buf = r->meta_buf = NULL;
    r->vector = NULL, r->dim = 0, r->text = NULL, r->text_len = 0, r->metadata = NULL;
    if (!json_is_object(obj)) return bad(err, errcap, "not a JSON object");
    json_t *id = json_object_get(obj, "id");
    if (!id) id = json_object_get(obj, "_id");
    if (json_is_string(id)) {
        r->id = json_string_value(id);
        r->id_len = json_string_length(id);
    } else if (json_is_integer(id)) {
        snprintf(r->id_buf, sizeof r->id_buf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        r->id = r->id_buf;
        r->id_len = strlen(r->id_buf);
    } else {
        return bad(err, errcap, "\"id\" (or \"_id\") must be a string or integer");
    }
    json_t *v = json_object_get(obj, "vector");
    if (v && !json_is_null(v)) {
        if (json_to_floats(v, &r->vec_buf, &r->vec_cap, &r->dim) != 0)
            return bad(err, errcap, "\"vector\" must be an array of numbers");
        r->vector = r->vec_buf;
    }
    json_t *text = json_object_get(obj, "text"), *title = json_object_get(obj, "title");
    if (json_is_string(text)) {
        r->text = json_string_value(text);
        r->text_len = json_string_length(text);
    } else if (text && !json_is_null(text)) {
        return bad(err, errcap, "\"text\" must be a string");
    }
    if (json_is_string(title) && json_string_length(title) > 0) {
        /* BEIR rows: title and text are both indexed, title first */
        size_t tl = json_string_length(title), xl = r->text ? r->text_len : 0;
        if (!(r->text_buf = malloc(tl + xl + 2))) return bad(err, errcap, "out of memory");
        memcpy(r->text_buf, json_string_value(title), tl);
        if (xl) {
            r->text_buf[tl] = '\n';
            memcpy(r->text_buf + tl + 1, r->text, xl);
        }
        r->text_len = xl ? tl + 1 + xl : tl;
        r->text_buf[r->text_len] = 0;
        r->text = r->text_buf;
    } else if (title && !json_is_null(title) && !json_is_string(title)) {
        return bad(err, errcap, "\"title\" must be a string");
    }
    json_t *m = json_object_get(obj, "metadata");
    if (json_is_object(m)) {
        if (!(r->meta_buf = json_dumps(m, JSON_OUT_FLAGS))) return bad(err, errcap, "out of memory");
        r->metadata = r->meta_buf;
    } else if (json_is_string(m)) {
        r->metadata = json_string_value(m);
    } else if (m && !json_is_null(m)) {
        return bad(err, errcap, "\"metadata\" must be a JSON object");
    }
    return 0;
}

void cli_row_free(cli_row *r) {
    free(r->vec_buf);
    free(r->text_buf);
    free(r->meta_buf);
    memset(r, 0, sizeof *r);
}

unsigned cli_update_fields(const char *s) {
    static const struct {
        const char *name;
        unsigned bit;
    } F[] = {{"text", QUARRY_FIELD_TEXT},
             {"metadata", QUARRY_FIELD_METADATA},
             {"vector", QUARRY_FIELD_VECTOR}};
    unsigned bits = 0;
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        size_t i = 0;
        while (i < 3 && !(strlen(F[i].name) == len && strncmp(F[i].name, p, len) == 0)) i++;
        if (i == 3) return 0;
        bits |= F[i].bit;
        p += len;
        if (!*p) return bits;
    }
}
