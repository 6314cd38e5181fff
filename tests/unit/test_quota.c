/* Tests for broker/replica/quota: the sliding-window byte rate behind the
 * replication throttles. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "broker/replica/quota.h"

#define MIB (1024 * 1024)

static void test_unlimited_is_never_exceeded(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    quota_record(&q, (int64_t)1 << 40, 0);
    assert_false(quota_exceeded(&q, 1));
    quota_set_rate(&q, 0); /* <= 0 means no limit */
    assert_int_equal(q.rate, QUOTA_UNLIMITED);
    assert_false(quota_exceeded(&q, 1));
}

static void test_empty_window_rate_is_zero(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    quota_set_rate(&q, 1);
    assert_true(quota_rate(&q, 5000) == 0.0);
    assert_false(quota_exceeded(&q, 5000));
    quota_record(&q, 0, 5000); /* nothing sent: nothing counted */
    assert_true(quota_rate(&q, 5000) == 0.0);
}

/* A fresh quota lets about one second's worth through, not a whole window's. */
static void test_first_second_allows_one_second_of_bytes(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    quota_set_rate(&q, 10 * MIB);
    int64_t sent = 0, t = 1000;
    while (!quota_exceeded(&q, t)) {
        quota_record(&q, MIB, t);
        sent += MIB;
        t += 10;
    }
    assert_int_equal(sent, 11 * MIB); /* exceeded once above 10 MiB/s */
    assert_true(quota_rate(&q, t) > 10.0 * MIB);
}

/* A sender that asks before each send and records after it averages the
 * limit over a long run, within one send of it. */
static void test_steady_sender_holds_the_rate(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    int64_t rate = 10 * MIB, chunk = MIB, sent = 0;
    quota_set_rate(&q, rate);
    int64_t start = 123456, t = start;
    for (; t < start + 60000; t += 5)
        if (!quota_exceeded(&q, t)) {
            quota_record(&q, chunk, t);
            sent += chunk;
        }
    double avg = (double)sent * 1000.0 / (double)(t - start);
    assert_true(avg <= rate * 1.05);
    assert_true(avg >= rate * 0.95);
}

/* After the limit changes the measured rate follows within the window. */
static void test_rate_change_takes_effect(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    quota_set_rate(&q, 4 * MIB);
    int64_t t = 0, sent = 0;
    for (; t < 20000; t += 5)
        if (!quota_exceeded(&q, t))
            quota_record(&q, MIB / 4, t);
    quota_set_rate(&q, 2 * MIB);
    /* The window still holds 4 MiB/s: exceeded until it slides. */
    assert_true(quota_exceeded(&q, t));
    for (; t < 60000; t += 5)
        if (!quota_exceeded(&q, t)) {
            quota_record(&q, MIB / 4, t);
            if (t >= 40000)
                sent += MIB / 4;
        }
    double avg = (double)sent * 1000.0 / 20000.0;
    assert_true(avg <= 2.0 * MIB * 1.05 && avg >= 2.0 * MIB * 0.95);
}

/* Samples older than the window no longer count; a gap then restarts the
 * span from the new first sample. */
static void test_old_samples_expire(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    quota_set_rate(&q, MIB);
    quota_record(&q, 100 * MIB, 0);
    assert_true(quota_exceeded(&q, 10999));
    assert_false(quota_exceeded(&q, QUOTA_SAMPLES * QUOTA_SAMPLE_MS));
    assert_true(quota_rate(&q, QUOTA_SAMPLES * QUOTA_SAMPLE_MS) == 0.0);
    quota_record(&q, MIB / 2, 20000);
    assert_true(quota_rate(&q, 20100) == (double)(MIB / 2)); /* span at least one sample */
    quota_record(&q, MIB, 21000);
    assert_true(quota_rate(&q, 22000) == (double)(MIB + MIB / 2) / 2.0);
}

/* The window is QUOTA_SAMPLES samples: the rate over a full window of even
 * traffic is the traffic's rate, and the ring wraps without losing it. */
static void test_window_wraps(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    for (int64_t t = 0; t < 100000; t += 100)
        quota_record(&q, 1000, t);
    double r = quota_rate(&q, 100000);
    assert_true(r > 9000.0 && r < 11000.0);
}

static void test_clock_going_back_starts_over(void **state)
{
    (void)state;
    struct quota q;
    quota_init(&q);
    quota_set_rate(&q, 1000);
    quota_record(&q, 5000, 50000);
    quota_record(&q, 10, 1000);
    assert_true(quota_rate(&q, 1000) == 10.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited_is_never_exceeded),
        cmocka_unit_test(test_empty_window_rate_is_zero),
        cmocka_unit_test(test_first_second_allows_one_second_of_bytes),
        cmocka_unit_test(test_steady_sender_holds_the_rate),
        cmocka_unit_test(test_rate_change_takes_effect),
        cmocka_unit_test(test_old_samples_expire),
        cmocka_unit_test(test_window_wraps),
        cmocka_unit_test(test_clock_going_back_starts_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
