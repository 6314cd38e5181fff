/* state: the metadata state, record application, snapshots, equality and the
 * invariant checker. Every apply function validates the whole record before it
 * changes anything, and allocates before it links, so a rejected record or a
 * failed allocation leaves the state as it was. */
#include "common/meta/state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "metadata.pb-c.h"

typedef Weir__Meta__MetadataRecord MetaRecord;

#define IMAGE_VERSION 1

static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static bool str_fits(const char *s, size_t max)
{
    return strnlen(nz(s), max + 1) <= max;
}

static bool uuid_zero(const uint8_t *id)
{
    for (size_t i = 0; i < CSTATE_UUID_LEN; i++)
        if (id[i])
            return false;
    return true;
}

static void uuid_hex(const uint8_t *id, char out[33])
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < CSTATE_UUID_LEN; i++) {
        out[2 * i] = hx[id[i] >> 4];
        out[2 * i + 1] = hx[id[i] & 15];
    }
    out[32] = 0;
}

static bool has_dup(const int32_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (v[i] == v[j])
                return true;
    return false;
}

static bool contains(const int32_t *v, size_t n, int32_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

bool cstate_topic_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = strnlen(name, CSTATE_MAX_TOPIC_NAME + 1);
    if (n == 0 || n > CSTATE_MAX_TOPIC_NAME)
        return false;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

const char *cstate_broker_state_name(enum cstate_broker_state st)
{
    switch (st) {
    case CSTATE_BROKER_REGISTERED:
        return "REGISTERED";
    case CSTATE_BROKER_FENCED:
        return "FENCED";
    case CSTATE_BROKER_CONTROLLED_SHUTDOWN:
        return "CONTROLLED_SHUTDOWN";
    }
    return "?";
}

/* ---- topic indexes: open addressing, linear probing, backward-shift delete ---- */

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    /* Names often share prefixes; a final mix spreads the low bits we mask. */
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static uint64_t key_hash(bool by_id, const void *key)
{
    return by_id ? fnv1a(key, CSTATE_UUID_LEN) : fnv1a(key, strlen(key));
}

static bool key_eq(bool by_id, const struct cstate_topic *t, const void *key)
{
    return by_id ? !memcmp(t->id, key, CSTATE_UUID_LEN) : !strcmp(t->name, key);
}

static const void *topic_key(bool by_id, const struct cstate_topic *t)
{
    return by_id ? (const void *)t->id : (const void *)t->name;
}

static struct cstate_topic *tindex_find(const struct cstate_tindex *ix, bool by_id, const void *key)
{
    if (!ix->cap)
        return NULL;
    size_t mask = ix->cap - 1;
    for (size_t i = key_hash(by_id, key) & mask;; i = (i + 1) & mask) {
        struct cstate_topic *t = ix->slots[i];
        if (!t)
            return NULL;
        if (key_eq(by_id, t, key))
            return t;
    }
}

static void tindex_put(struct cstate_topic **slots, size_t cap, bool by_id, struct cstate_topic *t)
{
    size_t mask = cap - 1;
    size_t i = key_hash(by_id, topic_key(by_id, t)) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = t;
}

/* Make room for @want entries at a load of at most 3/4. */
static int tindex_reserve(struct cstate_tindex *ix, bool by_id, size_t want)
{
    if (want * 4 <= ix->cap * 3)
        return 0;
    size_t cap = ix->cap ? ix->cap : 16;
    while (want * 4 > cap * 3)
        cap *= 2;
    struct cstate_topic **slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i])
            tindex_put(slots, cap, by_id, ix->slots[i]);
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return 0;
}

static void tindex_insert(struct cstate_tindex *ix, bool by_id, struct cstate_topic *t)
{
    tindex_put(ix->slots, ix->cap, by_id, t);
    ix->n++;
}

static void tindex_remove(struct cstate_tindex *ix, bool by_id, const struct cstate_topic *t)
{
    size_t mask = ix->cap - 1;
    size_t i = key_hash(by_id, topic_key(by_id, t)) & mask;
    while (ix->slots[i] != t)
        i = (i + 1) & mask;
    /* Shift later members of the probe run back so lookups never stop early. */
    size_t j = i;
    for (;;) {
        ix->slots[i] = NULL;
        for (;;) {
            j = (j + 1) & mask;
            if (!ix->slots[j]) {
                ix->n--;
                return;
            }
            size_t home = key_hash(by_id, topic_key(by_id, ix->slots[j])) & mask;
            /* Movable unless its home lies cyclically in (i, j]. */
            bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        ix->slots[i] = ix->slots[j];
        i = j;
    }
}

/* ---- lifecycle and lookups ------------------------------------------------------ */

int cstate_new(struct cstate **ret)
{
    struct cstate *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->offset = -1;
    s->next_broker_epoch = 1;
    *ret = s;
    return 0;
}

static void endpoint_deinit(struct cstate_endpoint *e)
{
    free(e->listener);
    free(e->host);
    free(e->security_protocol);
    memset(e, 0, sizeof(*e));
}

static void broker_deinit(struct cstate_broker *b)
{
    for (uint32_t i = 0; i < b->n_endpoints; i++)
        endpoint_deinit(&b->endpoints[i]);
    free(b->endpoints);
    endpoint_deinit(&b->replication);
    free(b->rack);
    memset(b, 0, sizeof(*b));
}

static size_t part_n_ids(const struct cstate_partition *p)
{
    return (size_t)p->n_replicas + p->n_isr + p->n_adding + p->n_removing;
}

static void part_deinit(struct cstate_partition *p)
{
    if (part_n_ids(p) > CSTATE_INLINE_IDS)
        free(p->ids.heap);
}

static void configs_free(struct cstate_config_entry *c, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        free(c[i].name);
        free(c[i].value);
    }
    free(c);
}

static void topic_free(struct cstate_topic *t)
{
    if (!t)
        return;
    for (int32_t i = 0; i < t->n_parts; i++)
        part_deinit(&t->parts[i]);
    free(t->parts);
    configs_free(t->configs, t->n_configs);
    free(t->name);
    free(t);
}

void cstate_free(struct cstate *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_brokers; i++)
        broker_deinit(&s->brokers[i]);
    free(s->brokers);
    struct cstate_topic *t = s->first_topic;
    while (t) {
        struct cstate_topic *next = t->next;
        topic_free(t);
        t = next;
    }
    for (size_t i = 0; i < s->n_broker_configs; i++) {
        free(s->broker_configs[i].name);
        free(s->broker_configs[i].value);
    }
    free(s->broker_configs);
    free(s->by_name.slots);
    free(s->by_id.slots);
    free(s->cluster_id);
    free(s);
}

/* Index of the first broker with id >= @id. */
static size_t broker_lower_bound(const struct cstate *s, int32_t id)
{
    size_t lo = 0, hi = s->n_brokers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->brokers[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct cstate_broker *cstate_broker(const struct cstate *s, int32_t id)
{
    size_t i = broker_lower_bound(s, id);
    return i < s->n_brokers && s->brokers[i].id == id ? &s->brokers[i] : NULL;
}

static struct cstate_broker *broker_mut(struct cstate *s, int32_t id)
{
    return (struct cstate_broker *)cstate_broker(s, id);
}

bool cstate_broker_eligible(const struct cstate *s, int32_t id)
{
    const struct cstate_broker *b = cstate_broker(s, id);
    return b && b->state == CSTATE_BROKER_REGISTERED;
}

const struct cstate_topic *cstate_topic_by_name(const struct cstate *s, const char *name)
{
    return name ? tindex_find(&s->by_name, false, name) : NULL;
}

const struct cstate_topic *cstate_topic_by_id(const struct cstate *s,
                                              const uint8_t id[CSTATE_UUID_LEN])
{
    return tindex_find(&s->by_id, true, id);
}

const char *cstate_topic_config(const struct cstate_topic *t, const char *name)
{
    size_t lo = 0, hi = t->n_configs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->configs[mid].name, name);
        if (c == 0)
            return t->configs[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int bconf_cmp(int32_t a_id, const char *a_name, int32_t b_id, const char *b_name)
{
    if (a_id != b_id)
        return a_id < b_id ? -1 : 1;
    return strcmp(a_name, b_name);
}

/* Index of the first dynamic broker config at or after (@id, @name). */
static size_t bconf_lower_bound(const struct cstate *s, int32_t id, const char *name)
{
    size_t lo = 0, hi = s->n_broker_configs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct cstate_broker_config *c = &s->broker_configs[mid];
        if (bconf_cmp(c->broker_id, c->name, id, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const char *cstate_broker_config(const struct cstate *s, int32_t broker_id, const char *name)
{
    size_t i = bconf_lower_bound(s, broker_id, name);
    if (i < s->n_broker_configs && s->broker_configs[i].broker_id == broker_id &&
        !strcmp(s->broker_configs[i].name, name))
        return s->broker_configs[i].value;
    return NULL;
}

bool cstate_part_is_replica(const struct cstate_partition *p, int32_t id)
{
    return contains(cstate_part_replicas(p), p->n_replicas, id);
}

bool cstate_part_in_isr(const struct cstate_partition *p, int32_t id)
{
    return contains(cstate_part_isr(p), p->n_isr, id);
}

static struct cstate_topic *topic_by_id_mut(struct cstate *s, const ProtobufCBinaryData *id)
{
    if (id->len != CSTATE_UUID_LEN)
        return NULL;
    return tindex_find(&s->by_id, true, id->data);
}

/* ---- records list ------------------------------------------------------------------ */

void cstate_records_init(struct cstate_records *r)
{
    memset(r, 0, sizeof(*r));
}

void cstate_records_truncate(struct cstate_records *r, size_t n)
{
    for (size_t i = n; i < r->n; i++)
        free(r->v[i].data);
    if (n < r->n)
        r->n = n;
}

void cstate_records_clear(struct cstate_records *r)
{
    cstate_records_truncate(r, 0);
}

void cstate_records_deinit(struct cstate_records *r)
{
    if (!r)
        return;
    cstate_records_clear(r);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

int cstate_records_add(struct cstate_records *r, const MetaRecord *rec)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct cstate_record *v = realloc(r->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        r->v = v;
        r->cap = cap;
    }
    size_t len = weir__meta__metadata_record__get_packed_size(rec);
    /* An empty oneof packs to zero bytes; keep one byte so the buffer exists. */
    uint8_t *data = malloc(len ? len : 1);
    if (!data)
        return -ENOMEM;
    weir__meta__metadata_record__pack(rec, data);
    r->v[r->n].data = data;
    r->v[r->n].len = len;
    r->n++;
    return 0;
}

/* ---- building parts of the state from messages ------------------------------------- */

struct part_spec {
    int32_t leader, leader_epoch, partition_epoch;
    const int32_t *lists[4]; /* replicas, isr, adding, removing */
    size_t n[4];
};

static int ids_nonneg(const int32_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0)
            return -1;
    return 0;
}

static int spec_check(const struct cstate *s, const struct part_spec *sp, char *eb, size_t el)
{
    static const char *names[4] = {"replicas", "isr", "adding replicas", "removing replicas"};
    for (int k = 0; k < 4; k++) {
        if (sp->n[k] > CSTATE_MAX_REPLICAS)
            return fail(eb, el, "%zu %s (max %d)", sp->n[k], names[k], CSTATE_MAX_REPLICAS);
        if (ids_nonneg(sp->lists[k], sp->n[k]))
            return fail(eb, el, "negative broker id in %s", names[k]);
        if (has_dup(sp->lists[k], sp->n[k]))
            return fail(eb, el, "duplicate broker id in %s", names[k]);
        if (k > 0)
            for (size_t i = 0; i < sp->n[k]; i++)
                if (!contains(sp->lists[0], sp->n[0], sp->lists[k][i]))
                    return fail(eb, el, "%s member %d is not a replica", names[k], sp->lists[k][i]);
    }
    if (sp->n[0] == 0)
        return fail(eb, el, "no replicas");
    if (sp->n[1] == 0)
        return fail(eb, el, "empty isr");
    for (size_t i = 0; i < sp->n[2]; i++)
        if (contains(sp->lists[3], sp->n[3], sp->lists[2][i]))
            return fail(eb, el, "replica %d both added and removed", sp->lists[2][i]);
    if (sp->leader_epoch < 0 || sp->partition_epoch < 0)
        return fail(eb, el, "negative epoch");
    if (sp->leader < -1)
        return fail(eb, el, "invalid leader %d", sp->leader);
    if (sp->leader >= 0) {
        if (!contains(sp->lists[1], sp->n[1], sp->leader))
            return fail(eb, el, "leader %d not in isr", sp->leader);
        const struct cstate_broker *b = cstate_broker(s, sp->leader);
        if (!b || b->state == CSTATE_BROKER_FENCED)
            return fail(eb, el, "leader %d is %s", sp->leader, b ? "fenced" : "not registered");
    }
    return 0;
}

/* Fill @p from a checked spec. -ENOMEM, with @p untouched. */
static int part_build(struct cstate_partition *p, const struct part_spec *sp)
{
    size_t total = sp->n[0] + sp->n[1] + sp->n[2] + sp->n[3];
    struct cstate_partition np = {
        .leader = sp->leader,
        .leader_epoch = sp->leader_epoch,
        .partition_epoch = sp->partition_epoch,
        .n_replicas = (uint8_t)sp->n[0],
        .n_isr = (uint8_t)sp->n[1],
        .n_adding = (uint8_t)sp->n[2],
        .n_removing = (uint8_t)sp->n[3],
    };
    int32_t *ids = np.ids.inl;
    if (total > CSTATE_INLINE_IDS) {
        ids = malloc(total * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        np.ids.heap = ids;
    }
    for (int k = 0; k < 4; k++) {
        if (sp->n[k])
            memcpy(ids, sp->lists[k], sp->n[k] * sizeof(*ids));
        ids += sp->n[k];
    }
    *p = np;
    return 0;
}

static void spec_from_state_msg(struct part_spec *sp, const Weir__Meta__PartitionState *m)
{
    *sp = (struct part_spec){
        .leader = m->leader,
        .leader_epoch = m->leader_epoch,
        .partition_epoch = m->partition_epoch,
        .lists = {m->replicas, m->isr, m->adding_replicas, m->removing_replicas},
        .n = {m->n_replicas, m->n_isr, m->n_adding_replicas, m->n_removing_replicas},
    };
}

/* Check partition @index of a new or growing topic, and build it into @p. */
static int part_from_msg(const struct cstate *s, const Weir__Meta__PartitionState *m, int32_t index,
                         struct cstate_partition *p, char *eb, size_t el)
{
    if (!m)
        return fail(eb, el, "missing partition %d", index);
    if (m->partition != index)
        return fail(eb, el, "partition %d where %d was expected", m->partition, index);
    struct part_spec sp;
    spec_from_state_msg(&sp, m);
    char why[160];
    int rc = spec_check(s, &sp, why, sizeof(why));
    if (rc < 0)
        return fail(eb, el, "partition %d: %s", index, why);
    return part_build(p, &sp);
}

static int configs_cmp(const void *a, const void *b)
{
    const struct cstate_config_entry *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* Check config entries and copy them sorted by name. */
static int configs_build(Weir__Meta__ConfigEntry *const *e, size_t n,
                         struct cstate_config_entry **ret, uint32_t *ret_n, char *eb, size_t el)
{
    if (n > CSTATE_MAX_CONFIGS)
        return fail(eb, el, "%zu config overrides (max %d)", n, CSTATE_MAX_CONFIGS);
    for (size_t i = 0; i < n; i++) {
        if (!e[i])
            return fail(eb, el, "missing config entry");
        const char *name = nz(e[i]->name), *value = nz(e[i]->value);
        if (!*name || !str_fits(name, CSTATE_MAX_CONFIG_NAME))
            return fail(eb, el, "invalid config name");
        if (!str_fits(value, CSTATE_MAX_CONFIG_VALUE))
            return fail(eb, el, "config value of %s too long", name);
    }
    struct cstate_config_entry *c = NULL;
    if (n) {
        c = calloc(n, sizeof(*c));
        if (!c)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        c[i].name = dupstr(nz(e[i]->name));
        c[i].value = dupstr(nz(e[i]->value));
        if (!c[i].name || !c[i].value) {
            configs_free(c, (uint32_t)n);
            return -ENOMEM;
        }
    }
    if (n > 1)
        qsort(c, n, sizeof(*c), configs_cmp);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(c[i - 1].name, c[i].name)) {
            int rc = fail(eb, el, "config %s given twice", c[i].name);
            configs_free(c, (uint32_t)n);
            return rc;
        }
    }
    *ret = c;
    *ret_n = (uint32_t)n;
    return 0;
}

static bool port_ok(int32_t port)
{
    return port >= 1 && port <= 65535;
}

static int endpoint_build(const Weir__Meta__Endpoint *m, struct cstate_endpoint *ret, char *eb,
                          size_t el)
{
    const char *listener = nz(m->listener), *host = nz(m->host), *sec = nz(m->security_protocol);
    if (!*host || !str_fits(host, CSTATE_MAX_STRING))
        return fail(eb, el, "invalid endpoint host");
    if (!str_fits(listener, CSTATE_MAX_STRING) || !str_fits(sec, CSTATE_MAX_STRING))
        return fail(eb, el, "endpoint listener or protocol too long");
    if (!port_ok(m->port))
        return fail(eb, el, "invalid endpoint port %d", m->port);
    struct cstate_endpoint e = {
        .listener = dupstr(listener),
        .host = dupstr(host),
        .port = m->port,
        .security_protocol = dupstr(sec),
    };
    if (!e.listener || !e.host || !e.security_protocol) {
        endpoint_deinit(&e);
        return -ENOMEM;
    }
    *ret = e;
    return 0;
}

/* Check a registration's own fields and build the broker (state left 0). */
static int broker_build(const Weir__Meta__RegisterBrokerRecord *r, struct cstate_broker *ret,
                        char *eb, size_t el)
{
    if (r->broker_id < 0)
        return fail(eb, el, "invalid broker id %d", r->broker_id);
    if (r->incarnation_id.len != CSTATE_UUID_LEN)
        return fail(eb, el, "incarnation id of %zu bytes", r->incarnation_id.len);
    if (r->broker_epoch < 0 || r->broker_epoch == INT64_MAX)
        return fail(eb, el, "invalid broker epoch %" PRId64, r->broker_epoch);
    if (r->n_endpoints > CSTATE_MAX_ENDPOINTS)
        return fail(eb, el, "%zu endpoints (max %d)", r->n_endpoints, CSTATE_MAX_ENDPOINTS);
    if (!str_fits(r->rack, CSTATE_MAX_STRING))
        return fail(eb, el, "rack too long");
    for (size_t i = 0; i < r->n_endpoints; i++) {
        if (!r->endpoints[i])
            return fail(eb, el, "missing endpoint");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(nz(r->endpoints[i]->listener), nz(r->endpoints[j]->listener)))
                return fail(eb, el, "listener %s given twice", nz(r->endpoints[i]->listener));
    }
    struct cstate_broker b = {
        .id = r->broker_id,
        .epoch = r->broker_epoch,
    };
    memcpy(b.incarnation, r->incarnation_id.data, CSTATE_UUID_LEN);
    int rc = 0;
    if (r->n_endpoints) {
        b.endpoints = calloc(r->n_endpoints, sizeof(*b.endpoints));
        if (!b.endpoints)
            return -ENOMEM;
    }
    for (size_t i = 0; i < r->n_endpoints && rc == 0; i++) {
        rc = endpoint_build(r->endpoints[i], &b.endpoints[i], eb, el);
        if (rc == 0)
            b.n_endpoints++;
    }
    if (rc == 0 && r->replication_endpoint)
        rc = endpoint_build(r->replication_endpoint, &b.replication, eb, el);
    if (rc == 0 && r->rack && *r->rack && !(b.rack = dupstr(r->rack)))
        rc = -ENOMEM;
    if (rc < 0) {
        broker_deinit(&b);
        return rc;
    }
    *ret = b;
    return 0;
}

static int brokers_reserve(struct cstate *s, size_t want)
{
    if (want <= s->cap_brokers)
        return 0;
    size_t cap = s->cap_brokers ? s->cap_brokers * 2 : 8;
    while (cap < want)
        cap *= 2;
    struct cstate_broker *v = realloc(s->brokers, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    s->brokers = v;
    s->cap_brokers = cap;
    return 0;
}

/* Insert or replace; capacity must have been reserved for an insert. */
static void broker_put(struct cstate *s, struct cstate_broker *b)
{
    size_t i = broker_lower_bound(s, b->id);
    if (i < s->n_brokers && s->brokers[i].id == b->id) {
        broker_deinit(&s->brokers[i]);
    } else {
        memmove(&s->brokers[i + 1], &s->brokers[i], (s->n_brokers - i) * sizeof(*s->brokers));
        s->n_brokers++;
    }
    s->brokers[i] = *b;
}

/* A topic under construction: name, id and configs checked, partitions added
 * one at a time (the snapshot decoder streams them). */
static int topic_begin(const struct cstate *s, const char *name, const ProtobufCBinaryData *id,
                       Weir__Meta__ConfigEntry *const *configs, size_t n_configs,
                       struct cstate_topic **ret, char *eb, size_t el)
{
    if (!cstate_topic_name_valid(name))
        return fail(eb, el, "invalid topic name");
    if (id->len != CSTATE_UUID_LEN || uuid_zero(id->data))
        return fail(eb, el, "invalid topic id for %s", name);
    if (cstate_topic_by_name(s, name))
        return fail(eb, el, "topic %s exists", name);
    if (cstate_topic_by_id(s, id->data))
        return fail(eb, el, "topic id of %s is taken", name);
    struct cstate_topic *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    memcpy(t->id, id->data, CSTATE_UUID_LEN);
    int rc = configs_build(configs, n_configs, &t->configs, &t->n_configs, eb, el);
    if (rc == 0 && !(t->name = dupstr(name)))
        rc = -ENOMEM;
    if (rc < 0) {
        topic_free(t);
        return rc;
    }
    *ret = t;
    return 0;
}

/* Grow @t's partition array to hold @n more. */
static int topic_reserve_parts(struct cstate_topic *t, size_t n)
{
    size_t want = (size_t)t->n_parts + n;
    struct cstate_partition *v = realloc(t->parts, (want ? want : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    t->parts = v;
    return 0;
}

/* Link a built topic; both indexes must have room reserved. */
static void topic_link(struct cstate *s, struct cstate_topic *t)
{
    tindex_insert(&s->by_name, false, t);
    tindex_insert(&s->by_id, true, t);
    t->prev = s->last_topic;
    t->next = NULL;
    if (s->last_topic)
        s->last_topic->next = t;
    else
        s->first_topic = t;
    s->last_topic = t;
    s->n_topics++;
    s->n_partitions += (uint64_t)t->n_parts;
}

static void topic_unlink(struct cstate *s, struct cstate_topic *t)
{
    tindex_remove(&s->by_name, false, t);
    tindex_remove(&s->by_id, true, t);
    if (t->prev)
        t->prev->next = t->next;
    else
        s->first_topic = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        s->last_topic = t->prev;
    s->n_topics--;
    s->n_partitions -= (uint64_t)t->n_parts;
}

static int topics_reserve(struct cstate *s)
{
    int rc = tindex_reserve(&s->by_name, false, s->n_topics + 1);
    if (rc == 0)
        rc = tindex_reserve(&s->by_id, true, s->n_topics + 1);
    return rc;
}

/* Build a whole topic from a CreateTopicRecord (not linked). */
static int topic_from_record(const struct cstate *s, const Weir__Meta__CreateTopicRecord *r,
                             struct cstate_topic **ret, char *eb, size_t el)
{
    if (r->n_partitions < 1 || r->n_partitions > CSTATE_MAX_PARTITIONS)
        return fail(eb, el, "%zu partitions", r->n_partitions);
    struct cstate_topic *t = NULL;
    int rc = topic_begin(s, nz(r->name), &r->topic_id, r->configs, r->n_configs, &t, eb, el);
    if (rc < 0)
        return rc;
    rc = topic_reserve_parts(t, r->n_partitions);
    for (size_t i = 0; i < r->n_partitions && rc == 0; i++) {
        rc = part_from_msg(s, r->partitions[i], t->n_parts, &t->parts[t->n_parts], eb, el);
        if (rc == 0)
            t->n_parts++;
    }
    if (rc < 0) {
        topic_free(t);
        return rc;
    }
    *ret = t;
    return 0;
}

/* ---- apply ------------------------------------------------------------------------------- */

static int apply_bootstrap(struct cstate *s, const Weir__Meta__BootstrapRecord *r, char *eb,
                           size_t el)
{
    const char *id = nz(r->cluster_id);
    if (s->cluster_id)
        return fail(eb, el, "cluster id already set to %s", s->cluster_id);
    if (!*id || !str_fits(id, CSTATE_MAX_STRING))
        return fail(eb, el, "invalid cluster id");
    if (!(s->cluster_id = dupstr(id)))
        return -ENOMEM;
    return 0;
}

static int apply_register(struct cstate *s, const Weir__Meta__RegisterBrokerRecord *r, char *eb,
                          size_t el)
{
    if (r->broker_epoch < s->next_broker_epoch)
        return fail(eb, el, "broker %d epoch %" PRId64 " below next epoch %" PRId64, r->broker_id,
                    r->broker_epoch, s->next_broker_epoch);
    const struct cstate_broker *old = cstate_broker(s, r->broker_id);
    if (old && old->state != CSTATE_BROKER_FENCED)
        return fail(eb, el, "broker %d is %s with epoch %" PRId64, old->id,
                    cstate_broker_state_name(old->state), old->epoch);
    if (!old && brokers_reserve(s, s->n_brokers + 1) < 0)
        return -ENOMEM;
    struct cstate_broker b = {0};
    int rc = broker_build(r, &b, eb, el);
    if (rc < 0)
        return rc;
    b.state = CSTATE_BROKER_REGISTERED;
    broker_put(s, &b);
    s->next_broker_epoch = r->broker_epoch + 1;
    return 0;
}

static struct cstate_broker *broker_at_epoch(struct cstate *s, int32_t id, int64_t epoch, char *eb,
                                             size_t el, int *rc)
{
    struct cstate_broker *b = broker_mut(s, id);
    if (!b)
        *rc = fail(eb, el, "broker %d is not registered", id);
    else if (b->epoch != epoch)
        *rc = fail(eb, el, "broker %d has epoch %" PRId64 ", not %" PRId64, id, b->epoch, epoch);
    else
        return b;
    return NULL;
}

static int apply_fence(struct cstate *s, const Weir__Meta__FenceBrokerRecord *r, char *eb,
                       size_t el)
{
    int rc;
    struct cstate_broker *b = broker_at_epoch(s, r->broker_id, r->broker_epoch, eb, el, &rc);
    if (!b)
        return rc;
    if (b->state == CSTATE_BROKER_FENCED)
        return fail(eb, el, "broker %d is already fenced", b->id);
    /* The controller moves leaderships first; a fenced leader would break the
     * single-leader guarantee, so refuse rather than trust it. */
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next)
        for (int32_t i = 0; i < t->n_parts; i++)
            if (t->parts[i].leader == b->id)
                return fail(eb, el, "broker %d still leads %s-%d", b->id, t->name, i);
    b->state = CSTATE_BROKER_FENCED;
    return 0;
}

static int apply_controlled_shutdown(struct cstate *s,
                                     const Weir__Meta__BrokerControlledShutdownRecord *r, char *eb,
                                     size_t el)
{
    int rc;
    struct cstate_broker *b = broker_at_epoch(s, r->broker_id, r->broker_epoch, eb, el, &rc);
    if (!b)
        return rc;
    if (b->state != CSTATE_BROKER_REGISTERED)
        return fail(eb, el, "broker %d is %s", b->id, cstate_broker_state_name(b->state));
    b->state = CSTATE_BROKER_CONTROLLED_SHUTDOWN;
    return 0;
}

static int apply_unregister(struct cstate *s, const Weir__Meta__UnregisterBrokerRecord *r, char *eb,
                            size_t el)
{
    int rc;
    struct cstate_broker *b = broker_at_epoch(s, r->broker_id, r->broker_epoch, eb, el, &rc);
    if (!b)
        return rc;
    if (b->state != CSTATE_BROKER_FENCED)
        return fail(eb, el, "broker %d is %s", b->id, cstate_broker_state_name(b->state));
    size_t i = (size_t)(b - s->brokers);
    broker_deinit(b);
    memmove(&s->brokers[i], &s->brokers[i + 1], (s->n_brokers - i - 1) * sizeof(*s->brokers));
    s->n_brokers--;
    return 0;
}

static int apply_create_topic(struct cstate *s, const Weir__Meta__CreateTopicRecord *r, char *eb,
                              size_t el)
{
    if (topics_reserve(s) < 0)
        return -ENOMEM;
    struct cstate_topic *t = NULL;
    int rc = topic_from_record(s, r, &t, eb, el);
    if (rc < 0)
        return rc;
    topic_link(s, t);
    return 0;
}

static int apply_delete_topic(struct cstate *s, const Weir__Meta__DeleteTopicRecord *r, char *eb,
                              size_t el)
{
    struct cstate_topic *t = topic_by_id_mut(s, &r->topic_id);
    if (!t)
        return fail(eb, el, "unknown topic id");
    if (strcmp(t->name, nz(r->name)))
        return fail(eb, el, "topic id names %s, not %s", t->name, nz(r->name));
    topic_unlink(s, t);
    topic_free(t);
    return 0;
}

static int apply_create_partitions(struct cstate *s, const Weir__Meta__CreatePartitionsRecord *r,
                                   char *eb, size_t el)
{
    struct cstate_topic *t = topic_by_id_mut(s, &r->topic_id);
    if (!t)
        return fail(eb, el, "unknown topic id");
    if (r->n_partitions < 1 || r->n_partitions > (size_t)(CSTATE_MAX_PARTITIONS - t->n_parts))
        return fail(eb, el, "%zu new partitions for %s with %d", r->n_partitions, t->name,
                    t->n_parts);
    if (topic_reserve_parts(t, r->n_partitions) < 0)
        return -ENOMEM;
    /* Build past the end of the array and publish the count only when all fit. */
    size_t built = 0;
    int rc = 0;
    for (; built < r->n_partitions; built++) {
        int32_t index = t->n_parts + (int32_t)built;
        rc = part_from_msg(s, r->partitions[built], index, &t->parts[index], eb, el);
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        for (size_t i = 0; i < built; i++)
            part_deinit(&t->parts[t->n_parts + (int32_t)i]);
        return rc;
    }
    t->n_parts += (int32_t)built;
    s->n_partitions += built;
    return 0;
}

static int apply_partition_change(struct cstate *s, const Weir__Meta__PartitionChangeRecord *r,
                                  char *eb, size_t el)
{
    struct cstate_topic *t = topic_by_id_mut(s, &r->topic_id);
    if (!t)
        return fail(eb, el, "unknown topic id");
    if (r->partition < 0 || r->partition >= t->n_parts)
        return fail(eb, el, "%s has no partition %d", t->name, r->partition);
    struct cstate_partition *p = &t->parts[r->partition];
    struct part_spec sp = {
        .leader = r->leader,
        .leader_epoch = r->leader_epoch,
        .partition_epoch = r->partition_epoch,
        .lists = {cstate_part_replicas(p), r->isr, cstate_part_adding(p), cstate_part_removing(p)},
        .n = {p->n_replicas, r->n_isr, p->n_adding, p->n_removing},
    };
    if (r->replicas_changed) {
        sp.lists[0] = r->replicas;
        sp.lists[2] = r->adding_replicas;
        sp.lists[3] = r->removing_replicas;
        sp.n[0] = r->n_replicas;
        sp.n[2] = r->n_adding_replicas;
        sp.n[3] = r->n_removing_replicas;
    }
    if (p->partition_epoch == INT32_MAX || r->partition_epoch != p->partition_epoch + 1)
        return fail(eb, el, "%s-%d: partition epoch %d after %d", t->name, r->partition,
                    r->partition_epoch, p->partition_epoch);
    if (r->leader_epoch < p->leader_epoch ||
        (r->leader != p->leader && r->leader_epoch == p->leader_epoch))
        return fail(eb, el, "%s-%d: leader %d epoch %d after leader %d epoch %d", t->name,
                    r->partition, r->leader, r->leader_epoch, p->leader, p->leader_epoch);
    char why[160];
    int rc = spec_check(s, &sp, why, sizeof(why));
    if (rc < 0)
        return fail(eb, el, "%s-%d: %s", t->name, r->partition, why);
    struct cstate_partition np;
    if (part_build(&np, &sp) < 0)
        return -ENOMEM;
    part_deinit(p);
    *p = np;
    return 0;
}

static int apply_topic_config(struct cstate *s, const Weir__Meta__TopicConfigRecord *r, char *eb,
                              size_t el)
{
    struct cstate_topic *t = topic_by_id_mut(s, &r->topic_id);
    if (!t)
        return fail(eb, el, "unknown topic id");
    struct cstate_config_entry *c;
    uint32_t n;
    int rc = configs_build(r->configs, r->n_configs, &c, &n, eb, el);
    if (rc < 0)
        return rc;
    configs_free(t->configs, t->n_configs);
    t->configs = c;
    t->n_configs = n;
    return 0;
}

/* A block of producer ids: it must start exactly at the next unissued id, so
 * a replayed or raced allocation can never overlap an earlier one. */
static int apply_producer_ids(struct cstate *s, const Weir__Meta__ProducerIdsRecord *r, char *eb,
                              size_t el)
{
    int rc = 0;
    if (!broker_at_epoch(s, r->broker_id, r->broker_epoch, eb, el, &rc))
        return rc;
    if (r->first_id != s->next_producer_id)
        return fail(eb, el, "producer id block at %" PRId64 ", next is %" PRId64, r->first_id,
                    s->next_producer_id);
    if (r->count < 1 || r->count > CSTATE_MAX_PRODUCER_IDS || r->first_id > INT64_MAX - r->count)
        return fail(eb, el, "invalid producer id block size %d", (int)r->count);
    s->next_producer_id = r->first_id + r->count;
    return 0;
}

/* Shape checks shared by records and images; which keys and values are
 * allowed is the coordinator's business. */
static int bconf_check(const Weir__Meta__BrokerConfigRecord *r, char *eb, size_t el)
{
    const char *name = nz(r->name), *value = nz(r->value);
    if (r->broker_id < CSTATE_CLUSTER_DEFAULT)
        return fail(eb, el, "invalid broker id %d for a broker config", (int)r->broker_id);
    if (!*name || !str_fits(name, CSTATE_MAX_CONFIG_NAME))
        return fail(eb, el, "invalid broker config name");
    if (!str_fits(value, CSTATE_MAX_CONFIG_VALUE))
        return fail(eb, el, "broker config value of %s too long", name);
    if (r->remove && *value)
        return fail(eb, el, "removal of broker config %s carries a value", name);
    return 0;
}

/* Set or remove one key in one scope; the array stays sorted. */
static int apply_broker_config(struct cstate *s, const Weir__Meta__BrokerConfigRecord *r, char *eb,
                               size_t el)
{
    int rc = bconf_check(r, eb, el);
    if (rc < 0)
        return rc;
    const char *name = nz(r->name);
    size_t i = bconf_lower_bound(s, r->broker_id, name);
    bool found = i < s->n_broker_configs && s->broker_configs[i].broker_id == r->broker_id &&
                 !strcmp(s->broker_configs[i].name, name);
    if (r->remove) {
        if (!found)
            return 0;
        free(s->broker_configs[i].name);
        free(s->broker_configs[i].value);
        memmove(&s->broker_configs[i], &s->broker_configs[i + 1],
                (s->n_broker_configs - i - 1) * sizeof(s->broker_configs[0]));
        s->n_broker_configs--;
        return 0;
    }
    char *value = dupstr(nz(r->value));
    if (!value)
        return -ENOMEM;
    if (found) {
        free(s->broker_configs[i].value);
        s->broker_configs[i].value = value;
        return 0;
    }
    if (s->n_broker_configs >= CSTATE_MAX_BROKER_CONFIGS) {
        free(value);
        return fail(eb, el, "more than %d dynamic broker configs", CSTATE_MAX_BROKER_CONFIGS);
    }
    char *dname = dupstr(name);
    struct cstate_broker_config *v =
        realloc(s->broker_configs, (s->n_broker_configs + 1) * sizeof(*v));
    if (!dname || !v) {
        if (v)
            s->broker_configs = v;
        free(dname);
        free(value);
        return -ENOMEM;
    }
    s->broker_configs = v;
    memmove(&v[i + 1], &v[i], (s->n_broker_configs - i) * sizeof(*v));
    v[i] = (struct cstate_broker_config){.broker_id = r->broker_id, .name = dname, .value = value};
    s->n_broker_configs++;
    return 0;
}

/* The quorum leader's no-op: only its shape is checked. */
static int apply_leader_change(struct cstate *s, const Weir__Meta__LeaderChangeRecord *r, char *eb,
                               size_t el)
{
    (void)s;
    if (r->term <= 0 || r->leader_id <= 0)
        return fail(eb, el, "LeaderChange with term %" PRId64 " and leader %d", r->term,
                    (int)r->leader_id);
    return 0;
}

int cstate_apply(struct cstate *s, int64_t offset, const MetaRecord *rec, char *eb, size_t el)
{
    if (offset < 0 || offset <= s->offset)
        return fail(eb, el, "offset %" PRId64 " not after %" PRId64, offset, s->offset);
    int rc;
    switch (rec->record_case) {
#define CASE(c, field, fn)                                                                         \
    case WEIR__META__METADATA_RECORD__RECORD_##c:                                                  \
        rc = rec->field ? fn(s, rec->field, eb, el) : fail(eb, el, "empty record");                \
        break
        CASE(BOOTSTRAP, bootstrap, apply_bootstrap);
        CASE(REGISTER_BROKER, register_broker, apply_register);
        CASE(FENCE_BROKER, fence_broker, apply_fence);
        CASE(CONTROLLED_SHUTDOWN, controlled_shutdown, apply_controlled_shutdown);
        CASE(UNREGISTER_BROKER, unregister_broker, apply_unregister);
        CASE(CREATE_TOPIC, create_topic, apply_create_topic);
        CASE(DELETE_TOPIC, delete_topic, apply_delete_topic);
        CASE(CREATE_PARTITIONS, create_partitions, apply_create_partitions);
        CASE(PARTITION_CHANGE, partition_change, apply_partition_change);
        CASE(TOPIC_CONFIG, topic_config, apply_topic_config);
        CASE(PRODUCER_IDS, producer_ids, apply_producer_ids);
        CASE(BROKER_CONFIG, broker_config, apply_broker_config);
        CASE(LEADER_CHANGE, leader_change, apply_leader_change);
#undef CASE
    default:
        rc = fail(eb, el, "unknown record type %d", (int)rec->record_case);
        break;
    }
    if (rc == 0)
        s->offset = offset;
    return rc;
}

int cstate_apply_bytes(struct cstate *s, int64_t offset, const uint8_t *data, size_t len, char *eb,
                       size_t el)
{
    MetaRecord *rec = weir__meta__metadata_record__unpack(NULL, len, data);
    if (!rec) {
        if (eb && el)
            snprintf(eb, el, "record at offset %" PRId64 " does not decode", offset);
        return -EBADMSG;
    }
    int rc = cstate_apply(s, offset, rec, eb, el);
    weir__meta__metadata_record__free_unpacked(rec, NULL);
    return rc;
}

/* ---- formatting ----------------------------------------------------------------------------- */

static size_t fmt_ids(char *buf, size_t len, const int32_t *v, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%d", i ? "," : "", v[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (len)
        buf[off < len ? off : len - 1] = 0;
    return off;
}

static void topic_id_short(const ProtobufCBinaryData *id, char out[9])
{
    char hex[33];
    if (id->len == CSTATE_UUID_LEN) {
        uuid_hex(id->data, hex);
        memcpy(out, hex, 8);
        out[8] = 0;
    } else {
        snprintf(out, 9, "?");
    }
}

void cstate_record_format(const MetaRecord *rec, char *buf, size_t len)
{
    char a[128], b[128], id[9];
    switch (rec->record_case) {
    case WEIR__META__METADATA_RECORD__RECORD_BOOTSTRAP:
        snprintf(buf, len, "Bootstrap cluster=%s", nz(rec->bootstrap->cluster_id));
        return;
    case WEIR__META__METADATA_RECORD__RECORD_REGISTER_BROKER:
        snprintf(buf, len, "RegisterBroker id=%d epoch=%" PRId64 " rack=%s",
                 rec->register_broker->broker_id, rec->register_broker->broker_epoch,
                 nz(rec->register_broker->rack));
        return;
    case WEIR__META__METADATA_RECORD__RECORD_FENCE_BROKER:
        snprintf(buf, len, "FenceBroker id=%d epoch=%" PRId64, rec->fence_broker->broker_id,
                 rec->fence_broker->broker_epoch);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_CONTROLLED_SHUTDOWN:
        snprintf(buf, len, "BrokerControlledShutdown id=%d epoch=%" PRId64,
                 rec->controlled_shutdown->broker_id, rec->controlled_shutdown->broker_epoch);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_UNREGISTER_BROKER:
        snprintf(buf, len, "UnregisterBroker id=%d epoch=%" PRId64,
                 rec->unregister_broker->broker_id, rec->unregister_broker->broker_epoch);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_CREATE_TOPIC:
        topic_id_short(&rec->create_topic->topic_id, id);
        snprintf(buf, len, "CreateTopic %s id=%s partitions=%zu configs=%zu",
                 nz(rec->create_topic->name), id, rec->create_topic->n_partitions,
                 rec->create_topic->n_configs);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_DELETE_TOPIC:
        topic_id_short(&rec->delete_topic->topic_id, id);
        snprintf(buf, len, "DeleteTopic %s id=%s", nz(rec->delete_topic->name), id);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_CREATE_PARTITIONS:
        topic_id_short(&rec->create_partitions->topic_id, id);
        snprintf(buf, len, "CreatePartitions id=%s new=%zu", id,
                 rec->create_partitions->n_partitions);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_PARTITION_CHANGE: {
        const Weir__Meta__PartitionChangeRecord *r = rec->partition_change;
        topic_id_short(&r->topic_id, id);
        fmt_ids(a, sizeof(a), r->isr, r->n_isr);
        fmt_ids(b, sizeof(b), r->replicas, r->n_replicas);
        snprintf(buf, len, "PartitionChange id=%s p=%d leader=%d le=%d isr=[%s] pe=%d%s%s%s", id,
                 r->partition, r->leader, r->leader_epoch, a, r->partition_epoch,
                 r->replicas_changed ? " replicas=[" : "", r->replicas_changed ? b : "",
                 r->replicas_changed ? "]" : "");
        return;
    }
    case WEIR__META__METADATA_RECORD__RECORD_TOPIC_CONFIG:
        topic_id_short(&rec->topic_config->topic_id, id);
        snprintf(buf, len, "TopicConfig id=%s entries=%zu", id, rec->topic_config->n_configs);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_PRODUCER_IDS:
        snprintf(buf, len, "ProducerIds broker=%d epoch=%" PRId64 " first=%" PRId64 " count=%d",
                 (int)rec->producer_ids->broker_id, rec->producer_ids->broker_epoch,
                 rec->producer_ids->first_id, (int)rec->producer_ids->count);
        return;
    case WEIR__META__METADATA_RECORD__RECORD_BROKER_CONFIG: {
        const Weir__Meta__BrokerConfigRecord *r = rec->broker_config;
        char scope[16];
        if (r->broker_id == CSTATE_CLUSTER_DEFAULT)
            snprintf(scope, sizeof(scope), "default");
        else
            snprintf(scope, sizeof(scope), "%d", (int)r->broker_id);
        if (r->remove)
            snprintf(buf, len, "BrokerConfig broker=%s remove %.200s", scope, nz(r->name));
        else
            snprintf(buf, len, "BrokerConfig broker=%s %.200s=%.200s", scope, nz(r->name),
                     nz(r->value));
        return;
    }
    case WEIR__META__METADATA_RECORD__RECORD_LEADER_CHANGE:
        snprintf(buf, len, "LeaderChange term=%" PRId64 " leader=%d", rec->leader_change->term,
                 (int)rec->leader_change->leader_id);
        return;
    default:
        snprintf(buf, len, "<record type %d>", (int)rec->record_case);
        return;
    }
}

void cstate_record_format_bytes(const uint8_t *data, size_t len, char *buf, size_t buflen)
{
    MetaRecord *rec = weir__meta__metadata_record__unpack(NULL, len, data);
    if (!rec) {
        snprintf(buf, buflen, "<undecodable>");
        return;
    }
    cstate_record_format(rec, buf, buflen);
    weir__meta__metadata_record__free_unpacked(rec, NULL);
}

/* ---- snapshot encoding ------------------------------------------------------------------------
 * The image is written field by field: the scalar header, then one BrokerImage
 * per broker (field 5), then one CreateTopicRecord per topic (field 6), each
 * topic itself streamed as its header fields plus one PartitionState (field 4)
 * per partition. Protobuf merges repeated occurrences of a field, so the bytes
 * are one ordinary MetadataImage while only one partition is ever expanded into
 * a message at a time. */

#define WT_VARINT 0
#define WT_I64    1
#define WT_LEN    2
#define WT_I32    5

static void put_tag(buf_writer *w, uint32_t field, uint32_t wt)
{
    buf_write_uvarint(w, field << 3 | wt);
}

static size_t uvarint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write @m packed. @size must be its packed size. */
static void put_packed(buf_writer *w, const ProtobufCMessage *m, size_t size)
{
    if (buf_writer_reserve(w, size) < 0)
        return;
    protobuf_c_message_pack(m, w->data + w->len);
    w->len += size;
}

static void put_message(buf_writer *w, uint32_t field, const ProtobufCMessage *m)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    put_tag(w, field, WT_LEN);
    buf_write_uvarlong(w, size);
    put_packed(w, m, size);
}

static void endpoint_to_msg(const struct cstate_endpoint *e, Weir__Meta__Endpoint *m)
{
    weir__meta__endpoint__init(m);
    m->listener = e->listener;
    m->host = e->host;
    m->port = e->port;
    m->security_protocol = e->security_protocol;
}

/* Fill @m (and the caller's scratch arrays) from @b. The message borrows @b. */
static void broker_to_msg(const struct cstate_broker *b, Weir__Meta__RegisterBrokerRecord *m,
                          Weir__Meta__Endpoint *eps, Weir__Meta__Endpoint **ep_ptrs,
                          Weir__Meta__Endpoint *repl)
{
    weir__meta__register_broker_record__init(m);
    m->broker_id = b->id;
    m->incarnation_id.data = (uint8_t *)b->incarnation;
    m->incarnation_id.len = CSTATE_UUID_LEN;
    m->broker_epoch = b->epoch;
    for (uint32_t i = 0; i < b->n_endpoints; i++) {
        endpoint_to_msg(&b->endpoints[i], &eps[i]);
        ep_ptrs[i] = &eps[i];
    }
    m->endpoints = ep_ptrs;
    m->n_endpoints = b->n_endpoints;
    if (b->replication.host) {
        endpoint_to_msg(&b->replication, repl);
        m->replication_endpoint = repl;
    }
    if (b->rack)
        m->rack = b->rack;
}

static void part_to_msg(const struct cstate_partition *p, int32_t index,
                        Weir__Meta__PartitionState *m)
{
    weir__meta__partition_state__init(m);
    m->partition = index;
    m->leader = p->leader;
    m->leader_epoch = p->leader_epoch;
    m->partition_epoch = p->partition_epoch;
    m->replicas = (int32_t *)cstate_part_replicas(p);
    m->n_replicas = p->n_replicas;
    m->isr = (int32_t *)cstate_part_isr(p);
    m->n_isr = p->n_isr;
    m->adding_replicas = (int32_t *)cstate_part_adding(p);
    m->n_adding_replicas = p->n_adding;
    m->removing_replicas = (int32_t *)cstate_part_removing(p);
    m->n_removing_replicas = p->n_removing;
}

static int encode_topic(buf_writer *w, const struct cstate_topic *t)
{
    Weir__Meta__CreateTopicRecord head;
    weir__meta__create_topic_record__init(&head);
    head.name = t->name;
    head.topic_id.data = (uint8_t *)t->id;
    head.topic_id.len = CSTATE_UUID_LEN;
    Weir__Meta__ConfigEntry *ce = NULL, **cp = NULL;
    if (t->n_configs) {
        ce = calloc(t->n_configs, sizeof(*ce));
        cp = calloc(t->n_configs, sizeof(*cp));
        if (!ce || !cp) {
            free(ce);
            free(cp);
            return -ENOMEM;
        }
    }
    for (uint32_t i = 0; i < t->n_configs; i++) {
        weir__meta__config_entry__init(&ce[i]);
        ce[i].name = t->configs[i].name;
        ce[i].value = t->configs[i].value;
        cp[i] = &ce[i];
    }
    head.configs = cp;
    head.n_configs = t->n_configs;

    size_t size = weir__meta__create_topic_record__get_packed_size(&head);
    for (int32_t i = 0; i < t->n_parts; i++) {
        Weir__Meta__PartitionState ps;
        part_to_msg(&t->parts[i], i, &ps);
        size_t ps_size = weir__meta__partition_state__get_packed_size(&ps);
        size += 1 + uvarint_size(ps_size) + ps_size;
    }
    put_tag(w, 6, WT_LEN);
    buf_write_uvarlong(w, size);
    put_packed(w, &head.base, weir__meta__create_topic_record__get_packed_size(&head));
    for (int32_t i = 0; i < t->n_parts; i++) {
        Weir__Meta__PartitionState ps;
        part_to_msg(&t->parts[i], i, &ps);
        put_message(w, 4, &ps.base);
    }
    free(ce);
    free(cp);
    return 0;
}

int cstate_snapshot_encode(const struct cstate *s, uint8_t **ret_data, size_t *ret_len)
{
    buf_writer w;
    buf_writer_init(&w);
    put_tag(&w, 1, WT_VARINT);
    buf_write_uvarint(&w, IMAGE_VERSION);
    if (s->cluster_id) {
        size_t n = strlen(s->cluster_id);
        put_tag(&w, 2, WT_LEN);
        buf_write_uvarlong(&w, n);
        buf_write_raw(&w, s->cluster_id, n);
    }
    put_tag(&w, 3, WT_VARINT);
    buf_write_uvarlong(&w, (uint64_t)s->offset);
    put_tag(&w, 4, WT_VARINT);
    buf_write_uvarlong(&w, (uint64_t)s->next_broker_epoch);
    if (s->next_producer_id) {
        put_tag(&w, 7, WT_VARINT);
        buf_write_uvarlong(&w, (uint64_t)s->next_producer_id);
    }
    for (size_t i = 0; i < s->n_broker_configs; i++) {
        Weir__Meta__BrokerConfigRecord bc;
        weir__meta__broker_config_record__init(&bc);
        bc.broker_id = s->broker_configs[i].broker_id;
        bc.name = s->broker_configs[i].name;
        bc.value = s->broker_configs[i].value;
        put_message(&w, 8, &bc.base);
    }
    for (size_t i = 0; i < s->n_brokers; i++) {
        Weir__Meta__Endpoint eps[CSTATE_MAX_ENDPOINTS], *ep_ptrs[CSTATE_MAX_ENDPOINTS], repl;
        Weir__Meta__RegisterBrokerRecord reg;
        broker_to_msg(&s->brokers[i], &reg, eps, ep_ptrs, &repl);
        Weir__Meta__BrokerImage bi;
        weir__meta__broker_image__init(&bi);
        bi.registration = &reg;
        bi.state = (Weir__Meta__BrokerState)s->brokers[i].state;
        put_message(&w, 5, &bi.base);
    }
    int rc = 0;
    for (const struct cstate_topic *t = s->first_topic; t && rc == 0; t = t->next)
        rc = encode_topic(&w, t);
    if (rc == 0)
        rc = buf_writer_error(&w);
    if (rc == 0)
        rc = buf_writer_steal(&w, ret_data, ret_len);
    buf_writer_deinit(&w);
    return rc;
}

/* ---- snapshot decoding --------------------------------------------------------------------- */

struct field {
    uint32_t num, wt;
    uint64_t varint;
    const uint8_t *ptr; /* WT_LEN */
    size_t len;
};

/* Read the next field of a message; 1 with @f filled, 0 at the end, -EBADMSG. */
static int next_field(buf_reader *r, struct field *f)
{
    if (buf_reader_remaining(r) == 0)
        return 0;
    uint64_t tag;
    if (buf_read_uvarlong(r, &tag) < 0 || tag >> 3 == 0 || tag >> 3 > UINT32_MAX)
        return -EBADMSG;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (uint32_t)(tag & 7);
    switch (f->wt) {
    case WT_VARINT:
        return buf_read_uvarlong(r, &f->varint) < 0 ? -EBADMSG : 1;
    case WT_I64:
        return buf_skip(r, 8) < 0 ? -EBADMSG : 1;
    case WT_I32:
        return buf_skip(r, 4) < 0 ? -EBADMSG : 1;
    case WT_LEN: {
        uint64_t n;
        if (buf_read_uvarlong(r, &n) < 0 || n > buf_reader_remaining(r))
            return -EBADMSG;
        f->len = (size_t)n;
        return buf_read_raw(r, f->len, &f->ptr) < 0 ? -EBADMSG : 1;
    }
    default:
        return -EBADMSG;
    }
}

static int decode_broker(struct cstate *s, const struct field *f, char *eb, size_t el)
{
    Weir__Meta__BrokerImage *bi = weir__meta__broker_image__unpack(NULL, f->len, f->ptr);
    if (!bi)
        return -EBADMSG;
    int rc = 0;
    struct cstate_broker b = {0};
    if (!bi->registration)
        rc = fail(eb, el, "broker image without registration");
    else if (bi->state < 1 || bi->state > 3)
        rc = fail(eb, el, "broker %d in state %d", bi->registration->broker_id, (int)bi->state);
    else if (s->n_brokers && s->brokers[s->n_brokers - 1].id >= bi->registration->broker_id)
        rc = fail(eb, el, "broker %d out of order", bi->registration->broker_id);
    else if (bi->registration->broker_epoch >= s->next_broker_epoch)
        rc = fail(eb, el, "broker %d epoch at or past the next epoch", bi->registration->broker_id);
    else if (brokers_reserve(s, s->n_brokers + 1) < 0)
        rc = -ENOMEM;
    else
        rc = broker_build(bi->registration, &b, eb, el);
    if (rc == 0) {
        b.state = (enum cstate_broker_state)bi->state;
        s->brokers[s->n_brokers++] = b;
    }
    weir__meta__broker_image__free_unpacked(bi, NULL);
    return rc;
}

static int decode_topic(struct cstate *s, const struct field *tf, char *eb, size_t el)
{
    buf_reader r;
    buf_reader_init(&r, tf->ptr, tf->len);
    /* First pass: the header fields, so the topic can be begun before any
     * partition is expanded; protobuf allows them anywhere in the message. */
    char *name = NULL;
    ProtobufCBinaryData id = {0, NULL};
    Weir__Meta__ConfigEntry **configs = NULL;
    size_t n_configs = 0, n_parts = 0;
    struct field f;
    int rc;
    while ((rc = next_field(&r, &f)) == 1) {
        if (f.wt != WT_LEN)
            continue;
        if (f.num == 1) {
            if (f.len > CSTATE_MAX_TOPIC_NAME || memchr(f.ptr, 0, f.len)) {
                rc = fail(eb, el, "invalid topic name in image");
                break;
            }
            free(name);
            if (!(name = malloc(f.len + 1))) {
                rc = -ENOMEM;
                break;
            }
            memcpy(name, f.ptr, f.len);
            name[f.len] = 0;
        } else if (f.num == 2) {
            id.data = (uint8_t *)f.ptr;
            id.len = f.len;
        } else if (f.num == 3) {
            if (n_configs == CSTATE_MAX_CONFIGS) {
                rc = fail(eb, el, "too many configs in image");
                break;
            }
            if (!configs && !(configs = calloc(CSTATE_MAX_CONFIGS, sizeof(*configs)))) {
                rc = -ENOMEM;
                break;
            }
            configs[n_configs] = weir__meta__config_entry__unpack(NULL, f.len, f.ptr);
            if (!configs[n_configs]) {
                rc = -EBADMSG;
                break;
            }
            n_configs++;
        } else if (f.num == 4) {
            n_parts++;
        }
    }
    struct cstate_topic *t = NULL;
    if (rc == 0 && (n_parts < 1 || n_parts > CSTATE_MAX_PARTITIONS))
        rc = fail(eb, el, "topic %s with %zu partitions in image", nz(name), n_parts);
    if (rc == 0)
        rc = topic_begin(s, nz(name), &id, configs, n_configs, &t, eb, el);
    if (rc == 0)
        rc = topic_reserve_parts(t, n_parts);
    for (size_t i = 0; i < n_configs; i++)
        weir__meta__config_entry__free_unpacked(configs[i], NULL);
    free(configs);
    free(name);

    buf_reader_init(&r, tf->ptr, tf->len);
    while (rc == 0) {
        int more = next_field(&r, &f);
        if (more <= 0) {
            rc = more;
            break;
        }
        if (f.wt != WT_LEN || f.num != 4)
            continue;
        Weir__Meta__PartitionState *ps = weir__meta__partition_state__unpack(NULL, f.len, f.ptr);
        if (!ps) {
            rc = -EBADMSG;
            break;
        }
        rc = part_from_msg(s, ps, t->n_parts, &t->parts[t->n_parts], eb, el);
        weir__meta__partition_state__free_unpacked(ps, NULL);
        if (rc == 0)
            t->n_parts++;
    }
    if (rc == 0)
        rc = topics_reserve(s);
    if (rc < 0) {
        topic_free(t);
        return rc;
    }
    topic_link(s, t);
    return 0;
}

/* One imaged dynamic broker config: checked like a record, never a removal,
 * and strictly after the previous one so the array is sorted as written. */
static int decode_broker_config(struct cstate *s, const struct field *f, char *eb, size_t el)
{
    Weir__Meta__BrokerConfigRecord *bc =
        weir__meta__broker_config_record__unpack(NULL, f->len, f->ptr);
    if (!bc)
        return -EBADMSG;
    int rc = bconf_check(bc, eb, el);
    if (rc == 0 && bc->remove)
        rc = fail(eb, el, "broker config removal in image");
    if (rc == 0 && s->n_broker_configs) {
        const struct cstate_broker_config *last = &s->broker_configs[s->n_broker_configs - 1];
        if (bconf_cmp(last->broker_id, last->name, bc->broker_id, nz(bc->name)) >= 0)
            rc = fail(eb, el, "broker configs out of order in image");
    }
    if (rc == 0)
        rc = apply_broker_config(s, bc, eb, el);
    weir__meta__broker_config_record__free_unpacked(bc, NULL);
    return rc;
}

int cstate_snapshot_decode(const uint8_t *data, size_t len, struct cstate **ret, char *eb,
                           size_t el)
{
    struct cstate *s;
    int rc = cstate_new(&s);
    if (rc < 0)
        return rc;
    buf_reader r;
    buf_reader_init(&r, data, len);
    struct field f;
    uint64_t version = 0;
    bool seen_topic = false;
    while ((rc = next_field(&r, &f)) == 1) {
        if (f.num == 1 && f.wt == WT_VARINT) {
            version = f.varint;
        } else if (f.num == 2 && f.wt == WT_LEN) {
            if (!f.len || f.len > CSTATE_MAX_STRING || memchr(f.ptr, 0, f.len)) {
                rc = fail(eb, el, "invalid cluster id in image");
                break;
            }
            free(s->cluster_id);
            if (!(s->cluster_id = malloc(f.len + 1))) {
                rc = -ENOMEM;
                break;
            }
            memcpy(s->cluster_id, f.ptr, f.len);
            s->cluster_id[f.len] = 0;
        } else if ((f.num == 3 || f.num == 4) && f.wt == WT_VARINT) {
            if (seen_topic || s->n_brokers) {
                rc = fail(eb, el, "image header after its content");
                break;
            }
            if (f.num == 3)
                s->offset = (int64_t)f.varint;
            else
                s->next_broker_epoch = (int64_t)f.varint;
        } else if (f.num == 7 && f.wt == WT_VARINT) {
            s->next_producer_id = (int64_t)f.varint;
        } else if (f.num == 8 && f.wt == WT_LEN) {
            if ((rc = decode_broker_config(s, &f, eb, el)) < 0)
                break;
        } else if (f.num == 5 && f.wt == WT_LEN) {
            if (seen_topic) {
                rc = fail(eb, el, "broker after topics in image");
                break;
            }
            if ((rc = decode_broker(s, &f, eb, el)) < 0)
                break;
        } else if (f.num == 6 && f.wt == WT_LEN) {
            seen_topic = true;
            if ((rc = decode_topic(s, &f, eb, el)) < 0)
                break;
        }
    }
    if (rc == 0 && version != IMAGE_VERSION)
        rc = fail(eb, el, "image version %" PRIu64, version);
    if (rc == 0 && (s->offset < -1 || s->next_broker_epoch < 1 || s->next_producer_id < 0))
        rc = fail(eb, el, "invalid offset or next broker epoch in image");
    if (rc == -EBADMSG && eb && el)
        snprintf(eb, el, "image does not decode");
    if (rc < 0) {
        cstate_free(s);
        return rc;
    }
    *ret = s;
    return 0;
}

/* ---- equality ----------------------------------------------------------------------------------
 */

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool endpoint_eq(const struct cstate_endpoint *a, const struct cstate_endpoint *b)
{
    return str_eq(a->listener, b->listener) && str_eq(a->host, b->host) && a->port == b->port &&
           str_eq(a->security_protocol, b->security_protocol);
}

static bool broker_eq(const struct cstate_broker *a, const struct cstate_broker *b)
{
    if (a->id != b->id || a->state != b->state || a->epoch != b->epoch ||
        memcmp(a->incarnation, b->incarnation, CSTATE_UUID_LEN) || !str_eq(a->rack, b->rack) ||
        a->n_endpoints != b->n_endpoints || !endpoint_eq(&a->replication, &b->replication))
        return false;
    for (uint32_t i = 0; i < a->n_endpoints; i++)
        if (!endpoint_eq(&a->endpoints[i], &b->endpoints[i]))
            return false;
    return true;
}

static bool part_eq(const struct cstate_partition *a, const struct cstate_partition *b)
{
    if (a->leader != b->leader || a->leader_epoch != b->leader_epoch ||
        a->partition_epoch != b->partition_epoch || a->n_replicas != b->n_replicas ||
        a->n_isr != b->n_isr || a->n_adding != b->n_adding || a->n_removing != b->n_removing)
        return false;
    return !memcmp(cstate_part_ids_(a), cstate_part_ids_(b), part_n_ids(a) * sizeof(int32_t));
}

static bool diff(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Describe a difference or violation; always false. */
static bool diff(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return false;
}

#define DIFF(...) diff(why, whylen, __VA_ARGS__)

bool cstate_equal(const struct cstate *a, const struct cstate *b, char *why, size_t whylen)
{
    if (!str_eq(a->cluster_id, b->cluster_id))
        return DIFF("cluster id %s vs %s", nz(a->cluster_id), nz(b->cluster_id));
    if (a->offset != b->offset)
        return DIFF("offset %" PRId64 " vs %" PRId64, a->offset, b->offset);
    if (a->next_broker_epoch != b->next_broker_epoch)
        return DIFF("next broker epoch %" PRId64 " vs %" PRId64, a->next_broker_epoch,
                    b->next_broker_epoch);
    if (a->next_producer_id != b->next_producer_id)
        return DIFF("next producer id %" PRId64 " vs %" PRId64, a->next_producer_id,
                    b->next_producer_id);
    if (a->n_broker_configs != b->n_broker_configs)
        return DIFF("%zu vs %zu dynamic broker configs", a->n_broker_configs, b->n_broker_configs);
    for (size_t i = 0; i < a->n_broker_configs; i++) {
        const struct cstate_broker_config *x = &a->broker_configs[i], *y = &b->broker_configs[i];
        if (x->broker_id != y->broker_id || strcmp(x->name, y->name) || strcmp(x->value, y->value))
            return DIFF("dynamic broker config %d/%s=%s vs %d/%s=%s", x->broker_id, x->name,
                        x->value, y->broker_id, y->name, y->value);
    }
    if (a->n_brokers != b->n_brokers)
        return DIFF("%zu vs %zu brokers", a->n_brokers, b->n_brokers);
    for (size_t i = 0; i < a->n_brokers; i++)
        if (!broker_eq(&a->brokers[i], &b->brokers[i]))
            return DIFF("broker %d differs (epoch %" PRId64 " %s vs broker %d epoch %" PRId64
                        " %s)",
                        a->brokers[i].id, a->brokers[i].epoch,
                        cstate_broker_state_name(a->brokers[i].state), b->brokers[i].id,
                        b->brokers[i].epoch, cstate_broker_state_name(b->brokers[i].state));
    if (a->n_topics != b->n_topics || a->n_partitions != b->n_partitions)
        return DIFF("%zu topics/%" PRIu64 " partitions vs %zu/%" PRIu64, a->n_topics,
                    a->n_partitions, b->n_topics, b->n_partitions);
    const struct cstate_topic *x = a->first_topic, *y = b->first_topic;
    for (; x && y; x = x->next, y = y->next) {
        if (strcmp(x->name, y->name) || memcmp(x->id, y->id, CSTATE_UUID_LEN))
            return DIFF("topic %s vs %s", x->name, y->name);
        if (x->n_configs != y->n_configs)
            return DIFF("topic %s: %u vs %u configs", x->name, x->n_configs, y->n_configs);
        for (uint32_t i = 0; i < x->n_configs; i++)
            if (strcmp(x->configs[i].name, y->configs[i].name) ||
                strcmp(x->configs[i].value, y->configs[i].value))
                return DIFF("topic %s: config %s differs", x->name, x->configs[i].name);
        if (x->n_parts != y->n_parts)
            return DIFF("topic %s: %d vs %d partitions", x->name, x->n_parts, y->n_parts);
        for (int32_t i = 0; i < x->n_parts; i++) {
            const struct cstate_partition *p = &x->parts[i], *q = &y->parts[i];
            if (!part_eq(p, q))
                return DIFF("%s-%d: leader %d le %d pe %d isr %u vs leader %d le %d pe %d isr %u",
                            x->name, i, p->leader, p->leader_epoch, p->partition_epoch, p->n_isr,
                            q->leader, q->leader_epoch, q->partition_epoch, q->n_isr);
        }
    }
    if (x || y)
        return DIFF("topic lists differ in length");
    return true;
}

/* ---- invariants -------------------------------------------------------------------------------
 */

int cstate_check(const struct cstate *s, char *why, size_t whylen)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        DIFF(__VA_ARGS__);                                                                         \
        return -EINVAL;                                                                            \
    } while (0)
    for (size_t i = 0; i < s->n_brokers; i++) {
        const struct cstate_broker *b = &s->brokers[i];
        if (i && s->brokers[i - 1].id >= b->id)
            BAD("brokers not sorted at %d", b->id);
        if (b->epoch >= s->next_broker_epoch)
            BAD("broker %d epoch %" PRId64 " not below next %" PRId64, b->id, b->epoch,
                s->next_broker_epoch);
        for (size_t j = 0; j < i; j++)
            if (s->brokers[j].epoch == b->epoch)
                BAD("brokers %d and %d share epoch %" PRId64, s->brokers[j].id, b->id, b->epoch);
    }
    if (s->by_name.n != s->n_topics || s->by_id.n != s->n_topics)
        BAD("indexes hold %zu/%zu of %zu topics", s->by_name.n, s->by_id.n, s->n_topics);
    size_t n_topics = 0;
    uint64_t n_parts = 0;
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        n_topics++;
        n_parts += (uint64_t)t->n_parts;
        if (cstate_topic_by_name(s, t->name) != t || cstate_topic_by_id(s, t->id) != t)
            BAD("topic %s not indexed", t->name);
        if (t->n_parts < 1)
            BAD("topic %s has no partitions", t->name);
        for (int32_t i = 0; i < t->n_parts; i++) {
            const struct cstate_partition *p = &t->parts[i];
            const int32_t *rep = cstate_part_replicas(p), *isr = cstate_part_isr(p);
            if (!p->n_replicas || has_dup(rep, p->n_replicas))
                BAD("%s-%d: bad replica list", t->name, i);
            if (!p->n_isr || has_dup(isr, p->n_isr))
                BAD("%s-%d: empty isr or duplicate member", t->name, i);
            for (uint8_t k = 0; k < p->n_isr; k++) {
                if (!contains(rep, p->n_replicas, isr[k]))
                    BAD("%s-%d: isr member %d is not a replica", t->name, i, isr[k]);
                if (p->n_isr > 1 && !cstate_broker_eligible(s, isr[k]))
                    BAD("%s-%d: ineligible broker %d in an isr of %u", t->name, i, isr[k],
                        p->n_isr);
            }
            /* A move in progress: adding and removing are disjoint replicas,
             * and both the original and the target assignment are non-empty. */
            const int32_t *add = cstate_part_adding(p), *rem = cstate_part_removing(p);
            if (has_dup(add, p->n_adding) || has_dup(rem, p->n_removing))
                BAD("%s-%d: duplicate in adding or removing", t->name, i);
            for (uint8_t k = 0; k < p->n_adding; k++)
                if (!contains(rep, p->n_replicas, add[k]) || contains(rem, p->n_removing, add[k]))
                    BAD("%s-%d: adding replica %d not a replica or also removed", t->name, i,
                        add[k]);
            for (uint8_t k = 0; k < p->n_removing; k++)
                if (!contains(rep, p->n_replicas, rem[k]))
                    BAD("%s-%d: removing replica %d is not a replica", t->name, i, rem[k]);
            if (p->n_adding >= p->n_replicas || p->n_removing >= p->n_replicas)
                BAD("%s-%d: a move without an original or a target assignment", t->name, i);
            if (p->leader >= 0) {
                if (!contains(isr, p->n_isr, p->leader))
                    BAD("%s-%d: leader %d not in isr", t->name, i, p->leader);
                const struct cstate_broker *b = cstate_broker(s, p->leader);
                if (!b || b->state == CSTATE_BROKER_FENCED)
                    BAD("%s-%d: leader %d is fenced or unknown", t->name, i, p->leader);
            } else if (p->leader != -1) {
                BAD("%s-%d: leader %d", t->name, i, p->leader);
            }
        }
    }
    if (n_topics != s->n_topics || n_parts != s->n_partitions)
        BAD("topic or partition count off: %zu/%" PRIu64 " vs %zu/%" PRIu64, n_topics, n_parts,
            s->n_topics, s->n_partitions);
    return 0;
#undef BAD
}
