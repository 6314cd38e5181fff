/* Tests for broker/storage/recovery.c (plog_open): torn and corrupt tails,
 * corruption in earlier segments, missing and bad indexes, the recovery point,
 * clean reopens, leftover files, and the log start offset. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "broker/storage/plog.h"
#include "broker/storage/plog_internal.h"
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
    struct plog_recovery_info info;
    int64_t pos[512];  /* file position of batch i within its segment */
    int64_t base[512]; /* base offset of batch i */
    int64_t seg[512];  /* base offset of the segment holding batch i */
    int n;
};

static void make_batch(buf_writer *w, int nrec, int64_t ts, int vsize)
{
    static char val[4096];
    struct batch_builder b;
    memset(val, 'r', sizeof(val));
    assert_int_equal(batch_builder_begin(&b, w, ts), 0);
    for (int i = 0; i < nrec; i++)
        assert_int_equal(batch_builder_add(&b, ts + i, "k", 1, val, vsize, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
}

/* Append @n batches of 3 records, remembering where each one went. */
static void append_n(struct fixture *fx, int n, int vsize)
{
    for (int i = 0; i < n; i++) {
        buf_writer w;
        buf_writer_init(&w);
        make_batch(&w, 3, TS0 + fx->n * 10, vsize);
        struct plog_append_info info;
        int64_t active_before = plog_active_segment_base(fx->log);
        int64_t size_before = plog_size_bytes(fx->log);
        assert_int_equal(
            plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 1, TS0, &info), 0);
        int64_t seg = plog_active_segment_base(fx->log);
        /* position = bytes of the active segment before this batch */
        static int64_t seg_start_size;
        if (fx->n == 0 || seg != active_before)
            seg_start_size = size_before;
        fx->pos[fx->n] = size_before - seg_start_size;
        fx->base[fx->n] = info.first_offset;
        fx->seg[fx->n] = seg;
        fx->n++;
        buf_writer_deinit(&w);
    }
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->dir = testutil_mkdtemp("recovery");
    assert_int_equal(fdcache_new(32, &fx->fc), 0);
    plog_config_defaults(&fx->cfg);
    fx->cfg.index_interval_bytes = 256;
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

static void open_log(struct fixture *fx, int64_t rp)
{
    memset(&fx->info, 0x5a, sizeof(fx->info));
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, rp, -1, TS0, &fx->log, &fx->info), 0);
}

static void reopen(struct fixture *fx, int64_t rp)
{
    plog_close(fx->log);
    fx->log = NULL;
    open_log(fx, rp);
}

static void seg_file_path(struct fixture *fx, int64_t base, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%020lld%s", fx->dir, (long long)base, suffix);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    return st.st_size;
}

static void flip_byte(const char *path, int64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fsutil_pwrite_all(fd, data, len, 0), 0);
    close(fd);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *d;
    assert_int_equal(fsutil_read_file(path, 64 << 20, &d, len), 0);
    return d;
}

/* Every offset from the start to the end reads back as a valid batch holding it. */
static void check_all_readable(struct plog *log)
{
    int64_t off = plog_log_start_offset(log);
    while (off < plog_log_end_offset(log)) {
        struct plog_read_result rr;
        assert_int_equal(plog_read(log, off, INT64_MAX, 1, true, &rr), 0);
        assert_true(rr.first_offset <= off && off < rr.next_offset);
        uint8_t *b = malloc((size_t)rr.length);
        assert_non_null(b);
        assert_int_equal(fsutil_pread_all(seg_file_fd(rr.file), b, (size_t)rr.length, rr.position),
                         0);
        struct batch_header h;
        assert_int_equal(batch_validate(b, (size_t)rr.length, 0, &h), 0);
        assert_int_equal(h.base_offset, rr.first_offset);
        free(b);
        seg_file_unref(rr.file);
        off++;
    }
}

/* The log takes appends at its end and they read back. */
static void check_appendable(struct fixture *fx)
{
    int64_t leo = plog_log_end_offset(fx->log);
    buf_writer w;
    buf_writer_init(&w);
    make_batch(&w, 2, TS0, 10);
    struct plog_append_info info;
    assert_int_equal(plog_append(fx->log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 1, TS0, &info),
                     0);
    buf_writer_deinit(&w);
    assert_int_equal(info.first_offset, leo);
    check_all_readable(fx->log);
}

/* An empty segment at the recovery point (the active one after a roll: what
 * most logs have at a restart) is clean without reading it; a time index entry
 * it cannot hold still sends it through the scan that rebuilds its indexes. */
static void test_recovery_empty_segment_at_recovery_point(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 5, 100);
    assert_int_equal(plog_roll(fx->log, TS0), 0);
    assert_int_equal(plog_flush_sync(fx->log), 0);
    int64_t leo = plog_log_end_offset(fx->log);
    assert_int_equal(plog_active_segment_base(fx->log), leo);
    reopen(fx, leo);
    assert_int_equal(fx->info.segments, 2);
    assert_int_equal(fx->info.indexes_rebuilt, 0);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    plog_close(fx->log);
    fx->log = NULL;

    char path[4096];
    seg_file_path(fx, leo, ".timeindex", path, sizeof(path));
    uint8_t entry[12] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    write_file(path, entry, sizeof(entry));
    open_log(fx, leo);
    assert_int_equal(fx->info.indexes_rebuilt, 2);
    assert_int_equal(file_size(path), 0);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    check_appendable(fx);
}

/* ---- torn and corrupt tails ----------------------------------------------------- */

static void test_recovery_truncates_torn_tail(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 20, 100);
    reopen(fx, 0); /* reference: a clean close */
    char path[4096];
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    int64_t size = file_size(path);
    plog_close(fx->log);
    fx->log = NULL;
    assert_int_equal(truncate(path, size - 10), 0);

    open_log(fx, 0);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[19]);
    assert_int_equal(fx->info.truncated_at, fx->base[19]);
    assert_int_equal(fx->info.truncated_bytes, size - 10 - fx->pos[19]);
    assert_int_equal(fx->info.segments, 1);
    assert_int_equal(fx->info.segments_scanned, 1);
    assert_int_equal(fx->info.segments_deleted, 0);
    assert_int_equal(file_size(path), fx->pos[19]);
    check_appendable(fx);
}

static void test_recovery_truncates_header_only_tail(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 5, 100);
    char path[4096];
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    plog_close(fx->log);
    fx->log = NULL;
    /* A tail of zeros, as a crash after the size grew but before the data landed. */
    int64_t size = file_size(path);
    assert_int_equal(truncate(path, size + 4096), 0);
    open_log(fx, 0);
    assert_int_equal(plog_log_end_offset(fx->log), 15);
    assert_int_equal(fx->info.truncated_bytes, 4096);
    assert_int_equal(fx->info.truncated_at, 15);
    check_appendable(fx);
}

static void test_recovery_cuts_at_flipped_byte_in_last_batch(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 10, 100);
    char path[4096];
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    plog_close(fx->log);
    fx->log = NULL;
    flip_byte(path, fx->pos[9] + 80); /* inside the records: only the CRC can tell */
    open_log(fx, 0);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[9]);
    assert_int_equal(fx->info.truncated_at, fx->base[9]);
    check_appendable(fx);
}

static void test_recovery_cut_in_earlier_segment_deletes_later_segments(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 2000;
    open_log(fx, 0);
    append_n(fx, 40, 100);
    int32_t nsegs = plog_segment_count(fx->log);
    assert_true(nsegs >= 5);
    /* A batch in the middle of the second segment. */
    int victim = -1;
    for (int i = 0; i < fx->n; i++) {
        if (fx->seg[i] == fx->seg[0])
            continue;
        if (victim < 0)
            victim = i + 1;
    }
    assert_true(fx->seg[victim] != fx->seg[0] && fx->pos[victim] > 0);
    char path[4096];
    seg_file_path(fx, fx->seg[victim], ".log", path, sizeof(path));
    plog_close(fx->log);
    fx->log = NULL;
    flip_byte(path, fx->pos[victim] + 70);

    open_log(fx, 0);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[victim]);
    assert_int_equal(plog_segment_count(fx->log), 2);
    assert_int_equal(fx->info.segments, nsegs);
    assert_int_equal(fx->info.segments_deleted, nsegs - 2);
    assert_int_equal(fx->info.truncated_at, fx->base[victim]);
    int logs = 0;
    DIR *d = opendir(fx->dir);
    struct dirent *de;
    while ((de = readdir(d)))
        logs += strstr(de->d_name, ".log") != NULL;
    closedir(d);
    assert_int_equal(logs, 2);
    check_appendable(fx);
}

static void test_recovery_rejects_offsets_going_backwards(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 6, 50);
    char path[4096];
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    plog_close(fx->log);
    fx->log = NULL;
    /* Batch 4 claims the offsets of batch 1 (base offset is outside the CRC). */
    int fd = open(path, O_RDWR);
    uint8_t be[8];
    buf_store_be64(be, (uint64_t)fx->base[1]);
    assert_int_equal(pwrite(fd, be, 8, fx->pos[4]), 8);
    close(fd);
    open_log(fx, 0);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[4]);
    check_appendable(fx);
}

static void test_recovery_rejects_offsets_that_overflow(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 4, 50);
    char path[4096];
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    plog_close(fx->log);
    fx->log = NULL;
    /* Batch 3 (three offsets) claims to start at INT64_MAX - 1. */
    int fd = open(path, O_RDWR);
    uint8_t be[8];
    buf_store_be64(be, (uint64_t)(INT64_MAX - 1));
    assert_int_equal(pwrite(fd, be, 8, fx->pos[3]), 8);
    close(fd);
    open_log(fx, 0);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[3]);
    check_appendable(fx);
}

/* ---- indexes ---------------------------------------------------------------------- */

static void test_recovery_rebuilds_deleted_index_identically(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 8000;
    open_log(fx, 0);
    append_n(fx, 60, 100);
    assert_true(plog_segment_count(fx->log) >= 3);
    int64_t leo = plog_log_end_offset(fx->log);
    plog_close(fx->log);
    fx->log = NULL;

    char idx[4096], tidx[4096];
    seg_file_path(fx, fx->seg[0], ".index", idx, sizeof(idx));
    seg_file_path(fx, fx->seg[0], ".timeindex", tidx, sizeof(tidx));
    size_t idx_len, tidx_len;
    uint8_t *idx_orig = slurp(idx, &idx_len);
    uint8_t *tidx_orig = slurp(tidx, &tidx_len);
    assert_true(idx_len >= 3 * 8);
    assert_true(tidx_len >= 3 * 12);
    assert_int_equal(unlink(idx), 0);
    assert_int_equal(unlink(tidx), 0);

    open_log(fx, leo);
    assert_int_equal(fx->info.indexes_rebuilt, 2);
    assert_int_equal(fx->info.segments_scanned, 0);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    size_t l1, l2;
    uint8_t *idx_new = slurp(idx, &l1);
    uint8_t *tidx_new = slurp(tidx, &l2);
    assert_int_equal(l1, idx_len);
    assert_int_equal(l2, tidx_len);
    assert_memory_equal(idx_new, idx_orig, idx_len);
    assert_memory_equal(tidx_new, tidx_orig, tidx_len);
    free(idx_orig);
    free(tidx_orig);
    free(idx_new);
    free(tidx_new);
    check_all_readable(fx->log);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 10 * 7 + 1, &off, &ts), 0);
    assert_int_equal(off, fx->base[7] + 1);
}

static void test_recovery_rebuilds_garbage_index(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 8000;
    open_log(fx, 0);
    append_n(fx, 60, 100);
    int64_t leo = plog_log_end_offset(fx->log);
    plog_close(fx->log);
    fx->log = NULL;
    char idx[4096], tidx[4096];
    seg_file_path(fx, fx->seg[0], ".index", idx, sizeof(idx));
    seg_file_path(fx, fx->seg[0], ".timeindex", tidx, sizeof(tidx));
    uint8_t garbage[100];
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (uint8_t)(i * 37 + 11);
    write_file(idx, garbage, 99);  /* not whole entries */
    write_file(tidx, garbage, 96); /* whole entries, nonsense values */

    open_log(fx, leo);
    assert_int_equal(fx->info.indexes_rebuilt, 2);
    assert_int_equal(file_size(idx) % 8, 0);
    assert_true(file_size(idx) > 0);
    check_all_readable(fx->log);
    int64_t off, ts;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 10 * i + 2, &off, &ts), 0);
        assert_int_equal(off, fx->base[i] + 2);
    }
}

static void test_recovery_lookups_survive_plausible_wrong_index_entries(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 20000;
    fx->cfg.index_interval_bytes = 1;
    open_log(fx, 0);
    append_n(fx, 60, 100);
    int64_t leo = plog_log_end_offset(fx->log);
    plog_close(fx->log);
    fx->log = NULL;
    char idx[4096], tidx[4096];
    seg_file_path(fx, fx->seg[0], ".index", idx, sizeof(idx));
    seg_file_path(fx, fx->seg[0], ".timeindex", tidx, sizeof(tidx));
    /* Middle entries that keep the file's first and last entries sane but point
     * at the wrong places (positions off by 9 bytes, timestamps shifted). */
    int fd = open(idx, O_RDWR);
    for (int e = 3; e < 8; e++) {
        uint8_t ent[8];
        assert_int_equal(pread(fd, ent, 8, e * 8), 8);
        buf_store_be32(ent + 4, buf_load_be32(ent + 4) + 9);
        assert_int_equal(pwrite(fd, ent, 8, e * 8), 8);
    }
    close(fd);
    fd = open(tidx, O_RDWR);
    for (int e = 3; e < 8; e++) {
        uint8_t ent[12];
        assert_int_equal(pread(fd, ent, 12, e * 12), 12);
        buf_store_be32(ent + 8, buf_load_be32(ent + 8) + 1);
        assert_int_equal(pwrite(fd, ent, 12, e * 12), 12);
    }
    close(fd);

    open_log(fx, leo);
    assert_int_equal(fx->info.indexes_rebuilt, 0); /* the cheap checks pass */
    check_all_readable(fx->log);
    int64_t off, ts;
    for (int i = 0; i < 12; i++) {
        assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 10 * i + 1, &off, &ts), 0);
        assert_int_equal(off, fx->base[i] + 1);
    }
}

static void test_recovery_drops_index_entries_past_the_log(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.index_interval_bytes = 1;
    open_log(fx, 0);
    append_n(fx, 10, 100);
    plog_close(fx->log);
    fx->log = NULL;
    char path[4096];
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    /* The log lost its last three batches (never fsynced), the index did not. */
    assert_int_equal(truncate(path, fx->pos[7]), 0);
    open_log(fx, fx->base[7]);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[7]);
    assert_int_equal(fx->info.indexes_rebuilt, 2);
    check_appendable(fx);
    int64_t off, ts;
    /* Nothing is left of batches 7..9 (timestamps TS0 + 70..92). */
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 65, &off, &ts), -ENOENT);
    assert_int_equal(plog_offset_for_timestamp(fx->log, TS0 + 61, &off, &ts), 0);
    assert_int_equal(off, fx->base[6] + 1);
}

/* ---- recovery point ---------------------------------------------------------------- */

static void test_recovery_clean_reopen_scans_nothing(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 4000;
    open_log(fx, 0);
    append_n(fx, 50, 100);
    assert_int_equal(plog_flush_sync(fx->log), 0);
    int64_t leo = plog_log_end_offset(fx->log);
    assert_int_equal(plog_recovery_point(fx->log), leo);
    int32_t nsegs = plog_segment_count(fx->log);
    reopen(fx, leo);
    assert_int_equal(fx->info.segments, nsegs);
    assert_int_equal(fx->info.segments_scanned, 0);
    assert_int_equal(fx->info.indexes_rebuilt, 0);
    assert_int_equal(fx->info.truncated_bytes, 0);
    assert_int_equal(fx->info.truncated_at, -1);
    assert_int_equal(fx->info.segments_deleted, 0);
    assert_int_equal(fx->info.stray_files_removed, 0);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    assert_int_equal(plog_recovery_point(fx->log), leo);
    check_appendable(fx);
}

/* A corrupt byte below the recovery point is NOT detected: that data was fsynced
 * and recovery does not re-read it (see recovery.c). Above it, it is. */
static void test_recovery_does_not_scan_below_recovery_point(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 3000;
    open_log(fx, 0);
    append_n(fx, 30, 100);
    assert_true(plog_segment_count(fx->log) >= 3);
    int64_t leo = plog_log_end_offset(fx->log);
    char path[4096];
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    plog_close(fx->log);
    fx->log = NULL;
    flip_byte(path, fx->pos[1] + 80);

    open_log(fx, leo);
    assert_int_equal(plog_log_end_offset(fx->log), leo);
    assert_int_equal(fx->info.segments_scanned, 0);
    assert_int_equal(fx->info.truncated_at, -1);
    reopen(fx, 0);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[1]);
}

static void test_recovery_scans_only_from_recovery_point_segment(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 3000;
    open_log(fx, 0);
    append_n(fx, 30, 100);
    int32_t nsegs = plog_segment_count(fx->log);
    assert_true(nsegs >= 4);
    /* Recovery point inside the third segment. */
    int third = 0;
    for (int i = 0, segs = 0; i < fx->n; i++) {
        if (i > 0 && fx->seg[i] != fx->seg[i - 1])
            segs++;
        if (segs == 2 && fx->pos[i] > 0) {
            third = i;
            break;
        }
    }
    assert_true(third > 0);
    char path[4096];
    plog_close(fx->log);
    fx->log = NULL;
    /* Corrupt the first segment (below): not seen. Tear the active one's tail. */
    seg_file_path(fx, 0, ".log", path, sizeof(path));
    flip_byte(path, fx->pos[1] + 80);
    seg_file_path(fx, fx->seg[fx->n - 1], ".log", path, sizeof(path));
    assert_int_equal(truncate(path, file_size(path) - 1), 0);

    open_log(fx, fx->base[third]);
    assert_int_equal(fx->info.segments_scanned, nsegs - 2);
    assert_int_equal(plog_log_end_offset(fx->log), fx->base[fx->n - 1]);
    assert_int_equal(plog_recovery_point(fx->log), fx->base[third]);
    assert_int_equal(fx->info.truncated_at, fx->base[fx->n - 1]);
}

/* ---- directory contents ---------------------------------------------------------------- */

static void touch(struct fixture *fx, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
    write_file(path, "x", 1);
}

static bool exists(struct fixture *fx, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
    return access(path, F_OK) == 0;
}

static void test_recovery_removes_stray_files(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 3, 10);
    plog_close(fx->log);
    fx->log = NULL;
    touch(fx, "00000000000000000100.log.deleted");
    touch(fx, "00000000000000000100.index.deleted");
    touch(fx, "00000000000000000000.index.tmp");
    touch(fx, "00000000000000000050.log.cleaned");
    touch(fx, "00000000000000000050.log.swap");
    touch(fx, "00000000000000000999.index");
    touch(fx, "00000000000000000999.timeindex");
    touch(fx, "leader-epoch-checkpoint");
    touch(fx, "partition.metadata");
    open_log(fx, 0);
    assert_int_equal(fx->info.stray_files_removed, 7);
    assert_false(exists(fx, "00000000000000000100.log.deleted"));
    assert_false(exists(fx, "00000000000000000999.index"));
    assert_false(exists(fx, "00000000000000000050.log.swap"));
    assert_true(exists(fx, "leader-epoch-checkpoint"));
    assert_true(exists(fx, "partition.metadata"));
    assert_int_equal(plog_log_end_offset(fx->log), 9);
}

static void test_recovery_rejects_bad_segment_name(void **state)
{
    struct fixture *fx = *state;
    touch(fx, "12345.log");
    struct plog *log = NULL;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &log, NULL), -EBADMSG);
    assert_null(log);
    char path[4096];
    snprintf(path, sizeof(path), "%s/12345.log", fx->dir);
    unlink(path);
    touch(fx, "0000000000000000000x.index");
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &log, NULL), -EBADMSG);
}

static void test_recovery_empty_dir_starts_at_log_start_offset(void **state)
{
    struct fixture *fx = *state;
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/topic-3", fx->dir);
    assert_int_equal(plog_open(sub, &fx->cfg, fx->fc, 0, 100, TS0, &fx->log, &fx->info), 0);
    assert_int_equal(plog_log_start_offset(fx->log), 100);
    assert_int_equal(plog_log_end_offset(fx->log), 100);
    assert_int_equal(plog_active_segment_base(fx->log), 100);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(fx->info.segments, 0);
    char path[4200];
    snprintf(path, sizeof(path), "%s/00000000000000000100.log", sub);
    assert_int_equal(file_size(path), 0);
    plog_close(fx->log);
    fx->log = NULL;
    /* Without a start offset: offset 0. */
    char sub2[4096];
    snprintf(sub2, sizeof(sub2), "%s/topic-4", fx->dir);
    assert_int_equal(plog_open(sub2, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, NULL), 0);
    assert_int_equal(plog_log_end_offset(fx->log), 0);
}

static void test_recovery_log_start_past_end_starts_empty_there(void **state)
{
    struct fixture *fx = *state;
    open_log(fx, 0);
    append_n(fx, 4, 10); /* 0..11 */
    plog_close(fx->log);
    fx->log = NULL;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, 6, TS0, &fx->log, &fx->info), 0);
    assert_int_equal(plog_log_start_offset(fx->log), 6);
    assert_int_equal(plog_log_end_offset(fx->log), 12);
    plog_close(fx->log);
    fx->log = NULL;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, 40, TS0, &fx->log, &fx->info), 0);
    assert_int_equal(plog_log_start_offset(fx->log), 40);
    assert_int_equal(plog_log_end_offset(fx->log), 40);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(fx->info.segments_deleted, 1);
    check_appendable(fx);
}

static void test_recovery_keeps_max_timestamp_for_retention(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.segment_bytes = 1500;
    fx->cfg.retention_ms = 1000;
    open_log(fx, 0);
    append_n(fx, 12, 100);
    int64_t leo = plog_log_end_offset(fx->log);
    assert_int_equal(plog_flush_sync(fx->log), 0);
    reopen(fx, leo);
    plog_set_high_watermark(fx->log, leo);
    /* Batch i has timestamps TS0 + 10 i .. + 2; the active segment's max is known. */
    char **paths;
    size_t n;
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 10 * 11 + 2 + 1000, &paths, &n), 0);
    for (size_t i = 0; i < n; i++)
        unlink(paths[i]);
    plog_paths_free(paths, n);
    assert_int_equal(plog_active_segment_base(fx->log), fx->seg[11]);
    assert_int_equal(plog_segment_count(fx->log), 1);
    assert_int_equal(plog_enforce_retention(fx->log, TS0 + 10 * 11 + 2 + 1001, &paths, &n), 0);
    for (size_t i = 0; i < n; i++)
        unlink(paths[i]);
    plog_paths_free(paths, n);
    assert_int_equal(plog_active_segment_base(fx->log), leo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_recovery_truncates_torn_tail),
        T(test_recovery_truncates_header_only_tail),
        T(test_recovery_cuts_at_flipped_byte_in_last_batch),
        T(test_recovery_cut_in_earlier_segment_deletes_later_segments),
        T(test_recovery_rejects_offsets_going_backwards),
        T(test_recovery_rejects_offsets_that_overflow),
        T(test_recovery_rebuilds_deleted_index_identically),
        T(test_recovery_rebuilds_garbage_index),
        T(test_recovery_lookups_survive_plausible_wrong_index_entries),
        T(test_recovery_drops_index_entries_past_the_log),
        T(test_recovery_clean_reopen_scans_nothing),
        T(test_recovery_empty_segment_at_recovery_point),
        T(test_recovery_does_not_scan_below_recovery_point),
        T(test_recovery_scans_only_from_recovery_point_segment),
        T(test_recovery_removes_stray_files),
        T(test_recovery_rejects_bad_segment_name),
        T(test_recovery_empty_dir_starts_at_log_start_offset),
        T(test_recovery_log_start_past_end_starts_empty_there),
        T(test_recovery_keeps_max_timestamp_for_retention),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
