/* rpc_frame: the wire format of Weir's internal RPC, as a pure codec (no I/O).
 *
 * A frame on the byte stream:
 *
 *   uint32  length       bytes that follow this field (big-endian), 11 .. cap
 *   uint8   kind         REQUEST=1, RESPONSE=2, ERROR=3, PUSH=4
 *   uint16  method       REQUEST/RESPONSE/ERROR: index into the service's methods;
 *                        PUSH: an application-defined push type
 *   uint64  correlation  chosen by the caller, echoed by RESPONSE/ERROR; 0 for PUSH
 *   ...     payload      REQUEST/RESPONSE/PUSH: one protobuf message;
 *                        ERROR: uint16 status, then a UTF-8 message (not terminated)
 *
 * All integers are big-endian. The cap applies to the length field, so the largest
 * frame on the wire is cap + 4 bytes. Every declared length is checked against the
 * cap (and the header size) before anything is allocated for it.
 *
 * Errors (negative errno):
 *   -EAGAIN    not enough bytes yet for a whole frame (the stream is fine so far)
 *   -EMSGSIZE  the declared length exceeds the cap (or an encoded frame would)
 *   -EBADMSG   the declared length is shorter than the header, or the kind is
 *              unknown, or an ERROR payload is shorter than its status
 *   -ENOMEM / -ENOBUFS  from the writer
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct ProtobufCMessage;

#define RPC_FRAME_PREFIX_BYTES 4u  /* the length field */
#define RPC_FRAME_HEADER_BYTES 11u /* kind + method + correlation, counted in length */
#define RPC_FRAME_FIXED_BYTES  (RPC_FRAME_PREFIX_BYTES + RPC_FRAME_HEADER_BYTES)
#define RPC_FRAME_DEFAULT_MAX  (16u * 1024 * 1024) /* default cap on the length field */
/* The longest error text an encoder puts in an ERROR frame; longer text is cut at a
 * UTF-8 character boundary. */
#define RPC_FRAME_ERROR_TEXT_MAX 1024u

enum rpc_frame_kind {
    RPC_FRAME_REQUEST = 1,
    RPC_FRAME_RESPONSE = 2,
    RPC_FRAME_ERROR = 3,
    RPC_FRAME_PUSH = 4,
};

/* Transport status codes: carried in ERROR frames and passed to client callbacks.
 * Application errors belong inside response messages, never here. TIMEOUT,
 * DISCONNECTED and BAD_RESPONSE are produced locally by the client. */
enum rpc_status {
    RPC_OK = 0,
    RPC_UNKNOWN_METHOD = 1, /* method index not served by the peer */
    RPC_BAD_REQUEST = 2,    /* the request payload does not decode */
    RPC_TIMEOUT = 3,        /* no answer within the call's timeout */
    RPC_DISCONNECTED = 4,   /* the connection dropped while the call was in flight */
    RPC_SHUTTING_DOWN = 5,  /* the client (or server) is being freed */
    RPC_INTERNAL = 6,       /* the server could not produce a response (e.g. too large) */
    RPC_BAD_RESPONSE = 7,   /* the response payload does not decode */
};

/* Short constant name ("TIMEOUT"); "UNKNOWN" for values outside the enum. */
const char *rpc_status_name(int status);
/* "REQUEST", ...; "UNKNOWN" otherwise. */
const char *rpc_frame_kind_name(int kind);

/* One decoded frame. @payload borrows the decoder's (or caller's) bytes. */
struct rpc_frame {
    uint8_t kind;
    uint16_t method;
    uint64_t corr;
    const uint8_t *payload;
    size_t payload_len;
};

/* ---- decoding ---------------------------------------------------------------- */

/* Look at the start of a stream (@len may be anything, including less than a
 * prefix) and, once the 4-byte prefix is there, check the declared length against
 * @max_frame and the header size; once the kind byte is there, check it too. On
 * success store the size of the whole frame on the wire (prefix included) — which
 * may be more than @len. -EAGAIN if fewer than 4 bytes are given. */
int rpc_frame_peek(const uint8_t *data, size_t len, size_t max_frame, size_t *ret_frame_bytes);

/* Decode the frame at the start of @data. -EAGAIN if @len does not hold all of it
 * yet. On success @ret borrows @data and *ret_used is the frame's size on the wire. */
int rpc_frame_decode(const uint8_t *data, size_t len, size_t max_frame, struct rpc_frame *ret,
                     size_t *ret_used);

/* Split an ERROR frame's payload. @ret_text borrows the frame and is not
 * NUL-terminated. */
int rpc_frame_error_parse(const struct rpc_frame *f, uint16_t *ret_status, const char **ret_text,
                          size_t *ret_text_len);

/* An incremental decoder over a byte stream delivered in pieces of any size:
 * feed bytes, then call _next until -EAGAIN. It buffers at most one unfinished
 * frame plus the last piece fed (as long as the caller drains with _next after
 * each feed); its buffer grows only with bytes actually fed, never with a declared
 * length. After a stream error every call returns that error (sticky). */
struct rpc_frame_decoder {
    size_t max_frame;
    uint8_t *buf;
    size_t len; /* bytes held */
    size_t pos; /* start of the first unconsumed byte */
    size_t cap; /* allocated */
    int err;    /* sticky stream error, 0 if none */
};

void rpc_frame_decoder_init(struct rpc_frame_decoder *d, size_t max_frame);
void rpc_frame_decoder_deinit(struct rpc_frame_decoder *d);
/* Copies @n bytes. Fails with the sticky error once the stream is known to be bad
 * (a pending prefix already over the cap is reported here, before the bytes are
 * kept). */
int rpc_frame_decoder_feed(struct rpc_frame_decoder *d, const void *data, size_t n);
/* The next complete frame; @ret borrows the decoder until the next _feed or _next. */
int rpc_frame_decoder_next(struct rpc_frame_decoder *d, struct rpc_frame *ret);
/* Bytes held but not yet returned as frames. */
size_t rpc_frame_decoder_pending(const struct rpc_frame_decoder *d);

/* ---- encoding ---------------------------------------------------------------- */

/* The 15 fixed bytes of a frame whose payload has @payload_len bytes. The caller
 * has checked the size against its cap. */
void rpc_frame_put_header(uint8_t out[RPC_FRAME_FIXED_BYTES], uint8_t kind, uint16_t method,
                          uint64_t corr, size_t payload_len);

/* Append a frame with a raw payload. -EMSGSIZE if header + payload exceeds
 * @max_frame (nothing is written then). */
int rpc_frame_write(buf_writer *w, uint8_t kind, uint16_t method, uint64_t corr,
                    const void *payload, size_t payload_len, size_t max_frame);

/* Append a frame whose payload is @msg packed (borrows @msg). */
int rpc_frame_write_msg(buf_writer *w, uint8_t kind, uint16_t method, uint64_t corr,
                        const struct ProtobufCMessage *msg, size_t max_frame);

/* Append an ERROR frame. @text may be NULL; text longer than
 * RPC_FRAME_ERROR_TEXT_MAX is cut. */
int rpc_frame_write_error(buf_writer *w, uint16_t method, uint64_t corr, uint16_t status,
                          const char *text, size_t max_frame);

/* Length of the longest prefix of @text (at most @max bytes) that does not end in
 * the middle of a UTF-8 sequence. */
size_t rpc_frame_error_text_len(const char *text, size_t max);
