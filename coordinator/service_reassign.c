/* service_reassign: AlterReassignments, ListReassignments and ElectLeaders —
 * Kafka's AlterPartitionReassignments, ListPartitionReassignments and
 * ElectLeaders as brokers forward them — and the completion of moves after
 * ISR changes, at start-up and on the rebalance timer. The rules are the
 * controller's (cctl_reassign, cctl_elect_leader); docs/reassignment.md
 * describes the whole. */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"

static void ids_format(const int32_t *v, size_t n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && at + 12 < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? "," : "", (int)v[i]);
}

/* ---- completion ------------------------------------------------------------------ */

void svc_reassign_maybe_complete(struct coord_service *svc, const uint8_t *topic_id,
                                 int32_t partition)
{
    int r = cctl_reassign_maybe_complete(svc->spec, &svc->ctx, topic_id, partition, &svc->recs);
    if (r < 0) {
        log_error("coordinator", "reassignment completion check failed: %s", strerror(-r));
        cstate_records_clear(&svc->recs);
        return;
    }
    if (svc->recs.n == 0)
        return;
    const struct cstate_topic *t = cstate_topic_by_id(svc->spec, topic_id);
    const struct cstate_partition *p = &t->parts[partition];
    char rep[256];
    ids_format(cstate_part_replicas(p), p->n_replicas, rep, sizeof(rep));
    log_info("coordinator", "%s-%d: every target replica is in sync; completing the move from [%s]",
             t->name, (int)partition, rep);
    svc_write_internal(svc, "reassignment completion");
}

void svc_reassign_complete_all(struct coord_service *svc, const char *why)
{
    int r = cctl_reassign_complete_all(svc->spec, &svc->ctx, &svc->recs);
    if (r < 0) {
        log_error("coordinator", "reassignment completion check failed: %s", strerror(-r));
        cstate_records_clear(&svc->recs);
        return;
    }
    if (svc->recs.n == 0)
        return;
    log_info("coordinator", "%s: completing %zu partition moves", why, svc->recs.n);
    svc_write_internal(svc, "reassignment completion");
}

/* ---- results, shared by the two mutations ------------------------------------------- */

struct results {
    Weir__Coord__PartitionResult *v;
    Weir__Coord__PartitionResult **ptrs;
    struct cctl_error *errs;
    char **names; /* owned copies of the topic names */
    size_t n, cap;
};

static int results_add(struct results *rs, const char *topic, int32_t partition,
                       const struct cctl_error *err)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? 2 * rs->cap : 16;
        Weir__Coord__PartitionResult *v = realloc(rs->v, cap * sizeof(*v));
        if (v)
            rs->v = v;
        struct cctl_error *e = realloc(rs->errs, cap * sizeof(*e));
        if (e)
            rs->errs = e;
        char **nm = realloc(rs->names, cap * sizeof(*nm));
        if (nm)
            rs->names = nm;
        if (!v || !e || !nm)
            return -ENOMEM;
        rs->cap = cap;
    }
    char *name = strdup(topic ? topic : "");
    if (!name)
        return -ENOMEM;
    size_t i = rs->n++;
    rs->names[i] = name;
    rs->errs[i] = *err;
    weir__coord__partition_result__init(&rs->v[i]);
    rs->v[i].topic = name;
    rs->v[i].partition = partition;
    rs->v[i].error_code = err->code;
    return 0;
}

/* Point the results at their arrays (which may have moved while growing). */
static int results_finish(struct results *rs)
{
    rs->ptrs = calloc(rs->n ? rs->n : 1, sizeof(*rs->ptrs));
    if (!rs->ptrs)
        return -ENOMEM;
    for (size_t i = 0; i < rs->n; i++) {
        rs->ptrs[i] = &rs->v[i];
        rs->v[i].error_message = svc_err_msg(&rs->errs[i]);
    }
    return 0;
}

static void results_free(struct results *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->names[i]);
    free(rs->names);
    free(rs->v);
    free(rs->ptrs);
    free(rs->errs);
}

/* The end of a per-partition request: @r is the outcome of building @rs; on
 * success the results go out in @resp (whose results fields @set_results
 * fills), else the call fails. Frees @rs either way. */
static void results_reply(struct coord_service *svc, struct rpc_call *call, struct results *rs,
                          int r, ProtobufCMessage *resp,
                          void (*set_results)(ProtobufCMessage *, struct results *, int64_t))
{
    if (r == 0)
        r = results_finish(rs);
    if (r < 0) {
        results_free(rs);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    set_results(resp, rs, svc->spec->offset);
    svc_reply(svc, call, resp, svc->spec->offset);
    results_free(rs);
}

static void alter_set_results(ProtobufCMessage *m, struct results *rs, int64_t offset)
{
    Weir__Coord__AlterReassignmentsResponse *resp = (Weir__Coord__AlterReassignmentsResponse *)m;
    resp->results = rs->ptrs;
    resp->n_results = rs->n;
    resp->metadata_offset = offset;
}

static void elect_set_results(ProtobufCMessage *m, struct results *rs, int64_t offset)
{
    Weir__Coord__ElectLeadersResponse *resp = (Weir__Coord__ElectLeadersResponse *)m;
    resp->results = rs->ptrs;
    resp->n_results = rs->n;
    resp->metadata_offset = offset;
}

/* ---- AlterReassignments ------------------------------------------------------------------ */

void svc_alter_reassignments(struct coord_service *svc, struct rpc_call *call,
                             const ProtobufCMessage *msg)
{
    const Weir__Coord__AlterReassignmentsRequest *req =
        (const Weir__Coord__AlterReassignmentsRequest *)msg;
    struct results rs = {0};
    int r = 0;
    /* Each partition's change is written before the next is planned, so a
     * partition named twice sees its first change. The records of the whole
     * request share the log's group commit; the reply waits for the last. */
    for (size_t i = 0; i < req->n_partitions && r == 0; i++) {
        const Weir__Coord__ReassignPartition *it = req->partitions[i];
        struct cctl_reassign_req rr = {
            .topic = it->topic,
            .partition = it->partition,
            .replicas = it->cancel ? NULL : it->replicas,
            .n_replicas = it->cancel ? 0 : it->n_replicas,
        };
        static const int32_t none[1];
        if (!it->cancel && !rr.replicas)
            rr.replicas = none; /* an empty target, refused as such */
        struct cctl_error err = {0};
        int cr = cctl_reassign(svc->spec, &svc->ctx, &rr, &svc->recs, &err);
        bool wrote = cr == 0 && err.code == KERR_NONE && svc->recs.n > 0;
        svc_write_item(svc, cr, &err, true);
        char tgt[256];
        ids_format(rr.replicas, rr.n_replicas, tgt, sizeof(tgt));
        if (err.code != KERR_NONE)
            log_info("coordinator", "reassignment of %.64s-%d refused: %s", it->topic,
                     (int)it->partition, err.message);
        else if (wrote)
            log_info("coordinator", "%.64s-%d: %s%s%s", it->topic, (int)it->partition,
                     it->cancel ? "reassignment cancelled" : "reassigning to [",
                     it->cancel ? "" : tgt, it->cancel ? "" : "]");
        r = results_add(&rs, it->topic, it->partition, &err);
    }
    Weir__Coord__AlterReassignmentsResponse resp = WEIR__COORD__ALTER_REASSIGNMENTS_RESPONSE__INIT;
    results_reply(svc, call, &rs, r, &resp.base, alter_set_results);
}

/* ---- ElectLeaders ------------------------------------------------------------------------ */

static int elect_one(struct coord_service *svc, struct results *rs, const char *topic,
                     int32_t partition, enum cctl_election type, bool quiet_not_needed)
{
    struct cctl_error err = {0};
    int cr = cctl_elect_leader(svc->spec, &svc->ctx, topic, partition, type, &svc->recs, &err);
    bool wrote = cr == 0 && err.code == KERR_NONE && svc->recs.n > 0;
    svc_write_item(svc, cr, &err, true);
    if (wrote && err.code == KERR_NONE)
        log_info("coordinator", "%.64s-%d: %s leader election on request", topic, (int)partition,
                 type == CCTL_ELECT_PREFERRED ? "preferred" : "unclean");
    if (quiet_not_needed && err.code == KERR_ELECTION_NOT_NEEDED)
        return 0;
    return results_add(rs, topic, partition, &err);
}

/* The partitions an election of every partition may act on: for a preferred
 * one, those not led by their preferred replica; for an unclean one, those
 * without a leader. Collected first: writing changes the state walked. */
struct tp {
    char *topic;
    int32_t partition;
};

static int collect_all(const struct cstate *s, enum cctl_election type, struct tp **ret,
                       size_t *ret_n)
{
    struct tp *v = NULL;
    size_t n = 0, cap = 0;
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        for (int32_t i = 0; i < t->n_parts; i++) {
            const struct cstate_partition *p = &t->parts[i];
            bool maybe = type == CCTL_ELECT_PREFERRED ? p->leader != cctl_preferred_replica(p)
                                                      : p->leader < 0;
            if (!maybe)
                continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 64;
                struct tp *nv = realloc(v, nc * sizeof(*nv));
                if (!nv)
                    goto oom;
                v = nv;
                cap = nc;
            }
            if (!(v[n].topic = strdup(t->name)))
                goto oom;
            v[n++].partition = i;
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
oom:
    for (size_t i = 0; i < n; i++)
        free(v[i].topic);
    free(v);
    return -ENOMEM;
}

void svc_elect_leaders(struct coord_service *svc, struct rpc_call *call,
                       const ProtobufCMessage *msg)
{
    const Weir__Coord__ElectLeadersRequest *req = (const Weir__Coord__ElectLeadersRequest *)msg;
    if (req->election_type != CCTL_ELECT_PREFERRED && req->election_type != CCTL_ELECT_UNCLEAN) {
        rpc_call_fail(call, RPC_BAD_REQUEST, "election_type must be 0 or 1");
        return;
    }
    enum cctl_election type = (enum cctl_election)req->election_type;
    struct results rs = {0};
    int r = 0;
    if (req->all) {
        struct tp *v = NULL;
        size_t n = 0;
        r = collect_all(svc->spec, type, &v, &n);
        for (size_t i = 0; i < n; i++) {
            if (r == 0)
                r = elect_one(svc, &rs, v[i].topic, v[i].partition, type, true);
            free(v[i].topic);
        }
        free(v);
    } else {
        for (size_t i = 0; i < req->n_topics && r == 0; i++) {
            const Weir__Coord__TopicPartitionList *tl = req->topics[i];
            for (size_t k = 0; k < tl->n_partitions && r == 0; k++)
                r = elect_one(svc, &rs, tl->topic, tl->partitions[k], type, false);
        }
    }
    Weir__Coord__ElectLeadersResponse resp = WEIR__COORD__ELECT_LEADERS_RESPONSE__INIT;
    results_reply(svc, call, &rs, r, &resp.base, elect_set_results);
}

/* ---- ListReassignments ------------------------------------------------------------------- */

static bool wanted(const Weir__Coord__ListReassignmentsRequest *req, const char *topic,
                   int32_t partition)
{
    if (req->all)
        return true;
    for (size_t i = 0; i < req->n_topics; i++) {
        const Weir__Coord__TopicPartitionList *tl = req->topics[i];
        if (!tl->topic || strcmp(tl->topic, topic) != 0)
            continue;
        for (size_t k = 0; k < tl->n_partitions; k++)
            if (tl->partitions[k] == partition)
                return true;
    }
    return false;
}

void svc_list_reassignments(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    const Weir__Coord__ListReassignmentsRequest *req =
        (const Weir__Coord__ListReassignmentsRequest *)msg;
    struct coord_service *svc = ud;
    const struct cstate *s = svc->committed;
    size_t n = 0;
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next)
        for (int32_t i = 0; i < t->n_parts; i++)
            n += (t->parts[i].n_adding || t->parts[i].n_removing) && wanted(req, t->name, i);
    Weir__Coord__OngoingReassignment *v = calloc(n ? n : 1, sizeof(*v));
    Weir__Coord__OngoingReassignment **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!v || !ptrs) {
        free(v);
        free(ptrs);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    size_t k = 0;
    /* The arrays borrow the committed state, which does not change before
     * the reply is written. */
    for (const struct cstate_topic *t = s->first_topic; t && k < n; t = t->next) {
        for (int32_t i = 0; i < t->n_parts && k < n; i++) {
            const struct cstate_partition *p = &t->parts[i];
            if (!(p->n_adding || p->n_removing) || !wanted(req, t->name, i))
                continue;
            weir__coord__ongoing_reassignment__init(&v[k]);
            v[k].topic = t->name;
            v[k].partition = i;
            v[k].replicas = (int32_t *)cstate_part_replicas(p);
            v[k].n_replicas = p->n_replicas;
            v[k].adding_replicas = (int32_t *)cstate_part_adding(p);
            v[k].n_adding_replicas = p->n_adding;
            v[k].removing_replicas = (int32_t *)cstate_part_removing(p);
            v[k].n_removing_replicas = p->n_removing;
            ptrs[k] = &v[k];
            k++;
        }
    }
    Weir__Coord__ListReassignmentsResponse resp = WEIR__COORD__LIST_REASSIGNMENTS_RESPONSE__INIT;
    resp.reassignments = ptrs;
    resp.n_reassignments = k;
    resp.metadata_offset = s->offset;
    rpc_call_reply(call, &resp.base);
    free(v);
    free(ptrs);
}
