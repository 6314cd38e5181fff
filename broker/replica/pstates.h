/* pstates: the broker's idempotent-producer states, one struct pstate per
 * partition log it has led with idempotent producers, kept in step with the
 * log for the produce path (broker/kafka/api_produce.c).
 *
 * A partition's state is a function of its log (pstate.h), so instead of
 * following every append made by the replication path, each state remembers
 * the log end it reflects and the CRC of the batch just below it. Before a
 * leader checks a batch the state is brought up to date: nothing to do when the
 * log did not move; a scan of the new batches when the log only grew (this
 * broker was a follower meanwhile); a rebuild from the newest valid snapshot
 * file (or the log start) plus a scan when the log was truncated or the state
 * is new (first produce after a restart or a failover). Snapshots
 * ("<offset>.snapshot", pstate.h) are written when the leader's append rolls a
 * segment; the two newest are kept.
 *
 * Producers are expired by producer.id.expiration.ms (checked at most once a
 * second per partition, on produce). Event loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plog;
struct plog_append_info;
struct pstates;

/* -ENOMEM. */
int pstates_new(int64_t expiration_ms, struct pstates **ret);
void pstates_free(struct pstates *pss); /* NULL-safe */

/* The verdict on a Produce's record set (@len bytes of whole, validated
 * batches at @data) for @log, led at @leader_epoch: a Kafka error code (0:
 * append it). A retry of a batch still in the state gives 0 with *ret_dup and
 * the original offsets: answer with them and append nothing. Record sets
 * without a producer id cost one header walk. Transactional batches and
 * producer ids never issued are the caller's checks. On a storage error
 * reading the log: KAFKA_STORAGE_ERROR. */
int16_t pstates_check(struct pstates *pss, struct plog *log, int32_t leader_epoch,
                      const uint8_t *data, size_t len, bool *ret_dup, int64_t *ret_first_offset,
                      int64_t *ret_last_offset);

/* The same bytes were appended (offsets assigned in place): record them, and
 * write a snapshot when the append rolled a segment. */
void pstates_appended(struct pstates *pss, struct plog *log, const uint8_t *data, size_t len,
                      const struct plog_append_info *info);

/* Counters for tests and logs. */
struct pstates_stats {
    uint64_t rebuilds;       /* from a snapshot or the log start */
    uint64_t snapshot_loads; /* rebuilds that started from a snapshot */
    uint64_t scanned_batches;
    uint64_t snapshots_written;
};
void pstates_get_stats(const struct pstates *pss, struct pstates_stats *ret);
