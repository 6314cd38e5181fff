/* repl: leader and follower sides of partition replication (see repl.h). */
#include "broker/replica/repl.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/replica/epochcache.h"
#include "broker/replica/fetchsess.h"
#include "broker/replica/pchlog.h"
#include "broker/replica/pstates.h"
#include "broker/replica/quota.h"
#include "broker/storage/logmgr.h"
#include "common/batch.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/purgatory.h"
#include "common/topic_config.h"
#include "methods.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "common/meta/state.h"
#include "replica.pb-c.h"

#define FETCH_RPC_MAX_FRAME (128u * 1024 * 1024)
#define ALTER_RETRY_MS      1000
#define REPL_ALTER_BATCH_MAX 5000 /* ISR changes per AlterPartition call */

enum role { ROLE_NONE = 0, ROLE_LEADER, ROLE_FOLLOWER };

struct fetcher;

/* A parked acks=all produce of one partition, in the acks purgatory under the
 * partition's key. FIFO per partition: appends come in offset order, so the
 * watchers of a key are sorted by last_offset and an ordered check stops at the
 * first one the HW has not passed. */
struct ack_waiter {
    struct purg_op op;
    struct repl *r;
    struct repl_part *part;
    int64_t last_offset;
    repl_ack_fn fn;
    void *ud;
};

/* A DeleteRecords partition waiting (Kafka's DelayedDeleteRecords) until every
 * ISR member's log start offset reached @offset, in the deletes purgatory under
 * the partition's key. */
struct delete_waiter {
    struct purg_op op;
    struct repl *r;
    struct repl_part *part;
    int64_t offset;
    repl_delete_fn fn;
    void *ud;
};

/* What the leader knows of one follower. */
struct rfollower {
    int32_t id;
    int64_t leo;                 /* last fetch offset from a non-diverged fetch; -1 unknown */
    int64_t log_start;           /* its log start offset at that fetch; -1 unknown */
    int64_t last_caught_up_ms;   /* monotonic */
    int64_t last_fetch_ms;       /* monotonic time of the previous fetch */
    int64_t leader_leo_at_fetch; /* our LEO at the previous fetch */
};

struct repl_part {
    struct repl_part *hnext; /* hash chain */
    char *topic;
    int32_t partition;
    uint8_t topic_id[CSTATE_UUID_LEN];
    struct plog *log;
    struct epochcache *ec;
    enum role role;
    int32_t leader;
    int32_t leader_epoch;
    int32_t partition_epoch;
    int32_t min_isr;
    int64_t hw;
    int32_t *replicas; /* copies of the metadata lists */
    int32_t *isr;
    uint8_t n_replicas, n_isr;
    bool seen; /* metadata sweep mark */
    /* listed for this broker in the topic's leader. / follower.replication.
     * throttled.replicas: catch-up traffic counts against the throttle */
    bool leader_throttled, follower_throttled;
    /* leader */
    struct rfollower *fol; /* n_fol entries, one per replica (our own slot unused) */
    uint8_t n_fol;
    bool alter_inflight;
    int32_t alter_adding; /* a member being added (counted for the HW), -1 none */
    int64_t alter_retry_ms;
    /* follower */
    struct fetcher *fetcher;
    /* what the fetcher last told its leader's fetch session (sent_in: that
     * fetcher; NULL: not in a session) */
    struct fetcher *sent_in;
    int32_t sent_epoch, sent_last_epoch;
    int64_t sent_offset, sent_log_start;
    bool sent_throttled;
    struct repl_traffic traffic;
};

/* A follower fetch parked on the leader until data arrives or max_wait passes,
 * in the fetches purgatory under the follower's broker id. */
struct parked_fetch {
    struct purg_op op;
    struct repl *r;
    struct rpc_call *call;
    const Weir__Repl__FetchRequest *req;
};

/* One connection to a leader broker, fetching every partition we follow there. */
struct fetcher {
    struct fetcher *next;
    struct repl *r;
    int32_t leader;
    char host[BROKER_HOST_MAX];
    int port;
    struct rpc_client *rpc;
    bool inflight;
    bool used; /* metadata sweep mark */
    struct event *backoff;
    struct repl_part **parts;
    size_t n_parts, cap_parts;
    /* the fetch session with the leader (0: none; the next fetch is full) */
    int32_t session_id, session_epoch;
    size_t session_n;  /* n_parts when it was opened */
    bool set_changed;  /* parts changed since: the next fetch is full */
};

/* Per-partition flags of one topic, reused across topics. */
struct throttle_buf {
    bool *v;
    size_t cap;
};

struct repl {
    struct event_base *base;
    const struct broker_settings *s;
    struct logmgr *lm;
    struct coordclient *cc;
    struct pstates *pstates;
    repl_visible_fn on_visible;
    void *ud;
    struct rpc_server *srv;
    char adv_host[BROKER_HOST_MAX];
    struct repl_part **buckets;
    size_t nbuckets, nparts;
    struct purg *acks;    /* ack_waiter, keyed by repl_part */
    struct purg *fetches; /* parked_fetch, keyed by follower id */
    struct purg *deletes; /* delete_waiter, keyed by repl_part */
    struct fsess_cache *sessions; /* followers' fetch sessions with us */
    struct alter_item *alters;    /* ISR changes queued for the next call */
    size_t n_alters, cap_alters;
    struct event *alter_ev;       /* sends them, after the current callback */
    struct fetcher *fetchers;
    struct event *isr_timer;
    struct pchlog *pchl;          /* role and ISR change lines */
    struct log_budget isr_asks;   /* "adding/removing it" lines; the results are in pchl */
    /* replication throttles (Kafka's ReplicationQuotaManager): bytes this
     * broker sends as a leader / fetches as a follower for throttled replicas
     * outside the ISR */
    struct quota leader_quota, follower_quota;
    struct throttle_buf lthr_buf, fthr_buf; /* throttled_of() scratch */
    bool freeing;
    uint64_t isr_shrinks, isr_expands; /* metrics (adopt_isr) */
};

/* ---- partition table ------------------------------------------------------------ */

static uint64_t part_hash(const char *topic, int32_t partition)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (h ^ (uint32_t)partition) * 1099511628211ULL;
}

struct repl_part *repl_part_get(struct repl *r, const char *topic, int32_t partition)
{
    if (!r->nbuckets)
        return NULL;
    uint64_t h = part_hash(topic, partition) & (r->nbuckets - 1);
    for (struct repl_part *p = r->buckets[h]; p; p = p->hnext)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    return NULL;
}

static int table_grow(struct repl *r)
{
    size_t n = r->nbuckets ? r->nbuckets * 2 : 64;
    struct repl_part **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return -ENOMEM;
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct repl_part *p = r->buckets[i];
        while (p) {
            struct repl_part *next = p->hnext;
            uint64_t h = part_hash(p->topic, p->partition) & (n - 1);
            p->hnext = nb[h];
            nb[h] = p;
            p = next;
        }
    }
    free(r->buckets);
    r->buckets = nb;
    r->nbuckets = n;
    return 0;
}

static struct repl_part *part_by_id(struct repl *r, const uint8_t *id, size_t idlen,
                                    int32_t partition, bool *ret_unknown_topic)
{
    *ret_unknown_topic = false;
    if (idlen != CSTATE_UUID_LEN) {
        *ret_unknown_topic = true;
        return NULL;
    }
    const struct cstate_topic *t = cstate_topic_by_id(coordclient_state(r->cc), id);
    if (!t) {
        *ret_unknown_topic = true;
        return NULL;
    }
    return repl_part_get(r, t->name, partition);
}

/* ---- small helpers ----------------------------------------------------------------- */

static bool ids_contain(const int32_t *v, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

/* "1,2,3" for a log line; cut (still NUL-terminated) if @len is short. */
static void ids_format(const int32_t *v, size_t n, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < len; i++) {
        int k = snprintf(buf + off, len - off, "%s%d", i ? "," : "", (int)v[i]);
        if (k < 0)
            break;
        off += (size_t)k;
    }
}

static struct rfollower *follower_of(struct repl_part *p, int32_t id)
{
    for (uint8_t i = 0; i < p->n_fol; i++)
        if (p->fol && p->fol[i].id == id)
            return &p->fol[i];
    return NULL;
}

static int64_t leo(const struct repl_part *p)
{
    return plog_log_end_offset(p->log);
}

int64_t repl_part_high_watermark(const struct repl_part *p)
{
    return p->hw;
}

/* Every HW change goes through here: the log holds a copy, which bounds its
 * retention and DeleteRecords and is what logmgr checkpoints
 * (replication-offset-checkpoint). */
static void part_set_hw(struct repl_part *p, int64_t hw)
{
    p->hw = hw;
    if (p->log)
        plog_set_high_watermark(p->log, hw);
}

void repl_part_epoch_end_offset(const struct repl_part *p, int32_t epoch, int32_t *ret_epoch,
                                int64_t *ret_end_offset)
{
    epochcache_end_offset(p->ec, epoch, leo(p), ret_epoch, ret_end_offset);
}

const char *repl_advertised_host(const struct repl *r)
{
    return r->adv_host;
}

int repl_port(const struct repl *r)
{
    return rpc_server_port(r->srv);
}

/* ---- acks=all waiters ---------------------------------------------------------------- */

static uint64_t part_key(const struct repl_part *p)
{
    return purg_key_ptr(p);
}

static bool waiter_try(struct purg_op *op)
{
    struct ack_waiter *w = (struct ack_waiter *)op;
    return w->last_offset < w->part->hw;
}

/* The Kafka error of a completed wait: the HW passed it (answered only while the
 * lease holds), its timeout, or what fail_waiters() said (PURG_REASON_USER +
 * the error). A cancelled wait (connection closed) or one ended by shutdown
 * answers NOT_LEADER_OR_FOLLOWER; nobody reads the former. */
static void waiter_complete(struct purg_op *op, int reason)
{
    struct ack_waiter *w = (struct ack_waiter *)op;
    int16_t err;
    if (reason == PURG_COMPLETED)
        err = coordclient_lease_valid(w->r->cc, clock_mono_ms()) ? 0 : KERR_NOT_LEADER_OR_FOLLOWER;
    else if (reason == PURG_EXPIRED)
        err = KERR_REQUEST_TIMED_OUT;
    else if (reason >= PURG_REASON_USER)
        err = (int16_t)(reason - PURG_REASON_USER);
    else
        err = KERR_NOT_LEADER_OR_FOLLOWER;
    repl_ack_fn fn = w->fn;
    void *ud = w->ud;
    free(w);
    fn(ud, err);
}

static void fail_waiters(struct repl *r, struct repl_part *p, int16_t err)
{
    purg_complete_key(r->acks, part_key(p), PURG_REASON_USER + err);
}

/* ---- DeleteRecords waiters ------------------------------------------------------------ */

/* Kafka's lowWatermarkIfLeader: the smallest log start offset of the leader and
 * every other replica whose broker is alive (registered, not fenced; in the ISR
 * or not, as Kafka, so a lagging live follower also drops the deleted records
 * before the answer); -1 while such a replica's is unknown (it has not fetched
 * in this leadership). A fenced replica's does not hold the answer back: it
 * catches up with the leader's log start when it fetches again. */
static int64_t low_watermark(const struct repl *r, const struct repl_part *p)
{
    int64_t low = plog_log_start_offset(p->log);
    const struct cstate *s = coordclient_state(r->cc);
    for (uint8_t k = 0; p->fol && k < p->n_fol; k++) {
        const struct rfollower *f = &p->fol[k];
        if (f->id == r->s->broker_id)
            continue;
        const struct cstate_broker *b = cstate_broker(s, f->id);
        if (!b || b->state == CSTATE_BROKER_FENCED)
            continue;
        if (f->log_start < 0)
            return -1;
        if (f->log_start < low)
            low = f->log_start;
    }
    return low;
}

static bool delete_try(struct purg_op *op)
{
    struct delete_waiter *w = (struct delete_waiter *)op;
    struct repl_part *p = w->part;
    return p->role == ROLE_LEADER && p->log && low_watermark(w->r, p) >= w->offset;
}

static void delete_complete(struct purg_op *op, int reason)
{
    struct delete_waiter *w = (struct delete_waiter *)op;
    int16_t err;
    int64_t low = -1;
    if (reason == PURG_COMPLETED) {
        err = 0;
        low = low_watermark(w->r, w->part);
    } else if (reason == PURG_EXPIRED) {
        err = KERR_REQUEST_TIMED_OUT;
    } else if (reason >= PURG_REASON_USER) {
        err = (int16_t)(reason - PURG_REASON_USER);
    } else {
        err = KERR_NOT_LEADER_OR_FOLLOWER;
    }
    repl_delete_fn fn = w->fn;
    void *ud = w->ud;
    free(w);
    fn(ud, err, low);
}

static void fail_deletes(struct repl *r, struct repl_part *p, int16_t err)
{
    purg_complete_key(r->deletes, part_key(p), PURG_REASON_USER + err);
}

/* ---- leader: HW and ISR ---------------------------------------------------------------- */

static void complete_waiters(struct repl *r, struct repl_part *p)
{
    purg_check_ordered(r->acks, part_key(p));
}

/* HW = min LEO over the ISR and a member being added; never backwards; frozen
 * while the ISR is below min.insync.replicas (invariant 3). */
static void maybe_advance_hw(struct repl *r, struct repl_part *p)
{
    /* The same events (a follower's fetch, an ISR change) may have brought the
     * ISR's low watermark up to a parked DeleteRecords. */
    if (p->role == ROLE_LEADER)
        purg_check(r->deletes, part_key(p));
    if (p->role != ROLE_LEADER || p->n_isr < p->min_isr)
        return;
    int64_t hw = leo(p);
    for (uint8_t i = 0; i < p->n_replicas; i++) {
        int32_t id = p->replicas[i];
        if (id == r->s->broker_id)
            continue;
        if (!ids_contain(p->isr, p->n_isr, id) && id != p->alter_adding)
            continue;
        struct rfollower *f = follower_of(p, id);
        if (!f || f->leo < 0)
            return; /* not heard from it in this leadership yet */
        if (f->leo < hw)
            hw = f->leo;
    }
    if (hw <= p->hw)
        return;
    part_set_hw(p, hw);
    complete_waiters(r, p);
    if (r->on_visible)
        r->on_visible(r->ud, p->log);
}

/* The ISR fell below min.insync.replicas: the HW is frozen, so parked acks=all
 * produces would only time out. Answer them now with
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND (Kafka's answer for a batch appended while
 * the ISR was large enough), which clients retry. */
static void check_min_isr(struct repl *r, struct repl_part *p)
{
    if (p->role == ROLE_LEADER && p->n_isr < p->min_isr &&
        purg_key_count(r->acks, part_key(p)) > 0) {
        log_info("replica", "%s-%d: ISR %u below min.insync.replicas %d: failing parked acks",
                 p->topic, p->partition, (unsigned)p->n_isr, (int)p->min_isr);
        fail_waiters(r, p, KERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    }
}

/* One ISR change waiting for the next AlterPartition call, or in it. */
struct alter_item {
    char *topic;
    int32_t partition;
    int32_t leader_epoch;
    int32_t partition_epoch;
    uint8_t topic_id[CSTATE_UUID_LEN];
    int32_t *isr;
    size_t n_isr;
};

/* One AlterPartition call: its items, in request order. */
struct alter_call {
    struct repl *r;
    struct alter_item *items;
    size_t n;
};

/* Adopt a committed ISR. A change to a partition led here counts as a shrink
 * when it drops a member and as an expand when it adds one (Kafka's
 * IsrShrinksPerSec / IsrExpandsPerSec), whoever made it: our AlterPartition
 * or the coordinator (a fenced follower). */
static void adopt_isr(struct repl *r, struct repl_part *p, const int32_t *isr, size_t n)
{
    if (p->role == ROLE_LEADER) {
        bool dropped = false, added = false;
        for (uint8_t i = 0; i < p->n_isr; i++)
            dropped |= !ids_contain(isr, n, p->isr[i]);
        for (size_t i = 0; i < n; i++)
            added |= !ids_contain(p->isr, p->n_isr, isr[i]);
        r->isr_shrinks += dropped;
        r->isr_expands += added;
    }
    int32_t *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return;
    memcpy(v, isr, n * sizeof(*v));
    free(p->isr);
    p->isr = v;
    p->n_isr = (uint8_t)n;
}

static void alter_items_free(struct alter_item *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].topic);
        free(v[i].isr);
    }
    free(v);
}

static bool ids_same_set(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!ids_contain(b, nb, a[i]))
            return false;
    return true;
}

/* The role or ISR change of @p for the log (broker/replica/pchlog.h). */
static void note_change(struct repl *r, const struct repl_part *p, enum pch_kind kind,
                        const char *cause)
{
    char isr[256 * 12];
    ids_format(p->isr, p->n_isr, isr, sizeof(isr));
    pchlog_add(r->pchl, &(struct pch){.kind = kind,
                                      .topic = p->topic,
                                      .partition = p->partition,
                                      .epoch = p->leader_epoch,
                                      .partition_epoch = p->partition_epoch,
                                      .leader = p->leader,
                                      .offset = p->log ? leo(p) : -1,
                                      .hw = p->hw,
                                      .isr = isr,
                                      .n_isr = p->n_isr,
                                      .cause = cause});
}

/* The leader adopted an ISR of its partition that had @before members:
 * asked for by itself, or changed by the coordinator (a fenced follower leaves
 * the ISR with the fence). */
static void note_isr_change(struct repl *r, const struct repl_part *p, size_t before,
                            const char *cause)
{
    note_change(r, p,
                p->n_isr < before   ? PCH_ISR_SHRINK
                : p->n_isr > before ? PCH_ISR_EXPAND
                                    : PCH_ISR_CHANGE,
                cause);
}

/* The answer for one item: @res is NULL when the call failed as a whole (@why
 * says how; logged once per call by the caller). */
static void alter_item_done(struct repl *r, const struct alter_item *it,
                            const Weir__Coord__AlterPartitionResult *res)
{
    struct repl_part *p = repl_part_get(r, it->topic, it->partition);
    if (!p || p->leader_epoch != it->leader_epoch)
        return;
    p->alter_inflight = false;
    p->alter_adding = -1;
    if (!res) {
        p->alter_retry_ms = clock_mono_ms() + ALTER_RETRY_MS;
        return;
    }
    if (res->error_code) {
        log_warn("replica", "%s-%d: ISR change refused: %s: %s", it->topic, it->partition,
                 kerr_name((int16_t)res->error_code), res->error_message);
        p->alter_retry_ms = clock_mono_ms() + ALTER_RETRY_MS;
    }
    /* The answer is committed state: adopt it now rather than at the watch
     * push, so a shrink unblocks the HW at once. */
    if (res->leader_epoch == p->leader_epoch && res->partition_epoch > p->partition_epoch &&
        res->leader == r->s->broker_id) {
        size_t before = p->n_isr;
        p->partition_epoch = res->partition_epoch;
        adopt_isr(r, p, res->isr, res->n_isr);
        note_isr_change(r, p, before, "leader_request");
        maybe_advance_hw(r, p);
        check_min_isr(r, p);
    }
}

static void on_alter_response(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                              void *ud)
{
    struct alter_call *c = ud;
    struct repl *r = c->r;
    if (status != RPC_SHUTTING_DOWN && !r->freeing) {
        const Weir__Coord__AlterPartitionResponse *resp =
            status == RPC_OK ? (const Weir__Coord__AlterPartitionResponse *)msg : NULL;
        bool whole = resp && !resp->error_code && resp->n_results == c->n;
        if (!resp)
            log_warn("replica", "ISR changes of %zu partitions (%s-%d, ...) not answered: %s",
                     c->n, c->items[0].topic, c->items[0].partition, errmsg);
        else if (!whole)
            log_warn("replica", "ISR changes of %zu partitions (%s-%d, ...) refused: %s: %s", c->n,
                     c->items[0].topic, c->items[0].partition,
                     kerr_name((int16_t)resp->error_code), resp->error_message);
        for (size_t i = 0; i < c->n; i++)
            alter_item_done(r, &c->items[i], whole ? resp->results[i] : NULL);
        pchlog_flush(r->pchl, clock_mono_ms());
    }
    alter_items_free(c->items, c->n);
    free(c);
}

/* Send up to REPL_ALTER_BATCH_MAX queued ISR changes in one AlterPartition
 * call; the rest go in further calls at once. Items whose partition moved on
 * (another leader epoch, not leading) since they were queued are dropped. */
static void alter_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct repl *r = arg;
    while (r->n_alters > 0) {
        size_t n = r->n_alters < REPL_ALTER_BATCH_MAX ? r->n_alters : REPL_ALTER_BATCH_MAX;
        struct alter_call *c = calloc(1, sizeof(*c));
        struct alter_item *items = malloc(n * sizeof(*items));
        Weir__Coord__AlterPartitionItem *pb = calloc(n, sizeof(*pb));
        Weir__Coord__AlterPartitionItem **pv = calloc(n, sizeof(*pv));
        if (!c || !items || !pb || !pv) {
            free(c);
            free(items);
            free(pb);
            free(pv);
            break; /* the items stay queued for the next flush */
        }
        /* Take the first n; the queue keeps the rest in order. */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            struct alter_item *it = &r->alters[i];
            struct repl_part *p = repl_part_get(r, it->topic, it->partition);
            if (!p || p->role != ROLE_LEADER || p->leader_epoch != it->leader_epoch) {
                free(it->topic);
                free(it->isr);
                continue;
            }
            items[k] = *it;
            weir__coord__alter_partition_item__init(&pb[k]);
            pb[k].topic_id.data = items[k].topic_id;
            pb[k].topic_id.len = CSTATE_UUID_LEN;
            pb[k].partition = it->partition;
            pb[k].leader_epoch = it->leader_epoch;
            pb[k].partition_epoch = it->partition_epoch;
            pb[k].n_new_isr = it->n_isr;
            pb[k].new_isr = items[k].isr;
            pv[k] = &pb[k];
            k++;
        }
        r->n_alters -= n;
        memmove(r->alters, r->alters + n, r->n_alters * sizeof(*r->alters));
        c->r = r;
        c->items = items;
        c->n = k;
        int rc = -ENOENT;
        if (k > 0) {
            Weir__Coord__AlterPartitionRequest req = WEIR__COORD__ALTER_PARTITION_REQUEST__INIT;
            req.broker_id = r->s->broker_id;
            req.broker_epoch = coordclient_broker_epoch(r->cc);
            req.n_items = k;
            req.items = pv;
            rc = coordclient_call(r->cc, COORD_M_ALTER_PARTITION, &req.base, 5000,
                                  on_alter_response, c);
        }
        free(pb);
        free(pv);
        if (rc < 0) {
            for (size_t i = 0; i < k; i++)
                alter_item_done(r, &items[i], NULL);
            alter_items_free(items, k);
            free(c);
        }
    }
}

/* Queue an ISR change of @p (leader of it) for the next AlterPartition call,
 * which carries every change queued in this turn of the loop: a broker's ISR
 * changes after a stall or a failure go to the coordinator as one batch, not
 * one call per partition. */
static void send_alter(struct repl *r, struct repl_part *p, const int32_t *new_isr, size_t n,
                       int32_t adding)
{
    if (r->n_alters == r->cap_alters) {
        size_t cap = r->cap_alters ? r->cap_alters * 2 : 64;
        struct alter_item *v = realloc(r->alters, cap * sizeof(*v));
        if (!v) {
            p->alter_retry_ms = clock_mono_ms() + ALTER_RETRY_MS;
            return;
        }
        r->alters = v;
        r->cap_alters = cap;
    }
    struct alter_item *it = &r->alters[r->n_alters];
    memset(it, 0, sizeof(*it));
    it->topic = strdup(p->topic);
    it->isr = malloc((n ? n : 1) * sizeof(*it->isr));
    if (!it->topic || !it->isr) {
        free(it->topic);
        free(it->isr);
        p->alter_retry_ms = clock_mono_ms() + ALTER_RETRY_MS;
        return;
    }
    memcpy(it->isr, new_isr, n * sizeof(*it->isr));
    it->n_isr = n;
    it->partition = p->partition;
    it->leader_epoch = p->leader_epoch;
    it->partition_epoch = p->partition_epoch;
    memcpy(it->topic_id, p->topic_id, CSTATE_UUID_LEN);
    r->n_alters++;
    if (!evtimer_pending(r->alter_ev, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(r->alter_ev, &tv);
    }
    p->alter_inflight = true;
    p->alter_adding = adding;
}

/* Why the leader asks for an ISR change, one line each while they are few;
 * past the budget at debug (the changes themselves are counted by pchlog). */
static enum log_level isr_ask_level(struct repl *r)
{
    return log_budget_level(&r->isr_asks, LOG_LEVEL_INFO, clock_mono_ms(), PCHLOG_LINES,
                            PCHLOG_WINDOW_MS);
}

/* A follower that reached the HW (and the start of our epoch) rejoins the ISR. */
static void maybe_expand_isr(struct repl *r, struct repl_part *p, struct rfollower *f)
{
    if (p->alter_inflight || ids_contain(p->isr, p->n_isr, f->id) ||
        clock_mono_ms() < p->alter_retry_ms)
        return;
    const struct cstate *s = coordclient_state(r->cc);
    if (!cstate_broker_eligible(s, f->id))
        return;
    size_t n = epochcache_count(p->ec);
    int64_t epoch_start = n ? epochcache_get(p->ec, n - 1).start_offset : 0;
    if (f->leo < p->hw || f->leo < epoch_start)
        return;
    int32_t v[256];
    if (p->n_isr >= 255)
        return;
    memcpy(v, p->isr, p->n_isr * sizeof(*v));
    v[p->n_isr] = f->id;
    log_msg(isr_ask_level(r), "replica", "%s-%d: broker %d caught up at %" PRId64
            ": adding it to the ISR", p->topic, p->partition, f->id, f->leo);
    send_alter(r, p, v, p->n_isr + 1u, f->id);
}

static void check_isr_shrink(struct repl *r, struct repl_part *p, int64_t now)
{
    if (p->role != ROLE_LEADER || p->alter_inflight || now < p->alter_retry_ms)
        return;
    int32_t v[256];
    size_t n = 0;
    bool drop = false;
    for (uint8_t i = 0; i < p->n_isr; i++) {
        int32_t id = p->isr[i];
        struct rfollower *f = id == r->s->broker_id ? NULL : follower_of(p, id);
        if (f && now - f->last_caught_up_ms > r->s->replica_lag_time_max_ms) {
            log_msg(isr_ask_level(r), "replica",
                    "%s-%d: broker %d not caught up for %" PRId64 " ms (LEO %" PRId64
                    ", ours %" PRId64 "): removing it from the ISR",
                    p->topic, p->partition, id, now - f->last_caught_up_ms, f->leo, leo(p));
            drop = true;
            continue;
        }
        v[n++] = id;
    }
    if (!drop || n == 0)
        return;
    send_alter(r, p, v, n, -1);
}

static void isr_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct repl *r = arg;
    (void)fd;
    (void)what;
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < r->nbuckets; i++)
        for (struct repl_part *p = r->buckets[i]; p; p = p->hnext)
            check_isr_shrink(r, p, now);
}

/* ---- leader: serving follower fetches ----------------------------------------------------- */

static uint64_t follower_key(int32_t id)
{
    return (uint64_t)(uint32_t)id;
}

/* Whether @follower's catch-up of @p counts against a throttle whose
 * replica list names this replica: only a replica outside the ISR catches up
 * (Kafka: isReplicaInSync). */
static bool catching_up(const struct repl_part *p, int32_t follower)
{
    return !ids_contain(p->isr, p->n_isr, follower);
}

/* Evaluate one follower fetch; fills *resp. Returns the record bytes found, or
 * -1 when the answer must go out now whatever the bytes (errors, divergence).
 * *ret_throttled: records were held back by a throttle (the leader's, or the
 * follower's own flag). Buffers of records are malloc'd into resp (freed by
 * free_fetch_response). */
static int64_t serve_fetch(struct repl *r, const Weir__Repl__FetchRequest *req,
                           const struct fsess *sess, Weir__Repl__FetchPartitionResult *res,
                           bool *ret_throttled)
{
    *ret_throttled = false;
    int64_t total = 0;
    bool urgent = false;
    int64_t now = clock_mono_ms();
    int64_t budget = req->max_bytes > 0 ? req->max_bytes : r->s->replica_fetch_response_max_bytes;
    for (size_t i = 0; i < sess->n; i++) {
        const struct fsess_part *fp = &sess->parts[i];
        Weir__Repl__FetchPartitionResult *o = &res[i];
        weir__repl__fetch_partition_result__init(o);
        o->topic_id.data = (uint8_t *)fp->topic_id;
        o->topic_id.len = CSTATE_UUID_LEN;
        o->partition = fp->partition;
        o->high_watermark = -1;
        o->log_start_offset = -1;
        o->log_end_offset = -1;
        bool unknown_topic;
        struct repl_part *p =
            part_by_id(r, fp->topic_id, CSTATE_UUID_LEN, fp->partition, &unknown_topic);
        if (!p) {
            o->error_code = unknown_topic ? KERR_UNKNOWN_TOPIC_ID : KERR_NOT_LEADER_OR_FOLLOWER;
            urgent = true;
            continue;
        }
        if (p->role != ROLE_LEADER || !p->log) {
            o->error_code = KERR_NOT_LEADER_OR_FOLLOWER;
            urgent = true;
            continue;
        }
        if (fp->current_leader_epoch != p->leader_epoch) {
            o->error_code = fp->current_leader_epoch < p->leader_epoch ? KERR_FENCED_LEADER_EPOCH
                                                                       : KERR_UNKNOWN_LEADER_EPOCH;
            urgent = true;
            continue;
        }
        struct rfollower *f = follower_of(p, req->replica_id);
        if (!f) {
            o->error_code = KERR_NOT_LEADER_OR_FOLLOWER; /* not a replica of this partition */
            urgent = true;
            continue;
        }
        int64_t end = leo(p), start = plog_log_start_offset(p->log);
        o->log_start_offset = start;
        o->log_end_offset = end;
        if (fp->last_fetched_epoch >= 0) {
            int32_t e;
            int64_t eend;
            epochcache_end_offset(p->ec, fp->last_fetched_epoch, end, &e, &eend);
            if (e != EPOCHCACHE_UNDEFINED &&
                (e < fp->last_fetched_epoch || eend < fp->fetch_offset)) {
                o->diverging = true;
                o->diverging_epoch = e;
                o->diverging_end_offset = eend;
                o->high_watermark = p->hw;
                urgent = true;
                continue;
            }
        }
        if (fp->fetch_offset < start || fp->fetch_offset > end) {
            o->error_code = KERR_OFFSET_OUT_OF_RANGE;
            o->high_watermark = p->hw;
            urgent = true;
            continue;
        }
        /* The follower has everything below its fetch offset. */
        if (fp->fetch_offset >= end)
            f->last_caught_up_ms = now;
        else if (f->last_fetch_ms > 0 && fp->fetch_offset >= f->leader_leo_at_fetch &&
                 f->last_fetch_ms > f->last_caught_up_ms)
            f->last_caught_up_ms = f->last_fetch_ms;
        f->last_fetch_ms = now;
        f->leader_leo_at_fetch = end;
        f->leo = fp->fetch_offset;
        f->log_start = fp->log_start_offset;
        maybe_advance_hw(r, p);
        maybe_expand_isr(r, p, f);
        o->high_watermark = p->hw;
        if (fp->fetch_offset == end || budget <= 0)
            continue;
        /* Throttles (Kafka's leader side): a throttled replica catching up
         * gets nothing while the leader's rate is above its limit; the
         * follower may have asked for nothing itself. */
        bool counted = p->leader_throttled && catching_up(p, req->replica_id);
        if (fp->throttled || (counted && quota_exceeded(&r->leader_quota, now))) {
            *ret_throttled = true;
            continue;
        }
        int32_t want =
            req->partition_max_bytes > 0 ? req->partition_max_bytes : r->s->replica_fetch_max_bytes;
        if (want > budget)
            want = (int32_t)budget;
        struct plog_read_result rr;
        int rc = plog_read(p->log, fp->fetch_offset, end, want, total == 0, &rr);
        if (rc < 0) {
            o->error_code = rc == -ERANGE ? KERR_OFFSET_OUT_OF_RANGE : KERR_KAFKA_STORAGE_ERROR;
            urgent = true;
            continue;
        }
        if (rr.length <= 0) {
            seg_file_unref(rr.file);
            continue;
        }
        uint8_t *buf = malloc((size_t)rr.length);
        if (!buf) {
            seg_file_unref(rr.file);
            o->error_code = KERR_KAFKA_STORAGE_ERROR;
            urgent = true;
            continue;
        }
        rc = fsutil_pread_all(seg_file_fd(rr.file), buf, (size_t)rr.length, rr.position);
        seg_file_unref(rr.file);
        if (rc < 0) {
            free(buf);
            log_error("replica", "%s-%d: reading for broker %d: %s", p->topic, p->partition,
                      req->replica_id, strerror(-rc));
            o->error_code = KERR_KAFKA_STORAGE_ERROR;
            urgent = true;
            continue;
        }
        o->records.data = buf;
        o->records.len = (size_t)rr.length;
        if (counted)
            quota_record(&r->leader_quota, rr.length, now);
        p->traffic.repl_bytes_out += (uint64_t)rr.length;
        total += rr.length;
        budget -= rr.length;
    }
    return urgent ? -1 : total;
}

static bool park_fetch(struct repl *r, struct rpc_call *call, const Weir__Repl__FetchRequest *req,
                       int max_ms);

/* A fetch that found nothing because of a throttle parks at most this long, so
 * the throttle is looked at again soon after the rate falls below it. */
#define THROTTLED_PARK_MS 100

static void reply_session_error(struct rpc_call *call, int16_t err)
{
    Weir__Repl__FetchResponse resp = WEIR__REPL__FETCH_RESPONSE__INIT;
    resp.error_code = err;
    resp.error_message = (char *)kerr_message(err);
    rpc_call_reply(call, &resp.base);
}

/* Evaluate the follower's session (@req opened or updated it) and answer; with
 * @may_park, a fetch that finds nothing new is parked instead (until an append
 * or max_wait_ms). A full fetch (session_id 0) answers every partition, an
 * incremental one only those with news (fsess_part_news). */
static void answer_fetch(struct repl *r, struct rpc_call *call, const Weir__Repl__FetchRequest *req,
                         bool may_park)
{
    struct fsess *sess = fsess_get(r->sessions, req->replica_id);
    if (!sess) { /* dropped for want of memory while parked */
        reply_session_error(call, KERR_FETCH_SESSION_ID_NOT_FOUND);
        return;
    }
    size_t n = sess->n;
    Weir__Repl__FetchPartitionResult *res = calloc(n ? n : 1, sizeof(*res));
    Weir__Repl__FetchPartitionResult **resv = calloc(n ? n : 1, sizeof(*resv));
    Weir__Repl__FetchResponse resp = WEIR__REPL__FETCH_RESPONSE__INIT;
    if (!res || !resv) {
        free(res);
        free(resv);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    bool throttled;
    int64_t got = serve_fetch(r, req, sess, res, &throttled);
    if (!(may_park && got == 0 &&
          park_fetch(r, call, req, throttled ? THROTTLED_PARK_MS : req->max_wait_ms))) {
        bool full = req->session_id == 0;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            Weir__Repl__FetchPartitionResult *o = &res[i];
            bool news = o->records.len > 0 || o->error_code || o->diverging;
            if (!full && !fsess_part_news(&sess->parts[i], news, o->high_watermark,
                                          o->log_start_offset, o->log_end_offset))
                continue;
            fsess_part_sent(&sess->parts[i], o->high_watermark, o->log_start_offset,
                            o->log_end_offset);
            resv[k++] = o;
        }
        resp.n_partitions = k;
        resp.partitions = resv;
        resp.session_id = sess->id;
        rpc_call_reply(call, &resp.base);
    }
    for (size_t i = 0; i < n; i++)
        if (res[i].records.len)
            free(res[i].records.data);
    free(res);
    free(resv);
}

static void reply_fetch(struct repl *r, struct rpc_call *call, const Weir__Repl__FetchRequest *req)
{
    answer_fetch(r, call, req, false);
}

/* Any event on the follower's key answers its parked fetch: the fetch found
 * nothing when it parked, and whatever changed is news to the follower. */
static bool parked_try(struct purg_op *op)
{
    (void)op;
    return true;
}

/* Whatever ended the wait (new data, a role change, a newer fetch from the same
 * follower, max_wait, shutdown), the follower gets the log as it is now. */
static void parked_complete(struct purg_op *op, int reason)
{
    (void)reason;
    struct parked_fetch *pf = (struct parked_fetch *)op;
    struct repl *r = pf->r;
    struct rpc_call *call = pf->call;
    const Weir__Repl__FetchRequest *req = pf->req;
    free(pf);
    reply_fetch(r, call, req); /* never parks */
}

/* Answer parked fetches of the followers of @p (new data), or every parked
 * fetch when @p is NULL (role changes). */
static void wake_fetches(struct repl *r, struct repl_part *p)
{
    if (!p) {
        purg_complete_all(r->fetches, PURG_COMPLETED);
        return;
    }
    for (uint8_t i = 0; i < p->n_replicas; i++)
        purg_check(r->fetches, follower_key(p->replicas[i]));
}

/* How long a fetch asking for @wait_ms may park, at most @cap_ms. */
static int park_ms(int32_t wait_ms, int cap_ms)
{
    int w = wait_ms > 30000 ? 30000 : (int)wait_ms;
    return w < cap_ms ? w : cap_ms;
}

static bool park_fetch(struct repl *r, struct rpc_call *call, const Weir__Repl__FetchRequest *req,
                       int max_ms)
{
    if (park_ms(req->max_wait_ms, max_ms) <= 0 || r->freeing)
        return false;
    struct parked_fetch *pf = malloc(sizeof(*pf));
    if (!pf)
        return false;
    purg_op_init(&pf->op, parked_try, parked_complete, NULL);
    pf->r = r;
    pf->call = call;
    pf->req = req;
    int w = park_ms(req->max_wait_ms, max_ms);
    uint64_t key = follower_key(req->replica_id);
    /* Not tried again: the caller just found nothing to send. */
    if (purg_watch(r->fetches, &pf->op, &key, 1, w) < 0) {
        free(pf);
        return false;
    }
    return true;
}

static void on_fetch_request(struct rpc_call *call, const struct ProtobufCMessage *msg, void *ud)
{
    struct repl *r = ud;
    const Weir__Repl__FetchRequest *req = (const Weir__Repl__FetchRequest *)msg;
    /* A follower has at most one fetch parked here: an older one (from a
     * connection that dropped) is answered first. */
    purg_complete_key(r->fetches, follower_key(req->replica_id), PURG_COMPLETED);
    if (req->n_partitions > 200000) { /* far more partitions than one broker pair shares */
        rpc_call_fail(call, RPC_INTERNAL, "too many partitions");
        return;
    }
    const Weir__Repl__FetchPartition *const *fps =
        (const Weir__Repl__FetchPartition *const *)req->partitions;
    struct fsess *sess;
    int16_t err = KERR_NONE;
    int rc = req->session_id == 0
                 ? fsess_open(r->sessions, req->replica_id, fps, req->n_partitions, &sess)
                 : fsess_update(r->sessions, req->replica_id, req->session_id, req->session_epoch,
                                fps, req->n_partitions, &sess, &err);
    if (rc < 0) {
        rpc_call_fail(call, RPC_INTERNAL,
                      rc == -EINVAL ? "a topic id is not 16 bytes" : "out of memory");
        return;
    }
    if (err != KERR_NONE) {
        log_debug("replica", "fetch from broker %d: session %d epoch %d: %s", req->replica_id,
                  req->session_id, req->session_epoch, kerr_name(err));
        reply_session_error(call, err);
        return;
    }
    answer_fetch(r, call, req, true);
}

/* ---- follower: fetchers ------------------------------------------------------------------ */

struct fetch_ctx {
    struct fetcher *f;
    bool full;             /* a full fetch, opening a session */
    int32_t session_epoch; /* of an incremental fetch */
};

static void fetcher_kick(struct fetcher *f);

static void fetcher_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fetcher_kick(arg);
}

static void fetcher_backoff(struct fetcher *f)
{
    int ms = f->r->s->replica_fetch_backoff_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(f->backoff, &tv);
}

/* Truncate after the leader said our log diverged at (epoch, end): see
 * epochcache_truncation_offset; the next fetch (with the new last epoch) finds
 * any further divergence. */
static void follower_truncate(struct repl *r, struct repl_part *p, int32_t lepoch, int64_t lend)
{
    int64_t end = leo(p);
    int64_t target = epochcache_truncation_offset(p->ec, lepoch, lend, end, NULL);
    int64_t newend = end;
    int rc = plog_truncate_to(p->log, target, &newend);
    if (rc < 0) {
        log_error("replica", "%s-%d: truncating to %" PRId64 ": %s", p->topic, p->partition, target,
                  strerror(-rc));
        return;
    }
    if (r->pstates)
        pstates_truncated(r->pstates, p->log);
    rc = epochcache_truncate_from_end(p->ec, newend);
    if (rc < 0)
        log_error("replica", "%s-%d: epoch cache: %s", p->topic, p->partition, strerror(-rc));
    if (p->hw > newend)
        part_set_hw(p, newend);
    log_event(LOG_LEVEL_INFO, "replica", "log_truncated",
              LOG_FIELDS(LF_STR("topic", p->topic), LF_INT("partition", p->partition),
                         LF_INT("epoch", p->leader_epoch), LF_INT("leader", p->leader),
                         LF_INT("from", end), LF_INT("to", newend), LF_STR("reason", "diverged")),
              "%s-%d: log diverged from leader %d (its epoch %d ends at %" PRId64
              "): truncated from %" PRId64 " to %" PRId64,
              p->topic, p->partition, p->leader, lepoch, lend, end, newend);
}

/* The leader's log start moved (DeleteRecords, retention): follow it as far as
 * our HW allows (Kafka's follower does the same); the rest comes with a later
 * fetch, once our HW has caught up. */
static void follower_raise_start(struct repl_part *p, int64_t leader_start)
{
    if (leader_start <= plog_log_start_offset(p->log))
        return;
    int64_t to = leader_start < p->hw ? leader_start : p->hw;
    int rc = plog_raise_start_offset(p->log, to);
    if (rc < 0)
        log_error("replica", "%s-%d: raising the log start offset to %" PRId64 ": %s", p->topic,
                  p->partition, to, strerror(-rc));
}

static int follower_append(struct repl *r, struct repl_part *p, uint8_t *data, size_t len)
{
    int rc = batch_validate_all(data, len, 0, NULL, NULL);
    if (rc < 0) {
        log_error("replica", "%s-%d: leader %d sent invalid batches: %s", p->topic, p->partition,
                  p->leader, strerror(-rc));
        return rc;
    }
    struct plog_append_info info;
    rc = logmgr_append(r->lm, p->log, data, len, 0, -1, &info);
    if (rc < 0) {
        log_error("replica", "%s-%d: appending %zu bytes from leader %d at %" PRId64 ": %s",
                  p->topic, p->partition, len, p->leader, leo(p), strerror(-rc));
        return rc;
    }
    /* Producer state as the leader keeps it: a new leader has it at once. */
    if (r->pstates)
        pstates_followed(r->pstates, p->log, data, len, &info);
    /* New epochs in what we copied start where their first batch does. */
    size_t at = 0;
    while (len - at >= BATCH_HEADER_SIZE) {
        struct batch_header h;
        if (batch_parse_header(data + at, len - at, &h) != 0)
            break;
        if (h.partition_leader_epoch > epochcache_latest_epoch(p->ec)) {
            int e = epochcache_assign(p->ec, h.partition_leader_epoch, h.base_offset);
            if (e < 0)
                log_error("replica", "%s-%d: epoch cache: %s", p->topic, p->partition,
                          strerror(-e));
        }
        at += (size_t)batch_total_size(&h);
    }
    return 0;
}

static void on_fetch_response(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                              void *ud)
{
    struct fetch_ctx *ctx = ud;
    struct fetcher *f = ctx->f;
    bool full = ctx->full;
    int32_t sent_epoch = ctx->session_epoch;
    free(ctx);
    if (status == RPC_SHUTTING_DOWN)
        return;
    struct repl *r = f->r;
    f->inflight = false;
    bool backoff = false;
    const Weir__Repl__FetchResponse *resp =
        status == RPC_OK ? (const Weir__Repl__FetchResponse *)msg : NULL;
    if (!resp || resp->error_code) {
        log_debug("replica", "fetch from broker %d failed: %s", f->leader,
                  resp ? resp->error_message : errmsg);
        /* A lost session is not a failure: fetch in full at once. */
        backoff = !resp || (resp->error_code != KERR_FETCH_SESSION_ID_NOT_FOUND &&
                            resp->error_code != KERR_INVALID_FETCH_SESSION_EPOCH);
        f->session_id = 0;
    } else {
        if (full) {
            f->session_id = resp->session_id; /* 0 from a leader without sessions */
            f->session_epoch = 1;
        } else {
            f->session_epoch = sent_epoch == INT32_MAX ? 1 : sent_epoch + 1;
        }
        for (size_t i = 0; i < resp->n_partitions; i++) {
            const Weir__Repl__FetchPartitionResult *o = resp->partitions[i];
            bool unknown;
            struct repl_part *p = part_by_id(r, o->topic_id.data, o->topic_id.len, o->partition,
                                             &unknown);
            /* Drop answers for a state that changed while the fetch was out:
             * the next fetch names the partition again. */
            if (!p || p->role != ROLE_FOLLOWER || p->fetcher != f || p->sent_in != f ||
                p->leader_epoch != p->sent_epoch || !p->log || leo(p) != p->sent_offset)
                continue;
            if (o->error_code == KERR_OFFSET_OUT_OF_RANGE) {
                int64_t end = leo(p);
                if (o->log_end_offset >= 0 && end > o->log_end_offset) {
                    int64_t ne;
                    if (plog_truncate_to(p->log, o->log_end_offset, &ne) == 0) {
                        if (r->pstates)
                            pstates_truncated(r->pstates, p->log);
                        epochcache_truncate_from_end(p->ec, ne);
                        if (p->hw > ne)
                            part_set_hw(p, ne);
                        log_event(LOG_LEVEL_INFO, "replica", "log_truncated",
                                  LOG_FIELDS(LF_STR("topic", p->topic),
                                             LF_INT("partition", p->partition),
                                             LF_INT("epoch", p->leader_epoch),
                                             LF_INT("leader", p->leader), LF_INT("from", end),
                                             LF_INT("to", ne),
                                             LF_STR("reason", "ahead_of_leader")),
                                  "%s-%d: ahead of leader %d: truncated to %" PRId64, p->topic,
                                  p->partition, p->leader, ne);
                    }
                } else if (o->log_start_offset > end) {
                    if (plog_truncate_fully(p->log, o->log_start_offset) == 0) {
                        if (r->pstates)
                            pstates_truncated(r->pstates, p->log);
                        epochcache_clear(p->ec);
                        part_set_hw(p, o->log_start_offset);
                        log_event(LOG_LEVEL_INFO, "replica", "log_truncated",
                                  LOG_FIELDS(LF_STR("topic", p->topic),
                                             LF_INT("partition", p->partition),
                                             LF_INT("epoch", p->leader_epoch),
                                             LF_INT("leader", p->leader), LF_INT("from", end),
                                             LF_INT("to", o->log_start_offset),
                                             LF_STR("reason", "behind_log_start")),
                                  "%s-%d: behind leader %d's log start: restarting at %" PRId64,
                                  p->topic, p->partition, p->leader, o->log_start_offset);
                    }
                } else {
                    backoff = true;
                }
                continue;
            }
            if (o->error_code) {
                log_debug("replica", "%s-%d: fetch from leader %d at %" PRId64 ": %s", p->topic,
                          p->partition, p->leader, p->sent_offset,
                          kerr_name((int16_t)o->error_code));
                backoff = true;
                continue;
            }
            if (o->diverging) {
                follower_truncate(r, p, o->diverging_epoch, o->diverging_end_offset);
                continue;
            }
            if (o->records.len > 0 && follower_append(r, p, o->records.data, o->records.len) < 0)
                backoff = true;
            else if (o->records.len > 0 && p->follower_throttled && catching_up(p, r->s->broker_id))
                quota_record(&r->follower_quota, (int64_t)o->records.len, clock_mono_ms());
            int64_t hw = o->high_watermark < leo(p) ? o->high_watermark : leo(p);
            if (hw > p->hw)
                part_set_hw(p, hw);
            follower_raise_start(p, o->log_start_offset);
        }
    }
    if (backoff)
        fetcher_backoff(f);
    else
        fetcher_kick(f);
}

/* Whether the next fetch must be a full one: no session, a different set of
 * partitions than the session's, or a partition whose log came or went. */
static bool fetcher_needs_full(const struct fetcher *f)
{
    if (f->session_id == 0 || f->set_changed || f->n_parts != f->session_n)
        return true;
    for (size_t i = 0; i < f->n_parts; i++) {
        const struct repl_part *p = f->parts[i];
        if ((p->sent_in == f) != (p->log != NULL))
            return true;
    }
    return false;
}

/* Whether @p's fetch state (with @throttled, the throttle's word on it now)
 * differs from what the session holds. */
static bool part_fetch_changed(const struct repl_part *p, bool throttled)
{
    return p->sent_throttled != throttled || p->sent_epoch != p->leader_epoch ||
           p->sent_offset != leo(p) || p->sent_last_epoch != epochcache_latest_epoch(p->ec) ||
           p->sent_log_start != plog_log_start_offset(p->log);
}

static void fetcher_kick(struct fetcher *f)
{
    struct repl *r = f->r;
    if (f->inflight || r->freeing || evtimer_pending(f->backoff, NULL))
        return;
    bool full = fetcher_needs_full(f);
    size_t n = 0;
    for (size_t i = 0; i < f->n_parts; i++)
        if (f->parts[i]->log)
            n++;
    if (n == 0)
        return;
    struct fetch_ctx *ctx = calloc(1, sizeof(*ctx));
    Weir__Repl__FetchPartition *fps = calloc(n, sizeof(*fps));
    Weir__Repl__FetchPartition **fpv = calloc(n, sizeof(*fpv));
    if (!ctx || !fps || !fpv) {
        free(ctx);
        free(fps);
        free(fpv);
        fetcher_backoff(f);
        return;
    }
    ctx->f = f;
    ctx->full = full;
    ctx->session_epoch = full ? 0 : f->session_epoch;
    /* Kafka's follower side: while this broker's follower throttle is above
     * its rate, throttled replicas catching up ask for no records. */
    bool over = quota_exceeded(&r->follower_quota, clock_mono_ms());
    size_t k = 0;
    for (size_t i = 0; i < f->n_parts; i++) {
        struct repl_part *p = f->parts[i];
        if (!p->log) {
            p->sent_in = NULL;
            continue;
        }
        bool throttled = over && p->follower_throttled && catching_up(p, r->s->broker_id);
        if (!full && !part_fetch_changed(p, throttled))
            continue;
        Weir__Repl__FetchPartition *fp = &fps[k];
        weir__repl__fetch_partition__init(fp);
        fp->topic_id.data = p->topic_id;
        fp->topic_id.len = CSTATE_UUID_LEN;
        fp->partition = p->partition;
        fp->current_leader_epoch = p->leader_epoch;
        fp->fetch_offset = leo(p);
        fp->last_fetched_epoch = epochcache_latest_epoch(p->ec);
        fp->log_start_offset = plog_log_start_offset(p->log);
        fp->throttled = throttled;
        fpv[k] = fp;
        p->sent_in = f;
        p->sent_epoch = fp->current_leader_epoch;
        p->sent_offset = fp->fetch_offset;
        p->sent_last_epoch = fp->last_fetched_epoch;
        p->sent_log_start = fp->log_start_offset;
        p->sent_throttled = throttled;
        k++;
    }
    if (full) {
        f->session_n = f->n_parts;
        f->set_changed = false;
        log_debug("replica", "full fetch from broker %d: %zu partitions (session %d ended)",
                  f->leader, k, (int)f->session_id);
    }
    Weir__Repl__FetchRequest req = WEIR__REPL__FETCH_REQUEST__INIT;
    req.session_id = full ? 0 : f->session_id;
    req.session_epoch = ctx->session_epoch;
    req.replica_id = r->s->broker_id;
    req.broker_epoch = coordclient_broker_epoch(r->cc);
    req.max_wait_ms = r->s->replica_fetch_wait_max_ms;
    req.max_bytes = r->s->replica_fetch_response_max_bytes;
    req.partition_max_bytes = r->s->replica_fetch_max_bytes;
    req.n_partitions = k;
    req.partitions = fpv;
    int rc = rpc_client_call(f->rpc, REPL_M_FETCH, &req.base, req.max_wait_ms + 10000,
                             on_fetch_response, ctx);
    free(fps);
    free(fpv);
    if (rc < 0) {
        free(ctx);
        f->session_id = 0;
        fetcher_backoff(f);
        return;
    }
    f->inflight = true;
}

static void fetcher_free(struct fetcher *f)
{
    if (!f)
        return;
    rpc_client_free(f->rpc); /* completes the in-flight call with SHUTTING_DOWN */
    if (f->backoff)
        event_free(f->backoff);
    free(f->parts);
    free(f);
}

static struct fetcher *fetcher_get(struct repl *r, int32_t leader)
{
    const struct cstate_broker *b = cstate_broker(coordclient_state(r->cc), leader);
    if (!b || !b->replication.host || b->state == CSTATE_BROKER_FENCED)
        return NULL;
    struct fetcher *f;
    for (f = r->fetchers; f; f = f->next)
        if (f->leader == leader)
            break;
    if (f && (strcmp(f->host, b->replication.host) != 0 || f->port != b->replication.port)) {
        /* The leader restarted on another port: start over. */
        struct fetcher **pp = &r->fetchers;
        while (*pp != f)
            pp = &(*pp)->next;
        *pp = f->next;
        fetcher_free(f);
        f = NULL;
    }
    if (f)
        return f;
    f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->r = r;
    f->leader = leader;
    snprintf(f->host, sizeof(f->host), "%s", b->replication.host);
    f->port = b->replication.port;
    f->backoff = evtimer_new(r->base, fetcher_backoff_cb, f);
    struct rpc_client_options o = {0};
    o.max_frame_bytes = FETCH_RPC_MAX_FRAME;
    o.backoff_max_ms = 1000;
    if (!f->backoff || rpc_client_new(r->base, f->host, f->port, &weir__repl__replica__descriptor,
                                      &o, &f->rpc) < 0) {
        fetcher_free(f);
        return NULL;
    }
    f->next = r->fetchers;
    r->fetchers = f;
    log_info("replica", "fetching from broker %d at %s:%d", leader, f->host, f->port);
    return f;
}

static int fetcher_add(struct fetcher *f, struct repl_part *p)
{
    if (f->n_parts == f->cap_parts) {
        size_t cap = f->cap_parts ? f->cap_parts * 2 : 16;
        struct repl_part **v = realloc(f->parts, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        f->parts = v;
        f->cap_parts = cap;
    }
    /* The metadata sweep refills the list in the same order: any difference
     * from the last sweep changes the session's set. */
    if (f->n_parts >= f->session_n || f->parts[f->n_parts] != p)
        f->set_changed = true;
    f->parts[f->n_parts++] = p;
    return 0;
}

/* ---- metadata ------------------------------------------------------------------------------ */

/* The topic's override, else this broker's dynamic value, else the dynamic
 * cluster default, else the static one. */
static int32_t topic_min_isr(struct repl *r, const struct cstate_topic *t)
{
    const char *v = cstate_topic_config(t, "min.insync.replicas");
    if (!v) {
        const struct cstate *s = coordclient_state(r->cc);
        v = cstate_broker_config(s, r->s->broker_id, "min.insync.replicas");
        if (!v)
            v = cstate_broker_config(s, CSTATE_CLUSTER_DEFAULT, "min.insync.replicas");
    }
    if (v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*v && !*end && n >= 1 && n <= INT32_MAX)
            return (int32_t)n;
    }
    return r->s->min_insync_replicas;
}

static void part_free(struct repl *r, struct repl_part *p)
{
    if (r->pstates && p->log)
        pstates_forget(r->pstates, p->log);
    fail_waiters(r, p, KERR_NOT_LEADER_OR_FOLLOWER);
    fail_deletes(r, p, KERR_NOT_LEADER_OR_FOLLOWER);
    epochcache_free(p->ec);
    free(p->replicas);
    free(p->isr);
    free(p->fol);
    free(p->topic);
    free(p);
}

static struct repl_part *part_create(struct repl *r, const struct cstate_topic *t, int32_t part)
{
    if (r->nparts + 1 > r->nbuckets && table_grow(r) < 0)
        return NULL;
    struct repl_part *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(t->name))) {
        free(p);
        return NULL;
    }
    p->partition = part;
    memcpy(p->topic_id, t->id, CSTATE_UUID_LEN);
    p->leader = -1;
    p->leader_epoch = -1;
    p->partition_epoch = -1;
    p->alter_adding = -1;
    p->hw = 0;
    uint64_t h = part_hash(p->topic, part) & (r->nbuckets - 1);
    p->hnext = r->buckets[h];
    r->buckets[h] = p;
    r->nparts++;
    return p;
}

static void part_unlink(struct repl *r, struct repl_part *p)
{
    uint64_t h = part_hash(p->topic, p->partition) & (r->nbuckets - 1);
    struct repl_part **pp = &r->buckets[h];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    r->nparts--;
}

/* Attach @log (new, or replaced after a delete/re-create) and its epoch cache. */
static int part_attach_log(struct repl_part *p, struct plog *log)
{
    if (p->log == log && p->ec)
        return 0;
    epochcache_free(p->ec);
    p->ec = NULL;
    p->log = NULL;
    bool discarded = false;
    int rc = epochcache_open(plog_dir(log), plog_log_end_offset(log), &p->ec, &discarded);
    if (rc < 0) {
        log_error("replica", "%s-%d: opening the leader epoch cache: %s", p->topic, p->partition,
                  strerror(-rc));
        return rc;
    }
    if (discarded)
        log_warn("replica", "%s-%d: unreadable %s discarded", p->topic, p->partition,
                 EPOCHCACHE_FILE);
    p->log = log;
    /* The log's HW: from the checkpoint at start-up (logmgr), else its start. */
    p->hw = plog_high_watermark(log);
    return 0;
}

static int copy_ids(int32_t **dst, const int32_t *src, size_t n)
{
    int32_t *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    memcpy(v, src, n * sizeof(*v));
    free(*dst);
    *dst = v;
    return 0;
}

/* The replica list of @p changed within one leadership (a reassignment adds
 * or removes replicas without a new leader epoch): the follower slots follow
 * it, keeping what is known of the replicas that stay. */
static void leader_replicas_changed(struct repl_part *p)
{
    struct rfollower *fol = calloc(p->n_replicas ? p->n_replicas : 1, sizeof(*fol));
    if (!fol)
        return; /* keep the old slots: follower_of() finds only those */
    int64_t now = clock_mono_ms();
    for (uint8_t i = 0; i < p->n_replicas; i++) {
        struct rfollower *old = NULL;
        for (uint8_t k = 0; p->fol && k < p->n_fol; k++)
            if (p->fol[k].id == p->replicas[i])
                old = &p->fol[k];
        if (old) {
            fol[i] = *old;
            continue;
        }
        fol[i].id = p->replicas[i];
        fol[i].leo = -1;
        fol[i].log_start = -1;
        fol[i].last_caught_up_ms = now;
    }
    free(p->fol);
    p->fol = fol;
    p->n_fol = p->n_replicas;
    if (p->alter_adding >= 0 && !ids_contain(p->replicas, p->n_replicas, p->alter_adding))
        p->alter_adding = -1;
}

/* Take up the leadership of @p. Its new epoch goes into @eb, which the caller
 * commits before returning to the loop: nothing is appended in the new epoch
 * before the epoch is durable. */
static void become_leader(struct repl *r, struct repl_part *p, struct epochcache_batch *eb)
{
    int64_t now = clock_mono_ms();
    fail_waiters(r, p, KERR_NOT_LEADER_OR_FOLLOWER); /* from an earlier leadership */
    fail_deletes(r, p, KERR_NOT_LEADER_OR_FOLLOWER);
    int rc = epochcache_assign_batched(p->ec, p->leader_epoch, leo(p), eb);
    if (rc < 0)
        log_error("replica", "%s-%d: epoch cache: %s", p->topic, p->partition, strerror(-rc));
    free(p->fol);
    p->fol = calloc(p->n_replicas ? p->n_replicas : 1, sizeof(*p->fol));
    p->n_fol = p->fol ? p->n_replicas : 0;
    for (uint8_t i = 0; p->fol && i < p->n_replicas; i++) {
        p->fol[i].id = p->replicas[i];
        p->fol[i].leo = -1;
        p->fol[i].log_start = -1;
        p->fol[i].last_caught_up_ms = now; /* every ISR member gets a full lag period */
        p->fol[i].last_fetch_ms = 0;
        p->fol[i].leader_leo_at_fetch = 0;
    }
    p->alter_inflight = false;
    p->alter_adding = -1;
    p->alter_retry_ms = 0;
    p->fetcher = NULL;
    p->role = ROLE_LEADER;
    note_change(r, p, PCH_LEADER, NULL);
}

static void become_follower(struct repl *r, struct repl_part *p)
{
    fail_waiters(r, p, KERR_NOT_LEADER_OR_FOLLOWER);
    fail_deletes(r, p, KERR_NOT_LEADER_OR_FOLLOWER);
    free(p->fol);
    p->fol = NULL;
    p->n_fol = 0;
    p->alter_inflight = false;
    p->alter_adding = -1;
    if (p->log && p->hw > leo(p))
        part_set_hw(p, leo(p));
    p->role = ROLE_FOLLOWER;
    note_change(r, p, PCH_FOLLOWER, NULL);
}

/* A throttle rate in effect: this broker's dynamic value, else the dynamic
 * cluster default, else the static one (bytes/s; INT64_MAX: none). */
static int64_t throttle_rate(const struct repl *r, const struct cstate *s, const char *name,
                             int64_t static_value)
{
    const char *v = cstate_broker_config(s, r->s->broker_id, name);
    if (!v)
        v = cstate_broker_config(s, CSTATE_CLUSTER_DEFAULT, name);
    int64_t n;
    if (v && topic_config_parse_long(v, &n) && n > 0)
        return n;
    return static_value > 0 ? static_value : QUOTA_UNLIMITED;
}

/* Which partitions of @t list this broker in throttled replica list @key, in
 * @buf (grown as needed; NULL when the topic has no list or memory ran out,
 * which throttles nothing). One pass over the list per topic: a move's list
 * may name every partition. */
static bool *throttled_of(struct repl *r, const struct cstate_topic *t, const char *key,
                          struct throttle_buf *buf)
{
    const char *v = cstate_topic_config(t, key);
    if (!v || !*v || t->n_parts <= 0)
        return NULL;
    size_t n = (size_t)t->n_parts;
    if (buf->cap < n) {
        bool *b = realloc(buf->v, n * sizeof(*b));
        if (!b) {
            log_error("replica", "%s: out of memory reading %s: not throttled", t->name, key);
            return NULL;
        }
        buf->v = b;
        buf->cap = n;
    }
    topic_config_replicas_of_broker(v, r->s->broker_id, buf->v, n);
    return buf->v;
}

static void throttle_rates_update(struct repl *r, const struct cstate *s)
{
    int64_t lr = throttle_rate(r, s, "leader.replication.throttled.rate",
                               r->s->leader_replication_throttled_rate);
    int64_t fr = throttle_rate(r, s, "follower.replication.throttled.rate",
                               r->s->follower_replication_throttled_rate);
    if (lr != r->leader_quota.rate || fr != r->follower_quota.rate)
        log_info("replica",
                 "replication throttles: leader %" PRId64 " B/s, follower %" PRId64 " B/s (%" PRId64
                 " means none)",
                 lr, fr, (int64_t)QUOTA_UNLIMITED);
    quota_set_rate(&r->leader_quota, lr);
    quota_set_rate(&r->follower_quota, fr);
}

void repl_on_metadata(struct repl *r)
{
    const struct cstate *s = coordclient_state(r->cc);
    /* Act only on a state that is current for this registration: a restarted
     * broker replaying the watch must not take up leaderships it held long
     * ago (and stamp their epochs into its epoch caches). */
    if (!coordclient_current(r->cc))
        return;
    int32_t me = r->s->broker_id;
    struct epochcache_batch eb = {0};
    for (size_t i = 0; i < r->nbuckets; i++)
        for (struct repl_part *p = r->buckets[i]; p; p = p->hnext)
            p->seen = false;
    for (struct fetcher *f = r->fetchers; f; f = f->next) {
        f->n_parts = 0;
        f->used = false;
    }
    throttle_rates_update(r, s);
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        int32_t min_isr = topic_min_isr(r, t);
        bool *lthr = throttled_of(r, t, "leader.replication.throttled.replicas", &r->lthr_buf);
        bool *fthr = throttled_of(r, t, "follower.replication.throttled.replicas", &r->fthr_buf);
        for (int32_t pi = 0; pi < t->n_parts; pi++) {
            const struct cstate_partition *cp = &t->parts[pi];
            if (!cstate_part_is_replica(cp, me))
                continue;
            struct repl_part *p = repl_part_get(r, t->name, pi);
            if (p && memcmp(p->topic_id, t->id, CSTATE_UUID_LEN) != 0) {
                /* re-created topic: the old state goes */
                part_unlink(r, p);
                part_free(r, p);
                p = NULL;
            }
            if (!p && !(p = part_create(r, t, pi)))
                continue;
            p->seen = true;
            p->min_isr = min_isr;
            p->leader_throttled = lthr && lthr[pi];
            p->follower_throttled = fthr && fthr[pi];
            struct plog *log = logmgr_get(r->lm, t->name, pi);
            if (p->log && p->log != log && r->pstates)
                pstates_forget(r->pstates, p->log); /* replaced (deleted and re-created) */
            if (!log || part_attach_log(p, log) < 0) {
                fail_waiters(r, p, KERR_NOT_LEADER_OR_FOLLOWER);
                fail_deletes(r, p, KERR_NOT_LEADER_OR_FOLLOWER);
                p->role = ROLE_NONE;
                p->log = NULL;
                continue;
            }
            bool epoch_changed = cp->leader_epoch != p->leader_epoch || cp->leader != p->leader;
            bool newer = epoch_changed || cp->partition_epoch >= p->partition_epoch;
            bool replicas_changed = newer && (cp->n_replicas != p->n_replicas ||
                                              memcmp(p->replicas, cstate_part_replicas(cp),
                                                     cp->n_replicas * sizeof(int32_t)) != 0);
            if (newer) {
                /* With our own request in flight the watch may bring its result
                 * before the answer does. */
                const char *cause = p->alter_inflight ? "leader_request" : "coordinator";
                bool isr_moved = p->role == ROLE_LEADER && !epoch_changed && p->log &&
                                 cp->leader == me &&
                                 !ids_same_set(p->isr, p->n_isr, cstate_part_isr(cp), cp->n_isr);
                size_t before = p->n_isr;
                copy_ids(&p->replicas, cstate_part_replicas(cp), cp->n_replicas);
                p->n_replicas = cp->n_replicas;
                adopt_isr(r, p, cstate_part_isr(cp), cp->n_isr);
                p->partition_epoch = cp->partition_epoch;
                if (isr_moved)
                    note_isr_change(r, p, before, cause);
            }
            p->leader = cp->leader;
            p->leader_epoch = cp->leader_epoch;
            if (cp->leader == me) {
                if (p->role != ROLE_LEADER || epoch_changed)
                    become_leader(r, p, &eb);
                else if (replicas_changed)
                    leader_replicas_changed(p);
                if (p->alter_adding >= 0 && ids_contain(p->isr, p->n_isr, p->alter_adding))
                    p->alter_adding = -1;
                maybe_advance_hw(r, p);
                check_min_isr(r, p);
            } else {
                if (p->role != ROLE_FOLLOWER || epoch_changed)
                    become_follower(r, p);
                p->fetcher = cp->leader >= 0 ? fetcher_get(r, cp->leader) : NULL;
                if (p->fetcher) {
                    p->fetcher->used = true;
                    fetcher_add(p->fetcher, p);
                }
            }
        }
    }
    /* The epochs of every leadership taken up above, durable in one go. */
    size_t nb = eb.n;
    size_t bad = epochcache_batch_commit(&eb);
    if (bad)
        log_error("replica", "%zu of %zu new leader epochs could not be written to their "
                  "epoch caches", bad, nb);
    epochcache_batch_deinit(&eb);
    pchlog_flush(r->pchl, clock_mono_ms());
    /* Replicas no longer hosted here. */
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct repl_part *p = r->buckets[i];
        while (p) {
            struct repl_part *next = p->hnext;
            if (!p->seen) {
                part_unlink(r, p);
                part_free(r, p);
            }
            p = next;
        }
    }
    /* Fetchers with nothing left to fetch. */
    struct fetcher **pp = &r->fetchers;
    while (*pp) {
        struct fetcher *f = *pp;
        if (!f->used) {
            *pp = f->next;
            log_info("replica", "stopped fetching from broker %d", f->leader);
            fetcher_free(f);
            continue;
        }
        pp = &f->next;
    }
    for (struct fetcher *f = r->fetchers; f; f = f->next)
        fetcher_kick(f);
    /* Parked follower fetches may now be answered differently (role changes). */
    wake_fetches(r, NULL);
}

/* ---- metrics -------------------------------------------------------------------------------- */

struct repl_traffic *repl_part_traffic(struct repl_part *p)
{
    return &p->traffic;
}

void repl_part_view_get(const struct repl_part *p, struct repl_part_view *ret)
{
    struct repl_part_view v = {
        .topic = p->topic,
        .partition = p->partition,
        .has_log = p->log != NULL,
        .leader = p->role == ROLE_LEADER,
        .leaderless = p->leader < 0,
        .n_replicas = p->n_replicas,
        .n_isr = p->n_isr,
        .min_isr = p->min_isr,
        .max_follower_lag = -1,
        .log_size_bytes = p->log ? plog_size_bytes(p->log) : 0,
        .traffic = p->traffic,
    };
    if (v.leader && p->log) {
        int64_t end = leo(p), start = plog_log_start_offset(p->log);
        v.max_follower_lag = 0;
        for (uint8_t i = 0; p->fol && i < p->n_replicas; i++) {
            const struct rfollower *f = &p->fol[i];
            if (f->id == p->leader)
                continue; /* our own slot */
            int64_t at = f->leo >= 0 ? f->leo : start;
            if (end - at > v.max_follower_lag)
                v.max_follower_lag = end - at;
        }
    }
    *ret = v;
}

void repl_get_counters(const struct repl *r, struct repl_counters *ret)
{
    struct purg_stats ps;
    memset(ret, 0, sizeof(*ret));
    ret->isr_shrinks = r->isr_shrinks;
    ret->isr_expands = r->isr_expands;
    purg_get_stats(r->acks, &ps);
    ret->produce_waiting = ps.watched;
    purg_get_stats(r->fetches, &ps);
    ret->follower_fetch_waiting = ps.watched;
    purg_get_stats(r->deletes, &ps);
    ret->delete_waiting = ps.watched;
}

/* ---- produce path --------------------------------------------------------------------------- */

int16_t repl_produce_check(struct repl *r, struct repl_part *p, int16_t acks)
{
    if (!p || p->role != ROLE_LEADER || !p->log)
        return KERR_NOT_LEADER_OR_FOLLOWER;
    if (!coordclient_lease_valid(r->cc, clock_mono_ms()))
        return KERR_NOT_LEADER_OR_FOLLOWER;
    if (acks == -1 && p->n_isr < p->min_isr)
        return KERR_NOT_ENOUGH_REPLICAS;
    return 0;
}

void repl_leader_appended(struct repl *r, struct repl_part *p)
{
    maybe_advance_hw(r, p);
    wake_fetches(r, p);
}

int repl_wait_hw(struct repl *r, struct repl_part *p, int64_t last_offset, int32_t timeout_ms,
                 const void *owner, repl_ack_fn fn, void *ud)
{
    if (p->hw > last_offset)
        return 1;
    struct ack_waiter *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    purg_op_init(&w->op, waiter_try, waiter_complete, owner);
    w->r = r;
    w->part = p;
    w->last_offset = last_offset;
    w->fn = fn;
    w->ud = ud;
    uint64_t key = part_key(p);
    /* Watch without trying: the HW was just compared. */
    int rc = purg_watch(r->acks, &w->op, &key, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (rc < 0) {
        free(w);
        return rc;
    }
    return 0;
}

size_t repl_cancel_owner(struct repl *r, const void *owner)
{
    return purg_cancel_owner(r->acks, owner) + purg_cancel_owner(r->deletes, owner);
}

/* ---- DeleteRecords (leader) ----------------------------------------------------------------- */

int16_t repl_delete_records(struct repl *r, struct repl_part *p, int64_t offset,
                            int64_t *ret_offset)
{
    if (!p || p->role != ROLE_LEADER || !p->log || !coordclient_lease_valid(r->cc, clock_mono_ms()))
        return KERR_NOT_LEADER_OR_FOLLOWER;
    if (offset == REPL_DELETE_TO_HW)
        offset = p->hw;
    if (offset < 0 || offset > p->hw)
        return KERR_OFFSET_OUT_OF_RANGE;
    int rc = plog_raise_start_offset(p->log, offset);
    if (rc == -ERANGE)
        return KERR_OFFSET_OUT_OF_RANGE;
    if (rc < 0)
        return KERR_KAFKA_STORAGE_ERROR;
    /* Parked follower fetches go out now, so the followers learn the new log
     * start (and report theirs) without waiting for replica.fetch.wait.max.ms. */
    wake_fetches(r, p);
    *ret_offset = offset;
    return 0;
}

int repl_wait_low_watermark(struct repl *r, struct repl_part *p, int64_t offset, int32_t timeout_ms,
                            const void *owner, repl_delete_fn fn, void *ud)
{
    struct delete_waiter *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    purg_op_init(&w->op, delete_try, delete_complete, owner);
    w->r = r;
    w->part = p;
    w->offset = offset;
    w->fn = fn;
    w->ud = ud;
    uint64_t key = part_key(p);
    if (delete_try(&w->op)) {
        free(w);
        return 1;
    }
    int rc = purg_watch(r->deletes, &w->op, &key, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (rc < 0) {
        free(w);
        return rc;
    }
    return 0;
}

int64_t repl_part_low_watermark(const struct repl *r, const struct repl_part *p)
{
    return low_watermark(r, p);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int repl_new(const struct repl_options *opts, struct repl **ret)
{
    struct repl *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->base = opts->base;
    r->s = opts->s;
    r->lm = opts->lm;
    r->cc = opts->cc;
    r->pstates = opts->pstates;
    r->on_visible = opts->on_visible;
    r->ud = opts->ud;
    quota_init(&r->leader_quota);
    quota_init(&r->follower_quota);
    if (fsess_cache_new((uint32_t)clock_mono_us(), &r->sessions) < 0 ||
        purg_new(r->base, "produce", &r->acks) < 0 ||
        purg_new(r->base, "replica-fetch", &r->fetches) < 0 ||
        purg_new(r->base, "delete-records", &r->deletes) < 0) {
        purg_free(r->fetches);
        purg_free(r->acks);
        fsess_cache_free(r->sessions);
        free(r);
        return -ENOMEM;
    }
    const struct broker_settings *s = opts->s;
    const char *listen_host = s->repl_host[0] ? s->repl_host : s->listen.host;
    if (!listen_host[0])
        listen_host = "0.0.0.0";
    snprintf(r->adv_host, sizeof(r->adv_host), "%s",
             s->repl_host[0] && strcmp(s->repl_host, "0.0.0.0") != 0 ? s->repl_host
                                                                     : s->advertised.host);
    struct rpc_handler h[1] = {{on_fetch_request, r}};
    struct rpc_server_options so = {0};
    so.max_frame_bytes = FETCH_RPC_MAX_FRAME;
    so.max_output_bytes = 2u * FETCH_RPC_MAX_FRAME;
    int rc = rpc_server_new(r->base, listen_host, s->repl_port, &weir__repl__replica__descriptor, h,
                            &so, &r->srv);
    if (rc < 0) {
        purg_free(r->deletes);
        purg_free(r->fetches);
        purg_free(r->acks);
        fsess_cache_free(r->sessions);
        free(r);
        return rc;
    }
    r->isr_timer = event_new(r->base, -1, EV_PERSIST, isr_timer_cb, r);
    r->alter_ev = evtimer_new(r->base, alter_flush, r);
    if (!r->isr_timer || !r->alter_ev || pchlog_new(r->base, 1000, &r->pchl) < 0) {
        repl_free(r);
        return -ENOMEM;
    }
    int64_t iv = s->replica_lag_time_max_ms / 2;
    if (iv < 100)
        iv = 100;
    struct timeval tv = {(time_t)(iv / 1000), (suseconds_t)((iv % 1000) * 1000)};
    evtimer_add(r->isr_timer, &tv);
    *ret = r;
    return 0;
}

void repl_free(struct repl *r)
{
    if (!r)
        return;
    r->freeing = true;
    /* Parked follower fetches are answered with the logs as they are. */
    purg_complete_all(r->fetches, PURG_SHUTDOWN);
    while (r->fetchers) {
        struct fetcher *f = r->fetchers;
        r->fetchers = f->next;
        fetcher_free(f);
    }
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct repl_part *p = r->buckets[i];
        while (p) {
            struct repl_part *next = p->hnext;
            part_free(r, p);
            p = next;
        }
    }
    free(r->buckets);
    if (r->isr_timer)
        event_free(r->isr_timer);
    if (r->alter_ev)
        event_free(r->alter_ev);
    pchlog_free(r->pchl);
    alter_items_free(r->alters, r->n_alters);
    rpc_server_free(r->srv);
    purg_free(r->fetches);
    purg_free(r->deletes); /* empty too */
    purg_free(r->acks);    /* empty: every partition failed its waiters */
    fsess_cache_free(r->sessions);
    free(r->lthr_buf.v);
    free(r->fthr_buf.v);
    free(r);
}
