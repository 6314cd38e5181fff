/* service_reads: the methods that change nothing — DescribeCluster,
 * ListTopics, DescribeTopics, GetImage, Watch — answered at once from the
 * committed state, so nothing not yet durable is ever shown; and the cached
 * image of that state, shared by GetImage, new watchers and snapshots. */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/kerr.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "coordinator/watch.h"
#include "metadata.pb-c.h"

static void endpoint_to_pb(const struct cstate_endpoint *e, Weir__Meta__Endpoint *out)
{
    weir__meta__endpoint__init(out);
    out->listener = svc_str_or_empty(e->listener);
    out->host = svc_str_or_empty(e->host);
    out->port = e->port;
    out->security_protocol = svc_str_or_empty(e->security_protocol);
}

void svc_describe_cluster(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    (void)msg;
    struct coord_service *svc = ud;
    const struct cstate *s = svc->committed;
    Weir__Coord__DescribeClusterResponse resp = WEIR__COORD__DESCRIBE_CLUSTER_RESPONSE__INIT;
    size_t n = s->n_brokers;
    Weir__Coord__BrokerInfo *bi = calloc(n ? n : 1, sizeof(*bi));
    Weir__Coord__BrokerInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    size_t n_eps = 0;
    for (size_t i = 0; i < n; i++)
        n_eps += s->brokers[i].n_endpoints;
    Weir__Meta__Endpoint *eps = calloc(n_eps + n + 1, sizeof(*eps));
    Weir__Meta__Endpoint **eptrs = calloc(n_eps + 1, sizeof(*eptrs));
    if (!bi || !ptrs || !eps || !eptrs) {
        free(bi);
        free(ptrs);
        free(eps);
        free(eptrs);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    size_t e = 0;
    Weir__Meta__Endpoint *repl = eps + n_eps;
    for (size_t i = 0; i < n; i++) {
        const struct cstate_broker *b = &s->brokers[i];
        weir__coord__broker_info__init(&bi[i]);
        ptrs[i] = &bi[i];
        bi[i].broker_id = b->id;
        bi[i].broker_epoch = b->epoch;
        bi[i].state = (Weir__Meta__BrokerState)b->state;
        bi[i].rack = svc_str_or_empty(b->rack);
        bi[i].incarnation_id.data = (uint8_t *)b->incarnation;
        bi[i].incarnation_id.len = CSTATE_UUID_LEN;
        bi[i].endpoints = eptrs + e;
        bi[i].n_endpoints = b->n_endpoints;
        for (uint32_t k = 0; k < b->n_endpoints; k++, e++) {
            endpoint_to_pb(&b->endpoints[k], &eps[e]);
            eptrs[e] = &eps[e];
        }
        if (b->replication.host) {
            endpoint_to_pb(&b->replication, &repl[i]);
            bi[i].replication_endpoint = &repl[i];
        }
    }
    resp.cluster_id = svc_str_or_empty(s->cluster_id);
    resp.coordinator_id = svc->cfg->node_id;
    resp.metadata_offset = s->offset;
    resp.n_brokers = n;
    resp.brokers = ptrs;
    rpc_call_reply(call, &resp.base);
    free(bi);
    free(ptrs);
    free(eps);
    free(eptrs);
}

void svc_list_topics(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    (void)msg;
    struct coord_service *svc = ud;
    const struct cstate *s = svc->committed;
    Weir__Coord__ListTopicsResponse resp = WEIR__COORD__LIST_TOPICS_RESPONSE__INIT;
    size_t n = s->n_topics;
    Weir__Coord__TopicListing *tl = calloc(n ? n : 1, sizeof(*tl));
    Weir__Coord__TopicListing **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!tl || !ptrs) {
        free(tl);
        free(ptrs);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    size_t i = 0;
    for (const struct cstate_topic *t = s->first_topic; t && i < n; t = t->next, i++) {
        weir__coord__topic_listing__init(&tl[i]);
        ptrs[i] = &tl[i];
        tl[i].name = t->name;
        tl[i].topic_id.data = (uint8_t *)t->id;
        tl[i].topic_id.len = CSTATE_UUID_LEN;
        tl[i].num_partitions = t->n_parts;
    }
    resp.n_topics = i;
    resp.topics = ptrs;
    resp.metadata_offset = s->offset;
    rpc_call_reply(call, &resp.base);
    free(tl);
    free(ptrs);
}

/* Fill @o from @t; its arrays borrow the state, which must not change until the
 * response is sent. Allocates the partition and config arrays. */
static int describe_topic(const struct cstate_topic *t, Weir__Coord__TopicDescription *o)
{
    o->name = t->name;
    o->topic_id.data = (uint8_t *)t->id;
    o->topic_id.len = CSTATE_UUID_LEN;
    size_t np = (size_t)t->n_parts;
    Weir__Meta__PartitionState *ps = calloc(np ? np : 1, sizeof(*ps));
    Weir__Meta__PartitionState **pp = calloc(np ? np : 1, sizeof(*pp));
    /* No config array for a topic without overrides: describe_free() finds
     * the entries through configs[0], which would not be set. */
    Weir__Meta__ConfigEntry *ce = NULL;
    Weir__Meta__ConfigEntry **cp = NULL;
    if (t->n_configs > 0) {
        ce = calloc(t->n_configs, sizeof(*ce));
        cp = calloc(t->n_configs, sizeof(*cp));
    }
    if (!ps || !pp || (t->n_configs > 0 && (!ce || !cp))) {
        free(ps);
        free(pp);
        free(ce);
        free(cp);
        return -ENOMEM;
    }
    for (size_t k = 0; k < np; k++) {
        const struct cstate_partition *p = &t->parts[k];
        weir__meta__partition_state__init(&ps[k]);
        pp[k] = &ps[k];
        ps[k].partition = (int32_t)k;
        ps[k].replicas = (int32_t *)cstate_part_replicas(p);
        ps[k].n_replicas = p->n_replicas;
        ps[k].isr = (int32_t *)cstate_part_isr(p);
        ps[k].n_isr = p->n_isr;
        ps[k].adding_replicas = (int32_t *)cstate_part_adding(p);
        ps[k].n_adding_replicas = p->n_adding;
        ps[k].removing_replicas = (int32_t *)cstate_part_removing(p);
        ps[k].n_removing_replicas = p->n_removing;
        ps[k].leader = p->leader;
        ps[k].leader_epoch = p->leader_epoch;
        ps[k].partition_epoch = p->partition_epoch;
    }
    for (uint32_t k = 0; k < t->n_configs; k++) {
        weir__meta__config_entry__init(&ce[k]);
        cp[k] = &ce[k];
        ce[k].name = t->configs[k].name;
        ce[k].value = t->configs[k].value;
    }
    o->partitions = pp;
    o->n_partitions = np;
    o->configs = cp;
    o->n_configs = t->n_configs;
    return 0;
}

static void describe_free(Weir__Coord__TopicDescription *o)
{
    if (o->partitions)
        free(o->partitions[0]);
    free(o->partitions);
    if (o->configs)
        free(o->configs[0]);
    free(o->configs);
}

void svc_describe_topics(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct coord_service *svc = ud;
    const Weir__Coord__DescribeTopicsRequest *req = (const Weir__Coord__DescribeTopicsRequest *)msg;
    const struct cstate *s = svc->committed;
    Weir__Coord__DescribeTopicsResponse resp = WEIR__COORD__DESCRIBE_TOPICS_RESPONSE__INIT;
    size_t n = req->n_names ? req->n_names : s->n_topics;
    Weir__Coord__TopicDescription *td = calloc(n ? n : 1, sizeof(*td));
    Weir__Coord__TopicDescription **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    int r = (td && ptrs) ? 0 : -ENOMEM;
    const struct cstate_topic *t = s->first_topic;
    size_t i = 0;
    for (; r == 0 && i < n; i++) {
        weir__coord__topic_description__init(&td[i]);
        ptrs[i] = &td[i];
        if (req->n_names) {
            t = cstate_topic_by_name(s, req->names[i]);
            if (!t) {
                td[i].name = svc_str_or_empty(req->names[i]);
                td[i].error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                td[i].error_message = "unknown topic";
                continue;
            }
        } else if (!t) {
            break;
        }
        r = describe_topic(t, &td[i]);
        if (!req->n_names)
            t = t->next;
    }
    if (r < 0) {
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
    } else {
        resp.n_topics = i;
        resp.topics = ptrs;
        resp.metadata_offset = s->offset;
        rpc_call_reply(call, &resp.base);
    }
    for (size_t k = 0; td && k < i; k++)
        describe_free(&td[k]);
    free(td);
    free(ptrs);
}

void svc_get_image(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    (void)msg;
    struct coord_service *svc = ud;
    int r = svc_image_get(svc);
    if (r < 0) {
        rpc_call_fail(call, RPC_INTERNAL, "cannot build the metadata image");
        return;
    }
    Weir__Coord__GetImageResponse resp = WEIR__COORD__GET_IMAGE_RESPONSE__INIT;
    resp.metadata_offset = svc->img_offset;
    resp.image.data = svc->img;
    resp.image.len = svc->img_len;
    rpc_call_reply(call, &resp.base);
}

void svc_watch(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct coord_service *svc = ud;
    if (svc->failed || svc->stopping) {
        rpc_call_fail(call, RPC_SHUTTING_DOWN, "coordinator is stopping");
        return;
    }
    /* Brokers watch the leader, whose heartbeats they send on (a follower
     * answers NOT_CONTROLLER with the leader: they move there). */
    if (!svc_leads(svc)) {
        svc_not_leader(svc, call);
        return;
    }
    watch_hub_subscribe(svc->watch, call, (const Weir__Coord__WatchRequest *)msg);
}

/* ---- the image of the committed state ----------------------------------------------- */

void svc_image_invalidate(struct coord_service *svc)
{
    free(svc->img);
    svc->img = NULL;
    svc->img_valid = false;
}

int svc_image_get(struct coord_service *svc)
{
    if (svc->img_valid && svc->img_offset == svc_committed_offset(svc))
        return 0;
    svc_image_invalidate(svc);
    int r = cstate_snapshot_encode(svc->committed, &svc->img, &svc->img_len);
    if (r < 0)
        return r;
    svc->img_offset = svc_committed_offset(svc);
    svc->img_valid = true;
    return 0;
}

int svc_watch_image(void *ud, uint8_t **ret_data, size_t *ret_len, int64_t *ret_offset)
{
    struct coord_service *svc = ud;
    int r = svc_image_get(svc);
    if (r < 0)
        return r;
    uint8_t *copy = malloc(svc->img_len ? svc->img_len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, svc->img, svc->img_len);
    *ret_data = copy;
    *ret_len = svc->img_len;
    *ret_offset = svc->img_offset;
    return 0;
}
