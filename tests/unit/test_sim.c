/* A deterministic simulation of the coordinator's state machine.
 *
 * Each seed drives a seeded generator of events against the controller and the
 * state, exactly as the coordinator does (controller -> records -> log ->
 * cstate_apply): broker processes start, register, heartbeat, crash, pause and
 * come back as zombies, ask for controlled shutdown; the clock advances and
 * sessions expire; topics are created, deleted and grown; leaders change ISRs
 * (with fresh and stale epochs); preferred leaders are restored; configs change;
 * and the coordinator restarts by replaying its log from the beginning, or from
 * a snapshot plus the tail. After every event the invariants are checked (see
 * check_invariants()), and every controller answer is compared with an
 * independent expectation.
 *
 *   WEIR_SIM_SEEDS=<n>   run seeds 1..n (default 1000)
 *   WEIR_SIM_EVENTS=<n>  events per seed (default 400)
 *   WEIR_SIM_SEED=<n>    run only seed n, printing every event, record and state
 *   WEIR_SIM_SABOTAGE=<k> break the state on purpose from event 150 (1-4, see
 *                        enum sabotage) to watch the checks catch it
 *
 * A failing seed prints the event, the violation and the line that replays it. */
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

#include "coordinator/controller.h"
#include "coordinator/session.h"
#include "common/kerr.h"
#include "common/meta/state.h"

#define MAX_BROKERS   6
#define MAX_TOPICS    64 /* topic ids remembered per seed */
#define MAX_PARTS     8
#define N_NAMES       6
#define N_SNAPS       4
#define N_VIEWS       16
#define SESSION_MS    9000
#define DEFAULT_SEEDS 1000
#define DEFAULT_EVENT 400

static const char *prog = "tests/unit/test_sim";

/* ---- PRNG: xoshiro256** seeded by splitmix64 ------------------------------------- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static uint64_t rng_u64(void *arg)
{
    return rng_next(arg);
}

static uint32_t below(struct rng *r, uint32_t n)
{
    return n ? (uint32_t)(rng_next(r) % n) : 0;
}

static bool chance(struct rng *r, uint32_t pct)
{
    return below(r, 100) < pct;
}

/* ---- the simulated world ------------------------------------------------------------ */

struct proc {
    bool running;  /* the process exists */
    bool paused;   /* running but silent: a GC pause or a partition */
    uint8_t gen;   /* incarnation generation */
    int64_t epoch; /* the epoch it believes it holds; -1: must register */
    const char *rack;
    int64_t last_hb; /* when its session was last refreshed */
};

/* A request a broker once made, kept to be replayed later as a stale one. */
struct view {
    int32_t broker;
    int64_t broker_epoch;
    uint8_t topic[CSTATE_UUID_LEN];
    int32_t partition, leader_epoch, partition_epoch;
};

struct hist {
    uint8_t id[CSTATE_UUID_LEN];
    int32_t n;
    int32_t le[MAX_PARTS], pe[MAX_PARTS], leader[MAX_PARTS];
};

struct snap {
    int64_t offset;
    uint8_t *data;
    size_t len;
};

enum sabotage {
    SABOTAGE_NONE,
    SABOTAGE_EPOCH_DECREASE, /* lower a leader epoch behind apply's back */
    SABOTAGE_DRIFT,          /* change the live state where only a replay can tell */
    SABOTAGE_FENCED_LEADER,  /* mark a leader fenced without moving leadership */
    SABOTAGE_DOUBLE_LEADER,  /* change a leader without bumping the leader epoch */
};

struct sim {
    uint64_t seed;
    bool verbose;
    int sabotage;
    struct rng rng;
    struct cctl_ctx ctx;
    struct cstate *s;
    struct csession_table *sess;
    int64_t now;
    int n_brokers;
    struct proc procs[MAX_BROKERS];
    struct cstate_record *log;
    size_t n_log, cap_log;
    struct snap snaps[N_SNAPS];
    size_t n_snaps;
    struct view views[N_VIEWS];
    size_t n_views;
    struct hist hist[MAX_TOPICS];
    size_t n_hist;
    int64_t max_epoch;
    int64_t last_fence_ms; /* INT64_MIN: none yet */
    int64_t broker_epoch[MAX_BROKERS];
    struct cstate_records recs;
    struct cctl_error err;
    int event;
    char what[160];
    char why[512];
    bool failed;
    size_t stats_records, stats_restarts, stats_rejected;
    size_t stats_codes[128];
    size_t stats_parts, stats_multi_isr, stats_offline;
    size_t stats_moves, stats_cancels, stats_completions; /* reassignments written */
};

static bool violation(struct sim *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record the first violation; always false so callers can `return violation(...)`. */
static bool violation(struct sim *m, const char *fmt, ...)
{
    if (m->failed)
        return false;
    m->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->why, sizeof(m->why), fmt, ap);
    va_end(ap);
    return false;
}

static void say(struct sim *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct sim *m, const char *fmt, ...)
{
    if (!m->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static void uuid_of_proc(const struct sim *m, int32_t id, uint8_t out[16])
{
    memset(out, 0, 16);
    out[0] = (uint8_t)(id + 1);
    out[1] = m->procs[id].gen;
    out[2] = 0xee;
}

/* Append the pending records to the log and apply them; any refusal is a bug
 * in the controller (it wrote records that do not fit). */
static bool commit(struct sim *m)
{
    for (size_t i = 0; i < m->recs.n; i++) {
        struct cstate_record *r = &m->recs.v[i];
        if (m->verbose) {
            char buf[256];
            cstate_record_format_bytes(r->data, r->len, buf, sizeof(buf));
            printf("    @%zu %s\n", m->n_log, buf);
        }
        if (m->n_log == m->cap_log) {
            m->cap_log = m->cap_log ? m->cap_log * 2 : 256;
            m->log = realloc(m->log, m->cap_log * sizeof(*m->log));
            assert_non_null(m->log);
        }
        char why[256] = "";
        int rc = cstate_apply_bytes(m->s, (int64_t)m->n_log, r->data, r->len, why, sizeof(why));
        if (rc != 0) {
            cstate_records_clear(&m->recs);
            return violation(m, "controller record refused by apply: %s", why);
        }
        csession_pushed(m->sess, (int64_t)m->n_log, r->len);
        m->log[m->n_log++] = *r;
        m->stats_records++;
        r->data = NULL;
    }
    m->recs.n = 0;
    return true;
}

/* The controller must not have produced records on an error. */
static bool no_records_on_error(struct sim *m)
{
    if (m->err.code && m->recs.n)
        return violation(m, "error %d with %zu records", m->err.code, m->recs.n);
    if (m->err.code) {
        m->stats_rejected++;
        m->stats_codes[m->err.code & 127]++;
    }
    return true;
}

static bool expect_code(struct sim *m, int16_t want)
{
    if (m->err.code != want)
        return violation(m, "expected error %d, got %d (%s)", want, m->err.code, m->err.message);
    return no_records_on_error(m);
}

static size_t eligible_count(const struct cstate *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_brokers; i++)
        n += s->brokers[i].state == CSTATE_BROKER_REGISTERED;
    return n;
}

/* ---- invariants ----------------------------------------------------------------------- */

/* The preferred replica: the first one not being removed by a move. */
static int32_t sim_pref(const struct cstate_partition *p)
{
    const int32_t *rep = cstate_part_replicas(p);
    for (uint8_t k = 0; k < p->n_replicas; k++) {
        bool removing = false;
        for (uint8_t j = 0; j < p->n_removing; j++)
            removing = removing || cstate_part_removing(p)[j] == rep[k];
        if (!removing)
            return rep[k];
    }
    return rep[0];
}

static bool ids_have(const int32_t *v, size_t n, int32_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/* The target of @p's move in order (replicas not being removed). */
static size_t target_of(const struct cstate_partition *p, int32_t *ret)
{
    size_t n = 0;
    for (uint8_t k = 0; k < p->n_replicas; k++)
        if (!ids_have(cstate_part_removing(p), p->n_removing, cstate_part_replicas(p)[k]))
            ret[n++] = cstate_part_replicas(p)[k];
    return n;
}

/* Whether @p's move can complete now, by the rule in docs/reassignment.md:
 * every target replica in the ISR, and a target replica in the ISR able to
 * lead when the leader is being removed. */
static bool can_complete(const struct cstate *s, const struct cstate_partition *p)
{
    if (!p->n_adding && !p->n_removing)
        return false;
    int32_t tgt[CSTATE_MAX_REPLICAS];
    size_t n = target_of(p, tgt);
    for (size_t k = 0; k < n; k++)
        if (!cstate_part_in_isr(p, tgt[k]))
            return false;
    if (p->leader < 0 || ids_have(tgt, n, p->leader))
        return true;
    for (size_t k = 0; k < n; k++)
        if (cstate_broker_eligible(s, tgt[k]))
            return true;
    return false;
}

static struct hist *hist_for(struct sim *m, const uint8_t *id)
{
    for (size_t i = 0; i < m->n_hist; i++)
        if (!memcmp(m->hist[i].id, id, 16))
            return &m->hist[i];
    if (m->n_hist == MAX_TOPICS) {
        /* forget the oldest; only live topics matter for monotonicity */
        memmove(&m->hist[0], &m->hist[1], (MAX_TOPICS - 1) * sizeof(m->hist[0]));
        m->n_hist--;
    }
    struct hist *h = &m->hist[m->n_hist++];
    memset(h, 0, sizeof(*h));
    memcpy(h->id, id, 16);
    return h;
}

static bool check_invariants(struct sim *m)
{
    const struct cstate *s = m->s;
    char why[256];
    /* Structure: leader in ISR within replicas, ISR non-empty, no fenced
     * leader, ineligible brokers in an ISR only as its last member, unique
     * broker epochs below the next one. */
    if (cstate_check(s, why, sizeof(why)) != 0)
        return violation(m, "%s", why);
    if (s->offset != (int64_t)m->n_log - 1)
        return violation(m, "state offset %" PRId64 " with %zu records logged", s->offset,
                         m->n_log);
    /* Broker epochs are issued in increasing order and never go back. */
    for (size_t i = 0; i < s->n_brokers; i++) {
        const struct cstate_broker *b = &s->brokers[i];
        if (b->id < 0 || b->id >= MAX_BROKERS)
            return violation(m, "unexpected broker id %d", b->id);
        int64_t prev = m->broker_epoch[b->id];
        if (b->epoch < prev)
            return violation(m, "broker %d epoch went back from %" PRId64 " to %" PRId64, b->id,
                             prev, b->epoch);
        if (b->epoch != prev) {
            if (b->epoch <= m->max_epoch)
                return violation(m, "broker %d got epoch %" PRId64 ", not above %" PRId64, b->id,
                                 b->epoch, m->max_epoch);
            m->max_epoch = b->epoch;
            m->broker_epoch[b->id] = b->epoch;
        }
        /* Sessions exist exactly for brokers whose session has not ended. */
        int64_t se;
        bool has = csession_has(m->sess, b->id, &se);
        if (has != (b->state != CSTATE_BROKER_FENCED) || (has && se != b->epoch))
            return violation(m, "broker %d (%s, epoch %" PRId64 ") session %s", b->id,
                             cstate_broker_state_name(b->state), b->epoch,
                             has ? "at another epoch" : "missing");
    }
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        struct hist *h = hist_for(m, t->id);
        bool unclean = cctl_topic_unclean(s, &m->ctx, t);
        for (int32_t i = 0; i < t->n_parts; i++) {
            const struct cstate_partition *p = &t->parts[i];
            if (i < h->n && i < MAX_PARTS) {
                /* Epochs never decrease; one leader per leader epoch. */
                if (p->leader_epoch < h->le[i] || p->partition_epoch < h->pe[i])
                    return violation(m, "%s-%d: epochs went back (le %d->%d, pe %d->%d)", t->name,
                                     i, h->le[i], p->leader_epoch, h->pe[i], p->partition_epoch);
                if (p->leader_epoch == h->le[i] && p->leader != h->leader[i])
                    return violation(m, "%s-%d: leader %d then %d in leader epoch %d", t->name, i,
                                     h->leader[i], p->leader, p->leader_epoch);
            }
            if (i < MAX_PARTS) {
                h->le[i] = p->leader_epoch;
                h->pe[i] = p->partition_epoch;
                h->leader[i] = p->leader;
            }
            /* Elections happen whenever they can: an offline partition has no
             * live ISR member (nor, with unclean election, a live replica). */
            if (p->leader < 0) {
                const int32_t *isr = cstate_part_isr(p), *rep = cstate_part_replicas(p);
                for (uint8_t k = 0; k < p->n_isr; k++)
                    if (cstate_broker_eligible(s, isr[k]))
                        return violation(m, "%s-%d offline with live ISR member %d", t->name, i,
                                         isr[k]);
                for (uint8_t k = 0; unclean && k < p->n_replicas; k++)
                    if (cstate_broker_eligible(s, rep[k]) &&
                        !ids_have(cstate_part_adding(p), p->n_adding, rep[k]))
                        return violation(m, "%s-%d offline, unclean allowed, live replica %d",
                                         t->name, i, rep[k]);
            }
        }
        h->n = t->n_parts < MAX_PARTS ? t->n_parts : MAX_PARTS;
        for (int32_t i = 0; i < t->n_parts; i++) {
            m->stats_parts++;
            m->stats_multi_isr += t->parts[i].n_isr > 1;
            m->stats_offline += t->parts[i].leader < 0;
        }
    }
    return true;
}

/* Verbose mode: the state after each event, one line per broker set and topic. */
static void dump_state(const struct sim *m)
{
    if (!m->verbose)
        return;
    printf("    brokers:");
    for (size_t i = 0; i < m->s->n_brokers; i++) {
        const struct cstate_broker *b = &m->s->brokers[i];
        printf(" %d:%c%" PRId64, b->id, "?RFC"[b->state], b -> epoch);
    }
    printf("\n");
    for (const struct cstate_topic *t = m->s->first_topic; t; t = t->next) {
        printf("    %s:", t->name);
        for (int32_t i = 0; i < t->n_parts; i++) {
            const struct cstate_partition *p = &t->parts[i];
            printf(" [%d l%d e%d/%d r", i, p->leader, p->leader_epoch, p->partition_epoch);
            for (uint8_t k = 0; k < p->n_replicas; k++)
                printf("%s%d", k ? "," : "", cstate_part_replicas(p)[k]);
            printf(" i");
            for (uint8_t k = 0; k < p->n_isr; k++)
                printf("%s%d", k ? "," : "", cstate_part_isr(p)[k]);
            printf("]");
        }
        printf("\n");
    }
}

/* ---- restarts ------------------------------------------------------------------------ */

static bool replay_from(struct sim *m, struct cstate *s, size_t from, const char *how)
{
    for (size_t i = from; i < m->n_log; i++) {
        char why[256] = "";
        if (cstate_apply_bytes(s, (int64_t)i, m->log[i].data, m->log[i].len, why, sizeof(why)))
            return violation(m, "%s: record %zu refused on replay: %s", how, i, why);
    }
    char why[256];
    if (!cstate_equal(m->s, s, why, sizeof(why)))
        return violation(m, "%s: replayed state differs: %s", how, why);
    return true;
}

static bool take_snapshot(struct sim *m)
{
    struct snap sn = {.offset = m->s->offset};
    assert_int_equal(cstate_snapshot_encode(m->s, &sn.data, &sn.len), 0);
    size_t slot = m->n_snaps < N_SNAPS ? m->n_snaps++ : below(&m->rng, N_SNAPS);
    free(m->snaps[slot].data);
    m->snaps[slot] = sn;
    say(m, "    snapshot at offset %" PRId64 " (%zu bytes)\n", sn.offset, sn.len);
    return true;
}

/* The coordinator restarts: rebuild from the whole log, and from a snapshot
 * plus the tail; both must equal the state before; run on with the rebuilt one. */
static bool restart(struct sim *m)
{
    m->stats_restarts++;
    struct cstate *full;
    assert_int_equal(cstate_new(&full), 0);
    bool good = replay_from(m, full, 0, "full replay");
    struct cstate *fresh = full;
    if (good && m->n_snaps) {
        const struct snap *sn = &m->snaps[below(&m->rng, (uint32_t)m->n_snaps)];
        struct cstate *img = NULL;
        char why[256] = "";
        if (cstate_snapshot_decode(sn->data, sn->len, &img, why, sizeof(why)) != 0) {
            good = violation(m, "snapshot at %" PRId64 " does not decode: %s", sn->offset, why);
        } else {
            good = replay_from(m, img, (size_t)(sn->offset + 1), "snapshot + tail");
            fresh = img;
            cstate_free(full);
        }
    }
    if (good)
        good = take_snapshot(m);
    if (!good) {
        cstate_free(fresh);
        return false;
    }
    cstate_free(m->s);
    m->s = fresh;
    /* Sessions are soft state: every live broker starts a fresh one. */
    assert_int_equal(csession_reset(m->sess, m->s, m->now), 0);
    for (int32_t b = 0; b < m->n_brokers; b++)
        m->procs[b].last_hb = m->now;
    return true;
}

/* ---- events: brokers ---------------------------------------------------------------- */

static bool do_register(struct sim *m, int32_t id, bool new_incarnation)
{
    struct proc *p = &m->procs[id];
    if (new_incarnation) {
        p->gen++;
        p->running = true;
        p->paused = false;
        p->epoch = -1;
    }
    struct cstate_endpoint ep = {"PLAINTEXT", "10.0.0.1", 9092 + id, "PLAINTEXT"};
    struct cctl_register_req req = {
        .broker_id = id, .endpoints = &ep, .n_endpoints = 1, .rack = p->rack};
    uuid_of_proc(m, id, req.incarnation);
    const struct cstate_broker *b = cstate_broker(m->s, id);
    int16_t want = KERR_NONE;
    int64_t want_epoch = m->s->next_broker_epoch;
    bool retry = false;
    if (b && b->state != CSTATE_BROKER_FENCED) {
        if (!memcmp(b->incarnation, req.incarnation, 16)) {
            retry = true;
            want_epoch = b->epoch;
        } else {
            want = KERR_DUPLICATE_BROKER_REGISTRATION;
        }
    }
    int64_t epoch = -1;
    assert_int_equal(cctl_register_broker(m->s, &m->ctx, &req, &m->recs, &epoch, &m->err), 0);
    say(m, "  register %d gen %u: %d %s\n", id, p->gen, m->err.code, m->err.message);
    if (!expect_code(m, want))
        return false;
    if (want)
        return true;
    if (epoch != want_epoch)
        return violation(m, "register %d: epoch %" PRId64 ", expected %" PRId64, id, epoch,
                         want_epoch);
    if (retry && m->recs.n)
        return violation(m, "idempotent registration wrote %zu records", m->recs.n);
    if (!commit(m))
        return false;
    p->epoch = epoch;
    p->last_hb = m->now;
    assert_int_equal(csession_touch(m->sess, id, epoch, m->now), 0);
    return true;
}

/* The session of @id ended (expiry or clean exit): fence it. */
static bool do_fence(struct sim *m, int32_t id, int64_t epoch, const char *why)
{
    assert_int_equal(cctl_fence_broker(m->s, &m->ctx, id, epoch, &m->recs, &m->err), 0);
    say(m, "  fence %d (%s): %d %s\n", id, why, m->err.code, m->err.message);
    if (!expect_code(m, KERR_NONE) || !commit(m))
        return false;
    csession_remove(m->sess, id);
    const struct cstate_broker *b = cstate_broker(m->s, id);
    if (!b || b->state != CSTATE_BROKER_FENCED)
        return violation(m, "broker %d not fenced after its fence", id);
    return true;
}

/* Fencing as the coordinator's session timer does it (session.h): at most one
 * broker per session timeout unless clearly dead, and a silent broker's session
 * never outlives three session timeouts (timeout + grace + one interval). */
static bool expire_sessions(struct sim *m)
{
    int32_t id;
    int64_t epoch;
    enum csession_fence_reason why;
    while (csession_next_fence(m->sess, m->now, &id, &epoch, &why)) {
        if (why == CSESSION_EXPIRED && m->last_fence_ms != INT64_MIN &&
            m->now - m->last_fence_ms < SESSION_MS)
            return violation(m, "broker %d fenced %" PRId64 " ms after the last fence", id,
                             m->now - m->last_fence_ms);
        if (!do_fence(m, id, epoch, why == CSESSION_DEAD ? "session dead" : "session expired"))
            return false;
        csession_fenced(m->sess, id, m->now);
        m->last_fence_ms = m->now;
    }
    for (int32_t b = 0; b < m->n_brokers; b++)
        if (csession_has(m->sess, b, NULL) && m->now - m->procs[b].last_hb > 3 * SESSION_MS + 1)
            return violation(m, "broker %d silent for %" PRId64 " ms still has a session", b,
                             m->now - m->procs[b].last_hb);
    return true;
}

static bool heartbeat(struct sim *m, int32_t id)
{
    struct proc *p = &m->procs[id];
    const struct cstate_broker *b = cstate_broker(m->s, id);
    int16_t want = !b ? KERR_BROKER_ID_NOT_REGISTERED
                   : (b->epoch != p->epoch || b->state == CSTATE_BROKER_FENCED)
                       ? KERR_STALE_BROKER_EPOCH
                       : KERR_NONE;
    assert_int_equal(cctl_check_broker_epoch(m->s, id, p->epoch, &m->err), 0);
    if (!expect_code(m, want))
        return false;
    if (m->err.code) {
        say(m, "  heartbeat %d epoch %" PRId64 " refused: %s\n", id, p->epoch, m->err.message);
        p->epoch = -1; /* it learns that its session is over and registers again */
        return true;
    }
    assert_int_equal(csession_touch(m->sess, id, p->epoch, m->now), 0);
    csession_acked(m->sess, id, (int64_t)m->n_log - 1); /* it applied everything */
    p->last_hb = m->now;
    return true;
}

static bool leaders_follow_replicas(struct sim *m);

static bool ev_tick(struct sim *m, bool stall)
{
    int64_t dt = stall ? SESSION_MS + below(&m->rng, SESSION_MS) : 100 + below(&m->rng, 4000);
    m->now += dt;
    say(m, "  clock +%" PRId64 " -> %" PRId64 "%s\n", dt, m->now, stall ? " (stall)" : "");
    for (int32_t id = 0; id < m->n_brokers && !stall; id++) {
        struct proc *p = &m->procs[id];
        if (!p->running || p->paused || !chance(&m->rng, 90))
            continue;
        if (p->epoch < 0) {
            if (!do_register(m, id, false))
                return false;
        } else if (!heartbeat(m, id)) {
            return false;
        }
    }
    if (!stall && !leaders_follow_replicas(m))
        return false;
    return expire_sessions(m);
}

static bool ev_start(struct sim *m)
{
    /* Prefer a broker that is down: operators restart what stopped. */
    int32_t down[MAX_BROKERS], n_down = 0;
    for (int32_t id = 0; id < m->n_brokers; id++)
        if (!m->procs[id].running)
            down[n_down++] = id;
    if (n_down && chance(&m->rng, 80))
        return do_register(m, down[below(&m->rng, (uint32_t)n_down)], true);
    int32_t id = (int32_t)below(&m->rng, (uint32_t)m->n_brokers);
    struct proc *p = &m->procs[id];
    if (!p->running)
        return do_register(m, id, true);
    if (p->paused)
        return true;
    /* A retry by a running broker: idempotent, or a registration after its
     * session ended. */
    return do_register(m, id, false);
}

static bool ev_crash(struct sim *m)
{
    int32_t id = (int32_t)below(&m->rng, (uint32_t)m->n_brokers);
    struct proc *p = &m->procs[id];
    if (!p->running)
        return true;
    say(m, "  crash %d\n", id);
    p->running = false;
    /* A quick restart often follows: a new incarnation while the old session
     * is still live must be refused (then retried on later ticks). */
    if (chance(&m->rng, 50))
        return do_register(m, id, true);
    return true;
}

static int16_t expect_alter(const struct sim *m, const struct cctl_alter_partition_req *r)
{
    const struct cstate_broker *b = cstate_broker(m->s, r->broker_id);
    if (!b)
        return KERR_BROKER_ID_NOT_REGISTERED;
    if (b->epoch != r->broker_epoch || b->state == CSTATE_BROKER_FENCED)
        return KERR_STALE_BROKER_EPOCH;
    const struct cstate_topic *t = cstate_topic_by_id(m->s, r->topic_id);
    if (!t)
        return KERR_UNKNOWN_TOPIC_ID;
    if (r->partition < 0 || r->partition >= t->n_parts)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    const struct cstate_partition *p = &t->parts[r->partition];
    if (r->leader_epoch != p->leader_epoch)
        return KERR_FENCED_LEADER_EPOCH;
    if (r->broker_id != p->leader)
        return KERR_NOT_LEADER_OR_FOLLOWER;
    if (r->partition_epoch != p->partition_epoch)
        return KERR_INVALID_UPDATE_VERSION;
    bool has_leader = false;
    for (size_t i = 0; i < r->n_isr; i++) {
        if (!cstate_part_is_replica(p, r->isr[i]))
            return KERR_INVALID_REQUEST;
        for (size_t j = 0; j < i; j++)
            if (r->isr[i] == r->isr[j])
                return KERR_INVALID_REQUEST;
        has_leader = has_leader || r->isr[i] == p->leader;
    }
    if (!r->n_isr || !has_leader)
        return KERR_INVALID_REQUEST;
    for (size_t i = 0; i < r->n_isr; i++)
        if (!cstate_part_in_isr(p, r->isr[i]) && !cstate_broker_eligible(m->s, r->isr[i]))
            return KERR_INELIGIBLE_REPLICA;
    return KERR_NONE;
}

/* What the service does after a written ISR change: complete the move of the
 * partition when it can, checked against can_complete() and the result. */
static bool reassign_complete(struct sim *m, const uint8_t *topic, int32_t idx)
{
    const struct cstate_topic *t = cstate_topic_by_id(m->s, topic);
    const struct cstate_partition *p = &t->parts[idx];
    bool should = can_complete(m->s, p);
    int32_t tgt[CSTATE_MAX_REPLICAS];
    size_t n_tgt = target_of(p, tgt);
    int32_t le0 = p->leader_epoch, leader0 = p->leader;
    assert_int_equal(cctl_reassign_maybe_complete(m->s, &m->ctx, topic, idx, &m->recs), 0);
    if (m->recs.n != (should ? 1u : 0u))
        return violation(m, "move completion wrote %zu records, expected %d", m->recs.n, should);
    say(m, "  move completion: %zu\n", m->recs.n);
    m->stats_completions += m->recs.n;
    if (!commit(m))
        return false;
    if (!should)
        return true;
    t = cstate_topic_by_id(m->s, topic);
    p = &t->parts[idx];
    if (p->n_adding || p->n_removing || p->n_replicas != n_tgt ||
        memcmp(cstate_part_replicas(p), tgt, n_tgt * sizeof(int32_t)))
        return violation(m, "completed move is not the target");
    if (p->leader_epoch != le0 + (p->leader != leader0))
        return violation(m, "completion: leader %d->%d with leader epoch %d->%d", leader0,
                         p->leader, le0, p->leader_epoch);
    return true;
}

static bool send_alter(struct sim *m, struct cctl_alter_partition_req *req, const char *kind)
{
    int16_t want = expect_alter(m, req);
    const struct cstate_topic *t = cstate_topic_by_id(m->s, req->topic_id);
    const struct cstate_partition *before =
        t && req->partition >= 0 && req->partition < t->n_parts ? &t->parts[req->partition] : NULL;
    int32_t le0 = before ? before->leader_epoch : 0, pe0 = before ? before->partition_epoch : 0;
    int32_t leader0 = before ? before->leader : -1;
    assert_int_equal(cctl_alter_partition(m->s, &m->ctx, req, &m->recs, &m->err), 0);
    say(m, "  alter %s by %d le %d pe %d isr %zu: %d %s\n", kind, req->broker_id, req->leader_epoch,
        req->partition_epoch, req->n_isr, m->err.code, m->err.message);
    if (!expect_code(m, want))
        return false;
    if (want)
        return true;
    size_t n = m->recs.n;
    if (!commit(m))
        return false;
    if (!n)
        return true;
    /* Accepted and changed: the partition epoch moved by one; the ISR is the
     * requested one unless a shutting-down leader handed over. */
    t = cstate_topic_by_id(m->s, req->topic_id);
    const struct cstate_partition *p = &t->parts[req->partition];
    if (p->partition_epoch != pe0 + 1)
        return violation(m, "ISR change moved the partition epoch from %d to %d", pe0,
                         p->partition_epoch);
    if (p->leader == leader0) {
        if (p->leader_epoch != le0 || p->n_isr != req->n_isr)
            return violation(m, "ISR change gave %u members, le %d (asked %zu, le %d)", p->n_isr,
                             p->leader_epoch, req->n_isr, le0);
        for (size_t i = 0; i < req->n_isr; i++)
            if (!cstate_part_in_isr(p, req->isr[i]))
                return violation(m, "ISR change lost member %d", req->isr[i]);
    } else {
        const struct cstate_broker *b = cstate_broker(m->s, leader0);
        if (!b || b->state != CSTATE_BROKER_CONTROLLED_SHUTDOWN || p->leader_epoch != le0 + 1)
            return violation(m, "ISR change moved leadership from %d to %d", leader0, p->leader);
    }
    if (!reassign_complete(m, req->topic_id, req->partition))
        return false;
    if (m->n_views < N_VIEWS)
        m->n_views++;
    struct view *v = &m->views[below(&m->rng, (uint32_t)m->n_views)];
    *v = (struct view){req->broker_id, req->broker_epoch};
    memcpy(v->topic, req->topic_id, 16);
    v->partition = req->partition;
    v->leader_epoch = req->leader_epoch;
    v->partition_epoch = req->partition_epoch;
    return true;
}

/* A random partition; NULL when there are none. */
static const struct cstate_topic *pick_partition(struct sim *m, int32_t *ret_i)
{
    if (!m->s->n_partitions)
        return NULL;
    uint64_t k = below(&m->rng, (uint32_t)m->s->n_partitions);
    for (const struct cstate_topic *t = m->s->first_topic; t; t = t->next) {
        if (k < (uint64_t)t->n_parts) {
            *ret_i = (int32_t)k;
            return t;
        }
        k -= (uint64_t)t->n_parts;
    }
    return NULL;
}

/* A leader shrinks or grows its ISR with what it currently knows. */
static bool ev_isr_change(struct sim *m)
{
    int32_t i;
    const struct cstate_topic *t = pick_partition(m, &i);
    if (!t)
        return true;
    const struct cstate_partition *p = &t->parts[i];
    if (p->leader < 0)
        return true;
    struct proc *pr = &m->procs[p->leader];
    if (!pr->running || pr->paused || pr->epoch < 0)
        return true;
    int32_t isr[CSTATE_MAX_REPLICAS];
    size_t n = p->n_isr;
    memcpy(isr, cstate_part_isr(p), n * sizeof(int32_t));
    const int32_t *rep = cstate_part_replicas(p);
    /* Followers usually catch up: grow when some replica is missing, else
     * (or sometimes anyway) drop a follower that fell behind. */
    int32_t missing[CSTATE_MAX_REPLICAS];
    size_t n_missing = 0;
    for (uint8_t k = 0; k < p->n_replicas; k++)
        if (!cstate_part_in_isr(p, rep[k]))
            missing[n_missing++] = rep[k];
    if (n > 1 && (!n_missing || chance(&m->rng, 25))) {
        size_t k = below(&m->rng, (uint32_t)n);
        if (isr[k] == p->leader)
            k = (k + 1) % n;
        isr[k] = isr[--n];
    } else if (n_missing) {
        isr[n++] = missing[below(&m->rng, (uint32_t)n_missing)];
        if (chance(&m->rng, 5))
            isr[n++] = 40 + (int32_t)below(&m->rng, 3); /* not a replica */
    }
    struct cctl_alter_partition_req req = {
        .broker_id = p->leader,
        .broker_epoch = pr->epoch,
        .topic_id = t->id,
        .partition = i,
        .leader_epoch = p->leader_epoch,
        .partition_epoch = p->partition_epoch,
        .isr = isr,
        .n_isr = n,
    };
    return send_alter(m, &req, "fresh");
}

/* Over a tick, leaders notice followers: a live one that has caught up joins
 * the ISR, one that is down or paused falls out of it. */
/* What the service does after an ISR change that added a partition's preferred
 * replica: move leadership to it at once when it is eligible. */
static bool preferred_return(struct sim *m, const uint8_t *topic, int32_t idx)
{
    const struct cstate_topic *t = cstate_topic_by_id(m->s, topic);
    const struct cstate_partition *p = &t->parts[idx];
    int32_t pref = sim_pref(p);
    int32_t le0 = p->leader_epoch, pe0 = p->partition_epoch, leader0 = p->leader;
    size_t n_isr0 = p->n_isr;
    bool should = leader0 >= 0 && leader0 != pref && cstate_broker_eligible(m->s, pref) &&
                  cstate_part_in_isr(p, pref);
    assert_int_equal(cctl_preferred_leader_return(m->s, &m->ctx, topic, idx, &m->recs), 0);
    say(m, "  preferred return to %d: %zu changes\n", pref, m->recs.n);
    if (m->recs.n != (should ? 1u : 0u))
        return violation(m, "preferred return to %d wrote %zu records, expected %d", pref,
                         m->recs.n, should);
    if (!commit(m))
        return false;
    t = cstate_topic_by_id(m->s, topic);
    p = &t->parts[idx];
    if (should && (p->leader != pref || p->leader_epoch != le0 + 1 ||
                   p->partition_epoch != pe0 + 1 || p->n_isr != n_isr0))
        return violation(m, "preferred return gave leader %d le %d pe %d isr %u", p->leader,
                         p->leader_epoch, p->partition_epoch, p->n_isr);
    return true;
}

static bool leaders_follow_replicas(struct sim *m)
{
    struct want {
        uint8_t topic[CSTATE_UUID_LEN];
        int32_t partition, leader, le, pe;
        int32_t isr[CSTATE_MAX_REPLICAS];
        size_t n;
    } *w = calloc(64, sizeof(*w));
    assert_non_null(w);
    size_t n_w = 0;
    for (const struct cstate_topic *t = m->s->first_topic; t && n_w < 64; t = t->next) {
        for (int32_t i = 0; i < t->n_parts && n_w < 64; i++) {
            const struct cstate_partition *p = &t->parts[i];
            if (p->leader < 0)
                continue;
            const struct proc *lp = &m->procs[p->leader];
            if (!lp->running || lp->paused || lp->epoch < 0 || !chance(&m->rng, 40))
                continue;
            struct want *x = &w[n_w];
            x->n = 0;
            for (uint8_t k = 0; k < p->n_replicas; k++) {
                int32_t r = cstate_part_replicas(p)[k];
                const struct proc *rp = &m->procs[r];
                bool healthy = r == p->leader || (rp->running && !rp->paused && rp->epoch >= 0);
                if (healthy && (cstate_part_in_isr(p, r) || cstate_broker_eligible(m->s, r)))
                    x->isr[x->n++] = r;
            }
            bool same = x->n == p->n_isr;
            for (size_t k = 0; k < x->n && same; k++)
                same = cstate_part_in_isr(p, x->isr[k]);
            if (same)
                continue;
            memcpy(x->topic, t->id, 16);
            x->partition = i;
            x->leader = p->leader;
            x->le = p->leader_epoch;
            x->pe = p->partition_epoch;
            n_w++;
        }
    }
    bool good = true;
    for (size_t k = 0; k < n_w && good; k++) {
        struct cctl_alter_partition_req req = {
            .broker_id = w[k].leader,
            .broker_epoch = m->procs[w[k].leader].epoch,
            .topic_id = w[k].topic,
            .partition = w[k].partition,
            .leader_epoch = w[k].le,
            .partition_epoch = w[k].pe,
            .isr = w[k].isr,
            .n_isr = w[k].n,
        };
        const struct cstate_topic *t = cstate_topic_by_id(m->s, w[k].topic);
        int32_t pref = sim_pref(&t->parts[w[k].partition]);
        bool had = cstate_part_in_isr(&t->parts[w[k].partition], pref);
        good = send_alter(m, &req, "follow");
        t = cstate_topic_by_id(m->s, w[k].topic);
        /* Half the time as with auto.leader.rebalance.enable, so the periodic
         * rebalance still finds work. */
        if (good && !had && cstate_part_in_isr(&t->parts[w[k].partition], pref) &&
            chance(&m->rng, 50))
            good = preferred_return(m, w[k].topic, w[k].partition);
    }
    free(w);
    return good;
}

/* A request from the past: a broker that lost leadership, an old partition
 * epoch, a zombie's broker epoch. */
static bool ev_stale_isr_change(struct sim *m)
{
    /* Half the time: a request made against the current partition by a
     * follower (NOT_LEADER_OR_FOLLOWER) or by the leader with an old partition
     * epoch or a leader epoch it cannot have. */
    int32_t i;
    const struct cstate_topic *t0 = chance(&m->rng, 50) ? pick_partition(m, &i) : NULL;
    if (t0) {
        const struct cstate_partition *p = &t0->parts[i];
        int32_t isr[CSTATE_MAX_REPLICAS];
        memcpy(isr, cstate_part_isr(p), p->n_isr * sizeof(int32_t));
        int32_t who = cstate_part_replicas(p)[below(&m->rng, p->n_replicas)];
        struct cctl_alter_partition_req req = {
            .broker_id = who,
            .broker_epoch = m->procs[who].epoch,
            .topic_id = t0->id,
            .partition = i,
            .leader_epoch = p->leader_epoch,
            .partition_epoch = p->partition_epoch,
            .isr = isr,
            .n_isr = p->n_isr,
        };
        if (who == p->leader) {
            if (p->partition_epoch > 0 && chance(&m->rng, 70))
                req.partition_epoch -= (int32_t)(1 + below(&m->rng, (uint32_t)p->partition_epoch));
            else
                req.leader_epoch++;
        }
        return send_alter(m, &req, "wrong");
    }
    if (!m->n_views)
        return true;
    const struct view *v = &m->views[below(&m->rng, (uint32_t)m->n_views)];
    const struct cstate_topic *t = cstate_topic_by_id(m->s, v->topic);
    int32_t isr[2] = {v->broker, 0};
    size_t n = 1;
    if (t && v->partition < t->n_parts) {
        const struct cstate_partition *p = &t->parts[v->partition];
        for (uint8_t k = 0; k < p->n_replicas && n < 2; k++)
            if (cstate_part_replicas(p)[k] != v->broker && chance(&m->rng, 50))
                isr[n++] = cstate_part_replicas(p)[k];
    }
    struct cctl_alter_partition_req req = {
        .broker_id = v->broker,
        .broker_epoch = chance(&m->rng, 50) ? v->broker_epoch : m->procs[v->broker].epoch,
        .topic_id = v->topic,
        .partition = v->partition,
        .leader_epoch = v->leader_epoch,
        .partition_epoch = v->partition_epoch,
        .isr = isr,
        .n_isr = n,
    };
    return send_alter(m, &req, "stale");
}

static bool ev_pause(struct sim *m)
{
    /* Pauses end more often than they start, so most are short. */
    int32_t paused[MAX_BROKERS], n_paused = 0;
    for (int32_t i = 0; i < m->n_brokers; i++)
        if (m->procs[i].running && m->procs[i].paused)
            paused[n_paused++] = i;
    int32_t id = n_paused && chance(&m->rng, 70) ? paused[below(&m->rng, (uint32_t)n_paused)]
                                                 : (int32_t)below(&m->rng, (uint32_t)m->n_brokers);
    struct proc *p = &m->procs[id];
    if (!p->running)
        return true;
    if (!p->paused) {
        say(m, "  pause %d\n", id);
        p->paused = true;
        return true;
    }
    /* It wakes up and carries on with the epoch it had: if its session ended
     * meanwhile, it is a zombie and everything it sends must be refused. */
    say(m, "  resume %d (epoch %" PRId64 ")\n", id, p->epoch);
    p->paused = false;
    const struct cstate_broker *b = cstate_broker(m->s, id);
    bool zombie = p->epoch >= 0 && b && (b->epoch != p->epoch || b->state == CSTATE_BROKER_FENCED);
    for (size_t k = 0; k < m->n_views && p->epoch >= 0; k++) {
        if (m->views[k].broker != id)
            continue;
        struct view v = m->views[k];
        int32_t isr[1] = {id};
        struct cctl_alter_partition_req req = {
            .broker_id = id,
            .broker_epoch = p->epoch,
            .topic_id = v.topic,
            .partition = v.partition,
            .leader_epoch = v.leader_epoch,
            .partition_epoch = v.partition_epoch,
            .isr = isr,
            .n_isr = 1,
        };
        if (!send_alter(m, &req, "after pause"))
            return false;
        if (zombie && m->err.code != KERR_STALE_BROKER_EPOCH)
            return violation(m, "zombie %d's ISR change got %d", id, m->err.code);
        break;
    }
    return p->epoch < 0 || heartbeat(m, id);
}

static bool ev_controlled_shutdown(struct sim *m)
{
    int32_t id = (int32_t)below(&m->rng, (uint32_t)m->n_brokers);
    struct proc *p = &m->procs[id];
    if (!p->running || p->paused || p->epoch < 0)
        return true;
    int32_t remaining = -1;
    const struct cstate_broker *b = cstate_broker(m->s, id);
    int16_t want = !b ? KERR_BROKER_ID_NOT_REGISTERED
                   : b->epoch == p->epoch && b->state != CSTATE_BROKER_FENCED
                       ? KERR_NONE
                       : KERR_STALE_BROKER_EPOCH;
    assert_int_equal(
        cctl_controlled_shutdown(m->s, &m->ctx, id, p->epoch, &m->recs, &remaining, &m->err), 0);
    say(m, "  controlled shutdown %d: %d remaining %d\n", id, m->err.code, remaining);
    if (!expect_code(m, want))
        return false;
    if (want) {
        p->epoch = -1;
        return true;
    }
    if (!commit(m))
        return false;
    int32_t leads = 0;
    for (const struct cstate_topic *t = m->s->first_topic; t; t = t->next)
        for (int32_t i = 0; i < t->n_parts; i++)
            leads += t->parts[i].leader == id;
    if (leads != remaining)
        return violation(m, "controlled shutdown of %d reported %d remaining, leads %d", id,
                         remaining, leads);
    if (cstate_broker(m->s, id)->state != CSTATE_BROKER_CONTROLLED_SHUTDOWN)
        return violation(m, "broker %d not shutting down", id);
    if (remaining == 0) {
        /* Done: it exits and ends its session. */
        p->running = false;
        return do_fence(m, id, p->epoch, "clean exit");
    }
    return true;
}

static bool ev_unregister(struct sim *m)
{
    int32_t id = (int32_t)below(&m->rng, (uint32_t)m->n_brokers);
    const struct cstate_broker *b = cstate_broker(m->s, id);
    int16_t want = !b                                 ? KERR_BROKER_ID_NOT_REGISTERED
                   : b->state != CSTATE_BROKER_FENCED ? KERR_INVALID_REQUEST
                                                      : KERR_NONE;
    assert_int_equal(cctl_unregister_broker(m->s, &m->ctx, id, &m->recs, &m->err), 0);
    say(m, "  unregister %d: %d\n", id, m->err.code);
    if (!expect_code(m, want))
        return false;
    if (!want) {
        m->broker_epoch[id] = 0;
        return commit(m);
    }
    return true;
}

/* ---- events: topics ----------------------------------------------------------------------- */

static const char *topic_name(struct sim *m)
{
    static const char *names[N_NAMES] = {"orders", "t1", "t.2", "t_3", "logs-4", "x"};
    static const char *bad[] = {"", "..", "bad name", "caf\xc3\xa9"};
    if (chance(&m->rng, 3))
        return bad[below(&m->rng, 4)];
    return names[below(&m->rng, N_NAMES)];
}

static bool ev_create_topic(struct sim *m)
{
    const char *name = topic_name(m);
    int32_t n = (int32_t)below(&m->rng, 5); /* 0 is invalid */
    static const int32_t rfs[] = {1, 2, 2, 2, 3, 3, 3, 3, 4};
    int32_t rf = rfs[below(&m->rng, sizeof(rfs) / sizeof(rfs[0]))];
    struct cctl_kv cfg[2];
    size_t n_cfg = 0;
    bool bad_cfg = false;
    if (chance(&m->rng, 30))
        cfg[n_cfg++] = (struct cctl_kv){"unclean.leader.election.enable",
                                        chance(&m->rng, 50) ? "true" : "false"};
    if (chance(&m->rng, 5)) {
        cfg[n_cfg++] = (struct cctl_kv){"retention.ms", "forever"};
        bad_cfg = true;
    }
    /* Sometimes a manual assignment over any registered broker. */
    int32_t manual[MAX_PARTS][MAX_BROKERS];
    struct cctl_assignment a[MAX_PARTS];
    bool use_manual = n > 0 && chance(&m->rng, 20) && (size_t)rf <= m->s->n_brokers;
    int16_t manual_err = KERR_NONE;
    if (use_manual) {
        for (int32_t i = 0; i < n; i++) {
            bool live = false;
            uint32_t off = below(&m->rng, (uint32_t)m->s->n_brokers);
            for (int32_t j = 0; j < rf; j++) {
                manual[i][j] = m->s->brokers[(off + (uint32_t)j) % m->s->n_brokers].id;
                live = live || cstate_broker_eligible(m->s, manual[i][j]);
            }
            if (!live)
                manual_err = KERR_INVALID_REPLICA_ASSIGNMENT;
            a[i] = (struct cctl_assignment){manual[i], (size_t)rf};
        }
    }
    struct cctl_create_topic_req req = {
        .name = name,
        .num_partitions = use_manual ? -1 : n,
        .replication_factor = use_manual ? -1 : rf,
        .assignments = use_manual ? a : NULL,
        .n_assignments = use_manual ? (size_t)n : 0,
        .configs = cfg,
        .n_configs = n_cfg,
    };
    int16_t want = !cstate_topic_name_valid(name)      ? KERR_INVALID_TOPIC_EXCEPTION
                   : cstate_topic_by_name(m->s, name)  ? KERR_TOPIC_ALREADY_EXISTS
                   : bad_cfg                           ? KERR_INVALID_CONFIG
                   : use_manual                        ? manual_err
                   : n < 1                             ? KERR_INVALID_PARTITIONS
                   : (size_t)rf > eligible_count(m->s) ? KERR_INVALID_REPLICATION_FACTOR
                                                       : KERR_NONE;
    assert_int_equal(cctl_create_topic(m->s, &m->ctx, &req, &m->recs, NULL, &m->err), 0);
    say(m, "  create %s n=%d rf=%d%s: %d %s\n", name, n, rf, use_manual ? " manual" : "",
        m->err.code, m->err.message);
    if (!expect_code(m, want))
        return false;
    return want ? true : commit(m);
}

static bool ev_delete_topic(struct sim *m)
{
    const char *name = topic_name(m);
    int16_t want = cstate_topic_by_name(m->s, name) ? KERR_NONE : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    assert_int_equal(cctl_delete_topic(m->s, &m->ctx, name, &m->recs, &m->err), 0);
    say(m, "  delete %s: %d\n", name, m->err.code);
    if (!expect_code(m, want))
        return false;
    return want ? true : commit(m);
}

static bool ev_add_partitions(struct sim *m)
{
    const char *name = topic_name(m);
    const struct cstate_topic *t = cstate_topic_by_name(m->s, name);
    int32_t cur = t ? t->n_parts : 0;
    int32_t total = cur - 1 + (int32_t)below(&m->rng, 4);
    if (total > MAX_PARTS)
        total = cur + 1 > MAX_PARTS ? cur : MAX_PARTS;
    int16_t want = !t             ? KERR_UNKNOWN_TOPIC_OR_PARTITION
                   : total <= cur ? KERR_INVALID_PARTITIONS
                   : (size_t)t->parts[0].n_replicas > eligible_count(m->s)
                       ? KERR_INVALID_REPLICATION_FACTOR
                       : KERR_NONE;
    struct cctl_create_partitions_req req = {.name = name, .total_count = total};
    assert_int_equal(cctl_create_partitions(m->s, &m->ctx, &req, &m->recs, &m->err), 0);
    say(m, "  add partitions %s %d -> %d: %d %s\n", name, cur, total, m->err.code, m->err.message);
    if (!expect_code(m, want))
        return false;
    return want ? true : commit(m);
}

static bool ev_alter_config(struct sim *m)
{
    const char *name = topic_name(m);
    static const char *values[] = {"true", "false", NULL};
    struct cctl_kv op = {"unclean.leader.election.enable", values[below(&m->rng, 3)]};
    if (chance(&m->rng, 20))
        op = (struct cctl_kv){"retention.ms", chance(&m->rng, 50) ? "60000" : "never"};
    bool bad = op.value && !strcmp(op.value, "never");
    int16_t want = !cstate_topic_by_name(m->s, name) ? KERR_UNKNOWN_TOPIC_OR_PARTITION
                   : bad                             ? KERR_INVALID_CONFIG
                                                     : KERR_NONE;
    assert_int_equal(cctl_alter_topic_config(m->s, &m->ctx, name, &op, 1, &m->recs, &m->err), 0);
    say(m, "  alter config %s %s=%s: %d\n", name, op.name, op.value ? op.value : "(remove)",
        m->err.code);
    if (!expect_code(m, want))
        return false;
    return want ? true : commit(m);
}

static bool ev_preferred(struct sim *m)
{
    static const int32_t pcts[] = {0, 10, 50};
    struct cctl_rebalance_opts o = {.imbalance_pct = pcts[below(&m->rng, 3)], .broker_id = -1};
    /* The same timer first finishes moves that became possible since the
     * last ISR change (a target replica able to lead registered again). */
    assert_int_equal(cctl_reassign_complete_all(m->s, &m->ctx, &m->recs), 0);
    say(m, "  complete moves: %zu\n", m->recs.n);
    if (!commit(m))
        return false;
    for (const struct cstate_topic *t = m->s->first_topic; t; t = t->next)
        for (int32_t i = 0; i < t->n_parts; i++)
            if (can_complete(m->s, &t->parts[i]))
                return violation(m, "%s-%d: move left unfinished", t->name, i);
    assert_int_equal(cctl_preferred_leaders(m->s, &m->ctx, &o, &m->recs), 0);
    say(m, "  preferred leaders (%d%%): %zu changes\n", o.imbalance_pct, m->recs.n);
    if (!commit(m))
        return false;
    if (o.imbalance_pct == 0) {
        /* Afterwards every partition whose preferred leader could lead does. */
        for (const struct cstate_topic *t = m->s->first_topic; t; t = t->next) {
            for (int32_t i = 0; i < t->n_parts; i++) {
                const struct cstate_partition *p = &t->parts[i];
                int32_t want = sim_pref(p);
                if (p->leader != want && cstate_broker_eligible(m->s, want) &&
                    cstate_part_in_isr(p, want))
                    return violation(m, "%s-%d: preferred leader %d not restored", t->name, i,
                                     want);
            }
        }
    }
    return true;
}

static bool ev_elect_offline(struct sim *m)
{
    assert_int_equal(cctl_elect_offline(m->s, &m->ctx, &m->recs), 0);
    /* Elections happen as soon as they can, so there is never anything left. */
    if (m->recs.n)
        return violation(m, "%zu offline partitions could have been elected earlier", m->recs.n);
    return true;
}

/* An operator moves a partition (or cancels its move): random targets over the
 * brokers, now and then a duplicate, an unknown broker or an empty list. */
static bool ev_reassign(struct sim *m)
{
    int32_t idx;
    const struct cstate_topic *t = pick_partition(m, &idx);
    if (!t)
        return true;
    uint8_t topic[CSTATE_UUID_LEN];
    memcpy(topic, t->id, sizeof(topic));
    const struct cstate_partition *p = &t->parts[idx];
    bool moving = p->n_adding || p->n_removing;
    int32_t orig[CSTATE_MAX_REPLICAS], target[CSTATE_MAX_REPLICAS + 2];
    size_t n_orig = 0, n_target = 0;
    for (uint8_t k = 0; k < p->n_replicas; k++)
        if (!ids_have(cstate_part_adding(p), p->n_adding, cstate_part_replicas(p)[k]))
            orig[n_orig++] = cstate_part_replicas(p)[k];
    int32_t le0 = p->leader_epoch, pe0 = p->partition_epoch, leader0 = p->leader;
    bool cancel = chance(&m->rng, 25);
    int16_t want = KERR_NONE;
    if (cancel) {
        if (!moving)
            want = KERR_NO_REASSIGNMENT_IN_PROGRESS;
        memcpy(target, orig, n_orig * sizeof(int32_t));
        n_target = n_orig;
    } else {
        uint32_t r = below(&m->rng, 100);
        size_t n = 1 + below(&m->rng, (uint32_t)(m->n_brokers < 4 ? m->n_brokers : 4));
        while (n_target < n) {
            int32_t b = (int32_t)below(&m->rng, (uint32_t)m->n_brokers);
            if (!ids_have(target, n_target, b))
                target[n_target++] = b;
        }
        if (r < 4)
            n_target = 0;
        else if (r < 8)
            target[n_target++] = target[0];
        else if (r < 12)
            target[n_target++] = 40 + (int32_t)below(&m->rng, 3);
        bool bad = n_target == 0;
        for (size_t k = 0; k < n_target; k++)
            bad = bad || ids_have(target, k, target[k]) || !cstate_broker(m->s, target[k]);
        if (bad)
            want = KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    if (want == KERR_NONE) {
        /* The ISR within the new replica set must keep someone who can lead. */
        size_t n_in = 0;
        bool can_lead = false;
        for (uint8_t k = 0; k < p->n_isr; k++) {
            int32_t b = cstate_part_isr(p)[k];
            if (!ids_have(orig, n_orig, b) && !ids_have(target, n_target, b))
                continue;
            n_in++;
            const struct cstate_broker *br = cstate_broker(m->s, b);
            can_lead = can_lead || cstate_broker_eligible(m->s, b) ||
                       (b == leader0 && br && br->state != CSTATE_BROKER_FENCED);
        }
        if (n_in == 0 || (leader0 >= 0 && !can_lead))
            want = KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    struct cctl_reassign_req req = {t->name, idx, cancel ? NULL : target, cancel ? 0 : n_target};
    if (!cancel && n_target == 0)
        req.replicas = target; /* an empty list, not a cancel */
    assert_int_equal(cctl_reassign(m->s, &m->ctx, &req, &m->recs, &m->err), 0);
    say(m, "  reassign %s-%d to %zu replicas%s: %d %s\n", t->name, idx, n_target,
        cancel ? " (cancel)" : "", m->err.code, m->err.message);
    if (!expect_code(m, want))
        return false;
    if (want)
        return true;
    size_t n = m->recs.n;
    if (!commit(m))
        return false;
    t = cstate_topic_by_id(m->s, topic);
    p = &t->parts[idx];
    if (n == 0)
        return true; /* already so */
    if (cancel)
        m->stats_cancels++;
    else
        m->stats_moves++;
    if (p->partition_epoch != pe0 + 1 || p->leader_epoch != le0 + (p->leader != leader0))
        return violation(m, "reassign: epochs le %d->%d pe %d->%d, leader %d->%d", le0,
                         p->leader_epoch, pe0, p->partition_epoch, leader0, p->leader);
    int32_t tgt[CSTATE_MAX_REPLICAS];
    size_t n_tgt = target_of(p, tgt);
    if (n_tgt != n_target || memcmp(tgt, target, n_target * sizeof(int32_t)))
        return violation(m, "reassign: the target order is not kept");
    if (cancel && (p->n_adding || p->n_removing || p->n_replicas != n_orig ||
                   memcmp(cstate_part_replicas(p), orig, n_orig * sizeof(int32_t))))
        return violation(m, "cancel did not restore the original replicas in order");
    if (p->n_adding || p->n_removing) {
        for (size_t k = 0; k < n_target; k++)
            if (ids_have(orig, n_orig, target[k]) !=
                !ids_have(cstate_part_adding(p), p->n_adding, target[k]))
                return violation(m, "reassign: adding list wrong for %d", target[k]);
        for (size_t k = 0; k < n_orig; k++)
            if (ids_have(target, n_target, orig[k]) ==
                ids_have(cstate_part_removing(p), p->n_removing, orig[k]))
                return violation(m, "reassign: removing list wrong for %d", orig[k]);
        if (can_complete(m->s, p))
            return violation(m, "reassign: a move that could complete was left open");
    }
    return true;
}

/* Whether partition @i of @t was seen by an earlier check. */
static bool seen_before(const struct sim *m, const struct cstate_topic *t, int32_t i)
{
    for (size_t k = 0; k < m->n_hist; k++)
        if (!memcmp(m->hist[k].id, t->id, 16))
            return i < m->hist[k].n;
    return false;
}

/* Break the state behind apply's back, to prove the checks notice. false when
 * there is nothing to break yet. */
static bool sabotage(struct sim *m)
{
    struct cstate_topic *t = (struct cstate_topic *)m->s->first_topic;
    switch (m->sabotage) {
    case SABOTAGE_EPOCH_DECREASE:
        for (; t; t = t->next)
            for (int32_t i = 0; i < t->n_parts; i++)
                if (t->parts[i].leader_epoch > 0 && seen_before(m, t, i)) {
                    t->parts[i].leader_epoch--;
                    return true;
                }
        return false;
    case SABOTAGE_DRIFT:
        m->s->cluster_id[0] ^= 1;
        return true;
    case SABOTAGE_FENCED_LEADER:
        for (; t; t = t->next)
            for (int32_t i = 0; i < t->n_parts; i++)
                if (t->parts[i].leader >= 0) {
                    struct cstate_broker *b =
                        (struct cstate_broker *)cstate_broker(m->s, t->parts[i].leader);
                    b->state = CSTATE_BROKER_FENCED;
                    return true;
                }
        return false;
    case SABOTAGE_DOUBLE_LEADER:
        for (; t; t = t->next)
            for (int32_t i = 0; i < t->n_parts; i++) {
                struct cstate_partition *p = &t->parts[i];
                const int32_t *isr = cstate_part_isr(p);
                for (uint8_t k = 0; k < p->n_isr && p->leader >= 0 && seen_before(m, t, i); k++)
                    if (isr[k] != p->leader) {
                        p->leader = isr[k];
                        return true;
                    }
            }
        return false;
    }
    return false;
}

/* ---- driver ------------------------------------------------------------------------------- */

static bool step(struct sim *m)
{
    uint32_t r = below(&m->rng, 100);
    if (r < 23)
        return ev_tick(m, false);
    if (r < 24)
        return ev_tick(m, true);
    if (r < 30)
        return ev_start(m);
    if (r < 34)
        return ev_crash(m);
    if (r < 39)
        return ev_pause(m);
    if (r < 49)
        return ev_create_topic(m);
    if (r < 53)
        return ev_delete_topic(m);
    if (r < 58)
        return ev_add_partitions(m);
    if (r < 70)
        return ev_isr_change(m);
    if (r < 74)
        return ev_reassign(m);
    if (r < 80)
        return ev_stale_isr_change(m);
    if (r < 85)
        return ev_controlled_shutdown(m);
    if (r < 89)
        return ev_preferred(m);
    if (r < 92)
        return ev_alter_config(m);
    if (r < 95)
        return restart(m);
    if (r < 96)
        return ev_unregister(m);
    if (r < 97)
        return ev_elect_offline(m);
    return take_snapshot(m);
}

static void sim_free(struct sim *m)
{
    for (size_t i = 0; i < m->n_log; i++)
        free(m->log[i].data);
    free(m->log);
    for (size_t i = 0; i < m->n_snaps; i++)
        free(m->snaps[i].data);
    cstate_records_deinit(&m->recs);
    csession_free(m->sess);
    cstate_free(m->s);
}

/* Run one seed; false with m->why on a violation. */
static bool sim_run(struct sim *m, uint64_t seed, int events, int sab, bool verbose)
{
    memset(m, 0, sizeof(*m));
    m->seed = seed;
    m->verbose = verbose;
    m->sabotage = sab;
    rng_seed(&m->rng, seed);
    cctl_config_defaults(&m->ctx.cfg);
    m->ctx.cfg.unclean_leader_election = chance(&m->rng, 20);
    m->ctx.rand = rng_u64;
    m->ctx.rand_arg = &m->rng;
    assert_int_equal(cstate_new(&m->s), 0);
    assert_int_equal(csession_new(SESSION_MS, &m->sess), 0);
    m->last_fence_ms = INT64_MIN;
    cstate_records_init(&m->recs);
    m->n_brokers = 3 + (int)below(&m->rng, MAX_BROKERS - 2);
    bool racks = chance(&m->rng, 40);
    static const char *rack_names[] = {"ra", "rb", "rc"};
    say(m, "seed %" PRIu64 ": %d brokers, racks %s, unclean default %s\n", seed, m->n_brokers,
        racks ? "yes" : "no", m->ctx.cfg.unclean_leader_election ? "on" : "off");

    snprintf(m->what, sizeof(m->what), "bootstrap");
    bool good = cctl_bootstrap(m->s, &m->ctx, NULL, &m->recs, &m->err) == 0 && commit(m);
    for (int32_t id = 0; good && id < m->n_brokers; id++) {
        m->procs[id].rack = racks ? rack_names[id % 3] : NULL;
        good = do_register(m, id, true);
    }
    good = good && check_invariants(m);
    for (m->event = 0; good && m->event < events; m->event++) {
        say(m, "#%d t=%" PRId64 "\n", m->event, m->now);
        snprintf(m->what, sizeof(m->what), "event %d", m->event);
        good = step(m);
        if (good && m->sabotage && m->event >= 150 && sabotage(m))
            m->sabotage = SABOTAGE_NONE; /* once */
        good = good && check_invariants(m);
        dump_state(m);
    }
    if (good) {
        snprintf(m->what, sizeof(m->what), "final replay");
        good = restart(m) && check_invariants(m);
    }
    if (!m->failed && !good)
        violation(m, "failed without a reason");
    return !m->failed;
}

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? def : n;
}

static void test_sim_random_seeds_hold_invariants(void **state)
{
    (void)state;
    long one = env_long("WEIR_SIM_SEED", -1);
    long seeds = env_long("WEIR_SIM_SEEDS", DEFAULT_SEEDS);
    long events = env_long("WEIR_SIM_EVENTS", DEFAULT_EVENT);
    int sab = (int)env_long("WEIR_SIM_SABOTAGE", SABOTAGE_NONE);
    long first = one >= 0 ? one : 1, last = one >= 0 ? one : seeds;
    size_t records = 0, restarts = 0, rejected = 0, codes[128] = {0};
    size_t parts = 0, multi = 0, offline = 0, moves = 0, cancels = 0, completions = 0;
    struct sim *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    for (long seed = first; seed <= last; seed++) {
        bool good = sim_run(m, (uint64_t)seed, (int)events, sab, one >= 0);
        records += m->stats_records;
        restarts += m->stats_restarts;
        rejected += m->stats_rejected;
        for (int c = 0; c < 128; c++)
            codes[c] += m->stats_codes[c];
        parts += m->stats_parts;
        multi += m->stats_multi_isr;
        offline += m->stats_offline;
        moves += m->stats_moves;
        cancels += m->stats_cancels;
        completions += m->stats_completions;
        if (!good) {
            fprintf(stderr, "seed %ld, %s (t=%" PRId64 "): %s\n", seed, m->what, m->now, m->why);
            fprintf(stderr, "replay with: WEIR_SIM_SEED=%ld %s\n", seed, prog);
            sim_free(m);
            free(m);
            fail_msg("simulation seed %ld failed", seed);
        }
        sim_free(m);
    }
    free(m);
    printf("sim: seeds %ld..%ld x %ld events: %zu records, %zu restarts, %zu refused requests:",
           first, last, events, records, restarts, rejected);
    for (int c = 0; c < 128; c++)
        if (codes[c])
            printf(" %d:%zu", c, codes[c]);
    printf("\nsim: partitions seen after events: %zu, %.0f%% with an ISR of 2+, %.0f%% offline\n",
           parts, parts ? 100.0 * (double)multi / (double)parts : 0.0,
           parts ? 100.0 * (double)offline / (double)parts : 0.0);
    printf("sim: reassignments: %zu started or changed, %zu cancelled, %zu completed\n", moves,
           cancels, completions);
}

/* The checks themselves are tested: each deliberate breakage must be found. */
static void test_sim_catches_deliberate_breakage(void **state)
{
    (void)state;
    static const struct {
        int kind;
        const char *expect, *also, *also2;
    } cases[] = {
        /* when the election that bumped the epoch happened in the same event,
         * lowering it looks like a leader change without a new epoch; when two
         * did (a stall fencing two brokers in turn), only a replay can tell */
        {SABOTAGE_EPOCH_DECREASE, "epochs went back", "in leader epoch", "replay"},
        {SABOTAGE_DRIFT, "replayed state differs", NULL, NULL},
        {SABOTAGE_FENCED_LEADER, "ineligible broker", "is fenced", NULL},
        /* when the epoch also moved in that event, only a replay can tell */
        {SABOTAGE_DOUBLE_LEADER, "in leader epoch", "replay", NULL},
    };
    struct sim *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        int caught = 0, tried = 0;
        for (uint64_t seed = 1; seed <= 20; seed++) {
            bool good = sim_run(m, seed, 220, cases[c].kind, false);
            tried++;
            if (!good) {
                caught++;
                if (!strstr(m->why, cases[c].expect) &&
                    !(cases[c].also && strstr(m->why, cases[c].also)) &&
                    !(cases[c].also2 && strstr(m->why, cases[c].also2)))
                    fail_msg("sabotage %d caught for another reason: %s", cases[c].kind, m->why);
            }
            sim_free(m);
        }
        /* A seed may have nothing to break at event 150 (no partition with a
         * leader yet); most must be caught. */
        if (caught * 4 < tried * 3)
            fail_msg("sabotage %d caught in only %d of %d seeds", cases[c].kind, caught, tried);
    }
    free(m);
}

int main(int argc, char **argv)
{
    if (argc > 0)
        prog = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_random_seeds_hold_invariants),
        cmocka_unit_test(test_sim_catches_deliberate_breakage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
