/* SPDX-License-Identifier: MIT */
/*
 * filter_compile.c -- the filter language's compiler: JSON text (parsed with
 * jansson) -> an immutable tree of fnode (grammar in filter.h).
 *
 * The compiler walks the jansson tree keeping the JSON path of the node it is
 * looking at ($.and[2].range), so every semantic error names its position;
 * syntax errors carry jansson's line, column and byte offset. The tree and
 * its strings live in one arena freed by filter_expr_free. `eq` compiles to an
 * `in` of one value; an `in` keeps its strings and numbers sorted and
 * deduplicated (binary search in filter_match), and its strings pre-hashed
 * (one hash lookup per value in filter_eval).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "filter_int.h"

/* ---------------------------------------------------------------- arena */

typedef struct arena_blk {
    struct arena_blk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_blk;

static void *arena_alloc(arena_blk **a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!*a || (*a)->cap - (*a)->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        arena_blk *b = q_malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    void *p = (*a)->data + (*a)->used;
    (*a)->used += n;
    return p;
}

static void arena_free(arena_blk *a) {
    while (a) {
        arena_blk *next = a->next;
        q_free(a);
        a = next;
    }
}

/* -------------------------------------------------------------- context */

#define PATH_CAP  512
#define KEY_SHOWN 160 /* bytes of a quoted key shown in a path */

typedef struct cctx {
    arena_blk *arena;
    char path[PATH_CAP];
    size_t plen;
    int nodes;
    int failed; /* an error was recorded (or memory ran out) */
} cctx;

static const char *const OPS[] = {"and", "or", "not", "eq", "in", "range", "exists"};

static int is_op(const char *k) {
    for (size_t i = 0; i < sizeof OPS / sizeof *OPS; i++)
        if (strcmp(k, OPS[i]) == 0) return 1;
    return 0;
}

static void path_append(cctx *c, const char *s, size_t n) {
    if (c->plen + n + 4 >= PATH_CAP) {
        if (c->plen + 4 < PATH_CAP) {
            memcpy(c->path + c->plen, "...", 4);
            c->plen += 3;
        }
        return;
    }
    memcpy(c->path + c->plen, s, n);
    c->plen += n;
    c->path[c->plen] = 0;
}

/* Append .key, or ["key"] when key is not an identifier. Returns the old
 * length for path_pop. */
static size_t path_key(cctx *c, const char *k) {
    size_t old = c->plen, n = strlen(k);
    int ident = n > 0 && !(k[0] >= '0' && k[0] <= '9');
    for (size_t i = 0; i < n && ident; i++) {
        char ch = k[i];
        ident = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '_';
    }
    if (ident) {
        path_append(c, ".", 1);
        path_append(c, k, n);
        return old;
    }
    char buf[PATH_CAP];
    size_t o = 0;
    buf[o++] = '[';
    buf[o++] = '"';
    size_t i = 0;
    for (; i < n && o < KEY_SHOWN; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(buf + o, PATH_CAP - o, "\\u%04x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (i < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o++] = ']';
    path_append(c, buf, o);
    return old;
}

static size_t path_idx(cctx *c, size_t i) {
    size_t old = c->plen;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "[%zu]", i);
    path_append(c, buf, (size_t)n);
    return old;
}

static void path_pop(cctx *c, size_t old) {
    c->plen = old;
    c->path[old] = 0;
}

__attribute__((format(printf, 2, 3))) static fnode *cerr(cctx *c, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    q_err(QUARRY_INVALID, "filter: %s: %s", c->path, msg);
    c->failed = QUARRY_INVALID;
    return NULL;
}

static fnode *cnomem(cctx *c) {
    q_err(QUARRY_NOMEM, "filter: out of memory");
    c->failed = QUARRY_NOMEM;
    return NULL;
}

static const char *kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static int set_str(cctx *c, fstr *dst, const char *s, size_t len) {
    char *p = arena_alloc(&c->arena, len + 1);
    if (!p) return cnomem(c), -1;
    memcpy(p, s, len);
    p[len] = 0;
    dst->s = p;
    dst->len = (uint32_t)len;
    dst->hash = filter_hash(p, len);
    return 0;
}

static fnode *new_node(cctx *c, int op) {
    if (++c->nodes > FILTER_MAX_NODES)
        return cerr(c, "the filter has more than %d nodes", FILTER_MAX_NODES);
    fnode *n = arena_alloc(&c->arena, sizeof *n);
    if (!n) return cnomem(c);
    memset(n, 0, sizeof *n);
    n->op = op;
    return n;
}

/* A field name at the current path. */
static int field_name(cctx *c, const json_t *v, fstr *out) {
    if (!json_is_string(v)) return cerr(c, "must be a field name (a string), not %s", kind(v)), -1;
    size_t len = json_string_length(v);
    if (len < 1 || len > FILTER_MAX_FIELD_LEN)
        return cerr(c, "field names are 1..%d bytes, this one has %zu", FILTER_MAX_FIELD_LEN, len),
               -1;
    return set_str(c, out, json_string_value(v), len);
}

/* ----------------------------------------------------------- in / eq */

static int cmp_fstr(const void *a, const void *b) {
    const fstr *x = a, *y = b;
    return filter_strcmp(x->s, x->len, y->s, y->len);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Check that v is a comparable value (at the current path). */
static int check_value(cctx *c, const json_t *v, const char *hint) {
    if (json_is_string(v) || json_is_number(v) || json_is_boolean(v)) return 0;
    cerr(c, "must be a string, number or boolean, not %s%s", kind(v),
         json_is_array(v) || json_is_object(v) ? hint : "");
    return -1;
}

/* Fill n's value sets from vals[0..count) (already checked). */
static int fill_in(cctx *c, fnode *n, json_t *const *vals, size_t count) {
    size_t ns = 0, nn = 0;
    for (size_t i = 0; i < count; i++) {
        if (json_is_string(vals[i]))
            ns++;
        else if (json_is_number(vals[i]))
            nn++;
        else
            n->bools |= json_is_true(vals[i]) ? 2 : 1;
    }
    if (ns && !(n->strs = arena_alloc(&c->arena, ns * sizeof *n->strs))) return cnomem(c), -1;
    if (nn && !(n->nums = arena_alloc(&c->arena, nn * sizeof *n->nums))) return cnomem(c), -1;
    for (size_t i = 0; i < count; i++) {
        if (json_is_string(vals[i])) {
            if (set_str(c, &n->strs[n->nstrs++], json_string_value(vals[i]),
                        json_string_length(vals[i])))
                return -1;
        } else if (json_is_number(vals[i])) {
            n->nums[n->nnums++] = json_number_value(vals[i]);
        }
    }
    if (n->nstrs > 1) {
        qsort(n->strs, n->nstrs, sizeof *n->strs, cmp_fstr);
        uint32_t k = 1;
        for (uint32_t i = 1; i < n->nstrs; i++)
            if (cmp_fstr(&n->strs[k - 1], &n->strs[i]) != 0) n->strs[k++] = n->strs[i];
        n->nstrs = k;
    }
    if (n->nnums > 1) {
        qsort(n->nums, n->nnums, sizeof *n->nums, cmp_double);
        uint32_t k = 1;
        for (uint32_t i = 1; i < n->nnums; i++)
            if (n->nums[k - 1] != n->nums[i]) n->nums[k++] = n->nums[i];
        n->nnums = k;
    }
    return 0;
}

static const char IN_HINT[] = " (use \"in\" for several values)";

static fnode *c_eq(cctx *c, const json_t *o) {
    if (!json_is_object(o))
        return cerr(c, "must be an object {\"field\": ..., \"value\": ...}, not %s", kind(o));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (strcmp(k, "field") && strcmp(k, "value"))
            return cerr(c, "unknown key \"%s\" (expected \"field\" and \"value\")", k);
    }
    json_t *f = json_object_get(o, "field"), *val = json_object_get(o, "value");
    if (!f) return cerr(c, "missing \"field\"");
    if (!val) return cerr(c, "missing \"value\"");
    fnode *n = new_node(c, FN_IN);
    if (!n) return NULL;
    size_t old = path_key(c, "field");
    if (field_name(c, f, &n->field)) return NULL;
    path_pop(c, old);
    old = path_key(c, "value");
    if (check_value(c, val, IN_HINT)) return NULL;
    path_pop(c, old);
    return fill_in(c, n, &val, 1) ? NULL : n;
}

static fnode *c_in(cctx *c, const json_t *o) {
    if (!json_is_object(o))
        return cerr(c, "must be an object {\"field\": ..., \"values\": [...]}, not %s", kind(o));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (strcmp(k, "field") && strcmp(k, "values"))
            return cerr(c, "unknown key \"%s\" (expected \"field\" and \"values\")", k);
    }
    json_t *f = json_object_get(o, "field"), *vals = json_object_get(o, "values");
    if (!f) return cerr(c, "missing \"field\"");
    if (!vals) return cerr(c, "missing \"values\"");
    fnode *n = new_node(c, FN_IN);
    if (!n) return NULL;
    size_t old = path_key(c, "field");
    if (field_name(c, f, &n->field)) return NULL;
    path_pop(c, old);
    old = path_key(c, "values");
    if (!json_is_array(vals)) return cerr(c, "must be an array of values, not %s", kind(vals));
    size_t count = json_array_size(vals);
    if (count > FILTER_MAX_IN_VALUES)
        return cerr(c, "%zu values, the limit is %d", count, FILTER_MAX_IN_VALUES);
    json_t **items = count ? q_malloc(count * sizeof *items) : NULL;
    if (count && !items) return cnomem(c);
    for (size_t i = 0; i < count; i++) {
        items[i] = json_array_get(vals, i);
        size_t o2 = path_idx(c, i);
        if (check_value(c, items[i], "")) {
            q_free(items);
            return NULL;
        }
        path_pop(c, o2);
    }
    path_pop(c, old);
    int rc = fill_in(c, n, items, count);
    q_free(items);
    return rc ? NULL : n;
}

/* ---------------------------------------------------------------- range */

static fnode *c_range(cctx *c, const json_t *o) {
    if (!json_is_object(o))
        return cerr(c,
                    "must be an object {\"field\": ..., \"gt\"|\"gte\"|\"lt\"|\"lte\": ...}, "
                    "not %s",
                    kind(o));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (strcmp(k, "field") && strcmp(k, "gt") && strcmp(k, "gte") && strcmp(k, "lt") &&
            strcmp(k, "lte"))
            return cerr(c, "\"%s\" is not an operator (use gt, gte, lt, lte)", k);
    }
    json_t *f = json_object_get(o, "field");
    if (!f) return cerr(c, "missing \"field\"");
    json_t *gt = json_object_get(o, "gt"), *gte = json_object_get(o, "gte");
    json_t *lt = json_object_get(o, "lt"), *lte = json_object_get(o, "lte");
    if (gt && gte) return cerr(c, "\"gt\" and \"gte\" cannot both be given");
    if (lt && lte) return cerr(c, "\"lt\" and \"lte\" cannot both be given");
    if (!gt && !gte && !lt && !lte) return cerr(c, "needs at least one bound (gt, gte, lt, lte)");
    fnode *n = new_node(c, FN_RANGE);
    if (!n) return NULL;
    size_t old = path_key(c, "field");
    if (field_name(c, f, &n->field)) return NULL;
    path_pop(c, old);
    json_t *lo = gt ? gt : gte, *hi = lt ? lt : lte;
    const char *lname = gt ? "gt" : "gte", *hname = lt ? "lt" : "lte";
    int nstr = 0, nnum = 0;
    for (int i = 0; i < 2; i++) {
        json_t *b = i ? hi : lo;
        if (!b) continue;
        old = path_key(c, i ? hname : lname);
        if (json_is_string(b))
            nstr++;
        else if (json_is_number(b))
            nnum++;
        else
            return cerr(c, "must be a number or a string, not %s", kind(b));
        path_pop(c, old);
    }
    if (nstr && nnum)
        return cerr(c,
                    "bounds must be all numbers or all strings, not a mix (\"%s\" is %s, "
                    "\"%s\" is %s)",
                    lname, kind(lo), hname, kind(hi));
    n->is_str = nstr > 0;
    n->has_lo = lo != NULL;
    n->lo_incl = gte != NULL;
    n->has_hi = hi != NULL;
    n->hi_incl = lte != NULL;
    if (n->is_str) {
        if (lo && set_str(c, &n->slo, json_string_value(lo), json_string_length(lo))) return NULL;
        if (hi && set_str(c, &n->shi, json_string_value(hi), json_string_length(hi))) return NULL;
    } else {
        if (lo) n->nlo = json_number_value(lo);
        if (hi) n->nhi = json_number_value(hi);
    }
    return n;
}

/* ---------------------------------------------------------------- tree */

static fnode *c_filter(cctx *c, const json_t *j, int depth);

static fnode *c_list(cctx *c, const json_t *a, int op, int depth) {
    if (!json_is_array(a)) return cerr(c, "must be an array of filters, not %s", kind(a));
    fnode *n = new_node(c, op);
    if (!n) return NULL;
    size_t count = json_array_size(a);
    if (count > FILTER_MAX_NODES)
        return cerr(c, "the filter has more than %d nodes", FILTER_MAX_NODES);
    n->nkids = (uint32_t)count;
    if (count && !(n->kids = arena_alloc(&c->arena, count * sizeof *n->kids))) return cnomem(c);
    for (size_t i = 0; i < count; i++) {
        size_t old = path_idx(c, i);
        if (!(n->kids[i] = c_filter(c, json_array_get(a, i), depth + 1))) return NULL;
        path_pop(c, old);
    }
    return n;
}

static fnode *c_shorthand(cctx *c, const json_t *o) {
    size_t count = json_object_size(o);
    fnode *and = NULL;
    if (count != 1) {
        if (!(and = new_node(c, FN_AND))) return NULL;
        and->nkids = 0;
        if (count && !(and->kids = arena_alloc(&c->arena, count * sizeof *and->kids)))
            return cnomem(c);
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        size_t old = path_key(c, k);
        size_t klen = strlen(k);
        if (klen < 1 || klen > FILTER_MAX_FIELD_LEN)
            return cerr(c, "field names are 1..%d bytes, this one has %zu", FILTER_MAX_FIELD_LEN,
                        klen);
        if (json_is_object(v))
            return cerr(c, "a shorthand value must be a string, number or boolean, not an "
                           "object (the key is taken as a field name; the operators are and, "
                           "or, not, eq, in, range, exists)");
        if (check_value(c, v, " (use {\"in\": {\"field\": ..., \"values\": [...]}})")) return NULL;
        fnode *n = new_node(c, FN_IN);
        if (!n || set_str(c, &n->field, k, klen) || fill_in(c, n, &v, 1)) return NULL;
        path_pop(c, old);
        if (!and) return n;
        and->kids[ and->nkids++] = n;
    }
    return and;
}

static fnode *c_filter(cctx *c, const json_t *j, int depth) {
    if (!json_is_object(j)) return cerr(c, "a filter must be an object, not %s", kind(j));
    if (depth > FILTER_MAX_DEPTH)
        return cerr(c, "filters are nested deeper than %d levels", FILTER_MAX_DEPTH);
    size_t size = json_object_size(j);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
        if (is_op(k) && size > 1)
            return cerr(c,
                        "\"%s\" is an operator and cannot be combined with other keys (use "
                        "{\"and\": [...]} to combine filters)",
                        k);
    }
    if (size != 1) return c_shorthand(c, j);
    void *iter = json_object_iter((json_t *)j);
    k = json_object_iter_key(iter);
    v = json_object_iter_value(iter);
    if (!is_op(k)) return c_shorthand(c, j);
    size_t old = path_key(c, k);
    fnode *n;
    if (strcmp(k, "and") == 0) {
        n = c_list(c, v, FN_AND, depth);
    } else if (strcmp(k, "or") == 0) {
        n = c_list(c, v, FN_OR, depth);
    } else if (strcmp(k, "not") == 0) {
        if (!json_is_object(v)) return cerr(c, "must be a filter (an object), not %s", kind(v));
        if (!(n = new_node(c, FN_NOT))) return NULL;
        if (!(n->kids = arena_alloc(&c->arena, sizeof *n->kids))) return cnomem(c);
        n->nkids = 1;
        if (!(n->kids[0] = c_filter(c, v, depth + 1))) return NULL;
    } else if (strcmp(k, "eq") == 0) {
        n = c_eq(c, v);
    } else if (strcmp(k, "in") == 0) {
        n = c_in(c, v);
    } else if (strcmp(k, "range") == 0) {
        n = c_range(c, v);
    } else {
        if (!(n = new_node(c, FN_EXISTS))) return NULL;
        if (field_name(c, v, &n->field)) return NULL;
    }
    if (n) path_pop(c, old);
    return n;
}

int filter_compile(const char *json, size_t len, filter_expr **out) {
    *out = NULL;
    if (!json) return q_err(QUARRY_MISUSE, "filter: NULL text");
    if (len > FILTER_MAX_JSON_LEN)
        return q_err(QUARRY_INVALID, "filter: the text is %zu bytes, the limit is %u", len,
                     FILTER_MAX_JSON_LEN);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root && json_error_code(&jerr) == json_error_out_of_memory)
        return q_err(QUARRY_NOMEM, "filter: out of memory");
    if (!root)
        return q_err(QUARRY_INVALID, "filter is not valid JSON: %s (line %d, column %d, byte %d)",
                     jerr.text, jerr.line, jerr.column, jerr.position);
    cctx c = {.arena = NULL, .path = "$", .plen = 1};
    fnode *n = c_filter(&c, root, 1);
    json_decref(root);
    if (!n) {
        arena_free(c.arena);
        return c.failed ? c.failed : q_err(QUARRY_INTERNAL, "filter: compile failed");
    }
    filter_expr *e = q_malloc(sizeof *e);
    if (!e) {
        arena_free(c.arena);
        return q_err(QUARRY_NOMEM, "filter: out of memory");
    }
    e->root = n;
    e->arena = c.arena;
    *out = e;
    return 0;
}

void filter_expr_free(filter_expr *e) {
    if (!e) return;
    arena_free(e->arena);
    q_free(e);
}

int filter_is_all(const filter_expr *e) { return e->root->op == FN_AND && e->root->nkids == 0; }
