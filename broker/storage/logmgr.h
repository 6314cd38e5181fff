/* logmgr: every partition log of a broker, across its log directories.
 *
 * Layout of a log directory (Kafka's):
 *   <dir>/.lock                              held (flock) while a manager uses the dir
 *   <dir>/recovery-point-offset-checkpoint   per log: everything below is fsynced
 *   <dir>/log-start-offset-checkpoint        per log: the log start offset
 *   <dir>/replication-offset-checkpoint      per log: the high watermark
 *   <dir>/cleaner-offset-checkpoint          per compacted log: clean below this
 *   <dir>/meta.properties                    cluster and broker id (broker/identity.h)
 *   <dir>/<topic>-<partition>/               one plog per partition replica
 *   <dir>/<topic>-<partition>/partition.metadata   its topic id (KIP-516)
 *   <dir>/<topic>-<partition>.<16 hex>-delete/   a deleted log, being removed
 *   <dir>/<topic>-<partition>.<16 hex>-stray/    a log set aside: kept, never opened
 * The topic may itself contain '-' and '.': the partition is the number after the
 * last '-'.
 *
 * The manager owns the plogs, the shared descriptor cache and the background
 * policies that Kafka's LogManager runs:
 *   - flushing: by message count after appends (and on segment roll), by age on the
 *     flush scheduler timer; the fsyncs run on the worker pool and the recovery
 *     point advances when they complete;
 *   - checkpoints: the recovery points, log start offsets and high watermarks
 *     (plog_high_watermark, set by replication) of each dir are collected on the
 *     loop and written (atomically, fsynced) on a worker; at start-up each log's
 *     HW is set from its dir's checkpoint (bounded by its log end);
 *   - retention: plog_enforce_retention() on a timer; the files it retires are
 *     unlinked on a worker;
 *   - deletion: a deleted log's directory is renamed at once (so the name is free
 *     for a new log) and removed on a worker.
 *
 * Threading: everything runs on the thread of @base's event loop. Nothing here
 * blocks that loop during normal operation: only logmgr_new() (start-up recovery)
 * and logmgr_shutdown() do blocking I/O on the calling thread.
 *
 * Failures of background work (a flush, a checkpoint write, a removal) cannot be
 * returned to anyone; they are counted and reported through the event callback
 * so the broker can log them with context (and, for a failed fsync, take the log
 * dir offline as Kafka does). The library itself logs at debug at most. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/storage/plog.h"

struct event_base;
struct wpool;
struct logmgr;

/* ---- events reported to the caller --------------------------------------------- */

enum logmgr_event_type {
    LOGMGR_EVENT_LOG_OPENED,         /* start-up: a log was opened; recovery says how */
    LOGMGR_EVENT_IGNORED_ENTRY,      /* start-up: a directory that is not a log */
    LOGMGR_EVENT_CHECKPOINT_CORRUPT, /* start-up: unreadable checkpoint, treated as missing */
    LOGMGR_EVENT_STALE_DELETE_DIR,   /* start-up: a leftover "-delete" dir, being removed */
    LOGMGR_EVENT_STRAY_DIR,          /* start-up: a "-stray" dir, kept and not opened */
    LOGMGR_EVENT_OPEN_FAILED,        /* start-up: this path made logmgr_new() fail */
    LOGMGR_EVENT_FLUSH_FAILED,       /* a log's fsync failed; its recovery point stays */
    LOGMGR_EVENT_CHECKPOINT_FAILED,  /* writing a checkpoint file failed */
    LOGMGR_EVENT_RETENTION_FAILED,   /* plog_enforce_retention() failed for a log */
    LOGMGR_EVENT_REMOVE_FAILED,      /* unlinking retired segments or a deleted log failed */
    LOGMGR_EVENT_CLEAN_FAILED,       /* compacting a log failed; it stays as it was */
};

struct logmgr_event {
    enum logmgr_event_type type;
    const char *topic;                         /* the log concerned, or NULL */
    int32_t partition;                         /* -1 when no log is concerned */
    const char *path;                          /* the file or directory concerned, or NULL */
    int err;                                   /* negative errno, 0 for notices */
    const struct plog_recovery_info *recovery; /* LOGMGR_EVENT_LOG_OPENED only */
};

/* Called on the loop thread (during logmgr_new() for start-up events). Every
 * pointer in @ev is borrowed for the duration of the call. */
typedef void (*logmgr_event_fn)(void *arg, const struct logmgr_event *ev);

/* ---- options --------------------------------------------------------------------- */

/* Intervals <= 0, or longer than LOGMGR_TIMER_MAX_MS (Kafka's "Long.MaxValue"
 * defaults), disable the timer; checkpoints are then still written by
 * logmgr_shutdown(), and logmgr_run_*() can be called by hand. */
#define LOGMGR_TIMER_MAX_MS (365LL * 24 * 3600 * 1000)

struct logmgr_options {
    const char *const *dirs; /* log.dirs; copied */
    size_t ndirs;
    struct plog_config log_config;               /* for logs opened at start-up and created without
                                                    their own configuration */
    /* Logs opened at start-up keep every segment (retention.ms and .bytes -1)
     * until their own configuration is set with plog_set_config(): a topic that
     * says retention.ms=-1 must not lose data to the broker default while the
     * metadata that says so has not arrived yet. */
    bool startup_retention_off;
    int max_open_files;                          /* descriptor cache size; <= 0: the default */
    int64_t recovery_checkpoint_interval_ms;     /* log.flush.offset.checkpoint.interval.ms */
    int64_t start_offset_checkpoint_interval_ms; /* log.flush.start.offset.checkpoint... */
    int64_t retention_check_interval_ms;         /* log.retention.check.interval.ms */
    int64_t hw_checkpoint_interval_ms;           /* replica.high.watermark.checkpoint.interval.ms */
    int64_t flush_scheduler_interval_ms;         /* log.flush.scheduler.interval.ms */
    /* The log cleaner (cleaner.h): compacts logs whose cleanup.policy includes
     * compact, at most cleaner_threads jobs at once on the worker pool, each with
     * an offset map of cleaner_dedupe_buffer_size / cleaner_threads bytes; idle,
     * it looks for a due log every cleaner_backoff_ms. */
    bool cleaner_enable;                /* log.cleaner.enable */
    int cleaner_threads;                /* log.cleaner.threads */
    int64_t cleaner_dedupe_buffer_size; /* log.cleaner.dedupe.buffer.size */
    int64_t cleaner_backoff_ms;         /* log.cleaner.backoff.ms; <= 0: no timer */
    /* Wall clock in ms for segment ages, retention and flush age; NULL means
     * clock_wall_ms(). Tests pass a fake one. */
    int64_t (*now_ms)(void *arg);
    void *now_arg;
    logmgr_event_fn on_event; /* may be NULL */
    void *event_arg;
};

/* Kafka's defaults for everything but the directories (dirs NULL, ndirs 0). */
void logmgr_options_defaults(struct logmgr_options *opts);

/* Half the soft RLIMIT_NOFILE, clamped to [64, LOGMGR_MAX_OPEN_FILES_DEFAULT_CAP]:
 * the descriptor cache may use half of what the process may open, leaving the
 * rest to sockets and the rest of the broker, and never grows with the number
 * of partitions (idle segments' descriptors are evicted past it). */
#define LOGMGR_MAX_OPEN_FILES_DEFAULT_CAP 8192
int logmgr_default_max_open_files(void);

/* The descriptor limit before and after logmgr_raise_fd_limit(). */
struct logmgr_fd_limit {
    long long soft_before;
    long long soft;
    long long hard;
    int err; /* 0, or the negative errno of a failed setrlimit() (soft unchanged) */
};

/* Raises the soft RLIMIT_NOFILE to the hard limit (as Kafka's start scripts
 * expect the operator to), before the descriptor cache is sized from it.
 * RLIM_INFINITY is reported as -1. Returns 0, or -errno when getrlimit fails. */
int logmgr_raise_fd_limit(struct logmgr_fd_limit *ret);

/* ---- start-up and shutdown --------------------------------------------------------- */

/* Aggregate start-up figures, for the caller to log. */
struct logmgr_open_stats {
    int32_t dirs;
    int32_t logs;
    int32_t segments;
    int32_t segments_scanned; /* 0 after a clean shutdown */
    int32_t indexes_rebuilt;
    int32_t logs_truncated;
    int64_t truncated_bytes;
    int32_t segments_deleted;
    int32_t stray_files_removed;
    int32_t checkpoints_missing; /* files absent (a new dir, or never written) */
    int32_t checkpoints_corrupt; /* files present but unreadable: treated as absent */
    int32_t ignored_entries;     /* directories that are not logs */
    int32_t stale_delete_dirs;   /* leftover "-delete" directories being removed */
    int32_t stray_dirs;          /* "-stray" directories kept */
    int64_t elapsed_ms;          /* monotonic time spent in logmgr_new() */
};

/* Open every log in every directory of @opts (creating the directories as needed),
 * recovering each from the recovery point in its dir's checkpoint (0 when the
 * checkpoint is missing or corrupt: the whole log is re-validated). Blocks.
 * Borrows @base and @pool, which must outlive the manager (free the manager before
 * the pool). @ret_stats may be NULL.
 * Errors: -EINVAL for bad options, -EBUSY when a dir is in use by another manager
 * (its .lock is held), -EEXIST when the same topic-partition is in two dirs, and
 * whatever plog_open() or the file system returned (the path is reported through
 * LOGMGR_EVENT_OPEN_FAILED). */
int logmgr_new(struct event_base *base, struct wpool *pool, const struct logmgr_options *opts,
               struct logmgr **ret, struct logmgr_open_stats *ret_stats);

/* Clean shutdown: stop the timers, wait for background work, fsync every log,
 * write the three checkpoints of every dir, close every log. Blocks. Returns the first
 * error (every log is still closed); after it the manager holds no log and only
 * logmgr_free() may be called. */
int logmgr_shutdown(struct logmgr *mgr);

/* Release everything. Without logmgr_shutdown() first this is what a crash leaves
 * behind: logs are closed without fsync and no checkpoint is written, so the next
 * start re-validates everything past the last written recovery point. Waits for
 * background jobs already submitted (wpool_drain). NULL-safe. */
void logmgr_free(struct logmgr *mgr);

/* ---- logs ------------------------------------------------------------------------ */

/* The configuration logs get when created without their own (the broker's
 * defaults); borrowed. */
const struct plog_config *logmgr_default_config(const struct logmgr *mgr);

/* The log of @topic/@partition, or NULL. Borrowed: valid until the log is deleted
 * or the manager shut down or freed. */
struct plog *logmgr_get(struct logmgr *mgr, const char *topic, int32_t partition);

/* Create a new, empty log in the dir holding the fewest logs (first dir on ties).
 * @topic_id (16 bytes, may be NULL) is written to its partition.metadata first.
 * @cfg NULL means the manager's default configuration; it is copied.
 * Errors: -EINVAL (not a legal topic name or partition < 0), -EEXIST, -ESHUTDOWN
 * after logmgr_shutdown(), or plog_open()'s error. */
int logmgr_create(struct logmgr *mgr, const char *topic, int32_t partition, const uint8_t *topic_id,
                  const struct plog_config *cfg, struct plog **ret);

/* One log of a logmgr_create_batch(). */
struct logmgr_new_log {
    char *topic;       /* owned by the caller */
    int32_t partition;
    bool has_topic_id;
    uint8_t topic_id[16];
    struct plog_config cfg;
    int result;        /* set before @done: 0, or what logmgr_create() would return */
};

/* Called on the loop when a batch is done: every @logs[i].result is set. */
typedef void (*logmgr_batch_fn)(void *ud, struct logmgr_new_log *logs, size_t n);

/* Create @n new, empty logs with the inode-allocating work (directory,
 * partition.metadata, the first segment's three files) on the worker pool,
 * then open them on the loop: with thousands of logs the file system's
 * inode allocation took about a millisecond each on the loop (issue 16).
 * Borrows @logs until @done(@ud, @logs, @n), which is always called (also
 * when the manager is stopping: results -ESHUTDOWN). A log that exists when
 * the batch is opened gets -EEXIST. Errors: -ENOMEM, -ESHUTDOWN (then @done is
 * not called). */
int logmgr_create_batch(struct logmgr *mgr, struct logmgr_new_log *logs, size_t n,
                        logmgr_batch_fn done, void *ud);

/* Delete a log: close it, rename its directory to
 * "<topic>-<partition>.<16 hex>-delete" (the topic is shortened if the name would
 * pass 255 bytes, as Kafka does) and remove that tree on the worker pool. Flushes
 * of the log still in flight finish harmlessly. Both checkpoints of its dir are
 * rewritten soon after. -ENOENT when there is no such log. When the rename fails
 * the log is reopened and the rename's error returned: the old struct plog pointer
 * is then stale, fetch the log again with logmgr_get() (NULL if reopening failed
 * too). */
int logmgr_delete(struct logmgr *mgr, const char *topic, int32_t partition);

/* Set a log aside instead of deleting it: close it and rename its directory to
 * "<topic>-<partition>.<16 hex>-stray" in the same log dir, where it stays, is
 * never opened again and is not counted (docs/operations.md says what an
 * operator does with it). The new path goes to @ret_path (may be NULL). Errors
 * as logmgr_delete(). */
int logmgr_set_aside(struct logmgr *mgr, const char *topic, int32_t partition, char *ret_path,
                     size_t len);

/* The topic id in the log's partition.metadata: 0, -ENOENT (no such log),
 * -ENODATA (the log has none, or an unreadable one). */
int logmgr_topic_id(const struct logmgr *mgr, const char *topic, int32_t partition,
                    uint8_t ret[16]);
/* Record @topic_id in the log's partition.metadata (a log that had none). */
int logmgr_set_topic_id(struct logmgr *mgr, const char *topic, int32_t partition,
                        const uint8_t topic_id[16]);

/* plog_append() with the manager's clock, followed by logmgr_after_append(). */
int logmgr_append(struct logmgr *mgr, struct plog *log, void *data, size_t len, unsigned flags,
                  int32_t leader_epoch, struct plog_append_info *ret_info);

/* The flush policy, to be called after every successful plog_append() of a log
 * this manager owns: when a segment rolled or plog_flush_due() says so, an
 * asynchronous flush of the log is started (at most one per log at a time; a
 * request while one runs starts another when it finishes). -ENOENT when @log is
 * not one of this manager's logs. */
int logmgr_after_append(struct logmgr *mgr, struct plog *log, const struct plog_append_info *info);

/* Start an asynchronous flush of @log now, whatever the policy says. */
int logmgr_flush_async(struct logmgr *mgr, struct plog *log);

/* What start-up recovery (or the open at creation) did for this log. -ENOENT. */
int logmgr_recovery_info(const struct logmgr *mgr, const char *topic, int32_t partition,
                         struct plog_recovery_info *ret);

size_t logmgr_count(const struct logmgr *mgr);

/* Visit every log. @fn must not create or delete logs. */
typedef void (*logmgr_visit_fn)(void *arg, const char *topic, int32_t partition, struct plog *log);
void logmgr_foreach(struct logmgr *mgr, logmgr_visit_fn fn, void *arg);

/* The dir (as given in the options) holding the log, or NULL. */
const char *logmgr_log_dir(const struct logmgr *mgr, const char *topic, int32_t partition);
/* Number of logs in dir @index of the options. */
size_t logmgr_dir_log_count(const struct logmgr *mgr, size_t index);

struct fdcache *logmgr_fdcache(struct logmgr *mgr);
int64_t logmgr_now_ms(const struct logmgr *mgr);

/* ---- the periodic tasks, callable by hand (tests, admin) -------------------------- */

/* What the flush scheduler timer does: start a flush of every log whose
 * plog_flush_due() is true. */
void logmgr_run_flush_scheduler(struct logmgr *mgr);
/* What the checkpoint timers do: collect and write asynchronously. A write of the
 * same file still in progress makes this one follow it. */
void logmgr_run_recovery_checkpoint(struct logmgr *mgr);
void logmgr_run_start_offset_checkpoint(struct logmgr *mgr);
void logmgr_run_hw_checkpoint(struct logmgr *mgr);
/* What the retention timer does. */
void logmgr_run_retention(struct logmgr *mgr);
/* What the cleaner timer does: start a clean of the dirtiest due compacted logs,
 * up to cleaner_threads jobs in flight. A finished clean writes its dir's
 * cleaner-offset-checkpoint and looks for the next due log. */
void logmgr_run_cleaner(struct logmgr *mgr);

/* ---- counters -------------------------------------------------------------------- */

struct logmgr_counters {
    uint64_t flushes_started;
    uint64_t flushes_done; /* completed successfully */
    uint64_t flush_errors;
    uint64_t recovery_checkpoints_written;
    uint64_t start_offset_checkpoints_written;
    uint64_t hw_checkpoints_written;
    uint64_t checkpoint_errors;
    uint64_t retention_runs;
    uint64_t segments_deleted; /* by retention, counted when their files are gone */
    uint64_t files_deleted;
    uint64_t logs_created;
    uint64_t logs_deleted; /* directories fully removed */
    uint64_t remove_errors;
    uint64_t cleans_started;
    uint64_t cleans_done; /* swapped in (or found nothing to drop) */
    uint64_t clean_errors;
    uint64_t cleaner_bytes_read;
    uint64_t cleaner_bytes_written;
    uint64_t cleaner_checkpoints_written;
};

void logmgr_get_counters(const struct logmgr *mgr, struct logmgr_counters *ret);

/* ---- names ------------------------------------------------------------------------ */

/* Split a log directory name "<topic>-<partition>": the partition is the decimal
 * after the last '-' (no sign, no leading zero), the topic before it must be a
 * legal Kafka topic. 0 with *ret_topic_len and *ret_partition set, or -EINVAL. */
int logmgr_parse_dir_name(const char *name, size_t *ret_topic_len, int32_t *ret_partition);
