/* Tests for common/purgatory: completion by check (only the key's watchers), by
 * timeout on a real libevent loop, by owner cancellation and by freeing; an
 * operation watching several keys completes once and leaves every list; ordered
 * checks stop at the first watcher that cannot complete; callbacks that add,
 * complete, check or cancel while a walk is under way; thousands of operations.
 * Every test asserts exact counts and orders. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/purgatory.h"

#define MAX_EVENTS 64
#define OWNER_A    ((const void *)&owner_a)
#define OWNER_B    ((const void *)&owner_b)

static const int owner_a = 1, owner_b = 2;

struct fixture;

/* A test operation: completable once the fixture's level reaches @need (and
 * @ready), with an optional action run from on_complete. */
struct top {
    struct purg_op op;
    struct fixture *f;
    int id;
    int64_t need;
    bool ready;
    bool heap; /* freed by on_complete */
    int tries;
    int completions;
    int reason;
    void (*action)(struct top *t, int reason);
    void *arg;
};

struct fixture {
    struct event_base *base;
    struct event *tick; /* wakes the loop so run_until can give up */
    struct purg *pg;
    int64_t level;
    int total_tries;
    int done; /* completions of any operation */
    int order[MAX_EVENTS];
    int reasons[MAX_EVENTS];
    int n_order;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->base = event_base_new();
    if (!f->base)
        return -1;
    f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    if (!f->tick || event_add(f->tick, &tv) < 0)
        return -1;
    if (purg_new(f->base, "test", &f->pg) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    purg_free(f->pg);
    event_free(f->tick);
    event_base_free(f->base);
    free(f);
    return 0;
}

static bool top_try(struct purg_op *op)
{
    struct top *t = (struct top *)op;
    t->tries++;
    t->f->total_tries++;
    return t->ready && t->f->level >= t->need;
}

static void top_complete(struct purg_op *op, int reason)
{
    struct top *t = (struct top *)op;
    struct fixture *f = t->f;
    t->completions++;
    t->reason = reason;
    f->done++;
    if (f->n_order < MAX_EVENTS) {
        f->order[f->n_order] = t->id;
        f->reasons[f->n_order] = reason;
        f->n_order++;
    }
    if (t->action)
        t->action(t, reason);
    if (t->heap)
        free(t);
}

static void top_init(struct fixture *f, struct top *t, int id, int64_t need, const void *owner)
{
    purg_op_init(&t->op, top_try, top_complete, owner);
    t->f = f;
    t->id = id;
    t->need = need;
    t->ready = true;
    t->heap = false;
    t->tries = 0;
    t->completions = 0;
    t->reason = -1;
    t->action = NULL;
    t->arg = NULL;
}

static struct top *top_new(struct fixture *f, int id, int64_t need, const void *owner)
{
    struct top *t = malloc(sizeof(*t)); /* not zeroed: purg_op_init must cope */
    assert_non_null(t);
    memset(&t->op, 0xa5, sizeof(t->op));
    top_init(f, t, id, need, owner);
    t->heap = true;
    return t;
}

/* Park @t on @n keys (it cannot complete now: level < need). */
static void park(struct fixture *f, struct top *t, const uint64_t *keys, size_t n, int64_t ms)
{
    assert_int_equal(purg_add(f->pg, &t->op, keys, n, ms), 0);
    assert_true(purg_op_watched(&t->op));
}

static void assert_order(const struct fixture *f, const int *ids, const int *reasons, int n)
{
    if (f->n_order != n)
        fail_msg("%d completions, expected %d", f->n_order, n);
    for (int i = 0; i < n; i++) {
        if (f->order[i] != ids[i] || f->reasons[i] != reasons[i])
            fail_msg("completion %d: op %d reason %d, expected op %d reason %d", i, f->order[i],
                     f->reasons[i], ids[i], reasons[i]);
    }
}

static void run_until(struct fixture *f, int target, int64_t max_ms)
{
    int64_t deadline = clock_mono_ms() + max_ms;
    while (f->done < target) {
        if (clock_mono_ms() > deadline)
            fail_msg("timed out: %d of %d completions", f->done, target);
        event_base_loop(f->base, EVLOOP_ONCE);
    }
}

static void run_for(struct fixture *f, int64_t ms)
{
    int64_t end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
}

/* ---- basics ----------------------------------------------------------------------- */

static void test_purg_add_completes_at_once_without_watching(void **state)
{
    struct fixture *f = *state;
    struct top t;
    top_init(f, &t, 1, 0, OWNER_A);
    uint64_t k = 7;
    assert_int_equal(purg_add(f->pg, &t.op, &k, 1, 1000), 1);
    assert_int_equal(t.completions, 1);
    assert_int_equal(t.reason, PURG_COMPLETED);
    assert_int_equal(t.tries, 1);
    assert_false(purg_op_watched(&t.op));
    assert_int_equal(purg_count(f->pg), 0);
    assert_int_equal(purg_key_count(f->pg, k), 0);
    assert_int_equal(purg_cancel_owner(f->pg, OWNER_A), 0);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_string_equal(st.name, "test");
    assert_int_equal(st.added, 0);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.keys, 0);
    run_for(f, 20); /* no timer was armed */
    assert_int_equal(t.completions, 1);
}

static void test_purg_check_tries_only_the_keys_watchers(void **state)
{
    struct fixture *f = *state;
    struct top a, b, c;
    top_init(f, &a, 1, 1, NULL);
    top_init(f, &b, 2, 1, NULL);
    top_init(f, &c, 3, 1, NULL);
    uint64_t k1 = 100, k2 = 200;
    park(f, &a, &k1, 1, PURG_NO_TIMEOUT);
    park(f, &b, &k2, 1, PURG_NO_TIMEOUT);
    park(f, &c, &k1, 1, PURG_NO_TIMEOUT);
    assert_int_equal(purg_count(f->pg), 3);
    assert_int_equal(purg_key_count(f->pg, k1), 2);
    assert_int_equal(purg_key_count(f->pg, k2), 1);

    /* Nothing can complete yet: each watcher of k1 is tried once, b not at all. */
    assert_int_equal(purg_check(f->pg, k1), 0);
    assert_int_equal(a.tries, 2);
    assert_int_equal(b.tries, 1);
    assert_int_equal(c.tries, 2);

    f->level = 1;
    assert_int_equal(purg_check(f->pg, k1), 2);
    assert_order(f, (int[]){1, 3}, (int[]){PURG_COMPLETED, PURG_COMPLETED}, 2);
    assert_int_equal(b.tries, 1);
    assert_int_equal(b.completions, 0);
    assert_int_equal(purg_key_count(f->pg, k1), 0);
    assert_int_equal(purg_key_count(f->pg, k2), 1);
    assert_int_equal(purg_count(f->pg), 1);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.watched, 1);
    assert_int_equal(st.added, 3);
    assert_int_equal(st.completed, 2);

    /* A key nobody watches. */
    assert_int_equal(purg_check(f->pg, 999), 0);
    assert_int_equal(purg_check(f->pg, k2), 1);
    assert_int_equal(b.completions, 1);
    assert_int_equal(purg_count(f->pg), 0);
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.keys, 0);
}

/* ---- timeouts --------------------------------------------------------------------- */

static void test_purg_timeout_expires_on_the_loop(void **state)
{
    struct fixture *f = *state;
    struct top *fast = top_new(f, 1, 1, NULL);
    struct top *slow = top_new(f, 2, 1, NULL);
    struct top *zero = top_new(f, 3, 1, NULL);
    uint64_t k = 5;
    int64_t t0 = clock_mono_ms();
    park(f, fast, &k, 1, 50);
    park(f, slow, &k, 1, 10000);
    park(f, zero, NULL, 0, 0);
    assert_int_equal(f->done, 0); /* never from inside purg_add */
    run_until(f, 1, 5000);
    assert_order(f, (int[]){3}, (int[]){PURG_EXPIRED}, 1);
    run_until(f, 2, 5000);
    /* Not before its time; a few ms of slack for whole-ms clocks and libevent's
     * cached loop time (seen once as 49 under ASan on a loaded machine). */
    assert_true(clock_mono_ms() - t0 >= 45);
    assert_order(f, (int[]){3, 1}, (int[]){PURG_EXPIRED, PURG_EXPIRED}, 2);
    assert_int_equal(purg_key_count(f->pg, k), 1);
    assert_int_equal(purg_count(f->pg), 1);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.expired, 2);
    /* The survivor still completes by event, and its timer goes with it. */
    f->level = 1;
    assert_int_equal(purg_check(f->pg, k), 1);
    assert_order(f, (int[]){3, 1, 2}, (int[]){PURG_EXPIRED, PURG_EXPIRED, PURG_COMPLETED}, 3);
    assert_int_equal(purg_count(f->pg), 0);
}

static void test_purg_completed_op_never_expires(void **state)
{
    struct fixture *f = *state;
    struct top a, b;
    top_init(f, &a, 1, 1, NULL);
    top_init(f, &b, 2, 1, NULL);
    uint64_t k = 5;
    park(f, &a, &k, 1, 30);
    park(f, &b, &k, 1, 30);
    f->level = 1;
    assert_int_equal(purg_check(f->pg, k), 2);
    purg_cancel(&a.op); /* already completed: no-op */
    run_for(f, 80);
    assert_int_equal(a.completions, 1);
    assert_int_equal(b.completions, 1);
    assert_int_equal(a.reason, PURG_COMPLETED);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.expired, 0);
    assert_int_equal(st.cancelled, 0);
}

/* Ten distinct durations: more than the purgatory registers as common timeouts. */
static void test_purg_many_distinct_timeouts_expire_in_order(void **state)
{
    struct fixture *f = *state;
    for (int i = 9; i >= 0; i--)
        park(f, top_new(f, i, 1, NULL), NULL, 0, 20 + 15 * i);
    run_until(f, 10, 5000);
    int ids[10], reasons[10];
    for (int i = 0; i < 10; i++) {
        ids[i] = i;
        reasons[i] = PURG_EXPIRED;
    }
    assert_order(f, ids, reasons, 10);
}

/* ---- cancellation ------------------------------------------------------------------ */

static void test_purg_cancel_owner_completes_its_ops_only(void **state)
{
    struct fixture *f = *state;
    struct top *a1 = top_new(f, 1, 1, OWNER_A);
    struct top *b1 = top_new(f, 2, 1, OWNER_B);
    struct top *a2 = top_new(f, 3, 1, OWNER_A);
    struct top *none = top_new(f, 4, 1, NULL);
    struct top *a3 = top_new(f, 5, 1, OWNER_A);
    uint64_t ks[] = {10, 11, 12};
    park(f, a1, ks, 3, 10000);
    park(f, b1, ks, 1, 10000);
    park(f, a2, &ks[1], 1, PURG_NO_TIMEOUT);
    park(f, none, &ks[2], 1, 10000);
    park(f, a3, NULL, 0, 10000);
    assert_int_equal(purg_key_count(f->pg, 11), 2);

    assert_int_equal(purg_cancel_owner(f->pg, OWNER_A), 3);
    assert_order(f, (int[]){1, 3, 5}, (int[]){PURG_CANCELLED, PURG_CANCELLED, PURG_CANCELLED}, 3);
    assert_int_equal(purg_key_count(f->pg, 10), 1);
    assert_int_equal(purg_key_count(f->pg, 11), 0);
    assert_int_equal(purg_key_count(f->pg, 12), 1);
    assert_int_equal(purg_count(f->pg), 2);
    assert_int_equal(purg_cancel_owner(f->pg, OWNER_A), 0);
    assert_int_equal(purg_cancel_owner(f->pg, NULL), 0);

    /* Cancel one. */
    purg_cancel(&b1->op);
    assert_int_equal(f->n_order, 4);
    assert_int_equal(f->order[3], 2);
    assert_int_equal(f->reasons[3], PURG_CANCELLED);
    assert_int_equal(purg_cancel_owner(f->pg, OWNER_B), 0);
    assert_int_equal(purg_key_count(f->pg, 10), 0);
    assert_int_equal(purg_count(f->pg), 1);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.cancelled, 4);
    assert_int_equal(st.keys, 1);
    run_for(f, 20); /* the cancelled ops' timers are gone (ASan: no use after free) */
    assert_int_equal(f->done, 4);
}

/* ---- several keys ------------------------------------------------------------------ */

static void test_purg_multi_key_op_completes_once_and_leaves_every_key(void **state)
{
    struct fixture *f = *state;
    struct top *m = top_new(f, 1, 1, OWNER_A);
    struct top *other = top_new(f, 2, 5, NULL);
    uint64_t ks[] = {3, 1, 2, 1, 3}; /* duplicates are watched once */
    park(f, m, ks, 5, 10000);
    park(f, other, ks, 1, PURG_NO_TIMEOUT);
    assert_int_equal(purg_key_count(f->pg, 1), 1);
    assert_int_equal(purg_key_count(f->pg, 2), 1);
    assert_int_equal(purg_key_count(f->pg, 3), 2);
    assert_int_equal(purg_check(f->pg, 1), 0);
    assert_int_equal(m->tries, 2); /* once at add, once for key 1 */

    f->level = 1;
    assert_int_equal(purg_check(f->pg, 2), 1);
    assert_order(f, (int[]){1}, (int[]){PURG_COMPLETED}, 1);
    /* m was freed by its callback: every list forgot it. */
    assert_int_equal(purg_key_count(f->pg, 1), 0);
    assert_int_equal(purg_key_count(f->pg, 2), 0);
    assert_int_equal(purg_key_count(f->pg, 3), 1);
    assert_int_equal(purg_check(f->pg, 1), 0);
    assert_int_equal(purg_check(f->pg, 3), 0);
    assert_int_equal(other->tries, 2);
    assert_int_equal(purg_cancel_owner(f->pg, OWNER_A), 0);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.keys, 1);
    run_for(f, 20);
    assert_int_equal(f->done, 1);
}

/* ---- ordered checks ---------------------------------------------------------------- */

static void test_purg_check_ordered_stops_at_first_that_cannot(void **state)
{
    struct fixture *f = *state;
    struct top t[5];
    uint64_t k = 42;
    for (int i = 0; i < 5; i++) {
        top_init(f, &t[i], i, i + 1, NULL);
        park(f, &t[i], &k, 1, PURG_NO_TIMEOUT);
    }
    f->total_tries = 0;
    f->level = 3;
    assert_int_equal(purg_check_ordered(f->pg, k), 3);
    assert_int_equal(f->total_tries, 4); /* three that completed, the one that could not */
    assert_int_equal(t[3].tries, 2);
    assert_int_equal(t[4].tries, 1); /* never reached */
    assert_order(f, (int[]){0, 1, 2}, (int[]){PURG_COMPLETED, PURG_COMPLETED, PURG_COMPLETED}, 3);
    assert_int_equal(purg_key_count(f->pg, k), 2);

    /* Out of order: the ordered check is stuck behind t[3], the plain one is not. */
    t[3].need = 100;
    f->level = 5;
    assert_int_equal(purg_check_ordered(f->pg, k), 0);
    assert_int_equal(t[4].tries, 1);
    assert_int_equal(purg_check(f->pg, k), 1);
    assert_int_equal(t[4].completions, 1);
    assert_int_equal(t[3].completions, 0);
    assert_int_equal(purg_complete_key(f->pg, k, PURG_REASON_USER + 20), 1);
    assert_int_equal(t[3].reason, PURG_REASON_USER + 20);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.forced, 1);
    assert_int_equal(st.completed, 4);
}

/* ---- re-entrancy ------------------------------------------------------------------- */

/* on_complete of op 1 parks a new op (that could complete now) on the same key:
 * the walk under way must not visit it. */
static void act_park_new(struct top *t, int reason)
{
    (void)reason;
    struct top *n = top_new(t->f, 100, 0, NULL);
    uint64_t k = 1;
    assert_int_equal(purg_watch(t->f->pg, &n->op, &k, 1, PURG_NO_TIMEOUT), 0);
    t->arg = n;
}

static void test_purg_op_added_by_callback_waits_for_next_check(void **state)
{
    struct fixture *f = *state;
    struct top a, b;
    top_init(f, &a, 1, 1, NULL);
    top_init(f, &b, 2, 1, NULL);
    a.action = act_park_new;
    uint64_t k = 1;
    park(f, &a, &k, 1, PURG_NO_TIMEOUT);
    park(f, &b, &k, 1, PURG_NO_TIMEOUT);
    f->level = 1;
    assert_int_equal(purg_check(f->pg, k), 2);
    assert_order(f, (int[]){1, 2}, (int[]){PURG_COMPLETED, PURG_COMPLETED}, 2);
    struct top *n = a.arg;
    assert_int_equal(n->tries, 0);
    assert_int_equal(purg_key_count(f->pg, k), 1);
    assert_int_equal(purg_check(f->pg, k), 1);
    assert_order(f, (int[]){1, 2, 100}, (int[]){PURG_COMPLETED, PURG_COMPLETED, PURG_COMPLETED}, 3);
}

/* on_complete of op 1 force-completes op 2 (next on the same key) and op 3
 * (another key): each completes once, and the walk goes on to op 4. */
static void act_complete_others(struct top *t, int reason)
{
    (void)reason;
    struct top **others = t->arg;
    purg_complete(&others[0]->op, PURG_REASON_USER + 1);
    purg_complete(&others[1]->op, PURG_REASON_USER + 2);
}

static void test_purg_callback_completes_other_ops_during_check(void **state)
{
    struct fixture *f = *state;
    struct top *a = top_new(f, 1, 1, NULL);
    struct top *b = top_new(f, 2, 1, NULL);
    struct top *c = top_new(f, 3, 1, NULL);
    struct top *d = top_new(f, 4, 1, NULL);
    struct top *others[2] = {b, c};
    a->action = act_complete_others;
    a->arg = others;
    uint64_t k = 1, k2 = 2;
    uint64_t both[] = {1, 2};
    park(f, a, &k, 1, 10000);
    park(f, b, both, 2, 10000);
    park(f, c, &k2, 1, 10000);
    park(f, d, &k, 1, 10000);
    f->level = 1;
    assert_int_equal(purg_check(f->pg, k), 2); /* a and d; b and c were forced */
    assert_order(
        f, (int[]){1, 2, 3, 4},
        (int[]){PURG_COMPLETED, PURG_REASON_USER + 1, PURG_REASON_USER + 2, PURG_COMPLETED}, 4);
    assert_int_equal(purg_count(f->pg), 0);
    assert_int_equal(purg_key_count(f->pg, k2), 0);
    run_for(f, 20);
    assert_int_equal(f->done, 4);
}

/* on_complete of op 1 checks the same key again (nested walk): the outer walk
 * must not complete anything twice. */
static void act_check_again(struct top *t, int reason)
{
    (void)reason;
    assert_int_equal(purg_check(t->f->pg, 1), 3);
}

static void test_purg_nested_check_of_the_same_key(void **state)
{
    struct fixture *f = *state;
    struct top *t[4];
    uint64_t k = 1;
    for (int i = 0; i < 4; i++) {
        t[i] = top_new(f, i, 1, NULL);
        park(f, t[i], &k, 1, PURG_NO_TIMEOUT);
    }
    t[0]->action = act_check_again;
    f->level = 1;
    assert_int_equal(purg_check(f->pg, k), 1);
    assert_order(f, (int[]){0, 1, 2, 3},
                 (int[]){PURG_COMPLETED, PURG_COMPLETED, PURG_COMPLETED, PURG_COMPLETED}, 4);
    assert_int_equal(purg_count(f->pg), 0);
}

/* The connection-close pattern: completing one op of an owner cancels the rest
 * of that owner's ops, some of them on the key being checked. */
static void act_cancel_owner(struct top *t, int reason)
{
    (void)reason;
    assert_int_equal(purg_cancel_owner(t->f->pg, OWNER_A), 2);
}

static void test_purg_cancel_owner_from_inside_a_check(void **state)
{
    struct fixture *f = *state;
    struct top *a1 = top_new(f, 1, 1, OWNER_A);
    struct top *a2 = top_new(f, 2, 1, OWNER_A);
    struct top *b = top_new(f, 3, 1, OWNER_B);
    struct top *a3 = top_new(f, 4, 1, OWNER_A);
    a1->action = act_cancel_owner;
    uint64_t k = 1, k2 = 2;
    park(f, a1, &k, 1, 10000);
    park(f, a2, &k, 1, 10000);
    park(f, b, &k, 1, 10000);
    park(f, a3, &k2, 1, 10000);
    f->level = 1;
    assert_int_equal(purg_check(f->pg, k), 2); /* a1 and b */
    assert_order(f, (int[]){1, 2, 4, 3},
                 (int[]){PURG_COMPLETED, PURG_CANCELLED, PURG_CANCELLED, PURG_COMPLETED}, 4);
    assert_int_equal(purg_count(f->pg), 0);
}

/* The callback of an op ending by timeout adds another op with the same key. */
static void act_repark(struct top *t, int reason)
{
    if (reason != PURG_EXPIRED || t->id >= 3)
        return;
    struct top *n = top_new(t->f, t->id + 1, 1, NULL);
    uint64_t k = 1;
    park(t->f, n, &k, 1, 10);
    n->action = act_repark;
}

static void test_purg_timeout_callback_reparks(void **state)
{
    struct fixture *f = *state;
    struct top *t = top_new(f, 1, 1, NULL);
    t->action = act_repark;
    uint64_t k = 1;
    park(f, t, &k, 1, 10);
    run_until(f, 3, 5000);
    assert_order(f, (int[]){1, 2, 3}, (int[]){PURG_EXPIRED, PURG_EXPIRED, PURG_EXPIRED}, 3);
    assert_int_equal(purg_count(f->pg), 0);
}

/* ---- shutdown ----------------------------------------------------------------------- */

static void act_park_during_free(struct top *t, int reason)
{
    assert_int_equal(reason, PURG_SHUTDOWN);
    if (t->id != 2)
        return;
    struct top *n = top_new(t->f, 9, 1, NULL);
    uint64_t k = 1;
    park(t->f, n, &k, 1, 10000);
}

static void test_purg_free_completes_pending_ops_with_shutdown(void **state)
{
    struct fixture *f = *state;
    uint64_t ks[] = {1, 2, 3};
    struct top *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = top_new(f, i + 1, 1, i % 2 ? OWNER_A : NULL);
        t[i]->action = act_park_during_free;
    }
    park(f, t[0], ks, 3, 10000);
    park(f, t[1], NULL, 0, 10000);
    park(f, t[2], &ks[1], 1, PURG_NO_TIMEOUT);
    park(f, t[3], ks, 2, 5);
    purg_free(f->pg);
    f->pg = NULL;
    assert_order(f, (int[]){1, 2, 3, 4, 9},
                 (int[]){PURG_SHUTDOWN, PURG_SHUTDOWN, PURG_SHUTDOWN, PURG_SHUTDOWN, PURG_SHUTDOWN},
                 5);
    run_for(f, 20); /* no timer left behind */
    assert_int_equal(f->done, 5);
}

static void test_purg_complete_all_and_free_of_empty(void **state)
{
    struct fixture *f = *state;
    struct top t[3];
    uint64_t k = 1;
    for (int i = 0; i < 3; i++) {
        top_init(f, &t[i], i, 1, NULL);
        park(f, &t[i], &k, 1, PURG_NO_TIMEOUT);
    }
    assert_int_equal(purg_complete_all(f->pg, PURG_REASON_USER), 3);
    assert_order(f, (int[]){0, 1, 2}, (int[]){PURG_REASON_USER, PURG_REASON_USER, PURG_REASON_USER},
                 3);
    assert_int_equal(purg_complete_all(f->pg, PURG_REASON_USER), 0);
    purg_free(NULL);
}

/* ---- scale -------------------------------------------------------------------------- */

#define N_ORDERED 10000
#define N_MULTI   2000
#define N_KEYS    5000
#define PER_OP    50

static void test_purg_thousands_of_ops(void **state)
{
    struct fixture *f = *state;
    struct top *ord = calloc(N_ORDERED, sizeof(*ord));
    struct top *multi = calloc(N_MULTI, sizeof(*multi));
    uint64_t *keys = calloc(PER_OP, sizeof(*keys));
    assert_non_null(ord);
    assert_non_null(multi);
    assert_non_null(keys);
    const uint64_t K = 1u << 30;
    for (int i = 0; i < N_ORDERED; i++) {
        top_init(f, &ord[i], i, i + 1, OWNER_A);
        park(f, &ord[i], &K, 1, 60000);
    }
    for (int i = 0; i < N_MULTI; i++) {
        top_init(f, &multi[i], i, 1, OWNER_B);
        for (int j = 0; j < PER_OP; j++)
            keys[j] = (uint64_t)((i * 7 + j * 101) % N_KEYS);
        park(f, &multi[i], keys, PER_OP, i % 3 ? 60000 : PURG_NO_TIMEOUT);
    }
    assert_int_equal(purg_count(f->pg), N_ORDERED + N_MULTI);

    /* HW-style advances: each check completes exactly 100 and tries 101. */
    for (int step = 1; step <= N_ORDERED / 100; step++) {
        f->total_tries = 0;
        f->level = step * 100;
        assert_int_equal(purg_check_ordered(f->pg, K), 100);
        assert_int_equal(f->total_tries, step == N_ORDERED / 100 ? 100 : 101);
    }
    for (int i = 0; i < N_ORDERED; i++)
        assert_int_equal(ord[i].completions, 1);
    assert_int_equal(purg_key_count(f->pg, K), 0);

    /* Every multi-key op completes once, whichever of its keys fires first. */
    f->level = 1;
    size_t total = 0;
    for (uint64_t k = 0; k < N_KEYS; k++)
        total += purg_check(f->pg, k);
    assert_int_equal(total, N_MULTI);
    for (int i = 0; i < N_MULTI; i++)
        assert_int_equal(multi[i].completions, 1);
    assert_int_equal(purg_count(f->pg), 0);
    struct purg_stats st;
    purg_get_stats(f->pg, &st);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.added, N_ORDERED + N_MULTI);
    assert_int_equal(st.completed, N_ORDERED + N_MULTI);
    assert_int_equal(purg_cancel_owner(f->pg, OWNER_B), 0);
    free(ord);
    free(multi);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_purg_add_completes_at_once_without_watching, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_check_tries_only_the_keys_watchers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_timeout_expires_on_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purg_completed_op_never_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purg_many_distinct_timeouts_expire_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_cancel_owner_completes_its_ops_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_multi_key_op_completes_once_and_leaves_every_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_purg_check_ordered_stops_at_first_that_cannot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_op_added_by_callback_waits_for_next_check, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_callback_completes_other_ops_during_check, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_nested_check_of_the_same_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purg_cancel_owner_from_inside_a_check, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_timeout_callback_reparks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purg_free_completes_pending_ops_with_shutdown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purg_complete_all_and_free_of_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purg_thousands_of_ops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
