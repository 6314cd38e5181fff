/* topic_config: the table of topic-level keys and their validation. */
#include "common/topic_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kerr.h"

#define I64_MAX_STR "9223372036854775807"

static const char *const policy_choices[] = {"delete", "compact", NULL};
static const char *const compression_choices[] = {"producer", "uncompressed", "gzip", "snappy",
                                                  "lz4",      "zstd",         NULL};
static const char *const timestamp_choices[] = {"CreateTime", "LogAppendTime", NULL};
static const char *const bool_choices[] = {"true", "false", NULL};
static const char *const preallocate_refused[] = {"true", NULL};

/* clang-format off */
const struct topic_config_def topic_config_defs[] = {
    {.name = "cleanup.policy", .type = TOPIC_CONFIG_LIST, .kafka_default = "delete",
     .choices = policy_choices,
     .broker_key = "log.cleanup.policy",
     .doc = "How old segments are retired: 'delete' (by retention.ms / retention.bytes), 'compact' (the log cleaner keeps the latest record per key, see docs/compaction.md), or both ('compact,delete')."},
    {.name = "compression.type", .type = TOPIC_CONFIG_STRING, .kafka_default = "producer",
     .choices = compression_choices,
     .broker_key = "compression.type",
     .doc = "Codec of the stored batches: 'producer' keeps each batch as the producer compressed it; 'uncompressed', 'gzip', 'snappy', 'lz4' or 'zstd' make the leader recompress batches of any other codec before appending (docs/compression.md)."},
    {.name = "delete.retention.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = "86400000",
     .min = 0, .max = INT64_MAX, .broker_key = "log.cleaner.delete.retention.ms",
     .doc = "Compaction: how long delete markers are kept. Stored; read by compaction, which is not implemented yet (no effect with cleanup.policy=delete, as in Kafka)."},
    {.name = "file.delete.delay.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = "60000",
     .min = 0, .max = INT64_MAX, .broker_key = "log.segment.delete.delay.ms",
     .doc = "Time a retired segment stays on disk (renamed *.deleted) before its files are unlinked."},
    {.name = "flush.messages", .type = TOPIC_CONFIG_LONG, .kafka_default = I64_MAX_STR,
     .min = 1, .max = INT64_MAX, .broker_key = "log.flush.interval.messages",
     .doc = "Messages appended to a partition before its log is fsynced."},
    {.name = "flush.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = I64_MAX_STR,
     .min = 0, .max = INT64_MAX, .broker_key = "log.flush.interval.ms",
     .doc = "Maximum time an appended message waits before the log is fsynced (checked every log.flush.scheduler.interval.ms)."},
    {.name = "follower.replication.throttled.replicas", .type = TOPIC_CONFIG_REPLICAS,
     .kafka_default = "",
     .doc = "Replicas whose catch-up on the follower (the broker named) counts against and is limited by that broker's follower.replication.throttled.rate: 'partition:broker,...', or '*' for every replica. Only replicas outside the ISR are throttled (docs/reassignment.md)."},
    {.name = "index.interval.bytes", .type = TOPIC_CONFIG_INT, .kafka_default = "4096",
     .min = 0, .max = INT32_MAX, .broker_key = "log.index.interval.bytes",
     .doc = "Bytes of log between two entries of the offset index."},
    {.name = "leader.replication.throttled.replicas", .type = TOPIC_CONFIG_REPLICAS,
     .kafka_default = "",
     .doc = "Replicas whose leader (the broker named) limits what it sends followers outside the ISR to its leader.replication.throttled.rate: 'partition:broker,...', or '*' for every replica (docs/reassignment.md)."},
    {.name = "max.compaction.lag.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = I64_MAX_STR,
     .min = 1, .max = INT64_MAX, .broker_key = "log.cleaner.max.compaction.lag.ms",
     .doc = "Compaction: longest time a record stays uncompacted. Stored; read by compaction, which is not implemented yet (no effect with cleanup.policy=delete, as in Kafka)."},
    {.name = "max.message.bytes", .type = TOPIC_CONFIG_INT, .kafka_default = "1048588",
     .min = 0, .max = INT32_MAX, .broker_key = "message.max.bytes",
     .doc = "Largest record batch a producer may append; a larger one is refused with MESSAGE_TOO_LARGE."},
    {.name = "message.timestamp.difference.max.ms", .type = TOPIC_CONFIG_LONG,
     .kafka_default = I64_MAX_STR, .min = 0, .max = INT64_MAX,
     .broker_key = "log.message.timestamp.difference.max.ms",
     .doc = "With CreateTime, a batch holding a timestamp further than this from the broker's clock is refused with INVALID_TIMESTAMP."},
    {.name = "message.timestamp.type", .type = TOPIC_CONFIG_STRING,
     .kafka_default = "CreateTime", .choices = timestamp_choices,
     .broker_key = "log.message.timestamp.type",
     .doc = "CreateTime keeps the producer's timestamps; LogAppendTime stamps every batch with the leader's clock on append (and fetch returns that)."},
    {.name = "min.cleanable.dirty.ratio", .type = TOPIC_CONFIG_RATIO, .kafka_default = "0.5",
     .broker_key = "log.cleaner.min.cleanable.ratio",
     .doc = "Compaction: dirty ratio that makes a log eligible. Stored; read by compaction, which is not implemented yet (no effect with cleanup.policy=delete, as in Kafka)."},
    {.name = "min.compaction.lag.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = "0",
     .min = 0, .max = INT64_MAX, .broker_key = "log.cleaner.min.compaction.lag.ms",
     .doc = "Compaction: shortest time a record stays uncompacted. Stored; read by compaction, which is not implemented yet (no effect with cleanup.policy=delete, as in Kafka)."},
    {.name = "min.insync.replicas", .type = TOPIC_CONFIG_INT, .kafka_default = "1",
     .min = 1, .max = INT32_MAX, .broker_key = "min.insync.replicas",
     .doc = "Fewest in-sync replicas for an acks=all produce to succeed (NOT_ENOUGH_REPLICAS below) and for the high watermark to advance."},
    {.name = "preallocate", .type = TOPIC_CONFIG_BOOL, .kafka_default = "false",
     .choices = bool_choices, .refused = preallocate_refused,
     .refused_why = "Weir does not preallocate segment files",
     .broker_key = "log.preallocate",
     .doc = "Only 'false' is accepted: Weir does not preallocate segment files."},
    {.name = "retention.bytes", .type = TOPIC_CONFIG_LONG, .kafka_default = "-1",
     .min = -1, .max = INT64_MAX, .broker_key = "log.retention.bytes",
     .doc = "Largest size of a partition's log before its oldest segments are deleted; -1 is unlimited."},
    {.name = "retention.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = "604800000",
     .min = -1, .max = INT64_MAX, .broker_key = "log.retention.ms",
     .doc = "Time a segment is kept after its newest record's timestamp; -1 keeps segments forever."},
    {.name = "segment.bytes", .type = TOPIC_CONFIG_INT, .kafka_default = "1073741824",
     .min = 14, .max = INT32_MAX, .broker_key = "log.segment.bytes",
     .doc = "Size at which the active segment is rolled."},
    {.name = "segment.index.bytes", .type = TOPIC_CONFIG_INT, .kafka_default = "10485760",
     .min = 4, .max = INT32_MAX, .broker_key = "log.index.size.max.bytes",
     .doc = "Largest offset index of a segment; the segment rolls when its index is full."},
    {.name = "segment.jitter.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = "0",
     .min = 0, .max = INT64_MAX, .broker_key = "log.roll.jitter.ms",
     .doc = "Largest random amount taken off segment.ms per segment, so that partitions do not all roll at once."},
    {.name = "segment.ms", .type = TOPIC_CONFIG_LONG, .kafka_default = "604800000",
     .min = 1, .max = INT64_MAX, .broker_key = "log.roll.ms",
     .doc = "Age at which the active segment is rolled even if not full."},
    {.name = "unclean.leader.election.enable", .type = TOPIC_CONFIG_BOOL,
     .kafka_default = "false", .choices = bool_choices,
     .broker_key = "unclean.leader.election.enable",
     .doc = "Whether the coordinator may elect a leader outside the ISR when no in-sync replica is alive (data may be lost)."},
};
/* clang-format on */

const size_t topic_config_ndefs = sizeof(topic_config_defs) / sizeof(topic_config_defs[0]);

const struct topic_config_def *topic_config_find(const char *name)
{
    size_t lo = 0, hi = topic_config_ndefs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(topic_config_defs[mid].name, name);
        if (c == 0)
            return &topic_config_defs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Strict decimal: optional '-', digits, nothing else. */
bool topic_config_parse_long(const char *v, int64_t *ret)
{
    if (!v)
        return false;
    const char *p = v;
    bool neg = *p == '-';
    p += neg;
    if (!*p)
        return false;
    uint64_t acc = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    if (neg ? acc > (uint64_t)INT64_MAX + 1 : acc > (uint64_t)INT64_MAX)
        return false;
    *ret = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

bool topic_config_parse_bool(const char *v, bool *ret)
{
    if (v && !strcasecmp(v, "true")) {
        *ret = true;
        return true;
    }
    if (v && !strcasecmp(v, "false")) {
        *ret = false;
        return true;
    }
    return false;
}

/* A non-negative int32 in [p, end): its value, or -1. */
static int64_t pair_int(const char *p, const char *end)
{
    if (p == end || end - p > 10)
        return -1;
    int64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v <= INT32_MAX ? v : -1;
}

/* Calls @fn for each partition:broker pair of @value ("" has none; Kafka
 * trims spaces around items). False when an item is not such a pair. */
static bool replicas_each(const char *value, bool (*fn)(void *, int64_t, int64_t), void *ud)
{
    if (!*value)
        return true;
    for (const char *p = value;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && *p == ' ')
            p++;
        while (end > p && end[-1] == ' ')
            end--;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        int64_t part = colon ? pair_int(p, colon) : -1;
        int64_t broker = colon ? pair_int(colon + 1, end) : -1;
        if (part < 0 || broker < 0)
            return false;
        if (fn && fn(ud, part, broker))
            return true;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

static bool replicas_valid(const char *value)
{
    const char *p = value;
    while (*p == ' ')
        p++;
    if (*p == '*') {
        for (p++; *p == ' '; p++)
            ;
        return *p == 0;
    }
    return replicas_each(value, NULL, NULL);
}

struct listed_ctx {
    int64_t partition, broker;
    bool found;
};

static bool listed_match(void *ud, int64_t part, int64_t broker)
{
    struct listed_ctx *c = ud;
    c->found = part == c->partition && broker == c->broker;
    return c->found;
}

bool topic_config_replica_listed(const char *value, int32_t partition, int32_t broker)
{
    if (!value || !*value)
        return false;
    const char *p = value;
    while (*p == ' ')
        p++;
    if (*p == '*')
        return replicas_valid(value);
    struct listed_ctx c = {partition, broker, false};
    return replicas_each(value, listed_match, &c) && c.found;
}

struct of_broker_ctx {
    int64_t broker;
    bool *listed;
    size_t n;
};

static bool of_broker_mark(void *ud, int64_t part, int64_t broker)
{
    struct of_broker_ctx *c = ud;
    if (broker == c->broker && (uint64_t)part < c->n)
        c->listed[part] = true;
    return false;
}

void topic_config_replicas_of_broker(const char *value, int32_t broker, bool *ret_listed,
                                     size_t n_parts)
{
    memset(ret_listed, 0, n_parts * sizeof(*ret_listed));
    if (!value || !*value)
        return;
    const char *p = value;
    while (*p == ' ')
        p++;
    if (*p == '*') {
        if (replicas_valid(value))
            memset(ret_listed, 1, n_parts * sizeof(*ret_listed));
        return;
    }
    struct of_broker_ctx c = {broker, ret_listed, n_parts};
    if (!replicas_each(value, of_broker_mark, &c))
        memset(ret_listed, 0, n_parts * sizeof(*ret_listed));
}

/* Kafka compares choices case-sensitively, booleans not. */
static bool in_list(const char *v, size_t n, const char *const *list, bool nocase)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strlen(list[i]) == n && !(nocase ? strncasecmp : strncmp)(list[i], v, n))
            return true;
    return false;
}

/* One item of a value: 0 when fine, else a KERR with @msg written. */
static int16_t check_item(const struct topic_config_def *d, const char *value, const char *item,
                          size_t n, char *msg, size_t msglen)
{
    bool nocase = d->type == TOPIC_CONFIG_BOOL;
    if (!in_list(item, n, d->choices, nocase)) {
        snprintf(msg, msglen, "invalid value '%.64s' for topic config %s", value, d->name);
        return KERR_INVALID_CONFIG;
    }
    if (in_list(item, n, d->refused, nocase)) {
        snprintf(msg, msglen, "%s=%.*s is not supported: %s", d->name, (int)(n > 64 ? 64 : n), item,
                 d->refused_why);
        return KERR_INVALID_CONFIG;
    }
    return KERR_NONE;
}

int16_t topic_config_validate(const char *name, const char *value, char *msg, size_t msglen)
{
    const struct topic_config_def *d = name ? topic_config_find(name) : NULL;
    if (!d) {
        snprintf(msg, msglen, "unknown topic config %.128s: Weir does not implement it",
                 name ? name : "(null)");
        return KERR_INVALID_CONFIG;
    }
    if (!value) {
        snprintf(msg, msglen, "topic config %s needs a value", name);
        return KERR_INVALID_CONFIG;
    }
    bool good = false;
    int64_t n;
    switch (d->type) {
    case TOPIC_CONFIG_BOOL:
    case TOPIC_CONFIG_STRING: {
        int16_t e = check_item(d, value, value, strlen(value), msg, msglen);
        if (!e)
            msg[0] = 0;
        return e;
    }
    case TOPIC_CONFIG_INT:
    case TOPIC_CONFIG_LONG:
        good = topic_config_parse_long(value, &n) && n >= d->min && n <= d->max;
        break;
    case TOPIC_CONFIG_RATIO: {
        char *end;
        double r = strtod(value, &end);
        good = *value && !*end && r >= 0.0 && r <= 1.0;
        break;
    }
    case TOPIC_CONFIG_REPLICAS:
        good = replicas_valid(value);
        if (!good) {
            snprintf(msg, msglen,
                     "invalid value '%.64s' for topic config %s: expected '*' or a list of "
                     "partition:broker pairs, e.g. '0:1,0:2'",
                     value, name);
            return KERR_INVALID_CONFIG;
        }
        break;
    case TOPIC_CONFIG_LIST: {
        /* A comma-separated list, e.g. "compact,delete". */
        if (!*value)
            break;
        for (const char *p = value;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            int16_t e = check_item(d, value, p, len, msg, msglen);
            if (e)
                return e;
            if (!comma) {
                good = true;
                break;
            }
            p = comma + 1;
        }
        break;
    }
    }
    if (!good) {
        if (d->type == TOPIC_CONFIG_INT || d->type == TOPIC_CONFIG_LONG)
            snprintf(
                msg, msglen,
                "invalid value '%.64s' for topic config %s: expected an integer in [%lld, %lld]",
                value, name, (long long)d->min, (long long)d->max);
        else
            snprintf(msg, msglen, "invalid value '%.64s' for topic config %s", value, name);
        return KERR_INVALID_CONFIG;
    }
    msg[0] = 0;
    return KERR_NONE;
}
