/* rpc: client and server of the internal RPC over libevent bufferevents.
 *
 * Owns connection lifetimes, call bookkeeping (correlation ids, timeouts,
 * in-flight limits), reconnects with backoff and server pushes. The frame format
 * itself lives in rpc_frame.c; this file only moves frames between evbuffers and
 * protobuf-c messages.
 *
 * Re-entrancy is the recurring concern: user callbacks run from inside libevent
 * callbacks and may free the server or client, close the connection, or start
 * new calls. The server holds a reference on a connection while it dispatches, and
 * checks the connection's state after every callback; the client counts the
 * callbacks it is inside of and defers its own destruction until they return. */
#include "common/rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <protobuf-c/protobuf-c.h>

#include "common/clock.h"
#include "common/log.h"

#define PEER_MAX         64
#define DRAIN_TIMEOUT_MS 1000 /* how long a closing connection may take to flush */
#define ACCEPT_RETRY_MS  100  /* pause after accept() fails (e.g. EMFILE) */
#define LISTEN_BACKLOG   128
#define REASON_MAX       192

/* ---- shared helpers ---------------------------------------------------------- */

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static struct bufferevent *plain_bev(struct event_base *base, int fd, bool accepted, void *ud)
{
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        close(fd);
    return bev;
}

/* Small frames must not wait for Nagle: calls and heartbeats are latency-bound. */
static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        snprintf(out, n, "unknown");
    }
}

static int resolve(const char *host, int port, bool passive, struct sockaddr_storage *ret,
                   socklen_t *ret_len)
{
    if (port < 0 || port > 65535)
        return -EINVAL;
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (passive)
        hints.ai_flags |= AI_PASSIVE;
    struct addrinfo *res = NULL;
    int r = getaddrinfo(host, service, &hints, &res);
    if (r != 0 || !res)
        return r == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
    if (res->ai_addrlen > sizeof(*ret)) {
        freeaddrinfo(res);
        return -EAFNOSUPPORT;
    }
    memcpy(ret, res->ai_addr, res->ai_addrlen);
    *ret_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Append a frame carrying @msg to @out, packing straight into the evbuffer. */
static int put_msg_frame(struct evbuffer *out, uint8_t kind, uint16_t method, uint64_t corr,
                         const ProtobufCMessage *msg, size_t max_frame)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size > max_frame || RPC_FRAME_HEADER_BYTES + size > max_frame)
        return -EMSGSIZE;
    struct evbuffer_iovec iov;
    if (evbuffer_reserve_space(out, (ev_ssize_t)(RPC_FRAME_FIXED_BYTES + size), &iov, 1) != 1)
        return -ENOMEM;
    buf_writer w;
    buf_writer_init_fixed(&w, iov.iov_base, iov.iov_len);
    int r = rpc_frame_write_msg(&w, kind, method, corr, msg, max_frame);
    if (r < 0)
        return r;
    iov.iov_len = w.len;
    return evbuffer_commit_space(out, &iov, 1) == 0 ? 0 : -ENOMEM;
}

static int put_error_frame(struct evbuffer *out, uint16_t method, uint64_t corr, int status,
                           const char *text, size_t max_frame)
{
    uint8_t mem[RPC_FRAME_FIXED_BYTES + 2 + RPC_FRAME_ERROR_TEXT_MAX];
    buf_writer w;
    buf_writer_init_fixed(&w, mem, sizeof(mem));
    int r = rpc_frame_write_error(&w, method, corr, (uint16_t)status, text, max_frame);
    if (r < 0)
        return r;
    return evbuffer_add(out, w.data, w.len) == 0 ? 0 : -ENOMEM;
}

/* Take the next complete frame from @in. Only the header is copied out until the
 * whole frame has arrived, and the declared length is checked before anything is
 * made contiguous. On success @ret borrows @in until *ret_total bytes are drained. */
static int take_frame(struct evbuffer *in, size_t max_frame, struct rpc_frame *ret,
                      size_t *ret_total)
{
    uint8_t hdr[RPC_FRAME_FIXED_BYTES];
    size_t avail = evbuffer_get_length(in);
    size_t want = avail < sizeof(hdr) ? avail : sizeof(hdr);
    if (evbuffer_copyout(in, hdr, want) != (ev_ssize_t)want)
        return -EIO;
    size_t total;
    int r = rpc_frame_peek(hdr, want, max_frame, &total);
    if (r < 0)
        return r;
    if (avail < total)
        return -EAGAIN;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)total);
    if (!p)
        return -ENOMEM;
    return rpc_frame_decode(p, total, max_frame, ret, ret_total);
}

/* Words for the log line when take_frame fails. */
static void describe_stream_error(int err, struct evbuffer *in, size_t max_frame, char *out,
                                  size_t n)
{
    uint8_t hdr[RPC_FRAME_PREFIX_BYTES + 1] = {0};
    size_t avail = evbuffer_get_length(in);
    evbuffer_copyout(in, hdr, avail < sizeof(hdr) ? avail : sizeof(hdr));
    uint32_t declared = buf_load_be32(hdr);
    if (err == -EMSGSIZE)
        snprintf(out, n, "frame of %u bytes exceeds cap %zu", declared, max_frame);
    else if (err == -EBADMSG && declared < RPC_FRAME_HEADER_BYTES)
        snprintf(out, n, "frame of %u bytes is shorter than the %u-byte header", declared,
                 RPC_FRAME_HEADER_BYTES);
    else if (err == -EBADMSG)
        snprintf(out, n, "unknown frame kind %u", hdr[RPC_FRAME_PREFIX_BYTES]);
    else
        snprintf(out, n, "cannot read frame: %s", strerror(-err));
}

/* ---- server ------------------------------------------------------------------ */

enum conn_state {
    CONN_OPEN,
    CONN_DRAINING, /* closed for the application, flushing a final ERROR frame */
    CONN_CLOSED,
};

struct close_hook {
    rpc_conn_close_fn fn;
    void *ud;
    struct close_hook *next;
};

struct rpc_conn {
    int refs;
    enum conn_state state;
    struct rpc_server *server; /* NULL once the socket is released */
    struct bufferevent *bev;   /* NULL once released */
    struct rpc_conn *prev, *next;
    size_t max_frame;
    size_t max_output;
    uint32_t max_in_flight;
    uint32_t in_flight;
    bool read_paused;
    struct close_hook *hooks;
    char peer[PEER_MAX];
};

struct rpc_call {
    struct rpc_conn *conn; /* referenced */
    uint64_t corr;
    uint16_t method;
    const ProtobufCMessageDescriptor *output;
    ProtobufCMessage *request;
};

struct rpc_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *accept_retry;
    const ProtobufCServiceDescriptor *desc;
    struct rpc_handler *handlers;
    struct rpc_server_options opts;
    int port;
    struct rpc_conn *conns;
    size_t n_conns;
};

static void conn_process(struct rpc_conn *conn);

struct rpc_conn *rpc_conn_ref(struct rpc_conn *conn)
{
    conn->refs++;
    return conn;
}

void rpc_conn_unref(struct rpc_conn *conn)
{
    if (!conn)
        return;
    if (--conn->refs > 0)
        return;
    struct close_hook *h = conn->hooks;
    while (h) {
        struct close_hook *next = h->next;
        free(h);
        h = next;
    }
    free(conn);
}

const char *rpc_conn_peer(const struct rpc_conn *conn)
{
    return conn->peer;
}

bool rpc_conn_is_open(const struct rpc_conn *conn)
{
    return conn->state == CONN_OPEN;
}

/* Free the socket and leave the server's list; drops the server's reference. */
static void conn_release(struct rpc_conn *conn)
{
    if (!conn->bev)
        return;
    bufferevent_free(conn->bev);
    conn->bev = NULL;
    conn->state = CONN_CLOSED;
    struct rpc_server *s = conn->server;
    if (s) {
        if (conn->prev)
            conn->prev->next = conn->next;
        else
            s->conns = conn->next;
        if (conn->next)
            conn->next->prev = conn->prev;
        s->n_conns--;
    }
    conn->server = NULL;
    conn->prev = conn->next = NULL;
    rpc_conn_unref(conn);
}

/* End the connection for the application: run the close hooks once, then either
 * release the socket or, with @flush, let queued output (a final ERROR frame)
 * drain first, bounded by DRAIN_TIMEOUT_MS. */
static void conn_shutdown(struct rpc_conn *conn, bool flush)
{
    if (conn->state != CONN_OPEN) {
        if (!flush)
            conn_release(conn);
        return;
    }
    conn->state = CONN_DRAINING;
    rpc_conn_ref(conn);
    /* Hooks may unregister themselves or others; take them off the list one by one. */
    while (conn->hooks) {
        struct close_hook *h = conn->hooks;
        conn->hooks = h->next;
        rpc_conn_close_fn fn = h->fn;
        void *ud = h->ud;
        free(h);
        fn(conn, ud);
    }
    if (conn->bev) {
        if (flush && evbuffer_get_length(bufferevent_get_output(conn->bev)) > 0) {
            struct timeval tv = ms_to_tv(DRAIN_TIMEOUT_MS);
            bufferevent_disable(conn->bev, EV_READ);
            bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
            bufferevent_set_timeouts(conn->bev, NULL, &tv);
        } else {
            conn_release(conn);
        }
    }
    rpc_conn_unref(conn);
}

/* The peer broke the protocol (or outran a cap): one warning naming it, then
 * close. With @flush, answers already queued (to the peer's earlier, valid
 * requests, or a final ERROR frame) are still sent. */
__attribute__((format(printf, 3, 4))) static void conn_fail(struct rpc_conn *conn, bool flush,
                                                            const char *fmt, ...)
{
    char why[REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_warn("rpc", "closing connection from %s: %s", conn->peer, why);
    conn_shutdown(conn, flush);
}

void rpc_conn_close(struct rpc_conn *conn)
{
    if (conn)
        conn_shutdown(conn, false);
}

int rpc_conn_on_close(struct rpc_conn *conn, rpc_conn_close_fn fn, void *ud)
{
    if (conn->state != CONN_OPEN)
        return -ENOTCONN;
    struct close_hook *h = malloc(sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->fn = fn;
    h->ud = ud;
    h->next = conn->hooks;
    conn->hooks = h;
    return 0;
}

int rpc_conn_remove_on_close(struct rpc_conn *conn, rpc_conn_close_fn fn, void *ud)
{
    for (struct close_hook **p = &conn->hooks; *p; p = &(*p)->next) {
        if ((*p)->fn == fn && (*p)->ud == ud) {
            struct close_hook *h = *p;
            *p = h->next;
            free(h);
            return 0;
        }
    }
    return -ENOENT;
}

/* Pause reading while too many calls are in flight or too much output is queued,
 * so a fast sender cannot make us buffer without bound; resume when both drop. */
static void conn_update_reading(struct rpc_conn *conn)
{
    if (conn->state != CONN_OPEN || !conn->bev)
        return;
    size_t out = evbuffer_get_length(bufferevent_get_output(conn->bev));
    bool want = conn->in_flight < conn->max_in_flight && out < conn->max_output / 2;
    if (want && conn->read_paused) {
        conn->read_paused = false;
        bufferevent_enable(conn->bev, EV_READ);
        /* Frames may already be buffered; no new bytes will announce them. Deferred,
         * because we may be inside a handler called from conn_process. */
        if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
            bufferevent_trigger(conn->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    } else if (!want && !conn->read_paused) {
        conn->read_paused = true;
        bufferevent_disable(conn->bev, EV_READ);
    }
}

/* Queue a message frame, enforcing the per-connection output cap. */
static int conn_send_msg(struct rpc_conn *conn, uint8_t kind, uint16_t method, uint64_t corr,
                         const ProtobufCMessage *msg)
{
    if (conn->state != CONN_OPEN || !conn->bev)
        return -ENOTCONN;
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    size_t size = protobuf_c_message_get_packed_size(msg);
    /* Too big to ever send is the sender's problem, not the connection's. */
    if (size > conn->max_frame || RPC_FRAME_HEADER_BYTES + size > conn->max_frame)
        return -EMSGSIZE;
    size_t pending = evbuffer_get_length(out);
    if (pending + RPC_FRAME_FIXED_BYTES + size > conn->max_output) {
        conn_fail(conn, false, "%zu bytes of unsent output would exceed cap %zu",
                  pending + RPC_FRAME_FIXED_BYTES + size, conn->max_output);
        return -ENOBUFS;
    }
    int r = put_msg_frame(out, kind, method, corr, msg, conn->max_frame);
    if (r == 0)
        conn_update_reading(conn);
    return r;
}

static void call_finish(struct rpc_call *call)
{
    struct rpc_conn *conn = call->conn;
    if (call->request)
        protobuf_c_message_free_unpacked(call->request, NULL);
    conn->in_flight--;
    conn_update_reading(conn);
    rpc_conn_unref(conn);
    free(call);
}

int rpc_call_fail(struct rpc_call *call, int status, const char *text)
{
    struct rpc_conn *conn = call->conn;
    int r = -ENOTCONN;
    if (conn->state == CONN_OPEN && conn->bev)
        r = put_error_frame(bufferevent_get_output(conn->bev), call->method, call->corr, status,
                            text, conn->max_frame);
    call_finish(call);
    return r;
}

int rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *resp)
{
    if (!resp || resp->descriptor != call->output) {
        rpc_call_fail(call, RPC_INTERNAL, "server replied with the wrong message type");
        return -EINVAL;
    }
    int r = conn_send_msg(call->conn, RPC_FRAME_RESPONSE, call->method, call->corr, resp);
    if (r == -EMSGSIZE) {
        char text[96];
        snprintf(text, sizeof(text), "response of %zu bytes exceeds the frame cap",
                 protobuf_c_message_get_packed_size(resp));
        rpc_call_fail(call, RPC_INTERNAL, text);
        return r;
    }
    call_finish(call);
    return r;
}

unsigned rpc_call_method(const struct rpc_call *call)
{
    return call->method;
}

struct rpc_conn *rpc_call_connection(struct rpc_call *call)
{
    return call->conn;
}

int rpc_conn_push(struct rpc_conn *conn, uint16_t type, const ProtobufCMessage *msg)
{
    return conn_send_msg(conn, RPC_FRAME_PUSH, type, 0, msg);
}

/* One REQUEST frame: unpack, then hand to the handler. The frame's bytes are
 * drained before the handler runs, since it may close the connection. */
static void conn_dispatch(struct rpc_conn *conn, struct evbuffer *in, const struct rpc_frame *f,
                          size_t total)
{
    struct rpc_server *s = conn->server;
    const ProtobufCServiceDescriptor *desc = s->desc;
    struct evbuffer *out = bufferevent_get_output(conn->bev);

    if (f->method >= desc->n_methods) {
        evbuffer_drain(in, total);
        char text[96];
        snprintf(text, sizeof(text), "unknown method %u", f->method);
        put_error_frame(out, f->method, f->corr, RPC_UNKNOWN_METHOD, text, conn->max_frame);
        conn_fail(conn, true, "unknown method %u (service %s has %u)", f->method, desc->name,
                  desc->n_methods);
        return;
    }
    const ProtobufCMethodDescriptor *md = &desc->methods[f->method];
    size_t plen = f->payload_len;
    ProtobufCMessage *req = protobuf_c_message_unpack(md->input, NULL, plen, f->payload);
    evbuffer_drain(in, total);
    if (!req) {
        put_error_frame(out, f->method, f->corr, RPC_BAD_REQUEST, "request does not decode",
                        conn->max_frame);
        conn_fail(conn, true, "request for %s.%s does not decode (%zu bytes)", desc->name, md->name,
                  plen);
        return;
    }
    const struct rpc_handler *h = &s->handlers[f->method];
    if (!h->fn) {
        protobuf_c_message_free_unpacked(req, NULL);
        put_error_frame(out, f->method, f->corr, RPC_UNKNOWN_METHOD, "method not implemented",
                        conn->max_frame);
        return;
    }
    struct rpc_call *call = calloc(1, sizeof(*call));
    if (!call) {
        protobuf_c_message_free_unpacked(req, NULL);
        put_error_frame(out, f->method, f->corr, RPC_INTERNAL, "out of memory", conn->max_frame);
        return;
    }
    call->conn = rpc_conn_ref(conn);
    call->corr = f->corr;
    call->method = f->method;
    call->output = md->output;
    call->request = req;
    conn->in_flight++;
    conn_update_reading(conn);
    h->fn(call, req, h->ud);
}

static void conn_process(struct rpc_conn *conn)
{
    rpc_conn_ref(conn);
    while (conn->state == CONN_OPEN && !conn->read_paused) {
        struct evbuffer *in = bufferevent_get_input(conn->bev);
        struct rpc_frame f;
        size_t total;
        int r = take_frame(in, conn->max_frame, &f, &total);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            char why[REASON_MAX];
            describe_stream_error(r, in, conn->max_frame, why, sizeof(why));
            conn_fail(conn, true, "%s", why);
            break;
        }
        if (f.kind != RPC_FRAME_REQUEST) {
            conn_fail(conn, true, "unexpected %s frame from a client", rpc_frame_kind_name(f.kind));
            break;
        }
        conn_dispatch(conn, in, &f, total);
    }
    rpc_conn_unref(conn);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    conn_process(arg);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct rpc_conn *conn = arg;
    if (conn->state == CONN_DRAINING)
        conn_release(conn); /* the watermark is 0 while draining: all written */
    else
        conn_update_reading(conn);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct rpc_conn *conn = arg;
    rpc_conn_ref(conn);
    if (conn->state != CONN_OPEN) {
        conn_release(conn);
    } else if (what & BEV_EVENT_TIMEOUT) {
        /* Idle timeout. A connection waiting on its own calls is not idle. */
        if (conn->in_flight > 0) {
            bufferevent_enable(bev, EV_READ);
        } else {
            log_debug("rpc", "closing idle connection from %s", conn->peer);
            conn_shutdown(conn, false);
        }
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        log_debug("rpc", "connection from %s closed: %s", conn->peer,
                  (what & BEV_EVENT_EOF) ? "end of stream" : strerror(errno));
        conn_shutdown(conn, false);
    }
    rpc_conn_unref(conn);
}

static void server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                             int salen, void *arg)
{
    struct rpc_server *s = arg;
    set_nodelay(fd);
    struct rpc_conn *conn = calloc(1, sizeof(*conn));
    if (!conn) {
        close(fd);
        return;
    }
    format_addr(sa, conn->peer, sizeof(conn->peer));
    rpc_bev_factory_fn factory = s->opts.bev_factory ? s->opts.bev_factory : plain_bev;
    conn->bev = factory(s->base, fd, true, s->opts.bev_factory_ud);
    if (!conn->bev) {
        log_debug("rpc", "cannot set up connection from %s", conn->peer);
        free(conn);
        return;
    }
    conn->refs = 1; /* the server's, dropped by conn_release */
    conn->server = s;
    conn->max_frame = s->opts.max_frame_bytes;
    conn->max_output = s->opts.max_output_bytes;
    conn->max_in_flight = s->opts.max_in_flight;
    conn->next = s->conns;
    if (s->conns)
        s->conns->prev = conn;
    s->conns = conn;
    s->n_conns++;

    bufferevent_setcb(conn->bev, conn_read_cb, conn_write_cb, conn_event_cb, conn);
    bufferevent_setwatermark(conn->bev, EV_WRITE, conn->max_output / 4, 0);
    if (s->opts.idle_timeout_ms > 0) {
        struct timeval tv = ms_to_tv(s->opts.idle_timeout_ms);
        bufferevent_set_timeouts(conn->bev, &tv, NULL);
    }
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    log_debug("rpc", "accepted connection from %s", conn->peer);
}

static void server_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rpc_server *s = arg;
    evconnlistener_enable(s->listener);
}

/* accept() failing (EMFILE, ENFILE, ENOBUFS) would otherwise spin: the listening
 * socket stays readable. Back off briefly instead. */
static void server_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct rpc_server *s = arg;
    int err = errno;
    log_warn("rpc", "accept on port %d failed: %s; pausing accepts for %d ms", s->port,
             strerror(err), ACCEPT_RETRY_MS);
    evconnlistener_disable(l);
    struct timeval tv = ms_to_tv(ACCEPT_RETRY_MS);
    event_add(s->accept_retry, &tv);
}

int rpc_server_new(struct event_base *base, const char *host, int port,
                   const ProtobufCServiceDescriptor *desc, const struct rpc_handler *handlers,
                   const struct rpc_server_options *opts, struct rpc_server **ret)
{
    if (!base || !desc || !handlers || !ret || port < 0 || port > 65535)
        return -EINVAL;
    struct rpc_server_options o = {0};
    if (opts)
        o = *opts;
    if (o.max_frame_bytes == 0)
        o.max_frame_bytes = RPC_FRAME_DEFAULT_MAX;
    if (o.max_frame_bytes < RPC_FRAME_HEADER_BYTES + 2 || o.max_frame_bytes > UINT32_MAX)
        return -EINVAL;
    if (o.max_in_flight == 0)
        o.max_in_flight = RPC_DEFAULT_MAX_IN_FLIGHT;
    if (o.max_output_bytes == 0)
        o.max_output_bytes = RPC_DEFAULT_MAX_OUTPUT_BYTES;
    if (o.idle_timeout_ms < 0)
        return -EINVAL;

    struct sockaddr_storage ss;
    socklen_t sslen;
    int r = resolve(host ? host : "0.0.0.0", port, true, &ss, &sslen);
    if (r < 0)
        return r;

    struct rpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->base = base;
    s->desc = desc;
    s->opts = o;
    s->handlers = calloc(desc->n_methods ? desc->n_methods : 1, sizeof(*s->handlers));
    if (!s->handlers) {
        free(s);
        return -ENOMEM;
    }
    memcpy(s->handlers, handlers, desc->n_methods * sizeof(*s->handlers));

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto fail;
    }
    /* A restarted server must be able to take its port back from TIME_WAIT. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        r = -errno;
        close(fd);
        goto fail;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) {
        r = -errno;
        close(fd);
        goto fail;
    }
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    if (listen(fd, LISTEN_BACKLOG) < 0) {
        r = -errno;
        close(fd);
        goto fail;
    }
    s->listener = evconnlistener_new(base, server_accept_cb, s,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!s->listener) {
        close(fd);
        r = -ENOMEM;
        goto fail;
    }
    evconnlistener_set_error_cb(s->listener, server_accept_error_cb);
    s->accept_retry = evtimer_new(base, server_accept_retry_cb, s);
    if (!s->accept_retry) {
        r = -ENOMEM;
        goto fail;
    }
    *ret = s;
    return 0;

fail:
    if (s->listener)
        evconnlistener_free(s->listener);
    free(s->handlers);
    free(s);
    return r;
}

void rpc_server_free(struct rpc_server *s)
{
    if (!s)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->accept_retry)
        event_free(s->accept_retry);
    /* Detach each connection first so hooks that run while it closes see it
     * without a server; conn_release then only frees the socket. */
    while (s->conns) {
        struct rpc_conn *conn = s->conns;
        s->conns = conn->next;
        if (s->conns)
            s->conns->prev = NULL;
        conn->prev = conn->next = NULL;
        conn->server = NULL;
        s->n_conns--;
        rpc_conn_ref(conn);
        conn_shutdown(conn, false); /* also releases a draining connection */
        rpc_conn_unref(conn);
    }
    free(s->handlers);
    free(s);
}

int rpc_server_port(const struct rpc_server *s)
{
    return s->port;
}

size_t rpc_server_conn_count(const struct rpc_server *s)
{
    return s->n_conns;
}

/* ---- client ------------------------------------------------------------------ */

enum client_state {
    CLIENT_WAITING,    /* no socket; the retry timer is (or will be) armed */
    CLIENT_CONNECTING, /* non-blocking connect in progress */
    CLIENT_CONNECTED,
};

struct client_call {
    struct rpc_client *client;
    uint64_t corr;
    uint16_t method;
    bool sent; /* written to a connection (in flight) rather than queued */
    bool has_timer;
    rpc_response_fn cb;
    void *ud;
    struct event timer;
    struct client_call *hnext;       /* hash chain by corr */
    struct client_call *prev, *next; /* every call, in call order */
    uint8_t *frame;                  /* the encoded frame while queued */
    size_t frame_len;
};

struct push_handler {
    uint16_t type;
    const ProtobufCMessageDescriptor *desc;
    rpc_push_fn fn;
    void *ud;
};

struct rpc_client {
    struct event_base *base;
    const ProtobufCServiceDescriptor *desc;
    struct rpc_client_options opts;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char peer[300];
    enum client_state state;
    struct bufferevent *bev;
    int connect_fd;
    struct event connect_ev;
    struct event retry_ev;
    struct event switch_ev; /* rpc_client_retarget: acts from the loop */
    int switch_delay_ms;
    uint64_t gen; /* bumped on every connect and disconnect */
    int backoff_ms;
    uint64_t rng;
    uint64_t next_corr;
    struct client_call **buckets;
    size_t nbuckets; /* power of two */
    size_t ncalls;
    struct client_call *head, *tail;
    struct push_handler *pushes;
    size_t npushes;
    int busy;  /* libevent callbacks of ours currently on the stack */
    bool dead; /* rpc_client_free was called; destroy when busy drops to 0 */
};

static void client_start_connect(struct rpc_client *c);

static void client_destroy(struct rpc_client *c)
{
    event_del(&c->retry_ev);
    event_del(&c->switch_ev);
    free(c->buckets);
    free(c->pushes);
    free(c);
}

static void client_enter(struct rpc_client *c)
{
    c->busy++;
}

static void client_leave(struct rpc_client *c)
{
    if (--c->busy == 0 && c->dead)
        client_destroy(c);
}

static struct client_call **call_slot(struct rpc_client *c, uint64_t corr)
{
    return &c->buckets[(size_t)corr & (c->nbuckets - 1)];
}

static void calls_rehash(struct rpc_client *c)
{
    size_t n = c->nbuckets * 2;
    struct client_call **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct client_call *call = c->buckets[i];
        while (call) {
            struct client_call *next = call->hnext;
            size_t slot = (size_t)call->corr & (n - 1);
            call->hnext = nb[slot];
            nb[slot] = call;
            call = next;
        }
    }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
}

static void calls_add(struct rpc_client *c, struct client_call *call)
{
    if (c->ncalls >= c->nbuckets)
        calls_rehash(c);
    struct client_call **slot = call_slot(c, call->corr);
    call->hnext = *slot;
    *slot = call;
    call->prev = c->tail;
    call->next = NULL;
    if (c->tail)
        c->tail->next = call;
    else
        c->head = call;
    c->tail = call;
    c->ncalls++;
}

static struct client_call *calls_find(struct rpc_client *c, uint64_t corr)
{
    for (struct client_call *call = *call_slot(c, corr); call; call = call->hnext)
        if (call->corr == corr)
            return call;
    return NULL;
}

static void calls_remove(struct rpc_client *c, struct client_call *call)
{
    for (struct client_call **p = call_slot(c, call->corr); *p; p = &(*p)->hnext) {
        if (*p == call) {
            *p = call->hnext;
            break;
        }
    }
    if (call->prev)
        call->prev->next = call->next;
    else
        c->head = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        c->tail = call->prev;
    c->ncalls--;
}

/* Detach @call from the client before its callback runs, so the callback sees a
 * consistent client whatever it does (new calls, rpc_client_free). */
static void call_complete(struct rpc_client *c, struct client_call *call, int status,
                          const ProtobufCMessage *resp, const char *errmsg)
{
    calls_remove(c, call);
    if (call->has_timer)
        event_del(&call->timer);
    free(call->frame);
    call->cb(status, resp, errmsg ? errmsg : "", call->ud);
    free(call);
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client_call *call = arg;
    struct rpc_client *c = call->client;
    client_enter(c);
    call_complete(c, call, RPC_TIMEOUT, NULL, "no answer before the call's timeout");
    client_leave(c);
}

static uint64_t client_rand(struct rpc_client *c)
{
    /* xorshift64: jitter only needs to decorrelate clients, not be unpredictable. */
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static void client_schedule_retry(struct rpc_client *c)
{
    c->state = CLIENT_WAITING;
    /* Equal jitter: somewhere in [backoff/2, backoff], so a fleet of brokers that
     * lost the coordinator together do not come back in lockstep. */
    int half = c->backoff_ms / 2;
    int delay = half + (int)(client_rand(c) % (uint64_t)(c->backoff_ms - half + 1));
    if (c->backoff_ms < c->opts.backoff_max_ms)
        c->backoff_ms =
            c->backoff_ms > c->opts.backoff_max_ms / 2 ? c->opts.backoff_max_ms : c->backoff_ms * 2;
    struct timeval tv = ms_to_tv(delay);
    evtimer_add(&c->retry_ev, &tv);
    log_debug("rpc", "reconnecting to %s in %d ms", c->peer, delay);
}

/* A connect attempt failed: retry with backoff, and tell the owner (it may
 * point the client elsewhere for that retry). */
static void client_connect_failed(struct rpc_client *c)
{
    client_schedule_retry(c);
    if (c->opts.on_connect_failed)
        c->opts.on_connect_failed(c, c->opts.event_ud);
}

static void client_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rpc_client *c = arg;
    client_enter(c);
    client_start_connect(c);
    client_leave(c);
}

/* The connection dropped: calls in flight fail, queued ones keep waiting. */
static void client_drop(struct rpc_client *c)
{
    bool was_connected = c->state == CLIENT_CONNECTED;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    c->gen++;
    c->state = CLIENT_WAITING;
    /* Callbacks may append new (queued) calls; only rpc_client_free removes others,
     * and then we stop. */
    struct client_call *call = c->head;
    while (call && !c->dead) {
        struct client_call *next = call->next;
        if (call->sent)
            call_complete(c, call, RPC_DISCONNECTED, NULL, "connection lost");
        call = next;
    }
    if (!c->dead && was_connected && c->opts.on_disconnect)
        c->opts.on_disconnect(c, c->opts.event_ud);
    if (!c->dead && c->state == CLIENT_WAITING && !evtimer_pending(&c->retry_ev, NULL))
        client_schedule_retry(c);
}

__attribute__((format(printf, 2, 3))) static void client_fail_conn(struct rpc_client *c,
                                                                   const char *fmt, ...)
{
    char why[REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_warn("rpc", "closing connection to %s: %s", c->peer, why);
    client_drop(c);
}

static void client_on_response(struct rpc_client *c, struct evbuffer *in, const struct rpc_frame *f,
                               size_t total)
{
    struct client_call *call = calls_find(c, f->corr);
    if (!call || !call->sent) {
        /* Normal after a timeout: the answer came too late. */
        log_debug("rpc", "dropping %s for unknown call %llu from %s", rpc_frame_kind_name(f->kind),
                  (unsigned long long)f->corr, c->peer);
        evbuffer_drain(in, total);
        return;
    }
    if (f->method != call->method) {
        client_fail_conn(c, "%s for call %llu names method %u, not %u",
                         rpc_frame_kind_name(f->kind), (unsigned long long)f->corr, f->method,
                         call->method);
        return;
    }
    if (f->kind == RPC_FRAME_ERROR) {
        uint16_t status;
        const char *text;
        size_t tlen;
        if (rpc_frame_error_parse(f, &status, &text, &tlen) < 0) {
            client_fail_conn(c, "ERROR frame of %zu bytes has no status", f->payload_len);
            return;
        }
        char msg[RPC_FRAME_ERROR_TEXT_MAX + 1];
        size_t n = tlen < RPC_FRAME_ERROR_TEXT_MAX ? tlen : RPC_FRAME_ERROR_TEXT_MAX;
        memcpy(msg, text, n);
        msg[n] = '\0';
        evbuffer_drain(in, total);
        /* OK promises a response message; an ERROR frame never has one. */
        call_complete(c, call, status == RPC_OK ? RPC_INTERNAL : status, NULL, msg);
        return;
    }
    const ProtobufCMethodDescriptor *md = &c->desc->methods[call->method];
    ProtobufCMessage *msg = protobuf_c_message_unpack(md->output, NULL, f->payload_len, f->payload);
    size_t plen = f->payload_len;
    evbuffer_drain(in, total);
    if (!msg) {
        /* The frame was sound, so the stream is too: fail only this call. */
        log_debug("rpc", "response to %s.%s from %s does not decode (%zu bytes)", c->desc->name,
                  md->name, c->peer, plen);
        call_complete(c, call, RPC_BAD_RESPONSE, NULL, "response does not decode");
        return;
    }
    call_complete(c, call, RPC_OK, msg, "");
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void client_on_push(struct rpc_client *c, struct evbuffer *in, const struct rpc_frame *f,
                           size_t total)
{
    struct push_handler ph = {0};
    for (size_t i = 0; i < c->npushes; i++)
        if (c->pushes[i].type == f->method)
            ph = c->pushes[i];
    if (!ph.fn) {
        log_debug("rpc", "dropping push of unregistered type %u from %s", f->method, c->peer);
        evbuffer_drain(in, total);
        return;
    }
    size_t plen = f->payload_len;
    ProtobufCMessage *msg = protobuf_c_message_unpack(ph.desc, NULL, plen, f->payload);
    evbuffer_drain(in, total);
    if (!msg) {
        /* A lost push is a gap in a watch; reconnecting makes the owner resubscribe. */
        client_fail_conn(c, "push of type %u does not decode (%zu bytes)", f->method, plen);
        return;
    }
    ph.fn(f->method, msg, ph.ud);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct rpc_client *c = arg;
    client_enter(c);
    uint64_t gen = c->gen;
    while (!c->dead && c->gen == gen && c->bev) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct rpc_frame f;
        size_t total;
        int r = take_frame(in, c->opts.max_frame_bytes, &f, &total);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            char why[REASON_MAX];
            describe_stream_error(r, in, c->opts.max_frame_bytes, why, sizeof(why));
            client_fail_conn(c, "%s", why);
            break;
        }
        if (f.kind == RPC_FRAME_RESPONSE || f.kind == RPC_FRAME_ERROR)
            client_on_response(c, in, &f, total);
        else if (f.kind == RPC_FRAME_PUSH)
            client_on_push(c, in, &f, total);
        else
            client_fail_conn(c, "unexpected %s frame from a server", rpc_frame_kind_name(f.kind));
    }
    client_leave(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct rpc_client *c = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return; /* e.g. BEV_EVENT_CONNECTED from a TLS bufferevent */
    client_enter(c);
    log_debug("rpc", "connection to %s closed: %s", c->peer,
              (what & BEV_EVENT_EOF) ? "end of stream" : strerror(errno));
    client_drop(c);
    client_leave(c);
}

static void free_frame_ref(const void *data, size_t len, void *arg)
{
    free((void *)data);
}

/* Send the calls queued while disconnected, oldest first. */
static void client_flush_queue(struct rpc_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (struct client_call *call = c->head; call; call = call->next) {
        if (call->sent)
            continue;
        /* The evbuffer takes the encoded frame without copying it. */
        if (evbuffer_add_reference(out, call->frame, call->frame_len, free_frame_ref, NULL) < 0)
            continue; /* stays queued until the next connection or its timeout */
        call->frame = NULL;
        call->frame_len = 0;
        call->sent = true;
    }
}

static void client_connected(struct rpc_client *c, int fd)
{
    rpc_bev_factory_fn factory = c->opts.bev_factory ? c->opts.bev_factory : plain_bev;
    struct bufferevent *bev = factory(c->base, fd, false, c->opts.bev_factory_ud);
    if (!bev) {
        log_debug("rpc", "cannot set up connection to %s", c->peer);
        client_connect_failed(c);
        return;
    }
    c->bev = bev;
    bufferevent_setcb(bev, client_read_cb, NULL, client_event_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    c->state = CLIENT_CONNECTED;
    c->gen++;
    c->backoff_ms = c->opts.backoff_initial_ms;
    log_debug("rpc", "connected to %s", c->peer);
    uint64_t gen = c->gen;
    if (c->opts.on_connect)
        c->opts.on_connect(c, c->opts.event_ud);
    if (!c->dead && c->gen == gen)
        client_flush_queue(c);
}

static void client_connect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rpc_client *c = arg;
    client_enter(c);
    c->connect_fd = -1;
    int err = 0;
    if (what & EV_TIMEOUT) {
        err = ETIMEDOUT;
    } else {
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
    }
    if (err) {
        log_debug("rpc", "connect to %s failed: %s", c->peer, strerror(err));
        close(fd);
        client_connect_failed(c);
    } else {
        client_connected(c, fd);
    }
    client_leave(c);
}

static void client_start_connect(struct rpc_client *c)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_debug("rpc", "socket for %s: %s", c->peer, strerror(errno));
        client_connect_failed(c);
        return;
    }
    set_nodelay(fd);
    if (connect(fd, (struct sockaddr *)&c->addr, c->addrlen) == 0) {
        client_connected(c, fd);
        return;
    }
    if (errno != EINPROGRESS) {
        log_debug("rpc", "connect to %s failed: %s", c->peer, strerror(errno));
        close(fd);
        client_connect_failed(c);
        return;
    }
    /* Connect ourselves rather than through the bufferevent, so the bev factory
     * always gets a connected socket whatever kind of bufferevent it makes. */
    c->state = CLIENT_CONNECTING;
    c->connect_fd = fd;
    event_assign(&c->connect_ev, c->base, fd, EV_WRITE, client_connect_cb, c);
    struct timeval tv = ms_to_tv(c->opts.connect_timeout_ms);
    event_add(&c->connect_ev, &tv);
}

/* The address changed (rpc_client_retarget): leave the old peer and connect to
 * the new one, at once or after the delay asked for, or with backoff. */
static void client_switch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rpc_client *c = arg;
    client_enter(c);
    if (c->connect_fd >= 0) { /* a connect to the old address in progress */
        event_del(&c->connect_ev);
        close(c->connect_fd);
        c->connect_fd = -1;
        c->state = CLIENT_WAITING;
    }
    if (c->state == CLIENT_CONNECTED)
        client_drop(c); /* in-flight calls: RPC_DISCONNECTED; on_disconnect runs */
    if (!c->dead) {
        c->state = CLIENT_WAITING;
        if (c->switch_delay_ms >= 0) {
            event_del(&c->retry_ev);
            c->backoff_ms = c->opts.backoff_initial_ms;
            struct timeval tv = ms_to_tv(c->switch_delay_ms);
            evtimer_add(&c->retry_ev, &tv);
        } else if (!evtimer_pending(&c->retry_ev, NULL)) {
            client_schedule_retry(c);
        }
    }
    client_leave(c);
}

int rpc_client_retarget(struct rpc_client *c, const char *host, int port, int delay_ms)
{
    if (!c || !host || port <= 0 || port > 65535)
        return -EINVAL;
    if (c->dead)
        return -ESHUTDOWN;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int r = resolve(host, port, false, &addr, &addrlen);
    if (r < 0)
        return r;
    c->addr = addr;
    c->addrlen = addrlen;
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    c->switch_delay_ms = delay_ms;
    struct timeval now = {0, 0};
    evtimer_add(&c->switch_ev, &now);
    return 0;
}

const char *rpc_client_peer(const struct rpc_client *c)
{
    return c->peer;
}

int rpc_client_new(struct event_base *base, const char *host, int port,
                   const ProtobufCServiceDescriptor *desc, const struct rpc_client_options *opts,
                   struct rpc_client **ret)
{
    if (!base || !host || !desc || !ret || port <= 0 || port > 65535)
        return -EINVAL;
    struct rpc_client_options o = {0};
    if (opts)
        o = *opts;
    if (o.max_frame_bytes == 0)
        o.max_frame_bytes = RPC_FRAME_DEFAULT_MAX;
    if (o.connect_timeout_ms == 0)
        o.connect_timeout_ms = RPC_DEFAULT_CONNECT_TIMEOUT_MS;
    if (o.backoff_initial_ms == 0)
        o.backoff_initial_ms = RPC_DEFAULT_BACKOFF_INITIAL_MS;
    if (o.backoff_max_ms == 0)
        o.backoff_max_ms = RPC_DEFAULT_BACKOFF_MAX_MS;
    if (o.default_timeout_ms == 0)
        o.default_timeout_ms = RPC_DEFAULT_CALL_TIMEOUT_MS;
    if (o.max_pending_calls == 0)
        o.max_pending_calls = RPC_DEFAULT_MAX_PENDING_CALLS;
    if (o.max_frame_bytes < RPC_FRAME_HEADER_BYTES + 2 || o.max_frame_bytes > UINT32_MAX ||
        o.connect_timeout_ms < 0 || o.backoff_initial_ms < 0 ||
        o.backoff_max_ms < o.backoff_initial_ms || o.default_timeout_ms < 0)
        return -EINVAL;

    struct rpc_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int r = resolve(host, port, false, &c->addr, &c->addrlen);
    if (r < 0) {
        free(c);
        return r;
    }
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets) {
        free(c);
        return -ENOMEM;
    }
    c->base = base;
    c->desc = desc;
    c->opts = o;
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    c->connect_fd = -1;
    c->backoff_ms = o.backoff_initial_ms;
    c->rng = (uint64_t)clock_mono_ns() ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ull;
    if (c->rng == 0)
        c->rng = 1;
    c->next_corr = 1;
    evtimer_assign(&c->retry_ev, base, client_retry_cb, c);
    evtimer_assign(&c->switch_ev, base, client_switch_cb, c);
    /* The first attempt starts from the loop, so on_connect never runs before the
     * caller has its pointer. */
    struct timeval now = {0, 0};
    evtimer_add(&c->retry_ev, &now);
    *ret = c;
    return 0;
}

void rpc_client_free(struct rpc_client *c)
{
    if (!c || c->dead)
        return;
    c->dead = true;
    client_enter(c);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->connect_fd >= 0) {
        event_del(&c->connect_ev);
        close(c->connect_fd);
        c->connect_fd = -1;
    }
    event_del(&c->retry_ev);
    event_del(&c->switch_ev);
    c->state = CLIENT_WAITING;
    /* rpc_client_call refuses new calls now, so this terminates. */
    while (c->head)
        call_complete(c, c->head, RPC_SHUTTING_DOWN, NULL, "client shutting down");
    client_leave(c);
}

int rpc_client_call(struct rpc_client *c, unsigned method, const ProtobufCMessage *req,
                    int timeout_ms, rpc_response_fn cb, void *ud)
{
    if (!c || !req || !cb)
        return -EINVAL;
    if (c->dead)
        return -ESHUTDOWN;
    if (method >= c->desc->n_methods || req->descriptor != c->desc->methods[method].input)
        return -EINVAL;
    if (c->ncalls >= c->opts.max_pending_calls)
        return -ENOBUFS;
    struct client_call *call = calloc(1, sizeof(*call));
    if (!call)
        return -ENOMEM;
    call->client = c;
    call->corr = c->next_corr++;
    call->method = (uint16_t)method;
    call->cb = cb;
    call->ud = ud;
    int r;
    if (c->state == CLIENT_CONNECTED) {
        r = put_msg_frame(bufferevent_get_output(c->bev), RPC_FRAME_REQUEST, call->method,
                          call->corr, req, c->opts.max_frame_bytes);
        call->sent = r == 0;
    } else {
        buf_writer w;
        buf_writer_init(&w);
        r = rpc_frame_write_msg(&w, RPC_FRAME_REQUEST, call->method, call->corr, req,
                                c->opts.max_frame_bytes);
        if (r == 0)
            r = buf_writer_steal(&w, &call->frame, &call->frame_len);
        buf_writer_deinit(&w);
    }
    if (r < 0) {
        free(call);
        return r;
    }
    int t = timeout_ms > 0 ? timeout_ms : timeout_ms == 0 ? c->opts.default_timeout_ms : -1;
    if (t >= 0) {
        evtimer_assign(&call->timer, c->base, call_timeout_cb, call);
        struct timeval tv = ms_to_tv(t);
        evtimer_add(&call->timer, &tv);
        call->has_timer = true;
    }
    calls_add(c, call);
    return 0;
}

int rpc_client_on_push(struct rpc_client *c, uint16_t type,
                       const ProtobufCMessageDescriptor *msgdesc, rpc_push_fn fn, void *ud)
{
    if (!c || (fn && !msgdesc))
        return -EINVAL;
    for (size_t i = 0; i < c->npushes; i++) {
        if (c->pushes[i].type != type)
            continue;
        if (fn) {
            c->pushes[i] = (struct push_handler){type, msgdesc, fn, ud};
        } else {
            c->pushes[i] = c->pushes[c->npushes - 1];
            c->npushes--;
        }
        return 0;
    }
    if (!fn)
        return 0;
    struct push_handler *np = realloc(c->pushes, (c->npushes + 1) * sizeof(*np));
    if (!np)
        return -ENOMEM;
    c->pushes = np;
    c->pushes[c->npushes++] = (struct push_handler){type, msgdesc, fn, ud};
    return 0;
}

bool rpc_client_is_connected(const struct rpc_client *c)
{
    return c->state == CLIENT_CONNECTED;
}

size_t rpc_client_pending(const struct rpc_client *c)
{
    return c->ncalls;
}
