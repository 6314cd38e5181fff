/* identity: which cluster and broker a broker's log directories belong to
 * (architecture safety rule 7).
 *
 * Every log directory holds meta.properties (common/metaprops.h) naming the
 * cluster id and the broker id. At start-up, before any log is opened or any
 * byte written:
 *   1. identity_check_dirs(): every existing meta.properties must name this
 *      broker.id, and all of them the same cluster;
 *   2. identity_fetch_cluster_id(): the coordinator's cluster id (DescribeCluster);
 *   3. identity_check_cluster(): the dirs must belong to that cluster;
 *   4. identity_write_dirs(): directories without meta.properties get one.
 * Only then does the broker open its logs. The registration carries the cluster
 * id too, so a coordinator that changed identity while the broker ran is
 * refused (INCONSISTENT_CLUSTER_ID) rather than followed.
 *
 * Start-up code: everything here blocks (file I/O, or runs the event loop until
 * the coordinator answers). The refusals are logged here, once, naming both ids
 * and the directory; the caller exits non-zero. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/metaprops.h"

struct event_base;
struct broker_settings;

/* Read meta.properties in each of @dirs (missing dirs and files are fine).
 * -EINVAL (logged) when one names another broker id, the dirs name different
 * clusters, or a file is unreadable or malformed. *@ret_cluster_id gets the
 * cluster the dirs belong to, or "" when none has meta.properties yet. */
int identity_check_dirs(const char *const *dirs, size_t ndirs, int32_t broker_id,
                        char ret_cluster_id[METAPROPS_ID_BUF]);

/* Ask the coordinator of @s for its cluster id with DescribeCluster, retrying
 * until it answers with one, running @base's loop meanwhile. -EINTR when
 * SIGTERM or SIGINT arrives first (the broker then exits 0 without having
 * changed anything). */
int identity_fetch_cluster_id(struct event_base *base, const struct broker_settings *s,
                              char ret_cluster_id[METAPROPS_ID_BUF]);

/* -EINVAL (logged, naming both ids and the directory) when a dir of @dirs has
 * meta.properties of a cluster other than @cluster_id. */
int identity_check_cluster(const char *const *dirs, size_t ndirs, const char *cluster_id);

/* Write meta.properties (cluster @cluster_id, node @broker_id, a new
 * directory.id) in every dir of @dirs that has none, creating the dir. Durable.
 * -errno (logged) on failure. */
int identity_write_dirs(const char *const *dirs, size_t ndirs, int32_t broker_id,
                        const char *cluster_id);
