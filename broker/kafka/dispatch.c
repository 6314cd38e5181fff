/* dispatch: the API table and request routing. */
#include "broker/kafka/dispatch.h"

#include <errno.h>
#include <string.h>

#include "broker/kafka/kafka_codec.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/kstats.h"
#include "broker/kafka/server.h"
#include "broker/replica/repl.h"
#include "common/arena.h"
#include "common/log.h"
#include "common/purgatory.h"

const struct dispatch_entry dispatch_table[] = {
    {KAFKA_API_PRODUCE, 0, 8, api_produce_handle},
    {KAFKA_API_FETCH, 4, 12, api_fetch_handle},
    {KAFKA_API_LIST_OFFSETS, 0, 5, api_list_offsets_handle},
    {KAFKA_API_METADATA, 0, 9, api_metadata_handle},
    {KAFKA_API_API_VERSIONS, 0, 3, api_versions_handle},
    {KAFKA_API_CREATE_TOPICS, 0, 7, api_create_topics_handle},
    {KAFKA_API_DELETE_TOPICS, 0, 6, api_delete_topics_handle},
    {KAFKA_API_DELETE_RECORDS, 0, 2, api_delete_records_handle},
    {KAFKA_API_CREATE_PARTITIONS, 0, 1, api_create_partitions_handle},
    {KAFKA_API_DESCRIBE_CONFIGS, 0, 2, api_describe_configs_handle},
    {KAFKA_API_ALTER_CONFIGS, 0, 2, api_alter_configs_handle},
    {KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 0, 1, api_incremental_alter_configs_handle},
    {KAFKA_API_DESCRIBE_CLUSTER, 0, 1, api_describe_cluster_handle},
    {KAFKA_API_DESCRIBE_LOG_DIRS, 0, 4, api_describe_log_dirs_handle},
    {KAFKA_API_OFFSET_FOR_LEADER_EPOCH, 0, 4, api_offset_for_leader_epoch_handle},
    {KAFKA_API_INIT_PRODUCER_ID, 0, 4, api_init_producer_id_handle},
    {KAFKA_API_FIND_COORDINATOR, 0, 4, api_find_coordinator_handle},
    {KAFKA_API_OFFSET_COMMIT, 0, 8, api_offset_commit_handle},
    {KAFKA_API_OFFSET_FETCH, 0, 8, api_offset_fetch_handle},
    {KAFKA_API_OFFSET_DELETE, 0, 0, api_offset_delete_handle},
    {KAFKA_API_JOIN_GROUP, 0, 6, api_join_group_handle},
    {KAFKA_API_SYNC_GROUP, 0, 4, api_sync_group_handle},
    {KAFKA_API_HEARTBEAT, 0, 4, api_heartbeat_handle},
    {KAFKA_API_LEAVE_GROUP, 0, 4, api_leave_group_handle},
    {KAFKA_API_LIST_GROUPS, 0, 4, api_list_groups_handle},
    {KAFKA_API_DESCRIBE_GROUPS, 0, 5, api_describe_groups_handle},
    {KAFKA_API_DELETE_GROUPS, 0, 2, api_delete_groups_handle},
    {KAFKA_API_ELECT_LEADERS, 0, 2, api_elect_leaders_handle},
    {KAFKA_API_ALTER_PARTITION_REASSIGNMENTS, 0, 0, api_alter_partition_reassignments_handle},
    {KAFKA_API_LIST_PARTITION_REASSIGNMENTS, 0, 0, api_list_partition_reassignments_handle},
};
const size_t dispatch_table_len = sizeof(dispatch_table) / sizeof(dispatch_table[0]);

const struct dispatch_entry *dispatch_find(int16_t api_key)
{
    for (size_t i = 0; i < dispatch_table_len; i++)
        if (dispatch_table[i].api_key == api_key)
            return &dispatch_table[i];
    return NULL;
}

void dispatch_conn_closed(void *ud, struct kconn *conn)
{
    struct broker_ctx *b = ud;
    size_t n = 0;
    /* Either may be gone already when the server closes its connections at
     * shutdown (main frees them first, answering what waited). */
    if (b->fetches)
        n += purg_cancel_owner(b->fetches, conn);
    if (b->repl)
        n += repl_cancel_owner(b->repl, conn);
    if (n)
        log_debug("kafka", "connection from %s closed: %zu waits cancelled", kconn_peer(conn), n);
}

void dispatch_request(void *ud, struct kreq *req)
{
    struct broker_ctx *b = ud;
    int16_t key = req->hdr.api_key, ver = req->hdr.api_version;
    const struct dispatch_entry *e = dispatch_find(key);
    const struct kafka_api_info *api = kafka_api_lookup(key);
    bool known = e && api && ver >= e->min_version && ver <= e->max_version &&
                 kafka_api_has_version(api, ver);
    if (key == KAFKA_API_API_VERSIONS && !known) {
        if (b->kstats)
            kstats_request(b->kstats, key, ver); /* answered, so counted */
        api_versions_unsupported(req);
        return;
    }
    if (!known) {
        if (b->kstats)
            kstats_rejected(b->kstats);
        log_warn("kafka", "closing connection from %s: unsupported api %d version %d",
                 kreq_peer(req), key, ver);
        kreq_close(req);
        return;
    }
    void *body = arena_zalloc(&req->arena, api->request_size, 8);
    if (!body) {
        kreq_close(req);
        return;
    }
    int r = kafka_request_decode(&req->body, key, ver, &req->arena, body);
    if (b->kstats) {
        if (r < 0)
            kstats_rejected(b->kstats);
        else
            kstats_request(b->kstats, key, ver);
    }
    if (r < 0) {
        log_warn("kafka", "closing connection from %s: %s v%d request does not decode: %s",
                 kreq_peer(req), api->name, ver, strerror(-r));
        kreq_close(req);
        return;
    }
    e->fn(b, req, body);
}

void dispatch_reply_observed(void *ud, const struct kreq *req, const void *msg)
{
    struct broker_ctx *b = ud;
    if (b->kstats)
        kstats_response(b->kstats, req->hdr.api_key, req->reply_version, msg);
}

void dispatch_request_done(void *ud, const struct kreq *req, int64_t elapsed_us)
{
    struct broker_ctx *b = ud;
    /* A request that closes its connection has no answer to time. */
    if (b->kstats && !req->close_after)
        kstats_done(b->kstats, req->hdr.api_key, elapsed_us);
}

char *api_str(struct kreq *req, buf_slice s)
{
    if (s.len < 0)
        return NULL;
    return arena_strndup(&req->arena, (const char *)(s.ptr ? s.ptr : (const uint8_t *)""),
                         (size_t)s.len);
}

buf_slice api_slice(const char *s)
{
    buf_slice sl;
    sl.ptr = (const uint8_t *)s;
    sl.len = s ? (int32_t)strlen(s) : -1;
    return sl;
}

void *api_alloc(struct kreq *req, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    void *p;
    if (arena_alloc_array(&req->arena, n, size, 8, &p) != 0)
        return NULL;
    memset(p, 0, n * size);
    return p;
}

/* Kafka's AclOperation codes for the CLUSTER resource, each with an API of the
 * table whose serving needs it. Without an authorizer every client may do
 * everything the broker serves, so the cluster's authorized operations are the
 * ones at least one served API exercises (Kafka answers all the resource's
 * operations; answering what is served keeps a tool from offering what would
 * close the connection). ALTER (7) and CLUSTER_ACTION (9) join when an API
 * that needs them (reassignment, ElectLeaders) is served. */
static const struct {
    int op;
    int16_t api_keys[3]; /* any of these served grants the op; -1 ends */
} cluster_ops[] = {
    {5 /* CREATE */, {KAFKA_API_CREATE_TOPICS, -1, -1}},
    {8 /* DESCRIBE */, {KAFKA_API_DESCRIBE_CLUSTER, KAFKA_API_LIST_GROUPS, -1}},
    {10 /* DESCRIBE_CONFIGS */, {KAFKA_API_DESCRIBE_CONFIGS, -1, -1}},
    {11 /* ALTER_CONFIGS */, {KAFKA_API_ALTER_CONFIGS, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, -1}},
    {12 /* IDEMPOTENT_WRITE */, {KAFKA_API_INIT_PRODUCER_ID, -1, -1}},
};

int32_t dispatch_cluster_authorized_ops(void)
{
    int32_t ops = 0;
    for (size_t i = 0; i < sizeof(cluster_ops) / sizeof(cluster_ops[0]); i++)
        for (size_t k = 0; k < 3 && cluster_ops[i].api_keys[k] >= 0; k++)
            if (dispatch_find(cluster_ops[i].api_keys[k]))
                ops |= (int32_t)1 << cluster_ops[i].op;
    return ops;
}
