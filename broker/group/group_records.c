/* group_records: GroupMetadataKey/Value in Kafka's layout. */
#include "broker/group/group_records.h"

#include <errno.h>
#include <string.h>

#include "common/arena.h"

static void put_str(buf_writer *w, buf_slice s, bool nullable)
{
    if (s.len < 0 && nullable) {
        buf_write_string(w, NULL, -1);
        return;
    }
    buf_write_string(w, (const char *)s.ptr, s.len < 0 ? 0 : s.len);
}

static void put_bytes(buf_writer *w, buf_slice b)
{
    buf_write_bytes(w, b.ptr, b.len < 0 ? 0 : b.len);
}

void grec_key_encode(buf_writer *w, const char *group_id)
{
    buf_write_i16(w, GREC_KEY_GROUP_METADATA);
    buf_write_string(w, group_id, (int32_t)strlen(group_id));
}

void grec_value_encode(buf_writer *w, const struct grec_value *v)
{
    buf_write_i16(w, GREC_VALUE_VERSION);
    put_str(w, v->protocol_type, false);
    buf_write_i32(w, v->generation);
    put_str(w, v->protocol, true);
    put_str(w, v->leader, true);
    buf_write_i64(w, v->state_timestamp);
    buf_write_array_len(w, v->n_members);
    for (int32_t i = 0; i < v->n_members; i++) {
        const struct grec_member *m = &v->members[i];
        put_str(w, m->member_id, false);
        put_str(w, m->instance_id, true);
        put_str(w, m->client_id, false);
        put_str(w, m->client_host, false);
        buf_write_i32(w, m->rebalance_timeout_ms);
        buf_write_i32(w, m->session_timeout_ms);
        put_bytes(w, m->subscription);
        put_bytes(w, m->assignment);
    }
}

int grec_key_decode(buf_slice key, buf_slice *ret_group)
{
    if (!key.ptr || key.len < 2)
        return -EBADMSG;
    buf_reader r;
    buf_reader_init(&r, key.ptr, (size_t)key.len);
    int16_t ver;
    if (buf_read_i16(&r, &ver) < 0)
        return -EBADMSG;
    if (ver != GREC_KEY_GROUP_METADATA)
        return ver >= 0 && ver < GREC_KEY_GROUP_METADATA ? -ENOENT : -EBADMSG;
    buf_slice g;
    if (buf_read_string(&r, false, INT16_MAX, &g) < 0)
        return -EBADMSG;
    *ret_group = g;
    return 0;
}

int grec_value_decode(buf_slice value, struct arena *arena, struct grec_value *ret)
{
    if (!value.ptr || value.len < 2)
        return -EBADMSG;
    buf_reader r;
    buf_reader_init(&r, value.ptr, (size_t)value.len);
    struct grec_value v;
    memset(&v, 0, sizeof(v));
    int16_t ver;
    int rc = buf_read_i16(&r, &ver);
    if (rc < 0 || ver < 0 || ver > GREC_VALUE_VERSION)
        return -EBADMSG;
    rc = buf_read_string(&r, false, INT16_MAX, &v.protocol_type);
    rc = rc < 0 ? rc : buf_read_i32(&r, &v.generation);
    rc = rc < 0 ? rc : buf_read_string(&r, true, INT16_MAX, &v.protocol);
    rc = rc < 0 ? rc : buf_read_string(&r, true, INT16_MAX, &v.leader);
    v.state_timestamp = -1;
    if (rc >= 0 && ver >= 2)
        rc = buf_read_i64(&r, &v.state_timestamp);
    /* A member is at least two int16 lengths + two int32 lengths + timeouts. */
    if (rc >= 0)
        rc = buf_read_array_len(&r, false, 20, INT32_MAX, &v.n_members);
    if (rc < 0)
        return -EBADMSG;
    if (v.n_members > 0) {
        void *p;
        if (arena_alloc_array(arena, (size_t)v.n_members, sizeof(*v.members), 8, &p) != 0)
            return -ENOMEM;
        v.members = p;
    }
    for (int32_t i = 0; i < v.n_members; i++) {
        struct grec_member *m = &v.members[i];
        memset(m, 0, sizeof(*m));
        m->instance_id.len = -1;
        rc = buf_read_string(&r, false, INT16_MAX, &m->member_id);
        if (rc >= 0 && ver >= 3)
            rc = buf_read_string(&r, true, INT16_MAX, &m->instance_id);
        rc = rc < 0 ? rc : buf_read_string(&r, false, INT16_MAX, &m->client_id);
        rc = rc < 0 ? rc : buf_read_string(&r, false, INT16_MAX, &m->client_host);
        if (rc >= 0 && ver >= 1)
            rc = buf_read_i32(&r, &m->rebalance_timeout_ms);
        rc = rc < 0 ? rc : buf_read_i32(&r, &m->session_timeout_ms);
        if (rc >= 0 && ver == 0)
            m->rebalance_timeout_ms = m->session_timeout_ms;
        rc = rc < 0 ? rc : buf_read_bytes(&r, false, INT32_MAX, &m->subscription);
        rc = rc < 0 ? rc : buf_read_bytes(&r, false, INT32_MAX, &m->assignment);
        if (rc < 0)
            return -EBADMSG;
    }
    *ret = v;
    return 0;
}

bool grec_subscription_names(buf_slice metadata, const char *topic)
{
    return grec_subscription_find(metadata, topic) > 0;
}

int grec_subscription_find(buf_slice metadata, const char *topic)
{
    if (!metadata.ptr || metadata.len < 2)
        return -EBADMSG;
    buf_reader r;
    buf_reader_init(&r, metadata.ptr, (size_t)metadata.len);
    int16_t ver;
    int32_t n;
    /* Subscription: version, topics []string, user_data, ... (later versions
     * only append fields, and Kafka reads any version this way). */
    if (buf_read_i16(&r, &ver) < 0 || ver < 0 ||
        buf_read_array_len(&r, false, 2, INT32_MAX, &n) < 0)
        return -EBADMSG;
    size_t tl = strlen(topic);
    int found = 0;
    for (int32_t i = 0; i < n; i++) {
        buf_slice t;
        if (buf_read_string(&r, false, INT16_MAX, &t) < 0)
            return -EBADMSG;
        if ((size_t)t.len == tl && memcmp(t.ptr, topic, tl) == 0)
            found = 1;
    }
    return found;
}
