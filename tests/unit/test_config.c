/* Tests for common/config.c: the typed configuration registry. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "testutil.h"

static const char *const cleanup_choices[] = {"delete", "compact", NULL};

static int validate_hostport(const struct config_def *def, const char *value, char *err,
                             size_t errlen)
{
    (void)def;
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value || colon[1] == '\0') {
        snprintf(err, errlen, "a host:port");
        return -EINVAL;
    }
    return 0;
}

static const struct config_def test_defs[] = {
    {.name = "log.segment.bytes",
     .type = CONFIG_INT,
     .default_value = "1073741824",
     .min = 14,
     .max = 2147483647,
     .doc = "segment size"},
    {.name = "auto.create.topics.enable",
     .type = CONFIG_BOOL,
     .default_value = "true",
     .doc = "auto create"},
    {.name = "log.cleanup.policy",
     .type = CONFIG_STRING,
     .default_value = "delete",
     .choices = cleanup_choices,
     .doc = "cleanup"},
    {.name = "log.dirs", .type = CONFIG_LIST, .default_value = "/tmp/weir-logs", .doc = "dirs"},
    {.name = "log.cleaner.min.cleanable.ratio",
     .type = CONFIG_DOUBLE,
     .default_value = "0.5",
     .dmin = 0,
     .dmax = 1,
     .doc = "ratio"},
    {.name = "controller.address",
     .type = CONFIG_STRING,
     .default_value = "localhost:9093",
     .validate = validate_hostport,
     .doc = "coordinator"},
    {.name = "offset.any", .type = CONFIG_INT, .default_value = "0", .doc = "unbounded int"},
    {.name = "broker.rack", .type = CONFIG_STRING, .default_value = NULL, .doc = "rack"},
    {.name = "advertised.listeners", .type = CONFIG_LIST, .default_value = NULL, .doc = "adv"},
    {.name = "retention.ms",
     .type = CONFIG_INT,
     .default_value = "-1",
     .min = -1,
     .max = INT64_MAX,
     .doc = "retention"},
    {.name = "weight", .type = CONFIG_DOUBLE, .default_value = "1.5", .doc = "unbounded double"},
};
#define NDEFS (sizeof(test_defs) / sizeof(test_defs[0]))

static int setup(void **state)
{
    struct config *c = NULL;
    if (config_new(test_defs, NDEFS, &c) < 0)
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    config_free(*state);
    return 0;
}

static void test_config_applies_defaults(void **state)
{
    struct config *c = *state;
    assert_int_equal(config_get_int(c, "log.segment.bytes"), 1073741824);
    assert_true(config_get_bool(c, "auto.create.topics.enable"));
    assert_string_equal(config_get_string(c, "log.cleanup.policy"), "delete");
    assert_true(config_get_double(c, "log.cleaner.min.cleanable.ratio") == 0.5);
    assert_int_equal(config_get_int(c, "retention.ms"), -1);
    size_t n = 99;
    const char *const *dirs = config_get_list(c, "log.dirs", &n);
    assert_int_equal(n, 1);
    assert_string_equal(dirs[0], "/tmp/weir-logs");
    assert_null(dirs[1]);

    /* Null defaults. */
    assert_null(config_get_string(c, "broker.rack"));
    assert_null(config_get_raw(c, "broker.rack"));
    const char *const *adv = config_get_list(c, "advertised.listeners", &n);
    assert_int_equal(n, 0);
    assert_null(adv[0]);

    assert_string_equal(config_get_raw(c, "log.segment.bytes"), "1073741824");
    for (size_t i = 0; i < NDEFS; i++) {
        assert_int_equal(config_get_source(c, test_defs[i].name), CONFIG_SOURCE_DEFAULT);
        assert_false(config_is_set(c, test_defs[i].name));
    }
}

/* Sets @value and expects -EINVAL with exactly @msg, leaving the old value. */
static void expect_rejected(struct config *c, const char *key, const char *value, const char *msg)
{
    char err[512] = "";
    const char *before = config_get_raw(c, key);
    char *saved = before ? strdup(before) : NULL;
    enum config_source src = config_get_source(c, key);
    assert_int_equal(config_set(c, key, value, CONFIG_SOURCE_DYNAMIC, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, msg);
    if (saved)
        assert_string_equal(config_get_raw(c, key), saved);
    else
        assert_null(config_get_raw(c, key));
    assert_int_equal(config_get_source(c, key), src);
    free(saved);
}

static void set_ok(struct config *c, const char *key, const char *value)
{
    char err[512] = "";
    int r = config_set(c, key, value, CONFIG_SOURCE_DYNAMIC, err, sizeof(err));
    if (r != 0)
        fail_msg("config_set(%s, '%s') = %d: %s", key, value, r, err);
}

static void test_config_bool_accepts_only_true_or_false(void **state)
{
    struct config *c = *state;
    const char *key = "auto.create.topics.enable";
    set_ok(c, key, "FALSE");
    assert_false(config_get_bool(c, key));
    set_ok(c, key, "True");
    assert_true(config_get_bool(c, key));
    set_ok(c, key, " false ");
    assert_false(config_get_bool(c, key));
    assert_string_equal(config_get_raw(c, key), "false");

    expect_rejected(c, key, "yes",
                    "invalid value 'yes' for 'auto.create.topics.enable': expected true or false");
    expect_rejected(c, key, "1",
                    "invalid value '1' for 'auto.create.topics.enable': expected true or false");
    expect_rejected(c, key, "",
                    "invalid value '' for 'auto.create.topics.enable': expected true or false");
    expect_rejected(c, key, "truex",
                    "invalid value 'truex' for 'auto.create.topics.enable': expected true or "
                    "false");
    assert_false(config_get_bool(c, key));
}

static void test_config_int_parses_strictly_within_bounds(void **state)
{
    struct config *c = *state;
    const char *key = "log.segment.bytes";
    const char *range = "expected an integer in [14, 2147483647]";
    char msg[256];
    static const char *const bad[] = {"abc",   "13", "-14",  "2147483648",
                                      "12abc", "",   "0x10", "1e3",
                                      "1 000", "+",  "--5",  "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(msg, sizeof(msg), "invalid value '%s' for 'log.segment.bytes': %s", bad[i], range);
        expect_rejected(c, key, bad[i], msg);
    }
    set_ok(c, key, "14");
    assert_int_equal(config_get_int(c, key), 14);
    set_ok(c, key, "2147483647");
    assert_int_equal(config_get_int(c, key), 2147483647);
    set_ok(c, key, "+100");
    assert_int_equal(config_get_int(c, key), 100);
    set_ok(c, key, "  4096\t");
    assert_int_equal(config_get_int(c, key), 4096);

    /* Unbounded: the whole int64 range, overflow rejected. */
    const char *any = "offset.any";
    set_ok(c, any, "9223372036854775807");
    assert_true(config_get_int(c, any) == INT64_MAX);
    set_ok(c, any, "-9223372036854775808");
    assert_true(config_get_int(c, any) == INT64_MIN);
    set_ok(c, any, "-0");
    assert_int_equal(config_get_int(c, any), 0);
    expect_rejected(c, any, "9223372036854775808",
                    "invalid value '9223372036854775808' for 'offset.any': expected an integer");
    expect_rejected(c, any, "-9223372036854775809",
                    "invalid value '-9223372036854775809' for 'offset.any': expected an integer");

    /* Bounds whose max is INT64_MAX. */
    set_ok(c, "retention.ms", "9223372036854775807");
    expect_rejected(c, "retention.ms", "-2",
                    "invalid value '-2' for 'retention.ms': expected an integer in [-1, "
                    "9223372036854775807]");
}

static void test_config_double_rejects_non_finite_and_out_of_range(void **state)
{
    struct config *c = *state;
    const char *key = "log.cleaner.min.cleanable.ratio";
    set_ok(c, key, "0.25");
    assert_true(config_get_double(c, key) == 0.25);
    set_ok(c, key, "1");
    assert_true(config_get_double(c, key) == 1.0);
    set_ok(c, key, "0");
    expect_rejected(c, key, "1.5",
                    "invalid value '1.5' for 'log.cleaner.min.cleanable.ratio': expected a "
                    "number in [0, 1]");
    expect_rejected(c, key, "-0.1",
                    "invalid value '-0.1' for 'log.cleaner.min.cleanable.ratio': expected a "
                    "number in [0, 1]");
    expect_rejected(c, key, "nan",
                    "invalid value 'nan' for 'log.cleaner.min.cleanable.ratio': expected a "
                    "number in [0, 1]");

    const char *w = "weight";
    set_ok(c, w, "-1e10");
    assert_true(config_get_double(c, w) == -1e10);
    static const char *const bad[] = {"inf", "-infinity", "nan", "1e999", "abc", "1.0x", ""};
    char msg[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(msg, sizeof(msg), "invalid value '%s' for 'weight': expected a finite number",
                 bad[i]);
        expect_rejected(c, w, bad[i], msg);
    }
    assert_true(config_get_double(c, w) == -1e10);
}

static void test_config_string_choices_are_exact(void **state)
{
    struct config *c = *state;
    const char *key = "log.cleanup.policy";
    set_ok(c, key, "compact");
    assert_string_equal(config_get_string(c, key), "compact");
    expect_rejected(c, key, "Compact",
                    "invalid value 'Compact' for 'log.cleanup.policy': expected one of: delete, "
                    "compact");
    expect_rejected(c, key, "",
                    "invalid value '' for 'log.cleanup.policy': expected one of: delete, compact");
    assert_string_equal(config_get_string(c, key), "compact");

    /* Without choices anything goes, including the empty string (not null). */
    set_ok(c, "broker.rack", "");
    assert_non_null(config_get_string(c, "broker.rack"));
    assert_string_equal(config_get_string(c, "broker.rack"), "");
}

static void test_config_custom_validator_message(void **state)
{
    struct config *c = *state;
    const char *key = "controller.address";
    expect_rejected(c, key, "nohost",
                    "invalid value 'nohost' for 'controller.address': expected a host:port");
    set_ok(c, key, "10.0.0.1:9093");
    assert_string_equal(config_get_string(c, key), "10.0.0.1:9093");
}

static void test_config_lists_split_and_trim(void **state)
{
    struct config *c = *state;
    size_t n = 0;
    set_ok(c, "log.dirs", " /a , /b,/c  ");
    const char *const *items = config_get_list(c, "log.dirs", &n);
    assert_int_equal(n, 3);
    assert_string_equal(items[0], "/a");
    assert_string_equal(items[1], "/b");
    assert_string_equal(items[2], "/c");
    assert_null(items[3]);
    assert_string_equal(config_get_raw(c, "log.dirs"), "/a , /b,/c");

    set_ok(c, "log.dirs", "");
    items = config_get_list(c, "log.dirs", &n);
    assert_int_equal(n, 0);
    assert_null(items[0]);

    set_ok(c, "log.dirs", "  ");
    config_get_list(c, "log.dirs", &n);
    assert_int_equal(n, 0);

    /* Empty items are kept (as Kafka does) for validators to judge. */
    set_ok(c, "log.dirs", "a,,b,");
    items = config_get_list(c, "log.dirs", &n);
    assert_int_equal(n, 4);
    assert_string_equal(items[0], "a");
    assert_string_equal(items[1], "");
    assert_string_equal(items[2], "b");
    assert_string_equal(items[3], "");
}

static void test_config_set_unknown_key_is_enoent(void **state)
{
    struct config *c = *state;
    char err[128] = "";
    assert_int_equal(config_set(c, "no.such.key", "1", CONFIG_SOURCE_DYNAMIC, err, sizeof(err)),
                     -ENOENT);
    assert_string_equal(err, "unknown configuration key 'no.such.key'");
    assert_null(config_find_def(c, "no.such.key"));
    const struct config_def *d = config_find_def(c, "log.dirs");
    assert_ptr_equal(d, &test_defs[3]);
}

static void test_config_error_message_truncates_safely(void **state)
{
    struct config *c = *state;
    char err[16];
    memset(err, 'Z', sizeof(err));
    assert_int_equal(config_set(c, "log.segment.bytes", "abc", CONFIG_SOURCE_DYNAMIC, err, 8),
                     -EINVAL);
    assert_string_equal(err, "invalid");
    assert_int_equal(err[8], 'Z');
    /* No buffer at all is fine too. */
    assert_int_equal(config_set(c, "log.segment.bytes", "abc", CONFIG_SOURCE_DYNAMIC, NULL, 0),
                     -EINVAL);
}

static void test_config_sources_and_is_set(void **state)
{
    struct config *c = *state;
    char err[128];
    assert_int_equal(config_set(c, "offset.any", "5", CONFIG_SOURCE_DYNAMIC, err, sizeof(err)), 0);
    assert_int_equal(config_get_source(c, "offset.any"), CONFIG_SOURCE_DYNAMIC);
    assert_true(config_is_set(c, "offset.any"));
    assert_false(config_is_set(c, "weight"));
    assert_int_equal(config_apply_override(c, "weight=2", err, sizeof(err)), 0);
    assert_int_equal(config_get_source(c, "weight"), CONFIG_SOURCE_OVERRIDE);
    assert_true(config_is_set(c, "weight"));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_config_load_file_warns_about_unknown_keys(void **state)
{
    struct config *c = *state;
    char *dir = testutil_mkdtemp("test_config");
    char path[4096];
    snprintf(path, sizeof(path), "%s/server.properties", dir);
    write_file(path, "# broker\n"
                     "log.segment.bytes=1048576\n"
                     "bogus.key=1\n"
                     "log.dirs = /d1, /d2\n"
                     "log.cleanup.policy=compact\n"
                     "log.segment.bytes=2097152\n");

    char *captured = NULL;
    size_t captured_len = 0;
    FILE *mem = open_memstream(&captured, &captured_len);
    assert_non_null(mem);
    log_set_output(mem);
    char err[256] = "";
    int r = config_load_file(c, path, err, sizeof(err));
    log_set_output(NULL);
    fclose(mem);

    assert_int_equal(r, 0);
    char want[4300];
    snprintf(want, sizeof(want), "unknown configuration key 'bogus.key' in %s line 3 (ignored)",
             path);
    assert_non_null(strstr(captured, want));
    assert_non_null(strstr(captured, "[config]"));
    free(captured);

    /* The last duplicate wins. */
    assert_int_equal(config_get_int(c, "log.segment.bytes"), 2097152);
    assert_int_equal(config_get_source(c, "log.segment.bytes"), CONFIG_SOURCE_FILE);
    size_t n;
    const char *const *dirs = config_get_list(c, "log.dirs", &n);
    assert_int_equal(n, 2);
    assert_string_equal(dirs[1], "/d2");
    assert_string_equal(config_get_string(c, "log.cleanup.policy"), "compact");
    assert_int_equal(config_get_source(c, "weight"), CONFIG_SOURCE_DEFAULT);
    testutil_rmtree(dir);
}

static void test_config_load_file_bad_value_names_file_and_line(void **state)
{
    struct config *c = *state;
    char *dir = testutil_mkdtemp("test_config");
    char path[4096];
    snprintf(path, sizeof(path), "%s/server.properties", dir);
    write_file(path, "auto.create.topics.enable=false\n"
                     "\n"
                     "log.segment.bytes=abc\n");
    char err[4400] = "";
    assert_int_equal(config_load_file(c, path, err, sizeof(err)), -EINVAL);
    char want[4400];
    snprintf(want, sizeof(want),
             "%s:3: invalid value 'abc' for 'log.segment.bytes': expected an integer in [14, "
             "2147483647]",
             path);
    assert_string_equal(err, want);
    assert_int_equal(config_get_int(c, "log.segment.bytes"), 1073741824);

    /* A syntax error from the properties reader also names the file. */
    write_file(path, "a=\\uZZZZ\n");
    assert_int_equal(config_load_file(c, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 1"));

    char missing[4200];
    snprintf(missing, sizeof(missing), "%s/absent.properties", dir);
    assert_int_equal(config_load_file(c, missing, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, missing));
    testutil_rmtree(dir);
}

static void test_config_apply_override_splits_at_first_equals(void **state)
{
    struct config *c = *state;
    char err[256] = "";
    assert_int_equal(config_apply_override(c, "broker.rack=r=1", err, sizeof(err)), 0);
    assert_string_equal(config_get_string(c, "broker.rack"), "r=1");
    assert_int_equal(config_get_source(c, "broker.rack"), CONFIG_SOURCE_OVERRIDE);

    assert_int_equal(config_apply_override(c, "broker.rack", err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "invalid override 'broker.rack': expected key=value");
    assert_int_equal(config_apply_override(c, "log.segmnt.bytes=5", err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "unknown configuration key 'log.segmnt.bytes'");
    assert_int_equal(config_apply_override(c, "log.segment.bytes=5", err, sizeof(err)), -EINVAL);
    assert_string_equal(
        err, "invalid value '5' for 'log.segment.bytes': expected an integer in [14, 2147483647]");
    assert_int_equal(config_apply_override(c, "=5", err, sizeof(err)), -ENOENT);
}

static void test_config_override_beats_file_regardless_of_argv_order(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("test_config");
    char path[4096];
    snprintf(path, sizeof(path), "%s/server.properties", dir);
    write_file(path, "log.segment.bytes=4096\nweight=3\n");
    char cfgeq[4200];
    snprintf(cfgeq, sizeof(cfgeq), "--config=%s", path);

    char *forms[][8] = {
        {"prog", "--override", "log.segment.bytes=2048", "--config", path, NULL},
        {"prog", "--override=log.segment.bytes=2048", "-c", path, NULL},
        {"prog", cfgeq, "--override", "log.segment.bytes=2048", NULL},
        {"prog", "--override", "log.segment.bytes=1024", "-c", path, "--override",
         "log.segment.bytes=2048", NULL},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct config *c = NULL;
        assert_int_equal(config_new(test_defs, NDEFS, &c), 0);
        int argc = 0;
        while (forms[i][argc])
            argc++;
        char err[256] = "";
        int r = config_parse_args(c, argc, forms[i], err, sizeof(err));
        if (r != 0)
            fail_msg("form %zu: %d %s", i, r, err);
        assert_int_equal(config_get_int(c, "log.segment.bytes"), 2048);
        assert_int_equal(config_get_source(c, "log.segment.bytes"), CONFIG_SOURCE_OVERRIDE);
        assert_true(config_get_double(c, "weight") == 3.0);
        assert_int_equal(config_get_source(c, "weight"), CONFIG_SOURCE_FILE);
        config_free(c);
    }

    /* No arguments at all: defaults stay. */
    struct config *c = NULL;
    assert_int_equal(config_new(test_defs, NDEFS, &c), 0);
    char *none[] = {"prog", NULL};
    assert_int_equal(config_parse_args(c, 1, none, NULL, 0), 0);
    assert_false(config_is_set(c, "log.segment.bytes"));
    config_free(c);
    testutil_rmtree(dir);
}

static void expect_args_error(char **argv, int rc, const char *msg)
{
    struct config *c = NULL;
    assert_int_equal(config_new(test_defs, NDEFS, &c), 0);
    int argc = 0;
    while (argv[argc])
        argc++;
    char err[256] = "";
    assert_int_equal(config_parse_args(c, argc, argv, err, sizeof(err)), rc);
    if (msg)
        assert_string_equal(err, msg);
    /* Nothing was applied by an argument list that fails to parse. */
    if (rc == -EINVAL && msg && strncmp(msg, "invalid value", 13) != 0)
        assert_false(config_is_set(c, "log.segment.bytes"));
    config_free(c);
}

static void test_config_parse_args_rejects_bad_arguments(void **state)
{
    (void)state;
    char *unknown[] = {"prog", "--override", "log.segment.bytes=2048", "--verbose", NULL};
    expect_args_error(unknown, -EINVAL, "unknown argument '--verbose'");
    char *positional[] = {"prog", "server.properties", NULL};
    expect_args_error(positional, -EINVAL, "unknown argument 'server.properties'");
    char *no_file[] = {"prog", "--override", "log.segment.bytes=2048", "--config", NULL};
    expect_args_error(no_file, -EINVAL, "option '--config' needs a value");
    char *no_c_file[] = {"prog", "-c", NULL};
    expect_args_error(no_c_file, -EINVAL, "option '-c' needs a value");
    char *no_override[] = {"prog", "--override", NULL};
    expect_args_error(no_override, -EINVAL, "option '--override' needs a value");
    char *empty_eq[] = {"prog", "--config=", NULL};
    expect_args_error(empty_eq, -EINVAL, "option '--config=' needs a non-empty value");
    char *twice[] = {"prog", "-c", "a", "--config", "b", NULL};
    expect_args_error(twice, -EINVAL, "--config given more than once");
    char *bad_override[] = {"prog", "--override", "nokey", NULL};
    expect_args_error(bad_override, -EINVAL, "invalid override 'nokey': expected key=value");
    char *unknown_key[] = {"prog", "--override=log.segmnt.bytes=1", NULL};
    expect_args_error(unknown_key, -ENOENT, "unknown configuration key 'log.segmnt.bytes'");
    char *bad_value[] = {"prog", "--override", "log.segment.bytes=x", NULL};
    expect_args_error(bad_value, -EINVAL,
                      "invalid value 'x' for 'log.segment.bytes': expected an integer in [14, "
                      "2147483647]");
    char *missing_file[] = {"prog", "--config", "/nonexistent/weir/server.properties", NULL};
    expect_args_error(missing_file, -ENOENT, NULL);
}

struct visit {
    size_t n;
    const struct config_def *defs[NDEFS];
    char *values[NDEFS];
    enum config_source srcs[NDEFS];
};

static void visit_one(void *userdata, const struct config_def *def, const char *value,
                      enum config_source src)
{
    struct visit *v = userdata;
    assert_true(v->n < NDEFS);
    v->defs[v->n] = def;
    v->values[v->n] = value ? strdup(value) : NULL;
    v->srcs[v->n] = src;
    v->n++;
}

static void test_config_foreach_visits_in_declaration_order(void **state)
{
    struct config *c = *state;
    char err[128];
    assert_int_equal(config_apply_override(c, "weight=7", err, sizeof(err)), 0);
    struct visit v = {0};
    config_foreach(c, visit_one, &v);
    assert_int_equal(v.n, NDEFS);
    for (size_t i = 0; i < NDEFS; i++) {
        assert_ptr_equal(v.defs[i], &test_defs[i]);
        if (test_defs[i].default_value == NULL)
            assert_null(v.values[i]);
        free(v.values[i]);
    }
    assert_string_equal(test_defs[NDEFS - 1].name, "weight");
    assert_int_equal(v.srcs[NDEFS - 1], CONFIG_SOURCE_OVERRIDE);
    assert_int_equal(v.srcs[0], CONFIG_SOURCE_DEFAULT);
}

/* Runs @fn in a child and reports whether it died of SIGABRT (an assert). */
static bool dies_with_abort(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Keep the expected assertion text out of the test log. */
        if (!freopen("/dev/null", "w", stderr))
            _exit(2);
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void get_undeclared(void)
{
    struct config *c = NULL;
    if (config_new(test_defs, NDEFS, &c) < 0)
        _exit(3);
    (void)config_get_int(c, "no.such.key");
}

static void get_wrong_type(void)
{
    struct config *c = NULL;
    if (config_new(test_defs, NDEFS, &c) < 0)
        _exit(3);
    (void)config_get_bool(c, "log.segment.bytes");
}

static void new_with_bad_default(void)
{
    static const struct config_def bad[] = {
        {.name = "x", .type = CONFIG_INT, .default_value = "5", .min = 10, .max = 20},
    };
    struct config *c = NULL;
    (void)config_new(bad, 1, &c);
}

static void new_with_duplicate(void)
{
    static const struct config_def dup[] = {
        {.name = "x", .type = CONFIG_INT, .default_value = "5"},
        {.name = "y", .type = CONFIG_INT, .default_value = "5"},
        {.name = "x", .type = CONFIG_BOOL, .default_value = "true"},
    };
    struct config *c = NULL;
    (void)config_new(dup, 3, &c);
}

static void test_config_programmer_errors_abort(void **state)
{
    (void)state;
    assert_true(dies_with_abort(get_undeclared));
    assert_true(dies_with_abort(get_wrong_type));
    assert_true(dies_with_abort(new_with_bad_default));
    assert_true(dies_with_abort(new_with_duplicate));
}

static void test_config_clone_keeps_values_and_sources_and_check_value_stores_nothing(void **state)
{
    (void)state;
    struct config *c, *copy;
    char err[256];
    assert_int_equal(config_new(test_defs, sizeof(test_defs) / sizeof(test_defs[0]), &c), 0);
    assert_int_equal(
        config_set(c, "log.segment.bytes", "1048576", CONFIG_SOURCE_FILE, err, sizeof(err)), 0);
    assert_int_equal(config_set(c, "log.dirs", "/a, /b", CONFIG_SOURCE_OVERRIDE, err, sizeof(err)),
                     0);
    assert_int_equal(config_clone(c, &copy), 0);
    assert_int_equal(config_get_int(copy, "log.segment.bytes"), 1048576);
    assert_int_equal(config_get_source(copy, "log.segment.bytes"), CONFIG_SOURCE_FILE);
    size_t n;
    const char *const *dirs = config_get_list(copy, "log.dirs", &n);
    assert_int_equal(n, 2);
    assert_string_equal(dirs[1], "/b");
    assert_int_equal(config_get_source(copy, "log.dirs"), CONFIG_SOURCE_OVERRIDE);
    assert_false(config_is_set(copy, "auto.create.topics.enable"));
    /* The copy is independent. */
    assert_int_equal(
        config_set(copy, "log.segment.bytes", "2048", CONFIG_SOURCE_DYNAMIC, err, sizeof(err)), 0);
    assert_int_equal(config_get_int(c, "log.segment.bytes"), 1048576);
    config_free(copy);

    const struct config_def *d = config_find_def(c, "log.segment.bytes");
    assert_int_equal(config_check_value(d, "4096", err, sizeof(err)), 0);
    assert_int_equal(config_check_value(d, "13", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'log.segment.bytes'"));
    assert_int_equal(config_get_int(c, "log.segment.bytes"), 1048576);
    config_free(c);
}

static void test_config_empty_registry(void **state)
{
    (void)state;
    struct config *c = NULL;
    assert_int_equal(config_new(NULL, 0, &c), 0);
    char err[128];
    assert_int_equal(config_set(c, "a", "b", CONFIG_SOURCE_DYNAMIC, err, sizeof(err)), -ENOENT);
    assert_null(config_find_def(c, "a"));
    config_free(c);
    config_free(NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_applies_defaults),
        T(test_config_bool_accepts_only_true_or_false),
        T(test_config_int_parses_strictly_within_bounds),
        T(test_config_double_rejects_non_finite_and_out_of_range),
        T(test_config_string_choices_are_exact),
        T(test_config_custom_validator_message),
        T(test_config_lists_split_and_trim),
        T(test_config_set_unknown_key_is_enoent),
        T(test_config_error_message_truncates_safely),
        T(test_config_sources_and_is_set),
        T(test_config_load_file_warns_about_unknown_keys),
        T(test_config_load_file_bad_value_names_file_and_line),
        T(test_config_apply_override_splits_at_first_equals),
        cmocka_unit_test(test_config_override_beats_file_regardless_of_argv_order),
        cmocka_unit_test(test_config_parse_args_rejects_bad_arguments),
        T(test_config_foreach_visits_in_declaration_order),
        cmocka_unit_test(test_config_programmer_errors_abort),
        cmocka_unit_test(test_config_empty_registry),
        cmocka_unit_test(test_config_clone_keeps_values_and_sources_and_check_value_stores_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
