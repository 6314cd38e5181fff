/* fuzz_offset_records: OffsetCommitKey / OffsetCommitValue decoding
 * (broker/group/offset_records.c) on arbitrary bytes — what loading a
 * __consumer_offsets partition feeds it from disk.
 *
 * Input: byte 0 bit 0 picks key (0) or value (1); the rest is the record.
 * Properties: only the documented errors; what decodes re-encodes (keys at
 * version 1, values at version 1 or 3) and decodes again to the same fields. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/group/offset_records.h"
#include "common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool slice_eq(buf_slice a, buf_slice b)
{
    return a.len == b.len && (a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

static void fuzz_key(buf_slice in)
{
    struct orec_key k;
    int r = orec_key_decode(in, &k);
    CHECK(r == 0 || r == -EBADMSG || r == -ENOENT);
    if (r != 0)
        return;
    char *g = strndup((const char *)k.group.ptr, (size_t)k.group.len);
    char *t = strndup((const char *)k.topic.ptr, (size_t)k.topic.len);
    CHECK(g && t);
    /* embedded NULs do not survive a C string: compare only clean names */
    if (strlen(g) == (size_t)k.group.len && strlen(t) == (size_t)k.topic.len) {
        buf_writer w;
        buf_writer_init(&w);
        orec_key_encode(&w, g, t, k.partition);
        CHECK(buf_writer_error(&w) == 0);
        struct orec_key k2;
        buf_slice out = {.ptr = w.data, .len = (int32_t)w.len};
        CHECK(orec_key_decode(out, &k2) == 0);
        CHECK(slice_eq(k.group, k2.group) && slice_eq(k.topic, k2.topic));
        CHECK(k.partition == k2.partition);
        buf_writer_deinit(&w);
    }
    free(g);
    free(t);
}

static void fuzz_value(buf_slice in)
{
    struct orec_value v;
    int r = orec_value_decode(in, &v);
    CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    CHECK(v.metadata.len >= 0 && v.metadata.ptr);
    buf_writer w;
    buf_writer_init(&w);
    orec_value_encode(&w, &v);
    CHECK(buf_writer_error(&w) == 0);
    struct orec_value v2;
    buf_slice out = {.ptr = w.data, .len = (int32_t)w.len};
    CHECK(orec_value_decode(out, &v2) == 0);
    CHECK(v.offset == v2.offset && v.commit_timestamp == v2.commit_timestamp);
    CHECK(slice_eq(v.metadata, v2.metadata));
    if (v.expire_timestamp >= 0)
        CHECK(v2.expire_timestamp == v.expire_timestamp);
    else
        CHECK(v2.leader_epoch == v.leader_epoch);
    buf_writer_deinit(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    buf_slice in = {.ptr = size > 1 ? data + 1 : NULL, .len = (int32_t)(size - 1)};
    if (data[0] & 1)
        fuzz_value(in);
    else
        fuzz_key(in);
    return 0;
}
