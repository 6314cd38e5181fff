/* Tests for broker/storage/plog.c: append and fetch-style reads, rolling,
 * lookups by time, truncation, the log start offset, retention, flushing and a
 * failed write. Recovery has its own file (test_recovery.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/storage/plog.h"
#include "broker/storage/storage_config.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "tests/unit/testutil.h"

#define TS0     INT64_C(1700000000000)
#define HOUR_MS INT64_C(3600000)
/* A segment size that holds three batches of one 300-byte record (369 bytes). */
#define SEG3 1200

struct fixture {
    char *dir;
    struct fdcache *fc;
    struct plog *log;
    struct plog_config cfg;
};

/* ---- helpers ---------------------------------------------------------------- */

/* One uncompressed batch of @nrec records; record i has timestamp @ts + i and a
 * value of @vsize bytes. */
static void make_batch(buf_writer *w, int nrec, int64_t ts, int vsize)
{
    static char val[8192];
    struct batch_builder b;
    memset(val, 'v', sizeof(val));
    assert_true(vsize >= 0 && (size_t)vsize <= sizeof(val));
    assert_int_equal(batch_builder_begin(&b, w, ts), 0);
    for (int i = 0; i < nrec; i++)
        assert_int_equal(batch_builder_add(&b, ts + i, NULL, -1, val, vsize, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
}

static int append_batch_at(struct plog *log, int nrec, int64_t ts, int vsize, int64_t now,
                           struct plog_append_info *info)
{
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, nrec, ts, vsize);
    int r = plog_append(log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 7, now, info);
    buf_writer_deinit(&w);
    return r;
}

static void append_batch(struct plog *log, int nrec, int64_t ts, int vsize)
{
    assert_int_equal(append_batch_at(log, nrec, ts, vsize, ts, NULL), 0);
}

static void open_log(struct fixture *fx)
{
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, NULL), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->dir = testutil_mkdtemp("plog");
    assert_int_equal(fdcache_new(64, &fx->fc), 0);
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

/* Read the bytes a read result describes. */
static uint8_t *read_bytes(const struct plog_read_result *rr)
{
    uint8_t *b = malloc((size_t)rr->length + 1);
    assert_non_null(b);
    assert_int_equal(fsutil_pread_all(seg_file_fd(rr->file), b, (size_t)rr->length, rr->position),
                     0);
    return b;
}

/* Check that a read result holds whole valid batches with contiguous offsets from
 * rr->first_offset to rr->next_offset, each stamped with @epoch. */
static void check_result(const struct plog_read_result *rr, int32_t epoch)
{
    uint8_t *b = read_bytes(rr);
    size_t pos = 0;
    int64_t expect = rr->first_offset;
    while (pos < (size_t)rr->length) {
        struct batch_header h;
        assert_int_equal(batch_validate(b + pos, (size_t)rr->length - pos, 0, &h), 0);
        assert_int_equal(h.base_offset, expect);
        assert_int_equal(h.partition_leader_epoch, epoch);
        expect = batch_last_offset(&h) + 1;
        pos += (size_t)batch_total_size(&h);
    }
    assert_int_equal(pos, rr->length);
    assert_int_equal(expect, rr->next_offset);
    free(b);
}

/* Read everything from @from to the log end with @max_bytes per read; the number
 * of reads. */
static int read_all(struct plog *log, int64_t from, int32_t max_bytes)
{
    int64_t off = from;
    int reads = 0;
    while (off < plog_log_end_offset(log)) {
        struct plog_read_result rr;
        assert_int_equal(plog_read(log, off, INT64_MAX, max_bytes, true, &rr), 0);
        assert_true(rr.length > 0);
        assert_true(rr.first_offset <= off);
        assert_true(rr.next_offset > off);
        check_result(&rr, 7);
        off = rr.next_offset;
        seg_file_unref(rr.file);
        reads++;
    }
    assert_int_equal(off, plog_log_end_offset(log));
    return reads;
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    size_t m = strlen(suffix);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > m && strcmp(de->d_name + l - m, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- append and read -------------------------------------------------------- */

static void test_plog_append_read_round_trip_many_batches(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 64 * 1024;
    open_log(fx);
    int64_t expect = 0;
    for (int i = 0; i < 300; i++) {
        struct plog_append_info info;
        int nrec = 1 + i % 5;
        assert_int_equal(append_batch_at(fx->log, nrec, TS0 + i * 10, 50 + i % 300, TS0, &info), 0);
        assert_int_equal(info.first_offset, expect);
        assert_int_equal(info.last_offset, expect + nrec - 1);
        assert_int_equal(info.batches, 1);
        assert_int_equal(info.records, nrec);
        assert_int_equal(info.max_timestamp, TS0 + i * 10 + nrec - 1);
        expect += nrec;
    }
    assert_int_equal(plog_log_end_offset(fx->log), expect);
    assert_true(plog_segment_count(fx->log) > 1);
    read_all(fx->log, 0, 4096);
    read_all(fx->log, 0, 1);
    read_all(fx->log, 0, INT32_MAX);
    /* Reads from every offset land on the batch holding it. */
    for (int64_t o = 0; o < expect; o += 7) {
        struct plog_read_result rr;
        assert_int_equal(plog_read(fx->log, o, INT64_MAX, 1, true, &rr), 0);
        assert_true(rr.first_offset <= o && o < rr.next_offset);
        seg_file_unref(rr.file);
    }
}

static void test_plog_append_several_batches_in_one_call(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, 3, TS0, 10);
    make_batch(&w, 2, TS0 + 5, 10);
    make_batch(&w, 4, TS0 + 1, 10);
    struct plog_append_info info;
    assert_int_equal(plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 7, TS0, &info),
                     0);
    assert_int_equal(info.first_offset, 0);
    assert_int_equal(info.last_offset, 8);
    assert_int_equal(info.batches, 3);
    assert_int_equal(info.records, 9);
    assert_int_equal(info.max_timestamp, TS0 + 6);
    /* The caller's buffer was stamped in place. */
    struct batch_header h;
    assert_int_equal(batch_parse_header(w.data, w.len, &h), 0);
    assert_int_equal(h.partition_leader_epoch, 7);
    buf_writer_deinit(&w);
    assert_int_equal(read_all(fx->log, 0, INT32_MAX), 1);
}

static void test_plog_read_from_middle_of_batch_returns_that_batch(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    append_batch(fx->log, 5, TS0, 10); /* 0..4 */
    append_batch(fx->log, 5, TS0, 10); /* 5..9 */
    append_batch(fx->log, 5, TS0, 10); /* 10..14 */
    struct plog_read_result rr;
    assert_int_equal(plog_read(fx->log, 7, INT64_MAX, 1, true, &rr), 0);
    assert_int_equal(rr.first_offset, 5);
    assert_int_equal(rr.next_offset, 10);
    check_result(&rr, 7);
    seg_file_unref(rr.file);
}

static void test_plog_read_max_bytes_whole_batches_and_min_one(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    append_batch(fx->log, 1, TS0, 100);
    int64_t one = plog_size_bytes(fx->log);
    append_batch(fx->log, 1, TS0, 100);
    append_batch(fx->log, 1, TS0, 100);

    struct plog_read_result rr;
    /* Room for two and a half batches: two whole ones. */
    assert_int_equal(plog_read(fx->log, 0, INT64_MAX, (int32_t)(one * 5 / 2), false, &rr), 0);
    assert_int_equal(rr.length, 2 * one);
    assert_int_equal(rr.next_offset, 2);
    seg_file_unref(rr.file);
    /* Less than one batch: nothing, unless min_one. */
    assert_int_equal(plog_read(fx->log, 0, INT64_MAX, (int32_t)one - 1, false, &rr), 0);
    assert_int_equal(rr.length, 0);
    assert_null(rr.file);
    assert_int_equal(plog_read(fx->log, 0, INT64_MAX, (int32_t)one - 1, true, &rr), 0);
    assert_int_equal(rr.length, one);
    assert_int_equal(rr.next_offset, 1);
    seg_file_unref(rr.file);
}

static void test_plog_read_honours_max_offset(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    for (int i = 0; i < 5; i++)
        append_batch(fx->log, 2, TS0, 10); /* batches at 0,2,4,6,8 */
    struct plog_read_result rr;
    assert_int_equal(plog_read(fx->log, 0, 6, INT32_MAX, true, &rr), 0);
    assert_int_equal(rr.first_offset, 0);
    assert_int_equal(rr.next_offset, 6);
    seg_file_unref(rr.file);
    /* At or above the high watermark: empty. */
    assert_int_equal(plog_read(fx->log, 6, 6, INT32_MAX, true, &rr), 0);
    assert_int_equal(rr.length, 0);
    assert_null(rr.file);
}

static void test_plog_read_at_log_end_is_empty_and_out_of_range_fails(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    struct plog_read_result rr;
    assert_int_equal(plog_read(fx->log, 0, INT64_MAX, 1000, true, &rr), 0);
    assert_int_equal(rr.length, 0);
    append_batch(fx->log, 3, TS0, 10);
    assert_int_equal(plog_read(fx->log, 3, INT64_MAX, 1000, true, &rr), 0);
    assert_int_equal(rr.length, 0);
    assert_null(rr.file);
    assert_int_equal(rr.next_offset, 3);
    assert_int_equal(plog_read(fx->log, 4, INT64_MAX, 1000, true, &rr), -ERANGE);
    assert_int_equal(plog_read(fx->log, -1, INT64_MAX, 1000, true, &rr), -ERANGE);
    plog_set_high_watermark(fx->log, 3);
    assert_int_equal(plog_raise_start_offset(fx->log, 2), 0);
    assert_int_equal(plog_read(fx->log, 1, INT64_MAX, 1000, true, &rr), -ERANGE);
    /* The batch holding the start offset is returned whole. */
    assert_int_equal(plog_read(fx->log, 2, INT64_MAX, 1000, true, &rr), 0);
    assert_int_equal(rr.first_offset, 0);
    seg_file_unref(rr.file);
}

static void test_plog_sequential_reads_follow_appends(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 4096;
    open_log(fx);
    int64_t off = 0;
    for (int i = 0; i < 100; i++) {
        append_batch(fx->log, 2, TS0, 200);
        struct plog_read_result rr;
        assert_int_equal(plog_read(fx->log, off, INT64_MAX, INT32_MAX, true, &rr), 0);
        assert_int_equal(rr.first_offset, off);
        assert_int_equal(rr.next_offset, off + 2);
        check_result(&rr, 7);
        seg_file_unref(rr.file);
        off = rr.next_offset;
    }
    assert_true(plog_segment_count(fx->log) > 5);
}

/* ---- rolling ------------------------------------------------------------------ */

static void test_plog_rolls_by_size(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 1000;
    open_log(fx);
    struct plog_append_info info;
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 400, TS0, &info), 0);
    assert_false(info.rolled);
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 400, TS0, &info), 0);
    assert_false(info.rolled);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 400, TS0, &info), 0);
    assert_true(info.rolled);
    assert_int_equal(plog_segment_count(fx->log), 2);
    assert_int_equal(plog_active_segment_base(fx->log), 2);
    assert_int_equal(count_files(fx->dir, ".log"), 2);
    assert_int_equal(count_files(fx->dir, ".index"), 2);
    assert_int_equal(count_files(fx->dir, ".timeindex"), 2);
    /* A batch larger than a segment is refused. */
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 1200, TS0, &info), -EMSGSIZE);
    assert_int_equal(plog_log_end_offset(fx->log), 3);
}

static void test_plog_rolls_by_age(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.roll_ms = HOUR_MS;
    open_log(fx);
    struct plog_append_info info;
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 10, TS0, &info), 0);
    assert_int_equal(append_batch_at(fx->log, 1, TS0 + HOUR_MS, 10, TS0 + HOUR_MS, &info), 0);
    assert_false(info.rolled);
    assert_int_equal(append_batch_at(fx->log, 1, TS0 + HOUR_MS + 1, 10, TS0 + HOUR_MS + 1, &info),
                     0);
    assert_true(info.rolled);
    assert_int_equal(plog_active_segment_base(fx->log), 2);
}

static void test_plog_rolls_by_age_without_timestamps_uses_creation_time(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.roll_ms = HOUR_MS;
    open_log(fx);
    struct plog_append_info info;
    assert_int_equal(append_batch_at(fx->log, 1, -1, 10, TS0, &info), 0);
    assert_int_equal(append_batch_at(fx->log, 1, -1, 10, TS0 + HOUR_MS, &info), 0);
    assert_false(info.rolled);
    assert_int_equal(append_batch_at(fx->log, 1, -1, 10, TS0 + HOUR_MS + 1, &info), 0);
    assert_true(info.rolled);
}

static void test_plog_rolls_when_index_full(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 1;
    fx->cfg.max_index_bytes = 4 * 12; /* 4 time entries, 6 offset entries */
    open_log(fx);
    for (int i = 0; i < 10; i++)
        append_batch(fx->log, 1, TS0 + i, 10);
    assert_int_equal(plog_segment_count(fx->log), 3);
    assert_int_equal(plog_active_segment_base(fx->log), 8);
    read_all(fx->log, 0, 1);
}

static void test_plog_reads_across_segments(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    for (int i = 0; i < 40; i++)
        append_batch(fx->log, 3, TS0, 100);
    assert_true(plog_segment_count(fx->log) >= 10);
    /* One read never spans two segments, and the next read continues. */
    int reads = read_all(fx->log, 0, INT32_MAX);
    assert_int_equal(reads, plog_segment_count(fx->log));
}

static void test_plog_offset_index_lookups_on_closed_segments(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 50000;
    fx->cfg.index_interval_bytes = 300;
    open_log(fx);
    for (int i = 0; i < 1000; i++)
        append_batch(fx->log, 1 + i % 3, TS0, 60 + i % 50);
    int64_t leo = plog_log_end_offset(fx->log);
    plog_close(fx->log);
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, leo, -1, TS0, &fx->log, NULL), 0);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    for (int64_t o = 0; o < leo; o++) {
        struct plog_read_result rr;
        assert_int_equal(plog_read(fx->log, o, INT64_MAX, 1, true, &rr), 0);
        assert_true(rr.first_offset <= o && o < rr.next_offset);
        assert_true(rr.next_offset - rr.first_offset <= 3);
        seg_file_unref(rr.file);
    }
}

/* ---- lookups by time ---------------------------------------------------------- */

static void test_plog_offset_for_timestamp(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 3000;
    fx->cfg.index_interval_bytes = 200;
    open_log(fx);
    /* batch i: 4 records, timestamps TS0 + 10 i + {0,1,2,3} */
    for (int i = 0; i < 100; i++)
        append_batch(fx->log, 4, TS0 + 10 * i, 50);
    assert_true(plog_segment_count(fx->log) > 3);
    int64_t off, ts;
    /* Exact record inside a batch. */
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 10 * 37 + 2, &off, &ts), 0);
    assert_int_equal(off, 37 * 4 + 2);
    assert_int_equal(ts, TS0 + 10 * 37 + 2);
    /* Between batches: the first record of the next one. */
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 10 * 50 + 5, &off, &ts), 0);
    assert_int_equal(off, 51 * 4);
    assert_int_equal(ts, TS0 + 510);
    /* Earlier than everything: the first record. */
    assert_int_equal(plog_offset_for_timestamp(fx->log, 0, &off, &ts), 0);
    assert_int_equal(off, 0);
    assert_int_equal(ts, TS0);
    /* Later than everything. */
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 10000, &off, &ts), -ENOENT);
    /* Every timestamp after a reopen (closed segments use their time indexes). */
    int64_t leo = plog_log_end_offset(fx->log);
    plog_close(fx->log);
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, leo, -1, TS0, &fx->log, NULL), 0);
    for (int i = 0; i < 100; i++) {
        for (int j = 0; j < 4; j++) {
            assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 10 * i + j, &off, &ts), 0);
            assert_int_equal(off, i * 4 + j);
            assert_int_equal(ts, TS0 + 10 * i + j);
        }
    }
}

static void test_plog_offset_for_timestamp_out_of_order_timestamps(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 1;
    open_log(fx);
    append_batch(fx->log, 1, TS0 + 100, 10); /* 0 */
    append_batch(fx->log, 1, TS0 + 50, 10);  /* 1 */
    append_batch(fx->log, 1, TS0 + 300, 10); /* 2 */
    append_batch(fx->log, 1, TS0 + 200, 10); /* 3 */
    int64_t off, ts;
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 60, &off, &ts), 0);
    assert_int_equal(off, 0);
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 150, &off, &ts), 0);
    assert_int_equal(off, 2);
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 250, &off, &ts), 0);
    assert_int_equal(off, 2);
    assert_int_equal(ts, TS0 + 300);
}

static void test_plog_offset_for_timestamp_ignores_bogus_record_offset_delta(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    append_batch(fx->log, 2, TS0, 10); /* 0..1 */
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, 1, TS0 + 100, 10);
    /* Record 0's offsetDelta (byte 64: after length, attributes, timestampDelta) set
     * to 5 although the batch holds one offset; CRC recomputed. */
    assert_int_equal(w.data[64], 0);
    w.data[64] = 10; /* zigzag 5 */
    buf_store_be32(w.data + BATCH_OFF_CRC,
                   crc32c_update(0, w.data + BATCH_OFF_ATTRIBUTES, w.len - BATCH_OFF_ATTRIBUTES));
    assert_int_equal(batch_validate(w.data, w.len, 0, NULL), 0);
    assert_int_equal(plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 7, TS0, NULL),
                     0);
    buf_writer_deinit(&w);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 50, &off, &ts), 0);
    assert_int_equal(off, 2);
    assert_int_equal(ts, TS0 + 100);
}

/* ---- truncation ----------------------------------------------------------------- */

static void check_append_continues(struct fixture *fx, int64_t leo)
{
    struct plog_append_info info;
    assert_int_equal(append_batch_at(fx->log, 2, TS0 + 999, 10, TS0, &info), 0);
    assert_int_equal(info.first_offset, leo);
    assert_int_equal(plog_log_end_offset(fx->log), leo + 2);
    read_all(fx->log, plog_log_start_offset(fx->log), 333);
}

static void test_plog_truncate_mid_segment(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 100;
    open_log(fx);
    for (int i = 0; i < 50; i++)
        append_batch(fx->log, 2, TS0 + i, 40);
    int64_t size_before = plog_size_bytes(fx->log);
    int64_t leo;
    assert_int_equal(plog_truncate_to(fx->log, 60, &leo), 0);
    assert_int_equal(leo, 60);
    assert_int_equal(plog_log_end_offset(fx->log), 60);
    assert_int_equal(plog_size_bytes(fx->log), size_before * 60 / 100);
    struct plog_read_result rr;
    assert_int_equal(plog_read(fx->log, 61, INT64_MAX, 1000, true, &rr), -ERANGE);
    /* The max timestamp went with the cut batches. */
    int64_t off, ts;
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 31, &off, &ts), -ENOENT);
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 30, &off, &ts), 0);
    assert_int_equal(off, 59);
    check_append_continues(fx, 60);
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 31, &off, &ts), 0);
    assert_int_equal(off, 60);
}

static void test_plog_truncate_mid_batch_removes_the_batch(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    for (int i = 0; i < 5; i++)
        append_batch(fx->log, 4, TS0, 10); /* 0,4,8,12,16 */
    int64_t leo;
    assert_int_equal(plog_truncate_to(fx->log, 10, &leo), 0);
    assert_int_equal(leo, 8);
    check_append_continues(fx, 8);
}

static void test_plog_truncate_at_segment_boundary_and_across_segments(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    for (int i = 0; i < 20; i++)
        append_batch(fx->log, 1, TS0, 300); /* three batches per segment */
    assert_true(plog_segment_count(fx->log) >= 6);
    int64_t leo;
    assert_int_equal(plog_truncate_to(fx->log, 9, &leo), 0);
    assert_int_equal(leo, 9);
    assert_int_equal(plog_active_segment_base(fx->log), 9);
    assert_int_equal(plog_segment_count(fx->log), 4);
    assert_int_equal(count_files(fx->dir, ".log"), 4);
    check_append_continues(fx, 9);
    /* Into an earlier segment: later ones are deleted. */
    assert_int_equal(plog_truncate_to(fx->log, 4, &leo), 0);
    assert_int_equal(leo, 4);
    assert_int_equal(plog_segment_count(fx->log), 2);
    assert_int_equal(count_files(fx->dir, ".log"), 2);
    check_append_continues(fx, 4);
    /* At or past the end: nothing happens. */
    assert_int_equal(plog_truncate_to(fx->log, 100, &leo), 0);
    assert_int_equal(leo, 6);
}

static void test_plog_truncate_lowers_recovery_point(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    for (int i = 0; i < 10; i++)
        append_batch(fx->log, 1, TS0, 10);
    assert_int_equal(plog_flush_sync(fx->log), 0);
    assert_int_equal(plog_recovery_point(fx->log), 10);
    assert_int_equal(plog_truncate_to(fx->log, 4, NULL), 0);
    assert_int_equal(plog_recovery_point(fx->log), 4);
}

static void test_plog_truncate_fully(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    for (int i = 0; i < 10; i++)
        append_batch(fx->log, 1, TS0, 300);
    assert_int_equal(plog_truncate_fully(fx->log, 500), 0);
    assert_int_equal(plog_log_start_offset(fx->log), 500);
    assert_int_equal(plog_log_end_offset(fx->log), 500);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(plog_size_bytes(fx->log), 0);
    assert_int_equal(count_files(fx->dir, ".log"), 1);
    struct plog_read_result rr;
    assert_int_equal(plog_read(fx->log, 3, INT64_MAX, 1000, true, &rr), -ERANGE);
    check_append_continues(fx, 500);
    /* It survives a reopen. */
    plog_close(fx->log);
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, 500, TS0, &fx->log, NULL), 0);
    assert_int_equal(plog_log_start_offset(fx->log), 500);
    assert_int_equal(plog_log_end_offset(fx->log), 502);
}

/* ---- start offset and retention --------------------------------------------------- */

static void free_paths_and_unlink(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_non_null(strstr(paths[i], ".deleted"));
        assert_int_equal(unlink(paths[i]), 0);
    }
    plog_paths_free(paths, n);
}

static void test_plog_raise_start_offset_then_retention_deletes_below(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    for (int i = 0; i < 12; i++)
        append_batch(fx->log, 1, TS0, 300); /* segments at 0, 3, 6, 9 */
    assert_int_equal(plog_segment_count(fx->log), 4);
    plog_set_high_watermark(fx->log, 12);
    assert_int_equal(plog_raise_start_offset(fx->log, 13), -ERANGE);
    assert_int_equal(plog_raise_start_offset(fx->log, 7), 0);
    assert_int_equal(plog_raise_start_offset(fx->log, 2), 0); /* lower: no-op */
    assert_int_equal(plog_log_start_offset(fx->log), 7);
    char **paths;
    size_t n;
    assert_int_equal(plog_enforce_retention(fx->log, TS0, &paths, &n), 0);
    assert_int_equal(n, 6); /* two segments, three files each */
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 2);
    assert_int_equal(plog_log_start_offset(fx->log), 7);
    read_all(fx->log, 7, 1000);
    /* Raising to the end and enforcing leaves one empty active segment. */
    assert_int_equal(plog_raise_start_offset(fx->log, 12), 0);
    assert_int_equal(plog_enforce_retention(fx->log, TS0, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(plog_active_segment_base(fx->log), 12);
    assert_int_equal(plog_size_bytes(fx->log), 0);
    check_append_continues(fx, 12);
}

/* DeleteRecords never moves the log start past the high watermark, and the HW
 * stays within [log start, log end] through truncation. */
static void test_plog_raise_start_offset_bounded_by_hw(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    for (int i = 0; i < 10; i++)
        append_batch(fx->log, 1, TS0, 100);
    assert_int_equal(plog_high_watermark(fx->log), 0); /* unknown after open */
    assert_int_equal(plog_raise_start_offset(fx->log, 1), -ERANGE);
    plog_set_high_watermark(fx->log, 4);
    assert_int_equal(plog_raise_start_offset(fx->log, 5), -ERANGE);
    assert_int_equal(plog_log_start_offset(fx->log), 0);
    assert_int_equal(plog_raise_start_offset(fx->log, 4), 0);
    assert_int_equal(plog_log_start_offset(fx->log), 4);
    /* Clamped to the log end and to the log start. */
    plog_set_high_watermark(fx->log, 50);
    assert_int_equal(plog_high_watermark(fx->log), 10);
    plog_set_high_watermark(fx->log, 2);
    assert_int_equal(plog_high_watermark(fx->log), 4);
    plog_set_high_watermark(fx->log, 9);
    assert_int_equal(plog_truncate_to(fx->log, 7, NULL), 0);
    assert_int_equal(plog_high_watermark(fx->log), 7);
    assert_int_equal(plog_truncate_fully(fx->log, 20), 0);
    assert_int_equal(plog_high_watermark(fx->log), 20);
}

/* Retention with every segment expired deletes only segments wholly below the
 * HW, whatever the policy (time, size, log start). */
static void test_plog_retention_never_deletes_at_or_above_hw(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    fx->cfg.retention_ms = 10 * HOUR_MS;
    fx->cfg.retention_bytes = 0;
    open_log(fx);
    for (int i = 0; i < 12; i++)
        append_batch(fx->log, 1, TS0, 300); /* segments at 0, 3, 6, 9 */
    assert_int_equal(plog_segment_count(fx->log), 4);
    char **paths;
    size_t n;
    /* The HW is the first offset of segment 6: segments 0 and 3 may go. */
    plog_set_high_watermark(fx->log, 6);
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 100 * HOUR_MS, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 2);
    assert_int_equal(plog_log_start_offset(fx->log), 6);
    /* The HW inside segment 6 (offset 8 is its last): it stays. */
    plog_set_high_watermark(fx->log, 8);
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 100 * HOUR_MS, &paths, &n), 0);
    assert_int_equal(n, 0);
    plog_paths_free(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 2);
    read_all(fx->log, 6, 1000);
    /* The HW at the log end: all goes, an empty active segment remains. */
    plog_set_high_watermark(fx->log, 12);
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 100 * HOUR_MS, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(plog_log_start_offset(fx->log), 12);
    check_append_continues(fx, 12);
}

static void test_plog_retention_by_time(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    fx->cfg.retention_ms = 10 * HOUR_MS;
    open_log(fx);
    /* Segments of three batches: hours 0-2, 3-5, 6-8, 9-10 */
    for (int i = 0; i < 11; i++)
        assert_int_equal(
            append_batch_at(fx->log, 1, TS0 + i * HOUR_MS, 300, TS0 + i * HOUR_MS, NULL), 0);
    assert_int_equal(plog_segment_count(fx->log), 4);
    plog_set_high_watermark(fx->log, 11); /* everything committed */
    char **paths;
    size_t n;
    /* At hour 15 the first segment (max hour 2) is older than 10 h, hour 5 is not. */
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 15 * HOUR_MS, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 3);
    assert_int_equal(plog_log_start_offset(fx->log), 3);
    /* Across a reopen the max timestamps come from the time indexes. */
    plog_close(fx->log);
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 11, -1, TS0, &fx->log, NULL), 0);
    assert_int_equal(plog_log_start_offset(fx->log), 3);
    assert_int_equal(plog_high_watermark(fx->log), 3); /* unknown after open */
    plog_set_high_watermark(fx->log, 11);
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 18 * HOUR_MS + 1, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_log_start_offset(fx->log), 9);
    /* Everything expired: a new empty active segment at the log end. */
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 100 * HOUR_MS, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(plog_active_segment_base(fx->log), 11);
    assert_int_equal(plog_log_start_offset(fx->log), 11);
    assert_int_equal(plog_log_end_offset(fx->log), 11);
    assert_int_equal(count_files(fx->dir, ".log"), 1);
    /* An empty active segment is never expired. */
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 200 * HOUR_MS, &paths, &n), 0);
    assert_int_equal(n, 0);
    check_append_continues(fx, 11);
}

static void test_plog_retention_by_bytes(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    for (int i = 0; i < 12; i++)
        append_batch(fx->log, 1, TS0, 300);
    int64_t seg_bytes = plog_size_bytes(fx->log) / 4;
    plog_set_high_watermark(fx->log, 12);
    fx->cfg.retention_bytes = seg_bytes * 2 + 10;
    plog_set_config(fx->log, &fx->cfg);
    char **paths;
    size_t n;
    assert_int_equal(plog_enforce_retention(fx->log, TS0, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    /* Dropping a third segment would go below the limit. */
    assert_int_equal(plog_segment_count(fx->log), 3);
    assert_int_equal(plog_size_bytes(fx->log), 3 * seg_bytes);
    assert_int_equal(plog_log_start_offset(fx->log), 3);
    /* The active segment is never deleted for size. */
    fx->cfg.retention_bytes = 0;
    plog_set_config(fx->log, &fx->cfg);
    assert_int_equal(plog_enforce_retention(fx->log, TS0, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(plog_log_start_offset(fx->log), 9);
}

/* ---- topic config changes (plog_set_config through storage_config) ------------- */

static void set_override(struct fixture *fx, const char *key, const char *value)
{
    struct plog_config cfg = *plog_get_config(fx->log);
    assert_int_equal(storage_config_topic_override(&cfg, key, value), 1);
    plog_set_config(fx->log, &cfg);
}

static void test_plog_lowered_segment_bytes_rolls_at_new_size(void **state)
{
    struct fixture *fx = *state;
    open_log(fx); /* 1 GiB segments */
    struct plog_append_info info;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(append_batch_at(fx->log, 1, TS0, 400, TS0, &info), 0);
        assert_false(info.rolled);
    }
    assert_int_equal(plog_segment_count(fx->log), 1);
    /* segment.bytes=1000: the active segment is past it, the next append rolls,
     * and from then on every segment holds two 469-byte batches. */
    set_override(fx, "segment.bytes", "1000");
    assert_int_equal(plog_get_config(fx->log)->segment_bytes, 1000);
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 400, TS0, &info), 0);
    assert_true(info.rolled);
    assert_int_equal(plog_active_segment_base(fx->log), 3);
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 400, TS0, &info), 0);
    assert_false(info.rolled);
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 400, TS0, &info), 0);
    assert_true(info.rolled);
    assert_int_equal(plog_active_segment_base(fx->log), 5);
    assert_int_equal(count_files(fx->dir, ".log"), 3);
}

static void test_plog_retention_minus_one_keeps_what_the_default_deletes(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    fx->cfg.retention_ms = 10 * HOUR_MS; /* the "broker default" */
    open_log(fx);
    for (int i = 0; i < 7; i++)
        assert_int_equal(
            append_batch_at(fx->log, 1, TS0 + i * HOUR_MS, 300, TS0 + i * HOUR_MS, NULL), 0);
    assert_int_equal(plog_segment_count(fx->log), 3);
    plog_set_high_watermark(fx->log, 7); /* all committed: only the config decides */
    char **paths;
    size_t n;
    /* retention.ms=-1: a hundred hours later nothing goes. */
    set_override(fx, "retention.ms", "-1");
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 100 * HOUR_MS, &paths, &n), 0);
    assert_int_equal(n, 0);
    plog_paths_free(paths, 0);
    assert_int_equal(plog_segment_count(fx->log), 3);
    assert_int_equal(plog_log_start_offset(fx->log), 0);
    /* Back to 10 h: the same check deletes both closed segments. */
    set_override(fx, "retention.ms", "36000000");
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 100 * HOUR_MS, &paths, &n), 0);
    free_paths_and_unlink(paths, n);
    assert_int_equal(plog_log_start_offset(fx->log), 7);
}

static void test_plog_roll_jitter_rolls_before_segment_ms(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.roll_ms = HOUR_MS;
    open_log(fx);
    struct plog_append_info info;
    assert_int_equal(append_batch_at(fx->log, 1, TS0, 10, TS0, &info), 0);
    /* Without jitter a segment one hour old does not roll yet (see
     * test_plog_rolls_by_age); with up to an hour of jitter it does (unless the
     * per-segment jitter happens to be 0: one chance in 3.6 million). */
    set_override(fx, "segment.jitter.ms", "3600000");
    assert_int_equal(append_batch_at(fx->log, 1, TS0 + HOUR_MS, 10, TS0 + HOUR_MS, &info), 0);
    assert_true(info.rolled);
    /* Jitter 0 again: the new segment keeps the full hour. */
    set_override(fx, "segment.jitter.ms", "0");
    assert_int_equal(append_batch_at(fx->log, 1, TS0 + 2 * HOUR_MS, 10, TS0 + 2 * HOUR_MS, &info),
                     0);
    assert_false(info.rolled);
}

static void test_plog_raised_index_interval_writes_fewer_entries(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 0; /* an entry per batch */
    open_log(fx);
    for (int i = 0; i < 4; i++)
        append_batch(fx->log, 1, TS0, 100);
    set_override(fx, "index.interval.bytes", "1000000");
    for (int i = 0; i < 4; i++)
        append_batch(fx->log, 1, TS0, 100);
    plog_close(fx->log);
    fx->log = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/00000000000000000000.index", fx->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 4 * 8); /* the first four batches only */
}

static void test_plog_seg_file_readable_after_retention_deletes_segment(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    for (int i = 0; i < 6; i++)
        append_batch(fx->log, 1, TS0, 300);
    struct plog_read_result rr;
    assert_int_equal(plog_read(fx->log, 0, INT64_MAX, INT32_MAX, true, &rr), 0);
    plog_set_high_watermark(fx->log, 6);
    assert_int_equal(plog_raise_start_offset(fx->log, 3), 0);
    char **paths;
    size_t n;
    assert_int_equal(plog_enforce_retention(fx->log, TS0, &paths, &n), 0);
    free_paths_and_unlink(paths, n); /* the files are gone from the directory */
    assert_int_equal(count_files(fx->dir, ".log"), 1);
    check_result(&rr, 7); /* still readable through the held descriptor */
    seg_file_unref(rr.file);
}

/* ---- follower appends and leader epochs ----------------------------------------- */

/* Offsets must increase; gaps are accepted (a compacted leader's log has them). */
static void test_plog_follower_append_requires_increasing_offsets(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, 3, TS0, 10);
    size_t first = w.len;
    make_batch(&w, 2, TS0, 10);
    batch_set_base_offset(w.data, 0);
    batch_set_base_offset(w.data + first, 2); /* overlaps the first batch */
    assert_int_equal(plog_append(fx->log, w.data, w.len, 0, -1, TS0, NULL), -EINVAL);
    assert_int_equal(plog_log_end_offset(fx->log), 0);
    assert_int_equal(plog_size_bytes(fx->log), 0);
    batch_set_base_offset(w.data + first, 3);
    batch_set_base_offset(w.data, 1);
    assert_int_equal(plog_append(fx->log, w.data, w.len, 0, -1, TS0, NULL), -EINVAL);
    batch_set_base_offset(w.data, 0);
    batch_set_partition_leader_epoch(w.data, 7);
    batch_set_partition_leader_epoch(w.data + first, 7);
    struct plog_append_info info;
    assert_int_equal(plog_append(fx->log, w.data, w.len, 0, -1, TS0, &info), 0);
    assert_int_equal(info.first_offset, 0);
    assert_int_equal(info.last_offset, 4);
    assert_int_equal(plog_log_end_offset(fx->log), 5);
    buf_writer_deinit(&w);
    read_all(fx->log, 0, INT32_MAX);
}

static void test_plog_append_rejects_bad_framing(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, 3, TS0, 10);
    /* Cut short. */
    assert_int_equal(
        plog_append(fx->log, w.data, w.len - 1, PLOG_APPEND_ASSIGN_OFFSETS, 1, TS0, NULL), -EINVAL);
    /* Trailing bytes that are not a batch. */
    uint8_t *big = calloc(1, w.len + 70);
    assert_non_null(big);
    memcpy(big, w.data, w.len);
    assert_int_equal(
        plog_append(fx->log, big, w.len + 70, PLOG_APPEND_ASSIGN_OFFSETS, 1, TS0, NULL), -EINVAL);
    assert_int_equal(plog_append(fx->log, big, 0, PLOG_APPEND_ASSIGN_OFFSETS, 1, TS0, NULL),
                     -EINVAL);
    free(big);
    buf_writer_deinit(&w);
    assert_int_equal(plog_size_bytes(fx->log), 0);
}

static void test_plog_leader_epoch_stamping_keeps_crc_valid(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, 3, TS0, 10);
    batch_set_base_offset(w.data, 12345);
    assert_int_equal(plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 42, TS0, NULL),
                     0);
    buf_writer_deinit(&w);
    struct plog_read_result rr;
    assert_int_equal(plog_read(fx->log, 0, INT64_MAX, INT32_MAX, true, &rr), 0);
    uint8_t *b = read_bytes(&rr);
    struct batch_header h;
    assert_int_equal(batch_validate(b, (size_t)rr.length, BATCH_VALIDATE_EXACT_COUNT, &h), 0);
    assert_int_equal(h.base_offset, 0);
    assert_int_equal(h.partition_leader_epoch, 42);
    free(b);
    seg_file_unref(rr.file);
}

/* ---- failures and flushing ---------------------------------------------------------- */

static void test_plog_failed_write_leaves_log_unchanged(void **state)
{
    struct fixture *fx = *state;
    open_log(fx);
    for (int i = 0; i < 3; i++)
        append_batch(fx->log, 1, TS0, 100);
    int64_t size = plog_size_bytes(fx->log);

    /* A file size limit just past the current end: the next write lands partly. */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 50;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int r = append_batch_at(fx->log, 1, TS0, 500, TS0, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(r, -EFBIG);

    assert_int_equal(plog_size_bytes(fx->log), size);
    assert_int_equal(plog_log_end_offset(fx->log), 3);
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%020d.log", fx->dir, 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, size);
    check_append_continues(fx, 3);
    /* And it recovers as a clean log. */
    int64_t leo = plog_log_end_offset(fx->log);
    plog_close(fx->log);
    struct plog_recovery_info info;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, &info), 0);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    assert_int_equal(info.truncated_bytes, 0);
}

static void test_plog_flush_policy_and_recovery_point(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.flush_interval_messages = 5;
    fx->cfg.flush_interval_ms = 1000;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    assert_false(plog_flush_due(fx->log, TS0));
    assert_int_equal(append_batch_at(fx->log, 2, TS0, 10, TS0, NULL), 0);
    assert_int_equal(plog_unflushed_messages(fx->log), 2);
    assert_false(plog_flush_due(fx->log, TS0 + 999));
    assert_true(plog_flush_due(fx->log, TS0 + 1000));
    assert_int_equal(append_batch_at(fx->log, 3, TS0, 10, TS0, NULL), 0);
    assert_true(plog_flush_due(fx->log, TS0));

    struct plog_flush_job *job;
    assert_int_equal(plog_flush_prepare(fx->log, &job), 0);
    assert_non_null(job);
    /* Appends after prepare are not covered by this job. */
    assert_int_equal(append_batch_at(fx->log, 1, TS0 + 5, 10, TS0 + 5, NULL), 0);
    assert_int_equal(plog_flush_job_run(job), 0);
    plog_flush_job_finish(fx->log, job, 0);
    assert_int_equal(plog_recovery_point(fx->log), 5);
    assert_int_equal(plog_unflushed_messages(fx->log), 1);
    assert_false(plog_flush_due(fx->log, TS0 + 1004));
    assert_true(plog_flush_due(fx->log, TS0 + 1005));

    /* A failed job does not move the recovery point. */
    assert_int_equal(plog_flush_prepare(fx->log, &job), 0);
    plog_flush_job_finish(fx->log, job, -EIO);
    assert_int_equal(plog_recovery_point(fx->log), 5);

    /* Across rolls, sync flushes everything. */
    for (int i = 0; i < 10; i++)
        append_batch(fx->log, 1, TS0, 300);
    assert_int_equal(plog_flush_sync(fx->log), 0);
    assert_int_equal(plog_recovery_point(fx->log), plog_log_end_offset(fx->log));
    assert_int_equal(plog_unflushed_messages(fx->log), 0);
    assert_int_equal(plog_flush_prepare(fx->log, &job), 0);
    assert_null(job);
    /* A job may outlive its log. */
    append_batch(fx->log, 1, TS0, 10);
    assert_int_equal(plog_flush_prepare(fx->log, &job), 0);
    assert_non_null(job);
    plog_close(fx->log);
    fx->log = NULL;
    assert_int_equal(plog_flush_job_run(job), 0);
    plog_flush_job_finish(NULL, job, 0);
}

static void test_plog_flush_backlog_goes_in_bounded_jobs(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = SEG3;
    open_log(fx);
    for (int i = 0; i < 300; i++)
        append_batch(fx->log, 1, TS0, 300); /* 100 segments */
    assert_int_equal(plog_segment_count(fx->log), 100);
    struct plog_flush_job *job;
    assert_int_equal(plog_flush_prepare(fx->log, &job), 0);
    assert_int_equal(plog_flush_job_run(job), 0);
    plog_flush_job_finish(fx->log, job, 0);
    /* The first 32 segments (3 batches each). */
    assert_int_equal(plog_recovery_point(fx->log), 96);
    assert_int_equal(plog_unflushed_messages(fx->log), 300);
    assert_int_equal(plog_flush_sync(fx->log), 0);
    assert_int_equal(plog_recovery_point(fx->log), 300);
    assert_int_equal(plog_unflushed_messages(fx->log), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_plog_append_read_round_trip_many_batches),
        T(test_plog_append_several_batches_in_one_call),
        T(test_plog_read_from_middle_of_batch_returns_that_batch),
        T(test_plog_read_max_bytes_whole_batches_and_min_one),
        T(test_plog_read_honours_max_offset),
        T(test_plog_read_at_log_end_is_empty_and_out_of_range_fails),
        T(test_plog_sequential_reads_follow_appends),
        T(test_plog_rolls_by_size),
        T(test_plog_lowered_segment_bytes_rolls_at_new_size),
        T(test_plog_retention_minus_one_keeps_what_the_default_deletes),
        T(test_plog_roll_jitter_rolls_before_segment_ms),
        T(test_plog_raised_index_interval_writes_fewer_entries),
        T(test_plog_rolls_by_age),
        T(test_plog_rolls_by_age_without_timestamps_uses_creation_time),
        T(test_plog_rolls_when_index_full),
        T(test_plog_reads_across_segments),
        T(test_plog_offset_index_lookups_on_closed_segments),
        T(test_plog_offset_for_timestamp),
        T(test_plog_offset_for_timestamp_out_of_order_timestamps),
        T(test_plog_offset_for_timestamp_ignores_bogus_record_offset_delta),
        T(test_plog_truncate_mid_segment),
        T(test_plog_truncate_mid_batch_removes_the_batch),
        T(test_plog_truncate_at_segment_boundary_and_across_segments),
        T(test_plog_truncate_lowers_recovery_point),
        T(test_plog_truncate_fully),
        T(test_plog_raise_start_offset_then_retention_deletes_below),
        T(test_plog_raise_start_offset_bounded_by_hw),
        T(test_plog_retention_never_deletes_at_or_above_hw),
        T(test_plog_retention_by_time),
        T(test_plog_retention_by_bytes),
        T(test_plog_seg_file_readable_after_retention_deletes_segment),
        T(test_plog_follower_append_requires_increasing_offsets),
        T(test_plog_append_rejects_bad_framing),
        T(test_plog_leader_epoch_stamping_keeps_crc_valid),
        T(test_plog_failed_write_leaves_log_unchanged),
        T(test_plog_flush_policy_and_recovery_point),
        T(test_plog_flush_backlog_goes_in_bounded_jobs),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
