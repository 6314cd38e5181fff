/* Tests for broker/replica/fetchsess: a full fetch opens a session (one per
 * follower, replacing the last), incremental fetches must name the session and
 * its next epoch, named partitions update or join it and are always answered,
 * unnamed ones only with news; a big session is indexed, not scanned. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/replica/fetchsess.h"
#include "common/kerr.h"
#include "replica.pb-c.h"

struct fps {
    Weir__Repl__FetchPartition *v;
    Weir__Repl__FetchPartition **p;
    uint8_t (*ids)[CSTATE_UUID_LEN];
    size_t n;
};

/* @n partitions: topic t (by index / 100), partition index % 100, fetch offset @off. */
static struct fps make(size_t first, size_t n, int64_t off)
{
    struct fps f = {calloc(n, sizeof(*f.v)), calloc(n, sizeof(*f.p)), calloc(n, sizeof(*f.ids)),
                    n};
    assert_non_null(f.v);
    assert_non_null(f.p);
    assert_non_null(f.ids);
    for (size_t i = 0; i < n; i++) {
        size_t k = first + i;
        weir__repl__fetch_partition__init(&f.v[i]);
        memset(f.ids[i], 0, CSTATE_UUID_LEN);
        f.ids[i][0] = (uint8_t)(k / 100);
        f.ids[i][15] = 0x5a;
        f.v[i].topic_id.data = f.ids[i];
        f.v[i].topic_id.len = CSTATE_UUID_LEN;
        f.v[i].partition = (int32_t)(k % 100);
        f.v[i].current_leader_epoch = 3;
        f.v[i].fetch_offset = off;
        f.v[i].last_fetched_epoch = 2;
        f.v[i].log_start_offset = 0;
        f.p[i] = &f.v[i];
    }
    return f;
}

static void drop(struct fps *f)
{
    free(f->v);
    free(f->p);
    free(f->ids);
}

static const Weir__Repl__FetchPartition *const *P(const struct fps *f)
{
    return (const Weir__Repl__FetchPartition *const *)f->p;
}

static void test_full_fetch_opens_a_session_per_follower(void **state)
{
    (void)state;
    struct fsess_cache *c;
    assert_int_equal(fsess_cache_new(7, &c), 0);
    struct fps a = make(0, 250, 10);
    struct fsess *s, *t;
    assert_int_equal(fsess_open(c, 2, P(&a), a.n, &s), 0);
    assert_int_equal(s->n, 250);
    assert_int_equal(s->epoch, 1);
    assert_int_not_equal(s->id, 0);
    int32_t first_id = s->id;
    assert_int_equal(fsess_open(c, 3, P(&a), 10, &t), 0);
    assert_int_not_equal(t->id, first_id);
    /* A second full fetch from follower 2 replaces its session. */
    assert_int_equal(fsess_open(c, 2, P(&a), 5, &s), 0);
    assert_int_equal(s->n, 5);
    assert_int_not_equal(s->id, first_id);
    assert_ptr_equal(fsess_get(c, 2), s);
    assert_int_equal(fsess_get(c, 3)->n, 10);
    fsess_drop(c, 3);
    assert_null(fsess_get(c, 3));
    drop(&a);
    fsess_cache_free(c);
}

static void test_incremental_fetch_needs_the_session_and_its_next_epoch(void **state)
{
    (void)state;
    struct fsess_cache *c;
    assert_int_equal(fsess_cache_new(1, &c), 0);
    struct fps a = make(0, 20, 10);
    struct fsess *s = NULL, *u = NULL;
    int16_t err;
    assert_int_equal(fsess_open(c, 2, P(&a), a.n, &s), 0);
    int32_t id = s->id;
    assert_int_equal(fsess_update(c, 2, id + 1, 1, NULL, 0, &u, &err), 0);
    assert_int_equal(err, KERR_FETCH_SESSION_ID_NOT_FOUND);
    assert_int_equal(fsess_update(c, 9, id, 1, NULL, 0, &u, &err), 0); /* not its session */
    assert_int_equal(err, KERR_FETCH_SESSION_ID_NOT_FOUND);
    assert_int_equal(fsess_update(c, 2, id, 2, NULL, 0, &u, &err), 0);
    assert_int_equal(err, KERR_INVALID_FETCH_SESSION_EPOCH);
    assert_int_equal(s->epoch, 1); /* refusals change nothing */
    assert_int_equal(fsess_update(c, 2, id, 1, NULL, 0, &u, &err), 0);
    assert_int_equal(err, KERR_NONE);
    assert_ptr_equal(u, s);
    assert_int_equal(s->epoch, 2);
    /* A retried epoch (the answer was lost) is refused: the follower starts over. */
    assert_int_equal(fsess_update(c, 2, id, 1, NULL, 0, &u, &err), 0);
    assert_int_equal(err, KERR_INVALID_FETCH_SESSION_EPOCH);
    drop(&a);
    fsess_cache_free(c);
}

static void test_named_partitions_update_or_join_and_are_answered(void **state)
{
    (void)state;
    struct fsess_cache *c;
    assert_int_equal(fsess_cache_new(1, &c), 0);
    struct fps a = make(0, 10, 10);
    struct fsess *s, *u;
    int16_t err;
    assert_int_equal(fsess_open(c, 2, P(&a), a.n, &s), 0);
    for (size_t i = 0; i < s->n; i++) {
        assert_true(fsess_part_news(&s->parts[i], false, 10, 0, 10)); /* never answered */
        fsess_part_sent(&s->parts[i], 10, 0, 10);
    }
    /* Nothing changed: no news, unless there are records or an error. */
    assert_false(fsess_part_news(&s->parts[4], false, 10, 0, 10));
    assert_true(fsess_part_news(&s->parts[4], true, 10, 0, 10));
    assert_true(fsess_part_news(&s->parts[4], false, 11, 0, 10)); /* HW moved */
    assert_true(fsess_part_news(&s->parts[4], false, 10, 1, 10)); /* log start moved */
    assert_true(fsess_part_news(&s->parts[4], false, 10, 0, 12)); /* log end moved */
    /* Partition 4 moves on, a new one (index 10) joins. */
    struct fps b = make(4, 1, 25);
    struct fps d = make(10, 1, 0);
    const Weir__Repl__FetchPartition *both[2] = {b.p[0], d.p[0]};
    assert_int_equal(fsess_update(c, 2, s->id, 1, both, 2, &u, &err), 0);
    assert_int_equal(err, KERR_NONE);
    assert_int_equal(u->n, 11);
    assert_int_equal(u->parts[4].fetch_offset, 25);
    assert_int_equal(u->parts[3].fetch_offset, 10);
    assert_int_equal(u->parts[10].fetch_offset, 0);
    assert_int_equal(u->parts[10].partition, 10);
    /* Named ones are answered even without news; the others are not. */
    assert_true(fsess_part_news(&u->parts[4], false, 10, 0, 10));
    assert_true(fsess_part_news(&u->parts[10], false, 10, 0, 10));
    assert_false(fsess_part_news(&u->parts[3], false, 10, 0, 10));
    /* A bad topic id ends the session. */
    b.v[0].topic_id.len = 3;
    assert_int_equal(fsess_update(c, 2, u->id, 2, P(&b), 1, &u, &err), -EINVAL);
    assert_null(fsess_get(c, 2));
    struct fsess *x;
    assert_int_equal(fsess_open(c, 2, P(&b), 1, &x), -EINVAL);
    assert_null(fsess_get(c, 2));
    drop(&a);
    drop(&b);
    drop(&d);
    fsess_cache_free(c);
}

/* 10,000 partitions in a session; an incremental fetch naming 3 of them finds
 * each by its index, and a duplicate in a full fetch is one partition. */
/* The follower's throttle flag (it asks for no records) is session state: it
 * holds over fetches that do not name the partition and changes only with
 * one that does. */
static void test_throttled_flag_is_kept_until_a_fetch_changes_it(void **state)
{
    (void)state;
    struct fsess_cache *c;
    assert_int_equal(fsess_cache_new(1, &c), 0);
    struct fps a = make(0, 3, 10);
    a.v[1].throttled = true;
    struct fsess *s = NULL, *u = NULL;
    int16_t err;
    assert_int_equal(fsess_open(c, 2, P(&a), a.n, &s), 0);
    assert_false(s->parts[0].throttled);
    assert_true(s->parts[1].throttled);
    assert_int_equal(fsess_update(c, 2, s->id, 1, NULL, 0, &u, &err), 0);
    assert_int_equal(err, KERR_NONE);
    assert_true(u->parts[1].throttled); /* not named: unchanged */
    struct fps b = make(1, 1, 10);      /* partition 1, no longer throttled */
    assert_int_equal(fsess_update(c, 2, s->id, 2, P(&b), b.n, &u, &err), 0);
    assert_int_equal(err, KERR_NONE);
    assert_false(u->parts[1].throttled);
    drop(&a);
    drop(&b);
    fsess_cache_free(c);
}

static void test_big_session_is_indexed(void **state)
{
    (void)state;
    struct fsess_cache *c;
    assert_int_equal(fsess_cache_new(1, &c), 0);
    struct fps a = make(0, 10000, 5);
    struct fsess *s, *u;
    int16_t err;
    assert_int_equal(fsess_open(c, 2, P(&a), a.n, &s), 0);
    assert_int_equal(s->n, 10000);
    struct fps b = make(9997, 3, 77);
    assert_int_equal(fsess_update(c, 2, s->id, 1, P(&b), b.n, &u, &err), 0);
    assert_int_equal(err, KERR_NONE);
    assert_int_equal(u->n, 10000);
    for (size_t i = 0; i < 10000; i++)
        assert_int_equal(u->parts[i].fetch_offset, i >= 9997 ? 77 : 5);
    struct fps d = make(0, 1, 5);
    const Weir__Repl__FetchPartition *dup[2] = {d.p[0], d.p[0]};
    assert_int_equal(fsess_open(c, 3, dup, 2, &s), 0);
    assert_int_equal(s->n, 1);
    drop(&a);
    drop(&b);
    drop(&d);
    fsess_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_fetch_opens_a_session_per_follower),
        cmocka_unit_test(test_incremental_fetch_needs_the_session_and_its_next_epoch),
        cmocka_unit_test(test_named_partitions_update_or_join_and_are_answered),
        cmocka_unit_test(test_throttled_flag_is_kept_until_a_fetch_changes_it),
        cmocka_unit_test(test_big_session_is_indexed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
