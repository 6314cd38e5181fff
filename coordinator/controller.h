/* controller: turns requests into metadata records, Kafka's controller logic.
 *
 * Every function reads the state, never changes it, and either appends the
 * records that carry out the request to @out (in the order they must be
 * appended to the log and applied) or sets a Kafka error code and message in
 * @err and appends nothing. The caller appends the records to the metadata log,
 * applies them with cstate_apply() once durable, and only then answers. A
 * successful request may need no records (an idempotent retry).
 *
 * Deterministic: the output depends on the state, the request, the config and
 * the numbers drawn from ctx->rand (topic ids, cluster id, placement start), and
 * nothing else. No clock, no I/O.
 *
 * Return values: 0 (check err->code) or a negative errno for the caller's own
 * failures (-ENOMEM; -EINVAL for a malformed call such as a NULL name). Kafka
 * error codes are response data, never returned.
 *
 * Elections follow Kafka's KRaft controller:
 *  - An ineligible broker (fenced, shutting down or unknown) is removed from an
 *    ISR only when that leaves the ISR non-empty: the last member stays, so that
 *    an unclean election remains visible (the ISR then names the one broker
 *    whose log is known complete).
 *  - A leader is chosen from the live (eligible) ISR members in replica order
 *    (leader epoch + 1, partition epoch + 1). With none, the leader becomes -1,
 *    unless unclean.leader.election.enable (topic override, else the cluster
 *    default) allows the first live replica, whose ISR is then just itself.
 *  - A broker that registers again is elected where it is the last ISR member
 *    of an offline partition (or, with unclean election, any replica of one); it
 *    rejoins other ISRs only when a leader asks for it (cctl_alter_partition).
 *
 * Records that end a broker's session or leadership come after the partition
 * changes that move its leaderships away, so a log cut anywhere never shows a
 * fenced leader; a registration comes before the elections it enables. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kerr.h"
#include "common/meta/state.h"

#define CCTL_MAX_PARTITIONS_PER_REQUEST 100000

struct cctl_error {
    int16_t code; /* KERR_NONE on success */
    char message[256];
};

/* Cluster defaults (coordinator config) the decisions depend on. */
struct cctl_config {
    int32_t num_partitions;             /* num.partitions, 1 */
    int32_t default_replication_factor; /* default.replication.factor, 1 */
    int32_t min_insync_replicas;        /* min.insync.replicas, 1 */
    bool unclean_leader_election;       /* unclean.leader.election.enable, false */
    /* Largest partition count one create or add request may ask for, so that
     * one record stays well inside the metadata log's record size cap. */
    int32_t max_partitions_per_request; /* CCTL_MAX_PARTITIONS_PER_REQUEST */
};

void cctl_config_defaults(struct cctl_config *cfg);

/* Uniform 64-bit random numbers; the only source of nondeterminism, so a test
 * passes a seeded generator. */
typedef uint64_t (*cctl_rand_fn)(void *arg);

struct cctl_ctx {
    struct cctl_config cfg;
    cctl_rand_fn rand;
    void *rand_arg;
};

/* ---- cluster and brokers ------------------------------------------------------- */

/* The bootstrap record with a new random cluster id (22 base64url characters,
 * as Kafka's), or @cluster_id when not NULL. Nothing when the state has one. */
int cctl_bootstrap(const struct cstate *s, const struct cctl_ctx *ctx, const char *cluster_id,
                   struct cstate_records *out, struct cctl_error *err);

struct cctl_register_req {
    int32_t broker_id;
    uint8_t incarnation[CSTATE_UUID_LEN];
    const struct cstate_endpoint *endpoints; /* borrowed */
    size_t n_endpoints;
    const struct cstate_endpoint *replication; /* NULL: none */
    const char *rack;                          /* NULL or "": none */
};

/* Register a broker. A new broker, or one whose previous session has ended
 * (fenced), gets the next broker epoch; a retry by the live incarnation gets its
 * current epoch and no records. Another incarnation while a session is live:
 * DUPLICATE_BROKER_REGISTRATION. Bad fields: INVALID_REQUEST. *ret_epoch is set
 * on success. */
int cctl_register_broker(const struct cstate *s, const struct cctl_ctx *ctx,
                         const struct cctl_register_req *req, struct cstate_records *out,
                         int64_t *ret_epoch, struct cctl_error *err);

/* Check a heartbeat's (or any broker request's) id and epoch: the broker must
 * be registered with that epoch and not fenced. BROKER_ID_NOT_REGISTERED or
 * KERR_STALE_BROKER_EPOCH (a zombie from an ended session). Never any records. */
int cctl_check_broker_epoch(const struct cstate *s, int32_t broker_id, int64_t broker_epoch,
                            struct cctl_error *err);

/* End a broker's session (expiry, or a clean exit after controlled shutdown):
 * partition changes moving its leaderships and ISR memberships away, then the
 * FenceBroker record. Errors as cctl_check_broker_epoch(). */
int cctl_fence_broker(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                      int64_t broker_epoch, struct cstate_records *out, struct cctl_error *err);

/* Controlled shutdown: the BrokerControlledShutdown record (first time only),
 * then partition changes handing each of its leaderships to another live ISR
 * member and removing it from ISRs that keep another member. *ret_remaining is
 * how many partitions it still leads once the records are applied (no other
 * live ISR member); 0 means it may exit. Call again after ISR changes to move
 * the rest. Errors as cctl_check_broker_epoch(). */
int cctl_controlled_shutdown(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                             int64_t broker_epoch, struct cstate_records *out,
                             int32_t *ret_remaining, struct cctl_error *err);

/* Forget a fenced broker. BROKER_ID_NOT_REGISTERED, or INVALID_REQUEST while
 * its session is live. Its id may remain in replica lists. */
int cctl_unregister_broker(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                           struct cstate_records *out, struct cctl_error *err);

/* ---- producer ids ------------------------------------------------------------------ */

#define CCTL_PRODUCER_ID_BLOCK 1000 /* Kafka's ProducerIdsBlock size */

/* A block of CCTL_PRODUCER_ID_BLOCK producer ids for a broker with a live
 * session: one ProducerIds record starting at the state's next producer id
 * (the speculative state, so racing requests get consecutive blocks). Errors
 * as cctl_check_broker_epoch(), or INVALID_REQUEST when the id space is
 * exhausted. */
int cctl_allocate_producer_ids(const struct cstate *s, int32_t broker_id, int64_t broker_epoch,
                               struct cstate_records *out, int64_t *ret_first, int32_t *ret_count,
                               struct cctl_error *err);

/* ---- topics ------------------------------------------------------------------------ */

struct cctl_kv {
    const char *name;
    const char *value; /* NULL in an alter request: remove the override */
};

struct cctl_assignment {
    const int32_t *replicas;
    size_t n_replicas;
};

struct cctl_create_topic_req {
    const char *name;
    int32_t num_partitions;     /* -1: cfg.num_partitions */
    int32_t replication_factor; /* -1: cfg.default_replication_factor */
    /* Manual assignment of partitions 0..n-1 (num_partitions and
     * replication_factor must then be -1); NULL: placement decides. */
    const struct cctl_assignment *assignments;
    size_t n_assignments;
    const struct cctl_kv *configs;
    size_t n_configs;
};

/* Create a topic. INVALID_TOPIC_EXCEPTION (name), TOPIC_ALREADY_EXISTS,
 * INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR (< 1 or more than the live
 * brokers), INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG, INVALID_REQUEST. The
 * new topic id is written to @ret_topic_id (may be NULL) on success. The leader
 * of each partition is its first live replica; the ISR is its live replicas. */
int cctl_create_topic(const struct cstate *s, const struct cctl_ctx *ctx,
                      const struct cctl_create_topic_req *req, struct cstate_records *out,
                      uint8_t ret_topic_id[CSTATE_UUID_LEN], struct cctl_error *err);

/* UNKNOWN_TOPIC_OR_PARTITION. */
int cctl_delete_topic(const struct cstate *s, const struct cctl_ctx *ctx, const char *name,
                      struct cstate_records *out, struct cctl_error *err);

struct cctl_create_partitions_req {
    const char *name;
    int32_t total_count; /* the new partition count; never fewer than now */
    /* Replicas of the new partitions only (total_count - current of them), or
     * NULL for placement, which continues the topic's assignment. */
    const struct cctl_assignment *assignments;
    size_t n_assignments;
};

/* UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS (not more than now),
 * INVALID_REPLICATION_FACTOR (the topic's RF exceeds the live brokers),
 * INVALID_REPLICA_ASSIGNMENT. */
int cctl_create_partitions(const struct cstate *s, const struct cctl_ctx *ctx,
                           const struct cctl_create_partitions_req *req, struct cstate_records *out,
                           struct cctl_error *err);

/* Incremental config change: set each entry, or remove it when its value is
 * NULL. The TopicConfigRecord carries the resulting overrides; when the change
 * allows unclean election, elections for the topic's offline partitions follow.
 * UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG. */
int cctl_alter_topic_config(const struct cstate *s, const struct cctl_ctx *ctx, const char *name,
                            const struct cctl_kv *ops, size_t n_ops, struct cstate_records *out,
                            struct cctl_error *err);

/* Validate one topic config entry against the known keys: INVALID_CONFIG with
 * the reason, or KERR_NONE. Known keys: cleanup.policy, compression.type,
 * delete.retention.ms, file.delete.delay.ms, flush.messages, flush.ms,
 * index.interval.bytes, max.compaction.lag.ms, max.message.bytes,
 * message.timestamp.type, message.timestamp.difference.max.ms,
 * min.cleanable.dirty.ratio, min.compaction.lag.ms, min.insync.replicas,
 * preallocate, retention.bytes, retention.ms, segment.bytes, segment.index.bytes,
 * segment.jitter.ms, segment.ms, unclean.leader.election.enable. */
int16_t cctl_validate_topic_config(const char *name, const char *value, char *msg, size_t msglen);

/* Whether unclean election is allowed for @t: its override, else the dynamic
 * cluster default, else the coordinator's static default. */
bool cctl_topic_unclean(const struct cstate *s, const struct cctl_ctx *ctx,
                        const struct cstate_topic *t);

/* Dynamic broker config change for @broker_id, or the cluster default when it
 * is CSTATE_CLUSTER_DEFAULT: set each entry, or remove it when its value is
 * NULL; one BrokerConfigRecord per entry. Keys must be dynamic
 * (common/dyncfg.h) and values pass the static registry's check of the key;
 * a cluster-only key (unclean.leader.election.enable) only for the default.
 * When the change allows unclean election cluster-wide, elections for offline
 * partitions of topics without an override follow. Nothing is emitted unless
 * every entry is valid. INVALID_CONFIG naming the key, INVALID_REQUEST for a
 * broker id below -1. */
int cctl_alter_broker_config(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                             const struct cctl_kv *ops, size_t n_ops, struct cstate_records *out,
                             struct cctl_error *err);

/* ---- partitions ------------------------------------------------------------------------ */

struct cctl_alter_partition_req {
    int32_t broker_id; /* the leader asking */
    int64_t broker_epoch;
    const uint8_t *topic_id; /* 16 bytes, or NULL to use topic_name */
    const char *topic_name;
    int32_t partition;
    int32_t leader_epoch;    /* the leader epoch the leader holds */
    int32_t partition_epoch; /* the partition epoch it last saw */
    const int32_t *isr;      /* the ISR it wants */
    size_t n_isr;
};

/* An ISR change from a leader (Kafka's AlterPartition). In order of checking:
 * KERR_STALE_BROKER_EPOCH / BROKER_ID_NOT_REGISTERED; UNKNOWN_TOPIC_ID /
 * UNKNOWN_TOPIC_OR_PARTITION; FENCED_LEADER_EPOCH (not the current leader
 * epoch); NOT_LEADER_OR_FOLLOWER (not the current leader); INVALID_UPDATE_VERSION
 * (not the current partition epoch); INVALID_REQUEST (empty, duplicates, a
 * non-replica, or without the leader); INELIGIBLE_REPLICA (adds a broker that is
 * fenced, shutting down or unknown). An ISR equal to the current one needs no
 * record. When the leader is shutting down and the new ISR has a live member,
 * leadership moves to it in the same change. */
int cctl_alter_partition(const struct cstate *s, const struct cctl_ctx *ctx,
                         const struct cctl_alter_partition_req *req, struct cstate_records *out,
                         struct cctl_error *err);

/* The preferred leader of @p: its first replica, or during a reassignment its
 * first target replica (Kafka's first replica of the target assignment). */
int32_t cctl_preferred_replica(const struct cstate_partition *p);

/* The dynamic per-broker key that takes a broker out of placement (`weir
 * cluster decommission` sets it, `recommission` removes it): new topics and
 * partitions get no replica on a broker whose value is "true". It is a
 * BrokerConfig record in the metadata log like every dynamic broker key, set
 * with IncrementalAlterConfigs on the BROKER resource; existing replicas and
 * explicit reassignments are not affected (the operator moves those). */
#define CCTL_DECOMMISSIONED_KEY "broker.decommissioned"

/* Whether broker @id carries broker.decommissioned=true. */
bool cctl_broker_decommissioned(const struct cstate *s, int32_t id);

struct cctl_rebalance_opts {
    /* Kafka's leader.imbalance.per.broker.percentage: a broker's partitions are
     * rebalanced only when more than this percentage of those it is the
     * preferred leader of are led by others. 0: every movable partition. */
    int32_t imbalance_pct;
    int32_t broker_id; /* only partitions whose preferred leader is this; -1: all */
};

/* Preferred-leader election: PartitionChange records moving leadership to each
 * partition's first replica where it is live, in the ISR and not the leader. */
int cctl_preferred_leaders(const struct cstate *s, const struct cctl_ctx *ctx,
                           const struct cctl_rebalance_opts *opts, struct cstate_records *out);

/* A preferred leader's prompt return: when partition @partition of the topic
 * with id @topic_id has a leader other than its preferred replica (first
 * replica), and that replica is in the ISR and eligible (registered, not
 * fenced, not shutting down), one PartitionChange moving leadership to it
 * (leader epoch + 1, partition epoch + 1, same ISR). Nothing otherwise, also for
 * an unknown topic or partition or exhausted epochs. The service calls it right
 * after committing an ISR change that added the preferred replica, when
 * auto.leader.rebalance.enable is set, rather than leaving the move to the
 * periodic rebalance (cctl_preferred_leaders). */
int cctl_preferred_leader_return(const struct cstate *s, const struct cctl_ctx *ctx,
                                 const uint8_t *topic_id, int32_t partition,
                                 struct cstate_records *out);

/* Elect leaders for every offline partition that can have one now (after a
 * restart, a config change or a partial batch): clean from the ISR, or unclean
 * where allowed. */
int cctl_elect_offline(const struct cstate *s, const struct cctl_ctx *ctx,
                       struct cstate_records *out);

/* ---- reassignment and elections on request (KIP-455, KIP-460) ------------------------------- */

struct cctl_reassign_req {
    const char *topic;
    int32_t partition;
    const int32_t *replicas; /* the target replica list, or NULL: cancel */
    size_t n_replicas;
};

/* Start, change or cancel the reassignment of one partition (Kafka's
 * AlterPartitionReassignments). One PartitionChange carries the move: replicas
 * = the original assignment merged with the target (both orders kept when
 * they agree on the replicas they share), adding = target - original,
 * removing = original - target; the adding replicas catch up as followers and
 * join the ISR through the leader's AlterPartition, and
 * cctl_reassign_maybe_complete() finishes the move. A target given while a
 * move is under way replaces it (the original assignment stays the base);
 * cancel (replicas NULL) goes back to the original assignment in its order,
 * dropping the adding replicas from the ISR. When nothing needs catching up
 * the move completes in the same record; a target equal to the current state
 * needs no record. Errors: UNKNOWN_TOPIC_OR_PARTITION;
 * INVALID_REPLICA_ASSIGNMENT (empty target, duplicate, unknown broker, more
 * than CSTATE_MAX_REPLICAS, or no live in-sync replica could lead afterwards);
 * NO_REASSIGNMENT_IN_PROGRESS (cancel without a move). */
int cctl_reassign(const struct cstate *s, const struct cctl_ctx *ctx,
                  const struct cctl_reassign_req *req, struct cstate_records *out,
                  struct cctl_error *err);

/* Finish the move of a partition once every target replica is in the ISR:
 * one PartitionChange with replicas = the target, the removed replicas out of
 * the ISR, leadership moved to the first eligible target replica in the ISR
 * when the leader is being removed (leader epoch + 1). Nothing when there is
 * no move, it cannot finish yet, or the partition is unknown. The service
 * calls it after each committed ISR change. */
int cctl_reassign_maybe_complete(const struct cstate *s, const struct cctl_ctx *ctx,
                                 const uint8_t *topic_id, int32_t partition,
                                 struct cstate_records *out);

/* cctl_reassign_maybe_complete() for every partition being moved (after a
 * restart: a log cut between an ISR change and the completion). */
int cctl_reassign_complete_all(const struct cstate *s, const struct cctl_ctx *ctx,
                               struct cstate_records *out);

enum cctl_election {
    CCTL_ELECT_PREFERRED = 0, /* Kafka's ElectionType 0 */
    CCTL_ELECT_UNCLEAN = 1,
};

/* Elect a leader for one partition on request (Kafka's ElectLeaders).
 * PREFERRED: leadership to the preferred replica (the first target replica);
 * ELECTION_NOT_NEEDED when it leads, PREFERRED_LEADER_NOT_AVAILABLE when it is
 * not live or not in the ISR. UNCLEAN: for a partition without a leader, a
 * live ISR member or else the first live replica that is not being added;
 * ELECTION_NOT_NEEDED when it has a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE
 * when no replica can lead. UNKNOWN_TOPIC_OR_PARTITION. */
int cctl_elect_leader(const struct cstate *s, const struct cctl_ctx *ctx, const char *topic,
                      int32_t partition, enum cctl_election type, struct cstate_records *out,
                      struct cctl_error *err);
