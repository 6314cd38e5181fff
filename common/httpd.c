/* httpd: /metrics and /health over evhttp, with connection, size and time
 * bounds evhttp 2.1 does not enforce by itself.
 *
 * evhttp 2.1 has no hook when a connection is accepted or closed and its
 * timeouts are idle timeouts (a byte a second keeps a request alive forever).
 * So the bufferevent of every connection is made here (evhttp_set_bevcb) and
 * kept referenced: a sweep every HTTPD_SWEEP_MS notices the connections evhttp
 * has let go (their callbacks cleared by bufferevent_free) and drops the last
 * reference, which closes the socket; and it shuts down the socket of any
 * connection past its deadline or over the connection limit, which evhttp
 * sees as the peer closing and cleans up after. */
#include "common/httpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/metrics.h"

#define HTTPD_SWEEP_MS 100

struct hconn {
    struct bufferevent *bev; /* one reference is ours */
    int64_t deadline_us;
    bool shut;      /* shutdown() done; waiting for evhttp to let go */
    bool refused;   /* over the connection limit: shut at the next sweep */
    bool answering; /* a whole request arrived; no deadline until its response is sent */
};

/* A /metrics request waiting for the running scrape. */
struct hwaiter {
    struct evhttp_request *req;
    struct hwaiter *next;
};

struct httpd {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct metrics *m;
    httpd_health_fn health;
    void *health_ctx;
    int port;
    int max_connections;
    int64_t timeout_us;
    struct hconn *conns;
    size_t n_conns, cap_conns;
    struct event *sweep;
    /* At most one scrape runs; /metrics requests that arrive meanwhile share
     * its answer, so concurrent scrapers cost one scrape, not one each. */
    struct metrics_scrape *scrape;
    struct hwaiter *waiters;
    struct httpd_stats st;
    bool registered; /* httpd_collect is in m */
};

/* ---- configuration ------------------------------------------------------ */

static int parse_listener(const char *value, char *host, size_t hostlen, int *ret_port, char *err,
                          size_t errlen)
{
    const char *h = value, *port_str;
    size_t hlen;
    if (*value == '[') {
        const char *close = strchr(value, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "a host:port, with an IPv6 address as [addr]:port");
            return -EINVAL;
        }
        h = value + 1;
        hlen = (size_t)(close - h);
        port_str = close + 2;
    } else {
        const char *colon = strrchr(value, ':');
        if (!colon || memchr(value, ':', (size_t)(colon - value))) {
            snprintf(err, errlen, "a host:port such as 127.0.0.1:9644, or empty for off");
            return -EINVAL;
        }
        hlen = (size_t)(colon - value);
        port_str = colon + 1;
    }
    if (hlen == 0 || hlen >= hostlen || memchr(h, ' ', hlen) || memchr(h, '/', hlen)) {
        snprintf(err, errlen, "a host:port such as 127.0.0.1:9644 (host of 1 to %zu bytes)",
                 hostlen - 1);
        return -EINVAL;
    }
    long port = 0;
    if (!*port_str)
        port = -1;
    for (const char *p = port_str; *p && port <= 65535; p++)
        port = (*p >= '0' && *p <= '9') ? port * 10 + (*p - '0') : 65536;
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "a host:port with a port in [0, 65535]");
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *ret_port = (int)port;
    return 0;
}

int httpd_validate_listener(const struct config_def *def, const char *value, char *err,
                            size_t errlen)
{
    (void)def;
    if (!value || !*value)
        return 0;
    char host[HTTPD_HOST_MAX];
    int port;
    return parse_listener(value, host, sizeof(host), &port, err, errlen);
}

int httpd_settings_resolve(const struct config *c, struct httpd_settings *ret, char *err,
                           size_t errlen)
{
    struct httpd_settings s;
    memset(&s, 0, sizeof(s));
    const char *l = config_get_string(c, "metrics.listener");
    if (l && *l) {
        char why[160];
        if (parse_listener(l, s.host, sizeof(s.host), &s.port, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "invalid value '%s' for 'metrics.listener': expected %s", l, why);
            return -EINVAL;
        }
        s.enabled = true;
    }
    s.max_connections = (int)config_get_int(c, "metrics.max.connections");
    s.request_timeout_ms = (int)config_get_int(c, "metrics.request.timeout.ms");
    *ret = s;
    return 0;
}

/* ---- connections -------------------------------------------------------- */

static struct hconn *conn_find(struct httpd *h, const struct bufferevent *bev)
{
    for (size_t i = 0; i < h->n_conns; i++)
        if (h->conns[i].bev == bev)
            return &h->conns[i];
    return NULL;
}

static void sweep_arm(struct httpd *h)
{
    if (!evtimer_pending(h->sweep, NULL)) {
        struct timeval tv = {0, HTTPD_SWEEP_MS * 1000};
        evtimer_add(h->sweep, &tv);
    }
}

static void conn_shut(struct hconn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    c->shut = true;
}

/* Drops the connections evhttp has let go of: bufferevent_free() cleared
 * their callbacks, and our reference is the last, so dropping it closes the
 * socket. */
static void conn_prune(struct httpd *h)
{
    size_t j = 0;
    for (size_t i = 0; i < h->n_conns; i++) {
        bufferevent_event_cb ecb = NULL;
        bufferevent_getcb(h->conns[i].bev, NULL, NULL, &ecb, NULL);
        if (!ecb) {
            bufferevent_decref(h->conns[i].bev);
            continue;
        }
        h->conns[j++] = h->conns[i];
    }
    h->n_conns = j;
    h->st.connections = j;
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct httpd *h = arg;
    conn_prune(h);
    int64_t now = clock_mono_us();
    for (size_t i = 0; i < h->n_conns; i++) {
        struct hconn *c = &h->conns[i];
        if (!c->shut && (c->refused || (!c->answering && now >= c->deadline_us))) {
            if (c->refused)
                h->st.refused++;
            else
                h->st.timed_out++;
            conn_shut(c);
        }
    }
    if (h->n_conns)
        sweep_arm(h);
}

/* evhttp asks for the bufferevent of each accepted connection: the one place
 * a new connection is seen. */
static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
    struct httpd *h = arg;
    conn_prune(h); /* so the limit counts only connections still open */
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL; /* evhttp makes its own; that connection is merely untracked */
    if (h->n_conns == h->cap_conns) {
        size_t cap = h->cap_conns ? 2 * h->cap_conns : 16;
        struct hconn *c = realloc(h->conns, cap * sizeof(*c));
        if (!c)
            return bev;
        h->conns = c;
        h->cap_conns = cap;
    }
    bufferevent_incref(bev);
    struct hconn *c = &h->conns[h->n_conns++];
    *c = (struct hconn){.bev = bev, .deadline_us = clock_mono_us() + h->timeout_us};
    h->st.accepted++;
    size_t live = 0;
    for (size_t i = 0; i < h->n_conns; i++)
        live += !h->conns[i].shut;
    if (live > (size_t)h->max_connections) {
        /* The socket is not attached yet: close it on the next sweep, at once. */
        c->refused = true;
        event_active(h->sweep, EV_TIMEOUT, 0);
    }
    h->st.connections = h->n_conns;
    sweep_arm(h);
    return bev;
}

/* A whole request arrived (@answering: the deadline waits for the response)
 * or its response was sent (the next request has a full timeout). */
static void conn_mark(struct httpd *h, struct evhttp_request *req, bool answering)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return;
    struct hconn *c = conn_find(h, evhttp_connection_get_bufferevent(evcon));
    if (!c || c->shut)
        return;
    c->answering = answering;
    c->deadline_us = clock_mono_us() + h->timeout_us;
}

static void response_done_cb(struct evhttp_request *req, void *arg)
{
    conn_mark(arg, req, false);
}

/* ---- handlers ----------------------------------------------------------- */

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "%s\n", body);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    if (b)
        evbuffer_free(b);
}

static void waiters_free(struct hwaiter *w)
{
    while (w) {
        struct hwaiter *next = w->next;
        free(w);
        w = next;
    }
}

static void scrape_done(int status, struct evbuffer *body, void *arg)
{
    struct httpd *h = arg;
    struct hwaiter *waiters = h->waiters;
    h->waiters = NULL;
    h->scrape = NULL;
    for (struct hwaiter *w = waiters; w; w = w->next) {
        if (status < 0) {
            reply_text(w->req, 500, "Internal Server Error", "metrics collection failed");
            continue;
        }
        evhttp_add_header(evhttp_request_get_output_headers(w->req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        /* The last one takes the body; the others reference its memory. */
        struct evbuffer *b = body;
        if (w->next) {
            b = evbuffer_new();
            if (!b || evbuffer_add_buffer_reference(b, body) < 0) {
                if (b)
                    evbuffer_free(b);
                reply_text(w->req, 503, "Service Unavailable", "out of memory");
                continue;
            }
        }
        evhttp_send_reply(w->req, 200, "OK", b);
        if (b != body)
            evbuffer_free(b);
    }
    waiters_free(waiters);
}

static void handle_metrics(struct httpd *h, struct evhttp_request *req)
{
    struct hwaiter *w = calloc(1, sizeof(*w));
    if (!w) {
        reply_text(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    w->req = req;
    if (!h->scrape && metrics_scrape_start(h->m, scrape_done, h, &h->scrape) < 0) {
        free(w);
        reply_text(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    w->next = h->waiters;
    h->waiters = w;
}

static void handle_health(struct httpd *h, struct evhttp_request *req)
{
    char reason[256] = "not ready";
    if (!h->health || h->health(h->health_ctx, reason, sizeof(reason)))
        reply_text(req, 200, "OK", "ok");
    else
        reply_text(req, 503, "Service Unavailable", reason);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct httpd *h = arg;
    h->st.requests++;
    conn_mark(h, req, true);
    evhttp_request_set_on_complete_cb(req, response_done_cb, h);

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    bool is_metrics = path && strcmp(path, "/metrics") == 0;
    bool is_health = path && strcmp(path, "/health") == 0;
    if (!is_metrics && !is_health) {
        reply_text(req, 404, "Not Found", "not found: try /metrics or /health");
        return;
    }
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_text(req, 405, "Method Not Allowed", "method not allowed: use GET");
        return;
    }
    if (is_metrics)
        handle_metrics(h, req);
    else
        handle_health(h, req);
}

static int httpd_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    (void)cursor;
    const struct httpd *h = ctx;
    mw_family(w, "weir_http_connections", MW_GAUGE,
              "Open connections to metrics.listener (this scrape's included).");
    mw_sample(w, (double)h->st.connections, NULL);
    mw_family(w, "weir_http_requests_total", MW_COUNTER, "Requests received on metrics.listener.");
    mw_sample(w, (double)h->st.requests, NULL);
    mw_family(w, "weir_http_connections_closed_total", MW_COUNTER,
              "metrics.listener connections closed by the server: refused (over "
              "metrics.max.connections) or timed out (no whole request within "
              "metrics.request.timeout.ms).");
    mw_sample(w, (double)h->st.refused, "reason", "refused", NULL);
    mw_sample(w, (double)h->st.timed_out, "reason", "timeout", NULL);
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

int httpd_new(struct event_base *base, const struct httpd_settings *s, struct metrics *m,
              httpd_health_fn health, void *health_ctx, struct httpd **ret, char *err,
              size_t errlen)
{
    struct httpd *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->base = base;
    h->m = m;
    h->health = health;
    h->health_ctx = health_ctx;
    h->max_connections = s->max_connections > 0 ? s->max_connections : 1;
    h->timeout_us = (int64_t)s->request_timeout_ms * 1000;
    h->http = evhttp_new(base);
    h->sweep = evtimer_new(base, sweep_cb, h);
    if (!h->http || !h->sweep) {
        httpd_free(h);
        return -ENOMEM;
    }
    evhttp_set_max_headers_size(h->http, HTTPD_MAX_HEADER_BYTES);
    evhttp_set_max_body_size(h->http, HTTPD_MAX_BODY_BYTES);
    /* Every method reaches request_cb, so unknown ones get 405, not 501. */
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    /* evhttp's own timeout is an inactivity one: here it bounds a response
     * the client stopped reading. The per-request deadline, shorter, is ours. */
    int64_t idle_ms = 2 * (int64_t)s->request_timeout_ms;
    struct timeval tv = {(time_t)(idle_ms / 1000), (suseconds_t)(idle_ms % 1000) * 1000};
    evhttp_set_timeout_tv(h->http, &tv);
    evhttp_set_bevcb(h->http, bev_cb, h);
    evhttp_set_gencb(h->http, request_cb, h);
    h->bound = evhttp_bind_socket_with_handle(h->http, s->host, (ev_uint16_t)s->port);
    if (!h->bound) {
        int e = errno ? errno : EADDRINUSE;
        snprintf(err, errlen, "cannot listen on %s:%d for metrics.listener: %s", s->host, s->port,
                 strerror(e));
        httpd_free(h);
        return -e;
    }
    if (metrics_register(m, httpd_collect, h) < 0) {
        httpd_free(h);
        return -ENOMEM;
    }
    h->registered = true;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(h->bound);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            h->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    *ret = h;
    return 0;
}

void httpd_free(struct httpd *h)
{
    if (!h)
        return;
    metrics_scrape_cancel(h->scrape);
    waiters_free(h->waiters); /* evhttp_free() frees their requests */
    if (h->registered)
        metrics_unregister(h->m, httpd_collect, h);
    if (h->http)
        evhttp_free(h->http);
    for (size_t i = 0; i < h->n_conns; i++)
        bufferevent_decref(h->conns[i].bev);
    free(h->conns);
    if (h->sweep)
        event_free(h->sweep);
    free(h);
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_get_stats(const struct httpd *h, struct httpd_stats *ret)
{
    *ret = h->st;
}
