/* broker_config: the broker's keys with Kafka's names, defaults and bounds. */
#include "broker/broker_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/storage/storage_config.h"
#include "common/config.h"
#include "common/dyncfg.h"
#include "common/httpd.h"
#include "common/log.h"

static const char *const compression_choices[] = {"producer", "uncompressed", "gzip", "snappy",
                                                  "lz4",      "zstd",         NULL};
static const char *const log_level_choices[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const log_format_choices[] = {"text", "json", NULL};

static int validate_endpoint(const struct config_def *def, const char *value, char *err,
                             size_t errlen)
{
    struct broker_endpoint ep;
    if (broker_config_parse_endpoint(value, &ep) != 0) {
        snprintf(err, errlen, "a listener like PLAINTEXT://127.0.0.1:9092");
        return -EINVAL;
    }
    return 0;
}

const struct config_def broker_config_defs[] = {
    {.name = "broker.id",
     .type = CONFIG_INT,
     .default_value = "0",
     .min = 0,
     .max = INT32_MAX,
     .doc = "this broker's id in the cluster"},
    {.name = "listeners",
     .type = CONFIG_STRING,
     .default_value = "PLAINTEXT://127.0.0.1:9092",
     .validate = validate_endpoint,
     .doc = "where the Kafka listener binds"},
    {.name = "advertised.listeners",
     .type = CONFIG_STRING,
     .default_value = NULL,
     .doc = "the address clients are told; defaults to listeners"},
    {.name = "coordinator.connect",
     .type = CONFIG_STRING,
     .default_value = NULL,
     .doc = "host:port of weir-coordinator, or of each voter of a coordinator quorum: "
            "host:port[,host:port...] (at most 7); the broker follows the quorum leader"},
    {.name = "zookeeper.connect",
     .type = CONFIG_STRING,
     .default_value = NULL,
     .doc = "alias of coordinator.connect (deprecated)"},
    {.name = "replication.listener",
     .type = CONFIG_STRING,
     .default_value = NULL,
     .doc = "host:port of the replication listener followers fetch from; default: the "
            "advertised host with a free port"},
    {.name = "min.insync.replicas",
     .type = CONFIG_INT,
     .default_value = "1",
     .min = 1,
     .max = INT32_MAX,
     .doc = "acks=all needs at least this many in-sync replicas (topic override wins)"},
    {.name = "replica.lag.time.max.ms",
     .type = CONFIG_INT,
     .default_value = "30000",
     .min = 1,
     .max = INT32_MAX,
     .doc = "a follower not caught up for this long leaves the ISR"},
    {.name = "replica.fetch.max.bytes",
     .type = CONFIG_INT,
     .default_value = "1048576",
     .min = 1024,
     .max = INT32_MAX,
     .doc = "bytes a follower asks for per partition (the first batch always comes)"},
    {.name = "replica.fetch.response.max.bytes",
     .type = CONFIG_INT,
     .default_value = "10485760",
     .min = 1024,
     .max = INT32_MAX,
     .doc = "bytes a follower asks for per fetch"},
    {.name = "replica.fetch.wait.max.ms",
     .type = CONFIG_INT,
     .default_value = "500",
     .min = 0,
     .max = 60000,
     .doc = "how long a leader holds a follower's fetch when there is nothing new"},
    {.name = "replica.fetch.backoff.ms",
     .type = CONFIG_INT,
     .default_value = "100",
     .min = 0,
     .max = 60000,
     .doc = "pause after a failed follower fetch"},
    DYNCFG_LEADER_THROTTLE_DEF,
    DYNCFG_FOLLOWER_THROTTLE_DEF,
    {.name = "broker.rack", .type = CONFIG_STRING, .default_value = NULL, .doc = "rack id"},
    {.name = "socket.request.max.bytes",
     .type = CONFIG_INT,
     .default_value = "104857600",
     .min = 1024,
     .max = INT32_MAX,
     .doc = "largest request frame accepted"},
    {.name = "message.max.bytes",
     .type = CONFIG_INT,
     .default_value = "1048588",
     .min = 64,
     .max = INT32_MAX,
     .doc = "largest record batch accepted"},
    {.name = "compression.type",
     .type = CONFIG_STRING,
     .default_value = "producer",
     .choices = compression_choices,
     .doc = "codec of stored batches for topics without their own compression.type: "
            "'producer' keeps the producer's, any other is applied by the leader"},
    {.name = "auto.create.topics.enable",
     .type = CONFIG_BOOL,
     .default_value = "true",
     .doc = "create unknown topics named in Metadata requests"},
    {.name = "num.partitions",
     .type = CONFIG_INT,
     .default_value = "1",
     .min = 1,
     .max = 1000000,
     .doc = "partitions of an auto-created topic"},
    {.name = "default.replication.factor",
     .type = CONFIG_INT,
     .default_value = "1",
     .min = 1,
     .max = 64,
     .doc = "replication factor of an auto-created topic"},
    {.name = "test.loop.stall.ms",
     .type = CONFIG_INT,
     .default_value = "0",
     .min = 0,
     .max = 600000,
     .doc = "testing only: when > 0, each SIGUSR2 makes the broker's event loop sleep this long "
            "(a wedged or busy loop, to test heartbeat liveness); 0 leaves SIGUSR2 alone"},
    {.name = "connections.max.idle.ms",
     .type = CONFIG_INT,
     .default_value = "600000",
     .min = 1,
     .max = INT32_MAX,
     .doc = "close connections idle this long"},
    {.name = "queued.max.requests",
     .type = CONFIG_INT,
     .default_value = "500",
     .min = 1,
     .max = 1000000,
     .doc = "requests in flight per connection before reading pauses"},
    {.name = "request.timeout.ms",
     .type = CONFIG_INT,
     .default_value = "30000",
     .min = 100,
     .max = INT32_MAX,
     .doc = "how long admin requests wait for the coordinator"},
    {.name = "producer.id.expiration.ms",
     .type = CONFIG_INT,
     .default_value = "86400000",
     .min = 1,
     .max = INT32_MAX,
     .doc = "forget an idempotent producer's sequence state after this long without a batch "
            "(by batch timestamp)"},
    {.name = "group.initial.rebalance.delay.ms",
     .type = CONFIG_INT,
     .default_value = "3000",
     .min = 0,
     .max = INT32_MAX,
     .doc = "how long the first rebalance of an empty group waits for more members to join"},
    {.name = "group.min.session.timeout.ms",
     .type = CONFIG_INT,
     .default_value = "6000",
     .min = 1,
     .max = INT32_MAX,
     .doc = "smallest session timeout a group member may ask for (INVALID_SESSION_TIMEOUT below)"},
    {.name = "group.max.session.timeout.ms",
     .type = CONFIG_INT,
     .default_value = "1800000",
     .min = 1,
     .max = INT32_MAX,
     .doc = "largest session timeout a group member may ask for (INVALID_SESSION_TIMEOUT above)"},
    {.name = "group.max.size",
     .type = CONFIG_INT,
     .default_value = "2147483647",
     .min = 1,
     .max = INT32_MAX,
     .doc = "members a consumer group may have (GROUP_MAX_SIZE_REACHED beyond)"},
    {.name = "offsets.topic.num.partitions",
     .type = CONFIG_INT,
     .default_value = "50",
     .min = 1,
     .max = 10000,
     .doc = "partitions of __consumer_offsets when it is created (later changes do not move groups)"},
    {.name = "offsets.topic.replication.factor",
     .type = CONFIG_INT,
     .default_value = "3",
     .min = 1,
     .max = 127,
     .doc = "replication factor of __consumer_offsets when it is created (capped by the live "
            "brokers, with a warning)"},
    {.name = "offsets.retention.minutes",
     .type = CONFIG_INT,
     .default_value = "10080",
     .min = 1,
     .max = INT32_MAX,
     .doc = "committed offsets expire this long after their group became empty (after their "
            "commit for a standalone group; never while members subscribe to their topic)"},
    {.name = "test.offsets.retention.ms",
     .type = CONFIG_INT,
     .default_value = "0",
     .min = 0,
     .max = INT32_MAX,
     .doc = "testing only: when > 0, committed offsets expire after this many ms instead of "
            "offsets.retention.minutes (sub-minute expiry for the integration tests)"},
    {.name = "offsets.retention.check.interval.ms",
     .type = CONFIG_INT,
     .default_value = "600000",
     .min = 1,
     .max = INT32_MAX,
     .doc = "how often expired committed offsets are looked for"},
    {.name = "offset.metadata.max.bytes",
     .type = CONFIG_INT,
     .default_value = "4096",
     .min = 0,
     .max = INT32_MAX,
     .doc = "largest metadata string of a committed offset (OFFSET_METADATA_TOO_LARGE beyond)"},
    {.name = "offsets.commit.timeout.ms",
     .type = CONFIG_INT,
     .default_value = "5000",
     .min = 1,
     .max = INT32_MAX,
     .doc = "how long an offset commit waits for the ISR of its __consumer_offsets partition"},
    {.name = "offsets.load.buffer.size",
     .type = CONFIG_INT,
     .default_value = "5242880",
     .min = 1,
     .max = INT32_MAX,
     .doc = "bytes of __consumer_offsets read per event-loop turn while loading a partition"},
    {.name = "log.level",
     .type = CONFIG_STRING,
     .default_value = "info",
     .choices = log_level_choices,
     .doc = "log verbosity"},
    {.name = "log.format",
     .type = CONFIG_STRING,
     .default_value = "text",
     .choices = log_format_choices,
     .doc = "log line format on stderr: text, or json (one object per line with ts, level, "
            "component, msg, event and its fields, for log shippers)"},
    HTTPD_CONFIG_DEFS,
};
const size_t broker_config_ndefs = sizeof(broker_config_defs) / sizeof(broker_config_defs[0]);

int broker_config_new(struct config **ret, struct config_def **ret_defs)
{
    struct config_def *defs;
    size_t n;
    int r = storage_config_defs_combine(broker_config_defs, broker_config_ndefs, &defs, &n);
    if (r < 0)
        return r;
    struct config *c;
    r = config_new(defs, n, &c);
    if (r < 0) {
        free(defs);
        return r;
    }
    *ret = c;
    *ret_defs = defs;
    return 0;
}

int broker_config_parse_endpoint(const char *s, struct broker_endpoint *ret)
{
    struct broker_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    const char *sep = strstr(s, "://");
    const char *hp = s;
    if (sep) {
        size_t n = (size_t)(sep - s);
        if (n == 0 || n >= sizeof(ep.listener))
            return -EINVAL;
        memcpy(ep.listener, s, n);
        hp = sep + 3;
    } else {
        strcpy(ep.listener, "PLAINTEXT");
    }
    if (strchr(hp, ','))
        return -EINVAL; /* one listener for now */
    const char *colon = strrchr(hp, ':');
    if (!colon)
        return -EINVAL;
    size_t hl = (size_t)(colon - hp);
    if (hl >= sizeof(ep.host))
        return -EINVAL;
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
        memcpy(ep.host, hp + 1, hl - 2);
    } else {
        memcpy(ep.host, hp, hl);
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return -EINVAL;
    ep.port = (int)port;
    *ret = ep;
    return 0;
}

static int parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    struct broker_endpoint ep;
    if (strstr(s, "://") || broker_config_parse_endpoint(s, &ep) != 0 || ep.port == 0 ||
        !ep.host[0] || strlen(ep.host) >= hostlen)
        return -EINVAL;
    strcpy(host, ep.host);
    *port = ep.port;
    return 0;
}

int broker_settings_resolve(const struct config *c, struct broker_settings *ret, char *err,
                            size_t errlen)
{
    struct broker_settings s;
    memset(&s, 0, sizeof(s));
    s.broker_id = (int32_t)config_get_int(c, "broker.id");
    if (broker_config_parse_endpoint(config_get_string(c, "listeners"), &s.listen) != 0) {
        snprintf(err, errlen, "bad listeners");
        return -EINVAL;
    }
    const char *adv = config_get_string(c, "advertised.listeners");
    if (adv) {
        if (broker_config_parse_endpoint(adv, &s.advertised) != 0 || !s.advertised.host[0]) {
            snprintf(err, errlen, "invalid value '%s' for 'advertised.listeners'", adv);
            return -EINVAL;
        }
    } else {
        s.advertised = s.listen;
        if (!s.advertised.host[0] || strcmp(s.advertised.host, "0.0.0.0") == 0)
            strcpy(s.advertised.host, "127.0.0.1");
    }
    const char *coord = config_get_string(c, "coordinator.connect");
    if (!coord) {
        coord = config_get_string(c, "zookeeper.connect");
        if (coord)
            log_warn("config", "zookeeper.connect is deprecated; use coordinator.connect");
    }
    if (!coord) {
        snprintf(err, errlen, "coordinator.connect is required");
        return -EINVAL;
    }
    if (coordaddr_parse(coord, &s.coord, err, errlen) != 0)
        return -EINVAL;
    snprintf(s.coord_host, sizeof(s.coord_host), "%s", s.coord.v[0].host);
    s.coord_port = s.coord.v[0].port;
    s.replication_listener = config_get_string(c, "replication.listener");
    s.repl_host[0] = 0;
    s.repl_port = 0;
    if (s.replication_listener && s.replication_listener[0] &&
        parse_hostport(s.replication_listener, s.repl_host, sizeof(s.repl_host), &s.repl_port) !=
            0) {
        snprintf(err, errlen, "invalid value '%s' for 'replication.listener': expected host:port",
                 s.replication_listener);
        return -EINVAL;
    }
    s.min_insync_replicas = (int32_t)config_get_int(c, "min.insync.replicas");
    s.replica_lag_time_max_ms = config_get_int(c, "replica.lag.time.max.ms");
    s.replica_fetch_max_bytes = (int32_t)config_get_int(c, "replica.fetch.max.bytes");
    s.replica_fetch_response_max_bytes =
        (int32_t)config_get_int(c, "replica.fetch.response.max.bytes");
    s.replica_fetch_wait_max_ms = (int32_t)config_get_int(c, "replica.fetch.wait.max.ms");
    s.replica_fetch_backoff_ms = (int32_t)config_get_int(c, "replica.fetch.backoff.ms");
    s.leader_replication_throttled_rate = config_get_int(c, "leader.replication.throttled.rate");
    s.follower_replication_throttled_rate =
        config_get_int(c, "follower.replication.throttled.rate");
    s.rack = config_get_string(c, "broker.rack");
    s.socket_request_max_bytes = config_get_int(c, "socket.request.max.bytes");
    s.message_max_bytes = (int32_t)config_get_int(c, "message.max.bytes");
    s.auto_create_topics = config_get_bool(c, "auto.create.topics.enable");
    s.num_partitions = (int32_t)config_get_int(c, "num.partitions");
    s.default_replication_factor = (int32_t)config_get_int(c, "default.replication.factor");
    s.connections_max_idle_ms = config_get_int(c, "connections.max.idle.ms");
    s.queued_max_requests = (int32_t)config_get_int(c, "queued.max.requests");
    s.admin_timeout_ms = (int32_t)config_get_int(c, "request.timeout.ms");
    s.producer_id_expiration_ms = config_get_int(c, "producer.id.expiration.ms");
    s.group_initial_rebalance_delay_ms = (int32_t)config_get_int(c, "group.initial.rebalance.delay.ms");
    s.group_min_session_timeout_ms = (int32_t)config_get_int(c, "group.min.session.timeout.ms");
    s.group_max_session_timeout_ms = (int32_t)config_get_int(c, "group.max.session.timeout.ms");
    s.group_max_size = (int32_t)config_get_int(c, "group.max.size");
    s.offsets_topic_num_partitions = (int32_t)config_get_int(c, "offsets.topic.num.partitions");
    s.offsets_topic_replication_factor =
        (int16_t)config_get_int(c, "offsets.topic.replication.factor");
    s.offsets_retention_ms = config_get_int(c, "offsets.retention.minutes") * 60000;
    if (config_get_int(c, "test.offsets.retention.ms") > 0)
        s.offsets_retention_ms = config_get_int(c, "test.offsets.retention.ms");
    s.offsets_retention_check_interval_ms =
        config_get_int(c, "offsets.retention.check.interval.ms");
    s.offset_metadata_max_bytes = (int32_t)config_get_int(c, "offset.metadata.max.bytes");
    s.offsets_commit_timeout_ms = (int32_t)config_get_int(c, "offsets.commit.timeout.ms");
    s.offsets_load_buffer_size = (int32_t)config_get_int(c, "offsets.load.buffer.size");
    if (s.group_min_session_timeout_ms > s.group_max_session_timeout_ms) {
        snprintf(err, errlen,
                 "'group.min.session.timeout.ms' (%d) is above 'group.max.session.timeout.ms' (%d)",
                 s.group_min_session_timeout_ms, s.group_max_session_timeout_ms);
        return -EINVAL;
    }
    *ret = s;
    return 0;
}
