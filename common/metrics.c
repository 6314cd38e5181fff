/* metrics: the exposition writer, latency histograms, the collector registry
 * and sliced scrapes. */
#include "common/metrics.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/clock.h"

/* ---- histograms -------------------------------------------------------- */

static const double mhist_bounds_s[MHIST_NBOUNDS] = MHIST_BOUNDS;
static const uint64_t mhist_bounds_us[MHIST_NBOUNDS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

int mhist_bucket(uint64_t us)
{
    /* Sixteen bounds: a binary search is no faster than this in practice. */
    int i = 0;
    while (i < MHIST_NBOUNDS && us > mhist_bounds_us[i])
        i++;
    return i;
}

void mhist_observe_us(struct mhist *h, int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    h->buckets[mhist_bucket(v)]++;
    h->count++;
    h->sum_us += v;
}

void mhist_observe_us_atomic(struct mhist *h, int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    __atomic_fetch_add(&h->buckets[mhist_bucket(v)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_us, v, __ATOMIC_RELAXED);
    /* The writer derives _count from the buckets it read, so a scrape racing
     * this stays consistent; only _sum may be one observation off. */
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

/* ---- the writer -------------------------------------------------------- */

struct mfam {
    const char *name;
    const char *help;
    enum mw_type type;
    struct evbuffer *buf;
};

struct mw {
    struct mfam *fams; /* in order of first use */
    size_t n_fams, cap_fams;
    int32_t *slots; /* open-addressing index into fams, -1 empty */
    size_t n_slots; /* power of two, > 2 * n_fams */
    struct mfam *cur;
    char *line; /* scratch for one sample line */
    size_t line_len, line_cap;
    size_t budget; /* samples per turn; 0 = unlimited */
    size_t turn_samples;
    int err; /* first allocation failure; the scrape fails with it */
};

static uint64_t mw_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void mw_init(struct mw *w, size_t budget)
{
    memset(w, 0, sizeof(*w));
    w->budget = budget;
}

static void mw_deinit(struct mw *w)
{
    for (size_t i = 0; i < w->n_fams; i++)
        evbuffer_free(w->fams[i].buf);
    free(w->fams);
    free(w->slots);
    free(w->line);
    memset(w, 0, sizeof(*w));
}

static int mw_rehash(struct mw *w, size_t n_slots)
{
    int32_t *slots = malloc(n_slots * sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < n_slots; i++)
        slots[i] = -1;
    for (size_t f = 0; f < w->n_fams; f++) {
        size_t i = mw_hash(w->fams[f].name) & (n_slots - 1);
        while (slots[i] >= 0)
            i = (i + 1) & (n_slots - 1);
        slots[i] = (int32_t)f;
    }
    free(w->slots);
    w->slots = slots;
    w->n_slots = n_slots;
    return 0;
}

static struct mfam *mw_lookup(struct mw *w, const char *name, size_t *ret_slot)
{
    if (!w->n_slots && mw_rehash(w, 64) < 0)
        return NULL;
    size_t i = mw_hash(name) & (w->n_slots - 1);
    while (w->slots[i] >= 0) {
        struct mfam *f = &w->fams[w->slots[i]];
        if (f->name == name || strcmp(f->name, name) == 0)
            return f;
        i = (i + 1) & (w->n_slots - 1);
    }
    *ret_slot = i;
    return NULL;
}

void mw_family(struct mw *w, const char *name, enum mw_type type, const char *help)
{
    if (w->cur && (w->cur->name == name || strcmp(w->cur->name, name) == 0)) {
        assert(w->cur->type == type); /* one family, one type */
        return;
    }
    size_t slot = 0;
    struct mfam *f = mw_lookup(w, name, &slot);
    w->cur = f;
    if (f) {
        assert(f->type == type);
        return;
    }
    if (w->err || !w->n_slots)
        goto fail;
    if (w->n_fams == w->cap_fams) {
        size_t cap = w->cap_fams ? 2 * w->cap_fams : 32;
        struct mfam *fams = realloc(w->fams, cap * sizeof(*fams));
        if (!fams)
            goto fail;
        w->fams = fams;
        w->cap_fams = cap;
    }
    struct evbuffer *buf = evbuffer_new();
    if (!buf)
        goto fail;
    f = &w->fams[w->n_fams];
    *f = (struct mfam){.name = name, .help = help, .type = type, .buf = buf};
    w->slots[slot] = (int32_t)w->n_fams++;
    w->cur = f;
    /* Keep the table under half full; the family is in it either way. */
    if (2 * w->n_fams >= w->n_slots && mw_rehash(w, 2 * w->n_slots) < 0)
        w->err = -ENOMEM;
    return;
fail:
    if (!w->err)
        w->err = -ENOMEM;
}

static void line_reserve(struct mw *w, size_t more)
{
    if (w->line_len + more <= w->line_cap)
        return;
    size_t cap = w->line_cap ? w->line_cap : 256;
    while (cap < w->line_len + more)
        cap *= 2;
    char *line = realloc(w->line, cap);
    if (!line) {
        w->err = -ENOMEM;
        return;
    }
    w->line = line;
    w->line_cap = cap;
}

static void line_put(struct mw *w, const char *s, size_t n)
{
    line_reserve(w, n);
    if (w->err)
        return;
    memcpy(w->line + w->line_len, s, n);
    w->line_len += n;
}

static void line_puts(struct mw *w, const char *s)
{
    line_put(w, s, strlen(s));
}

/* A label value, escaped as text format 0.0.4 wants: \\ \" \n. */
static void line_put_escaped(struct mw *w, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '"')
            esc = "\\\"";
        else if (*s == '\n')
            esc = "\\n";
        if (!esc)
            continue;
        line_put(w, run, (size_t)(s - run));
        line_put(w, esc, 2);
        run = s + 1;
    }
    line_put(w, run, (size_t)(s - run));
}

/* Prints @v the way Prometheus reads it back exactly. */
static int fmt_value(char *out, size_t outlen, double v)
{
    if (isnan(v))
        return snprintf(out, outlen, "NaN");
    if (isinf(v))
        return snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
    if (v == trunc(v) && fabs(v) < 9.0e15)
        return snprintf(out, outlen, "%lld", (long long)v);
    int n = snprintf(out, outlen, "%.15g", v);
    if (strtod(out, NULL) != v)
        n = snprintf(out, outlen, "%.17g", v);
    return n;
}

/* name{labels[,extra_k="extra_v"]} value\n into the current family. */
static void mw_emit(struct mw *w, const char *suffix, double value, const char *const *kv,
                    size_t n_pairs, const char *extra_k, const char *extra_v)
{
    if (!w->cur) {
        if (!w->err)
            w->err = -EINVAL; /* a sample before any mw_family(): programmer error */
        return;
    }
    w->line_len = 0;
    line_puts(w, w->cur->name);
    if (suffix)
        line_puts(w, suffix);
    if (n_pairs || extra_k) {
        line_put(w, "{", 1);
        for (size_t i = 0; i < n_pairs; i++) {
            if (i)
                line_put(w, ",", 1);
            line_puts(w, kv[2 * i]);
            line_put(w, "=\"", 2);
            line_put_escaped(w, kv[2 * i + 1] ? kv[2 * i + 1] : "");
            line_put(w, "\"", 1);
        }
        if (extra_k) {
            if (n_pairs)
                line_put(w, ",", 1);
            line_puts(w, extra_k);
            line_put(w, "=\"", 2);
            line_puts(w, extra_v);
            line_put(w, "\"", 1);
        }
        line_put(w, "}", 1);
    }
    char num[40];
    num[0] = ' ';
    int n = fmt_value(num + 1, sizeof(num) - 2, value);
    num[1 + n] = '\n';
    line_put(w, num, (size_t)n + 2);
    if (w->err)
        return;
    if (evbuffer_add(w->cur->buf, w->line, w->line_len) < 0)
        w->err = -ENOMEM;
    w->turn_samples++;
}

/* Labels from a NULL-terminated va_list of pairs; at most 16 pairs. */
#define MW_MAX_PAIRS 16

static size_t collect_pairs(va_list ap, const char **kv)
{
    size_t n = 0;
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (n < MW_MAX_PAIRS) {
            kv[2 * n] = k;
            kv[2 * n + 1] = v;
            n++;
        }
    }
    return n;
}

void mw_samplev(struct mw *w, double value, const char *const *kv, size_t n_pairs)
{
    mw_emit(w, NULL, value, kv, n_pairs, NULL, NULL);
}

void mw_sample(struct mw *w, double value, ...)
{
    const char *kv[2 * MW_MAX_PAIRS];
    va_list ap;
    va_start(ap, value);
    size_t n = collect_pairs(ap, kv);
    va_end(ap);
    mw_emit(w, NULL, value, kv, n, NULL, NULL);
}

void mw_hist_raw(struct mw *w, const double *bounds_s, const uint64_t *counts, size_t n_bounds,
                 double sum_s, const char *const *kv, size_t n_pairs)
{
    assert(!w->cur || w->cur->type == MW_HISTOGRAM);
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i < n_bounds; i++) {
        cum += counts[i];
        snprintf(le, sizeof(le), "%g", bounds_s[i]);
        mw_emit(w, "_bucket", (double)cum, kv, n_pairs, "le", le);
    }
    cum += counts[n_bounds];
    mw_emit(w, "_bucket", (double)cum, kv, n_pairs, "le", "+Inf");
    mw_emit(w, "_sum", sum_s, kv, n_pairs, NULL, NULL);
    mw_emit(w, "_count", (double)cum, kv, n_pairs, NULL, NULL);
}

void mw_histv(struct mw *w, const struct mhist *h, const char *const *kv, size_t n_pairs)
{
    uint64_t counts[MHIST_NBOUNDS + 1];
    for (size_t i = 0; i <= MHIST_NBOUNDS; i++)
        counts[i] = __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
    double sum_s = (double)__atomic_load_n(&h->sum_us, __ATOMIC_RELAXED) / 1e6;
    /* _count is the sum of the buckets read, so the set is self-consistent
     * even while a worker thread observes. */
    mw_hist_raw(w, mhist_bounds_s, counts, MHIST_NBOUNDS, sum_s, kv, n_pairs);
}

void mw_hist(struct mw *w, const struct mhist *h, ...)
{
    const char *kv[2 * MW_MAX_PAIRS];
    va_list ap;
    va_start(ap, h);
    size_t n = collect_pairs(ap, kv);
    va_end(ap);
    mw_histv(w, h, kv, n);
}

bool mw_should_yield(const struct mw *w)
{
    return w->budget && w->turn_samples >= w->budget;
}

static const char *type_name(enum mw_type t)
{
    switch (t) {
    case MW_COUNTER:
        return "counter";
    case MW_GAUGE:
        return "gauge";
    case MW_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

/* HELP text escapes \\ and \n only. */
static int add_help(struct evbuffer *out, const char *help)
{
    const char *run = help;
    for (const char *s = help; *s; s++) {
        if (*s != '\\' && *s != '\n')
            continue;
        if (evbuffer_add(out, run, (size_t)(s - run)) < 0 ||
            evbuffer_add(out, *s == '\\' ? "\\\\" : "\\n", 2) < 0)
            return -ENOMEM;
        run = s + 1;
    }
    return evbuffer_add(out, run, strlen(run)) < 0 ? -ENOMEM : 0;
}

/* Moves every family, headers first, into @out. */
static int mw_finish(struct mw *w, struct evbuffer *out)
{
    if (w->err)
        return w->err;
    for (size_t i = 0; i < w->n_fams; i++) {
        struct mfam *f = &w->fams[i];
        if (evbuffer_add_printf(out, "# HELP %s ", f->name) < 0 ||
            add_help(out, f->help ? f->help : "") < 0 ||
            evbuffer_add_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type)) < 0 ||
            evbuffer_add_buffer(out, f->buf) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- registry and scrapes --------------------------------------------- */

struct collector {
    metrics_collect_fn fn; /* NULL: unregistered, awaiting compaction */
    void *ctx;
    bool owned; /* free(ctx) when it goes */
};

struct metrics_scrape {
    struct metrics *m;
    struct metrics_scrape *next; /* in m->scrapes */
    struct event *ev;
    struct mw w;
    size_t idx;      /* collector being run */
    uint64_t cursor; /* its cursor */
    int64_t start_us;
    metrics_done_fn done;
    void *arg;
};

struct metrics {
    struct event_base *base;
    struct collector *colls;
    size_t n_colls, cap_colls;
    bool dirty; /* some colls[].fn == NULL */
    size_t budget;
    struct metrics_scrape *scrapes; /* running */
    struct metrics_stats st;
    int64_t created_us;
};

int metrics_new(struct event_base *base, struct metrics **ret)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->base = base;
    m->budget = METRICS_DEFAULT_BUDGET;
    m->created_us = clock_mono_us();
    *ret = m;
    return 0;
}

static void scrape_free(struct metrics_scrape *s)
{
    struct metrics_scrape **pp = &s->m->scrapes;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    event_free(s->ev);
    mw_deinit(&s->w);
    free(s);
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    while (m->scrapes) {
        struct metrics_scrape *s = m->scrapes;
        metrics_done_fn done = s->done;
        void *arg = s->arg;
        scrape_free(s);
        done(-ECANCELED, NULL, arg);
    }
    for (size_t i = 0; i < m->n_colls; i++)
        if (m->colls[i].fn && m->colls[i].owned)
            free(m->colls[i].ctx);
    free(m->colls);
    free(m);
}

static int add_collector(struct metrics *m, metrics_collect_fn fn, void *ctx, bool owned)
{
    if (m->n_colls == m->cap_colls) {
        size_t cap = m->cap_colls ? 2 * m->cap_colls : 16;
        struct collector *c = realloc(m->colls, cap * sizeof(*c));
        if (!c)
            return -ENOMEM;
        m->colls = c;
        m->cap_colls = cap;
    }
    m->colls[m->n_colls++] = (struct collector){fn, ctx, owned};
    return 0;
}

int metrics_register(struct metrics *m, metrics_collect_fn fn, void *ctx)
{
    return add_collector(m, fn, ctx, false);
}

int metrics_register_owned(struct metrics *m, metrics_collect_fn fn, void *ctx)
{
    return add_collector(m, fn, ctx, true);
}

/* Drops unregistered entries; only while no scrape holds an index. */
static void compact(struct metrics *m)
{
    if (!m->dirty || m->scrapes)
        return;
    size_t j = 0;
    for (size_t i = 0; i < m->n_colls; i++)
        if (m->colls[i].fn)
            m->colls[j++] = m->colls[i];
    m->n_colls = j;
    m->dirty = false;
}

void metrics_unregister(struct metrics *m, metrics_collect_fn fn, void *ctx)
{
    for (size_t i = 0; i < m->n_colls; i++) {
        if (m->colls[i].fn == fn && m->colls[i].ctx == ctx) {
            m->colls[i].fn = NULL;
            if (m->colls[i].owned)
                free(m->colls[i].ctx);
            m->dirty = true;
            /* A running scrape in the middle of this collector moves on. */
            for (struct metrics_scrape *s = m->scrapes; s; s = s->next)
                if (s->idx == i)
                    s->cursor = 0;
            break;
        }
    }
    compact(m);
}

void metrics_set_budget(struct metrics *m, size_t samples_per_turn)
{
    m->budget = samples_per_turn ? samples_per_turn : 1;
}

/* Runs collectors from where @s stopped until they are done (1), the budget
 * is spent (0) or one fails (negative errno). */
static int scrape_run(struct metrics_scrape *s)
{
    struct metrics *m = s->m;
    s->w.turn_samples = 0;
    while (s->idx < m->n_colls) {
        struct collector *c = &m->colls[s->idx];
        if (c->fn) {
            if (mw_should_yield(&s->w))
                return 0;
            int r = c->fn(&s->w, c->ctx, &s->cursor);
            if (s->w.err)
                return s->w.err;
            if (r < 0)
                return r;
            if (r == METRICS_MORE && m->colls[s->idx].fn)
                return 0;
        }
        s->idx++;
        s->cursor = 0;
        s->w.cur = NULL;
    }
    return 1;
}

/* CPU time of this thread: a slice's own cost, without the time the machine
 * spent running something else in the middle of it. */
static int64_t thread_cpu_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void scrape_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct metrics_scrape *s = arg;
    struct metrics *m = s->m;
    int64_t t0 = clock_mono_us(), c0 = thread_cpu_us();
    int r = scrape_run(s);
    struct evbuffer *body = NULL;
    if (r == 1) {
        body = evbuffer_new();
        r = body ? mw_finish(&s->w, body) : -ENOMEM;
        if (r == 0)
            r = 1; /* finished: 0 below would mean "another slice" */
    }
    int64_t dt = clock_mono_us() - t0, dc = thread_cpu_us() - c0;
    m->st.slices++;
    if (dt > m->st.max_slice_us)
        m->st.max_slice_us = dt;
    if (dc > m->st.max_slice_cpu_us)
        m->st.max_slice_cpu_us = dc;
    if (r == 0) {
        /* A zero timeout, not event_active(): the loop polls sockets before
         * the next slice, so Kafka requests are served between slices. */
        static const struct timeval zero = {0, 0};
        if (evtimer_add(s->ev, &zero) == 0)
            return;
        r = -ENOMEM;
    }
    if (r == 1) {
        m->st.scrapes++;
        m->st.last_duration_us = clock_mono_us() - s->start_us;
        m->st.last_bytes = (int64_t)evbuffer_get_length(body);
        r = 0;
    } else if (body) {
        evbuffer_free(body);
        body = NULL;
    }
    metrics_done_fn done = s->done;
    void *darg = s->arg;
    scrape_free(s);
    compact(m);
    done(r, body, darg);
    if (body)
        evbuffer_free(body);
}

int metrics_scrape_start(struct metrics *m, metrics_done_fn done, void *arg,
                         struct metrics_scrape **ret)
{
    struct metrics_scrape *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ev = evtimer_new(m->base, scrape_turn, s);
    static const struct timeval zero = {0, 0};
    if (!s->ev || evtimer_add(s->ev, &zero) < 0) {
        if (s->ev)
            event_free(s->ev);
        free(s);
        return -ENOMEM;
    }
    s->m = m;
    mw_init(&s->w, m->budget);
    s->start_us = clock_mono_us();
    s->done = done;
    s->arg = arg;
    s->next = m->scrapes;
    m->scrapes = s;
    if (ret)
        *ret = s;
    return 0;
}

void metrics_scrape_cancel(struct metrics_scrape *s)
{
    if (!s)
        return;
    struct metrics *m = s->m;
    scrape_free(s);
    compact(m);
}

int metrics_scrape_sync(struct metrics *m, struct evbuffer *out)
{
    struct mw w;
    mw_init(&w, 0);
    int r = 0;
    for (size_t i = 0; i < m->n_colls && r >= 0; i++) {
        if (!m->colls[i].fn)
            continue;
        uint64_t cursor = 0;
        do {
            r = m->colls[i].fn(&w, m->colls[i].ctx, &cursor);
        } while (r == METRICS_MORE && !w.err);
        if (w.err)
            r = w.err;
        w.cur = NULL;
    }
    if (r >= 0)
        r = mw_finish(&w, out);
    mw_deinit(&w);
    return r < 0 ? r : 0;
}

void metrics_get_stats(const struct metrics *m, struct metrics_stats *ret)
{
    *ret = m->st;
}
