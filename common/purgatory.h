/* purgatory: delayed operations — requests that cannot be answered yet, held
 * until an event makes them answerable, their timeout passes, their owner goes
 * away or the purgatory is freed (Kafka's DelayedOperationPurgatory is the
 * model).
 *
 * An operation (struct purg_op, embedded in the caller's own struct) has two
 * callbacks: try_complete says whether it can complete now; on_complete is
 * called exactly once, with the reason, whatever ends the wait. It watches zero
 * or more keys (uint64_t; purg_key_ptr() turns an object's address into one):
 * an event that may unblock waiters on key K calls purg_check(pg, K), which
 * runs try_complete on K's watchers only, and completes those that say yes.
 * Lookup by key is a hash table, O(1) on average.
 *
 * Completion unlinks the operation from every key, its owner, its timer, and
 * forgets it before on_complete runs, so on_complete may free the operation and
 * may call anything here (add, check, complete, cancel — the same key or
 * others). Walks over a list tolerate that: an operation completed during a
 * walk is not visited, and one added during a walk is not visited by that walk
 * (it was just tried when it was added).
 *
 * Waits that finish in arrival order (acks=all produces on one partition, in
 * offset order) use purg_check_ordered(), which stops at the first watcher that
 * cannot complete, so an event costs O(completed + 1), not O(watchers).
 *
 * Everything runs on the thread of the event_base; nothing is thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct purg;
struct purg_key;
struct purg_op;

/* Why an operation completed: one of these, or a caller-defined value of at least
 * PURG_REASON_USER passed to purg_complete()/purg_complete_key()/
 * purg_complete_all(). */
enum purg_reason {
    PURG_COMPLETED = 0, /* try_complete said yes */
    PURG_EXPIRED,       /* its timeout passed */
    PURG_CANCELLED,     /* purg_cancel() / purg_cancel_owner(): nobody waits for it */
    PURG_SHUTDOWN,      /* purg_free() */
    PURG_REASON_USER = 64,
};

/* May the operation complete now? Must not complete, cancel or free @op itself
 * (say true instead); may otherwise use the purgatory. */
typedef bool (*purg_try_fn)(struct purg_op *op);
/* Called exactly once for every operation purg_add() or purg_watch() accepted,
 * after the purgatory forgot it: may free @op, may re-enter the purgatory. */
typedef void (*purg_complete_fn)(struct purg_op *op, int reason);

/* One watch of one key by one operation (internal; here for the inline slot). */
struct purg_watch {
    struct purg_watch *prev, *next;
    struct purg_op *op; /* NULL: a walk's cursor */
    struct purg_key *list;
    uint64_t key;
    uint64_t seq; /* order of insertion, for walks */
};

/* Embed in the request's own struct; purg_op_init() before purg_add(). The
 * fields after `owner` belong to the purgatory. */
struct purg_op {
    purg_try_fn try_complete;
    purg_complete_fn on_complete;
    const void *owner; /* purg_cancel_owner() tag; NULL: none */

    struct purg *pg;            /* while watched; NULL otherwise */
    struct event *timer;        /* NULL: no timeout */
    struct purg_watch *watches; /* n_watches nodes: &inl or heap */
    size_t n_watches;
    struct purg_watch inl;        /* the node of a one-key operation */
    struct purg_watch owner_node; /* in the owner's list, when owner != NULL */
    struct purg_watch all_node;   /* in the purgatory's list of every operation */
};

/* Counters of one purgatory, for metrics. */
struct purg_stats {
    const char *name;   /* as given to purg_new(), valid while the purgatory is */
    size_t watched;     /* operations waiting now */
    size_t keys;        /* keys with at least one watcher */
    uint64_t added;     /* operations that waited (not those completed at once) */
    uint64_t completed; /* PURG_COMPLETED, at once or later */
    uint64_t expired;   /* PURG_EXPIRED */
    uint64_t cancelled; /* PURG_CANCELLED */
    uint64_t shutdown;  /* PURG_SHUTDOWN */
    uint64_t forced;    /* caller-defined reasons */
};

/* No timeout, for purg_add()'s @timeout_ms. */
#define PURG_NO_TIMEOUT (-1)

/* A key naming an object by its address (never dereferenced). */
static inline uint64_t purg_key_ptr(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

/* @name (copied, at most 31 bytes kept) names the purgatory in counters and
 * logs. Borrows @base, which must outlive the purgatory. -ENOMEM. */
int purg_new(struct event_base *base, const char *name, struct purg **ret_purg);
/* Completes every waiting operation with PURG_SHUTDOWN (also those their
 * callbacks add meanwhile), then frees. NULL-safe. Not from inside one of this
 * purgatory's callbacks. */
void purg_free(struct purg *pg);

/* Set the callbacks and owner of @op, clearing the rest (@op may be fresh
 * uninitialized memory; it must not be watched). */
void purg_op_init(struct purg_op *op, purg_try_fn try_complete, purg_complete_fn on_complete,
                  const void *owner);

/* tryCompleteElseWatch: run try_complete; if it says yes, complete @op
 * (PURG_COMPLETED) and return 1 — on_complete has run, @op may be gone. Else
 * watch @op on the @n_keys @keys (copied; duplicates are watched once) and
 * start its timeout (@timeout_ms >= 0, 0 expiring at the next loop iteration;
 * PURG_NO_TIMEOUT for none) and return 0. -ENOMEM: nothing was done, on_complete
 * will not be called. With no key, only the timeout, completion or the owner end
 * the wait. Borrows @op until on_complete runs. */
int purg_add(struct purg *pg, struct purg_op *op, const uint64_t *keys, size_t n_keys,
             int64_t timeout_ms);
/* As purg_add(), without trying first: for callers that just found that @op
 * cannot complete. 0 or -ENOMEM; on_complete is never called from inside. */
int purg_watch(struct purg *pg, struct purg_op *op, const uint64_t *keys, size_t n_keys,
               int64_t timeout_ms);

/* An event on @key: try the operations watching it, in the order they started
 * watching, and complete those that can. Returns how many completed. */
size_t purg_check(struct purg *pg, uint64_t key);
/* As purg_check(), but stop at the first watcher that cannot complete: for
 * keys whose watchers become completable in the order they were added. */
size_t purg_check_ordered(struct purg *pg, uint64_t key);

/* Complete @op now with @reason, without asking try_complete. No-op when @op is
 * not watched (never was, or already completed). */
void purg_complete(struct purg_op *op, int reason);
/* Complete every operation watching @key (in order) / every waiting operation
 * with @reason. Returns how many. */
size_t purg_complete_key(struct purg *pg, uint64_t key, int reason);
size_t purg_complete_all(struct purg *pg, int reason);
/* purg_complete(@op, PURG_CANCELLED). */
void purg_cancel(struct purg_op *op);
/* Complete every operation of @owner (non-NULL) with PURG_CANCELLED, in the order
 * they were added. Returns how many. */
size_t purg_cancel_owner(struct purg *pg, const void *owner);

/* Is @op waiting in a purgatory? */
bool purg_op_watched(const struct purg_op *op);
/* Operations watching @key now. */
size_t purg_key_count(const struct purg *pg, uint64_t key);
/* Operations waiting now. */
size_t purg_count(const struct purg *pg);
void purg_get_stats(const struct purg *pg, struct purg_stats *ret_stats);
