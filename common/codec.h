/* codec: the four Kafka compression codecs over a record batch's records section.
 *
 * The codec id is the value of a batch's attribute bits 0-2. Framing is what
 * Kafka's clients write and read:
 *   gzip    RFC 1952 gzip members (zlib); several concatenated members are read
 *   snappy  xerial framing (magic "\x82SNAPPY\0", int32 version, int32 compatible
 *           version, then [int32 length][raw snappy block]...) as the Java client
 *           writes it; a plain raw snappy block (librdkafka) is read too
 *   lz4     the LZ4 frame format (LZ4F), independent 64 KiB blocks, as Kafka >= 0.10
 *   zstd    zstd frames, read with the streaming API
 *
 * Decompression is bounded: it never appends more than @max_out bytes and never
 * allocates on behalf of a size a frame header claims (a zstd frame that says it
 * holds 4 GiB costs nothing until its bytes actually decode, and stops at
 * @max_out). Output grows geometrically up to the bound.
 *
 * Errors (negative errno):
 *   -EMSGSIZE  the output would exceed @max_out (a compression bomb)
 *   -EBADMSG   the input is corrupt or truncated, or has bytes after its last frame
 *   -ENOMEM    the output buffer could not grow
 *   -EINVAL    unknown codec
 * On error, @out may hold a partial output past its previous length; the caller
 * discards it (buf_writer_reset or by remembering the previous length). */
#pragma once

#include <stddef.h>

#include "common/buf.h"

enum codec_type {
    CODEC_NONE = 0,
    CODEC_GZIP = 1,
    CODEC_SNAPPY = 2,
    CODEC_LZ4 = 3,
    CODEC_ZSTD = 4,
};
#define CODEC_MAX CODEC_ZSTD

/* Pass as @level for the library's default level. */
#define CODEC_LEVEL_DEFAULT 0

/* Kafka's names, as in compression.type: "uncompressed" is CODEC_NONE ("none" is
 * accepted too, as the producer config spells it). -EINVAL for anything else. */
int codec_from_name(const char *name, enum codec_type *ret);
/* "none", "gzip", "snappy", "lz4", "zstd"; "unknown" out of range. */
const char *codec_name(enum codec_type c);

/* Decompress @in (@in_len bytes) with codec @c, appending to @out (a growable
 * writer, borrowed), never more than @max_out bytes. CODEC_NONE copies. */
int codec_decompress(enum codec_type c, const void *in, size_t in_len, size_t max_out,
                     buf_writer *out);

/* Compress @in with codec @c at @level (CODEC_LEVEL_DEFAULT, or the library's own
 * scale: gzip 1-9, lz4 0-12, zstd 1-22; snappy has none), appending to @out. The
 * output is what Kafka's Java client writes for the codec. CODEC_NONE copies. */
int codec_compress(enum codec_type c, int level, const void *in, size_t in_len, buf_writer *out);
