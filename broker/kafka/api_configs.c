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
#include "broker/effconfig.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "broker/storage/plog.h"
#include "broker/storage/storage_config.h"
#include "common/arena.h"
#include "common/config.h"
#include "common/dyncfg.h"
#include "common/kerr.h"
#include "common/meta/state.h"
#include "common/topic_config.h"

#define RES_TOPIC                2
#define RES_BROKER               4
#define SRC_TOPIC_CONFIG         1
#define SRC_DYNAMIC_BROKER       EFFCONFIG_DYNAMIC_BROKER
#define SRC_DYNAMIC_DEFAULT      EFFCONFIG_DYNAMIC_DEFAULT
#define SRC_STATIC_BROKER_CONFIG EFFCONFIG_STATIC
#define SRC_DEFAULT_CONFIG       EFFCONFIG_DEFAULT
#define ENDPOINT_BROKER          1
#define ENDPOINT_CONTROLLER      2
#define AUTHORIZED_OPS_OMITTED   INT32_MIN
#define MAX_CONFIG_SYNONYMS      16

/* ---- topic configs ------------------------------------------------------------------- */

/* The topic-level keys, with their broker synonyms and Kafka defaults, are the
 * table in common/topic_config.c: the same one the coordinator validates with. */
#define N_TOPIC_KEYS topic_config_ndefs

/* The broker keys that set one value, in Kafka's precedence (the finest unit
 * first): DescribeConfigs lists synonyms in this order. NULL-terminated. */
static const char *const retention_names[] = {"log.retention.ms", "log.retention.minutes",
                                              "log.retention.hours", NULL};
static const char *const roll_names[] = {"log.roll.ms", "log.roll.hours", NULL};

static void synonym_names(const char *broker_key, const char *one[2], const char *const **ret_names)
{
    for (const char *const *n = retention_names; *n; n++)
        if (!strcmp(*n, broker_key)) {
            *ret_names = retention_names;
            return;
        }
    for (const char *const *n = roll_names; *n; n++)
        if (!strcmp(*n, broker_key)) {
            *ret_names = roll_names;
            return;
        }
    one[0] = broker_key;
    one[1] = NULL;
    *ret_names = one;
}

/* The levels above the key's own default, in precedence order. */
static const enum effconfig_source set_levels[] = {EFFCONFIG_DYNAMIC_BROKER,
                                                   EFFCONFIG_DYNAMIC_DEFAULT, EFFCONFIG_STATIC};

/* The source of the value in effect for a broker key and its synonyms: the
 * first level that has a value, names in precedence order. */
static int8_t first_source(struct broker_ctx *b, const char *const *names)
{
    const struct cstate *s = coordclient_state(b->cc);
    for (const char *const *n = names; *n; n++)
        for (size_t l = 0; l < sizeof(set_levels) / sizeof(set_levels[0]); l++) {
            bool present;
            effconfig_at(s, b->cfg, b->s->broker_id, *n, set_levels[l], &present);
            if (present)
                return (int8_t)set_levels[l];
        }
    return SRC_DEFAULT_CONFIG;
}

/* The default of a topic key as this broker applies it: its broker synonym
 * from this broker's dynamic value, the dynamic cluster default, the static
 * configuration, else Kafka's default. The retention and roll times go
 * through the storage layer's resolution so that log.retention.hours /
 * log.roll.hours count as well. Formatted numbers live in @req's arena. */
static const char *topic_default(struct broker_ctx *b, struct kreq *req,
                                 const struct topic_config_def *k, int8_t *ret_source)
{
    const struct config *c = b->cfg;
    const struct cstate *s = coordclient_state(b->cc);
    const char *one[2];
    const char *const *names;
    if (!k->broker_key) { /* no broker key supplies it (throttled replica lists) */
        *ret_source = SRC_DEFAULT_CONFIG;
        return k->kafka_default;
    }
    synonym_names(k->broker_key, one, &names);
    *ret_source = first_source(b, names);
    if (!c || !config_find_def(c, k->broker_key)) {
        /* Not a key of this broker's registry (unclean.leader.election.enable
         * is the coordinator's): only a dynamic value can stand in. */
        if (*ret_source == SRC_DEFAULT_CONFIG || *ret_source == SRC_STATIC_BROKER_CONFIG) {
            *ret_source = SRC_DEFAULT_CONFIG;
            return k->kafka_default;
        }
        bool present;
        return effconfig_at(s, c, b->s->broker_id, k->broker_key,
                            (enum effconfig_source) * ret_source, &present);
    }
    bool is_ret = strcmp(k->name, "retention.ms") == 0;
    bool is_roll = strcmp(k->name, "segment.ms") == 0;
    if (is_ret || is_roll) {
        struct plog_config pc;
        struct config *eff = NULL;
        if (effconfig_has_dynamic(s, b->s->broker_id) &&
            effconfig_build(s, c, b->s->broker_id, &eff) < 0)
            return NULL;
        storage_config_plog(eff ? eff : c, &pc);
        config_free(eff);
        char num[24];
        snprintf(num, sizeof(num), "%" PRId64, is_ret ? pc.retention_ms : pc.roll_ms);
        return arena_strdup(&req->arena, num); /* NULL on exhaustion: caller closes */
    }
    enum effconfig_source src;
    const char *v = effconfig_get(s, c, b->s->broker_id, k->broker_key, &src);
    *ret_source = (int8_t)src;
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
        /* Then every broker-level value, names in precedence order and each
         * name from its per-broker value down to its static one; last what
         * remains when none is set. */
        if (!k->broker_key)
            continue; /* no broker-level synonym */
        const char *one[2];
        const char *const *names;
        synonym_names(k->broker_key, one, &names);
        for (const char *const *nm = names; synonyms && *nm; nm++)
            for (size_t l = 0; l < sizeof(set_levels) / sizeof(set_levels[0]); l++) {
                bool present;
                const char *v =
                    effconfig_at(s, b->cfg, b->s->broker_id, *nm, set_levels[l], &present);
                if (present)
                    add_synonym(e, *nm, v, (int8_t)set_levels[l]);
            }
        add_synonym(e, k->broker_key, dsrc == SRC_DEFAULT_CONFIG ? dval : k->kafka_default,
                    SRC_DEFAULT_CONFIG);
    }
    res->n_configs = n;
    return 0;
}

struct broker_visit {
    struct broker_ctx *b;
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
    (void)src;
    struct broker_ctx *b = v->b;
    const struct cstate *s = coordclient_state(b->cc);
    enum effconfig_source source;
    value = effconfig_get(s, b->cfg, b->s->broker_id, def->name, &source);
    bool sensitive = key_sensitive(def->name);
    if (sensitive)
        value = NULL; /* Kafka never shows a sensitive value */
    struct kafka_describe_configs_response_config *e = &v->res->configs[v->res->n_configs++];
    /* Only the keys in common/dyncfg.c change at run time (AlterConfigs). */
    v->err = fill_entry(v->req, v->synonyms, e, def->name, value, (int8_t)source,
                        dyncfg_find(def->name) == NULL);
    if (v->err)
        return;
    e->is_sensitive = sensitive;
    /* Kafka's order: names in precedence order (log.retention.ms before
     * .minutes before .hours), each from its per-broker value down to its
     * default. */
    const char *one[2];
    const char *const *names;
    synonym_names(def->name, one, &names);
    for (const char *const *nm = names; e->synonyms && *nm; nm++) {
        static const enum effconfig_source all[] = {EFFCONFIG_DYNAMIC_BROKER,
                                                    EFFCONFIG_DYNAMIC_DEFAULT, EFFCONFIG_STATIC,
                                                    EFFCONFIG_DEFAULT};
        for (size_t l = 0; l < sizeof(all) / sizeof(all[0]); l++) {
            bool present;
            const char *sv = effconfig_at(s, b->cfg, b->s->broker_id, *nm, all[l], &present);
            /* A null default is no value to fall back to, except the key's own. */
            if (!present || (all[l] == EFFCONFIG_DEFAULT && !sv && strcmp(*nm, def->name)))
                continue;
            add_synonym(e, *nm, sensitive ? NULL : sv, (int8_t)all[l]);
        }
    }
}

static void count_key(void *ud, const struct config_def *def, const char *value,
                      enum config_source src)
{
    (void)def;
    (void)value;
    (void)src;
    (*(size_t *)ud)++;
}

/* The cluster-default broker resource (empty name): as Kafka, only the dynamic
 * cluster defaults that are set (DYNAMIC_DEFAULT_BROKER_CONFIG), each with its
 * synonyms below the per-broker level — not any one broker's whole configuration. */
static int describe_cluster_default(struct broker_ctx *b, struct kreq *req, bool synonyms,
                                    const struct kafka_describe_configs_request_resource *r,
                                    struct kafka_describe_configs_response_result *res)
{
    const struct cstate *s = coordclient_state(b->cc);
    size_t n = 0;
    for (size_t i = 0; i < s->n_broker_configs; i++)
        n += s->broker_configs[i].broker_id == CSTATE_CLUSTER_DEFAULT;
    res->configs = api_alloc(req, n, sizeof(*res->configs));
    if (n && !res->configs)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_broker_configs; i++) {
        const struct cstate_broker_config *bc = &s->broker_configs[i];
        if (bc->broker_id != CSTATE_CLUSTER_DEFAULT || !key_wanted(r, bc->name))
            continue;
        bool sensitive = key_sensitive(bc->name);
        struct kafka_describe_configs_response_config *e = &res->configs[res->n_configs++];
        int rc = fill_entry(req, synonyms, e, bc->name, sensitive ? NULL : bc->value,
                            (int8_t)EFFCONFIG_DYNAMIC_DEFAULT, false);
        if (rc < 0)
            return rc;
        e->is_sensitive = sensitive;
        const char *one[2];
        const char *const *names;
        synonym_names(bc->name, one, &names);
        for (const char *const *nm = names; e->synonyms && *nm; nm++) {
            static const enum effconfig_source below[] = {EFFCONFIG_DYNAMIC_DEFAULT,
                                                          EFFCONFIG_STATIC, EFFCONFIG_DEFAULT};
            for (size_t l = 0; l < sizeof(below) / sizeof(below[0]); l++) {
                bool present;
                const char *sv = effconfig_at(s, b->cfg, b->s->broker_id, *nm, below[l], &present);
                if (!present || (below[l] == EFFCONFIG_DEFAULT && !sv && strcmp(*nm, bc->name)))
                    continue;
                add_synonym(e, *nm, sensitive ? NULL : sv, (int8_t)below[l]);
            }
        }
    }
    return 0;
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
    if (!name[0])
        return describe_cluster_default(b, req, synonyms, r, res);
    if (!b->cfg)
        return 0;
    size_t nkeys = 0;
    config_foreach(b->cfg, count_key, &nkeys);
    /* plus this broker's dynamic keys that only the coordinator acts on
     * (broker.decommissioned): they are in no broker registry */
    const struct cstate *s = coordclient_state(b->cc);
    for (size_t i = 0; i < s->n_broker_configs; i++)
        nkeys += s->broker_configs[i].broker_id == b->s->broker_id &&
                 !config_find_def(b->cfg, s->broker_configs[i].name);
    res->configs = api_alloc(req, nkeys, sizeof(*res->configs));
    if (nkeys && !res->configs)
        return -ENOMEM;
    struct broker_visit v = {.b = b, .req = req, .synonyms = synonyms, .r = r, .res = res};
    config_foreach(b->cfg, visit_broker_key, &v);
    for (size_t i = 0; i < s->n_broker_configs && !v.err; i++) {
        const struct cstate_broker_config *bc = &s->broker_configs[i];
        if (bc->broker_id != b->s->broker_id || config_find_def(b->cfg, bc->name) ||
            !key_wanted(r, bc->name))
            continue;
        struct kafka_describe_configs_response_config *e = &res->configs[res->n_configs++];
        v.err = fill_entry(req, synonyms, e, bc->name, bc->value, (int8_t)EFFCONFIG_DYNAMIC_BROKER,
                           false);
    }
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
    resp.cluster_authorized_operations = m->include_cluster_authorized_operations
                                             ? dispatch_cluster_authorized_ops()
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
