/* test_raft_node: three quorum voters (coordinator/raft_node.c) in one process,
 * on one event loop, talking QuorumStep over real RPC connections on 127.0.0.1,
 * each with its own raft_store directory and an in-memory stand-in for its
 * metadata log (the committed entries, in order). A leader is elected, its
 * proposals commit identically on every voter, a freed ("crashed") leader is
 * replaced by a new one that commits, and the crashed voter, reopened from its
 * store and its log, catches up. A voter with another voter list is refused.
 * A voter receiving a snapshot in chunks refuses a whole with a bad CRC (and
 * asks for it again) or one its metadata log refuses, installs a good one and
 * continues with the leader's entries after it. */
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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "coordinator/coord_config.h"
#include "coordinator/mlog.h"
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
    /* snapshot install: the voter's real metadata log for it, and the result */
    char *log_dir;
    struct mlog *mlog;
    int64_t installed;
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

/* A voter without a node that takes snapshot chunks: the first whole it gets
 * it reports corrupt, the second it keeps. */
struct fake_receiver {
    bool on;
    uint8_t *buf;
    uint64_t size, pos;
    int wholes, restarts, chunks;
    size_t largest;
};
static struct fake_receiver fake;

static void fake_chunk(const Weir__Quorum__QuorumMessage *q, Weir__Quorum__QuorumStepResponse *resp)
{
    if (q->chunk_pos == 0) {
        free(fake.buf);
        fake.buf = malloc(q->snap_total);
        assert_non_null(fake.buf);
        fake.size = q->snap_total;
        fake.pos = 0;
    }
    if (!fake.buf || q->chunk_pos != fake.pos) {
        resp->snap_next = (int64_t)fake.pos;
        return;
    }
    fake.chunks++;
    if (q->snap_data.len > fake.largest)
        fake.largest = q->snap_data.len;
    memcpy(fake.buf + fake.pos, q->snap_data.data, q->snap_data.len);
    fake.pos += q->snap_data.len;
    resp->snap_next = (int64_t)fake.pos;
    if (fake.pos < fake.size || fake.wholes == 2)
        return;
    assert_int_equal(crc32c_update(0, fake.buf, fake.size), q->snap_crc);
    if (++fake.wholes == 1) {
        resp->snap_corrupt = true;
        resp->snap_next = 0;
        fake.restarts++;
    }
}

static void on_step(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct voter *v = ud;
    const Weir__Quorum__QuorumMessage *q = (const Weir__Quorum__QuorumMessage *)msg;
    Weir__Quorum__QuorumStepResponse resp = WEIR__QUORUM__QUORUM_STEP_RESPONSE__INIT;
    char err[512] = "";
    if (v->node)
        craft_node_receive_reply(v->node, q, err, sizeof(err), &resp);
    else if (fake.on && q->type == CRAFT_MSG_SNAPSHOT && q->snap_total > 0)
        fake_chunk(q, &resp);
    resp.error = err;
    rpc_call_reply(call, &resp.base);
}

/* The leader's newest snapshot file, when a test provides one. */
static char *leader_snapshot;
static int64_t leader_snapshot_offset;

static int on_open_snapshot(void *ud, int *ret_fd, int64_t *ret_offset, uint64_t *ret_size)
{
    (void)ud;
    if (!leader_snapshot)
        return -ENOENT;
    int fd = open(leader_snapshot, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    *ret_fd = fd;
    *ret_offset = leader_snapshot_offset;
    *ret_size = (uint64_t)st.st_size;
    return 0;
}

/* The service's part of an install: the metadata log takes the file, and the
 * stand-in log now starts at the snapshot (entries below it are NULL). */
static int on_install(void *ud, const char *name, int64_t offset, char *err, size_t errlen)
{
    struct voter *v = ud;
    uint8_t *img = NULL;
    size_t len = 0;
    int r = mlog_install_snapshot(v->mlog, name, offset, &img, &len);
    if (r < 0) {
        snprintf(err, errlen, "%s", strerror(-r));
        return r;
    }
    free(img);
    for (size_t j = 0; j < v->n_log; j++)
        free(v->log[j]);
    v->cap_log = (size_t)offset + 64;
    v->log = realloc(v->log, v->cap_log * sizeof(*v->log));
    v->log_len = realloc(v->log_len, v->cap_log * sizeof(*v->log_len));
    assert_non_null(v->log);
    assert_non_null(v->log_len);
    memset(v->log, 0, (size_t)offset * sizeof(*v->log));
    memset(v->log_len, 0, (size_t)offset * sizeof(*v->log_len));
    v->n_log = (size_t)offset;
    v->installed = offset;
    return 0;
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
        .log_dir = v->log_dir,
        .cb = {.committed = on_committed,
               .fatal = on_fatal,
               .install_snapshot = v->mlog ? on_install : NULL,
               .open_snapshot = on_open_snapshot,
               .ud = v},
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
        mlog_close(V[i].mlog);
        free(V[i].log_dir);
        fsutil_remove_tree(V[i].dir);
        free(V[i].dir);
    }
    event_base_free(base);
    free(fake.buf);
    memset(&fake, 0, sizeof(fake));
    if (leader_snapshot)
        unlink(leader_snapshot);
    free(leader_snapshot);
    leader_snapshot = NULL;
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

/* ---- snapshot install on the receiving side ------------------------------------- */

/* The bytes of a metadata snapshot file at @offset holding @img. */
static uint8_t *snapshot_file(int64_t offset, const char *img, size_t *ret_len)
{
    char *dir = testutil_mkdtemp("rnode-leader");
    struct mlog *log = NULL;
    assert_int_equal(mlog_open(dir, NULL, &log, NULL), 0);
    for (int64_t i = 0; i < offset; i++)
        assert_int_equal(mlog_append_sync(log, "r", 1, NULL), 0);
    assert_int_equal(mlog_write_snapshot_sync(log, offset, img, strlen(img)), 0);
    int fd = -1;
    int64_t off = 0;
    uint64_t size = 0;
    assert_int_equal(mlog_open_snapshot(log, &fd, &off, &size), 0);
    uint8_t *b = malloc(size);
    assert_non_null(b);
    assert_int_equal(fsutil_pread_all(fd, b, size, 0), 0);
    close(fd);
    mlog_close(log);
    testutil_rmtree(dir);
    *ret_len = size;
    return b;
}

/* Voter 1 receives a chunk of @file from voter 2, the leader of term 5. */
static Weir__Quorum__QuorumStepResponse chunk(const uint8_t *file, size_t size, uint32_t crc,
                                              size_t pos, size_t len, int64_t offset)
{
    Weir__Quorum__QuorumMessage q;
    weir__quorum__quorum_message__init(&q);
    q.cluster_id = "test-cluster";
    q.voters_digest = V[0].cfg.voters_digest;
    q.type = CRAFT_MSG_SNAPSHOT;
    q.from = 2;
    q.to = 1;
    q.term = 5;
    q.ts = clock_mono_ms();
    q.snap_offset = offset;
    q.snap_term = 4;
    q.snap_total = size;
    q.snap_crc = crc;
    q.chunk_pos = pos;
    q.snap_data.data = (uint8_t *)file + pos;
    q.snap_data.len = len;
    Weir__Quorum__QuorumStepResponse resp = WEIR__QUORUM__QUORUM_STEP_RESPONSE__INIT;
    char err[256] = "";
    assert_int_equal(craft_node_receive_reply(V[0].node, &q, err, sizeof(err), &resp), 0);
    assert_string_equal(err, "");
    return resp;
}

static bool tmp_left(void)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot-%020d.snap.tmp.install", V[0].log_dir, 10);
    return access(path, F_OK) == 0;
}

static bool installed_at_10(void)
{
    return V[0].installed == 10;
}

static void test_received_snapshot_is_verified_then_installed(void **state)
{
    (void)state;
    struct voter *v = &V[0];
    v->log_dir = malloc(strlen(v->dir) + 16);
    sprintf(v->log_dir, "%s/metadata", v->dir);
    assert_int_equal(mlog_open(v->log_dir, NULL, &v->mlog, NULL), 0);
    open_voter(v);
    size_t size;
    uint8_t *file = snapshot_file(10, "state-at-10", &size);
    uint32_t crc = crc32c_update(0, file, size);
    size_t half = size / 2;

    /* A whole whose CRC does not match: refused, asked for again, never installed. */
    Weir__Quorum__QuorumStepResponse r = chunk(file, size, crc ^ 1, 0, half, 10);
    assert_int_equal(r.snap_next, (int64_t)half);
    r = chunk(file, size, crc ^ 1, half, size - half, 10);
    assert_true(r.snap_corrupt);
    assert_int_equal(r.snap_next, 0);
    assert_false(tmp_left());
    assert_int_equal(v->installed, 0);

    /* A chunk out of place: the voter names the position it expects. */
    r = chunk(file, size, crc, half, size - half, 10);
    assert_int_equal(r.snap_next, 0);

    /* Bytes with a right CRC that are no snapshot for offset 10: the metadata
     * log refuses them, nothing is installed, the voter goes on. */
    uint8_t *junk = malloc(size);
    memcpy(junk, file, size);
    junk[size - 1] ^= 0x5a; /* the image's own CRC no longer matches */
    r = chunk(junk, size, crc32c_update(0, junk, size), 0, size, 10);
    assert_int_equal(r.snap_next, (int64_t)size);
    event_base_loop(base, EVLOOP_NONBLOCK);
    run_until(installed_at_10, 300);
    assert_int_equal(v->installed, 0);
    assert_false(tmp_left());
    assert_false(v->fatal);
    free(junk);

    /* The real thing, in two chunks. */
    r = chunk(file, size, crc, 0, half, 10);
    assert_int_equal(r.snap_next, (int64_t)half);
    r = chunk(file, size, crc, half, size - half, 10);
    assert_false(r.snap_corrupt);
    assert_int_equal(r.snap_next, (int64_t)size);
    assert_true(run_until(installed_at_10, 2000));
    assert_false(v->fatal);
    assert_false(tmp_left());
    assert_int_equal(mlog_next_offset(v->mlog), 10);
    assert_int_equal(mlog_snapshot_offset(v->mlog), 10);
    assert_int_equal(craft_node_applied(v->node), 10);
    assert_int_equal(craft_node_term_of(v->node, 9), 4);
    /* Chunks of the same snapshot again: it has all of it. */
    r = chunk(file, size, crc, 0, half, 10);
    assert_int_equal(r.snap_next, (int64_t)size);

    /* The leader continues with entries from the snapshot on. */
    Weir__Quorum__QuorumEntry e;
    weir__quorum__quorum_entry__init(&e);
    e.term = 5;
    e.data.data = (uint8_t *)"after";
    e.data.len = 5;
    Weir__Quorum__QuorumEntry *ep = &e;
    Weir__Quorum__QuorumMessage q;
    weir__quorum__quorum_message__init(&q);
    q.cluster_id = "test-cluster";
    q.voters_digest = v->cfg.voters_digest;
    q.type = CRAFT_MSG_APPEND;
    q.from = 2;
    q.to = 1;
    q.term = 5;
    q.ts = clock_mono_ms();
    q.prev_offset = 9;
    q.prev_term = 4;
    q.n_entries = 1;
    q.entries = &ep;
    q.commit = 11;
    char err[256] = "";
    assert_int_equal(craft_node_receive(v->node, &q, err, sizeof(err)), 0);
    want = 11;
    assert_true(run_until(all_running_have_want, 2000));
    assert_int_equal(v->log_len[10], 5);
    assert_memory_equal(v->log[10], "after", 5);
    assert_false(v->fatal);
    free(file);
}

static bool fake_has_it(void)
{
    return fake.wholes == 2;
}

static bool leader_among_1_and_3(void)
{
    int l = leader();
    return l == 0 || l == 2;
}

/* The leader side: a voter that never answered (voter 2, a stand-in) is behind
 * the compacted log and gets the snapshot file in chunks below the frame
 * limit; a whole it reports corrupt is sent again from the start. */
static void test_leader_streams_its_snapshot_and_resends_a_corrupt_one(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++)
        V[i].cfg.max_frame_bytes = 4096; /* chunks of 2 KiB */
    size_t size;
    char img[6000];
    for (size_t k = 0; k < sizeof(img) - 1; k++)
        img[k] = (char)('a' + k % 26);
    img[sizeof(img) - 1] = 0;
    uint8_t *file = snapshot_file(20, img, &size);
    char *dir = testutil_mkdtemp("rnode-snap");
    leader_snapshot = malloc(strlen(dir) + 32);
    sprintf(leader_snapshot, "%s/snap", dir);
    int fd = open(leader_snapshot, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fsutil_pwrite_all(fd, file, size, 0), 0);
    close(fd);
    leader_snapshot_offset = 20;
    fake.on = true;

    open_voter(&V[0]);
    open_voter(&V[2]);
    assert_true(run_until(leader_among_1_and_3, 5000));
    int l = leader();
    propose_n(l, 30, "s");
    want = 31;
    assert_true(run_until(all_running_have_want, 5000));
    /* The service's snapshots at 10 and 20: the quorum log drops entries
     * below 10, which voter 2 never got. */
    craft_node_snapshot_taken(V[l].node, 10, NULL, 0);
    craft_node_snapshot_taken(V[l].node, 20, NULL, 0);
    assert_null(craft_node_entry(V[l].node, 5));
    assert_true(run_until(fake_has_it, 5000));
    assert_int_equal(fake.restarts, 1);
    assert_int_equal(fake.size, size);
    assert_true(fake.largest <= 2048);
    assert_true(fake.chunks >= 2 * (int)((size + 2047) / 2048));
    assert_memory_equal(fake.buf, file, size);
    for (int i = 0; i < N; i++)
        assert_false(V[i].fatal);
    free(file);
    testutil_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_voters_commit_fail_over_and_catch_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_voter_with_another_list_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_received_snapshot_is_verified_then_installed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leader_streams_its_snapshot_and_resends_a_corrupt_one,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
