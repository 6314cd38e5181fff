/* log: formats one line per call ("<UTC time> <LEVEL> [subsys] message") into a
 * local buffer and hands it to stdio in a single fwrite, whose internal lock keeps
 * lines from different threads whole. Level and output are atomics so they may be
 * changed while other threads log. */
#include "common/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static _Atomic int cur_level = LOG_LEVEL_INFO;
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
    log_vmsg(level, subsys, fmt, ap);
    va_end(ap);
}

void log_vmsg(enum log_level level, const char *subsys, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    int save_errno = errno; /* callers often log right before returning -errno */
    int li = (int)level < 0 ? 0 : (int)level >= N_LEVELS ? N_LEVELS - 1 : (int)level;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);

    /* Most lines fit on the stack; a long one gets a heap buffer so it is still
     * written with one call. */
    char stackbuf[1024];
    size_t plen = strftime(stackbuf, 64, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(stackbuf + plen, 256, ".%03ldZ %s [%s] ", (long)(ts.tv_nsec / 1000000),
                     level_tags[li], subsys ? subsys : "-");
    if (n < 0)
        n = 0;
    plen += (size_t)n < 255 ? (size_t)n : 255; /* an absurd subsystem name is cut */

    va_list ap2;
    va_copy(ap2, ap);
    int m = vsnprintf(stackbuf + plen, sizeof(stackbuf) - plen, fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m;
    char *line = stackbuf;
    if (plen + mlen + 1 >= sizeof(stackbuf)) {
        char *heap = malloc(plen + mlen + 2);
        if (heap) {
            memcpy(heap, stackbuf, plen);
            vsnprintf(heap + plen, mlen + 1, fmt, ap2);
            line = heap;
        } else {
            mlen = sizeof(stackbuf) - plen - 1; /* keep what fit */
        }
    }
    va_end(ap2);

    size_t len = plen + mlen;
    if (mlen == 0 || line[len - 1] != '\n')
        line[len++] = '\n';

    FILE *out = atomic_load(&cur_out);
    if (!out)
        out = stderr;
    fwrite(line, 1, len, out);
    if (line != stackbuf)
        free(line);
    errno = save_errno;
}
