/* Tests for broker/storage/checkpoint: Kafka's offset checkpoint file format. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "broker/storage/checkpoint.h"
#include "testutil.h"

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_raw(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void test_round_trip_preserves_entries(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("cp-rt");
    char *path = path_join(dir, CHECKPOINT_RECOVERY_POINT_FILE);
    struct checkpoint_entry in[] = {
        {"orders", 0, 0},
        {"my.topic-with_dashes", 2147483647, INT64_MAX},
        {"__consumer_offsets", 49, 123456789},
        {"orders", 1, 42},
    };
    assert_int_equal(checkpoint_write(path, in, 4), 0);

    struct checkpoint_entry *out;
    size_t n;
    assert_int_equal(checkpoint_read(path, &out, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out[i].topic, in[i].topic);
        assert_int_equal(out[i].partition, in[i].partition);
        assert_int_equal(out[i].offset, in[i].offset);
    }
    checkpoint_entries_free(out, n);
    free(path);
    testutil_rmtree(dir);
}

static void test_format_matches_kafka_layout(void **state)
{
    (void)state;
    struct checkpoint_entry in[] = {{"foo", 0, 5}, {"bar.baz", 3, 100}};
    char *data;
    size_t len;
    assert_int_equal(checkpoint_format(in, 2, &data, &len), 0);
    const char *want = "0\n2\nfoo 0 5\nbar.baz 3 100\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    free(data);

    assert_int_equal(checkpoint_format(NULL, 0, &data, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "0\n0\n", 4);
    free(data);
}

static void test_parse_reads_kafka_written_file(void **state)
{
    (void)state;
    const char *text = "0\n3\n__consumer_offsets 22 0\ntest-topic 0 1500\nlogs.app 7 99\n";
    struct checkpoint_entry *e;
    size_t n;
    assert_int_equal(checkpoint_parse(text, strlen(text), &e, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(e[1].topic, "test-topic");
    assert_int_equal(e[1].partition, 0);
    assert_int_equal(e[1].offset, 1500);
    assert_string_equal(e[2].topic, "logs.app");
    assert_int_equal(e[2].partition, 7);
    checkpoint_entries_free(e, n);
}

static void test_empty_checkpoint_has_no_entries(void **state)
{
    (void)state;
    struct checkpoint_entry *e = (void *)1;
    size_t n = 99;
    assert_int_equal(checkpoint_parse("0\n0\n", 4, &e, &n), 0);
    assert_int_equal(n, 0);
    assert_null(e);
}

static void test_parse_rejects_every_malformed_form(void **state)
{
    (void)state;
    char long_topic[400];
    memset(long_topic, 'a', 250);
    strcpy(long_topic + 250, " 0 1\n");
    char long_file[512];
    snprintf(long_file, sizeof(long_file), "0\n1\n%s", long_topic);
    char max_topic[400];
    memset(max_topic, 'a', 249);
    snprintf(max_topic + 249, sizeof(max_topic) - 249, " 0 1\n");
    char ok_file[512];
    snprintf(ok_file, sizeof(ok_file), "0\n1\n%s", max_topic);
    struct checkpoint_entry *e;
    size_t n;
    /* The 249-character topic is the boundary that must still pass. */
    assert_int_equal(checkpoint_parse(ok_file, strlen(ok_file), &e, &n), 0);
    checkpoint_entries_free(e, n);

    const char *bad[] = {
        "",                                 /* empty */
        "0\n",                              /* no count */
        "0",                                /* no newline after version */
        "1\n0\n",                           /* unknown version */
        "-0\n0\n",                          /* signed version */
        " 0\n0\n",                          /* leading space */
        "00\n0\n",                          /* non-canonical number */
        "0\n1\n",                           /* count larger than lines */
        "0\n2\nt 0 1\n",                    /* count larger than lines */
        "0\n1\nt 0 1\nt 1 2\n",             /* extra line */
        "0\n0\nt 0 1\n",                    /* extra line, count 0 */
        "0\n1\nt 0 1",                      /* missing final newline */
        "0\n1\nt 0 1\n\n",                  /* trailing blank line */
        "0\n1\nt 0 1\ngarbage",             /* trailing garbage */
        "0\n1\nt  0 1\n",                   /* double space */
        "0\n1\nt 0 1 \n",                   /* trailing space */
        "0\n1\nt 0 1\r\n",                  /* CRLF */
        "0\n1\nt\t0 1\n",                   /* tab separator */
        "0\n1\nt 0\n",                      /* missing offset */
        "0\n1\nt\n",                        /* missing partition */
        "0\n1\n 0 1\n",                     /* empty topic */
        "0\n1\nt -1 1\n",                   /* negative partition */
        "0\n1\nt 0 -1\n",                   /* negative offset */
        "0\n1\nt +0 1\n",                   /* plus sign */
        "0\n1\nt 01 1\n",                   /* leading zero */
        "0\n1\nt 2147483648 1\n",           /* partition overflows int32 */
        "0\n1\nt 0 9223372036854775808\n",  /* offset overflows int64 */
        "0\n1\nt 0 99999999999999999999\n", /* offset overflows int64 */
        "0\n1\nt 0 1x\n",                   /* letters in number */
        "0\n1\nt 0x1 1\n",                  /* hex */
        "0\n1\nt/x 0 1\n",                  /* illegal topic char */
        "0\n1\nt\xc3\xa9 0 1\n",            /* non-ASCII topic */
        "0\n1\n. 0 1\n",                    /* topic "." */
        "0\n1\n.. 0 1\n",                   /* topic ".." */
        "0\n99999999\nt 0 1\n",             /* count above the cap */
        "0\n1000\nt 0 1\n",                 /* count the file cannot hold */
        "0\nx\n",                           /* non-numeric count */
        "0\n-1\n",                          /* negative count */
        long_file,                          /* 250-character topic */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e = (void *)1;
        int r = checkpoint_parse(bad[i], strlen(bad[i]), &e, &n);
        if (r != -EBADMSG)
            fail_msg("case %zu (\"%s\") gave %d, want -EBADMSG", i, bad[i], r);
        assert_ptr_equal(e, (void *)1); /* output untouched on failure */
    }
    /* An embedded NUL inside a topic name. */
    static const char nul[] = "0\n1\nt\0x 0 1\n";
    assert_int_equal(checkpoint_parse(nul, sizeof(nul) - 1, &e, &n), -EBADMSG);
}

static void test_read_missing_file_is_enoent(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("cp-missing");
    char *path = path_join(dir, CHECKPOINT_LOG_START_OFFSET_FILE);
    struct checkpoint_entry *e;
    size_t n;
    assert_int_equal(checkpoint_read(path, &e, &n), -ENOENT);
    free(path);
    testutil_rmtree(dir);
}

static void test_read_malformed_file_is_ebadmsg(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("cp-bad");
    char *path = path_join(dir, CHECKPOINT_RECOVERY_POINT_FILE);
    write_raw(path, "0\n2\nt 0 1\n", 10);
    struct checkpoint_entry *e;
    size_t n;
    assert_int_equal(checkpoint_read(path, &e, &n), -EBADMSG);
    free(path);
    testutil_rmtree(dir);
}

static void test_read_refuses_oversized_file_before_reading(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("cp-big");
    char *path = path_join(dir, CHECKPOINT_RECOVERY_POINT_FILE);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    /* Sparse: costs no disk, but is larger than the cap. */
    assert_int_equal(ftruncate(fd, (off_t)CHECKPOINT_MAX_FILE_BYTES + 1), 0);
    close(fd);
    struct checkpoint_entry *e;
    size_t n;
    assert_int_equal(checkpoint_read(path, &e, &n), -EFBIG);
    free(path);
    testutil_rmtree(dir);
}

static void test_atomic_replace_leaves_no_temp_file(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("cp-atomic");
    char *path = path_join(dir, CHECKPOINT_RECOVERY_POINT_FILE);
    struct checkpoint_entry a[] = {{"a", 0, 1}, {"b", 0, 2}};
    struct checkpoint_entry b[] = {{"c", 5, 77}};
    assert_int_equal(checkpoint_write(path, a, 2), 0);
    assert_int_equal(checkpoint_write(path, b, 1), 0);

    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        assert_string_equal(de->d_name, CHECKPOINT_RECOVERY_POINT_FILE);
        files++;
    }
    closedir(d);
    assert_int_equal(files, 1);

    struct checkpoint_entry *e;
    size_t n;
    assert_int_equal(checkpoint_read(path, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].topic, "c");
    assert_int_equal(e[0].partition, 5);
    assert_int_equal(e[0].offset, 77);
    checkpoint_entries_free(e, n);
    free(path);
    testutil_rmtree(dir);
}

static void test_format_refuses_entries_it_could_not_read_back(void **state)
{
    (void)state;
    char *data = NULL;
    size_t len;
    struct checkpoint_entry bad_topic[] = {{"has space", 0, 1}};
    struct checkpoint_entry empty_topic[] = {{"", 0, 1}};
    struct checkpoint_entry neg_part[] = {{"t", -1, 1}};
    struct checkpoint_entry neg_off[] = {{"t", 0, -1}};
    assert_int_equal(checkpoint_format(bad_topic, 1, &data, &len), -EINVAL);
    assert_int_equal(checkpoint_format(empty_topic, 1, &data, &len), -EINVAL);
    assert_int_equal(checkpoint_format(neg_part, 1, &data, &len), -EINVAL);
    assert_int_equal(checkpoint_format(neg_off, 1, &data, &len), -EINVAL);
    assert_null(data);
}

static void test_topic_validity_follows_kafka(void **state)
{
    (void)state;
    assert_true(checkpoint_topic_valid("a", 1));
    assert_true(checkpoint_topic_valid("A.b_c-9", 7));
    assert_true(checkpoint_topic_valid("...", 3));
    assert_false(checkpoint_topic_valid("", 0));
    assert_false(checkpoint_topic_valid(".", 1));
    assert_false(checkpoint_topic_valid("..", 2));
    assert_false(checkpoint_topic_valid("a b", 3));
    assert_false(checkpoint_topic_valid("a:b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_preserves_entries),
        cmocka_unit_test(test_format_matches_kafka_layout),
        cmocka_unit_test(test_parse_reads_kafka_written_file),
        cmocka_unit_test(test_empty_checkpoint_has_no_entries),
        cmocka_unit_test(test_parse_rejects_every_malformed_form),
        cmocka_unit_test(test_read_missing_file_is_enoent),
        cmocka_unit_test(test_read_malformed_file_is_ebadmsg),
        cmocka_unit_test(test_read_refuses_oversized_file_before_reading),
        cmocka_unit_test(test_atomic_replace_leaves_no_temp_file),
        cmocka_unit_test(test_format_refuses_entries_it_could_not_read_back),
        cmocka_unit_test(test_topic_validity_follows_kafka),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
