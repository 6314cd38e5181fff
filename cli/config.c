/* config: `weir config describe|set|delete`, after kafka-configs.sh.
 * describe uses librdkafka's DescribeConfigs; set and delete are
 * IncrementalAlterConfigs, which librdkafka 2.0.2 lacks, sent with the
 * generated codec (raw.c). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/raw.h"

static const char config_usage[] =
    "Usage: weir config VERB (--topic T | --broker N | --broker-default) [ARGS]\n"
    "\n"
    "  describe             the configs set on the resource (--all: every config with\n"
    "                       its source)\n"
    "  set KEY=VALUE...     set configs (IncrementalAlterConfigs SET)\n"
    "  delete KEY...        remove overrides; the default applies again\n"
    "\n"
    "Examples:\n"
    "  weir config describe --topic orders\n"
    "  weir config set --topic orders retention.ms=86400000 cleanup.policy=compact\n"
    "  weir config delete --topic orders retention.ms\n"
    "  weir config set --broker-default log.retention.ms=604800000\n"
    "  weir config describe --broker 1 --all\n";

enum { OPT_BROKER_DEFAULT = 1000, OPT_ALL };

static const struct option config_opts[] = {
    {"topic", required_argument, NULL, 't'},
    {"broker", required_argument, NULL, 'B'},
    {"broker-default", no_argument, NULL, OPT_BROKER_DEFAULT},
    {"broker-defaults", no_argument, NULL, OPT_BROKER_DEFAULT},
    {"all", no_argument, NULL, OPT_ALL},
    {"help", no_argument, NULL, 'h'},
    {0},
};


static const char *source_name(rd_kafka_ConfigSource_t s)
{
    switch (s) {
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG: return "DYNAMIC_TOPIC_CONFIG";
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG: return "DYNAMIC_BROKER_CONFIG";
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: return "DYNAMIC_DEFAULT_BROKER_CONFIG";
    case RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG: return "STATIC_BROKER_CONFIG";
    case RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG: return "DEFAULT_CONFIG";
    default: return "UNKNOWN";
    }
}

static int config_describe(struct cli *c, int type, const char *name, const char *label,
                           bool all)
{
    rd_kafka_t *rk = cli_admin_new(c);
    if (!rk)
        return CLI_EXIT_FAIL;
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(type, name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, c);
    if (type == RD_KAFKA_RESOURCE_BROKER && *name) {
        char errstr[256];
        rd_kafka_AdminOptions_set_broker(o, atoi(name), errstr, sizeof(errstr));
    }
    rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, c->timeout_ms);
    if (ev) {
        size_t n, ne;
        const rd_kafka_ConfigResource_t **rs =
            rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
        if (n == 1 && rd_kafka_ConfigResource_error(rs[0])) {
            char b[512];
            cli_err("%s: %s", label,
                    cli_kerr(rd_kafka_ConfigResource_error(rs[0]),
                             rd_kafka_ConfigResource_error_string(rs[0]), b, sizeof(b)));
        } else if (n == 1) {
            const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rs[0], &ne);
            if (c->json) {
                printf("{\"resource\":\"%s\",\"name\":",
                       type == RD_KAFKA_RESOURCE_TOPIC ? "topic" : "broker");
                json_str(stdout, name, -1);
                printf(",\"configs\":");
            }
            struct out *out = out_new(c, 3, "NAME", "VALUE", "SOURCE");
            for (size_t i = 0; i < ne; i++) {
                rd_kafka_ConfigSource_t src = rd_kafka_ConfigEntry_source(es[i]);
                if (!all && (src == RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG ||
                             rd_kafka_ConfigEntry_is_default(es[i]) ||
                             (type == RD_KAFKA_RESOURCE_TOPIC &&
                              src != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG)))
                    continue;
                const char *v = rd_kafka_ConfigEntry_value(es[i]);
                bool sens = rd_kafka_ConfigEntry_is_sensitive(es[i]);
                out_row(out);
                out_str(out, "name", rd_kafka_ConfigEntry_name(es[i]));
                out_str(out, "value", sens ? NULL : v);
                out_str(out, "source", source_name(src));
                out_bool(out, "read_only", rd_kafka_ConfigEntry_is_read_only(es[i]));
                out_bool(out, "sensitive", sens);
                out_cells(out, rd_kafka_ConfigEntry_name(es[i]),
                          sens ? "(sensitive)" : v ? v : "null", source_name(src));
            }
            out_end(out, "}\n");
            rc = CLI_EXIT_OK;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_destroy(rk);
    return rc;
}

/* IncrementalAlterConfigs with @op (0 SET, 1 DELETE) for every argument. */
static int config_alter(struct cli *c, int type, const char *name, const char *label, int8_t op,
                        char **args, int nargs)
{
    if (nargs == 0)
        return cli_usage_err(op == 0 ? "name at least one key=value" : "name at least one key");
    struct kafka_incremental_alter_configs_request_config *cfg = calloc((size_t)nargs,
                                                                        sizeof(*cfg));
    char **keys = calloc((size_t)nargs, sizeof(*keys));
    int rc = CLI_EXIT_FAIL;
    for (int i = 0; i < nargs; i++) {
        const char *v = NULL;
        if (op == 0) {
            if (cli_split_kv(args[i], &keys[i], &v)) {
                rc = cli_usage_err("'%s': expected key=value", args[i]);
                goto out;
            }
        } else {
            if (strchr(args[i], '=')) {
                rc = cli_usage_err("'%s': delete takes key names only", args[i]);
                goto out;
            }
            keys[i] = strdup(args[i]);
        }
        cfg[i].name = (buf_slice){(const uint8_t *)keys[i], (int32_t)strlen(keys[i])};
        cfg[i].config_operation = op;
        cfg[i].value = v ? (buf_slice){(const uint8_t *)v, (int32_t)strlen(v)}
                         : (buf_slice){NULL, -1};
    }
    struct kafka_incremental_alter_configs_request_resource res = {
        .resource_type = (int8_t)type,
        .resource_name = {(const uint8_t *)name, (int32_t)strlen(name)},
        .n_configs = nargs,
        .configs = cfg,
    };
    struct kafka_incremental_alter_configs_request req;
    kafka_incremental_alter_configs_request_init(&req);
    req.n_resources = 1;
    req.resources = &res;
    struct raw_conn *raw;
    if (raw_open(c, &raw))
        goto out;
    struct kafka_incremental_alter_configs_response resp;
    if (raw_call(raw, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 1, &req, &resp) == 0) {
        rc = CLI_EXIT_OK;
        for (int32_t i = 0; i < resp.n_responses; i++) {
            const struct kafka_incremental_alter_configs_response_response *r = &resp.responses[i];
            if (r->error_code) {
                cli_err("%s: %s: %s", label, cli_kerr_name(r->error_code),
                        r->error_message.len > 0 ? raw_str(r->error_message)
                                                 : "the broker refused the change");
                rc = CLI_EXIT_FAIL;
            }
        }
        if (resp.n_responses != 1 && rc == CLI_EXIT_OK) {
            cli_err("%s: the broker answered %d resources for 1", label, resp.n_responses);
            rc = CLI_EXIT_FAIL;
        }
        if (c->json) {
            printf("{\"resource\":\"%s\",\"name\":", type == 2 ? "topic" : "broker");
            json_str(stdout, name, -1);
            printf(",\"ok\":%s}\n", rc == CLI_EXIT_OK ? "true" : "false");
        } else if (rc == CLI_EXIT_OK) {
            printf("Completed updating config for %s.\n", label);
        }
    }
    raw_close(raw);
out:
    for (int i = 0; i < nargs; i++)
        free(keys[i]);
    free(keys);
    free(cfg);
    return rc;
}

int cli_config_main(struct cli *c, int argc, char **argv)
{
    int help = cli_noun_help(argc, argv, config_usage);
    if (help >= 0)
        return help;
    const char *verb = argv[1];
    if (strcmp(verb, "describe") && strcmp(verb, "set") && strcmp(verb, "delete"))
        return cli_usage_err("unknown verb '%s'; verbs: describe, set, delete", verb);
    cli_set_cmd("config", verb);
    const char *topic = NULL, *broker = NULL;
    bool all = false;
    int nent = 0;
    optind = 1;
    opterr = 0;
    int ch;
    argc--;
    argv++;
    while ((ch = getopt_long(argc, argv, ":t:B:h", config_opts, NULL)) != -1) {
        switch (ch) {
        case 't': topic = optarg; nent++; break;
        case 'B': {
            int64_t id;
            if (cli_parse_i64(optarg, &id) || id < 0 || id > INT32_MAX)
                return cli_usage_err("--broker must be a broker id, not '%s'", optarg);
            broker = optarg;
            nent++;
            break;
        }
        case OPT_BROKER_DEFAULT: nent++; break;
        case OPT_ALL: all = true; break;
        case 'h': fputs(config_usage, stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_err("%s needs a value", argv[optind - 1]);
        default: return cli_usage_err("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (nent != 1)
        return cli_usage_err("give exactly one of --topic T, --broker N, --broker-default");
    int type = topic ? RD_KAFKA_RESOURCE_TOPIC : RD_KAFKA_RESOURCE_BROKER;
    const char *name = topic ? topic : broker ? broker : "";
    char label[300];
    if (topic)
        snprintf(label, sizeof(label), "topic %s", topic);
    else if (broker)
        snprintf(label, sizeof(label), "broker %s", broker);
    else
        snprintf(label, sizeof(label), "the default broker config");
    struct raw_conn *probe;
    if (raw_open(c, &probe))
        return CLI_EXIT_FAIL;
    raw_close(probe);
    if (!strcmp(verb, "describe")) {
        if (optind < argc)
            return cli_usage_err("describe takes no arguments besides the resource");
        return config_describe(c, type, name, label, all);
    }
    return config_alter(c, type, name, label, strcmp(verb, "set") == 0 ? 0 : 1, argv + optind,
                        argc - optind);
}
