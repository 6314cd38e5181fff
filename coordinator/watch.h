/* watch: the coordinator's watch subscribers — connections that receive every
 * committed metadata record, in offset order, as server pushes.
 *
 * The hub keeps the most recent committed records in memory (bounded by count and
 * bytes). A subscriber says which offset it applied last; when every record after
 * it is still in memory it gets exactly those, otherwise a full image of the
 * committed state first (WatchImage push) and then every record after the image.
 * From then on each published record is pushed to every subscriber as it is
 * committed.
 *
 * Compact deltas: a subscriber that sets accept_batches (brokers do) gets records
 * as WatchBatch pushes, many per frame. With an event base in the options, the
 * records published during one loop turn (a group commit: a fence is 10,001
 * records) are held and pushed together when the turn ends, in frames of at most
 * batch_bytes of records (a larger record goes alone); replays from the ring are
 * batched the same way. Other subscribers get one WatchRecord push per record.
 * Offsets are exact either way: a batch is consecutive records from first_offset.
 *
 * A subscriber is identified by its connection: it is dropped when the connection
 * closes, and subscribing again on the same connection restarts its stream. A
 * subscriber that does not read its pushes is disconnected by the RPC layer once
 * its unsent output passes the server's max_output_bytes (rpc.h); it reconnects,
 * resubscribes and catches up from the ring or an image. Pushes are never dropped
 * silently: a subscriber either sees every record in order or loses its
 * connection. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct rpc_call;
struct rpc_conn;
struct watch_hub;
struct Weir__Coord__WatchRequest;

#define WATCH_DEFAULT_RING_RECORDS 8192
#define WATCH_DEFAULT_RING_BYTES   (32u * 1024 * 1024)
#define WATCH_DEFAULT_BATCH_BYTES  (1024u * 1024)

struct event_base;

struct watch_options {
    size_t ring_records; /* 0: WATCH_DEFAULT_RING_RECORDS */
    size_t ring_bytes;   /* 0: WATCH_DEFAULT_RING_BYTES */
    size_t batch_bytes;  /* records per batch push, in bytes; 0: WATCH_DEFAULT_BATCH_BYTES */
    /* Set: records published in one loop turn are pushed together when it ends
     * (or as soon as batch_bytes of them are held). NULL: each at once. */
    struct event_base *base;
};

/* Produce an image of the committed state: a packed MetadataImage in a malloc'd
 * buffer the hub frees, and the offset of the last record it includes (-1 when
 * none). Called only when a subscriber needs one. 0 or a negative errno. */
typedef int (*watch_image_fn)(void *ud, uint8_t **ret_data, size_t *ret_len, int64_t *ret_offset);

/* @committed_offset: the last committed offset when the hub starts (-1: none);
 * the next published record must follow it. @opts may be NULL. */
int watch_hub_new(const struct watch_options *opts, int64_t committed_offset,
                  watch_image_fn image_fn, void *image_ud, struct watch_hub **ret);
/* Drops every subscriber (their connections stay open). NULL-safe. */
void watch_hub_free(struct watch_hub *hub);

/* A record became durable and was applied to the committed state: push it to
 * every subscriber (now, or at the end of the loop turn with a base) and keep it
 * for catch-up. @offset must be exactly the last
 * committed offset + 1 (assert). Takes ownership of @data (malloc'd); on -ENOMEM
 * the record is not kept for catch-up (subscribers that need it later get an
 * image) but was pushed. */
int watch_hub_publish(struct watch_hub *hub, int64_t offset, uint8_t *data, size_t len);
/* Push the records held for the end of the loop turn now. */
void watch_hub_flush(struct watch_hub *hub);

/* Handle a Watch call: subscribe the call's connection and answer the call, then
 * push an image if needed and the records the subscriber is missing. The call is
 * always completed. */
void watch_hub_subscribe(struct watch_hub *hub, struct rpc_call *call,
                         const struct Weir__Coord__WatchRequest *req);

/* The committed state jumped to @committed_offset (a quorum voter installed its
 * leader's snapshot): the ring is emptied and every subscriber gets an image of
 * the new state (the image function's) and continues after it; one that cannot
 * take the push is disconnected, to resubscribe. Returns 0. */
int watch_hub_reset(struct watch_hub *hub, int64_t committed_offset);

size_t watch_hub_subscribers(const struct watch_hub *hub);
int64_t watch_hub_committed_offset(const struct watch_hub *hub);

struct watch_stats {
    uint64_t records_pushed; /* records sent, over all subscribers */
    uint64_t frames_pushed;  /* record and batch push frames sent */
    uint64_t bytes_pushed;   /* record bytes sent (payload, without framing) */
    uint64_t images_sent;
    uint64_t replays;      /* subscriptions served from the ring */
    uint64_t disconnected; /* subscribers dropped because a push failed */
};
void watch_hub_get_stats(const struct watch_hub *hub, struct watch_stats *ret);
