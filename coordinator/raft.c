/* raft: Raft with pre-vote, check-quorum and a leader lease, as a pure state
 * machine (see raft.h for the contract and docs/coordinator-quorum.md for why
 * Weir has its own). */
#include "coordinator/raft.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct progress {
    int32_t id;
    int64_t next;  /* next entry to send */
    int64_t match; /* entries known replicated */
    int64_t last_ack_ms;
};

struct craft {
    struct craft_options opts;
    /* hard state */
    int64_t term;
    int32_t vote;
    bool hard_dirty;
    /* log: entries [snap_offset, snap_offset + n) */
    int64_t snap_offset, snap_term;
    uint8_t *snap_data;
    size_t snap_len;
    bool snap_dirty;
    struct craft_entry *log;
    size_t n, cap;
    int64_t stable; /* entries below are durable */
    int64_t commit, applied;
    /* volatile */
    enum craft_role role;
    int32_t leader;
    int64_t now;
    int64_t election_deadline;
    int64_t heartbeat_due;
    int64_t quorum_check_due;
    int64_t last_leader_contact; /* -1: never */
    uint32_t granted;            /* bit per voter index */
    struct progress prog[CRAFT_MAX_VOTERS];
    uint64_t rng;
    struct craft_msg *out;
    size_t n_out, cap_out;
    const char *broken;
};

const char *craft_role_name(enum craft_role role)
{
    switch (role) {
    case CRAFT_FOLLOWER:
        return "follower";
    case CRAFT_PRE_CANDIDATE:
        return "pre-candidate";
    case CRAFT_CANDIDATE:
        return "candidate";
    case CRAFT_LEADER:
        return "leader";
    }
    return "?";
}

/* ---- helpers ---------------------------------------------------------------------- */

static uint64_t rng_next(struct craft *r)
{
    /* xorshift64*: deterministic per seed, good enough for jitter */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ULL;
}

static int64_t last_offset(const struct craft *r)
{
    return r->snap_offset + (int64_t)r->n - 1;
}

/* Term of the entry at @off: 0 for -1 (before the log), -1 when unknown. */
static int64_t term_at(const struct craft *r, int64_t off)
{
    if (off == -1)
        return 0;
    if (off == r->snap_offset - 1)
        return r->snap_term;
    if (off < r->snap_offset || off > last_offset(r))
        return -1;
    return r->log[off - r->snap_offset].term;
}

static int64_t last_term(const struct craft *r)
{
    return term_at(r, last_offset(r));
}

static int voter_index(const struct craft *r, int32_t id)
{
    for (size_t i = 0; i < r->opts.n_voters; i++)
        if (r->opts.voters[i] == id)
            return (int)i;
    return -1;
}

static size_t majority(const struct craft *r)
{
    return r->opts.n_voters / 2 + 1;
}

static size_t popcount(uint32_t v)
{
    size_t n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

static void reset_election_deadline(struct craft *r)
{
    int64_t et = r->opts.election_ms;
    r->election_deadline = r->now + et + (int64_t)(rng_next(r) % (uint64_t)et);
}

static int entry_copy(struct craft_entry *dst, const struct craft_entry *src)
{
    dst->term = src->term;
    dst->len = src->len;
    dst->data = NULL;
    if (src->len) {
        dst->data = malloc(src->len);
        if (!dst->data)
            return -ENOMEM;
        memcpy(dst->data, src->data, src->len);
    }
    return 0;
}

static int log_reserve(struct craft *r, size_t extra)
{
    if (r->n + extra <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap * 2 : 64;
    while (cap < r->n + extra)
        cap *= 2;
    struct craft_entry *log = realloc(r->log, cap * sizeof(*log));
    if (!log)
        return -ENOMEM;
    r->log = log;
    r->cap = cap;
    return 0;
}

/* Drop the entries from @off on. */
static void log_truncate(struct craft *r, int64_t off)
{
    while (r->n > 0 && last_offset(r) >= off) {
        free(r->log[r->n - 1].data);
        r->n--;
    }
    if (r->stable > off)
        r->stable = off;
}

static int log_append(struct craft *r, const struct craft_entry *e)
{
    int rc = log_reserve(r, 1);
    if (rc == 0)
        rc = entry_copy(&r->log[r->n], e);
    if (rc == 0)
        r->n++;
    return rc;
}

static struct craft_msg *msg_new(struct craft *r, enum craft_msg_type type, int32_t to)
{
    if (r->n_out == r->cap_out) {
        size_t cap = r->cap_out ? r->cap_out * 2 : 16;
        struct craft_msg *out = realloc(r->out, cap * sizeof(*out));
        if (!out)
            return NULL;
        r->out = out;
        r->cap_out = cap;
    }
    struct craft_msg *m = &r->out[r->n_out++];
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->from = r->opts.id;
    m->to = to;
    m->term = r->term;
    return m;
}

static void set_hard(struct craft *r, int64_t term, int32_t vote)
{
    if (r->term != term || r->vote != vote)
        r->hard_dirty = true;
    r->term = term;
    r->vote = vote;
}

static void become_follower(struct craft *r, int64_t term, int32_t leader)
{
    if (term != r->term)
        set_hard(r, term, 0);
    r->role = CRAFT_FOLLOWER;
    r->leader = leader;
    reset_election_deadline(r);
}

/* ---- replication ------------------------------------------------------------------ */

static void send_append(struct craft *r, struct progress *p)
{
    if (p->next < r->snap_offset) {
        struct craft_msg *m = msg_new(r, CRAFT_MSG_SNAPSHOT, p->id);
        if (!m)
            return;
        m->ts = r->now;
        m->snap_offset = r->snap_offset;
        m->snap_term = r->snap_term;
        if (r->snap_len) {
            m->snap_data = malloc(r->snap_len);
            if (!m->snap_data) {
                r->n_out--;
                return;
            }
            memcpy(m->snap_data, r->snap_data, r->snap_len);
        }
        m->snap_len = r->snap_len;
        return;
    }
    struct craft_msg *m = msg_new(r, CRAFT_MSG_APPEND, p->id);
    if (!m)
        return;
    m->ts = r->now;
    m->prev_offset = p->next - 1;
    m->prev_term = term_at(r, p->next - 1);
    m->commit = r->commit;
    int64_t n = last_offset(r) + 1 - p->next;
    if (n > (int64_t)r->opts.max_append_entries)
        n = (int64_t)r->opts.max_append_entries;
    if (n <= 0)
        return;
    m->entries = calloc((size_t)n, sizeof(*m->entries));
    if (!m->entries) {
        r->n_out--;
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        if (entry_copy(&m->entries[i], &r->log[p->next + i - r->snap_offset]) < 0) {
            craft_msgs_free(m, 1);
            r->n_out--;
            return;
        }
        m->n_entries++;
    }
}

static void broadcast_append(struct craft *r)
{
    for (size_t i = 0; i < r->opts.n_voters; i++)
        if (r->prog[i].id != r->opts.id)
            send_append(r, &r->prog[i]);
}

static int cmp_i64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

static void maybe_commit(struct craft *r)
{
    if (r->role != CRAFT_LEADER)
        return;
    int64_t m[CRAFT_MAX_VOTERS];
    for (size_t i = 0; i < r->opts.n_voters; i++)
        m[i] = r->prog[i].id == r->opts.id ? r->stable : r->prog[i].match;
    qsort(m, r->opts.n_voters, sizeof(m[0]), cmp_i64_desc);
    int64_t end = m[majority(r) - 1];
    /* Raft 5.4.2: only an entry of the leader's own term commits by counting. */
    if (end > r->commit && term_at(r, end - 1) == r->term)
        r->commit = end;
}

static void become_leader(struct craft *r)
{
    r->role = CRAFT_LEADER;
    r->leader = r->opts.id;
    for (size_t i = 0; i < r->opts.n_voters; i++) {
        r->prog[i].next = last_offset(r) + 1;
        r->prog[i].match = 0;
        r->prog[i].last_ack_ms = INT64_MIN / 4; /* no lease before an answer */
    }
    r->heartbeat_due = r->now;
    r->quorum_check_due = r->now + r->opts.election_ms;
    struct craft_entry noop = {.term = r->term};
    if (r->opts.make_noop &&
        r->opts.make_noop(r->opts.noop_ud, r->term, r->opts.id, &noop.data, &noop.len) < 0) {
        noop.data = NULL;
        noop.len = 0;
    }
    (void)log_append(r, &noop);
    free(noop.data);
    broadcast_append(r);
    r->heartbeat_due = r->now + r->opts.heartbeat_ms;
    maybe_commit(r);
}

/* ---- elections -------------------------------------------------------------------- */

static void campaign(struct craft *r, bool pre)
{
    r->granted = 1u << voter_index(r, r->opts.id);
    r->leader = 0;
    reset_election_deadline(r);
    int64_t term = r->term + 1;
    if (pre) {
        r->role = CRAFT_PRE_CANDIDATE;
    } else {
        r->role = CRAFT_CANDIDATE;
        set_hard(r, term, r->opts.id);
    }
    if (popcount(r->granted) >= majority(r)) {
        if (pre)
            campaign(r, false);
        else
            become_leader(r);
        return;
    }
    for (size_t i = 0; i < r->opts.n_voters; i++) {
        if (r->opts.voters[i] == r->opts.id)
            continue;
        struct craft_msg *m =
            msg_new(r, pre ? CRAFT_MSG_PREVOTE : CRAFT_MSG_VOTE, r->opts.voters[i]);
        if (!m)
            continue;
        m->term = term;
        m->last_offset = last_offset(r);
        m->last_term = last_term(r);
    }
}

static bool in_lease(const struct craft *r)
{
    return r->last_leader_contact >= 0 && r->now - r->last_leader_contact < r->opts.election_ms;
}

static void handle_vote(struct craft *r, const struct craft_msg *m, bool pre)
{
    bool up_to_date = m->last_term > last_term(r) ||
                      (m->last_term == last_term(r) && m->last_offset >= last_offset(r));
    bool grant;
    if (pre)
        grant = m->term > r->term && up_to_date && !in_lease(r) && r->role != CRAFT_LEADER;
    else
        grant = m->term == r->term && (r->vote == 0 || r->vote == m->from) && up_to_date;
    if (grant && !pre) {
        set_hard(r, r->term, m->from);
        reset_election_deadline(r);
    }
    struct craft_msg *resp =
        msg_new(r, pre ? CRAFT_MSG_PREVOTE_RESP : CRAFT_MSG_VOTE_RESP, m->from);
    if (!resp)
        return;
    resp->term = pre ? m->term : r->term;
    resp->granted = grant;
}

static void handle_vote_resp(struct craft *r, const struct craft_msg *m, bool pre)
{
    if (r->role != (pre ? CRAFT_PRE_CANDIDATE : CRAFT_CANDIDATE))
        return;
    if (m->term != (pre ? r->term + 1 : r->term) || !m->granted)
        return;
    r->granted |= 1u << voter_index(r, m->from);
    if (popcount(r->granted) < majority(r))
        return;
    if (pre)
        campaign(r, false);
    else
        become_leader(r);
}

/* ---- follower side ---------------------------------------------------------------- */

static void handle_append(struct craft *r, const struct craft_msg *m)
{
    struct craft_msg *resp = msg_new(r, CRAFT_MSG_APPEND_RESP, m->from);
    if (!resp)
        return;
    resp->ts = m->ts;
    resp->reject_offset = m->prev_offset;
    /* A prev before our snapshot is committed here, hence matches the leader. */
    int64_t have = term_at(r, m->prev_offset);
    if (m->prev_offset >= r->snap_offset - 1 && have != m->prev_term) {
        resp->granted = false;
        resp->hint = last_offset(r) + 1;
        return;
    }
    for (size_t i = 0; i < m->n_entries; i++) {
        int64_t off = m->prev_offset + 1 + (int64_t)i;
        if (off < r->snap_offset)
            continue;
        if (off <= last_offset(r)) {
            if (term_at(r, off) == m->entries[i].term)
                continue;
            /* A conflict can only be in the uncommitted tail: one below the
             * commit means a committed entry was lost somewhere. */
            if (off < r->commit) {
                r->broken = "a leader sent an entry that conflicts with a committed one";
                resp->granted = false;
                resp->hint = last_offset(r) + 1;
                return;
            }
            log_truncate(r, off);
        }
        if (log_append(r, &m->entries[i]) < 0) {
            resp->granted = false;
            resp->hint = last_offset(r) + 1;
            return;
        }
    }
    int64_t match = m->prev_offset + 1 + (int64_t)m->n_entries;
    if (match < r->snap_offset)
        match = r->snap_offset;
    int64_t commit = m->commit < match ? m->commit : match;
    if (commit > r->commit)
        r->commit = commit;
    resp->granted = true;
    resp->match = match;
}

static void handle_snapshot(struct craft *r, const struct craft_msg *m)
{
    struct craft_msg *resp = msg_new(r, CRAFT_MSG_APPEND_RESP, m->from);
    if (!resp)
        return;
    resp->ts = m->ts;
    resp->granted = true;
    resp->match = m->snap_offset;
    if (m->snap_offset <= r->commit)
        return; /* we already have it all */
    uint8_t *data = NULL;
    if (m->snap_len) {
        data = malloc(m->snap_len);
        if (!data) {
            r->n_out--;
            return;
        }
        memcpy(data, m->snap_data, m->snap_len);
    }
    if (term_at(r, m->snap_offset - 1) == m->snap_term) {
        /* keep the suffix after the snapshot */
        size_t drop = (size_t)(m->snap_offset - r->snap_offset);
        for (size_t i = 0; i < drop; i++)
            free(r->log[i].data);
        memmove(r->log, r->log + drop, (r->n - drop) * sizeof(*r->log));
        r->n -= drop;
    } else {
        log_truncate(r, r->snap_offset);
        r->stable = m->snap_offset;
    }
    if (r->stable < m->snap_offset)
        r->stable = m->snap_offset;
    free(r->snap_data);
    r->snap_data = data;
    r->snap_len = m->snap_len;
    r->snap_offset = m->snap_offset;
    r->snap_term = m->snap_term;
    r->snap_dirty = true;
    r->commit = m->snap_offset;
    r->applied = m->snap_offset;
}

/* ---- leader side ------------------------------------------------------------------ */

/* A refusal of a message sent after the voter's last answer, with a log end
 * below what it acknowledged: its disk was replaced by an empty one (formatted
 * with the same cluster id). It starts over from its log end, by entries or by
 * a snapshot. A refusal reordered behind a later acceptance answers an older
 * message and does not qualify. */
static bool lost_acknowledged(const struct progress *p, const struct craft_msg *m)
{
    return m->ts > p->last_ack_ms && m->hint >= 0 && m->hint < p->match &&
           m->reject_offset >= p->match - 1;
}

static void handle_append_resp(struct craft *r, const struct craft_msg *m)
{
    if (r->role != CRAFT_LEADER)
        return;
    struct progress *p = &r->prog[voter_index(r, m->from)];
    if (!m->granted && lost_acknowledged(p, m))
        p->match = m->hint;
    /* The lease counts from when we sent what is answered, not from the
     * answer: the voter's refusal window opened no earlier than that. */
    if (m->ts > p->last_ack_ms)
        p->last_ack_ms = m->ts;
    if (m->granted) {
        if (m->match > p->match)
            p->match = m->match;
        if (p->next < p->match)
            p->next = p->match;
        maybe_commit(r);
        if (p->next <= last_offset(r))
            send_append(r, p);
        return;
    }
    if (m->reject_offset < p->match)
        return; /* stale */
    int64_t next = m->hint < m->reject_offset ? m->hint : m->reject_offset;
    p->next = next > p->match ? next : p->match;
    send_append(r, p);
}

/* ---- API -------------------------------------------------------------------------- */

int craft_new(const struct craft_options *opts, const struct craft_disk *disk, int64_t now_ms,
              struct craft **ret)
{
    if (opts->n_voters == 0 || opts->n_voters > CRAFT_MAX_VOTERS)
        return -EINVAL;
    bool self = false;
    for (size_t i = 0; i < opts->n_voters; i++) {
        if (opts->voters[i] <= 0)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (opts->voters[j] == opts->voters[i])
                return -EINVAL;
        self |= opts->voters[i] == opts->id;
    }
    if (!self)
        return -EINVAL;
    struct craft *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->opts = *opts;
    if (r->opts.election_ms <= 0)
        r->opts.election_ms = 1000;
    if (r->opts.heartbeat_ms <= 0)
        r->opts.heartbeat_ms = r->opts.election_ms / 5 > 0 ? r->opts.election_ms / 5 : 1;
    if (r->opts.max_append_entries == 0)
        r->opts.max_append_entries = 256;
    if (r->opts.heartbeat_ms >= r->opts.election_ms) {
        free(r);
        return -EINVAL;
    }
    r->rng = opts->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)opts->id + 1;
    for (size_t i = 0; i < opts->n_voters; i++)
        r->prog[i].id = opts->voters[i];
    r->now = now_ms;
    /* We may have acknowledged a leader just before a restart: keep refusing
     * votes for one election timeout as if we had heard from it now. */
    r->last_leader_contact = now_ms;
    if (disk) {
        r->term = disk->term;
        r->vote = disk->vote;
        r->snap_offset = disk->snap_offset;
        r->snap_term = disk->snap_term;
        if (disk->snap_len) {
            r->snap_data = malloc(disk->snap_len);
            if (!r->snap_data) {
                craft_free(r);
                return -ENOMEM;
            }
            memcpy(r->snap_data, disk->snap_data, disk->snap_len);
            r->snap_len = disk->snap_len;
        }
        if (log_reserve(r, disk->n_entries) < 0) {
            craft_free(r);
            return -ENOMEM;
        }
        for (size_t i = 0; i < disk->n_entries; i++)
            if (log_append(r, &disk->entries[i]) < 0) {
                craft_free(r);
                return -ENOMEM;
            }
    }
    r->stable = last_offset(r) + 1;
    r->commit = r->applied = r->snap_offset;
    if (disk && disk->commit > r->commit)
        r->commit = r->applied = disk->commit < r->stable ? disk->commit : r->stable;
    r->role = CRAFT_FOLLOWER;
    reset_election_deadline(r);
    *ret = r;
    return 0;
}

void craft_free(struct craft *r)
{
    if (!r)
        return;
    log_truncate(r, r->snap_offset);
    free(r->log);
    free(r->snap_data);
    craft_msgs_free(r->out, r->n_out);
    free(r);
}

void craft_tick(struct craft *r, int64_t now_ms)
{
    if (now_ms > r->now)
        r->now = now_ms;
    if (r->role != CRAFT_LEADER) {
        if (r->now >= r->election_deadline)
            campaign(r, true);
        return;
    }
    if (r->now >= r->quorum_check_due) {
        size_t heard = 0;
        for (size_t i = 0; i < r->opts.n_voters; i++)
            if (r->prog[i].id == r->opts.id ||
                r->now - r->prog[i].last_ack_ms < r->opts.election_ms)
                heard++;
        if (heard < majority(r)) {
            become_follower(r, r->term, 0);
            return;
        }
        r->quorum_check_due = r->now + r->opts.election_ms;
    }
    if (r->now >= r->heartbeat_due) {
        for (size_t i = 0; i < r->opts.n_voters; i++) {
            struct progress *p = &r->prog[i];
            if (p->id == r->opts.id)
                continue;
            size_t before = r->n_out;
            send_append(r, p);
            if (r->n_out == before) { /* nothing to send: an empty heartbeat */
                struct craft_msg *m = msg_new(r, CRAFT_MSG_APPEND, p->id);
                if (m) {
                    m->ts = r->now;
                    m->prev_offset = p->next - 1;
                    m->prev_term = term_at(r, p->next - 1);
                    m->commit = r->commit;
                }
            }
        }
        r->heartbeat_due = r->now + r->opts.heartbeat_ms;
    }
}

int craft_step(struct craft *r, const struct craft_msg *m)
{
    int vi = voter_index(r, m->from);
    if (vi < 0 || m->from == r->opts.id || m->to != r->opts.id || m->term < 0)
        return -EINVAL;
    bool pre = m->type == CRAFT_MSG_PREVOTE || m->type == CRAFT_MSG_PREVOTE_RESP;
    bool from_leader = m->type == CRAFT_MSG_APPEND || m->type == CRAFT_MSG_SNAPSHOT;

    if (m->term > r->term && !pre) {
        /* A vote request while we hear from a leader is a disruption: ignore it. */
        if (m->type == CRAFT_MSG_VOTE && in_lease(r))
            return 0;
        become_follower(r, m->term, from_leader ? m->from : 0);
    } else if (m->term < r->term && !pre) {
        /* Tell a stale leader about the new term so that it steps down. */
        if (from_leader) {
            struct craft_msg *resp = msg_new(r, CRAFT_MSG_APPEND_RESP, m->from);
            if (resp)
                resp->reject_offset = -2; /* matches no progress */
        }
        return 0;
    }

    switch (m->type) {
    case CRAFT_MSG_PREVOTE:
    case CRAFT_MSG_VOTE:
        handle_vote(r, m, pre);
        break;
    case CRAFT_MSG_PREVOTE_RESP:
    case CRAFT_MSG_VOTE_RESP:
        handle_vote_resp(r, m, pre);
        break;
    case CRAFT_MSG_APPEND:
    case CRAFT_MSG_SNAPSHOT:
        if (r->role == CRAFT_LEADER) {
            r->broken = "another leader in this node's term";
            return -EPROTO;
        }
        r->role = CRAFT_FOLLOWER;
        r->leader = m->from;
        r->last_leader_contact = r->now;
        reset_election_deadline(r);
        if (m->type == CRAFT_MSG_APPEND)
            handle_append(r, m);
        else
            handle_snapshot(r, m);
        break;
    case CRAFT_MSG_APPEND_RESP:
        handle_append_resp(r, m);
        break;
    default:
        return -EINVAL;
    }
    return 0;
}

int craft_propose(struct craft *r, const void *data, size_t len, int64_t *ret_offset)
{
    if (r->role != CRAFT_LEADER)
        return -EPERM;
    struct craft_entry e = {.term = r->term, .data = (uint8_t *)data, .len = len};
    int rc = log_append(r, &e);
    if (rc < 0)
        return rc;
    if (ret_offset)
        *ret_offset = last_offset(r);
    broadcast_append(r);
    maybe_commit(r);
    return 0;
}

int craft_compact(struct craft *r, int64_t offset, const void *data, size_t len)
{
    if (offset <= r->snap_offset || offset > r->applied)
        return -EINVAL;
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, data, len);
    }
    int64_t term = term_at(r, offset - 1);
    size_t drop = (size_t)(offset - r->snap_offset);
    for (size_t i = 0; i < drop; i++)
        free(r->log[i].data);
    memmove(r->log, r->log + drop, (r->n - drop) * sizeof(*r->log));
    r->n -= drop;
    free(r->snap_data);
    r->snap_data = copy;
    r->snap_len = len;
    r->snap_offset = offset;
    r->snap_term = term;
    return 0;
}

bool craft_hard_dirty(const struct craft *r)
{
    return r->hard_dirty;
}
void craft_hard_saved(struct craft *r)
{
    r->hard_dirty = false;
}
bool craft_snapshot_dirty(const struct craft *r)
{
    return r->snap_dirty;
}
void craft_snapshot_saved(struct craft *r)
{
    r->snap_dirty = false;
}

void craft_snapshot_get(const struct craft *r, int64_t *ret_offset, int64_t *ret_term,
                        const uint8_t **ret_data, size_t *ret_len)
{
    *ret_offset = r->snap_offset;
    *ret_term = r->snap_term;
    *ret_data = r->snap_data;
    *ret_len = r->snap_len;
}

bool craft_unstable(const struct craft *r, int64_t *ret_from)
{
    if (r->stable > last_offset(r))
        return false;
    *ret_from = r->stable;
    return true;
}

void craft_stable_to(struct craft *r, int64_t end)
{
    if (end > last_offset(r) + 1)
        end = last_offset(r) + 1;
    if (end > r->stable)
        r->stable = end;
    maybe_commit(r);
}

size_t craft_take_msgs(struct craft *r, struct craft_msg **ret_msgs)
{
    size_t n = r->n_out;
    *ret_msgs = r->out;
    r->out = NULL;
    r->n_out = r->cap_out = 0;
    return n;
}

void craft_msgs_free(struct craft_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < msgs[i].n_entries; j++)
            free(msgs[i].entries[j].data);
        free(msgs[i].entries);
        free(msgs[i].snap_data);
    }
    free(msgs);
}

int64_t craft_commit(const struct craft *r)
{
    return r->commit;
}
int64_t craft_applied(const struct craft *r)
{
    return r->applied;
}

void craft_applied_to(struct craft *r, int64_t end)
{
    if (end > r->commit)
        end = r->commit;
    if (end > r->applied)
        r->applied = end;
}

const struct craft_entry *craft_entry_at(const struct craft *r, int64_t offset)
{
    if (offset < r->snap_offset || offset > last_offset(r))
        return NULL;
    return &r->log[offset - r->snap_offset];
}

const char *craft_broken(const struct craft *r)
{
    return r->broken;
}
int64_t craft_next_offset(const struct craft *r)
{
    return last_offset(r) + 1;
}
int64_t craft_snap_offset(const struct craft *r)
{
    return r->snap_offset;
}
int64_t craft_term(const struct craft *r)
{
    return r->term;
}
int32_t craft_vote(const struct craft *r)
{
    return r->vote;
}
int32_t craft_id(const struct craft *r)
{
    return r->opts.id;
}
int32_t craft_leader(const struct craft *r)
{
    return r->leader;
}
enum craft_role craft_role_get(const struct craft *r)
{
    return r->role;
}

bool craft_lease_valid(const struct craft *r, int64_t now_ms, int64_t drift_ms)
{
    if (r->role != CRAFT_LEADER)
        return false;
    size_t heard = 0;
    for (size_t i = 0; i < r->opts.n_voters; i++)
        if (r->prog[i].id == r->opts.id ||
            now_ms - r->prog[i].last_ack_ms < r->opts.election_ms - drift_ms)
            heard++;
    return heard >= majority(r);
}

int craft_progress(const struct craft *r, int32_t voter, int64_t *ret_match,
                   int64_t *ret_last_ack_ms)
{
    int i = voter_index(r, voter);
    if (i < 0 || r->role != CRAFT_LEADER)
        return -ENOENT;
    *ret_match = r->prog[i].match;
    *ret_last_ack_ms = r->prog[i].last_ack_ms;
    return 0;
}
