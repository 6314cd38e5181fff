/* storage_config: the log storage configuration keys (Kafka's names and defaults)
 * and their resolution into plog and log manager settings. */
#include "broker/storage/storage_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "common/config.h"

#define MS_PER_MINUTE 60000LL
#define MS_PER_HOUR   3600000LL

/* Every item of a directory list must name something: "a,,b" or "" is a typo that
 * would otherwise silently drop a disk. */
static int validate_dir_list(const struct config_def *def, const char *value, char *err,
                             size_t errlen)
{
    (void)def;
    if (!value)
        return 0;
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        bool blank = true;
        for (const char *q = p; q < end; q++) {
            if (*q != ' ' && *q != '\t') {
                blank = false;
                break;
            }
        }
        if (blank) {
            snprintf(err, errlen, "a comma-separated list of directories, none empty");
            return -EINVAL;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* clang-format off */
const struct config_def storage_config_defs[] = {
    {.name = "log.dirs", .type = CONFIG_LIST, .default_value = NULL,
     .validate = validate_dir_list,
     .doc = "Directories holding the log data; when not set, log.dir is used."},
    {.name = "log.dir", .type = CONFIG_LIST, .default_value = "/tmp/kafka-logs",
     .validate = validate_dir_list,
     .doc = "The directory holding the log data (used when log.dirs is not set)."},
    {.name = "log.segment.bytes", .type = CONFIG_INT, .default_value = "1073741824",
     .min = 14, .max = INT32_MAX,
     .doc = "Maximum size of a single log segment file."},
    {.name = "log.roll.ms", .type = CONFIG_INT, .default_value = NULL,
     .min = 1, .max = INT64_MAX,
     .doc = "Maximum age of the active segment before a new one is rolled; overrides log.roll.hours."},
    {.name = "log.roll.hours", .type = CONFIG_INT, .default_value = "168",
     .min = 1, .max = INT32_MAX,
     .doc = "Maximum age in hours of the active segment before a new one is rolled."},
    {.name = "log.roll.jitter.ms", .type = CONFIG_INT, .default_value = "0",
     .min = 0, .max = INT64_MAX,
     .doc = "Largest amount taken off the roll age per segment (pseudo-random per segment), so partitions do not all roll at once."},
    {.name = "log.segment.delete.delay.ms", .type = CONFIG_INT, .default_value = "60000",
     .min = 0, .max = INT64_MAX,
     .doc = "Time a segment retired by retention keeps its *.deleted files before they are unlinked."},
    {.name = "log.index.interval.bytes", .type = CONFIG_INT, .default_value = "4096",
     .min = 0, .max = INT32_MAX,
     .doc = "Bytes of log between two entries of the offset index."},
    {.name = "log.index.size.max.bytes", .type = CONFIG_INT, .default_value = "10485760",
     .min = 4, .max = INT32_MAX,
     .doc = "Maximum size of an offset index; the segment rolls when it is full."},
    {.name = "log.retention.ms", .type = CONFIG_INT, .default_value = NULL,
     .min = INT64_MIN, .max = INT64_MAX,
     .doc = "Time to keep a segment; -1 keeps it forever; overrides log.retention.minutes."},
    {.name = "log.retention.minutes", .type = CONFIG_INT, .default_value = NULL,
     .min = INT32_MIN, .max = INT32_MAX,
     .doc = "Time in minutes to keep a segment; overrides log.retention.hours."},
    {.name = "log.retention.hours", .type = CONFIG_INT, .default_value = "168",
     .min = INT32_MIN, .max = INT32_MAX,
     .doc = "Time in hours to keep a segment; the lowest-priority retention time key."},
    {.name = "log.retention.bytes", .type = CONFIG_INT, .default_value = "-1",
     .min = INT64_MIN, .max = INT64_MAX,
     .doc = "Maximum size of a partition's log before old segments are deleted; -1 is unlimited."},
    {.name = "log.retention.check.interval.ms", .type = CONFIG_INT, .default_value = "300000",
     .min = 1, .max = INT64_MAX,
     .doc = "How often the log manager checks for segments to delete."},
    {.name = "log.flush.interval.messages", .type = CONFIG_INT,
     .default_value = "9223372036854775807", .min = 1, .max = INT64_MAX,
     .doc = "Messages accumulated in a partition before its log is fsynced."},
    {.name = "log.flush.interval.ms", .type = CONFIG_INT, .default_value = NULL,
     .min = 0, .max = INT64_MAX,
     .doc = "Maximum time a message stays in memory before its log is fsynced; null leaves it to the OS."},
    {.name = "log.flush.scheduler.interval.ms", .type = CONFIG_INT,
     .default_value = "9223372036854775807", .min = INT64_MIN, .max = INT64_MAX,
     .doc = "How often the flusher checks whether any log needs to be fsynced."},
    {.name = "log.flush.offset.checkpoint.interval.ms", .type = CONFIG_INT,
     .default_value = "60000", .min = 0, .max = INT32_MAX,
     .doc = "How often the recovery point of every log is written to disk (0: only at shutdown)."},
    {.name = "log.flush.start.offset.checkpoint.interval.ms", .type = CONFIG_INT,
     .default_value = "60000", .min = 0, .max = INT32_MAX,
     .doc = "How often the log start offset of every log is written to disk (0: only at shutdown)."},
    {.name = "replica.high.watermark.checkpoint.interval.ms", .type = CONFIG_INT,
     .default_value = "5000", .min = 0, .max = INT32_MAX,
     .doc = "How often the high watermark of every replica is written to disk (0: only at shutdown)."},
    {.name = "num.recovery.threads.per.data.dir", .type = CONFIG_INT, .default_value = "1",
     .min = 1, .max = INT32_MAX,
     .doc = "Threads per data directory for log recovery at start-up (accepted; Weir recovers sequentially)."},
    {.name = "log.cleaner.enable", .type = CONFIG_BOOL, .default_value = "true",
     .doc = "Run the log cleaner, which compacts logs whose cleanup.policy includes compact (docs/compaction.md)."},
    {.name = "log.cleaner.threads", .type = CONFIG_INT, .default_value = "1",
     .min = 1, .max = 64,
     .doc = "Compactions running at once, each a job on the broker's worker pool."},
    {.name = "log.cleaner.dedupe.buffer.size", .type = CONFIG_INT, .default_value = "134217728",
     .min = 1048576, .max = INT64_MAX,
     .doc = "Memory for the offset maps of all cleaner threads together (16 bytes per key); a dirty section with more keys is cleaned a prefix at a time."},
    {.name = "log.cleaner.backoff.ms", .type = CONFIG_INT, .default_value = "15000",
     .min = 0, .max = INT64_MAX,
     .doc = "How often the cleaner looks for a log to compact when none was due."},
    {.name = "log.cleaner.min.cleanable.ratio", .type = CONFIG_DOUBLE, .default_value = "0.5",
     .dmin = 0.0, .dmax = 1.0,
     .doc = "Default min.cleanable.dirty.ratio: dirty bytes over all cleanable bytes that make a log due."},
    {.name = "log.cleaner.delete.retention.ms", .type = CONFIG_INT, .default_value = "86400000",
     .min = 0, .max = INT64_MAX,
     .doc = "Default delete.retention.ms: how long a tombstone stays after the clean that first kept it."},
    {.name = "log.cleaner.min.compaction.lag.ms", .type = CONFIG_INT, .default_value = "0",
     .min = 0, .max = INT64_MAX,
     .doc = "Default min.compaction.lag.ms: segments holding a newer record are not cleaned."},
    {.name = "log.cleaner.max.compaction.lag.ms", .type = CONFIG_INT,
     .default_value = "9223372036854775807", .min = 1, .max = INT64_MAX,
     .doc = "Default max.compaction.lag.ms: a log whose oldest dirty record is older is cleaned whatever its ratio."},
    {.name = "log.open.files.max", .type = CONFIG_INT, .default_value = "0",
     .min = 0, .max = 1048576,
     .doc = "Weir: segment files kept open at once by all logs; 0: half the soft RLIMIT_NOFILE (raised to the hard limit at start), at most 8192."},
};
/* clang-format on */

const size_t storage_config_ndefs = sizeof(storage_config_defs) / sizeof(storage_config_defs[0]);

int storage_config_defs_combine(const struct config_def *defs, size_t ndefs,
                                struct config_def **ret_defs, size_t *ret_ndefs)
{
    size_t n = ndefs + storage_config_ndefs;
    struct config_def *all = malloc(n * sizeof(*all));
    if (!all)
        return -ENOMEM;
    if (ndefs)
        memcpy(all, defs, ndefs * sizeof(*all));
    memcpy(all + ndefs, storage_config_defs, storage_config_ndefs * sizeof(*all));
    *ret_defs = all;
    *ret_ndefs = n;
    return 0;
}

static bool is_null(const struct config *c, const char *key)
{
    return config_get_raw(c, key) == NULL;
}

void storage_config_plog(const struct config *c, struct plog_config *ret)
{
    struct plog_config cfg;
    plog_config_defaults(&cfg);

    cfg.segment_bytes = config_get_int(c, "log.segment.bytes");
    if (!is_null(c, "log.roll.ms"))
        cfg.roll_ms = config_get_int(c, "log.roll.ms");
    else
        cfg.roll_ms = config_get_int(c, "log.roll.hours") * MS_PER_HOUR;
    cfg.roll_jitter_ms = config_get_int(c, "log.roll.jitter.ms");
    cfg.file_delete_delay_ms = config_get_int(c, "log.segment.delete.delay.ms");
    cfg.index_interval_bytes = (int32_t)config_get_int(c, "log.index.interval.bytes");
    cfg.max_index_bytes = (int32_t)config_get_int(c, "log.index.size.max.bytes");

    /* The minutes and hours keys are int32, so the products cannot overflow. */
    int64_t retention;
    if (!is_null(c, "log.retention.ms"))
        retention = config_get_int(c, "log.retention.ms");
    else if (!is_null(c, "log.retention.minutes"))
        retention = config_get_int(c, "log.retention.minutes") * MS_PER_MINUTE;
    else
        retention = config_get_int(c, "log.retention.hours") * MS_PER_HOUR;
    cfg.retention_ms = retention < 0 ? -1 : retention;

    cfg.retention_bytes = config_get_int(c, "log.retention.bytes");
    if (cfg.retention_bytes < 0)
        cfg.retention_bytes = -1;
    cfg.min_cleanable_ratio = config_get_double(c, "log.cleaner.min.cleanable.ratio");
    cfg.delete_retention_ms = config_get_int(c, "log.cleaner.delete.retention.ms");
    cfg.min_compaction_lag_ms = config_get_int(c, "log.cleaner.min.compaction.lag.ms");
    cfg.max_compaction_lag_ms = config_get_int(c, "log.cleaner.max.compaction.lag.ms");
    cfg.flush_interval_messages = config_get_int(c, "log.flush.interval.messages");
    if (is_null(c, "log.flush.interval.ms"))
        cfg.flush_interval_ms = INT64_MAX;
    else
        cfg.flush_interval_ms = config_get_int(c, "log.flush.interval.ms");
    *ret = cfg;
}

/* Strict decimal int64 in [min, max]. */
static bool parse_range(const char *v, int64_t min, int64_t max, int64_t *ret)
{
    if (!v || !*v)
        return false;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || n < min || n > max)
        return false;
    *ret = n;
    return true;
}

/* "delete", "compact" or both, comma-separated (Kafka's cleanup.policy). */
static int parse_policy(struct plog_config *cfg, const char *value)
{
    bool del = false, compact = false;
    if (!value || !*value)
        return -EINVAL;
    for (const char *p = value;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == 6 && !strncmp(p, "delete", 6))
            del = true;
        else if (len == 7 && !strncmp(p, "compact", 7))
            compact = true;
        else
            return -EINVAL;
        if (!comma)
            break;
        p = comma + 1;
    }
    cfg->cleanup_delete = del;
    cfg->cleanup_compact = compact;
    return 1;
}

int storage_config_topic_override(struct plog_config *cfg, const char *key, const char *value)
{
    /* Topic key, plog field, bounds (Kafka's LogConfig). */
    static const struct {
        const char *key;
        size_t field;
        bool i32;
        int64_t min, max;
    } map[] = {
        {"segment.bytes", offsetof(struct plog_config, segment_bytes), false, 14, INT32_MAX},
        {"segment.ms", offsetof(struct plog_config, roll_ms), false, 1, INT64_MAX},
        {"segment.jitter.ms", offsetof(struct plog_config, roll_jitter_ms), false, 0, INT64_MAX},
        {"segment.index.bytes", offsetof(struct plog_config, max_index_bytes), true, 4, INT32_MAX},
        {"index.interval.bytes", offsetof(struct plog_config, index_interval_bytes), true, 0,
         INT32_MAX},
        {"retention.ms", offsetof(struct plog_config, retention_ms), false, INT64_MIN, INT64_MAX},
        {"retention.bytes", offsetof(struct plog_config, retention_bytes), false, INT64_MIN,
         INT64_MAX},
        {"flush.messages", offsetof(struct plog_config, flush_interval_messages), false, 1,
         INT64_MAX},
        {"flush.ms", offsetof(struct plog_config, flush_interval_ms), false, 0, INT64_MAX},
        {"file.delete.delay.ms", offsetof(struct plog_config, file_delete_delay_ms), false, 0,
         INT64_MAX},
        {"delete.retention.ms", offsetof(struct plog_config, delete_retention_ms), false, 0,
         INT64_MAX},
        {"min.compaction.lag.ms", offsetof(struct plog_config, min_compaction_lag_ms), false, 0,
         INT64_MAX},
        {"max.compaction.lag.ms", offsetof(struct plog_config, max_compaction_lag_ms), false, 1,
         INT64_MAX},
    };
    if (!strcmp(key, "cleanup.policy"))
        return parse_policy(cfg, value);
    if (!strcmp(key, "min.cleanable.dirty.ratio")) {
        char *end;
        if (!value || !*value)
            return -EINVAL;
        errno = 0;
        double r = strtod(value, &end);
        if (errno || *end || !(r >= 0.0 && r <= 1.0))
            return -EINVAL;
        cfg->min_cleanable_ratio = r;
        return 1;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].key, key) != 0)
            continue;
        int64_t n;
        if (!parse_range(value, map[i].min, map[i].max, &n))
            return -EINVAL;
        /* Any negative retention means "forever", as for the broker keys. */
        if ((!strcmp(key, "retention.ms") || !strcmp(key, "retention.bytes")) && n < 0)
            n = -1;
        char *f = (char *)cfg + map[i].field;
        if (map[i].i32) {
            int32_t v = (int32_t)n;
            memcpy(f, &v, sizeof(v));
        } else {
            memcpy(f, &n, sizeof(n));
        }
        return 1;
    }
    return 0;
}

int storage_config_log_dirs(const struct config *c, const char *const **ret_dirs, size_t *ret_count)
{
    const char *key = is_null(c, "log.dirs") ? "log.dir" : "log.dirs";
    size_t n = 0;
    const char *const *dirs = config_get_list(c, key, &n);
    if (n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!dirs[i] || !dirs[i][0])
            return -EINVAL;
    }
    *ret_dirs = dirs;
    *ret_count = n;
    return 0;
}

int storage_config_logmgr_options(const struct config *c, struct logmgr_options *ret)
{
    struct logmgr_options o;
    logmgr_options_defaults(&o);
    int r = storage_config_log_dirs(c, &o.dirs, &o.ndirs);
    if (r < 0)
        return r;
    storage_config_plog(c, &o.log_config);
    o.max_open_files = (int)config_get_int(c, "log.open.files.max");
    o.recovery_checkpoint_interval_ms =
        config_get_int(c, "log.flush.offset.checkpoint.interval.ms");
    o.start_offset_checkpoint_interval_ms =
        config_get_int(c, "log.flush.start.offset.checkpoint.interval.ms");
    o.retention_check_interval_ms = config_get_int(c, "log.retention.check.interval.ms");
    o.hw_checkpoint_interval_ms =
        config_get_int(c, "replica.high.watermark.checkpoint.interval.ms");
    o.flush_scheduler_interval_ms = config_get_int(c, "log.flush.scheduler.interval.ms");
    o.cleaner_enable = config_get_bool(c, "log.cleaner.enable");
    o.cleaner_threads = (int)config_get_int(c, "log.cleaner.threads");
    o.cleaner_dedupe_buffer_size = config_get_int(c, "log.cleaner.dedupe.buffer.size");
    /* Kafka's 0 means "look again at once"; a 1 ms timer is the closest. */
    o.cleaner_backoff_ms = config_get_int(c, "log.cleaner.backoff.ms");
    if (o.cleaner_backoff_ms <= 0)
        o.cleaner_backoff_ms = 1;
    o.now_ms = NULL;
    o.now_arg = NULL;
    o.on_event = NULL;
    o.event_arg = NULL;
    *ret = o;
    return 0;
}
