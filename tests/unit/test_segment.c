/* Tests for broker/storage/segment.c: header framing checks, the index-interval
 * rule for offset entries, time index entries, pending entries serving lookups
 * before they are written, and the validating scan (CRC only past crc_from,
 * large batches checked in chunks). */
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
#include <sys/stat.h>
#include <unistd.h>

#include "broker/storage/index.h"
#include "broker/storage/plog_internal.h"
#include "broker/storage/segment.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "tests/unit/testutil.h"

#define TS0 INT64_C(1700000000000)

struct fixture {
    char *dir;
    struct fdcache *fc;
    struct plog *log;
    struct plog_config cfg;
    int64_t pos[512];
    int64_t base[512];
    int n;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->dir = testutil_mkdtemp("segment");
    assert_int_equal(fdcache_new(16, &fx->fc), 0);
    plog_config_defaults(&fx->cfg);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    plog_close(fx->log);
    fdcache_free(fx->fc);
    testutil_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void open_log(struct fixture *fx)
{
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, NULL), 0);
}

/* Append a batch of @nrec records with timestamps @ts.. and values of @vsize bytes
 * (values may be large: records are split into 8 KiB values). */
static void append(struct fixture *fx, int nrec, int64_t ts, int vsize)
{
    static char val[8192];
    buf_writer w;
    struct batch_builder b;
    buf_writer_init(&w);
    assert_int_equal(batch_builder_begin(&b, &w, ts), 0);
    for (int i = 0; i < nrec; i++)
        assert_int_equal(batch_builder_add(&b, ts + i, NULL, -1, val, vsize, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    struct plog_append_info info;
    fx->pos[fx->n] = plog_active(fx->log)->size;
    assert_int_equal(plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 0, TS0, &info),
                     0);
    fx->base[fx->n++] = info.first_offset;
    buf_writer_deinit(&w);
}

static uint8_t *slurp(struct fixture *fx, const char *suffix, size_t *len)
{
    char path[4096];
    uint8_t *d;
    snprintf(path, sizeof(path), "%s/%020d%s", fx->dir, 0, suffix);
    assert_int_equal(fsutil_read_file(path, 1 << 20, &d, len), 0);
    return d;
}

static void test_segment_header_framing_checks(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    append(fx, 2, TS0, 20);
    append(fx, 2, TS0, 20);
    struct segment *seg = plog_active(fx->log);
    struct seg_file *f;
    assert_int_equal(seg_acquire(fx->log, seg, SEG_LOG, 0, &f), 0);
    uint8_t buf[256];
    struct seg_reader r;
    struct batch_header h;
    seg_reader_init(&r, seg_file_fd(f), seg->size, buf, sizeof(buf));
    assert_int_equal(seg_reader_header(&r, 0, &h), 1);
    assert_int_equal(h.base_offset, 0);
    assert_int_equal(seg_reader_header(&r, fx->pos[1], &h), 1);
    assert_int_equal(h.base_offset, 2);
    assert_int_equal(seg_reader_header(&r, seg->size, &h), 0);
    assert_int_equal(seg_reader_header(&r, seg->size + 1, &h), -EBADMSG);
    assert_int_equal(seg_reader_header(&r, 1, &h), -EBADMSG);
    /* A limit that cuts the second batch makes it torn. */
    seg_reader_init(&r, seg_file_fd(f), seg->size - 1, buf, sizeof(buf));
    assert_int_equal(seg_reader_header(&r, fx->pos[1], &h), -EBADMSG);

    struct batch_header good = h;
    seg_reader_init(&r, seg_file_fd(f), seg->size, buf, sizeof(buf));
    assert_int_equal(seg_reader_header(&r, fx->pos[1], &good), 1);
    h = good;
    h.length = 48;
    assert_int_equal(seg_check_header(&h, 0, 1000), -EBADMSG);
    h = good;
    h.magic = 1;
    assert_int_equal(seg_check_header(&h, 0, 1000), -EBADMSG);
    h = good;
    h.base_offset = -1;
    assert_int_equal(seg_check_header(&h, 0, 1000), -EBADMSG);
    h = good;
    h.last_offset_delta = -1;
    assert_int_equal(seg_check_header(&h, 0, 1000), -EBADMSG);
    h = good;
    assert_int_equal(seg_check_header(&h, 0, batch_total_size(&h)), 0);
    assert_int_equal(seg_check_header(&h, 1, batch_total_size(&h)), -EBADMSG);
    seg_file_unref(f);
}

static void test_segment_offset_index_follows_interval(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 500;
    open_log(fx);
    for (int i = 0; i < 60; i++)
        append(fx, 1 + i % 4, TS0 + i, 30 + (i * 13) % 200);
    int64_t size = plog_active(fx->log)->size;
    plog_close(fx->log);
    fx->log = NULL;

    size_t len;
    uint8_t *idx = slurp(fx, ".index", &len);
    assert_int_equal(len % INDEX_ENTRY_SIZE, 0);
    /* Replay the rule: an entry for the first batch, then for each batch that
     * starts at least 500 bytes after the previous entry's batch. */
    size_t e = 0;
    int64_t last = -1;
    for (int i = 0; i < fx->n; i++) {
        if (last < 0 || fx->pos[i] - last >= 500) {
            struct index_entry ie;
            assert_true(e < len / INDEX_ENTRY_SIZE);
            index_entry_decode(idx + e * INDEX_ENTRY_SIZE, &ie);
            assert_int_equal(ie.pos, fx->pos[i]);
            assert_int_equal(ie.rel, fx->base[i]);
            last = fx->pos[i];
            e++;
        }
    }
    assert_int_equal(e, len / INDEX_ENTRY_SIZE);
    assert_true((int64_t)e > size / 1000);
    free(idx);
}

static void test_segment_time_index_entries_track_max_timestamp(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 1;
    open_log(fx);
    int64_t ts[] = {50, 40, 60, 60, 90, 10, 95};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
        append(fx, 1, TS0 + ts[i], 10);
    plog_close(fx->log);
    fx->log = NULL;
    size_t len;
    uint8_t *t = slurp(fx, ".timeindex", &len);
    /* One entry each time the max grew, at the batch where it first did. */
    struct {
        int64_t ts;
        int batch;
    } want[] = {{50, 0}, {60, 2}, {90, 4}, {95, 6}};
    assert_int_equal(len, sizeof(want) / sizeof(want[0]) * TIMEINDEX_ENTRY_SIZE);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct timeindex_entry te;
        timeindex_entry_decode(t + i * TIMEINDEX_ENTRY_SIZE, &te);
        assert_int_equal(te.ts, TS0 + want[i].ts);
        assert_int_equal(te.rel, fx->base[want[i].batch]);
    }
    free(t);
}

static void test_segment_final_time_entry_written_on_close(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 100000;
    open_log(fx);
    append(fx, 1, TS0, 10);
    append(fx, 1, TS0 + 5, 10);
    append(fx, 1, TS0 + 3, 10);
    plog_close(fx->log);
    fx->log = NULL;
    size_t len;
    uint8_t *t = slurp(fx, ".timeindex", &len);
    assert_int_equal(len, 2 * TIMEINDEX_ENTRY_SIZE);
    struct timeindex_entry te;
    timeindex_entry_decode(t + TIMEINDEX_ENTRY_SIZE, &te);
    assert_int_equal(te.ts, TS0 + 5);
    assert_int_equal(te.rel, 1);
    free(t);
}

static void test_segment_pending_entries_serve_lookups_before_written(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 1;
    open_log(fx);
    for (int i = 0; i < 40; i++)
        append(fx, 2, TS0 + i, 20);
    struct segment *seg = plog_active(fx->log);
    assert_non_null(seg->pend);
    assert_int_equal(seg->idx_n, 40);
    size_t len;
    uint8_t *idx = slurp(fx, ".index", &len);
    free(idx);
    assert_int_equal(len, 0); /* all still pending */

    struct seg_file *f;
    uint8_t buf[4096];
    struct seg_reader r;
    assert_int_equal(seg_acquire(fx->log, seg, SEG_LOG, 0, &f), 0);
    seg_reader_init(&r, seg_file_fd(f), seg->size, buf, sizeof(buf));
    for (int i = 0; i < 40; i++) {
        int64_t pos;
        assert_int_equal(seg_lookup_offset(fx->log, seg, &r, fx->base[i] + 1, &pos), 0);
        assert_int_equal(pos, fx->pos[i]);
        /* batch i's max is TS0 + i + 1, the first time the max reached it */
        assert_int_equal(seg_lookup_time(fx->log, seg, &r, TS0 + i + 1, &pos), 0);
        assert_int_equal(pos, fx->pos[i]);
    }
    /* Some written, some pending: a flush writes them all. */
    assert_int_equal(plog_flush_sync(fx->log), 0);
    assert_null(seg->pend);
    idx = slurp(fx, ".index", &len);
    free(idx);
    assert_int_equal(len, 40 * INDEX_ENTRY_SIZE);
    for (int i = 0; i < 40; i++) {
        int64_t pos;
        assert_int_equal(seg_lookup_offset(fx->log, seg, &r, fx->base[i], &pos), 0);
        assert_int_equal(pos, fx->pos[i]);
    }
    seg_file_unref(f);
}

static void test_segment_pending_page_spills_to_disk(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 1;
    open_log(fx);
    for (int i = 0; i < 300; i++)
        append(fx, 1, TS0 + i, 1);
    struct segment *seg = plog_active(fx->log);
    size_t len;
    uint8_t *idx = slurp(fx, ".index", &len);
    /* The time page (170 entries) filled first, at batch 171; the offset entries
     * pending then went out with it. The rest wait. */
    assert_int_equal(len, 171 * INDEX_ENTRY_SIZE);
    assert_int_equal(seg->idx_n, 300);
    struct index_entry ie;
    index_entry_decode(idx + 170 * INDEX_ENTRY_SIZE, &ie);
    assert_int_equal(ie.pos, fx->pos[170]);
    free(idx);
    idx = slurp(fx, ".timeindex", &len);
    free(idx);
    assert_int_equal(len, 170 * TIMEINDEX_ENTRY_SIZE);
}

static void test_segment_scan_checks_crc_only_from_crc_from(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    for (int i = 0; i < 10; i++)
        append(fx, 3, TS0 + i, 50);
    plog_close(fx->log);
    fx->log = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%020d.log", fx->dir, 0);
    int fd = open(path, O_RDWR);
    uint8_t b = 0x55;
    assert_int_equal(pwrite(fd, &b, 1, fx->pos[4] + 70), 1);
    close(fd);
    /* Open with the recovery point past the corruption: the log stays whole. */
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 30, -1, TS0, &fx->log, NULL), 0);
    struct segment *seg = plog_active(fx->log);
    struct seg_scan_opts o = {.crc_from = fx->base[5], .offset_limit = INT64_MAX};
    struct seg_scan_result res;
    assert_int_equal(seg_scan(fx->log, seg, &o, &res), 0);
    assert_false(res.bad);
    assert_int_equal(res.batches, 10);
    assert_int_equal(res.crc_checked, 5);
    assert_int_equal(res.next_offset, 30);
    o.crc_from = fx->base[4];
    assert_int_equal(seg_scan(fx->log, seg, &o, &res), 0);
    assert_true(res.bad);
    assert_int_equal(res.valid_size, fx->pos[4]);
    assert_int_equal(res.next_offset, fx->base[4]);
    /* An offset limit below a batch's last offset stops there too. */
    o.crc_from = INT64_MAX;
    o.offset_limit = fx->base[7] + 2;
    assert_int_equal(seg_scan(fx->log, seg, &o, &res), 0);
    assert_true(res.bad);
    assert_int_equal(res.valid_size, fx->pos[7]);
}

static void test_segment_scan_validates_batches_larger_than_its_buffer(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    append(fx, 1, TS0, 100);
    append(fx, 700, TS0, 8000); /* about 5.4 MiB, more than PLOG_SCAN_BUF */
    append(fx, 1, TS0, 100);
    int64_t leo = plog_log_end_offset(fx->log);
    assert_true(fx->pos[2] - fx->pos[1] > (int64_t)PLOG_SCAN_BUF);
    plog_close(fx->log);
    struct plog_recovery_info info;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, &info), 0);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    assert_int_equal(info.truncated_at, -1);
    plog_close(fx->log);
    fx->log = NULL;

    char path[4096];
    snprintf(path, sizeof(path), "%s/%020d.log", fx->dir, 0);
    int fd = open(path, O_RDWR);
    uint8_t b = 0x55;
    assert_int_equal(pwrite(fd, &b, 1, fx->pos[1] + (5 << 20)), 1);
    close(fd);
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, &info), 0);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[1]);
    assert_int_equal(info.truncated_at, fx->base[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_segment_header_framing_checks),
        T(test_segment_offset_index_follows_interval),
        T(test_segment_time_index_entries_track_max_timestamp),
        T(test_segment_final_time_entry_written_on_close),
        T(test_segment_pending_entries_serve_lookups_before_written),
        T(test_segment_pending_page_spills_to_disk),
        T(test_segment_scan_checks_crc_only_from_crc_from),
        T(test_segment_scan_validates_batches_larger_than_its_buffer),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
