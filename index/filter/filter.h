/* SPDX-License-Identifier: MIT */
/*
 * filter.h -- a host-free metadata filter: an attribute index over the rows'
 * metadata, a JSON filter language compiled into an expression tree, and two
 * evaluators with identical semantics: filter_eval computes the matching rows
 * as a CRoaring bitmap from the index; filter_match decides one row from its
 * metadata object (the reference, and what a retriever uses when it holds the
 * metadata anyway).
 *
 * METADATA. A row's metadata is a flat JSON object whose values are strings,
 * numbers, booleans or arrays of strings (engine/validate.c enforces this). A
 * field holding some other value (null, an object, a non-string array
 * element) still counts for `exists`, but no `eq`/`in`/`range` matches that
 * value. Fields may hold different types in different rows.
 *
 * GRAMMAR (a filter is one JSON object, parsed with jansson):
 *
 *   filter    := and | or | not | eq | in | range | exists | shorthand
 *   and       := {"and": [filter, ...]}          every filter matches ([] = all rows)
 *   or        := {"or":  [filter, ...]}          some filter matches ([] = no row)
 *   not       := {"not": filter}                 the filter does not match
 *   eq        := {"eq": {"field": F, "value": V}}
 *   in        := {"in": {"field": F, "values": [V, ...]}}      eq to any value
 *   range     := {"range": {"field": F, BOUND, ...}}
 *   BOUND     := "gt": B | "gte": B | "lt": B | "lte": B
 *   exists    := {"exists": F}                   the row has field F (any value)
 *   shorthand := {F: V, F: V, ...}               all the equalities ({} = all rows)
 *   F         := a string of 1..256 bytes (a field name)
 *   V         := a string, a number or a boolean
 *   B         := a number, or a string (all bounds of one range the same kind)
 *
 * An object with exactly one key that is an operator name (and, or, not, eq,
 * in, range, exists) is that operator; any other object is a shorthand, and
 * mixing an operator key with other keys is an error. A field literally
 * named like an operator is reached through {"eq": {"field": "in", ...}}.
 * Operator objects take exactly the keys shown. A range needs at least one
 * bound and at most one lower (gt/gte) and one upper (lt/lte) bound.
 *
 * SEMANTICS (both evaluators):
 *  - eq: a string equals a string field, or any element of a string-array
 *    field (membership); a number equals a number field by value, compared
 *    as IEEE doubles (1 == 1.0 == 1e0; integers beyond 2^53 round); a
 *    boolean equals a boolean field. No type coercion: "1" never equals 1,
 *    true never equals 1.
 *  - range with number bounds: number fields whose value lies in the bounds.
 *    With string bounds: string fields (or any element of a string-array
 *    field) in the bounds under byte-wise order (UTF-8 code point order).
 *  - exists: the field is present in the object, whatever its value (an
 *    empty array counts).
 *  - A row without metadata is an empty object: only `not`, `{"and": []}`
 *    and `{}` can match it.
 *  - not is the complement within the universe (the live rows) passed to
 *    filter_eval.
 *
 * LIMITS: nesting depth <= FILTER_MAX_DEPTH operators, <= FILTER_MAX_NODES
 * nodes (every operator and every shorthand equality counts), an `in` holds
 * <= FILTER_MAX_IN_VALUES values, the text is <= FILTER_MAX_JSON_LEN bytes.
 *
 * ERRORS. filter_compile returns QUARRY_INVALID and sets the error detail:
 *  - JSON syntax: `filter is not valid JSON: <jansson's text> (line L,
 *    column C, byte B)`;
 *  - anything else names the offending node by a JSON path:
 *    `filter: $.and[2].range: "gtx" is not an operator (use gt, gte, lt, lte)`
 *    (fields that are not identifiers are written $["a b"]).
 *
 * ATTRIBUTE INDEX. Per field: an exists bitmap; a hash map from string value
 * (string fields and string-array elements) to a bitmap, plus the same values
 * in byte order (sorted blocks of pointers) for string ranges; true/false
 * bitmaps; and for numbers a sorted sequence of (value, row) pairs cut into
 * blocks of at most 2048 pairs, each block carrying the bitmap of its rows,
 * plus the numbers by row. A numeric range ORs the bitmaps of the blocks it
 * covers and adds the rows of the (at most two) partially covered boundary
 * blocks one by one (a range over more than half the pairs works on its
 * complement instead), so it costs O(log n + blocks covered + 4096) with a
 * handful of allocations however many distinct values the field has
 * (timestamps). Inside an `and` whose other operands left few candidate rows,
 * a wide numeric range is checked row by row against the values by row
 * instead of being computed. Appending at the end of the order (increasing
 * timestamps) fills blocks completely. attr_index.c has the measurements.
 *
 * THREADS. A compiled filter_expr is immutable: share it freely. Any number
 * of threads may run filter_eval / attr_index_memory / attr_index_serialize
 * on one index at once; attr_index_add, _remove, _remove_rows, _clear,
 * _optimize and _deserialize need exclusive access (the host's write lock).
 * CRoaring allocates with malloc (this version has no hooks), everything
 * else goes through q_malloc.
 */
#ifndef QUARRY_FILTER_H
#define QUARRY_FILTER_H

#include <jansson.h>
#include <roaring/roaring.h>
#include <stddef.h>
#include <stdint.h>

#define FILTER_MAX_DEPTH     32
#define FILTER_MAX_NODES     1024
#define FILTER_MAX_IN_VALUES 10000
#define FILTER_MAX_JSON_LEN  (4u << 20)
#define FILTER_MAX_FIELD_LEN 256

/* ------------------------------------------------------- attribute index */

typedef struct attr_index attr_index;

/* An empty index. 0 or QUARRY_NOMEM. */
int attr_index_new(attr_index **out);
void attr_index_free(attr_index *ai);

/*
 * Index row `row` with metadata object `meta` (NULL: no metadata, nothing to
 * do). The row must not be in the index already (remove it first). Returns 0,
 * QUARRY_INVALID (meta is not an object) or QUARRY_NOMEM; on failure the index
 * is as before.
 */
int attr_index_add(attr_index *ai, uint32_t row, const json_t *meta);

/* Forget row `row`, which was added with `meta` (the same metadata). Values
 * the index does not hold for the row are ignored. Returns 0 or
 * QUARRY_INVALID (meta is not an object). */
int attr_index_remove(attr_index *ai, uint32_t row, const json_t *meta);

/* Forget every row of `rows` (a bitmap), whatever values the index holds
 * for them: for a host that no longer has the rows' metadata (rows that died
 * after a checkpoint was written). Touches only the fields, values and
 * numeric blocks holding such rows; cannot fail (it allocates one temporary
 * bitmap at most, and takes a slower path without it). */
void attr_index_remove_rows(attr_index *ai, const roaring_bitmap_t *rows);

/* Forget everything: the index is empty (and usable) afterwards. */
void attr_index_clear(attr_index *ai);

/* Compress the bitmaps (run containers) and release spare capacity; for the
 * host to call after a bulk load or at checkpoints (write lock). */
void attr_index_optimize(attr_index *ai);

/* Heap bytes held by the index (approximate for the bitmaps). */
size_t attr_index_memory(const attr_index *ai);

/* Number of distinct fields seen. */
size_t attr_index_field_count(const attr_index *ai);

/*
 * The index to and from bytes (format in attr_serde.c): versioned,
 * self-describing, checksummed. serialize needs only read access (the
 * host's read lock) and returns a q_malloc'd buffer: 0 or QUARRY_NOMEM.
 * deserialize replaces the index's content with the decoded one; the bytes
 * are treated as hostile: anything inconsistent (or any row >= `rows`, the
 * host's row count) gives QUARRY_CORRUPT with a message, and any failure
 * (CORRUPT or NOMEM) leaves the index empty. It never reads outside
 * buf[0..len) and allocates in proportion to len (plus one row -> value page
 * table of at most rows / 4096 entries per numeric field).
 */
int attr_index_serialize(const attr_index *ai, uint8_t **buf, size_t *len);
int attr_index_deserialize(attr_index *ai, const uint8_t *buf, size_t len, uint32_t rows);

/* ------------------------------------------------------------ expressions */

typedef struct filter_expr filter_expr;

/*
 * Compile the filter text json[0..len) (see GRAMMAR). Returns 0 and *out, or
 * QUARRY_INVALID with a message naming the position (see ERRORS), or
 * QUARRY_NOMEM; *out is NULL on failure.
 */
int filter_compile(const char *json, size_t len, filter_expr **out);
void filter_expr_free(filter_expr *e);

/* 1 when the filter matches every row ({} or {"and": []}). */
int filter_is_all(const filter_expr *e);

/*
 * The rows of `universe` (the live rows; what `not` complements against) that
 * match: a new bitmap in *out, which the caller frees with
 * roaring_bitmap_free. Returns 0, QUARRY_MISUSE (a NULL argument) or
 * QUARRY_NOMEM (*out NULL). Thread-safe against other evaluations.
 */
int filter_eval(const filter_expr *e, const attr_index *ai, const roaring_bitmap_t *universe,
                roaring_bitmap_t **out);

/* 1 when the row with metadata `meta` (NULL: none) matches, else 0. For a
 * row in the universe, filter_match(e, meta) == (row is in filter_eval's
 * result) always holds. */
int filter_match(const filter_expr *e, const json_t *meta);

#endif
