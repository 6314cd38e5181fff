/* broker_metrics: the broker's Prometheus collectors (common/metrics.h) over
 * the counters its modules keep — the Kafka front end (kstats.h), replication
 * (repl.h: per-replica traffic, ISR changes, parked waits), storage (log
 * sizes, descriptor cache), the worker pool and the consumer groups this
 * broker coordinates (lag.h). docs/metrics.md lists every family with its
 * labels, cardinality and what to alert on.
 *
 * The partition walk covers the cluster's partitions in the broker's metadata
 * (for the offline count) and the replicas hosted here, at most
 * BM_PARTS_PER_TURN per loop turn, summing per topic; the sums of a topic in
 * progress wait in a walk slot between turns (one per concurrent scrape, at
 * most BM_WALKS; a slot untouched for a second belongs to a cancelled scrape
 * and is taken over; a scrape that finds none free fails with -EBUSY). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "broker/replica/repl.h"

struct broker_ctx;
struct kserver;
struct wpool;
struct metrics;
struct broker_metrics;

#define BM_PARTS_PER_TURN 250
#define BM_WALKS          4

/* Per-topic sums over the replicas hosted here. */
struct bm_topic_acc {
    struct repl_traffic traffic;
    int64_t log_size_bytes;
    int32_t replicas;
    int32_t leaders;
    int64_t max_follower_lag; /* over the partitions led here; -1: leads none */
};

/* Broker-wide counts. */
struct bm_totals {
    int32_t replicas;         /* partition replicas hosted (Kafka's PartitionCount) */
    int32_t leaders;          /* ... of which led here (LeaderCount) */
    int32_t under_replicated; /* led here, ISR smaller than the replica set */
    int32_t under_min_isr;    /* led here, ISR smaller than min.insync.replicas */
    int32_t at_min_isr;       /* led here, ISR exactly min.insync.replicas */
    int32_t offline;          /* in the whole cluster: no leader */
    int64_t max_follower_lag; /* over every partition led here; 0 when none */
};

void bm_topic_acc_init(struct bm_topic_acc *t);
/* Fold one hosted replica into its topic's sums and the broker's counts. */
void bm_fold(struct bm_topic_acc *t, struct bm_totals *tot, const struct repl_part_view *v);

/* Borrows @b, @srv and @pool (may be NULL), which must outlive it. -ENOMEM. */
int broker_metrics_new(struct broker_ctx *b, struct kserver *srv, struct wpool *pool,
                       struct broker_metrics **ret);
void broker_metrics_free(struct broker_metrics *bm); /* NULL-safe */

/* Registers the broker's collectors (b->kstats' too) with @m. -ENOMEM. */
int broker_metrics_register(struct broker_metrics *bm, struct metrics *m);
void broker_metrics_unregister(struct broker_metrics *bm, struct metrics *m);
