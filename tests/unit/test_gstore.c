/* Tests for the pure parts of broker/group's offsets side: the
 * OffsetCommitKey/Value records against the bytes Kafka writes (built by hand
 * from Kafka's OffsetCommitKey.json / OffsetCommitValue.json), the group ->
 * partition mapping against values Java computes, the offset map and its
 * expiry rule (offset_map.c), and the lag module (lag.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/group/gstore.h"
#include "broker/group/lag.h"
#include "broker/group/offset_map.h"
#include "broker/group/offset_records.h"

static buf_slice sl(const void *p, size_t n)
{
    buf_slice s = {.ptr = p, .len = (int32_t)n};
    return s;
}

/* ---- records --------------------------------------------------------------------- */

/* OffsetCommitKey v1: int16 version, string group, string topic, int32 partition. */
static const uint8_t KEY_V1[] = {0x00, 0x01, 0x00, 0x02, 'g', '1', 0x00, 0x01, 't',
                                 0x00, 0x00, 0x00, 0x03};

/* OffsetCommitValue v3: offset 42, leader epoch 5, metadata "md",
 * commit timestamp 1700000000000 (0x0000018bcfe56800). */
static const uint8_t VALUE_V3[] = {0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0, 0, 0, 5,
                                   0x00, 0x02, 'm', 'd', 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5,
                                   0x68, 0x00};

/* OffsetCommitValue v1: offset 7, metadata "", commit 1000, expire 2000. */
static const uint8_t VALUE_V1[] = {0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 7, 0x00, 0x00,
                                   0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0x07, 0xd0};

static void test_key_round_trip_matches_kafka_bytes(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    orec_key_encode(&w, "g1", "t", 3);
    assert_int_equal(buf_writer_error(&w), 0);
    assert_int_equal(w.len, sizeof(KEY_V1));
    assert_memory_equal(w.data, KEY_V1, sizeof(KEY_V1));
    struct orec_key k;
    assert_int_equal(orec_key_decode(sl(w.data, w.len), &k), 0);
    assert_int_equal(k.group.len, 2);
    assert_memory_equal(k.group.ptr, "g1", 2);
    assert_int_equal(k.topic.len, 1);
    assert_int_equal(k.partition, 3);
    assert_int_equal(orec_key_version(sl(KEY_V1, sizeof(KEY_V1))), 1);
    /* version 0 has the same fields */
    uint8_t v0[sizeof(KEY_V1)];
    memcpy(v0, KEY_V1, sizeof(v0));
    v0[1] = 0;
    assert_int_equal(orec_key_decode(sl(v0, sizeof(v0)), &k), 0);
    assert_int_equal(k.partition, 3);
    buf_writer_deinit(&w);
}

static void test_group_metadata_key_is_not_an_offset_key(void **state)
{
    (void)state;
    static const uint8_t gkey[] = {0x00, 0x02, 0x00, 0x02, 'g', '1'};
    struct orec_key k;
    assert_int_equal(orec_key_decode(sl(gkey, sizeof(gkey)), &k), -ENOENT);
    assert_int_equal(orec_key_version(sl(gkey, sizeof(gkey))), 2);
}

static void test_malformed_keys_are_refused(void **state)
{
    (void)state;
    struct orec_key k;
    assert_int_equal(orec_key_decode(sl(KEY_V1, 1), &k), -EBADMSG);
    for (size_t n = 2; n < sizeof(KEY_V1); n++)
        assert_int_equal(orec_key_decode(sl(KEY_V1, n), &k), -EBADMSG);
    static const uint8_t neg[] = {0x00, 0x01, 0xff, 0xff, 0x00, 0x01, 't', 0, 0, 0, 0};
    assert_int_equal(orec_key_decode(sl(neg, sizeof(neg)), &k), -EBADMSG); /* null group */
    buf_slice null = {.ptr = NULL, .len = -1};
    assert_int_equal(orec_key_version(null), -EBADMSG);
}

static void test_value_v3_round_trip_matches_kafka_bytes(void **state)
{
    (void)state;
    struct orec_value v = {.offset = 42,
                           .leader_epoch = 5,
                           .metadata = sl("md", 2),
                           .commit_timestamp = 1700000000000LL,
                           .expire_timestamp = -1};
    buf_writer w;
    buf_writer_init(&w);
    orec_value_encode(&w, &v);
    assert_int_equal(w.len, sizeof(VALUE_V3));
    assert_memory_equal(w.data, VALUE_V3, sizeof(VALUE_V3));
    struct orec_value d;
    assert_int_equal(orec_value_decode(sl(w.data, w.len), &d), 0);
    assert_int_equal(d.offset, 42);
    assert_int_equal(d.leader_epoch, 5);
    assert_int_equal(d.metadata.len, 2);
    assert_memory_equal(d.metadata.ptr, "md", 2);
    assert_int_equal(d.commit_timestamp, 1700000000000LL);
    assert_int_equal(d.expire_timestamp, -1);
    buf_writer_deinit(&w);
}

static void test_value_with_expire_timestamp_is_v1(void **state)
{
    (void)state;
    struct orec_value v = {.offset = 7,
                           .leader_epoch = 9, /* v1 has no leader epoch */
                           .metadata = sl("", 0),
                           .commit_timestamp = 1000,
                           .expire_timestamp = 2000};
    buf_writer w;
    buf_writer_init(&w);
    orec_value_encode(&w, &v);
    assert_int_equal(w.len, sizeof(VALUE_V1));
    assert_memory_equal(w.data, VALUE_V1, sizeof(VALUE_V1));
    struct orec_value d;
    assert_int_equal(orec_value_decode(sl(w.data, w.len), &d), 0);
    assert_int_equal(d.offset, 7);
    assert_int_equal(d.leader_epoch, -1);
    assert_int_equal(d.expire_timestamp, 2000);
    buf_writer_deinit(&w);
}

static void test_values_v0_and_v2_decode(void **state)
{
    (void)state;
    /* v0 and v2: offset, metadata, commit timestamp; a null metadata reads as "" */
    static const uint8_t v0[] = {0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0xff,
                                 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t v2[sizeof(v0)];
    memcpy(v2, v0, sizeof(v2));
    v2[1] = 2;
    struct orec_value d;
    assert_int_equal(orec_value_decode(sl(v0, sizeof(v0)), &d), 0);
    assert_int_equal(d.offset, 9);
    assert_int_equal(d.metadata.len, 0);
    assert_int_equal(d.commit_timestamp, 1);
    assert_int_equal(orec_value_decode(sl(v2, sizeof(v2)), &d), 0);
    assert_int_equal(d.offset, 9);
    /* unknown versions and every truncation are refused */
    uint8_t v9[sizeof(v0)];
    memcpy(v9, v0, sizeof(v9));
    v9[1] = 9;
    assert_int_equal(orec_value_decode(sl(v9, sizeof(v9)), &d), -EBADMSG);
    for (size_t n = 0; n < sizeof(VALUE_V3); n++)
        assert_int_equal(orec_value_decode(sl(VALUE_V3, n), &d), -EBADMSG);
}

/* ---- mapping --------------------------------------------------------------------- */

static void test_partition_of_matches_java(void **state)
{
    (void)state;
    /* "g1".hashCode() = 3242 -> 3242 % 50 = 42 */
    assert_int_equal(gstore_partition_of("g1", 50), 42);
    assert_int_equal(gstore_partition_of("", 50), 0);
    /* "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs -> 0 */
    assert_int_equal(gstore_partition_of("polygenelubricants", 50), 0);
    /* negative hash: "analytics-consumer".hashCode() = -1043791267 (0xc1c9025d);
     * Kafka's Utils.abs is Math.abs (MIN_VALUE -> 0): 1043791267 % 50 = 17, not
     * the 31 that h & 0x7fffffff (the producer's toPositive) would give */
    assert_int_equal(gstore_partition_of("analytics-consumer", 50), 17);
    /* "movers".hashCode() = -1068262958: 1068262958 % 10 = 8 (the mask: 0) */
    assert_int_equal(gstore_partition_of("movers", 10), 8);
    /* UTF-16: "Ω" is one code unit 0x03a9; U+1D11E is the pair d834 dd1e */
    assert_int_equal(gstore_partition_of("\xce\xa9", 1000), 0x3a9 % 1000);
    assert_int_equal(gstore_partition_of("\xf0\x9d\x84\x9e", 100000),
                     (31 * 0xd834 + 0xdd1e) % 100000);
}

/* ---- offset map ------------------------------------------------------------------ */

static void test_map_put_get_replace_remove(void **state)
{
    (void)state;
    struct omap *m;
    assert_int_equal(omap_new(&m), 0);
    assert_int_equal(omap_put(m, "g", 3, "t", 0, 10, 1, "a", 100, -1), 0);
    assert_int_equal(omap_put(m, "g", 3, "t", 1, 11, 1, "", 100, -1), 0);
    assert_int_equal(omap_put(m, "h", 4, "t", 0, 5, -1, NULL, 100, -1), 0);
    assert_int_equal(omap_group_count(m), 2);
    assert_int_equal(omap_offset_count(m), 3);
    const struct omap_entry *e = omap_get(m, "g", "t", 0);
    assert_non_null(e);
    assert_int_equal(e->offset, 10);
    assert_string_equal(e->metadata, "a");
    assert_int_equal(omap_put(m, "g", 3, "t", 0, 20, 2, "b", 200, -1), 0);
    e = omap_get(m, "g", "t", 0);
    assert_int_equal(e->offset, 20);
    assert_int_equal(e->leader_epoch, 2);
    assert_string_equal(e->metadata, "b");
    assert_int_equal(omap_offset_count(m), 3);
    assert_null(omap_get(m, "g", "t", 2));
    assert_null(omap_get(m, "x", "t", 0));
    assert_true(omap_remove(m, "g", "t", 0));
    assert_false(omap_remove(m, "g", "t", 0));
    assert_true(omap_remove(m, "g", "t", 1));
    assert_null(omap_group(m, "g")); /* a group with no offsets is gone */
    assert_int_equal(omap_group_count(m), 1);
    omap_remove_group(m, "h");
    assert_int_equal(omap_group_count(m), 0);
    assert_int_equal(omap_offset_count(m), 0);
    omap_free(m);
}

static void test_map_grows_and_drops_a_partition(void **state)
{
    (void)state;
    struct omap *m;
    assert_int_equal(omap_new(&m), 0);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "group-%d", i);
        for (int p = 0; p < 3; p++)
            assert_int_equal(omap_put(m, name, i % 7, "topic", p, i, -1, "", 0, -1), 0);
    }
    assert_int_equal(omap_group_count(m), 1000);
    assert_int_equal(omap_offset_count(m), 3000);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "group-%d", i);
        assert_int_equal(omap_get(m, name, "topic", 2)->offset, i);
    }
    omap_drop_partition(m, 3);
    size_t left = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "group-%d", i);
        const struct omap_group *g = omap_group(m, name);
        if (i % 7 == 3)
            assert_null(g);
        else
            left += g != NULL;
    }
    assert_int_equal(omap_group_count(m), left);
    assert_int_equal(omap_offset_count(m), left * 3);
    omap_free(m);
}

static void test_expiry_rule(void **state)
{
    (void)state;
    struct omap_entry e = {.commit_timestamp = 1000, .expire_timestamp = -1};
    assert_false(omap_entry_expired(&e, 1000 + 59999, 60000));
    assert_true(omap_entry_expired(&e, 1000 + 60000, 60000));
    /* an explicit expire timestamp (OffsetCommit v2-4 retention) wins */
    e.expire_timestamp = 1500;
    assert_false(omap_entry_expired(&e, 1499, 60000));
    assert_true(omap_entry_expired(&e, 1500, 60000));
}

/* ---- lag ------------------------------------------------------------------------- */

static int64_t fake_end(void *ud, const char *topic, int32_t partition)
{
    (void)ud;
    if (strcmp(topic, "gone") == 0)
        return -1;
    return 100 + partition;
}

static void test_lag_rows_sorted_with_unknowns(void **state)
{
    (void)state;
    struct omap *m;
    assert_int_equal(omap_new(&m), 0);
    omap_put(m, "g", 0, "b", 1, 90, -1, "", 0, -1);
    omap_put(m, "g", 0, "a", 2, 102, -1, "", 0, -1);
    omap_put(m, "g", 0, "a", 0, 150, -1, "", 0, -1); /* past the end: no lag */
    omap_put(m, "g", 0, "gone", 0, 5, -1, "", 0, -1);
    struct lag_source src = {.log_end = fake_end};
    struct lag_row *rows;
    size_t n;
    assert_int_equal(lag_group(m, "g", &src, &rows, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].topic, "a");
    assert_int_equal(rows[0].partition, 0);
    assert_int_equal(rows[0].lag, 0);
    assert_int_equal(rows[1].partition, 2);
    assert_int_equal(rows[1].log_end, 102);
    assert_int_equal(rows[1].lag, 0);
    assert_string_equal(rows[2].topic, "b");
    assert_int_equal(rows[2].committed, 90);
    assert_int_equal(rows[2].log_end, 101);
    assert_int_equal(rows[2].lag, 11);
    assert_string_equal(rows[3].topic, "gone");
    assert_int_equal(rows[3].lag, -1);
    assert_int_equal(lag_total(rows, n), 11);
    free(rows);
    assert_int_equal(lag_group(m, "nobody", &src, &rows, &n), 0);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_int_equal(lag_of(-1, 5), -1);
    assert_int_equal(lag_of(5, -1), -1);
    assert_int_equal(lag_of(3, 10), 7);
    omap_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_round_trip_matches_kafka_bytes),
        cmocka_unit_test(test_group_metadata_key_is_not_an_offset_key),
        cmocka_unit_test(test_malformed_keys_are_refused),
        cmocka_unit_test(test_value_v3_round_trip_matches_kafka_bytes),
        cmocka_unit_test(test_value_with_expire_timestamp_is_v1),
        cmocka_unit_test(test_values_v0_and_v2_decode),
        cmocka_unit_test(test_partition_of_matches_java),
        cmocka_unit_test(test_map_put_get_replace_remove),
        cmocka_unit_test(test_map_grows_and_drops_a_partition),
        cmocka_unit_test(test_expiry_rule),
        cmocka_unit_test(test_lag_rows_sorted_with_unknowns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
