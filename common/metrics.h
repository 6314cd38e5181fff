/* metrics: Prometheus exposition (text format 0.0.4) built from counters that
 * modules keep in their own structs.
 *
 * There is no global registry of labelled series. A module counts in plain
 * integers (or a struct mhist) inside its own state, on its own thread, with
 * no locks; at scrape time the collectors registered with metrics_register()
 * are called and write what they hold through a writer (struct mw):
 *
 *     static int topic_collect(struct mw *w, void *ctx, uint64_t *cursor)
 *     {
 *         mw_family(w, "weir_topic_bytes_in_total", MW_COUNTER,
 *                   "Bytes appended to the topic's partitions by produce.");
 *         for (; *cursor < n_topics; (*cursor)++) {
 *             if (mw_should_yield(w))
 *                 return METRICS_MORE;    // called again on a later loop turn
 *             mw_sample(w, (double)t[*cursor].bytes_in, "topic", t[*cursor].name, NULL);
 *         }
 *         return 0;
 *     }
 *
 * A scrape runs on the event loop in slices: each loop turn writes at most
 * about mw budget samples, then yields, so a scrape over 10,000 partitions does
 * not stall produce and fetch. A collector that can write many samples checks
 * mw_should_yield() between samples and returns METRICS_MORE with its own
 * position saved in *cursor (0 on the first call of every scrape); it is called
 * again with the same cursor on a later turn. The state it walks may change
 * between turns: the cursor is the collector's business (an index that skips
 * or repeats one item after a deletion is acceptable; a dangling pointer is
 * not).
 *
 * Families: every sample belongs to the family named by the last mw_family()
 * call. Several collectors (or several slices) may add samples to the same
 * family; the writer keeps one buffer per family and emits each family's
 * # HELP / # TYPE once, with all its samples together, in the order families
 * were first named. A family named again with another type is a programmer
 * error (assert).
 *
 * Names follow Prometheus conventions: the `weir_` prefix, `_total` on
 * counters, base units (`_seconds`, `_bytes`). Label names are [a-zA-Z_]
 * identifiers chosen by the code; label values are escaped here (\\, \", \n).
 *
 * Everything here runs on the thread of the event_base except
 * mhist_observe_us_atomic(), which a worker thread may call while the loop
 * thread scrapes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct event_base;
struct metrics;
struct mw;

/* ---- latency histograms ---------------------------------------------- */

/* Upper bounds, in seconds: 100 µs to 10 s, then +Inf. */
#define MHIST_BOUNDS                                                                               \
    {                                                                                              \
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,  \
            5, 10                                                                                  \
    }
#define MHIST_NBOUNDS 16

/* A fixed-bucket latency histogram in microseconds, exported in seconds.
 * buckets[i] counts observations <= bound i and > bound i-1 (not cumulative);
 * buckets[MHIST_NBOUNDS] counts those above 10 s. Zero-initialise to use. */
struct mhist {
    uint64_t buckets[MHIST_NBOUNDS + 1];
    uint64_t count;
    uint64_t sum_us;
};

/* The bucket an observation of @us microseconds goes into. */
int mhist_bucket(uint64_t us);
/* Records one observation; loop thread only. Negative values count as 0. */
void mhist_observe_us(struct mhist *h, int64_t us);
/* The same, safe to call from any thread while the loop thread scrapes
 * (relaxed atomic adds; the writer reads every field with atomic loads). A
 * histogram updated this way must only be updated this way. */
void mhist_observe_us_atomic(struct mhist *h, int64_t us);

/* ---- the exposition writer ------------------------------------------- */

enum mw_type {
    MW_COUNTER,
    MW_GAUGE,
    MW_HISTOGRAM,
};

/* Return from a collector when it stopped early on mw_should_yield() and wants
 * to be called again (0 means done for this scrape, a negative errno fails
 * the scrape). */
#define METRICS_MORE 1

/* Selects (creating on first use) the family @name for the samples that follow.
 * @name and @help are borrowed until the end of the scrape (string literals in
 * practice). */
void mw_family(struct mw *w, const char *name, enum mw_type type, const char *help);

/* One sample of the current family: `name{k1="v1",...} value`. Labels are
 * pairs of NUL-terminated strings, then NULL. Integral values print without a
 * fraction; NaN and infinities as NaN, +Inf, -Inf. */
void mw_sample(struct mw *w, double value, ...) __attribute__((sentinel));
/* The same with @n_pairs label pairs in @kv (k0, v0, k1, v1, ...). */
void mw_samplev(struct mw *w, double value, const char *const *kv, size_t n_pairs);

/* A histogram sample set of the current family (which must be MW_HISTOGRAM):
 * `_bucket{...,le="..."}` cumulative for every bound and +Inf, `_sum` in
 * seconds, `_count`. Reads @h with atomic loads. */
void mw_hist(struct mw *w, const struct mhist *h, ...) __attribute__((sentinel));
void mw_histv(struct mw *w, const struct mhist *h, const char *const *kv, size_t n_pairs);

/* A histogram from other bounds (e.g. looplag's powers of two): @counts has
 * @n_bounds + 1 non-cumulative entries, the last above the last bound;
 * @bounds_s in seconds, ascending. */
void mw_hist_raw(struct mw *w, const double *bounds_s, const uint64_t *counts, size_t n_bounds,
                 double sum_s, const char *const *kv, size_t n_pairs);

/* True when this loop turn's sample budget is spent: save the cursor and
 * return METRICS_MORE. Always false outside a sliced scrape. */
bool mw_should_yield(const struct mw *w);

/* ---- the registry and scrapes ---------------------------------------- */

/* A collector: writes samples through @w, resuming from *@cursor (0 on the
 * first call of each scrape). Returns 0 when done, METRICS_MORE to be called
 * again on a later loop turn, or a negative errno. */
typedef int (*metrics_collect_fn)(struct mw *w, void *ctx, uint64_t *cursor);

/* Samples a scrape writes per loop turn unless metrics_set_budget() says
 * otherwise (a few hundred microseconds of work). */
#define METRICS_DEFAULT_BUDGET 500

/* Borrows @base, which must outlive the registry. -ENOMEM. */
int metrics_new(struct event_base *base, struct metrics **ret);
/* Cancels running scrapes (their done callbacks get -ECANCELED). NULL-safe. */
void metrics_free(struct metrics *m);

/* Adds a collector; collectors run in registration order. @ctx is borrowed
 * and must stay valid until metrics_unregister() or metrics_free(). -ENOMEM. */
int metrics_register(struct metrics *m, metrics_collect_fn fn, void *ctx);
/* The same, and the registry free()s @ctx at metrics_free() (or when
 * unregistered). */
int metrics_register_owned(struct metrics *m, metrics_collect_fn fn, void *ctx);
/* Removes the collector registered with (@fn, @ctx); a running scrape skips it
 * from then on. No-op when absent. */
void metrics_unregister(struct metrics *m, metrics_collect_fn fn, void *ctx);

/* Samples per loop turn (>= 1); for tests and benchmarks. */
void metrics_set_budget(struct metrics *m, size_t samples_per_turn);

/* Called once per scrape: @status 0 with @body holding the whole exposition
 * (the callee may drain or move it; it is freed afterwards), or a negative
 * errno with @body NULL. */
typedef void (*metrics_done_fn)(int status, struct evbuffer *body, void *arg);

struct metrics_scrape;

/* Starts a scrape that runs over later loop turns and ends with @done.
 * Returns a handle to cancel it (then @done is not called). -ENOMEM. */
int metrics_scrape_start(struct metrics *m, metrics_done_fn done, void *arg,
                         struct metrics_scrape **ret);
void metrics_scrape_cancel(struct metrics_scrape *s); /* NULL-safe */

/* Runs a whole scrape now, in one go, into @out (tests, tools). */
int metrics_scrape_sync(struct metrics *m, struct evbuffer *out);

/* Counters of the scrapes themselves (also exported as weir_metrics_*). */
struct metrics_stats {
    uint64_t scrapes;         /* completed */
    uint64_t slices;          /* loop turns spent in scrapes */
    int64_t last_duration_us; /* start to done, last scrape */
    int64_t last_bytes;       /* body size, last scrape */
    int64_t max_slice_us;     /* longest single loop turn of any scrape (wall) */
    int64_t max_slice_cpu_us; /* the same in this thread's CPU time: the work
                                 itself, without preemption by other processes */
};
void metrics_get_stats(const struct metrics *m, struct metrics_stats *ret);

/* ---- process-level collector ----------------------------------------- */

struct looplag;

/* Registers the collector every Weir process exports: build info
 * (weir_build_info{version,revision,role}), uptime, resident memory, open
 * file descriptors, the event-loop lag histogram of @lag (may be NULL) and
 * the scrape statistics above. @role ("broker", "coordinator"), @version and
 * @revision (common/version.h's WEIR_VERSION and WEIR_GIT_REVISION, which only
 * programs see) are borrowed: string literals in practice. */
int metrics_register_process(struct metrics *m, const char *role, const char *version,
                             const char *revision, struct looplag *lag);
