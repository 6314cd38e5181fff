/* Tests for broker/replica/pchlog: a few role and ISR changes are a line each
 * with their fields; past the budget of a window they are counted into one
 * partitions_changed line (written by the timer, or at free), the detail at
 * debug; a new window writes lines again; strings are copied at add time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/replica/pchlog.h"
#include "common/log.h"

/* The log goes to a memory stream; count() reads what it holds so far. */
static FILE *out;
static char *buf;
static size_t len;

static int setup(void **state)
{
    (void)state;
    if (!(out = open_memstream(&buf, &len)))
        return -1;
    log_set_output(out);
    log_set_format(LOG_FORMAT_JSON);
    log_set_level(LOG_LEVEL_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_set_output(NULL);
    log_set_format(LOG_FORMAT_TEXT);
    log_set_level(LOG_LEVEL_INFO);
    fclose(out);
    free(buf);
    return 0;
}

/* Lines logged so far that contain @needle. */
static int count(const char *needle)
{
    fflush(out);
    int n = 0;
    for (const char *line = buf; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t l = nl ? (size_t)(nl - line) : strlen(line);
        const char *hit = strstr(line, needle);
        n += hit && hit < line + l;
        line += l + (nl != NULL);
    }
    return n;
}

static void add_leader(struct pchlog *l, int partition)
{
    char topic[32];
    snprintf(topic, sizeof(topic), "t%d", partition);
    pchlog_add(l, &(struct pch){.kind = PCH_LEADER, .topic = topic, .partition = partition,
                                .epoch = 3, .offset = 42, .hw = 40, .isr = "1,2", .n_isr = 2});
    memset(topic, 'x', sizeof(topic) - 1); /* copied at add time */
}

static void test_pchlog_few_changes_are_a_line_each(void **state)
{
    (void)state;
    struct pchlog *l;
    assert_int_equal(pchlog_new(NULL, 0, &l), 0);
    add_leader(l, 0);
    pchlog_add(l, &(struct pch){.kind = PCH_ISR_SHRINK, .topic = "orders", .partition = 1,
                                .epoch = 2, .partition_epoch = 5, .offset = 7, .hw = 7,
                                .isr = "1", .n_isr = 1, .cause = "coordinator"});
    pchlog_add(l, &(struct pch){.kind = PCH_FOLLOWER, .topic = "orders", .partition = 2,
                                .epoch = 2, .leader = -1, .offset = 9});
    assert_int_equal(count("\"event\""), 0); /* nothing before the flush */
    pchlog_flush(l, 1000);
    assert_int_equal(count("\"msg\":\"t0-0: leader in epoch 3 at offset 42 (HW 40)\","
                           "\"event\":\"became_leader\",\"topic\":\"t0\",\"partition\":0,"
                           "\"epoch\":3,\"offset\":42,\"hw\":40,\"isr\":\"1,2\"}"),
                     1);
    assert_int_equal(count("\"msg\":\"orders-1: ISR now 1 members (partition epoch 5)\","
                           "\"event\":\"isr_shrink\",\"topic\":\"orders\",\"partition\":1,"
                           "\"epoch\":2,\"partition_epoch\":5,\"isr\":\"1\",\"offset\":7,"
                           "\"hw\":7,\"cause\":\"coordinator\"}"),
                     1);
    assert_int_equal(count("\"event\":\"became_follower\",\"topic\":\"orders\",\"partition\":2,"
                           "\"epoch\":2,\"leader\":-1,\"offset\":9}"),
                     1);
    pchlog_flush(l, 1001); /* nothing new: nothing written */
    assert_int_equal(count("\"event\""), 3);
    pchlog_free(l);
    assert_int_equal(count("partitions_changed"), 0);
}

static void test_pchlog_many_changes_are_summed_up(void **state)
{
    (void)state;
    struct pchlog *l;
    assert_int_equal(pchlog_new(NULL, 0, &l), 0);
    /* 15 fit the budget of 20; the next 10 do not: all 10 are counted. */
    for (int i = 0; i < 15; i++)
        add_leader(l, i);
    pchlog_flush(l, 1000);
    for (int i = 15; i < 25; i++)
        add_leader(l, i);
    pchlog_add(l, &(struct pch){.kind = PCH_ISR_EXPAND, .topic = "o", .isr = "1,2,3",
                                .n_isr = 3});
    pchlog_flush(l, 1500);
    assert_int_equal(count("became_leader"), 15);
    assert_int_equal(count("\"event\":\"partitions_changed\",\"leaders\":10,\"followers\":0,"
                           "\"isr_shrinks\":0,\"isr_expands\":1,\"isr_changes\":0}"),
                     1);
    /* The rest of the window is summed up too, even a single change. */
    add_leader(l, 99);
    pchlog_flush(l, 2000);
    assert_int_equal(count("became_leader"), 15);
    assert_int_equal(count("\"leaders\":1,"), 1);
    /* A new window writes lines again. */
    add_leader(l, 100);
    pchlog_flush(l, 1000 + PCHLOG_WINDOW_MS);
    assert_int_equal(count("became_leader"), 16);
    pchlog_free(l);
}

static void test_pchlog_debug_detail_and_summary_by_timer(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_DEBUG);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct pchlog *l;
    assert_int_equal(pchlog_new(base, 50, &l), 0);
    for (int i = 0; i < 30; i++)
        add_leader(l, i);
    pchlog_flush(l, 1000);
    assert_int_equal(count("\"level\":\"debug\",\"component\":\"replica\""), 30);
    assert_int_equal(count("partitions_changed"), 0); /* waits for the timer */
    for (int i = 0; i < 5; i++)
        add_leader(l, i);
    pchlog_flush(l, 1010);
    event_base_dispatch(base); /* runs the one timer */
    assert_int_equal(count("\"event\":\"partitions_changed\",\"leaders\":35,"), 1);
    /* Counted and not yet written at free: written then. */
    add_leader(l, 1);
    pchlog_flush(l, 1020);
    pchlog_free(l);
    assert_int_equal(count("\"event\":\"partitions_changed\",\"leaders\":1,"), 1);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pchlog_few_changes_are_a_line_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pchlog_many_changes_are_summed_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pchlog_debug_detail_and_summary_by_timer, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
