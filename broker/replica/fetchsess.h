/* fetchsess: the leader's side of follower fetch sessions (proto/replica.proto,
 * in the spirit of Kafka's KIP-227).
 *
 * A follower's full fetch opens a session holding every partition it fetches
 * with its fetch state (leader epoch, fetch offset, last fetched epoch, log
 * start); later fetches in the session carry only the partitions whose state
 * changed, and the leader answers only the partitions it has news for. The
 * cache holds at most one session per follower broker, so its memory is bounded
 * by the partitions the brokers share. Pure data structure: no I/O, no clock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/meta/state.h" /* CSTATE_UUID_LEN */

struct fsess_cache;
struct Weir__Repl__FetchPartition;

/* One partition of a session: what the follower last said, and what the
 * leader last answered (-2: never). */
struct fsess_part {
    uint8_t topic_id[CSTATE_UUID_LEN];
    int32_t partition;
    int32_t current_leader_epoch;
    int64_t fetch_offset;
    int32_t last_fetched_epoch;
    int64_t log_start_offset;
    bool throttled; /* the follower asks for no records for now (its throttle) */
    int64_t sent_hw, sent_log_start, sent_leo;
};

struct fsess {
    int32_t follower;
    int32_t id;    /* never 0 */
    int32_t epoch; /* the epoch the next incremental fetch must carry */
    struct fsess_part *parts;
    size_t n, cap;
    uint32_t *index; /* open addressing: part index + 1, 0 empty */
    size_t index_cap;
};

/* @seed varies the session ids between processes. -ENOMEM. */
int fsess_cache_new(uint32_t seed, struct fsess_cache **ret);
void fsess_cache_free(struct fsess_cache *c); /* NULL-safe */

/* A full fetch from @follower naming @n partitions: a new session replaces any
 * earlier one of @follower. Borrows @fps. -ENOMEM (no session left for it),
 * -EINVAL (a topic id that is not 16 bytes). */
int fsess_open(struct fsess_cache *c, int32_t follower,
               const struct Weir__Repl__FetchPartition *const *fps, size_t n,
               struct fsess **ret);
/* An incremental fetch: @follower's session must have @id and expect @epoch,
 * else *ret_err is FETCH_SESSION_ID_NOT_FOUND or INVALID_FETCH_SESSION_EPOCH
 * and nothing changes. Otherwise the @n partitions' states replace or join the
 * session's (and will be answered, news or not), the epoch advances, and *ret
 * is the session. -ENOMEM, -EINVAL as
 * fsess_open (the session is then dropped: the follower starts over). */
int fsess_update(struct fsess_cache *c, int32_t follower, int32_t id, int32_t epoch,
                 const struct Weir__Repl__FetchPartition *const *fps, size_t n,
                 struct fsess **ret, int16_t *ret_err);
/* @follower's session, or NULL. Valid until the next open/update/drop. */
struct fsess *fsess_get(struct fsess_cache *c, int32_t follower);
void fsess_drop(struct fsess_cache *c, int32_t follower);

/* Whether an incremental answer must carry @p, given what the leader would
 * answer now: always for records or an error, else when the high watermark,
 * log start or log end differ from the last answer. */
bool fsess_part_news(const struct fsess_part *p, bool records_or_error, int64_t hw,
                     int64_t log_start, int64_t leo);
/* The answer for @p went out with these values. */
void fsess_part_sent(struct fsess_part *p, int64_t hw, int64_t log_start, int64_t leo);
