/* raft: the coordinator quorum's consensus core — Raft (Ongaro & Ousterhout)
 * with pre-vote, check-quorum and a leader lease, as a pure state machine.
 *
 * The core does no I/O and reads no clock: the caller feeds it time
 * (craft_tick), peer messages (craft_step) and proposals (craft_propose), and
 * after each call drains what it must do, in this order (the "ready" contract,
 * as in etcd's raft):
 *   1. persist the hard state (craft_term/craft_vote) if craft_hard_dirty();
 *   2. if craft_unstable() reports entries, cut its durable log at that offset
 *      and write the entries from there on, then call craft_stable_to() once
 *      they are durable (asynchronously is fine: the leader counts itself in a
 *      majority only for stable entries);
 *   3. only then send craft_take_msgs()' messages: a vote or an acknowledgement
 *      must never get ahead of the disk;
 *   4. apply committed entries [craft_applied(), craft_commit()) in order and
 *      call craft_applied_to().
 *
 * Offsets are 0-based and dense and are the metadata log's offsets: entry i is
 * metadata record i. A snapshot at offset s covers entries [0, s), the same
 * meaning as mlog's snapshot offset. Each entry carries the term it was
 * created in. An entry of length 0 is the leader's no-op, appended when it wins
 * an election (Raft commits an earlier term's entries only through one of its
 * own); the glue turns it into a LeaderChange metadata record.
 *
 * Timing: election timeouts are drawn from [election_ms, 2 * election_ms) by
 * the core's own seeded generator, so a seed replays exactly. A follower that
 * heard from a leader within election_ms refuses pre-votes and votes (leader
 * stickiness: a node that was cut off and comes back cannot disrupt a healthy
 * leader); a leader that has not heard from a majority within election_ms steps
 * down (check-quorum); craft_lease_valid() says whether the leader may still
 * assume no other leader exists (see docs/coordinator-quorum.md).
 *
 * Ownership: entry data given to craft_propose() is copied. Messages taken with
 * craft_take_msgs() belong to the caller (craft_msgs_free()). Errors are negative
 * errno. Not thread-safe: one loop owns a craft. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRAFT_MAX_VOTERS 7

struct craft;

enum craft_role {
    CRAFT_FOLLOWER,
    CRAFT_PRE_CANDIDATE,
    CRAFT_CANDIDATE,
    CRAFT_LEADER,
};

const char *craft_role_name(enum craft_role role);

enum craft_msg_type {
    CRAFT_MSG_PREVOTE,      /* term = the term the sender would stand in */
    CRAFT_MSG_PREVOTE_RESP, /* term = that same proposed term */
    CRAFT_MSG_VOTE,
    CRAFT_MSG_VOTE_RESP,
    CRAFT_MSG_APPEND, /* entries and heartbeats */
    CRAFT_MSG_APPEND_RESP,
    CRAFT_MSG_SNAPSHOT, /* install a snapshot */
};

struct craft_entry {
    int64_t term;
    uint8_t *data; /* NULL when len == 0 */
    size_t len;
};

struct craft_msg {
    enum craft_msg_type type;
    int32_t from, to;
    int64_t term;
    /* APPEND / SNAPSHOT: the leader's clock when sent; echoed in APPEND_RESP.
     * The lease and check-quorum count from it. */
    int64_t ts;
    /* PREVOTE / VOTE: the candidate's last entry. */
    int64_t last_offset, last_term;
    /* *_RESP */
    bool granted; /* vote granted / append accepted */
    /* APPEND: entries [prev_offset + 1, prev_offset + 1 + n_entries). */
    int64_t prev_offset, prev_term;
    struct craft_entry *entries;
    size_t n_entries;
    int64_t commit;
    /* APPEND_RESP: accepted: every entry below match is replicated; rejected:
     * reject_offset = the prev_offset refused, hint = the follower's log end. */
    int64_t match, reject_offset, hint;
    /* SNAPSHOT: state covering [0, snap_offset); snap_term = term of entry
     * snap_offset - 1. */
    int64_t snap_offset, snap_term;
    uint8_t *snap_data;
    size_t snap_len;
};

struct craft_options {
    int32_t id;
    int32_t voters[CRAFT_MAX_VOTERS];
    size_t n_voters;           /* including id */
    int64_t election_ms;       /* base election timeout; default 1000 */
    int64_t heartbeat_ms;      /* default election_ms / 5 */
    size_t max_append_entries; /* per APPEND message; default 256 */
    uint64_t seed;             /* for election timeouts */
    /* The payload of the no-op a new leader appends (malloc'd into *ret_data;
     * the core frees it). NULL: an empty entry. A failure leaves it empty. */
    int (*make_noop)(void *ud, int64_t term, int32_t leader, uint8_t **ret_data,
                     size_t *ret_len);
    void *noop_ud;
};

/* What a voter recovered from its disk, for craft_new(). */
struct craft_disk {
    int64_t term;
    int32_t vote;                   /* 0 = none (node ids are positive) */
    int64_t snap_offset, snap_term; /* 0, 0 without a snapshot */
    const uint8_t *snap_data;       /* copied */
    size_t snap_len;
    const struct craft_entry *entries; /* [snap_offset, snap_offset + n), copied */
    size_t n_entries;
    /* Entries below are known committed and already applied by the caller (a
     * log that holds only committed entries, like the metadata log); at most
     * the end of the entries. 0: only the snapshot. */
    int64_t commit;
};

/* -EINVAL: id not among the voters, a duplicate or non-positive voter id, too
 * many voters, timeouts not positive or heartbeat >= election. @disk may be NULL
 * (empty). Starts as a follower at @now_ms. */
int craft_new(const struct craft_options *opts, const struct craft_disk *disk, int64_t now_ms,
              struct craft **ret);
void craft_free(struct craft *r);

/* Advance the clock: election timeouts, heartbeats, check-quorum. */
void craft_tick(struct craft *r, int64_t now_ms);

/* Feed one message addressed to this node (borrowed: entries are copied).
 * Messages from non-voters or with nonsense fields are dropped (-EINVAL). */
int craft_step(struct craft *r, const struct craft_msg *m);

/* Append @data as a new entry (copied). Leader only: -EPERM otherwise, with the
 * known leader (0 if none) in craft_leader(). *@ret_offset gets its offset. */
int craft_propose(struct craft *r, const void *data, size_t len, int64_t *ret_offset);

/* Drop the entries below @offset, replacing them by the snapshot @data (copied)
 * the caller took of its state after applying them. @offset must be within
 * (snapshot offset, applied]. Lagging followers get this snapshot. */
int craft_compact(struct craft *r, int64_t offset, const void *data, size_t len);

/* ---- the ready contract (see the banner) ---- */

bool craft_hard_dirty(const struct craft *r);
void craft_hard_saved(struct craft *r);

/* True when the snapshot changed under the caller (a follower installed the
 * leader's snapshot): the caller replaces its state and durable log with it. */
bool craft_snapshot_dirty(const struct craft *r);
void craft_snapshot_get(const struct craft *r, int64_t *ret_offset, int64_t *ret_term,
                        const uint8_t **ret_data, size_t *ret_len);
void craft_snapshot_saved(struct craft *r);

/* First entry not yet durable; returns false if every entry is. The caller's
 * durable log must be cut at *ret_from before writing [*ret_from, craft_last()+1). */
bool craft_unstable(const struct craft *r, int64_t *ret_from);
void craft_stable_to(struct craft *r, int64_t end);

/* Outgoing messages, oldest first; the caller owns them. */
size_t craft_take_msgs(struct craft *r, struct craft_msg **ret_msgs);
void craft_msgs_free(struct craft_msg *msgs, size_t n);

int64_t craft_commit(const struct craft *r); /* entries below are committed */
int64_t craft_applied(const struct craft *r);
void craft_applied_to(struct craft *r, int64_t end);

/* ---- queries ---- */

/* Entry at @offset, borrowed until the next call that changes the log; NULL if
 * compacted away or beyond the end. */
const struct craft_entry *craft_entry_at(const struct craft *r, int64_t offset);
int64_t craft_next_offset(const struct craft *r); /* log end (exclusive) */
/* Non-NULL once the node saw proof that safety was violated elsewhere (a
 * committed entry contradicted, two leaders in one term). It then refuses the
 * offending message; the caller must stop acknowledging and alert. */
const char *craft_broken(const struct craft *r);
int64_t craft_snap_offset(const struct craft *r);
int64_t craft_term(const struct craft *r);
int32_t craft_vote(const struct craft *r);
int32_t craft_id(const struct craft *r);
int32_t craft_leader(const struct craft *r); /* 0 when unknown */
enum craft_role craft_role_get(const struct craft *r);

/* Leader only: true while a majority (counting itself) answered within
 * election_ms - @drift_ms of @now_ms. No other leader can have been elected in
 * that window, because those voters refuse votes while they hear from us. */
bool craft_lease_valid(const struct craft *r, int64_t now_ms, int64_t drift_ms);

/* Leader only: the replication state of @voter (match = entries replicated,
 * last_ack_ms = last answer); -ENOENT for a non-voter or a non-leader. */
int craft_progress(const struct craft *r, int32_t voter, int64_t *ret_match,
                   int64_t *ret_last_ack_ms);
