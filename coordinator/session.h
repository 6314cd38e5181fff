/* session: broker sessions, the coordinator's only soft state.
 *
 * A session is (broker id, broker epoch, time of the last heartbeat). It is not
 * in the metadata log: after a coordinator restart every live broker gets a
 * fresh session (csession_reset), as Kafka's controller does, so a restart never
 * fences brokers that kept heartbeating. A session expires when more than the
 * timeout has passed since its last heartbeat; the caller then fences the broker
 * through the controller (cctl_fence_broker) and removes the session once the
 * fence is applied. A session can also be cut short (csession_shorten): the
 * service does that when the connection the broker last used closes, so a
 * crashed broker is fenced after a short grace instead of the whole timeout;
 * the next touch restores the normal deadline.
 *
 * Fencing is made robust to load the coordinator itself causes (docs/scaling.md):
 *   - busy grace: every record the coordinator pushes to its watchers is work
 *     each broker must do before its loop is free again, so a broker that has
 *     not acknowledged (in a heartbeat's metadata_offset) every record pushed
 *     to it owes those bytes; its deadline moves later by
 *     owed bytes / CSESSION_GRACE_BYTES_PER_MS ms, at most one session timeout;
 *   - one fence per interval: of the brokers whose sessions expired, at most
 *     one is fenced per session timeout (the one silent longest), unless a
 *     session is clearly dead: its connection closed (a cut), or it stayed
 *     silent a whole further session timeout past its deadline.
 * So a create that stalls every broker's loop past the session timeout fences
 * none of them (grace), or one (the interval), never all at once; a crashed
 * broker is still fenced after the disconnect grace, and a hung one after at
 * most three session timeouts.
 *
 * Time is always passed in (milliseconds, monotonic); nothing here reads a clock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cstate;
struct csession_table;

/* Bytes of pushed, unacknowledged metadata worth 1 ms of grace, by default
 * (session.busy.grace.bytes.per.ms): a CreateTopic record spends about 20
 * bytes per partition at RF 3, and a broker applies a partition in about
 * 0.6 ms on an idle 2-core box (docs/scaling.md). */
#define CSESSION_GRACE_BYTES_PER_MS 16

/* -EINVAL for a timeout < 1, -ENOMEM. The grace rate starts at
 * CSESSION_GRACE_BYTES_PER_MS. */
int csession_new(int64_t timeout_ms, struct csession_table **ret);
/* Bytes owed per ms of busy grace; 0 turns the busy grace off. -EINVAL for a
 * negative rate. */
int csession_set_grace_rate(struct csession_table *t, int64_t bytes_per_ms);
void csession_free(struct csession_table *t);

/* Start or refresh broker @id's session (epoch @epoch, heartbeat at @now_ms).
 * A different epoch replaces the session. Ends any cut made by
 * csession_shorten. -ENOMEM. */
int csession_touch(struct csession_table *t, int32_t id, int64_t epoch, int64_t now_ms);
void csession_remove(struct csession_table *t, int32_t id);
/* Make broker @id's session expire at @deadline_ms at the latest (the first
 * instant csession_next_expired reports it): its deadline becomes the earlier
 * of the two. *ret_deadline (may be NULL) gets the resulting deadline. false,
 * changing nothing, when @id has no session. */
bool csession_shorten(struct csession_table *t, int32_t id, int64_t deadline_ms,
                      int64_t *ret_deadline);
/* A record of @bytes at metadata offset @offset was pushed to every watcher:
 * every session whose broker has not acknowledged @offset owes it. */
void csession_pushed(struct csession_table *t, int64_t offset, size_t bytes);
/* Broker @id reported (in a heartbeat) that it applied every record up to
 * @applied_offset: once that covers everything pushed, it owes nothing. */
void csession_acked(struct csession_table *t, int32_t id, int64_t applied_offset);
/* The grace broker @id's deadline gets now for what it owes (0 without a
 * session). */
int64_t csession_grace_ms(const struct csession_table *t, int32_t id);
/* How long broker @id has been silent at @now_ms (-1 without a session). */
int64_t csession_silent_ms(const struct csession_table *t, int32_t id, int64_t now_ms);
bool csession_has(const struct csession_table *t, int32_t id, int64_t *ret_epoch);
/* Whether broker @id's session has been cut short by csession_shorten since
 * its last touch (false without a session). */
bool csession_is_cut(const struct csession_table *t, int32_t id);
size_t csession_count(const struct csession_table *t);

/* The expired session with the lowest broker id: now - last heartbeat >
 * timeout + grace, or a cut deadline reached; false when none has expired.
 * Ignores the fence interval: csession_next_fence applies it. */
bool csession_next_expired(const struct csession_table *t, int64_t now_ms, int32_t *ret_id,
                           int64_t *ret_epoch);
/* When the earliest session expires (the first @now_ms at which
 * csession_next_expired reports it); INT64_MAX without sessions. */
int64_t csession_next_deadline(const struct csession_table *t);

enum csession_fence_reason {
    CSESSION_EXPIRED,    /* silent past its deadline; the interval allowed it */
    CSESSION_DISCONNECT, /* its connection closed and it did not return */
    CSESSION_DEAD,       /* silent a further session timeout past its deadline */
};

/* The session to fence now under the rules above, if any: a clearly dead one
 * (lowest id first) at any time; else, when no broker was fenced within the
 * last session timeout (csession_fenced), the expired one silent longest.
 * The caller fences it and calls csession_fenced. */
bool csession_next_fence(const struct csession_table *t, int64_t now_ms, int32_t *ret_id,
                         int64_t *ret_epoch, enum csession_fence_reason *ret_reason);
/* Broker @id was fenced at @now_ms: its session goes, and the interval
 * starts. */
void csession_fenced(struct csession_table *t, int32_t id, int64_t now_ms);
/* The first instant after @now_ms at which csession_next_fence may answer
 * differently without a touch: a deadline, the end of the interval, or an
 * expired session becoming clearly dead. INT64_MAX without sessions. */
int64_t csession_next_wake(const struct csession_table *t, int64_t now_ms);

/* Replace every session by a fresh one at @now_ms for each broker of @s whose
 * session is live (not fenced). -ENOMEM, with the table unchanged. */
int csession_reset(struct csession_table *t, const struct cstate *s, int64_t now_ms);
