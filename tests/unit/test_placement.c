/* Tests for coordinator/placement: leader and replica balance, rack spread,
 * determinism, continuing a topic's assignment when partitions are added, and
 * the controller's use of it (only live brokers, balance through create and
 * add-partitions requests). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/controller.h"
#include "coordinator/placement.h"
#include "common/meta/state.h"

#define MAXB 16

struct counts {
    int leaders[MAXB];
    int replicas[MAXB];
};

/* Count per broker id (ids < MAXB); check each partition's replicas are distinct. */
static void count(const int32_t *reps, int32_t n_parts, int32_t rf, struct counts *c)
{
    memset(c, 0, sizeof(*c));
    for (int32_t p = 0; p < n_parts; p++) {
        const int32_t *r = reps + (size_t)p * (size_t)rf;
        c->leaders[r[0]]++;
        for (int32_t j = 0; j < rf; j++) {
            assert_true(r[j] >= 0 && r[j] < MAXB);
            c->replicas[r[j]]++;
            for (int32_t k = 0; k < j; k++)
                assert_int_not_equal(r[j], r[k]);
        }
    }
}

/* max - min over the given ids. */
static int spread(const int *v, const int32_t *ids, size_t n)
{
    int lo = v[ids[0]], hi = v[ids[0]];
    for (size_t i = 1; i < n; i++) {
        lo = v[ids[i]] < lo ? v[ids[i]] : lo;
        hi = v[ids[i]] > hi ? v[ids[i]] : hi;
    }
    return hi - lo;
}

static void test_placement_balances_leaders_and_replicas(void **state)
{
    (void)state;
    const struct cplace_broker b[] = {{0, NULL}, {1, NULL}, {2, NULL}, {3, NULL}, {4, NULL}};
    const int32_t ids[] = {0, 1, 2, 3, 4};
    int32_t reps[100 * 3];
    for (uint32_t start = 0; start < 12; start++) {
        struct cplace_request req = {.n_parts = 100, .rf = 3, .start = start};
        assert_int_equal(cplace_assign(b, 5, &req, reps), 0);
        struct counts c;
        count(reps, 100, 3, &c);
        assert_true(spread(c.leaders, ids, 5) <= 1);
        assert_true(spread(c.replicas, ids, 5) <= 1);
        assert_int_equal(c.leaders[0] + c.leaders[1] + c.leaders[2] + c.leaders[3] + c.leaders[4],
                         100);
    }
    /* Counts that do not divide evenly still stay within one. */
    const int32_t ids7[] = {0, 1, 2, 3, 4, 5, 6};
    const struct cplace_broker b7[] = {{0, NULL}, {1, NULL}, {2, NULL}, {3, NULL},
                                       {4, NULL}, {5, NULL}, {6, NULL}};
    int32_t reps7[37 * 2];
    struct cplace_request req = {.n_parts = 37, .rf = 2, .start = 3};
    assert_int_equal(cplace_assign(b7, 7, &req, reps7), 0);
    struct counts c;
    count(reps7, 37, 2, &c);
    assert_true(spread(c.leaders, ids7, 7) <= 1);
    assert_true(spread(c.replicas, ids7, 7) <= 1);
}

static void test_placement_is_deterministic_whatever_the_input_order(void **state)
{
    (void)state;
    const struct cplace_broker a[] = {{3, "r2"}, {1, "r1"}, {0, "r1"}, {2, "r2"}, {4, "r3"}};
    const struct cplace_broker b[] = {{0, "r1"}, {4, "r3"}, {2, "r2"}, {1, "r1"}, {3, "r2"}};
    int32_t x[30 * 3], y[30 * 3];
    struct cplace_request req = {.n_parts = 30, .rf = 3, .start = 2};
    assert_int_equal(cplace_assign(a, 5, &req, x), 0);
    assert_int_equal(cplace_assign(b, 5, &req, y), 0);
    assert_memory_equal(x, y, sizeof(x));
    req.start = 3;
    assert_int_equal(cplace_assign(b, 5, &req, y), 0);
    assert_memory_not_equal(x, y, sizeof(x));
}

static const char *rack_of(const struct cplace_broker *b, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (b[i].id == id)
            return b[i].rack;
    fail_msg("no broker %d", id);
    return NULL;
}

static size_t racks_spanned(const struct cplace_broker *b, size_t n, const int32_t *r, int32_t rf)
{
    size_t k = 0;
    for (int32_t j = 0; j < rf; j++) {
        bool seen = false;
        for (int32_t i = 0; i < j; i++)
            seen = seen || !strcmp(rack_of(b, n, r[i]), rack_of(b, n, r[j]));
        k += !seen;
    }
    return k;
}

static void test_placement_rack_aware_spans_racks(void **state)
{
    (void)state;
    const struct cplace_broker even[] = {{0, "a"}, {1, "a"}, {2, "b"},
                                         {3, "b"}, {4, "c"}, {5, "c"}};
    const int32_t ids[] = {0, 1, 2, 3, 4, 5};
    int32_t reps[60 * 4];
    for (int32_t rf = 1; rf <= 4; rf++) {
        for (uint32_t start = 0; start < 6; start++) {
            struct cplace_request req = {.n_parts = 60, .rf = rf, .start = start};
            assert_int_equal(cplace_assign(even, 6, &req, reps), 0);
            for (int32_t p = 0; p < 60; p++)
                assert_int_equal(racks_spanned(even, 6, reps + p * rf, rf), rf < 3 ? rf : 3);
            struct counts c;
            count(reps, 60, rf, &c);
            assert_true(spread(c.leaders, ids, 6) <= 1);
            assert_true(spread(c.replicas, ids, 6) <= 1);
        }
    }
    /* Uneven racks: every partition still spans both. */
    const struct cplace_broker uneven[] = {{0, "x"}, {1, "x"}, {2, "x"}, {3, "y"}, {4, "y"}};
    const int32_t uids[] = {0, 1, 2, 3, 4};
    struct cplace_request req = {.n_parts = 50, .rf = 3, .start = 1};
    assert_int_equal(cplace_assign(uneven, 5, &req, reps), 0);
    for (int32_t p = 0; p < 50; p++)
        assert_int_equal(racks_spanned(uneven, 5, reps + p * 3, 3), 2);
    struct counts c;
    count(reps, 50, 3, &c);
    assert_true(spread(c.leaders, uids, 5) <= 1);
    /* One broker without a rack: placement falls back to ignoring racks. */
    const struct cplace_broker mixed[] = {{0, "x"}, {1, NULL}, {2, "y"}};
    req = (struct cplace_request){.n_parts = 9, .rf = 2, .start = 0};
    assert_int_equal(cplace_assign(mixed, 3, &req, reps), 0);
    count(reps, 9, 2, &c);
    assert_int_equal(c.leaders[0], 3);
    assert_int_equal(c.leaders[1], 3);
}

static void test_placement_adding_partitions_continues_the_assignment(void **state)
{
    (void)state;
    const struct cplace_broker sets[][6] = {
        {{0, NULL}, {1, NULL}, {2, NULL}, {3, NULL}, {4, NULL}, {5, NULL}},
        {{0, "a"}, {1, "b"}, {2, "c"}, {3, "a"}, {4, "b"}, {5, "c"}},
    };
    for (size_t s = 0; s < 2; s++) {
        int32_t whole[40 * 3], parts[40 * 3];
        struct cplace_request all = {.n_parts = 40, .rf = 3, .start = 4};
        assert_int_equal(cplace_assign(sets[s], 6, &all, whole), 0);
        struct cplace_request first = {.n_parts = 13, .rf = 3, .start = 4};
        struct cplace_request rest = {.n_parts = 27, .rf = 3, .first_partition = 13, .start = 4};
        assert_int_equal(cplace_assign(sets[s], 6, &first, parts), 0);
        assert_int_equal(cplace_assign(sets[s], 6, &rest, parts + 13 * 3), 0);
        assert_memory_equal(whole, parts, sizeof(whole));
        /* The start is recoverable from partition 0's first replica. */
        uint32_t idx;
        assert_int_equal(cplace_index_of(sets[s], 6, whole[0], &idx), 0);
        assert_int_equal(idx, 4);
    }
    uint32_t idx;
    assert_int_equal(cplace_index_of(sets[0], 6, 42, &idx), -ENOENT);
}

static void test_placement_rejects_bad_requests(void **state)
{
    (void)state;
    const struct cplace_broker b[] = {{0, NULL}, {1, NULL}};
    const struct cplace_broker dup[] = {{0, NULL}, {0, NULL}};
    int32_t out[8];
    struct cplace_request req = {.n_parts = 2, .rf = 0};
    assert_int_equal(cplace_assign(b, 2, &req, out), -EINVAL);
    req.rf = 3;
    assert_int_equal(cplace_assign(b, 2, &req, out), -EINVAL);
    req.rf = 1;
    assert_int_equal(cplace_assign(b, 0, &req, out), -EINVAL);
    assert_int_equal(cplace_assign(dup, 2, &req, out), -EINVAL);
    req.n_parts = -1;
    assert_int_equal(cplace_assign(b, 2, &req, out), -EINVAL);
    req.n_parts = 0;
    assert_int_equal(cplace_assign(b, 2, &req, out), 0);
    /* A single broker, RF 1. */
    req = (struct cplace_request){.n_parts = 3, .rf = 1, .start = 7};
    assert_int_equal(cplace_assign(b, 1, &req, out), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[2], 0);
}

/* ---- through the controller ----------------------------------------------------------- */

struct env {
    struct cstate *s;
    struct cctl_ctx ctx;
    struct cstate_records recs;
    struct cctl_error err;
    int64_t offset;
    uint64_t rng;
};

static uint64_t splitmix(void *arg)
{
    uint64_t *x = arg;
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void commit(struct env *e)
{
    if (e->err.code)
        fail_msg("controller: %s", e->err.message);
    for (size_t i = 0; i < e->recs.n; i++) {
        char why[256] = "";
        if (cstate_apply_bytes(e->s, e->offset++, e->recs.v[i].data, e->recs.v[i].len, why,
                               sizeof(why)))
            fail_msg("apply: %s", why);
    }
    cstate_records_clear(&e->recs);
}

static void env_init(struct env *e, int n, const char *const *racks, uint64_t seed)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(cstate_new(&e->s), 0);
    cctl_config_defaults(&e->ctx.cfg);
    e->rng = seed;
    e->ctx.rand = splitmix;
    e->ctx.rand_arg = &e->rng;
    cstate_records_init(&e->recs);
    for (int i = 0; i < n; i++) {
        struct cctl_register_req req = {.broker_id = i, .rack = racks ? racks[i] : NULL};
        req.incarnation[0] = (uint8_t)(i + 1);
        int64_t epoch;
        assert_int_equal(cctl_register_broker(e->s, &e->ctx, &req, &e->recs, &epoch, &e->err), 0);
        commit(e);
    }
}

static void env_deinit(struct env *e)
{
    cstate_records_deinit(&e->recs);
    cstate_free(e->s);
}

static void topic_counts(const struct cstate_topic *t, struct counts *c)
{
    memset(c, 0, sizeof(*c));
    for (int32_t i = 0; i < t->n_parts; i++) {
        const struct cstate_partition *p = &t->parts[i];
        c->leaders[p->leader]++;
        for (uint8_t j = 0; j < p->n_replicas; j++)
            c->replicas[cstate_part_replicas(p)[j]]++;
    }
}

static void test_controller_placement_is_balanced_and_continues(void **state)
{
    (void)state;
    const int32_t ids[] = {0, 1, 2, 3, 4};
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct env e;
        env_init(&e, 5, NULL, seed);
        struct cctl_create_topic_req req = {
            .name = "t", .num_partitions = 100, .replication_factor = 3};
        assert_int_equal(cctl_create_topic(e.s, &e.ctx, &req, &e.recs, NULL, &e.err), 0);
        commit(&e);
        struct counts c;
        topic_counts(cstate_topic_by_name(e.s, "t"), &c);
        assert_true(spread(c.leaders, ids, 5) <= 1);
        assert_true(spread(c.replicas, ids, 5) <= 1);
        /* 100 -> 137 -> 150 -> 200 partitions: leaders stay within one at
         * every step; replicas whenever the count is a multiple of the broker
         * count (a partial round of followers can be uneven, as in Kafka). */
        const int32_t steps[] = {137, 150, 200};
        for (int k = 0; k < 3; k++) {
            struct cctl_create_partitions_req more = {.name = "t", .total_count = steps[k]};
            assert_int_equal(cctl_create_partitions(e.s, &e.ctx, &more, &e.recs, &e.err), 0);
            commit(&e);
            topic_counts(cstate_topic_by_name(e.s, "t"), &c);
            assert_true(spread(c.leaders, ids, 5) <= 1);
            if (steps[k] % 5 == 0)
                assert_true(spread(c.replicas, ids, 5) <= 1);
            else
                assert_true(spread(c.replicas, ids, 5) <= 3);
        }
        env_deinit(&e);
    }
}

static void test_controller_placement_is_rack_aware_and_skips_ineligible(void **state)
{
    (void)state;
    const char *const racks[] = {"a", "a", "b", "b", "c", "c", "a"};
    struct env e;
    env_init(&e, 7, racks, 99);
    /* Broker 6 is fenced, broker 5 shutting down: neither may get replicas. */
    const struct cstate_broker *b6 = cstate_broker(e.s, 6);
    assert_int_equal(cctl_fence_broker(e.s, &e.ctx, 6, b6->epoch, &e.recs, &e.err), 0);
    commit(&e);
    int32_t remaining;
    assert_int_equal(cctl_controlled_shutdown(e.s, &e.ctx, 5, cstate_broker(e.s, 5)->epoch, &e.recs,
                                              &remaining, &e.err),
                     0);
    commit(&e);
    struct cctl_create_topic_req req = {.name = "r", .num_partitions = 50, .replication_factor = 3};
    assert_int_equal(cctl_create_topic(e.s, &e.ctx, &req, &e.recs, NULL, &e.err), 0);
    commit(&e);
    const struct cstate_topic *t = cstate_topic_by_name(e.s, "r");
    const struct cplace_broker view[] = {{0, "a"}, {1, "a"}, {2, "b"}, {3, "b"}, {4, "c"}};
    for (int32_t i = 0; i < t->n_parts; i++) {
        const struct cstate_partition *p = &t->parts[i];
        for (uint8_t j = 0; j < p->n_replicas; j++) {
            int32_t id = cstate_part_replicas(p)[j];
            assert_true(id >= 0 && id <= 4);
        }
        assert_int_equal(racks_spanned(view, 5, cstate_part_replicas(p), 3), 3);
    }
    struct counts c;
    topic_counts(t, &c);
    const int32_t ids[] = {0, 1, 2, 3, 4};
    assert_true(spread(c.leaders, ids, 5) <= 1);
    env_deinit(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_balances_leaders_and_replicas),
        cmocka_unit_test(test_placement_is_deterministic_whatever_the_input_order),
        cmocka_unit_test(test_placement_rack_aware_spans_racks),
        cmocka_unit_test(test_placement_adding_partitions_continues_the_assignment),
        cmocka_unit_test(test_placement_rejects_bad_requests),
        cmocka_unit_test(test_controller_placement_is_balanced_and_continues),
        cmocka_unit_test(test_controller_placement_is_rack_aware_and_skips_ineligible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
