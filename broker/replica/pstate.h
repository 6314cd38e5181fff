/* pstate: one partition's idempotent-producer state (Kafka's
 * ProducerStateManager, without transactions).
 *
 * Per producer id: the epoch and the sequence and offset ranges of its last
 * PSTATE_BATCHES batches in this partition's log, plus the largest batch
 * timestamp seen (for expiry). The leader checks each batch against it before
 * appending (pstate_check) and records it after (pstate_update); a follower or
 * a restarted broker rebuilds the same state by feeding the log's batches to
 * pstate_load() — the producer id, epoch and sequence are in every batch
 * header, so the state is a pure function of the log.
 *
 * Semantics, as Kafka 2.5+ (KIP-360) for a leader append:
 *  - epoch below the producer's current one: INVALID_PRODUCER_EPOCH;
 *  - a higher epoch must start at sequence 0, else OUT_OF_ORDER_SEQUENCE_NUMBER;
 *  - same epoch: a batch equal (first and last sequence) to one of the last
 *    five is a duplicate: answered as success with the original offsets and
 *    not appended; otherwise the first sequence must follow the last one
 *    (wrapping at INT32_MAX), else OUT_OF_ORDER_SEQUENCE_NUMBER;
 *  - a producer this partition has no state for (new, or expired) may start
 *    at any sequence, as in Kafka since 2.5; the caller rejects ids that were
 *    never issued (UNKNOWN_PRODUCER_ID) before asking here;
 *  - a producer id with a negative epoch or sequence: INVALID_RECORD;
 *  - transactional batches are the caller's business (not supported).
 *
 * Nothing here does I/O except pstate_snapshot_write/read, which the caller
 * runs where blocking is allowed. Single-threaded; the caller owns the object. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_header;

#define PSTATE_BATCHES 5 /* Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN */

struct pstate_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t first_offset;
    int64_t last_offset;
};

struct pstate_entry {
    int64_t producer_id;
    int64_t last_timestamp; /* largest batch max timestamp, for expiry */
    int16_t epoch;
    uint8_t n_batches; /* 0..PSTATE_BATCHES, oldest first */
    struct pstate_batch batches[PSTATE_BATCHES];
};

struct pstate;

int pstate_new(struct pstate **ret); /* -ENOMEM */
void pstate_free(struct pstate *ps); /* NULL-safe */
void pstate_clear(struct pstate *ps);

size_t pstate_count(const struct pstate *ps);
/* The entry of @producer_id or NULL; valid until the next change. */
const struct pstate_entry *pstate_find(const struct pstate *ps, int64_t producer_id);
/* The @i-th entry in producer id order (i < pstate_count). */
const struct pstate_entry *pstate_at(const struct pstate *ps, size_t i);

/* The sequence @n after @seq, wrapping past INT32_MAX to 0 as Kafka does. */
int32_t pstate_seq_add(int32_t seq, int32_t n);

/* Check a batch a client asks the leader to append (@h->producer_id >= 0,
 * not transactional). Returns the Kafka error code (0: append it). When the
 * batch is a retry of one of the last five, returns 0 with *ret_dup true and
 * *ret_orig its original range: answer with those offsets, append nothing. */
int16_t pstate_check(const struct pstate *ps, const struct batch_header *h, bool *ret_dup,
                     struct pstate_batch *ret_orig);

/* Record a batch now in the log (its base offset assigned). Batches without a
 * producer id, and control batches, are ignored. -ENOMEM. */
int pstate_update(struct pstate *ps, const struct batch_header *h);

/* Feed whole batches as they are in the log (@len bytes at @data, back to
 * back); a cut last batch is ignored. -ENOMEM. */
int pstate_load(struct pstate *ps, const void *data, size_t len);

/* Forget producers whose last timestamp is @expiration_ms or more before
 * @now_ms (producer.id.expiration.ms). Returns how many were removed. */
size_t pstate_expire(struct pstate *ps, int64_t now_ms, int64_t expiration_ms);

/* ---- snapshot files ----------------------------------------------------------------
 *
 * "<20-digit offset>.snapshot" in the partition directory: the state as of
 * every batch below @offset. Binary, big-endian:
 *   magic "WPS1" | u32 crc32c of everything after this field | i64 offset |
 *   u32 tail_crc | u32 count | count x (i64 producer_id | i64 last_timestamp |
 *   i16 epoch | u8 n_batches | n_batches x (i32 first_seq | i32 last_seq |
 *   i64 first_offset | i64 last_offset))
 * tail_crc is the CRC field of the log's batch ending at @offset - 1 (0 when
 * none): the loader checks it against the log, so a snapshot that outlived a
 * truncation (the log was cut below @offset and grew again) is not trusted.
 * Written with fsutil_write_atomic (temporary file, fsync, rename, fsync of
 * the directory), so a snapshot that is there is whole; one torn anyway (a
 * lying disk, a copy) fails its CRC and is dropped. */
#define PSTATE_SNAPSHOT_SUFFIX ".snapshot"

/* The snapshot file's bytes for @ps at @offset, into a malloc'd *ret_buf the
 * caller frees. No I/O: the event loop encodes, a worker writes. -ENOMEM. */
int pstate_snapshot_encode(const struct pstate *ps, int64_t offset, uint32_t tail_crc,
                           uint8_t **ret_buf, size_t *ret_len);
/* Write encoded snapshot bytes (borrowed) as the snapshot at @offset in @dir,
 * durably (fsutil_write_atomic). -errno. Blocking: a worker thread's job. */
int pstate_snapshot_write_bytes(const char *dir, int64_t offset, const uint8_t *buf, size_t len);
/* Both of the above. -errno. Blocking. */
int pstate_snapshot_write(const struct pstate *ps, const char *dir, int64_t offset,
                          uint32_t tail_crc);
/* Does the log still hold the batch a snapshot at @offset was taken after? */
typedef bool (*pstate_tail_check_fn)(void *ud, int64_t offset, uint32_t tail_crc);

/* Load the newest snapshot in @dir whose offset is <= @max_offset and that
 * @check (may be NULL) accepts into @ps (cleared first). *ret_offset: its
 * offset, or -1 when there is none (then @ps is empty and 0 is returned).
 * Corrupt or rejected snapshots are deleted and the next older one tried.
 * -ENOMEM, -errno from reading the directory. */
int pstate_snapshot_load(struct pstate *ps, const char *dir, int64_t max_offset,
                         pstate_tail_check_fn check, void *ud, int64_t *ret_offset);
/* Delete the snapshot at @offset in @dir, if there is one. */
void pstate_snapshot_delete(const char *dir, int64_t offset);
/* Delete the snapshots whose offset is > @offset (after a truncation they
 * describe batches that are gone). Returns how many, or -errno. */
int pstate_snapshot_delete_above(const char *dir, int64_t offset);
/* Delete all but the newest @keep_newest snapshots. Returns how many, or -errno. */
int pstate_snapshot_retain(const char *dir, int keep_newest);
