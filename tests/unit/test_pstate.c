/* Tests for broker/replica/pstate: the idempotent-producer checks (duplicates
 * of each of the last five batches, gaps, epochs), expiry, the rebuild from
 * log bytes and the snapshot files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "broker/replica/pstate.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/kerr.h"
#include "testutil.h"

static struct batch_header hdr(int64_t pid, int16_t epoch, int32_t seq, int32_t count,
                               int64_t base_offset)
{
    struct batch_header h;
    memset(&h, 0, sizeof(h));
    h.magic = BATCH_MAGIC_V2;
    h.producer_id = pid;
    h.producer_epoch = epoch;
    h.base_sequence = seq;
    h.last_offset_delta = count - 1;
    h.record_count = count;
    h.base_offset = base_offset;
    h.max_timestamp = 1000;
    return h;
}

/* Check then record, as the leader does; returns the check's error. */
static int16_t append(struct pstate *ps, int64_t pid, int16_t epoch, int32_t seq, int32_t count,
                      int64_t offset)
{
    struct batch_header h = hdr(pid, epoch, seq, count, offset);
    bool dup;
    struct pstate_batch orig;
    int16_t e = pstate_check(ps, &h, &dup, &orig);
    assert_false(dup);
    if (e == 0)
        assert_int_equal(pstate_update(ps, &h), 0);
    return e;
}

static int16_t check(struct pstate *ps, int64_t pid, int16_t epoch, int32_t seq, int32_t count,
                     bool *dup, struct pstate_batch *orig)
{
    struct batch_header h = hdr(pid, epoch, seq, count, -1);
    return pstate_check(ps, &h, dup, orig);
}

static void test_pstate_duplicate_of_each_of_last_five(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    /* Seven batches of 3 records: sequences 0-2, 3-5, ... at offsets 100+. */
    for (int i = 0; i < 7; i++)
        assert_int_equal(append(ps, 7, 0, i * 3, 3, 100 + i * 3), 0);
    for (int i = 2; i < 7; i++) {
        bool dup;
        struct pstate_batch orig;
        assert_int_equal(check(ps, 7, 0, i * 3, 3, &dup, &orig), 0);
        assert_true(dup);
        assert_int_equal(orig.first_offset, 100 + i * 3);
        assert_int_equal(orig.last_offset, 100 + i * 3 + 2);
    }
    /* Older than the last five: no longer known, and not in sequence. */
    bool dup;
    struct pstate_batch orig;
    assert_int_equal(check(ps, 7, 0, 3, 3, &dup, &orig), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_false(dup);
    /* Same first sequence, different length: not a duplicate. */
    assert_int_equal(check(ps, 7, 0, 18, 2, &dup, &orig), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_false(dup);
    /* The next one is fine. */
    assert_int_equal(check(ps, 7, 0, 21, 1, &dup, &orig), 0);
    assert_false(dup);
    pstate_free(ps);
}

static void test_pstate_gap_is_out_of_order(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    assert_int_equal(append(ps, 1, 0, 0, 5, 0), 0);
    assert_int_equal(append(ps, 1, 0, 6, 1, 5), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(append(ps, 1, 0, 4, 2, 5), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(append(ps, 1, 0, 5, 1, 5), 0);
    assert_int_equal(pstate_find(ps, 1)->n_batches, 2);
    pstate_free(ps);
}

static void test_pstate_sequence_wraps(void **state)
{
    (void)state;
    assert_int_equal(pstate_seq_add(INT32_MAX, 1), 0);
    assert_int_equal(pstate_seq_add(INT32_MAX - 1, 3), 1);
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    assert_int_equal(append(ps, 1, 0, INT32_MAX - 1, 2, 0), 0);
    assert_int_equal(append(ps, 1, 0, 0, 1, 2), 0);
    pstate_free(ps);
}

static void test_pstate_epoch_bump_and_fencing(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    assert_int_equal(append(ps, 3, 0, 0, 1, 0), 0);
    assert_int_equal(append(ps, 3, 0, 1, 1, 1), 0);
    /* A new epoch must start at 0. */
    assert_int_equal(append(ps, 3, 1, 2, 1, 2), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(append(ps, 3, 1, 0, 1, 2), 0);
    assert_int_equal(pstate_find(ps, 3)->epoch, 1);
    assert_int_equal(pstate_find(ps, 3)->n_batches, 1);
    /* The old epoch is fenced, even for what was once a duplicate. */
    bool dup;
    struct pstate_batch orig;
    assert_int_equal(check(ps, 3, 0, 1, 1, &dup, &orig), KERR_INVALID_PRODUCER_EPOCH);
    assert_false(dup);
    assert_int_equal(check(ps, 3, 0, 2, 1, &dup, &orig), KERR_INVALID_PRODUCER_EPOCH);
    pstate_free(ps);
}

static void test_pstate_unknown_producer_may_start_anywhere(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    bool dup;
    struct pstate_batch orig;
    /* Kafka >= 2.5: no state (expired, or removed with the log) is accepted. */
    assert_int_equal(check(ps, 9, 2, 40, 1, &dup, &orig), 0);
    assert_false(dup);
    /* Negative epoch or sequence with a producer id: an invalid batch. */
    assert_int_equal(check(ps, 9, -1, 0, 1, &dup, &orig), KERR_INVALID_RECORD);
    assert_int_equal(check(ps, 9, 0, -1, 1, &dup, &orig), KERR_INVALID_RECORD);
    pstate_free(ps);
}

static void test_pstate_expiry(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    struct batch_header h = hdr(1, 0, 0, 1, 0);
    h.max_timestamp = 1000;
    assert_int_equal(pstate_update(ps, &h), 0);
    h = hdr(2, 0, 0, 1, 1);
    h.max_timestamp = 5000;
    assert_int_equal(pstate_update(ps, &h), 0);
    assert_int_equal(pstate_expire(ps, 5999, 5000), 0);
    assert_int_equal(pstate_expire(ps, 6000, 5000), 1);
    assert_null(pstate_find(ps, 1));
    assert_non_null(pstate_find(ps, 2));
    assert_int_equal(pstate_expire(ps, 10000, 5000), 1);
    assert_int_equal(pstate_count(ps), 0);
    pstate_free(ps);
}

/* Real batches as in a log: built, producer fields patched, offsets set. */
static void add_batch(buf_writer *w, int64_t pid, int16_t epoch, int32_t seq, int32_t count,
                      int64_t base_offset)
{
    struct batch_builder b;
    size_t start = w->len;
    assert_int_equal(batch_builder_begin(&b, w, 1000), 0);
    for (int32_t i = 0; i < count; i++)
        assert_int_equal(batch_builder_add(&b, 1000 + i, NULL, -1, "v", 1, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    uint8_t *p = w->data + start;
    buf_store_be64(p + 43, (uint64_t)pid);
    buf_store_be16(p + 51, (uint16_t)epoch);
    buf_store_be32(p + 53, (uint32_t)seq);
    batch_set_base_offset(p, base_offset);
}

static void test_pstate_rebuild_from_batches(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    int64_t off = 0;
    for (int i = 0; i < 8; i++) {
        add_batch(&w, 5, 0, i * 2, 2, off);
        off += 2;
        add_batch(&w, -1, -1, -1, 1, off); /* not idempotent */
        off += 1;
    }
    add_batch(&w, 6, 3, 0, 1, off);
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    /* A cut last batch is ignored. */
    assert_int_equal(pstate_load(ps, w.data, w.len - 3), 0);
    assert_int_equal(pstate_count(ps), 1);
    pstate_clear(ps);
    assert_int_equal(pstate_load(ps, w.data, w.len), 0);
    assert_int_equal(pstate_count(ps), 2);
    const struct pstate_entry *e = pstate_find(ps, 5);
    assert_non_null(e);
    assert_int_equal(e->n_batches, PSTATE_BATCHES);
    assert_int_equal(e->batches[4].first_seq, 14);
    assert_int_equal(e->batches[4].last_seq, 15);
    assert_int_equal(e->batches[4].first_offset, 21);
    bool dup;
    struct pstate_batch orig;
    assert_int_equal(check(ps, 5, 0, 14, 2, &dup, &orig), 0);
    assert_true(dup);
    assert_int_equal(orig.first_offset, 21);
    assert_int_equal(check(ps, 5, 0, 16, 1, &dup, &orig), 0);
    assert_false(dup);
    assert_int_equal(pstate_find(ps, 6)->epoch, 3);
    pstate_free(ps);
    buf_writer_deinit(&w);
}

static void assert_same(const struct pstate *a, const struct pstate *b)
{
    assert_int_equal(pstate_count(a), pstate_count(b));
    for (size_t i = 0; i < pstate_count(a); i++)
        assert_memory_equal(pstate_at(a, i), pstate_at(b, i), sizeof(struct pstate_entry));
}

static bool reject_30(void *ud, int64_t offset, uint32_t tail_crc)
{
    (void)ud;
    if (offset == 30) {
        assert_int_equal(tail_crc, 0x1234);
        return false;
    }
    assert_int_equal(tail_crc, (uint32_t)offset);
    return true;
}

static void test_pstate_snapshot_roundtrip_and_corruption(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("pstate");
    struct pstate *ps, *back;
    assert_int_equal(pstate_new(&ps), 0);
    assert_int_equal(pstate_new(&back), 0);
    for (int64_t pid = 1; pid <= 20; pid++)
        for (int i = 0; i < (int)(pid % 7); i++)
            assert_int_equal(append(ps, pid, (int16_t)(pid % 3), i, 1, pid * 100 + i), 0);
    assert_int_equal(pstate_snapshot_write(ps, dir, 50, 0x50), 0);
    append(ps, 99, 0, 0, 1, 60);
    assert_int_equal(pstate_snapshot_write(ps, dir, 61, 0x61), 0);

    int64_t at;
    assert_int_equal(pstate_snapshot_load(back, dir, INT64_MAX, NULL, NULL, &at), 0);
    assert_int_equal(at, 61);
    assert_same(ps, back);
    /* Bounded by the log end: the older one. */
    assert_int_equal(pstate_snapshot_load(back, dir, 60, NULL, NULL, &at), 0);
    assert_int_equal(at, 50);
    assert_int_equal(pstate_count(back), 18); /* 7 and 14 have no batches */

    /* Flip one byte of the newest: it is dropped and the older one used. */
    char path[512];
    snprintf(path, sizeof(path), "%s/%020d.snapshot", dir, 61);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 40), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, 40), 1);
    close(fd);
    assert_int_equal(pstate_snapshot_load(back, dir, INT64_MAX, NULL, NULL, &at), 0);
    assert_int_equal(at, 50);
    assert_int_equal(access(path, F_OK), -1);

    /* A truncated file too; then nothing is left: start from the log. */
    snprintf(path, sizeof(path), "%s/%020d.snapshot", dir, 50);
    assert_int_equal(truncate(path, 30), 0);
    assert_int_equal(pstate_snapshot_load(back, dir, INT64_MAX, NULL, NULL, &at), 0);
    assert_int_equal(at, -1);
    assert_int_equal(pstate_count(back), 0);

    /* delete_above and retain. */
    for (int64_t o = 10; o <= 50; o += 10)
        assert_int_equal(pstate_snapshot_write(ps, dir, o, (uint32_t)o), 0);
    assert_int_equal(pstate_snapshot_delete_above(dir, 30), 2);
    assert_int_equal(pstate_snapshot_retain(dir, 2), 1);
    assert_int_equal(pstate_snapshot_load(back, dir, INT64_MAX, NULL, NULL, &at), 0);
    assert_int_equal(at, 30);
    assert_int_equal(pstate_snapshot_load(back, dir, 25, NULL, NULL, &at), 0);
    assert_int_equal(at, 20);
    /* One the log no longer matches (its tail batch is gone) is dropped. */
    assert_int_equal(pstate_snapshot_write(ps, dir, 30, 0x1234), 0);
    assert_int_equal(pstate_snapshot_load(back, dir, INT64_MAX, reject_30, NULL, &at), 0);
    assert_int_equal(at, 20);
    assert_int_equal(pstate_snapshot_load(back, dir, INT64_MAX, NULL, NULL, &at), 0);
    assert_int_equal(at, 20);
    pstate_free(ps);
    pstate_free(back);
    testutil_rmtree(dir);
}

/* ---- how an acknowledged offset could differ from where the records are ----------
 * (the fault suite's "misplaced" check). Each case: the duplicate answer names
 * the offsets of exactly the batch that holds those records, or the retry is
 * not taken for a duplicate at all. */

static void assert_dup_at(struct pstate *ps, int64_t pid, int16_t epoch, int32_t seq,
                          int32_t count, int64_t first_offset)
{
    bool dup = false;
    struct pstate_batch orig;
    assert_int_equal(check(ps, pid, epoch, seq, count, &dup, &orig), 0);
    assert_true(dup);
    assert_int_equal(orig.first_offset, first_offset);
    assert_int_equal(orig.last_offset, first_offset + count - 1);
}

static void assert_not_dup(struct pstate *ps, int64_t pid, int16_t epoch, int32_t seq,
                           int32_t count, int16_t want)
{
    bool dup = true;
    struct pstate_batch orig;
    assert_int_equal(check(ps, pid, epoch, seq, count, &dup, &orig), want);
    assert_false(dup);
}

/* The same sequences in a new epoch (librdkafka bumps after a timed-out
 * batch and restarts at 0): a retry is matched within its own epoch only. */
static void test_pstate_duplicate_matched_within_its_epoch(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    assert_int_equal(append(ps, 4, 0, 0, 3, 100), 0);
    assert_int_equal(append(ps, 4, 0, 3, 3, 103), 0);
    assert_int_equal(append(ps, 4, 1, 0, 3, 200), 0); /* same sequences, epoch 1 */
    assert_dup_at(ps, 4, 1, 0, 3, 200);
    /* The epoch-0 retry of the same sequences is fenced, never answered 200. */
    assert_not_dup(ps, 4, 0, 0, 3, KERR_INVALID_PRODUCER_EPOCH);
    assert_not_dup(ps, 4, 0, 3, 3, KERR_INVALID_PRODUCER_EPOCH);
    /* A later epoch still at sequence 0 is a new batch, not epoch 1's. */
    assert_not_dup(ps, 4, 2, 0, 3, KERR_NONE);
    pstate_free(ps);
}

/* Two producers with the same sequences in one partition: each retry gets
 * its own producer's offsets. */
static void test_pstate_duplicate_matched_by_producer(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(append(ps, 10, 0, i * 2, 2, 10 * i), 0);
        assert_int_equal(append(ps, 11, 0, i * 2, 2, 10 * i + 5), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_dup_at(ps, 10, 0, i * 2, 2, 10 * i);
        assert_dup_at(ps, 11, 0, i * 2, 2, 10 * i + 5);
    }
    pstate_free(ps);
}

/* A retry that covers other records than one original batch (merged,
 * split, or grown): never answered with an original's offsets. */
static void test_pstate_reshaped_retry_is_not_a_duplicate(void **state)
{
    (void)state;
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    assert_int_equal(append(ps, 2, 0, 0, 3, 50), 0);  /* seq 0-2 at 50-52 */
    assert_int_equal(append(ps, 2, 0, 3, 3, 53), 0);  /* seq 3-5 at 53-55 */
    assert_not_dup(ps, 2, 0, 0, 6, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* merged */
    assert_not_dup(ps, 2, 0, 0, 2, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* split, head */
    assert_not_dup(ps, 2, 0, 1, 2, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* split, tail */
    assert_not_dup(ps, 2, 0, 3, 5, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* grown */
    assert_not_dup(ps, 2, 0, 4, 2, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* inside the last */
    assert_dup_at(ps, 2, 0, 0, 3, 50);
    assert_dup_at(ps, 2, 0, 3, 3, 53);
    pstate_free(ps);
}

/* The five-batch window rebuilt from a snapshot plus the log after it (a
 * restarted broker, or a new leader) answers every retry with the same
 * offsets as the state that saw the appends, also across an epoch bump. */
static void test_pstate_window_rebuilt_from_snapshot_and_log(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("pstate-window");
    buf_writer w;
    buf_writer_init(&w);
    struct pstate *live, *back;
    assert_int_equal(pstate_new(&live), 0);
    assert_int_equal(pstate_new(&back), 0);
    int64_t off = 0;
    size_t snap_at = 0;
    int64_t snap_off = 0;
    for (int i = 0; i < 9; i++) {
        int16_t epoch = i < 6 ? 0 : 1;
        int32_t seq = i < 6 ? i * 2 : (i - 6) * 2;
        if (i == 3) { /* the snapshot of a roll after three batches */
            assert_int_equal(pstate_snapshot_write(live, dir, off, 0), 0);
            snap_at = w.len;
            snap_off = off;
        }
        /* Checked and recorded as the leader does, from the batch's own header. */
        size_t start = w.len;
        add_batch(&w, 8, epoch, seq, 2, off);
        struct batch_header h;
        assert_int_equal(batch_parse_header(w.data + start, w.len - start, &h), 0);
        bool dup;
        struct pstate_batch orig;
        assert_int_equal(pstate_check(live, &h, &dup, &orig), 0);
        assert_false(dup);
        assert_int_equal(pstate_update(live, &h), 0);
        off += 2;
        add_batch(&w, -1, -1, -1, 1, off); /* another client's plain batch */
        off += 1;
    }
    int64_t at;
    assert_int_equal(pstate_snapshot_load(back, dir, INT64_MAX, NULL, NULL, &at), 0);
    assert_int_equal(at, snap_off);
    assert_int_equal(pstate_load(back, w.data + snap_at, w.len - snap_at), 0);
    assert_same(live, back);
    /* Epoch 1 holds three batches (offsets 18, 21, 24); epoch 0 is fenced. */
    for (int i = 0; i < 3; i++) {
        assert_dup_at(live, 8, 1, i * 2, 2, 18 + 3 * i);
        assert_dup_at(back, 8, 1, i * 2, 2, 18 + 3 * i);
    }
    assert_not_dup(back, 8, 0, 10, 2, KERR_INVALID_PRODUCER_EPOCH);
    /* From the log alone: the same. */
    pstate_clear(back);
    assert_int_equal(pstate_load(back, w.data, w.len), 0);
    assert_same(live, back);
    pstate_free(live);
    pstate_free(back);
    buf_writer_deinit(&w);
    testutil_rmtree(dir);
}

/* A new leader whose log lost the original (truncated below it) rebuilds
 * without it: the retry is appended again at a new offset (answered with
 * that one), never with the offsets of the batch that is gone; a retry past
 * the cut is a gap. */
static void test_pstate_retry_of_truncated_batch_is_appended_again(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    size_t cut = 0;
    for (int i = 0; i < 5; i++) {
        if (i == 3)
            cut = w.len;
        add_batch(&w, 3, 0, i, 1, i);
    }
    struct pstate *ps;
    assert_int_equal(pstate_new(&ps), 0);
    assert_int_equal(pstate_load(ps, w.data, w.len), 0);
    assert_dup_at(ps, 3, 0, 3, 1, 3);
    /* Truncated to offset 3: rebuilt from what is left. */
    pstate_clear(ps);
    assert_int_equal(pstate_load(ps, w.data, cut), 0);
    assert_dup_at(ps, 3, 0, 2, 1, 2);
    assert_not_dup(ps, 3, 0, 3, 1, KERR_NONE);
    assert_not_dup(ps, 3, 0, 4, 1, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* Appended again at the new log end (another client wrote offset 3). */
    struct batch_header h = hdr(3, 0, 3, 1, 4);
    assert_int_equal(pstate_update(ps, &h), 0);
    assert_dup_at(ps, 3, 0, 3, 1, 4);
    pstate_free(ps);
    buf_writer_deinit(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pstate_duplicate_of_each_of_last_five),
        cmocka_unit_test(test_pstate_gap_is_out_of_order),
        cmocka_unit_test(test_pstate_sequence_wraps),
        cmocka_unit_test(test_pstate_epoch_bump_and_fencing),
        cmocka_unit_test(test_pstate_unknown_producer_may_start_anywhere),
        cmocka_unit_test(test_pstate_expiry),
        cmocka_unit_test(test_pstate_rebuild_from_batches),
        cmocka_unit_test(test_pstate_snapshot_roundtrip_and_corruption),
        cmocka_unit_test(test_pstate_duplicate_matched_within_its_epoch),
        cmocka_unit_test(test_pstate_duplicate_matched_by_producer),
        cmocka_unit_test(test_pstate_reshaped_retry_is_not_a_duplicate),
        cmocka_unit_test(test_pstate_window_rebuilt_from_snapshot_and_log),
        cmocka_unit_test(test_pstate_retry_of_truncated_batch_is_appended_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
