/* effconfig: the broker configuration in effect, static and dynamic layered.
 *
 * A broker key's value comes, in Kafka's precedence, from this broker's
 * dynamic value, the cluster's dynamic default (both BrokerConfig records in
 * the metadata), the static configuration (properties file or --override), or
 * the key's default. Sources carry Kafka's ConfigSource numbers so
 * DescribeConfigs can report them as they are. Nothing here is cached: the
 * metadata state is the one copy, and every lookup reads it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct config;
struct cstate;

enum effconfig_source {
    EFFCONFIG_DYNAMIC_BROKER = 2,  /* DYNAMIC_BROKER_CONFIG */
    EFFCONFIG_DYNAMIC_DEFAULT = 3, /* DYNAMIC_DEFAULT_BROKER_CONFIG */
    EFFCONFIG_STATIC = 4,          /* STATIC_BROKER_CONFIG */
    EFFCONFIG_DEFAULT = 5,         /* DEFAULT_CONFIG */
};

/* The value of @name at one @level: *ret_present says whether that level has
 * one (a present value may be NULL: a null default or static value). The
 * static and default levels need @name to be declared in @c. Borrowed from @s
 * or @c. */
const char *effconfig_at(const struct cstate *s, const struct config *c, int32_t broker_id,
                         const char *name, enum effconfig_source level, bool *ret_present);

/* The value in effect for @name and where it comes from. */
const char *effconfig_get(const struct cstate *s, const struct config *c, int32_t broker_id,
                          const char *name, enum effconfig_source *ret_source);

/* Whether @s holds any dynamic value for @broker_id or the cluster default. */
bool effconfig_has_dynamic(const struct cstate *s, int32_t broker_id);

/* A copy of @c with every dynamic value for @broker_id layered in (source
 * CONFIG_SOURCE_DYNAMIC). A stored value the registry refuses, or a key it does
 * not declare, is skipped: the coordinator validated it, so this only happens
 * across versions. The caller frees *ret with config_free(). -ENOMEM. */
int effconfig_build(const struct cstate *s, const struct config *c, int32_t broker_id,
                    struct config **ret);
