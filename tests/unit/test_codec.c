/* Tests for common/codec.c and the compressed-batch half of common/batch.c: round
 * trips per codec (empty, small, large, incompressible input), corrupt and
 * truncated frames, compression bombs against the bound (a gzip bomb, a zstd frame
 * claiming 4 GiB), the framings other clients write (raw snappy, several gzip
 * members, several lz4 frames), and batch_recompress keeping a batch's records and
 * header fields with a valid CRC. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>

#include "common/batch.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/crc32c.h"

#define MIB ((size_t)1 << 20)
#define BOUND (64 * MIB)

static const enum codec_type all_codecs[] = {CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4,
                                             CODEC_ZSTD};
static const enum codec_type real_codecs[] = {CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD};
#define N_ALL (sizeof(all_codecs) / sizeof(all_codecs[0]))
#define N_REAL (sizeof(real_codecs) / sizeof(real_codecs[0]))

/* JSON-ish text, compressible like real payloads. */
static uint8_t *json_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    size_t at = 0;
    unsigned i = 0;
    while (at < n) {
        char rec[160];
        int k = snprintf(rec, sizeof(rec),
                         "{\"id\":%u,\"user\":\"user-%u\",\"amount\":%u.%02u,\"tags\":[\"a\",\"b%u\"]}",
                         i, i * 7919u % 1000u, i * 31u % 10000u, i % 100u, i % 13u);
        for (int j = 0; j < k && at < n; j++)
            p[at++] = (uint8_t)rec[j];
        i++;
    }
    return p;
}

/* xorshift noise: incompressible. */
static uint8_t *noise_bytes(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static void round_trip(enum codec_type c, const uint8_t *in, size_t n)
{
    buf_writer z, out;
    buf_writer_init(&z);
    buf_writer_init(&out);
    assert_int_equal(codec_compress(c, CODEC_LEVEL_DEFAULT, in, n, &z), 0);
    /* output is appended after what the writer held */
    buf_write_raw(&out, "xy", 2);
    assert_int_equal(codec_decompress(c, z.data, z.len, n, &out), 0);
    assert_int_equal(out.len, n + 2);
    assert_memory_equal(out.data, "xy", 2);
    if (n)
        assert_memory_equal(out.data + 2, in, n);
    /* one byte less than the output is a bomb */
    if (n) {
        buf_writer_reset(&out);
        assert_int_equal(codec_decompress(c, z.data, z.len, n - 1, &out), -EMSGSIZE);
    }
    buf_writer_deinit(&z);
    buf_writer_deinit(&out);
}

static void test_round_trip_empty(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ALL; i++)
        round_trip(all_codecs[i], NULL, 0);
}

static void test_round_trip_small(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ALL; i++) {
        round_trip(all_codecs[i], (const uint8_t *)"a", 1);
        round_trip(all_codecs[i], (const uint8_t *)"hello, weir", 11);
    }
}

static void test_round_trip_large(void **state)
{
    (void)state;
    size_t n = 5 * MIB + 123; /* several lz4/snappy blocks, zstd blocks */
    uint8_t *json = json_bytes(n);
    uint8_t *noise = noise_bytes(MIB + 7, 42);
    for (size_t i = 0; i < N_ALL; i++) {
        round_trip(all_codecs[i], json, n);
        round_trip(all_codecs[i], noise, MIB + 7);
    }
    free(json);
    free(noise);
}

static void test_levels(void **state)
{
    (void)state;
    uint8_t *json = json_bytes(100000);
    int levels[] = {1, 9, 12, 19, -1, 100};
    for (size_t i = 0; i < N_REAL; i++) {
        for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
            buf_writer z, out;
            buf_writer_init(&z);
            buf_writer_init(&out);
            assert_int_equal(codec_compress(real_codecs[i], levels[l], json, 100000, &z), 0);
            assert_int_equal(codec_decompress(real_codecs[i], z.data, z.len, BOUND, &out), 0);
            assert_int_equal(out.len, 100000);
            assert_memory_equal(out.data, json, 100000);
            buf_writer_deinit(&z);
            buf_writer_deinit(&out);
        }
    }
    free(json);
}

static void test_names(void **state)
{
    (void)state;
    enum codec_type c;
    assert_int_equal(codec_from_name("uncompressed", &c), 0);
    assert_int_equal(c, CODEC_NONE);
    assert_int_equal(codec_from_name("none", &c), 0);
    assert_int_equal(c, CODEC_NONE);
    assert_int_equal(codec_from_name("zstd", &c), 0);
    assert_int_equal(c, CODEC_ZSTD);
    assert_int_equal(codec_from_name("lz4", &c), 0);
    assert_int_equal(c, CODEC_LZ4);
    assert_int_equal(codec_from_name("producer", &c), -EINVAL);
    assert_int_equal(codec_from_name("LZ4", &c), -EINVAL);
    assert_int_equal(codec_from_name(NULL, &c), -EINVAL);
    assert_string_equal(codec_name(CODEC_SNAPPY), "snappy");
    assert_string_equal(codec_name((enum codec_type)7), "unknown");
    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(codec_decompress((enum codec_type)5, "x", 1, BOUND, &w), -EINVAL);
    assert_int_equal(codec_compress((enum codec_type)5, 0, "x", 1, &w), -EINVAL);
    buf_writer_deinit(&w);
}

/* ---- corrupt and truncated input ------------------------------------------- */

static void test_garbage_refused(void **state)
{
    (void)state;
    uint8_t *noise = noise_bytes(4096, 7);
    for (size_t i = 0; i < N_REAL; i++) {
        buf_writer out;
        buf_writer_init(&out);
        for (size_t n = 0; n <= 4096; n = n ? n * 4 : 1) {
            buf_writer_reset(&out);
            int r = codec_decompress(real_codecs[i], noise, n, BOUND, &out);
            assert_true(r == -EBADMSG || r == -EMSGSIZE);
            assert_true(out.cap <= BOUND);
        }
        buf_writer_deinit(&out);
    }
    free(noise);
}

static void test_truncated_refused(void **state)
{
    (void)state;
    size_t n = 300000;
    uint8_t *json = json_bytes(n);
    for (size_t i = 0; i < N_REAL; i++) {
        buf_writer z, out;
        buf_writer_init(&z);
        buf_writer_init(&out);
        assert_int_equal(codec_compress(real_codecs[i], CODEC_LEVEL_DEFAULT, json, n, &z), 0);
        size_t cuts[] = {1, 4, 9, 17, z.len / 2, z.len - 1};
        for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
            buf_writer_reset(&out);
            int r = codec_decompress(real_codecs[i], z.data, cuts[k], BOUND, &out);
            if (r != -EBADMSG)
                fail_msg("%s cut at %zu of %zu: %d", codec_name(real_codecs[i]), cuts[k], z.len,
                         r);
        }
        /* trailing garbage after the last frame */
        buf_write_raw(&z, "\x01\x02\x03\x04\x05\x06\x07", 7);
        buf_writer_reset(&out);
        int r = codec_decompress(real_codecs[i], z.data, z.len, BOUND, &out);
        if (r != -EBADMSG)
            fail_msg("%s with trailing bytes: %d", codec_name(real_codecs[i]), r);
        buf_writer_deinit(&z);
        buf_writer_deinit(&out);
    }
    free(json);
}

static void test_corrupt_refused(void **state)
{
    (void)state;
    size_t n = 200000;
    uint8_t *json = json_bytes(n);
    /* gzip, lz4 and zstd carry checksums over the content (zstd's only when the
     * compressor adds it, so zstd is corrupted in a block header); snappy framing
     * has none, so a block length is corrupted */
    for (size_t i = 0; i < N_REAL; i++) {
        buf_writer z, out;
        buf_writer_init(&z);
        buf_writer_init(&out);
        assert_int_equal(codec_compress(real_codecs[i], CODEC_LEVEL_DEFAULT, json, n, &z), 0);
        size_t at;
        switch (real_codecs[i]) {
        case CODEC_SNAPPY:
            at = 16; /* first block's int32 length */
            break;
        case CODEC_ZSTD:
            at = 6; /* the frame content size */
            break;
        case CODEC_LZ4:
            at = 4; /* FLG, covered by the header checksum (Kafka's frames carry no
                     * block or content checksum: the batch CRC covers them) */
            break;
        default:
            at = z.len / 2;
        }
        z.data[at] ^= 0x5a;
        int r = codec_decompress(real_codecs[i], z.data, z.len, BOUND, &out);
        if (r != -EBADMSG)
            fail_msg("%s corrupted at %zu: %d", codec_name(real_codecs[i]), at, r);
        /* a bad magic is corrupt too (for snappy, not xerial -> raw, still corrupt) */
        z.data[at] ^= 0x5a;
        z.data[0] ^= 0xff;
        buf_writer_reset(&out);
        r = codec_decompress(real_codecs[i], z.data, z.len, BOUND, &out);
        if (r != -EBADMSG)
            fail_msg("%s bad magic: %d", codec_name(real_codecs[i]), r);
        buf_writer_deinit(&z);
        buf_writer_deinit(&out);
    }
    free(json);
}

/* ---- bombs ----------------------------------------------------------------- */

static void test_bombs_stop_at_bound(void **state)
{
    (void)state;
    size_t n = 16 * MIB;
    uint8_t *zeros = calloc(1, n);
    assert_non_null(zeros);
    for (size_t i = 0; i < N_REAL; i++) {
        buf_writer z, out;
        buf_writer_init(&z);
        buf_writer_init(&out);
        assert_int_equal(codec_compress(real_codecs[i], CODEC_LEVEL_DEFAULT, zeros, n, &z), 0);
        assert_true(z.len < n / 20);
        int r = codec_decompress(real_codecs[i], z.data, z.len, MIB, &out);
        if (r != -EMSGSIZE)
            fail_msg("%s bomb: %d", codec_name(real_codecs[i]), r);
        /* never grown past the bound */
        assert_true(out.cap <= MIB);
        buf_writer_deinit(&z);
        buf_writer_deinit(&out);
    }
    free(zeros);
}

/* A gzip bomb as an attacker builds it: 1 GiB of zeros streamed through deflate
 * (about 1 MiB compressed), built chunk by chunk so the test does not need 1 GiB. */
static void test_gzip_bomb(void **state)
{
    (void)state;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    static uint8_t zeros[1 << 20];
    buf_writer z;
    buf_writer_init(&z);
    for (int i = 0; i < 1024; i++) {
        zs.next_in = zeros;
        zs.avail_in = sizeof(zeros);
        do {
            assert_int_equal(buf_writer_reserve(&z, 65536), 0);
            zs.next_out = z.data + z.len;
            zs.avail_out = 65536;
            assert_true(deflate(&zs, i == 1023 ? Z_FINISH : Z_NO_FLUSH) != Z_STREAM_ERROR);
            z.len += 65536 - zs.avail_out;
        } while (zs.avail_out == 0);
    }
    deflateEnd(&zs);
    assert_true(z.len < 2 * MIB);
    buf_writer out;
    buf_writer_init(&out);
    assert_int_equal(codec_decompress(CODEC_GZIP, z.data, z.len, BOUND, &out), -EMSGSIZE);
    assert_true(out.cap <= BOUND);
    buf_writer_deinit(&out);
    buf_writer_deinit(&z);
}

/* zstd frame headers by hand (RFC 8878 §3.1.1). */
static void zstd_frame_header(buf_writer *w, bool single_segment, uint64_t content_size)
{
    static const uint8_t magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    buf_write_raw(w, magic, 4);
    /* FCS field 8 bytes (flag 3), single-segment bit, no checksum, no dictionary */
    buf_write_u8(w, (uint8_t)(0xc0 | (single_segment ? 0x20 : 0)));
    if (!single_segment)
        buf_write_u8(w, 10 << 3); /* window 2^(10+10) = 1 MiB */
    for (int i = 0; i < 8; i++)
        buf_write_u8(w, (uint8_t)(content_size >> (8 * i)));
}

/* An RLE block of 128 KiB of @byte. */
static void zstd_rle_block(buf_writer *w, bool last, uint8_t byte)
{
    uint32_t hdr = (131072u << 3) | (1u << 1) | (last ? 1u : 0u);
    buf_write_u8(w, (uint8_t)hdr);
    buf_write_u8(w, (uint8_t)(hdr >> 8));
    buf_write_u8(w, (uint8_t)(hdr >> 16));
    buf_write_u8(w, byte);
}

static void test_zstd_frame_claiming_4gib(void **state)
{
    (void)state;
    const uint64_t four_gib = UINT64_C(4) << 30;
    buf_writer z, out;
    buf_writer_init(&z);
    buf_writer_init(&out);

    /* Single segment: the window is the claimed 4 GiB. The decoder refuses the
     * window; nothing of that size is allocated. */
    zstd_frame_header(&z, true, four_gib);
    for (int i = 0; i < 64; i++)
        zstd_rle_block(&z, i == 63, 'A');
    int r = codec_decompress(CODEC_ZSTD, z.data, z.len, BOUND, &out);
    assert_true(r == -EBADMSG || r == -EMSGSIZE);
    assert_int_equal(out.len, 0);

    /* A 1 MiB window claiming 4 GiB of content and delivering 4 MiB of RLE blocks
     * (16 bytes of input per 512 KiB): stopped at the bound... */
    buf_writer_reset(&z);
    zstd_frame_header(&z, false, four_gib);
    for (int i = 0; i < 32; i++)
        zstd_rle_block(&z, i == 31, 'B');
    buf_writer_reset(&out);
    assert_int_equal(codec_decompress(CODEC_ZSTD, z.data, z.len, MIB, &out), -EMSGSIZE);
    assert_true(out.cap <= MIB);
    /* ...and, under a larger bound, refused when its content falls short of its claim */
    buf_writer_reset(&out);
    assert_int_equal(codec_decompress(CODEC_ZSTD, z.data, z.len, BOUND, &out), -EBADMSG);
    assert_true(out.cap <= BOUND);

    /* The same frame with an honest size decodes. */
    buf_writer_reset(&z);
    zstd_frame_header(&z, false, 4 * MIB);
    for (int i = 0; i < 32; i++)
        zstd_rle_block(&z, i == 31, 'B');
    buf_writer_reset(&out);
    assert_int_equal(codec_decompress(CODEC_ZSTD, z.data, z.len, BOUND, &out), 0);
    assert_int_equal(out.len, 4 * MIB);
    assert_int_equal(out.data[4 * MIB - 1], 'B');

    buf_writer_deinit(&z);
    buf_writer_deinit(&out);
}

static void test_snappy_raw_block_claim_checked_first(void **state)
{
    (void)state;
    /* a raw snappy preamble saying 1 GiB, followed by nothing */
    uint8_t claim[] = {0x80, 0x80, 0x80, 0x80, 0x04, 0x00};
    buf_writer out;
    buf_writer_init(&out);
    assert_int_equal(codec_decompress(CODEC_SNAPPY, claim, sizeof(claim), MIB, &out), -EMSGSIZE);
    assert_true(out.cap < MIB);
    buf_writer_deinit(&out);
}

/* ---- framings other clients write ------------------------------------------- */

static void test_snappy_raw_as_librdkafka_writes(void **state)
{
    (void)state;
    size_t n = 100000;
    uint8_t *json = json_bytes(n);
    size_t max = snappy_max_compressed_length(n);
    char *raw = malloc(max);
    assert_non_null(raw);
    size_t clen = max;
    assert_int_equal(snappy_compress((const char *)json, n, raw, &clen), SNAPPY_OK);
    buf_writer out;
    buf_writer_init(&out);
    assert_int_equal(codec_decompress(CODEC_SNAPPY, raw, clen, BOUND, &out), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, json, n);
    buf_writer_deinit(&out);
    free(raw);
    free(json);
}

static void test_snappy_writes_xerial_frame(void **state)
{
    (void)state;
    size_t n = 70000; /* three 32 KiB blocks */
    uint8_t *json = json_bytes(n);
    buf_writer z;
    buf_writer_init(&z);
    assert_int_equal(codec_compress(CODEC_SNAPPY, 0, json, n, &z), 0);
    static const uint8_t head[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    assert_memory_equal(z.data, head, 16);
    /* walk the blocks: lengths add up exactly, three blocks */
    size_t pos = 16;
    int blocks = 0;
    while (pos < z.len) {
        pos += 4 + buf_load_be32(z.data + pos);
        blocks++;
    }
    assert_int_equal(pos, z.len);
    assert_int_equal(blocks, 3);
    buf_writer_deinit(&z);
    free(json);
}

static void test_gzip_several_members(void **state)
{
    (void)state;
    buf_writer z, out;
    buf_writer_init(&z);
    buf_writer_init(&out);
    assert_int_equal(codec_compress(CODEC_GZIP, 0, "first ", 6, &z), 0);
    assert_int_equal(codec_compress(CODEC_GZIP, 0, "second", 6, &z), 0);
    assert_int_equal(codec_decompress(CODEC_GZIP, z.data, z.len, BOUND, &out), 0);
    assert_int_equal(out.len, 12);
    assert_memory_equal(out.data, "first second", 12);
    buf_writer_deinit(&z);
    buf_writer_deinit(&out);
}

static void test_lz4_frames_with_checksums_and_linked_blocks(void **state)
{
    (void)state;
    size_t n = 300000;
    uint8_t *json = json_bytes(n);
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockMode = LZ4F_blockLinked;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    prefs.frameInfo.contentSize = n;
    size_t bound = LZ4F_compressFrameBound(n, &prefs);
    buf_writer z, out;
    buf_writer_init(&z);
    buf_writer_init(&out);
    assert_int_equal(buf_writer_reserve(&z, 2 * bound), 0);
    size_t a = LZ4F_compressFrame(z.data, bound, json, n, &prefs);
    assert_false(LZ4F_isError(a));
    z.len = a;
    /* a second frame right after the first */
    assert_int_equal(codec_compress(CODEC_LZ4, 0, json, 1000, &z), 0);
    assert_int_equal(codec_decompress(CODEC_LZ4, z.data, z.len, BOUND, &out), 0);
    assert_int_equal(out.len, n + 1000);
    assert_memory_equal(out.data, json, n);
    assert_memory_equal(out.data + n, json, 1000);
    /* a flipped content byte fails the content checksum */
    z.data[a / 2] ^= 1;
    buf_writer_reset(&out);
    assert_int_equal(codec_decompress(CODEC_LZ4, z.data, a, BOUND, &out), -EBADMSG);
    buf_writer_deinit(&z);
    buf_writer_deinit(&out);
    free(json);
}

static void test_lz4_writes_kafka_frame_flags(void **state)
{
    (void)state;
    buf_writer z;
    buf_writer_init(&z);
    assert_int_equal(codec_compress(CODEC_LZ4, 0, "abc", 3, &z), 0);
    assert_int_equal(buf_load_be32(z.data), 0x04224d18); /* magic, little-endian 0x184D2204 */
    uint8_t flg = z.data[4], bd = z.data[5];
    assert_int_equal(flg >> 6, 1);       /* version 01 */
    assert_true(flg & 0x20);             /* independent blocks */
    assert_false(flg & 0x08);            /* no content size */
    assert_int_equal((bd >> 4) & 7, 4);  /* 64 KiB blocks */
    buf_writer_deinit(&z);
}

/* ---- batches ---------------------------------------------------------------- */

#define TS0 INT64_C(1700000000000)

static void build_batch(buf_writer *w, int count, size_t value_size)
{
    struct batch_builder b;
    uint8_t *vals = json_bytes(value_size * (size_t)count + 1);
    assert_int_equal(batch_builder_begin(&b, w, TS0), 0);
    for (int i = 0; i < count; i++) {
        char key[16];
        int kl = snprintf(key, sizeof(key), "key-%d", i % 7);
        struct batch_record_header h = {
            .key = {(const uint8_t *)"trace", 5},
            .value = {i % 2 ? (const uint8_t *)"abc" : NULL, i % 2 ? 3 : -1},
        };
        assert_int_equal(batch_builder_add(&b, TS0 + i, i % 5 ? key : NULL, i % 5 ? kl : -1,
                                           i == 3 ? NULL : vals + (size_t)i * value_size,
                                           i == 3 ? -1 : (int32_t)value_size, &h, 1),
                         0);
    }
    assert_int_equal(batch_builder_finish(&b), 0);
    free(vals);
    /* idempotent producer fields and a broker-assigned offset, as stored */
    uint8_t *p = w->data;
    buf_store_be64(p + BATCH_OFF_PRODUCER_ID, 4242);
    buf_store_be16(p + BATCH_OFF_PRODUCER_EPOCH, 3);
    buf_store_be32(p + BATCH_OFF_BASE_SEQUENCE, 77);
    buf_store_be32(p + BATCH_OFF_CRC,
                   crc32c_update(0, p + BATCH_OFF_ATTRIBUTES, w->len - BATCH_OFF_ATTRIBUTES));
    batch_set_base_offset(p, 1000);
    batch_set_partition_leader_epoch(p, 9);
}

static void assert_same_records(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    buf_writer ra, rb;
    struct batch_header ha, hb;
    buf_writer_init(&ra);
    buf_writer_init(&rb);
    assert_int_equal(batch_parse_header(a, alen, &ha), 0);
    assert_int_equal(batch_parse_header(b, blen, &hb), 0);
    assert_int_equal(batch_decompress_records(a, alen, BOUND, &ra), 0);
    assert_int_equal(batch_decompress_records(b, blen, BOUND, &rb), 0);
    assert_int_equal(ra.len, rb.len);
    assert_memory_equal(ra.data, rb.data, ra.len);
    struct batch_record_iter it;
    struct batch_record rec;
    int n = 0, r;
    batch_records_begin_raw(rb.data, rb.len, hb.record_count, &it);
    while ((r = batch_records_next(&it, &rec)) == 1)
        assert_int_equal(rec.offset_delta, n++);
    assert_int_equal(r, 0);
    assert_int_equal(n, ha.record_count);
    buf_writer_deinit(&ra);
    buf_writer_deinit(&rb);
}

static void test_batch_recompress_each_codec(void **state)
{
    (void)state;
    buf_writer orig;
    buf_writer_init(&orig);
    build_batch(&orig, 16, 1024);
    struct batch_header ho;
    assert_int_equal(batch_validate(orig.data, orig.len, BATCH_VALIDATE_EXACT_COUNT, &ho), 0);

    for (size_t i = 0; i < N_ALL; i++) {
        enum codec_type c = all_codecs[i];
        buf_writer z, back;
        buf_writer_init(&z);
        buf_writer_init(&back);
        assert_int_equal(batch_recompress(orig.data, orig.len, c, BOUND, &z), 0);
        struct batch_header h;
        assert_int_equal(batch_validate(z.data, z.len, BATCH_VALIDATE_EXACT_COUNT, &h), 0);
        assert_int_equal(batch_total_size(&h), z.len);
        assert_int_equal((int)batch_compression(&h), (int)c);
        if (c != CODEC_NONE)
            assert_true(z.len < orig.len);
        /* header fields other than length, crc and codec bits are untouched */
        assert_int_equal(h.base_offset, 1000);
        assert_int_equal(h.partition_leader_epoch, 9);
        assert_int_equal(h.producer_id, 4242);
        assert_int_equal(h.producer_epoch, 3);
        assert_int_equal(h.base_sequence, 77);
        assert_int_equal(h.base_timestamp, ho.base_timestamp);
        assert_int_equal(h.max_timestamp, ho.max_timestamp);
        assert_int_equal(h.last_offset_delta, ho.last_offset_delta);
        assert_int_equal(h.record_count, ho.record_count);
        assert_int_equal(h.attributes & ~BATCH_ATTR_COMPRESSION_MASK,
                         ho.attributes & ~BATCH_ATTR_COMPRESSION_MASK);
        assert_same_records(orig.data, orig.len, z.data, z.len);
        buf_writer scratch;
        buf_writer_init(&scratch);
        assert_int_equal(batch_check_records(z.data, z.len, BOUND, &scratch), 0);
        buf_writer_deinit(&scratch);
        /* and back: byte-identical to the original */
        assert_int_equal(batch_recompress(z.data, z.len, CODEC_NONE, BOUND, &back), 0);
        assert_int_equal(back.len, orig.len);
        assert_memory_equal(back.data, orig.data, orig.len);
        /* through every other codec and back */
        for (size_t j = 0; j < N_REAL; j++) {
            buf_writer y;
            buf_writer_init(&y);
            assert_int_equal(batch_recompress(z.data, z.len, real_codecs[j], BOUND, &y), 0);
            buf_writer_reset(&back);
            assert_int_equal(batch_recompress(y.data, y.len, CODEC_NONE, BOUND, &back), 0);
            assert_memory_equal(back.data, orig.data, orig.len);
            buf_writer_deinit(&y);
        }
        buf_writer_deinit(&z);
        buf_writer_deinit(&back);
    }
    buf_writer_deinit(&orig);
}

static void test_batch_recompress_keeps_log_append_time(void **state)
{
    (void)state;
    buf_writer orig, z;
    buf_writer_init(&orig);
    buf_writer_init(&z);
    build_batch(&orig, 3, 10);
    assert_int_equal(batch_set_log_append_time(orig.data, orig.len, TS0 + 999), 0);
    assert_int_equal(batch_recompress(orig.data, orig.len, CODEC_LZ4, BOUND, &z), 0);
    struct batch_header h;
    assert_int_equal(batch_validate(z.data, z.len, BATCH_VALIDATE_EXACT_COUNT, &h), 0);
    assert_true(h.attributes & BATCH_ATTR_TIMESTAMP_LOG_APPEND);
    assert_int_equal(h.max_timestamp, TS0 + 999);
    buf_writer_deinit(&orig);
    buf_writer_deinit(&z);
}

/* A compressed batch whose header promises one record more than it holds. */
static void test_batch_record_count_mismatch_refused(void **state)
{
    (void)state;
    buf_writer orig, z, scratch;
    buf_writer_init(&orig);
    buf_writer_init(&z);
    buf_writer_init(&scratch);
    build_batch(&orig, 5, 100);
    assert_int_equal(batch_recompress(orig.data, orig.len, CODEC_ZSTD, BOUND, &z), 0);
    uint8_t *p = z.data;
    buf_store_be32(p + BATCH_OFF_RECORD_COUNT, 6);
    buf_store_be32(p + BATCH_OFF_LAST_OFFSET_DELTA, 5);
    buf_store_be32(p + BATCH_OFF_CRC,
                   crc32c_update(0, p + BATCH_OFF_ATTRIBUTES, z.len - BATCH_OFF_ATTRIBUTES));
    assert_int_equal(batch_validate(z.data, z.len, BATCH_VALIDATE_EXACT_COUNT, NULL), 0);
    assert_int_equal(batch_check_records(z.data, z.len, BOUND, &scratch), -EBADMSG);
    buf_writer y;
    buf_writer_init(&y);
    buf_write_raw(&y, "keep", 4);
    assert_int_equal(batch_recompress(z.data, z.len, CODEC_GZIP, BOUND, &y), -EBADMSG);
    assert_int_equal(y.len, 4); /* nothing appended on failure */
    buf_writer_deinit(&y);
    buf_writer_deinit(&orig);
    buf_writer_deinit(&z);
    buf_writer_deinit(&scratch);
}

static void test_batch_bomb_refused(void **state)
{
    (void)state;
    /* 40 records of 64 KiB zeros: 2.5 MiB of records, a few KiB compressed */
    buf_writer orig, z, scratch;
    buf_writer_init(&orig);
    buf_writer_init(&z);
    buf_writer_init(&scratch);
    struct batch_builder b;
    uint8_t *zeros = calloc(1, 65536);
    assert_int_equal(batch_builder_begin(&b, &orig, TS0), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(batch_builder_add(&b, TS0, NULL, -1, zeros, 65536, NULL, 0), 0);
    assert_int_equal(batch_builder_finish(&b), 0);
    free(zeros);
    for (size_t i = 0; i < N_REAL; i++) {
        buf_writer_reset(&z);
        assert_int_equal(batch_recompress(orig.data, orig.len, real_codecs[i], BOUND, &z), 0);
        assert_int_equal(batch_check_records(z.data, z.len, BOUND, &scratch), 0);
        assert_int_equal(batch_check_records(z.data, z.len, MIB, &scratch), -EMSGSIZE);
        buf_writer y;
        buf_writer_init(&y);
        assert_int_equal(batch_recompress(z.data, z.len, CODEC_NONE, MIB, &y), -EMSGSIZE);
        buf_writer_deinit(&y);
    }
    buf_writer_deinit(&orig);
    buf_writer_deinit(&z);
    buf_writer_deinit(&scratch);
}

/* batch_compress_records is batch_recompress's second half: the same bytes. */
static void test_batch_compress_records_matches_recompress(void **state)
{
    (void)state;
    buf_writer orig, a, b, plain;
    buf_writer_init(&orig);
    buf_writer_init(&plain);
    build_batch(&orig, 9, 300);
    assert_int_equal(batch_check_records(orig.data, orig.len, BOUND, &plain), 0);
    for (size_t i = 0; i < N_ALL; i++) {
        buf_writer_init(&a);
        buf_writer_init(&b);
        assert_int_equal(batch_recompress(orig.data, orig.len, all_codecs[i], BOUND, &a), 0);
        assert_int_equal(batch_compress_records(orig.data, orig.len, plain.data, plain.len,
                                                all_codecs[i], &b),
                         0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        buf_writer_deinit(&a);
        buf_writer_deinit(&b);
    }
    buf_writer_init(&a);
    assert_int_equal(batch_compress_records(orig.data, 10, plain.data, plain.len, CODEC_GZIP, &a),
                     -ENODATA);
    assert_int_equal(batch_compress_records(orig.data, orig.len, plain.data, plain.len,
                                            (enum codec_type)6, &a),
                     -EINVAL);
    assert_int_equal(a.len, 0);
    buf_writer_deinit(&a);
    buf_writer_deinit(&orig);
    buf_writer_deinit(&plain);
}

static void test_decompress_bound(void **state)
{
    (void)state;
    assert_int_equal(batch_decompress_bound(0), BATCH_DECOMPRESS_MIN);
    assert_int_equal(batch_decompress_bound(1048588), BATCH_DECOMPRESS_MIN);
    assert_int_equal(batch_decompress_bound(8 << 20), 128u << 20);
    assert_int_equal(batch_decompress_bound(INT64_C(1) << 40), BATCH_DECOMPRESS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_empty),
        cmocka_unit_test(test_round_trip_small),
        cmocka_unit_test(test_round_trip_large),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_truncated_refused),
        cmocka_unit_test(test_corrupt_refused),
        cmocka_unit_test(test_bombs_stop_at_bound),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_zstd_frame_claiming_4gib),
        cmocka_unit_test(test_snappy_raw_block_claim_checked_first),
        cmocka_unit_test(test_snappy_raw_as_librdkafka_writes),
        cmocka_unit_test(test_snappy_writes_xerial_frame),
        cmocka_unit_test(test_gzip_several_members),
        cmocka_unit_test(test_lz4_frames_with_checksums_and_linked_blocks),
        cmocka_unit_test(test_lz4_writes_kafka_frame_flags),
        cmocka_unit_test(test_batch_recompress_each_codec),
        cmocka_unit_test(test_batch_recompress_keeps_log_append_time),
        cmocka_unit_test(test_batch_record_count_mismatch_refused),
        cmocka_unit_test(test_batch_bomb_refused),
        cmocka_unit_test(test_batch_compress_records_matches_recompress),
        cmocka_unit_test(test_decompress_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
