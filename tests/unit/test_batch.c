/* Tests for common/batch.c: Kafka v2 record batch validation, the broker-owned
 * header stores, record and header iteration, and the builder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/buf.h"
#include "common/crc32c.h"

#define TS0 INT64_C(1700000000000)

/* One record (timestamp TS0+5, key "k", value "v1", header "h" with a null value)
 * encoded by hand from the Kafka protocol description; the CRC was computed with
 * an independent bitwise CRC-32C (Castagnoli) implementation. */
static const uint8_t known_batch[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* baseOffset 0 */
    0x00, 0x00, 0x00, 0x3e,                         /* batchLength 62 */
    0xff, 0xff, 0xff, 0xff,                         /* partitionLeaderEpoch -1 */
    0x02,                                           /* magic */
    0xd9, 0x38, 0x8a, 0x70,                         /* crc */
    0x00, 0x00,                                     /* attributes */
    0x00, 0x00, 0x00, 0x00,                         /* lastOffsetDelta */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, /* baseTimestamp */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05, /* maxTimestamp */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* producerId */
    0xff, 0xff,                                     /* producerEpoch */
    0xff, 0xff, 0xff, 0xff,                         /* baseSequence */
    0x00, 0x00, 0x00, 0x01,                         /* recordCount */
    0x18,                                           /* record length 12 */
    0x00,                                           /* attributes */
    0x0a,                                           /* timestampDelta 5 */
    0x00,                                           /* offsetDelta 0 */
    0x02, 0x6b,                                     /* key "k" */
    0x04, 0x76, 0x31,                               /* value "v1" */
    0x02,                                           /* 1 header */
    0x02, 0x68,                                     /* header key "h" */
    0x01,                                           /* header value null */
};

/* ---- helpers ---------------------------------------------------------------- */

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

static void put_i32(uint8_t *p, size_t off, int32_t v)
{
    buf_store_be32(p + off, (uint32_t)v);
}

static void put_i16(uint8_t *p, size_t off, int16_t v)
{
    buf_store_be16(p + off, (uint16_t)v);
}

/* Recompute the CRC after a test patched checksummed bytes, so that the check under
 * test is the one that fires. */
static void fix_crc(uint8_t *p)
{
    int32_t length = (int32_t)buf_load_be32(p + BATCH_OFF_LENGTH);
    uint32_t crc = crc32c_update(0, p + BATCH_OFF_ATTRIBUTES,
                                 (size_t)length + BATCH_LOG_OVERHEAD - BATCH_OFF_ATTRIBUTES);
    buf_store_be32(p + BATCH_OFF_CRC, crc);
}

/* Build @n records "key<i>" -> "value<i>" with timestamps TS0 + i into @w. */
static void build_simple(buf_writer *w, int n)
{
    struct batch_builder b;
    assert_int_equal(batch_builder_begin(&b, w, TS0), 0);
    for (int i = 0; i < n; i++) {
        char key[16], value[16];
        int kl = snprintf(key, sizeof(key), "key%d", i);
        int vl = snprintf(value, sizeof(value), "value%d", i);
        assert_int_equal(batch_builder_add(&b, TS0 + i, key, kl, value, vl, NULL, 0), 0);
    }
    assert_int_equal(batch_builder_finish(&b), 0);
}

/* @n records with null key, null value, no headers and timestamp delta 0: each
 * takes the minimum 7 bytes while offset deltas fit one varint byte (n <= 64). */
static void build_minimal(buf_writer *w, int n)
{
    struct batch_builder b;
    assert_int_equal(batch_builder_begin(&b, w, TS0), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(batch_builder_add(&b, TS0, NULL, -1, NULL, -1, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
}

static bool slice_eq(buf_slice s, const char *str)
{
    return s.len == (int32_t)strlen(str) && memcmp(s.ptr, str, (size_t)s.len) == 0;
}

/* ---- known vector ----------------------------------------------------------- */

static void test_builder_output_matches_hand_encoded_batch(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    struct batch_builder b;
    struct batch_record_header hdr = {
        .key = {(const uint8_t *)"h", 1},
        .value = {NULL, -1},
    };
    assert_int_equal(batch_builder_begin(&b, &w, TS0), 0);
    assert_int_equal(batch_builder_add(&b, TS0 + 5, "k", 1, "v1", 2, &hdr, 1), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    assert_int_equal(w.len, sizeof(known_batch));
    assert_memory_equal(w.data, known_batch, sizeof(known_batch));
    buf_writer_deinit(&w);
}

static void test_known_batch_validates_and_decodes(void **state)
{
    struct batch_header h;
    assert_int_equal(
        batch_validate(known_batch, sizeof(known_batch), BATCH_VALIDATE_EXACT_COUNT, &h), 0);
    assert_int_equal(h.base_offset, 0);
    assert_int_equal(h.length, 62);
    assert_int_equal(batch_total_size(&h), sizeof(known_batch));
    assert_int_equal(h.partition_leader_epoch, -1);
    assert_int_equal(h.magic, 2);
    assert_int_equal(h.crc, 0xd9388a70u);
    assert_int_equal(h.attributes, 0);
    assert_int_equal(h.last_offset_delta, 0);
    assert_int_equal(h.base_timestamp, TS0);
    assert_int_equal(h.max_timestamp, TS0 + 5);
    assert_int_equal(h.producer_id, -1);
    assert_int_equal(h.producer_epoch, -1);
    assert_int_equal(h.base_sequence, -1);
    assert_int_equal(h.record_count, 1);
    assert_int_equal(batch_compression(&h), BATCH_COMPRESSION_NONE);
    assert_int_equal(batch_last_offset(&h), 0);

    struct batch_header p;
    assert_int_equal(batch_parse_header(known_batch, BATCH_HEADER_SIZE, &p), 0);
    assert_int_equal(p.length, h.length);
    assert_int_equal(p.crc, h.crc);
    assert_int_equal(p.max_timestamp, h.max_timestamp);
    assert_int_equal(p.record_count, h.record_count);
    assert_int_equal(batch_parse_header(known_batch, BATCH_HEADER_SIZE - 1, &p), -ENODATA);
}

static void test_known_batch_records_decode(void **state)
{
    struct batch_record_iter it;
    struct batch_record rec;
    assert_int_equal(batch_records_begin(known_batch, sizeof(known_batch), &it), 0);
    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(rec.attributes, 0);
    assert_int_equal(rec.timestamp_delta, 5);
    assert_int_equal(rec.offset_delta, 0);
    assert_true(slice_eq(rec.key, "k"));
    assert_true(slice_eq(rec.value, "v1"));
    assert_int_equal(rec.header_count, 1);

    struct batch_header_iter hit;
    struct batch_record_header hdr;
    batch_record_headers_begin(&rec, &hit);
    assert_int_equal(batch_record_headers_next(&hit, &hdr), 1);
    assert_true(slice_eq(hdr.key, "h"));
    assert_int_equal(hdr.value.len, -1);
    assert_int_equal(batch_record_headers_next(&hit, &hdr), 0);

    assert_int_equal(batch_records_next(&it, &rec), 0);
    assert_int_equal(batch_records_next(&it, &rec), 0);
}

/* ---- validation ------------------------------------------------------------- */

static void test_corrupt_checksummed_byte_is_eilseq(void **state)
{
    /* every byte the CRC covers, and the CRC itself */
    for (size_t i = BATCH_OFF_CRC; i < sizeof(known_batch); i++) {
        uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
        p[i] ^= 0x01;
        assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -EILSEQ);
        free(p);
    }
}

static void test_broker_owned_fields_are_outside_crc(void **state)
{
    uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
    struct batch_header h;

    batch_set_base_offset(p, INT64_C(123456789012));
    batch_set_partition_leader_epoch(p, 42);
    assert_int_equal(batch_validate(p, sizeof(known_batch), BATCH_VALIDATE_EXACT_COUNT, &h), 0);
    assert_int_equal(h.base_offset, INT64_C(123456789012));
    assert_int_equal(h.partition_leader_epoch, 42);
    assert_int_equal(batch_last_offset(&h), INT64_C(123456789012));
    /* only those 12 bytes changed */
    assert_memory_equal(p + BATCH_OFF_LENGTH, known_batch + BATCH_OFF_LENGTH, 4);
    assert_memory_equal(p + BATCH_OFF_MAGIC, known_batch + BATCH_OFF_MAGIC,
                        sizeof(known_batch) - BATCH_OFF_MAGIC);
    free(p);
}

static void test_every_truncation_is_enodata(void **state)
{
    for (size_t n = 0; n < sizeof(known_batch); n++) {
        uint8_t *p = dup_bytes(known_batch, n); /* exact-size heap copy: ASan sees overreads */
        assert_int_equal(batch_validate(p, n, 0, NULL), -ENODATA);
        assert_int_equal(batch_validate(p, n, BATCH_VALIDATE_EXACT_COUNT, NULL), -ENODATA);
        if (n > 0)
            assert_int_equal(batch_validate_all(p, n, 0, NULL, NULL), -ENODATA);
        free(p);
    }
}

static void test_trailing_bytes_after_batch_are_ignored_by_validate(void **state)
{
    uint8_t buf[sizeof(known_batch) + 5];
    memcpy(buf, known_batch, sizeof(known_batch));
    memset(buf + sizeof(known_batch), 0xee, 5);
    struct batch_header h;
    assert_int_equal(batch_validate(buf, sizeof(buf), 0, &h), 0);
    assert_int_equal(batch_total_size(&h), sizeof(known_batch));
}

static void test_wrong_magic_is_ebadmsg(void **state)
{
    int8_t magics[] = {0, 1, 3, -1};
    for (size_t i = 0; i < sizeof(magics); i++) {
        uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
        p[BATCH_OFF_MAGIC] = (uint8_t)magics[i];
        assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -EBADMSG);
        free(p);
    }
}

static void test_length_below_header_is_ebadmsg(void **state)
{
    int32_t lengths[] = {0, 1, 48, -1, INT32_MIN};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
        put_i32(p, BATCH_OFF_LENGTH, lengths[i]);
        assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -EBADMSG);
        free(p);
    }
    /* 49 is a header with no records: the length is fine, the count is not */
    uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
    put_i32(p, BATCH_OFF_LENGTH, 49);
    fix_crc(p);
    assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -EBADMSG);
    free(p);
}

static void test_length_beyond_buffer_is_enodata(void **state)
{
    uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
    put_i32(p, BATCH_OFF_LENGTH, 63);
    assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -ENODATA);
    put_i32(p, BATCH_OFF_LENGTH, INT32_MAX);
    assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -ENODATA);
    free(p);
}

static void test_zero_or_negative_count_is_ebadmsg(void **state)
{
    int32_t counts[] = {0, -1, INT32_MIN};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
        put_i32(p, BATCH_OFF_RECORD_COUNT, counts[i]);
        fix_crc(p);
        assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -EBADMSG);
        assert_int_equal(batch_validate(p, sizeof(known_batch), BATCH_VALIDATE_EXACT_COUNT, NULL),
                         -EBADMSG);
        free(p);
    }
}

static void test_count_against_last_offset_delta(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    build_simple(&w, 3);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), 0);

    /* offsets 0..5 for 3 records: compaction left gaps — relaxed only */
    put_i32(w.data, BATCH_OFF_LAST_OFFSET_DELTA, 5);
    fix_crc(w.data);
    assert_int_equal(batch_validate(w.data, w.len, 0, NULL), 0);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), -EBADMSG);

    /* INT32_MAX + 1 must not wrap into agreement */
    put_i32(w.data, BATCH_OFF_LAST_OFFSET_DELTA, INT32_MAX);
    fix_crc(w.data);
    assert_int_equal(batch_validate(w.data, w.len, 0, NULL), 0);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), -EBADMSG);

    /* fewer offsets than records: never valid */
    int32_t too_small[] = {1, 0, -1, INT32_MIN};
    for (size_t i = 0; i < sizeof(too_small) / sizeof(too_small[0]); i++) {
        put_i32(w.data, BATCH_OFF_LAST_OFFSET_DELTA, too_small[i]);
        fix_crc(w.data);
        assert_int_equal(batch_validate(w.data, w.len, 0, NULL), -EBADMSG);
        assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), -EBADMSG);
    }
    buf_writer_deinit(&w);
}

static void test_last_offset_overflowing_int64_is_ebadmsg(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    build_simple(&w, 3);
    batch_set_base_offset(w.data, INT64_MAX - 2);
    assert_int_equal(batch_validate(w.data, w.len, 0, NULL), 0);
    batch_set_base_offset(w.data, INT64_MAX - 1);
    assert_int_equal(batch_validate(w.data, w.len, 0, NULL), -EBADMSG);
    buf_writer_deinit(&w);
}

static void test_count_larger_than_bytes_allow_is_ebadmsg(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    /* 10 records of exactly 7 bytes: the body holds no more than 10 */
    build_minimal(&w, 10);
    assert_int_equal(w.len, BATCH_HEADER_SIZE + 10 * 7);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), 0);

    put_i32(w.data, BATCH_OFF_RECORD_COUNT, 11);
    put_i32(w.data, BATCH_OFF_LAST_OFFSET_DELTA, 10);
    fix_crc(w.data);
    assert_int_equal(batch_validate(w.data, w.len, 0, NULL), -EBADMSG);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), -EBADMSG);

    /* a huge consistent count in a tiny batch */
    put_i32(w.data, BATCH_OFF_RECORD_COUNT, INT32_MAX);
    put_i32(w.data, BATCH_OFF_LAST_OFFSET_DELTA, INT32_MAX - 1);
    fix_crc(w.data);
    assert_int_equal(batch_validate(w.data, w.len, 0, NULL), -EBADMSG);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), -EBADMSG);
    buf_writer_deinit(&w);
}

static void test_unknown_compression_codec_is_ebadmsg(void **state)
{
    for (int16_t codec = 5; codec <= 7; codec++) {
        uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
        put_i16(p, BATCH_OFF_ATTRIBUTES, codec);
        fix_crc(p);
        assert_int_equal(batch_validate(p, sizeof(known_batch), 0, NULL), -EBADMSG);
        free(p);
    }
}

static void test_compressed_batch_validates_without_decompressing(void **state)
{
    for (int16_t codec = 1; codec <= 4; codec++) {
        uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
        /* the body is not really compressed: validation must not look inside */
        put_i16(p, BATCH_OFF_ATTRIBUTES, (int16_t)(codec | BATCH_ATTR_TRANSACTIONAL));
        fix_crc(p);
        struct batch_header h;
        assert_int_equal(batch_validate(p, sizeof(known_batch), BATCH_VALIDATE_EXACT_COUNT, &h), 0);
        assert_int_equal(batch_compression(&h), codec);

        struct batch_record_iter it;
        assert_int_equal(batch_records_begin(p, sizeof(known_batch), &it), -ENOTSUP);

        /* a compressed body can hold more records than 7 bytes each would allow */
        put_i32(p, BATCH_OFF_RECORD_COUNT, 1000);
        put_i32(p, BATCH_OFF_LAST_OFFSET_DELTA, 999);
        fix_crc(p);
        assert_int_equal(batch_validate(p, sizeof(known_batch), BATCH_VALIDATE_EXACT_COUNT, &h), 0);
        assert_int_equal(h.record_count, 1000);
        free(p);
    }
}

/* ---- LogAppendTime ---------------------------------------------------------- */

static void test_set_log_append_time_stamps_and_keeps_crc_valid(void **state)
{
    uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
    struct batch_header h;
    int64_t now = TS0 + 99999;

    assert_int_equal(batch_set_log_append_time(p, sizeof(known_batch), now), 0);
    assert_int_equal(batch_validate(p, sizeof(known_batch), BATCH_VALIDATE_EXACT_COUNT, &h), 0);
    assert_true(h.attributes & BATCH_ATTR_TIMESTAMP_LOG_APPEND);
    assert_int_equal(h.max_timestamp, now);
    assert_int_equal(h.base_timestamp, TS0);
    assert_int_not_equal(h.crc, 0xd9388a70u);
    /* records untouched */
    assert_memory_equal(p + BATCH_HEADER_SIZE, known_batch + BATCH_HEADER_SIZE,
                        sizeof(known_batch) - BATCH_HEADER_SIZE);
    free(p);

    /* other attribute bits survive */
    p = dup_bytes(known_batch, sizeof(known_batch));
    put_i16(p, BATCH_OFF_ATTRIBUTES, BATCH_COMPRESSION_ZSTD | BATCH_ATTR_TRANSACTIONAL);
    fix_crc(p);
    assert_int_equal(batch_set_log_append_time(p, sizeof(known_batch), now), 0);
    assert_int_equal(batch_validate(p, sizeof(known_batch), 0, &h), 0);
    assert_int_equal(h.attributes, BATCH_COMPRESSION_ZSTD | BATCH_ATTR_TRANSACTIONAL |
                                       BATCH_ATTR_TIMESTAMP_LOG_APPEND);
    free(p);
}

static void test_set_log_append_time_on_short_buffer_is_enodata(void **state)
{
    uint8_t *p = dup_bytes(known_batch, sizeof(known_batch));
    assert_int_equal(batch_set_log_append_time(p, BATCH_HEADER_SIZE - 1, TS0), -ENODATA);
    assert_int_equal(batch_set_log_append_time(p, sizeof(known_batch) - 1, TS0), -ENODATA);
    /* nothing was written */
    assert_memory_equal(p, known_batch, sizeof(known_batch));
    free(p);
}

/* ---- records ---------------------------------------------------------------- */

static void test_records_with_keys_nulls_and_headers_iterate(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    struct batch_builder b;
    struct batch_record_header hdrs[] = {
        {.key = {(const uint8_t *)"h1", 2}, .value = {(const uint8_t *)"v1", 2}},
        {.key = {(const uint8_t *)"h2", 2}, .value = {NULL, -1}},
        {.key = {(const uint8_t *)"", 0}, .value = {(const uint8_t *)"", 0}},
    };
    char big[300];
    memset(big, 'x', sizeof(big));

    assert_int_equal(batch_builder_begin(&b, &w, TS0), 0);
    assert_int_equal(batch_builder_add(&b, TS0, "a", 1, "1", 1, NULL, 0), 0);
    assert_int_equal(batch_builder_add(&b, TS0 + 1000, NULL, -1, "xyz", 3, NULL, 0), 0);
    assert_int_equal(batch_builder_add(&b, TS0 - 7, "k", 1, NULL, -1, hdrs, 3), 0);
    assert_int_equal(batch_builder_add(&b, TS0 + 3, "", 0, big, (int32_t)sizeof(big), hdrs, 1), 0);
    assert_int_equal(batch_builder_finish(&b), 0);

    struct batch_header h;
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, &h), 0);
    assert_int_equal(h.record_count, 4);
    assert_int_equal(h.last_offset_delta, 3);
    assert_int_equal(h.base_timestamp, TS0);
    assert_int_equal(h.max_timestamp, TS0 + 1000);
    assert_int_equal(batch_total_size(&h), w.len);

    struct batch_record_iter it;
    struct batch_record rec;
    struct batch_header_iter hit;
    struct batch_record_header hdr;
    assert_int_equal(batch_records_begin(w.data, w.len, &it), 0);

    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(rec.offset_delta, 0);
    assert_int_equal(rec.timestamp_delta, 0);
    assert_true(slice_eq(rec.key, "a"));
    assert_true(slice_eq(rec.value, "1"));
    assert_int_equal(rec.header_count, 0);
    batch_record_headers_begin(&rec, &hit);
    assert_int_equal(batch_record_headers_next(&hit, &hdr), 0);

    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(rec.offset_delta, 1);
    assert_int_equal(rec.timestamp_delta, 1000);
    assert_int_equal(rec.key.len, -1);
    assert_true(slice_eq(rec.value, "xyz"));

    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(rec.offset_delta, 2);
    assert_int_equal(rec.timestamp_delta, -7);
    assert_true(slice_eq(rec.key, "k"));
    assert_int_equal(rec.value.len, -1);
    assert_int_equal(rec.header_count, 3);
    batch_record_headers_begin(&rec, &hit);
    assert_int_equal(batch_record_headers_next(&hit, &hdr), 1);
    assert_true(slice_eq(hdr.key, "h1"));
    assert_true(slice_eq(hdr.value, "v1"));
    assert_int_equal(batch_record_headers_next(&hit, &hdr), 1);
    assert_true(slice_eq(hdr.key, "h2"));
    assert_int_equal(hdr.value.len, -1);
    assert_int_equal(batch_record_headers_next(&hit, &hdr), 1);
    assert_int_equal(hdr.key.len, 0);
    assert_int_equal(hdr.value.len, 0);
    assert_int_equal(batch_record_headers_next(&hit, &hdr), 0);

    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(rec.offset_delta, 3);
    assert_int_equal(rec.key.len, 0);
    assert_int_equal(rec.value.len, (int32_t)sizeof(big));
    assert_memory_equal(rec.value.ptr, big, sizeof(big));
    assert_int_equal(rec.header_count, 1);

    assert_int_equal(batch_records_next(&it, &rec), 0);
    buf_writer_deinit(&w);
}

static void test_builder_appends_batches_back_to_back(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    buf_write_raw(&w, "prefix", 6); /* a batch need not start at 0 */
    build_simple(&w, 2);
    size_t second = w.len;
    build_minimal(&w, 5);
    build_simple(&w, 1);

    int32_t batches = 0, records = 0;
    assert_int_equal(
        batch_validate_all(w.data + 6, w.len - 6, BATCH_VALIDATE_EXACT_COUNT, &batches, &records),
        0);
    assert_int_equal(batches, 3);
    assert_int_equal(records, 8);

    struct batch_header h;
    assert_int_equal(batch_validate(w.data + second, w.len - second, 0, &h), 0);
    assert_int_equal(h.record_count, 5);
    assert_int_equal(h.max_timestamp, TS0);
    buf_writer_deinit(&w);
}

static void test_builder_rejects_bad_arguments(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    struct batch_builder b;
    struct batch_record_header null_key = {.key = {NULL, -1}, .value = {NULL, -1}};

    assert_int_equal(batch_builder_begin(&b, &w, TS0), 0);
    assert_int_equal(batch_builder_finish(&b), -EINVAL); /* no records */
    assert_int_equal(batch_builder_add(&b, TS0, NULL, 3, NULL, -1, NULL, 0), -EINVAL);
    assert_int_equal(batch_builder_add(&b, TS0, NULL, -2, NULL, -1, NULL, 0), -EINVAL);
    assert_int_equal(batch_builder_add(&b, TS0, NULL, -1, NULL, -2, NULL, 0), -EINVAL);
    assert_int_equal(batch_builder_add(&b, TS0, NULL, -1, NULL, -1, NULL, 1), -EINVAL);
    assert_int_equal(batch_builder_add(&b, TS0, NULL, -1, NULL, -1, &null_key, 1), -EINVAL);
    assert_int_equal(w.len, BATCH_HEADER_SIZE); /* nothing written by the failures */
    assert_int_equal(batch_builder_add(&b, TS0, NULL, -1, NULL, -1, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), 0);
    buf_writer_deinit(&w);
}

static void test_builder_into_full_fixed_writer_fails(void **state)
{
    uint8_t mem[BATCH_HEADER_SIZE + 4];
    buf_writer w;
    buf_writer_init_fixed(&w, mem, sizeof(mem));
    struct batch_builder b;
    assert_int_equal(batch_builder_begin(&b, &w, TS0), 0);
    assert_int_equal(batch_builder_add(&b, TS0, "key", 3, "value", 5, NULL, 0), -ENOBUFS);
    assert_int_equal(batch_builder_finish(&b), -ENOBUFS);

    buf_writer_init_fixed(&w, mem, 10);
    assert_int_equal(batch_builder_begin(&b, &w, TS0), -ENOBUFS);
}

/* Patch the single record of a copy of known_batch: its body (after the length
 * varint) becomes @body with declared length @declared, the batch length and CRC
 * are fixed, and the result is a batch that validates. */
static uint8_t *batch_with_record(const uint8_t *body, size_t body_len, int32_t declared,
                                  size_t *ret_len)
{
    buf_writer w;
    buf_writer_init(&w);
    buf_write_raw(&w, known_batch, BATCH_HEADER_SIZE);
    buf_write_varint(&w, declared);
    buf_write_raw(&w, body, body_len);
    assert_int_equal(buf_writer_error(&w), 0);
    put_i32(w.data, BATCH_OFF_LENGTH, (int32_t)(w.len - BATCH_LOG_OVERHEAD));
    fix_crc(w.data);
    assert_int_equal(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, NULL), 0);
    *ret_len = w.len;
    return w.data; /* the writer's heap buffer, freed by the caller */
}

static int first_record(const uint8_t *p, size_t len, struct batch_record *rec)
{
    struct batch_record_iter it;
    assert_int_equal(batch_records_begin(p, len, &it), 0);
    return batch_records_next(&it, rec);
}

static const uint8_t good_body[] = {0x00, 0x0a, 0x00, 0x02, 0x6b, 0x04,
                                    0x76, 0x31, 0x02, 0x02, 0x68, 0x01};

static void test_record_length_must_match_its_fields(void **state)
{
    struct batch_record rec;
    size_t len;
    uint8_t *p;

    p = batch_with_record(good_body, sizeof(good_body), 12, &len);
    assert_int_equal(first_record(p, len, &rec), 1);
    free(p);

    /* declared one byte short: the header value length falls outside */
    p = batch_with_record(good_body, sizeof(good_body), 11, &len);
    assert_int_equal(first_record(p, len, &rec), -EBADMSG);
    free(p);

    /* declared longer than the batch holds */
    p = batch_with_record(good_body, sizeof(good_body), 13, &len);
    assert_int_equal(first_record(p, len, &rec), -EBADMSG);
    free(p);

    /* an extra byte inside the declared length that no field accounts for */
    uint8_t padded[sizeof(good_body) + 1];
    memcpy(padded, good_body, sizeof(good_body));
    padded[sizeof(good_body)] = 0;
    p = batch_with_record(padded, sizeof(padded), 13, &len);
    assert_int_equal(first_record(p, len, &rec), -EBADMSG);
    free(p);

    int32_t bad_lengths[] = {-1, 0, 5, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
        p = batch_with_record(good_body, sizeof(good_body), bad_lengths[i], &len);
        assert_int_equal(first_record(p, len, &rec), -EBADMSG);
        free(p);
    }
}

static void test_malformed_record_fields_are_ebadmsg(void **state)
{
    struct {
        const char *what;
        uint8_t body[12];
        size_t len;
    } cases[] = {
        /* key length 20 runs past the record */
        {"key too long",
         {0x00, 0x0a, 0x00, 0x28, 0x6b, 0x04, 0x76, 0x31, 0x02, 0x02, 0x68, 0x01},
         12},
        /* key length -2 */
        {"key length -2",
         {0x00, 0x0a, 0x00, 0x03, 0x6b, 0x04, 0x76, 0x31, 0x02, 0x02, 0x68, 0x01},
         12},
        /* header count -1 and nothing after it: only the sign is wrong */
        {"header count -1", {0x00, 0x0a, 0x00, 0x02, 0x6b, 0x04, 0x76, 0x31, 0x01}, 9},
        /* header count 2, one present */
        {"header count 2",
         {0x00, 0x0a, 0x00, 0x02, 0x6b, 0x04, 0x76, 0x31, 0x04, 0x02, 0x68, 0x01},
         12},
        /* header key null (value "h"): sizes add up, only the null key is wrong */
        {"header key null",
         {0x00, 0x0a, 0x00, 0x02, 0x6b, 0x04, 0x76, 0x31, 0x02, 0x01, 0x02, 0x68},
         12},
        /* timestamp varlong never terminates within the record */
        {"endless varint",
         {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
         12},
        /* the record ends inside the header count */
        {"cut before header count", {0x00, 0x0a, 0x00, 0x02, 0x6b, 0x04, 0x76, 0x31}, 8},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct batch_record rec;
        size_t len;
        uint8_t *p = batch_with_record(cases[i].body, cases[i].len, (int32_t)cases[i].len, &len);
        int r = first_record(p, len, &rec);
        if (r != -EBADMSG)
            fail_msg("%s: got %d", cases[i].what, r);
        free(p);
    }
}

static void test_bytes_after_last_record_are_ebadmsg(void **state)
{
    /* the batch says one record, but a second well-formed one follows */
    uint8_t body[2 * sizeof(good_body) + 1];
    memcpy(body, good_body, sizeof(good_body));
    body[sizeof(good_body)] = 0x18;
    memcpy(body + sizeof(good_body) + 1, good_body, sizeof(good_body));
    size_t len;
    uint8_t *p = batch_with_record(body, sizeof(body), 12, &len);

    struct batch_record_iter it;
    struct batch_record rec;
    assert_int_equal(batch_records_begin(p, len, &it), 0);
    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(batch_records_next(&it, &rec), -EBADMSG);
    /* a failed iterator stays failed rather than going on to the extra record */
    assert_int_equal(batch_records_next(&it, &rec), -EBADMSG);
    free(p);
}

static void test_fewer_records_than_count_is_ebadmsg(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    build_simple(&w, 2);
    /* claims 3 records: not valid, but iteration must still fail cleanly */
    put_i32(w.data, BATCH_OFF_RECORD_COUNT, 3);
    struct batch_record_iter it;
    struct batch_record rec;
    assert_int_equal(batch_records_begin(w.data, w.len, &it), 0);
    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(batch_records_next(&it, &rec), 1);
    assert_int_equal(batch_records_next(&it, &rec), -EBADMSG);

    put_i32(w.data, BATCH_OFF_RECORD_COUNT, -1);
    assert_int_equal(batch_records_begin(w.data, w.len, &it), -EBADMSG);
    assert_int_equal(batch_records_begin(w.data, w.len - 1, &it), -ENODATA);
    buf_writer_deinit(&w);
}

/* ---- validate_all ----------------------------------------------------------- */

static void test_validate_all_counts_batches_and_records(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    build_simple(&w, 3);
    build_simple(&w, 1);
    build_minimal(&w, 7);
    int32_t batches = -1, records = -1;
    assert_int_equal(
        batch_validate_all(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, &batches, &records), 0);
    assert_int_equal(batches, 3);
    assert_int_equal(records, 11);
    assert_int_equal(batch_validate_all(w.data, w.len, 0, NULL, NULL), 0);
    buf_writer_deinit(&w);
}

static void test_validate_all_rejects_empty_garbage_and_cut_batches(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    build_simple(&w, 3);
    build_simple(&w, 2);
    size_t whole = w.len;
    int32_t batches = -1, records = -1;

    assert_int_equal(batch_validate_all(w.data, 0, 0, &batches, &records), -EBADMSG);

    /* every cut inside the second batch */
    struct batch_header h;
    assert_int_equal(batch_validate(w.data, w.len, 0, &h), 0);
    size_t first = (size_t)batch_total_size(&h);
    for (size_t n = first + 1; n < whole; n++) {
        uint8_t *p = dup_bytes(w.data, n);
        assert_int_equal(batch_validate_all(p, n, 0, &batches, &records), -ENODATA);
        free(p);
    }

    /* trailing garbage: too short for a length, then an impossible length */
    buf_write_raw(&w, "\x00\x00\x00", 3);
    assert_int_equal(batch_validate_all(w.data, w.len, 0, &batches, &records), -ENODATA);
    buf_write_raw(&w, "\x00\x00\x00\x00\x00\x00\x00\x00\x00", 9);
    assert_int_equal(batch_validate_all(w.data, w.len, 0, &batches, &records), -EBADMSG);

    /* a corrupt second batch */
    w.len = whole;
    w.data[whole - 1] ^= 0x40;
    assert_int_equal(batch_validate_all(w.data, w.len, 0, &batches, &records), -EILSEQ);
    /* outputs untouched on failure */
    assert_int_equal(batches, -1);
    assert_int_equal(records, -1);
    buf_writer_deinit(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_output_matches_hand_encoded_batch),
        cmocka_unit_test(test_known_batch_validates_and_decodes),
        cmocka_unit_test(test_known_batch_records_decode),
        cmocka_unit_test(test_corrupt_checksummed_byte_is_eilseq),
        cmocka_unit_test(test_broker_owned_fields_are_outside_crc),
        cmocka_unit_test(test_every_truncation_is_enodata),
        cmocka_unit_test(test_trailing_bytes_after_batch_are_ignored_by_validate),
        cmocka_unit_test(test_wrong_magic_is_ebadmsg),
        cmocka_unit_test(test_length_below_header_is_ebadmsg),
        cmocka_unit_test(test_length_beyond_buffer_is_enodata),
        cmocka_unit_test(test_zero_or_negative_count_is_ebadmsg),
        cmocka_unit_test(test_count_against_last_offset_delta),
        cmocka_unit_test(test_last_offset_overflowing_int64_is_ebadmsg),
        cmocka_unit_test(test_count_larger_than_bytes_allow_is_ebadmsg),
        cmocka_unit_test(test_unknown_compression_codec_is_ebadmsg),
        cmocka_unit_test(test_compressed_batch_validates_without_decompressing),
        cmocka_unit_test(test_set_log_append_time_stamps_and_keeps_crc_valid),
        cmocka_unit_test(test_set_log_append_time_on_short_buffer_is_enodata),
        cmocka_unit_test(test_records_with_keys_nulls_and_headers_iterate),
        cmocka_unit_test(test_builder_appends_batches_back_to_back),
        cmocka_unit_test(test_builder_rejects_bad_arguments),
        cmocka_unit_test(test_builder_into_full_fixed_writer_fails),
        cmocka_unit_test(test_record_length_must_match_its_fields),
        cmocka_unit_test(test_malformed_record_fields_are_ebadmsg),
        cmocka_unit_test(test_bytes_after_last_record_are_ebadmsg),
        cmocka_unit_test(test_fewer_records_than_count_is_ebadmsg),
        cmocka_unit_test(test_validate_all_counts_batches_and_records),
        cmocka_unit_test(test_validate_all_rejects_empty_garbage_and_cut_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
