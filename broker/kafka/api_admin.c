/* api_admin: CreateTopics, DeleteTopics and CreatePartitions, forwarded to the
 * coordinator. The answer waits until the local metadata has caught up with the
 * offset the coordinator reports, so a client's next Metadata request on this
 * broker sees the change (bounded by the request's timeout). */
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
#include "common/log.h"
#include "methods.h"
#include "coordinator.pb-c.h"


struct admin_ctx {
    struct broker_ctx *b;
    struct kreq *req;
    void *resp; /* the Kafka response struct, in the request's arena */
    int timeout_ms;
};

static int clamp_timeout(const struct broker_ctx *b, int32_t t)
{
    if (t <= 0 || t > b->s->admin_timeout_ms)
        return b->s->admin_timeout_ms;
    return t;
}

static void admin_done(void *ud, int result)
{
    struct admin_ctx *c = ud;
    kreq_reply(c->req, c->resp, NULL, NULL);
    free(c);
}

static void admin_wait(struct admin_ctx *c, int64_t offset)
{
    if (offset < 0 || coordclient_wait_offset(c->b->cc, offset, c->timeout_ms, admin_done, c) < 0)
        admin_done(c, 0);
}

static char *dup_msg(struct kreq *req, const char *s)
{
    return s && s[0] ? arena_strdup(&req->arena, s) : NULL;
}

/* ---- CreateTopics ------------------------------------------------------------- */

static void create_topics_done(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                               void *ud)
{
    struct admin_ctx *c = ud;
    struct kafka_create_topics_response *resp = c->resp;
    if (status != 0) {
        for (int32_t i = 0; i < resp->n_topics; i++) {
            resp->topics[i].error_code = KERR_REQUEST_TIMED_OUT;
            resp->topics[i].error_message = api_slice(dup_msg(c->req, errmsg));
        }
        admin_done(c, 0);
        return;
    }
    const Weir__Coord__CreateTopicsResponse *r = (const Weir__Coord__CreateTopicsResponse *)msg;
    for (int32_t i = 0; i < resp->n_topics && (size_t)i < r->n_results; i++) {
        const Weir__Coord__CreatableTopicResult *x = r->results[i];
        struct kafka_create_topics_response_topic *t = &resp->topics[i];
        t->error_code = (int16_t)x->error_code;
        t->error_message = api_slice(dup_msg(c->req, x->error_message));
        if (x->topic_id.len == 16)
            memcpy(t->topic_id.b, x->topic_id.data, 16);
        if (!x->error_code) {
            t->num_partitions = x->num_partitions;
            t->replication_factor = (int16_t)x->replication_factor;
        }
    }
    admin_wait(c, r->metadata_offset);
}

void api_create_topics_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_create_topics_request *m = body;
    struct kafka_create_topics_response *resp = api_alloc(req, 1, sizeof(*resp));
    struct admin_ctx *c = malloc(sizeof(*c));
    size_t n = (size_t)m->n_topics;
    Weir__Coord__CreatableTopic *ts = api_alloc(req, n, sizeof(*ts));
    Weir__Coord__CreatableTopic **tp = api_alloc(req, n, sizeof(*tp));
    if (!resp || !c || (n && (!ts || !tp)))
        goto oom;
    kafka_create_topics_response_init(resp);
    resp->n_topics = m->n_topics;
    resp->topics = api_alloc(req, n, sizeof(*resp->topics));
    if (n && !resp->topics)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct kafka_create_topics_request_topic *t = &m->topics[i];
        struct kafka_create_topics_response_topic *rt = &resp->topics[i];
        rt->name = t->name;
        rt->error_message = api_slice(NULL);
        rt->num_partitions = -1;
        rt->replication_factor = -1;
        rt->n_configs = -1;
        Weir__Coord__CreatableTopic *x = &ts[i];
        weir__coord__creatable_topic__init(x);
        tp[i] = x;
        x->name = api_str(req, t->name);
        if (!x->name)
            x->name = "";
        /* -1 (kafkajs sends it at every version): the broker's defaults. */
        if (t->n_assignments > 0) {
            x->num_partitions = t->num_partitions;
            x->replication_factor = t->replication_factor;
        } else {
            x->num_partitions = t->num_partitions > 0 ? t->num_partitions : b->s->num_partitions;
            x->replication_factor = t->replication_factor > 0 ? t->replication_factor
                                                              : b->s->default_replication_factor;
        }
        if (t->n_assignments > 0) {
            x->n_assignments = (size_t)t->n_assignments;
            x->assignments = api_alloc(req, x->n_assignments, sizeof(*x->assignments));
            Weir__Coord__ReplicaAssignment *as =
                api_alloc(req, x->n_assignments, sizeof(Weir__Coord__ReplicaAssignment));
            if (!x->assignments || !as)
                goto oom;
            for (int32_t j = 0; j < t->n_assignments; j++) {
                weir__coord__replica_assignment__init(&as[j]);
                as[j].partition = t->assignments[j].partition_index;
                as[j].n_broker_ids = (size_t)t->assignments[j].n_broker_ids;
                as[j].broker_ids = t->assignments[j].broker_ids;
                x->assignments[j] = &as[j];
            }
        }
        if (t->n_configs > 0) {
            x->n_configs = (size_t)t->n_configs;
            x->configs = api_alloc(req, x->n_configs, sizeof(*x->configs));
            Weir__Meta__ConfigEntry *ce =
                api_alloc(req, x->n_configs, sizeof(Weir__Meta__ConfigEntry));
            if (!x->configs || !ce)
                goto oom;
            for (int32_t j = 0; j < t->n_configs; j++) {
                weir__meta__config_entry__init(&ce[j]);
                ce[j].name = api_str(req, t->configs[j].name);
                ce[j].value = api_str(req, t->configs[j].value);
                if (!ce[j].name)
                    ce[j].name = "";
                if (!ce[j].value)
                    ce[j].value = "";
                x->configs[j] = &ce[j];
            }
        }
    }
    c->b = b;
    c->req = req;
    c->resp = resp;
    c->timeout_ms = clamp_timeout(b, m->timeout_ms);
    Weir__Coord__CreateTopicsRequest creq = WEIR__COORD__CREATE_TOPICS_REQUEST__INIT;
    creq.n_topics = n;
    creq.topics = tp;
    creq.validate_only = m->validate_only;
    if (coordclient_call(b->cc, COORD_M_CREATE_TOPICS, &creq.base, c->timeout_ms, create_topics_done, c) <
        0)
        create_topics_done(-1, NULL, "coordinator unavailable", c);
    return;
oom:
    free(c);
    kreq_close(req);
}

/* ---- DeleteTopics ---------------------------------------------------------------- */

static void delete_topics_done(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                               void *ud)
{
    struct admin_ctx *c = ud;
    struct kafka_delete_topics_response *resp = c->resp;
    if (status != 0) {
        for (int32_t i = 0; i < resp->n_responses; i++) {
            resp->responses[i].error_code = KERR_REQUEST_TIMED_OUT;
            resp->responses[i].error_message = api_slice(dup_msg(c->req, errmsg));
        }
        admin_done(c, 0);
        return;
    }
    const Weir__Coord__DeleteTopicsResponse *r = (const Weir__Coord__DeleteTopicsResponse *)msg;
    for (int32_t i = 0; i < resp->n_responses && (size_t)i < r->n_results; i++) {
        const Weir__Coord__DeletableTopicResult *x = r->results[i];
        struct kafka_delete_topics_response_result *t = &resp->responses[i];
        t->error_code = (int16_t)x->error_code;
        t->error_message = api_slice(dup_msg(c->req, x->error_message));
        if (x->name && x->name[0])
            t->name = api_slice(arena_strdup(&c->req->arena, x->name));
        if (x->topic_id.len == 16)
            memcpy(t->topic_id.b, x->topic_id.data, 16);
    }
    admin_wait(c, r->metadata_offset);
}

void api_delete_topics_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_delete_topics_request *m = body;
    int16_t ver = req->hdr.api_version;
    struct kafka_delete_topics_response *resp = api_alloc(req, 1, sizeof(*resp));
    struct admin_ctx *c = malloc(sizeof(*c));
    if (!resp || !c)
        goto oom;
    kafka_delete_topics_response_init(resp);
    Weir__Coord__DeleteTopicsRequest dreq = WEIR__COORD__DELETE_TOPICS_REQUEST__INIT;
    /* v6+ names topics by name or id; the coordinator answers names first, then
     * ids, so the request is sorted that way and the results map back. */
    size_t n = ver >= 6 ? (size_t)m->n_topics : (size_t)m->n_topic_names;
    resp->n_responses = (int32_t)n;
    resp->responses = api_alloc(req, n, sizeof(*resp->responses));
    char **names = api_alloc(req, n, sizeof(char *));
    ProtobufCBinaryData *ids = api_alloc(req, n, sizeof(ProtobufCBinaryData));
    if (n && (!resp->responses || !names || !ids))
        goto oom;
    size_t nn = 0, ni = 0;
    static const uint8_t zero[16];
    for (size_t i = 0; i < n; i++) {
        struct kafka_delete_topics_response_result *rr = &resp->responses[i];
        rr->error_message = api_slice(NULL);
        buf_slice name = ver >= 6 ? m->topics[i].name : m->topic_names[i];
        if (ver >= 6 && name.len < 0 && memcmp(m->topics[i].topic_id.b, zero, 16) != 0)
            continue;
        rr->name = name;
        names[nn] = api_str(req, name);
        if (!names[nn])
            names[nn] = "";
        nn++;
    }
    /* Ids after names, in request order. */
    for (size_t i = 0; ver >= 6 && i < n; i++) {
        if (m->topics[i].name.len >= 0 || memcmp(m->topics[i].topic_id.b, zero, 16) == 0)
            continue;
        ids[ni].data = m->topics[i].topic_id.b;
        ids[ni].len = 16;
        ni++;
    }
    if (ni) {
        /* Reorder responses: names first, then ids, matching the coordinator. */
        struct kafka_delete_topics_response_result *sorted = api_alloc(req, n, sizeof(*sorted));
        if (!sorted)
            goto oom;
        size_t a = 0, z = nn;
        for (size_t i = 0; i < n; i++) {
            bool by_id =
                m->topics[i].name.len < 0 && memcmp(m->topics[i].topic_id.b, zero, 16) != 0;
            struct kafka_delete_topics_response_result *dst = by_id ? &sorted[z++] : &sorted[a++];
            *dst = resp->responses[i];
            dst->error_message = api_slice(NULL);
            if (by_id) {
                dst->name = api_slice(NULL);
                dst->topic_id = m->topics[i].topic_id;
            }
        }
        resp->responses = sorted;
    }
    dreq.n_names = nn;
    dreq.names = names;
    dreq.n_topic_ids = ni;
    dreq.topic_ids = ids;
    c->b = b;
    c->req = req;
    c->resp = resp;
    c->timeout_ms = clamp_timeout(b, m->timeout_ms);
    if (coordclient_call(b->cc, COORD_M_DELETE_TOPICS, &dreq.base, c->timeout_ms, delete_topics_done, c) <
        0)
        delete_topics_done(-1, NULL, "coordinator unavailable", c);
    return;
oom:
    free(c);
    kreq_close(req);
}

/* ---- CreatePartitions ------------------------------------------------------------ */

static void create_partitions_done(int status, const struct ProtobufCMessage *msg,
                                   const char *errmsg, void *ud)
{
    struct admin_ctx *c = ud;
    struct kafka_create_partitions_response *resp = c->resp;
    if (status != 0) {
        for (int32_t i = 0; i < resp->n_results; i++) {
            resp->results[i].error_code = KERR_REQUEST_TIMED_OUT;
            resp->results[i].error_message = api_slice(dup_msg(c->req, errmsg));
        }
        admin_done(c, 0);
        return;
    }
    const Weir__Coord__CreatePartitionsResponse *r =
        (const Weir__Coord__CreatePartitionsResponse *)msg;
    for (int32_t i = 0; i < resp->n_results && (size_t)i < r->n_results; i++) {
        resp->results[i].error_code = (int16_t)r->results[i]->error_code;
        resp->results[i].error_message = api_slice(dup_msg(c->req, r->results[i]->error_message));
    }
    admin_wait(c, r->metadata_offset);
}

void api_create_partitions_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_create_partitions_request *m = body;
    struct kafka_create_partitions_response *resp = api_alloc(req, 1, sizeof(*resp));
    struct admin_ctx *c = malloc(sizeof(*c));
    size_t n = (size_t)m->n_topics;
    Weir__Coord__CreatePartitionsTopic *ts = api_alloc(req, n, sizeof(*ts));
    Weir__Coord__CreatePartitionsTopic **tp = api_alloc(req, n, sizeof(*tp));
    if (!resp || !c || (n && (!ts || !tp)))
        goto oom;
    kafka_create_partitions_response_init(resp);
    resp->n_results = m->n_topics;
    resp->results = api_alloc(req, n, sizeof(*resp->results));
    if (n && !resp->results)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct kafka_create_partitions_request_topic *t = &m->topics[i];
        resp->results[i].name = t->name;
        resp->results[i].error_message = api_slice(NULL);
        weir__coord__create_partitions_topic__init(&ts[i]);
        tp[i] = &ts[i];
        ts[i].name = api_str(req, t->name);
        if (!ts[i].name)
            ts[i].name = "";
        ts[i].count = t->count;
        if (t->n_assignments > 0) {
            size_t na = (size_t)t->n_assignments;
            Weir__Coord__ReplicaAssignment *as = api_alloc(req, na, sizeof(*as));
            ts[i].assignments = api_alloc(req, na, sizeof(*ts[i].assignments));
            if (!as || !ts[i].assignments)
                goto oom;
            ts[i].n_assignments = na;
            /* The new partitions are numbered after the current ones. */
            int32_t first = t->count - t->n_assignments;
            for (size_t j = 0; j < na; j++) {
                weir__coord__replica_assignment__init(&as[j]);
                as[j].partition = first + (int32_t)j;
                as[j].n_broker_ids = (size_t)t->assignments[j].n_broker_ids;
                as[j].broker_ids = t->assignments[j].broker_ids;
                ts[i].assignments[j] = &as[j];
            }
        }
    }
    c->b = b;
    c->req = req;
    c->resp = resp;
    c->timeout_ms = clamp_timeout(b, m->timeout_ms);
    Weir__Coord__CreatePartitionsRequest preq = WEIR__COORD__CREATE_PARTITIONS_REQUEST__INIT;
    preq.n_topics = n;
    preq.topics = tp;
    preq.validate_only = m->validate_only;
    if (coordclient_call(b->cc, COORD_M_CREATE_PARTITIONS, &preq.base, c->timeout_ms,
                         create_partitions_done, c) < 0)
        create_partitions_done(-1, NULL, "coordinator unavailable", c);
    return;
oom:
    free(c);
    kreq_close(req);
}
