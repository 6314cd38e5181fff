/* Tests for broker/storage/storage_config: the storage keys, their Kafka defaults,
 * Kafka's precedence rules and the registry's errors for bad values. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <unistd.h>

#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "broker/storage/storage_config.h"
#include "common/config.h"
#include "testutil.h"

static struct config *new_config(void)
{
    struct config *c;
    assert_int_equal(config_new(storage_config_defs, storage_config_ndefs, &c), 0);
    return c;
}

static void set(struct config *c, const char *key, const char *value)
{
    char err[256];
    int r = config_set(c, key, value, CONFIG_SOURCE_OVERRIDE, err, sizeof(err));
    if (r != 0)
        fail_msg("setting %s=%s: %s", key, value, err);
}

static void test_defaults_equal_kafka(void **state)
{
    (void)state;
    struct config *c = new_config();
    assert_int_equal(config_get_int(c, "log.segment.bytes"), 1073741824);
    assert_null(config_get_raw(c, "log.roll.ms"));
    assert_int_equal(config_get_int(c, "log.roll.hours"), 168);
    assert_int_equal(config_get_int(c, "log.index.interval.bytes"), 4096);
    assert_int_equal(config_get_int(c, "log.index.size.max.bytes"), 10485760);
    assert_null(config_get_raw(c, "log.retention.ms"));
    assert_null(config_get_raw(c, "log.retention.minutes"));
    assert_int_equal(config_get_int(c, "log.retention.hours"), 168);
    assert_int_equal(config_get_int(c, "log.retention.bytes"), -1);
    assert_int_equal(config_get_int(c, "log.retention.check.interval.ms"), 300000);
    assert_int_equal(config_get_int(c, "log.flush.interval.messages"), INT64_MAX);
    assert_null(config_get_raw(c, "log.flush.interval.ms"));
    assert_int_equal(config_get_int(c, "log.flush.scheduler.interval.ms"), INT64_MAX);
    assert_int_equal(config_get_int(c, "log.flush.offset.checkpoint.interval.ms"), 60000);
    assert_int_equal(config_get_int(c, "log.flush.start.offset.checkpoint.interval.ms"), 60000);
    assert_int_equal(config_get_int(c, "replica.high.watermark.checkpoint.interval.ms"), 5000);
    assert_int_equal(config_get_int(c, "num.recovery.threads.per.data.dir"), 1);
    assert_int_equal(config_get_int(c, "log.open.files.max"), 0);
    assert_true(config_get_bool(c, "log.cleaner.enable"));
    assert_int_equal(config_get_int(c, "log.cleaner.threads"), 1);
    assert_int_equal(config_get_int(c, "log.cleaner.dedupe.buffer.size"), 134217728);
    assert_int_equal(config_get_int(c, "log.cleaner.backoff.ms"), 15000);
    assert_true(config_get_double(c, "log.cleaner.min.cleanable.ratio") == 0.5);
    assert_int_equal(config_get_int(c, "log.cleaner.delete.retention.ms"), 86400000);
    assert_int_equal(config_get_int(c, "log.cleaner.min.compaction.lag.ms"), 0);
    assert_int_equal(config_get_int(c, "log.cleaner.max.compaction.lag.ms"), INT64_MAX);
    assert_null(config_get_raw(c, "log.dirs"));
    assert_string_equal(config_get_raw(c, "log.dir"), "/tmp/kafka-logs");

    struct plog_config pc;
    storage_config_plog(c, &pc);
    assert_int_equal(pc.segment_bytes, 1073741824);
    assert_int_equal(pc.roll_ms, 168LL * 3600 * 1000);
    assert_int_equal(pc.index_interval_bytes, 4096);
    assert_int_equal(pc.max_index_bytes, 10485760);
    assert_int_equal(pc.retention_ms, 168LL * 3600 * 1000);
    assert_int_equal(pc.retention_bytes, -1);
    assert_int_equal(pc.flush_interval_messages, INT64_MAX);
    assert_int_equal(pc.flush_interval_ms, INT64_MAX);

    /* The storage layer's own defaults must agree with the keys' defaults. */
    struct plog_config def;
    plog_config_defaults(&def);
    assert_int_equal(def.segment_bytes, pc.segment_bytes);
    assert_int_equal(def.roll_ms, pc.roll_ms);
    assert_int_equal(def.index_interval_bytes, pc.index_interval_bytes);
    assert_int_equal(def.max_index_bytes, pc.max_index_bytes);
    assert_int_equal(def.retention_ms, pc.retention_ms);
    assert_int_equal(def.retention_bytes, pc.retention_bytes);
    assert_int_equal(def.flush_interval_messages, pc.flush_interval_messages);
    assert_int_equal(def.flush_interval_ms, pc.flush_interval_ms);
    config_free(c);
}

static void test_every_key_is_documented(void **state)
{
    (void)state;
    assert_true(storage_config_ndefs >= 19);
    for (size_t i = 0; i < storage_config_ndefs; i++) {
        const struct config_def *d = &storage_config_defs[i];
        assert_non_null(d->name);
        assert_non_null(d->doc);
        assert_true(strlen(d->doc) > 10);
        assert_null(strchr(d->doc, '\n'));
    }
}

static void test_retention_ms_beats_minutes_beats_hours(void **state)
{
    (void)state;
    struct plog_config pc;
    struct config *c = new_config();
    set(c, "log.retention.hours", "2");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.retention_ms, 2 * 3600000LL);

    set(c, "log.retention.minutes", "30");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.retention_ms, 30 * 60000LL);

    set(c, "log.retention.ms", "1234");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.retention_ms, 1234);

    set(c, "log.retention.ms", "-1");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.retention_ms, -1);
    config_free(c);

    /* Any negative result means "forever", whichever key produced it. */
    c = new_config();
    set(c, "log.retention.minutes", "-5");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.retention_ms, -1);
    config_free(c);
    c = new_config();
    set(c, "log.retention.hours", "-1");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.retention_ms, -1);
    config_free(c);

    /* Large hour counts do not overflow. */
    c = new_config();
    set(c, "log.retention.hours", "2147483647");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.retention_ms, 2147483647LL * 3600000LL);
    config_free(c);
}

static void test_roll_ms_beats_roll_hours(void **state)
{
    (void)state;
    struct plog_config pc;
    struct config *c = new_config();
    set(c, "log.roll.hours", "1");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.roll_ms, 3600000);
    set(c, "log.roll.ms", "5000");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.roll_ms, 5000);
    config_free(c);
}

static void test_flush_and_size_keys_resolve(void **state)
{
    (void)state;
    struct plog_config pc;
    struct config *c = new_config();
    set(c, "log.flush.interval.ms", "1000");
    set(c, "log.flush.interval.messages", "10");
    set(c, "log.segment.bytes", "14");
    set(c, "log.index.interval.bytes", "0");
    set(c, "log.index.size.max.bytes", "4");
    set(c, "log.retention.bytes", "1048576");
    storage_config_plog(c, &pc);
    assert_int_equal(pc.flush_interval_ms, 1000);
    assert_int_equal(pc.flush_interval_messages, 10);
    assert_int_equal(pc.segment_bytes, 14);
    assert_int_equal(pc.index_interval_bytes, 0);
    assert_int_equal(pc.max_index_bytes, 4);
    assert_int_equal(pc.retention_bytes, 1048576);
    config_free(c);
}

static void expect_bad(struct config *c, const char *key, const char *value, const char *expect)
{
    char err[256] = "";
    int r = config_set(c, key, value, CONFIG_SOURCE_FILE, err, sizeof(err));
    if (r != -EINVAL)
        fail_msg("%s=%s gave %d, want -EINVAL", key, value, r);
    char quoted[128];
    snprintf(quoted, sizeof(quoted), "'%s'", key);
    if (!strstr(err, quoted) || !strstr(err, expect))
        fail_msg("%s=%s: message \"%s\" lacks %s or \"%s\"", key, value, err, quoted, expect);
}

static void test_bad_values_name_the_key(void **state)
{
    (void)state;
    struct config *c = new_config();
    expect_bad(c, "log.segment.bytes", "13", "[14, 2147483647]");
    expect_bad(c, "log.segment.bytes", "2147483648", "[14, 2147483647]");
    expect_bad(c, "log.segment.bytes", "1g", "integer");
    expect_bad(c, "log.roll.hours", "0", "[1, ");
    expect_bad(c, "log.roll.ms", "0", "[1, ");
    expect_bad(c, "log.index.interval.bytes", "-1", "[0, ");
    expect_bad(c, "log.index.size.max.bytes", "3", "[4, ");
    expect_bad(c, "log.retention.hours", "abc", "integer");
    expect_bad(c, "log.retention.minutes", "2147483648", "integer");
    expect_bad(c, "log.retention.check.interval.ms", "0", "[1, ");
    expect_bad(c, "log.flush.interval.messages", "0", "[1, ");
    expect_bad(c, "log.flush.interval.ms", "-1", "[0, ");
    expect_bad(c, "log.flush.offset.checkpoint.interval.ms", "-1", "[0, ");
    expect_bad(c, "num.recovery.threads.per.data.dir", "0", "[1, ");
    expect_bad(c, "log.open.files.max", "-1", "[0, ");
    expect_bad(c, "log.dirs", "/a,,/b", "directories");
    expect_bad(c, "log.dirs", "", "directories");
    expect_bad(c, "log.dir", " , ", "directories");
    /* A rejected value leaves the previous one in place. */
    assert_int_equal(config_get_int(c, "log.segment.bytes"), 1073741824);
    config_free(c);
}

static void test_log_dirs_beat_log_dir(void **state)
{
    (void)state;
    struct config *c = new_config();
    const char *const *dirs;
    size_t n;
    assert_int_equal(storage_config_log_dirs(c, &dirs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(dirs[0], "/tmp/kafka-logs");

    set(c, "log.dir", "/data/one");
    assert_int_equal(storage_config_log_dirs(c, &dirs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(dirs[0], "/data/one");

    set(c, "log.dirs", "/d1, /d2 ,/d3");
    assert_int_equal(storage_config_log_dirs(c, &dirs, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(dirs[0], "/d1");
    assert_string_equal(dirs[1], "/d2");
    assert_string_equal(dirs[2], "/d3");
    config_free(c);
}

static void test_properties_file_resolves_to_logmgr_options(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("storage-config");
    char path[512];
    snprintf(path, sizeof(path), "%s/server.properties", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# storage settings\n"
          "log.dirs=/var/weir/a,/var/weir/b\n"
          "log.segment.bytes=4096\n"
          "log.retention.minutes=10\n"
          "log.flush.offset.checkpoint.interval.ms=1000\n"
          "log.flush.start.offset.checkpoint.interval.ms=2000\n"
          "replica.high.watermark.checkpoint.interval.ms=700\n"
          "log.retention.check.interval.ms=3000\n"
          "log.flush.scheduler.interval.ms=4000\n"
          "log.open.files.max=256\n",
          f);
    fclose(f);

    struct config *c = new_config();
    char err[256];
    assert_int_equal(config_load_file(c, path, err, sizeof(err)), 0);
    struct logmgr_options o;
    assert_int_equal(storage_config_logmgr_options(c, &o), 0);
    assert_int_equal(o.ndirs, 2);
    assert_string_equal(o.dirs[0], "/var/weir/a");
    assert_string_equal(o.dirs[1], "/var/weir/b");
    assert_int_equal(o.log_config.segment_bytes, 4096);
    assert_int_equal(o.log_config.retention_ms, 600000);
    assert_int_equal(o.recovery_checkpoint_interval_ms, 1000);
    assert_int_equal(o.start_offset_checkpoint_interval_ms, 2000);
    assert_int_equal(o.hw_checkpoint_interval_ms, 700);
    assert_int_equal(o.retention_check_interval_ms, 3000);
    assert_int_equal(o.flush_scheduler_interval_ms, 4000);
    assert_int_equal(o.max_open_files, 256);
    assert_null(o.now_ms);
    assert_null(o.on_event);
    config_free(c);
    testutil_rmtree(dir);
}

static void test_default_logmgr_options_match_keys(void **state)
{
    (void)state;
    struct config *c = new_config();
    struct logmgr_options o, d;
    assert_int_equal(storage_config_logmgr_options(c, &o), 0);
    logmgr_options_defaults(&d);
    assert_int_equal(o.recovery_checkpoint_interval_ms, d.recovery_checkpoint_interval_ms);
    assert_int_equal(o.start_offset_checkpoint_interval_ms, d.start_offset_checkpoint_interval_ms);
    assert_int_equal(o.retention_check_interval_ms, d.retention_check_interval_ms);
    assert_int_equal(o.flush_scheduler_interval_ms, d.flush_scheduler_interval_ms);
    assert_int_equal(o.max_open_files, d.max_open_files);
    config_free(c);

    int n = logmgr_default_max_open_files();
    assert_true(n >= 64 && n <= 65536);
}

static const struct config_def broker_defs[] = {
    {.name = "broker.id",
     .type = CONFIG_INT,
     .default_value = "-1",
     .min = -1,
     .max = INT32_MAX,
     .doc = "The broker id."},
    {.name = "num.partitions",
     .type = CONFIG_INT,
     .default_value = "1",
     .min = 1,
     .max = INT32_MAX,
     .doc = "Default number of partitions per topic."},
};

static void test_combined_defs_serve_both_sets_of_keys(void **state)
{
    (void)state;
    struct config_def *defs;
    size_t n;
    assert_int_equal(storage_config_defs_combine(broker_defs, 2, &defs, &n), 0);
    assert_int_equal(n, 2 + storage_config_ndefs);
    struct config *c;
    assert_int_equal(config_new(defs, n, &c), 0);
    set(c, "broker.id", "7");
    set(c, "log.segment.bytes", "1048576");
    assert_int_equal(config_get_int(c, "broker.id"), 7);
    assert_int_equal(config_get_int(c, "num.partitions"), 1);
    struct plog_config pc;
    storage_config_plog(c, &pc);
    assert_int_equal(pc.segment_bytes, 1048576);
    config_free(c);
    free(defs);

    /* No program keys at all is fine too. */
    assert_int_equal(storage_config_defs_combine(NULL, 0, &defs, &n), 0);
    assert_int_equal(n, storage_config_ndefs);
    free(defs);
}

static void test_topic_overrides_map_onto_log_settings(void **state)
{
    (void)state;
    struct plog_config cfg, before;
    plog_config_defaults(&cfg);
    assert_int_equal(storage_config_topic_override(&cfg, "segment.bytes", "1048576"), 1);
    assert_int_equal(cfg.segment_bytes, 1048576);
    assert_int_equal(storage_config_topic_override(&cfg, "segment.ms", "60000"), 1);
    assert_int_equal(cfg.roll_ms, 60000);
    assert_int_equal(storage_config_topic_override(&cfg, "segment.jitter.ms", "500"), 1);
    assert_int_equal(cfg.roll_jitter_ms, 500);
    assert_int_equal(storage_config_topic_override(&cfg, "segment.index.bytes", "4096"), 1);
    assert_int_equal(cfg.max_index_bytes, 4096);
    assert_int_equal(storage_config_topic_override(&cfg, "index.interval.bytes", "0"), 1);
    assert_int_equal(cfg.index_interval_bytes, 0);
    assert_int_equal(storage_config_topic_override(&cfg, "retention.ms", "-1"), 1);
    assert_int_equal(cfg.retention_ms, -1);
    assert_int_equal(storage_config_topic_override(&cfg, "retention.bytes", "-7"), 1);
    assert_int_equal(cfg.retention_bytes, -1);
    assert_int_equal(storage_config_topic_override(&cfg, "retention.bytes", "1000"), 1);
    assert_int_equal(cfg.retention_bytes, 1000);
    assert_int_equal(storage_config_topic_override(&cfg, "flush.messages", "1"), 1);
    assert_int_equal(cfg.flush_interval_messages, 1);
    assert_int_equal(storage_config_topic_override(&cfg, "flush.ms", "250"), 1);
    assert_int_equal(cfg.flush_interval_ms, 250);
    assert_int_equal(storage_config_topic_override(&cfg, "file.delete.delay.ms", "0"), 1);
    assert_int_equal(cfg.file_delete_delay_ms, 0);
    /* Keys with no storage effect are left to their callers. */
    before = cfg;
    assert_int_equal(storage_config_topic_override(&cfg, "max.message.bytes", "10"), 0);
    /* The compaction keys. */
    assert_int_equal(storage_config_topic_override(&cfg, "cleanup.policy", "compact"), 1);
    assert_true(cfg.cleanup_compact && !cfg.cleanup_delete);
    assert_int_equal(storage_config_topic_override(&cfg, "cleanup.policy", "compact,delete"), 1);
    assert_true(cfg.cleanup_compact && cfg.cleanup_delete);
    assert_int_equal(storage_config_topic_override(&cfg, "cleanup.policy", "delete"), 1);
    assert_true(!cfg.cleanup_compact && cfg.cleanup_delete);
    assert_int_equal(storage_config_topic_override(&cfg, "min.cleanable.dirty.ratio", "0.25"), 1);
    assert_true(cfg.min_cleanable_ratio == 0.25);
    assert_int_equal(storage_config_topic_override(&cfg, "delete.retention.ms", "5"), 1);
    assert_int_equal(cfg.delete_retention_ms, 5);
    assert_int_equal(storage_config_topic_override(&cfg, "min.compaction.lag.ms", "6"), 1);
    assert_int_equal(cfg.min_compaction_lag_ms, 6);
    assert_int_equal(storage_config_topic_override(&cfg, "max.compaction.lag.ms", "7"), 1);
    assert_int_equal(cfg.max_compaction_lag_ms, 7);
    before = cfg;
    assert_int_equal(storage_config_topic_override(&cfg, "cleanup.policy", "shred"), -EINVAL);
    assert_int_equal(storage_config_topic_override(&cfg, "cleanup.policy", ""), -EINVAL);
    assert_int_equal(storage_config_topic_override(&cfg, "min.cleanable.dirty.ratio", "2"),
                     -EINVAL);
    assert_int_equal(storage_config_topic_override(&cfg, "max.compaction.lag.ms", "0"), -EINVAL);
    /* Bad values leave the settings alone. */
    assert_int_equal(storage_config_topic_override(&cfg, "segment.bytes", "13"), -EINVAL);
    assert_int_equal(storage_config_topic_override(&cfg, "segment.bytes", "4294967296"), -EINVAL);
    assert_int_equal(storage_config_topic_override(&cfg, "segment.ms", "0"), -EINVAL);
    assert_int_equal(storage_config_topic_override(&cfg, "retention.ms", "1h"), -EINVAL);
    assert_int_equal(storage_config_topic_override(&cfg, "flush.messages", ""), -EINVAL);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_equal_kafka),
        cmocka_unit_test(test_every_key_is_documented),
        cmocka_unit_test(test_retention_ms_beats_minutes_beats_hours),
        cmocka_unit_test(test_roll_ms_beats_roll_hours),
        cmocka_unit_test(test_flush_and_size_keys_resolve),
        cmocka_unit_test(test_bad_values_name_the_key),
        cmocka_unit_test(test_log_dirs_beat_log_dir),
        cmocka_unit_test(test_properties_file_resolves_to_logmgr_options),
        cmocka_unit_test(test_default_logmgr_options_match_keys),
        cmocka_unit_test(test_combined_defs_serve_both_sets_of_keys),
        cmocka_unit_test(test_topic_overrides_map_onto_log_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
