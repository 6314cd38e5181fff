/* cleaner: log compaction (Kafka's LogCleaner) for logs whose cleanup policy
 * includes 'compact'.
 *
 * One clean of one log is a job in three steps:
 *   1. cleaner_prepare(), on the log's thread: choose the range. The dirty section
 *      runs from the log's first dirty offset (the cleaner checkpoint) to the
 *      first uncleanable offset: the active segment's base, the high watermark,
 *      and the base of the first segment holding a record newer than
 *      now - min_compaction_lag_ms, whichever is lowest. The job records the
 *      segments below that offset (never the active one) by base and size.
 *   2. cleaner_job_run(), on a worker thread, touching only files: build the
 *      offset map (key hash -> latest offset) over the dirty section, stopping at
 *      a batch boundary when the map is full (the rest stays dirty for the next
 *      clean, as Kafka); then rewrite every recorded segment, in groups whose
 *      sizes add up to at most segment_bytes, keeping per key only the record at
 *      or after the map's offset. Each group becomes "<base>.log.cleaned" (and its
 *      two index files), fsynced, then renamed to ".swap" (the .log last: the
 *      commit point), and the directory fsynced.
 *   3. cleaner_job_finish(), on the log's thread: if the recorded segments are
 *      still there unchanged (no truncation, retention or swap meanwhile), rename
 *      each group's old files to ".deleted" (returned to the caller, unlinked
 *      after file_delete_delay_ms; readers holding them keep valid descriptors)
 *      and the ".swap" files to their final names, and replace the segments in
 *      memory. Otherwise the swap files are removed and nothing changes.
 * plog_open() finishes a swap a crash interrupted: see recovery.c.
 *
 * What a clean keeps, per record of an uncompressed or compressed batch:
 *   - a record without a key: dropped (produce refuses them on compacted topics);
 *   - a record whose key has a later offset in the map: dropped;
 *   - a tombstone (null value) that is the latest for its key: kept, and its
 *     rewritten batch is stamped with a delete horizon (Kafka's KIP-534: attribute
 *     bit 6, baseTimestamp = clean time + delete_retention_ms); a later clean
 *     after the horizon drops it;
 *   - everything else: kept, at its original offset. A rewritten batch keeps its
 *     base offset, last offset delta, producer fields and codec (compressed
 *     batches are decompressed, filtered and recompressed with the same codec);
 *     a batch left with no record is dropped, leaving an offset gap.
 * Whole batches are kept untouched when they are control batches, or the last
 * batch of their producer id in the cleaned range (so the idempotent producer's
 * state, rebuilt from the log, survives, as Kafka retains it).
 *
 * Memory: the offset map takes @dedupe_bytes (16 bytes per key: a 64-bit key hash
 * and the offset, filled to 90% at most), plus one read buffer and one batch
 * buffer of at most the largest batch. A 64-bit hash collision between two keys
 * would drop the older key's record: with n keys the chance is about n^2 / 2^65.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plog;
struct cleaner_job;

/* How much a log needs cleaning, from its first dirty offset (clamped to the log
 * start). */
struct cleaner_estimate {
    int64_t first_dirty;       /* where the dirty section starts */
    int64_t first_uncleanable; /* where it ends */
    int64_t clean_bytes;       /* bytes of segments below the dirty section */
    int64_t dirty_bytes;       /* bytes of segments in it */
    double dirty_ratio;        /* dirty / (clean + dirty), 0 when both are 0 */
    bool max_lag_due;          /* the oldest dirty record passed max_compaction_lag_ms */
};

/* Compute the estimate of a compacted log. Loop thread. */
void cleaner_estimate(struct plog *log, int64_t first_dirty, int64_t now_ms,
                      struct cleaner_estimate *ret);
/* Whether a log with this estimate is due (Kafka's LogCleanerManager rule): it
 * has dirty bytes and its ratio reaches min_cleanable_ratio, or max lag passed. */
bool cleaner_due(const struct plog *log, const struct cleaner_estimate *e);

/* Capture a clean of @log from @first_dirty. *ret is NULL when there is nothing
 * to clean (no complete segment in the dirty section). @dedupe_bytes bounds the
 * offset map. -ENOMEM. Loop thread. */
int cleaner_prepare(struct plog *log, int64_t first_dirty, int64_t now_ms, int64_t dedupe_bytes,
                    struct cleaner_job **ret);

/* The work: any thread, touches only the job and files. 0, or a negative errno
 * (the job is then discarded by finish). */
int cleaner_job_run(struct cleaner_job *job);

/* What a clean did. */
struct cleaner_stats {
    int64_t clean_upto;      /* the log is clean below this: the next first dirty */
    int64_t bytes_read;      /* bytes of segments rewritten */
    int64_t bytes_written;   /* bytes of cleaned segments */
    int64_t records_read;    /* records of the segments rewritten */
    int64_t records_kept;
    int64_t map_keys;        /* distinct keys in the offset map */
    int32_t segments_before; /* segments rewritten */
    int32_t segments_after;  /* segments they became */
    bool map_full;           /* the dirty section did not fit the map */
};

/* Swap the cleaned segments into @log (NULL when the log is gone: the job's files
 * are removed). On success the retired files' paths go to *@ret_paths (freed with
 * plog_paths_free(); unlink them after file_delete_delay_ms) and @ret_stats (may
 * be NULL) says what changed. -ESTALE when the log changed meanwhile (nothing
 * swapped), or @result / a rename error. Frees the job. Loop thread. */
int cleaner_job_finish(struct plog *log, struct cleaner_job *job, int result, char ***ret_paths,
                       size_t *ret_count, struct cleaner_stats *ret_stats);

/* Discard a job without finishing it (its files are removed). NULL-safe. */
void cleaner_job_free(struct cleaner_job *job);

/* prepare + run + finish on the calling thread (tests, benchmarks). *ret_paths
 * are unlinked here. 0 with stats (clean_upto == first_dirty when nothing was
 * cleaned), or an error. */
int cleaner_clean_sync(struct plog *log, int64_t first_dirty, int64_t now_ms,
                       int64_t dedupe_bytes, struct cleaner_stats *ret_stats);

/* ---- the offset map (exposed for tests) --------------------------------------- */

struct cleaner_map;
/* A map using at most @bytes (at least 16 slots). NULL on ENOMEM. */
struct cleaner_map *cleaner_map_new(int64_t bytes);
void cleaner_map_free(struct cleaner_map *m);
/* Record @offset as the latest for @key. false when the map is full (90% of its
 * slots) and @key is new: nothing is changed. */
bool cleaner_map_put(struct cleaner_map *m, const void *key, size_t len, int64_t offset);
/* The latest offset of @key, or -1. */
int64_t cleaner_map_get(const struct cleaner_map *m, const void *key, size_t len);
int64_t cleaner_map_size(const struct cleaner_map *m);
