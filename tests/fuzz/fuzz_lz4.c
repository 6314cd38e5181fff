/* fuzz_lz4: the lz4 decompressor (common/codec.c) on arbitrary bytes, with the
 * properties of fuzz_codec.h. */
#include "fuzz_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_codec_one(CODEC_LZ4, data, size);
}
