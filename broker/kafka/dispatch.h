/* dispatch: the table of Kafka APIs this broker serves — API key, advertised
 * version range, handler — and the routing of each request to its handler.
 *
 * ApiVersions answers are generated from the same table, so every broker
 * advertises exactly what it implements. Versions follow the advertisement of
 * ../shared/reference/kafka-clients.md §2; Produce v0-2 are advertised (for
 * librdkafka's compression gates) but refused by closing the connection.
 *
 * A request for an API or version outside the table closes the connection, as
 * Kafka does, except ApiVersions, which gets UNSUPPORTED_VERSION in a v0 body.
 * A body that does not decode also closes the connection. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct event_base;
struct broker_settings;
struct logmgr;
struct coordclient;
struct replicas;
struct repl;
struct kreq;
struct kconn;
struct purg;
struct plog;
struct metrics;
struct config;
struct pstates;
struct pidalloc;
struct groups;
struct gstore;
struct event;

/* What every handler may use. Borrowed pointers, owned by main. */
struct broker_ctx {
    struct event_base *base;
    const struct broker_settings *s;
    struct logmgr *lm;
    struct coordclient *cc;
    struct replicas *reps;
    struct repl *repl;        /* replication: HW, acks=all, leader epochs */
    struct purg *fetches;     /* api_fetch's parked requests, keyed by log */
    const struct config *cfg; /* the broker's configuration registry (DescribeConfigs) */
    struct pstates *pstates;  /* idempotent producers' state per led log */
    struct pidalloc *pids;    /* InitProducerId's block of producer ids */
    struct groups *groups;    /* consumer-group membership (broker/group/groups.h) */
    struct event *group_timer; /* groups_tick() at the groups' next deadline */
    struct gstore *gstore;     /* __consumer_offsets: coordination, offsets (broker/group/gstore.h) */
    struct metrics *metrics;   /* /metrics collectors register here (common/metrics.h) */
    struct kstats *kstats;     /* request metrics (broker/kafka/kstats.h); may be NULL */
};

/* A handler completes @req (kreq_reply / kreq_no_reply / kreq_close) now or
 * later. @body is the decoded request struct, in @req's arena. */
typedef void (*dispatch_handler_fn)(struct broker_ctx *b, struct kreq *req, void *body);

struct dispatch_entry {
    int16_t api_key;
    int16_t min_version; /* advertised */
    int16_t max_version;
    dispatch_handler_fn fn;
};

extern const struct dispatch_entry dispatch_table[];
extern const size_t dispatch_table_len;

const struct dispatch_entry *dispatch_find(int16_t api_key);

/* kserver_request_fn: @ud is the struct broker_ctx. */
void dispatch_request(void *ud, struct kreq *req);
/* kserver_close_fn: the requests of @conn still waiting in a purgatory (parked
 * fetches, acks=all produces) are cancelled, so they free their memory now
 * rather than at their timeout. */
void dispatch_conn_closed(void *ud, struct kconn *conn);
/* kserver_reply_fn / kserver_done_fn: count errors and latency in b->kstats. */
void dispatch_reply_observed(void *ud, const struct kreq *req, const void *msg);
void dispatch_request_done(void *ud, const struct kreq *req, int64_t elapsed_us);

/* ---- handlers (broker/kafka/api_*.c) ------------------------------------------- */

void api_versions_handle(struct broker_ctx *b, struct kreq *req, void *body);
/* The UNSUPPORTED_VERSION answer for an ApiVersions version we do not know. */
void api_versions_unsupported(struct kreq *req);
void api_metadata_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_produce_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_fetch_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_list_offsets_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_offset_for_leader_epoch_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_create_topics_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_delete_topics_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_create_partitions_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_delete_records_handle(struct broker_ctx *b, struct kreq *req, void *body);
/* api_init_producer_id.c: InitProducerId and the broker's producer id block. */
void api_init_producer_id_handle(struct broker_ctx *b, struct kreq *req, void *body);
/* Borrows @b (must outlive it). -ENOMEM. */
int pidalloc_new(struct broker_ctx *b, struct pidalloc **ret);
/* Answer queued requests (COORDINATOR_NOT_AVAILABLE) and refuse later ones;
 * call before the Kafka server is freed. */
void pidalloc_shutdown(struct pidalloc *p);
/* After coordclient_free() (its pending calls still point here). NULL-safe. */
void pidalloc_free(struct pidalloc *p);
/* api_group.c: the group membership APIs and the broker's groups. */
void api_join_group_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_sync_group_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_heartbeat_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_leave_group_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_list_groups_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_describe_groups_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_delete_groups_handle(struct broker_ctx *b, struct kreq *req, void *body);
/* b->groups over @gs (borrowed, must outlive it) with the broker's group.*
 * settings, ticking on b->base. -ENOMEM. */
int api_groups_start(struct broker_ctx *b, struct gstore *gs);
/* Answers parked group requests and frees b->groups. NULL-safe. */
void api_groups_stop(struct broker_ctx *b);
/* api_offsets.c: FindCoordinator, OffsetCommit, OffsetFetch, OffsetDelete over b->gstore. */
void api_find_coordinator_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_offset_commit_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_offset_fetch_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_offset_delete_handle(struct broker_ctx *b, struct kreq *req, void *body);
/* api_configs.c */
void api_describe_configs_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_alter_configs_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_incremental_alter_configs_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_describe_cluster_handle(struct broker_ctx *b, struct kreq *req, void *body);
/* api_describe_log_dirs.c: the partitions and sizes of each log dir. */
void api_describe_log_dirs_handle(struct broker_ctx *b, struct kreq *req, void *body);
/* api_reassign.c, api_elect.c: partition reassignment and elections on
 * request, forwarded to the coordinator. */
void api_alter_partition_reassignments_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_list_partition_reassignments_handle(struct broker_ctx *b, struct kreq *req, void *body);
void api_elect_leaders_handle(struct broker_ctx *b, struct kreq *req, void *body);

/* Parked fetches (long poll) wait in b->fetches (a purgatory named "fetch";
 * purg_free answers each with the logs as they are). A log's consumer-visible
 * data grew (repl_visible_fn; @ud is the struct broker_ctx): re-check the
 * fetches parked on that log. */
void api_fetch_on_append(void *ud, struct plog *log);

/* Shared helpers for handlers. */
/* A NUL-terminated copy of @s in @req's arena; NULL for a null string or on
 * arena exhaustion. */
char *api_str(struct kreq *req, buf_slice s);
/* Slice over a C string (NULL gives a null slice). */
buf_slice api_slice(const char *s);
/* Array of @n zeroed elements from the request's arena (NULL when n == 0). */
void *api_alloc(struct kreq *req, size_t n, size_t size);

/* The cluster's authorized operations for DescribeCluster / Metadata: a bit
 * per Kafka AclOperation code that some API in the table exercises. */
int32_t dispatch_cluster_authorized_ops(void);
