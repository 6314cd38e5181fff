/* identity: meta.properties of the broker's log directories, checked against
 * broker.id and the coordinator's cluster id before any log is opened. */
#include "broker/identity.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "methods.h"

#define RETRY_MS        500
#define CALL_TIMEOUT_MS 3000
#define NAG_EVERY       20 /* log a "still waiting" line every this many tries */

int identity_check_dirs(const char *const *dirs, size_t ndirs, int32_t broker_id,
                        char ret_cluster_id[METAPROPS_ID_BUF])
{
    char cluster[METAPROPS_ID_BUF] = "";
    const char *cluster_dir = NULL;
    for (size_t i = 0; i < ndirs; i++) {
        struct metaprops mp;
        char err[512] = "";
        int r = metaprops_read(dirs[i], &mp, err, sizeof(err));
        if (r == -ENOENT || r == -ENOTDIR)
            continue;
        if (r < 0) {
            log_error("broker", "log dir %s: %s/%s is not usable (%s); refusing to start", dirs[i],
                      dirs[i], METAPROPS_FILE, err[0] ? err : strerror(-r));
            return -EINVAL;
        }
        if (mp.node_id != broker_id) {
            log_error("broker",
                      "log dir %s belongs to broker %" PRId32 " (meta.properties) but this is "
                      "broker.id %" PRId32 "; refusing to start",
                      dirs[i], mp.node_id, broker_id);
            return -EINVAL;
        }
        if (cluster_dir && strcmp(cluster, mp.cluster_id) != 0) {
            log_error("broker",
                      "log dir %s belongs to cluster %s but log dir %s to cluster %s; refusing "
                      "to start",
                      dirs[i], mp.cluster_id, cluster_dir, cluster);
            return -EINVAL;
        }
        if (!cluster_dir) {
            memcpy(cluster, mp.cluster_id, sizeof(cluster));
            cluster_dir = dirs[i];
        }
    }
    memcpy(ret_cluster_id, cluster, METAPROPS_ID_BUF);
    return 0;
}

int identity_check_cluster(const char *const *dirs, size_t ndirs, const char *cluster_id)
{
    for (size_t i = 0; i < ndirs; i++) {
        struct metaprops mp;
        if (metaprops_read(dirs[i], &mp, NULL, 0) < 0)
            continue; /* identity_check_dirs() judged these */
        if (strcmp(mp.cluster_id, cluster_id) != 0) {
            log_error("broker",
                      "log dir %s belongs to cluster %s but the coordinator serves cluster %s; "
                      "refusing to start (nothing was changed)",
                      dirs[i], mp.cluster_id, cluster_id);
            return -EINVAL;
        }
    }
    return 0;
}

int identity_write_dirs(const char *const *dirs, size_t ndirs, int32_t broker_id,
                        const char *cluster_id)
{
    for (size_t i = 0; i < ndirs; i++) {
        struct metaprops mp;
        if (metaprops_read(dirs[i], &mp, NULL, 0) == 0)
            continue;
        int r = fsutil_mkdirs(dirs[i], 0755);
        if (r == 0) {
            mp = (struct metaprops){.version = 1, .node_id = broker_id};
            snprintf(mp.cluster_id, sizeof(mp.cluster_id), "%s", cluster_id);
            metaprops_random_id(mp.directory_id);
            r = metaprops_write(dirs[i], &mp);
        }
        if (r < 0) {
            log_error("broker", "log dir %s: cannot write %s: %s", dirs[i], METAPROPS_FILE,
                      strerror(-r));
            return r;
        }
        log_info("broker",
                 "log dir %s now belongs to cluster %s, broker %" PRId32 " (directory %s)", dirs[i],
                 cluster_id, broker_id, mp.directory_id);
    }
    return 0;
}

/* ---- asking the coordinator --------------------------------------------------------- */

struct fetch {
    struct event_base *base;
    struct rpc_client *rpc;
    struct event *retry;
    const struct broker_settings *s;
    struct coordaddr addr; /* coordinator.connect: any voter answers */
    char cluster_id[METAPROPS_ID_BUF];
    int result; /* 1 while waiting */
    int tries;
};

static void fetch_send(struct fetch *f);

static void fetch_retry(evutil_socket_t fd, short what, void *arg)
{
    fetch_send(arg);
}

static void fetch_later(struct fetch *f, const char *why)
{
    if (++f->tries % NAG_EVERY == 1)
        log_warn("broker", "waiting for the coordinator %s to tell its cluster id: %s",
                 rpc_client_peer(f->rpc), why);
    /* A list of voters: ask the next one (any voter knows the cluster id). */
    if (f->addr.n > 1) {
        coordaddr_advance(&f->addr);
        const struct coordaddr_entry *e = coordaddr_current(&f->addr);
        rpc_client_retarget(f->rpc, e->host, e->port, 0);
    }
    struct timeval tv = {0, RETRY_MS * 1000};
    evtimer_add(f->retry, &tv);
}

static void on_describe(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                        void *ud)
{
    struct fetch *f = ud;
    if (f->result != 1)
        return;
    if (status != RPC_OK) {
        fetch_later(f, errmsg ? errmsg : "no answer");
        return;
    }
    const Weir__Coord__DescribeClusterResponse *resp =
        (const Weir__Coord__DescribeClusterResponse *)msg;
    if (!resp->cluster_id || !metaprops_id_valid(resp->cluster_id)) {
        fetch_later(f, "it has no valid cluster id");
        return;
    }
    snprintf(f->cluster_id, sizeof(f->cluster_id), "%s", resp->cluster_id);
    f->result = 0;
    event_base_loopbreak(f->base);
}

static void fetch_send(struct fetch *f)
{
    Weir__Coord__DescribeClusterRequest req = WEIR__COORD__DESCRIBE_CLUSTER_REQUEST__INIT;
    int r = rpc_client_call(f->rpc, COORD_M_DESCRIBE_CLUSTER, &req.base, CALL_TIMEOUT_MS,
                            on_describe, f);
    if (r < 0)
        fetch_later(f, strerror(-r));
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct fetch *f = arg;
    log_info("broker", "signal %d while waiting for the coordinator: exiting", (int)sig);
    f->result = -EINTR;
    event_base_loopbreak(f->base);
}

int identity_fetch_cluster_id(struct event_base *base, const struct broker_settings *s,
                              char ret_cluster_id[METAPROPS_ID_BUF])
{
    struct fetch f = {.base = base, .s = s, .addr = s->coord, .result = 1};
    struct event *sigterm = evsignal_new(base, SIGTERM, on_stop_signal, &f);
    struct event *sigint = evsignal_new(base, SIGINT, on_stop_signal, &f);
    f.retry = evtimer_new(base, fetch_retry, &f);
    struct rpc_client_options o = {0};
    int r = -ENOMEM;
    if (sigterm && sigint && f.retry && evsignal_add(sigterm, NULL) == 0 &&
        evsignal_add(sigint, NULL) == 0)
        r = rpc_client_new(base, s->coord_host, s->coord_port,
                           &weir__coord__coordinator__descriptor, &o, &f.rpc);
    if (r == 0) {
        fetch_send(&f);
        while (f.result == 1)
            if (event_base_dispatch(base) < 0)
                break;
        r = f.result == 1 ? -EIO : f.result;
    } else {
        log_error("broker", "coordinator client: %s", strerror(-r));
    }
    /* Pending calls are completed on free, and ignored: f.result is no longer 1. */
    f.result = r;
    rpc_client_free(f.rpc);
    if (f.retry)
        event_free(f.retry);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (r == 0)
        memcpy(ret_cluster_id, f.cluster_id, METAPROPS_ID_BUF);
    return r;
}
