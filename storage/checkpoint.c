/* SPDX-License-Identifier: MIT */
/*
 * checkpoint.c -- index checkpoint files (storage/format.h, CHECKPOINT FILE):
 * an atomic write and a verifying read. The payload is opaque here; the index
 * that produced it decodes it (and treats it as hostile too).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/qcommon.h"
#include "storage/storage.h"

int ckpt_write(const char *dir, const char *name, const ckpt_info *info, const uint8_t *payload,
               size_t len) {
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t hdr[CKPT_HEADER_LEN];
    memcpy(hdr, CKPT_MAGIC, 8);
    put_u32(hdr + 8, CKPT_VERSION);
    put_u32(hdr + 12, info->kind);
    put_u32(hdr + 16, info->coll_id);
    put_u32(hdr + 20, info->rows);
    put_u64(hdr + 24, info->lsn);
    put_u64(hdr + 32, len);
    put_u64(hdr + 40, XXH3_64bits(payload, len));
    put_u64(hdr + 48, XXH3_64bits(hdr, 48));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return q_err(q_errno_rc(-e, QUARRY_IOERR_OPEN), "create %s: %s", tmp, strerror(e));
    }
    int rc = 0;
    const uint8_t *parts[2] = {hdr, payload};
    size_t lens[2] = {sizeof hdr, len};
    for (int i = 0; i < 2 && !rc; i++) {
        const uint8_t *p = parts[i];
        size_t left = lens[i];
        while (left > 0) {
            ssize_t n = write(fd, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                int e = n < 0 ? errno : EIO;
                rc = q_err(q_errno_rc(-e, QUARRY_IOERR_WRITE), "write %s: %s", tmp, strerror(e));
                break;
            }
            p += n, left -= (size_t)n;
        }
    }
    if (!rc && fsync(fd) != 0) rc = q_err(QUARRY_IOERR_FSYNC, "fsync %s: %s", tmp, strerror(errno));
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = q_err(QUARRY_IOERR_RENAME, "rename %s: %s", tmp, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return storage_fsync_dir(dir);
}

int ckpt_decode(const uint8_t *buf, size_t len, ckpt_info *info, const uint8_t **payload,
                size_t *plen) {
    if (len < CKPT_HEADER_LEN || memcmp(buf, CKPT_MAGIC, 8) != 0)
        return q_err(QUARRY_CORRUPT, "checkpoint: bad magic");
    if (get_u64(buf + 48) != XXH3_64bits(buf, 48))
        return q_err(QUARRY_CORRUPT, "checkpoint: header checksum mismatch");
    if (get_u32(buf + 8) != CKPT_VERSION)
        return q_err(QUARRY_CORRUPT, "checkpoint: unsupported version %u", get_u32(buf + 8));
    uint64_t pl = get_u64(buf + 32);
    if (pl != len - CKPT_HEADER_LEN)
        return q_err(QUARRY_CORRUPT, "checkpoint: payload length does not match the file");
    if (get_u64(buf + 40) != XXH3_64bits(buf + CKPT_HEADER_LEN, pl))
        return q_err(QUARRY_CORRUPT, "checkpoint: payload checksum mismatch");
    info->kind = get_u32(buf + 12);
    info->coll_id = get_u32(buf + 16);
    info->rows = get_u32(buf + 20);
    info->lsn = get_u64(buf + 24);
    *payload = buf + CKPT_HEADER_LEN;
    *plen = (size_t)pl;
    return 0;
}

int ckpt_read(const char *dir, const char *name, const ckpt_info *want, uint8_t **payload,
              size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *payload = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return q_err(e == ENOENT ? QUARRY_NOTFOUND : QUARRY_IOERR_OPEN, "open %s: %s", path,
                     strerror(e));
    }
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = q_err(QUARRY_IOERR_READ, "stat %s: %s", path, strerror(errno));
        goto out;
    }
    size_t n = (size_t)st.st_size;
    buf = q_malloc(n + 1);
    if (!buf) {
        rc = q_err(QUARRY_NOMEM, "out of memory reading %s", path);
        goto out;
    }
    for (size_t got = 0; got < n;) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = q_err(QUARRY_IOERR_READ, "read %s: %s", path, r < 0 ? strerror(errno) : "EOF");
            goto out;
        }
        got += (size_t)r;
    }
    ckpt_info info;
    const uint8_t *p;
    size_t pl;
    if ((rc = ckpt_decode(buf, n, &info, &p, &pl))) {
        q_err_prefix(rc, "%s", path);
        goto out;
    }
    if (info.kind != want->kind || info.coll_id != want->coll_id || info.rows != want->rows ||
        info.lsn != want->lsn) {
        rc = q_err(QUARRY_CORRUPT, "%s: header does not match the manifest", path);
        goto out;
    }
    memmove(buf, p, pl);
    *payload = buf;
    *len = pl;
    buf = NULL;
out:
    q_free(buf);
    close(fd);
    return rc;
}

int ckpt_next_section(const uint8_t *buf, size_t len, size_t *off, uint32_t *kind,
                      const uint8_t **sec, size_t *slen) {
    if (*off == len) return 0;
    if (*off > len || len - *off < CKPT_SECTION_HEADER)
        return q_err(QUARRY_CORRUPT, "checkpoint: truncated section header");
    const uint8_t *h = buf + *off;
    uint64_t l = get_u64(h + 8);
    if (get_u32(h + 4) != 0 || l > len - *off - CKPT_SECTION_HEADER)
        return q_err(QUARRY_CORRUPT, "checkpoint: bad section header");
    *kind = get_u32(h);
    *sec = h + CKPT_SECTION_HEADER;
    *slen = (size_t)l;
    *off += CKPT_SECTION_HEADER + (size_t)l;
    return 1;
}
