/* reassign: `weir reassign generate|execute|verify|cancel|list` and the moves
 * behind `weir cluster rebalance|decommission`.
 *
 * Plans are Kafka's reassignment JSON, the format kafka-reassign-partitions.sh
 * reads and writes: {"version":1,"partitions":[{"topic","partition","replicas"}]}
 * (read with jansson; "log_dirs" is accepted and must be "any"). The cluster's
 * state comes from Metadata v9 (brokers, racks, replicas); moves go through
 * AlterPartitionReassignments (45) and ListPartitionReassignments (46) with the
 * generated codec (raw.c), as librdkafka 2.0.2 has neither. The planning is
 * cli/plan.c. A plan is checked in full before anything is sent: one bad
 * partition refuses the whole plan and nothing moves. */
#include "cli/reassign.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/logdirs.h"
#include "cli/out.h"
#include "cli/plan.h"
#include "cli/raw.h"

#define THROTTLE_RATE_LEADER       "leader.replication.throttled.rate"
#define THROTTLE_RATE_FOLLOWER     "follower.replication.throttled.rate"
#define THROTTLE_REPLICAS_LEADER   "leader.replication.throttled.replicas"
#define THROTTLE_REPLICAS_FOLLOWER "follower.replication.throttled.replicas"
/* The coordinator's per-broker placement flag (coordinator/controller.h). */
#define DECOMMISSIONED_KEY "broker.decommissioned"

/* ---- the cluster as Metadata shows it ---- */

struct md_broker {
    int32_t id;
    char *rack;
};

struct md_part {
    char *topic;
    int32_t partition;
    int32_t *replicas;
    int n_replicas;
};

struct md {
    struct md_broker *brokers;
    size_t n_brokers;
    struct md_part *parts;
    size_t n_parts;
};

static void md_free(struct md *m)
{
    for (size_t i = 0; i < m->n_brokers; i++)
        free(m->brokers[i].rack);
    for (size_t i = 0; i < m->n_parts; i++) {
        free(m->parts[i].topic);
        free(m->parts[i].replicas);
    }
    free(m->brokers);
    free(m->parts);
    memset(m, 0, sizeof(*m));
}

/* Brokers and the partitions of @topics (NULL: every topic, internal ones
 * included). An unknown topic is an error. */
static int md_load(struct raw_conn *rc, const char *const *topics, int n_topics, struct md *ret)
{
    struct kafka_metadata_response resp;
    if (raw_metadata(rc, topics, n_topics, &resp))
        return -1;
    struct md m = {0};
    m.brokers = calloc((size_t)resp.n_brokers + 1, sizeof(*m.brokers));
    size_t np = 0;
    for (int32_t t = 0; t < resp.n_topics; t++)
        np += (size_t)resp.topics[t].n_partitions;
    m.parts = calloc(np + 1, sizeof(*m.parts));
    if (!m.brokers || !m.parts) {
        md_free(&m);
        cli_err("out of memory");
        return -1;
    }
    for (int32_t b = 0; b < resp.n_brokers; b++) {
        m.brokers[m.n_brokers].id = resp.brokers[b].node_id;
        m.brokers[m.n_brokers++].rack =
            resp.brokers[b].rack.len > 0 ? buf_slice_strdup(resp.brokers[b].rack) : NULL;
    }
    for (int32_t t = 0; t < resp.n_topics; t++) {
        const struct kafka_metadata_response_topic *tp = &resp.topics[t];
        if (tp->error_code) {
            cli_err("%s: %s: %s", raw_str(tp->name), cli_kerr_name(tp->error_code),
                    tp->error_code == 3 ? "the topic does not exist" : "no metadata");
            md_free(&m);
            return -1;
        }
        for (int32_t p = 0; p < tp->n_partitions; p++) {
            const struct kafka_metadata_response_partition *pp = &tp->partitions[p];
            struct md_part *mp = &m.parts[m.n_parts++];
            mp->topic = buf_slice_strdup(tp->name);
            mp->partition = pp->partition_index;
            mp->n_replicas = pp->n_replica_nodes;
            mp->replicas = calloc((size_t)pp->n_replica_nodes + 1, sizeof(int32_t));
            if (mp->replicas && pp->n_replica_nodes > 0)
                memcpy(mp->replicas, pp->replica_nodes,
                       (size_t)pp->n_replica_nodes * sizeof(int32_t));
        }
    }
    *ret = m;
    return 0;
}

static const struct md_part *md_find(const struct md *m, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < m->n_parts; i++)
        if (m->parts[i].partition == partition && strcmp(m->parts[i].topic, topic) == 0)
            return &m->parts[i];
    return NULL;
}

static bool md_has_broker(const struct md *m, int32_t id)
{
    for (size_t i = 0; i < m->n_brokers; i++)
        if (m->brokers[i].id == id)
            return true;
    return false;
}

static bool md_has_topic(const struct md *m, const char *topic)
{
    for (size_t i = 0; i < m->n_parts; i++)
        if (strcmp(m->parts[i].topic, topic) == 0)
            return true;
    return false;
}

/* ---- plans ---- */

struct move {
    char *topic;
    int32_t partition;
    int32_t *replicas;
    int n_replicas;
};

struct moves {
    struct move *v;
    size_t n;
};

static void moves_free(struct moves *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->v[i].topic);
        free(ms->v[i].replicas);
    }
    free(ms->v);
    ms->v = NULL;
    ms->n = 0;
}

static int moves_add(struct moves *ms, const char *topic, int32_t partition,
                     const int32_t *replicas, int n)
{
    struct move *v = realloc(ms->v, (ms->n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    ms->v = v;
    struct move *mv = &v[ms->n];
    mv->topic = strdup(topic);
    mv->partition = partition;
    mv->n_replicas = n;
    mv->replicas = calloc((size_t)n + 1, sizeof(int32_t));
    if (!mv->topic || !mv->replicas) {
        free(mv->topic);
        free(mv->replicas);
        return -ENOMEM;
    }
    if (n > 0)
        memcpy(mv->replicas, replicas, (size_t)n * sizeof(int32_t));
    ms->n++;
    return 0;
}

/* Kafka's reassignment JSON of @ms. */
static void moves_print_json(FILE *f, const struct moves *ms)
{
    fputs("{\"version\":1,\"partitions\":[", f);
    for (size_t i = 0; i < ms->n; i++) {
        fputs(i ? ",{\"topic\":" : "{\"topic\":", f);
        json_str(f, ms->v[i].topic, -1);
        fprintf(f, ",\"partition\":%d,\"replicas\":[", (int)ms->v[i].partition);
        for (int r = 0; r < ms->v[i].n_replicas; r++)
            fprintf(f, "%s%d", r ? "," : "", (int)ms->v[i].replicas[r]);
        fputs("]}", f);
    }
    fputs("]}", f);
}

/* Reads and checks the shape of a plan file; one error line on failure. */
static int plan_read(const char *path, struct moves *ret)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (jerr.line < 0)
            cli_err("%s: %s", path, jerr.text);
        else
            cli_err("%s: line %d column %d: malformed JSON: %s", path, jerr.line, jerr.column,
                    jerr.text);
        return -1;
    }
    struct moves ms = {0};
    json_t *ver = json_object_get(root, "version");
    json_t *parts = json_object_get(root, "partitions");
    if (!json_is_object(root) || !json_is_integer(ver) || json_integer_value(ver) != 1) {
        cli_err("%s: not a reassignment plan: expected {\"version\":1,\"partitions\":[...]}", path);
        goto fail;
    }
    if (!json_is_array(parts)) {
        cli_err("%s: \"partitions\" must be an array", path);
        goto fail;
    }
    size_t i;
    json_t *e;
    json_array_foreach(parts, i, e)
    {
        json_t *t = json_object_get(e, "topic"), *p = json_object_get(e, "partition"),
               *rs = json_object_get(e, "replicas"), *dirs = json_object_get(e, "log_dirs");
        if (!json_is_string(t) || !json_is_integer(p) || json_integer_value(p) < 0 ||
            json_integer_value(p) > INT32_MAX || !json_is_array(rs)) {
            cli_err("%s: partitions[%zu]: needs \"topic\" (string), \"partition\" (integer >= 0) "
                    "and \"replicas\" (array of broker ids)",
                    path, i);
            goto fail;
        }
        const char *topic = json_string_value(t);
        int32_t part = (int32_t)json_integer_value(p);
        size_t n = json_array_size(rs);
        if (n == 0) {
            cli_err("%s: %s-%d: empty replica list", path, topic, (int)part);
            goto fail;
        }
        if (n > 64) {
            cli_err("%s: %s-%d: more than 64 replicas", path, topic, (int)part);
            goto fail;
        }
        int32_t reps[64];
        for (size_t r = 0; r < n; r++) {
            json_t *b = json_array_get(rs, r);
            if (!json_is_integer(b) || json_integer_value(b) < 0 ||
                json_integer_value(b) > INT32_MAX) {
                cli_err("%s: %s-%d: replica %zu is not a broker id", path, topic, (int)part, r);
                goto fail;
            }
            reps[r] = (int32_t)json_integer_value(b);
            for (size_t q = 0; q < r; q++)
                if (reps[q] == reps[r]) {
                    cli_err("%s: %s-%d: broker %d is listed twice in the replicas", path, topic,
                            (int)part, (int)reps[r]);
                    goto fail;
                }
        }
        if (dirs && !json_is_null(dirs)) {
            size_t k;
            json_t *d;
            bool any = json_is_array(dirs) && json_array_size(dirs) == n;
            json_array_foreach(dirs, k, d) any =
                any && json_is_string(d) && strcmp(json_string_value(d), "any") == 0;
            if (!any) {
                cli_err("%s: %s-%d: log_dirs other than \"any\" are not supported (Weir has one "
                        "log directory per broker)",
                        path, topic, (int)part);
                goto fail;
            }
        }
        for (size_t q = 0; q < ms.n; q++)
            if (ms.v[q].partition == part && strcmp(ms.v[q].topic, topic) == 0) {
                cli_err("%s: %s-%d appears twice", path, topic, (int)part);
                goto fail;
            }
        if (moves_add(&ms, topic, part, reps, (int)n)) {
            cli_err("out of memory");
            goto fail;
        }
    }
    if (ms.n == 0) {
        cli_err("%s: the plan has no partitions", path);
        goto fail;
    }
    json_decref(root);
    *ret = ms;
    return 0;
fail:
    json_decref(root);
    moves_free(&ms);
    return -1;
}

/* Every partition known, every broker registered; one error line for the
 * first problem. */
static int plan_check(const struct md *m, const struct moves *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        const struct move *mv = &ms->v[i];
        if (!md_find(m, mv->topic, mv->partition)) {
            cli_err("%s-%d: UNKNOWN_TOPIC_OR_PARTITION: %s", mv->topic, (int)mv->partition,
                    md_has_topic(m, mv->topic) ? "the topic has no such partition"
                                               : "the topic does not exist");
            return -1;
        }
        for (int r = 0; r < mv->n_replicas; r++)
            if (!md_has_broker(m, mv->replicas[r])) {
                cli_err("%s-%d: broker %d is not a live registered broker", mv->topic,
                        (int)mv->partition, (int)mv->replicas[r]);
                return -1;
            }
    }
    return 0;
}

/* The current assignment of the partitions of @ms. */
static int current_of(const struct md *m, const struct moves *ms, struct moves *ret)
{
    struct moves cur = {0};
    for (size_t i = 0; i < ms->n; i++) {
        const struct md_part *p = md_find(m, ms->v[i].topic, ms->v[i].partition);
        if (p && moves_add(&cur, p->topic, p->partition, p->replicas, p->n_replicas)) {
            moves_free(&cur);
            return -ENOMEM;
        }
    }
    *ret = cur;
    return 0;
}

static bool same_list(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0;
}

/* ---- the Kafka APIs ---- */

static buf_slice slice_of(const char *s)
{
    return (buf_slice){(const uint8_t *)s, (int32_t)strlen(s)};
}

/* AlterPartitionReassignments for @ms (cancel: null targets). Prints one line
 * per refused partition; returns the number refused, or -1 when the request
 * failed as a whole. */
static int send_alter(const struct cli *c, struct raw_conn *rc, const struct moves *ms, bool cancel)
{
    struct kafka_alter_partition_reassignments_request req;
    kafka_alter_partition_reassignments_request_init(&req);
    req.timeout_ms = c->timeout_ms;
    struct kafka_alter_partition_reassignments_request_topic *ts = calloc(ms->n + 1, sizeof(*ts));
    struct kafka_alter_partition_reassignments_request_partition *ps =
        calloc(ms->n + 1, sizeof(*ps));
    int failed = -1;
    if (!ts || !ps)
        goto out;
    /* one topic entry per distinct topic, its partitions together */
    for (size_t i = 0; i < ms->n; i++) {
        bool seen = false;
        for (int32_t k = 0; k < req.n_topics && !seen; k++)
            seen = ts[k].name.len == (int32_t)strlen(ms->v[i].topic) &&
                   memcmp(ts[k].name.ptr, ms->v[i].topic, (size_t)ts[k].name.len) == 0;
        if (!seen)
            ts[req.n_topics++].name = slice_of(ms->v[i].topic);
    }
    /* lay partitions out topic by topic */
    size_t at = 0;
    for (int32_t k = 0; k < req.n_topics; k++) {
        ts[k].partitions = &ps[at];
        for (size_t i = 0; i < ms->n; i++) {
            if ((int32_t)strlen(ms->v[i].topic) != ts[k].name.len ||
                memcmp(ts[k].name.ptr, ms->v[i].topic, (size_t)ts[k].name.len) != 0)
                continue;
            ps[at].partition_index = ms->v[i].partition;
            ps[at].n_replicas = cancel ? -1 : ms->v[i].n_replicas;
            ps[at].replicas = cancel ? NULL : ms->v[i].replicas;
            ts[k].n_partitions++;
            at++;
        }
    }
    req.topics = ts;
    struct kafka_alter_partition_reassignments_response resp;
    if (raw_call(rc, KAFKA_API_ALTER_PARTITION_REASSIGNMENTS, 0, &req, &resp))
        goto out;
    if (resp.error_code) {
        cli_err("AlterPartitionReassignments: %s: %s", cli_kerr_name(resp.error_code),
                resp.error_message.len > 0 ? raw_str(resp.error_message) : "refused");
        goto out;
    }
    failed = 0;
    for (int32_t t = 0; t < resp.n_responses; t++)
        for (int32_t p = 0; p < resp.responses[t].n_partitions; p++) {
            const struct kafka_alter_partition_reassignments_response_partition *pp =
                &resp.responses[t].partitions[p];
            if (!pp->error_code)
                continue;
            failed++;
            cli_err("%s-%d: %s: %s", raw_str(resp.responses[t].name), (int)pp->partition_index,
                    cli_kerr_name(pp->error_code),
                    pp->error_message.len > 0 ? raw_str(pp->error_message) : "refused");
        }
out:
    free(ts);
    free(ps);
    return failed;
}

/* The partitions being moved (every one: @filter NULL), with their adding and
 * removing replicas as lists in @ret (replicas = the full current set). */
struct moving {
    struct moves all, adding, removing;
};

static void moving_free(struct moving *mv)
{
    moves_free(&mv->all);
    moves_free(&mv->adding);
    moves_free(&mv->removing);
}

static int list_moving(const struct cli *c, struct raw_conn *rc, struct moving *ret)
{
    struct kafka_list_partition_reassignments_request req;
    kafka_list_partition_reassignments_request_init(&req);
    req.timeout_ms = c->timeout_ms;
    req.n_topics = -1;
    struct kafka_list_partition_reassignments_response resp;
    if (raw_call(rc, KAFKA_API_LIST_PARTITION_REASSIGNMENTS, 0, &req, &resp))
        return -1;
    if (resp.error_code) {
        cli_err("ListPartitionReassignments: %s: %s", cli_kerr_name(resp.error_code),
                resp.error_message.len > 0 ? raw_str(resp.error_message) : "refused");
        return -1;
    }
    struct moving m = {0};
    for (int32_t t = 0; t < resp.n_topics; t++) {
        char *name = buf_slice_strdup(resp.topics[t].name);
        for (int32_t p = 0; p < resp.topics[t].n_partitions && name; p++) {
            const struct kafka_list_partition_reassignments_response_partition *pp =
                &resp.topics[t].partitions[p];
            if (moves_add(&m.all, name, pp->partition_index, pp->replicas, pp->n_replicas) ||
                moves_add(&m.adding, name, pp->partition_index, pp->adding_replicas,
                          pp->n_adding_replicas) ||
                moves_add(&m.removing, name, pp->partition_index, pp->removing_replicas,
                          pp->n_removing_replicas)) {
                free(name);
                moving_free(&m);
                cli_err("out of memory");
                return -1;
            }
        }
        free(name);
    }
    *ret = m;
    return 0;
}

static const struct move *moves_find(const struct moves *ms, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < ms->n; i++)
        if (ms->v[i].partition == partition && strcmp(ms->v[i].topic, topic) == 0)
            return &ms->v[i];
    return NULL;
}

/* Preferred leader election (ElectLeaders v1, type 0) for the partitions of
 * @ms, so that leadership follows the new first replicas at once instead of at
 * the coordinator's next imbalance check. Returns the number of partitions
 * whose preferred replica could not take over (ELECTION_NOT_NEEDED is
 * success), or -1 when the request failed. */
static int elect_preferred(const struct cli *c, struct raw_conn *rc, const struct moves *ms)
{
    struct kafka_elect_leaders_request_topic *ts = calloc(ms->n + 1, sizeof(*ts));
    int32_t *ps = calloc(ms->n + 1, sizeof(*ps));
    int failed = -1;
    if (!ts || !ps)
        goto out;
    struct kafka_elect_leaders_request req;
    kafka_elect_leaders_request_init(&req);
    req.election_type = 0;
    req.timeout_ms = c->timeout_ms;
    req.n_topic_partitions = 0;
    size_t at = 0;
    for (size_t i = 0; i < ms->n; i++) {
        bool seen = false;
        for (int32_t k = 0; k < req.n_topic_partitions && !seen; k++)
            seen = ts[k].topic.len == (int32_t)strlen(ms->v[i].topic) &&
                   memcmp(ts[k].topic.ptr, ms->v[i].topic, (size_t)ts[k].topic.len) == 0;
        if (seen)
            continue;
        struct kafka_elect_leaders_request_topic *t = &ts[req.n_topic_partitions++];
        t->topic = slice_of(ms->v[i].topic);
        t->partitions = &ps[at];
        for (size_t k = i; k < ms->n; k++)
            if (strcmp(ms->v[k].topic, ms->v[i].topic) == 0) {
                ps[at++] = ms->v[k].partition;
                t->n_partitions++;
            }
    }
    req.topic_partitions = ts;
    struct kafka_elect_leaders_response resp;
    if (raw_call(rc, KAFKA_API_ELECT_LEADERS, 1, &req, &resp))
        goto out;
    if (resp.error_code) {
        cli_err("ElectLeaders: %s", cli_kerr_name(resp.error_code));
        goto out;
    }
    failed = 0;
    for (int32_t t = 0; t < resp.n_replica_election_results; t++)
        for (int32_t p = 0; p < resp.replica_election_results[t].n_partition_result; p++) {
            int16_t e = resp.replica_election_results[t].partition_result[p].error_code;
            failed += e != 0 && e != 84; /* ELECTION_NOT_NEEDED */
        }
out:
    free(ts);
    free(ps);
    return failed;
}

/* ---- throttles ---- */

/* The value of broker config @key on broker @id (DescribeConfigs, served by
 * that broker) into @buf: 1 when the broker lists the key, 0 when it does not,
 * -1 after printing an error. */
static int broker_config_get(const struct cli *c, rd_kafka_t *rk, int32_t id, const char *key,
                             char *buf, size_t len)
{
    char name[16], errstr[256];
    snprintf(name, sizeof(name), "%d", (int)id);
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, c);
    rd_kafka_AdminOptions_set_broker(o, id, errstr, sizeof(errstr));
    rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
    int found = -1;
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, c->timeout_ms);
    if (ev) {
        size_t n, ne;
        const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &n);
        if (n == 1 && !rd_kafka_ConfigResource_error(rs[0])) {
            const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rs[0], &ne);
            found = 0;
            for (size_t i = 0; i < ne && !found; i++)
                if (strcmp(rd_kafka_ConfigEntry_name(es[i]), key) == 0) {
                    const char *v = rd_kafka_ConfigEntry_value(es[i]);
                    snprintf(buf, len, "%s", v ? v : "");
                    found = 1;
                }
        } else {
            char b[512];
            cli_err("DescribeConfigs of broker %d: %s", (int)id,
                    n == 1 ? cli_kerr(rd_kafka_ConfigResource_error(rs[0]),
                                      rd_kafka_ConfigResource_error_string(rs[0]), b, sizeof(b))
                           : "no answer");
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    return found;
}

/* Whether the brokers know the replication throttle keys (asked of broker
 * @id). -1 after printing an error. */
static int throttle_supported(const struct cli *c, int32_t id)
{
    rd_kafka_t *rk = cli_admin_new(c);
    if (!rk)
        return -1;
    char v[64];
    int r = broker_config_get(c, rk, id, THROTTLE_RATE_LEADER, v, sizeof(v));
    rd_kafka_destroy(rk);
    return r;
}

/* Drops from @m's brokers those with broker.decommissioned=true, which take no
 * new replica. -1 after printing an error. */
static int drop_decommissioned(const struct cli *c, struct md *m)
{
    rd_kafka_t *rk = cli_admin_new(c);
    if (!rk)
        return -1;
    size_t kept = 0;
    int r = 0;
    for (size_t i = 0; i < m->n_brokers; i++) {
        char v[16] = "";
        int f = broker_config_get(c, rk, m->brokers[i].id, DECOMMISSIONED_KEY, v, sizeof(v));
        if (f < 0) {
            r = -1;
            break;
        }
        if (f == 1 && strcasecmp(v, "true") == 0) {
            free(m->brokers[i].rack);
            continue;
        }
        m->brokers[kept++] = m->brokers[i];
    }
    if (r == 0)
        m->n_brokers = kept;
    rd_kafka_destroy(rk);
    return r;
}

/* Sets broker.decommissioned=true on @id (@on) or removes it. */
static int set_decommissioned(struct raw_conn *rc, int32_t id, bool on)
{
    char name[16];
    snprintf(name, sizeof(name), "%d", (int)id);
    struct kafka_incremental_alter_configs_request_config cfg = {
        .name = slice_of(DECOMMISSIONED_KEY),
        .config_operation = on ? 0 : 1,
        .value = on ? slice_of("true") : (buf_slice){NULL, -1}};
    struct kafka_incremental_alter_configs_request_resource res = {.resource_type =
                                                                       RD_KAFKA_RESOURCE_BROKER,
                                                                   .resource_name = slice_of(name),
                                                                   .n_configs = 1,
                                                                   .configs = &cfg};
    struct kafka_incremental_alter_configs_request req;
    kafka_incremental_alter_configs_request_init(&req);
    req.n_resources = 1;
    req.resources = &res;
    struct kafka_incremental_alter_configs_response resp;
    if (raw_call(rc, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 1, &req, &resp))
        return -1;
    for (int32_t i = 0; i < resp.n_responses; i++)
        if (resp.responses[i].error_code) {
            cli_err("broker %d: %s: %s", (int)id, cli_kerr_name(resp.responses[i].error_code),
                    resp.responses[i].error_message.len > 0
                        ? raw_str(resp.responses[i].error_message)
                        : "the cluster refused " DECOMMISSIONED_KEY);
            return -1;
        }
    return 0;
}

/* Appends "p:b" for each broker of @ids to the comma list @s (capacity @cap). */
static void throttle_list_add(char *s, size_t cap, int32_t p, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        size_t l = strlen(s);
        snprintf(s + l, cap - l, "%s%d:%d", l ? "," : "", (int)p, (int)ids[i]);
    }
}

/* Sets (or with @rate < 0 deletes) the replication throttles for the moves
 * @target from @current: the rates on every broker, the leader side on the
 * current replicas and the follower side on the adding ones, per topic, as
 * kafka-reassign-partitions.sh does. */
static int throttle_apply(const struct cli *c, struct raw_conn *rc, const struct md *m,
                          const struct moves *target, const struct moves *current, int64_t rate)
{
    size_t cap_res = m->n_brokers + target->n + 1;
    struct kafka_incremental_alter_configs_request_resource *res = calloc(cap_res, sizeof(*res));
    struct kafka_incremental_alter_configs_request_config *cfg = calloc(cap_res * 2, sizeof(*cfg));
    char(*ids)[16] = calloc(m->n_brokers + 1, sizeof(*ids));
    char **lists = calloc(target->n * 2 + 1, sizeof(*lists));
    char rate_s[32];
    snprintf(rate_s, sizeof(rate_s), "%lld", (long long)rate);
    int ret = -1, nres = 0, ncfg = 0, nlists = 0;
    if (!res || !cfg || !ids || !lists)
        goto out;
    int8_t op = rate < 0 ? 1 : 0;
    for (size_t b = 0; b < m->n_brokers; b++) {
        snprintf(ids[b], sizeof(ids[b]), "%d", (int)m->brokers[b].id);
        res[nres] = (struct kafka_incremental_alter_configs_request_resource){
            .resource_type = RD_KAFKA_RESOURCE_BROKER,
            .resource_name = slice_of(ids[b]),
            .n_configs = 2,
            .configs = &cfg[ncfg]};
        const char *keys[2] = {THROTTLE_RATE_LEADER, THROTTLE_RATE_FOLLOWER};
        for (int k = 0; k < 2; k++)
            cfg[ncfg++] = (struct kafka_incremental_alter_configs_request_config){
                .name = slice_of(keys[k]),
                .config_operation = op,
                .value = op ? (buf_slice){NULL, -1} : slice_of(rate_s)};
        nres++;
    }
    for (size_t i = 0; i < target->n; i++) {
        const char *topic = target->v[i].topic;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(target->v[k].topic, topic) == 0;
        if (seen)
            continue;
        size_t cap = 16 * 64 * (target->n + 1);
        char *lead = calloc(1, cap), *follow = calloc(1, cap);
        lists[nlists++] = lead;
        lists[nlists++] = follow;
        if (!lead || !follow)
            goto out;
        for (size_t k = i; k < target->n; k++) {
            const struct move *t = &target->v[k];
            if (strcmp(t->topic, topic))
                continue;
            const struct move *cu = moves_find(current, topic, t->partition);
            if (!cu)
                continue;
            throttle_list_add(lead, cap, t->partition, cu->replicas, cu->n_replicas);
            for (int r = 0; r < t->n_replicas; r++) {
                bool had = false;
                for (int q = 0; q < cu->n_replicas && !had; q++)
                    had = cu->replicas[q] == t->replicas[r];
                if (!had)
                    throttle_list_add(follow, cap, t->partition, &t->replicas[r], 1);
            }
        }
        res[nres] = (struct kafka_incremental_alter_configs_request_resource){
            .resource_type = RD_KAFKA_RESOURCE_TOPIC,
            .resource_name = slice_of(topic),
            .n_configs = 2,
            .configs = &cfg[ncfg]};
        cfg[ncfg++] = (struct kafka_incremental_alter_configs_request_config){
            .name = slice_of(THROTTLE_REPLICAS_LEADER),
            .config_operation = op,
            .value = op ? (buf_slice){NULL, -1} : slice_of(lead)};
        cfg[ncfg++] = (struct kafka_incremental_alter_configs_request_config){
            .name = slice_of(THROTTLE_REPLICAS_FOLLOWER),
            .config_operation = op,
            .value = op ? (buf_slice){NULL, -1} : slice_of(follow)};
        nres++;
    }
    struct kafka_incremental_alter_configs_request req;
    kafka_incremental_alter_configs_request_init(&req);
    req.n_resources = nres;
    req.resources = res;
    struct kafka_incremental_alter_configs_response resp;
    if (raw_call(rc, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 1, &req, &resp))
        goto out;
    ret = 0;
    for (int32_t i = 0; i < resp.n_responses; i++)
        if (resp.responses[i].error_code) {
            cli_err(
                "throttle on %s %s: %s: %s",
                resp.responses[i].resource_type == RD_KAFKA_RESOURCE_BROKER ? "broker" : "topic",
                raw_str(resp.responses[i].resource_name),
                cli_kerr_name(resp.responses[i].error_code),
                resp.responses[i].error_message.len > 0 ? raw_str(resp.responses[i].error_message)
                                                        : "refused");
            ret = -1;
        }
out:
    for (int i = 0; i < nlists; i++)
        free(lists[i]);
    free(lists);
    free(ids);
    free(cfg);
    free(res);
    return ret;
}

/* ---- shared steps ---- */

/* Checks @target against the cluster, prints the rollback plan, sets the
 * throttle (@throttle > 0) and starts the moves. Partitions whose target is
 * their current list are left alone. Returns an exit status. */
static int execute_moves(const struct cli *c, struct raw_conn *rc, const struct md *m,
                         const struct moves *target, int64_t throttle, bool quiet)
{
    if (plan_check(m, target))
        return CLI_EXIT_FAIL;
    if (throttle > 0) {
        int s = m->n_brokers ? throttle_supported(c, m->brokers[0].id) : 0;
        if (s < 0)
            return CLI_EXIT_FAIL;
        if (s == 0) {
            cli_err("--throttle: the brokers do not support replication throttles (broker %d "
                    "has no %s); nothing moved",
                    m->n_brokers ? (int)m->brokers[0].id : -1, THROTTLE_RATE_LEADER);
            return CLI_EXIT_FAIL;
        }
    }
    struct moves cur = {0}, todo = {0};
    int rc_exit = CLI_EXIT_FAIL;
    if (current_of(m, target, &cur))
        goto out;
    for (size_t i = 0; i < target->n; i++) {
        const struct move *t = &target->v[i];
        const struct move *cu = moves_find(&cur, t->topic, t->partition);
        if (cu && same_list(cu->replicas, cu->n_replicas, t->replicas, t->n_replicas))
            continue;
        if (moves_add(&todo, t->topic, t->partition, t->replicas, t->n_replicas))
            goto out;
    }
    if (!quiet && !c->json) {
        printf("Current partition replica assignment\n\n");
        moves_print_json(stdout, &cur);
        printf("\n\nSave this to use as the --plan option during rollback\n");
    }
    if (todo.n == 0) {
        if (c->json)
            printf("{\"started\":[],\"rollback\":");
        else
            printf("Nothing to move: every partition already has its target replicas.\n");
        rc_exit = CLI_EXIT_OK;
        goto done_json;
    }
    if (throttle > 0 && throttle_apply(c, rc, m, &todo, &cur, throttle))
        goto out;
    int failed = send_alter(c, rc, &todo, false);
    if (failed < 0)
        goto out;
    rc_exit = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    if (c->json) {
        printf("{\"started\":");
        struct out *o = out_new(c, 0);
        for (size_t i = 0; i < todo.n; i++) {
            out_row(o);
            out_str(o, "topic", todo.v[i].topic);
            out_int(o, "partition", todo.v[i].partition);
        }
        out_end(o, ",\"rollback\":");
    } else {
        printf("Started the reassignment of %zu partition%s%s%s.\n", todo.n - (size_t)failed,
               todo.n - (size_t)failed == 1 ? "" : "s", failed ? "; refused: " : "",
               failed ? "see above" : "");
        if (throttle > 0)
            printf("Throttle set to %lld B/s; 'weir reassign verify' removes it once the moves "
                   "are done.\n",
                   (long long)throttle);
    }
done_json:
    if (c->json) {
        moves_print_json(stdout, &cur);
        printf("}\n");
    }
out:
    moves_free(&cur);
    moves_free(&todo);
    return rc_exit;
}

/* Removes the throttles if the cluster has them (after every move is done). */
static void throttle_clear(const struct cli *c, struct raw_conn *rc, const struct md *m,
                           const struct moves *target)
{
    if (m->n_brokers == 0 || throttle_supported(c, m->brokers[0].id) != 1)
        return;
    struct moves none = {0};
    if (throttle_apply(c, rc, m, target, &none, -1) == 0 && !c->json)
        printf("Throttles removed.\n");
}

static volatile sig_atomic_t stop_waiting;

static void on_signal(int sig)
{
    (void)sig;
    stop_waiting = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes caught up by the adding replicas of the partitions still moving
 * (DescribeLogDirs to every broker): per partition, the sum over its adding
 * replicas of their log size (capped at the leader's) against the leader's
 * size times their number. The leader's size is the largest size among the
 * replicas that are not being added: the leader's log is never behind an ISR
 * member's. A finished partition keeps its last target as fully caught up, so
 * the totals only grow; one that finished before any sample counts one
 * replica's size. Best effort: without an answer the figures stay. */
static void bytes_sample(const struct cli *c, const struct moving *mv, const struct moves *target,
                         int64_t *have, int64_t *want)
{
    struct ld_rows rows;
    int unreachable;
    if (ld_collect(c, NULL, 0, &rows, &unreachable))
        return;
    for (size_t i = 0; i < target->n; i++) {
        const struct move *all = moves_find(&mv->all, target->v[i].topic, target->v[i].partition);
        if (!all) {
            /* Done before any sample saw it move: one replica's worth (the
             * largest of its replicas now), so the totals still count it. */
            for (int k = 0; want[i] == 0 && k < target->v[i].n_replicas; k++) {
                int64_t sz = ld_size(&rows, target->v[i].replicas[k], target->v[i].topic,
                                     target->v[i].partition);
                if (sz > have[i])
                    have[i] = sz;
            }
            if (want[i] == 0)
                want[i] = have[i];
            have[i] = want[i];
            continue;
        }
        const struct move *add =
            moves_find(&mv->adding, target->v[i].topic, target->v[i].partition);
        int64_t lead = 0;
        for (int k = 0; k < all->n_replicas; k++) {
            bool adding = false;
            for (int j = 0; add && j < add->n_replicas; j++)
                adding |= add->replicas[j] == all->replicas[k];
            if (adding)
                continue;
            int64_t sz = ld_size(&rows, all->replicas[k], all->topic, all->partition);
            if (sz > lead)
                lead = sz;
        }
        int64_t h = 0, w = 0;
        for (int j = 0; add && j < add->n_replicas; j++) {
            int64_t sz = ld_size(&rows, add->replicas[j], all->topic, all->partition);
            h += sz < 0 ? 0 : sz < lead ? sz : lead;
            w += lead;
        }
        have[i] = h;
        want[i] = w;
    }
    ld_rows_free(&rows);
}

static void human_bytes(char *buf, size_t cap, double b)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* Waits until no partition of @target is listed as moving; progress on stderr
 * when it is a terminal: partitions moved, bytes the adding replicas caught
 * up (bytes_sample) with the byte rate, and an ETA from that rate (from the
 * partition rate before any byte moved). Returns 0 when done, -ETIMEDOUT
 * after @timeout_s (0: none), -EINTR on a signal. */
static int wait_moves(const struct cli *c, struct raw_conn *rc, const struct moves *target,
                      double timeout_s)
{
    bool tty = isatty(STDERR_FILENO);
    double t0 = now_s();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int64_t *have = calloc(target->n + 1, sizeof(*have));
    int64_t *want = calloc(target->n + 1, sizeof(*want));
    if (!have || !want) {
        free(have);
        free(want);
        cli_err("out of memory");
        return -ENOMEM;
    }
    int64_t have0 = -1;
    double t_have0 = t0;
    int r = 0;
    for (;;) {
        struct moving mv;
        if (list_moving(c, rc, &mv)) {
            r = -EIO;
            break;
        }
        size_t left = 0;
        for (size_t i = 0; i < target->n; i++)
            left += moves_find(&mv.all, target->v[i].topic, target->v[i].partition) != NULL;
        if (tty)
            bytes_sample(c, &mv, target, have, want);
        moving_free(&mv);
        size_t done = target->n - left;
        double el = now_s() - t0;
        if (tty) {
            int64_t h = 0, w = 0;
            for (size_t i = 0; i < target->n; i++) {
                h += have[i];
                w += want[i];
            }
            if (have0 < 0) {
                have0 = h;
                t_have0 = now_s();
            }
            double rate = now_s() - t_have0 > 0.5 ? (double)(h - have0) / (now_s() - t_have0) : 0;
            char eta[32] = "--", hs[24], ws[24], rs[24];
            if (rate > 0 && w > h)
                snprintf(eta, sizeof(eta), "%.0fs", (double)(w - h) / rate);
            else if (done > 0 && left > 0)
                snprintf(eta, sizeof(eta), "%.0fs", el / (double)done * (double)left);
            human_bytes(hs, sizeof(hs), (double)h);
            human_bytes(ws, sizeof(ws), (double)w);
            human_bytes(rs, sizeof(rs), rate);
            fprintf(stderr,
                    "\r\033[Kmoved %zu/%zu partitions, caught up %s/%s (%s/s), %.0fs elapsed, "
                    "ETA %s",
                    done, target->n, hs, ws, rs, el, left ? eta : "0s");
        }
        if (left == 0)
            break;
        if (stop_waiting) {
            r = -EINTR;
            break;
        }
        if (timeout_s > 0 && el > timeout_s) {
            r = -ETIMEDOUT;
            break;
        }
        for (double w = now_s(); !stop_waiting && now_s() - w < 1.0;)
            usleep(50000);
    }
    if (tty)
        fputc('\n', stderr);
    free(have);
    free(want);
    return r;
}

/* ---- weir reassign ---- */

static const char reassign_usage[] =
    "Usage: weir reassign VERB [FLAGS]\n"
    "\n"
    "Move partition replicas between brokers (Kafka's reassignment JSON plans, as\n"
    "kafka-reassign-partitions.sh reads and writes them).\n"
    "\n"
    "  generate --brokers 1,2,3[,...] [--topics a,b]\n"
    "             print the current assignment and a balanced plan over those brokers\n"
    "             (every topic unless --topics; racks respected, fewest moves)\n"
    "  execute  --plan FILE [--throttle BYTES_PER_SEC]\n"
    "             start the moves; prints the current assignment for rollback\n"
    "  verify   --plan FILE   done / in progress per partition; exit 1 until all done;\n"
    "             when all are done, removes the replication throttles\n"
    "  cancel   --plan FILE | --all\n"
    "             return partitions being moved to their original replicas\n"
    "  list       the partitions being moved: replicas, adding, removing\n"
    "\n"
    "Examples:\n"
    "  weir reassign generate --brokers 1,2,3,4 --topics orders > plan.txt\n"
    "  weir reassign execute --plan plan.json --throttle 50000000\n"
    "  weir reassign verify --plan plan.json\n";

static const struct option reassign_opts[] = {
    {"brokers", required_argument, NULL, 'B'},
    {"topics", required_argument, NULL, 't'},
    {"plan", required_argument, NULL, 'p'},
    {"throttle", required_argument, NULL, 'r'},
    {"all", no_argument, NULL, 'a'},
    {"help", no_argument, NULL, 'h'},
    {0},
};

/* "1,2,3" into @ret (at most @cap); -1 after a usage error. */
static int parse_ids(const char *s, int32_t *ret, int cap, int *ret_n)
{
    int n = 0;
    char *copy = strdup(s);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (n == cap || cli_parse_i64(tok, &v) || v < 0 || v > INT32_MAX) {
            free(copy);
            return -1;
        }
        for (int k = 0; k < n; k++)
            if (ret[k] == (int32_t)v) {
                free(copy);
                return -1;
            }
        ret[n++] = (int32_t)v;
    }
    free(copy);
    *ret_n = n;
    return n > 0 ? 0 : -1;
}

/* The plan for @m over @brokers into @ret (only partitions that change);
 * @ret_cur gets their current lists. */
static int generate(const struct md *m, const int32_t *brokers, int nb, struct moves *ret,
                    struct moves *ret_cur, size_t *ret_moves)
{
    struct plan_broker *pb = calloc((size_t)nb + 1, sizeof(*pb));
    struct plan_part *pp = calloc(m->n_parts + 1, sizeof(*pp));
    size_t total = 0;
    for (size_t i = 0; i < m->n_parts; i++)
        total += (size_t)m->parts[i].n_replicas;
    int32_t *out = calloc(total + 1, sizeof(*out));
    int r = -1;
    if (!pb || !pp || !out)
        goto out;
    for (int i = 0; i < nb; i++) {
        pb[i].id = brokers[i];
        for (size_t k = 0; k < m->n_brokers; k++)
            if (m->brokers[k].id == brokers[i])
                pb[i].rack = m->brokers[k].rack;
    }
    for (size_t i = 0; i < m->n_parts; i++) {
        pp[i] = (struct plan_part){.topic = m->parts[i].topic,
                                   .partition = m->parts[i].partition,
                                   .replicas = m->parts[i].replicas,
                                   .n_replicas = m->parts[i].n_replicas};
        if (m->parts[i].n_replicas > nb) {
            cli_err("%s-%d has %d replicas but only %d brokers were given", m->parts[i].topic,
                    (int)m->parts[i].partition, m->parts[i].n_replicas, nb);
            goto out;
        }
    }
    if (plan_generate(pb, (size_t)nb, pp, m->n_parts, out)) {
        cli_err("cannot plan: a partition has no replicas or the broker list is invalid");
        goto out;
    }
    *ret_moves = plan_count_moves(pp, m->n_parts, out);
    struct moves t = {0}, cu = {0};
    size_t o = 0;
    for (size_t i = 0; i < m->n_parts; i++) {
        const struct md_part *p = &m->parts[i];
        if (!same_list(p->replicas, p->n_replicas, &out[o], p->n_replicas) &&
            (moves_add(&t, p->topic, p->partition, &out[o], p->n_replicas) ||
             moves_add(&cu, p->topic, p->partition, p->replicas, p->n_replicas))) {
            moves_free(&t);
            moves_free(&cu);
            goto out;
        }
        o += (size_t)p->n_replicas;
    }
    *ret = t;
    *ret_cur = cu;
    r = 0;
out:
    free(pb);
    free(pp);
    free(out);
    return r;
}

static int split_topics(const char *s, char ***ret, int *ret_n)
{
    int n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    char **v = calloc((size_t)n + 1, sizeof(*v));
    char *copy = strdup(s), *save = NULL;
    int k = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        v[k++] = strdup(tok);
    free(copy);
    *ret = v;
    *ret_n = k;
    return k > 0 ? 0 : -1;
}

static int reassign_generate(struct cli *c, const char *brokers_s, const char *topics_s)
{
    int32_t ids[1024];
    int nb = 0;
    if (!brokers_s)
        return cli_usage_err("--brokers is required (the broker ids the plan may use)");
    if (parse_ids(brokers_s, ids, 1024, &nb))
        return cli_usage_err("--brokers: '%s' is not a list of distinct broker ids", brokers_s);
    char **topics = NULL;
    int nt = 0;
    if (topics_s && split_topics(topics_s, &topics, &nt))
        return cli_usage_err("--topics: name at least one topic");
    struct raw_conn *rc;
    int ex = CLI_EXIT_FAIL;
    if (raw_open(c, &rc))
        goto out_topics;
    struct md m = {0};
    if (md_load(rc, (const char *const *)topics, nt, &m))
        goto out;
    for (int i = 0; i < nb; i++)
        if (!md_has_broker(&m, ids[i])) {
            cli_err("broker %d is not a live registered broker", (int)ids[i]);
            goto out_md;
        }
    struct moves plan = {0}, cur = {0};
    size_t nmoves = 0;
    if (generate(&m, ids, nb, &plan, &cur, &nmoves))
        goto out_md;
    if (c->json) {
        printf("{\"current\":");
        moves_print_json(stdout, &cur);
        printf(",\"proposed\":");
        moves_print_json(stdout, &plan);
        printf(",\"partitions_changed\":%zu,\"replicas_moved\":%zu}\n", plan.n, nmoves);
    } else {
        printf("Current partition replica assignment\n");
        moves_print_json(stdout, &cur);
        printf("\n\nProposed partition reassignment configuration\n");
        moves_print_json(stdout, &plan);
        printf("\n");
        fprintf(stderr, "%zu partition%s change, %zu replica%s to copy\n", plan.n,
                plan.n == 1 ? "" : "s", nmoves, nmoves == 1 ? "" : "s");
    }
    ex = CLI_EXIT_OK;
    moves_free(&plan);
    moves_free(&cur);
out_md:
    md_free(&m);
out:
    raw_close(rc);
out_topics:
    for (int i = 0; i < nt; i++)
        free(topics[i]);
    free(topics);
    return ex;
}

static int reassign_execute(struct cli *c, const char *path, int64_t throttle)
{
    if (!path)
        return cli_usage_err("--plan FILE is required");
    struct moves plan;
    if (plan_read(path, &plan))
        return CLI_EXIT_FAIL;
    struct raw_conn *rc;
    int ex = CLI_EXIT_FAIL;
    if (raw_open(c, &rc))
        goto out_plan;
    struct md m = {0};
    if (md_load(rc, NULL, 0, &m) == 0)
        ex = execute_moves(c, rc, &m, &plan, throttle, false);
    md_free(&m);
    raw_close(rc);
out_plan:
    moves_free(&plan);
    return ex;
}

static int reassign_verify(struct cli *c, const char *path)
{
    if (!path)
        return cli_usage_err("--plan FILE is required");
    struct moves plan;
    if (plan_read(path, &plan))
        return CLI_EXIT_FAIL;
    struct raw_conn *rc;
    int ex = CLI_EXIT_FAIL;
    if (raw_open(c, &rc))
        goto out_plan;
    struct md m = {0};
    struct moving mv = {0};
    if (md_load(rc, NULL, 0, &m) || plan_check(&m, &plan) || list_moving(c, rc, &mv))
        goto out;
    size_t pending = 0, wrong = 0;
    struct out *o = out_new(c, 0);
    if (!c->json)
        printf("Status of partition reassignment:\n");
    for (size_t i = 0; i < plan.n; i++) {
        const struct move *t = &plan.v[i];
        const struct md_part *p = md_find(&m, t->topic, t->partition);
        const char *status;
        if (moves_find(&mv.all, t->topic, t->partition)) {
            status = "in_progress";
            pending++;
            if (!c->json)
                printf("Reassignment of partition %s-%d is still in progress.\n", t->topic,
                       (int)t->partition);
        } else if (same_list(p->replicas, p->n_replicas, t->replicas, t->n_replicas)) {
            status = "done";
            if (!c->json)
                printf("Reassignment of partition %s-%d is completed.\n", t->topic,
                       (int)t->partition);
        } else {
            status = "not_moving";
            wrong++;
            if (!c->json) {
                printf("There is no active reassignment of partition %s-%d, but its replicas "
                       "are [",
                       t->topic, (int)t->partition);
                for (int r = 0; r < p->n_replicas; r++)
                    printf("%s%d", r ? "," : "", (int)p->replicas[r]);
                printf("], not the plan's.\n");
            }
        }
        out_row(o);
        out_str(o, "topic", t->topic);
        out_int(o, "partition", t->partition);
        out_str(o, "status", status);
    }
    out_end(o, "\n");
    if (pending == 0)
        throttle_clear(c, rc, &m, &plan);
    ex = pending || wrong ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    moving_free(&mv);
    md_free(&m);
    raw_close(rc);
out_plan:
    moves_free(&plan);
    return ex;
}

static int reassign_cancel(struct cli *c, const char *path, bool all)
{
    if (!path == !all)
        return cli_usage_err("give either --plan FILE or --all");
    struct moves plan = {0};
    if (path && plan_read(path, &plan))
        return CLI_EXIT_FAIL;
    struct raw_conn *rc;
    int ex = CLI_EXIT_FAIL;
    struct moving mv = {0};
    struct moves todo = {0};
    if (raw_open(c, &rc))
        goto out_plan;
    if (list_moving(c, rc, &mv))
        goto out;
    for (size_t i = 0; i < mv.all.n; i++) {
        const struct move *x = &mv.all.v[i];
        if ((all || moves_find(&plan, x->topic, x->partition)) &&
            moves_add(&todo, x->topic, x->partition, NULL, 0))
            goto out;
    }
    if (todo.n == 0) {
        if (c->json)
            printf("[]\n");
        else
            printf("No partition of the %s is being moved.\n", all ? "cluster" : "plan");
        ex = CLI_EXIT_OK;
        goto out;
    }
    int failed = send_alter(c, rc, &todo, true);
    if (failed < 0)
        goto out;
    struct out *o = out_new(c, 0);
    for (size_t i = 0; i < todo.n; i++) {
        out_row(o);
        out_str(o, "topic", todo.v[i].topic);
        out_int(o, "partition", todo.v[i].partition);
    }
    out_end(o, "\n");
    if (!c->json)
        printf("Cancelled the reassignment of %zu partition%s.\n", todo.n - (size_t)failed,
               todo.n - (size_t)failed == 1 ? "" : "s");
    ex = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    moves_free(&todo);
    moving_free(&mv);
    raw_close(rc);
out_plan:
    moves_free(&plan);
    return ex;
}

static void ids_str(char *buf, size_t cap, const struct move *mv)
{
    buf[0] = 0;
    for (int r = 0; r < mv->n_replicas; r++) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%d", r ? "," : "", (int)mv->replicas[r]);
    }
}

static void out_ids(struct out *o, const char *key, const struct move *mv)
{
    char buf[64 * 12] = "[";
    for (int r = 0; r < mv->n_replicas; r++) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof(buf) - l, "%s%d", r ? "," : "", (int)mv->replicas[r]);
    }
    strcat(buf, "]");
    out_raw(o, key, buf);
}

static int reassign_list(struct cli *c)
{
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return CLI_EXIT_FAIL;
    struct moving mv;
    int ex = CLI_EXIT_FAIL;
    if (list_moving(c, rc, &mv) == 0) {
        struct out *o = out_new(c, 5, "TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING");
        for (size_t i = 0; i < mv.all.n; i++) {
            char part[16], reps[768], add[768], rem[768];
            snprintf(part, sizeof(part), "%d", (int)mv.all.v[i].partition);
            ids_str(reps, sizeof(reps), &mv.all.v[i]);
            ids_str(add, sizeof(add), &mv.adding.v[i]);
            ids_str(rem, sizeof(rem), &mv.removing.v[i]);
            out_row(o);
            out_str(o, "topic", mv.all.v[i].topic);
            out_int(o, "partition", mv.all.v[i].partition);
            out_ids(o, "replicas", &mv.all.v[i]);
            out_ids(o, "adding_replicas", &mv.adding.v[i]);
            out_ids(o, "removing_replicas", &mv.removing.v[i]);
            out_cells(o, mv.all.v[i].topic, part, reps, add, rem);
        }
        out_end(o, "\n");
        moving_free(&mv);
        ex = CLI_EXIT_OK;
    }
    raw_close(rc);
    return ex;
}

int cli_reassign_main(struct cli *c, int argc, char **argv)
{
    int help = cli_noun_help(argc, argv, reassign_usage);
    if (help >= 0)
        return help;
    const char *verb = argv[1];
    static const char *const verbs[] = {"generate", "execute", "verify", "cancel", "list"};
    bool known = false;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        known = known || strcmp(verb, verbs[i]) == 0;
    if (!known)
        return cli_usage_err("unknown verb '%s'; verbs: generate, execute, verify, cancel, list",
                             verb);
    cli_set_cmd("reassign", verb);
    const char *brokers = NULL, *topics = NULL, *plan = NULL;
    int64_t throttle = 0;
    bool all = false;
    optind = 1;
    opterr = 0;
    int ch;
    argc--;
    argv++;
    while ((ch = getopt_long(argc, argv, ":h", reassign_opts, NULL)) != -1) {
        switch (ch) {
        case 'B':
            brokers = optarg;
            break;
        case 't':
            topics = optarg;
            break;
        case 'p':
            plan = optarg;
            break;
        case 'a':
            all = true;
            break;
        case 'r':
            if (cli_parse_i64(optarg, &throttle) || throttle < 1)
                return cli_usage_err("--throttle must be a positive number of bytes per second");
            break;
        case 'h':
            fputs(reassign_usage, stdout);
            return CLI_EXIT_OK;
        case ':':
            return cli_usage_err("%s needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("unexpected argument '%s'", argv[optind]);
    bool gen = !strcmp(verb, "generate"), exe = !strcmp(verb, "execute"),
         can = !strcmp(verb, "cancel");
    if ((brokers || topics) && !gen)
        return cli_usage_err("--brokers and --topics are for 'generate'");
    if (plan && gen)
        return cli_usage_err("--plan is for execute, verify and cancel");
    if (throttle && !exe)
        return cli_usage_err("--throttle is for 'execute'");
    if (all && !can)
        return cli_usage_err("--all is for 'cancel'");
    if (gen)
        return reassign_generate(c, brokers, topics);
    if (exe)
        return reassign_execute(c, plan, throttle);
    if (!strcmp(verb, "verify"))
        return reassign_verify(c, plan);
    if (can)
        return reassign_cancel(c, plan, all);
    if (plan)
        return cli_usage_err("--plan is for execute, verify and cancel");
    return reassign_list(c);
}

/* ---- weir cluster rebalance|decommission ---- */

int cli_cluster_move(struct cli *c, const char *verb, int32_t broker, int64_t throttle, bool wait,
                     double timeout_s)
{
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return CLI_EXIT_FAIL;
    int ex = CLI_EXIT_FAIL;
    struct md m = {0};
    struct moves plan = {0}, cur = {0};
    if (md_load(rc, NULL, 0, &m))
        goto out;
    bool decom = !strcmp(verb, "decommission");
    /* A broker that holds replicas but is not live (restarting, or dead) is
     * not planned around silently: everything would move off it. Only the
     * broker being decommissioned may be down. */
    bool holds = false;
    for (size_t i = 0; i < m.n_parts; i++)
        for (int r = 0; r < m.parts[i].n_replicas; r++) {
            int32_t b = m.parts[i].replicas[r];
            holds = holds || b == broker;
            if (md_has_broker(&m, b) || (decom && b == broker))
                continue;
            cli_err("broker %d holds replicas (%s-%d) but is not live: start it, or move them "
                    "with 'weir cluster decommission --broker %d'",
                    (int)b, m.parts[i].topic, (int)m.parts[i].partition, (int)b);
            goto out;
        }
    if (decom && !md_has_broker(&m, broker) && !holds) {
        cli_err("broker %d is not a live registered broker and holds no replica", (int)broker);
        goto out;
    }
    struct moving busy;
    if (list_moving(c, rc, &busy))
        goto out;
    size_t n_busy = busy.all.n;
    moving_free(&busy);
    if (n_busy) {
        cli_err("%zu partition%s being moved; wait for them ('weir reassign list') or cancel "
                "them ('weir reassign cancel --all') first",
                n_busy, n_busy == 1 ? " is" : "s are");
        goto out;
    }
    /* first the flag, so that no topic created during the moves lands there */
    if (decom && set_decommissioned(rc, broker, true))
        goto out;
    if (drop_decommissioned(c, &m))
        goto out;
    /* The broker being decommissioned leaves the plan whatever it reports:
     * DescribeConfigs of broker N is answered from N's own copy of the
     * metadata, which may not hold the mark set a moment ago (the plan would
     * then keep every replica where it is). */
    for (size_t i = 0; decom && i < m.n_brokers; i++)
        if (m.brokers[i].id == broker) {
            free(m.brokers[i].rack);
            memmove(&m.brokers[i], &m.brokers[i + 1], (m.n_brokers - i - 1) * sizeof(m.brokers[0]));
            m.n_brokers--;
            break;
        }
    int32_t *ids = calloc(m.n_brokers + 1, sizeof(*ids));
    int nb = 0;
    for (size_t i = 0; i < m.n_brokers; i++)
        ids[nb++] = m.brokers[i].id;
    size_t nmoves = 0;
    int g = nb > 0 ? generate(&m, ids, nb, &plan, &cur, &nmoves) : -1;
    free(ids);
    if (g) {
        if (nb == 0)
            cli_err("no broker would be left that is not decommissioned");
        goto out;
    }
    if (!c->json)
        printf("%s: %zu partition%s change, %zu replica%s to copy.\n", verb, plan.n,
               plan.n == 1 ? "" : "s", nmoves, nmoves == 1 ? "" : "s");
    if (plan.n == 0) {
        if (c->json)
            printf("{\"started\":[],\"rollback\":{\"version\":1,\"partitions\":[]}}\n");
        ex = CLI_EXIT_OK;
        goto out;
    }
    ex = execute_moves(c, rc, &m, &plan, throttle, true);
    if (ex != CLI_EXIT_OK || !wait)
        goto out;
    double t0 = now_s();
    int w = wait_moves(c, rc, &plan, timeout_s);
    if (w == -ETIMEDOUT) {
        cli_err("the moves did not finish within %.0f seconds (see 'weir reassign list')",
                timeout_s);
        ex = CLI_EXIT_FAIL;
    } else if (w) {
        ex = CLI_EXIT_FAIL;
    } else {
        if (!c->json)
            printf("Moved %zu partitions in %.1fs.\n", plan.n, now_s() - t0);
        int e = elect_preferred(c, rc, &plan);
        if (e > 0 && !c->json)
            printf("%d partition%s keep their leader for now: the preferred replica is not in "
                   "the ISR yet (the coordinator hands leadership over when it is).\n",
                   e, e == 1 ? "" : "s");
        if (throttle > 0)
            throttle_clear(c, rc, &m, &plan);
    }
out:
    moves_free(&plan);
    moves_free(&cur);
    md_free(&m);
    raw_close(rc);
    return ex;
}

int cli_cluster_recommission(struct cli *c, int32_t broker)
{
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return CLI_EXIT_FAIL;
    int ex = CLI_EXIT_FAIL;
    if (set_decommissioned(rc, broker, false))
        goto out;
    if (c->json)
        printf("{\"broker\":%d,\"decommissioned\":false}\n", (int)broker);
    else
        printf("Broker %d takes new replicas again; 'weir cluster rebalance' moves existing "
               "ones onto it.\n",
               (int)broker);
    ex = CLI_EXIT_OK;
out:
    raw_close(rc);
    return ex;
}
