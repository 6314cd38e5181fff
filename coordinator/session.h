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
 * Time is always passed in (milliseconds, monotonic); nothing here reads a clock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cstate;
struct csession_table;

/* -EINVAL for a timeout < 1, -ENOMEM. */
int csession_new(int64_t timeout_ms, struct csession_table **ret);
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
bool csession_has(const struct csession_table *t, int32_t id, int64_t *ret_epoch);
/* Whether broker @id's session has been cut short by csession_shorten since
 * its last touch (false without a session). */
bool csession_is_cut(const struct csession_table *t, int32_t id);
size_t csession_count(const struct csession_table *t);

/* The expired session with the lowest broker id: now - last heartbeat > timeout.
 * false when none has expired. */
bool csession_next_expired(const struct csession_table *t, int64_t now_ms, int32_t *ret_id,
                           int64_t *ret_epoch);
/* When the earliest session expires (the first @now_ms at which
 * csession_next_expired reports it); INT64_MAX without sessions. */
int64_t csession_next_deadline(const struct csession_table *t);

/* Replace every session by a fresh one at @now_ms for each broker of @s whose
 * session is live (not fenced). -ENOMEM, with the table unchanged. */
int csession_reset(struct csession_table *t, const struct cstate *s, int64_t now_ms);
