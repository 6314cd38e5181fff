/* weir-broker: the Kafka-protocol broker. Parses the configuration, opens the
 * partition logs, listens for Kafka clients, registers with the coordinator and
 * follows its metadata, serves until SIGTERM/SIGINT, then shuts down in a
 * controlled way (leaderships handed over, logs flushed) and exits 0.
 *
 *   weir-broker --config server.properties [--override key=value]...
 *
 * Before it opens a log it checks that its log directories belong to this
 * broker and to the coordinator's cluster (broker/identity.h): a mismatch is
 * one log line and exit 1, with nothing on disk changed.
 *
 * Prints exactly one line on stdout once it serves with current metadata:
 *   weir-broker ready: broker 1 kafka 127.0.0.1:9092 (registered, epoch 3)
 * Everything else goes to stderr through the log. */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker_config.h"
#include "broker/broker_metrics.h"
#include "broker/coordclient.h"
#include "broker/group/gstore.h"
#include "broker/identity.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kstats.h"
#include "broker/kafka/server.h"
#include "broker/replica/pstates.h"
#include "broker/replica/repl.h"
#include "broker/replicas.h"
#include "broker/storage/logmgr.h"
#include "broker/storage/storage_config.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/looplag.h"
#include "common/metrics.h"
#include "common/purgatory.h"
#include "common/version.h"
#include "methods.h"
#include "common/wpool.h"

#define EXIT_RUNTIME      1
#define EXIT_CONFIG       2
#define SHUTDOWN_GRACE_MS 5000

struct bmain {
    struct event_base *base;
    struct broker_settings s;
    struct broker_ctx ctx;
    struct kserver *srv;
    bool ready_printed;
    bool stopping;
    int fatal_code; /* non-zero: exit with it (set by on_fatal) */
    struct event *grace;
    struct looplag *lag;
    struct httpd *httpd; /* metrics.listener; NULL: off */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: weir-broker --config FILE [--override key=value]...\n"
               "       weir-broker --version\n");
}

static void on_logmgr_event(void *arg, const struct logmgr_event *ev)
{
    const char *what = "";
    enum log_level lvl = LOG_LEVEL_WARN;
    switch (ev->type) {
    case LOGMGR_EVENT_LOG_OPENED:
        lvl = LOG_LEVEL_DEBUG;
        what = "opened log";
        break;
    case LOGMGR_EVENT_IGNORED_ENTRY:
        what = "ignored entry";
        break;
    case LOGMGR_EVENT_CHECKPOINT_CORRUPT:
        what = "corrupt checkpoint";
        break;
    case LOGMGR_EVENT_STRAY_DIR:
        what = "kept stray log directory (set aside earlier; see docs/operations.md)";
        break;
    case LOGMGR_EVENT_STALE_DELETE_DIR:
        lvl = LOG_LEVEL_INFO;
        what = "removing leftover deleted log";
        break;
    case LOGMGR_EVENT_OPEN_FAILED:
        lvl = LOG_LEVEL_ERROR;
        what = "open failed";
        break;
    case LOGMGR_EVENT_FLUSH_FAILED:
        lvl = LOG_LEVEL_ERROR;
        what = "flush failed";
        break;
    case LOGMGR_EVENT_CHECKPOINT_FAILED:
        lvl = LOG_LEVEL_ERROR;
        what = "checkpoint write failed";
        break;
    case LOGMGR_EVENT_RETENTION_FAILED:
        lvl = LOG_LEVEL_ERROR;
        what = "retention failed";
        break;
    case LOGMGR_EVENT_REMOVE_FAILED:
        lvl = LOG_LEVEL_ERROR;
        what = "removal failed";
        break;
    case LOGMGR_EVENT_CLEAN_FAILED:
        lvl = LOG_LEVEL_ERROR;
        what = "log compaction failed (the log is left as it was)";
        break;
    }
    const struct plog_recovery_info *ri = ev->recovery;
    if (ev->type == LOGMGR_EVENT_LOG_OPENED && ri && ri->truncated_at >= 0) {
        /* Recovery cut a torn or corrupt tail: worth a line of its own. */
        log_event(LOG_LEVEL_WARN, "storage", "recovery_truncated",
                  LOG_FIELDS(LF_STR("topic", ev->topic), LF_INT("partition", ev->partition),
                             LF_INT("offset", ri->truncated_at),
                             LF_INT("bytes", ri->truncated_bytes),
                             LF_INT("segments_deleted", ri->segments_deleted)),
                  "recovery truncated %s-%d at offset %" PRId64 " (%" PRId64
                  " bytes of a torn or corrupt tail, %d segments deleted)",
                  ev->topic ? ev->topic : "", ev->partition, ri->truncated_at,
                  ri->truncated_bytes, (int)ri->segments_deleted);
        return;
    }
    if (log_enabled(lvl))
        log_msg(lvl, "storage", "%s: %s%s%d %s%s", what, ev->topic ? ev->topic : "",
                ev->topic ? "-" : "", ev->partition, ev->path ? ev->path : "",
                ev->err ? strerror(-ev->err) : "");
}

/* The soft descriptor limit goes up to the hard one before the descriptor
 * cache is sized from it; both are logged, and a limit too low for the cache
 * and a few hundred connections is called out. */
static void log_fd_limit(int64_t configured_cache)
{
    struct logmgr_fd_limit fl;
    if (logmgr_raise_fd_limit(&fl) < 0) {
        log_warn("broker", "cannot read RLIMIT_NOFILE: %s", strerror(errno));
        return;
    }
    int cache = configured_cache > 0 ? (int)configured_cache : logmgr_default_max_open_files();
    if (fl.err)
        log_warn("broker", "cannot raise the soft descriptor limit %lld to the hard limit %lld: %s",
                 fl.soft_before, fl.hard, strerror(-fl.err));
    log_info("broker", "descriptor limit: soft %lld (was %lld), hard %lld; log segment cache %d",
             fl.soft, fl.soft_before, fl.hard, cache);
    if (fl.soft >= 0 && fl.soft < 4096)
        log_warn("broker",
                 "descriptor limit %lld is low: log segments share a cache of %d descriptors, "
                 "so partitions beyond it reopen their files (raise the hard limit, "
                 "see docs/scaling.md)",
                 fl.soft, cache);
    if (fl.soft >= 0 && configured_cache > 0 && configured_cache + 256 > fl.soft)
        log_warn("broker", "log.open.files.max=%lld leaves fewer than 256 of %lld descriptors "
                 "for connections",
                 (long long)configured_cache, fl.soft);
}

struct log_totals {
    int64_t records, bytes;
};

static void add_log_totals(void *arg, const char *topic, int32_t partition, struct plog *log)
{
    (void)topic;
    (void)partition;
    struct log_totals *t = arg;
    t->records += plog_log_end_offset(log) - plog_log_start_offset(log);
    t->bytes += plog_size_bytes(log);
}

/* One line for start-up recovery: what was opened, what had to be checked and
 * cut, and how long it took (per log detail at debug). "records" counts the
 * offsets the logs hold (compaction may have removed some of them). */
static void log_recovery(struct logmgr *lm, const struct logmgr_open_stats *st)
{
    struct log_totals t = {0};
    logmgr_foreach(lm, add_log_totals, &t);
    log_event(LOG_LEVEL_INFO, "broker", "recovery",
              LOG_FIELDS(LF_INT("logs", st->logs), LF_INT("dirs", st->dirs),
                         LF_INT("segments", st->segments),
                         LF_INT("segments_scanned", st->segments_scanned),
                         LF_INT("indexes_rebuilt", st->indexes_rebuilt),
                         LF_INT("logs_truncated", st->logs_truncated),
                         LF_INT("truncated_bytes", st->truncated_bytes),
                         LF_INT("records", t.records), LF_INT("bytes", t.bytes),
                         LF_INT("elapsed_ms", st->elapsed_ms)),
              "opened %d logs in %d dirs (%d segments re-validated) in %" PRId64 " ms",
              st->logs, st->dirs, st->segments_scanned, st->elapsed_ms);
}

static void maybe_ready(struct bmain *m)
{
    if (m->ready_printed || !coordclient_registered(m->ctx.cc) || !coordclient_synced(m->ctx.cc))
        return;
    m->ready_printed = true;
    printf("weir-broker ready: broker %d kafka %s:%d (registered, epoch %" PRId64 ")\n",
           m->s.broker_id, m->s.advertised.host, kserver_port(m->srv),
           coordclient_broker_epoch(m->ctx.cc));
    fflush(stdout);
}

/* /health: ready once registered with current metadata and a valid lease, and
 * no __consumer_offsets partition is still loading. */
static bool broker_health(void *ud, char *reason, size_t len)
{
    struct bmain *m = ud;
    if (m->stopping) {
        snprintf(reason, len, "shutting down");
        return false;
    }
    if (!coordclient_registered(m->ctx.cc)) {
        snprintf(reason, len,
                 "not registered with the coordinator at %s:%d (fenced or unreachable)",
                 m->s.coord_host, m->s.coord_port);
        return false;
    }
    if (!coordclient_current(m->ctx.cc)) {
        snprintf(reason, len, "metadata not caught up with the coordinator yet");
        return false;
    }
    if (!coordclient_lease_valid(m->ctx.cc, clock_mono_ms())) {
        snprintf(reason, len,
                 "no heartbeat accepted by the coordinator within session.timeout.ms: "
                 "not acting as leader");
        return false;
    }
    struct gstore_stats gs;
    gstore_get_stats(m->ctx.gstore, &gs);
    if (gs.partitions_loading > 0) {
        snprintf(reason, len, "loading %d __consumer_offsets partitions", gs.partitions_loading);
        return false;
    }
    return true;
}

static void on_registered(void *ud, int64_t epoch)
{
    struct bmain *m = ud;
    replicas_reconcile(m->ctx.reps);
    repl_on_metadata(m->ctx.repl);
    gstore_on_metadata(m->ctx.gstore);
    maybe_ready(m);
}

/* A later slice of a reconcile pass created or removed logs: replication and
 * the offsets store take them up (a partition of __consumer_offsets whose log
 * arrives late is led, and loaded, only from then on). */
static void on_reconcile_progress(void *ud)
{
    struct bmain *m = ud;
    repl_on_metadata(m->ctx.repl);
    gstore_on_metadata(m->ctx.gstore);
}

static void on_metadata(void *ud)
{
    struct bmain *m = ud;
    replicas_reconcile(m->ctx.reps);
    repl_on_metadata(m->ctx.repl);
    gstore_on_metadata(m->ctx.gstore);
    maybe_ready(m);
}

/* The coordinator turned out to serve another cluster (or refused us for a
 * reason that retrying cannot fix): stop without a controlled shutdown, whose
 * requests it would refuse too. Nothing was deleted on its word. */
static void on_fatal(void *ud, const char *why)
{
    struct bmain *m = ud;
    log_error("broker", "%s; exiting", why);
    if (!m->fatal_code)
        m->fatal_code = EXIT_RUNTIME;
    event_base_loopbreak(m->base);
}

static void shutdown_done(void *ud)
{
    struct bmain *m = ud;
    event_base_loopbreak(m->base);
}

static void grace_expired(evutil_socket_t fd, short what, void *arg)
{
    struct bmain *m = arg;
    log_warn("broker", "controlled shutdown did not finish in time; exiting");
    event_base_loopbreak(m->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct bmain *m = arg;
    if (m->stopping) {
        event_base_loopbreak(m->base);
        return;
    }
    m->stopping = true;
    log_info("broker", "signal %d: controlled shutdown", (int)sig);
    struct timeval tv = {SHUTDOWN_GRACE_MS / 1000, (SHUTDOWN_GRACE_MS % 1000) * 1000};
    m->grace = evtimer_new(m->base, grace_expired, m);
    if (m->grace)
        evtimer_add(m->grace, &tv);
    coordclient_shutdown(m->ctx.cc, shutdown_done, m);
}

/* test.loop.stall.ms: a loop that stops turning, for the liveness tests
 * (docs/coordinator.md, "Heartbeats"). The heartbeat thread keeps running. */
static void on_stall_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    int64_t ms = *(const int64_t *)arg;
    log_warn("broker", "SIGUSR2: stalling the event loop for %" PRId64 " ms (test.loop.stall.ms)",
             ms);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            puts(WEIR_VERSION_LINE("weir-broker"));
            return 0;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct config *cfg = NULL;
    struct config_def *defs = NULL;
    char err[512] = "";
    int r = broker_config_new(&cfg, &defs);
    if (r < 0) {
        fprintf(stderr, "weir-broker: %s\n", strerror(-r));
        return EXIT_RUNTIME;
    }
    static struct bmain m;
    int code = EXIT_RUNTIME;
    struct wpool *pool = NULL;
    struct broker_metrics *bmetrics = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    struct event *sigstall = NULL; /* test.loop.stall.ms */
    int64_t stall_ms = 0;
    r = config_parse_args(cfg, argc, argv, err, sizeof(err));
    if (r == 0)
        r = broker_settings_resolve(cfg, &m.s, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "weir-broker: %s\n", err[0] ? err : strerror(-r));
        usage(stderr);
        code = EXIT_CONFIG;
        goto out;
    }
    enum log_level lvl;
    if (log_level_parse(config_get_string(cfg, "log.level"), &lvl) == 0)
        log_set_level(lvl);
    enum log_format fmt;
    if (log_format_parse(config_get_string(cfg, "log.format"), &fmt) == 0)
        log_set_format(fmt);

    if (proto_methods_check() < 0) {
        log_error("broker", "proto/methods.h does not match the generated RPC descriptors");
        goto out;
    }
    m.base = event_base_new();
    if (!m.base || looplag_new(m.base, "broker", &m.lag) < 0)
        goto out;
    /* Before the modules, which register their collectors as they start. */
    if (metrics_new(m.base, &m.ctx.metrics) < 0 ||
        metrics_register_process(m.ctx.metrics, "broker", WEIR_VERSION, WEIR_GIT_REVISION,
                                 m.lag) < 0)
        goto out;
    log_fd_limit(config_get_int(cfg, "log.open.files.max"));
    stall_ms = config_get_int(cfg, "test.loop.stall.ms");
    r = wpool_new(m.base, 2, &pool);
    if (r < 0) {
        log_error("broker", "worker pool: %s", strerror(-r));
        goto out;
    }
    struct logmgr_options lo;
    r = storage_config_logmgr_options(cfg, &lo);
    if (r < 0) {
        fprintf(stderr, "weir-broker: bad log.dirs\n");
        code = EXIT_CONFIG;
        goto out;
    }
    lo.on_event = on_logmgr_event;

    /* Whose data is this? Settled before logmgr_new(), whose recovery may
     * truncate torn tails: a broker pointed at the wrong directories or the
     * wrong cluster must change nothing. */
    char dir_cluster[METAPROPS_ID_BUF], cluster_id[METAPROPS_ID_BUF];
    if (identity_check_dirs(lo.dirs, lo.ndirs, m.s.broker_id, dir_cluster) < 0)
        goto out;
    r = identity_fetch_cluster_id(m.base, &m.s, cluster_id);
    if (r == -EINTR) {
        code = 0;
        goto out;
    }
    if (r < 0) {
        log_error("broker", "cannot learn the coordinator's cluster id: %s", strerror(-r));
        goto out;
    }
    if (identity_check_cluster(lo.dirs, lo.ndirs, cluster_id) < 0)
        goto out;
    if (identity_write_dirs(lo.dirs, lo.ndirs, m.s.broker_id, cluster_id) < 0)
        goto out;
    log_info("broker", "broker %d of cluster %s", m.s.broker_id, cluster_id);

    /* replicas_reconcile() sets each log's topic configuration once the
     * metadata is in; until then retention must not act on broker defaults. */
    lo.startup_retention_off = true;
    struct logmgr_open_stats st;
    r = logmgr_new(m.base, pool, &lo, &m.ctx.lm, &st);
    if (r < 0) {
        log_error("broker", "opening the logs: %s", strerror(-r));
        goto out;
    }
    log_recovery(m.ctx.lm, &st);

    m.ctx.base = m.base;
    m.ctx.s = &m.s;
    m.ctx.cfg = cfg;
    r = purg_new(m.base, "fetch", &m.ctx.fetches);
    if (r < 0)
        goto out;
    r = pstates_new(m.base, m.s.producer_id_expiration_ms, pool, &m.ctx.pstates);
    if (r < 0)
        goto out;
    r = pidalloc_new(&m.ctx, &m.ctx.pids);
    if (r < 0)
        goto out;
    if (kstats_new(&m.ctx.kstats) < 0)
        goto out;
    struct kserver_options so = {
        .host = m.s.listen.host,
        .port = m.s.listen.port,
        .max_request_bytes = m.s.socket_request_max_bytes,
        .max_in_flight = m.s.queued_max_requests,
        .idle_ms = m.s.connections_max_idle_ms,
        .on_request = dispatch_request,
        .on_close = dispatch_conn_closed,
        .on_reply = dispatch_reply_observed,
        .on_done = dispatch_request_done,
        .ud = &m.ctx,
    };
    r = kserver_new(m.base, &so, &m.srv);
    if (r < 0) {
        log_error("broker", "listening on %s:%d: %s", m.s.listen.host, m.s.listen.port,
                  strerror(-r));
        goto out;
    }
    if (m.s.advertised.port == 0)
        m.s.advertised.port = kserver_port(m.srv);
    struct coordclient_callbacks cb = {
        .on_registered = on_registered, .on_metadata = on_metadata, .on_fatal = on_fatal, .ud = &m};
    r = coordclient_new(m.base, &m.s, &cb, &m.ctx.cc);
    if (r < 0) {
        log_error("broker", "coordinator client: %s", strerror(-r));
        goto out;
    }
    coordclient_set_cluster_id(m.ctx.cc, cluster_id);
    r = replicas_new(m.s.broker_id, m.ctx.lm, m.ctx.cc, cfg, &m.ctx.reps);
    if (r < 0 || (r = replicas_set_loop(m.ctx.reps, m.base, on_reconcile_progress, &m)) < 0)
        goto out;
    struct repl_options ro = {.base = m.base,
                              .s = &m.s,
                              .lm = m.ctx.lm,
                              .cc = m.ctx.cc,
                              .pstates = m.ctx.pstates,
                              .on_visible = api_fetch_on_append,
                              .ud = &m.ctx};
    r = repl_new(&ro, &m.ctx.repl);
    if (r < 0) {
        log_error("broker", "replication listener: %s", strerror(-r));
        goto out;
    }
    replicas_set_repl(m.ctx.reps, m.ctx.repl);
    struct gstore_options go = {
        .num_partitions = m.s.offsets_topic_num_partitions,
        .replication_factor = m.s.offsets_topic_replication_factor,
        .retention_ms = m.s.offsets_retention_ms,
        .retention_check_ms = m.s.offsets_retention_check_interval_ms,
        .commit_timeout_ms = m.s.offsets_commit_timeout_ms,
        .load_slice_bytes = m.s.offsets_load_buffer_size,
    };
    r = gstore_new(&m.ctx, &go, &m.ctx.gstore);
    if (r < 0)
        goto out;
    r = api_groups_start(&m.ctx, m.ctx.gstore);
    if (r < 0)
        goto out;
    gstore_set_groups(m.ctx.gstore, m.ctx.groups);
    coordclient_set_replication_endpoint(m.ctx.cc, repl_advertised_host(m.ctx.repl),
                                         repl_port(m.ctx.repl));

    r = broker_metrics_new(&m.ctx, m.srv, pool, &bmetrics);
    if (r == 0)
        r = broker_metrics_register(bmetrics, m.ctx.metrics);
    if (r < 0)
        goto out;

    struct httpd_settings hs;
    r = httpd_settings_resolve(cfg, &hs, err, sizeof(err));
    if (r == 0 && hs.enabled)
        r = httpd_new(m.base, &hs, m.ctx.metrics, broker_health, &m, &m.httpd, err, sizeof(err));
    if (r < 0) {
        log_error("broker", "%s", err[0] ? err : strerror(-r));
        goto out;
    }
    if (m.httpd)
        log_info("broker", "metrics and health on http://%s:%d/metrics", hs.host,
                 httpd_port(m.httpd));

    sigterm = evsignal_new(m.base, SIGTERM, on_signal, &m);
    sigint = evsignal_new(m.base, SIGINT, on_signal, &m);
    if (!sigterm || !sigint)
        goto out;
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    if (stall_ms > 0) {
        sigstall = evsignal_new(m.base, SIGUSR2, on_stall_signal, &stall_ms);
        if (!sigstall)
            goto out;
        evsignal_add(sigstall, NULL);
    }
    log_info("broker", "broker %d listening on %s:%d, replication %s:%d, coordinator %s:%d",
             m.s.broker_id, m.s.listen.host, kserver_port(m.srv), repl_advertised_host(m.ctx.repl),
             repl_port(m.ctx.repl), m.s.coord_host, m.s.coord_port);

    event_base_dispatch(m.base);
    code = m.fatal_code;

out:
    httpd_free(m.httpd); /* no scrape runs past here */
    gstore_shutdown(m.ctx.gstore); /* answers appends waiting for the HW */
    api_groups_stop(&m.ctx);         /* answers parked group requests */
    purg_free(m.ctx.fetches); /* answers parked fetches */
    m.ctx.fetches = NULL;
    repl_free(m.ctx.repl); /* answers parked produces while the server still exists */
    m.ctx.repl = NULL;
    pidalloc_shutdown(m.ctx.pids); /* answers queued InitProducerIds */
    kserver_free(m.srv);
    coordclient_free(m.ctx.cc);
    pidalloc_free(m.ctx.pids);
    pstates_free(m.ctx.pstates);
    gstore_free(m.ctx.gstore);
    replicas_free(m.ctx.reps);
    if (m.ctx.lm) {
        int sr = logmgr_shutdown(m.ctx.lm);
        if (sr < 0) {
            log_error("broker", "log shutdown: %s", strerror(-sr));
            if (code == 0)
                code = EXIT_RUNTIME;
        }
        logmgr_free(m.ctx.lm);
    }
    wpool_free(pool);
    metrics_free(m.ctx.metrics);
    broker_metrics_free(bmetrics); /* after the registry: its collectors point here */
    kstats_free(m.ctx.kstats);
    looplag_free(m.lag);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sigstall)
        event_free(sigstall);
    if (m.grace)
        event_free(m.grace);
    if (m.base)
        event_base_free(m.base);
    config_free(cfg);
    free(defs);
    if (code == 0)
        log_info("broker", "stopped");
    return code;
}
