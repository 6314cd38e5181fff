/* logdirs: every broker's DescribeLogDirs answer, for `weir cluster log-dirs`
 * and the byte progress of reassignment waits (cli/reassign.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cli;

/* One partition replica in one log dir of one broker; or, with topic NULL, a
 * log dir that holds none of the requested partitions (or answered an error). */
struct ld_row {
    int32_t broker;
    char *dir;
    int16_t dir_error; /* the dir's error code; 0 */
    char *topic;       /* NULL: a dir row without partitions */
    int32_t partition;
    int64_t size;
    int64_t offset_lag;
    bool is_future;
    int64_t total_bytes, usable_bytes; /* -1: not reported */
};

struct ld_rows {
    struct ld_row *v;
    size_t n, cap;
};

/* DescribeLogDirs to every broker in Metadata; @topics (NULL, n 0: every
 * partition) names whole topics. A broker that cannot be reached is reported
 * on stderr and skipped (@ret_unreachable counts them; may be NULL). 0, or -1
 * after an error line. */
int ld_collect(const struct cli *c, const char *const *topics, int n_topics, struct ld_rows *ret,
               int *ret_unreachable);
void ld_rows_free(struct ld_rows *rows);

/* The size of @topic-@partition on @broker, or -1 when it holds none. */
int64_t ld_size(const struct ld_rows *rows, int32_t broker, const char *topic, int32_t partition);

/* `weir cluster log-dirs [--topics a,b]`: one row per replica (BROKER DIR
 * TOPIC PARTITION SIZE ERROR), or JSON. */
int cli_cluster_log_dirs(struct cli *c, const char *topics_csv);
