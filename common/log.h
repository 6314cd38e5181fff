/* log: leveled log lines with a subsystem tag, one line per call, to stderr by
 * default:
 *
 *   2026-11-21T04:43:56.123Z INFO  [storage] recovered topic-0: truncated 120 bytes
 *
 * Thread-safe (each line is written with a single locked stdio call). Library code
 * (common/, storage/) logs at debug at most; the caller that decides logs once, with
 * context. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
    LOG_LEVEL_TRACE = 4,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug", "trace" (case-insensitive). -EINVAL
 * otherwise. */
int log_level_parse(const char *s, enum log_level *ret);
const char *log_level_name(enum log_level level);
/* Redirect output (tests); NULL restores stderr. Borrows @f. */
void log_set_output(FILE *f);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *subsys, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_error(subsys, ...) log_msg(LOG_LEVEL_ERROR, subsys, __VA_ARGS__)
#define log_warn(subsys, ...) log_msg(LOG_LEVEL_WARN, subsys, __VA_ARGS__)
#define log_info(subsys, ...) log_msg(LOG_LEVEL_INFO, subsys, __VA_ARGS__)
#define log_debug(subsys, ...)                                                                     \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_msg(LOG_LEVEL_DEBUG, subsys, __VA_ARGS__);                                         \
    } while (0)
#define log_trace(subsys, ...)                                                                     \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_TRACE))                                                          \
            log_msg(LOG_LEVEL_TRACE, subsys, __VA_ARGS__);                                         \
    } while (0)
