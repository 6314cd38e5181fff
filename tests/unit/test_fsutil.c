/* Tests for common/fsutil: atomic replace (content, no temp left behind, failure
 * keeps the old state), bounded reads, mkdir -p, rm -rf without following
 * symlinks, and the full positional read/write helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "tests/unit/testutil.h"

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

static void write_plain(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void assert_file_is(const char *path, const char *content)
{
    uint8_t *data;
    size_t len;
    assert_int_equal(fsutil_read_file(path, 1 << 20, &data, &len), 0);
    assert_int_equal(len, strlen(content));
    assert_memory_equal(data, content, len);
    assert_int_equal(data[len], '\0');
    free(data);
}

static void test_fsutil_write_atomic_replaces_content_without_leftovers(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fsutil");
    char *f = path_join(dir, "checkpoint");
    assert_int_equal(fsutil_write_atomic(f, "first version, longer", 21), 0);
    assert_file_is(f, "first version, longer");
    assert_int_equal(fsutil_write_atomic(f, "second", 6), 0);
    assert_file_is(f, "second"); /* shorter content: nothing of the old tail */
    assert_int_equal(fsutil_write_atomic(f, "", 0), 0);
    assert_file_is(f, "");
    assert_int_equal(count_entries(dir), 1); /* no temp file left behind */
    free(f);
    testutil_rmtree(dir);
}

static void test_fsutil_write_atomic_failure_keeps_target_and_cleans_temp(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fsutil");
    /* The target is a non-empty directory, so the final rename must fail (and
     * this works even when the tests run as root, unlike a read-only dir). */
    char *target = path_join(dir, "target");
    assert_int_equal(mkdir(target, 0755), 0);
    char *inner = path_join(target, "keep");
    write_plain(inner, "old");
    int rc = fsutil_write_atomic(target, "new", 3);
    assert_true(rc == -EISDIR || rc == -ENOTEMPTY || rc == -EEXIST);
    assert_file_is(inner, "old");
    assert_int_equal(count_entries(dir), 1); /* only "target": temp unlinked */

    /* A missing parent directory fails cleanly too. */
    char *orphan = path_join(dir, "missing/child");
    assert_int_equal(fsutil_write_atomic(orphan, "x", 1), -ENOENT);

    if (geteuid() != 0) {
        /* Unwritable directory: old content stays. */
        char *sub = path_join(dir, "ro");
        assert_int_equal(mkdir(sub, 0755), 0);
        char *f = path_join(sub, "file");
        assert_int_equal(fsutil_write_atomic(f, "old", 3), 0);
        assert_int_equal(chmod(sub, 0555), 0);
        assert_int_equal(fsutil_write_atomic(f, "new", 3), -EACCES);
        assert_file_is(f, "old");
        assert_int_equal(count_entries(sub), 1);
        assert_int_equal(chmod(sub, 0755), 0);
        free(f);
        free(sub);
    }
    free(orphan);
    free(inner);
    free(target);
    testutil_rmtree(dir);
}

static void test_fsutil_read_file_enforces_max(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fsutil");
    char *f = path_join(dir, "data");
    enum { N = 10000 };
    uint8_t *content = malloc(N);
    assert_non_null(content);
    for (size_t i = 0; i < N; i++)
        content[i] = (uint8_t)(i * 31);
    assert_int_equal(fsutil_write_atomic(f, content, N), 0);

    uint8_t *data = (uint8_t *)"untouched";
    size_t len = 12345;
    assert_int_equal(fsutil_read_file(f, N - 1, &data, &len), -EFBIG);
    assert_string_equal((char *)data, "untouched"); /* outputs untouched on error */
    assert_int_equal(len, 12345);
    assert_int_equal(fsutil_read_file(f, 0, &data, &len), -EFBIG);
    assert_int_equal(fsutil_read_file(f, N, &data, &len), 0); /* max is inclusive */
    assert_int_equal(len, N);
    assert_memory_equal(data, content, N);
    assert_int_equal(data[N], 0);
    free(data);

    assert_int_equal(fsutil_read_file(dir, 100, &data, &len), -EISDIR);
    char *missing = path_join(dir, "nope");
    assert_int_equal(fsutil_read_file(missing, 100, &data, &len), -ENOENT);

    /* A file whose size stat cannot tell (procfs reports 0) is still bounded. */
    if (exists("/proc/self/maps")) {
        assert_int_equal(fsutil_read_file("/proc/self/maps", 8, &data, &len), -EFBIG);
        assert_int_equal(fsutil_read_file("/proc/self/maps", 1 << 24, &data, &len), 0);
        assert_true(len > 8);
        assert_int_equal(strlen((char *)data), len);
        free(data);
    }
    free(missing);
    free(content);
    free(f);
    testutil_rmtree(dir);
}

static void test_fsutil_mkdirs_creates_nested_and_accepts_existing(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fsutil");
    char *deep = path_join(dir, "a/b//c/d/");
    assert_int_equal(fsutil_mkdirs(deep, 0755), 0);
    struct stat st;
    char *d = path_join(dir, "a/b/c/d");
    assert_int_equal(stat(d, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fsutil_mkdirs(d, 0755), 0); /* existing is fine */
    assert_int_equal(fsutil_mkdirs(dir, 0755), 0);

    /* A regular file in the way is not a directory. */
    char *file = path_join(dir, "a/file");
    write_plain(file, "x");
    assert_int_equal(fsutil_mkdirs(file, 0755), -ENOTDIR);
    char *under = path_join(dir, "a/file/sub");
    assert_int_equal(fsutil_mkdirs(under, 0755), -ENOTDIR);
    assert_int_equal(fsutil_mkdirs("", 0755), -EINVAL);
    free(under);
    free(file);
    free(d);
    free(deep);
    testutil_rmtree(dir);
}

static void test_fsutil_remove_tree_nested_without_following_symlinks(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fsutil");
    /* Something outside the tree that a symlink points at: must survive. */
    char *outside = path_join(dir, "outside");
    assert_int_equal(fsutil_mkdirs(outside, 0755), 0);
    char *precious = path_join(outside, "precious");
    write_plain(precious, "keep me");

    char *tree = path_join(dir, "tree");
    char *deep = path_join(tree, "x/y/z");
    assert_int_equal(fsutil_mkdirs(deep, 0755), 0);
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), "x/y/f%d", i);
        char *f = path_join(tree, name);
        write_plain(f, "data");
        free(f);
    }
    char *zf = path_join(deep, "file");
    write_plain(zf, "z");
    char *link = path_join(tree, "x/link-to-outside");
    assert_int_equal(symlink(outside, link), 0);

    assert_int_equal(fsutil_remove_tree(tree), 0);
    assert_false(exists(tree));
    assert_file_is(precious, "keep me");

    /* Already gone: not an error. A plain file and a top-level symlink work. */
    assert_int_equal(fsutil_remove_tree(tree), 0);
    char *toplink = path_join(dir, "toplink");
    assert_int_equal(symlink(outside, toplink), 0);
    assert_int_equal(fsutil_remove_tree(toplink), 0);
    assert_false(exists(toplink));
    assert_file_is(precious, "keep me");
    assert_int_equal(fsutil_remove_tree(precious), 0);
    assert_false(exists(precious));

    free(toplink);
    free(link);
    free(zf);
    free(deep);
    free(tree);
    free(precious);
    free(outside);
    testutil_rmtree(dir);
}

static void test_fsutil_pread_pwrite_all(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fsutil");
    char *f = path_join(dir, "rw");
    int fd = open(f, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    enum { N = 1 << 20 };
    uint8_t *buf = malloc(N), *back = malloc(N);
    assert_non_null(buf);
    assert_non_null(back);
    for (size_t i = 0; i < N; i++)
        buf[i] = (uint8_t)(i ^ (i >> 8));
    assert_int_equal(fsutil_pwrite_all(fd, buf, N, 4096), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, N + 4096);
    assert_int_equal(fsutil_pread_all(fd, back, N, 4096), 0);
    assert_memory_equal(back, buf, N);
    /* The hole before the data reads as zeros. */
    assert_int_equal(fsutil_pread_all(fd, back, 16, 0), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(back[i], 0);
    /* Past the end: -ENODATA, not a short read. */
    assert_int_equal(fsutil_pread_all(fd, back, 2, N + 4095), -ENODATA);
    assert_int_equal(fsutil_pread_all(fd, back, 1, N + 4096), -ENODATA);
    assert_int_equal(fsutil_pread_all(fd, back, 0, N + 9999), 0);
    assert_int_equal(fsutil_pwrite_all(fd, buf, 1, -1), -EINVAL);
    assert_int_equal(fsutil_pwrite_all(-1, buf, 1, 0), -EBADF);
    close(fd);

    assert_int_equal(fsutil_fsync_dir(dir), 0);
    assert_int_equal(fsutil_fsync_parent(f), 0);
    assert_int_equal(fsutil_fsync_dir(f), -ENOTDIR);
    /* Parent of a bare name is the current directory, of "/x" the root. */
    assert_int_equal(fsutil_fsync_parent("no-such-name-needed"), 0);
    assert_int_equal(fsutil_fsync_parent("/x"), 0);
    char *trailing = path_join(dir, "sub///");
    assert_int_equal(fsutil_fsync_parent(trailing), 0);
    free(trailing);
    free(back);
    free(buf);
    free(f);
    testutil_rmtree(dir);
}

/* A crashed writer's temps go, ours (a write in progress) and look-alikes stay. */
static void test_fsutil_remove_stale_temps(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("fsutil");
    char own[64], *p;
    snprintf(own, sizeof(own), "cp.tmp.%ld.3", (long)getpid());
    const char *stale[] = {"replication-offset-checkpoint.tmp.999999999.0",
                           "00000000000000000042.snapshot.tmp.1.17", "odd.tmp.name.tmp.123.4"};
    const char *kept[] = {
        own,          "cp.tmp",       "cp.tmp.12", "cp.tmp.12.",
        "cp.tmp.x.1", "cp.tmp.12.3x", ".tmp.5.6",  "00000000000000000042.snapshot"};
    for (size_t i = 0; i < sizeof(stale) / sizeof(*stale); i++) {
        write_plain(p = path_join(dir, stale[i]), "x");
        free(p);
    }
    for (size_t i = 0; i < sizeof(kept) / sizeof(*kept); i++) {
        write_plain(p = path_join(dir, kept[i]), "x");
        free(p);
    }
    assert_int_equal(fsutil_remove_stale_temps(dir), 3);
    assert_int_equal(count_entries(dir), (int)(sizeof(kept) / sizeof(*kept)));
    for (size_t i = 0; i < sizeof(kept) / sizeof(*kept); i++) {
        assert_true(exists(p = path_join(dir, kept[i])));
        free(p);
    }
    assert_int_equal(fsutil_remove_stale_temps(dir), 0);
    p = path_join(dir, "missing");
    assert_int_equal(fsutil_remove_stale_temps(p), -ENOENT);
    free(p);
    testutil_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsutil_write_atomic_replaces_content_without_leftovers),
        cmocka_unit_test(test_fsutil_write_atomic_failure_keeps_target_and_cleans_temp),
        cmocka_unit_test(test_fsutil_read_file_enforces_max),
        cmocka_unit_test(test_fsutil_mkdirs_creates_nested_and_accepts_existing),
        cmocka_unit_test(test_fsutil_remove_tree_nested_without_following_symlinks),
        cmocka_unit_test(test_fsutil_pread_pwrite_all),
        cmocka_unit_test(test_fsutil_remove_stale_temps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
