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

static void test_voters_parse_sorted_and_trimmed(void **state)
{
    (void)state;
    struct coord_voter v[COORD_CONFIG_MAX_VOTERS];
    size_t n = 99;
    char err[256] = "";
    assert_int_equal(coord_config_parse_voters(" 3@c:9093, 1@PLAINTEXT://a:9091 ,2@[::1]:9092", v,
                                               &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].id, 1);
    assert_string_equal(v[0].addr.host, "a");
    assert_int_equal(v[0].addr.port, 9091);
    assert_string_equal(v[1].addr.host, "::1");
    assert_int_equal(v[2].id, 3);
    assert_int_equal(coord_config_parse_voters("", v, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
}

static void test_malformed_voter_lists_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "a:1",                                             /* no id */
        "@a:1",                                            /* empty id */
        "x@a:1",                                           /* id not a number */
        "0@a:1",                                           /* id out of range */
        "99999999999@a:1",                                 /* id out of range */
        "1@a",                                             /* no port */
        "1@a:0",                                           /* port 0: peers could not find it */
        "1@:9092",                                         /* no host */
        "1@a:1,1@b:2",                                     /* id twice */
        "1@a:1,2@a:1",                                     /* address twice */
        "1@a:1,2@b:1,3@c:1,4@d:1,5@e:1,6@f:1,7@g:1,8@h:1", /* too many */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct coord_voter v[COORD_CONFIG_MAX_VOTERS];
        size_t n = 0;
        char err[256] = "";
        if (coord_config_parse_voters(bad[i], v, &n, err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(err[0] != '\0');
        struct config *c = new_config();
        char kv[512];
        snprintf(kv, sizeof(kv), "coordinator.quorum.voters=%s", bad[i]);
        assert_int_equal(config_apply_override(c, kv, err, sizeof(err)), -EINVAL);
        config_free(c);
    }
}

static void test_voters_digest_ignores_spelling_and_order(void **state)
{
    (void)state;
    struct coord_voter a[COORD_CONFIG_MAX_VOTERS], b[COORD_CONFIG_MAX_VOTERS];
    size_t na, nb;
    char err[256];
    assert_int_equal(
        coord_config_parse_voters("1@h1:9092,2@h2:9092,3@h3:9092", a, &na, err, sizeof(err)), 0);
    assert_int_equal(coord_config_parse_voters("3@PLAINTEXT://h3:9092, 2@h2:9092,1@h1:9092", b, &nb,
                                               err, sizeof(err)),
                     0);
    assert_int_equal(coord_config_voters_digest(a, na), coord_config_voters_digest(b, nb));
    assert_int_equal(
        coord_config_parse_voters("1@h1:9092,2@h2:9092,3@h4:9092", b, &nb, err, sizeof(err)), 0);
    assert_int_not_equal(coord_config_voters_digest(a, na), coord_config_voters_digest(b, nb));
}

static void test_node_id_must_be_a_voter_on_its_listener(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/d");
    set(c, "listeners=127.0.0.1:9092");
    set(c, "node.id=4");
    set(c, "coordinator.quorum.voters=1@127.0.0.1:9092");
    struct coord_settings s;
    char err[512] = "";
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "node.id"));
    assert_non_null(strstr(err, "coordinator.quorum.voters"));
    set(c, "node.id=1");
    set(c, "coordinator.quorum.voters=1@127.0.0.1:9093");
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "listeners"));
    set(c, "coordinator.quorum.voters=1@127.0.0.1:9092");
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_voters, 1);
    assert_int_equal(s.voters[0].id, 1);
    config_free(c);
}

static void test_quorum_of_three_resolves_with_its_digest(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/d");
    set(c, "listeners=127.0.0.1:9093");
    set(c, "node.id=2");
    set(c, "coordinator.quorum.voters=3@127.0.0.1:9094,1@127.0.0.1:9092,2@127.0.0.1:9093");
    struct coord_settings s;
    char err[512] = "";
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_voters, 3);
    assert_int_equal(s.voters[0].id, 1);
    assert_int_equal(s.voters_digest, coord_config_voters_digest(s.voters, 3));
    config_free(c);
}

static void test_no_voters_key_means_a_single_coordinator(void **state)
{
    (void)state;
    struct config *c = new_config();
    set(c, "data.dir=/d");
    struct coord_settings s;
    char err[256] = "";
    assert_int_equal(coord_config_resolve(c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_voters, 0);
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
        cmocka_unit_test(test_voters_parse_sorted_and_trimmed),
        cmocka_unit_test(test_malformed_voter_lists_are_refused),
        cmocka_unit_test(test_voters_digest_ignores_spelling_and_order),
        cmocka_unit_test(test_node_id_must_be_a_voter_on_its_listener),
        cmocka_unit_test(test_quorum_of_three_resolves_with_its_digest),
        cmocka_unit_test(test_no_voters_key_means_a_single_coordinator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
