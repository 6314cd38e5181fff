/* api_produce: Produce v3-8 (v0-2 advertised, refused by closing the
 * connection): validation of the outer batches, of the records inside
 * compressed ones (bounded decompression) and recompression to the topic's
 * compression.type (docs/compression.md), the idempotent producer's
 * checks (broker/replica/pstates.h, docs/idempotence.md), append to the
 * leader's log,
 * and for acks=all a wait until the high watermark passes every appended batch
 * (broker/replica/repl.h), answered REQUEST_TIMED_OUT after the request's
 * timeout. */
#include <errno.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/effconfig.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "broker/coordclient.h"
#include "broker/replica/pstates.h"
#include "broker/replica/repl.h"
#include "broker/replicas.h"
#include "broker/storage/logmgr.h"
#include "common/batch.h"
#include "common/codec.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/meta/state.h"
#include "common/topic_config.h"


/* Per-batch checks that need only the headers: size cap, codec support for
 * this version, no control batches from clients. Walks lengths safely; anything
 * malformed is left to batch_validate_all. */
static int16_t check_batches(const uint8_t *p, size_t len, int32_t max_bytes, int16_t version)
{
    size_t at = 0;
    while (len - at >= BATCH_HEADER_SIZE) {
        struct batch_header h;
        if (batch_parse_header(p + at, len - at, &h) != 0 || h.length < 0)
            return 0;
        int64_t total = batch_total_size(&h);
        if (total > max_bytes)
            return KERR_MESSAGE_TOO_LARGE;
        if (h.magic == BATCH_MAGIC_V2 && batch_compression(&h) == BATCH_COMPRESSION_ZSTD &&
            version < 7)
            return KERR_UNSUPPORTED_COMPRESSION_TYPE;
        if (h.magic == BATCH_MAGIC_V2 && (h.attributes & BATCH_ATTR_CONTROL))
            return KERR_INVALID_RECORD;
        if ((uint64_t)total > len - at)
            return 0;
        at += (size_t)total;
    }
    return 0;
}

/* What the idempotence checks need before the per-partition state: no
 * transactional batches (transactions are not served, so no batch can belong
 * to one), and producer ids the coordinator has handed out. */
static int16_t check_producers(struct broker_ctx *b, const uint8_t *p, size_t len,
                               const char **ret_msg)
{
    const struct cstate *cs = coordclient_state(b->cc);
    bool known = coordclient_synced(b->cc);
    for (size_t at = 0; len - at >= BATCH_HEADER_SIZE;) {
        struct batch_header h;
        if (batch_parse_header(p + at, len - at, &h) != 0 || h.length < 0)
            break;
        at += (size_t)batch_total_size(&h);
        if (h.attributes & BATCH_ATTR_TRANSACTIONAL) {
            *ret_msg = "transactional producers are not supported by this cluster";
            return KERR_INVALID_REQUEST;
        }
        if (h.producer_id >= 0 && known && h.producer_id >= cs->next_producer_id) {
            *ret_msg = "this producer id was never issued by InitProducerId";
            return KERR_UNKNOWN_PRODUCER_ID;
        }
    }
    return 0;
}

/* What a topic's configuration asks of the produce path (common/topic_config.c):
 * max.message.bytes, message.timestamp.type, message.timestamp.difference.max.ms
 * and compression.type. The broker's own message.max.bytes and compression.type
 * are the defaults. */
struct topic_policy {
    int32_t max_message_bytes;
    bool log_append_time;
    int64_t timestamp_diff_max_ms; /* INT64_MAX: no check */
    int codec;                     /* enum codec_type, or -1 for "producer" */
    /* batch_decompress_bound(max_message_bytes): what all compressed batches of
     * one partition in one request may decompress to, together (Kafka takes one
     * batch per partition; Weir takes several, so the bound is on their sum) */
    size_t decompress_bound;
};

static int policy_codec(const char *v)
{
    enum codec_type c;
    if (!v || strcmp(v, "producer") == 0 || codec_from_name(v, &c) < 0)
        return -1; /* validated on the way in: anything else cannot be stored */
    return (int)c;
}

static void topic_policy_get(const struct broker_ctx *b, const char *topic,
                             struct topic_policy *ret)
{
    struct topic_policy tp = {
        .max_message_bytes = b->s->message_max_bytes,
        .timestamp_diff_max_ms = INT64_MAX,
        .codec = -1,
    };
    const struct cstate *cs = coordclient_state(b->cc);
    const struct cstate_topic *t = cstate_topic_by_name(cs, topic);
    const char *v;
    int64_t n;
    if (t && (v = cstate_topic_config(t, "max.message.bytes")) && topic_config_parse_long(v, &n) &&
        n >= 0 && n <= INT32_MAX)
        tp.max_message_bytes = (int32_t)n;
    if (t && (v = cstate_topic_config(t, "message.timestamp.type")))
        tp.log_append_time = strcmp(v, "LogAppendTime") == 0;
    if (t && (v = cstate_topic_config(t, "message.timestamp.difference.max.ms")) &&
        topic_config_parse_long(v, &n) && n >= 0)
        tp.timestamp_diff_max_ms = n;
    if (t && (v = cstate_topic_config(t, "compression.type")))
        tp.codec = policy_codec(v);
    else if (b->cfg) {
        enum effconfig_source src;
        tp.codec = policy_codec(effconfig_get(cs, b->cfg, b->s->broker_id, "compression.type", &src));
    }
    tp.decompress_bound = batch_decompress_bound(tp.max_message_bytes);
    *ret = tp;
}

/* Decompressed records of compressed batches, reused across requests (one
 * event loop); trimmed after a large batch so a bomb's worth is not kept. */
#define SCRATCH_KEEP_BYTES (4u << 20)
static buf_writer scratch;

static void scratch_trim(void)
{
    if (scratch.cap > SCRATCH_KEEP_BYTES) {
        buf_writer_deinit(&scratch);
        buf_writer_init(&scratch);
    }
}

/* A decompression error of a producer's batch as Kafka answers it: a bomb and a
 * corrupt frame are both CORRUPT_MESSAGE. */
static int16_t codec_kerr(const char *topic, int32_t partition, int r)
{
    if (r == -ENOMEM) {
        log_error("kafka", "%s-%d: out of memory decompressing a batch", topic, partition);
        return KERR_UNKNOWN_SERVER_ERROR;
    }
    log_warn("kafka", "%s-%d: refused a compressed batch: %s", topic, partition,
             r == -EMSGSIZE ? "it decompresses past the bound (compression bomb)"
                            : "its records do not decompress or parse");
    return KERR_CORRUPT_MESSAGE;
}

/* Whether any batch's codec differs from the topic's compression.type. */
static bool needs_recompression(const struct topic_policy *tp, const uint8_t *p, size_t len)
{
    for (size_t at = 0; len - at >= BATCH_HEADER_SIZE;) {
        struct batch_header h;
        if (batch_parse_header(p + at, len - at, &h) != 0)
            return true; /* recompress_set refuses it */
        if ((int)batch_compression(&h) != tp->codec)
            return true;
        at += (size_t)batch_total_size(&h);
    }
    return false;
}

/* Decompress (into scratch) and check the records of one batch. A compressed
 * batch is charged to @budget, the bytes its partition's batches may still
 * decompress to in this request; @budget NULL: already charged, the whole bound
 * applies. An uncompressed batch is only copied, within its own size. */
static int check_one(const struct topic_policy *tp, const struct batch_header *h,
                     const uint8_t *batch, size_t total, size_t *budget)
{
    bool compressed = batch_compression(h) != BATCH_COMPRESSION_NONE;
    size_t max = !compressed ? total : budget ? *budget : tp->decompress_bound;
    int r = batch_check_records(batch, total, max, &scratch);
    if (r == 0 && compressed && budget)
        *budget -= scratch.len;
    return r;
}

/* compression.type names a codec: rewrite every batch of another codec into
 * @out (the whole record set; batches already in the codec are copied). Every
 * rewritten or copied compressed batch has its records checked on the way. */
static int16_t recompress_set(const struct topic_policy *tp, const char *topic, int32_t partition,
                              const uint8_t *p, size_t len, size_t *budget, buf_writer *out)
{
    size_t at = 0;
    while (len - at >= BATCH_HEADER_SIZE) {
        struct batch_header h;
        if (batch_parse_header(p + at, len - at, &h) != 0)
            return KERR_CORRUPT_MESSAGE;
        size_t total = (size_t)batch_total_size(&h); /* validated: fits in len */
        size_t start = out->len;
        int r = 0;
        if ((int)batch_compression(&h) == tp->codec) {
            if (tp->codec != CODEC_NONE)
                r = check_one(tp, &h, p + at, total, budget);
            if (r == 0)
                r = buf_write_raw(out, p + at, total);
        } else {
            r = check_one(tp, &h, p + at, total, budget);
            if (r == 0)
                r = batch_compress_records(p + at, total, scratch.data, scratch.len,
                                           (enum codec_type)tp->codec, out);
        }
        if (r < 0)
            return codec_kerr(topic, partition, r);
        /* Kafka checks the stored size after conversion too */
        if (out->len - start > (size_t)tp->max_message_bytes)
            return KERR_MESSAGE_TOO_LARGE;
        at += total;
    }
    return 0;
}

static bool ts_out_of_range(int64_t ts, int64_t now, int64_t max_diff)
{
    /* -1 is "no timestamp" (Kafka's NO_TIMESTAMP), never checked. */
    if (ts == -1)
        return false;
    int64_t d = ts > now ? ts - now : now - ts; /* both are wall-clock ms: no overflow */
    return d > max_diff;
}

/* Every record of a batch against the timestamp bound; @records is its
 * records section (decompressed for a compressed batch). */
static int16_t check_record_timestamps(const struct batch_header *h, const uint8_t *records,
                                       size_t len, int64_t now, int64_t max_diff)
{
    struct batch_record_iter it;
    struct batch_record rec;
    int r;
    batch_records_begin_raw(records, len, h->record_count, &it);
    while ((r = batch_records_next(&it, &rec)) == 1) {
        /* both from the producer: wrap rather than overflow */
        int64_t ts = (int64_t)((uint64_t)h->base_timestamp + (uint64_t)rec.timestamp_delta);
        if (ts_out_of_range(ts, now, max_diff))
            return KERR_INVALID_TIMESTAMP;
    }
    return r < 0 ? KERR_CORRUPT_MESSAGE : 0;
}

/* Topic policy over validated batches: the records inside compressed batches
 * (bounded decompression charged to @budget, count and offsets, unless
 * @records_checked because recompress_set just did it), the timestamps of CreateTime batches against
 * message.timestamp.difference.max.ms (every record), and the LogAppendTime
 * stamp (CRC recomputed). */
static int16_t apply_topic_policy(const struct topic_policy *tp, const char *topic,
                                  int32_t partition, uint8_t *p, size_t len, bool records_checked,
                                  size_t *budget, int64_t now)
{
    size_t at = 0;
    while (len - at >= BATCH_HEADER_SIZE) {
        struct batch_header h;
        if (batch_parse_header(p + at, len - at, &h) != 0)
            return KERR_CORRUPT_MESSAGE;
        size_t total = (size_t)batch_total_size(&h); /* validated: fits in len */
        bool compressed = batch_compression(&h) != BATCH_COMPRESSION_NONE;
        bool check_ts = !tp->log_append_time && tp->timestamp_diff_max_ms != INT64_MAX;
        if (compressed && (!records_checked || check_ts)) {
            int r = check_one(tp, &h, p + at, total, records_checked ? NULL : budget);
            if (r < 0)
                return codec_kerr(topic, partition, r);
        }
        if (tp->log_append_time) {
            if (batch_set_log_append_time(p + at, total, now) < 0)
                return KERR_CORRUPT_MESSAGE;
        } else if (check_ts) {
            int64_t d = tp->timestamp_diff_max_ms;
            if (ts_out_of_range(h.max_timestamp, now, d) ||
                ts_out_of_range(h.base_timestamp, now, d))
                return KERR_INVALID_TIMESTAMP;
            int16_t e;
            if (compressed) {
                e = check_record_timestamps(&h, scratch.data, scratch.len, now, d);
            } else {
                e = check_record_timestamps(&h, p + at + BATCH_HEADER_SIZE,
                                            total - BATCH_HEADER_SIZE, now, d);
            }
            if (e)
                return e;
        }
        at += total;
    }
    return 0;
}

/* A compacted log keeps the latest record per key, so a record without a key
 * has no place in it: Kafka refuses the batch with INVALID_RECORD. Compressed
 * batches are decompressed (bounded) to look at their keys. */
static int16_t check_keys_compacted(const uint8_t *p, size_t len, int32_t max_message_bytes,
                                    const char **ret_msg)
{
    int16_t e = 0;
    for (size_t at = 0; len - at >= BATCH_HEADER_SIZE && !e;) {
        struct batch_header h;
        if (batch_parse_header(p + at, len - at, &h) != 0)
            break;
        size_t total = (size_t)batch_total_size(&h); /* validated: fits in len */
        struct batch_record_iter it;
        struct batch_record rec;
        buf_writer_reset(&scratch);
        if (batch_decompress_records(p + at, total, batch_decompress_bound(max_message_bytes),
                                     &scratch) < 0) {
            e = KERR_CORRUPT_MESSAGE;
            break;
        }
        batch_records_begin_raw(scratch.data, scratch.len, h.record_count, &it);
        int r;
        while ((r = batch_records_next(&it, &rec)) == 1)
            if (rec.key.len < 0) {
                *ret_msg = "Compacted topic cannot accept message without key";
                e = KERR_INVALID_RECORD;
                break;
            }
        if (r < 0 && !e)
            e = KERR_CORRUPT_MESSAGE;
        at += total;
    }
    scratch_trim();
    return e;
}

/* An acks=all produce waiting for the high watermark; in the request's arena. */
struct produce_wait {
    struct kreq *req;
    struct kafka_produce_response resp;
    int pending; /* partitions still waiting, +1 while the handler runs */
};

struct produce_part_wait {
    struct produce_wait *w;
    struct kafka_produce_response_partition *rp;
};

static void produce_wait_release(struct produce_wait *w)
{
    if (--w->pending > 0)
        return;
    /* Both free the arena, w included. A closed connection (its waits were
     * cancelled, or it went away meanwhile) would only drop the bytes. */
    if (kreq_conn_open(w->req))
        kreq_reply(w->req, &w->resp, NULL, NULL);
    else
        kreq_no_reply(w->req);
}

static void on_acked(void *ud, int16_t error)
{
    struct produce_part_wait *pw = ud;
    if (error) {
        pw->rp->error_code = error;
        pw->rp->base_offset = -1;
    }
    produce_wait_release(pw->w);
}

/* Validated (and maybe recompressed) batches of one partition: the idempotent
 * producer's checks, the append, the answer. @data is writable and outlives
 * the call only until it returns. */
static int16_t produce_append(struct broker_ctx *b, const char *topic,
                              const struct kafka_produce_request_partition *pd,
                              const struct topic_policy *tpp, const struct replicas_leader *lp,
                              uint8_t *data, size_t len, int64_t now,
                              struct kafka_produce_response_partition *out,
                              struct plog_append_info *ret_info, struct replicas_leader *ret_l)
{
    struct replicas_leader l = *lp;
    int r;
    const char *msg = NULL;
    int16_t pe;
    if (plog_get_config(l.log)->cleanup_compact &&
        (pe = check_keys_compacted(data, len, tpp->max_message_bytes, &msg))) {
        out->error_message = api_slice(msg);
        return pe;
    }
    pe = check_producers(b, data, len, &msg);
    if (pe) {
        out->error_message = api_slice(msg);
        return pe;
    }
    bool dup = false;
    int64_t dup_first = -1, dup_last = -1;
    pe = pstates_check(b->pstates, l.log, l.leader_epoch, data, len, &dup, &dup_first, &dup_last);
    if (pe) {
        if (pe == KERR_NOT_ENOUGH_REPLICAS && pstates_loading(b->pstates, l.log))
            out->error_message = api_slice("the partition's producer state is still loading "
                                           "from its log; retry");
        return pe;
    }
    struct plog_append_info info;
    if (dup) {
        /* A retry of a batch already in the log: its original offsets, and
         * for acks=all the same wait for the HW to pass it. */
        memset(&info, 0, sizeof(info));
        info.first_offset = dup_first;
        info.last_offset = dup_last;
        out->base_offset = dup_first;
        *ret_info = info;
        *ret_l = l;
        return 0;
    }
    if (tpp->log_append_time)
        out->log_append_time_ms = now;
    r = logmgr_append(b->lm, l.log, data, len, PLOG_APPEND_ASSIGN_OFFSETS, l.leader_epoch, &info);
    if (r == -EMSGSIZE)
        return KERR_MESSAGE_TOO_LARGE;
    if (r < 0) {
        log_error("kafka", "append to %s-%d failed: %s", topic, pd->index, strerror(-r));
        return KERR_KAFKA_STORAGE_ERROR;
    }
    pstates_appended(b->pstates, l.log, data, len, &info);
    if (l.part) {
        struct repl_traffic *t = repl_part_traffic(l.part);
        t->bytes_in += len;
        t->records_in += (uint64_t)info.records;
    }
    out->base_offset = info.first_offset;
    out->log_start_offset = plog_log_start_offset(l.log);
    repl_leader_appended(b->repl, l.part);
    *ret_info = info;
    *ret_l = l;
    return 0;
}

static int16_t produce_one(struct broker_ctx *b, int16_t version, int16_t acks, const char *topic,
                           const struct kafka_produce_request_partition *pd,
                           struct kafka_produce_response_partition *out,
                           struct plog_append_info *ret_info, struct replicas_leader *ret_l)
{
    struct replicas_leader l;
    int16_t e = replicas_lookup(b->reps, topic, pd->index, -1, &l);
    if (e)
        return (int16_t)e;
    int16_t re = repl_produce_check(b->repl, l.part, acks);
    if (re)
        return re;
    out->log_start_offset = plog_log_start_offset(l.log);
    if (pd->records.len <= 0)
        return KERR_CORRUPT_MESSAGE;
    uint8_t *data = (uint8_t *)pd->records.ptr; /* our own request frame */
    size_t len = (size_t)pd->records.len;
    struct topic_policy tp;
    topic_policy_get(b, topic, &tp);
    int16_t ce = check_batches(data, len, tp.max_message_bytes, version);
    if (ce)
        return ce;
    int r = batch_validate_all(data, len, BATCH_VALIDATE_EXACT_COUNT, NULL, NULL);
    if (r < 0)
        return KERR_CORRUPT_MESSAGE;
    /* The fast path ("producer", or batches already in the topic's codec) keeps
     * the bytes as they arrived; otherwise the leader recompresses. */
    buf_writer recomp;
    buf_writer_init(&recomp);
    bool recompressed = false;
    size_t budget = tp.decompress_bound;
    if (tp.codec >= 0 && needs_recompression(&tp, data, len)) {
        ce = recompress_set(&tp, topic, pd->index, data, len, &budget, &recomp);
        if (ce) {
            buf_writer_deinit(&recomp);
            scratch_trim();
            return ce;
        }
        data = recomp.data;
        len = recomp.len;
        recompressed = true;
    }
    int64_t now = logmgr_now_ms(b->lm);
    ce = apply_topic_policy(&tp, topic, pd->index, data, len, recompressed, &budget, now);
    scratch_trim();
    if (!ce)
        ce = produce_append(b, topic, pd, &tp, &l, data, len, now, out, ret_info, ret_l);
    buf_writer_deinit(&recomp);
    return ce;
}

void api_produce_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_produce_request *m = body;
    int16_t ver = req->hdr.api_version;
    if (ver < 3) {
        /* MessageSet v0/v1 is not supported; advertised only for clients'
         * feature gates (kafka-clients.md §2, note 1). */
        log_warn("kafka", "closing connection from %s: Produce v%d (message format < 2)",
                 kreq_peer(req), ver);
        kreq_close(req);
        return;
    }
    bool acks_ok = m->acks == -1 || m->acks == 0 || m->acks == 1;
    struct produce_wait *w = api_alloc(req, 1, sizeof(*w));
    if (!w)
        goto oom;
    w->req = req;
    w->pending = 1;
    struct kafka_produce_response resp;
    kafka_produce_response_init(&resp);
    resp.n_responses = m->n_topic_data;
    resp.responses = api_alloc(req, (size_t)m->n_topic_data, sizeof(*resp.responses));
    if (m->n_topic_data > 0 && !resp.responses)
        goto oom;
    /* Every allocation comes before the first append: once a partition waits
     * for the HW, the request can no longer be abandoned. */
    struct produce_part_wait **pws = api_alloc(req, (size_t)m->n_topic_data, sizeof(*pws));
    if (m->n_topic_data > 0 && !pws)
        goto oom;
    for (int32_t i = 0; i < m->n_topic_data; i++) {
        const struct kafka_produce_request_topic *t = &m->topic_data[i];
        struct kafka_produce_response_topic *rt = &resp.responses[i];
        rt->name = t->name;
        rt->n_partition_responses = t->n_partition_data;
        rt->partition_responses =
            api_alloc(req, (size_t)t->n_partition_data, sizeof(*rt->partition_responses));
        pws[i] = api_alloc(req, (size_t)t->n_partition_data, sizeof(*pws[i]));
        if (t->n_partition_data > 0 && (!rt->partition_responses || !pws[i]))
            goto oom;
    }
    for (int32_t i = 0; i < m->n_topic_data; i++) {
        const struct kafka_produce_request_topic *t = &m->topic_data[i];
        struct kafka_produce_response_topic *rt = &resp.responses[i];
        char *topic = api_str(req, t->name);
        for (int32_t j = 0; j < t->n_partition_data; j++) {
            struct kafka_produce_response_partition *rp = &rt->partition_responses[j];
            rp->index = t->partition_data[j].index;
            rp->base_offset = -1;
            rp->log_append_time_ms = -1;
            rp->log_start_offset = -1;
            rp->error_message = api_slice(NULL);
            if (!acks_ok)
                rp->error_code = KERR_INVALID_REQUIRED_ACKS;
            else if (!topic)
                rp->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else {
                struct plog_append_info info = {0};
                struct replicas_leader l = {0};
                rp->error_code =
                    produce_one(b, ver, m->acks, topic, &t->partition_data[j], rp, &info, &l);
                if (rp->error_code == 0 && m->acks == -1) {
                    struct produce_part_wait *pw = &pws[i][j];
                    pw->w = w;
                    pw->rp = rp;
                    /* Owned by the connection: its close cancels the wait. */
                    int r = repl_wait_hw(b->repl, l.part, info.last_offset, m->timeout_ms,
                                         req->conn, on_acked, pw);
                    if (r == 0)
                        w->pending++;
                    else if (r < 0)
                        rp->error_code = KERR_REQUEST_TIMED_OUT; /* could not wait */
                }
            }
        }
    }
    if (m->acks == 0 && acks_ok) {
        /* Clients do not read an answer to acks=0. As in Kafka, an error closes
         * the connection instead, so the client refreshes its metadata. */
        bool any_error = false;
        for (int32_t i = 0; i < resp.n_responses; i++)
            for (int32_t j = 0; j < resp.responses[i].n_partition_responses; j++)
                any_error |= resp.responses[i].partition_responses[j].error_code != 0;
        if (any_error)
            kreq_close(req);
        else
            kreq_no_reply(req);
        return;
    }
    /* acks=1, or acks=all with the HW already past every batch: answer now;
     * else the last on_acked answers. */
    w->resp = resp;
    produce_wait_release(w);
    return;
oom:
    kreq_close(req);
}
