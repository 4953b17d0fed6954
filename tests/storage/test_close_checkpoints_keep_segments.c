/* SPDX-License-Identifier: MIT */
/*
 * Regression: closing a database whose collections all write a checkpoint at
 * close must not record an earlier-closed collection with no segments (the
 * next open then deleted its segments as orphans). Several collections with
 * text and vectors, closed and reopened three times: every row survives.
 */
#include "t.h"
#include "tdb.h"

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("closeckpt");
    const char *names[] = {"a", "b", "c", "d"};
    for (int round = 0; round < 3; round++) {
        quarry_db *db = tdb_open(dir, "uring", 0);
        for (int i = 0; i < 4; i++) {
            quarry_coll *c = tdb_coll(db, names[i], 8, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
            for (int r = 0; r < round; r++) tdb_check_row(c, (uint64_t)r * 10, 1, 8);
            T_ASSERT_OK(tdb_upsert_range(c, (uint64_t)round * 10, 10, 1, 8));
            quarry_collection_close(c);
        }
        T_ASSERT_OK(quarry_close(db));
    }
    quarry_db *db = tdb_open(dir, "uring", 0);
    for (int i = 0; i < 4; i++) {
        quarry_coll *c;
        T_ASSERT_OK(quarry_collection_open(db, names[i], &c));
        quarry_coll_stats st;
        T_ASSERT_OK(quarry_collection_stats(c, &st));
        T_ASSERT_EQ(st.rows, 30);
        for (uint64_t k = 0; k < 30; k++) tdb_check_row(c, k, 1, 8);
        quarry_collection_close(c);
    }
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
    return 0;
}
