/* SPDX-License-Identifier: MIT */
/*
 * Group commit: concurrent writers on one `sync` collection share fdatasync
 * calls (fewer syncs than batches), every batch is acknowledged only once
 * durable, all rows are there after a reopen, and the `interval` policy's
 * background flusher makes writes durable without being asked.
 */
#include "t.h"
#include "tdb.h"

#include <pthread.h>
#include <unistd.h>

#define DIM 16
#define THREADS 8
#define BATCHES 60
#define ROWS 10

typedef struct warg {
    quarry_coll *c;
    int t;
} warg;

static void *writer(void *p) {
    warg *w = p;
    for (int b = 0; b < BATCHES; b++)
        T_ASSERT_OK(tdb_upsert_range(w->c, (uint64_t)(w->t * BATCHES + b) * ROWS, ROWS, 1, DIM));
    return NULL;
}

int main(void) {
    if (!tdb_uring_ok()) setenv("QUARRY_IO", "posix", 1);
    char *dir = t_tmpdir("groupcommit");
    quarry_db *db = tdb_open(dir, "uring", 0);
    quarry_coll *c = tdb_coll(db, "g", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    pthread_t th[THREADS];
    warg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (warg){c, t};
        pthread_create(&th[t], NULL, writer, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    quarry_coll_stats st;
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    printf("group commit: %llu batches from %d threads, %llu fdatasync calls (%.2f per batch)\n",
           (unsigned long long)st.batches, THREADS, (unsigned long long)st.syncs,
           (double)st.syncs / (double)st.batches);
    T_ASSERT_EQ(st.batches, THREADS * BATCHES);
    T_ASSERT_EQ(st.rows, THREADS * BATCHES * ROWS);
    T_ASSERT(st.syncs < st.batches);
    quarry_collection_close(c);

    /* interval: the flusher syncs within a few intervals, unasked */
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = DIM;
    cfg.durability = QUARRY_DURABILITY_INTERVAL;
    cfg.interval_ms = 20;
    quarry_coll *ic;
    T_ASSERT_OK(quarry_collection_create(db, "iv", &cfg, &ic));
    T_ASSERT_OK(tdb_upsert_range(ic, 0, 50, 1, DIM));
    int synced = 0;
    for (int i = 0; i < 200 && !synced; i++) {
        usleep(10000);
        T_ASSERT_OK(quarry_collection_stats(ic, &st));
        synced = st.syncs > 0;
    }
    T_ASSERT(synced);
    quarry_collection_close(ic);
    T_ASSERT_OK(quarry_close(db));

    db = tdb_open(dir, "uring", 0);
    T_ASSERT_OK(quarry_collection_open(db, "g", &c));
    for (uint64_t k = 0; k < THREADS * BATCHES * ROWS; k += 37) tdb_check_row(c, k, 1, DIM);
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    T_ASSERT_EQ(st.rows, THREADS * BATCHES * ROWS);
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_collection_open(db, "iv", &ic));
    for (uint64_t k = 0; k < 50; k++) tdb_check_row(ic, k, 1, DIM);
    quarry_collection_close(ic);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
    return 0;
}
