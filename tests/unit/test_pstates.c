/* Tests for broker/replica/pstates: the registry kept in step by a follower's
 * appends (no rebuild when it becomes leader), the rebuild after a truncation
 * (batches and epoch bumps cut away are forgotten), and snapshots written at a
 * follower's segment roll. Real plogs in a temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/replica/pstate.h"
#include "broker/replica/pstates.h"
#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/kerr.h"
#include "common/wpool.h"
#include "tests/unit/testutil.h"

#define TS0 INT64_C(1700000000000)
#define PID 4000

struct fixture {
    char *dir;
    struct fdcache *fc;
    struct plog *log;
    struct pstates *pss;
    struct event_base *base;
    struct wpool *pool; /* one worker: jobs run in order */
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->dir = testutil_mkdtemp("pstates");
    assert_int_equal(fdcache_new(64, &fx->fc), 0);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 1024; /* a few batches per segment: rolls */
    assert_int_equal(plog_open(fx->dir, &cfg, fx->fc, 0, -1, TS0, &fx->log, NULL), 0);
    /* Expiry far away: batch timestamps are TS0. */
    fx->base = event_base_new();
    assert_non_null(fx->base);
    assert_int_equal(wpool_new(fx->base, 1, &fx->pool), 0);
    assert_int_equal(pstates_new(fx->base, INT64_C(1) << 60, fx->pool, &fx->pss), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    pstates_free(fx->pss);
    wpool_free(fx->pool);
    event_base_free(fx->base);
    plog_close(fx->log);
    fdcache_free(fx->fc);
    testutil_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* One batch of @count 100-byte records with producer fields set and a valid CRC. */
static void make_batch(buf_writer *w, int64_t pid, int16_t epoch, int32_t seq, int32_t count)
{
    static const char val[100] = {0};
    struct batch_builder b;
    size_t start = w->len;
    assert_int_equal(batch_builder_begin(&b, w, TS0), 0);
    for (int32_t i = 0; i < count; i++)
        assert_int_equal(batch_builder_add(&b, TS0 + i, NULL, -1, val, sizeof(val), NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    uint8_t *p = w->data + start;
    buf_store_be64(p + 43, (uint64_t)pid);
    buf_store_be16(p + 51, (uint16_t)epoch);
    buf_store_be32(p + 53, (uint32_t)seq);
    buf_store_be32(p + 17, crc32c_update(0, p + 21, w->len - start - 21));
}

/* As a follower does: append what the leader sent, then tell pstates. */
static int64_t follow(struct fixture *fx, int64_t pid, int16_t epoch, int32_t seq, int32_t count)
{
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, pid, epoch, seq, count);
    struct plog_append_info info;
    assert_int_equal(plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 3, TS0, &info),
                     0);
    pstates_followed(fx->pss, fx->log, w.data, w.len, &info);
    buf_writer_deinit(&w);
    return info.first_offset;
}

/* The leader's verdict on a batch, at leader epoch 4. */
static int16_t check(struct fixture *fx, int64_t pid, int16_t epoch, int32_t seq, int32_t count,
                     bool *dup, int64_t *first)
{
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, pid, epoch, seq, count);
    int64_t last;
    *dup = false;
    int16_t err = pstates_check(fx->pss, fx->log, 4, w.data, w.len, dup, first, &last);
    buf_writer_deinit(&w);
    return err;
}

static int count_snapshots(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l > strlen(PSTATE_SNAPSHOT_SUFFIX) &&
            strcmp(de->d_name + l - strlen(PSTATE_SNAPSHOT_SUFFIX), PSTATE_SNAPSHOT_SUFFIX) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static int snapshots_above(const char *dir, int64_t offset)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strstr(de->d_name, PSTATE_SNAPSHOT_SUFFIX) && strtoll(de->d_name, NULL, 10) > offset)
            n++;
    closedir(d);
    return n;
}

static void test_pstates_follower_state_needs_no_rebuild_as_leader(void **state)
{
    struct fixture *fx = *state;
    /* Batches without a producer id are not tracked at all. */
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, -1, -1, -1, 1);
    struct plog_append_info info;
    assert_int_equal(plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 3, TS0, &info),
                     0);
    pstates_followed(fx->pss, fx->log, w.data, w.len, &info);
    buf_writer_deinit(&w);
    struct pstates_stats st;
    pstates_get_stats(fx->pss, &st);
    assert_int_equal(st.rebuilds, 0);

    int64_t off[10];
    for (int i = 0; i < 10; i++)
        off[i] = follow(fx, PID, 0, i * 2, 2);
    wpool_drain(fx->pool);
    pstates_get_stats(fx->pss, &st);
    uint64_t rebuilds = st.rebuilds, scanned = st.scanned_batches;
    assert_int_equal(rebuilds, 1);          /* at the first batch with a producer id */
    assert_true(st.snapshots_written >= 1); /* 10 x ~270 bytes over 1 KiB segments */
    assert_true(count_snapshots(fx->dir) >= 1 && count_snapshots(fx->dir) <= 2);

    /* Now leader: each of the last five is a duplicate with its original
     * offset, older ones and gaps are out of order, the next one goes. */
    bool dup;
    int64_t first;
    for (int i = 5; i < 10; i++) {
        assert_int_equal(check(fx, PID, 0, i * 2, 2, &dup, &first), KERR_NONE);
        assert_true(dup);
        assert_int_equal(first, off[i]);
    }
    assert_int_equal(check(fx, PID, 0, 8, 2, &dup, &first), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(check(fx, PID, 0, 22, 2, &dup, &first), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(check(fx, PID, 0, 20, 2, &dup, &first), KERR_NONE);
    assert_false(dup);
    /* ... without a rebuild or a scan of the log. */
    pstates_get_stats(fx->pss, &st);
    assert_int_equal(st.rebuilds, rebuilds);
    assert_int_equal(st.scanned_batches, scanned);
}

static void test_pstates_truncation_forgets_cut_batches_and_epochs(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 8; i++)
        follow(fx, PID, 0, i, 1);
    int64_t cut = follow(fx, PID, 1, 0, 1); /* epoch bump, then cut away */
    follow(fx, PID, 1, 1, 1);
    /* A producer that only exists above the cut, with enough batches that a
     * segment rolls above it: that snapshot must go with the truncation. */
    for (int i = 0; i < 8; i++)
        follow(fx, PID + 1, 0, i, 1);
    wpool_drain(fx->pool);
    wpool_drain(fx->pool);
    assert_true(snapshots_above(fx->dir, cut) >= 1);
    bool dup;
    int64_t first;
    assert_int_equal(check(fx, PID, 0, 8, 1, &dup, &first), KERR_INVALID_PRODUCER_EPOCH);
    assert_int_equal(check(fx, PID + 1, 0, 7, 1, &dup, &first), KERR_NONE);
    assert_true(dup);

    int64_t end;
    assert_int_equal(plog_truncate_to(fx->log, cut, &end), 0);
    assert_int_equal(end, cut);
    pstates_truncated(fx->pss, fx->log);

    /* Epoch 0 is current again and continues at 8; the cut batches are no
     * duplicates; the producer above the cut is unknown (may start anywhere). */
    assert_int_equal(check(fx, PID, 1, 0, 1, &dup, &first), KERR_NONE);
    assert_false(dup);
    assert_int_equal(check(fx, PID, 0, 7, 1, &dup, &first), KERR_NONE);
    assert_true(dup);
    assert_int_equal(first, cut - 1);
    assert_int_equal(check(fx, PID, 0, 8, 1, &dup, &first), KERR_NONE);
    assert_false(dup);
    assert_int_equal(check(fx, PID + 1, 0, 7, 1, &dup, &first), KERR_NONE);
    assert_false(dup);
    /* No snapshot above the new end survives. */
    assert_int_equal(snapshots_above(fx->dir, cut), 0);

    /* Following on from the truncated log keeps the state in step. */
    int64_t o = follow(fx, PID, 0, 8, 1);
    assert_int_equal(o, cut);
    assert_int_equal(check(fx, PID, 0, 8, 1, &dup, &first), KERR_NONE);
    assert_true(dup);
    assert_int_equal(first, cut);
}

/* A worker job that holds the only worker until a byte arrives on a pipe. */
static void block_work(void *arg)
{
    char c;
    while (read(*(int *)arg, &c, 1) < 0)
        ;
}

static void block_worker(struct fixture *fx, int fds[2])
{
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(wpool_submit(fx->pool, block_work, NULL, &fds[0]), 0);
}

static void release_worker(struct fixture *fx, int fds[2])
{
    assert_int_equal(write(fds[1], "x", 1), 1);
    wpool_drain(fx->pool);
    close(fds[0]);
    close(fds[1]);
}

static void test_pstates_snapshot_is_written_off_the_loop(void **state)
{
    struct fixture *fx = *state;
    int fds[2];
    block_worker(fx, fds);
    /* Rolls while the worker is busy: the appends return at once and nothing
     * is on disk yet; one job per log, the newest waiting roll replaces the
     * one before it. */
    int i = 0;
    struct pstates_stats st;
    do {
        follow(fx, PID, 0, i++, 1);
        pstates_get_stats(fx->pss, &st);
    } while (st.snapshots_skipped < 1 && i < 100);
    assert_int_equal(st.snapshots_skipped, 1);
    assert_int_equal(st.snapshots_written, 0);
    assert_int_equal(count_snapshots(fx->dir), 0);
    release_worker(fx, fds);
    wpool_drain(fx->pool); /* the waiting one, submitted by the first's done */
    pstates_get_stats(fx->pss, &st);
    assert_int_equal(st.snapshots_written, 2);
    assert_int_equal(count_snapshots(fx->dir), 2);
}

static void test_pstates_snapshot_of_a_truncated_log_is_dropped(void **state)
{
    struct fixture *fx = *state;
    int64_t cut = -1;
    for (int i = 0; i < 4; i++)
        follow(fx, PID, 0, i, 1);
    wpool_drain(fx->pool);
    int fds[2];
    block_worker(fx, fds);
    /* A roll above the cut queues a snapshot; the truncation comes first. */
    struct pstates_stats st0, st;
    pstates_get_stats(fx->pss, &st0);
    for (int i = 4; i < 100; i++) {
        int64_t o = follow(fx, PID, 0, i, 1);
        if (cut < 0)
            cut = o;
        pstates_get_stats(fx->pss, &st);
        if (st.snapshots_skipped > st0.snapshots_skipped)
            break;
    }
    int64_t end;
    assert_int_equal(plog_truncate_to(fx->log, cut, &end), 0);
    pstates_truncated(fx->pss, fx->log);
    release_worker(fx, fds);
    wpool_drain(fx->pool);
    assert_int_equal(snapshots_above(fx->dir, cut), 0);
}

/* A forgotten log's state is gone (the next check rebuilds it from the disk),
 * and its snapshot jobs still in flight finish without touching any entry. */
static void test_pstates_forget_drops_the_state_and_orphans_jobs(void **state)
{
    struct fixture *fx = *state;
    int64_t off[10];
    for (int i = 0; i < 10; i++)
        off[i] = follow(fx, PID, 0, i * 2, 2); /* rolls: snapshot jobs queued */
    struct pstates_stats st;
    pstates_get_stats(fx->pss, &st);
    uint64_t rebuilds = st.rebuilds;
    pstates_forget(fx->pss, fx->log);
    pstates_forget(fx->pss, fx->log); /* unknown now: nothing */
    wpool_drain(fx->pool);            /* the jobs' done callbacks find no entry */
    bool dup;
    int64_t first;
    assert_int_equal(check(fx, PID, 0, 18, 2, &dup, &first), KERR_NONE);
    assert_true(dup);
    assert_int_equal(first, off[9]);
    pstates_get_stats(fx->pss, &st);
    assert_int_equal(st.rebuilds, rebuilds + 1);
}

/* A registry that finds a long log (a restart) loads it in slices on the event
 * loop: meanwhile the producer's batches are refused with NOT_ENOUGH_REPLICAS
 * and nothing is appended; batches copied in meanwhile are scanned too; once
 * loaded, retries are duplicates with their original offsets. */
static void test_pstates_big_rebuild_is_loaded_in_slices(void **state)
{
    struct fixture *fx = *state;
    int64_t off[40];
    for (int i = 0; i < 30; i++)
        off[i] = follow(fx, PID, 0, i, 1);
    wpool_drain(fx->pool);
    /* A new registry: the broker restarted. Scan budgets of about one batch. */
    pstates_free(fx->pss);
    assert_int_equal(pstates_new(fx->base, INT64_C(1) << 60, fx->pool, &fx->pss), 0);
    pstates_set_scan_budget(fx->pss, 200, 300);
    /* Drop the snapshots so the whole log is read. */
    assert_true(pstate_snapshot_delete_above(fx->dir, -1) >= 0);
    bool dup;
    int64_t first;
    int64_t end_before = plog_log_end_offset(fx->log);
    assert_int_equal(check(fx, PID, 0, 30, 1, &dup, &first), KERR_NOT_ENOUGH_REPLICAS);
    assert_true(pstates_loading(fx->pss, fx->log));
    assert_int_equal(plog_log_end_offset(fx->log), end_before);
    /* More batches arrive as a follower while it loads: the loader reads them. */
    for (int i = 30; i < 40; i++)
        off[i] = follow(fx, PID, 0, i, 1);
    int turns = 0;
    while (pstates_loading(fx->pss, fx->log)) {
        assert_int_equal(check(fx, PID, 0, 40, 1, &dup, &first), KERR_NOT_ENOUGH_REPLICAS);
        assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
        assert_true(++turns < 1000);
    }
    assert_true(turns > 5); /* it did take several turns */
    struct pstates_stats st;
    pstates_get_stats(fx->pss, &st);
    assert_int_equal(st.deferred_loads, 1);
    assert_true(st.refused_loading >= 2);
    for (int i = 35; i < 40; i++) {
        assert_int_equal(check(fx, PID, 0, i, 1, &dup, &first), KERR_NONE);
        assert_true(dup);
        assert_int_equal(first, off[i]);
    }
    assert_int_equal(check(fx, PID, 0, 41, 1, &dup, &first), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(check(fx, PID, 0, 40, 1, &dup, &first), KERR_NONE);
    assert_false(dup);
}

/* A truncation while loading starts the load over from what survives. */
static void test_pstates_truncation_while_loading_starts_over(void **state)
{
    struct fixture *fx = *state;
    int64_t off[20];
    for (int i = 0; i < 20; i++)
        off[i] = follow(fx, PID, 0, i, 1);
    wpool_drain(fx->pool);
    pstates_free(fx->pss);
    assert_int_equal(pstates_new(fx->base, INT64_C(1) << 60, fx->pool, &fx->pss), 0);
    pstates_set_scan_budget(fx->pss, 200, 300);
    assert_true(pstate_snapshot_delete_above(fx->dir, -1) >= 0);
    bool dup;
    int64_t first;
    assert_int_equal(check(fx, PID, 0, 20, 1, &dup, &first), KERR_NOT_ENOUGH_REPLICAS);
    int64_t new_end;
    assert_int_equal(plog_truncate_to(fx->log, off[15], &new_end), 0);
    assert_int_equal(new_end, off[15]);
    pstates_truncated(fx->pss, fx->log);
    for (int turns = 0; pstates_loading(fx->pss, fx->log); turns++) {
        assert_int_equal(event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
        assert_true(turns < 1000);
    }
    /* Batches 15.. are gone: 15 is the next sequence, 14 a duplicate. */
    assert_int_equal(check(fx, PID, 0, 14, 1, &dup, &first), KERR_NONE);
    assert_true(dup);
    assert_int_equal(first, off[14]);
    assert_int_equal(check(fx, PID, 0, 15, 1, &dup, &first), KERR_NONE);
    assert_false(dup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pstates_follower_state_needs_no_rebuild_as_leader,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstates_truncation_forgets_cut_batches_and_epochs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstates_snapshot_is_written_off_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pstates_big_rebuild_is_loaded_in_slices, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pstates_truncation_while_loading_starts_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pstates_forget_drops_the_state_and_orphans_jobs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pstates_snapshot_of_a_truncated_log_is_dropped, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
