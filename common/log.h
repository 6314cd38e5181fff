/* log: leveled log lines with a subsystem tag, one line per call, to stderr by
 * default, in one of two formats (log.format):
 *
 * text (the default), for people:
 *
 *   2026-11-21T04:43:56.123Z INFO  [replica] t-0: leader in epoch 3 at offset 42 event=leader topic=t partition=0 epoch=3 offset=42
 *
 * json, one object per line for log shippers, with the stable members ts
 * (RFC 3339 UTC, milliseconds), level, component and msg, then "event" (when
 * the line reports one) and the event's fields:
 *
 *   {"ts":"2026-11-21T04:43:56.123Z","level":"info","component":"replica","msg":"t-0: leader in epoch 3 at offset 42","event":"leader","topic":"t","partition":0,"epoch":3,"offset":42}
 *
 * An event line carries key/value fields (LOG_FIELDS below): rendered as
 * key=value after the message in text (values quoted and escaped when they hold
 * spaces, quotes, '=', control characters or invalid UTF-8), and as JSON members
 * (strings escaped, invalid UTF-8 replaced by U+FFFD; integers as numbers). Keys
 * are the caller's constants; they must not repeat each other or the four
 * standard members. In text the message's own control characters are escaped
 * too, so a peer's string (a group id, say) cannot forge a line.
 *
 * Thread-safe (each line is written with a single locked stdio call). Library code
 * (common/, storage/) logs at debug at most; the caller that decides logs once, with
 * context. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
    LOG_LEVEL_TRACE = 4,
};

enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON = 1,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug", "trace" (case-insensitive). -EINVAL
 * otherwise. */
int log_level_parse(const char *s, enum log_level *ret);
const char *log_level_name(enum log_level level);
void log_set_format(enum log_format format);
enum log_format log_get_format(void);
/* Parses "text" or "json" (case-insensitive). -EINVAL otherwise. */
int log_format_parse(const char *s, enum log_format *ret);
/* Redirect output (tests); NULL restores stderr. Borrows @f. */
void log_set_output(FILE *f);
bool log_enabled(enum log_level level);

enum log_field_type {
    LOG_FIELD_END = 0, /* terminates a field array */
    LOG_FIELD_STR,     /* NULL renders as JSON null / text "-" */
    LOG_FIELD_INT,
    LOG_FIELD_BOOL,
};

struct log_field {
    const char *key;
    enum log_field_type type;
    union {
        const char *s;
        int64_t i;
    };
};

#define LF_STR(k, v)  ((struct log_field){.key = (k), .type = LOG_FIELD_STR, .s = (v)})
#define LF_INT(k, v)  ((struct log_field){.key = (k), .type = LOG_FIELD_INT, .i = (int64_t)(v)})
#define LF_BOOL(k, v) ((struct log_field){.key = (k), .type = LOG_FIELD_BOOL, .i = (v) ? 1 : 0})
/* A terminated field array that lives as long as the enclosing block:
 *   log_event(LOG_LEVEL_INFO, "replica", "leader",
 *             LOG_FIELDS(LF_STR("topic", t), LF_INT("partition", p)), "...", ...); */
#define LOG_FIELDS(...) ((const struct log_field[]){__VA_ARGS__, {.type = LOG_FIELD_END}})

void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *subsys, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* One line reporting the operator event @event (a stable snake_case name, NULL
 * for none) with @fields (terminated by LOG_FIELD_END, NULL for none; borrowed). */
void log_event(enum log_level level, const char *subsys, const char *event,
               const struct log_field *fields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void log_vevent(enum log_level level, const char *subsys, const char *event,
                const struct log_field *fields, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* A budget for lines that come one per partition: at most @max lines per
 * @window_ms at full level, the rest counted for a summary the caller writes
 * (log_budget_take_counted) and logged at debug. Not thread-safe: one per
 * loop. */
struct log_budget {
    int64_t window_ms; /* start of the current window (monotonic ms) */
    uint32_t lines;    /* written at full level in it */
    uint32_t counted;  /* written at debug since the last take */
};
/* @level while the window has room, else LOG_LEVEL_DEBUG (and counted). */
enum log_level log_budget_level(struct log_budget *b, enum log_level level, int64_t now_ms,
                                uint32_t max, int64_t window_ms);
/* The lines counted since the last call, for a summary line; resets them. */
uint32_t log_budget_take_counted(struct log_budget *b);

/* @value for a log line about config key @key: "(hidden)" when the key holds a
 * secret (its name mentions a password, secret, credential, JAAS config or
 * private key), else @value. */
const char *log_config_value(const char *key, const char *value);

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
