/* rpc_frame: encoder and decoders for the internal RPC frame format (see
 * rpc_frame.h). Pure: no I/O, no logging. The decoders check every declared length
 * against the cap and the header size before trusting it. */
#include "common/rpc_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

const char *rpc_status_name(int status)
{
    switch (status) {
    case RPC_OK:
        return "OK";
    case RPC_UNKNOWN_METHOD:
        return "UNKNOWN_METHOD";
    case RPC_BAD_REQUEST:
        return "BAD_REQUEST";
    case RPC_TIMEOUT:
        return "TIMEOUT";
    case RPC_DISCONNECTED:
        return "DISCONNECTED";
    case RPC_SHUTTING_DOWN:
        return "SHUTTING_DOWN";
    case RPC_INTERNAL:
        return "INTERNAL";
    case RPC_BAD_RESPONSE:
        return "BAD_RESPONSE";
    default:
        return "UNKNOWN";
    }
}

const char *rpc_frame_kind_name(int kind)
{
    switch (kind) {
    case RPC_FRAME_REQUEST:
        return "REQUEST";
    case RPC_FRAME_RESPONSE:
        return "RESPONSE";
    case RPC_FRAME_ERROR:
        return "ERROR";
    case RPC_FRAME_PUSH:
        return "PUSH";
    default:
        return "UNKNOWN";
    }
}

static bool kind_valid(uint8_t kind)
{
    return kind >= RPC_FRAME_REQUEST && kind <= RPC_FRAME_PUSH;
}

/* ---- decoding ---------------------------------------------------------------- */

int rpc_frame_peek(const uint8_t *data, size_t len, size_t max_frame, size_t *ret_frame_bytes)
{
    if (len < RPC_FRAME_PREFIX_BYTES)
        return -EAGAIN;
    uint32_t declared = buf_load_be32(data);
    /* Compared as size_t so a 4 GiB prefix cannot wrap anything. */
    if ((size_t)declared > max_frame)
        return -EMSGSIZE;
    if (declared < RPC_FRAME_HEADER_BYTES)
        return -EBADMSG;
    if (len > RPC_FRAME_PREFIX_BYTES && !kind_valid(data[RPC_FRAME_PREFIX_BYTES]))
        return -EBADMSG;
    *ret_frame_bytes = RPC_FRAME_PREFIX_BYTES + (size_t)declared;
    return 0;
}

int rpc_frame_decode(const uint8_t *data, size_t len, size_t max_frame, struct rpc_frame *ret,
                     size_t *ret_used)
{
    size_t total;
    int r = rpc_frame_peek(data, len, max_frame, &total);
    if (r < 0)
        return r;
    if (len < total)
        return -EAGAIN;

    buf_reader rd;
    buf_reader_init(&rd, data + RPC_FRAME_PREFIX_BYTES, total - RPC_FRAME_PREFIX_BYTES);
    struct rpc_frame f;
    /* The peek guaranteed the 11 header bytes are within the frame. */
    if (buf_read_u8(&rd, &f.kind) < 0 || buf_read_u16(&rd, &f.method) < 0 ||
        buf_read_u64(&rd, &f.corr) < 0)
        return -EBADMSG;
    f.payload = buf_reader_cur(&rd);
    f.payload_len = buf_reader_remaining(&rd);
    *ret = f;
    *ret_used = total;
    return 0;
}

int rpc_frame_error_parse(const struct rpc_frame *f, uint16_t *ret_status, const char **ret_text,
                          size_t *ret_text_len)
{
    if (f->kind != RPC_FRAME_ERROR || f->payload_len < 2)
        return -EBADMSG;
    *ret_status = buf_load_be16(f->payload);
    *ret_text = (const char *)f->payload + 2;
    *ret_text_len = f->payload_len - 2;
    return 0;
}

void rpc_frame_decoder_init(struct rpc_frame_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame;
}

void rpc_frame_decoder_deinit(struct rpc_frame_decoder *d)
{
    if (!d)
        return;
    free(d->buf);
    memset(d, 0, sizeof(*d));
}

size_t rpc_frame_decoder_pending(const struct rpc_frame_decoder *d)
{
    return d->len - d->pos;
}

/* Check the unconsumed bytes' prefix; a bad one poisons the decoder. */
static int decoder_check(struct rpc_frame_decoder *d)
{
    size_t total;
    int r = rpc_frame_peek(d->buf + d->pos, d->len - d->pos, d->max_frame, &total);
    if (r < 0 && r != -EAGAIN)
        d->err = r;
    return d->err;
}

int rpc_frame_decoder_feed(struct rpc_frame_decoder *d, const void *data, size_t n)
{
    if (d->err)
        return d->err;
    if (d->len > 0 && decoder_check(d) < 0)
        return d->err;
    if (n == 0)
        return 0;
    /* Drop consumed bytes before growing, so the buffer holds one frame's worth. */
    if (d->pos > 0) {
        memmove(d->buf, d->buf + d->pos, d->len - d->pos);
        d->len -= d->pos;
        d->pos = 0;
    }
    if (n > SIZE_MAX - d->len)
        return -ENOMEM;
    size_t need = d->len + n;
    if (need > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *nb = realloc(d->buf, cap);
        if (!nb)
            return -ENOMEM;
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, n);
    d->len += n;
    return 0;
}

int rpc_frame_decoder_next(struct rpc_frame_decoder *d, struct rpc_frame *ret)
{
    if (d->err)
        return d->err;
    if (d->pos == d->len)
        return -EAGAIN;
    size_t used;
    int r = rpc_frame_decode(d->buf + d->pos, d->len - d->pos, d->max_frame, ret, &used);
    if (r == -EAGAIN)
        return r;
    if (r < 0) {
        d->err = r;
        return r;
    }
    d->pos += used;
    return 0;
}

/* ---- encoding ---------------------------------------------------------------- */

void rpc_frame_put_header(uint8_t out[RPC_FRAME_FIXED_BYTES], uint8_t kind, uint16_t method,
                          uint64_t corr, size_t payload_len)
{
    buf_store_be32(out, (uint32_t)(RPC_FRAME_HEADER_BYTES + payload_len));
    out[4] = kind;
    buf_store_be16(out + 5, method);
    buf_store_be64(out + 7, corr);
}

static int check_size(size_t payload_len, size_t max_frame)
{
    if (payload_len > UINT32_MAX - RPC_FRAME_HEADER_BYTES ||
        RPC_FRAME_HEADER_BYTES + payload_len > max_frame)
        return -EMSGSIZE;
    return 0;
}

int rpc_frame_write(buf_writer *w, uint8_t kind, uint16_t method, uint64_t corr,
                    const void *payload, size_t payload_len, size_t max_frame)
{
    int r = buf_writer_error(w);
    if (r < 0)
        return r;
    r = check_size(payload_len, max_frame);
    if (r < 0)
        return r;
    r = buf_writer_reserve(w, RPC_FRAME_FIXED_BYTES + payload_len);
    if (r < 0)
        return r;
    uint8_t hdr[RPC_FRAME_FIXED_BYTES];
    rpc_frame_put_header(hdr, kind, method, corr, payload_len);
    buf_write_raw(w, hdr, sizeof(hdr));
    if (payload_len > 0)
        buf_write_raw(w, payload, payload_len);
    return buf_writer_error(w);
}

int rpc_frame_write_msg(buf_writer *w, uint8_t kind, uint16_t method, uint64_t corr,
                        const struct ProtobufCMessage *msg, size_t max_frame)
{
    int r = buf_writer_error(w);
    if (r < 0)
        return r;
    size_t size = protobuf_c_message_get_packed_size(msg);
    r = check_size(size, max_frame);
    if (r < 0)
        return r;
    r = buf_writer_reserve(w, RPC_FRAME_FIXED_BYTES + size);
    if (r < 0)
        return r;
    rpc_frame_put_header(w->data + w->len, kind, method, corr, size);
    /* Pack straight into the reserved space rather than through a copy. */
    size_t packed = protobuf_c_message_pack(msg, w->data + w->len + RPC_FRAME_FIXED_BYTES);
    if (packed != size)
        return -EINVAL; /* the message changed under us: programmer error */
    w->len += RPC_FRAME_FIXED_BYTES + size;
    return 0;
}

size_t rpc_frame_error_text_len(const char *text, size_t max)
{
    if (!text)
        return 0;
    size_t n = strnlen(text, max + 1);
    if (n <= max)
        return n;
    n = max;
    /* Back off continuation bytes (10xxxxxx) and the lead byte they belong to. */
    size_t end = n;
    while (end > 0 && ((uint8_t)text[end] & 0xC0) == 0x80)
        end--;
    return end;
}

int rpc_frame_write_error(buf_writer *w, uint16_t method, uint64_t corr, uint16_t status,
                          const char *text, size_t max_frame)
{
    int r = buf_writer_error(w);
    if (r < 0)
        return r;
    size_t tlen = rpc_frame_error_text_len(text, RPC_FRAME_ERROR_TEXT_MAX);
    /* A tiny cap still gets the status; the text is what gives way. */
    if (RPC_FRAME_HEADER_BYTES + 2 > max_frame)
        return -EMSGSIZE;
    if (RPC_FRAME_HEADER_BYTES + 2 + tlen > max_frame)
        tlen = rpc_frame_error_text_len(text, max_frame - RPC_FRAME_HEADER_BYTES - 2);
    r = buf_writer_reserve(w, RPC_FRAME_FIXED_BYTES + 2 + tlen);
    if (r < 0)
        return r;
    uint8_t hdr[RPC_FRAME_FIXED_BYTES];
    rpc_frame_put_header(hdr, RPC_FRAME_ERROR, method, corr, 2 + tlen);
    buf_write_raw(w, hdr, sizeof(hdr));
    buf_write_u16(w, status);
    if (tlen > 0)
        buf_write_raw(w, text, tlen);
    return buf_writer_error(w);
}
