/* test_rpc_frame: the RPC frame codec — round trips, incremental decoding, and
 * rejection of hostile length prefixes before anything is allocated for them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/rpc_frame.h"

#define CAP RPC_FRAME_DEFAULT_MAX

static void encode(buf_writer *w, uint8_t kind, uint16_t method, uint64_t corr, const char *payload)
{
    assert_int_equal(
        rpc_frame_write(w, kind, method, corr, payload, payload ? strlen(payload) : 0, CAP), 0);
}

static void test_round_trip_of_each_kind(void **state)
{
    static const uint8_t kinds[] = {RPC_FRAME_REQUEST, RPC_FRAME_RESPONSE, RPC_FRAME_PUSH};
    for (size_t i = 0; i < sizeof(kinds); i++) {
        buf_writer w;
        buf_writer_init(&w);
        encode(&w, kinds[i], 0xBEEF, 0x0102030405060708ull, "payload bytes");
        assert_int_equal(w.len, RPC_FRAME_FIXED_BYTES + 13);
        /* The prefix counts what follows it. */
        assert_int_equal(buf_load_be32(w.data), RPC_FRAME_HEADER_BYTES + 13);

        struct rpc_frame f;
        size_t used = 0;
        assert_int_equal(rpc_frame_decode(w.data, w.len, CAP, &f, &used), 0);
        assert_int_equal(used, w.len);
        assert_int_equal(f.kind, kinds[i]);
        assert_int_equal(f.method, 0xBEEF);
        assert_true(f.corr == 0x0102030405060708ull);
        assert_int_equal(f.payload_len, 13);
        assert_memory_equal(f.payload, "payload bytes", 13);
        buf_writer_deinit(&w);
    }

    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(rpc_frame_write_error(&w, 7, 99, RPC_BAD_REQUEST, "does not decode", CAP), 0);
    struct rpc_frame f;
    size_t used;
    assert_int_equal(rpc_frame_decode(w.data, w.len, CAP, &f, &used), 0);
    assert_int_equal(f.kind, RPC_FRAME_ERROR);
    assert_int_equal(f.method, 7);
    assert_true(f.corr == 99);
    uint16_t status;
    const char *text;
    size_t tlen;
    assert_int_equal(rpc_frame_error_parse(&f, &status, &text, &tlen), 0);
    assert_int_equal(status, RPC_BAD_REQUEST);
    assert_int_equal(tlen, strlen("does not decode"));
    assert_memory_equal(text, "does not decode", tlen);
    buf_writer_deinit(&w);
}

static void test_empty_payload_is_a_valid_frame(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    encode(&w, RPC_FRAME_RESPONSE, 1, 2, NULL);
    assert_int_equal(w.len, RPC_FRAME_FIXED_BYTES);
    struct rpc_frame f;
    size_t used;
    assert_int_equal(rpc_frame_decode(w.data, w.len, CAP, &f, &used), 0);
    assert_int_equal(f.payload_len, 0);
    buf_writer_deinit(&w);
}

static void test_truncated_frame_needs_more_bytes(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    encode(&w, RPC_FRAME_REQUEST, 3, 42, "0123456789");
    for (size_t n = 0; n < w.len; n++) {
        struct rpc_frame f;
        size_t used = 12345;
        assert_int_equal(rpc_frame_decode(w.data, n, CAP, &f, &used), -EAGAIN);
        assert_int_equal(used, 12345); /* untouched on failure */
        size_t total = 0;
        if (n < RPC_FRAME_PREFIX_BYTES) {
            assert_int_equal(rpc_frame_peek(w.data, n, CAP, &total), -EAGAIN);
        } else {
            /* The prefix alone already tells the whole frame's size. */
            assert_int_equal(rpc_frame_peek(w.data, n, CAP, &total), 0);
            assert_int_equal(total, w.len);
        }
    }
    buf_writer_deinit(&w);
}

static void test_length_over_cap_is_rejected_from_the_prefix_alone(void **state)
{
    uint8_t pfx[4];
    size_t total;
    buf_store_be32(pfx, 1000 + 1);
    assert_int_equal(rpc_frame_peek(pfx, sizeof(pfx), 1000, &total), -EMSGSIZE);
    buf_store_be32(pfx, 1000);
    assert_int_equal(rpc_frame_peek(pfx, sizeof(pfx), 1000, &total), 0);
    assert_int_equal(total, 1004);

    struct rpc_frame f;
    size_t used;
    buf_store_be32(pfx, 1000 + 1);
    assert_int_equal(rpc_frame_decode(pfx, sizeof(pfx), 1000, &f, &used), -EMSGSIZE);
}

static void test_two_gib_length_prefix_is_rejected_without_allocating(void **state)
{
    /* 2 GiB and 4 GiB - 1 declared, then a few bytes of body. */
    static const uint32_t lens[] = {0x80000000u, 0xFFFFFFFFu};
    for (size_t i = 0; i < 2; i++) {
        uint8_t bytes[16] = {0};
        buf_store_be32(bytes, lens[i]);
        bytes[4] = RPC_FRAME_REQUEST;
        size_t total;
        assert_int_equal(rpc_frame_peek(bytes, sizeof(bytes), CAP, &total), -EMSGSIZE);

        struct rpc_frame_decoder d;
        rpc_frame_decoder_init(&d, CAP);
        assert_int_equal(rpc_frame_decoder_feed(&d, bytes, sizeof(bytes)), 0);
        struct rpc_frame f;
        assert_int_equal(rpc_frame_decoder_next(&d, &f), -EMSGSIZE);
        /* The decoder's memory is what was fed, never the declared length. */
        assert_true(d.cap <= 256);
        /* Sticky: the stream cannot recover. */
        assert_int_equal(rpc_frame_decoder_feed(&d, bytes, 4), -EMSGSIZE);
        assert_int_equal(rpc_frame_decoder_next(&d, &f), -EMSGSIZE);
        rpc_frame_decoder_deinit(&d);
    }
}

static void test_zero_and_too_short_lengths_are_rejected(void **state)
{
    for (uint32_t len = 0; len < RPC_FRAME_HEADER_BYTES; len++) {
        uint8_t bytes[RPC_FRAME_FIXED_BYTES] = {0};
        buf_store_be32(bytes, len);
        bytes[4] = RPC_FRAME_REQUEST;
        size_t total;
        assert_int_equal(rpc_frame_peek(bytes, 4, CAP, &total), -EBADMSG);
        struct rpc_frame f;
        size_t used;
        assert_int_equal(rpc_frame_decode(bytes, sizeof(bytes), CAP, &f, &used), -EBADMSG);
    }
}

static void test_unknown_kind_is_rejected_as_soon_as_it_arrives(void **state)
{
    static const uint8_t bad[] = {0, 5, 0x7F, 0xFF};
    for (size_t i = 0; i < sizeof(bad); i++) {
        buf_writer w;
        buf_writer_init(&w);
        encode(&w, bad[i], 1, 1, "x");
        size_t total;
        /* Five bytes (prefix + kind) are enough to know. */
        assert_int_equal(rpc_frame_peek(w.data, 5, CAP, &total), -EBADMSG);
        struct rpc_frame f;
        size_t used;
        assert_int_equal(rpc_frame_decode(w.data, w.len, CAP, &f, &used), -EBADMSG);
        buf_writer_deinit(&w);
    }
}

static void test_encoder_refuses_frames_over_the_cap(void **state)
{
    uint8_t payload[64] = {0};
    buf_writer w;
    buf_writer_init(&w);
    size_t cap = RPC_FRAME_HEADER_BYTES + sizeof(payload);
    assert_int_equal(rpc_frame_write(&w, RPC_FRAME_PUSH, 1, 0, payload, sizeof(payload), cap), 0);
    size_t len = w.len;
    assert_int_equal(rpc_frame_write(&w, RPC_FRAME_PUSH, 1, 0, payload, sizeof(payload), cap - 1),
                     -EMSGSIZE);
    assert_int_equal(w.len, len); /* nothing written */
    assert_int_equal(buf_writer_error(&w), 0);
    buf_writer_deinit(&w);

    /* A fixed writer too small for the frame reports it. */
    uint8_t mem[RPC_FRAME_FIXED_BYTES + 3];
    buf_writer_init_fixed(&w, mem, sizeof(mem));
    assert_int_equal(rpc_frame_write(&w, RPC_FRAME_PUSH, 1, 0, payload, 4, CAP), -ENOBUFS);
}

static void test_error_text_is_cut_at_a_utf8_boundary(void **state)
{
    /* 1023 ASCII bytes then a two-byte character straddling the 1024 limit. */
    char text[RPC_FRAME_ERROR_TEXT_MAX + 8];
    memset(text, 'a', RPC_FRAME_ERROR_TEXT_MAX - 1);
    strcpy(text + RPC_FRAME_ERROR_TEXT_MAX - 1, "\xC3\xA9tail");
    assert_int_equal(rpc_frame_error_text_len(text, RPC_FRAME_ERROR_TEXT_MAX),
                     RPC_FRAME_ERROR_TEXT_MAX - 1);
    assert_int_equal(rpc_frame_error_text_len("h\xC3\xA9", 2), 1);
    assert_int_equal(rpc_frame_error_text_len("h\xC3\xA9", 3), 3);
    assert_int_equal(rpc_frame_error_text_len("short", 100), 5);
    assert_int_equal(rpc_frame_error_text_len(NULL, 100), 0);

    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(rpc_frame_write_error(&w, 0, 1, RPC_INTERNAL, text, CAP), 0);
    struct rpc_frame f;
    size_t used;
    assert_int_equal(rpc_frame_decode(w.data, w.len, CAP, &f, &used), 0);
    uint16_t status;
    const char *t;
    size_t tlen;
    assert_int_equal(rpc_frame_error_parse(&f, &status, &t, &tlen), 0);
    assert_int_equal(tlen, RPC_FRAME_ERROR_TEXT_MAX - 1);
    buf_writer_deinit(&w);

    /* Under a cap with no room for text the status still goes out. */
    buf_writer_init(&w);
    assert_int_equal(
        rpc_frame_write_error(&w, 0, 1, RPC_INTERNAL, "text", RPC_FRAME_HEADER_BYTES + 2), 0);
    assert_int_equal(w.len, RPC_FRAME_FIXED_BYTES + 2);
    assert_int_equal(
        rpc_frame_write_error(&w, 0, 1, RPC_INTERNAL, "text", RPC_FRAME_HEADER_BYTES + 1),
        -EMSGSIZE);
    buf_writer_deinit(&w);
}

static void test_error_payload_without_status_is_rejected(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    encode(&w, RPC_FRAME_ERROR, 0, 1, "x"); /* 1 byte: half a status */
    struct rpc_frame f;
    size_t used;
    assert_int_equal(rpc_frame_decode(w.data, w.len, CAP, &f, &used), 0);
    uint16_t status;
    const char *t;
    size_t tlen;
    assert_int_equal(rpc_frame_error_parse(&f, &status, &t, &tlen), -EBADMSG);
    /* Only ERROR frames carry a status. */
    f.kind = RPC_FRAME_RESPONSE;
    f.payload_len = 4;
    assert_int_equal(rpc_frame_error_parse(&f, &status, &t, &tlen), -EBADMSG);
    buf_writer_deinit(&w);
}

/* Several frames of different sizes, as one stream. */
static void build_stream(buf_writer *w, size_t nframes)
{
    char payload[300];
    for (size_t i = 0; i < nframes; i++) {
        size_t n = (i * 37) % sizeof(payload);
        memset(payload, 'a' + (int)(i % 26), n);
        assert_int_equal(
            rpc_frame_write(w, RPC_FRAME_REQUEST, (uint16_t)i, 1000 + i, payload, n, CAP), 0);
    }
}

static void check_frame(const struct rpc_frame *f, size_t i)
{
    assert_int_equal(f->kind, RPC_FRAME_REQUEST);
    assert_int_equal(f->method, (uint16_t)i);
    assert_true(f->corr == 1000 + i);
    assert_int_equal(f->payload_len, (i * 37) % 300);
    for (size_t k = 0; k < f->payload_len; k++)
        assert_int_equal(f->payload[k], 'a' + (int)(i % 26));
}

static void test_decoder_reassembles_frames_fed_in_any_chunks(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    build_stream(&w, 50);
    static const size_t chunks[] = {1, 2, 7, 15, 16, 100, 4096};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct rpc_frame_decoder d;
        rpc_frame_decoder_init(&d, 400);
        size_t got = 0;
        for (size_t off = 0; off < w.len; off += chunks[c]) {
            size_t n = w.len - off < chunks[c] ? w.len - off : chunks[c];
            assert_int_equal(rpc_frame_decoder_feed(&d, w.data + off, n), 0);
            struct rpc_frame f;
            int r;
            while ((r = rpc_frame_decoder_next(&d, &f)) == 0)
                check_frame(&f, got++);
            assert_int_equal(r, -EAGAIN);
            /* Bounded by one frame plus one chunk, whatever the stream's length. */
            assert_true(rpc_frame_decoder_pending(&d) < 400 + RPC_FRAME_PREFIX_BYTES + chunks[c]);
        }
        assert_int_equal(got, 50);
        assert_int_equal(rpc_frame_decoder_pending(&d), 0);
        assert_true(d.cap <= 2 * (400 + RPC_FRAME_PREFIX_BYTES + 4096));
        rpc_frame_decoder_deinit(&d);
    }
    buf_writer_deinit(&w);
}

static void test_decoder_stops_at_a_bad_frame_after_good_ones(void **state)
{
    buf_writer w;
    buf_writer_init(&w);
    build_stream(&w, 3);
    uint8_t bad[5] = {0, 0, 0, 20, 9}; /* kind 9 */
    buf_write_raw(&w, bad, sizeof(bad));
    struct rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, CAP);
    assert_int_equal(rpc_frame_decoder_feed(&d, w.data, w.len), 0);
    struct rpc_frame f;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(rpc_frame_decoder_next(&d, &f), 0);
        check_frame(&f, i);
    }
    assert_int_equal(rpc_frame_decoder_next(&d, &f), -EBADMSG);
    assert_int_equal(rpc_frame_decoder_feed(&d, "x", 1), -EBADMSG);
    rpc_frame_decoder_deinit(&d);
    buf_writer_deinit(&w);
}

static void test_decoder_feed_rejects_bytes_after_a_known_bad_prefix(void **state)
{
    /* The caller feeds without draining: the over-cap prefix is caught on the next
     * feed, before the new bytes are kept. */
    struct rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, 100);
    uint8_t pfx[4];
    buf_store_be32(pfx, 101);
    assert_int_equal(rpc_frame_decoder_feed(&d, pfx, sizeof(pfx)), 0);
    uint8_t body[64] = {0};
    assert_int_equal(rpc_frame_decoder_feed(&d, body, sizeof(body)), -EMSGSIZE);
    assert_int_equal(rpc_frame_decoder_pending(&d), 4);
    rpc_frame_decoder_deinit(&d);
    rpc_frame_decoder_deinit(NULL);
}

static void test_status_and_kind_names(void **state)
{
    assert_string_equal(rpc_status_name(RPC_OK), "OK");
    assert_string_equal(rpc_status_name(RPC_TIMEOUT), "TIMEOUT");
    assert_string_equal(rpc_status_name(RPC_BAD_RESPONSE), "BAD_RESPONSE");
    assert_string_equal(rpc_status_name(999), "UNKNOWN");
    assert_string_equal(rpc_frame_kind_name(RPC_FRAME_PUSH), "PUSH");
    assert_string_equal(rpc_frame_kind_name(0), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_of_each_kind),
        cmocka_unit_test(test_empty_payload_is_a_valid_frame),
        cmocka_unit_test(test_truncated_frame_needs_more_bytes),
        cmocka_unit_test(test_length_over_cap_is_rejected_from_the_prefix_alone),
        cmocka_unit_test(test_two_gib_length_prefix_is_rejected_without_allocating),
        cmocka_unit_test(test_zero_and_too_short_lengths_are_rejected),
        cmocka_unit_test(test_unknown_kind_is_rejected_as_soon_as_it_arrives),
        cmocka_unit_test(test_encoder_refuses_frames_over_the_cap),
        cmocka_unit_test(test_error_text_is_cut_at_a_utf8_boundary),
        cmocka_unit_test(test_error_payload_without_status_is_rejected),
        cmocka_unit_test(test_decoder_reassembles_frames_fed_in_any_chunks),
        cmocka_unit_test(test_decoder_stops_at_a_bad_frame_after_good_ones),
        cmocka_unit_test(test_decoder_feed_rejects_bytes_after_a_known_bad_prefix),
        cmocka_unit_test(test_status_and_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
