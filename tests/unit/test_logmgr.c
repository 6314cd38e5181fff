/* Tests for broker/storage/logmgr: start-up recovery from checkpoints, placement,
 * deletion, and the flush, checkpoint and retention policies driven through a
 * real event loop and worker pool. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/storage/checkpoint.h"
#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/metaprops.h"
#include "common/wpool.h"
#include "testutil.h"

/* ---- fixture ---------------------------------------------------------------------- */

#define T0 1700000000000LL /* a fixed wall clock: 2023-11-14 */

struct fx {
    char *root;
    char *dirs[2];
    struct event_base *base;
    struct wpool *pool;
    struct logmgr_options opts;
    struct logmgr *mgr;
    struct logmgr_open_stats stats;
    int64_t now;
    int events[LOGMGR_EVENT_CLEAN_FAILED + 1];
    char last_event_path[512];
};

static int64_t fx_now(void *arg)
{
    return ((struct fx *)arg)->now;
}

static void fx_on_event(void *arg, const struct logmgr_event *ev)
{
    struct fx *f = arg;
    f->events[ev->type]++;
    if (ev->path)
        snprintf(f->last_event_path, sizeof(f->last_event_path), "%s", ev->path);
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->root = testutil_mkdtemp("logmgr");
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(f->root) + 16;
        f->dirs[i] = malloc(n);
        snprintf(f->dirs[i], n, "%s/d%d", f->root, i);
    }
    f->base = event_base_new();
    assert_non_null(f->base);
    assert_int_equal(wpool_new(f->base, 2, &f->pool), 0);
    logmgr_options_defaults(&f->opts);
    f->opts.dirs = (const char *const *)f->dirs;
    f->opts.ndirs = 2;
    f->opts.max_open_files = 64;
    /* Timers off unless a test turns them on; the tests drive the tasks. */
    f->opts.recovery_checkpoint_interval_ms = 0;
    f->opts.start_offset_checkpoint_interval_ms = 0;
    f->opts.retention_check_interval_ms = 0;
    f->opts.flush_scheduler_interval_ms = 0;
    f->opts.hw_checkpoint_interval_ms = 0;
    f->opts.now_ms = fx_now;
    f->opts.now_arg = f;
    f->opts.on_event = fx_on_event;
    f->opts.event_arg = f;
    f->now = T0;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    logmgr_free(f->mgr);
    wpool_free(f->pool);
    event_base_free(f->base);
    free(f->dirs[0]);
    free(f->dirs[1]);
    testutil_rmtree(f->root);
    free(f);
    return 0;
}

static void fx_open(struct fx *f)
{
    memset(f->events, 0, sizeof(f->events));
    int r = logmgr_new(f->base, f->pool, &f->opts, &f->mgr, &f->stats);
    if (r < 0)
        fail_msg("logmgr_new: %s (%s)", strerror(-r), f->last_event_path);
}

/* A crash: no flush, no checkpoint. */
static void fx_crash(struct fx *f)
{
    logmgr_free(f->mgr);
    f->mgr = NULL;
}

static void fx_shutdown(struct fx *f)
{
    assert_int_equal(logmgr_shutdown(f->mgr), 0);
    logmgr_free(f->mgr);
    f->mgr = NULL;
}

static struct logmgr_counters fx_counters(struct fx *f)
{
    struct logmgr_counters c;
    logmgr_get_counters(f->mgr, &c);
    return c;
}

/* Run the loop until @done says so, failing after 5 s. */
static void fx_pump_until(struct fx *f, bool (*done)(struct fx *, void *), void *arg)
{
    int64_t deadline = clock_mono_ms() + 5000;
    while (!done(f, arg)) {
        if (clock_mono_ms() > deadline)
            fail_msg("condition not reached within 5 s");
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* One batch of @records records, each with a value naming (@tag, index). The
 * returned buffer is malloc'd; after an append it holds the bytes as stored. */
static uint8_t *make_batch(int64_t ts, int records, int tag, size_t value_len, size_t *ret_len)
{
    buf_writer w;
    buf_writer_init(&w);
    struct batch_builder b;
    assert_int_equal(batch_builder_begin(&b, &w, ts), 0);
    char *value = malloc(value_len + 1);
    assert_non_null(value);
    for (int i = 0; i < records; i++) {
        memset(value, 'a' + (tag + i) % 26, value_len);
        int n = snprintf(value, value_len + 1, "%d/%d", tag, i);
        if ((size_t)n < value_len)
            value[n] = '.';
        assert_int_equal(batch_builder_add(&b, ts, NULL, -1, value, (int32_t)value_len, NULL, 0),
                         0);
    }
    free(value);
    assert_int_equal(batch_builder_finish(&b), 0);
    uint8_t *data;
    size_t len;
    assert_int_equal(buf_writer_steal(&w, &data, &len), 0);
    *ret_len = len;
    return data;
}

static void append(struct fx *f, struct plog *log, int records, int tag,
                   struct plog_append_info *ret_info, uint8_t **ret_copy, size_t *ret_len)
{
    size_t len;
    uint8_t *data = make_batch(f->now, records, tag, 100, &len);
    struct plog_append_info info;
    assert_int_equal(logmgr_append(f->mgr, log, data, len, PLOG_APPEND_ASSIGN_OFFSETS, -1, &info),
                     0);
    if (ret_info)
        *ret_info = info;
    if (ret_copy) {
        *ret_copy = data;
        *ret_len = len;
    } else {
        free(data);
    }
}

/* The stored bytes of the batch holding @offset equal @want. */
static void expect_batch_at(struct plog *log, int64_t offset, const uint8_t *want, size_t len)
{
    struct plog_read_result rr;
    assert_int_equal(plog_read(log, offset, plog_log_end_offset(log), (int32_t)len, true, &rr), 0);
    assert_non_null(rr.file);
    assert_true(rr.length >= (int64_t)len);
    uint8_t *got = malloc(len);
    assert_int_equal(fsutil_pread_all(seg_file_fd(rr.file), got, len, rr.position), 0);
    assert_memory_equal(got, want, len);
    free(got);
    seg_file_unref(rr.file);
}

static bool path_exists(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Entries of @dir whose name contains @needle. */
static int count_entries(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strstr(de->d_name, needle))
            n++;
    }
    closedir(d);
    return n;
}

static struct plog *create(struct fx *f, const char *topic, int32_t partition,
                           const struct plog_config *cfg)
{
    struct plog *log = NULL;
    int r = logmgr_create(f->mgr, topic, partition, NULL, cfg, &log);
    if (r < 0)
        fail_msg("create %s-%d: %s", topic, partition, strerror(-r));
    assert_non_null(log);
    return log;
}

/* ---- tests ------------------------------------------------------------------------ */

static void count_visit(void *arg, const char *topic, int32_t partition, struct plog *log)
{
    assert_non_null(topic);
    assert_true(partition >= 0);
    assert_non_null(log);
    (*(int *)arg)++;
}

/* Whether @dir's recovery checkpoint lists @topic/@partition. */
static bool checkpoint_lists(const char *dir, const char *topic, int32_t partition)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, CHECKPOINT_RECOVERY_POINT_FILE);
    struct checkpoint_entry *e;
    size_t n;
    assert_int_equal(checkpoint_read(path, &e, &n), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || (strcmp(e[i].topic, topic) == 0 && e[i].partition == partition);
    checkpoint_entries_free(e, n);
    return found;
}

static void test_create_balances_logs_across_dirs(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    assert_int_equal(f->stats.logs, 0);
    assert_int_equal(f->stats.dirs, 2);
    assert_int_equal(f->stats.checkpoints_missing, 6);

    for (int i = 0; i < 6; i++)
        create(f, "orders", i, NULL);
    assert_int_equal(logmgr_count(f->mgr), 6);
    assert_int_equal(logmgr_dir_log_count(f->mgr, 0), 3);
    assert_int_equal(logmgr_dir_log_count(f->mgr, 1), 3);
    /* The next log goes to a dir holding the fewest, and its directory is there. */
    struct plog *log = create(f, "payments", 0, NULL);
    const char *dir = logmgr_log_dir(f->mgr, "payments", 0);
    assert_non_null(dir);
    assert_true(path_exists(dir, "payments-0"));
    assert_ptr_equal(logmgr_get(f->mgr, "payments", 0), log);
    assert_null(logmgr_get(f->mgr, "payments", 1));
    assert_null(logmgr_get(f->mgr, "payment", 0));
    /* Placement keeps the dirs within one log of each other. */
    size_t a = logmgr_dir_log_count(f->mgr, 0), b = logmgr_dir_log_count(f->mgr, 1);
    assert_true(a + b == 7 && (a > b ? a - b : b - a) == 1);

    struct plog *dup;
    assert_int_equal(logmgr_create(f->mgr, "orders", 3, NULL, NULL, &dup), -EEXIST);
    assert_int_equal(logmgr_create(f->mgr, "bad topic", 0, NULL, NULL, &dup), -EINVAL);
    assert_int_equal(logmgr_create(f->mgr, "..", 0, NULL, NULL, &dup), -EINVAL);
    assert_int_equal(logmgr_create(f->mgr, "ok", -1, NULL, NULL, &dup), -EINVAL);
    assert_int_equal(fx_counters(f).logs_created, 7);

    int visits = 0;
    logmgr_foreach(f->mgr, count_visit, &visits);
    assert_int_equal(visits, 7);
    assert_int_equal(logmgr_after_append(f->mgr, NULL, NULL), -ENOENT);
    assert_int_equal(logmgr_flush_async(f->mgr, NULL), -ENOENT);
}

struct batch_result {
    int calls;
    int results[8];
    size_t n;
};

static void batch_cb(void *ud, struct logmgr_new_log *logs, size_t n)
{
    struct batch_result *br = ud;
    br->calls++;
    br->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        br->results[i] = logs[i].result;
}

static bool batch_called(struct fx *f, void *arg)
{
    (void)f;
    return ((struct batch_result *)arg)->calls > 0;
}

/* The worker makes the files, the loop opens them: the logs are in the table
 * (spread over both dirs, topic id recorded) when the callback runs; an
 * existing log is -EEXIST and an illegal name -EINVAL, each for itself. */
static void test_create_batch_makes_logs_on_the_pool(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    create(f, "orders", 0, NULL);
    struct logmgr_new_log logs[6];
    memset(logs, 0, sizeof(logs));
    char *names[6] = {"orders", "orders", "orders", "orders", "bad topic", "orders"};
    int32_t parts[6] = {1, 2, 3, 4, 0, 0};
    for (int i = 0; i < 6; i++) {
        logs[i].topic = names[i];
        logs[i].partition = parts[i];
        logs[i].has_topic_id = true;
        memset(logs[i].topic_id, 0x40 + i, sizeof(logs[i].topic_id));
        logs[i].cfg = *logmgr_default_config(f->mgr);
    }
    struct batch_result br = {0};
    assert_int_equal(logmgr_create_batch(f->mgr, logs, 6, batch_cb, &br), 0);
    fx_pump_until(f, batch_called, &br);
    assert_int_equal(br.calls, 1);
    assert_int_equal(br.n, 6);
    for (int i = 0; i < 4; i++)
        assert_int_equal(br.results[i], 0);
    assert_int_equal(br.results[4], -EINVAL);
    assert_int_equal(br.results[5], -EEXIST);
    assert_int_equal(logmgr_count(f->mgr), 5);
    assert_int_equal(logmgr_dir_log_count(f->mgr, 0) + logmgr_dir_log_count(f->mgr, 1), 5);
    assert_true(logmgr_dir_log_count(f->mgr, 0) >= 2 && logmgr_dir_log_count(f->mgr, 1) >= 2);
    for (int i = 0; i < 4; i++) {
        struct plog *log = logmgr_get(f->mgr, "orders", parts[i]);
        assert_non_null(log);
        assert_int_equal(plog_log_end_offset(log), 0);
        uint8_t id[16];
        assert_int_equal(logmgr_topic_id(f->mgr, "orders", parts[i], id), 0);
        assert_int_equal(id[0], 0x40 + i);
    }
    /* The first log of a batch takes appends and survives a clean restart. */
    append(f, logmgr_get(f->mgr, "orders", 1), 3, 1, NULL, NULL, NULL);
    fx_shutdown(f);
    fx_open(f);
    assert_int_equal(logmgr_count(f->mgr), 5);
    assert_int_equal(plog_log_end_offset(logmgr_get(f->mgr, "orders", 1)), 3);
}

static void test_clean_shutdown_reopens_without_recovery_scan(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog *a = create(f, "clicks", 0, NULL);
    struct plog *b = create(f, "clicks", 1, NULL);
    uint8_t *first, *last;
    size_t flen, llen;
    append(f, a, 3, 0, NULL, &first, &flen);
    for (int i = 1; i < 5; i++)
        append(f, a, 3, i, NULL, NULL, NULL);
    append(f, a, 3, 5, NULL, &last, &llen); /* offsets 15..17 */
    append(f, b, 1, 9, NULL, NULL, NULL);
    fx_shutdown(f);
    for (int i = 0; i < 2; i++) {
        assert_true(path_exists(f->dirs[i], CHECKPOINT_RECOVERY_POINT_FILE));
        assert_true(path_exists(f->dirs[i], CHECKPOINT_LOG_START_OFFSET_FILE));
    }

    fx_open(f);
    assert_int_equal(f->stats.logs, 2);
    assert_int_equal(f->stats.segments_scanned, 0);
    assert_int_equal(f->stats.checkpoints_missing, 0);
    assert_int_equal(f->stats.checkpoints_corrupt, 0);
    assert_int_equal(f->stats.logs_truncated, 0);
    assert_int_equal(f->events[LOGMGR_EVENT_LOG_OPENED], 2);
    a = logmgr_get(f->mgr, "clicks", 0);
    b = logmgr_get(f->mgr, "clicks", 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(plog_log_end_offset(a), 18);
    assert_int_equal(plog_recovery_point(a), 18);
    assert_int_equal(plog_log_end_offset(b), 1);
    struct plog_recovery_info ri;
    assert_int_equal(logmgr_recovery_info(f->mgr, "clicks", 0, &ri), 0);
    assert_int_equal(ri.segments_scanned, 0);
    assert_true(ri.segments >= 1);
    assert_int_equal(logmgr_recovery_info(f->mgr, "clicks", 7, &ri), -ENOENT);
    expect_batch_at(a, 0, first, flen);
    expect_batch_at(a, 16, last, llen);
    free(first);
    free(last);

    /* After shutdown the manager hands out nothing. */
    assert_int_equal(logmgr_shutdown(f->mgr), 0);
    assert_null(logmgr_get(f->mgr, "clicks", 0));
    struct plog *x;
    assert_int_equal(logmgr_create(f->mgr, "late", 0, NULL, NULL, &x), -ESHUTDOWN);
}

static void test_crash_reopen_recovers_data_and_cuts_torn_tail(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog *a = create(f, "crashy", 0, NULL);
    uint8_t *last;
    size_t llen;
    for (int i = 0; i < 3; i++)
        append(f, a, 2, i, NULL, NULL, NULL);
    append(f, a, 2, 3, NULL, &last, &llen); /* offsets 6..7 */
    char logdir[1024];
    snprintf(logdir, sizeof(logdir), "%s", plog_dir(a));
    fx_crash(f);

    /* A torn write past the last whole batch. */
    char seg[1100];
    snprintf(seg, sizeof(seg), "%s/00000000000000000000.log", logdir);
    int fd = open(seg, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    static const uint8_t junk[30] = {0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0x10, 0};
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);

    fx_open(f);
    /* No checkpoint was ever written: everything is re-validated. */
    assert_int_equal(f->stats.checkpoints_missing, 6);
    assert_true(f->stats.segments_scanned >= 1);
    assert_int_equal(f->stats.logs_truncated, 1);
    assert_int_equal(f->stats.truncated_bytes, (int64_t)sizeof(junk));
    a = logmgr_get(f->mgr, "crashy", 0);
    assert_non_null(a);
    assert_int_equal(plog_log_end_offset(a), 8);
    expect_batch_at(a, 7, last, llen);
    free(last);

    /* Appends continue at the recovered end. */
    struct plog_append_info info;
    append(f, a, 1, 4, &info, NULL, NULL);
    assert_int_equal(info.first_offset, 8);
    fx_crash(f);
    fx_open(f);
    assert_int_equal(plog_log_end_offset(logmgr_get(f->mgr, "crashy", 0)), 9);
}

static void test_delete_removes_dir_and_log_stays_gone(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog *a = create(f, "doomed", 0, NULL);
    create(f, "keep", 0, NULL);
    for (int i = 0; i < 3; i++)
        append(f, a, 2, i, NULL, NULL, NULL);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", logmgr_log_dir(f->mgr, "doomed", 0));

    logmgr_run_recovery_checkpoint(f->mgr);
    wpool_drain(f->pool);
    assert_true(checkpoint_lists(dir, "doomed", 0));

    assert_int_equal(logmgr_delete(f->mgr, "doomed", 0), 0);
    assert_null(logmgr_get(f->mgr, "doomed", 0));
    /* The name is free at once; the data goes in the background. */
    assert_false(path_exists(dir, "doomed-0"));
    assert_int_equal(logmgr_delete(f->mgr, "doomed", 0), -ENOENT);
    wpool_drain(f->pool);
    assert_int_equal(count_entries(dir, "doomed"), 0);
    assert_int_equal(fx_counters(f).logs_deleted, 1);
    /* The dir's checkpoint no longer vouches for the deleted log, so a new log of
     * the same name cannot inherit its recovery point. */
    assert_false(checkpoint_lists(dir, "doomed", 0));

    /* A new log of the same name starts empty. */
    struct plog *again = create(f, "doomed", 0, NULL);
    assert_int_equal(plog_log_end_offset(again), 0);
    assert_int_equal(logmgr_delete(f->mgr, "doomed", 0), 0);
    wpool_drain(f->pool);
    assert_int_equal(fx_counters(f).logs_deleted, 2);
    assert_int_equal(fx_counters(f).remove_errors, 0);

    fx_shutdown(f);
    fx_open(f);
    assert_int_equal(logmgr_count(f->mgr), 1);
    assert_null(logmgr_get(f->mgr, "doomed", 0));
    assert_non_null(logmgr_get(f->mgr, "keep", 0));
    assert_int_equal(f->stats.stale_delete_dirs, 0);
}

static void test_delete_with_flush_in_flight_is_safe(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.flush_interval_messages = 1;
    struct plog *a = create(f, "racy", 0, &cfg);
    append(f, a, 1, 0, NULL, NULL, NULL);
    assert_int_equal(fx_counters(f).flushes_started, 1);
    /* The flush's completion has not run yet: the log goes away under it. */
    assert_int_equal(logmgr_delete(f->mgr, "racy", 0), 0);
    wpool_drain(f->pool);
    struct logmgr_counters c = fx_counters(f);
    assert_int_equal(c.flushes_done + c.flush_errors, 1);
    assert_int_equal(c.logs_deleted, 1);
    assert_int_equal(f->events[LOGMGR_EVENT_FLUSH_FAILED], 0);
}

static void test_flush_runs_after_flush_interval_messages(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.flush_interval_messages = 10;
    struct plog *a = create(f, "flushy", 0, &cfg);
    for (int i = 0; i < 9; i++)
        append(f, a, 1, i, NULL, NULL, NULL);
    wpool_drain(f->pool);
    assert_int_equal(fx_counters(f).flushes_started, 0);
    assert_int_equal(plog_recovery_point(a), 0);

    append(f, a, 1, 9, NULL, NULL, NULL);
    assert_int_equal(fx_counters(f).flushes_started, 1);
    wpool_drain(f->pool);
    assert_int_equal(fx_counters(f).flushes_done, 1);
    assert_int_equal(plog_recovery_point(a), 10);

    /* Batches count their records. */
    append(f, a, 4, 10, NULL, NULL, NULL);
    assert_int_equal(fx_counters(f).flushes_started, 1);
    append(f, a, 6, 11, NULL, NULL, NULL);
    assert_int_equal(fx_counters(f).flushes_started, 2);
    wpool_drain(f->pool);
    assert_int_equal(plog_recovery_point(a), 20);
    assert_int_equal(fx_counters(f).flush_errors, 0);
}

static void test_segment_roll_triggers_flush(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 1024;
    struct plog *a = create(f, "rolly", 0, &cfg);
    struct plog_append_info info = {0};
    int n = 0;
    while (!info.rolled) {
        assert_true(n < 50);
        append(f, a, 1, n++, &info, NULL, NULL);
    }
    assert_true(plog_segment_count(a) >= 2);
    assert_int_equal(fx_counters(f).flushes_started, 1);
    wpool_drain(f->pool);
    /* Everything appended up to the roll is durable now. */
    assert_true(plog_recovery_point(a) >= info.first_offset);
}

static bool flushed_once(struct fx *f, void *arg)
{
    (void)arg;
    return fx_counters(f).flushes_done >= 1;
}

static void test_flush_scheduler_flushes_by_age(void **state)
{
    struct fx *f = *state;
    f->opts.flush_scheduler_interval_ms = 5;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.flush_interval_ms = 1000;
    struct plog *a = create(f, "aged", 0, &cfg);
    append(f, a, 2, 0, NULL, NULL, NULL);
    assert_int_equal(fx_counters(f).flushes_started, 0);
    f->now += 2000;
    fx_pump_until(f, flushed_once, NULL);
    assert_int_equal(plog_recovery_point(a), 2);
}

struct cp_expect {
    const char *topic;
    int32_t partition;
    int64_t offset;
};

/* True when every dir's checkpoint of @file lists exactly its logs with the
 * offsets in @arg (terminated by a NULL topic). */
static bool checkpoints_match(struct fx *f, const char *file, const struct cp_expect *want)
{
    size_t total = 0;
    for (int d = 0; d < 2; d++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", f->dirs[d], file);
        struct checkpoint_entry *e;
        size_t n;
        if (checkpoint_read(path, &e, &n) < 0)
            return false;
        bool ok = n == logmgr_dir_log_count(f->mgr, (size_t)d);
        for (size_t i = 0; ok && i < n; i++) {
            const char *dir = logmgr_log_dir(f->mgr, e[i].topic, e[i].partition);
            ok = dir && strcmp(dir, f->dirs[d]) == 0;
            const struct cp_expect *w = want;
            while (ok && w->topic &&
                   !(strcmp(w->topic, e[i].topic) == 0 && w->partition == e[i].partition))
                w++;
            ok = ok && w->topic && w->offset == e[i].offset;
        }
        total += n;
        checkpoint_entries_free(e, n);
        if (!ok)
            return false;
    }
    return total == logmgr_count(f->mgr);
}

static const struct cp_expect want_rp[] = {
    {"t", 0, 1}, {"t", 1, 2}, {"t", 2, 3}, {"t", 3, 4}, {NULL, 0, 0},
};
static const struct cp_expect want_so[] = {
    {"t", 0, 0}, {"t", 1, 0}, {"t", 2, 0}, {"t", 3, 0}, {NULL, 0, 0},
};

static bool recovery_checkpoints_ok(struct fx *f, void *arg)
{
    (void)arg;
    return checkpoints_match(f, CHECKPOINT_RECOVERY_POINT_FILE, want_rp);
}

static bool start_checkpoints_ok(struct fx *f, void *arg)
{
    (void)arg;
    return checkpoints_match(f, CHECKPOINT_LOG_START_OFFSET_FILE, want_so);
}

static void test_checkpoint_timers_write_recovery_points(void **state)
{
    struct fx *f = *state;
    f->opts.recovery_checkpoint_interval_ms = 10;
    f->opts.start_offset_checkpoint_interval_ms = 10;
    fx_open(f);
    for (int p = 0; p < 4; p++) {
        struct plog *log = create(f, "t", p, NULL);
        append(f, log, p + 1, p, NULL, NULL, NULL);
        assert_int_equal(logmgr_flush_async(f->mgr, log), 0);
    }
    wpool_drain(f->pool);
    assert_int_equal(fx_counters(f).flushes_done, 4);
    fx_pump_until(f, recovery_checkpoints_ok, NULL);
    fx_pump_until(f, start_checkpoints_ok, NULL);
    /* The files are complete when the worker is done; counting happens on the loop. */
    wpool_drain(f->pool);
    struct logmgr_counters c = fx_counters(f);
    assert_true(c.recovery_checkpoints_written >= 2);
    assert_true(c.start_offset_checkpoints_written >= 2);
    assert_int_equal(c.checkpoint_errors, 0);
    /* Each file was replaced atomically: no temporary left beside it (shut down
     * first so that no write is in flight). */
    assert_int_equal(logmgr_shutdown(f->mgr), 0);
    for (int d = 0; d < 2; d++)
        assert_int_equal(count_entries(f->dirs[d], "checkpoint"), 3);
}

static void test_start_offset_survives_restart(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog *a = create(f, "trimmed", 0, NULL);
    for (int i = 0; i < 5; i++)
        append(f, a, 2, i, NULL, NULL, NULL);
    plog_set_high_watermark(a, 10);
    assert_int_equal(plog_raise_start_offset(a, 5), 0);
    fx_shutdown(f);
    fx_open(f);
    a = logmgr_get(f->mgr, "trimmed", 0);
    assert_non_null(a);
    assert_int_equal(plog_log_start_offset(a), 5);
    assert_int_equal(plog_log_end_offset(a), 10);
}

static bool segments_deleted(struct fx *f, void *arg)
{
    return fx_counters(f).segments_deleted >= *(uint64_t *)arg;
}

static void test_retention_timer_deletes_old_segments(void **state)
{
    struct fx *f = *state;
    f->opts.retention_check_interval_ms = 5;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 600;
    cfg.retention_ms = 60000;
    struct plog *a = create(f, "old", 0, &cfg);
    struct plog *young = create(f, "young", 0, &cfg);
    for (int i = 0; i < 12; i++)
        append(f, a, 1, i, NULL, NULL, NULL);
    plog_set_high_watermark(a, 12); /* all committed */
    uint64_t segs = (uint64_t)plog_segment_count(a);
    assert_true(segs >= 3);

    /* An hour later every segment of "old" has expired; "young" gets new data. */
    f->now += 3600 * 1000;
    append(f, young, 1, 0, NULL, NULL, NULL);
    fx_pump_until(f, segments_deleted, &segs);
    wpool_drain(f->pool);
    assert_int_equal(plog_segment_count(a), 1);
    assert_int_equal(plog_log_start_offset(a), 12);
    assert_int_equal(plog_log_end_offset(a), 12);
    assert_int_equal(plog_segment_count(young), 1);
    assert_int_equal(plog_log_start_offset(young), 0);
    assert_int_equal(count_entries(plog_dir(a), ".deleted"), 0);
    assert_int_equal(count_entries(plog_dir(a), ".log"), 1);
    struct logmgr_counters c = fx_counters(f);
    assert_int_equal(c.segments_deleted, segs);
    assert_true(c.files_deleted >= segs);
    assert_true(c.retention_runs >= 1);
    assert_int_equal(c.remove_errors, 0);
}

static const struct cp_expect want_hw[] = {
    {"t", 0, 1}, {"t", 1, 0}, {"t", 2, 3}, {"t", 3, 2}, {NULL, 0, 0},
};

static bool hw_checkpoints_ok(struct fx *f, void *arg)
{
    (void)arg;
    return checkpoints_match(f, CHECKPOINT_REPLICATION_OFFSET_FILE, want_hw);
}

/* replication-offset-checkpoint: written by its timer off the loop, read back at
 * start-up (bounded by the log end), and written at clean shutdown. */
static void test_hw_checkpoint_written_and_restored(void **state)
{
    struct fx *f = *state;
    f->opts.hw_checkpoint_interval_ms = 10;
    fx_open(f);
    struct plog *logs[4];
    for (int p = 0; p < 4; p++) {
        logs[p] = create(f, "t", p, NULL);
        append(f, logs[p], 3, p, NULL, NULL, NULL); /* offsets 0..2 */
        plog_set_high_watermark(logs[p], want_hw[p].offset);
    }
    fx_pump_until(f, hw_checkpoints_ok, NULL);
    wpool_drain(f->pool);
    assert_true(fx_counters(f).hw_checkpoints_written >= 2);

    /* A crash: the timer's file is what the next start reads. */
    fx_crash(f);
    fx_open(f);
    for (int p = 0; p < 4; p++)
        assert_int_equal(plog_high_watermark(logs[p] = logmgr_get(f->mgr, "t", p)),
                         want_hw[p].offset);

    /* A clean shutdown writes the latest HW even with the timer off. */
    f->opts.hw_checkpoint_interval_ms = 0;
    fx_shutdown(f);
    fx_open(f);
    logs[0] = logmgr_get(f->mgr, "t", 0);
    plog_set_high_watermark(logs[0], 3);
    fx_shutdown(f);

    /* A checkpointed HW above the log end (a torn tail cut at recovery) is bounded
     * by the log end. */
    char path[1024];
    const char *dir = NULL;
    fx_open(f);
    dir = logmgr_log_dir(f->mgr, "t", 1);
    snprintf(path, sizeof(path), "%s/%s", dir, CHECKPOINT_REPLICATION_OFFSET_FILE);
    fx_crash(f);
    struct checkpoint_entry e = {.topic = "t", .partition = 1, .offset = 99};
    assert_int_equal(checkpoint_write(path, &e, 1), 0);
    fx_open(f);
    assert_int_equal(plog_high_watermark(logmgr_get(f->mgr, "t", 0)), 3);
    assert_int_equal(plog_high_watermark(logmgr_get(f->mgr, "t", 1)), 3);
}

/* Retention never deletes a segment holding the HW or anything above it: only
 * segments whose every offset is below the HW may go. */
static void test_retention_keeps_segments_at_or_above_hw(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 600;
    cfg.retention_ms = 60000;
    struct plog *a = create(f, "held", 0, &cfg);
    for (int i = 0; i < 12; i++)
        append(f, a, 1, i, NULL, NULL, NULL);
    int32_t segs = plog_segment_count(a);
    assert_true(segs >= 3);
    f->now += 3600 * 1000; /* everything expired by time */

    /* HW unknown (log start): nothing goes. */
    logmgr_run_retention(f->mgr);
    wpool_drain(f->pool);
    assert_int_equal(plog_segment_count(a), segs);
    assert_int_equal(plog_log_start_offset(a), 0);

    /* HW inside the second segment: only the first goes. */
    int64_t second = -1;
    for (int64_t o = 1; o < 12 && second < 0; o++) {
        plog_set_high_watermark(a, o);
        logmgr_run_retention(f->mgr);
        wpool_drain(f->pool);
        if (plog_segment_count(a) < segs)
            second = o; /* the first offset of the second segment */
    }
    assert_true(second > 0);
    assert_int_equal(plog_segment_count(a), segs - 1);
    assert_int_equal(plog_log_start_offset(a), second);
    plog_set_high_watermark(a, second + 1);
    logmgr_run_retention(f->mgr);
    wpool_drain(f->pool);
    assert_int_equal(plog_segment_count(a), segs - 1);
    assert_true(plog_log_start_offset(a) <= plog_high_watermark(a));

    /* HW at the log end: everything goes, an empty active segment remains. */
    plog_set_high_watermark(a, 12);
    logmgr_run_retention(f->mgr);
    wpool_drain(f->pool);
    assert_int_equal(plog_segment_count(a), 1);
    assert_int_equal(plog_log_start_offset(a), 12);
}

/* file.delete.delay.ms: a retired segment stays as *.deleted for the delay,
 * then goes; a log without the delay loses its files at once. */
static void test_retention_waits_out_file_delete_delay(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 600;
    cfg.retention_ms = 60000;
    cfg.file_delete_delay_ms = 300;
    struct plog *a = create(f, "delayed", 0, &cfg);
    for (int i = 0; i < 12; i++)
        append(f, a, 1, i, NULL, NULL, NULL);
    plog_set_high_watermark(a, 12); /* all committed */
    /* All of them expire (the log gets a new empty active segment). */
    uint64_t segs = (uint64_t)plog_segment_count(a);
    assert_true(segs >= 3);
    f->now += 3600 * 1000;
    int64_t t0 = clock_mono_ms();
    logmgr_run_retention(f->mgr);
    assert_int_equal(plog_log_start_offset(a), 12);
    /* Renamed at once, not unlinked yet. */
    assert_int_equal(count_entries(plog_dir(a), ".log.deleted"), (int)segs);
    for (int i = 0; i < 20; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        wpool_drain(f->pool);
    }
    if (clock_mono_ms() - t0 < 250) {
        assert_int_equal(count_entries(plog_dir(a), ".log.deleted"), (int)segs);
        assert_int_equal(fx_counters(f).segments_deleted, 0);
    }
    fx_pump_until(f, segments_deleted, &segs);
    assert_true(clock_mono_ms() - t0 >= 290);
    wpool_drain(f->pool);
    assert_int_equal(count_entries(plog_dir(a), ".deleted"), 0);

    /* A delay still pending at shutdown leaves the files for the next start. */
    cfg.file_delete_delay_ms = 3600 * 1000;
    plog_set_config(a, &cfg);
    for (int i = 0; i < 12; i++)
        append(f, a, 1, i, NULL, NULL, NULL);
    plog_set_high_watermark(a, 24);
    f->now += 3600 * 1000;
    logmgr_run_retention(f->mgr);
    assert_true(count_entries(plog_dir(a), ".log.deleted") >= 1);
    fx_shutdown(f); /* frees the pending timer: ASan checks nothing leaks */
}

/* startup_retention_off: logs found at start-up keep everything until their
 * own configuration is set (the broker does it once the metadata says what
 * their topic wants); logs created later use what they are given. */
static void test_startup_logs_keep_segments_until_configured(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 600;
    cfg.retention_ms = 60000;
    struct plog *a = create(f, "kept", 0, &cfg);
    for (int i = 0; i < 12; i++)
        append(f, a, 1, i, NULL, NULL, NULL);
    plog_set_high_watermark(a, 12);
    fx_shutdown(f);

    f->opts.log_config = cfg; /* the broker default would delete it all */
    f->opts.startup_retention_off = true;
    f->now += 3600 * 1000;
    fx_open(f);
    a = logmgr_get(f->mgr, "kept", 0);
    assert_non_null(a);
    assert_int_equal(plog_get_config(a)->retention_ms, -1);
    assert_int_equal(plog_get_config(a)->retention_bytes, -1);
    assert_int_equal(plog_get_config(a)->segment_bytes, 600); /* the rest is the default */
    plog_set_high_watermark(a, 12);
    logmgr_run_retention(f->mgr);
    wpool_drain(f->pool);
    assert_int_equal(plog_log_start_offset(a), 0);
    /* Its topic's configuration arrives: now retention applies. */
    plog_set_config(a, &cfg);
    logmgr_run_retention(f->mgr);
    wpool_drain(f->pool);
    assert_int_equal(plog_log_start_offset(a), 12);
}

static void test_corrupt_checkpoint_forces_full_recovery(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct plog *a = create(f, "c", 0, NULL);
    struct plog *b = create(f, "c", 1, NULL);
    for (int i = 0; i < 3; i++) {
        append(f, a, 2, i, NULL, NULL, NULL);
        append(f, b, 2, i, NULL, NULL, NULL);
    }
    char adir[512];
    snprintf(adir, sizeof(adir), "%s", logmgr_log_dir(f->mgr, "c", 0));
    fx_shutdown(f);

    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", adir, CHECKPOINT_RECOVERY_POINT_FILE);
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0\n1\nc 0 zz\n", 11), 11);
    close(fd);

    fx_open(f);
    assert_int_equal(f->stats.checkpoints_corrupt, 1);
    assert_int_equal(f->events[LOGMGR_EVENT_CHECKPOINT_CORRUPT], 1);
    assert_int_equal(f->stats.logs, 2);
    struct plog_recovery_info ra, rb;
    assert_int_equal(logmgr_recovery_info(f->mgr, "c", 0, &ra), 0);
    assert_int_equal(logmgr_recovery_info(f->mgr, "c", 1, &rb), 0);
    assert_true(ra.segments_scanned >= 1);
    assert_int_equal(rb.segments_scanned, 0);
    assert_int_equal(plog_log_end_offset(logmgr_get(f->mgr, "c", 0)), 6);
    assert_int_equal(plog_log_end_offset(logmgr_get(f->mgr, "c", 1)), 6);
}

static void test_dir_names_split_at_last_dash(void **state)
{
    (void)state;
    size_t tlen;
    int32_t p;
    assert_int_equal(logmgr_parse_dir_name("my-topic.v2-12", &tlen, &p), 0);
    assert_int_equal(tlen, 11);
    assert_int_equal(p, 12);
    assert_int_equal(logmgr_parse_dir_name("a-0", &tlen, &p), 0);
    assert_int_equal(tlen, 1);
    assert_int_equal(p, 0);
    assert_int_equal(logmgr_parse_dir_name("x--7", &tlen, &p), 0); /* topic "x-" */
    assert_int_equal(tlen, 2);
    assert_int_equal(p, 7);
    assert_int_equal(logmgr_parse_dir_name("t-2147483647", &tlen, &p), 0);
    assert_int_equal(p, INT32_MAX);
    const char *bad[] = {
        "topic",        "topic-",     "topic-01", "-1",
        "t-2147483648", "t-+1",       "t- 1",     "t-1x",
        ".-1",          "..-1",       "t x-1",    "t-1.0123456789abcdef-delete",
        "t-1-stray",    "lost+found",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (logmgr_parse_dir_name(bad[i], &tlen, &p) != -EINVAL)
            fail_msg("\"%s\" parsed as a log name", bad[i]);
    }
}

static void test_open_handles_odd_names_and_strays(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    create(f, "my-topic.v2", 12, NULL);
    create(f, "a.b-c", 0, NULL);
    create(f, "x-", 7, NULL);
    fx_shutdown(f);

    char p[1024];
    snprintf(p, sizeof(p), "%s/lost+found", f->dirs[0]);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/junk", f->dirs[1]);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/meta.properties", f->dirs[0]);
    assert_int_equal(fsutil_write_atomic(p, "version=0\n", 10), 0);
    /* A deletion interrupted by a crash. */
    snprintf(p, sizeof(p), "%s/gone-3.0123456789abcdef-delete", f->dirs[1]);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/gone-3.0123456789abcdef-delete/00000000000000000000.log",
             f->dirs[1]);
    assert_int_equal(fsutil_write_atomic(p, "x", 1), 0);

    fx_open(f);
    assert_int_equal(f->stats.logs, 3);
    assert_int_equal(f->stats.ignored_entries, 2);
    assert_int_equal(f->events[LOGMGR_EVENT_IGNORED_ENTRY], 2);
    assert_int_equal(f->stats.stale_delete_dirs, 1);
    assert_int_equal(f->events[LOGMGR_EVENT_STALE_DELETE_DIR], 1);
    assert_non_null(logmgr_get(f->mgr, "my-topic.v2", 12));
    assert_non_null(logmgr_get(f->mgr, "a.b-c", 0));
    assert_non_null(logmgr_get(f->mgr, "x-", 7));
    wpool_drain(f->pool);
    assert_int_equal(count_entries(f->dirs[1], "-delete"), 0);
    assert_true(path_exists(f->dirs[0], "lost+found"));
    assert_true(path_exists(f->dirs[0], "meta.properties"));
}

static void test_dir_in_use_is_busy(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    struct logmgr *other = NULL;
    assert_int_equal(logmgr_new(f->base, f->pool, &f->opts, &other, NULL), -EBUSY);
    assert_null(other);
    assert_int_equal(f->events[LOGMGR_EVENT_OPEN_FAILED], 1);
}

static void test_same_log_in_two_dirs_fails_open(void **state)
{
    struct fx *f = *state;
    char p[1024];
    for (int d = 0; d < 2; d++) {
        assert_int_equal(fsutil_mkdirs(f->dirs[d], 0755), 0);
        snprintf(p, sizeof(p), "%s/dup-0", f->dirs[d]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    struct logmgr *m = NULL;
    assert_int_equal(logmgr_new(f->base, f->pool, &f->opts, &m, NULL), -EEXIST);
    assert_null(m);
    assert_true(strstr(f->last_event_path, "dup-0") != NULL);
}

static void test_bad_options_are_rejected(void **state)
{
    struct fx *f = *state;
    struct logmgr *m = NULL;
    struct logmgr_options o = f->opts;
    o.ndirs = 0;
    assert_int_equal(logmgr_new(f->base, f->pool, &o, &m, NULL), -EINVAL);
    const char *same[] = {f->dirs[0], f->dirs[0]};
    o = f->opts;
    o.dirs = same;
    assert_int_equal(logmgr_new(f->base, f->pool, &o, &m, NULL), -EINVAL);
    assert_null(m);
}

static void test_topic_id_and_set_aside(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    uint8_t id[16], got[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(i * 7 + 1);
    struct plog *log = NULL;
    assert_int_equal(logmgr_create(f->mgr, "ided", 0, id, NULL, &log), 0);
    struct plog *plain = create(f, "plain", 0, NULL);
    append(f, log, 3, 1, NULL, NULL, NULL);
    (void)plain;
    assert_int_equal(logmgr_topic_id(f->mgr, "ided", 0, got), 0);
    assert_memory_equal(got, id, 16);
    assert_int_equal(logmgr_topic_id(f->mgr, "plain", 0, got), -ENODATA);
    assert_int_equal(logmgr_topic_id(f->mgr, "nope", 0, got), -ENOENT);
    char path[1024];
    snprintf(path, sizeof(path), "%s/ided-0", logmgr_log_dir(f->mgr, "ided", 0));
    uint8_t on_disk[16];
    assert_int_equal(metaprops_part_read(path, on_disk), 0);
    assert_memory_equal(on_disk, id, 16);

    /* A log without one gets one, which survives a restart like the other. */
    id[0] ^= 0xff;
    assert_int_equal(logmgr_set_topic_id(f->mgr, "plain", 0, id), 0);
    fx_shutdown(f);
    fx_open(f);
    assert_int_equal(f->stats.logs, 2);
    assert_int_equal(logmgr_topic_id(f->mgr, "plain", 0, got), 0);
    assert_memory_equal(got, id, 16);

    /* Set aside: gone from the manager, kept on disk with every file, never
     * opened again, reported at start-up. */
    const char *dir = logmgr_log_dir(f->mgr, "ided", 0);
    char where[1024] = "";
    assert_int_equal(logmgr_set_aside(f->mgr, "ided", 0, where, sizeof(where)), 0);
    assert_null(logmgr_get(f->mgr, "ided", 0));
    assert_int_equal(logmgr_set_aside(f->mgr, "ided", 0, NULL, 0), -ENOENT);
    assert_non_null(strstr(where, "/ided-0."));
    assert_non_null(strstr(where, "-stray"));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(metaprops_part_read(where, on_disk), 0);
    char seg[1100];
    snprintf(seg, sizeof(seg), "%s/00000000000000000000.log", where);
    struct stat sb;
    assert_int_equal(stat(seg, &sb), 0);
    assert_true(sb.st_size > 0);
    assert_int_equal(count_entries(dir, "-stray"), 1);
    fx_shutdown(f);
    f->events[LOGMGR_EVENT_STRAY_DIR] = 0;
    fx_open(f);
    assert_int_equal(f->stats.logs, 1);
    assert_int_equal(f->stats.stray_dirs, 1);
    assert_int_equal(f->events[LOGMGR_EVENT_STRAY_DIR], 1);
    assert_int_equal(stat(seg, &sb), 0);
    /* The name is free for a new log. */
    assert_int_equal(logmgr_create(f->mgr, "ided", 0, id, NULL, &log), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_balances_logs_across_dirs),
        T(test_create_batch_makes_logs_on_the_pool),
        T(test_clean_shutdown_reopens_without_recovery_scan),
        T(test_crash_reopen_recovers_data_and_cuts_torn_tail),
        T(test_delete_removes_dir_and_log_stays_gone),
        T(test_delete_with_flush_in_flight_is_safe),
        T(test_flush_runs_after_flush_interval_messages),
        T(test_segment_roll_triggers_flush),
        T(test_flush_scheduler_flushes_by_age),
        T(test_checkpoint_timers_write_recovery_points),
        T(test_start_offset_survives_restart),
        T(test_retention_timer_deletes_old_segments),
        T(test_retention_waits_out_file_delete_delay),
        T(test_startup_logs_keep_segments_until_configured),
        T(test_hw_checkpoint_written_and_restored),
        T(test_retention_keeps_segments_at_or_above_hw),
        T(test_corrupt_checkpoint_forces_full_recovery),
        cmocka_unit_test(test_dir_names_split_at_last_dash),
        T(test_open_handles_odd_names_and_strays),
        T(test_dir_in_use_is_busy),
        T(test_same_log_in_two_dirs_fails_open),
        T(test_bad_options_are_rejected),
        T(test_topic_id_and_set_aside),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
