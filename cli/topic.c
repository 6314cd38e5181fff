/* topic: `weir topic create|list|describe|alter|delete`, after kafka-topics.sh
 * with rpk's positional names. Create, alter and delete go through librdkafka's
 * admin API; list and describe read Metadata v9 with the generated codec, since
 * librdkafka hides leader epochs and offline replicas. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/raw.h"

static const char topic_usage[] =
    "Usage: weir topic VERB [TOPIC...] [FLAGS]\n"
    "\n"
    "  create TOPIC...   -p/--partitions N, -r/--replication-factor N (default: the\n"
    "                    cluster's), -c/--config key=value (repeatable), --if-not-exists\n"
    "  list (ls)         -i/--internal to include internal topics\n"
    "  describe (info) [TOPIC...]  per partition: leader, leader epoch, replicas, ISR and\n"
    "                    offline replicas, plus the non-default configs;\n"
    "                    --under-replicated-partitions, --unavailable-partitions\n"
    "  alter TOPIC       --partitions N grows the topic (keyed ordering changes)\n"
    "  delete TOPIC...   --if-exists\n"
    "\n"
    "Examples:\n"
    "  weir topic create orders -p 6 -r 3 -c cleanup.policy=compact\n"
    "  weir topic describe orders\n"
    "  weir topic describe --under-replicated-partitions\n"
    "  weir topic alter orders --partitions 12\n"
    "  weir topic delete orders --if-exists\n";

enum {
    OPT_IF_NOT_EXISTS = 1000,
    OPT_IF_EXISTS,
    OPT_URP,
    OPT_UNAVAIL,
};

static const struct option topic_opts[] = {
    {"partitions", required_argument, NULL, 'p'},
    {"replication-factor", required_argument, NULL, 'r'},
    {"replicas", required_argument, NULL, 'r'},
    {"config", required_argument, NULL, 'c'},
    {"topic-config", required_argument, NULL, 'c'},
    {"if-not-exists", no_argument, NULL, OPT_IF_NOT_EXISTS},
    {"if-exists", no_argument, NULL, OPT_IF_EXISTS},
    {"under-replicated-partitions", no_argument, NULL, OPT_URP},
    {"unavailable-partitions", no_argument, NULL, OPT_UNAVAIL},
    {"internal", no_argument, NULL, 'i'},
    {"help", no_argument, NULL, 'h'},
    {0},
};

struct topic_args {
    int64_t partitions, rf;
    const char *configs[256];
    int n_configs;
    bool if_not_exists, if_exists, urp, unavail, internal;
    char **names;
    int n_names;
};


/* Parse the verb's flags; returns -1 to go on, else an exit status. */
static int parse(int argc, char **argv, struct topic_args *a)
{
    a->partitions = -1;
    a->rf = -1;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":p:r:c:ih", topic_opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            if (cli_parse_i64(optarg, &a->partitions) || a->partitions < 1 ||
                a->partitions > INT32_MAX)
                return cli_usage_err("--partitions must be a positive number, not '%s'", optarg);
            break;
        case 'r':
            if (cli_parse_i64(optarg, &a->rf) || a->rf < 1 || a->rf > INT16_MAX)
                return cli_usage_err("--replication-factor must be a positive number, not '%s'",
                                     optarg);
            break;
        case 'c':
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return cli_usage_err("--config %s: expected key=value", optarg);
            if (a->n_configs == 256)
                return cli_usage_err("too many --config");
            a->configs[a->n_configs++] = optarg;
            break;
        case 'i': a->internal = true; break;
        case OPT_IF_NOT_EXISTS: a->if_not_exists = true; break;
        case OPT_IF_EXISTS: a->if_exists = true; break;
        case OPT_URP: a->urp = true; break;
        case OPT_UNAVAIL: a->unavail = true; break;
        case 'h': fputs(topic_usage, stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_err("%s needs a value", argv[optind - 1]);
        default: return cli_usage_err("unknown flag '%s'", argv[optind - 1]);
        }
    }
    a->names = argv + optind;
    a->n_names = argc - optind;
    return -1;
}

/* Print one result line per topic; returns the exit status. */
static int report(const struct cli *c, const rd_kafka_topic_result_t **res, size_t n,
                  const char *done, rd_kafka_resp_err_t ok_err)
{
    int rc = CLI_EXIT_OK;
    struct out *o = out_new(c, 0);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
        const char *name = rd_kafka_topic_result_name(res[i]);
        bool failed = err && err != ok_err;
        char b[512];
        if (failed) {
            cli_kerr(err, rd_kafka_topic_result_error_string(res[i]), b, sizeof(b));
            cli_err("%s: %s", name, b);
            rc = CLI_EXIT_FAIL;
        } else if (!c->json && !err) {
            printf("%s topic %s.\n", done, name);
        }
        out_row(o);
        out_str(o, "topic", name);
        out_str(o, "error", failed ? rd_kafka_err2name(err) : NULL);
        out_str(o, "message", failed ? rd_kafka_topic_result_error_string(res[i]) : NULL);
    }
    out_end(o, "\n");
    return rc;
}

static int topic_create(struct cli *c, struct topic_args *a)
{
    if (a->n_names == 0)
        return cli_usage_err("name at least one topic");
    rd_kafka_t *rk = cli_admin_new(c);
    if (!rk)
        return CLI_EXIT_FAIL;
    rd_kafka_NewTopic_t **nt = calloc((size_t)a->n_names, sizeof(*nt));
    char errstr[512];
    int rc = CLI_EXIT_FAIL;
    for (int i = 0; i < a->n_names; i++) {
        nt[i] = rd_kafka_NewTopic_new(a->names[i], (int)a->partitions, (int)a->rf, errstr,
                                      sizeof(errstr));
        if (!nt[i]) {
            cli_err("%s: %s", a->names[i], errstr);
            goto out;
        }
        for (int k = 0; k < a->n_configs; k++) {
            char *key;
            const char *val;
            if (cli_split_kv(a->configs[k], &key, &val))
                goto out;
            rd_kafka_NewTopic_set_config(nt[i], key, val);
            free(key);
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, c);
    rd_kafka_CreateTopics(rk, nt, (size_t)a->n_names, o, q);
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, c->timeout_ms);
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rc = report(c, res, n, "Created",
                    a->if_not_exists ? RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS
                                     : RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
out:
    for (int i = 0; i < a->n_names; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    rd_kafka_destroy(rk);
    return rc;
}

static int topic_delete(struct cli *c, struct topic_args *a)
{
    if (a->n_names == 0)
        return cli_usage_err("name at least one topic");
    rd_kafka_t *rk = cli_admin_new(c);
    if (!rk)
        return CLI_EXIT_FAIL;
    rd_kafka_DeleteTopic_t **dt = calloc((size_t)a->n_names, sizeof(*dt));
    for (int i = 0; i < a->n_names; i++)
        dt[i] = rd_kafka_DeleteTopic_new(a->names[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, c);
    rd_kafka_DeleteTopics(rk, dt, (size_t)a->n_names, o, q);
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT, c->timeout_ms);
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        rc = report(c, res, n, "Deleted",
                    a->if_exists ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                                 : RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < a->n_names; i++)
        rd_kafka_DeleteTopic_destroy(dt[i]);
    free(dt);
    rd_kafka_destroy(rk);
    return rc;
}

static int topic_alter(struct cli *c, struct topic_args *a)
{
    if (a->n_names == 0)
        return cli_usage_err("name at least one topic");
    if (a->partitions < 0)
        return cli_usage_err("alter needs --partitions N (topic configs: 'weir config set')");
    if (a->rf >= 0 || a->n_configs)
        return cli_usage_err("alter changes the partition count only; configs are changed "
                             "with 'weir config set --topic T key=value'");
    rd_kafka_t *rk = cli_admin_new(c);
    if (!rk)
        return CLI_EXIT_FAIL;
    char errstr[512];
    rd_kafka_NewPartitions_t **np = calloc((size_t)a->n_names, sizeof(*np));
    for (int i = 0; i < a->n_names; i++)
        np[i] = rd_kafka_NewPartitions_new(a->names[i], (size_t)a->partitions, errstr,
                                           sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, c);
    rd_kafka_CreatePartitions(rk, np, (size_t)a->n_names, o, q);
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev =
        cli_admin_wait(q, RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT, c->timeout_ms);
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res = rd_kafka_CreatePartitions_result_topics(
            rd_kafka_event_CreatePartitions_result(ev), &n);
        rc = report(c, res, n, "Altered", RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < a->n_names; i++)
        rd_kafka_NewPartitions_destroy(np[i]);
    free(np);
    rd_kafka_destroy(rk);
    return rc;
}

static int topic_list(struct cli *c, struct topic_args *a)
{
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return CLI_EXIT_FAIL;
    struct kafka_metadata_response md;
    if (raw_metadata(rc, NULL, 0, &md)) {
        raw_close(rc);
        return CLI_EXIT_FAIL;
    }
    struct out *o = out_new(c, 3, "NAME", "PARTITIONS", "REPLICAS");
    for (int32_t i = 0; i < md.n_topics; i++) {
        const struct kafka_metadata_response_topic *tp = &md.topics[i];
        if (tp->is_internal && !a->internal)
            continue;
        int rf = tp->n_partitions > 0 ? tp->partitions[0].n_replica_nodes : 0;
        char np[16], nr[16];
        snprintf(np, sizeof(np), "%d", tp->n_partitions);
        snprintf(nr, sizeof(nr), "%d", rf);
        out_row(o);
        out_strn(o, "name", (const char *)tp->name.ptr, tp->name.len);
        out_int(o, "partitions", tp->n_partitions);
        out_int(o, "replication_factor", rf);
        out_bool(o, "internal", tp->is_internal);
        out_cells(o, raw_str(tp->name), np, nr);
    }
    out_end(o, "\n");
    raw_close(rc);
    return CLI_EXIT_OK;
}

/* The non-default (dynamic topic) configs of @name as "k=v,k=v" into @out, or
 * JSON object members when @json. Returns 0, or -1 after printing an error. */
static int topic_configs(const struct cli *c, rd_kafka_t *rk, const char *name, char *out,
                         size_t len)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, c);
    rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, c->timeout_ms);
    int r = -1;
    out[0] = 0;
    if (ev) {
        size_t n, ne;
        const rd_kafka_ConfigResource_t **rs =
            rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
        if (n == 1 && rd_kafka_ConfigResource_error(rs[0])) {
            char b[512];
            cli_err("%s: configs: %s", name,
                    cli_kerr(rd_kafka_ConfigResource_error(rs[0]),
                             rd_kafka_ConfigResource_error_string(rs[0]), b, sizeof(b)));
        } else if (n == 1) {
            const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rs[0], &ne);
            size_t off = 0;
            for (size_t i = 0; i < ne; i++) {
                if (rd_kafka_ConfigEntry_source(es[i]) != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG)
                    continue;
                const char *v = rd_kafka_ConfigEntry_value(es[i]);
                off += (size_t)snprintf(out + off, off < len ? len - off : 0, "%s%s=%s",
                                        off ? "," : "", rd_kafka_ConfigEntry_name(es[i]),
                                        v ? v : "null");
            }
            r = 0;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    return r;
}

static void ids(char *buf, size_t len, const int32_t *v, int32_t n, bool json)
{
    size_t off = 0;
    buf[0] = 0;
    if (json)
        off += (size_t)snprintf(buf, len, "[");
    for (int32_t i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? "," : "", v[i]);
    if (json && off < len)
        snprintf(buf + off, len - off, "]");
}

static bool in_set(int32_t id, const int32_t *v, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static int topic_describe(struct cli *c, struct topic_args *a)
{
    bool filter = a->urp || a->unavail;
    if (a->n_names == 0 && !filter)
        return cli_usage_err("name at least one topic (or filter with "
                             "--under-replicated-partitions / --unavailable-partitions)");
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return CLI_EXIT_FAIL;
    struct kafka_metadata_response md;
    if (raw_metadata(rc, a->n_names ? (const char *const *)a->names : NULL, a->n_names, &md)) {
        raw_close(rc);
        return CLI_EXIT_FAIL;
    }
    rd_kafka_t *rk = NULL;
    if (!filter && !(rk = cli_admin_new(c))) {
        raw_close(rc);
        return CLI_EXIT_FAIL;
    }
    int ret = CLI_EXIT_OK;
    struct out *o = out_new(c, 0);
    for (int32_t i = 0; i < md.n_topics; i++) {
        const struct kafka_metadata_response_topic *tp = &md.topics[i];
        char name[256];
        snprintf(name, sizeof(name), "%s", raw_str(tp->name));
        if (tp->error_code) {
            cli_err("%s: %s: %s", name, cli_kerr_name(tp->error_code),
                    tp->error_code == 3 ? "the topic does not exist" : "metadata error");
            ret = CLI_EXIT_FAIL;
            continue;
        }
        if (tp->is_internal && a->n_names == 0)
            continue;
        char cfg[8192] = "";
        if (rk && topic_configs(c, rk, name, cfg, sizeof(cfg)))
            ret = CLI_EXIT_FAIL;
        int rf = tp->n_partitions > 0 ? tp->partitions[0].n_replica_nodes : 0;
        out_row(o);
        out_str(o, "topic", name);
        out_int(o, "partition_count", tp->n_partitions);
        out_int(o, "replication_factor", rf);
        out_bool(o, "internal", tp->is_internal);
        out_raw(o, "configs", NULL);
        if (c->json) {
            putchar('{');
            char *save = NULL;
            int m = 0;
            for (char *kv = strtok_r(cfg, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(kv, '=');
                *eq = 0;
                printf("%s", m++ ? "," : "");
                json_str(stdout, kv, -1);
                putchar(':');
                json_str(stdout, eq + 1, -1);
            }
            putchar('}');
        } else if (!filter) {
            printf("Topic: %s\tPartitionCount: %d\tReplicationFactor: %d\tConfigs: %s\n", name,
                   tp->n_partitions, rf, cfg);
        }
        out_raw(o, "partitions", NULL);
        struct out *po = out_new(c, 0);
        for (int32_t p = 0; p < tp->n_partitions; p++) {
            const struct kafka_metadata_response_partition *pp = &tp->partitions[p];
            bool urp = pp->n_isr_nodes < pp->n_replica_nodes;
            bool unavail = pp->leader_id < 0 ||
                           in_set(pp->leader_id, pp->offline_replicas, pp->n_offline_replicas);
            if (filter && !((a->urp && urp) || (a->unavail && unavail)))
                continue;
            char reps[512], isr[512], off[512], leader[16];
            ids(reps, sizeof(reps), pp->replica_nodes, pp->n_replica_nodes, c->json);
            ids(isr, sizeof(isr), pp->isr_nodes, pp->n_isr_nodes, c->json);
            ids(off, sizeof(off), pp->offline_replicas, pp->n_offline_replicas, c->json);
            out_row(po);
            out_int(po, "partition", pp->partition_index);
            out_int(po, "leader", pp->leader_id);
            out_int(po, "leader_epoch", pp->leader_epoch);
            out_raw(po, "replicas", reps);
            out_raw(po, "isr", isr);
            out_raw(po, "offline_replicas", off);
            out_str(po, "error", pp->error_code ? cli_kerr_name(pp->error_code) : NULL);
            if (!c->json) {
                if (pp->leader_id >= 0)
                    snprintf(leader, sizeof(leader), "%d", pp->leader_id);
                else
                    snprintf(leader, sizeof(leader), "none");
                printf("\tTopic: %s\tPartition: %d\tLeader: %s\tLeaderEpoch: %d\tReplicas: %s\t"
                       "Isr: %s\tOffline: %s\n",
                       name, pp->partition_index, leader, pp->leader_epoch, reps, isr, off);
            }
        }
        out_end(po, "");
    }
    out_end(o, "\n");
    if (rk)
        rd_kafka_destroy(rk);
    raw_close(rc);
    return ret;
}

int cli_topic_main(struct cli *c, int argc, char **argv)
{
    int help = cli_noun_help(argc, argv, topic_usage);
    if (help >= 0)
        return help;
    const char *verb = argv[1];
    static const struct {
        const char *verb, *alias;
        int (*fn)(struct cli *, struct topic_args *);
    } verbs[] = {
        {"create", NULL, topic_create},   {"list", "ls", topic_list},
        {"describe", "info", topic_describe}, {"alter", NULL, topic_alter},
        {"delete", NULL, topic_delete},
    };
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verb, verbs[i].verb) && !(verbs[i].alias && !strcmp(verb, verbs[i].alias)))
            continue;
        cli_set_cmd("topic", verbs[i].verb);
        struct topic_args a = {0};
        int r = parse(argc - 1, argv + 1, &a);
        if (r >= 0)
            return r;
        /* Fail fast, with one line, when no bootstrap server answers (the
         * admin calls would wait for their timeout). */
        struct raw_conn *probe;
        if (raw_open(c, &probe))
            return CLI_EXIT_FAIL;
        raw_close(probe);
        return verbs[i].fn(c, &a);
    }
    return cli_usage_err("unknown verb '%s'; verbs: create, list, describe, alter, delete", verb);
}
