/* Tests for coordinator/service_wait: the coordinator's two waits on the
 * purgatory, driven in-process over real loopback RPC against a real metadata
 * log. Replies are held until their records are durable; with a back-pressure
 * limit of one byte every mutation parks behind the one before it and they are
 * processed strictly in arrival order; stopping fails only what was parked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/meta/state.h"
#include "common/rpc.h"
#include "common/wpool.h"
#include "coordinator.pb-c.h"
#include "coordinator/controller.h"
#include "coordinator/coord_config.h"
#include "coordinator/mlog.h"
#include "coordinator/service.h"
#include "tests/unit/testutil.h"

#define N_CALLS 200

struct env {
    char *dir;
    struct config *conf;
    struct coord_settings cfg;
    struct event_base *base;
    struct wpool *pool;
    struct mlog *log;
    struct coord_service *svc;
    struct rpc_client *client;
    bool ready;
};

struct call {
    struct env *e;
    int index;
    bool done;
    int status;
    int16_t error;
    int64_t offset;
    int64_t committed_at_reply; /* the service's durable offset when answered */
};

static int answered_order[N_CALLS];
static int n_answered;
static bool break_on_answer; /* stop the loop at the first answer */

static void on_ready(struct coord_service *svc, void *ud)
{
    (void)svc;
    ((struct env *)ud)->ready = true;
}

static void pump_until(struct env *e, bool *flag, int max_ms)
{
    for (int i = 0; i < max_ms / 5 && !*flag; i++) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(e->base, &tv);
        event_base_dispatch(e->base);
    }
    assert_true(*flag);
}

static void env_init(struct env *e, size_t max_unflushed)
{
    memset(e, 0, sizeof(*e));
    log_set_level(LOG_LEVEL_ERROR);
    e->dir = testutil_mkdtemp("service_wait");
    assert_int_equal(config_new(coord_config_defs, coord_config_ndefs, &e->conf), 0);
    char kv[4200], err[256] = "";
    snprintf(kv, sizeof(kv), "data.dir=%s", e->dir);
    assert_int_equal(config_apply_override(e->conf, kv, err, sizeof(err)), 0);
    assert_int_equal(config_apply_override(e->conf, "listeners=127.0.0.1:0", err, sizeof(err)), 0);
    assert_int_equal(coord_config_resolve(e->conf, &e->cfg, err, sizeof(err)), 0);

    char mdir[4200];
    snprintf(mdir, sizeof(mdir), "%s/metadata", e->dir);
    struct mlog_options mo;
    mlog_options_defaults(&mo);
    struct mlog_recovery_info info;
    assert_int_equal(mlog_open(mdir, &mo, &e->log, &info), 0);
    struct cstate *s = NULL;
    assert_int_equal(cstate_new(&s), 0);
    /* A formatted data dir: the service never draws a cluster id itself. */
    struct cctl_ctx ctx = {0};
    cctl_config_defaults(&ctx.cfg);
    struct cstate_records recs;
    cstate_records_init(&recs);
    struct cctl_error cerr = {0};
    assert_int_equal(cctl_bootstrap(s, &ctx, "MkU3OEVBNTcwNTJENDM2Qg", &recs, &cerr), 0);
    assert_int_equal(recs.n, 1);
    int64_t off = -1;
    assert_int_equal(mlog_append_sync(e->log, recs.v[0].data, recs.v[0].len, &off), 0);
    assert_int_equal(cstate_apply_bytes(s, off, recs.v[0].data, recs.v[0].len, NULL, 0), 0);
    cstate_records_deinit(&recs);
    e->base = event_base_new();
    assert_non_null(e->base);
    assert_int_equal(wpool_new(e->base, 1, &e->pool), 0);
    assert_int_equal(mlog_attach(e->log, e->base, e->pool), 0);
    struct coord_service_options so = {.settings = &e->cfg, .max_unflushed_bytes = max_unflushed};
    assert_int_equal(coord_service_new(e->base, e->log, s, &so, &e->svc), 0);
    assert_int_equal(coord_service_start(e->svc, on_ready, e), 0);
    pump_until(e, &e->ready, 5000);
    assert_int_equal(rpc_client_new(e->base, "127.0.0.1", coord_service_port(e->svc, 0),
                                    &weir__coord__coordinator__descriptor, NULL, &e->client),
                     0);
}

static void env_deinit(struct env *e)
{
    rpc_client_free(e->client);
    if (e->svc) {
        assert_int_equal(coord_service_stop(e->svc), 0);
        coord_service_free(e->svc);
    }
    mlog_close(e->log);
    wpool_free(e->pool);
    event_base_free(e->base);
    config_free(e->conf);
    testutil_rmtree(e->dir);
}

static void on_register(int status, const ProtobufCMessage *resp, const char *errmsg, void *ud)
{
    struct call *c = ud;
    c->status = status;
    if (status == RPC_OK)
        c->error = (int16_t)((const Weir__Coord__RegisterBrokerResponse *)resp)->error_code;
    c->done = true;
    (void)errmsg;
}

static void register_broker(struct env *e)
{
    Weir__Meta__Endpoint ep = WEIR__META__ENDPOINT__INIT;
    ep.listener = "PLAINTEXT";
    ep.host = "127.0.0.1";
    ep.port = 9092;
    ep.security_protocol = "PLAINTEXT";
    Weir__Meta__Endpoint *eps[] = {&ep};
    uint8_t inc[16];
    memset(inc, 7, sizeof(inc));
    Weir__Coord__RegisterBrokerRequest req = WEIR__COORD__REGISTER_BROKER_REQUEST__INIT;
    req.broker_id = 1;
    req.incarnation_id.data = inc;
    req.incarnation_id.len = sizeof(inc);
    req.endpoints = eps;
    req.n_endpoints = 1;
    struct call c = {.e = e};
    assert_int_equal(
        rpc_client_call(e->client, COORD_M_REGISTER_BROKER, &req.base, 5000, on_register, &c), 0);
    pump_until(e, &c.done, 5000);
    assert_int_equal(c.status, RPC_OK);
    assert_int_equal(c.error, 0);
}

static void on_created(int status, const ProtobufCMessage *resp, const char *errmsg, void *ud)
{
    struct call *c = ud;
    c->status = status;
    c->committed_at_reply = coord_service_committed_offset(c->e->svc);
    if (status == RPC_OK) {
        const Weir__Coord__CreateTopicsResponse *r = (const Weir__Coord__CreateTopicsResponse *)resp;
        c->error = r->n_results == 1 ? (int16_t)r->results[0]->error_code : -2;
        c->offset = r->metadata_offset;
    }
    c->done = true;
    if (n_answered < N_CALLS)
        answered_order[n_answered++] = c->index;
    if (break_on_answer)
        event_base_loopbreak(c->e->base);
    (void)errmsg;
}

static void send_creates(struct env *e, struct call *calls, int n)
{
    n_answered = 0;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "t%03d", i);
        Weir__Coord__CreatableTopic t = WEIR__COORD__CREATABLE_TOPIC__INIT;
        t.name = name;
        t.num_partitions = 1;
        t.replication_factor = 1;
        Weir__Coord__CreatableTopic *ts[] = {&t};
        Weir__Coord__CreateTopicsRequest req = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
        req.topics = ts;
        req.n_topics = 1;
        calls[i] = (struct call){.e = e, .index = i};
        assert_int_equal(rpc_client_call(e->client, COORD_M_CREATE_TOPICS, &req.base, 30000,
                                         on_created, &calls[i]),
                         0);
    }
}

static bool all_done(struct call *calls, int n)
{
    for (int i = 0; i < n; i++)
        if (!calls[i].done)
            return false;
    return true;
}

static void wait_all(struct env *e, struct call *calls, int n)
{
    for (int i = 0; i < 6000 && !all_done(calls, n); i++) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(e->base, &tv);
        event_base_dispatch(e->base);
    }
    assert_true(all_done(calls, n));
}

/* Every mutation is answered only once its record is durable, in the order
 * the calls arrived, when each one had to wait for the previous to be flushed. */
static void check_ordered_and_durable(struct call *calls, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(calls[i].status, RPC_OK);
        assert_int_equal(calls[i].error, 0);
        assert_true(calls[i].offset >= 0);
        assert_true(calls[i].offset <= calls[i].committed_at_reply);
        if (i > 0)
            assert_true(calls[i].offset > calls[i - 1].offset);
        assert_int_equal(answered_order[i], i);
    }
}

static void test_parked_mutations_run_in_arrival_order_once_durable(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, 1); /* one unflushed byte: every mutation parks behind the last */
    register_broker(&e);
    static struct call calls[N_CALLS];
    send_creates(&e, calls, N_CALLS);
    wait_all(&e, calls, N_CALLS);
    check_ordered_and_durable(calls, N_CALLS);
    env_deinit(&e);
}

static void test_held_replies_answered_once_durable_without_back_pressure(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, 0); /* the default limit: nothing parks, replies are held */
    register_broker(&e);
    static struct call calls[N_CALLS];
    send_creates(&e, calls, N_CALLS);
    wait_all(&e, calls, N_CALLS);
    check_ordered_and_durable(calls, N_CALLS);
    env_deinit(&e);
}

static void test_stop_answers_appended_and_fails_parked(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, 1);
    register_broker(&e);
    static struct call calls[N_CALLS];
    send_creates(&e, calls, N_CALLS);
    /* Run until the first answer (the others arrived and parked behind it),
     * then stop: what was appended is answered OK, what was still parked fails
     * with SHUTTING_DOWN, nothing is lost silently. Without back-pressure all
     * would have been appended at once and none would fail. */
    break_on_answer = true;
    for (int i = 0; i < 1000 && n_answered == 0; i++) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(e.base, &tv);
        event_base_dispatch(e.base);
    }
    break_on_answer = false;
    assert_true(n_answered >= 1 && n_answered < N_CALLS / 2);
    assert_int_equal(coord_service_stop(e.svc), 0);
    wait_all(&e, calls, N_CALLS);
    int ok = 0, shut = 0;
    for (int i = 0; i < N_CALLS; i++) {
        if (calls[i].status == RPC_OK) {
            assert_int_equal(calls[i].error, 0);
            assert_true(calls[i].offset <= calls[i].committed_at_reply);
            assert_int_equal(shut, 0); /* every OK comes before every failure */
            ok++;
        } else {
            assert_int_equal(calls[i].status, RPC_SHUTTING_DOWN);
            shut++;
        }
    }
    assert_int_equal(ok + shut, N_CALLS);
    assert_true(ok >= 1);
    assert_true(shut >= N_CALLS / 2);
    coord_service_free(e.svc);
    e.svc = NULL;
    env_deinit(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parked_mutations_run_in_arrival_order_once_durable),
        cmocka_unit_test(test_held_replies_answered_once_durable_without_back_pressure),
        cmocka_unit_test(test_stop_answers_appended_and_fails_parked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
