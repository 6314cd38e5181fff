/* plog_internal: the plog structure, shared by plog.c (append, read, truncation,
 * retention, flushing) and recovery.c (plog_open). Not for use outside
 * broker/storage/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/storage/plog.h"
#include "broker/storage/segment.h"

/* Recovery reads the log in chunks of this size. */
#define PLOG_SCAN_BUF (4u << 20)
/* Header walks on the event loop use a stack window of this size. */
#define PLOG_WALK_BUF 16384

struct plog {
    char *dir;
    struct plog_config cfg;
    struct fdcache *fc;
    struct segment **segs; /* by base offset; the last one is active */
    size_t nsegs;
    size_t segs_cap;

    int64_t log_start;
    int64_t leo;
    int64_t recovery_point;
    int64_t size_bytes;
    /* The replica's high watermark as replication last set it (log start until
     * then): retention and plog_raise_start_offset() never go past it. */
    int64_t hw;

    /* Where the last read ended, so a sequential consumer skips the lookup. */
    bool rc_valid;
    int64_t rc_next;
    int64_t rc_base;
    int64_t rc_pos;

    int64_t unflushed_msgs;
    int64_t oldest_unflushed_ms;    /* 0 when nothing is unflushed */
    int64_t first_since_prepare_ms; /* first append after the last flush prepare */
    bool dir_dirty;                 /* segments created or removed since the last flush */
    uint64_t trunc_gen;             /* bumped by every truncation */
    int64_t now_ms;                 /* latest wall clock a caller passed in */
};

static inline struct segment *plog_active(const struct plog *log)
{
    return log->segs[log->nsegs - 1];
}

/* Index of the last segment whose base is <= @offset, 0 if none is. */
size_t plog_seg_floor(const struct plog *log, int64_t offset);
int plog_segs_append(struct plog *log, struct segment *seg);
/* Effective segment size limit: positions must fit the int32 index fields. */
int64_t plog_segment_limit(const struct plog *log);
/* Start a new empty active segment at the log end. */
int plog_roll(struct plog *log, int64_t now_ms);
/* Max entries per index file. */
int32_t plog_index_max_entries(const struct plog *log, size_t entry_size);
void plog_free_struct(struct plog *log);
/* Rename a segment's three files to "<name>.deleted" (releasing its descriptor
 * slots; readers holding references keep valid files), appending the new names
 * (malloc'd) to @paths, which has room for SEG_KINDS more. A file that cannot be
 * renamed is unlinked instead. */
int plog_retire_segment(struct plog *log, struct segment *seg, char **paths, size_t *n);
