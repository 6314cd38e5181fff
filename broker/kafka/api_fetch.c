/* api_fetch: Fetch v4-12 for consumers, with long polling, and ListOffsets.
 *
 * A fetch reads each partition's whole batches from its high watermark-bounded
 * log (RF=1: high watermark = last stable offset = log end offset) and answers
 * with the bytes spliced in by sendfile. When fewer than min_bytes are there it
 * parks in the "fetch" purgatory (common/purgatory.h), watching one key per log
 * it reads, until the HW of one of those logs advances and enough is available
 * (each re-check is cheap: plog_read only looks at indexes), max_wait_ms
 * passes, or its connection closes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "broker/replica/repl.h"
#include "broker/replicas.h"
#include "broker/storage/logmgr.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/purgatory.h"


/* Keys on the stack for a fetch of up to this many partitions. */
#define INLINE_KEYS 16

struct fetch_part {
    const buf_slice *field; /* the response records field, for the resolver */
    const struct plog *log; /* the purgatory key: appends to it wake us */
    struct seg_file *file;
    int64_t pos;
    struct repl_part *part; /* for the traffic counters; NULL when nothing is read */
    int64_t n_offsets;      /* offsets the batches read span (metrics' records out) */
};

/* A fetch, parked or being answered. */
struct parked {
    struct purg_op op;
    struct broker_ctx *b;
    struct kreq *req;
    struct kafka_fetch_request *m;
    struct kafka_fetch_response resp;
    struct fetch_part *parts; /* heap; one per response partition */
    char **topics;            /* NUL-terminated names, in the request's arena */
    size_t n_parts;
};

static void release_parts(struct parked *p)
{
    for (size_t i = 0; i < p->n_parts; i++) {
        seg_file_unref(p->parts[i].file);
        p->parts[i].file = NULL;
    }
}

static int resolve(void *opaque, const buf_slice *field, struct seg_file **ret_file,
                   int64_t *ret_pos)
{
    struct parked *p = opaque;
    for (size_t i = 0; i < p->n_parts; i++) {
        if (p->parts[i].field == field && p->parts[i].file) {
            *ret_file = p->parts[i].file;
            *ret_pos = p->parts[i].pos;
            p->parts[i].file = NULL; /* the reference moves to the response */
            return 0;
        }
    }
    return -EINVAL;
}

/* Fill the response from the logs as they are now. Returns the bytes found, or
 * -1 when a partition has an error (answer at once). */
static int64_t evaluate(struct parked *p)
{
    struct broker_ctx *b = p->b;
    struct kafka_fetch_request *m = p->m;
    release_parts(p);
    int64_t total = 0;
    bool error = false;
    int64_t budget = m->max_bytes > 0 ? m->max_bytes : INT32_MAX;
    size_t k = 0;
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_fetch_request_topic *t = &m->topics[i];
        struct kafka_fetch_response_topic *rt = &p->resp.responses[i];
        const char *topic = p->topics[i];
        for (int32_t j = 0; j < t->n_partitions; j++, k++) {
            const struct kafka_fetch_request_partition *rq = &t->partitions[j];
            struct kafka_fetch_response_partition *rp = &rt->partitions[j];
            rp->partition_index = rq->partition;
            rp->error_code = 0;
            rp->high_watermark = -1;
            rp->last_stable_offset = -1;
            rp->log_start_offset = -1;
            rp->diverging_epoch.epoch = -1;
            rp->diverging_epoch.end_offset = -1;
            rp->current_leader.leader_id = -1;
            rp->current_leader.leader_epoch = -1;
            rp->snapshot_id.end_offset = -1;
            rp->snapshot_id.epoch = -1;
            rp->n_aborted_transactions = 0;
            rp->aborted_transactions = NULL;
            rp->preferred_read_replica = -1;
            rp->records.ptr = (const uint8_t *)"";
            rp->records.len = 0;
            p->parts[k].field = &rp->records;
            p->parts[k].log = NULL;
            p->parts[k].part = NULL;
            struct replicas_leader l;
            int16_t e =
                topic ? replicas_lookup(b->reps, topic, rq->partition, rq->current_leader_epoch, &l)
                      : KERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (e) {
                rp->error_code = (int16_t)e;
                if (e == KERR_NOT_LEADER_OR_FOLLOWER || e == KERR_FENCED_LEADER_EPOCH) {
                    rp->current_leader.leader_id = l.leader;
                    rp->current_leader.leader_epoch = l.leader_epoch;
                }
                error = true;
                continue;
            }
            p->parts[k].log = l.log;
            int64_t hw = l.high_watermark;
            int64_t end = plog_log_end_offset(l.log);
            int64_t start = plog_log_start_offset(l.log);
            rp->high_watermark = hw;
            rp->last_stable_offset = hw;
            rp->log_start_offset = start;
            if (rq->fetch_offset < start || rq->fetch_offset > end) {
                rp->error_code = KERR_OFFSET_OUT_OF_RANGE;
                error = true;
                continue;
            }
            /* Between the HW and the log end: not committed yet, nothing to see
             * (a new leader's HW may start below what the old one showed). */
            if (rq->fetch_offset >= hw || budget <= 0)
                continue;
            int64_t want = rq->partition_max_bytes < budget ? rq->partition_max_bytes : budget;
            if (want <= 0)
                continue;
            struct plog_read_result res;
            /* KIP-74: the first batch of the response goes out even when larger
             * than the limits, so a consumer never gets stuck. */
            int r = plog_read(l.log, rq->fetch_offset, hw, (int32_t)want, total == 0, &res);
            if (r < 0) {
                rp->error_code = r == -ERANGE ? KERR_OFFSET_OUT_OF_RANGE : KERR_KAFKA_STORAGE_ERROR;
                error = true;
                continue;
            }
            if (res.length > 0 && res.file) {
                p->parts[k].file = res.file;
                p->parts[k].pos = res.position;
                p->parts[k].part = l.part;
                p->parts[k].n_offsets = res.next_offset - res.first_offset;
                rp->records.ptr = NULL;
                rp->records.len = (int32_t)res.length;
                total += res.length;
                budget -= res.length;
            } else {
                seg_file_unref(res.file);
            }
        }
    }
    return error ? -1 : total;
}

/* Count what the answer sends per partition: the batches' bytes, and the
 * offsets they span as records (the same for a log that is not compacted). */
static void count_out(struct parked *p)
{
    for (size_t i = 0; i < p->n_parts; i++) {
        const struct fetch_part *fp = &p->parts[i];
        if (!fp->file || !fp->part)
            continue;
        struct repl_traffic *t = repl_part_traffic(fp->part);
        t->bytes_out += (uint64_t)fp->field->len;
        t->records_out += (uint64_t)fp->n_offsets;
    }
}

static void answer(struct parked *p)
{
    count_out(p);
    kreq_reply(p->req, &p->resp, resolve, p);
    release_parts(p); /* whatever the encoder did not take */
    free(p->parts);
    free(p);
}

/* A log we read got new visible data: enough now, or an error to report? On
 * yes the evaluation stays in p->resp for the answer. */
static bool parked_try(struct purg_op *op)
{
    struct parked *p = (struct parked *)op;
    int64_t got = evaluate(p);
    if (got < 0 || got >= p->m->min_bytes)
        return true;
    release_parts(p);
    return false;
}

static void parked_complete(struct purg_op *op, int reason)
{
    struct parked *p = (struct parked *)op;
    if (reason == PURG_CANCELLED) {
        /* The connection closed: nobody to answer, only memory to free. */
        kreq_no_reply(p->req);
        release_parts(p);
        free(p->parts);
        free(p);
        return;
    }
    if (reason != PURG_COMPLETED) /* max_wait_ms, or shutdown: what is there now */
        evaluate(p);
    answer(p);
}

void api_fetch_on_append(void *ud, struct plog *log)
{
    struct broker_ctx *b = ud;
    if (b->fetches) /* NULL while the broker shuts down */
        purg_check(b->fetches, purg_key_ptr(log));
}

/* Park @p (evaluated, not enough) until one of its logs gets data. Owned by the
 * connection, whose close cancels the wait; a closed one gets no wait at all. */
static int park(struct broker_ctx *b, struct parked *p)
{
    if (!b->fetches || !kreq_conn_open(p->req))
        return -ENOTCONN;
    uint64_t inl[INLINE_KEYS];
    uint64_t *keys = p->n_parts <= INLINE_KEYS ? inl : malloc(p->n_parts * sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < p->n_parts; i++)
        if (p->parts[i].log) /* all of them: a partition without is an error, answered */
            keys[n++] = purg_key_ptr(p->parts[i].log);
    purg_op_init(&p->op, parked_try, parked_complete, p->req->conn);
    /* Not tried again: the caller just evaluated. */
    int r = purg_watch(b->fetches, &p->op, keys, n, p->m->max_wait_ms);
    if (keys != inl)
        free(keys);
    return r;
}

void api_fetch_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_fetch_request *m = body;
    if (m->replica_id >= 0) {
        /* Replication uses the internal RPC (proto/replica.proto); a Kafka
         * client claiming to be a replica would otherwise move the ISR state. */
        log_warn("kafka",
                 "closing connection from %s: Fetch with replica_id %d (brokers "
                 "replicate over the replication listener)",
                 kreq_peer(req), (int)m->replica_id);
        kreq_close(req);
        return;
    }
    struct parked *p = calloc(1, sizeof(*p));
    if (!p) {
        kreq_close(req);
        return;
    }
    p->b = b;
    p->req = req;
    p->m = m;
    kafka_fetch_response_init(&p->resp);
    p->resp.session_id = 0; /* no fetch sessions: full responses (KIP-227) */
    size_t nparts = 0;
    for (int32_t i = 0; i < m->n_topics; i++)
        nparts += (size_t)m->topics[i].n_partitions;
    p->parts = calloc(nparts ? nparts : 1, sizeof(*p->parts));
    p->n_parts = nparts;
    p->resp.n_responses = m->n_topics;
    p->resp.responses = api_alloc(req, (size_t)m->n_topics, sizeof(*p->resp.responses));
    p->topics = api_alloc(req, (size_t)m->n_topics, sizeof(char *));
    bool oom = !p->parts || (m->n_topics > 0 && (!p->resp.responses || !p->topics));
    for (int32_t i = 0; !oom && i < m->n_topics; i++) {
        struct kafka_fetch_response_topic *rt = &p->resp.responses[i];
        rt->topic = m->topics[i].topic;
        p->topics[i] = api_str(req, m->topics[i].topic); /* NULL: unknown topic */
        rt->n_partitions = m->topics[i].n_partitions;
        rt->partitions = api_alloc(req, (size_t)rt->n_partitions, sizeof(*rt->partitions));
        oom = rt->n_partitions > 0 && !rt->partitions;
    }
    if (oom) {
        free(p->parts);
        free(p);
        kreq_close(req);
        return;
    }
    int64_t got = evaluate(p);
    if (got < 0 || got >= m->min_bytes || m->max_wait_ms <= 0 || nparts == 0) {
        answer(p);
        return;
    }
    release_parts(p);
    if (park(b, p) < 0) {
        evaluate(p);
        answer(p);
    }
}

/* ---- ListOffsets ------------------------------------------------------------- */

void api_list_offsets_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_list_offsets_request *m = body;
    int16_t ver = req->hdr.api_version;
    struct kafka_list_offsets_response resp;
    kafka_list_offsets_response_init(&resp);
    resp.n_topics = m->n_topics;
    resp.topics = api_alloc(req, (size_t)m->n_topics, sizeof(*resp.topics));
    if (m->n_topics > 0 && !resp.topics)
        goto oom;
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_list_offsets_request_topic *t = &m->topics[i];
        struct kafka_list_offsets_response_topic *rt = &resp.topics[i];
        rt->name = t->name;
        rt->n_partitions = t->n_partitions;
        rt->partitions = api_alloc(req, (size_t)t->n_partitions, sizeof(*rt->partitions));
        if (t->n_partitions > 0 && !rt->partitions)
            goto oom;
        char *topic = api_str(req, t->name);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            const struct kafka_list_offsets_request_partition *rq = &t->partitions[j];
            struct kafka_list_offsets_response_partition *rp = &rt->partitions[j];
            rp->partition_index = rq->partition_index;
            rp->timestamp = -1;
            rp->offset = -1;
            rp->leader_epoch = -1;
            struct replicas_leader l;
            int16_t e = topic ? replicas_lookup(b->reps, topic, rq->partition_index,
                                            rq->current_leader_epoch, &l)
                          : KERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (e) {
                rp->error_code = (int16_t)e;
                continue;
            }
            rp->leader_epoch = l.leader_epoch;
            if (rq->timestamp == -1) {
                rp->offset = l.high_watermark; /* latest = HW (= LSO: no transactions) */
            } else if (rq->timestamp == -2) {
                rp->offset = plog_log_start_offset(l.log);
            } else if (rq->timestamp < 0) {
                rp->error_code = KERR_INVALID_REQUEST; /* -3 (max timestamp) not advertised */
                continue;
            } else {
                int64_t off, ts;
                int r = plog_offset_for_timestamp(l.log, rq->timestamp, &off, &ts);
                if (r == 0) {
                    rp->offset = off;
                    rp->timestamp = ts;
                } else if (r != -ENOENT) {
                    rp->error_code = KERR_KAFKA_STORAGE_ERROR;
                }
            }
            if (ver == 0) {
                rp->n_old_style_offsets = rp->offset >= 0 ? 1 : 0;
                rp->old_style_offsets = api_alloc(req, 1, sizeof(int64_t));
                if (!rp->old_style_offsets)
                    goto oom;
                rp->old_style_offsets[0] = rp->offset;
            }
        }
    }
    kreq_reply(req, &resp, NULL, NULL);
    return;
oom:
    kreq_close(req);
}

/* ---- OffsetForLeaderEpoch --------------------------------------------------------- */

/* Where each requested leader epoch ends in the leader's log (KIP-101/KIP-320):
 * librdkafka asks after a leader change to find out whether its position was
 * truncated away. */
void api_offset_for_leader_epoch_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_offset_for_leader_epoch_request *m = body;
    struct kafka_offset_for_leader_epoch_response resp;
    kafka_offset_for_leader_epoch_response_init(&resp);
    resp.n_topics = m->n_topics;
    resp.topics = api_alloc(req, (size_t)m->n_topics, sizeof(*resp.topics));
    if (m->n_topics > 0 && !resp.topics)
        goto oom;
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_offset_for_leader_epoch_request_topic *t = &m->topics[i];
        struct kafka_offset_for_leader_epoch_response_topic *rt = &resp.topics[i];
        rt->topic = t->topic;
        rt->n_partitions = t->n_partitions;
        rt->partitions = api_alloc(req, (size_t)t->n_partitions, sizeof(*rt->partitions));
        if (t->n_partitions > 0 && !rt->partitions)
            goto oom;
        char *topic = api_str(req, t->topic);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            const struct kafka_offset_for_leader_epoch_request_partition *rq = &t->partitions[j];
            struct kafka_offset_for_leader_epoch_response_partition *rp = &rt->partitions[j];
            rp->partition = rq->partition;
            rp->leader_epoch = -1;
            rp->end_offset = -1;
            struct replicas_leader l;
            int16_t e =
                topic ? replicas_lookup(b->reps, topic, rq->partition, rq->current_leader_epoch, &l)
                      : KERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (e == 0 && !l.part)
                e = KERR_LEADER_NOT_AVAILABLE;
            if (e) {
                rp->error_code = (int16_t)e;
                continue;
            }
            int32_t ep;
            int64_t end;
            repl_part_epoch_end_offset(l.part, rq->leader_epoch, &ep, &end);
            rp->leader_epoch = ep;
            rp->end_offset = end;
        }
    }
    kreq_reply(req, &resp, NULL, NULL);
    return;
oom:
    kreq_close(req);
}
