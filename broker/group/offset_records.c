/* offset_records: OffsetCommitKey/Value in Kafka's layout. */
#include "broker/group/offset_records.h"

#include <errno.h>
#include <string.h>

void orec_key_encode(buf_writer *w, const char *group, const char *topic, int32_t partition)
{
    buf_write_i16(w, OREC_KEY_VERSION);
    buf_write_string(w, group, (int32_t)strlen(group));
    buf_write_string(w, topic, (int32_t)strlen(topic));
    buf_write_i32(w, partition);
}

void orec_value_encode(buf_writer *w, const struct orec_value *v)
{
    int32_t mlen = v->metadata.len < 0 ? 0 : v->metadata.len;
    const char *m = v->metadata.ptr ? (const char *)v->metadata.ptr : "";
    if (v->expire_timestamp >= 0) {
        buf_write_i16(w, 1);
        buf_write_i64(w, v->offset);
        buf_write_string(w, m, mlen);
        buf_write_i64(w, v->commit_timestamp);
        buf_write_i64(w, v->expire_timestamp);
        return;
    }
    buf_write_i16(w, 3);
    buf_write_i64(w, v->offset);
    buf_write_i32(w, v->leader_epoch);
    buf_write_string(w, m, mlen);
    buf_write_i64(w, v->commit_timestamp);
}

int orec_key_version(buf_slice key)
{
    if (!key.ptr || key.len < 2)
        return -EBADMSG;
    return (int16_t)((key.ptr[0] << 8) | key.ptr[1]);
}

int orec_key_decode(buf_slice key, struct orec_key *ret)
{
    int ver = orec_key_version(key);
    if (ver < 0)
        return -EBADMSG;
    if (ver > 1)
        return -ENOENT;
    buf_reader r;
    buf_reader_init(&r, key.ptr + 2, (size_t)key.len - 2);
    struct orec_key k;
    if (buf_read_string(&r, false, INT16_MAX, &k.group) < 0 ||
        buf_read_string(&r, false, INT16_MAX, &k.topic) < 0 ||
        buf_read_i32(&r, &k.partition) < 0)
        return -EBADMSG;
    *ret = k;
    return 0;
}

int orec_value_decode(buf_slice value, struct orec_value *ret)
{
    if (!value.ptr || value.len < 2)
        return -EBADMSG;
    buf_reader r;
    buf_reader_init(&r, value.ptr, (size_t)value.len);
    int16_t ver;
    struct orec_value v = {.leader_epoch = -1, .expire_timestamp = -1};
    if (buf_read_i16(&r, &ver) < 0 || ver < 0 || ver > 3)
        return -EBADMSG;
    if (buf_read_i64(&r, &v.offset) < 0)
        return -EBADMSG;
    if (ver >= 3 && buf_read_i32(&r, &v.leader_epoch) < 0)
        return -EBADMSG;
    if (buf_read_string(&r, true, INT16_MAX, &v.metadata) < 0 ||
        buf_read_i64(&r, &v.commit_timestamp) < 0)
        return -EBADMSG;
    if (ver == 1 && buf_read_i64(&r, &v.expire_timestamp) < 0)
        return -EBADMSG;
    if (v.metadata.len < 0) {
        v.metadata.ptr = (const uint8_t *)"";
        v.metadata.len = 0;
    }
    *ret = v;
    return 0;
}
