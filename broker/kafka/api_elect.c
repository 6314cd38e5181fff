/* api_elect: ElectLeaders (43, v0-2: preferred and, from v1, unclean
 * elections), forwarded to the coordinator's ElectLeaders. Answered once the
 * local metadata has caught up with the elections, so this broker's next
 * Metadata answer names the new leaders (bounded by the request's timeout). */
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

struct elect_ctx {
    struct broker_ctx *b;
    struct kreq *req;
    struct kafka_elect_leaders_response *resp;
    const struct kafka_elect_leaders_request *m;
    int timeout_ms;
};

static void reply_now(void *ud, int result)
{
    (void)result;
    struct elect_ctx *c = ud;
    kreq_reply(c->req, c->resp, NULL, NULL);
    free(c);
}

static buf_slice msg_slice(struct kreq *req, const char *s)
{
    return api_slice(s && s[0] ? arena_strdup(&req->arena, s) : NULL);
}

/* Every partition of the request gets @code (the coordinator did not answer). */
static void fail_all(struct elect_ctx *c, int16_t code, const char *msg)
{
    const struct kafka_elect_leaders_request *m = c->m;
    struct kafka_elect_leaders_response *resp = c->resp;
    size_t nt = m->n_topic_partitions > 0 ? (size_t)m->n_topic_partitions : 0;
    resp->error_code = code;
    resp->replica_election_results = api_alloc(c->req, nt, sizeof(*resp->replica_election_results));
    if (!resp->replica_election_results)
        return;
    resp->n_replica_election_results = (int32_t)nt;
    for (size_t i = 0; i < nt; i++) {
        struct kafka_elect_leaders_response_result *r = &resp->replica_election_results[i];
        size_t n = m->topic_partitions[i].n_partitions > 0
                       ? (size_t)m->topic_partitions[i].n_partitions
                       : 0;
        r->topic = m->topic_partitions[i].topic;
        r->partition_result = api_alloc(c->req, n, sizeof(*r->partition_result));
        if (!r->partition_result)
            continue;
        r->n_partition_result = (int32_t)n;
        for (size_t j = 0; j < n; j++) {
            r->partition_result[j].partition_id = m->topic_partitions[i].partitions[j];
            r->partition_result[j].error_code = code;
            r->partition_result[j].error_message = msg_slice(c->req, msg);
        }
    }
}

static void elect_done(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    struct elect_ctx *c = ud;
    struct kreq *req = c->req;
    struct kafka_elect_leaders_response *resp = c->resp;
    if (status != 0) {
        fail_all(c, KERR_REQUEST_TIMED_OUT, errmsg ? errmsg : "coordinator unavailable");
        reply_now(c, 0);
        return;
    }
    const Weir__Coord__ElectLeadersResponse *r = (const Weir__Coord__ElectLeadersResponse *)msg;
    /* Flat results, a topic's consecutive partitions together: group them. */
    size_t nt = 0;
    for (size_t i = 0; i < r->n_results; i++)
        nt += i == 0 || strcmp(r->results[i]->topic, r->results[i - 1]->topic) != 0;
    resp->replica_election_results = api_alloc(req, nt, sizeof(*resp->replica_election_results));
    struct kafka_elect_leaders_response_partition *parts =
        api_alloc(req, r->n_results, sizeof(*parts));
    if ((nt && !resp->replica_election_results) || (r->n_results && !parts)) {
        resp->replica_election_results = NULL;
        resp->error_code = KERR_UNKNOWN_SERVER_ERROR;
        reply_now(c, 0);
        return;
    }
    int32_t t = -1;
    for (size_t i = 0; i < r->n_results; i++) {
        const Weir__Coord__PartitionResult *o = r->results[i];
        if (i == 0 || strcmp(o->topic, r->results[i - 1]->topic) != 0) {
            t++;
            resp->replica_election_results[t].topic =
                api_slice(arena_strdup(&req->arena, o->topic));
            resp->replica_election_results[t].partition_result = &parts[i];
        }
        resp->replica_election_results[t].n_partition_result++;
        parts[i].partition_id = o->partition;
        parts[i].error_code = (int16_t)o->error_code;
        parts[i].error_message = msg_slice(req, o->error_message);
    }
    resp->n_replica_election_results = (int32_t)nt;
    if (r->metadata_offset < 0 ||
        coordclient_wait_offset(c->b->cc, r->metadata_offset, c->timeout_ms, reply_now, c) < 0)
        reply_now(c, 0);
}

void api_elect_leaders_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    const struct kafka_elect_leaders_request *m = body;
    struct kafka_elect_leaders_response *resp = api_alloc(req, 1, sizeof(*resp));
    struct elect_ctx *c = malloc(sizeof(*c));
    if (!resp || !c) {
        free(c);
        kreq_close(req);
        return;
    }
    kafka_elect_leaders_response_init(resp);
    *c = (struct elect_ctx){
        .b = b,
        .req = req,
        .resp = resp,
        .m = m,
        .timeout_ms = m->timeout_ms <= 0 || m->timeout_ms > b->s->admin_timeout_ms
                          ? b->s->admin_timeout_ms
                          : m->timeout_ms,
    };
    /* v0 has no election type: preferred. */
    int8_t type = req->hdr.api_version >= 1 ? m->election_type : 0;
    if (type != 0 && type != 1) {
        fail_all(c, KERR_INVALID_REQUEST, "election type must be 0 (preferred) or 1 (unclean)");
        reply_now(c, 0);
        return;
    }
    size_t nt = m->n_topic_partitions > 0 ? (size_t)m->n_topic_partitions : 0;
    Weir__Coord__TopicPartitionList *tl = api_alloc(req, nt, sizeof(*tl));
    Weir__Coord__TopicPartitionList **tp = api_alloc(req, nt, sizeof(*tp));
    if (nt && (!tl || !tp)) {
        free(c);
        kreq_close(req);
        return;
    }
    for (size_t i = 0; i < nt; i++) {
        weir__coord__topic_partition_list__init(&tl[i]);
        char *name = api_str(req, m->topic_partitions[i].topic);
        tl[i].topic = name ? name : "";
        tl[i].partitions = m->topic_partitions[i].partitions;
        tl[i].n_partitions = m->topic_partitions[i].n_partitions > 0
                                 ? (size_t)m->topic_partitions[i].n_partitions
                                 : 0;
        tp[i] = &tl[i];
    }
    Weir__Coord__ElectLeadersRequest preq = WEIR__COORD__ELECT_LEADERS_REQUEST__INIT;
    preq.election_type = type;
    preq.all = m->n_topic_partitions < 0;
    preq.topics = tp;
    preq.n_topics = nt;
    if (coordclient_call(b->cc, COORD_M_ELECT_LEADERS, &preq.base, c->timeout_ms, elect_done, c) <
        0)
        elect_done(-1, NULL, "coordinator unavailable", c);
}
