/* api_alter_configs: AlterConfigs v0-2 and IncrementalAlterConfigs v0-1 for TOPIC
 * resources, forwarded to the coordinator's AlterTopicConfigs RPC (which
 * validates against common/topic_config.c and writes one TopicConfig record per
 * topic). The answer waits until the local metadata has caught up with the
 * coordinator's offset, so a DescribeConfigs on this broker right after sees the
 * change; every broker applies it from the watch (broker/replicas.c, the produce
 * path), without a restart.
 *
 * AlterConfigs replaces a topic's overrides: keys not named are removed. The
 * coordinator decides which (the RPC's `replace`), in the same batch that
 * writes the new values, so a change made meanwhile through another broker is
 * replaced too, never half-kept. IncrementalAlterConfigs SET and
 * DELETE map onto the RPC's set and remove; APPEND and SUBTRACT apply to list
 * keys (cleanup.policy) and are computed against the current value here.
 *
 * BROKER resources (a broker id, or the empty name for the cluster default)
 * go to the coordinator's AlterBrokerConfigs RPC, which accepts only the keys
 * in common/dyncfg.c and writes one BrokerConfig record per key; every broker
 * layers them over its static configuration (broker/effconfig.c,
 * broker/replicas.c). AlterConfigs replaces the dynamic values of that scope,
 * as for topics. A request naming both kinds makes both calls and answers
 * when both are done. Other resource types are INVALID_REQUEST. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/arena.h"
#include "common/kerr.h"
#include "common/meta/state.h"
#include "common/topic_config.h"
#include "coordinator.pb-c.h"
#include "methods.h"

#define RES_TOPIC  2
#define RES_BROKER 4

enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

/* One resource of either request, as both responses share a shape. */
struct alter_result {
    int16_t error_code;
    const char *error_message;
    int32_t topic_index;  /* into the RPC's topics, -1 when answered locally */
    int32_t broker_index; /* into the broker RPC's resources, -1 when not one */
};

struct alter_ctx {
    struct broker_ctx *b;
    struct kreq *req;
    bool incremental;
    int32_t n;
    struct alter_result *res; /* in the request's arena */
    void *resp;               /* the Kafka response struct, in the request's arena */
    int timeout_ms;
    int pending;        /* coordinator calls not answered yet */
    int64_t max_offset; /* highest metadata offset answered, -1: none */
};

static void alter_reply(void *ud, int result)
{
    (void)result;
    struct alter_ctx *c = ud;
    if (c->incremental) {
        struct kafka_incremental_alter_configs_response *r = c->resp;
        for (int32_t i = 0; i < c->n; i++) {
            r->responses[i].error_code = c->res[i].error_code;
            r->responses[i].error_message = api_slice(c->res[i].error_message);
        }
    } else {
        struct kafka_alter_configs_response *r = c->resp;
        for (int32_t i = 0; i < c->n; i++) {
            r->responses[i].error_code = c->res[i].error_code;
            r->responses[i].error_message = api_slice(c->res[i].error_message);
        }
    }
    kreq_reply(c->req, c->resp, NULL, NULL);
    free(c);
}

/* One coordinator call answered: when it was the last, wait until this
 * broker's metadata has every change, then reply. */
static void call_finished(struct alter_ctx *c, int64_t offset)
{
    if (offset > c->max_offset)
        c->max_offset = offset;
    if (--c->pending > 0)
        return;
    if (c->max_offset < 0 ||
        coordclient_wait_offset(c->b->cc, c->max_offset, c->timeout_ms, alter_reply, c) < 0)
        alter_reply(c, 0);
}

/* @x from the coordinator's result for it (@t_code, @t_msg), or a timeout when
 * the call failed or the answer lacks it (@answered false). */
static void set_result(struct alter_ctx *c, struct alter_result *x, bool answered, int32_t t_code,
                       const char *t_msg, const char *errmsg)
{
    if (!answered) {
        x->error_code = KERR_REQUEST_TIMED_OUT;
        x->error_message =
            arena_strdup(&c->req->arena, errmsg ? errmsg : "no answer from the coordinator");
        return;
    }
    x->error_code = (int16_t)t_code;
    x->error_message = t_msg && t_msg[0] ? arena_strdup(&c->req->arena, t_msg) : NULL;
}

static void alter_broker_done(int status, const struct ProtobufCMessage *msg, const char *errmsg,
                              void *ud)
{
    struct alter_ctx *c = ud;
    const Weir__Coord__AlterBrokerConfigsResponse *r = (const void *)msg;
    for (int32_t i = 0; i < c->n; i++) {
        struct alter_result *x = &c->res[i];
        if (x->broker_index < 0)
            continue;
        bool ok = status == 0 && (size_t)x->broker_index < r->n_results;
        const Weir__Coord__AlterBrokerConfigsResult *t = ok ? r->results[x->broker_index] : NULL;
        set_result(c, x, ok, t ? t->error_code : 0, t ? t->error_message : NULL, errmsg);
    }
    call_finished(c, status == 0 ? r->metadata_offset : -1);
}

static void alter_done(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    struct alter_ctx *c = ud;
    const Weir__Coord__AlterTopicConfigsResponse *r = (const void *)msg;
    for (int32_t i = 0; i < c->n; i++) {
        struct alter_result *x = &c->res[i];
        if (x->topic_index < 0)
            continue;
        bool ok = status == 0 && (size_t)x->topic_index < r->n_results;
        const Weir__Coord__AlterTopicConfigsResult *t = ok ? r->results[x->topic_index] : NULL;
        set_result(c, x, ok, t ? t->error_code : 0, t ? t->error_message : NULL, errmsg);
    }
    call_finished(c, status == 0 ? r->metadata_offset : -1);
}

static int clamp_timeout(const struct broker_ctx *b)
{
    return b->s->admin_timeout_ms;
}

/* Answer a resource here, with a message (static or in the arena). */
static void refuse(struct alter_result *x, int16_t code, const char *msg)
{
    x->error_code = code;
    x->error_message = msg;
    x->topic_index = -1;
}

static bool list_has(const char *list, const char *item, size_t n)
{
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncmp(p, item, n))
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

/* APPEND / SUBTRACT @value (itself a list) to / from @cur: the new list in the
 * arena, or NULL on exhaustion. */
static char *list_edit(struct kreq *req, const char *cur, const char *value, bool append)
{
    size_t cap = strlen(cur) + strlen(value) + 2;
    char *out = arena_alloc(&req->arena, cap, 1);
    if (!out)
        return NULL;
    out[0] = 0;
    size_t len = 0;
    /* Items of @cur kept (all of them for APPEND, those not in @value else),
     * then for APPEND the items of @value not already there. */
    for (int pass = 0; pass < 2; pass++) {
        const char *src = pass == 0 ? cur : value;
        if (pass == 1 && !append)
            break;
        for (const char *p = src; *p;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            bool keep = pass == 0 ? (append || !list_has(value, p, n)) : !list_has(out, p, n);
            if (keep && n) {
                if (len)
                    out[len++] = ',';
                memcpy(out + len, p, n);
                len += n;
                out[len] = 0;
            }
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    return out;
}

/* Entry @i of either request's config list: name and value (NULL for a null
 * value) in the arena, and the operation (SET for AlterConfigs). -ENOMEM, or 1
 * when the entry is refused (@x filled). */
static int read_entry(struct kreq *req, bool incremental, const void *configs, int32_t i,
                      char **ret_name, char **ret_value, int8_t *ret_op, struct alter_result *x)
{
    buf_slice name_s, value_s;
    int8_t op = OP_SET;
    if (incremental) {
        const struct kafka_incremental_alter_configs_request_config *e =
            &((const struct kafka_incremental_alter_configs_request_config *)configs)[i];
        name_s = e->name;
        value_s = e->value;
        op = e->config_operation;
    } else {
        const struct kafka_alter_configs_request_config *e =
            &((const struct kafka_alter_configs_request_config *)configs)[i];
        name_s = e->name;
        value_s = e->value;
    }
    char *name = api_str(req, name_s);
    char *value = api_str(req, value_s);
    if (!name || (value_s.len >= 0 && !value))
        return -ENOMEM;
    if (op < OP_SET || op > OP_SUBTRACT) {
        refuse(x, KERR_INVALID_REQUEST, "unknown config operation");
        return 1;
    }
    if (op != OP_DELETE && !value) {
        char *m = arena_alloc(&req->arena, 160, 1);
        if (m)
            snprintf(m, 160, "config %.100s: a null value (use DELETE to remove it)", name);
        refuse(x, KERR_INVALID_REQUEST, m);
        return 1;
    }
    *ret_name = name;
    *ret_value = value;
    *ret_op = op;
    return 0;
}

/* One RPC op in the arena: set @name to @value, or remove it for DELETE. */
static Weir__Coord__AlterConfigOp *new_op(struct kreq *req, char *name, char *value, int8_t op)
{
    Weir__Coord__AlterConfigOp *o = api_alloc(req, 1, sizeof(*o));
    if (!o)
        return NULL;
    weir__coord__alter_config_op__init(o);
    o->name = name;
    o->value = op == OP_DELETE ? (char *)"" : value;
    o->remove = op == OP_DELETE;
    return o;
}

/* Fill @t's ops for one TOPIC resource of either request. Returns 0, -ENOMEM,
 * or 1 when the resource was answered locally (@x filled). */
static int build_ops(struct alter_ctx *c, const struct cstate_topic *cur, bool incremental,
                     const void *configs, int32_t n_configs, Weir__Coord__AlterTopicConfigsTopic *t,
                     struct alter_result *x)
{
    struct kreq *req = c->req;
    t->replace = !incremental; /* the coordinator removes the overrides not named */
    t->ops = api_alloc(req, (size_t)(n_configs > 0 ? n_configs : 0), sizeof(*t->ops));
    if (n_configs > 0 && !t->ops)
        return -ENOMEM;
    size_t n = 0;
    for (int32_t i = 0; i < n_configs; i++) {
        char *name, *value;
        int8_t op;
        int r = read_entry(req, incremental, configs, i, &name, &value, &op, x);
        if (r != 0)
            return r;
        if (op == OP_APPEND || op == OP_SUBTRACT) {
            const struct topic_config_def *d = topic_config_find(name);
            if (!d || (d->type != TOPIC_CONFIG_LIST && d->type != TOPIC_CONFIG_REPLICAS)) {
                char *m = arena_alloc(&req->arena, 160, 1);
                if (m)
                    snprintf(m, 160,
                             "config %.100s is not a list: APPEND and SUBTRACT do not apply", name);
                refuse(x, KERR_INVALID_CONFIG, m);
                return 1;
            }
            const char *now = cur ? cstate_topic_config(cur, name) : NULL;
            value = list_edit(req, now ? now : d->kafka_default, value, op == OP_APPEND);
            if (!value)
                return -ENOMEM;
            op = value[0] ? OP_SET : OP_DELETE; /* subtracted everything: back to the default */
        }
        if (!(t->ops[n++] = new_op(req, name, value, op)))
            return -ENOMEM;
    }
    t->n_ops = n;
    return 0;
}

/* The scope a BROKER resource name names: a broker id, or the cluster
 * default for the empty name (as in Kafka). false for anything else. */
static bool broker_scope(const char *name, int32_t *ret)
{
    if (!name[0]) {
        *ret = CSTATE_CLUSTER_DEFAULT;
        return true;
    }
    char *end;
    errno = 0;
    long id = strtol(name, &end, 10);
    if (errno || *end || end == name || name[0] == '-' || name[0] == '+' || id < 0 ||
        id > INT32_MAX)
        return false;
    *ret = (int32_t)id;
    return true;
}

/* Fill @br's ops for one BROKER resource of either request. AlterConfigs
 * replaces the scope's dynamic values (the coordinator removes the ones not
 * named). Returns 0, -ENOMEM, or 1 when answered locally (@x filled). */
static int build_broker_ops(struct alter_ctx *c, bool incremental, const void *configs,
                            int32_t n_configs, Weir__Coord__AlterBrokerConfigsResource *br,
                            struct alter_result *x)
{
    struct kreq *req = c->req;
    br->replace = !incremental;
    br->ops = api_alloc(req, (size_t)(n_configs > 0 ? n_configs : 0), sizeof(*br->ops));
    if (n_configs > 0 && !br->ops)
        return -ENOMEM;
    size_t n = 0;
    for (int32_t i = 0; i < n_configs; i++) {
        char *name, *value;
        int8_t op;
        int r = read_entry(req, incremental, configs, i, &name, &value, &op, x);
        if (r != 0)
            return r;
        if (op == OP_APPEND || op == OP_SUBTRACT) {
            char *m = arena_alloc(&req->arena, 200, 1);
            if (m)
                snprintf(m, 200,
                         "broker config %.100s is not a list: APPEND and SUBTRACT do not "
                         "apply",
                         name);
            refuse(x, KERR_INVALID_CONFIG, m);
            return 1;
        }
        if (!(br->ops[n++] = new_op(req, name, value, op)))
            return -ENOMEM;
    }
    br->n_ops = n;
    return 0;
}

/* Shared by both handlers; @body is the decoded request of either kind. */
static void alter_handle(struct broker_ctx *b, struct kreq *req, const void *body, bool incremental,
                         int32_t n_res, bool validate_only, void *resp)
{
    struct alter_ctx *c = calloc(1, sizeof(*c));
    int32_t n = n_res > 0 ? n_res : 0;
    struct alter_result *res = api_alloc(req, (size_t)n, sizeof(*res));
    Weir__Coord__AlterTopicConfigsTopic *ts = api_alloc(req, (size_t)n, sizeof(*ts));
    Weir__Coord__AlterTopicConfigsTopic **tp = api_alloc(req, (size_t)n, sizeof(*tp));
    Weir__Coord__AlterBrokerConfigsResource *bs = api_alloc(req, (size_t)n, sizeof(*bs));
    Weir__Coord__AlterBrokerConfigsResource **bp = api_alloc(req, (size_t)n, sizeof(*bp));
    if (!c || (n && (!res || !ts || !tp || !bs || !bp)))
        goto oom;
    c->max_offset = -1;
    c->b = b;
    c->req = req;
    c->incremental = incremental;
    c->n = n;
    c->res = res;
    c->resp = resp;
    c->timeout_ms = clamp_timeout(b);
    const struct cstate *s = coordclient_state(b->cc);
    size_t nt = 0, nb = 0;
    for (int32_t i = 0; i < n; i++) {
        int8_t rtype;
        buf_slice rname;
        const void *configs;
        int32_t n_configs;
        if (incremental) {
            const struct kafka_incremental_alter_configs_request *m = body;
            rtype = m->resources[i].resource_type;
            rname = m->resources[i].resource_name;
            configs = m->resources[i].configs;
            n_configs = m->resources[i].n_configs;
        } else {
            const struct kafka_alter_configs_request *m = body;
            rtype = m->resources[i].resource_type;
            rname = m->resources[i].resource_name;
            configs = m->resources[i].configs;
            n_configs = m->resources[i].n_configs;
        }
        struct alter_result *x = &res[i];
        x->topic_index = -1;
        x->broker_index = -1;
        if (rtype == RES_BROKER) {
            char *name = api_str(req, rname);
            if (!name)
                goto oom;
            Weir__Coord__AlterBrokerConfigsResource *br = &bs[nb];
            weir__coord__alter_broker_configs_resource__init(br);
            if (!broker_scope(name, &br->broker_id)) {
                refuse(x, KERR_INVALID_REQUEST,
                       "a broker resource name is a broker id, or empty for the cluster default");
                continue;
            }
            int r = build_broker_ops(c, incremental, configs, n_configs, br, x);
            if (r < 0)
                goto oom;
            if (r > 0)
                continue;
            x->broker_index = (int32_t)nb;
            bp[nb++] = br;
            continue;
        }
        if (rtype != RES_TOPIC) {
            refuse(x, KERR_INVALID_REQUEST,
                   "unsupported resource type: only topics can be altered");
            continue;
        }
        char *name = api_str(req, rname);
        if (!name)
            goto oom;
        Weir__Coord__AlterTopicConfigsTopic *t = &ts[nt];
        weir__coord__alter_topic_configs_topic__init(t);
        t->name = name;
        int r = build_ops(c, cstate_topic_by_name(s, name), incremental, configs, n_configs, t, x);
        if (r < 0)
            goto oom;
        if (r > 0)
            continue;
        x->topic_index = (int32_t)nt;
        tp[nt++] = t;
    }
    if (nt == 0 && nb == 0) {
        alter_reply(c, 0);
        return;
    }
    /* Both calls are counted before either is made: an answer given at once
     * must not reply while the other is still to be sent. */
    c->pending = (nt > 0) + (nb > 0);
    if (nt > 0) {
        Weir__Coord__AlterTopicConfigsRequest creq = WEIR__COORD__ALTER_TOPIC_CONFIGS_REQUEST__INIT;
        creq.n_topics = nt;
        creq.topics = tp;
        creq.validate_only = validate_only;
        if (coordclient_call(b->cc, COORD_M_ALTER_TOPIC_CONFIGS, &creq.base, c->timeout_ms,
                             alter_done, c) < 0)
            alter_done(-1, NULL, "coordinator unavailable", c);
    }
    if (nb > 0) {
        Weir__Coord__AlterBrokerConfigsRequest breq =
            WEIR__COORD__ALTER_BROKER_CONFIGS_REQUEST__INIT;
        breq.n_resources = nb;
        breq.resources = bp;
        breq.validate_only = validate_only;
        if (coordclient_call(b->cc, COORD_M_ALTER_BROKER_CONFIGS, &breq.base, c->timeout_ms,
                             alter_broker_done, c) < 0)
            alter_broker_done(-1, NULL, "coordinator unavailable", c);
    }
    return;
oom:
    free(c);
    kreq_close(req);
}

void api_alter_configs_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_alter_configs_request *m = body;
    struct kafka_alter_configs_response *resp = api_alloc(req, 1, sizeof(*resp));
    if (!resp)
        goto oom;
    kafka_alter_configs_response_init(resp);
    int32_t n = m->n_resources > 0 ? m->n_resources : 0;
    resp->n_responses = n;
    resp->responses = api_alloc(req, (size_t)n, sizeof(*resp->responses));
    if (n && !resp->responses)
        goto oom;
    for (int32_t i = 0; i < n; i++) {
        resp->responses[i].resource_type = m->resources[i].resource_type;
        resp->responses[i].resource_name = m->resources[i].resource_name;
        resp->responses[i].error_message = api_slice(NULL);
    }
    alter_handle(b, req, body, false, n, m->validate_only, resp);
    return;
oom:
    kreq_close(req);
}

void api_incremental_alter_configs_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_incremental_alter_configs_request *m = body;
    struct kafka_incremental_alter_configs_response *resp = api_alloc(req, 1, sizeof(*resp));
    if (!resp)
        goto oom;
    kafka_incremental_alter_configs_response_init(resp);
    int32_t n = m->n_resources > 0 ? m->n_resources : 0;
    resp->n_responses = n;
    resp->responses = api_alloc(req, (size_t)n, sizeof(*resp->responses));
    if (n && !resp->responses)
        goto oom;
    for (int32_t i = 0; i < n; i++) {
        resp->responses[i].resource_type = m->resources[i].resource_type;
        resp->responses[i].resource_name = m->resources[i].resource_name;
        resp->responses[i].error_message = api_slice(NULL);
    }
    alter_handle(b, req, body, true, n, m->validate_only, resp);
    return;
oom:
    kreq_close(req);
}
