/* SPDX-License-Identifier: MIT */
/*
 * tdb.h -- helpers for tests that use a real database on disk: open with a
 * given I/O back end, upsert generated rows, compare rows byte for byte.
 */
#ifndef QUARRY_TDB_H
#define QUARRY_TDB_H

#include "t.h"

/* Open `dir` with back end `io` ("uring" or "posix") and a segment size. */
quarry_db *tdb_open(const char *dir, const char *io, uint64_t seg_max);
/* Like tdb_open but returns the rc (for expected failures). */
int tdb_try_open(const char *dir, const char *io, uint64_t seg_max, quarry_db **out);
/* Create (or open) a collection with the given dim/metric and durability. */
quarry_coll *tdb_coll(quarry_db *db, const char *name, uint32_t dim, quarry_metric metric,
                      quarry_durability dur);
/* Deterministic row content for (key, version). */
void tdb_vector(uint64_t key, uint64_t version, uint32_t dim, float *out);
void tdb_text(uint64_t key, uint64_t version, char *out, size_t cap);
/* Upsert rows [first, first+n) at `version` in one batch. */
int tdb_upsert_range(quarry_coll *c, uint64_t first, size_t n, uint64_t version, uint32_t dim);
/* Check row `key` exists with the content of `version` (exact bytes). */
void tdb_check_row(quarry_coll *c, uint64_t key, uint64_t version, uint32_t dim);
/* Is io_uring usable here? */
int tdb_uring_ok(void);

#endif
