/* Tests for broker/group/groups: the classic group protocol's state machine —
 * join / sync / heartbeat / leave, session expiry, rebalance timeouts, the
 * initial rebalance delay, static membership, generation and member checks,
 * protocol selection, persistence through gstore and replay after failover.
 *
 * The link seam: this file defines gstore_*, so groups.c talks to a fake store
 * whose appends complete only when a test flushes them, and the clock is a
 * variable the test advances (groups asks for ticks through @arm). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/group/group_records.h"
#include "broker/group/groups.h"
#include "broker/group/gstore.h"
#include "common/arena.h"
#include "common/kerr.h"

/* ---- fake gstore and clock ------------------------------------------------------ */

struct fake_append {
    uint8_t *key, *value;
    int32_t key_len, value_len; /* value_len -1: tombstone */
    bool offsets_delete;
    gstore_done_fn done;
    void *ud;
};

static struct {
    int64_t now;
    int64_t armed;
    int16_t coord_err;
    bool has_offsets;
    struct fake_append q[64];
    int nq;
    /* the last committed GroupMetadataValue */
    uint8_t *last_value;
    int32_t last_value_len;
    uint8_t *last_key;
    int32_t last_key_len;
} fk;

int32_t gstore_partition_for(const struct gstore *gs, const char *group_id)
{
    (void)gs;
    return (int32_t)(strlen(group_id) % 3);
}

int16_t gstore_coordinator_check(struct gstore *gs, const char *group_id)
{
    (void)gs;
    (void)group_id;
    return fk.coord_err;
}

static uint8_t *copy(buf_slice s)
{
    if (s.len < 0)
        return NULL;
    uint8_t *p = malloc((size_t)s.len + 1);
    memcpy(p, s.ptr, (size_t)s.len);
    return p;
}

int16_t gstore_append(struct gstore *gs, const char *group_id, buf_slice key, buf_slice value,
                      gstore_done_fn done, void *ud)
{
    (void)gs;
    (void)group_id;
    assert_true(fk.nq < 64);
    struct fake_append *a = &fk.q[fk.nq++];
    memset(a, 0, sizeof(*a));
    a->key = copy(key);
    a->key_len = key.len;
    a->value = value.ptr ? copy(value) : NULL;
    a->value_len = value.ptr ? value.len : -1;
    a->done = done;
    a->ud = ud;
    return KERR_NONE;
}

int16_t gstore_delete_group_offsets(struct gstore *gs, const char *group_id, gstore_done_fn done,
                                    void *ud)
{
    (void)gs;
    (void)group_id;
    struct fake_append *a = &fk.q[fk.nq++];
    memset(a, 0, sizeof(*a));
    a->offsets_delete = true;
    a->done = done;
    a->ud = ud;
    return KERR_NONE;
}

bool gstore_group_has_offsets(const struct gstore *gs, const char *group_id)
{
    (void)gs;
    (void)group_id;
    return fk.has_offsets;
}

/* Complete every queued append with @err (in order). Returns how many. */
static int flush(int16_t err)
{
    int n = 0;
    while (fk.nq > 0) {
        struct fake_append a = fk.q[0];
        memmove(&fk.q[0], &fk.q[1], sizeof(fk.q[0]) * (size_t)(fk.nq - 1));
        fk.nq--;
        if (!a.offsets_delete && a.value) {
            free(fk.last_value);
            free(fk.last_key);
            fk.last_value = a.value;
            fk.last_value_len = a.value_len;
            fk.last_key = a.key;
            fk.last_key_len = a.key_len;
        } else {
            free(a.value);
            free(a.key);
        }
        a.done(a.ud, err);
        n++;
    }
    return n;
}

static int64_t fake_now(void *ud)
{
    (void)ud;
    return fk.now;
}

/* The wall clock moves with the monotonic one, from a different origin. */
#define WALL_ORIGIN INT64_C(1700000000000)
static int64_t fake_wall(void *ud)
{
    (void)ud;
    return WALL_ORIGIN + fk.now;
}

static void fake_arm(void *ud, int64_t t)
{
    (void)ud;
    fk.armed = t;
}

/* Advance the clock by @ms, ticking at every armed deadline on the way. */
static void advance(struct groups *g, int64_t ms)
{
    int64_t end = fk.now + ms;
    while (fk.armed && fk.armed <= end) {
        if (fk.armed > fk.now)
            fk.now = fk.armed;
        fk.armed = 0;
        groups_tick(g);
    }
    fk.now = end;
}

/* ---- recorded answers ------------------------------------------------------------- */

struct join_ans {
    bool done;
    int16_t err;
    int32_t generation;
    char protocol[32];
    char leader[128];
    char member_id[128];
    int32_t n_members;
};

static void on_join(void *ud, const struct groups_join_result *r)
{
    struct join_ans *a = ud;
    assert_false(a->done);
    a->done = true;
    a->err = r->error;
    a->generation = r->generation;
    snprintf(a->protocol, sizeof(a->protocol), "%s", r->protocol ? r->protocol : "");
    snprintf(a->leader, sizeof(a->leader), "%s", r->leader);
    snprintf(a->member_id, sizeof(a->member_id), "%s", r->member_id);
    a->n_members = r->n_members;
}

struct sync_ans {
    bool done;
    int16_t err;
    char assignment[64];
};

static void on_sync(void *ud, int16_t err, buf_slice a)
{
    struct sync_ans *s = ud;
    assert_false(s->done);
    s->done = true;
    s->err = err;
    snprintf(s->assignment, sizeof(s->assignment), "%.*s", (int)a.len, (const char *)a.ptr);
}

struct del_ans {
    bool done;
    int16_t err;
};

static void on_delete(void *ud, int16_t err)
{
    struct del_ans *d = ud;
    d->done = true;
    d->err = err;
}

/* ---- fixture ---------------------------------------------------------------------- */

static struct groups *mk(int32_t initial_delay)
{
    for (int i = 0; i < fk.nq; i++) {
        free(fk.q[i].key);
        free(fk.q[i].value);
    }
    free(fk.last_value);
    free(fk.last_key);
    memset(&fk, 0, sizeof(fk));
    fk.now = 1000000;
    struct groups_options o = {.initial_rebalance_delay_ms = initial_delay,
                               .min_session_timeout_ms = 6000,
                               .max_session_timeout_ms = 1800000,
                               .max_size = 0,
                               .max_record_bytes = 1 << 20,
                               .gs = (struct gstore *)&fk,
                               .now_ms = fake_now,
                               .wall_ms = fake_wall,
                               .arm = fake_arm};
    struct groups *g;
    assert_int_equal(groups_new(&o, &g), 0);
    return g;
}

static void done_groups(struct groups *g)
{
    groups_free(g);
    flush(KERR_NOT_COORDINATOR); /* orphaned appends free themselves */
    free(fk.last_value);
    free(fk.last_key);
    fk.last_value = fk.last_key = NULL;
}

static struct groups_protocol P_RANGE[] = {{"range", {(const uint8_t *)"m-range", 7}}};

static void join_proto(struct groups *g, const char *group, const char *member, const char *inst,
                       int32_t n, const struct groups_protocol *ps, bool v4, struct join_ans *a)
{
    char mid[128]; /* @member may point into @a */
    snprintf(mid, sizeof(mid), "%s", member);
    memset(a, 0, sizeof(*a));
    struct groups_join_req r = {.group_id = group,
                                .member_id = mid,
                                .instance_id = inst,
                                .client_id = "cli",
                                .client_host = "/127.0.0.1",
                                .protocol_type = "consumer",
                                .session_timeout_ms = 10000,
                                .rebalance_timeout_ms = 30000,
                                .n_protocols = n,
                                .protocols = ps,
                                .require_known_member = v4};
    groups_join(g, &r, on_join, a);
}

static void join(struct groups *g, const char *member, struct join_ans *a)
{
    join_proto(g, "g1", member, NULL, 1, P_RANGE, false, a);
}

static void sync_(struct groups *g, int32_t gen, const char *member, int32_t n,
                  const struct groups_assignment *as, struct sync_ans *s)
{
    memset(s, 0, sizeof(*s));
    groups_sync(g, "g1", gen, member, NULL, n, as, on_sync, s);
}

static const char *state_of(struct groups *g, const char *group)
{
    struct groups_description d;
    groups_describe(g, group, &d);
    return d.state;
}

/* One member, joined and synced: generation 1, Stable. */
static void one_stable(struct groups *g, struct join_ans *a)
{
    join(g, "", a);
    if (!a->done) /* the initial delay */
        advance(g, 3000);
    assert_true(a->done);
    assert_int_equal(a->err, KERR_NONE);
    struct groups_assignment as = {a->member_id, {(const uint8_t *)"A1", 2}};
    struct sync_ans s;
    sync_(g, a->generation, a->member_id, 1, &as, &s);
    assert_false(s.done); /* until the record is committed */
    assert_int_equal(flush(KERR_NONE), 1);
    assert_true(s.done);
    assert_int_equal(s.err, KERR_NONE);
    assert_string_equal(s.assignment, "A1");
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_member_id_required_then_join_sync(void **state)
{
    (void)state;
    struct groups *g = mk(3000);
    struct join_ans a;
    join_proto(g, "g1", "", NULL, 1, P_RANGE, true, &a);
    assert_true(a.done);
    assert_int_equal(a.err, KERR_MEMBER_ID_REQUIRED);
    assert_memory_equal(a.member_id, "cli-", 4);
    assert_int_equal(strlen(a.member_id), 4 + 36);
    char id[128];
    strcpy(id, a.member_id);
    join_proto(g, "g1", id, NULL, 1, P_RANGE, true, &a);
    assert_false(a.done);
    assert_string_equal(state_of(g, "g1"), "PreparingRebalance");
    advance(g, 2999);
    assert_false(a.done);
    advance(g, 1);
    assert_true(a.done);
    assert_int_equal(a.err, KERR_NONE);
    assert_int_equal(a.generation, 1);
    assert_string_equal(a.leader, id);
    assert_string_equal(a.member_id, id);
    assert_string_equal(a.protocol, "range");
    assert_int_equal(a.n_members, 1);
    assert_string_equal(state_of(g, "g1"), "CompletingRebalance");
    struct groups_assignment as = {id, {(const uint8_t *)"A1", 2}};
    struct sync_ans s;
    sync_(g, 1, id, 1, &as, &s);
    assert_false(s.done);
    flush(KERR_NONE);
    assert_true(s.done);
    assert_string_equal(s.assignment, "A1");
    assert_string_equal(state_of(g, "g1"), "Stable");
    /* the committed record is Kafka's GroupMetadataValue with the assignment */
    struct arena ar;
    arena_init(&ar, 1024, 0);
    struct grec_value v;
    assert_int_equal(grec_value_decode((buf_slice){fk.last_value, fk.last_value_len}, &ar, &v), 0);
    assert_int_equal(v.generation, 1);
    assert_int_equal(v.n_members, 1);
    assert_memory_equal(v.members[0].assignment.ptr, "A1", 2);
    assert_memory_equal(v.members[0].subscription.ptr, "m-range", 7);
    assert_int_equal(v.members[0].session_timeout_ms, 10000);
    buf_slice gid;
    assert_int_equal(grec_key_decode((buf_slice){fk.last_key, fk.last_key_len}, &gid), 0);
    assert_memory_equal(gid.ptr, "g1", 2);
    arena_deinit(&ar);
    done_groups(g);
}

static void test_second_member_triggers_rebalance(void **state)
{
    (void)state;
    struct groups *g = mk(3000);
    struct join_ans a, b;
    one_stable(g, &a);
    join(g, "", &b); /* a Stable group: no initial delay */
    assert_false(b.done);
    assert_int_equal(groups_heartbeat(g, "g1", 1, a.member_id, NULL), KERR_REBALANCE_IN_PROGRESS);
    char aid[128];
    strcpy(aid, a.member_id);
    join(g, aid, &a);
    assert_true(a.done); /* every member rejoined: done at once */
    assert_true(b.done);
    assert_int_equal(a.generation, 2);
    assert_int_equal(b.generation, 2);
    assert_string_equal(a.leader, aid);
    assert_int_equal(a.n_members, 2);
    assert_int_equal(b.n_members, 0); /* followers get no member list */
    struct sync_ans sa, sb;
    struct groups_assignment as[2] = {{aid, {(const uint8_t *)"AA", 2}},
                                      {b.member_id, {(const uint8_t *)"BB", 2}}};
    sync_(g, 2, b.member_id, 0, NULL, &sb);
    assert_false(sb.done);
    sync_(g, 2, aid, 2, as, &sa);
    flush(KERR_NONE);
    assert_string_equal(sa.assignment, "AA");
    assert_string_equal(sb.assignment, "BB");
    assert_int_equal(groups_heartbeat(g, "g1", 2, b.member_id, NULL), KERR_NONE);
    done_groups(g);
}

/* The leader's SyncGroup stores the assignment; a member joins before that store
 * completes, the group rebalances to the next generation, and the new leader's
 * SyncGroup must store its own assignment even though the older store is still
 * in flight (it once waited for ever: the CI hang of test_offsets' sigkill test). */
static void test_sync_of_next_generation_while_older_store_in_flight(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a, b;
    join(g, "", &a);
    if (!a.done)
        advance(g, 1);
    assert_true(a.done);
    assert_int_equal(a.generation, 1);
    char aid[128];
    strcpy(aid, a.member_id);
    struct groups_assignment as1 = {aid, {(const uint8_t *)"A1", 2}};
    struct sync_ans s1;
    sync_(g, 1, aid, 1, &as1, &s1);
    assert_false(s1.done);
    assert_int_equal(fk.nq, 1); /* generation 1's store, not completed yet */
    join(g, "", &b);           /* CompletingRebalance -> PreparingRebalance */
    assert_true(s1.done);
    assert_int_equal(s1.err, KERR_REBALANCE_IN_PROGRESS);
    join(g, aid, &a);
    assert_true(a.done);
    assert_true(b.done);
    assert_int_equal(a.generation, 2);
    struct sync_ans sa, sb;
    struct groups_assignment as[2] = {{aid, {(const uint8_t *)"AA", 2}},
                                      {b.member_id, {(const uint8_t *)"BB", 2}}};
    sync_(g, 2, b.member_id, 0, NULL, &sb);
    sync_(g, 2, aid, 2, as, &sa);
    assert_int_equal(fk.nq, 2); /* generation 2's store went out too */
    struct sync_ans sa2;
    sync_(g, 2, aid, 2, as, &sa2); /* a repeated leader sync does not store again */
    assert_int_equal(fk.nq, 2);
    assert_true(sa.done); /* superseded by the repeat */
    assert_int_equal(flush(KERR_NONE), 2);
    assert_true(sa2.done);
    assert_true(sb.done);
    assert_int_equal(sa2.err, KERR_NONE);
    assert_string_equal(sa2.assignment, "AA");
    assert_string_equal(sb.assignment, "BB");
    assert_string_equal(state_of(g, "g1"), "Stable");
    done_groups(g);
}

static void test_session_expiry_removes_member(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a;
    one_stable(g, &a);
    advance(g, 9000);
    assert_int_equal(groups_heartbeat(g, "g1", 1, a.member_id, NULL), KERR_NONE);
    advance(g, 9000);
    assert_string_equal(state_of(g, "g1"), "Stable");
    advance(g, 1001); /* 10 s after the last heartbeat */
    assert_string_equal(state_of(g, "g1"), "Empty");
    assert_int_equal(groups_heartbeat(g, "g1", 1, a.member_id, NULL), KERR_UNKNOWN_MEMBER_ID);
    assert_true(groups_is_empty(g, "g1"));
    assert_int_equal(flush(KERR_NONE), 1); /* the Empty generation is stored */
    done_groups(g);
}

static void test_rebalance_timeout_drops_member_that_does_not_rejoin(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a, b, c;
    one_stable(g, &a);
    join(g, "", &b);
    assert_false(b.done);
    /* a keeps heartbeating but never rejoins */
    for (int i = 0; i < 5; i++) {
        advance(g, 5000);
        groups_heartbeat(g, "g1", 1, a.member_id, NULL);
    }
    advance(g, 4999);
    assert_false(b.done);
    advance(g, 1); /* 30 s rebalance timeout */
    assert_true(b.done);
    assert_int_equal(b.generation, 2);
    assert_int_equal(b.n_members, 1);
    assert_string_equal(b.leader, b.member_id);
    join(g, a.member_id, &c);
    assert_int_equal(c.err, KERR_UNKNOWN_MEMBER_ID);
    done_groups(g);
}

static void test_initial_delay_extends_while_members_arrive(void **state)
{
    (void)state;
    struct groups *g = mk(3000);
    struct join_ans a, b, c;
    join(g, "", &a);
    advance(g, 2000);
    join(g, "", &b);
    advance(g, 1000); /* first delay over, a member arrived: wait another 3 s */
    assert_false(a.done);
    advance(g, 2000);
    join(g, "", &c);
    advance(g, 1000);
    assert_false(a.done);
    advance(g, 3000);
    assert_true(a.done && b.done && c.done);
    assert_int_equal(a.generation, 1);
    assert_int_equal(a.n_members + b.n_members + c.n_members, 3);
    done_groups(g);
}

static void test_leave_group(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a, b;
    one_stable(g, &a);
    join(g, "", &b);
    char aid[128];
    strcpy(aid, a.member_id);
    join(g, aid, &a);
    assert_int_equal(a.generation, 2);
    assert_int_equal(groups_leave(g, "g1", "nobody", NULL), KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(groups_leave(g, "g1", b.member_id, NULL), KERR_NONE);
    assert_string_equal(state_of(g, "g1"), "PreparingRebalance");
    join(g, aid, &a);
    assert_true(a.done);
    assert_int_equal(a.generation, 3);
    assert_int_equal(groups_leave(g, "g1", aid, NULL), KERR_NONE);
    assert_string_equal(state_of(g, "g1"), "Empty");
    assert_int_equal(groups_leave(g, "nogroup", aid, NULL), KERR_UNKNOWN_MEMBER_ID);
    done_groups(g);
}

static void test_heartbeat_and_sync_checks(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a;
    one_stable(g, &a);
    assert_int_equal(groups_heartbeat(g, "g1", 7, a.member_id, NULL), KERR_ILLEGAL_GENERATION);
    assert_int_equal(groups_heartbeat(g, "g1", 1, "x", NULL), KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(groups_heartbeat(g, "nope", 1, "x", NULL), KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(groups_heartbeat(g, "", 1, "x", NULL), KERR_INVALID_GROUP_ID);
    struct sync_ans s;
    sync_(g, 0, a.member_id, 0, NULL, &s);
    assert_int_equal(s.err, KERR_ILLEGAL_GENERATION);
    sync_(g, 1, a.member_id, 0, NULL, &s); /* Stable: the current assignment again */
    assert_int_equal(s.err, KERR_NONE);
    assert_string_equal(s.assignment, "A1");
    fk.coord_err = KERR_NOT_COORDINATOR;
    assert_int_equal(groups_heartbeat(g, "g1", 1, a.member_id, NULL), KERR_NOT_COORDINATOR);
    struct join_ans b;
    join(g, "", &b);
    assert_int_equal(b.err, KERR_NOT_COORDINATOR);
    fk.coord_err = KERR_NONE;
    done_groups(g);
}

static void test_join_refusals(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a;
    struct groups_join_req r = {.group_id = "g1", .member_id = "", .client_id = "c",
                                .client_host = "h", .protocol_type = "consumer",
                                .session_timeout_ms = 5999, .rebalance_timeout_ms = 1000,
                                .n_protocols = 1, .protocols = P_RANGE};
    memset(&a, 0, sizeof(a));
    groups_join(g, &r, on_join, &a);
    assert_int_equal(a.err, KERR_INVALID_SESSION_TIMEOUT);
    r.session_timeout_ms = 1800001;
    memset(&a, 0, sizeof(a));
    groups_join(g, &r, on_join, &a);
    assert_int_equal(a.err, KERR_INVALID_SESSION_TIMEOUT);
    r.session_timeout_ms = 10000;
    r.n_protocols = 0;
    memset(&a, 0, sizeof(a));
    groups_join(g, &r, on_join, &a);
    assert_int_equal(a.err, KERR_INCONSISTENT_GROUP_PROTOCOL);
    r.n_protocols = 1;
    r.protocol_type = "";
    memset(&a, 0, sizeof(a));
    groups_join(g, &r, on_join, &a);
    assert_int_equal(a.err, KERR_INCONSISTENT_GROUP_PROTOCOL);
    /* a member of another protocol type, or with no common protocol */
    one_stable(g, &a);
    r.protocol_type = "connect";
    struct join_ans b;
    memset(&b, 0, sizeof(b));
    groups_join(g, &r, on_join, &b);
    assert_int_equal(b.err, KERR_INCONSISTENT_GROUP_PROTOCOL);
    struct groups_protocol rr[] = {{"roundrobin", {NULL, 0}}};
    join_proto(g, "g1", "", NULL, 1, rr, false, &b);
    assert_int_equal(b.err, KERR_INCONSISTENT_GROUP_PROTOCOL);
    /* an unknown member id */
    join(g, "cli-bogus", &b);
    assert_int_equal(b.err, KERR_UNKNOWN_MEMBER_ID);
    assert_string_equal(state_of(g, "g1"), "Stable");
    done_groups(g);
}

static void test_group_max_size(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    groups_set_limits(g, 0, 6000, 1800000, 1);
    struct join_ans a, b;
    one_stable(g, &a);
    join(g, "", &b);
    assert_int_equal(b.err, KERR_GROUP_MAX_SIZE_REACHED);
    assert_string_equal(state_of(g, "g1"), "Stable");
    done_groups(g);
}

static void test_protocol_selection_by_votes(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct groups_protocol pa[] = {{"range", {NULL, 0}}, {"roundrobin", {NULL, 0}}};
    struct groups_protocol pb[] = {{"roundrobin", {NULL, 0}}, {"range", {NULL, 0}}, {"sticky", {NULL, 0}}};
    struct groups_protocol pc[] = {{"sticky", {NULL, 0}}, {"roundrobin", {NULL, 0}}};
    struct join_ans a, b, c;
    join_proto(g, "g1", "", NULL, 2, pa, false, &a);
    assert_string_equal(a.protocol, "range");
    join_proto(g, "g1", "", NULL, 3, pb, false, &b);
    join_proto(g, "g1", a.member_id, NULL, 2, pa, false, &a);
    assert_true(b.done);
    /* a votes range, b roundrobin: a tie, the first member's preference wins */
    assert_string_equal(a.protocol, "range");
    join_proto(g, "g1", "", NULL, 2, pc, false, &c);
    join_proto(g, "g1", a.member_id, NULL, 2, pa, false, &a);
    join_proto(g, "g1", b.member_id, NULL, 3, pb, false, &b);
    assert_true(c.done);
    /* only roundrobin is common: everyone votes for it */
    assert_string_equal(c.protocol, "roundrobin");
    assert_int_equal(c.generation, 3);
    done_groups(g);
}

static void test_static_member_rejoins_without_rebalance(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a, a2, b;
    join_proto(g, "g1", "", "inst-a", 1, P_RANGE, true, &a); /* static: no MEMBER_ID_REQUIRED */
    assert_int_equal(a.err, KERR_NONE);
    assert_memory_equal(a.member_id, "inst-a-", 7);
    join_proto(g, "g1", "", "inst-b", 1, P_RANGE, true, &b);
    char aid[128];
    strcpy(aid, a.member_id);
    join_proto(g, "g1", aid, "inst-a", 1, P_RANGE, true, &a);
    assert_true(b.done);
    int32_t gen = a.generation;
    struct groups_assignment as[2] = {{aid, {(const uint8_t *)"AA", 2}},
                                      {b.member_id, {(const uint8_t *)"BB", 2}}};
    struct sync_ans s, sb;
    memset(&sb, 0, sizeof(sb));
    groups_sync(g, "g1", gen, b.member_id, "inst-b", 0, NULL, on_sync, &sb);
    sync_(g, gen, aid, 2, as, &s);
    flush(KERR_NONE);
    assert_string_equal(s.assignment, "AA");
    /* inst-a restarts: joins with no member id, same instance */
    join_proto(g, "g1", "", "inst-a", 1, P_RANGE, true, &a2);
    assert_false(a2.done); /* until the new member id is stored */
    assert_int_equal(flush(KERR_NONE), 1);
    assert_true(a2.done);
    assert_int_equal(a2.err, KERR_NONE);
    assert_int_equal(a2.generation, gen); /* no rebalance */
    assert_string_not_equal(a2.member_id, aid);
    assert_string_equal(a2.leader, aid); /* the old leader id: it does not reassign */
    assert_string_equal(state_of(g, "g1"), "Stable");
    memset(&s, 0, sizeof(s));
    groups_sync(g, "g1", gen, a2.member_id, "inst-a", 0, NULL, on_sync, &s);
    assert_int_equal(s.err, KERR_NONE);
    assert_string_equal(s.assignment, "AA");
    /* the old id is fenced */
    assert_int_equal(groups_heartbeat(g, "g1", gen, aid, "inst-a"), KERR_FENCED_INSTANCE_ID);
    assert_int_equal(groups_heartbeat(g, "g1", gen, aid, NULL), KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(groups_heartbeat(g, "g1", gen, a2.member_id, "inst-a"), KERR_NONE);
    assert_int_equal(groups_validate_commit(g, "g1", gen, aid, "inst-a"), KERR_FENCED_INSTANCE_ID);
    /* leaving by instance id (v3+) */
    assert_int_equal(groups_leave(g, "g1", aid, "inst-a"), KERR_FENCED_INSTANCE_ID);
    assert_int_equal(groups_leave(g, "g1", "", "inst-a"), KERR_NONE);
    assert_string_equal(state_of(g, "g1"), "PreparingRebalance");
    done_groups(g);
}

static void test_follower_assignments_ignored(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a, b;
    one_stable(g, &a);
    join(g, "", &b);
    join(g, a.member_id, &a);
    struct groups_assignment bogus[1] = {{a.member_id, {(const uint8_t *)"XX", 2}}};
    struct sync_ans sb, sa;
    sync_(g, 2, b.member_id, 1, bogus, &sb);
    assert_false(sb.done);
    assert_int_equal(fk.nq, 0); /* nothing stored for a follower */
    struct groups_assignment as[2] = {{a.member_id, {(const uint8_t *)"AA", 2}},
                                      {b.member_id, {(const uint8_t *)"BB", 2}}};
    sync_(g, 2, a.member_id, 2, as, &sa);
    flush(KERR_NONE);
    assert_string_equal(sa.assignment, "AA");
    assert_string_equal(sb.assignment, "BB");
    done_groups(g);
}

static void test_store_failure_fails_sync_and_rebalances(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a;
    join(g, "", &a);
    struct groups_assignment as = {a.member_id, {(const uint8_t *)"A1", 2}};
    struct sync_ans s;
    sync_(g, 1, a.member_id, 1, &as, &s);
    flush(KERR_NOT_ENOUGH_REPLICAS);
    assert_int_equal(s.err, KERR_COORDINATOR_NOT_AVAILABLE);
    assert_string_equal(state_of(g, "g1"), "PreparingRebalance");
    char aid[128];
    strcpy(aid, a.member_id);
    join(g, aid, &a);
    assert_int_equal(a.generation, 2);
    sync_(g, 2, aid, 1, &as, &s);
    flush(KERR_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(s.err, KERR_NOT_COORDINATOR);
    done_groups(g);
}

static void test_replay_rebuilds_group_after_failover(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a;
    one_stable(g, &a);
    uint8_t *key = fk.last_key, *val = fk.last_value;
    int32_t kl = fk.last_key_len, vl = fk.last_value_len;
    fk.last_key = fk.last_value = NULL;
    char aid[128];
    strcpy(aid, a.member_id);
    groups_free(g);
    /* another broker loads the partition */
    struct groups_options o = {.initial_rebalance_delay_ms = 0, .min_session_timeout_ms = 6000,
                               .max_session_timeout_ms = 1800000, .gs = (struct gstore *)&fk,
                               .now_ms = fake_now, .arm = fake_arm};
    struct groups *g2;
    assert_int_equal(groups_new(&o, &g2), 0);
    groups_replay(g2, 2, (buf_slice){key, kl}, (buf_slice){val, vl});
    struct groups_description d;
    groups_describe(g2, "g1", &d);
    assert_string_equal(d.state, "Stable");
    assert_string_equal(d.protocol, "range");
    assert_int_equal(d.n_members, 1);
    assert_string_equal(d.members[0].member_id, aid);
    assert_memory_equal(d.members[0].assignment.ptr, "A1", 2);
    assert_int_equal(groups_heartbeat(g2, "g1", 1, aid, NULL), KERR_NONE);
    struct sync_ans s;
    sync_(g2, 1, aid, 0, NULL, &s);
    assert_string_equal(s.assignment, "A1");
    /* the member's session runs on the new coordinator too */
    advance(g2, 10001);
    assert_string_equal(state_of(g2, "g1"), "Empty");
    /* a tombstone removes the group */
    groups_replay(g2, 2, (buf_slice){key, kl}, (buf_slice){NULL, -1});
    assert_int_equal(groups_count(g2), 0);
    free(key);
    free(val);
    done_groups(g2);
}

static void test_unload_answers_parked_with_not_coordinator(void **state)
{
    (void)state;
    struct groups *g = mk(3000);
    struct join_ans a;
    join(g, "", &a);
    assert_false(a.done);
    groups_unload_partition(g, gstore_partition_for(NULL, "g1") + 1);
    assert_false(a.done);
    groups_unload_partition(g, gstore_partition_for(NULL, "g1"));
    assert_true(a.done);
    assert_int_equal(a.err, KERR_NOT_COORDINATOR);
    assert_int_equal(groups_count(g), 0);
    done_groups(g);
}

static void test_validate_commit(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    assert_int_equal(groups_validate_commit(g, "simple", -1, "", NULL), KERR_NONE);
    assert_string_equal(state_of(g, "simple"), "Empty");
    assert_int_equal(groups_validate_commit(g, "other", 3, "m", NULL), KERR_ILLEGAL_GENERATION);
    struct join_ans a;
    join(g, "", &a);
    assert_int_equal(groups_validate_commit(g, "g1", 1, a.member_id, NULL),
                     KERR_REBALANCE_IN_PROGRESS);
    assert_int_equal(groups_validate_commit(g, "g1", -1, "", NULL), KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(groups_validate_commit(g, "g1", 0, a.member_id, NULL), KERR_ILLEGAL_GENERATION);
    assert_int_equal(groups_validate_commit(g, "g1", 1, "zz", NULL), KERR_UNKNOWN_MEMBER_ID);
    struct groups_assignment as = {a.member_id, {(const uint8_t *)"A1", 2}};
    struct sync_ans s;
    sync_(g, 1, a.member_id, 1, &as, &s);
    flush(KERR_NONE);
    assert_int_equal(groups_validate_commit(g, "g1", 1, a.member_id, NULL), KERR_NONE);
    assert_false(groups_is_empty(g, "g1"));
    assert_true(groups_is_empty(g, "simple"));
    done_groups(g);
}

static void test_subscribed_to(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    /* ConsumerProtocolSubscription v0: topics ["orders"], user data null */
    static const uint8_t sub[] = {0, 0, 0, 0, 0, 1, 0, 6, 'o', 'r', 'd', 'e', 'r', 's',
                                  0xff, 0xff, 0xff, 0xff};
    struct groups_protocol p[] = {{"range", {sub, sizeof(sub)}}};
    struct join_ans a;
    join_proto(g, "g1", "", NULL, 1, p, false, &a);
    assert_true(groups_subscribed_to(g, "g1", "orders"));
    assert_false(groups_subscribed_to(g, "g1", "other"));
    assert_false(groups_subscribed_to(g, "nogroup", "orders"));
    done_groups(g);
}

/* Kafka's pending-sync timeout: a member that joined but sends no SyncGroup
 * within the rebalance timeout is removed (heartbeats do not save it) and the
 * group rebalances without it; members that synced stay. */
static void test_pending_sync_timeout_removes_member_that_never_syncs(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a, b;
    one_stable(g, &a);
    char aid[128], bid[128];
    strcpy(aid, a.member_id);
    join(g, "", &b);
    join(g, aid, &a);
    assert_true(a.done && b.done);
    assert_int_equal(b.generation, 2);
    strcpy(bid, b.member_id);
    struct groups_assignment as[2] = {{aid, {(const uint8_t *)"AA", 2}},
                                      {bid, {(const uint8_t *)"BB", 2}}};
    struct sync_ans sa;
    sync_(g, 2, aid, 2, as, &sa);
    flush(KERR_NONE);
    assert_true(sa.done);
    assert_string_equal(state_of(g, "g1"), "Stable");
    /* b heartbeats (session 10 s) but never syncs; a syncs and heartbeats */
    for (int i = 0; i < 5; i++) {
        advance(g, 5000);
        assert_int_equal(groups_heartbeat(g, "g1", 2, aid, NULL), KERR_NONE);
        assert_int_equal(groups_heartbeat(g, "g1", 2, bid, NULL), KERR_NONE);
    }
    advance(g, 4999);
    assert_string_equal(state_of(g, "g1"), "Stable");
    advance(g, 1); /* 30 s rebalance timeout after the join completed */
    assert_string_equal(state_of(g, "g1"), "PreparingRebalance");
    assert_int_equal(groups_heartbeat(g, "g1", 2, bid, NULL), KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(groups_heartbeat(g, "g1", 2, aid, NULL), KERR_REBALANCE_IN_PROGRESS);
    join(g, aid, &a);
    assert_true(a.done);
    assert_int_equal(a.generation, 3);
    assert_int_equal(a.n_members, 1);
    /* a member that syncs in time is kept: no rebalance at the deadline */
    sync_(g, 3, aid, 1, as, &sa);
    flush(KERR_NONE);
    for (int i = 0; i < 7; i++) {
        advance(g, 5000);
        assert_int_equal(groups_heartbeat(g, "g1", 3, aid, NULL), KERR_NONE);
    }
    assert_string_equal(state_of(g, "g1"), "Stable");
    assert_int_equal(groups_heartbeat(g, "g1", 3, aid, NULL), KERR_NONE);
    done_groups(g);
}

/* In CompletingRebalance too: the leader synced (its store is in flight), a
 * follower never does; at the deadline the follower goes and the parked
 * leader's SyncGroup is answered REBALANCE_IN_PROGRESS. */
static void test_pending_sync_timeout_in_completing_rebalance(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a, b;
    one_stable(g, &a);
    char aid[128];
    strcpy(aid, a.member_id);
    join(g, "", &b);
    join(g, aid, &a);
    assert_string_equal(state_of(g, "g1"), "CompletingRebalance");
    char bid[128];
    strcpy(bid, b.member_id);
    for (int i = 0; i < 5; i++) { /* both stay alive; b never syncs */
        advance(g, 5000);
        assert_int_equal(groups_heartbeat(g, "g1", 2, aid, NULL), KERR_NONE);
        assert_int_equal(groups_heartbeat(g, "g1", 2, bid, NULL), KERR_NONE);
    }
    advance(g, 4999);
    struct sync_ans sa;
    sync_(g, 2, aid, 0, NULL, &sa); /* the leader's SyncGroup: parked, its store in flight */
    assert_false(sa.done);
    assert_int_equal(fk.nq, 1);
    advance(g, 1);
    assert_true(sa.done);
    assert_int_equal(sa.err, KERR_REBALANCE_IN_PROGRESS);
    assert_string_equal(state_of(g, "g1"), "PreparingRebalance");
    flush(KERR_NONE); /* the stale store completes: nothing changes */
    assert_string_equal(state_of(g, "g1"), "PreparingRebalance");
    done_groups(g);
}

/* Offsets expiry (KIP-211) with a fake wall clock: from when the group became
 * Empty for a group that had members, from the commit for a standalone group,
 * never while members subscribe to the topic, and for a Stable consumer group
 * the topics none of its members subscribe to expire from their commit. */
static void test_offset_expiry_follows_group_state(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    const int64_t R = 60000;
    int64_t w0 = fake_wall(NULL);
    /* a group unknown to groups (only offsets): from the commit */
    assert_false(groups_offset_expired(g, "ghost", "t", w0, -1, w0 + R - 1, R));
    assert_true(groups_offset_expired(g, "ghost", "t", w0, -1, w0 + R, R));
    /* a standalone group (simple commit): from the commit */
    assert_int_equal(groups_validate_commit(g, "simple", -1, "", NULL), KERR_NONE);
    advance(g, 5000);
    assert_true(groups_offset_expired(g, "simple", "t", w0, -1, w0 + R, R));
    /* an explicit expire timestamp (OffsetCommit v2-4 retention) wins */
    assert_true(groups_offset_expired(g, "simple", "t", w0, w0 + 10, w0 + 10, R));
    assert_false(groups_offset_expired(g, "simple", "t", w0, w0 + R * 10, w0 + R, R));

    /* a consumer group subscribed to "orders" */
    static const uint8_t sub[] = {0, 0, 0, 0, 0, 1, 0, 6, 'o', 'r', 'd', 'e', 'r', 's',
                                  0xff, 0xff, 0xff, 0xff};
    struct groups_protocol p[] = {{"range", {sub, sizeof(sub)}}};
    struct join_ans a;
    join_proto(g, "g1", "", NULL, 1, p, false, &a);
    assert_true(a.done);
    int64_t commit = fake_wall(NULL);
    /* rebalancing (CompletingRebalance): nothing expires */
    assert_false(groups_offset_expired(g, "g1", "gone", commit, -1, commit + 10 * R, R));
    struct groups_assignment as = {a.member_id, {(const uint8_t *)"A1", 2}};
    struct sync_ans s = {0};
    groups_sync(g, "g1", 1, a.member_id, NULL, 1, &as, on_sync, &s);
    flush(KERR_NONE);
    assert_string_equal(state_of(g, "g1"), "Stable");
    /* Stable: the subscribed topic never expires, an unsubscribed one does */
    assert_false(groups_offset_expired(g, "g1", "orders", commit, -1, commit + 10 * R, R));
    assert_false(groups_offset_expired(g, "g1", "orders", commit, commit, commit + 10 * R, R));
    assert_false(groups_offset_expired(g, "g1", "gone", commit, -1, commit + R - 1, R));
    assert_true(groups_offset_expired(g, "g1", "gone", commit, -1, commit + R, R));

    /* the member leaves long after its commit: the clock starts at Empty */
    for (int i = 0; i < 60; i++) {
        advance(g, 5000);
        assert_int_equal(groups_heartbeat(g, "g1", 1, a.member_id, NULL), KERR_NONE);
    }
    assert_int_equal(groups_leave(g, "g1", a.member_id, NULL), KERR_NONE);
    assert_string_equal(state_of(g, "g1"), "Empty");
    int64_t empty_since = fake_wall(NULL);
    assert_false(groups_offset_expired(g, "g1", "orders", commit, -1, empty_since + R - 1, R));
    assert_true(groups_offset_expired(g, "g1", "orders", commit, -1, empty_since + R, R));

    /* the Empty-since time is in the stored record and survives a move */
    assert_int_equal(flush(KERR_NONE), 1); /* the Empty generation's record */
    uint8_t *key = fk.last_key, *val = fk.last_value;
    int32_t kl = fk.last_key_len, vl = fk.last_value_len;
    fk.last_key = fk.last_value = NULL;
    groups_free(g);
    fk.armed = 0;
    fk.now += 7 * R; /* the new coordinator loads it later */
    struct groups_options o = {.initial_rebalance_delay_ms = 0, .min_session_timeout_ms = 6000,
                               .max_session_timeout_ms = 1800000, .gs = (struct gstore *)&fk,
                               .now_ms = fake_now, .wall_ms = fake_wall, .arm = fake_arm};
    struct groups *g2;
    assert_int_equal(groups_new(&o, &g2), 0);
    groups_replay(g2, 2, (buf_slice){key, kl}, (buf_slice){val, vl});
    assert_string_equal(state_of(g2, "g1"), "Empty");
    assert_false(groups_offset_expired(g2, "g1", "orders", commit, -1, empty_since + R - 1, R));
    assert_true(groups_offset_expired(g2, "g1", "orders", commit, -1, empty_since + R, R));
    /* a Stable group whose subscriptions do not decode: Kafka knows no
     * subscribed topics then, and expires nothing */
    struct join_ans r;
    join_proto(g2, "raw", "", NULL, 1, P_RANGE, false, &r);
    assert_true(r.done);
    struct groups_assignment ras = {r.member_id, {(const uint8_t *)"R1", 2}};
    struct sync_ans rs = {0};
    groups_sync(g2, "raw", 1, r.member_id, NULL, 1, &ras, on_sync, &rs);
    flush(KERR_NONE);
    assert_string_equal(state_of(g2, "raw"), "Stable");
    assert_false(groups_offset_expired(g2, "raw", "gone", commit, -1, commit + 10 * R, R));

    free(key);
    free(val);
    done_groups(g2);
}

static void test_delete_groups(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct del_ans d = {0};
    groups_delete(g, "g1", on_delete, &d);
    assert_int_equal(d.err, KERR_GROUP_ID_NOT_FOUND);
    struct join_ans a;
    one_stable(g, &a);
    memset(&d, 0, sizeof(d));
    groups_delete(g, "g1", on_delete, &d);
    assert_int_equal(d.err, KERR_NON_EMPTY_GROUP);
    assert_int_equal(groups_leave(g, "g1", a.member_id, NULL), KERR_NONE);
    flush(KERR_NONE);
    assert_string_equal(state_of(g, "g1"), "Empty");
    memset(&d, 0, sizeof(d));
    groups_delete(g, "g1", on_delete, &d);
    assert_false(d.done);
    assert_int_equal(fk.nq, 2); /* the group tombstone and the offsets' */
    assert_int_equal(fk.q[0].value_len, -1);
    flush(KERR_NONE);
    assert_true(d.done);
    assert_int_equal(d.err, KERR_NONE);
    assert_string_equal(state_of(g, "g1"), "Dead");
    assert_int_equal(groups_count(g), 0);
    /* offsets only: deletable */
    fk.has_offsets = true;
    memset(&d, 0, sizeof(d));
    groups_delete(g, "simple", on_delete, &d);
    flush(KERR_NONE);
    assert_int_equal(d.err, KERR_NONE);
    done_groups(g);
}

static void test_unused_empty_group_removed_after_offsets_expire(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    struct join_ans a;
    one_stable(g, &a);
    assert_false(groups_remove_if_unused(g, "g1")); /* has a member */
    assert_int_equal(groups_leave(g, "g1", a.member_id, NULL), KERR_NONE);
    flush(KERR_NONE);
    fk.has_offsets = true;
    assert_false(groups_remove_if_unused(g, "g1")); /* offsets remain */
    fk.has_offsets = false;
    assert_true(groups_remove_if_unused(g, "g1"));
    assert_int_equal(fk.nq, 1);
    assert_int_equal(fk.q[0].value_len, -1); /* the group's tombstone */
    assert_int_equal(groups_count(g), 0);
    assert_false(groups_remove_if_unused(g, "g1"));
    done_groups(g);
}

static void test_many_groups_found_and_unloaded(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "grp-%d", i);
        assert_int_equal(groups_validate_commit(g, id, -1, "", NULL), KERR_NONE);
    }
    assert_int_equal(groups_count(g), 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "grp-%d", i);
        assert_string_equal(state_of(g, id), "Empty");
    }
    /* the fake maps a group to strlen % 3: "grp-N" with 1..3 digits */
    groups_unload_partition(g, (int32_t)(strlen("grp-10") % 3));
    assert_int_equal(groups_count(g), 1000 - 90);
    assert_string_equal(state_of(g, "grp-10"), "Dead");
    assert_string_equal(state_of(g, "grp-100"), "Empty");
    done_groups(g);
}

static void test_free_answers_parked(void **state)
{
    (void)state;
    struct groups *g = mk(3000);
    struct join_ans a;
    join(g, "", &a);
    groups_free(g);
    assert_true(a.done);
    assert_int_equal(a.err, KERR_COORDINATOR_NOT_AVAILABLE);
}

static void test_oversized_metadata_fails_sync_not_broker(void **state)
{
    (void)state;
    struct groups *g = mk(0);
    size_t big = (size_t)2 << 20;
    uint8_t *blob = calloc(1, big);
    struct groups_protocol p[] = {{"range", {blob, (int32_t)big}}};
    struct join_ans a;
    join_proto(g, "g1", "", NULL, 1, p, false, &a);
    assert_int_equal(a.err, KERR_NONE);
    struct sync_ans s;
    sync_(g, 1, a.member_id, 0, NULL, &s);
    /* the record could never be stored: Kafka's MESSAGE_TOO_LARGE mapping */
    assert_int_equal(s.err, KERR_UNKNOWN_SERVER_ERROR);
    assert_int_equal(fk.nq, 0);
    free(blob);
    done_groups(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_id_required_then_join_sync),
        cmocka_unit_test(test_second_member_triggers_rebalance),
        cmocka_unit_test(test_sync_of_next_generation_while_older_store_in_flight),
        cmocka_unit_test(test_session_expiry_removes_member),
        cmocka_unit_test(test_rebalance_timeout_drops_member_that_does_not_rejoin),
        cmocka_unit_test(test_initial_delay_extends_while_members_arrive),
        cmocka_unit_test(test_leave_group),
        cmocka_unit_test(test_heartbeat_and_sync_checks),
        cmocka_unit_test(test_join_refusals),
        cmocka_unit_test(test_group_max_size),
        cmocka_unit_test(test_protocol_selection_by_votes),
        cmocka_unit_test(test_static_member_rejoins_without_rebalance),
        cmocka_unit_test(test_follower_assignments_ignored),
        cmocka_unit_test(test_store_failure_fails_sync_and_rebalances),
        cmocka_unit_test(test_replay_rebuilds_group_after_failover),
        cmocka_unit_test(test_unload_answers_parked_with_not_coordinator),
        cmocka_unit_test(test_validate_commit),
        cmocka_unit_test(test_subscribed_to),
        cmocka_unit_test(test_pending_sync_timeout_removes_member_that_never_syncs),
        cmocka_unit_test(test_pending_sync_timeout_in_completing_rebalance),
        cmocka_unit_test(test_offset_expiry_follows_group_state),
        cmocka_unit_test(test_delete_groups),
        cmocka_unit_test(test_unused_empty_group_removed_after_offsets_expire),
        cmocka_unit_test(test_many_groups_found_and_unloaded),
        cmocka_unit_test(test_free_answers_parked),
        cmocka_unit_test(test_oversized_metadata_fails_sync_not_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
