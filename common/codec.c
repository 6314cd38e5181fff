/* codec: gzip (zlib), snappy (libsnappy, xerial framing), lz4 (LZ4F frames) and
 * zstd (libzstd streaming), each decompressing with a hard bound on its output.
 * The formats and the error contract are described in codec.h. */
#include "common/codec.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* First reservation for a decompression: a guess from the input size, so a small
 * batch never reserves the whole bound. */
#define CODEC_FIRST_RESERVE_FACTOR 4
#define CODEC_MIN_RESERVE 4096

static const char *const codec_names[] = {"none", "gzip", "snappy", "lz4", "zstd"};

int codec_from_name(const char *name, enum codec_type *ret)
{
    if (!name)
        return -EINVAL;
    if (strcmp(name, "uncompressed") == 0) {
        *ret = CODEC_NONE;
        return 0;
    }
    for (int c = CODEC_NONE; c <= CODEC_MAX; c++) {
        if (strcmp(name, codec_names[c]) == 0) {
            *ret = (enum codec_type)c;
            return 0;
        }
    }
    return -EINVAL;
}

const char *codec_name(enum codec_type c)
{
    if ((int)c < CODEC_NONE || c > CODEC_MAX)
        return "unknown";
    return codec_names[c];
}

/* ---- bounded output --------------------------------------------------------- */

/* Output state of one decompression: bytes appended so far are out->len - start. */
struct sink {
    buf_writer *out;
    size_t start;
    size_t max_out;
};

static size_t sink_written(const struct sink *s)
{
    return s->out->len - s->start;
}

/* Make room for more output: at least one byte, up to double what was written,
 * never past the bound. Returns the room (> 0), -EMSGSIZE when the bound is
 * reached, or -ENOMEM. */
static int sink_grow(struct sink *s, size_t want, size_t *ret_room)
{
    size_t written = sink_written(s);
    size_t left = s->max_out - written;
    if (left == 0)
        return -EMSGSIZE;
    size_t room = s->out->cap - s->out->len;
    if (room > 0) {
        *ret_room = room < left ? room : left;
        return 0;
    }
    if (want < CODEC_MIN_RESERVE)
        want = CODEC_MIN_RESERVE;
    if (want < written)
        want = written; /* doubling */
    if (want > left)
        want = left;
    int r = buf_writer_reserve(s->out, want);
    if (r < 0)
        return r;
    room = s->out->cap - s->out->len;
    *ret_room = room < left ? room : left;
    return 0;
}

static uint8_t *sink_cur(const struct sink *s)
{
    return s->out->data + s->out->len;
}

static size_t first_reserve(size_t in_len)
{
    return in_len > SIZE_MAX / CODEC_FIRST_RESERVE_FACTOR ? SIZE_MAX
                                                          : in_len * CODEC_FIRST_RESERVE_FACTOR;
}

/* ---- gzip ------------------------------------------------------------------- */

/* zlib counts in uInt; feed it at most this much per call. */
#define ZLIB_CHUNK_MAX ((size_t)UINT_MAX)

static int gzip_decompress(const uint8_t *in, size_t in_len, struct sink *s)
{
    z_stream z;
    int r = 0;

    memset(&z, 0, sizeof(z));
    /* 16 + MAX_WBITS: gzip framing only, as Kafka's GZIPInputStream */
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -ENOMEM;
    size_t pos = 0;
    for (;;) {
        size_t room;
        uint8_t probe;
        r = sink_grow(s, first_reserve(in_len), &room);
        if (r == -EMSGSIZE) {
            /* bound reached: a member may still end here, but any further byte of
             * output is a bomb */
            z.next_out = &probe;
            z.avail_out = 1;
        } else if (r < 0) {
            break;
        } else {
            z.next_out = sink_cur(s);
            z.avail_out = room < ZLIB_CHUNK_MAX ? (uInt)room : (uInt)ZLIB_CHUNK_MAX;
        }
        bool probing = r == -EMSGSIZE;
        r = 0;
        size_t in_chunk = in_len - pos < ZLIB_CHUNK_MAX ? in_len - pos : ZLIB_CHUNK_MAX;
        z.next_in = (Bytef *)(uintptr_t)(in + pos);
        z.avail_in = (uInt)in_chunk;
        uInt out_before = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        size_t produced = out_before - z.avail_out;
        size_t consumed = in_chunk - z.avail_in;
        pos += consumed;
        if (probing && produced > 0) {
            r = -EMSGSIZE;
            break;
        }
        if (!probing)
            s->out->len += produced;
        if (zr == Z_STREAM_END) {
            if (pos == in_len)
                break; /* every member ended cleanly */
            /* another gzip member follows (GZIPInputStream reads them all) */
            if (inflateReset(&z) != Z_OK) {
                r = -EBADMSG;
                break;
            }
            continue;
        }
        if (zr == Z_MEM_ERROR) {
            r = -ENOMEM;
            break;
        }
        /* Z_BUF_ERROR without progress: the input ended inside a member */
        if ((zr != Z_OK && zr != Z_BUF_ERROR) || (consumed == 0 && produced == 0)) {
            r = -EBADMSG;
            break;
        }
    }
    inflateEnd(&z);
    return r;
}

static int gzip_level(int level)
{
    if (level == CODEC_LEVEL_DEFAULT)
        return Z_DEFAULT_COMPRESSION;
    return level < 1 ? 1 : level > 9 ? 9 : level;
}

static int gzip_compress(int level, const uint8_t *in, size_t in_len, buf_writer *out)
{
    z_stream z;
    int r = 0;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, gzip_level(level), Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return -ENOMEM;
    size_t pos = 0;
    int zr;
    do {
        size_t in_chunk = in_len - pos < ZLIB_CHUNK_MAX ? in_len - pos : ZLIB_CHUNK_MAX;
        int flush = pos + in_chunk == in_len ? Z_FINISH : Z_NO_FLUSH;
        size_t bound = deflateBound(&z, (uLong)in_chunk) + 64;
        if (bound > ZLIB_CHUNK_MAX)
            bound = ZLIB_CHUNK_MAX;
        r = buf_writer_reserve(out, bound);
        if (r < 0)
            break;
        z.next_in = (Bytef *)(uintptr_t)(in + pos);
        z.avail_in = (uInt)in_chunk;
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)bound;
        zr = deflate(&z, flush);
        if (zr == Z_STREAM_ERROR) {
            r = -EINVAL;
            break;
        }
        pos += in_chunk - z.avail_in;
        out->len += bound - z.avail_out;
    } while (zr != Z_STREAM_END);
    deflateEnd(&z);
    return r;
}

/* ---- snappy ----------------------------------------------------------------- */

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_SIZE 16 /* magic, int32 version, int32 compatible version */
/* The Java client's block size (snappy-java's default). */
#define XERIAL_BLOCK_SIZE (32 * 1024)

/* One raw snappy block: its preamble states the uncompressed length, checked
 * against the bound before anything is reserved. */
static int snappy_block(const uint8_t *in, size_t in_len, struct sink *s)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)in, in_len, &ulen) != SNAPPY_OK)
        return -EBADMSG;
    if (ulen > s->max_out - sink_written(s))
        return -EMSGSIZE;
    /* cheap full check of the block before allocating what it claims */
    if (snappy_validate_compressed_buffer((const char *)in, in_len) != SNAPPY_OK)
        return -EBADMSG;
    int r = buf_writer_reserve(s->out, ulen);
    if (r < 0)
        return r;
    size_t got = ulen;
    if (snappy_uncompress((const char *)in, in_len, (char *)sink_cur(s), &got) != SNAPPY_OK ||
        got != ulen)
        return -EBADMSG;
    s->out->len += ulen;
    return 0;
}

static int snappy_decompress(const uint8_t *in, size_t in_len, struct sink *s)
{
    if (in_len < XERIAL_HEADER_SIZE || memcmp(in, xerial_magic, sizeof(xerial_magic)) != 0)
        return snappy_block(in, in_len, s); /* raw snappy, as librdkafka writes it */

    size_t pos = XERIAL_HEADER_SIZE;
    while (pos < in_len) {
        if (in_len - pos < 4)
            return -EBADMSG;
        uint32_t blen = buf_load_be32(in + pos);
        pos += 4;
        if (blen > in_len - pos)
            return -EBADMSG;
        int r = snappy_block(in + pos, blen, s);
        if (r < 0)
            return r;
        pos += blen;
    }
    return 0;
}

static int snappy_compress_framed(const uint8_t *in, size_t in_len, buf_writer *out)
{
    buf_write_raw(out, xerial_magic, sizeof(xerial_magic));
    buf_write_i32(out, 1); /* version */
    buf_write_i32(out, 1); /* minimum compatible version */
    int r = buf_writer_error(out);
    if (r < 0)
        return r;
    size_t pos = 0;
    while (pos < in_len) {
        size_t chunk = in_len - pos < XERIAL_BLOCK_SIZE ? in_len - pos : XERIAL_BLOCK_SIZE;
        size_t max = snappy_max_compressed_length(chunk);
        r = buf_writer_reserve(out, 4 + max);
        if (r < 0)
            return r;
        size_t clen = max;
        if (snappy_compress((const char *)in + pos, chunk, (char *)out->data + out->len + 4,
                            &clen) != SNAPPY_OK)
            return -EINVAL;
        buf_store_be32(out->data + out->len, (uint32_t)clen);
        out->len += 4 + clen;
        pos += chunk;
    }
    return 0;
}

/* ---- lz4 -------------------------------------------------------------------- */

static int lz4_decompress(const uint8_t *in, size_t in_len, struct sink *s)
{
    LZ4F_dctx *dctx;
    int r = 0;

    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return -ENOMEM;
    size_t pos = 0;
    size_t hint = 1; /* LZ4F's "bytes expected next"; 0 = a frame just ended */
    if (in_len == 0)
        r = -EBADMSG;
    while (r == 0 && pos < in_len) {
        size_t room;
        r = sink_grow(s, first_reserve(in_len), &room);
        uint8_t probe;
        uint8_t *dst;
        if (r == -EMSGSIZE) {
            /* bound reached: any further output means a bomb */
            dst = &probe;
            room = 1;
            r = 0;
        } else if (r < 0) {
            break;
        } else {
            dst = sink_cur(s);
        }
        size_t dst_size = room;
        size_t src_size = in_len - pos;
        hint = LZ4F_decompress(dctx, dst, &dst_size, in + pos, &src_size, NULL);
        if (LZ4F_isError(hint)) {
            r = -EBADMSG;
            break;
        }
        pos += src_size;
        if (dst == &probe) {
            if (dst_size > 0) {
                r = -EMSGSIZE;
                break;
            }
        } else {
            s->out->len += dst_size;
        }
        if (src_size == 0 && dst_size == 0 && hint != 0) {
            r = -EBADMSG; /* no progress */
            break;
        }
        /* hint 0: the frame ended and the context is ready for another one */
    }
    /* Input consumed: the last frame must have ended (a truncated frame leaves
     * LZ4F waiting for more). Output still buffered inside LZ4F is drained first. */
    while (r == 0 && hint != 0) {
        size_t room;
        r = sink_grow(s, CODEC_MIN_RESERVE, &room);
        if (r < 0)
            break;
        size_t dst_size = room, src_size = 0;
        hint = LZ4F_decompress(dctx, sink_cur(s), &dst_size, NULL, &src_size, NULL);
        if (LZ4F_isError(hint)) {
            r = -EBADMSG;
            break;
        }
        s->out->len += dst_size;
        if (dst_size == 0 && hint != 0)
            r = -EBADMSG;
    }
    LZ4F_freeDecompressionContext(dctx);
    return r;
}

static int lz4_compress(int level, const uint8_t *in, size_t in_len, buf_writer *out)
{
    /* What Kafka's KafkaLZ4BlockOutputStream writes: 64 KiB independent blocks, no
     * content size, no content checksum (its reader needs independent blocks). */
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
    prefs.compressionLevel = level;
    size_t bound = LZ4F_compressFrameBound(in_len, &prefs);
    int r = buf_writer_reserve(out, bound);
    if (r < 0)
        return r;
    size_t n = LZ4F_compressFrame(out->data + out->len, bound, in, in_len, &prefs);
    if (LZ4F_isError(n))
        return -EINVAL;
    out->len += n;
    return 0;
}

/* ---- zstd ------------------------------------------------------------------- */

/* The decoder's window is the memory it keeps; limit it to what the bound needs so
 * a frame declaring a huge window cannot make it allocate. */
#define ZSTD_WINDOWLOG_FLOOR 20 /* 1 MiB: every level's window for small inputs */
#define ZSTD_WINDOWLOG_CEIL 27  /* libzstd's own default limit */

static int zstd_window_log(size_t max_out)
{
    int log = ZSTD_WINDOWLOG_FLOOR;
    while (log < ZSTD_WINDOWLOG_CEIL && ((size_t)1 << log) < max_out)
        log++;
    return log;
}

static int zstd_decompress(const uint8_t *in, size_t in_len, struct sink *s)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    int r = 0;

    if (!d)
        return -ENOMEM;
    if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, zstd_window_log(s->max_out)))) {
        ZSTD_freeDCtx(d);
        return -ENOMEM;
    }
    ZSTD_inBuffer ib = {in, in_len, 0};
    size_t hint = 1; /* 0 once a frame is complete and flushed */
    if (in_len == 0)
        r = -EBADMSG;
    while (r == 0 && (ib.pos < ib.size || hint != 0)) {
        size_t room;
        uint8_t probe;
        ZSTD_outBuffer ob;
        r = sink_grow(s, first_reserve(in_len), &room);
        if (r == -EMSGSIZE) {
            ob = (ZSTD_outBuffer){&probe, 1, 0};
            r = 0;
        } else if (r < 0) {
            break;
        } else {
            ob = (ZSTD_outBuffer){sink_cur(s), room, 0};
        }
        size_t in_before = ib.pos;
        hint = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(hint)) {
            r = ZSTD_getErrorCode(hint) == ZSTD_error_memory_allocation ? -ENOMEM : -EBADMSG;
            break;
        }
        if (ob.dst == &probe) {
            if (ob.pos > 0) {
                r = -EMSGSIZE;
                break;
            }
        } else {
            s->out->len += ob.pos;
        }
        /* no input taken and no output made: the frame is truncated */
        if (ib.pos == in_before && ob.pos == 0 && hint != 0) {
            r = -EBADMSG;
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return r;
}

static int zstd_compress(int level, const uint8_t *in, size_t in_len, buf_writer *out)
{
    size_t bound = ZSTD_compressBound(in_len);
    int r = buf_writer_reserve(out, bound);
    if (r < 0)
        return r;
    /* level 0 is libzstd's default (3) */
    size_t n = ZSTD_compress(out->data + out->len, bound, in, in_len, level);
    if (ZSTD_isError(n))
        return ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ? -ENOMEM : -EINVAL;
    out->len += n;
    return 0;
}

/* ---- entry points ----------------------------------------------------------- */

static int copy_bounded(const uint8_t *in, size_t in_len, struct sink *s)
{
    if (in_len > s->max_out)
        return -EMSGSIZE;
    return buf_write_raw(s->out, in, in_len);
}

int codec_decompress(enum codec_type c, const void *in, size_t in_len, size_t max_out,
                     buf_writer *out)
{
    int r = buf_writer_error(out);
    if (r < 0)
        return r;
    if (in_len > 0 && !in)
        return -EINVAL;
    struct sink s = {.out = out, .start = out->len, .max_out = max_out};
    switch (c) {
    case CODEC_NONE:
        return copy_bounded(in, in_len, &s);
    case CODEC_GZIP:
        return gzip_decompress(in, in_len, &s);
    case CODEC_SNAPPY:
        return snappy_decompress(in, in_len, &s);
    case CODEC_LZ4:
        return lz4_decompress(in, in_len, &s);
    case CODEC_ZSTD:
        return zstd_decompress(in, in_len, &s);
    }
    return -EINVAL;
}

int codec_compress(enum codec_type c, int level, const void *in, size_t in_len, buf_writer *out)
{
    int r = buf_writer_error(out);
    if (r < 0)
        return r;
    if (in_len > 0 && !in)
        return -EINVAL;
    static const uint8_t empty[1];
    if (in_len == 0)
        in = empty;
    switch (c) {
    case CODEC_NONE:
        return buf_write_raw(out, in, in_len);
    case CODEC_GZIP:
        return gzip_compress(level, in, in_len, out);
    case CODEC_SNAPPY:
        return snappy_compress_framed(in, in_len, out);
    case CODEC_LZ4:
        return lz4_compress(level, in, in_len, out);
    case CODEC_ZSTD:
        return zstd_compress(level, in, in_len, out);
    }
    return -EINVAL;
}
