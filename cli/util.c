/* util: errors, librdkafka handles, JSON strings and tables for every command. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/kerr.h"

const char *cli_cmd_name = "";

__attribute__((format(printf, 1, 0))) static void verr(const char *fmt, va_list ap)
{
    fprintf(stderr, "weir: %s%s", cli_cmd_name, cli_cmd_name[0] ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(fmt, ap);
    va_end(ap);
}

int cli_usage_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "weir: %s%s", cli_cmd_name, cli_cmd_name[0] ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'weir %s --help')\n", cli_cmd_name);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

const char *cli_kerr(rd_kafka_resp_err_t err, const char *msg, char *buf, size_t len)
{
    /* Kafka's names and messages for broker errors (librdkafka abbreviates
     * some names and prefixes "Broker: "); librdkafka's local errors, whose
     * names start with '_', keep their own description. */
    const char *name = err > 0 ? kerr_name((int16_t)err) : rd_kafka_err2name(err);
    if (!msg || !*msg || strncmp(msg, "Broker: ", 8) == 0)
        msg = err > 0 ? kerr_message((int16_t)err) : rd_kafka_err2str(err);
    snprintf(buf, len, "%s: %s", name[0] == '_' ? name + 1 : name, msg);
    return buf;
}

const char *cli_kerr_name(int16_t code)
{
    return kerr_name(code);
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (getenv("WEIR_DEBUG"))
        fprintf(stderr, "librdkafka %d %s: %s\n", level, fac, buf);
}

rd_kafka_conf_t *cli_conf(const struct cli *c)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", c->brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "client.id", "weir", errstr, sizeof(errstr)))
        goto fail;
    for (int i = 0; i < c->n_xprops; i++) {
        char *k;
        const char *v;
        if (cli_split_kv(c->xprops[i], &k, &v)) {
            cli_err("-X %s: expected key=value", c->xprops[i]);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
        rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr));
        free(k);
        if (r != RD_KAFKA_CONF_OK)
            goto fail;
    }
    return conf;
fail:
    cli_err("invalid client setting: %s", errstr);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *cli_admin_new(const struct cli *c)
{
    char errstr[512];
    rd_kafka_conf_t *conf = cli_conf(c);
    if (!conf)
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        cli_err("cannot create the client: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

rd_kafka_AdminOptions_t *cli_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
                                           const struct cli *c)
{
    char errstr[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    rd_kafka_AdminOptions_set_request_timeout(o, c->timeout_ms, errstr, sizeof(errstr));
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
        op == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS)
        rd_kafka_AdminOptions_set_operation_timeout(o, c->timeout_ms, errstr, sizeof(errstr));
    return o;
}

rd_kafka_event_t *cli_admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type, int timeout_ms)
{
    for (;;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
        if (!ev) {
            cli_err("no answer from the cluster within %d ms", timeout_ms + 5000);
            return NULL;
        }
        if (rd_kafka_event_type(ev) == type) {
            if (rd_kafka_event_error(ev)) {
                char b[512];
                cli_err("%s", cli_kerr(rd_kafka_event_error(ev), rd_kafka_event_error_string(ev),
                                       b, sizeof(b)));
                rd_kafka_event_destroy(ev);
                return NULL;
            }
            return ev;
        }
        rd_kafka_event_destroy(ev);
    }
}

int cli_split_kv(const char *kv, char **ret_key, const char **ret_value)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return -EINVAL;
    char *k = strndup(kv, (size_t)(eq - kv));
    if (!k)
        return -ENOMEM;
    *ret_key = k;
    *ret_value = eq + 1;
    return 0;
}

int cli_parse_i64(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* "2026-01-01T00:00:00[.sss][Z|+hh:mm|-hh:mm]" to ms since the epoch. */
int cli_parse_datetime(const char *s, int64_t *ret)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -EINVAL;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -EINVAL;
        off = (hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    }
    if (*p)
        return -EINVAL;
    *ret = ((int64_t)timegm(&tm) - off) * 1000 + ms;
    return 0;
}

/* Length of the valid UTF-8 sequence at @p (at most @n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t need;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        need = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        need = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        need = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

void json_str(FILE *f, const char *s, ssize_t len)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    size_t n = len < 0 ? strlen(s) : (size_t)len;
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            putc('\\', f);
            putc(ch, f);
            i++;
        } else if (ch == '\n') {
            fputs("\\n", f);
            i++;
        } else if (ch == '\t') {
            fputs("\\t", f);
            i++;
        } else if (ch == '\r') {
            fputs("\\r", f);
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\u%04x", ch);
            i++;
        } else if (ch < 0x80) {
            putc(ch, f);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                fwrite(p + i, 1, l, f);
                i += l;
            } else {
                fprintf(f, "\\u%04x", ch);
                i++;
            }
        }
    }
    putc('"', f);
}

struct table {
    int ncols;
    size_t nrows, cap;
    char **cells; /* nrows * ncols */
};

static void table_add(struct table *t, va_list ap)
{
    if (t->nrows == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        char **cells = realloc(t->cells, nc * (size_t)t->ncols * sizeof(*cells));
        if (!cells)
            abort();
        t->cells = cells;
        t->cap = nc;
    }
    for (int i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(s ? s : "");
    }
    t->nrows++;
}

struct table *table_new(int ncols, ...)
{
    struct table *t = calloc(1, sizeof(*t));
    if (!t)
        abort();
    t->ncols = ncols;
    va_list ap;
    va_start(ap, ncols);
    table_add(t, ap);
    va_end(ap);
    return t;
}

void table_row(struct table *t, ...)
{
    va_list ap;
    va_start(ap, t);
    table_add(t, ap);
    va_end(ap);
}

void table_print(struct table *t, FILE *f)
{
    size_t w[32] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols && c < 32; c++) {
            size_t l = strlen(t->cells[r * (size_t)t->ncols + (size_t)c]);
            if (l > w[c])
                w[c] = l;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (c == t->ncols - 1)
                fprintf(f, "%s\n", s);
            else
                fprintf(f, "%-*s  ", (int)w[c], s);
        }
    }
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
