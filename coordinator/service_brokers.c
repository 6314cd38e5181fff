/* service_brokers: the methods brokers call about themselves — RegisterBroker,
 * Heartbeat, ControlledShutdown, UnregisterBroker — and the soft state they
 * keep: sessions (csession), refreshed by heartbeats and expired by the
 * session timer, which fences the broker; and the connection each broker last
 * used, whose close cuts its session to session.disconnect.timeout.ms. */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "coordinator/session.h"
#include "metadata.pb-c.h"

#define SVC_SESSION_TICK_MAX_MS 1000

/* The connection broker @broker_id last registered or heartbeated on, held so
 * that its close cuts the broker's session short (session.disconnect.timeout.ms):
 * a crashed broker's kernel closes its sockets at once, so the close is a much
 * earlier sign of death than a missing heartbeat. A list, scanned on every
 * heartbeat: brokers number in the tens to hundreds, which costs less than
 * decoding the heartbeat. */
struct broker_conn {
    struct broker_conn *next;
    struct coord_service *svc;
    int32_t broker_id;
    struct rpc_conn *conn; /* referenced; its close hook has this entry as ud */
};

/* ---- sessions and broker connections --------------------------------------------- */

/* Sleep until the next session deadline (bounded, since heartbeats move
 * deadlines later); re-arming replaces the pending wake-up. */
static void session_rearm(struct coord_service *svc, int64_t now)
{
    int64_t next = csession_next_wake(svc->sessions, now);
    int64_t delay = SVC_SESSION_TICK_MAX_MS;
    if (next != INT64_MAX && next - now + 1 < delay)
        delay = next - now + 1;
    if (delay < SVC_SESSION_TICK_MIN_MS)
        delay = SVC_SESSION_TICK_MIN_MS;
    svc_arm_ms(svc->session_timer, delay);
}

/* The broker's connection closed: fence it after session.disconnect.timeout.ms
 * unless it registers or heartbeats on a new connection first. */
static void session_cut(struct coord_service *svc, int32_t id)
{
    if (svc->failed || svc->stopping)
        return;
    int64_t now = clock_mono_ms();
    int64_t grace = svc->cfg->session_disconnect_timeout_ms;
    int64_t deadline;
    if (!csession_shorten(svc->sessions, id, now + grace + 1, &deadline))
        return;
    log_info("coordinator",
             "broker %d connection closed: fencing in %" PRId64 " ms unless it returns", (int)id,
             deadline - 1 - now);
    session_rearm(svc, now);
}

static void bconn_unlink(struct coord_service *svc, struct broker_conn *bc)
{
    for (struct broker_conn **p = &svc->bconns; *p; p = &(*p)->next) {
        if (*p == bc) {
            *p = bc->next;
            return;
        }
    }
}

/* The close hook: the hook is already gone, the entry goes too. */
static void on_broker_conn_close(struct rpc_conn *conn, void *ud)
{
    struct broker_conn *bc = ud;
    struct coord_service *svc = bc->svc;
    int32_t id = bc->broker_id;
    bconn_unlink(svc, bc);
    rpc_conn_unref(conn);
    free(bc);
    session_cut(svc, id);
}

static void bconn_drop(struct coord_service *svc, struct broker_conn *bc)
{
    bconn_unlink(svc, bc);
    rpc_conn_remove_on_close(bc->conn, on_broker_conn_close, bc);
    rpc_conn_unref(bc->conn);
    free(bc);
}

void svc_broker_conns_drop(struct coord_service *svc)
{
    while (svc->bconns)
        bconn_drop(svc, svc->bconns);
}

/* Broker @id just registered or heartbeated on @call's connection (its session
 * was touched): watch that connection instead of any earlier one, whose close
 * then means nothing. */
static void track_broker_conn(struct coord_service *svc, int32_t id, struct rpc_call *call)
{
    struct rpc_conn *conn = rpc_call_connection(call);
    struct broker_conn *bc = svc->bconns;
    while (bc && bc->broker_id != id)
        bc = bc->next;
    if (bc && bc->conn == conn)
        return;
    if (bc)
        bconn_drop(svc, bc);
    bc = calloc(1, sizeof(*bc));
    if (!bc)
        return; /* the session timeout still applies */
    bc->svc = svc;
    bc->broker_id = id;
    int r = rpc_conn_on_close(conn, on_broker_conn_close, bc);
    if (r < 0) {
        free(bc);
        /* Closed before the request was handled (it waited for the log): the
         * broker's latest connection is already gone. */
        if (r == -ENOTCONN)
            session_cut(svc, id);
        return;
    }
    bc->conn = rpc_conn_ref(conn);
    bc->next = svc->bconns;
    svc->bconns = bc;
}

/* ---- brokers --------------------------------------------------------------------- */

static void endpoint_from_pb(const Weir__Meta__Endpoint *e, struct cstate_endpoint *out)
{
    out->listener = e->listener;
    out->host = e->host;
    out->port = e->port;
    out->security_protocol = e->security_protocol;
}

void svc_register_broker(struct coord_service *svc, struct rpc_call *call,
                         const ProtobufCMessage *msg)
{
    const Weir__Coord__RegisterBrokerRequest *req = (const Weir__Coord__RegisterBrokerRequest *)msg;
    Weir__Coord__RegisterBrokerResponse resp = WEIR__COORD__REGISTER_BROKER_RESPONSE__INIT;
    struct cctl_error err = {0};
    struct cstate_endpoint *eps = NULL;
    int64_t epoch = -1;

    if (req->incarnation_id.len != CSTATE_UUID_LEN) {
        svc_err_set(&err, KERR_INVALID_REQUEST, "incarnation_id must be %d bytes, not %zu",
                    CSTATE_UUID_LEN, req->incarnation_id.len);
    } else if (req->cluster_id && req->cluster_id[0] && svc->spec->cluster_id &&
               strcmp(req->cluster_id, svc->spec->cluster_id) != 0) {
        svc_err_set(&err, KERR_INCONSISTENT_CLUSTER_ID,
                    "broker belongs to cluster %.64s, this coordinator serves %s", req->cluster_id,
                    svc->spec->cluster_id);
    } else if (req->n_endpoints > CSTATE_MAX_ENDPOINTS) {
        svc_err_set(&err, KERR_INVALID_REQUEST, "%zu endpoints; at most %d", req->n_endpoints,
                    CSTATE_MAX_ENDPOINTS);
    } else {
        eps = calloc(req->n_endpoints ? req->n_endpoints : 1, sizeof(*eps));
        if (!eps) {
            svc_err_internal(&err, -ENOMEM);
        } else {
            for (size_t i = 0; i < req->n_endpoints; i++)
                endpoint_from_pb(req->endpoints[i], &eps[i]);
            struct cstate_endpoint repl;
            struct cctl_register_req rr = {
                .broker_id = req->broker_id,
                .endpoints = eps,
                .n_endpoints = req->n_endpoints,
                .rack = req->rack,
            };
            memcpy(rr.incarnation, req->incarnation_id.data, CSTATE_UUID_LEN);
            if (req->replication_endpoint) {
                endpoint_from_pb(req->replication_endpoint, &repl);
                rr.replication = &repl;
            }
            int r = cctl_register_broker(svc->spec, &svc->ctx, &rr, &svc->recs, &epoch, &err);
            size_t n = svc->recs.n;
            svc_write_item(svc, r, &err, true);
            if (err.code == KERR_NONE) {
                if (csession_touch(svc->sessions, req->broker_id, epoch, clock_mono_ms()) == 0)
                    track_broker_conn(svc, req->broker_id, call);
                if (n > 0)
                    log_event(LOG_LEVEL_INFO, "coordinator", "broker_registered",
                              LOG_FIELDS(LF_INT("broker", req->broker_id), LF_INT("epoch", epoch),
                                         LF_STR("peer", rpc_conn_peer(rpc_call_connection(call)))),
                              "registering broker %d from %s with epoch %" PRId64 " (%zu records)",
                              (int)req->broker_id, rpc_conn_peer(rpc_call_connection(call)),
                              epoch, n);
            }
        }
    }
    free(eps);
    if (err.code != KERR_NONE)
        log_info("coordinator", "registration of broker %d refused: %s", (int)req->broker_id,
                 err.message);
    resp.error_code = err.code;
    resp.error_message = svc_err_msg(&err);
    resp.broker_epoch = err.code ? -1 : epoch;
    resp.cluster_id = svc_str_or_empty(svc->spec->cluster_id);
    resp.heartbeat_interval_ms = svc->cfg->heartbeat_interval_ms;
    resp.session_timeout_ms = svc->cfg->session_timeout_ms;
    resp.metadata_offset = svc->spec->offset;
    resp.coordinator_id = svc->cfg->node_id;
    svc_reply(svc, call, &resp.base, svc->spec->offset);
}

void svc_heartbeat(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct coord_service *svc = ud;
    const Weir__Coord__HeartbeatRequest *req = (const Weir__Coord__HeartbeatRequest *)msg;
    Weir__Coord__HeartbeatResponse resp = WEIR__COORD__HEARTBEAT_RESPONSE__INIT;
    struct cctl_error err = {0};
    if (svc->failed || svc->stopping) {
        rpc_call_fail(call, RPC_SHUTTING_DOWN, "coordinator is stopping");
        return;
    }
    /* The broker's lease counts from an accepted heartbeat: only a leader that
     * knows no other leader can exist may accept one (docs/coordinator-quorum.md). */
    if (svc->quorum && !craft_node_lease_valid(svc->quorum)) {
        svc_not_leader(svc, call);
        return;
    }
    int r = cctl_check_broker_epoch(svc->spec, req->broker_id, req->broker_epoch, &err);
    if (r < 0)
        svc_err_internal(&err, r);
    if (err.code == KERR_NONE) {
        if (csession_touch(svc->sessions, req->broker_id, req->broker_epoch, clock_mono_ms()) == 0)
            track_broker_conn(svc, req->broker_id, call);
        csession_acked(svc->sessions, req->broker_id, req->metadata_offset);
        const struct cstate_broker *b = cstate_broker(svc->spec, req->broker_id);
        resp.shutting_down = b && b->state == CSTATE_BROKER_CONTROLLED_SHUTDOWN;
    }
    resp.error_code = err.code;
    resp.error_message = svc_err_msg(&err);
    resp.metadata_offset = svc_committed_offset(svc);
    rpc_call_reply(call, &resp.base);
}

void svc_controlled_shutdown(struct coord_service *svc, struct rpc_call *call,
                             const ProtobufCMessage *msg)
{
    const Weir__Coord__ControlledShutdownRequest *req =
        (const Weir__Coord__ControlledShutdownRequest *)msg;
    Weir__Coord__ControlledShutdownResponse resp = WEIR__COORD__CONTROLLED_SHUTDOWN_RESPONSE__INIT;
    struct cctl_error err = {0};
    int32_t remaining = 0;
    int r;
    if (req->exit)
        r = cctl_fence_broker(svc->spec, &svc->ctx, req->broker_id, req->broker_epoch, &svc->recs,
                              &err);
    else
        r = cctl_controlled_shutdown(svc->spec, &svc->ctx, req->broker_id, req->broker_epoch,
                                     &svc->recs, &remaining, &err);
    size_t n = svc->recs.n;
    svc_write_item(svc, r, &err, true);
    if (err.code == KERR_NONE && req->exit) {
        csession_remove(svc->sessions, req->broker_id);
        log_event(LOG_LEVEL_INFO, "coordinator", "broker_fenced",
                  LOG_FIELDS(LF_INT("broker", req->broker_id), LF_INT("epoch", req->broker_epoch),
                             LF_STR("reason", "shutdown")),
                  "broker %d (epoch %" PRId64 ") is exiting: fencing it (%zu records)",
                  (int)req->broker_id, req->broker_epoch, n);
    } else if (err.code == KERR_NONE) {
        log_event(LOG_LEVEL_INFO, "coordinator", "broker_controlled_shutdown",
                  LOG_FIELDS(LF_INT("broker", req->broker_id), LF_INT("epoch", req->broker_epoch),
                             LF_INT("leaderships", remaining)),
                  "broker %d controlled shutdown: %zu records, %d leaderships remain",
                  (int)req->broker_id, n, (int)remaining);
    }
    resp.error_code = err.code;
    resp.error_message = svc_err_msg(&err);
    resp.remaining_leaderships = err.code ? -1 : remaining;
    resp.metadata_offset = svc->spec->offset;
    svc_reply(svc, call, &resp.base, svc->spec->offset);
}

void svc_unregister_broker(struct coord_service *svc, struct rpc_call *call,
                           const ProtobufCMessage *msg)
{
    const Weir__Coord__UnregisterBrokerRequest *req =
        (const Weir__Coord__UnregisterBrokerRequest *)msg;
    Weir__Coord__UnregisterBrokerResponse resp = WEIR__COORD__UNREGISTER_BROKER_RESPONSE__INIT;
    struct cctl_error err = {0};
    int r = cctl_unregister_broker(svc->spec, &svc->ctx, req->broker_id, &svc->recs, &err);
    svc_write_item(svc, r, &err, true);
    if (err.code == KERR_NONE)
        log_event(LOG_LEVEL_INFO, "coordinator", "broker_unregistered",
                  LOG_FIELDS(LF_INT("broker", req->broker_id)), "unregistering broker %d",
                  (int)req->broker_id);
    resp.error_code = err.code;
    resp.error_message = svc_err_msg(&err);
    resp.metadata_offset = svc->spec->offset;
    svc_reply(svc, call, &resp.base, svc->spec->offset);
}

/* AllocateProducerIds: one ProducerIds record; the reply waits until it is
 * durable, so a block is never handed out twice, even across a restart. */
void svc_allocate_producer_ids(struct coord_service *svc, struct rpc_call *call,
                               const ProtobufCMessage *msg)
{
    const Weir__Coord__AllocateProducerIdsRequest *req =
        (const Weir__Coord__AllocateProducerIdsRequest *)msg;
    Weir__Coord__AllocateProducerIdsResponse resp =
        WEIR__COORD__ALLOCATE_PRODUCER_IDS_RESPONSE__INIT;
    struct cctl_error err = {0};
    int64_t first = -1;
    int32_t count = 0;
    int r = cctl_allocate_producer_ids(svc->spec, req->broker_id, req->broker_epoch, &svc->recs,
                                       &first, &count, &err);
    svc_write_item(svc, r, &err, true);
    if (err.code == KERR_NONE) {
        log_info("coordinator", "producer ids %" PRId64 "..%" PRId64 " to broker %d", first,
                 first + count - 1, (int)req->broker_id);
        resp.first_id = first;
        resp.count = count;
    } else {
        resp.first_id = -1;
    }
    resp.error_code = err.code;
    resp.error_message = svc_err_msg(&err);
    resp.metadata_offset = svc->spec->offset;
    svc_reply(svc, call, &resp.base, svc->spec->offset);
}

/* ---- the session timer ------------------------------------------------------------- */

/* Fence the brokers csession_next_fence names (session.h: at most one per
 * session timeout unless clearly dead), then sleep until the next instant
 * that may change its answer. */
void svc_on_session_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_service *svc = arg;
    if (svc->failed || svc->stopping || !svc_leads(svc))
        return;
    int64_t now = clock_mono_ms();
    int32_t id;
    int64_t epoch;
    enum csession_fence_reason why;
    while (!svc->failed && csession_next_fence(svc->sessions, now, &id, &epoch, &why)) {
        struct cctl_error err = {0};
        int64_t grace = csession_grace_ms(svc->sessions, id);
        int r = cctl_fence_broker(svc->spec, &svc->ctx, id, epoch, &svc->recs, &err);
        if (r == 0 && err.code == KERR_NONE && why == CSESSION_DISCONNECT) {
            log_event(LOG_LEVEL_INFO, "coordinator", "broker_fenced",
                      LOG_FIELDS(LF_INT("broker", id), LF_INT("epoch", epoch),
                                 LF_STR("reason", "connection_closed")),
                      "broker %d (epoch %" PRId64 ") did not return after its connection "
                      "closed: fencing it (%zu records)",
                      (int)id, epoch, svc->recs.n);
            svc_write_internal(svc, "fencing");
        } else if (r == 0 && err.code == KERR_NONE) {
            log_event(LOG_LEVEL_INFO, "coordinator", "broker_fenced",
                      LOG_FIELDS(LF_INT("broker", id), LF_INT("epoch", epoch),
                                 LF_STR("reason", "session_expired")),
                      "broker %d (epoch %" PRId64 ") sent no heartbeat for %" PRId64
                      " ms (session %d ms + %" PRId64 " ms grace for unacknowledged metadata%s): "
                      "fencing it (%zu records)",
                      (int)id, epoch, csession_silent_ms(svc->sessions, id, now),
                      (int)svc->cfg->session_timeout_ms, grace,
                      why == CSESSION_DEAD ? ", clearly dead" : "", svc->recs.n);
            svc_write_internal(svc, "fencing");
        } else {
            cstate_records_clear(&svc->recs);
            if (r < 0)
                log_error("coordinator", "cannot fence broker %d: %s", (int)id, strerror(-r));
        }
        if (r == 0 && err.code == KERR_NONE) {
            if (why == CSESSION_DISCONNECT)
                svc->ctr.fenced_disconnect++;
            else if (why == CSESSION_DEAD)
                svc->ctr.fenced_dead++;
            else
                svc->ctr.fenced_expired++;
        }
        csession_fenced(svc->sessions, id, now);
    }
    if (!svc->failed && csession_next_expired(svc->sessions, now, &id, &epoch))
        log_info("coordinator",
                 "broker %d sent no heartbeat past its deadline, but a broker was fenced less "
                 "than %d ms ago: not fencing another yet",
                 (int)id, (int)svc->cfg->session_timeout_ms);
    session_rearm(svc, now);
}
