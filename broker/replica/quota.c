/* quota: sliding-window byte rate limit (see quota.h). */
#include "broker/replica/quota.h"

static void window_clear(struct quota *q)
{
    for (int i = 0; i < QUOTA_SAMPLES; i++) {
        q->s[i].start_ms = -1;
        q->s[i].bytes = 0;
    }
    q->cur = 0;
}

void quota_init(struct quota *q)
{
    q->rate = QUOTA_UNLIMITED;
    window_clear(q);
}

void quota_set_rate(struct quota *q, int64_t bytes_per_sec)
{
    q->rate = bytes_per_sec > 0 ? bytes_per_sec : QUOTA_UNLIMITED;
}

/* Whether sample @s still counts at @now_ms: it started within the window. */
static bool sample_live(const struct quota_sample *s, int64_t now_ms)
{
    return s->start_ms >= 0 && s->start_ms <= now_ms &&
           now_ms - s->start_ms < (int64_t)QUOTA_SAMPLES * QUOTA_SAMPLE_MS;
}

void quota_record(struct quota *q, int64_t bytes, int64_t now_ms)
{
    if (bytes <= 0)
        return;
    struct quota_sample *c = &q->s[q->cur];
    if (c->start_ms >= 0 && now_ms < c->start_ms)
        window_clear(q); /* the clock went back (not monotonic): start over */
    c = &q->s[q->cur];
    if (c->start_ms < 0) {
        c->start_ms = now_ms;
        c->bytes = 0;
    } else if (now_ms - c->start_ms >= QUOTA_SAMPLE_MS) {
        /* A new sample, in place of the oldest. */
        q->cur = (q->cur + 1) % QUOTA_SAMPLES;
        c = &q->s[q->cur];
        c->start_ms = now_ms;
        c->bytes = 0;
    }
    c->bytes += bytes;
}

double quota_rate(const struct quota *q, int64_t now_ms)
{
    int64_t bytes = 0, oldest = -1;
    for (int i = 0; i < QUOTA_SAMPLES; i++) {
        const struct quota_sample *s = &q->s[i];
        if (!sample_live(s, now_ms))
            continue;
        bytes += s->bytes;
        if (oldest < 0 || s->start_ms < oldest)
            oldest = s->start_ms;
    }
    if (oldest < 0)
        return 0.0;
    int64_t span = now_ms - oldest;
    if (span < QUOTA_SAMPLE_MS)
        span = QUOTA_SAMPLE_MS;
    return (double)bytes * 1000.0 / (double)span;
}

bool quota_exceeded(const struct quota *q, int64_t now_ms)
{
    if (q->rate == QUOTA_UNLIMITED)
        return false;
    return quota_rate(q, now_ms) > (double)q->rate;
}
