/* Tests for common/kerr: the Kafka error table is dense and in code order,
 * names are unique, the codes, names and retriable flags that Weir's handlers
 * and Kafka's clients depend on are Kafka's, and unknown codes are named as
 * such instead of crashing or aliasing a neighbour. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/kerr.h"

static void test_kerr_table_is_dense_and_names_are_unique(void **state)
{
    (void)state;
    int16_t last = -1;
    for (int c = -1; kerr_lookup((int16_t)c); c++) {
        const struct kerr_info *e = kerr_lookup((int16_t)c);
        assert_int_equal(e->code, c);
        assert_non_null(e->name);
        assert_true(strlen(e->name) > 0);
        assert_non_null(e->message);
        assert_int_equal(c == 0, e->message[0] == '\0'); /* only NONE has none */
        for (int d = -1; d < c; d++)
            assert_string_not_equal(kerr_lookup((int16_t)d)->name, e->name);
        last = (int16_t)c;
    }
    assert_int_equal(last, KERR_UNKNOWN_CONTROLLER_ID); /* the table's last row */
    assert_true(last >= 116);
}

static void test_kerr_codes_are_kafkas(void **state)
{
    (void)state;
    /* Spot checks against Kafka's Errors.java, including the codes an earlier
     * copy in a handler had wrong (73 is TOPIC_DELETION_DISABLED, 108 is
     * NEW_LEADER_ELECTED). */
    static const struct {
        int16_t code;
        const char *name;
        bool retriable;
    } want[] = {
        {-1, "UNKNOWN_SERVER_ERROR", false},
        {0, "NONE", false},
        {1, "OFFSET_OUT_OF_RANGE", false},
        {2, "CORRUPT_MESSAGE", true},
        {3, "UNKNOWN_TOPIC_OR_PARTITION", true},
        {6, "NOT_LEADER_OR_FOLLOWER", true},
        {7, "REQUEST_TIMED_OUT", true},
        {10, "MESSAGE_TOO_LARGE", false},
        {19, "NOT_ENOUGH_REPLICAS", true},
        {20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true},
        {35, "UNSUPPORTED_VERSION", false},
        {42, "INVALID_REQUEST", false},
        {56, "KAFKA_STORAGE_ERROR", true},
        {73, "TOPIC_DELETION_DISABLED", false},
        {74, "FENCED_LEADER_EPOCH", true},
        {75, "UNKNOWN_LEADER_EPOCH", true},
        {76, "UNSUPPORTED_COMPRESSION_TYPE", false},
        {77, "STALE_BROKER_EPOCH", false},
        {87, "INVALID_RECORD", false},
        {95, "INVALID_UPDATE_VERSION", false},
        {100, "UNKNOWN_TOPIC_ID", true},
        {104, "INCONSISTENT_CLUSTER_ID", false},
        {107, "INELIGIBLE_REPLICA", false},
        {108, "NEW_LEADER_ELECTED", false},
        {115, "UNSUPPORTED_ENDPOINT_TYPE", false},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_string_equal(kerr_name(want[i].code), want[i].name);
        assert_int_equal(kerr_retriable(want[i].code), want[i].retriable);
    }
    assert_int_equal(KERR_NOT_LEADER_OR_FOLLOWER, 6);
    assert_int_equal(KERR_UNKNOWN_LEADER_EPOCH, 75);
    assert_int_equal(KERR_INVALID_UPDATE_VERSION, 95);
    assert_string_equal(kerr_message(KERR_REQUEST_TIMED_OUT), "The request timed out.");
}

static void test_kerr_unknown_codes(void **state)
{
    (void)state;
    static const int16_t unknown[] = {-2, -32768, 117, 1000, 32767};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_null(kerr_lookup(unknown[i]));
        assert_string_equal(kerr_name(unknown[i]), "UNKNOWN_ERROR_CODE");
        assert_false(kerr_retriable(unknown[i]));
        assert_true(strlen(kerr_message(unknown[i])) > 0);
    }
}

static void test_kerr_describe(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(kerr_describe(KERR_NOT_ENOUGH_REPLICAS, buf, sizeof(buf)),
                        "NOT_ENOUGH_REPLICAS (19)");
    assert_string_equal(kerr_describe(500, buf, sizeof(buf)), "UNKNOWN_ERROR_CODE (500)");
    char small[8];
    assert_string_equal(kerr_describe(KERR_NOT_ENOUGH_REPLICAS, small, sizeof(small)), "NOT_ENO");
    assert_ptr_equal(kerr_describe(1, small, 0), small); /* no write at all */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kerr_table_is_dense_and_names_are_unique),
        cmocka_unit_test(test_kerr_codes_are_kafkas),
        cmocka_unit_test(test_kerr_unknown_codes),
        cmocka_unit_test(test_kerr_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
