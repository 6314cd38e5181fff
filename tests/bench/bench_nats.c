/* bench_nats: NATS JetStream R3 on this machine, the side-by-side rival of bench_kafka.
 *
 * Starts 3 nats-server processes (JetStream, one cluster, file storage) on free
 * loopback ports in a fresh temporary directory and measures with libnats:
 *  - async publish throughput to an R3 file stream at 100 B and 1 KiB (at most
 *    1024 publishes in flight), a 2 s warm-up then a fixed duration, every ack
 *    counted; server CPU (utime+stime of the 3 servers from /proc) per GB acked;
 *  - publish-to-ack latency at a fixed 5,000 msg/s of 1 KiB (open loop: each
 *    message is sent at its scheduled time), p50/p99/p99.9/max.
 * The client connects to the first server only, as in the reference run
 * (shared/reference/performance.md §3.3), so it may reach the stream leader
 * through a route hop. Every server is stopped by PID; the directory is removed.
 *
 * The last line of stdout is machine-readable for bench_kafka:
 *   NATS-RESULT msgs100=.. mb100=.. cpu100=.. msgs1k=.. mb1k=.. cpu1k=.. p50=.. p99=..
 *   p999=.. max=.. (ms for the latencies)
 * Exit status: 0 ok, 1 error, 3 nats-server not installed (skipped).
 *
 *   bench_nats [-d DIR] [-s SECONDS] [-l SECONDS] [-r ROUNDS] [-k]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "tests/support/procutil.h"

#define NSERVERS    3
#define MAX_PENDING 1024
#define LAT_RATE    5000
#define MAX_ROUNDS  9
#define STREAM_MAX  (1LL << 30) /* per stream; see the reservation note in cleanup_stream */

static char bench_dir[4096];
static char server_path[256];
static int seconds = 5, lat_seconds = 5, rounds = 1, warmup_seconds = 2;
static bool keep_dir;
static int failures;

struct nserver {
    struct procutil_proc p;
    int client_port, cluster_port, http_port;
    char log[4400];
};
static struct nserver servers[NSERVERS];

static void cleanup(void)
{
    for (int i = 0; i < NSERVERS; i++)
        if (servers[i].p.pid) {
            procutil_signal(&servers[i].p, SIGTERM);
            if (procutil_wait_exit(&servers[i].p, 5000, NULL) < 0)
                procutil_kill(&servers[i].p);
        }
    procutil_kill_all();
    if (bench_dir[0] && !keep_dir)
        fsutil_remove_tree(bench_dir);
    bench_dir[0] = '\0';
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_nats: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (bench_dir[0])
        fprintf(stderr, "bench_nats: logs in %s (kept)\n", bench_dir);
    keep_dir = true;
    cleanup();
    exit(1);
}

static void on_signal(int sig)
{
    (void)sig;
    cleanup();
    _exit(130);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_s(void)
{
    return (double)now_ns() / 1e9;
}

static double servers_cpu_s(void)
{
    double t = 0;
    for (int i = 0; i < NSERVERS; i++)
        t += procutil_cpu_seconds(servers[i].p.pid);
    return t;
}

/* ---- the cluster --------------------------------------------------------------------- */

/* True when GET /healthz on the monitoring port answers 200 (JetStream is ready). */
static bool healthz_ok(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    static const char req[] = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
        char buf[64];
        size_t got = 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        while (got < 12 && poll(&pfd, 1, 1000) == 1) {
            ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        buf[got] = '\0';
        ok = got >= 12 && strncmp(buf + 9, "200", 3) == 0;
    }
    close(fd);
    return ok;
}

static void write_config(int i)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/n%d.conf", bench_dir, i + 1);
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    fprintf(f,
            "server_name: n%d\n"
            "listen: 127.0.0.1:%d\n"
            "http: 127.0.0.1:%d\n"
            "jetstream { store_dir: \"%s/data-n%d\", max_memory_store: 256MB, "
            "max_file_store: 16GB }\n"
            "cluster { name: bench, listen: 127.0.0.1:%d, routes: [ "
            "nats-route://127.0.0.1:%d, nats-route://127.0.0.1:%d, nats-route://127.0.0.1:%d ] }\n",
            i + 1, servers[i].client_port, servers[i].http_port, bench_dir, i + 1,
            servers[i].cluster_port, servers[0].cluster_port, servers[1].cluster_port,
            servers[2].cluster_port);
    if (fclose(f) != 0)
        die("%s: write failed", path);
}

/* Returns ms from the first fork until every server's /healthz answers 200. */
static double cluster_start(void)
{
    for (int i = 0; i < NSERVERS; i++) {
        servers[i].client_port = procutil_free_port();
        servers[i].cluster_port = procutil_free_port();
        servers[i].http_port = procutil_free_port();
    }
    for (int i = 0; i < NSERVERS; i++)
        write_config(i);
    double t0 = now_s();
    for (int i = 0; i < NSERVERS; i++) {
        char conf[4400];
        snprintf(conf, sizeof(conf), "%s/n%d.conf", bench_dir, i + 1);
        snprintf(servers[i].log, sizeof(servers[i].log), "%s/n%d.log", bench_dir, i + 1);
        const char *argv[] = {server_path, "-c", conf, NULL};
        if (procutil_spawn(argv, servers[i].log, &servers[i].p) < 0)
            die("cannot start %s", server_path);
    }
    for (int i = 0; i < NSERVERS; i++)
        while (!healthz_ok(servers[i].http_port)) {
            if (now_s() - t0 > 30)
                die("nats-server n%d not healthy after 30 s (see %s)", i + 1, servers[i].log);
            procutil_sleep_ms(20);
        }
    return (now_s() - t0) * 1e3;
}

/* ---- publishing ------------------------------------------------------------------------ */

static _Atomic uint64_t acked, ack_errs;
static int64_t *lat_ns; /* latency mode: one slot per message */
static size_t lat_cap;
static _Atomic size_t lat_n;

/* Runs on a libnats thread. The send time rides in the first 8 payload bytes. */
static void ack_cb(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)pae;
    (void)closure;
    if (pa) {
        acked++;
        if (lat_ns && natsMsg_GetDataLength(m) >= 8) {
            int64_t t;
            memcpy(&t, natsMsg_GetData(m), sizeof(t));
            size_t i = lat_n++;
            if (i < lat_cap)
                lat_ns[i] = now_ns() - t;
        }
    } else {
        ack_errs++;
    }
    natsMsg_Destroy(m);
}

static natsConnection *conn;
static jsCtx *js;

static void client_connect(void)
{
    natsOptions *o = NULL;
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", servers[0].client_port);
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK)
        s = natsConnection_Connect(&conn, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK)
        die("connect %s: %s", url, natsStatus_GetText(s));
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = MAX_PENDING;
    jo.PublishAsync.AckHandler = ack_cb;
    jo.Wait = 10000;
    if ((s = natsConnection_JetStream(&js, conn, &jo)) != NATS_OK)
        die("JetStream context: %s", natsStatus_GetText(s));
}

/* An R3 file stream @name on subject @subj; retried while the meta leader is
 * being elected. */
static void stream_create(const char *name, const char *subj)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {subj};
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = NSERVERS;
    sc.MaxBytes = STREAM_MAX; /* old messages are dropped past it (DiscardOld) */
    double t0 = now_s();
    for (;;) {
        jsStreamInfo *si = NULL;
        jsErrCode je = 0;
        natsStatus s = js_AddStream(&si, js, &sc, NULL, &je);
        if (s == NATS_OK) {
            jsStreamInfo_Destroy(si);
            return;
        }
        if (now_s() - t0 > 20)
            die("create stream %s: %s (%d) %s", name, natsStatus_GetText(s), (int)je,
                nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
        procutil_sleep_ms(200);
    }
}

static void stream_delete(const char *name)
{
    jsErrCode je = 0;
    if (js_DeleteStream(js, name, NULL, &je) != NATS_OK) {
        fprintf(stderr, "  delete stream %s failed (%d)\n", name, (int)je);
        failures++;
    }
    /* A deleted R3 stream's storage reservation is released a little later. */
    procutil_sleep_ms(1000);
}

static void wait_acks(void)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    natsStatus s = js_PublishAsyncComplete(js, &po);
    if (s != NATS_OK) {
        fprintf(stderr, "  publishes still pending after 30 s: %s\n", natsStatus_GetText(s));
        failures++;
    }
}

/* Publish as fast as MaxPending allows for @secs; 0 when sent, else the count. */
static uint64_t publish_for(const char *subj, uint8_t *buf, int size, double secs)
{
    uint64_t sent = 0;
    double t0 = now_s();
    while (now_s() - t0 < secs) {
        int64_t t = now_ns();
        memcpy(buf, &t, sizeof(t));
        /* Blocks while MaxPending publishes are in flight (NATS_TIMEOUT after
         * StallWait): that is the flow control being measured; just retry. */
        if (js_PublishAsync(js, subj, buf, size, NULL) == NATS_OK)
            sent++;
    }
    return sent;
}

struct trun {
    double msgs_s, mb_s, cpu_per_gb;
};

static struct trun throughput_run(int size, int round)
{
    struct trun r = {0};
    char name[32], subj[40];
    snprintf(name, sizeof(name), "B%d_%d", size, round);
    snprintf(subj, sizeof(subj), "bench.%s", name);
    stream_create(name, subj);
    uint8_t *buf = malloc((size_t)size);
    if (!buf)
        die("out of memory");
    for (int i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    publish_for(subj, buf, size, warmup_seconds);
    wait_acks();
    uint64_t a0 = acked, e0 = ack_errs;
    double cpu0 = servers_cpu_s(), t0 = now_s();
    uint64_t sent = publish_for(subj, buf, size, seconds);
    wait_acks();
    double el = now_s() - t0, cpu1 = servers_cpu_s();
    uint64_t a = acked - a0, e = ack_errs - e0;
    r.msgs_s = (double)a / el;
    r.mb_s = r.msgs_s * size / 1e6;
    double gb = (double)a * size / 1e9;
    r.cpu_per_gb = gb > 0 ? (cpu1 - cpu0) / gb : -1;
    printf("  nats publish %4d B R3        %9.1f MB/s %10.0f msg/s  %6.1f core-s/GB  (%" PRIu64
           " sent, %" PRIu64 " acked, %" PRIu64 " errors)\n",
           size, r.mb_s, r.msgs_s, r.cpu_per_gb, sent, a, e);
    fflush(stdout);
    if (e || a != sent)
        failures++;
    free(buf);
    stream_delete(name);
    return r;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct lrun {
    double p50, p99, p999, max; /* ms */
};

static struct lrun latency_run(void)
{
    struct lrun r = {-1, -1, -1, -1};
    stream_create("LAT", "bench.lat");
    static uint8_t buf[1024];
    publish_for("bench.lat", buf, sizeof(buf), 0.2); /* warm-up, not kept */
    wait_acks();
    size_t total = (size_t)LAT_RATE * (size_t)lat_seconds;
    lat_cap = total;
    lat_ns = calloc(total, sizeof(int64_t));
    if (!lat_ns)
        die("out of memory");
    lat_n = 0;
    uint64_t e0 = ack_errs;
    int64_t period = 1000000000 / LAT_RATE, t0 = now_ns();
    size_t sent = 0;
    while (sent < total) {
        int64_t due = t0 + (int64_t)sent * period, now = now_ns();
        if (now < due) {
            struct timespec w = {0, due - now};
            nanosleep(&w, NULL);
            continue;
        }
        memcpy(buf, &now, sizeof(now));
        if (js_PublishAsync(js, "bench.lat", buf, sizeof(buf), NULL) == NATS_OK)
            sent++;
        if (now_ns() - t0 > ((int64_t)lat_seconds + 30) * 1000000000)
            die("latency run: only %zu of %zu messages could be sent", sent, total);
    }
    wait_acks();
    size_t n = lat_n < lat_cap ? lat_n : lat_cap;
    int64_t *v = lat_ns;
    lat_ns = NULL; /* late acks (none expected) no longer write */
    if (n) {
        qsort(v, n, sizeof(int64_t), cmp_i64);
        r.p50 = (double)v[n / 2] / 1e6;
        r.p99 = (double)v[(size_t)((double)n * 0.99)] / 1e6;
        r.p999 = (double)v[(size_t)((double)n * 0.999)] / 1e6;
        r.max = (double)v[n - 1] / 1e6;
    }
    uint64_t e = ack_errs - e0;
    printf("  nats latency 1 KiB R3 %d/s     p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  "
           "(%zu acked, %" PRIu64 " errors)\n",
           LAT_RATE, r.p50, r.p99, r.p999, r.max, n, e);
    fflush(stdout);
    if (e || n != total)
        failures++;
    free(v);
    stream_delete("LAT");
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct trun trun_median(const struct trun *r, int n)
{
    double a[MAX_ROUNDS], b[MAX_ROUNDS], c[MAX_ROUNDS];
    for (int i = 0; i < n; i++) {
        a[i] = r[i].msgs_s;
        b[i] = r[i].mb_s;
        c[i] = r[i].cpu_per_gb;
    }
    return (struct trun){median(a, n), median(b, n), median(c, n)};
}

/* ---- main ---------------------------------------------------------------------------- */

static bool find_server(void)
{
    static const char *const candidates[] = {"/usr/sbin/nats-server", "/usr/bin/nats-server",
                                             "/usr/local/bin/nats-server"};
    const char *env = getenv("NATS_SERVER");
    if (env && *env) { /* an explicit choice: that one or none */
        snprintf(server_path, sizeof(server_path), "%s", env);
        return access(env, X_OK) == 0;
    }
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
        if (access(candidates[i], X_OK) == 0) {
            snprintf(server_path, sizeof(server_path), "%s", candidates[i]);
            return true;
        }
    return false;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_nats [-d DIR] [-s SECONDS] [-l SECONDS] [-r ROUNDS] [-k]\n"
               "  -d DIR        temporary directory is made inside DIR (default $TMPDIR, else "
               "/tmp)\n"
               "  -s SECONDS    measured publish time per run after a 2 s warm-up (default 5)\n"
               "  -l SECONDS    fixed-rate (5,000 msg/s, 1 KiB) latency run (default 5)\n"
               "  -r ROUNDS     throughput rounds, medians reported (default 1, max 9)\n"
               "  -k            keep the temporary directory (logs)\n"
               "  nats-server: $NATS_SERVER, else /usr/sbin/nats-server (Debian nats-server)\n");
}

int main(int argc, char **argv)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int c;
    while ((c = getopt(argc, argv, "d:s:l:r:kh")) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 's':
        case 'l':
        case 'r': {
            int v = atoi(optarg);
            if (v < 1 || v > (c == 'r' ? MAX_ROUNDS : 120)) {
                usage(stderr);
                return 2;
            }
            *(c == 's' ? &seconds : c == 'l' ? &lat_seconds : &rounds) = v;
            break;
        }
        case 'k':
            keep_dir = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!find_server()) {
        printf("NATS: skipped (install with deploy/install-deps.sh --bench)\n");
        return 3;
    }
    int pn = snprintf(bench_dir, sizeof(bench_dir), "%s/weir-bench-nats.XXXXXX", dir);
    if (pn < 0 || (size_t)pn >= sizeof(bench_dir))
        die("-d: path too long");
    if (!mkdtemp(bench_dir)) {
        bench_dir[0] = '\0';
        die("cannot create a directory in %s: %s", dir, strerror(errno));
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);

    printf("bench_nats: %s, libnats %s, %d nodes R3 file stream, max pending %d\n", server_path,
           nats_GetVersion(), NSERVERS, MAX_PENDING);
    double ready_ms = cluster_start();
    procutil_sleep_ms(500);
    printf("  nats cluster ready (/healthz) in %.0f ms; idle RSS %.1f / %.1f / %.1f MB\n", ready_ms,
           (double)procutil_rss_kib(servers[0].p.pid) / 1024,
           (double)procutil_rss_kib(servers[1].p.pid) / 1024,
           (double)procutil_rss_kib(servers[2].p.pid) / 1024);
    fflush(stdout);
    client_connect();

    struct trun t100[MAX_ROUNDS], t1k[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        t100[r] = throughput_run(100, r + 1);
        t1k[r] = throughput_run(1024, r + 1);
    }
    struct trun m100 = trun_median(t100, rounds), m1k = trun_median(t1k, rounds);
    struct lrun lr = latency_run();

    jsCtx_Destroy(js);
    natsConnection_Destroy(conn);
    nats_Close();
    int bad = 0;
    for (int i = 0; i < NSERVERS; i++) {
        procutil_signal(&servers[i].p, SIGTERM);
        if (procutil_wait_exit(&servers[i].p, 10000, NULL) < 0) {
            procutil_kill(&servers[i].p);
            bad++;
        }
    }
    if (bad) {
        printf("  %d nats-server(s) did not stop on SIGTERM within 10 s\n", bad);
        failures++;
    }
    if (failures)
        keep_dir = true;
    printf("NATS-RESULT msgs100=%.0f mb100=%.2f cpu100=%.2f msgs1k=%.0f mb1k=%.2f cpu1k=%.2f "
           "p50=%.3f p99=%.3f p999=%.3f max=%.3f errors=%d\n",
           m100.msgs_s, m100.mb_s, m100.cpu_per_gb, m1k.msgs_s, m1k.mb_s, m1k.cpu_per_gb, lr.p50,
           lr.p99, lr.p999, lr.max, failures);
    fflush(stdout);
    return failures ? 1 : 0;
}
