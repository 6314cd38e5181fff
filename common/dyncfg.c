/* dyncfg: the table of dynamically updatable broker keys and their check. */
#include "common/dyncfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/kerr.h"
#include "common/meta/state.h"

/* Kafka's DynamicLogConfig and DynamicReplicationConfig keys that Weir has.
 * The replication throttle rates are Kafka's DynamicReplicationConfig too;
 * they are no topic key's default (broker/replica/repl.c reads them).
 * Not here although Weir has them: log.retention.check.interval.ms and the
 * flush scheduler and checkpoint intervals (static in Kafka too), and
 * message.max.bytes (Weir reads it once, at start-up). */
const struct dyncfg_key dyncfg_keys[] = {
    {"broker.decommissioned", NULL, false, true},
    {"follower.replication.throttled.rate", NULL},
    {"leader.replication.throttled.rate", NULL},
    {"log.flush.interval.messages", "flush.messages"},
    {"log.flush.interval.ms", "flush.ms"},
    {"log.index.interval.bytes", "index.interval.bytes"},
    {"log.index.size.max.bytes", "segment.index.bytes"},
    {"log.retention.bytes", "retention.bytes"},
    {"log.retention.hours", "retention.ms"},
    {"log.retention.minutes", "retention.ms"},
    {"log.retention.ms", "retention.ms"},
    {"log.roll.hours", "segment.ms"},
    {"log.roll.jitter.ms", "segment.jitter.ms"},
    {"log.roll.ms", "segment.ms"},
    {"log.segment.bytes", "segment.bytes"},
    {"log.segment.delete.delay.ms", "file.delete.delay.ms"},
    {"min.insync.replicas", "min.insync.replicas"},
    {"unclean.leader.election.enable", "unclean.leader.election.enable", true},
};
const size_t dyncfg_nkeys = sizeof(dyncfg_keys) / sizeof(dyncfg_keys[0]);

static const struct config_def rate_defs[] = {DYNCFG_FOLLOWER_THROTTLE_DEF,
                                              DYNCFG_LEADER_THROTTLE_DEF};

const struct config_def *dyncfg_rate_def(const char *name)
{
    for (size_t i = 0; name && i < sizeof(rate_defs) / sizeof(rate_defs[0]); i++)
        if (!strcmp(rate_defs[i].name, name))
            return &rate_defs[i];
    return NULL;
}

static int dyncfg_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct dyncfg_key *)elem)->name);
}

const struct dyncfg_key *dyncfg_find(const char *name)
{
    if (!name)
        return NULL;
    return bsearch(name, dyncfg_keys, dyncfg_nkeys, sizeof(dyncfg_keys[0]), dyncfg_cmp);
}

int16_t dyncfg_validate(const char *name, const struct config_def *def, const char *value,
                        char *msg, size_t msglen)
{
    if (msglen)
        msg[0] = 0;
    if (!name || !*name) {
        snprintf(msg, msglen, "empty broker config name");
        return KERR_INVALID_CONFIG;
    }
    if (!dyncfg_find(name)) {
        if (def)
            snprintf(msg, msglen,
                     "broker config '%.128s' cannot be changed dynamically (set it in the "
                     "broker's properties and restart)",
                     name);
        else
            snprintf(msg, msglen, "unknown broker config '%.128s'", name);
        return KERR_INVALID_CONFIG;
    }
    if (!def) {
        snprintf(msg, msglen, "broker config '%.128s' has no definition here", name);
        return KERR_INVALID_CONFIG;
    }
    if (!value)
        value = "";
    if (strlen(value) > CSTATE_MAX_CONFIG_VALUE) {
        snprintf(msg, msglen, "value of broker config '%.128s' is longer than %d bytes", name,
                 CSTATE_MAX_CONFIG_VALUE);
        return KERR_INVALID_CONFIG;
    }
    if (config_check_value(def, value, msg, msglen) < 0)
        return KERR_INVALID_CONFIG;
    return KERR_NONE;
}
