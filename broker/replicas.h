/* replicas: the partitions this broker hosts, as the local metadata says.
 *
 * replicas_reconcile() makes the log manager match the local cstate, and only
 * a cstate of the broker's own cluster: it creates a log (with the topic id in
 * its partition.metadata) for every partition that lists this broker as a
 * replica. A local log the metadata does not assign here is
 *   - deleted when this process saw the metadata assign that replica here,
 *     with the same topic id, and then stop doing so (topic deleted, replica
 *     reassigned away, topic re-created under the same name: a new id);
 *   - otherwise, once the state is known to be caught up with the coordinator,
 *     set aside as "<topic>-<partition>.<id>-stray" and kept (a log left from
 *     a topic deleted while the broker was away, or one the metadata never
 *     knew): never deleted on the absence of metadata alone (safety rule 7).
 *
 * replicas_lookup() is the leader check every data-path request makes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct replicas;
struct logmgr;
struct coordclient;
struct plog;
struct cstate_partition;

struct config;
/* @cfg is the broker's static configuration (borrowed, outlives @ret; NULL:
 * the log manager's defaults, no dynamic broker configs). */
int replicas_new(int32_t broker_id, struct logmgr *lm, struct coordclient *cc,
                 const struct config *cfg, struct replicas **ret);
void replicas_free(struct replicas *r); /* NULL-safe */

/* Bring the local logs in line with the local metadata: create missing logs
 * with their topic's configuration and update the configuration of open ones
 * (topic config and dynamic broker config changes arrive by the watch): each
 * log's settings are the static broker defaults, then the dynamic cluster
 * default, then this broker's dynamic values, then the topic's overrides.
 * Logs errors itself.
 *
 * With a loop (replicas_set_loop()) the pass runs in slices of at most about
 * 20 ms: the first one before this returns (a small change is complete then),
 * the rest from the loop, each followed by @on_progress so replication takes
 * up the logs made so far. A call while a pass is under way makes that pass
 * begin again at its next slice. Without a loop the pass runs to the end. */
void replicas_reconcile(struct replicas *r);

struct event_base;
/* Slice reconcile passes on @base; @on_progress(@ud) after every later slice
 * that created or removed logs. Call once, before the first reconcile. */
int replicas_set_loop(struct replicas *r, struct event_base *base, void (*on_progress)(void *ud),
                      void *ud);
/* A pass is under way (some logs the metadata assigns may not exist yet). */
bool replicas_reconciling(const struct replicas *r);

struct replicas_pass_stats {
    size_t passes;       /* passes begun (classification runs) */
    size_t passes_skipped; /* changes that left the pass's inputs as they were */
    size_t slices;
    size_t logs_created;
    size_t logs_removed; /* deleted or set aside */
    int64_t max_slice_ms;
};
void replicas_get_pass_stats(const struct replicas *r, struct replicas_pass_stats *ret);

struct plog_config;
struct cstate_topic;
/* @base (the broker's log defaults) with @t's overrides applied. */
void replicas_topic_log_config(const struct plog_config *base, const struct cstate_topic *t,
                               struct plog_config *ret);

struct repl;
struct repl_part;

struct replicas_leader {
    struct plog *log;
    struct repl_part *part; /* replication state (NULL only without a repl) */
    int64_t high_watermark; /* what consumers may see */
    int32_t leader_epoch;
    int32_t leader; /* current leader id, -1 none */
};

/* The Kafka error code (common/kerr.h: response data, not a C return) for
 * serving @topic/@partition as its leader: KERR_NONE with *ret filled,
 * UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER (ret->leader says who is),
 * LEADER_NOT_AVAILABLE, FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when
 * @current_leader_epoch (>= 0) is older / newer than the partition's. */
int16_t replicas_lookup(struct replicas *r, const char *topic, int32_t partition,
                        int32_t current_leader_epoch, struct replicas_leader *ret);

/* The replication layer consulted by replicas_lookup (set once by main). */
void replicas_set_repl(struct replicas *r, struct repl *repl);
