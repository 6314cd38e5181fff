/* offset_map: the committed offsets this broker coordinates, in memory —
 * group -> (topic, partition) -> (offset, leader epoch, metadata, commit and
 * expire timestamps), each group tagged with the __consumer_offsets partition
 * it lives in so a lost leadership drops that partition's groups at once.
 *
 * Filled by loading an offsets partition (gstore.c) and by commits once they
 * are committed to the ISR; emptied by tombstones (OffsetDelete, DeleteGroups,
 * expiry). Pure data: no clock, no I/O, unit-tested on its own. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct omap;

struct omap_entry {
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata;
    int64_t commit_timestamp;
    int64_t expire_timestamp; /* -1: the broker's offsets.retention.minutes applies */
};

struct omap_group {
    char *group;
    int32_t opart; /* its __consumer_offsets partition */
    struct omap_entry *entries;
    size_t n, cap;
    struct omap_group *next; /* bucket chain */
};

/* -ENOMEM. */
int omap_new(struct omap **ret);
void omap_free(struct omap *m); /* NULL-safe */

/* Insert or replace (@topic, @partition) of @group; copies the strings.
 * 0 or -ENOMEM (the map is unchanged then). */
int omap_put(struct omap *m, const char *group, int32_t opart, const char *topic,
             int32_t partition, int64_t offset, int32_t leader_epoch, const char *metadata,
             int64_t commit_ts, int64_t expire_ts);
/* Remove one offset; a group left with none is removed. True if it was there. */
bool omap_remove(struct omap *m, const char *group, const char *topic, int32_t partition);
const struct omap_entry *omap_get(const struct omap *m, const char *group, const char *topic,
                                  int32_t partition);
/* NULL when the group has no committed offsets. Valid until the next change. */
const struct omap_group *omap_group(const struct omap *m, const char *group);
void omap_remove_group(struct omap *m, const char *group);
/* Forget every group of offsets partition @opart. */
void omap_drop_partition(struct omap *m, int32_t opart);
size_t omap_group_count(const struct omap *m);
size_t omap_offset_count(const struct omap *m);

/* Calls @fn for each group (in no particular order); @fn must not change the map. */
void omap_foreach(const struct omap *m, void (*fn)(void *ud, const struct omap_group *g),
                  void *ud);

/* Kafka's expiry rule for one offset of an empty group: past its explicit
 * expire timestamp when it has one, else @retention_ms after its commit. */
bool omap_entry_expired(const struct omap_entry *e, int64_t now_ms, int64_t retention_ms);
