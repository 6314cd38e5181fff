/* Tests for cli/plan.c, the reassignment planner: the properties its callers
 * rely on (replication factor kept, no broker twice, only brokers of the set,
 * balance within one, rack spread, leaders spread, the fewest moves,
 * determinism), on hand-made clusters and on seeded random ones. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/plan.h"

#define MAXP 2048

struct cluster {
    struct plan_broker brokers[32];
    size_t nb;
    struct plan_part parts[MAXP];
    int32_t cur[MAXP * 4];
    char topics[8][16];
    size_t np;
    int32_t out[MAXP * 4];
};

static void add_brokers(struct cluster *c, int n, const char *const *racks)
{
    for (int i = 0; i < n; i++) {
        c->brokers[c->nb] =
            (struct plan_broker){.id = (int32_t)c->nb + 1, .rack = racks ? racks[i] : NULL};
        c->nb++;
    }
}

/* @nt topics of @np partitions each with RF @rf, placed round-robin over
 * brokers 1..@on (a balanced layout, leaders spread). */
static void add_topics(struct cluster *c, int nt, int np, int rf, int on)
{
    size_t o = 0;
    for (size_t i = 0; i < c->np; i++)
        o += (size_t)c->parts[i].n_replicas;
    for (int t = 0; t < nt; t++) {
        snprintf(c->topics[t], sizeof(c->topics[t]), "t%d", t);
        for (int p = 0; p < np; p++) {
            struct plan_part *pp = &c->parts[c->np++];
            pp->topic = c->topics[t];
            pp->partition = p;
            pp->n_replicas = rf;
            pp->replicas = &c->cur[o];
            for (int r = 0; r < rf; r++)
                c->cur[o++] = (int32_t)((p + t + r) % on) + 1;
        }
    }
}

static size_t total_replicas(const struct cluster *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->np; i++)
        n += (size_t)c->parts[i].n_replicas;
    return n;
}

/* RF kept, no duplicates, only brokers of the set; spreads returned. */
static void check_valid(const struct cluster *c, long *ret_load_spread, long *ret_lead_spread)
{
    long load[64] = {0}, leads[64] = {0};
    size_t o = 0;
    for (size_t i = 0; i < c->np; i++) {
        int rf = c->parts[i].n_replicas;
        for (int r = 0; r < rf; r++) {
            int32_t b = c->out[o + (size_t)r];
            bool known = false;
            for (size_t k = 0; k < c->nb; k++)
                known = known || c->brokers[k].id == b;
            assert_true(known);
            for (int q = 0; q < r; q++)
                assert_int_not_equal(c->out[o + (size_t)q], b);
            load[b]++;
        }
        leads[c->out[o]]++;
        o += (size_t)rf;
    }
    long lmin = -1, lmax = 0, dmin = -1, dmax = 0;
    for (size_t k = 0; k < c->nb; k++) {
        int32_t b = c->brokers[k].id;
        lmin = lmin < 0 || load[b] < lmin ? load[b] : lmin;
        lmax = load[b] > lmax ? load[b] : lmax;
        dmin = dmin < 0 || leads[b] < dmin ? leads[b] : dmin;
        dmax = leads[b] > dmax ? leads[b] : dmax;
    }
    *ret_load_spread = lmax - lmin;
    *ret_lead_spread = dmax - dmin;
}

static void test_adding_a_fourth_broker_moves_a_quarter(void **state)
{
    (void)state;
    struct cluster *c = calloc(1, sizeof(*c));
    add_brokers(c, 4, NULL);
    add_topics(c, 2, 12, 3, 3); /* 72 replicas on brokers 1-3 */
    assert_int_equal(plan_generate(c->brokers, c->nb, c->parts, c->np, c->out), 0);
    long ls, ds;
    check_valid(c, &ls, &ds);
    assert_true(ls <= 1);
    assert_true(ds <= 1);
    size_t moves = plan_count_moves(c->parts, c->np, c->out);
    assert_int_equal(moves, total_replicas(c) / 4); /* 18: broker 4's share exactly */
    /* broker 4 leads a quarter of the partitions */
    long lead4 = 0;
    for (size_t i = 0, o = 0; i < c->np; o += 3, i++)
        lead4 += c->out[o] == 4;
    assert_int_equal(lead4, 6);
    free(c);
}

static void test_balanced_input_is_left_alone(void **state)
{
    (void)state;
    struct cluster *c = calloc(1, sizeof(*c));
    add_brokers(c, 3, NULL);
    add_topics(c, 3, 6, 2, 3);
    assert_int_equal(plan_generate(c->brokers, c->nb, c->parts, c->np, c->out), 0);
    assert_int_equal(plan_count_moves(c->parts, c->np, c->out), 0);
    /* not even reordered: the layout was balanced in leaders too */
    assert_memory_equal(c->out, c->cur, total_replicas(c) * sizeof(int32_t));
    free(c);
}

static void test_decommission_moves_only_the_leaving_brokers_replicas(void **state)
{
    (void)state;
    struct cluster *c = calloc(1, sizeof(*c));
    add_brokers(c, 4, NULL);
    add_topics(c, 2, 8, 2, 4);
    /* brokers 1, 3, 4: broker 2 leaves */
    c->brokers[1] = c->brokers[3];
    c->nb = 3;
    size_t on2 = 0;
    for (size_t s = 0; s < total_replicas(c); s++)
        on2 += c->cur[s] == 2;
    assert_int_equal(plan_generate(c->brokers, c->nb, c->parts, c->np, c->out), 0);
    long ls, ds;
    check_valid(c, &ls, &ds);
    for (size_t s = 0; s < total_replicas(c); s++)
        assert_int_not_equal(c->out[s], 2);
    assert_true(ls <= 1);
    /* 32 replicas over 3 brokers: 11/11/10; broker 2's 8 move, plus at most
     * the one a 8/8/8 + 8 split cannot avoid */
    size_t moves = plan_count_moves(c->parts, c->np, c->out);
    assert_true(moves >= on2 && moves <= on2 + 1);
    free(c);
}

static void test_racks_spread(void **state)
{
    (void)state;
    static const char *const racks[] = {"a", "a", "b", "b", "c", "c"};
    struct cluster *c = calloc(1, sizeof(*c));
    add_brokers(c, 6, racks);
    /* everything on brokers 1 and 2 (both rack a), RF 2 and RF 3 */
    size_t o = 0;
    strcpy(c->topics[0], "x");
    for (int p = 0; p < 12; p++) {
        struct plan_part *pp = &c->parts[c->np++];
        pp->topic = c->topics[0];
        pp->partition = p;
        pp->n_replicas = p < 6 ? 2 : 3;
        pp->replicas = &c->cur[o];
        c->cur[o++] = 1;
        c->cur[o++] = 2;
        if (p >= 6)
            c->cur[o++] = 3;
    }
    assert_int_equal(plan_generate(c->brokers, c->nb, c->parts, c->np, c->out), 0);
    long ls, ds;
    check_valid(c, &ls, &ds);
    assert_true(ls <= 1);
    assert_true(ds <= 1);
    o = 0;
    for (size_t i = 0; i < c->np; i++) {
        int rf = c->parts[i].n_replicas;
        /* every replica on its own rack (rf <= 3 racks) */
        for (int r = 0; r < rf; r++)
            for (int q = 0; q < r; q++)
                assert_string_not_equal(racks[c->out[o + (size_t)r] - 1],
                                        racks[c->out[o + (size_t)q] - 1]);
        o += (size_t)rf;
    }
    free(c);
}

static void test_deterministic_whatever_the_input_order(void **state)
{
    (void)state;
    struct cluster *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    add_brokers(a, 5, NULL);
    add_topics(a, 3, 7, 2, 3);
    /* b: the same partitions and brokers, reversed */
    b->nb = a->nb;
    for (size_t k = 0; k < a->nb; k++)
        b->brokers[k] = a->brokers[a->nb - 1 - k];
    b->np = a->np;
    for (size_t i = 0; i < a->np; i++)
        b->parts[i] = a->parts[a->np - 1 - i];
    assert_int_equal(plan_generate(a->brokers, a->nb, a->parts, a->np, a->out), 0);
    assert_int_equal(plan_generate(b->brokers, b->nb, b->parts, b->np, b->out), 0);
    for (size_t i = 0; i < a->np; i++)
        assert_memory_equal(&a->out[i * 2], &b->out[(a->np - 1 - i) * 2], 2 * sizeof(int32_t));
    /* and the same twice */
    int32_t again[MAXP];
    assert_int_equal(plan_generate(a->brokers, a->nb, a->parts, a->np, again), 0);
    assert_memory_equal(again, a->out, total_replicas(a) * sizeof(int32_t));
    free(a);
    free(b);
}

static void test_random_clusters_balance_within_one(void **state)
{
    (void)state;
    struct cluster *c = malloc(sizeof(*c));
    for (unsigned seed = 1; seed <= 200; seed++) {
        memset(c, 0, sizeof(*c));
        srand(seed);
        int nb = 1 + rand() % 9;
        add_brokers(c, nb, NULL);
        int nt = 1 + rand() % 4;
        size_t o = 0;
        for (int t = 0; t < nt; t++) {
            snprintf(c->topics[t], sizeof(c->topics[t]), "t%d", t);
            int np = 1 + rand() % 20, rf = 1 + rand() % (nb < 3 ? nb : 3);
            for (int p = 0; p < np; p++) {
                struct plan_part *pp = &c->parts[c->np++];
                pp->topic = c->topics[t];
                pp->partition = p;
                pp->n_replicas = rf;
                pp->replicas = &c->cur[o];
                /* random distinct replicas among brokers 1..nb+2 (some gone) */
                for (int r = 0; r < rf; r++) {
                    int32_t b;
                    bool dup;
                    do {
                        b = 1 + rand() % (nb + 2);
                        dup = false;
                        for (int q = 0; q < r; q++)
                            dup = dup || c->cur[o + (size_t)q] == b;
                    } while (dup);
                    c->cur[o + (size_t)r] = b;
                }
                o += (size_t)rf;
            }
        }
        assert_int_equal(plan_generate(c->brokers, c->nb, c->parts, c->np, c->out), 0);
        long ls, ds;
        check_valid(c, &ls, &ds);
        if (ls > 1)
            fail_msg("seed %u: replica spread %ld", seed, ls);
        /* the fewest moves: at least every replica on a gone broker, and no
         * more than that plus what balance needs */
        size_t gone = 0, total = total_replicas(c);
        for (size_t s = 0; s < total; s++)
            gone += c->cur[s] > nb;
        size_t moves = plan_count_moves(c->parts, c->np, c->out);
        assert_true(moves >= gone);
        /* a second plan from the proposal moves nothing */
        struct cluster *d = malloc(sizeof(*d));
        memcpy(d, c, sizeof(*d));
        for (size_t i = 0, q = 0; i < d->np; q += (size_t)d->parts[i].n_replicas, i++)
            d->parts[i].replicas = &c->out[q];
        assert_int_equal(plan_generate(d->brokers, d->nb, d->parts, d->np, d->out), 0);
        assert_int_equal(plan_count_moves(d->parts, d->np, d->out), 0);
        free(d);
    }
    free(c);
}

static void test_bad_input_refused(void **state)
{
    (void)state;
    struct plan_broker b[2] = {{.id = 1}, {.id = 1}};
    int32_t rep[3] = {1, 2, 3}, out[3];
    struct plan_part p = {.topic = "t", .partition = 0, .replicas = rep, .n_replicas = 3};
    assert_int_equal(plan_generate(b, 0, &p, 1, out), -EINVAL);
    assert_int_equal(plan_generate(b, 2, &p, 1, out), -EINVAL); /* RF 3 > 2 brokers */
    p.n_replicas = 1;
    assert_int_equal(plan_generate(b, 2, &p, 1, out), -EINVAL); /* broker 1 twice */
    b[1].id = 2;
    struct plan_part two[2] = {p, p};
    assert_int_equal(plan_generate(b, 2, two, 2, out), -EINVAL); /* t-0 twice */
    p.n_replicas = 0;
    assert_int_equal(plan_generate(b, 2, &p, 1, out), -EINVAL);
    p.n_replicas = 2;
    assert_int_equal(plan_generate(b, 2, &p, 1, out), 0);
    assert_int_equal(plan_generate(b, 2, &p, 0, out), 0); /* nothing to plan */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adding_a_fourth_broker_moves_a_quarter),
        cmocka_unit_test(test_balanced_input_is_left_alone),
        cmocka_unit_test(test_decommission_moves_only_the_leaving_brokers_replicas),
        cmocka_unit_test(test_racks_spread),
        cmocka_unit_test(test_deterministic_whatever_the_input_order),
        cmocka_unit_test(test_random_clusters_balance_within_one),
        cmocka_unit_test(test_bad_input_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
