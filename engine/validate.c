/* SPDX-License-Identifier: MIT */
/*
 * validate.c -- input validation: UTF-8, collection names, metadata objects
 * (parsed with jansson, never by hand) and the equality filter.
 *
 * Metadata is a flat JSON object whose values are strings, numbers, booleans
 * or arrays of strings (DESIGN.md, data model): exactly what the filter
 * indexes can serve. Anything else is refused with the field named.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

int q_utf8_valid(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str, *e = s + len;
    while (s < e) {
        unsigned c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
        else return 0;
        if ((size_t)(e - s) <= n) return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        s += n + 1;
    }
    return 1;
}

int q_name_valid(const char *name) {
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
        if (n >= QUARRY_MAX_NAME_LEN) return 0;
    }
    return n > 0;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

int q_metadata_canon(const char *json, size_t len, char **out, size_t *out_len) {
    *out = NULL;
    if (len > QUARRY_MAX_METADATA_LEN)
        return q_err(QUARRY_INVALID, "metadata is %zu bytes, the limit is %u", len,
                     QUARRY_MAX_METADATA_LEN);
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return q_err(QUARRY_INVALID, "metadata is not valid JSON: %s at byte %d", jerr.text,
                     jerr.position);
    int rc = 0;
    if (!json_is_object(o)) {
        rc = q_err(QUARRY_INVALID, "metadata must be a JSON object, not %s", json_kind(o));
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (!*key || strlen(key) > 256) {
            rc = q_err(QUARRY_INVALID, "metadata field names must be 1..256 bytes");
            goto out;
        }
        if (json_is_string(v) || json_is_number(v) || json_is_boolean(v)) {
            if (json_is_real(v) && !isfinite(json_real_value(v))) {
                rc = q_err(QUARRY_INVALID, "metadata field \"%s\": number is not finite", key);
                goto out;
            }
            continue;
        }
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_string(e)) {
                    rc = q_err(QUARRY_INVALID,
                               "metadata field \"%s\": arrays may hold only strings (element "
                               "%zu is %s)",
                               key, i, json_kind(e));
                    goto out;
                }
            }
            continue;
        }
        rc = q_err(QUARRY_INVALID,
                   "metadata field \"%s\" is %s; values must be strings, numbers, booleans or "
                   "arrays of strings",
                   key, json_kind(v));
        goto out;
    }
    *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto out;
    }
    *out_len = strlen(*out);
out:
    json_decref(o);
    return rc;
}
