/* api_metadata: Metadata v0-9 from the local cstate; auto-creation of unknown
 * topics through the coordinator when enabled. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/kerr.h"
#include "common/log.h"
#include "methods.h"
#include "coordinator.pb-c.h"
#include "common/meta/state.h"

#define AUTO_CREATE_WAIT_MS    5000

struct md_ctx {
    struct broker_ctx *b;
    struct kreq *req;
    struct kafka_metadata_request *mreq;
};

static bool broker_live(const struct cstate_broker *br)
{
    return br->state != CSTATE_BROKER_FENCED;
}

static const struct cstate_endpoint *pick_endpoint(const struct cstate_broker *br,
                                                   const char *listener)
{
    for (uint32_t i = 0; i < br->n_endpoints; i++)
        if (br->endpoints[i].listener && strcmp(br->endpoints[i].listener, listener) == 0)
            return &br->endpoints[i];
    return br->n_endpoints ? &br->endpoints[0] : NULL;
}

static int32_t *ids_copy(struct kreq *req, const int32_t *ids, int32_t n, bool *oom)
{
    int32_t *v = api_alloc(req, (size_t)n, sizeof(int32_t));
    if (n > 0 && !v) {
        *oom = true;
        return NULL;
    }
    if (n > 0)
        memcpy(v, ids, (size_t)n * sizeof(int32_t));
    return v;
}

static bool fill_topic(struct kreq *req, const struct cstate *s, const struct cstate_topic *t,
                       struct kafka_metadata_response_topic *rt)
{
    bool oom = false;
    rt->error_code = 0;
    rt->topic_authorized_operations = INT32_MIN; /* not requested / not computed */
    rt->name = api_slice(t->name);
    rt->is_internal = strcmp(t->name, "__consumer_offsets") == 0;
    rt->n_partitions = t->n_parts;
    rt->partitions = api_alloc(req, (size_t)t->n_parts, sizeof(*rt->partitions));
    if (t->n_parts > 0 && !rt->partitions)
        return false;
    for (int32_t i = 0; i < t->n_parts; i++) {
        const struct cstate_partition *p = &t->parts[i];
        struct kafka_metadata_response_partition *rp = &rt->partitions[i];
        rp->error_code = p->leader < 0 ? KERR_LEADER_NOT_AVAILABLE : 0;
        rp->partition_index = i;
        rp->leader_id = p->leader;
        rp->leader_epoch = p->leader_epoch;
        rp->n_replica_nodes = p->n_replicas;
        rp->replica_nodes = ids_copy(req, cstate_part_replicas(p), p->n_replicas, &oom);
        rp->n_isr_nodes = p->n_isr;
        rp->isr_nodes = ids_copy(req, cstate_part_isr(p), p->n_isr, &oom);
        int32_t off[CSTATE_MAX_REPLICAS];
        int32_t noff = 0;
        const int32_t *reps = cstate_part_replicas(p);
        for (int j = 0; j < p->n_replicas; j++) {
            const struct cstate_broker *br = cstate_broker(s, reps[j]);
            if (!br || !broker_live(br))
                off[noff++] = reps[j];
        }
        rp->n_offline_replicas = noff;
        rp->offline_replicas = ids_copy(req, off, noff, &oom);
    }
    return !oom;
}

static void md_reply(struct broker_ctx *b, struct kreq *req, struct kafka_metadata_request *m)
{
    const struct cstate *s = coordclient_state(b->cc);
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp);
    int16_t ver = req->hdr.api_version;

    size_t nb = 0;
    for (size_t i = 0; i < s->n_brokers; i++)
        nb += broker_live(&s->brokers[i]) && s->brokers[i].n_endpoints > 0;
    resp.brokers = api_alloc(req, nb, sizeof(*resp.brokers));
    if (nb && !resp.brokers)
        goto oom;
    resp.controller_id = -1;
    for (size_t i = 0, k = 0; i < s->n_brokers; i++) {
        const struct cstate_broker *br = &s->brokers[i];
        const struct cstate_endpoint *ep = pick_endpoint(br, b->s->advertised.listener);
        if (!broker_live(br) || !ep)
            continue;
        struct kafka_metadata_response_broker *rb = &resp.brokers[k++];
        rb->node_id = br->id;
        rb->host = api_slice(ep->host);
        rb->port = ep->port;
        rb->rack = api_slice(br->rack);
        if (resp.controller_id < 0 || br->id < resp.controller_id)
            resp.controller_id = br->id; /* brokers are sorted; the lowest live id */
    }
    resp.n_brokers = (int32_t)nb;
    resp.cluster_id = api_slice(s->cluster_id);
    if (ver >= 8 && m->include_cluster_authorized_operations)
        resp.cluster_authorized_operations = dispatch_cluster_authorized_ops();

    bool all = m->n_topics < 0 || (ver == 0 && m->n_topics == 0);
    size_t nt = all ? s->n_topics : (size_t)m->n_topics;
    resp.topics = api_alloc(req, nt, sizeof(*resp.topics));
    if (nt && !resp.topics)
        goto oom;
    if (all) {
        size_t k = 0;
        for (const struct cstate_topic *t = s->first_topic; t; t = t->next)
            if (!fill_topic(req, s, t, &resp.topics[k++]))
                goto oom;
    } else {
        for (int32_t i = 0; i < m->n_topics; i++) {
            struct kafka_metadata_response_topic *rt = &resp.topics[i];
            char *name = api_str(req, m->topics[i].name);
            const struct cstate_topic *t = name ? cstate_topic_by_name(s, name) : NULL;
            if (t) {
                if (!fill_topic(req, s, t, rt))
                    goto oom;
                continue;
            }
            rt->name = m->topics[i].name;
            rt->topic_authorized_operations = INT32_MIN;
            rt->error_code =
                name && cstate_topic_name_valid(name) ? KERR_UNKNOWN_TOPIC_OR_PARTITION : KERR_INVALID_TOPIC_EXCEPTION;
            if (name && cstate_topic_name_valid(name) && b->s->auto_create_topics &&
                (ver < 4 || m->allow_auto_topic_creation))
                rt->error_code = KERR_LEADER_NOT_AVAILABLE; /* being created */
        }
    }
    resp.n_topics = (int32_t)nt;
    kreq_reply(req, &resp, NULL, NULL);
    return;
oom:
    kreq_close(req);
}

static void md_after_wait(void *ud, int result)
{
    struct md_ctx *c = ud;
    md_reply(c->b, c->req, c->mreq);
    free(c);
}

static void md_created(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    struct md_ctx *c = ud;
    int64_t offset = -1;
    if (status == 0)
        offset = ((const Weir__Coord__CreateTopicsResponse *)msg)->metadata_offset;
    else
        log_warn("kafka", "auto-creating topics: %s", errmsg);
    if (offset < 0 ||
        coordclient_wait_offset(c->b->cc, offset, AUTO_CREATE_WAIT_MS, md_after_wait, c) < 0)
        md_after_wait(c, 0);
}

void api_metadata_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_metadata_request *m = body;
    int16_t ver = req->hdr.api_version;
    bool may_create =
        b->s->auto_create_topics && (ver < 4 || m->allow_auto_topic_creation) && m->n_topics > 0;
    if (!may_create) {
        md_reply(b, req, m);
        return;
    }
    const struct cstate *s = coordclient_state(b->cc);
    Weir__Coord__CreatableTopic *topics =
        api_alloc(req, (size_t)m->n_topics, sizeof(Weir__Coord__CreatableTopic));
    Weir__Coord__CreatableTopic **ptrs =
        api_alloc(req, (size_t)m->n_topics, sizeof(Weir__Coord__CreatableTopic *));
    if (!topics || !ptrs) {
        kreq_close(req);
        return;
    }
    size_t n = 0;
    for (int32_t i = 0; i < m->n_topics; i++) {
        char *name = api_str(req, m->topics[i].name);
        if (!name || !cstate_topic_name_valid(name) || cstate_topic_by_name(s, name))
            continue;
        weir__coord__creatable_topic__init(&topics[n]);
        topics[n].name = name;
        topics[n].num_partitions = b->s->num_partitions;
        topics[n].replication_factor = b->s->default_replication_factor;
        ptrs[n] = &topics[n];
        n++;
    }
    if (n == 0) {
        md_reply(b, req, m);
        return;
    }
    struct md_ctx *c = malloc(sizeof(*c));
    if (!c) {
        kreq_close(req);
        return;
    }
    c->b = b;
    c->req = req;
    c->mreq = m;
    Weir__Coord__CreateTopicsRequest creq = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
    creq.n_topics = n;
    creq.topics = ptrs;
    creq.auto_create = true;
    if (coordclient_call(b->cc, COORD_M_CREATE_TOPICS, &creq.base, AUTO_CREATE_WAIT_MS, md_created, c) <
        0) {
        free(c);
        md_reply(b, req, m);
    }
}
