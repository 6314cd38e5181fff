/* service: weir-coordinator's RPC service — the Coordinator methods of
 * proto/coordinator.proto on top of the controller, the metadata log and the
 * watch hub.
 *
 * A request that changes metadata goes: controller (records, computed against
 * the "speculative" state, which already holds every record appended so far) ->
 * each record applied to the speculative state and appended to the metadata log
 * -> once the log reports the record durable (group commit, in offset order) it
 * is applied to the "committed" state and pushed to watchers -> the reply, which
 * waits until every record the request wrote, or read, is durable. Reads
 * (describe, list, image, watch) are served from the committed state, so nothing
 * not yet durable is ever shown to anyone. Keeping two states costs twice the
 * memory of one; it buys a controller that sees its own in-flight changes
 * (two racing creates of one topic) without ever exposing them early.
 *
 * Sessions (csession) are soft state: heartbeats refresh them by monotonic time;
 * a timer fences brokers whose session expired. When the connection a broker
 * last registered or heartbeated on closes, its session is cut to
 * session.disconnect.timeout.ms unless it returns on a new connection. After a
 * restart every live broker gets a fresh session.
 *
 * An AlterPartition that adds a partition's preferred replica back to the ISR
 * is followed at once by the move of leadership to it (with
 * auto.leader.rebalance.enable), besides the periodic rebalance.
 *
 * If the metadata log fails (write or fsync error) the service stops
 * acknowledging at once: every waiting call and every later one fails with
 * RPC_INTERNAL, and the fatal callback tells the program to exit non-zero;
 * recovery on the next start decides which records exist. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/coord_config.h"
#include "methods.h" /* proto/: enum coord_method */

struct event_base;
struct mlog;
struct cstate;
struct coord_service;

/* The service cannot go on (the metadata log failed, or an internal
 * inconsistency); @why is a sentence for the log. Called once. */
typedef void (*coord_fatal_fn)(void *ud, const char *why);

struct coord_service_options {
    const struct coord_settings *settings; /* borrowed; must outlive the service */
    coord_fatal_fn on_fatal;
    void *fatal_ud;
    /* Appended but not yet durable record bytes above which mutating requests
     * wait (in arrival order) before being processed. 0: 64 MiB. */
    size_t max_unflushed_bytes;
};

/* Build the service over @log (attached, recovered, borrowed; must outlive the
 * service) and @state, the state recovered from it (takes ownership, also on
 * failure). Nothing is served until coord_service_start(). -ENOMEM, -EINVAL, -EPROTO
 * when the handler table does not match coordinator.proto's methods. */
int coord_service_new(struct event_base *base, struct mlog *log, struct cstate *state,
                      const struct coord_service_options *opts, struct coord_service **ret);

/* Make the service one voter of the quorum cfg->voters names (more than one),
 * before coord_service_start: the Raft state is read from @dir (raft_store.h)
 * and the metadata log's records. The controller then runs only while this
 * voter leads; see docs/coordinator-quorum.md. -errno having logged one line. */
int coord_service_open_quorum(struct coord_service *svc, const char *dir);

/* Elect leaders for offline partitions that can have one, start the session and
 * rebalance timers, and listen on every configured listener. The state must have
 * a cluster id (the bootstrap record written when the data directory was
 * formatted): -EINVAL otherwise. @ready runs once those elections are durable
 * and every listener is bound. -errno from bind or listen (the caller exits). */
typedef void (*coord_ready_fn)(struct coord_service *svc, void *ud);
int coord_service_start(struct coord_service *svc, coord_ready_fn ready, void *ud);

/* The bound port of listener @i (after start). */
int coord_service_port(const struct coord_service *svc, size_t i);
const char *coord_service_cluster_id(const struct coord_service *svc);
/* The last durable (committed) metadata offset; -1 when none. */
int64_t coord_service_committed_offset(const struct coord_service *svc);

/* Clean shutdown, blocking: stop accepting, let every appended record become
 * durable (their calls are answered), then close every connection. Returns the
 * metadata log's error (0 when clean). Call before coord_service_free(). */
int coord_service_stop(struct coord_service *svc);

struct metrics;
/* Adds the coordinator's collector (service_metrics.c) to @m, which must not
 * outlive the service's use of it: unregister by freeing @m first. */
int coord_service_register_metrics(struct coord_service *svc, struct metrics *m);
/* /health: true when serving; else false with a one-line reason. */
bool coord_service_health(const struct coord_service *svc, char *reason, size_t len);
void coord_service_free(struct coord_service *svc);
