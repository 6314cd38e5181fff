/* fuzz_rpc_frame: the RPC frame decoders against arbitrary byte streams.
 *
 * Input: byte 0 picks the chunking (low 7 bits: chunk-size seed; 0 = all at once)
 * and the cap (high bit: a 4 KiB cap the fuzzer can reach, else the 16 MiB
 * default); the rest is the stream. Properties, checked with abort():
 *   - feeding the stream in pieces gives the same frames and the same final
 *     verdict as decoding it in one piece (the incremental decoder is exact);
 *   - only documented errors; every frame respects the cap and has a known kind;
 *   - re-encoding the frames reproduces the consumed bytes exactly;
 *   - the decoder never holds more than one frame plus one piece, whatever the
 *     declared lengths;
 *   - with the rpctest descriptors linked in, payloads of known methods and push
 *     types are unpacked, and whatever unpacks re-packs to something that
 *     unpacks again to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/rpc_frame.h"

#if defined(__has_include)
#if __has_include("rpctest.pb-c.h")
#include "rpctest.pb-c.h"
#define HAVE_RPCTEST 1
#endif
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_CAP  4096u
#define PUSH_EVENT 7 /* the push type the RPC tests use for rpctest.Event */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#ifdef HAVE_RPCTEST
/* Whatever unpacks must re-pack into bytes that unpack and re-pack identically.
 * Not for messages with unknown fields: protobuf-c 1.4 accepts an overlong tag
 * for field number 0 (80 00), keeps it as an unknown field, re-packs it as 00 and
 * then rejects that. Harmless to Weir, which never re-sends a received message. */
static void check_message(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, n, p);
    if (!m)
        return;
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *a = malloc(len ? len : 1);
    CHECK(a);
    CHECK(protobuf_c_message_pack(m, a) == len);
    if (m->n_unknown_fields > 0) {
        free(a);
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    ProtobufCMessage *m2 = protobuf_c_message_unpack(desc, NULL, len, a);
    CHECK(m2);
    size_t len2 = protobuf_c_message_get_packed_size(m2);
    CHECK(len2 == len);
    uint8_t *b = malloc(len2 ? len2 : 1);
    CHECK(b);
    CHECK(protobuf_c_message_pack(m2, b) == len2);
    CHECK(memcmp(a, b, len) == 0);
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
}
#endif

static void check_payload(const struct rpc_frame *f)
{
    if (f->kind == RPC_FRAME_ERROR) {
        uint16_t status;
        const char *text;
        size_t tlen;
        int r = rpc_frame_error_parse(f, &status, &text, &tlen);
        CHECK(r == 0 || r == -EBADMSG);
        CHECK(r < 0 ? f->payload_len < 2 : tlen == f->payload_len - 2);
        return;
    }
#ifdef HAVE_RPCTEST
    const ProtobufCServiceDescriptor *svc = &weir__rpctest__rpc_test__descriptor;
    if (f->kind == RPC_FRAME_PUSH) {
        if (f->method == PUSH_EVENT)
            check_message(&weir__rpctest__event__descriptor, f->payload, f->payload_len);
    } else if (f->method < svc->n_methods) {
        const ProtobufCMethodDescriptor *md = &svc->methods[f->method];
        check_message(f->kind == RPC_FRAME_REQUEST ? md->input : md->output, f->payload,
                      f->payload_len);
    }
#endif
}

/* Append @f re-encoded to @w, checking the frame's own invariants first. */
static void take(buf_writer *w, const struct rpc_frame *f, size_t cap)
{
    CHECK(f->kind >= RPC_FRAME_REQUEST && f->kind <= RPC_FRAME_PUSH);
    CHECK(RPC_FRAME_HEADER_BYTES + f->payload_len <= cap);
    CHECK(rpc_frame_write(w, f->kind, f->method, f->corr, f->payload, f->payload_len, cap) == 0);
}

static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    size_t cap = (mode & 0x80) ? SMALL_CAP : RPC_FRAME_DEFAULT_MAX;
    uint32_t seed = mode & 0x7F;

    /* One piece: the reference. */
    buf_writer ref;
    buf_writer_init(&ref);
    size_t off = 0;
    int ref_err;
    for (;;) {
        struct rpc_frame f;
        size_t used;
        ref_err = rpc_frame_decode(data + off, size - off, cap, &f, &used);
        if (ref_err < 0)
            break;
        CHECK(used == RPC_FRAME_FIXED_BYTES + f.payload_len && used <= size - off);
        CHECK(f.payload == data + off + RPC_FRAME_FIXED_BYTES);
        take(&ref, &f, cap);
        check_payload(&f);
        off += used;
    }
    CHECK(ref_err == -EAGAIN || ref_err == -EMSGSIZE || ref_err == -EBADMSG);
    CHECK(buf_writer_error(&ref) == 0);
    /* Canonical encoding: the frames re-encode to exactly the consumed bytes. */
    CHECK(ref.len == off);
    CHECK(off == 0 || memcmp(ref.data, data, off) == 0);

    /* Pieces: the incremental decoder must agree. */
    buf_writer inc;
    buf_writer_init(&inc);
    struct rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, cap);
    uint32_t rs = seed * 2654435761u + 1;
    size_t max_chunk = seed == 0 ? (size ? size : 1) : (size_t)seed * 4;
    int inc_err = -EAGAIN;
    for (size_t pos = 0; pos < size && inc_err == -EAGAIN;) {
        size_t n = seed == 0 ? size : 1 + next_rand(&rs) % max_chunk;
        if (n > size - pos)
            n = size - pos;
        int r = rpc_frame_decoder_feed(&d, data + pos, n);
        if (r < 0) {
            inc_err = r;
            break;
        }
        pos += n;
        /* Memory follows bytes fed, never a declared length. */
        CHECK(d.cap <= 2 * (cap + RPC_FRAME_PREFIX_BYTES + max_chunk) + 256);
        struct rpc_frame f;
        while ((r = rpc_frame_decoder_next(&d, &f)) == 0)
            take(&inc, &f, cap);
        inc_err = r;
        /* Drained: what is left is part of one frame (unless the stream broke). */
        if (r == -EAGAIN)
            CHECK(rpc_frame_decoder_pending(&d) < cap + RPC_FRAME_PREFIX_BYTES);
    }
    CHECK(inc_err == ref_err);
    CHECK(inc.len == ref.len);
    CHECK(inc.len == 0 || memcmp(inc.data, ref.data, inc.len) == 0);
    if (inc_err == -EAGAIN)
        CHECK(rpc_frame_decoder_pending(&d) == size - off);

    rpc_frame_decoder_deinit(&d);
    buf_writer_deinit(&inc);
    buf_writer_deinit(&ref);
    return 0;
}
