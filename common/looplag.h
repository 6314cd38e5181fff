/* looplag: how long the event loop was kept from running its timers.
 *
 * A persistent timer fires every LOOPLAG_TICK_MS; the time by which it fires
 * late is the lag a callback or a loop turn imposed on everything else on that
 * loop (heartbeats, produce, fetch). Every tick's lag goes into a histogram
 * (powers of two of milliseconds, for the metrics endpoint to export); a lag
 * past LOOPLAG_WARN_MS is logged once, at warn, naming the process role.
 *
 * Runs on the loop thread it watches. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct looplag;

#define LOOPLAG_TICK_MS 50
#define LOOPLAG_WARN_MS 100
/* Bucket i counts lags in [2^(i-1), 2^i) ms (bucket 0: under 1 ms); the last
 * bucket takes everything from 2^(LOOPLAG_BUCKETS-2) ms up. */
#define LOOPLAG_BUCKETS 16

struct looplag_stats {
    uint64_t buckets[LOOPLAG_BUCKETS];
    uint64_t count;     /* ticks observed */
    uint64_t over_warn; /* ticks late by more than LOOPLAG_WARN_MS */
    int64_t max_ms;     /* the largest lag seen */
    int64_t sum_ms;
};

/* Starts ticking on @base at once; @role names the process in log lines
 * ("broker", "coordinator"; borrowed, must outlive the monitor). */
int looplag_new(struct event_base *base, const char *role, struct looplag **ret);
void looplag_free(struct looplag *l); /* NULL-safe */

/* Copies the histogram so far. */
void looplag_get_stats(const struct looplag *l, struct looplag_stats *ret);

/* Records one observed lag (what the tick does; exposed for tests). Returns
 * true when it is past LOOPLAG_WARN_MS. */
bool looplag_observe(struct looplag_stats *st, int64_t lag_ms);
/* The bucket a lag of @lag_ms goes into. */
int looplag_bucket(int64_t lag_ms);
