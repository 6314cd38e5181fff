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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
