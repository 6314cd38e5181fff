/* pchlog: collects partition role and ISR changes and writes them one line
 * each, or counted into a partitions_changed summary when there are many (see
 * pchlog.h). Entries own copies of their strings, so a partition removed before
 * the flush leaves nothing dangling. */
#include "broker/replica/pchlog.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct pch_entry {
    struct pch c;
    char *topic, *isr; /* the copies c.topic and c.isr point to */
};

struct pchlog {
    struct pch_entry *v;
    size_t n, cap;
    int64_t window_ms;      /* start of the current window */
    size_t lines;           /* changes written one by one in it */
    size_t sum[PCH_KINDS];  /* counted for the next summary */
    bool summing;
    int64_t delay_ms;
    struct event *summary_ev;
};

static const char *const kind_event[PCH_KINDS] = {
    [PCH_LEADER] = "became_leader",     [PCH_FOLLOWER] = "became_follower",
    [PCH_ISR_SHRINK] = "isr_shrink",    [PCH_ISR_EXPAND] = "isr_expand",
    [PCH_ISR_CHANGE] = "isr_change",
};

static void write_change(const struct pch *c, enum log_level lvl)
{
    if (!log_enabled(lvl))
        return;
    const char *ev = kind_event[c->kind];
    switch (c->kind) {
    case PCH_LEADER:
        log_event(lvl, "replica", ev,
                  LOG_FIELDS(LF_STR("topic", c->topic), LF_INT("partition", c->partition),
                             LF_INT("epoch", c->epoch), LF_INT("offset", c->offset),
                             LF_INT("hw", c->hw), LF_STR("isr", c->isr)),
                  "%s-%d: leader in epoch %d at offset %" PRId64 " (HW %" PRId64 ")", c->topic,
                  (int)c->partition, (int)c->epoch, c->offset, c->hw);
        break;
    case PCH_FOLLOWER:
        log_event(lvl, "replica", ev,
                  LOG_FIELDS(LF_STR("topic", c->topic), LF_INT("partition", c->partition),
                             LF_INT("epoch", c->epoch), LF_INT("leader", c->leader),
                             LF_INT("offset", c->offset)),
                  "%s-%d: following broker %d in epoch %d from offset %" PRId64, c->topic,
                  (int)c->partition, (int)c->leader, (int)c->epoch, c->offset);
        break;
    default:
        log_event(lvl, "replica", ev,
                  LOG_FIELDS(LF_STR("topic", c->topic), LF_INT("partition", c->partition),
                             LF_INT("epoch", c->epoch),
                             LF_INT("partition_epoch", c->partition_epoch),
                             LF_STR("isr", c->isr), LF_INT("offset", c->offset),
                             LF_INT("hw", c->hw), LF_STR("cause", c->cause)),
                  "%s-%d: ISR now %d members (partition epoch %d)", c->topic, (int)c->partition,
                  (int)c->n_isr, (int)c->partition_epoch);
        break;
    }
}

static void write_summary(struct pchlog *l)
{
    const size_t *s = l->sum;
    log_event(LOG_LEVEL_INFO, "replica", "partitions_changed",
              LOG_FIELDS(LF_INT("leaders", s[PCH_LEADER]), LF_INT("followers", s[PCH_FOLLOWER]),
                         LF_INT("isr_shrinks", s[PCH_ISR_SHRINK]),
                         LF_INT("isr_expands", s[PCH_ISR_EXPAND]),
                         LF_INT("isr_changes", s[PCH_ISR_CHANGE])),
              "took up %zu leaderships and %zu followerships; %zu ISR shrinks, %zu expands, "
              "%zu other ISR changes (one line each at debug)",
              s[PCH_LEADER], s[PCH_FOLLOWER], s[PCH_ISR_SHRINK], s[PCH_ISR_EXPAND],
              s[PCH_ISR_CHANGE]);
    memset(l->sum, 0, sizeof(l->sum));
    l->summing = false;
}

static void summary_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    write_summary(arg);
}

int pchlog_new(struct event_base *base, int64_t summary_delay_ms, struct pchlog **ret)
{
    struct pchlog *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->delay_ms = summary_delay_ms;
    l->window_ms = INT64_MIN / 2;
    if (summary_delay_ms > 0 && !(l->summary_ev = evtimer_new(base, summary_cb, l))) {
        free(l);
        return -ENOMEM;
    }
    *ret = l;
    return 0;
}

static void clear_entries(struct pchlog *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].topic);
        free(l->v[i].isr);
    }
    l->n = 0;
}

void pchlog_free(struct pchlog *l)
{
    if (!l)
        return;
    if (l->summing)
        write_summary(l);
    clear_entries(l);
    free(l->v);
    if (l->summary_ev)
        event_free(l->summary_ev);
    free(l);
}

void pchlog_add(struct pchlog *l, const struct pch *c)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct pch_entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            write_change(c, LOG_LEVEL_INFO);
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    struct pch_entry *e = &l->v[l->n];
    e->c = *c;
    e->topic = strdup(c->topic ? c->topic : "");
    e->isr = strdup(c->isr ? c->isr : "");
    if (!e->topic || !e->isr) {
        free(e->topic);
        free(e->isr);
        write_change(c, LOG_LEVEL_INFO);
        return;
    }
    e->c.topic = e->topic;
    e->c.isr = e->isr;
    l->n++;
}

void pchlog_flush(struct pchlog *l, int64_t now_ms)
{
    if (l->n == 0)
        return;
    if (now_ms - l->window_ms >= PCHLOG_WINDOW_MS) {
        l->window_ms = now_ms;
        l->lines = 0;
    }
    if (!l->summing && l->lines + l->n <= PCHLOG_LINES) {
        for (size_t i = 0; i < l->n; i++)
            write_change(&l->v[i].c, LOG_LEVEL_INFO);
        l->lines += l->n;
    } else {
        for (size_t i = 0; i < l->n; i++) {
            l->sum[l->v[i].c.kind]++;
            write_change(&l->v[i].c, LOG_LEVEL_DEBUG);
        }
        l->lines = PCHLOG_LINES; /* the rest of the window is summed up too */
        bool armed = l->summing;
        l->summing = true;
        struct timeval tv = {(time_t)(l->delay_ms / 1000),
                             (suseconds_t)((l->delay_ms % 1000) * 1000)};
        if (!armed && (!l->summary_ev || evtimer_add(l->summary_ev, &tv) < 0))
            write_summary(l); /* no timer: the summary goes out now */
    }
    clear_entries(l);
}
