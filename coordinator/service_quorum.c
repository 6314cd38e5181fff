/* service_quorum: the service as one voter of a coordinator quorum
 * (docs/coordinator-quorum.md) — opening the voter over the recovered metadata
 * log, committed entries from the Raft node, leadership gained and lost,
 * QuorumStep calls from the other voters, and the answer of a voter that does
 * not lead.
 *
 * On every voter the committed state is the committed log; the metadata log
 * (mlog) holds only committed records, appended as they commit. Only the
 * leader runs the controller: its speculative state is the committed one plus
 * its uncommitted entries, which are in flight until they commit. A follower's
 * speculative state equals its committed one. */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator.pb-c.h"
#include "coordinator/mlog.h"
#include "coordinator/raft_store.h"
#include "coordinator/session.h"
#include "coordinator/watch.h"
#include "quorum.pb-c.h"

/* ---- committed entries ------------------------------------------------------------ */

static void on_log_durable(struct mlog *log, int64_t offset, int status, void *ud)
{
    (void)log;
    struct coord_service *svc = ud;
    if (svc->failed || status == -ECANCELED) /* closing: the tail still has it */
        return;
    if (status < 0) {
        svc_fatal(svc, "metadata log failed at offset %" PRId64 ": %s", offset, strerror(-status));
        return;
    }
    if (svc->quorum)
        craft_node_log_durable(svc->quorum, offset + 1);
}

static void on_committed(void *ud, int64_t offset, uint8_t *data, size_t len)
{
    struct coord_service *svc = ud;
    if (svc->failed || svc->stopping) { /* the tail has it for the next start */
        free(data);
        return;
    }
    struct inflight rec;
    if (svc_inflight_pop(svc, offset, &rec)) {
        free(data); /* the same bytes, already applied to the speculative state */
        data = rec.data;
        len = rec.len;
    } else if (svc->q_n > 0) {
        free(data);
        svc_fatal(svc, "internal error: committed offset %" PRId64 " is not the oldest in flight",
                  offset);
        return;
    } else {
        char why[256] = "";
        int r = cstate_apply_bytes(svc->spec, offset, data, len, why, sizeof(why));
        if (r < 0) {
            free(data);
            svc_fatal(svc, "committed record at offset %" PRId64 " does not apply: %s", offset,
                      why[0] ? why : strerror(-r));
            return;
        }
    }
    int64_t got = -1;
    int r = mlog_append(svc->log, data, len, on_log_durable, svc, &got);
    if (r == 0 && got != offset)
        r = -EPROTO;
    if (r < 0) {
        free(data);
        svc_fatal(svc, "cannot append committed offset %" PRId64 " to the metadata log: %s", offset,
                  strerror(-r));
        return;
    }
    svc_commit_record(svc, offset, data, len);
}

/* ---- leadership ------------------------------------------------------------------- */

/* The speculative state becomes a copy of the committed one. */
static int spec_reset(struct coord_service *svc)
{
    uint8_t *img = NULL;
    size_t len = 0;
    char why[256] = "";
    struct cstate *copy = NULL;
    int r = cstate_snapshot_encode(svc->committed, &img, &len);
    if (r == 0)
        r = cstate_snapshot_decode(img, len, &copy, why, sizeof(why));
    free(img);
    if (r < 0)
        return r;
    cstate_free(svc->spec);
    svc->spec = copy;
    return 0;
}

static void drop_inflight(struct coord_service *svc)
{
    struct inflight rec;
    while (svc->q_n > 0 && svc_inflight_pop(svc, svc->q[svc->q_head].offset, &rec))
        free(rec.data);
}

static void become_leader(struct coord_service *svc, int64_t term)
{
    drop_inflight(svc);
    int r = spec_reset(svc);
    /* Entries of earlier terms that are not committed yet, and our no-op: they
     * commit with it, so the controller must see them. */
    int64_t end = craft_node_next_offset(svc->quorum);
    for (int64_t off = craft_node_applied(svc->quorum); r == 0 && off < end; off++) {
        const struct craft_entry *e = craft_node_entry(svc->quorum, off);
        char why[256] = "";
        uint8_t *copy = e && e->len ? malloc(e->len) : NULL;
        if (!e || (e->len && !copy)) {
            r = -ENOMEM;
            break;
        }
        if (e->len)
            memcpy(copy, e->data, e->len);
        r = cstate_apply_bytes(svc->spec, off, copy, e->len, why, sizeof(why));
        if (r == 0)
            r = svc_inflight_push(svc, off, copy, e->len);
        else
            free(copy);
    }
    if (r < 0) {
        svc_fatal(svc, "cannot take the leadership of term %" PRId64 ": %s", term, strerror(-r));
        return;
    }
    /* Sessions are soft state: every registered broker gets a full session
     * from now before anyone is fenced (no mass fencing after a failover). */
    r = csession_reset(svc->sessions, svc->spec, clock_mono_ms());
    if (r < 0) {
        svc_fatal(svc, "cannot reset the broker sessions: %s", strerror(-r));
        return;
    }
    log_info("coordinator",
             "leading the quorum in term %" PRId64 ": %zu brokers have a fresh session", term,
             csession_count(svc->sessions));
    r = cctl_elect_offline(svc->spec, &svc->ctx, &svc->recs);
    if (r == 0 && svc->recs.n > 0)
        svc_write_internal(svc, "offline election");
    cstate_records_clear(&svc->recs);
    svc_reassign_complete_all(svc, "new quorum leader");
    svc_arm_ms(svc->session_timer, SVC_SESSION_TICK_MIN_MS);
    svc_arm_ms(svc->rebalance_timer, svc->cfg->leader_imbalance_check_interval_ms);
}

static void become_follower(struct coord_service *svc, int64_t term)
{
    event_del(svc->session_timer);
    event_del(svc->rebalance_timer);
    /* Their records may or may not commit under the next leader. */
    svc_wait_fail_all(svc, RPC_INTERNAL,
                      "NOT_CONTROLLER: this coordinator lost the quorum leadership; the change "
                      "may or may not have been made");
    drop_inflight(svc);
    int r = spec_reset(svc);
    if (r < 0)
        svc_fatal(svc, "cannot step down in term %" PRId64 ": %s", term, strerror(-r));
}

static void on_role(void *ud, bool leader, int64_t term)
{
    struct coord_service *svc = ud;
    if (svc->failed || svc->stopping)
        return;
    if (leader)
        become_leader(svc, term);
    else
        become_follower(svc, term);
}

/* ---- snapshot install ----------------------------------------------------------- */

static int on_open_snapshot(void *ud, int *ret_fd, int64_t *ret_offset, uint64_t *ret_size)
{
    struct coord_service *svc = ud;
    return mlog_open_snapshot(svc->log, ret_fd, ret_offset, ret_size);
}

/* A follower behind the leader's snapshot: the metadata log, the committed
 * state and the watchers start over from the received snapshot. */
static int on_install_snapshot(void *ud, const char *name, int64_t offset, char *err,
                               size_t errlen)
{
    struct coord_service *svc = ud;
    if (svc->failed || svc->stopping)
        return -ESHUTDOWN;
    int r = mlog_sync(svc->log); /* nothing may be queued or flushing */
    uint8_t *img = NULL;
    size_t len = 0;
    if (r == 0)
        r = mlog_install_snapshot(svc->log, name, offset, &img, &len);
    if (r < 0) {
        snprintf(err, errlen, "metadata log: %s", strerror(-r));
        return r;
    }
    struct cstate *st = NULL;
    char why[256] = "";
    r = cstate_snapshot_decode(img, len, &st, why, sizeof(why));
    free(img);
    if (r == 0 && st->offset != offset - 1) {
        snprintf(why, sizeof(why), "it holds the state up to offset %" PRId64, st->offset);
        r = -EBADMSG;
    }
    if (r == 0 && (!st->cluster_id || !svc->committed->cluster_id ||
                   strcmp(st->cluster_id, svc->committed->cluster_id) != 0)) {
        snprintf(why, sizeof(why), "it names cluster '%s', this voter belongs to '%s'",
                 st->cluster_id ? st->cluster_id : "", svc->committed->cluster_id);
        r = -EBADMSG;
    }
    if (r < 0) {
        /* The log switched already: this voter must not go on. */
        cstate_free(st);
        snprintf(err, errlen, "the installed snapshot does not decode: %s",
                 why[0] ? why : strerror(-r));
        return -EIO;
    }
    cstate_free(svc->committed);
    svc->committed = st;
    svc_image_invalidate(svc);
    drop_inflight(svc);
    r = spec_reset(svc);
    if (r == 0)
        r = watch_hub_reset(svc->watch, offset - 1);
    if (r < 0) {
        snprintf(err, errlen, "cannot take over the installed state: %s", strerror(-r));
        return -EIO;
    }
    log_info("coordinator", "metadata log replaced by the leader's snapshot at offset %" PRId64
             ": %zu brokers, %zu topics", offset, st->n_brokers, st->n_topics);
    return 0;
}

static void on_quorum_fatal(void *ud, const char *why)
{
    svc_fatal(ud, "coordinator quorum: %s", why);
}

/* ---- calls ------------------------------------------------------------------------ */

void svc_quorum_step(struct rpc_call *call, const ProtobufCMessage *msg, void *ud)
{
    struct coord_service *svc = ud;
    Weir__Quorum__QuorumStepResponse resp = WEIR__QUORUM__QUORUM_STEP_RESPONSE__INIT;
    char err[512] = "";
    if (!svc->quorum) {
        snprintf(err, sizeof(err),
                 "coordinator %d is not a quorum voter (coordinator.quorum.voters names only it "
                 "or is unset)",
                 (int)svc->cfg->node_id);
        log_error("coordinator", "refused a quorum message from %s: %s",
                  rpc_conn_peer(rpc_call_connection(call)), err);
    } else {
        craft_node_receive_reply(svc->quorum, (const Weir__Quorum__QuorumMessage *)msg, err,
                                 sizeof(err), &resp);
    }
    resp.error = err;
    rpc_call_reply(call, &resp.base);
}

/* The answer of a voter that may not do what @call asks: NOT_CONTROLLER with
 * the leader as a hint when one is known. A method whose response has an
 * error_code and a leader_hint field gets that response (the broker follows
 * the hint); any other gets the same text in an RPC_INTERNAL error. */
void svc_not_leader(struct coord_service *svc, struct rpc_call *call)
{
    char text[COORD_CONFIG_HOST_MAX + 128];
    const struct coord_voter *v = craft_node_leader_voter(svc->quorum);
    bool hint = v && v->id != svc->cfg->node_id;
    if (hint)
        snprintf(text, sizeof(text), "NOT_CONTROLLER: coordinator %d at %s:%d leads the quorum",
                 (int)v->id, v->addr.host, v->addr.port);
    else
        snprintf(text, sizeof(text),
                 "NOT_CONTROLLER: no coordinator leads the quorum with a valid lease right now");
    unsigned m = rpc_call_method(call);
    const ProtobufCServiceDescriptor *sd = &weir__coord__coordinator__descriptor;
    const ProtobufCMessageDescriptor *d = m < sd->n_methods ? sd->methods[m].output : NULL;
    const ProtobufCFieldDescriptor *fc =
        d ? protobuf_c_message_descriptor_get_field_by_name(d, "error_code") : NULL;
    const ProtobufCFieldDescriptor *fm =
        d ? protobuf_c_message_descriptor_get_field_by_name(d, "error_message") : NULL;
    const ProtobufCFieldDescriptor *fh =
        d ? protobuf_c_message_descriptor_get_field_by_name(d, "leader_hint") : NULL;
    if (!fc || fc->type != PROTOBUF_C_TYPE_INT32 || fc->label != PROTOBUF_C_LABEL_NONE || !fh ||
        fh->type != PROTOBUF_C_TYPE_MESSAGE ||
        fh->descriptor != &weir__coord__leader_hint__descriptor) {
        rpc_call_fail(call, RPC_INTERNAL, text);
        return;
    }
    ProtobufCMessage *resp = calloc(1, d->sizeof_message);
    if (!resp) {
        rpc_call_fail(call, RPC_INTERNAL, text);
        return;
    }
    protobuf_c_message_init(d, resp);
    *(int32_t *)((char *)resp + fc->offset) = KERR_NOT_CONTROLLER;
    if (fm && fm->type == PROTOBUF_C_TYPE_STRING && fm->label == PROTOBUF_C_LABEL_NONE)
        *(char **)((char *)resp + fm->offset) = text;
    Weir__Coord__LeaderHint lh = WEIR__COORD__LEADER_HINT__INIT;
    if (hint) {
        lh.node_id = (int32_t)v->id;
        lh.host = (char *)v->addr.host;
        lh.port = v->addr.port;
        *(Weir__Coord__LeaderHint **)((char *)resp + fh->offset) = &lh;
    }
    rpc_call_reply(call, resp);
    free(resp); /* the fields it points to are borrowed */
}

/* ---- opening ---------------------------------------------------------------------- */

struct collect {
    struct craft_store *store;
    struct craft_entry *v;
    size_t n, cap;
};

static int collect_one(int64_t offset, const uint8_t *data, size_t len, void *ud)
{
    struct collect *c = ud;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        struct craft_entry *v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    struct craft_entry *e = &c->v[c->n];
    e->term = craft_store_term_of(c->store, offset);
    e->len = len;
    e->data = len ? malloc(len) : NULL;
    if (len && !e->data)
        return -ENOMEM;
    if (len)
        memcpy(e->data, data, len);
    c->n++;
    return 0;
}

/* The records after the log's snapshot. A log formatted in this run holds
 * only the Bootstrap record (and can no longer be replayed): it is a function
 * of the cluster id, the same bytes on every voter. */
static int collect_records(struct coord_service *svc, struct collect *c)
{
    int r = mlog_replay(svc->log, collect_one, c);
    if (r != -EINVAL)
        return r;
    if (mlog_next_offset(svc->log) != 1 || mlog_snapshot_offset(svc->log) > 0 ||
        !svc->committed->cluster_id)
        return -EINVAL;
    struct cstate *empty = NULL;
    struct cstate_records recs;
    cstate_records_init(&recs);
    struct cctl_error err = {0};
    r = cstate_new(&empty);
    if (r == 0)
        r = cctl_bootstrap(empty, &svc->ctx, svc->committed->cluster_id, &recs, &err);
    if (r == 0 && recs.n != 1)
        r = -EINVAL;
    if (r == 0)
        r = collect_one(0, recs.v[0].data, recs.v[0].len, c);
    cstate_records_deinit(&recs);
    cstate_free(empty);
    return r;
}

int coord_service_open_quorum(struct coord_service *svc, const char *dir)
{
    int64_t log_next = mlog_next_offset(svc->log);
    int64_t snap = mlog_snapshot_offset(svc->log);
    if (snap < 0)
        snap = 0;
    struct craft_store *store = NULL;
    struct craft_store_recovered rec;
    char err[512] = "";
    int r = craft_store_open(dir, log_next, &store, &rec, err, sizeof(err));
    if (r < 0) {
        log_error("coordinator", "cannot open the quorum state: %s", err[0] ? err : strerror(-r));
        return r;
    }
    if (rec.tail_dropped_bytes > 0)
        log_warn("coordinator", "quorum tail: cut %" PRId64 " bytes of an interrupted write",
                 rec.tail_dropped_bytes);
    struct collect c = {.store = store};
    r = collect_records(svc, &c);
    if (r < 0)
        log_error("coordinator", "cannot read the metadata log for the quorum: %s", strerror(-r));
    struct craft_node_options o = {
        .cfg = svc->cfg,
        .cluster_id = svc->committed->cluster_id,
        .log_dir = mlog_dir(svc->log),
        .cb = {.committed = on_committed,
               .role = on_role,
               .open_snapshot = on_open_snapshot,
               .install_snapshot = on_install_snapshot,
               .fatal = on_quorum_fatal,
               .ud = svc},
    };
    if (r == 0) {
        r = craft_node_new(svc->base, &o, store, &rec, snap, c.v, c.n, log_next, &svc->quorum);
        if (r < 0)
            log_error("coordinator", "cannot start the quorum voter: %s", strerror(-r));
    } else {
        craft_store_free(store);
    }
    for (size_t i = 0; i < c.n; i++)
        free(c.v[i].data);
    free(c.v);
    craft_store_recovered_free(&rec);
    return r;
}
