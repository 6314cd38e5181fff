/* repl: partition replication — the leader and follower sides of every
 * partition replica this broker hosts.
 *
 * State per replica (struct repl_part), driven by the local metadata (the
 * coordinator's state, see coordclient.h):
 *   - leader: tracks each follower's log end offset (LEO) and last caught-up
 *     time, keeps the high watermark (HW) = the smallest LEO over the ISR (plus a
 *     member being added), never advancing it while the ISR is smaller than
 *     min.insync.replicas; completes acks=all produces parked until the HW passes
 *     them; shrinks the ISR of followers not caught up for replica.lag.time.max.ms
 *     and grows it for followers that reached the HW, through the coordinator's
 *     AlterPartition with its leader and partition epochs;
 *   - follower: one fetcher per leader broker pulls all partitions it follows
 *     from that leader over the replication RPC (proto/replica.proto) with its LEO
 *     and last fetched epoch, truncates when the leader says the logs diverged
 *     (by leader epoch, never by HW), appends the batches exactly as the leader
 *     stored them, and keeps its HW = min(leader's HW, own LEO).
 * Every replica keeps a leader-epoch cache (epochcache.h) next to its log.
 *
 * Replication throttles (Kafka's): replicas listed for this broker in a
 * topic's leader. / follower.replication.throttled.replicas and outside the
 * ISR catch up within leader. / follower.replication.throttled.rate (quota.h):
 * the leader sends them nothing while its rate is over, the follower asks for
 * nothing while its rate is over; nothing else is held back.
 *
 * Waits live in three purgatories (common/purgatory.h): "produce" holds acks=all
 * produces keyed by partition, in offset order, checked in order when the HW
 * advances; "replica-fetch" holds each follower's parked fetch keyed by its
 * broker id, answered on an append to any partition it replicates;
 * "delete-records" holds DeleteRecords partitions keyed by partition until the
 * ISR's low watermark (smallest log start, reported in follower fetches)
 * reaches the requested offset.
 *
 * The leader lease (coordclient_lease_valid) gates every acknowledgement: a
 * leader whose lease lapsed answers NOT_LEADER_OR_FOLLOWER.
 *
 * Everything runs on the broker's event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct broker_settings;
struct logmgr;
struct coordclient;
struct plog;
struct pstates;
struct repl;
struct repl_part;

/* Called when a partition's consumer-visible data grew (its HW advanced). */
typedef void (*repl_visible_fn)(void *ud, struct plog *log);

struct repl_options {
    struct event_base *base;
    const struct broker_settings *s; /* borrowed, outlives the repl */
    struct logmgr *lm;
    struct coordclient *cc;
    struct pstates *pstates; /* borrowed; followers keep it in step (may be NULL) */
    repl_visible_fn on_visible;
    void *ud;
};

/* Starts the replication listener (replication.listener, or the Kafka listener's
 * host on a free port). -errno from bind/listen, -ENOMEM. */
int repl_new(const struct repl_options *opts, struct repl **ret);
/* Fails every parked produce (NOT_LEADER_OR_FOLLOWER), answers parked follower
 * fetches, stops fetchers and the listener. NULL-safe. */
void repl_free(struct repl *r);
/* The replication endpoint to register with the coordinator. */
const char *repl_advertised_host(const struct repl *r);
int repl_port(const struct repl *r);

/* The local metadata changed (after the logs were reconciled with it): take up
 * or give up leaderships, start or stop fetching, adopt ISR changes. */
void repl_on_metadata(struct repl *r);

/* The replica state of a partition hosted here, or NULL. Valid until the next
 * repl_on_metadata(). */
struct repl_part *repl_part_get(struct repl *r, const char *topic, int32_t partition);
int64_t repl_part_high_watermark(const struct repl_part *p);
/* Kafka's OffsetsForLeaderEpoch answer from this replica's epoch cache. */
void repl_part_epoch_end_offset(const struct repl_part *p, int32_t epoch, int32_t *ret_epoch,
                                int64_t *ret_end_offset);

/* ---- metrics ---------------------------------------------------------------- */

/* Traffic of one hosted replica, counted on the loop with no allocation; the
 * per-topic sums of the metrics come from these. They live as long as the
 * replica is hosted here (a partition moved away or deleted takes its counts
 * with it). */
struct repl_traffic {
    uint64_t bytes_in, records_in;   /* appended by produce (leader), as stored */
    uint64_t bytes_out, records_out; /* record batches sent to consumers by Fetch */
    uint64_t repl_bytes_out;         /* record batches sent to followers */
};

/* @p's counters, for the produce and fetch handlers to add to. */
struct repl_traffic *repl_part_traffic(struct repl_part *p);

/* A hosted replica as metrics see it. */
struct repl_part_view {
    const char *topic; /* borrowed from the replica */
    int32_t partition;
    bool has_log;
    bool leader;     /* this broker leads it */
    bool leaderless; /* the metadata names no leader */
    int32_t n_replicas, n_isr, min_isr;
    /* Leader only: the largest follower lag in records (our log end minus the
     * follower's last fetch offset; a follower that has not fetched in this
     * leadership counts from our log start). -1 otherwise, 0 without
     * followers. */
    int64_t max_follower_lag;
    int64_t log_size_bytes; /* 0 without a log */
    struct repl_traffic traffic;
};
void repl_part_view_get(const struct repl_part *p, struct repl_part_view *ret);

/* Broker-wide counters and waits. */
struct repl_counters {
    uint64_t isr_shrinks; /* ISR changes of partitions led here that removed members */
    uint64_t isr_expands; /* ... that added members */
    size_t produce_waiting;        /* acks=all produces parked for the HW */
    size_t follower_fetch_waiting; /* follower fetches parked for data */
    size_t delete_waiting;         /* DeleteRecords waits */
};
void repl_get_counters(const struct repl *r, struct repl_counters *ret);

/* ---- produce path (leader) ---------------------------------------------------- */

/* Before appending: 0; NOT_LEADER_OR_FOLLOWER (6) when the lease has lapsed or
 * this broker does not lead @p; NOT_ENOUGH_REPLICAS (19) for acks=all when the
 * ISR is smaller than min.insync.replicas. */
int16_t repl_produce_check(struct repl *r, struct repl_part *p, int16_t acks);

/* The leader appended to @p's log: followers' parked fetches are woken and the
 * HW recomputed (a single-member ISR advances it at once). */
void repl_leader_appended(struct repl *r, struct repl_part *p);

/* acks=all: call @fn(ud, error) once the HW is above @last_offset (error 0), or
 * with REQUEST_TIMED_OUT (7) after @timeout_ms, NOT_LEADER_OR_FOLLOWER (6)
 * when leadership or the lease is lost first, or
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND (20) when the ISR falls below
 * min.insync.replicas (the HW is then frozen). Returns 1 when already satisfied
 * (@fn not called), 0 when parked (@fn called later, never from inside this
 * call), or -ENOMEM. The wait sits in the "produce" purgatory
 * (common/purgatory.h) under @p, in offset order; @owner (may be NULL) tags it
 * for repl_cancel_owner(). */
typedef void (*repl_ack_fn)(void *ud, int16_t error);
int repl_wait_hw(struct repl *r, struct repl_part *p, int64_t last_offset, int32_t timeout_ms,
                 const void *owner, repl_ack_fn fn, void *ud);
/* End every acks=all wait of @owner now (its connection closed): @fn gets
 * NOT_LEADER_OR_FOLLOWER, which nobody will read. Returns how many. */
size_t repl_cancel_owner(struct repl *r, const void *owner);

/* ---- DeleteRecords (leader) --------------------------------------------------- */

/* Kafka's offset -1 in DeleteRecords: delete up to the high watermark. */
#define REPL_DELETE_TO_HW (-1)

/* Raise @p's log start offset to @offset (REPL_DELETE_TO_HW: the HW) on the
 * leader; *ret_offset gets the offset applied. Kafka errors:
 * NOT_LEADER_OR_FOLLOWER (not the leader, or the lease lapsed),
 * OFFSET_OUT_OF_RANGE (@offset < 0 other than -1, or above the HW),
 * KAFKA_STORAGE_ERROR. Followers learn the new log start from their next fetch
 * (woken at once) and raise theirs. */
int16_t repl_delete_records(struct repl *r, struct repl_part *p, int64_t offset,
                            int64_t *ret_offset);

/* Wait until every ISR member of @p has a log start offset >= @offset (Kafka's
 * DelayedDeleteRecords): @fn(ud, 0, low watermark), or REQUEST_TIMED_OUT after
 * @timeout_ms, or NOT_LEADER_OR_FOLLOWER when leadership is lost (low
 * watermark -1 then). Returns 1 when already satisfied (@fn not called), 0 when
 * parked in the "delete-records" purgatory (@fn called later, never from
 * inside), -ENOMEM. @owner as for repl_wait_hw(). */
typedef void (*repl_delete_fn)(void *ud, int16_t error, int64_t low_watermark);
int repl_wait_low_watermark(struct repl *r, struct repl_part *p, int64_t offset, int32_t timeout_ms,
                            const void *owner, repl_delete_fn fn, void *ud);
/* The smallest log start offset over the leader and its ISR; -1 while a
 * member's is unknown. */
int64_t repl_part_low_watermark(const struct repl *r, const struct repl_part *p);
