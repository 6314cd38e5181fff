/* Tests for common/dyncfg: the dynamic broker key table agrees with the
 * registries it leans on, and values are checked with the static definitions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "broker/broker_config.h"
#include "broker/storage/storage_config.h"
#include "common/config.h"
#include "common/dyncfg.h"
#include "common/kerr.h"
#include "common/topic_config.h"

static const struct config_def *broker_def(const char *name)
{
    for (size_t i = 0; i < storage_config_ndefs; i++)
        if (!strcmp(storage_config_defs[i].name, name))
            return &storage_config_defs[i];
    for (size_t i = 0; i < broker_config_ndefs; i++)
        if (!strcmp(broker_config_defs[i].name, name))
            return &broker_config_defs[i];
    return NULL;
}

static void test_every_dynamic_key_is_a_broker_key_and_a_topic_default(void **state)
{
    (void)state;
    for (size_t i = 0; i < dyncfg_nkeys; i++) {
        const struct dyncfg_key *k = &dyncfg_keys[i];
        if (i && strcmp(dyncfg_keys[i - 1].name, k->name) >= 0)
            fail_msg("table not sorted at %s", k->name);
        assert_ptr_equal(dyncfg_find(k->name), k);
        /* unclean.leader.election.enable and broker.decommissioned are the
         * coordinator's keys. */
        if (!k->cluster_only && !k->broker_only && !broker_def(k->name))
            fail_msg("%s is not a broker key", k->name);
        if (k->topic_key) {
            const struct topic_config_def *t = topic_config_find(k->topic_key);
            if (!t)
                fail_msg("%s: no topic key %s", k->name, k->topic_key);
            /* The topic key's synonym is this key, or the same key in
             * another unit (log.roll.hours for log.roll.ms). */
            size_t stem = (size_t)(strrchr(k->name, '.') - k->name);
            if (strcmp(t->broker_key, k->name) && strncmp(t->broker_key, k->name, stem + 1))
                fail_msg("%s: topic key %s defaults from %s", k->name, k->topic_key, t->broker_key);
        }
    }
}

static void test_static_and_unknown_keys_are_refused_by_name(void **state)
{
    (void)state;
    char msg[256];
    assert_null(dyncfg_find("log.dirs"));
    assert_null(dyncfg_find("broker.id"));
    assert_int_equal(dyncfg_validate("log.dirs", broker_def("log.dirs"), "/x", msg, sizeof(msg)),
                     KERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "log.dirs"));
    assert_non_null(strstr(msg, "dynamically"));
    assert_int_equal(dyncfg_validate("no.such", NULL, "1", msg, sizeof(msg)), KERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "unknown broker config 'no.such'"));
    assert_int_equal(dyncfg_validate("", NULL, "1", msg, sizeof(msg)), KERR_INVALID_CONFIG);
}

static void test_values_are_checked_with_the_static_definition(void **state)
{
    (void)state;
    char msg[256];
    const struct config_def *seg = broker_def("log.segment.bytes");
    assert_int_equal(dyncfg_validate("log.segment.bytes", seg, "1048576", msg, sizeof(msg)),
                     KERR_NONE);
    assert_int_equal(dyncfg_validate("log.segment.bytes", seg, "13", msg, sizeof(msg)),
                     KERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "'log.segment.bytes'"));
    const struct config_def *ret = broker_def("log.retention.ms");
    assert_int_equal(dyncfg_validate("log.retention.ms", ret, "-1", msg, sizeof(msg)), KERR_NONE);
    assert_int_equal(dyncfg_validate("log.retention.ms", ret, "x", msg, sizeof(msg)),
                     KERR_INVALID_CONFIG);
    const struct config_def *mis = broker_def("min.insync.replicas");
    assert_int_equal(dyncfg_validate("min.insync.replicas", mis, "0", msg, sizeof(msg)),
                     KERR_INVALID_CONFIG);
    assert_int_equal(dyncfg_validate("min.insync.replicas", NULL, "2", msg, sizeof(msg)),
                     KERR_INVALID_CONFIG);
}

/* The coordinator checks the throttle rates with dyncfg_rate_def(), the broker
 * reads them with its registry: the same definitions. */
static void test_throttle_rates_are_checked_as_the_broker_reads_them(void **state)
{
    (void)state;
    char msg[256];
    const char *names[] = {"leader.replication.throttled.rate",
                           "follower.replication.throttled.rate"};
    assert_null(dyncfg_rate_def("log.segment.bytes"));
    for (size_t i = 0; i < 2; i++) {
        const struct config_def *d = dyncfg_rate_def(names[i]), *b = broker_def(names[i]);
        assert_non_null(d);
        assert_non_null(b);
        assert_non_null(dyncfg_find(d->name));
        assert_string_equal(d->default_value, b->default_value);
        assert_int_equal(d->type, b->type);
        assert_true(d->min == b->min && d->max == b->max);
        assert_int_equal(dyncfg_validate(d->name, d, "10485760", msg, sizeof(msg)), KERR_NONE);
        assert_int_equal(dyncfg_validate(d->name, d, "0", msg, sizeof(msg)), KERR_INVALID_CONFIG);
        assert_int_equal(dyncfg_validate(d->name, d, "10M", msg, sizeof(msg)), KERR_INVALID_CONFIG);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_dynamic_key_is_a_broker_key_and_a_topic_default),
        cmocka_unit_test(test_throttle_rates_are_checked_as_the_broker_reads_them),
        cmocka_unit_test(test_static_and_unknown_keys_are_refused_by_name),
        cmocka_unit_test(test_values_are_checked_with_the_static_definition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
