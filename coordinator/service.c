/* service: weir-coordinator's RPC service (service.h describes the request
 * path) — its lifecycle, the table that says how each method of
 * coordinator.proto is served, the admission of mutations, the periodic
 * preferred-leader rebalance, and helpers the other service files share.
 * service_internal.h lists those files and what each one owns. */
#include "coordinator/service.h"

#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "coordinator/mlog.h"
#include "coordinator/service_internal.h"
#include "coordinator/session.h"
#include "coordinator/watch.h"

#define SVC_DEFAULT_MAX_UNFLUSHED (64u * 1024 * 1024)

/* ---- methods ------------------------------------------------------------------------ */

/* How each method is served. A method with a handler is answered on arrival
 * (reads, heartbeats). Every other one is a mutation: admitted in arrival
 * order behind the back-pressure (service_wait.c), then handled on its own
 * (mutate) or, when its request is a list of items, run through the batch
 * skeleton (service_batch.c). */
struct svc_method {
    rpc_handler_fn handle;
    void (*mutate)(struct coord_service *svc, struct rpc_call *call, const ProtobufCMessage *req);
    const struct svc_batch_ops *batch;
};

static const struct svc_method methods[COORD_M_COUNT] = {
    [COORD_M_REGISTER_BROKER] = {.mutate = svc_register_broker},
    [COORD_M_HEARTBEAT] = {.handle = svc_heartbeat},
    [COORD_M_CONTROLLED_SHUTDOWN] = {.mutate = svc_controlled_shutdown},
    [COORD_M_ALTER_PARTITION] = {.batch = &svc_alter_partition_ops},
    [COORD_M_CREATE_TOPICS] = {.batch = &svc_create_topics_ops},
    [COORD_M_DELETE_TOPICS] = {.batch = &svc_delete_topics_ops},
    [COORD_M_CREATE_PARTITIONS] = {.batch = &svc_create_partitions_ops},
    [COORD_M_DESCRIBE_CLUSTER] = {.handle = svc_describe_cluster},
    [COORD_M_LIST_TOPICS] = {.handle = svc_list_topics},
    [COORD_M_DESCRIBE_TOPICS] = {.handle = svc_describe_topics},
    [COORD_M_GET_IMAGE] = {.handle = svc_get_image},
    [COORD_M_WATCH] = {.handle = svc_watch},
    [COORD_M_ALTER_TOPIC_CONFIGS] = {.batch = &svc_alter_configs_ops},
    [COORD_M_UNREGISTER_BROKER] = {.mutate = svc_unregister_broker},
    [COORD_M_ALLOCATE_PRODUCER_IDS] = {.mutate = svc_allocate_producer_ids},
    [COORD_M_ALTER_BROKER_CONFIGS] = {.batch = &svc_alter_broker_configs_ops},
    [COORD_M_ALTER_REASSIGNMENTS] = {.mutate = svc_alter_reassignments},
    [COORD_M_LIST_REASSIGNMENTS] = {.handle = svc_list_reassignments},
    [COORD_M_ELECT_LEADERS] = {.mutate = svc_elect_leaders},
    [COORD_M_QUORUM_STEP] = {.handle = svc_quorum_step},
};

void svc_mutation_process(struct coord_service *svc, struct rpc_call *call,
                          const ProtobufCMessage *req)
{
    unsigned m = rpc_call_method(call);
    const struct svc_method *sm = m < COORD_M_COUNT ? &methods[m] : NULL;
    if (sm && sm->batch)
        svc_batch_run(svc, call, req, sm->batch);
    else if (sm && sm->mutate)
        sm->mutate(svc, call, req);
    else
        rpc_call_fail(call, RPC_UNKNOWN_METHOD, "not a mutating method");
}

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
    if (!svc_leads(svc)) {
        svc_not_leader(svc, call);
        return;
    }
    if (svc_park(svc, call, req))
        return;
    svc_mutation_process(svc, call, req);
}

/* ---- shared helpers ------------------------------------------------------------------ */

void svc_err_set(struct cctl_error *err, int16_t code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

char *svc_err_msg(const struct cctl_error *err)
{
    return (char *)(err->code ? err->message : "");
}

void svc_err_internal(struct cctl_error *err, int r)
{
    svc_err_set(err, KERR_UNKNOWN_SERVER_ERROR, "internal error: %s", strerror(-r));
}

void svc_arm_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
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

/* ---- the rebalance timer ------------------------------------------------------------- */

static void on_rebalance_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_service *svc = arg;
    if (svc->failed || svc->stopping || !svc_leads(svc))
        return;
    /* Moves that became possible since their last ISR change (a target
     * replica able to lead came back), whether or not leaders are rebalanced. */
    svc_reassign_complete_all(svc, "periodic check");
    struct cctl_rebalance_opts ro = {.imbalance_pct = svc->cfg->leader_imbalance_per_broker_pct,
                                     .broker_id = -1};
    int r = svc->cfg->auto_leader_rebalance
                ? cctl_preferred_leaders(svc->spec, &svc->ctx, &ro, &svc->recs)
                : 0;
    if (r < 0) {
        log_error("coordinator", "preferred-leader check failed: %s", strerror(-r));
        cstate_records_clear(&svc->recs);
    } else if (svc->recs.n > 0) {
        log_info("coordinator", "preferred-leader rebalance: moving %zu leaderships", svc->recs.n);
        svc_write_internal(svc, "preferred-leader rebalance");
    }
    svc_arm_ms(svc->rebalance_timer, svc->cfg->leader_imbalance_check_interval_ms);
}

/* ---- lifecycle ----------------------------------------------------------------- */

void svc_maybe_ready(struct coord_service *svc)
{
    if (svc->ready_pending && svc_committed_offset(svc) >= svc->ready_offset) {
        svc->ready_pending = false;
        if (svc->ready)
            svc->ready(svc, svc->ready_ud);
    }
}

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
        r = csession_set_grace_rate(svc->sessions, svc->cfg->session_grace_bytes_per_ms);
    /* Records committed in one loop turn go to watchers together (compact
     * deltas: a fence of 10,001 records is a few frames, not 10,001). */
    struct watch_options wo = {.base = base};
    if (r == 0)
        r = watch_hub_new(&wo, state->offset, svc_watch_image, svc, &svc->watch);
    if (r == 0)
        r = svc_wait_init(svc);
    if (r == 0) {
        svc->session_timer = evtimer_new(base, svc_on_session_tick, svc);
        svc->rebalance_timer = evtimer_new(base, on_rebalance_tick, svc);
        if (!svc->session_timer || !svc->rebalance_timer)
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

/* Every call passes here first, to be counted by method. */
static void h_counted(struct rpc_call *call, const ProtobufCMessage *req, void *ud)
{
    struct coord_service *svc = ud;
    unsigned m = rpc_call_method(call);
    if (m >= COORD_M_COUNT) {
        rpc_call_fail(call, RPC_UNKNOWN_METHOD, "unknown method");
        return;
    }
    svc->ctr.rpc[m]++;
    (methods[m].handle ? methods[m].handle : h_mutation)(call, req, ud);
}

static int listen_all(struct coord_service *svc)
{
    struct rpc_handler handlers[COORD_M_COUNT];
    for (unsigned i = 0; i < COORD_M_COUNT; i++)
        handlers[i] = (struct rpc_handler){h_counted, svc};
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

/* A quorum voter listens and joins the quorum; the controller's start-up work
 * and timers wait until it leads (service_quorum.c). */
static int start_voter(struct coord_service *svc)
{
    int r = listen_all(svc);
    if (r < 0)
        return r;
    svc->ready_offset = svc->committed->offset;
    svc->ready_pending = true;
    svc_maybe_ready(svc);
    return craft_node_start(svc->quorum);
}

int coord_service_start(struct coord_service *svc, coord_ready_fn ready, void *ud)
{
    svc->ready = ready;
    svc->ready_ud = ud;
    /* The cluster id comes from formatting the data directory (main.c), never
     * from here: a service that invented one would give an unformatted or wiped
     * directory a new identity behind the operator's back. */
    if (!svc->spec->cluster_id) {
        log_error("coordinator",
                  "the metadata log has no cluster id (data directory not formatted)");
        return -EINVAL;
    }
    if (svc->quorum)
        return start_voter(svc);
    /* Partitions left offline by the last run may have a leader now. */
    int r = cctl_elect_offline(svc->spec, &svc->ctx, &svc->recs);
    if (r == 0 && svc->recs.n > 0) {
        log_info("coordinator", "electing leaders for %zu offline partitions", svc->recs.n);
        svc_write_internal(svc, "offline election");
    }
    cstate_records_clear(&svc->recs);
    /* A move whose last ISR change made it in before a stop. */
    svc_reassign_complete_all(svc, "start-up");
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
    svc_arm_ms(svc->session_timer, SVC_SESSION_TICK_MIN_MS);
    svc_arm_ms(svc->rebalance_timer, svc->cfg->leader_imbalance_check_interval_ms);
    svc->ready_offset = svc->spec->offset;
    svc->ready_pending = true;
    svc_maybe_ready(svc);
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
    return svc_committed_offset(svc);
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
    svc_park_fail_all(svc, RPC_SHUTTING_DOWN, "coordinator is stopping");
    /* Every appended record becomes durable and its caller is answered. */
    int r = mlog_sync(svc->log);
    if (r < 0 && !svc->failed)
        svc_fatal(svc, "metadata log failed during shutdown: %s", strerror(-r));
    /* Give the answers one chance to reach the sockets. */
    event_base_loop(svc->base, EVLOOP_NONBLOCK);
    close_servers(svc);
    svc_wait_fail_all(svc, RPC_SHUTTING_DOWN, "coordinator is stopping");
    return r;
}

void coord_service_free(struct coord_service *svc)
{
    if (!svc)
        return;
    /* Closing the connections runs their hooks: no session is cut any more. */
    svc->stopping = true;
    close_servers(svc);
    craft_node_free(svc->quorum);
    svc->quorum = NULL;
    /* Every watched connection closed above and its hook freed its entry;
     * whatever remains (none expected) is let go here. */
    svc_broker_conns_drop(svc);
    svc_wait_deinit(svc);
    if (svc->session_timer)
        event_free(svc->session_timer);
    if (svc->rebalance_timer)
        event_free(svc->rebalance_timer);
    watch_hub_free(svc->watch);
    csession_free(svc->sessions);
    svc_write_deinit(svc);
    svc_image_invalidate(svc);
    cstate_records_deinit(&svc->recs);
    cstate_free(svc->committed);
    cstate_free(svc->spec);
    free(svc);
}
