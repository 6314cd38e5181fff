/* pchlog: the lines a broker writes when its partition replicas change role
 * (leader, follower) or their ISR (as leader). A few changes are a line each;
 * many at once — a start-up, the failover of a broker with thousands of
 * partitions, spread over several metadata passes — are summed up: at most
 * PCHLOG_LINES changes per PCHLOG_WINDOW_MS get a line of their own, the rest
 * are counted (their own lines at debug) and go out as one partitions_changed
 * line a short delay after the first of them.
 *
 * Changes are collected with pchlog_add() while a metadata pass or an
 * AlterPartition answer is applied, and written by pchlog_flush() once it is
 * done, when the number of changes is known. Loop thread only. */
#pragma once

#include <stdint.h>

struct event_base;
struct pchlog;

#define PCHLOG_LINES     20
#define PCHLOG_WINDOW_MS 10000

enum pch_kind {
    PCH_LEADER,     /* became_leader */
    PCH_FOLLOWER,   /* became_follower */
    PCH_ISR_SHRINK, /* isr_shrink */
    PCH_ISR_EXPAND, /* isr_expand */
    PCH_ISR_CHANGE, /* isr_change: other members, same size */
    PCH_KINDS,
};

/* One change; every pointer is borrowed for the call (pchlog_add copies). */
struct pch {
    enum pch_kind kind;
    const char *topic;
    int32_t partition;
    int32_t epoch;           /* leader epoch */
    int32_t partition_epoch; /* ISR changes */
    int32_t leader;          /* PCH_FOLLOWER: the leader followed (-1: none) */
    int64_t offset;          /* the replica's log end offset */
    int64_t hw;
    const char *isr;         /* "1,2,3" */
    int32_t n_isr;
    const char *cause;       /* ISR changes: "leader_request" or "coordinator" */
};

/* @summary_delay_ms: how long counted changes wait for their summary (a timer
 * on @base; 0 writes it at the flush that counted them). -ENOMEM. */
int pchlog_new(struct event_base *base, int64_t summary_delay_ms, struct pchlog **ret);
/* Writes a summary still pending, then frees. NULL-safe. */
void pchlog_free(struct pchlog *l);

/* Collects @c for the next flush; out of memory it is written at once. */
void pchlog_add(struct pchlog *l, const struct pch *c);
/* Writes (or counts) the changes collected since the last flush; @now_ms is
 * the monotonic clock. */
void pchlog_flush(struct pchlog *l, int64_t now_ms);
