/* replicas: local logs reconciled with the assignments of the local cstate. */
#include "broker/replicas.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coordclient.h"
#include "broker/replica/repl.h"
#include "broker/storage/logmgr.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/meta/state.h"

/* Topic ids of the logs we created, so a re-created topic is told apart. */
struct known_topic {
    char *name;
    uint8_t id[CSTATE_UUID_LEN];
};

struct replicas {
    int32_t id;
    struct logmgr *lm;
    struct coordclient *cc;
    struct known_topic *known;
    size_t n_known, cap_known;
    struct repl *repl;
};

void replicas_set_repl(struct replicas *r, struct repl *repl)
{
    r->repl = repl;
}

int replicas_new(int32_t broker_id, struct logmgr *lm, struct coordclient *cc,
                 struct replicas **ret)
{
    struct replicas *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->id = broker_id;
    r->lm = lm;
    r->cc = cc;
    *ret = r;
    return 0;
}

void replicas_free(struct replicas *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_known; i++)
        free(r->known[i].name);
    free(r->known);
    free(r);
}

static struct known_topic *known_find(struct replicas *r, const char *name)
{
    for (size_t i = 0; i < r->n_known; i++)
        if (strcmp(r->known[i].name, name) == 0)
            return &r->known[i];
    return NULL;
}

static void known_set(struct replicas *r, const struct cstate_topic *t)
{
    struct known_topic *k = known_find(r, t->name);
    if (!k) {
        if (r->n_known == r->cap_known) {
            size_t cap = r->cap_known ? r->cap_known * 2 : 16;
            struct known_topic *nk = realloc(r->known, cap * sizeof(*nk));
            if (!nk)
                return;
            r->known = nk;
            r->cap_known = cap;
        }
        char *name = strdup(t->name);
        if (!name)
            return;
        k = &r->known[r->n_known++];
        k->name = name;
    }
    memcpy(k->id, t->id, CSTATE_UUID_LEN);
}

struct del_item {
    char *topic;
    int32_t partition;
};
struct del_list {
    struct replicas *r;
    const struct cstate *s;
    struct del_item *v;
    size_t n, cap;
};

static void collect_stale(void *arg, const char *topic, int32_t partition, struct plog *log)
{
    struct del_list *d = arg;
    const struct cstate_topic *t = cstate_topic_by_name(d->s, topic);
    bool keep = false;
    if (t && partition < t->n_parts && cstate_part_is_replica(&t->parts[partition], d->r->id)) {
        struct known_topic *k = known_find(d->r, topic);
        keep = !k || memcmp(k->id, t->id, CSTATE_UUID_LEN) == 0;
    }
    if (keep)
        return;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct del_item *nv = realloc(d->v, cap * sizeof(*nv));
        if (!nv)
            return;
        d->v = nv;
        d->cap = cap;
    }
    char *name = strdup(topic);
    if (!name)
        return;
    d->v[d->n].topic = name;
    d->v[d->n].partition = partition;
    d->n++;
}

void replicas_reconcile(struct replicas *r)
{
    const struct cstate *s = coordclient_state(r->cc);
    if (!coordclient_synced(r->cc))
        return;
    /* Deletions only on a state known to be current: right after a restart the
     * watch may not have replayed the topics yet. */
    if (coordclient_caught_up(r->cc)) {
        struct del_list d = {.r = r, .s = s};
        logmgr_foreach(r->lm, collect_stale, &d);
        for (size_t i = 0; i < d.n; i++) {
            int rc = logmgr_delete(r->lm, d.v[i].topic, d.v[i].partition);
            if (rc < 0 && rc != -ENOENT)
                log_error("replicas", "deleting log %s-%d: %s", d.v[i].topic, d.v[i].partition,
                          strerror(-rc));
            else
                log_info("replicas", "deleted log %s-%d (not assigned here any more)", d.v[i].topic,
                         d.v[i].partition);
            free(d.v[i].topic);
        }
        free(d.v);
    }
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        known_set(r, t);
        for (int32_t p = 0; p < t->n_parts; p++) {
            if (!cstate_part_is_replica(&t->parts[p], r->id))
                continue;
            if (logmgr_get(r->lm, t->name, p))
                continue;
            struct plog *log;
            int rc = logmgr_create(r->lm, t->name, p, NULL, &log);
            if (rc < 0 && rc != -EEXIST)
                log_error("replicas", "creating log %s-%d: %s", t->name, p, strerror(-rc));
            else
                log_debug("replicas", "created log %s-%d", t->name, p);
        }
    }
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
