/* fetchsess: follower fetch sessions on the leader. Sessions live in a small
 * array (one per follower broker); a session's partitions in an array with an
 * open-addressing index on (topic id, partition), so an incremental fetch
 * costs the partitions it names, not the session's size. */
#include "broker/replica/fetchsess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/kerr.h"
#include "replica.pb-c.h"

struct fsess_cache {
    uint32_t next_id;
    struct fsess **v;
    size_t n;
};

int fsess_cache_new(uint32_t seed, struct fsess_cache **ret)
{
    struct fsess_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->next_id = seed;
    *ret = c;
    return 0;
}

static void sess_free(struct fsess *s)
{
    if (!s)
        return;
    free(s->parts);
    free(s->index);
    free(s);
}

void fsess_cache_free(struct fsess_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        sess_free(c->v[i]);
    free(c->v);
    free(c);
}

static size_t slot_of(const struct fsess_cache *c, int32_t follower)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i]->follower == follower)
            return i;
    return SIZE_MAX;
}

struct fsess *fsess_get(struct fsess_cache *c, int32_t follower)
{
    size_t i = slot_of(c, follower);
    return i == SIZE_MAX ? NULL : c->v[i];
}

void fsess_drop(struct fsess_cache *c, int32_t follower)
{
    size_t i = slot_of(c, follower);
    if (i == SIZE_MAX)
        return;
    sess_free(c->v[i]);
    c->v[i] = c->v[--c->n];
}

/* ---- a session's partitions ------------------------------------------------------- */

static uint64_t key_hash(const uint8_t *id, int32_t partition)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < CSTATE_UUID_LEN; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    h = (h ^ (uint32_t)partition) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t find_slot(const struct fsess *s, const uint8_t *id, int32_t partition)
{
    size_t mask = s->index_cap - 1;
    size_t i = key_hash(id, partition) & mask;
    while (s->index[i]) {
        const struct fsess_part *p = &s->parts[s->index[i] - 1];
        if (p->partition == partition && memcmp(p->topic_id, id, CSTATE_UUID_LEN) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

/* Room for @want partitions, the index at most half full. */
static int reserve(struct fsess *s, size_t want)
{
    if (want > UINT32_MAX / 4)
        return -ENOMEM;
    if (want > s->cap) {
        size_t cap = s->cap ? s->cap : 16;
        while (cap < want)
            cap *= 2;
        struct fsess_part *v = realloc(s->parts, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->parts = v;
        s->cap = cap;
    }
    if (want * 2 <= s->index_cap)
        return 0;
    size_t icap = s->index_cap ? s->index_cap : 32;
    while (icap < want * 2)
        icap *= 2;
    uint32_t *idx = calloc(icap, sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    free(s->index);
    s->index = idx;
    s->index_cap = icap;
    for (size_t k = 0; k < s->n; k++)
        s->index[find_slot(s, s->parts[k].topic_id, s->parts[k].partition)] = (uint32_t)(k + 1);
    return 0;
}

static int upsert(struct fsess *s, const Weir__Repl__FetchPartition *fp)
{
    if (fp->topic_id.len != CSTATE_UUID_LEN)
        return -EINVAL;
    int r = reserve(s, s->n + 1);
    if (r < 0)
        return r;
    size_t slot = find_slot(s, fp->topic_id.data, fp->partition);
    struct fsess_part *p;
    if (s->index[slot]) {
        p = &s->parts[s->index[slot] - 1];
    } else {
        p = &s->parts[s->n];
        memcpy(p->topic_id, fp->topic_id.data, CSTATE_UUID_LEN);
        p->partition = fp->partition;
        s->index[slot] = (uint32_t)++s->n;
    }
    /* A partition the follower names is always answered: it may have dropped
     * the last answer because its state moved while the fetch was out. */
    p->sent_hw = p->sent_log_start = p->sent_leo = -2;
    p->current_leader_epoch = fp->current_leader_epoch;
    p->fetch_offset = fp->fetch_offset;
    p->last_fetched_epoch = fp->last_fetched_epoch;
    p->log_start_offset = fp->log_start_offset;
    p->throttled = fp->throttled;
    return 0;
}

/* ---- open, update ------------------------------------------------------------------ */

int fsess_open(struct fsess_cache *c, int32_t follower,
               const struct Weir__Repl__FetchPartition *const *fps, size_t n, struct fsess **ret)
{
    fsess_drop(c, follower);
    struct fsess *s = calloc(1, sizeof(*s));
    struct fsess **v = realloc(c->v, (c->n + 1) * sizeof(*v));
    if (v)
        c->v = v;
    if (!s || !v) {
        free(s);
        return -ENOMEM;
    }
    s->follower = follower;
    do
        s->id = (int32_t)(c->next_id++ & 0x7fffffffu);
    while (s->id == 0);
    s->epoch = 1;
    int r = reserve(s, n);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = upsert(s, fps[i]);
    if (r < 0) {
        sess_free(s);
        return r;
    }
    c->v[c->n++] = s;
    *ret = s;
    return 0;
}

int fsess_update(struct fsess_cache *c, int32_t follower, int32_t id, int32_t epoch,
                 const struct Weir__Repl__FetchPartition *const *fps, size_t n,
                 struct fsess **ret, int16_t *ret_err)
{
    struct fsess *s = fsess_get(c, follower);
    if (!s || s->id != id) {
        *ret_err = KERR_FETCH_SESSION_ID_NOT_FOUND;
        return 0;
    }
    if (epoch != s->epoch) {
        *ret_err = KERR_INVALID_FETCH_SESSION_EPOCH;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        int r = upsert(s, fps[i]);
        if (r < 0) {
            fsess_drop(c, follower);
            return r;
        }
    }
    s->epoch = s->epoch == INT32_MAX ? 1 : s->epoch + 1;
    *ret_err = KERR_NONE;
    *ret = s;
    return 0;
}

bool fsess_part_news(const struct fsess_part *p, bool records_or_error, int64_t hw,
                     int64_t log_start, int64_t leo)
{
    return records_or_error || hw != p->sent_hw || log_start != p->sent_log_start ||
           leo != p->sent_leo;
}

void fsess_part_sent(struct fsess_part *p, int64_t hw, int64_t log_start, int64_t leo)
{
    p->sent_hw = hw;
    p->sent_log_start = log_start;
    p->sent_leo = leo;
}
