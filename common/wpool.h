/* wpool: a small pool of worker threads for calls that may block (fsync, unlink of
 * large files, directory scans), so that nothing blocks the event loop.
 *
 * A job's work function runs on a worker thread; its done function then runs on
 * the event loop thread of the event_base the pool was created with. Jobs start in
 * submission order; with more than one thread they may finish in any order. The
 * work function must only touch memory the job owns (it must not call into
 * single-threaded objects such as a plog). */
#pragma once

struct event_base;
struct wpool;

typedef void (*wpool_work_fn)(void *arg);
typedef void (*wpool_done_fn)(void *arg);

/* Starts @nthreads (>= 1) workers. Borrows @base, which must outlive the pool. */
int wpool_new(struct event_base *base, int nthreads, struct wpool **ret);
/* Waits for every submitted job's work to finish and runs the pending done
 * callbacks, then stops the threads. NULL-safe. */
void wpool_free(struct wpool *p);
/* Queue a job. @done may be NULL. -ENOMEM, or -ESHUTDOWN after wpool_free began. */
int wpool_submit(struct wpool *p, wpool_work_fn work, wpool_done_fn done, void *arg);
/* Block the calling (loop) thread until every job submitted so far has run both
 * its work and its done function. For shutdown and tests. */
void wpool_drain(struct wpool *p);
/* Jobs submitted but whose done function has not run yet. */
int wpool_pending(const struct wpool *p);
