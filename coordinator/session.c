/* session: the session table, a sorted array by broker id. Brokers number in
 * the thousands at most and expiry is checked a few times per second, so a
 * linear scan for the deadline costs less than keeping a heap in step. */
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
};

struct csession_table {
    int64_t timeout_ms;
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
    *ret = t;
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

int csession_touch(struct csession_table *t, int32_t id, int64_t epoch, int64_t now_ms)
{
    size_t i = lower_bound(t, id);
    if (i == t->n || t->v[i].id != id) {
        if (reserve(t, t->n + 1) < 0)
            return -ENOMEM;
        memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
        t->n++;
    }
    t->v[i] = (struct sess){id, epoch, now_ms, INT64_MAX};
    return 0;
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

/* First instant at which the session counts as expired. */
static int64_t deadline(const struct csession_table *t, const struct sess *s)
{
    int64_t d = INT64_MAX;
    if (s->last_ms <= INT64_MAX - t->timeout_ms - 1)
        d = s->last_ms + t->timeout_ms + 1;
    return s->cut_ms < d ? s->cut_ms : d;
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
            t->v[t->n++] = (struct sess){b->id, b->epoch, now_ms, INT64_MAX};
    }
    return 0;
}
