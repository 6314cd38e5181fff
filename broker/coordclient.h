/* coordclient: the broker's link to weir-coordinator.
 *
 * Registers the broker (a fresh incarnation id per process), has the heartbeat
 * thread (broker/heartbeat.h) heartbeat at the interval the coordinator answers
 * with, subscribes to the metadata watch and keeps a local replica of the
 * cluster metadata as a struct cstate — built by the coordinator's own
 * cstate_apply code, so there is one metadata model. Watch records may come in
 * batches (WatchBatch); they are applied for at most APPLY_SLICE_MS per loop
 * turn, the rest held in order for the next turns, and the broker is told once
 * they are all applied. A gap in the pushed offsets, a reconnect or an image
 * push reloads the full state.
 *
 * While the coordinator is unreachable the broker keeps its last state and keeps
 * serving; on reconnect, or when a heartbeat says STALE_BROKER_EPOCH, it
 * registers again. Admin requests are forwarded with coordclient_call(); callers
 * that must see the effect of a change wait with coordclient_wait_offset().
 *
 * Everything here runs on the event loop thread; only the heartbeats leave from
 * their own thread, so that a busy loop does not delay them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct cstate;
struct coordclient;
struct broker_settings;
struct ProtobufCMessage;

struct coordclient_callbacks {
    /* The first successful registration (and each later one). */
    void (*on_registered)(void *ud, int64_t broker_epoch);
    /* The local state changed (records applied or an image loaded). */
    void (*on_metadata)(void *ud);
    /* The coordinator belongs to another cluster than coordclient_set_cluster_id()
     * said (it refused the registration with INCONSISTENT_CLUSTER_ID, or its
     * metadata names another cluster id): the broker must stop. Its metadata was
     * not applied. @why is one line naming both ids. May be NULL. */
    void (*on_fatal)(void *ud, const char *why);
    void *ud;
};

/* Starts connecting at once, to the first entry of s->coord (coordinator.connect;
 * a list of the quorum's voters): a voter that does not lead answers
 * NOT_CONTROLLER with a hint and the client moves to the leader at once (also
 * one outside the list); without a hint, or when a connection fails or drops,
 * it tries the next entry with back-off. Registration is kept across moves:
 * the new leader grants the session a fresh timeout, so the broker neither
 * registers again nor gets fenced; the watch resumes from the last applied
 * offset. Borrows @s (must outlive the client). */
int coordclient_new(struct event_base *base, const struct broker_settings *s,
                    const struct coordclient_callbacks *cb, struct coordclient **ret);
void coordclient_free(struct coordclient *cc); /* NULL-safe */

/* The local metadata replica: valid until the next return to the event loop
 * (an image push replaces it). Never NULL. */
const struct cstate *coordclient_state(const struct coordclient *cc);
/* True once the watch delivered a consistent state (image or replay). */
bool coordclient_synced(const struct coordclient *cc);
/* Synced, registered, and the state has reached the coordinator's committed
 * offset as of registration or the last heartbeat: safe to delete local logs
 * of partitions the state does not assign here. */
bool coordclient_caught_up(const struct coordclient *cc);
int64_t coordclient_broker_epoch(const struct coordclient *cc);
bool coordclient_registered(const struct coordclient *cc);

/* The cluster this broker belongs to (from its meta.properties, checked with the
 * coordinator at start-up): sent with every registration, and metadata naming
 * another cluster is never applied. Call before the loop runs. */
void coordclient_set_cluster_id(struct coordclient *cc, const char *cluster_id);
/* That cluster id ("" before it is set). */
const char *coordclient_cluster_id(const struct coordclient *cc);

/* The replication endpoint to announce at registration (call before the loop
 * runs; a later change is sent at the next registration). */
void coordclient_set_replication_endpoint(struct coordclient *cc, const char *host, int port);

/* Registered, synced, and the state has reached the coordinator's offset at
 * this registration: the leaderships it shows may be acted on. */
bool coordclient_current(const struct coordclient *cc);

/* The leader lease: true while this broker may acknowledge writes as a leader.
 * It holds when the broker is registered, its state has caught up with the
 * coordinator's offset at registration (so the leaderships it sees are not from
 * before a fencing), and a heartbeat or registration *sent* less than
 * coordclient_lease_ms(session.timeout.ms) ago (@now_ms, monotonic) was
 * accepted by the quorum leader. The coordinator
 * fences a broker no earlier than session.timeout.ms after it *received* the
 * last heartbeat, so a broker whose lease is valid has not been fenced for
 * silence (architecture invariant 2). */
bool coordclient_lease_valid(const struct coordclient *cc, int64_t now_ms);
/* The lease length for @session_timeout_ms: COORDCLIENT_LEASE_PERMILLE of it.
 * The broker stops acknowledging a tenth early so that clock drift between it
 * and the coordinator (a few percent) never lets its lease outlive the
 * coordinator's session timer (docs/coordinator-quorum.md). */
#define COORDCLIENT_LEASE_PERMILLE 900
int64_t coordclient_lease_ms(int session_timeout_ms);

/* Times the broker moved to another coordinator (a hint, a failure). */
uint64_t coordclient_moves(const struct coordclient *cc);
/* "host:port" of the coordinator talked to now (or being connected to). */
const char *coordclient_coordinator(const struct coordclient *cc);
/* session.timeout.ms as the coordinator announced it (0 before registering). */
int coordclient_session_timeout_ms(const struct coordclient *cc);

typedef void (*coordclient_response_fn)(int status, const struct ProtobufCMessage *resp,
                                        const char *errmsg, void *ud);
/* Forward one Coordinator RPC (method index of proto/coordinator.proto). */
int coordclient_call(struct coordclient *cc, unsigned method, const struct ProtobufCMessage *req,
                     int timeout_ms, coordclient_response_fn cb, void *ud);

/* Call @fn(ud, 0) once the local state reached @offset, or @fn(ud, -ETIMEDOUT)
 * after @timeout_ms. May call @fn before returning when already there. */
typedef void (*coordclient_wait_fn)(void *ud, int result);
int coordclient_wait_offset(struct coordclient *cc, int64_t offset, int timeout_ms,
                            coordclient_wait_fn fn, void *ud);

/* Controlled shutdown: hand over leaderships (a few tries), then leave with
 * exit = true. @done is called once either way. */
void coordclient_shutdown(struct coordclient *cc, void (*done)(void *ud), void *ud);
