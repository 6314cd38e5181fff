/* replicas: local logs reconciled with the assignments of the local cstate. */
#include "broker/replicas.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coordclient.h"
#include "broker/effconfig.h"
#include "broker/replica/repl.h"
#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "broker/storage/storage_config.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/meta/state.h"

/* Replicas seen assigned here by metadata of our cluster, with the topic name
 * and the topic id the local log has on disk (partition.metadata): a log is
 * deleted only when the metadata that once assigned it here, under that name
 * and with that very topic id, no longer does. (The name matters: a copied or
 * renamed directory carries another topic's id.) An open-addressing set keyed
 * by (topic id, partition); a topic id has one name. */
struct seen_key {
    uint8_t id[CSTATE_UUID_LEN];
    int32_t partition;
    bool used;
    char *name;
};

/* What to do with a local log that the metadata does not assign here (as it
 * is on disk). */
enum verdict { KEEP, DELETE, SET_ASIDE };

struct action {
    char *topic;
    int32_t partition;
    enum verdict what;
    bool adopt; /* KEEP a log without a topic id: record the metadata's */
};

#define RECONCILE_SLICE_MS 20
/* Logs per creation batch on the worker pool: one done callback opens them;
 * two batches in flight keep both worker threads on it. */
#define RECONCILE_BATCH   64
#define RECONCILE_PROGRESS_MS 250
/* The first logs of a pass are created on the loop, as before the worker pool
 * took over: a topic of a few partitions is ready for produce when the
 * metadata callback returns. Beyond them, batches. */
#define RECONCILE_SYNC_LOGS 32
#define RECONCILE_BATCHES 2

/* "deleted log" lines: one each for the first LOG_LINES_PER_WINDOW per
 * LOG_WINDOW_MS, the rest at debug and counted into one line at the end of the
 * pass (a 10,000-partition topic deleted is not 10,000 lines). One broker per
 * process, so the budget is the file's. */
#define LOG_LINES_PER_WINDOW 20
#define LOG_WINDOW_MS        10000
static struct log_budget deleted_lines;

struct rbatch;

struct replicas {
    int32_t id;
    struct logmgr *lm;
    struct coordclient *cc;
    struct seen_key *seen;
    size_t n_seen, cap_seen; /* cap a power of two, at most half full */
    struct repl *repl;
    const struct config *cfg; /* static configuration, or NULL */
    /* The log defaults with the dynamic broker configs layered in, and the
     * dynamic entries they were computed from ("id\0name\0value\0"...). */
    struct plog_config dyn_base;
    char *dyn_key;
    size_t dyn_key_len;

    /* A reconcile pass runs in slices of RECONCILE_SLICE_MS on the loop, so a
     * create or delete of thousands of logs never holds heartbeats, produce
     * and fetch for longer than that (issue 16). Without a loop
     * (replicas_set_loop() not called) a pass runs to the end at once. */
    struct event_base *base;
    struct event *cont;  /* the next slice of the pass under way */
    struct event *progress; /* the next on_progress call */
    bool in_pass;        /* a pass started and has not finished */
    bool started;        /* this pass classified the local logs */
    bool again;          /* the metadata changed since: another pass follows this one */
    struct action *acts; /* the pass's deletions and set-asides, in order */
    size_t n_acts, i_act;
    char *cursor_topic;     /* where the create scan resumes (NULL: from the start) */
    int32_t cursor_part;
    struct rbatch *batch[RECONCILE_BATCHES]; /* out on the worker pool, NULL: free */
    size_t n_batches;       /* of them in flight (the pass waits for them) */
    bool scan_done;         /* the create scan reached the end; a batch may be out */
    int sync_left;          /* logs this pass may still create on the loop */
    size_t pass_created;    /* logs created or removed since the progress callback */
    size_t pass_logs;       /* logs created or removed by this pass */
    size_t pass_slices;
    int64_t pass_t0_ns;
    void (*on_progress)(void *ud);
    void *progress_ud;
    struct replicas_pass_stats stats;
};

struct rbatch {
    struct replicas *r; /* NULL once the replicas were freed under the batch */
    size_t n;
    struct logmgr_new_log logs[RECONCILE_BATCH];
};

void replicas_set_repl(struct replicas *r, struct repl *repl)
{
    r->repl = repl;
}

int replicas_new(int32_t broker_id, struct logmgr *lm, struct coordclient *cc,
                 const struct config *cfg, struct replicas **ret)
{
    struct replicas *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->id = broker_id;
    r->lm = lm;
    r->cc = cc;
    r->cfg = cfg;
    *ret = r;
    return 0;
}

static void pass_drop(struct replicas *r)
{
    for (size_t i = r->i_act; i < r->n_acts; i++)
        free(r->acts[i].topic);
    free(r->acts);
    r->acts = NULL;
    r->n_acts = r->i_act = 0;
    free(r->cursor_topic);
    r->cursor_topic = NULL;
    r->cursor_part = 0;
    r->scan_done = false;
}

void replicas_free(struct replicas *r)
{
    if (!r)
        return;
    pass_drop(r);
    for (size_t i = 0; i < RECONCILE_BATCHES; i++)
        if (r->batch[i])
            r->batch[i]->r = NULL; /* its done callback frees it */
    if (r->cont)
        event_free(r->cont);
    if (r->progress)
        event_free(r->progress);
    for (size_t i = 0; i < r->cap_seen; i++)
        free(r->seen[i].name);
    free(r->seen);
    free(r->dyn_key);
    free(r);
}

static size_t seen_hash(const uint8_t *id, int32_t partition)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < CSTATE_UUID_LEN; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    h = (h ^ (uint32_t)partition) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

static struct seen_key *seen_slot(struct seen_key *tab, size_t cap, const uint8_t *id,
                                  int32_t partition)
{
    size_t i = seen_hash(id, partition) & (cap - 1);
    while (tab[i].used &&
           !(tab[i].partition == partition && memcmp(tab[i].id, id, CSTATE_UUID_LEN) == 0))
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static bool seen_has(const struct replicas *r, const char *name, const uint8_t *id,
                     int32_t partition)
{
    if (!r->cap_seen)
        return false;
    const struct seen_key *k = seen_slot(r->seen, r->cap_seen, id, partition);
    return k->used && strcmp(k->name, name) == 0;
}

static int seen_add(struct replicas *r, const char *name, const uint8_t *id, int32_t partition)
{
    if ((r->n_seen + 1) * 2 > r->cap_seen) {
        size_t cap = r->cap_seen ? r->cap_seen * 2 : 64;
        struct seen_key *tab = calloc(cap, sizeof(*tab));
        if (!tab)
            return -ENOMEM;
        for (size_t i = 0; i < r->cap_seen; i++)
            if (r->seen[i].used)
                *seen_slot(tab, cap, r->seen[i].id, r->seen[i].partition) = r->seen[i];
        free(r->seen);
        r->seen = tab;
        r->cap_seen = cap;
    }
    struct seen_key *k = seen_slot(r->seen, r->cap_seen, id, partition);
    if (!k->used) {
        if (!(k->name = strdup(name)))
            return -ENOMEM;
        memcpy(k->id, id, CSTATE_UUID_LEN);
        k->partition = partition;
        k->used = true;
        r->n_seen++;
    }
    return 0;
}

struct classify {
    struct replicas *r;
    const struct cstate *s;
    bool caught_up;
    struct action *v;
    size_t n, cap;
};

static void classify_log(void *arg, const char *topic, int32_t partition, struct plog *log)
{
    (void)log;
    struct classify *c = arg;
    struct replicas *r = c->r;
    uint8_t id[CSTATE_UUID_LEN];
    bool has_id = logmgr_topic_id(r->lm, topic, partition, id) == 0;
    const struct cstate_topic *t = cstate_topic_by_name(c->s, topic);
    bool assigned =
        t && partition < t->n_parts && cstate_part_is_replica(&t->parts[partition], r->id);
    struct action a = {.partition = partition, .what = KEEP};
    if (assigned && has_id && memcmp(id, t->id, CSTATE_UUID_LEN) == 0) {
        seen_add(r, topic, id, partition);
        return;
    }
    if (assigned && !has_id) {
        /* A log from before topic ids: it is this topic's once the state is
         * current (a replay may still be passing an older topic of that name). */
        if (!c->caught_up)
            return;
        a.adopt = true;
    } else if (has_id && seen_has(r, topic, id, partition)) {
        /* Our cluster's metadata assigned exactly this replica here and now no
         * longer does: a deletion or a reassignment away. */
        a.what = DELETE;
    } else if (c->caught_up) {
        /* Not ours as far as the current metadata knows, and we never saw it
         * assigned: set aside, never deleted (Kafka 3.7's stray logs). */
        a.what = SET_ASIDE;
    } else {
        return;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct action *nv = realloc(c->v, cap * sizeof(*nv));
        if (!nv)
            return;
        c->v = nv;
        c->cap = cap;
    }
    if (!(a.topic = strdup(topic)))
        return;
    c->v[c->n++] = a;
}

static void act(struct replicas *r, const struct cstate *s, const struct action *a)
{
    int rc;
    char where[4200] = "";
    const struct cstate_topic *t = cstate_topic_by_name(s, a->topic);
    if (a->what != KEEP && t && a->partition < t->n_parts &&
        cstate_part_is_replica(&t->parts[a->partition], r->id)) {
        /* Classified in an earlier slice; the metadata assigns it here again
         * since: the next pass decides with what it says then. */
        uint8_t id[CSTATE_UUID_LEN];
        if (logmgr_topic_id(r->lm, a->topic, a->partition, id) != 0 ||
            !memcmp(id, t->id, CSTATE_UUID_LEN))
            return;
    }
    switch (a->what) {
    case KEEP:
        if (!a->adopt || !t)
            return;
        rc = logmgr_set_topic_id(r->lm, a->topic, a->partition, t->id);
        if (rc < 0)
            log_error("replicas", "recording the topic id of log %s-%d: %s", a->topic, a->partition,
                      strerror(-rc));
        else
            seen_add(r, t->name, t->id, a->partition);
        return;
    case DELETE:
        rc = logmgr_delete(r->lm, a->topic, a->partition);
        if (rc < 0 && rc != -ENOENT)
            log_error("replicas", "deleting log %s-%d: %s", a->topic, a->partition, strerror(-rc));
        else
            log_event(log_budget_level(&deleted_lines, LOG_LEVEL_INFO, clock_mono_ms(),
                                       LOG_LINES_PER_WINDOW, LOG_WINDOW_MS),
                      "replicas", "log_deleted",
                      LOG_FIELDS(LF_STR("topic", a->topic), LF_INT("partition", a->partition),
                                 LF_STR("reason", t ? "reassigned_or_recreated" : "topic_deleted")),
                      "deleted log %s-%d: the metadata removed this replica (%s)", a->topic,
                      a->partition, t ? "reassigned away or topic re-created" : "topic deleted");
        return;
    case SET_ASIDE:
        rc = logmgr_set_aside(r->lm, a->topic, a->partition, where, sizeof(where));
        if (rc < 0 && rc != -ENOENT)
            log_error("replicas", "setting log %s-%d aside: %s", a->topic, a->partition,
                      strerror(-rc));
        else if (rc == 0)
            log_warn("replicas",
                     "log %s-%d is not known to the metadata of cluster %s: set aside as %s "
                     "(kept; see docs/operations.md)",
                     a->topic, a->partition, s->cluster_id, where);
        return;
    }
}

void replicas_topic_log_config(const struct plog_config *base, const struct cstate_topic *t,
                               struct plog_config *ret)
{
    struct plog_config cfg = *base;
    for (uint32_t i = 0; i < t->n_configs; i++) {
        const struct cstate_config_entry *c = &t->configs[i];
        if (storage_config_topic_override(&cfg, c->name, c->value) < 0)
            log_warn("replicas", "topic %s: ignoring invalid %s=%s from the metadata", t->name,
                     c->name, c->value);
    }
    *ret = cfg;
}

/* Bring an open log's settings up to date with its topic's overrides; the
 * watch delivers every change, so this is how AlterConfigs reaches the logs of
 * leaders and followers alike without a restart. */
static void apply_log_config(const struct cstate_topic *t, int32_t p, struct plog *log,
                             const struct plog_config *want)
{
    if (memcmp(plog_get_config(log), want, sizeof(*want)) == 0)
        return;
    plog_set_config(log, want);
    /* Debug: at start-up every log gets its settings here (the coordinator logs
     * each config change once). */
    log_debug("replicas",
              "%s-%d: log settings now segment.bytes=%lld segment.ms=%lld retention.ms=%lld "
              "retention.bytes=%lld",
              t->name, p, (long long)want->segment_bytes, (long long)want->roll_ms,
              (long long)want->retention_ms, (long long)want->retention_bytes);
}

/* The dynamic entries that concern this broker, as one byte string, so a
 * watch update that changes none of them costs a comparison. */
static int dyn_key(const struct replicas *r, const struct cstate *s, char **ret, size_t *ret_len)
{
    size_t len = 0;
    for (size_t i = 0; i < s->n_broker_configs; i++) {
        const struct cstate_broker_config *bc = &s->broker_configs[i];
        if (bc->broker_id == CSTATE_CLUSTER_DEFAULT || bc->broker_id == r->id)
            len += 12 + strlen(bc->name) + 1 + strlen(bc->value) + 1;
    }
    char *k = malloc(len + 1), *p = k;
    if (!k)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_broker_configs; i++) {
        const struct cstate_broker_config *bc = &s->broker_configs[i];
        if (bc->broker_id == CSTATE_CLUSTER_DEFAULT || bc->broker_id == r->id) {
            int n = snprintf(p, 12, "%d", (int)bc->broker_id);
            p += n + 1;
            size_t nl = strlen(bc->name) + 1, vl = strlen(bc->value) + 1;
            memcpy(p, bc->name, nl);
            p += nl;
            memcpy(p, bc->value, vl);
            p += vl;
        }
    }
    *ret = k;
    *ret_len = (size_t)(p - k);
    return 0;
}

/* The broker's log defaults in effect: the static ones, with the dynamic
 * cluster default and this broker's dynamic values layered in (Kafka's
 * precedence: per broker > cluster default > static > default). */
static const struct plog_config *log_defaults(struct replicas *r, const struct cstate *s)
{
    const struct plog_config *stat = logmgr_default_config(r->lm);
    if (!r->cfg || !effconfig_has_dynamic(s, r->id)) {
        free(r->dyn_key);
        r->dyn_key = NULL;
        return stat;
    }
    char *k;
    size_t klen;
    if (dyn_key(r, s, &k, &klen) < 0) {
        log_error("replicas", "dynamic broker configs: out of memory; keeping the previous log "
                              "defaults");
        return r->dyn_key ? &r->dyn_base : stat;
    }
    if (r->dyn_key && klen == r->dyn_key_len && !memcmp(k, r->dyn_key, klen)) {
        free(k);
        return &r->dyn_base;
    }
    struct config *eff;
    if (effconfig_build(s, r->cfg, r->id, &eff) < 0) {
        free(k);
        log_error("replicas", "dynamic broker configs: out of memory; keeping the previous log "
                              "defaults");
        return r->dyn_key ? &r->dyn_base : stat;
    }
    storage_config_plog(eff, &r->dyn_base);
    config_free(eff);
    free(r->dyn_key);
    r->dyn_key = k;
    r->dyn_key_len = klen;
    log_info("replicas",
             "log defaults with dynamic broker configs: segment.bytes=%lld segment.ms=%lld "
             "retention.ms=%lld retention.bytes=%lld",
             (long long)r->dyn_base.segment_bytes, (long long)r->dyn_base.roll_ms,
             (long long)r->dyn_base.retention_ms, (long long)r->dyn_base.retention_bytes);
    return &r->dyn_base;
}

/* Whether this slice has used its time (checked between logs: one log's
 * creation or deletion is the unit of work). */
static bool slice_over(int64_t deadline_ns)
{
    return deadline_ns && clock_mono_ns() >= deadline_ns;
}

static void pass_run(struct replicas *r);

static void progress_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct replicas *r = arg;
    if (r->pass_created && r->on_progress) {
        r->pass_created = 0;
        r->on_progress(r->progress_ud);
    }
}

/* Replication takes up the logs made so far at most every
 * RECONCILE_PROGRESS_MS: its scan of every partition costs tens of
 * milliseconds with 10,000 of them, too much after every batch. */
static void progress_soon(struct replicas *r)
{
    if (!r->pass_created || !r->progress || evtimer_pending(r->progress, NULL))
        return;
    struct timeval tv = {0, RECONCILE_PROGRESS_MS * 1000};
    if (evtimer_add(r->progress, &tv) < 0)
        progress_fire(-1, 0, r);
}

static void batch_done(void *ud, struct logmgr_new_log *logs, size_t n)
{
    struct rbatch *b = ud;
    struct replicas *r = b->r;
    for (size_t i = 0; i < n; i++) {
        struct logmgr_new_log *l = &logs[i];
        if (r && (l->result == 0 || l->result == -EEXIST)) {
            seen_add(r, l->topic, l->topic_id, l->partition);
            if (l->result == 0) {
                r->pass_created++;
                r->pass_logs++;
                r->stats.logs_created++;
                log_debug("replicas", "created log %s-%d", l->topic, l->partition);
            }
        } else if (r && l->result != -ESHUTDOWN) {
            log_error("replicas", "creating log %s-%d: %s", l->topic, l->partition,
                      strerror(-l->result));
        }
        free(l->topic);
    }
    free(b);
    if (!r)
        return;
    for (size_t i = 0; i < RECONCILE_BATCHES; i++)
        if (r->batch[i] == b)
            r->batch[i] = NULL;
    r->n_batches--;
    if (r->in_pass) {
        pass_run(r);
    } else if (!r->n_batches && r->again) {
        /* The pass was dropped meanwhile (state not usable then) and the
         * metadata changed since: begin one now. */
        r->again = false;
        replicas_reconcile(r);
    }
    progress_soon(r);
}

/* Hand the batch being built to the worker pool; false when that failed
 * (logged; the batch is dropped and the next metadata change retries). */
static bool batch_submit(struct replicas *r, struct rbatch *b)
{
    int rc = logmgr_create_batch(r->lm, b->logs, b->n, batch_done, b);
    if (rc == 0) {
        for (size_t i = 0; i < RECONCILE_BATCHES; i++)
            if (!r->batch[i]) {
                r->batch[i] = b;
                break;
            }
        r->n_batches++;
        return true;
    }
    log_error("replicas", "creating %zu logs: %s", b->n, strerror(-rc));
    for (size_t i = 0; i < b->n; i++)
        free(b->logs[i].topic);
    free(b);
    return false;
}

/* The create-and-configure scan from the cursor; false when the slice ran out
 * first or batches of new logs are out (the cursor then says where to
 * resume). */
static bool pass_create(struct replicas *r, const struct cstate *s, int64_t deadline_ns)
{
    if (r->scan_done)
        return r->n_batches == 0; /* done once the last batches are */
    if (r->n_batches >= RECONCILE_BATCHES)
        return false; /* resumes from the cursor when one is done */
    struct rbatch *b = NULL;
    const struct plog_config *defaults = log_defaults(r, s);
    const struct cstate_topic *t = s->first_topic;
    int32_t p0 = 0;
    if (r->cursor_topic) {
        const struct cstate_topic *c = cstate_topic_by_name(s, r->cursor_topic);
        if (c) { /* else the topic went away: from the start again */
            t = c;
            p0 = r->cursor_part;
        }
        free(r->cursor_topic);
        r->cursor_topic = NULL;
    }
    for (; t; t = t->next, p0 = 0) {
        struct plog_config cfg;
        replicas_topic_log_config(defaults, t, &cfg);
        for (int32_t p = p0; p < t->n_parts; p++) {
            if (!cstate_part_is_replica(&t->parts[p], r->id))
                continue;
            struct plog *log = logmgr_get(r->lm, t->name, p);
            if (log) {
                /* Not to a log of an older topic of the same name, which is
                 * kept as it is until it is set aside. */
                uint8_t id[CSTATE_UUID_LEN];
                int idr = logmgr_topic_id(r->lm, t->name, p, id);
                if (idr == -ENODATA || (idr == 0 && !memcmp(id, t->id, CSTATE_UUID_LEN)))
                    apply_log_config(t, p, log, &cfg);
                continue;
            }
            bool on_loop = !r->base || r->sync_left > 0;
            if (on_loop && slice_over(deadline_ns)) {
                /* (No batch is being built: batches begin after the logs
                 * created on the loop.) */
                if (!(r->cursor_topic = strdup(t->name)))
                    r->again = true; /* cannot say where: one more pass covers it */
                r->cursor_part = p;
                return false;
            }
            if (on_loop && r->base)
                r->sync_left--; /* a small change completes in its callback */
            else if (!on_loop) {
                /* Created on the worker pool: the inode allocations took
                 * about a millisecond each on this loop. */
                if (!b && !(b = calloc(1, sizeof(*b)))) {
                    log_error("replicas", "creating logs: out of memory");
                    return true;
                }
                struct logmgr_new_log *l = &b->logs[b->n];
                if (!(l->topic = strdup(t->name)))
                    continue;
                l->partition = p;
                l->has_topic_id = true;
                memcpy(l->topic_id, t->id, CSTATE_UUID_LEN);
                l->cfg = cfg;
                b->r = r;
                if (++b->n < RECONCILE_BATCH)
                    continue;
                if (!batch_submit(r, b))
                    return true;
                b = NULL;
                if (r->n_batches < RECONCILE_BATCHES)
                    continue; /* both worker threads get one */
                if (!(r->cursor_topic = strdup(t->name)))
                    r->again = true;
                r->cursor_part = p + 1;
                return false;
            }
            int rc = logmgr_create(r->lm, t->name, p, t->id, &cfg, &log);
            if (rc < 0 && rc != -EEXIST) {
                log_error("replicas", "creating log %s-%d: %s", t->name, p, strerror(-rc));
            } else {
                seen_add(r, t->name, t->id, p);
                r->pass_created++;
                r->pass_logs++;
                r->stats.logs_created++;
                log_debug("replicas", "created log %s-%d", t->name, p);
            }
        }
    }
    r->scan_done = true;
    if (b && !batch_submit(r, b))
        return r->n_batches == 0;
    return r->n_batches == 0;
}

/* One slice of the reconcile pass: until @deadline_ns (0: no limit). True
 * when the pass is finished. */
static bool pass_slice(struct replicas *r, int64_t deadline_ns)
{
    const struct cstate *s = coordclient_state(r->cc);
    /* Only metadata of our own cluster decides anything about our logs. */
    const char *ours = coordclient_cluster_id(r->cc);
    if (!coordclient_synced(r->cc) || !s->cluster_id || (ours[0] && strcmp(s->cluster_id, ours) != 0)) {
        pass_drop(r);
        r->started = r->again = false;
        return true;
    }
    if (!r->started) {
        /* Deletions follow from what this process saw; setting aside waits
         * for a state known to be current: right after a restart the watch
         * may not have replayed the topics yet. */
        pass_drop(r);
        r->started = true;
        r->again = false;
        r->sync_left = RECONCILE_SYNC_LOGS;
        struct classify c = {.r = r, .s = s, .caught_up = coordclient_caught_up(r->cc)};
        logmgr_foreach(r->lm, classify_log, &c);
        r->acts = c.v;
        r->n_acts = c.n;
        r->stats.passes++;
    }
    while (r->i_act < r->n_acts) {
        if (slice_over(deadline_ns))
            return false;
        struct action *a = &r->acts[r->i_act++];
        act(r, s, a);
        if (a->what != KEEP) {
            r->pass_created++;
            r->pass_logs++;
            r->stats.logs_removed++;
        }
        free(a->topic);
        a->topic = NULL;
    }
    if (!pass_create(r, s, deadline_ns))
        return false;
    pass_drop(r);
    r->started = false;
    /* Changes that arrived during the pass may concern logs it had already
     * passed: one more pass, mostly lookups of logs that exist. Continuing
     * rather than beginning again at every change keeps a stream of small
     * deltas (ISR changes) from starving a big creation. */
    return !r->again;
}

static void pass_schedule(struct replicas *r)
{
    static const struct timeval now = {0, 0};
    if (r->cont && evtimer_add(r->cont, &now) == 0)
        return;
    /* Cannot schedule: finish the pass now rather than leave logs missing. */
    log_warn("replicas", "cannot schedule the next reconcile slice: finishing the pass at once");
    pass_slice(r, 0);
    r->in_pass = false;
}

static void pass_run(struct replicas *r)
{
    int64_t t0 = clock_mono_ns();
    bool done = pass_slice(r, r->base ? t0 + (int64_t)RECONCILE_SLICE_MS * 1000000 : 0);
    int64_t took_ms = (clock_mono_ns() - t0) / 1000000;
    r->stats.slices++;
    r->pass_slices++;
    if (took_ms > r->stats.max_slice_ms)
        r->stats.max_slice_ms = took_ms;
    if (done) {
        r->in_pass = false;
        uint32_t quiet = log_budget_take_counted(&deleted_lines);
        if (quiet)
            log_event(LOG_LEVEL_INFO, "replicas", "logs_deleted", LOG_FIELDS(LF_INT("logs", quiet)),
                      "deleted %u more logs the metadata removed (one line each at debug)",
                      (unsigned)quiet);
        if (r->pass_slices > 1)
            log_info("replicas",
                     "reconciled the logs with the metadata in %zu slices over %lld ms (%zu logs "
                     "created or removed; longest slice so far %lld ms)",
                     r->pass_slices, (long long)((clock_mono_ns() - r->pass_t0_ns) / 1000000),
                     r->pass_logs, (long long)r->stats.max_slice_ms);
        return;
    }
    r->in_pass = true;
    if (!r->n_batches) /* else a batch's done callback continues the pass */
        pass_schedule(r);
}

static void pass_continue(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct replicas *r = arg;
    pass_run(r);
    /* The logs created by this slice are taken up by replication soon, not
     * at the next metadata change. */
    progress_soon(r);
}

void replicas_reconcile(struct replicas *r)
{
    if (r->in_pass || r->n_batches) {
        r->again = true; /* changes during a pass coalesce into one more pass */
        return;
    }
    r->started = false;
    r->pass_logs = 0;
    r->pass_slices = 0;
    r->pass_t0_ns = clock_mono_ns();
    pass_run(r);
}

int replicas_set_loop(struct replicas *r, struct event_base *base, void (*on_progress)(void *ud),
                      void *ud)
{
    r->cont = evtimer_new(base, pass_continue, r);
    r->progress = evtimer_new(base, progress_fire, r);
    if (!r->cont || !r->progress)
        return -ENOMEM;
    r->base = base;
    r->on_progress = on_progress;
    r->progress_ud = ud;
    return 0;
}

bool replicas_reconciling(const struct replicas *r)
{
    return r->in_pass;
}

void replicas_get_pass_stats(const struct replicas *r, struct replicas_pass_stats *ret)
{
    *ret = r->stats;
}

int16_t replicas_lookup(struct replicas *r, const char *topic, int32_t partition,
                        int32_t current_leader_epoch, struct replicas_leader *ret)
{
    const struct cstate *s = coordclient_state(r->cc);
    const struct cstate_topic *t = cstate_topic_by_name(s, topic);
    if (!t || partition < 0 || partition >= t->n_parts)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    const struct cstate_partition *p = &t->parts[partition];
    struct replicas_leader l = {.log = NULL,
                                .part = NULL,
                                .high_watermark = -1,
                                .leader_epoch = p->leader_epoch,
                                .leader = p->leader};
    if (p->leader < 0) {
        *ret = l;
        return KERR_LEADER_NOT_AVAILABLE;
    }
    if (p->leader != r->id) {
        *ret = l;
        return KERR_NOT_LEADER_OR_FOLLOWER;
    }
    if (current_leader_epoch >= 0 && current_leader_epoch != p->leader_epoch) {
        *ret = l;
        return current_leader_epoch < p->leader_epoch ? KERR_FENCED_LEADER_EPOCH
                                                      : KERR_UNKNOWN_LEADER_EPOCH;
    }
    l.log = logmgr_get(r->lm, topic, partition);
    if (!l.log) {
        *ret = l;
        return KERR_LEADER_NOT_AVAILABLE; /* assigned but not created yet (or creation failed) */
    }
    uint8_t id[CSTATE_UUID_LEN];
    if (logmgr_topic_id(r->lm, topic, partition, id) == 0 &&
        memcmp(id, t->id, CSTATE_UUID_LEN) != 0) {
        /* The local log is an older topic of that name, not yet deleted or set
         * aside (reconcile waits for a current state): never serve it as this one. */
        l.log = NULL;
        *ret = l;
        return KERR_LEADER_NOT_AVAILABLE;
    }
    if (r->repl) {
        l.part = repl_part_get(r->repl, topic, partition);
        if (!l.part) {
            *ret = l;
            return KERR_LEADER_NOT_AVAILABLE; /* replication has not taken this leadership up yet */
        }
        l.high_watermark = repl_part_high_watermark(l.part);
    } else {
        l.high_watermark = plog_log_end_offset(l.log);
    }
    *ret = l;
    return KERR_NONE;
}
