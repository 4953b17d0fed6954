/* SPDX-License-Identifier: MIT */
/*
 * Recovery: a torn tail of the last segment is truncated and the database
 * opens with every acknowledged batch and no partial one; corruption in a
 * sealed segment, damage to bytes a later record says were durable, a
 * missing segment and a damaged manifest are all reported (never skipped).
 * Runs once per I/O back end (io_uring skipped where the kernel refuses it).
 */
#include "t.h"
#include "tdb.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/qcommon.h"
#include "storage/format.h"

#define DIM 8
static const char *g_io;

static char *seg_file(const char *db, int which) {
    /* which >= 0: n-th segment in numeric order; -1: the last one */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/c-1", db);
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort), k = 0;
    T_ASSERT(n > 0);
    char *names[256];
    for (int i = 0; i < n; i++) {
        if (!strncmp(list[i]->d_name, "seg-", 4) && k < 256) names[k++] = strdup(list[i]->d_name);
        free(list[i]);
    }
    free(list);
    T_ASSERT(k > 0);
    int idx = which < 0 ? k - 1 : which;
    T_ASSERT(idx < k);
    char *p = malloc(8192);
    snprintf(p, 8192, "%s/%s", dir, names[idx]);
    for (int i = 0; i < k; i++) free(names[i]);
    return p;
}

static int count_segments(const char *db) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/c-1", db);
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += !strncmp(e->d_name, "seg-", 4);
    closedir(d);
    return n;
}

static off_t file_size(const char *p) {
    struct stat st;
    T_ASSERT(stat(p, &st) == 0);
    return st.st_size;
}

static void flip_byte(const char *path, off_t off) {
    int fd = open(path, O_RDWR);
    T_ASSERT(fd >= 0);
    unsigned char b;
    T_ASSERT(pread(fd, &b, 1, off) == 1);
    b ^= 0x40;
    T_ASSERT(pwrite(fd, &b, 1, off) == 1);
    close(fd);
}

/* A database with `batches` batches of 5 rows, keys 0.., version = batch. */
static char *make_db(int batches, uint64_t seg_max) {
    char *dir = t_tmpdir("recovery");
    quarry_db *db = tdb_open(dir, g_io, seg_max);
    quarry_coll *c = tdb_coll(db, "c", DIM, QUARRY_METRIC_L2, QUARRY_DURABILITY_SYNC);
    for (int b = 0; b < batches; b++) T_ASSERT_OK(tdb_upsert_range(c, (uint64_t)b * 5, 5, 1, DIM));
    quarry_collection_close(c);
    T_ASSERT_OK(quarry_close(db));
    return dir;
}

static uint64_t row_count(const char *dir) {
    quarry_db *db = tdb_open(dir, g_io, 0);
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_open(db, "c", &c));
    quarry_coll_stats st;
    quarry_collection_stats(c, &st);
    quarry_collection_close(c);
    quarry_close(db);
    return st.rows;
}

static void test_torn_tail_garbage(void) {
    char *dir = make_db(10, 0);
    char *seg = seg_file(dir, -1);
    off_t before = file_size(seg);
    /* half a record: a header claiming a payload that never arrived */
    int fd = open(seg, O_WRONLY | O_APPEND);
    uint8_t junk[200] = {0};
    put_u32(junk, REC_MAGIC);
    put_u16(junk + 4, REC_BATCH);
    put_u16(junk + 6, REC_VERSION);
    put_u32(junk + 8, 5000);
    T_ASSERT(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    quarry_db *db = tdb_open(dir, g_io, 0);
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_open(db, "c", &c));
    for (uint64_t k = 0; k < 50; k++) tdb_check_row(c, k, 1, DIM);
    /* the log keeps working after the truncation */
    T_ASSERT_OK(tdb_upsert_range(c, 50, 5, 2, DIM));
    quarry_collection_close(c);
    quarry_close(db);
    T_ASSERT(file_size(seg) > before);
    T_ASSERT_EQ(row_count(dir), 55);
    free(seg);
    t_rmdir(dir);
    free(dir);
}

static void test_torn_last_batch(void) {
    char *dir = make_db(10, 0);
    char *seg = seg_file(dir, -1);
    off_t size = file_size(seg);
    /* cut the last record short: the whole last batch must vanish, atomically */
    T_ASSERT(truncate(seg, size - 13) == 0);
    quarry_db *db = tdb_open(dir, g_io, 0);
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_open(db, "c", &c));
    for (uint64_t k = 0; k < 45; k++) tdb_check_row(c, k, 1, DIM);
    for (uint64_t k = 45; k < 50; k++) {
        quarry_doc *d;
        char id[32];
        snprintf(id, sizeof id, "k%llu", (unsigned long long)k);
        T_ASSERT_RC(quarry_get(c, id, 0, &d), QUARRY_NOTFOUND);
    }
    quarry_coll_stats st;
    T_ASSERT_OK(quarry_collection_stats(c, &st));
    T_ASSERT_EQ(st.rows, 45);
    quarry_collection_close(c);
    quarry_close(db);
    free(seg);
    t_rmdir(dir);
    free(dir);
}

static void test_sealed_corruption(void) {
    char *dir = make_db(40, 2048); /* small segments: several sealed ones */
    T_ASSERT(count_segments(dir) >= 3);
    char *seg = seg_file(dir, 0);
    flip_byte(seg, SEG_HEADER_LEN + REC_HEADER_LEN + 30);
    quarry_db *db = NULL;
    int rc = tdb_try_open(dir, g_io, 2048, &db);
    T_ASSERT_RC(rc, QUARRY_CORRUPT);
    T_ASSERT(db == NULL);
    T_ASSERT(strstr(quarry_errmsg(), "seg-") != NULL);
    T_ASSERT(strstr(quarry_errmsg(), "offset") != NULL);
    /* and opening again still refuses: nothing was "repaired" silently */
    T_ASSERT_RC(tdb_try_open(dir, g_io, 2048, &db), QUARRY_CORRUPT);
    free(seg);
    t_rmdir(dir);
    free(dir);
}

static void test_durable_bytes_damaged(void) {
    /* Under `sync`, batch 5 says batches 1..4 were durable when it was written.
     * Damage batch 2 of the last segment: that is corruption, not a torn tail. */
    char *dir = make_db(6, 0);
    char *seg = seg_file(dir, -1);
    off_t size = file_size(seg);
    off_t rec = (size - SEG_HEADER_LEN) / 6; /* all records have the same size */
    flip_byte(seg, SEG_HEADER_LEN + rec + REC_HEADER_LEN + 20);
    quarry_db *db = NULL;
    T_ASSERT_RC(tdb_try_open(dir, g_io, 0, &db), QUARRY_CORRUPT);
    T_ASSERT(strstr(quarry_errmsg(), "durable") != NULL);
    T_ASSERT_EQ(file_size(seg), size); /* nothing truncated */
    free(seg);
    t_rmdir(dir);
    free(dir);
}

static void test_missing_segment_and_manifest(void) {
    char *dir = make_db(40, 2048);
    char *seg = seg_file(dir, 1);
    char *moved = malloc(strlen(seg) + 8);
    sprintf(moved, "%s.away", seg);
    T_ASSERT(rename(seg, moved) == 0);
    quarry_db *db = NULL;
    T_ASSERT_RC(tdb_try_open(dir, g_io, 2048, &db), QUARRY_CORRUPT);
    T_ASSERT(strstr(quarry_errmsg(), "missing") != NULL);
    T_ASSERT(rename(moved, seg) == 0);
    T_ASSERT_EQ(row_count(dir), 200);

    char man[4096];
    snprintf(man, sizeof man, "%s/MANIFEST", dir);
    flip_byte(man, 40);
    T_ASSERT_RC(tdb_try_open(dir, g_io, 2048, &db), QUARRY_CORRUPT);
    T_ASSERT(strstr(quarry_errmsg(), "manifest") != NULL);
    free(moved);
    free(seg);
    t_rmdir(dir);
    free(dir);
}

static void test_orphans_and_lock(void) {
    char *dir = make_db(2, 0);
    char orphan[4096];
    snprintf(orphan, sizeof orphan, "%s/c-1/seg-00000099.log", dir);
    FILE *f = fopen(orphan, "w");
    fputs("left by a crash", f);
    fclose(f);
    snprintf(orphan + strlen(dir), sizeof orphan - strlen(dir), "/c-77");
    T_ASSERT(mkdir(orphan, 0755) == 0);
    quarry_db *db = tdb_open(dir, g_io, 0);
    T_ASSERT(access(orphan, F_OK) != 0);
    snprintf(orphan, sizeof orphan, "%s/c-1/seg-00000099.log", dir);
    T_ASSERT(access(orphan, F_OK) != 0);
    quarry_db *db2 = NULL;
    T_ASSERT_RC(tdb_try_open(dir, g_io, 0, &db2), QUARRY_BUSY);
    T_ASSERT(db2 == NULL);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
}

static void test_reopen_after_rotation(void) {
    char *dir = make_db(60, 2048);
    int nseg = count_segments(dir);
    T_ASSERT(nseg >= 5);
    quarry_db *db = tdb_open(dir, g_io, 2048);
    quarry_coll *c;
    T_ASSERT_OK(quarry_collection_open(db, "c", &c));
    for (uint64_t k = 0; k < 300; k++) tdb_check_row(c, k, 1, DIM);
    quarry_collection_close(c);
    quarry_close(db);
    t_rmdir(dir);
    free(dir);
}

int main(void) {
    const char *backends[] = {"uring", "posix"};
    for (int i = 0; i < 2; i++) {
        g_io = backends[i];
        if (!strcmp(g_io, "uring") && !tdb_uring_ok()) {
            fprintf(stderr, "io_uring unavailable here: testing posix only\n");
            continue;
        }
        test_torn_tail_garbage();
        test_torn_last_batch();
        test_sealed_corruption();
        test_durable_bytes_damaged();
        test_missing_segment_and_manifest();
        test_orphans_and_lock();
        test_reopen_after_rotation();
        printf("recovery (%s): ok\n", g_io);
    }
    return 0;
}
