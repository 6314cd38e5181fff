/* weir-coordinator: the cluster's metadata service. Parses the configuration,
 * takes the data directory, recovers the state from the metadata log, serves the
 * Coordinator RPC service until SIGTERM/SIGINT (exit 0) or a metadata log failure
 * (exit 1).
 *
 *   weir-coordinator --config coordinator.properties [--override key=value]...
 *
 * Prints exactly one line on stdout, once it serves requests:
 *   weir-coordinator ready: node 1 listening on 127.0.0.1:2181 (metadata offset 0)
 * Everything else goes to stderr through the log. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/wpool.h"
#include "coordinator/coord_config.h"
#include "coordinator/mlog.h"
#include "coordinator/service.h"
#include "common/meta/state.h"

#define EXIT_RUNTIME 1 /* data directory, recovery, listen, metadata log failure */
#define EXIT_CONFIG  2 /* command line or configuration */

struct coord_main {
    struct event_base *base;
    struct coord_service *svc;
    const struct coord_settings *cfg;
    int exit_code;
    int signal;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: weir-coordinator --config FILE [--override key=value]...\n"
               "       weir-coordinator --override data.dir=DIR [--override key=value]...\n");
}

/* flock data.dir/.lock for the life of the process, so a second coordinator on
 * the same directory refuses to start instead of corrupting the log. Returns
 * the descriptor, or -1 having logged why. */
static int take_data_dir(const char *dir)
{
    int r = fsutil_mkdirs(dir, 0755);
    if (r < 0) {
        log_error("coordinator", "data.dir '%s' cannot be created: %s", dir, strerror(-r));
        return -1;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/.lock", dir) >= sizeof(path)) {
        log_error("coordinator", "data.dir '%s' is too long", dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("coordinator", "data.dir '%s' is not usable: cannot create %s: %s", dir, path,
                  strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            log_error("coordinator",
                      "data.dir '%s' is locked by another running coordinator; refusing to start",
                      dir);
        else
            log_error("coordinator", "cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* A directory we cannot write would only fail at the first append. */
    if (access(dir, W_OK | X_OK) < 0) {
        log_error("coordinator", "data.dir '%s' is not writable: %s", dir, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int replay_one(int64_t offset, const uint8_t *data, size_t len, void *ud)
{
    struct cstate *s = ud;
    char why[256] = "";
    int r = cstate_apply_bytes(s, offset, data, len, why, sizeof(why));
    if (r < 0) {
        char desc[256];
        cstate_record_format_bytes(data, len, desc, sizeof(desc));
        log_error("coordinator", "metadata record at offset %" PRId64 " does not apply (%s): %s",
                  offset, desc, why[0] ? why : strerror(-r));
    }
    return r;
}

/* Open the log and rebuild the state: newest valid snapshot + the records after
 * it. One log line says what recovery found and did. */
static int recover(const char *log_dir, const struct coord_settings *cfg, struct mlog **ret_log,
                   struct cstate **ret_state)
{
    struct mlog_options mo;
    mlog_options_defaults(&mo);
    mo.snapshot_interval_records = cfg->snapshot_interval_records;
    mo.max_record_bytes = cfg->max_record_bytes;
    if (mo.max_pending_bytes < (size_t)mo.max_record_bytes * 4)
        mo.max_pending_bytes = (size_t)mo.max_record_bytes * 4;
    /* The service holds mutations at 64 MiB unflushed; the log's own cap is a
     * backstop well above that plus one large request. */
    if (mo.max_pending_bytes < (size_t)256 * 1024 * 1024)
        mo.max_pending_bytes = (size_t)256 * 1024 * 1024;

    struct mlog *log = NULL;
    struct mlog_recovery_info info;
    int r = mlog_open(log_dir, &mo, &log, &info);
    if (r < 0) {
        if (r == -EBUSY)
            log_error("coordinator", "metadata log %s is in use by another process", log_dir);
        else
            log_error("coordinator", "cannot open the metadata log in %s: %s", log_dir,
                      strerror(-r));
        return r;
    }
    char desc[512];
    mlog_recovery_describe(&info, desc, sizeof(desc));
    if (info.dropped_valid_records > 0 || info.snapshots_corrupt > 0)
        log_error("coordinator", "metadata log recovery: %s", desc);
    else if (info.damage != MLOG_DAMAGE_NONE)
        log_warn("coordinator", "metadata log recovery: %s", desc);
    else
        log_info("coordinator", "metadata log recovery: %s", desc);

    struct cstate *s = NULL;
    const uint8_t *snap;
    size_t snap_len;
    int64_t snap_off;
    r = mlog_recovered_snapshot(log, &snap, &snap_len, &snap_off);
    if (r == 0) {
        char why[256] = "";
        r = cstate_snapshot_decode(snap, snap_len, &s, why, sizeof(why));
        if (r < 0)
            log_error("coordinator", "snapshot at offset %" PRId64 " does not decode: %s", snap_off,
                      why[0] ? why : strerror(-r));
        else if (s->offset != snap_off - 1) {
            log_error("coordinator",
                      "snapshot at offset %" PRId64 " holds state up to offset %" PRId64, snap_off,
                      s->offset);
            r = -EBADMSG;
        }
        mlog_release_recovered_snapshot(log);
    } else if (r == -ENOENT) {
        r = cstate_new(&s);
    }
    if (r == 0)
        r = mlog_replay(log, replay_one, s);
    if (r < 0) {
        cstate_free(s);
        mlog_close(log);
        return r;
    }
    log_info("coordinator",
             "recovered metadata state at offset %" PRId64 ": %zu brokers, %zu topics, %" PRIu64
             " partitions",
             s->offset, s->n_brokers, s->n_topics, s->n_partitions);
    *ret_log = log;
    *ret_state = s;
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct coord_main *m = arg;
    if (m->signal)
        return;
    m->signal = (int)sig;
    log_info("coordinator", "received %s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(m->base);
}

static void on_fatal(void *ud, const char *why)
{
    struct coord_main *m = ud;
    (void)why; /* the service logged it */
    m->exit_code = EXIT_RUNTIME;
    event_base_loopbreak(m->base);
}

static void on_ready(struct coord_service *svc, void *ud)
{
    struct coord_main *m = ud;
    char where[COORD_CONFIG_MAX_LISTENERS * (COORD_CONFIG_HOST_MAX + 16)];
    size_t off = 0;
    where[0] = '\0';
    for (size_t i = 0; i < m->cfg->n_listeners; i++) {
        const struct coord_listener *l = &m->cfg->listeners[i];
        const char *host = l->host[0] ? l->host : "0.0.0.0";
        bool v6 = strchr(host, ':') != NULL;
        int n = snprintf(where + off, sizeof(where) - off, "%s%s%s%s:%d", i ? "," : "",
                         v6 ? "[" : "", host, v6 ? "]" : "", coord_service_port(svc, i));
        if (n < 0 || (size_t)n >= sizeof(where) - off)
            break;
        off += (size_t)n;
    }
    log_info("coordinator", "cluster %s, node %d ready on %s",
             coord_service_cluster_id(svc) ? coord_service_cluster_id(svc) : "?",
             (int)m->cfg->node_id, where);
    printf("weir-coordinator ready: node %d listening on %s (metadata offset %" PRId64 ")\n",
           (int)m->cfg->node_id, where, coord_service_committed_offset(svc));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    struct config *conf = NULL;
    int r = config_new(coord_config_defs, coord_config_ndefs, &conf);
    if (r < 0) {
        fprintf(stderr, "weir-coordinator: %s\n", strerror(-r));
        return EXIT_CONFIG;
    }
    char err[1024] = "";
    struct coord_settings cfg;
    r = config_parse_args(conf, argc, argv, err, sizeof(err));
    if (r == 0)
        r = coord_config_resolve(conf, &cfg, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "weir-coordinator: %s\n", err[0] ? err : strerror(-r));
        usage(stderr);
        config_free(conf);
        return EXIT_CONFIG;
    }
    log_set_level(cfg.log_level);

    int exit_code = EXIT_RUNTIME;
    struct mlog *log = NULL;
    struct cstate *state = NULL;
    struct event_base *base = NULL;
    struct wpool *pool = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    struct coord_main m = {.cfg = &cfg};

    int lock_fd = take_data_dir(cfg.data_dir);
    if (lock_fd < 0)
        goto out;
    char log_dir[4096];
    if ((size_t)snprintf(log_dir, sizeof(log_dir), "%s/metadata", cfg.data_dir) >=
        sizeof(log_dir)) {
        log_error("coordinator", "data.dir '%s' is too long", cfg.data_dir);
        goto out;
    }
    if (recover(log_dir, &cfg, &log, &state) < 0)
        goto out;

    base = event_base_new();
    if (!base || wpool_new(base, 1, &pool) < 0 || mlog_attach(log, base, pool) < 0) {
        log_error("coordinator", "cannot start the event loop or worker pool");
        cstate_free(state);
        goto out;
    }
    m.base = base;
    sigterm = evsignal_new(base, SIGTERM, on_signal, &m);
    sigint = evsignal_new(base, SIGINT, on_signal, &m);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0) {
        log_error("coordinator", "cannot install signal handlers");
        cstate_free(state);
        goto out;
    }

    struct coord_service_options so = {.settings = &cfg, .on_fatal = on_fatal, .fatal_ud = &m};
    r = coord_service_new(base, log, state, &so, &m.svc);
    state = NULL; /* owned by the service now, also on failure */
    if (r < 0) {
        log_error("coordinator", "cannot start the service: %s", strerror(-r));
        goto out;
    }
    r = coord_service_start(m.svc, on_ready, &m);
    if (r < 0) {
        log_error("coordinator", "cannot start: %s", strerror(-r));
        goto out;
    }
    event_base_dispatch(base);
    exit_code = m.exit_code;

out:
    if (m.svc) {
        int sr = coord_service_stop(m.svc);
        if (sr < 0)
            exit_code = EXIT_RUNTIME;
    }
    if (log && m.svc) {
        struct mlog_stats st;
        mlog_get_stats(log, &st);
        log_info("coordinator",
                 "metadata log this run: %" PRId64 " records in %" PRId64
                 " groups (largest %" PRId64 "), %" PRId64 " snapshots",
                 st.records, st.groups, st.max_group_records, st.snapshots);
    }
    /* Close the log while the service can still take its last callbacks. */
    if (log)
        mlog_close(log);
    coord_service_free(m.svc);
    wpool_free(pool);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (base)
        event_base_free(base);
    if (lock_fd >= 0)
        close(lock_fd);
    config_free(conf);
    if (exit_code == 0)
        log_info("coordinator", "stopped cleanly");
    else
        log_error("coordinator", "exiting with status %d", exit_code);
    return exit_code;
}
