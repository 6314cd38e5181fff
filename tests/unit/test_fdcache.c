/* Tests for broker/storage/fdcache.c: the LRU cap, references that pin files,
 * owners letting go while readers hold a file, and a plog of 100 segments served
 * through a cache of 8 descriptors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/storage/plog.h"
#include "broker/storage/segment.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "tests/unit/testutil.h"

#define NFILES 20

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

struct files {
    char *dir;
    char paths[NFILES][4096];
    struct seg_file *slots[NFILES];
};

static void make_files(struct files *fs)
{
    memset(fs, 0, sizeof(*fs));
    fs->dir = testutil_mkdtemp("fdcache");
    for (int i = 0; i < NFILES; i++) {
        snprintf(fs->paths[i], sizeof(fs->paths[i]), "%s/f%02d", fs->dir, i);
        char c = (char)('a' + i);
        int fd = open(fs->paths[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, &c, 1), 1);
        close(fd);
    }
}

static char first_byte(struct seg_file *f)
{
    char c = 0;
    assert_int_equal(pread(seg_file_fd(f), &c, 1, 0), 1);
    return c;
}

static void test_fdcache_lru_evicts_least_recently_used(void **state)
{
    (void)state;
    struct files fs;
    struct fdcache *fc;
    make_files(&fs);
    assert_int_equal(fdcache_new(3, &fc), 0); /* raised to the minimum of 8 */
    int base = count_open_fds();
    for (int i = 0; i < 8; i++) {
        struct seg_file *f;
        assert_int_equal(fdcache_acquire(fc, &fs.slots[i], fs.paths[i], O_RDONLY, &f), 0);
        assert_int_equal(first_byte(f), 'a' + i);
        seg_file_unref(f);
    }
    assert_int_equal(fdcache_open_count(fc), 8);
    assert_int_equal(count_open_fds(), base + 8);
    /* Touch 0: 1 is now the oldest and goes first. */
    struct seg_file *f;
    assert_int_equal(fdcache_acquire(fc, &fs.slots[0], fs.paths[0], O_RDONLY, &f), 0);
    seg_file_unref(f);
    assert_int_equal(fdcache_acquire(fc, &fs.slots[8], fs.paths[8], O_RDONLY, &f), 0);
    seg_file_unref(f);
    assert_non_null(fs.slots[0]);
    assert_null(fs.slots[1]);
    assert_non_null(fs.slots[2]);
    assert_int_equal(fdcache_open_count(fc), 8);
    assert_int_equal(count_open_fds(), base + 8);
    for (int i = 0; i < NFILES; i++)
        fdcache_release_slot(&fs.slots[i]);
    assert_int_equal(fdcache_open_count(fc), 0);
    assert_int_equal(count_open_fds(), base);
    fdcache_free(fc);
    testutil_rmtree(fs.dir);
}

static void test_fdcache_referenced_files_are_never_evicted(void **state)
{
    (void)state;
    struct files fs;
    struct fdcache *fc;
    struct seg_file *held[12];
    make_files(&fs);
    assert_int_equal(fdcache_new(8, &fc), 0);
    for (int i = 0; i < 12; i++)
        assert_int_equal(fdcache_acquire(fc, &fs.slots[i], fs.paths[i], O_RDONLY, &held[i]), 0);
    /* Over the cap while everything is in use, rather than failing. */
    assert_int_equal(fdcache_open_count(fc), 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(first_byte(held[i]), 'a' + i);
    /* Back under the cap as references go. */
    for (int i = 0; i < 12; i++)
        seg_file_unref(held[i]);
    assert_int_equal(fdcache_open_count(fc), 8);
    for (int i = 0; i < NFILES; i++)
        fdcache_release_slot(&fs.slots[i]);
    fdcache_free(fc);
    testutil_rmtree(fs.dir);
}

static void test_fdcache_owner_release_closes_on_last_unref(void **state)
{
    (void)state;
    struct files fs;
    struct fdcache *fc;
    struct seg_file *f;
    make_files(&fs);
    assert_int_equal(fdcache_new(8, &fc), 0);
    assert_int_equal(fdcache_acquire(fc, &fs.slots[0], fs.paths[0], O_RDONLY, &f), 0);
    seg_file_ref(f);
    seg_file_unref(f);
    int fd = seg_file_fd(f);
    assert_int_equal(unlink(fs.paths[0]), 0);
    fdcache_release_slot(&fs.slots[0]);
    assert_null(fs.slots[0]);
    assert_true(fd_is_open(fd));
    assert_int_equal(first_byte(f), 'a'); /* deleted, still readable */
    seg_file_unref(f);
    assert_false(fd_is_open(fd));
    assert_int_equal(fdcache_open_count(fc), 0);

    /* Unreferenced: closed at once. */
    assert_int_equal(fdcache_acquire(fc, &fs.slots[1], fs.paths[1], O_RDONLY, &f), 0);
    fd = seg_file_fd(f);
    seg_file_unref(f);
    assert_true(fd_is_open(fd));
    fdcache_release_slot(&fs.slots[1]);
    assert_false(fd_is_open(fd));
    fdcache_release_slot(&fs.slots[1]); /* twice is fine */

    /* The cache may go before a reader's last unref. */
    assert_int_equal(fdcache_acquire(fc, &fs.slots[2], fs.paths[2], O_RDONLY, &f), 0);
    fdcache_release_slot(&fs.slots[2]);
    fdcache_free(fc);
    assert_int_equal(first_byte(f), 'c');
    seg_file_unref(f);
    fdcache_free(NULL);
    seg_file_unref(NULL);
    testutil_rmtree(fs.dir);
}

static void test_fdcache_open_failure_leaves_slot_empty(void **state)
{
    (void)state;
    struct fdcache *fc;
    struct seg_file *slot = NULL, *f = NULL;
    assert_int_equal(fdcache_new(8, &fc), 0);
    assert_int_equal(fdcache_acquire(fc, &slot, "/nonexistent/x.log", O_RDONLY, &f), -ENOENT);
    assert_null(slot);
    assert_int_equal(fdcache_open_count(fc), 0);
    fdcache_free(fc);
}

/* ---- a plog through a small cache ----------------------------------------------- */

static void test_fdcache_small_cache_serves_100_segments(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fdcache-plog");
    struct fdcache *fc;
    struct plog *log;
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 600; /* one batch per segment */
    cfg.index_interval_bytes = 1;
    assert_int_equal(fdcache_new(8, &fc), 0);
    int base = count_open_fds();
    assert_int_equal(plog_open(dir, &cfg, fc, 0, -1, 1000, &log, NULL), 0);
    static char val[400];
    for (int i = 0; i < 100; i++) {
        buf_writer w;
        struct batch_builder b;
        buf_writer_init(&w);
        assert_int_equal(batch_builder_begin(&b, &w, 1000 + i), 0);
        assert_int_equal(batch_builder_add(&b, 1000 + i, NULL, -1, val, sizeof(val), NULL, 0), 0);
        assert_int_equal(batch_builder_finish(&b), 0);
        assert_int_equal(
            plog_append(log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 0, 1000 + i, NULL), 0);
        buf_writer_deinit(&w);
        assert_true(count_open_fds() <= base + 8);
    }
    assert_int_equal(plog_segment_count(log), 100);
    /* Scattered reads touch every segment's log and index files. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 100; i++) {
            int64_t off = (i * 37 + round) % 100;
            struct plog_read_result rr;
            assert_int_equal(plog_read(log, off, INT64_MAX, INT32_MAX, true, &rr), 0);
            assert_int_equal(rr.first_offset, off);
            uint8_t buf[600];
            assert_true(rr.length <= (int64_t)sizeof(buf));
            assert_int_equal(
                fsutil_pread_all(seg_file_fd(rr.file), buf, (size_t)rr.length, rr.position), 0);
            assert_int_equal(batch_validate(buf, (size_t)rr.length, 0, NULL), 0);
            seg_file_unref(rr.file);
            int64_t o, ts;
            assert_int_equal(plog_offset_for_timestamp(log, 1000 + off, &o, &ts), 0);
            assert_int_equal(o, off);
            assert_true(count_open_fds() <= base + 8);
            assert_true(fdcache_open_count(fc) <= 8);
        }
    }
    assert_int_equal(plog_flush_sync(log), 0);
    plog_close(log);
    assert_int_equal(count_open_fds(), base);
    /* Recovery of all of them through the same cache. */
    struct plog_recovery_info info;
    assert_int_equal(plog_open(dir, &cfg, fc, 0, -1, 1000, &log, &info), 0);
    assert_int_equal(info.segments_scanned, 100);
    assert_int_equal(plog_log_end_offset(log), 100);
    assert_true(count_open_fds() <= base + 8);
    plog_close(log);
    fdcache_free(fc);
    testutil_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fdcache_lru_evicts_least_recently_used),
        cmocka_unit_test(test_fdcache_referenced_files_are_never_evicted),
        cmocka_unit_test(test_fdcache_owner_release_closes_on_last_unref),
        cmocka_unit_test(test_fdcache_open_failure_leaves_slot_empty),
        cmocka_unit_test(test_fdcache_small_cache_serves_100_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
