/* test_coordinator_proc: weir-coordinator as a real process ($WEIR_COORDINATOR),
 * on 127.0.0.1 with free ports and fresh data directories, driven by the RPC
 * client: durability across kill -9, session expiry and fencing, watches,
 * hostile peers, bad configurations, signals and the data directory lock. Every
 * process started here is killed in the teardown, also when a test fails. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc_frame.h"
#include "coordclient.h"
#include "tests/support/procutil.h"
#include "tests/unit/testutil.h"

#define READY_PREFIX  "weir-coordinator ready:"
#define READY_TIMEOUT 20000
#define EXIT_TIMEOUT  15000

/* ---- fixture ------------------------------------------------------------------------ */

struct coord {
    struct procutil_proc p;
    int port;
    char ready[512];
    bool running;
};

struct fixture {
    char *dir; /* temporary directory for data dirs and logs */
    char data[1024];
    char errlog[1024];
    struct event_base *base;
    struct coord c[2];
};

static struct fixture *F;

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = testutil_mkdtemp("coordproc");
    snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
    snprintf(f->errlog, sizeof(f->errlog), "%s/stderr.log", f->dir);
    f->base = event_base_new();
    assert_non_null(f->base);
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    procutil_kill_all();
    for (size_t i = 0; i < 2; i++)
        procutil_close(&f->c[i].p);
    /* A sanitizer report from a coordinator fails the test that ran it. */
    bool sanitizer = procutil_file_contains(f->errlog, "Sanitizer") ||
                     procutil_file_contains(f->errlog, "runtime error:");
    if (sanitizer || getenv("WEIR_TEST_VERBOSE")) {
        FILE *in = fopen(f->errlog, "r");
        char line[1024];
        while (in && fgets(line, sizeof(line), in))
            fputs(line, stderr);
        if (in)
            fclose(in);
    }
    event_base_free(f->base);
    testutil_rmtree(f->dir);
    free(f);
    F = NULL;
    return sanitizer ? -1 : 0;
}

static const char *coordinator_path(void)
{
    const char *p = getenv("WEIR_COORDINATOR");
    if (!p || !*p)
        fail_msg("WEIR_COORDINATOR is not set (run through meson test)");
    return p;
}

/* Spawn with data.dir, a listener on @port and extra overrides (NULL-ended). */
static int spawn_coord(struct coord *c, const char *data_dir, int port, const char *const *extra)
{
    static char bufs[24][512];
    const char *argv[40];
    size_t n = 0, b = 0;
    argv[n++] = coordinator_path();
    /* Every test starts on a fresh data dir; the identity tests spawn without it. */
    argv[n++] = "--format-if-empty";
    if (data_dir) {
        snprintf(bufs[b], sizeof(bufs[b]), "data.dir=%s", data_dir);
        argv[n++] = "--override";
        argv[n++] = bufs[b++];
    }
    snprintf(bufs[b], sizeof(bufs[b]), "listeners=127.0.0.1:%d", port);
    argv[n++] = "--override";
    argv[n++] = bufs[b++];
    for (size_t i = 0; extra && extra[i] && n < 36; i++) {
        argv[n++] = "--override";
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    memset(c, 0, sizeof(*c));
    c->port = port;
    return procutil_spawn(argv, F->errlog, &c->p);
}

static void start_coord(struct coord *c, const char *const *extra)
{
    int port = procutil_free_port();
    assert_true(port > 0);
    assert_int_equal(spawn_coord(c, F->data, port, extra), 0);
    int r = procutil_wait_line(&c->p, READY_PREFIX, READY_TIMEOUT, c->ready, sizeof(c->ready));
    if (r < 0)
        fail_msg("coordinator did not become ready: %s (log: %s)", strerror(-r), F->errlog);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    assert_non_null(strstr(c->ready, want));
    c->running = true;
}

/* Wait for a process to exit on its own; returns the exit code (-signal if killed). */
static int wait_exit(struct coord *c)
{
    int status = 0;
    int r = procutil_wait_exit(&c->p, EXIT_TIMEOUT, &status);
    if (r < 0)
        fail_msg("process did not exit within %d ms", EXIT_TIMEOUT);
    c->running = false;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -WTERMSIG(status);
}

static void kill9(struct coord *c)
{
    procutil_kill(&c->p);
    c->running = false;
}

static int64_t ready_offset(const struct coord *c)
{
    const char *p = strstr(c->ready, "(metadata offset ");
    assert_non_null(p);
    return strtoll(p + strlen("(metadata offset "), NULL, 10);
}

static const Weir__Meta__PartitionState *find_part(const Weir__Coord__TopicDescription *t,
                                                   int32_t p)
{
    for (size_t i = 0; i < t->n_partitions; i++)
        if (t->partitions[i]->partition == p)
            return t->partitions[i];
    return NULL;
}

static bool contains(const int32_t *v, size_t n, int32_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/* ---- durability ---------------------------------------------------------------------- */

#define KILL_TOPICS 24
#define KILL_AFTER  8

struct kill_ctx {
    struct coord *c;
    int acked;
    bool killed;
    bool ok[KILL_TOPICS];
};

struct kill_call {
    struct cc_result r;
    struct kill_ctx *k;
    int idx;
};

/* SIGKILL from inside the callback of the KILL_AFTER-th acknowledgement, so the
 * process dies with more creations in flight. */
static void on_create_ack(struct cc_result *r, void *ud)
{
    struct kill_call *kc = ud;
    struct kill_ctx *k = kc->k;
    if (r->status != RPC_OK || !r->resp)
        return;
    const Weir__Coord__CreateTopicsResponse *resp =
        (const Weir__Coord__CreateTopicsResponse *)r->resp;
    if (resp->n_results == 1 && resp->results[0]->error_code == 0) {
        k->ok[kc->idx] = true;
        if (++k->acked == KILL_AFTER && !k->killed) {
            kill(k->c->p.pid, SIGKILL);
            k->killed = true;
        }
    }
}

static void test_acknowledged_topics_survive_kill9(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    start_coord(c, NULL);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t epoch = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &epoch), 0);
    assert_int_equal(cc_create_topic(&cc, "before", 3, 1, NULL), 0);

    struct kill_ctx k = {.c = c};
    struct kill_call calls[KILL_TOPICS];
    char names[KILL_TOPICS][32];
    for (int i = 0; i < KILL_TOPICS; i++) {
        snprintf(names[i], sizeof(names[i]), "t-%02d", i);
        Weir__Coord__CreatableTopic t = WEIR__COORD__CREATABLE_TOPIC__INIT;
        Weir__Coord__CreatableTopic *tp[1] = {&t};
        t.name = names[i];
        t.num_partitions = 2;
        Weir__Coord__CreateTopicsRequest req = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
        req.topics = tp;
        req.n_topics = 1;
        memset(&calls[i], 0, sizeof(calls[i]));
        calls[i].k = &k;
        calls[i].idx = i;
        calls[i].r.then = on_create_ack;
        calls[i].r.then_ud = &calls[i];
        assert_int_equal(cc_call_async(&cc, COORD_M_CREATE_TOPICS, &req.base, 10000, &calls[i].r),
                         0);
    }
    int64_t deadline = clock_mono_ms() + 15000;
    bool all_done = false;
    while (!all_done && clock_mono_ms() < deadline) {
        cc_pump(f->base, 20);
        all_done = true;
        for (int i = 0; i < KILL_TOPICS; i++)
            all_done &= calls[i].r.done;
    }
    assert_true(all_done);
    assert_true(k.killed);
    for (int i = 0; i < KILL_TOPICS; i++)
        cc_free(calls[i].r.resp);
    cc_client_deinit(&cc);
    kill9(c); /* reap */

    start_coord(c, NULL);
    assert_true(procutil_file_contains(f->errlog, "metadata log recovery"));
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    Weir__Coord__DescribeTopicsResponse *d = cc_describe_topics(&cc, NULL, 0);
    assert_non_null(d);
    int found_acked = 0;
    for (int i = 0; i < KILL_TOPICS; i++) {
        bool present = false;
        for (size_t j = 0; j < d->n_topics; j++)
            if (strcmp(d->topics[j]->name, names[i]) == 0 && d->topics[j]->n_partitions == 2)
                present = true;
        if (k.ok[i]) {
            if (!present)
                fail_msg("acknowledged topic %s is missing after kill -9", names[i]);
            found_acked++;
        }
    }
    assert_true(found_acked >= KILL_AFTER);
    bool before = false;
    for (size_t j = 0; j < d->n_topics; j++)
        before |= strcmp(d->topics[j]->name, "before") == 0;
    assert_true(before);
    assert_true(d->metadata_offset == ready_offset(c));
    cc_free(d);
    /* The broker registered before the crash is still known, with its epoch. */
    Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(&cc);
    assert_non_null(dc);
    assert_int_equal(dc->n_brokers, 1);
    assert_int_equal(dc->brokers[0]->broker_epoch, epoch);
    cc_free(dc);
    cc_client_deinit(&cc);
}

/* ---- sessions ------------------------------------------------------------------------- */

static void test_silent_broker_fenced_and_partitions_get_new_leaders(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    const char *extra[] = {"session.timeout.ms=1500", "heartbeat.interval.ms=300", NULL};
    start_coord(c, extra);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t ep[4] = {0};
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &ep[1]), 0);
    assert_int_equal(cc_register(&cc, 2, 1, NULL, &ep[2]), 0);
    /* Broker 3's session starts after this instant (when its registration is
     * handled), so fencing cannot come earlier than 1500 ms from here. */
    int64_t silent_since = clock_mono_ms();
    assert_int_equal(cc_register(&cc, 3, 1, NULL, &ep[3]), 0);
    assert_int_equal(cc_create_topic(&cc, "fence-me", 6, 3, NULL), 0);

    const char *names[] = {"fence-me"};
    Weir__Coord__DescribeTopicsResponse *d = cc_describe_topics(&cc, names, 1);
    assert_non_null(d);
    assert_int_equal(d->n_topics, 1);
    assert_int_equal(d->topics[0]->error_code, 0);
    int32_t led_by_3[6];
    int32_t epoch_before[6];
    size_t n_led = 0;
    for (int32_t p = 0; p < 6; p++) {
        const Weir__Meta__PartitionState *ps = find_part(d->topics[0], p);
        assert_non_null(ps);
        assert_int_equal(ps->n_replicas, 3);
        assert_int_equal(ps->n_isr, 3);
        epoch_before[p] = ps->leader_epoch;
        if (ps->leader == 3)
            led_by_3[n_led++] = p;
    }
    cc_free(d);
    assert_true(n_led >= 1); /* placement spreads leaders over the three brokers */

    /* Brokers 1 and 2 keep heartbeating; 3 is silent. */
    bool fenced = false;
    int64_t fenced_after = -1;
    while (clock_mono_ms() - silent_since < 1500 + 3000) {
        assert_int_equal(cc_heartbeat(&cc, 1, ep[1]), 0);
        assert_int_equal(cc_heartbeat(&cc, 2, ep[2]), 0);
        Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(&cc);
        assert_non_null(dc);
        for (size_t i = 0; i < dc->n_brokers; i++) {
            if (dc->brokers[i]->broker_id == 3 &&
                dc->brokers[i]->state == WEIR__META__BROKER_STATE__BROKER_FENCED)
                fenced = true;
            if (dc->brokers[i]->broker_id != 3)
                assert_int_equal(dc->brokers[i]->state,
                                 WEIR__META__BROKER_STATE__BROKER_REGISTERED);
        }
        cc_free(dc);
        if (fenced) {
            fenced_after = clock_mono_ms() - silent_since;
            break;
        }
        procutil_sleep_ms(100);
    }
    if (!fenced)
        fail_msg("broker 3 was not fenced within session.timeout.ms + 3 s");
    if (fenced_after > 1500 + 1000)
        fail_msg("broker 3 fenced after %lld ms; expected within session.timeout.ms + 1 s",
                 (long long)fenced_after);
    assert_true(fenced_after >= 1500);
    assert_true(procutil_file_contains(f->errlog, "sent no heartbeat"));

    d = cc_describe_topics(&cc, names, 1);
    assert_non_null(d);
    for (int32_t p = 0; p < 6; p++) {
        const Weir__Meta__PartitionState *ps = find_part(d->topics[0], p);
        assert_non_null(ps);
        assert_true(ps->leader == 1 || ps->leader == 2);
        assert_false(contains(ps->isr, ps->n_isr, 3));
        assert_true(contains(ps->isr, ps->n_isr, ps->leader));
        if (contains(led_by_3, n_led, p))
            assert_true(ps->leader_epoch > epoch_before[p]);
    }
    cc_free(d);

    /* The zombie's epoch is dead; a new incarnation registers with a new one. */
    assert_int_equal(cc_heartbeat(&cc, 3, ep[3]), 77 /* KERR_STALE_BROKER_EPOCH */);
    int64_t again = -1;
    assert_int_equal(cc_register(&cc, 3, 2, NULL, &again), 0);
    assert_true(again > ep[3]);
    assert_int_equal(cc_heartbeat(&cc, 3, again), 0);
    /* While broker 1's session is live, another incarnation of it is refused. */
    int64_t dup = -1;
    assert_int_equal(cc_register(&cc, 1, 7, NULL, &dup), 101 /* DUPLICATE_BROKER_REGISTRATION */);
    cc_client_deinit(&cc);
}

static Weir__Coord__AlterPartitionResponse *
alter_isr(struct cc_client *cc, int32_t leader, int64_t epoch,
          const Weir__Coord__TopicDescription *t, const Weir__Meta__PartitionState *ps,
          const int32_t *isr, size_t n_isr, int32_t partition_epoch)
{
    Weir__Coord__AlterPartitionItem it = WEIR__COORD__ALTER_PARTITION_ITEM__INIT;
    Weir__Coord__AlterPartitionItem *items[1] = {&it};
    it.topic_id = t->topic_id;
    it.partition = ps->partition;
    it.leader_epoch = ps->leader_epoch;
    it.partition_epoch = partition_epoch;
    it.new_isr = (int32_t *)isr;
    it.n_new_isr = n_isr;
    Weir__Coord__AlterPartitionRequest req = WEIR__COORD__ALTER_PARTITION_REQUEST__INIT;
    req.broker_id = leader;
    req.broker_epoch = epoch;
    req.items = items;
    req.n_items = 1;
    Weir__Coord__AlterPartitionResponse *resp = NULL;
    int st = cc_call(cc, COORD_M_ALTER_PARTITION, &req.base, 5000, (ProtobufCMessage **)&resp);
    return st == RPC_OK ? resp : NULL;
}

/* Broker 2 is fenced, comes back, is added back to the ISRs by the leader, and
 * gets its preferred leaderships back at once: the change that adds it is
 * followed by the move, before the periodic rebalance (300 s here) could run. */
static void test_returning_broker_gets_preferred_leaderships_back(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    const char *extra[] = {"session.timeout.ms=1000", "heartbeat.interval.ms=200",
                           "leader.imbalance.check.interval.seconds=300", NULL};
    start_coord(c, extra);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t ep1 = -1, ep2 = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &ep1), 0);
    assert_int_equal(cc_register(&cc, 2, 1, NULL, &ep2), 0);
    assert_int_equal(cc_create_topic(&cc, "pref", 4, 2, NULL), 0);

    /* Broker 2 falls silent until it is fenced. */
    const char *names[] = {"pref"};
    int64_t deadline = clock_mono_ms() + 5000;
    bool moved = false;
    while (!moved && clock_mono_ms() < deadline) {
        assert_int_equal(cc_heartbeat(&cc, 1, ep1), 0);
        Weir__Coord__DescribeTopicsResponse *d = cc_describe_topics(&cc, names, 1);
        assert_non_null(d);
        moved = true;
        for (size_t p = 0; p < d->topics[0]->n_partitions; p++)
            moved &=
                d->topics[0]->partitions[p]->leader == 1 && d->topics[0]->partitions[p]->n_isr == 1;
        cc_free(d);
        procutil_sleep_ms(100);
    }
    assert_true(moved);

    /* It comes back as a new incarnation; leader 1 adds it back to every ISR. */
    assert_int_equal(cc_register(&cc, 2, 2, NULL, &ep2), 0);
    Weir__Coord__DescribeTopicsResponse *d = cc_describe_topics(&cc, names, 1);
    assert_non_null(d);
    const Weir__Coord__TopicDescription *t = d->topics[0];
    int preferred_by_2 = 0;
    for (size_t p = 0; p < t->n_partitions; p++) {
        const Weir__Meta__PartitionState *ps = t->partitions[p];
        preferred_by_2 += ps->replicas[0] == 2;
        int32_t isr[2] = {1, 2};
        /* A stale partition epoch is refused and changes nothing. */
        Weir__Coord__AlterPartitionResponse *ar =
            alter_isr(&cc, 1, ep1, t, ps, isr, 2, ps->partition_epoch - 1);
        assert_non_null(ar);
        assert_int_equal(ar->results[0]->error_code, KERR_INVALID_UPDATE_VERSION);
        cc_free(ar);
        /* Only the leader may change the ISR. */
        ar = alter_isr(&cc, 2, ep2, t, ps, isr, 2, ps->partition_epoch);
        assert_non_null(ar);
        assert_int_not_equal(ar->results[0]->error_code, 0);
        cc_free(ar);
        ar = alter_isr(&cc, 1, ep1, t, ps, isr, 2, ps->partition_epoch);
        assert_non_null(ar);
        assert_int_equal(ar->error_code, 0);
        assert_int_equal(ar->results[0]->error_code, 0);
        /* The result reports the ISR change itself (leader 1, same leader
         * epoch); a leadership move is a separate change after it. */
        assert_int_equal(ar->results[0]->n_isr, 2);
        assert_int_equal(ar->results[0]->leader, 1);
        assert_int_equal(ar->results[0]->leader_epoch, ps->leader_epoch);
        assert_int_equal(ar->results[0]->partition_epoch, ps->partition_epoch + 1);
        cc_free(ar);
        /* The reply waited for everything the change wrote, so the move (if
         * any) is already visible. */
        Weir__Coord__DescribeTopicsResponse *now = cc_describe_topics(&cc, names, 1);
        assert_non_null(now);
        const Weir__Meta__PartitionState *after = find_part(now->topics[0], ps->partition);
        assert_non_null(after);
        if (ps->replicas[0] == 2) {
            assert_int_equal(after->leader, 2);
            assert_int_equal(after->leader_epoch, ps->leader_epoch + 1);
            assert_int_equal(after->partition_epoch, ps->partition_epoch + 2);
        } else {
            assert_int_equal(after->leader, 1);
            assert_int_equal(after->leader_epoch, ps->leader_epoch);
            assert_int_equal(after->partition_epoch, ps->partition_epoch + 1);
        }
        assert_int_equal(after->n_isr, 2);
        cc_free(now);
    }
    cc_free(d);
    assert_true(preferred_by_2 >= 1);
    assert_true(procutil_file_contains(f->errlog, "is back in the ISR: moving leadership"));
    assert_false(procutil_file_contains(f->errlog, "preferred-leader rebalance"));
    d = cc_describe_topics(&cc, names, 1);
    assert_non_null(d);
    for (size_t p = 0; p < d->topics[0]->n_partitions; p++) {
        const Weir__Meta__PartitionState *ps = d->topics[0]->partitions[p];
        assert_int_equal(ps->leader, ps->replicas[0]);
    }
    cc_free(d);

    /* Controlled shutdown of broker 2 hands its leaderships to broker 1; then
     * its exit fences it at once. */
    Weir__Coord__ControlledShutdownRequest csr = WEIR__COORD__CONTROLLED_SHUTDOWN_REQUEST__INIT;
    csr.broker_id = 2;
    csr.broker_epoch = ep2;
    Weir__Coord__ControlledShutdownResponse *cs = NULL;
    assert_int_equal(
        cc_call(&cc, COORD_M_CONTROLLED_SHUTDOWN, &csr.base, 5000, (ProtobufCMessage **)&cs),
        RPC_OK);
    assert_int_equal(cs->error_code, 0);
    assert_int_equal(cs->remaining_leaderships, 0);
    cc_free(cs);
    d = cc_describe_topics(&cc, names, 1);
    assert_non_null(d);
    for (size_t p = 0; p < d->topics[0]->n_partitions; p++)
        assert_int_equal(d->topics[0]->partitions[p]->leader, 1);
    cc_free(d);
    csr.exit = true;
    assert_int_equal(
        cc_call(&cc, COORD_M_CONTROLLED_SHUTDOWN, &csr.base, 5000, (ProtobufCMessage **)&cs),
        RPC_OK);
    assert_int_equal(cs->error_code, 0);
    cc_free(cs);
    assert_int_equal(cc_heartbeat(&cc, 2, ep2), 77 /* KERR_STALE_BROKER_EPOCH */);
    cc_client_deinit(&cc);
}

/* The state of broker @id in DescribeCluster; -1 when it is not listed. */
static int broker_state(struct cc_client *cc, int32_t id, int64_t *ret_epoch)
{
    Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(cc);
    assert_non_null(dc);
    int st = -1;
    for (size_t i = 0; i < dc->n_brokers; i++) {
        if (dc->brokers[i]->broker_id == id) {
            st = (int)dc->brokers[i]->state;
            if (ret_epoch)
                *ret_epoch = dc->brokers[i]->broker_epoch;
        }
    }
    cc_free(dc);
    return st;
}

static const char *const DISCONNECT_CFG[] = {"session.timeout.ms=6000",
                                             "heartbeat.interval.ms=1000",
                                             "session.disconnect.timeout.ms=500", NULL};

/* A broker whose connection closes (a kill -9: its kernel closes the socket) is
 * fenced after session.disconnect.timeout.ms, far sooner than the 6 s session
 * timeout, and its leaderships move. */
static void test_closed_connection_fences_broker_after_grace(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    start_coord(c, DISCONNECT_CFG);
    struct cc_client cc, b2;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    assert_int_equal(cc_client_init(&b2, f->base, c->port), 0);
    int64_t ep1 = -1, ep2 = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &ep1), 0);
    assert_int_equal(cc_register(&b2, 2, 1, NULL, &ep2), 0);
    assert_int_equal(cc_create_topic(&cc, "dc", 4, 2, NULL), 0);
    assert_int_equal(cc_heartbeat(&b2, 2, ep2), 0);

    int64_t closed_at = clock_mono_ms();
    cc_client_deinit(&b2);
    int64_t fenced_after = -1;
    while (clock_mono_ms() - closed_at < 6000) {
        assert_int_equal(cc_heartbeat(&cc, 1, ep1), 0);
        if (broker_state(&cc, 2, NULL) == WEIR__META__BROKER_STATE__BROKER_FENCED) {
            fenced_after = clock_mono_ms() - closed_at;
            break;
        }
        procutil_sleep_ms(20);
    }
    if (fenced_after < 0)
        fail_msg("broker 2 was not fenced within session.timeout.ms of its connection closing");
    print_message("broker 2 fenced %lld ms after its connection closed\n", (long long)fenced_after);
    /* Not before the grace (less a margin for the close reaching the server
     * before our clock read), and well before the 6 s session timeout. */
    if (fenced_after < 400 || fenced_after > 1500)
        fail_msg("broker 2 fenced %lld ms after its connection closed; expected 500..1500",
                 (long long)fenced_after);
    assert_true(procutil_file_contains(
        f->errlog, "broker 2 connection closed: fencing in 500 ms unless it returns"));
    assert_true(procutil_file_contains(f->errlog, "did not return after its connection closed"));
    assert_false(procutil_file_contains(f->errlog, "sent no heartbeat"));
    const char *names[] = {"dc"};
    Weir__Coord__DescribeTopicsResponse *d = cc_describe_topics(&cc, names, 1);
    assert_non_null(d);
    for (size_t p = 0; p < d->topics[0]->n_partitions; p++) {
        const Weir__Meta__PartitionState *ps = d->topics[0]->partitions[p];
        assert_int_equal(ps->leader, 1);
        assert_false(contains(ps->isr, ps->n_isr, 2));
    }
    cc_free(d);
    /* Broker 1's connection is open: it is untouched. */
    assert_int_equal(broker_state(&cc, 1, NULL), WEIR__META__BROKER_STATE__BROKER_REGISTERED);
    cc_client_deinit(&cc);
}

/* A live broker's client reconnects within the grace and heartbeats or
 * registers again: it keeps its session and epoch. The close of a connection
 * the broker has already moved away from changes nothing. */
static void test_broker_that_reconnects_within_grace_stays(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    start_coord(c, DISCONNECT_CFG);
    struct cc_client obs, a, b;
    assert_int_equal(cc_client_init(&obs, f->base, c->port), 0);
    assert_int_equal(cc_client_init(&a, f->base, c->port), 0);
    int64_t ep = -1, got = -1;
    assert_int_equal(cc_register(&a, 2, 1, NULL, &ep), 0);

    /* It moves to connection b (a heartbeat there), then a closes. */
    assert_int_equal(cc_client_init(&b, f->base, c->port), 0);
    assert_int_equal(cc_heartbeat(&b, 2, ep), 0);
    cc_client_deinit(&a);
    int64_t t0 = clock_mono_ms();
    while (clock_mono_ms() - t0 < 1200) {
        assert_int_equal(broker_state(&obs, 2, &got), WEIR__META__BROKER_STATE__BROKER_REGISTERED);
        procutil_sleep_ms(50);
    }
    assert_false(procutil_file_contains(f->errlog, "broker 2 connection closed"));

    /* Now b closes; within ~100 ms the broker is back on c, re-registering
     * with the same incarnation, and heartbeats there. */
    cc_client_deinit(&b);
    procutil_sleep_ms(100);
    struct cc_client cn;
    assert_int_equal(cc_client_init(&cn, f->base, c->port), 0);
    assert_int_equal(cc_register(&cn, 2, 1, NULL, &got), 0);
    assert_int_equal(got, ep);
    t0 = clock_mono_ms();
    while (clock_mono_ms() - t0 < 1500) {
        assert_int_equal(cc_heartbeat(&cn, 2, ep), 0);
        assert_int_equal(broker_state(&obs, 2, &got), WEIR__META__BROKER_STATE__BROKER_REGISTERED);
        assert_int_equal(got, ep);
        procutil_sleep_ms(100);
    }
    assert_true(procutil_file_contains(f->errlog, "broker 2 connection closed"));
    assert_false(procutil_file_contains(f->errlog, "fencing it"));
    cc_client_deinit(&cn);
    cc_client_deinit(&obs);
}

/* With a small snapshot interval, snapshots are written and a restart starts
 * from the newest one plus the log after it. */
static void test_snapshots_are_written_and_used_by_recovery(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    const char *extra[] = {"metadata.snapshot.interval.records=5", NULL};
    start_coord(c, extra);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t epoch = -1, off = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &epoch), 0);
    for (int i = 0; i < 23; i++) {
        char name[32];
        snprintf(name, sizeof(name), "s-%02d", i);
        assert_int_equal(cc_create_topic(&cc, name, 2, 1, &off), 0);
    }
    cc_client_deinit(&cc);
    /* Snapshots are written in the background; wait for the log line. */
    int64_t deadline = clock_mono_ms() + 5000;
    while (!procutil_file_contains(f->errlog, "snapshot written") && clock_mono_ms() < deadline)
        procutil_sleep_ms(20);
    assert_true(procutil_file_contains(f->errlog, "snapshot written"));
    kill9(c);

    start_coord(c, NULL);
    assert_int_equal(ready_offset(c), off);
    assert_true(procutil_file_contains(f->errlog, "snapshot at"));
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    Weir__Coord__ListTopicsRequest lreq = WEIR__COORD__LIST_TOPICS_REQUEST__INIT;
    Weir__Coord__ListTopicsResponse *l = NULL;
    assert_int_equal(cc_call(&cc, COORD_M_LIST_TOPICS, &lreq.base, 5000, (ProtobufCMessage **)&l),
                     RPC_OK);
    assert_int_equal(l->n_topics, 23);
    for (size_t i = 0; i < l->n_topics; i++) {
        char name[32];
        snprintf(name, sizeof(name), "s-%02zu", i);
        assert_string_equal(l->topics[i]->name, name); /* creation order survives */
        assert_int_equal(l->topics[i]->num_partitions, 2);
    }
    cc_free(l);
    /* The image a new subscriber gets is the recovered state. */
    Weir__Coord__GetImageRequest greq = WEIR__COORD__GET_IMAGE_REQUEST__INIT;
    Weir__Coord__GetImageResponse *g = NULL;
    assert_int_equal(cc_call(&cc, COORD_M_GET_IMAGE, &greq.base, 5000, (ProtobufCMessage **)&g),
                     RPC_OK);
    assert_int_equal(g->metadata_offset, off);
    Weir__Meta__MetadataImage *img =
        weir__meta__metadata_image__unpack(NULL, g->image.len, g->image.data);
    assert_non_null(img);
    assert_int_equal(img->n_topics, 23);
    assert_int_equal(img->offset, off);
    weir__meta__metadata_image__free_unpacked(img, NULL);
    cc_free(g);
    cc_client_deinit(&cc);
}

/* ---- watches -------------------------------------------------------------------------- */

#define WATCH_TOPICS 12

static void check_stream(const struct cc_watch *w, int64_t first, int64_t last)
{
    assert_false(w->record_before_image);
    assert_true(w->n > 0);
    assert_int_equal(w->offsets[0], first);
    for (size_t i = 1; i < w->n; i++)
        if (w->offsets[i] != w->offsets[i - 1] + 1)
            fail_msg("gap or reorder in watch stream: %lld after %lld", (long long)w->offsets[i],
                     (long long)w->offsets[i - 1]);
    assert_int_equal(w->offsets[w->n - 1], last);
}

static void test_watches_deliver_changes_in_order_to_two_subscribers(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    start_coord(c, NULL);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t epoch = -1, off = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &epoch), 0);
    assert_int_equal(cc_create_topic(&cc, "pre", 1, 1, &off), 0);
    cc_client_deinit(&cc);
    /* After a restart nothing is in memory: subscribers start from an image. */
    procutil_signal(&c->p, SIGTERM);
    assert_int_equal(wait_exit(c), 0);
    procutil_close(&c->p);
    start_coord(c, NULL);
    assert_int_equal(ready_offset(c), off);

    struct cc_watch *a = calloc(1, sizeof(*a));
    struct cc_watch *b = calloc(1, sizeof(*b));
    struct cc_watch *late = calloc(1, sizeof(*late));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(late);

    /* A fresh subscriber, and one whose offset is older than what is kept in
     * memory, both get the image first. */
    assert_int_equal(cc_watch_start(a, f->base, c->port, -1), 0);
    assert_int_equal(cc_watch_start(b, f->base, c->port, 0), 0);
    assert_true(a->full_image);
    assert_true(b->full_image);
    int64_t deadline = clock_mono_ms() + 5000;
    while ((a->images < 1 || b->images < 1) && clock_mono_ms() < deadline)
        cc_pump(f->base, 20);
    assert_int_equal(a->images, 1);
    assert_int_equal(b->images, 1);
    assert_int_equal(a->image_offset, off);
    assert_int_equal(a->next_offset, off + 1);
    assert_int_equal(b->next_offset, off + 1);

    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    assert_int_equal(cc_register(&cc, 2, 1, NULL, &epoch), 0);
    int64_t mid = -1;
    for (int i = 0; i < WATCH_TOPICS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w-%02d", i);
        assert_int_equal(cc_create_topic(&cc, name, 1, 1, &off), 0);
        if (i == WATCH_TOPICS / 2)
            mid = off;
    }
    assert_true(cc_watch_wait(a, off, 10000));
    assert_true(cc_watch_wait(b, off, 10000));
    check_stream(a, a->next_offset, off);
    check_stream(b, b->next_offset, off);
    assert_int_equal(a->n, b->n);
    int topic = 0;
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->offsets[i], b->offsets[i]);
        assert_int_equal(a->kinds[i], b->kinds[i]);
        if (a->kinds[i] == WEIR__META__METADATA_RECORD__RECORD_CREATE_TOPIC) {
            char name[32];
            snprintf(name, sizeof(name), "w-%02d", topic++);
            assert_string_equal(a->names[i], name);
            assert_string_equal(b->names[i], name);
        }
    }
    assert_int_equal(topic, WATCH_TOPICS);
    assert_int_equal(a->kinds[0], WEIR__META__METADATA_RECORD__RECORD_REGISTER_BROKER);

    /* A subscriber that has seen up to @mid catches up from memory, no image. */
    assert_int_equal(cc_watch_start(late, f->base, c->port, mid), 0);
    assert_false(late->full_image);
    assert_int_equal(late->next_offset, mid + 1);
    assert_true(cc_watch_wait(late, off, 10000));
    assert_int_equal(late->images, 0);
    check_stream(late, mid + 1, off);

    /* A subscriber that closes is dropped; the others keep receiving. */
    cc_watch_stop(b);
    assert_int_equal(cc_create_topic(&cc, "after-close", 1, 1, &off), 0);
    assert_true(cc_watch_wait(a, off, 10000));
    assert_true(cc_watch_wait(late, off, 10000));
    check_stream(a, a->next_offset, off);

    cc_watch_stop(a);
    cc_watch_stop(late);
    cc_client_deinit(&cc);
    free(a);
    free(b);
    free(late);
}

/* ---- hostile peers ------------------------------------------------------------------ */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server may already have closed: that is the point */
        p += n;
        len -= (size_t)n;
    }
}

/* The server closes the connection within @ms: read until EOF or reset. */
static bool closed_by_server(int fd, int ms)
{
    int64_t deadline = clock_mono_ms() + ms;
    uint8_t buf[4096];
    while (clock_mono_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - clock_mono_ms());
        if (poll(&pfd, 1, left > 0 ? left : 0) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return true;
    }
    return false;
}

static void good_client_still_answered(struct cc_client *cc)
{
    Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(cc);
    assert_non_null(dc);
    assert_int_equal(dc->n_brokers, 1);
    cc_free(dc);
    assert_int_equal(cc->connects, 1);
    assert_int_equal(cc->disconnects, 0);
}

static void test_malformed_frames_close_only_that_connection(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    start_coord(c, NULL);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t epoch = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &epoch), 0);

    /* Random bytes (seeded), then end of stream. */
    {
        int fd = raw_connect(c->port);
        uint8_t junk[8192];
        srand(12345);
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)rand();
        send_all(fd, junk, sizeof(junk));
        shutdown(fd, SHUT_WR);
        assert_true(closed_by_server(fd, 5000));
        close(fd);
        good_client_still_answered(&cc);
    }
    /* A 2 GiB length prefix: refused from the prefix alone. */
    {
        int fd = raw_connect(c->port);
        uint8_t hdr[RPC_FRAME_FIXED_BYTES];
        rpc_frame_put_header(hdr, RPC_FRAME_REQUEST, COORD_M_DESCRIBE_CLUSTER, 1, 0);
        hdr[0] = 0x80;
        hdr[1] = hdr[2] = hdr[3] = 0;
        send_all(fd, hdr, sizeof(hdr));
        assert_true(closed_by_server(fd, 5000));
        close(fd);
        good_client_still_answered(&cc);
    }
    /* A truncated frame: the header promises 100 bytes, 20 arrive, then EOF. */
    {
        int fd = raw_connect(c->port);
        uint8_t buf[RPC_FRAME_FIXED_BYTES + 20];
        memset(buf, 0x08, sizeof(buf));
        rpc_frame_put_header(buf, RPC_FRAME_REQUEST, COORD_M_DESCRIBE_CLUSTER, 2, 100);
        send_all(fd, buf, sizeof(buf));
        shutdown(fd, SHUT_WR);
        assert_true(closed_by_server(fd, 5000));
        close(fd);
        good_client_still_answered(&cc);
    }
    /* A whole frame whose payload does not decode as the method's request. */
    {
        int fd = raw_connect(c->port);
        uint8_t buf[RPC_FRAME_FIXED_BYTES + 6];
        rpc_frame_put_header(buf, RPC_FRAME_REQUEST, COORD_M_CREATE_TOPICS, 3, 6);
        memcpy(buf + RPC_FRAME_FIXED_BYTES, "\x0a\x7f\xff\xff\xff\x0f", 6);
        send_all(fd, buf, sizeof(buf));
        assert_true(closed_by_server(fd, 5000));
        close(fd);
        good_client_still_answered(&cc);
    }
    /* An unknown method. */
    {
        int fd = raw_connect(c->port);
        uint8_t buf[RPC_FRAME_FIXED_BYTES];
        rpc_frame_put_header(buf, RPC_FRAME_REQUEST, 999, 4, 0);
        send_all(fd, buf, sizeof(buf));
        assert_true(closed_by_server(fd, 5000));
        close(fd);
        good_client_still_answered(&cc);
    }
    /* A frame kind a client must not send. */
    {
        int fd = raw_connect(c->port);
        uint8_t buf[RPC_FRAME_FIXED_BYTES];
        rpc_frame_put_header(buf, RPC_FRAME_PUSH, 0, 0, 0);
        buf[4] = 0x77;
        send_all(fd, buf, sizeof(buf));
        assert_true(closed_by_server(fd, 5000));
        close(fd);
        good_client_still_answered(&cc);
    }
    assert_true(procutil_file_contains(f->errlog, "closing connection from 127.0.0.1"));
    /* Writes still work and the process is alive. */
    assert_int_equal(cc_create_topic(&cc, "still-alive", 1, 1, NULL), 0);
    assert_int_equal(procutil_wait_exit(&c->p, 0, NULL), -ETIMEDOUT);
    cc_client_deinit(&cc);
}

/* ---- disk errors ------------------------------------------------------------------------ */

/* Start a coordinator with tests/support/faultshim preloaded: its fsyncs fail
 * while @trigger exists. */
static void start_coord_with_faultshim(struct coord *c, const char *trigger)
{
    const char *shim = getenv("WEIR_FAULTSHIM");
    if (!shim || !*shim)
        skip();
    const char *old = getenv("ASAN_OPTIONS");
    char *saved = old ? strdup(old) : NULL;
    char asan[2048];
    /* The shim comes before the sanitizer runtime in the library list. */
    snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", saved ? saved : "",
             saved && *saved ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    setenv("LD_PRELOAD", shim, 1);
    setenv("WEIR_FAULT_FSYNC_TRIGGER", trigger, 1);
    start_coord(c, NULL);
    unsetenv("LD_PRELOAD");
    unsetenv("WEIR_FAULT_FSYNC_TRIGGER");
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
}

static void test_fsync_failure_stops_acknowledging_and_exits_nonzero(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    char trigger[1100];
    snprintf(trigger, sizeof(trigger), "%s/fail-fsync", f->dir);
    start_coord_with_faultshim(c, trigger);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t epoch = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &epoch), 0);
    assert_int_equal(cc_create_topic(&cc, "durable", 1, 1, NULL), 0);

    FILE *fp = fopen(trigger, "w");
    assert_non_null(fp);
    fclose(fp);
    /* Never acknowledged: an RPC failure (error frame or lost connection). */
    int r = cc_create_topic(&cc, "doomed", 1, 1, NULL);
    if (r >= 0)
        fail_msg("a change was answered (code %d) although its fsync failed", r);
    int code = wait_exit(c);
    if (code <= 0)
        fail_msg("coordinator exited with %d after a failed fsync; expected a non-zero exit", code);
    assert_true(procutil_file_contains(f->errlog, "metadata log failed"));
    procutil_close(&c->p);
    cc_client_deinit(&cc);
    unlink(trigger);

    /* Recovery keeps what was acknowledged. */
    start_coord(c, NULL);
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    const char *names[] = {"durable"};
    Weir__Coord__DescribeTopicsResponse *d = cc_describe_topics(&cc, names, 1);
    assert_non_null(d);
    assert_int_equal(d->n_topics, 1);
    assert_int_equal(d->topics[0]->error_code, 0);
    cc_free(d);
    cc_client_deinit(&cc);
}

/* ---- start-up and shutdown -------------------------------------------------------------- */

/* Run the binary with @extra (data dir @data, may be NULL) and expect a quick
 * non-zero exit with @needle in its stderr. */
static void expect_refusal(const char *data, const char *const *extra, const char *needle)
{
    struct coord c;
    int port = procutil_free_port();
    assert_int_equal(spawn_coord(&c, data, port, extra), 0);
    int code = wait_exit(&c);
    procutil_close(&c.p);
    if (code <= 0)
        fail_msg("expected a non-zero exit for '%s', got %d", needle, code);
    if (!procutil_file_contains(F->errlog, needle))
        fail_msg("stderr does not mention '%s' (see %s)", needle, F->errlog);
}

static void test_bad_config_or_data_dir_exits_nonzero_with_message(void **state)
{
    struct fixture *f = *state;
    /* The disconnect grace first, while nothing else in the log names it. */
    const char *grace_neg[] = {"session.disconnect.timeout.ms=-1", NULL};
    expect_refusal(f->data, grace_neg, "session.disconnect.timeout.ms");
    const char *grace_big[] = {"session.disconnect.timeout.ms=600001", NULL};
    expect_refusal(f->data, grace_big, "session.disconnect.timeout.ms");
    const char *unknown[] = {"no.such.key=1", NULL};
    expect_refusal(f->data, unknown, "no.such.key");
    const char *bad_int[] = {"session.timeout.ms=soon", NULL};
    expect_refusal(f->data, bad_int, "session.timeout.ms");
    const char *hb[] = {"session.timeout.ms=1000", "heartbeat.interval.ms=1000", NULL};
    expect_refusal(f->data, hb, "heartbeat.interval.ms");
    const char *bad_listener[] = {"listeners=SSL://127.0.0.1:1", NULL};
    expect_refusal(f->data, bad_listener, "listeners");
    expect_refusal(NULL, NULL, "data.dir");

    /* A data dir that is a regular file. */
    char file[1100];
    snprintf(file, sizeof(file), "%s/a-file", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    expect_refusal(file, NULL, "data.dir");

    /* A config file that does not exist. */
    struct coord c;
    const char *argv[] = {coordinator_path(), "--config", "/nonexistent/weir.properties", NULL};
    assert_int_equal(procutil_spawn(argv, f->errlog, &c.p), 0);
    assert_true(wait_exit(&c) > 0);
    procutil_close(&c.p);
    assert_true(procutil_file_contains(f->errlog, "/nonexistent/weir.properties"));
}

static void test_sigterm_exits_zero(void **state)
{
    struct fixture *f = *state;
    struct coord *c = &f->c[0];
    start_coord(c, NULL);
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, c->port), 0);
    int64_t epoch = -1;
    assert_int_equal(cc_register(&cc, 1, 1, NULL, &epoch), 0);
    assert_int_equal(cc_create_topic(&cc, "t", 1, 1, NULL), 0);
    /* Broker 1's connection is still open and watched: stopping closes it,
     * which must neither cut its session nor touch freed memory (ASan). */
    procutil_signal(&c->p, SIGTERM);
    assert_int_equal(wait_exit(c), 0);
    assert_true(procutil_file_contains(f->errlog, "stopped cleanly"));
    assert_false(procutil_file_contains(f->errlog, "connection closed: fencing"));
    cc_client_deinit(&cc);
    procutil_close(&c->p);
    /* And it starts again from what it wrote. */
    start_coord(c, NULL);
    assert_true(ready_offset(c) >= 2);
    procutil_signal(&c->p, SIGINT);
    assert_int_equal(wait_exit(c), 0);
}

static void test_second_coordinator_on_same_data_dir_refuses(void **state)
{
    struct fixture *f = *state;
    struct coord *a = &f->c[0];
    start_coord(a, NULL);
    struct coord *b = &f->c[1];
    assert_int_equal(spawn_coord(b, f->data, procutil_free_port(), NULL), 0);
    int code = wait_exit(b);
    assert_true(code > 0);
    assert_true(procutil_file_contains(f->errlog, "locked by another running coordinator"));
    /* The first one is unaffected. */
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, a->port), 0);
    Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(&cc);
    assert_non_null(dc);
    assert_true(dc->cluster_id[0] != '\0');
    cc_free(dc);
    cc_client_deinit(&cc);
}

/* ---- the data directory's identity ----------------------------------------------------- */

/* Run the coordinator with exactly @args (after the binary; NULL-ended) plus
 * data.dir=@data and a free listener, and wait for it to exit on its own.
 * Returns the exit code. */
static int run_to_exit(const char *data, const char *const *args)
{
    char dd[1200], lis[64];
    snprintf(dd, sizeof(dd), "data.dir=%s", data);
    snprintf(lis, sizeof(lis), "listeners=127.0.0.1:%d", procutil_free_port());
    const char *argv[24];
    size_t n = 0;
    argv[n++] = coordinator_path();
    for (size_t i = 0; args && args[i] && n < 18; i++)
        argv[n++] = args[i];
    argv[n++] = "--override";
    argv[n++] = dd;
    argv[n++] = "--override";
    argv[n++] = lis;
    argv[n] = NULL;
    struct coord c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(procutil_spawn(argv, F->errlog, &c.p), 0);
    int code = wait_exit(&c);
    procutil_close(&c.p);
    return code;
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char *buf = calloc(1, 8192);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 8191, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* The value of @key= in meta.properties of @dir, copied into @out. */
static void meta_value(const char *dir, const char *key, char *out, size_t len)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/meta.properties", dir);
    char *t = read_text(path);
    if (!t)
        fail_msg("no %s", path);
    char want[64];
    snprintf(want, sizeof(want), "\n%s=", key);
    char *p = strstr(t, want);
    if (!p)
        fail_msg("%s has no %s", path, key);
    p += strlen(want);
    size_t n = strcspn(p, "\n");
    snprintf(out, len, "%.*s", (int)n, p);
    free(t);
}

static void test_unformatted_data_dir_is_refused_and_left_alone(void **state)
{
    struct fixture *f = *state;
    /* No --format-if-empty: refused, and the directory is not even created. */
    assert_int_equal(run_to_exit(f->data, NULL), 1);
    assert_true(procutil_file_contains(f->errlog, "is not formatted"));
    assert_int_equal(access(f->data, F_OK), -1);
}

static void test_format_writes_identity_once_and_refuses_a_second_time(void **state)
{
    struct fixture *f = *state;
    const char *id = "MkU3OEVBNTcwNTJENDM2Qg";
    const char *fmt[] = {"format", "--cluster-id", id, NULL};
    assert_int_equal(run_to_exit(f->data, fmt), 0);
    char got[64];
    meta_value(f->data, "cluster.id", got, sizeof(got));
    assert_string_equal(got, id);
    meta_value(f->data, "node.id", got, sizeof(got));
    assert_string_equal(got, "1");
    meta_value(f->data, "version", got, sizeof(got));
    assert_string_equal(got, "1");
    char meta[1200];
    snprintf(meta, sizeof(meta), "%s/meta.properties", f->data);
    char *before = read_text(meta);

    /* Formatting again, with the same id or a random one, is refused and changes nothing. */
    assert_int_equal(run_to_exit(f->data, fmt), 1);
    const char *rnd[] = {"format", "--random", NULL};
    assert_int_equal(run_to_exit(f->data, rnd), 1);
    assert_true(procutil_file_contains(f->errlog, "already formatted"));
    char *after = read_text(meta);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* A bad id is refused before anything is looked at. */
    const char *bad[] = {"format", "--cluster-id", "not-an-id", NULL};
    assert_int_equal(run_to_exit(f->data, bad), 2);

    /* It starts without --format-if-empty, and serves that id. */
    struct coord *c = &f->c[0];
    int port = procutil_free_port();
    char dd[1200], lis[64];
    snprintf(dd, sizeof(dd), "data.dir=%s", f->data);
    snprintf(lis, sizeof(lis), "listeners=127.0.0.1:%d", port);
    const char *argv[] = {coordinator_path(), "--override", dd, "--override", lis, NULL};
    memset(c, 0, sizeof(*c));
    assert_int_equal(procutil_spawn(argv, f->errlog, &c->p), 0);
    assert_int_equal(
        procutil_wait_line(&c->p, READY_PREFIX, READY_TIMEOUT, c->ready, sizeof(c->ready)), 0);
    c->running = true;
    struct cc_client cc;
    assert_int_equal(cc_client_init(&cc, f->base, port), 0);
    Weir__Coord__DescribeClusterResponse *dc = cc_describe_cluster(&cc);
    assert_non_null(dc);
    assert_string_equal(dc->cluster_id, id);
    cc_free(dc);
    cc_client_deinit(&cc);
    procutil_signal(&c->p, SIGTERM);
    assert_int_equal(wait_exit(c), 0);
}

static void test_identity_mismatches_are_refused(void **state)
{
    struct fixture *f = *state;
    /* --format-if-empty formats an empty dir once; the next start keeps the id. */
    const char *fie[] = {"--format-if-empty", NULL};
    struct coord *c = &f->c[0];
    start_coord(c, NULL);
    char first[64];
    meta_value(f->data, "cluster.id", first, sizeof(first));
    procutil_signal(&c->p, SIGTERM);
    assert_int_equal(wait_exit(c), 0);
    procutil_close(&c->p);
    start_coord(c, NULL);
    char again[64];
    meta_value(f->data, "cluster.id", again, sizeof(again));
    assert_string_equal(first, again);
    procutil_signal(&c->p, SIGTERM);
    assert_int_equal(wait_exit(c), 0);
    procutil_close(&c->p);

    /* Another node.id: refused. */
    const char *node2[] = {"--override", "node.id=2", NULL};
    assert_int_equal(run_to_exit(f->data, node2), 1);
    assert_true(procutil_file_contains(f->errlog, "belongs to node 1"));

    /* meta.properties naming another cluster than the metadata log: refused. */
    char meta[1200], saved[1200];
    snprintf(meta, sizeof(meta), "%s/meta.properties", f->data);
    snprintf(saved, sizeof(saved), "%s/meta.saved", f->dir);
    assert_int_equal(rename(meta, saved), 0);
    FILE *fp = fopen(meta, "w");
    assert_non_null(fp);
    fprintf(fp, "version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=1\n");
    fclose(fp);
    assert_int_equal(run_to_exit(f->data, fie), 1);
    assert_true(procutil_file_contains(f->errlog, "MkU3OEVBNTcwNTJENDM2Qg"));
    assert_true(procutil_file_contains(f->errlog, first));

    /* No meta.properties but a metadata log with an id: --format-if-empty does not
     * give it a new identity; format --random neither; format with its own id does. */
    assert_int_equal(unlink(meta), 0);
    assert_int_equal(run_to_exit(f->data, fie), 1);
    assert_true(procutil_file_contains(f->errlog, "its metadata log belongs to"));
    const char *rnd[] = {"format", "--random", NULL};
    assert_int_equal(run_to_exit(f->data, rnd), 1);
    assert_int_equal(access(meta, F_OK), -1);
    const char *keep[] = {"format", "--cluster-id", first, NULL};
    assert_int_equal(run_to_exit(f->data, keep), 0);
    meta_value(f->data, "cluster.id", again, sizeof(again));
    assert_string_equal(first, again);

    /* meta.properties kept but the metadata log wiped: refused, even with
     * --format-if-empty. */
    char mdir[1200];
    snprintf(mdir, sizeof(mdir), "%s/metadata", f->data);
    testutil_rmtree(strdup(mdir));
    assert_int_equal(run_to_exit(f->data, fie), 1);
    assert_true(procutil_file_contains(f->errlog, "the metadata log has no cluster id"));

    /* The whole directory wiped: refused without --format-if-empty, a new
     * cluster with it. */
    testutil_rmtree(strdup(f->data));
    assert_int_equal(run_to_exit(f->data, NULL), 1);
    start_coord(c, NULL);
    meta_value(f->data, "cluster.id", again, sizeof(again));
    assert_string_not_equal(first, again);
    procutil_signal(&c->p, SIGTERM);
    assert_int_equal(wait_exit(c), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acknowledged_topics_survive_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_broker_fenced_and_partitions_get_new_leaders,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_returning_broker_gets_preferred_leaderships_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_connection_fences_broker_after_grace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broker_that_reconnects_within_grace_stays, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshots_are_written_and_used_by_recovery, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_watches_deliver_changes_in_order_to_two_subscribers,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames_close_only_that_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_stops_acknowledging_and_exits_nonzero,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config_or_data_dir_exits_nonzero_with_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_exits_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_coordinator_on_same_data_dir_refuses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unformatted_data_dir_is_refused_and_left_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_format_writes_identity_once_and_refuses_a_second_time,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_mismatches_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
