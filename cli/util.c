/* util: errors, librdkafka handles and argument parsing for every command (the
 * printing is in out.c). */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/kerr.h"

const char *cli_cmd_name = "";

void cli_set_cmd(const char *noun, const char *verb)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "%s %s", noun, verb);
    cli_cmd_name = buf;
}

int cli_noun_help(int argc, char **argv, const char *usage)
{
    if (argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))
        return -1;
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
}

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
