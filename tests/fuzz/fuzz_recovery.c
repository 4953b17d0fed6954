/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: recovery of a whole segment. The input becomes the body of the
 * only segment of a one-collection database (after a valid header with salt
 * 0), which is then opened: replay, the torn-tail scan and truncation run on
 * hostile bytes. The open must succeed or fail with CORRUPT -- never crash.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#include "common/qcommon.h"
#include "storage/format.h"
#include "storage/storage.h"

static char g_dir[256];

static void write_file(const char *path, const void *a, size_t an, const void *b, size_t bn) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    if (an && write(fd, a, an) != (ssize_t)an) {}
    if (bn && write(fd, b, bn) != (ssize_t)bn) {}
    close(fd);
}

static void rmrf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/quarry-fuzz-recovery-%d", t && *t ? t : "/tmp",
                 (int)getpid());
    }
    rmrf(g_dir);
    mkdir(g_dir, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/c-1", g_dir);
    mkdir(path, 0755);
    uint8_t hdr[SEG_HEADER_LEN];
    seg_header_encode(hdr, 1, 1, 0);
    snprintf(path, sizeof path, "%s/c-1/seg-00000001.log", g_dir);
    write_file(path, hdr, sizeof hdr, data, size);
    manifest m = {0};
    manifest_coll c = {0};
    uint64_t seg = 1;
    c.id = 1;
    strcpy(c.name, "f");
    c.dim = 4;
    c.next_segment = 2;
    c.segments = &seg;
    c.nsegments = 1;
    m.next_collection_id = 2;
    m.colls = &c;
    m.ncolls = 1;
    uint8_t *mb;
    size_t ml;
    if (manifest_encode(&m, &mb, &ml) == 0) {
        snprintf(path, sizeof path, "%s/MANIFEST", g_dir);
        write_file(path, mb, ml, NULL, 0);
        q_free(mb);
    }
    quarry_options o;
    quarry_options_init(&o);
    o.io = QUARRY_IO_POSIX;
    quarry_db *db = NULL;
    int rc = quarry_open(g_dir, &o, &db);
    if (rc == 0) {
        quarry_close(db);
    } else if ((rc & 0xff) != QUARRY_CORRUPT) {
        fprintf(stderr, "recovery fuzz: unexpected rc %d: %s\n", rc, quarry_errmsg());
        abort();
    }
    rmrf(g_dir);
    return 0;
}
