/* test_rpc: the RPC transport over real loopback sockets, one event_base driven by
 * the test — calls, pipelining, timeouts, pushes, hostile peers, reconnects, and
 * the lifetime rules (late replies, frees from inside callbacks). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/rpc_frame.h"
#include "rpctest.pb-c.h"

#define SVC         (&weir__rpctest__rpc_test__descriptor)
#define M_ECHO      0
#define M_HOLD      1
#define M_SUBSCRIBE 2
#define PUSH_EVENT  7
#define MAX_HELD    2048

/* ---- test server ------------------------------------------------------------- */

struct server_state {
    struct rpc_call *held[MAX_HELD]; /* NULL once answered */
    uint64_t held_seq[MAX_HELD];
    size_t nheld;
    struct rpc_conn *subs[8];
    size_t nsubs;
    int closes; /* close hooks run */
};

static void on_sub_close(struct rpc_conn *conn, void *ud)
{
    struct server_state *st = ud;
    st->closes++;
    assert_false(rpc_conn_is_open(conn));
}

static void handle_echo(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    const Weir__Rpctest__EchoRequest *req = (const Weir__Rpctest__EchoRequest *)msg;
    Weir__Rpctest__EchoResponse resp = WEIR__RPCTEST__ECHO_RESPONSE__INIT;
    resp.text = req->text;
    resp.seq = req->seq;
    resp.blob = req->blob;
    static uint8_t big[4096];
    if (strcmp(req->text, "big") == 0) {
        resp.blob.data = big;
        resp.blob.len = sizeof(big);
    }
    rpc_call_reply(call, &resp.base);
}

static void handle_hold(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct server_state *st = ud;
    assert_true(st->nheld < MAX_HELD);
    st->held_seq[st->nheld] = ((const Weir__Rpctest__EchoRequest *)msg)->seq;
    st->held[st->nheld++] = call;
}

static void handle_subscribe(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct server_state *st = ud;
    struct rpc_conn *conn = rpc_call_connection(call);
    assert_int_equal(rpc_conn_on_close(conn, on_sub_close, st), 0);
    st->subs[st->nsubs++] = rpc_conn_ref(conn);
    Weir__Rpctest__SubscribeResponse resp = WEIR__RPCTEST__SUBSCRIBE_RESPONSE__INIT;
    resp.accepted = (uint32_t)st->nsubs;
    assert_int_equal(rpc_call_reply(call, &resp.base), 0);
}

/* Answer held call @i with its request's seq. */
static int reply_held(struct server_state *st, size_t i)
{
    Weir__Rpctest__EchoResponse resp = WEIR__RPCTEST__ECHO_RESPONSE__INIT;
    resp.text = "held";
    resp.seq = st->held_seq[i];
    struct rpc_call *call = st->held[i];
    st->held[i] = NULL;
    return rpc_call_reply(call, &resp.base);
}

struct fixture {
    struct event_base *base;
    struct server_state st;
    struct rpc_server *srv;
    int port;
    FILE *log;
};

static void handlers_for(struct server_state *st, struct rpc_handler h[3])
{
    h[M_ECHO] = (struct rpc_handler){handle_echo, st};
    h[M_HOLD] = (struct rpc_handler){handle_hold, st};
    h[M_SUBSCRIBE] = (struct rpc_handler){handle_subscribe, st};
}

static void start_server(struct fixture *fx, int port, const struct rpc_server_options *opts)
{
    struct rpc_handler h[3];
    handlers_for(&fx->st, h);
    assert_int_equal(rpc_server_new(fx->base, "127.0.0.1", port, SVC, h, opts, &fx->srv), 0);
    fx->port = rpc_server_port(fx->srv);
    assert_true(fx->port > 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->base = event_base_new();
    fx->log = tmpfile();
    log_set_output(fx->log);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    rpc_server_free(fx->srv);
    /* Parked calls outlive everything; completing them only frees them. */
    for (size_t i = 0; i < fx->st.nheld; i++)
        if (fx->st.held[i])
            rpc_call_fail(fx->st.held[i], RPC_SHUTTING_DOWN, NULL);
    for (size_t i = 0; i < fx->st.nsubs; i++)
        rpc_conn_unref(fx->st.subs[i]);
    event_base_free(fx->base);
    log_set_output(NULL);
    fclose(fx->log);
    free(fx);
    return 0;
}

/* Everything logged so far. */
static char *log_text(struct fixture *fx)
{
    fflush(fx->log);
    long n = ftell(fx->log);
    char *s = calloc(1, (size_t)n + 1);
    rewind(fx->log);
    assert_int_equal(fread(s, 1, (size_t)n, fx->log), (size_t)n);
    fseek(fx->log, 0, SEEK_END);
    return s;
}

/* ---- driving the loop -------------------------------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until @pred holds or @timeout_ms passes. */
static bool run_until(struct fixture *fx, bool (*pred)(void *), void *ctx, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    struct event *tick = event_new(fx->base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 2000};
    event_add(tick, &tv);
    bool ok = true;
    while (!pred(ctx)) {
        if (clock_mono_ms() > deadline) {
            ok = false;
            break;
        }
        event_base_loop(fx->base, EVLOOP_ONCE);
    }
    event_free(tick);
    return ok;
}

static bool never(void *ctx)
{
    return false;
}

static void run_for(struct fixture *fx, int ms)
{
    run_until(fx, never, NULL, ms);
}

struct at_least {
    const int *v;
    int n;
};

static bool at_least_pred(void *ctx)
{
    struct at_least *a = ctx;
    return *a->v >= a->n;
}

static bool wait_count(struct fixture *fx, const int *v, int n, int timeout_ms)
{
    struct at_least a = {v, n};
    return run_until(fx, at_least_pred, &a, timeout_ms);
}

static bool wait_held(struct fixture *fx, size_t n, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (fx->st.nheld < n && clock_mono_ms() < deadline)
        run_for(fx, 5);
    return fx->st.nheld >= n;
}

/* ---- client side helpers ----------------------------------------------------- */

struct result {
    int done;
    int status;
    uint64_t seq;
    char text[64];
    char err[128];
    uint32_t accepted;
    size_t blob_len;
};

static void on_result(int status, const ProtobufCMessage *resp, const char *errmsg, void *ud)
{
    struct result *r = ud;
    r->done++;
    r->status = status;
    assert_non_null(errmsg);
    snprintf(r->err, sizeof(r->err), "%s", errmsg);
    if (status == RPC_OK) {
        assert_non_null(resp);
        if (resp->descriptor == &weir__rpctest__echo_response__descriptor) {
            const Weir__Rpctest__EchoResponse *e = (const Weir__Rpctest__EchoResponse *)resp;
            r->seq = e->seq;
            r->blob_len = e->blob.len;
            snprintf(r->text, sizeof(r->text), "%s", e->text);
        } else {
            assert_ptr_equal(resp->descriptor, &weir__rpctest__subscribe_response__descriptor);
            r->accepted = ((const Weir__Rpctest__SubscribeResponse *)resp)->accepted;
        }
    } else {
        assert_null(resp);
    }
}

static int call_echo(struct rpc_client *c, unsigned method, const char *text, uint64_t seq,
                     int timeout_ms, struct result *r)
{
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = (char *)text;
    req.seq = seq;
    return rpc_client_call(c, method, &req.base, timeout_ms, on_result, r);
}

struct client_events {
    int connects;
    int disconnects;
};

static void on_connect(struct rpc_client *c, void *ud)
{
    ((struct client_events *)ud)->connects++;
}

static void on_disconnect(struct rpc_client *c, void *ud)
{
    ((struct client_events *)ud)->disconnects++;
}

static struct rpc_client *new_client(struct fixture *fx, struct client_events *ev)
{
    struct rpc_client_options o = {
        .on_connect = on_connect,
        .on_disconnect = on_disconnect,
        .event_ud = ev,
        .backoff_initial_ms = 10,
        .backoff_max_ms = 80,
    };
    struct rpc_client *c;
    assert_int_equal(rpc_client_new(fx->base, "127.0.0.1", fx->port, SVC, &o, &c), 0);
    return c;
}

/* One echo round trip on @c; fails the test if it does not succeed. */
static void assert_echo_works(struct fixture *fx, struct rpc_client *c, uint64_t seq)
{
    struct result r = {0};
    assert_int_equal(call_echo(c, M_ECHO, "ping", seq, 2000, &r), 0);
    assert_true(wait_count(fx, &r.done, 1, 3000));
    assert_int_equal(r.status, RPC_OK);
    assert_true(r.seq == seq);
    assert_string_equal(r.text, "ping");
}

/* ---- raw sockets for hostile peers ------------------------------------------- */

static int raw_connect(int port, int *ret_local_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&local, &len), 0);
    *ret_local_port = ntohs(local.sin_port);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void raw_send(int fd, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN)
            continue;
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

struct raw_peer {
    int fd;
    uint8_t got[4096];
    size_t ngot;
    bool closed;
};

static bool raw_closed_pred(void *ctx)
{
    struct raw_peer *p = ctx;
    for (;;) {
        uint8_t buf[4096];
        ssize_t n = recv(p->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            size_t k = (size_t)n < sizeof(p->got) - p->ngot ? (size_t)n : sizeof(p->got) - p->ngot;
            memcpy(p->got + p->ngot, buf, k);
            p->ngot += k;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            p->closed = true; /* FIN, or RST when our bytes were left unread */
            return true;
        }
        return false;
    }
}

/* Drive the loop until the server closes the raw connection. */
static void raw_wait_closed(struct fixture *fx, struct raw_peer *p)
{
    assert_true(run_until(fx, raw_closed_pred, p, 3000));
}

static size_t frame_bytes(uint8_t *out, size_t cap, uint8_t kind, uint16_t method, uint64_t corr,
                          const void *payload, size_t n)
{
    buf_writer w;
    buf_writer_init_fixed(&w, out, cap);
    assert_int_equal(rpc_frame_write(&w, kind, method, corr, payload, n, RPC_FRAME_DEFAULT_MAX), 0);
    return w.len;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_call_gets_its_response(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    assert_false(rpc_client_is_connected(c)); /* connects from the loop, never inside _new */

    struct result r = {0};
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = "hello";
    req.seq = 77;
    req.blob.data = (uint8_t *)"\x00\x01\x02";
    req.blob.len = 3;
    assert_int_equal(rpc_client_call(c, M_ECHO, &req.base, 2000, on_result, &r), 0);
    assert_int_equal(r.done, 0); /* never called from inside rpc_client_call */
    assert_int_equal(rpc_client_pending(c), 1);
    assert_true(wait_count(fx, &r.done, 1, 3000));
    assert_int_equal(r.status, RPC_OK);
    assert_string_equal(r.text, "hello");
    assert_true(r.seq == 77);
    assert_int_equal(r.blob_len, 3);
    assert_int_equal(ev.connects, 1);
    assert_true(rpc_client_is_connected(c));
    assert_int_equal(rpc_client_pending(c), 0);
    assert_int_equal(rpc_server_conn_count(fx->srv), 1);
    rpc_client_free(c);
}

static void test_thousand_pipelined_calls_answered_out_of_order(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    static struct result results[1000];
    memset(results, 0, sizeof(results));
    for (int i = 0; i < 1000; i++) {
        Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
        req.text = "p";
        req.seq = (uint64_t)i;
        assert_int_equal(rpc_client_call(c, M_HOLD, &req.base, 10000, on_result, &results[i]), 0);
    }
    assert_true(wait_held(fx, 1000, 5000));
    /* All on one connection, all in flight at once. */
    assert_int_equal(rpc_server_conn_count(fx->srv), 1);
    assert_int_equal(rpc_client_pending(c), 1000);

    /* Answer in a scrambled order (389 is coprime with 1000, so i * 389 % 1000 is
     * a permutation), each with its own request's seq. */
    for (size_t k = 0; k < 1000; k++)
        assert_int_equal(reply_held(&fx->st, (k * 389) % 1000), 0);
    int64_t deadline = clock_mono_ms() + 5000;
    while (rpc_client_pending(c) > 0 && clock_mono_ms() < deadline)
        run_for(fx, 5);
    assert_int_equal(rpc_client_pending(c), 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(results[i].done, 1);
        assert_int_equal(results[i].status, RPC_OK);
        assert_true(results[i].seq == (uint64_t)i); /* matched by correlation id */
    }
    assert_int_equal(ev.disconnects, 0);
    rpc_client_free(c);
}

static void test_call_times_out_when_the_server_never_answers(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    assert_echo_works(fx, c, 1);

    struct result r = {0};
    int64_t t0 = clock_mono_ms();
    assert_int_equal(call_echo(c, M_HOLD, "slow", 5, 60, &r), 0);
    assert_true(wait_count(fx, &r.done, 1, 3000));
    int64_t took = clock_mono_ms() - t0;
    assert_int_equal(r.status, RPC_TIMEOUT);
    assert_true(took >= 55 && took < 2000);
    assert_int_equal(fx->st.nheld, 1);

    /* The late answer is dropped quietly; the callback is not run twice and the
     * connection keeps working. */
    assert_int_equal(reply_held(&fx->st, 0), 0);
    run_for(fx, 30);
    assert_int_equal(r.done, 1);
    assert_echo_works(fx, c, 2);
    assert_int_equal(ev.disconnects, 0);
    rpc_client_free(c);
}

struct pushes {
    uint64_t seqs[200];
    int n;
    bool in_order;
};

static void on_event_push(uint16_t type, const ProtobufCMessage *msg, void *ud)
{
    struct pushes *p = ud;
    assert_int_equal(type, PUSH_EVENT);
    assert_ptr_equal(msg->descriptor, &weir__rpctest__event__descriptor);
    const Weir__Rpctest__Event *e = (const Weir__Rpctest__Event *)msg;
    if (p->n < 200)
        p->seqs[p->n] = e->seq;
    p->n++;
}

static void test_server_pushes_arrive_in_order(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    struct pushes p = {0};
    assert_int_equal(
        rpc_client_on_push(c, PUSH_EVENT, &weir__rpctest__event__descriptor, on_event_push, &p), 0);
    struct result r = {0};
    Weir__Rpctest__SubscribeRequest sub = WEIR__RPCTEST__SUBSCRIBE_REQUEST__INIT;
    assert_int_equal(rpc_client_call(c, M_SUBSCRIBE, &sub.base, 2000, on_result, &r), 0);
    assert_true(wait_count(fx, &r.done, 1, 3000));
    assert_int_equal(r.status, RPC_OK);
    assert_int_equal(r.accepted, 1);
    assert_int_equal(fx->st.nsubs, 1);
    struct rpc_conn *conn = fx->st.subs[0];
    assert_true(rpc_conn_is_open(conn));
    assert_true(strncmp(rpc_conn_peer(conn), "127.0.0.1:", 10) == 0);

    for (uint64_t i = 0; i < 100; i++) {
        Weir__Rpctest__Event e = WEIR__RPCTEST__EVENT__INIT;
        e.seq = i;
        e.text = "change";
        assert_int_equal(rpc_conn_push(conn, PUSH_EVENT, &e.base), 0);
        /* A type the client never registered is dropped without harm. */
        if (i == 50)
            assert_int_equal(rpc_conn_push(conn, PUSH_EVENT + 1, &e.base), 0);
    }
    assert_true(wait_count(fx, &p.n, 100, 3000));
    assert_int_equal(p.n, 100);
    for (int i = 0; i < 100; i++)
        assert_true(p.seqs[i] == (uint64_t)i);
    assert_echo_works(fx, c, 3);

    /* Unregistering stops delivery. */
    assert_int_equal(rpc_client_on_push(c, PUSH_EVENT, NULL, NULL, NULL), 0);
    Weir__Rpctest__Event e = WEIR__RPCTEST__EVENT__INIT;
    assert_int_equal(rpc_conn_push(conn, PUSH_EVENT, &e.base), 0);
    assert_echo_works(fx, c, 4); /* the push was sent before this answer */
    assert_int_equal(p.n, 100);

    /* The subscriber's close hook runs when the client goes away. */
    rpc_client_free(c);
    assert_true(wait_count(fx, &fx->st.closes, 1, 3000));
    assert_false(rpc_conn_is_open(conn));
    assert_int_equal(rpc_conn_push(conn, PUSH_EVENT, &e.base), -ENOTCONN);
    assert_int_equal(rpc_conn_on_close(conn, on_sub_close, &fx->st), -ENOTCONN);
}

/* One hostile input on its own connection: the server must close that connection
 * (and log naming it) while the good client keeps being answered. */
static void hostile_case(struct fixture *fx, struct rpc_client *good, const void *bytes, size_t n,
                         bool close_after_send, const char *expect_log, int expect_status)
{
    static uint64_t seq = 1000;
    int local_port;
    struct raw_peer p = {.fd = raw_connect(fx->port, &local_port)};
    raw_send(p.fd, bytes, n);
    if (close_after_send) {
        close(p.fd);
        int64_t deadline = clock_mono_ms() + 3000;
        while (rpc_server_conn_count(fx->srv) > 1 && clock_mono_ms() < deadline)
            run_for(fx, 5);
    } else {
        raw_wait_closed(fx, &p);
        close(p.fd);
        /* The server said why, when it could. */
        if (expect_status >= 0) {
            struct rpc_frame f;
            size_t used;
            assert_int_equal(rpc_frame_decode(p.got, p.ngot, RPC_FRAME_DEFAULT_MAX, &f, &used), 0);
            assert_int_equal(f.kind, RPC_FRAME_ERROR);
            assert_true(f.corr == 4242);
            uint16_t status;
            const char *text;
            size_t tlen;
            assert_int_equal(rpc_frame_error_parse(&f, &status, &text, &tlen), 0);
            assert_int_equal(status, expect_status);
        }
        int64_t deadline = clock_mono_ms() + 3000;
        while (rpc_server_conn_count(fx->srv) > 1 && clock_mono_ms() < deadline)
            run_for(fx, 5);
    }
    assert_int_equal(rpc_server_conn_count(fx->srv), 1);
    if (expect_log) {
        /* One warning, naming the peer, saying why. */
        char who[64];
        snprintf(who, sizeof(who), "closing connection from 127.0.0.1:%d: ", local_port);
        char *log = log_text(fx);
        char *line = strstr(log, who);
        if (!line)
            fail_msg("log lacks \"%s\":\n%s", who, log);
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        if (!strstr(line, expect_log))
            fail_msg("log line lacks \"%s\": %s", expect_log, line);
        if (eol && strstr(eol + 1, who))
            fail_msg("connection %s logged twice", who);
        free(log);
    }
    assert_echo_works(fx, good, seq++);
}

static void test_malformed_input_closes_only_that_connection(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct client_events ev = {0};
    struct rpc_client *good = new_client(fx, &ev);
    assert_echo_works(fx, good, 1);

    /* Random bytes (the fixed seed makes the first word a length far over the cap). */
    uint8_t junk[4096];
    uint32_t x = 0x12345678;
    for (size_t i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 16);
    }
    junk[0] |= 0x40;
    hostile_case(fx, good, junk, sizeof(junk), false, "exceeds cap 16777216", -1);

    /* A 2 GiB length prefix. */
    uint8_t big[16] = {0x80, 0, 0, 0, RPC_FRAME_REQUEST};
    hostile_case(fx, good, big, sizeof(big), false,
                 "frame of 2147483648 bytes exceeds cap 16777216", -1);

    /* A length shorter than the header. */
    uint8_t tiny[8] = {0, 0, 0, 5, RPC_FRAME_REQUEST};
    hostile_case(fx, good, tiny, sizeof(tiny), false,
                 "frame of 5 bytes is shorter than the 11-byte header", -1);

    /* An unknown frame kind. */
    uint8_t frame[256];
    size_t n = frame_bytes(frame, sizeof(frame), 9, 0, 1, "xx", 2);
    hostile_case(fx, good, frame, n, false, "unknown frame kind 9", -1);

    /* A frame kind only servers send. */
    n = frame_bytes(frame, sizeof(frame), RPC_FRAME_RESPONSE, 0, 1, "", 0);
    hostile_case(fx, good, frame, n, false, "unexpected RESPONSE frame", -1);

    /* A truncated frame, then the peer goes away. */
    n = frame_bytes(frame, sizeof(frame), RPC_FRAME_REQUEST, M_ECHO, 1, "0123456789", 10);
    hostile_case(fx, good, frame, n - 4, true, NULL, -1);

    /* An unknown method: answered with UNKNOWN_METHOD, then closed. */
    n = frame_bytes(frame, sizeof(frame), RPC_FRAME_REQUEST, 99, 4242, "", 0);
    hostile_case(fx, good, frame, n, false, "unknown method 99", RPC_UNKNOWN_METHOD);

    /* A payload that does not decode as the method's request: field 1 claims 16
     * bytes, 2 follow. */
    n = frame_bytes(frame, sizeof(frame), RPC_FRAME_REQUEST, M_ECHO, 4242,
                    "\x0a\x10"
                    "ab",
                    4);
    hostile_case(fx, good, frame, n, false, "does not decode", RPC_BAD_REQUEST);

    /* A good frame followed by garbage on the same connection: the good request is
     * still answered before the close. */
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = "first";
    buf_writer w;
    buf_writer_init_fixed(&w, frame, sizeof(frame));
    assert_int_equal(
        rpc_frame_write_msg(&w, RPC_FRAME_REQUEST, M_ECHO, 4242, &req.base, RPC_FRAME_DEFAULT_MAX),
        0);
    buf_write_raw(&w, big, sizeof(big));
    int local_port;
    struct raw_peer p = {.fd = raw_connect(fx->port, &local_port)};
    raw_send(p.fd, w.data, w.len);
    raw_wait_closed(fx, &p);
    close(p.fd);
    struct rpc_frame f;
    size_t used;
    assert_int_equal(rpc_frame_decode(p.got, p.ngot, RPC_FRAME_DEFAULT_MAX, &f, &used), 0);
    assert_int_equal(f.kind, RPC_FRAME_RESPONSE);
    assert_true(f.corr == 4242);

    assert_int_equal(ev.disconnects, 0);
    assert_int_equal(ev.connects, 1);
    assert_echo_works(fx, good, 2);
    rpc_client_free(good);
}

static void test_client_reconnects_after_the_server_restarts(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    int port = fx->port;
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    assert_echo_works(fx, c, 1);
    assert_int_equal(ev.connects, 1);

    /* A call in flight when the server goes away fails with DISCONNECTED. */
    struct result inflight = {0};
    assert_int_equal(call_echo(c, M_HOLD, "x", 2, 5000, &inflight), 0);
    assert_true(wait_held(fx, 1, 3000));
    rpc_server_free(fx->srv);
    fx->srv = NULL;
    assert_true(wait_count(fx, &inflight.done, 1, 3000));
    assert_int_equal(inflight.status, RPC_DISCONNECTED);
    assert_int_equal(ev.disconnects, 1);
    assert_false(rpc_client_is_connected(c));

    /* The handler answers after its connection (and server) are gone: dropped. */
    assert_int_equal(reply_held(&fx->st, 0), -ENOTCONN);
    fx->st.nheld = 0;

    /* Calls made during the outage wait: one gives up at its timeout, the other
     * is sent once the server is back. */
    struct result short_wait = {0}, long_wait = {0};
    assert_int_equal(call_echo(c, M_HOLD, "short", 3, 80, &short_wait), 0);
    assert_int_equal(call_echo(c, M_ECHO, "long", 4, 5000, &long_wait), 0);
    assert_true(wait_count(fx, &short_wait.done, 1, 3000));
    assert_int_equal(short_wait.status, RPC_TIMEOUT);
    run_for(fx, 150); /* several refused reconnects */
    assert_int_equal(long_wait.done, 0);

    start_server(fx, port, NULL);
    assert_int_equal(fx->port, port);
    assert_true(wait_count(fx, &long_wait.done, 1, 3000));
    assert_int_equal(long_wait.status, RPC_OK);
    assert_string_equal(long_wait.text, "long");
    assert_int_equal(ev.connects, 2);
    assert_int_equal(ev.disconnects, 1);
    /* The timed-out call never reached the new server. */
    assert_int_equal(fx->st.nheld, 0);
    assert_echo_works(fx, c, 5);
    rpc_client_free(c);
}

static void test_reply_after_the_connection_closed_is_safe(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    struct result r[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_echo(c, M_HOLD, "held", (uint64_t)i, 5000, &r[i]), 0);
    assert_true(wait_held(fx, 3, 3000));
    struct rpc_conn *conn = rpc_conn_ref(rpc_call_connection(fx->st.held[0]));
    assert_int_equal(rpc_call_method(fx->st.held[0]), M_HOLD);

    /* Freeing the client completes its pending calls with SHUTTING_DOWN. */
    rpc_client_free(c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].status, RPC_SHUTTING_DOWN);
    }
    int64_t deadline = clock_mono_ms() + 3000;
    while (rpc_conn_is_open(conn) && clock_mono_ms() < deadline)
        run_for(fx, 5);
    assert_false(rpc_conn_is_open(conn));
    assert_int_equal(rpc_server_conn_count(fx->srv), 0);

    /* Completing the orphaned calls only frees them (ASan checks the rest). */
    assert_int_equal(reply_held(&fx->st, 0), -ENOTCONN);
    assert_int_equal(rpc_call_fail(fx->st.held[1], RPC_INTERNAL, "late"), -ENOTCONN);
    fx->st.held[1] = NULL;
    /* Even after the server is gone. */
    rpc_server_free(fx->srv);
    fx->srv = NULL;
    assert_int_equal(reply_held(&fx->st, 2), -ENOTCONN);
    /* The connection object outlives its socket while referenced. */
    assert_true(strncmp(rpc_conn_peer(conn), "127.0.0.1:", 10) == 0);
    assert_int_equal(
        rpc_conn_push(conn, PUSH_EVENT, &(Weir__Rpctest__Event)WEIR__RPCTEST__EVENT__INIT.base),
        -ENOTCONN);
    rpc_conn_unref(conn);
}

struct free_in_cb {
    struct rpc_client *c;
    int calls;
    int statuses[4];
};

static void free_client_cb(int status, const ProtobufCMessage *resp, const char *errmsg, void *ud)
{
    struct free_in_cb *f = ud;
    f->statuses[f->calls++] = status;
    /* The other pending calls complete (SHUTTING_DOWN) from inside this free. */
    if (f->calls == 1)
        rpc_client_free(f->c);
}

static void test_client_may_be_freed_from_inside_a_callback(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct client_events ev = {0};
    struct free_in_cb f = {0};
    f.c = new_client(fx, &ev);
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = "a";
    assert_int_equal(rpc_client_call(f.c, M_ECHO, &req.base, 2000, free_client_cb, &f), 0);
    assert_int_equal(rpc_client_call(f.c, M_HOLD, &req.base, 2000, free_client_cb, &f), 0);
    assert_int_equal(rpc_client_call(f.c, M_HOLD, &req.base, -1, free_client_cb, &f), 0);
    assert_true(wait_count(fx, &f.calls, 3, 3000));
    run_for(fx, 20);
    assert_int_equal(f.calls, 3);
    assert_int_equal(f.statuses[0], RPC_OK);
    assert_int_equal(f.statuses[1], RPC_SHUTTING_DOWN);
    assert_int_equal(f.statuses[2], RPC_SHUTTING_DOWN);
}

static void refuse_cb(int status, const ProtobufCMessage *resp, const char *errmsg, void *ud)
{
    struct free_in_cb *f = ud;
    f->statuses[f->calls++] = status;
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = "again";
    assert_int_equal(rpc_client_call(f->c, M_ECHO, &req.base, 100, refuse_cb, f), -ESHUTDOWN);
}

static void test_client_free_fails_queued_calls_with_shutting_down(void **state)
{
    struct fixture *fx = *state;
    /* Nobody listens on this port: calls stay queued. */
    start_server(fx, 0, NULL);
    int port = fx->port;
    rpc_server_free(fx->srv);
    fx->srv = NULL;
    struct rpc_client *c;
    assert_int_equal(rpc_client_new(fx->base, "127.0.0.1", port, SVC, NULL, &c), 0);
    struct free_in_cb f = {.c = c};
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = "q";
    assert_int_equal(rpc_client_call(c, M_ECHO, &req.base, 0, refuse_cb, &f), 0);
    assert_int_equal(rpc_client_call(c, M_ECHO, &req.base, -1, refuse_cb, &f), 0);
    run_for(fx, 30);
    assert_int_equal(f.calls, 0);
    assert_false(rpc_client_is_connected(c));
    rpc_client_free(c);
    assert_int_equal(f.calls, 2);
    assert_int_equal(f.statuses[0], RPC_SHUTTING_DOWN);
    assert_int_equal(f.statuses[1], RPC_SHUTTING_DOWN);
    rpc_client_free(NULL);
}

static void test_call_rejects_bad_arguments_without_calling_back(void **state)
{
    struct fixture *fx = *state;
    start_server(fx, 0, NULL);
    struct rpc_client_options o = {.max_frame_bytes = 64, .max_pending_calls = 2};
    struct rpc_client *c;
    assert_int_equal(rpc_client_new(fx->base, "127.0.0.1", fx->port, SVC, &o, &c), 0);
    struct result r = {0};
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = "x";
    assert_int_equal(rpc_client_call(c, 3, &req.base, 100, on_result, &r), -EINVAL);
    Weir__Rpctest__SubscribeRequest sub = WEIR__RPCTEST__SUBSCRIBE_REQUEST__INIT;
    assert_int_equal(rpc_client_call(c, M_ECHO, &sub.base, 100, on_result, &r), -EINVAL);
    uint8_t blob[100] = {0};
    req.blob.data = blob;
    req.blob.len = sizeof(blob);
    assert_int_equal(rpc_client_call(c, M_ECHO, &req.base, 100, on_result, &r), -EMSGSIZE);
    req.blob.len = 0;
    assert_int_equal(rpc_client_call(c, M_HOLD, &req.base, 5000, on_result, &r), 0);
    assert_int_equal(rpc_client_call(c, M_HOLD, &req.base, 5000, on_result, &r), 0);
    assert_int_equal(rpc_client_call(c, M_HOLD, &req.base, 5000, on_result, &r), -ENOBUFS);
    assert_int_equal(r.done, 0);
    rpc_client_free(c);
    assert_int_equal(r.done, 2);

    struct rpc_handler h[3];
    handlers_for(&fx->st, h);
    struct rpc_server *s;
    assert_int_equal(rpc_client_new(fx->base, "127.0.0.1", 0, SVC, NULL, &c), -EINVAL);
    struct rpc_server_options so = {.max_frame_bytes = 5};
    assert_int_equal(rpc_server_new(fx->base, "127.0.0.1", 0, SVC, h, &so, &s), -EINVAL);
    /* The port is taken. */
    assert_int_equal(rpc_server_new(fx->base, "127.0.0.1", fx->port, SVC, h, NULL, &s),
                     -EADDRINUSE);
}

static void test_unimplemented_method_fails_the_call_not_the_connection(void **state)
{
    struct fixture *fx = *state;
    struct rpc_handler h[3];
    handlers_for(&fx->st, h);
    h[M_SUBSCRIBE].fn = NULL;
    assert_int_equal(rpc_server_new(fx->base, "127.0.0.1", 0, SVC, h, NULL, &fx->srv), 0);
    fx->port = rpc_server_port(fx->srv);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    struct result r = {0};
    Weir__Rpctest__SubscribeRequest sub = WEIR__RPCTEST__SUBSCRIBE_REQUEST__INIT;
    assert_int_equal(rpc_client_call(c, M_SUBSCRIBE, &sub.base, 2000, on_result, &r), 0);
    assert_true(wait_count(fx, &r.done, 1, 3000));
    assert_int_equal(r.status, RPC_UNKNOWN_METHOD);
    assert_string_equal(r.err, "method not implemented");
    assert_echo_works(fx, c, 1);
    assert_int_equal(ev.disconnects, 0);
    rpc_client_free(c);
}

static void test_response_over_the_frame_cap_becomes_internal_error(void **state)
{
    struct fixture *fx = *state;
    struct rpc_server_options so = {.max_frame_bytes = 1024};
    start_server(fx, 0, &so);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    struct result r = {0};
    assert_int_equal(call_echo(c, M_ECHO, "big", 1, 2000, &r), 0);
    assert_true(wait_count(fx, &r.done, 1, 3000));
    assert_int_equal(r.status, RPC_INTERNAL);
    assert_non_null(strstr(r.err, "exceeds the frame cap"));
    assert_echo_works(fx, c, 2);
    rpc_client_free(c);
}

static void test_in_flight_limit_pauses_reading_until_calls_complete(void **state)
{
    struct fixture *fx = *state;
    struct rpc_server_options so = {.max_in_flight = 4};
    start_server(fx, 0, &so);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    struct result r[10] = {{0}};
    for (int i = 0; i < 10; i++)
        assert_int_equal(call_echo(c, M_HOLD, "h", (uint64_t)i, 5000, &r[i]), 0);
    assert_true(wait_held(fx, 4, 3000));
    run_for(fx, 50);
    assert_int_equal(fx->st.nheld, 4); /* the other six wait in the socket */

    /* Each completion lets exactly one more in. */
    size_t answered = 0;
    int64_t deadline = clock_mono_ms() + 5000;
    while (answered < 10 && clock_mono_ms() < deadline) {
        if (answered < fx->st.nheld) {
            assert_true(fx->st.nheld - answered <= 4);
            assert_int_equal(reply_held(&fx->st, answered), 0);
            answered++;
        }
        run_for(fx, 2);
    }
    assert_int_equal(answered, 10);
    int done = 0;
    deadline = clock_mono_ms() + 3000;
    while (done < 10 && clock_mono_ms() < deadline) {
        run_for(fx, 5);
        done = 0;
        for (int i = 0; i < 10; i++)
            done += r[i].done;
    }
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].status, RPC_OK);
    }
    rpc_client_free(c);
}

static void test_subscriber_that_stops_reading_is_closed_at_the_output_cap(void **state)
{
    struct fixture *fx = *state;
    struct rpc_server_options so = {.max_output_bytes = 64 * 1024};
    start_server(fx, 0, &so);
    /* Subscribe from a raw socket that then never reads. */
    uint8_t frame[64];
    buf_writer w;
    buf_writer_init_fixed(&w, frame, sizeof(frame));
    Weir__Rpctest__SubscribeRequest sub = WEIR__RPCTEST__SUBSCRIBE_REQUEST__INIT;
    assert_int_equal(rpc_frame_write_msg(&w, RPC_FRAME_REQUEST, M_SUBSCRIBE, 1, &sub.base, 1024),
                     0);
    int local_port;
    int fd = raw_connect(fx->port, &local_port);
    raw_send(fd, w.data, w.len);
    int64_t deadline = clock_mono_ms() + 3000;
    while (fx->st.nsubs == 0 && clock_mono_ms() < deadline)
        run_for(fx, 5);
    assert_int_equal(fx->st.nsubs, 1);
    struct rpc_conn *conn = fx->st.subs[0];

    /* Without the loop running nothing drains: the cap must stop the growth. */
    static char text[1000];
    memset(text, 'e', sizeof(text) - 1);
    Weir__Rpctest__Event e = WEIR__RPCTEST__EVENT__INIT;
    e.text = text;
    int r = 0, pushed = 0;
    while ((r = rpc_conn_push(conn, PUSH_EVENT, &e.base)) == 0)
        pushed++;
    assert_int_equal(r, -ENOBUFS);
    assert_true(pushed >= 60 && pushed <= 66);
    assert_false(rpc_conn_is_open(conn));
    assert_int_equal(fx->st.closes, 1);
    assert_int_equal(rpc_conn_push(conn, PUSH_EVENT, &e.base), -ENOTCONN);
    char *log = log_text(fx);
    assert_non_null(strstr(log, "exceed cap 65536"));
    free(log);
    close(fd);
}

static void test_idle_connection_is_closed(void **state)
{
    struct fixture *fx = *state;
    struct rpc_server_options so = {.idle_timeout_ms = 60};
    start_server(fx, 0, &so);
    int local_port;
    struct raw_peer p = {.fd = raw_connect(fx->port, &local_port)};
    int64_t t0 = clock_mono_ms();
    raw_wait_closed(fx, &p);
    assert_true(clock_mono_ms() - t0 >= 50);
    close(p.fd);

    /* A connection whose call is still in flight is not idle. */
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    struct result r = {0};
    assert_int_equal(call_echo(c, M_HOLD, "wait", 1, 5000, &r), 0);
    assert_true(wait_held(fx, 1, 3000));
    run_for(fx, 200);
    assert_int_equal(ev.disconnects, 0);
    assert_int_equal(reply_held(&fx->st, 0), 0);
    assert_true(wait_count(fx, &r.done, 1, 3000));
    assert_int_equal(r.status, RPC_OK);
    rpc_client_free(c);
}

/* A fake server on a raw socket, to feed the client what a real one never sends. */
struct fake_server {
    int lfd;
    int fd;
    uint8_t in[4096];
    size_t nin;
};

static int fake_listen(struct fake_server *fs)
{
    fs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fs->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fs->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fs->lfd, 8), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fs->lfd, (struct sockaddr *)&sa, &len), 0);
    fs->fd = -1;
    return ntohs(sa.sin_port);
}

static bool fake_accepted(void *ctx)
{
    struct fake_server *fs = ctx;
    fs->fd = accept4(fs->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fs->fd >= 0;
}

static bool fake_got_frame(void *ctx)
{
    struct fake_server *fs = ctx;
    ssize_t n = recv(fs->fd, fs->in + fs->nin, sizeof(fs->in) - fs->nin, 0);
    if (n > 0)
        fs->nin += (size_t)n;
    size_t total;
    return rpc_frame_peek(fs->in, fs->nin, RPC_FRAME_DEFAULT_MAX, &total) == 0 && fs->nin >= total;
}

/* Wait for the client's next request and return its correlation id. */
static uint64_t fake_next_request(struct fixture *fx, struct fake_server *fs)
{
    assert_true(run_until(fx, fake_got_frame, fs, 3000));
    struct rpc_frame f;
    size_t used;
    assert_int_equal(rpc_frame_decode(fs->in, fs->nin, RPC_FRAME_DEFAULT_MAX, &f, &used), 0);
    assert_int_equal(f.kind, RPC_FRAME_REQUEST);
    uint64_t corr = f.corr;
    memmove(fs->in, fs->in + used, fs->nin - used);
    fs->nin -= used;
    return corr;
}

static void test_client_survives_a_misbehaving_server(void **state)
{
    struct fixture *fx = *state;
    struct fake_server fs = {0};
    fx->port = fake_listen(&fs);
    struct client_events ev = {0};
    struct rpc_client *c = new_client(fx, &ev);
    assert_true(run_until(fx, fake_accepted, &fs, 3000));

    /* Answers to calls nobody made and pushes nobody asked for are dropped; a
     * response that does not decode fails only its call. */
    struct result r1 = {0};
    assert_int_equal(call_echo(c, M_ECHO, "one", 1, 3000, &r1), 0);
    uint64_t corr = fake_next_request(fx, &fs);
    uint8_t frame[256];
    size_t n = frame_bytes(frame, sizeof(frame), RPC_FRAME_RESPONSE, M_ECHO, corr + 100, "", 0);
    raw_send(fs.fd, frame, n);
    n = frame_bytes(frame, sizeof(frame), RPC_FRAME_PUSH, 3, 0, "zz", 2);
    raw_send(fs.fd, frame, n);
    n = frame_bytes(frame, sizeof(frame), RPC_FRAME_RESPONSE, M_ECHO, corr,
                    "\x0a\x10"
                    "ab",
                    4);
    raw_send(fs.fd, frame, n);
    assert_true(wait_count(fx, &r1.done, 1, 3000));
    assert_int_equal(r1.status, RPC_BAD_RESPONSE);
    assert_true(rpc_client_is_connected(c));

    /* An ERROR frame claiming OK cannot deliver a response: INTERNAL, with text. */
    struct result r2 = {0};
    assert_int_equal(call_echo(c, M_ECHO, "two", 2, 3000, &r2), 0);
    corr = fake_next_request(fx, &fs);
    buf_writer w;
    buf_writer_init_fixed(&w, frame, sizeof(frame));
    assert_int_equal(rpc_frame_write_error(&w, M_ECHO, corr, RPC_OK, "odd", RPC_FRAME_DEFAULT_MAX),
                     0);
    raw_send(fs.fd, w.data, w.len);
    assert_true(wait_count(fx, &r2.done, 1, 3000));
    assert_int_equal(r2.status, RPC_INTERNAL);
    assert_string_equal(r2.err, "odd");
    assert_int_equal(ev.disconnects, 0);

    /* A 2 GiB length prefix: the client drops the connection, fails the call in
     * flight, logs naming the server, and reconnects. */
    struct result r3 = {0};
    assert_int_equal(call_echo(c, M_ECHO, "three", 3, 3000, &r3), 0);
    fake_next_request(fx, &fs);
    uint8_t big[16] = {0x80, 0, 0, 0, RPC_FRAME_RESPONSE};
    raw_send(fs.fd, big, sizeof(big));
    assert_true(wait_count(fx, &r3.done, 1, 3000));
    assert_int_equal(r3.status, RPC_DISCONNECTED);
    assert_int_equal(ev.disconnects, 1);
    char want[160];
    snprintf(want, sizeof(want),
             "closing connection to 127.0.0.1:%d: frame of 2147483648 bytes exceeds cap 16777216",
             fx->port);
    char *log = log_text(fx);
    if (!strstr(log, want))
        fail_msg("log lacks \"%s\":\n%s", want, log);
    free(log);
    close(fs.fd);
    assert_true(run_until(fx, fake_accepted, &fs, 3000));
    assert_true(wait_count(fx, &ev.connects, 2, 3000));

    /* A REQUEST from a server is a protocol error too. */
    fs.nin = 0;
    n = frame_bytes(frame, sizeof(frame), RPC_FRAME_REQUEST, M_ECHO, 1, "", 0);
    raw_send(fs.fd, frame, n);
    assert_true(wait_count(fx, &ev.disconnects, 2, 3000));
    log = log_text(fx);
    assert_non_null(strstr(log, "unexpected REQUEST frame from a server"));
    free(log);
    rpc_client_free(c);
    close(fs.fd);
    close(fs.lfd);
}

static void test_frame_write_msg_round_trips_a_protobuf(void **state)
{
    Weir__Rpctest__EchoRequest req = WEIR__RPCTEST__ECHO_REQUEST__INIT;
    req.text = "round trip";
    req.seq = 1ull << 40;
    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(
        rpc_frame_write_msg(&w, RPC_FRAME_REQUEST, M_ECHO, 9, &req.base, RPC_FRAME_DEFAULT_MAX), 0);
    struct rpc_frame f;
    size_t used;
    assert_int_equal(rpc_frame_decode(w.data, w.len, RPC_FRAME_DEFAULT_MAX, &f, &used), 0);
    assert_int_equal(used, w.len);
    Weir__Rpctest__EchoRequest *back =
        weir__rpctest__echo_request__unpack(NULL, f.payload_len, f.payload);
    assert_non_null(back);
    assert_string_equal(back->text, "round trip");
    assert_true(back->seq == 1ull << 40);
    weir__rpctest__echo_request__free_unpacked(back, NULL);
    /* Over the cap: nothing written. */
    size_t len = w.len;
    assert_int_equal(rpc_frame_write_msg(&w, RPC_FRAME_REQUEST, M_ECHO, 9, &req.base, 12),
                     -EMSGSIZE);
    assert_int_equal(w.len, len);
    buf_writer_deinit(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_write_msg_round_trips_a_protobuf),
        cmocka_unit_test_setup_teardown(test_call_gets_its_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thousand_pipelined_calls_answered_out_of_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_call_times_out_when_the_server_never_answers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_pushes_arrive_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_input_closes_only_that_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_reconnects_after_the_server_restarts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reply_after_the_connection_closed_is_safe, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_may_be_freed_from_inside_a_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_free_fails_queued_calls_with_shutting_down,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_rejects_bad_arguments_without_calling_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unimplemented_method_fails_the_call_not_the_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_over_the_frame_cap_becomes_internal_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_limit_pauses_reading_until_calls_complete,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_subscriber_that_stops_reading_is_closed_at_the_output_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_survives_a_misbehaving_server, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
