/* test_coordclient: the broker's side of compact watch deltas, against a fake
 * coordinator on loopback — a WatchBatch is applied in bounded slices (the loop
 * turns in between), in offset order, and the broker is told once at the end;
 * a batch that leaves a gap makes it subscribe again from the start; its
 * heartbeats (from the heartbeat thread) report the applied offset.
 *
 * The quorum: a coordinator answering NOT_CONTROLLER with a LeaderHint makes
 * the broker move its connections to the hinted leader, also one that is not
 * in coordinator.connect, without registering twice; a heartbeat answered
 * NOT_CONTROLLER does not renew the lease, which ends a tenth of the session
 * timeout early (clock drift allowance). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/meta/state.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "metadata.pb-c.h"
#include "methods.h"

#define CLUSTER "cluster-test"

struct fake {
    struct event_base *base;
    struct rpc_server *server;
    struct rpc_conn *watch_conn; /* referenced */
    int watches;
    int64_t last_watch_offset;
    int64_t hb_applied;
    int heartbeats;
    int registers;
    /* Answer NOT_CONTROLLER (a follower), naming @hint_port as the leader
     * when it is not 0. */
    bool not_controller;
    int hint_port;
};

static Weir__Coord__LeaderHint *fake_hint(struct fake *f, Weir__Coord__LeaderHint *h)
{
    if (!f->hint_port)
        return NULL;
    h->node_id = 2;
    h->host = "127.0.0.1";
    h->port = f->hint_port;
    return h;
}

static void fake_register(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    (void)msg;
    struct fake *f = ud;
    Weir__Coord__RegisterBrokerResponse resp = WEIR__COORD__REGISTER_BROKER_RESPONSE__INIT;
    Weir__Coord__LeaderHint h = WEIR__COORD__LEADER_HINT__INIT;
    if (f->not_controller) {
        resp.error_code = KERR_NOT_CONTROLLER;
        resp.leader_hint = fake_hint(f, &h);
        rpc_call_reply(call, &resp.base);
        return;
    }
    f->registers++;
    resp.broker_epoch = 3;
    resp.cluster_id = CLUSTER;
    resp.heartbeat_interval_ms = 100;
    resp.session_timeout_ms = 3000;
    resp.metadata_offset = -1;
    rpc_call_reply(call, &resp.base);
}

static void fake_heartbeat(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct fake *f = ud;
    const Weir__Coord__HeartbeatRequest *req = (const Weir__Coord__HeartbeatRequest *)msg;
    Weir__Coord__HeartbeatResponse resp = WEIR__COORD__HEARTBEAT_RESPONSE__INIT;
    Weir__Coord__LeaderHint h = WEIR__COORD__LEADER_HINT__INIT;
    if (f->not_controller) {
        resp.error_code = KERR_NOT_CONTROLLER;
        resp.leader_hint = fake_hint(f, &h);
        rpc_call_reply(call, &resp.base);
        return;
    }
    f->heartbeats++;
    f->hb_applied = req->metadata_offset;
    resp.metadata_offset = -1;
    rpc_call_reply(call, &resp.base);
}

static void fake_watch(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct fake *f = ud;
    const Weir__Coord__WatchRequest *req = (const Weir__Coord__WatchRequest *)msg;
    assert_true(req->accept_batches);
    if (f->not_controller) {
        Weir__Coord__WatchResponse resp = WEIR__COORD__WATCH_RESPONSE__INIT;
        Weir__Coord__LeaderHint h = WEIR__COORD__LEADER_HINT__INIT;
        resp.error_code = KERR_NOT_CONTROLLER;
        resp.leader_hint = fake_hint(f, &h);
        rpc_call_reply(call, &resp.base);
        return;
    }
    f->watches++;
    f->last_watch_offset = req->last_offset;
    if (f->watch_conn)
        rpc_conn_unref(f->watch_conn);
    f->watch_conn = rpc_conn_ref(rpc_call_connection(call));
    Weir__Coord__WatchResponse resp = WEIR__COORD__WATCH_RESPONSE__INIT;
    resp.next_offset = req->last_offset + 1;
    rpc_call_reply(call, &resp.base);
}

/* ---- records ------------------------------------------------------------------- */

static ProtobufCBinaryData pack_record(const Weir__Meta__MetadataRecord *r)
{
    ProtobufCBinaryData b;
    b.len = weir__meta__metadata_record__get_packed_size(r);
    b.data = malloc(b.len ? b.len : 1);
    assert_non_null(b.data);
    weir__meta__metadata_record__pack(r, b.data);
    return b;
}

/* Offset 0: bootstrap; 1: broker 1 registers; 2..n-1: one-partition topics. */
static ProtobufCBinaryData *make_records(size_t n)
{
    ProtobufCBinaryData *v = calloc(n, sizeof(*v));
    assert_non_null(v);
    Weir__Meta__BootstrapRecord boot = WEIR__META__BOOTSTRAP_RECORD__INIT;
    boot.cluster_id = CLUSTER;
    Weir__Meta__MetadataRecord r0 = WEIR__META__METADATA_RECORD__INIT;
    r0.record_case = WEIR__META__METADATA_RECORD__RECORD_BOOTSTRAP;
    r0.bootstrap = &boot;
    v[0] = pack_record(&r0);

    uint8_t inc[16] = {1};
    Weir__Meta__Endpoint ep = WEIR__META__ENDPOINT__INIT;
    ep.listener = "PLAINTEXT";
    ep.host = "127.0.0.1";
    ep.port = 9092;
    ep.security_protocol = "PLAINTEXT";
    Weir__Meta__Endpoint *eps[1] = {&ep};
    Weir__Meta__RegisterBrokerRecord reg = WEIR__META__REGISTER_BROKER_RECORD__INIT;
    reg.broker_id = 1;
    reg.incarnation_id.data = inc;
    reg.incarnation_id.len = 16;
    reg.broker_epoch = 3;
    reg.n_endpoints = 1;
    reg.endpoints = eps;
    Weir__Meta__MetadataRecord r1 = WEIR__META__METADATA_RECORD__INIT;
    r1.record_case = WEIR__META__METADATA_RECORD__RECORD_REGISTER_BROKER;
    r1.register_broker = &reg;
    v[1] = pack_record(&r1);

    for (size_t i = 2; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "t%zu", i);
        uint8_t id[16] = {0};
        memcpy(id, &i, sizeof(i));
        id[15] = 0x5a;
        int32_t one = 1;
        Weir__Meta__PartitionState ps = WEIR__META__PARTITION_STATE__INIT;
        ps.n_replicas = ps.n_isr = 1;
        ps.replicas = ps.isr = &one;
        ps.leader = 1;
        Weir__Meta__PartitionState *pss[1] = {&ps};
        Weir__Meta__CreateTopicRecord ct = WEIR__META__CREATE_TOPIC_RECORD__INIT;
        ct.name = name;
        ct.topic_id.data = id;
        ct.topic_id.len = 16;
        ct.n_partitions = 1;
        ct.partitions = pss;
        Weir__Meta__MetadataRecord r = WEIR__META__METADATA_RECORD__INIT;
        r.record_case = WEIR__META__METADATA_RECORD__RECORD_CREATE_TOPIC;
        r.create_topic = &ct;
        v[i] = pack_record(&r);
    }
    return v;
}

static void free_records(ProtobufCBinaryData *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].data);
    free(v);
}

static void push_batch(struct fake *f, int64_t first, ProtobufCBinaryData *recs, size_t n)
{
    Weir__Coord__WatchBatch b = WEIR__COORD__WATCH_BATCH__INIT;
    b.first_offset = first;
    b.n_records = n;
    b.records = recs;
    assert_int_equal(
        rpc_conn_push(f->watch_conn, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_BATCH, &b.base), 0);
}

/* ---- the broker side -------------------------------------------------------------- */

struct broker {
    struct coordclient *cc;
    int metadata_calls;
    int64_t offset_at_last_call;
    int64_t waited;
};

static void on_metadata(void *ud)
{
    struct broker *b = ud;
    b->metadata_calls++;
    b->offset_at_last_call = coordclient_state(b->cc)->offset;
}

static void on_waited(void *ud, int result)
{
    struct broker *b = ud;
    b->waited = result == 0 ? coordclient_state(b->cc)->offset : result;
}

/* A 1 ms timer on the broker's loop: did the loop turn while a batch was only
 * partly applied? */
struct probe {
    struct coordclient *cc;
    int64_t lo, hi;
    bool saw_partial;
    struct event *ev;
};

static void on_probe(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct probe *p = arg;
    int64_t o = coordclient_state(p->cc)->offset;
    if (o > p->lo && o < p->hi)
        p->saw_partial = true;
}

static void pump(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void pump_until(struct event_base *base, bool (*pred)(void *), void *arg, int ms)
{
    int64_t deadline = clock_mono_ms() + ms;
    while (!pred(arg) && clock_mono_ms() < deadline)
        pump(base, 5);
    assert_true(pred(arg));
}

static bool watched(void *arg)
{
    struct fake *f = arg;
    return f->watches > 0 && f->watch_conn;
}

static bool synced_registered(void *arg)
{
    struct broker *b = arg;
    return coordclient_synced(b->cc) && coordclient_registered(b->cc);
}

static bool waited(void *arg)
{
    return ((struct broker *)arg)->waited != -2;
}

static void fake_start(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->base = event_base_new();
    assert_non_null(f->base);
    struct rpc_handler h[COORD_M_COUNT];
    memset(h, 0, sizeof(h));
    h[COORD_M_REGISTER_BROKER] = (struct rpc_handler){fake_register, f};
    h[COORD_M_HEARTBEAT] = (struct rpc_handler){fake_heartbeat, f};
    h[COORD_M_WATCH] = (struct rpc_handler){fake_watch, f};
    struct rpc_server_options so = {.max_output_bytes = 64u * 1024 * 1024};
    assert_int_equal(rpc_server_new(f->base, "127.0.0.1", 0, &weir__coord__coordinator__descriptor,
                                    h, &so, &f->server),
                     0);
}

static void setup(struct fake *f, struct broker *b, struct broker_settings *s)
{
    fake_start(f);
    memset(s, 0, sizeof(*s));
    s->broker_id = 1;
    snprintf(s->coord_host, sizeof(s->coord_host), "127.0.0.1");
    s->coord_port = rpc_server_port(f->server);
    snprintf(s->advertised.listener, sizeof(s->advertised.listener), "PLAINTEXT");
    snprintf(s->advertised.host, sizeof(s->advertised.host), "127.0.0.1");
    s->advertised.port = 9092;
    memset(b, 0, sizeof(*b));
    b->waited = -2;
    struct coordclient_callbacks cb = {.on_metadata = on_metadata, .ud = b};
    assert_int_equal(coordclient_new(f->base, s, &cb, &b->cc), 0);
    coordclient_set_cluster_id(b->cc, CLUSTER);
    pump_until(f->base, watched, f, 5000);
    pump_until(f->base, synced_registered, b, 5000);
    assert_int_equal(f->last_watch_offset, -1);
}

static void teardown(struct fake *f, struct broker *b)
{
    coordclient_free(b->cc);
    if (f->watch_conn)
        rpc_conn_unref(f->watch_conn);
    rpc_server_free(f->server);
    event_base_free(f->base);
}

static void test_a_batch_is_applied_in_slices_and_told_at_the_end(void **state)
{
    (void)state;
    struct fake f;
    struct broker b;
    struct broker_settings s;
    setup(&f, &b, &s);
    const size_t n = 40000;
    ProtobufCBinaryData *recs = make_records(n);
    b.metadata_calls = 0;
    assert_int_equal(coordclient_wait_offset(b.cc, (int64_t)n - 1, 20000, on_waited, &b), 0);
    struct probe p = {.cc = b.cc, .lo = 0, .hi = (int64_t)n - 1};
    p.ev = event_new(f.base, -1, EV_PERSIST, on_probe, &p);
    struct timeval ms1 = {0, 1000};
    event_add(p.ev, &ms1);

    int64_t t0 = clock_mono_ms();
    push_batch(&f, 0, recs, n);
    pump_until(f.base, waited, &b, 20000);
    int64_t took = clock_mono_ms() - t0;
    event_free(p.ev);

    const struct cstate *st = coordclient_state(b.cc);
    assert_int_equal(st->offset, (int64_t)n - 1);
    assert_int_equal(st->n_topics, n - 2);
    assert_int_equal(b.waited, (int64_t)n - 1);
    /* Told when everything was applied — not per slice; while it takes long
     * (a sanitizer build), also every 250 ms meanwhile. */
    pump(f.base, 20);
    assert_int_equal(b.offset_at_last_call, (int64_t)n - 1);
    if (took < 250)
        assert_int_equal(b.metadata_calls, 1);
    else
        assert_true(b.metadata_calls >= 1 && b.metadata_calls <= 2 + took / 250);
    /* The loop turned in between (only measurable when applying took longer
     * than a slice). */
    if (took > 50)
        assert_true(p.saw_partial);
    print_message("applied %zu records in %" PRId64 " ms; loop turned mid-batch: %s\n", n, took,
                  p.saw_partial ? "yes" : "no");

    /* The heartbeat thread reports the applied offset. */
    int64_t deadline = clock_mono_ms() + 3000;
    while (f.hb_applied != (int64_t)n - 1 && clock_mono_ms() < deadline)
        pump(f.base, 20);
    assert_int_equal(f.hb_applied, (int64_t)n - 1);
    free_records(recs, n);
    teardown(&f, &b);
}

static bool resubscribed(void *arg)
{
    return ((struct fake *)arg)->watches >= 2;
}

static void test_a_gap_resubscribes_from_the_start(void **state)
{
    (void)state;
    struct fake f;
    struct broker b;
    struct broker_settings s;
    setup(&f, &b, &s);
    ProtobufCBinaryData *recs = make_records(10);
    push_batch(&f, 0, recs, 5);
    pump(f.base, 50);
    assert_int_equal(coordclient_state(b.cc)->offset, 4);
    /* Records already applied are skipped; the batch continues where it must. */
    push_batch(&f, 3, recs + 3, 4);
    pump(f.base, 50);
    assert_int_equal(coordclient_state(b.cc)->offset, 6);
    assert_int_equal(f.watches, 1);
    /* 8 after 6: a gap. */
    push_batch(&f, 8, recs + 8, 2);
    pump_until(f.base, resubscribed, &f, 5000);
    assert_int_equal(f.last_watch_offset, -1);
    free_records(recs, 10);
    teardown(&f, &b);
}

static void test_lease_ends_a_tenth_early_and_not_controller_does_not_renew(void **state)
{
    (void)state;
    struct fake f;
    struct broker b;
    struct broker_settings s;
    setup(&f, &b, &s);
    assert_int_equal(coordclient_lease_ms(9000), 8100);
    assert_int_equal(coordclient_session_timeout_ms(b.cc), 3000);
    /* Right after an accepted heartbeat (they go every 100 ms), the fake stops
     * leading: the last accepted one was sent at most a few ms before t. */
    int seen = f.heartbeats;
    while (f.heartbeats == seen)
        pump(f.base, 1);
    f.not_controller = true;
    int64_t t = clock_mono_ms();
    pump(f.base, 400); /* answers in flight arrive; refusals come back */
    assert_true(coordclient_registered(b.cc)); /* NOT_CONTROLLER is no fencing */
    assert_true(coordclient_lease_valid(b.cc, t + 2500));
    /* Without the allowance the lease would last until t + 3000 - a few ms. */
    assert_false(coordclient_lease_valid(b.cc, t + 2800));
    assert_false(coordclient_lease_valid(b.cc, t + 3100));
    /* The refused heartbeats did not renew it. */
    assert_false(coordclient_lease_valid(b.cc, clock_mono_ms() + 2750));
    assert_int_equal(f.registers, 1);
    teardown(&f, &b);
}

static bool registered(void *arg)
{
    return coordclient_registered(((struct broker *)arg)->cc);
}

static bool leader_has_heartbeats(void *arg)
{
    return ((struct fake *)arg)->heartbeats >= 3;
}

/* A broker configured with only a follower moves to the leader it hints at,
 * which is not in its list (a voter added by a membership change): it
 * registers there once, watches there and heartbeats there. */
static void test_follows_a_hint_outside_the_list(void **state)
{
    (void)state;
    struct fake follower, leader;
    fake_start(&leader);
    fake_start(&follower);
    event_base_free(follower.base); /* both on one loop */
    rpc_server_free(follower.server);
    follower.base = leader.base;
    struct rpc_handler h[COORD_M_COUNT];
    memset(h, 0, sizeof(h));
    h[COORD_M_REGISTER_BROKER] = (struct rpc_handler){fake_register, &follower};
    h[COORD_M_HEARTBEAT] = (struct rpc_handler){fake_heartbeat, &follower};
    h[COORD_M_WATCH] = (struct rpc_handler){fake_watch, &follower};
    struct rpc_server_options so = {.max_output_bytes = 64u * 1024 * 1024};
    assert_int_equal(rpc_server_new(leader.base, "127.0.0.1", 0,
                                    &weir__coord__coordinator__descriptor, h, &so,
                                    &follower.server),
                     0);
    follower.not_controller = true;
    follower.hint_port = rpc_server_port(leader.server);

    struct broker_settings s;
    memset(&s, 0, sizeof(s));
    s.broker_id = 1;
    char list[64], err[256];
    snprintf(list, sizeof(list), "127.0.0.1:%d", rpc_server_port(follower.server));
    assert_int_equal(coordaddr_parse(list, &s.coord, err, sizeof(err)), 0);
    snprintf(s.coord_host, sizeof(s.coord_host), "127.0.0.1");
    s.coord_port = rpc_server_port(follower.server);
    snprintf(s.advertised.listener, sizeof(s.advertised.listener), "PLAINTEXT");
    snprintf(s.advertised.host, sizeof(s.advertised.host), "127.0.0.1");
    s.advertised.port = 9092;
    struct broker b;
    memset(&b, 0, sizeof(b));
    b.waited = -2;
    struct coordclient_callbacks cb = {.on_metadata = on_metadata, .ud = &b};
    assert_int_equal(coordclient_new(leader.base, &s, &cb, &b.cc), 0);
    coordclient_set_cluster_id(b.cc, CLUSTER);
    pump_until(leader.base, registered, &b, 5000);
    pump_until(leader.base, watched, &leader, 5000);
    pump_until(leader.base, leader_has_heartbeats, &leader, 5000);
    assert_int_equal(leader.registers, 1);
    assert_int_equal(follower.registers, 0);
    assert_int_equal(follower.heartbeats, 0);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", rpc_server_port(leader.server));
    assert_string_equal(coordclient_coordinator(b.cc), want);
    assert_true(coordclient_moves(b.cc) >= 1);
    pump(leader.base, 300);
    assert_int_equal(leader.registers, 1); /* registered once */
    coordclient_free(b.cc);
    if (leader.watch_conn)
        rpc_conn_unref(leader.watch_conn);
    if (follower.watch_conn)
        rpc_conn_unref(follower.watch_conn);
    rpc_server_free(follower.server);
    rpc_server_free(leader.server);
    event_base_free(leader.base);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_batch_is_applied_in_slices_and_told_at_the_end),
        cmocka_unit_test(test_a_gap_resubscribes_from_the_start),
        cmocka_unit_test(test_lease_ends_a_tenth_early_and_not_controller_does_not_renew),
        cmocka_unit_test(test_follows_a_hint_outside_the_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
