/* Tests for common/buf: writer -> reader round trips of every primitive, varint
 * edge values and malformed encodings, truncation at every byte leaving the
 * reader unchanged, caps, null markers, array counts against remaining bytes,
 * tagged fields, and the writers' sticky errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

/* ---- round trips ------------------------------------------------------------ */

static void test_buf_fixed_width_round_trip(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    buf_write_u8(&w, 0xab);
    buf_write_i8(&w, -2);
    buf_write_u16(&w, 0xbeef);
    buf_write_i16(&w, INT16_MIN);
    buf_write_u32(&w, 0xdeadbeef);
    buf_write_i32(&w, INT32_MIN);
    buf_write_u64(&w, 0x0123456789abcdefull);
    buf_write_i64(&w, INT64_MIN);
    buf_write_bool(&w, true);
    buf_write_bool(&w, false);
    assert_int_equal(buf_writer_error(&w), 0);
    assert_int_equal(w.len, 1 + 1 + 2 + 2 + 4 + 4 + 8 + 8 + 1 + 1);
    /* Big-endian on the wire. */
    assert_memory_equal(w.data + 2, "\xbe\xef\x80\x00\xde\xad\xbe\xef", 8);

    buf_reader r;
    buf_reader_init(&r, w.data, w.len);
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    bool b;
    assert_int_equal(buf_read_u8(&r, &u8), 0);
    assert_int_equal(u8, 0xab);
    assert_int_equal(buf_read_i8(&r, &i8), 0);
    assert_int_equal(i8, -2);
    assert_int_equal(buf_read_u16(&r, &u16), 0);
    assert_int_equal(u16, 0xbeef);
    assert_int_equal(buf_read_i16(&r, &i16), 0);
    assert_int_equal(i16, INT16_MIN);
    assert_int_equal(buf_read_u32(&r, &u32), 0);
    assert_int_equal(u32, 0xdeadbeef);
    assert_int_equal(buf_read_i32(&r, &i32), 0);
    assert_int_equal(i32, INT32_MIN);
    assert_int_equal(buf_read_u64(&r, &u64), 0);
    assert_true(u64 == 0x0123456789abcdefull);
    assert_int_equal(buf_read_i64(&r, &i64), 0);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(buf_read_bool(&r, &b), 0);
    assert_true(b);
    assert_int_equal(buf_read_bool(&r, &b), 0);
    assert_false(b);
    assert_int_equal(buf_reader_remaining(&r), 0);
    assert_int_equal(buf_read_u8(&r, &u8), -ENODATA);
    buf_writer_deinit(&w);
}

static void test_buf_bool_nonzero_byte_is_true(void **state)
{
    (void)state;
    const uint8_t in[] = {0x7f};
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    bool b = false;
    assert_int_equal(buf_read_bool(&r, &b), 0);
    assert_true(b);
}

static const int64_t varint_edges[] = {
    0,
    1,
    -1,
    63,
    64,
    -64,
    -65,
    127,
    128,
    255,
    16383,
    16384,
    INT32_MIN,
    INT32_MAX,
    INT64_MIN,
    INT64_MAX,
    UINT32_MAX,
    2147483648,
    -2147483649LL,
};

static void test_buf_varint_edges_round_trip(void **state)
{
    (void)state;
    size_t n = sizeof(varint_edges) / sizeof(varint_edges[0]);
    for (size_t i = 0; i < n; i++) {
        int64_t v = varint_edges[i];
        buf_writer w;
        buf_writer_init(&w);
        bool fits32 = v >= INT32_MIN && v <= INT32_MAX;
        bool fitsu32 = v >= 0 && v <= UINT32_MAX;
        if (fits32)
            buf_write_varint(&w, (int32_t)v);
        if (fitsu32)
            buf_write_uvarint(&w, (uint32_t)v);
        buf_write_varlong(&w, v);
        buf_write_uvarlong(&w, (uint64_t)v);
        assert_int_equal(buf_writer_error(&w), 0);

        buf_reader r;
        buf_reader_init(&r, w.data, w.len);
        if (fits32) {
            int32_t x;
            assert_int_equal(buf_read_varint(&r, &x), 0);
            assert_int_equal(x, (int32_t)v);
        }
        if (fitsu32) {
            uint32_t x;
            assert_int_equal(buf_read_uvarint(&r, &x), 0);
            assert_int_equal(x, (uint32_t)v);
        }
        int64_t sl;
        assert_int_equal(buf_read_varlong(&r, &sl), 0);
        assert_true(sl == v);
        uint64_t ul;
        assert_int_equal(buf_read_uvarlong(&r, &ul), 0);
        assert_true(ul == (uint64_t)v);
        assert_int_equal(buf_reader_remaining(&r), 0);
        buf_writer_deinit(&w);
    }
}

/* Exact encodings from the Kafka protocol (zigzag maps 0,-1,1,-2 to 0,1,2,3). */
static void test_buf_varint_known_encodings(void **state)
{
    (void)state;
    struct {
        int32_t v;
        const char *enc;
        size_t len;
    } cases[] = {
        {0, "\x00", 1},
        {-1, "\x01", 1},
        {1, "\x02", 1},
        {63, "\x7e", 1},
        {-64, "\x7f", 1},
        {64, "\x80\x01", 2},
        {INT32_MAX, "\xfe\xff\xff\xff\x0f", 5},
        {INT32_MIN, "\xff\xff\xff\xff\x0f", 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t mem[16];
        buf_writer w;
        buf_writer_init_fixed(&w, mem, sizeof(mem));
        assert_int_equal(buf_write_varint(&w, cases[i].v), 0);
        assert_int_equal(w.len, cases[i].len);
        assert_memory_equal(mem, cases[i].enc, cases[i].len);
    }
    uint8_t mem[16];
    buf_writer w;
    buf_writer_init_fixed(&w, mem, sizeof(mem));
    buf_write_uvarint(&w, 300);
    assert_memory_equal(mem, "\xac\x02", 2);
    buf_writer_reset(&w);
    buf_write_uvarint(&w, UINT32_MAX);
    assert_int_equal(w.len, 5);
    assert_memory_equal(mem, "\xff\xff\xff\xff\x0f", 5);
    buf_writer_reset(&w);
    buf_write_uvarlong(&w, UINT64_MAX);
    assert_int_equal(w.len, 10);
    assert_memory_equal(mem, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
}

static void test_buf_overlong_varints_rejected(void **state)
{
    (void)state;
    /* 5th byte with more than 4 bits would overflow 32 bits. */
    const uint8_t u32_overflow[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
    /* Six bytes: continuation on the 5th byte. */
    const uint8_t u32_six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    /* Eleven bytes for a varlong. */
    const uint8_t u64_eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    /* 10th byte above one bit overflows 64 bits. */
    const uint8_t u64_overflow[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    buf_reader r;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;

    buf_reader_init(&r, u32_overflow, sizeof(u32_overflow));
    assert_int_equal(buf_read_uvarint(&r, &u32), -EBADMSG);
    assert_int_equal(buf_read_varint(&r, &i32), -EBADMSG);
    assert_int_equal(r.pos, 0);
    /* The same bytes are a fine varlong. */
    assert_int_equal(buf_read_uvarlong(&r, &u64), 0);
    assert_true(u64 == 0x1ffffffffull);

    buf_reader_init(&r, u32_six, sizeof(u32_six));
    assert_int_equal(buf_read_uvarint(&r, &u32), -EBADMSG);
    assert_int_equal(r.pos, 0);

    buf_reader_init(&r, u64_eleven, sizeof(u64_eleven));
    assert_int_equal(buf_read_uvarlong(&r, &u64), -EBADMSG);
    assert_int_equal(buf_read_varlong(&r, &i64), -EBADMSG);
    assert_int_equal(r.pos, 0);

    buf_reader_init(&r, u64_overflow, sizeof(u64_overflow));
    assert_int_equal(buf_read_uvarlong(&r, &u64), -EBADMSG);
    assert_int_equal(r.pos, 0);

    /* A non-minimal but in-range encoding (0 as 0x80 0x00) is accepted. */
    const uint8_t padded[] = {0x80, 0x00};
    buf_reader_init(&r, padded, sizeof(padded));
    assert_int_equal(buf_read_uvarint(&r, &u32), 0);
    assert_int_equal(u32, 0);
}

/* ---- truncation ------------------------------------------------------------- */

/* A message using every reader, read back in the same order. */
static void write_everything(buf_writer *w)
{
    buf_write_u8(w, 1);
    buf_write_i16(w, -300);
    buf_write_i32(w, 70000);
    buf_write_i64(w, -5000000000LL);
    buf_write_uvarint(w, 300000);
    buf_write_varint(w, -300000);
    buf_write_uvarlong(w, 1ull << 40);
    buf_write_varlong(w, -(1ll << 40));
    buf_write_string(w, "topic", 5);
    buf_write_string(w, NULL, -1);
    buf_write_compact_string(w, "compact", 7);
    buf_write_bytes(w, "\x00\x01\x02", 3);
    buf_write_compact_bytes(w, "xy", 2);
    buf_write_varint_bytes(w, "key", 3);
    buf_write_array_len(w, 2);
    buf_write_compact_array_len(w, 3);
    buf_write_u8(w, 1); /* tagged fields: one field, tag 5, 2 bytes */
    buf_write_u8(w, 5);
    buf_write_u8(w, 2);
    buf_write_u16(w, 0xffff);
}

/* Reads the message back; returns the first error, or 0 after checking values. */
static int read_everything(buf_reader *r)
{
    uint8_t u8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    uint32_t u32;
    uint64_t u64;
    buf_slice s;
    int rc;
#define STEP(call)                                                                                 \
    do {                                                                                           \
        size_t before = r->pos;                                                                    \
        if ((rc = (call)) < 0) {                                                                   \
            assert_int_equal(r->pos, before);                                                      \
            return rc;                                                                             \
        }                                                                                          \
    } while (0)
    STEP(buf_read_u8(r, &u8));
    assert_int_equal(u8, 1);
    STEP(buf_read_i16(r, &i16));
    assert_int_equal(i16, -300);
    STEP(buf_read_i32(r, &i32));
    assert_int_equal(i32, 70000);
    STEP(buf_read_i64(r, &i64));
    assert_true(i64 == -5000000000LL);
    STEP(buf_read_uvarint(r, &u32));
    assert_int_equal(u32, 300000);
    STEP(buf_read_varint(r, &i32));
    assert_int_equal(i32, -300000);
    STEP(buf_read_uvarlong(r, &u64));
    assert_true(u64 == 1ull << 40);
    STEP(buf_read_varlong(r, &i64));
    assert_true(i64 == -(1ll << 40));
    STEP(buf_read_string(r, false, 100, &s));
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "topic", 5);
    STEP(buf_read_string(r, true, 100, &s));
    assert_int_equal(s.len, -1);
    assert_null(s.ptr);
    STEP(buf_read_compact_string(r, false, 100, &s));
    assert_int_equal(s.len, 7);
    assert_memory_equal(s.ptr, "compact", 7);
    STEP(buf_read_bytes(r, false, 100, &s));
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "\x00\x01\x02", 3);
    STEP(buf_read_compact_bytes(r, false, 100, &s));
    assert_int_equal(s.len, 2);
    assert_memory_equal(s.ptr, "xy", 2);
    STEP(buf_read_varint_bytes(r, false, 100, &s));
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "key", 3);
    STEP(buf_read_array_len(r, false, 1, 100, &i32));
    assert_int_equal(i32, 2);
    STEP(buf_read_compact_array_len(r, false, 1, 100, &i32));
    assert_int_equal(i32, 3);
    STEP(buf_skip_tagged_fields(r));
#undef STEP
    return 0;
}

static void test_buf_truncation_at_every_byte_is_enodata_and_keeps_position(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    write_everything(&w);
    assert_int_equal(buf_writer_error(&w), 0);

    buf_reader r;
    buf_reader_init(&r, w.data, w.len);
    assert_int_equal(read_everything(&r), 0);
    assert_int_equal(buf_reader_remaining(&r), 0);

    for (size_t cut = 0; cut < w.len; cut++) {
        /* A heap copy of exactly @cut bytes lets ASan catch any read past it. */
        uint8_t *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, w.data, cut);
        buf_reader_init(&r, copy, cut);
        int rc = read_everything(&r);
        if (rc != -ENODATA)
            fail_msg("cut at %zu of %zu: rc %d", cut, w.len, rc);
        free(copy);
    }
    buf_writer_deinit(&w);
}

static void test_buf_read_raw_and_skip_check_remaining(void **state)
{
    (void)state;
    const uint8_t in[] = {1, 2, 3, 4};
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    const uint8_t *p;
    assert_int_equal(buf_read_raw(&r, 5, &p), -ENODATA);
    assert_int_equal(buf_skip(&r, SIZE_MAX), -ENODATA);
    assert_int_equal(r.pos, 0);
    assert_int_equal(buf_skip(&r, 1), 0);
    assert_ptr_equal(buf_reader_cur(&r), in + 1);
    assert_int_equal(buf_read_raw(&r, 3, &p), 0);
    assert_ptr_equal(p, in + 1);
    assert_int_equal(buf_read_raw(&r, 0, &p), 0);
    assert_int_equal(buf_read_raw(&r, 1, &p), -ENODATA);
}

/* ---- lengths, caps, nulls ---------------------------------------------------- */

static void test_buf_string_length_beyond_remaining_is_enodata(void **state)
{
    (void)state;
    const uint8_t s16[] = {0x00, 0x05, 'a', 'b', 'c'};
    const uint8_t b32[] = {0x7f, 0xff, 0xff, 0xff, 'a'};
    const uint8_t compact[] = {0x06, 'a'};
    const uint8_t vint[] = {0x0a, 'a'}; /* zigzag 5 */
    buf_reader r;
    buf_slice s;
    buf_reader_init(&r, s16, sizeof(s16));
    assert_int_equal(buf_read_string(&r, false, INT32_MAX, &s), -ENODATA);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, b32, sizeof(b32));
    assert_int_equal(buf_read_bytes(&r, false, INT32_MAX, &s), -ENODATA);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, compact, sizeof(compact));
    assert_int_equal(buf_read_compact_string(&r, false, INT32_MAX, &s), -ENODATA);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, vint, sizeof(vint));
    assert_int_equal(buf_read_varint_bytes(&r, false, INT32_MAX, &s), -ENODATA);
    assert_int_equal(r.pos, 0);
}

static void test_buf_length_over_cap_is_emsgsize(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    buf_write_string(&w, "abcdef", 6);
    buf_write_bytes(&w, "abcdef", 6);
    buf_write_compact_string(&w, "abcdef", 6);
    buf_write_varint_bytes(&w, "abcdef", 6);
    buf_write_array_len(&w, 6);
    buf_write_compact_array_len(&w, 6);
    buf_reader r;
    buf_slice s;
    int32_t n;
    buf_reader_init(&r, w.data, w.len);
    assert_int_equal(buf_read_string(&r, false, 5, &s), -EMSGSIZE);
    assert_int_equal(r.pos, 0);
    assert_int_equal(buf_read_string(&r, false, 6, &s), 0); /* cap is inclusive */
    size_t pos = r.pos;
    assert_int_equal(buf_read_bytes(&r, false, 5, &s), -EMSGSIZE);
    assert_int_equal(r.pos, pos);
    assert_int_equal(buf_read_bytes(&r, false, 6, &s), 0);
    pos = r.pos;
    assert_int_equal(buf_read_compact_string(&r, false, 5, &s), -EMSGSIZE);
    assert_int_equal(r.pos, pos);
    assert_int_equal(buf_read_compact_string(&r, false, 6, &s), 0);
    pos = r.pos;
    assert_int_equal(buf_read_varint_bytes(&r, false, 0, &s), -EMSGSIZE);
    assert_int_equal(r.pos, pos);
    assert_int_equal(buf_read_varint_bytes(&r, false, 6, &s), 0);
    pos = r.pos;
    assert_int_equal(buf_read_array_len(&r, false, 0, 5, &n), -EMSGSIZE);
    assert_int_equal(r.pos, pos);
    assert_int_equal(buf_read_array_len(&r, false, 0, 6, &n), 0);
    assert_int_equal(n, 6);
    pos = r.pos;
    assert_int_equal(buf_read_compact_array_len(&r, false, 0, 5, &n), -EMSGSIZE);
    assert_int_equal(r.pos, pos);
    assert_int_equal(buf_read_compact_array_len(&r, false, 0, 6, &n), 0);
    assert_int_equal(n, 6);
    buf_writer_deinit(&w);

    /* A length the cap refuses fails as too large even when the body is absent,
     * so a hostile length is never mistaken for "wait for more bytes". */
    const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    buf_reader_init(&r, huge, sizeof(huge));
    assert_int_equal(buf_read_bytes(&r, false, 1 << 20, &s), -EMSGSIZE);
    /* Compact length UINT32_MAX (len+1) is far beyond any int32 cap. */
    const uint8_t chuge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    buf_reader_init(&r, chuge, sizeof(chuge));
    assert_int_equal(buf_read_compact_bytes(&r, false, INT32_MAX, &s), -EMSGSIZE);
    assert_int_equal(buf_read_compact_array_len(&r, false, 0, INT32_MAX, &n), -EMSGSIZE);
}

static void test_buf_null_markers_nullable_vs_not(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    buf_write_string(&w, NULL, -1);
    buf_write_compact_string(&w, NULL, -1);
    buf_write_bytes(&w, NULL, -1);
    buf_write_compact_bytes(&w, NULL, -1);
    buf_write_varint_bytes(&w, NULL, -1);
    buf_write_array_len(&w, -1);
    buf_write_compact_array_len(&w, -1);
    assert_int_equal(buf_writer_error(&w), 0);
    /* int16 -1, uvarint 0, int32 -1, uvarint 0, zigzag 1, int32 -1, uvarint 0 */
    assert_int_equal(w.len, 2 + 1 + 4 + 1 + 1 + 4 + 1);
    assert_memory_equal(w.data, "\xff\xff\x00\xff\xff\xff\xff\x00\x01\xff\xff\xff\xff\x00", 14);

    buf_reader r;
    buf_slice s;
    int32_t n;
    buf_reader_init(&r, w.data, w.len);
    /* Non-nullable first: must fail without moving, then nullable succeeds. */
#define NULL_CASE(call_strict, call_null, out, is_null)                                            \
    do {                                                                                           \
        size_t pos = r.pos;                                                                        \
        assert_int_equal(call_strict, -EBADMSG);                                                   \
        assert_int_equal(r.pos, pos);                                                              \
        assert_int_equal(call_null, 0);                                                            \
        assert_true(is_null);                                                                      \
        (void)out;                                                                                 \
    } while (0)
    NULL_CASE(buf_read_string(&r, false, 10, &s), buf_read_string(&r, true, 10, &s), s,
              s.len == -1 && s.ptr == NULL);
    NULL_CASE(buf_read_compact_string(&r, false, 10, &s), buf_read_compact_string(&r, true, 10, &s),
              s, s.len == -1 && s.ptr == NULL);
    NULL_CASE(buf_read_bytes(&r, false, 10, &s), buf_read_bytes(&r, true, 10, &s), s,
              s.len == -1 && s.ptr == NULL);
    NULL_CASE(buf_read_compact_bytes(&r, false, 10, &s), buf_read_compact_bytes(&r, true, 10, &s),
              s, s.len == -1 && s.ptr == NULL);
    NULL_CASE(buf_read_varint_bytes(&r, false, 10, &s), buf_read_varint_bytes(&r, true, 10, &s), s,
              s.len == -1 && s.ptr == NULL);
    NULL_CASE(buf_read_array_len(&r, false, 1, 10, &n), buf_read_array_len(&r, true, 1, 10, &n), n,
              n == -1);
    NULL_CASE(buf_read_compact_array_len(&r, false, 1, 10, &n),
              buf_read_compact_array_len(&r, true, 1, 10, &n), n, n == -1);
#undef NULL_CASE
    assert_int_equal(buf_reader_remaining(&r), 0);
    buf_writer_deinit(&w);
}

static void test_buf_negative_lengths_other_than_null_are_ebadmsg(void **state)
{
    (void)state;
    const uint8_t s16[] = {0xff, 0xfe, 'a', 'b'};         /* -2 */
    const uint8_t b32[] = {0x80, 0x00, 0x00, 0x00, 'a'};  /* INT32_MIN */
    const uint8_t vint[] = {0x03, 'a'};                   /* zigzag -2 */
    const uint8_t arr[] = {0xff, 0xff, 0xff, 0xfe, 0, 0}; /* -2 */
    buf_reader r;
    buf_slice s;
    int32_t n;
    buf_reader_init(&r, s16, sizeof(s16));
    assert_int_equal(buf_read_string(&r, true, INT32_MAX, &s), -EBADMSG);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, b32, sizeof(b32));
    assert_int_equal(buf_read_bytes(&r, true, INT32_MAX, &s), -EBADMSG);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, vint, sizeof(vint));
    assert_int_equal(buf_read_varint_bytes(&r, true, INT32_MAX, &s), -EBADMSG);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, arr, sizeof(arr));
    assert_int_equal(buf_read_array_len(&r, true, 0, INT32_MAX, &n), -EBADMSG);
    assert_int_equal(r.pos, 0);
}

static void test_buf_empty_string_is_not_null(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    buf_write_string(&w, "", 0);
    buf_write_compact_string(&w, "", 0);
    buf_write_bytes(&w, NULL, 0);
    assert_int_equal(buf_writer_error(&w), 0);
    assert_memory_equal(w.data, "\x00\x00\x01\x00\x00\x00\x00", 7);
    buf_reader r;
    buf_slice s;
    buf_reader_init(&r, w.data, w.len);
    assert_int_equal(buf_read_string(&r, false, 0, &s), 0);
    assert_int_equal(s.len, 0);
    assert_non_null(s.ptr);
    assert_int_equal(buf_read_compact_string(&r, false, 0, &s), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(buf_read_bytes(&r, false, 0, &s), 0);
    assert_int_equal(s.len, 0);
    buf_writer_deinit(&w);
}

static void test_buf_huge_array_count_with_short_body_fails(void **state)
{
    (void)state;
    uint8_t in[14] = {0x7f, 0xff, 0xff, 0xff}; /* INT32_MAX, then 10 body bytes */
    buf_reader r;
    int32_t n;
    buf_reader_init(&r, in, sizeof(in));
    assert_int_equal(buf_read_array_len(&r, false, 1, INT32_MAX, &n), -ENODATA);
    assert_int_equal(r.pos, 0);
    /* Exactly as many elements as fit is fine, one more is not. */
    in[0] = 0, in[1] = 0, in[2] = 0, in[3] = 5;
    assert_int_equal(buf_read_array_len(&r, false, 2, INT32_MAX, &n), 0);
    assert_int_equal(n, 5);
    buf_reader_init(&r, in, sizeof(in));
    assert_int_equal(buf_read_array_len(&r, false, 3, INT32_MAX, &n), -ENODATA);
    assert_int_equal(r.pos, 0);

    /* Compact form: uvarint INT32_MAX + 1 = count INT32_MAX. */
    uint8_t cin[15] = {0x80, 0x80, 0x80, 0x80, 0x08};
    buf_reader_init(&r, cin, sizeof(cin));
    assert_int_equal(buf_read_compact_array_len(&r, false, 1, INT32_MAX, &n), -ENODATA);
    assert_int_equal(r.pos, 0);
    /* min_elem_size 0 skips the body check: only the cap applies. */
    assert_int_equal(buf_read_compact_array_len(&r, false, 0, INT32_MAX, &n), 0);
    assert_int_equal(n, INT32_MAX);
}

/* ---- compact forms and tagged fields ------------------------------------------ */

static void test_buf_compact_forms_round_trip(void **state)
{
    (void)state;
    /* A 200-byte string needs a two-byte length (201 = 0xc9 0x01). */
    char big[200];
    memset(big, 'z', sizeof(big));
    buf_writer w;
    buf_writer_init(&w);
    buf_write_compact_string(&w, big, 200);
    buf_write_compact_bytes(&w, "\x00\xff", 2);
    buf_write_compact_array_len(&w, 0);
    buf_write_compact_array_len(&w, 127);
    assert_int_equal(buf_writer_error(&w), 0);
    assert_memory_equal(w.data, "\xc9\x01", 2);
    buf_reader r;
    buf_slice s;
    int32_t n;
    buf_reader_init(&r, w.data, w.len);
    assert_int_equal(buf_read_compact_string(&r, false, 1000, &s), 0);
    assert_int_equal(s.len, 200);
    assert_memory_equal(s.ptr, big, 200);
    assert_int_equal(buf_read_compact_bytes(&r, true, 1000, &s), 0);
    assert_int_equal(s.len, 2);
    assert_memory_equal(s.ptr, "\x00\xff", 2);
    assert_int_equal(buf_read_compact_array_len(&r, false, 0, 1000, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(buf_read_compact_array_len(&r, false, 0, 1000, &n), 0);
    assert_int_equal(n, 127);
    assert_int_equal(buf_reader_remaining(&r), 0);
    buf_writer_deinit(&w);
}

static void test_buf_tagged_fields_valid_are_skipped(void **state)
{
    (void)state;
    /* 3 fields: tag 0 (1 byte), tag 1 (0 bytes), tag 300 (3 bytes); then 0xAA. */
    const uint8_t in[] = {0x03, 0x00, 0x01, 0x11, 0x01, 0x00, 0xac,
                          0x02, 0x03, 0x01, 0x02, 0x03, 0xaa};
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    assert_int_equal(buf_skip_tagged_fields(&r), 0);
    assert_int_equal(buf_reader_remaining(&r), 1);
    assert_int_equal(*buf_reader_cur(&r), 0xaa);

    buf_writer w;
    buf_writer_init(&w);
    buf_write_empty_tagged_fields(&w);
    assert_int_equal(w.len, 1);
    buf_reader_init(&r, w.data, w.len);
    assert_int_equal(buf_skip_tagged_fields(&r), 0);
    assert_int_equal(buf_reader_remaining(&r), 0);
    buf_writer_deinit(&w);
}

static void test_buf_tagged_fields_non_increasing_tags_rejected(void **state)
{
    (void)state;
    const uint8_t dup[] = {0x02, 0x05, 0x00, 0x05, 0x00};
    const uint8_t dec[] = {0x02, 0x05, 0x00, 0x04, 0x00};
    buf_reader r;
    buf_reader_init(&r, dup, sizeof(dup));
    assert_int_equal(buf_skip_tagged_fields(&r), -EBADMSG);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, dec, sizeof(dec));
    assert_int_equal(buf_skip_tagged_fields(&r), -EBADMSG);
    assert_int_equal(r.pos, 0);
}

static void test_buf_tagged_fields_truncated_or_oversized_rejected(void **state)
{
    (void)state;
    const uint8_t size_past_end[] = {0x01, 0x00, 0x05, 0x01, 0x02};
    const uint8_t count_too_big[] = {0x7f, 0x00, 0x00};
    const uint8_t size_overlong[] = {0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x7f};
    buf_reader r;
    buf_reader_init(&r, size_past_end, sizeof(size_past_end));
    assert_int_equal(buf_skip_tagged_fields(&r), -ENODATA);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, count_too_big, sizeof(count_too_big));
    assert_int_equal(buf_skip_tagged_fields(&r), -ENODATA);
    assert_int_equal(r.pos, 0);
    buf_reader_init(&r, size_overlong, sizeof(size_overlong));
    assert_int_equal(buf_skip_tagged_fields(&r), -EBADMSG);
    assert_int_equal(r.pos, 0);
    for (size_t cut = 0; cut < sizeof(size_past_end); cut++) {
        buf_reader_init(&r, size_past_end, cut);
        assert_int_equal(buf_skip_tagged_fields(&r), -ENODATA);
        assert_int_equal(r.pos, 0);
    }
}

/* ---- writers ---------------------------------------------------------------- */

static void test_buf_fixed_writer_full_is_enobufs_and_sticky(void **state)
{
    (void)state;
    uint8_t mem[8];
    memset(mem, 0xee, sizeof(mem));
    buf_writer w;
    buf_writer_init_fixed(&w, mem, 6);
    assert_int_equal(buf_write_u32(&w, 0x01020304), 0);
    assert_int_equal(buf_write_u32(&w, 0x05060708), -ENOBUFS);
    assert_int_equal(w.len, 4); /* a failed write adds nothing */
    assert_int_equal(mem[4], 0xee);
    /* A write that would fit now still fails: the error is sticky. */
    assert_int_equal(buf_write_u8(&w, 9), -ENOBUFS);
    assert_int_equal(buf_write_string(&w, "", 0), -ENOBUFS);
    /* A later, different failure does not replace the first error. */
    assert_int_equal(buf_write_bytes(&w, NULL, 5), -ENOBUFS);
    assert_int_equal(buf_write_array_len(&w, -7), -ENOBUFS);
    assert_int_equal(buf_writer_error(&w), -ENOBUFS);
    assert_int_equal(w.len, 4);
    assert_int_equal(mem[4], 0xee);
    uint8_t *d;
    size_t l;
    assert_int_equal(buf_writer_steal(&w, &d, &l), -EINVAL);
    /* Reset clears the error and keeps the memory. */
    buf_writer_reset(&w);
    assert_int_equal(buf_writer_error(&w), 0);
    assert_int_equal(buf_write_raw(&w, "abcdef", 6), 0);
    assert_memory_equal(mem, "abcdef", 6);
    assert_int_equal(buf_write_u8(&w, 0), -ENOBUFS);
    buf_writer_deinit(&w); /* must not free caller memory */
    buf_writer_deinit(NULL);
}

static void test_buf_growable_writer_doubles_and_steals(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    for (uint32_t i = 0; i < 100000; i++)
        assert_int_equal(buf_write_u32(&w, i), 0);
    assert_int_equal(w.len, 400000);
    assert_true(w.cap >= w.len && w.cap < 2 * w.len + 64);
    buf_writer_patch_u32(&w, 0, 0xcafebabe);
    buf_writer_patch_i32(&w, w.len - 4, -1);
    uint8_t *d;
    size_t l;
    assert_int_equal(buf_writer_steal(&w, &d, &l), 0);
    assert_int_equal(l, 400000);
    assert_int_equal(buf_load_be32(d), 0xcafebabe);
    assert_int_equal(buf_load_be32(d + 4), 1);
    assert_int_equal(buf_load_be32(d + 399996), 0xffffffffu);
    free(d);
    /* The writer is empty and usable after a steal. */
    assert_int_equal(w.len, 0);
    assert_null(w.data);
    assert_int_equal(buf_write_u8(&w, 7), 0);
    assert_int_equal(w.len, 1);
    buf_writer_deinit(&w);

    /* Stealing from an empty writer still gives a buffer to free. */
    buf_writer_init(&w);
    assert_int_equal(buf_writer_steal(&w, &d, &l), 0);
    assert_int_equal(l, 0);
    free(d);
}

static void test_buf_writer_rejects_bad_lengths_sticky(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    char big[40000];
    memset(big, 'a', sizeof(big));
    assert_int_equal(buf_write_string(&w, big, 40000), -EMSGSIZE); /* over int16 */
    assert_int_equal(w.len, 0);
    assert_int_equal(buf_write_u8(&w, 1), -EMSGSIZE);
    buf_writer_reset(&w);
    assert_int_equal(buf_write_bytes(&w, NULL, 3), -EINVAL);
    buf_writer_reset(&w);
    assert_int_equal(buf_write_compact_string(&w, "x", -2), -EINVAL);
    buf_writer_reset(&w);
    assert_int_equal(buf_write_array_len(&w, -5), -EINVAL);
    buf_writer_reset(&w);
    assert_int_equal(buf_write_compact_array_len(&w, -5), -EINVAL);
    buf_writer_reset(&w);
    assert_int_equal(buf_write_string(&w, big, INT16_MAX), 0);
    assert_int_equal(w.len, 2 + INT16_MAX);
    buf_writer_deinit(&w);
}

static void test_buf_big_endian_helpers(void **state)
{
    (void)state;
    uint8_t b[8];
    buf_store_be16(b, 0x0102);
    assert_memory_equal(b, "\x01\x02", 2);
    assert_int_equal(buf_load_be16(b), 0x0102);
    buf_store_be32(b, 0x01020304);
    assert_memory_equal(b, "\x01\x02\x03\x04", 4);
    assert_int_equal(buf_load_be32(b), 0x01020304);
    buf_store_be64(b, 0x0102030405060708ull);
    assert_memory_equal(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_true(buf_load_be64(b) == 0x0102030405060708ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_fixed_width_round_trip),
        cmocka_unit_test(test_buf_bool_nonzero_byte_is_true),
        cmocka_unit_test(test_buf_varint_edges_round_trip),
        cmocka_unit_test(test_buf_varint_known_encodings),
        cmocka_unit_test(test_buf_overlong_varints_rejected),
        cmocka_unit_test(test_buf_truncation_at_every_byte_is_enodata_and_keeps_position),
        cmocka_unit_test(test_buf_read_raw_and_skip_check_remaining),
        cmocka_unit_test(test_buf_string_length_beyond_remaining_is_enodata),
        cmocka_unit_test(test_buf_length_over_cap_is_emsgsize),
        cmocka_unit_test(test_buf_null_markers_nullable_vs_not),
        cmocka_unit_test(test_buf_negative_lengths_other_than_null_are_ebadmsg),
        cmocka_unit_test(test_buf_empty_string_is_not_null),
        cmocka_unit_test(test_buf_huge_array_count_with_short_body_fails),
        cmocka_unit_test(test_buf_compact_forms_round_trip),
        cmocka_unit_test(test_buf_tagged_fields_valid_are_skipped),
        cmocka_unit_test(test_buf_tagged_fields_non_increasing_tags_rejected),
        cmocka_unit_test(test_buf_tagged_fields_truncated_or_oversized_rejected),
        cmocka_unit_test(test_buf_fixed_writer_full_is_enobufs_and_sticky),
        cmocka_unit_test(test_buf_growable_writer_doubles_and_steals),
        cmocka_unit_test(test_buf_writer_rejects_bad_lengths_sticky),
        cmocka_unit_test(test_buf_big_endian_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
