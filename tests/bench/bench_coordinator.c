/* bench_coordinator: weir-coordinator as a real process, measured from outside.
 *
 *  1. Metadata changes per second with fsync: topic creations (1 partition, RF 1)
 *     from 1 client with one request in flight, then from 8 clients with one each.
 *     The coordinator's own count of log groups (= fdatasyncs) against records
 *     shows whether group commit works: with 8 clients, records per group > 1.
 *  2. Heartbeats per second for 1,000 registered brokers, from 8 connections with
 *     32 heartbeats in flight each; afterwards every broker must still be live.
 *  3. Memory: the coordinator's RSS before and after creating 100,000 partitions
 *     (100 topics x 1,000 partitions, RF 3 on 3 brokers), and the image size.
 *  4. Scale (docs/scaling.md): one CreateTopics of 10,000 partitions RF 3 on 3
 *     brokers, then fencing one of them (ControlledShutdown with exit: 10,001
 *     records), each while another connection heartbeats in a loop: the call's
 *     latency, and the longest heartbeat round trip meanwhile — an upper bound
 *     on the coordinator's longest single callback for that change.
 *
 * Each phase starts a fresh coordinator in a fresh data directory and stops it
 * with SIGTERM; the temporary directory is removed at exit.
 *
 *   bench_coordinator [-d DIR] [-c COORDINATOR] [-s SECONDS] [-S]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/integration/coordclient.h"
#include "tests/support/procutil.h"

#define BENCH_CLIENTS       8
#define HB_BROKERS          1000
#define HB_CONNS            8
#define HB_DEPTH            32
#define MEM_TOPICS          100
#define MEM_PARTS_PER_TOPIC 1000

static char bench_dir[4096];
static char coord_path[4096];
static int seconds = 3;
static bool scale_only;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_coordinator: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    procutil_kill_all();
    if (bench_dir[0])
        fsutil_remove_tree(bench_dir);
    exit(1);
}

static void on_signal(int sig)
{
    (void)sig;
    procutil_kill_all();
    if (bench_dir[0])
        fsutil_remove_tree(bench_dir);
    _exit(130);
}

/* ---- one coordinator per phase ----------------------------------------------------- */

struct phase {
    struct procutil_proc p;
    int port;
    char data[4200];
    char errlog[4200];
};

static void phase_start(struct phase *ph, const char *name, const char *const *extra)
{
    memset(ph, 0, sizeof(*ph));
    snprintf(ph->data, sizeof(ph->data), "%s/%s", bench_dir, name);
    snprintf(ph->errlog, sizeof(ph->errlog), "%s/%s.log", bench_dir, name);
    ph->port = procutil_free_port();
    char dd[4300], lis[64];
    snprintf(dd, sizeof(dd), "data.dir=%s", ph->data);
    snprintf(lis, sizeof(lis), "listeners=127.0.0.1:%d", ph->port);
    const char *argv[32] = {coord_path, "--format-if-empty", "--override", dd, "--override", lis};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n < 30; i++) {
        argv[n++] = "--override";
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    if (procutil_spawn(argv, ph->errlog, &ph->p) < 0)
        die("cannot start %s", coord_path);
    char line[512];
    if (procutil_wait_line(&ph->p, "weir-coordinator ready:", 20000, line, sizeof(line)) < 0)
        die("coordinator did not become ready (see %s)", ph->errlog);
}

/* SIGTERM, wait, and read the coordinator's own log-group count. */
static void phase_stop(struct phase *ph, int64_t *ret_records, int64_t *ret_groups,
                       int64_t *ret_max_group)
{
    procutil_signal(&ph->p, SIGTERM);
    int status = 0;
    if (procutil_wait_exit(&ph->p, 30000, &status) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        die("coordinator did not stop cleanly (see %s)", ph->errlog);
    procutil_close(&ph->p);
    *ret_records = *ret_groups = *ret_max_group = -1;
    FILE *f = fopen(ph->errlog, "r");
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "metadata log this run: ");
        if (p)
            sscanf(p,
                   "metadata log this run: %" SCNd64 " records in %" SCNd64
                   " groups (largest %" SCNd64 ")",
                   ret_records, ret_groups, ret_max_group);
    }
    if (f)
        fclose(f);
}

/* ---- closed-loop creators ----------------------------------------------------------- */

struct creator {
    struct cc_client cc;
    int id;
    uint64_t seq;
    uint64_t done;
    uint64_t failed;
    bool stop;
    struct cc_result r;
};

static void creator_next(struct creator *cr);

static void creator_done(struct cc_result *r, void *ud)
{
    struct creator *cr = ud;
    if (r->status == RPC_OK && r->resp &&
        ((Weir__Coord__CreateTopicsResponse *)r->resp)->results[0]->error_code == 0)
        cr->done++;
    else
        cr->failed++;
    cc_free(r->resp);
    r->resp = NULL;
    if (!cr->stop)
        creator_next(cr);
}

static void creator_next(struct creator *cr)
{
    char name[64];
    snprintf(name, sizeof(name), "c%d-%" PRIu64, cr->id, cr->seq++);
    Weir__Coord__CreatableTopic t = WEIR__COORD__CREATABLE_TOPIC__INIT;
    Weir__Coord__CreatableTopic *tp[1] = {&t};
    t.name = name;
    t.num_partitions = 1;
    t.replication_factor = 1;
    Weir__Coord__CreateTopicsRequest req = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
    req.topics = tp;
    req.n_topics = 1;
    cr->r.then = creator_done;
    cr->r.then_ud = cr;
    if (cc_call_async(&cr->cc, COORD_M_CREATE_TOPICS, &req.base, 30000, &cr->r) < 0)
        cr->failed++;
}

struct create_result {
    double per_sec;
    int64_t records, groups, max_group;
    uint64_t failed;
};

static void bench_creates(struct event_base *base, int clients, struct create_result *out)
{
    struct phase ph;
    char name[32];
    snprintf(name, sizeof(name), "create-%d", clients);
    phase_start(&ph, name, NULL);
    struct cc_client reg;
    cc_client_init(&reg, base, ph.port);
    int64_t epoch;
    if (cc_register(&reg, 1, 1, NULL, &epoch) != 0)
        die("register failed");
    /* The broker the topics are placed on stays registered for the whole phase:
     * its connection stays open and it heartbeats (a closed connection would get
     * it fenced after session.disconnect.timeout.ms, and every later create
     * refused for want of a live broker, measuring refusals instead of writes). */

    struct creator *cr = calloc((size_t)clients, sizeof(*cr));
    for (int i = 0; i < clients; i++) {
        cr[i].id = i;
        cc_client_init(&cr[i].cc, base, ph.port);
    }
    /* Warm up the connections. */
    cc_pump(base, 100);
    int64_t t0 = clock_mono_us();
    for (int i = 0; i < clients; i++)
        creator_next(&cr[i]);
    int64_t next_hb = clock_mono_us();
    while (clock_mono_us() - t0 < (int64_t)seconds * 1000000) {
        if (clock_mono_us() >= next_hb) {
            if (cc_heartbeat(&reg, 1, epoch) != 0)
                die("heartbeat of the placement broker refused");
            next_hb = clock_mono_us() + 1000000;
        }
        cc_pump(base, 50);
    }
    for (int i = 0; i < clients; i++)
        cr[i].stop = true;
    uint64_t done = 0;
    for (int i = 0; i < clients; i++)
        done += cr[i].done;
    int64_t elapsed = clock_mono_us() - t0;
    /* Let the last calls finish before closing. */
    bool idle = false;
    for (int k = 0; k < 200 && !idle; k++) {
        cc_pump(base, 10);
        idle = true;
        for (int i = 0; i < clients; i++)
            idle &= rpc_client_pending(cr[i].cc.rpc) == 0;
    }
    out->failed = 0;
    for (int i = 0; i < clients; i++) {
        out->failed += cr[i].failed;
        cc_client_deinit(&cr[i].cc);
    }
    free(cr);
    cc_client_deinit(&reg);
    out->per_sec = (double)done * 1e6 / (double)elapsed;
    phase_stop(&ph, &out->records, &out->groups, &out->max_group);
}

/* ---- heartbeats -------------------------------------------------------------------- */

struct hb_conn {
    struct cc_client cc;
    struct cc_result r[HB_DEPTH];
    int slot_broker[HB_DEPTH];
    uint64_t done, failed;
    bool stop;
    int next; /* next broker index, strided by connection */
    int stride;
};

static int64_t hb_epochs[HB_BROKERS + 1];

static void hb_send(struct hb_conn *hc, int slot);

static void hb_done(struct cc_result *r, void *ud)
{
    struct hb_conn *hc = ud;
    int slot = (int)(r - hc->r);
    if (r->status == RPC_OK && r->resp &&
        ((Weir__Coord__HeartbeatResponse *)r->resp)->error_code == 0)
        hc->done++;
    else
        hc->failed++;
    cc_free(r->resp);
    r->resp = NULL;
    if (!hc->stop)
        hb_send(hc, slot);
}

static void hb_send(struct hb_conn *hc, int slot)
{
    int id = hc->next;
    hc->next += hc->stride;
    if (hc->next > HB_BROKERS)
        hc->next = hc->next - HB_BROKERS;
    Weir__Coord__HeartbeatRequest req = WEIR__COORD__HEARTBEAT_REQUEST__INIT;
    req.broker_id = id;
    req.broker_epoch = hb_epochs[id];
    hc->r[slot].then = hb_done;
    hc->r[slot].then_ud = hc;
    if (cc_call_async(&hc->cc, COORD_M_HEARTBEAT, &req.base, 30000, &hc->r[slot]) < 0)
        hc->failed++;
}

static void bench_heartbeats(struct event_base *base, double *ret_per_sec, int64_t *ret_reg_ms,
                             size_t *ret_live, uint64_t *ret_failed)
{
    struct phase ph;
    const char *extra[] = {"session.timeout.ms=30000", NULL};
    phase_start(&ph, "heartbeat", extra);
    struct cc_client reg;
    cc_client_init(&reg, base, ph.port);
    int64_t t0 = clock_mono_ms();
    for (int id = 1; id <= HB_BROKERS; id++)
        if (cc_register(&reg, id, 1, NULL, &hb_epochs[id]) != 0)
            die("register of broker %d failed", id);
    *ret_reg_ms = clock_mono_ms() - t0;

    struct hb_conn *hc = calloc(HB_CONNS, sizeof(*hc));
    for (int i = 0; i < HB_CONNS; i++) {
        cc_client_init(&hc[i].cc, base, ph.port);
        hc[i].next = i + 1;
        hc[i].stride = HB_CONNS;
    }
    cc_pump(base, 100);
    int64_t s0 = clock_mono_us();
    for (int i = 0; i < HB_CONNS; i++)
        for (int k = 0; k < HB_DEPTH; k++)
            hb_send(&hc[i], k);
    while (clock_mono_us() - s0 < (int64_t)seconds * 1000000)
        cc_pump(base, 50);
    int64_t elapsed = clock_mono_us() - s0;
    uint64_t done = 0, failed = 0;
    for (int i = 0; i < HB_CONNS; i++) {
        hc[i].stop = true;
        done += hc[i].done;
    }
    for (int k = 0; k < 200; k++) {
        bool idle = true;
        for (int i = 0; i < HB_CONNS; i++)
            idle &= rpc_client_pending(hc[i].cc.rpc) == 0;
        if (idle)
            break;
        cc_pump(base, 10);
    }
    for (int i = 0; i < HB_CONNS; i++) {
        failed += hc[i].failed;
        cc_client_deinit(&hc[i].cc);
    }
    free(hc);
    *ret_per_sec = (double)done * 1e6 / (double)elapsed;
    *ret_failed = failed;

    Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(&reg);
    size_t live = 0;
    for (size_t i = 0; dc && i < dc->n_brokers; i++)
        live += dc->brokers[i]->state == WEIR__META__BROKER_STATE__BROKER_REGISTERED;
    cc_free(dc);
    *ret_live = live;
    cc_client_deinit(&reg);
    int64_t a, b, c;
    phase_stop(&ph, &a, &b, &c);
}

/* ---- memory ------------------------------------------------------------------------ */

static void bench_memory(struct event_base *base, long *ret_before, long *ret_after,
                         size_t *ret_image, int64_t *ret_create_ms)
{
    struct phase ph;
    phase_start(&ph, "memory", NULL);
    struct cc_client cc;
    cc_client_init(&cc, base, ph.port);
    int64_t epoch;
    for (int id = 1; id <= 3; id++)
        if (cc_register(&cc, id, 1, NULL, &epoch) != 0)
            die("register failed");
    *ret_before = procutil_rss_kib(ph.p.pid);
    int64_t t0 = clock_mono_ms();
    for (int i = 0; i < MEM_TOPICS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "mem-%03d", i);
        int r = cc_create_topic(&cc, name, MEM_PARTS_PER_TOPIC, 3, NULL);
        if (r != 0)
            die("create %s failed: %d", name, r);
    }
    *ret_create_ms = clock_mono_ms() - t0;
    Weir__Coord__GetImageRequest req = WEIR__COORD__GET_IMAGE_REQUEST__INIT;
    Weir__Coord__GetImageResponse *g = NULL;
    *ret_image = 0;
    if (cc_call(&cc, COORD_M_GET_IMAGE, &req.base, 30000, (ProtobufCMessage **)&g) == RPC_OK) {
        *ret_image = g->image.len;
        cc_free(g);
    }
    *ret_after = procutil_rss_kib(ph.p.pid);
    cc_client_deinit(&cc);
    int64_t a, b, c;
    phase_stop(&ph, &a, &b, &c);
}

/* ---- scale: one big change, the loop's longest stall --------------------------------- */

#define SCALE_PARTS 10000

struct scale_result {
    int64_t call_ms;
    int64_t max_hb_ms;
    int64_t hbs;
    uint64_t frames;     /* watch push frames one watcher got for the change */
    uint64_t wire_bytes; /* their bytes */
    double cpu_ms;       /* the coordinator's CPU time, call to last push read */
};

/* Run @req (@method) on @cc while @probe heartbeats as broker @id; then wait
 * until every watcher of @w has read the change's pushes. */
static void scale_measure(struct phase *ph, struct cc_client *cc, struct cc_client *probe,
                          unsigned method, const ProtobufCMessage *req, int32_t id, int64_t epoch,
                          struct cc_watch *w, int nw, struct scale_result *out)
{
    struct cc_result r = {0};
    memset(out, 0, sizeof(*out));
    uint64_t frames0 = w[0].frames, bytes0 = w[0].wire_bytes;
    double cpu0 = procutil_cpu_seconds(ph->p.pid);
    int64_t t0 = clock_mono_us();
    if (cc_call_async(cc, method, req, 60000, &r) < 0)
        die("scale: cannot send the call");
    while (!r.done) {
        int64_t h0 = clock_mono_us();
        if (cc_heartbeat(probe, id, epoch) != 0)
            die("scale: heartbeat of broker %d failed", (int)id);
        int64_t ms = (clock_mono_us() - h0) / 1000;
        if (ms > out->max_hb_ms)
            out->max_hb_ms = ms;
        out->hbs++;
    }
    out->call_ms = (clock_mono_us() - t0) / 1000;
    if (r.status != RPC_OK)
        die("scale: call failed: %s", r.err);
    cc_free(r.resp);
    /* The change is durable; its pushes follow at the end of the loop turn. */
    Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(cc);
    if (!dc)
        die("scale: DescribeCluster failed");
    int64_t committed = dc->metadata_offset;
    cc_free(&dc->base);
    int64_t deadline = clock_mono_ms() + 30000;
    for (int i = 0; i < nw; i++)
        while (w[i].last_offset < committed && clock_mono_ms() < deadline)
            event_base_loop(cc->base, EVLOOP_ONCE);
    for (int i = 0; i < nw; i++)
        if (w[i].last_offset < committed)
            die("scale: watcher %d stopped at offset %" PRId64 " of %" PRId64, i,
                w[i].last_offset, committed);
    out->cpu_ms = (procutil_cpu_seconds(ph->p.pid) - cpu0) * 1000.0;
    out->frames = w[0].frames - frames0;
    out->wire_bytes = w[0].wire_bytes - bytes0;
}

static void bench_scale(struct event_base *base, bool batches, struct scale_result *create,
                        struct scale_result *fence)
{
    struct phase ph;
    phase_start(&ph, batches ? "scale-batches" : "scale", NULL);
    struct cc_client cc, probe;
    cc_client_init(&cc, base, ph.port);
    cc_client_init(&probe, base, ph.port);
    int64_t epochs[4];
    for (int id = 1; id <= 3; id++)
        if (cc_register(&cc, id, 1, NULL, &epochs[id]) != 0)
            die("register failed");
    /* Three watchers, as three brokers would have: the pushes are part of the
     * coordinator's work for each change. */
    struct cc_watch *w = calloc(3, sizeof(*w));
    if (!w)
        die("out of memory");
    for (int i = 0; i < 3; i++)
        if (cc_watch_start_as(&w[i], base, ph.port, -1, batches) != 0)
            die("watch failed");

    Weir__Coord__CreatableTopic t = WEIR__COORD__CREATABLE_TOPIC__INIT;
    Weir__Coord__CreatableTopic *tp[1] = {&t};
    t.name = "scale";
    t.num_partitions = SCALE_PARTS;
    t.replication_factor = 3;
    Weir__Coord__CreateTopicsRequest creq = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
    creq.topics = tp;
    creq.n_topics = 1;
    scale_measure(&ph, &cc, &probe, COORD_M_CREATE_TOPICS, &creq.base, 3, epochs[3], w, 3,
                  create);

    Weir__Coord__ControlledShutdownRequest sreq = WEIR__COORD__CONTROLLED_SHUTDOWN_REQUEST__INIT;
    sreq.broker_id = 1;
    sreq.broker_epoch = epochs[1];
    sreq.exit = true;
    scale_measure(&ph, &cc, &probe, COORD_M_CONTROLLED_SHUTDOWN, &sreq.base, 3, epochs[3], w, 3,
                  fence);
    for (int i = 0; i < 3; i++)
        cc_watch_stop(&w[i]);
    free(w);
    cc_client_deinit(&probe);
    cc_client_deinit(&cc);
    int64_t a, b, c;
    phase_stop(&ph, &a, &b, &c);
}

/* ---- main ------------------------------------------------------------------------------ */

/* Write 256 bytes and fdatasync, in a loop, for @secs seconds in the bench directory. */
static double bench_raw_fdatasync(int secs)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/raw-fsync", bench_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("cannot create %s: %s", path, strerror(errno));
    char rec[256];
    memset(rec, 'r', sizeof(rec));
    int64_t n = 0;
    int64_t start = clock_mono_us(), end = start + (int64_t)secs * 1000000;
    int64_t now = start;
    while (now < end) {
        if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) || fdatasync(fd) != 0)
            die("raw write+fdatasync in %s: %s", path, strerror(errno));
        n++;
        now = clock_mono_us();
    }
    close(fd);
    unlink(path);
    return (double)n * 1e6 / (double)(now - start);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_coordinator [-d DIR] [-c COORDINATOR] [-s SECONDS] [-S]\n"
               "  -d DIR          a fresh weir-bench.XXXXXX is made inside DIR and removed at\n"
               "                  exit (default: $TMPDIR if set, else the build tree)\n"
               "  -c PATH         the weir-coordinator binary (default: $WEIR_COORDINATOR,\n"
               "                  else ../../coordinator/weir-coordinator from this program)\n"
               "  -s SECONDS      length of each timed phase (default 3)\n"
               "  -S              only the scale phase\n");
}

int main(int argc, char **argv)
{
    const char *dir = getenv("TMPDIR");
    char exe_dir[4096] = "";
    ssize_t n = readlink("/proc/self/exe", exe_dir, sizeof(exe_dir) - 1);
    if (n > 0) {
        exe_dir[n] = '\0';
        char *slash = strrchr(exe_dir, '/');
        if (slash)
            *slash = '\0';
    }
    if (!dir || !*dir)
        dir = exe_dir;
    const char *env = getenv("WEIR_COORDINATOR");
    int pn;
    if (env && *env)
        pn = snprintf(coord_path, sizeof(coord_path), "%s", env);
    else
        pn = snprintf(coord_path, sizeof(coord_path), "%s/../../coordinator/weir-coordinator",
                      exe_dir);
    if (pn < 0 || (size_t)pn >= sizeof(coord_path))
        die("path of weir-coordinator too long");
    int c;
    while ((c = getopt(argc, argv, "d:c:s:Sh")) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'c':
            pn = snprintf(coord_path, sizeof(coord_path), "%s", optarg);
            if (pn < 0 || (size_t)pn >= sizeof(coord_path))
                die("-c: path too long");
            break;
        case 's':
            seconds = atoi(optarg);
            if (seconds < 1 || seconds > 600) {
                usage(stderr);
                return 2;
            }
            break;
        case 'S':
            scale_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (access(coord_path, X_OK) < 0)
        die("%s is not executable (build it, or pass -c)", coord_path);
    pn = snprintf(bench_dir, sizeof(bench_dir), "%s/weir-bench.XXXXXX", dir);
    if (pn < 0 || (size_t)pn >= sizeof(bench_dir))
        die("-d: path too long");
    if (!mkdtemp(bench_dir)) {
        bench_dir[0] = '\0';
        die("cannot create a directory in %s: %s", dir, strerror(errno));
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);

    struct event_base *base = event_base_new();
    printf("weir-coordinator benchmark: %s, data in %s, %d s per timed phase\n\n", coord_path,
           bench_dir, seconds);

    /* Baseline, same directory, same run: how many small write + fdatasync rounds the
     * file system does per second. A fsync'd metadata change can at best match it with
     * one change in flight; group commit is what lets concurrent changes beat it. */
    if (!scale_only) {
        double raw_syncs = bench_raw_fdatasync(seconds);

        struct create_result one, many;
        bench_creates(base, 1, &one);
        bench_creates(base, BENCH_CLIENTS, &many);
        printf("%-44s %12s %10s %10s %12s\n", "metadata changes (create topic, fsync'd)", "changes/s",
               "records", "fsyncs", "records/fsync");
        printf("%-44s %12.0f %10" PRId64 " %10" PRId64 " %12.2f\n", "  1 client, 1 in flight",
               one.per_sec, one.records, one.groups,
               one.groups > 0 ? (double)one.records / (double)one.groups : 0.0);
        printf("%-44s %12.0f %10" PRId64 " %10" PRId64 " %12.2f\n", "  8 clients, 1 in flight each",
               many.per_sec, many.records, many.groups,
               many.groups > 0 ? (double)many.records / (double)many.groups : 0.0);
        printf("%-44s %12.2fx  (largest group: %" PRId64 " records)\n", "  speed-up from group commit",
               one.per_sec > 0 ? many.per_sec / one.per_sec : 0.0, many.max_group);
        printf("%-44s %12.0f\n", "  baseline: raw 256 B write+fdatasync per s", raw_syncs);
        printf("%-44s %12.2f / %.2f\n", "  ratio to baseline (1 client / 8 clients)",
               raw_syncs > 0 ? one.per_sec / raw_syncs : 0.0,
               raw_syncs > 0 ? many.per_sec / raw_syncs : 0.0);
        if (one.failed || many.failed)
            printf("  failed calls: %" PRIu64 " / %" PRIu64 "\n", one.failed, many.failed);

        double hb_rate;
        int64_t reg_ms;
        size_t live;
        uint64_t hb_failed;
        bench_heartbeats(base, &hb_rate, &reg_ms, &live, &hb_failed);
        printf("\n%-44s %12s\n", "heartbeats (1,000 brokers, 8 conns x 32)", "per second");
        printf("%-44s %12.0f\n", "  sustained", hb_rate);
        printf("%-44s %12" PRId64 "\n", "  registering 1,000 brokers, one at a time (ms)", reg_ms);
        printf("%-44s %12zu\n", "  brokers still live afterwards", live);
        if (hb_failed)
            printf("  failed heartbeats: %" PRIu64 "\n", hb_failed);

        long before, after;
        size_t image;
        int64_t create_ms;
        bench_memory(base, &before, &after, &image, &create_ms);
        printf("\n%-44s %12s\n", "memory, 100,000 partitions (RF 3)", "");
        printf("%-44s %12ld\n", "  RSS before (KiB)", before);
        printf("%-44s %12ld\n", "  RSS after (KiB)", after);
        printf("%-44s %12.1f\n", "  bytes of RSS per partition",
               (double)(after - before) * 1024.0 / 100000.0);
        printf("%-44s %12zu\n", "  image (snapshot) bytes", image);
        printf("%-44s %12" PRId64 "\n", "  creating 100 topics x 1,000 partitions (ms)", create_ms);
    }

    printf("\n%-44s %9s %9s %6s %9s %10s %8s\n", "scale: 10,000 partitions RF 3, 3 brokers",
           "call (ms)", "max hb", "hbs", "frames", "bytes", "cpu (ms)");
    for (int batches = 0; batches <= 1; batches++) {
        struct scale_result sc_create, sc_fence;
        bench_scale(base, batches, &sc_create, &sc_fence);
        const struct {
            const char *name;
            const struct scale_result *r;
        } rows[] = {{"CreateTopics, one topic", &sc_create},
                    {"fencing a broker in every ISR (10,001 rec.)", &sc_fence}};
        printf("  watchers taking %s:\n", batches ? "batches (brokers now)" : "one record per push");
        for (int i = 0; i < 2; i++)
            printf("    %-42s %9" PRId64 " %9" PRId64 " %6" PRId64 " %9" PRIu64 " %10" PRIu64
                   " %8.0f\n",
                   rows[i].name, rows[i].r->call_ms, rows[i].r->max_hb_ms, rows[i].r->hbs,
                   rows[i].r->frames, rows[i].r->wire_bytes, rows[i].r->cpu_ms);
    }

    event_base_free(base);
    fsutil_remove_tree(bench_dir);
    return 0;
}
