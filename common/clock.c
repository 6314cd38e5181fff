/* clock: thin wrappers over clock_gettime for monotonic intervals and wall-clock
 * timestamps. */
#include "common/clock.h"

#include <assert.h>
#include <time.h>

static int64_t read_ns(clockid_t id)
{
    struct timespec ts;
    int rc = clock_gettime(id, &ts);
    /* Only fails for an invalid clock id, which would be a programming error. */
    assert(rc == 0);
    (void)rc;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_mono_ns(void)
{
    return read_ns(CLOCK_MONOTONIC);
}

int64_t clock_mono_us(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000;
}

int64_t clock_mono_ms(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t clock_wall_ms(void)
{
    return read_ns(CLOCK_REALTIME) / 1000000;
}

int64_t clock_wall_us(void)
{
    return read_ns(CLOCK_REALTIME) / 1000;
}
