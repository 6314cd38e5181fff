/* service_batch: the mutating methods whose request is a list of items —
 * CreateTopics, DeleteTopics, CreatePartitions, AlterTopicConfigs,
 * AlterBrokerConfigs, AlterPartition — on one skeleton (svc_batch_run): for each item in request
 * order, plan (the controller turns it into records, or refuses it), write
 * the records, fill the item's result; then one reply, held until durable.
 * A method is a struct svc_batch_ops: a few callbacks and the sizes of its
 * scratch. */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "metadata.pb-c.h"

#define SVC_OFFSETS_TOPIC "__consumer_offsets"

/* ---- the skeleton ----------------------------------------------------------------- */

/* One call of a batch method while it runs. Every array holds n entries in
 * request order; @items and @state are the method's own scratch (item_size
 * bytes per item, state_size bytes per call), zeroed. */
struct svc_batch {
    struct coord_service *svc;
    const ProtobufCMessage *req;
    size_t n;
    void **results;          /* each an initialised ops->result message */
    struct cctl_error *errs; /* outcomes; results' error_message point here */
    void *items;             /* n * ops->item_size bytes */
    void *state;             /* ops->state_size bytes */
    bool validate_only;      /* set by begin(): items are planned, never written */
};

/* A mutating method whose request is a list of items, each planned, written
 * and answered on its own: what the method adds to the common skeleton of
 * svc_batch_run(). */
struct svc_batch_ops {
    const ProtobufCMessageDescriptor *resp;   /* the response message */
    const ProtobufCMessageDescriptor *result; /* one item's result message */
    size_t item_size;
    size_t state_size;
    size_t (*count)(const ProtobufCMessage *req);
    /* Optional: request-wide checks and settings, before any item. */
    void (*begin)(struct svc_batch *b);
    /* Fill @result's identity, then ask the controller for item @i's records
     * (into svc->recs) or a refusal (into @err). -errno: the coordinator
     * failed (the item gets UNKNOWN_SERVER_ERROR). */
    int (*plan)(struct svc_batch *b, size_t i, void *result, struct cctl_error *err);
    /* After the item's records were written (or not, @err says): fill the rest
     * of @result and its error. */
    void (*done)(struct svc_batch *b, size_t i, void *result, const struct cctl_error *err);
    /* Point the response at the results; set its request-wide fields. */
    void (*finish)(struct svc_batch *b, void *resp);
    /* Optional: free what plan() or done() allocated for item @i, once
     * answered. */
    void (*release)(struct svc_batch *b, size_t i, void *result);
};

static size_t align_up(size_t n)
{
    const size_t a = _Alignof(max_align_t);
    return (n + a - 1) / a * a;
}

/* Run one call of a batch method: item after item in request order, plan it
 * and append its records before the next is planned (so a later item sees an
 * earlier one's change, as in the speculative state), then answer once every
 * record written is durable. Everything the call needs is one allocation;
 * without it the call fails before any item. */
void svc_batch_run(struct coord_service *svc, struct rpc_call *call, const ProtobufCMessage *req,
                   const struct svc_batch_ops *ops)
{
    /* n is bounded by the frame the RPC layer accepted (every item took bytes
     * of it), so none of these sizes can overflow. */
    size_t n = ops->count(req);
    size_t at_results = align_up(ops->resp->sizeof_message);
    size_t at_ptrs = at_results + align_up(n * ops->result->sizeof_message);
    size_t at_errs = at_ptrs + align_up(n * sizeof(void *));
    size_t at_items = at_errs + align_up(n * sizeof(struct cctl_error));
    size_t at_state = at_items + align_up(n * ops->item_size);
    size_t size = at_state + ops->state_size;
    uint8_t *mem = calloc(1, size);
    if (!mem) {
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    void *resp = mem;
    protobuf_c_message_init(ops->resp, resp);
    struct svc_batch b = {
        .svc = svc,
        .req = req,
        .n = n,
        .results = (void **)(mem + at_ptrs),
        .errs = (struct cctl_error *)(mem + at_errs),
        .items = mem + at_items,
        .state = mem + at_state,
    };
    if (ops->begin)
        ops->begin(&b);
    for (size_t i = 0; i < n; i++) {
        void *o = mem + at_results + i * ops->result->sizeof_message;
        struct cctl_error *err = &b.errs[i];
        protobuf_c_message_init(ops->result, o);
        b.results[i] = o;
        int r = ops->plan(&b, i, o, err);
        svc_write_item(svc, r, err, !b.validate_only);
        ops->done(&b, i, o, err);
    }
    ops->finish(&b, resp);
    svc_reply(svc, call, resp, svc->spec->offset);
    for (size_t i = 0; ops->release && i < n; i++)
        ops->release(&b, i, b.results[i]);
    free(mem);
}

/* ---- AlterPartition ------------------------------------------------------------- */

/* Whether partition @idx of topic @topic_id has its preferred replica in the
 * ISR; false for an unknown one. */
static bool preferred_in_isr(const struct cstate *s, const uint8_t *topic_id, int32_t idx)
{
    const struct cstate_topic *t = cstate_topic_by_id(s, topic_id);
    if (!t || idx < 0 || idx >= t->n_parts)
        return false;
    const struct cstate_partition *p = &t->parts[idx];
    return cstate_part_in_isr(p, cctl_preferred_replica(p));
}

/* An ISR change just added the preferred replica back: hand it the leadership
 * now rather than at the next periodic rebalance, so a restarted broker takes
 * its share of the load back as soon as it has caught up. */
static void preferred_return(struct coord_service *svc, const uint8_t *topic_id, int32_t idx)
{
    int r = cctl_preferred_leader_return(svc->spec, &svc->ctx, topic_id, idx, &svc->recs);
    if (r < 0) {
        log_error("coordinator", "preferred-leader check failed: %s", strerror(-r));
        cstate_records_clear(&svc->recs);
        return;
    }
    if (svc->recs.n == 0)
        return;
    /* Records exist only for a known partition. */
    const struct cstate_topic *t = cstate_topic_by_id(svc->spec, topic_id);
    int32_t preferred = cctl_preferred_replica(&t->parts[idx]);
    log_event(LOG_LEVEL_INFO, "coordinator", "preferred_leader_return",
              LOG_FIELDS(LF_STR("topic", t->name), LF_INT("partition", idx),
                         LF_INT("broker", preferred)),
              "%s-%d: preferred replica %d is back in the ISR: moving leadership to it (%zu "
              "records)",
              t->name, (int)idx, (int)preferred, svc->recs.n);
    svc_write_internal(svc, "preferred-leader return");
}

struct alter_partition_state {
    struct cctl_error top; /* request-wide: the sender's broker epoch */
};

struct alter_partition_item {
    bool pref_before; /* the preferred replica was in the ISR before the change */
};

static size_t alter_partition_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__AlterPartitionRequest *)msg)->n_items;
}

static void alter_partition_begin(struct svc_batch *b)
{
    const Weir__Coord__AlterPartitionRequest *req = (const void *)b->req;
    struct alter_partition_state *st = b->state;
    int r = cctl_check_broker_epoch(b->svc->spec, req->broker_id, req->broker_epoch, &st->top);
    if (r < 0)
        svc_err_internal(&st->top, r);
}

static int alter_partition_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__AlterPartitionRequest *req = (const void *)b->req;
    const struct alter_partition_state *st = b->state;
    struct alter_partition_item *ai = (struct alter_partition_item *)b->items + i;
    const Weir__Coord__AlterPartitionItem *it = req->items[i];
    Weir__Coord__AlterPartitionResult *o = result;
    o->topic_id = it->topic_id;
    o->partition = it->partition;
    o->leader = -1;
    if (st->top.code != KERR_NONE) {
        *err = st->top;
        return 0;
    }
    if (it->topic_id.len != CSTATE_UUID_LEN) {
        svc_err_set(err, KERR_UNKNOWN_TOPIC_ID, "topic_id must be %d bytes", CSTATE_UUID_LEN);
        return 0;
    }
    struct cctl_alter_partition_req ar = {
        .broker_id = req->broker_id,
        .broker_epoch = req->broker_epoch,
        .topic_id = it->topic_id.data,
        .partition = it->partition,
        .leader_epoch = it->leader_epoch,
        .partition_epoch = it->partition_epoch,
        .isr = it->new_isr,
        .n_isr = it->n_new_isr,
    };
    ai->pref_before = preferred_in_isr(svc->spec, it->topic_id.data, it->partition);
    int r = cctl_alter_partition(svc->spec, &svc->ctx, &ar, &svc->recs, err);
    if (r >= 0 && err->code != KERR_NONE)
        log_info("coordinator", "ISR change for partition %d from broker %d refused: %s",
                 (int)it->partition, (int)req->broker_id, err->message);
    return r;
}

static void alter_partition_done(struct svc_batch *b, size_t i, void *result,
                                 const struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__AlterPartitionRequest *req = (const void *)b->req;
    const struct alter_partition_item *ai = (const struct alter_partition_item *)b->items + i;
    const Weir__Coord__AlterPartitionItem *it = req->items[i];
    Weir__Coord__AlterPartitionResult *o = result;
    /* No error here means the change was written. */
    bool pref_added = err->code == KERR_NONE && !ai->pref_before &&
                      preferred_in_isr(svc->spec, it->topic_id.data, it->partition);
    o->error_code = err->code;
    o->error_message = svc_err_msg(err);
    if (it->topic_id.len == CSTATE_UUID_LEN) {
        const struct cstate_topic *t = cstate_topic_by_id(svc->spec, it->topic_id.data);
        if (t && it->partition >= 0 && it->partition < t->n_parts) {
            const struct cstate_partition *p = &t->parts[it->partition];
            o->leader = p->leader;
            o->leader_epoch = p->leader_epoch;
            o->partition_epoch = p->partition_epoch;
            /* Copied: a later item's change may move the state's arrays. */
            o->isr = malloc((p->n_isr ? p->n_isr : 1) * sizeof(int32_t));
            if (o->isr) {
                memcpy(o->isr, cstate_part_isr(p), p->n_isr * sizeof(int32_t));
                o->n_isr = p->n_isr;
            }
        }
    }
    /* After the result: it reports the ISR change the leader asked for; the
     * leadership move reaches it, like every broker, through the watch (and
     * the reply waits until the move is durable too). */
    if (pref_added && svc->cfg->auto_leader_rebalance)
        preferred_return(svc, it->topic_id.data, it->partition);
    /* A move finishes once its last target replica is in the ISR. */
    if (err->code == KERR_NONE)
        svc_reassign_maybe_complete(svc, it->topic_id.data, it->partition);
}

static void alter_partition_finish(struct svc_batch *b, void *msg)
{
    const struct alter_partition_state *st = b->state;
    Weir__Coord__AlterPartitionResponse *resp = msg;
    resp->error_code = st->top.code;
    resp->error_message = svc_err_msg(&st->top);
    resp->n_results = b->n;
    resp->results = (Weir__Coord__AlterPartitionResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

static void alter_partition_release(struct svc_batch *b, size_t i, void *result)
{
    (void)b;
    (void)i;
    free(((Weir__Coord__AlterPartitionResult *)result)->isr);
}

const struct svc_batch_ops svc_alter_partition_ops = {
    .resp = &weir__coord__alter_partition_response__descriptor,
    .result = &weir__coord__alter_partition_result__descriptor,
    .item_size = sizeof(struct alter_partition_item),
    .state_size = sizeof(struct alter_partition_state),
    .count = alter_partition_count,
    .begin = alter_partition_begin,
    .plan = alter_partition_plan,
    .done = alter_partition_done,
    .finish = alter_partition_finish,
    .release = alter_partition_release,
};

/* ---- topics --------------------------------------------------------------------- */

/* Turn an assignment list into the controller's form, checking that the
 * partition indexes run @base, @base+1, ... in order. */
static int assignments_from_pb(Weir__Coord__ReplicaAssignment *const *in, size_t n, int32_t base,
                               struct cctl_assignment **ret, struct cctl_error *err)
{
    *ret = NULL;
    if (n == 0)
        return 0;
    struct cctl_assignment *a = calloc(n, sizeof(*a));
    if (!a)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((int64_t)in[i]->partition != (int64_t)base + (int64_t)i) {
            svc_err_set(err, KERR_INVALID_REPLICA_ASSIGNMENT,
                        "assignment %zu is for partition %d; expected partition %" PRId64, i,
                        (int)in[i]->partition, (int64_t)base + (int64_t)i);
            free(a);
            return 0;
        }
        a[i].replicas = in[i]->broker_ids;
        a[i].n_replicas = in[i]->n_broker_ids;
    }
    *ret = a;
    return 0;
}

/* CreateTopics */

struct create_topics_state {
    int64_t budget; /* partitions the rest of the request may still create */
};

struct create_topics_item {
    uint8_t id[CSTATE_UUID_LEN];
    int32_t num_partitions, replication_factor; /* in effect, for the result */
};

static size_t create_topics_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__CreateTopicsRequest *)msg)->n_topics;
}

static void create_topics_begin(struct svc_batch *b)
{
    const Weir__Coord__CreateTopicsRequest *req = (const void *)b->req;
    struct create_topics_state *st = b->state;
    st->budget = CCTL_MAX_PARTITIONS_PER_REQUEST;
    b->validate_only = req->validate_only;
}

static int create_topic_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__CreateTopicsRequest *req = (const void *)b->req;
    const struct create_topics_state *st = b->state;
    struct create_topics_item *ci = (struct create_topics_item *)b->items + i;
    const Weir__Coord__CreatableTopic *t = req->topics[i];
    Weir__Coord__CreatableTopicResult *o = result;
    o->name = svc_str_or_empty(t->name);

    bool offsets = t->name && strcmp(t->name, SVC_OFFSETS_TOPIC) == 0;
    int32_t np = t->num_partitions > 0 ? t->num_partitions : -1;
    int32_t rf = t->replication_factor > 0 ? t->replication_factor : -1;
    if (offsets && t->n_assignments == 0) {
        if (np < 0)
            np = svc->cfg->offsets_topic_num_partitions;
        if (rf < 0)
            rf = svc->cfg->offsets_topic_replication_factor;
    }
    ci->num_partitions =
        t->n_assignments ? (int32_t)t->n_assignments : (np > 0 ? np : svc->cfg->num_partitions);
    ci->replication_factor = t->n_assignments
                                 ? (int32_t)t->assignments[0]->n_broker_ids
                                 : (rf > 0 ? rf : svc->cfg->default_replication_factor);

    if (req->auto_create && !svc->cfg->auto_create_topics) {
        svc_err_set(err, KERR_UNKNOWN_TOPIC_OR_PARTITION,
                    "topic %.249s does not exist and auto.create.topics.enable is false", o->name);
        return 0;
    }
    if (ci->num_partitions > st->budget) {
        svc_err_set(err, KERR_POLICY_VIOLATION,
                    "one request may create at most %d partitions in all",
                    CCTL_MAX_PARTITIONS_PER_REQUEST);
        return 0;
    }
    struct cctl_assignment *asg = NULL;
    int r = assignments_from_pb(t->assignments, t->n_assignments, 0, &asg, err);
    if (r < 0 || err->code != KERR_NONE)
        return r;
    size_t nkv = t->n_configs;
    bool add_compact = offsets;
    for (size_t k = 0; k < t->n_configs && add_compact; k++)
        if (t->configs[k]->name && strcmp(t->configs[k]->name, "cleanup.policy") == 0)
            add_compact = false;
    struct cctl_kv *kv = calloc(nkv + 1, sizeof(*kv));
    if (!kv) {
        free(asg);
        return -ENOMEM;
    }
    for (size_t k = 0; k < nkv; k++) {
        kv[k].name = t->configs[k]->name;
        kv[k].value = t->configs[k]->value;
    }
    /* Kafka's offsets topic is compacted so that committed offsets are never
     * deleted by time, however it is created (the brokers' gstore asks for it;
     * an admin's CreateTopics of the name gets it too unless it names a policy). */
    if (add_compact) {
        kv[nkv].name = "cleanup.policy";
        kv[nkv].value = "compact";
        nkv++;
    }
    struct cctl_create_topic_req cr = {
        .name = t->name,
        .num_partitions = np,
        .replication_factor = rf,
        .assignments = asg,
        .n_assignments = t->n_assignments,
        .configs = kv,
        .n_configs = nkv,
    };
    if (asg) {
        cr.num_partitions = -1;
        cr.replication_factor = -1;
        if (t->num_partitions > 0 || t->replication_factor > 0)
            svc_err_set(err, KERR_INVALID_REQUEST,
                        "num_partitions and replication_factor must be unset with a manual "
                        "assignment");
    }
    if (err->code == KERR_NONE)
        r = cctl_create_topic(svc->spec, &svc->ctx, &cr, &svc->recs, ci->id, err);
    free(asg);
    free(kv);
    return r;
}

static void create_topic_done(struct svc_batch *b, size_t i, void *result,
                              const struct cctl_error *err)
{
    const Weir__Coord__CreateTopicsRequest *req = (const void *)b->req;
    struct create_topics_state *st = b->state;
    struct create_topics_item *ci = (struct create_topics_item *)b->items + i;
    const Weir__Coord__CreatableTopic *t = req->topics[i];
    Weir__Coord__CreatableTopicResult *o = result;
    o->error_code = err->code;
    o->error_message = svc_err_msg(err);
    if (err->code == KERR_NONE) {
        st->budget -= ci->num_partitions;
        o->num_partitions = ci->num_partitions;
        o->replication_factor = ci->replication_factor;
        if (!req->validate_only) {
            o->topic_id.data = ci->id;
            o->topic_id.len = CSTATE_UUID_LEN;
            log_event(LOG_LEVEL_INFO, "coordinator", "topic_created",
                      LOG_FIELDS(LF_STR("topic", t->name),
                                 LF_INT("partitions", ci->num_partitions),
                                 LF_INT("replication_factor", ci->replication_factor),
                                 LF_BOOL("auto_create", req->auto_create)),
                      "creating topic %s with %d partitions, RF %d", t->name,
                      (int)ci->num_partitions, (int)ci->replication_factor);
        }
    } else if (err->code != KERR_TOPIC_ALREADY_EXISTS || !req->auto_create) {
        log_info("coordinator", "create topic %.249s refused: %s", o->name, err->message);
    }
}

static void create_topics_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__CreateTopicsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__CreatableTopicResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

const struct svc_batch_ops svc_create_topics_ops = {
    .resp = &weir__coord__create_topics_response__descriptor,
    .result = &weir__coord__creatable_topic_result__descriptor,
    .item_size = sizeof(struct create_topics_item),
    .state_size = sizeof(struct create_topics_state),
    .count = create_topics_count,
    .begin = create_topics_begin,
    .plan = create_topic_plan,
    .done = create_topic_done,
    .finish = create_topics_finish,
};

/* DeleteTopics: the names first, then the ids, each answered in that order. */

struct delete_topics_item {
    uint8_t id[CSTATE_UUID_LEN]; /* of a topic deleted by name */
    char *name;                  /* of a topic deleted by id */
};

static size_t delete_topics_count(const ProtobufCMessage *msg)
{
    const Weir__Coord__DeleteTopicsRequest *req = (const void *)msg;
    return req->n_names + req->n_topic_ids;
}

static int delete_topic_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__DeleteTopicsRequest *req = (const void *)b->req;
    struct delete_topics_item *di = (struct delete_topics_item *)b->items + i;
    Weir__Coord__DeletableTopicResult *o = result;
    const char *name;
    if (i < req->n_names) {
        name = req->names[i];
        o->name = svc_str_or_empty(name);
        const struct cstate_topic *t = cstate_topic_by_name(svc->spec, name);
        if (t) {
            memcpy(di->id, t->id, CSTATE_UUID_LEN);
            o->topic_id.data = di->id;
            o->topic_id.len = CSTATE_UUID_LEN;
        }
    } else {
        ProtobufCBinaryData id = req->topic_ids[i - req->n_names];
        o->name = "";
        o->topic_id = id;
        const struct cstate_topic *t =
            id.len == CSTATE_UUID_LEN ? cstate_topic_by_id(svc->spec, id.data) : NULL;
        if (!t) {
            svc_err_set(err, KERR_UNKNOWN_TOPIC_ID, "no topic with that id");
            return 0;
        }
        di->name = strdup(t->name);
        if (!di->name)
            return -ENOMEM;
        o->name = di->name;
        name = di->name;
    }
    return cctl_delete_topic(svc->spec, &svc->ctx, name, &svc->recs, err);
}

static void delete_topic_done(struct svc_batch *b, size_t i, void *result,
                              const struct cctl_error *err)
{
    (void)b;
    (void)i;
    Weir__Coord__DeletableTopicResult *o = result;
    if (err->code == KERR_NONE)
        log_event(LOG_LEVEL_INFO, "coordinator", "topic_deleted",
                  LOG_FIELDS(LF_STR("topic", o->name)), "deleting topic %s", o->name);
    o->error_code = err->code;
    o->error_message = svc_err_msg(err);
}

static void delete_topics_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__DeleteTopicsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__DeletableTopicResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

static void delete_topic_release(struct svc_batch *b, size_t i, void *result)
{
    (void)result;
    free(((struct delete_topics_item *)b->items)[i].name);
}

const struct svc_batch_ops svc_delete_topics_ops = {
    .resp = &weir__coord__delete_topics_response__descriptor,
    .result = &weir__coord__deletable_topic_result__descriptor,
    .item_size = sizeof(struct delete_topics_item),
    .count = delete_topics_count,
    .plan = delete_topic_plan,
    .done = delete_topic_done,
    .finish = delete_topics_finish,
    .release = delete_topic_release,
};

/* CreatePartitions */

struct create_partitions_item {
    int32_t before; /* the topic's partition count before the change */
};

static size_t create_partitions_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__CreatePartitionsRequest *)msg)->n_topics;
}

static void create_partitions_begin(struct svc_batch *b)
{
    b->validate_only = ((const Weir__Coord__CreatePartitionsRequest *)b->req)->validate_only;
}

static int create_partitions_plan(struct svc_batch *b, size_t i, void *result,
                                  struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__CreatePartitionsRequest *req = (const void *)b->req;
    struct create_partitions_item *pi = (struct create_partitions_item *)b->items + i;
    const Weir__Coord__CreatePartitionsTopic *t = req->topics[i];
    Weir__Coord__CreatePartitionsResult *o = result;
    o->name = svc_str_or_empty(t->name);
    const struct cstate_topic *topic = t->name ? cstate_topic_by_name(svc->spec, t->name) : NULL;
    pi->before = topic ? topic->n_parts : 0;
    struct cctl_assignment *asg = NULL;
    int r = assignments_from_pb(t->assignments, t->n_assignments, pi->before, &asg, err);
    if (r == 0 && err->code == KERR_NONE) {
        struct cctl_create_partitions_req cr = {
            .name = t->name,
            .total_count = t->count,
            .assignments = asg,
            .n_assignments = t->n_assignments,
        };
        r = cctl_create_partitions(svc->spec, &svc->ctx, &cr, &svc->recs, err);
    }
    free(asg);
    return r;
}

static void create_partitions_done(struct svc_batch *b, size_t i, void *result,
                                   const struct cctl_error *err)
{
    const Weir__Coord__CreatePartitionsRequest *req = (const void *)b->req;
    const struct create_partitions_item *pi = (const struct create_partitions_item *)b->items + i;
    const Weir__Coord__CreatePartitionsTopic *t = req->topics[i];
    Weir__Coord__CreatePartitionsResult *o = result;
    if (err->code == KERR_NONE && !b->validate_only)
        log_event(LOG_LEVEL_INFO, "coordinator", "partitions_created",
                  LOG_FIELDS(LF_STR("topic", t->name), LF_INT("partitions_before", pi->before),
                             LF_INT("partitions", t->count)),
                  "topic %s: partitions %d -> %d", t->name, (int)pi->before, (int)t->count);
    o->error_code = err->code;
    o->error_message = svc_err_msg(err);
}

static void create_partitions_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__CreatePartitionsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__CreatePartitionsResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

const struct svc_batch_ops svc_create_partitions_ops = {
    .resp = &weir__coord__create_partitions_response__descriptor,
    .result = &weir__coord__create_partitions_result__descriptor,
    .item_size = sizeof(struct create_partitions_item),
    .count = create_partitions_count,
    .begin = create_partitions_begin,
    .plan = create_partitions_plan,
    .done = create_partitions_done,
    .finish = create_partitions_finish,
};

/* AlterTopicConfigs */

static bool kv_named(const struct cctl_kv *ops, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ops[i].name, name))
            return true;
    return false;
}

static size_t alter_configs_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__AlterTopicConfigsRequest *)msg)->n_topics;
}

/* One line per committed config change: which keys, and their new values
 * except secrets. @topic names a topic resource; otherwise @broker_id is a
 * broker or CSTATE_CLUSTER_DEFAULT. */
static void log_config_change(const char *topic, int32_t broker_id,
                              Weir__Coord__AlterConfigOp *const *ops, size_t n, bool replace)
{
    char keys[1024] = "", what[2048] = "";
    size_t kl = 0, wl = 0;
    for (size_t k = 0; k < n; k++) {
        const Weir__Coord__AlterConfigOp *op = ops[k];
        const char *v = op->remove ? NULL : log_config_value(op->name, op->value);
        int a = snprintf(keys + kl, sizeof(keys) - kl, "%s%s", k ? "," : "", op->name);
        int b = snprintf(what + wl, sizeof(what) - wl, "%s%s%s%s", k ? ", " : "", op->name,
                         v ? "=" : " removed", v ? v : "");
        if (a > 0)
            kl = kl + (size_t)a < sizeof(keys) ? kl + (size_t)a : sizeof(keys) - 1;
        if (b > 0)
            wl = wl + (size_t)b < sizeof(what) ? wl + (size_t)b : sizeof(what) - 1;
    }
    if (topic)
        log_event(LOG_LEVEL_INFO, "coordinator", "config_changed",
                  LOG_FIELDS(LF_STR("resource", "topic"), LF_STR("topic", topic),
                             LF_STR("keys", keys), LF_BOOL("replace", replace)),
                  "topic %s: %zu config changes%s: %s", topic, n,
                  replace ? " (other overrides removed)" : "", what);
    else if (broker_id == CSTATE_CLUSTER_DEFAULT)
        log_event(LOG_LEVEL_INFO, "coordinator", "config_changed",
                  LOG_FIELDS(LF_STR("resource", "cluster_default"), LF_STR("keys", keys)),
                  "dynamic broker config (cluster default): %s", what);
    else
        log_event(LOG_LEVEL_INFO, "coordinator", "config_changed",
                  LOG_FIELDS(LF_STR("resource", "broker"), LF_INT("broker", broker_id),
                             LF_STR("keys", keys)),
                  "dynamic broker config (broker %d): %s", (int)broker_id, what);
}

static void alter_configs_begin(struct svc_batch *b)
{
    b->validate_only = ((const Weir__Coord__AlterTopicConfigsRequest *)b->req)->validate_only;
}

static int alter_configs_plan(struct svc_batch *b, size_t i, void *result, struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__AlterTopicConfigsRequest *req = (const void *)b->req;
    const Weir__Coord__AlterTopicConfigsTopic *t = req->topics[i];
    Weir__Coord__AlterTopicConfigsResult *o = result;
    o->name = svc_str_or_empty(t->name);
    /* replace (AlterConfigs): every override not named goes, decided here
     * against the state this batch sees, so a change that another broker made
     * meanwhile cannot survive half-replaced. */
    const struct cstate_topic *cur = t->replace ? cstate_topic_by_name(svc->spec, t->name) : NULL;
    size_t n_cur = cur ? cur->n_configs : 0;
    struct cctl_kv *ops = calloc(t->n_ops + n_cur + 1, sizeof(*ops));
    if (!ops)
        return -ENOMEM;
    size_t n = 0;
    for (size_t k = 0; k < t->n_ops; k++) {
        ops[n].name = t->ops[k]->name;
        ops[n++].value = t->ops[k]->remove ? NULL : t->ops[k]->value;
    }
    for (size_t k = 0; k < n_cur; k++)
        if (!kv_named(ops, t->n_ops, cur->configs[k].name))
            ops[n++] = (struct cctl_kv){.name = cur->configs[k].name, .value = NULL};
    int r = cctl_alter_topic_config(svc->spec, &svc->ctx, t->name, ops, n, &svc->recs, err);
    free(ops);
    return r;
}

static void alter_configs_done(struct svc_batch *b, size_t i, void *result,
                               const struct cctl_error *err)
{
    const Weir__Coord__AlterTopicConfigsRequest *req = (const void *)b->req;
    const Weir__Coord__AlterTopicConfigsTopic *t = req->topics[i];
    Weir__Coord__AlterTopicConfigsResult *o = result;
    if (err->code == KERR_NONE && !b->validate_only)
        log_config_change(t->name, -2, t->ops, t->n_ops, t->replace);
    o->error_code = err->code;
    o->error_message = svc_err_msg(err);
}

static void alter_configs_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__AlterTopicConfigsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__AlterTopicConfigsResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

const struct svc_batch_ops svc_alter_configs_ops = {
    .resp = &weir__coord__alter_topic_configs_response__descriptor,
    .result = &weir__coord__alter_topic_configs_result__descriptor,
    .count = alter_configs_count,
    .begin = alter_configs_begin,
    .plan = alter_configs_plan,
    .done = alter_configs_done,
    .finish = alter_configs_finish,
};

/* AlterBrokerConfigs */

static size_t alter_broker_configs_count(const ProtobufCMessage *msg)
{
    return ((const Weir__Coord__AlterBrokerConfigsRequest *)msg)->n_resources;
}

static void alter_broker_configs_begin(struct svc_batch *b)
{
    b->validate_only = ((const Weir__Coord__AlterBrokerConfigsRequest *)b->req)->validate_only;
}

static int alter_broker_configs_plan(struct svc_batch *b, size_t i, void *result,
                                     struct cctl_error *err)
{
    struct coord_service *svc = b->svc;
    const Weir__Coord__AlterBrokerConfigsRequest *req = (const void *)b->req;
    const Weir__Coord__AlterBrokerConfigsResource *r = req->resources[i];
    Weir__Coord__AlterBrokerConfigsResult *o = result;
    o->broker_id = r->broker_id;
    const struct cstate *s = svc->spec;
    size_t n_cur = 0;
    for (size_t k = 0; r->replace && k < s->n_broker_configs; k++)
        n_cur += s->broker_configs[k].broker_id == r->broker_id;
    struct cctl_kv *ops = calloc(r->n_ops + n_cur + 1, sizeof(*ops));
    if (!ops)
        return -ENOMEM;
    size_t n = 0;
    for (size_t k = 0; k < r->n_ops; k++) {
        ops[n].name = r->ops[k]->name;
        ops[n++].value = r->ops[k]->remove ? NULL : r->ops[k]->value;
    }
    /* replace (AlterConfigs): as for topics, decided against this batch's state. */
    for (size_t k = 0; r->replace && k < s->n_broker_configs; k++) {
        const struct cstate_broker_config *bc = &s->broker_configs[k];
        if (bc->broker_id == r->broker_id && !kv_named(ops, r->n_ops, bc->name))
            ops[n++] = (struct cctl_kv){.name = bc->name, .value = NULL};
    }
    int rc = cctl_alter_broker_config(svc->spec, &svc->ctx, r->broker_id, ops, n, &svc->recs, err);
    free(ops);
    return rc;
}

static void alter_broker_configs_done(struct svc_batch *b, size_t i, void *result,
                                      const struct cctl_error *err)
{
    const Weir__Coord__AlterBrokerConfigsRequest *req = (const void *)b->req;
    const Weir__Coord__AlterBrokerConfigsResource *r = req->resources[i];
    Weir__Coord__AlterBrokerConfigsResult *o = result;
    if (err->code == KERR_NONE && !b->validate_only)
        log_config_change(NULL, r->broker_id, r->ops, r->n_ops, false);
    o->error_code = err->code;
    o->error_message = svc_err_msg(err);
}

static void alter_broker_configs_finish(struct svc_batch *b, void *msg)
{
    Weir__Coord__AlterBrokerConfigsResponse *resp = msg;
    resp->n_results = b->n;
    resp->results = (Weir__Coord__AlterBrokerConfigsResult **)b->results;
    resp->metadata_offset = b->svc->spec->offset;
}

const struct svc_batch_ops svc_alter_broker_configs_ops = {
    .resp = &weir__coord__alter_broker_configs_response__descriptor,
    .result = &weir__coord__alter_broker_configs_result__descriptor,
    .count = alter_broker_configs_count,
    .begin = alter_broker_configs_begin,
    .plan = alter_broker_configs_plan,
    .done = alter_broker_configs_done,
    .finish = alter_broker_configs_finish,
};
