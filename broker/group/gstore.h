/* gstore: the __consumer_offsets store — which partition a group maps to,
 * whether this broker coordinates it, writing records to it and loading it.
 * Owned by `offsets`; this is the interface of /work/prompts/group-interface.md. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

struct gstore;
struct groups;
/* abs(java String.hashCode(group_id)) % offsets.topic.num.partitions (Kafka's mapping; Java's abs of INT_MIN stays INT_MIN -> use Kafka's Utils.abs = x & 0x7fffffff). */
int32_t gstore_partition_for(const struct gstore *gs, const char *group_id);
/* KERR_NONE if this broker leads the group's partition and has loaded it; else KERR_NOT_COORDINATOR,
 * KERR_COORDINATOR_LOAD_IN_PROGRESS or KERR_COORDINATOR_NOT_AVAILABLE (topic not created yet / no leader). */
int16_t gstore_coordinator_check(struct gstore *gs, const char *group_id);
typedef void (*gstore_done_fn)(void *ud, int16_t kerr);
/* Append one record (@key, @value; a null @value slice = tombstone) to the group's partition as its leader.
 * @done runs exactly once, later (never inside this call): KERR_NONE once the high watermark has passed the
 * record (committed to the ISR, min.insync.replicas honoured), else Kafka's error (NOT_COORDINATOR when
 * leadership moved, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT ...). Returns 0, or a KERR_ code without calling @done. */
int16_t gstore_append(struct gstore *gs, const char *group_id, buf_slice key, buf_slice value,
                      gstore_done_fn done, void *ud);
/* DeleteGroups: tombstones for every committed offset of @group_id, then @done as above. */
int16_t gstore_delete_group_offsets(struct gstore *gs, const char *group_id, gstore_done_fn done, void *ud);
/* Does the group have committed offsets (ListGroups/DescribeGroups of a group with offsets but no members shows it as Empty). */
bool gstore_group_has_offsets(const struct gstore *gs, const char *group_id);
