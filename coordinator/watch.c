/* watch: committed-record fan-out to subscribed connections, with an in-memory
 * ring of recent records for catch-up and a full image for everything older. */
#include "coordinator/watch.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"

struct watch_entry {
    int64_t offset;
    uint8_t *data;
    size_t len;
};

struct watch_sub {
    struct watch_hub *hub;
    struct rpc_conn *conn; /* referenced */
    int32_t broker_id;
    bool dead; /* closed while the hub was iterating; unlinked afterwards */
    struct watch_sub *prev, *next;
};

struct watch_hub {
    struct watch_options opts;
    int64_t committed; /* last published offset */
    watch_image_fn image_fn;
    void *image_ud;

    struct watch_entry *ring; /* circular, ring_records slots */
    size_t head;              /* index of the oldest entry */
    size_t count;
    size_t bytes;

    struct watch_sub *subs;
    size_t n_subs;
    int iterating; /* > 0 while pushing to the list: closes only mark subscribers */
    bool has_dead;
    struct watch_stats stats;
};

static void sub_on_close(struct rpc_conn *conn, void *ud);

static void sub_unlink_free(struct watch_hub *hub, struct watch_sub *sub)
{
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        hub->subs = sub->next;
    if (sub->next)
        sub->next->prev = sub->prev;
    hub->n_subs--;
    rpc_conn_unref(sub->conn);
    free(sub);
}

static void sweep_dead(struct watch_hub *hub)
{
    if (hub->iterating || !hub->has_dead)
        return;
    hub->has_dead = false;
    struct watch_sub *sub = hub->subs;
    while (sub) {
        struct watch_sub *next = sub->next;
        if (sub->dead)
            sub_unlink_free(hub, sub);
        sub = next;
    }
}

static void sub_on_close(struct rpc_conn *conn, void *ud)
{
    (void)conn;
    struct watch_sub *sub = ud;
    struct watch_hub *hub = sub->hub;
    log_debug("watch", "subscriber %s (broker %d) dropped: connection closed",
              rpc_conn_peer(sub->conn), (int)sub->broker_id);
    if (hub->iterating) {
        sub->dead = true;
        hub->has_dead = true;
    } else {
        sub_unlink_free(hub, sub);
    }
}

int watch_hub_new(const struct watch_options *opts, int64_t committed_offset,
                  watch_image_fn image_fn, void *image_ud, struct watch_hub **ret)
{
    if (!image_fn || committed_offset < -1)
        return -EINVAL;
    struct watch_hub *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return -ENOMEM;
    if (opts)
        hub->opts = *opts;
    if (hub->opts.ring_records == 0)
        hub->opts.ring_records = WATCH_DEFAULT_RING_RECORDS;
    if (hub->opts.ring_bytes == 0)
        hub->opts.ring_bytes = WATCH_DEFAULT_RING_BYTES;
    hub->ring = calloc(hub->opts.ring_records, sizeof(*hub->ring));
    if (!hub->ring) {
        free(hub);
        return -ENOMEM;
    }
    hub->committed = committed_offset;
    hub->image_fn = image_fn;
    hub->image_ud = image_ud;
    *ret = hub;
    return 0;
}

void watch_hub_free(struct watch_hub *hub)
{
    if (!hub)
        return;
    while (hub->subs) {
        struct watch_sub *sub = hub->subs;
        if (!sub->dead)
            rpc_conn_remove_on_close(sub->conn, sub_on_close, sub);
        sub_unlink_free(hub, sub);
    }
    for (size_t i = 0; i < hub->count; i++)
        free(hub->ring[(hub->head + i) % hub->opts.ring_records].data);
    free(hub->ring);
    free(hub);
}

static struct watch_entry *ring_at(struct watch_hub *hub, size_t i)
{
    return &hub->ring[(hub->head + i) % hub->opts.ring_records];
}

static void ring_drop_oldest(struct watch_hub *hub)
{
    struct watch_entry *e = ring_at(hub, 0);
    hub->bytes -= e->len;
    free(e->data);
    e->data = NULL;
    hub->head = (hub->head + 1) % hub->opts.ring_records;
    hub->count--;
}

/* Offset of the oldest record still in the ring; committed + 1 when empty. */
static int64_t ring_first(const struct watch_hub *hub)
{
    if (hub->count == 0)
        return hub->committed + 1;
    return hub->ring[hub->head].offset;
}

/* Push one record to one subscriber. On failure the connection is closed (by the
 * RPC layer for a full output buffer, here otherwise) so the subscriber notices
 * the gap by reconnecting rather than by missing a record. */
static bool push_record(struct watch_hub *hub, struct watch_sub *sub, int64_t offset,
                        const uint8_t *data, size_t len)
{
    if (sub->dead)
        return false;
    Weir__Coord__WatchRecord msg = WEIR__COORD__WATCH_RECORD__INIT;
    msg.offset = offset;
    msg.record.data = (uint8_t *)data;
    msg.record.len = len;
    int r = rpc_conn_push(sub->conn, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_RECORD, &msg.base);
    if (r == 0) {
        hub->stats.records_pushed++;
        return true;
    }
    hub->stats.disconnected++;
    if (r == -ENOBUFS)
        log_warn("watch",
                 "subscriber %s (broker %d) is too far behind at offset %" PRId64
                 ": disconnected; it will resubscribe",
                 rpc_conn_peer(sub->conn), (int)sub->broker_id, offset);
    else if (r != -ENOTCONN)
        log_warn("watch", "cannot push offset %" PRId64 " to %s (broker %d): %s; disconnecting",
                 offset, rpc_conn_peer(sub->conn), (int)sub->broker_id, strerror(-r));
    rpc_conn_close(sub->conn);
    return false;
}

int watch_hub_publish(struct watch_hub *hub, int64_t offset, uint8_t *data, size_t len)
{
    assert(offset == hub->committed + 1);
    hub->committed = offset;

    hub->iterating++;
    for (struct watch_sub *sub = hub->subs; sub; sub = sub->next)
        push_record(hub, sub, offset, data, len);
    hub->iterating--;
    sweep_dead(hub);

    /* Keep it for catch-up, evicting the oldest beyond the bounds. A record
     * larger than the whole byte budget is not kept: those who need it get an
     * image. */
    if (len > hub->opts.ring_bytes) {
        while (hub->count > 0)
            ring_drop_oldest(hub);
        free(data);
        return 0;
    }
    while (hub->count > 0 &&
           (hub->count >= hub->opts.ring_records || hub->bytes + len > hub->opts.ring_bytes))
        ring_drop_oldest(hub);
    struct watch_entry *e = ring_at(hub, hub->count);
    e->offset = offset;
    e->data = data;
    e->len = len;
    hub->count++;
    hub->bytes += len;
    return 0;
}

static struct watch_sub *find_sub(struct watch_hub *hub, struct rpc_conn *conn)
{
    for (struct watch_sub *sub = hub->subs; sub; sub = sub->next)
        if (sub->conn == conn && !sub->dead)
            return sub;
    return NULL;
}

static void reply_error(struct rpc_call *call, int32_t code, const char *msg)
{
    Weir__Coord__WatchResponse resp = WEIR__COORD__WATCH_RESPONSE__INIT;
    resp.error_code = code;
    resp.error_message = (char *)msg;
    resp.next_offset = -1;
    rpc_call_reply(call, &resp.base);
}

void watch_hub_subscribe(struct watch_hub *hub, struct rpc_call *call,
                         const Weir__Coord__WatchRequest *req)
{
    struct rpc_conn *conn = rpc_call_connection(call);
    const int64_t last = req->last_offset;
    const int64_t committed = hub->committed;
    bool need_image;
    if (last < -1 || last > committed) {
        /* A subscriber ahead of us saw records this coordinator does not have
         * (another cluster, or a data directory restored from an old copy): it
         * must start over from our image. */
        if (last > committed)
            log_warn("watch",
                     "subscriber %s (broker %d) has offset %" PRId64
                     ", past the committed offset %" PRId64 ": sending an image",
                     rpc_conn_peer(conn), (int)req->broker_id, last, committed);
        need_image = true;
    } else {
        need_image = last + 1 < ring_first(hub);
    }

    /* Take the image before subscribing, so a failure leaves nothing behind. An
     * existing subscription on this connection cannot continue either (the
     * subscriber asked to restart), so the connection is closed. */
    uint8_t *image = NULL;
    size_t image_len = 0;
    int64_t image_offset = -1;
    if (need_image) {
        int r = hub->image_fn(hub->image_ud, &image, &image_len, &image_offset);
        if (r < 0) {
            log_warn("watch", "cannot build an image for %s: %s", rpc_conn_peer(conn),
                     strerror(-r));
            reply_error(call, -1, "cannot build a metadata image");
            if (find_sub(hub, conn))
                rpc_conn_close(conn);
            return;
        }
        assert(image_offset == committed);
    }

    struct watch_sub *sub = find_sub(hub, conn);
    if (!sub) {
        sub = calloc(1, sizeof(*sub));
        if (!sub) {
            free(image);
            reply_error(call, -1, "out of memory");
            return;
        }
        sub->hub = hub;
        sub->conn = rpc_conn_ref(conn);
        if (rpc_conn_on_close(conn, sub_on_close, sub) < 0) {
            /* Already closed: nobody to stream to. */
            rpc_conn_unref(sub->conn);
            free(sub);
            free(image);
            rpc_call_fail(call, RPC_INTERNAL, "connection closed");
            return;
        }
        sub->next = hub->subs;
        if (hub->subs)
            hub->subs->prev = sub;
        hub->subs = sub;
        hub->n_subs++;
    }
    sub->broker_id = req->broker_id;

    Weir__Coord__WatchResponse resp = WEIR__COORD__WATCH_RESPONSE__INIT;
    resp.full_image = need_image;
    resp.next_offset = need_image ? image_offset + 1 : last + 1;
    /* Hold the subscriber across the reply: a failed reply closes the connection
     * and its close hook frees the subscriber. */
    rpc_conn_ref(conn);
    hub->iterating++;
    int r = rpc_call_reply(call, &resp.base);
    bool ok = r == 0 && !sub->dead;
    if (ok && need_image) {
        Weir__Coord__WatchImage msg = WEIR__COORD__WATCH_IMAGE__INIT;
        msg.offset = image_offset;
        msg.image.data = image;
        msg.image.len = image_len;
        r = rpc_conn_push(conn, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_IMAGE, &msg.base);
        if (r < 0) {
            log_warn("watch", "cannot push a %zu-byte image to %s: %s; disconnecting", image_len,
                     rpc_conn_peer(conn), strerror(-r));
            rpc_conn_close(conn);
            ok = false;
        } else {
            hub->stats.images_sent++;
        }
    }
    free(image);
    if (ok) {
        int64_t from = resp.next_offset;
        size_t replayed = 0;
        for (size_t i = 0; i < hub->count && ok; i++) {
            struct watch_entry *e = ring_at(hub, i);
            if (e->offset < from)
                continue;
            ok = push_record(hub, sub, e->offset, e->data, e->len);
            replayed++;
        }
        if (!need_image && ok)
            hub->stats.replays++;
        if (ok)
            log_debug("watch", "subscriber %s (broker %d) from offset %" PRId64 ": %s, %zu records",
                      rpc_conn_peer(conn), (int)req->broker_id, last,
                      need_image ? "image" : "replay", replayed);
    }
    hub->iterating--;
    rpc_conn_unref(conn);
    sweep_dead(hub);
}

size_t watch_hub_subscribers(const struct watch_hub *hub)
{
    return hub->n_subs;
}

int64_t watch_hub_committed_offset(const struct watch_hub *hub)
{
    return hub->committed;
}

void watch_hub_get_stats(const struct watch_hub *hub, struct watch_stats *ret)
{
    *ret = hub->stats;
}
