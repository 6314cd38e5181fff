/* wpool: worker threads for blocking calls, with completions delivered on the
 * event loop thread.
 *
 * Submitted jobs wait in a FIFO guarded by one mutex; workers take them in order,
 * run work() without the lock, and append them to a completion list. The first
 * completion after the loop last looked writes to an eventfd that a libevent
 * event on the pool's base watches; its callback runs the done() functions on the
 * loop thread. Workers never touch libevent, so the base needs no thread support.
 *
 * pending counts jobs whose done() has not started yet. It is decremented just
 * before done() runs, so a done() that drains the pool does not wait for itself.
 */
#include "common/wpool.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct wpool_job {
    wpool_work_fn work;
    wpool_done_fn done;
    void *arg;
    struct wpool_job *next;
};

struct job_list {
    struct wpool_job *head, *tail;
};

struct wpool {
    struct event_base *base;
    struct event *ev;
    int efd;

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* queue became non-empty, or stopping */
    pthread_cond_t done_cv; /* a job's work finished (for drain) */
    struct job_list queue;  /* submitted, work not started */
    struct job_list done;   /* work finished, done() not run */
    bool notified;          /* eventfd written since the loop last took `done` */
    bool stopping;          /* workers exit once the queue is empty */
    atomic_bool shutdown;   /* wpool_free began: submissions refused */
    atomic_int pending;

    int nthreads;
    pthread_t *threads;
};

static void list_push(struct job_list *l, struct wpool_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static struct wpool_job *list_pop(struct job_list *l)
{
    struct wpool_job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
    }
    return j;
}

static void *worker_main(void *arg)
{
    struct wpool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->queue.head && !p->stopping)
            pthread_cond_wait(&p->work_cv, &p->mu);
        struct wpool_job *j = list_pop(&p->queue);
        pthread_mutex_unlock(&p->mu);
        if (!j)
            return NULL; /* stopping and nothing left */

        j->work(j->arg);

        bool kick = false;
        pthread_mutex_lock(&p->mu);
        if (j->done) {
            list_push(&p->done, j);
            kick = !p->notified;
            p->notified = true;
        } else {
            /* Nothing to run on the loop: complete it here and skip a wakeup. */
            atomic_fetch_sub(&p->pending, 1);
            free(j);
        }
        pthread_cond_broadcast(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
        if (kick) {
            uint64_t one = 1;
            /* Fails only with EAGAIN when the counter is saturated, and then the
             * loop is already due to wake. */
            ssize_t n = write(p->efd, &one, sizeof(one));
            (void)n;
        }
    }
}

/* Run done() for every completed job, one at a time so that a done() that
 * submits, drains or inspects the pool sees consistent state. Loop thread only. */
static void run_completions(struct wpool *p)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        struct wpool_job *j = list_pop(&p->done);
        if (!j)
            p->notified = false;
        pthread_mutex_unlock(&p->mu);
        if (!j)
            return;
        atomic_fetch_sub(&p->pending, 1);
        j->done(j->arg);
        free(j);
    }
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
    struct wpool *p = arg;
    uint64_t cnt;
    ssize_t n = read(fd, &cnt, sizeof(cnt)); /* reset the counter; EAGAIN is fine */
    (void)n;
    run_completions(p);
}

static void stop_threads(struct wpool *p, int n)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
}

static void destroy(struct wpool *p)
{
    if (p->ev)
        event_free(p->ev);
    if (p->efd >= 0)
        close(p->efd);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int wpool_new(struct event_base *base, int nthreads, struct wpool **ret)
{
    if (!base || nthreads < 1)
        return -EINVAL;
    struct wpool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->base = base;
    p->efd = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->pending, 0);
    atomic_init(&p->shutdown, false);

    int rc;
    p->threads = calloc((size_t)nthreads, sizeof(*p->threads));
    if (!p->threads) {
        rc = -ENOMEM;
        goto fail;
    }
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        rc = -errno;
        goto fail;
    }
    p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_eventfd, p);
    if (!p->ev || event_add(p->ev, NULL) < 0) {
        rc = -ENOMEM;
        goto fail;
    }

    /* Workers inherit a fully blocked signal mask so process signals are always
     * delivered to the loop thread, where libevent handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = 0;
    rc = 0;
    for (; started < nthreads; started++) {
        int err = pthread_create(&p->threads[started], NULL, worker_main, p);
        if (err) {
            rc = -err;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        stop_threads(p, started);
        goto fail;
    }
    p->nthreads = nthreads;
    *ret = p;
    return 0;

fail:
    destroy(p);
    return rc;
}

int wpool_submit(struct wpool *p, wpool_work_fn work, wpool_done_fn done, void *arg)
{
    assert(p && work);
    if (atomic_load(&p->shutdown))
        return -ESHUTDOWN;
    struct wpool_job *j = malloc(sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->work = work;
    j->done = done;
    j->arg = arg;
    atomic_fetch_add(&p->pending, 1);
    pthread_mutex_lock(&p->mu);
    list_push(&p->queue, j);
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void wpool_drain(struct wpool *p)
{
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) > 0) {
        if (p->done.head) {
            pthread_mutex_unlock(&p->mu);
            run_completions(p);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        pthread_cond_wait(&p->done_cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

int wpool_pending(const struct wpool *p)
{
    return atomic_load(&p->pending);
}

void wpool_free(struct wpool *p)
{
    if (!p)
        return;
    atomic_store(&p->shutdown, true);
    wpool_drain(p);
    stop_threads(p, p->nthreads);
    destroy(p);
}
