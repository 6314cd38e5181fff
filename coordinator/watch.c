/* watch: committed-record fan-out to subscribed connections, with an in-memory
 * ring of recent records for catch-up and a full image for everything older. */
#include "coordinator/watch.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
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
    bool batches; /* takes WatchBatch pushes */
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

    /* Published, not pushed yet: pushed together at the end of the loop turn. */
    struct watch_entry *pending;
    size_t n_pending, pending_cap, pending_bytes;
    struct event *flush_ev;

    struct watch_sub *subs;
    size_t n_subs;
    int iterating; /* > 0 while pushing to the list: closes only mark subscribers */
    bool has_dead;
    struct watch_stats stats;
};

static void sub_on_close(struct rpc_conn *conn, void *ud);
static void on_flush(evutil_socket_t fd, short what, void *arg);

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
    if (hub->opts.batch_bytes == 0)
        hub->opts.batch_bytes = WATCH_DEFAULT_BATCH_BYTES;
    hub->ring = calloc(hub->opts.ring_records, sizeof(*hub->ring));
    if (hub->ring && hub->opts.base)
        hub->flush_ev = evtimer_new(hub->opts.base, on_flush, hub);
    if (!hub->ring || (hub->opts.base && !hub->flush_ev)) {
        free(hub->ring);
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
    for (size_t i = 0; i < hub->n_pending; i++)
        free(hub->pending[i].data);
    free(hub->pending);
    if (hub->flush_ev)
        event_free(hub->flush_ev);
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

/* A push to @sub failed: close its connection (the RPC layer already did for a
 * full output buffer) so the subscriber notices by reconnecting rather than by
 * missing a record. */
static void push_failed(struct watch_hub *hub, struct watch_sub *sub, int64_t offset, int r)
{
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
}

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
    if (r < 0) {
        push_failed(hub, sub, offset, r);
        return false;
    }
    hub->stats.records_pushed++;
    hub->stats.frames_pushed++;
    hub->stats.bytes_pushed += len;
    return true;
}

static bool push_batch(struct watch_hub *hub, struct watch_sub *sub, int64_t first_offset,
                       ProtobufCBinaryData *recs, size_t n, size_t bytes)
{
    if (sub->dead)
        return false;
    Weir__Coord__WatchBatch msg = WEIR__COORD__WATCH_BATCH__INIT;
    msg.first_offset = first_offset;
    msg.n_records = n;
    msg.records = recs;
    int r = rpc_conn_push(sub->conn, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_BATCH, &msg.base);
    if (r < 0) {
        push_failed(hub, sub, first_offset, r);
        return false;
    }
    hub->stats.records_pushed += n;
    hub->stats.frames_pushed++;
    hub->stats.bytes_pushed += bytes;
    return true;
}

/* Consecutive entries of the ring or of the pending list. */
struct entry_view {
    struct watch_entry *v;
    size_t head, cap, n;
};

static struct watch_entry *view_at(const struct entry_view *w, size_t i)
{
    return &w->v[(w->head + i) % w->cap];
}

/* Push the entries of @w with offsets from @from on to @sub: batches of at most
 * batch_bytes of records for a subscriber that takes them (a larger record goes
 * alone), a record push each otherwise. *ret_n (may be NULL) gets the number
 * of records pushed. false when the subscriber is gone. */
static bool push_entries(struct watch_hub *hub, struct watch_sub *sub, const struct entry_view *w,
                         int64_t from, size_t *ret_n)
{
    size_t i = 0, pushed = 0;
    bool ok = true;
    while (i < w->n && view_at(w, i)->offset < from)
        i++;
    if (!sub->batches || i == w->n) {
        for (; i < w->n && ok; i++, pushed++) {
            struct watch_entry *e = view_at(w, i);
            ok = push_record(hub, sub, e->offset, e->data, e->len);
        }
        if (ret_n)
            *ret_n = pushed;
        return ok;
    }
    ProtobufCBinaryData *recs = malloc((w->n - i) * sizeof(*recs));
    if (!recs) {
        log_warn("watch", "out of memory pushing to %s (broker %d): disconnecting",
                 rpc_conn_peer(sub->conn), (int)sub->broker_id);
        hub->stats.disconnected++;
        rpc_conn_close(sub->conn);
        return false;
    }
    while (i < w->n && ok) {
        int64_t first = view_at(w, i)->offset;
        size_t k = 0, bytes = 0;
        for (; i < w->n; i++, k++) {
            struct watch_entry *e = view_at(w, i);
            if (k > 0 && bytes + e->len > hub->opts.batch_bytes)
                break;
            recs[k].data = e->data;
            recs[k].len = e->len;
            bytes += e->len;
        }
        ok = push_batch(hub, sub, first, recs, k, bytes);
        if (ok)
            pushed += k;
    }
    free(recs);
    if (ret_n)
        *ret_n = pushed;
    return ok;
}

/* Keep a pushed record for catch-up (takes ownership of @data), evicting the
 * oldest beyond the bounds. A record larger than the whole byte budget is not
 * kept: those who need it get an image. */
static void ring_keep(struct watch_hub *hub, int64_t offset, uint8_t *data, size_t len)
{
    if (len > hub->opts.ring_bytes) {
        while (hub->count > 0)
            ring_drop_oldest(hub);
        free(data);
        return;
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
}

static void push_to_all(struct watch_hub *hub, const struct entry_view *w)
{
    hub->iterating++;
    for (struct watch_sub *sub = hub->subs; sub; sub = sub->next)
        push_entries(hub, sub, w, INT64_MIN, NULL);
    hub->iterating--;
    sweep_dead(hub);
}

void watch_hub_flush(struct watch_hub *hub)
{
    if (hub->flush_ev)
        event_del(hub->flush_ev);
    if (hub->n_pending == 0)
        return;
    struct entry_view w = {hub->pending, 0, hub->pending_cap, hub->n_pending};
    push_to_all(hub, &w);
    for (size_t i = 0; i < hub->n_pending; i++)
        ring_keep(hub, hub->pending[i].offset, hub->pending[i].data, hub->pending[i].len);
    hub->n_pending = 0;
    hub->pending_bytes = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    watch_hub_flush(arg);
}

int watch_hub_publish(struct watch_hub *hub, int64_t offset, uint8_t *data, size_t len)
{
    assert(offset == hub->committed + 1);
    hub->committed = offset;

    if (hub->n_pending == hub->pending_cap) {
        size_t cap = hub->pending_cap ? 2 * hub->pending_cap : 64;
        struct watch_entry *p = realloc(hub->pending, cap * sizeof(*p));
        if (!p) {
            /* Push what is held and this one at once, in order. */
            watch_hub_flush(hub);
            struct watch_entry one = {offset, data, len};
            struct entry_view w = {&one, 0, 1, 1};
            push_to_all(hub, &w);
            ring_keep(hub, offset, data, len);
            return 0;
        }
        hub->pending = p;
        hub->pending_cap = cap;
    }
    hub->pending[hub->n_pending++] = (struct watch_entry){offset, data, len};
    hub->pending_bytes += len;
    if (!hub->flush_ev || hub->pending_bytes >= hub->opts.batch_bytes) {
        watch_hub_flush(hub);
    } else if (!evtimer_pending(hub->flush_ev, NULL)) {
        struct timeval now = {0, 0};
        evtimer_add(hub->flush_ev, &now);
    }
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
    /* Everything published so far goes to the current subscribers first, so
     * the ring holds it and this subscriber gets each record exactly once. */
    watch_hub_flush(hub);
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
    sub->batches = req->accept_batches;

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
        size_t replayed = 0;
        struct entry_view w = {hub->ring, hub->head, hub->opts.ring_records, hub->count};
        ok = push_entries(hub, sub, &w, resp.next_offset, &replayed);
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

int watch_hub_reset(struct watch_hub *hub, int64_t committed_offset)
{
    watch_hub_flush(hub);
    while (hub->count > 0)
        ring_drop_oldest(hub);
    hub->committed = committed_offset;
    if (!hub->subs)
        return 0;
    uint8_t *image = NULL;
    size_t image_len = 0;
    int64_t image_offset = -1;
    int r = hub->image_fn(hub->image_ud, &image, &image_len, &image_offset);
    if (r == 0 && image_offset != committed_offset)
        r = -EINVAL;
    hub->iterating++;
    for (struct watch_sub *sub = hub->subs; sub; sub = sub->next) {
        if (sub->dead)
            continue;
        int pr = r;
        if (pr == 0) {
            Weir__Coord__WatchImage msg = WEIR__COORD__WATCH_IMAGE__INIT;
            msg.offset = image_offset;
            msg.image.data = image;
            msg.image.len = image_len;
            pr = rpc_conn_push(sub->conn, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_IMAGE,
                               &msg.base);
        }
        if (pr < 0) {
            /* It resubscribes and gets an image then. */
            log_warn("watch", "cannot push a new image to %s: %s; disconnecting",
                     rpc_conn_peer(sub->conn), strerror(-pr));
            rpc_conn_close(sub->conn);
        } else {
            hub->stats.images_sent++;
        }
    }
    hub->iterating--;
    free(image);
    sweep_dead(hub);
    return 0;
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
