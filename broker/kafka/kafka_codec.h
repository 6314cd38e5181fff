/* kafka_codec: the Kafka wire encoding, defined once.
 *
 * The message bodies are described by the schema files in broker/kafka/schema/
 * and turned into C by gen_kafka.py at build time (kafka_msgs.h / kafka_msgs.c,
 * generated; never edited or committed). This header holds what every message
 * shares: the request and response headers, the table of APIs the codec knows,
 * and generic decode/encode entry points that dispatch through that table.
 *
 * Decoding borrows: strings, bytes and record sets in a decoded struct are
 * buf_slices pointing into the request buffer, which must outlive the struct.
 * Arrays are allocated from the caller's arena after their count was checked
 * against the bytes that remain, so the arena's cap bounds what a request can
 * make us allocate. Unknown tagged fields are skipped.
 *
 * Errors (negative errno):
 *   -ENODATA    the input ends inside a field (truncated)
 *   -EBADMSG    malformed: a null where the version forbids it, a bad varint,
 *               tagged fields out of order or a known one of the wrong size
 *   -EMSGSIZE   a count or length over a cap, or the arena's cap reached
 *   -ENOMEM     the arena could not get memory
 *   -ENOTSUP    API key or version the codec does not implement
 *   -EINVAL     encoding: a null in a field the version does not allow to be
 *               null, an array with a count but no elements, out-of-band
 *               records without a hook
 *   -ENOBUFS    encoding into a full fixed writer */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct arena;

/* A Kafka UUID: 16 raw bytes, all zero meaning "none". */
struct kafka_uuid {
    uint8_t b[16];
};

/* Out-of-band record sets, so a Fetch response can send log bytes with
 * sendfile instead of copying them into the response buffer. When the encoder
 * meets a `records` field whose slice has ptr == NULL and len > 0, it writes
 * only the length prefix and calls @records with the writer offset at which the
 * @field->len bytes belong; the caller splices them in there when it sends the
 * message (the size prefix must count them). @field points into the caller's
 * struct, so the caller can tell which partition it is. A non-zero return
 * aborts the encoding with that error. */
struct kafka_enc_hook {
    int (*records)(void *opaque, size_t offset, const buf_slice *field);
    void *opaque;
};

/* ---- the API table ---------------------------------------------------------- */

struct kafka_dec;
struct kafka_enc;

struct kafka_api_info {
    int16_t api_key;
    const char *name;    /* "Produce", "Fetch", ... */
    int16_t min_version; /* versions the codec implements, inclusive */
    int16_t max_version;
    int16_t first_flexible; /* first flexible version; may be > max_version */
    size_t request_size;    /* sizeof the generated request / response struct */
    size_t response_size;
    /* Generated; use the kafka_request_* / kafka_response_* wrappers below. */
    void (*request_init)(void *msg);
    void (*response_init)(void *msg);
    int (*request_dec)(struct kafka_dec *d, void *msg);
    int (*response_dec)(struct kafka_dec *d, void *msg);
    int (*request_enc)(struct kafka_enc *e, const void *msg);
    int (*response_enc)(struct kafka_enc *e, const void *msg);
};

/* Every API the codec knows, ordered by api_key. */
extern const struct kafka_api_info kafka_api_table[];
extern const size_t kafka_api_table_len;

/* NULL if the codec does not know @api_key. */
const struct kafka_api_info *kafka_api_lookup(int16_t api_key);
/* True if @api implements @version. */
bool kafka_api_has_version(const struct kafka_api_info *api, int16_t version);
bool kafka_api_is_flexible(const struct kafka_api_info *api, int16_t version);

/* ---- headers ---------------------------------------------------------------- */

/* Request header v1 (non-flexible request versions) or v2 (v1 + tagged fields,
 * flexible versions). client_id is a classic int16-length nullable string in
 * both, never a compact one. */
struct kafka_request_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    buf_slice client_id;   /* borrowed; len -1 = null */
    int8_t header_version; /* 1 or 2; see kafka_request_header_decode */
};

/* Header version for a request: 2 for flexible versions, 1 otherwise; -1 if the
 * API or version is unknown to the codec. */
int kafka_request_header_version(int16_t api_key, int16_t api_version);
/* Header version for a response: 1 for flexible versions, 0 otherwise, and 0
 * for ApiVersions at every version (clients read its header before they know
 * what the broker supports); -1 if unknown. */
int kafka_response_header_version(int16_t api_key, int16_t api_version);

/* Read a request header. The v1 fields are always read; the tag buffer of a v2
 * header only when the codec knows the API at that version, since only then is
 * the header version defined. For an unknown API or version the header is still
 * returned (header_version 1, reader after client_id) so the caller can answer
 * ApiVersions with UNSUPPORTED_VERSION or close the connection; check
 * kafka_api_has_version() before decoding the body. Errors: -ENODATA,
 * -EBADMSG. *ret and @r are written only on success. */
int kafka_request_header_decode(buf_reader *r, struct kafka_request_header *ret);
/* Write a request header of the version the API/version needs (clients, tests).
 * Errors: -ENOTSUP for an unknown API/version, writer errors. */
int kafka_request_header_encode(buf_writer *w, const struct kafka_request_header *h);

/* Response header: correlation id, plus an empty tag buffer for v1. */
int kafka_response_header_encode(buf_writer *w, int16_t api_key, int16_t api_version,
                                 int32_t correlation_id);
int kafka_response_header_decode(buf_reader *r, int16_t api_key, int16_t api_version,
                                 int32_t *ret_correlation_id);

/* ---- generic bodies --------------------------------------------------------- */

/* Decode a request / response body of @api_key at @version into @ret, which
 * must point to the generated struct for that API (api->request_size bytes).
 * Trailing bytes after the body are left in @r; whether they are an error is
 * the caller's decision. @r and *ret are written only on success. Arrays come
 * from @arena. */
int kafka_request_decode(buf_reader *r, int16_t api_key, int16_t version, struct arena *arena,
                         void *ret);
int kafka_response_decode(buf_reader *r, int16_t api_key, int16_t version, struct arena *arena,
                          void *ret);
/* Encode a body; @hook may be NULL (then out-of-band records are -EINVAL).
 * On error the writer may hold a partial message. */
int kafka_request_encode(buf_writer *w, int16_t api_key, int16_t version, const void *msg);
int kafka_response_encode(buf_writer *w, int16_t api_key, int16_t version, const void *msg,
                          const struct kafka_enc_hook *hook);
/* Fill @msg with the schema's defaults (the struct a handler starts from). */
int kafka_request_init(int16_t api_key, void *msg);
int kafka_response_init(int16_t api_key, void *msg);

/* Every error code a response carries at @version — the top-level one and each
 * topic's, partition's or resource's `error_code` field, as Kafka's
 * AbstractResponse.errorCounts() counts them (NONE included) — passed to @fn in
 * message order. @msg is the generated response struct of @api_key. -ENOTSUP
 * for an API or version the codec does not know. Generated (gen_kafka.py). */
typedef void (*kafka_error_fn)(void *opaque, int16_t error_code);
int kafka_response_errors(int16_t api_key, int16_t version, const void *msg, kafka_error_fn fn,
                          void *opaque);
