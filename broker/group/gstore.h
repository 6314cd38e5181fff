/* gstore: the __consumer_offsets store — which partition a group maps to,
 * whether this broker coordinates it, writing records to it and loading it.
 * Owned by `offsets`; this is the interface of /work/prompts/group-interface.md. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

struct gstore;
struct groups;
/* Utils.abs(java String.hashCode(group_id)) % offsets.topic.num.partitions:
 * Kafka's mapping, where Utils.abs(INT_MIN) is 0 and otherwise Math.abs. */
int32_t gstore_partition_for(const struct gstore *gs, const char *group_id);
/* The same mapping over @partitions partitions (pure; for tests and tools). */
int32_t gstore_partition_of(const char *group_id, int32_t partitions);
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

/* ---- beyond the interface: the broker's side (offsets owner) --------------------- */

#define GSTORE_TOPIC "__consumer_offsets"

struct broker_ctx;
struct omap;

struct gstore_options {
    int32_t num_partitions;       /* offsets.topic.num.partitions */
    int16_t replication_factor;   /* offsets.topic.replication.factor */
    int64_t retention_ms;         /* offsets.retention.minutes, in ms */
    int64_t retention_check_ms;   /* offsets.retention.check.interval.ms */
    int32_t commit_timeout_ms;    /* offsets.commit.timeout.ms: the wait for the HW */
    int32_t load_slice_bytes;     /* bytes read per loading step on the event loop */
};

/* Borrows @b (its cc, reps, repl, lm, s: must outlive the store). -ENOMEM. */
int gstore_new(struct broker_ctx *b, const struct gstore_options *o, struct gstore **ret);
/* The membership state machine that gets group records and unloads (borrowed). */
void gstore_set_groups(struct gstore *gs, struct groups *g);
/* The local metadata changed (call after repl_on_metadata): take up loading of
 * newly led offsets partitions, unload the ones no longer led. */
void gstore_on_metadata(struct gstore *gs);
/* Ends every append still waiting (its @done gets COORDINATOR_NOT_AVAILABLE)
 * and stops loading; call while the Kafka server and groups still exist. */
void gstore_shutdown(struct gstore *gs);
void gstore_free(struct gstore *gs); /* NULL-safe */

/* FindCoordinator: the broker leading the group's partition. KERR_NONE with
 * *ret_node; COORDINATOR_NOT_AVAILABLE while the topic (whose creation this
 * starts) or the partition's leader is missing. */
int16_t gstore_coordinator_node(struct gstore *gs, const char *group_id, int32_t *ret_node);
/* Starts creating __consumer_offsets through the coordinator if it does not
 * exist (once at a time). */
void gstore_ensure_topic(struct gstore *gs);

/* Several records to the group's partition in one batch (OffsetCommit: all
 * partitions of a request). Null @values[i].ptr with len -1 = tombstone. As
 * gstore_append; offset-commit records take effect in the offset map once
 * committed. */
int16_t gstore_append_records(struct gstore *gs, const char *group_id, int32_t n,
                              const buf_slice *keys, const buf_slice *values,
                              gstore_done_fn done, void *ud);

/* The committed offsets this broker serves (read-only; valid until the next
 * event-loop turn). */
const struct omap *gstore_offsets(const struct gstore *gs);
/* Run offset expiry now (the timer's work; tests call it). */
void gstore_expire_now(struct gstore *gs);

struct gstore_stats {
    int32_t partitions_loaded;
    int32_t partitions_loading;
    int64_t records_loaded;
    int64_t appends;
    int64_t offsets_expired;
};
void gstore_get_stats(const struct gstore *gs, struct gstore_stats *ret);
