/* heartbeat: a dedicated heartbeat thread with its own event base and
 * coordinator connection, gated by the broker loop's progress stamp. */
#include "broker/heartbeat.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "methods.h"

/* ---- the decision --------------------------------------------------------------- */

int64_t hb_loop_budget_ms(int session_timeout_ms)
{
    int64_t b = session_timeout_ms / 2;
    return b < 3 * HB_LOOP_STAMP_MS ? 3 * HB_LOOP_STAMP_MS : b;
}

void hb_liveness_init(struct hb_liveness *l)
{
    l->last_sent_ms = -1;
    l->stalled = false;
}

enum hb_action hb_liveness_step(struct hb_liveness *l, int64_t now_ms, int64_t loop_stamp_ms,
                                int interval_ms, int session_timeout_ms)
{
    if (now_ms - loop_stamp_ms > hb_loop_budget_ms(session_timeout_ms)) {
        if (l->stalled)
            return HB_IDLE;
        l->stalled = true;
        return HB_STALL_BEGIN;
    }
    if (l->stalled) {
        /* The loop is back: tell the coordinator at once, the stall may have
         * eaten most of the session. */
        l->stalled = false;
        l->last_sent_ms = now_ms;
        return HB_RESUME;
    }
    if (l->last_sent_ms >= 0 && now_ms - l->last_sent_ms < (int64_t)interval_ms)
        return HB_IDLE;
    l->last_sent_ms = now_ms;
    return HB_SEND;
}

/* ---- the thread ----------------------------------------------------------------- */

struct hbthread {
    /* Loop side. */
    struct event_base *loop_base;
    struct event *stamp_ev;  /* persistent: stamps loop_stamp_ms */
    struct event *notice_ev; /* notice_fd readable: a refusal to hand over */
    int notice_fd;
    hbthread_refused_fn refused;
    hbthread_hint_fn hint_fn;
    void *ud;

    /* Thread side. */
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct rpc_client *rpc;
    struct event *tick_ev;
    struct event *stop_ev;
    int stop_fd;
    int32_t broker_id;
    struct hb_liveness live;
    bool in_flight;
    uint64_t target_seen; /* target_gen the client points at */
    int timeouts;         /* heartbeats in a row that got no answer in time */

    /* Shared. */
    _Atomic int64_t loop_stamp_ms;
    _Atomic int64_t applied;
    pthread_mutex_t mu;
    int64_t epoch; /* < 0: do not heartbeat */
    int interval_ms;
    int session_timeout_ms;
    int64_t lease_epoch, lease_start_ms;
    int64_t coord_offset;
    bool refusal_pending;
    int64_t refused_epoch;
    int16_t refused_code;
    char refused_msg[256];
    bool hint_pending; /* a NOT_CONTROLLER answer to hand over */
    int32_t hint_id;
    char hint_host[256]; /* "" no hint */
    int hint_port;
    uint64_t target_gen; /* bumped by hbthread_set_target */
    char target_host[256];
    int target_port;
    struct hbthread_stats stats;
};

static void on_stamp(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hbthread *h = arg;
    atomic_store_explicit(&h->loop_stamp_ms, clock_mono_ms(), memory_order_relaxed);
}

static void on_notice(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct hbthread *h = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_debug("heartbeat", "notice read: %s", strerror(errno));
    pthread_mutex_lock(&h->mu);
    bool pending = h->refusal_pending;
    int64_t epoch = h->refused_epoch;
    int16_t code = h->refused_code;
    char msg[sizeof(h->refused_msg)];
    memcpy(msg, h->refused_msg, sizeof(msg));
    h->refusal_pending = false;
    bool hint = h->hint_pending;
    int32_t hint_id = h->hint_id;
    char hint_host[sizeof(h->hint_host)];
    memcpy(hint_host, h->hint_host, sizeof(hint_host));
    int hint_port = h->hint_port;
    h->hint_pending = false;
    pthread_mutex_unlock(&h->mu);
    if (pending && h->refused)
        h->refused(h->ud, epoch, code, msg);
    if (hint && h->hint_fn)
        h->hint_fn(h->ud, hint_id, hint_host, hint_port);
}

struct hb_call {
    struct hbthread *h;
    int64_t sent_ms;
    int64_t epoch;
};

static void on_heartbeat(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                         void *ud)
{
    struct hb_call *c = ud;
    struct hbthread *h = c->h;
    int64_t sent_ms = c->sent_ms, epoch = c->epoch;
    free(c);
    h->in_flight = false;
    if (status != RPC_OK) {
        bool notify = false;
        pthread_mutex_lock(&h->mu);
        h->stats.failed++;
        /* A coordinator that stopped answering but keeps its connections open
         * (SIGSTOP, a wedged VM): after HB_TIMEOUTS_TO_MOVE unanswered
         * heartbeats ask the loop to try the next coordinator of the list. */
        if (status == RPC_TIMEOUT && ++h->timeouts >= HB_TIMEOUTS_TO_MOVE) {
            h->timeouts = 0;
            h->hint_pending = true;
            h->hint_id = -1;
            h->hint_host[0] = '\0';
            h->hint_port = 0;
            notify = true;
        }
        pthread_mutex_unlock(&h->mu);
        log_debug("heartbeat", "heartbeat failed: %s", errmsg);
        if (notify) {
            uint64_t one = 1;
            if (write(h->notice_fd, &one, sizeof(one)) < 0)
                log_warn("heartbeat", "cannot notify the event loop: %s", strerror(errno));
        }
        return;
    }
    h->timeouts = 0;
    const Weir__Coord__HeartbeatResponse *resp = (const Weir__Coord__HeartbeatResponse *)msg;
    bool notify = false;
    pthread_mutex_lock(&h->mu);
    if (resp->error_code == KERR_NOT_CONTROLLER) {
        /* Not the quorum leader (any more): no lease from this answer, but the
         * session stands; the loop moves both connections to the leader. */
        h->stats.failed++;
        h->hint_pending = true;
        const Weir__Coord__LeaderHint *lh = resp->leader_hint;
        h->hint_id = lh ? lh->node_id : -1;
        snprintf(h->hint_host, sizeof(h->hint_host), "%s", lh && lh->host ? lh->host : "");
        h->hint_port = lh ? lh->port : 0;
        notify = true;
    } else if (!resp->error_code) {
        h->stats.accepted++;
        if (resp->metadata_offset > h->coord_offset)
            h->coord_offset = resp->metadata_offset;
        if (h->lease_epoch != epoch || sent_ms > h->lease_start_ms) {
            h->lease_epoch = epoch;
            h->lease_start_ms = sent_ms;
        }
    } else {
        h->stats.refused++;
        if (h->lease_epoch == epoch)
            h->lease_start_ms = -1;
        /* Until the loop registers again there is nothing to heartbeat for. */
        if (h->epoch == epoch)
            h->epoch = -1;
        h->refusal_pending = true;
        h->refused_epoch = epoch;
        h->refused_code = (int16_t)resp->error_code;
        snprintf(h->refused_msg, sizeof(h->refused_msg), "%s",
                 resp->error_message ? resp->error_message : "");
        notify = true;
    }
    pthread_mutex_unlock(&h->mu);
    if (notify) {
        uint64_t one = 1;
        if (write(h->notice_fd, &one, sizeof(one)) < 0)
            log_warn("heartbeat", "cannot notify the event loop: %s", strerror(errno));
    }
}

static void send_heartbeat(struct hbthread *h, int64_t epoch, int interval_ms, int64_t now_ms)
{
    struct hb_call *c = malloc(sizeof(*c));
    if (!c)
        return;
    c->h = h;
    c->sent_ms = now_ms;
    c->epoch = epoch;
    Weir__Coord__HeartbeatRequest req = WEIR__COORD__HEARTBEAT_REQUEST__INIT;
    req.broker_id = h->broker_id;
    req.broker_epoch = epoch;
    req.metadata_offset = atomic_load_explicit(&h->applied, memory_order_relaxed);
    if (rpc_client_call(h->rpc, COORD_M_HEARTBEAT, &req.base, interval_ms > 0 ? interval_ms : 0,
                        on_heartbeat, c) < 0) {
        free(c);
        return;
    }
    h->in_flight = true;
    pthread_mutex_lock(&h->mu);
    h->stats.sent++;
    pthread_mutex_unlock(&h->mu);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hbthread *h = arg;
    pthread_mutex_lock(&h->mu);
    int64_t epoch = h->epoch;
    int interval = h->interval_ms, timeout = h->session_timeout_ms;
    bool move = h->target_gen != h->target_seen;
    char host[sizeof(h->target_host)];
    memcpy(host, h->target_host, sizeof(host));
    int port = h->target_port;
    h->target_seen = h->target_gen;
    pthread_mutex_unlock(&h->mu);
    if (move) {
        int r = rpc_client_retarget(h->rpc, host, port, 0);
        if (r < 0)
            log_warn("heartbeat", "cannot switch to coordinator %s:%d: %s", host, port,
                     strerror(-r));
        return;
    }
    if (epoch < 0 || timeout <= 0) {
        hb_liveness_init(&h->live);
        return;
    }
    int64_t now = clock_mono_ms();
    int64_t stamp = atomic_load_explicit(&h->loop_stamp_ms, memory_order_relaxed);
    /* A tick that would send while one is in flight or with no connection
     * waits for the next one (the decision is re-taken then). */
    if (h->in_flight || !rpc_client_is_connected(h->rpc)) {
        if (now - stamp <= hb_loop_budget_ms(timeout))
            return;
    }
    struct hb_liveness before = h->live;
    enum hb_action a = hb_liveness_step(&h->live, now, stamp, interval, timeout);
    switch (a) {
    case HB_IDLE:
        return;
    case HB_STALL_BEGIN:
        pthread_mutex_lock(&h->mu);
        h->stats.stalls++;
        pthread_mutex_unlock(&h->mu);
        log_warn("heartbeat",
                 "event loop has not turned for %" PRId64 " ms (budget %" PRId64
                 " ms, half of session.timeout.ms): withholding heartbeats so the "
                 "coordinator can fence this broker if it stays stuck",
                 now - stamp, hb_loop_budget_ms(timeout));
        return;
    case HB_RESUME:
        log_info("heartbeat", "event loop turned again after a stall: heartbeating");
        /* fall through */
    case HB_SEND:
        if (h->in_flight || !rpc_client_is_connected(h->rpc)) {
            h->live = before; /* not sent: decide again next tick */
            return;
        }
        send_heartbeat(h, epoch, interval, now);
        return;
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hbthread *h = arg;
    event_base_loopbreak(h->base);
}

static void *thread_main(void *arg)
{
    struct hbthread *h = arg;
    event_base_dispatch(h->base);
    return NULL;
}

int hbthread_new(struct event_base *loop_base, const char *host, int port, int32_t broker_id,
                 hbthread_refused_fn refused, void *ud, struct hbthread **ret)
{
    struct hbthread *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->loop_base = loop_base;
    h->refused = refused;
    h->ud = ud;
    h->broker_id = broker_id;
    h->notice_fd = h->stop_fd = -1;
    h->epoch = -1;
    h->lease_epoch = -1;
    h->lease_start_ms = -1;
    h->coord_offset = -1;
    hb_liveness_init(&h->live);
    atomic_init(&h->loop_stamp_ms, clock_mono_ms());
    atomic_init(&h->applied, -1);
    pthread_mutex_init(&h->mu, NULL);
    int r = -ENOMEM;
    h->notice_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    h->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->notice_fd < 0 || h->stop_fd < 0) {
        r = -errno;
        goto fail;
    }
    h->base = event_base_new();
    if (!h->base)
        goto fail;
    h->stamp_ev = event_new(loop_base, -1, EV_PERSIST, on_stamp, h);
    h->notice_ev = event_new(loop_base, h->notice_fd, EV_READ | EV_PERSIST, on_notice, h);
    h->tick_ev = event_new(h->base, -1, EV_PERSIST, on_tick, h);
    h->stop_ev = event_new(h->base, h->stop_fd, EV_READ, on_stop, h);
    if (!h->stamp_ev || !h->notice_ev || !h->tick_ev || !h->stop_ev)
        goto fail;
    struct rpc_client_options o = {0};
    r = rpc_client_new(h->base, host, port, &weir__coord__coordinator__descriptor, &o, &h->rpc);
    if (r < 0)
        goto fail;
    struct timeval stamp = {0, HB_LOOP_STAMP_MS * 1000}, tick = {0, HB_TICK_MS * 1000};
    event_add(h->stamp_ev, &stamp);
    event_add(h->notice_ev, NULL);
    event_add(h->tick_ev, &tick);
    event_add(h->stop_ev, NULL);
    /* The thread takes no signals: they belong to the loop (SIGTERM, SIGINT). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(&h->thread, NULL, thread_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        r = -e;
        goto fail;
    }
    h->started = true;
    *ret = h;
    return 0;
fail:
    hbthread_free(h);
    return r;
}

void hbthread_free(struct hbthread *h)
{
    if (!h)
        return;
    if (h->started) {
        uint64_t one = 1;
        if (write(h->stop_fd, &one, sizeof(one)) < 0)
            log_warn("heartbeat", "cannot stop the heartbeat thread: %s", strerror(errno));
        pthread_join(h->thread, NULL);
    }
    rpc_client_free(h->rpc);
    if (h->tick_ev)
        event_free(h->tick_ev);
    if (h->stop_ev)
        event_free(h->stop_ev);
    if (h->stamp_ev)
        event_free(h->stamp_ev);
    if (h->notice_ev)
        event_free(h->notice_ev);
    if (h->base)
        event_base_free(h->base);
    if (h->notice_fd >= 0)
        close(h->notice_fd);
    if (h->stop_fd >= 0)
        close(h->stop_fd);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void hbthread_set_session(struct hbthread *h, int64_t epoch, int interval_ms,
                          int session_timeout_ms)
{
    pthread_mutex_lock(&h->mu);
    h->epoch = epoch;
    h->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    h->session_timeout_ms = session_timeout_ms;
    pthread_mutex_unlock(&h->mu);
}

void hbthread_set_target(struct hbthread *h, const char *host, int port)
{
    pthread_mutex_lock(&h->mu);
    {
        snprintf(h->target_host, sizeof(h->target_host), "%s", host);
        h->target_port = port;
        h->target_gen++;
    }
    pthread_mutex_unlock(&h->mu);
}

void hbthread_set_hint_fn(struct hbthread *h, hbthread_hint_fn fn)
{
    h->hint_fn = fn;
}

void hbthread_set_applied(struct hbthread *h, int64_t offset)
{
    atomic_store_explicit(&h->applied, offset, memory_order_relaxed);
}

int64_t hbthread_lease_start(struct hbthread *h, int64_t epoch)
{
    pthread_mutex_lock(&h->mu);
    int64_t v = h->lease_epoch == epoch ? h->lease_start_ms : -1;
    pthread_mutex_unlock(&h->mu);
    return v;
}

int64_t hbthread_coord_offset(struct hbthread *h)
{
    pthread_mutex_lock(&h->mu);
    int64_t v = h->coord_offset;
    pthread_mutex_unlock(&h->mu);
    return v;
}

void hbthread_get_stats(struct hbthread *h, struct hbthread_stats *ret)
{
    pthread_mutex_lock(&h->mu);
    *ret = h->stats;
    pthread_mutex_unlock(&h->mu);
}
