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
 * Logs errors itself. */
void replicas_reconcile(struct replicas *r);

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
