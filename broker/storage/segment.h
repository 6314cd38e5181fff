/* segment: one segment of a plog — its three files, its in-memory summary, the
 * maintenance of its sparse indexes, and batch-header walks over its .log.
 * Internal to broker/storage/ (plog.h is the public interface).
 *
 * Per segment the log keeps only a struct segment (about a hundred bytes); the
 * files are opened through the fdcache when needed. The active segment also owns
 * a lazily allocated page of index entries not written yet (struct seg_pending). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/storage/plog.h"
#include "common/batch.h"

struct plog;

/* ---- fdcache internals (fdcache.c) ------------------------------------------ */

/* Return the open file in *@slot with one more reference, or open @path with
 * @oflags, store the new seg_file in *@slot (the cache clears the slot when it
 * evicts the file) and return it with one reference. Release with
 * seg_file_unref(). */
int fdcache_acquire(struct fdcache *fc, struct seg_file **slot, const char *path, int oflags,
                    struct seg_file **ret);
/* The owner lets go of *@slot: the file closes now if unreferenced, else on its
 * last unref. *@slot becomes NULL. */
void fdcache_release_slot(struct seg_file **slot);
int fdcache_max_open(const struct fdcache *fc);

/* ---- segments ----------------------------------------------------------------- */

enum seg_kind { SEG_LOG = 0, SEG_INDEX = 1, SEG_TIMEINDEX = 2 };
#define SEG_KINDS 3

/* "%020lld" + ".timeindex" + ".deleted" + NUL fits. */
#define SEG_NAME_MAX 48

/* Pending index entries of the active segment (one page in all). */
#define SEG_PEND_IDX_BYTES  2048 /* 256 offset entries */
#define SEG_PEND_TIDX_BYTES 2040 /* 170 time entries */
struct seg_pending {
    uint16_t idx_n;
    uint16_t tidx_n;
    uint8_t idx[SEG_PEND_IDX_BYTES];
    uint8_t tidx[SEG_PEND_TIDX_BYTES];
};

#define SEG_TS_NONE INT64_MIN

struct segment {
    int64_t base;
    int64_t size; /* bytes of whole batches in .log */
    /* Largest batch maxTimestamp and the base offset of the first batch that had
     * it; -1 when the segment holds no timestamp. */
    int64_t max_ts;
    int64_t max_ts_offset;
    int64_t first_ts;      /* first batch's maxTimestamp (roll by age), SEG_TS_NONE if unknown */
    int64_t created_ms;    /* when the segment was created or opened */
    int64_t idx_last_pos;  /* position of the last .index entry, -1 if none */
    int64_t tidx_last_pos; /* log size when the last .timeindex entry was added */
    int64_t tidx_last_ts;  /* timestamp of the last .timeindex entry, -1 if none */
    int32_t idx_n;         /* .index entries, pending ones included */
    int32_t tidx_n;        /* .timeindex entries, pending ones included */
    struct seg_pending *pend;
    struct seg_file *files[SEG_KINDS];
};

/* An empty segment summary (no files touched). NULL on ENOMEM. */
struct segment *seg_new(int64_t base, int64_t now_ms);
/* Release the file slots and memory. NULL-safe. Pending entries are dropped:
 * call seg_write_pending() first. */
void seg_free(struct segment *seg);

/* "<dir>/<base>.<kind suffix><extra>" into @buf. -ENAMETOOLONG if it does not fit. */
int seg_path(const struct plog *log, int64_t base, enum seg_kind kind, const char *extra, char *buf,
             size_t n);
extern const char *const seg_suffix[SEG_KINDS];

/* One referenced handle on a segment file, opened read-write (plus @extra_oflags,
 * e.g. O_CREAT | O_TRUNC) through the log's fdcache. */
int seg_acquire(struct plog *log, struct segment *seg, enum seg_kind kind, int extra_oflags,
                struct seg_file **ret);
/* Create (or empty) all three files of a new segment. */
int seg_create_files(struct plog *log, struct segment *seg);
/* Unlink the three files (missing ones are fine) after releasing the slots. */
int seg_unlink_files(struct plog *log, struct segment *seg);

/* ---- reading batch headers ---------------------------------------------------- */

/* A read-ahead window over a .log file for walking batch headers. */
struct seg_reader {
    int fd;
    int64_t limit; /* bytes of the file that belong to the segment */
    uint8_t *buf;
    size_t cap;
    int64_t off;        /* file offset of buf[0] */
    size_t len;         /* valid bytes in buf */
    int64_t last_total; /* size of the last batch seen: big ones get header-only reads */
};

void seg_reader_init(struct seg_reader *r, int fd, int64_t limit, void *buf, size_t cap);
/* The header of the batch at @pos, checked for framing: enough bytes for the header
 * and the declared length within the limit, length >= 49, magic 2, offsets not
 * negative. 1 and *@ret on success, 0 when @pos is at the limit (no more batches),
 * -EBADMSG for a malformed or torn batch, or an I/O error. */
int seg_reader_header(struct seg_reader *r, int64_t pos, struct batch_header *ret);

/* Framing checks shared by the reader and recovery: -EBADMSG when the header of a
 * batch at @pos cannot be a stored batch of a file of @limit bytes. */
int seg_check_header(const struct batch_header *h, int64_t pos, int64_t limit);

/* Walk from @pos (a batch boundary) to the first batch whose last offset is
 * >= @offset. 1 with *@ret_pos and *@ret_h when found, 0 when the segment ends first
 * (*@ret_pos is then the limit and *@ret_end the offset after the last batch
 * walked, if any was, else left alone). Errors as seg_reader_header(). */
int seg_walk_to(struct seg_reader *r, int64_t pos, int64_t offset, int64_t *ret_pos,
                struct batch_header *ret_h, int64_t *ret_end);

/* ---- indexes ------------------------------------------------------------------ */

/* Index maintenance for a batch written at @pos: maybe add an offset index entry
 * (first batch, then one per index_interval_bytes) and, when the segment's max
 * timestamp grew, a time index entry. Entries go to the pending page, written when
 * it fills. Never fails: an entry that cannot be stored is dropped, which only
 * makes the index sparser. */
void seg_index_batch(struct plog *log, struct segment *seg, int64_t pos,
                     const struct batch_header *h);
/* Write the pending entries; with @final_ts first add a time index entry for the
 * current max timestamp if it is newer than the last one (roll, flush, close), so a
 * reopened segment learns its max timestamp from the last entry. On a write error
 * the pending entries are dropped and the files cut back to their previous size. */
int seg_write_pending(struct plog *log, struct segment *seg, bool final_ts);

/* The position to start a header walk for @offset: the greatest offset index entry
 * at or below it, checked against the batch header it points at (an inconsistent
 * index falls back to 0). @r reads the segment's .log. */
int seg_lookup_offset(struct plog *log, struct segment *seg, struct seg_reader *r, int64_t offset,
                      int64_t *ret_pos);
/* Position of the batch containing @offset or the first one after it (walk from
 * the index hint). 1 with *@ret_pos and *@ret_h, 0 if the segment has no such batch
 * (then *@ret_end, if not NULL, is updated as by seg_walk_to()). */
int seg_find_batch(struct plog *log, struct segment *seg, struct seg_reader *r, int64_t offset,
                   int64_t *ret_pos, struct batch_header *ret_h, int64_t *ret_end);
/* The position to start a walk for the first batch whose maxTimestamp >= @ts:
 * from the greatest time index entry with timestamp <= @ts (all batches before it
 * are older), checked against its batch, else 0. */
int seg_lookup_time(struct plog *log, struct segment *seg, struct seg_reader *r, int64_t ts,
                    int64_t *ret_pos);

/* Cut the segment at @pos (a batch boundary, the batch there has base offset
 * @cut_offset), dropping index entries for the removed batches and recomputing the
 * max timestamp. */
int seg_truncate(struct plog *log, struct segment *seg, int64_t pos, int64_t cut_offset);

/* ---- scanning (recovery, index rebuild) --------------------------------------- */

struct seg_scan_opts {
    int64_t crc_from;     /* CRC-check batches whose last offset is >= this */
    int64_t offset_limit; /* batches must end below this (the next segment's base) */
    bool rebuild_index;   /* rewrite .index and .timeindex from the batches seen */
};

struct seg_scan_result {
    int64_t valid_size;  /* bytes of good whole batches from the start */
    int64_t next_offset; /* offset after the last good batch, the base if none */
    int64_t file_size;
    int32_t batches;
    int32_t crc_checked; /* batches whose CRC was verified */
    bool bad;            /* stopped before the end at a torn or corrupt batch */
};

/* Read the whole .log sequentially with large reads and check every batch:
 * framing, offsets increasing from the base and below @offset_limit, relative
 * offsets fitting the index, and past @crc_from batch_validate() (CRC). Does not
 * truncate; the caller cuts at valid_size. Sets the segment's size, timestamps and
 * (with rebuild_index) its index state. */
int seg_scan(struct plog *log, struct segment *seg, const struct seg_scan_opts *o,
             struct seg_scan_result *ret);
