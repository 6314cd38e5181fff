/* storage_config: the broker's log storage keys, declared once for common/config,
 * with Kafka's names, types, defaults and bounds, and their resolution into the
 * structures the storage layer uses (struct plog_config, struct logmgr_options).
 *
 * A program declares its own keys as well. common/config takes one array, so the
 * program combines its array with storage_config_defs using
 * storage_config_defs_combine() and hands the result to config_new(); the combined
 * array must outlive the registry:
 *
 *     struct config_def *defs;
 *     size_t n;
 *     storage_config_defs_combine(broker_defs, broker_ndefs, &defs, &n);
 *     config_new(defs, n, &cfg);
 *     ...
 *     config_free(cfg);
 *     free(defs);
 *
 * Weir-only key: log.open.files.max, the cap of the shared segment descriptor
 * cache. 0 means "derive it at run time": half of the process's soft
 * RLIMIT_NOFILE, clamped to [64, 65536] (see logmgr_default_max_open_files()). The
 * default is 0, because a fixed number is either too small for a large broker or
 * more than the descriptor limit of a small one. */
#pragma once

#include <stddef.h>

#include "common/config.h"

struct plog_config;
struct logmgr_options;

extern const struct config_def storage_config_defs[];
extern const size_t storage_config_ndefs;

/* A malloc'd array holding @defs (may be NULL when @ndefs is 0) followed by
 * storage_config_defs; the entries are shallow copies (names, docs and choices
 * still point at the static originals). Free with free(). -ENOMEM. */
int storage_config_defs_combine(const struct config_def *defs, size_t ndefs,
                                struct config_def **ret_defs, size_t *ret_ndefs);

/* Resolve the loaded keys into the default configuration of a log, with Kafka's
 * precedence: log.retention.ms > log.retention.minutes > log.retention.hours (any
 * negative result is -1, "forever"); log.roll.ms > log.roll.hours; a null
 * log.flush.interval.ms is INT64_MAX (leave flushing to the OS). @c must have been
 * built over storage_config_defs (alone or combined). Always succeeds. */
void storage_config_plog(const struct config *c, struct plog_config *ret);

/* Apply one topic-level override (Kafka's topic key, e.g. "segment.bytes",
 * "retention.ms") to @cfg. Returns 1 when @key is a log setting and @value was
 * applied, 0 when @key is not a log setting (the caller handles it or it has no
 * storage effect), -EINVAL when @value does not parse or is out of range (@cfg
 * unchanged). The coordinator validates values before they reach a broker, so
 * -EINVAL means a metadata image from a newer or broken coordinator. */
int storage_config_topic_override(struct plog_config *cfg, const char *key, const char *value);

/* The log directories: log.dirs when it is set (non-null), otherwise log.dir.
 * Borrowed from @c; valid until those keys are set again. -EINVAL when the result
 * is empty or holds an empty name. */
int storage_config_log_dirs(const struct config *c, const char *const **ret_dirs,
                            size_t *ret_count);

/* Fill every field of struct logmgr_options the keys decide: the directories (as
 * storage_config_log_dirs(), borrowed from @c), the default log configuration, the
 * fd cache size, the checkpoint, retention and flush scheduler intervals. Fields
 * the keys do not cover (the clock, callbacks) are zeroed. Errors as
 * storage_config_log_dirs(). */
int storage_config_logmgr_options(const struct config *c, struct logmgr_options *ret);
