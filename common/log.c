/* log: formats one line per call (text: "<UTC time> <LEVEL> [subsys] message
 * key=value...", or one JSON object) into a local buffer and hands it to stdio in
 * a single fwrite, whose internal lock keeps lines from different threads whole.
 * Level, format and output are atomics so they may be changed while other threads
 * log. */
#include "common/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/utf8.h"

static _Atomic int cur_level = LOG_LEVEL_INFO;
static _Atomic int cur_format = LOG_FORMAT_TEXT;
static _Atomic(FILE *) cur_out;

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARN] = "warn",   [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug", [LOG_LEVEL_TRACE] = "trace",
};

/* Upper-case and padded to five columns so messages line up. */
static const char *const level_tags[] = {
    [LOG_LEVEL_ERROR] = "ERROR", [LOG_LEVEL_WARN] = "WARN ",  [LOG_LEVEL_INFO] = "INFO ",
    [LOG_LEVEL_DEBUG] = "DEBUG", [LOG_LEVEL_TRACE] = "TRACE",
};

#define N_LEVELS (int)(sizeof(level_names) / sizeof(level_names[0]))

void log_set_level(enum log_level level)
{
    if ((int)level < 0)
        level = LOG_LEVEL_ERROR;
    if ((int)level >= N_LEVELS)
        level = LOG_LEVEL_TRACE;
    atomic_store(&cur_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&cur_level);
}

int log_level_parse(const char *s, enum log_level *ret)
{
    if (!s)
        return -EINVAL;
    for (int i = 0; i < N_LEVELS; i++) {
        if (!strcasecmp(s, level_names[i])) {
            *ret = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
    if ((int)level < 0 || (int)level >= N_LEVELS)
        return "unknown";
    return level_names[level];
}

void log_set_format(enum log_format format)
{
    atomic_store(&cur_format, format == LOG_FORMAT_JSON ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);
}

enum log_format log_get_format(void)
{
    return (enum log_format)atomic_load(&cur_format);
}

int log_format_parse(const char *s, enum log_format *ret)
{
    if (s && !strcasecmp(s, "text")) {
        *ret = LOG_FORMAT_TEXT;
        return 0;
    }
    if (s && !strcasecmp(s, "json")) {
        *ret = LOG_FORMAT_JSON;
        return 0;
    }
    return -EINVAL;
}

void log_set_output(FILE *f)
{
    atomic_store(&cur_out, f);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&cur_level);
}

void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vevent(level, subsys, NULL, NULL, fmt, ap);
    va_end(ap);
}

void log_vmsg(enum log_level level, const char *subsys, const char *fmt, va_list ap)
{
    log_vevent(level, subsys, NULL, NULL, fmt, ap);
}

void log_event(enum log_level level, const char *subsys, const char *event,
               const struct log_field *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vevent(level, subsys, event, fields, fmt, ap);
    va_end(ap);
}

const char *log_config_value(const char *key, const char *value)
{
    static const char *const secret[] = {"password", "secret", "credential", "jaas",
                                         "private", ".key", "token"};
    for (size_t i = 0; key && i < sizeof(secret) / sizeof(secret[0]); i++)
        if (strcasestr(key, secret[i]))
            return "(hidden)";
    return value;
}

enum log_level log_budget_level(struct log_budget *b, enum log_level level, int64_t now_ms,
                                uint32_t max, int64_t window_ms)
{
    if (b->window_ms == 0 || now_ms - b->window_ms >= window_ms) {
        b->window_ms = now_ms;
        b->lines = 0;
    }
    if (b->lines < max) {
        b->lines++;
        return level;
    }
    b->counted++;
    return LOG_LEVEL_DEBUG;
}

uint32_t log_budget_take_counted(struct log_budget *b)
{
    uint32_t n = b->counted;
    b->counted = 0;
    return n;
}

/* ---- line buffer ----------------------------------------------------------- */

/* Most lines fit on the stack; a long one moves to the heap so it is still
 * written with one call. Out of memory, the line is cut where it stood. */
struct lbuf {
    char *p;
    size_t len, cap;
    bool full;
    char stack[1024];
};

static void lb_init(struct lbuf *b)
{
    b->p = b->stack;
    b->len = 0;
    b->cap = sizeof(b->stack);
    b->full = false;
}

static bool lb_reserve(struct lbuf *b, size_t n)
{
    if (b->full)
        return false;
    if (b->len + n + 2 <= b->cap) /* room for '\n' and NUL */
        return true;
    size_t cap = b->cap * 2;
    while (b->len + n + 2 > cap)
        cap *= 2;
    char *np = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);
    if (!np) {
        b->full = true;
        return false;
    }
    if (b->p == b->stack)
        memcpy(np, b->stack, b->len);
    b->p = np;
    b->cap = cap;
    return true;
}

static void lb_put(struct lbuf *b, const char *s, size_t n)
{
    if (lb_reserve(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void lb_puts(struct lbuf *b, const char *s)
{
    lb_put(b, s, strlen(s));
}

static void lb_putc(struct lbuf *b, char c)
{
    lb_put(b, &c, 1);
}

static void lb_printf(struct lbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lb_printf(struct lbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        lb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void lb_free(struct lbuf *b)
{
    if (b->p != b->stack)
        free(b->p);
}

/* ---- escaping -------------------------------------------------------------- */

enum esc {
    ESC_JSON,      /* a JSON string body: invalid UTF-8 becomes U+FFFD */
    ESC_TEXT_MSG,  /* a text message: only control characters escaped */
    ESC_TEXT_VAL,  /* a quoted text value: also quotes, backslashes, invalid UTF-8 */
};

/* Control characters as \n, \r, \t, else \u00XX (JSON) or \xNN (text); in JSON
 * and quoted values '"' and '\' get a backslash; bytes that are not UTF-8 are
 * U+FFFD in JSON and \xNN in a quoted value (a message keeps them as they are,
 * readable on a terminal). */
static void lb_escape(struct lbuf *b, const char *str, size_t n, enum esc mode)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k = 1;
        if (mode != ESC_TEXT_MSG && (c == '"' || c == '\\')) {
            lb_putc(b, '\\');
            lb_putc(b, (char)c);
        } else if (c == '\n') {
            lb_puts(b, "\\n");
        } else if (c == '\r') {
            lb_puts(b, "\\r");
        } else if (c == '\t') {
            lb_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            lb_printf(b, mode == ESC_JSON ? "\\u%04x" : "\\x%02x", c);
        } else if (c < 0x80 || mode == ESC_TEXT_MSG) {
            lb_putc(b, (char)c);
        } else if ((k = utf8_seq_len(s + i, n - i)) > 0) {
            lb_put(b, (const char *)s + i, k);
        } else {
            k = 1;
            if (mode == ESC_JSON)
                lb_puts(b, "\\ufffd");
            else
                lb_printf(b, "\\x%02x", c);
        }
        i += k;
    }
}

static void lb_json_str(struct lbuf *b, const char *s)
{
    lb_putc(b, '"');
    lb_escape(b, s, strlen(s), ESC_JSON);
    lb_putc(b, '"');
}

/* A bare value unless it would be ambiguous: empty, or holding a space, a
 * quote, '=', a backslash, a control character or a non-ASCII byte. */
static void lb_text_value(struct lbuf *b, const char *s)
{
    bool quote = !*s;
    for (const unsigned char *p = (const unsigned char *)s; *p && !quote; p++)
        quote = *p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f;
    if (!quote) {
        lb_puts(b, s);
        return;
    }
    lb_putc(b, '"');
    lb_escape(b, s, strlen(s), ESC_TEXT_VAL);
    lb_putc(b, '"');
}

/* ---- the line -------------------------------------------------------------- */

/* ',"key":value' in JSON, ' key=value' in text. */
static void put_field(struct lbuf *b, const struct log_field *f, bool json)
{
    const char *key = f->key ? f->key : "";
    if (json) {
        lb_putc(b, ',');
        lb_json_str(b, key);
        lb_putc(b, ':');
    } else {
        lb_putc(b, ' ');
        lb_puts(b, key);
        lb_putc(b, '=');
    }
    switch (f->type) {
    case LOG_FIELD_STR:
        if (!f->s)
            lb_puts(b, json ? "null" : "-");
        else if (json)
            lb_json_str(b, f->s);
        else
            lb_text_value(b, f->s);
        break;
    case LOG_FIELD_INT:
        lb_printf(b, "%lld", (long long)f->i);
        break;
    case LOG_FIELD_BOOL:
        lb_puts(b, f->i ? "true" : "false");
        break;
    case LOG_FIELD_END:
        break;
    }
}

void log_vevent(enum log_level level, const char *subsys, const char *event,
                const struct log_field *fields, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    int save_errno = errno; /* callers often log right before returning -errno */
    int li = (int)level < 0 ? 0 : (int)level >= N_LEVELS ? N_LEVELS - 1 : (int)level;
    bool json = atomic_load(&cur_format) == LOG_FORMAT_JSON;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t wl = strftime(when, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, sizeof(when) - wl, ".%03ldZ", (long)(ts.tv_nsec / 1000000));

    /* The message first, into its own buffer, so it can be escaped. */
    char mstack[512];
    char *msg = mstack;
    va_list ap2;
    va_copy(ap2, ap);
    int m = vsnprintf(mstack, sizeof(mstack), fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m;
    if (mlen >= sizeof(mstack)) {
        char *heap = malloc(mlen + 1);
        if (heap) {
            vsnprintf(heap, mlen + 1, fmt, ap2);
            msg = heap;
        } else {
            mlen = sizeof(mstack) - 1; /* keep what fit */
        }
    }
    va_end(ap2);
    if (mlen > 0 && msg[mlen - 1] == '\n')
        mlen--; /* every line ends with exactly one newline */
    if (!subsys)
        subsys = "-";

    struct lbuf b;
    lb_init(&b);
    if (json) {
        lb_puts(&b, "{\"ts\":\"");
        lb_puts(&b, when);
        lb_puts(&b, "\",\"level\":\"");
        lb_puts(&b, level_names[li]);
        lb_puts(&b, "\",\"component\":");
        lb_json_str(&b, subsys);
        lb_puts(&b, ",\"msg\":\"");
        lb_escape(&b, msg, mlen, ESC_JSON);
        lb_putc(&b, '"');
    } else {
        lb_puts(&b, when);
        lb_putc(&b, ' ');
        lb_puts(&b, level_tags[li]);
        lb_puts(&b, " [");
        lb_put(&b, subsys, strnlen(subsys, 255)); /* an absurd subsystem name is cut */
        lb_puts(&b, "] ");
        lb_escape(&b, msg, mlen, ESC_TEXT_MSG);
    }
    if (event)
        put_field(&b, &LF_STR("event", event), json);
    for (const struct log_field *f = fields; f && f->type != LOG_FIELD_END; f++)
        put_field(&b, f, json);
    if (json)
        lb_putc(&b, '}');
    if (msg != mstack)
        free(msg);
    /* lb_reserve kept room for the newline even when the line was cut. */
    b.p[b.len++] = '\n';

    FILE *out = atomic_load(&cur_out);
    if (!out)
        out = stderr;
    fwrite(b.p, 1, b.len, out);
    lb_free(&b);
    errno = save_errno;
}
