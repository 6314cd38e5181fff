/* Tests for common/log: the exact line format and UTC timestamp, level filtering,
 * level names and parsing, long messages, and whole lines under concurrent
 * logging from several threads; the JSON format, event fields in both formats,
 * and the escaping of control characters, quotes and invalid UTF-8. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

#define TS_RE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

static FILE *out;

static int setup(void **state)
{
    (void)state;
    out = tmpfile();
    if (!out)
        return -1;
    log_set_output(out);
    log_set_level(LOG_LEVEL_INFO);
    log_set_format(LOG_FORMAT_TEXT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_set_output(NULL);
    log_set_level(LOG_LEVEL_INFO);
    log_set_format(LOG_FORMAT_TEXT);
    fclose(out);
    return 0;
}

/* Starts a fresh capture: what follows is the only line assert_line_after_ts
 * sees. */
static void recapture(void)
{
    fclose(out);
    out = tmpfile();
    assert_non_null(out);
    log_set_output(out);
}

/* Everything logged so far, as a malloc'd NUL-terminated string. */
static char *captured(void)
{
    fflush(out);
    long n = ftell(out);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    rewind(out);
    assert_int_equal(fread(s, 1, (size_t)n, out), (size_t)n);
    s[n] = '\0';
    fseek(out, 0, SEEK_END);
    return s;
}

static void assert_matches(const char *s, const char *re)
{
    regex_t rx;
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&rx, s, 0, NULL, 0);
    regfree(&rx);
    if (rc != 0)
        fail_msg("\"%s\" does not match /%s/", s, re);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_log_line_format_and_utc_timestamp(void **state)
{
    (void)state;
    int64_t before = clock_wall_ms();
    log_info("storage", "recovered %s: truncated %d bytes", "topic-0", 120);
    int64_t after = clock_wall_ms();
    char *s = captured();
    assert_matches(s, TS_RE "INFO  \\[storage\\] recovered topic-0: truncated 120 bytes\n$");

    /* The timestamp is UTC wall time with milliseconds. */
    struct tm tm = {0};
    int ms;
    assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t logged = (int64_t)timegm(&tm) * 1000 + ms;
    assert_true(logged >= before - 1 && logged <= after + 1);
    free(s);
}

static void test_log_level_tags_are_padded(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_TRACE);
    log_error("a", "e");
    log_warn("b", "w");
    log_info("c", "i");
    log_debug("d", "d");
    log_trace("e", "t");
    log_msg(LOG_LEVEL_INFO, NULL, "no subsystem");
    char *s = captured();
    assert_matches(s, TS_RE "ERROR \\[a\\] e\n"
                            "[0-9T:.Z-]{24} WARN  \\[b\\] w\n"
                            "[0-9T:.Z-]{24} INFO  \\[c\\] i\n"
                            "[0-9T:.Z-]{24} DEBUG \\[d\\] d\n"
                            "[0-9T:.Z-]{24} TRACE \\[e\\] t\n"
                            "[0-9T:.Z-]{24} INFO  \\[-\\] no subsystem\n$");
    free(s);
}

static void test_log_level_filters_and_skips_argument_evaluation(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_WARN);
    assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
    assert_true(log_enabled(LOG_LEVEL_ERROR));
    assert_true(log_enabled(LOG_LEVEL_WARN));
    assert_false(log_enabled(LOG_LEVEL_INFO));
    int evaluated = 0;
    log_info("x", "dropped %d", ++evaluated);
    log_debug("x", "dropped %d", ++evaluated);
    log_trace("x", "dropped %d", ++evaluated);
    /* log_info is a plain call (arguments evaluated); debug/trace are guarded. */
    assert_int_equal(evaluated, 1);
    log_warn("x", "kept");
    log_error("x", "kept too");
    char *s = captured();
    assert_int_equal(count_lines(s), 2);
    assert_null(strstr(s, "dropped"));
    free(s);

    log_set_level(LOG_LEVEL_ERROR);
    log_warn("x", "now dropped");
    s = captured();
    assert_int_equal(count_lines(s), 2);
    free(s);
}

static void test_log_level_parse_and_names(void **state)
{
    (void)state;
    const char *names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++) {
        enum log_level l = LOG_LEVEL_TRACE;
        assert_int_equal(log_level_parse(names[i], &l), 0);
        assert_int_equal(l, i);
        assert_string_equal(log_level_name((enum log_level)i), names[i]);
    }
    enum log_level l = LOG_LEVEL_ERROR;
    assert_int_equal(log_level_parse("DeBuG", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    l = LOG_LEVEL_INFO;
    assert_int_equal(log_level_parse("verbose", &l), -EINVAL);
    assert_int_equal(log_level_parse("", &l), -EINVAL);
    assert_int_equal(log_level_parse("warning", &l), -EINVAL);
    assert_int_equal(log_level_parse("inf", &l), -EINVAL);
    assert_int_equal(log_level_parse(NULL, &l), -EINVAL);
    assert_int_equal(l, LOG_LEVEL_INFO); /* untouched on error */
}

static void test_log_long_message_is_one_whole_line(void **state)
{
    (void)state;
    enum { N = 5000 };
    char *big = malloc(N + 1);
    assert_non_null(big);
    memset(big, 'q', N);
    big[N] = '\0';
    log_info("big", "<%s>", big);
    char *s = captured();
    assert_int_equal(count_lines(s), 1);
    char *lt = strchr(s, '<');
    assert_non_null(lt);
    assert_int_equal(strlen(lt), N + 3); /* "<" N ">" "\n" */
    assert_int_equal(lt[N + 1], '>');
    free(s);
    free(big);
}

static void test_log_trailing_newline_not_doubled_and_errno_kept(void **state)
{
    (void)state;
    errno = EAGAIN;
    log_info("x", "ends with newline\n");
    assert_int_equal(errno, EAGAIN);
    log_info("x", "%s", "");
    char *s = captured();
    assert_int_equal(count_lines(s), 2);
    assert_non_null(strstr(s, "ends with newline\n"));
    assert_null(strstr(s, "\n\n"));
    free(s);
}

/* The part of the only captured line after the timestamp (text) or after the
 * "ts" member (JSON), checked against @want exactly. */
static void assert_line_after_ts(const char *want)
{
    char *s = captured();
    assert_int_equal(count_lines(s), 1);
    const char *rest;
    if (s[0] == '{') {
        assert_matches(s, "^\\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                          "\\.[0-9]{3}Z\",");
        rest = s + strlen("{\"ts\":\"2026-11-21T04:43:56.123Z\",");
    } else {
        assert_matches(s, TS_RE);
        rest = s + 25; /* the timestamp and its space */
    }
    assert_string_equal(rest, want);
    free(s);
}

/* assert_line_after_ts with the expected text given printf-style. */
static void assert_line_after_tsf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void assert_line_after_tsf(const char *fmt, ...)
{
    char want[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(want, sizeof(want), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(want));
    assert_line_after_ts(want);
}

static void test_log_format_parse(void **state)
{
    (void)state;
    enum log_format f = LOG_FORMAT_TEXT;
    assert_int_equal(log_format_parse("json", &f), 0);
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_format_parse("TEXT", &f), 0);
    assert_int_equal(f, LOG_FORMAT_TEXT);
    assert_int_equal(log_format_parse("logfmt", &f), -EINVAL);
    assert_int_equal(log_format_parse("", &f), -EINVAL);
    assert_int_equal(log_format_parse(NULL, &f), -EINVAL);
    assert_int_equal(f, LOG_FORMAT_TEXT);
    log_set_format(LOG_FORMAT_JSON);
    assert_int_equal(log_get_format(), LOG_FORMAT_JSON);
}

static void test_log_json_plain_line(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    int64_t before = clock_wall_ms();
    log_warn("storage", "recovered %s: truncated %d bytes\n", "topic-0", 120);
    int64_t after = clock_wall_ms();
    char *s = captured();
    struct tm tm = {0};
    int ms;
    assert_int_equal(sscanf(s, "{\"ts\":\"%4d-%2d-%2dT%2d:%2d:%2d.%3dZ\"", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t logged = (int64_t)timegm(&tm) * 1000 + ms;
    assert_true(logged >= before - 1 && logged <= after + 1);
    free(s);
    assert_line_after_ts("\"level\":\"warn\",\"component\":\"storage\","
                         "\"msg\":\"recovered topic-0: truncated 120 bytes\"}\n");
}

static void test_log_event_fields_text_and_json(void **state)
{
    (void)state;
    const struct log_field *f =
        LOG_FIELDS(LF_STR("topic", "orders"), LF_INT("partition", 3), LF_INT("epoch", 7),
                   LF_INT("offset", INT64_MIN), LF_BOOL("clean", 1), LF_STR("reason", NULL));
    log_event(LOG_LEVEL_INFO, "replica", "leader", f, "orders-%d: leader in epoch %d", 3, 7);
    assert_line_after_ts("INFO  [replica] orders-3: leader in epoch 7 event=leader topic=orders "
                         "partition=3 epoch=7 offset=-9223372036854775808 clean=true reason=-\n");

    recapture();
    log_set_format(LOG_FORMAT_JSON);
    log_event(LOG_LEVEL_INFO, "replica", "leader", f, "orders-%d: leader in epoch %d", 3, 7);
    assert_line_after_ts("\"level\":\"info\",\"component\":\"replica\","
                         "\"msg\":\"orders-3: leader in epoch 7\",\"event\":\"leader\","
                         "\"topic\":\"orders\",\"partition\":3,\"epoch\":7,"
                         "\"offset\":-9223372036854775808,\"clean\":true,\"reason\":null}\n");
}

static void test_log_event_without_event_name_or_fields(void **state)
{
    (void)state;
    log_event(LOG_LEVEL_ERROR, NULL, NULL, NULL, "plain");
    assert_line_after_ts("ERROR [-] plain\n");
    recapture();
    log_set_format(LOG_FORMAT_JSON);
    log_event(LOG_LEVEL_ERROR, NULL, NULL, LOG_FIELDS(LF_INT("n", 0)), "%s", "");
    assert_line_after_ts("\"level\":\"error\",\"component\":\"-\",\"msg\":\"\",\"n\":0}\n");
}

/* Control characters, quotes, backslashes, '=' and spaces; valid multi-byte
 * UTF-8 (é, €, U+1F600) kept; invalid UTF-8 (a lone continuation byte, a
 * truncated sequence, an overlong '/', a surrogate, 0xff) replaced. */
static const char nasty[] = "a\"b\\c\n\r\t\x01\x1f\x7f= é€\xf0\x9f\x98\x80"
                            "\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xff";

static void test_log_json_escapes_control_quotes_and_invalid_utf8(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    log_event(LOG_LEVEL_INFO, "gr\"oup", "ev\n", LOG_FIELDS(LF_STR("group", nasty), LF_STR("k\"", "")),
              "join %s", nasty);
    const char *esc = "a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\\u007f= é€\xf0\x9f\x98\x80"
                      "\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd";
    assert_line_after_tsf("\"level\":\"info\",\"component\":\"gr\\\"oup\",\"msg\":\"join %s\","
                          "\"event\":\"ev\\n\",\"group\":\"%s\",\"k\\\"\":\"\"}\n",
                          esc, esc);
}

static void test_log_text_escapes_values_and_message_control_chars(void **state)
{
    (void)state;
    log_event(LOG_LEVEL_INFO, "group", "rebalance",
              LOG_FIELDS(LF_STR("group", nasty), LF_STR("empty", ""), LF_STR("plain", "a-b.c_d"),
                         LF_STR("utf8", "é")),
              "join %s", nasty);
    /* The message stays readable (quotes and UTF-8 as they are) but cannot
     * break the line; values are quoted and escaped. */
    const char *msg = "a\"b\\c\\n\\r\\t\\x01\\x1f\\x7f= é€\xf0\x9f\x98\x80"
                      "\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xff";
    const char *val = "\"a\\\"b\\\\c\\n\\r\\t\\x01\\x1f\\x7f= é€\xf0\x9f\x98\x80"
                      "\\x80|\\xe2\\x82|\\xc0\\xaf|\\xed\\xa0\\x80|\\xff\"";
    assert_line_after_tsf("INFO  [group] join %s event=rebalance group=%s empty=\"\" "
                          "plain=a-b.c_d utf8=\"é\"\n",
                          msg, val);
}

static void test_log_json_long_line_with_fields_is_whole(void **state)
{
    (void)state;
    enum { N = 6000 };
    char *big = malloc(N + 1);
    assert_non_null(big);
    memset(big, '"', N); /* every byte doubles when escaped */
    big[N] = '\0';
    log_set_format(LOG_FORMAT_JSON);
    log_event(LOG_LEVEL_INFO, "big", "e", LOG_FIELDS(LF_STR("v", big), LF_INT("n", 1)), "<%s>",
              big);
    char *s = captured();
    assert_int_equal(count_lines(s), 1);
    size_t len = strlen(s);
    assert_true(len > 4 * N);
    assert_non_null(strstr(s, ",\"n\":1}\n"));
    free(s);
    free(big);
}

static void test_log_config_value_hides_secrets(void **state)
{
    (void)state;
    assert_string_equal(log_config_value("retention.ms", "1000"), "1000");
    assert_string_equal(log_config_value("ssl.keystore.password", "hunter2"), "(hidden)");
    assert_string_equal(log_config_value("sasl.jaas.config", "x"), "(hidden)");
    assert_string_equal(log_config_value("listener.name.a.SECRET", "x"), "(hidden)");
    assert_null(log_config_value("cleanup.policy", NULL));
}

static void test_log_budget_limits_lines_per_window(void **state)
{
    (void)state;
    struct log_budget b = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(log_budget_level(&b, LOG_LEVEL_INFO, 5000, 3, 1000), LOG_LEVEL_INFO);
    assert_int_equal(log_budget_level(&b, LOG_LEVEL_INFO, 5999, 3, 1000), LOG_LEVEL_DEBUG);
    assert_int_equal(log_budget_level(&b, LOG_LEVEL_WARN, 5999, 3, 1000), LOG_LEVEL_DEBUG);
    assert_int_equal(log_budget_take_counted(&b), 2);
    assert_int_equal(log_budget_take_counted(&b), 0);
    /* A new window: full level again. */
    assert_int_equal(log_budget_level(&b, LOG_LEVEL_WARN, 6000, 3, 1000), LOG_LEVEL_WARN);
}

enum { THREADS = 4, LINES = 500 };

static void *log_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LINES; i++)
        log_info("thr", "thread %d line %d %s", id, i, "payload-payload-payload-payload");
    return NULL;
}

static void test_log_concurrent_lines_stay_whole(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *s = captured();
    assert_int_equal(count_lines(s), THREADS * LINES);
    int next[THREADS] = {0};
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int id, n;
        char tail[64];
        int rc = sscanf(line, "%*24c INFO  [thr] thread %d line %d %63s", &id, &n, tail);
        if (rc != 3 || id < 0 || id >= THREADS)
            fail_msg("mangled line: %s", line);
        assert_string_equal(tail, "payload-payload-payload-payload");
        /* Each thread's lines appear in its own order. */
        assert_int_equal(n, next[id]);
        next[id]++;
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(next[i], LINES);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_line_format_and_utc_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_tags_are_padded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_filters_and_skips_argument_evaluation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_level_parse_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_long_message_is_one_whole_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_trailing_newline_not_doubled_and_errno_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_concurrent_lines_stay_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_format_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_config_value_hides_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_budget_limits_lines_per_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_json_plain_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_event_fields_text_and_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_event_without_event_name_or_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_json_escapes_control_quotes_and_invalid_utf8,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_text_escapes_values_and_message_control_chars,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_json_long_line_with_fields_is_whole, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
