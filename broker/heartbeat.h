/* heartbeat: the broker's heartbeats to the coordinator, on their own thread.
 *
 * Heartbeats used to leave from the broker's event loop, so a long callback or
 * a flood of work (applying a 10,000-partition create) delayed them and the
 * coordinator fenced a broker that was only busy. As Kafka's
 * BrokerLifecycleManager, a dedicated thread with its own event base and its
 * own RPC connection sends them; the loop only publishes, through atomics and a
 * small mutex, what a heartbeat reports (broker epoch, applied metadata offset)
 * and reads what the answers tell (the lease, the coordinator's offset).
 *
 * A heartbeat still means "this broker is alive": the event loop stamps a clock
 * every HB_LOOP_STAMP_MS, and the thread withholds heartbeats while the stamp is
 * older than hb_loop_budget_ms(session timeout) = half the session timeout. So
 * a loop that lags less than that is invisible to the coordinator; a loop wedged
 * longer stops the heartbeats and the broker is fenced as a silent one, at most
 * half a session timeout later than if heartbeats were still on the loop. As
 * soon as the loop turns again the thread heartbeats at once. With the
 * heartbeat interval below half the session timeout (the coordinator's
 * defaults: 2 s and 9 s), a loop stall shorter than the session timeout never
 * fences (docs/coordinator.md, "Heartbeats").
 *
 * Refusals (STALE_BROKER_EPOCH: the broker was fenced) are handed to the loop
 * thread through an eventfd; the loop registers again. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct hbthread;

/* How often the loop stamps its progress, and how often the thread looks. */
#define HB_LOOP_STAMP_MS 100
#define HB_TICK_MS       100
/* Unanswered heartbeats in a row (each times out after the interval) before the
 * broker tries another coordinator: a paused leader keeps its sockets open. */
#define HB_TIMEOUTS_TO_MOVE 2

/* ---- the decision (pure; tests/unit/test_heartbeat.c) ------------------------- */

/* How long the loop may go without turning before heartbeats stop: half the
 * session timeout, at least three stamp periods. */
int64_t hb_loop_budget_ms(int session_timeout_ms);

struct hb_liveness {
    int64_t last_sent_ms; /* -1: nothing sent yet */
    bool stalled;         /* withholding because the loop stopped turning */
};

enum hb_action {
    HB_IDLE,         /* nothing to do this tick */
    HB_SEND,         /* send a heartbeat now */
    HB_RESUME,       /* the loop turned again after a stall: send now (and say so) */
    HB_STALL_BEGIN,  /* the loop has stalled past the budget: withhold (say so once) */
};

void hb_liveness_init(struct hb_liveness *l);
/* One tick at @now_ms, the loop's last stamp being @loop_stamp_ms. A SEND or
 * RESUME records @now_ms as the send time. */
enum hb_action hb_liveness_step(struct hb_liveness *l, int64_t now_ms, int64_t loop_stamp_ms,
                                int interval_ms, int session_timeout_ms);

/* ---- the thread ---------------------------------------------------------------- */

/* A heartbeat was refused (@code a KERR_*, @message borrowed for the call) for
 * broker epoch @epoch. Runs on the loop thread. */
typedef void (*hbthread_refused_fn)(void *ud, int64_t epoch, int16_t code, const char *message);

/* Start the thread, connecting to @host:@port, and the progress stamp on
 * @loop_base (the broker's event loop; the callbacks run there). Heartbeats
 * start after hbthread_set_session. */
int hbthread_new(struct event_base *loop_base, const char *host, int port, int32_t broker_id,
                 hbthread_refused_fn refused, void *ud, struct hbthread **ret);
/* A heartbeat was answered NOT_CONTROLLER by a coordinator that does not lead
 * the quorum: @host "" when it named no leader, or when HB_TIMEOUTS_TO_MOVE
 * heartbeats in a row got no answer in time. Not a refusal of the session
 * (the lease is not extended by it, and not cut either). Runs on the loop
 * thread. */
typedef void (*hbthread_hint_fn)(void *ud, int32_t node_id, const char *host, int port);
void hbthread_set_hint_fn(struct hbthread *h, hbthread_hint_fn fn);
/* Heartbeat to @host:@port from now on (the thread reconnects there within a
 * tick). Any thread. */
void hbthread_set_target(struct hbthread *h, const char *host, int port);
/* Stops and joins the thread. NULL-safe. Loop thread only. */
void hbthread_free(struct hbthread *h);

/* The session to heartbeat for (after a registration); @epoch < 0 stops
 * heartbeating (not registered, or leaving). */
void hbthread_set_session(struct hbthread *h, int64_t epoch, int interval_ms,
                          int session_timeout_ms);
/* The last metadata offset the loop applied (reported in every heartbeat). */
void hbthread_set_applied(struct hbthread *h, int64_t offset);
/* Monotonic send time of the last heartbeat accepted for @epoch; -1: none. */
int64_t hbthread_lease_start(struct hbthread *h, int64_t epoch);
/* The coordinator's committed offset, as of the last accepted heartbeat (-1). */
int64_t hbthread_coord_offset(struct hbthread *h);

struct hbthread_stats {
    uint64_t sent, accepted, refused, failed;
    uint64_t stalls; /* times heartbeats were withheld for a stalled loop */
};
void hbthread_get_stats(struct hbthread *h, struct hbthread_stats *ret);
