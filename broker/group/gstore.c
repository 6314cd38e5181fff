/* gstore: the __consumer_offsets store (docs/consumer-groups.md, "Offsets and
 * __consumer_offsets").
 *
 * - Mapping and coordination: group G lives in partition
 *   Utils.abs(java hashCode(G)) % partitions of __consumer_offsets; this
 *   broker coordinates G while it leads that partition and has loaded it.
 * - Creation: the first request that needs the topic asks the coordinator to
 *   create it (offsets.topic.num.partitions, offsets.topic.replication.factor
 *   capped by the live brokers, cleanup.policy=compact).
 * - Writes: records go into the leader's log like a Produce to a led
 *   partition (one uncompressed magic-2 batch, the leader epoch, the broker's
 *   own append path) and their callers are answered once the high watermark
 *   passes them (repl_wait_hw: the "produce" purgatory, as acks=all).
 *   Offset-commit records then take effect in the offset map.
 * - Loading: on taking up leadership of a partition, its log is read from its
 *   start to its end at that moment, load_slice_bytes per event-loop turn:
 *   offset records into the offset map, group records to groups_replay().
 *   COORDINATOR_LOAD_IN_PROGRESS until done. On losing it, the partition's
 *   offsets are dropped and groups_unload_partition() is called.
 * - Expiry: every offsets.retention.check.interval.ms, offsets that
 *   groups_offset_expired() says are past offsets.retention.minutes (KIP-211:
 *   counted from when a group became Empty, from the commit for a standalone
 *   group, never while members subscribe to the topic) get tombstones.
 *
 * Everything runs on the event loop. */
#include "broker/group/gstore.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/group/groups.h"
#include "broker/group/offset_map.h"
#include "broker/group/offset_records.h"
#include "broker/kafka/dispatch.h"
#include "broker/replica/repl.h"
#include "broker/replicas.h"
#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/meta/state.h"
#include "coordinator.pb-c.h"
#include "methods.h"

enum gs_state { GS_NONE, GS_LOADING, GS_LOADED };

struct gs_part {
    enum gs_state st;
    int32_t epoch;     /* leader epoch taken up */
    int64_t load_next; /* next offset to read */
    int64_t load_end;  /* log end when leadership began */
};

/* One append waiting for the HW (or for its deferred answer). */
struct gs_append {
    struct gstore *gs;
    int32_t opart;
    int32_t epoch;
    gstore_done_fn done;
    void *ud;
    uint8_t *batch; /* the appended batch, for applying offset records */
    size_t len;
    int16_t result;
    struct event *defer; /* answering later when the HW was already past */
    struct gs_append *prev, *next;
};

struct gstore {
    struct broker_ctx *b;
    struct groups *groups;
    struct gstore_options o;
    struct omap *map;
    struct gs_part *parts;
    int32_t nparts;
    bool creating;
    bool stopped;
    struct event *load_ev;
    struct event *expire_ev;
    struct gs_append *appends; /* in flight */
    buf_writer scratch;        /* loading: decompressed records */
    uint8_t *readbuf;
    struct gstore_stats stats;
};

/* ---- mapping ------------------------------------------------------------------- */

static int32_t java_hash(const char *s)
{
    /* Java's String.hashCode over UTF-16 code units: group ids are mostly
     * ASCII; decode UTF-8 to code points and split those above the BMP into
     * surrogate pairs so any id maps as Kafka maps it. */
    uint32_t h = 0;
    const uint8_t *p = (const uint8_t *)s;
    while (*p) {
        uint32_t cp;
        int n;
        if (p[0] < 0x80) {
            cp = p[0];
            n = 1;
        } else if ((p[0] & 0xe0) == 0xc0 && (p[1] & 0xc0) == 0x80) {
            cp = ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu);
            n = 2;
        } else if ((p[0] & 0xf0) == 0xe0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80) {
            cp = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
            n = 3;
        } else if ((p[0] & 0xf8) == 0xf0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
                   (p[3] & 0xc0) == 0x80) {
            cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3fu) << 12) | ((p[2] & 0x3fu) << 6) |
                 (p[3] & 0x3fu);
            n = 4;
        } else {
            cp = 0xfffd; /* Java's decoder replaces a malformed byte */
            n = 1;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31 * h + (0xd800 + (cp >> 10));
            h = 31 * h + (0xdc00 + (cp & 0x3ff));
        } else {
            h = 31 * h + cp;
        }
        p += n;
    }
    return (int32_t)h;
}

static const struct cstate_topic *offsets_topic(const struct gstore *gs)
{
    return cstate_topic_by_name(coordclient_state(gs->b->cc), GSTORE_TOPIC);
}

static int32_t partition_count(const struct gstore *gs)
{
    const struct cstate_topic *t = offsets_topic(gs);
    return t && t->n_parts > 0 ? t->n_parts : gs->o.num_partitions;
}

int32_t gstore_partition_of(const char *group_id, int32_t partitions)
{
    /* Kafka's Utils.abs: |h|, and 0 for Integer.MIN_VALUE (not h & 0x7fffffff,
     * which is the producer partitioner's toPositive and differs for every
     * negative hash). */
    int32_t h = java_hash(group_id);
    uint32_t a = h == INT32_MIN ? 0u : (uint32_t)(h < 0 ? -h : h);
    return (int32_t)(a % (uint32_t)partitions);
}

int32_t gstore_partition_for(const struct gstore *gs, const char *group_id)
{
    return gstore_partition_of(group_id, partition_count(gs));
}

/* ---- topic creation ------------------------------------------------------------- */

static void create_done(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                        void *ud)
{
    struct gstore *gs = ud;
    gs->creating = false;
    if (status != 0) {
        log_warn("group", "creating %s: %s", GSTORE_TOPIC, errmsg ? errmsg : "no answer");
        return;
    }
    const Weir__Coord__CreateTopicsResponse *r = (const Weir__Coord__CreateTopicsResponse *)msg;
    if (r->n_results == 1 && r->results[0]->error_code &&
        r->results[0]->error_code != KERR_TOPIC_ALREADY_EXISTS)
        log_warn("group", "creating %s: %s: %s", GSTORE_TOPIC,
                 kerr_name((int16_t)r->results[0]->error_code), r->results[0]->error_message);
    else
        log_info("group", "%s created", GSTORE_TOPIC);
}

void gstore_ensure_topic(struct gstore *gs)
{
    if (gs->creating || gs->stopped || offsets_topic(gs) || !coordclient_synced(gs->b->cc))
        return;
    const struct cstate *cs = coordclient_state(gs->b->cc);
    int32_t live = 0;
    for (size_t i = 0; i < cs->n_brokers; i++)
        live += cs->brokers[i].state == CSTATE_BROKER_REGISTERED;
    int32_t rf = gs->o.replication_factor;
    if (live > 0 && rf > live) {
        log_warn("group",
                 "offsets.topic.replication.factor %d is more than the %d live brokers: "
                 "%s gets replication factor %d",
                 rf, live, GSTORE_TOPIC, live);
        rf = live;
    }
    Weir__Meta__ConfigEntry policy = WEIR__META__CONFIG_ENTRY__INIT;
    policy.name = "cleanup.policy";
    policy.value = "compact";
    Weir__Meta__ConfigEntry *cfgs[] = {&policy};
    Weir__Coord__CreatableTopic t = WEIR__COORD__CREATABLE_TOPIC__INIT;
    t.name = GSTORE_TOPIC;
    t.num_partitions = gs->o.num_partitions;
    t.replication_factor = rf;
    t.n_configs = 1;
    t.configs = cfgs;
    Weir__Coord__CreatableTopic *tp[] = {&t};
    Weir__Coord__CreateTopicsRequest req = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
    req.n_topics = 1;
    req.topics = tp;
    gs->creating = true;
    log_info("group", "creating %s: %d partitions, replication factor %d", GSTORE_TOPIC,
             gs->o.num_partitions, rf);
    if (coordclient_call(gs->b->cc, COORD_M_CREATE_TOPICS, &req.base, gs->b->s->admin_timeout_ms,
                         create_done, gs) < 0)
        gs->creating = false;
}

/* ---- coordination --------------------------------------------------------------- */

static struct gs_part *part_of(struct gstore *gs, int32_t p)
{
    return p >= 0 && p < gs->nparts ? &gs->parts[p] : NULL;
}

int16_t gstore_coordinator_node(struct gstore *gs, const char *group_id, int32_t *ret_node)
{
    const struct cstate_topic *t = offsets_topic(gs);
    if (!t) {
        gstore_ensure_topic(gs);
        return KERR_COORDINATOR_NOT_AVAILABLE;
    }
    int32_t p = gstore_partition_for(gs, group_id);
    const struct cstate_partition *cp = &t->parts[p];
    if (cp->leader < 0 || !cstate_broker_eligible(coordclient_state(gs->b->cc), cp->leader))
        return KERR_COORDINATOR_NOT_AVAILABLE;
    *ret_node = cp->leader;
    return KERR_NONE;
}

int16_t gstore_coordinator_check(struct gstore *gs, const char *group_id)
{
    if (gs->stopped)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    int32_t node;
    int16_t e = gstore_coordinator_node(gs, group_id, &node);
    if (e)
        return e;
    if (node != gs->b->s->broker_id)
        return KERR_NOT_COORDINATOR;
    struct gs_part *p = part_of(gs, gstore_partition_for(gs, group_id));
    if (!p || p->st == GS_NONE)
        /* The metadata makes us the leader; the log or replication's take-up
         * is still on its way: Kafka's answer while it becomes the coordinator
         * (the client retries here instead of looking again). */
        return KERR_COORDINATOR_LOAD_IN_PROGRESS;
    return p->st == GS_LOADING ? KERR_COORDINATOR_LOAD_IN_PROGRESS : KERR_NONE;
}

bool gstore_group_has_offsets(const struct gstore *gs, const char *group_id)
{
    return omap_group(gs->map, group_id) != NULL;
}

const struct omap *gstore_offsets(const struct gstore *gs)
{
    return gs->map;
}

/* ---- appends -------------------------------------------------------------------- */

/* Kafka's answers for a failed write to __consumer_offsets come from the
 * produce path's errors; leadership moving is NOT_COORDINATOR. */
static int16_t map_write_error(int16_t e)
{
    switch (e) {
    case KERR_NOT_LEADER_OR_FOLLOWER:
    case KERR_KAFKA_STORAGE_ERROR:
    case KERR_UNKNOWN_TOPIC_OR_PARTITION:
        return KERR_NOT_COORDINATOR;
    default:
        return e;
    }
}

/* One offset-commit record (key version 0/1) into the map: a value replaces,
 * a tombstone removes. -EBADMSG when it does not decode, -ENOMEM. */
static int apply_offset_record(struct gstore *gs, int32_t opart, buf_slice key, buf_slice value)
{
    struct orec_key k;
    struct orec_value v;
    if (orec_key_decode(key, &k) < 0)
        return -EBADMSG;
    if (value.len >= 0 && orec_value_decode(value, &v) < 0)
        return -EBADMSG;
    char *group = buf_slice_strdup(k.group);
    char *topic = buf_slice_strdup(k.topic);
    char *md = value.len >= 0 ? buf_slice_strdup(v.metadata) : NULL;
    int r = -ENOMEM;
    if (group && topic && (value.len < 0 || md)) {
        r = 0;
        if (value.len < 0)
            omap_remove(gs->map, group, topic, k.partition);
        else
            r = omap_put(gs->map, group, opart, topic, k.partition, v.offset, v.leader_epoch, md,
                         v.commit_timestamp, v.expire_timestamp);
    }
    if (r == -ENOMEM)
        log_error("group", "out of memory keeping an offset of %s-%d", GSTORE_TOPIC, opart);
    free(group);
    free(topic);
    free(md);
    return r;
}

/* Offset-commit records of a committed batch take effect in the map. */
static void apply_offsets(struct gstore *gs, int32_t opart, const uint8_t *batch, size_t len)
{
    struct batch_record_iter it;
    struct batch_record rec;
    if (batch_records_begin(batch, len, &it) < 0)
        return;
    while (batch_records_next(&it, &rec) == 1) {
        int ver = orec_key_version(rec.key);
        if (ver == 0 || ver == 1)
            apply_offset_record(gs, opart, rec.key, rec.value);
    }
}

static void append_unlink(struct gs_append *a)
{
    struct gstore *gs = a->gs;
    if (a->prev)
        a->prev->next = a->next;
    else
        gs->appends = a->next;
    if (a->next)
        a->next->prev = a->prev;
}

static void append_finish(struct gs_append *a, int16_t e)
{
    struct gstore *gs = a->gs;
    append_unlink(a);
    struct gs_part *p = part_of(gs, a->opart);
    if (e == KERR_NONE && !(p && p->st == GS_LOADED && p->epoch == a->epoch))
        e = KERR_NOT_COORDINATOR; /* unloaded meanwhile: the new leader has it */
    if (e == KERR_NONE && a->batch)
        apply_offsets(gs, a->opart, a->batch, a->len);
    gstore_done_fn done = a->done;
    void *ud = a->ud;
    if (a->defer)
        event_free(a->defer);
    free(a->batch);
    free(a);
    done(ud, map_write_error(e));
}

static void on_hw(void *ud, int16_t error)
{
    append_finish(ud, error);
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gs_append *a = arg;
    append_finish(a, a->result);
}

/* Answer @a on the next loop turn (the interface never calls @done inside). */
static int defer_answer(struct gs_append *a, int16_t e)
{
    a->result = e;
    a->defer = evtimer_new(a->gs->b->base, on_defer, a);
    if (!a->defer)
        return -ENOMEM;
    struct timeval tv = {0, 0};
    evtimer_add(a->defer, &tv);
    return 0;
}

int16_t gstore_append_records(struct gstore *gs, const char *group_id, int32_t n,
                              const buf_slice *keys, const buf_slice *values, gstore_done_fn done,
                              void *ud)
{
    int16_t e = gstore_coordinator_check(gs, group_id);
    if (e)
        return e;
    if (n <= 0)
        return KERR_INVALID_REQUEST;
    int32_t opart = gstore_partition_for(gs, group_id);
    struct replicas_leader l;
    e = replicas_lookup(gs->b->reps, GSTORE_TOPIC, opart, -1, &l);
    if (e)
        return map_write_error(e);
    if (l.leader_epoch != gs->parts[opart].epoch)
        return KERR_NOT_COORDINATOR;
    e = repl_produce_check(gs->b->repl, l.part, -1);
    if (e)
        return map_write_error(e);

    buf_writer w;
    buf_writer_init(&w);
    struct batch_builder bb;
    int64_t now = clock_wall_ms();
    batch_builder_begin(&bb, &w, now);
    for (int32_t i = 0; i < n; i++)
        batch_builder_add(&bb, now, keys[i].ptr, keys[i].len, values[i].ptr,
                          values[i].ptr ? values[i].len : -1, NULL, 0);
    if (batch_builder_finish(&bb) < 0 || buf_writer_error(&w)) {
        buf_writer_deinit(&w);
        return KERR_UNKNOWN_SERVER_ERROR;
    }
    if ((int64_t)w.len > gs->b->s->message_max_bytes) {
        buf_writer_deinit(&w);
        return KERR_INVALID_COMMIT_OFFSET_SIZE;
    }
    struct gs_append *a = calloc(1, sizeof(*a));
    uint8_t *copy = malloc(w.len);
    if (!a || !copy) {
        free(a);
        free(copy);
        buf_writer_deinit(&w);
        return KERR_UNKNOWN_SERVER_ERROR;
    }
    memcpy(copy, w.data, w.len);
    a->gs = gs;
    a->opart = opart;
    a->epoch = l.leader_epoch;
    a->done = done;
    a->ud = ud;
    a->batch = copy;
    a->len = w.len;

    struct plog_append_info info;
    int r = logmgr_append(gs->b->lm, l.log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS,
                          l.leader_epoch, &info);
    buf_writer_deinit(&w);
    if (r < 0) {
        log_error("group", "append to %s-%d failed: %s", GSTORE_TOPIC, opart, strerror(-r));
        free(copy);
        free(a);
        return r == -EMSGSIZE ? KERR_INVALID_COMMIT_OFFSET_SIZE : KERR_NOT_COORDINATOR;
    }
    gs->stats.appends++;
    a->next = gs->appends;
    if (gs->appends)
        gs->appends->prev = a;
    gs->appends = a;
    repl_leader_appended(gs->b->repl, l.part);
    r = repl_wait_hw(gs->b->repl, l.part, info.last_offset, gs->o.commit_timeout_ms, gs, on_hw, a);
    if (r == 1)
        r = defer_answer(a, KERR_NONE);
    if (r < 0 && defer_answer(a, KERR_REQUEST_TIMED_OUT) < 0) {
        /* cannot even defer: the record is in the log, its answer is lost */
        append_unlink(a);
        free(a->batch);
        free(a);
        return KERR_REQUEST_TIMED_OUT;
    }
    return KERR_NONE;
}

int16_t gstore_append(struct gstore *gs, const char *group_id, buf_slice key, buf_slice value,
                      gstore_done_fn done, void *ud)
{
    return gstore_append_records(gs, group_id, 1, &key, &value, done, ud);
}

/* Has this committed offset expired (the group's state decides from when)? */
static bool entry_expired(const struct gstore *gs, const struct omap_group *g,
                          const struct omap_entry *en, int64_t now)
{
    if (!gs->groups)
        return omap_entry_expired(en, now, gs->o.retention_ms);
    return groups_offset_expired(gs->groups, g->group, en->topic, en->commit_timestamp,
                                 en->expire_timestamp, now, gs->o.retention_ms);
}

/* Tombstones for @offsets entries of @g (all when @expired_only is false). */
static int16_t tombstone_group(struct gstore *gs, const struct omap_group *g, bool expired_only,
                               int64_t now, gstore_done_fn done, void *ud, int32_t *ret_n)
{
    size_t n = g->n;
    buf_slice *keys = calloc(n ? n : 1, sizeof(*keys));
    buf_slice *vals = calloc(n ? n : 1, sizeof(*vals));
    buf_writer w;
    buf_writer_init(&w);
    size_t *ends = calloc(n ? n : 1, sizeof(*ends));
    int16_t e = KERR_UNKNOWN_SERVER_ERROR;
    if (!keys || !vals || !ends)
        goto out;
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct omap_entry *en = &g->entries[i];
        if (expired_only && !entry_expired(gs, g, en, now))
            continue;
        orec_key_encode(&w, g->group, en->topic, en->partition);
        ends[k++] = w.len;
    }
    if (buf_writer_error(&w))
        goto out;
    for (int32_t i = 0; i < k; i++) {
        size_t start = i ? ends[i - 1] : 0;
        keys[i].ptr = w.data + start;
        keys[i].len = (int32_t)(ends[i] - start);
        vals[i].ptr = NULL;
        vals[i].len = -1;
    }
    *ret_n = k;
    e = k ? gstore_append_records(gs, g->group, k, keys, vals, done, ud) : KERR_NONE;
out:
    buf_writer_deinit(&w);
    free(keys);
    free(vals);
    free(ends);
    return e;
}

int16_t gstore_delete_group_offsets(struct gstore *gs, const char *group_id, gstore_done_fn done,
                                    void *ud)
{
    int16_t e = gstore_coordinator_check(gs, group_id);
    if (e)
        return e;
    const struct omap_group *g = omap_group(gs->map, group_id);
    int32_t n = 0;
    if (g && (e = tombstone_group(gs, g, false, 0, done, ud, &n)) != KERR_NONE)
        return e;
    if (n == 0) {
        /* nothing to write: still answered later, never inside */
        struct gs_append *a = calloc(1, sizeof(*a));
        if (!a)
            return KERR_UNKNOWN_SERVER_ERROR;
        a->gs = gs;
        a->opart = gstore_partition_for(gs, group_id);
        a->epoch = gs->parts[a->opart].epoch;
        a->done = done;
        a->ud = ud;
        a->next = gs->appends;
        if (gs->appends)
            gs->appends->prev = a;
        gs->appends = a;
        if (defer_answer(a, KERR_NONE) < 0) {
            append_unlink(a);
            free(a);
            return KERR_UNKNOWN_SERVER_ERROR;
        }
    }
    return KERR_NONE;
}

/* ---- expiry --------------------------------------------------------------------- */

struct expire_scan {
    struct gstore *gs;
    int64_t now;
    char **groups;
    size_t n, cap;
};

static void collect_expired(void *ud, const struct omap_group *g)
{
    struct expire_scan *sc = ud;
    struct gs_part *p = part_of(sc->gs, g->opart);
    if (!p || p->st != GS_LOADED)
        return;
    bool any = false;
    for (size_t i = 0; i < g->n && !any; i++)
        any = entry_expired(sc->gs, g, &g->entries[i], sc->now);
    if (!any)
        return;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        char **ng = realloc(sc->groups, cap * sizeof(*ng));
        if (!ng)
            return;
        sc->groups = ng;
        sc->cap = cap;
    }
    char *c = strdup(g->group);
    if (c)
        sc->groups[sc->n++] = c;
}

struct expire_job {
    struct gstore *gs;
    char group[]; /* the group whose offsets expired */
};

/* The tombstones are committed: an Empty group with no offsets left goes too
 * (Kafka's cleanupGroupMetadata), so it leaves ListGroups. */
static void expire_done(void *ud, int16_t kerr)
{
    struct expire_job *j = ud;
    if (kerr)
        log_info("group", "expiring offsets of group %s: %s (next check retries)", j->group,
                 kerr_name(kerr));
    else if (j->gs->groups && !gstore_group_has_offsets(j->gs, j->group) &&
             groups_remove_if_unused(j->gs->groups, j->group))
        log_info("group", "group %s removed: empty and no committed offsets left", j->group);
    free(j);
}

void gstore_expire_now(struct gstore *gs)
{
    struct expire_scan sc = {.gs = gs, .now = clock_wall_ms()};
    omap_foreach(gs->map, collect_expired, &sc);
    for (size_t i = 0; i < sc.n; i++) {
        const struct omap_group *g = omap_group(gs->map, sc.groups[i]);
        size_t len = strlen(sc.groups[i]) + 1;
        struct expire_job *j = g ? malloc(sizeof(*j) + len) : NULL;
        int32_t n = 0;
        int16_t e = KERR_NONE;
        if (j) {
            j->gs = gs;
            memcpy(j->group, sc.groups[i], len);
            e = tombstone_group(gs, g, true, sc.now, expire_done, j, &n);
        }
        if (j && e == KERR_NONE && n > 0) {
            gs->stats.offsets_expired += n;
            log_info("group", "expiring %d offsets of group %s", n, sc.groups[i]);
            j = NULL; /* expire_done frees it */
        }
        free(j);
        free(sc.groups[i]);
    }
    free(sc.groups);
}

static void on_expire_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gstore *gs = arg;
    gstore_expire_now(gs);
}

/* ---- loading -------------------------------------------------------------------- */

static void load_record(struct gstore *gs, int32_t opart, const struct batch_record *rec)
{
    int ver = orec_key_version(rec->key);
    if (ver == 0 || ver == 1) {
        if (apply_offset_record(gs, opart, rec->key, rec->value) == -EBADMSG)
            log_warn("group", "%s-%d: an offset record that does not decode; skipped", GSTORE_TOPIC,
                     opart);
    } else if (ver == 2) {
        if (gs->groups)
            groups_replay(gs->groups, opart, rec->key, rec->value);
    } else {
        log_warn("group", "%s-%d: a record with key version %d; skipped", GSTORE_TOPIC, opart, ver);
    }
    gs->stats.records_loaded++;
}

static void load_batches(struct gstore *gs, int32_t opart, const uint8_t *p, size_t len)
{
    size_t at = 0;
    while (len - at >= BATCH_HEADER_SIZE) {
        struct batch_header h;
        if (batch_validate(p + at, len - at, 0, &h) < 0) {
            log_warn("group",
                     "%s-%d: a batch that does not validate at byte %zu; rest of the "
                     "slice skipped",
                     GSTORE_TOPIC, opart, at);
            return;
        }
        size_t total = (size_t)batch_total_size(&h);
        if (!(h.attributes & BATCH_ATTR_CONTROL)) {
            buf_writer_reset(&gs->scratch);
            struct batch_record_iter it;
            struct batch_record rec;
            if (batch_decompress_records(p + at, total, BATCH_DECOMPRESS_MIN, &gs->scratch) == 0) {
                batch_records_begin_raw(gs->scratch.data, gs->scratch.len, h.record_count, &it);
                while (batch_records_next(&it, &rec) == 1)
                    load_record(gs, opart, &rec);
            }
        }
        at += total;
    }
}

#define GS_LOAD_RETRY_MS 500

static void schedule_load_in(struct gstore *gs, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (gs->load_ev)
        evtimer_add(gs->load_ev, &tv);
}

static void schedule_load(struct gstore *gs)
{
    schedule_load_in(gs, 0);
}

/* One slice of one loading partition per turn. */
static void on_load(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gstore *gs = arg;
    for (int32_t i = 0; i < gs->nparts; i++) {
        struct gs_part *p = &gs->parts[i];
        if (p->st != GS_LOADING)
            continue;
        struct plog *log = logmgr_get(gs->b->lm, GSTORE_TOPIC, i);
        if (!log) {
            p->st = GS_NONE;
            continue;
        }
        if (p->load_next < plog_log_start_offset(log))
            p->load_next = plog_log_start_offset(log);
        if (p->load_next < p->load_end) {
            struct plog_read_result rr;
            int r = plog_read(log, p->load_next, p->load_end, gs->o.load_slice_bytes, true, &rr);
            if (r < 0) {
                log_error("group", "loading %s-%d at %lld: %s", GSTORE_TOPIC, i,
                          (long long)p->load_next, strerror(-r));
                /* retried (the log start may have moved); not at once, so a
                 * persistent error cannot spin the loop */
                schedule_load_in(gs, GS_LOAD_RETRY_MS);
                return;
            }
            if (rr.length > 0) {
                uint8_t *buf = malloc((size_t)rr.length);
                int rc = buf ? fsutil_pread_all(seg_file_fd(rr.file), buf, (size_t)rr.length,
                                                rr.position)
                             : -ENOMEM;
                seg_file_unref(rr.file);
                if (rc < 0) {
                    free(buf);
                    log_error("group", "reading %s-%d: %s", GSTORE_TOPIC, i, strerror(-rc));
                    schedule_load_in(gs, GS_LOAD_RETRY_MS);
                    return;
                }
                load_batches(gs, i, buf, (size_t)rr.length);
                free(buf);
                p->load_next = rr.next_offset;
            } else {
                seg_file_unref(rr.file);
                /* an empty read before the end: the rest is in the next segment */
                if (rr.next_offset > p->load_next)
                    p->load_next = rr.next_offset;
                else
                    p->load_next = p->load_end; /* nothing more below the end */
            }
        }
        if (p->load_next >= p->load_end) {
            p->st = GS_LOADED;
            gs->stats.partitions_loading--;
            gs->stats.partitions_loaded++;
            log_event(LOG_LEVEL_INFO, "group", "offsets_partition_loaded",
                      LOG_FIELDS(LF_STR("topic", GSTORE_TOPIC), LF_INT("partition", i),
                                 LF_INT("epoch", p->epoch), LF_INT("offset", p->load_end)),
                      "%s-%d loaded (leader epoch %d, up to offset %lld)", GSTORE_TOPIC, i,
                      p->epoch, (long long)p->load_end);
        }
        schedule_load(gs);
        return;
    }
}

static void unload(struct gstore *gs, int32_t i)
{
    struct gs_part *p = &gs->parts[i];
    if (p->st == GS_NONE)
        return;
    if (p->st == GS_LOADING)
        gs->stats.partitions_loading--;
    else
        gs->stats.partitions_loaded--;
    p->st = GS_NONE;
    omap_drop_partition(gs->map, i);
    if (gs->groups)
        groups_unload_partition(gs->groups, i);
    log_event(LOG_LEVEL_INFO, "group", "offsets_partition_unloaded",
              LOG_FIELDS(LF_STR("topic", GSTORE_TOPIC), LF_INT("partition", i)),
              "%s-%d unloaded (no longer its leader)", GSTORE_TOPIC, i);
}

void gstore_on_metadata(struct gstore *gs)
{
    if (!gs || gs->stopped)
        return;
    const struct cstate_topic *t = offsets_topic(gs);
    int32_t n = t ? t->n_parts : 0;
    if (n != gs->nparts) {
        for (int32_t i = 0; i < gs->nparts; i++)
            unload(gs, i);
        free(gs->parts);
        gs->parts = n ? calloc((size_t)n, sizeof(*gs->parts)) : NULL;
        gs->nparts = gs->parts ? n : 0;
    }
    bool any = false;
    for (int32_t i = 0; i < gs->nparts; i++) {
        struct gs_part *p = &gs->parts[i];
        struct replicas_leader l;
        bool led = replicas_lookup(gs->b->reps, GSTORE_TOPIC, i, -1, &l) == KERR_NONE;
        if (p->st != GS_NONE && (!led || l.leader_epoch != p->epoch))
            unload(gs, i);
        if (led && p->st == GS_NONE) {
            p->st = GS_LOADING;
            p->epoch = l.leader_epoch;
            p->load_next = plog_log_start_offset(l.log);
            p->load_end = plog_log_end_offset(l.log);
            if (p->load_next >= p->load_end) {
                /* an empty log (a new topic): nothing to wait for */
                p->st = GS_LOADED;
                gs->stats.partitions_loaded++;
                log_info("group", "%s-%d: leader (epoch %d), empty: loaded", GSTORE_TOPIC, i,
                         p->epoch);
                continue;
            }
            gs->stats.partitions_loading++;
            log_info("group", "%s-%d: leader (epoch %d), loading offsets %lld..%lld", GSTORE_TOPIC,
                     i, p->epoch, (long long)p->load_next, (long long)p->load_end);
            any = true;
        }
    }
    if (any)
        schedule_load(gs);
}

/* ---- lifecycle ------------------------------------------------------------------ */

int gstore_new(struct broker_ctx *b, const struct gstore_options *o, struct gstore **ret)
{
    struct gstore *gs = calloc(1, sizeof(*gs));
    if (!gs)
        return -ENOMEM;
    gs->b = b;
    gs->o = *o;
    if (gs->o.load_slice_bytes <= 0)
        gs->o.load_slice_bytes = 1 << 20;
    buf_writer_init(&gs->scratch);
    int r = omap_new(&gs->map);
    if (r < 0)
        goto fail;
    gs->load_ev = evtimer_new(b->base, on_load, gs);
    gs->expire_ev = event_new(b->base, -1, EV_PERSIST, on_expire_timer, gs);
    if (!gs->load_ev || !gs->expire_ev) {
        r = -ENOMEM;
        goto fail;
    }
    struct timeval tv = {(time_t)(o->retention_check_ms / 1000),
                         (suseconds_t)((o->retention_check_ms % 1000) * 1000)};
    evtimer_add(gs->expire_ev, &tv);
    *ret = gs;
    return 0;
fail:
    gstore_free(gs);
    return r;
}

void gstore_set_groups(struct gstore *gs, struct groups *g)
{
    gs->groups = g;
}

void gstore_shutdown(struct gstore *gs)
{
    if (!gs || gs->stopped)
        return;
    gs->stopped = true;
    if (gs->b->repl)
        repl_cancel_owner(gs->b->repl, gs); /* on_hw answers each */
    while (gs->appends)
        append_finish(gs->appends, KERR_COORDINATOR_NOT_AVAILABLE);
    if (gs->load_ev)
        evtimer_del(gs->load_ev);
    if (gs->expire_ev)
        evtimer_del(gs->expire_ev);
}

void gstore_free(struct gstore *gs)
{
    if (!gs)
        return;
    gstore_shutdown(gs);
    if (gs->load_ev)
        event_free(gs->load_ev);
    if (gs->expire_ev)
        event_free(gs->expire_ev);
    omap_free(gs->map);
    free(gs->parts);
    buf_writer_deinit(&gs->scratch);
    free(gs);
}

void gstore_get_stats(const struct gstore *gs, struct gstore_stats *ret)
{
    *ret = gs->stats;
}
