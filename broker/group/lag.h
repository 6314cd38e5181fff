/* lag: consumer lag per group / topic / partition, computed in one place for
 * the CLI and metrics — committed offset (from the offset map of the groups
 * this broker coordinates), log end offset (what a consumer can read: the
 * partition's high watermark) and lag = log end - committed.
 *
 * Where the log end offset comes from is a parameter (struct lag_source): the
 * broker's own view (lag_broker_source: the HW of partitions it leads, the HW
 * a follower replica knows, else unknown), or a caller's (a CLI that asked
 * ListOffsets). Unknown values are -1 and then so is the lag. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct omap;
struct omap_group;
struct omap_entry;
struct broker_ctx;

struct lag_row {
    const char *topic; /* borrowed from the offset map: valid until it changes */
    int32_t partition;
    int64_t committed;  /* -1: none */
    int64_t log_end;    /* -1: unknown */
    int64_t lag;        /* -1 when either is unknown; never negative otherwise */
};

struct lag_source {
    /* The consumer-visible end of @topic/@partition, or -1 when unknown. */
    int64_t (*log_end)(void *ud, const char *topic, int32_t partition);
    void *ud;
};

/* lag = log_end - committed, clamped at 0 (a commit past the end, as after a
 * truncation, is no lag); -1 when either side is unknown. */
int64_t lag_of(int64_t committed, int64_t log_end);

/* Rows for every committed offset of @group in @m, sorted by topic then
 * partition, in a malloc'd array (*ret_rows, free() it; NULL with 0 rows).
 * 0 or -ENOMEM. */
int lag_group(const struct omap *m, const char *group, const struct lag_source *src,
              struct lag_row **ret_rows, size_t *ret_n);
/* The row of one committed offset (metrics walk a group's entries a slice at
 * a time with it, unsorted). */
void lag_entry_row(const struct omap_entry *e, const struct lag_source *src, struct lag_row *ret);
/* The same for a group already looked up (@g may be NULL: no rows), e.g.
 * while visiting the map with omap_foreach(). */
int lag_group_rows(const struct omap_group *g, const struct lag_source *src,
                   struct lag_row **ret_rows, size_t *ret_n);
/* Sum of the known lags of @rows (the group's total lag). */
int64_t lag_total(const struct lag_row *rows, size_t n);

/* The broker's view: the HW of a partition it leads, the HW of a follower
 * replica it hosts (at most one fetch behind the leader's), else -1. Borrows @b. */
struct lag_source lag_broker_source(struct broker_ctx *b);
