/* Tests for common/props.c: the Java .properties reader. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/props.h"
#include "testutil.h"

#define MAX_ENTRIES 32

struct entry {
    char *key;
    char *value;
    int line;
};

struct collector {
    struct entry e[MAX_ENTRIES];
    int n;
    int stop_after; /* return stop_rc once this many entries were seen; 0 = never */
    int stop_rc;
};

static int collect(void *userdata, const char *key, const char *value, int line)
{
    struct collector *c = userdata;
    assert_true(c->n < MAX_ENTRIES);
    c->e[c->n].key = strdup(key);
    c->e[c->n].value = strdup(value);
    c->e[c->n].line = line;
    c->n++;
    if (c->stop_after && c->n >= c->stop_after)
        return c->stop_rc;
    return 0;
}

static void collector_reset(struct collector *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        free(c->e[i].value);
    }
    memset(c, 0, sizeof(*c));
}

static int parse_str(struct collector *c, const char *text, char *err, size_t errlen)
{
    return props_parse(text, strlen(text), collect, c, err, errlen);
}

static void assert_entry(const struct collector *c, int i, const char *key, const char *value,
                         int line)
{
    assert_true(i < c->n);
    assert_string_equal(c->e[i].key, key);
    assert_string_equal(c->e[i].value, value);
    assert_int_equal(c->e[i].line, line);
}

static void test_props_accepts_every_separator_form(void **state)
{
    (void)state;
    struct collector c = {0};
    char err[128] = "";
    const char *text = "a=1\n"
                       "b:2\n"
                       "c 3\n"
                       "d = 4\n"
                       "e : 5\n"
                       "f\t6\n"
                       "g  =  7\n"
                       "h=\n"
                       "i\n"
                       "j = k = l\n"
                       "m::n\n"
                       "o\f \t p\n"
                       "  q=r  \n"
                       "=noKey\n";
    assert_int_equal(parse_str(&c, text, err, sizeof(err)), 0);
    assert_int_equal(c.n, 14);
    assert_entry(&c, 0, "a", "1", 1);
    assert_entry(&c, 1, "b", "2", 2);
    assert_entry(&c, 2, "c", "3", 3);
    assert_entry(&c, 3, "d", "4", 4);
    assert_entry(&c, 4, "e", "5", 5);
    assert_entry(&c, 5, "f", "6", 6);
    assert_entry(&c, 6, "g", "7", 7);
    assert_entry(&c, 7, "h", "", 8);
    assert_entry(&c, 8, "i", "", 9);
    /* Only one separator is consumed; the second '=' belongs to the value. */
    assert_entry(&c, 9, "j", "k = l", 10);
    assert_entry(&c, 10, "m", ":n", 11);
    assert_entry(&c, 11, "o", "p", 12);
    /* Trailing whitespace is part of the value, as in Java. */
    assert_entry(&c, 12, "q", "r  ", 13);
    assert_entry(&c, 13, "", "noKey", 14);
    collector_reset(&c);
}

static void test_props_skips_comments_and_blank_lines(void **state)
{
    (void)state;
    struct collector c = {0};
    const char *text = "# a comment\n"
                       "   ! another = comment\n"
                       "\n"
                       " \t \n"
                       "#k=v\n"
                       "x=1 # not a comment\n"
                       "y=!also value\n";
    assert_int_equal(parse_str(&c, text, NULL, 0), 0);
    assert_int_equal(c.n, 2);
    assert_entry(&c, 0, "x", "1 # not a comment", 6);
    assert_entry(&c, 1, "y", "!also value", 7);
    collector_reset(&c);
}

static void test_props_joins_lines_ending_in_odd_backslashes(void **state)
{
    (void)state;
    struct collector c = {0};
    const char *text = "a=one \\\n"
                       "    two\\\n"
                       "\t three\n"
                       "b=x\\\\\n"   /* even: a literal backslash, no continuation */
                       "c=y\\\\\\\n" /* odd: literal backslash, then continuation */
                       "  z\n"
                       "k=v\\\n"
                       "  # not a comment\n" /* a continuation line is data */
                       "p=q\\\n"
                       "\n" /* an empty continuation line ends the entry */
                       "r=s\n"
                       "long\\\n"
                       "  key = value\n"
                       "e=f\\";
    assert_int_equal(parse_str(&c, text, NULL, 0), 0);
    assert_int_equal(c.n, 8);
    assert_entry(&c, 0, "a", "one twothree", 1);
    assert_entry(&c, 1, "b", "x\\", 4);
    assert_entry(&c, 2, "c", "y\\z", 5);
    assert_entry(&c, 3, "k", "v# not a comment", 7);
    assert_entry(&c, 4, "p", "q", 9);
    assert_entry(&c, 5, "r", "s", 11);
    assert_entry(&c, 6, "longkey", "value", 12);
    /* A backslash at end of input has nothing to join and is dropped. */
    assert_entry(&c, 7, "e", "f", 14);
    collector_reset(&c);
}

static void test_props_decodes_escapes(void **state)
{
    (void)state;
    struct collector c = {0};
    const char *text = "t=a\\tb\\nc\\rd\\fe\\\\f\\qg\\=h\\:i\\ j\n"
                       "u=\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\n"
                       "a\\=b=c\n"
                       "a\\:b:c\n"
                       "a\\ b c\n"
                       "\\#notcomment=1\n"
                       "\\u006By=\\\\u0041\n";
    assert_int_equal(parse_str(&c, text, NULL, 0), 0);
    assert_int_equal(c.n, 7);
    assert_entry(&c, 0, "t", "a\tb\nc\rd\fe\\fqg=h:i j", 1);
    assert_entry(&c, 1, "u", "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 2);
    assert_entry(&c, 2, "a=b", "c", 3);
    assert_entry(&c, 3, "a:b", "c", 4);
    assert_entry(&c, 4, "a b", "c", 5);
    assert_entry(&c, 5, "#notcomment", "1", 6);
    /* An escaped backslash does not start a \u escape. */
    assert_entry(&c, 6, "ky", "\\u0041", 7);
    collector_reset(&c);
}

static void test_props_handles_crlf_and_cr_line_endings(void **state)
{
    (void)state;
    struct collector c = {0};
    const char *text = "a=1\r\n"
                       "b=2\r"
                       "c=3\n"
                       "\r\n"
                       "d=4\r\n"
                       "e=x\\\r\n"
                       "   y\r\n"
                       "f=5";
    assert_int_equal(parse_str(&c, text, NULL, 0), 0);
    assert_int_equal(c.n, 6);
    assert_entry(&c, 0, "a", "1", 1);
    assert_entry(&c, 1, "b", "2", 2);
    assert_entry(&c, 2, "c", "3", 3);
    assert_entry(&c, 3, "d", "4", 5);
    assert_entry(&c, 4, "e", "xy", 6);
    assert_entry(&c, 5, "f", "5", 8);
    collector_reset(&c);
}

static void test_props_rejects_malformed_unicode_escape_naming_line(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ok=1\nbad=\\u12G4\n",      /* not hex */
        "ok=1\nbad=\\u12\n",        /* too short */
        "ok=1\nbad=x\\u",           /* nothing after \u */
        "ok=1\nbad=\\uD83Dx\n",     /* high surrogate alone */
        "ok=1\nbad=\\uDE00\n",      /* low surrogate alone */
        "ok=1\nbad=\\u0000\n",      /* would truncate the C string */
        "ok=1\nb\\uZZZZd=1\n",      /* in a key */
        "ok=1\nbad=\\uD83D\\u0041", /* high surrogate + non-low */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct collector c = {0};
        char err[128] = "";
        assert_int_equal(parse_str(&c, bad[i], err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "line 2: invalid \\u escape"));
        /* Entries before the error were already delivered. */
        assert_int_equal(c.n, 1);
        assert_entry(&c, 0, "ok", "1", 1);
        collector_reset(&c);
    }

    /* On a continued entry the error names the line where the entry starts. */
    struct collector c = {0};
    char err[128] = "";
    assert_int_equal(parse_str(&c, "\n\nk=a\\\n  \\u00zz\n", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "line 3: "));
    assert_int_equal(c.n, 0);
    collector_reset(&c);
}

static void test_props_rejects_nul_byte(void **state)
{
    (void)state;
    struct collector c = {0};
    char err[128] = "";
    static const char text[] = "a=1\n# comment\nb=2\0x\nc=3\n";
    assert_int_equal(props_parse(text, sizeof(text) - 1, collect, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "line 3: NUL byte");
    assert_int_equal(c.n, 1);
    collector_reset(&c);

    /* Even inside a comment. */
    static const char text2[] = "# x\0y\n";
    assert_int_equal(props_parse(text2, sizeof(text2) - 1, collect, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "line 1: NUL byte");
    collector_reset(&c);
}

static void test_props_reports_duplicate_keys_each_time(void **state)
{
    (void)state;
    struct collector c = {0};
    assert_int_equal(parse_str(&c, "k=1\nother=x\nk=2\n", NULL, 0), 0);
    assert_int_equal(c.n, 3);
    assert_entry(&c, 0, "k", "1", 1);
    assert_entry(&c, 2, "k", "2", 3);
    collector_reset(&c);
}

static void test_props_empty_input_yields_nothing(void **state)
{
    (void)state;
    struct collector c = {0};
    assert_int_equal(props_parse(NULL, 0, collect, &c, NULL, 0), 0);
    assert_int_equal(parse_str(&c, "", NULL, 0), 0);
    assert_int_equal(parse_str(&c, "\n\n  \r\n# only comments\n! and more", NULL, 0), 0);
    /* A line that is only a continuation holds no entry. */
    assert_int_equal(parse_str(&c, "\\\n", NULL, 0), 0);
    assert_int_equal(c.n, 0);
    collector_reset(&c);
}

static void test_props_callback_return_stops_parsing(void **state)
{
    (void)state;
    struct collector c = {.stop_after = 2, .stop_rc = -ERANGE};
    char err[64] = "untouched";
    assert_int_equal(parse_str(&c, "a=1\nb=2\nc=3\n", err, sizeof(err)), -ERANGE);
    assert_int_equal(c.n, 2);
    assert_string_equal(err, "untouched");
    collector_reset(&c);
}

static void test_props_rejects_entry_over_cap(void **state)
{
    (void)state;
    /* Built from continuation lines so no single natural line is the problem. */
    size_t chunk = 4096, nchunks = PROPS_MAX_ENTRY / chunk + 1;
    size_t len = 8 + nchunks * (chunk + 2);
    char *text = malloc(len);
    assert_non_null(text);
    size_t off = 0;
    memcpy(text + off, "\n\nbig=", 6);
    off += 6;
    for (size_t i = 0; i < nchunks; i++) {
        memset(text + off, 'x', chunk);
        off += chunk;
        text[off++] = '\\';
        text[off++] = '\n';
    }
    struct collector c = {0};
    char err[128] = "";
    assert_int_equal(props_parse(text, off, collect, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "line 3: entry too long"));
    assert_int_equal(c.n, 0);

    /* Just under the cap is fine. */
    memset(text, 'v', PROPS_MAX_ENTRY);
    memcpy(text, "k=", 2);
    assert_int_equal(props_parse(text, PROPS_MAX_ENTRY, collect, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(strlen(c.e[0].value), PROPS_MAX_ENTRY - 2);
    collector_reset(&c);
    free(text);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_props_parse_file_round_trip(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("test_props");
    char path[4096];
    snprintf(path, sizeof(path), "%s/server.properties", dir);
    const char *text = "# Weir broker\r\n"
                       "broker.id=1\r\n"
                       "log.dirs=/var/lib/weir/a,\\\r\n"
                       "         /var/lib/weir/b\r\n"
                       "listeners = PLAINTEXT://:9092\r\n";
    write_file(path, text, strlen(text));

    struct collector c = {0};
    char err[256] = "";
    assert_int_equal(props_parse_file(path, collect, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 3);
    assert_entry(&c, 0, "broker.id", "1", 2);
    assert_entry(&c, 1, "log.dirs", "/var/lib/weir/a,/var/lib/weir/b", 3);
    assert_entry(&c, 2, "listeners", "PLAINTEXT://:9092", 5);
    collector_reset(&c);

    /* A syntax error names the file and the line. */
    const char *bad = "a=1\n\nb=\\uXYZW\n";
    write_file(path, bad, strlen(bad));
    assert_int_equal(props_parse_file(path, collect, &c, err, sizeof(err)), -EINVAL);
    char want[4200];
    snprintf(want, sizeof(want), "%s: line 3: invalid \\u escape", path);
    assert_memory_equal(err, want, strlen(want));
    collector_reset(&c);

    /* A callback's error passes through without the file's prefix. */
    write_file(path, text, strlen(text));
    struct collector stop = {.stop_after = 1, .stop_rc = -EINVAL};
    snprintf(err, sizeof(err), "from callback");
    assert_int_equal(props_parse_file(path, collect, &stop, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "from callback");
    collector_reset(&stop);

    testutil_rmtree(dir);
}

static void test_props_parse_file_missing_is_enoent(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("test_props");
    char path[4096];
    snprintf(path, sizeof(path), "%s/absent.properties", dir);
    struct collector c = {0};
    char err[4200] = "";
    assert_int_equal(props_parse_file(path, collect, &c, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, path));
    assert_int_equal(c.n, 0);
    testutil_rmtree(dir);
}

static void test_props_parse_file_rejects_oversized_file(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("test_props");
    char path[4096];
    snprintf(path, sizeof(path), "%s/huge.properties", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    /* Sparse: costs nothing on disk. */
    assert_int_equal(ftruncate(fd, (off_t)PROPS_MAX_FILE + 1), 0);
    close(fd);
    struct collector c = {0};
    char err[4200] = "";
    assert_int_equal(props_parse_file(path, collect, &c, err, sizeof(err)), -EFBIG);
    assert_non_null(strstr(err, "too large"));
    assert_int_equal(c.n, 0);
    testutil_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_props_accepts_every_separator_form),
        cmocka_unit_test(test_props_skips_comments_and_blank_lines),
        cmocka_unit_test(test_props_joins_lines_ending_in_odd_backslashes),
        cmocka_unit_test(test_props_decodes_escapes),
        cmocka_unit_test(test_props_handles_crlf_and_cr_line_endings),
        cmocka_unit_test(test_props_rejects_malformed_unicode_escape_naming_line),
        cmocka_unit_test(test_props_rejects_nul_byte),
        cmocka_unit_test(test_props_reports_duplicate_keys_each_time),
        cmocka_unit_test(test_props_empty_input_yields_nothing),
        cmocka_unit_test(test_props_callback_return_stops_parsing),
        cmocka_unit_test(test_props_rejects_entry_over_cap),
        cmocka_unit_test(test_props_parse_file_round_trip),
        cmocka_unit_test(test_props_parse_file_missing_is_enoent),
        cmocka_unit_test(test_props_parse_file_rejects_oversized_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
