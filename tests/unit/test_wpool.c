/* Tests for common/wpool: work runs on worker threads and done on the loop
 * thread, every job completes exactly once, drain and free finish outstanding
 * jobs, submissions during free are refused, and jobs start in order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/wpool.h"

struct fixture {
    struct event_base *base;
    struct event *tick; /* wakes the loop periodically so run_until can time out */
    pthread_t loop_thread;
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
    f->loop_thread = pthread_self();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    event_free(f->tick);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Run the loop until *counter reaches @target, failing after a few seconds. */
static void run_until(struct fixture *f, const int *counter, int target)
{
    int64_t deadline = clock_mono_ms() + 10000;
    while (*counter < target) {
        if (clock_mono_ms() > deadline)
            fail_msg("timed out: %d of %d completions", *counter, target);
        event_base_loop(f->base, EVLOOP_ONCE);
    }
}

struct job {
    atomic_int work_runs;
    int done_runs;
    bool work_seen_by_done; /* work had finished when done ran */
    pthread_t work_thread;
    pthread_t done_thread;
    int order;
    int sleep_us;
    int *done_total;
};

static atomic_int work_order;

static void job_work(void *arg)
{
    struct job *j = arg;
    j->order = atomic_fetch_add(&work_order, 1);
    j->work_thread = pthread_self();
    if (j->sleep_us)
        usleep((useconds_t)j->sleep_us);
    atomic_fetch_add(&j->work_runs, 1);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    j->done_thread = pthread_self();
    j->work_seen_by_done = atomic_load(&j->work_runs) == 1;
    j->done_runs++;
    if (j->done_total)
        (*j->done_total)++;
}

static struct job *jobs_new(int n, int *done_total)
{
    struct job *jobs = calloc((size_t)n, sizeof(*jobs));
    assert_non_null(jobs);
    for (int i = 0; i < n; i++)
        jobs[i].done_total = done_total;
    return jobs;
}

static void assert_all_once(const struct job *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        if (atomic_load(&jobs[i].work_runs) != 1 || jobs[i].done_runs != 1)
            fail_msg("job %d: work %d done %d", i, atomic_load(&jobs[i].work_runs),
                     jobs[i].done_runs);
        assert_true(jobs[i].work_seen_by_done);
    }
}

static void test_wpool_work_on_worker_done_on_loop_thread(void **state)
{
    struct fixture *f = *state;
    struct wpool *p;
    assert_int_equal(wpool_new(f->base, 2, &p), 0);
    int total = 0;
    struct job *jobs = jobs_new(10, &total);
    for (int i = 0; i < 10; i++)
        assert_int_equal(wpool_submit(p, job_work, job_done, &jobs[i]), 0);
    run_until(f, &total, 10);
    assert_all_once(jobs, 10);
    for (int i = 0; i < 10; i++) {
        assert_false(pthread_equal(jobs[i].work_thread, f->loop_thread));
        assert_true(pthread_equal(jobs[i].done_thread, f->loop_thread));
    }
    assert_int_equal(wpool_pending(p), 0);
    wpool_free(p);
    free(jobs);
}

static void test_wpool_thousand_jobs_complete_exactly_once(void **state)
{
    struct fixture *f = *state;
    struct wpool *p;
    assert_int_equal(wpool_new(f->base, 4, &p), 0);
    enum { N = 1000 };
    int total = 0;
    struct job *jobs = jobs_new(N, &total);
    for (int i = 0; i < N; i++)
        assert_int_equal(wpool_submit(p, job_work, job_done, &jobs[i]), 0);
    /* done functions run only on this thread, so none has run yet. */
    assert_int_equal(wpool_pending(p), N);
    assert_int_equal(total, 0);
    run_until(f, &total, N);
    assert_int_equal(total, N);
    assert_all_once(jobs, N);
    assert_int_equal(wpool_pending(p), 0);
    wpool_free(p);
    free(jobs);
}

static void test_wpool_drain_runs_work_and_done_inline(void **state)
{
    struct fixture *f = *state;
    struct wpool *p;
    assert_int_equal(wpool_new(f->base, 3, &p), 0);
    enum { N = 200 };
    int total = 0;
    struct job *jobs = jobs_new(N, &total);
    struct job *nodone = jobs_new(N, NULL);
    for (int i = 0; i < N; i++) {
        jobs[i].sleep_us = 100;
        nodone[i].sleep_us = 100;
        assert_int_equal(wpool_submit(p, job_work, job_done, &jobs[i]), 0);
        assert_int_equal(wpool_submit(p, job_work, NULL, &nodone[i]), 0);
    }
    /* Jobs without a done function complete on the worker, so may be gone. */
    assert_in_range(wpool_pending(p), N, 2 * N);
    /* No event loop iteration: drain itself must run the done functions. */
    wpool_drain(p);
    assert_int_equal(total, N);
    assert_all_once(jobs, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&nodone[i].work_runs), 1);
        assert_int_equal(nodone[i].done_runs, 0);
        assert_true(pthread_equal(jobs[i].done_thread, f->loop_thread));
    }
    assert_int_equal(wpool_pending(p), 0);
    wpool_drain(p); /* nothing outstanding: returns at once */

    /* The pool keeps working after a drain, and a stale wakeup is harmless. */
    struct job *more = jobs_new(5, &total);
    for (int i = 0; i < 5; i++)
        assert_int_equal(wpool_submit(p, job_work, job_done, &more[i]), 0);
    run_until(f, &total, N + 5);
    assert_all_once(more, 5);
    wpool_free(p);
    free(more);
    free(nodone);
    free(jobs);
}

static void test_wpool_free_completes_pending_jobs(void **state)
{
    struct fixture *f = *state;
    struct wpool *p;
    assert_int_equal(wpool_new(f->base, 2, &p), 0);
    enum { N = 50 };
    int total = 0;
    struct job *jobs = jobs_new(N, &total);
    for (int i = 0; i < N; i++) {
        jobs[i].sleep_us = 500;
        assert_int_equal(wpool_submit(p, job_work, job_done, &jobs[i]), 0);
    }
    wpool_free(p); /* most jobs have not even started */
    assert_int_equal(total, N);
    assert_all_once(jobs, N);
    for (int i = 0; i < N; i++)
        assert_true(pthread_equal(jobs[i].done_thread, f->loop_thread));
    wpool_free(NULL);
    free(jobs);
}

/* A done function that submits a follow-up job into the same pool. */
struct chain {
    struct wpool *p;
    int submit_rc;
    bool submitted;
    struct job follow;
};

static void chain_done(void *arg)
{
    struct chain *c = arg;
    c->submit_rc = wpool_submit(c->p, job_work, job_done, &c->follow);
    c->submitted = true;
}

static void noop_work(void *arg)
{
    (void)arg;
}

static void test_wpool_submit_during_free_is_eshutdown(void **state)
{
    struct fixture *f = *state;
    struct wpool *p;
    assert_int_equal(wpool_new(f->base, 1, &p), 0);

    /* Outside free, submitting from a done function works and drain waits for
     * the follow-up too. */
    int total = 0;
    struct chain c1 = {.p = p};
    c1.follow.done_total = &total;
    assert_int_equal(wpool_submit(p, noop_work, chain_done, &c1), 0);
    wpool_drain(p);
    assert_true(c1.submitted);
    assert_int_equal(c1.submit_rc, 0);
    assert_int_equal(total, 1);
    assert_int_equal(c1.follow.done_runs, 1);

    /* During free the same submission is refused, and the follow-up never runs. */
    struct chain c2 = {.p = p};
    c2.follow.done_total = &total;
    assert_int_equal(wpool_submit(p, noop_work, chain_done, &c2), 0);
    wpool_free(p);
    assert_true(c2.submitted);
    assert_int_equal(c2.submit_rc, -ESHUTDOWN);
    assert_int_equal(atomic_load(&c2.follow.work_runs), 0);
    assert_int_equal(c2.follow.done_runs, 0);
}

static void test_wpool_jobs_start_in_submission_order(void **state)
{
    struct fixture *f = *state;
    struct wpool *p;
    assert_int_equal(wpool_new(f->base, 1, &p), 0);
    enum { N = 100 };
    int total = 0;
    struct job *jobs = jobs_new(N, &total);
    atomic_store(&work_order, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(wpool_submit(p, job_work, job_done, &jobs[i]), 0);
    run_until(f, &total, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(jobs[i].order, i);
    wpool_free(p);
    free(jobs);
}

/* A done function that drains the pool must not wait for itself. */
struct drainer {
    struct wpool *p;
    struct job *others;
    int n;
    bool others_done_after_drain;
};

static void drainer_done(void *arg)
{
    struct drainer *d = arg;
    wpool_drain(d->p);
    d->others_done_after_drain = true;
    for (int i = 0; i < d->n; i++)
        if (d->others[i].done_runs != 1)
            d->others_done_after_drain = false;
}

static void test_wpool_drain_from_done_function(void **state)
{
    struct fixture *f = *state;
    struct wpool *p;
    assert_int_equal(wpool_new(f->base, 2, &p), 0);
    int total = 0;
    struct job *jobs = jobs_new(20, &total);
    struct drainer d = {.p = p, .others = jobs, .n = 20};
    assert_int_equal(wpool_submit(p, noop_work, drainer_done, &d), 0);
    for (int i = 0; i < 20; i++) {
        jobs[i].sleep_us = 200;
        assert_int_equal(wpool_submit(p, job_work, job_done, &jobs[i]), 0);
    }
    wpool_drain(p);
    assert_true(d.others_done_after_drain);
    assert_all_once(jobs, 20);
    wpool_free(p);
    free(jobs);
}

static void test_wpool_new_rejects_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct wpool *p = (struct wpool *)0x1;
    assert_int_equal(wpool_new(f->base, 0, &p), -EINVAL);
    assert_int_equal(wpool_new(NULL, 1, &p), -EINVAL);
    assert_ptr_equal(p, (struct wpool *)0x1); /* untouched on error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wpool_work_on_worker_done_on_loop_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wpool_thousand_jobs_complete_exactly_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wpool_drain_runs_work_and_done_inline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wpool_free_completes_pending_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wpool_submit_during_free_is_eshutdown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wpool_jobs_start_in_submission_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wpool_drain_from_done_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wpool_new_rejects_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
