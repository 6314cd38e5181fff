/* service_internal: the coord_service structure and the small API its files
 * share. Not for use outside coordinator/service*.c.
 *
 *   service.c          lifecycle, the method table, admission of mutations,
 *                      shared helpers, the rebalance timer
 *   service_write.c    the write path: append (speculative state), durable
 *                      (committed state, watchers, snapshots), log failure
 *   service_wait.c     the two waits: replies held until durable (pend_*),
 *                      mutations parked while too much is unflushed (park_*)
 *   service_brokers.c  RegisterBroker, Heartbeat, ControlledShutdown,
 *                      UnregisterBroker; sessions and broker connections
 *   service_batch.c    the batch skeleton and its five methods (CreateTopics,
 *                      DeleteTopics, CreatePartitions, AlterTopicConfigs,
 *                      AlterPartition)
 *   service_reads.c    DescribeCluster, ListTopics, DescribeTopics, GetImage,
 *                      Watch; the cached image of the committed state
 *   service_reassign.c AlterReassignments, ListReassignments, ElectLeaders;
 *                      completing partition moves
 *
 * Internal symbols carry the prefix svc_. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h> /* evutil_socket_t */

#include "common/meta/state.h"
#include "coordinator/controller.h"
#include "coordinator/mlog.h"
#include "coordinator/raft_node.h"
#include "coordinator/service.h"
#include "methods.h"

struct ProtobufCMessage;
struct event;
struct rpc_call;
struct rpc_server;
struct csession_table;
struct watch_hub;
struct broker_conn;
struct purg;
struct svc_batch_ops;

#define SVC_SESSION_TICK_MIN_MS 5

/* A record appended and applied to the speculative state, not yet durable. */
struct inflight {
    int64_t offset;
    uint8_t *data;
    size_t len;
};

/* The two waits (service_wait.c); nothing else touches these fields. Both are
 * operations in one purgatory (common/purgatory.h), under two keys. */
struct svc_waits {
    struct purg *pg;
    struct event *unpark_ev;
    int fail_status;       /* for svc_wait_fail_all()'s forced completions */
    const char *fail_text; /* borrowed for the duration of that call */
};

/* What service_metrics.c exports; the files that do the work count here. */
struct svc_counters {
    uint64_t rpc[COORD_M_COUNT];  /* requests received, by method */
    uint64_t fenced_expired;      /* sessions fenced for silence */
    uint64_t fenced_dead;         /* ... silent a further session timeout */
    uint64_t fenced_disconnect;   /* ... whose connection closed */
    uint64_t leader_elections;    /* committed leader changes to a broker */
    uint64_t leaders_lost;        /* committed changes to no leader */
};

struct coord_service {
    struct event_base *base;
    struct mlog *log;
    const struct coord_settings *cfg;
    struct coord_service_options opts;
    struct cstate *spec;      /* every appended record applied */
    struct cstate *committed; /* every durable record applied */
    struct cctl_ctx ctx;
    struct csession_table *sessions;
    struct watch_hub *watch;
    struct rpc_server *servers[COORD_CONFIG_MAX_LISTENERS];
    size_t n_servers;
    struct event *session_timer;
    struct event *rebalance_timer;

    struct inflight *q; /* ring of appended records in offset order */
    size_t q_head, q_n, q_cap;
    size_t unflushed_bytes;

    struct svc_waits waits;
    struct broker_conn *bconns;

    bool failed;
    bool stopping;
    coord_ready_fn ready;
    void *ready_ud;
    int64_t ready_offset;
    bool ready_pending;

    uint8_t *img; /* cached image of the committed state */
    size_t img_len;
    int64_t img_offset;
    bool img_valid;

    struct cstate_records recs; /* scratch */
    struct svc_counters ctr;

    /* The quorum voter (service_quorum.c); NULL for a single coordinator,
     * whose path is then exactly the one without a quorum. */
    struct craft_node *quorum;
};

/* True when this coordinator may run the controller: always for a single one,
 * only as the Raft leader in a quorum. */
static inline bool svc_leads(const struct coord_service *svc)
{
    return !svc->quorum || craft_node_is_leader(svc->quorum);
}

/* The offset the next appended record gets. */
static inline int64_t svc_next_offset(const struct coord_service *svc)
{
    return svc->quorum ? craft_node_next_offset(svc->quorum) : mlog_next_offset(svc->log);
}

static inline int64_t svc_committed_offset(const struct coord_service *svc)
{
    return svc->committed->offset;
}

/* A protobuf string field from a C string that may be NULL. */
static inline char *svc_str_or_empty(const char *s)
{
    return (char *)(s ? s : "");
}

/* ---- service.c ------------------------------------------------------------------ */

/* Process a mutating call now (admitted, or just unparked). */
void svc_mutation_process(struct coord_service *svc, struct rpc_call *call,
                          const struct ProtobufCMessage *req);
/* Run the ready callback once the bootstrap is durable. */
void svc_maybe_ready(struct coord_service *svc);
void svc_arm_ms(struct event *ev, int64_t ms);

void svc_err_set(struct cctl_error *err, int16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* For a response's error_message, which protobuf-c types as char *. */
char *svc_err_msg(const struct cctl_error *err);
/* A controller error that is the coordinator's own failure. */
void svc_err_internal(struct cctl_error *err, int r);

/* ---- service_metrics.c ------------------------------------------------------------ */

/* A durable record about to be applied to the committed state: counts the
 * leader changes it makes. */
void svc_metrics_note_durable(struct coord_service *svc, const uint8_t *data, size_t len);

/* ---- service_write.c -------------------------------------------------------------- */

/* Append @recs in order: each is applied to the speculative state, then queued
 * in the log (the records are taken out of @recs). On success *ret_last (may be
 * NULL) is the offset of the last one, or unchanged when @recs is empty.
 * -EMSGSIZE (a record above the cap; nothing written), -EINVAL (a record the
 * state refuses: a controller bug; the ones before it stay written), -EIO (the
 * service failed). A log that cannot take a record already applied is fatal. */
int svc_write(struct coord_service *svc, struct cstate_records *recs, int64_t *ret_last);
/* Write svc->recs, records that come from the coordinator itself (timers,
 * start-up); failures are logged with @what. */
void svc_write_internal(struct coord_service *svc, const char *what);
/* Settle one item the controller planned: it returned @r (0 or -errno) and
 * @err, the records in svc->recs. Written when it agreed and @write is set
 * (false: a validate_only request), else dropped. On return @err is the
 * item's outcome: the controller's refusal, UNKNOWN_SERVER_ERROR for an
 * @r < 0, or why the write failed. */
void svc_write_item(struct coord_service *svc, int r, struct cctl_error *err, bool write);
/* Stop acknowledging anything: the state in memory may now hold changes that
 * are not durable, so only a restart (recovery) can tell what exists. */
void svc_fatal(struct coord_service *svc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Free the records still in flight. */
void svc_write_deinit(struct coord_service *svc);
/* Queue @data (taking it) as the in-flight record at @offset. */
int svc_inflight_push(struct coord_service *svc, int64_t offset, uint8_t *data, size_t len);
/* Take the oldest in-flight record if it has @offset. */
bool svc_inflight_pop(struct coord_service *svc, int64_t offset, struct inflight *ret);
/* Record @offset is durable (single) or committed (quorum) and was applied to
 * the speculative state: apply it to the committed state, push it to
 * watchers, release the replies it covers, snapshot when due. Takes
 * ownership of @data (malloc'd). */
void svc_commit_record(struct coord_service *svc, int64_t offset, uint8_t *data, size_t len);

/* ---- service_quorum.c ------------------------------------------------------------- */

/* QuorumStep, from another voter. */
void svc_quorum_step(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);
/* Answer @call on a voter that is not the leader: the caller must go to the
 * leader (named in the text when known). */
void svc_not_leader(struct coord_service *svc, struct rpc_call *call);

/* ---- service_wait.c: the two waits --------------------------------------------------- */

int svc_wait_init(struct coord_service *svc);
/* Fail every waiting call with RPC_SHUTTING_DOWN and free the waits. */
void svc_wait_deinit(struct coord_service *svc);
/* Answer @call with @resp (borrowed) once every record up to @wait_offset is
 * durable: at once when it already is, else from svc_wait_durable(). */
void svc_reply(struct coord_service *svc, struct rpc_call *call,
               const struct ProtobufCMessage *resp, int64_t wait_offset);
/* The committed offset moved: answer the replies it covers, and let parked
 * mutations go once the unflushed bytes are below the limit. */
void svc_wait_durable(struct coord_service *svc);
/* Back-pressure: when mutations are parked already, or too many appended
 * bytes are not yet durable, @call waits (in arrival order) and true is
 * returned; @call is then taken (parked, or failed for want of memory). */
bool svc_park(struct coord_service *svc, struct rpc_call *call, const struct ProtobufCMessage *req);
/* Fail the parked mutations (never appended) with @status. */
void svc_park_fail_all(struct coord_service *svc, int status, const char *text);
/* Fail every waiting call, held replies and parked mutations, with @status. */
void svc_wait_fail_all(struct coord_service *svc, int status, const char *text);

/* ---- service_brokers.c ---------------------------------------------------------------- */

void svc_register_broker(struct coord_service *svc, struct rpc_call *call,
                         const struct ProtobufCMessage *msg);
void svc_controlled_shutdown(struct coord_service *svc, struct rpc_call *call,
                             const struct ProtobufCMessage *msg);
void svc_allocate_producer_ids(struct coord_service *svc, struct rpc_call *call,
                               const struct ProtobufCMessage *msg);
void svc_unregister_broker(struct coord_service *svc, struct rpc_call *call,
                           const struct ProtobufCMessage *msg);
/* An RPC handler: answered at once, writes nothing. */
void svc_heartbeat(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);
/* The session timer: fence every broker whose session expired. */
void svc_on_session_tick(evutil_socket_t fd, short what, void *arg);
/* Stop watching every broker connection. */
void svc_broker_conns_drop(struct coord_service *svc);

/* ---- service_batch.c ------------------------------------------------------------------ */

extern const struct svc_batch_ops svc_alter_partition_ops;
extern const struct svc_batch_ops svc_create_topics_ops;
extern const struct svc_batch_ops svc_delete_topics_ops;
extern const struct svc_batch_ops svc_create_partitions_ops;
extern const struct svc_batch_ops svc_alter_configs_ops;
extern const struct svc_batch_ops svc_alter_broker_configs_ops;

/* Run one call of the batch method @ops and answer it once durable. */
void svc_batch_run(struct coord_service *svc, struct rpc_call *call,
                   const struct ProtobufCMessage *req, const struct svc_batch_ops *ops);

/* ---- service_reads.c ------------------------------------------------------------------ */

/* RPC handlers, answered at once from the committed state. */
void svc_describe_cluster(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);
void svc_list_topics(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);
void svc_describe_topics(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);
void svc_get_image(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);
void svc_watch(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);

/* The image of the committed state, cached in svc->img until the committed
 * offset moves. -errno from encoding. */
int svc_image_get(struct coord_service *svc);
void svc_image_invalidate(struct coord_service *svc);
/* For the watch hub: a copy of the cached image. */
int svc_watch_image(void *ud, uint8_t **ret_data, size_t *ret_len, int64_t *ret_offset);

/* ---- service_reassign.c ---------------------------------------------------------------- */

void svc_alter_reassignments(struct coord_service *svc, struct rpc_call *call,
                             const struct ProtobufCMessage *msg);
void svc_elect_leaders(struct coord_service *svc, struct rpc_call *call,
                       const struct ProtobufCMessage *msg);
/* An RPC handler: answered at once from the committed state. */
void svc_list_reassignments(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud);
/* Write the completion of the move of one partition when every target replica
 * is in sync (after an ISR change was written). */
void svc_reassign_maybe_complete(struct coord_service *svc, const uint8_t *topic_id,
                                 int32_t partition);
/* The same for every partition being moved (start-up, the rebalance timer);
 * @why names the occasion in the log. */
void svc_reassign_complete_all(struct coord_service *svc, const char *why);
