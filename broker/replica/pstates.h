/* pstates: the broker's idempotent-producer states, one struct pstate per
 * partition log with idempotent producers, kept in step with the log for the
 * produce path (broker/kafka/api_produce.c).
 *
 * Leaders record each append (pstates_appended); followers record each batch
 * they copy (pstates_followed, from repl.c) and rebuild after a truncation
 * (pstates_truncated), so a new leader has the state at once. Each state also
 * remembers the log end it reflects and the CRC of the batch just below it, so
 * before a leader checks a batch it is verified cheaply: nothing to do when the
 * log did not move; a scan of the new batches when the log only grew; a
 * rebuild from the newest valid snapshot file (or the log start) plus a scan
 * when the log was truncated or the state is new (the first idempotent batch
 * after a restart). A scan reads at most about 1 MiB of the log on the spot;
 * the rest is read by the loader in slices of about 4 MiB per turn of the
 * event loop, so a big log never stalls the loop, and meanwhile batches with a
 * producer id are refused with NOT_ENOUGH_REPLICAS (retriable, nothing
 * appended) — as Kafka serves no partition whose producer state is not loaded.
 * Snapshots ("<offset>.snapshot", pstate.h) are written when
 * an append (leader's or follower's) rolls a segment: encoded on the loop,
 * written with fsync on the worker pool; the two newest are kept.
 *
 * Producers are expired by producer.id.expiration.ms (checked at most once a
 * second per partition, on produce). Event loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct plog;
struct plog_append_info;
struct pstates;
struct wpool;

/* Snapshots are written on @pool (borrowed; must outlive the registry); the
 * loader runs on @base. -ENOMEM. */
int pstates_new(struct event_base *base, int64_t expiration_ms, struct wpool *pool,
                struct pstates **ret);
/* Bytes a check scans on the spot, and the loader's bytes per turn (defaults
 * 1 MiB and 4 MiB; tests make them small). */
void pstates_set_scan_budget(struct pstates *pss, size_t sync_bytes, size_t slice_bytes);
/* @log's state is being loaded in slices (its idempotent batches are refused
 * with NOT_ENOUGH_REPLICAS until it is done). */
bool pstates_loading(const struct pstates *pss, const struct plog *log);
/* Waits for snapshot jobs in flight (wpool_drain). NULL-safe. */
void pstates_free(struct pstates *pss);

/* The verdict on a Produce's record set (@len bytes of whole, validated
 * batches at @data) for @log, led at @leader_epoch: a Kafka error code (0:
 * append it). A retry of a batch still in the state gives 0 with *ret_dup and
 * the original offsets: answer with them and append nothing. Record sets
 * without a producer id cost one header walk. Transactional batches and
 * producer ids never issued are the caller's checks. On a storage error
 * reading the log: KAFKA_STORAGE_ERROR; while the state is loading in slices:
 * NOT_ENOUGH_REPLICAS (retriable; pstates_loading() tells the two apart). */
int16_t pstates_check(struct pstates *pss, struct plog *log, int32_t leader_epoch,
                      const uint8_t *data, size_t len, bool *ret_dup, int64_t *ret_first_offset,
                      int64_t *ret_last_offset);

/* The same bytes were appended (offsets assigned in place): record them, and
 * write a snapshot when the append rolled a segment. */
void pstates_appended(struct pstates *pss, struct plog *log, const uint8_t *data, size_t len,
                      const struct plog_append_info *info);

/* A follower appended these bytes (@info from the append): keep the state in
 * step, so a new leader has it at once. A log without idempotent producers is
 * not tracked until a batch with a producer id arrives; then (and whenever the
 * state is out of step) it is brought up to date from the log, which already
 * holds the bytes. Writes a snapshot when the append rolled a segment. */
void pstates_followed(struct pstates *pss, struct plog *log, const uint8_t *data, size_t len,
                      const struct plog_append_info *info);

/* @log was truncated (to its current log end): delete the snapshots above the
 * new end and rebuild a tracked state from the newest remaining snapshot and
 * the log. */
void pstates_truncated(struct pstates *pss, struct plog *log);

/* This broker no longer holds @log as a replica (deleted, reassigned away,
 * topic re-created, or shutting down): drop its state, so a log later created
 * at the same address starts clean. A snapshot job in flight for it finishes
 * without touching any entry. NULL-safe for an unknown log. */
void pstates_forget(struct pstates *pss, const struct plog *log);

/* Counters for tests and logs. */
struct pstates_stats {
    uint64_t rebuilds;       /* from a snapshot or the log start */
    uint64_t snapshot_loads; /* rebuilds that started from a snapshot */
    uint64_t scanned_batches;
    uint64_t snapshots_written; /* durably, counted when the job is done */
    uint64_t snapshots_skipped; /* replaced by a newer roll's while waiting for the log's job */
    uint64_t deferred_loads;    /* rebuilds too big for one check: finished by the loader */
    uint64_t refused_loading;   /* checks answered NOT_ENOUGH_REPLICAS while loading */
};
void pstates_get_stats(const struct pstates *pss, struct pstates_stats *ret);
