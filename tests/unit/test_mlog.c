/* Tests for coordinator/mlog: records and offsets survive reopen; group commit
 * batches concurrent appends and completes them in offset order; recovery cuts a
 * torn or corrupt log where it goes bad and reports it; snapshots, their fallback
 * and retention; a record acknowledged to the caller survives the process dying;
 * a failed write fails the log; a received snapshot replaces the log, bad ones
 * are refused, and a crash at any point of that ends in the old or new state. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/wpool.h"
#include "coordinator/mlog.h"
#include "tests/unit/testutil.h"

#define SEG_HDR 24
#define REC_HDR 16

/* ---- helpers ---------------------------------------------------------------- */

/* Record @i's payload: deterministic bytes whose length varies with @i (0 included). */
static size_t payload_for(int64_t i, uint8_t *buf, size_t cap)
{
    size_t len = (size_t)((i * 37) % 61);
    assert_true(len <= cap);
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(i * 131 + (int64_t)k * 7);
    return len;
}

static void append_n_sync(struct mlog *log, int64_t n)
{
    uint8_t buf[64];
    for (int64_t k = 0; k < n; k++) {
        int64_t i = mlog_next_offset(log);
        size_t len = payload_for(i, buf, sizeof(buf));
        int64_t off = -1;
        assert_int_equal(mlog_append_sync(log, buf, len, &off), 0);
        assert_int_equal(off, i);
    }
}

/* Fixed-size records, so a test can compute where record @k starts in a file. */
#define FIXED_LEN 40
static void append_fixed_sync(struct mlog *log, int64_t n)
{
    for (int64_t k = 0; k < n; k++) {
        uint8_t buf[FIXED_LEN];
        memset(buf, (int)(mlog_next_offset(log) & 0xff), sizeof(buf));
        assert_int_equal(mlog_append_sync(log, buf, sizeof(buf), NULL), 0);
    }
}

static int64_t fixed_pos(int64_t k)
{
    return SEG_HDR + k * (REC_HDR + FIXED_LEN);
}

struct replay_check {
    int64_t next; /* expected offset */
    int64_t count;
    bool fixed; /* records are FIXED_LEN bytes of (offset & 0xff) */
};

static int check_record(int64_t offset, const uint8_t *data, size_t len, void *ud)
{
    struct replay_check *c = ud;
    assert_int_equal(offset, c->next);
    if (c->fixed) {
        assert_int_equal(len, FIXED_LEN);
        for (size_t k = 0; k < len; k++)
            assert_int_equal(data[k], offset & 0xff);
    } else {
        uint8_t buf[64];
        size_t want = payload_for(offset, buf, sizeof(buf));
        assert_int_equal(len, want);
        assert_memory_equal(data, buf, len);
    }
    c->next++;
    c->count++;
    return 0;
}

/* Replay and check every record from @from; returns how many there were. */
static int64_t replay_all(struct mlog *log, int64_t from, bool fixed)
{
    struct replay_check c = {.next = from, .fixed = fixed};
    assert_int_equal(mlog_replay(log, check_record, &c), 0);
    assert_int_equal(c.next, mlog_next_offset(log));
    return c.count;
}

static char *file_path(const char *dir, const char *prefix, int64_t n, const char *suffix)
{
    char *p = malloc(strlen(dir) + 64);
    assert_non_null(p);
    sprintf(p, "%s/%s%020" PRId64 "%s", dir, prefix, n, suffix);
    return p;
}

static char *seg_path(const char *dir, int64_t base)
{
    return file_path(dir, "metadata-", base, ".log");
}

static char *snap_path(const char *dir, int64_t off)
{
    return file_path(dir, "snapshot-", off, ".snap");
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void truncate_file(const char *path, int64_t size)
{
    assert_int_equal(truncate(path, size), 0);
}

static void flip_byte(const char *path, int64_t pos)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, pos), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, pos), 1);
    close(fd);
}

static void append_bytes(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void copy_file(const char *src, const char *dst)
{
    uint8_t *data;
    size_t len;
    assert_int_equal(fsutil_read_file(src, 1 << 26, &data, &len), 0);
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    free(data);
}

static void copy_dir(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    assert_non_null(d);
    struct dirent *de;
    char a[4096], b[4096];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(a, sizeof(a), "%s/%s", src, de->d_name);
        snprintf(b, sizeof(b), "%s/%s", dst, de->d_name);
        copy_file(a, b);
    }
    closedir(d);
}

static struct mlog *open_ok(const char *dir, struct mlog_recovery_info *info)
{
    struct mlog *log = NULL;
    struct mlog_recovery_info tmp;
    assert_int_equal(mlog_open(dir, NULL, &log, info ? info : &tmp), 0);
    assert_non_null(log);
    return log;
}

/* ---- event loop fixture ------------------------------------------------------- */

struct loop {
    struct event_base *base;
    struct event *tick; /* wakes the loop so run_until can time out */
    struct wpool *pool;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void loop_init(struct loop *l)
{
    l->base = event_base_new();
    assert_non_null(l->base);
    l->tick = event_new(l->base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    assert_non_null(l->tick);
    assert_int_equal(event_add(l->tick, &tv), 0);
    assert_int_equal(wpool_new(l->base, 2, &l->pool), 0);
}

static void loop_deinit(struct loop *l)
{
    wpool_free(l->pool);
    event_free(l->tick);
    event_base_free(l->base);
}

static void run_until(struct loop *l, const int64_t *counter, int64_t target)
{
    int64_t deadline = clock_mono_ms() + 20000;
    while (*counter < target) {
        if (clock_mono_ms() > deadline)
            fail_msg("timed out: %" PRId64 " of %" PRId64, *counter, target);
        event_base_loop(l->base, EVLOOP_ONCE);
    }
}

struct acks {
    int64_t done;   /* callbacks run */
    int64_t next;   /* offset the next callback must carry */
    int64_t errors; /* callbacks with a non-zero status */
    int last_status;
    int64_t records_at_snapshot; /* record callbacks seen when the snapshot completed */
    int64_t snapshot_done;
    int snapshot_status;
};

static void on_ack(struct mlog *log, int64_t offset, int status, void *ud)
{
    struct acks *a = ud;
    (void)log;
    assert_int_equal(offset, a->next);
    a->next++;
    a->done++;
    a->last_status = status;
    if (status != 0)
        a->errors++;
}

static void on_snapshot(struct mlog *log, int64_t offset, int status, void *ud)
{
    struct acks *a = ud;
    (void)log;
    (void)offset;
    a->records_at_snapshot = a->done;
    a->snapshot_status = status;
    a->snapshot_done++;
}

static int64_t append_async(struct mlog *log, int64_t i, struct acks *a)
{
    uint8_t buf[64];
    size_t len = payload_for(i, buf, sizeof(buf));
    int64_t off = -1;
    assert_int_equal(mlog_append(log, buf, len, on_ack, a, &off), 0);
    assert_int_equal(off, i);
    return off;
}

/* ---- tests: basic ----------------------------------------------------------------- */

static void test_reopen_returns_same_records_and_offsets(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog_recovery_info info;
    struct mlog *log = open_ok(dir, &info);
    assert_int_equal(info.next_offset, 0);
    assert_int_equal(info.snapshot_offset, -1);
    assert_int_equal(mlog_replay(log, check_record, &(struct replay_check){0}), 0);
    append_n_sync(log, 150);
    assert_int_equal(mlog_next_offset(log), 150);
    assert_int_equal(mlog_durable_offset(log), 150);
    mlog_close(log);

    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_NONE);
    assert_int_equal(info.truncated_at, -1);
    assert_int_equal(info.next_offset, 150);
    assert_int_equal(info.replay_records, 150);
    const uint8_t *snap;
    size_t snap_len;
    int64_t snap_off;
    assert_int_equal(mlog_recovered_snapshot(log, &snap, &snap_len, &snap_off), -ENOENT);
    assert_int_equal(replay_all(log, 0, false), 150);
    /* Appends continue after the recovered records. */
    append_n_sync(log, 10);
    assert_int_equal(mlog_replay(log, check_record, &(struct replay_check){0}), -EINVAL);
    mlog_close(log);

    log = open_ok(dir, &info);
    assert_int_equal(replay_all(log, 0, false), 160);
    mlog_close(log);
    testutil_rmtree(dir);
}

static void test_open_locks_directory(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    struct mlog *second = NULL;
    assert_int_equal(mlog_open(dir, NULL, &second, NULL), -EBUSY);
    assert_null(second);
    mlog_close(log);
    log = open_ok(dir, NULL);
    mlog_close(log);
    testutil_rmtree(dir);
}

static void test_append_rejects_oversized_record_and_bad_options(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog_options o;
    mlog_options_defaults(&o);
    o.max_record_bytes = 100;
    o.max_pending_bytes = 200;
    struct mlog *log = NULL;
    assert_int_equal(mlog_open(dir, &o, &log, NULL), 0);
    uint8_t buf[101] = {0};
    assert_int_equal(mlog_append_sync(log, buf, 101, NULL), -EMSGSIZE);
    assert_int_equal(mlog_append_sync(log, buf, 100, NULL), 0);
    /* Asynchronous appends need mlog_attach(). */
    assert_int_equal(mlog_append(log, buf, 1, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(mlog_next_offset(log), 1);
    mlog_close(log);

    o.max_pending_bytes = 50; /* smaller than one record */
    assert_int_equal(mlog_open(dir, &o, &log, NULL), -EINVAL);
    testutil_rmtree(dir);
}

/* ---- tests: group commit ------------------------------------------------------------ */

static void test_group_commit_batches_appends_queued_during_a_flush(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct loop l;
    loop_init(&l);
    struct mlog *log = open_ok(dir, NULL);
    assert_int_equal(mlog_attach(log, l.base, l.pool), 0);
    assert_int_equal(mlog_attach(log, l.base, l.pool), -EALREADY);

    /* The first append starts a flush; the other 299 queue behind it. */
    struct acks a = {0};
    for (int64_t i = 0; i < 300; i++)
        append_async(log, i, &a);
    assert_int_equal(mlog_next_offset(log), 300);
    assert_true(mlog_durable_offset(log) < 300);
    run_until(&l, &a.done, 300);
    assert_int_equal(a.errors, 0);
    assert_int_equal(mlog_durable_offset(log), 300);

    struct mlog_stats st;
    mlog_get_stats(log, &st);
    assert_int_equal(st.records, 300);
    assert_true(st.groups >= 2);
    assert_true(st.groups <= 3);
    assert_true(st.max_group_records >= 299 - 1);
    mlog_close(log);

    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(replay_all(log, 0, false), 300);
    mlog_close(log);
    loop_deinit(&l);
    testutil_rmtree(dir);
}

/* Clients that each send their next change as soon as the previous one is
 * acknowledged: with several of them, every fsync carries several records. */
struct chain {
    struct acks acks;
    struct mlog *log;
    int64_t target;
    int64_t issued;
};

static void on_chain_ack(struct mlog *log, int64_t offset, int status, void *ud)
{
    struct chain *c = ud;
    on_ack(log, offset, status, &c->acks);
    if (c->issued < c->target) {
        uint8_t buf[64];
        size_t len = payload_for(c->issued, buf, sizeof(buf));
        int64_t off;
        assert_int_equal(mlog_append(log, buf, len, on_chain_ack, c, &off), 0);
        assert_int_equal(off, c->issued);
        c->issued++;
    }
}

static void test_group_commit_with_concurrent_clients_uses_fewer_fsyncs(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct loop l;
    loop_init(&l);
    struct mlog *log = open_ok(dir, NULL);
    assert_int_equal(mlog_attach(log, l.base, l.pool), 0);
    struct chain c = {.log = log, .target = 400};
    for (int k = 0; k < 8; k++) {
        uint8_t buf[64];
        size_t len = payload_for(c.issued, buf, sizeof(buf));
        assert_int_equal(mlog_append(log, buf, len, on_chain_ack, &c, NULL), 0);
        c.issued++;
    }
    run_until(&l, &c.acks.done, 400);
    assert_int_equal(c.acks.errors, 0);
    struct mlog_stats st;
    mlog_get_stats(log, &st);
    assert_int_equal(st.records, 400);
    /* 8 clients in flight: groups of about 8, certainly fewer groups than records. */
    assert_true(st.groups < st.records / 2);
    assert_int_equal(mlog_sync(log), 0);
    mlog_close(log);
    log = open_ok(dir, NULL);
    assert_int_equal(replay_all(log, 0, false), 400);
    mlog_close(log);
    loop_deinit(&l);
    testutil_rmtree(dir);
}

static void test_close_cancels_queued_records(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct loop l;
    loop_init(&l);
    struct mlog *log = open_ok(dir, NULL);
    assert_int_equal(mlog_attach(log, l.base, l.pool), 0);
    struct acks a = {0};
    for (int64_t i = 0; i < 20; i++)
        append_async(log, i, &a);
    /* The running group completes; what is still queued is cancelled, in order. */
    mlog_close(log);
    assert_int_equal(a.done, 20);
    assert_int_equal(a.last_status, -ECANCELED);
    assert_true(a.errors >= 19);
    log = open_ok(dir, NULL);
    assert_int_equal(mlog_next_offset(log), 1);
    mlog_close(log);
    loop_deinit(&l);
    testutil_rmtree(dir);
}

/* ---- tests: recovery of damaged logs ---------------------------------------------- */

static void test_recovery_truncates_torn_tail(void **state)
{
    (void)state;
    const int64_t n = 20;
    /* Cut inside the last record's header, right after it, inside the payload,
     * one byte short; and inside the last two records. */
    const int64_t cuts[] = {1, REC_HDR - 1, REC_HDR, REC_HDR + 1, REC_HDR + FIXED_LEN - 1};
    for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]) + 1; c++) {
        char *dir = testutil_mkdtemp("mlog");
        struct mlog *log = open_ok(dir, NULL);
        append_fixed_sync(log, n);
        mlog_close(log);
        char *seg = seg_path(dir, 0);
        assert_int_equal(file_size(seg), fixed_pos(n));
        int64_t last = c < sizeof(cuts) / sizeof(cuts[0]) ? n - 1 : n - 2;
        int64_t cut =
            c < sizeof(cuts) / sizeof(cuts[0]) ? fixed_pos(n - 1) + cuts[c] : fixed_pos(n - 2) + 5;
        truncate_file(seg, cut);

        struct mlog_recovery_info info;
        log = open_ok(dir, &info);
        assert_int_equal(info.damage, MLOG_DAMAGE_TORN);
        assert_int_equal(info.truncated_at, last);
        assert_int_equal(info.dropped_bytes, cut - fixed_pos(last));
        assert_int_equal(info.dropped_valid_records, 0);
        assert_int_equal(info.next_offset, last);
        assert_int_equal(file_size(seg), fixed_pos(last));
        char line[512];
        mlog_recovery_describe(&info, line, sizeof(line));
        assert_non_null(strstr(line, "torn"));
        assert_int_equal(replay_all(log, 0, true), last);
        /* Appends continue at the right offset, and the log is clean again. */
        append_fixed_sync(log, 3);
        mlog_close(log);
        log = open_ok(dir, &info);
        assert_int_equal(info.damage, MLOG_DAMAGE_NONE);
        assert_int_equal(replay_all(log, 0, true), last + 3);
        mlog_close(log);
        free(seg);
        testutil_rmtree(dir);
    }
}

static void test_recovery_drops_last_record_with_flipped_byte(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_fixed_sync(log, 10);
    mlog_close(log);
    char *seg = seg_path(dir, 0);
    flip_byte(seg, fixed_pos(9) + REC_HDR + 3);
    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_BAD_CRC);
    assert_int_equal(info.truncated_at, 9);
    assert_int_equal(info.next_offset, 9);
    assert_int_equal(info.dropped_bytes, REC_HDR + FIXED_LEN);
    assert_int_equal(info.dropped_valid_records, 0);
    assert_int_equal(replay_all(log, 0, true), 9);
    mlog_close(log);
    free(seg);
    testutil_rmtree(dir);
}

static void test_recovery_drops_corrupt_middle_record_and_everything_after(void **state)
{
    (void)state;
    /* A flipped bit in the payload, in the length, and in the offset field. */
    const int64_t where[] = {REC_HDR + 10, 3, 12};
    const enum mlog_damage damage[] = {MLOG_DAMAGE_BAD_CRC, MLOG_DAMAGE_TORN, MLOG_DAMAGE_BAD_CRC};
    for (size_t c = 0; c < 3; c++) {
        char *dir = testutil_mkdtemp("mlog");
        struct mlog *log = open_ok(dir, NULL);
        append_fixed_sync(log, 30);
        mlog_close(log);
        char *seg = seg_path(dir, 0);
        flip_byte(seg, fixed_pos(12) + where[c]);
        struct mlog_recovery_info info;
        log = open_ok(dir, &info);
        /* A length bit flipped upwards reads as a record running past the end. */
        if (c != 1)
            assert_int_equal(info.damage, damage[c]);
        else
            assert_true(info.damage == MLOG_DAMAGE_TORN || info.damage == MLOG_DAMAGE_BAD_CRC);
        assert_int_equal(info.truncated_at, 12);
        assert_int_equal(info.next_offset, 12);
        assert_int_equal(info.dropped_bytes, fixed_pos(30) - fixed_pos(12));
        if (c != 1)
            assert_int_equal(info.dropped_valid_records, 30 - 13);
        assert_int_equal(file_size(seg), fixed_pos(12));
        char line[512];
        mlog_recovery_describe(&info, line, sizeof(line));
        assert_non_null(strstr(line, "cut at offset 12"));
        assert_int_equal(replay_all(log, 0, true), 12);
        append_fixed_sync(log, 1);
        assert_int_equal(mlog_next_offset(log), 13);
        mlog_close(log);
        free(seg);
        testutil_rmtree(dir);
    }
}

static void test_recovery_cuts_offset_out_of_sequence(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_fixed_sync(log, 5);
    mlog_close(log);
    /* A well-formed record (valid CRC) whose offset repeats an earlier one. */
    char *other = testutil_mkdtemp("mlog-other");
    log = open_ok(other, NULL);
    append_fixed_sync(log, 4);
    mlog_close(log);
    char *oseg = seg_path(other, 0);
    uint8_t *data;
    size_t len;
    assert_int_equal(fsutil_read_file(oseg, 1 << 20, &data, &len), 0);
    char *seg = seg_path(dir, 0);
    append_bytes(seg, data + fixed_pos(3), REC_HDR + FIXED_LEN); /* offset 3 again */
    free(data);
    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_NOT_DENSE);
    assert_int_equal(info.next_offset, 5);
    assert_int_equal(info.dropped_valid_records, 1);
    mlog_close(log);
    free(seg);
    free(oseg);
    testutil_rmtree(other);
    testutil_rmtree(dir);
}

static void test_recovery_rejects_length_beyond_cap_without_allocating(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_fixed_sync(log, 5);
    mlog_close(log);
    char *seg = seg_path(dir, 0);

    /* A header claiming 4 GiB - 16 bytes, then a little garbage. */
    uint8_t h[REC_HDR + 8] = {0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5};
    append_bytes(seg, h, sizeof(h));
    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_TOO_LONG);
    assert_int_equal(info.next_offset, 5);
    assert_true(info.read_buffer_peak <= 64 * 1024);
    mlog_close(log);

    /* Exactly at the cap (8 MiB) but the file is short: torn, and still no
     * 8 MiB buffer. */
    uint8_t h2[REC_HDR + 8] = {0x00, 0x80, 0x00, 0x00, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5};
    append_bytes(seg, h2, sizeof(h2));
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_TORN);
    assert_int_equal(info.next_offset, 5);
    assert_true(info.read_buffer_peak <= 64 * 1024);
    mlog_close(log);

    /* A real record above a lowered cap is cut as corrupt. */
    uint8_t big[3000];
    memset(big, 7, sizeof(big));
    log = open_ok(dir, NULL);
    assert_int_equal(mlog_append_sync(log, big, sizeof(big), NULL), 0);
    mlog_close(log);
    struct mlog_options o;
    mlog_options_defaults(&o);
    o.max_record_bytes = 1024;
    o.max_pending_bytes = 4096;
    assert_int_equal(mlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.damage, MLOG_DAMAGE_TOO_LONG);
    assert_int_equal(info.next_offset, 5);
    mlog_close(log);
    free(seg);
    testutil_rmtree(dir);
}

static void test_recovery_removes_torn_new_segment(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_fixed_sync(log, 7);
    mlog_close(log);
    /* A crash while a roll was writing the new segment's header. */
    char *next = seg_path(dir, 7);
    uint8_t junk[10] = {'W', 'M'};
    int fd = open(next, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_TORN);
    assert_int_equal(info.segments_removed, 1);
    assert_int_equal(info.next_offset, 7);
    assert_false(exists(next));
    append_fixed_sync(log, 2);
    mlog_close(log);
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_NONE);
    assert_int_equal(replay_all(log, 0, true), 9);
    mlog_close(log);
    free(next);
    testutil_rmtree(dir);
}

static void test_segments_roll_by_size_and_recover_across_files(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog_options o;
    mlog_options_defaults(&o);
    o.segment_bytes = 1024;
    struct mlog *log = NULL;
    assert_int_equal(mlog_open(dir, &o, &log, NULL), 0);
    append_fixed_sync(log, 100); /* 56 bytes each: a new segment every 18 records */
    struct mlog_stats st;
    mlog_get_stats(log, &st);
    assert_true(st.rolls >= 5);
    mlog_close(log);
    assert_int_equal(count_files(dir, "metadata-"), st.rolls + 1);

    struct mlog_recovery_info info;
    assert_int_equal(mlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.segments_found, st.rolls + 1);
    assert_int_equal(replay_all(log, 0, true), 100);
    mlog_close(log);

    /* A hole between segments: everything from the hole on is dropped. */
    char *third = seg_path(dir, 36);
    assert_true(exists(third));
    assert_int_equal(unlink(third), 0);
    assert_int_equal(mlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.damage, MLOG_DAMAGE_NOT_DENSE);
    assert_int_equal(info.next_offset, 36);
    assert_int_equal(info.dropped_valid_records, 100 - 54);
    assert_int_equal(count_files(dir, "metadata-"), 2);
    assert_int_equal(replay_all(log, 0, true), 36);
    mlog_close(log);
    free(third);
    testutil_rmtree(dir);
}

struct big_check {
    int64_t next;
};

static size_t big_len(int64_t i)
{
    return i == 77 ? 100000 : 1000 + (size_t)(i % 7) * 500;
}

static int check_big(int64_t offset, const uint8_t *data, size_t len, void *ud)
{
    struct big_check *c = ud;
    assert_int_equal(offset, c->next);
    assert_int_equal(len, big_len(offset));
    for (size_t k = 0; k < len; k += 97)
        assert_int_equal(data[k], (uint8_t)(offset + (int64_t)k));
    c->next++;
    return 0;
}

static void test_recovery_streams_large_log_through_bounded_buffer(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    static uint8_t buf[100000];
    for (int64_t i = 0; i < 200; i++) {
        size_t len = big_len(i);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(i + (int64_t)k);
        assert_int_equal(mlog_append_sync(log, buf, len, NULL), 0);
    }
    mlog_close(log);
    char *seg = seg_path(dir, 0);
    int64_t size = file_size(seg);
    assert_true(size > 500000);

    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_NONE);
    assert_int_equal(info.next_offset, 200);
    /* The buffer grew to the largest record, not to the file. */
    assert_true(info.read_buffer_peak >= 100000);
    assert_true(info.read_buffer_peak < 100000 + 64 * 1024);
    struct big_check c = {0};
    assert_int_equal(mlog_replay(log, check_big, &c), 0);
    assert_int_equal(c.next, 200);
    mlog_close(log);
    free(seg);
    testutil_rmtree(dir);
}

/* ---- tests: snapshots ---------------------------------------------------------------- */

static void snapshot_at(struct mlog *log, const char *tag)
{
    char img[64];
    int n = snprintf(img, sizeof(img), "%s@%" PRId64, tag, mlog_next_offset(log));
    assert_int_equal(mlog_write_snapshot_sync(log, mlog_next_offset(log), img, (size_t)n), 0);
}

static void check_snapshot(struct mlog *log, int64_t want_off, const char *tag)
{
    const uint8_t *data;
    size_t len;
    int64_t off;
    assert_int_equal(mlog_recovered_snapshot(log, &data, &len, &off), 0);
    assert_int_equal(off, want_off);
    char img[64];
    int n = snprintf(img, sizeof(img), "%s@%" PRId64, tag, want_off);
    assert_int_equal(len, (size_t)n);
    assert_memory_equal(data, img, len);
}

static void test_recovery_uses_snapshot_and_log_tail(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_n_sync(log, 50);
    snapshot_at(log, "state");
    assert_int_equal(mlog_snapshot_offset(log), 50);
    assert_int_equal(mlog_write_snapshot_sync(log, 50, "x", 1), -EINVAL); /* not newer */
    assert_int_equal(mlog_write_snapshot_sync(log, 51, "x", 1), -EINVAL); /* beyond the log */
    append_n_sync(log, 20);
    mlog_close(log);

    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.snapshot_offset, 50);
    assert_int_equal(info.replay_records, 20);
    assert_int_equal(info.next_offset, 70);
    check_snapshot(log, 50, "state");
    assert_int_equal(replay_all(log, 50, false), 20);
    mlog_release_recovered_snapshot(log);
    const uint8_t *d;
    size_t l;
    int64_t o;
    assert_int_equal(mlog_recovered_snapshot(log, &d, &l, &o), -ENOENT);
    mlog_close(log);
    testutil_rmtree(dir);
}

static void test_corrupt_newest_snapshot_falls_back_to_previous_and_longer_tail(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_n_sync(log, 30);
    snapshot_at(log, "s");
    append_n_sync(log, 30);
    snapshot_at(log, "s");
    append_n_sync(log, 10);
    mlog_close(log);
    /* Retention kept the previous snapshot and the log from it on, and the
     * snapshot rolled the log, so the first segment (records 0..29) is gone. */
    char *seg0 = seg_path(dir, 0), *seg30 = seg_path(dir, 30);
    assert_false(exists(seg0));
    assert_true(exists(seg30));

    char *s60 = snap_path(dir, 60);
    flip_byte(s60, file_size(s60) - 2);
    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.snapshots_found, 2);
    assert_int_equal(info.snapshots_corrupt, 1);
    assert_int_equal(info.newest_corrupt_snapshot, 60);
    assert_int_equal(info.snapshot_offset, 30);
    assert_int_equal(info.replay_records, 40);
    assert_int_equal(info.next_offset, 70);
    check_snapshot(log, 30, "s");
    assert_int_equal(replay_all(log, 30, false), 40);
    char line[512];
    mlog_recovery_describe(&info, line, sizeof(line));
    assert_non_null(strstr(line, "corrupt"));

    /* The next snapshot replaces the corrupt one's role; retention removes it. */
    append_n_sync(log, 5);
    snapshot_at(log, "s");
    assert_false(exists(s60));
    mlog_close(log);
    log = open_ok(dir, &info);
    assert_int_equal(info.snapshots_corrupt, 0);
    assert_int_equal(info.snapshot_offset, 75);
    mlog_close(log);
    free(seg0);
    free(seg30);
    free(s60);
    testutil_rmtree(dir);
}

static void test_retention_keeps_one_fallback_snapshot(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    for (int k = 0; k < 5; k++) {
        append_n_sync(log, 10);
        snapshot_at(log, "r");
    }
    append_n_sync(log, 3);
    struct mlog_stats st;
    mlog_get_stats(log, &st);
    assert_int_equal(st.snapshots, 5);
    mlog_close(log);
    assert_int_equal(count_files(dir, "snapshot-"), 2);
    char *s40 = snap_path(dir, 40), *s50 = snap_path(dir, 50);
    assert_true(exists(s40));
    assert_true(exists(s50));
    /* Segments from the one holding offset 40 on: [40, 50) and [50, ...). */
    assert_int_equal(count_files(dir, "metadata-"), 2);
    free(s40);
    free(s50);
    testutil_rmtree(dir);
}

static void test_crash_between_snapshot_write_and_deletion_recovers(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    char *crashed = testutil_mkdtemp("mlog-crashed");
    struct mlog *log = open_ok(dir, NULL);
    append_n_sync(log, 20);
    snapshot_at(log, "c");
    append_n_sync(log, 20);
    snapshot_at(log, "c");
    append_n_sync(log, 20);
    /* The state of the disk right before the third snapshot... */
    copy_dir(dir, crashed);
    snapshot_at(log, "c");
    mlog_close(log);
    /* ...plus the new snapshot, but none of the deletions that followed it. */
    char *src = snap_path(dir, 60), *dst = snap_path(crashed, 60);
    copy_file(src, dst);
    assert_int_equal(count_files(crashed, "snapshot-"), 3);
    assert_int_equal(count_files(crashed, "metadata-"), 2);

    struct mlog_recovery_info info;
    log = open_ok(crashed, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_NONE);
    assert_int_equal(info.snapshot_offset, 60);
    assert_int_equal(info.next_offset, 60);
    check_snapshot(log, 60, "c");
    assert_int_equal(replay_all(log, 60, false), 0);
    /* The leftovers go with the next snapshot. */
    append_n_sync(log, 5);
    snapshot_at(log, "c");
    mlog_close(log);
    assert_int_equal(count_files(crashed, "snapshot-"), 2);
    log = open_ok(crashed, &info);
    assert_int_equal(info.snapshot_offset, 65);
    mlog_close(log);
    free(src);
    free(dst);
    testutil_rmtree(crashed);
    testutil_rmtree(dir);
}

static void test_snapshot_ahead_of_damaged_log_restarts_log_at_snapshot(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_fixed_sync(log, 10);
    snapshot_at(log, "a");
    mlog_close(log);
    char *seg = seg_path(dir, 0);
    flip_byte(seg, fixed_pos(4) + REC_HDR + 1);
    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_true(info.log_behind_snapshot);
    assert_int_equal(info.snapshot_offset, 10);
    assert_int_equal(info.next_offset, 10);
    assert_int_equal(info.replay_records, 0);
    assert_int_equal(replay_all(log, 10, true), 0);
    append_fixed_sync(log, 2);
    mlog_close(log);
    log = open_ok(dir, &info);
    assert_false(info.log_behind_snapshot);
    assert_int_equal(info.damage, MLOG_DAMAGE_NONE);
    assert_int_equal(replay_all(log, 10, true), 2);
    mlog_close(log);
    free(seg);
    testutil_rmtree(dir);
}

static void test_open_fails_without_a_usable_starting_point(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = open_ok(dir, NULL);
    append_n_sync(log, 10);
    snapshot_at(log, "x");
    append_n_sync(log, 10);
    snapshot_at(log, "x");
    append_n_sync(log, 10);
    mlog_close(log);
    /* The log now starts at 10; with both snapshots corrupt there is no state to
     * start from, and nothing may be deleted. */
    char *s10 = snap_path(dir, 10), *s20 = snap_path(dir, 20);
    flip_byte(s10, 5);
    flip_byte(s20, 33);
    int segs = count_files(dir, "metadata-");
    log = NULL;
    assert_int_equal(mlog_open(dir, NULL, &log, NULL), -EBADMSG);
    assert_null(log);
    assert_int_equal(count_files(dir, "metadata-"), segs);
    assert_true(exists(s10));
    free(s10);
    free(s20);
    testutil_rmtree(dir);

    /* A lone corrupt snapshot is not an empty log either. */
    dir = testutil_mkdtemp("mlog");
    log = open_ok(dir, NULL);
    snapshot_at(log, "y");
    mlog_close(log);
    char *s0 = snap_path(dir, 0), *seg0 = seg_path(dir, 0);
    assert_int_equal(unlink(seg0), 0);
    flip_byte(s0, 33);
    assert_int_equal(mlog_open(dir, NULL, &log, NULL), -EBADMSG);
    free(s0);
    free(seg0);
    testutil_rmtree(dir);
}

static void test_snapshot_due_follows_interval(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog_options o;
    mlog_options_defaults(&o);
    o.snapshot_interval_records = 10;
    struct mlog *log = NULL;
    assert_int_equal(mlog_open(dir, &o, &log, NULL), 0);
    append_n_sync(log, 9);
    assert_false(mlog_snapshot_due(log));
    append_n_sync(log, 1);
    assert_true(mlog_snapshot_due(log));
    snapshot_at(log, "d");
    assert_false(mlog_snapshot_due(log));
    append_n_sync(log, 10);
    assert_true(mlog_snapshot_due(log));
    mlog_close(log);
    testutil_rmtree(dir);
}

static void test_async_snapshot_waits_until_covered_records_are_durable(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct loop l;
    loop_init(&l);
    struct mlog *log = open_ok(dir, NULL);
    assert_int_equal(mlog_attach(log, l.base, l.pool), 0);
    struct acks a = {.records_at_snapshot = -1};
    for (int64_t i = 0; i < 100; i++)
        append_async(log, i, &a);
    assert_int_equal(mlog_write_snapshot(log, 100, "img", 3, on_snapshot, &a), 0);
    assert_int_equal(mlog_write_snapshot(log, 100, "img", 3, on_snapshot, &a), -EBUSY);
    assert_false(mlog_snapshot_due(log));
    for (int64_t i = 100; i < 150; i++)
        append_async(log, i, &a);
    run_until(&l, &a.snapshot_done, 1);
    assert_int_equal(a.snapshot_status, 0);
    assert_true(a.records_at_snapshot >= 100);
    run_until(&l, &a.done, 150);
    assert_int_equal(mlog_sync(log), 0);
    mlog_close(log);

    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.snapshot_offset, 100);
    assert_int_equal(replay_all(log, 100, false), 50);
    mlog_close(log);
    loop_deinit(&l);
    testutil_rmtree(dir);
}

/* ---- tests: crashes and failures ------------------------------------------------------- */

struct death {
    int64_t die_at;
    int pipe_fd;
};

static void on_ack_then_die(struct mlog *log, int64_t offset, int status, void *ud)
{
    struct death *d = ud;
    (void)log;
    if (status != 0)
        _exit(3);
    if (offset == d->die_at) {
        /* Acknowledged: tell the parent, then die without any further call. */
        if (write(d->pipe_fd, &offset, sizeof(offset)) != sizeof(offset))
            _exit(4);
        _exit(0);
    }
}

static void test_acknowledged_record_survives_process_death(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct event_base *base = event_base_new();
        struct wpool *pool;
        struct mlog *log;
        if (!base || wpool_new(base, 1, &pool) < 0 || mlog_open(dir, NULL, &log, NULL) < 0 ||
            mlog_attach(log, base, pool) < 0)
            _exit(2);
        struct death d = {.die_at = 57, .pipe_fd = p[1]};
        for (int64_t i = 0; i < 200; i++) {
            uint8_t buf[64];
            size_t len = payload_for(i, buf, sizeof(buf));
            if (mlog_append(log, buf, len, on_ack_then_die, &d, NULL) < 0)
                _exit(5);
            if (i % 10 == 9)
                event_base_loop(base, EVLOOP_NONBLOCK);
        }
        for (;;)
            event_base_loop(base, EVLOOP_ONCE);
    }
    close(p[1]);
    int64_t acked = -1;
    assert_int_equal(read(p[0], &acked, sizeof(acked)), (ssize_t)sizeof(acked));
    close(p[0]);
    int wstatus;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);
    assert_int_equal(acked, 57);

    struct mlog_recovery_info info;
    struct mlog *log = open_ok(dir, &info);
    assert_true(info.next_offset > 57);
    assert_int_equal(replay_all(log, 0, false), info.next_offset);
    mlog_close(log);
    testutil_rmtree(dir);
}

static void test_write_failure_fails_the_log(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* In a child: the file size limit makes the second group's write fail. */
        struct event_base *base = event_base_new();
        struct wpool *pool;
        struct mlog *log;
        if (!base || wpool_new(base, 1, &pool) < 0 || mlog_open(dir, NULL, &log, NULL) < 0 ||
            mlog_attach(log, base, pool) < 0)
            _exit(2);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 1000, .rlim_max = RLIM_INFINITY};
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            _exit(3);
        struct acks a = {0};
        for (int64_t i = 0; i < 100; i++) {
            uint8_t buf[64];
            size_t len = payload_for(i, buf, sizeof(buf));
            if (mlog_append(log, buf, len, on_ack, &a, NULL) < 0)
                _exit(4);
        }
        while (a.done < 100)
            event_base_loop(base, EVLOOP_ONCE);
        /* The first group (one record) made it; the second failed whole. */
        if (a.errors != 99 || a.last_status != -EFBIG || mlog_error(log) != -EFBIG)
            _exit(5);
        if (mlog_append(log, "x", 1, on_ack, &a, NULL) != -EIO ||
            mlog_append_sync(log, "x", 1, NULL) != -EIO ||
            mlog_write_snapshot(log, 1, "s", 1, NULL, NULL) != -EIO || mlog_snapshot_due(log))
            _exit(6);
        mlog_close(log);
        wpool_free(pool);
        event_base_free(base);
        _exit(0);
    }
    int wstatus;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);

    /* Whatever part of the failed group reached the file is recovered or cut. */
    struct mlog_recovery_info info;
    struct mlog *log = open_ok(dir, &info);
    assert_true(info.next_offset >= 1);
    assert_true(info.next_offset < 100);
    assert_int_equal(replay_all(log, 0, false), info.next_offset);
    mlog_close(log);
    testutil_rmtree(dir);
}

/* ---- replacing the log by a received snapshot --------------------------------- */

#define INSTALL_TMP "snapshot-00000000000000000100.snap.tmp.install"

/* A "leader" log with a snapshot at 100, and its file copied into @dir under
 * the name a receiving voter uses. */
static void received_snapshot(const char *dir)
{
    char *lead = testutil_mkdtemp("mlog-leader");
    struct mlog *log = open_ok(lead, NULL);
    append_n_sync(log, 100);
    snapshot_at(log, "lead");
    mlog_close(log);
    char *src = snap_path(lead, 100);
    char dst[4200];
    snprintf(dst, sizeof(dst), "%s/%s", dir, INSTALL_TMP);
    copy_file(src, dst);
    free(src);
    testutil_rmtree(lead);
}

/* A voter's log that lags: records 0..29, a snapshot at 20. */
static struct mlog *lagging_log(const char *dir)
{
    struct mlog *log = open_ok(dir, NULL);
    append_n_sync(log, 20);
    snapshot_at(log, "old");
    append_n_sync(log, 10);
    return log;
}

static void test_install_snapshot_replaces_the_log(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = lagging_log(dir);
    received_snapshot(dir);
    uint8_t *img = NULL;
    size_t len = 0;
    assert_int_equal(mlog_install_snapshot(log, INSTALL_TMP, 100, &img, &len), 0);
    assert_int_equal(len, strlen("lead@100"));
    assert_memory_equal(img, "lead@100", len);
    free(img);
    assert_int_equal(mlog_next_offset(log), 100);
    assert_int_equal(mlog_durable_offset(log), 100);
    assert_int_equal(mlog_snapshot_offset(log), 100);
    assert_int_equal(count_files(dir, "snapshot-"), 1);
    assert_int_equal(count_files(dir, "metadata-"), 1);
    char *seg = seg_path(dir, 100);
    assert_true(exists(seg));
    free(seg);
    /* The leader's records follow. */
    append_n_sync(log, 5);
    int fd = -1;
    int64_t off = 0;
    uint64_t size = 0;
    assert_int_equal(mlog_open_snapshot(log, &fd, &off, &size), 0);
    assert_int_equal(off, 100);
    assert_int_equal(size, 32 + strlen("lead@100"));
    close(fd);
    mlog_close(log);

    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_int_equal(info.damage, MLOG_DAMAGE_NONE);
    assert_int_equal(info.snapshot_offset, 100);
    assert_int_equal(info.next_offset, 105);
    check_snapshot(log, 100, "lead");
    assert_int_equal(replay_all(log, 100, false), 5);
    mlog_close(log);
    testutil_rmtree(dir);
}

static void test_install_snapshot_refuses_bad_input_and_changes_nothing(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = lagging_log(dir);
    received_snapshot(dir);
    uint8_t *img = NULL;
    size_t len = 0;
    /* The file is the snapshot at 100, not at 90. */
    assert_int_equal(mlog_install_snapshot(log, INSTALL_TMP, 90, &img, &len), -EBADMSG);
    /* Below the log's end, or a name that is no received snapshot. */
    assert_int_equal(mlog_install_snapshot(log, INSTALL_TMP, 10, &img, &len), -EINVAL);
    assert_int_equal(mlog_install_snapshot(log, "metadata-1.log", 100, &img, &len), -EINVAL);
    assert_int_equal(mlog_install_snapshot(log, "../" INSTALL_TMP, 100, &img, &len), -EINVAL);
    /* A flipped byte in the image. */
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s/%s", dir, INSTALL_TMP);
    flip_byte(tmp, 34);
    assert_int_equal(mlog_install_snapshot(log, INSTALL_TMP, 100, &img, &len), -EBADMSG);
    /* A truncated file. */
    flip_byte(tmp, 34);
    truncate_file(tmp, file_size(tmp) - 1);
    assert_int_equal(mlog_install_snapshot(log, INSTALL_TMP, 100, &img, &len), -EBADMSG);
    assert_int_equal(mlog_error(log), 0);
    assert_int_equal(mlog_next_offset(log), 30);
    assert_int_equal(mlog_snapshot_offset(log), 20);
    append_n_sync(log, 1);
    mlog_close(log);
    /* The leftover goes at the next open; the old log is intact. */
    struct mlog_recovery_info info;
    log = open_ok(dir, &info);
    assert_false(exists(tmp));
    assert_int_equal(info.snapshot_offset, 20);
    assert_int_equal(info.next_offset, 31);
    assert_int_equal(replay_all(log, 20, false), 11);
    mlog_close(log);
    testutil_rmtree(dir);
}

/* A crash at each point of the install: before the rename (the received file
 * is a leftover, the old log stands), after the rename (old segments and
 * snapshot still there, or already gone without the new segment): recovery
 * ends in the old or in the new state, never in between. */
static void test_install_snapshot_crash_points_recover(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("mlog");
    struct mlog *log = lagging_log(dir);
    mlog_close(log);
    received_snapshot(dir);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s/%s", dir, INSTALL_TMP);
    char *snap100 = snap_path(dir, 100);

    /* 1. Crashed before the rename. */
    char *c1 = testutil_mkdtemp("mlog-crash1");
    copy_dir(dir, c1);
    struct mlog_recovery_info info;
    log = open_ok(c1, &info);
    assert_int_equal(info.snapshot_offset, 20);
    assert_int_equal(info.next_offset, 30);
    assert_int_equal(count_files(c1, "snapshot-"), 1);
    mlog_close(log);

    /* 2. Renamed; the old segments and the old snapshot still there. */
    char *c2 = testutil_mkdtemp("mlog-crash2");
    copy_dir(dir, c2);
    char a[4200], b[4200];
    snprintf(a, sizeof(a), "%s/%s", c2, INSTALL_TMP);
    char *b2 = snap_path(c2, 100);
    snprintf(b, sizeof(b), "%s", b2);
    assert_int_equal(rename(a, b), 0);
    log = open_ok(c2, &info);
    assert_true(info.log_behind_snapshot);
    assert_int_equal(info.snapshot_offset, 100);
    assert_int_equal(info.next_offset, 100);
    check_snapshot(log, 100, "lead");
    append_n_sync(log, 3);
    mlog_close(log);
    log = open_ok(c2, &info);
    assert_int_equal(info.next_offset, 103);
    assert_int_equal(replay_all(log, 100, false), 3);
    mlog_close(log);

    /* 3. Renamed and every old file removed, the new segment not created yet. */
    char *c3 = testutil_mkdtemp("mlog-crash3");
    char *dst = snap_path(c3, 100);
    copy_file(tmp, dst);
    log = open_ok(c3, &info);
    assert_int_equal(info.snapshot_offset, 100);
    assert_int_equal(info.next_offset, 100);
    append_n_sync(log, 2);
    mlog_close(log);
    log = open_ok(c3, &info);
    assert_int_equal(replay_all(log, 100, false), 2);
    mlog_close(log);

    free(snap100);
    free(b2);
    free(dst);
    testutil_rmtree(c1);
    testutil_rmtree(c2);
    testutil_rmtree(c3);
    testutil_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen_returns_same_records_and_offsets),
        cmocka_unit_test(test_open_locks_directory),
        cmocka_unit_test(test_append_rejects_oversized_record_and_bad_options),
        cmocka_unit_test(test_group_commit_batches_appends_queued_during_a_flush),
        cmocka_unit_test(test_group_commit_with_concurrent_clients_uses_fewer_fsyncs),
        cmocka_unit_test(test_close_cancels_queued_records),
        cmocka_unit_test(test_recovery_truncates_torn_tail),
        cmocka_unit_test(test_recovery_drops_last_record_with_flipped_byte),
        cmocka_unit_test(test_recovery_drops_corrupt_middle_record_and_everything_after),
        cmocka_unit_test(test_recovery_cuts_offset_out_of_sequence),
        cmocka_unit_test(test_recovery_rejects_length_beyond_cap_without_allocating),
        cmocka_unit_test(test_recovery_removes_torn_new_segment),
        cmocka_unit_test(test_segments_roll_by_size_and_recover_across_files),
        cmocka_unit_test(test_recovery_streams_large_log_through_bounded_buffer),
        cmocka_unit_test(test_recovery_uses_snapshot_and_log_tail),
        cmocka_unit_test(test_corrupt_newest_snapshot_falls_back_to_previous_and_longer_tail),
        cmocka_unit_test(test_retention_keeps_one_fallback_snapshot),
        cmocka_unit_test(test_crash_between_snapshot_write_and_deletion_recovers),
        cmocka_unit_test(test_snapshot_ahead_of_damaged_log_restarts_log_at_snapshot),
        cmocka_unit_test(test_open_fails_without_a_usable_starting_point),
        cmocka_unit_test(test_snapshot_due_follows_interval),
        cmocka_unit_test(test_async_snapshot_waits_until_covered_records_are_durable),
        cmocka_unit_test(test_acknowledged_record_survives_process_death),
        cmocka_unit_test(test_write_failure_fails_the_log),
        cmocka_unit_test(test_install_snapshot_replaces_the_log),
        cmocka_unit_test(test_install_snapshot_refuses_bad_input_and_changes_nothing),
        cmocka_unit_test(test_install_snapshot_crash_points_recover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
