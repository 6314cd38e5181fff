/* session: the session table, a sorted array by broker id, and the fencing
 * rules of session.h (busy grace, one fence per interval). Brokers number in
 * the thousands at most and expiry is checked a few times per second, so a
 * linear scan for the deadline costs less than keeping a heap in step; so does
 * charging each durable record to every session. */
#include "coordinator/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/meta/state.h"

struct sess {
    int32_t id;
    int64_t epoch;
    int64_t last_ms;
    int64_t cut_ms; /* csession_shorten's deadline; INT64_MAX: none */
    int64_t acked;      /* the last metadata offset it reported applied; -1 none */
    int64_t owed_to;    /* the last offset pushed that it has not acknowledged */
    uint64_t owed_bytes; /* bytes pushed above its acknowledgement */
};

struct csession_table {
    int64_t timeout_ms;
    int64_t grace_bytes_per_ms; /* 0: no busy grace */
    int64_t last_fence_ms; /* INT64_MIN: none yet */
    struct sess *v;
    size_t n, cap;
};

int csession_new(int64_t timeout_ms, struct csession_table **ret)
{
    if (timeout_ms < 1)
        return -EINVAL;
    struct csession_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->timeout_ms = timeout_ms;
    t->grace_bytes_per_ms = CSESSION_GRACE_BYTES_PER_MS;
    t->last_fence_ms = INT64_MIN;
    *ret = t;
    return 0;
}

int csession_set_grace_rate(struct csession_table *t, int64_t bytes_per_ms)
{
    if (bytes_per_ms < 0)
        return -EINVAL;
    t->grace_bytes_per_ms = bytes_per_ms;
    return 0;
}

void csession_free(struct csession_table *t)
{
    if (!t)
        return;
    free(t->v);
    free(t);
}

static size_t lower_bound(const struct csession_table *t, int32_t id)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int reserve(struct csession_table *t, size_t want)
{
    if (want <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap * 2 : 16;
    while (cap < want)
        cap *= 2;
    struct sess *v = realloc(t->v, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    t->v = v;
    t->cap = cap;
    return 0;
}

static struct sess fresh(int32_t id, int64_t epoch, int64_t now_ms)
{
    return (struct sess){id, epoch, now_ms, INT64_MAX, -1, -1, 0};
}

int csession_touch(struct csession_table *t, int32_t id, int64_t epoch, int64_t now_ms)
{
    size_t i = lower_bound(t, id);
    if (i == t->n || t->v[i].id != id) {
        if (reserve(t, t->n + 1) < 0)
            return -ENOMEM;
        memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
        t->n++;
        t->v[i] = fresh(id, epoch, now_ms);
    } else if (t->v[i].epoch != epoch) {
        t->v[i] = fresh(id, epoch, now_ms);
    } else {
        /* Same session: what it owes stays owed until it acknowledges it. */
        t->v[i].last_ms = now_ms;
        t->v[i].cut_ms = INT64_MAX;
    }
    return 0;
}

void csession_pushed(struct csession_table *t, int64_t offset, size_t bytes)
{
    for (size_t i = 0; i < t->n; i++) {
        struct sess *s = &t->v[i];
        if (s->acked >= offset)
            continue;
        s->owed_to = offset;
        s->owed_bytes = bytes > UINT64_MAX - s->owed_bytes ? UINT64_MAX : s->owed_bytes + bytes;
    }
}

void csession_acked(struct csession_table *t, int32_t id, int64_t applied_offset)
{
    size_t i = lower_bound(t, id);
    if (i == t->n || t->v[i].id != id)
        return;
    struct sess *s = &t->v[i];
    if (applied_offset > s->acked)
        s->acked = applied_offset;
    /* A partial acknowledgement keeps the whole debt: which bytes it covers is
     * not known, and the grace is capped anyway. */
    if (s->acked >= s->owed_to)
        s->owed_bytes = 0;
}

void csession_remove(struct csession_table *t, int32_t id)
{
    size_t i = lower_bound(t, id);
    if (i == t->n || t->v[i].id != id)
        return;
    memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
    t->n--;
}

bool csession_has(const struct csession_table *t, int32_t id, int64_t *ret_epoch)
{
    size_t i = lower_bound(t, id);
    if (i == t->n || t->v[i].id != id)
        return false;
    if (ret_epoch)
        *ret_epoch = t->v[i].epoch;
    return true;
}

bool csession_is_cut(const struct csession_table *t, int32_t id)
{
    size_t i = lower_bound(t, id);
    return i < t->n && t->v[i].id == id && t->v[i].cut_ms != INT64_MAX;
}

size_t csession_count(const struct csession_table *t)
{
    return t->n;
}

static int64_t grace(const struct csession_table *t, const struct sess *s)
{
    if (t->grace_bytes_per_ms == 0)
        return 0;
    uint64_t g = s->owed_bytes / (uint64_t)t->grace_bytes_per_ms;
    return g > (uint64_t)t->timeout_ms ? t->timeout_ms : (int64_t)g;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* First instant at which the session counts as expired. */
static int64_t deadline(const struct csession_table *t, const struct sess *s)
{
    int64_t d = add_sat(s->last_ms, t->timeout_ms + grace(t, s) + 1);
    return s->cut_ms < d ? s->cut_ms : d;
}

/* First instant at which an expired session counts as clearly dead. */
static int64_t dead_at(const struct csession_table *t, const struct sess *s)
{
    if (s->cut_ms != INT64_MAX && s->cut_ms <= deadline(t, s))
        return s->cut_ms;
    return add_sat(deadline(t, s), t->timeout_ms);
}

static int64_t interval_end(const struct csession_table *t)
{
    return t->last_fence_ms == INT64_MIN ? INT64_MIN : add_sat(t->last_fence_ms, t->timeout_ms);
}

int64_t csession_grace_ms(const struct csession_table *t, int32_t id)
{
    size_t i = lower_bound(t, id);
    return i < t->n && t->v[i].id == id ? grace(t, &t->v[i]) : 0;
}

bool csession_shorten(struct csession_table *t, int32_t id, int64_t deadline_ms,
                      int64_t *ret_deadline)
{
    size_t i = lower_bound(t, id);
    if (i == t->n || t->v[i].id != id)
        return false;
    struct sess *s = &t->v[i];
    if (deadline_ms < s->cut_ms)
        s->cut_ms = deadline_ms;
    if (ret_deadline)
        *ret_deadline = deadline(t, s);
    return true;
}

bool csession_next_expired(const struct csession_table *t, int64_t now_ms, int32_t *ret_id,
                           int64_t *ret_epoch)
{
    for (size_t i = 0; i < t->n; i++) {
        if (now_ms >= deadline(t, &t->v[i])) {
            *ret_id = t->v[i].id;
            *ret_epoch = t->v[i].epoch;
            return true;
        }
    }
    return false;
}

int64_t csession_next_deadline(const struct csession_table *t)
{
    int64_t d = INT64_MAX;
    for (size_t i = 0; i < t->n; i++) {
        int64_t x = deadline(t, &t->v[i]);
        if (x < d)
            d = x;
    }
    return d;
}

int64_t csession_silent_ms(const struct csession_table *t, int32_t id, int64_t now_ms)
{
    size_t i = lower_bound(t, id);
    return i < t->n && t->v[i].id == id ? now_ms - t->v[i].last_ms : -1;
}

bool csession_next_fence(const struct csession_table *t, int64_t now_ms, int32_t *ret_id,
                         int64_t *ret_epoch, enum csession_fence_reason *ret_reason)
{
    const struct sess *pick = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const struct sess *s = &t->v[i];
        if (now_ms >= dead_at(t, s)) {
            *ret_id = s->id;
            *ret_epoch = s->epoch;
            *ret_reason = s->cut_ms <= now_ms ? CSESSION_DISCONNECT : CSESSION_DEAD;
            return true;
        }
        if (now_ms >= deadline(t, s) && (!pick || s->last_ms < pick->last_ms))
            pick = s;
    }
    if (!pick || now_ms < interval_end(t))
        return false;
    *ret_id = pick->id;
    *ret_epoch = pick->epoch;
    *ret_reason = CSESSION_EXPIRED;
    return true;
}

void csession_fenced(struct csession_table *t, int32_t id, int64_t now_ms)
{
    csession_remove(t, id);
    t->last_fence_ms = now_ms;
}

int64_t csession_next_wake(const struct csession_table *t, int64_t now_ms)
{
    int64_t w = INT64_MAX;
    int64_t iv = interval_end(t);
    for (size_t i = 0; i < t->n; i++) {
        const struct sess *s = &t->v[i];
        int64_t d = deadline(t, s);
        int64_t x;
        if (now_ms < d)
            x = d;
        else if (now_ms >= iv)
            x = now_ms; /* fenceable now */
        else
            x = iv < dead_at(t, s) ? iv : dead_at(t, s);
        if (x < w)
            w = x;
    }
    return w;
}

int csession_reset(struct csession_table *t, const struct cstate *s, int64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_brokers; i++)
        n += s->brokers[i].state != CSTATE_BROKER_FENCED;
    if (reserve(t, n) < 0)
        return -ENOMEM;
    t->n = 0;
    /* s->brokers is sorted by id, so the table stays sorted. */
    for (size_t i = 0; i < s->n_brokers; i++) {
        const struct cstate_broker *b = &s->brokers[i];
        if (b->state != CSTATE_BROKER_FENCED)
            t->v[t->n++] = fresh(b->id, b->epoch, now_ms);
    }
    return 0;
}
