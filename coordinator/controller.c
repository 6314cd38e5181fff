/* controller: request validation, elections, placement calls and record
 * building. See controller.h for the rules; everything here reads the state and
 * writes records, nothing else. */
#include "coordinator/controller.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/storage/storage_config.h"
#include "common/config.h"
#include "common/dyncfg.h"
#include "common/topic_config.h"
#include "coordinator/coord_config.h"
#include "coordinator/placement.h"
#include "metadata.pb-c.h"

typedef Weir__Meta__MetadataRecord MetaRecord;

void cctl_config_defaults(struct cctl_config *cfg)
{
    *cfg = (struct cctl_config){
        .num_partitions = 1,
        .default_replication_factor = 1,
        .min_insync_replicas = 1,
        .unclean_leader_election = false,
        .max_partitions_per_request = CCTL_MAX_PARTITIONS_PER_REQUEST,
    };
}

static int kerr(struct cctl_error *err, int16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set a Kafka error; the C result of the call is still 0. */
static int kerr(struct cctl_error *err, int16_t code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return 0;
}

static void ok(struct cctl_error *err)
{
    err->code = KERR_NONE;
    err->message[0] = 0;
}

static bool contains(const int32_t *v, size_t n, int32_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

static bool has_dup(const int32_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (contains(v, i, v[i]))
            return true;
    return false;
}

static int emit(struct cstate_records *out, MetaRecord *m)
{
    return cstate_records_add(out, m);
}

/* ---- broker states under a pending change ---------------------------------------
 * Elections are computed for the state as it will be once this request's broker
 * record is applied, so a broker's state can be overridden for the computation. */

struct ovr {
    int32_t id; /* -1: no override */
    enum cstate_broker_state st;
};

static const struct ovr NO_OVR = {-1, CSTATE_BROKER_REGISTERED};

static bool bstate(const struct cstate *s, const struct ovr *o, int32_t id,
                   enum cstate_broker_state *st)
{
    if (o->id >= 0 && id == o->id) {
        *st = o->st;
        return true;
    }
    const struct cstate_broker *b = cstate_broker(s, id);
    if (!b)
        return false;
    *st = b->state;
    return true;
}

static bool eligible(const struct cstate *s, const struct ovr *o, int32_t id)
{
    enum cstate_broker_state st;
    return bstate(s, o, id, &st) && st == CSTATE_BROKER_REGISTERED;
}

static bool alive(const struct cstate *s, const struct ovr *o, int32_t id)
{
    enum cstate_broker_state st;
    return bstate(s, o, id, &st) && st != CSTATE_BROKER_FENCED;
}

/* The cluster-wide unclean election default: dynamic, else static. */
static bool cluster_unclean(const struct cstate *s, const struct cctl_ctx *ctx)
{
    const char *v =
        cstate_broker_config(s, CSTATE_CLUSTER_DEFAULT, "unclean.leader.election.enable");
    return v ? !strcasecmp(v, "true") : ctx->cfg.unclean_leader_election;
}

bool cctl_topic_unclean(const struct cstate *s, const struct cctl_ctx *ctx,
                        const struct cstate_topic *t)
{
    const char *v = cstate_topic_config(t, "unclean.leader.election.enable");
    return v ? !strcasecmp(v, "true") : cluster_unclean(s, ctx);
}

/* A partition's leader and ISR. */
struct plead {
    int32_t leader;
    size_t n_isr;
    int32_t isr[CSTATE_MAX_REPLICAS];
};

/* The order in which @p's replicas are considered for leadership: during a
 * reassignment the target replicas (those not being removed) come first, as
 * Kafka elects from the target ISR, and a replica being removed only when no
 * target replica can lead; otherwise simply the replica order. */
static size_t elect_order(const struct cstate_partition *p, int32_t *ret)
{
    const int32_t *rep = cstate_part_replicas(p);
    const int32_t *rem = cstate_part_removing(p);
    size_t n = 0;
    for (size_t i = 0; i < p->n_replicas; i++)
        if (!contains(rem, p->n_removing, rep[i]))
            ret[n++] = rep[i];
    for (size_t i = 0; i < p->n_replicas; i++)
        if (contains(rem, p->n_removing, rep[i]))
            ret[n++] = rep[i];
    return n;
}

int32_t cctl_preferred_replica(const struct cstate_partition *p)
{
    const int32_t *rep = cstate_part_replicas(p);
    for (size_t i = 0; i < p->n_replicas; i++)
        if (!contains(cstate_part_removing(p), p->n_removing, rep[i]))
            return rep[i];
    return rep[0];
}

/* Choose the leader and ISR of partition @p given ISR @isr (its own, or one
 * requested) and broker states (see controller.h for the rules). */
static void elect(const struct cstate *s, const struct ovr *o, bool unclean,
                  const struct cstate_partition *p, const int32_t *isr, size_t n_isr,
                  struct plead *ret)
{
    int32_t rep[CSTATE_MAX_REPLICAS];
    size_t n_rep = elect_order(p, rep);
    int32_t leader = p->leader;
    ret->n_isr = 0;
    for (size_t i = 0; i < n_isr; i++)
        if (eligible(s, o, isr[i]))
            ret->isr[ret->n_isr++] = isr[i];
    if (ret->n_isr) {
        if (leader < 0 || !contains(ret->isr, ret->n_isr, leader)) {
            for (size_t i = 0; i < n_rep; i++) {
                if (contains(ret->isr, ret->n_isr, rep[i])) {
                    leader = rep[i];
                    break;
                }
            }
        }
        ret->leader = leader;
        return;
    }
    /* No live ISR member. A shutting-down leader keeps leading: nobody else
     * can take over without losing acknowledged records. */
    bool in_isr = leader >= 0 && contains(isr, n_isr, leader);
    if (in_isr && alive(s, o, leader)) {
        ret->leader = leader;
        ret->isr[0] = leader;
        ret->n_isr = 1;
        return;
    }
    ret->leader = -1;
    ret->isr[0] = in_isr ? leader : isr[0];
    ret->n_isr = 1;
    if (!unclean)
        return;
    /* An adding replica has not caught up: not even an unclean leader. */
    for (size_t i = 0; i < n_rep; i++) {
        if (eligible(s, o, rep[i]) && !contains(cstate_part_adding(p), p->n_adding, rep[i])) {
            ret->leader = rep[i];
            ret->isr[0] = rep[i];
            return;
        }
    }
}

static bool same_set(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!contains(b, nb, a[i]))
            return false;
    return true;
}

/* Append a PartitionChange for partition @idx of @t moving it from @p to @to,
 * unless nothing changes. *ret_emitted says whether it did. */
static int emit_change(struct cstate_records *out, const struct cstate_topic *t, int32_t idx,
                       const struct cstate_partition *p, const struct plead *to, bool *ret_emitted)
{
    bool leader_changed = to->leader != p->leader;
    if (!leader_changed && same_set(to->isr, to->n_isr, cstate_part_isr(p), p->n_isr)) {
        *ret_emitted = false;
        return 0;
    }
    /* Epochs that cannot grow any more: leave the partition alone rather than
     * write a record that apply would refuse. Unreachable in practice. */
    if (p->partition_epoch == INT32_MAX || (leader_changed && p->leader_epoch == INT32_MAX)) {
        *ret_emitted = false;
        return 0;
    }
    Weir__Meta__PartitionChangeRecord pc;
    weir__meta__partition_change_record__init(&pc);
    pc.topic_id.data = (uint8_t *)t->id;
    pc.topic_id.len = CSTATE_UUID_LEN;
    pc.partition = idx;
    pc.leader = to->leader;
    pc.leader_epoch = p->leader_epoch + (leader_changed ? 1 : 0);
    pc.isr = (int32_t *)to->isr;
    pc.n_isr = to->n_isr;
    pc.partition_epoch = p->partition_epoch + 1;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_PARTITION_CHANGE;
    m.partition_change = &pc;
    int rc = emit(out, &m);
    if (rc == 0)
        *ret_emitted = true;
    return rc;
}

/* Re-elect partition @idx of @t under @o, appending a change if there is one.
 * *ret_leader (may be NULL) gets the resulting leader. */
static int reelect(const struct cstate *s, const struct cctl_ctx *ctx, const struct ovr *o,
                   const struct cstate_topic *t, int32_t idx, struct cstate_records *out,
                   int32_t *ret_leader)
{
    const struct cstate_partition *p = &t->parts[idx];
    struct plead to;
    elect(s, o, cctl_topic_unclean(s, ctx, t), p, cstate_part_isr(p), p->n_isr, &to);
    bool emitted = false;
    int rc = emit_change(out, t, idx, p, &to, &emitted);
    if (rc == 0 && ret_leader)
        *ret_leader = emitted ? to.leader : p->leader;
    return rc;
}

/* ---- cluster and brokers ------------------------------------------------------------ */

static void base64url(const uint8_t *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = al[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = al[(acc << (6 - bits)) & 63];
    out[o] = 0;
}

static void random_uuid(const struct cctl_ctx *ctx, uint8_t id[CSTATE_UUID_LEN])
{
    for (;;) {
        uint64_t a = ctx->rand(ctx->rand_arg), b = ctx->rand(ctx->rand_arg);
        for (int i = 0; i < 8; i++) {
            id[i] = (uint8_t)(a >> (8 * i));
            id[8 + i] = (uint8_t)(b >> (8 * i));
        }
        id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
        id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* variant 1 */
        /* Kafka avoids ids whose base64 form starts with '-' (62): a CLI would
         * read it as an option. */
        if ((id[0] >> 2) != 62)
            return;
    }
}

int cctl_bootstrap(const struct cstate *s, const struct cctl_ctx *ctx, const char *cluster_id,
                   struct cstate_records *out, struct cctl_error *err)
{
    ok(err);
    if (s->cluster_id)
        return 0;
    char gen[32];
    if (!cluster_id) {
        uint8_t id[CSTATE_UUID_LEN];
        random_uuid(ctx, id);
        base64url(id, sizeof(id), gen);
        cluster_id = gen;
    }
    if (!*cluster_id || strlen(cluster_id) > CSTATE_MAX_STRING)
        return kerr(err, KERR_INVALID_REQUEST, "invalid cluster id");
    Weir__Meta__BootstrapRecord b;
    weir__meta__bootstrap_record__init(&b);
    b.cluster_id = (char *)cluster_id;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_BOOTSTRAP;
    m.bootstrap = &b;
    return emit(out, &m);
}

static bool str_ok(const char *v, bool need)
{
    return (!need || (v && *v)) && (!v || strlen(v) <= CSTATE_MAX_STRING);
}

static bool endpoint_ok(const struct cstate_endpoint *e)
{
    return str_ok(e->host, true) && str_ok(e->listener, false) &&
           str_ok(e->security_protocol, false) && e->port >= 1 && e->port <= 65535;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static void endpoint_msg(const struct cstate_endpoint *e, Weir__Meta__Endpoint *m)
{
    weir__meta__endpoint__init(m);
    m->listener = (char *)nz(e->listener);
    m->host = (char *)nz(e->host);
    m->port = e->port;
    m->security_protocol = (char *)nz(e->security_protocol);
}

int cctl_register_broker(const struct cstate *s, const struct cctl_ctx *ctx,
                         const struct cctl_register_req *req, struct cstate_records *out,
                         int64_t *ret_epoch, struct cctl_error *err)
{
    ok(err);
    if (req->broker_id < 0)
        return kerr(err, KERR_INVALID_REQUEST, "invalid broker id %d", req->broker_id);
    bool zero = true;
    for (size_t i = 0; i < CSTATE_UUID_LEN; i++)
        zero = zero && !req->incarnation[i];
    if (zero)
        return kerr(err, KERR_INVALID_REQUEST, "broker %d: zero incarnation id", req->broker_id);
    if (req->n_endpoints > CSTATE_MAX_ENDPOINTS || !str_ok(req->rack, false))
        return kerr(err, KERR_INVALID_REQUEST, "broker %d: too many endpoints or rack too long",
                    req->broker_id);
    for (size_t i = 0; i < req->n_endpoints; i++) {
        if (!endpoint_ok(&req->endpoints[i]))
            return kerr(err, KERR_INVALID_REQUEST, "broker %d: invalid endpoint %zu",
                        req->broker_id, i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(nz(req->endpoints[i].listener), nz(req->endpoints[j].listener)))
                return kerr(err, KERR_INVALID_REQUEST, "broker %d: listener %s given twice",
                            req->broker_id, nz(req->endpoints[i].listener));
    }
    if (req->replication && !endpoint_ok(req->replication))
        return kerr(err, KERR_INVALID_REQUEST, "broker %d: invalid replication endpoint",
                    req->broker_id);

    const struct cstate_broker *b = cstate_broker(s, req->broker_id);
    if (b && b->state != CSTATE_BROKER_FENCED) {
        if (!memcmp(b->incarnation, req->incarnation, CSTATE_UUID_LEN)) {
            *ret_epoch = b->epoch; /* a retry of a registration that succeeded */
            return 0;
        }
        return kerr(err, KERR_DUPLICATE_BROKER_REGISTRATION,
                    "broker %d is registered by another incarnation whose session is live "
                    "(epoch %" PRId64 ")",
                    req->broker_id, b->epoch);
    }

    int64_t epoch = s->next_broker_epoch;
    Weir__Meta__Endpoint eps[CSTATE_MAX_ENDPOINTS], *ep_ptrs[CSTATE_MAX_ENDPOINTS], repl;
    for (size_t i = 0; i < req->n_endpoints; i++) {
        endpoint_msg(&req->endpoints[i], &eps[i]);
        ep_ptrs[i] = &eps[i];
    }
    Weir__Meta__RegisterBrokerRecord r;
    weir__meta__register_broker_record__init(&r);
    r.broker_id = req->broker_id;
    r.incarnation_id.data = (uint8_t *)req->incarnation;
    r.incarnation_id.len = CSTATE_UUID_LEN;
    r.broker_epoch = epoch;
    r.endpoints = ep_ptrs;
    r.n_endpoints = req->n_endpoints;
    if (req->replication) {
        endpoint_msg(req->replication, &repl);
        r.replication_endpoint = &repl;
    }
    if (req->rack)
        r.rack = (char *)req->rack;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_REGISTER_BROKER;
    m.register_broker = &r;
    size_t mark = out->n;
    int rc = emit(out, &m);

    /* Offline partitions it can lead now. */
    struct ovr o = {req->broker_id, CSTATE_BROKER_REGISTERED};
    for (const struct cstate_topic *t = s->first_topic; t && rc == 0; t = t->next)
        for (int32_t i = 0; i < t->n_parts && rc == 0; i++)
            if (t->parts[i].leader < 0 && cstate_part_is_replica(&t->parts[i], req->broker_id))
                rc = reelect(s, ctx, &o, t, i, out, NULL);
    if (rc < 0) {
        cstate_records_truncate(out, mark);
        return rc;
    }
    *ret_epoch = epoch;
    return 0;
}

/* Kafka error for a broker request at @epoch, or KERR_NONE. */
static int16_t epoch_error(const struct cstate *s, int32_t id, int64_t epoch, char *msg, size_t len)
{
    const struct cstate_broker *b = cstate_broker(s, id);
    if (!b) {
        snprintf(msg, len, "broker %d is not registered", id);
        return KERR_BROKER_ID_NOT_REGISTERED;
    }
    if (b->epoch != epoch || b->state == CSTATE_BROKER_FENCED) {
        snprintf(msg, len, "broker %d epoch %" PRId64 " is stale (current epoch %" PRId64 ", %s)",
                 id, epoch, b->epoch, cstate_broker_state_name(b->state));
        return KERR_STALE_BROKER_EPOCH;
    }
    return KERR_NONE;
}

int cctl_check_broker_epoch(const struct cstate *s, int32_t broker_id, int64_t broker_epoch,
                            struct cctl_error *err)
{
    ok(err);
    err->code = epoch_error(s, broker_id, broker_epoch, err->message, sizeof(err->message));
    return 0;
}

/* Re-elect every partition @id is a replica of, under @o. *ret_leads counts
 * the partitions it leads afterwards. */
static int reelect_broker(const struct cstate *s, const struct cctl_ctx *ctx, const struct ovr *o,
                          int32_t id, struct cstate_records *out, int32_t *ret_leads)
{
    int32_t leads = 0;
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        for (int32_t i = 0; i < t->n_parts; i++) {
            if (!cstate_part_is_replica(&t->parts[i], id))
                continue;
            int32_t leader;
            int rc = reelect(s, ctx, o, t, i, out, &leader);
            if (rc < 0)
                return rc;
            leads += leader == id;
        }
    }
    *ret_leads = leads;
    return 0;
}

int cctl_fence_broker(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                      int64_t broker_epoch, struct cstate_records *out, struct cctl_error *err)
{
    if (cctl_check_broker_epoch(s, broker_id, broker_epoch, err), err->code)
        return 0;
    size_t mark = out->n;
    struct ovr o = {broker_id, CSTATE_BROKER_FENCED};
    int32_t leads;
    int rc = reelect_broker(s, ctx, &o, broker_id, out, &leads);
    if (rc == 0 && leads) {
        /* Only an epoch overflow keeps a fenced broker leading. */
        cstate_records_truncate(out, mark);
        return kerr(err, KERR_INVALID_REQUEST, "broker %d: leaderships cannot be moved", broker_id);
    }
    if (rc == 0) {
        Weir__Meta__FenceBrokerRecord f;
        weir__meta__fence_broker_record__init(&f);
        f.broker_id = broker_id;
        f.broker_epoch = broker_epoch;
        MetaRecord m;
        weir__meta__metadata_record__init(&m);
        m.record_case = WEIR__META__METADATA_RECORD__RECORD_FENCE_BROKER;
        m.fence_broker = &f;
        rc = emit(out, &m);
    }
    if (rc < 0)
        cstate_records_truncate(out, mark);
    return rc;
}

int cctl_controlled_shutdown(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                             int64_t broker_epoch, struct cstate_records *out,
                             int32_t *ret_remaining, struct cctl_error *err)
{
    if (cctl_check_broker_epoch(s, broker_id, broker_epoch, err), err->code)
        return 0;
    size_t mark = out->n;
    int rc = 0;
    if (cstate_broker(s, broker_id)->state == CSTATE_BROKER_REGISTERED) {
        Weir__Meta__BrokerControlledShutdownRecord c;
        weir__meta__broker_controlled_shutdown_record__init(&c);
        c.broker_id = broker_id;
        c.broker_epoch = broker_epoch;
        MetaRecord m;
        weir__meta__metadata_record__init(&m);
        m.record_case = WEIR__META__METADATA_RECORD__RECORD_CONTROLLED_SHUTDOWN;
        m.controlled_shutdown = &c;
        rc = emit(out, &m);
    }
    struct ovr o = {broker_id, CSTATE_BROKER_CONTROLLED_SHUTDOWN};
    int32_t leads = 0;
    if (rc == 0)
        rc = reelect_broker(s, ctx, &o, broker_id, out, &leads);
    if (rc < 0) {
        cstate_records_truncate(out, mark);
        return rc;
    }
    *ret_remaining = leads;
    return 0;
}

int cctl_unregister_broker(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                           struct cstate_records *out, struct cctl_error *err)
{
    ok(err);
    const struct cstate_broker *b = cstate_broker(s, broker_id);
    if (!b)
        return kerr(err, KERR_BROKER_ID_NOT_REGISTERED, "broker %d is not registered", broker_id);
    if (b->state != CSTATE_BROKER_FENCED)
        return kerr(err, KERR_INVALID_REQUEST, "broker %d has a live session", broker_id);
    Weir__Meta__UnregisterBrokerRecord u;
    weir__meta__unregister_broker_record__init(&u);
    u.broker_id = broker_id;
    u.broker_epoch = b->epoch;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_UNREGISTER_BROKER;
    m.unregister_broker = &u;
    return emit(out, &m);
}

/* ---- producer ids ------------------------------------------------------------------------- */

int cctl_allocate_producer_ids(const struct cstate *s, int32_t broker_id, int64_t broker_epoch,
                               struct cstate_records *out, int64_t *ret_first, int32_t *ret_count,
                               struct cctl_error *err)
{
    if (cctl_check_broker_epoch(s, broker_id, broker_epoch, err), err->code)
        return 0;
    if (s->next_producer_id > INT64_MAX - CCTL_PRODUCER_ID_BLOCK)
        return kerr(err, KERR_INVALID_REQUEST, "producer ids exhausted");
    Weir__Meta__ProducerIdsRecord p;
    weir__meta__producer_ids_record__init(&p);
    p.broker_id = broker_id;
    p.broker_epoch = broker_epoch;
    p.first_id = s->next_producer_id;
    p.count = CCTL_PRODUCER_ID_BLOCK;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_PRODUCER_IDS;
    m.producer_ids = &p;
    int rc = emit(out, &m);
    if (rc < 0)
        return rc;
    *ret_first = p.first_id;
    *ret_count = p.count;
    return 0;
}

/* ---- topic configs ------------------------------------------------------------------------ */

/* The keys and their checks live in common/topic_config.c, shared with the
 * brokers (which apply them) and the generated docs/configuration.md. */
/* ---- dynamic broker configs ------------------------------------------------------------------ */

/* The static definition of broker key @name: the log keys are the storage
 * layer's (the broker's own registry), the others the coordinator's, whose
 * definitions of min.insync.replicas and unclean.leader.election.enable are
 * the cluster defaults' anyway. */
static const struct config_def decommissioned_def = {
    .name = CCTL_DECOMMISSIONED_KEY,
    .type = CONFIG_BOOL,
    .default_value = "false",
    .doc = "true: new topics and partitions get no replica on this broker (per broker only)",
};

bool cctl_broker_decommissioned(const struct cstate *s, int32_t id)
{
    const char *v = cstate_broker_config(s, id, CCTL_DECOMMISSIONED_KEY);
    return v && !strcasecmp(v, "true");
}

static const struct config_def *broker_key_def(const char *name)
{
    if (!strcmp(name, CCTL_DECOMMISSIONED_KEY))
        return &decommissioned_def;
    for (size_t i = 0; i < storage_config_ndefs; i++)
        if (!strcmp(storage_config_defs[i].name, name))
            return &storage_config_defs[i];
    for (size_t i = 0; i < coord_config_ndefs; i++)
        if (!strcmp(coord_config_defs[i].name, name))
            return &coord_config_defs[i];
    return dyncfg_rate_def(name); /* the replication throttle rates */
}

int cctl_alter_broker_config(const struct cstate *s, const struct cctl_ctx *ctx, int32_t broker_id,
                             const struct cctl_kv *ops, size_t n_ops, struct cstate_records *out,
                             struct cctl_error *err)
{
    ok(err);
    if (broker_id < CSTATE_CLUSTER_DEFAULT)
        return kerr(err, KERR_INVALID_REQUEST, "invalid broker id %d", broker_id);
    bool unclean_on = false;
    for (size_t i = 0; i < n_ops; i++) {
        const char *key = ops[i].name;
        const struct dyncfg_key *dk = dyncfg_find(key);
        /* A removal needs only a dynamic name: nothing else can be stored. */
        if (ops[i].value || !dk) {
            err->code = dyncfg_validate(key, key ? broker_key_def(key) : NULL,
                                        ops[i].value ? ops[i].value : "", err->message,
                                        sizeof(err->message));
            if (err->code)
                return 0;
        }
        if (dk->cluster_only && broker_id != CSTATE_CLUSTER_DEFAULT)
            return kerr(err, KERR_INVALID_CONFIG,
                        "broker config '%s' is cluster-wide: set it on the default (empty "
                        "resource name), not on broker %d",
                        key, broker_id);
        if (dk->broker_only && broker_id == CSTATE_CLUSTER_DEFAULT)
            return kerr(err, KERR_INVALID_CONFIG,
                        "broker config '%s' is per broker: set it on one broker id, not on the "
                        "cluster default",
                        key);
        if (!strcmp(key, "unclean.leader.election.enable"))
            unclean_on = ops[i].value && !strcasecmp(ops[i].value, "true");
    }
    size_t mark = out->n;
    int rc = 0;
    for (size_t i = 0; i < n_ops && rc == 0; i++) {
        Weir__Meta__BrokerConfigRecord bc;
        weir__meta__broker_config_record__init(&bc);
        bc.broker_id = broker_id;
        bc.name = (char *)ops[i].name;
        bc.value = (char *)(ops[i].value ? ops[i].value : "");
        bc.remove = ops[i].value == NULL;
        MetaRecord m;
        weir__meta__metadata_record__init(&m);
        m.record_case = WEIR__META__METADATA_RECORD__RECORD_BROKER_CONFIG;
        m.broker_config = &bc;
        rc = emit(out, &m);
    }
    /* Unclean election newly allowed cluster-wide: offline partitions of topics
     * that do not forbid it may elect now, as after a topic override. */
    if (unclean_on && !cluster_unclean(s, ctx)) {
        for (const struct cstate_topic *t = s->first_topic; t && rc == 0; t = t->next) {
            if (cstate_topic_config(t, "unclean.leader.election.enable"))
                continue;
            for (int32_t i = 0; i < t->n_parts && rc == 0; i++) {
                const struct cstate_partition *p = &t->parts[i];
                if (p->leader >= 0)
                    continue;
                struct plead to;
                bool emitted;
                elect(s, &NO_OVR, true, p, cstate_part_isr(p), p->n_isr, &to);
                rc = emit_change(out, t, i, p, &to, &emitted);
            }
        }
    }
    if (rc < 0)
        cstate_records_truncate(out, mark);
    return rc;
}

int16_t cctl_validate_topic_config(const char *name, const char *value, char *msg, size_t msglen)
{
    if (value && strlen(value) > CSTATE_MAX_CONFIG_VALUE) {
        snprintf(msg, msglen, "value of topic config %.128s is longer than %d bytes",
                 name ? name : "(null)", CSTATE_MAX_CONFIG_VALUE);
        return KERR_INVALID_CONFIG;
    }
    return topic_config_validate(name, value, msg, msglen);
}

/* ---- topics ---------------------------------------------------------------------------------- */

static void new_topic_id(const struct cstate *s, const struct cctl_ctx *ctx,
                         uint8_t id[CSTATE_UUID_LEN])
{
    do
        random_uuid(ctx, id);
    while (cstate_topic_by_id(s, id));
}

/* Check manual assignments: @n of them, all of length @rf (or of the first
 * one's length when @rf is 0), valid registered brokers, each with a live one. */
static int check_assignments(const struct cstate *s, const struct cctl_assignment *a, size_t n,
                             size_t rf, struct cctl_error *err)
{
    if (!rf && n)
        rf = a[0].n_replicas;
    for (size_t i = 0; i < n; i++) {
        if (a[i].n_replicas == 0 || a[i].n_replicas > CSTATE_MAX_REPLICAS || !a[i].replicas)
            return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT, "partition %zu: %zu replicas", i,
                        a[i].n_replicas);
        if (a[i].n_replicas != rf)
            return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                        "partition %zu: %zu replicas where the others have %zu", i, a[i].n_replicas,
                        rf);
        if (has_dup(a[i].replicas, a[i].n_replicas))
            return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT, "partition %zu: duplicate replica",
                        i);
        bool live = false;
        for (size_t j = 0; j < a[i].n_replicas; j++) {
            if (!cstate_broker(s, a[i].replicas[j]))
                return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                            "partition %zu: broker %d is not registered", i, a[i].replicas[j]);
            live = live || cstate_broker_eligible(s, a[i].replicas[j]);
        }
        if (!live)
            return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                        "partition %zu: every assigned broker is fenced or shutting down", i);
    }
    return 0;
}

/* New partitions as PartitionState messages: replicas from @reps (@n * @rf
 * ids) or from @a; ISR = live replicas; leader = the first of them. The
 * messages point into @ids, which must hold 2 * @n * CSTATE_MAX_REPLICAS. */
struct newparts {
    Weir__Meta__PartitionState *ps;
    Weir__Meta__PartitionState **ptrs;
    int32_t *ids;
};

static void newparts_free(struct newparts *np)
{
    free(np->ps);
    free(np->ptrs);
    free(np->ids);
}

static int newparts_build(const struct cstate *s, int32_t first, size_t n,
                          const struct cctl_assignment *a, const int32_t *reps, size_t rf,
                          struct newparts *np)
{
    np->ps = calloc(n, sizeof(*np->ps));
    np->ptrs = calloc(n, sizeof(*np->ptrs));
    size_t per = a ? a[0].n_replicas : rf;
    np->ids = malloc(2 * n * per * sizeof(*np->ids));
    if (!np->ps || !np->ptrs || !np->ids) {
        newparts_free(np);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const int32_t *src = a ? a[i].replicas : reps + i * rf;
        int32_t *rep = np->ids + 2 * i * per, *isr = rep + per;
        size_t n_isr = 0;
        memcpy(rep, src, per * sizeof(*rep));
        for (size_t j = 0; j < per; j++)
            if (cstate_broker_eligible(s, rep[j]))
                isr[n_isr++] = rep[j];
        Weir__Meta__PartitionState *ps = &np->ps[i];
        weir__meta__partition_state__init(ps);
        ps->partition = first + (int32_t)i;
        ps->replicas = rep;
        ps->n_replicas = per;
        ps->isr = isr;
        ps->n_isr = n_isr;
        ps->leader = isr[0];
        np->ptrs[i] = ps;
    }
    return 0;
}

/* Placement over the live brokers. *ret (n * rf ids) is the caller's to free. */
static int place(const struct cstate *s, const struct cctl_ctx *ctx, const struct cstate_topic *t,
                 int32_t n, int32_t rf, int32_t first, int32_t **ret, struct cctl_error *err)
{
    struct cplace_broker *live;
    size_t n_live;
    int rc = cplace_live_brokers(s, &live, &n_live);
    if (rc < 0)
        return rc;
    /* decommissioned brokers take no new replica */
    size_t kept = 0;
    for (size_t i = 0; i < n_live; i++)
        if (!cctl_broker_decommissioned(s, live[i].id))
            live[kept++] = live[i];
    n_live = kept;
    if (rf < 1 || (size_t)rf > n_live) {
        free(live);
        return kerr(err, KERR_INVALID_REPLICATION_FACTOR,
                    "replication factor %d: %zu live broker%s", rf, n_live, n_live == 1 ? "" : "s");
    }
    struct cplace_request req = {.n_parts = n, .rf = rf, .first_partition = first};
    /* Continue an existing topic from where its partition 0 starts; a new one
     * starts at random so that topics spread. */
    if (!t || cplace_index_of(live, n_live, cstate_part_replicas(&t->parts[0])[0], &req.start))
        req.start = (uint32_t)(ctx->rand(ctx->rand_arg) % n_live);
    int32_t *reps = malloc((size_t)n * (size_t)rf * sizeof(*reps));
    if (!reps) {
        free(live);
        return -ENOMEM;
    }
    rc = cplace_assign(live, n_live, &req, reps);
    free(live);
    if (rc < 0) {
        free(reps);
        return rc;
    }
    *ret = reps;
    return 0;
}

int cctl_create_topic(const struct cstate *s, const struct cctl_ctx *ctx,
                      const struct cctl_create_topic_req *req, struct cstate_records *out,
                      uint8_t ret_topic_id[CSTATE_UUID_LEN], struct cctl_error *err)
{
    ok(err);
    const char *name = req->name;
    if (!cstate_topic_name_valid(name))
        return kerr(err, KERR_INVALID_TOPIC_EXCEPTION,
                    "topic name \"%.64s\" is illegal: 1 to %d characters of [a-zA-Z0-9._-], not "
                    "\".\" or \"..\"",
                    nz(name), CSTATE_MAX_TOPIC_NAME);
    if (cstate_topic_by_name(s, name))
        return kerr(err, KERR_TOPIC_ALREADY_EXISTS, "topic %s already exists", name);
    if (req->n_configs > CSTATE_MAX_CONFIGS)
        return kerr(err, KERR_INVALID_CONFIG, "%zu configs (max %d)", req->n_configs,
                    CSTATE_MAX_CONFIGS);
    for (size_t i = 0; i < req->n_configs; i++) {
        err->code = cctl_validate_topic_config(req->configs[i].name, req->configs[i].value,
                                               err->message, sizeof(err->message));
        if (err->code)
            return 0;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(req->configs[i].name, req->configs[j].name))
                return kerr(err, KERR_INVALID_CONFIG, "config %s given twice",
                            req->configs[i].name);
    }

    int32_t n, rf;
    int32_t *reps = NULL;
    const struct cctl_assignment *a = NULL;
    int rc;
    if (req->assignments && req->n_assignments) {
        if (req->num_partitions != -1 || req->replication_factor != -1)
            return kerr(err, KERR_INVALID_REQUEST,
                        "a manual assignment needs partitions and replication factor -1");
        if (req->n_assignments > (size_t)ctx->cfg.max_partitions_per_request)
            return kerr(err, KERR_INVALID_PARTITIONS, "%zu partitions (max %d)", req->n_assignments,
                        ctx->cfg.max_partitions_per_request);
        rc = check_assignments(s, req->assignments, req->n_assignments, 0, err);
        if (rc < 0 || err->code)
            return rc;
        a = req->assignments;
        n = (int32_t)req->n_assignments;
        rf = (int32_t)a[0].n_replicas;
    } else {
        n = req->num_partitions == -1 ? ctx->cfg.num_partitions : req->num_partitions;
        rf = req->replication_factor == -1 ? ctx->cfg.default_replication_factor
                                           : req->replication_factor;
        if (n < 1 || n > ctx->cfg.max_partitions_per_request)
            return kerr(err, KERR_INVALID_PARTITIONS, "%d partitions: 1 to %d allowed", n,
                        ctx->cfg.max_partitions_per_request);
        if (rf > CSTATE_MAX_REPLICAS)
            return kerr(err, KERR_INVALID_REPLICATION_FACTOR, "replication factor %d (max %d)", rf,
                        CSTATE_MAX_REPLICAS);
        rc = place(s, ctx, NULL, n, rf, 0, &reps, err);
        if (rc < 0 || err->code)
            return rc;
    }

    struct newparts np;
    rc = newparts_build(s, 0, (size_t)n, a, reps, (size_t)rf, &np);
    free(reps);
    if (rc < 0)
        return rc;
    uint8_t id[CSTATE_UUID_LEN];
    new_topic_id(s, ctx, id);
    Weir__Meta__ConfigEntry ce[CSTATE_MAX_CONFIGS], *cp[CSTATE_MAX_CONFIGS];
    for (size_t i = 0; i < req->n_configs; i++) {
        weir__meta__config_entry__init(&ce[i]);
        ce[i].name = (char *)req->configs[i].name;
        ce[i].value = (char *)req->configs[i].value;
        cp[i] = &ce[i];
    }
    Weir__Meta__CreateTopicRecord ct;
    weir__meta__create_topic_record__init(&ct);
    ct.name = (char *)name;
    ct.topic_id.data = id;
    ct.topic_id.len = CSTATE_UUID_LEN;
    ct.configs = cp;
    ct.n_configs = req->n_configs;
    ct.partitions = np.ptrs;
    ct.n_partitions = (size_t)n;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_CREATE_TOPIC;
    m.create_topic = &ct;
    rc = emit(out, &m);
    newparts_free(&np);
    if (rc == 0 && ret_topic_id)
        memcpy(ret_topic_id, id, CSTATE_UUID_LEN);
    return rc;
}

int cctl_delete_topic(const struct cstate *s, const struct cctl_ctx *ctx, const char *name,
                      struct cstate_records *out, struct cctl_error *err)
{
    ok(err);
    const struct cstate_topic *t = cstate_topic_by_name(s, name);
    if (!t)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic %.64s", nz(name));
    Weir__Meta__DeleteTopicRecord d;
    weir__meta__delete_topic_record__init(&d);
    d.topic_id.data = (uint8_t *)t->id;
    d.topic_id.len = CSTATE_UUID_LEN;
    d.name = t->name;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_DELETE_TOPIC;
    m.delete_topic = &d;
    return emit(out, &m);
}

int cctl_create_partitions(const struct cstate *s, const struct cctl_ctx *ctx,
                           const struct cctl_create_partitions_req *req, struct cstate_records *out,
                           struct cctl_error *err)
{
    ok(err);
    const struct cstate_topic *t = cstate_topic_by_name(s, req->name);
    if (!t)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic %.64s", nz(req->name));
    if (req->total_count <= t->n_parts)
        return kerr(err, KERR_INVALID_PARTITIONS,
                    "topic %s has %d partitions; the new count %d must be higher", t->name,
                    t->n_parts, req->total_count);
    int32_t add = req->total_count - t->n_parts;
    if (add > ctx->cfg.max_partitions_per_request || req->total_count > CSTATE_MAX_PARTITIONS)
        return kerr(err, KERR_INVALID_PARTITIONS, "%d new partitions for %s: too many", add,
                    t->name);
    int32_t rf = t->parts[0].n_replicas;
    int32_t *reps = NULL;
    const struct cctl_assignment *a = NULL;
    int rc;
    if (req->assignments && req->n_assignments) {
        if (req->n_assignments != (size_t)add)
            return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                        "%zu assignments for %d new partitions", req->n_assignments, add);
        rc = check_assignments(s, req->assignments, req->n_assignments, (size_t)rf, err);
        if (rc < 0 || err->code)
            return rc;
        a = req->assignments;
    } else {
        rc = place(s, ctx, t, add, rf, t->n_parts, &reps, err);
        if (rc < 0 || err->code)
            return rc;
    }
    struct newparts np;
    rc = newparts_build(s, t->n_parts, (size_t)add, a, reps, (size_t)rf, &np);
    free(reps);
    if (rc < 0)
        return rc;
    Weir__Meta__CreatePartitionsRecord cp;
    weir__meta__create_partitions_record__init(&cp);
    cp.topic_id.data = (uint8_t *)t->id;
    cp.topic_id.len = CSTATE_UUID_LEN;
    cp.partitions = np.ptrs;
    cp.n_partitions = (size_t)add;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_CREATE_PARTITIONS;
    m.create_partitions = &cp;
    rc = emit(out, &m);
    newparts_free(&np);
    return rc;
}

int cctl_alter_topic_config(const struct cstate *s, const struct cctl_ctx *ctx, const char *name,
                            const struct cctl_kv *ops, size_t n_ops, struct cstate_records *out,
                            struct cctl_error *err)
{
    ok(err);
    const struct cstate_topic *t = cstate_topic_by_name(s, name);
    if (!t)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic %.64s", nz(name));
    /* Work on borrowed name/value pointers: the current overrides, then each op. */
    size_t cap = t->n_configs + n_ops, n = 0;
    struct cctl_kv *kv = calloc(cap ? cap : 1, sizeof(*kv));
    if (!kv)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->n_configs; i++)
        kv[n++] = (struct cctl_kv){t->configs[i].name, t->configs[i].value};
    int rc = 0;
    for (size_t i = 0; i < n_ops && !err->code; i++) {
        const char *key = ops[i].name;
        /* A removal is checked against the name only, so that an override
         * stored before a key was refused can still be removed. */
        if (ops[i].value || !key || !topic_config_find(key)) {
            err->code = cctl_validate_topic_config(key, ops[i].value ? ops[i].value : "",
                                                   err->message, sizeof(err->message));
            if (err->code)
                break;
        }
        size_t j = 0;
        while (j < n && strcmp(kv[j].name, key))
            j++;
        if (ops[i].value)
            kv[j == n ? n++ : j] = (struct cctl_kv){key, ops[i].value};
        else if (j < n)
            kv[j] = kv[--n];
    }
    if (!err->code && n > CSTATE_MAX_CONFIGS)
        kerr(err, KERR_INVALID_CONFIG, "%zu overrides (max %d)", n, CSTATE_MAX_CONFIGS);
    if (err->code) {
        free(kv);
        return 0;
    }
    Weir__Meta__ConfigEntry ce[CSTATE_MAX_CONFIGS], *cp[CSTATE_MAX_CONFIGS];
    for (size_t i = 0; i < n; i++) {
        weir__meta__config_entry__init(&ce[i]);
        ce[i].name = (char *)kv[i].name;
        ce[i].value = (char *)kv[i].value;
        cp[i] = &ce[i];
    }
    Weir__Meta__TopicConfigRecord tc;
    weir__meta__topic_config_record__init(&tc);
    tc.topic_id.data = (uint8_t *)t->id;
    tc.topic_id.len = CSTATE_UUID_LEN;
    tc.configs = cp;
    tc.n_configs = n;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_TOPIC_CONFIG;
    m.topic_config = &tc;
    size_t mark = out->n;
    rc = emit(out, &m);

    /* With unclean election newly allowed, offline partitions may elect now. */
    bool unclean = cluster_unclean(s, ctx);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].name, "unclean.leader.election.enable"))
            unclean = !strcasecmp(kv[i].value, "true");
    free(kv);
    if (unclean) {
        for (int32_t i = 0; i < t->n_parts && rc == 0; i++) {
            const struct cstate_partition *p = &t->parts[i];
            if (p->leader >= 0)
                continue;
            struct plead to;
            bool emitted;
            elect(s, &NO_OVR, true, p, cstate_part_isr(p), p->n_isr, &to);
            rc = emit_change(out, t, i, p, &to, &emitted);
        }
    }
    if (rc < 0)
        cstate_records_truncate(out, mark);
    return rc;
}

/* ---- partitions -------------------------------------------------------------------------------
 */

int cctl_alter_partition(const struct cstate *s, const struct cctl_ctx *ctx,
                         const struct cctl_alter_partition_req *req, struct cstate_records *out,
                         struct cctl_error *err)
{
    if (cctl_check_broker_epoch(s, req->broker_id, req->broker_epoch, err), err->code)
        return 0;
    const struct cstate_topic *t;
    if (req->topic_id) {
        if (!(t = cstate_topic_by_id(s, req->topic_id)))
            return kerr(err, KERR_UNKNOWN_TOPIC_ID, "unknown topic id");
    } else if (!(t = cstate_topic_by_name(s, req->topic_name))) {
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic %.64s",
                    nz(req->topic_name));
    }
    if (req->partition < 0 || req->partition >= t->n_parts)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "topic %s has no partition %d", t->name,
                    req->partition);
    const struct cstate_partition *p = &t->parts[req->partition];
    if (req->leader_epoch != p->leader_epoch)
        return kerr(err, KERR_FENCED_LEADER_EPOCH,
                    "%s-%d: leader epoch %d is not the current %d (leader %d)", t->name,
                    req->partition, req->leader_epoch, p->leader_epoch, p->leader);
    if (req->broker_id != p->leader)
        return kerr(err, KERR_NOT_LEADER_OR_FOLLOWER, "%s-%d: broker %d is not the leader (%d)",
                    t->name, req->partition, req->broker_id, p->leader);
    if (req->partition_epoch != p->partition_epoch)
        return kerr(err, KERR_INVALID_UPDATE_VERSION,
                    "%s-%d: partition epoch %d is not the current %d", t->name, req->partition,
                    req->partition_epoch, p->partition_epoch);
    if (req->n_isr == 0 || req->n_isr > p->n_replicas || !req->isr || has_dup(req->isr, req->n_isr))
        return kerr(err, KERR_INVALID_REQUEST, "%s-%d: ISR empty, too long or with duplicates",
                    t->name, req->partition);
    if (!contains(req->isr, req->n_isr, p->leader))
        return kerr(err, KERR_INVALID_REQUEST, "%s-%d: ISR without its leader %d", t->name,
                    req->partition, p->leader);
    for (size_t i = 0; i < req->n_isr; i++)
        if (!cstate_part_is_replica(p, req->isr[i]))
            return kerr(err, KERR_INVALID_REQUEST, "%s-%d: broker %d is not a replica", t->name,
                        req->partition, req->isr[i]);
    for (size_t i = 0; i < req->n_isr; i++) {
        int32_t b = req->isr[i];
        if (!cstate_part_in_isr(p, b) && !cstate_broker_eligible(s, b))
            return kerr(err, KERR_INELIGIBLE_REPLICA,
                        "%s-%d: broker %d cannot join the ISR: it is %s", t->name, req->partition,
                        b,
                        cstate_broker(s, b) ? cstate_broker_state_name(cstate_broker(s, b)->state)
                                            : "not registered");
    }
    if (p->partition_epoch == INT32_MAX || p->leader_epoch == INT32_MAX)
        return kerr(err, KERR_INVALID_REQUEST, "%s-%d: epochs exhausted", t->name, req->partition);
    /* The requested ISR, then the usual election over it: a shutting-down
     * leader hands over to a live member of its new ISR. */
    struct plead to;
    elect(s, &NO_OVR, false, p, req->isr, req->n_isr, &to);
    bool emitted;
    return emit_change(out, t, req->partition, p, &to, &emitted);
}

int cctl_preferred_leaders(const struct cstate *s, const struct cctl_ctx *ctx,
                           const struct cctl_rebalance_opts *opts, struct cstate_records *out)
{
    /* Per broker (by index in s->brokers): partitions it is preferred for, and
     * how many of those others lead. */
    uint64_t *pref = calloc(s->n_brokers ? 2 * s->n_brokers : 1, sizeof(*pref));
    if (!pref)
        return -ENOMEM;
    uint64_t *not_led = pref + s->n_brokers;
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        for (int32_t i = 0; i < t->n_parts; i++) {
            const struct cstate_partition *p = &t->parts[i];
            const struct cstate_broker *b = cstate_broker(s, cctl_preferred_replica(p));
            if (!b)
                continue;
            size_t k = (size_t)(b - s->brokers);
            pref[k]++;
            not_led[k] += p->leader != b->id;
        }
    }
    size_t mark = out->n;
    int rc = 0;
    for (const struct cstate_topic *t = s->first_topic; t && rc == 0; t = t->next) {
        for (int32_t i = 0; i < t->n_parts && rc == 0; i++) {
            const struct cstate_partition *p = &t->parts[i];
            int32_t want = cctl_preferred_replica(p);
            if (p->leader == want || (opts->broker_id >= 0 && want != opts->broker_id))
                continue;
            if (!cstate_broker_eligible(s, want) || !cstate_part_in_isr(p, want))
                continue;
            size_t k = (size_t)(cstate_broker(s, want) - s->brokers);
            if (not_led[k] * 100 <=
                (uint64_t)(opts->imbalance_pct > 0 ? opts->imbalance_pct : 0) * pref[k])
                continue;
            struct plead to = {.leader = want, .n_isr = p->n_isr};
            memcpy(to.isr, cstate_part_isr(p), p->n_isr * sizeof(int32_t));
            bool emitted;
            rc = emit_change(out, t, i, p, &to, &emitted);
        }
    }
    free(pref);
    if (rc < 0)
        cstate_records_truncate(out, mark);
    return rc;
}

int cctl_preferred_leader_return(const struct cstate *s, const struct cctl_ctx *ctx,
                                 const uint8_t *topic_id, int32_t partition,
                                 struct cstate_records *out)
{
    (void)ctx;
    const struct cstate_topic *t = topic_id ? cstate_topic_by_id(s, topic_id) : NULL;
    if (!t || partition < 0 || partition >= t->n_parts)
        return 0;
    const struct cstate_partition *p = &t->parts[partition];
    int32_t want = cctl_preferred_replica(p);
    /* An offline partition is the elections' business, not a rebalance's. */
    if (p->leader < 0 || p->leader == want)
        return 0;
    if (!cstate_broker_eligible(s, want) || !cstate_part_in_isr(p, want))
        return 0;
    struct plead to = {.leader = want, .n_isr = p->n_isr};
    memcpy(to.isr, cstate_part_isr(p), p->n_isr * sizeof(int32_t));
    bool emitted;
    return emit_change(out, t, partition, p, &to, &emitted);
}

int cctl_elect_offline(const struct cstate *s, const struct cctl_ctx *ctx,
                       struct cstate_records *out)
{
    size_t mark = out->n;
    int rc = 0;
    for (const struct cstate_topic *t = s->first_topic; t && rc == 0; t = t->next)
        for (int32_t i = 0; i < t->n_parts && rc == 0; i++)
            if (t->parts[i].leader < 0)
                rc = reelect(s, ctx, &NO_OVR, t, i, out, NULL);
    if (rc < 0)
        cstate_records_truncate(out, mark);
    return rc;
}

/* ---- reassignment ------------------------------------------------------------------------ */

/* A partition state being planned, in the layout the accessors read. */
struct tpart {
    struct cstate_partition p;
    int32_t buf[4 * CSTATE_MAX_REPLICAS];
};

static void tpart_build(struct tpart *tp, int32_t leader, const int32_t *rep, size_t n_rep,
                        const int32_t *isr, size_t n_isr, const int32_t *add, size_t n_add,
                        const int32_t *rem, size_t n_rem)
{
    memset(&tp->p, 0, sizeof(tp->p));
    tp->p.leader = leader;
    tp->p.n_replicas = (uint8_t)n_rep;
    tp->p.n_isr = (uint8_t)n_isr;
    tp->p.n_adding = (uint8_t)n_add;
    tp->p.n_removing = (uint8_t)n_rem;
    size_t total = n_rep + n_isr + n_add + n_rem;
    int32_t *ids = total <= CSTATE_INLINE_IDS ? tp->p.ids.inl : tp->buf;
    if (total > CSTATE_INLINE_IDS)
        tp->p.ids.heap = tp->buf;
    /* memcpy with a NULL source is undefined even for 0 bytes (UBSan): an empty
     * adding/removing list may come as NULL. */
    if (n_rep)
        memcpy(ids, rep, n_rep * sizeof(*ids));
    if (n_isr)
        memcpy(ids + n_rep, isr, n_isr * sizeof(*ids));
    if (n_add)
        memcpy(ids + n_rep + n_isr, add, n_add * sizeof(*ids));
    if (n_rem)
        memcpy(ids + n_rep + n_isr + n_add, rem, n_rem * sizeof(*ids));
}

static bool reassigning(const struct cstate_partition *p)
{
    return p->n_adding > 0 || p->n_removing > 0;
}

/* Append a PartitionChange that replaces @p's lists with @np's, leader and ISR
 * with @to's. The leader epoch grows when the leader changes. */
static int emit_replicas_change(struct cstate_records *out, const struct cstate_topic *t,
                                int32_t idx, const struct cstate_partition *p,
                                const struct cstate_partition *np, const struct plead *to)
{
    Weir__Meta__PartitionChangeRecord pc;
    weir__meta__partition_change_record__init(&pc);
    pc.topic_id.data = (uint8_t *)t->id;
    pc.topic_id.len = CSTATE_UUID_LEN;
    pc.partition = idx;
    pc.leader = to->leader;
    pc.leader_epoch = p->leader_epoch + (to->leader != p->leader ? 1 : 0);
    pc.isr = (int32_t *)to->isr;
    pc.n_isr = to->n_isr;
    pc.partition_epoch = p->partition_epoch + 1;
    pc.replicas_changed = true;
    pc.replicas = (int32_t *)cstate_part_replicas(np);
    pc.n_replicas = np->n_replicas;
    pc.adding_replicas = (int32_t *)cstate_part_adding(np);
    pc.n_adding_replicas = np->n_adding;
    pc.removing_replicas = (int32_t *)cstate_part_removing(np);
    pc.n_removing_replicas = np->n_removing;
    MetaRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_PARTITION_CHANGE;
    m.partition_change = &pc;
    return emit(out, &m);
}

/* The completed form of reassignment @p (or of @p itself when none is under
 * way): replicas = the target, ISR = the ISR within it, leader kept when it
 * stays, else the first eligible target replica of the ISR. False while a
 * target replica is outside the ISR, or when the leader is being removed and
 * no target replica in the ISR can take over. */
static bool completion(const struct cstate *s, const struct cstate_partition *p,
                       struct tpart *ret_np, struct plead *ret_to)
{
    const int32_t *rep = cstate_part_replicas(p), *isr = cstate_part_isr(p);
    const int32_t *rem = cstate_part_removing(p);
    int32_t target[CSTATE_MAX_REPLICAS], nisr[CSTATE_MAX_REPLICAS];
    size_t n_t = 0, n_i = 0;
    for (size_t i = 0; i < p->n_replicas; i++) {
        if (contains(rem, p->n_removing, rep[i]))
            continue;
        if (!contains(isr, p->n_isr, rep[i]))
            return false;
        target[n_t++] = rep[i];
    }
    for (size_t i = 0; i < p->n_isr; i++)
        if (contains(target, n_t, isr[i]))
            nisr[n_i++] = isr[i];
    if (n_t == 0 || n_i == 0)
        return false;
    int32_t leader = p->leader;
    if (leader >= 0 && !contains(target, n_t, leader)) {
        leader = -1;
        for (size_t i = 0; i < n_t && leader < 0; i++)
            if (cstate_broker_eligible(s, target[i]))
                leader = target[i];
        if (leader < 0)
            return false; /* the removed leader keeps leading until one can */
    }
    tpart_build(ret_np, leader, target, n_t, nisr, n_i, NULL, 0, NULL, 0);
    ret_to->leader = leader;
    ret_to->n_isr = n_i;
    memcpy(ret_to->isr, nisr, n_i * sizeof(int32_t));
    return true;
}

/* The replica list of a move from @r to @t holding both orders: @r's members
 * in @r's order and @t's in @t's, so that completing gives @t and cancelling
 * gives @r exactly. Possible when the replicas both hold appear in the same
 * relative order in each; otherwise Kafka's list (target, then the replicas
 * being removed), which keeps the target's order only. */
static size_t merge_orders(const int32_t *r, size_t nr, const int32_t *t, size_t nt, int32_t *ret)
{
    size_t i = 0, j = 0, n = 0;
    while (i < nr || j < nt) {
        if (i < nr && !contains(t, nt, r[i])) {
            ret[n++] = r[i++];
        } else if (j < nt && !contains(r, nr, t[j])) {
            ret[n++] = t[j++];
        } else if (i < nr && j < nt && r[i] == t[j]) {
            ret[n++] = r[i];
            i++;
            j++;
        } else {
            n = 0;
            for (j = 0; j < nt; j++)
                ret[n++] = t[j];
            for (i = 0; i < nr; i++)
                if (!contains(t, nt, r[i]))
                    ret[n++] = r[i];
            return n;
        }
    }
    return n;
}

static int16_t check_target(const struct cstate *s, const int32_t *rep, size_t n, char *msg,
                            size_t len)
{
    if (n == 0) {
        snprintf(msg, len, "the target replica list is empty");
        return KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    if (n > CSTATE_MAX_REPLICAS) {
        snprintf(msg, len, "%zu target replicas (max %d)", n, CSTATE_MAX_REPLICAS);
        return KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    for (size_t i = 0; i < n; i++) {
        if (contains(rep, i, rep[i])) {
            snprintf(msg, len, "broker %d appears twice in the target replicas", rep[i]);
            return KERR_INVALID_REPLICA_ASSIGNMENT;
        }
        if (rep[i] < 0 || !cstate_broker(s, rep[i])) {
            snprintf(msg, len, "broker %d in the target replicas is not registered", rep[i]);
            return KERR_INVALID_REPLICA_ASSIGNMENT;
        }
    }
    return KERR_NONE;
}

int cctl_reassign(const struct cstate *s, const struct cctl_ctx *ctx,
                  const struct cctl_reassign_req *req, struct cstate_records *out,
                  struct cctl_error *err)
{
    (void)ctx;
    ok(err);
    if (!req->topic)
        return -EINVAL;
    const struct cstate_topic *t = cstate_topic_by_name(s, req->topic);
    if (!t)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic %.64s", req->topic);
    if (req->partition < 0 || req->partition >= t->n_parts)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "topic %s has no partition %d", t->name,
                    req->partition);
    const struct cstate_partition *p = &t->parts[req->partition];
    const int32_t *rep = cstate_part_replicas(p), *isr = cstate_part_isr(p);
    const int32_t *add = cstate_part_adding(p);
    /* The assignment before any move under way: the replicas not being added. */
    int32_t orig[CSTATE_MAX_REPLICAS];
    size_t n_orig = 0;
    for (size_t i = 0; i < p->n_replicas; i++)
        if (!contains(add, p->n_adding, rep[i]))
            orig[n_orig++] = rep[i];
    const int32_t *target = req->replicas;
    size_t n_target = req->n_replicas;
    if (!target) {
        if (!reassigning(p))
            return kerr(err, KERR_NO_REASSIGNMENT_IN_PROGRESS, "%s-%d: no reassignment in progress",
                        t->name, req->partition);
        target = orig;
        n_target = n_orig;
    } else {
        char why[160];
        int16_t code = check_target(s, target, n_target, why, sizeof(why));
        if (code != KERR_NONE)
            return kerr(err, code, "%s-%d: %s", t->name, req->partition, why);
    }
    /* The new lists: a move from the original assignment to the target. */
    int32_t nrep[2 * CSTATE_MAX_REPLICAS], nadd[CSTATE_MAX_REPLICAS], nrem[CSTATE_MAX_REPLICAS];
    int32_t nisr[CSTATE_MAX_REPLICAS];
    size_t n_rep = merge_orders(orig, n_orig, target, n_target, nrep), n_add = 0, n_rem = 0;
    size_t n_isr = 0;
    if (n_rep > CSTATE_MAX_REPLICAS)
        return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                    "%s-%d: %zu replicas during the move (max %d)", t->name, req->partition, n_rep,
                    CSTATE_MAX_REPLICAS);
    for (size_t i = 0; i < n_target; i++)
        if (!contains(orig, n_orig, target[i]))
            nadd[n_add++] = target[i];
    for (size_t i = 0; i < n_orig; i++)
        if (!contains(target, n_target, orig[i]))
            nrem[n_rem++] = orig[i];
    for (size_t i = 0; i < p->n_isr; i++)
        if (contains(nrep, n_rep, isr[i]))
            nisr[n_isr++] = isr[i];
    if (n_isr == 0)
        return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                    "%s-%d: no in-sync replica would remain (ISR has only replicas being added)",
                    t->name, req->partition);
    int32_t leader = contains(nrep, n_rep, p->leader) ? p->leader : -1;
    struct tpart np, fin;
    tpart_build(&np, leader, nrep, n_rep, nisr, n_isr, nadd, n_add, nrem, n_rem);
    struct plead to;
    elect(s, &NO_OVR, false, &np.p, nisr, n_isr, &to);
    if (to.leader < 0 && p->leader >= 0)
        return kerr(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                    "%s-%d: no live in-sync replica of the new assignment could lead", t->name,
                    req->partition);
    np.p.leader = to.leader;
    tpart_build(&np, to.leader, nrep, n_rep, to.isr, to.n_isr, nadd, n_add, nrem, n_rem);
    /* Nothing to add, or everything already in sync: done in one record. */
    const struct cstate_partition *final = &np.p;
    if (reassigning(&np.p) && completion(s, &np.p, &fin, &to))
        final = &fin.p;
    bool same = final->n_replicas == p->n_replicas && final->n_adding == p->n_adding &&
                final->n_removing == p->n_removing && to.leader == p->leader &&
                !memcmp(cstate_part_replicas(final), rep, p->n_replicas * sizeof(int32_t)) &&
                !memcmp(cstate_part_adding(final), add, p->n_adding * sizeof(int32_t)) &&
                !memcmp(cstate_part_removing(final), cstate_part_removing(p),
                        p->n_removing * sizeof(int32_t)) &&
                same_set(to.isr, to.n_isr, isr, p->n_isr);
    if (same)
        return 0; /* already so: an idempotent retry */
    if (p->partition_epoch == INT32_MAX || p->leader_epoch == INT32_MAX)
        return kerr(err, KERR_INVALID_REQUEST, "%s-%d: epochs exhausted", t->name, req->partition);
    return emit_replicas_change(out, t, req->partition, p, final, &to);
}

int cctl_reassign_maybe_complete(const struct cstate *s, const struct cctl_ctx *ctx,
                                 const uint8_t *topic_id, int32_t partition,
                                 struct cstate_records *out)
{
    (void)ctx;
    const struct cstate_topic *t = topic_id ? cstate_topic_by_id(s, topic_id) : NULL;
    if (!t || partition < 0 || partition >= t->n_parts)
        return 0;
    const struct cstate_partition *p = &t->parts[partition];
    struct tpart fin;
    struct plead to;
    if (!reassigning(p) || !completion(s, p, &fin, &to))
        return 0;
    if (p->partition_epoch == INT32_MAX || p->leader_epoch == INT32_MAX)
        return 0;
    return emit_replicas_change(out, t, partition, p, &fin.p, &to);
}

int cctl_reassign_complete_all(const struct cstate *s, const struct cctl_ctx *ctx,
                               struct cstate_records *out)
{
    size_t mark = out->n;
    int rc = 0;
    for (const struct cstate_topic *t = s->first_topic; t && rc == 0; t = t->next)
        for (int32_t i = 0; i < t->n_parts && rc == 0; i++)
            if (reassigning(&t->parts[i]))
                rc = cctl_reassign_maybe_complete(s, ctx, t->id, i, out);
    if (rc < 0)
        cstate_records_truncate(out, mark);
    return rc;
}

int cctl_elect_leader(const struct cstate *s, const struct cctl_ctx *ctx, const char *topic,
                      int32_t partition, enum cctl_election type, struct cstate_records *out,
                      struct cctl_error *err)
{
    (void)ctx;
    ok(err);
    if (!topic)
        return -EINVAL;
    const struct cstate_topic *t = cstate_topic_by_name(s, topic);
    if (!t)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic %.64s", topic);
    if (partition < 0 || partition >= t->n_parts)
        return kerr(err, KERR_UNKNOWN_TOPIC_OR_PARTITION, "topic %s has no partition %d", t->name,
                    partition);
    const struct cstate_partition *p = &t->parts[partition];
    if (p->partition_epoch == INT32_MAX || p->leader_epoch == INT32_MAX)
        return kerr(err, KERR_INVALID_REQUEST, "%s-%d: epochs exhausted", t->name, partition);
    struct plead to;
    bool emitted;
    if (type == CCTL_ELECT_PREFERRED) {
        int32_t want = cctl_preferred_replica(p);
        if (p->leader == want)
            return kerr(err, KERR_ELECTION_NOT_NEEDED, "%s-%d: preferred replica %d already leads",
                        t->name, partition, want);
        if (!cstate_broker_eligible(s, want))
            return kerr(err, KERR_PREFERRED_LEADER_NOT_AVAILABLE,
                        "%s-%d: preferred replica %d is not live", t->name, partition, want);
        if (!cstate_part_in_isr(p, want))
            return kerr(err, KERR_PREFERRED_LEADER_NOT_AVAILABLE,
                        "%s-%d: preferred replica %d is not in the ISR", t->name, partition, want);
        to.leader = want;
        to.n_isr = p->n_isr;
        memcpy(to.isr, cstate_part_isr(p), p->n_isr * sizeof(int32_t));
        return emit_change(out, t, partition, p, &to, &emitted);
    }
    /* Unclean: only for a partition without a leader; an in-sync replica
     * still wins when one is live. */
    if (p->leader >= 0)
        return kerr(err, KERR_ELECTION_NOT_NEEDED, "%s-%d: broker %d leads", t->name, partition,
                    p->leader);
    elect(s, &NO_OVR, true, p, cstate_part_isr(p), p->n_isr, &to);
    if (to.leader < 0)
        return kerr(err, KERR_ELIGIBLE_LEADERS_NOT_AVAILABLE,
                    "%s-%d: no live replica that is not still being added", t->name, partition);
    return emit_change(out, t, partition, p, &to, &emitted);
}
