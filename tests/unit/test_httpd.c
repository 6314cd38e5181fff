/* Tests for common/httpd: metrics.listener parsing, and a real server on a
 * free port driven by raw sockets on the same event loop — paths, methods,
 * the connection limit and the per-request deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/httpd.h"
#include "common/metrics.h"

static const struct config_def defs[] = {HTTPD_CONFIG_DEFS};

static void test_listener_values(void **state)
{
    (void)state;
    struct config *c;
    assert_int_equal(config_new(defs, sizeof(defs) / sizeof(defs[0]), &c), 0);
    char err[256];
    struct httpd_settings s;
    assert_int_equal(httpd_settings_resolve(c, &s, err, sizeof(err)), 0);
    assert_false(s.enabled); /* off by default */
    assert_int_equal(s.max_connections, 64);
    assert_int_equal(s.request_timeout_ms, 10000);

    assert_int_equal(config_set(c, "metrics.listener", "127.0.0.1:9644", CONFIG_SOURCE_OVERRIDE,
                                err, sizeof(err)),
                     0);
    assert_int_equal(httpd_settings_resolve(c, &s, err, sizeof(err)), 0);
    assert_true(s.enabled);
    assert_string_equal(s.host, "127.0.0.1");
    assert_int_equal(s.port, 9644);
    assert_int_equal(
        config_set(c, "metrics.listener", "[::1]:0", CONFIG_SOURCE_OVERRIDE, err, sizeof(err)), 0);
    assert_int_equal(httpd_settings_resolve(c, &s, err, sizeof(err)), 0);
    assert_string_equal(s.host, "::1");
    assert_int_equal(s.port, 0);

    const char *bad[] = {"9644",     "host",     "host:",     ":9644",      "host:65536",
                         "host:12x", "a:b:9644", "[::1]9644", "bad host:1", NULL};
    for (size_t i = 0; bad[i]; i++) {
        err[0] = '\0';
        assert_int_equal(
            config_set(c, "metrics.listener", bad[i], CONFIG_SOURCE_OVERRIDE, err, sizeof(err)),
            -EINVAL);
        assert_non_null(strstr(err, "metrics.listener"));
    }
    config_free(c);
}

/* ---- a live server ------------------------------------------------------- */

struct srv {
    struct event_base *base;
    struct metrics *m;
    struct httpd *h;
    bool healthy;
};

static bool health(void *ctx, char *reason, size_t len)
{
    struct srv *s = ctx;
    if (!s->healthy)
        snprintf(reason, len, "not registered with the coordinator");
    return s->healthy;
}

static int one_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    (void)ctx;
    (void)cursor;
    mw_family(w, "weir_test_up", MW_GAUGE, "Up.");
    mw_sample(w, 1, NULL);
    return 0;
}

static void srv_start(struct srv *s, int max_conns, int timeout_ms)
{
    memset(s, 0, sizeof(*s));
    s->base = event_base_new();
    s->healthy = true;
    assert_int_equal(metrics_new(s->base, &s->m), 0);
    assert_int_equal(metrics_register(s->m, one_collect, NULL), 0);
    struct httpd_settings hs = {.host = "127.0.0.1",
                                .port = 0,
                                .enabled = true,
                                .max_connections = max_conns,
                                .request_timeout_ms = timeout_ms};
    char err[256];
    assert_int_equal(httpd_new(s->base, &hs, s->m, health, s, &s->h, err, sizeof(err)), 0);
    assert_true(httpd_port(s->h) > 0);
}

static void srv_stop(struct srv *s)
{
    httpd_free(s->h);
    metrics_free(s->m);
    event_base_free(s->base);
}

static int client(struct srv *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)httpd_port(s->h))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Runs the loop until @fd is closed by the server (returns what it read, and
 * *closed) or @ms pass. */
static char *pump(struct srv *s, int fd, int ms, bool *closed)
{
    static char buf[65536];
    size_t n = 0;
    *closed = false;
    int64_t end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end) {
        event_base_loop(s->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            *closed = true;
            break;
        }
        if (r > 0)
            n += (size_t)r;
        else
            usleep(1000);
    }
    buf[n] = '\0';
    return buf;
}

static char *request(struct srv *s, const char *req)
{
    int fd = client(s);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    bool closed;
    char *got = pump(s, fd, 2000, &closed);
    assert_true(closed); /* Connection: close */
    close(fd);
    return got;
}

static void test_paths_methods_and_health(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, 8, 2000);
    char *r = request(&s, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(r, "\r\n\r\nok\n"));
    s.healthy = false;
    r = request(&s, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 503", 12) == 0);
    assert_non_null(strstr(r, "\r\n\r\nnot registered with the coordinator\n"));
    r = request(&s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "# TYPE weir_test_up gauge\nweir_test_up 1\n"));
    assert_non_null(strstr(r, "weir_http_requests_total "));
    r = request(&s, "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 404", 12) == 0);
    r = request(&s, "PUT /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    "Content-Length: 0\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 405", 12) == 0);
    assert_non_null(strstr(r, "Allow: GET, HEAD"));
    srv_stop(&s);
}

static void test_slow_request_is_closed_at_the_deadline(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, 8, 300);
    int fd = client(&s);
    /* Half a request, then silence: closed after about 300 ms. */
    assert_int_equal(send(fd, "GET /heal", 9, 0), 9);
    int64_t t0 = clock_mono_ms();
    bool closed;
    char *got = pump(&s, fd, 3000, &closed);
    int64_t took = clock_mono_ms() - t0;
    assert_true(closed);
    assert_null(strstr(got, "200"));
    assert_true(took >= 250 && took < 1500);
    close(fd);
    struct httpd_stats st;
    httpd_get_stats(s.h, &st);
    assert_int_equal(st.timed_out, 1);
    srv_stop(&s);
}

static void test_connections_over_the_limit_are_closed(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, 3, 5000);
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = client(&s);
        bool closed;
        pump(&s, fds[i], 50, &closed);
    }
    /* The three over the limit are closed at once; the first three are not. */
    int n_closed = 0;
    for (int i = 0; i < 6; i++) {
        bool closed;
        pump(&s, fds[i], 300, &closed);
        if (closed)
            assert_true(i >= 3);
        n_closed += closed;
    }
    assert_int_equal(n_closed, 3);
    struct httpd_stats st;
    httpd_get_stats(s.h, &st);
    assert_int_equal(st.refused, 3);
    /* Closing them frees their slots for new connections. */
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    bool closed;
    int fd = client(&s);
    pump(&s, fd, 200, &closed);
    char *r = request(&s, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 200", 12) == 0);
    close(fd);
    srv_stop(&s);
}

static void test_port_in_use_is_an_error(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, 8, 1000);
    struct httpd_settings hs = {.host = "127.0.0.1",
                                .port = httpd_port(s.h),
                                .enabled = true,
                                .max_connections = 8,
                                .request_timeout_ms = 1000};
    struct httpd *h2 = NULL;
    char err[256] = "";
    assert_true(httpd_new(s.base, &hs, s.m, NULL, NULL, &h2, err, sizeof(err)) < 0);
    assert_null(h2);
    assert_non_null(strstr(err, "metrics.listener"));
    srv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_values),
        cmocka_unit_test(test_paths_methods_and_health),
        cmocka_unit_test(test_slow_request_is_closed_at_the_deadline),
        cmocka_unit_test(test_connections_over_the_limit_are_closed),
        cmocka_unit_test(test_port_in_use_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
