/* coord_config: weir-coordinator's configuration keys (declared once for
 * common/config, Kafka's names and defaults where Kafka has the key) and their
 * resolution into the settings the coordinator runs with.
 *
 * data.dir has no default: the metadata log is the cluster's only source of
 * truth, so the coordinator refuses to guess where it lives (an unset data.dir is
 * an error naming the key). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/log.h"

extern const struct config_def coord_config_defs[];
extern const size_t coord_config_ndefs;

#define COORD_CONFIG_MAX_LISTENERS 8
#define COORD_CONFIG_HOST_MAX      256

/* One listener: "host:port", "[v6]:port" or "PLAINTEXT://host:port". An empty
 * host means every interface. Port 0 asks the kernel for a free port. */
struct coord_listener {
    char host[COORD_CONFIG_HOST_MAX];
    int port;
};

/* coordinator.quorum.voters: "id@host:port,..." (Kafka's controller.quorum.voters
 * shape). At most COORD_CONFIG_MAX_VOTERS (the Raft core's CRAFT_MAX_VOTERS). */
#define COORD_CONFIG_MAX_VOTERS 7

struct coord_voter {
    int32_t id;
    struct coord_listener addr;
};

struct coord_settings {
    int32_t node_id;
    struct coord_listener listeners[COORD_CONFIG_MAX_LISTENERS];
    size_t n_listeners;
    const char *data_dir; /* borrowed from the config */
    int32_t session_timeout_ms;
    int32_t session_disconnect_timeout_ms; /* grace after the broker's connection closes */
    int64_t session_grace_bytes_per_ms;    /* busy grace rate (session.h); 0: none */
    int32_t heartbeat_interval_ms;
    int32_t num_partitions;
    int32_t default_replication_factor;
    int32_t min_insync_replicas;
    bool unclean_leader_election;
    bool auto_create_topics;
    int32_t offsets_topic_num_partitions;
    int32_t offsets_topic_replication_factor;
    bool auto_leader_rebalance;
    int64_t leader_imbalance_check_interval_ms;
    int32_t leader_imbalance_per_broker_pct; /* leader.imbalance.per.broker.percentage */
    int64_t snapshot_interval_records;
    size_t max_frame_bytes;
    /* Largest metadata record: rpc.max.frame.bytes less room for the watch push
     * that carries it, so every record can be pushed. */
    uint32_t max_record_bytes;
    enum log_level log_level;
    enum log_format log_format;
    /* The quorum, sorted by id; n_voters == 0 when the key is unset: a single
     * coordinator, exactly as before the quorum existed. When set it includes
     * node.id (resolve checks). */
    struct coord_voter voters[COORD_CONFIG_MAX_VOTERS];
    size_t n_voters;
    uint32_t voters_digest; /* coord_config_voters_digest() of the list */
};

/* Parse one listener string. -EINVAL with what was expected in @err. */
int coord_config_parse_listener(const char *value, struct coord_listener *ret, char *err,
                                size_t errlen);

/* Parse a coordinator.quorum.voters value into @ret (sorted by id) and
 * *@ret_n. -EINVAL with what was expected in @err: an item not id@host:port,
 * an id not in [1, 2^31), a repeated id or address, a port 0, more than
 * COORD_CONFIG_MAX_VOTERS voters. An empty value gives 0 voters. */
int coord_config_parse_voters(const char *value, struct coord_voter *ret, size_t *ret_n, char *err,
                              size_t errlen);

/* A fingerprint of a voter list that does not depend on how it was written
 * (order, spacing, PLAINTEXT://). Voters exchange it when they connect, so
 * that a list that disagrees between nodes is refused instead of splitting
 * the quorum. */
uint32_t coord_config_voters_digest(const struct coord_voter *voters, size_t n);

/* Resolve the loaded keys into @ret, checking what no single key can: data.dir is
 * set, heartbeat.interval.ms is below session.timeout.ms, listeners are valid and
 * at most COORD_CONFIG_MAX_LISTENERS, node.id is one of coordinator.quorum.voters
 * and its entry's port is one of its listeners. @c must have been built over
 * coord_config_defs. -EINVAL with a message naming the key in @err. */
int coord_config_resolve(const struct config *c, struct coord_settings *ret, char *err,
                         size_t errlen);
