/* topic_config: the one table of topic-level configuration keys Weir accepts.
 *
 * Each key has its type and bounds, Kafka's default, the broker key that supplies
 * the default (Kafka's "synonym"), what Weir does with it and a one-line doc. The
 * coordinator validates CreateTopics / AlterTopicConfigs against it, the broker
 * answers DescribeConfigs from it and parses overrides with it, and
 * docs/configuration.md is generated from it.
 *
 * Every key here takes effect; the compaction keys are read by the log cleaner on
 * topics whose cleanup.policy includes 'compact' (and, exactly as in Kafka, by
 * nothing on a cleanup.policy=delete topic). Values Weir cannot honour
 * (preallocate=true) are refused with INVALID_CONFIG and a message saying why;
 * keys not in the table are refused as unknown. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum topic_config_type {
    TOPIC_CONFIG_BOOL,
    TOPIC_CONFIG_INT,    /* int32 in [min, max] */
    TOPIC_CONFIG_LONG,   /* int64 in [min, max] */
    TOPIC_CONFIG_RATIO,  /* double in [0, 1] */
    TOPIC_CONFIG_STRING, /* one of choices[] */
    TOPIC_CONFIG_LIST,   /* comma-separated items, each one of choices[] */
    /* Kafka's throttled replica list: empty, '*', or comma-separated
     * partition:broker pairs (non-negative integers) */
    TOPIC_CONFIG_REPLICAS,
};

struct topic_config_def {
    const char *name;
    enum topic_config_type type;
    const char *kafka_default;  /* Kafka's default, as DescribeConfigs shows it */
    int64_t min, max;           /* INT and LONG */
    const char *const *choices; /* STRING and LIST: values Kafka knows */
    /* STRING and LIST: NULL-terminated values Kafka knows but Weir refuses, with
     * the reason; NULL when every choice is honoured. */
    const char *const *refused;
    const char *refused_why;
    /* the broker key that supplies the default; NULL when none does (Kafka's
     * throttled replica lists) */
    const char *broker_key;
    const char *doc;        /* what it does in Weir */
};

extern const struct topic_config_def topic_config_defs[]; /* sorted by name */
extern const size_t topic_config_ndefs;

/* The definition of @name, or NULL. */
const struct topic_config_def *topic_config_find(const char *name);

/* Check one key and value. Returns 0 (KERR_NONE) or KERR_INVALID_CONFIG with a
 * message naming the key in @msg (always written). */
int16_t topic_config_validate(const char *name, const char *value, char *msg, size_t msglen);

/* Parsers for values that passed topic_config_validate(); they return false on
 * anything else, leaving *ret alone. */
bool topic_config_parse_long(const char *value, int64_t *ret);
bool topic_config_parse_bool(const char *value, bool *ret);

/* Whether a throttled replica list (TOPIC_CONFIG_REPLICAS, validated) names
 * replica @broker of @partition: '*' names every replica, NULL or "" none. */
bool topic_config_replica_listed(const char *value, int32_t partition, int32_t broker);

/* The same for every partition of a topic at once (one pass over @value):
 * @ret_listed[p] (of @n_parts) says whether replica @broker of partition p is
 * named. For a list that does not parse, none is. */
void topic_config_replicas_of_broker(const char *value, int32_t broker, bool *ret_listed,
                                     size_t n_parts);
