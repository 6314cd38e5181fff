/* config: the typed configuration registry. Owns parsing and validating values
 * against a program's static config_def table, where each value came from, and
 * the three ways values arrive (properties file, --override, code). The file
 * syntax itself is props.c's.
 *
 * Values are trimmed before parsing, as Kafka's ConfigDef does, so a stray
 * trailing space in server.properties is harmless. */
#include "common/config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "common/log.h"
#include "common/props.h"

struct config_value {
    char *raw; /* trimmed text as set; NULL = null */
    enum config_source src;
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            char **items; /* NULL-terminated; items point into the same block */
            size_t count;
        } list;
    } v;
};

struct config {
    const struct config_def *defs;
    size_t ndefs;
    struct config_value *vals;
    const struct config_def **by_name; /* sorted by name, for binary search */
};

/* A bounded message writer: appends, truncating silently at the buffer's end. */
struct config_msg {
    char *p;
    size_t cap;
    size_t len;
};

static void config_msg_add(struct config_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void config_msg_add(struct config_msg *m, const char *fmt, ...)
{
    if (!m->p || m->cap == 0 || m->len >= m->cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->p + m->len, m->cap - m->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    m->len += (size_t)n;
    if (m->len > m->cap - 1)
        m->len = m->cap - 1;
}

static void config_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void config_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Starts "invalid value 'v' for 'k': expected " and returns the writer so the
 * caller can say what was expected. */
static struct config_msg config_bad_value(const struct config_def *def, const char *value,
                                          char *err, size_t errlen)
{
    struct config_msg m = {.p = err, .cap = errlen, .len = 0};
    if (err && errlen)
        err[0] = '\0';
    config_msg_add(&m, "invalid value '%s' for '%s': expected ", value, def->name);
    return m;
}

static bool config_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A malloc'd copy of @s without leading and trailing whitespace. */
static char *config_trim_dup(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && config_is_space(*s)) {
        s++;
        n--;
    }
    while (n > 0 && config_is_space(s[n - 1]))
        n--;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* Strict decimal int64: optional sign, at least one digit, nothing after. */
static bool config_parse_int64(const char *s, int64_t *ret)
{
    bool neg = false;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (*s < '0' || *s > '9')
        return false;
    /* Accumulate as a negative number so INT64_MIN is representable. */
    int64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        int d = *s - '0';
        if (v < (INT64_MIN + d) / 10)
            return false;
        v = v * 10 - d;
    }
    if (*s != '\0')
        return false;
    if (!neg) {
        if (v == INT64_MIN)
            return false;
        v = -v;
    }
    *ret = v;
    return true;
}

static bool config_parse_finite_double(const char *s, double *ret)
{
    if (*s == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(d))
        return false;
    *ret = d;
    return true;
}

/* Splits the (already trimmed) @raw at commas into one block: the pointer array
 * followed by the item bytes. Items are trimmed; "" is the empty list; empty
 * items ("a,,b") are kept, as Kafka does, for validators to judge. */
static int config_split_list(const char *raw, char ***ret_items, size_t *ret_count)
{
    size_t count = 0;
    if (*raw) {
        count = 1;
        for (const char *p = raw; *p; p++)
            count += *p == ',';
    }
    size_t rawlen = strlen(raw);
    size_t ptrs = (count + 1) * sizeof(char *);
    char **items = malloc(ptrs + rawlen + 1);
    if (!items)
        return -ENOMEM;
    char *text = (char *)items + ptrs;
    memcpy(text, raw, rawlen + 1);

    size_t n = 0;
    char *p = text;
    while (n < count) {
        char *comma = strchr(p, ',');
        char *end = comma ? comma : p + strlen(p);
        while (p < end && config_is_space(*p))
            p++;
        char *q = end;
        while (q > p && config_is_space(q[-1]))
            q--;
        *q = '\0';
        items[n++] = p;
        p = end + 1;
    }
    items[count] = NULL;
    *ret_items = items;
    *ret_count = count;
    return 0;
}

static void config_value_clear(const struct config_def *def, struct config_value *v)
{
    free(v->raw);
    v->raw = NULL;
    if (def->type == CONFIG_LIST) {
        free(v->v.list.items);
        v->v.list.items = NULL;
        v->v.list.count = 0;
    }
}

/* Parses and validates @value for @def into @out (which owns its allocations on
 * success). -EINVAL with a message on a bad value. */
static int config_parse_value(const struct config_def *def, const char *value,
                              struct config_value *out, char *err, size_t errlen)
{
    struct config_value v = {0};
    v.raw = config_trim_dup(value);
    if (!v.raw) {
        config_seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const char *s = v.raw;
    struct config_msg m;
    int r = 0;

    switch (def->type) {
    case CONFIG_BOOL:
        if (strcasecmp(s, "true") == 0) {
            v.v.b = true;
        } else if (strcasecmp(s, "false") == 0) {
            v.v.b = false;
        } else {
            m = config_bad_value(def, s, err, errlen);
            config_msg_add(&m, "true or false");
            r = -EINVAL;
        }
        break;
    case CONFIG_INT: {
        bool bounded = def->min != 0 || def->max != 0;
        if (!config_parse_int64(s, &v.v.i) || (bounded && (v.v.i < def->min || v.v.i > def->max))) {
            m = config_bad_value(def, s, err, errlen);
            if (bounded)
                config_msg_add(&m, "an integer in [%" PRId64 ", %" PRId64 "]", def->min, def->max);
            else
                config_msg_add(&m, "an integer");
            r = -EINVAL;
        }
        break;
    }
    case CONFIG_DOUBLE: {
        bool bounded = def->dmin != 0 || def->dmax != 0;
        if (!config_parse_finite_double(s, &v.v.d) ||
            (bounded && (v.v.d < def->dmin || v.v.d > def->dmax))) {
            m = config_bad_value(def, s, err, errlen);
            if (bounded)
                config_msg_add(&m, "a number in [%g, %g]", def->dmin, def->dmax);
            else
                config_msg_add(&m, "a finite number");
            r = -EINVAL;
        }
        break;
    }
    case CONFIG_STRING:
        if (def->choices) {
            bool found = false;
            for (const char *const *ch = def->choices; *ch; ch++) {
                if (strcmp(*ch, s) == 0) {
                    found = true;
                    break;
                }
            }
            if (!found) {
                m = config_bad_value(def, s, err, errlen);
                config_msg_add(&m, "one of: ");
                for (const char *const *ch = def->choices; *ch; ch++)
                    config_msg_add(&m, "%s%s", ch == def->choices ? "" : ", ", *ch);
                r = -EINVAL;
            }
        }
        break;
    case CONFIG_LIST:
        r = config_split_list(s, &v.v.list.items, &v.v.list.count);
        if (r < 0)
            config_seterr(err, errlen, "out of memory");
        break;
    default:
        assert(!"unknown config type");
        r = -EINVAL;
        break;
    }

    if (r == 0 && def->validate) {
        char why[256] = "";
        r = def->validate(def, s, why, sizeof(why));
        if (r < 0) {
            m = config_bad_value(def, s, err, errlen);
            config_msg_add(&m, "%s", why[0] ? why : "a valid value");
        }
    }
    if (r < 0) {
        config_value_clear(def, &v);
        return r;
    }
    *out = v;
    return 0;
}

/* Index of @key in defs, or -1. */
static ssize_t config_lookup(const struct config *c, const char *key)
{
    size_t lo = 0, hi = c->ndefs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct config_def *d = c->by_name[mid];
        int cmp = strcmp(key, d->name);
        if (cmp == 0)
            return d - c->defs;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* The value of a declared key of type @type; anything else is a programmer error. */
static const struct config_value *config_expect(const struct config *c, const char *key,
                                                enum config_type type)
{
    assert(c && key);
    ssize_t idx = config_lookup(c, key);
    assert(idx >= 0 && "undeclared configuration key");
    assert(c->defs[idx].type == type && "configuration key read as the wrong type");
    if (idx < 0 || c->defs[idx].type != type)
        abort(); /* even with NDEBUG, never read the wrong union member */
    return &c->vals[idx];
}

static int config_cmp_def(const void *a, const void *b)
{
    const struct config_def *da = *(const struct config_def *const *)a;
    const struct config_def *db = *(const struct config_def *const *)b;
    return strcmp(da->name, db->name);
}

int config_new(const struct config_def *defs, size_t ndefs, struct config **ret)
{
    assert(ret);
    assert(defs || ndefs == 0);
    struct config *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->defs = defs;
    c->ndefs = ndefs;
    c->vals = calloc(ndefs ? ndefs : 1, sizeof(*c->vals));
    c->by_name = calloc(ndefs ? ndefs : 1, sizeof(*c->by_name));
    if (!c->vals || !c->by_name) {
        config_free(c);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ndefs; i++) {
        assert(defs[i].name && defs[i].name[0]);
        c->by_name[i] = &defs[i];
    }
    qsort(c->by_name, ndefs, sizeof(*c->by_name), config_cmp_def);
    for (size_t i = 1; i < ndefs; i++) {
        if (strcmp(c->by_name[i - 1]->name, c->by_name[i]->name) == 0) {
            assert(!"duplicate configuration key");
            config_free(c);
            return -EINVAL;
        }
    }

    for (size_t i = 0; i < ndefs; i++) {
        c->vals[i].src = CONFIG_SOURCE_DEFAULT;
        if (!defs[i].default_value)
            continue; /* null */
        char err[256];
        int r = config_parse_value(&defs[i], defs[i].default_value, &c->vals[i], err, sizeof(err));
        if (r < 0) {
            /* -EINVAL: the def table contradicts itself (err says how). */
            assert(r != -EINVAL && "configuration default fails its own validation");
            config_free(c);
            return r;
        }
        c->vals[i].src = CONFIG_SOURCE_DEFAULT;
    }
    *ret = c;
    return 0;
}

int config_clone(const struct config *c, struct config **ret)
{
    struct config *n;
    int r = config_new(c->defs, c->ndefs, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < c->ndefs; i++) {
        const struct config_value *v = &c->vals[i];
        if (v->src == CONFIG_SOURCE_DEFAULT)
            continue;
        config_value_clear(&c->defs[i], &n->vals[i]);
        n->vals[i].src = v->src;
        if (!v->raw)
            continue; /* set to null */
        char err[256];
        r = config_parse_value(&c->defs[i], v->raw, &n->vals[i], err, sizeof(err));
        if (r < 0) {
            config_free(n);
            return r;
        }
        n->vals[i].src = v->src;
    }
    *ret = n;
    return 0;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    if (c->vals) {
        for (size_t i = 0; i < c->ndefs; i++)
            config_value_clear(&c->defs[i], &c->vals[i]);
    }
    free(c->vals);
    free(c->by_name);
    free(c);
}

int config_check_value(const struct config_def *def, const char *value, char *err, size_t errlen)
{
    assert(def && value);
    struct config_value v;
    int r = config_parse_value(def, value, &v, err, errlen);
    if (r == 0)
        config_value_clear(def, &v);
    return r;
}

int config_set(struct config *c, const char *key, const char *value, enum config_source src,
               char *err, size_t errlen)
{
    assert(c && key && value);
    ssize_t idx = config_lookup(c, key);
    if (idx < 0) {
        config_seterr(err, errlen, "unknown configuration key '%s'", key);
        return -ENOENT;
    }
    struct config_value v;
    int r = config_parse_value(&c->defs[idx], value, &v, err, errlen);
    if (r < 0)
        return r;
    v.src = src;
    config_value_clear(&c->defs[idx], &c->vals[idx]);
    c->vals[idx] = v;
    return 0;
}

struct config_load_ctx {
    struct config *c;
    const char *path;
    char *err;
    size_t errlen;
};

static int config_load_entry(void *userdata, const char *key, const char *value, int line)
{
    struct config_load_ctx *ctx = userdata;
    if (config_lookup(ctx->c, key) < 0) {
        log_warn("config", "unknown configuration key '%s' in %s line %d (ignored)", key, ctx->path,
                 line);
        return 0;
    }
    char msg[1024] = "";
    int r = config_set(ctx->c, key, value, CONFIG_SOURCE_FILE, msg, sizeof(msg));
    if (r < 0)
        config_seterr(ctx->err, ctx->errlen, "%s:%d: %s", ctx->path, line, msg);
    return r;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    assert(c && path);
    struct config_load_ctx ctx = {.c = c, .path = path, .err = err, .errlen = errlen};
    return props_parse_file(path, config_load_entry, &ctx, err, errlen);
}

int config_apply_override(struct config *c, const char *assignment, char *err, size_t errlen)
{
    assert(c && assignment);
    const char *eq = strchr(assignment, '=');
    if (!eq) {
        config_seterr(err, errlen, "invalid override '%s': expected key=value", assignment);
        return -EINVAL;
    }
    size_t klen = (size_t)(eq - assignment);
    char *key = malloc(klen + 1);
    if (!key) {
        config_seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    int r = config_set(c, key, eq + 1, CONFIG_SOURCE_OVERRIDE, err, errlen);
    free(key);
    return r;
}

enum config_arg_kind {
    CONFIG_ARG_FILE,
    CONFIG_ARG_OVERRIDE,
};

/* Recognises the option at argv[*i], advancing *i past its value. */
static int config_next_arg(int argc, char **argv, int *i, enum config_arg_kind *ret_kind,
                           const char **ret_value, char *err, size_t errlen)
{
    const char *a = argv[*i];
    enum config_arg_kind kind;
    const char *value = NULL;

    if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
        kind = CONFIG_ARG_FILE;
    } else if (strcmp(a, "--override") == 0) {
        kind = CONFIG_ARG_OVERRIDE;
    } else if (strncmp(a, "--config=", 9) == 0) {
        kind = CONFIG_ARG_FILE;
        value = a + 9;
    } else if (strncmp(a, "--override=", 11) == 0) {
        kind = CONFIG_ARG_OVERRIDE;
        value = a + 11;
    } else {
        config_seterr(err, errlen, "unknown argument '%s'", a);
        return -EINVAL;
    }
    if (!value) {
        if (*i + 1 >= argc) {
            config_seterr(err, errlen, "option '%s' needs a value", a);
            return -EINVAL;
        }
        value = argv[++*i];
    }
    if (!*value) {
        config_seterr(err, errlen, "option '%s' needs a non-empty value", a);
        return -EINVAL;
    }
    *ret_kind = kind;
    *ret_value = value;
    return 0;
}

int config_parse_args(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
    assert(c && (argv || argc == 0));
    const char *file = NULL;
    enum config_arg_kind kind;
    const char *value;
    int r;

    /* Pass 1: check everything and find the file, so that a typo anywhere fails
     * before anything is applied and overrides win regardless of position. */
    for (int i = 1; i < argc; i++) {
        r = config_next_arg(argc, argv, &i, &kind, &value, err, errlen);
        if (r < 0)
            return r;
        if (kind == CONFIG_ARG_FILE) {
            if (file) {
                config_seterr(err, errlen, "--config given more than once");
                return -EINVAL;
            }
            file = value;
        }
    }
    if (file) {
        r = config_load_file(c, file, err, errlen);
        if (r < 0)
            return r;
    }
    for (int i = 1; i < argc; i++) {
        r = config_next_arg(argc, argv, &i, &kind, &value, err, errlen);
        assert(r == 0);
        if (kind != CONFIG_ARG_OVERRIDE)
            continue;
        r = config_apply_override(c, value, err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

bool config_get_bool(const struct config *c, const char *key)
{
    const struct config_value *v = config_expect(c, key, CONFIG_BOOL);
    return v->raw ? v->v.b : false;
}

int64_t config_get_int(const struct config *c, const char *key)
{
    const struct config_value *v = config_expect(c, key, CONFIG_INT);
    return v->raw ? v->v.i : 0;
}

double config_get_double(const struct config *c, const char *key)
{
    const struct config_value *v = config_expect(c, key, CONFIG_DOUBLE);
    return v->raw ? v->v.d : 0.0;
}

const char *config_get_string(const struct config *c, const char *key)
{
    return config_expect(c, key, CONFIG_STRING)->raw;
}

const char *const *config_get_list(const struct config *c, const char *key, size_t *ret_count)
{
    static const char *const empty[] = {NULL};
    const struct config_value *v = config_expect(c, key, CONFIG_LIST);
    assert(ret_count);
    if (!v->raw) {
        *ret_count = 0;
        return empty;
    }
    *ret_count = v->v.list.count;
    return (const char *const *)v->v.list.items;
}

const char *config_get_raw(const struct config *c, const char *key)
{
    assert(c && key);
    ssize_t idx = config_lookup(c, key);
    assert(idx >= 0 && "undeclared configuration key");
    if (idx < 0)
        abort();
    return c->vals[idx].raw;
}

enum config_source config_get_source(const struct config *c, const char *key)
{
    assert(c && key);
    ssize_t idx = config_lookup(c, key);
    assert(idx >= 0 && "undeclared configuration key");
    if (idx < 0)
        abort();
    return c->vals[idx].src;
}

bool config_is_set(const struct config *c, const char *key)
{
    return config_get_source(c, key) != CONFIG_SOURCE_DEFAULT;
}

const struct config_def *config_find_def(const struct config *c, const char *key)
{
    assert(c && key);
    ssize_t idx = config_lookup(c, key);
    return idx < 0 ? NULL : &c->defs[idx];
}

void config_foreach(const struct config *c, config_visit_fn fn, void *userdata)
{
    assert(c && fn);
    for (size_t i = 0; i < c->ndefs; i++)
        fn(userdata, &c->defs[i], c->vals[i].raw, c->vals[i].src);
}
