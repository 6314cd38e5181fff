/* server: Kafka listener, framing, per-connection ordering of responses,
 * in-flight cap, idle close, sendfile splicing of Fetch records. */
#include "broker/kafka/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/storage/plog.h"
#include "common/clock.h"
#include "common/log.h"

#define DEFAULT_ARENA_CAP  (64u * 1024 * 1024)
#define MAX_SPLICES_INLINE 16
/* Unsent response bytes (file segments included) at which a connection stops
 * reading, and the level at which it resumes: a client that pipelines
 * requests but does not read the answers cannot make us buffer without bound. */
#define OUT_HIGH_BYTES (32u * 1024 * 1024)
#define OUT_LOW_BYTES  (8u * 1024 * 1024)
#define OUT_SINGLE_WRITE_BYTES (4 * 1024 * 1024)
#define ACCEPT_RETRY_MS 100 /* pause after accept() fails (e.g. EMFILE) */

struct kconn {
    struct kserver *srv;
    struct kconn *prev, *next; /* server's list while open */
    struct bufferevent *bev;
    struct event *idle;
    struct kreq *head, *tail; /* requests in arrival order */
    int32_t in_flight;
    int refs;
    bool closed;
    bool read_paused; /* in-flight cap reached */
    bool out_paused;  /* too much unsent output */
    char peer[64];
};

struct kserver {
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *accept_retry; /* re-enables accepts after accept() failed */
    struct kserver_options o;
    struct kconn *conns;
    size_t n_conns;
    uint64_t accepted;
    int port;
};

static void conn_close(struct kconn *c);
static void conn_read_cb(struct bufferevent *bev, void *arg);

static void conn_unref(struct kconn *c)
{
    if (--c->refs > 0)
        return;
    if (c->idle)
        event_free(c->idle);
    free(c);
}

static void kreq_free(struct kreq *r)
{
    if (r->out)
        evbuffer_free(r->out);
    arena_deinit(&r->arena);
    free(r->frame);
    free(r);
}

/* Send every completed response at the head of the queue, in order. */
static void conn_flush(struct kconn *c)
{
    while (c->head && c->head->done) {
        struct kreq *r = c->head;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->in_flight--;
        if (!c->closed) {
            /* Only while open: a closed connection may outlive its server. */
            if (c->srv->o.on_done)
                c->srv->o.on_done(c->srv->o.ud, r, clock_mono_us() - r->arrival_us);
            if (r->out && bufferevent_write_buffer(c->bev, r->out) != 0)
                r->close_after = true;
            if (r->close_after)
                conn_close(c);
        }
        kreq_free(r);
        conn_unref(c); /* each request held one */
    }
    if (!c->closed && c->read_paused && !c->out_paused && c->in_flight < c->srv->o.max_in_flight) {
        c->read_paused = false;
        bufferevent_enable(c->bev, EV_READ);
        /* Frames may already be buffered; the socket will not say so again. */
        bufferevent_trigger(c->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
    }
}

static void kreq_complete(struct kreq *r)
{
    struct kconn *c = r->conn;
    r->done = true;
    c->refs++;
    conn_flush(c);
    conn_unref(c);
}

static void conn_close(struct kconn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->idle)
        event_del(c->idle);
    struct kserver *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    log_debug("kafka", "connection from %s closed", c->peer);
    /* May complete requests; the open reference keeps c alive meanwhile. */
    if (s->o.on_close)
        s->o.on_close(s->o.ud, c);
    conn_unref(c); /* the open connection's reference */
}

static void idle_arm(struct kconn *c)
{
    int64_t ms = c->srv->o.idle_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(c->idle, &tv);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kconn *c = arg;
    if (c->in_flight > 0) {
        idle_arm(c);
        return;
    }
    log_debug("kafka", "closing idle connection from %s", c->peer);
    conn_close(c);
}

/* The output drained below the low watermark. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct kconn *c = arg;
    if (c->out_paused) {
        c->out_paused = false;
        c->refs++;
        conn_flush(c); /* resumes reading unless the in-flight cap holds */
        conn_unref(c);
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct kconn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_close(c);
}

static void protocol_error(struct kconn *c, const char *why)
{
    log_warn("kafka", "closing connection from %s: %s", c->peer, why);
    conn_close(c);
}

int kserver_frame_check(const uint8_t pfx[4], size_t avail, int64_t max_request_bytes,
                        size_t *ret_len)
{
    if (avail < 4)
        return -EAGAIN;
    int32_t size = (int32_t)buf_load_be32(pfx);
    if (size < 0 || (int64_t)size > max_request_bytes)
        return -EMSGSIZE;
    if (avail - 4 < (size_t)size)
        return -EAGAIN;
    *ret_len = (size_t)size;
    return 0;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct kconn *c = arg;
    struct kserver *s = c->srv;
    struct evbuffer *in = bufferevent_get_input(bev);
    c->refs++;
    idle_arm(c);
    while (!c->closed) {
        if (c->in_flight >= s->o.max_in_flight ||
            evbuffer_get_length(bufferevent_get_output(bev)) > OUT_HIGH_BYTES) {
            c->read_paused = true;
            c->out_paused = c->in_flight < s->o.max_in_flight;
            log_debug("kafka", "pausing reads from %s: %d in flight, %zu bytes unsent", c->peer,
                      c->in_flight, evbuffer_get_length(bufferevent_get_output(bev)));
            bufferevent_disable(c->bev, EV_READ);
            break;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail < 4)
            break;
        uint8_t pfx[4];
        evbuffer_copyout(in, pfx, 4);
        size_t size = 0;
        int fr = kserver_frame_check(pfx, avail, s->o.max_request_bytes, &size);
        if (fr == -EMSGSIZE) {
            char why[96];
            snprintf(why, sizeof(why), "request size %d outside [0, %lld]",
                     (int32_t)buf_load_be32(pfx), (long long)s->o.max_request_bytes);
            protocol_error(c, why);
            break;
        }
        if (fr != 0)
            break;
        evbuffer_drain(in, 4);
        struct kreq *r = calloc(1, sizeof(*r));
        uint8_t *frame = malloc(size ? (size_t)size : 1);
        if (!r || !frame) {
            free(r);
            free(frame);
            protocol_error(c, "out of memory");
            break;
        }
        evbuffer_remove(in, frame, (size_t)size);
        r->frame = frame;
        r->frame_len = (size_t)size;
        r->conn = c;
        arena_init(&r->arena, 0, s->o.arena_cap ? s->o.arena_cap : DEFAULT_ARENA_CAP);
        buf_reader rd;
        buf_reader_init(&rd, frame, (size_t)size);
        if (kafka_request_header_decode(&rd, &r->hdr) != 0) {
            kreq_free(r);
            protocol_error(c, "malformed request header");
            break;
        }
        r->body = rd;
        r->reply_version = r->hdr.api_version;
        r->arrival_us = clock_mono_us();
        if (c->tail)
            c->tail->next = r;
        else
            c->head = r;
        c->tail = r;
        c->in_flight++;
        c->refs++;
        s->o.on_request(s->o.ud, r);
    }
    conn_unref(c);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct kserver *s = arg;
    struct kconn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->idle = evtimer_new(s->base, idle_cb, c);
    if (!c->bev || !c->idle) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->idle)
            event_free(c->idle);
        free(c);
        return;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    c->srv = s;
    c->refs = 1;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->accepted++;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_BYTES, 0);
    /* libevent writes 16 KiB per loop turn by default: a 400 KB Metadata
     * answer for 10,000 partitions took 25 turns, each possibly behind a slice
     * of bulk work. The socket buffer decides how much goes at once. */
    bufferevent_set_max_single_write(c->bev, OUT_SINGLE_WRITE_BYTES);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    idle_arm(c);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kserver *s = arg;
    evconnlistener_enable(s->lis);
}

/* accept() failing for want of descriptors (EMFILE, ENFILE) or buffers would
 * spin the loop: the listening socket stays readable. Pause accepts briefly;
 * connections already open keep being served. */
static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    struct kserver *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("kafka", "accept on port %d failed: %s; pausing accepts for %d ms", s->port,
             strerror(err), ACCEPT_RETRY_MS);
    evconnlistener_disable(lis);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    evtimer_add(s->accept_retry, &tv);
}

int kserver_new(struct event_base *base, const struct kserver_options *opts, struct kserver **ret)
{
    if (!opts->on_request || opts->max_in_flight <= 0 || opts->max_request_bytes <= 0 ||
        opts->idle_ms <= 0)
        return -EINVAL;
    struct kserver *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->base = base;
    s->o = *opts;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    const char *host = opts->host && opts->host[0] ? opts->host : "0.0.0.0";
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)opts->port);
        sl = sizeof(*in);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)opts->port);
        sl = sizeof(*in6);
    } else if (strcmp(host, "localhost") == 0) {
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in->sin_port = htons((uint16_t)opts->port);
        sl = sizeof(*in);
    } else {
        free(s);
        return -EINVAL; /* numeric addresses only: no blocking resolution */
    }
    s->lis = evconnlistener_new_bind(
        base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&ss, (int)sl);
    if (!s->lis) {
        int e = errno ? errno : EADDRINUSE;
        free(s);
        return -e;
    }
    s->accept_retry = evtimer_new(base, accept_retry_cb, s);
    if (!s->accept_retry) {
        evconnlistener_free(s->lis);
        free(s);
        return -ENOMEM;
    }
    evconnlistener_set_error_cb(s->lis, accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    if (getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&bound, &bl) == 0)
        s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                              : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *ret = s;
    return 0;
}

void kserver_free(struct kserver *s)
{
    if (!s)
        return;
    if (s->lis)
        evconnlistener_free(s->lis);
    if (s->accept_retry)
        event_free(s->accept_retry);
    while (s->conns)
        conn_close(s->conns);
    free(s);
}

int kserver_port(const struct kserver *s)
{
    return s->port;
}

size_t kserver_conn_count(const struct kserver *s)
{
    return s->n_conns;
}

uint64_t kserver_accepted_count(const struct kserver *s)
{
    return s->accepted;
}

const char *kreq_peer(const struct kreq *req)
{
    return req->conn->peer;
}

const char *kconn_peer(const struct kconn *conn)
{
    return conn->peer;
}

bool kreq_conn_open(const struct kreq *req)
{
    return !req->conn->closed;
}

/* ---- responses ------------------------------------------------------------------ */

struct splice {
    size_t offset;
    struct seg_file *file;
    int64_t pos;
    int64_t len;
};

struct reply_ctx {
    kreq_resolve_fn resolve;
    void *opaque;
    struct splice *v;
    size_t n, cap;
    struct splice inl[MAX_SPLICES_INLINE];
};

static int records_hook(void *opaque, size_t offset, const buf_slice *field)
{
    struct reply_ctx *rc = opaque;
    if (!rc->resolve)
        return -EINVAL;
    if (rc->n == rc->cap) {
        size_t cap = rc->cap * 2;
        struct splice *nv = malloc(cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        memcpy(nv, rc->v, rc->n * sizeof(*nv));
        if (rc->v != rc->inl)
            free(rc->v);
        rc->v = nv;
        rc->cap = cap;
    }
    struct splice *sp = &rc->v[rc->n];
    int r = rc->resolve(rc->opaque, field, &sp->file, &sp->pos);
    if (r < 0)
        return r;
    sp->offset = offset;
    sp->len = field->len;
    rc->n++;
    return 0;
}

static void segment_cleanup(struct evbuffer_file_segment const *seg, int flags, void *arg)
{
    seg_file_unref(arg);
}

int kreq_reply(struct kreq *req, const void *msg, kreq_resolve_fn resolve, void *opaque)
{
    struct kserver *srv = req->conn->srv;
    if (!req->conn->closed && srv->o.on_reply)
        srv->o.on_reply(srv->o.ud, req, msg);
    struct reply_ctx rc = {.resolve = resolve, .opaque = opaque};
    rc.v = rc.inl;
    rc.cap = MAX_SPLICES_INLINE;
    buf_writer w;
    buf_writer_init(&w);
    buf_write_i32(&w, 0);
    int r = kafka_response_header_encode(&w, req->hdr.api_key, req->reply_version,
                                         req->hdr.correlation_id);
    struct kafka_enc_hook hook = {.records = records_hook, .opaque = &rc};
    if (r == 0)
        r = kafka_response_encode(&w, req->hdr.api_key, req->reply_version, msg, &hook);
    if (r == 0)
        r = buf_writer_error(&w);
    int64_t total = (int64_t)w.len - 4;
    for (size_t i = 0; i < rc.n; i++)
        total += rc.v[i].len;
    if (r == 0 && total > INT32_MAX)
        r = -EMSGSIZE;
    struct evbuffer *out = NULL;
    if (r == 0) {
        buf_writer_patch_i32(&w, 0, (int32_t)total);
        out = evbuffer_new();
        if (!out)
            r = -ENOMEM;
    }
    size_t at = 0;
    for (size_t i = 0; i < rc.n; i++) {
        struct splice *sp = &rc.v[i];
        if (r == 0 && evbuffer_add(out, w.data + at, sp->offset - at) != 0)
            r = -ENOMEM;
        at = sp->offset;
        if (r == 0) {
            struct evbuffer_file_segment *seg =
                evbuffer_file_segment_new(seg_file_fd(sp->file), sp->pos, sp->len,
                                          EVBUF_FS_DISABLE_MMAP | EVBUF_FS_DISABLE_LOCKING);
            if (!seg) {
                r = -ENOMEM;
            } else {
                /* The segment now owns the reference; libevent drops it when
                 * the bytes have been sent (or the buffer is freed). */
                evbuffer_file_segment_add_cleanup_cb(seg, segment_cleanup, sp->file);
                sp->file = NULL;
                if (evbuffer_add_file_segment(out, seg, 0, sp->len) != 0)
                    r = -ENOMEM;
                evbuffer_file_segment_free(seg);
            }
        }
        seg_file_unref(sp->file);
    }
    if (r == 0 && evbuffer_add(out, w.data + at, w.len - at) != 0)
        r = -ENOMEM;
    if (rc.v != rc.inl)
        free(rc.v);
    buf_writer_deinit(&w);
    if (r != 0) {
        if (out)
            evbuffer_free(out);
        log_error("kafka", "encoding response to api %d v%d for %s: %s", req->hdr.api_key,
                  req->reply_version, req->conn->peer, strerror(-r));
        req->close_after = true;
    } else {
        req->out = out;
    }
    kreq_complete(req);
    return r;
}

void kreq_no_reply(struct kreq *req)
{
    kreq_complete(req);
}

void kreq_close(struct kreq *req)
{
    req->close_after = true;
    kreq_complete(req);
}
