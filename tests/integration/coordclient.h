/* coordclient: a small synchronous client of weir-coordinator's RPC service for
 * integration tests and benchmarks — one event_base, blocking calls that drive
 * it until the answer (or a timeout) arrives, and watch subscriptions that
 * collect pushed records. Header-only: each test program includes it once. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

#include "common/clock.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "methods.h" /* proto/ */
#include "metadata.pb-c.h"

#define CC_SVC (&weir__coord__coordinator__descriptor)

#define CC_MAX_COORDS 7

struct cc_client {
    struct event_base *base; /* borrowed */
    struct rpc_client *rpc;
    int connects;
    int disconnects;
    /* A quorum (cc_client_init_list): the voters' ports on 127.0.0.1, and the
     * one talked to. cc_call follows NOT_CONTROLLER to the leader. */
    int ports[CC_MAX_COORDS];
    int n_ports;
    int cur;
    int moves; /* times cc_call moved to another coordinator */
};

static inline void cc_on_connect(struct rpc_client *c, void *ud)
{
    (void)c;
    ((struct cc_client *)ud)->connects++;
}

static inline void cc_on_disconnect(struct rpc_client *c, void *ud)
{
    (void)c;
    ((struct cc_client *)ud)->disconnects++;
}

static inline int cc_client_init(struct cc_client *cc, struct event_base *base, int port)
{
    memset(cc, 0, sizeof(*cc));
    cc->base = base;
    struct rpc_client_options o = {
        .on_connect = cc_on_connect,
        .on_disconnect = cc_on_disconnect,
        .event_ud = cc,
        .backoff_initial_ms = 20,
        .backoff_max_ms = 200,
    };
    return rpc_client_new(base, "127.0.0.1", port, CC_SVC, &o, &cc->rpc);
}

/* A client of a coordinator quorum: "port,port,..." or "host:port,..." with
 * 127.0.0.1 hosts (up to CC_MAX_COORDS). Starts with the first; cc_call moves
 * to the leader a NOT_CONTROLLER answer names, or to the next one. */
static inline int cc_client_init_list(struct cc_client *cc, struct event_base *base,
                                      const char *list)
{
    int ports[CC_MAX_COORDS], n = 0;
    const char *p = list;
    while (p && *p && n < CC_MAX_COORDS) {
        const char *comma = strchr(p, ',');
        const char *colon = strchr(p, ':');
        const char *num = colon && (!comma || colon < comma) ? colon + 1 : p;
        ports[n++] = atoi(num);
        p = comma ? comma + 1 : NULL;
    }
    if (n == 0 || ports[0] <= 0)
        return -EINVAL;
    int r = cc_client_init(cc, base, ports[0]);
    if (r == 0) {
        memcpy(cc->ports, ports, sizeof(ports));
        cc->n_ports = n;
    }
    return r;
}

static inline void cc_client_deinit(struct cc_client *cc)
{
    rpc_client_free(cc->rpc);
    cc->rpc = NULL;
}

/* Run the loop for up to @ms milliseconds (returns early when nothing is
 * pending). */
static inline void cc_pump(struct event_base *base, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

struct cc_result {
    bool done;
    int status;
    ProtobufCMessage *resp; /* a copy the caller frees with protobuf_c_message_free_unpacked */
    char err[256];
    void (*then)(struct cc_result *r, void *ud); /* optional, run in the callback */
    void *then_ud;
};

static inline void cc_result_cb(int status, const ProtobufCMessage *resp, const char *errmsg,
                                void *ud)
{
    struct cc_result *r = ud;
    r->done = true;
    r->status = status;
    if (status == RPC_OK) {
        size_t n = protobuf_c_message_get_packed_size(resp);
        uint8_t *b = malloc(n ? n : 1);
        if (b) {
            protobuf_c_message_pack(resp, b);
            r->resp = protobuf_c_message_unpack(resp->descriptor, NULL, n, b);
            free(b);
        }
    } else {
        snprintf(r->err, sizeof(r->err), "%s", errmsg);
    }
    if (r->then)
        r->then(r, r->then_ud);
}

/* Start a call whose result lands in @r. */
static inline int cc_call_async(struct cc_client *cc, unsigned method, const ProtobufCMessage *req,
                                int timeout_ms, struct cc_result *r)
{
    r->done = false;
    r->resp = NULL;
    r->err[0] = '\0';
    return rpc_client_call(cc->rpc, method, req, timeout_ms, cc_result_cb, r);
}

static inline void cc_free(void *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

/* The leader a NOT_CONTROLLER answer names: a response's leader_hint (with
 * error_code 41), or the text of an RPC_INTERNAL error for methods whose
 * response has no hint field. 1 with @host/@port set, 0 when it names none, -1
 * when it is not NOT_CONTROLLER. */
static inline int cc_not_controller(const struct cc_result *r, char host[256], int *port)
{
    host[0] = '\0';
    *port = 0;
    if (r->status == RPC_OK && r->resp) {
        const ProtobufCMessageDescriptor *d = r->resp->descriptor;
        const ProtobufCFieldDescriptor *fc =
            protobuf_c_message_descriptor_get_field_by_name(d, "error_code");
        const ProtobufCFieldDescriptor *fh =
            protobuf_c_message_descriptor_get_field_by_name(d, "leader_hint");
        if (!fc || !fh || fc->type != PROTOBUF_C_TYPE_INT32 || fc->label != PROTOBUF_C_LABEL_NONE)
            return -1;
        if (*(const int32_t *)((const char *)r->resp + fc->offset) != 41) /* NOT_CONTROLLER */
            return -1;
        const Weir__Coord__LeaderHint *h =
            *(Weir__Coord__LeaderHint *const *)((const char *)r->resp + fh->offset);
        if (!h || !h->host || !h->host[0])
            return 0;
        snprintf(host, 256, "%s", h->host);
        *port = h->port;
        return 1;
    }
    if (r->status == RPC_INTERNAL && strncmp(r->err, "NOT_CONTROLLER", 14) == 0) {
        int id;
        char hbuf[256];
        if (sscanf(r->err, "NOT_CONTROLLER: coordinator %d at %255[^:]:%d", &id, hbuf, port) == 3) {
            snprintf(host, 256, "%s", hbuf);
            return 1;
        }
        return 0;
    }
    return -1;
}

/* Call and wait. Returns the RPC status (or a negative errno from the client);
 * *ret gets the response copy on RPC_OK. A client of a quorum follows
 * NOT_CONTROLLER to the leader and calls again (for up to @timeout_ms). */
static inline int cc_call(struct cc_client *cc, unsigned method, const ProtobufCMessage *req,
                          int timeout_ms, ProtobufCMessage **ret)
{
    int64_t deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 5000);
    for (;;) {
        struct cc_result r = {0};
        int rc = cc_call_async(cc, method, req, timeout_ms, &r);
        if (rc < 0)
            return rc;
        while (!r.done)
            event_base_loop(cc->base, EVLOOP_ONCE);
        if (r.status == RPC_OK && !r.resp)
            return -ENOMEM;
        char host[256];
        int port;
        int nc = cc->n_ports > 1 ? cc_not_controller(&r, host, &port) : -1;
        bool lost = cc->n_ports > 1 && (r.status == RPC_DISCONNECTED || r.status == RPC_TIMEOUT);
        if ((nc < 0 && !lost) || clock_mono_ms() >= deadline) {
            if (r.status == RPC_OK)
                *ret = r.resp;
            return r.status;
        }
        cc_free(r.resp);
        cc->moves++;
        if (nc == 1) {
            rpc_client_retarget(cc->rpc, host, port, 0);
            for (int i = 0; i < cc->n_ports; i++)
                if (cc->ports[i] == port)
                    cc->cur = i;
        } else {
            cc->cur = (cc->cur + 1) % cc->n_ports;
            rpc_client_retarget(cc->rpc, "127.0.0.1", cc->ports[cc->cur], 100);
        }
        cc_pump(cc->base, 20);
    }
}

/* ---- typed helpers --------------------------------------------------------------- */

static inline void cc_incarnation(int32_t id, uint32_t gen, uint8_t out[16])
{
    memset(out, 0, 16);
    memcpy(out, &id, sizeof(id));
    memcpy(out + 4, &gen, sizeof(gen));
    out[15] = 0x5a;
}

/* Register broker @id (incarnation generation @gen) with one PLAINTEXT endpoint.
 * Returns the Kafka error code (0) and the epoch, or a negative RPC failure. */
static inline int cc_register(struct cc_client *cc, int32_t id, uint32_t gen, const char *rack,
                              int64_t *ret_epoch)
{
    uint8_t inc[16];
    cc_incarnation(id, gen, inc);
    Weir__Meta__Endpoint ep = WEIR__META__ENDPOINT__INIT;
    Weir__Meta__Endpoint *eps[1] = {&ep};
    ep.listener = "PLAINTEXT";
    ep.host = "127.0.0.1";
    ep.port = 9000 + id;
    ep.security_protocol = "PLAINTEXT";
    Weir__Coord__RegisterBrokerRequest req = WEIR__COORD__REGISTER_BROKER_REQUEST__INIT;
    req.broker_id = id;
    req.incarnation_id.data = inc;
    req.incarnation_id.len = 16;
    req.endpoints = eps;
    req.n_endpoints = 1;
    req.rack = (char *)(rack ? rack : "");
    Weir__Coord__RegisterBrokerResponse *resp = NULL;
    int st = cc_call(cc, COORD_M_REGISTER_BROKER, &req.base, 5000, (ProtobufCMessage **)&resp);
    if (st != RPC_OK)
        return st > 0 ? -st : st;
    int code = resp->error_code;
    if (ret_epoch)
        *ret_epoch = resp->broker_epoch;
    cc_free(resp);
    return code;
}

static inline int cc_heartbeat(struct cc_client *cc, int32_t id, int64_t epoch)
{
    Weir__Coord__HeartbeatRequest req = WEIR__COORD__HEARTBEAT_REQUEST__INIT;
    req.broker_id = id;
    req.broker_epoch = epoch;
    Weir__Coord__HeartbeatResponse *resp = NULL;
    int st = cc_call(cc, COORD_M_HEARTBEAT, &req.base, 5000, (ProtobufCMessage **)&resp);
    if (st != RPC_OK)
        return st > 0 ? -st : st;
    int code = resp->error_code;
    cc_free(resp);
    return code;
}

/* Create one topic; returns the Kafka error code or a negative RPC failure. */
static inline int cc_create_topic(struct cc_client *cc, const char *name, int32_t parts, int32_t rf,
                                  int64_t *ret_offset)
{
    Weir__Coord__CreatableTopic t = WEIR__COORD__CREATABLE_TOPIC__INIT;
    Weir__Coord__CreatableTopic *tp[1] = {&t};
    t.name = (char *)name;
    t.num_partitions = parts;
    t.replication_factor = rf;
    Weir__Coord__CreateTopicsRequest req = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
    req.topics = tp;
    req.n_topics = 1;
    Weir__Coord__CreateTopicsResponse *resp = NULL;
    int st = cc_call(cc, COORD_M_CREATE_TOPICS, &req.base, 10000, (ProtobufCMessage **)&resp);
    if (st != RPC_OK)
        return st > 0 ? -st : st;
    int code = resp->n_results == 1 ? resp->results[0]->error_code : -EPROTO;
    if (ret_offset)
        *ret_offset = resp->metadata_offset;
    cc_free(resp);
    return code;
}

static inline Weir__Coord__DescribeTopicsResponse *
cc_describe_topics(struct cc_client *cc, const char *const *names, size_t n)
{
    Weir__Coord__DescribeTopicsRequest req = WEIR__COORD__DESCRIBE_TOPICS_REQUEST__INIT;
    req.names = (char **)names;
    req.n_names = n;
    Weir__Coord__DescribeTopicsResponse *resp = NULL;
    int st = cc_call(cc, COORD_M_DESCRIBE_TOPICS, &req.base, 10000, (ProtobufCMessage **)&resp);
    return st == RPC_OK ? resp : NULL;
}

static inline Weir__Coord__DescribeClusterResponse *cc_describe_cluster(struct cc_client *cc)
{
    Weir__Coord__DescribeClusterRequest req = WEIR__COORD__DESCRIBE_CLUSTER_REQUEST__INIT;
    Weir__Coord__DescribeClusterResponse *resp = NULL;
    int st = cc_call(cc, COORD_M_DESCRIBE_CLUSTER, &req.base, 5000, (ProtobufCMessage **)&resp);
    return st == RPC_OK ? resp : NULL;
}

/* ---- watches ------------------------------------------------------------------------ */

#define CC_WATCH_MAX 4096

struct cc_watch {
    struct cc_client cc;
    bool got_response;
    bool full_image;
    int64_t next_offset;
    int images;
    int64_t image_offset;
    int64_t offsets[CC_WATCH_MAX];
    int kinds[CC_WATCH_MAX];   /* MetadataRecord case */
    char *names[CC_WATCH_MAX]; /* topic name of CreateTopic records, else NULL */
    size_t n;
    bool record_before_image;
    /* Every record push or batch, counted even past CC_WATCH_MAX. */
    uint64_t frames;     /* push frames of records (WatchRecord or WatchBatch) */
    uint64_t wire_bytes; /* their bytes on the wire, frame headers included */
    uint64_t records;
    int64_t last_offset;
};

/* Keep what the tests look at of the record at @offset. */
static inline void cc_watch_note(struct cc_watch *w, int64_t offset, const ProtobufCBinaryData *r)
{
    w->records++;
    w->last_offset = offset;
    if (w->n >= CC_WATCH_MAX)
        return;
    if (!w->got_response || (w->full_image && w->images == 0))
        w->record_before_image = true;
    w->offsets[w->n] = offset;
    Weir__Meta__MetadataRecord *rec = weir__meta__metadata_record__unpack(NULL, r->len, r->data);
    w->kinds[w->n] = rec ? (int)rec->record_case : -1;
    w->names[w->n] = NULL;
    if (rec && rec->record_case == WEIR__META__METADATA_RECORD__RECORD_CREATE_TOPIC)
        w->names[w->n] = strdup(rec->create_topic->name);
    if (rec)
        weir__meta__metadata_record__free_unpacked(rec, NULL);
    w->n++;
}

static inline void cc_watch_on_record(uint16_t type, const ProtobufCMessage *msg, void *ud)
{
    (void)type;
    struct cc_watch *w = ud;
    const Weir__Coord__WatchRecord *wr = (const Weir__Coord__WatchRecord *)msg;
    w->frames++;
    w->wire_bytes += RPC_FRAME_FIXED_BYTES + protobuf_c_message_get_packed_size(msg);
    cc_watch_note(w, wr->offset, &wr->record);
}

static inline void cc_watch_on_batch(uint16_t type, const ProtobufCMessage *msg, void *ud)
{
    (void)type;
    struct cc_watch *w = ud;
    const Weir__Coord__WatchBatch *b = (const Weir__Coord__WatchBatch *)msg;
    w->frames++;
    w->wire_bytes += RPC_FRAME_FIXED_BYTES + protobuf_c_message_get_packed_size(msg);
    for (size_t i = 0; i < b->n_records; i++)
        cc_watch_note(w, b->first_offset + (int64_t)i, &b->records[i]);
}

static inline void cc_watch_on_image(uint16_t type, const ProtobufCMessage *msg, void *ud)
{
    (void)type;
    struct cc_watch *w = ud;
    const Weir__Coord__WatchImage *wi = (const Weir__Coord__WatchImage *)msg;
    w->images++;
    w->image_offset = wi->offset;
}

/* Record the response as it arrives: pushes that follow it in the same read
 * are delivered before the caller's wait returns. */
static inline void cc_watch_on_response(struct cc_result *r, void *ud)
{
    struct cc_watch *w = ud;
    if (r->status != RPC_OK || !r->resp)
        return;
    const Weir__Coord__WatchResponse *resp = (const Weir__Coord__WatchResponse *)r->resp;
    w->got_response = true;
    w->full_image = resp->full_image;
    w->next_offset = resp->next_offset;
}

/* Connect and subscribe from @last_offset; waits for the response. With
 * @batches, records may come as WatchBatch pushes (as brokers take them). */
static inline int cc_watch_start_as(struct cc_watch *w, struct event_base *base, int port,
                                    int64_t last_offset, bool batches)
{
    memset(w, 0, sizeof(*w));
    int r = cc_client_init(&w->cc, base, port);
    if (r < 0)
        return r;
    rpc_client_on_push(w->cc.rpc, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_RECORD,
                       &weir__coord__watch_record__descriptor, cc_watch_on_record, w);
    rpc_client_on_push(w->cc.rpc, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_IMAGE,
                       &weir__coord__watch_image__descriptor, cc_watch_on_image, w);
    rpc_client_on_push(w->cc.rpc, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_BATCH,
                       &weir__coord__watch_batch__descriptor, cc_watch_on_batch, w);
    w->last_offset = -1;
    Weir__Coord__WatchRequest req = WEIR__COORD__WATCH_REQUEST__INIT;
    req.broker_id = -1;
    req.last_offset = last_offset;
    req.accept_batches = batches;
    struct cc_result res = {.then = cc_watch_on_response, .then_ud = w};
    r = cc_call_async(&w->cc, COORD_M_WATCH, &req.base, 5000, &res);
    if (r < 0)
        return r;
    while (!res.done)
        event_base_loop(base, EVLOOP_ONCE);
    if (res.status != RPC_OK)
        return -res.status;
    if (!res.resp)
        return -ENOMEM;
    int code = ((const Weir__Coord__WatchResponse *)res.resp)->error_code;
    cc_free(res.resp);
    return code;
}

static inline int cc_watch_start(struct cc_watch *w, struct event_base *base, int port,
                                 int64_t last_offset)
{
    return cc_watch_start_as(w, base, port, last_offset, false);
}

static inline void cc_watch_stop(struct cc_watch *w)
{
    cc_client_deinit(&w->cc);
    for (size_t i = 0; i < w->n; i++)
        free(w->names[i]);
    w->n = 0;
}

/* Drive the loop until the watch has seen @offset, or @timeout_ms pass. */
static inline bool cc_watch_wait(struct cc_watch *w, int64_t offset, int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (clock_mono_ms() < deadline) {
        if (w->n > 0 && w->offsets[w->n - 1] >= offset)
            return true;
        cc_pump(w->cc.base, 20);
    }
    return w->n > 0 && w->offsets[w->n - 1] >= offset;
}
