/* buf: bounds-checked byte readers and writers for the wire and disk formats.
 *
 * Readers borrow the bytes they read from; nothing here allocates on behalf of a
 * length that came from a peer. Every read checks what remains first. On error a
 * reader's position is left unchanged.
 *
 * Integers are big-endian (network order) as in the Kafka protocol. Varints are
 * Kafka's: unsigned LEB128 ("unsigned varint", used for compact lengths and tagged
 * fields) and zigzag-encoded signed LEB128 ("varint"/"varlong", used inside records).
 *
 * Errors (negative errno):
 *   -ENODATA   fewer bytes remain than the value needs (truncated input)
 *   -EBADMSG   malformed: varint too long, negative length other than the -1 null marker
 *   -EMSGSIZE  a declared length or count is larger than the caller's cap
 *   -ENOMEM    a growable writer could not grow
 *   -ENOBUFS   a fixed writer is full
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- reading ---------------------------------------------------------------- */

typedef struct buf_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
} buf_reader;

/* A borrowed, not NUL-terminated string or byte range. len == -1 means null. */
typedef struct buf_slice {
    const uint8_t *ptr;
    int32_t len;
} buf_slice;

/* A malloc'd NUL-terminated copy of @s (a null slice gives ""), or NULL when
 * out of memory. Slices are not NUL-terminated: never strdup/strndup them. */
char *buf_slice_strdup(buf_slice s);

void buf_reader_init(buf_reader *r, const void *data, size_t len);
size_t buf_reader_remaining(const buf_reader *r);
/* Pointer to the next unread byte. */
const uint8_t *buf_reader_cur(const buf_reader *r);

int buf_read_u8(buf_reader *r, uint8_t *ret);
int buf_read_i8(buf_reader *r, int8_t *ret);
int buf_read_u16(buf_reader *r, uint16_t *ret);
int buf_read_i16(buf_reader *r, int16_t *ret);
int buf_read_u32(buf_reader *r, uint32_t *ret);
int buf_read_i32(buf_reader *r, int32_t *ret);
int buf_read_u64(buf_reader *r, uint64_t *ret);
int buf_read_i64(buf_reader *r, int64_t *ret);
int buf_read_bool(buf_reader *r, bool *ret); /* one byte, nonzero = true */

/* Unsigned LEB128 limited to 32 bits (at most 5 bytes; the 5th byte may carry at
 * most 4 bits) — Kafka's UNSIGNED_VARINT. */
int buf_read_uvarint(buf_reader *r, uint32_t *ret);
/* Unsigned LEB128 limited to 64 bits (at most 10 bytes). */
int buf_read_uvarlong(buf_reader *r, uint64_t *ret);
/* Zigzag signed 32-bit (VARINT) and 64-bit (VARLONG). */
int buf_read_varint(buf_reader *r, int32_t *ret);
int buf_read_varlong(buf_reader *r, int64_t *ret);

/* Borrow the next @n bytes. */
int buf_read_raw(buf_reader *r, size_t n, const uint8_t **ret);
int buf_skip(buf_reader *r, size_t n);

/* Kafka strings and bytes. Each checks the declared length against what remains
 * and against @cap (pass SIZE_MAX-ish INT32_MAX for "no cap beyond the buffer").
 * Nullable forms accept the null marker and return len -1; the non-nullable
 * forms reject it with -EBADMSG.
 *   STRING / NULLABLE_STRING:               int16 length
 *   COMPACT_STRING / COMPACT_NULLABLE_STRING: uvarint length+1 (0 = null)
 *   BYTES / NULLABLE_BYTES:                  int32 length
 *   COMPACT_BYTES / COMPACT_NULLABLE_BYTES:  uvarint length+1 (0 = null)
 *   varint-prefixed (inside records):        zigzag varint length (-1 = null) */
int buf_read_string(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret);
int buf_read_compact_string(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret);
int buf_read_bytes(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret);
int buf_read_compact_bytes(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret);
int buf_read_varint_bytes(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret);

/* Array lengths. ARRAY: int32 count (-1 = null); COMPACT_ARRAY: uvarint count+1
 * (0 = null). A null array returns -1 when @nullable, else -EBADMSG. The count is
 * checked against @cap and against remaining / @min_elem_size (every element
 * takes at least that many bytes), so a huge count with a short body fails
 * before the caller allocates anything. */
int buf_read_array_len(buf_reader *r, bool nullable, size_t min_elem_size, int32_t cap,
                       int32_t *ret);
int buf_read_compact_array_len(buf_reader *r, bool nullable, size_t min_elem_size, int32_t cap,
                               int32_t *ret);

/* Skip a tagged-field section (uvarint count, then per field uvarint tag, uvarint
 * size, bytes). Tags must be strictly increasing (-EBADMSG otherwise). */
int buf_skip_tagged_fields(buf_reader *r);

/* ---- writing ---------------------------------------------------------------- */

/* A writer either owns a growable heap buffer or writes into caller memory of a
 * fixed size. Errors are sticky: after the first failure every later write fails
 * with the same error and buf_writer_error() reports it, so a caller may write a
 * whole message and check once. */
typedef struct buf_writer {
    uint8_t *data;
    size_t len;
    size_t cap;
    int err;    /* first error, 0 if none */
    bool fixed; /* caller memory, never grown or freed */
} buf_writer;

void buf_writer_init(buf_writer *w);                              /* growable, empty */
void buf_writer_init_fixed(buf_writer *w, void *mem, size_t cap); /* borrows @mem */
void buf_writer_deinit(buf_writer *w); /* frees a growable buffer; NULL-safe */
void buf_writer_reset(buf_writer *w);  /* len = 0, err = 0, keeps memory */
int buf_writer_error(const buf_writer *w);
/* Ensure room for @n more bytes. */
int buf_writer_reserve(buf_writer *w, size_t n);
/* Hand the heap buffer to the caller (who frees it with free()); the writer is
 * left empty. Fails for fixed writers. */
int buf_writer_steal(buf_writer *w, uint8_t **ret_data, size_t *ret_len);

int buf_write_u8(buf_writer *w, uint8_t v);
int buf_write_i8(buf_writer *w, int8_t v);
int buf_write_u16(buf_writer *w, uint16_t v);
int buf_write_i16(buf_writer *w, int16_t v);
int buf_write_u32(buf_writer *w, uint32_t v);
int buf_write_i32(buf_writer *w, int32_t v);
int buf_write_u64(buf_writer *w, uint64_t v);
int buf_write_i64(buf_writer *w, int64_t v);
int buf_write_bool(buf_writer *w, bool v);
int buf_write_uvarint(buf_writer *w, uint32_t v);
int buf_write_uvarlong(buf_writer *w, uint64_t v);
int buf_write_varint(buf_writer *w, int32_t v);
int buf_write_varlong(buf_writer *w, int64_t v);
int buf_write_raw(buf_writer *w, const void *data, size_t n);
/* @data may be NULL with @len -1 for the nullable forms. */
int buf_write_string(buf_writer *w, const char *s, int32_t len);         /* int16 len */
int buf_write_compact_string(buf_writer *w, const char *s, int32_t len); /* uvarint len+1 */
int buf_write_bytes(buf_writer *w, const void *data, int32_t len);       /* int32 len */
int buf_write_compact_bytes(buf_writer *w, const void *data, int32_t len);
int buf_write_varint_bytes(buf_writer *w, const void *data, int32_t len); /* zigzag len */
int buf_write_array_len(buf_writer *w, int32_t n);                        /* int32, -1 = null */
int buf_write_compact_array_len(buf_writer *w, int32_t n);                /* uvarint n+1, -1 -> 0 */
int buf_write_empty_tagged_fields(buf_writer *w);                         /* uvarint 0 */

/* Big-endian stores into already written bytes (length prefixes, CRCs). @off + size
 * must be within len; an out-of-range patch is a programmer error (assert). */
void buf_writer_patch_u32(buf_writer *w, size_t off, uint32_t v);
void buf_writer_patch_i32(buf_writer *w, size_t off, int32_t v);

/* ---- raw big-endian helpers for fixed layouts (no bounds checks) ------------ */

static inline uint16_t buf_load_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)((uint16_t)b[0] << 8 | b[1]);
}
static inline uint32_t buf_load_be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t buf_load_be64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)buf_load_be32(b) << 32 | buf_load_be32(b + 4);
}
static inline void buf_store_be16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}
static inline void buf_store_be32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}
static inline void buf_store_be64(void *p, uint64_t v)
{
    buf_store_be32(p, (uint32_t)(v >> 32));
    buf_store_be32((uint8_t *)p + 4, (uint32_t)v);
}
