/* quota: a byte rate limit measured over a sliding window, for replication
 * throttles (Kafka's ReplicationQuotaManager).
 *
 * The rate is the bytes recorded in the last QUOTA_SAMPLES samples of
 * QUOTA_SAMPLE_MS each (Kafka: 11 samples of 1 s), divided by the time those
 * samples span. Unlike Kafka's Rate, the span counts from the first sample
 * (at least one sample long), not as if the whole window had elapsed: a quota
 * that starts or restarts after an idle window lets about one second's worth
 * through at once, not ten.
 *
 * The caller asks quota_exceeded() before sending throttled bytes and
 * records what it sent with quota_record(); the rate then overshoots the
 * limit by at most the last send. Pure: the caller passes the clock. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define QUOTA_SAMPLES   11
#define QUOTA_SAMPLE_MS 1000
#define QUOTA_UNLIMITED INT64_MAX

struct quota_sample {
    int64_t start_ms; /* -1: unused */
    int64_t bytes;
};

struct quota {
    int64_t rate; /* bytes per second; QUOTA_UNLIMITED: no limit */
    struct quota_sample s[QUOTA_SAMPLES];
    int cur; /* the newest sample */
};

/* An unlimited quota with an empty window. */
void quota_init(struct quota *q);
/* Change the limit (bytes/s, > 0; QUOTA_UNLIMITED for none); the window keeps
 * what was recorded. */
void quota_set_rate(struct quota *q, int64_t bytes_per_sec);
/* Count @bytes sent at @now_ms (monotonic). */
void quota_record(struct quota *q, int64_t bytes, int64_t now_ms);
/* The measured rate at @now_ms, bytes per second. */
double quota_rate(const struct quota *q, int64_t now_ms);
/* Whether the measured rate is above the limit (never for an unlimited one). */
bool quota_exceeded(const struct quota *q, int64_t now_ms);
