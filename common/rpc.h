/* rpc: Weir's internal RPC transport — protobuf-c services over libevent
 * bufferevents, with the frame format of rpc_frame.h.
 *
 * One connection carries many calls at once, matched by correlation id; responses
 * come back in any order. The server may push messages to a connection at any time
 * (watches). The client reconnects by itself with capped, jittered exponential
 * backoff.
 *
 * A peer that breaks the protocol — a frame over the cap, a frame that does not
 * decode, an unknown method or frame kind — has its connection closed with one
 * warning naming the peer; other connections are not affected. Lengths from the
 * peer are checked against the cap before anything is allocated for them.
 *
 * Everything here runs on the thread of the event_base it was created with and
 * never blocks it, except rpc_server_new / rpc_client_new resolving a host name
 * (numeric addresses never block).
 *
 * Transport security: a bufferevent is only ever made by a bev factory (see
 * rpc_bev_factory_fn) from a connected socket; the connection code does not care
 * what kind of bufferevent it gets, so TLS is a different factory.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rpc_frame.h"

struct event_base;
struct bufferevent;
struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;
struct ProtobufCServiceDescriptor;

#define RPC_DEFAULT_MAX_IN_FLIGHT      1024u
#define RPC_DEFAULT_MAX_OUTPUT_BYTES   (64u * 1024 * 1024)
#define RPC_DEFAULT_CONNECT_TIMEOUT_MS 3000
#define RPC_DEFAULT_BACKOFF_INITIAL_MS 50
#define RPC_DEFAULT_BACKOFF_MAX_MS     2000
#define RPC_DEFAULT_CALL_TIMEOUT_MS    5000
#define RPC_DEFAULT_MAX_PENDING_CALLS  65536u

/* Wrap a connected, non-blocking socket in a bufferevent that owns it (closes it
 * when freed). @accepted tells which side of the handshake to play. Returns NULL on
 * failure, having closed @fd. The default (NULL factory) makes a plain socket
 * bufferevent; a TLS factory would return an OpenSSL one. */
typedef struct bufferevent *(*rpc_bev_factory_fn)(struct event_base *base, int fd, bool accepted,
                                                  void *ud);

/* ---- server ------------------------------------------------------------------ */

struct rpc_server;
struct rpc_conn; /* one accepted connection; ref-counted */
struct rpc_call; /* one request being handled */

/* Called for each request. @request (borrowed from @call) stays valid until the
 * call is completed. The handler must complete every call exactly once, now or
 * later, with rpc_call_reply or rpc_call_fail — also after its connection closed,
 * in which case completing only frees it. */
typedef void (*rpc_handler_fn)(struct rpc_call *call, const struct ProtobufCMessage *request,
                               void *ud);

struct rpc_handler {
    rpc_handler_fn fn; /* NULL: the method is answered with RPC_UNKNOWN_METHOD */
    void *ud;
};

struct rpc_server_options {
    size_t max_frame_bytes;         /* cap on a frame's length field; 0 = RPC_FRAME_DEFAULT_MAX */
    uint32_t max_in_flight;         /* calls per connection before reading pauses; 0 = default */
    int idle_timeout_ms;            /* close a connection silent this long with no call
                                       in flight; 0 = never */
    size_t max_output_bytes;        /* unsent bytes per connection: reading pauses at half,
                                       and a push or reply beyond it closes the connection
                                       (a subscriber that stopped reading); 0 = default */
    rpc_bev_factory_fn bev_factory; /* NULL = plain TCP */
    void *bev_factory_ud;
};

/* Listen on @host:@port (@port 0 picks a free port; see rpc_server_port) and serve
 * @desc with @handlers, an array of desc->n_methods entries (copied). Borrows @desc,
 * which must outlive the server. @opts may be NULL. -EINVAL for bad arguments, a
 * negative errno from bind/listen, -ENOMEM. */
int rpc_server_new(struct event_base *base, const char *host, int port,
                   const struct ProtobufCServiceDescriptor *desc,
                   const struct rpc_handler *handlers, const struct rpc_server_options *opts,
                   struct rpc_server **ret);
/* Stop listening and close every connection (their close callbacks run). Calls not
 * yet completed stay valid; completing them later only frees them. NULL-safe. May
 * be called from inside a handler or callback. */
void rpc_server_free(struct rpc_server *s);
/* The bound port. */
int rpc_server_port(const struct rpc_server *s);
/* Open connections. */
size_t rpc_server_conn_count(const struct rpc_server *s);

/* Send @resp (borrowed; must be the method's output type) and free @call. If the
 * connection has closed, the response is dropped and -ENOTCONN returned; @call is
 * freed in every case. -EMSGSIZE if the response exceeds the frame cap (the caller
 * then gets RPC_INTERNAL). */
int rpc_call_reply(struct rpc_call *call, const struct ProtobufCMessage *resp);
/* Answer with an ERROR frame and free @call. @text may be NULL. */
int rpc_call_fail(struct rpc_call *call, int status, const char *text);
/* The method index of @call within the service. */
unsigned rpc_call_method(const struct rpc_call *call);
/* The connection the call arrived on (borrowed; rpc_conn_ref to keep it). */
struct rpc_conn *rpc_call_connection(struct rpc_call *call);

/* A connection outlives its socket while references remain. */
struct rpc_conn *rpc_conn_ref(struct rpc_conn *conn);
void rpc_conn_unref(struct rpc_conn *conn); /* NULL-safe */
/* "127.0.0.1:5555" or "[::1]:5555". Valid while referenced. */
const char *rpc_conn_peer(const struct rpc_conn *conn);
bool rpc_conn_is_open(const struct rpc_conn *conn);
/* Push @msg (borrowed) as push type @type. -ENOTCONN once closed; -EMSGSIZE over
 * the frame cap; if the connection's unsent output would exceed max_output_bytes
 * the connection is closed and -ENOBUFS returned. */
int rpc_conn_push(struct rpc_conn *conn, uint16_t type, const struct ProtobufCMessage *msg);
/* Close the connection now (unsent output is dropped). Idempotent. */
void rpc_conn_close(struct rpc_conn *conn);

/* Called once when the connection closes, for whatever reason (peer, protocol
 * error, rpc_conn_close, rpc_server_free). The connection is still referenced
 * during the callback. */
typedef void (*rpc_conn_close_fn)(struct rpc_conn *conn, void *ud);
/* Register a close callback (several may be). -ENOTCONN if already closed (the
 * callback will never run), -ENOMEM. */
int rpc_conn_on_close(struct rpc_conn *conn, rpc_conn_close_fn fn, void *ud);
/* Unregister the first registration matching (@fn, @ud). -ENOENT if none. */
int rpc_conn_remove_on_close(struct rpc_conn *conn, rpc_conn_close_fn fn, void *ud);

/* ---- client ------------------------------------------------------------------ */

struct rpc_client;

/* Called exactly once per accepted call, never from inside rpc_client_call:
 * @status RPC_OK with @resp (the method's output type, borrowed for the duration
 * of the callback), or another status with @resp NULL and @errmsg (never NULL; ""
 * if there is no text). */
typedef void (*rpc_response_fn)(int status, const struct ProtobufCMessage *resp, const char *errmsg,
                                void *ud);
/* A pushed message, decoded with the descriptor registered for its type, borrowed
 * for the duration of the callback. */
typedef void (*rpc_push_fn)(uint16_t type, const struct ProtobufCMessage *msg, void *ud);
typedef void (*rpc_client_event_fn)(struct rpc_client *c, void *ud);

struct rpc_client_options {
    size_t max_frame_bytes;     /* 0 = RPC_FRAME_DEFAULT_MAX */
    int connect_timeout_ms;     /* 0 = RPC_DEFAULT_CONNECT_TIMEOUT_MS */
    int backoff_initial_ms;     /* first reconnect delay; 0 = default (50) */
    int backoff_max_ms;         /* delays double up to this; 0 = default (2000) */
    int default_timeout_ms;     /* for calls made with timeout 0; 0 = default (5000) */
    uint32_t max_pending_calls; /* queued + in flight; 0 = default */
    /* Called after each successful connect. Calls made inside it are sent before
     * the calls that were queued while disconnected (re-register first). */
    rpc_client_event_fn on_connect;
    /* Called after an established connection drops (after the in-flight calls got
     * RPC_DISCONNECTED). Not called for failed connect attempts, nor by _free. */
    rpc_client_event_fn on_disconnect;
    /* Called after a connect attempt failed, the retry already scheduled (with
     * backoff); the owner may rpc_client_retarget for that retry. May be NULL. */
    rpc_client_event_fn on_connect_failed;
    void *event_ud;
    rpc_bev_factory_fn bev_factory; /* NULL = plain TCP */
    void *bev_factory_ud;
};

/* Create a client for @desc (borrowed; must outlive the client) at @host:@port and
 * start connecting. @opts may be NULL. */
int rpc_client_new(struct event_base *base, const char *host, int port,
                   const struct ProtobufCServiceDescriptor *desc,
                   const struct rpc_client_options *opts, struct rpc_client **ret);
/* Close the connection and complete every pending call with RPC_SHUTTING_DOWN
 * (from inside this function). NULL-safe; may be called from inside any of the
 * client's callbacks. */
void rpc_client_free(struct rpc_client *c);

/* Call method @method with @req (borrowed; serialized before this returns).
 * @timeout_ms: > 0 that many ms, 0 the client's default, < 0 none. The timeout
 * covers waiting for a connection as well as the round trip. Returns 0 and @cb is
 * later called exactly once, or returns a negative errno and @cb is never called:
 * -EINVAL (bad method index or message type), -EMSGSIZE (over the frame cap),
 * -ENOBUFS (max_pending_calls reached), -ESHUTDOWN (client being freed), -ENOMEM. */
int rpc_client_call(struct rpc_client *c, unsigned method, const struct ProtobufCMessage *req,
                    int timeout_ms, rpc_response_fn cb, void *ud);
/* Decode pushes of @type with @msgdesc and hand them to @fn; replaces an earlier
 * registration for @type; @fn NULL unregisters. Pushes of unregistered types are
 * dropped (debug log). */
int rpc_client_on_push(struct rpc_client *c, uint16_t type,
                       const struct ProtobufCMessageDescriptor *msgdesc, rpc_push_fn fn, void *ud);
bool rpc_client_is_connected(const struct rpc_client *c);
/* Talk to @host:@port from now on (a coordinator quorum's leader moved). From
 * the loop, right after this returns: a connection to the old address is
 * closed (its in-flight calls complete with RPC_DISCONNECTED, on_disconnect
 * runs; queued calls wait for the new one), and the client connects to the new
 * address after @delay_ms (0: at once, backoff reset), or with the usual
 * backoff when @delay_ms < 0. -EINVAL, -ESHUTDOWN, or a resolve error (the
 * client keeps its old address then). Safe from inside the client's callbacks. */
int rpc_client_retarget(struct rpc_client *c, const char *host, int port, int delay_ms);
/* "host:port" the client connects to. */
const char *rpc_client_peer(const struct rpc_client *c);
/* Calls queued or in flight. */
size_t rpc_client_pending(const struct rpc_client *c);
