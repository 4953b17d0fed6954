/* SPDX-License-Identifier: MIT */
/*
 * manifest.c -- encode, decode, read and atomically replace DB/MANIFEST
 * (storage/format.h gives the layout). The body is JSON (jansson) because
 * it is small, rewritten rarely and worth being able to read by eye; the
 * binary header makes a torn or edited file detectable.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/qcommon.h"
#include "storage/storage.h"

static const char *const METRICS[] = {"l2", "ip", "cosine"};
static const char *const INDEXES[] = {"flat", "hnsw", "ivfpq"};
static const char *const DURABILITY[] = {"sync", "interval", "none"};

void manifest_clear(manifest *m) {
    for (size_t i = 0; i < m->ncolls; i++) q_free(m->colls[i].segments);
    q_free(m->colls);
    memset(m, 0, sizeof *m);
}

int manifest_encode(const manifest *m, uint8_t **buf, size_t *len) {
    *buf = NULL;
    json_t *root = json_object(), *arr = json_array();
    int rc = 0;
    if (!root || !arr) goto nomem;
    json_object_set_new(root, "format", json_integer(MANIFEST_VERSION));
    json_object_set_new(root, "next_collection_id", json_integer(m->next_collection_id));
    json_object_set(root, "collections", arr);
    for (size_t i = 0; i < m->ncolls; i++) {
        const manifest_coll *c = &m->colls[i];
        json_t *segs = json_array();
        if (!segs) goto nomem;
        for (size_t j = 0; j < c->nsegments; j++)
            json_array_append_new(segs, json_integer((json_int_t)c->segments[j]));
        json_t *o = json_pack(
            "{s:I, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "id",
            (json_int_t)c->id, "name", c->name, "dim", (json_int_t)c->dim, "metric",
            METRICS[c->metric], "index", INDEXES[c->index], "durability",
            DURABILITY[c->durability], "interval_ms", (json_int_t)c->interval_ms, "hnsw_m",
            (json_int_t)c->hnsw_m, "hnsw_ef_construction", (json_int_t)c->hnsw_ef_construction,
            "hnsw_ef_search", (json_int_t)c->hnsw_ef_search, "ivf_nlist",
            (json_int_t)c->ivf_nlist, "pq_m", (json_int_t)c->pq_m, "ivf_nprobe",
            (json_int_t)c->ivf_nprobe, "next_segment", (json_int_t)c->next_segment, "segments",
            segs);
        if (!o) goto nomem;
        if (json_object_set_new(o, "text_language",
                                json_string(c->text_language[0] ? c->text_language : "english")) ||
            json_object_set_new(o, "bm25_k1", json_real(c->bm25_k1)) ||
            json_object_set_new(o, "bm25_b", json_real(c->bm25_b)) ||
            json_object_set_new(o, "ivf_refine", json_integer((json_int_t)c->ivf_refine)) ||
            json_object_set_new(o, "ivf_train_rows",
                                json_integer((json_int_t)c->ivf_train_rows)) ||
            (c->ivf_seed &&
             json_object_set_new(o, "ivf_seed", json_integer((json_int_t)c->ivf_seed)))) {
            json_decref(o);
            goto nomem;
        }
        if (c->ckpt_file[0]) {
            json_t *ck = json_pack("{s:s, s:I, s:I}", "file", c->ckpt_file, "lsn",
                                   (json_int_t)c->ckpt_lsn, "rows", (json_int_t)c->ckpt_rows);
            if (!ck || json_object_set_new(o, "checkpoint", ck)) {
                json_decref(o);
                goto nomem;
            }
        }
        if (json_array_append_new(arr, o)) goto nomem;
    }
    char *body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!body) goto nomem;
    size_t blen = strlen(body);
    uint8_t *out = q_malloc(MANIFEST_HEADER_LEN + blen);
    if (!out) {
        free(body);
        goto nomem;
    }
    memcpy(out, MANIFEST_MAGIC, 8);
    put_u32(out + 8, MANIFEST_VERSION);
    put_u32(out + 12, (uint32_t)blen);
    put_u64(out + 16, XXH3_64bits(body, blen));
    memcpy(out + MANIFEST_HEADER_LEN, body, blen);
    free(body);
    *buf = out;
    *len = MANIFEST_HEADER_LEN + blen;
    goto out;
nomem:
    rc = q_err(QUARRY_NOMEM, "out of memory encoding the manifest");
out:
    json_decref(arr);
    json_decref(root);
    return rc;
}

static int name_index(const char *s, const char *const *names, int n) {
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static int get_uint(json_t *o, const char *key, uint64_t max, uint64_t *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x > max) return -1;
    *out = (uint64_t)x;
    return 0;
}

#define BAD(...)                                                \
    do {                                                        \
        rc = q_err(QUARRY_CORRUPT_MANIFEST, __VA_ARGS__);       \
        goto out;                                               \
    } while (0)

int manifest_decode(const uint8_t *buf, size_t len, manifest *m) {
    memset(m, 0, sizeof *m);
    int rc = 0;
    json_t *root = NULL;
    if (len < MANIFEST_HEADER_LEN || memcmp(buf, MANIFEST_MAGIC, 8) != 0)
        return q_err(QUARRY_CORRUPT_MANIFEST, "manifest: bad magic");
    if (get_u32(buf + 8) != MANIFEST_VERSION)
        return q_err(QUARRY_CORRUPT_MANIFEST, "manifest: unsupported version %u",
                     get_u32(buf + 8));
    uint32_t blen = get_u32(buf + 12);
    if (blen > MANIFEST_MAX_BODY || (uint64_t)blen + MANIFEST_HEADER_LEN != len)
        return q_err(QUARRY_CORRUPT_MANIFEST, "manifest: length %u does not match the file",
                     blen);
    if (XXH3_64bits(buf + MANIFEST_HEADER_LEN, blen) != get_u64(buf + 16))
        return q_err(QUARRY_CORRUPT_MANIFEST, "manifest: checksum mismatch");
    json_error_t jerr;
    root = json_loadb((const char *)buf + MANIFEST_HEADER_LEN, blen, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (!json_is_object(root)) BAD("manifest: body is not a JSON object (%s)", jerr.text);
    uint64_t v;
    if (get_uint(root, "format", 1000, &v) || v != MANIFEST_VERSION) BAD("manifest: bad format");
    if (get_uint(root, "next_collection_id", UINT32_MAX, &v)) BAD("manifest: next_collection_id");
    m->next_collection_id = (uint32_t)v;
    json_t *arr = json_object_get(root, "collections");
    if (!json_is_array(arr)) BAD("manifest: collections is not an array");
    size_t n = json_array_size(arr);
    m->colls = q_calloc(n ? n : 1, sizeof *m->colls);
    if (!m->colls) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        manifest_coll *c = &m->colls[i];
        m->ncolls = i + 1;
        if (!json_is_object(o)) BAD("manifest: collection %zu is not an object", i);
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name || !*name || strlen(name) > QUARRY_MAX_NAME_LEN)
            BAD("manifest: collection %zu: bad name", i);
        strcpy(c->name, name);
        uint64_t id, dim, im, ef, efs, nl, pm, np, ivl, nx;
        if (get_uint(o, "id", UINT32_MAX, &id) || get_uint(o, "dim", QUARRY_MAX_DIM, &dim) ||
            get_uint(o, "interval_ms", UINT32_MAX, &ivl) ||
            get_uint(o, "hnsw_m", UINT32_MAX, &im) ||
            get_uint(o, "hnsw_ef_construction", UINT32_MAX, &ef) ||
            get_uint(o, "hnsw_ef_search", UINT32_MAX, &efs) ||
            get_uint(o, "ivf_nlist", UINT32_MAX, &nl) || get_uint(o, "pq_m", UINT32_MAX, &pm) ||
            get_uint(o, "ivf_nprobe", UINT32_MAX, &np) ||
            get_uint(o, "next_segment", UINT64_MAX >> 2, &nx))
            BAD("manifest: collection '%s': a numeric field is missing or out of range", name);
        c->id = (uint32_t)id, c->dim = (uint32_t)dim, c->interval_ms = (uint32_t)ivl;
        c->hnsw_m = (uint32_t)im, c->hnsw_ef_construction = (uint32_t)ef;
        c->hnsw_ef_search = (uint32_t)efs, c->ivf_nlist = (uint32_t)nl, c->pq_m = (uint32_t)pm;
        c->ivf_nprobe = (uint32_t)np, c->next_segment = nx;
        c->metric = name_index(json_string_value(json_object_get(o, "metric")), METRICS, 3);
        c->index = name_index(json_string_value(json_object_get(o, "index")), INDEXES, 3);
        c->durability =
            name_index(json_string_value(json_object_get(o, "durability")), DURABILITY, 3);
        if (c->metric < 0 || c->index < 0 || c->durability < 0)
            BAD("manifest: collection '%s': unknown metric, index or durability", name);
        json_t *segs = json_object_get(o, "segments");
        if (!json_is_array(segs)) BAD("manifest: collection '%s': segments", name);
        size_t ns = json_array_size(segs);
        c->segments = q_malloc((ns ? ns : 1) * sizeof *c->segments);
        if (!c->segments) {
            rc = q_err(QUARRY_NOMEM, "out of memory");
            goto out;
        }
        for (size_t j = 0; j < ns; j++) {
            json_t *sv = json_array_get(segs, j);
            if (!json_is_integer(sv) || json_integer_value(sv) <= 0 ||
                (uint64_t)json_integer_value(sv) >= nx)
                BAD("manifest: collection '%s': bad segment number", name);
            c->segments[j] = (uint64_t)json_integer_value(sv);
            for (size_t k = 0; k < j; k++)
                if (c->segments[k] == c->segments[j])
                    BAD("manifest: collection '%s': segment listed twice", name);
        }
        c->nsegments = ns;
        /* text analyzer settings (absent in older manifests: defaults) */
        json_t *tl = json_object_get(o, "text_language");
        const char *lang = tl ? json_string_value(tl) : "english";
        if (!lang || !*lang || strlen(lang) >= sizeof c->text_language)
            BAD("manifest: collection '%s': bad text_language", name);
        strcpy(c->text_language, lang);
        json_t *k1 = json_object_get(o, "bm25_k1"), *bb = json_object_get(o, "bm25_b");
        c->bm25_k1 = k1 ? (float)json_number_value(k1) : 1.2f;
        c->bm25_b = bb ? (float)json_number_value(bb) : 0.75f;
        if ((k1 && !json_is_number(k1)) || (bb && !json_is_number(bb)) || !(c->bm25_k1 >= 0) ||
            !(c->bm25_k1 < 1000) || !(c->bm25_b >= 0) || !(c->bm25_b <= 1))
            BAD("manifest: collection '%s': bad BM25 parameters", name);
        uint64_t rf = 0, tr = 0, sd = 0;
        if ((json_object_get(o, "ivf_refine") && get_uint(o, "ivf_refine", 1000, &rf)) ||
            (json_object_get(o, "ivf_train_rows") &&
             get_uint(o, "ivf_train_rows", UINT32_MAX, &tr)) ||
            (json_object_get(o, "ivf_seed") && get_uint(o, "ivf_seed", INT64_MAX, &sd)))
            BAD("manifest: collection '%s': bad IVF parameters", name);
        c->ivf_refine = (uint32_t)rf, c->ivf_train_rows = (uint32_t)tr, c->ivf_seed = sd;
        json_t *ck = json_object_get(o, "checkpoint");
        if (ck) {
            const char *file = json_string_value(json_object_get(ck, "file"));
            uint64_t cl, cr;
            if (!json_is_object(ck) || !file || !*file || strlen(file) >= sizeof c->ckpt_file ||
                strchr(file, '/') || get_uint(ck, "lsn", INT64_MAX, &cl) ||
                get_uint(ck, "rows", UINT32_MAX, &cr))
                BAD("manifest: collection '%s': bad checkpoint entry", name);
            strcpy(c->ckpt_file, file);
            c->ckpt_lsn = cl, c->ckpt_rows = (uint32_t)cr;
        }
        for (size_t k = 0; k < i; k++)
            if (m->colls[k].id == c->id || !strcmp(m->colls[k].name, c->name))
                BAD("manifest: collection '%s' listed twice", name);
        if (c->id >= m->next_collection_id) BAD("manifest: collection id out of range");
    }
out:
    json_decref(root);
    if (rc) manifest_clear(m);
    return rc;
}

int manifest_read(const char *dbdir, io_ctx *io, manifest *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", dbdir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return q_err(QUARRY_NOTFOUND, "no manifest in %s", dbdir);
        return q_err(QUARRY_IOERR_OPEN, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = q_err(QUARRY_IOERR_READ, "stat %s: %s", path, strerror(errno));
        goto out;
    }
    if ((uint64_t)st.st_size > MANIFEST_MAX_BODY + MANIFEST_HEADER_LEN) {
        rc = q_err(QUARRY_CORRUPT_MANIFEST, "%s is too large", path);
        goto out;
    }
    buf = q_malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = q_err(QUARRY_NOMEM, "out of memory");
        goto out;
    }
    int64_t got = io_pread_all(io, fd, buf, (size_t)st.st_size, 0);
    if (got != st.st_size) {
        rc = q_err(QUARRY_IOERR_READ, "read %s: %s", path,
                   got < 0 ? strerror((int)-got) : "short read");
        goto out;
    }
    rc = manifest_decode(buf, (size_t)st.st_size, out);
    if (rc) q_err_prefix(rc, "%s", path);
out:
    q_free(buf);
    close(fd);
    return rc;
}

int manifest_write(const char *dbdir, io_ctx *io, const manifest *m) {
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", dbdir);
    snprintf(path, sizeof path, "%s/MANIFEST", dbdir);
    uint8_t *buf;
    size_t len;
    int rc = manifest_encode(m, &buf, &len);
    if (rc) return rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        q_free(buf);
        return q_err(q_errno_rc(-e, QUARRY_IOERR_OPEN), "create %s: %s", tmp, strerror(e));
    }
    int w = io_pwrite_all(io, fd, buf, len, 0);
    if (w == 0) w = io_sync(io, fd, 0);
    close(fd);
    q_free(buf);
    if (w < 0) {
        unlink(tmp);
        return q_err(q_errno_rc(w, w == -EIO ? QUARRY_IOERR_FSYNC : QUARRY_IOERR_WRITE),
                     "write %s: %s", tmp, strerror(-w));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return q_err(QUARRY_IOERR_RENAME, "rename %s: %s", tmp, strerror(e));
    }
    return storage_fsync_dir(dbdir);
}
