/* broker_metrics: the broker's collectors — front end, replication, storage,
 * worker pool, consumer-group lag. */
#include "broker/broker_metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/group/gstore.h"
#include "broker/group/lag.h"
#include "broker/group/offset_map.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kstats.h"
#include "broker/kafka/server.h"
#include "broker/storage/logmgr.h"
#include "common/clock.h"
#include "common/meta/state.h"
#include "common/metrics.h"
#include "common/purgatory.h"
#include "common/wpool.h"

/* A running scrape touches its slot every loop turn: one untouched this long
 * belongs to a scrape that was cancelled (its HTTP client went away) and is
 * taken over when no slot is free. */
#define WALK_STALE_US (1000LL * 1000)

/* One scrape's position in the partition walk and the sums it carries
 * between loop turns. */
struct bm_walk {
    bool used;
    uint32_t gen;
    int64_t touched_us;
    /* partitions_collect */
    uint8_t topic_id[CSTATE_UUID_LEN]; /* the topic walked; acc holds its sums */
    int32_t next_part;
    struct bm_topic_acc acc;
    struct bm_totals tot;
    /* groups_collect */
    uint64_t group; /* index in the offset map's order */
    size_t row;     /* next entry of that group */
    int64_t lag_sum; /* of the group's rows so far */
};

struct broker_metrics {
    struct broker_ctx *b;
    struct kserver *srv;
    struct wpool *pool;
    struct bm_walk walks[BM_WALKS];
    uint32_t gen;
};

/* ---- aggregation ----------------------------------------------------------------- */

void bm_topic_acc_init(struct bm_topic_acc *t)
{
    memset(t, 0, sizeof(*t));
    t->max_follower_lag = -1;
}

void bm_fold(struct bm_topic_acc *t, struct bm_totals *tot, const struct repl_part_view *v)
{
    t->traffic.bytes_in += v->traffic.bytes_in;
    t->traffic.records_in += v->traffic.records_in;
    t->traffic.bytes_out += v->traffic.bytes_out;
    t->traffic.records_out += v->traffic.records_out;
    t->traffic.repl_bytes_out += v->traffic.repl_bytes_out;
    t->log_size_bytes += v->log_size_bytes;
    t->replicas++;
    tot->replicas++;
    if (!v->leader)
        return;
    t->leaders++;
    tot->leaders++;
    if (v->max_follower_lag > t->max_follower_lag)
        t->max_follower_lag = v->max_follower_lag;
    if (v->max_follower_lag > tot->max_follower_lag)
        tot->max_follower_lag = v->max_follower_lag;
    if (v->n_isr < v->n_replicas)
        tot->under_replicated++;
    if (v->n_isr < v->min_isr)
        tot->under_min_isr++;
    else if (v->n_isr == v->min_isr)
        tot->at_min_isr++;
}

/* ---- the partition walk ------------------------------------------------------------ */

static struct bm_walk *walk_take(struct broker_metrics *bm, uint64_t *cursor)
{
    int64_t now = clock_mono_us();
    if (*cursor) {
        size_t i = (size_t)(*cursor & 0xff) - 1;
        uint32_t gen = (uint32_t)(*cursor >> 8);
        if (i >= BM_WALKS || !bm->walks[i].used || bm->walks[i].gen != gen)
            return NULL;
        bm->walks[i].touched_us = now;
        return &bm->walks[i];
    }
    struct bm_walk *w = NULL;
    for (size_t i = 0; i < BM_WALKS; i++) {
        struct bm_walk *c = &bm->walks[i];
        if (!c->used) {
            w = c;
            break;
        }
        if (now - c->touched_us >= WALK_STALE_US && (!w || c->touched_us < w->touched_us))
            w = c; /* the longest abandoned */
    }
    if (w) {
        size_t i = (size_t)(w - bm->walks);
        memset(w, 0, sizeof(*w));
        w->used = true;
        w->gen = ++bm->gen & 0xffffffu;
        w->touched_us = now;
        bm_topic_acc_init(&w->acc);
        *cursor = ((uint64_t)w->gen << 8) | (uint64_t)(i + 1);
        return w;
    }
    return NULL;
}

static void emit_topic(struct mw *w, const char *topic, const struct bm_topic_acc *a)
{
    mw_family(w, "weir_topic_bytes_in_total", MW_COUNTER,
              "Record batch bytes appended by produce to the topic's partitions led here, as "
              "stored (after any recompression).");
    mw_sample(w, (double)a->traffic.bytes_in, "topic", topic, NULL);
    mw_family(w, "weir_topic_records_in_total", MW_COUNTER,
              "Records appended by produce to the topic's partitions led here.");
    mw_sample(w, (double)a->traffic.records_in, "topic", topic, NULL);
    mw_family(w, "weir_topic_bytes_out_total", MW_COUNTER,
              "Record batch bytes sent to consumers by Fetch from the topic's partitions.");
    mw_sample(w, (double)a->traffic.bytes_out, "topic", topic, NULL);
    mw_family(w, "weir_topic_records_out_total", MW_COUNTER,
              "Offsets spanned by the record batches sent to consumers (records, for a log "
              "that is not compacted).");
    mw_sample(w, (double)a->traffic.records_out, "topic", topic, NULL);
    mw_family(w, "weir_topic_replication_bytes_out_total", MW_COUNTER,
              "Record batch bytes sent to followers from the topic's partitions led here.");
    mw_sample(w, (double)a->traffic.repl_bytes_out, "topic", topic, NULL);
    mw_family(w, "weir_topic_log_size_bytes", MW_GAUGE,
              "Bytes of the log segments of the topic's replicas on this broker.");
    mw_sample(w, (double)a->log_size_bytes, "topic", topic, NULL);
    mw_family(w, "weir_topic_replicas", MW_GAUGE, "Replicas of the topic hosted here.");
    mw_sample(w, (double)a->replicas, "topic", topic, NULL);
    mw_family(w, "weir_topic_leaders", MW_GAUGE, "Partitions of the topic led here.");
    mw_sample(w, (double)a->leaders, "topic", topic, NULL);
    if (a->max_follower_lag >= 0) {
        mw_family(w, "weir_topic_follower_max_lag_records", MW_GAUGE,
                  "Largest follower lag in records over the topic's partitions led here.");
        mw_sample(w, (double)a->max_follower_lag, "topic", topic, NULL);
    }
}

static void emit_totals(struct mw *w, const struct bm_totals *t)
{
    mw_family(w, "weir_partitions", MW_GAUGE, "Partition replicas hosted by this broker.");
    mw_sample(w, (double)t->replicas, NULL);
    mw_family(w, "weir_leader_partitions", MW_GAUGE, "Partitions this broker leads.");
    mw_sample(w, (double)t->leaders, NULL);
    mw_family(w, "weir_under_replicated_partitions", MW_GAUGE,
              "Partitions led here whose ISR is smaller than their replica set.");
    mw_sample(w, (double)t->under_replicated, NULL);
    mw_family(w, "weir_under_min_isr_partitions", MW_GAUGE,
              "Partitions led here whose ISR is below min.insync.replicas (acks=all "
              "produces fail).");
    mw_sample(w, (double)t->under_min_isr, NULL);
    mw_family(w, "weir_at_min_isr_partitions", MW_GAUGE,
              "Partitions led here whose ISR is exactly min.insync.replicas.");
    mw_sample(w, (double)t->at_min_isr, NULL);
    mw_family(w, "weir_offline_partitions", MW_GAUGE,
              "Partitions of the cluster without a leader, in this broker's metadata.");
    mw_sample(w, (double)t->offline, NULL);
    mw_family(w, "weir_follower_max_lag_records", MW_GAUGE,
              "Largest follower lag in records over every partition led here.");
    mw_sample(w, (double)t->max_follower_lag, NULL);
}

static void walk_enter(struct bm_walk *wk, const struct cstate_topic *t)
{
    memcpy(wk->topic_id, t->id, CSTATE_UUID_LEN);
    wk->next_part = 0;
    bm_topic_acc_init(&wk->acc);
}

/* Walks the metadata's topics in creation order, and within each its
 * partitions, BM_PARTS_PER_TURN per turn; a topic is emitted once all its
 * partitions are folded. A topic deleted while the walk waits in it ends the
 * walk early (the totals then cover what was walked). */
static int partitions_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    struct broker_metrics *bm = ctx;
    struct broker_ctx *b = bm->b;
    if (!b->cc || !b->repl)
        return 0;
    bool first = *cursor == 0;
    struct bm_walk *wk = walk_take(bm, cursor);
    if (!wk)
        return -EBUSY;
    const struct cstate *s = coordclient_state(b->cc);
    int32_t me = b->s->broker_id;
    const struct cstate_topic *t;
    if (first) {
        t = s->first_topic;
        if (t)
            walk_enter(wk, t);
    } else {
        t = cstate_topic_by_id(s, wk->topic_id);
    }
    size_t budget = BM_PARTS_PER_TURN;
    while (t) {
        for (; wk->next_part < t->n_parts; wk->next_part++) {
            if (budget-- == 0)
                return METRICS_MORE;
            const struct cstate_partition *cp = &t->parts[wk->next_part];
            if (cp->leader < 0)
                wk->tot.offline++;
            if (!cstate_part_is_replica(cp, me))
                continue;
            struct repl_part *p = repl_part_get(b->repl, t->name, wk->next_part);
            if (!p)
                continue;
            struct repl_part_view v;
            repl_part_view_get(p, &v);
            bm_fold(&wk->acc, &wk->tot, &v);
        }
        if (wk->acc.replicas > 0)
            emit_topic(w, t->name, &wk->acc);
        t = t->next;
        if (t) {
            walk_enter(wk, t);
            if (mw_should_yield(w))
                return METRICS_MORE;
        }
    }
    emit_totals(w, &wk->tot);
    wk->used = false;
    return 0;
}

/* ---- consumer-group lag ------------------------------------------------------------- */

struct lag_walk {
    struct mw *w;
    struct bm_walk *wk;
    struct lag_source src;
    uint64_t index; /* of the group being visited */
    size_t budget;  /* rows left this turn */
    bool stop;      /* this turn is over */
};

/* One group from wk->row on, while the turn's budget lasts. */
static void lag_visit(void *ud, const struct omap_group *g)
{
    struct lag_walk *lw = ud;
    struct bm_walk *wk = lw->wk;
    if (lw->index++ != wk->group || lw->stop)
        return;
    char part[16];
    mw_family(lw->w, "weir_consumer_group_lag_records", MW_GAUGE,
              "Consumer lag of a group this broker coordinates: the partition's high "
              "watermark minus the group's committed offset (as `weir group describe`), for "
              "the partitions this broker hosts.");
    for (; wk->row < g->n; wk->row++) {
        if (lw->budget == 0) {
            lw->stop = true;
            return;
        }
        lw->budget--;
        struct lag_row r;
        lag_entry_row(&g->entries[wk->row], &lw->src, &r);
        if (r.lag < 0)
            continue;
        wk->lag_sum += r.lag;
        snprintf(part, sizeof(part), "%d", (int)r.partition);
        mw_sample(lw->w, (double)r.lag, "group", g->group, "topic", r.topic, "partition", part,
                  NULL);
    }
    mw_family(lw->w, "weir_consumer_group_lag_sum_records", MW_GAUGE,
              "Sum of a group's known partition lags.");
    mw_sample(lw->w, (double)wk->lag_sum, "group", g->group, NULL);
    wk->group++;
    wk->row = 0;
    wk->lag_sum = 0;
    if (mw_should_yield(lw->w))
        lw->stop = true;
}

/* Groups in the offset map's order, each group's committed partitions
 * BM_PARTS_PER_TURN rows per turn (a group committed on 10,000 partitions
 * takes 40 turns); the position and the group's partial lag sum wait in the
 * walk slot. A group added or removed between turns may make the walk skip or
 * repeat one; a group whose entries shrank meanwhile is ended where it is. */
static int groups_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    struct broker_metrics *bm = ctx;
    if (!bm->b->gstore)
        return 0;
    const struct omap *m = gstore_offsets(bm->b->gstore);
    if (!m)
        return 0;
    struct bm_walk *wk = walk_take(bm, cursor);
    if (!wk)
        return -EBUSY;
    struct lag_walk lw = {
        .w = w, .wk = wk, .src = lag_broker_source(bm->b), .budget = BM_PARTS_PER_TURN};
    omap_foreach(m, lag_visit, &lw);
    if (lw.stop && wk->group < omap_group_count(m))
        return METRICS_MORE;
    mw_family(w, "weir_consumer_groups_coordinated", MW_GAUGE,
              "Consumer groups with committed offsets that this broker coordinates.");
    mw_sample(w, (double)omap_group_count(m), NULL);
    wk->used = false;
    return 0;
}

/* ---- broker-wide gauges and counters -------------------------------------------------- */

static int broker_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    struct broker_metrics *bm = ctx;
    struct broker_ctx *b = bm->b;
    (void)cursor;
    if (bm->srv) {
        mw_family(w, "weir_kafka_connections", MW_GAUGE, "Open Kafka client connections.");
        mw_sample(w, (double)kserver_conn_count(bm->srv), NULL);
        mw_family(w, "weir_kafka_connections_accepted_total", MW_COUNTER,
                  "Kafka client connections accepted.");
        mw_sample(w, (double)kserver_accepted_count(bm->srv), NULL);
    }
    mw_family(w, "weir_purgatory_waiting", MW_GAUGE,
              "Delayed operations waiting: fetch (consumer long polls), produce (acks=all "
              "waiting for the high watermark), replica-fetch (followers' long polls), "
              "delete-records.");
    if (b->fetches) {
        struct purg_stats ps;
        purg_get_stats(b->fetches, &ps);
        mw_sample(w, (double)ps.watched, "purgatory", "fetch", NULL);
    }
    if (b->repl) {
        struct repl_counters rc;
        repl_get_counters(b->repl, &rc);
        mw_sample(w, (double)rc.produce_waiting, "purgatory", "produce", NULL);
        mw_sample(w, (double)rc.follower_fetch_waiting, "purgatory", "replica-fetch", NULL);
        mw_sample(w, (double)rc.delete_waiting, "purgatory", "delete-records", NULL);
        mw_family(w, "weir_isr_shrinks_total", MW_COUNTER,
                  "ISR changes of partitions led here that removed a member.");
        mw_sample(w, (double)rc.isr_shrinks, NULL);
        mw_family(w, "weir_isr_expands_total", MW_COUNTER,
                  "ISR changes of partitions led here that added a member.");
        mw_sample(w, (double)rc.isr_expands, NULL);
    }
    if (b->lm) {
        mw_family(w, "weir_log_fd_cache_open", MW_GAUGE,
                  "Segment file descriptors held open by the descriptor cache "
                  "(log.open.files.max bounds it).");
        mw_sample(w, (double)fdcache_open_count(logmgr_fdcache(b->lm)), NULL);
        mw_family(w, "weir_logs", MW_GAUGE, "Partition logs open on this broker.");
        mw_sample(w, (double)logmgr_count(b->lm), NULL);
        struct logmgr_counters lc;
        logmgr_get_counters(b->lm, &lc);
        mw_family(w, "weir_log_flush_errors_total", MW_COUNTER, "Failed log fsyncs.");
        mw_sample(w, (double)lc.flush_errors, NULL);
    }
    if (bm->pool) {
        mw_family(w, "weir_worker_pool_pending_jobs", MW_GAUGE,
                  "Jobs submitted to the worker pool (fsync, unlink, log creation, cleaning) "
                  "whose completion has not run on the loop yet.");
        mw_sample(w, (double)wpool_pending(bm->pool), NULL);
    }
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int broker_metrics_new(struct broker_ctx *b, struct kserver *srv, struct wpool *pool,
                       struct broker_metrics **ret)
{
    struct broker_metrics *bm = calloc(1, sizeof(*bm));
    if (!bm)
        return -ENOMEM;
    bm->b = b;
    bm->srv = srv;
    bm->pool = pool;
    *ret = bm;
    return 0;
}

void broker_metrics_free(struct broker_metrics *bm)
{
    free(bm);
}

int broker_metrics_register(struct broker_metrics *bm, struct metrics *m)
{
    int r = 0;
    if (bm->b->kstats)
        r = metrics_register(m, kstats_collect, bm->b->kstats);
    if (r == 0)
        r = metrics_register(m, broker_collect, bm);
    if (r == 0)
        r = metrics_register(m, partitions_collect, bm);
    if (r == 0)
        r = metrics_register(m, groups_collect, bm);
    if (r < 0)
        broker_metrics_unregister(bm, m);
    return r;
}

void broker_metrics_unregister(struct broker_metrics *bm, struct metrics *m)
{
    if (bm->b->kstats)
        metrics_unregister(m, kstats_collect, bm->b->kstats);
    metrics_unregister(m, broker_collect, bm);
    metrics_unregister(m, partitions_collect, bm);
    metrics_unregister(m, groups_collect, bm);
}
