/* A deterministic simulation of the coordinator quorum's Raft core
 * (coordinator/raft.c).
 *
 * Each seed runs 3 or 5 voters over a simulated network and clock: messages are
 * delayed (so reordered), lost and duplicated; the network partitions and heals;
 * voters crash (losing everything but their disk: term, vote, snapshot, durable
 * entries) and restart; a client proposes to whichever voter leads; voters
 * compact their logs into snapshots, and lagging ones are brought back with
 * them. The voters follow raft.h's ready contract exactly (persist, then send,
 * then apply). Checked after every step:
 *   - election safety: at most one leader per term;
 *   - state machine safety: every voter applies the same entry at each offset
 *     (a committed entry is never changed);
 *   - leader completeness: a new leader holds every entry any voter applied (a
 *     committed entry is never lost);
 *   - no voter reports craft_broken().
 *
 *   WEIR_RAFT_SEEDS=<n>  run seeds 1..n (default 2000)
 *   WEIR_RAFT_SEED=<n>   run only seed n, printing leader changes and crashes
 *
 * A failing seed prints the violation and the line that replays it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/raft.h"

#define MAX_NODES  5
#define MAX_FLIGHT 4096
#define MAX_OFFS   8192
#define ELECTION   300
#define SIM_MS     20000

struct disk {
    int64_t term;
    int32_t vote;
    int64_t snap_offset, snap_term;
    uint8_t *snap;
    size_t snap_len;
    struct craft_entry *e; /* [snap_offset, snap_offset + n) */
    size_t n, cap;
};

struct node {
    int32_t id;
    struct craft *r; /* NULL while down */
    struct disk disk;
    uint32_t *state; /* applied values, one per offset */
    size_t n_state, cap_state;
    int64_t restart_at;
    bool was_leader;
};

struct flight {
    int64_t at;
    uint64_t seq;
    struct craft_msg m;
};

enum sabotage {
    SABOTAGE_NONE,
    SABOTAGE_LOSE_TAIL, /* a restarted voter's disk lost its last entries (fsync lied) */
};

struct sim {
    uint64_t seed, rng;
    bool verbose;
    enum sabotage sabotage;
    int n;
    struct node nodes[MAX_NODES];
    int64_t now;
    struct flight *fl;
    size_t n_fl;
    uint64_t seq;
    bool cut[MAX_NODES][MAX_NODES];
    int64_t heal_at;
    int32_t *term_leader; /* by term */
    size_t n_terms;
    uint32_t vals[MAX_OFFS]; /* value applied at each offset */
    bool have[MAX_OFFS];
    int64_t applied_max; /* every offset below has a value */
    uint32_t next_val;
    char violation[256];
    int64_t proposals, commits;
    int64_t elections, installs;
};

static int64_t total_elections, total_installs;

static uint64_t rnd(struct sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static bool chance(struct sim *s, unsigned per_mille)
{
    return rnd(s) % 1000 < per_mille;
}

__attribute__((format(printf, 2, 3)))
static void violate(struct sim *s, const char *fmt, ...)
{
    if (s->violation[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->violation, sizeof(s->violation), fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static void vlog(struct sim *s, const char *fmt, ...)
{
    if (!s->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%6" PRId64 "] ", s->now);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* ---- disks ------------------------------------------------------------------------ */

static void entry_dup(struct craft_entry *dst, const struct craft_entry *src)
{
    dst->term = src->term;
    dst->len = src->len;
    dst->data = NULL;
    if (src->len) {
        dst->data = malloc(src->len);
        assert_non_null(dst->data);
        memcpy(dst->data, src->data, src->len);
    }
}

static void disk_cut(struct disk *d, int64_t off)
{
    while (d->n > 0 && d->snap_offset + (int64_t)d->n > off) {
        free(d->e[d->n - 1].data);
        d->n--;
    }
}

static void disk_push(struct disk *d, const struct craft_entry *e)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->e = realloc(d->e, d->cap * sizeof(*d->e));
        assert_non_null(d->e);
    }
    entry_dup(&d->e[d->n++], e);
}

static void disk_set_snapshot(struct disk *d, int64_t off, int64_t term, const uint8_t *data,
                              size_t len)
{
    /* keep the entries after the snapshot only if they continue it */
    int64_t drop = off - d->snap_offset;
    if (drop < 0 || drop > (int64_t)d->n) {
        disk_cut(d, d->snap_offset);
    } else {
        for (int64_t i = 0; i < drop; i++)
            free(d->e[i].data);
        memmove(d->e, d->e + drop, (d->n - (size_t)drop) * sizeof(*d->e));
        d->n -= (size_t)drop;
    }
    free(d->snap);
    d->snap = len ? malloc(len) : NULL;
    if (len)
        memcpy(d->snap, data, len);
    d->snap_len = len;
    d->snap_offset = off;
    d->snap_term = term;
}

static void disk_free(struct disk *d)
{
    disk_cut(d, d->snap_offset);
    free(d->e);
    free(d->snap);
}

/* ---- nodes ------------------------------------------------------------------------ */

static void state_set(struct node *nd, int64_t off, uint32_t v)
{
    if ((size_t)off >= nd->cap_state) {
        nd->cap_state = nd->cap_state ? nd->cap_state * 2 : 256;
        while ((size_t)off >= nd->cap_state)
            nd->cap_state *= 2;
        nd->state = realloc(nd->state, nd->cap_state * sizeof(*nd->state));
        assert_non_null(nd->state);
    }
    nd->state[off] = v;
    if ((size_t)off + 1 > nd->n_state)
        nd->n_state = (size_t)off + 1;
}

static void state_restore(struct node *nd, const uint8_t *data, size_t len)
{
    nd->n_state = 0;
    for (size_t i = 0; i * 4 < len; i++) {
        uint32_t v;
        memcpy(&v, data + i * 4, 4);
        state_set(nd, (int64_t)i, v);
    }
}

static void node_start(struct sim *s, struct node *nd)
{
    struct craft_options o = {
        .id = nd->id,
        .election_ms = ELECTION,
        .heartbeat_ms = ELECTION / 6,
        .max_append_entries = 16,
        .seed = s->seed,
    };
    o.n_voters = (size_t)s->n;
    for (int i = 0; i < s->n; i++)
        o.voters[i] = s->nodes[i].id;
    struct craft_disk d = {
        .term = nd->disk.term,
        .vote = nd->disk.vote,
        .snap_offset = nd->disk.snap_offset,
        .snap_term = nd->disk.snap_term,
        .snap_data = nd->disk.snap,
        .snap_len = nd->disk.snap_len,
        .entries = nd->disk.e,
        .n_entries = nd->disk.n,
    };
    assert_int_equal(craft_new(&o, &d, s->now, &nd->r), 0);
    state_restore(nd, nd->disk.snap, nd->disk.snap_len);
    nd->was_leader = false;
}

static void node_crash(struct sim *s, struct node *nd)
{
    vlog(s, "node %d crashes (role %s, term %" PRId64 ")", nd->id,
         craft_role_name(craft_role_get(nd->r)), craft_term(nd->r));
    craft_free(nd->r);
    nd->r = NULL;
    nd->restart_at = s->now + 50 + (int64_t)(rnd(s) % 2000);
    if (s->sabotage == SABOTAGE_LOSE_TAIL && nd->disk.n > 0) {
        size_t lose = 1 + rnd(s) % 4;
        disk_cut(&nd->disk,
                 nd->disk.snap_offset + (int64_t)(nd->disk.n > lose ? nd->disk.n - lose : 0));
    }
}

static void send(struct sim *s, struct craft_msg *m)
{
    int from = m->from - 1, to = m->to - 1;
    if (s->cut[from][to] || chance(s, 80) || s->n_fl + 2 > MAX_FLIGHT) {
        craft_msgs_free(m, 1);
        return;
    }
    int copies = chance(s, 30) ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        struct flight *f = &s->fl[s->n_fl++];
        f->at = s->now + 1 + (int64_t)(rnd(s) % 40);
        f->seq = s->seq++;
        f->m = *m;
        if (c == 1) { /* deep copy for the duplicate */
            f->m.entries = m->n_entries ? calloc(m->n_entries, sizeof(*m->entries)) : NULL;
            for (size_t i = 0; i < m->n_entries; i++)
                entry_dup(&f->m.entries[i], &m->entries[i]);
            f->m.snap_data = m->snap_len ? malloc(m->snap_len) : NULL;
            if (m->snap_len)
                memcpy(f->m.snap_data, m->snap_data, m->snap_len);
        }
    }
    free(m); /* the shell only: the flight owns the contents */
}

/* The ready contract: persist, then send, then apply. */
static void node_ready(struct sim *s, struct node *nd)
{
    struct craft *r = nd->r;
    if (craft_hard_dirty(r)) {
        nd->disk.term = craft_term(r);
        nd->disk.vote = craft_vote(r);
        craft_hard_saved(r);
    }
    if (craft_snapshot_dirty(r)) {
        int64_t off, term;
        const uint8_t *data;
        size_t len;
        craft_snapshot_get(r, &off, &term, &data, &len);
        disk_set_snapshot(&nd->disk, off, term, data, len);
        state_restore(nd, data, len);
        craft_snapshot_saved(r);
        s->installs++;
    }
    int64_t from;
    if (craft_unstable(r, &from)) {
        disk_cut(&nd->disk, from);
        int64_t end = craft_next_offset(r);
        for (int64_t o = from; o < end; o++)
            disk_push(&nd->disk, craft_entry_at(r, o));
        craft_stable_to(r, end);
    }
    struct craft_msg *msgs;
    size_t n = craft_take_msgs(r, &msgs);
    for (size_t i = 0; i < n; i++) {
        struct craft_msg *one = malloc(sizeof(*one));
        assert_non_null(one);
        *one = msgs[i];
        send(s, one);
    }
    free(msgs);

    for (int64_t o = craft_applied(r); o < craft_commit(r); o++) {
        const struct craft_entry *e = craft_entry_at(r, o);
        if (!e) {
            violate(s, "node %d: committed offset %" PRId64 " is not in its log", nd->id, o);
            return;
        }
        uint32_t v = 0;
        if (e->len == 4)
            memcpy(&v, e->data, 4);
        if (o >= MAX_OFFS)
            break;
        if (s->have[o] && s->vals[o] != v)
            violate(s,
                    "node %d applied %" PRIu32 " at offset %" PRId64 ", another applied %" PRIu32,
                    nd->id, v, o, s->vals[o]);
        if (!s->have[o]) {
            s->have[o] = true;
            s->vals[o] = v;
            s->commits++;
            while (s->applied_max < MAX_OFFS && s->have[s->applied_max])
                s->applied_max++;
        }
        state_set(nd, o, v);
        craft_applied_to(r, o + 1);
    }
    if (craft_broken(r))
        violate(s, "node %d: %s", nd->id, craft_broken(r));
}

static void check_leader(struct sim *s, struct node *nd)
{
    struct craft *r = nd->r;
    bool leader = craft_role_get(r) == CRAFT_LEADER;
    if (leader && !nd->was_leader) {
        int64_t t = craft_term(r);
        vlog(s, "node %d leads term %" PRId64 ", log end %" PRId64, nd->id, t,
             craft_next_offset(r));
        if ((size_t)t >= s->n_terms) {
            size_t n = (size_t)t * 2 + 8;
            s->term_leader = realloc(s->term_leader, n * sizeof(*s->term_leader));
            memset(s->term_leader + s->n_terms, 0, (n - s->n_terms) * sizeof(int32_t));
            s->n_terms = n;
        }
        if (s->term_leader[t] && s->term_leader[t] != nd->id)
            violate(s, "two leaders in term %" PRId64 ": %d and %d", t, s->term_leader[t], nd->id);
        s->term_leader[t] = nd->id;
        s->elections++;
        /* leader completeness */
        int64_t end = craft_next_offset(r);
        for (int64_t o = 0; o < s->applied_max; o++) {
            if (o >= end) {
                violate(s, "leader %d of term %" PRId64 " lacks committed offset %" PRId64, nd->id,
                        t, o);
                break;
            }
            const struct craft_entry *e = craft_entry_at(r, o);
            if (!e)
                continue; /* in its snapshot: checked when applied */
            uint32_t v = 0;
            if (e->len == 4)
                memcpy(&v, e->data, 4);
            if (v != s->vals[o]) {
                violate(s,
                        "leader %d of term %" PRId64 " has %" PRIu32 " at committed offset %" PRId64
                        " instead of %" PRIu32,
                        nd->id, t, v, o, s->vals[o]);
                break;
            }
        }
    }
    nd->was_leader = leader;
}

static int cmp_flight(const void *a, const void *b)
{
    const struct flight *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void deliver_due(struct sim *s)
{
    qsort(s->fl, s->n_fl, sizeof(*s->fl), cmp_flight);
    size_t k = 0;
    while (k < s->n_fl && s->fl[k].at <= s->now)
        k++;
    for (size_t i = 0; i < k; i++) {
        struct craft_msg *m = &s->fl[i].m;
        struct node *to = &s->nodes[m->to - 1];
        if (to->r && !s->cut[m->from - 1][m->to - 1]) {
            craft_step(to->r, m);
            node_ready(s, to);
            check_leader(s, to);
        }
        for (size_t j = 0; j < m->n_entries; j++)
            free(m->entries[j].data);
        free(m->entries);
        free(m->snap_data);
    }
    memmove(s->fl, s->fl + k, (s->n_fl - k) * sizeof(*s->fl));
    s->n_fl -= k;
}

static void perturb(struct sim *s)
{
    if (s->heal_at && s->now >= s->heal_at) {
        memset(s->cut, 0, sizeof(s->cut));
        s->heal_at = 0;
        vlog(s, "network heals");
    }
    if (!s->heal_at && chance(s, 3)) {
        /* isolate one node, or split the cluster in two at random */
        int victim = (int)(rnd(s) % (uint64_t)s->n);
        bool side[MAX_NODES];
        for (int i = 0; i < s->n; i++)
            side[i] = chance(s, 3) ? (rnd(s) & 1) : i == victim;
        for (int i = 0; i < s->n; i++)
            for (int j = 0; j < s->n; j++)
                s->cut[i][j] = side[i] != side[j];
        s->heal_at = s->now + 100 + (int64_t)(rnd(s) % 3000);
        vlog(s, "network partitions until %" PRId64, s->heal_at);
    }
    for (int i = 0; i < s->n; i++) {
        struct node *nd = &s->nodes[i];
        if (nd->r && chance(s, 1))
            node_crash(s, nd);
        else if (!nd->r && s->now >= nd->restart_at) {
            vlog(s, "node %d restarts", nd->id);
            node_start(s, nd);
        }
    }
}

static void propose(struct sim *s)
{
    for (int i = 0; i < s->n; i++) {
        struct node *nd = &s->nodes[i];
        if (!nd->r || craft_role_get(nd->r) != CRAFT_LEADER)
            continue;
        uint32_t v = ++s->next_val;
        if (craft_propose(nd->r, &v, sizeof(v), NULL) == 0)
            s->proposals++;
        node_ready(s, nd);
        return;
    }
}

static void compact(struct sim *s, struct node *nd)
{
    int64_t applied = craft_applied(nd->r);
    if (applied - craft_snap_offset(nd->r) < 24 || !chance(s, 20))
        return;
    size_t len = (size_t)applied * 4;
    uint8_t *img = malloc(len);
    assert_non_null(img);
    memcpy(img, nd->state, len);
    assert_int_equal(craft_compact(nd->r, applied, img, len), 0);
    int64_t off, term;
    const uint8_t *data;
    size_t dlen;
    craft_snapshot_get(nd->r, &off, &term, &data, &dlen);
    disk_set_snapshot(&nd->disk, off, term, data, dlen);
    free(img);
}

/* Run one seed; returns true when no invariant broke. */
static bool run_seed(uint64_t seed, enum sabotage sabotage, bool verbose, int64_t *ret_commits)
{
    struct sim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->seed = seed;
    s->rng = seed * 0x2545F4914F6CDD1DULL + 1;
    s->verbose = verbose;
    s->sabotage = sabotage;
    s->n = seed % 4 == 0 ? 5 : 3;
    s->fl = calloc(MAX_FLIGHT, sizeof(*s->fl));
    assert_non_null(s->fl);
    for (int i = 0; i < s->n; i++)
        s->nodes[i].id = i + 1;
    for (int i = 0; i < s->n; i++)
        node_start(s, &s->nodes[i]);
    for (s->now = 0; s->now < SIM_MS && !s->violation[0]; s->now += 1 + (int64_t)(rnd(s) % 8)) {
        perturb(s);
        deliver_due(s);
        for (int i = 0; i < s->n && !s->violation[0]; i++) {
            struct node *nd = &s->nodes[i];
            if (!nd->r)
                continue;
            craft_tick(nd->r, s->now);
            node_ready(s, nd);
            check_leader(s, nd);
            compact(s, nd);
        }
        if (chance(s, 150))
            propose(s);
    }
    bool ok = !s->violation[0];
    if (!ok && sabotage == SABOTAGE_NONE)
        printf("seed %" PRIu64 ": VIOLATION at %" PRId64 " ms: %s\n"
               "  replay: WEIR_RAFT_SEED=%" PRIu64 " %s\n",
               seed, s->now, s->violation, seed, "tests/unit/test_raft");
    if (verbose)
        printf("seed %" PRIu64 ": %" PRId64 " proposals, %" PRId64 " committed, %s\n", seed,
               s->proposals, s->commits, ok ? "ok" : s->violation);
    *ret_commits = s->commits;
    total_elections += s->elections;
    total_installs += s->installs;
    for (size_t i = 0; i < s->n_fl; i++) {
        struct craft_msg *m = &s->fl[i].m;
        for (size_t j = 0; j < m->n_entries; j++)
            free(m->entries[j].data);
        free(m->entries);
        free(m->snap_data);
    }
    for (int i = 0; i < s->n; i++) {
        craft_free(s->nodes[i].r);
        disk_free(&s->nodes[i].disk);
        free(s->nodes[i].state);
    }
    free(s->term_leader);
    free(s->fl);
    free(s);
    return ok;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static void test_raft_random_seeds_hold_invariants(void **state)
{
    (void)state;
    uint64_t one = env_u64("WEIR_RAFT_SEED", 0);
    uint64_t n = one ? 1 : env_u64("WEIR_RAFT_SEEDS", 2000);
    uint64_t failed = 0, idle = 0;
    int64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seed = one ? one : i + 1;
        int64_t commits = 0;
        if (!run_seed(seed, SABOTAGE_NONE, one != 0, &commits))
            failed++;
        if (commits < 20)
            idle++;
        total += commits;
    }
    printf("raft simulation: %" PRIu64 " seeds, %" PRIu64 " violations, %" PRId64
           " entries committed, %" PRId64 " elections won, %" PRId64
           " snapshots installed, %" PRIu64 " seeds with fewer than 20 commits\n",
           n, failed, total, total_elections, total_installs, idle);
    assert_int_equal(failed, 0);
    /* Liveness: faults are frequent, but most seeds must make progress. */
    assert_true(idle * 10 <= n);
}

/* The checker is only worth something if it catches a lost commit: voters whose
 * disks drop acknowledged entries on a crash must produce violations. */
static void test_raft_checker_catches_lost_commit(void **state)
{
    (void)state;
    uint64_t caught = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        int64_t commits;
        if (!run_seed(seed, SABOTAGE_LOSE_TAIL, false, &commits))
            caught++;
    }
    printf("sabotage (disks lose acknowledged entries): caught in %" PRIu64 " of 200 seeds\n",
           caught);
    assert_true(caught > 0);
}

static void test_raft_single_voter_leads_alone(void **state)
{
    (void)state;
    struct craft_options o = {.id = 1, .voters = {1}, .n_voters = 1, .election_ms = 100};
    struct craft *r;
    assert_int_equal(craft_new(&o, NULL, 0, &r), 0);
    assert_int_equal(craft_propose(r, "x", 1, NULL), -EPERM);
    craft_tick(r, 250);
    assert_int_equal(craft_role_get(r), CRAFT_LEADER);
    int64_t from, off;
    assert_true(craft_unstable(r, &from));
    assert_int_equal(from, 0);
    assert_int_equal(craft_commit(r), 0); /* not before its no-op is durable */
    craft_stable_to(r, craft_next_offset(r));
    assert_int_equal(craft_commit(r), 1);
    assert_int_equal(craft_propose(r, "x", 1, &off), 0);
    assert_int_equal(off, 1);
    craft_stable_to(r, 2);
    assert_int_equal(craft_commit(r), 2);
    struct craft_msg *m;
    size_t n = craft_take_msgs(r, &m);
    assert_int_equal(n, 0);
    craft_msgs_free(m, n);
    assert_true(craft_lease_valid(r, 300, 10));
    craft_free(r);
}

static void test_raft_rejects_bad_options(void **state)
{
    (void)state;
    struct craft *r;
    struct craft_options o = {.id = 4, .voters = {1, 2, 3}, .n_voters = 3};
    assert_int_equal(craft_new(&o, NULL, 0, &r), -EINVAL); /* not a voter */
    o = (struct craft_options){.id = 1, .voters = {1, 2, 2}, .n_voters = 3};
    assert_int_equal(craft_new(&o, NULL, 0, &r), -EINVAL); /* duplicate */
    o = (struct craft_options){
        .id = 1, .voters = {1, 2}, .n_voters = 2, .election_ms = 100, .heartbeat_ms = 100};
    assert_int_equal(craft_new(&o, NULL, 0, &r), -EINVAL);
}

/* A voter that hears from its leader refuses to vote for a disruptive peer
 * (one cut off, which pre-voted its way nowhere and came back). */
static void test_raft_follower_in_lease_ignores_higher_term_vote(void **state)
{
    (void)state;
    struct craft_options o = {.id = 2, .voters = {1, 2, 3}, .n_voters = 3, .election_ms = 100};
    struct craft *r;
    assert_int_equal(craft_new(&o, NULL, 0, &r), 0);
    struct craft_msg hb = {
        .type = CRAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1, .prev_offset = -1};
    assert_int_equal(craft_step(r, &hb), 0);
    assert_int_equal(craft_leader(r), 1);
    struct craft_msg vote = {
        .type = CRAFT_MSG_VOTE, .from = 3, .to = 2, .term = 5, .last_offset = 10, .last_term = 4};
    assert_int_equal(craft_step(r, &vote), 0);
    assert_int_equal(craft_term(r), 1);
    struct craft_msg pre = vote;
    pre.type = CRAFT_MSG_PREVOTE;
    assert_int_equal(craft_step(r, &pre), 0);
    struct craft_msg *m;
    size_t n = craft_take_msgs(r, &m);
    bool refused = false;
    for (size_t i = 0; i < n; i++)
        if (m[i].type == CRAFT_MSG_PREVOTE_RESP)
            refused = !m[i].granted;
    assert_true(refused);
    craft_msgs_free(m, n);
    craft_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_rejects_bad_options),
        cmocka_unit_test(test_raft_single_voter_leads_alone),
        cmocka_unit_test(test_raft_follower_in_lease_ignores_higher_term_vote),
        cmocka_unit_test(test_raft_random_seeds_hold_invariants),
        cmocka_unit_test(test_raft_checker_catches_lost_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
