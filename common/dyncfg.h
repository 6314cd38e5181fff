/* dyncfg: the broker keys that may change at run time, per broker or as a
 * cluster-wide default (AlterConfigs on a BROKER resource).
 *
 * These are the keys Kafka lets an operator update dynamically that Weir has
 * and honours without a restart: the log defaults that a topic without an
 * override inherits, min.insync.replicas, unclean.leader.election.enable and
 * the replication throttle rates; plus Weir's broker.decommissioned (per
 * broker, read by the coordinator's placement; `weir cluster decommission`
 * sets it).
 * Any other broker key (broker.id, log.dirs, listeners, ...) is static: it is
 * refused with INVALID_CONFIG. The table says which topic key each one is the
 * default of, so the broker can fold the dynamic values into the per-log
 * settings and DescribeConfigs can report synonyms.
 *
 * Values are checked with the static registry's definition of the key
 * (common/config), so a dynamic value obeys the same type and bounds as the
 * same key in server.properties. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_def;

struct dyncfg_key {
    const char *name;      /* the broker key */
    const char *topic_key; /* the topic key it is the default of, or NULL */
    /* Only a cluster-wide value means something: the coordinator, not a
     * broker, acts on it (unclean.leader.election.enable: elections). */
    bool cluster_only;
    /* Only a per-broker value means something: the coordinator acts on it for
     * that broker (broker.decommissioned: placement skips it). */
    bool broker_only;
};

/* The replication throttle rates (bytes/s), broker keys only the broker's
 * replication reads: one definition for the broker's registry
 * (broker/broker_config.c) and the coordinator's check of dynamic values
 * (dyncfg_rate_def()). Expanding them needs common/config.h. */
#define DYNCFG_THROTTLE_RATE_DEF(key, what)                                                        \
    {                                                                                              \
        .name = key, .type = CONFIG_INT, .default_value = "9223372036854775807", .min = 1,         \
        .max = INT64_MAX,                                                                          \
        .doc = "bytes/s " what ", counted over 11 one-second samples (no limit by default; "       \
               "docs/reassignment.md)"                                                             \
    }
#define DYNCFG_LEADER_THROTTLE_DEF                                                                 \
    DYNCFG_THROTTLE_RATE_DEF("leader.replication.throttled.rate",                                  \
                             "this broker sends as a leader to followers outside the ISR of "      \
                             "the replicas in leader.replication.throttled.replicas")
#define DYNCFG_FOLLOWER_THROTTLE_DEF                                                               \
    DYNCFG_THROTTLE_RATE_DEF("follower.replication.throttled.rate",                                \
                             "this broker fetches as a follower outside the ISR for the "          \
                             "replicas in follower.replication.throttled.replicas")

/* One of those two definitions by name, or NULL: for programs without the
 * broker's registry (the coordinator). */
const struct config_def *dyncfg_rate_def(const char *name);

extern const struct dyncfg_key dyncfg_keys[]; /* sorted by name */
extern const size_t dyncfg_nkeys;

/* The dynamic key @name, or NULL when it cannot change at run time. */
const struct dyncfg_key *dyncfg_find(const char *name);

/* Check a dynamic value: @name must be in the table and @value must pass
 * @def, the static registry's definition of @name (NULL when the program has
 * no such key). Returns KERR_NONE or KERR_INVALID_CONFIG with a message that
 * names the key in @msg (always written). */
int16_t dyncfg_validate(const char *name, const struct config_def *def, const char *value,
                        char *msg, size_t msglen);
