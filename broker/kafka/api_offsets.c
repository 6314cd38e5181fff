/* api_offsets: FindCoordinator v0-4, OffsetCommit v0-8, OffsetFetch v0-8 and
 * OffsetDelete v0 over broker/group/gstore.h (the __consumer_offsets store)
 * and groups.h (the membership check of a commit, OffsetDelete's
 * subscription check). A commit or delete is answered once its records are
 * committed to the ISR of the group's offsets partition. */
#include <errno.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/group/groups.h"
#include "broker/group/gstore.h"
#include "broker/group/offset_map.h"
#include "broker/group/offset_records.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/arena.h"
#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/meta/state.h"

#define FIND_COORDINATOR_KEY_GROUP       0
#define FIND_COORDINATOR_KEY_TRANSACTION 1

static const char *cstr(struct kreq *req, buf_slice s)
{
    const char *c = api_str(req, s);
    return c ? c : "";
}

/* Kafka's GroupMetadataManager turns produce errors of an offsets write into
 * answers a consumer acts on: rediscover the coordinator, or give up. */
static int16_t commit_error(int16_t e)
{
    switch (e) {
    case KERR_UNKNOWN_TOPIC_OR_PARTITION:
    case KERR_NOT_ENOUGH_REPLICAS:
    case KERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case KERR_REQUEST_TIMED_OUT:
        return KERR_COORDINATOR_NOT_AVAILABLE;
    case KERR_NOT_LEADER_OR_FOLLOWER:
    case KERR_KAFKA_STORAGE_ERROR:
        return KERR_NOT_COORDINATOR;
    case KERR_MESSAGE_TOO_LARGE:
    case KERR_RECORD_LIST_TOO_LARGE:
        return KERR_INVALID_COMMIT_OFFSET_SIZE;
    default:
        return e;
    }
}

static bool partition_exists(struct broker_ctx *b, const char *topic, int32_t partition)
{
    const struct cstate_topic *t = cstate_topic_by_name(coordclient_state(b->cc), topic);
    return t && partition >= 0 && partition < t->n_parts;
}

/* ---- FindCoordinator ----------------------------------------------------------------- */

static const struct cstate_endpoint *broker_endpoint(struct broker_ctx *b, int32_t id)
{
    const struct cstate_broker *br = cstate_broker(coordclient_state(b->cc), id);
    if (!br || br->state == CSTATE_BROKER_FENCED || br->n_endpoints == 0)
        return NULL;
    for (uint32_t i = 0; i < br->n_endpoints; i++)
        if (br->endpoints[i].listener &&
            strcmp(br->endpoints[i].listener, b->s->advertised.listener) == 0)
            return &br->endpoints[i];
    return &br->endpoints[0];
}

struct coordinator_answer {
    int16_t error;
    const char *message; /* NULL: none */
    int32_t node;
    const char *host;
    int32_t port;
};

static void find_one(struct broker_ctx *b, int8_t key_type, const char *key,
                     struct coordinator_answer *ret)
{
    struct coordinator_answer a = {.node = -1, .host = "", .port = -1};
    if (key_type == FIND_COORDINATOR_KEY_TRANSACTION) {
        a.error = KERR_COORDINATOR_NOT_AVAILABLE;
        a.message = "transactions are not supported by this cluster yet";
    } else if (key_type != FIND_COORDINATOR_KEY_GROUP) {
        a.error = KERR_INVALID_REQUEST;
        a.message = "unknown coordinator key type";
    } else {
        int32_t node;
        a.error = gstore_coordinator_node(b->gstore, key, &node);
        const struct cstate_endpoint *ep = a.error ? NULL : broker_endpoint(b, node);
        if (!a.error && !ep)
            a.error = KERR_COORDINATOR_NOT_AVAILABLE;
        if (!a.error) {
            a.node = node;
            a.host = ep->host;
            a.port = ep->port;
        }
    }
    *ret = a;
}

void api_find_coordinator_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_find_coordinator_request *r = body;
    int16_t v = req->hdr.api_version;
    struct kafka_find_coordinator_response resp;
    kafka_find_coordinator_response_init(&resp);
    int8_t key_type = v >= 1 ? r->key_type : FIND_COORDINATOR_KEY_GROUP;
    struct coordinator_answer a;
    if (v < 4) {
        find_one(b, key_type, cstr(req, r->key), &a);
        resp.error_code = a.error;
        resp.error_message =
            api_slice(a.message ? a.message : (a.error ? kerr_message(a.error) : NULL));
        resp.node_id = a.node;
        resp.host = api_slice(api_str(req, api_slice(a.host)));
        resp.port = a.port;
    } else {
        resp.n_coordinators = r->n_coordinator_keys;
        resp.coordinators =
            api_alloc(req, (size_t)r->n_coordinator_keys, sizeof(*resp.coordinators));
        if (r->n_coordinator_keys > 0 && !resp.coordinators) {
            kreq_close(req);
            return;
        }
        for (int32_t i = 0; i < r->n_coordinator_keys; i++) {
            struct kafka_find_coordinator_response_coordinator *c = &resp.coordinators[i];
            find_one(b, key_type, cstr(req, r->coordinator_keys[i]), &a);
            c->key = r->coordinator_keys[i];
            c->node_id = a.node;
            c->host = api_slice(api_str(req, api_slice(a.host)));
            c->port = a.port;
            c->error_code = a.error;
            c->error_message =
                api_slice(a.message ? a.message : (a.error ? kerr_message(a.error) : NULL));
        }
    }
    kreq_reply(req, &resp, NULL, NULL);
}

/* ---- OffsetCommit -------------------------------------------------------------------- */

/* The answer to @req, unless its connection went away meanwhile. */
static void reply_if_open(struct kreq *req, const void *resp)
{
    if (kreq_conn_open(req))
        kreq_reply(req, resp, NULL, NULL);
    else
        kreq_no_reply(req);
}

/* OffsetCommit / OffsetDelete waiting for their records to be committed to
 * __consumer_offsets: each partition error the write decides gets its outcome,
 * then the response goes out. In the request's arena. */
struct write_wait {
    struct kreq *req;
    const void *resp;  /* the request's response struct */
    int16_t **waiting; /* error codes of the partitions written, NULL-terminated */
};

static void write_done(void *ud, int16_t kerr)
{
    struct write_wait *w = ud;
    for (int16_t **p = w->waiting; *p; p++)
        **p = commit_error(kerr);
    reply_if_open(w->req, w->resp);
}

/* Append the @n records of @w's partitions (none: answer at once); the answer
 * goes out when they are committed, or now with the append's error. */
static void write_start(struct broker_ctx *b, const char *group, int32_t n, buf_slice *keys,
                        buf_slice *vals, struct write_wait *w)
{
    if (n == 0) {
        reply_if_open(w->req, w->resp);
        return;
    }
    int16_t ae = gstore_append_records(b->gstore, group, n, keys, vals, write_done, w);
    if (ae) {
        for (int32_t i = 0; i < n; i++)
            *w->waiting[i] = commit_error(ae);
        reply_if_open(w->req, w->resp);
    }
}

struct commit_wait {
    struct write_wait ww;
    struct kafka_offset_commit_response resp;
};

void api_offset_commit_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_offset_commit_request *r = body;
    int16_t v = req->hdr.api_version;
    struct commit_wait *w = api_alloc(req, 1, sizeof(*w));
    if (!w)
        goto oom;
    w->ww.req = req;
    struct kafka_offset_commit_response *resp = &w->resp;
    w->ww.resp = resp;
    kafka_offset_commit_response_init(resp);
    resp->n_topics = r->n_topics;
    resp->topics = api_alloc(req, (size_t)r->n_topics, sizeof(*resp->topics));
    if (r->n_topics > 0 && !resp->topics)
        goto oom;
    size_t total = 0;
    for (int32_t i = 0; i < r->n_topics; i++) {
        const struct kafka_offset_commit_request_topic *t = &r->topics[i];
        struct kafka_offset_commit_response_topic *rt = &resp->topics[i];
        rt->name = t->name;
        rt->n_partitions = t->n_partitions;
        rt->partitions = api_alloc(req, (size_t)t->n_partitions, sizeof(*rt->partitions));
        if (t->n_partitions > 0 && !rt->partitions)
            goto oom;
        for (int32_t j = 0; j < t->n_partitions; j++)
            rt->partitions[j].partition_index = t->partitions[j].partition_index;
        total += (size_t)t->n_partitions;
    }
    const char *group = cstr(req, r->group_id);
    int16_t e = KERR_NONE;
    if (!group[0])
        e = KERR_INVALID_GROUP_ID;
    if (!e)
        e = gstore_coordinator_check(b->gstore, group);
    if (!e && b->groups)
        e = groups_validate_commit(b->groups, group, v >= 1 ? r->generation_id : -1,
                                   v >= 1 ? cstr(req, r->member_id) : "",
                                   v >= 7 ? api_str(req, r->group_instance_id) : NULL);
    buf_slice *keys = api_alloc(req, total, sizeof(*keys));
    buf_slice *vals = api_alloc(req, total, sizeof(*vals));
    w->ww.waiting = api_alloc(req, total + 1, sizeof(*w->ww.waiting));
    if (total > 0 && (!keys || !vals || !w->ww.waiting))
        goto oom;
    int32_t n = 0;
    int64_t now = clock_wall_ms();
    buf_writer kw, vw;
    for (int32_t i = 0; i < r->n_topics; i++) {
        const struct kafka_offset_commit_request_topic *t = &r->topics[i];
        struct kafka_offset_commit_response_topic *rt = &resp->topics[i];
        const char *topic = cstr(req, t->name);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            const struct kafka_offset_commit_request_partition *p = &t->partitions[j];
            int16_t *err = &rt->partitions[j].error_code;
            if (e) {
                *err = e;
                continue;
            }
            if (!partition_exists(b, topic, p->partition_index)) {
                *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (p->committed_metadata.len > b->s->offset_metadata_max_bytes) {
                *err = KERR_OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            struct orec_value ov = {
                .offset = p->committed_offset,
                .leader_epoch = v >= 6 ? p->committed_leader_epoch : -1,
                .metadata = p->committed_metadata,
                .commit_timestamp = now,
                .expire_timestamp = -1,
            };
            /* v1 carries the client's commit timestamp (-1: the broker's) */
            if (v == 1 && p->commit_timestamp != -1)
                ov.commit_timestamp = p->commit_timestamp;
            /* v2-4 may ask for a retention of its own: Kafka stores it as an
             * explicit expire timestamp (value version 1). */
            if (v >= 2 && v <= 4 && r->retention_time_ms >= 0)
                ov.expire_timestamp = now + r->retention_time_ms;
            buf_writer_init(&kw);
            buf_writer_init(&vw);
            orec_key_encode(&kw, group, topic, p->partition_index);
            orec_value_encode(&vw, &ov);
            uint8_t *kb = NULL, *vb = NULL;
            if (buf_writer_error(&kw) || buf_writer_error(&vw) ||
                arena_alloc_array(&req->arena, kw.len, 1, 1, (void **)&kb) != 0 ||
                arena_alloc_array(&req->arena, vw.len, 1, 1, (void **)&vb) != 0) {
                buf_writer_deinit(&kw);
                buf_writer_deinit(&vw);
                goto oom;
            }
            memcpy(kb, kw.data, kw.len);
            memcpy(vb, vw.data, vw.len);
            keys[n] = (buf_slice){.ptr = kb, .len = (int32_t)kw.len};
            vals[n] = (buf_slice){.ptr = vb, .len = (int32_t)vw.len};
            buf_writer_deinit(&kw);
            buf_writer_deinit(&vw);
            w->ww.waiting[n++] = err;
        }
    }
    write_start(b, group, n, keys, vals, &w->ww);
    return;
oom:
    kreq_close(req);
}

/* ---- OffsetFetch --------------------------------------------------------------------- */

/* One partition's committed offset (Kafka: -1 and "" when none). */
static void fetch_partition(struct broker_ctx *b, const char *group, const char *topic,
                            int32_t partition, int64_t *ret_offset, int32_t *ret_epoch,
                            buf_slice *ret_metadata)
{
    const struct omap_entry *e = omap_get(gstore_offsets(b->gstore), group, topic, partition);
    *ret_offset = e ? e->offset : -1;
    *ret_epoch = e ? e->leader_epoch : -1;
    *ret_metadata = api_slice(e ? e->metadata : "");
}

/* The answer for one group in v8's shape; older versions are copied from it. */
static int fetch_group(struct broker_ctx *b, struct kreq *req, const char *group, int32_t n_topics,
                       const buf_slice *names, const int32_t *n_parts, int32_t *const *parts,
                       struct kafka_offset_fetch_response_group *ret)
{
    ret->group_id = api_slice(group);
    ret->error_code = gstore_coordinator_check(b->gstore, group);
    if (ret->error_code)
        return 0;
    if (n_topics < 0) {
        /* null topics: every committed offset of the group, one topic entry
         * per partition (clients merge them by name). */
        const struct omap_group *g = omap_group(gstore_offsets(b->gstore), group);
        size_t n = g ? g->n : 0;
        ret->n_topics = (int32_t)n;
        ret->topics = api_alloc(req, n, sizeof(*ret->topics));
        if (n && !ret->topics)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            const struct omap_entry *e = &g->entries[i];
            struct kafka_offset_fetch_response_group_topic *t = &ret->topics[i];
            t->name = api_slice(api_str(req, api_slice(e->topic)));
            t->n_partitions = 1;
            t->partitions = api_alloc(req, 1, sizeof(*t->partitions));
            if (!t->partitions || !t->name.ptr)
                return -ENOMEM;
            t->partitions[0].partition_index = e->partition;
            t->partitions[0].committed_offset = e->offset;
            t->partitions[0].committed_leader_epoch = e->leader_epoch;
            t->partitions[0].metadata = api_slice(api_str(req, api_slice(e->metadata)));
        }
        return 0;
    }
    ret->n_topics = n_topics;
    ret->topics = api_alloc(req, (size_t)n_topics, sizeof(*ret->topics));
    if (n_topics > 0 && !ret->topics)
        return -ENOMEM;
    for (int32_t i = 0; i < n_topics; i++) {
        struct kafka_offset_fetch_response_group_topic *t = &ret->topics[i];
        const char *topic = cstr(req, names[i]);
        t->name = names[i];
        t->n_partitions = n_parts[i];
        t->partitions = api_alloc(req, (size_t)n_parts[i], sizeof(*t->partitions));
        if (n_parts[i] > 0 && !t->partitions)
            return -ENOMEM;
        for (int32_t j = 0; j < n_parts[i]; j++) {
            struct kafka_offset_fetch_response_group_partition *p = &t->partitions[j];
            p->partition_index = parts[i][j];
            fetch_partition(b, group, topic, parts[i][j], &p->committed_offset,
                            &p->committed_leader_epoch, &p->metadata);
            /* copied now: the map may change before the reply is encoded */
            p->metadata = api_slice(api_str(req, p->metadata));
        }
    }
    return 0;
}

void api_offset_fetch_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_offset_fetch_request *r = body;
    int16_t v = req->hdr.api_version;
    struct kafka_offset_fetch_response resp;
    kafka_offset_fetch_response_init(&resp);
    if (v >= 8) {
        resp.n_groups = r->n_groups;
        resp.groups = api_alloc(req, (size_t)r->n_groups, sizeof(*resp.groups));
        if (r->n_groups > 0 && !resp.groups)
            goto oom;
        for (int32_t i = 0; i < r->n_groups; i++) {
            const struct kafka_offset_fetch_request_group *g = &r->groups[i];
            int32_t nt = g->n_topics;
            buf_slice *names = api_alloc(req, nt > 0 ? (size_t)nt : 0, sizeof(*names));
            int32_t *np = api_alloc(req, nt > 0 ? (size_t)nt : 0, sizeof(*np));
            int32_t **pp = api_alloc(req, nt > 0 ? (size_t)nt : 0, sizeof(*pp));
            if (nt > 0 && (!names || !np || !pp))
                goto oom;
            for (int32_t j = 0; j < nt; j++) {
                names[j] = g->topics[j].name;
                np[j] = g->topics[j].n_partition_indexes;
                pp[j] = g->topics[j].partition_indexes;
            }
            if (fetch_group(b, req, cstr(req, g->group_id), nt, names, np, pp, &resp.groups[i]) < 0)
                goto oom;
        }
        kreq_reply(req, &resp, NULL, NULL);
        return;
    }
    /* v0-1: topics are never null; v0 reads offsets Kafka kept in ZooKeeper,
     * which Weir answers from the same store. */
    int32_t nt = v >= 2 ? r->n_topics : (r->n_topics < 0 ? 0 : r->n_topics);
    buf_slice *names = api_alloc(req, nt > 0 ? (size_t)nt : 0, sizeof(*names));
    int32_t *np = api_alloc(req, nt > 0 ? (size_t)nt : 0, sizeof(*np));
    int32_t **pp = api_alloc(req, nt > 0 ? (size_t)nt : 0, sizeof(*pp));
    if (nt > 0 && (!names || !np || !pp))
        goto oom;
    for (int32_t j = 0; j < nt; j++) {
        names[j] = r->topics[j].name;
        np[j] = r->topics[j].n_partition_indexes;
        pp[j] = r->topics[j].partition_indexes;
    }
    struct kafka_offset_fetch_response_group g = {0};
    if (fetch_group(b, req, cstr(req, r->group_id), nt, names, np, pp, &g) < 0)
        goto oom;
    if (g.error_code && v < 2) {
        /* no top-level error before v2: each requested partition carries it */
        g.n_topics = nt;
        g.topics = api_alloc(req, nt > 0 ? (size_t)nt : 0, sizeof(*g.topics));
        if (nt > 0 && !g.topics)
            goto oom;
        for (int32_t j = 0; j < nt; j++) {
            g.topics[j].name = names[j];
            g.topics[j].n_partitions = np[j];
            g.topics[j].partitions = api_alloc(req, (size_t)np[j], sizeof(*g.topics[j].partitions));
            if (np[j] > 0 && !g.topics[j].partitions)
                goto oom;
            for (int32_t k = 0; k < np[j]; k++) {
                g.topics[j].partitions[k].partition_index = pp[j][k];
                g.topics[j].partitions[k].committed_offset = -1;
                g.topics[j].partitions[k].committed_leader_epoch = -1;
                g.topics[j].partitions[k].metadata = api_slice("");
                g.topics[j].partitions[k].error_code = g.error_code;
            }
        }
    }
    resp.error_code = v >= 2 ? g.error_code : KERR_NONE;
    resp.n_topics = g.n_topics;
    resp.topics = api_alloc(req, (size_t)g.n_topics, sizeof(*resp.topics));
    if (g.n_topics > 0 && !resp.topics)
        goto oom;
    for (int32_t j = 0; j < g.n_topics; j++) {
        struct kafka_offset_fetch_response_topic *t = &resp.topics[j];
        t->name = g.topics[j].name;
        t->n_partitions = g.topics[j].n_partitions;
        t->partitions = api_alloc(req, (size_t)t->n_partitions, sizeof(*t->partitions));
        if (t->n_partitions > 0 && !t->partitions)
            goto oom;
        for (int32_t k = 0; k < t->n_partitions; k++) {
            const struct kafka_offset_fetch_response_group_partition *s =
                &g.topics[j].partitions[k];
            t->partitions[k].partition_index = s->partition_index;
            t->partitions[k].committed_offset = s->committed_offset;
            t->partitions[k].committed_leader_epoch = s->committed_leader_epoch;
            t->partitions[k].metadata = s->metadata;
            t->partitions[k].error_code = s->error_code;
        }
    }
    kreq_reply(req, &resp, NULL, NULL);
    return;
oom:
    kreq_close(req);
}

/* ---- OffsetDelete -------------------------------------------------------------------- */

struct delete_wait {
    struct write_wait ww;
    struct kafka_offset_delete_response resp;
};

void api_offset_delete_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_offset_delete_request *r = body;
    struct delete_wait *w = api_alloc(req, 1, sizeof(*w));
    if (!w)
        goto oom;
    w->ww.req = req;
    struct kafka_offset_delete_response *resp = &w->resp;
    w->ww.resp = resp;
    kafka_offset_delete_response_init(resp);
    const char *group = cstr(req, r->group_id);
    resp->error_code = gstore_coordinator_check(b->gstore, group);
    bool has_offsets = !resp->error_code && gstore_group_has_offsets(b->gstore, group);
    if (!resp->error_code && !has_offsets && (!b->groups || groups_is_empty(b->groups, group)))
        resp->error_code = KERR_GROUP_ID_NOT_FOUND;
    if (resp->error_code) {
        reply_if_open(req, resp);
        return;
    }
    resp->n_topics = r->n_topics;
    resp->topics = api_alloc(req, (size_t)r->n_topics, sizeof(*resp->topics));
    if (r->n_topics > 0 && !resp->topics)
        goto oom;
    size_t total = 0;
    for (int32_t i = 0; i < r->n_topics; i++)
        total += (size_t)r->topics[i].n_partitions;
    buf_slice *keys = api_alloc(req, total, sizeof(*keys));
    buf_slice *vals = api_alloc(req, total, sizeof(*vals));
    w->ww.waiting = api_alloc(req, total + 1, sizeof(*w->ww.waiting));
    if (total > 0 && (!keys || !vals || !w->ww.waiting))
        goto oom;
    int32_t n = 0;
    for (int32_t i = 0; i < r->n_topics; i++) {
        const struct kafka_offset_delete_request_topic *t = &r->topics[i];
        struct kafka_offset_delete_response_topic *rt = &resp->topics[i];
        const char *topic = cstr(req, t->name);
        rt->name = t->name;
        rt->n_partitions = t->n_partitions;
        rt->partitions = api_alloc(req, (size_t)t->n_partitions, sizeof(*rt->partitions));
        if (t->n_partitions > 0 && !rt->partitions)
            goto oom;
        bool subscribed = b->groups && groups_subscribed_to(b->groups, group, topic);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            int32_t p = t->partitions[j].partition_index;
            int16_t *err = &rt->partitions[j].error_code;
            rt->partitions[j].partition_index = p;
            if (!partition_exists(b, topic, p)) {
                *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (subscribed) {
                *err = KERR_GROUP_SUBSCRIBED_TO_TOPIC;
                continue;
            }
            if (!omap_get(gstore_offsets(b->gstore), group, topic, p))
                continue; /* nothing committed: nothing to delete */
            buf_writer kw;
            buf_writer_init(&kw);
            orec_key_encode(&kw, group, topic, p);
            uint8_t *kb = NULL;
            if (buf_writer_error(&kw) ||
                arena_alloc_array(&req->arena, kw.len, 1, 1, (void **)&kb) != 0) {
                buf_writer_deinit(&kw);
                goto oom;
            }
            memcpy(kb, kw.data, kw.len);
            keys[n] = (buf_slice){.ptr = kb, .len = (int32_t)kw.len};
            vals[n] = (buf_slice){.ptr = NULL, .len = -1};
            buf_writer_deinit(&kw);
            w->ww.waiting[n++] = err;
        }
    }
    write_start(b, group, n, keys, vals, &w->ww);
    return;
oom:
    kreq_close(req);
}
