/* kafka_prim: version-aware Kafka primitives over common/buf.
 *
 * The decoder functions work on the caller's reader directly; the generated
 * message decoders run on a copy of the caller's reader and commit it only on
 * success, so an error anywhere leaves the caller's position untouched.
 */
#include "broker/kafka/kafka_prim.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"

/* ---- decoding --------------------------------------------------------------- */

int kafka_dec_i8(struct kafka_dec *d, int8_t *ret)
{
    return buf_read_i8(d->r, ret);
}

int kafka_dec_i16(struct kafka_dec *d, int16_t *ret)
{
    return buf_read_i16(d->r, ret);
}

int kafka_dec_i32(struct kafka_dec *d, int32_t *ret)
{
    return buf_read_i32(d->r, ret);
}

int kafka_dec_i64(struct kafka_dec *d, int64_t *ret)
{
    return buf_read_i64(d->r, ret);
}

int kafka_dec_u16(struct kafka_dec *d, uint16_t *ret)
{
    return buf_read_u16(d->r, ret);
}

int kafka_dec_u32(struct kafka_dec *d, uint32_t *ret)
{
    return buf_read_u32(d->r, ret);
}

int kafka_dec_bool(struct kafka_dec *d, bool *ret)
{
    return buf_read_bool(d->r, ret);
}

int kafka_dec_f64(struct kafka_dec *d, double *ret)
{
    uint64_t bits;
    int rc = buf_read_u64(d->r, &bits);
    if (rc < 0)
        return rc;
    memcpy(ret, &bits, sizeof(*ret));
    return 0;
}

int kafka_dec_uuid(struct kafka_dec *d, struct kafka_uuid *ret)
{
    const uint8_t *p;
    int rc = buf_read_raw(d->r, sizeof(ret->b), &p);
    if (rc < 0)
        return rc;
    memcpy(ret->b, p, sizeof(ret->b));
    return 0;
}

int kafka_dec_string(struct kafka_dec *d, bool nullable, buf_slice *ret)
{
    if (d->flexible)
        return buf_read_compact_string(d->r, nullable, INT32_MAX, ret);
    return buf_read_string(d->r, nullable, INT16_MAX, ret);
}

int kafka_dec_bytes(struct kafka_dec *d, bool nullable, buf_slice *ret)
{
    if (d->flexible)
        return buf_read_compact_bytes(d->r, nullable, INT32_MAX, ret);
    return buf_read_bytes(d->r, nullable, INT32_MAX, ret);
}

int kafka_dec_array_len(struct kafka_dec *d, bool nullable, size_t min_elem, int32_t *ret)
{
    /* Every element takes at least one byte on the wire, so even an element
     * type that could be empty cannot claim more elements than bytes remain. */
    if (min_elem == 0)
        min_elem = 1;
    if (d->flexible)
        return buf_read_compact_array_len(d->r, nullable, min_elem, INT32_MAX, ret);
    return buf_read_array_len(d->r, nullable, min_elem, INT32_MAX, ret);
}

int kafka_dec_alloc(struct kafka_dec *d, int32_t n, size_t elem_size, size_t align, void **ret)
{
    if (n <= 0) {
        *ret = NULL;
        return 0;
    }
    return arena_alloc_array(d->arena, (size_t)n, elem_size, align, ret);
}

int kafka_dec_tagged(struct kafka_dec *d, kafka_tag_fn fn, void *obj)
{
    uint32_t count;
    int rc = buf_read_uvarint(d->r, &count);
    if (rc < 0)
        return rc;
    /* A field takes at least a tag byte and a size byte. */
    if (count > buf_reader_remaining(d->r) / 2)
        return -ENODATA;
    int64_t prev = -1;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t tag, size;
        const uint8_t *p;
        if ((rc = buf_read_uvarint(d->r, &tag)) < 0)
            return rc;
        if ((int64_t)tag <= prev)
            return -EBADMSG;
        prev = tag;
        if ((rc = buf_read_uvarint(d->r, &size)) < 0)
            return rc;
        if ((rc = buf_read_raw(d->r, size, &p)) < 0)
            return rc;
        buf_reader sub_r;
        buf_reader_init(&sub_r, size ? p : (const uint8_t *)"", size);
        struct kafka_dec sub = {&sub_r, d->arena, d->version, d->flexible};
        rc = fn ? fn(&sub, tag, obj) : 1;
        /* The field's bytes were all there: running out inside them means
         * the field is malformed, not that the message was cut short. */
        if (rc == -ENODATA)
            return -EBADMSG;
        if (rc < 0)
            return rc;
        /* A known field must fill its declared size exactly: anything else
         * means the peer and we disagree about its type. */
        if (rc == 0 && buf_reader_remaining(&sub_r) != 0)
            return -EBADMSG;
    }
    return 0;
}

/* ---- encoding --------------------------------------------------------------- */

int kafka_enc_i8(struct kafka_enc *e, int8_t v)
{
    return buf_write_i8(e->w, v);
}

int kafka_enc_i16(struct kafka_enc *e, int16_t v)
{
    return buf_write_i16(e->w, v);
}

int kafka_enc_i32(struct kafka_enc *e, int32_t v)
{
    return buf_write_i32(e->w, v);
}

int kafka_enc_i64(struct kafka_enc *e, int64_t v)
{
    return buf_write_i64(e->w, v);
}

int kafka_enc_u16(struct kafka_enc *e, uint16_t v)
{
    return buf_write_u16(e->w, v);
}

int kafka_enc_u32(struct kafka_enc *e, uint32_t v)
{
    return buf_write_u32(e->w, v);
}

int kafka_enc_bool(struct kafka_enc *e, bool v)
{
    return buf_write_bool(e->w, v);
}

int kafka_enc_f64(struct kafka_enc *e, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    return buf_write_u64(e->w, bits);
}

int kafka_enc_uuid(struct kafka_enc *e, const struct kafka_uuid *v)
{
    return buf_write_raw(e->w, v->b, sizeof(v->b));
}

int kafka_enc_uvarint(struct kafka_enc *e, uint32_t v)
{
    return buf_write_uvarint(e->w, v);
}

static int check_slice(bool nullable, buf_slice s)
{
    if (s.len < -1 || (s.len == -1 && !nullable) || (s.len > 0 && !s.ptr))
        return -EINVAL;
    return 0;
}

int kafka_enc_string(struct kafka_enc *e, bool nullable, buf_slice s)
{
    int rc = check_slice(nullable, s);
    if (rc < 0)
        return rc;
    if (e->flexible)
        return buf_write_compact_string(e->w, (const char *)s.ptr, s.len);
    return buf_write_string(e->w, (const char *)s.ptr, s.len);
}

int kafka_enc_bytes(struct kafka_enc *e, bool nullable, buf_slice s)
{
    int rc = check_slice(nullable, s);
    if (rc < 0)
        return rc;
    if (e->flexible)
        return buf_write_compact_bytes(e->w, s.ptr, s.len);
    return buf_write_bytes(e->w, s.ptr, s.len);
}

int kafka_enc_records(struct kafka_enc *e, bool nullable, const buf_slice *s)
{
    if (s->ptr || s->len <= 0)
        return kafka_enc_bytes(e, nullable, *s);
    if (!e->hook || !e->hook->records)
        return -EINVAL;
    int rc =
        e->flexible ? buf_write_uvarint(e->w, (uint32_t)s->len + 1) : buf_write_i32(e->w, s->len);
    if (rc < 0)
        return rc;
    rc = e->hook->records(e->hook->opaque, e->w->len, s);
    return rc > 0 ? -EINVAL : rc;
}

int kafka_enc_array_len(struct kafka_enc *e, bool nullable, int32_t n, const void *elems)
{
    if (n < -1 || (n == -1 && !nullable) || (n > 0 && !elems))
        return -EINVAL;
    if (e->flexible)
        return buf_write_compact_array_len(e->w, n);
    return buf_write_array_len(e->w, n);
}

void kafka_enc_tag_begin(struct kafka_enc *parent, struct kafka_enc_tag *t)
{
    buf_writer_init(&t->w);
    t->e.w = &t->w;
    /* Records never sit in tagged fields: offsets into a scratch writer would
     * mean nothing to the hook. */
    t->e.hook = NULL;
    t->e.version = parent->version;
    t->e.flexible = parent->flexible;
}

int kafka_enc_tag_end(struct kafka_enc *parent, struct kafka_enc_tag *t, uint32_t tag, int rc)
{
    if (rc == 0)
        rc = buf_writer_error(&t->w);
    if (rc == 0 && t->w.len > UINT32_MAX)
        rc = -EMSGSIZE;
    if (rc == 0)
        rc = buf_write_uvarint(parent->w, tag);
    if (rc == 0)
        rc = buf_write_uvarint(parent->w, (uint32_t)t->w.len);
    if (rc == 0 && t->w.len)
        rc = buf_write_raw(parent->w, t->w.data, t->w.len);
    buf_writer_deinit(&t->w);
    return rc;
}

/* ---- helpers ---------------------------------------------------------------- */

bool kafka_slice_eq(buf_slice a, buf_slice b)
{
    if (a.len != b.len)
        return false;
    return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

bool kafka_uuid_is_zero(const struct kafka_uuid *u)
{
    static const struct kafka_uuid zero;
    return memcmp(u->b, zero.b, sizeof(zero.b)) == 0;
}
