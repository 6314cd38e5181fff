/* api_configs: DescribeConfigs v0-2 (topic configs from the local metadata with
 * their broker-derived defaults; this broker's own configuration registry) and
 * DescribeCluster v0-1 (cluster id, controller, live brokers). */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "broker/storage/plog.h"
#include "broker/storage/storage_config.h"
#include "common/arena.h"
#include "common/config.h"
#include "common/kerr.h"
#include "common/meta/state.h"
#include "common/topic_config.h"

#define RES_TOPIC                2
#define RES_BROKER               4
#define SRC_TOPIC_CONFIG         1
#define SRC_STATIC_BROKER_CONFIG 4
#define SRC_DEFAULT_CONFIG       5
#define ENDPOINT_BROKER          1
#define ENDPOINT_CONTROLLER      2
#define AUTHORIZED_OPS_OMITTED   INT32_MIN
#define MAX_CONFIG_SYNONYMS      3

/* ---- topic configs ------------------------------------------------------------------- */

/* The topic-level keys, with their broker synonyms and Kafka defaults, are the
 * table in common/topic_config.c: the same one the coordinator validates with. */
#define N_TOPIC_KEYS topic_config_ndefs

/* The default of a topic key as this broker would apply it: the value of its
 * broker synonym when the registry declares it, else Kafka's default. The
 * retention and roll times go through the storage layer's resolution so that
 * log.retention.hours / log.roll.hours count as well. Formatted numbers live
 * in @req's arena. */
static const char *topic_default(struct broker_ctx *b, struct kreq *req, const struct topic_config_def *k,
                                 int8_t *ret_source)
{
    const struct config *c = b->cfg;
    *ret_source = SRC_DEFAULT_CONFIG;
    if (!c || !config_find_def(c, k->broker_key))
        return k->kafka_default;
    bool is_ret = strcmp(k->name, "retention.ms") == 0;
    bool is_roll = strcmp(k->name, "segment.ms") == 0;
    if (is_ret || is_roll) {
        struct plog_config pc;
        storage_config_plog(c, &pc);
        bool set = is_ret ? config_is_set(c, "log.retention.ms") ||
                                config_is_set(c, "log.retention.minutes") ||
                                config_is_set(c, "log.retention.hours")
                          : config_is_set(c, "log.roll.ms") || config_is_set(c, "log.roll.hours");
        *ret_source = set ? SRC_STATIC_BROKER_CONFIG : SRC_DEFAULT_CONFIG;
        char num[24];
        snprintf(num, sizeof(num), "%" PRId64, is_ret ? pc.retention_ms : pc.roll_ms);
        return arena_strdup(&req->arena, num); /* NULL on exhaustion: caller closes */
    }
    const char *v = config_get_raw(c, k->broker_key);
    if (config_is_set(c, k->broker_key))
        *ret_source = SRC_STATIC_BROKER_CONFIG;
    /* A null broker value (e.g. log.flush.interval.ms) means Kafka's default. */
    return v ? v : k->kafka_default;
}

static bool key_wanted(const struct kafka_describe_configs_request_resource *r, const char *name)
{
    /* null asks for every key; so does an empty list (some clients send one). */
    if (r->n_configuration_keys <= 0)
        return true;
    size_t n = strlen(name);
    for (int32_t i = 0; i < r->n_configuration_keys; i++) {
        buf_slice k = r->configuration_keys[i];
        if (k.len >= 0 && (size_t)k.len == n && (n == 0 || memcmp(k.ptr, name, n) == 0))
            return true;
    }
    return false;
}

/* One config entry with its synonyms in precedence order (Kafka lists the entry's
 * own source first, then what it would fall back to). */
static int fill_entry(struct kreq *req, bool synonyms,
                      struct kafka_describe_configs_response_config *e, const char *name,
                      const char *value, int8_t source, bool read_only)
{
    e->name = api_slice(name);
    e->value = api_slice(value);
    e->read_only = read_only;
    e->is_default = source == SRC_DEFAULT_CONFIG;
    e->config_source = source;
    e->is_sensitive = false;
    e->n_synonyms = 0;
    e->synonyms = NULL;
    if (synonyms) {
        e->synonyms = api_alloc(req, MAX_CONFIG_SYNONYMS, sizeof(*e->synonyms));
        if (!e->synonyms)
            return -ENOMEM;
    }
    return 0;
}

static void add_synonym(struct kafka_describe_configs_response_config *e, const char *name,
                        const char *value, int8_t source)
{
    if (!e->synonyms || e->n_synonyms >= MAX_CONFIG_SYNONYMS)
        return;
    struct kafka_describe_configs_response_synonym *s = &e->synonyms[e->n_synonyms++];
    s->name = api_slice(name);
    s->value = api_slice(value);
    s->source = source;
}

static int describe_topic(struct broker_ctx *b, struct kreq *req, bool synonyms,
                          const struct kafka_describe_configs_request_resource *r,
                          struct kafka_describe_configs_response_result *res)
{
    const struct cstate *s = coordclient_state(b->cc);
    char *name = api_str(req, r->resource_name);
    if (!name)
        return -ENOMEM;
    if (!cstate_topic_name_valid(name)) {
        res->error_code = KERR_INVALID_TOPIC_EXCEPTION;
        res->error_message = api_slice("invalid topic name");
        return 0;
    }
    const struct cstate_topic *t = cstate_topic_by_name(s, name);
    if (!t) {
        res->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        res->error_message = api_slice("unknown topic");
        return 0;
    }
    res->configs = api_alloc(req, N_TOPIC_KEYS, sizeof(*res->configs));
    if (!res->configs)
        return -ENOMEM;
    int32_t n = 0;
    for (size_t i = 0; i < N_TOPIC_KEYS; i++) {
        const struct topic_config_def *k = &topic_config_defs[i];
        if (!key_wanted(r, k->name))
            continue;
        int8_t dsrc;
        const char *dval = topic_default(b, req, k, &dsrc);
        if (!dval)
            return -ENOMEM;
        const char *ovr = cstate_topic_config(t, k->name);
        struct kafka_describe_configs_response_config *e = &res->configs[n++];
        int rc = fill_entry(req, synonyms, e, k->name, ovr ? ovr : dval,
                            ovr ? SRC_TOPIC_CONFIG : dsrc, false);
        if (rc < 0)
            return rc;
        if (ovr)
            add_synonym(e, k->name, ovr, SRC_TOPIC_CONFIG);
        if (dsrc == SRC_STATIC_BROKER_CONFIG)
            add_synonym(e, k->broker_key, dval, SRC_STATIC_BROKER_CONFIG);
        add_synonym(e, k->broker_key, dsrc == SRC_DEFAULT_CONFIG ? dval : k->kafka_default,
                    SRC_DEFAULT_CONFIG);
    }
    res->n_configs = n;
    return 0;
}

struct broker_visit {
    struct kreq *req;
    bool synonyms;
    const struct kafka_describe_configs_request_resource *r;
    struct kafka_describe_configs_response_result *res;
    int err;
};

static bool key_sensitive(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret");
}

static void visit_broker_key(void *ud, const struct config_def *def, const char *value,
                             enum config_source src)
{
    struct broker_visit *v = ud;
    if (v->err || !key_wanted(v->r, def->name))
        return;
    int8_t source = src == CONFIG_SOURCE_DEFAULT ? SRC_DEFAULT_CONFIG : SRC_STATIC_BROKER_CONFIG;
    bool sensitive = key_sensitive(def->name);
    if (sensitive)
        value = NULL; /* Kafka never shows a sensitive value */
    struct kafka_describe_configs_response_config *e = &v->res->configs[v->res->n_configs++];
    /* Nothing here changes at run time: every broker key is read-only. */
    v->err = fill_entry(v->req, v->synonyms, e, def->name, value, source, true);
    if (v->err)
        return;
    e->is_sensitive = sensitive;
    add_synonym(e, def->name, value, source);
}

static void count_key(void *ud, const struct config_def *def, const char *value,
                      enum config_source src)
{
    (void)def;
    (void)value;
    (void)src;
    (*(size_t *)ud)++;
}

static int describe_broker(struct broker_ctx *b, struct kreq *req, bool synonyms,
                           const struct kafka_describe_configs_request_resource *r,
                           struct kafka_describe_configs_response_result *res)
{
    char *name = api_str(req, r->resource_name);
    if (!name)
        return -ENOMEM;
    if (name[0]) {
        char *end;
        errno = 0;
        long id = strtol(name, &end, 10);
        if (errno || *end || end == name || id < 0 || id > INT32_MAX) {
            res->error_code = KERR_INVALID_REQUEST;
            res->error_message = api_slice("broker resource name must be a broker id");
            return 0;
        }
        if ((int32_t)id != b->s->broker_id) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "broker %ld's configuration is served by broker %ld, not by broker %" PRId32,
                     id, id, b->s->broker_id);
            res->error_code = KERR_INVALID_REQUEST;
            res->error_message = api_slice(arena_strdup(&req->arena, msg));
            return res->error_message.ptr ? 0 : -ENOMEM;
        }
    }
    if (!b->cfg)
        return 0;
    size_t nkeys = 0;
    config_foreach(b->cfg, count_key, &nkeys);
    res->configs = api_alloc(req, nkeys, sizeof(*res->configs));
    if (nkeys && !res->configs)
        return -ENOMEM;
    struct broker_visit v = {.req = req, .synonyms = synonyms, .r = r, .res = res};
    config_foreach(b->cfg, visit_broker_key, &v);
    return v.err;
}

void api_describe_configs_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_describe_configs_request *m = body;
    bool synonyms = req->hdr.api_version >= 1 && m->include_synonyms;
    struct kafka_describe_configs_response resp;
    kafka_describe_configs_response_init(&resp);
    int32_t n = m->n_resources > 0 ? m->n_resources : 0;
    resp.results = api_alloc(req, (size_t)n, sizeof(*resp.results));
    if (n && !resp.results)
        goto oom;
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_describe_configs_request_resource *r = &m->resources[i];
        struct kafka_describe_configs_response_result *res = &resp.results[i];
        res->error_message = api_slice(NULL);
        res->resource_type = r->resource_type;
        res->resource_name = r->resource_name;
        int rc = 0;
        if (r->resource_type == RES_TOPIC) {
            rc = describe_topic(b, req, synonyms, r, res);
        } else if (r->resource_type == RES_BROKER) {
            rc = describe_broker(b, req, synonyms, r, res);
        } else {
            res->error_code = KERR_INVALID_REQUEST;
            res->error_message = api_slice("unsupported resource type");
        }
        if (rc < 0)
            goto oom;
        if (res->error_code) {
            res->n_configs = 0;
            res->configs = NULL;
        }
    }
    resp.n_results = n;
    kreq_reply(req, &resp, NULL, NULL);
    return;
oom:
    kreq_close(req);
}

/* ---- DescribeCluster ----------------------------------------------------------------- */


static const struct cstate_endpoint *pick_endpoint(const struct cstate_broker *br,
                                                   const char *listener)
{
    for (uint32_t i = 0; i < br->n_endpoints; i++)
        if (br->endpoints[i].listener && strcmp(br->endpoints[i].listener, listener) == 0)
            return &br->endpoints[i];
    return br->n_endpoints ? &br->endpoints[0] : NULL;
}

void api_describe_cluster_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_describe_cluster_request *m = body;
    int16_t ver = req->hdr.api_version;
    const struct cstate *s = coordclient_state(b->cc);
    struct kafka_describe_cluster_response resp;
    kafka_describe_cluster_response_init(&resp);
    resp.endpoint_type = ENDPOINT_BROKER;
    resp.cluster_authorized_operations =
        m->include_cluster_authorized_operations ? dispatch_cluster_authorized_ops()
                                                 : AUTHORIZED_OPS_OMITTED;
    if (ver >= 1 && m->endpoint_type != ENDPOINT_BROKER) {
        resp.error_code = m->endpoint_type == ENDPOINT_CONTROLLER ? KERR_MISMATCHED_ENDPOINT_TYPE
                                                                  : KERR_UNSUPPORTED_ENDPOINT_TYPE;
        resp.error_message = api_slice("this is a broker endpoint; ask for endpoint type 1");
        resp.cluster_id = api_slice(s->cluster_id ? s->cluster_id : "");
        kreq_reply(req, &resp, NULL, NULL);
        return;
    }
    resp.brokers = api_alloc(req, s->n_brokers, sizeof(*resp.brokers));
    if (s->n_brokers && !resp.brokers) {
        kreq_close(req);
        return;
    }
    /* Same view as Metadata: live brokers with an endpoint, the lowest live id
     * standing in for the controller (admin requests may go to any broker). */
    int32_t nb = 0;
    resp.controller_id = -1;
    for (size_t i = 0; i < s->n_brokers; i++) {
        const struct cstate_broker *br = &s->brokers[i];
        const struct cstate_endpoint *ep = pick_endpoint(br, b->s->advertised.listener);
        if (br->state == CSTATE_BROKER_FENCED || !ep)
            continue;
        struct kafka_describe_cluster_response_broker *rb = &resp.brokers[nb++];
        rb->broker_id = br->id;
        rb->host = api_slice(ep->host);
        rb->port = ep->port;
        rb->rack = api_slice(br->rack);
        if (resp.controller_id < 0 || br->id < resp.controller_id)
            resp.controller_id = br->id;
    }
    resp.n_brokers = nb;
    resp.cluster_id = api_slice(s->cluster_id ? s->cluster_id : "");
    kreq_reply(req, &resp, NULL, NULL);
}
