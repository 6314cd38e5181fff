/* Tests for broker/storage/cleaner.c on real files: the latest value per key,
 * offsets preserved, tombstones and delete.retention.ms, the active segment, the
 * high watermark and min.compaction.lag.ms, a full offset map, producer batches,
 * compressed batches, and recovery of a swap interrupted at each step. */
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

#include "broker/storage/cleaner.h"
#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "tests/unit/testutil.h"

#define TS0 INT64_C(1700000000000)
#define DEDUPE (1 << 20)

struct fixture {
    char *dir;
    struct fdcache *fc;
    struct plog *log;
    struct plog_config cfg;
};

/* One record as read back. */
struct rec {
    int64_t offset;
    char key[32];   /* "" for a null key */
    char value[32]; /* "<null>" for a tombstone */
};

struct recs {
    struct rec *r;
    size_t n;
    int batches;
    int compressed; /* batches with a codec */
};

/* ---- helpers ---------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->dir = testutil_mkdtemp("cleaner");
    assert_int_equal(fdcache_new(64, &fx->fc), 0);
    plog_config_defaults(&fx->cfg);
    fx->cfg.segment_bytes = 1000;
    fx->cfg.index_interval_bytes = 200;
    fx->cfg.cleanup_delete = false;
    fx->cfg.cleanup_compact = true;
    fx->cfg.min_cleanable_ratio = 0.0;
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, NULL), 0);
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

static void reopen(struct fixture *fx, struct plog_recovery_info *info)
{
    int64_t hw = plog_high_watermark(fx->log);
    plog_flush_sync(fx->log);
    plog_close(fx->log);
    assert_int_equal(plog_open(fx->dir, &fx->cfg, fx->fc, 0, -1, TS0, &fx->log, info), 0);
    plog_set_high_watermark(fx->log, hw);
}

/* Patch the producer id of a built batch and fix its CRC. */
static void set_producer(uint8_t *b, size_t len, int64_t pid)
{
    for (int i = 0; i < 8; i++)
        b[BATCH_OFF_PRODUCER_ID + i] = (uint8_t)((uint64_t)pid >> (56 - 8 * i));
    uint32_t crc = crc32c_update(0, b + BATCH_OFF_ATTRIBUTES, len - BATCH_OFF_ATTRIBUTES);
    for (int i = 0; i < 4; i++)
        b[BATCH_OFF_CRC + i] = (uint8_t)(crc >> (24 - 8 * i));
}

/* Append one batch of @n records: key "k<keys[i]>" (or null for -1), value
 * "v<offset-to-be>" (or a tombstone when @tomb), timestamp @ts. Returns its base. */
static int64_t append_kv(struct fixture *fx, const int *keys, int n, bool tomb, int64_t ts,
                         int64_t pid, enum codec_type codec)
{
    buf_writer w, z;
    struct batch_builder b;
    int64_t base = plog_log_end_offset(fx->log);
    buf_writer_init(&w);
    assert_int_equal(batch_builder_begin(&b, &w, ts), 0);
    for (int i = 0; i < n; i++) {
        char k[32], v[32];
        int kl = snprintf(k, sizeof(k), "k%d", keys[i]);
        int vl = snprintf(v, sizeof(v), "v%lld", (long long)(base + i));
        assert_int_equal(batch_builder_add(&b, ts, keys[i] < 0 ? NULL : k, keys[i] < 0 ? -1 : kl,
                                           tomb ? NULL : v, tomb ? -1 : vl, NULL, 0),
                         0);
    }
    assert_int_equal(batch_builder_finish(&b), 0);
    if (pid >= 0)
        set_producer(w.data, w.len, pid);
    uint8_t *data = w.data;
    size_t len = w.len;
    buf_writer_init(&z);
    if (codec != CODEC_NONE) {
        assert_int_equal(batch_recompress(w.data, w.len, codec, 1 << 20, &z), 0);
        data = z.data;
        len = z.len;
    }
    assert_int_equal(
        plog_append(fx->log, data, len, PLOG_APPEND_ASSIGN_OFFSETS, 1, ts, NULL), 0);
    buf_writer_deinit(&w);
    buf_writer_deinit(&z);
    return base;
}

static int64_t put(struct fixture *fx, int key, int64_t ts)
{
    return append_kv(fx, &key, 1, false, ts, -1, CODEC_NONE);
}

static int64_t del(struct fixture *fx, int key, int64_t ts)
{
    return append_kv(fx, &key, 1, true, ts, -1, CODEC_NONE);
}

/* Everything in the log from its start, through plog_read as a fetch would. */
static void read_all(struct plog *log, struct recs *out)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    int64_t off = plog_log_start_offset(log), end = plog_log_end_offset(log);
    buf_writer scratch;
    buf_writer_init(&scratch);
    while (off < end) {
        struct plog_read_result res;
        assert_int_equal(plog_read(log, off, end, 1 << 20, true, &res), 0);
        if (res.length == 0) {
            assert_true(res.next_offset > off);
            off = res.next_offset;
            continue;
        }
        uint8_t *buf = malloc((size_t)res.length);
        assert_int_equal(fsutil_pread_all(seg_file_fd(res.file), buf, (size_t)res.length,
                                          res.position),
                         0);
        seg_file_unref(res.file);
        for (int64_t p = 0; p < res.length;) {
            struct batch_header h;
            assert_int_equal(batch_validate(buf + p, (size_t)(res.length - p), 0, &h), 0);
            size_t total = (size_t)batch_total_size(&h);
            struct batch_record_iter it;
            struct batch_record r;
            buf_writer_reset(&scratch);
            assert_int_equal(batch_decompress_records(buf + p, total, 1 << 24, &scratch), 0);
            batch_records_begin_raw(scratch.data, scratch.len, h.record_count, &it);
            out->batches++;
            out->compressed += batch_compression(&h) != BATCH_COMPRESSION_NONE;
            while (batch_records_next(&it, &r) == 1) {
                if (out->n == cap) {
                    cap = cap ? cap * 2 : 256;
                    out->r = realloc(out->r, cap * sizeof(*out->r));
                }
                struct rec *x = &out->r[out->n++];
                x->offset = h.base_offset + r.offset_delta;
                snprintf(x->key, sizeof(x->key), "%.*s", r.key.len < 0 ? 0 : r.key.len,
                         (const char *)r.key.ptr);
                if (r.value.len < 0)
                    snprintf(x->value, sizeof(x->value), "<null>");
                else
                    snprintf(x->value, sizeof(x->value), "%.*s", r.value.len,
                             (const char *)r.value.ptr);
            }
            p += (int64_t)total;
        }
        free(buf);
        off = res.next_offset;
    }
    buf_writer_deinit(&scratch);
}

static int count_key(const struct recs *rs, const char *key)
{
    int n = 0;
    for (size_t i = 0; i < rs->n; i++)
        n += strcmp(rs->r[i].key, key) == 0;
    return n;
}

/* Every record carries its original offset in its value ("v<offset>"). */
static void assert_offsets_preserved(const struct recs *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        if (strcmp(rs->r[i].value, "<null>") == 0)
            continue;
        char want[32];
        snprintf(want, sizeof(want), "v%lld", (long long)rs->r[i].offset);
        assert_string_equal(rs->r[i].value, want);
        if (i > 0)
            assert_true(rs->r[i].offset > rs->r[i - 1].offset);
    }
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    size_t m = strlen(suffix);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        n += l > m && strcmp(de->d_name + l - m, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* 10 keys x 20 rounds, one record per batch, small segments; then one more batch
 * so the active segment holds something. HW at the end. */
static void fill(struct fixture *fx, int64_t ts)
{
    for (int r = 0; r < 20; r++)
        for (int k = 0; k < 10; k++)
            put(fx, k, ts);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
}

/* ---- tests -------------------------------------------------------------------- */

static void test_map(void **state)
{
    (void)state;
    struct cleaner_map *m = cleaner_map_new(16 * 100);
    assert_non_null(m);
    assert_int_equal(cleaner_map_get(m, "a", 1), -1);
    assert_true(cleaner_map_put(m, "a", 1, 5));
    assert_true(cleaner_map_put(m, "a", 1, 9));
    assert_int_equal(cleaner_map_get(m, "a", 1), 9);
    assert_int_equal(cleaner_map_size(m), 1);
    int put_ok = 0;
    for (int i = 0; i < 200; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "key%d", i);
        put_ok += cleaner_map_put(m, k, (size_t)n, i);
    }
    /* 100 slots, 90% load: 89 more keys fit next to "a". */
    assert_int_equal(put_ok, 89);
    assert_int_equal(cleaner_map_size(m), 90);
    assert_true(cleaner_map_put(m, "a", 1, 11)); /* an existing key still updates */
    cleaner_map_free(m);
}

static void test_latest_value_per_key_offsets_preserved(void **state)
{
    struct fixture *fx = *state;
    fill(fx, TS0);
    int64_t active = plog_active_segment_base(fx->log);
    int segs = plog_segment_count(fx->log);
    assert_true(segs > 5);
    int64_t size_before = plog_size_bytes(fx->log);

    struct cleaner_stats st;
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, DEDUPE, &st), 0);
    assert_int_equal(st.clean_upto, active);
    assert_int_equal(st.map_keys, 10);
    assert_false(st.map_full);
    assert_true(st.segments_after <= st.segments_before);
    assert_true(st.bytes_written < st.bytes_read);
    assert_int_equal(st.records_read, 200 - (plog_log_end_offset(fx->log) - active));
    assert_true(plog_size_bytes(fx->log) < size_before);
    assert_int_equal(plog_active_segment_base(fx->log), active);

    struct recs rs;
    read_all(fx->log, &rs);
    assert_offsets_preserved(&rs);
    /* Below the active segment one record per key, its latest; the active
     * segment is untouched. */
    int below = 0;
    for (size_t i = 0; i < rs.n; i++) {
        if (rs.r[i].offset >= active)
            continue;
        below++;
        /* No later record of the key below the active segment... */
        for (size_t j = i + 1; j < rs.n; j++)
            if (rs.r[j].offset < active)
                assert_string_not_equal(rs.r[i].key, rs.r[j].key);
    }
    assert_true(below <= 10);
    /* ... and the latest of each key is there (the last round). */
    for (int k = 0; k < 10; k++) {
        char key[16], val[32];
        snprintf(key, sizeof(key), "k%d", k);
        snprintf(val, sizeof(val), "v%d", 190 + k);
        bool found = false;
        for (size_t i = 0; i < rs.n; i++)
            found |= strcmp(rs.r[i].key, key) == 0 && strcmp(rs.r[i].value, val) == 0;
        assert_true(found);
    }
    assert_int_equal(plog_log_end_offset(fx->log), 200);
    free(rs.r);

    /* Cleaning again finds nothing dirty; survives a reopen unchanged. */
    assert_int_equal(cleaner_clean_sync(fx->log, st.clean_upto, TS0, DEDUPE, &st), 0);
    assert_int_equal(st.clean_upto, active);
    struct recs again;
    read_all(fx->log, &again);
    reopen(fx, NULL);
    struct recs after;
    read_all(fx->log, &after);
    assert_int_equal(after.n, again.n);
    for (size_t i = 0; i < after.n; i++)
        assert_int_equal(after.r[i].offset, again.r[i].offset);
    assert_int_equal(plog_log_end_offset(fx->log), 200);
    free(again.r);
    free(after.r);
    assert_int_equal(count_files(fx->dir, ".swap") + count_files(fx->dir, ".cleaned"), 0);
}

static void test_active_segment_and_hw_bound_the_clean(void **state)
{
    struct fixture *fx = *state;
    fill(fx, TS0);
    /* HW in the middle: nothing at or above it may be removed, nor decide what
     * below it is removed. */
    plog_set_high_watermark(fx->log, 100);
    struct cleaner_stats st;
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, DEDUPE, &st), 0);
    assert_true(st.clean_upto <= 100);
    struct recs rs;
    read_all(fx->log, &rs);
    assert_offsets_preserved(&rs);
    for (int64_t o = 100; o < 200; o++) {
        bool found = false;
        for (size_t i = 0; i < rs.n; i++)
            found |= rs.r[i].offset == o;
        assert_true(found);
    }
    /* Below the HW the latest of each key below the HW (round 9) survives. */
    for (int k = 0; k < 10; k++) {
        bool found = false;
        for (size_t i = 0; i < rs.n; i++)
            found |= rs.r[i].offset == 90 + k;
        assert_true(found);
    }
    free(rs.r);

    /* Nothing but the active segment: nothing to clean. */
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    assert_int_equal(plog_truncate_fully(fx->log, 500), 0);
    put(fx, 1, TS0);
    put(fx, 1, TS0);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    assert_int_equal(cleaner_clean_sync(fx->log, 500, TS0, DEDUPE, &st), 0);
    assert_int_equal(st.clean_upto, 500);
    read_all(fx->log, &rs);
    assert_int_equal(rs.n, 2);
    free(rs.r);
}

static void test_min_compaction_lag(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.min_compaction_lag_ms = 60000;
    plog_set_config(fx->log, &fx->cfg);
    /* Old records, then records newer than the lag. */
    for (int r = 0; r < 10; r++)
        for (int k = 0; k < 10; k++)
            put(fx, k, TS0);
    int64_t young = plog_log_end_offset(fx->log);
    for (int r = 0; r < 10; r++)
        for (int k = 0; k < 10; k++)
            put(fx, k, TS0 + 100000);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    struct cleaner_stats st;
    /* now = TS0 + 120000: the young records are 20 s old, within the 60 s lag. */
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0 + 120000, DEDUPE, &st), 0);
    assert_true(st.clean_upto <= young);
    struct recs rs;
    read_all(fx->log, &rs);
    assert_offsets_preserved(&rs);
    int64_t first_young_seg = st.clean_upto;
    for (int64_t o = first_young_seg; o < plog_log_end_offset(fx->log); o++) {
        bool found = false;
        for (size_t i = 0; i < rs.n; i++)
            found |= rs.r[i].offset == o;
        assert_true(found);
    }
    free(rs.r);
    /* Later, past the lag, everything below the active segment is cleaned. */
    assert_int_equal(cleaner_clean_sync(fx->log, st.clean_upto, TS0 + 200000, DEDUPE, &st), 0);
    assert_int_equal(st.clean_upto, plog_active_segment_base(fx->log));
    read_all(fx->log, &rs);
    for (int k = 0; k < 10; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        assert_true(count_key(&rs, key) <= 2); /* one cleaned, maybe one in the active */
    }
    free(rs.r);
}

static void test_tombstones_after_delete_retention(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.delete_retention_ms = 1000;
    plog_set_config(fx->log, &fx->cfg);
    for (int r = 0; r < 5; r++)
        for (int k = 0; k < 10; k++)
            put(fx, k, TS0);
    int64_t tomb = del(fx, 3, TS0);
    for (int k = 0; k < 30; k++)
        put(fx, 5, TS0);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    struct cleaner_stats st;
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, DEDUPE, &st), 0);
    struct recs rs;
    read_all(fx->log, &rs);
    /* The tombstone is the only k3 record left, and it stays for now. */
    assert_int_equal(count_key(&rs, "k3"), 1);
    bool found = false;
    for (size_t i = 0; i < rs.n; i++)
        found |= rs.r[i].offset == tomb && strcmp(rs.r[i].value, "<null>") == 0;
    assert_true(found);
    free(rs.r);

    /* A clean before the horizon keeps it, one after removes it. */
    for (int k = 0; k < 30; k++)
        put(fx, 6, TS0);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    assert_int_equal(cleaner_clean_sync(fx->log, st.clean_upto, TS0 + 500, DEDUPE, &st), 0);
    read_all(fx->log, &rs);
    assert_int_equal(count_key(&rs, "k3"), 1);
    free(rs.r);
    /* Everything is clean now: the next clean needs dirty data, as in Kafka. */
    for (int k = 0; k < 30; k++)
        put(fx, 7, TS0);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    assert_int_equal(cleaner_clean_sync(fx->log, st.clean_upto, TS0 + 1001, DEDUPE, &st), 0);
    read_all(fx->log, &rs);
    assert_int_equal(count_key(&rs, "k3"), 0);
    assert_true(count_key(&rs, "k5") >= 1);
    assert_offsets_preserved(&rs);
    free(rs.r);
}

static void test_keyless_records_dropped(void **state)
{
    struct fixture *fx = *state;
    int keys[] = {1, -1, 2, -1};
    for (int r = 0; r < 20; r++)
        append_kv(fx, keys, 4, false, TS0, -1, CODEC_NONE);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    struct cleaner_stats st;
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, DEDUPE, &st), 0);
    struct recs rs;
    read_all(fx->log, &rs);
    int64_t active = plog_active_segment_base(fx->log);
    for (size_t i = 0; i < rs.n; i++)
        if (rs.r[i].offset < active)
            assert_true(rs.r[i].key[0] != 0);
    assert_offsets_preserved(&rs);
    free(rs.r);
}

static void test_last_batch_of_producer_kept(void **state)
{
    struct fixture *fx = *state;
    int k0 = 0;
    int64_t pbatch = append_kv(fx, &k0, 1, false, TS0, 42, CODEC_NONE);
    for (int r = 0; r < 20; r++)
        for (int k = 0; k < 10; k++)
            put(fx, k, TS0);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    struct cleaner_stats st;
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, DEDUPE, &st), 0);
    struct recs rs;
    read_all(fx->log, &rs);
    bool found = false;
    for (size_t i = 0; i < rs.n; i++)
        found |= rs.r[i].offset == pbatch;
    assert_true(found); /* superseded, but the producer's last batch */
    free(rs.r);
}

static void test_full_map_cleans_a_prefix(void **state)
{
    struct fixture *fx = *state;
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 60; k++)
            put(fx, k, TS0);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    int64_t active = plog_active_segment_base(fx->log);
    struct cleaner_stats st;
    /* 40 slots: 36 keys fit. */
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, 16 * 40, &st), 0);
    assert_true(st.map_full);
    assert_int_equal(st.clean_upto, 36);
    struct recs rs;
    read_all(fx->log, &rs);
    assert_offsets_preserved(&rs);
    for (int k = 0; k < 60; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        assert_true(count_key(&rs, key) >= 1);
    }
    free(rs.r);
    /* Repeated cleans converge on one record per key below the active segment. */
    for (int i = 0; i < 20 && st.clean_upto < active; i++)
        assert_int_equal(cleaner_clean_sync(fx->log, st.clean_upto, TS0, 16 * 40, &st), 0);
    assert_int_equal(st.clean_upto, plog_active_segment_base(fx->log));
    read_all(fx->log, &rs);
    int64_t act = plog_active_segment_base(fx->log);
    for (size_t i = 0; i < rs.n; i++)
        for (size_t j = i + 1; j < rs.n; j++)
            if (rs.r[j].offset < act)
                assert_string_not_equal(rs.r[i].key, rs.r[j].key);
    free(rs.r);
}

static void test_compressed_batches(void **state)
{
    struct fixture *fx = *state;
    static const enum codec_type codecs[] = {CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD};
    fx->cfg.segment_bytes = 4000;
    plog_set_config(fx->log, &fx->cfg);
    int keys[] = {0, 1, 2, 3, 4};
    for (int r = 0; r < 40; r++) {
        keys[4] = 4 + r; /* one fresh key per batch: batches are filtered, not dropped */
        append_kv(fx, keys, 5, false, TS0, -1, codecs[r % 4]);
    }
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    struct recs before;
    read_all(fx->log, &before);
    struct cleaner_stats st;
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, DEDUPE, &st), 0);
    struct recs rs;
    read_all(fx->log, &rs);
    assert_offsets_preserved(&rs);
    assert_true(rs.n < before.n);
    assert_int_equal(rs.compressed, rs.batches); /* every batch kept its codec */
    int64_t active = plog_active_segment_base(fx->log);
    for (size_t i = 0; i < rs.n; i++)
        for (size_t j = i + 1; j < rs.n; j++)
            if (rs.r[j].offset < active)
                assert_string_not_equal(rs.r[i].key, rs.r[j].key);
    free(rs.r);
    free(before.r);
}

static void test_follower_append_accepts_gaps(void **state)
{
    struct fixture *fx = *state;
    buf_writer w;
    struct batch_builder b;
    buf_writer_init(&w);
    assert_int_equal(batch_builder_begin(&b, &w, TS0), 0);
    assert_int_equal(batch_builder_add(&b, TS0, "k", 1, "v", 1, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    batch_set_base_offset(w.data, 10);
    struct plog_append_info info;
    assert_int_equal(plog_append(fx->log, w.data, w.len, 0, 1, TS0, &info), 0);
    assert_int_equal(info.first_offset, 10);
    assert_int_equal(plog_log_end_offset(fx->log), 11);
    batch_set_base_offset(w.data, 5);
    assert_int_equal(plog_append(fx->log, w.data, w.len, 0, 1, TS0, NULL), -EINVAL);
    buf_writer_deinit(&w);
}

/* ---- crash in the middle of a swap --------------------------------------------- */

/* Prepare and run a clean, then stop before finish: *.swap files exist. */
static struct cleaner_job *run_without_finish(struct fixture *fx)
{
    struct cleaner_job *job;
    assert_int_equal(cleaner_prepare(fx->log, 0, TS0, DEDUPE, &job), 0);
    assert_non_null(job);
    assert_int_equal(cleaner_job_run(job), 0);
    assert_true(count_files(fx->dir, ".log.swap") > 0);
    return job;
}

static void check_clean_result(struct fixture *fx, int64_t active)
{
    struct recs rs;
    read_all(fx->log, &rs);
    assert_offsets_preserved(&rs);
    for (size_t i = 0; i < rs.n; i++)
        for (size_t j = i + 1; j < rs.n; j++)
            if (rs.r[j].offset < active)
                assert_string_not_equal(rs.r[i].key, rs.r[j].key);
    for (int k = 0; k < 10; k++) {
        bool found = false;
        for (size_t i = 0; i < rs.n; i++)
            found |= rs.r[i].offset == 190 + k;
        assert_true(found);
    }
    free(rs.r);
    assert_int_equal(plog_log_end_offset(fx->log), 200);
    assert_int_equal(count_files(fx->dir, ".swap") + count_files(fx->dir, ".cleaned") +
                         count_files(fx->dir, ".deleted"),
                     0);
}

/* Forget a job without removing its files, as a crash would. */
static void crash_job(struct cleaner_job *job, struct fixture *fx)
{
    /* Move the swap files aside while the job is freed (it removes its files),
     * then back. */
    char aside[4096];
    snprintf(aside, sizeof(aside), "%s-aside", fx->dir);
    assert_int_equal(rename(fx->dir, aside), 0);
    assert_int_equal(mkdir(fx->dir, 0755), 0);
    cleaner_job_free(job);
    assert_int_equal(rmdir(fx->dir), 0);
    assert_int_equal(rename(aside, fx->dir), 0);
}

static void test_crash_with_cleaned_files(void **state)
{
    struct fixture *fx = *state;
    fill(fx, TS0);
    struct recs before;
    read_all(fx->log, &before);
    /* Step 1 done halfway: .cleaned files only. */
    struct cleaner_job *job = run_without_finish(fx);
    DIR *d = opendir(fx->dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".swap") == 0) {
            char from[4096], to[4096];
            snprintf(from, sizeof(from), "%s/%s", fx->dir, de->d_name);
            snprintf(to, sizeof(to), "%s/%.*s.cleaned", fx->dir, (int)(l - 5), de->d_name);
            assert_int_equal(rename(from, to), 0);
        }
    }
    closedir(d);
    crash_job(job, fx);
    assert_true(count_files(fx->dir, ".cleaned") > 0);
    struct plog_recovery_info info;
    reopen(fx, &info);
    assert_int_equal(info.swaps_completed, 0);
    struct recs after;
    read_all(fx->log, &after);
    assert_int_equal(after.n, before.n); /* nothing lost, nothing cleaned */
    free(before.r);
    free(after.r);
    assert_int_equal(count_files(fx->dir, ".cleaned"), 0);
}

static void test_crash_with_swap_files(void **state)
{
    struct fixture *fx = *state;
    fill(fx, TS0);
    int64_t active = plog_active_segment_base(fx->log);
    /* Step 2 done: .swap files beside the old segments. */
    struct cleaner_job *job = run_without_finish(fx);
    crash_job(job, fx);
    struct plog_recovery_info info;
    reopen(fx, &info);
    assert_true(info.swaps_completed > 0);
    check_clean_result(fx, active);
}

static void test_crash_after_old_segments_retired(void **state)
{
    struct fixture *fx = *state;
    fill(fx, TS0);
    int64_t active = plog_active_segment_base(fx->log);
    struct cleaner_job *job = run_without_finish(fx);
    crash_job(job, fx);
    /* Step 3 halfway: the old segments' files renamed .deleted, and one index
     * swap already renamed to its final name. */
    DIR *d = opendir(fx->dir);
    struct dirent *de;
    bool index_done = false;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        size_t l = strlen(n);
        char from[2048], to[4096];
        snprintf(from, sizeof(from), "%s/%s", fx->dir, n);
        if (l == 24 && strcmp(n + 20, ".log") == 0 && strtoll(n, NULL, 10) < active) {
            snprintf(to, sizeof(to), "%s.deleted", from);
            assert_int_equal(rename(from, to), 0);
        } else if (!index_done && l > 11 && strcmp(n + l - 11, ".index.swap") == 0) {
            snprintf(to, sizeof(to), "%s/%.*s", fx->dir, (int)(l - 5), n);
            assert_int_equal(rename(from, to), 0);
            index_done = true;
        }
    }
    closedir(d);
    struct plog_recovery_info info;
    reopen(fx, &info);
    assert_true(info.swaps_completed > 0);
    check_clean_result(fx, active);
}

static void test_stale_job_discarded(void **state)
{
    struct fixture *fx = *state;
    fill(fx, TS0);
    struct cleaner_job *job;
    assert_int_equal(cleaner_prepare(fx->log, 0, TS0, DEDUPE, &job), 0);
    assert_int_equal(cleaner_job_run(job), 0);
    /* The log was truncated meanwhile (a follower): the clean is thrown away. */
    assert_int_equal(plog_truncate_to(fx->log, 50, NULL), 0);
    char **paths;
    size_t n;
    assert_int_equal(cleaner_job_finish(fx->log, job, 0, &paths, &n, NULL), -ESTALE);
    assert_int_equal(n, 0);
    assert_int_equal(count_files(fx->dir, ".swap") + count_files(fx->dir, ".cleaned"), 0);
    struct recs rs;
    read_all(fx->log, &rs);
    assert_int_equal(rs.n, 50);
    free(rs.r);
}

static void test_estimate_and_due(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.min_cleanable_ratio = 0.5;
    plog_set_config(fx->log, &fx->cfg);
    fill(fx, TS0);
    struct cleaner_estimate e;
    cleaner_estimate(fx->log, 0, TS0, &e);
    assert_int_equal(e.clean_bytes, 0);
    assert_true(e.dirty_bytes > 0);
    assert_true(e.dirty_ratio > 0.99);
    assert_true(cleaner_due(fx->log, &e));
    struct cleaner_stats st;
    assert_int_equal(cleaner_clean_sync(fx->log, 0, TS0, DEDUPE, &st), 0);
    cleaner_estimate(fx->log, st.clean_upto, TS0, &e);
    assert_int_equal(e.dirty_bytes, 0);
    assert_false(cleaner_due(fx->log, &e));
    /* max.compaction.lag.ms makes a log due below the ratio. */
    put(fx, 1, TS0);
    for (int i = 0; i < 15; i++)
        put(fx, 2, TS0);
    plog_set_high_watermark(fx->log, plog_log_end_offset(fx->log));
    cleaner_estimate(fx->log, st.clean_upto, TS0 + 10, &e);
    if (e.dirty_ratio < 0.5) {
        assert_false(cleaner_due(fx->log, &e));
        fx->cfg.max_compaction_lag_ms = 5;
        plog_set_config(fx->log, &fx->cfg);
        cleaner_estimate(fx->log, st.clean_upto, TS0 + 10, &e);
        assert_true(e.max_lag_due);
        assert_true(cleaner_due(fx->log, &e));
    }
    /* A delete-only log is never due. */
    fx->cfg.cleanup_compact = false;
    plog_set_config(fx->log, &fx->cfg);
    assert_false(cleaner_due(fx->log, &e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map),
        cmocka_unit_test_setup_teardown(test_latest_value_per_key_offsets_preserved, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_active_segment_and_hw_bound_the_clean, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_min_compaction_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones_after_delete_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyless_records_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_batch_of_producer_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_map_cleans_a_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compressed_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower_append_accepts_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_with_cleaned_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_with_swap_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_old_segments_retired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_job_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_estimate_and_due, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
