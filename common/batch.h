/* batch: Kafka record batches, magic v2 — the unit clients produce, the broker
 * stores byte-for-byte and consumers fetch.
 *
 * Layout (big-endian; offsets in bytes from the batch start):
 *    0 baseOffset int64          8 batchLength int32 (bytes after this field)
 *   12 partitionLeaderEpoch int32
 *   16 magic int8 (= 2)         17 crc uint32 (CRC-32C of bytes 21..end)
 *   21 attributes int16         23 lastOffsetDelta int32
 *   27 baseTimestamp int64      35 maxTimestamp int64
 *   43 producerId int64         51 producerEpoch int16
 *   53 baseSequence int32       57 recordCount int32
 *   61 records...
 * The broker owns baseOffset and partitionLeaderEpoch, which lie outside the CRC,
 * so it can assign them without touching the checksummed bytes.
 *
 * Errors (negative errno):
 *   -ENODATA  the buffer is shorter than the header or than the declared length
 *   -EBADMSG  malformed: length below the minimum, magic != 2, record count < 1 or
 *             inconsistent with lastOffsetDelta, baseOffset + lastOffsetDelta
 *             overflowing int64, a record that does not parse (an iterator that
 *             failed keeps failing)
 *   -EMSGSIZE batch_validate_all: the records of all batches add up past INT32_MAX
 *   -EILSEQ   the CRC does not match
 *   -ENOTSUP  records of a compressed batch were asked for
 *   -EMSGSIZE (compressed batches) the records decompress past the caller's bound */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/codec.h"

#define BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define BATCH_HEADER_SIZE 61  /* everything before the first record */
#define BATCH_MAGIC_V2 2

/* Field offsets, for code that patches stored batches. */
#define BATCH_OFF_BASE_OFFSET 0
#define BATCH_OFF_LENGTH 8
#define BATCH_OFF_LEADER_EPOCH 12
#define BATCH_OFF_MAGIC 16
#define BATCH_OFF_CRC 17
#define BATCH_OFF_ATTRIBUTES 21
#define BATCH_OFF_LAST_OFFSET_DELTA 23
#define BATCH_OFF_BASE_TIMESTAMP 27
#define BATCH_OFF_MAX_TIMESTAMP 35
#define BATCH_OFF_PRODUCER_ID 43
#define BATCH_OFF_PRODUCER_EPOCH 51
#define BATCH_OFF_BASE_SEQUENCE 53
#define BATCH_OFF_RECORD_COUNT 57

/* attributes */
#define BATCH_ATTR_COMPRESSION_MASK 0x07
#define BATCH_ATTR_TIMESTAMP_LOG_APPEND 0x08
#define BATCH_ATTR_TRANSACTIONAL 0x10
#define BATCH_ATTR_CONTROL 0x20
#define BATCH_ATTR_DELETE_HORIZON 0x40

enum batch_compression {
    BATCH_COMPRESSION_NONE = 0,
    BATCH_COMPRESSION_GZIP = 1,
    BATCH_COMPRESSION_SNAPPY = 2,
    BATCH_COMPRESSION_LZ4 = 3,
    BATCH_COMPRESSION_ZSTD = 4,
};

struct batch_header {
    int64_t base_offset;
    int32_t length; /* batchLength: total size is BATCH_LOG_OVERHEAD + length */
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
};

static inline int64_t batch_last_offset(const struct batch_header *h)
{
    return h->base_offset + h->last_offset_delta;
}
static inline int64_t batch_total_size(const struct batch_header *h)
{
    return (int64_t)BATCH_LOG_OVERHEAD + h->length;
}
static inline enum batch_compression batch_compression(const struct batch_header *h)
{
    return (enum batch_compression)(h->attributes & BATCH_ATTR_COMPRESSION_MASK);
}

/* Decode the 61-byte header at the start of @data. Checks only that @len holds the
 * header (-ENODATA); no other validation. */
int batch_parse_header(const void *data, size_t len, struct batch_header *ret);

enum batch_validate_flags {
    /* record count must equal lastOffsetDelta + 1, as for a batch fresh from a
     * producer; without it lastOffsetDelta + 1 >= count is accepted (compaction can
     * remove records but keeps the offset range). */
    BATCH_VALIDATE_EXACT_COUNT = 1 << 0,
};

/* Validate the batch at the start of @data without decompressing it: the buffer
 * holds the declared length, length >= BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD,
 * magic is 2, the CRC matches, record count >= 1 and consistent with
 * lastOffsetDelta, a compression codec in 0..4, and for uncompressed batches the
 * count is not larger than the bytes could hold (a record takes >= 7 bytes). The
 * batch may be followed by more bytes. On success fills *ret (may be NULL). */
int batch_validate(const void *data, size_t len, unsigned flags, struct batch_header *ret);

/* Validate a buffer that must consist of whole batches only, back to back (a
 * Produce request's record set). Fills counts when non-NULL. -ENODATA if the last
 * batch is cut short; an empty buffer is -EBADMSG. */
int batch_validate_all(const void *data, size_t len, unsigned flags, int32_t *ret_batches,
                       int32_t *ret_records);

/* Broker-owned fields, outside the CRC: plain stores. @data must hold a header. */
void batch_set_base_offset(void *data, int64_t base_offset);
void batch_set_partition_leader_epoch(void *data, int32_t epoch);
/* Stamp LogAppendTime: maxTimestamp = @ts, timestamp-type bit set, CRC recomputed.
 * @len is the batch's total size. -ENODATA if @len is too short for the header or
 * the declared length, -EBADMSG if the declared length is below the minimum. */
int batch_set_log_append_time(void *data, size_t len, int64_t ts);

/* ---- records inside an uncompressed batch ----------------------------------- */

/* One record; every pointer borrows from the batch. */
struct batch_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    buf_slice key;   /* len -1 = null */
    buf_slice value; /* len -1 = null */
    int32_t header_count;
    buf_slice headers; /* the raw header section, for batch_record_headers_next() */
};

struct batch_record_header {
    buf_slice key;   /* never null */
    buf_slice value; /* len -1 = null */
};

struct batch_record_iter {
    buf_reader r;
    int32_t remaining; /* records not yet returned */
};

/* Start iterating the records of the validated batch at @data (@len >= its total
 * size). -ENOTSUP for a compressed batch. */
int batch_records_begin(const void *data, size_t len, struct batch_record_iter *it);
/* 1 and *ret filled for each record, 0 after the last one, -EBADMSG when a record
 * does not parse or its declared length disagrees with its fields, or when bytes
 * remain after the last record. */
int batch_records_next(struct batch_record_iter *it, struct batch_record *ret);

struct batch_header_iter {
    buf_reader r;
    int32_t remaining;
};
void batch_record_headers_begin(const struct batch_record *rec, struct batch_header_iter *it);
/* 1 per header, 0 at the end, -EBADMSG when malformed. */
int batch_record_headers_next(struct batch_header_iter *it, struct batch_record_header *ret);

/* Iterate @count records laid out back to back in @records (a decompressed
 * records section; borrowed). Same contract as batch_records_next. */
void batch_records_begin_raw(const void *records, size_t len, int32_t count,
                             struct batch_record_iter *it);

/* ---- compressed batches ----------------------------------------------------- */

/* The bound on a batch's decompressed records section that the broker applies
 * (docs/compression.md): 16 x max.message.bytes, but never below 64 MiB nor above
 * 1 GiB. A batch that decompresses past it is refused as a compression bomb. */
#define BATCH_DECOMPRESS_MIN (64u << 20)
#define BATCH_DECOMPRESS_MAX (1u << 30)
#define BATCH_DECOMPRESS_FACTOR 16
size_t batch_decompress_bound(int64_t max_message_bytes);

/* Append the records section of the validated batch at @batch (@len >= its total
 * size), decompressed, to @out; at most @max_out bytes. An uncompressed batch's
 * records are copied. Then iterate it with batch_records_begin_raw and the
 * header's record count. Errors as codec_decompress. */
int batch_decompress_records(const void *batch, size_t len, size_t max_out, buf_writer *out);

/* Check that the validated batch at @batch holds what its header says: its
 * records decompress within @max_out and exactly recordCount records parse, with
 * offset deltas 0..lastOffsetDelta increasing. Uses @scratch (a growable writer,
 * borrowed, reset here) for the decompressed bytes so a caller checking many
 * batches reuses one buffer. -EBADMSG when corrupt, -EMSGSIZE for a bomb. */
int batch_check_records(const void *batch, size_t len, size_t max_out, buf_writer *scratch);

/* Rewrite the validated batch at @batch (@len >= its total size) with codec @c at
 * the library's default level, appending the new batch to @out: the same base
 * offset, leader epoch, records, timestamps and producer id/epoch/sequence; new
 * attributes (codec bits), length and CRC. The records are checked as
 * batch_check_records does on the way. Decompression is bounded by @max_out.
 * CODEC_NONE yields an uncompressed batch that batch_records_begin reads. */
int batch_recompress(const void *batch, size_t len, enum codec_type c, size_t max_out,
                     buf_writer *out);

/* ---- building batches (producers in tests, benchmarks, the CLI) ------------- */

struct batch_builder {
    buf_writer *w;
    size_t start; /* where this batch begins in w */
    int64_t base_timestamp;
    int64_t max_timestamp;
    int32_t count;
    int16_t attributes;
};

/* Begin an uncompressed batch at the end of @w (borrowed) with base offset 0,
 * leader epoch -1, producer id/epoch/sequence -1 (no idempotence). */
int batch_builder_begin(struct batch_builder *b, buf_writer *w, int64_t base_timestamp);
/* Append a record. key/value may be NULL with length -1 (null). */
int batch_builder_add(struct batch_builder *b, int64_t timestamp, const void *key,
                      int32_t key_len, const void *value, int32_t value_len,
                      const struct batch_record_header *headers, int32_t header_count);
/* Fill in length, lastOffsetDelta, timestamps, count and CRC. -EINVAL when no
 * record was added. The finished batch is w->data[start .. w->len). */
int batch_builder_finish(struct batch_builder *b);
