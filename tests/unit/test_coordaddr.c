/* test_coordaddr: coordinator.connect as a list — parsing (and refusing bad
 * lists naming the key and the entry), round-robin advance, and adopting a
 * hinted leader, also one that is not in the configured list. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "broker/coordaddr.h"

static void expect_cur(const struct coordaddr *a, const char *host, int port)
{
    const struct coordaddr_entry *e = coordaddr_current(a);
    assert_string_equal(e->host, host);
    assert_int_equal(e->port, port);
}

static void test_single(void **state)
{
    (void)state;
    struct coordaddr a;
    char err[512] = "";
    assert_int_equal(coordaddr_parse("127.0.0.1:9093", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 1);
    expect_cur(&a, "127.0.0.1", 9093);
    coordaddr_advance(&a);
    expect_cur(&a, "127.0.0.1", 9093); /* one entry: stays */
}

static void test_list_and_advance(void **state)
{
    (void)state;
    struct coordaddr a;
    char err[512] = "";
    assert_int_equal(coordaddr_parse("c1:1, c2:2 ,[::1]:3", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 3);
    expect_cur(&a, "c1", 1);
    coordaddr_advance(&a);
    expect_cur(&a, "c2", 2);
    coordaddr_advance(&a);
    expect_cur(&a, "::1", 3);
    coordaddr_advance(&a);
    expect_cur(&a, "c1", 1);
    char buf[128];
    coordaddr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "c1:1,c2:2,::1:3");
}

static void test_seven_max(void **state)
{
    (void)state;
    struct coordaddr a;
    char err[512] = "";
    assert_int_equal(coordaddr_parse("a:1,a:2,a:3,a:4,a:5,a:6,a:7", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 7);
    assert_int_equal(coordaddr_parse("a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8", &a, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "coordinator.connect"));
    assert_non_null(strstr(err, "more than 7"));
}

static void test_bad_lists(void **state)
{
    (void)state;
    const char *bad[] = {"",          ",",         "a:1,",     "a:1,,b:2", "a",        "a:",
                         ":9",        "a:0",       "a:65536",  "a:9x",     "a:1,a:1",  "::1:9",
                         "PLAINTEXT://a:1", "a b:1", "a:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct coordaddr a;
        char err[512] = "";
        int r = coordaddr_parse(bad[i], &a, err, sizeof(err));
        if (r != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        if (!strstr(err, "coordinator.connect"))
            fail_msg("'%s': error does not name the key: %s", bad[i], err);
    }
    struct coordaddr a;
    char err[512] = "";
    assert_int_equal(coordaddr_parse("good:1,bad", &a, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "entry 2 ('bad')"));
    assert_int_equal(coordaddr_parse(NULL, &a, err, sizeof(err)), -EINVAL);
}

static void test_adopt(void **state)
{
    (void)state;
    struct coordaddr a;
    char err[512] = "";
    assert_int_equal(coordaddr_parse("c1:1,c2:2,c3:3", &a, err, sizeof(err)), 0);
    /* A configured entry is selected by index. */
    assert_true(coordaddr_adopt(&a, "c3", 3));
    expect_cur(&a, "c3", 3);
    assert_false(a.adopted);
    assert_false(coordaddr_adopt(&a, "c3", 3)); /* already current */
    /* Same host, other port: not the same coordinator. */
    assert_true(coordaddr_adopt(&a, "c1", 2));
    assert_true(a.adopted);
    expect_cur(&a, "c1", 2);
    /* A voter outside the list (added by a membership change). */
    assert_true(coordaddr_adopt(&a, "c4", 4));
    expect_cur(&a, "c4", 4);
    assert_false(coordaddr_adopt(&a, "c4", 4));
    /* Advancing from it goes on after the entry we were at (c3): c1. */
    coordaddr_advance(&a);
    assert_false(a.adopted);
    expect_cur(&a, "c1", 1);
    /* Unusable hints change nothing. */
    assert_false(coordaddr_adopt(&a, "", 5));
    assert_false(coordaddr_adopt(&a, NULL, 5));
    assert_false(coordaddr_adopt(&a, "c9", 0));
    assert_false(coordaddr_adopt(&a, "c9", 70000));
    char longhost[COORDADDR_HOST_MAX + 10];
    memset(longhost, 'h', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    assert_false(coordaddr_adopt(&a, longhost, 9));
    expect_cur(&a, "c1", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),       cmocka_unit_test(test_list_and_advance),
        cmocka_unit_test(test_seven_max),    cmocka_unit_test(test_bad_lists),
        cmocka_unit_test(test_adopt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
