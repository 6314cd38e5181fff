/* test_raft_node: three quorum voters (coordinator/raft_node.c) in one process,
 * on one event loop, talking QuorumStep over real RPC connections on 127.0.0.1,
 * each with its own raft_store directory and an in-memory stand-in for its
 * metadata log (the committed entries, in order). A leader is elected, its
 * proposals commit identically on every voter, a freed ("crashed") leader is
 * replaced by a new one that commits, and the crashed voter, reopened from its
 * store and its log, catches up. A voter with another voter list is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "coordinator/coord_config.h"
#include "coordinator/raft_node.h"
#include "coordinator/raft_store.h"
#include "methods.h"
#include "quorum.pb-c.h"
#include "tests/unit/testutil.h"

#define N 3

struct voter {
    int id;
    char *dir;
    struct coord_settings cfg;
    struct rpc_server *server;
    struct craft_node *node;
    /* the stand-in metadata log: committed entries in order */
    uint8_t **log;
    size_t *log_len;
    size_t n_log, cap_log;
    bool fatal;
    char why[512];
};

static struct event_base *base;
static struct voter V[N];

static void on_committed(void *ud, int64_t offset, uint8_t *data, size_t len)
{
    struct voter *v = ud;
    assert_int_equal(offset, (int64_t)v->n_log);
    if (v->n_log == v->cap_log) {
        v->cap_log = v->cap_log ? v->cap_log * 2 : 64;
        v->log = realloc(v->log, v->cap_log * sizeof(*v->log));
        v->log_len = realloc(v->log_len, v->cap_log * sizeof(*v->log_len));
        assert_non_null(v->log);
        assert_non_null(v->log_len);
    }
    v->log[v->n_log] = data;
    v->log_len[v->n_log] = len;
    v->n_log++;
    craft_node_log_durable(v->node, offset + 1);
}

static void on_fatal(void *ud, const char *why)
{
    struct voter *v = ud;
    v->fatal = true;
    snprintf(v->why, sizeof(v->why), "%s", why);
}

static void on_step(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct voter *v = ud;
    Weir__Quorum__QuorumStepResponse resp = WEIR__QUORUM__QUORUM_STEP_RESPONSE__INIT;
    char err[512] = "";
    if (v->node)
        craft_node_receive(v->node, (const Weir__Quorum__QuorumMessage *)msg, err, sizeof(err));
    resp.error = err;
    rpc_call_reply(call, &resp.base);
}

static void start_server(struct voter *v, int port)
{
    struct rpc_handler h[COORD_M_COUNT] = {{0}};
    h[COORD_M_QUORUM_STEP] = (struct rpc_handler){on_step, v};
    assert_int_equal(rpc_server_new(base, "127.0.0.1", port, &weir__coord__coordinator__descriptor,
                                    h, NULL, &v->server),
                     0);
}

/* Open voter @v from its store and stand-in log, as a restart would. */
static void open_voter(struct voter *v)
{
    struct craft_store *store;
    struct craft_store_recovered rec;
    char err[512] = "";
    int r = craft_store_open(v->dir, (int64_t)v->n_log, &store, &rec, err, sizeof(err));
    if (r < 0)
        fail_msg("store: %s", err);
    struct craft_entry *recs = calloc(v->n_log + 1, sizeof(*recs));
    assert_non_null(recs);
    for (size_t i = 0; i < v->n_log; i++)
        recs[i] =
            (struct craft_entry){craft_store_term_of(store, (int64_t)i), v->log[i], v->log_len[i]};
    struct craft_node_options o = {
        .cfg = &v->cfg,
        .cluster_id = "test-cluster",
        .election_ms = 200,
        .cb = {.committed = on_committed, .fatal = on_fatal, .ud = v},
    };
    assert_int_equal(
        craft_node_new(base, &o, store, &rec, 0, recs, v->n_log, (int64_t)v->n_log, &v->node), 0);
    free(recs);
    craft_store_recovered_free(&rec);
    assert_int_equal(craft_node_start(v->node), 0);
}

static bool run_until(bool (*cond)(void), int64_t ms)
{
    int64_t deadline = clock_mono_ms() + ms;
    while (!cond() && clock_mono_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    return cond();
}

static int leader(void)
{
    for (int i = 0; i < N; i++)
        if (V[i].node && craft_node_is_leader(V[i].node) && craft_node_lease_valid(V[i].node))
            return i;
    return -1;
}

static bool have_leader(void)
{
    return leader() >= 0;
}

static size_t want;
static bool all_running_have_want(void)
{
    for (int i = 0; i < N; i++)
        if (V[i].node && V[i].n_log < want)
            return false;
    return true;
}

static int setup(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_ERROR);
    base = event_base_new();
    assert_non_null(base);
    int ports[N];
    for (int i = 0; i < N; i++) {
        memset(&V[i], 0, sizeof(V[i]));
        V[i].id = i + 1;
        V[i].dir = testutil_mkdtemp("rnode");
        start_server(&V[i], 0);
        ports[i] = rpc_server_port(V[i].server);
    }
    char voters[256];
    snprintf(voters, sizeof(voters), "1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d", ports[0],
             ports[1], ports[2]);
    for (int i = 0; i < N; i++) {
        char err[256];
        struct coord_settings *c = &V[i].cfg;
        c->node_id = V[i].id;
        c->max_frame_bytes = 1 << 20;
        assert_int_equal(
            coord_config_parse_voters(voters, c->voters, &c->n_voters, err, sizeof(err)), 0);
        c->voters_digest = coord_config_voters_digest(c->voters, c->n_voters);
    }
    return 0;
}

static void voter_close(struct voter *v)
{
    craft_node_free(v->node);
    v->node = NULL;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++) {
        voter_close(&V[i]);
        rpc_server_free(V[i].server);
        for (size_t j = 0; j < V[i].n_log; j++)
            free(V[i].log[j]);
        free(V[i].log);
        free(V[i].log_len);
        fsutil_remove_tree(V[i].dir);
        free(V[i].dir);
    }
    event_base_free(base);
    return 0;
}

static void propose_n(int l, int count, const char *tag)
{
    for (int k = 0; k < count; k++) {
        char rec[32];
        int len = snprintf(rec, sizeof(rec), "%s-%d", tag, k);
        assert_int_equal(craft_node_propose(V[l].node, rec, (size_t)len, NULL), 0);
    }
}

static void assert_logs_agree(void)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            size_t n = V[i].n_log < V[j].n_log ? V[i].n_log : V[j].n_log;
            for (size_t k = 0; k < n; k++) {
                assert_int_equal(V[i].log_len[k], V[j].log_len[k]);
                assert_memory_equal(V[i].log[k], V[j].log[k], V[i].log_len[k]);
            }
        }
}

static void test_three_voters_commit_fail_over_and_catch_up(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++)
        open_voter(&V[i]);
    assert_true(run_until(have_leader, 5000));
    int l = leader();
    propose_n(l, 50, "a");
    want = 51; /* the leader's no-op, then the 50 */
    assert_true(run_until(all_running_have_want, 5000));
    assert_logs_agree();

    /* The leader crashes; the other two elect a new one, which commits. */
    voter_close(&V[l]);
    assert_true(run_until(have_leader, 5000));
    int l2 = leader();
    assert_int_not_equal(l2, l);
    propose_n(l2, 20, "b");
    want = 72; /* + the new no-op + 20 */
    assert_true(run_until(all_running_have_want, 5000));

    /* It comes back from its disk and catches up. */
    open_voter(&V[l]);
    assert_true(run_until(all_running_have_want, 5000));
    assert_logs_agree();
    for (int i = 0; i < N; i++)
        assert_false(V[i].fatal);
}

static bool someone_fatal(void)
{
    for (int i = 0; i < N; i++)
        if (V[i].fatal)
            return true;
    return false;
}

static void test_voter_with_another_list_is_refused(void **state)
{
    (void)state;
    /* Voter 3 believes in another third voter: its digest differs. */
    char err[256];
    struct coord_settings *c = &V[2].cfg;
    c->voters[1].addr.port++;
    c->voters_digest = coord_config_voters_digest(c->voters, c->n_voters);
    for (int i = 0; i < N; i++)
        open_voter(&V[i]);
    assert_true(run_until(someone_fatal, 5000));
    bool named = false;
    for (int i = 0; i < N; i++)
        named |= V[i].fatal && strstr(V[i].why, "must be the same on every voter") != NULL;
    assert_true(named);
    (void)err;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_voters_commit_fail_over_and_catch_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_voter_with_another_list_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
