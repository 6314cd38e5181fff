/* placement: which brokers hold the replicas of new partitions.
 *
 * Deterministic: the result depends only on the broker set (ids and racks; the
 * input order does not matter) and the request. Brokers are arranged in one list:
 * sorted by id, or, when every broker has a rack, alternating between racks
 * (racks sorted by name, brokers within a rack by id). Partition p's first replica
 * (its preferred leader) is list[(start + p) % n]; the others follow it at a
 * distance that shifts by one every n partitions, so leaders and replicas spread
 * evenly. With racks, a follower is skipped while its rack already holds a
 * replica of the partition and racks without one remain, so every partition
 * spans min(RF, #racks) racks.
 *
 * Because the shift is a function of the partition id, assigning partitions
 * first..first+k-1 with the same start gives exactly the replicas a single
 * assignment of 0..first+k-1 would have given them: adding partitions to a topic
 * continues its balance (cplace_index_of() recovers the start from partition 0).
 * Callers pick the start of a new topic at random so that topics do not all
 * begin on the same broker. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct cstate;

struct cplace_broker {
    int32_t id;
    const char *rack; /* NULL or "": none */
};

struct cplace_request {
    int32_t n_parts;         /* partitions to place, >= 1 */
    int32_t rf;              /* replicas each, 1..number of brokers */
    int32_t first_partition; /* id of the first of them (a topic's current count) */
    uint32_t start;          /* list position of partition 0's first replica (any value; mod n) */
};

/* Write @req->n_parts * @req->rf broker ids to @ret_replicas (caller memory),
 * partition by partition, first replica first. Broker ids must be unique.
 * -EINVAL for an empty broker set, rf out of range, a negative count or
 * partition id, or duplicate ids; -ENOMEM. */
int cplace_assign(const struct cplace_broker *brokers, size_t n_brokers,
                  const struct cplace_request *req, int32_t *ret_replicas);

/* The list position of broker @id among @brokers; -ENOENT when absent. */
int cplace_index_of(const struct cplace_broker *brokers, size_t n_brokers, int32_t id,
                    uint32_t *ret_index);

/* The brokers eligible for new replicas (registered, not fenced, not shutting
 * down), sorted by id, racks borrowed from @s until its next change. Free
 * *ret with free(); *ret is NULL when there are none. -ENOMEM. */
int cplace_live_brokers(const struct cstate *s, struct cplace_broker **ret, size_t *ret_n);
