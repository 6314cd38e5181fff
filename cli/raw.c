/* raw: Kafka requests over a plain socket with the generated codec. */
#include "cli/raw.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "broker/kafka/kafka_codec.h"
#include "cli/cli.h"
#include "common/arena.h"
#include "common/buf.h"

#define RAW_MAX_RESPONSE (64u << 20)

struct raw_conn {
    int fd;
    int timeout_ms;
    int32_t corr;
    char addr[256];
    uint8_t *rbuf; /* the last response; decoded structs borrow from it */
    struct arena arena;
};

/* Connect with a timeout; 0 or -errno. */
static int connect_one(const char *host, const char *port, int timeout_ms, int *ret_fd)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai)
        return -EHOSTUNREACH;
    int err = -ECONNREFUSED;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            r = poll(&p, 1, timeout_ms);
            if (r == 0) {
                errno = ETIMEDOUT;
                r = -1;
            } else if (r > 0) {
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                errno = soerr;
                r = soerr ? -1 : 0;
            }
        }
        if (r == 0) {
            fcntl(fd, F_SETFL, fl);
            freeaddrinfo(res);
            *ret_fd = fd;
            return 0;
        }
        err = -errno;
        close(fd);
    }
    freeaddrinfo(res);
    return err;
}

int raw_open(const struct cli *c, struct raw_conn **ret)
{
    char *list = strdup(c->brokers), *save = NULL, tried[512] = "";
    int err = -EINVAL;
    if (!list)
        return -ENOMEM;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        const char *hp = strstr(tok, "://") ? strstr(tok, "://") + 3 : tok;
        char host[256];
        const char *colon = strrchr(hp, ':');
        const char *port = colon ? colon + 1 : "9092";
        size_t hl = colon ? (size_t)(colon - hp) : strlen(hp);
        if (hl >= sizeof(host))
            hl = sizeof(host) - 1;
        memcpy(host, hp, hl);
        host[hl] = 0;
        if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = 0;
        }
        int fd;
        err = connect_one(host, port, 5000, &fd);
        if (err == 0) {
            struct raw_conn *rc = calloc(1, sizeof(*rc));
            if (!rc) {
                close(fd);
                free(list);
                return -ENOMEM;
            }
            rc->fd = fd;
            rc->timeout_ms = c->timeout_ms;
            snprintf(rc->addr, sizeof(rc->addr), "%s", hp);
            arena_init(&rc->arena, 16384, RAW_MAX_RESPONSE);
            free(list);
            *ret = rc;
            return 0;
        }
        size_t tl = strlen(tried);
        snprintf(tried + tl, sizeof(tried) - tl, "%s%s: %s", tl ? ", " : "", hp, strerror(-err));
    }
    free(list);
    cli_err("cannot connect to any bootstrap server (%s)", tried[0] ? tried : "none given");
    return err;
}

int raw_open_addr(const struct cli *c, const char *host, int port, struct raw_conn **ret)
{
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    int fd;
    int err = connect_one(host, ps, 5000, &fd);
    if (err) {
        cli_err("cannot connect to %s:%d: %s", host, port, strerror(-err));
        return err;
    }
    struct raw_conn *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        close(fd);
        return -ENOMEM;
    }
    rc->fd = fd;
    rc->timeout_ms = c->timeout_ms;
    snprintf(rc->addr, sizeof(rc->addr), "%s:%d", host, port);
    arena_init(&rc->arena, 16384, RAW_MAX_RESPONSE);
    *ret = rc;
    return 0;
}

void raw_close(struct raw_conn *rc)
{
    if (!rc)
        return;
    close(rc->fd);
    free(rc->rbuf);
    arena_deinit(&rc->arena);
    free(rc);
}

static int io_full(struct raw_conn *rc, void *p, size_t n, bool wr)
{
    uint8_t *b = p;
    while (n) {
        struct pollfd pf = {.fd = rc->fd, .events = wr ? POLLOUT : POLLIN};
        int pr = poll(&pf, 1, rc->timeout_ms);
        if (pr == 0)
            return -ETIMEDOUT;
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        ssize_t r = wr ? send(rc->fd, b, n, MSG_NOSIGNAL) : recv(rc->fd, b, n, 0);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int raw_call(struct raw_conn *rc, int16_t api_key, int16_t version, const void *req,
             void *ret_resp)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    const char *name = api ? api->name : "request";
    buf_writer w;
    buf_writer_init(&w);
    buf_write_i32(&w, 0); /* size, patched below */
    struct kafka_request_header h = {
        .api_key = api_key,
        .api_version = version,
        .correlation_id = ++rc->corr,
        .client_id = {(const uint8_t *)"weir", 4},
    };
    int r = kafka_request_header_encode(&w, &h);
    if (r == 0)
        r = kafka_request_encode(&w, api_key, version, req);
    if (r == 0)
        r = buf_writer_error(&w);
    if (r < 0) {
        cli_err("%s v%d: cannot encode the request: %s", name, version, strerror(-r));
        buf_writer_deinit(&w);
        return r;
    }
    uint32_t size = (uint32_t)(w.len - 4);
    w.data[0] = (uint8_t)(size >> 24);
    w.data[1] = (uint8_t)(size >> 16);
    w.data[2] = (uint8_t)(size >> 8);
    w.data[3] = (uint8_t)size;
    r = io_full(rc, w.data, w.len, true);
    buf_writer_deinit(&w);
    uint8_t szb[4];
    if (r == 0)
        r = io_full(rc, szb, 4, false);
    if (r < 0) {
        cli_err("%s to %s: %s", name, rc->addr, strerror(-r));
        return r;
    }
    uint32_t rlen = (uint32_t)szb[0] << 24 | (uint32_t)szb[1] << 16 | (uint32_t)szb[2] << 8 | szb[3];
    if (rlen > RAW_MAX_RESPONSE) {
        cli_err("%s from %s: response of %u bytes is over the %u-byte cap", name, rc->addr, rlen,
                RAW_MAX_RESPONSE);
        return -EMSGSIZE;
    }
    free(rc->rbuf);
    rc->rbuf = malloc(rlen ? rlen : 1);
    if (!rc->rbuf)
        return -ENOMEM;
    r = io_full(rc, rc->rbuf, rlen, false);
    if (r < 0) {
        cli_err("%s from %s: %s", name, rc->addr, strerror(-r));
        return r;
    }
    buf_reader rd;
    buf_reader_init(&rd, rc->rbuf, rlen);
    int32_t corr;
    arena_reset(&rc->arena);
    r = kafka_response_header_decode(&rd, api_key, version, &corr);
    if (r == 0 && corr != rc->corr) {
        cli_err("%s from %s: the response is for request %d, not %d", name, rc->addr, corr,
                rc->corr);
        return -EPROTO;
    }
    if (r == 0)
        r = kafka_response_decode(&rd, api_key, version, &rc->arena, ret_resp);
    if (r < 0)
        cli_err("%s from %s: malformed response: %s", name, rc->addr, strerror(-r));
    return r;
}

int raw_metadata(struct raw_conn *rc, const char *const *topics, int n,
                 struct kafka_metadata_response *ret)
{
    struct kafka_metadata_request m;
    kafka_metadata_request_init(&m);
    struct kafka_metadata_request_topic *ts = NULL;
    if (topics) {
        ts = calloc((size_t)n + 1, sizeof(*ts));
        if (!ts)
            return -ENOMEM;
        for (int i = 0; i < n; i++) {
            ts[i].name.ptr = (const uint8_t *)topics[i];
            ts[i].name.len = (int32_t)strlen(topics[i]);
        }
        m.n_topics = n;
        m.topics = ts;
    } else {
        m.n_topics = -1;
    }
    m.allow_auto_topic_creation = false;
    int r = raw_call(rc, KAFKA_API_METADATA, 9, &m, ret);
    free(ts);
    return r;
}

const char *raw_str(buf_slice s)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ & 7];
    size_t n = s.len < 0 ? 0 : (size_t)s.len;
    if (n >= sizeof(bufs[0]))
        n = sizeof(bufs[0]) - 1;
    if (s.len > 0)
        memcpy(b, s.ptr, n);
    b[n] = 0;
    return b;
}

bool raw_probe(const char *host, int port, int timeout_ms)
{
    char ps[16];
    int fd;
    snprintf(ps, sizeof(ps), "%d", port);
    if (connect_one(host, ps, timeout_ms, &fd))
        return false;
    close(fd);
    return true;
}

int raw_require_apis(struct raw_conn *rc, const int16_t *keys, int n)
{
    struct kafka_api_versions_request req;
    struct kafka_api_versions_response resp;
    kafka_request_init(KAFKA_API_API_VERSIONS, &req);
    int r = raw_call(rc, KAFKA_API_API_VERSIONS, 0, &req, &resp);
    if (r)
        return r;
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int32_t k = 0; k < resp.n_api_keys && !found; k++)
            found = resp.api_keys[k].api_key == keys[i];
        if (!found) {
            const struct kafka_api_info *api = kafka_api_lookup(keys[i]);
            char name[32];
            if (api)
                snprintf(name, sizeof(name), "%s", api->name);
            else
                snprintf(name, sizeof(name), "API %d", keys[i]);
            cli_err("the cluster does not support consumer groups: %s does not serve %s",
                    rc->addr, name);
            return -ENOTSUP;
        }
    }
    return 0;
}
