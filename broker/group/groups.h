/* groups: the consumer-group membership state machine of the classic protocol
 * (Kafka's GroupCoordinator): groups Empty / PreparingRebalance /
 * CompletingRebalance / Stable / Dead, members with their session and rebalance
 * timeouts, JoinGroup / SyncGroup parked until the rebalance completes,
 * generations, static membership (group.instance.id), and the group's
 * GroupMetadataValue record written through gstore after each rebalance.
 *
 * Time: groups never reads a clock itself. It asks @now_ms of its options and
 * tells @arm the earliest deadline it needs; the owner calls groups_tick() then
 * (the broker with one libevent timer, the unit test with a fake clock).
 *
 * Parked requests: groups_join()/groups_sync()/groups_delete() complete through
 * a callback, exactly once, either inside the call or later (rebalance done,
 * record committed, member removed, partition unloaded, groups_free()). The
 * result handed to a callback is borrowed for the call only.
 *
 * Everything runs on the event loop thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

struct groups;
struct gstore;

struct groups_options {
    int32_t initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms */
    int32_t min_session_timeout_ms;     /* group.min.session.timeout.ms */
    int32_t max_session_timeout_ms;     /* group.max.session.timeout.ms */
    int32_t max_size;                   /* group.max.size */
    int32_t max_record_bytes;           /* a GroupMetadataValue larger than this is refused */
    struct gstore *gs;                  /* borrowed */
    int64_t (*now_ms)(void *ud);        /* monotonic milliseconds */
    /* Wall-clock milliseconds for the state timestamps written in group records
     * and offsets expiry; NULL: the system clock. */
    int64_t (*wall_ms)(void *ud);
    /* groups needs groups_tick() at @deadline_ms (a later call replaces it). */
    void (*arm)(void *ud, int64_t deadline_ms);
    void *ud;
};

/* Borrows @o's pointers. -ENOMEM. */
int groups_new(const struct groups_options *o, struct groups **ret);
/* Answers every parked request with COORDINATOR_NOT_AVAILABLE. Appends still in
 * flight in gstore may complete later (they are orphaned, not touched). NULL-safe. */
void groups_free(struct groups *g);
/* Run the expiries due now (sessions, rebalance timeouts, initial delays,
 * pending member ids) and re-arm. */
void groups_tick(struct groups *g);
/* The dynamic group.* limits (group.initial.rebalance.delay.ms etc.): new values
 * apply to the next join. */
void groups_set_limits(struct groups *g, int32_t initial_delay_ms, int32_t min_session_ms,
                       int32_t max_session_ms, int32_t max_size);

/* ---- JoinGroup ------------------------------------------------------------------ */

struct groups_protocol {
    const char *name;
    buf_slice metadata;
};

struct groups_join_req {
    const char *group_id;
    const char *member_id;   /* "" for a new member */
    const char *instance_id; /* NULL: dynamic member */
    const char *client_id;
    const char *client_host;
    const char *protocol_type;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    int32_t n_protocols;
    const struct groups_protocol *protocols;
    bool require_known_member; /* JoinGroup v4+: MEMBER_ID_REQUIRED first */
};

struct groups_join_member {
    const char *member_id;
    const char *instance_id;
    buf_slice metadata;
};

struct groups_join_result {
    int16_t error;
    int32_t generation;   /* -1 on error */
    const char *protocol; /* NULL on error */
    const char *leader;   /* "" on error */
    const char *member_id;
    int32_t n_members; /* the leader's list; 0 for the others */
    const struct groups_join_member *members;
};

typedef void (*groups_join_fn)(void *ud, const struct groups_join_result *res);
void groups_join(struct groups *g, const struct groups_join_req *r, groups_join_fn done, void *ud);

/* ---- SyncGroup ------------------------------------------------------------------ */

struct groups_assignment {
    const char *member_id;
    buf_slice assignment;
};

typedef void (*groups_sync_fn)(void *ud, int16_t error, buf_slice assignment);
void groups_sync(struct groups *g, const char *group_id, int32_t generation, const char *member_id,
                 const char *instance_id, int32_t n_assignments,
                 const struct groups_assignment *assignments, groups_sync_fn done, void *ud);

/* ---- Heartbeat, LeaveGroup ------------------------------------------------------ */

int16_t groups_heartbeat(struct groups *g, const char *group_id, int32_t generation,
                         const char *member_id, const char *instance_id);
/* The group-level error of a LeaveGroup (coordinator check, Dead group); when
 * KERR_NONE, call groups_leave() for each member. */
int16_t groups_leave_check(struct groups *g, const char *group_id);
/* One leaving member (@member_id "" with an @instance_id: the instance's member). */
int16_t groups_leave(struct groups *g, const char *group_id, const char *member_id,
                     const char *instance_id);

/* ---- ListGroups, DescribeGroups, DeleteGroups ----------------------------------- */

/* "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead". */
struct groups_listing {
    const char *group_id;
    const char *protocol_type;
    const char *state;
};
/* Calls @fn for every group this broker coordinates (loaded partitions only). */
void groups_list(struct groups *g, void (*fn)(void *ud, const struct groups_listing *l), void *ud);

struct groups_described_member {
    const char *member_id;
    const char *instance_id;
    const char *client_id;
    const char *client_host;
    buf_slice metadata;   /* of the group's protocol; empty when none selected */
    buf_slice assignment; /* empty unless Stable */
};
struct groups_description {
    int16_t error;
    const char *group_id;
    const char *state;
    const char *protocol_type;
    const char *protocol; /* "" when none */
    int32_t n_members;
    const struct groups_described_member *members; /* borrowed until the next call into groups */
};
/* An unknown group is Dead with no members (as Kafka answers); a group with only
 * committed offsets is Empty. */
void groups_describe(struct groups *g, const char *group_id, struct groups_description *ret);

typedef void (*groups_delete_fn)(void *ud, int16_t error);
/* GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, or the tombstones' outcome. */
void groups_delete(struct groups *g, const char *group_id, groups_delete_fn done, void *ud);

/* ---- the interface with gstore (docs: /work/prompts/group-interface.md) ---------- */

/* Loading: one group-metadata record of offsets partition @partition, in log
 * order; a null @value = tombstone. */
void groups_replay(struct groups *g, int32_t partition, buf_slice key, buf_slice value);
/* This broker stopped leading offsets partition @partition: forget its groups,
 * answer their parked JoinGroup/SyncGroup with NOT_COORDINATOR. */
void groups_unload_partition(struct groups *g, int32_t partition);
/* OffsetCommit's check (Kafka's GroupCoordinator.handleCommitOffsets): KERR_NONE
 * when this commit may be stored now. generation -1 with an empty member id
 * (simple / assign() consumers) is accepted only when the group has no members
 * (absent or Empty); else ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
 * FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS (CompletingRebalance) as Kafka
 * answers. A valid member's commit counts as its heartbeat. */
int16_t groups_validate_commit(struct groups *g, const char *group_id, int32_t generation,
                               const char *member_id, const char *group_instance_id);
/* The group has no members (absent, Empty or Dead). Expiry asks
 * groups_offset_expired() instead. */
bool groups_is_empty(const struct groups *g, const char *group_id);
/* OffsetDelete: the group is non-empty and its members' consumer-protocol
 * subscriptions name @topic (GROUP_SUBSCRIBED_TO_TOPIC). */
bool groups_subscribed_to(const struct groups *g, const char *group_id, const char *topic);

/* Offsets expiry, as Kafka's GroupMetadata.removeExpiredOffsets since 2.1
 * (KIP-211): whether the committed offset of @topic (committed at @commit_ts,
 * with an explicit @expire_ts or -1) has expired at wall time @now_ms.
 * - A group with members keeps its offsets, except a Stable consumer group
 *   whose members' subscriptions all decode: offsets of topics none of them
 *   subscribes to expire @retention_ms after their commit.
 * - An Empty group that had members (a protocol type) expires them
 *   @retention_ms after it became Empty (its state timestamp, kept in its
 *   group record across coordinator moves; the commit time when unknown).
 * - A standalone group (simple commits, no protocol type; or only offsets
 *   known) expires each @retention_ms after its commit.
 * An explicit expire timestamp (OffsetCommit v2-4 retention) replaces the
 * retention rule wherever the group's state allows expiry. */
bool groups_offset_expired(const struct groups *g, const char *group_id, const char *topic,
                           int64_t commit_ts, int64_t expire_ts, int64_t now_ms,
                           int64_t retention_ms);

/* After gstore expired a group's offsets: an Empty group that has no members
 * and no offsets left is removed, with a tombstone for its metadata record
 * (Kafka's cleanupGroupMetadata), so it leaves ListGroups. Returns whether it
 * was removed. */
bool groups_remove_if_unused(struct groups *g, const char *group_id);

/* Counters for tests and metrics. */
size_t groups_count(const struct groups *g);
