/* looplag: event-loop lag from a periodic timer's lateness; a histogram and a
 * warning line per stall. */
#include "common/looplag.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"

struct looplag {
    struct event *tick;
    const char *role;
    int64_t expected_ns; /* when the pending tick should fire */
    struct looplag_stats st;
};

int looplag_bucket(int64_t lag_ms)
{
    int b = 0;
    while (lag_ms > 0 && b < LOOPLAG_BUCKETS - 1) {
        lag_ms >>= 1;
        b++;
    }
    return b;
}

bool looplag_observe(struct looplag_stats *st, int64_t lag_ms)
{
    if (lag_ms < 0)
        lag_ms = 0;
    st->buckets[looplag_bucket(lag_ms)]++;
    st->count++;
    st->sum_ms += lag_ms;
    if (lag_ms > st->max_ms)
        st->max_ms = lag_ms;
    if (lag_ms <= LOOPLAG_WARN_MS)
        return false;
    st->over_warn++;
    return true;
}

static void looplag_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct looplag *l = arg;
    int64_t now = clock_mono_ns();
    int64_t lag_ms = (now - l->expected_ns) / 1000000;
    if (looplag_observe(&l->st, lag_ms))
        log_warn(l->role,
                 "event loop busy for %lld ms: a callback or loop turn kept timers, heartbeats "
                 "and requests waiting (stalls over %d ms so far: %llu)",
                 (long long)lag_ms, LOOPLAG_WARN_MS, (unsigned long long)l->st.over_warn);
    /* Measured from now, not from the schedule: one long stall is one lag, not
     * a burst of catch-up ticks. */
    l->expected_ns = now + (int64_t)LOOPLAG_TICK_MS * 1000000;
    struct timeval tv = {0, LOOPLAG_TICK_MS * 1000};
    evtimer_add(l->tick, &tv);
}

int looplag_new(struct event_base *base, const char *role, struct looplag **ret)
{
    struct looplag *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->role = role;
    l->tick = evtimer_new(base, looplag_tick, l);
    if (!l->tick) {
        free(l);
        return -ENOMEM;
    }
    l->expected_ns = clock_mono_ns() + (int64_t)LOOPLAG_TICK_MS * 1000000;
    struct timeval tv = {0, LOOPLAG_TICK_MS * 1000};
    evtimer_add(l->tick, &tv);
    *ret = l;
    return 0;
}

void looplag_free(struct looplag *l)
{
    if (!l)
        return;
    event_free(l->tick);
    free(l);
}

void looplag_get_stats(const struct looplag *l, struct looplag_stats *ret)
{
    *ret = l->st;
}
