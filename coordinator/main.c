/* weir-coordinator: the cluster's metadata service. Parses the configuration,
 * takes the data directory, checks its identity (meta.properties), recovers the
 * state from the metadata log, serves the Coordinator RPC service until
 * SIGTERM/SIGINT (exit 0) or a metadata log failure (exit 1).
 *
 *   weir-coordinator --config coordinator.properties [--format-if-empty] [--override key=value]...
 *   weir-coordinator format --config coordinator.properties (--cluster-id ID | --random)
 *
 * A data directory gets its cluster id once, when it is formatted: by `format`,
 * or by --format-if-empty on a directory with no meta.properties and an empty
 * metadata log. Formatting writes the Bootstrap record (the cluster id) to the
 * metadata log, durably, and then meta.properties; every start checks that the
 * two agree. A directory that was never formatted is refused, so a wiped or
 * mistyped data.dir never silently becomes a new cluster.
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
#include "common/httpd.h"
#include "common/log.h"
#include "common/looplag.h"
#include "common/metrics.h"
#include "common/metaprops.h"
#include "common/wpool.h"
#include "coordinator/controller.h"
#include "coordinator/coord_config.h"
#include "coordinator/mlog.h"
#include "coordinator/service.h"
#include "common/meta/state.h"
#include "common/version.h"

#define EXIT_RUNTIME 1 /* data directory, recovery, listen, metadata log failure */
#define EXIT_CONFIG  2 /* command line or configuration */

struct coord_main {
    struct event_base *base;
    struct coord_service *svc;
    bool ready; /* on_ready ran */
    const struct coord_settings *cfg;
    int exit_code;
    int signal;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weir-coordinator --config FILE [--format-if-empty] [--override key=value]...\n"
            "       weir-coordinator --override data.dir=DIR [--override key=value]...\n"
            "       weir-coordinator format --config FILE (--cluster-id ID | --random)\n"
            "                        [--override key=value]...\n"
            "       weir-coordinator --version\n");
}

/* What the command line asked for besides the configuration. */
struct coord_args {
    bool format;            /* the `format` command */
    bool format_if_empty;   /* --format-if-empty */
    bool random;            /* format --random */
    const char *cluster_id; /* format --cluster-id */
};

/* Take our own arguments out of @argv (the rest is --config/--override for the
 * config registry). Returns the new argc, or -1 having printed why. */
static int parse_own_args(int argc, char **argv, struct coord_args *ret)
{
    struct coord_args a = {0};
    int out = 1;
    for (int i = 1; i < argc; i++) {
        if (i == 1 && strcmp(argv[i], "format") == 0) {
            a.format = true;
        } else if (strcmp(argv[i], "--format-if-empty") == 0) {
            a.format_if_empty = true;
        } else if (strcmp(argv[i], "--random") == 0) {
            a.random = true;
        } else if (strcmp(argv[i], "--cluster-id") == 0 ||
                   strncmp(argv[i], "--cluster-id=", 13) == 0) {
            if (argv[i][12] == '=') {
                a.cluster_id = argv[i] + 13;
            } else if (i + 1 < argc) {
                a.cluster_id = argv[++i];
            } else {
                fprintf(stderr, "weir-coordinator: --cluster-id needs a value\n");
                return -1;
            }
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    if (a.format && a.format_if_empty) {
        fprintf(stderr, "weir-coordinator: --format-if-empty is for starting, not for format\n");
        return -1;
    }
    if (!a.format && (a.random || a.cluster_id)) {
        fprintf(stderr,
                "weir-coordinator: --cluster-id and --random belong to the format command\n");
        return -1;
    }
    if (a.format && !a.random == !a.cluster_id) {
        fprintf(stderr,
                "weir-coordinator: format needs exactly one of --cluster-id ID and --random\n");
        return -1;
    }
    if (a.cluster_id && !metaprops_id_valid(a.cluster_id)) {
        fprintf(stderr,
                "weir-coordinator: --cluster-id '%s' is not a cluster id (22 base64url characters "
                "encoding a UUID, such as one printed by 'weir-coordinator format --random')\n",
                a.cluster_id);
        return -1;
    }
    *ret = a;
    return out;
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

/* Append the Bootstrap record naming @cluster_id to the recovered, empty log
 * @log, durably, and apply it to @s. */
static int write_bootstrap(struct mlog *log, struct cstate *s, const char *cluster_id)
{
    struct cctl_ctx ctx = {0};
    cctl_config_defaults(&ctx.cfg);
    struct cstate_records recs;
    cstate_records_init(&recs);
    struct cctl_error err = {0};
    int r = cctl_bootstrap(s, &ctx, cluster_id, &recs, &err);
    if (r == 0 && (err.code != 0 || recs.n != 1))
        r = -EINVAL;
    int64_t off = -1;
    if (r == 0)
        r = mlog_append_sync(log, recs.v[0].data, recs.v[0].len, &off);
    char why[256] = "";
    if (r == 0)
        r = cstate_apply_bytes(s, off, recs.v[0].data, recs.v[0].len, why, sizeof(why));
    if (r < 0)
        log_error("coordinator", "cannot write the bootstrap record for cluster %s: %s", cluster_id,
                  why[0]     ? why
                  : err.code ? err.message
                             : strerror(-r));
    cstate_records_deinit(&recs);
    return r;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Format @dir, whose metadata log is recovered in @log/@s and which has no
 * meta.properties: write the Bootstrap record (unless the log already holds the
 * wanted cluster id: an interrupted format being finished), then meta.properties.
 * @cluster_id NULL: a new random one. Refuses, having logged one line, a log
 * that already belongs to another cluster or holds records without an id. */
static int format_dir(const struct coord_settings *cfg, struct mlog *log, struct cstate *s,
                      const char *cluster_id, const char *how)
{
    const char *dir = cfg->data_dir;
    char gen[METAPROPS_ID_BUF];
    if (s->cluster_id) {
        if (!cluster_id || strcmp(cluster_id, s->cluster_id) != 0) {
            log_error("coordinator",
                      "data.dir '%s' has no meta.properties but its metadata log belongs to "
                      "cluster %s: refusing to %s it (to keep that identity: weir-coordinator "
                      "format --config FILE --cluster-id %s)",
                      dir, s->cluster_id, how, s->cluster_id);
            return -EEXIST;
        }
    } else if (s->offset >= 0) {
        log_error("coordinator",
                  "data.dir '%s' has no meta.properties and its metadata log holds records up to "
                  "offset %" PRId64 " but no cluster id: refusing to %s it",
                  dir, s->offset, how);
        return -EEXIST;
    } else {
        if (!cluster_id) {
            metaprops_random_id(gen);
            cluster_id = gen;
        }
        int r = write_bootstrap(log, s, cluster_id);
        if (r < 0)
            return r;
    }
    struct metaprops mp = {.version = 1, .node_id = cfg->node_id};
    snprintf(mp.cluster_id, sizeof(mp.cluster_id), "%s", cluster_id);
    metaprops_random_id(mp.directory_id);
    int r = metaprops_write(dir, &mp);
    if (r < 0) {
        log_error("coordinator", "cannot write %s/%s: %s", dir, METAPROPS_FILE, strerror(-r));
        return r;
    }
    log_info("coordinator", "formatted data.dir '%s': cluster %s, node %d, directory %s", dir,
             cluster_id, (int)cfg->node_id, mp.directory_id);
    return 0;
}

/* The data directory's identity, before anything is served: meta.properties
 * (@mr: 0 read into @mp, or -ENOENT) against node.id and the metadata log;
 * formats when asked to. 0, or -errno having logged one line. */
static int settle_identity(const struct coord_args *a, const struct coord_settings *cfg, int mr,
                           const struct metaprops *mp, struct mlog *log, struct cstate *s)
{
    const char *dir = cfg->data_dir;
    if (mr == -ENOENT)
        return format_dir(cfg, log, s, a->cluster_id,
                          a->format ? "format" : "format (it is not empty)");
    if (!s->cluster_id) {
        log_error("coordinator",
                  "data.dir '%s': meta.properties names cluster %s but the metadata log has no "
                  "cluster id (was %s/metadata removed?); refusing to start",
                  dir, mp->cluster_id, dir);
        return -EINVAL;
    }
    if (strcmp(s->cluster_id, mp->cluster_id) != 0) {
        log_error("coordinator",
                  "data.dir '%s': meta.properties names cluster %s but the metadata log belongs "
                  "to cluster %s; refusing to start",
                  dir, mp->cluster_id, s->cluster_id);
        return -EINVAL;
    }
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

static bool coord_health(void *ud, char *reason, size_t len)
{
    struct coord_main *m = ud;
    if (m->signal) {
        snprintf(reason, len, "shutting down");
        return false;
    }
    if (!m->svc || !m->ready) {
        snprintf(reason, len, "starting: metadata log not yet durable");
        return false;
    }
    return coord_service_health(m->svc, reason, len);
}

static void on_ready(struct coord_service *svc, void *ud)
{
    struct coord_main *m = ud;
    m->ready = true;
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
        if (strcmp(argv[i], "--version") == 0) {
            puts(WEIR_VERSION_LINE("weir-coordinator"));
            return 0;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    struct coord_args args;
    argc = parse_own_args(argc, argv, &args);
    if (argc < 0) {
        usage(stderr);
        return EXIT_CONFIG;
    }

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
    log_set_format(cfg.log_format);

    int exit_code = EXIT_RUNTIME;
    struct mlog *log = NULL;
    struct cstate *state = NULL;
    struct event_base *base = NULL;
    struct looplag *lag = NULL;
    struct metrics *metrics = NULL;
    struct httpd *httpd = NULL;
    struct wpool *pool = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    struct coord_main m = {.cfg = &cfg};

    /* An unformatted directory is refused before anything is created in it. */
    int lock_fd = -1;
    if (!args.format && !args.format_if_empty && !file_exists(cfg.data_dir, METAPROPS_FILE)) {
        log_error("coordinator",
                  "data.dir '%s' is not formatted (no %s): refusing to start; format it with "
                  "'weir-coordinator format --config FILE --cluster-id ID' (or --random), or "
                  "start with --format-if-empty if it is a new, empty directory",
                  cfg.data_dir, METAPROPS_FILE);
        goto out;
    }
    lock_fd = take_data_dir(cfg.data_dir);
    if (lock_fd < 0)
        goto out;
    struct metaprops mp = {0};
    char merr[512] = "";
    int mr = metaprops_read(cfg.data_dir, &mp, merr, sizeof(merr));
    if (mr < 0 && mr != -ENOENT) {
        log_error("coordinator", "data.dir '%s': %s/%s is not usable (%s); refusing to start",
                  cfg.data_dir, cfg.data_dir, METAPROPS_FILE, merr[0] ? merr : strerror(-mr));
        goto out;
    }
    if (mr == 0 && args.format) {
        log_error("coordinator",
                  "data.dir '%s' is already formatted (cluster %s, node %d): refusing to format "
                  "it again",
                  cfg.data_dir, mp.cluster_id, (int)mp.node_id);
        goto out;
    }
    if (mr == -ENOENT && cfg.n_voters > 1 && !args.cluster_id) {
        log_error("coordinator",
                  "data.dir '%s' is not formatted: a quorum voter is formatted with the "
                  "cluster's id, the same on every voter ('weir-coordinator format --config FILE "
                  "--cluster-id ID'), or the voters' logs would disagree from their first record",
                  cfg.data_dir);
        goto out;
    }
    if (mr == -ENOENT && !args.format && !args.format_if_empty) {
        log_error("coordinator", "data.dir '%s' is not formatted (no %s): refusing to start",
                  cfg.data_dir, METAPROPS_FILE);
        goto out;
    }
    if (mr == 0 && mp.node_id != cfg.node_id) {
        log_error("coordinator",
                  "data.dir '%s' belongs to node %d (meta.properties) but node.id is %d; "
                  "refusing to start",
                  cfg.data_dir, (int)mp.node_id, (int)cfg.node_id);
        goto out;
    }
    char log_dir[4096];
    if ((size_t)snprintf(log_dir, sizeof(log_dir), "%s/metadata", cfg.data_dir) >=
        sizeof(log_dir)) {
        log_error("coordinator", "data.dir '%s' is too long", cfg.data_dir);
        goto out;
    }
    if (recover(log_dir, &cfg, &log, &state) < 0)
        goto out;
    if (settle_identity(&args, &cfg, mr, &mp, log, state) < 0) {
        cstate_free(state);
        state = NULL;
        goto out;
    }
    if (args.format) {
        printf("weir-coordinator: formatted %s: cluster %s, node %d\n", cfg.data_dir,
               state->cluster_id, (int)cfg.node_id);
        fflush(stdout);
        cstate_free(state);
        state = NULL;
        exit_code = 0;
        goto out;
    }

    base = event_base_new();
    if (!base || wpool_new(base, 1, &pool) < 0 || mlog_attach(log, base, pool) < 0) {
        log_error("coordinator", "cannot start the event loop or worker pool");
        cstate_free(state);
        goto out;
    }
    m.base = base;
    if (looplag_new(base, "coordinator", &lag) < 0) {
        log_error("coordinator", "cannot start the event-loop lag monitor");
        cstate_free(state);
        goto out;
    }
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
    if (cfg.n_voters > 1 && coord_service_open_quorum(m.svc, cfg.data_dir) < 0)
        goto out;
    r = coord_service_start(m.svc, on_ready, &m);
    if (r < 0) {
        log_error("coordinator", "cannot start: %s", strerror(-r));
        goto out;
    }
    struct httpd_settings hs;
    r = httpd_settings_resolve(conf, &hs, err, sizeof(err));
    if (r == 0 && hs.enabled) {
        if (metrics_new(base, &metrics) < 0 ||
            metrics_register_process(metrics, "coordinator", WEIR_VERSION, WEIR_GIT_REVISION,
                                     lag) < 0 ||
            coord_service_register_metrics(m.svc, metrics) < 0) {
            log_error("coordinator", "cannot set up metrics: out of memory");
            goto out;
        }
        r = httpd_new(base, &hs, metrics, coord_health, &m, &httpd, err, sizeof(err));
        if (r == 0)
            log_info("coordinator", "metrics and health on http://%s:%d/metrics", hs.host,
                     httpd_port(httpd));
    }
    if (r < 0) {
        log_error("coordinator", "%s", err[0] ? err : strerror(-r));
        goto out;
    }
    event_base_dispatch(base);
    exit_code = m.exit_code;

out:
    httpd_free(httpd);
    metrics_free(metrics);
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
    looplag_free(lag);
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
