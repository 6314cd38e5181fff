/* batch: Kafka record batches (magic v2) — header decoding, validation without
 * decompression, the broker-owned header stores, record/header iteration over
 * uncompressed batches, decompression, checking and recompression of compressed
 * ones (the codecs are in codec.c), and a builder that writes batches the way a plain
 * (non-idempotent) Kafka producer does. The layout is described in batch.h. */
#include "common/batch.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "common/crc32c.h"

/* batchLength counts everything after the length field; the header alone is this
 * long, so a smaller value cannot be a batch. */
#define BATCH_MIN_LENGTH (BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD)

/* Smallest possible record: length, attributes, timestampDelta, offsetDelta,
 * keyLength, valueLength and header count, one byte each. */
#define BATCH_MIN_RECORD_SIZE 7
/* The same record without its length prefix. */
#define BATCH_MIN_RECORD_BODY 6
/* A header is at least a key length and a value length. */
#define BATCH_MIN_HEADER_SIZE 2

/* Highest codec id the format defines (zstd). */
#define BATCH_MAX_CODEC BATCH_COMPRESSION_ZSTD

static int32_t load_i32(const uint8_t *p)
{
    return (int32_t)buf_load_be32(p);
}

static uint32_t batch_crc(const uint8_t *data, int32_t length)
{
    /* from attributes to the end: 12 + length - 21 bytes */
    return crc32c_update(0, data + BATCH_OFF_ATTRIBUTES,
                         (size_t)length + BATCH_LOG_OVERHEAD - BATCH_OFF_ATTRIBUTES);
}

int batch_parse_header(const void *data, size_t len, struct batch_header *ret)
{
    const uint8_t *p = data;

    if (len < BATCH_HEADER_SIZE)
        return -ENODATA;
    struct batch_header h = {
        .base_offset = (int64_t)buf_load_be64(p + BATCH_OFF_BASE_OFFSET),
        .length = load_i32(p + BATCH_OFF_LENGTH),
        .partition_leader_epoch = load_i32(p + BATCH_OFF_LEADER_EPOCH),
        .magic = (int8_t)p[BATCH_OFF_MAGIC],
        .crc = buf_load_be32(p + BATCH_OFF_CRC),
        .attributes = (int16_t)buf_load_be16(p + BATCH_OFF_ATTRIBUTES),
        .last_offset_delta = load_i32(p + BATCH_OFF_LAST_OFFSET_DELTA),
        .base_timestamp = (int64_t)buf_load_be64(p + BATCH_OFF_BASE_TIMESTAMP),
        .max_timestamp = (int64_t)buf_load_be64(p + BATCH_OFF_MAX_TIMESTAMP),
        .producer_id = (int64_t)buf_load_be64(p + BATCH_OFF_PRODUCER_ID),
        .producer_epoch = (int16_t)buf_load_be16(p + BATCH_OFF_PRODUCER_EPOCH),
        .base_sequence = load_i32(p + BATCH_OFF_BASE_SEQUENCE),
        .record_count = load_i32(p + BATCH_OFF_RECORD_COUNT),
    };
    *ret = h;
    return 0;
}

/* The declared length is checked before anything past it is looked at, so a
 * truncated batch reads as -ENODATA whatever its remaining bytes hold; that is what
 * lets recovery tell a torn tail from a corrupt batch. */
static int batch_check_extent(const uint8_t *p, size_t len, int32_t *ret_length)
{
    if (len < BATCH_LOG_OVERHEAD)
        return -ENODATA;
    int32_t length = load_i32(p + BATCH_OFF_LENGTH);
    if (length < BATCH_MIN_LENGTH)
        return -EBADMSG;
    if (len - BATCH_LOG_OVERHEAD < (size_t)length)
        return -ENODATA;
    *ret_length = length;
    return 0;
}

int batch_validate(const void *data, size_t len, unsigned flags, struct batch_header *ret)
{
    const uint8_t *p = data;
    struct batch_header h;
    int32_t length;
    int r;

    r = batch_check_extent(p, len, &length);
    if (r < 0)
        return r;
    r = batch_parse_header(p, len, &h);
    if (r < 0)
        return r;
    if (h.magic != BATCH_MAGIC_V2)
        return -EBADMSG;
    if (batch_crc(p, length) != h.crc)
        return -EILSEQ;
    if ((h.attributes & BATCH_ATTR_COMPRESSION_MASK) > BATCH_MAX_CODEC)
        return -EBADMSG;
    if (h.record_count < 1)
        return -EBADMSG;

    /* lastOffsetDelta + 1 in 64 bits: INT32_MAX + 1 must not wrap. */
    int64_t span = (int64_t)h.last_offset_delta + 1;
    if (flags & BATCH_VALIDATE_EXACT_COUNT) {
        if (span != h.record_count)
            return -EBADMSG;
    } else if (span < h.record_count) {
        return -EBADMSG;
    }
    /* A last offset that does not fit in int64 cannot be stored or fetched. */
    if (h.base_offset > INT64_MAX - h.last_offset_delta)
        return -EBADMSG;

    if (batch_compression(&h) == BATCH_COMPRESSION_NONE) {
        size_t body = (size_t)length - BATCH_MIN_LENGTH;
        if ((size_t)h.record_count > body / BATCH_MIN_RECORD_SIZE)
            return -EBADMSG;
    }

    if (ret)
        *ret = h;
    return 0;
}

int batch_validate_all(const void *data, size_t len, unsigned flags, int32_t *ret_batches,
                       int32_t *ret_records)
{
    const uint8_t *p = data;
    size_t pos = 0;
    int64_t batches = 0, records = 0;

    if (len == 0)
        return -EBADMSG;
    while (pos < len) {
        struct batch_header h;
        int r = batch_validate(p + pos, len - pos, flags, &h);
        if (r < 0)
            return r;
        pos += (size_t)batch_total_size(&h);
        batches++;
        records += h.record_count;
    }
    /* Each batch is at least 61 bytes and holds at most INT32_MAX records, but a
     * buffer of many batches could still sum past int32. */
    if (batches > INT32_MAX || records > INT32_MAX)
        return -EMSGSIZE;
    if (ret_batches)
        *ret_batches = (int32_t)batches;
    if (ret_records)
        *ret_records = (int32_t)records;
    return 0;
}

void batch_set_base_offset(void *data, int64_t base_offset)
{
    buf_store_be64((uint8_t *)data + BATCH_OFF_BASE_OFFSET, (uint64_t)base_offset);
}

void batch_set_partition_leader_epoch(void *data, int32_t epoch)
{
    buf_store_be32((uint8_t *)data + BATCH_OFF_LEADER_EPOCH, (uint32_t)epoch);
}

int batch_set_log_append_time(void *data, size_t len, int64_t ts)
{
    uint8_t *p = data;
    int32_t length;
    int r;

    if (len < BATCH_HEADER_SIZE)
        return -ENODATA;
    r = batch_check_extent(p, len, &length);
    if (r < 0)
        return r;
    uint16_t attrs = buf_load_be16(p + BATCH_OFF_ATTRIBUTES);
    buf_store_be16(p + BATCH_OFF_ATTRIBUTES, (uint16_t)(attrs | BATCH_ATTR_TIMESTAMP_LOG_APPEND));
    buf_store_be64(p + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)ts);
    buf_store_be32(p + BATCH_OFF_CRC, batch_crc(p, length));
    return 0;
}

/* ---- records ---------------------------------------------------------------- */

int batch_records_begin(const void *data, size_t len, struct batch_record_iter *it)
{
    const uint8_t *p = data;
    struct batch_header h;
    int32_t length;
    int r;

    r = batch_check_extent(p, len, &length);
    if (r < 0)
        return r;
    r = batch_parse_header(p, len, &h);
    if (r < 0)
        return r;
    if (batch_compression(&h) != BATCH_COMPRESSION_NONE)
        return -ENOTSUP;
    if (h.record_count < 0)
        return -EBADMSG;
    buf_reader_init(&it->r, p + BATCH_HEADER_SIZE, (size_t)length - BATCH_MIN_LENGTH);
    it->remaining = h.record_count;
    return 0;
}

/* Parse the header section of a record, only to find where it ends. */
static int skip_headers(buf_reader *r, int32_t count)
{
    for (int32_t i = 0; i < count; i++) {
        buf_slice key, value;
        if (buf_read_varint_bytes(r, false, INT32_MAX, &key) < 0 ||
            buf_read_varint_bytes(r, true, INT32_MAX, &value) < 0)
            return -EBADMSG;
    }
    return 0;
}

/* A failed iterator stays failed: remaining < 0. */
#define ITER_FAILED (-1)

static int record_parse(buf_reader *body, struct batch_record *rec)
{
    int32_t header_count;

    if (buf_read_i8(body, &rec->attributes) < 0 ||
        buf_read_varlong(body, &rec->timestamp_delta) < 0 ||
        buf_read_varint(body, &rec->offset_delta) < 0 ||
        buf_read_varint_bytes(body, true, INT32_MAX, &rec->key) < 0 ||
        buf_read_varint_bytes(body, true, INT32_MAX, &rec->value) < 0 ||
        buf_read_varint(body, &header_count) < 0)
        return -EBADMSG;
    if (header_count < 0 ||
        (size_t)header_count > buf_reader_remaining(body) / BATCH_MIN_HEADER_SIZE)
        return -EBADMSG;

    const uint8_t *headers = buf_reader_cur(body);
    size_t before = buf_reader_remaining(body);
    if (skip_headers(body, header_count) < 0)
        return -EBADMSG;
    /* the declared record length must be exactly what its fields took */
    if (buf_reader_remaining(body) != 0)
        return -EBADMSG;
    rec->header_count = header_count;
    rec->headers.ptr = headers;
    rec->headers.len = (int32_t)before; /* before <= record length <= INT32_MAX */
    return 0;
}

int batch_records_next(struct batch_record_iter *it, struct batch_record *ret)
{
    struct batch_record rec;
    int32_t length;
    const uint8_t *bytes;
    buf_reader body;

    if (it->remaining < 0)
        return -EBADMSG;
    if (it->remaining == 0) {
        if (buf_reader_remaining(&it->r) != 0) {
            it->remaining = ITER_FAILED;
            return -EBADMSG;
        }
        return 0;
    }
    if (buf_read_varint(&it->r, &length) < 0 || length < BATCH_MIN_RECORD_BODY ||
        buf_read_raw(&it->r, (size_t)length, &bytes) < 0) {
        it->remaining = ITER_FAILED;
        return -EBADMSG;
    }
    buf_reader_init(&body, bytes, (size_t)length);
    if (record_parse(&body, &rec) < 0) {
        it->remaining = ITER_FAILED;
        return -EBADMSG;
    }
    it->remaining--;
    *ret = rec;
    return 1;
}

void batch_record_headers_begin(const struct batch_record *rec, struct batch_header_iter *it)
{
    size_t len = rec->headers.len > 0 ? (size_t)rec->headers.len : 0;
    buf_reader_init(&it->r, rec->headers.ptr, len);
    it->remaining = rec->header_count;
}

int batch_record_headers_next(struct batch_header_iter *it, struct batch_record_header *ret)
{
    struct batch_record_header h;

    if (it->remaining < 0)
        return -EBADMSG;
    if (it->remaining == 0) {
        if (buf_reader_remaining(&it->r) != 0) {
            it->remaining = ITER_FAILED;
            return -EBADMSG;
        }
        return 0;
    }
    if (buf_read_varint_bytes(&it->r, false, INT32_MAX, &h.key) < 0 ||
        buf_read_varint_bytes(&it->r, true, INT32_MAX, &h.value) < 0) {
        it->remaining = ITER_FAILED;
        return -EBADMSG;
    }
    it->remaining--;
    *ret = h;
    return 1;
}

void batch_records_begin_raw(const void *records, size_t len, int32_t count,
                             struct batch_record_iter *it)
{
    buf_reader_init(&it->r, len ? records : "", len);
    it->remaining = count < 0 ? ITER_FAILED : count;
}

/* ---- compressed batches ----------------------------------------------------- */

_Static_assert((int)CODEC_GZIP == (int)BATCH_COMPRESSION_GZIP &&
                   (int)CODEC_SNAPPY == (int)BATCH_COMPRESSION_SNAPPY &&
                   (int)CODEC_LZ4 == (int)BATCH_COMPRESSION_LZ4 &&
                   (int)CODEC_ZSTD == (int)BATCH_COMPRESSION_ZSTD,
               "codec ids are the batch attribute values");

size_t batch_decompress_bound(int64_t max_message_bytes)
{
    if (max_message_bytes <= 0)
        return BATCH_DECOMPRESS_MIN;
    if (max_message_bytes > (int64_t)(BATCH_DECOMPRESS_MAX / BATCH_DECOMPRESS_FACTOR))
        return BATCH_DECOMPRESS_MAX;
    size_t b = (size_t)max_message_bytes * BATCH_DECOMPRESS_FACTOR;
    return b < BATCH_DECOMPRESS_MIN ? BATCH_DECOMPRESS_MIN : b;
}

int batch_decompress_records(const void *batch, size_t len, size_t max_out, buf_writer *out)
{
    const uint8_t *p = batch;
    struct batch_header h;
    int32_t length;
    int r;

    r = batch_check_extent(p, len, &length);
    if (r < 0)
        return r;
    r = batch_parse_header(p, len, &h);
    if (r < 0)
        return r;
    return codec_decompress((enum codec_type)batch_compression(&h), p + BATCH_HEADER_SIZE,
                            (size_t)length - BATCH_MIN_LENGTH, max_out, out);
}

/* Every record parses, there are exactly @h's count of them and their offset
 * deltas increase within 0..lastOffsetDelta (Kafka's LogValidator checks the same
 * when it decompresses). */
static int check_records(const struct batch_header *h, const uint8_t *records, size_t len)
{
    struct batch_record_iter it;
    struct batch_record rec;
    int64_t prev = -1;
    int r;

    batch_records_begin_raw(records, len, h->record_count, &it);
    while ((r = batch_records_next(&it, &rec)) == 1) {
        if (rec.offset_delta <= prev || rec.offset_delta > h->last_offset_delta)
            return -EBADMSG;
        prev = rec.offset_delta;
    }
    return r;
}

int batch_check_records(const void *batch, size_t len, size_t max_out, buf_writer *scratch)
{
    struct batch_header h;
    int r;

    r = batch_parse_header(batch, len, &h);
    if (r < 0)
        return r;
    buf_writer_reset(scratch);
    r = batch_decompress_records(batch, len, max_out, scratch);
    if (r < 0)
        return r;
    return check_records(&h, scratch->data, scratch->len);
}

int batch_recompress(const void *batch, size_t len, enum codec_type c, size_t max_out,
                     buf_writer *out)
{
    const uint8_t *p = batch;
    struct batch_header h;
    buf_writer plain;
    int r;

    if ((int)c < CODEC_NONE || c > CODEC_MAX)
        return -EINVAL;
    r = buf_writer_error(out);
    if (r < 0)
        return r;
    r = batch_parse_header(p, len, &h);
    if (r < 0)
        return r;
    buf_writer_init(&plain);
    r = batch_decompress_records(p, len, max_out, &plain);
    if (r == 0)
        r = check_records(&h, plain.data, plain.len);
    if (r < 0) {
        buf_writer_deinit(&plain);
        return r;
    }

    size_t start = out->len;
    buf_write_raw(out, p, BATCH_HEADER_SIZE);
    r = buf_writer_error(out);
    if (r == 0)
        r = codec_compress(c, CODEC_LEVEL_DEFAULT, plain.data, plain.len, out);
    buf_writer_deinit(&plain);
    if (r == 0 && out->len - start - BATCH_LOG_OVERHEAD > INT32_MAX)
        r = -EMSGSIZE;
    if (r < 0) {
        out->len = start;
        return r;
    }
    uint8_t *q = out->data + start;
    int32_t length = (int32_t)(out->len - start - BATCH_LOG_OVERHEAD);
    uint16_t attrs = (uint16_t)h.attributes;
    attrs = (uint16_t)((attrs & ~BATCH_ATTR_COMPRESSION_MASK) | (uint16_t)c);
    buf_store_be32(q + BATCH_OFF_LENGTH, (uint32_t)length);
    buf_store_be16(q + BATCH_OFF_ATTRIBUTES, attrs);
    buf_store_be32(q + BATCH_OFF_CRC, batch_crc(q, length));
    return 0;
}

/* ---- builder ---------------------------------------------------------------- */

/* Bytes of the zigzag varint encoding of @v. */
static size_t varlong_size(int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 1;
    while (z >= 0x80) {
        z >>= 7;
        n++;
    }
    return n;
}

static size_t field_size(int32_t len)
{
    return varlong_size(len) + (len > 0 ? (size_t)len : 0);
}

int batch_builder_begin(struct batch_builder *b, buf_writer *w, int64_t base_timestamp)
{
    *b = (struct batch_builder){
        .w = w,
        .start = w->len,
        .base_timestamp = base_timestamp,
        .max_timestamp = -1,
        .count = 0,
        .attributes = 0,
    };
    buf_write_i64(w, 0);  /* baseOffset: the broker assigns it */
    buf_write_i32(w, 0);  /* batchLength, patched by finish */
    buf_write_i32(w, -1); /* partitionLeaderEpoch: the broker assigns it */
    buf_write_i8(w, BATCH_MAGIC_V2);
    buf_write_u32(w, 0); /* crc, patched by finish */
    buf_write_i16(w, 0); /* attributes */
    buf_write_i32(w, 0); /* lastOffsetDelta */
    buf_write_i64(w, base_timestamp);
    buf_write_i64(w, -1); /* maxTimestamp */
    buf_write_i64(w, -1); /* producerId */
    buf_write_i16(w, -1); /* producerEpoch */
    buf_write_i32(w, -1); /* baseSequence */
    buf_write_i32(w, 0);  /* recordCount */
    return buf_writer_error(w);
}

int batch_builder_add(struct batch_builder *b, int64_t timestamp, const void *key, int32_t key_len,
                      const void *value, int32_t value_len,
                      const struct batch_record_header *headers, int32_t header_count)
{
    buf_writer *w = b->w;
    int r;

    r = buf_writer_error(w);
    if (r < 0)
        return r;
    if (key_len < -1 || value_len < -1 || header_count < 0 || (key_len > 0 && !key) ||
        (value_len > 0 && !value) || (header_count > 0 && !headers))
        return -EINVAL;
    if (b->count == INT32_MAX)
        return -EMSGSIZE;

    /* Two's-complement difference: a delta that does not fit is the caller's
     * problem, but computing it must not be undefined behaviour. */
    int64_t ts_delta = (int64_t)((uint64_t)timestamp - (uint64_t)b->base_timestamp);
    int32_t offset_delta = b->count;

    uint64_t size = 1 + varlong_size(ts_delta) + varlong_size(offset_delta) + field_size(key_len) +
                    field_size(value_len) + varlong_size(header_count);
    for (int32_t i = 0; i < header_count; i++) {
        if (headers[i].key.len < 0 || headers[i].value.len < -1 ||
            (headers[i].key.len > 0 && !headers[i].key.ptr) ||
            (headers[i].value.len > 0 && !headers[i].value.ptr))
            return -EINVAL;
        size += field_size(headers[i].key.len) + field_size(headers[i].value.len);
        if (size > INT32_MAX)
            return -EMSGSIZE;
    }
    if (size > INT32_MAX)
        return -EMSGSIZE;
    /* the whole batch must stay within batchLength's int32 */
    uint64_t batch_len =
        (uint64_t)(w->len - b->start - BATCH_LOG_OVERHEAD) + varlong_size((int64_t)size) + size;
    if (batch_len > INT32_MAX)
        return -EMSGSIZE;

    buf_write_varint(w, (int32_t)size);
    buf_write_i8(w, 0); /* record attributes: unused */
    buf_write_varlong(w, ts_delta);
    buf_write_varint(w, offset_delta);
    /* empty but non-null fields may come with a NULL pointer; never hand NULL to a
     * copy of zero bytes */
    buf_write_varint_bytes(w, key_len == 0 ? "" : key, key_len);
    buf_write_varint_bytes(w, value_len == 0 ? "" : value, value_len);
    buf_write_varint(w, header_count);
    for (int32_t i = 0; i < header_count; i++) {
        const struct batch_record_header *h = &headers[i];
        buf_write_varint_bytes(w, h->key.len == 0 ? (const void *)"" : h->key.ptr, h->key.len);
        buf_write_varint_bytes(w, h->value.len == 0 ? (const void *)"" : h->value.ptr,
                               h->value.len);
    }
    r = buf_writer_error(w);
    if (r < 0)
        return r;

    if (b->count == 0 || timestamp > b->max_timestamp)
        b->max_timestamp = timestamp;
    b->count++;
    return 0;
}

int batch_builder_finish(struct batch_builder *b)
{
    buf_writer *w = b->w;
    int r;

    r = buf_writer_error(w);
    if (r < 0)
        return r;
    if (b->count == 0)
        return -EINVAL;

    uint8_t *p = w->data + b->start;
    int32_t length = (int32_t)(w->len - b->start - BATCH_LOG_OVERHEAD);
    buf_store_be32(p + BATCH_OFF_LENGTH, (uint32_t)length);
    buf_store_be16(p + BATCH_OFF_ATTRIBUTES, (uint16_t)b->attributes);
    buf_store_be32(p + BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)(b->count - 1));
    buf_store_be64(p + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);
    buf_store_be32(p + BATCH_OFF_RECORD_COUNT, (uint32_t)b->count);
    buf_store_be32(p + BATCH_OFF_CRC, batch_crc(p, length));
    return 0;
}
