/* test_coord_config: the coordinator's configuration keys — listener parsing,
 * defaults, and the cross-key checks of coord_config_resolve(). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "coordinator/coord_config.h"

static struct config *new_config(void)
{
    struct config *c = NULL;
    assert_int_equal(config_new(coord_config_defs, coord_config_ndefs, &c), 0);
    return c;
}

static void set(struct config *c, const char *kv)
{
    char err[256] = "";
    if (config_apply_override(c, kv, err, sizeof(err)) < 0)
        fail_msg("%s: %s", kv, err);
}

static void test_listener_forms_parse(void **state)
{
    (void)state;
    struct coord_listener l;
    char err[256];
    assert_int_equal(coord_config_parse_listener("127.0.0.1:2181", &l, err, sizeof(err)), 0);
    assert_string_equal(l.host, "127.0.0.1");
    assert_int_equal(l.port, 2181);
    assert_int_equal(coord_config_parse_listener("PLAINTEXT://node-1:9", &l, err, sizeof(err)), 0);
    assert_string_equal(l.host, "node-1");
    assert_int_equal(l.port, 9);
    assert_int_equal(coord_config_parse_listener("[::1]:65535", &l, err, sizeof(err)), 0);
    assert_string_equal(l.host, "::1");
    assert_int_equal(l.port, 65535);
    assert_int_equal(coord_config_parse_listener(":0", &l, err, sizeof(err)), 0);
    assert_string_equal(l.host, "");
    assert_int_equal(l.port, 0);
}

static void test_bad_listeners_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"localhost", "host:",     "host:65536", "host:12a", "SSL://h:1",
                         "::1:2181",  "[::1]2181", "host:-1",    "a b:1",    "PLAINTEXT//h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct coord_listener l;
        char err[256] = "";
        if (coord_config_parse_listener(bad[i], &l, err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* Through the registry the message names the key. */
    struct config *c = new_config();
    char err[256] = "";
    assert_int_equal(config_apply_override(c, "listeners=SSL://h:1", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "listeners"));
    assert_int_equal(config_apply_override(c, "listeners=", err, sizeof(err)), -EINVAL);
    config_free(c);
}

static void test_defaults_resolve_as_documented(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/var/lib/weir/coordinator");
    struct coord_settings s;
    char err[256] = "";
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.node_id, 1);
    assert_int_equal(s.n_listeners, 1);
    assert_string_equal(s.listeners[0].host, "127.0.0.1");
    assert_int_equal(s.listeners[0].port, 2181);
    assert_string_equal(s.data_dir, "/var/lib/weir/coordinator");
    assert_int_equal(s.session_timeout_ms, 9000);
    assert_int_equal(s.heartbeat_interval_ms, 2000);
    assert_int_equal(s.session_disconnect_timeout_ms, 500);
    assert_int_equal(s.session_grace_bytes_per_ms, 16);
    assert_int_equal(s.num_partitions, 1);
    assert_int_equal(s.default_replication_factor, 1);
    assert_int_equal(s.min_insync_replicas, 1);
    assert_false(s.unclean_leader_election);
    assert_true(s.auto_create_topics);
    assert_int_equal(s.offsets_topic_num_partitions, 50);
    assert_int_equal(s.offsets_topic_replication_factor, 3);
    assert_true(s.auto_leader_rebalance);
    assert_int_equal(s.leader_imbalance_check_interval_ms, 300000);
    assert_int_equal(s.snapshot_interval_records, 10000);
    assert_int_equal(s.max_frame_bytes, 16u * 1024 * 1024);
    assert_true(s.max_record_bytes < s.max_frame_bytes);
    assert_int_equal(s.log_level, LOG_LEVEL_INFO);
    config_free(c);
}

static void test_missing_data_dir_is_an_error_naming_the_key(void **state)
{
    (void)state;
    struct config *c = new_config();
    struct coord_settings s;
    char err[256] = "";
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "data.dir"));
    config_free(c);
}

static void test_heartbeat_interval_must_be_below_session_timeout(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/d");
    set(c, "session.timeout.ms=1500");
    set(c, "heartbeat.interval.ms=1500");
    struct coord_settings s;
    char err[256] = "";
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "heartbeat.interval.ms"));
    set(c, "heartbeat.interval.ms=500");
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.session_timeout_ms, 1500);
    config_free(c);
}

static void test_busy_grace_rate_is_range_checked(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/d");
    const char *bad[] = {"session.busy.grace.bytes.per.ms=-1",
                         "session.busy.grace.bytes.per.ms=1073741825",
                         "session.busy.grace.bytes.per.ms=fast"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        if (config_apply_override(c, bad[i], err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        if (!strstr(err, "session.busy.grace.bytes.per.ms"))
            fail_msg("'%s': message does not name the key: %s", bad[i], err);
    }
    struct coord_settings s;
    char err[256] = "";
    set(c, "session.busy.grace.bytes.per.ms=0");
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.session_grace_bytes_per_ms, 0);
    set(c, "session.busy.grace.bytes.per.ms=64");
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.session_grace_bytes_per_ms, 64);
    config_free(c);
}

static void test_disconnect_timeout_is_range_checked(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/d");
    const char *bad[] = {"session.disconnect.timeout.ms=-1", "session.disconnect.timeout.ms=600001",
                         "session.disconnect.timeout.ms=abc", "session.disconnect.timeout.ms="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        if (config_apply_override(c, bad[i], err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        if (!strstr(err, "session.disconnect.timeout.ms"))
            fail_msg("'%s': message does not name the key: %s", bad[i], err);
    }
    struct coord_settings s;
    char err[256] = "";
    set(c, "session.disconnect.timeout.ms=0");
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.session_disconnect_timeout_ms, 0);
    set(c, "session.disconnect.timeout.ms=600000");
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.session_disconnect_timeout_ms, 600000);
    config_free(c);
}

static void test_several_listeners_resolve_in_order(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/d");
    set(c, "listeners=PLAINTEXT://0.0.0.0:2181, [::]:2182");
    struct coord_settings s;
    char err[256] = "";
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_listeners, 2);
    assert_string_equal(s.listeners[0].host, "0.0.0.0");
    assert_int_equal(s.listeners[1].port, 2182);
    assert_string_equal(s.listeners[1].host, "::");
    config_free(c);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_forms_parse),
        cmocka_unit_test(test_bad_listeners_are_refused),
        cmocka_unit_test(test_defaults_resolve_as_documented),
        cmocka_unit_test(test_missing_data_dir_is_an_error_naming_the_key),
        cmocka_unit_test(test_heartbeat_interval_must_be_below_session_timeout),
        cmocka_unit_test(test_several_listeners_resolve_in_order),
        cmocka_unit_test(test_disconnect_timeout_is_range_checked),
        cmocka_unit_test(test_busy_grace_rate_is_range_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
