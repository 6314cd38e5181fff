/* api_delete_records: DeleteRecords v0-2 (API key 21). On the leader of each
 * partition the log start offset is raised to the requested offset (-1: the
 * high watermark; above the HW: OFFSET_OUT_OF_RANGE), and, as Kafka's
 * DelayedDeleteRecords, the answer waits until every ISR member's log start
 * offset reached it (broker/replica/repl.h, purgatory "delete-records"), or
 * REQUEST_TIMED_OUT after the request's timeout. The answer carries the low
 * watermark: the smallest log start offset over the ISR. The internal topic
 * __consumer_offsets is refused (INVALID_TOPIC_EXCEPTION), as Kafka. */
#include <string.h>

#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "broker/replica/repl.h"
#include "broker/replicas.h"
#include "broker/storage/plog.h"
#include "common/kerr.h"
#include "common/log.h"

/* The request's pending answer; in its arena. */
struct delete_wait {
    struct kreq *req;
    struct kafka_delete_records_response resp;
    int pending; /* partitions still waiting, +1 while the handler runs */
};

struct delete_part_wait {
    struct delete_wait *w;
    struct kafka_delete_records_response_partition *rp;
};

static void delete_wait_release(struct delete_wait *w)
{
    if (--w->pending > 0)
        return;
    if (kreq_conn_open(w->req))
        kreq_reply(w->req, &w->resp, NULL, NULL);
    else
        kreq_no_reply(w->req);
}

static void on_low_watermark(void *ud, int16_t error, int64_t low_watermark)
{
    struct delete_part_wait *pw = ud;
    pw->rp->error_code = error;
    pw->rp->low_watermark = error ? -1 : low_watermark;
    delete_wait_release(pw->w);
}

/* One partition: 0 with the offset applied, or a Kafka error. */
static int16_t delete_one(struct broker_ctx *b, const char *topic, int32_t partition,
                          int64_t offset, struct replicas_leader *ret_l, int64_t *ret_offset)
{
    if (!topic)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    /* Kafka refuses clients' DeleteRecords on an internal topic: trimming
     * __consumer_offsets would drop committed offsets and group state. */
    if (strcmp(topic, "__consumer_offsets") == 0)
        return KERR_INVALID_TOPIC_EXCEPTION;
    struct replicas_leader l;
    int16_t e = replicas_lookup(b->reps, topic, partition, -1, &l);
    if (e)
        return e;
    e = repl_delete_records(b->repl, l.part, offset, ret_offset);
    if (e)
        return e;
    *ret_l = l;
    return 0;
}

void api_delete_records_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_delete_records_request *m = body;
    struct delete_wait *w = api_alloc(req, 1, sizeof(*w));
    if (!w)
        goto oom;
    w->req = req;
    w->pending = 1;
    kafka_delete_records_response_init(&w->resp);
    struct kafka_delete_records_response *resp = &w->resp;
    resp->n_topics = m->n_topics;
    resp->topics = api_alloc(req, (size_t)m->n_topics, sizeof(*resp->topics));
    struct delete_part_wait **pws = api_alloc(req, (size_t)m->n_topics, sizeof(*pws));
    if (m->n_topics > 0 && (!resp->topics || !pws))
        goto oom;
    /* Every allocation before the first deletion: once a partition waits, the
     * request can no longer be abandoned. */
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_delete_records_request_topic *t = &m->topics[i];
        struct kafka_delete_records_response_topic *rt = &resp->topics[i];
        rt->name = t->name;
        rt->n_partitions = t->n_partitions;
        rt->partitions = api_alloc(req, (size_t)t->n_partitions, sizeof(*rt->partitions));
        pws[i] = api_alloc(req, (size_t)t->n_partitions, sizeof(*pws[i]));
        if (t->n_partitions > 0 && (!rt->partitions || !pws[i]))
            goto oom;
    }
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_delete_records_request_topic *t = &m->topics[i];
        struct kafka_delete_records_response_topic *rt = &resp->topics[i];
        char *topic = api_str(req, t->name);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            const struct kafka_delete_records_request_partition *pd = &t->partitions[j];
            struct kafka_delete_records_response_partition *rp = &rt->partitions[j];
            rp->partition_index = pd->partition_index;
            rp->low_watermark = -1;
            struct replicas_leader l = {0};
            int64_t applied = -1;
            rp->error_code = delete_one(b, topic, pd->partition_index, pd->offset, &l, &applied);
            if (rp->error_code)
                continue;
            log_info("kafka", "DeleteRecords from %s: %s-%d log start offset now %lld",
                     kreq_peer(req), topic, pd->partition_index,
                     (long long)plog_log_start_offset(l.log));
            struct delete_part_wait *pw = &pws[i][j];
            pw->w = w;
            pw->rp = rp;
            /* Owned by the connection: its close cancels the wait. */
            int r = repl_wait_low_watermark(b->repl, l.part, applied, m->timeout_ms, req->conn,
                                            on_low_watermark, pw);
            if (r == 1)
                rp->low_watermark = repl_part_low_watermark(b->repl, l.part);
            else if (r == 0)
                w->pending++;
            else
                rp->error_code = KERR_REQUEST_TIMED_OUT; /* could not wait */
        }
    }
    delete_wait_release(w);
    return;
oom:
    kreq_close(req);
}
