/* coordclient: registration, heartbeats, the metadata watch and the local
 * cstate replica, and forwarding of admin RPCs to the coordinator. */
#include "broker/coordclient.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_config.h"
#include "broker/coordaddr.h"
#include "broker/heartbeat.h"
#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "methods.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "common/meta/state.h"
#include "metadata.pb-c.h"


#define SHUTDOWN_TRIES     5
/* Reconnect delays cap at this (rpc backoff), so that walking the list of
 * coordinators after the leader died takes a fraction of an election. */
#define COORDCLIENT_BACKOFF_MAX_MS 500
/* NOT_CONTROLLER without a hint: an election is on; ask the next one after. */
#define COORDCLIENT_NO_LEADER_PAUSE_MS 150
/* A hint naming the coordinator that failed less than this ago is ignored
 * (followers keep naming a dead leader until their election timer fires). */
#define COORDCLIENT_DEAD_HINT_MS 1000
/* Watch records are applied for at most this long per loop turn; the rest
 * wait, in order, for the next turn (a fence arrives as one batch of 10,001). */
#define APPLY_SLICE_MS     10
/* While records are held the broker is told of applied ones at the end, but
 * never later than this after the first change it was not told of (a stream
 * that never lets the queue drain must not starve the replicas). */
#define NOTIFY_MAX_DEFER_MS 250
/* Records held beyond this many bytes: drop them and resubscribe (image). */
#define APPLY_QUEUE_MAX_BYTES (64u * 1024 * 1024)

/* A pushed record not applied yet (owns @data). */
struct held_rec {
    int64_t offset;
    uint8_t *data;
    size_t len;
};

struct waiter {
    struct waiter *next;
    int64_t offset;
    struct event *timer;
    coordclient_wait_fn fn;
    void *ud;
    struct coordclient *cc;
};

struct coordclient {
    struct event_base *base;
    const struct broker_settings *s;
    struct coordclient_callbacks cb;
    struct rpc_client *rpc;
    struct coordaddr addr;  /* coordinator.connect, and which one we talk to */
    char connected_to[300]; /* "host:port" of the live connection; "" none */
    uint64_t moves;         /* times the broker moved to another coordinator */
    char failed[300];       /* "host:port" that last failed or dropped ... */
    int64_t failed_ms;      /* ... at this monotonic time; -1 none */
    struct cstate *state;
    bool synced;
    bool registered;
    bool registering;
    bool shutting_down;
    int64_t epoch;
    int64_t coord_offset; /* the coordinator's committed offset, last we heard */
    uint8_t incarnation[16];
    int heartbeat_ms;
    int session_timeout_ms; /* from the registration answer */
    int64_t lease_start_ms; /* monotonic send time of the last accepted heartbeat or
                               registration; -1: none */
    int64_t reg_offset;     /* the coordinator's offset when we last registered */
    char cluster_id[64];    /* the cluster we belong to; "" not set */
    bool foreign;           /* the coordinator serves another cluster: apply nothing */
    char repl_host[256];    /* replication endpoint to register; "" none */
    int repl_port;
    struct hbthread *hb;      /* heartbeats: their own thread and connection */
    struct event *reg_timer;  /* retries a registration that did not happen */
    struct event *changed_ev; /* tells the broker of applied records, once per loop turn */
    bool notify_owed;         /* a change was not told yet: records were still held */
    int64_t owed_since_ms;    /* when notify_owed became true */
    struct held_rec *q;       /* pushed, not applied yet: FIFO [q_head, q_n) */
    size_t q_head, q_n, q_cap, q_bytes;
    struct event *apply_ev;   /* applies the next slice of q */
    struct waiter *waiters;
    int cs_tries;
    void (*cs_done)(void *);
    void *cs_ud;
};

static void do_register(struct coordclient *cc);
static void do_watch(struct coordclient *cc);

static void new_incarnation(uint8_t out[16])
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, 16) : -1;
    if (fd >= 0)
        close(fd);
    if (n != 16) {
        uint64_t t = (uint64_t)clock_mono_ns() ^ ((uint64_t)getpid() << 32);
        memcpy(out, &t, 8);
        t = (uint64_t)clock_wall_us();
        memcpy(out + 8, &t, 8);
    }
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

/* ---- which coordinator -------------------------------------------------------- */

/* Point both connections (this loop's and the heartbeat thread's) at the
 * current address of cc->addr, connecting after @delay_ms (0: at once; < 0:
 * with the client's backoff). */
static void retarget(struct coordclient *cc, int delay_ms, const char *why)
{
    const struct coordaddr_entry *e = coordaddr_current(&cc->addr);
    int r = rpc_client_retarget(cc->rpc, e->host, e->port, delay_ms);
    if (r < 0) {
        log_warn("coordclient", "cannot switch to coordinator %s:%d: %s", e->host, e->port,
                 strerror(-r));
        return;
    }
    hbthread_set_target(cc->hb, e->host, e->port);
    cc->moves++;
    log_info("coordclient", "%s: talking to coordinator %s:%d", why, e->host, e->port);
}

/* A coordinator answered NOT_CONTROLLER for @what: go to the hinted leader at
 * once, or without a hint (an election is on) try the next coordinator after
 * a short pause. */
static void follow_leader(struct coordclient *cc, const Weir__Coord__LeaderHint *hint,
                          const char *what)
{
    if (cc->shutting_down)
        return;
    /* Moving already (another refusal on the same connection came first). */
    if (cc->connected_to[0] && strcmp(cc->connected_to, rpc_client_peer(cc->rpc)) != 0)
        return;
    /* A follower names the leader it last heard of until its election timer
     * runs out: a leader that just died is not worth another try yet. */
    char hinted[300] = "";
    if (hint && hint->host)
        snprintf(hinted, sizeof(hinted), "%s:%d", hint->host, hint->port);
    if (hinted[0] && cc->failed_ms >= 0 && strcmp(hinted, cc->failed) == 0 &&
        clock_mono_ms() - cc->failed_ms < COORDCLIENT_DEAD_HINT_MS)
        hint = NULL;
    if (hint && hint->host && hint->host[0]) {
        if (coordaddr_adopt(&cc->addr, hint->host, hint->port)) {
            char why[128];
            snprintf(why, sizeof(why), "%s: coordinator %d leads the quorum", what,
                     (int)hint->node_id);
            retarget(cc, 0, why);
        }
        /* Already there: the answer came over the old connection. */
        return;
    }
    if (cc->addr.n <= 1 && !cc->addr.adopted)
        return; /* a single coordinator: nowhere else to ask; it is retried */
    coordaddr_advance(&cc->addr);
    char why[128];
    snprintf(why, sizeof(why), "%s: no quorum leader known", what);
    retarget(cc, COORDCLIENT_NO_LEADER_PAUSE_MS, why);
}

/* A response to forwarded call @method, if it is NOT_CONTROLLER with a hint
 * field: follow it (the caller still gets the answer and retries). */
static void check_not_controller(struct coordclient *cc, unsigned method,
                                 const struct ProtobufCMessage *resp, const char *what)
{
    const ProtobufCMessageDescriptor *d = resp ? resp->descriptor : NULL;
    (void)method;
    const ProtobufCFieldDescriptor *fc =
        d ? protobuf_c_message_descriptor_get_field_by_name(d, "error_code") : NULL;
    const ProtobufCFieldDescriptor *fh =
        d ? protobuf_c_message_descriptor_get_field_by_name(d, "leader_hint") : NULL;
    if (!fc || !fh || fc->type != PROTOBUF_C_TYPE_INT32 || fc->label != PROTOBUF_C_LABEL_NONE ||
        fh->descriptor != &weir__coord__leader_hint__descriptor)
        return;
    if (*(const int32_t *)((const char *)resp + fc->offset) != KERR_NOT_CONTROLLER)
        return;
    follow_leader(cc, *(Weir__Coord__LeaderHint *const *)((const char *)resp + fh->offset), what);
}

/* ---- waiters ---------------------------------------------------------------- */

static void waiter_remove(struct coordclient *cc, struct waiter *w)
{
    for (struct waiter **p = &cc->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    event_free(w->timer);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    struct coordclient *cc = w->cc;
    waiter_remove(cc, w);
    coordclient_wait_fn fn = w->fn;
    void *ud = w->ud;
    free(w);
    fn(ud, -ETIMEDOUT);
}

static void waiters_check(struct coordclient *cc)
{
    for (;;) {
        struct waiter *w = cc->waiters;
        while (w && w->offset > cc->state->offset)
            w = w->next;
        if (!w)
            return;
        waiter_remove(cc, w);
        coordclient_wait_fn fn = w->fn;
        void *ud = w->ud;
        free(w);
        fn(ud, 0);
    }
}

int coordclient_wait_offset(struct coordclient *cc, int64_t offset, int timeout_ms,
                            coordclient_wait_fn fn, void *ud)
{
    if (cc->state->offset >= offset) {
        fn(ud, 0);
        return 0;
    }
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->timer = evtimer_new(cc->base, waiter_timeout, w);
    if (!w->timer) {
        free(w);
        return -ENOMEM;
    }
    w->offset = offset;
    w->fn = fn;
    w->ud = ud;
    w->cc = cc;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(w->timer, &tv);
    w->next = cc->waiters;
    cc->waiters = w;
    return 0;
}

/* ---- watch -------------------------------------------------------------------- */

/* Refuse a coordinator of another cluster: stop applying anything it sends and
 * tell the broker, once. */
static void foreign_cluster(struct coordclient *cc, const char *theirs, const char *how)
{
    if (cc->foreign)
        return;
    cc->foreign = true;
    cc->registered = false;
    hbthread_set_session(cc->hb, -1, 0, 0);
    cc->lease_start_ms = -1;
    char why[512];
    snprintf(why, sizeof(why),
             "the coordinator %s serves cluster %s but this broker belongs to cluster %s (%s)",
             rpc_client_peer(cc->rpc), theirs && *theirs ? theirs : "?", cc->cluster_id,
             how);
    if (cc->cb.on_fatal)
        cc->cb.on_fatal(cc->cb.ud, why);
    else
        log_error("coordclient", "%s", why);
}

/* True when @s names a cluster other than ours. A state without an id yet
 * (empty, or a replay that has not reached the bootstrap record) is not. */
static bool state_foreign(const struct coordclient *cc, const struct cstate *s)
{
    return cc->cluster_id[0] && s->cluster_id && strcmp(s->cluster_id, cc->cluster_id) != 0;
}

static void on_state_changed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coordclient *cc = arg;
    if (cc->q_n > cc->q_head) {
        /* Mid-batch: the broker hears once the held records are applied, or
         * after NOTIFY_MAX_DEFER_MS (the state is whole at every record). */
        int64_t now = clock_mono_ms();
        if (!cc->notify_owed) {
            cc->notify_owed = true;
            cc->owed_since_ms = now;
        }
        if (now - cc->owed_since_ms < NOTIFY_MAX_DEFER_MS)
            return;
    }
    cc->notify_owed = false;
    if (cc->cb.on_metadata)
        cc->cb.on_metadata(cc->cb.ud);
    waiters_check(cc);
}

/* Records come in bursts (fencing a broker writes one per partition it was
 * in): each is applied at once, but the broker reconciles its replicas — a
 * sweep over every partition — once after the burst, not once per record. */
static void state_changed(struct coordclient *cc)
{
    hbthread_set_applied(cc->hb, cc->state->offset);
    if (!evtimer_pending(cc->changed_ev, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(cc->changed_ev, &tv);
    }
}

static void held_clear(struct coordclient *cc)
{
    for (size_t i = cc->q_head; i < cc->q_n; i++)
        free(cc->q[i].data);
    cc->q_head = cc->q_n = 0;
    cc->q_bytes = 0;
    if (cc->apply_ev)
        event_del(cc->apply_ev);
}

/* The stream cannot continue (a gap, a record that does not apply): drop what
 * is held and subscribe again from the beginning. */
static void restart_watch(struct coordclient *cc)
{
    cc->synced = false;
    held_clear(cc);
    do_watch(cc);
}

/* Apply the record at @offset. false when the stream stopped (resubscribed, or
 * the coordinator serves another cluster): drop the rest. */
static bool apply_one(struct coordclient *cc, int64_t offset, const uint8_t *data, size_t len)
{
    if (cc->foreign || !cc->synced)
        return false; /* waiting for the image or the first replayed record */
    if (offset <= cc->state->offset)
        return true;
    if (offset != cc->state->offset + 1) {
        log_warn("coordclient", "metadata gap: got %" PRId64 " after %" PRId64 ": resubscribing",
                 offset, cc->state->offset);
        restart_watch(cc);
        return false;
    }
    /* A bootstrap record is the only one that sets the cluster id, and only on
     * a state without one (a replay from the start): look at it before it is
     * applied. Other records are decoded once, by cstate_apply_bytes. */
    Weir__Meta__MetadataRecord *mr =
        cc->state->cluster_id ? NULL : weir__meta__metadata_record__unpack(NULL, len, data);
    if (mr && mr->record_case == WEIR__META__METADATA_RECORD__RECORD_BOOTSTRAP &&
        cc->cluster_id[0] && mr->bootstrap->cluster_id &&
        strcmp(mr->bootstrap->cluster_id, cc->cluster_id) != 0) {
        char theirs[64];
        snprintf(theirs, sizeof(theirs), "%s", mr->bootstrap->cluster_id);
        weir__meta__metadata_record__free_unpacked(mr, NULL);
        held_clear(cc);
        foreign_cluster(cc, theirs, "its metadata log starts with another cluster id");
        return false;
    }
    if (mr)
        weir__meta__metadata_record__free_unpacked(mr, NULL);
    char why[256] = "";
    int r = cstate_apply_bytes(cc->state, offset, data, len, why, sizeof(why));
    if (r < 0) {
        log_warn("coordclient", "metadata record %" PRId64 " does not apply (%s): resubscribing",
                 offset, why[0] ? why : strerror(-r));
        restart_watch(cc);
        return false;
    }
    state_changed(cc);
    return true;
}

/* Hold @n records (copied) after those already held. false: out of memory or
 * over the cap — the stream restarted. */
static bool held_append(struct coordclient *cc, int64_t first_offset,
                        const ProtobufCBinaryData *recs, size_t n)
{
    if (cc->q_head > 0 && cc->q_n + n > cc->q_cap) {
        memmove(cc->q, cc->q + cc->q_head, (cc->q_n - cc->q_head) * sizeof(*cc->q));
        cc->q_n -= cc->q_head;
        cc->q_head = 0;
    }
    if (cc->q_n + n > cc->q_cap) {
        size_t cap = cc->q_cap ? cc->q_cap : 256;
        while (cap < cc->q_n + n)
            cap *= 2;
        struct held_rec *q = realloc(cc->q, cap * sizeof(*q));
        if (!q)
            goto fail;
        cc->q = q;
        cc->q_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        if (cc->q_bytes + recs[i].len > APPLY_QUEUE_MAX_BYTES) {
            log_warn("coordclient",
                     "over %u bytes of metadata records waiting to be applied: resubscribing",
                     APPLY_QUEUE_MAX_BYTES);
            goto fail;
        }
        uint8_t *d = malloc(recs[i].len ? recs[i].len : 1);
        if (!d)
            goto fail;
        memcpy(d, recs[i].data, recs[i].len);
        cc->q[cc->q_n++] = (struct held_rec){first_offset + (int64_t)i, d, recs[i].len};
        cc->q_bytes += recs[i].len;
    }
    return true;
fail:
    restart_watch(cc);
    return false;
}

/* Apply held records until the slice is spent; the rest go on next turn. */
static void apply_held(struct coordclient *cc)
{
    int64_t deadline = clock_mono_ms() + APPLY_SLICE_MS;
    size_t done = 0;
    while (cc->q_head < cc->q_n) {
        struct held_rec *h = &cc->q[cc->q_head];
        bool ok = apply_one(cc, h->offset, h->data, h->len);
        if (!ok)
            return; /* the stream restarted: nothing is held any more */
        free(h->data);
        cc->q_bytes -= h->len;
        cc->q_head++;
        if ((++done & 31) == 0 && clock_mono_ms() >= deadline)
            break;
    }
    if (cc->q_head < cc->q_n) {
        struct timeval now = {0, 0};
        evtimer_add(cc->apply_ev, &now);
        return;
    }
    cc->q_head = cc->q_n = 0;
    if (cc->notify_owed)
        state_changed(cc);
}

static void on_apply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    apply_held(arg);
}

/* Records @first_offset.. arrived: apply what fits in this slice (when nothing
 * is held before them) and hold the rest, in order. */
static void take_records(struct coordclient *cc, int64_t first_offset,
                         const ProtobufCBinaryData *recs, size_t n)
{
    if (cc->foreign || !cc->synced)
        return; /* waiting for the image or the first replayed record */
    size_t i = 0;
    if (cc->q_head == cc->q_n) {
        int64_t deadline = clock_mono_ms() + APPLY_SLICE_MS;
        for (; i < n; i++) {
            if (i > 0 && (i & 31) == 0 && clock_mono_ms() >= deadline)
                break;
            if (!apply_one(cc, first_offset + (int64_t)i, recs[i].data, recs[i].len))
                return;
        }
    }
    if (i < n && held_append(cc, first_offset + (int64_t)i, recs + i, n - i) &&
        !evtimer_pending(cc->apply_ev, NULL)) {
        struct timeval now = {0, 0};
        evtimer_add(cc->apply_ev, &now);
    }
}

static void on_watch_record(uint16_t type, const struct ProtobufCMessage *msg, void *ud)
{
    const Weir__Coord__WatchRecord *rec = (const Weir__Coord__WatchRecord *)msg;
    take_records(ud, rec->offset, &rec->record, 1);
}

static void on_watch_batch(uint16_t type, const struct ProtobufCMessage *msg, void *ud)
{
    const Weir__Coord__WatchBatch *b = (const Weir__Coord__WatchBatch *)msg;
    take_records(ud, b->first_offset, b->records, b->n_records);
}

static void on_watch_image(uint16_t type, const struct ProtobufCMessage *msg, void *ud)
{
    struct coordclient *cc = ud;
    const Weir__Coord__WatchImage *img = (const Weir__Coord__WatchImage *)msg;
    if (cc->foreign)
        return;
    struct cstate *s = NULL;
    char why[256] = "";
    int r;
    if (img->image.len == 0 && img->offset < 0)
        r = cstate_new(&s);
    else
        r = cstate_snapshot_decode(img->image.data, img->image.len, &s, why, sizeof(why));
    if (r < 0) {
        log_error("coordclient", "metadata image does not load: %s", why[0] ? why : strerror(-r));
        return;
    }
    s->offset = img->offset;
    if (state_foreign(cc, s)) {
        char theirs[64];
        snprintf(theirs, sizeof(theirs), "%s", s->cluster_id);
        cstate_free(s);
        foreign_cluster(cc, theirs, "its metadata image names another cluster id");
        return;
    }
    held_clear(cc); /* all older than the image */
    cstate_free(cc->state);
    cc->state = s;
    cc->synced = true;
    if (cc->coord_offset < s->offset)
        cc->coord_offset = s->offset;
    log_info("coordclient", "metadata image loaded at offset %" PRId64 ": %zu brokers, %zu topics",
             img->offset, s->n_brokers, s->n_topics);
    state_changed(cc);
}

static void on_watch_response(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                              void *ud)
{
    struct coordclient *cc = ud;
    if (status != RPC_OK) {
        log_warn("coordclient", "watch failed: %s", errmsg);
        return; /* the reconnect subscribes again */
    }
    const Weir__Coord__WatchResponse *resp = (const Weir__Coord__WatchResponse *)msg;
    if (resp->error_code == KERR_NOT_CONTROLLER) {
        follow_leader(cc, resp->leader_hint, "watch refused");
        return; /* the next connection subscribes again */
    }
    if (resp->error_code) {
        log_warn("coordclient", "watch refused: %s: %s", kerr_name((int16_t)resp->error_code),
                 resp->error_message);
        return;
    }
    if (!resp->full_image) {
        /* Records after our offset follow. When we asked from the beginning
         * they rebuild the state from scratch. */
        if (!cc->synced) {
            struct cstate *s;
            if (cstate_new(&s) < 0) {
                log_error("coordclient", "out of memory resetting the metadata state");
                return;
            }
            cstate_free(cc->state);
            cc->state = s;
        }
        cc->synced = true;
        state_changed(cc);
    }
}

static void do_watch(struct coordclient *cc)
{
    Weir__Coord__WatchRequest req = WEIR__COORD__WATCH_REQUEST__INIT;
    req.broker_id = cc->s->broker_id;
    /* Not synced (start, a gap, a record that did not apply): ask from the
     * beginning. The old state keeps serving until the replacement arrives. */
    req.last_offset = cc->synced ? cc->state->offset : -1;
    req.accept_batches = true;
    /* The stream restarts after last_offset: what is held comes again. */
    held_clear(cc);
    int r = rpc_client_call(cc->rpc, COORD_M_WATCH, &req.base, 0, on_watch_response, cc);
    if (r < 0)
        log_warn("coordclient", "watch call: %s", strerror(-r));
}

/* ---- registration and heartbeats -------------------------------------------- */

static void reg_schedule(struct coordclient *cc)
{
    int ms = cc->heartbeat_ms > 0 ? cc->heartbeat_ms : 1000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(cc->reg_timer, &tv);
}

/* One registration in flight, with the time it was sent: an accepted one
 * starts the lease from its send time, never from its arrival. */
struct timed_call {
    struct coordclient *cc;
    int64_t sent_ms;
};

static struct timed_call *timed_call_new(struct coordclient *cc)
{
    struct timed_call *t = malloc(sizeof(*t));
    if (t) {
        t->cc = cc;
        t->sent_ms = clock_mono_ms();
    }
    return t;
}

/* The heartbeat thread had a heartbeat of @epoch refused (the broker was
 * fenced, or the coordinator lost its session): register again. */
static void on_heartbeat_refused(void *ud, int64_t epoch, int16_t code, const char *message)
{
    struct coordclient *cc = ud;
    if (!cc->registered || epoch != cc->epoch || cc->shutting_down)
        return;
    log_warn("coordclient", "heartbeat refused (%s: %s): registering again", kerr_name(code),
             message);
    cc->registered = false;
    cc->lease_start_ms = -1;
    new_incarnation(cc->incarnation);
    do_register(cc);
}

/* A heartbeat was answered NOT_CONTROLLER: the session is not in question
 * (the new leader grants it a fresh timeout); send to the leader. */
static void on_heartbeat_hint(void *ud, int32_t node_id, const char *host, int port)
{
    struct coordclient *cc = ud;
    Weir__Coord__LeaderHint h = WEIR__COORD__LEADER_HINT__INIT;
    h.node_id = node_id;
    h.host = (char *)host;
    h.port = port;
    follow_leader(cc, host && host[0] ? &h : NULL, "heartbeat refused");
}

static void reg_fire(evutil_socket_t fd, short what, void *arg)
{
    struct coordclient *cc = arg;
    if (!cc->registered && !cc->registering && rpc_client_is_connected(cc->rpc))
        do_register(cc);
    reg_schedule(cc);
}

static void on_register(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                        void *ud)
{
    struct timed_call *t = ud;
    struct coordclient *cc = t->cc;
    int64_t sent_ms = t->sent_ms;
    free(t);
    cc->registering = false;
    if (status != RPC_OK) {
        log_warn("coordclient", "registration failed: %s", errmsg);
        return; /* retried by the heartbeat timer or the next connect */
    }
    const Weir__Coord__RegisterBrokerResponse *resp =
        (const Weir__Coord__RegisterBrokerResponse *)msg;
    if (cc->foreign)
        return;
    if (resp->error_code == KERR_INCONSISTENT_CLUSTER_ID) {
        foreign_cluster(cc, resp->cluster_id,
                        "it refused the registration: INCONSISTENT_CLUSTER_ID");
        return;
    }
    if (resp->error_code == KERR_NOT_CONTROLLER) {
        follow_leader(cc, resp->leader_hint, "registration refused");
        return; /* registered on the next connection */
    }
    if (resp->error_code) {
        log_warn("coordclient", "registration refused: %s: %s", kerr_name((int16_t)resp->error_code),
                 resp->error_message);
        return;
    }
    if (cc->cluster_id[0] && resp->cluster_id && resp->cluster_id[0] &&
        strcmp(resp->cluster_id, cc->cluster_id) != 0) {
        foreign_cluster(cc, resp->cluster_id, "its registration answer names another cluster id");
        return;
    }
    cc->registered = true;
    cc->epoch = resp->broker_epoch;
    cc->heartbeat_ms = resp->heartbeat_interval_ms;
    cc->session_timeout_ms = resp->session_timeout_ms;
    cc->lease_start_ms = sent_ms;
    cc->reg_offset = resp->metadata_offset;
    hbthread_set_session(cc->hb, cc->epoch, cc->heartbeat_ms, cc->session_timeout_ms);
    if (resp->metadata_offset > cc->coord_offset)
        cc->coord_offset = resp->metadata_offset;
    log_info("coordclient", "registered broker %d with epoch %" PRId64 " (cluster %s)",
             cc->s->broker_id, cc->epoch, resp->cluster_id);
    if (cc->cb.on_registered)
        cc->cb.on_registered(cc->cb.ud, cc->epoch);
}

static void do_register(struct coordclient *cc)
{
    if (cc->registering || cc->shutting_down || cc->foreign)
        return;
    Weir__Meta__Endpoint ep = WEIR__META__ENDPOINT__INIT;
    ep.listener = (char *)cc->s->advertised.listener;
    ep.host = (char *)cc->s->advertised.host;
    ep.port = cc->s->advertised.port;
    ep.security_protocol = "PLAINTEXT";
    Weir__Meta__Endpoint *eps[1] = {&ep};
    Weir__Coord__RegisterBrokerRequest req = WEIR__COORD__REGISTER_BROKER_REQUEST__INIT;
    req.broker_id = cc->s->broker_id;
    req.incarnation_id.data = cc->incarnation;
    req.incarnation_id.len = 16;
    req.n_endpoints = 1;
    req.endpoints = eps;
    req.rack = (char *)(cc->s->rack ? cc->s->rack : "");
    req.cluster_id = cc->cluster_id;
    Weir__Meta__Endpoint rep = WEIR__META__ENDPOINT__INIT;
    if (cc->repl_host[0]) {
        rep.listener = "REPLICATION";
        rep.host = cc->repl_host;
        rep.port = cc->repl_port;
        rep.security_protocol = "PLAINTEXT";
        req.replication_endpoint = &rep;
    }
    struct timed_call *t = timed_call_new(cc);
    if (!t)
        return;
    if (rpc_client_call(cc->rpc, COORD_M_REGISTER_BROKER, &req.base, 0, on_register, t) == 0)
        cc->registering = true;
    else
        free(t);
}

static void on_connect(struct rpc_client *c, void *ud)
{
    struct coordclient *cc = ud;
    snprintf(cc->connected_to, sizeof(cc->connected_to), "%s", rpc_client_peer(c));
    log_info("coordclient", "connected to coordinator %s", cc->connected_to);
    /* Re-registering with the same incarnation renews a live session. */
    if (!cc->registered)
        do_register(cc);
    do_watch(cc);
}

static void on_disconnect(struct rpc_client *c, void *ud)
{
    struct coordclient *cc = ud;
    log_warn("coordclient", "lost the coordinator %s; serving with metadata offset %" PRId64,
             cc->connected_to, cc->state->offset);
    cc->registering = false;
    /* The coordinator we talked to went away (not a move of ours): try the
     * next one of the list; a follower there hints at the leader. */
    bool moved = strcmp(cc->connected_to, rpc_client_peer(c)) != 0;
    if (!moved) {
        snprintf(cc->failed, sizeof(cc->failed), "%s", cc->connected_to);
        cc->failed_ms = clock_mono_ms();
    }
    cc->connected_to[0] = '\0';
    if (!moved && !cc->shutting_down && cc->addr.n > 1) {
        coordaddr_advance(&cc->addr);
        retarget(cc, -1, "lost the coordinator");
    }
}

static void on_connect_failed(struct rpc_client *c, void *ud)
{
    struct coordclient *cc = ud;
    snprintf(cc->failed, sizeof(cc->failed), "%s", rpc_client_peer(c));
    cc->failed_ms = clock_mono_ms();
    if (cc->shutting_down || (cc->addr.n <= 1 && !cc->addr.adopted))
        return;
    coordaddr_advance(&cc->addr);
    retarget(cc, -1, "cannot connect");
}

int coordclient_new(struct event_base *base, const struct broker_settings *s,
                    const struct coordclient_callbacks *cb, struct coordclient **ret)
{
    struct coordclient *cc = calloc(1, sizeof(*cc));
    if (!cc)
        return -ENOMEM;
    cc->base = base;
    cc->s = s;
    cc->addr = s->coord;
    if (cc->addr.n == 0) { /* settings built by hand (tests): the single address */
        snprintf(cc->addr.v[0].host, sizeof(cc->addr.v[0].host), "%s", s->coord_host);
        cc->addr.v[0].port = s->coord_port;
        cc->addr.n = 1;
    }
    cc->lease_start_ms = -1;
    cc->failed_ms = -1;
    if (cb)
        cc->cb = *cb;
    new_incarnation(cc->incarnation);
    int r = cstate_new(&cc->state);
    if (r < 0)
        goto fail;
    cc->reg_timer = evtimer_new(base, reg_fire, cc);
    cc->changed_ev = evtimer_new(base, on_state_changed, cc);
    cc->apply_ev = evtimer_new(base, on_apply, cc);
    if (!cc->reg_timer || !cc->changed_ev || !cc->apply_ev) {
        r = -ENOMEM;
        goto fail;
    }
    struct rpc_client_options o = {0};
    o.on_connect = on_connect;
    o.on_disconnect = on_disconnect;
    o.on_connect_failed = on_connect_failed;
    o.event_ud = cc;
    o.max_frame_bytes = 64u * 1024 * 1024;
    /* Trying the coordinators of the list in turn: never wait long on one. */
    o.backoff_max_ms = COORDCLIENT_BACKOFF_MAX_MS;
    const struct coordaddr_entry *first = coordaddr_current(&cc->addr);
    r = rpc_client_new(base, first->host, first->port, &weir__coord__coordinator__descriptor,
                       &o, &cc->rpc);
    if (r < 0)
        goto fail;
    rpc_client_on_push(cc->rpc, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_RECORD,
                       &weir__coord__watch_record__descriptor, on_watch_record, cc);
    rpc_client_on_push(cc->rpc, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_IMAGE,
                       &weir__coord__watch_image__descriptor, on_watch_image, cc);
    rpc_client_on_push(cc->rpc, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_BATCH,
                       &weir__coord__watch_batch__descriptor, on_watch_batch, cc);
    r = hbthread_new(base, first->host, first->port, s->broker_id, on_heartbeat_refused, cc,
                     &cc->hb);
    if (r < 0)
        goto fail;
    hbthread_set_hint_fn(cc->hb, on_heartbeat_hint);
    reg_schedule(cc);
    *ret = cc;
    return 0;
fail:
    coordclient_free(cc);
    return r;
}

void coordclient_free(struct coordclient *cc)
{
    if (!cc)
        return;
    hbthread_free(cc->hb);
    rpc_client_free(cc->rpc);
    while (cc->waiters) {
        struct waiter *w = cc->waiters;
        waiter_remove(cc, w);
        w->fn(w->ud, -ECANCELED);
        free(w);
    }
    if (cc->reg_timer)
        event_free(cc->reg_timer);
    if (cc->changed_ev)
        event_free(cc->changed_ev);
    held_clear(cc);
    if (cc->apply_ev)
        event_free(cc->apply_ev);
    free(cc->q);
    cstate_free(cc->state);
    free(cc);
}

const struct cstate *coordclient_state(const struct coordclient *cc)
{
    return cc->state;
}
bool coordclient_synced(const struct coordclient *cc)
{
    return cc->synced;
}
bool coordclient_caught_up(const struct coordclient *cc)
{
    if (!cc->synced || !cc->registered)
        return false;
    int64_t coord = hbthread_coord_offset(cc->hb);
    return cc->state->offset >= (coord > cc->coord_offset ? coord : cc->coord_offset);
}
int64_t coordclient_broker_epoch(const struct coordclient *cc)
{
    return cc->epoch;
}
bool coordclient_registered(const struct coordclient *cc)
{
    return cc->registered;
}

void coordclient_set_cluster_id(struct coordclient *cc, const char *cluster_id)
{
    snprintf(cc->cluster_id, sizeof(cc->cluster_id), "%s", cluster_id ? cluster_id : "");
}

const char *coordclient_cluster_id(const struct coordclient *cc)
{
    return cc->cluster_id;
}

void coordclient_set_replication_endpoint(struct coordclient *cc, const char *host, int port)
{
    snprintf(cc->repl_host, sizeof(cc->repl_host), "%s", host ? host : "");
    cc->repl_port = port;
}

bool coordclient_current(const struct coordclient *cc)
{
    /* Before the state reaches the registration's offset, what it shows may be
     * from before a fencing (or a replay passing through old leaderships). */
    return cc->registered && cc->synced && cc->state->offset >= cc->reg_offset;
}

bool coordclient_lease_valid(const struct coordclient *cc, int64_t now_ms)
{
    if (!coordclient_current(cc))
        return false;
    /* From the registration, or from the last heartbeat the thread had
     * accepted for this epoch, whichever was sent later. */
    int64_t start = hbthread_lease_start(cc->hb, cc->epoch);
    if (cc->lease_start_ms > start)
        start = cc->lease_start_ms;
    if (start < 0)
        return false;
    return now_ms - start < coordclient_lease_ms(cc->session_timeout_ms);
}

int64_t coordclient_lease_ms(int session_timeout_ms)
{
    /* Clocks drift: the coordinator's session timer may run fast and ours
     * slow. Stop a tenth early (docs/coordinator-quorum.md, "The broker's
     * lease with a quorum behind it"). */
    return (int64_t)session_timeout_ms * COORDCLIENT_LEASE_PERMILLE / 1000;
}

uint64_t coordclient_moves(const struct coordclient *cc)
{
    return cc->moves;
}

const char *coordclient_coordinator(const struct coordclient *cc)
{
    return rpc_client_peer(cc->rpc);
}

int coordclient_session_timeout_ms(const struct coordclient *cc)
{
    return cc->session_timeout_ms;
}

struct fwd_call {
    struct coordclient *cc;
    unsigned method;
    coordclient_response_fn cb;
    void *ud;
};

static void on_forwarded(int status, const struct ProtobufCMessage *resp, const char *errmsg,
                         void *ud)
{
    struct fwd_call *f = ud;
    if (status == RPC_OK)
        check_not_controller(f->cc, f->method, resp, "forwarded call refused");
    f->cb(status, resp, errmsg, f->ud);
    free(f);
}

int coordclient_call(struct coordclient *cc, unsigned method, const struct ProtobufCMessage *req,
                     int timeout_ms, coordclient_response_fn cb, void *ud)
{
    struct fwd_call *f = malloc(sizeof(*f));
    if (!f)
        return -ENOMEM;
    *f = (struct fwd_call){cc, method, cb, ud};
    int r = rpc_client_call(cc->rpc, method, req, timeout_ms, on_forwarded, f);
    if (r < 0)
        free(f);
    return r;
}

/* ---- controlled shutdown ------------------------------------------------------ */

static void cs_send(struct coordclient *cc, bool exit_now);

static void cs_finish(struct coordclient *cc)
{
    void (*done)(void *) = cc->cs_done;
    cc->cs_done = NULL;
    if (done)
        done(cc->cs_ud);
}

static void on_cs_exit(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    cs_finish(ud);
}

static void on_cs(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    struct coordclient *cc = ud;
    const Weir__Coord__ControlledShutdownResponse *resp =
        (const Weir__Coord__ControlledShutdownResponse *)msg;
    if (status == RPC_OK && !resp->error_code && resp->remaining_leaderships > 0 &&
        ++cc->cs_tries < SHUTDOWN_TRIES) {
        cs_send(cc, false);
        return;
    }
    cs_send(cc, true);
}

static void cs_send(struct coordclient *cc, bool exit_now)
{
    Weir__Coord__ControlledShutdownRequest req = WEIR__COORD__CONTROLLED_SHUTDOWN_REQUEST__INIT;
    req.broker_id = cc->s->broker_id;
    req.broker_epoch = cc->epoch;
    req.exit = exit_now;
    if (rpc_client_call(cc->rpc, COORD_M_CONTROLLED_SHUTDOWN, &req.base, 2000, exit_now ? on_cs_exit : on_cs, cc) <
        0)
        cs_finish(cc);
}

void coordclient_shutdown(struct coordclient *cc, void (*done)(void *ud), void *ud)
{
    cc->shutting_down = true;
    cc->cs_done = done;
    cc->cs_ud = ud;
    if (!cc->registered || !rpc_client_is_connected(cc->rpc)) {
        cs_finish(cc);
        return;
    }
    cs_send(cc, false);
}
