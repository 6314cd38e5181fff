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
        /* Only the throttled replica lists have no broker default, as in Kafka. */
        assert_true(d->broker_key || d->type == TOPIC_CONFIG_REPLICAS);
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
    expect_refused("compression.type", "GZIP", "compression.type");
    expect_refused("compression.type", "lz4hc", "compression.type");
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
    expect_ok("compression.type", "gzip");
    expect_ok("compression.type", "snappy");
    expect_ok("compression.type", "lz4");
    expect_ok("compression.type", "zstd");
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

static void test_throttled_replica_lists(void **state)
{
    (void)state;
    const char *key = "leader.replication.throttled.replicas";
    char msg[256];
    const char *good[] = {"", "*", "0:1", "0:1,0:2,3:101", " 0:1 , 1:2", " * "};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(topic_config_validate(key, good[i], msg, sizeof(msg)), KERR_NONE);
    expect_refused(key, "0", "partition:broker");
    expect_refused(key, "0:1,", "partition:broker");
    expect_refused(key, "a:1", "partition:broker");
    expect_refused(key, "-1:1", "partition:broker");
    expect_refused(key, "0:99999999999", "partition:broker");
    expect_refused(key, "*,0:1", "partition:broker");
    expect_refused("follower.replication.throttled.replicas", "1:", "partition:broker");

    assert_true(topic_config_replica_listed("0:1,0:2,3:101", 3, 101));
    assert_true(topic_config_replica_listed("0:1,0:2,3:101", 0, 2));
    assert_false(topic_config_replica_listed("0:1,0:2,3:101", 0, 3));
    assert_false(topic_config_replica_listed("0:1,0:2,3:101", 1, 1));
    assert_true(topic_config_replica_listed(" 0:1 , 1:2", 1, 2));
    assert_true(topic_config_replica_listed("*", 7, 9));
    assert_false(topic_config_replica_listed("", 0, 1));
    assert_false(topic_config_replica_listed(NULL, 0, 1));
    assert_false(topic_config_replica_listed("garbage", 0, 1));

    bool l[4];
    topic_config_replicas_of_broker("0:1,2:1,2:2,9:1", 1, l, 4);
    assert_true(l[0] && !l[1] && l[2] && !l[3]);
    topic_config_replicas_of_broker("0:1,2:1", 2, l, 4);
    assert_true(!l[0] && !l[1] && !l[2] && !l[3]);
    topic_config_replicas_of_broker("*", 2, l, 4);
    assert_true(l[0] && l[1] && l[2] && l[3]);
    topic_config_replicas_of_broker("0:1,x", 1, l, 4);
    assert_false(l[0]);
    topic_config_replicas_of_broker(NULL, 1, l, 4);
    assert_false(l[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_sorted_and_complete),
        cmocka_unit_test(test_refusals_name_the_key_and_why),
        cmocka_unit_test(test_accepted_values),
        cmocka_unit_test(test_throttled_replica_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
