/* broker_config: the broker's configuration keys (Kafka's names) and their
 * resolution into the settings the rest of the broker reads.
 *
 * The storage keys (log.dirs, log.segment.bytes, ...) come from
 * broker/storage/storage_config.h and are combined with the keys declared here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/coordaddr.h"
#include "common/config.h"

#define BROKER_HOST_MAX 256

struct broker_endpoint {
    char listener[32]; /* "PLAINTEXT" */
    char host[BROKER_HOST_MAX];
    int port;
};

struct broker_settings {
    int32_t broker_id;
    struct broker_endpoint listen;     /* listeners */
    struct broker_endpoint advertised; /* advertised.listeners, else listeners */
    struct coordaddr coord;            /* coordinator.connect: the list */
    char coord_host[BROKER_HOST_MAX];  /* its first entry */
    int coord_port;
    const char *replication_listener; /* replication.listener as given; NULL: default */
    char repl_host[BROKER_HOST_MAX];   /* parsed; "" = the advertised host */
    int repl_port;                     /* 0 = a free port */
    int32_t min_insync_replicas;       /* broker default; topic override wins */
    int64_t replica_lag_time_max_ms;
    int32_t replica_fetch_max_bytes;
    int32_t replica_fetch_response_max_bytes;
    int32_t replica_fetch_wait_max_ms;
    int32_t replica_fetch_backoff_ms;
    /* static values of the replication throttles (bytes/s; INT64_MAX: none);
     * dynamic ones live in the metadata (repl.c reads both) */
    int64_t leader_replication_throttled_rate;
    int64_t follower_replication_throttled_rate;
    const char *rack;                 /* broker.rack; NULL: none */
    int64_t socket_request_max_bytes;
    int32_t message_max_bytes;
    bool auto_create_topics;
    int32_t num_partitions;
    int32_t default_replication_factor;
    int64_t connections_max_idle_ms;
    int32_t queued_max_requests; /* per-connection requests in flight */
    int32_t admin_timeout_ms;    /* waiting for the coordinator on admin requests */
    int64_t producer_id_expiration_ms; /* idle producers' state is dropped after this */
    int32_t group_initial_rebalance_delay_ms; /* consumer groups (broker/group/groups.h) */
    int32_t group_min_session_timeout_ms;
    int32_t group_max_session_timeout_ms;
    int32_t group_max_size;
    int32_t offsets_topic_num_partitions; /* __consumer_offsets (broker/group/gstore.h) */
    int16_t offsets_topic_replication_factor;
    int64_t offsets_retention_ms;
    int64_t offsets_retention_check_interval_ms;
    int32_t offset_metadata_max_bytes;
    int32_t offsets_commit_timeout_ms;
    int32_t offsets_load_buffer_size;
};

/* The broker's own keys, without the storage ones. */
extern const struct config_def broker_config_defs[];
extern const size_t broker_config_ndefs;

/* Build a registry over the broker keys plus the storage keys. Free *ret_defs
 * with free() after config_free(*ret). -ENOMEM. */
int broker_config_new(struct config **ret, struct config_def **ret_defs);

/* Parse "PLAINTEXT://host:port" (or "host:port"); an empty host means all
 * interfaces for a listener. -EINVAL. */
int broker_config_parse_endpoint(const char *s, struct broker_endpoint *ret);

/* Resolve the loaded keys; the strings stay borrowed from @c. -EINVAL with a
 * message in @err for inconsistent values. zookeeper.connect is accepted as an
 * alias of coordinator.connect, with a warning. */
int broker_settings_resolve(const struct config *c, struct broker_settings *ret, char *err,
                            size_t errlen);
