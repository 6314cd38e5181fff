/* server: the Kafka listener and its connections.
 *
 * Framing: a 4-byte big-endian size, then the request. The size is checked
 * against socket.request.max.bytes (and for being negative) before anything is
 * allocated for it; a bad size closes the connection. Requests are handed to
 * the request callback one at a time, in order; the callback (or anything
 * later, asynchronously) completes each with kreq_reply(), kreq_no_reply()
 * or kreq_close(). Responses go out strictly in request order per connection,
 * whatever order the handlers complete in. At queued.max.requests requests in
 * flight a connection stops reading until responses drain. A connection with
 * nothing in flight that stays silent for connections.max.idle.ms is closed.
 *
 * Fetch responses splice log bytes with sendfile: kreq_reply() takes a resolver
 * for out-of-band record fields (kafka_enc_hook) and adds libevent file segments
 * for them, holding a seg_file reference until libevent is done with it.
 *
 * Everything runs on the event loop thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/kafka/kafka_codec.h"
#include "common/arena.h"
#include "common/buf.h"

struct event_base;
struct kserver;
struct kconn;
struct seg_file;

/* One request. The frame and the arena live until the request completes. */
struct kreq {
    struct kconn *conn;
    struct kreq *next;
    uint8_t *frame; /* the request, size prefix excluded */
    size_t frame_len;
    struct kafka_request_header hdr;
    buf_reader body; /* positioned after the header */
    struct arena arena;
    int16_t reply_version; /* body version of the reply; defaults to hdr.api_version */
    int64_t arrival_us;    /* clock_mono_us() when its frame was complete (metrics) */
    bool done;
    bool close_after;
    struct evbuffer *out; /* the encoded response, when there is one */
};

typedef void (*kserver_request_fn)(void *ud, struct kreq *req);
/* @conn closed (peer, error, idle, kserver_free): requests of it still in
 * flight will have their responses dropped, so whoever holds them may complete
 * them now. @conn is only a tag here (compare it with kreq->conn); it stays
 * valid during the call. */
typedef void (*kserver_close_fn)(void *ud, struct kconn *conn);
/* Observers for metrics, on the loop thread; may be NULL. kserver_reply_fn:
 * @msg (the generated response struct) is about to be encoded for @req.
 * kserver_done_fn: @req left its connection's queue — its response was handed
 * to the socket (or dropped with a closed connection, or there was none) —
 * @elapsed_us after its frame arrived. Neither is called for a request of a
 * connection already closed (nobody reads that answer). */
typedef void (*kserver_reply_fn)(void *ud, const struct kreq *req, const void *msg);
typedef void (*kserver_done_fn)(void *ud, const struct kreq *req, int64_t elapsed_us);

struct kserver_options {
    const char *host; /* "" or NULL: all interfaces */
    int port;         /* 0: pick a free one */
    int64_t max_request_bytes;
    int32_t max_in_flight;
    int64_t idle_ms;
    size_t arena_cap; /* per request; 0: 64 MiB */
    kserver_request_fn on_request;
    kserver_close_fn on_close; /* may be NULL */
    kserver_reply_fn on_reply; /* may be NULL */
    kserver_done_fn on_done;   /* may be NULL */
    void *ud;
};

int kserver_new(struct event_base *base, const struct kserver_options *opts, struct kserver **ret);
/* Closes the listener and every connection. Requests still in flight stay valid
 * and are freed when completed. NULL-safe. */
void kserver_free(struct kserver *s);
int kserver_port(const struct kserver *s);
size_t kserver_conn_count(const struct kserver *s);
/* Connections accepted since kserver_new(). */
uint64_t kserver_accepted_count(const struct kserver *s);

/* The framing step of a connection, without the socket (the fuzz seam): @pfx is
 * the 4-byte size prefix at the front of the input, @avail the bytes buffered,
 * prefix included. 0 with *ret_len set when the whole request is buffered;
 * -EAGAIN when more bytes are needed; -EMSGSIZE for a negative size or one above
 * @max_request_bytes, which closes the connection. */
int kserver_frame_check(const uint8_t pfx[4], size_t avail, int64_t max_request_bytes,
                        size_t *ret_len);

/* "127.0.0.1:5555", valid while the request is. */
const char *kreq_peer(const struct kreq *req);
/* The same for a connection, valid while it is (e.g. during kserver_close_fn). */
const char *kconn_peer(const struct kconn *conn);
bool kreq_conn_open(const struct kreq *req);

/* Maps an out-of-band records field (ptr NULL, len > 0) of @msg to the file
 * range holding its bytes; the resolver hands over one seg_file reference. */
typedef int (*kreq_resolve_fn)(void *opaque, const buf_slice *field, struct seg_file **ret_file,
                               int64_t *ret_pos);

/* Encode @msg (the generated response struct of the request's API) at
 * req->reply_version with its response header and complete the request.
 * @resolve may be NULL. On an encoding failure the connection is closed.
 * Returns 0 or the encoding error. */
int kreq_reply(struct kreq *req, const void *msg, kreq_resolve_fn resolve, void *opaque);
/* Complete without a response (acks=0 produce). */
void kreq_no_reply(struct kreq *req);
/* Complete by closing the connection once every earlier response is sent. */
void kreq_close(struct kreq *req);
