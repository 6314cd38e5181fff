/* api_group: the membership APIs of the classic group protocol — JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup, ListGroups, DescribeGroups, DeleteGroups.
 * Each decodes into broker/group/groups.c's calls and encodes its answer; the
 * state machine, its checks and its parking live there. Parked JoinGroup /
 * SyncGroup / DeleteGroup requests keep their kreq (and its arena) until
 * groups answers them. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "broker/broker_config.h"
#include "broker/group/groups.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"

/* Kafka's AclOperation bits a group's describer may use without an authorizer:
 * READ (3), DELETE (6), DESCRIBE (8). */
#define GROUP_AUTHORIZED_OPS ((1 << 3) | (1 << 6) | (1 << 8))

static const char *arena_cstr(struct kreq *req, buf_slice s)
{
    const char *c = api_str(req, s);
    return c ? c : "";
}

/* Kafka reports the client's address as "/host". */
static const char *client_host(struct kreq *req)
{
    const char *peer = kreq_peer(req);
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    char *s = api_alloc(req, n + 2, 1);
    if (!s)
        return "";
    s[0] = '/';
    memcpy(s + 1, peer, n);
    return s;
}

/* ---- JoinGroup ---------------------------------------------------------------------- */

static void join_done(void *ud, const struct groups_join_result *res)
{
    struct kreq *req = ud;
    struct kafka_join_group_response resp;
    kafka_join_group_response_init(&resp);
    resp.error_code = res->error;
    resp.generation_id = res->generation;
    resp.protocol_name = api_slice(api_str(req, api_slice(res->protocol ? res->protocol : "")));
    resp.leader = api_slice(api_str(req, api_slice(res->leader)));
    resp.member_id = api_slice(api_str(req, api_slice(res->member_id)));
    if (res->n_members > 0) {
        resp.members = api_alloc(req, (size_t)res->n_members, sizeof(*resp.members));
        if (!resp.members) {
            kreq_close(req);
            return;
        }
        resp.n_members = res->n_members;
        for (int32_t i = 0; i < res->n_members; i++) {
            const struct groups_join_member *m = &res->members[i];
            resp.members[i].member_id = api_slice(api_str(req, api_slice(m->member_id)));
            resp.members[i].group_instance_id =
                m->instance_id ? api_slice(api_str(req, api_slice(m->instance_id))) : api_slice(NULL);
            /* the member's metadata lives in groups; the reply is encoded now */
            resp.members[i].metadata = m->metadata;
        }
    }
    kreq_reply(req, &resp, NULL, NULL);
}

void api_join_group_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_join_group_request *r = body;
    int16_t v = req->hdr.api_version;
    struct groups_protocol *ps = NULL;
    if (r->n_protocols > 0 && !(ps = api_alloc(req, (size_t)r->n_protocols, sizeof(*ps)))) {
        kreq_close(req);
        return;
    }
    for (int32_t i = 0; i < r->n_protocols; i++) {
        ps[i].name = arena_cstr(req, r->protocols[i].name);
        ps[i].metadata = r->protocols[i].metadata;
    }
    struct groups_join_req jr = {
        .group_id = arena_cstr(req, r->group_id),
        .member_id = arena_cstr(req, r->member_id),
        .instance_id = r->group_instance_id.len >= 0 ? api_str(req, r->group_instance_id) : NULL,
        .client_id = arena_cstr(req, req->hdr.client_id),
        .client_host = client_host(req),
        .protocol_type = arena_cstr(req, r->protocol_type),
        .session_timeout_ms = r->session_timeout_ms,
        .rebalance_timeout_ms = v >= 1 ? r->rebalance_timeout_ms : -1,
        .n_protocols = r->n_protocols,
        .protocols = ps,
        .require_known_member = v >= 4,
    };
    groups_join(b->groups, &jr, join_done, req);
}

/* ---- SyncGroup ---------------------------------------------------------------------- */

static void sync_done(void *ud, int16_t error, buf_slice assignment)
{
    struct kreq *req = ud;
    struct kafka_sync_group_response resp;
    kafka_sync_group_response_init(&resp);
    resp.error_code = error;
    resp.assignment = assignment;
    kreq_reply(req, &resp, NULL, NULL);
}

void api_sync_group_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_sync_group_request *r = body;
    struct groups_assignment *as = NULL;
    if (r->n_assignments > 0 &&
        !(as = api_alloc(req, (size_t)r->n_assignments, sizeof(*as)))) {
        kreq_close(req);
        return;
    }
    for (int32_t i = 0; i < r->n_assignments; i++) {
        as[i].member_id = arena_cstr(req, r->assignments[i].member_id);
        as[i].assignment = r->assignments[i].assignment;
    }
    groups_sync(b->groups, arena_cstr(req, r->group_id), r->generation_id,
                arena_cstr(req, r->member_id),
                r->group_instance_id.len >= 0 ? api_str(req, r->group_instance_id) : NULL,
                r->n_assignments, as, sync_done, req);
}

/* ---- Heartbeat, LeaveGroup ------------------------------------------------------------ */

void api_heartbeat_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_heartbeat_request *r = body;
    struct kafka_heartbeat_response resp;
    kafka_heartbeat_response_init(&resp);
    resp.error_code = groups_heartbeat(
        b->groups, arena_cstr(req, r->group_id), r->generation_id, arena_cstr(req, r->member_id),
        r->group_instance_id.len >= 0 ? api_str(req, r->group_instance_id) : NULL);
    kreq_reply(req, &resp, NULL, NULL);
}

void api_leave_group_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_leave_group_request *r = body;
    struct kafka_leave_group_response resp;
    kafka_leave_group_response_init(&resp);
    const char *gid = arena_cstr(req, r->group_id);
    resp.error_code = groups_leave_check(b->groups, gid);
    if (resp.error_code == KERR_NONE) {
        if (req->hdr.api_version < 3) {
            resp.error_code = groups_leave(b->groups, gid, arena_cstr(req, r->member_id), NULL);
        } else if (r->n_members > 0) {
            resp.members = api_alloc(req, (size_t)r->n_members, sizeof(*resp.members));
            if (!resp.members) {
                kreq_close(req);
                return;
            }
            resp.n_members = r->n_members;
            for (int32_t i = 0; i < r->n_members; i++) {
                const struct kafka_leave_group_request_member *m = &r->members[i];
                resp.members[i].member_id = m->member_id;
                resp.members[i].group_instance_id = m->group_instance_id;
                resp.members[i].error_code = groups_leave(
                    b->groups, gid, arena_cstr(req, m->member_id),
                    m->group_instance_id.len >= 0 ? api_str(req, m->group_instance_id) : NULL);
            }
        }
    }
    kreq_reply(req, &resp, NULL, NULL);
}

/* ---- ListGroups ---------------------------------------------------------------------- */

struct list_ctx {
    struct kreq *req;
    struct kafka_list_groups_request *r;
    struct kafka_list_groups_response_group *out;
    int32_t n, cap;
    bool nomem;
};

static bool state_wanted(const struct kafka_list_groups_request *r, const char *state)
{
    if (r->n_states_filter <= 0)
        return true;
    size_t n = strlen(state);
    for (int32_t i = 0; i < r->n_states_filter; i++) /* Kafka parses the names case-blind */
        if ((size_t)r->states_filter[i].len == n &&
            strncasecmp((const char *)r->states_filter[i].ptr, state, n) == 0)
            return true;
    return false;
}

static void list_one(void *ud, const struct groups_listing *l)
{
    struct list_ctx *c = ud;
    if (c->nomem || !state_wanted(c->r, l->state))
        return;
    if (c->n == c->cap) {
        int32_t ncap = c->cap ? c->cap * 2 : 16;
        struct kafka_list_groups_response_group *n =
            api_alloc(c->req, (size_t)ncap, sizeof(*n));
        if (!n) {
            c->nomem = true;
            return;
        }
        if (c->n)
            memcpy(n, c->out, sizeof(*n) * (size_t)c->n);
        c->out = n;
        c->cap = ncap;
    }
    struct kafka_list_groups_response_group *g = &c->out[c->n++];
    g->group_id = api_slice(api_str(c->req, api_slice(l->group_id)));
    g->protocol_type = api_slice(api_str(c->req, api_slice(l->protocol_type)));
    g->group_state = api_slice(l->state); /* static strings */
}

void api_list_groups_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct list_ctx c = {.req = req, .r = body};
    groups_list(b->groups, list_one, &c);
    if (c.nomem) {
        kreq_close(req);
        return;
    }
    struct kafka_list_groups_response resp;
    kafka_list_groups_response_init(&resp);
    resp.n_groups = c.n;
    resp.groups = c.out;
    kreq_reply(req, &resp, NULL, NULL);
}

/* ---- DescribeGroups -------------------------------------------------------------------- */

static buf_slice arena_bytes(struct kreq *req, buf_slice s)
{
    buf_slice out = {(const uint8_t *)"", 0};
    if (s.len > 0) {
        uint8_t *p = api_alloc(req, (size_t)s.len, 1);
        if (p) {
            memcpy(p, s.ptr, (size_t)s.len);
            out.ptr = p;
            out.len = s.len;
        }
    }
    return out;
}

void api_describe_groups_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_describe_groups_request *r = body;
    struct kafka_describe_groups_response resp;
    kafka_describe_groups_response_init(&resp);
    if (r->n_groups > 0 &&
        !(resp.groups = api_alloc(req, (size_t)r->n_groups, sizeof(*resp.groups)))) {
        kreq_close(req);
        return;
    }
    resp.n_groups = r->n_groups;
    for (int32_t i = 0; i < r->n_groups; i++) {
        struct kafka_describe_groups_response_group *out = &resp.groups[i];
        struct groups_description d;
        groups_describe(b->groups, arena_cstr(req, r->groups[i]), &d);
        out->error_code = d.error;
        out->group_id = r->groups[i];
        out->group_state = api_slice(d.state);
        out->protocol_type = api_slice(api_str(req, api_slice(d.protocol_type)));
        out->protocol_data = api_slice(api_str(req, api_slice(d.protocol)));
        out->authorized_operations =
            r->include_authorized_operations ? GROUP_AUTHORIZED_OPS : INT32_MIN;
        if (d.n_members > 0 &&
            !(out->members = api_alloc(req, (size_t)d.n_members, sizeof(*out->members)))) {
            kreq_close(req);
            return;
        }
        out->n_members = d.n_members;
        for (int32_t k = 0; k < d.n_members; k++) {
            const struct groups_described_member *m = &d.members[k];
            out->members[k].member_id = api_slice(api_str(req, api_slice(m->member_id)));
            out->members[k].group_instance_id =
                m->instance_id ? api_slice(api_str(req, api_slice(m->instance_id))) : api_slice(NULL);
            out->members[k].client_id = api_slice(api_str(req, api_slice(m->client_id)));
            out->members[k].client_host = api_slice(api_str(req, api_slice(m->client_host)));
            out->members[k].member_metadata = arena_bytes(req, m->metadata);
            out->members[k].member_assignment = arena_bytes(req, m->assignment);
        }
    }
    kreq_reply(req, &resp, NULL, NULL);
}

/* ---- DeleteGroups ---------------------------------------------------------------------- */

struct delete_ctx {
    struct kreq *req;
    struct kafka_delete_groups_response resp;
    int32_t pending; /* groups not answered yet, +1 while the handler runs */
};

struct delete_one {
    struct delete_ctx *c;
    int32_t i;
};

static void delete_finish(struct delete_ctx *c)
{
    if (--c->pending == 0)
        kreq_reply(c->req, &c->resp, NULL, NULL);
}

static void delete_done(void *ud, int16_t error)
{
    struct delete_one *o = ud;
    o->c->resp.results[o->i].error_code = error;
    delete_finish(o->c);
}

void api_delete_groups_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_delete_groups_request *r = body;
    struct delete_ctx *c = api_alloc(req, 1, sizeof(*c));
    struct delete_one *ones = NULL;
    if (!c || (r->n_groups_names > 0 &&
               (!(ones = api_alloc(req, (size_t)r->n_groups_names, sizeof(*ones))) ||
                !(c->resp.results =
                      api_alloc(req, (size_t)r->n_groups_names, sizeof(*c->resp.results)))))) {
        kreq_close(req);
        return;
    }
    struct kafka_delete_groups_response_result *res = c->resp.results;
    kafka_delete_groups_response_init(&c->resp);
    c->resp.results = res;
    c->req = req;
    c->resp.n_results = r->n_groups_names;
    c->pending = r->n_groups_names + 1;
    for (int32_t i = 0; i < r->n_groups_names; i++) {
        c->resp.results[i].group_id = r->groups_names[i];
        ones[i].c = c;
        ones[i].i = i;
        groups_delete(b->groups, arena_cstr(req, r->groups_names[i]), delete_done, &ones[i]);
    }
    delete_finish(c);
}

/* ---- the broker's groups on the event loop ------------------------------------------- */

static int64_t loop_now(void *ud)
{
    (void)ud;
    return clock_mono_ms();
}

static void loop_arm(void *ud, int64_t deadline_ms)
{
    struct broker_ctx *b = ud;
    int64_t d = deadline_ms - clock_mono_ms();
    if (d < 0)
        d = 0;
    struct timeval tv = {.tv_sec = (time_t)(d / 1000), .tv_usec = (suseconds_t)(d % 1000) * 1000};
    evtimer_add(b->group_timer, &tv); /* replaces the earlier arming */
}

static void loop_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    struct broker_ctx *b = ud;
    groups_tick(b->groups);
}

int api_groups_start(struct broker_ctx *b, struct gstore *gs)
{
    b->group_timer = evtimer_new(b->base, loop_tick, b);
    if (!b->group_timer)
        return -ENOMEM;
    struct groups_options o = {
        .initial_rebalance_delay_ms = b->s->group_initial_rebalance_delay_ms,
        .min_session_timeout_ms = b->s->group_min_session_timeout_ms,
        .max_session_timeout_ms = b->s->group_max_session_timeout_ms,
        .max_size = b->s->group_max_size,
        /* a group record must fit in one batch of __consumer_offsets */
        .max_record_bytes = b->s->message_max_bytes - 128,
        .gs = gs,
        .now_ms = loop_now,
        .arm = loop_arm,
        .ud = b,
    };
    int r = groups_new(&o, &b->groups);
    if (r < 0) {
        event_free(b->group_timer);
        b->group_timer = NULL;
    }
    return r;
}

void api_groups_stop(struct broker_ctx *b)
{
    groups_free(b->groups);
    b->groups = NULL;
    if (b->group_timer)
        event_free(b->group_timer);
    b->group_timer = NULL;
}
