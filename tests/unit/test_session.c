/* Tests for coordinator/session: the fencing rules that keep a load the
 * coordinator itself caused (a big create pushed to every broker) from fencing
 * every broker at once — busy grace for unacknowledged metadata, one fence per
 * session timeout unless a session is clearly dead — and the bounds that keep
 * a really dead broker from holding its partitions for long. Time is passed
 * in, so every scenario is deterministic. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include <stdbool.h>

#include "coordinator/session.h"

#define TIMEOUT 6000

static struct csession_table *table3(int64_t t1, int64_t t2, int64_t t3)
{
    struct csession_table *t;
    assert_int_equal(csession_new(TIMEOUT, &t), 0);
    assert_int_equal(csession_touch(t, 1, 11, t1), 0);
    assert_int_equal(csession_touch(t, 2, 12, t2), 0);
    assert_int_equal(csession_touch(t, 3, 13, t3), 0);
    return t;
}

static bool fence_now(struct csession_table *t, int64_t now, int32_t *id,
                      enum csession_fence_reason *why)
{
    int64_t epoch;
    if (!csession_next_fence(t, now, id, &epoch, why))
        return false;
    assert_int_equal(epoch, 10 + *id);
    csession_fenced(t, *id, now);
    return true;
}

static void test_unacknowledged_metadata_buys_grace_until_acknowledged(void **state)
{
    (void)state;
    struct csession_table *t = table3(0, 0, 0);
    int32_t id;
    int64_t epoch;
    csession_pushed(t, 7, 16 * 2000); /* 2 s of work pushed */
    assert_int_equal(csession_grace_ms(t, 1), 2000);
    assert_false(csession_next_expired(t, 8000, &id, &epoch));
    assert_int_equal(csession_next_deadline(t), 8001);
    csession_acked(t, 2, 6); /* a partial acknowledgement keeps the debt */
    assert_int_equal(csession_grace_ms(t, 2), 2000);
    csession_acked(t, 2, 7);
    assert_int_equal(csession_grace_ms(t, 2), 0);
    assert_true(csession_next_expired(t, 6001, &id, &epoch));
    assert_int_equal(id, 2);
    /* A broker that acknowledged an offset owes nothing for records up to it. */
    csession_pushed(t, 7, 16 * 1000);
    assert_int_equal(csession_grace_ms(t, 2), 0);
    assert_int_equal(csession_grace_ms(t, 1), 3000);
    /* The grace is capped at one session timeout. */
    csession_pushed(t, 8, 16 * 100000);
    assert_int_equal(csession_grace_ms(t, 1), TIMEOUT);
    /* A heartbeat refreshes the session but not the debt; a new epoch clears it. */
    assert_int_equal(csession_touch(t, 1, 11, 100), 0);
    assert_int_equal(csession_grace_ms(t, 1), TIMEOUT);
    assert_int_equal(csession_touch(t, 1, 21, 100), 0);
    assert_int_equal(csession_grace_ms(t, 1), 0);
    csession_free(t);
}

/* session.busy.grace.bytes.per.ms: the rate is the operator's; 0 turns the
 * grace off, so a broker owing metadata expires at the plain timeout. */
static void test_grace_rate_is_configurable_and_can_be_off(void **state)
{
    (void)state;
    struct csession_table *t = table3(0, 0, 0);
    int32_t id;
    int64_t epoch;
    csession_pushed(t, 7, 64 * 1000);
    assert_int_equal(csession_grace_ms(t, 1), 4000); /* 16 bytes/ms by default */
    assert_int_equal(csession_set_grace_rate(t, 64), 0);
    assert_int_equal(csession_grace_ms(t, 1), 1000);
    assert_int_equal(csession_set_grace_rate(t, -1), -EINVAL);
    assert_int_equal(csession_grace_ms(t, 1), 1000);
    assert_int_equal(csession_set_grace_rate(t, 0), 0);
    assert_int_equal(csession_grace_ms(t, 1), 0);
    assert_true(csession_next_expired(t, TIMEOUT + 1, &id, &epoch));
    csession_free(t);
}

/* The scenario: a 10,000-partition create (about 200 kB of records) is
 * pushed to three brokers that heartbeated just before; each is busy applying
 * it for 7.9 s, past the 6 s session timeout. None is fenced. */
static void test_big_create_stalling_every_broker_fences_none(void **state)
{
    (void)state;
    struct csession_table *t = table3(0, 0, 0);
    for (int32_t b = 1; b <= 3; b++)
        csession_acked(t, b, 41);
    csession_pushed(t, 42, 200000);
    int32_t id;
    enum csession_fence_reason why;
    for (int64_t now = 0; now < 7900; now += 10)
        assert_false(fence_now(t, now, &id, &why));
    for (int32_t b = 1; b <= 3; b++) {
        assert_int_equal(csession_touch(t, b, 10 + b, 7900), 0);
        csession_acked(t, b, 42);
        assert_int_equal(csession_grace_ms(t, b), 0);
    }
    assert_int_equal(csession_next_wake(t, 7900), 7900 + TIMEOUT + 1);
    assert_int_equal(csession_count(t), 3);
    csession_free(t);
}

/* Without grace (or past it), brokers whose sessions all expired together are
 * fenced one per session timeout, the one silent longest first; the others get
 * that long to come back. */
static void test_mass_expiry_fences_one_broker_per_interval(void **state)
{
    (void)state;
    struct csession_table *t = table3(200, 0, 100);
    int32_t id;
    enum csession_fence_reason why;
    assert_false(fence_now(t, 6000, &id, &why));
    assert_int_equal(csession_next_wake(t, 0), 6001);
    assert_true(fence_now(t, 6400, &id, &why));
    assert_int_equal(id, 2);
    assert_int_equal(why, CSESSION_EXPIRED);
    assert_false(fence_now(t, 6400, &id, &why)); /* 3 and 1 expired too: held */
    /* The next wake-up: broker 3 becomes clearly dead at 6101 + 6000, before
     * the interval ends at 12400. */
    assert_int_equal(csession_next_wake(t, 6400), 12101);
    /* Broker 1 comes back in time; broker 3 does not and is fenced as dead. */
    assert_int_equal(csession_touch(t, 1, 11, 9000), 0);
    assert_false(fence_now(t, 12100, &id, &why));
    assert_true(fence_now(t, 12101, &id, &why));
    assert_int_equal(id, 3);
    assert_int_equal(why, CSESSION_DEAD);
    assert_int_equal(csession_count(t), 1);
    assert_true(csession_has(t, 1, NULL));
    csession_free(t);
}

/* Once the interval has passed, the next expired broker is fenced. */
static void test_fence_interval_ends_after_one_session_timeout(void **state)
{
    (void)state;
    struct csession_table *t = table3(0, 0, 0);
    int32_t id;
    enum csession_fence_reason why;
    assert_true(fence_now(t, 6001, &id, &why));
    assert_int_equal(id, 1); /* equally silent: lowest id */
    csession_free(t);
    t = table3(0, 0, 0);
    assert_true(fence_now(t, 6001, &id, &why));
    assert_int_equal(csession_touch(t, 2, 12, 3000), 0);
    assert_int_equal(csession_touch(t, 3, 13, 5000), 0);
    assert_false(fence_now(t, 12000, &id, &why)); /* 2 expired at 9001: held */
    assert_int_equal(csession_next_wake(t, 12000), 12001);
    assert_true(fence_now(t, 12001, &id, &why));
    assert_int_equal(id, 2);
    assert_int_equal(why, CSESSION_EXPIRED);
    csession_free(t);
}

/* A closed connection is clear evidence: the interval does not hold it. */
static void test_disconnected_broker_is_fenced_despite_the_interval(void **state)
{
    (void)state;
    struct csession_table *t = table3(0, 0, 0);
    int32_t id;
    enum csession_fence_reason why;
    assert_true(fence_now(t, 6001, &id, &why));
    assert_int_equal(csession_touch(t, 2, 12, 6001), 0);
    assert_int_equal(csession_touch(t, 3, 13, 6001), 0);
    csession_pushed(t, 50, 16 * 5000); /* owing metadata does not delay a cut */
    int64_t d;
    assert_true(csession_shorten(t, 3, 6502, &d));
    assert_int_equal(d, 6502);
    assert_int_equal(csession_next_wake(t, 6001), 6502);
    assert_false(fence_now(t, 6501, &id, &why));
    assert_true(fence_now(t, 6502, &id, &why));
    assert_int_equal(id, 3);
    assert_int_equal(why, CSESSION_DISCONNECT);
    csession_free(t);
}

/* A silent broker never keeps its session past three session timeouts:
 * timeout, at most one timeout of grace, at most one interval. */
static void test_silent_broker_is_fenced_within_three_timeouts(void **state)
{
    (void)state;
    struct csession_table *t = table3(0, 0, 0);
    csession_pushed(t, 1, 16 * 1000000);
    int32_t id;
    enum csession_fence_reason why;
    assert_true(fence_now(t, 12001, &id, &why)); /* timeout + full grace */
    assert_int_equal(id, 1);
    for (int64_t now = 12001; now < 18001; now += 1000)
        assert_false(fence_now(t, now, &id, &why));
    assert_true(fence_now(t, 18001, &id, &why));
    assert_int_equal(why, CSESSION_DEAD);
    assert_true(fence_now(t, 18001, &id, &why));
    assert_int_equal(why, CSESSION_DEAD);
    assert_int_equal(csession_count(t), 0);
    assert_int_equal(csession_next_wake(t, 18001), INT64_MAX);
    csession_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unacknowledged_metadata_buys_grace_until_acknowledged),
        cmocka_unit_test(test_grace_rate_is_configurable_and_can_be_off),
        cmocka_unit_test(test_big_create_stalling_every_broker_fences_none),
        cmocka_unit_test(test_mass_expiry_fences_one_broker_per_interval),
        cmocka_unit_test(test_fence_interval_ends_after_one_session_timeout),
        cmocka_unit_test(test_disconnected_broker_is_fenced_despite_the_interval),
        cmocka_unit_test(test_silent_broker_is_fenced_within_three_timeouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
