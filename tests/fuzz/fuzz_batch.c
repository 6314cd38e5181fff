/* fuzz_batch: record batch validation, iteration, LogAppendTime stamping and the
 * builder on arbitrary bytes. Besides "no crash, no sanitizer report", it checks
 * properties that must hold for every input:
 *  - errors are only the documented ones, and a batch valid under the exact count
 *    rule is valid under the relaxed one; validate_all agrees with validate on the
 *    first batch;
 *  - a valid batch fits the buffer, and iterating its records never yields more
 *    than its count;
 *  - stamping LogAppendTime on a copy of a valid batch keeps it valid and changes
 *    only the attributes' timestamp bit, the max timestamp and the CRC;
 *  - records that parse, rebuilt with the builder, give a batch that validates
 *    under the exact count rule and holds the same records. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() is a crash to libFuzzer and to the replay test alike */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static int documented_error(int r)
{
    return r == 0 || r == -ENODATA || r == -EBADMSG || r == -EILSEQ;
}

static int slices_equal(buf_slice a, buf_slice b)
{
    if (a.len != b.len)
        return 0;
    return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

/* Walk every record and header. Returns the number of records, or -1 if one did
 * not parse (validate does not look inside records, so that may happen). */
static int64_t walk_records(const uint8_t *p, size_t total, const struct batch_header *h)
{
    struct batch_record_iter it;
    struct batch_record rec;
    int64_t n = 0;
    int r;

    CHECK(batch_records_begin(p, total, &it) == 0);
    while ((r = batch_records_next(&it, &rec)) == 1) {
        n++;
        CHECK(n <= h->record_count);
        CHECK(rec.key.len >= -1 && rec.value.len >= -1 && rec.header_count >= 0);
        struct batch_header_iter hit;
        struct batch_record_header hdr;
        int32_t nh = 0;
        batch_record_headers_begin(&rec, &hit);
        while ((r = batch_record_headers_next(&hit, &hdr)) == 1) {
            CHECK(hdr.key.len >= 0 && hdr.value.len >= -1);
            nh++;
        }
        /* records_next already parsed the headers: they cannot fail now */
        CHECK(r == 0 && nh == rec.header_count);
    }
    CHECK(r == 0 || r == -EBADMSG);
    if (r < 0) {
        /* a failed iterator stays failed */
        CHECK(batch_records_next(&it, &rec) == -EBADMSG);
        return -1;
    }
    CHECK(n == h->record_count);
    return n;
}

static void check_log_append_time(const uint8_t *p, size_t total)
{
    uint8_t *copy = malloc(total);
    CHECK(copy);
    memcpy(copy, p, total);
    int64_t ts = (int64_t)buf_load_be64(p + BATCH_OFF_BASE_TIMESTAMP) ^ 0x5a5a5a5a;
    CHECK(batch_set_log_append_time(copy, total, ts) == 0);

    struct batch_header h;
    CHECK(batch_validate(copy, total, 0, &h) == 0);
    CHECK(h.max_timestamp == ts);
    CHECK(h.attributes & BATCH_ATTR_TIMESTAMP_LOG_APPEND);
    CHECK((h.attributes & ~BATCH_ATTR_TIMESTAMP_LOG_APPEND) ==
          ((int16_t)buf_load_be16(p + BATCH_OFF_ATTRIBUTES) & ~BATCH_ATTR_TIMESTAMP_LOG_APPEND));
    CHECK(memcmp(copy, p, BATCH_OFF_CRC) == 0);
    CHECK(memcmp(copy + BATCH_OFF_LAST_OFFSET_DELTA, p + BATCH_OFF_LAST_OFFSET_DELTA,
                 BATCH_OFF_MAX_TIMESTAMP - BATCH_OFF_LAST_OFFSET_DELTA) == 0);
    CHECK(memcmp(copy + BATCH_OFF_PRODUCER_ID, p + BATCH_OFF_PRODUCER_ID,
                 total - BATCH_OFF_PRODUCER_ID) == 0);

    /* the broker-owned fields are outside the CRC */
    batch_set_base_offset(copy, 0);
    batch_set_partition_leader_epoch(copy, 7);
    CHECK(batch_validate(copy, total, 0, NULL) == 0);
    free(copy);
}

static void rebuild_and_compare(const uint8_t *p, size_t total, const struct batch_header *h)
{
    struct batch_record_iter it, it2;
    struct batch_record rec, rec2;
    struct batch_builder b;
    buf_writer w;

    buf_writer_init(&w);
    CHECK(batch_builder_begin(&b, &w, h->base_timestamp) == 0);
    CHECK(batch_records_begin(p, total, &it) == 0);
    while (batch_records_next(&it, &rec) == 1) {
        /* header_count <= record bytes / 2: bounded by the input size */
        struct batch_record_header *hdrs = malloc(sizeof(*hdrs) * (size_t)(rec.header_count + 1));
        CHECK(hdrs);
        struct batch_header_iter hit;
        batch_record_headers_begin(&rec, &hit);
        for (int32_t i = 0; i < rec.header_count; i++)
            CHECK(batch_record_headers_next(&hit, &hdrs[i]) == 1);
        int64_t ts = (int64_t)((uint64_t)h->base_timestamp + (uint64_t)rec.timestamp_delta);
        CHECK(batch_builder_add(&b, ts, rec.key.ptr, rec.key.len, rec.value.ptr, rec.value.len,
                                hdrs, rec.header_count) == 0);
        free(hdrs);
    }
    CHECK(batch_builder_finish(&b) == 0);

    struct batch_header nh;
    CHECK(batch_validate(w.data, w.len, BATCH_VALIDATE_EXACT_COUNT, &nh) == 0);
    CHECK(batch_total_size(&nh) == (int64_t)w.len);
    CHECK(nh.record_count == h->record_count);
    CHECK(nh.base_timestamp == h->base_timestamp);

    CHECK(batch_records_begin(p, total, &it) == 0);
    CHECK(batch_records_begin(w.data, w.len, &it2) == 0);
    int32_t index = 0;
    int64_t max_ts = INT64_MIN;
    while (batch_records_next(&it, &rec) == 1) {
        CHECK(batch_records_next(&it2, &rec2) == 1);
        CHECK(rec2.offset_delta == index);
        CHECK(rec2.timestamp_delta == rec.timestamp_delta);
        CHECK(slices_equal(rec.key, rec2.key));
        CHECK(slices_equal(rec.value, rec2.value));
        CHECK(rec.header_count == rec2.header_count);
        struct batch_header_iter a, c;
        struct batch_record_header ha, hc;
        batch_record_headers_begin(&rec, &a);
        batch_record_headers_begin(&rec2, &c);
        while (batch_record_headers_next(&a, &ha) == 1) {
            CHECK(batch_record_headers_next(&c, &hc) == 1);
            CHECK(slices_equal(ha.key, hc.key) && slices_equal(ha.value, hc.value));
        }
        CHECK(batch_record_headers_next(&c, &hc) == 0);
        int64_t ts = (int64_t)((uint64_t)h->base_timestamp + (uint64_t)rec.timestamp_delta);
        if (ts > max_ts)
            max_ts = ts;
        index++;
    }
    CHECK(batch_records_next(&it2, &rec2) == 0);
    CHECK(nh.max_timestamp == max_ts);
    buf_writer_deinit(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct batch_header h, hx, hp;
    int32_t batches = 0, records = 0;

    int relaxed = batch_validate(data, size, 0, &h);
    int exact = batch_validate(data, size, BATCH_VALIDATE_EXACT_COUNT, &hx);
    CHECK(documented_error(relaxed) && documented_error(exact));
    CHECK(exact != 0 || relaxed == 0);

    int all = batch_validate_all(data, size, 0, &batches, &records);
    int all_exact = batch_validate_all(data, size, BATCH_VALIDATE_EXACT_COUNT, NULL, NULL);
    CHECK(documented_error(all) || all == -EMSGSIZE);
    CHECK(documented_error(all_exact) || all_exact == -EMSGSIZE);
    if (all == 0) {
        CHECK(relaxed == 0 && batches >= 1 && records >= h.record_count);
    } else if (relaxed != 0) {
        CHECK(all == relaxed || size == 0);
    }

    if (batch_parse_header(data, size, &hp) == 0)
        CHECK(hp.length == (int32_t)buf_load_be32(data + BATCH_OFF_LENGTH));
    else
        CHECK(size < BATCH_HEADER_SIZE);

    if (relaxed != 0)
        return 0;

    int64_t total = batch_total_size(&h);
    CHECK(total >= BATCH_HEADER_SIZE && (uint64_t)total <= size);
    CHECK(h.record_count >= 1 && h.magic == BATCH_MAGIC_V2);

    check_log_append_time(data, (size_t)total);

    if (batch_compression(&h) != BATCH_COMPRESSION_NONE) {
        struct batch_record_iter it;
        CHECK(batch_records_begin(data, (size_t)total, &it) == -ENOTSUP);
        return 0;
    }
    if (walk_records(data, (size_t)total, &h) >= 0)
        rebuild_and_compare(data, (size_t)total, &h);
    return 0;
}
