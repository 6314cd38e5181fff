/* Tests of common/topic_config.c: the table every topic key is validated,
 * described and documented from. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/kerr.h"
#include "common/topic_config.h"

static void test_table_is_sorted_and_complete(void **state)
{
    (void)state;
    assert_true(topic_config_ndefs >= 22);
    for (size_t i = 0; i < topic_config_ndefs; i++) {
        const struct topic_config_def *d = &topic_config_defs[i];
        if (i)
            assert_true(strcmp(topic_config_defs[i - 1].name, d->name) < 0); /* binary search */
        assert_ptr_equal(topic_config_find(d->name), d);
        assert_non_null(d->doc);
        assert_true(strlen(d->doc) > 20);
        assert_non_null(d->broker_key);
        assert_non_null(d->kafka_default);
        assert_true(!d->refused || d->refused_why);
        /* Kafka's default is itself a value Weir accepts. */
        char msg[256];
        assert_int_equal(topic_config_validate(d->name, d->kafka_default, msg, sizeof(msg)),
                         KERR_NONE);
        assert_string_equal(msg, "");
    }
    assert_null(topic_config_find("no.such.key"));
    assert_null(topic_config_find(""));
}

static void expect_refused(const char *key, const char *value, const char *needle)
{
    char msg[256];
    assert_int_equal(topic_config_validate(key, value, msg, sizeof(msg)), KERR_INVALID_CONFIG);
    if (!strstr(msg, needle))
        fail_msg("'%s=%s': message '%s' does not say '%s'", key, value ? value : "(null)", msg,
                 needle);
}

static void expect_ok(const char *key, const char *value)
{
    char msg[256];
    if (topic_config_validate(key, value, msg, sizeof(msg)) != KERR_NONE)
        fail_msg("'%s=%s' refused: %s", key, value, msg);
}

static void test_refusals_name_the_key_and_why(void **state)
{
    (void)state;
    expect_refused("cleanup.policy", "Compact", "cleanup.policy");
    expect_refused("cleanup.policy", "delete,shred", "cleanup.policy");
    expect_refused("cleanup.policy", "delete,", "cleanup.policy");
    expect_refused("cleanup.policy", "", "cleanup.policy");
    expect_refused("compression.type", "gzip", "cannot recompress");
    expect_refused("compression.type", "snappy", "compression.type=snappy");
    expect_refused("compression.type", "Producer", "compression.type");
    expect_refused("preallocate", "TRUE", "preallocate");
    expect_refused("no.such.key", "1", "unknown topic config no.such.key");
    expect_refused(NULL, "1", "unknown");
    expect_refused("retention.ms", NULL, "retention.ms");
    expect_refused("retention.ms", "-2", "[-1, ");
    expect_refused("segment.bytes", "2147483648", "segment.bytes");
    expect_refused("segment.ms", "0", "segment.ms");
    expect_refused("min.insync.replicas", "0", "min.insync.replicas");
    expect_refused("message.timestamp.type", "logappendtime", "message.timestamp.type");
    expect_refused("min.cleanable.dirty.ratio", "2", "min.cleanable.dirty.ratio");
    expect_refused("unclean.leader.election.enable", "yes", "unclean");
}

static void test_accepted_values(void **state)
{
    (void)state;
    expect_ok("cleanup.policy", "delete");
    expect_ok("cleanup.policy", "compact");
    expect_ok("cleanup.policy", "compact,delete");
    expect_ok("cleanup.policy", "delete,compact");
    expect_ok("compression.type", "producer");
    expect_ok("compression.type", "uncompressed");
    expect_ok("preallocate", "False");
    expect_ok("unclean.leader.election.enable", "TRUE");
    expect_ok("retention.ms", "-1");
    expect_ok("retention.bytes", "-1");
    expect_ok("segment.bytes", "14");
    expect_ok("segment.bytes", "2147483647");
    expect_ok("message.timestamp.type", "LogAppendTime");
    expect_ok("message.timestamp.difference.max.ms", "9223372036854775807");
    expect_ok("min.cleanable.dirty.ratio", "0.01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_sorted_and_complete),
        cmocka_unit_test(test_refusals_name_the_key_and_why),
        cmocka_unit_test(test_accepted_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
