/* api_reassign: AlterPartitionReassignments (45) and ListPartitionReassignments
 * (46), forwarded to the coordinator (AlterReassignments / ListReassignments,
 * docs/reassignment.md). An alteration is answered once the local metadata has
 * caught up with the change, so this broker's next Metadata or List answer
 * shows it (bounded by the request's timeout). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/arena.h"
#include "common/kerr.h"
#include "coordinator.pb-c.h"
#include "methods.h"

struct reassign_ctx {
    struct broker_ctx *b;
    struct kreq *req;
    void *resp; /* the Kafka response, in the request's arena */
    int timeout_ms;
};

static int timeout_of(const struct broker_ctx *b, int32_t t)
{
    return t <= 0 || t > b->s->admin_timeout_ms ? b->s->admin_timeout_ms : t;
}

static void reply_now(void *ud, int result)
{
    (void)result;
    struct reassign_ctx *c = ud;
    kreq_reply(c->req, c->resp, NULL, NULL);
    free(c);
}

static void reply_at(struct reassign_ctx *c, int64_t offset)
{
    if (offset < 0 || coordclient_wait_offset(c->b->cc, offset, c->timeout_ms, reply_now, c) < 0)
        reply_now(c, 0);
}

static buf_slice msg_slice(struct kreq *req, const char *s)
{
    return api_slice(s && s[0] ? arena_strdup(&req->arena, s) : NULL);
}

/* ---- AlterPartitionReassignments ------------------------------------------------------- */

static void alter_done(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    struct reassign_ctx *c = ud;
    struct kafka_alter_partition_reassignments_response *resp = c->resp;
    const Weir__Coord__AlterReassignmentsResponse *r =
        status == 0 ? (const Weir__Coord__AlterReassignmentsResponse *)msg : NULL;
    /* The results come back flat, in request order. */
    size_t k = 0;
    for (int32_t i = 0; i < resp->n_responses; i++) {
        struct kafka_alter_partition_reassignments_response_topic *t = &resp->responses[i];
        for (int32_t j = 0; j < t->n_partitions; j++, k++) {
            struct kafka_alter_partition_reassignments_response_partition *p = &t->partitions[j];
            if (r && k < r->n_results) {
                p->error_code = (int16_t)r->results[k]->error_code;
                p->error_message = msg_slice(c->req, r->results[k]->error_message);
            } else {
                p->error_code = KERR_REQUEST_TIMED_OUT;
                p->error_message = msg_slice(c->req, errmsg ? errmsg : "coordinator unavailable");
            }
        }
    }
    reply_at(c, r ? r->metadata_offset : -1);
}

void api_alter_partition_reassignments_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_alter_partition_reassignments_request *m = body;
    struct kafka_alter_partition_reassignments_response *resp = api_alloc(req, 1, sizeof(*resp));
    struct reassign_ctx *c = malloc(sizeof(*c));
    if (!resp || !c)
        goto oom;
    kafka_alter_partition_reassignments_response_init(resp);
    size_t nt = m->n_topics > 0 ? (size_t)m->n_topics : 0, np = 0;
    for (size_t i = 0; i < nt; i++)
        np += m->topics[i].n_partitions > 0 ? (size_t)m->topics[i].n_partitions : 0;
    resp->n_responses = (int32_t)nt;
    resp->responses = api_alloc(req, nt, sizeof(*resp->responses));
    Weir__Coord__ReassignPartition *items = api_alloc(req, np, sizeof(*items));
    Weir__Coord__ReassignPartition **ptrs = api_alloc(req, np, sizeof(*ptrs));
    if ((nt && !resp->responses) || (np && (!items || !ptrs)))
        goto oom;
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        const struct kafka_alter_partition_reassignments_request_topic *t = &m->topics[i];
        struct kafka_alter_partition_reassignments_response_topic *o = &resp->responses[i];
        size_t n = t->n_partitions > 0 ? (size_t)t->n_partitions : 0;
        char *name = api_str(req, t->name);
        o->name = t->name;
        o->n_partitions = (int32_t)n;
        o->partitions = api_alloc(req, n, sizeof(*o->partitions));
        if (n && !o->partitions)
            goto oom;
        for (size_t j = 0; j < n; j++, k++) {
            const struct kafka_alter_partition_reassignments_request_partition *p =
                &t->partitions[j];
            o->partitions[j].partition_index = p->partition_index;
            o->partitions[j].error_message = api_slice(NULL);
            weir__coord__reassign_partition__init(&items[k]);
            items[k].topic = name ? name : "";
            items[k].partition = p->partition_index;
            items[k].cancel = p->n_replicas < 0;
            items[k].replicas = p->n_replicas > 0 ? p->replicas : NULL;
            items[k].n_replicas = p->n_replicas > 0 ? (size_t)p->n_replicas : 0;
            ptrs[k] = &items[k];
        }
    }
    c->b = b;
    c->req = req;
    c->resp = resp;
    c->timeout_ms = timeout_of(b, m->timeout_ms);
    Weir__Coord__AlterReassignmentsRequest preq = WEIR__COORD__ALTER_REASSIGNMENTS_REQUEST__INIT;
    preq.partitions = ptrs;
    preq.n_partitions = np;
    if (coordclient_call(b->cc, COORD_M_ALTER_REASSIGNMENTS, &preq.base, c->timeout_ms, alter_done,
                         c) < 0)
        alter_done(-1, NULL, "coordinator unavailable", c);
    return;
oom:
    free(c);
    kreq_close(req);
}

/* ---- ListPartitionReassignments -------------------------------------------------------- */

static void list_done(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    struct reassign_ctx *c = ud;
    struct kreq *req = c->req;
    struct kafka_list_partition_reassignments_response *resp = c->resp;
    if (status != 0) {
        resp->error_code = KERR_REQUEST_TIMED_OUT;
        resp->error_message = msg_slice(req, errmsg ? errmsg : "coordinator unavailable");
        reply_now(c, 0);
        return;
    }
    const Weir__Coord__ListReassignmentsResponse *r =
        (const Weir__Coord__ListReassignmentsResponse *)msg;
    /* Flat, with each topic's partitions together: group them. */
    size_t nt = 0;
    for (size_t i = 0; i < r->n_reassignments; i++)
        nt += i == 0 || strcmp(r->reassignments[i]->topic, r->reassignments[i - 1]->topic) != 0;
    resp->topics = api_alloc(req, nt, sizeof(*resp->topics));
    struct kafka_list_partition_reassignments_response_partition *parts =
        api_alloc(req, r->n_reassignments, sizeof(*parts));
    if ((nt && !resp->topics) || (r->n_reassignments && !parts)) {
        resp->topics = NULL;
        resp->error_code = KERR_UNKNOWN_SERVER_ERROR;
        reply_now(c, 0);
        return;
    }
    int32_t t = -1;
    for (size_t i = 0; i < r->n_reassignments; i++) {
        const Weir__Coord__OngoingReassignment *o = r->reassignments[i];
        if (i == 0 || strcmp(o->topic, r->reassignments[i - 1]->topic) != 0) {
            t++;
            resp->topics[t].name = api_slice(arena_strdup(&req->arena, o->topic));
            resp->topics[t].partitions = &parts[i];
        }
        resp->topics[t].n_partitions++;
        struct kafka_list_partition_reassignments_response_partition *p = &parts[i];
        p->partition_index = o->partition;
        int32_t *ids = api_alloc(
            req, o->n_replicas + o->n_adding_replicas + o->n_removing_replicas + 1, sizeof(*ids));
        if (!ids)
            continue; /* the partition shows with empty lists rather than wrong ones */
        p->replicas = ids;
        p->n_replicas = (int32_t)o->n_replicas;
        /* protobuf-c leaves an empty repeated field NULL, and memcpy from NULL is
         * undefined even for 0 bytes (UBSan stops the sanitizer build on it) */
        if (o->n_replicas)
            memcpy(ids, o->replicas, o->n_replicas * sizeof(*ids));
        p->adding_replicas = ids + o->n_replicas;
        p->n_adding_replicas = (int32_t)o->n_adding_replicas;
        if (o->n_adding_replicas)
            memcpy(p->adding_replicas, o->adding_replicas, o->n_adding_replicas * sizeof(*ids));
        p->removing_replicas = p->adding_replicas + o->n_adding_replicas;
        p->n_removing_replicas = (int32_t)o->n_removing_replicas;
        if (o->n_removing_replicas)
            memcpy(p->removing_replicas, o->removing_replicas,
                   o->n_removing_replicas * sizeof(*ids));
    }
    resp->n_topics = (int32_t)nt;
    reply_now(c, 0);
}

void api_list_partition_reassignments_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_list_partition_reassignments_request *m = body;
    struct kafka_list_partition_reassignments_response *resp = api_alloc(req, 1, sizeof(*resp));
    struct reassign_ctx *c = malloc(sizeof(*c));
    if (!resp || !c)
        goto oom;
    kafka_list_partition_reassignments_response_init(resp);
    size_t nt = m->n_topics > 0 ? (size_t)m->n_topics : 0;
    Weir__Coord__TopicPartitionList *tl = api_alloc(req, nt, sizeof(*tl));
    Weir__Coord__TopicPartitionList **tp = api_alloc(req, nt, sizeof(*tp));
    if (nt && (!tl || !tp))
        goto oom;
    for (size_t i = 0; i < nt; i++) {
        weir__coord__topic_partition_list__init(&tl[i]);
        char *name = api_str(req, m->topics[i].name);
        tl[i].topic = name ? name : "";
        tl[i].partitions = m->topics[i].partition_indexes;
        tl[i].n_partitions =
            m->topics[i].n_partition_indexes > 0 ? (size_t)m->topics[i].n_partition_indexes : 0;
        tp[i] = &tl[i];
    }
    c->b = b;
    c->req = req;
    c->resp = resp;
    c->timeout_ms = timeout_of(b, m->timeout_ms);
    Weir__Coord__ListReassignmentsRequest preq = WEIR__COORD__LIST_REASSIGNMENTS_REQUEST__INIT;
    preq.all = m->n_topics < 0;
    preq.topics = tp;
    preq.n_topics = nt;
    if (coordclient_call(b->cc, COORD_M_LIST_REASSIGNMENTS, &preq.base, c->timeout_ms, list_done,
                         c) < 0)
        list_done(-1, NULL, "coordinator unavailable", c);
    return;
oom:
    free(c);
    kreq_close(req);
}
