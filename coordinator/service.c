/* service: the Coordinator RPC methods — requests through the controller into
 * the metadata log, replies once durable, sessions, timers, snapshots. */
#include "coordinator/service.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "coordinator/controller.h"
#include "coordinator/mlog.h"
#include "coordinator/session.h"
#include "common/meta/state.h"
#include "coordinator/watch.h"
#include "metadata.pb-c.h"

#define SVC_DEFAULT_MAX_UNFLUSHED (64u * 1024 * 1024)
/* Kafka's leader.imbalance.per.broker.percentage default. */
#define SVC_IMBALANCE_PCT       10
#define SVC_SESSION_TICK_MAX_MS 1000
#define SVC_SESSION_TICK_MIN_MS 5
#define SVC_OFFSETS_TOPIC       "__consumer_offsets"

/* A record appended and applied to the speculative state, not yet durable. */
struct inflight {
    int64_t offset;
    uint8_t *data;
    size_t len;
};

/* A reply held until the committed offset reaches wait_offset, packed so the
 * response tree built on the handler's stack can go. */
struct pending {
    struct pending *next;
    int64_t wait_offset;
    struct rpc_call *call;
    const ProtobufCMessageDescriptor *desc;
    uint8_t *packed;
    size_t len;
};

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

/* A mutating call waiting for the unflushed bytes to drop. */
struct parked {
    struct parked *next;
    struct rpc_call *call;
    const ProtobufCMessage *req;
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
    struct event *unpark_ev;

    struct inflight *q; /* ring of appended records in offset order */
    size_t q_head, q_n, q_cap;
    size_t unflushed_bytes;

    struct pending *pend_head, *pend_tail;
    struct parked *park_head, *park_tail;
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
};

/* ---- failure ---------------------------------------------------------------- */

static void fail_waiting_calls(struct coord_service *svc, int status, const char *text)
{
    while (svc->pend_head) {
        struct pending *p = svc->pend_head;
        svc->pend_head = p->next;
        rpc_call_fail(p->call, status, text);
        free(p->packed);
        free(p);
    }
    svc->pend_tail = NULL;
    while (svc->park_head) {
        struct parked *p = svc->park_head;
        svc->park_head = p->next;
        rpc_call_fail(p->call, status, text);
        free(p);
    }
    svc->park_tail = NULL;
}

/* Stop acknowledging anything: the state in memory may now hold changes that
 * are not durable, so only a restart (recovery) can tell what exists. */
__attribute__((format(printf, 2, 3))) static void svc_fatal(struct coord_service *svc,
                                                            const char *fmt, ...)
{
    if (svc->failed)
        return;
    svc->failed = true;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_error("coordinator", "%s; no further change will be acknowledged", why);
    fail_waiting_calls(svc, RPC_INTERNAL, "coordinator failed: metadata log unavailable");
    if (svc->opts.on_fatal)
        svc->opts.on_fatal(svc->opts.fatal_ud, why);
}

/* ---- replies ---------------------------------------------------------------- */

static int64_t committed_offset(const struct coord_service *svc)
{
    return svc->committed->offset;
}

/* Answer @call with @resp once every record up to @wait_offset is durable. */
static void svc_reply(struct coord_service *svc, struct rpc_call *call,
                      const ProtobufCMessage *resp, int64_t wait_offset)
{
    if (svc->failed) {
        rpc_call_fail(call, RPC_INTERNAL, "coordinator failed: metadata log unavailable");
        return;
    }
    if (wait_offset <= committed_offset(svc)) {
        rpc_call_reply(call, resp);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    size_t len = protobuf_c_message_get_packed_size(resp);
    uint8_t *packed = malloc(len ? len : 1);
    if (!p || !packed) {
        free(p);
        free(packed);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    protobuf_c_message_pack(resp, packed);
    p->wait_offset = wait_offset;
    p->call = call;
    p->desc = resp->descriptor;
    p->packed = packed;
    p->len = len;
    /* Offsets only grow as calls are handled, so the list stays sorted. */
    assert(!svc->pend_tail || svc->pend_tail->wait_offset <= wait_offset);
    if (svc->pend_tail)
        svc->pend_tail->next = p;
    else
        svc->pend_head = p;
    svc->pend_tail = p;
}

static void complete_pending(struct coord_service *svc)
{
    int64_t c = committed_offset(svc);
    while (svc->pend_head && svc->pend_head->wait_offset <= c) {
        struct pending *p = svc->pend_head;
        svc->pend_head = p->next;
        if (!svc->pend_head)
            svc->pend_tail = NULL;
        ProtobufCMessage *m = protobuf_c_message_unpack(p->desc, NULL, p->len, p->packed);
        if (m) {
            rpc_call_reply(p->call, m);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            rpc_call_fail(p->call, RPC_INTERNAL, "out of memory");
        }
        free(p->packed);
        free(p);
    }
}

/* ---- the write path ------------------------------------------------------------- */

static void on_durable(struct mlog *log, int64_t offset, int status, void *ud);

static int inflight_push(struct coord_service *svc, int64_t offset, uint8_t *data, size_t len)
{
    if (svc->q_n == svc->q_cap) {
        size_t cap = svc->q_cap ? svc->q_cap * 2 : 64;
        struct inflight *q = malloc(cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < svc->q_n; i++)
            q[i] = svc->q[(svc->q_head + i) % svc->q_cap];
        free(svc->q);
        svc->q = q;
        svc->q_cap = cap;
        svc->q_head = 0;
    }
    svc->q[(svc->q_head + svc->q_n) % svc->q_cap] = (struct inflight){offset, data, len};
    svc->q_n++;
    svc->unflushed_bytes += len;
    return 0;
}

/* Append @recs in order: each is applied to the speculative state, then queued
 * in the log (the records are taken out of @recs). On success *ret_last (may be
 * NULL) is the offset of the last one, or unchanged when @recs is empty.
 * -EMSGSIZE (a record above the cap; nothing written), -EINVAL (a record the
 * state refuses: a controller bug; the ones before it stay written). A log that
 * cannot take a record already applied is fatal. */
static int svc_write(struct coord_service *svc, struct cstate_records *recs, int64_t *ret_last)
{
    if (svc->failed)
        return -EIO;
    for (size_t i = 0; i < recs->n; i++)
        if (recs->v[i].len > svc->cfg->max_record_bytes)
            return -EMSGSIZE;
    int64_t last = -1;
    for (size_t i = 0; i < recs->n; i++) {
        struct cstate_record *rec = &recs->v[i];
        int64_t off = mlog_next_offset(svc->log);
        char why[256] = "";
        int r = cstate_apply_bytes(svc->spec, off, rec->data, rec->len, why, sizeof(why));
        if (r < 0) {
            char desc[256];
            cstate_record_format_bytes(rec->data, rec->len, desc, sizeof(desc));
            log_error("coordinator",
                      "internal error: record %s does not apply at offset %" PRId64 ": %s", desc,
                      off, why[0] ? why : strerror(-r));
            if (last >= 0 && ret_last)
                *ret_last = last;
            return r == -ENOMEM ? r : -EINVAL;
        }
        int64_t got = -1;
        r = mlog_append(svc->log, rec->data, rec->len, on_durable, svc, &got);
        if (r == 0 && got != off)
            r = -EPROTO;
        if (r == 0)
            r = inflight_push(svc, off, rec->data, rec->len);
        if (r < 0) {
            svc_fatal(svc, "cannot append to the metadata log at offset %" PRId64 ": %s", off,
                      strerror(-r));
            return -EIO;
        }
        rec->data = NULL; /* now owned by the in-flight queue */
        last = off;
    }
    if (last >= 0 && ret_last)
        *ret_last = last;
    return 0;
}

/* Write records that come from the coordinator itself (timers, start-up). */
static void svc_write_internal(struct coord_service *svc, const char *what)
{
    if (svc->recs.n == 0)
        return;
    size_t n = svc->recs.n;
    int r = svc_write(svc, &svc->recs, NULL);
    if (r < 0 && r != -EIO)
        log_error("coordinator", "%s: cannot write %zu records: %s", what, n, strerror(-r));
    cstate_records_clear(&svc->recs);
}

static void image_invalidate(struct coord_service *svc)
{
    free(svc->img);
    svc->img = NULL;
    svc->img_valid = false;
}

static int image_get(struct coord_service *svc)
{
    if (svc->img_valid && svc->img_offset == committed_offset(svc))
        return 0;
    image_invalidate(svc);
    int r = cstate_snapshot_encode(svc->committed, &svc->img, &svc->img_len);
    if (r < 0)
        return r;
    svc->img_offset = committed_offset(svc);
    svc->img_valid = true;
    return 0;
}

/* For the watch hub: a copy of the cached image. */
static int watch_image(void *ud, uint8_t **ret_data, size_t *ret_len, int64_t *ret_offset)
{
    struct coord_service *svc = ud;
    int r = image_get(svc);
    if (r < 0)
        return r;
    uint8_t *copy = malloc(svc->img_len ? svc->img_len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, svc->img, svc->img_len);
    *ret_data = copy;
    *ret_len = svc->img_len;
    *ret_offset = svc->img_offset;
    return 0;
}

static void on_snapshot(struct mlog *log, int64_t offset, int status, void *ud)
{
    (void)log;
    (void)ud;
    if (status == 0)
        log_info("coordinator", "snapshot written at metadata offset %" PRId64, offset);
    else if (status != -ECANCELED)
        log_warn("coordinator", "snapshot at metadata offset %" PRId64 " failed: %s", offset,
                 strerror(-status));
}

static void maybe_snapshot(struct coord_service *svc)
{
    if (svc->failed || !mlog_snapshot_due(svc->log))
        return;
    int r = image_get(svc);
    if (r == 0)
        r = mlog_write_snapshot(svc->log, committed_offset(svc) + 1, svc->img, svc->img_len,
                                on_snapshot, svc);
    if (r < 0 && r != -EBUSY)
        log_warn("coordinator", "cannot start a snapshot at metadata offset %" PRId64 ": %s",
                 committed_offset(svc) + 1, strerror(-r));
}

static void maybe_ready(struct coord_service *svc)
{
    if (svc->ready_pending && committed_offset(svc) >= svc->ready_offset) {
        svc->ready_pending = false;
        if (svc->ready)
            svc->ready(svc, svc->ready_ud);
    }
}

static void on_durable(struct mlog *log, int64_t offset, int status, void *ud)
{
    (void)log;
    struct coord_service *svc = ud;
    if (svc->failed)
        return;
    if (status < 0) {
        svc_fatal(svc, "metadata log failed at offset %" PRId64 ": %s", offset, strerror(-status));
        return;
    }
    if (svc->q_n == 0 || svc->q[svc->q_head].offset != offset) {
        svc_fatal(svc, "internal error: durable offset %" PRId64 " is not the oldest in flight",
                  offset);
        return;
    }
    struct inflight rec = svc->q[svc->q_head];
    svc->q_head = (svc->q_head + 1) % svc->q_cap;
    svc->q_n--;
    svc->unflushed_bytes -= rec.len;

    char why[256] = "";
    int r = cstate_apply_bytes(svc->committed, offset, rec.data, rec.len, why, sizeof(why));
    if (r < 0) {
        free(rec.data);
        svc_fatal(svc,
                  "internal error: durable record at offset %" PRId64
                  " does not apply to the committed state: %s",
                  offset, why[0] ? why : strerror(-r));
        return;
    }
    image_invalidate(svc);
    watch_hub_publish(svc->watch, offset, rec.data, rec.len);
    complete_pending(svc);
    maybe_snapshot(svc);
    maybe_ready(svc);
    if (svc->park_head && svc->unflushed_bytes < svc->opts.max_unflushed_bytes)
        event_active(svc->unpark_ev, EV_TIMEOUT, 0);
}

/* ---- conversions ------------------------------------------------------------- */

static char *str_or_empty(const char *s)
{
    return (char *)(s ? s : "");
}

static void endpoint_to_pb(const struct cstate_endpoint *e, Weir__Meta__Endpoint *out)
{
    weir__meta__endpoint__init(out);
    out->listener = str_or_empty(e->listener);
    out->host = str_or_empty(e->host);
    out->port = e->port;
    out->security_protocol = str_or_empty(e->security_protocol);
}

static void endpoint_from_pb(const Weir__Meta__Endpoint *e, struct cstate_endpoint *out)
{
    out->listener = e->listener;
    out->host = e->host;
    out->port = e->port;
    out->security_protocol = e->security_protocol;
}

static void err_set(struct cctl_error *err, int16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_set(struct cctl_error *err, int16_t code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* For a response's error_message, which protobuf-c types as char *. */
static char *err_msg(const struct cctl_error *err)
{
    return (char *)(err->code ? err->message : "");
}

/* A controller error that is the coordinator's own failure. */
static void err_internal(struct cctl_error *err, int r)
{
    err_set(err, KERR_UNKNOWN_SERVER_ERROR, "internal error: %s", strerror(-r));
}

/* Write the records the controller produced for one item; sets @err on failure. */
static void write_item(struct coord_service *svc, struct cctl_error *err)
{
    int r = svc_write(svc, &svc->recs, NULL);
    if (r == -EMSGSIZE)
        err_set(err, KERR_POLICY_VIOLATION,
                "the change needs a metadata record larger than %" PRIu32 " bytes",
                svc->cfg->max_record_bytes);
    else if (r < 0)
        err_internal(err, r);
    cstate_records_clear(&svc->recs);
}

static void random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* getrandom on Linux >= 3.17 does not fail otherwise; keep going
             * with something rather than nothing. */
            uint64_t v = (uint64_t)clock_mono_ns() * 0x9E3779B97F4A7C15ull;
            size_t c = len < sizeof(v) ? len : sizeof(v);
            memcpy(p, &v, c);
            n = (ssize_t)c;
        }
        p += n;
        len -= (size_t)n;
    }
}

static uint64_t svc_rand(void *arg)
{
    (void)arg;
    uint64_t v;
    random_bytes(&v, sizeof(v));
    return v;
}

/* ---- sessions and broker connections --------------------------------------------- */

static void arm_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
}

/* Sleep until the next session deadline (bounded, since heartbeats move
 * deadlines later); re-arming replaces the pending wake-up. */
static void session_rearm(struct coord_service *svc, int64_t now)
{
    int64_t next = csession_next_deadline(svc->sessions);
    int64_t delay = SVC_SESSION_TICK_MAX_MS;
    if (next != INT64_MAX && next - now + 1 < delay)
        delay = next - now + 1;
    if (delay < SVC_SESSION_TICK_MIN_MS)
        delay = SVC_SESSION_TICK_MIN_MS;
    arm_ms(svc->session_timer, delay);
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

static void do_register(struct coord_service *svc, struct rpc_call *call,
                        const Weir__Coord__RegisterBrokerRequest *req)
{
    Weir__Coord__RegisterBrokerResponse resp = WEIR__COORD__REGISTER_BROKER_RESPONSE__INIT;
    struct cctl_error err = {0};
    struct cstate_endpoint *eps = NULL;
    int64_t epoch = -1;

    if (req->incarnation_id.len != CSTATE_UUID_LEN) {
        err_set(&err, KERR_INVALID_REQUEST, "incarnation_id must be %d bytes, not %zu",
                CSTATE_UUID_LEN, req->incarnation_id.len);
    } else if (req->cluster_id && req->cluster_id[0] && svc->spec->cluster_id &&
               strcmp(req->cluster_id, svc->spec->cluster_id) != 0) {
        err_set(&err, KERR_INCONSISTENT_CLUSTER_ID,
                "broker belongs to cluster %.64s, this coordinator serves %s", req->cluster_id,
                svc->spec->cluster_id);
    } else if (req->n_endpoints > CSTATE_MAX_ENDPOINTS) {
        err_set(&err, KERR_INVALID_REQUEST, "%zu endpoints; at most %d", req->n_endpoints,
                CSTATE_MAX_ENDPOINTS);
    } else {
        eps = calloc(req->n_endpoints ? req->n_endpoints : 1, sizeof(*eps));
        if (!eps) {
            err_internal(&err, -ENOMEM);
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
            if (r < 0) {
                err_internal(&err, r);
                cstate_records_clear(&svc->recs);
            } else if (err.code == KERR_NONE) {
                size_t n = svc->recs.n;
                write_item(svc, &err);
                if (err.code == KERR_NONE) {
                    if (csession_touch(svc->sessions, req->broker_id, epoch, clock_mono_ms()) == 0)
                        track_broker_conn(svc, req->broker_id, call);
                    if (n > 0)
                        log_info("coordinator",
                                 "registering broker %d from %s with epoch %" PRId64
                                 " (%zu records)",
                                 (int)req->broker_id, rpc_conn_peer(rpc_call_connection(call)),
                                 epoch, n);
                }
            }
        }
    }
    free(eps);
    if (err.code != KERR_NONE)
        log_info("coordinator", "registration of broker %d refused: %s", (int)req->broker_id,
                 err.message);
    resp.error_code = err.code;
    resp.error_message = err_msg(&err);
    resp.broker_epoch = err.code ? -1 : epoch;
    resp.cluster_id = str_or_empty(svc->spec->cluster_id);
    resp.heartbeat_interval_ms = svc->cfg->heartbeat_interval_ms;
    resp.session_timeout_ms = svc->cfg->session_timeout_ms;
    resp.metadata_offset = svc->spec->offset;
    resp.coordinator_id = svc->cfg->node_id;
    svc_reply(svc, call, &resp.base, svc->spec->offset);
}

static void h_heartbeat(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct coord_service *svc = ud;
    const Weir__Coord__HeartbeatRequest *req = (const Weir__Coord__HeartbeatRequest *)msg;
    Weir__Coord__HeartbeatResponse resp = WEIR__COORD__HEARTBEAT_RESPONSE__INIT;
    struct cctl_error err = {0};
    if (svc->failed || svc->stopping) {
        rpc_call_fail(call, RPC_SHUTTING_DOWN, "coordinator is stopping");
        return;
    }
    int r = cctl_check_broker_epoch(svc->spec, req->broker_id, req->broker_epoch, &err);
    if (r < 0)
        err_internal(&err, r);
    if (err.code == KERR_NONE) {
        if (csession_touch(svc->sessions, req->broker_id, req->broker_epoch, clock_mono_ms()) == 0)
            track_broker_conn(svc, req->broker_id, call);
        const struct cstate_broker *b = cstate_broker(svc->spec, req->broker_id);
        resp.shutting_down = b && b->state == CSTATE_BROKER_CONTROLLED_SHUTDOWN;
    }
    resp.error_code = err.code;
    resp.error_message = err_msg(&err);
    resp.metadata_offset = committed_offset(svc);
    rpc_call_reply(call, &resp.base);
}

static void do_controlled_shutdown(struct coord_service *svc, struct rpc_call *call,
                                   const Weir__Coord__ControlledShutdownRequest *req)
{
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
    if (r < 0) {
        err_internal(&err, r);
        cstate_records_clear(&svc->recs);
    } else if (err.code == KERR_NONE) {
        size_t n = svc->recs.n;
        write_item(svc, &err);
        if (err.code == KERR_NONE) {
            if (req->exit) {
                csession_remove(svc->sessions, req->broker_id);
                log_info("coordinator",
                         "broker %d (epoch %" PRId64 ") is exiting: fencing it (%zu records)",
                         (int)req->broker_id, req->broker_epoch, n);
            } else {
                log_info("coordinator",
                         "broker %d controlled shutdown: %zu records, %d leaderships remain",
                         (int)req->broker_id, n, (int)remaining);
            }
        }
    }
    resp.error_code = err.code;
    resp.error_message = err_msg(&err);
    resp.remaining_leaderships = err.code ? -1 : remaining;
    resp.metadata_offset = svc->spec->offset;
    svc_reply(svc, call, &resp.base, svc->spec->offset);
}

static void do_unregister(struct coord_service *svc, struct rpc_call *call,
                          const Weir__Coord__UnregisterBrokerRequest *req)
{
    Weir__Coord__UnregisterBrokerResponse resp = WEIR__COORD__UNREGISTER_BROKER_RESPONSE__INIT;
    struct cctl_error err = {0};
    int r = cctl_unregister_broker(svc->spec, &svc->ctx, req->broker_id, &svc->recs, &err);
    if (r < 0) {
        err_internal(&err, r);
        cstate_records_clear(&svc->recs);
    } else if (err.code == KERR_NONE) {
        write_item(svc, &err);
        if (err.code == KERR_NONE)
            log_info("coordinator", "unregistering broker %d", (int)req->broker_id);
    }
    resp.error_code = err.code;
    resp.error_message = err_msg(&err);
    resp.metadata_offset = svc->spec->offset;
    svc_reply(svc, call, &resp.base, svc->spec->offset);
}

/* ---- the batch skeleton ----------------------------------------------------------- */

/* One call of a batch method while it runs. Every array holds n entries in
 * request order; @items and @state are the method's own scratch (item_size
 * bytes per item, state_size bytes per call), zeroed. */
struct svc_batch {
    struct coord_service *svc;
    const ProtobufCMessage *req;
    size_t n;
    void **results;          /* each an initialised ops->result message */
    struct cctl_error *errs; /* each item's outcome */
    void *items;             /* n * ops->item_size bytes */
    void *state;             /* ops->state_size bytes */
    bool validate_only;      /* set by begin(): items are planned, never written */
};

/* A mutating method whose request is a list of items, each planned, written
 * and answered on its own: what the method adds to the common skeleton of
 * batch_run(). */
struct svc_batch_ops {
    const ProtobufCMessageDescriptor *resp;   /* the response message */
    const ProtobufCMessageDescriptor *result; /* one item's result message */
    size_t item_size;
    size_t state_size;
    size_t (*count)(const ProtobufCMessage *req);
    /* Optional: request-wide checks and settings, before any item. */
    void (*begin)(struct svc_batch *b);
    /* Fill @result's identity, then ask the controller for item @i's records
     * (into svc->recs) or a refusal (into @err). -errno: the coordinator
     * failed (the item gets UNKNOWN_SERVER_ERROR). */
    int (*plan)(struct svc_batch *b, size_t i, void *result, struct cctl_error *err);
    /* After the item's records were written (or not, @err says): fill the rest
     * of @result and its error. */
    void (*done)(struct svc_batch *b, size_t i, void *result, const struct cctl_error *err);
    /* Point the response at the results; set its request-wide fields. */
    void (*finish)(struct svc_batch *b, void *resp);
    /* Optional: free what done() allocated for @result, once answered. */
    void (*release)(struct svc_batch *b, size_t i, void *result);
};

static size_t align_up(size_t n)
{
    const size_t a = _Alignof(max_align_t);
    return (n + a - 1) / a * a;
}

/* Run one call of a batch method: item after item in request order, plan it
 * and append its records before the next is planned (so a later item sees an
 * earlier one's change, as in the speculative state), then answer once every
 * record written is durable. Everything the call needs is one allocation;
 * without it the call fails before any item. */
static void batch_run(struct coord_service *svc, struct rpc_call *call, const ProtobufCMessage *req,
                      const struct svc_batch_ops *ops)
{
    size_t n = ops->count(req);
    size_t at_results = align_up(ops->resp->sizeof_message);
    size_t at_ptrs = at_results + align_up(n * ops->result->sizeof_message);
    size_t at_errs = at_ptrs + align_up(n * sizeof(void *));
    size_t at_items = at_errs + align_up(n * sizeof(struct cctl_error));
    size_t at_state = at_items + align_up(n * ops->item_size);
    size_t size = at_state + ops->state_size;
    uint8_t *mem = calloc(1, size);
    if (!mem) {
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    void *resp = mem;
    protobuf_c_message_init(ops->resp, resp);
    struct svc_batch b = {
        .svc = svc,
        .req = req,
        .n = n,
        .results = (void **)(mem + at_ptrs),
        .errs = (struct cctl_error *)(mem + at_errs),
        .items = mem + at_items,
        .state = mem + at_state,
    };
    if (ops->begin)
        ops->begin(&b);
    for (size_t i = 0; i < n; i++) {
        void *o = mem + at_results + i * ops->result->sizeof_message;
        struct cctl_error *err = &b.errs[i];
        protobuf_c_message_init(ops->result, o);
        b.results[i] = o;
        int r = ops->plan(&b, i, o, err);
        if (r < 0) {
            err_internal(err, r);
            cstate_records_clear(&svc->recs);
        } else if (err->code == KERR_NONE && !b.validate_only) {
            write_item(svc, err);
        } else {
            cstate_records_clear(&svc->recs);
        }
        ops->done(&b, i, o, err);
    }
    ops->finish(&b, resp);
    svc_reply(svc, call, resp, svc->spec->offset);
    for (size_t i = 0; ops->release && i < n; i++)
        ops->release(&b, i, b.results[i]);
    free(mem);
}

/* ---- AlterPartition ------------------------------------------------------------- */

/* Whether partition @idx of topic @topic_id has its preferred replica (first
 * replica) in the ISR; false for an unknown one. */
static bool preferred_in_isr(const struct cstate *s, const uint8_t *topic_id, int32_t idx)
{
    const struct cstate_topic *t = cstate_topic_by_id(s, topic_id);
    if (!t || idx < 0 || idx >= t->n_parts)
        return false;
    const struct cstate_partition *p = &t->parts[idx];
    return cstate_part_in_isr(p, cstate_part_replicas(p)[0]);
}

/* An ISR change just added the preferred replica back: hand it the leadership
 * now rather than at the next periodic rebalance, so a restarted broker takes
 * its share of the load back as soon as it has caught up. */
static void preferred_return(struct coord_service *svc, const uint8_t *topic_id, int32_t idx)
{
    int r = cctl_preferred_leader_return(svc->spec, &svc->ctx, topic_id, idx, &svc->recs);
    if (r < 0) {
        log_error("coordinator", "preferred-leader check failed: %s", strerror(-r));
        cstate_records_clear(&svc->recs);
        return;
    }
    if (svc->recs.n == 0)
        return;
    /* Records exist only for a known partition. */
    const struct cstate_topic *t = cstate_topic_by_id(svc->spec, topic_id);
    log_info(
        "coordinator",
        "%s-%d: preferred replica %d is back in the ISR: moving leadership to it (%zu records)",
        t->name, (int)idx, (int)cstate_part_replicas(&t->parts[idx])[0], svc->recs.n);
    svc_write_internal(svc, "preferred-leader return");
}

struct alter_partition_state {
    struct cctl_error top; /* request-wide: the sender's broker epoch */
};

struct alter_partition_item {
    bool pref_before; /* the preferred replica was in the ISR before the change */
};

static size_t alter_partition_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__AlterPartitionRequest *)msg)->n_items;
}

static void alter_partition_begin(struct svc_batch *b)
{
    const Weir__Coord__AlterPartitionRequest *req = (const void *)b->req;
    struct alter_partition_state *st = b->state;
    int r = cctl_check_broker_epoch(b->svc->spec, req->broker_id, req->broker_epoch, &st->top);
    if (r < 0)
        err_internal(&st->top, r);
}

static int alter_partition_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__AlterPartitionRequest *req = (const void *)b->req;
    const struct alter_partition_state *st = b->state;
    struct alter_partition_item *ai = (struct alter_partition_item *)b->items + i;
    const Weir__Coord__AlterPartitionItem *it = req->items[i];
    Weir__Coord__AlterPartitionResult *o = result;
    o->topic_id = it->topic_id;
    o->partition = it->partition;
    o->leader = -1;
    if (st->top.code != KERR_NONE) {
        *err = st->top;
        return 0;
    }
    if (it->topic_id.len != CSTATE_UUID_LEN) {
        err_set(err, KERR_UNKNOWN_TOPIC_ID, "topic_id must be %d bytes", CSTATE_UUID_LEN);
        return 0;
    }
    struct cctl_alter_partition_req ar = {
        .broker_id = req->broker_id,
        .broker_epoch = req->broker_epoch,
        .topic_id = it->topic_id.data,
        .partition = it->partition,
        .leader_epoch = it->leader_epoch,
        .partition_epoch = it->partition_epoch,
        .isr = it->new_isr,
        .n_isr = it->n_new_isr,
    };
    ai->pref_before = preferred_in_isr(svc->spec, it->topic_id.data, it->partition);
    int r = cctl_alter_partition(svc->spec, &svc->ctx, &ar, &svc->recs, err);
    if (r >= 0 && err->code != KERR_NONE)
        log_info("coordinator", "ISR change for partition %d from broker %d refused: %s",
                 (int)it->partition, (int)req->broker_id, err->message);
    return r;
}

static void alter_partition_done(struct svc_batch *b, size_t i, void *result,
                                 const struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__AlterPartitionRequest *req = (const void *)b->req;
    const struct alter_partition_item *ai = (const struct alter_partition_item *)b->items + i;
    const Weir__Coord__AlterPartitionItem *it = req->items[i];
    Weir__Coord__AlterPartitionResult *o = result;
    /* No error here means the change was written. */
    bool pref_added = err->code == KERR_NONE && !ai->pref_before &&
                      preferred_in_isr(svc->spec, it->topic_id.data, it->partition);
    o->error_code = err->code;
    o->error_message = err_msg(err);
    if (it->topic_id.len == CSTATE_UUID_LEN) {
        const struct cstate_topic *t = cstate_topic_by_id(svc->spec, it->topic_id.data);
        if (t && it->partition >= 0 && it->partition < t->n_parts) {
            const struct cstate_partition *p = &t->parts[it->partition];
            o->leader = p->leader;
            o->leader_epoch = p->leader_epoch;
            o->partition_epoch = p->partition_epoch;
            /* Copied: a later item's change may move the state's arrays. */
            o->isr = malloc((p->n_isr ? p->n_isr : 1) * sizeof(int32_t));
            if (o->isr) {
                memcpy(o->isr, cstate_part_isr(p), p->n_isr * sizeof(int32_t));
                o->n_isr = p->n_isr;
            }
        }
    }
    /* After the result: it reports the ISR change the leader asked for; the
     * leadership move reaches it, like every broker, through the watch (and
     * the reply waits until the move is durable too). */
    if (pref_added && svc->cfg->auto_leader_rebalance)
        preferred_return(svc, it->topic_id.data, it->partition);
}

static void alter_partition_finish(struct svc_batch *b, void *msg)
{
    const struct alter_partition_state *st = b->state;
    Weir__Coord__AlterPartitionResponse *resp = msg;
    resp->error_code = st->top.code;
    resp->error_message = err_msg(&st->top);
    resp->n_results = b->n;
    resp->results = (Weir__Coord__AlterPartitionResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

static void alter_partition_release(struct svc_batch *b, size_t i, void *result)
{
    (void)b;
    (void)i;
    free(((Weir__Coord__AlterPartitionResult *)result)->isr);
}

static const struct svc_batch_ops alter_partition_ops = {
    .resp = &weir__coord__alter_partition_response__descriptor,
    .result = &weir__coord__alter_partition_result__descriptor,
    .item_size = sizeof(struct alter_partition_item),
    .state_size = sizeof(struct alter_partition_state),
    .count = alter_partition_count,
    .begin = alter_partition_begin,
    .plan = alter_partition_plan,
    .done = alter_partition_done,
    .finish = alter_partition_finish,
    .release = alter_partition_release,
};

/* ---- topics --------------------------------------------------------------------- */

/* Turn an assignment list into the controller's form, checking that the
 * partition indexes run @base, @base+1, ... in order. */
static int assignments_from_pb(Weir__Coord__ReplicaAssignment *const *in, size_t n, int32_t base,
                               struct cctl_assignment **ret, struct cctl_error *err)
{
    *ret = NULL;
    if (n == 0)
        return 0;
    struct cctl_assignment *a = calloc(n, sizeof(*a));
    if (!a)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((int64_t)in[i]->partition != (int64_t)base + (int64_t)i) {
            err_set(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                    "assignment %zu is for partition %d; expected partition %" PRId64, i,
                    (int)in[i]->partition, (int64_t)base + (int64_t)i);
            free(a);
            return 0;
        }
        a[i].replicas = in[i]->broker_ids;
        a[i].n_replicas = in[i]->n_broker_ids;
    }
    *ret = a;
    return 0;
}

/* CreateTopics */

struct create_topics_state {
    int64_t budget; /* partitions the rest of the request may still create */
};

struct create_topics_item {
    uint8_t id[CSTATE_UUID_LEN];
    int32_t num_partitions, replication_factor; /* in effect, for the result */
};

static size_t create_topics_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__CreateTopicsRequest *)msg)->n_topics;
}

static void create_topics_begin(struct svc_batch *b)
{
    const Weir__Coord__CreateTopicsRequest *req = (const void *)b->req;
    struct create_topics_state *st = b->state;
    st->budget = CCTL_MAX_PARTITIONS_PER_REQUEST;
    b->validate_only = req->validate_only;
}

static int create_topic_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__CreateTopicsRequest *req = (const void *)b->req;
    const struct create_topics_state *st = b->state;
    struct create_topics_item *ci = (struct create_topics_item *)b->items + i;
    const Weir__Coord__CreatableTopic *t = req->topics[i];
    Weir__Coord__CreatableTopicResult *o = result;
    o->name = str_or_empty(t->name);

    bool offsets = t->name && strcmp(t->name, SVC_OFFSETS_TOPIC) == 0;
    int32_t np = t->num_partitions > 0 ? t->num_partitions : -1;
    int32_t rf = t->replication_factor > 0 ? t->replication_factor : -1;
    if (offsets && t->n_assignments == 0) {
        if (np < 0)
            np = svc->cfg->offsets_topic_num_partitions;
        if (rf < 0)
            rf = svc->cfg->offsets_topic_replication_factor;
    }
    ci->num_partitions =
        t->n_assignments ? (int32_t)t->n_assignments : (np > 0 ? np : svc->cfg->num_partitions);
    ci->replication_factor = t->n_assignments
                                 ? (int32_t)t->assignments[0]->n_broker_ids
                                 : (rf > 0 ? rf : svc->cfg->default_replication_factor);

    if (req->auto_create && !svc->cfg->auto_create_topics) {
        err_set(err, KERR_UNKNOWN_TOPIC_OR_PARTITION,
                "topic %.249s does not exist and auto.create.topics.enable is false", o->name);
        return 0;
    }
    if (ci->num_partitions > st->budget) {
        err_set(err, KERR_POLICY_VIOLATION, "one request may create at most %d partitions in all",
                CCTL_MAX_PARTITIONS_PER_REQUEST);
        return 0;
    }
    struct cctl_assignment *asg = NULL;
    int r = assignments_from_pb(t->assignments, t->n_assignments, 0, &asg, err);
    if (r < 0 || err->code != KERR_NONE)
        return r;
    size_t nkv = t->n_configs;
    bool add_compact = offsets;
    for (size_t k = 0; k < t->n_configs && add_compact; k++)
        if (t->configs[k]->name && strcmp(t->configs[k]->name, "cleanup.policy") == 0)
            add_compact = false;
    struct cctl_kv *kv = calloc(nkv + 1, sizeof(*kv));
    if (!kv) {
        free(asg);
        return -ENOMEM;
    }
    for (size_t k = 0; k < nkv; k++) {
        kv[k].name = t->configs[k]->name;
        kv[k].value = t->configs[k]->value;
    }
    /* Kafka's offsets topic is compacted: without it, committed offsets would
     * be deleted by time. */
    if (add_compact) {
        kv[nkv].name = "cleanup.policy";
        kv[nkv].value = "compact";
        nkv++;
    }
    struct cctl_create_topic_req cr = {
        .name = t->name,
        .num_partitions = np,
        .replication_factor = rf,
        .assignments = asg,
        .n_assignments = t->n_assignments,
        .configs = kv,
        .n_configs = nkv,
    };
    if (asg) {
        cr.num_partitions = -1;
        cr.replication_factor = -1;
        if (t->num_partitions > 0 || t->replication_factor > 0)
            err_set(err, KERR_INVALID_REQUEST,
                    "num_partitions and replication_factor must be unset with a manual "
                    "assignment");
    }
    if (err->code == KERR_NONE)
        r = cctl_create_topic(svc->spec, &svc->ctx, &cr, &svc->recs, ci->id, err);
    free(asg);
    free(kv);
    return r;
}

static void create_topic_done(struct svc_batch *b, size_t i, void *result,
                              const struct cctl_error *err)
{
    const Weir__Coord__CreateTopicsRequest *req = (const void *)b->req;
    struct create_topics_state *st = b->state;
    struct create_topics_item *ci = (struct create_topics_item *)b->items + i;
    const Weir__Coord__CreatableTopic *t = req->topics[i];
    Weir__Coord__CreatableTopicResult *o = result;
    o->error_code = err->code;
    o->error_message = err_msg(err);
    if (err->code == KERR_NONE) {
        st->budget -= ci->num_partitions;
        o->num_partitions = ci->num_partitions;
        o->replication_factor = ci->replication_factor;
        if (!req->validate_only) {
            o->topic_id.data = ci->id;
            o->topic_id.len = CSTATE_UUID_LEN;
            log_info("coordinator", "creating topic %s with %d partitions, RF %d", t->name,
                     (int)ci->num_partitions, (int)ci->replication_factor);
        }
    } else if (err->code != KERR_TOPIC_ALREADY_EXISTS || !req->auto_create) {
        log_info("coordinator", "create topic %.249s refused: %s", o->name, err->message);
    }
}

static void create_topics_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__CreateTopicsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__CreatableTopicResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

static const struct svc_batch_ops create_topics_ops = {
    .resp = &weir__coord__create_topics_response__descriptor,
    .result = &weir__coord__creatable_topic_result__descriptor,
    .item_size = sizeof(struct create_topics_item),
    .state_size = sizeof(struct create_topics_state),
    .count = create_topics_count,
    .begin = create_topics_begin,
    .plan = create_topic_plan,
    .done = create_topic_done,
    .finish = create_topics_finish,
};

/* DeleteTopics: the names first, then the ids, each answered in that order. */

struct delete_topics_item {
    uint8_t id[CSTATE_UUID_LEN]; /* of a topic deleted by name */
    char *name;                  /* of a topic deleted by id */
};

static size_t delete_topics_count(const ProtobufCMessage *msg)
{
    const Weir__Coord__DeleteTopicsRequest *req = (const void *)msg;
    return req->n_names + req->n_topic_ids;
}

static int delete_topic_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__DeleteTopicsRequest *req = (const void *)b->req;
    struct delete_topics_item *di = (struct delete_topics_item *)b->items + i;
    Weir__Coord__DeletableTopicResult *o = result;
    const char *name;
    if (i < req->n_names) {
        name = req->names[i];
        o->name = str_or_empty(name);
        const struct cstate_topic *t = cstate_topic_by_name(svc->spec, name);
        if (t) {
            memcpy(di->id, t->id, CSTATE_UUID_LEN);
            o->topic_id.data = di->id;
            o->topic_id.len = CSTATE_UUID_LEN;
        }
    } else {
        ProtobufCBinaryData id = req->topic_ids[i - req->n_names];
        o->name = "";
        o->topic_id = id;
        const struct cstate_topic *t =
            id.len == CSTATE_UUID_LEN ? cstate_topic_by_id(svc->spec, id.data) : NULL;
        if (!t) {
            err_set(err, KERR_UNKNOWN_TOPIC_ID, "no topic with that id");
            return 0;
        }
        di->name = strdup(t->name);
        if (!di->name)
            return -ENOMEM;
        o->name = di->name;
        name = di->name;
    }
    return cctl_delete_topic(svc->spec, &svc->ctx, name, &svc->recs, err);
}

static void delete_topic_done(struct svc_batch *b, size_t i, void *result,
                              const struct cctl_error *err)
{
    (void)b;
    (void)i;
    Weir__Coord__DeletableTopicResult *o = result;
    if (err->code == KERR_NONE)
        log_info("coordinator", "deleting topic %s", o->name);
    o->error_code = err->code;
    o->error_message = err_msg(err);
}

static void delete_topics_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__DeleteTopicsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__DeletableTopicResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

static void delete_topic_release(struct svc_batch *b, size_t i, void *result)
{
    (void)result;
    free(((struct delete_topics_item *)b->items)[i].name);
}

static const struct svc_batch_ops delete_topics_ops = {
    .resp = &weir__coord__delete_topics_response__descriptor,
    .result = &weir__coord__deletable_topic_result__descriptor,
    .item_size = sizeof(struct delete_topics_item),
    .count = delete_topics_count,
    .plan = delete_topic_plan,
    .done = delete_topic_done,
    .finish = delete_topics_finish,
    .release = delete_topic_release,
};

/* CreatePartitions */

struct create_partitions_item {
    int32_t before; /* the topic's partition count before the change */
};

static size_t create_partitions_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__CreatePartitionsRequest *)msg)->n_topics;
}

static void create_partitions_begin(struct svc_batch *b)
{
    b->validate_only = ((const Weir__Coord__CreatePartitionsRequest *)b->req)->validate_only;
}

static int create_partitions_plan(struct svc_batch *b, size_t i, void *result,
                                  struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__CreatePartitionsRequest *req = (const void *)b->req;
    struct create_partitions_item *pi = (struct create_partitions_item *)b->items + i;
    const Weir__Coord__CreatePartitionsTopic *t = req->topics[i];
    Weir__Coord__CreatePartitionsResult *o = result;
    o->name = str_or_empty(t->name);
    const struct cstate_topic *topic = t->name ? cstate_topic_by_name(svc->spec, t->name) : NULL;
    pi->before = topic ? topic->n_parts : 0;
    struct cctl_assignment *asg = NULL;
    int r = assignments_from_pb(t->assignments, t->n_assignments, pi->before, &asg, err);
    if (r == 0 && err->code == KERR_NONE) {
        struct cctl_create_partitions_req cr = {
            .name = t->name,
            .total_count = t->count,
            .assignments = asg,
            .n_assignments = t->n_assignments,
        };
        r = cctl_create_partitions(svc->spec, &svc->ctx, &cr, &svc->recs, err);
    }
    free(asg);
    return r;
}

static void create_partitions_done(struct svc_batch *b, size_t i, void *result,
                                   const struct cctl_error *err)
{
    const Weir__Coord__CreatePartitionsRequest *req = (const void *)b->req;
    const struct create_partitions_item *pi = (const struct create_partitions_item *)b->items + i;
    const Weir__Coord__CreatePartitionsTopic *t = req->topics[i];
    Weir__Coord__CreatePartitionsResult *o = result;
    if (err->code == KERR_NONE && !b->validate_only)
        log_info("coordinator", "topic %s: partitions %d -> %d", t->name, (int)pi->before,
                 (int)t->count);
    o->error_code = err->code;
    o->error_message = err_msg(err);
}

static void create_partitions_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__CreatePartitionsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__CreatePartitionsResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

static const struct svc_batch_ops create_partitions_ops = {
    .resp = &weir__coord__create_partitions_response__descriptor,
    .result = &weir__coord__create_partitions_result__descriptor,
    .item_size = sizeof(struct create_partitions_item),
    .count = create_partitions_count,
    .begin = create_partitions_begin,
    .plan = create_partitions_plan,
    .done = create_partitions_done,
    .finish = create_partitions_finish,
};

/* AlterTopicConfigs */

static size_t alter_configs_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__AlterTopicConfigsRequest *)msg)->n_topics;
}

static void alter_configs_begin(struct svc_batch *b)
{
    b->validate_only = ((const Weir__Coord__AlterTopicConfigsRequest *)b->req)->validate_only;
}

static int alter_configs_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__AlterTopicConfigsRequest *req = (const void *)b->req;
    const Weir__Coord__AlterTopicConfigsTopic *t = req->topics[i];
    Weir__Coord__AlterTopicConfigsResult *o = result;
    o->name = str_or_empty(t->name);
    struct cctl_kv *ops = calloc(t->n_ops ? t->n_ops : 1, sizeof(*ops));
    if (!ops)
        return -ENOMEM;
    for (size_t k = 0; k < t->n_ops; k++) {
        ops[k].name = t->ops[k]->name;
        ops[k].value = t->ops[k]->remove ? NULL : t->ops[k]->value;
    }
    int r = cctl_alter_topic_config(svc->spec, &svc->ctx, t->name, ops, t->n_ops, &svc->recs, err);
    free(ops);
    return r;
}

static void alter_configs_done(struct svc_batch *b, size_t i, void *result,
                               const struct cctl_error *err)
{
    const Weir__Coord__AlterTopicConfigsRequest *req = (const void *)b->req;
    const Weir__Coord__AlterTopicConfigsTopic *t = req->topics[i];
    Weir__Coord__AlterTopicConfigsResult *o = result;
    if (err->code == KERR_NONE && !b->validate_only)
        log_info("coordinator", "topic %s: %zu config changes", t->name, t->n_ops);
    o->error_code = err->code;
    o->error_message = err_msg(err);
}

static void alter_configs_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__AlterTopicConfigsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__AlterTopicConfigsResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

static const struct svc_batch_ops alter_configs_ops = {
    .resp = &weir__coord__alter_topic_configs_response__descriptor,
    .result = &weir__coord__alter_topic_configs_result__descriptor,
    .count = alter_configs_count,
    .begin = alter_configs_begin,
    .plan = alter_configs_plan,
    .done = alter_configs_done,
    .finish = alter_configs_finish,
};

/* ---- mutating dispatch and back-pressure ---------------------------------------- */

/* The batch methods, by method number; the others are handled one by one. */
static const struct svc_batch_ops *const batch_methods[COORD_M_COUNT] = {
    [COORD_M_ALTER_PARTITION] = &alter_partition_ops,
    [COORD_M_CREATE_TOPICS] = &create_topics_ops,
    [COORD_M_DELETE_TOPICS] = &delete_topics_ops,
    [COORD_M_CREATE_PARTITIONS] = &create_partitions_ops,
    [COORD_M_ALTER_TOPIC_CONFIGS] = &alter_configs_ops,
};

static void process_mutation(struct coord_service *svc, struct rpc_call *call,
                             const ProtobufCMessage *req)
{
    unsigned m = rpc_call_method(call);
    if (m < COORD_M_COUNT && batch_methods[m]) {
        batch_run(svc, call, req, batch_methods[m]);
        return;
    }
    switch (m) {
    case COORD_M_REGISTER_BROKER:
        do_register(svc, call, (const Weir__Coord__RegisterBrokerRequest *)req);
        break;
    case COORD_M_CONTROLLED_SHUTDOWN:
        do_controlled_shutdown(svc, call, (const Weir__Coord__ControlledShutdownRequest *)req);
        break;
    case COORD_M_UNREGISTER_BROKER:
        do_unregister(svc, call, (const Weir__Coord__UnregisterBrokerRequest *)req);
        break;
    default:
        rpc_call_fail(call, RPC_UNKNOWN_METHOD, "not a mutating method");
        break;
    }
}

/* Mutations wait in arrival order while too many appended bytes are not yet
 * durable, so a burst cannot queue unbounded memory in the log. */
static void h_mutation(struct rpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct coord_service *svc = ud;
    if (svc->failed) {
        rpc_call_fail(call, RPC_INTERNAL, "coordinator failed: metadata log unavailable");
        return;
    }
    if (svc->stopping) {
        rpc_call_fail(call, RPC_SHUTTING_DOWN, "coordinator is stopping");
        return;
    }
    if (svc->park_head || svc->unflushed_bytes >= svc->opts.max_unflushed_bytes) {
        struct parked *p = calloc(1, sizeof(*p));
        if (!p) {
            rpc_call_fail(call, RPC_INTERNAL, "out of memory");
            return;
        }
        p->call = call;
        p->req = req;
        if (svc->park_tail)
            svc->park_tail->next = p;
        else
            svc->park_head = p;
        svc->park_tail = p;
        return;
    }
    process_mutation(svc, call, req);
}

static void on_unpark(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_service *svc = arg;
    while (svc->park_head && !svc->failed && !svc->stopping &&
           svc->unflushed_bytes < svc->opts.max_unflushed_bytes) {
        struct parked *p = svc->park_head;
        svc->park_head = p->next;
        if (!svc->park_head)
            svc->park_tail = NULL;
        struct rpc_call *call = p->call;
        const ProtobufCMessage *req = p->req;
        free(p);
        process_mutation(svc, call, req);
    }
}

/* ---- reads ----------------------------------------------------------------------- */

static void h_describe_cluster(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    (void)msg;
    struct coord_service *svc = ud;
    const struct cstate *s = svc->committed;
    Weir__Coord__DescribeClusterResponse resp = WEIR__COORD__DESCRIBE_CLUSTER_RESPONSE__INIT;
    size_t n = s->n_brokers;
    Weir__Coord__BrokerInfo *bi = calloc(n ? n : 1, sizeof(*bi));
    Weir__Coord__BrokerInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    size_t n_eps = 0;
    for (size_t i = 0; i < n; i++)
        n_eps += s->brokers[i].n_endpoints;
    Weir__Meta__Endpoint *eps = calloc(n_eps + n + 1, sizeof(*eps));
    Weir__Meta__Endpoint **eptrs = calloc(n_eps + 1, sizeof(*eptrs));
    if (!bi || !ptrs || !eps || !eptrs) {
        free(bi);
        free(ptrs);
        free(eps);
        free(eptrs);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    size_t e = 0;
    Weir__Meta__Endpoint *repl = eps + n_eps;
    for (size_t i = 0; i < n; i++) {
        const struct cstate_broker *b = &s->brokers[i];
        weir__coord__broker_info__init(&bi[i]);
        ptrs[i] = &bi[i];
        bi[i].broker_id = b->id;
        bi[i].broker_epoch = b->epoch;
        bi[i].state = (Weir__Meta__BrokerState)b->state;
        bi[i].rack = str_or_empty(b->rack);
        bi[i].incarnation_id.data = (uint8_t *)b->incarnation;
        bi[i].incarnation_id.len = CSTATE_UUID_LEN;
        bi[i].endpoints = eptrs + e;
        bi[i].n_endpoints = b->n_endpoints;
        for (uint32_t k = 0; k < b->n_endpoints; k++, e++) {
            endpoint_to_pb(&b->endpoints[k], &eps[e]);
            eptrs[e] = &eps[e];
        }
        if (b->replication.host) {
            endpoint_to_pb(&b->replication, &repl[i]);
            bi[i].replication_endpoint = &repl[i];
        }
    }
    resp.cluster_id = str_or_empty(s->cluster_id);
    resp.coordinator_id = svc->cfg->node_id;
    resp.metadata_offset = s->offset;
    resp.n_brokers = n;
    resp.brokers = ptrs;
    rpc_call_reply(call, &resp.base);
    free(bi);
    free(ptrs);
    free(eps);
    free(eptrs);
}

static void h_list_topics(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    (void)msg;
    struct coord_service *svc = ud;
    const struct cstate *s = svc->committed;
    Weir__Coord__ListTopicsResponse resp = WEIR__COORD__LIST_TOPICS_RESPONSE__INIT;
    size_t n = s->n_topics;
    Weir__Coord__TopicListing *tl = calloc(n ? n : 1, sizeof(*tl));
    Weir__Coord__TopicListing **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!tl || !ptrs) {
        free(tl);
        free(ptrs);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    size_t i = 0;
    for (const struct cstate_topic *t = s->first_topic; t && i < n; t = t->next, i++) {
        weir__coord__topic_listing__init(&tl[i]);
        ptrs[i] = &tl[i];
        tl[i].name = t->name;
        tl[i].topic_id.data = (uint8_t *)t->id;
        tl[i].topic_id.len = CSTATE_UUID_LEN;
        tl[i].num_partitions = t->n_parts;
    }
    resp.n_topics = i;
    resp.topics = ptrs;
    resp.metadata_offset = s->offset;
    rpc_call_reply(call, &resp.base);
    free(tl);
    free(ptrs);
}

/* Fill @o from @t; its arrays borrow the state, which must not change until the
 * response is sent. Allocates the partition and config arrays. */
static int describe_topic(const struct cstate_topic *t, Weir__Coord__TopicDescription *o)
{
    o->name = t->name;
    o->topic_id.data = (uint8_t *)t->id;
    o->topic_id.len = CSTATE_UUID_LEN;
    size_t np = (size_t)t->n_parts;
    Weir__Meta__PartitionState *ps = calloc(np ? np : 1, sizeof(*ps));
    Weir__Meta__PartitionState **pp = calloc(np ? np : 1, sizeof(*pp));
    Weir__Meta__ConfigEntry *ce = calloc(t->n_configs ? t->n_configs : 1, sizeof(*ce));
    Weir__Meta__ConfigEntry **cp = calloc(t->n_configs ? t->n_configs : 1, sizeof(*cp));
    if (!ps || !pp || !ce || !cp) {
        free(ps);
        free(pp);
        free(ce);
        free(cp);
        return -ENOMEM;
    }
    for (size_t k = 0; k < np; k++) {
        const struct cstate_partition *p = &t->parts[k];
        weir__meta__partition_state__init(&ps[k]);
        pp[k] = &ps[k];
        ps[k].partition = (int32_t)k;
        ps[k].replicas = (int32_t *)cstate_part_replicas(p);
        ps[k].n_replicas = p->n_replicas;
        ps[k].isr = (int32_t *)cstate_part_isr(p);
        ps[k].n_isr = p->n_isr;
        ps[k].adding_replicas = (int32_t *)cstate_part_adding(p);
        ps[k].n_adding_replicas = p->n_adding;
        ps[k].removing_replicas = (int32_t *)cstate_part_removing(p);
        ps[k].n_removing_replicas = p->n_removing;
        ps[k].leader = p->leader;
        ps[k].leader_epoch = p->leader_epoch;
        ps[k].partition_epoch = p->partition_epoch;
    }
    for (uint32_t k = 0; k < t->n_configs; k++) {
        weir__meta__config_entry__init(&ce[k]);
        cp[k] = &ce[k];
        ce[k].name = t->configs[k].name;
        ce[k].value = t->configs[k].value;
    }
    o->partitions = pp;
    o->n_partitions = np;
    o->configs = cp;
    o->n_configs = t->n_configs;
    return 0;
}

static void describe_free(Weir__Coord__TopicDescription *o)
{
    if (o->partitions)
        free(o->partitions[0]);
    free(o->partitions);
    if (o->configs)
        free(o->configs[0]);
    free(o->configs);
}

static void h_describe_topics(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct coord_service *svc = ud;
    const Weir__Coord__DescribeTopicsRequest *req = (const Weir__Coord__DescribeTopicsRequest *)msg;
    const struct cstate *s = svc->committed;
    Weir__Coord__DescribeTopicsResponse resp = WEIR__COORD__DESCRIBE_TOPICS_RESPONSE__INIT;
    size_t n = req->n_names ? req->n_names : s->n_topics;
    Weir__Coord__TopicDescription *td = calloc(n ? n : 1, sizeof(*td));
    Weir__Coord__TopicDescription **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    int r = (td && ptrs) ? 0 : -ENOMEM;
    const struct cstate_topic *t = s->first_topic;
    size_t i = 0;
    for (; r == 0 && i < n; i++) {
        weir__coord__topic_description__init(&td[i]);
        ptrs[i] = &td[i];
        if (req->n_names) {
            t = cstate_topic_by_name(s, req->names[i]);
            if (!t) {
                td[i].name = str_or_empty(req->names[i]);
                td[i].error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                td[i].error_message = "unknown topic";
                continue;
            }
        } else if (!t) {
            break;
        }
        r = describe_topic(t, &td[i]);
        if (!req->n_names)
            t = t->next;
    }
    if (r < 0) {
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
    } else {
        resp.n_topics = i;
        resp.topics = ptrs;
        resp.metadata_offset = s->offset;
        rpc_call_reply(call, &resp.base);
    }
    for (size_t k = 0; td && k < i; k++)
        describe_free(&td[k]);
    free(td);
    free(ptrs);
}

static void h_get_image(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    (void)msg;
    struct coord_service *svc = ud;
    int r = image_get(svc);
    if (r < 0) {
        rpc_call_fail(call, RPC_INTERNAL, "cannot build the metadata image");
        return;
    }
    Weir__Coord__GetImageResponse resp = WEIR__COORD__GET_IMAGE_RESPONSE__INIT;
    resp.metadata_offset = svc->img_offset;
    resp.image.data = svc->img;
    resp.image.len = svc->img_len;
    rpc_call_reply(call, &resp.base);
}

static void h_watch(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct coord_service *svc = ud;
    if (svc->failed || svc->stopping) {
        rpc_call_fail(call, RPC_SHUTTING_DOWN, "coordinator is stopping");
        return;
    }
    watch_hub_subscribe(svc->watch, call, (const Weir__Coord__WatchRequest *)msg);
}

/* ---- timers ------------------------------------------------------------------------ */

/* Fence every broker whose session expired, then sleep until the next
 * deadline. */
static void on_session_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_service *svc = arg;
    if (svc->failed || svc->stopping)
        return;
    int64_t now = clock_mono_ms();
    int32_t id;
    int64_t epoch;
    while (!svc->failed && csession_next_expired(svc->sessions, now, &id, &epoch)) {
        struct cctl_error err = {0};
        bool cut = csession_is_cut(svc->sessions, id);
        int r = cctl_fence_broker(svc->spec, &svc->ctx, id, epoch, &svc->recs, &err);
        if (r == 0 && err.code == KERR_NONE && cut) {
            log_info("coordinator",
                     "broker %d (epoch %" PRId64 ") did not return after its connection "
                     "closed: fencing it (%zu records)",
                     (int)id, epoch, svc->recs.n);
            svc_write_internal(svc, "fencing");
        } else if (r == 0 && err.code == KERR_NONE) {
            log_info("coordinator",
                     "broker %d (epoch %" PRId64 ") sent no heartbeat for %d ms: fencing it "
                     "(%zu records)",
                     (int)id, epoch, (int)svc->cfg->session_timeout_ms, svc->recs.n);
            svc_write_internal(svc, "fencing");
        } else {
            cstate_records_clear(&svc->recs);
            if (r < 0)
                log_error("coordinator", "cannot fence broker %d: %s", (int)id, strerror(-r));
        }
        csession_remove(svc->sessions, id);
    }
    session_rearm(svc, now);
}

static void on_rebalance_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_service *svc = arg;
    if (svc->failed || svc->stopping)
        return;
    struct cctl_rebalance_opts ro = {.imbalance_pct = SVC_IMBALANCE_PCT, .broker_id = -1};
    int r = cctl_preferred_leaders(svc->spec, &svc->ctx, &ro, &svc->recs);
    if (r < 0) {
        log_error("coordinator", "preferred-leader check failed: %s", strerror(-r));
        cstate_records_clear(&svc->recs);
    } else if (svc->recs.n > 0) {
        log_info("coordinator", "preferred-leader rebalance: moving %zu leaderships", svc->recs.n);
        svc_write_internal(svc, "preferred-leader rebalance");
    }
    arm_ms(svc->rebalance_timer, svc->cfg->leader_imbalance_check_interval_ms);
}

/* ---- lifecycle ----------------------------------------------------------------- */

int coord_service_new(struct event_base *base, struct mlog *log, struct cstate *state,
                      const struct coord_service_options *opts, struct coord_service **ret)
{
    if (!base || !log || !state || !opts || !opts->settings) {
        cstate_free(state);
        return -EINVAL;
    }
    /* The handler table is indexed by method position in coordinator.proto: a
     * reordered .proto must fail here, in every build, not misroute calls. */
    if (proto_methods_check() < 0) {
        cstate_free(state);
        return -EPROTO;
    }

    struct coord_service *svc = calloc(1, sizeof(*svc));
    if (!svc) {
        cstate_free(state);
        return -ENOMEM;
    }
    svc->spec = state;
    svc->base = base;
    svc->log = log;
    svc->opts = *opts;
    svc->cfg = opts->settings;
    if (svc->opts.max_unflushed_bytes == 0)
        svc->opts.max_unflushed_bytes = SVC_DEFAULT_MAX_UNFLUSHED;
    cstate_records_init(&svc->recs);
    cctl_config_defaults(&svc->ctx.cfg);
    svc->ctx.cfg.num_partitions = svc->cfg->num_partitions;
    svc->ctx.cfg.default_replication_factor = svc->cfg->default_replication_factor;
    svc->ctx.cfg.min_insync_replicas = svc->cfg->min_insync_replicas;
    svc->ctx.cfg.unclean_leader_election = svc->cfg->unclean_leader_election;
    svc->ctx.rand = svc_rand;

    /* The committed state starts as an exact copy of the recovered one; an
     * image round trip is the one deep copy the state module offers. */
    uint8_t *img = NULL;
    size_t img_len = 0;
    char why[256] = "";
    int r = cstate_snapshot_encode(state, &img, &img_len);
    if (r == 0)
        r = cstate_snapshot_decode(img, img_len, &svc->committed, why, sizeof(why));
    free(img);
    if (r == 0)
        r = csession_new(svc->cfg->session_timeout_ms, &svc->sessions);
    if (r == 0)
        r = watch_hub_new(NULL, state->offset, watch_image, svc, &svc->watch);
    if (r == 0) {
        svc->session_timer = evtimer_new(base, on_session_tick, svc);
        svc->rebalance_timer = evtimer_new(base, on_rebalance_tick, svc);
        svc->unpark_ev = event_new(base, -1, 0, on_unpark, svc);
        if (!svc->session_timer || !svc->rebalance_timer || !svc->unpark_ev)
            r = -ENOMEM;
    }
    if (r < 0) {
        if (why[0])
            log_error("coordinator", "cannot copy the recovered state: %s", why);
        coord_service_free(svc);
        return r;
    }
    if (svc->committed->offset != state->offset) {
        coord_service_free(svc);
        return -EINVAL;
    }
    *ret = svc;
    return 0;
}

static int listen_all(struct coord_service *svc)
{
    struct rpc_handler handlers[COORD_M_COUNT];
    for (unsigned i = 0; i < COORD_M_COUNT; i++)
        handlers[i] = (struct rpc_handler){h_mutation, svc};
    handlers[COORD_M_HEARTBEAT].fn = h_heartbeat;
    handlers[COORD_M_DESCRIBE_CLUSTER].fn = h_describe_cluster;
    handlers[COORD_M_LIST_TOPICS].fn = h_list_topics;
    handlers[COORD_M_DESCRIBE_TOPICS].fn = h_describe_topics;
    handlers[COORD_M_GET_IMAGE].fn = h_get_image;
    handlers[COORD_M_WATCH].fn = h_watch;
    struct rpc_server_options so = {.max_frame_bytes = svc->cfg->max_frame_bytes};
    for (size_t i = 0; i < svc->cfg->n_listeners; i++) {
        const struct coord_listener *l = &svc->cfg->listeners[i];
        const char *host = l->host[0] ? l->host : "0.0.0.0";
        int r = rpc_server_new(svc->base, host, l->port, &weir__coord__coordinator__descriptor,
                               handlers, &so, &svc->servers[i]);
        if (r < 0) {
            log_error("coordinator", "cannot listen on %s:%d: %s", host, l->port, strerror(-r));
            return r;
        }
        svc->n_servers = i + 1;
    }
    return 0;
}

int coord_service_start(struct coord_service *svc, coord_ready_fn ready, void *ud)
{
    svc->ready = ready;
    svc->ready_ud = ud;
    struct cctl_error err = {0};
    int r = cctl_bootstrap(svc->spec, &svc->ctx, NULL, &svc->recs, &err);
    if (r < 0 || err.code != KERR_NONE) {
        log_error("coordinator", "cannot bootstrap the cluster: %s",
                  r < 0 ? strerror(-r) : err.message);
        cstate_records_clear(&svc->recs);
        return r < 0 ? r : -EINVAL;
    }
    if (svc->recs.n > 0) {
        svc_write_internal(svc, "bootstrap");
        log_info("coordinator", "new cluster %s", svc->spec->cluster_id);
    }
    /* Partitions left offline by the last run may have a leader now. */
    r = cctl_elect_offline(svc->spec, &svc->ctx, &svc->recs);
    if (r == 0 && svc->recs.n > 0) {
        log_info("coordinator", "electing leaders for %zu offline partitions", svc->recs.n);
        svc_write_internal(svc, "offline election");
    }
    cstate_records_clear(&svc->recs);
    if (svc->failed)
        return -EIO;

    /* Brokers live in the recovered state keep their epochs and get a full
     * session from now, as if they had just sent a heartbeat. */
    r = csession_reset(svc->sessions, svc->spec, clock_mono_ms());
    if (r < 0)
        return r;
    if (csession_count(svc->sessions) > 0)
        log_info("coordinator", "%zu brokers have a session until they heartbeat or expire",
                 csession_count(svc->sessions));
    r = listen_all(svc);
    if (r < 0)
        return r;
    arm_ms(svc->session_timer, SVC_SESSION_TICK_MIN_MS);
    if (svc->cfg->auto_leader_rebalance)
        arm_ms(svc->rebalance_timer, svc->cfg->leader_imbalance_check_interval_ms);
    svc->ready_offset = svc->spec->offset;
    svc->ready_pending = true;
    maybe_ready(svc);
    return 0;
}

int coord_service_port(const struct coord_service *svc, size_t i)
{
    if (i >= svc->n_servers)
        return -1;
    return rpc_server_port(svc->servers[i]);
}

const char *coord_service_cluster_id(const struct coord_service *svc)
{
    return svc->committed->cluster_id;
}

int64_t coord_service_committed_offset(const struct coord_service *svc)
{
    return committed_offset(svc);
}

static void close_servers(struct coord_service *svc)
{
    for (size_t i = 0; i < svc->n_servers; i++) {
        rpc_server_free(svc->servers[i]);
        svc->servers[i] = NULL;
    }
    svc->n_servers = 0;
}

int coord_service_stop(struct coord_service *svc)
{
    svc->stopping = true;
    if (svc->session_timer)
        event_del(svc->session_timer);
    if (svc->rebalance_timer)
        event_del(svc->rebalance_timer);
    /* Waiting mutations were never appended: tell their callers to retry
     * elsewhere or later. */
    while (svc->park_head) {
        struct parked *p = svc->park_head;
        svc->park_head = p->next;
        rpc_call_fail(p->call, RPC_SHUTTING_DOWN, "coordinator is stopping");
        free(p);
    }
    svc->park_tail = NULL;
    /* Every appended record becomes durable and its caller is answered. */
    int r = mlog_sync(svc->log);
    if (r < 0 && !svc->failed)
        svc_fatal(svc, "metadata log failed during shutdown: %s", strerror(-r));
    /* Give the answers one chance to reach the sockets. */
    event_base_loop(svc->base, EVLOOP_NONBLOCK);
    close_servers(svc);
    fail_waiting_calls(svc, RPC_SHUTTING_DOWN, "coordinator is stopping");
    return r;
}

void coord_service_free(struct coord_service *svc)
{
    if (!svc)
        return;
    /* Closing the connections runs their hooks: no session is cut any more. */
    svc->stopping = true;
    close_servers(svc);
    /* Every watched connection closed above and its hook freed its entry;
     * whatever remains (none expected) is let go here. */
    while (svc->bconns)
        bconn_drop(svc, svc->bconns);
    fail_waiting_calls(svc, RPC_SHUTTING_DOWN, "coordinator is stopping");
    if (svc->session_timer)
        event_free(svc->session_timer);
    if (svc->rebalance_timer)
        event_free(svc->rebalance_timer);
    if (svc->unpark_ev)
        event_free(svc->unpark_ev);
    watch_hub_free(svc->watch);
    csession_free(svc->sessions);
    for (size_t i = 0; i < svc->q_n; i++)
        free(svc->q[(svc->q_head + i) % svc->q_cap].data);
    free(svc->q);
    image_invalidate(svc);
    cstate_records_deinit(&svc->recs);
    cstate_free(svc->committed);
    cstate_free(svc->spec);
    free(svc);
}
