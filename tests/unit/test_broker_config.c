/* test_broker_config: the broker's configuration keys — defaults with Kafka's
 * names, the combined storage keys, bad values rejected naming the key, the
 * zookeeper.connect alias, and listener parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "common/config.h"
#include "common/log.h"

struct fixture {
    struct config *c;
    struct config_def *defs;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(broker_config_new(&f->c, &f->defs), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    config_free(f->c);
    free(f->defs);
    free(f);
    return 0;
}

static void set(struct config *c, const char *kv)
{
    char err[256] = "";
    if (config_apply_override(c, kv, err, sizeof(err)) < 0)
        fail_msg("%s: %s", kv, err);
}

static int resolve(struct config *c, struct broker_settings *s, char *err, size_t errlen)
{
    err[0] = '\0';
    return broker_settings_resolve(c, s, err, errlen);
}

static void test_defaults_use_kafka_values(void **state)
{
    struct fixture *f = *state;
    set(f->c, "coordinator.connect=127.0.0.1:2181");
    struct broker_settings s;
    char err[256];
    assert_int_equal(resolve(f->c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.broker_id, 0);
    assert_string_equal(s.listen.listener, "PLAINTEXT");
    assert_string_equal(s.listen.host, "127.0.0.1");
    assert_int_equal(s.listen.port, 9092);
    /* No advertised.listeners: clients are told the listener. */
    assert_string_equal(s.advertised.host, "127.0.0.1");
    assert_int_equal(s.advertised.port, 9092);
    assert_string_equal(s.coord_host, "127.0.0.1");
    assert_int_equal(s.coord_port, 2181);
    assert_int_equal(s.message_max_bytes, 1048588);
    assert_int_equal(s.socket_request_max_bytes, 104857600);
    assert_true(s.auto_create_topics);
    assert_int_equal(s.num_partitions, 1);
    assert_int_equal(s.default_replication_factor, 1);
    assert_int_equal(s.connections_max_idle_ms, 600000);
    assert_int_equal(s.queued_max_requests, 500);
    assert_int_equal(s.admin_timeout_ms, 30000);
    assert_null(s.rack);
    assert_null(s.replication_listener);
}

static void test_registry_holds_broker_and_storage_keys(void **state)
{
    struct fixture *f = *state;
    const char *keys[] = {"broker.id",         "listeners",
                          "message.max.bytes", "auto.create.topics.enable",
                          "num.partitions",    "default.replication.factor",
                          "zookeeper.connect", "log.dirs",
                          "log.segment.bytes"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (!config_find_def(f->c, keys[i]))
            fail_msg("key '%s' missing", keys[i]);
    }
    assert_null(config_find_def(f->c, "message.max.byte"));
}

static void test_kafka_key_names_set_the_settings(void **state)
{
    struct fixture *f = *state;
    set(f->c, "broker.id=7");
    set(f->c, "listeners=PLAINTEXT://0.0.0.0:19092");
    set(f->c, "coordinator.connect=coord.example:2999");
    set(f->c, "message.max.bytes=2097152");
    set(f->c, "socket.request.max.bytes=4096");
    set(f->c, "auto.create.topics.enable=false");
    set(f->c, "num.partitions=12");
    set(f->c, "default.replication.factor=3");
    set(f->c, "connections.max.idle.ms=1234");
    set(f->c, "queued.max.requests=9");
    set(f->c, "request.timeout.ms=700");
    set(f->c, "broker.rack=r1");
    struct broker_settings s;
    char err[256];
    assert_int_equal(resolve(f->c, &s, err, sizeof(err)), 0);
    assert_int_equal(s.broker_id, 7);
    assert_string_equal(s.listen.host, "0.0.0.0");
    assert_int_equal(s.listen.port, 19092);
    /* A wildcard listener is not an address a client can use. */
    assert_string_equal(s.advertised.host, "127.0.0.1");
    assert_int_equal(s.advertised.port, 19092);
    assert_string_equal(s.coord_host, "coord.example");
    assert_int_equal(s.coord_port, 2999);
    assert_int_equal(s.message_max_bytes, 2097152);
    assert_int_equal(s.socket_request_max_bytes, 4096);
    assert_false(s.auto_create_topics);
    assert_int_equal(s.num_partitions, 12);
    assert_int_equal(s.default_replication_factor, 3);
    assert_int_equal(s.connections_max_idle_ms, 1234);
    assert_int_equal(s.queued_max_requests, 9);
    assert_int_equal(s.admin_timeout_ms, 700);
    assert_string_equal(s.rack, "r1");
}

static void test_advertised_listeners_override_the_listener(void **state)
{
    struct fixture *f = *state;
    set(f->c, "coordinator.connect=127.0.0.1:2181");
    set(f->c, "listeners=PLAINTEXT://0.0.0.0:9093");
    set(f->c, "advertised.listeners=PLAINTEXT://broker-1.example:29093");
    struct broker_settings s;
    char err[256];
    assert_int_equal(resolve(f->c, &s, err, sizeof(err)), 0);
    assert_string_equal(s.advertised.host, "broker-1.example");
    assert_int_equal(s.advertised.port, 29093);
    assert_int_equal(s.listen.port, 9093);
}

static void test_bad_advertised_listener_fails_resolve_naming_the_key(void **state)
{
    struct fixture *f = *state;
    set(f->c, "coordinator.connect=127.0.0.1:2181");
    set(f->c, "advertised.listeners=PLAINTEXT://:9092"); /* no host to advertise */
    struct broker_settings s;
    char err[256];
    assert_int_equal(resolve(f->c, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "advertised.listeners"));
}

static void test_zookeeper_connect_is_an_alias_with_a_warning(void **state)
{
    struct fixture *f = *state;
    set(f->c, "zookeeper.connect=zk.example:2181");
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    assert_non_null(mf);
    log_set_output(mf);
    struct broker_settings s;
    char err[256];
    int r = resolve(f->c, &s, err, sizeof(err));
    log_set_output(NULL);
    fclose(mf);
    assert_int_equal(r, 0);
    assert_string_equal(s.coord_host, "zk.example");
    assert_int_equal(s.coord_port, 2181);
    assert_non_null(buf);
    assert_non_null(strstr(buf, "zookeeper.connect"));
    assert_non_null(strstr(buf, "WARN"));
    free(buf);
}

static void test_coordinator_connect_wins_over_the_alias_silently(void **state)
{
    struct fixture *f = *state;
    set(f->c, "zookeeper.connect=zk.example:2181");
    set(f->c, "coordinator.connect=coord.example:3000");
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    assert_non_null(mf);
    log_set_output(mf);
    struct broker_settings s;
    char err[256];
    int r = resolve(f->c, &s, err, sizeof(err));
    log_set_output(NULL);
    fclose(mf);
    assert_int_equal(r, 0);
    assert_string_equal(s.coord_host, "coord.example");
    assert_int_equal(s.coord_port, 3000);
    assert_null(strstr(buf ? buf : "", "zookeeper.connect"));
    free(buf);
}

static void test_missing_coordinator_connect_is_an_error(void **state)
{
    struct fixture *f = *state;
    struct broker_settings s;
    memset(&s, 0x5a, sizeof(s));
    struct broker_settings before = s;
    char err[256];
    assert_int_equal(resolve(f->c, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "coordinator.connect"));
    /* Output written only on success. */
    assert_memory_equal(&s, &before, sizeof(s));
}

static void test_bad_coordinator_connect_is_rejected_naming_the_key(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {"coordinator.connect=nohostport", "coordinator.connect=:2181",
                         "coordinator.connect=h:0", "coordinator.connect=PLAINTEXT://h:1",
                         "coordinator.connect=h:99999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        set(f->c, bad[i]);
        struct broker_settings s;
        char err[256];
        if (resolve(f->c, &s, err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        if (!strstr(err, "coordinator.connect"))
            fail_msg("'%s': message does not name the key: %s", bad[i], err);
    }
}

static void test_bad_values_are_rejected_naming_the_key(void **state)
{
    struct fixture *f = *state;
    const char *bad[][2] = {
        {"broker.id=-1", "broker.id"},
        {"broker.id=abc", "broker.id"},
        {"message.max.bytes=10", "message.max.bytes"},
        {"socket.request.max.bytes=12", "socket.request.max.bytes"},
        {"num.partitions=0", "num.partitions"},
        {"default.replication.factor=0", "default.replication.factor"},
        {"auto.create.topics.enable=maybe", "auto.create.topics.enable"},
        {"listeners=localhost", "listeners"},
        {"listeners=PLAINTEXT://h:70000", "listeners"},
        {"log.level=loud", "log.level"},
        {"queued.max.requests=0", "queued.max.requests"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        int r = config_apply_override(f->c, bad[i][0], err, sizeof(err));
        if (r != -EINVAL)
            fail_msg("'%s' gave %d", bad[i][0], r);
        if (!strstr(err, bad[i][1]))
            fail_msg("'%s': message does not name the key: %s", bad[i][0], err);
    }
    /* The rejected values left the defaults in place. */
    assert_int_equal(config_get_int(f->c, "message.max.bytes"), 1048588);
    assert_string_equal(config_get_string(f->c, "listeners"), "PLAINTEXT://127.0.0.1:9092");
}

static void test_unknown_key_is_rejected_on_the_command_line(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    assert_int_equal(config_apply_override(f->c, "message.max.byte=5", err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "message.max.byte"));
}

static void test_listener_forms_parse(void **state)
{
    (void)state;
    struct broker_endpoint ep;
    assert_int_equal(broker_config_parse_endpoint("PLAINTEXT://10.0.0.1:9092", &ep), 0);
    assert_string_equal(ep.listener, "PLAINTEXT");
    assert_string_equal(ep.host, "10.0.0.1");
    assert_int_equal(ep.port, 9092);
    assert_int_equal(broker_config_parse_endpoint("host-a:1", &ep), 0);
    assert_string_equal(ep.listener, "PLAINTEXT");
    assert_string_equal(ep.host, "host-a");
    assert_int_equal(ep.port, 1);
    assert_int_equal(broker_config_parse_endpoint("PLAINTEXT://[::1]:65535", &ep), 0);
    assert_string_equal(ep.host, "::1");
    assert_int_equal(ep.port, 65535);
    /* Empty host: every interface; port 0: an ephemeral port. */
    assert_int_equal(broker_config_parse_endpoint("PLAINTEXT://:0", &ep), 0);
    assert_string_equal(ep.host, "");
    assert_int_equal(ep.port, 0);
    assert_int_equal(broker_config_parse_endpoint("INTERNAL://h:5", &ep), 0);
    assert_string_equal(ep.listener, "INTERNAL");
}

static void test_bad_listeners_are_refused_without_touching_output(void **state)
{
    (void)state;
    const char *bad[] = {"localhost",
                         "PLAINTEXT://h",
                         "h:",
                         "h:65536",
                         "h:-1",
                         "h:12a",
                         "://h:1",
                         "PLAINTEXT://a:1,PLAINTEXT://b:2",
                         "AVERYVERYVERYLONGLISTENERNAME_OVER_32://h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct broker_endpoint ep;
        memset(&ep, 0x77, sizeof(ep));
        struct broker_endpoint before = ep;
        if (broker_config_parse_endpoint(bad[i], &ep) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_memory_equal(&ep, &before, sizeof(ep));
    }
    /* A host longer than the buffer is refused, not truncated. */
    char longhost[BROKER_HOST_MAX + 16];
    memset(longhost, 'a', sizeof(longhost));
    snprintf(longhost + BROKER_HOST_MAX + 4, 12, ":9092");
    struct broker_endpoint ep;
    assert_int_equal(broker_config_parse_endpoint(longhost, &ep), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_use_kafka_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_holds_broker_and_storage_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_kafka_key_names_set_the_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advertised_listeners_override_the_listener, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_advertised_listener_fails_resolve_naming_the_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_zookeeper_connect_is_an_alias_with_a_warning, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_connect_wins_over_the_alias_silently,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_coordinator_connect_is_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_coordinator_connect_is_rejected_naming_the_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_are_rejected_naming_the_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_is_rejected_on_the_command_line, setup,
                                        teardown),
        cmocka_unit_test(test_listener_forms_parse),
        cmocka_unit_test(test_bad_listeners_are_refused_without_touching_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
