/* raft_node: a quorum voter on the event loop (see raft_node.h). */
#include "coordinator/raft_node.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
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
#define SNAP_CHUNK_MAX   (1u << 20)
#define SNAP_READ_BUF    (64u * 1024)
#define SNAP_MAX_BYTES   ((uint64_t)1 << 31) /* mlog's largest image, and its header */

/* Leader: the snapshot file being streamed to one voter, one chunk in flight. */
struct snap_out {
    bool active, in_flight;
    uint64_t gen; /* answers of an abandoned transfer are ignored */
    int fd;
    int64_t offset, term;
    uint64_t size, pos;
    uint32_t crc;
    int64_t quiet_until; /* after a transfer: wait for the voter's answer */
};

struct peer {
    struct craft_node *n;
    const struct coord_voter *v;
    struct rpc_client *client;
    struct snap_out snap;
};

/* Follower: the snapshot being received from the leader, in a temporary file
 * of the metadata log's directory. */
struct snap_in {
    bool active, ready; /* ready: whole and verified, waiting to be installed */
    int fd;
    char name[96];
    int32_t from;
    int64_t leader_term;
    int64_t offset, term;
    uint64_t size, pos;
    uint32_t crc;
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
    struct snap_in snap_in;
    char *cluster_id; /* opts.cluster_id: owned, it outlives an installed state */
    char *log_dir;    /* opts.log_dir: owned */
};

static void snap_send(struct craft_node *n, struct peer *p, const struct craft_msg *m);
static void snap_out_stop(struct peer *p);
static void snap_in_stop(struct craft_node *n);
static bool snap_install(struct craft_node *n);

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
    if (m->type == CRAFT_MSG_SNAPSHOT) {
        snap_send(n, p, m);
        return;
    }
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
    for (size_t i = 0; i < n->n_peers; i++)
        snap_out_stop(&n->peers[i]);
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
    /* Only snap_install() gives the core a snapshot, after making it durable. */
    if (craft_snapshot_dirty(n->r))
        craft_snapshot_saved(n->r);
    if (n->snap_in.ready && !craft_store_busy(n->store) && !snap_install(n))
        return;
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

/* ---- snapshot install ---------------------------------------------------------------- */

/* A voter whose next entry the leader compacted away gets the leader's newest
 * metadata snapshot file, streamed in chunks below rpc.max.frame.bytes with
 * one chunk in flight; each chunk names the whole (offset, term, size, CRC).
 * The voter writes them to a temporary file, verifies the whole, then installs
 * it (raft_store record, mlog_install_snapshot through the service, the core)
 * and acknowledges through the core: the leader continues with entries from
 * the snapshot on. Both ends hold one chunk in memory. While chunks arrive the
 * voter's core hears from its leader (a SNAPSHOT at offset 0: it installs
 * nothing and answers, which keeps the election timer and the leader's
 * check-quorum and lease going). */

static size_t snap_chunk_bytes(const struct craft_node *n)
{
    size_t c = n->opts.cfg->max_frame_bytes / 2;
    return c > SNAP_CHUNK_MAX ? SNAP_CHUNK_MAX : c;
}

static int file_crc(int fd, uint64_t size, uint32_t *ret)
{
    uint8_t *buf = malloc(SNAP_READ_BUF);
    if (!buf)
        return -ENOMEM;
    uint32_t crc = 0;
    int r = 0;
    for (uint64_t at = 0; r == 0 && at < size;) {
        size_t len = size - at < SNAP_READ_BUF ? (size_t)(size - at) : SNAP_READ_BUF;
        r = fsutil_pread_all(fd, buf, len, (int64_t)at);
        crc = crc32c_update(crc, buf, len);
        at += len;
    }
    free(buf);
    *ret = crc;
    return r;
}

static void snap_out_stop(struct peer *p)
{
    if (p->snap.fd >= 0)
        close(p->snap.fd);
    uint64_t gen = p->snap.gen;
    memset(&p->snap, 0, sizeof(p->snap));
    p->snap.fd = -1;
    p->snap.gen = gen + 1;
}

struct chunk_call {
    struct peer *p;
    uint64_t gen;
};

static void snap_send_chunk(struct craft_node *n, struct peer *p);

static void on_chunk_response(int status, const ProtobufCMessage *resp, const char *errmsg,
                              void *ud)
{
    struct chunk_call *cc = ud;
    struct peer *p = cc->p;
    bool current = cc->gen == p->snap.gen && p->snap.active;
    free(cc);
    (void)errmsg;
    if (!current)
        return;
    p->snap.in_flight = false;
    if (status != RPC_OK || !resp)
        return; /* lost: the next SNAPSHOT from the core sends it again */
    const Weir__Quorum__QuorumStepResponse *r = (const Weir__Quorum__QuorumStepResponse *)resp;
    struct craft_node *n = p->n;
    if (r->error && r->error[0]) {
        node_fatal(n, "coordinator %d at %s:%d refused this voter: %s", (int)p->v->id,
                   p->v->addr.host, p->v->addr.port, r->error);
        return;
    }
    if (r->snap_corrupt) {
        log_warn("quorum",
                 "coordinator %d received the snapshot at offset %" PRId64
                 " with a bad CRC; sending it again",
                 (int)p->v->id, p->snap.offset);
        p->snap.pos = 0;
    } else if (r->snap_next < 0 || (uint64_t)r->snap_next > p->snap.size) {
        return; /* not taken now; the core asks again */
    } else {
        p->snap.pos = (uint64_t)r->snap_next;
    }
    if (p->snap.pos == p->snap.size) {
        log_info("quorum", "coordinator %d has the snapshot at offset %" PRId64 " (%" PRIu64
                 " bytes)", (int)p->v->id, p->snap.offset, p->snap.size);
        snap_out_stop(p);
        /* Its core answers once installed; until then the core's SNAPSHOT
         * messages must not start the transfer again. */
        p->snap.quiet_until = clock_mono_ms() + n->opts.election_ms;
        return;
    }
    if (!n->failed && craft_role_get(n->r) == CRAFT_LEADER)
        snap_send_chunk(n, p);
}

static void snap_send_chunk(struct craft_node *n, struct peer *p)
{
    struct snap_out *o = &p->snap;
    uint64_t left = o->size - o->pos;
    size_t len = left < snap_chunk_bytes(n) ? (size_t)left : snap_chunk_bytes(n);
    uint8_t *buf = malloc(len ? len : 1);
    struct chunk_call *cc = malloc(sizeof(*cc));
    int r = buf && cc ? fsutil_pread_all(o->fd, buf, len, (int64_t)o->pos) : -ENOMEM;
    if (r == 0) {
        Weir__Quorum__QuorumMessage q;
        weir__quorum__quorum_message__init(&q);
        q.cluster_id = (char *)n->opts.cluster_id;
        q.voters_digest = n->opts.cfg->voters_digest;
        q.type = CRAFT_MSG_SNAPSHOT;
        q.from = craft_id(n->r);
        q.to = p->v->id;
        q.term = craft_term(n->r);
        q.ts = clock_mono_ms();
        q.snap_offset = o->offset;
        q.snap_term = o->term;
        q.snap_total = o->size;
        q.snap_crc = o->crc;
        q.chunk_pos = o->pos;
        q.snap_data.data = buf;
        q.snap_data.len = len;
        cc->p = p;
        cc->gen = o->gen;
        r = rpc_client_call(p->client, COORD_M_QUORUM_STEP, &q.base, (int)n->opts.election_ms * 5,
                            on_chunk_response, cc);
        if (r == 0) {
            cc = NULL; /* the callback owns it */
            o->in_flight = true;
        }
    }
    if (r < 0)
        log_debug("quorum", "snapshot chunk to coordinator %d not sent: %s", (int)p->v->id,
                  strerror(-r));
    free(buf);
    free(cc);
}

static void snap_send(struct craft_node *n, struct peer *p, const struct craft_msg *m)
{
    struct snap_out *o = &p->snap;
    if (!o->active) {
        if (clock_mono_ms() < o->quiet_until || !n->opts.cb.open_snapshot)
            return;
        int fd = -1;
        int64_t off = 0;
        uint64_t size = 0;
        int r = n->opts.cb.open_snapshot(n->opts.cb.ud, &fd, &off, &size);
        if (r == 0 && off < m->snap_offset)
            r = -ESTALE; /* cannot happen: the core compacts only to a written snapshot */
        uint32_t crc = 0;
        if (r == 0)
            r = file_crc(fd, size, &crc);
        if (r < 0) {
            if (fd >= 0)
                close(fd);
            log_warn("quorum", "cannot send a snapshot to coordinator %d: %s", (int)p->v->id,
                     strerror(-r));
            return;
        }
        o->active = true;
        o->fd = fd;
        o->offset = off;
        o->term = craft_store_term_of(n->store, off - 1);
        o->size = size;
        o->crc = crc;
        o->pos = 0;
        log_info("quorum",
                 "coordinator %d is behind this leader's log: sending the snapshot at offset "
                 "%" PRId64 " (%" PRIu64 " bytes, chunks of %zu)",
                 (int)p->v->id, off, size, snap_chunk_bytes(n));
    }
    if (!o->in_flight)
        snap_send_chunk(n, p);
}

/* ---- receiving ---- */

static void snap_in_stop(struct craft_node *n)
{
    struct snap_in *in = &n->snap_in;
    if (in->fd >= 0) {
        close(in->fd);
        if (n->opts.log_dir) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", n->opts.log_dir, in->name);
            unlink(path);
        }
    }
    memset(in, 0, sizeof(*in));
    in->fd = -1;
}

static int snap_in_start(struct craft_node *n, const Weir__Quorum__QuorumMessage *q)
{
    snap_in_stop(n);
    struct snap_in *in = &n->snap_in;
    if (!n->opts.log_dir)
        return -EINVAL;
    snprintf(in->name, sizeof(in->name), "snapshot-%020" PRId64 ".snap.tmp.install",
             q->snap_offset);
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", n->opts.log_dir, in->name);
    in->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in->fd < 0)
        return -errno;
    in->active = true;
    in->from = q->from;
    in->leader_term = q->term;
    in->offset = q->snap_offset;
    in->term = q->snap_term;
    in->size = q->snap_total;
    in->crc = q->snap_crc;
    in->pos = 0;
    log_info("quorum",
             "receiving the snapshot at offset %" PRId64 " (%" PRIu64
             " bytes) from coordinator %d",
             in->offset, in->size, (int)in->from);
    return 0;
}

static bool snap_in_same(const struct snap_in *in, const Weir__Quorum__QuorumMessage *q)
{
    return in->active && in->from == q->from && in->leader_term == q->term &&
           in->offset == q->snap_offset && in->term == q->snap_term && in->size == q->snap_total &&
           in->crc == q->snap_crc;
}

/* One chunk: the answer goes into @resp (snap_next, snap_corrupt). */
static void snap_chunk(struct craft_node *n, const Weir__Quorum__QuorumMessage *q,
                       Weir__Quorum__QuorumStepResponse *resp)
{
    struct snap_in *in = &n->snap_in;
    resp->snap_next = -1;
    if (craft_term(n->r) != q->term || craft_leader(n->r) != q->from ||
        craft_role_get(n->r) != CRAFT_FOLLOWER || q->snap_offset <= 0 || q->snap_term < 0 ||
        q->snap_total > SNAP_MAX_BYTES)
        return; /* a stale leader, or nonsense */
    if (q->snap_offset <= craft_commit(n->r)) {
        resp->snap_next = (int64_t)q->snap_total; /* we have all it covers */
        return;
    }
    if (in->ready) {
        if (snap_in_same(in, q))
            resp->snap_next = (int64_t)in->size;
        return;
    }
    if (!snap_in_same(in, q)) {
        if (q->chunk_pos != 0) {
            resp->snap_next = 0;
            return;
        }
        int r = snap_in_start(n, q);
        if (r < 0) {
            log_warn("quorum", "cannot receive a snapshot: %s", strerror(-r));
            snap_in_stop(n);
            return;
        }
    }
    if (q->chunk_pos != in->pos || q->snap_data.len > in->size - in->pos) {
        resp->snap_next = (int64_t)in->pos;
        return;
    }
    int r = fsutil_pwrite_all(in->fd, q->snap_data.data, q->snap_data.len, (int64_t)in->pos);
    if (r < 0) {
        log_warn("quorum", "cannot write the received snapshot: %s", strerror(-r));
        snap_in_stop(n);
        return;
    }
    in->pos += q->snap_data.len;
    resp->snap_next = (int64_t)in->pos;
    if (in->pos < in->size)
        return;
    uint32_t crc = 0;
    r = fdatasync(in->fd) < 0 ? -errno : file_crc(in->fd, in->size, &crc);
    if (r == 0 && crc != in->crc) {
        log_warn("quorum",
                 "the snapshot at offset %" PRId64 " from coordinator %d has CRC %08x, not "
                 "%08x: discarded, asking for it again",
                 in->offset, (int)in->from, crc, in->crc);
        snap_in_stop(n);
        resp->snap_next = 0;
        resp->snap_corrupt = true;
        return;
    }
    if (r < 0) {
        log_warn("quorum", "cannot verify the received snapshot: %s", strerror(-r));
        snap_in_stop(n);
        resp->snap_next = -1;
        return;
    }
    in->ready = true;
}

static void snap_receive(struct craft_node *n, const Weir__Quorum__QuorumMessage *q,
                         Weir__Quorum__QuorumStepResponse *resp)
{
    /* The core hears from its leader (terms, election timer, an answer that
     * counts for the leader's lease); offset 0 installs nothing. Only a
     * snapshot that covers nothing new is given to the core as it is. */
    struct craft_msg m = {
        .type = CRAFT_MSG_SNAPSHOT,
        .from = q->from,
        .to = q->to,
        .term = q->term,
        .ts = q->ts,
        .snap_offset = q->snap_offset <= craft_commit(n->r) ? q->snap_offset : 0,
        .snap_term = q->snap_term,
    };
    craft_tick(n->r, clock_mono_ms());
    int r = craft_step(n->r, &m);
    if (r < 0)
        log_debug("quorum", "snapshot chunk from coordinator %d ignored: %s", (int)q->from,
                  strerror(-r));
    Weir__Quorum__QuorumStepResponse scratch = WEIR__QUORUM__QUORUM_STEP_RESPONSE__INIT;
    snap_chunk(n, q, resp ? resp : &scratch);
    process(n);
}

/* Install the received snapshot: false when the node failed. */
static bool snap_install(struct craft_node *n)
{
    struct snap_in *in = &n->snap_in;
    int64_t s = in->offset, t = in->term;
    /* Everything below is synchronous: the core must still take exactly this
     * snapshot from this leader when it is stepped at the end. */
    if (craft_term(n->r) != in->leader_term || craft_leader(n->r) != in->from ||
        craft_role_get(n->r) != CRAFT_FOLLOWER || s <= craft_commit(n->r) ||
        !n->opts.cb.install_snapshot) {
        snap_in_stop(n);
        return true;
    }
    int r = craft_store_install_begin(n->store, s, t);
    if (r < 0) {
        node_fatal(n, "cannot record the snapshot install at offset %" PRId64 ": %s", s,
                   strerror(-r));
        return false;
    }
    char why[256] = "";
    r = n->opts.cb.install_snapshot(n->opts.cb.ud, in->name, s, why, sizeof(why));
    if (r == -EBADMSG) {
        /* A file that verified its CRC but is no snapshot for offset s: nothing
         * changed here; the leader sends it again. */
        log_error("quorum", "the snapshot at offset %" PRId64 " from coordinator %d is invalid: %s",
                  s, (int)in->from, why[0] ? why : strerror(-r));
        snap_in_stop(n);
        r = craft_store_install_end(n->store, s, t, false);
        if (r < 0)
            node_fatal(n, "cannot write the quorum state: %s", strerror(-r));
        return r == 0;
    }
    /* Other failures may come after the switch: the record stays for the next
     * start, which finishes or forgets the install by the log's start. */
    if (r == 0)
        r = craft_store_install_end(n->store, s, t, true);
    if (r < 0) {
        node_fatal(n, "cannot install the snapshot at offset %" PRId64 ": %s", s,
                   why[0] ? why : strerror(-r));
        return false;
    }
    close(in->fd); /* renamed into place by the metadata log */
    in->fd = -1;
    struct craft_msg m = {
        .type = CRAFT_MSG_SNAPSHOT,
        .from = in->from,
        .to = craft_id(n->r),
        .term = in->leader_term,
        .ts = clock_mono_ms(),
        .snap_offset = s,
        .snap_term = t,
    };
    snap_in_stop(n);
    r = craft_step(n->r, &m);
    if (r < 0 || craft_commit(n->r) != s) {
        node_fatal(n, "the Raft core did not take the installed snapshot at offset %" PRId64, s);
        return false;
    }
    craft_snapshot_saved(n->r);
    n->prev_snapshot = s;
    n->log_durable = s;
    log_info("quorum", "installed the snapshot at offset %" PRId64 " (term %" PRId64 ")", s, t);
    return true;
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
    n->snap_in.fd = -1;
    n->prev_snapshot = snap_offset;
    n->cluster_id = strdup(opts->cluster_id ? opts->cluster_id : "");
    n->opts.cluster_id = n->cluster_id;
    n->log_dir = opts->log_dir ? strdup(opts->log_dir) : NULL;
    n->opts.log_dir = n->log_dir;
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
    int r = (ne && !ents) || !n->cluster_id || (opts->log_dir && !n->log_dir) ? -ENOMEM : 0;
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
        p->snap.fd = -1;
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
        snap_out_stop(&n->peers[i]);
    }
    snap_in_stop(n);
    /* The pool runs the running write's callback before it stops: let it find
     * nothing to do. */
    n->failed = true;
    wpool_free(n->pool);
    craft_msgs_free(n->held, n->n_held);
    craft_store_free(n->store);
    craft_free(n->r);
    free(n->cluster_id);
    free(n->log_dir);
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

static void snap_receive(struct craft_node *n, const Weir__Quorum__QuorumMessage *q,
                         Weir__Quorum__QuorumStepResponse *resp);

int craft_node_receive(struct craft_node *n, const Weir__Quorum__QuorumMessage *q, char *err,
                       size_t errlen)
{
    return craft_node_receive_reply(n, q, err, errlen, NULL);
}

int craft_node_receive_reply(struct craft_node *n, const Weir__Quorum__QuorumMessage *q, char *err,
                             size_t errlen, Weir__Quorum__QuorumStepResponse *resp)
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
    if (q->type == CRAFT_MSG_SNAPSHOT && q->snap_total > 0) {
        snap_receive(n, q, resp);
        return 0;
    }
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
    /* Entries stay in memory from the previous snapshot on, what the metadata
     * log keeps too; a voter further behind gets the newest snapshot file from
     * the metadata log (snap_send), so the core keeps no image. */
    (void)img;
    (void)len;
    int64_t upto = n->prev_snapshot;
    n->prev_snapshot = offset;
    if (upto > craft_applied(n->r) || upto <= craft_snap_offset(n->r))
        return;
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
