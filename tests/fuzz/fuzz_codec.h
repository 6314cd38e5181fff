/* fuzz_codec: the body shared by the decompressor targets (fuzz_gzip, fuzz_snappy,
 * fuzz_lz4, fuzz_zstd), one per codec so each gets its own corpus and coverage.
 * For every input, decompressed with a 1 MiB bound:
 *  - the result is 0, -EBADMSG or -EMSGSIZE, and never more than the bound was
 *    appended after what the writer held;
 *  - on success the same input decodes again under a bound of exactly its output
 *    size, and a bound one byte smaller is -EMSGSIZE;
 *  - the output compressed by codec_compress decompresses back to itself. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define FUZZ_CODEC_BOUND ((size_t)1 << 20)

static int fuzz_codec_one(enum codec_type c, const uint8_t *data, size_t size)
{
    buf_writer out, again, z;
    buf_writer_init(&out);
    buf_writer_init(&again);
    buf_writer_init(&z);

    buf_write_raw(&out, "pre", 3); /* output is appended */
    int r = codec_decompress(c, data, size, FUZZ_CODEC_BOUND, &out);
    CHECK(r == 0 || r == -EBADMSG || r == -EMSGSIZE);
    CHECK(out.len >= 3 && out.len - 3 <= FUZZ_CODEC_BOUND);
    CHECK(memcmp(out.data, "pre", 3) == 0);
    if (r == 0) {
        size_t n = out.len - 3;
        CHECK(codec_decompress(c, data, size, n, &again) == 0);
        CHECK(again.len == n && (n == 0 || memcmp(again.data, out.data + 3, n) == 0));
        if (n > 0) {
            buf_writer_reset(&again);
            CHECK(codec_decompress(c, data, size, n - 1, &again) == -EMSGSIZE);
        }
        CHECK(codec_compress(c, CODEC_LEVEL_DEFAULT, out.data + 3, n, &z) == 0);
        buf_writer_reset(&again);
        CHECK(codec_decompress(c, z.data, z.len, n, &again) == 0);
        CHECK(again.len == n && (n == 0 || memcmp(again.data, out.data + 3, n) == 0));
    }
    buf_writer_deinit(&out);
    buf_writer_deinit(&again);
    buf_writer_deinit(&z);
    return 0;
}
