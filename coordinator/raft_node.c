/* raft_node: a quorum voter on the event loop (see raft_node.h). */
#include "coordinator/raft_node.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/wpool.h"
#include "coordinator.pb-c.h"
#include "coordinator/raft_store.h"
#include "metadata.pb-c.h"
#include "methods.h"
#include "quorum.pb-c.h"

#define TICK_MS          20
#define MAX_PEER_PENDING 512
#define LEASE_DRIFT_DIV  10 /* the lease gives up a tenth of the election timeout */

struct peer {
    struct craft_node *n;
    const struct coord_voter *v;
    struct rpc_client *client;
};

struct craft_node {
    struct event_base *base;
    struct craft_node_options opts;
    struct craft *r;
    struct craft_store *store;
    struct wpool *pool;
    struct event *tick;
    struct peer peers[COORD_CONFIG_MAX_VOTERS];
    size_t n_peers;
    /* the running store write and the messages that wait for it */
    struct craft_msg *held;
    size_t n_held;
    bool writing_entries;
    int64_t write_end, write_last_term;
    bool in_process, again;
    bool failed;
    bool was_leader;
    int32_t last_leader;
    int64_t log_durable;
    int64_t prev_snapshot; /* offset of the service's previous snapshot, 0: none */
};

static void process(struct craft_node *n);

static void node_fatal(struct craft_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void node_fatal(struct craft_node *n, const char *fmt, ...)
{
    if (n->failed)
        return;
    n->failed = true;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (n->tick)
        event_del(n->tick);
    if (n->opts.cb.fatal)
        n->opts.cb.fatal(n->opts.cb.ud, why);
}

/* ---- the no-op ---------------------------------------------------------------------- */

static int make_noop(void *ud, int64_t term, int32_t leader, uint8_t **ret_data, size_t *ret_len)
{
    (void)ud;
    Weir__Meta__LeaderChangeRecord lc;
    weir__meta__leader_change_record__init(&lc);
    lc.term = term;
    lc.leader_id = leader;
    Weir__Meta__MetadataRecord m;
    weir__meta__metadata_record__init(&m);
    m.record_case = WEIR__META__METADATA_RECORD__RECORD_LEADER_CHANGE;
    m.leader_change = &lc;
    size_t len = weir__meta__metadata_record__get_packed_size(&m);
    uint8_t *b = malloc(len);
    if (!b)
        return -ENOMEM;
    weir__meta__metadata_record__pack(&m, b);
    *ret_data = b;
    *ret_len = len;
    return 0;
}

/* ---- sending ------------------------------------------------------------------------ */

static void on_step_response(int status, const ProtobufCMessage *resp, const char *errmsg, void *ud)
{
    struct peer *p = ud;
    (void)errmsg;
    if (status != RPC_OK || !resp)
        return; /* lost: Raft sends again */
    const Weir__Quorum__QuorumStepResponse *r = (const Weir__Quorum__QuorumStepResponse *)resp;
    if (r->error && r->error[0])
        node_fatal(p->n, "coordinator %d at %s:%d refused this voter: %s", (int)p->v->id,
                   p->v->addr.host, p->v->addr.port, r->error);
}

static void send_one(struct craft_node *n, const struct craft_msg *m)
{
    struct peer *p = NULL;
    for (size_t i = 0; i < n->n_peers; i++)
        if (n->peers[i].v->id == m->to)
            p = &n->peers[i];
    if (!p || !p->client || rpc_client_pending(p->client) >= MAX_PEER_PENDING)
        return;
    Weir__Quorum__QuorumMessage q;
    weir__quorum__quorum_message__init(&q);
    q.cluster_id = (char *)n->opts.cluster_id;
    q.voters_digest = n->opts.cfg->voters_digest;
    q.type = (int32_t)m->type;
    q.from = m->from;
    q.to = m->to;
    q.term = m->term;
    q.ts = m->ts;
    q.last_offset = m->last_offset;
    q.last_term = m->last_term;
    q.granted = m->granted;
    q.prev_offset = m->prev_offset;
    q.prev_term = m->prev_term;
    q.commit = m->commit;
    q.match = m->match;
    q.reject_offset = m->reject_offset;
    q.hint = m->hint;
    q.snap_offset = m->snap_offset;
    q.snap_term = m->snap_term;
    q.snap_data.data = m->snap_data;
    q.snap_data.len = m->snap_len;
    Weir__Quorum__QuorumEntry *ents = NULL, **ptrs = NULL;
    if (m->n_entries) {
        ents = calloc(m->n_entries, sizeof(*ents));
        ptrs = calloc(m->n_entries, sizeof(*ptrs));
        if (!ents || !ptrs) {
            free(ents);
            free(ptrs);
            return;
        }
        for (size_t i = 0; i < m->n_entries; i++) {
            weir__quorum__quorum_entry__init(&ents[i]);
            ents[i].term = m->entries[i].term;
            ents[i].data.data = m->entries[i].data;
            ents[i].data.len = m->entries[i].len;
            ptrs[i] = &ents[i];
        }
        q.n_entries = m->n_entries;
        q.entries = ptrs;
    }
    int r = rpc_client_call(p->client, COORD_M_QUORUM_STEP, &q.base, (int)n->opts.election_ms,
                            on_step_response, p);
    if (r < 0)
        log_debug("quorum", "message to coordinator %d dropped: %s", (int)m->to, strerror(-r));
    free(ents);
    free(ptrs);
}

static void send_all(struct craft_node *n, struct craft_msg *msgs, size_t nm)
{
    for (size_t i = 0; i < nm; i++)
        send_one(n, &msgs[i]);
    craft_msgs_free(msgs, nm);
}

/* ---- the ready loop ----------------------------------------------------------------- */

static void on_written(struct craft_store *s, int status, void *ud)
{
    (void)s;
    struct craft_node *n = ud;
    struct craft_msg *held = n->held;
    size_t nh = n->n_held;
    n->held = NULL;
    n->n_held = 0;
    if (n->failed) {
        craft_msgs_free(held, nh);
        return;
    }
    if (status < 0) {
        craft_msgs_free(held, nh);
        node_fatal(n, "cannot write the quorum state: %s", strerror(-status));
        return;
    }
    /* The entries written are still the log's unless a newer leader replaced
     * them meanwhile; then they are written again by the next round. */
    if (n->writing_entries) {
        const struct craft_entry *e = craft_entry_at(n->r, n->write_end - 1);
        if (e && e->term == n->write_last_term)
            craft_stable_to(n->r, n->write_end);
    }
    n->writing_entries = false;
    send_all(n, held, nh);
    process(n);
}

static void report_role(struct craft_node *n)
{
    bool leader = craft_role_get(n->r) == CRAFT_LEADER;
    int32_t known = craft_leader(n->r);
    if (known != n->last_leader && known != 0 && known != craft_id(n->r))
        log_info("quorum", "following coordinator %d in term %" PRId64, (int)known,
                 craft_term(n->r));
    n->last_leader = known;
    if (leader == n->was_leader)
        return;
    n->was_leader = leader;
    if (leader)
        log_info("quorum", "became the coordinator leader in term %" PRId64, craft_term(n->r));
    else
        log_info("quorum", "no longer the coordinator leader (term %" PRId64 ")", craft_term(n->r));
    if (n->opts.cb.role)
        n->opts.cb.role(n->opts.cb.ud, leader, craft_term(n->r));
}

/* Committed entries are handed over only once they are durable here too: the
 * service puts them in the metadata log, and an entry there must never have a
 * term that the store does not know yet. */
static void apply_committed(struct craft_node *n)
{
    for (;;) {
        int64_t limit = craft_commit(n->r), unstable;
        if (craft_unstable(n->r, &unstable) && unstable < limit)
            limit = unstable;
        if (n->failed || craft_applied(n->r) >= limit)
            return;
        int64_t off = craft_applied(n->r);
        const struct craft_entry *e = craft_entry_at(n->r, off);
        if (!e) {
            node_fatal(n, "committed offset %" PRId64 " is not in the quorum log", off);
            return;
        }
        /* The callback may propose (which may grow the log): copy first. */
        uint8_t *data = NULL;
        size_t len = e->len;
        if (len) {
            data = malloc(len);
            if (!data) {
                node_fatal(n, "out of memory applying offset %" PRId64, off);
                return;
            }
            memcpy(data, e->data, len);
        }
        craft_applied_to(n->r, off + 1);
        if (n->opts.cb.committed)
            n->opts.cb.committed(n->opts.cb.ud, off, data, len);
        else
            free(data);
    }
}

static void process_once(struct craft_node *n)
{
    if (craft_broken(n->r)) {
        node_fatal(n, "Raft safety check failed: %s", craft_broken(n->r));
        return;
    }
    if (craft_snapshot_dirty(n->r)) {
        node_fatal(n,
                   "this voter is behind the leader's snapshot at offset %" PRId64
                   " and cannot install snapshots yet; rebuild its data directory",
                   craft_snap_offset(n->r));
        return;
    }
    report_role(n);
    if (!craft_store_busy(n->store)) {
        bool hard = craft_hard_dirty(n->r);
        int64_t from = 0;
        bool unstable = craft_unstable(n->r, &from);
        struct craft_msg *msgs;
        size_t nm = craft_take_msgs(n->r, &msgs);
        if (hard || unstable) {
            int64_t end = craft_next_offset(n->r);
            size_t ne = unstable ? (size_t)(end - from) : 0;
            struct craft_entry *ents = ne ? malloc(ne * sizeof(*ents)) : NULL;
            if (ne && !ents) {
                craft_msgs_free(msgs, nm);
                node_fatal(n, "out of memory writing the quorum state");
                return;
            }
            for (size_t i = 0; i < ne; i++)
                ents[i] = *craft_entry_at(n->r, from + (int64_t)i);
            n->held = msgs;
            n->n_held = nm;
            n->writing_entries = ne > 0;
            n->write_end = end;
            n->write_last_term = ne ? ents[ne - 1].term : 0;
            int r = craft_store_submit(n->store, n->pool, hard, craft_term(n->r), craft_vote(n->r),
                                       from, ents, ne, on_written, n);
            free(ents);
            if (r < 0) {
                craft_msgs_free(n->held, n->n_held);
                n->held = NULL;
                n->n_held = 0;
                node_fatal(n, "cannot write the quorum state: %s", strerror(-r));
                return;
            }
            craft_hard_saved(n->r);
        } else {
            send_all(n, msgs, nm);
        }
    }
    apply_committed(n);
}

static void process(struct craft_node *n)
{
    if (n->in_process) {
        n->again = true;
        return;
    }
    n->in_process = true;
    do {
        n->again = false;
        if (!n->failed)
            process_once(n);
    } while (n->again && !n->failed);
    n->in_process = false;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct craft_node *n = arg;
    craft_tick(n->r, clock_mono_ms());
    process(n);
}

/* ---- API ---------------------------------------------------------------------------- */

int craft_node_new(struct event_base *base, const struct craft_node_options *opts,
                   struct craft_store *store, const struct craft_store_recovered *rec,
                   int64_t snap_offset, const struct craft_entry *records, size_t n_records,
                   int64_t log_next, struct craft_node **ret)
{
    struct craft_node *n = calloc(1, sizeof(*n));
    if (!n) {
        craft_store_free(store);
        return -ENOMEM;
    }
    n->base = base;
    n->opts = *opts;
    n->store = store;
    if (n->opts.election_ms <= 0)
        n->opts.election_ms = 1000;
    n->log_durable = log_next;
    const struct coord_settings *cfg = opts->cfg;
    struct craft_options co = {
        .id = cfg->node_id,
        .election_ms = n->opts.election_ms,
        .heartbeat_ms = n->opts.election_ms / 5,
        .seed = (uint64_t)clock_mono_ns(),
        .make_noop = make_noop,
    };
    for (size_t i = 0; i < cfg->n_voters; i++)
        co.voters[i] = cfg->voters[i].id;
    co.n_voters = cfg->n_voters;
    size_t ne = n_records + rec->n_tail;
    struct craft_entry *ents = ne ? malloc(ne * sizeof(*ents)) : NULL;
    int r = ne && !ents ? -ENOMEM : 0;
    if (r == 0) {
        for (size_t i = 0; i < n_records; i++)
            ents[i] = records[i];
        for (size_t i = 0; i < rec->n_tail; i++)
            ents[n_records + i] = rec->tail[i];
        struct craft_disk d = {
            .term = rec->term,
            .vote = rec->vote,
            .snap_offset = snap_offset,
            .snap_term = craft_store_term_of(store, snap_offset - 1),
            .entries = ents,
            .n_entries = ne,
            .commit = log_next,
        };
        r = craft_new(&co, &d, clock_mono_ms(), &n->r);
    }
    free(ents);
    if (r == 0)
        r = wpool_new(base, 1, &n->pool);
    if (r == 0) {
        n->tick = event_new(base, -1, EV_PERSIST, on_tick, n);
        if (!n->tick)
            r = -ENOMEM;
    }
    if (r < 0) {
        craft_node_free(n);
        return r;
    }
    *ret = n;
    return 0;
}

int craft_node_start(struct craft_node *n)
{
    const struct coord_settings *cfg = n->opts.cfg;
    struct rpc_client_options ro = {
        .max_frame_bytes = cfg->max_frame_bytes,
        .connect_timeout_ms = (int)n->opts.election_ms,
        .backoff_max_ms = (int)n->opts.election_ms / 2,
        .max_pending_calls = MAX_PEER_PENDING + 16,
    };
    for (size_t i = 0; i < cfg->n_voters; i++) {
        if (cfg->voters[i].id == cfg->node_id)
            continue;
        struct peer *p = &n->peers[n->n_peers++];
        p->n = n;
        p->v = &cfg->voters[i];
        int r = rpc_client_new(n->base, p->v->addr.host, p->v->addr.port,
                               &weir__coord__coordinator__descriptor, &ro, &p->client);
        if (r < 0)
            return r;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = TICK_MS * 1000};
    if (event_add(n->tick, &tv) < 0)
        return -EIO;
    log_info("quorum", "voter %d of %zu (term %" PRId64 ", log end %" PRId64 ")", (int)cfg->node_id,
             cfg->n_voters, craft_term(n->r), craft_next_offset(n->r));
    process(n);
    return 0;
}

void craft_node_free(struct craft_node *n)
{
    if (!n)
        return;
    if (n->tick)
        event_free(n->tick);
    for (size_t i = 0; i < n->n_peers; i++) {
        rpc_client_free(n->peers[i].client);
        n->peers[i].client = NULL;
    }
    /* The pool runs the running write's callback before it stops: let it find
     * nothing to do. */
    n->failed = true;
    wpool_free(n->pool);
    craft_msgs_free(n->held, n->n_held);
    craft_store_free(n->store);
    craft_free(n->r);
    free(n);
}

int craft_node_propose(struct craft_node *n, const void *data, size_t len, int64_t *ret_offset)
{
    if (n->failed)
        return -EIO;
    int r = craft_propose(n->r, data, len, ret_offset);
    if (r == 0)
        process(n);
    return r;
}

int craft_node_receive(struct craft_node *n, const Weir__Quorum__QuorumMessage *q, char *err,
                       size_t errlen)
{
    const char *cid = q->cluster_id ? q->cluster_id : "";
    if (strcmp(cid, n->opts.cluster_id) != 0 || q->voters_digest != n->opts.cfg->voters_digest) {
        snprintf(err, errlen,
                 "coordinator %d belongs to cluster '%s' with voter list digest %08x, this one to "
                 "cluster '%s' with %08x: coordinator.quorum.voters and the cluster id must be "
                 "the same on every voter",
                 (int)q->from, cid, q->voters_digest, n->opts.cluster_id,
                 n->opts.cfg->voters_digest);
        node_fatal(n, "refusing coordinator %d: %s", (int)q->from, err);
        return -EPROTO;
    }
    if (n->failed)
        return 0;
    struct craft_msg m = {
        .type = (enum craft_msg_type)q->type,
        .from = q->from,
        .to = q->to,
        .term = q->term,
        .ts = q->ts,
        .last_offset = q->last_offset,
        .last_term = q->last_term,
        .granted = q->granted,
        .prev_offset = q->prev_offset,
        .prev_term = q->prev_term,
        .commit = q->commit,
        .match = q->match,
        .reject_offset = q->reject_offset,
        .hint = q->hint,
        .snap_offset = q->snap_offset,
        .snap_term = q->snap_term,
        .snap_data = q->snap_data.data,
        .snap_len = q->snap_data.len,
    };
    struct craft_entry *ents = NULL;
    if (q->n_entries) {
        ents = calloc(q->n_entries, sizeof(*ents));
        if (!ents)
            return -ENOMEM;
        for (size_t i = 0; i < q->n_entries; i++) {
            ents[i].term = q->entries[i]->term;
            ents[i].data = q->entries[i]->data.data;
            ents[i].len = q->entries[i]->data.len;
        }
        m.entries = ents;
        m.n_entries = q->n_entries;
    }
    craft_tick(n->r, clock_mono_ms());
    int r = craft_step(n->r, &m);
    free(ents);
    if (r < 0)
        log_debug("quorum", "message from coordinator %d ignored: %s", (int)q->from, strerror(-r));
    process(n);
    return 0;
}

void craft_node_log_durable(struct craft_node *n, int64_t offset)
{
    if (offset > n->log_durable)
        n->log_durable = offset;
    craft_store_log_durable(n->store, offset);
}

void craft_node_snapshot_taken(struct craft_node *n, int64_t offset, const void *img, size_t len)
{
    /* Entries stay in memory from the previous snapshot on (what the metadata
     * log keeps too), and on a leader also as long as a voter still needs
     * them: this version cannot send snapshots (docs/coordinator-quorum.md). */
    (void)img;
    (void)len;
    int64_t upto = n->prev_snapshot;
    n->prev_snapshot = offset;
    if (upto > craft_applied(n->r) || upto <= craft_snap_offset(n->r))
        return;
    for (size_t i = 0; craft_node_is_leader(n) && i < n->opts.cfg->n_voters; i++) {
        int64_t match, ack;
        int32_t id = n->opts.cfg->voters[i].id;
        if (id != n->opts.cfg->node_id &&
            (craft_progress(n->r, id, &match, &ack) < 0 || match < upto))
            return;
    }
    int r = craft_compact(n->r, upto, NULL, 0);
    if (r < 0)
        log_warn("quorum", "cannot compact the quorum log at %" PRId64 ": %s", upto, strerror(-r));
}

bool craft_node_is_leader(const struct craft_node *n)
{
    return !n->failed && craft_role_get(n->r) == CRAFT_LEADER;
}

bool craft_node_lease_valid(const struct craft_node *n)
{
    return !n->failed &&
           craft_lease_valid(n->r, clock_mono_ms(), n->opts.election_ms / LEASE_DRIFT_DIV);
}

int64_t craft_node_term(const struct craft_node *n)
{
    return craft_term(n->r);
}

int32_t craft_node_leader(const struct craft_node *n)
{
    return craft_leader(n->r);
}

const struct coord_voter *craft_node_leader_voter(const struct craft_node *n)
{
    int32_t id = craft_leader(n->r);
    for (size_t i = 0; i < n->opts.cfg->n_voters; i++)
        if (id && n->opts.cfg->voters[i].id == id)
            return &n->opts.cfg->voters[i];
    return NULL;
}

int64_t craft_node_term_of(const struct craft_node *n, int64_t offset)
{
    return craft_store_term_of(n->store, offset);
}

int64_t craft_node_next_offset(const struct craft_node *n)
{
    return craft_next_offset(n->r);
}

const struct craft_entry *craft_node_entry(const struct craft_node *n, int64_t offset)
{
    return craft_entry_at(n->r, offset);
}

int64_t craft_node_applied(const struct craft_node *n)
{
    return craft_applied(n->r);
}
