/* clock: monotonic time for timeouts and intervals, wall time for timestamps.
 * Code that must be deterministic (the coordinator's state machine, storage
 * decisions) takes "now" as a parameter instead of calling these. */
#pragma once

#include <stdint.h>

int64_t clock_mono_ns(void);
int64_t clock_mono_us(void);
int64_t clock_mono_ms(void);
/* Milliseconds since the Unix epoch, as Kafka timestamps are. */
int64_t clock_wall_ms(void);
int64_t clock_wall_us(void);
