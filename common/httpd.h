/* httpd: the operator's HTTP listener — GET /metrics (Prometheus text format
 * 0.0.4, built by common/metrics over several loop turns) and GET /health
 * (200 "ok" or 503 with a one-line reason) — on libevent's evhttp, on the
 * process's own event loop, off the Kafka and RPC ports.
 *
 * Bounded against bad clients: request headers at most HTTPD_MAX_HEADER_BYTES
 * (a larger request is closed), no request body, at most
 * metrics.max.connections connections (more are closed at once), and every
 * connection must finish its request within metrics.request.timeout.ms of
 * connecting or of its previous response, or it is closed (a response the
 * client stops reading is closed after twice that) — so a slowloris
 * client that trickles a byte a second holds a slot for one timeout, not
 * forever. Unknown paths get 404, methods other than GET and HEAD on a known
 * path 405. One scrape runs at a time: /metrics requests that arrive while
 * it runs share its answer.
 *
 * Runs on the thread of the event_base; nothing is thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct config;
struct config_def;
struct event_base;
struct httpd;
struct metrics;

#define HTTPD_MAX_HEADER_BYTES 8192
#define HTTPD_MAX_BODY_BYTES   1024
#define HTTPD_HOST_MAX         256

int httpd_validate_listener(const struct config_def *def, const char *value, char *err,
                            size_t errlen);

/* The keys every process that serves /metrics declares (broker and
 * coordinator add these to their config_def arrays). */
/* clang-format off */
#define HTTPD_CONFIG_DEFS                                                                     \
    {.name = "metrics.listener", .type = CONFIG_STRING, .default_value = "",                  \
     .validate = httpd_validate_listener,                                                     \
     .doc = "host:port of the HTTP listener serving /metrics (Prometheus) and /health; empty: off. Port 0 picks a free port (logged)."}, \
    {.name = "metrics.max.connections", .type = CONFIG_INT, .default_value = "64",            \
     .min = 1, .max = 10000,                                                                  \
     .doc = "Most simultaneous connections to metrics.listener; more are closed at once."},  \
    {.name = "metrics.request.timeout.ms", .type = CONFIG_INT, .default_value = "10000",      \
     .min = 100, .max = 600000,                                                               \
     .doc = "A metrics.listener connection that has not sent a whole request this long after connecting or after its last response is closed."}
/* clang-format on */

struct httpd_settings {
    char host[HTTPD_HOST_MAX];
    int port;
    bool enabled; /* metrics.listener is not empty */
    int max_connections;
    int request_timeout_ms;
};

/* Reads the keys above from @c. -EINVAL with a message naming the key. */
int httpd_settings_resolve(const struct config *c, struct httpd_settings *ret, char *err,
                           size_t errlen);

/* Is the process ready to serve? true, or false with a one-line reason in
 * @reason (NUL-terminated, at most @len bytes). */
typedef bool (*httpd_health_fn)(void *ctx, char *reason, size_t len);

/* Binds and starts serving. Borrows @base, @m, @health_ctx: they must outlive
 * the server. -EADDRINUSE and other bind errors with a message in @err. */
int httpd_new(struct event_base *base, const struct httpd_settings *s, struct metrics *m,
              httpd_health_fn health, void *health_ctx, struct httpd **ret, char *err,
              size_t errlen);
/* Closes the listener and every connection; scrapes in flight are cancelled.
 * NULL-safe. */
void httpd_free(struct httpd *h);

/* The port bound (useful with port 0). */
int httpd_port(const struct httpd *h);

/* Counters, for tests and the process's own metrics. */
struct httpd_stats {
    size_t connections; /* open now */
    unsigned long long accepted;
    unsigned long long refused;   /* over metrics.max.connections */
    unsigned long long timed_out; /* closed by metrics.request.timeout.ms */
    unsigned long long requests;
};
void httpd_get_stats(const struct httpd *h, struct httpd_stats *ret);
