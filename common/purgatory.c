/* purgatory: delayed operations keyed by watch lists (see purgatory.h).
 *
 * Every list here — the watchers of one key, the operations of one owner, and
 * the list of every operation — is a circular doubly linked list of
 * struct purg_watch nodes behind a sentinel, so an operation leaves all its
 * lists in O(keys) the moment it completes (Kafka leaves completed operations
 * in the lists and purges them later; with one thread there is no reason to).
 * Key and owner lists live in two chained hash tables whose entries are
 * allocated one by one: growing a table moves no entry, and an entry is freed
 * when its last node leaves it.
 *
 * Callbacks run in the middle of walks over these lists and may change them.
 * A walk therefore keeps its place with a cursor node linked into the list
 * (which also keeps the list's entry alive) and steps over other walks'
 * cursors. Nodes carry their insertion sequence number; nodes are only ever
 * appended, so a walk stops at the first node newer than the walk itself.
 *
 * Timeouts are libevent timers. The first few distinct durations a purgatory
 * sees are registered as libevent common timeouts (a FIFO queue per duration
 * instead of the timer heap): requests mostly share a handful of timeouts. */
#include "common/purgatory.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_MIN_BUCKETS   16
#define MAX_COMMON_TIMEOUTS 8

/* A list of nodes: the watchers of one key, the operations of one owner, or the
 * purgatory's list of every operation (table NULL, never freed). */
struct purg_key {
    struct purg_key *hnext;
    struct ktable *table;
    uint64_t key;
    struct purg_watch head; /* sentinel */
    size_t n_nodes;         /* linked nodes, walk cursors included */
    size_t n_ops;           /* linked operation nodes */
};

struct ktable {
    struct purg_key **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first entry */
    size_t n;
};

struct common_timeout {
    int64_t ms;
    const struct timeval *tv;
};

struct purg {
    struct event_base *base;
    char name[32];
    struct ktable keys;
    struct ktable owners;
    struct purg_key all;
    uint64_t seq;
    size_t n_ops;
    struct purg_stats st;
    struct common_timeout common[MAX_COMMON_TIMEOUTS];
    size_t n_common;
};

/* ---- lists ------------------------------------------------------------------- */

static void list_init(struct purg_key *l, struct ktable *t, uint64_t key)
{
    l->hnext = NULL;
    l->table = t;
    l->key = key;
    l->head.prev = l->head.next = &l->head;
    l->head.op = NULL;
    l->head.list = l;
    l->n_nodes = 0;
    l->n_ops = 0;
}

static void node_insert_after(struct purg_watch *at, struct purg_watch *n)
{
    n->prev = at;
    n->next = at->next;
    at->next->prev = n;
    at->next = n;
}

static void node_detach(struct purg_watch *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

static void list_append(struct purg *pg, struct purg_key *l, struct purg_watch *n)
{
    n->list = l;
    n->seq = pg->seq++;
    node_insert_after(l->head.prev, n);
    l->n_nodes++;
    if (n->op)
        l->n_ops++;
}

static void table_remove(struct ktable *t, struct purg_key *l);

/* Unlink @n; the list's entry goes with its last node. */
static void list_remove(struct purg_watch *n)
{
    struct purg_key *l = n->list;
    node_detach(n);
    n->list = NULL;
    l->n_nodes--;
    if (n->op)
        l->n_ops--;
    if (l->n_nodes == 0 && l->table) {
        table_remove(l->table, l);
        free(l);
    }
}

/* ---- hash tables --------------------------------------------------------------- */

static uint64_t hash64(uint64_t x)
{
    /* splitmix64's finalizer: pointers differ mostly in their middle bits */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static struct purg_key *table_find(const struct ktable *t, uint64_t key)
{
    if (!t->nbuckets)
        return NULL;
    for (struct purg_key *l = t->buckets[hash64(key) & (t->nbuckets - 1)]; l; l = l->hnext)
        if (l->key == key)
            return l;
    return NULL;
}

static void table_grow(struct ktable *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : TABLE_MIN_BUCKETS;
    struct purg_key **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct purg_key *l = t->buckets[i];
        while (l) {
            struct purg_key *next = l->hnext;
            size_t h = hash64(l->key) & (n - 1);
            l->hnext = nb[h];
            nb[h] = l;
            l = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->nbuckets = n;
}

/* The entry of @key, created empty when missing; NULL when out of memory. */
static struct purg_key *table_get(struct ktable *t, uint64_t key)
{
    struct purg_key *l = table_find(t, key);
    if (l)
        return l;
    if (t->n >= t->nbuckets)
        table_grow(t);
    if (!t->nbuckets)
        return NULL;
    l = malloc(sizeof(*l));
    if (!l)
        return NULL;
    list_init(l, t, key);
    size_t h = hash64(key) & (t->nbuckets - 1);
    l->hnext = t->buckets[h];
    t->buckets[h] = l;
    t->n++;
    return l;
}

static void table_remove(struct ktable *t, struct purg_key *l)
{
    struct purg_key **pp = &t->buckets[hash64(l->key) & (t->nbuckets - 1)];
    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
    t->n--;
}

/* ---- completion -------------------------------------------------------------------- */

static void count_reason(struct purg *pg, int reason)
{
    switch (reason) {
    case PURG_COMPLETED:
        pg->st.completed++;
        break;
    case PURG_EXPIRED:
        pg->st.expired++;
        break;
    case PURG_CANCELLED:
        pg->st.cancelled++;
        break;
    case PURG_SHUTDOWN:
        pg->st.shutdown++;
        break;
    default:
        pg->st.forced++;
        break;
    }
}

/* Forget @op everywhere, then tell its owner. */
static void complete(struct purg_op *op, int reason)
{
    struct purg *pg = op->pg;
    assert(pg);
    for (size_t i = 0; i < op->n_watches; i++)
        list_remove(&op->watches[i]);
    if (op->watches != &op->inl)
        free(op->watches);
    op->watches = NULL;
    op->n_watches = 0;
    if (op->owner)
        list_remove(&op->owner_node);
    list_remove(&op->all_node);
    if (op->timer) {
        event_free(op->timer);
        op->timer = NULL;
    }
    op->pg = NULL;
    pg->n_ops--;
    count_reason(pg, reason);
    op->on_complete(op, reason);
}

enum walk_mode {
    WALK_CHECK,         /* try each; complete those that can */
    WALK_CHECK_ORDERED, /* ... stopping at the first that cannot */
    WALK_FORCE,         /* complete each with the given reason */
};

/* Visit the operations on @l that were there when the walk began, in order. */
static size_t walk(struct purg *pg, struct purg_key *l, enum walk_mode mode, int reason)
{
    if (!l)
        return 0;
    uint64_t end = pg->seq;
    struct purg_watch cur = {.op = NULL};
    cur.list = l;
    node_insert_after(&l->head, &cur);
    l->n_nodes++;
    size_t done = 0;
    for (;;) {
        struct purg_watch *n = cur.next;
        if (n == &l->head)
            break;
        node_detach(&cur);
        node_insert_after(n, &cur);
        if (!n->op)
            continue; /* another walk's cursor */
        if (n->seq >= end)
            break; /* added during this walk, and every node after it */
        struct purg_op *op = n->op;
        if (mode == WALK_FORCE) {
            complete(op, reason);
            done++;
        } else if (op->try_complete(op)) {
            complete(op, PURG_COMPLETED);
            done++;
        } else if (mode == WALK_CHECK_ORDERED) {
            break;
        }
    }
    list_remove(&cur); /* frees the entry if the walk emptied it */
    return done;
}

/* ---- timeouts --------------------------------------------------------------------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    complete(arg, PURG_EXPIRED);
}

static const struct timeval *timeout_tv(struct purg *pg, int64_t ms, struct timeval *tv)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
    for (size_t i = 0; i < pg->n_common; i++)
        if (pg->common[i].ms == ms)
            return pg->common[i].tv;
    if (pg->n_common < MAX_COMMON_TIMEOUTS) {
        const struct timeval *c = event_base_init_common_timeout(pg->base, tv);
        if (c) {
            pg->common[pg->n_common].ms = ms;
            pg->common[pg->n_common].tv = c;
            pg->n_common++;
            return c;
        }
    }
    return tv;
}

/* ---- public ----------------------------------------------------------------------- */

int purg_new(struct event_base *base, const char *name, struct purg **ret_purg)
{
    struct purg *pg = calloc(1, sizeof(*pg));
    if (!pg)
        return -ENOMEM;
    pg->base = base;
    snprintf(pg->name, sizeof(pg->name), "%s", name ? name : "");
    list_init(&pg->all, NULL, 0);
    *ret_purg = pg;
    return 0;
}

void purg_free(struct purg *pg)
{
    if (!pg)
        return;
    while (pg->all.n_ops)
        walk(pg, &pg->all, WALK_FORCE, PURG_SHUTDOWN);
    assert(pg->keys.n == 0 && pg->owners.n == 0);
    free(pg->keys.buckets);
    free(pg->owners.buckets);
    free(pg);
}

void purg_op_init(struct purg_op *op, purg_try_fn try_complete, purg_complete_fn on_complete,
                  const void *owner)
{
    memset(op, 0, sizeof(*op));
    op->try_complete = try_complete;
    op->on_complete = on_complete;
    op->owner = owner;
}

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct purg_watch *)a)->key, y = ((const struct purg_watch *)b)->key;
    return x < y ? -1 : x > y;
}

int purg_watch(struct purg *pg, struct purg_op *op, const uint64_t *keys, size_t n_keys,
               int64_t timeout_ms)
{
    assert(!op->pg && op->try_complete && op->on_complete);
    struct purg_watch *w = NULL;
    size_t n = 0;
    if (n_keys == 1) {
        w = &op->inl;
        memset(w, 0, sizeof(*w));
        w->key = keys[0];
        n = 1;
    } else if (n_keys > 1) {
        if (n_keys > SIZE_MAX / sizeof(*w))
            return -ENOMEM;
        w = calloc(n_keys, sizeof(*w));
        if (!w)
            return -ENOMEM;
        for (size_t i = 0; i < n_keys; i++)
            w[i].key = keys[i];
        qsort(w, n_keys, sizeof(*w), key_cmp);
        for (size_t i = 0; i < n_keys; i++)
            if (n == 0 || w[i].key != w[n - 1].key)
                w[n++].key = w[i].key;
    }
    struct event *timer = NULL;
    if (timeout_ms >= 0) {
        timer = evtimer_new(pg->base, timer_cb, op);
        if (!timer)
            goto oom;
    }
    struct purg_key *owner_list = NULL;
    if (op->owner && !(owner_list = table_get(&pg->owners, purg_key_ptr(op->owner))))
        goto oom;
    size_t linked = 0;
    for (; linked < n; linked++) {
        struct purg_key *l = table_get(&pg->keys, w[linked].key);
        if (!l)
            break;
        w[linked].op = op;
        list_append(pg, l, &w[linked]);
    }
    if (linked < n) {
        while (linked > 0)
            list_remove(&w[--linked]);
        if (owner_list && owner_list->n_nodes == 0) {
            table_remove(&pg->owners, owner_list);
            free(owner_list);
        }
        goto oom;
    }
    op->watches = w;
    op->n_watches = n;
    if (owner_list) {
        op->owner_node.op = op;
        list_append(pg, owner_list, &op->owner_node);
    }
    op->all_node.op = op;
    list_append(pg, &pg->all, &op->all_node);
    op->pg = pg;
    pg->n_ops++;
    pg->st.added++;
    op->timer = timer;
    if (timer) {
        struct timeval tv;
        evtimer_add(timer, timeout_tv(pg, timeout_ms, &tv));
    }
    return 0;
oom:
    if (timer)
        event_free(timer);
    if (w != &op->inl)
        free(w);
    return -ENOMEM;
}

int purg_add(struct purg *pg, struct purg_op *op, const uint64_t *keys, size_t n_keys,
             int64_t timeout_ms)
{
    assert(!op->pg);
    if (op->try_complete(op)) {
        count_reason(pg, PURG_COMPLETED);
        op->on_complete(op, PURG_COMPLETED);
        return 1;
    }
    return purg_watch(pg, op, keys, n_keys, timeout_ms);
}

size_t purg_check(struct purg *pg, uint64_t key)
{
    return walk(pg, table_find(&pg->keys, key), WALK_CHECK, 0);
}

size_t purg_check_ordered(struct purg *pg, uint64_t key)
{
    return walk(pg, table_find(&pg->keys, key), WALK_CHECK_ORDERED, 0);
}

void purg_complete(struct purg_op *op, int reason)
{
    if (op->pg)
        complete(op, reason);
}

size_t purg_complete_key(struct purg *pg, uint64_t key, int reason)
{
    return walk(pg, table_find(&pg->keys, key), WALK_FORCE, reason);
}

size_t purg_complete_all(struct purg *pg, int reason)
{
    return walk(pg, &pg->all, WALK_FORCE, reason);
}

void purg_cancel(struct purg_op *op)
{
    purg_complete(op, PURG_CANCELLED);
}

size_t purg_cancel_owner(struct purg *pg, const void *owner)
{
    if (!owner)
        return 0;
    return walk(pg, table_find(&pg->owners, purg_key_ptr(owner)), WALK_FORCE, PURG_CANCELLED);
}

bool purg_op_watched(const struct purg_op *op)
{
    return op->pg != NULL;
}

size_t purg_key_count(const struct purg *pg, uint64_t key)
{
    const struct purg_key *l = table_find(&pg->keys, key);
    return l ? l->n_ops : 0;
}

size_t purg_count(const struct purg *pg)
{
    return pg->n_ops;
}

void purg_get_stats(const struct purg *pg, struct purg_stats *ret_stats)
{
    *ret_stats = pg->st;
    ret_stats->name = pg->name;
    ret_stats->watched = pg->n_ops;
    ret_stats->keys = pg->keys.n;
}
