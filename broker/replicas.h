/* replicas: the partitions this broker hosts, as the local metadata says.
 *
 * replicas_reconcile() makes the log manager match the local cstate: it creates
 * a log for every partition that lists this broker as a replica and, once the
 * state is known to be caught up with the coordinator, deletes the logs of
 * partitions that are not assigned here any more (deleted topics). A topic
 * deleted and re-created under the same name while this broker was away is
 * noticed by its topic id: the old data is deleted first.
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

int replicas_new(int32_t broker_id, struct logmgr *lm, struct coordclient *cc,
                 struct replicas **ret);
void replicas_free(struct replicas *r); /* NULL-safe */

/* Bring the local logs in line with the local metadata. Logs errors itself. */
void replicas_reconcile(struct replicas *r);

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
