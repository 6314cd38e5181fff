/* kafka_prim: the primitives layer the generated message code is written on.
 *
 * A decoder or encoder carries the message version and whether it is flexible,
 * so each primitive picks the classic or the compact form itself (STRING vs
 * COMPACT_STRING, ARRAY vs COMPACT_ARRAY, ...) and the generated code only says
 * which field comes next. Not meant for hand-written handlers: they use the
 * generated structs through kafka_msgs.h.
 *
 * Every read goes through common/buf.h, which checks lengths and counts against
 * the bytes that remain before anything is touched. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/kafka/kafka_codec.h"
#include "common/buf.h"

struct arena;

struct kafka_dec {
    buf_reader *r;
    struct arena *arena;
    int16_t version;
    bool flexible;
};

struct kafka_enc {
    buf_writer *w;
    const struct kafka_enc_hook *hook; /* may be NULL */
    int16_t version;
    bool flexible;
};

/* ---- decoding --------------------------------------------------------------- */

int kafka_dec_i8(struct kafka_dec *d, int8_t *ret);
int kafka_dec_i16(struct kafka_dec *d, int16_t *ret);
int kafka_dec_i32(struct kafka_dec *d, int32_t *ret);
int kafka_dec_i64(struct kafka_dec *d, int64_t *ret);
int kafka_dec_u16(struct kafka_dec *d, uint16_t *ret);
int kafka_dec_u32(struct kafka_dec *d, uint32_t *ret);
int kafka_dec_bool(struct kafka_dec *d, bool *ret);
int kafka_dec_f64(struct kafka_dec *d, double *ret);
int kafka_dec_uuid(struct kafka_dec *d, struct kafka_uuid *ret);
/* STRING/NULLABLE_STRING or their compact forms, by d->flexible. */
int kafka_dec_string(struct kafka_dec *d, bool nullable, buf_slice *ret);
/* BYTES/NULLABLE_BYTES or compact; also RECORDS / COMPACT_RECORDS. */
int kafka_dec_bytes(struct kafka_dec *d, bool nullable, buf_slice *ret);
/* An array count (ARRAY or COMPACT_ARRAY); -1 for null. @min_elem is the least
 * number of bytes one element takes at this version, so the count is bounded
 * by what remains. */
int kafka_dec_array_len(struct kafka_dec *d, bool nullable, size_t min_elem, int32_t *ret);
/* Zeroed room for @n elements from the arena (NULL for n <= 0). */
int kafka_dec_alloc(struct kafka_dec *d, int32_t n, size_t elem_size, size_t align, void **ret);

/* Called per tagged field with a decoder bounded to the field's bytes. Returns
 * 0 when it decoded the field (which must then be consumed exactly), 1 for a
 * tag it does not know at this version (skipped), or a negative errno. */
typedef int (*kafka_tag_fn)(struct kafka_dec *sub, uint32_t tag, void *obj);
/* A tag buffer: uvarint count, then per field uvarint tag, uvarint size and the
 * bytes. Tags must be strictly increasing. @fn NULL skips every field. */
int kafka_dec_tagged(struct kafka_dec *d, kafka_tag_fn fn, void *obj);

/* ---- encoding --------------------------------------------------------------- */

int kafka_enc_i8(struct kafka_enc *e, int8_t v);
int kafka_enc_i16(struct kafka_enc *e, int16_t v);
int kafka_enc_i32(struct kafka_enc *e, int32_t v);
int kafka_enc_i64(struct kafka_enc *e, int64_t v);
int kafka_enc_u16(struct kafka_enc *e, uint16_t v);
int kafka_enc_u32(struct kafka_enc *e, uint32_t v);
int kafka_enc_bool(struct kafka_enc *e, bool v);
int kafka_enc_f64(struct kafka_enc *e, double v);
int kafka_enc_uuid(struct kafka_enc *e, const struct kafka_uuid *v);
int kafka_enc_uvarint(struct kafka_enc *e, uint32_t v);
/* -EINVAL for a null (len < 0) when !@nullable or a bad slice. */
int kafka_enc_string(struct kafka_enc *e, bool nullable, buf_slice s);
int kafka_enc_bytes(struct kafka_enc *e, bool nullable, buf_slice s);
/* As bytes, but ptr NULL with len > 0 goes out of band through e->hook. */
int kafka_enc_records(struct kafka_enc *e, bool nullable, const buf_slice *s);
/* Count -1 = null (-EINVAL unless @nullable); -EINVAL for n > 0 with no @elems. */
int kafka_enc_array_len(struct kafka_enc *e, bool nullable, int32_t n, const void *elems);

/* A tagged field is written to a scratch writer first, since its size prefix
 * comes before it. begin() cannot fail; end() writes tag, size and bytes to the
 * parent when @rc is 0, always frees the scratch, and returns the first error. */
struct kafka_enc_tag {
    buf_writer w;
    struct kafka_enc e;
};
void kafka_enc_tag_begin(struct kafka_enc *parent, struct kafka_enc_tag *t);
int kafka_enc_tag_end(struct kafka_enc *parent, struct kafka_enc_tag *t, uint32_t tag, int rc);

/* ---- helpers for generated code --------------------------------------------- */

/* A non-null empty slice (the schema default for strings and bytes). */
static inline buf_slice kafka_slice_empty(void)
{
    buf_slice s = {(const uint8_t *)"", 0};
    return s;
}
static inline buf_slice kafka_slice_null(void)
{
    buf_slice s = {NULL, -1};
    return s;
}
bool kafka_slice_eq(buf_slice a, buf_slice b);
bool kafka_uuid_is_zero(const struct kafka_uuid *u);
