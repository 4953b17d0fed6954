/* SPDX-License-Identifier: MIT */
/*
 * format.h -- the on-disk format of a Quarry database, byte by byte.
 *
 * All integers are little-endian. All checksums are XXH3-64 with seed 0
 * (xxHash 0.8). Nothing here depends on the host's struct layout: encoders and
 * decoders go through put_uNN/get_uNN.
 *
 * ============================================================== DIRECTORY
 *
 *   DB/LOCK                   flock(LOCK_EX) by the one process that has it open
 *   DB/MANIFEST               the current manifest (below)
 *   DB/MANIFEST.tmp           a manifest being written; ignored and removed on open
 *   DB/c-<id>/seg-<n>.log     segment files of collection <id>; <n> is 8 decimal
 *                             digits. Replay order is the order of the manifest's
 *                             segment list, not the numeric order.
 *
 * Files in DB/c-<id>/ that the manifest does not list (left by a crash between
 * creating a file and installing the manifest) are deleted on open.
 *
 * ============================================================== MANIFEST
 *
 *   offset size  field
 *   0      8     magic "QRYMANIF"
 *   8      4     format version = 1
 *   12     4     body_len (bytes of JSON that follow), <= 64 MiB
 *   16     8     XXH3-64 of the body
 *   24     ...   body: UTF-8 JSON object
 *       {"format":1, "next_collection_id":N,
 *        "collections":[{"id":N, "name":S, "dim":N, "metric":"l2|ip|cosine",
 *                        "index":"flat|hnsw|ivfpq", "durability":"sync|interval|none",
 *                        "interval_ms":N, "hnsw_m":N, "hnsw_ef_construction":N,
 *                        "hnsw_ef_search":N, "ivf_nlist":N, "pq_m":N, "ivf_nprobe":N,
 *                        "ivf_refine":N, "ivf_train_rows":N, "ivf_seed":N (optional,
 *                        0 or absent = default),
 *                        "next_segment":N, "segments":[N, ...]}, ...]}
 *
 * A manifest is valid if and only if the magic and version match, the file is
 * exactly 24 + body_len bytes, the checksum matches and the body parses into
 * the object above with every field in range. An invalid MANIFEST makes open
 * fail with QUARRY_CORRUPT_MANIFEST (it is never guessed at).
 *
 * It is replaced atomically: write MANIFEST.tmp, fsync it, rename it over
 * MANIFEST, fsync the directory.
 *
 * ============================================================== SEGMENT FILE
 *
 * A segment is a 40-byte file header followed by records, each starting at an
 * offset that is a multiple of 8.
 *
 *   File header
 *   offset size  field
 *   0      8     magic "QRYSEG01"
 *   8      4     format version = 1
 *   12     4     collection id
 *   16     8     segment number
 *   24     8     salt: random, chosen when the file is created; the seed of
 *                every record checksum in this file
 *   32     8     XXH3-64 of bytes [0, 32)
 *
 *   Record
 *   offset size  field
 *   0      4     magic "QREC" (bytes 'Q','R','E','C')
 *   4      2     type: 1 = BATCH, 2 = SEAL
 *   6      2     record version = 1
 *   8      4     payload_len (bytes), <= SEG_MAX_PAYLOAD
 *   12     4     reserved, 0
 *   16     8     LSN (batch sequence number of the collection)
 *   24     8     XXH3-64, seeded with the segment's salt, of header bytes
 *                [0, 24) followed by the payload bytes
 *   32     ...   payload (payload_len bytes)
 *   ...    0-7   zero padding to the next multiple of 8 (not checksummed)
 *
 *   BATCH payload -- one atomic batch of operations
 *   0      8     synced_off: bytes of this segment that were known durable
 *                (fdatasync completed) when this record was written
 *   8      4     nops (>= 1)
 *   12     4     reserved, 0
 *   16     ...   nops operations, back to back (no padding):
 *       0   1    op: 1 = UPSERT, 2 = DELETE
 *       1   1    flags: bit 0 vector, bit 1 text, bit 2 metadata (DELETE: 0)
 *       2   2    id_len, 1..256
 *       4   4    dim: float count of the vector (0 without vector)
 *       8   4    text_len (0 without text)
 *       12  4    meta_len (0 without metadata)
 *       16  ...  id bytes, vector (dim float32), text bytes, metadata bytes (JSON)
 *   The operations must fill the payload exactly.
 *
 *   SEAL payload -- the last record of a sealed segment
 *   0      8     data_end: offset of this SEAL record in the file
 *   8      8     records: number of BATCH records in the segment
 *
 * A record at offset `off` of a file of `len` bytes is VALID if and only if:
 *   off % 8 == 0, off + 32 <= len, magic/type/version are as above, reserved
 *   is 0, payload_len <= SEG_MAX_PAYLOAD, off + 32 + payload_len <= len, the
 *   checksum matches, and the payload is well formed for its type (every
 *   length within bounds, flags consistent, operations filling the payload).
 *
 * ============================================================== CHECKPOINT FILE
 *
 *   DB/c-<id>/ckpt-<lsn>-<rows>.idx   the collection's index checkpoint
 *
 *   offset size  field
 *   0      8     magic "QRYCKPT1"
 *   8      4     format version = 1
 *   12     4     kind: 1 = collection indexes (sections below)
 *   16     4     collection id
 *   20     4     rows: row numbers [0, rows) the index covers
 *   24     8     LSN: the index reflects every batch with LSN <= this one
 *   32     8     payload_len
 *   40     8     XXH3-64 of the payload
 *   48     8     XXH3-64 of bytes [0, 48)
 *   56     ...   payload: sections, back to back:
 *                  0  4  section kind: 1 = HNSW graph (index/hnsw/hnsw_serde.c),
 *                                      2 = BM25 text index (index/text/bm25_serde.c)
 *                                      3 = metadata (filter) index
 *                                          (index/filter/attr_serde.c; layout below)
 *                                      4 = IVF-PQ centroids, codebooks and lists
 *                                          (index/ivfpq/ivfpq_serde.c; present once
 *                                          the collection is trained)
 *                  4  4  reserved, 0
 *                  8  8  length L
 *                  16 L  the index's own serialisation (self-checksummed)
 *                A section kind appears at most once; unknown kinds are an error.
 *
 *   Section 3, the metadata index (all rows < the checkpoint's `rows`):
 *     0   4  magic "QAI1"           4   4  version = 1
 *     8   4  nfields                12  4  reserved, 0
 *     16  .. nfields fields, names in strictly increasing byte order:
 *              u32 name length, name bytes (no NUL)
 *              bitmap exists (never empty), bitmap true, bitmap false
 *              u32 nvalues, then per string value (strictly increasing byte
 *                order): u32 length, the bytes, bitmap of its rows (not empty)
 *              u32 nblocks, then per numeric block: u32 n (1..2048), n f64
 *                values, n u32 rows -- (value, row) pairs strictly increasing
 *                across the field, values finite, no row twice
 *     ..  8  XXH3-64 of every byte before it
 *     bitmap := u32 length L, then L bytes of CRoaring's portable format
 *     A row holds at most one kind of value per field (strings, a number,
 *     true, false), every value bitmap lies within the field's exists bitmap.
 *     Rows that died after the checkpoint are removed from it by row number
 *     on load (their metadata is gone by then); rows after it are added.
 *
 * The manifest names the collection's current checkpoint ("checkpoint":
 * {"file", "lsn", "rows"}). A checkpoint is USED only if the file is valid
 * (both checksums, header fields as named in the manifest, the payload
 * decodes) AND replaying the log reaches that LSN with exactly `rows` row
 * versions numbered (so the numbering the graph refers to is the one replay
 * produced). Otherwise it is ignored with a warning and the index is rebuilt
 * from the log: a checkpoint only ever saves time, it is never the only copy
 * of anything. Compaction renumbers rows, so it removes the checkpoint from
 * the manifest before it installs new segments.
 *
 * ============================================================== INVARIANTS
 *
 *  (1) Bytes before a segment's committed end are never rewritten. The only
 *      change to a segment after the fact is truncating an invalid tail
 *      (recovery) or deleting the whole file (compaction).
 *  (2) A batch is one record, so it is wholly valid or wholly invalid.
 *  (3) LSNs never decrease in replay order (compaction keeps them).
 *  (4) Every segment but the last one in the manifest ends with a SEAL record
 *      whose end is the end of the file. The last one may or may not be sealed.
 *  (5) Recovery of the last segment stops at the first invalid record at
 *      offset X. The bytes from X on are a torn tail (a write that was never
 *      acknowledged) and are truncated, UNLESS a valid BATCH record found later
 *      in the file (scanning at 8-byte steps) claims synced_off > X: then bytes
 *      at X had been made durable and are damaged, and open fails with
 *      QUARRY_CORRUPT. An invalid record in any other segment is corruption.
 *      The salt makes the scan safe against user data: bytes a client stored
 *      in a text field cannot form a record that validates, because the
 *      checksum seed is random per file and never leaves the server.
 *      Rationale: a torn write can leave later records intact while an earlier
 *      one is lost (io_uring writes of one batch complete out of order), but
 *      no record can claim durability for bytes that were never synced.
 */
#ifndef QUARRY_FORMAT_H
#define QUARRY_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_MAGIC "QRYCKPT1"
#define CKPT_VERSION 1
#define CKPT_HEADER_LEN 56
#define CKPT_KIND_INDEXES 1
#define CKPT_SECTION_HNSW 1
#define CKPT_SECTION_BM25 2
#define CKPT_SECTION_ATTRS 3
#define CKPT_SECTION_IVFPQ 4
#define CKPT_SECTION_HEADER 16

#define MANIFEST_MAGIC "QRYMANIF"
#define MANIFEST_VERSION 1
#define MANIFEST_HEADER_LEN 24
#define MANIFEST_MAX_BODY (64u << 20)

#define SEG_MAGIC "QRYSEG01"
#define SEG_VERSION 1
#define SEG_HEADER_LEN 40

#define REC_MAGIC 0x43455251u /* "QREC" little-endian */
#define REC_VERSION 1
#define REC_HEADER_LEN 32
#define REC_BATCH 1
#define REC_SEAL 2
#define SEG_MAX_PAYLOAD (512u << 20)
#define BATCH_PREFIX_LEN 16 /* synced_off, nops, reserved */
#define SEAL_PAYLOAD_LEN 16

#define OP_UPSERT 1
#define OP_DELETE 2
#define OP_HEADER_LEN 16
#define OPF_VECTOR 1
#define OPF_TEXT 2
#define OPF_META 4

static inline uint64_t rec_padded(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* A decoded record (pointers into the caller's buffer). */
typedef struct rec_view {
    uint16_t type;
    uint64_t lsn;
    const uint8_t *payload;
    uint32_t payload_len;
    uint64_t total_len; /* header + payload + padding */
} rec_view;

/* A decoded operation of a BATCH payload (pointers into the buffer). */
typedef struct op_view {
    uint8_t op;
    uint8_t flags;
    const char *id;
    uint32_t id_len;
    const uint8_t *vector; /* dim float32 LE, possibly unaligned */
    uint32_t dim;
    const char *text;
    uint32_t text_len;
    const char *meta;
    uint32_t meta_len;
    uint32_t enc_len; /* bytes of this op in the payload */
} op_view;

/*
 * Decode the record at buf[0..avail). Returns 0 and fills *out when the record
 * is valid per the rule above, QUARRY_CORRUPT_RECORD otherwise (with no other
 * effect; never reads outside buf[0..avail)).
 */
int rec_decode(const uint8_t *buf, uint64_t avail, uint64_t salt, rec_view *out);

/* Fill the 32-byte header at rec[0..32) for a payload already at rec+32. */
void rec_seal_header(uint8_t *rec, uint16_t type, uint32_t payload_len, uint64_t lsn,
                     uint64_t salt);

/* Iterate the operations of a BATCH payload: *pos starts at BATCH_PREFIX_LEN.
 * Returns 1 and fills *op, 0 at the end, or QUARRY_CORRUPT_RECORD (< 0 never). */
int batch_next_op(const uint8_t *payload, uint32_t payload_len, uint32_t *pos, op_view *op);
/* Decode the operation at h[0..) without any check (bytes this process
 * encoded itself); returns its encoded length. batch_next_op validates first. */
uint32_t op_view_raw(const uint8_t *h, op_view *op);
/* Validate a whole BATCH payload's structure; 0 or QUARRY_CORRUPT_RECORD. */
int batch_validate(const uint8_t *payload, uint32_t payload_len);

/* Encoded size of one operation. */
static inline uint64_t op_encoded_len(uint32_t id_len, uint32_t dim, uint32_t text_len,
                                      uint32_t meta_len) {
    return OP_HEADER_LEN + (uint64_t)id_len + 4ull * dim + text_len + meta_len;
}
/* Encode one operation at p (op_encoded_len bytes). */
void op_encode(uint8_t *p, uint8_t op, const char *id, uint32_t id_len, const float *vec,
               uint32_t dim, const char *text, uint32_t text_len, const char *meta,
               uint32_t meta_len);

/* Segment file header: encode into hdr[0..40); check returns 0 (and *salt) or
 * QUARRY_CORRUPT_SEGMENT. */
void seg_header_encode(uint8_t *hdr, uint32_t coll_id, uint64_t segno, uint64_t salt);
int seg_header_check(const uint8_t *hdr, uint64_t len, uint32_t coll_id, uint64_t segno,
                     uint64_t *salt);

#endif
