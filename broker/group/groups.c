/* groups: the classic consumer-group protocol's state machine, after Kafka's
 * GroupCoordinator / GroupMetadata. See groups.h and docs/consumer-groups.md. */
#include "broker/group/groups.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker/group/group_records.h"
#include "broker/group/gstore.h"
#include "common/arena.h"
#include "common/clock.h"
#include "common/kerr.h"
#include "common/log.h"

enum gstate { GS_EMPTY, GS_PREPARING, GS_COMPLETING, GS_STABLE, GS_DEAD };

static const char *const state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance",
                                          "Stable", "Dead"};

struct gproto {
    char *name;
    uint8_t *meta;
    int32_t meta_len;
};

struct gmember {
    struct gmember *next;
    char *id;
    char *instance_id; /* NULL: dynamic */
    char *client_id;
    char *client_host;
    int32_t session_ms;
    int32_t rebalance_ms;
    int32_t n_protocols;
    struct gproto *protocols;
    uint8_t *assignment;
    int32_t assignment_len;
    groups_join_fn join_cb; /* awaiting join */
    void *join_ud;
    groups_sync_fn sync_cb; /* awaiting sync */
    void *sync_ud;
    int64_t deadline;  /* session expiry */
    bool pending_sync; /* joined this generation, has not sent SyncGroup yet */
};

/* A member id handed out with MEMBER_ID_REQUIRED, until it joins with it. */
struct gpending {
    struct gpending *next;
    char *id;
    int64_t deadline;
};

struct group {
    struct group *next, *prev; /* every group, for walks */
    struct group *hnext;       /* the hash bucket's chain */
    char *id;
    int32_t partition;
    uint64_t incarnation; /* tells an append's completion whether its group still exists */
    enum gstate state;
    int64_t state_ts; /* wall ms of the last state change (Kafka's currentStateTimestamp); -1: unknown */
    int32_t generation;
    char *protocol_type;
    char *protocol; /* NULL: none selected */
    char *leader;   /* NULL: none */
    struct gmember *members;
    int32_t n_members;
    struct gpending *pending;
    int32_t n_pending;
    int64_t join_deadline; /* PreparingRebalance: rebalance timeout or initial delay end */
    bool initial_delay;    /* Kafka's InitialDelayedJoin is running */
    bool new_member_added;
    int32_t delay_remaining;
    int32_t sync_store_gen; /* generation whose assignment is being stored; -1: none */
    int64_t sync_deadline;  /* Kafka's pending-sync timeout: members that did not sync by then
                               are removed (CompletingRebalance/Stable); 0: none */
};

enum append_kind { AP_SYNC, AP_STATIC_JOIN, AP_EMPTY, AP_DELETE };

/* One gstore append in flight. */
struct gappend {
    struct gappend *prev, *next;
    struct groups *g; /* NULL: orphaned by groups_free() */
    enum append_kind kind;
    char *group_id;
    uint64_t incarnation;
    int32_t generation;
    char *member_id; /* AP_STATIC_JOIN: the new member id */
    char *leader;    /* AP_STATIC_JOIN: the leader answered */
    groups_join_fn join_cb;
    groups_delete_fn del_cb;
    void *ud;
    int remaining; /* AP_DELETE: tombstone and offsets */
    int16_t err;
};

struct groups {
    struct groups_options o;
    struct group *groups;
    size_t n_groups;
    struct group **buckets; /* by group id; nbuckets a power of two >= n_groups */
    size_t nbuckets;
    uint64_t next_incarnation;
    int64_t armed; /* 0: nothing armed */
    struct gappend *appends;
    struct groups_described_member *desc; /* groups_describe()'s last answer */
};

/* ---- small helpers ---------------------------------------------------------------- */

static int64_t now(const struct groups *g)
{
    return g->o.now_ms(g->o.ud);
}

static int64_t wall(const struct groups *g)
{
    return g->o.wall_ms ? g->o.wall_ms(g->o.ud) : clock_wall_ms();
}

/* Every state change goes through here: the Empty-since time is what offsets
 * of an emptied group expire from (KIP-211), and it is persisted. */
static void set_state(struct groups *g, struct group *grp, enum gstate st)
{
    grp->state = st;
    grp->state_ts = wall(g);
}

static void schedule(struct groups *g, int64_t t)
{
    if (g->armed == 0 || t < g->armed) {
        g->armed = t;
        if (g->o.arm)
            g->o.arm(g->o.ud, t);
    }
}

static bool streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static uint64_t hash_id(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
    return h;
}

static struct group *find_group(const struct groups *g, const char *id)
{
    for (struct group *grp = g->buckets[hash_id(id) & (g->nbuckets - 1)]; grp; grp = grp->hnext)
        if (strcmp(grp->id, id) == 0)
            return grp;
    return NULL;
}

/* Double the buckets once there are as many groups as buckets. */
static void maybe_grow(struct groups *g)
{
    if (g->n_groups < g->nbuckets)
        return;
    size_t n = g->nbuckets * 2;
    struct group **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (struct group *grp = g->groups; grp; grp = grp->next) {
        size_t i = hash_id(grp->id) & (n - 1);
        grp->hnext = nb[i];
        nb[i] = grp;
    }
    free(g->buckets);
    g->buckets = nb;
    g->nbuckets = n;
}

static struct gmember *find_member(const struct group *grp, const char *id)
{
    if (!id || !*id)
        return NULL;
    for (struct gmember *m = grp->members; m; m = m->next)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

static struct gmember *find_static(const struct group *grp, const char *instance_id)
{
    if (!instance_id)
        return NULL;
    for (struct gmember *m = grp->members; m; m = m->next)
        if (streq(m->instance_id, instance_id))
            return m;
    return NULL;
}

static struct gpending *find_pending(const struct group *grp, const char *id)
{
    for (struct gpending *p = grp->pending; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

/* Kafka's isStaticMemberFenced: the instance is known under another member id. */
static bool static_fenced(const struct group *grp, const char *instance_id, const char *member_id)
{
    struct gmember *m = find_static(grp, instance_id);
    return m && !streq(m->id, member_id);
}

/* "client_id-<uuid v4>", as Kafka names members. NULL on allocation failure. */
static char *new_member_id(const char *prefix)
{
    uint8_t u[16];
    if (getrandom(u, sizeof(u), 0) != (ssize_t)sizeof(u)) {
        for (size_t i = 0; i < sizeof(u); i++)
            u[i] = (uint8_t)rand();
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    size_t n = strlen(prefix) + 38;
    char *s = malloc(n);
    if (!s)
        return NULL;
    snprintf(s, n, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             prefix, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
             u[12], u[13], u[14], u[15]);
    return s;
}

static void free_protocols(struct gmember *m)
{
    for (int32_t i = 0; i < m->n_protocols; i++) {
        free(m->protocols[i].name);
        free(m->protocols[i].meta);
    }
    free(m->protocols);
    m->protocols = NULL;
    m->n_protocols = 0;
}

/* Copies @n protocols into @m (replacing its own). -ENOMEM leaves @m as it was. */
static int set_protocols(struct gmember *m, int32_t n, const struct groups_protocol *ps)
{
    struct gproto *np = calloc((size_t)(n > 0 ? n : 1), sizeof(*np));
    if (!np)
        return -ENOMEM;
    for (int32_t i = 0; i < n; i++) {
        np[i].name = strdup(ps[i].name ? ps[i].name : "");
        int32_t len = ps[i].metadata.len > 0 ? ps[i].metadata.len : 0;
        np[i].meta = malloc((size_t)len + 1);
        if (!np[i].name || !np[i].meta) {
            for (int32_t k = 0; k <= i; k++) {
                free(np[k].name);
                free(np[k].meta);
            }
            free(np);
            return -ENOMEM;
        }
        if (len)
            memcpy(np[i].meta, ps[i].metadata.ptr, (size_t)len);
        np[i].meta_len = len;
    }
    free_protocols(m);
    m->protocols = np;
    m->n_protocols = n;
    return 0;
}

static bool protocols_equal(const struct gmember *m, int32_t n, const struct groups_protocol *ps)
{
    if (m->n_protocols != n)
        return false;
    for (int32_t i = 0; i < n; i++) {
        int32_t len = ps[i].metadata.len > 0 ? ps[i].metadata.len : 0;
        if (!streq(m->protocols[i].name, ps[i].name) || m->protocols[i].meta_len != len ||
            (len && memcmp(m->protocols[i].meta, ps[i].metadata.ptr, (size_t)len) != 0))
            return false;
    }
    return true;
}

static const struct gproto *member_protocol(const struct gmember *m, const char *name)
{
    for (int32_t i = 0; i < m->n_protocols; i++)
        if (streq(m->protocols[i].name, name))
            return &m->protocols[i];
    return NULL;
}

static void set_assignment(struct gmember *m, buf_slice a)
{
    free(m->assignment);
    m->assignment = NULL;
    m->assignment_len = 0;
    if (a.len > 0 && (m->assignment = malloc((size_t)a.len))) {
        memcpy(m->assignment, a.ptr, (size_t)a.len);
        m->assignment_len = a.len;
    }
}

static buf_slice member_assignment(const struct gmember *m)
{
    buf_slice s = {.ptr = m->assignment ? m->assignment : (const uint8_t *)"",
                   .len = m->assignment_len};
    return s;
}

static void member_free(struct gmember *m)
{
    if (!m)
        return;
    free(m->id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    free_protocols(m);
    free(m->assignment);
    free(m);
}

static void answer_join_error(groups_join_fn done, void *ud, int16_t err, const char *member_id)
{
    struct groups_join_result res = {.error = err,
                                     .generation = -1,
                                     .protocol = NULL,
                                     .leader = "",
                                     .member_id = member_id ? member_id : ""};
    done(ud, &res);
}

static void answer_sync(groups_sync_fn done, void *ud, int16_t err, buf_slice a)
{
    if (err != KERR_NONE) {
        a.ptr = (const uint8_t *)"";
        a.len = 0;
    }
    done(ud, err, a);
}

/* Answer @m's parked JoinGroup/SyncGroup with @err. */
static void fail_parked(struct gmember *m, int16_t err)
{
    if (m->join_cb) {
        groups_join_fn cb = m->join_cb;
        m->join_cb = NULL;
        answer_join_error(cb, m->join_ud, err, m->id);
    }
    if (m->sync_cb) {
        groups_sync_fn cb = m->sync_cb;
        m->sync_cb = NULL;
        answer_sync(cb, m->sync_ud, err, member_assignment(m));
    }
}

static struct group *group_new(struct groups *g, const char *id)
{
    struct group *grp = calloc(1, sizeof(*grp));
    if (!grp || !(grp->id = strdup(id))) {
        free(grp);
        return NULL;
    }
    grp->partition = g->o.gs ? gstore_partition_for(g->o.gs, id) : 0;
    grp->incarnation = ++g->next_incarnation;
    grp->sync_store_gen = -1;
    set_state(g, grp, GS_EMPTY);
    grp->next = g->groups;
    if (g->groups)
        g->groups->prev = grp;
    g->groups = grp;
    size_t i = hash_id(id) & (g->nbuckets - 1);
    grp->hnext = g->buckets[i];
    g->buckets[i] = grp;
    g->n_groups++;
    maybe_grow(g);
    return grp;
}

/* Unlink and free @grp, answering its parked requests with @err. */
static void group_free(struct groups *g, struct group *grp, int16_t err)
{
    if (grp->prev)
        grp->prev->next = grp->next;
    else
        g->groups = grp->next;
    if (grp->next)
        grp->next->prev = grp->prev;
    for (struct group **pp = &g->buckets[hash_id(grp->id) & (g->nbuckets - 1)]; *pp;
         pp = &(*pp)->hnext)
        if (*pp == grp) {
            *pp = grp->hnext;
            break;
        }
    g->n_groups--;
    while (grp->members) {
        struct gmember *m = grp->members;
        grp->members = m->next;
        fail_parked(m, err);
        member_free(m);
    }
    while (grp->pending) {
        struct gpending *p = grp->pending;
        grp->pending = p->next;
        free(p->id);
        free(p);
    }
    free(grp->id);
    free(grp->protocol_type);
    free(grp->protocol);
    free(grp->leader);
    free(grp);
}

/* Kafka's GroupMetadataManager.storeGroup error mapping. */
static int16_t map_store_error(int16_t e)
{
    switch (e) {
    case KERR_UNKNOWN_TOPIC_OR_PARTITION:
    case KERR_NOT_ENOUGH_REPLICAS:
    case KERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case KERR_REQUEST_TIMED_OUT:
        return KERR_COORDINATOR_NOT_AVAILABLE;
    case KERR_NOT_LEADER_OR_FOLLOWER:
    case KERR_KAFKA_STORAGE_ERROR:
        return KERR_NOT_COORDINATOR;
    case KERR_MESSAGE_TOO_LARGE:
    case KERR_RECORD_LIST_TOO_LARGE:
    case KERR_INVALID_FETCH_SIZE:
        return KERR_UNKNOWN_SERVER_ERROR;
    default:
        return e;
    }
}

static int32_t max_rebalance_ms(const struct group *grp)
{
    int32_t t = 0;
    for (struct gmember *m = grp->members; m; m = m->next)
        if (m->rebalance_ms > t)
            t = m->rebalance_ms;
    return t;
}

/* ---- persistence ---------------------------------------------------------------- */

static void append_done(void *ud, int16_t err);

static void append_free(struct gappend *a)
{
    free(a->group_id);
    free(a->member_id);
    free(a->leader);
    free(a);
}

static struct gappend *append_new(struct groups *g, struct group *grp, enum append_kind kind)
{
    struct gappend *a = calloc(1, sizeof(*a));
    if (!a || !(a->group_id = strdup(grp->id))) {
        free(a);
        return NULL;
    }
    a->g = g;
    a->kind = kind;
    a->incarnation = grp->incarnation;
    a->generation = grp->generation;
    a->next = g->appends;
    if (g->appends)
        g->appends->prev = a;
    g->appends = a;
    return a;
}

static void append_unlink(struct groups *g, struct gappend *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        g->appends = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
}

/* Encode @grp's GroupMetadataValue (with every member's current assignment) and
 * append it. Returns KERR_NONE with @a handed to gstore, or an error (@a is then
 * still the caller's). */
static int16_t store_group(struct groups *g, struct group *grp, struct gappend *a)
{
    struct arena ar;
    arena_init(&ar, 4096, 0);
    struct grec_value v = {
        .protocol_type = {.ptr = (const uint8_t *)(grp->protocol_type ? grp->protocol_type : ""),
                          .len = (int32_t)strlen(grp->protocol_type ? grp->protocol_type : "")},
        .generation = grp->generation,
        .protocol = {.ptr = (const uint8_t *)grp->protocol,
                     .len = grp->protocol ? (int32_t)strlen(grp->protocol) : -1},
        .leader = {.ptr = (const uint8_t *)grp->leader,
                   .len = grp->leader ? (int32_t)strlen(grp->leader) : -1},
        .state_timestamp = grp->state_ts >= 0 ? grp->state_ts : wall(g),
        .n_members = grp->n_members,
    };
    int16_t err = KERR_NONE;
    if (grp->n_members > 0) {
        v.members = arena_zalloc(&ar, sizeof(*v.members) * (size_t)grp->n_members, 8);
        if (!v.members) {
            arena_deinit(&ar);
            return KERR_COORDINATOR_NOT_AVAILABLE;
        }
    }
    int32_t i = 0;
    for (struct gmember *m = grp->members; m; m = m->next, i++) {
        struct grec_member *rm = &v.members[i];
        rm->member_id = (buf_slice){(const uint8_t *)m->id, (int32_t)strlen(m->id)};
        rm->instance_id = (buf_slice){(const uint8_t *)m->instance_id,
                                      m->instance_id ? (int32_t)strlen(m->instance_id) : -1};
        rm->client_id = (buf_slice){(const uint8_t *)m->client_id, (int32_t)strlen(m->client_id)};
        rm->client_host =
            (buf_slice){(const uint8_t *)m->client_host, (int32_t)strlen(m->client_host)};
        rm->rebalance_timeout_ms = m->rebalance_ms;
        rm->session_timeout_ms = m->session_ms;
        const struct gproto *p = grp->protocol ? member_protocol(m, grp->protocol) : NULL;
        rm->subscription = p ? (buf_slice){p->meta, p->meta_len} : (buf_slice){NULL, 0};
        rm->assignment = member_assignment(m);
    }
    buf_writer kw, vw;
    buf_writer_init(&kw);
    buf_writer_init(&vw);
    grec_key_encode(&kw, grp->id);
    grec_value_encode(&vw, &v);
    arena_deinit(&ar);
    if (buf_writer_error(&kw) || buf_writer_error(&vw))
        err = buf_writer_error(&vw) == -EMSGSIZE ? KERR_MESSAGE_TOO_LARGE
                                                 : KERR_COORDINATOR_NOT_AVAILABLE;
    else if (g->o.max_record_bytes > 0 && vw.len + kw.len > (size_t)g->o.max_record_bytes)
        err = KERR_MESSAGE_TOO_LARGE; /* the log would refuse it: Kafka's outcome, earlier */
    if (err == KERR_NONE) {
        buf_slice key = {kw.data, (int32_t)kw.len}, val = {vw.data, (int32_t)vw.len};
        err = gstore_append(g->o.gs, grp->id, key, val, append_done, a);
    }
    buf_writer_deinit(&kw);
    buf_writer_deinit(&vw);
    return err;
}

static void prepare_rebalance(struct groups *g, struct group *grp);
static void propagate_assignments(struct group *grp, int16_t err);

static void append_done(void *ud, int16_t err)
{
    struct gappend *a = ud;
    struct groups *g = a->g;
    if (!g) { /* groups_free() came first */
        append_free(a);
        return;
    }
    if (a->kind == AP_DELETE) {
        if (err != KERR_NONE && a->err == KERR_NONE)
            a->err = map_store_error(err);
        if (--a->remaining > 0)
            return;
        append_unlink(g, a);
        a->del_cb(a->ud, a->err);
        append_free(a);
        return;
    }
    append_unlink(g, a);
    struct group *grp = find_group(g, a->group_id);
    if (grp && grp->incarnation != a->incarnation)
        grp = NULL;
    int16_t e = map_store_error(err);
    switch (a->kind) {
    case AP_SYNC:
        if (grp && grp->sync_store_gen == a->generation)
            grp->sync_store_gen = -1;
        /* Kafka: only if the group is still in the generation that was stored. */
        if (grp && grp->state == GS_COMPLETING && grp->generation == a->generation) {
            if (e == KERR_NONE) {
                set_state(g, grp, GS_STABLE);
                propagate_assignments(grp, KERR_NONE);
            } else {
                log_warn("group", "group %s generation %d: storing the assignment failed: %s",
                         grp->id, grp->generation, kerr_name(err));
                for (struct gmember *m = grp->members; m; m = m->next)
                    set_assignment(m, (buf_slice){NULL, 0});
                propagate_assignments(grp, e);
                prepare_rebalance(g, grp);
            }
        }
        break;
    case AP_STATIC_JOIN: {
        struct gmember *m = grp ? find_member(grp, a->member_id) : NULL;
        if (!m || m->join_cb != a->join_cb || m->join_ud != a->ud)
            break; /* answered meanwhile (fenced, removed, unloaded) */
        m->join_cb = NULL;
        if (e != KERR_NONE) {
            answer_join_error(a->join_cb, a->ud, e, m->id);
            break;
        }
        struct groups_join_result res = {.error = KERR_NONE,
                                         .generation = grp->generation,
                                         .protocol = grp->protocol,
                                         .leader = a->leader ? a->leader : "",
                                         .member_id = m->id};
        a->join_cb(a->ud, &res);
        break;
    }
    case AP_EMPTY:
    case AP_DELETE:
        if (e != KERR_NONE)
            log_warn("group", "group %s: storing its metadata failed: %s", a->group_id,
                     kerr_name(err));
        break;
    }
    append_free(a);
}

/* ---- rebalance ---------------------------------------------------------------- */

/* The protocol every member supports, chosen by the members' votes (each votes
 * for its most preferred candidate), as Kafka's GroupMetadata.selectProtocol. */
static const char *select_protocol(const struct group *grp)
{
    const struct gmember *first = grp->members;
    if (!first)
        return NULL;
    const char *best = NULL;
    int best_votes = -1;
    for (int32_t i = 0; i < first->n_protocols; i++) {
        const char *cand = first->protocols[i].name;
        bool all = true;
        for (const struct gmember *m = grp->members; m && all; m = m->next)
            all = member_protocol(m, cand) != NULL;
        if (!all)
            continue;
        int votes = 0;
        for (const struct gmember *m = grp->members; m; m = m->next) {
            /* m's vote: its first protocol that every member supports */
            for (int32_t k = 0; k < m->n_protocols; k++) {
                const char *p = m->protocols[k].name;
                bool sup = true;
                for (const struct gmember *o = grp->members; o && sup; o = o->next)
                    sup = member_protocol(o, p) != NULL;
                if (sup) {
                    votes += streq(p, cand);
                    break;
                }
            }
        }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best;
}

/* Kafka's GroupMetadata.supportsProtocols. */
static bool supports_protocols(const struct group *grp, const char *type, int32_t n,
                               const struct groups_protocol *ps)
{
    if (!type || !*type || n <= 0)
        return false;
    if (grp->n_members == 0)
        return true;
    if (!streq(grp->protocol_type, type))
        return false;
    for (int32_t i = 0; i < n; i++) {
        bool all = true;
        for (const struct gmember *m = grp->members; m && all; m = m->next)
            all = member_protocol(m, ps[i].name) != NULL;
        if (all)
            return true;
    }
    return false;
}

static void answer_join(struct group *grp, struct gmember *m)
{
    groups_join_fn cb = m->join_cb;
    if (!cb)
        return;
    m->join_cb = NULL;
    bool is_leader = streq(grp->leader, m->id);
    struct groups_join_member *list = NULL;
    int32_t n = 0;
    if (is_leader && grp->n_members > 0) {
        list = calloc((size_t)grp->n_members, sizeof(*list));
        if (!list) {
            answer_join_error(cb, m->join_ud, KERR_COORDINATOR_NOT_AVAILABLE, m->id);
            return;
        }
        for (struct gmember *o = grp->members; o; o = o->next) {
            const struct gproto *p = member_protocol(o, grp->protocol);
            list[n].member_id = o->id;
            list[n].instance_id = o->instance_id;
            list[n].metadata = p ? (buf_slice){p->meta, p->meta_len} : (buf_slice){NULL, 0};
            n++;
        }
    }
    struct groups_join_result res = {.error = KERR_NONE,
                                     .generation = grp->generation,
                                     .protocol = grp->protocol,
                                     .leader = grp->leader ? grp->leader : "",
                                     .member_id = m->id,
                                     .n_members = n,
                                     .members = list};
    cb(m->join_ud, &res);
    free(list);
}

static void unlink_member(struct group *grp, struct gmember *m)
{
    for (struct gmember **pp = &grp->members; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            grp->n_members--;
            break;
        }
    if (streq(grp->leader, m->id)) {
        free(grp->leader);
        grp->leader = grp->members ? strdup(grp->members->id) : NULL;
    }
}

/* Kafka's onCompleteJoin: members that did not rejoin are dropped, the next
 * generation starts, every rejoined member gets its JoinGroup answer. */
static void complete_join(struct groups *g, struct group *grp)
{
    int64_t t = now(g);
    grp->join_deadline = 0;
    grp->initial_delay = false;
    grp->new_member_added = false;
    for (struct gmember *m = grp->members, *next; m; m = next) {
        next = m->next;
        if (!m->join_cb) {
            log_event(LOG_LEVEL_INFO, "group", "member_removed",
                      LOG_FIELDS(LF_STR("group", grp->id), LF_STR("member", m->id),
                                 LF_STR("reason", "rejoin_timeout")),
                      "group %s: member %s did not rejoin in time, removed", grp->id, m->id);
            unlink_member(grp, m);
            fail_parked(m, KERR_UNKNOWN_MEMBER_ID);
            member_free(m);
        }
    }
    /* Kafka's generationId + 1 wraps in Java; a generation replayed from a
     * record can be INT32_MAX. Wrap to 1: -1 means "none" and 0 a new group. */
    grp->generation = grp->generation >= INT32_MAX || grp->generation < 0 ? 1
                                                                           : grp->generation + 1;
    free(grp->protocol);
    grp->protocol = NULL;
    if (grp->n_members == 0) {
        set_state(g, grp, GS_EMPTY);
        struct gappend *a = append_new(g, grp, AP_EMPTY);
        if (a) {
            int16_t e = store_group(g, grp, a);
            if (e != KERR_NONE) {
                append_unlink(g, a);
                append_free(a);
                log_warn("group", "group %s: storing it empty failed: %s", grp->id, kerr_name(e));
            }
        }
        log_event(LOG_LEVEL_INFO, "group", "group_empty",
                  LOG_FIELDS(LF_STR("group", grp->id), LF_INT("generation", grp->generation)),
                  "group %s is empty at generation %d", grp->id, grp->generation);
        return;
    }
    if (!grp->leader)
        grp->leader = strdup(grp->members->id);
    const char *p = select_protocol(grp);
    grp->protocol = p ? strdup(p) : NULL;
    set_state(g, grp, GS_COMPLETING);
    log_event(LOG_LEVEL_INFO, "group", "group_rebalanced",
              LOG_FIELDS(LF_STR("group", grp->id), LF_INT("generation", grp->generation),
                         LF_INT("members", grp->n_members), LF_STR("protocol", grp->protocol),
                         LF_STR("protocol_type", grp->protocol_type),
                         LF_STR("leader", grp->leader)),
              "group %s: generation %d with %d members, protocol %s", grp->id, grp->generation,
              grp->n_members, grp->protocol ? grp->protocol : "-");
    /* Kafka's pending-sync timeout (KIP-814's GroupCoordinator): every member
     * must follow its JoinGroup with a SyncGroup within the rebalance timeout. */
    grp->sync_deadline = t + max_rebalance_ms(grp);
    schedule(g, grp->sync_deadline);
    for (struct gmember *m = grp->members; m; m = m->next) {
        m->deadline = t + m->session_ms;
        m->pending_sync = true;
        schedule(g, m->deadline);
    }
    for (struct gmember *m = grp->members; m; m = m->next)
        answer_join(grp, m);
}

static bool all_joined(const struct group *grp)
{
    if (grp->n_pending > 0)
        return false;
    for (const struct gmember *m = grp->members; m; m = m->next)
        if (!m->join_cb)
            return false;
    return true;
}

static void maybe_complete_join(struct groups *g, struct group *grp)
{
    if (grp->state == GS_PREPARING && !grp->initial_delay && all_joined(grp))
        complete_join(g, grp);
}

static void prepare_rebalance(struct groups *g, struct group *grp)
{
    if (grp->state == GS_COMPLETING) {
        for (struct gmember *m = grp->members; m; m = m->next)
            set_assignment(m, (buf_slice){NULL, 0});
        propagate_assignments(grp, KERR_REBALANCE_IN_PROGRESS);
    }
    int64_t t = now(g);
    int32_t rebalance = max_rebalance_ms(grp);
    int32_t delay = g->o.initial_rebalance_delay_ms;
    if (grp->state == GS_EMPTY && delay > 0) {
        /* Kafka's InitialDelayedJoin: let more members of a starting group arrive. */
        grp->initial_delay = true;
        grp->new_member_added = false;
        int32_t first = delay < rebalance ? delay : rebalance;
        grp->delay_remaining = rebalance > delay ? rebalance - delay : 0;
        grp->join_deadline = t + first;
    } else {
        grp->initial_delay = false;
        grp->join_deadline = t + rebalance;
    }
    set_state(g, grp, GS_PREPARING);
    grp->sync_deadline = 0;
    for (struct gmember *m = grp->members; m; m = m->next)
        m->pending_sync = false;
    schedule(g, grp->join_deadline);
    log_event(LOG_LEVEL_INFO, "group", "group_rebalance_started",
              LOG_FIELDS(LF_STR("group", grp->id), LF_INT("generation", grp->generation),
                         LF_INT("members", grp->n_members)),
              "group %s: preparing rebalance (generation %d)", grp->id, grp->generation);
    /* Kafka's tryCompleteElseWatch: every member may have rejoined already. */
    maybe_complete_join(g, grp);
}

static void maybe_prepare_rebalance(struct groups *g, struct group *grp)
{
    if (grp->state == GS_STABLE || grp->state == GS_COMPLETING || grp->state == GS_EMPTY)
        prepare_rebalance(g, grp);
}

/* Answer every parked SyncGroup with its member's assignment (or @err). */
static void propagate_assignments(struct group *grp, int16_t err)
{
    for (struct gmember *m = grp->members; m; m = m->next) {
        if (!m->sync_cb)
            continue;
        groups_sync_fn cb = m->sync_cb;
        m->sync_cb = NULL;
        answer_sync(cb, m->sync_ud, err, member_assignment(m));
    }
}

/* Kafka's removeMemberAndUpdateGroup. */
static void remove_member(struct groups *g, struct group *grp, struct gmember *m)
{
    unlink_member(grp, m);
    fail_parked(m, KERR_UNKNOWN_MEMBER_ID);
    member_free(m);
    switch (grp->state) {
    case GS_STABLE:
    case GS_COMPLETING:
        prepare_rebalance(g, grp);
        break;
    case GS_PREPARING:
        maybe_complete_join(g, grp);
        break;
    default:
        break;
    }
}

static void remove_pending(struct group *grp, struct gpending *p)
{
    for (struct gpending **pp = &grp->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            grp->n_pending--;
            break;
        }
    free(p->id);
    free(p);
}

/* ---- lifecycle ---------------------------------------------------------------- */

int groups_new(const struct groups_options *o, struct groups **ret)
{
    struct groups *g = calloc(1, sizeof(*g));
    if (!g || !(g->buckets = calloc(64, sizeof(*g->buckets)))) {
        free(g);
        return -ENOMEM;
    }
    g->nbuckets = 64;
    g->o = *o;
    *ret = g;
    return 0;
}

void groups_free(struct groups *g)
{
    if (!g)
        return;
    while (g->groups)
        group_free(g, g->groups, KERR_COORDINATOR_NOT_AVAILABLE);
    while (g->appends) {
        struct gappend *a = g->appends;
        append_unlink(g, a);
        if (a->kind == AP_DELETE)
            a->del_cb(a->ud, KERR_COORDINATOR_NOT_AVAILABLE);
        a->g = NULL; /* gstore still owns it; append_done frees it */
    }
    free(g->desc);
    free(g->buckets);
    free(g);
}

void groups_set_limits(struct groups *g, int32_t initial_delay_ms, int32_t min_session_ms,
                       int32_t max_session_ms, int32_t max_size)
{
    g->o.initial_rebalance_delay_ms = initial_delay_ms;
    g->o.min_session_timeout_ms = min_session_ms;
    g->o.max_session_timeout_ms = max_session_ms;
    g->o.max_size = max_size;
}

size_t groups_count(const struct groups *g)
{
    return g->n_groups;
}

static void on_join_deadline(struct groups *g, struct group *grp)
{
    if (grp->initial_delay && grp->new_member_added && grp->delay_remaining > 0) {
        int32_t d = g->o.initial_rebalance_delay_ms < grp->delay_remaining
                        ? g->o.initial_rebalance_delay_ms
                        : grp->delay_remaining;
        grp->new_member_added = false;
        grp->delay_remaining -= d;
        grp->join_deadline = now(g) + d;
        schedule(g, grp->join_deadline);
        return;
    }
    complete_join(g, grp);
}

/* Kafka's onExpirePendingSync: the members that joined this generation but sent
 * no SyncGroup within the rebalance timeout are removed, and the group
 * rebalances without them (they would hold partitions nobody consumes). */
static void expire_pending_sync(struct groups *g, struct group *grp)
{
    grp->sync_deadline = 0;
    int removed = 0;
    for (struct gmember *m = grp->members, *next; m; m = next) {
        next = m->next;
        if (!m->pending_sync)
            continue;
        log_event(LOG_LEVEL_INFO, "group", "member_removed",
                  LOG_FIELDS(LF_STR("group", grp->id), LF_STR("member", m->id),
                             LF_STR("reason", "pending_sync_expired")),
                  "group %s: member %s sent no SyncGroup within the rebalance timeout, removed",
                  grp->id, m->id);
        unlink_member(grp, m);
        fail_parked(m, KERR_UNKNOWN_MEMBER_ID);
        member_free(m);
        removed++;
    }
    if (removed > 0)
        prepare_rebalance(g, grp);
}

void groups_tick(struct groups *g)
{
    int64_t t = now(g);
    g->armed = 0;
    for (struct group *grp = g->groups; grp; grp = grp->next) {
        for (struct gpending *p = grp->pending, *next; p; p = next) {
            next = p->next;
            if (p->deadline <= t) {
                remove_pending(grp, p);
                maybe_complete_join(g, grp);
            }
        }
        for (struct gmember *m = grp->members; m;) {
            /* Kafka: members parked in JoinGroup/SyncGroup do not expire. */
            if (!m->join_cb && !m->sync_cb && m->deadline <= t) {
                log_event(LOG_LEVEL_INFO, "group", "member_removed",
                          LOG_FIELDS(LF_STR("group", grp->id), LF_STR("member", m->id),
                                     LF_STR("reason", "session_expired")),
                          "group %s: member %s session expired", grp->id, m->id);
                remove_member(g, grp, m);
                m = grp->members;
                continue;
            }
            m = m->next;
        }
        if (grp->state == GS_PREPARING && grp->join_deadline && grp->join_deadline <= t)
            on_join_deadline(g, grp);
        if ((grp->state == GS_COMPLETING || grp->state == GS_STABLE) && grp->sync_deadline &&
            grp->sync_deadline <= t)
            expire_pending_sync(g, grp);
    }
    /* Re-arm at the earliest deadline left. */
    for (struct group *grp = g->groups; grp; grp = grp->next) {
        for (struct gpending *p = grp->pending; p; p = p->next)
            schedule(g, p->deadline);
        for (struct gmember *m = grp->members; m; m = m->next)
            if (!m->join_cb && !m->sync_cb)
                schedule(g, m->deadline);
        if (grp->state == GS_PREPARING && grp->join_deadline)
            schedule(g, grp->join_deadline);
        if ((grp->state == GS_COMPLETING || grp->state == GS_STABLE) && grp->sync_deadline)
            schedule(g, grp->sync_deadline);
    }
}

/* ---- JoinGroup ---------------------------------------------------------------- */

static void heartbeat(struct groups *g, struct gmember *m)
{
    m->deadline = now(g) + m->session_ms;
    schedule(g, m->deadline);
}

/* Copies the request's member fields into @m. -ENOMEM. */
static int update_member(struct gmember *m, const struct groups_join_req *r, groups_join_fn done,
                         void *ud)
{
    if (!protocols_equal(m, r->n_protocols, r->protocols) &&
        set_protocols(m, r->n_protocols, r->protocols) < 0)
        return -ENOMEM;
    m->session_ms = r->session_timeout_ms;
    m->rebalance_ms = r->rebalance_timeout_ms;
    m->join_cb = done;
    m->join_ud = ud;
    return 0;
}

static struct gmember *add_member(struct groups *g, struct group *grp, const char *id,
                                  const struct groups_join_req *r, groups_join_fn done, void *ud)
{
    struct gmember *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->id = strdup(id);
    m->instance_id = dupstr(r->instance_id);
    m->client_id = strdup(r->client_id ? r->client_id : "");
    m->client_host = strdup(r->client_host ? r->client_host : "");
    if (!m->id || (r->instance_id && !m->instance_id) || !m->client_id || !m->client_host ||
        update_member(m, r, done, ud) < 0) {
        member_free(m);
        return NULL;
    }
    if (grp->n_members == 0) {
        free(grp->protocol_type);
        grp->protocol_type = strdup(r->protocol_type);
    }
    /* appended: the first member stays first (leader fallback, protocol order) */
    struct gmember **pp = &grp->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    grp->n_members++;
    if (!grp->leader)
        grp->leader = strdup(m->id);
    heartbeat(g, m);
    if (grp->state == GS_PREPARING && grp->initial_delay)
        grp->new_member_added = true;
    return m;
}

/* Kafka's addMemberAndRebalance. */
static void join_new_member(struct groups *g, struct group *grp, const char *id,
                            const struct groups_join_req *r, groups_join_fn done, void *ud)
{
    struct gmember *m = add_member(g, grp, id, r, done, ud);
    if (!m) {
        answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, id);
        return;
    }
    maybe_prepare_rebalance(g, grp);
    maybe_complete_join(g, grp);
}

/* Kafka's updateStaticMemberAndRebalance: a known instance joins under a new
 * member id; the old id is fenced. */
static void join_static_replace(struct groups *g, struct group *grp, struct gmember *m,
                                const struct groups_join_req *r, groups_join_fn done, void *ud)
{
    char *nid = new_member_id(r->instance_id);
    char *old_leader = dupstr(grp->leader);
    if (!nid || (grp->leader && !old_leader)) {
        free(nid);
        free(old_leader);
        answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, r->member_id);
        return;
    }
    fail_parked(m, KERR_FENCED_INSTANCE_ID);
    bool was_leader = streq(grp->leader, m->id);
    log_info("group", "group %s: static member %s rejoined as %s", grp->id, r->instance_id, nid);
    free(m->id);
    m->id = nid;
    if (was_leader) {
        free(grp->leader);
        grp->leader = strdup(nid);
    }
    if (update_member(m, r, done, ud) < 0) {
        m->join_cb = NULL;
        free(old_leader);
        answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, nid);
        return;
    }
    heartbeat(g, m);
    const char *sel;
    switch (grp->state) {
    case GS_STABLE:
        sel = select_protocol(grp);
        if (sel && streq(sel, grp->protocol)) {
            /* Same assignment, no rebalance: persist the new member id first. The
             * answer names the leader as it was, so a former leader does not
             * reassign (it gets its assignment with SyncGroup). */
            struct gappend *a = append_new(g, grp, AP_STATIC_JOIN);
            int16_t e = KERR_COORDINATOR_NOT_AVAILABLE;
            if (a && (a->member_id = strdup(nid)) &&
                (!old_leader || (a->leader = strdup(old_leader)))) {
                a->join_cb = done;
                a->ud = ud;
                e = store_group(g, grp, a);
            }
            if (e != KERR_NONE) {
                if (a) {
                    append_unlink(g, a);
                    append_free(a);
                }
                m->join_cb = NULL;
                answer_join_error(done, ud, map_store_error(e), nid);
            }
        } else {
            prepare_rebalance(g, grp);
        }
        break;
    case GS_COMPLETING:
        prepare_rebalance(g, grp);
        break;
    default:
        maybe_complete_join(g, grp);
        break;
    }
    free(old_leader);
}

/* Kafka's doCurrentMemberJoinGroup for a member of the group. */
static void join_known_member(struct groups *g, struct group *grp, struct gmember *m,
                              const struct groups_join_req *r, groups_join_fn done, void *ud)
{
    bool same = protocols_equal(m, r->n_protocols, r->protocols);
    if (m->join_cb) /* a duplicate join: the older request is superseded */
        answer_join_error(m->join_cb, m->join_ud, KERR_UNKNOWN_MEMBER_ID, m->id);
    m->join_cb = NULL;
    switch (grp->state) {
    case GS_PREPARING:
        if (update_member(m, r, done, ud) < 0)
            goto nomem;
        heartbeat(g, m);
        maybe_complete_join(g, grp);
        return;
    case GS_COMPLETING:
        if (same) { /* the JoinGroup answer was lost: send it again */
            m->join_cb = done;
            m->join_ud = ud;
            heartbeat(g, m);
            answer_join(grp, m);
            return;
        }
        break;
    case GS_STABLE:
        if (same && !streq(grp->leader, m->id)) {
            m->join_cb = done;
            m->join_ud = ud;
            heartbeat(g, m);
            answer_join(grp, m);
            return;
        }
        break;
    default:
        answer_join_error(done, ud, KERR_UNKNOWN_MEMBER_ID, m->id);
        return;
    }
    /* updateMemberAndRebalance */
    if (update_member(m, r, done, ud) < 0)
        goto nomem;
    heartbeat(g, m);
    prepare_rebalance(g, grp);
    maybe_complete_join(g, grp);
    return;
nomem:
    m->join_cb = NULL;
    answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, m->id);
}

static int16_t check_group_id(struct groups *g, const char *group_id)
{
    if (!group_id || !*group_id)
        return KERR_INVALID_GROUP_ID;
    return g->o.gs ? gstore_coordinator_check(g->o.gs, group_id) : KERR_NONE;
}

void groups_join(struct groups *g, const struct groups_join_req *r, groups_join_fn done, void *ud)
{
    const char *mid = r->member_id ? r->member_id : "";
    int16_t err = check_group_id(g, r->group_id);
    if (err != KERR_NONE) {
        answer_join_error(done, ud, err, mid);
        return;
    }
    if (r->session_timeout_ms < g->o.min_session_timeout_ms ||
        r->session_timeout_ms > g->o.max_session_timeout_ms) {
        answer_join_error(done, ud, KERR_INVALID_SESSION_TIMEOUT, mid);
        return;
    }
    struct groups_join_req req = *r;
    if (req.rebalance_timeout_ms < 0) /* v0: the session timeout */
        req.rebalance_timeout_ms = req.session_timeout_ms;
    struct group *grp = find_group(g, r->group_id);
    bool unknown = *mid == '\0';
    if (!grp) {
        if (!unknown) {
            answer_join_error(done, ud, KERR_UNKNOWN_MEMBER_ID, mid);
            return;
        }
        if (!(grp = group_new(g, r->group_id))) {
            answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, mid);
            return;
        }
    }
    if (grp->state == GS_DEAD) {
        answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, mid);
        return;
    }
    if (!supports_protocols(grp, r->protocol_type, r->n_protocols, r->protocols)) {
        answer_join_error(done, ud, KERR_INCONSISTENT_GROUP_PROTOCOL, mid);
        return;
    }
    struct gmember *m = unknown ? NULL : find_member(grp, mid);
    struct gmember *sm = find_static(grp, r->instance_id);
    bool is_pending = !unknown && !m && find_pending(grp, mid);
    if (!m && !sm && g->o.max_size > 0 &&
        grp->n_members + (is_pending ? 0 : grp->n_pending) >= g->o.max_size) {
        answer_join_error(done, ud, KERR_GROUP_MAX_SIZE_REACHED, mid);
        return;
    }
    if (unknown) {
        if (sm) {
            join_static_replace(g, grp, sm, &req, done, ud);
            return;
        }
        char *nid =
            new_member_id(r->instance_id ? r->instance_id : (r->client_id ? r->client_id : ""));
        if (!nid) {
            answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, mid);
            return;
        }
        if (!r->instance_id && r->require_known_member) {
            struct gpending *p = calloc(1, sizeof(*p));
            if (!p) {
                free(nid);
                answer_join_error(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, mid);
                return;
            }
            p->id = nid;
            p->deadline = now(g) + r->session_timeout_ms;
            p->next = grp->pending;
            grp->pending = p;
            grp->n_pending++;
            schedule(g, p->deadline);
            answer_join_error(done, ud, KERR_MEMBER_ID_REQUIRED, nid);
            return;
        }
        join_new_member(g, grp, nid, &req, done, ud);
        free(nid);
        return;
    }
    if (r->instance_id && static_fenced(grp, r->instance_id, mid)) {
        answer_join_error(done, ud, KERR_FENCED_INSTANCE_ID, mid);
        return;
    }
    if (!m) {
        struct gpending *p = find_pending(grp, mid);
        if (!p) {
            answer_join_error(done, ud, KERR_UNKNOWN_MEMBER_ID, mid);
            return;
        }
        remove_pending(grp, p);
        join_new_member(g, grp, mid, &req, done, ud);
        return;
    }
    join_known_member(g, grp, m, &req, done, ud);
}

/* ---- SyncGroup / Heartbeat / LeaveGroup ------------------------------------------ */

/* Kafka's validateCurrentMember, after the group is known. */
static int16_t validate_member(const struct group *grp, int32_t generation, const char *member_id,
                               const char *instance_id, struct gmember **ret)
{
    if (instance_id && static_fenced(grp, instance_id, member_id))
        return KERR_FENCED_INSTANCE_ID;
    struct gmember *m = find_member(grp, member_id);
    if (!m)
        return KERR_UNKNOWN_MEMBER_ID;
    if (generation != grp->generation)
        return KERR_ILLEGAL_GENERATION;
    *ret = m;
    return KERR_NONE;
}

void groups_sync(struct groups *g, const char *group_id, int32_t generation, const char *member_id,
                 const char *instance_id, int32_t n_assignments,
                 const struct groups_assignment *assignments, groups_sync_fn done, void *ud)
{
    buf_slice none = {(const uint8_t *)"", 0};
    int16_t err = check_group_id(g, group_id);
    struct group *grp = err == KERR_NONE ? find_group(g, group_id) : NULL;
    struct gmember *m = NULL;
    if (err == KERR_NONE && !grp)
        err = KERR_UNKNOWN_MEMBER_ID;
    if (err == KERR_NONE && grp->state == GS_DEAD)
        err = KERR_COORDINATOR_NOT_AVAILABLE;
    if (err == KERR_NONE)
        err = validate_member(grp, generation, member_id, instance_id, &m);
    if (err != KERR_NONE) {
        answer_sync(done, ud, err, none);
        return;
    }
    switch (grp->state) {
    case GS_EMPTY:
        answer_sync(done, ud, KERR_UNKNOWN_MEMBER_ID, none);
        return;
    case GS_PREPARING:
        answer_sync(done, ud, KERR_REBALANCE_IN_PROGRESS, none);
        return;
    case GS_STABLE:
        heartbeat(g, m);
        m->pending_sync = false;
        answer_sync(done, ud, KERR_NONE, member_assignment(m));
        return;
    case GS_COMPLETING:
        m->pending_sync = false;
        break;
    default:
        answer_sync(done, ud, KERR_COORDINATOR_NOT_AVAILABLE, none);
        return;
    }
    if (m->sync_cb) /* a duplicate sync: the older one is superseded */
        answer_sync(m->sync_cb, m->sync_ud, KERR_UNKNOWN_MEMBER_ID, none);
    m->sync_cb = done;
    m->sync_ud = ud;
    heartbeat(g, m);
    /* Only the leader's assignments count; Kafka ignores a follower's. */
    /* A leader's repeated SyncGroup in this generation does not store again;
     * a store still in flight for an older generation does not hold this one
     * back (its completion finds the generation moved on and does nothing). */
    if (!streq(grp->leader, m->id) || grp->sync_store_gen == grp->generation)
        return;
    for (struct gmember *o = grp->members; o; o = o->next) {
        buf_slice a = {NULL, 0};
        for (int32_t i = 0; i < n_assignments; i++)
            if (streq(assignments[i].member_id, o->id))
                a = assignments[i].assignment;
        set_assignment(o, a);
    }
    struct gappend *ap = append_new(g, grp, AP_SYNC);
    int16_t e = ap ? store_group(g, grp, ap) : KERR_COORDINATOR_NOT_AVAILABLE;
    if (e != KERR_NONE) {
        if (ap) {
            append_unlink(g, ap);
            append_free(ap);
        }
        for (struct gmember *o = grp->members; o; o = o->next)
            set_assignment(o, (buf_slice){NULL, 0});
        propagate_assignments(grp, map_store_error(e));
        prepare_rebalance(g, grp);
        return;
    }
    grp->sync_store_gen = grp->generation;
}

int16_t groups_heartbeat(struct groups *g, const char *group_id, int32_t generation,
                         const char *member_id, const char *instance_id)
{
    int16_t err = check_group_id(g, group_id);
    if (err != KERR_NONE)
        return err;
    struct group *grp = find_group(g, group_id);
    if (!grp)
        return KERR_UNKNOWN_MEMBER_ID;
    if (grp->state == GS_DEAD)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    struct gmember *m = NULL;
    if ((err = validate_member(grp, generation, member_id, instance_id, &m)) != KERR_NONE)
        return err;
    switch (grp->state) {
    case GS_EMPTY:
        return KERR_UNKNOWN_MEMBER_ID;
    case GS_PREPARING:
        heartbeat(g, m);
        return KERR_REBALANCE_IN_PROGRESS;
    default: /* CompletingRebalance, Stable */
        heartbeat(g, m);
        return KERR_NONE;
    }
}

int16_t groups_leave_check(struct groups *g, const char *group_id)
{
    int16_t err = check_group_id(g, group_id);
    if (err != KERR_NONE)
        return err;
    struct group *grp = find_group(g, group_id);
    if (grp && grp->state == GS_DEAD)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    return KERR_NONE;
}

int16_t groups_leave(struct groups *g, const char *group_id, const char *member_id,
                     const char *instance_id)
{
    struct group *grp = find_group(g, group_id);
    if (!grp)
        return KERR_UNKNOWN_MEMBER_ID;
    const char *mid = member_id ? member_id : "";
    struct gmember *m;
    if (instance_id) {
        m = find_static(grp, instance_id);
        if (!m)
            return KERR_UNKNOWN_MEMBER_ID;
        if (*mid && !streq(m->id, mid))
            return KERR_FENCED_INSTANCE_ID;
    } else {
        m = find_member(grp, mid);
        if (!m) {
            struct gpending *p = *mid ? find_pending(grp, mid) : NULL;
            if (!p)
                return KERR_UNKNOWN_MEMBER_ID;
            remove_pending(grp, p);
            maybe_complete_join(g, grp);
            return KERR_NONE;
        }
    }
    log_event(LOG_LEVEL_INFO, "group", "member_removed",
              LOG_FIELDS(LF_STR("group", grp->id), LF_STR("member", m->id),
                         LF_STR("reason", "left")),
              "group %s: member %s left", grp->id, m->id);
    remove_member(g, grp, m);
    return KERR_NONE;
}

/* ---- ListGroups / DescribeGroups / DeleteGroups ------------------------------------ */

void groups_list(struct groups *g, void (*fn)(void *ud, const struct groups_listing *l), void *ud)
{
    for (struct group *grp = g->groups; grp; grp = grp->next) {
        if (grp->state == GS_DEAD)
            continue;
        /* a group this broker no longer coordinates is about to be unloaded */
        if (g->o.gs && gstore_coordinator_check(g->o.gs, grp->id) != KERR_NONE)
            continue;
        struct groups_listing l = {.group_id = grp->id,
                                   .protocol_type = grp->protocol_type ? grp->protocol_type : "",
                                   .state = state_names[grp->state]};
        fn(ud, &l);
    }
}

void groups_describe(struct groups *g, const char *group_id, struct groups_description *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->group_id = group_id;
    ret->protocol_type = "";
    ret->protocol = "";
    ret->state = state_names[GS_DEAD];
    ret->error = check_group_id(g, group_id);
    if (ret->error != KERR_NONE)
        return;
    struct group *grp = find_group(g, group_id);
    if (!grp) {
        if (g->o.gs && gstore_group_has_offsets(g->o.gs, group_id))
            ret->state = state_names[GS_EMPTY];
        return;
    }
    ret->state = state_names[grp->state];
    ret->protocol_type = grp->protocol_type ? grp->protocol_type : "";
    free(g->desc);
    g->desc = NULL;
    if (grp->n_members > 0 && !(g->desc = calloc((size_t)grp->n_members, sizeof(*g->desc)))) {
        ret->error = KERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    /* Kafka's GroupMetadata.summary: metadata and assignments only when Stable. */
    bool stable = grp->state == GS_STABLE;
    if (stable && grp->protocol)
        ret->protocol = grp->protocol;
    int32_t i = 0;
    for (struct gmember *m = grp->members; m; m = m->next, i++) {
        struct groups_described_member *d = &g->desc[i];
        d->member_id = m->id;
        d->instance_id = m->instance_id;
        d->client_id = m->client_id;
        d->client_host = m->client_host;
        d->metadata = (buf_slice){(const uint8_t *)"", 0};
        d->assignment = (buf_slice){(const uint8_t *)"", 0};
        if (stable) {
            const struct gproto *p = member_protocol(m, grp->protocol);
            if (p)
                d->metadata = (buf_slice){p->meta, p->meta_len};
            d->assignment = member_assignment(m);
        }
    }
    ret->n_members = grp->n_members;
    ret->members = g->desc;
}

void groups_delete(struct groups *g, const char *group_id, groups_delete_fn done, void *ud)
{
    int16_t err = check_group_id(g, group_id);
    if (err != KERR_NONE) {
        done(ud, err);
        return;
    }
    struct group *grp = find_group(g, group_id);
    bool offsets = g->o.gs && gstore_group_has_offsets(g->o.gs, group_id);
    if ((!grp && !offsets) || (grp && grp->state == GS_DEAD)) {
        done(ud, KERR_GROUP_ID_NOT_FOUND);
        return;
    }
    if (grp && grp->state != GS_EMPTY) {
        done(ud, KERR_NON_EMPTY_GROUP);
        return;
    }
    struct group tmp = {.id = (char *)group_id};
    struct gappend *a = append_new(g, grp ? grp : &tmp, AP_DELETE);
    if (!a) {
        done(ud, KERR_COORDINATOR_NOT_AVAILABLE);
        return;
    }
    a->del_cb = done;
    a->ud = ud;
    a->remaining = 2;
    if (grp)
        group_free(g, grp, KERR_NOT_COORDINATOR); /* Dead: gone from every answer */
    buf_writer kw;
    buf_writer_init(&kw);
    grec_key_encode(&kw, group_id);
    int16_t e = buf_writer_error(&kw)
                    ? KERR_COORDINATOR_NOT_AVAILABLE
                    : gstore_append(g->o.gs, group_id, (buf_slice){kw.data, (int32_t)kw.len},
                                    (buf_slice){NULL, -1}, append_done, a);
    buf_writer_deinit(&kw);
    if (e != KERR_NONE) {
        a->err = map_store_error(e);
        a->remaining--;
    }
    e = gstore_delete_group_offsets(g->o.gs, group_id, append_done, a);
    if (e != KERR_NONE) {
        if (a->err == KERR_NONE)
            a->err = map_store_error(e);
        if (--a->remaining == 0) {
            append_unlink(g, a);
            done(ud, a->err);
            append_free(a);
        }
    }
}

/* ---- the interface with gstore ----------------------------------------------------- */

bool groups_remove_if_unused(struct groups *g, const char *group_id)
{
    struct group *grp = find_group(g, group_id);
    if (!grp || grp->state != GS_EMPTY || grp->n_members > 0 || grp->n_pending > 0 ||
        (g->o.gs && gstore_group_has_offsets(g->o.gs, group_id)))
        return false;
    struct gappend *a = append_new(g, grp, AP_EMPTY);
    group_free(g, grp, KERR_NOT_COORDINATOR);
    if (!a)
        return true;
    buf_writer kw;
    buf_writer_init(&kw);
    grec_key_encode(&kw, group_id);
    int16_t e = buf_writer_error(&kw)
                    ? KERR_COORDINATOR_NOT_AVAILABLE
                    : gstore_append(g->o.gs, group_id, (buf_slice){kw.data, (int32_t)kw.len},
                                    (buf_slice){NULL, -1}, append_done, a);
    buf_writer_deinit(&kw);
    if (e != KERR_NONE) {
        log_warn("group", "group %s: writing its tombstone failed: %s", group_id, kerr_name(e));
        append_unlink(g, a);
        append_free(a);
    }
    return true;
}

void groups_replay(struct groups *g, int32_t partition, buf_slice key, buf_slice value)
{
    buf_slice gid;
    if (grec_key_decode(key, &gid) < 0)
        return;
    char *id = buf_slice_strdup(gid);
    if (!id)
        return;
    struct group *grp = find_group(g, id);
    if (!value.ptr || value.len < 0) {
        if (grp)
            group_free(g, grp, KERR_NOT_COORDINATOR);
        free(id);
        return;
    }
    struct arena ar;
    arena_init(&ar, 4096, 0);
    struct grec_value v;
    if (grec_value_decode(value, &ar, &v) < 0) {
        log_warn("group", "offsets partition %d: group %s has a record that does not decode",
                 partition, id);
        goto out;
    }
    if (grp)
        group_free(g, grp, KERR_NOT_COORDINATOR);
    if (!(grp = group_new(g, id)))
        goto out;
    grp->partition = partition;
    grp->generation = v.generation;
    grp->protocol_type = buf_slice_strdup(v.protocol_type);
    if (v.protocol.len >= 0)
        grp->protocol = buf_slice_strdup(v.protocol);
    if (v.leader.len >= 0)
        grp->leader = buf_slice_strdup(v.leader);
    int64_t t = now(g);
    struct gmember **tail = &grp->members;
    for (int32_t i = 0; i < v.n_members; i++) {
        const struct grec_member *rm = &v.members[i];
        struct gmember *m = calloc(1, sizeof(*m));
        if (!m)
            break;
        m->id = buf_slice_strdup(rm->member_id);
        if (rm->instance_id.len >= 0)
            m->instance_id = buf_slice_strdup(rm->instance_id);
        m->client_id = buf_slice_strdup(rm->client_id);
        m->client_host = buf_slice_strdup(rm->client_host);
        m->session_ms = rm->session_timeout_ms;
        m->rebalance_ms = rm->rebalance_timeout_ms;
        struct groups_protocol p = {.name = grp->protocol ? grp->protocol : "",
                                    .metadata = rm->subscription};
        if (!m->id || !m->client_id || !m->client_host || set_protocols(m, 1, &p) < 0) {
            member_free(m);
            break;
        }
        set_assignment(m, rm->assignment);
        m->deadline = t + m->session_ms;
        schedule(g, m->deadline);
        *tail = m;
        tail = &m->next;
        grp->n_members++;
    }
    grp->state = grp->n_members > 0 ? GS_STABLE : GS_EMPTY;
    /* The recorded time survives the move (an Empty group's offsets expire
     * from it); a record before version 3 has none. */
    grp->state_ts = v.state_timestamp;
out:
    arena_deinit(&ar);
    free(id);
}

void groups_unload_partition(struct groups *g, int32_t partition)
{
    for (struct group *grp = g->groups, *next; grp; grp = next) {
        next = grp->next;
        if (grp->partition == partition)
            group_free(g, grp, KERR_NOT_COORDINATOR);
    }
}

int16_t groups_validate_commit(struct groups *g, const char *group_id, int32_t generation,
                               const char *member_id, const char *group_instance_id)
{
    const char *mid = member_id ? member_id : "";
    struct group *grp = find_group(g, group_id);
    if (!grp) {
        if (generation >= 0)
            return KERR_ILLEGAL_GENERATION;
        /* Kafka creates the (Empty) group of a simple consumer's commit. */
        group_new(g, group_id);
        return KERR_NONE;
    }
    if (grp->state == GS_DEAD)
        return KERR_COORDINATOR_NOT_AVAILABLE;
    if (generation >= 0 || *mid || group_instance_id) {
        struct gmember *m = NULL;
        int16_t err = validate_member(grp, generation, mid, group_instance_id, &m);
        if (err != KERR_NONE)
            return err;
        if (grp->state == GS_COMPLETING)
            return KERR_REBALANCE_IN_PROGRESS;
        heartbeat(g, m);
        return KERR_NONE;
    }
    return grp->state == GS_EMPTY ? KERR_NONE : KERR_UNKNOWN_MEMBER_ID;
}

bool groups_is_empty(const struct groups *g, const char *group_id)
{
    const struct group *grp = find_group(g, group_id);
    return !grp || grp->n_members == 0 || grp->state == GS_EMPTY || grp->state == GS_DEAD;
}

/* Kafka's subscribedTopics check for one topic: 1 a member subscribes to @topic,
 * 0 none does, -1 the subscriptions are not known (a member's metadata does not
 * decode as the consumer protocol's). */
static int consumer_subscribes(const struct group *grp, const char *topic)
{
    int found = 0;
    for (const struct gmember *m = grp->members; m; m = m->next) {
        const struct gproto *p = grp->protocol ? member_protocol(m, grp->protocol)
                                               : (m->n_protocols > 0 ? &m->protocols[0] : NULL);
        int r = p ? grec_subscription_find((buf_slice){p->meta, p->meta_len}, topic) : -EBADMSG;
        if (r < 0)
            return -1;
        if (r > 0)
            found = 1;
    }
    return found;
}

bool groups_offset_expired(const struct groups *g, const char *group_id, const char *topic,
                           int64_t commit_ts, int64_t expire_ts, int64_t now_ms,
                           int64_t retention_ms)
{
    const struct group *grp = find_group(g, group_id);
    int64_t base = commit_ts;
    bool has_type = grp && grp->protocol_type && *grp->protocol_type;
    if (grp && grp->state == GS_EMPTY) {
        if (has_type && grp->state_ts >= 0)
            base = grp->state_ts;
    } else if (grp && grp->state == GS_STABLE) {
        if (!streq(grp->protocol_type, "consumer") || consumer_subscribes(grp, topic) != 0)
            return false;
    } else if (grp && grp->state != GS_DEAD) {
        return false; /* rebalancing: its subscriptions are changing */
    }
    if (expire_ts >= 0)
        return now_ms >= expire_ts;
    return now_ms - base >= retention_ms;
}

bool groups_subscribed_to(const struct groups *g, const char *group_id, const char *topic)
{
    const struct group *grp = find_group(g, group_id);
    if (!grp || grp->n_members == 0 || grp->state == GS_EMPTY || grp->state == GS_DEAD)
        return false;
    /* Subscriptions of another protocol type cannot be read: assume subscribed. */
    if (!streq(grp->protocol_type, "consumer"))
        return true;
    for (const struct gmember *m = grp->members; m; m = m->next) {
        const struct gproto *p = grp->protocol ? member_protocol(m, grp->protocol)
                                               : (m->n_protocols > 0 ? &m->protocols[0] : NULL);
        if (p && grec_subscription_names((buf_slice){p->meta, p->meta_len}, topic))
            return true;
    }
    return false;
}
