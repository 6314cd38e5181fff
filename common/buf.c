/* buf: bounds-checked readers and writers for the Kafka wire primitives and Weir's
 * disk formats.
 *
 * Readers: every function works on a local copy of the position and commits it
 * only on success, so a failed read leaves the reader where it was. Lengths and
 * counts from the input are checked against the caller's cap and against the bytes
 * that remain before anything is touched; the -1 null marker is recognised before
 * any arithmetic is done on a length.
 *
 * Writers: a growable writer doubles its heap buffer, a fixed writer fills caller
 * memory. The first error is sticky so a message can be written whole and checked
 * once.
 */
#include "common/buf.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ---------------------------------------------------------------- */

void buf_reader_init(buf_reader *r, const void *data, size_t len)
{
    assert(data || len == 0);
    r->data = data;
    r->len = len;
    r->pos = 0;
}

size_t buf_reader_remaining(const buf_reader *r)
{
    return r->len - r->pos;
}

const uint8_t *buf_reader_cur(const buf_reader *r)
{
    return r->data + r->pos;
}

/* Borrow @n bytes at *pos, advancing *pos; the reader itself is not modified. */
static int peek_raw(const buf_reader *r, size_t *pos, size_t n, const uint8_t **ret)
{
    if (r->len - *pos < n)
        return -ENODATA;
    *ret = r->data + *pos;
    *pos += n;
    return 0;
}

int buf_read_u8(buf_reader *r, uint8_t *ret)
{
    if (buf_reader_remaining(r) < 1)
        return -ENODATA;
    *ret = r->data[r->pos++];
    return 0;
}

int buf_read_i8(buf_reader *r, int8_t *ret)
{
    uint8_t v;
    int rc = buf_read_u8(r, &v);
    if (rc < 0)
        return rc;
    *ret = (int8_t)v;
    return 0;
}

int buf_read_u16(buf_reader *r, uint16_t *ret)
{
    if (buf_reader_remaining(r) < 2)
        return -ENODATA;
    *ret = buf_load_be16(r->data + r->pos);
    r->pos += 2;
    return 0;
}

int buf_read_i16(buf_reader *r, int16_t *ret)
{
    uint16_t v;
    int rc = buf_read_u16(r, &v);
    if (rc < 0)
        return rc;
    *ret = (int16_t)v;
    return 0;
}

int buf_read_u32(buf_reader *r, uint32_t *ret)
{
    if (buf_reader_remaining(r) < 4)
        return -ENODATA;
    *ret = buf_load_be32(r->data + r->pos);
    r->pos += 4;
    return 0;
}

int buf_read_i32(buf_reader *r, int32_t *ret)
{
    uint32_t v;
    int rc = buf_read_u32(r, &v);
    if (rc < 0)
        return rc;
    *ret = (int32_t)v;
    return 0;
}

int buf_read_u64(buf_reader *r, uint64_t *ret)
{
    if (buf_reader_remaining(r) < 8)
        return -ENODATA;
    *ret = buf_load_be64(r->data + r->pos);
    r->pos += 8;
    return 0;
}

int buf_read_i64(buf_reader *r, int64_t *ret)
{
    uint64_t v;
    int rc = buf_read_u64(r, &v);
    if (rc < 0)
        return rc;
    *ret = (int64_t)v;
    return 0;
}

int buf_read_bool(buf_reader *r, bool *ret)
{
    uint8_t v;
    int rc = buf_read_u8(r, &v);
    if (rc < 0)
        return rc;
    *ret = v != 0;
    return 0;
}

/* Unsigned LEB128 of at most @maxbytes bytes whose last permitted byte may carry
 * only @lastbits bits, so the value always fits the target width and an overlong
 * or overflowing encoding is rejected rather than silently truncated. */
static int peek_leb128(const buf_reader *r, size_t *pos, unsigned maxbytes, unsigned lastbits,
                       uint64_t *ret)
{
    uint64_t v = 0;
    size_t p = *pos;
    for (unsigned i = 0; i < maxbytes; i++) {
        if (p >= r->len)
            return -ENODATA;
        uint8_t b = r->data[p++];
        if (i == maxbytes - 1 && (b >> lastbits) != 0)
            return -EBADMSG;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pos = p;
            *ret = v;
            return 0;
        }
    }
    /* unreachable: the last byte's continuation bit is above lastbits */
    return -EBADMSG;
}

static int peek_uvarint(const buf_reader *r, size_t *pos, uint32_t *ret)
{
    uint64_t v;
    int rc = peek_leb128(r, pos, 5, 4, &v);
    if (rc < 0)
        return rc;
    *ret = (uint32_t)v;
    return 0;
}

static int peek_uvarlong(const buf_reader *r, size_t *pos, uint64_t *ret)
{
    return peek_leb128(r, pos, 10, 1, ret);
}

static int32_t zigzag_dec32(uint32_t v)
{
    return (int32_t)((v >> 1) ^ (0u - (v & 1)));
}

static int64_t zigzag_dec64(uint64_t v)
{
    return (int64_t)((v >> 1) ^ (0ull - (v & 1)));
}

static uint32_t zigzag_enc32(int32_t v)
{
    /* shift in unsigned arithmetic: left-shifting a negative int is undefined */
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static uint64_t zigzag_enc64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int peek_varint(const buf_reader *r, size_t *pos, int32_t *ret)
{
    uint32_t v;
    int rc = peek_uvarint(r, pos, &v);
    if (rc < 0)
        return rc;
    *ret = zigzag_dec32(v);
    return 0;
}

int buf_read_uvarint(buf_reader *r, uint32_t *ret)
{
    size_t pos = r->pos;
    int rc = peek_uvarint(r, &pos, ret);
    if (rc == 0)
        r->pos = pos;
    return rc;
}

int buf_read_uvarlong(buf_reader *r, uint64_t *ret)
{
    size_t pos = r->pos;
    int rc = peek_uvarlong(r, &pos, ret);
    if (rc == 0)
        r->pos = pos;
    return rc;
}

int buf_read_varint(buf_reader *r, int32_t *ret)
{
    size_t pos = r->pos;
    int rc = peek_varint(r, &pos, ret);
    if (rc == 0)
        r->pos = pos;
    return rc;
}

int buf_read_varlong(buf_reader *r, int64_t *ret)
{
    size_t pos = r->pos;
    uint64_t v;
    int rc = peek_uvarlong(r, &pos, &v);
    if (rc < 0)
        return rc;
    r->pos = pos;
    *ret = zigzag_dec64(v);
    return 0;
}

int buf_read_raw(buf_reader *r, size_t n, const uint8_t **ret)
{
    size_t pos = r->pos;
    int rc = peek_raw(r, &pos, n, ret);
    if (rc == 0)
        r->pos = pos;
    return rc;
}

int buf_skip(buf_reader *r, size_t n)
{
    if (buf_reader_remaining(r) < n)
        return -ENODATA;
    r->pos += n;
    return 0;
}

/* Shared tail of every string/bytes reader. @len is the decoded length (-1 is the
 * null marker, anything below is malformed); @pos is just past the length prefix.
 * The null marker is dealt with before @len is used as a size, the cap before the
 * remaining bytes so an absurd length reads as too large rather than truncated.
 * Commits @pos only on success. */
static int finish_slice(buf_reader *r, size_t pos, int64_t len, bool nullable, int32_t cap,
                        buf_slice *ret)
{
    assert(cap >= 0);
    if (len == -1) {
        if (!nullable)
            return -EBADMSG;
        r->pos = pos;
        ret->ptr = NULL;
        ret->len = -1;
        return 0;
    }
    if (len < -1)
        return -EBADMSG;
    if (len > cap)
        return -EMSGSIZE;
    const uint8_t *p;
    int rc = peek_raw(r, &pos, (size_t)len, &p);
    if (rc < 0)
        return rc;
    r->pos = pos;
    ret->ptr = p;
    ret->len = (int32_t)len;
    return 0;
}

int buf_read_string(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret)
{
    size_t pos = r->pos;
    const uint8_t *p;
    int rc = peek_raw(r, &pos, 2, &p);
    if (rc < 0)
        return rc;
    return finish_slice(r, pos, (int16_t)buf_load_be16(p), nullable, cap, ret);
}

/* Compact lengths are stored as length+1 with 0 meaning null. */
static int read_compact_len(const buf_reader *r, size_t *pos, int64_t *ret)
{
    uint32_t v;
    int rc = peek_uvarint(r, pos, &v);
    if (rc < 0)
        return rc;
    *ret = (int64_t)v - 1;
    return 0;
}

int buf_read_compact_string(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret)
{
    size_t pos = r->pos;
    int64_t len;
    int rc = read_compact_len(r, &pos, &len);
    if (rc < 0)
        return rc;
    return finish_slice(r, pos, len, nullable, cap, ret);
}

int buf_read_bytes(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret)
{
    size_t pos = r->pos;
    const uint8_t *p;
    int rc = peek_raw(r, &pos, 4, &p);
    if (rc < 0)
        return rc;
    return finish_slice(r, pos, (int32_t)buf_load_be32(p), nullable, cap, ret);
}

int buf_read_compact_bytes(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret)
{
    return buf_read_compact_string(r, nullable, cap, ret);
}

int buf_read_varint_bytes(buf_reader *r, bool nullable, int32_t cap, buf_slice *ret)
{
    size_t pos = r->pos;
    int32_t len;
    int rc = peek_varint(r, &pos, &len);
    if (rc < 0)
        return rc;
    return finish_slice(r, pos, len, nullable, cap, ret);
}

/* Shared tail of the array-length readers: @n is the decoded count (-1 null). */
static int finish_array_len(buf_reader *r, size_t pos, int64_t n, bool nullable,
                            size_t min_elem_size, int32_t cap, int32_t *ret)
{
    assert(cap >= 0);
    if (n == -1) {
        if (!nullable)
            return -EBADMSG;
        r->pos = pos;
        *ret = -1;
        return 0;
    }
    if (n < -1)
        return -EBADMSG;
    if (n > cap)
        return -EMSGSIZE;
    /* Division, not multiplication, so a huge count cannot overflow the check. */
    if (min_elem_size > 0 && (uint64_t)n > (r->len - pos) / min_elem_size)
        return -ENODATA;
    r->pos = pos;
    *ret = (int32_t)n;
    return 0;
}

int buf_read_array_len(buf_reader *r, bool nullable, size_t min_elem_size, int32_t cap,
                       int32_t *ret)
{
    size_t pos = r->pos;
    const uint8_t *p;
    int rc = peek_raw(r, &pos, 4, &p);
    if (rc < 0)
        return rc;
    return finish_array_len(r, pos, (int32_t)buf_load_be32(p), nullable, min_elem_size, cap, ret);
}

int buf_read_compact_array_len(buf_reader *r, bool nullable, size_t min_elem_size, int32_t cap,
                               int32_t *ret)
{
    size_t pos = r->pos;
    int64_t n;
    int rc = read_compact_len(r, &pos, &n);
    if (rc < 0)
        return rc;
    return finish_array_len(r, pos, n, nullable, min_elem_size, cap, ret);
}

int buf_skip_tagged_fields(buf_reader *r)
{
    size_t pos = r->pos;
    uint32_t count;
    int rc = peek_uvarint(r, &pos, &count);
    if (rc < 0)
        return rc;
    /* Each field needs at least a one-byte tag and a one-byte size. */
    if (count > (r->len - pos) / 2)
        return -ENODATA;
    int64_t prev_tag = -1;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t tag, size;
        const uint8_t *p;
        if ((rc = peek_uvarint(r, &pos, &tag)) < 0)
            return rc;
        if ((int64_t)tag <= prev_tag)
            return -EBADMSG;
        prev_tag = tag;
        if ((rc = peek_uvarint(r, &pos, &size)) < 0)
            return rc;
        if ((rc = peek_raw(r, &pos, size, &p)) < 0)
            return rc;
    }
    r->pos = pos;
    return 0;
}

/* ---- writing ---------------------------------------------------------------- */

void buf_writer_init(buf_writer *w)
{
    memset(w, 0, sizeof(*w));
}

void buf_writer_init_fixed(buf_writer *w, void *mem, size_t cap)
{
    assert(mem || cap == 0);
    w->data = mem;
    w->len = 0;
    w->cap = cap;
    w->err = 0;
    w->fixed = true;
}

void buf_writer_deinit(buf_writer *w)
{
    if (!w)
        return;
    if (!w->fixed)
        free(w->data);
    w->data = NULL;
    w->len = 0;
    w->cap = 0;
    w->err = 0;
}

void buf_writer_reset(buf_writer *w)
{
    w->len = 0;
    w->err = 0;
}

int buf_writer_error(const buf_writer *w)
{
    return w->err;
}

static int fail(buf_writer *w, int err)
{
    if (!w->err)
        w->err = err;
    return w->err;
}

int buf_writer_reserve(buf_writer *w, size_t n)
{
    if (w->err)
        return w->err;
    if (w->cap - w->len >= n)
        return 0;
    if (w->fixed)
        return fail(w, -ENOBUFS);
    if (n > SIZE_MAX / 2 - w->len)
        return fail(w, -ENOMEM);
    size_t need = w->len + n;
    size_t ncap = w->cap ? w->cap : 64;
    while (ncap < need)
        ncap *= 2;
    uint8_t *nd = realloc(w->data, ncap);
    if (!nd)
        return fail(w, -ENOMEM);
    w->data = nd;
    w->cap = ncap;
    return 0;
}

int buf_writer_steal(buf_writer *w, uint8_t **ret_data, size_t *ret_len)
{
    if (w->fixed)
        return -EINVAL;
    if (w->err)
        return w->err;
    uint8_t *d = w->data;
    if (!d) {
        /* An empty message is still a buffer the caller can free. */
        d = malloc(1);
        if (!d)
            return -ENOMEM;
    }
    *ret_data = d;
    *ret_len = w->len;
    w->data = NULL;
    w->len = 0;
    w->cap = 0;
    return 0;
}

int buf_write_raw(buf_writer *w, const void *data, size_t n)
{
    int rc = buf_writer_reserve(w, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(w->data + w->len, data, n);
    w->len += n;
    return 0;
}

int buf_write_u8(buf_writer *w, uint8_t v)
{
    return buf_write_raw(w, &v, 1);
}

int buf_write_i8(buf_writer *w, int8_t v)
{
    return buf_write_u8(w, (uint8_t)v);
}

int buf_write_u16(buf_writer *w, uint16_t v)
{
    uint8_t b[2];
    buf_store_be16(b, v);
    return buf_write_raw(w, b, sizeof(b));
}

int buf_write_i16(buf_writer *w, int16_t v)
{
    return buf_write_u16(w, (uint16_t)v);
}

int buf_write_u32(buf_writer *w, uint32_t v)
{
    uint8_t b[4];
    buf_store_be32(b, v);
    return buf_write_raw(w, b, sizeof(b));
}

int buf_write_i32(buf_writer *w, int32_t v)
{
    return buf_write_u32(w, (uint32_t)v);
}

int buf_write_u64(buf_writer *w, uint64_t v)
{
    uint8_t b[8];
    buf_store_be64(b, v);
    return buf_write_raw(w, b, sizeof(b));
}

int buf_write_i64(buf_writer *w, int64_t v)
{
    return buf_write_u64(w, (uint64_t)v);
}

int buf_write_bool(buf_writer *w, bool v)
{
    return buf_write_u8(w, v ? 1 : 0);
}

int buf_write_uvarlong(buf_writer *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return buf_write_raw(w, b, n);
}

int buf_write_uvarint(buf_writer *w, uint32_t v)
{
    return buf_write_uvarlong(w, v);
}

int buf_write_varint(buf_writer *w, int32_t v)
{
    return buf_write_uvarlong(w, zigzag_enc32(v));
}

int buf_write_varlong(buf_writer *w, int64_t v)
{
    return buf_write_uvarlong(w, zigzag_enc64(v));
}

/* Validates a (pointer, length) pair handed to a string/bytes writer: -1 is null,
 * anything else must be a real length with data behind it. Caller bugs and
 * lengths the encoding cannot carry become sticky errors rather than garbage. */
static int check_len(buf_writer *w, const void *data, int32_t len, int32_t max)
{
    if (w->err)
        return w->err;
    if (len < -1 || (len > 0 && !data))
        return fail(w, -EINVAL);
    if (len > max)
        return fail(w, -EMSGSIZE);
    return 0;
}

int buf_write_string(buf_writer *w, const char *s, int32_t len)
{
    int rc = check_len(w, s, len, INT16_MAX);
    if (rc < 0)
        return rc;
    if ((rc = buf_write_i16(w, (int16_t)len)) < 0)
        return rc;
    return len > 0 ? buf_write_raw(w, s, (size_t)len) : 0;
}

int buf_write_compact_string(buf_writer *w, const char *s, int32_t len)
{
    int rc = check_len(w, s, len, INT32_MAX - 1);
    if (rc < 0)
        return rc;
    if ((rc = buf_write_uvarint(w, (uint32_t)(len + 1))) < 0)
        return rc;
    return len > 0 ? buf_write_raw(w, s, (size_t)len) : 0;
}

int buf_write_bytes(buf_writer *w, const void *data, int32_t len)
{
    int rc = check_len(w, data, len, INT32_MAX);
    if (rc < 0)
        return rc;
    if ((rc = buf_write_i32(w, len)) < 0)
        return rc;
    return len > 0 ? buf_write_raw(w, data, (size_t)len) : 0;
}

int buf_write_compact_bytes(buf_writer *w, const void *data, int32_t len)
{
    return buf_write_compact_string(w, data, len);
}

int buf_write_varint_bytes(buf_writer *w, const void *data, int32_t len)
{
    int rc = check_len(w, data, len, INT32_MAX);
    if (rc < 0)
        return rc;
    if ((rc = buf_write_varint(w, len)) < 0)
        return rc;
    return len > 0 ? buf_write_raw(w, data, (size_t)len) : 0;
}

int buf_write_array_len(buf_writer *w, int32_t n)
{
    if (w->err)
        return w->err;
    if (n < -1)
        return fail(w, -EINVAL);
    return buf_write_i32(w, n);
}

int buf_write_compact_array_len(buf_writer *w, int32_t n)
{
    if (w->err)
        return w->err;
    if (n < -1)
        return fail(w, -EINVAL);
    return buf_write_uvarint(w, (uint32_t)((int64_t)n + 1));
}

int buf_write_empty_tagged_fields(buf_writer *w)
{
    return buf_write_u8(w, 0);
}

void buf_writer_patch_u32(buf_writer *w, size_t off, uint32_t v)
{
    assert(off <= w->len && w->len - off >= 4);
    buf_store_be32(w->data + off, v);
}

void buf_writer_patch_i32(buf_writer *w, size_t off, int32_t v)
{
    buf_writer_patch_u32(w, off, (uint32_t)v);
}

char *buf_slice_strdup(buf_slice s)
{
    size_t n = s.ptr && s.len > 0 ? (size_t)s.len : 0;
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s.ptr, n);
    p[n] = '\0';
    return p;
}
