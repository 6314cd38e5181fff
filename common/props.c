/* props: the Java .properties reader behind server.properties. Owns the line
 * reader (natural lines, comments, continuations), the key/value split and the
 * escape decoding; what the keys mean belongs to the caller (config.c).
 *
 * Bytes other than escapes pass through unchanged, so a UTF-8 file yields UTF-8
 * strings (Java would read ISO-8859-1; no Kafka key depends on the difference). */
#include "common/props.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"

/* The logical line being assembled from one or more natural lines. */
struct props_line {
    char *buf;
    size_t len;
    size_t cap;
};

static void props_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void props_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Java's whitespace for this format; '\r' and '\n' are line terminators. */
static bool props_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\f';
}

/* Appends @n bytes, keeping room for a terminating NUL. -E2BIG past the entry cap. */
static int props_line_append(struct props_line *l, const char *s, size_t n)
{
    if (n > PROPS_MAX_ENTRY - l->len)
        return -E2BIG;
    if (l->len + n + 1 > l->cap) {
        size_t ncap = l->cap ? l->cap : 256;
        while (ncap < l->len + n + 1)
            ncap *= 2;
        if (ncap > (size_t)PROPS_MAX_ENTRY + 1)
            ncap = (size_t)PROPS_MAX_ENTRY + 1;
        char *nb = realloc(l->buf, ncap);
        if (!nb)
            return -ENOMEM;
        l->buf = nb;
        l->cap = ncap;
    }
    if (n)
        memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

static int props_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads exactly four hex digits (Java rejects fewer). */
static bool props_hex4(const char *s, size_t avail, uint32_t *ret)
{
    if (avail < 4)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = props_hexval(s[i]);
        if (h < 0)
            return false;
        v = (v << 4) | (uint32_t)h;
    }
    *ret = v;
    return true;
}

static size_t props_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escapes of s[0..n) in place and NUL-terminates at or before s[n].
 * In place works because no escape decodes to more bytes than it occupies
 * (\uXXXX is 6 bytes -> at most 3; a surrogate pair is 12 -> 4). On error returns
 * -EINVAL and sets *ret_reason. */
static int props_unescape(char *s, size_t n, const char **ret_reason)
{
    size_t i = 0, o = 0;
    while (i < n) {
        char c = s[i++];
        if (c != '\\') {
            s[o++] = c;
            continue;
        }
        if (i == n)
            break; /* a dangling backslash at end of input; Java drops it too */
        c = s[i++];
        switch (c) {
        case 't':
            s[o++] = '\t';
            break;
        case 'n':
            s[o++] = '\n';
            break;
        case 'r':
            s[o++] = '\r';
            break;
        case 'f':
            s[o++] = '\f';
            break;
        case 'u': {
            uint32_t cp;
            if (!props_hex4(s + i, n - i, &cp)) {
                *ret_reason = "invalid \\u escape (expected four hex digits)";
                return -EINVAL;
            }
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (n - i >= 6 && s[i] == '\\' && s[i + 1] == 'u' &&
                    props_hex4(s + i + 2, n - i - 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    *ret_reason = "invalid \\u escape (unpaired surrogate)";
                    return -EINVAL;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                *ret_reason = "invalid \\u escape (unpaired surrogate)";
                return -EINVAL;
            } else if (cp == 0) {
                /* The callback gets C strings; a NUL would silently cut the value. */
                *ret_reason = "invalid \\u escape (\\u0000 is not allowed)";
                return -EINVAL;
            }
            o += props_utf8_encode(cp, s + o);
            break;
        }
        default:
            s[o++] = c;
            break;
        }
    }
    s[o] = '\0';
    return 0;
}

/* Splits one logical line into key and value, decodes both and hands them on.
 * Returns 0, a syntax error (-EINVAL, with *ret_wrote_err set) or the callback's
 * nonzero return (err untouched: the callback owns that message). */
static int props_emit(struct props_line *l, int line, props_entry_fn fn, void *userdata, char *err,
                      size_t errlen, bool *ret_wrote_err)
{
    char *buf = l->buf;
    size_t len = l->len;
    size_t kend = len, vstart = len;
    bool escaped = false, has_sep = false;

    for (size_t k = 0; k < len; k++) {
        char c = buf[k];
        if (escaped) {
            escaped = false;
            continue;
        }
        if (c == '\\') {
            escaped = true;
        } else if (c == '=' || c == ':') {
            kend = k;
            vstart = k + 1;
            has_sep = true;
            break;
        } else if (props_is_ws(c)) {
            kend = k;
            vstart = k + 1;
            break;
        }
    }
    /* "key = value" and "key : value": whitespace, at most one separator, whitespace. */
    while (vstart < len) {
        char c = buf[vstart];
        if (props_is_ws(c)) {
            vstart++;
        } else if (!has_sep && (c == '=' || c == ':')) {
            has_sep = true;
            vstart++;
        } else {
            break;
        }
    }

    /* The value first: the key's terminating NUL may land on the separator. */
    const char *reason = NULL;
    if (props_unescape(buf + vstart, len - vstart, &reason) < 0 ||
        props_unescape(buf, kend, &reason) < 0) {
        props_seterr(err, errlen, "line %d: %s", line, reason);
        *ret_wrote_err = true;
        return -EINVAL;
    }
    return fn(userdata, buf, buf + vstart, line);
}

static int props_parse_impl(const char *text, size_t len, props_entry_fn fn, void *userdata,
                            char *err, size_t errlen, bool *ret_wrote_err)
{
    struct props_line l = {0};
    size_t pos = 0;
    int lineno = 0, entry_line = 0;
    bool cont = false;
    int r = 0;

    *ret_wrote_err = false;
    while (pos < len) {
        size_t s = pos, e = pos;
        while (e < len && text[e] != '\n' && text[e] != '\r' && text[e] != '\0')
            e++;
        lineno++;
        if (e < len && text[e] == '\0') {
            props_seterr(err, errlen, "line %d: NUL byte", lineno);
            *ret_wrote_err = true;
            r = -EINVAL;
            goto out;
        }
        pos = e;
        if (pos < len)
            pos += (text[pos] == '\r' && pos + 1 < len && text[pos + 1] == '\n') ? 2 : 1;

        while (s < e && props_is_ws(text[s]))
            s++;
        if (!cont) {
            /* Comments are only recognised at the start of a logical line:
             * a continuation line that starts with '#' is data. */
            if (s == e || text[s] == '#' || text[s] == '!')
                continue;
            entry_line = lineno;
        }

        size_t nbs = 0;
        while (nbs < e - s && text[e - 1 - nbs] == '\\')
            nbs++;
        cont = (nbs % 2) == 1;
        r = props_line_append(&l, text + s, e - s - (cont ? 1 : 0));
        if (r == -E2BIG) {
            props_seterr(err, errlen, "line %d: entry too long (limit %u bytes)", entry_line,
                         PROPS_MAX_ENTRY);
            *ret_wrote_err = true;
            r = -EINVAL;
        } else if (r < 0) {
            props_seterr(err, errlen, "line %d: out of memory", entry_line);
            *ret_wrote_err = true;
        }
        if (r < 0)
            goto out;
        if (cont && pos < len)
            continue;

        /* A logical line made only of continuations ("\" alone) holds nothing. */
        cont = false;
        if (l.len > 0) {
            r = props_emit(&l, entry_line, fn, userdata, err, errlen, ret_wrote_err);
            if (r != 0)
                goto out;
        }
        l.len = 0;
    }
out:
    free(l.buf);
    return r;
}

int props_parse(const char *text, size_t len, props_entry_fn fn, void *userdata, char *err,
                size_t errlen)
{
    assert(fn);
    assert(text || len == 0);
    bool wrote_err;
    return props_parse_impl(text, len, fn, userdata, err, errlen, &wrote_err);
}

int props_parse_file(const char *path, props_entry_fn fn, void *userdata, char *err, size_t errlen)
{
    assert(path && fn);
    uint8_t *data = NULL;
    size_t len = 0;
    int r = fsutil_read_file(path, PROPS_MAX_FILE, &data, &len);
    if (r == -EFBIG) {
        props_seterr(err, errlen, "%s: file too large (limit %u bytes)", path, PROPS_MAX_FILE);
        return r;
    }
    if (r < 0) {
        props_seterr(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }

    char msg[256] = "";
    bool wrote_err = false;
    r = props_parse_impl((const char *)data, len, fn, userdata, msg, sizeof(msg), &wrote_err);
    if (r != 0 && wrote_err)
        props_seterr(err, errlen, "%s: %s", path, msg);
    free(data);
    return r;
}
