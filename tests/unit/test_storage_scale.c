/* Scale test for broker/storage: 10,000 segments across 1,000 partitions open
 * through the log manager and serve reads, with the descriptor count held under
 * the cache cap and bounded memory. Prints open times, fd counts and RSS growth. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <malloc.h>
#include <inttypes.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/storage/checkpoint.h"
#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/wpool.h"
#include "testutil.h"

#define NDIRS               2
#define PARTITIONS          1000
#define SEGMENTS            10
#define BATCHES_PER_SEGMENT 2
#define BATCHES             (SEGMENTS * BATCHES_PER_SEGMENT)
#define VALUE_LEN           1300
#define SEGMENT_BYTES       4096
#define FD_CAP              256
#define FD_SLACK            32
#define T0                  1700000000000LL

struct scale {
    char *root;
    char *dirs[NDIRS];
    /* The first and last batch of every partition as stored. */
    uint8_t *first[PARTITIONS], *last[PARTITIONS];
    size_t first_len[PARTITIONS], last_len[PARTITIONS];
};

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream itself */
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

/* Bytes of heap in use (0 where the allocator does not say, e.g. under ASan). */
static long heap_kib(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks / 1024);
}

static uint8_t *make_batch(int partition, int index, size_t *ret_len)
{
    buf_writer w;
    buf_writer_init(&w);
    struct batch_builder b;
    assert_int_equal(batch_builder_begin(&b, &w, T0 + index), 0);
    char value[VALUE_LEN];
    memset(value, 'a' + (partition + index) % 26, sizeof(value));
    snprintf(value, sizeof(value), "p%d/b%d", partition, index);
    assert_int_equal(
        batch_builder_add(&b, T0 + index, NULL, -1, value, (int32_t)sizeof(value), NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    uint8_t *data;
    size_t len;
    assert_int_equal(buf_writer_steal(&w, &data, &len), 0);
    *ret_len = len;
    return data;
}

static void partition_name(int p, char *buf, size_t len)
{
    snprintf(buf, len, "scale-%d", p);
}

/* Build the data set with plogs directly (no fsync: the page cache is as good as
 * the disk within one process), then write checkpoints that declare every log
 * clean, as a clean shutdown would. */
static void build_fixture(struct scale *s)
{
    struct fdcache *fc;
    assert_int_equal(fdcache_new(FD_CAP, &fc), 0);
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = SEGMENT_BYTES;
    struct checkpoint_entry *rp[NDIRS], *so[NDIRS];
    size_t n[NDIRS] = {0};
    char *topic = "scale";
    for (int d = 0; d < NDIRS; d++) {
        rp[d] = calloc(PARTITIONS, sizeof(**rp));
        so[d] = calloc(PARTITIONS, sizeof(**so));
    }
    for (int p = 0; p < PARTITIONS; p++) {
        int d = p % NDIRS;
        char name[64], path[1024];
        partition_name(p, name, sizeof(name));
        snprintf(path, sizeof(path), "%s/%s", s->dirs[d], name);
        assert_int_equal(fsutil_mkdirs(path, 0755), 0);
        struct plog *log;
        assert_int_equal(plog_open(path, &cfg, fc, 0, -1, T0, &log, NULL), 0);
        for (int i = 0; i < BATCHES; i++) {
            size_t len;
            uint8_t *data = make_batch(p, i, &len);
            struct plog_append_info info;
            assert_int_equal(
                plog_append(log, data, len, PLOG_APPEND_ASSIGN_OFFSETS, -1, T0 + i, &info), 0);
            if (i == 0) {
                s->first[p] = data;
                s->first_len[p] = len;
            } else if (i == BATCHES - 1) {
                s->last[p] = data;
                s->last_len[p] = len;
            } else {
                free(data);
            }
        }
        assert_int_equal(plog_segment_count(log), SEGMENTS);
        assert_int_equal(plog_log_end_offset(log), BATCHES);
        rp[d][n[d]] = (struct checkpoint_entry){topic, p, BATCHES};
        so[d][n[d]] = (struct checkpoint_entry){topic, p, 0};
        n[d]++;
        plog_close(log);
    }
    assert_true(fdcache_open_count(fc) <= FD_CAP);
    fdcache_free(fc);
    for (int d = 0; d < NDIRS; d++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", s->dirs[d], CHECKPOINT_RECOVERY_POINT_FILE);
        assert_int_equal(checkpoint_write(path, rp[d], n[d]), 0);
        snprintf(path, sizeof(path), "%s/%s", s->dirs[d], CHECKPOINT_LOG_START_OFFSET_FILE);
        assert_int_equal(checkpoint_write(path, so[d], n[d]), 0);
        /* Everything committed: the HW is the log end, like the recovery point. */
        snprintf(path, sizeof(path), "%s/%s", s->dirs[d], CHECKPOINT_REPLICATION_OFFSET_FILE);
        assert_int_equal(checkpoint_write(path, rp[d], n[d]), 0);
        free(rp[d]);
        free(so[d]);
    }
}

static void expect_read(struct plog *log, int64_t offset, const uint8_t *want, size_t len)
{
    struct plog_read_result rr;
    assert_int_equal(plog_read(log, offset, plog_log_end_offset(log), (int32_t)len, true, &rr), 0);
    assert_non_null(rr.file);
    assert_int_equal(rr.length, (int64_t)len);
    assert_int_equal(rr.first_offset, offset);
    uint8_t *got = malloc(len);
    assert_int_equal(fsutil_pread_all(seg_file_fd(rr.file), got, len, rr.position), 0);
    assert_memory_equal(got, want, len);
    free(got);
    seg_file_unref(rr.file);
}

/* Every @step-th partition serves its first and last batch (first and last
 * segment), and the process never holds more descriptors than the cap allows. */
static void check_reads(struct scale *s, struct logmgr *mgr, int base_fds, int step)
{
    int max_fds = 0;
    for (int p = 0; p < PARTITIONS; p += step) {
        struct plog *log = logmgr_get(mgr, "scale", p);
        assert_non_null(log);
        assert_int_equal(plog_segment_count(log), SEGMENTS);
        assert_int_equal(plog_log_end_offset(log), BATCHES);
        expect_read(log, 0, s->first[p], s->first_len[p]);
        expect_read(log, BATCHES - 1, s->last[p], s->last_len[p]);
        if (p % 50 == 0) {
            int fds = open_fds();
            if (fds > max_fds)
                max_fds = fds;
        }
    }
    int fds = open_fds();
    if (fds > max_fds)
        max_fds = fds;
    assert_true(fdcache_open_count(logmgr_fdcache(mgr)) <= FD_CAP);
    print_message("  fds: %d before open, at most %d while reading (cap %d + %d)\n", base_fds,
                  max_fds, FD_CAP, FD_SLACK);
    assert_true(max_fds <= base_fds + FD_CAP + FD_SLACK);
}

static void test_10k_segments_across_1k_partitions_open_and_serve_reads(void **state)
{
    (void)state;
    struct scale *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    /* 30,000 files: on a busy ext4 disk creating and removing them costs tens of
     * seconds of journal waits that say nothing about the code under test, so the
     * fixture lives on tmpfs when there is one (WEIR_SCALE_TMPDIR overrides). */
    const char *tmp = getenv("WEIR_SCALE_TMPDIR");
    if (!tmp && access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm/weir-tests";
    if (tmp)
        setenv("WEIR_TEST_TMPDIR", tmp, 1);
    s->root = testutil_mkdtemp("scale");
    print_message("  data in %s\n", s->root);
    for (int d = 0; d < NDIRS; d++) {
        size_t len = strlen(s->root) + 16;
        s->dirs[d] = malloc(len);
        snprintf(s->dirs[d], len, "%s/d%d", s->root, d);
    }
    int64_t t = clock_mono_ms();
    build_fixture(s);
    print_message("  fixture: %d partitions x %d segments built in %" PRId64 " ms\n", PARTITIONS,
                  SEGMENTS, clock_mono_ms() - t);

    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct wpool *pool;
    assert_int_equal(wpool_new(base, 2, &pool), 0);
    struct logmgr_options opts;
    logmgr_options_defaults(&opts);
    opts.dirs = (const char *const *)s->dirs;
    opts.ndirs = NDIRS;
    opts.max_open_files = FD_CAP;
    opts.log_config.segment_bytes = SEGMENT_BYTES;

    /* Clean start: the checkpoints say every log is flushed. */
    int base_fds = open_fds();
    long rss0 = rss_kib();
    long heap0 = heap_kib();
    struct logmgr *mgr;
    struct logmgr_open_stats st;
    t = clock_mono_ms();
    assert_int_equal(logmgr_new(base, pool, &opts, &mgr, &st), 0);
    int64_t open_ms = clock_mono_ms() - t;
    long rss1 = rss_kib();
    long heap1 = heap_kib();
    print_message("  clean open: %d logs, %d segments, %d scanned, %" PRId64 " ms, "
                  "RSS +%ld KiB, heap +%ld KiB, fds %d\n",
                  st.logs, st.segments, st.segments_scanned, open_ms, rss1 - rss0, heap1 - heap0,
                  open_fds());
    /* The manager's table and 1,000 plogs of 10 segments: a few hundred bytes per
     * log and a few dozen per segment, so well under 4 MiB. */
    if (heap0 > 0)
        assert_true(heap1 - heap0 < 4 * 1024);
    assert_int_equal(st.logs, PARTITIONS);
    assert_int_equal(st.segments, PARTITIONS * SEGMENTS);
    assert_int_equal(st.segments_scanned, 0);
    assert_int_equal(st.checkpoints_corrupt + st.checkpoints_missing, 0);
    assert_int_equal(logmgr_count(mgr), PARTITIONS);
    assert_true(open_fds() <= base_fds + FD_CAP + FD_SLACK);

    t = clock_mono_ms();
    check_reads(s, mgr, base_fds, 1);
    long rss2 = rss_kib();
    print_message("  2,000 reads (first + last segment of each log) in %" PRId64
                  " ms, RSS +%ld KiB since start\n",
                  clock_mono_ms() - t, rss2 - rss0);
    /* Per segment the manager and plogs keep a few dozen bytes; even with the
     * sanitizers' overhead 10,000 segments must stay far below this. */
    assert_true(rss2 - rss0 < 96 * 1024);

    t = clock_mono_ms();
    assert_int_equal(logmgr_shutdown(mgr), 0);
    print_message("  clean shutdown in %" PRId64 " ms\n", clock_mono_ms() - t);
    logmgr_free(mgr);

    /* Unclean start at the same scale: without checkpoints every segment is
     * re-validated. */
    for (int d = 0; d < NDIRS; d++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", s->dirs[d], CHECKPOINT_RECOVERY_POINT_FILE);
        assert_int_equal(unlink(path), 0);
    }
    t = clock_mono_ms();
    assert_int_equal(logmgr_new(base, pool, &opts, &mgr, &st), 0);
    open_ms = clock_mono_ms() - t;
    print_message("  unclean open: %d logs, %d segments scanned, %d truncated, %" PRId64
                  " ms, fds %d\n",
                  st.logs, st.segments_scanned, st.logs_truncated, open_ms, open_fds());
    assert_int_equal(st.logs, PARTITIONS);
    assert_int_equal(st.segments_scanned, PARTITIONS * SEGMENTS);
    assert_int_equal(st.logs_truncated, 0);
    assert_int_equal(st.checkpoints_missing, NDIRS);
    assert_true(open_fds() <= base_fds + FD_CAP + FD_SLACK);
    check_reads(s, mgr, base_fds, 7);
    logmgr_free(mgr); /* a crash again */

    wpool_free(pool);
    event_base_free(base);
    for (int p = 0; p < PARTITIONS; p++) {
        free(s->first[p]);
        free(s->last[p]);
    }
    for (int d = 0; d < NDIRS; d++)
        free(s->dirs[d]);
    testutil_rmtree(s->root);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_10k_segments_across_1k_partitions_open_and_serve_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
