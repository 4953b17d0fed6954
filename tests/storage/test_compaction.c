/* SPDX-License-Identifier: MIT */
/*
 * Compaction: after many replacements and deletes over small segments,
 * compaction rewrites the sealed segments with only the live rows, frees
 * disk and memory, and the database reopens to exactly the same content --
 * including deletes whose tombstones were dropped (nothing resurrects).
 * Writers keep committing while compaction runs.
 */
#include "t.h"
#include "tdb.h"

#include <pthread.h>

#define DIM 8
#define KEYS 400

static uint64_t version_of[KEYS]; /* 0 = deleted */

static void check_all(quarry_coll *c) {
    for (uint64_t k = 0; k < KEYS; k++) {
        if (version_of[k]) {
            tdb_check_row(c, k, version_of[k], DIM);
        } else {
            char id[32];
            quarry_doc *d;
            snprintf(id, sizeof id, "k%llu", (unsigned long long)k);
            T_ASSERT_RC(quarry_get(c, id, 0, &d), QUARRY_NOTFOUND);
        }
    }
}

typedef struct writer_arg {
    quarry_coll *c;
    int done;
} writer_arg;

static void *writer(void *p) {
    writer_arg *w = p;
    /* keys [KEYS, KEYS+200) are written concurrently with compaction */
    for (uint64_t k = KEYS; k < KEYS + 200; k += 10) T_ASSERT_OK(tdb_upsert_range(w->c, k, 10, 9, DIM));
    w->done = 1;
    return NULL;
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("compact");
    quarry_db *db = tdb_open(dir, "uring", 4096);
    quarry_coll *c = tdb_coll(db, "c", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_NONE);
    uint64_t seed = 5;
    for (int round = 1; round <= 6; round++) {
        for (uint64_t k = 0; k < KEYS; k += 20) {
            T_ASSERT_OK(tdb_upsert_range(c, k, 20, (uint64_t)round, DIM));
            for (uint64_t j = k; j < k + 20; j++) version_of[j] = (uint64_t)round;
        }
        /* delete a random quarter */
        for (int i = 0; i < KEYS / 4; i++) {
            uint64_t k = t_rand(&seed) % KEYS;
            char id[32];
            snprintf(id, sizeof id, "k%llu", (unsigned long long)k);
            const char *ids[1] = {id};
            T_ASSERT_OK(quarry_delete(c, ids, 1, NULL));
            version_of[k] = 0;
        }
    }
    quarry_coll_stats before, after;
    T_ASSERT_OK(quarry_collection_stats(c, &before));
    T_ASSERT(before.segments > 5);
    T_ASSERT(before.dead_rows > 0);

    writer_arg w = {c, 0};
    pthread_t th;
    pthread_create(&th, NULL, writer, &w);
    T_ASSERT_OK(quarry_collection_compact(c, 1));
    pthread_join(th, NULL);
    T_ASSERT_OK(quarry_collection_stats(c, &after));
    T_ASSERT(after.disk_bytes < before.disk_bytes / 2);
    T_ASSERT_EQ(after.compactions, 1);
    T_ASSERT_EQ(after.rows, before.rows + 200);
    printf("compaction: %llu -> %llu bytes on disk, %llu -> %llu segments, %llu dead rows "
           "reclaimed\n",
           (unsigned long long)before.disk_bytes, (unsigned long long)after.disk_bytes,
           (unsigned long long)before.segments, (unsigned long long)after.segments,
           (unsigned long long)before.dead_rows);
    check_all(c);
    for (uint64_t k = KEYS; k < KEYS + 200; k++) tdb_check_row(c, k, 9, DIM);

    /* non-forced compaction of a mostly-live log does nothing */
    T_ASSERT_OK(quarry_collection_compact(c, 0));
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));

    db = tdb_open(dir, "uring", 4096);
    T_ASSERT_OK(quarry_collection_open(db, "c", &c));
    check_all(c);
    for (uint64_t k = KEYS; k < KEYS + 200; k++) tdb_check_row(c, k, 9, DIM);
    quarry_coll_stats re;
    T_ASSERT_OK(quarry_collection_stats(c, &re));
    T_ASSERT_EQ(re.rows, after.rows);
    T_ASSERT_EQ(re.dead_rows, 0);
    /* compact twice more (compacted segments get compacted again) */
    T_ASSERT_OK(tdb_upsert_range(c, 0, 50, 11, DIM));
    for (uint64_t k = 0; k < 50; k++) version_of[k] = 11;
    T_ASSERT_OK(quarry_collection_compact(c, 1));
    T_ASSERT_OK(quarry_collection_compact(c, 1));
    check_all(c);
    quarry_collection_close(c);
    quarry_close(db);
    db = tdb_open(dir, "uring", 4096);
    T_ASSERT_OK(quarry_collection_open(db, "c", &c));
    check_all(c);
    quarry_collection_close(c);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
    return 0;
}
