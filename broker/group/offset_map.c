/* offset_map: a chained hash table of groups, each with a small array of
 * offsets (a group commits for tens to hundreds of partitions; a linear scan
 * of its array is cheaper than a second table). */
#include "broker/group/offset_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OMAP_MIN_BUCKETS 64

struct omap {
    struct omap_group **buckets;
    size_t nbuckets; /* power of two */
    size_t ngroups;
    size_t noffsets;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

int omap_new(struct omap **ret)
{
    struct omap *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->nbuckets = OMAP_MIN_BUCKETS;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return -ENOMEM;
    }
    *ret = m;
    return 0;
}

static void entry_deinit(struct omap_entry *e)
{
    free(e->topic);
    free(e->metadata);
}

static void group_free(struct omap_group *g)
{
    for (size_t i = 0; i < g->n; i++)
        entry_deinit(&g->entries[i]);
    free(g->entries);
    free(g->group);
    free(g);
}

void omap_free(struct omap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct omap_group *g = m->buckets[i], *next;
        for (; g; g = next) {
            next = g->next;
            group_free(g);
        }
    }
    free(m->buckets);
    free(m);
}

static struct omap_group **find_slot(const struct omap *m, const char *group)
{
    struct omap_group **p = &m->buckets[hash_str(group) & (m->nbuckets - 1)];
    while (*p && strcmp((*p)->group, group) != 0)
        p = &(*p)->next;
    return p;
}

const struct omap_group *omap_group(const struct omap *m, const char *group)
{
    return *find_slot(m, group);
}

static void maybe_grow(struct omap *m)
{
    if (m->ngroups < m->nbuckets)
        return;
    size_t n = m->nbuckets * 2;
    struct omap_group **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct omap_group *g = m->buckets[i], *next;
        for (; g; g = next) {
            next = g->next;
            size_t h = hash_str(g->group) & (n - 1);
            g->next = b[h];
            b[h] = g;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

static struct omap_entry *find_entry(const struct omap_group *g, const char *topic,
                                     int32_t partition)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->entries[i].partition == partition && strcmp(g->entries[i].topic, topic) == 0)
            return &g->entries[i];
    return NULL;
}

const struct omap_entry *omap_get(const struct omap *m, const char *group, const char *topic,
                                  int32_t partition)
{
    const struct omap_group *g = omap_group(m, group);
    return g ? find_entry(g, topic, partition) : NULL;
}

int omap_put(struct omap *m, const char *group, int32_t opart, const char *topic,
             int32_t partition, int64_t offset, int32_t leader_epoch, const char *metadata,
             int64_t commit_ts, int64_t expire_ts)
{
    char *md = strdup(metadata ? metadata : "");
    if (!md)
        return -ENOMEM;
    struct omap_group **slot = find_slot(m, group);
    struct omap_group *g = *slot;
    bool created = false;
    if (!g) {
        g = calloc(1, sizeof(*g));
        if (!g || !(g->group = strdup(group))) {
            free(g);
            free(md);
            return -ENOMEM;
        }
        g->opart = opart;
        created = true;
    }
    struct omap_entry *e = find_entry(g, topic, partition);
    if (!e) {
        char *t = strdup(topic);
        if (t && g->n == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 4;
            struct omap_entry *ne = realloc(g->entries, cap * sizeof(*ne));
            if (ne) {
                g->entries = ne;
                g->cap = cap;
            }
        }
        if (!t || g->n == g->cap) {
            free(t);
            free(md);
            if (created)
                group_free(g);
            return -ENOMEM;
        }
        e = &g->entries[g->n++];
        memset(e, 0, sizeof(*e));
        e->topic = t;
        e->partition = partition;
        m->noffsets++;
    } else {
        free(e->metadata);
    }
    e->offset = offset;
    e->leader_epoch = leader_epoch;
    e->metadata = md;
    e->commit_timestamp = commit_ts;
    e->expire_timestamp = expire_ts;
    g->opart = opart;
    if (created) {
        g->next = NULL;
        *slot = g;
        m->ngroups++;
        maybe_grow(m);
    }
    return 0;
}

static void unlink_group(struct omap *m, struct omap_group **slot)
{
    struct omap_group *g = *slot;
    *slot = g->next;
    m->ngroups--;
    m->noffsets -= g->n;
    group_free(g);
}

bool omap_remove(struct omap *m, const char *group, const char *topic, int32_t partition)
{
    struct omap_group **slot = find_slot(m, group);
    struct omap_group *g = *slot;
    if (!g)
        return false;
    struct omap_entry *e = find_entry(g, topic, partition);
    if (!e)
        return false;
    entry_deinit(e);
    *e = g->entries[--g->n];
    m->noffsets--;
    if (g->n == 0)
        unlink_group(m, slot);
    return true;
}

void omap_remove_group(struct omap *m, const char *group)
{
    struct omap_group **slot = find_slot(m, group);
    if (*slot)
        unlink_group(m, slot);
}

void omap_drop_partition(struct omap *m, int32_t opart)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct omap_group **p = &m->buckets[i];
        while (*p) {
            if ((*p)->opart == opart)
                unlink_group(m, p);
            else
                p = &(*p)->next;
        }
    }
}

size_t omap_group_count(const struct omap *m)
{
    return m->ngroups;
}

size_t omap_offset_count(const struct omap *m)
{
    return m->noffsets;
}

void omap_foreach(const struct omap *m, void (*fn)(void *ud, const struct omap_group *g),
                  void *ud)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (const struct omap_group *g = m->buckets[i]; g; g = g->next)
            fn(ud, g);
}

bool omap_entry_expired(const struct omap_entry *e, int64_t now_ms, int64_t retention_ms)
{
    if (e->expire_timestamp >= 0)
        return now_ms >= e->expire_timestamp;
    return now_ms - e->commit_timestamp >= retention_ms;
}
