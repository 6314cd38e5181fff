/* raft_node: one voter of the coordinator quorum on the event loop — the Raft
 * core (raft.c) driven by a timer and by QuorumStep calls, its durable state in
 * raft_store (on a worker thread of its own), its messages sent over
 * common/rpc to the other voters, and its committed entries handed to the
 * service in offset order (docs/coordinator-quorum.md).
 *
 * The ready contract of raft.h, asynchronously: while a store write runs, the
 * core collects what happens; when it ends, the messages held for it go out,
 * and the next write starts with everything collected. Messages that depend on
 * nothing unwritten go out at once. Committed entries are handed over as soon
 * as the core reports them.
 *
 * Every peer message carries the cluster id and the digest of the voter list;
 * a message whose cluster or list differs is refused, and both ends stop with
 * a message naming the peer: voter lists that disagree never form a quorum. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/coord_config.h"
#include "coordinator/raft.h"

struct event_base;
struct craft_store;
struct craft_store_recovered;
struct craft_node;
struct Weir__Quorum__QuorumMessage;

struct craft_node_callbacks {
    /* Entry @offset is committed; called in offset order, exactly once per
     * offset per run. Takes ownership of @data (malloc'd; NULL when empty). */
    void (*committed)(void *ud, int64_t offset, uint8_t *data, size_t len);
    /* This voter became leader (@leader true) or stopped being one. */
    void (*role)(void *ud, bool leader, int64_t term);
    /* Leader: open the newest metadata snapshot file to stream it to a voter
     * behind the log (mlog_open_snapshot()). */
    int (*open_snapshot)(void *ud, int *ret_fd, int64_t *ret_offset, uint64_t *ret_size);
    /* Follower: replace the metadata log and the state by the received
     * snapshot @name (a file in log_dir) at @offset (mlog_install_snapshot()).
     * -EBADMSG: not a valid snapshot, nothing changed; other errors are fatal. */
    int (*install_snapshot)(void *ud, const char *name, int64_t offset, char *err, size_t errlen);
    /* The quorum cannot go on here (store failure, safety tripwire, a peer
     * with another voter list); @why is a sentence, logged by the caller. */
    void (*fatal)(void *ud, const char *why);
    void *ud;
};

struct craft_node_options {
    const struct coord_settings *cfg; /* borrowed: node id, voters, frame cap */
    const char *cluster_id;           /* borrowed */
    int64_t election_ms;              /* 0: 1000 */
    const char *log_dir;              /* borrowed: where a received snapshot is written */
    struct craft_node_callbacks cb;
};

/* A voter over a recovered metadata log whose records [@snap_offset, @log_next)
 * are @records (borrowed, copied; terms filled in by the caller from the
 * store) and whose tail and hard state are @rec. Takes ownership of @store,
 * also on failure. */
int craft_node_new(struct event_base *base, const struct craft_node_options *opts,
                   struct craft_store *store, const struct craft_store_recovered *rec,
                   int64_t snap_offset, const struct craft_entry *records, size_t n_records,
                   int64_t log_next, struct craft_node **ret);
/* Connect to the peers and start the election timer. */
int craft_node_start(struct craft_node *n);
/* Waits for a running store write. NULL-safe. */
void craft_node_free(struct craft_node *n);

/* Leader only (-EPERM otherwise): append @data (copied); *@ret_offset its offset. */
int craft_node_propose(struct craft_node *n, const void *data, size_t len, int64_t *ret_offset);

/* A QuorumStep from a peer. -EPROTO with the reason in @err when refused (a
 * different cluster or voter list; the node has then also reported fatal). */
int craft_node_receive(struct craft_node *n, const struct Weir__Quorum__QuorumMessage *m, char *err,
                       size_t errlen);

/* The same, filling in @resp's snapshot-chunk answer (may be NULL). */
struct Weir__Quorum__QuorumStepResponse;
int craft_node_receive_reply(struct craft_node *n, const struct Weir__Quorum__QuorumMessage *m,
                             char *err, size_t errlen,
                             struct Weir__Quorum__QuorumStepResponse *resp);

/* The metadata log has every entry below @offset durably. */
void craft_node_log_durable(struct craft_node *n, int64_t offset);
/* The service wrote a snapshot of the state below @offset: drop the entries
 * below the previous one from memory (on a leader, once every voter has
 * them). */
void craft_node_snapshot_taken(struct craft_node *n, int64_t offset, const void *img, size_t len);

bool craft_node_is_leader(const struct craft_node *n);
/* Leader with a valid lease: no other leader can exist now. */
bool craft_node_lease_valid(const struct craft_node *n);
int64_t craft_node_term(const struct craft_node *n);
/* The leader this voter knows of (0: none) and its address (NULL: none). */
int32_t craft_node_leader(const struct craft_node *n);
const struct coord_voter *craft_node_leader_voter(const struct craft_node *n);
/* The offset the next proposal gets. */
int64_t craft_node_next_offset(const struct craft_node *n);
/* The entry at @offset of the quorum log (borrowed until the next change), NULL
 * when compacted or beyond the end: a new leader's uncommitted entries. */
const struct craft_entry *craft_node_entry(const struct craft_node *n, int64_t offset);
/* Entries below are handed to the committed callback already. */
int64_t craft_node_applied(const struct craft_node *n);
/* Term of the entry at @offset (0 for records written before the quorum). */
int64_t craft_node_term_of(const struct craft_node *n, int64_t offset);
