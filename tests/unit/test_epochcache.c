/* Tests for broker/replica/epochcache: the leader-epoch cache, its
 * leader-epoch-checkpoint file, and Kafka's endOffsetFor semantics. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/replica/epochcache.h"
#include "testutil.h"

static char *file_path(const char *dir)
{
    size_t n = strlen(dir) + strlen(EPOCHCACHE_FILE) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, EPOCHCACHE_FILE);
    return p;
}

static void write_raw(const char *dir, const void *data, size_t len)
{
    char *path = file_path(dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    free(path);
}

/* The file's exact text, asserted equal to @want. */
static void assert_file_is(const char *dir, const char *want)
{
    char *path = file_path(dir);
    uint8_t *data;
    size_t len;
    assert_int_equal(fsutil_read_file(path, 1 << 20, &data, &len), 0);
    assert_string_equal((const char *)data, want);
    free(data);
    free(path);
}

static struct epochcache *open_ok(const char *dir, int64_t leo, bool *ret_discarded)
{
    struct epochcache *c = NULL;
    bool discarded = true;
    assert_int_equal(epochcache_open(dir, leo, &c, &discarded), 0);
    assert_non_null(c);
    if (ret_discarded)
        *ret_discarded = discarded;
    else
        assert_false(discarded);
    return c;
}

/* Assert the cache holds exactly @n entries given as epoch, offset pairs. */
static void assert_entries(const struct epochcache *c, size_t n, const int64_t *pairs)
{
    assert_int_equal(epochcache_count(c), n);
    for (size_t i = 0; i < n; i++) {
        struct epochcache_entry e = epochcache_get(c, i);
        assert_int_equal(e.epoch, pairs[2 * i]);
        assert_int_equal(e.start_offset, pairs[2 * i + 1]);
    }
    assert_int_equal(epochcache_latest_epoch(c), n > 0 ? pairs[2 * (n - 1)] : EPOCHCACHE_UNDEFINED);
}

static void assert_end(const struct epochcache *c, int32_t req, int64_t leo, int32_t want_epoch,
                       int64_t want_offset)
{
    int32_t e = 12345;
    int64_t o = 12345;
    epochcache_end_offset(c, req, leo, &e, &o);
    assert_int_equal(e, want_epoch);
    assert_int_equal(o, want_offset);
}

static void test_missing_file_is_empty_cache(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-empty");
    struct epochcache *c = open_ok(dir, 100, NULL);
    assert_entries(c, 0, NULL);
    epochcache_free(c);
    epochcache_free(NULL);
    testutil_rmtree(dir);
}

static void test_round_trip_through_file(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-rt");
    struct epochcache *c = open_ok(dir, 0, NULL);
    assert_int_equal(epochcache_assign(c, 0, 0), 0);
    assert_int_equal(epochcache_assign(c, 3, 1200), 0);
    assert_int_equal(epochcache_assign(c, 4, 1200), 0); /* an epoch that wrote nothing */
    assert_int_equal(epochcache_assign(c, INT32_MAX, INT64_MAX - 1), 0);
    assert_file_is(dir, "0\n4\n0 0\n3 1200\n4 1200\n2147483647 9223372036854775806\n");
    epochcache_free(c);

    c = open_ok(dir, INT64_MAX, NULL);
    const int64_t want[] = {0, 0, 3, 1200, 4, 1200, INT32_MAX, INT64_MAX - 1};
    assert_entries(c, 4, want);
    epochcache_free(c);
    testutil_rmtree(dir);
}

/* Leaderships taken up together: one batch, every file durable at commit,
 * small batches and big ones alike; nothing on disk before the commit. */
static void test_batched_assignments_are_written_at_commit(void **state)
{
    (void)state;
    for (size_t want_n = 3; want_n <= 3 * EPOCHCACHE_BATCH_MIN; want_n *= 8) {
        char *root = testutil_mkdtemp("ec-batch");
        char *dirs[3 * EPOCHCACHE_BATCH_MIN];
        struct epochcache *cs[3 * EPOCHCACHE_BATCH_MIN];
        struct epochcache_batch b = {0};
        for (size_t i = 0; i < want_n; i++) {
            size_t n = strlen(root) + 16;
            dirs[i] = malloc(n);
            assert_non_null(dirs[i]);
            snprintf(dirs[i], n, "%s/p%zu", root, i);
            assert_int_equal(mkdir(dirs[i], 0755), 0);
            cs[i] = open_ok(dirs[i], 100, NULL);
            assert_int_equal(epochcache_assign(cs[i], 1, 0), 0);
            assert_int_equal(epochcache_assign_batched(cs[i], 2, 40, &b), 0);
            assert_int_equal(epochcache_assign_batched(cs[i], 3, 100, &b), 0); /* same cache */
            assert_int_equal(epochcache_latest_epoch(cs[i]), 3); /* in memory at once */
            assert_int_equal(epochcache_assign_batched(cs[i], 3, 100, &b), 0); /* not above */
            assert_int_equal(epochcache_assign_batched(cs[i], 4, 99, &b), -EINVAL);
            assert_file_is(dirs[i], "0\n1\n1 0\n");
        }
        assert_int_equal(b.n, want_n);
        assert_int_equal(epochcache_batch_commit(&b), 0);
        assert_int_equal(b.n, 0);
        for (size_t i = 0; i < want_n; i++) {
            assert_file_is(dirs[i], "0\n3\n1 0\n2 40\n3 100\n");
            epochcache_free(cs[i]);
            free(dirs[i]);
        }
        epochcache_batch_deinit(&b);
        testutil_rmtree(root);
    }
}

/* A cache whose file cannot be written loses the batched entries, as a failed
 * epochcache_assign leaves it; one never committed loses them too. */
static void test_failed_or_abandoned_batch_leaves_memory_as_the_file(void **state)
{
    (void)state;
    char *root = testutil_mkdtemp("ec-batch-fail");
    struct epochcache *cs[EPOCHCACHE_BATCH_MIN];
    char *dirs[EPOCHCACHE_BATCH_MIN];
    struct epochcache_batch b = {0};
    for (size_t i = 0; i < EPOCHCACHE_BATCH_MIN; i++) {
        size_t n = strlen(root) + 16;
        dirs[i] = malloc(n);
        assert_non_null(dirs[i]);
        snprintf(dirs[i], n, "%s/p%zu", root, i);
        assert_int_equal(mkdir(dirs[i], 0755), 0);
        cs[i] = open_ok(dirs[i], 100, NULL);
        assert_int_equal(epochcache_assign_batched(cs[i], 5, 10, &b), 0);
    }
    /* Partition 2's directory goes away (a deleted replica): its write fails. */
    char *path = file_path(dirs[2]);
    unlink(path);
    free(path);
    assert_int_equal(rmdir(dirs[2]), 0);
    assert_int_equal(epochcache_batch_commit(&b), 1);
    for (size_t i = 0; i < EPOCHCACHE_BATCH_MIN; i++) {
        assert_int_equal(epochcache_count(cs[i]), i == 2 ? 0 : 1);
        if (i != 2)
            assert_file_is(dirs[i], "0\n1\n5 10\n");
    }
    assert_int_equal(epochcache_assign_batched(cs[0], 6, 20, &b), 0);
    epochcache_batch_deinit(&b);
    assert_int_equal(epochcache_latest_epoch(cs[0]), 5);
    assert_file_is(dirs[0], "0\n1\n5 10\n");
    for (size_t i = 0; i < EPOCHCACHE_BATCH_MIN; i++) {
        epochcache_free(cs[i]);
        free(dirs[i]);
    }
    testutil_rmtree(root);
}

/* A restart opens every replica's cache in one sweep: entries at or past the
 * log end (an epoch of an empty log) leave memory at once and the files are
 * rewritten together at commit, with the epochs taken up in the same sweep,
 * by exchange with a spare (no new inode); a cache with nothing to drop, or
 * back where its file is, is not written at all. */
static void test_batched_open_rewrites_at_commit(void **state)
{
    (void)state;
    enum { N = 4 * EPOCHCACHE_BATCH_MIN };
    char *root = testutil_mkdtemp("ec-open-batch");
    char *dirs[N];
    struct epochcache *cs[N];
    ino_t ino[N];
    struct epochcache_batch b = {0};
    /* i % 4: 0 nothing to drop; 1 drops its only entries (empty log, now a
     * follower); 2 the same, led again in the same epoch; 3 drops one of two
     * and is led in a new epoch. */
    static const char *const before[4] = {"0\n1\n0 0\n", "0\n2\n0 0\n3 0\n", "0\n1\n3 0\n",
                                          "0\n2\n0 0\n3 7\n"};
    static const char *const after[4] = {"0\n1\n0 0\n", "0\n0\n", "0\n1\n3 0\n",
                                         "0\n2\n0 0\n5 7\n"};
    static const int64_t leo[4] = {5, 0, 0, 7};
    for (size_t i = 0; i < N; i++) {
        size_t n = strlen(root) + 16;
        dirs[i] = malloc(n);
        assert_non_null(dirs[i]);
        snprintf(dirs[i], n, "%s/p%zu", root, i);
        assert_int_equal(mkdir(dirs[i], 0755), 0);
        write_raw(dirs[i], before[i % 4], strlen(before[i % 4]));
        char *path = file_path(dirs[i]);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        ino[i] = st.st_ino;
        free(path);
        bool discarded = true;
        assert_int_equal(epochcache_open_batched(dirs[i], leo[i % 4], &cs[i], &discarded, &b), 0);
        assert_false(discarded);
        assert_int_equal(epochcache_count(cs[i]), i % 4 == 0 || i % 4 == 3 ? 1 : 0);
        assert_file_is(dirs[i], before[i % 4]); /* the file changes at commit */
        if (i % 4 == 2)
            assert_int_equal(epochcache_assign_batched(cs[i], 3, 0, &b), 0);
        if (i % 4 == 3)
            assert_int_equal(epochcache_assign_batched(cs[i], 5, 7, &b), 0);
    }
    assert_int_equal(b.n, 3 * N / 4); /* every cache that dropped entries, once */
    assert_int_equal(epochcache_batch_commit(&b), 0);
    for (size_t i = 0; i < N; i++) {
        char *path = file_path(dirs[i]);
        struct stat st;
        assert_file_is(dirs[i], after[i % 4]);
        assert_int_equal(stat(path, &st), 0);
        /* Rewritten ones were exchanged with their spare, which now holds
         * the old text; the others were not touched. */
        assert_true((st.st_ino == ino[i]) == (i % 4 == 0 || i % 4 == 2));
        size_t sl = strlen(path) + sizeof(EPOCHCACHE_SPARE_SUFFIX);
        char *spare = malloc(sl);
        assert_non_null(spare);
        snprintf(spare, sl, "%s%s", path, EPOCHCACHE_SPARE_SUFFIX);
        assert_int_equal(stat(spare, &st) == 0, i % 4 == 1 || i % 4 == 3);
        if (i % 4 == 1 || i % 4 == 3)
            assert_true(st.st_ino == ino[i]);
        free(spare);
        free(path);
        epochcache_free(cs[i]);
        struct epochcache *c = open_ok(dirs[i], leo[i % 4], NULL);
        /* (opened at the LEO again: an entry starting there goes) */
        assert_int_equal(epochcache_count(c), i % 4 == 0 || i % 4 == 3 ? 1 : 0);
        epochcache_free(c);
        free(dirs[i]);
    }
    epochcache_batch_deinit(&b);
    testutil_rmtree(root);
}

static void test_reads_kafka_written_file(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-kafka");
    const char *text = "0\n3\n0 0\n2 5\n7 4096\n";
    write_raw(dir, text, strlen(text));
    struct epochcache *c = open_ok(dir, 5000, NULL);
    const int64_t want[] = {0, 0, 2, 5, 7, 4096};
    assert_entries(c, 3, want);
    epochcache_free(c);
    assert_file_is(dir, text); /* nothing changed, nothing rewritten */
    testutil_rmtree(dir);
}

static void test_assign_ignores_old_epochs_and_rejects_lower_offsets(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-assign");
    struct epochcache *c = open_ok(dir, 0, NULL);
    assert_int_equal(epochcache_assign(c, 2, 10), 0);
    assert_int_equal(epochcache_assign(c, 5, 20), 0);
    /* Same epoch again (every batch of the epoch carries it) and older epochs. */
    assert_int_equal(epochcache_assign(c, 5, 30), 0);
    assert_int_equal(epochcache_assign(c, 5, 20), 0);
    assert_int_equal(epochcache_assign(c, 3, 40), 0);
    assert_int_equal(epochcache_assign(c, 0, 0), 0);
    const int64_t want[] = {2, 10, 5, 20};
    assert_entries(c, 2, want);
    /* A newer epoch cannot start before the latest entry. */
    assert_int_equal(epochcache_assign(c, 6, 19), -EINVAL);
    assert_int_equal(epochcache_assign(c, -1, 50), -EINVAL);
    assert_int_equal(epochcache_assign(c, 7, -1), -EINVAL);
    assert_entries(c, 2, want);
    assert_file_is(dir, "0\n2\n2 10\n5 20\n");
    epochcache_free(c);
    testutil_rmtree(dir);
}

static void test_open_drops_entries_at_or_after_log_end(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-open-trunc");
    const char *text = "0\n4\n0 0\n1 10\n2 20\n3 30\n";
    write_raw(dir, text, strlen(text));
    /* Recovery cut the log back to end at 20: epoch 2's first batch is gone. */
    struct epochcache *c = open_ok(dir, 20, NULL);
    const int64_t want[] = {0, 0, 1, 10};
    assert_entries(c, 2, want);
    epochcache_free(c);
    assert_file_is(dir, "0\n2\n0 0\n1 10\n");

    /* One past an entry's start keeps it. */
    c = open_ok(dir, 11, NULL);
    assert_entries(c, 2, want);
    epochcache_free(c);
    /* An empty log keeps nothing. */
    c = open_ok(dir, 0, NULL);
    assert_entries(c, 0, NULL);
    epochcache_free(c);
    assert_file_is(dir, "0\n0\n");
    testutil_rmtree(dir);
}

static void test_end_offset_every_case(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-end");
    struct epochcache *c = open_ok(dir, 0, NULL);

    /* Empty cache: nothing is known. */
    assert_end(c, 0, 50, EPOCHCACHE_UNDEFINED, EPOCHCACHE_UNDEFINED);
    assert_end(c, 3, 50, EPOCHCACHE_UNDEFINED, EPOCHCACHE_UNDEFINED);

    assert_int_equal(epochcache_assign(c, 2, 10), 0);
    assert_int_equal(epochcache_assign(c, 4, 20), 0);
    assert_int_equal(epochcache_assign(c, 7, 35), 0);
    const int64_t leo = 50;

    /* Requested UNDEFINED. */
    assert_end(c, EPOCHCACHE_UNDEFINED, leo, EPOCHCACHE_UNDEFINED, EPOCHCACHE_UNDEFINED);
    /* The latest epoch ends at the log end. */
    assert_end(c, 7, leo, 7, leo);
    assert_end(c, 7, 36, 7, 36);
    /* Below every epoch: the requested epoch and the start of the first entry. */
    assert_end(c, 0, leo, 0, 10);
    assert_end(c, 1, leo, 1, 10);
    /* A known epoch ends where the next starts. */
    assert_end(c, 2, leo, 2, 20);
    assert_end(c, 4, leo, 4, 35);
    /* Between entries: the largest epoch below it, ending where the next starts. */
    assert_end(c, 3, leo, 2, 20);
    assert_end(c, 5, leo, 4, 35);
    assert_end(c, 6, leo, 4, 35);
    /* Above every epoch. */
    assert_end(c, 8, leo, EPOCHCACHE_UNDEFINED, EPOCHCACHE_UNDEFINED);
    assert_end(c, INT32_MAX, leo, EPOCHCACHE_UNDEFINED, EPOCHCACHE_UNDEFINED);

    epochcache_free(c);
    testutil_rmtree(dir);
}

static void test_truncate_from_end(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-tend");
    struct epochcache *c = open_ok(dir, 0, NULL);
    assert_int_equal(epochcache_assign(c, 0, 0), 0);
    assert_int_equal(epochcache_assign(c, 1, 10), 0);
    assert_int_equal(epochcache_assign(c, 2, 20), 0);
    assert_int_equal(epochcache_assign(c, 3, 30), 0);

    /* Past the latest start: nothing to drop. */
    assert_int_equal(epochcache_truncate_from_end(c, 31), 0);
    assert_int_equal(epochcache_count(c), 4);
    /* Exactly at an entry's start drops it and all after it. */
    assert_int_equal(epochcache_truncate_from_end(c, 20), 0);
    const int64_t want[] = {0, 0, 1, 10};
    assert_entries(c, 2, want);
    epochcache_free(c);

    c = open_ok(dir, 1000, NULL);
    assert_entries(c, 2, want);
    /* A new leader epoch can be assigned from the truncation point. */
    assert_int_equal(epochcache_assign(c, 5, 20), 0);
    assert_int_equal(epochcache_truncate_from_end(c, 0), 0);
    assert_entries(c, 0, NULL);
    epochcache_free(c);
    c = open_ok(dir, 1000, NULL);
    assert_entries(c, 0, NULL);
    epochcache_free(c);
    testutil_rmtree(dir);
}

static void test_truncate_from_start(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-tstart");
    struct epochcache *c = open_ok(dir, 0, NULL);
    assert_int_equal(epochcache_assign(c, 0, 0), 0);
    assert_int_equal(epochcache_assign(c, 1, 10), 0);
    assert_int_equal(epochcache_assign(c, 2, 20), 0);
    assert_int_equal(epochcache_assign(c, 3, 30), 0);

    /* At or before the first start: nothing changes. */
    assert_int_equal(epochcache_truncate_from_start(c, 0), 0);
    assert_file_is(dir, "0\n4\n0 0\n1 10\n2 20\n3 30\n");
    /* Inside epoch 1: epoch 0 ended at 10 <= 15 and goes; epoch 1 now starts at 15. */
    assert_int_equal(epochcache_truncate_from_start(c, 15), 0);
    const int64_t want1[] = {1, 15, 2, 20, 3, 30};
    assert_entries(c, 3, want1);
    /* Exactly at epoch 2's start: epoch 1 ended there and goes. */
    assert_int_equal(epochcache_truncate_from_start(c, 20), 0);
    const int64_t want2[] = {2, 20, 3, 30};
    assert_entries(c, 2, want2);
    epochcache_free(c);

    c = open_ok(dir, 100, NULL);
    assert_entries(c, 2, want2);
    /* Past the latest start: only the latest remains, starting at the new start. */
    assert_int_equal(epochcache_truncate_from_start(c, 45), 0);
    const int64_t want3[] = {3, 45};
    assert_entries(c, 1, want3);
    epochcache_free(c);
    c = open_ok(dir, 100, NULL);
    assert_entries(c, 1, want3);
    assert_end(c, 2, 100, 2, 45); /* epochs before the log start are gone */

    assert_int_equal(epochcache_clear(c), 0);
    assert_entries(c, 0, NULL);
    epochcache_free(c);
    assert_file_is(dir, "0\n0\n");
    testutil_rmtree(dir);
}

static void test_corrupt_files_are_discarded(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",                                                  /* empty */
        "1\n0\n",                                            /* unknown version */
        "0\n",                                               /* no count */
        "0\n2\n0 0\n",                                       /* count above the lines */
        "0\n1\n0 0\n1 10\n",                                 /* count below the lines */
        "0\n1\n0 0",                                         /* last line unterminated */
        "0\n1\nx 0\n",                                       /* not a number */
        "0\n1\n0 1O\n",                                      /* letter in a number */
        "0\n1\n-1 0\n",                                      /* negative epoch */
        "0\n1\n0 -5\n",                                      /* negative offset */
        "0\n1\n0 0 7\n",                                     /* trailing field */
        "0\n1\n0 0 \n",                                      /* trailing space */
        "0\n1\n0  0\n",                                      /* two spaces */
        "0\n1\n2147483648 0\n",                              /* epoch above int32 */
        "0\n1\n0 9223372036854775808\n",                     /* offset above int64 */
        "0\n1\n0 000000000000000000000000000000000000001\n", /* leading zeros */
        "0\n1\n0 99999999999999999999999999999999999999\n",  /* line too long */
        "0\n2\n3 0\n3 10\n",                                 /* epochs repeat */
        "0\n2\n3 0\n2 10\n",                                 /* epochs decrease */
        "0\n2\n0 10\n1 9\n",                                 /* offsets decrease */
        "0\n100001\n",                                       /* count above the cap */
        "0\n99999999999999999999\n",                         /* count overflows */
        "0\n1000\n0 0\n",                                    /* count the file cannot hold */
        "0\n1\n0 0\n\n",                                     /* trailing garbage */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *dir = testutil_mkdtemp("ec-bad");
        write_raw(dir, bad[i], strlen(bad[i]));
        bool discarded = false;
        struct epochcache *c = open_ok(dir, 1000, &discarded);
        if (!discarded)
            fail_msg("case %zu not discarded: \"%s\"", i, bad[i]);
        assert_entries(c, 0, NULL);
        epochcache_free(c);
        assert_file_is(dir, "0\n0\n");
        /* The rewritten file reads back clean. */
        c = open_ok(dir, 1000, NULL);
        epochcache_free(c);
        testutil_rmtree(dir);
    }

    /* A file longer than any valid one is discarded without being parsed. */
    char *dir = testutil_mkdtemp("ec-huge");
    size_t big = 4u << 20;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '0', big);
    write_raw(dir, text, big);
    free(text);
    bool discarded = false;
    struct epochcache *c = open_ok(dir, 0, &discarded);
    assert_true(discarded);
    assert_entries(c, 0, NULL);
    epochcache_free(c);
    testutil_rmtree(dir);
}

static void test_open_reports_io_errors(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("ec-io");
    char *path = file_path(dir);
    /* The checkpoint path is a directory: an error, not a corrupt file. */
    assert_int_equal(mkdir(path, 0755), 0);
    struct epochcache *c = NULL;
    bool discarded = false;
    assert_int_equal(epochcache_open(dir, 0, &c, &discarded), -EISDIR);
    assert_null(c);
    free(path);
    testutil_rmtree(dir);
}

/* One round of a follower's truncation as repl.c does it (KIP-279): the
 * leader's answer for the follower's latest epoch (the divergence check of its
 * fetch), then epochcache_truncation_offset on the follower. Returns true when
 * the round was final. */
static bool follower_truncate_round(struct epochcache *leader, int64_t leader_leo,
                                    struct epochcache *follower, int64_t *follower_leo)
{
    int32_t le;
    int64_t lo;
    epochcache_end_offset(leader, epochcache_latest_epoch(follower), leader_leo, &le, &lo);
    assert_int_not_equal(le, EPOCHCACHE_UNDEFINED);
    bool done;
    int64_t to = epochcache_truncation_offset(follower, le, lo, *follower_leo, &done);
    if (to < *follower_leo)
        *follower_leo = to;
    assert_int_equal(epochcache_truncate_from_end(follower, *follower_leo), 0);
    return done;
}

static struct epochcache *cache_with(const char *dir, size_t n, const int64_t *pairs)
{
    struct epochcache *c = open_ok(dir, 0, NULL);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(epochcache_assign(c, (int32_t)pairs[2 * i], pairs[2 * i + 1]), 0);
    return c;
}

static void test_kip101_follower_truncates_to_leader_epoch_end(void **state)
{
    (void)state;
    char *da = testutil_mkdtemp("ec-kip101-a");
    char *db = testutil_mkdtemp("ec-kip101-b");
    /* B wrote m1, m2 in epoch 0 (offsets 0, 1); A only got m1 before B died, then
     * became leader in epoch 1 and wrote m3 at offset 1. Truncating to the high
     * watermark would have kept B's m2 at 1, diverging from A's m3. */
    const int64_t a_pairs[] = {0, 0, 1, 1};
    const int64_t b_pairs[] = {0, 0};
    struct epochcache *a = cache_with(da, 2, a_pairs);
    struct epochcache *b = cache_with(db, 1, b_pairs);
    int64_t a_leo = 2, b_leo = 2;
    assert_end(a, 0, a_leo, 0, 1);
    assert_true(follower_truncate_round(a, a_leo, b, &b_leo));
    assert_int_equal(b_leo, 1);
    /* B then copies A's batch and learns epoch 1 where A has it. */
    assert_int_equal(epochcache_assign(b, 1, 1), 0);
    assert_entries(b, 2, a_pairs);
    epochcache_free(a);
    epochcache_free(b);
    testutil_rmtree(da);
    testutil_rmtree(db);
}

static void test_kip279_examples(void **state)
{
    (void)state;
    char *da = testutil_mkdtemp("ec-kip279-a");
    char *db = testutil_mkdtemp("ec-kip279-b");

    /* Leader A {0:0, 2:5}, follower B {0:0, 1:5}: B's epoch 1 never reached A.
     * A answers epoch 1 with (0, 5): its epoch 0 ends at 5. B knows epoch 0
     * and its own epoch 0 also ends at 5, so B truncates to 5 and drops epoch 1. */
    const int64_t a_pairs[] = {0, 0, 2, 5};
    const int64_t b_pairs[] = {0, 0, 1, 5};
    struct epochcache *a = cache_with(da, 2, a_pairs);
    struct epochcache *b = cache_with(db, 2, b_pairs);
    int64_t a_leo = 9, b_leo = 8;
    assert_end(a, 1, a_leo, 0, 5);
    assert_true(follower_truncate_round(a, a_leo, b, &b_leo));
    assert_int_equal(b_leo, 5);
    const int64_t b_after[] = {0, 0};
    assert_entries(b, 1, b_after);
    epochcache_free(b);
    b = open_ok(db, b_leo, NULL); /* the truncation is on disk */
    assert_entries(b, 1, b_after);
    epochcache_free(a);
    epochcache_free(b);
    testutil_rmtree(da);
    testutil_rmtree(db);

    /* Two rounds: A {0:0, 1:4, 3:10} LEO 15; B {0:0, 2:7} LEO 12 (B led epoch 2,
     * A never saw it). A answers epoch 2 with (1, 10); B does not know epoch 1,
     * its nearest is epoch 0 ending at 7, so it cuts to 7 and asks again for
     * epoch 0; A says epoch 0 ends at 4, so B ends at 4. */
    da = testutil_mkdtemp("ec-kip279-a2");
    db = testutil_mkdtemp("ec-kip279-b2");
    const int64_t a2[] = {0, 0, 1, 4, 3, 10};
    const int64_t b2[] = {0, 0, 2, 7};
    a = cache_with(da, 3, a2);
    b = cache_with(db, 2, b2);
    a_leo = 15;
    b_leo = 12;
    assert_end(a, 2, a_leo, 1, 10);
    assert_false(follower_truncate_round(a, a_leo, b, &b_leo));
    assert_int_equal(b_leo, 7);
    assert_int_equal(epochcache_latest_epoch(b), 0);
    assert_true(follower_truncate_round(a, a_leo, b, &b_leo));
    assert_int_equal(b_leo, 4);
    /* A follower whose epochs match the leader's needs no truncation. */
    assert_int_equal(epochcache_assign(b, 1, 4), 0);
    b_leo = 10;
    assert_true(follower_truncate_round(a, a_leo, b, &b_leo));
    assert_int_equal(b_leo, 10);
    epochcache_free(a);
    epochcache_free(b);
    testutil_rmtree(da);
    testutil_rmtree(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file_is_empty_cache),
        cmocka_unit_test(test_round_trip_through_file),
        cmocka_unit_test(test_batched_assignments_are_written_at_commit),
        cmocka_unit_test(test_failed_or_abandoned_batch_leaves_memory_as_the_file),
        cmocka_unit_test(test_batched_open_rewrites_at_commit),
        cmocka_unit_test(test_reads_kafka_written_file),
        cmocka_unit_test(test_assign_ignores_old_epochs_and_rejects_lower_offsets),
        cmocka_unit_test(test_open_drops_entries_at_or_after_log_end),
        cmocka_unit_test(test_end_offset_every_case),
        cmocka_unit_test(test_truncate_from_end),
        cmocka_unit_test(test_truncate_from_start),
        cmocka_unit_test(test_corrupt_files_are_discarded),
        cmocka_unit_test(test_open_reports_io_errors),
        cmocka_unit_test(test_kip101_follower_truncates_to_leader_epoch_end),
        cmocka_unit_test(test_kip279_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
