/* plan: the reassignment planner behind `weir reassign generate` and
 * `weir cluster rebalance|decommission`.
 *
 * Given the current replicas of some partitions and the brokers they may use,
 * it proposes new replica lists with the same replication factor that
 *   - spread replicas evenly: every broker holds the same number, within one;
 *   - respect racks (when every broker has one): a partition spans
 *     min(RF, number of racks) racks;
 *   - balance preferred leaders (the first replica): within one per broker
 *     where the replica sets allow it;
 *   - move as few replicas as possible: a replica stays where it is unless its
 *     broker is not in the set, it breaks the rack rule, or its broker holds
 *     more than its share. Adding a fourth broker to a balanced three-broker
 *     cluster moves a quarter of the replicas.
 * Deterministic: the result depends only on the brokers and the partitions,
 * not on their order in the input. Pure computation, no I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct plan_broker {
    int32_t id;
    const char *rack; /* NULL or "": none (racks count only if every broker has one) */
};

struct plan_part {
    const char *topic; /* borrowed */
    int32_t partition;
    const int32_t *replicas; /* current replicas, first = preferred leader; borrowed */
    int n_replicas;          /* the replication factor, kept by the plan */
};

/* Write the proposed replicas of every partition to @ret_replicas (caller
 * memory, the sum of n_replicas entries): partition i's list starts where the
 * input's lists of partitions 0..i-1 end, in input order. -EINVAL for no
 * brokers, a broker id twice, a partition with no replicas or more replicas
 * than brokers, or the same topic-partition twice; -ENOMEM. */
int plan_generate(const struct plan_broker *brokers, size_t n_brokers,
                  const struct plan_part *parts, size_t n_parts, int32_t *ret_replicas);

/* The number of replicas in @proposed (laid out as above) that are not in the
 * partition's current list: the replicas that must be copied. */
size_t plan_count_moves(const struct plan_part *parts, size_t n_parts, const int32_t *proposed);
