/* test_watch: the watch hub over real loopback RPC connections — catch-up from the
 * ring versus a full image, eviction, ordered fan-out, dropping closed
 * subscribers, and disconnecting one that stops reading while the others keep
 * receiving. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/rpc_frame.h"
#include "coordinator.pb-c.h"
#include "coordinator/service.h"
#include "coordinator/watch.h"

#define MAX_SEEN 8192

struct env {
    struct event_base *base;
    struct rpc_server *server;
    struct watch_hub *hub;
    int images_built;
};

struct sub {
    struct rpc_client *c;
    bool responded;
    bool full_image;
    int64_t next_offset;
    int images;
    int64_t image_offset;
    int64_t seen[MAX_SEEN];
    size_t n;
    bool disconnected;
    int frames;       /* record or batch pushes received */
    size_t max_batch; /* most records in one batch push */
    size_t max_batch_bytes;
};

static int fake_image(void *ud, uint8_t **ret_data, size_t *ret_len, int64_t *ret_offset)
{
    struct env *e = ud;
    e->images_built++;
    uint8_t *d = malloc(5);
    if (!d)
        return -ENOMEM;
    memcpy(d, "IMAGE", 5);
    *ret_data = d;
    *ret_len = 5;
    *ret_offset = watch_hub_committed_offset(e->hub);
    return 0;
}

static void handle_watch(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct env *e = ud;
    watch_hub_subscribe(e->hub, call, (const Weir__Coord__WatchRequest *)msg);
}

static void env_init(struct env *e, const struct watch_options *wo, int64_t committed,
                     size_t max_output)
{
    memset(e, 0, sizeof(*e));
    e->base = event_base_new();
    assert_non_null(e->base);
    assert_int_equal(watch_hub_new(wo, committed, fake_image, e, &e->hub), 0);
    struct rpc_handler h[COORD_M_COUNT];
    memset(h, 0, sizeof(h));
    h[COORD_M_WATCH] = (struct rpc_handler){handle_watch, e};
    struct rpc_server_options so = {.max_output_bytes = max_output};
    assert_int_equal(rpc_server_new(e->base, "127.0.0.1", 0, &weir__coord__coordinator__descriptor,
                                    h, &so, &e->server),
                     0);
}

static void env_deinit(struct env *e)
{
    rpc_server_free(e->server);
    watch_hub_free(e->hub);
    event_base_free(e->base);
}

static void pump(struct env *e, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_base_loopexit(e->base, &tv);
    event_base_dispatch(e->base);
}

static void publish(struct env *e, int64_t offset, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    assert_non_null(d);
    memset(d, (int)(offset & 0xff), len);
    assert_int_equal(watch_hub_publish(e->hub, offset, d, len), 0);
}

static void on_record(uint16_t type, const ProtobufCMessage *msg, void *ud)
{
    (void)type;
    struct sub *s = ud;
    const Weir__Coord__WatchRecord *r = (const Weir__Coord__WatchRecord *)msg;
    assert_true(s->responded);
    assert_true(!s->full_image || s->images == 1);
    /* The payload is what was published for that offset. */
    if (r->record.len > 0)
        assert_int_equal(r->record.data[0], (uint8_t)(r->offset & 0xff));
    if (s->n < MAX_SEEN)
        s->seen[s->n++] = r->offset;
    s->frames++;
}

static void on_batch(uint16_t type, const ProtobufCMessage *msg, void *ud)
{
    (void)type;
    struct sub *s = ud;
    const Weir__Coord__WatchBatch *b = (const Weir__Coord__WatchBatch *)msg;
    assert_true(s->responded);
    assert_true(b->n_records > 0);
    size_t bytes = 0;
    for (size_t i = 0; i < b->n_records; i++) {
        int64_t offset = b->first_offset + (int64_t)i;
        if (b->records[i].len > 0)
            assert_int_equal(b->records[i].data[0], (uint8_t)(offset & 0xff));
        bytes += b->records[i].len;
        if (s->n < MAX_SEEN)
            s->seen[s->n++] = offset;
    }
    s->frames++;
    if (b->n_records > s->max_batch)
        s->max_batch = b->n_records;
    if (bytes > s->max_batch_bytes)
        s->max_batch_bytes = bytes;
}

static void on_image(uint16_t type, const ProtobufCMessage *msg, void *ud)
{
    (void)type;
    struct sub *s = ud;
    const Weir__Coord__WatchImage *im = (const Weir__Coord__WatchImage *)msg;
    assert_true(s->responded);
    assert_int_equal(s->n, 0);
    s->images++;
    s->image_offset = im->offset;
    assert_int_equal(im->image.len, 5);
}

static void on_disconnect(struct rpc_client *c, void *ud)
{
    (void)c;
    ((struct sub *)ud)->disconnected = true;
}

static void on_watch_response(int status, const ProtobufCMessage *resp, const char *errmsg,
                              void *ud)
{
    (void)errmsg;
    struct sub *s = ud;
    assert_int_equal(status, RPC_OK);
    const Weir__Coord__WatchResponse *r = (const Weir__Coord__WatchResponse *)resp;
    assert_int_equal(r->error_code, 0);
    s->responded = true;
    s->full_image = r->full_image;
    s->next_offset = r->next_offset;
}

static void subscribe_as(struct env *e, struct sub *s, int64_t last, bool batches)
{
    memset(s, 0, sizeof(*s));
    struct rpc_client_options o = {.on_disconnect = on_disconnect, .event_ud = s};
    assert_int_equal(rpc_client_new(e->base, "127.0.0.1", rpc_server_port(e->server),
                                    &weir__coord__coordinator__descriptor, &o, &s->c),
                     0);
    rpc_client_on_push(s->c, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_RECORD,
                       &weir__coord__watch_record__descriptor, on_record, s);
    rpc_client_on_push(s->c, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_IMAGE,
                       &weir__coord__watch_image__descriptor, on_image, s);
    rpc_client_on_push(s->c, WEIR__COORD__WATCH_PUSH_TYPE__WATCH_PUSH_BATCH,
                       &weir__coord__watch_batch__descriptor, on_batch, s);
    Weir__Coord__WatchRequest req = WEIR__COORD__WATCH_REQUEST__INIT;
    req.broker_id = 7;
    req.last_offset = last;
    req.accept_batches = batches;
    assert_int_equal(rpc_client_call(s->c, COORD_M_WATCH, &req.base, 5000, on_watch_response, s),
                     0);
    int64_t deadline = clock_mono_ms() + 5000;
    while (!s->responded && clock_mono_ms() < deadline)
        pump(e, 10);
    assert_true(s->responded);
    pump(e, 20);
}

static void subscribe(struct env *e, struct sub *s, int64_t last)
{
    subscribe_as(e, s, last, false);
}

static void wait_seen(struct env *e, struct sub *s, int64_t offset)
{
    int64_t deadline = clock_mono_ms() + 5000;
    while ((s->n == 0 || s->seen[s->n - 1] < offset) && clock_mono_ms() < deadline)
        pump(e, 10);
    assert_true(s->n > 0);
    assert_int_equal(s->seen[s->n - 1], offset);
}

static void assert_dense(const struct sub *s, int64_t first)
{
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(s->seen[i], first + (int64_t)i);
}

static void test_subscriber_within_ring_gets_exactly_the_missing_records(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, NULL, -1, 0);
    for (int64_t o = 0; o < 10; o++)
        publish(&e, o, 16);
    struct sub s;
    subscribe(&e, &s, 4);
    assert_false(s.full_image);
    assert_int_equal(s.next_offset, 5);
    wait_seen(&e, &s, 9);
    assert_int_equal(s.n, 5);
    assert_dense(&s, 5);
    assert_int_equal(e.images_built, 0);
    /* Up to date: nothing replayed, new records follow. */
    struct sub t;
    subscribe(&e, &t, 9);
    assert_false(t.full_image);
    assert_int_equal(t.n, 0);
    publish(&e, 10, 16);
    wait_seen(&e, &s, 10);
    wait_seen(&e, &t, 10);
    assert_int_equal(t.n, 1);
    struct watch_stats st;
    watch_hub_get_stats(e.hub, &st);
    assert_int_equal(st.replays, 2);
    assert_int_equal(st.images_sent, 0);
    rpc_client_free(s.c);
    rpc_client_free(t.c);
    env_deinit(&e);
}

static void test_subscriber_behind_the_ring_gets_image_then_records(void **state)
{
    (void)state;
    struct env e;
    struct watch_options wo = {.ring_records = 4};
    env_init(&e, &wo, 99, 0);
    for (int64_t o = 100; o < 110; o++)
        publish(&e, o, 16);
    /* Offsets 106..109 are kept; 103 needs 104 and 105, which are gone. */
    struct sub s;
    subscribe(&e, &s, 103);
    assert_true(s.full_image);
    assert_int_equal(s.next_offset, 110);
    assert_int_equal(s.images, 1);
    assert_int_equal(s.image_offset, 109);
    assert_int_equal(s.n, 0);
    /* 105 needs 106..109: all kept. */
    struct sub t;
    subscribe(&e, &t, 105);
    assert_false(t.full_image);
    wait_seen(&e, &t, 109);
    assert_dense(&t, 106);
    /* An offset from the future (another cluster) also gets the image. */
    struct sub u;
    subscribe(&e, &u, 500);
    assert_true(u.full_image);
    assert_int_equal(u.images, 1);
    publish(&e, 110, 8);
    wait_seen(&e, &s, 110);
    wait_seen(&e, &u, 110);
    assert_int_equal(s.n, 1);
    assert_int_equal(e.images_built, 2);
    rpc_client_free(s.c);
    rpc_client_free(t.c);
    rpc_client_free(u.c);
    env_deinit(&e);
}

static void test_ring_byte_budget_evicts_oldest(void **state)
{
    (void)state;
    struct env e;
    struct watch_options wo = {.ring_records = 100, .ring_bytes = 1000};
    env_init(&e, &wo, -1, 0);
    for (int64_t o = 0; o < 10; o++)
        publish(&e, o, 300); /* three fit in 1000 bytes */
    struct sub s;
    subscribe(&e, &s, 6);
    assert_false(s.full_image);
    wait_seen(&e, &s, 9);
    struct sub t;
    subscribe(&e, &t, 5);
    assert_true(t.full_image);
    rpc_client_free(s.c);
    rpc_client_free(t.c);
    env_deinit(&e);
}

static void test_closed_subscriber_is_dropped_and_others_keep_order(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, NULL, -1, 0);
    publish(&e, 0, 4);
    struct sub a, b;
    subscribe(&e, &a, 0);
    subscribe(&e, &b, 0);
    assert_int_equal(watch_hub_subscribers(e.hub), 2);
    for (int64_t o = 1; o <= 50; o++)
        publish(&e, o, 32);
    wait_seen(&e, &a, 50);
    wait_seen(&e, &b, 50);
    assert_dense(&a, 1);
    assert_dense(&b, 1);
    rpc_client_free(b.c);
    int64_t deadline = clock_mono_ms() + 5000;
    while (watch_hub_subscribers(e.hub) != 1 && clock_mono_ms() < deadline)
        pump(&e, 10);
    assert_int_equal(watch_hub_subscribers(e.hub), 1);
    publish(&e, 51, 4);
    wait_seen(&e, &a, 51);
    assert_dense(&a, 1);
    rpc_client_free(a.c);
    env_deinit(&e);
}

/* A subscriber that never reads: its connection is closed once its unsent
 * output passes the server's cap; the reading subscriber sees every record. */
static void test_slow_subscriber_is_disconnected_others_unaffected(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, NULL, -1, 1024 * 1024);
    publish(&e, 0, 4);
    struct sub good;
    subscribe(&e, &good, 0);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)rpc_server_port(e.server))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    Weir__Coord__WatchRequest req = WEIR__COORD__WATCH_REQUEST__INIT;
    req.last_offset = 0;
    uint8_t payload[64];
    size_t plen = weir__coord__watch_request__pack(&req, payload);
    uint8_t frame[RPC_FRAME_FIXED_BYTES + sizeof(payload)];
    rpc_frame_put_header(frame, RPC_FRAME_REQUEST, COORD_M_WATCH, 1, plen);
    memcpy(frame + RPC_FRAME_FIXED_BYTES, payload, plen);
    assert_int_equal(send(fd, frame, RPC_FRAME_FIXED_BYTES + plen, 0),
                     (ssize_t)(RPC_FRAME_FIXED_BYTES + plen));
    int64_t deadline = clock_mono_ms() + 5000;
    while (watch_hub_subscribers(e.hub) != 2 && clock_mono_ms() < deadline)
        pump(&e, 10);
    assert_int_equal(watch_hub_subscribers(e.hub), 2);

    /* 16 MiB of pushes: far beyond the slow one's socket buffers plus the cap,
     * in bursts the reading one drains well within it. */
    int64_t o = 1;
    for (; o <= 4096; o++) {
        publish(&e, o, 4096);
        if (o % 16 == 0)
            pump(&e, 2);
    }
    wait_seen(&e, &good, o - 1);
    assert_dense(&good, 1);
    assert_false(good.disconnected);
    assert_int_equal(watch_hub_subscribers(e.hub), 1);
    struct watch_stats st;
    watch_hub_get_stats(e.hub, &st);
    assert_int_equal(st.disconnected, 1);
    close(fd);
    rpc_client_free(good.c);
    env_deinit(&e);
}

/* ---- compact deltas --------------------------------------------------------------- */

/* A hub that holds the records of a loop turn (as the coordinator's does). */
static void env_init_batched(struct env *e, size_t batch_bytes)
{
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct watch_options wo = {.base = base, .batch_bytes = batch_bytes};
    env_init(e, &wo, -1, 64u * 1024 * 1024);
    /* env_init made a base of its own: serve on the hub's. */
    rpc_server_free(e->server);
    event_base_free(e->base);
    e->base = base;
    struct rpc_handler h[COORD_M_COUNT];
    memset(h, 0, sizeof(h));
    h[COORD_M_WATCH] = (struct rpc_handler){handle_watch, e};
    struct rpc_server_options so = {.max_output_bytes = 64u * 1024 * 1024};
    assert_int_equal(rpc_server_new(e->base, "127.0.0.1", 0, &weir__coord__coordinator__descriptor,
                                    h, &so, &e->server),
                     0);
}

/* A fence-sized burst (10,001 records in one loop turn) is one frame for a
 * subscriber that takes batches, every offset exact; one that does not still
 * gets a record push each. */
static void test_a_loop_turns_records_go_out_as_one_batch(void **state)
{
    (void)state;
    struct env e;
    env_init_batched(&e, 0);
    publish(&e, 0, 4);
    pump(&e, 10);
    struct sub b, r;
    subscribe_as(&e, &b, 0, true);
    subscribe(&e, &r, 0);
    struct watch_stats before;
    watch_hub_get_stats(e.hub, &before);
    const int64_t burst = 8000; /* MAX_SEEN bounds what the test keeps */
    for (int64_t o = 1; o <= burst; o++)
        publish(&e, o, 20);
    wait_seen(&e, &b, burst);
    wait_seen(&e, &r, burst);
    assert_int_equal(b.n, (size_t)burst);
    assert_dense(&b, 1);
    assert_dense(&r, 1);
    assert_int_equal(b.frames, 1);
    assert_int_equal(r.frames, burst);
    struct watch_stats st;
    watch_hub_get_stats(e.hub, &st);
    assert_int_equal(st.frames_pushed - before.frames_pushed, 1 + burst);
    assert_int_equal(st.records_pushed - before.records_pushed, 2 * burst);
    assert_int_equal(st.bytes_pushed - before.bytes_pushed, 2 * 20 * burst);
    rpc_client_free(b.c);
    rpc_client_free(r.c);
    env_deinit(&e);
}

/* Batches are bounded by batch_bytes of records; a record larger than that
 * goes alone; offsets stay dense across batches. */
static void test_batches_are_bounded_by_bytes(void **state)
{
    (void)state;
    struct env e;
    env_init_batched(&e, 10000);
    publish(&e, 0, 4);
    pump(&e, 10);
    struct sub b;
    subscribe_as(&e, &b, 0, true);
    for (int64_t o = 1; o <= 1000; o++)
        publish(&e, o, o == 500 ? 30000 : 100);
    wait_seen(&e, &b, 1000);
    assert_dense(&b, 1);
    assert_int_equal(b.n, 1000);
    /* 999 records of 100 bytes at 100 per batch, and the big one alone. */
    assert_true(b.frames >= 11 && b.frames <= 12);
    assert_int_equal(b.max_batch, 100);
    assert_int_equal(b.max_batch_bytes, 30000);
    rpc_client_free(b.c);
    env_deinit(&e);
}

/* A subscription made while records are held for the end of the turn gets
 * each of them exactly once; a replay from the ring comes in batches. */
static void test_subscribe_during_a_held_turn_sees_each_record_once(void **state)
{
    (void)state;
    struct env e;
    env_init_batched(&e, 0);
    publish(&e, 0, 4);
    pump(&e, 10);
    struct sub a;
    subscribe_as(&e, &a, 0, true);
    for (int64_t o = 1; o <= 300; o++)
        publish(&e, o, 16);
    /* Not pushed yet: the turn has not ended. A new subscriber from 0 asks
     * for 1..300 while they are held. */
    struct sub b;
    subscribe_as(&e, &b, 0, true);
    for (int64_t o = 301; o <= 310; o++)
        publish(&e, o, 16);
    wait_seen(&e, &a, 310);
    wait_seen(&e, &b, 310);
    assert_int_equal(a.n, 310);
    assert_int_equal(b.n, 310);
    assert_dense(&a, 1);
    assert_dense(&b, 1);
    /* a: 1..300 flushed by b's subscription, 301..310 at the end of the turn.
     * b: the replay of 1..300 as one batch, then 301..310. */
    assert_int_equal(a.frames, 2);
    assert_int_equal(b.frames, 2);
    rpc_client_free(a.c);
    rpc_client_free(b.c);
    env_deinit(&e);
}

/* A quorum voter installed its leader's snapshot: the committed offset jumps,
 * every subscriber gets an image of the new state and the records after it;
 * one that subscribes later from before the jump gets the image too. */
static void test_reset_pushes_an_image_and_continues_after_it(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, NULL, -1, 0);
    for (int64_t o = 0; o < 10; o++)
        publish(&e, o, 16);
    struct sub s;
    subscribe(&e, &s, 9);
    assert_false(s.full_image);
    assert_int_equal(watch_hub_reset(e.hub, 99), 0);
    assert_int_equal(watch_hub_committed_offset(e.hub), 99);
    int64_t deadline = clock_mono_ms() + 5000;
    while (s.images == 0 && clock_mono_ms() < deadline)
        pump(&e, 10);
    assert_int_equal(s.images, 1);
    assert_int_equal(s.image_offset, 99);
    publish(&e, 100, 16);
    wait_seen(&e, &s, 100);
    assert_int_equal(s.n, 1);
    struct sub t;
    subscribe(&e, &t, 9);
    assert_true(t.full_image);
    assert_int_equal(t.image_offset, 100);
    assert_int_equal(e.images_built, 2);
    rpc_client_free(s.c);
    rpc_client_free(t.c);
    env_deinit(&e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscriber_within_ring_gets_exactly_the_missing_records),
        cmocka_unit_test(test_subscriber_behind_the_ring_gets_image_then_records),
        cmocka_unit_test(test_ring_byte_budget_evicts_oldest),
        cmocka_unit_test(test_closed_subscriber_is_dropped_and_others_keep_order),
        cmocka_unit_test(test_slow_subscriber_is_disconnected_others_unaffected),
        cmocka_unit_test(test_a_loop_turns_records_go_out_as_one_batch),
        cmocka_unit_test(test_batches_are_bounded_by_bytes),
        cmocka_unit_test(test_subscribe_during_a_held_turn_sees_each_record_once),
        cmocka_unit_test(test_reset_pushes_an_image_and_continues_after_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
