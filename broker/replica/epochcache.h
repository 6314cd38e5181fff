/* epochcache: a partition replica's leader-epoch cache — for every leader epoch
 * that wrote to this log, the offset of its first batch — kept in the file
 * `leader-epoch-checkpoint` of the partition directory, in Kafka's format:
 *
 *   0            version
 *   2            number of entries
 *   0 0          "epoch start_offset", one line per entry, epochs increasing
 *   3 1200
 *
 * It answers "where does epoch E end in this log?" (Kafka's
 * OffsetsForLeaderEpoch), which is how a follower finds the point where its log
 * and the leader's part (KIP-101, KIP-279), and how a leader tells a fetching
 * follower that it has diverged.
 *
 * Entries have strictly increasing epochs and non-decreasing start offsets. Every
 * change is written to the file at once (the spare file beside it rewritten and
 * fsynced, exchanged with the file by renameat2(RENAME_EXCHANGE), fsync of the
 * directory) before the call returns: changes are rare (a leader change, or a
 * follower seeing a new epoch in the batches it copies), so this blocks the loop
 * for one small write and fsync only then.
 *
 * Errors are negative errno; nothing is logged above debug. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EPOCHCACHE_FILE      "leader-epoch-checkpoint"
/* The file's previous version, rewritten and exchanged in at the next change. */
#define EPOCHCACHE_SPARE_SUFFIX ".spare"
#define EPOCHCACHE_UNDEFINED (-1)
#define EPOCHCACHE_MAX_ENTRIES 100000

struct epochcache;

struct epochcache_entry {
    int32_t epoch;
    int64_t start_offset;
};

/* Load the cache of the log in directory @dir (a missing file is an empty cache)
 * and drop the entries that start at or after @log_end_offset (a log cut back by
 * recovery). A file that does not parse (bad version, count, line, epochs not
 * increasing, offsets decreasing, more than EPOCHCACHE_MAX_ENTRIES) is treated
 * as empty and rewritten, and *ret_discarded (may be NULL) is set to true so the
 * caller can log it. -ENOMEM, or an errno from reading/writing the file. */
int epochcache_open(const char *dir, int64_t log_end_offset, struct epochcache **ret,
                    bool *ret_discarded);
void epochcache_free(struct epochcache *c); /* NULL-safe */

/* The latest epoch, or EPOCHCACHE_UNDEFINED when empty. */
int32_t epochcache_latest_epoch(const struct epochcache *c);
size_t epochcache_count(const struct epochcache *c);
/* Entry @i (0 = oldest). @i < count. */
struct epochcache_entry epochcache_get(const struct epochcache *c, size_t i);

/* Record that @epoch starts at @start_offset. An epoch not above the latest is
 * ignored (0; a follower sees each epoch in many batches); a start offset below
 * the latest entry's is -EINVAL. Persists before returning. */
int epochcache_assign(struct epochcache *c, int32_t epoch, int64_t start_offset);

/* Many assignments made durable together: a broker that takes up thousands of
 * leaderships in one metadata change would otherwise write and fsync thousands
 * of files (two fsyncs each, ~8 ms on a busy disk) on its event loop. Each
 * cache's file is written, then one syncfs(), the renames, and one more
 * syncfs() make them all durable: the same guarantee as epochcache_assign for
 * each, at the cost of two file-system syncs. A small batch is written file by
 * file instead. The caller commits before anything can depend on the new
 * epochs (before returning to the loop). */
struct epochcache_batch {
    struct epochcache **v;
    size_t n, cap;
};

#define EPOCHCACHE_BATCH_MIN 8 /* below this, one fsync'd file at a time */

/* As epochcache_assign, but the entry is taken into memory now and written at
 * epochcache_batch_commit(@b). A cache appears in @b once, whatever it
 * assigns. -EINVAL, -E2BIG, -ENOMEM as epochcache_assign (nothing changed). */
int epochcache_assign_batched(struct epochcache *c, int32_t epoch, int64_t start_offset,
                              struct epochcache_batch *b);
/* Write every cache of @b durably and empty @b. A cache whose file cannot be
 * written is retried on its own; if that fails too, the entries it was given
 * in this batch are dropped from memory, as a failed epochcache_assign leaves
 * it. Returns the number of caches that failed (0: all durable). */
size_t epochcache_batch_commit(struct epochcache_batch *b);
void epochcache_batch_deinit(struct epochcache_batch *b);

/* As epochcache_open, but a file to rewrite (entries dropped, or discarded)
 * is written at epochcache_batch_commit(@b), with the other caches of @b: a
 * restarted broker opens the caches of all its replicas in one metadata sweep,
 * and thousands of leaderships of empty logs (an epoch starting at the log end
 * is dropped) cost thousands of fsync'd writes on its loop otherwise. Memory
 * is truncated at once; the caller commits @b before anything is appended to
 * the log. If the commit cannot write the file, memory stays truncated and the
 * file keeps the dropped entries until the next write, which a later open
 * drops again. */
int epochcache_open_batched(const char *dir, int64_t log_end_offset, struct epochcache **ret,
                            bool *ret_discarded, struct epochcache_batch *b);

/* Kafka's endOffsetFor: for @requested_epoch, the largest epoch <= it that this
 * log knows and the offset where that epoch ends (the start of the next higher
 * epoch, or @log_end_offset for the latest):
 *   - requested is the latest epoch: (latest, log_end_offset);
 *   - requested is above every epoch, or the cache is empty, or requested is
 *     EPOCHCACHE_UNDEFINED: (UNDEFINED, UNDEFINED);
 *   - requested is below every epoch: (requested, start of the first entry);
 *   - otherwise: (largest epoch <= requested, start of the first epoch > requested).
 * Always succeeds. */
void epochcache_end_offset(const struct epochcache *c, int32_t requested_epoch,
                           int64_t log_end_offset, int32_t *ret_epoch, int64_t *ret_end_offset);

/* A follower's side of divergence (Kafka's fetcher, KIP-101/KIP-279): the
 * leader said its epoch @leader_epoch ends at @leader_end_offset. Returns the
 * offset this log (ending at @log_end_offset, with this cache) must be cut to:
 *   - this log knows no epoch <= leader_epoch: min(leader end, log end);
 *   - its nearest epoch below is another one (it never had leader_epoch):
 *     min(where that epoch ends here, log end) — not final, the next fetch with
 *     the new last epoch finds any further divergence (*ret_final false);
 *   - it knows leader_epoch: min(leader end, where the epoch ends here).
 * @ret_final may be NULL. */
int64_t epochcache_truncation_offset(const struct epochcache *c, int32_t leader_epoch,
                                     int64_t leader_end_offset, int64_t log_end_offset,
                                     bool *ret_final);

/* The log was cut back to end at @offset: drop every entry that starts at or
 * after it. Persists when something changed. */
int epochcache_truncate_from_end(struct epochcache *c, int64_t offset);

/* The log now starts at @offset (retention, or a follower restarting its log
 * from the leader's start): drop entries that end at or before it and move the
 * start of the first remaining one up to @offset. Persists when something
 * changed. */
int epochcache_truncate_from_start(struct epochcache *c, int64_t offset);

/* Forget everything (the log was emptied). Persists. */
int epochcache_clear(struct epochcache *c);
