/* test_heartbeat: the heartbeat thread's liveness decision (pure, time passed
 * in), and the thread itself against a fake coordinator on its own thread:
 * heartbeats flow while the broker's loop is busy but turning, stop when the
 * loop is wedged past half the session timeout, resume at once when it turns,
 * and refusals reach the loop thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/heartbeat.h"
#include "common/clock.h"
#include "common/kerr.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "methods.h"

/* ---- the decision ---------------------------------------------------------------- */

static void test_budget_is_half_the_session_timeout(void **state)
{
    (void)state;
    assert_int_equal(hb_loop_budget_ms(6000), 3000);
    assert_int_equal(hb_loop_budget_ms(9000), 4500);
    /* Never under three stamp periods: the stamp itself is that coarse. */
    assert_int_equal(hb_loop_budget_ms(200), 3 * HB_LOOP_STAMP_MS);
}

static void test_sends_every_interval_while_the_loop_turns(void **state)
{
    (void)state;
    struct hb_liveness l;
    hb_liveness_init(&l);
    assert_int_equal(hb_liveness_step(&l, 1000, 1000, 2000, 6000), HB_SEND);
    assert_int_equal(hb_liveness_step(&l, 1100, 1100, 2000, 6000), HB_IDLE);
    assert_int_equal(hb_liveness_step(&l, 2999, 2950, 2000, 6000), HB_IDLE);
    assert_int_equal(hb_liveness_step(&l, 3000, 2950, 2000, 6000), HB_SEND);
    assert_int_equal(l.last_sent_ms, 3000);
}

static void test_a_busy_loop_under_the_budget_still_heartbeats(void **state)
{
    (void)state;
    struct hb_liveness l;
    hb_liveness_init(&l);
    /* The loop last turned at 1000 and is busy for 2.9 s (budget 3 s): the
     * thread heartbeats on schedule as if nothing happened. */
    assert_int_equal(hb_liveness_step(&l, 1000, 1000, 2000, 6000), HB_SEND);
    assert_int_equal(hb_liveness_step(&l, 3000, 1000, 2000, 6000), HB_SEND);
    assert_int_equal(hb_liveness_step(&l, 3900, 1000, 2000, 6000), HB_IDLE);
    assert_false(l.stalled);
}

static void test_a_wedged_loop_stops_heartbeats_and_resumes_at_once(void **state)
{
    (void)state;
    struct hb_liveness l;
    hb_liveness_init(&l);
    assert_int_equal(hb_liveness_step(&l, 1000, 1000, 2000, 6000), HB_SEND);
    assert_int_equal(hb_liveness_step(&l, 4001, 1000, 2000, 6000), HB_STALL_BEGIN);
    assert_true(l.stalled);
    /* Withheld however long it lasts, said once. */
    for (int64_t t = 4100; t < 30000; t += 100)
        assert_int_equal(hb_liveness_step(&l, t, 1000, 2000, 6000), HB_IDLE);
    /* The loop turned: a heartbeat at once, then the normal interval. */
    assert_int_equal(hb_liveness_step(&l, 30000, 29950, 2000, 6000), HB_RESUME);
    assert_false(l.stalled);
    assert_int_equal(hb_liveness_step(&l, 30100, 30100, 2000, 6000), HB_IDLE);
    assert_int_equal(hb_liveness_step(&l, 32000, 32000, 2000, 6000), HB_SEND);
}

/* The property the coordinator relies on, over every stall length and phase:
 * with interval < timeout / 2, a loop stall shorter than the session timeout
 * leaves no gap between heartbeats of a session timeout or more (never fenced
 * for silence); a stall past timeout + budget leaves one (fenced). */
static int64_t longest_gap(int64_t stall_start, int64_t stall_ms, int interval, int timeout)
{
    struct hb_liveness l;
    hb_liveness_init(&l);
    int64_t last = -1, gap = 0;
    for (int64_t t = 0; t < stall_start + stall_ms + 3 * timeout; t += HB_TICK_MS) {
        int64_t stamp = t;
        if (t >= stall_start && t < stall_start + stall_ms)
            stamp = stall_start;
        else
            stamp = t - t % HB_LOOP_STAMP_MS;
        enum hb_action a = hb_liveness_step(&l, t, stamp, interval, timeout);
        if (a == HB_SEND || a == HB_RESUME) {
            if (last >= 0 && t - last > gap)
                gap = t - last;
            last = t;
        }
    }
    return gap;
}

static void test_stalls_under_the_timeout_never_leave_a_fencing_gap(void **state)
{
    (void)state;
    const int interval = 2000, timeout = 6000;
    for (int64_t phase = 0; phase < interval; phase += 100) {
        for (int64_t stall = 0; stall < timeout; stall += 250)
            assert_true(longest_gap(10000 + phase, stall, interval, timeout) < timeout);
        /* Wedged past the budget plus a timeout: the coordinator sees a
         * silence of a whole session timeout. */
        int64_t wedged = hb_loop_budget_ms(timeout) + timeout + HB_TICK_MS;
        assert_true(longest_gap(10000 + phase, wedged + interval, interval, timeout) >= timeout);
    }
}

/* ---- the thread against a fake coordinator --------------------------------------- */

struct fake {
    pthread_t thread;
    struct event_base *base;
    struct rpc_server *server;
    int stop_fd; /* written by the test thread: the fake's loop stops */
    struct event *stop_ev;
    _Atomic int received;
    _Atomic int64_t last_ms;
    _Atomic int64_t last_applied;
    _Atomic int refuse; /* answer STALE_BROKER_EPOCH */
};

static void fake_heartbeat(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct fake *f = ud;
    const Weir__Coord__HeartbeatRequest *req = (const Weir__Coord__HeartbeatRequest *)msg;
    atomic_fetch_add(&f->received, 1);
    atomic_store(&f->last_ms, clock_mono_ms());
    atomic_store(&f->last_applied, req->metadata_offset);
    Weir__Coord__HeartbeatResponse resp = WEIR__COORD__HEARTBEAT_RESPONSE__INIT;
    if (atomic_load(&f->refuse)) {
        resp.error_code = KERR_STALE_BROKER_EPOCH;
        resp.error_message = "fenced";
    }
    resp.metadata_offset = 42;
    rpc_call_reply(call, &resp.base);
}

static void fake_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(((struct fake *)arg)->base);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    event_base_dispatch(f->base);
    return NULL;
}

struct loop {
    struct event_base *base;
    int refusals;
    int64_t refused_epoch;
};

static void on_refused(void *ud, int64_t epoch, int16_t code, const char *message)
{
    (void)message;
    struct loop *l = ud;
    assert_int_equal(code, KERR_STALE_BROKER_EPOCH);
    l->refusals++;
    l->refused_epoch = epoch;
}

static void run_loop(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0) {
    }
}

static void test_thread_heartbeats_unless_the_loop_is_wedged(void **state)
{
    (void)state;
    struct fake f;
    memset(&f, 0, sizeof(f));
    f.base = event_base_new();
    assert_non_null(f.base);
    struct rpc_handler h[COORD_M_COUNT];
    memset(h, 0, sizeof(h));
    h[COORD_M_HEARTBEAT] = (struct rpc_handler){fake_heartbeat, &f};
    assert_int_equal(rpc_server_new(f.base, "127.0.0.1", 0, &weir__coord__coordinator__descriptor,
                                    h, NULL, &f.server),
                     0);
    int port = rpc_server_port(f.server);
    /* Bounded even if the test fails half-way; stopped through stop_fd. */
    struct timeval life = {30, 0};
    event_base_loopexit(f.base, &life);
    f.stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(f.stop_fd >= 0);
    f.stop_ev = event_new(f.base, f.stop_fd, EV_READ, fake_stop, &f);
    assert_non_null(f.stop_ev);
    event_add(f.stop_ev, NULL);
    assert_int_equal(pthread_create(&f.thread, NULL, fake_main, &f), 0);

    struct loop l = {.base = event_base_new()};
    assert_non_null(l.base);
    struct hbthread *hb;
    assert_int_equal(hbthread_new(l.base, "127.0.0.1", port, 7, on_refused, &l, &hb), 0);
    /* Session timeout 1 s: budget 500 ms; heartbeat every 200 ms. */
    hbthread_set_applied(hb, 17);
    hbthread_set_session(hb, 5, 200, 1000);
    run_loop(l.base, 1000);
    int n = atomic_load(&f.received);
    assert_true(n >= 3);
    assert_int_equal(atomic_load(&f.last_applied), 17);
    assert_true(hbthread_lease_start(hb, 5) > 0);
    assert_int_equal(hbthread_lease_start(hb, 4), -1);
    assert_int_equal(hbthread_coord_offset(hb), 42);

    /* Busy but under the budget: 400 ms without turning, heartbeats go on
     * (from the thread, while this thread sleeps). */
    n = atomic_load(&f.received);
    sleep_ms(400);
    assert_true(atomic_load(&f.received) >= n + 1);
    run_loop(l.base, 150);

    /* Wedged for 2 s: nothing from 500 ms (+ a tick) on. */
    int64_t wedge_start = clock_mono_ms();
    sleep_ms(2000);
    int64_t last = atomic_load(&f.last_ms);
    assert_true(last - wedge_start <= 500 + 2 * HB_TICK_MS);
    struct hbthread_stats st;
    hbthread_get_stats(hb, &st);
    assert_int_equal(st.stalls, 1);

    /* Turning again: a heartbeat within a couple of ticks. */
    int64_t resumed = clock_mono_ms();
    n = atomic_load(&f.received);
    run_loop(l.base, 400);
    assert_true(atomic_load(&f.received) > n);
    assert_true(atomic_load(&f.last_ms) - resumed <= 3 * HB_TICK_MS + 100);

    /* A refusal reaches the loop and stops heartbeats for that epoch. */
    atomic_store(&f.refuse, 1);
    run_loop(l.base, 600);
    assert_int_equal(l.refusals, 1);
    assert_int_equal(l.refused_epoch, 5);
    assert_int_equal(hbthread_lease_start(hb, 5), -1);
    n = atomic_load(&f.received);
    run_loop(l.base, 600);
    assert_int_equal(atomic_load(&f.received), n);

    hbthread_free(hb);
    event_base_free(l.base);
    uint64_t one = 1;
    assert_int_equal(write(f.stop_fd, &one, sizeof(one)), sizeof(one));
    pthread_join(f.thread, NULL);
    event_free(f.stop_ev);
    close(f.stop_fd);
    rpc_server_free(f.server);
    event_base_free(f.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_is_half_the_session_timeout),
        cmocka_unit_test(test_sends_every_interval_while_the_loop_turns),
        cmocka_unit_test(test_a_busy_loop_under_the_budget_still_heartbeats),
        cmocka_unit_test(test_a_wedged_loop_stops_heartbeats_and_resumes_at_once),
        cmocka_unit_test(test_stalls_under_the_timeout_never_leave_a_fencing_gap),
        cmocka_unit_test(test_thread_heartbeats_unless_the_loop_is_wedged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
