/* mlog: the coordinator's durable metadata log — every metadata change is an
 * opaque record appended here and fsynced before anyone is told it happened;
 * state on start = the newest valid snapshot + the records after it.
 *
 * Files in the log directory (format details in docs/metadata-log.md):
 *   metadata-<20-digit first offset>.log   segments: a 24-byte header, then
 *       records framed as u32 length | u32 CRC-32C | i64 offset | payload
 *   snapshot-<20-digit offset>.snap        a 32-byte header + the caller's state
 *       image; offset = number of records it covers = offset of the next record
 * Offsets are dense and start at 0. Records and snapshot images are opaque bytes.
 *
 * Lifecycle (the coordinator's start-up):
 *   mlog_open()            recover: choose a snapshot, validate the log after it,
 *                          cut a torn or corrupt tail; report in the info
 *   mlog_recovered_snapshot(), mlog_replay()   rebuild the state
 *   mlog_attach()          hand over the event loop and worker pool
 *   mlog_append() ...      assign offsets now, callbacks once durable
 *   mlog_write_snapshot()  when mlog_snapshot_due()
 *   mlog_sync(), mlog_close()
 *
 * Group commit: one flush job at a time runs on the worker pool; it writes every
 * record queued when it was started with one write and one fdatasync. Records
 * appended while it runs form the next group. Completion callbacks run on the
 * loop thread, in offset order.
 *
 * Failure: when a write or fsync of the log fails, the log enters a failed state
 * (mlog_error() != 0). The failed group's callbacks get the error; every record
 * queued after it gets -EIO; every later append or snapshot fails with -EIO. The
 * records of the failed group may or may not be on disk: the caller has applied
 * them in memory already, so its state may now hold changes that are not durable.
 * It must stop acknowledging anything and restart; recovery decides which records
 * exist.
 *
 * Threading: every function is for the loop thread; nothing blocks it except the
 * _sync variants, mlog_open(), mlog_replay(), mlog_sync() and mlog_close().
 * Callbacks must not call mlog_close() or mlog_sync().
 *
 * Errors are negative errno. The library logs at debug at most; the caller logs
 * what recovery did, once (mlog_recovery_describe()). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct wpool;
struct mlog;

struct mlog_options {
    /* The active segment is closed and a new one started before a group is
     * written once it holds at least this many bytes (it can overshoot by one
     * group). Default 64 MiB. */
    int64_t segment_bytes;
    /* Largest record payload. Enforced on append and on read: a length above it
     * on disk is corruption, found before anything is allocated. Lowering it below
     * a record already in the log makes recovery cut the log there. Default 8 MiB. */
    uint32_t max_record_bytes;
    /* Largest snapshot image, likewise. Default 1 GiB. */
    uint64_t max_snapshot_bytes;
    /* Appends fail with -EAGAIN while the queued (not yet written) records take
     * more than this; at least max_record_bytes + 16. Default 64 MiB. */
    size_t max_pending_bytes;
    /* mlog_snapshot_due() becomes true this many records after the last
     * snapshot. Policy only: the log never snapshots by itself. Default 10000. */
    int64_t snapshot_interval_records;
};

void mlog_options_defaults(struct mlog_options *opts);

/* How the log was damaged where recovery cut it. */
enum mlog_damage {
    MLOG_DAMAGE_NONE = 0,
    MLOG_DAMAGE_TORN,       /* a file ends inside a record or header: an interrupted write */
    MLOG_DAMAGE_BAD_CRC,    /* a record whose CRC does not match */
    MLOG_DAMAGE_TOO_LONG,   /* a record length above max_record_bytes */
    MLOG_DAMAGE_NOT_DENSE,  /* an offset out of sequence, within or between segments */
    MLOG_DAMAGE_BAD_HEADER, /* a segment header with a bad magic, version, CRC or base */
};

const char *mlog_damage_name(enum mlog_damage d);

/* What recovery found and did, for the caller's one log line. */
struct mlog_recovery_info {
    int32_t segments_found;
    int32_t snapshots_found;
    int32_t snapshots_corrupt;       /* snapshot files that failed validation (left in place) */
    int64_t newest_corrupt_snapshot; /* offset of the newest of them, -1 if none */
    int64_t snapshot_offset;         /* snapshot used; -1 = started from the empty state */
    int64_t replay_records;          /* records after the snapshot, for mlog_replay() */
    int64_t next_offset;             /* offset the next append gets */
    enum mlog_damage damage;         /* NONE when the log ended cleanly */
    int64_t truncated_at;            /* offset where the log was cut, -1 if it was not */
    int64_t dropped_bytes;           /* bytes removed from the cut to the end */
    int32_t segments_removed;        /* segment files deleted */
    /* Well-framed records with a valid CRC found after the cut (best effort: the
     * scan stops at the first unreadable length). 0 with a torn tail is the normal
     * result of a crash. More means damage in the middle of the log, where records
     * that were acknowledged may be gone (or, rarely, an unacknowledged group whose
     * pages reached the disk out of order). */
    int64_t dropped_valid_records;
    /* The valid log ended before the snapshot offset (the snapshot covers what was
     * lost); every segment was replaced by an empty one at the snapshot offset. */
    bool log_behind_snapshot;
    size_t read_buffer_peak; /* largest read buffer used: recovery memory is bounded */
};

/* Open (creating the directory if needed) and recover the log in @dir.
 *
 * Recovery picks the newest snapshot whose header and CRC are valid (corrupt ones
 * are counted and skipped; older ones are the fallback, which is why the log is
 * kept from the previous snapshot on), then validates the records from that
 * offset on, segment by segment, streaming with a bounded buffer. The first torn
 * or corrupt record ends the log: its file is truncated there (ftruncate + fsync)
 * and every later segment is removed. No segment or snapshot is changed before
 * recovery has decided it can succeed.
 *
 * The directory is locked (flock) while open: -EBUSY if another mlog holds it.
 * @opts may be NULL (defaults); it is copied. @ret_info may be NULL.
 * Errors: -EINVAL (options), -EBUSY, -EBADMSG when no usable starting point exists
 * (the oldest segment starts after every valid snapshot, or snapshot files exist
 * but none is valid and the log does not start at 0), file-system errors. */
int mlog_open(const char *dir, const struct mlog_options *opts, struct mlog **ret,
              struct mlog_recovery_info *ret_info);

/* Waits for the running flush and snapshot jobs (their callbacks run), then
 * cancels what is still queued: those callbacks get -ECANCELED. Does no I/O of its
 * own: call mlog_sync() first for a clean shutdown. The event base and pool must
 * still exist. NULL-safe. */
void mlog_close(struct mlog *log);

/* One line describing @info ("clean, snapshot at 10000, 12 records to replay,
 * next offset 10012" or what was cut), for the caller to log: at warn when
 * damage != NONE, at error when dropped_valid_records > 0 or snapshots_corrupt >
 * 0. Always NUL-terminates when @len > 0. */
void mlog_recovery_describe(const struct mlog_recovery_info *info, char *buf, size_t len);

/* The snapshot recovery started from. Borrowed: valid until
 * mlog_release_recovered_snapshot() or mlog_close(). -ENOENT when recovery
 * started from the empty state (offset 0) or it was released. */
int mlog_recovered_snapshot(const struct mlog *log, const uint8_t **ret_data, size_t *ret_len,
                            int64_t *ret_offset);
void mlog_release_recovered_snapshot(struct mlog *log);

/* Called for each record after the snapshot, in offset order. @data is borrowed
 * for the call. A non-zero return stops the replay and is returned. */
typedef int (*mlog_replay_fn)(int64_t offset, const uint8_t *data, size_t len, void *ud);

/* Read the recovered records (offsets mlog_recovered_snapshot's offset or 0 up to
 * the next offset at open) again from disk and pass each to @fn. Memory stays
 * bounded by the largest record. Only before the first append or snapshot
 * (-EINVAL after). -EBADMSG if the files changed since mlog_open(). */
int mlog_replay(struct mlog *log, mlog_replay_fn fn, void *ud);

/* Start asynchronous operation. Borrows @base and @pool (created on @base), which
 * must outlive the log. -EALREADY if attached. */
int mlog_attach(struct mlog *log, struct event_base *base, struct wpool *pool);

/* @status: 0 once the record (or snapshot) is durable, else a negative errno. */
typedef void (*mlog_done_fn)(struct mlog *log, int64_t offset, int status, void *ud);

/* Queue one record (copied; @rec is borrowed for the call) and assign it the next
 * offset, returned in *@ret_offset (may be NULL) right away so the caller can
 * apply records in order. @cb (may be NULL) runs on the loop thread once the
 * record is durable, after the callbacks of every lower offset.
 * Errors (nothing queued, no callback): -EINVAL not attached, -EMSGSIZE @len above
 * max_record_bytes, -EAGAIN too much queued (max_pending_bytes), -EIO the log has
 * failed, -ESHUTDOWN closing, -EOVERFLOW offsets exhausted, -ENOMEM, or
 * wpool_submit's error. */
int mlog_append(struct mlog *log, const void *rec, size_t len, mlog_done_fn cb, void *ud,
                int64_t *ret_offset);

/* Append one record and make it durable on the calling thread (tests, tools,
 * before attach). -EBUSY while an asynchronous flush is running. A write or
 * fsync error fails the log as above. */
int mlog_append_sync(struct mlog *log, const void *rec, size_t len, int64_t *ret_offset);

/* Block until every appended record is durable and no snapshot job is running
 * (drives the pool with wpool_drain(), so callbacks run). Returns mlog_error(). */
int mlog_sync(struct mlog *log);

/* Write a snapshot of the state after applying every record below @offset
 * (@data copied, borrowed for the call), on the worker pool. The job starts only
 * once the records below @offset are durable, so a snapshot never covers a record
 * that could still be lost. It is written atomically (temporary file, fsync,
 * rename, fsync of the directory); after that, snapshots older than the previous
 * one and segments wholly below the previous snapshot are deleted, keeping one
 * fallback. The next group starts a new segment so old ones become deletable.
 * @cb (may be NULL) gets 0 or the error; a failed snapshot does not fail the log.
 * Errors: -EINVAL not attached, @offset above the next offset or not above the
 * newest snapshot; -EBUSY a snapshot is in progress; -EMSGSIZE above
 * max_snapshot_bytes; -EIO failed log; -ESHUTDOWN; -ENOMEM. */
int mlog_write_snapshot(struct mlog *log, int64_t offset, const void *data, size_t len,
                        mlog_done_fn cb, void *ud);
/* The same on the calling thread. -EBUSY when records below @offset are still
 * being flushed or a snapshot is in progress. */
int mlog_write_snapshot_sync(struct mlog *log, int64_t offset, const void *data, size_t len);

/* Replace the whole log by a snapshot taken elsewhere (a quorum voter catching
 * up from its leader). @tmp_name is a file in the log directory named
 * "snapshot-<anything>.snap.tmp.<anything>" (recovery deletes such leftovers)
 * holding a complete snapshot file for @offset (header and image, the format
 * mlog_write_snapshot writes). It is validated and fsynced, then renamed to
 * snapshot-<offset>.snap: that rename is the switch. Afterwards every segment
 * and every other snapshot is removed and an empty segment starts at @offset;
 * a crash after the rename leaves files that recovery completes the same way
 * (log_behind_snapshot), one before it the old log and a leftover that recovery
 * deletes. On success the next offset is @offset and *@ret_image (malloc'd) the
 * image, for the caller's state. A queued snapshot job is cancelled.
 * Errors: -EINVAL (name, or @offset below the next offset), -EBUSY (records
 * queued or being flushed, a snapshot running: mlog_sync() first), -EBADMSG (the
 * file is not a valid snapshot for @offset; nothing changed), -EIO (failed log),
 * file-system errors. An error after the rename fails the log (mlog_error()). */
int mlog_install_snapshot(struct mlog *log, const char *tmp_name, int64_t offset,
                          uint8_t **ret_image, size_t *ret_len);

/* Open the newest snapshot file read-only, to stream it (a quorum leader
 * sending it to a voter): the whole file, header included. The descriptor
 * stays readable after retention deletes the file. -ENOENT without one. */
int mlog_open_snapshot(struct mlog *log, int *ret_fd, int64_t *ret_offset, uint64_t *ret_size);

/* True when snapshot_interval_records records were appended since the newest
 * snapshot (or since offset 0) and no snapshot is in progress. */
bool mlog_snapshot_due(const struct mlog *log);

int64_t mlog_next_offset(const struct mlog *log);     /* offset the next append gets */
int64_t mlog_durable_offset(const struct mlog *log);  /* every record below is durable */
int64_t mlog_snapshot_offset(const struct mlog *log); /* newest valid snapshot, -1 none */
int mlog_error(const struct mlog *log);               /* 0, or the error that failed the log */
const char *mlog_dir(const struct mlog *log);

struct mlog_stats {
    int64_t records;           /* records made durable */
    int64_t groups;            /* flush groups = one write + one fdatasync each */
    int64_t bytes;             /* framed bytes written to segments */
    int64_t max_group_records; /* largest group */
    int64_t rolls;             /* segments started after open */
    int64_t snapshots;         /* snapshots written */
    int64_t segments_deleted;  /* by snapshot retention */
    int64_t snapshots_deleted;
};

void mlog_get_stats(const struct mlog *log, struct mlog_stats *ret);

struct mhist;
/* Latency of the fdatasync ending each flush group (updated by the worker
 * thread with atomics; read it with mw_hist()). */
const struct mhist *mlog_fsync_histogram(const struct mlog *log);
