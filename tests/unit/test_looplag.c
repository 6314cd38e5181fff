/* Tests for common/looplag: lags land in the power-of-two buckets, the warn
 * threshold is counted, and a callback that blocks its loop shows up as one lag
 * of about its duration (not as a burst of catch-up ticks). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/looplag.h"

static void test_bucket_bounds(void **state)
{
    (void)state;
    assert_int_equal(looplag_bucket(0), 0);
    assert_int_equal(looplag_bucket(1), 1);
    assert_int_equal(looplag_bucket(2), 2);
    assert_int_equal(looplag_bucket(3), 2);
    assert_int_equal(looplag_bucket(4), 3);
    assert_int_equal(looplag_bucket(100), 7); /* [64, 128) */
    assert_int_equal(looplag_bucket(1000), 10);
    assert_int_equal(looplag_bucket(INT64_MAX), LOOPLAG_BUCKETS - 1);
}

static void test_observe_counts_warnings(void **state)
{
    (void)state;
    struct looplag_stats st;
    memset(&st, 0, sizeof(st));
    assert_false(looplag_observe(&st, 3));
    assert_false(looplag_observe(&st, LOOPLAG_WARN_MS));
    assert_true(looplag_observe(&st, LOOPLAG_WARN_MS + 1));
    assert_false(looplag_observe(&st, -5)); /* a timer early by a hair is no lag */
    assert_int_equal(st.count, 4);
    assert_int_equal(st.over_warn, 1);
    assert_int_equal(st.max_ms, LOOPLAG_WARN_MS + 1);
    assert_int_equal(st.buckets[0], 1);
    assert_int_equal(st.sum_ms, 3 + LOOPLAG_WARN_MS + LOOPLAG_WARN_MS + 1);
}

static void block_ms(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    int64_t until = clock_mono_ms() + *(int *)arg;
    while (clock_mono_ms() < until)
        ;
}

static void stop_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void test_blocking_callback_is_one_lag(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct looplag *l;
    assert_int_equal(looplag_new(base, "test", &l), 0);
    int busy = 300;
    struct event *blk = evtimer_new(base, block_ms, &busy);
    struct event *stop = evtimer_new(base, stop_loop, base);
    struct timeval at = {0, 120 * 1000}, end = {0, 900 * 1000};
    evtimer_add(blk, &at);
    evtimer_add(stop, &end);
    event_base_dispatch(base);
    struct looplag_stats st;
    looplag_get_stats(l, &st);
    assert_true(st.max_ms >= 200);
    assert_true(st.max_ms < 2000);
    assert_int_equal(st.over_warn, 1);
    assert_true(st.count >= 5);
    event_free(blk);
    event_free(stop);
    looplag_free(l);
    looplag_free(NULL);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_bounds),
        cmocka_unit_test(test_observe_counts_warnings),
        cmocka_unit_test(test_blocking_callback_is_one_lag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
