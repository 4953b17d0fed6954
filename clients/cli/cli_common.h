/* SPDX-License-Identifier: MIT */
/*
 * cli_common.h -- what the local shell (quarry.c) and the remote client
 * (remote.c) share: exit codes, error printing, JSON output, the clock, and
 * the one parser of import rows, so that `quarry DB import` and
 * `quarry --remote import` read a .jsonl line the same way.
 */
#ifndef QUARRY_CLI_COMMON_H
#define QUARRY_CLI_COMMON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum { EXIT_USAGE = 1, EXIT_ENGINE = 2 };
#define JSON_OUT_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

/* Prints `quarry: <message>` for a data or I/O error; returns EXIT_ENGINE. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a JSON value on one line of stdout (0, or EXIT_ENGINE). */
int print_json(json_t *v);
/* A float as JSON (null when not finite). */
json_t *json_float(float f);
/* Parses a JSON array of numbers into a growable float buffer; 0 or -1. */
int json_to_floats(const json_t *arr, float **buf, size_t *cap, uint32_t *n);
/* Monotonic seconds. */
double now_seconds(void);

/*
 * One import row parsed from a .jsonl object: {"id" or "_id" (string or
 * integer), "vector" (numbers), "text", "title" (BEIR: indexed with the text,
 * title first), "metadata" (object, or a JSON string)}. Pointers are borrowed
 * from the object or from the row's own buffers; valid until cli_row_free or
 * the next parse into the same row. On error returns -1 with a message in err.
 */
typedef struct cli_row {
    const char *id;
    size_t id_len;
    const float *vector; /* NULL = none */
    uint32_t dim;
    const char *text;    /* NULL = none */
    size_t text_len;
    const char *metadata; /* NULL = none; compact JSON */
    float *vec_buf;
    size_t vec_cap;
    char id_buf[32];
    char *text_buf, *meta_buf;
} cli_row;

int cli_row_parse(cli_row *r, json_t *obj, char *err, size_t errcap);
void cli_row_free(cli_row *r);

/* --update FIELDS: a comma list of text, metadata and vector -> QUARRY_FIELD_*
 * bits; 0 when a word is none of them or the list is empty. */
unsigned cli_update_fields(const char *s);

#endif
