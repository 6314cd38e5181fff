/* plog: one partition replica's log — a directory `<topic>-<partition>` of segments.
 *
 * A segment is three files named by its 20-digit zero-padded base offset:
 *   00000000000000000000.log        record batches exactly as stored
 *   00000000000000000000.index      sparse offset index: 8-byte entries
 *                                   (int32 offset - base, int32 file position), one
 *                                   per log.index.interval.bytes of log
 *   00000000000000000000.timeindex  12-byte entries (int64 max timestamp so far,
 *                                   int32 offset - base), appended when the
 *                                   segment's max timestamp grows, at most one per
 *                                   index interval
 * (Kafka's formats, so its DumpLogSegments-style tools read them.) The last segment
 * is the active one; appends go there; it rolls by size and age.
 *
 * Resource use is bounded: a plog keeps no fd open for itself. Files are opened
 * through a shared fdcache (at most N descriptors for all logs) and closed when
 * evicted; no mmap. Per segment, a plog holds only a few dozen bytes in memory,
 * plus at most one index page of pending entries for the active segment.
 *
 * Threading: a plog is used on one thread (the broker's event loop). Only
 * plog_flush_job_run() may run elsewhere, and it touches nothing but its job.
 * Nothing here calls fsync except that function and plog_flush_sync().
 *
 * Errors are negative errno; the library does not log above debug, the caller logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plog;
struct fdcache;
struct seg_file;

/* ---- shared descriptor cache ------------------------------------------------ */

/* A cache of open segment files shared by every plog of a process. At most
 * @max_open descriptors stay open (minimum 8); least recently used files are
 * closed first, never one that a reader still holds a reference to. */
int fdcache_new(int max_open, struct fdcache **ret);
/* Every plog using it must be closed first. NULL-safe. */
void fdcache_free(struct fdcache *fc);
int fdcache_open_count(const struct fdcache *fc);

/* An open, read-only view of one segment's .log file, reference-counted so the
 * network layer can sendfile from it after plog_read() returns, even if the cache
 * wants the descriptor back or the segment is deleted meanwhile. */
struct seg_file *seg_file_ref(struct seg_file *f);
void seg_file_unref(struct seg_file *f); /* NULL-safe */
int seg_file_fd(const struct seg_file *f);

/* ---- configuration ---------------------------------------------------------- */

struct plog_config {
    int64_t segment_bytes;           /* log.segment.bytes, default 1 GiB */
    int64_t roll_ms;                 /* log.roll.ms, default 168 h */
    int64_t roll_jitter_ms;          /* log.roll.jitter.ms (segment.jitter.ms), default 0:
                                        each segment's age limit is roll_ms minus a
                                        pseudo-random amount below this */
    int32_t index_interval_bytes;    /* log.index.interval.bytes, default 4096 */
    int32_t max_index_bytes;         /* log.index.size.max.bytes, default 10 MiB: the
                                        segment rolls when its index would pass it */
    int64_t retention_ms;            /* log.retention.ms (resolved), -1 = forever */
    int64_t retention_bytes;         /* log.retention.bytes, -1 = unlimited */
    int64_t flush_interval_messages; /* log.flush.interval.messages, INT64_MAX = OS */
    int64_t flush_interval_ms;       /* log.flush.interval.ms, INT64_MAX = OS */
    int64_t file_delete_delay_ms;    /* log.segment.delete.delay.ms (file.delete.delay.ms):
                                        how long logmgr keeps a retired segment's
                                        *.deleted files before unlinking them; the
                                        library default is 0 (at once), the broker's
                                        is Kafka's 60000 */
    /* cleanup.policy: 'delete' applies retention_ms / retention_bytes, 'compact'
     * lets the log cleaner (cleaner.h) keep only the latest record per key; both
     * may be set. Default: delete only. */
    bool cleanup_delete;
    bool cleanup_compact;
    double min_cleanable_ratio;    /* min.cleanable.dirty.ratio, default 0.5 */
    int64_t delete_retention_ms;   /* delete.retention.ms: tombstones live this long
                                      after the clean that first kept them */
    int64_t min_compaction_lag_ms; /* min.compaction.lag.ms, default 0 */
    int64_t max_compaction_lag_ms; /* max.compaction.lag.ms, default INT64_MAX */
};

/* Kafka's defaults. */
void plog_config_defaults(struct plog_config *cfg);

/* ---- open / close ----------------------------------------------------------- */

/* What recovery did, for the caller to log. */
struct plog_recovery_info {
    int32_t segments;          /* segments found */
    int32_t segments_scanned;  /* segments whose batches were re-validated */
    int32_t indexes_rebuilt;   /* .index / .timeindex files rebuilt */
    int64_t truncated_bytes;   /* bytes cut from a torn or corrupt tail */
    int64_t truncated_at;      /* offset where the log was cut, -1 if it was not */
    int32_t segments_deleted;  /* whole segments dropped after a bad batch */
    int32_t stray_files_removed; /* leftover .deleted / .tmp / orphan index files */
    int32_t swaps_completed;   /* cleaner swaps a crash interrupted, finished */
};

/* Open (creating if needed) the log in directory @dir.
 *
 * @recovery_point: every batch below this offset is known to have been fsynced;
 * batches at or after it are re-validated (length and CRC) and the log is
 * truncated at the first torn or corrupt batch, removing later segments. Pass 0
 * when unknown (everything is checked). Index files that are missing, of a bad
 * size, or inconsistent with their log are rebuilt from the log.
 * @log_start_offset: the durable log start offset (DeleteRecords), or -1 to use
 * the base offset of the first segment.
 * @now_ms: wall clock, used for the age of the active segment.
 * @cfg is copied; @fc is borrowed and must outlive the log. @ret_info may be NULL.
 * Errors: -ENOENT/-EACCES/... from the file system, -EBADMSG for a file name
 * that is not a segment name where one is expected. */
int plog_open(const char *dir, const struct plog_config *cfg, struct fdcache *fc,
              int64_t recovery_point, int64_t log_start_offset, int64_t now_ms,
              struct plog **ret, struct plog_recovery_info *ret_info);
/* Writes out pending index entries and releases everything. Does not fsync: call
 * plog_flush_sync() first for a clean shutdown. NULL-safe. */
void plog_close(struct plog *log);

/* Replace the configuration (topic config changes). Takes effect from the next
 * call that reads it: the next append rolls by the new size, age and index
 * limits, the next retention run applies the new retention, the next flush check
 * the new flush policy; nothing already written is rewritten. */
void plog_set_config(struct plog *log, const struct plog_config *cfg);
const struct plog_config *plog_get_config(const struct plog *log);

const char *plog_dir(const struct plog *log);
int64_t plog_log_start_offset(const struct plog *log);
int64_t plog_log_end_offset(const struct plog *log);   /* next offset to be assigned */
int64_t plog_recovery_point(const struct plog *log);   /* everything below is fsynced */
/* The high watermark replication last set (the log start offset after open,
 * until then). Bounds retention and plog_raise_start_offset(). */
int64_t plog_high_watermark(const struct plog *log);
/* Set it (replication, or the HW checkpoint at start-up), clamped to
 * [log start offset, log end offset]. Truncation lowers it to the new end. */
void plog_set_high_watermark(struct plog *log, int64_t hw);
int64_t plog_size_bytes(const struct plog *log);       /* sum of .log sizes */
int32_t plog_segment_count(const struct plog *log);
int64_t plog_active_segment_base(const struct plog *log);

/* ---- append ----------------------------------------------------------------- */

enum plog_append_flags {
    /* Leader path: rewrite base offsets so the batches start at the log end offset.
     * Without it (follower path), each batch's base offset must be at or past the
     * log end offset and past the previous batch: a compacted leader's log has
     * gaps where the cleaner removed whole batches, and the follower keeps them. */
    PLOG_APPEND_ASSIGN_OFFSETS = 1 << 0,
};

struct plog_append_info {
    int64_t first_offset;  /* base offset of the first appended batch */
    int64_t last_offset;   /* last offset of the last appended batch */
    int64_t max_timestamp; /* largest maxTimestamp among the appended batches */
    int32_t batches;
    int32_t records;
    bool rolled;           /* a new segment was started for this append; the previous
                              one should be flushed soon (fsync on roll) */
};

/* Append @len bytes holding one or more whole record batches, already validated by
 * the caller (batch_validate_all). The buffer is modified in place (base offset,
 * and the partition leader epoch when @leader_epoch >= 0). Rolls the active
 * segment first when the append would take it past segment_bytes, when it is older
 * than roll_ms, or when its index is full. Batches are written with write(2) and
 * are not fsynced here (see flushing).
 * Errors: -EINVAL (not whole batches, or offsets not contiguous with the log end
 * without PLOG_APPEND_ASSIGN_OFFSETS), -EMSGSIZE (one batch larger than
 * segment_bytes), -ENOSPC/-EIO from the file system — after a failed write the
 * segment is cut back to its previous size, so the log stays as it was. */
int plog_append(struct plog *log, void *data, size_t len, unsigned flags, int32_t leader_epoch,
                int64_t now_ms, struct plog_append_info *ret_info);

/* ---- read ------------------------------------------------------------------- */

struct plog_read_result {
    struct seg_file *file; /* one reference, release with seg_file_unref(); NULL when empty */
    int64_t position;      /* file offset of the first byte */
    int64_t length;        /* 0 when there is nothing to read */
    int64_t first_offset;  /* base offset of the first batch returned */
    int64_t next_offset;   /* last offset of the last batch returned + 1 */
};

/* Find whole batches for a fetch from @offset: starting with the batch that
 * contains @offset (it may begin before @offset, as in Kafka), then following
 * batches of the same segment while the total stays within @max_bytes and each
 * batch's base offset is below @max_offset (the high watermark for consumers, the
 * log end offset for followers). When @min_one, the first batch is returned even if
 * it is larger than @max_bytes. Reads stay within one segment; a fetch at the end of
 * a segment continues in the next. The bytes are described, not copied: sendfile
 * them from seg_file_fd(result.file).
 * @offset == log end offset (or >= @max_offset) gives an empty result (length 0).
 * Errors: -ERANGE when @offset < log start offset or > log end offset. */
int plog_read(struct plog *log, int64_t offset, int64_t max_offset, int32_t max_bytes,
              bool min_one, struct plog_read_result *ret);

/* The first offset whose record timestamp is >= @timestamp, and that record's
 * timestamp (Kafka's ListOffsets by time). For a compressed batch the answer is
 * the batch's base offset and its max timestamp. -ENOENT when every record is
 * older. */
int plog_offset_for_timestamp(struct plog *log, int64_t timestamp, int64_t *ret_offset,
                              int64_t *ret_timestamp);

/* ---- truncation, start offset, retention --------------------------------------- */

/* Remove every batch at or after the batch that contains @offset (replication:
 * a follower truncating to the leader's epoch end offset). Whole later segments
 * are deleted; the recovery point never exceeds the new end. *ret_log_end (may be
 * NULL) gets the new log end offset (<= @offset). @offset >= log end: no-op. */
int plog_truncate_to(struct plog *log, int64_t offset, int64_t *ret_log_end);

/* Delete every segment and start empty at @offset (a follower whose fetch offset
 * fell out of the leader's range). */
int plog_truncate_fully(struct plog *log, int64_t offset);

/* Raise the log start offset (DeleteRecords); segments entirely below it become
 * deletable by plog_enforce_retention(). -ERANGE if @offset > the high
 * watermark (as Kafka); lower than the current start is a no-op. */
int plog_raise_start_offset(struct plog *log, int64_t offset);

/* Apply retention: with cleanup_delete, drop the oldest segments whose largest
 * timestamp is older than now - retention_ms, then while the log is larger than
 * retention_bytes drop the
 * oldest segment that keeps it at or above that size, and drop segments wholly
 * below the log start offset — but only segments wholly below the high watermark
 * (the next segment's base, or the log end for the last one, <= HW), as Kafka.
 * When every segment has expired by time, a new empty
 * active segment is rolled at the log end first, so the log is never left without
 * one. The log start offset moves to the first remaining segment's base if it was
 * below it. The removed files are renamed with a ".deleted" suffix and their paths
 * returned in *ret_paths (an array of *ret_count malloc'd strings, freed with
 * plog_paths_free()) for the caller to unlink off the event loop; plog_open()
 * removes any ".deleted" file it finds. */
int plog_enforce_retention(struct plog *log, int64_t now_ms, char ***ret_paths,
                           size_t *ret_count);
void plog_paths_free(char **paths, size_t count);

/* ---- flushing ------------------------------------------------------------------ */

/* True when the flush policy asks for a flush now (unflushed messages >=
 * flush_interval_messages, or the oldest unflushed append is older than
 * flush_interval_ms). */
bool plog_flush_due(const struct plog *log, int64_t now_ms);
int64_t plog_unflushed_messages(const struct plog *log);

struct plog_flush_job;

/* Capture a flush of everything appended so far: duplicated descriptors of each
 * segment written since the last flush (log and index files) and of the directory
 * when segments were created. *ret is NULL when nothing needs flushing. The job
 * does not point at the plog. */
int plog_flush_prepare(struct plog *log, struct plog_flush_job **ret);
/* Blocking: fdatasync/fsync every captured descriptor. Any thread. Returns 0 or
 * the first error. */
int plog_flush_job_run(struct plog_flush_job *job);
/* On the log's thread, after run: on @result == 0 the recovery point advances to
 * the offset captured at prepare. Frees the job. @log may be NULL when the log
 * has been closed meanwhile (the job is just freed). */
void plog_flush_job_finish(struct plog *log, struct plog_flush_job *job, int result);
/* prepare + run + finish on the calling thread (clean shutdown, tests). */
int plog_flush_sync(struct plog *log);
