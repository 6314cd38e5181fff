/* coord_config: the coordinator's configuration keys and their resolution into
 * struct coord_settings. */
#include "coordinator/coord_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/crc32c.h"
#include "common/httpd.h"

/* Bytes of a frame not available to a record: frame header and the WatchRecord
 * fields around it, with room to spare. */
#define COORD_CONFIG_FRAME_SLACK 1024

int coord_config_parse_listener(const char *value, struct coord_listener *ret, char *err,
                                size_t errlen)
{
    const char *s = value;
    const char *scheme = strstr(s, "://");
    if (scheme) {
        if ((size_t)(scheme - s) != strlen("PLAINTEXT") || strncasecmp(s, "PLAINTEXT", 9) != 0) {
            snprintf(err, errlen,
                     "a host:port or PLAINTEXT://host:port (only PLAINTEXT listeners are "
                     "supported)");
            return -EINVAL;
        }
        s = scheme + 3;
    }
    const char *host = s;
    size_t host_len;
    const char *port_str;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "a host:port, with an IPv6 address as [addr]:port");
            return -EINVAL;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        port_str = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s))) {
            snprintf(err, errlen, "a host:port (IPv6 addresses as [addr]:port)");
            return -EINVAL;
        }
        host_len = (size_t)(colon - s);
        port_str = colon + 1;
    }
    if (host_len >= COORD_CONFIG_HOST_MAX) {
        snprintf(err, errlen, "a host name of at most %d bytes", COORD_CONFIG_HOST_MAX - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < host_len; i++) {
        char ch = host[i];
        if (ch == ' ' || ch == '\t' || ch == '/' || ch == ',') {
            snprintf(err, errlen, "a host:port");
            return -EINVAL;
        }
    }
    if (!*port_str) {
        snprintf(err, errlen, "a host:port with a port in [0, 65535]");
        return -EINVAL;
    }
    long port = 0;
    for (const char *p = port_str; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            snprintf(err, errlen, "a host:port with a port in [0, 65535]");
            return -EINVAL;
        }
        port = port * 10 + (*p - '0');
    }
    if (port > 65535) {
        snprintf(err, errlen, "a host:port with a port in [0, 65535]");
        return -EINVAL;
    }
    memcpy(ret->host, host, host_len);
    ret->host[host_len] = '\0';
    ret->port = (int)port;
    return 0;
}

/* Every comma-separated item must be a listener; an empty list leaves the
 * coordinator unreachable, so it is refused too. */
static int validate_listeners(const struct config_def *def, const char *value, char *err,
                              size_t errlen)
{
    (void)def;
    if (!value)
        return 0;
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, errlen, "(out of memory)");
        return -ENOMEM;
    }
    int r = 0;
    size_t n = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        size_t len = strlen(item);
        while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            item[--len] = '\0';
        struct coord_listener l;
        r = coord_config_parse_listener(item, &l, err, errlen);
        if (r < 0)
            break;
        n++;
    }
    free(copy);
    if (r == 0 && (n == 0 || n > COORD_CONFIG_MAX_LISTENERS)) {
        snprintf(err, errlen, "between 1 and %d comma-separated host:port listeners",
                 COORD_CONFIG_MAX_LISTENERS);
        r = -EINVAL;
    }
    return r;
}

static int cmp_voter(const void *a, const void *b)
{
    const struct coord_voter *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int parse_voter(const char *item, struct coord_voter *ret, char *err, size_t errlen)
{
    const char *at = strchr(item, '@');
    if (!at || at == item) {
        snprintf(err, errlen,
                 "id@host:port items (the voter's node.id, then its listener), "
                 "got '%s'",
                 item);
        return -EINVAL;
    }
    long long id = 0;
    for (const char *p = item; p < at; p++) {
        if (*p < '0' || *p > '9' || id > INT32_MAX) {
            snprintf(err, errlen, "a voter id in [1, %d] before '@', got '%s'", INT32_MAX, item);
            return -EINVAL;
        }
        id = id * 10 + (*p - '0');
    }
    if (id < 1 || id > INT32_MAX) {
        snprintf(err, errlen, "a voter id in [1, %d] before '@', got '%s'", INT32_MAX, item);
        return -EINVAL;
    }
    char why[160] = "";
    if (coord_config_parse_listener(at + 1, &ret->addr, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "id@host:port items; in '%s', %s", item, why);
        return -EINVAL;
    }
    if (ret->addr.port == 0 || !ret->addr.host[0]) {
        snprintf(err, errlen,
                 "a host and a fixed port for every voter (peers must find it), "
                 "got '%s'",
                 item);
        return -EINVAL;
    }
    ret->id = (int32_t)id;
    return 0;
}

int coord_config_parse_voters(const char *value, struct coord_voter *ret, size_t *ret_n, char *err,
                              size_t errlen)
{
    struct coord_voter v[COORD_CONFIG_MAX_VOTERS];
    size_t n = 0;
    char *copy = strdup(value ? value : "");
    if (!copy) {
        snprintf(err, errlen, "(out of memory)");
        return -ENOMEM;
    }
    int r = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && r == 0;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ' || *item == '\t')
            item++;
        size_t len = strlen(item);
        while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            item[--len] = '\0';
        if (!*item)
            continue;
        if (n == COORD_CONFIG_MAX_VOTERS) {
            snprintf(err, errlen, "at most %d voters", COORD_CONFIG_MAX_VOTERS);
            r = -EINVAL;
            break;
        }
        r = parse_voter(item, &v[n], err, errlen);
        if (r < 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (v[i].id == v[n].id) {
                snprintf(err, errlen, "each voter id once, got %d twice", (int)v[n].id);
                r = -EINVAL;
            } else if (v[i].addr.port == v[n].addr.port &&
                       strcmp(v[i].addr.host, v[n].addr.host) == 0) {
                snprintf(err, errlen, "a distinct address per voter, got %s:%d for %d and %d",
                         v[n].addr.host, v[n].addr.port, (int)v[i].id, (int)v[n].id);
                r = -EINVAL;
            }
        }
        n++;
    }
    free(copy);
    if (r < 0)
        return r;
    qsort(v, n, sizeof(v[0]), cmp_voter);
    memcpy(ret, v, n * sizeof(v[0]));
    *ret_n = n;
    return 0;
}

uint32_t coord_config_voters_digest(const struct coord_voter *voters, size_t n)
{
    struct coord_voter sorted[COORD_CONFIG_MAX_VOTERS];
    if (n > COORD_CONFIG_MAX_VOTERS)
        n = COORD_CONFIG_MAX_VOTERS;
    memcpy(sorted, voters, n * sizeof(*voters));
    qsort(sorted, n, sizeof(sorted[0]), cmp_voter);
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        char line[COORD_CONFIG_HOST_MAX + 32];
        int len = snprintf(line, sizeof(line), "%d@%s:%d\n", (int)sorted[i].id, sorted[i].addr.host,
                           sorted[i].addr.port);
        crc = crc32c_update(crc, line, (size_t)len);
    }
    return crc;
}

static int validate_voters(const struct config_def *def, const char *value, char *err,
                           size_t errlen)
{
    (void)def;
    struct coord_voter v[COORD_CONFIG_MAX_VOTERS];
    size_t n;
    return value ? coord_config_parse_voters(value, v, &n, err, errlen) : 0;
}

static const char *const log_level_choices[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const log_format_choices[] = {"text", "json", NULL};

/* clang-format off */
const struct config_def coord_config_defs[] = {
    {.name = "node.id", .type = CONFIG_INT, .default_value = "1", .min = 0, .max = INT32_MAX,
     .doc = "This coordinator's id, reported to brokers and in logs."},
    {.name = "listeners", .type = CONFIG_LIST, .default_value = "127.0.0.1:2181",
     .validate = validate_listeners,
     .doc = "Where brokers and tools reach the coordinator: host:port or PLAINTEXT://host:port, comma-separated."},
    {.name = "coordinator.quorum.voters", .type = CONFIG_STRING, .default_value = "",
     .validate = validate_voters,
     .doc = "The coordinator quorum as id@host:port,... (each voter's node.id and listener; this node's entry is picked by node.id). Empty, or this node alone: a single coordinator. More than one: this node is one voter of a Raft quorum (docs/coordinator-quorum.md); every voter must have the same list and be formatted with the same --cluster-id."},
    {.name = "data.dir", .type = CONFIG_STRING, .default_value = NULL,
     .doc = "Directory of the metadata log and snapshots (required; created if missing)."},
    {.name = "session.timeout.ms", .type = CONFIG_INT, .default_value = "9000",
     .min = 100, .max = 3600000,
     .doc = "A broker with no heartbeat for this long is fenced."},
    {.name = "session.disconnect.timeout.ms", .type = CONFIG_INT, .default_value = "500",
     .min = 0, .max = 600000,
     .doc = "When the connection a broker last registered or heartbeated on closes, it is fenced this long after unless it registers or heartbeats on a new connection (never later than session.timeout.ms allows)."},
    {.name = "session.busy.grace.bytes.per.ms", .type = CONFIG_INT, .default_value = "16",
     .min = 0, .max = 1073741824,
     .doc = "Busy grace: a broker's session deadline moves 1 ms later for every this many bytes of metadata pushed to it and not yet acknowledged in its heartbeats (at most one more session timeout); 0 turns the grace off."},
    {.name = "heartbeat.interval.ms", .type = CONFIG_INT, .default_value = "2000",
     .min = 10, .max = 3600000,
     .doc = "How often brokers are told to heartbeat; must be below session.timeout.ms."},
    {.name = "num.partitions", .type = CONFIG_INT, .default_value = "1", .min = 1,
     .max = 1000000,
     .doc = "Partitions of a topic created without a partition count."},
    {.name = "default.replication.factor", .type = CONFIG_INT, .default_value = "1", .min = 1,
     .max = 64,
     .doc = "Replication factor of a topic created without one."},
    {.name = "min.insync.replicas", .type = CONFIG_INT, .default_value = "1", .min = 1,
     .max = 64,
     .doc = "Cluster default of the minimum ISR size for acks=all writes."},
    {.name = "unclean.leader.election.enable", .type = CONFIG_BOOL, .default_value = "false",
     .doc = "Allow electing a leader outside the ISR when no ISR member is live (may lose data)."},
    {.name = "auto.create.topics.enable", .type = CONFIG_BOOL, .default_value = "true",
     .doc = "Create a topic when a client asks for metadata of an unknown one."},
    {.name = "offsets.topic.num.partitions", .type = CONFIG_INT, .default_value = "50",
     .min = 1, .max = 1000000,
     .doc = "Partitions of the internal __consumer_offsets topic."},
    {.name = "offsets.topic.replication.factor", .type = CONFIG_INT, .default_value = "3",
     .min = 1, .max = 64,
     .doc = "Replication factor of __consumer_offsets; its creation fails until that many brokers are live."},
    {.name = "auto.leader.rebalance.enable", .type = CONFIG_BOOL, .default_value = "true",
     .doc = "Move leadership back to preferred replicas when they are live and in sync."},
    {.name = "leader.imbalance.check.interval.seconds", .type = CONFIG_INT,
     .default_value = "300", .min = 1, .max = 86400,
     .doc = "How often the preferred-leader rebalance runs."},
    {.name = "leader.imbalance.per.broker.percentage", .type = CONFIG_INT, .default_value = "10",
     .min = 0, .max = 100,
     .doc = "The rebalance moves a broker's preferred leaderships back only when more than this percentage of them are led by others (0: always)."},
    {.name = "metadata.snapshot.interval.records", .type = CONFIG_INT, .default_value = "10000",
     .min = 1, .max = INT32_MAX,
     .doc = "Write a snapshot of the metadata after this many records."},
    {.name = "rpc.max.frame.bytes", .type = CONFIG_INT, .default_value = "16777216",
     .min = 4096, .max = 1073741824,
     .doc = "Largest RPC frame accepted or sent; a peer that sends a larger one is disconnected."},
    {.name = "log.level", .type = CONFIG_STRING, .default_value = "info",
     .choices = log_level_choices,
     .doc = "Lowest level of log lines written to stderr."},
    {.name = "log.format", .type = CONFIG_STRING, .default_value = "text",
     .choices = log_format_choices,
     .doc = "Log line format on stderr: text, or json (one object per line with ts, level, component, msg, event and its fields, for log shippers)."},
    HTTPD_CONFIG_DEFS,
};
/* clang-format on */

const size_t coord_config_ndefs = sizeof(coord_config_defs) / sizeof(coord_config_defs[0]);

/* The voter list against node.id and listeners. */
static int resolve_voters(const struct config *c, struct coord_settings *s, char *err,
                          size_t errlen)
{
    const char *value = config_get_string(c, "coordinator.quorum.voters");
    char why[300] = "";
    if (coord_config_parse_voters(value, s->voters, &s->n_voters, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "invalid value for 'coordinator.quorum.voters': expected %s", why);
        return -EINVAL;
    }
    if (s->n_voters == 0)
        return 0;
    const struct coord_voter *self = NULL;
    for (size_t i = 0; i < s->n_voters; i++)
        if (s->voters[i].id == s->node_id)
            self = &s->voters[i];
    if (!self) {
        snprintf(err, errlen,
                 "'node.id' %d is not in 'coordinator.quorum.voters' (%s): a coordinator must "
                 "be one of the voters it names",
                 (int)s->node_id, value);
        return -EINVAL;
    }
    bool port_ok = false;
    for (size_t i = 0; i < s->n_listeners; i++)
        port_ok |= s->listeners[i].port == self->addr.port;
    if (!port_ok) {
        snprintf(err, errlen,
                 "this node's entry %d@%s:%d in 'coordinator.quorum.voters' does not match "
                 "any of its 'listeners' ports: peers would not reach it",
                 (int)self->id, self->addr.host, self->addr.port);
        return -EINVAL;
    }
    s->voters_digest = coord_config_voters_digest(s->voters, s->n_voters);
    return 0;
}

int coord_config_resolve(const struct config *c, struct coord_settings *ret, char *err,
                         size_t errlen)
{
    struct coord_settings s;
    memset(&s, 0, sizeof(s));

    s.data_dir = config_get_string(c, "data.dir");
    if (!s.data_dir || !*s.data_dir) {
        snprintf(err, errlen,
                 "'data.dir' is not set: the coordinator needs a directory for its metadata "
                 "log (set data.dir in the config file or --override data.dir=DIR)");
        return -EINVAL;
    }

    size_t n = 0;
    const char *const *items = config_get_list(c, "listeners", &n);
    if (n == 0 || n > COORD_CONFIG_MAX_LISTENERS) {
        snprintf(err, errlen, "'listeners' must name between 1 and %d listeners",
                 COORD_CONFIG_MAX_LISTENERS);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char why[200] = "";
        if (coord_config_parse_listener(items[i], &s.listeners[i], why, sizeof(why)) < 0) {
            snprintf(err, errlen, "invalid value '%s' for 'listeners': expected %s", items[i], why);
            return -EINVAL;
        }
    }
    s.n_listeners = n;

    s.node_id = (int32_t)config_get_int(c, "node.id");
    s.session_timeout_ms = (int32_t)config_get_int(c, "session.timeout.ms");
    s.heartbeat_interval_ms = (int32_t)config_get_int(c, "heartbeat.interval.ms");
    s.session_disconnect_timeout_ms = (int32_t)config_get_int(c, "session.disconnect.timeout.ms");
    s.session_grace_bytes_per_ms = config_get_int(c, "session.busy.grace.bytes.per.ms");
    if (s.heartbeat_interval_ms >= s.session_timeout_ms) {
        snprintf(err, errlen,
                 "'heartbeat.interval.ms' (%d) must be below 'session.timeout.ms' (%d), or "
                 "live brokers would be fenced",
                 (int)s.heartbeat_interval_ms, (int)s.session_timeout_ms);
        return -EINVAL;
    }
    s.num_partitions = (int32_t)config_get_int(c, "num.partitions");
    s.default_replication_factor = (int32_t)config_get_int(c, "default.replication.factor");
    s.min_insync_replicas = (int32_t)config_get_int(c, "min.insync.replicas");
    s.unclean_leader_election = config_get_bool(c, "unclean.leader.election.enable");
    s.auto_create_topics = config_get_bool(c, "auto.create.topics.enable");
    s.offsets_topic_num_partitions = (int32_t)config_get_int(c, "offsets.topic.num.partitions");
    s.offsets_topic_replication_factor =
        (int32_t)config_get_int(c, "offsets.topic.replication.factor");
    s.auto_leader_rebalance = config_get_bool(c, "auto.leader.rebalance.enable");
    s.leader_imbalance_check_interval_ms =
        config_get_int(c, "leader.imbalance.check.interval.seconds") * 1000;
    s.leader_imbalance_per_broker_pct =
        (int32_t)config_get_int(c, "leader.imbalance.per.broker.percentage");
    s.snapshot_interval_records = config_get_int(c, "metadata.snapshot.interval.records");
    s.max_frame_bytes = (size_t)config_get_int(c, "rpc.max.frame.bytes");
    s.max_record_bytes = (uint32_t)(s.max_frame_bytes - COORD_CONFIG_FRAME_SLACK);
    if (log_level_parse(config_get_string(c, "log.level"), &s.log_level) < 0) {
        snprintf(err, errlen, "invalid value for 'log.level'");
        return -EINVAL;
    }
    if (log_format_parse(config_get_string(c, "log.format"), &s.log_format) < 0) {
        snprintf(err, errlen, "invalid value for 'log.format'");
        return -EINVAL;
    }
    int r = resolve_voters(c, &s, err, errlen);
    if (r < 0)
        return r;
    *ret = s;
    return 0;
}
