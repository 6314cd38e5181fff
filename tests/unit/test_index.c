/* Tests for broker/storage/index.c: the entry codecs (Kafka's big-endian layout)
 * and the rank search over an index split between a file and memory. */
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

#include "broker/storage/index.h"
#include "common/fsutil.h"
#include "tests/unit/testutil.h"

static void test_index_entry_layout_is_big_endian(void **state)
{
    (void)state;
    uint8_t e[12];
    index_entry_encode(e, 0x01020304, 0x0a0b0c0d);
    const uint8_t want[8] = {1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d};
    assert_memory_equal(e, want, 8);
    struct index_entry ie;
    index_entry_decode(e, &ie);
    assert_int_equal(ie.rel, 0x01020304);
    assert_int_equal(ie.pos, 0x0a0b0c0d);

    timeindex_entry_encode(e, INT64_C(0x0102030405060708), -2);
    const uint8_t want_t[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xfe};
    assert_memory_equal(e, want_t, 12);
    struct timeindex_entry te;
    timeindex_entry_decode(e, &te);
    assert_int_equal(te.ts, INT64_C(0x0102030405060708));
    assert_int_equal(te.rel, -2);
}

/* Keys with duplicates: key(i) = 3 * (i / 2), positions 100 i. */
static int32_t key_of(int64_t i)
{
    return (int32_t)(3 * (i / 2));
}

static int64_t linear_rank(int64_t n, int64_t target, int inclusive)
{
    int64_t k = 0;
    while (k < n && (inclusive ? key_of(k) <= target : key_of(k) < target))
        k++;
    return k;
}

static void check_split(int fd, const uint8_t *all, int64_t n, int64_t disk_n)
{
    struct index_view v = {
        .fd = fd,
        .disk_n = disk_n,
        .mem = all + disk_n * INDEX_ENTRY_SIZE,
        .mem_n = n - disk_n,
        .key = INDEX_KEY_REL,
    };
    for (int64_t t = -2; t <= key_of(n - 1) + 2; t++) {
        for (int inc = 0; inc <= 1; inc++) {
            int64_t k;
            assert_int_equal(index_view_rank(&v, t, inc, &k), 0);
            assert_int_equal(k, linear_rank(n, t, inc));
        }
    }
    /* Position key: strictly increasing. */
    v.key = INDEX_KEY_POS;
    int64_t k;
    assert_int_equal(index_view_rank(&v, 100 * (n / 2), 0, &k), 0);
    assert_int_equal(k, n / 2);
    assert_int_equal(index_view_rank(&v, 100 * (n / 2), 1, &k), 0);
    assert_int_equal(k, n / 2 + 1);
    uint8_t e[INDEX_ENTRY_SIZE];
    struct index_entry ie;
    assert_int_equal(index_view_read(&v, n - 1, e), 0);
    index_entry_decode(e, &ie);
    assert_int_equal(ie.pos, 100 * (n - 1));
    assert_int_equal(index_view_read(&v, n, e), -ERANGE);
}

static void test_index_rank_over_file_and_memory(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("index");
    char path[4096];
    snprintf(path, sizeof(path), "%s/x.index", dir);
    /* Enough entries for several pages so the pread path is used. */
    const int64_t n = 3000;
    uint8_t *all = malloc(n * INDEX_ENTRY_SIZE);
    assert_non_null(all);
    for (int64_t i = 0; i < n; i++)
        index_entry_encode(all + i * INDEX_ENTRY_SIZE, key_of(i), (int32_t)(100 * i));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fsutil_pwrite_all(fd, all, n * INDEX_ENTRY_SIZE, 0), 0);

    check_split(fd, all, n, n);       /* all on disk */
    check_split(fd, all, n, n - 200); /* the active segment's pending page */
    check_split(-1, all, 200, 0);     /* all in memory */
    check_split(fd, all, 1, 1);
    struct index_view empty = {.fd = -1, .key = INDEX_KEY_REL};
    int64_t k = 5;
    assert_int_equal(index_view_rank(&empty, 10, 1, &k), 0);
    assert_int_equal(k, 0);

    /* A file shorter than the view claims is an error, not garbage. */
    struct index_view v = {.fd = fd, .disk_n = n + 10, .key = INDEX_KEY_REL};
    uint8_t e[8];
    assert_int_equal(index_view_read(&v, n + 5, e), -ENODATA);
    close(fd);
    free(all);
    testutil_rmtree(dir);
}

static void test_timeindex_rank_by_timestamp_and_offset(void **state)
{
    (void)state;
    uint8_t mem[12 * 5];
    int64_t ts[5] = {-5, 10, 10, 40, INT64_C(1) << 40};
    for (int i = 0; i < 5; i++)
        timeindex_entry_encode(mem + 12 * i, ts[i], i * 7);
    struct index_view v = {.fd = -1, .mem = mem, .mem_n = 5, .key = TIMEINDEX_KEY_TS};
    int64_t k;
    assert_int_equal(index_view_rank(&v, 10, 1, &k), 0);
    assert_int_equal(k, 3);
    assert_int_equal(index_view_rank(&v, 10, 0, &k), 0);
    assert_int_equal(k, 1);
    assert_int_equal(index_view_rank(&v, INT64_C(1) << 40, 1, &k), 0);
    assert_int_equal(k, 5);
    assert_int_equal(index_view_rank(&v, -6, 1, &k), 0);
    assert_int_equal(k, 0);
    v.key = TIMEINDEX_KEY_REL;
    assert_int_equal(index_view_rank(&v, 14, 0, &k), 0);
    assert_int_equal(k, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_entry_layout_is_big_endian),
        cmocka_unit_test(test_index_rank_over_file_and_memory),
        cmocka_unit_test(test_timeindex_rank_by_timestamp_and_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
