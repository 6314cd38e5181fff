/* group: `weir group list|describe|reset-offsets|delete`, after
 * kafka-consumer-groups.sh, over librdkafka's admin API (ListConsumerGroups,
 * DescribeConsumerGroups, ListConsumerGroupOffsets, AlterConsumerGroupOffsets,
 * DeleteGroups). Lag is the partition's high watermark minus the committed
 * offset. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/raw.h"

static const char group_usage[] =
    "Usage: weir group VERB [GROUP...] [FLAGS]\n"
    "\n"
    "  list                 groups and their state\n"
    "  describe GROUP...    the group's state, and per partition GROUP TOPIC PARTITION\n"
    "                       CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID\n"
    "  reset-offsets GROUP  --topic T[:P,P...] (repeatable) or --all-topics, and one of\n"
    "                       --to-earliest, --to-latest, --to-offset N, --shift-by [-]N,\n"
    "                       --to-datetime YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm] (UTC when\n"
    "                       no zone is given); a dry run unless --execute. The group\n"
    "                       must have no active members.\n"
    "  delete GROUP...      delete groups without members and their offsets\n"
    "\n"
    "Examples:\n"
    "  weir group list\n"
    "  weir group describe billing\n"
    "  weir group reset-offsets billing --topic orders --to-earliest --execute\n"
    "  weir group reset-offsets billing --topic orders:0,1 --shift-by -100\n"
    "  weir group delete billing\n";

enum {
    OPT_TO_EARLIEST = 1000,
    OPT_TO_LATEST,
    OPT_TO_OFFSET,
    OPT_TO_DATETIME,
    OPT_SHIFT_BY,
    OPT_EXECUTE,
    OPT_DRY_RUN,
    OPT_ALL_TOPICS,
};

static const struct option group_opts[] = {
    {"topic", required_argument, NULL, 't'},
    {"all-topics", no_argument, NULL, OPT_ALL_TOPICS},
    {"to-earliest", no_argument, NULL, OPT_TO_EARLIEST},
    {"to-latest", no_argument, NULL, OPT_TO_LATEST},
    {"to-offset", required_argument, NULL, OPT_TO_OFFSET},
    {"to-datetime", required_argument, NULL, OPT_TO_DATETIME},
    {"shift-by", required_argument, NULL, OPT_SHIFT_BY},
    {"execute", no_argument, NULL, OPT_EXECUTE},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"help", no_argument, NULL, 'h'},
    {0},
};

enum reset_spec { SPEC_NONE, SPEC_EARLIEST, SPEC_LATEST, SPEC_OFFSET, SPEC_DATETIME, SPEC_SHIFT };

struct group_args {
    const char *topics[64];
    int n_topics;
    bool all_topics, execute;
    enum reset_spec spec;
    int nspec;
    int64_t value; /* offset, shift, or timestamp ms */
    char **names;
    int n_names;
};


static int parse(int argc, char **argv, struct group_args *a)
{
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":t:h", group_opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            if (a->n_topics == 64)
                return cli_usage_err("too many --topic");
            a->topics[a->n_topics++] = optarg;
            break;
        case OPT_ALL_TOPICS: a->all_topics = true; break;
        case OPT_TO_EARLIEST: a->spec = SPEC_EARLIEST; a->nspec++; break;
        case OPT_TO_LATEST: a->spec = SPEC_LATEST; a->nspec++; break;
        case OPT_TO_OFFSET:
            a->spec = SPEC_OFFSET;
            a->nspec++;
            if (cli_parse_i64(optarg, &a->value) || a->value < 0)
                return cli_usage_err("--to-offset must be an offset, not '%s'", optarg);
            break;
        case OPT_SHIFT_BY:
            a->spec = SPEC_SHIFT;
            a->nspec++;
            if (cli_parse_i64(optarg, &a->value))
                return cli_usage_err("--shift-by must be a number, not '%s'", optarg);
            break;
        case OPT_TO_DATETIME:
            a->spec = SPEC_DATETIME;
            a->nspec++;
            if (cli_parse_datetime(optarg, &a->value))
                return cli_usage_err("--to-datetime must look like 2026-01-31T12:00:00.000 "
                                     "(optionally Z or +hh:mm), not '%s'", optarg);
            break;
        case OPT_EXECUTE: a->execute = true; break;
        case OPT_DRY_RUN: break;
        case 'h': fputs(group_usage, stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_err("%s needs a value", argv[optind - 1]);
        default: return cli_usage_err("unknown flag '%s'", argv[optind - 1]);
        }
    }
    a->names = argv + optind;
    a->n_names = argc - optind;
    return -1;
}

static int group_list(struct cli *c, rd_kafka_t *rk, struct group_args *a)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, c);
    rd_kafka_ListConsumerGroups(rk, o, q);
    rd_kafka_event_t *ev =
        cli_admin_wait(q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, c->timeout_ms);
    int rc = CLI_EXIT_FAIL;
    if (ev) {
        const rd_kafka_ListConsumerGroups_result_t *res =
            rd_kafka_event_ListConsumerGroups_result(ev);
        size_t n, ne;
        const rd_kafka_ConsumerGroupListing_t **gl =
            rd_kafka_ListConsumerGroups_result_valid(res, &n);
        const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(res, &ne);
        struct out *out = out_new(c, 2, "GROUP", "STATE");
        for (size_t i = 0; i < n; i++) {
            const char *g = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
            const char *st =
                rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(gl[i]));
            out_row(out);
            out_str(out, "group", g);
            out_str(out, "state", st);
            out_bool(out, "simple", rd_kafka_ConsumerGroupListing_is_simple_consumer_group(gl[i]));
            out_cells(out, g, st);
        }
        out_end(out, "\n");
        rc = CLI_EXIT_OK;
        /* One line per distinct error (every broker answers alike). */
        for (size_t i = 0; i < ne; i++) {
            char b[512];
            bool seen = false;
            for (size_t j = 0; j < i; j++)
                seen |= rd_kafka_error_code(errs[j]) == rd_kafka_error_code(errs[i]);
            if (seen)
                continue;
            cli_err("%s", cli_kerr(rd_kafka_error_code(errs[i]), rd_kafka_error_string(errs[i]),
                                   b, sizeof(b)));
            rc = CLI_EXIT_FAIL;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Committed offsets of @group (all partitions), or NULL after an error line. */
static rd_kafka_topic_partition_list_t *committed(const struct cli *c, rd_kafka_t *rk,
                                                  const char *group)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o =
        cli_admin_options(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, c);
    rd_kafka_ListConsumerGroupOffsets_t *l = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &l, 1, o, q);
    rd_kafka_topic_partition_list_t *ret = NULL;
    rd_kafka_event_t *ev =
        cli_admin_wait(q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, c->timeout_ms);
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
            rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
        if (n == 1 && rd_kafka_group_result_error(gr[0])) {
            const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[0]);
            char b[512];
            cli_err("%s: %s", group,
                    cli_kerr(rd_kafka_error_code(e), rd_kafka_error_string(e), b, sizeof(b)));
        } else if (n == 1) {
            ret = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_ListConsumerGroupOffsets_destroy(l);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return ret;
}

/* DescribeConsumerGroups of @n groups; the event (caller destroys) or NULL. */
static rd_kafka_event_t *describe(const struct cli *c, rd_kafka_t *rk, const char **groups,
                                  size_t n)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o =
        cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, c);
    rd_kafka_DescribeConsumerGroups(rk, groups, n, o, q);
    rd_kafka_event_t *ev =
        cli_admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, c->timeout_ms);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    return ev;
}

/* The member that is assigned @topic/@partition, or NULL. */
static const rd_kafka_MemberDescription_t *
owner(const rd_kafka_ConsumerGroupDescription_t *d, const char *topic, int32_t partition)
{
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d);
    for (size_t i = 0; i < nm; i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const rd_kafka_topic_partition_list_t *pl =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        if (pl && rd_kafka_topic_partition_list_find(pl, topic, partition))
            return m;
    }
    return NULL;
}

static int cmp_tp(const void *a, const void *b)
{
    const rd_kafka_topic_partition_t *x = a, *y = b;
    int r = strcmp(x->topic, y->topic);
    return r ? r : (x->partition > y->partition) - (x->partition < y->partition);
}

static int describe_one(const struct cli *c, rd_kafka_t *rk,
                        const rd_kafka_ConsumerGroupDescription_t *d, bool first)
{
    const char *g = rd_kafka_ConsumerGroupDescription_group_id(d);
    const rd_kafka_error_t *e = rd_kafka_ConsumerGroupDescription_error(d);
    if (e) {
        char b[512];
        cli_err("%s: %s", g, cli_kerr(rd_kafka_error_code(e), rd_kafka_error_string(e), b,
                                      sizeof(b)));
        return CLI_EXIT_FAIL;
    }
    rd_kafka_consumer_group_state_t state = rd_kafka_ConsumerGroupDescription_state(d);
    rd_kafka_topic_partition_list_t *offs = committed(c, rk, g);
    if (!offs)
        return CLI_EXIT_FAIL;
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d);
    if (state == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD && offs->cnt == 0) {
        cli_err("%s: GROUP_ID_NOT_FOUND: consumer group '%s' does not exist", g, g);
        rd_kafka_topic_partition_list_destroy(offs);
        return CLI_EXIT_FAIL;
    }
    /* Every partition that has a committed offset or an owner. */
    for (size_t i = 0; i < nm; i++) {
        const rd_kafka_topic_partition_list_t *pl = rd_kafka_MemberAssignment_partitions(
            rd_kafka_MemberDescription_assignment(rd_kafka_ConsumerGroupDescription_member(d, i)));
        for (int k = 0; pl && k < pl->cnt; k++)
            if (!rd_kafka_topic_partition_list_find(offs, pl->elems[k].topic,
                                                    pl->elems[k].partition))
                rd_kafka_topic_partition_list_add(offs, pl->elems[k].topic,
                                                  pl->elems[k].partition)
                    ->offset = RD_KAFKA_OFFSET_INVALID;
    }
    qsort(offs->elems, (size_t)offs->cnt, sizeof(offs->elems[0]), cmp_tp);
    const rd_kafka_Node_t *coord = rd_kafka_ConsumerGroupDescription_coordinator(d);
    const char *stname = rd_kafka_consumer_group_state_name(state);
    const char *assignor = rd_kafka_ConsumerGroupDescription_partition_assignor(d);
    int rc = CLI_EXIT_OK;
    if (c->json) {
        printf("%s{\"group\":", first ? "" : ",");
        json_str(stdout, g, -1);
        printf(",\"state\":");
        json_str(stdout, stname, -1);
        printf(",\"coordinator\":%d,\"assignor\":", coord ? rd_kafka_Node_id(coord) : -1);
        json_str(stdout, assignor && *assignor ? assignor : NULL, -1);
        printf(",\"members\":%zu,\"partitions\":", nm);
    } else {
        printf("%sGroup %s is %s with %zu member%s (coordinator: broker %d%s%s).\n\n",
               first ? "" : "\n", g, stname, nm, nm == 1 ? "" : "s",
               coord ? rd_kafka_Node_id(coord) : -1, assignor && *assignor ? ", assignor: " : "",
               assignor && *assignor ? assignor : "");
    }
    struct out *o = out_new(c, 9, "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET",
                            "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID");
    for (int i = 0; i < offs->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &offs->elems[i];
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi,
                                             c->timeout_ms);
        if (err) {
            char b[512];
            cli_err("%s: %s [%d]: log end offset: %s", g, tp->topic, tp->partition,
                    cli_kerr(err, NULL, b, sizeof(b)));
            rc = CLI_EXIT_FAIL;
            hi = -1;
        }
        int64_t cur = tp->offset >= 0 ? tp->offset : -1;
        int64_t lag = cur >= 0 && hi >= 0 ? (hi > cur ? hi - cur : 0) : -1;
        const rd_kafka_MemberDescription_t *m = owner(d, tp->topic, tp->partition);
        const char *cid = m ? rd_kafka_MemberDescription_consumer_id(m) : NULL;
        const char *host = m ? rd_kafka_MemberDescription_host(m) : NULL;
        const char *client = m ? rd_kafka_MemberDescription_client_id(m) : NULL;
        out_row(o);
        out_str(o, "topic", tp->topic);
        out_int(o, "partition", tp->partition);
        out_int_or_null(o, "current_offset", cur);
        out_int_or_null(o, "log_end_offset", hi);
        out_int_or_null(o, "lag", lag);
        out_str(o, "consumer_id", cid);
        out_str(o, "host", host);
        out_str(o, "client_id", client);
        char p[16], co[24], le[24], lg[24];
        snprintf(p, sizeof(p), "%d", tp->partition);
        snprintf(co, sizeof(co), cur >= 0 ? "%lld" : "-", (long long)cur);
        snprintf(le, sizeof(le), hi >= 0 ? "%lld" : "-", (long long)hi);
        snprintf(lg, sizeof(lg), lag >= 0 ? "%lld" : "-", (long long)lag);
        out_cells(o, g, tp->topic, p, co, le, lg, cid ? cid : "-", host ? host : "-",
                  client ? client : "-");
    }
    out_end(o, "}");
    if (!c->json && nm == 0)
        fprintf(stderr, "Consumer group '%s' has no active members.\n", g);
    rd_kafka_topic_partition_list_destroy(offs);
    return rc;
}

static int group_describe(struct cli *c, rd_kafka_t *rk, struct group_args *a)
{
    if (a->n_names == 0)
        return cli_usage_err("name at least one group");
    rd_kafka_event_t *ev = describe(c, rk, (const char **)a->names, (size_t)a->n_names);
    if (!ev)
        return CLI_EXIT_FAIL;
    size_t n;
    const rd_kafka_ConsumerGroupDescription_t **ds = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    int rc = CLI_EXIT_OK;
    if (c->json)
        printf("[");
    for (size_t i = 0; i < n; i++)
        if (describe_one(c, rk, ds[i], i == 0) != CLI_EXIT_OK)
            rc = CLI_EXIT_FAIL;
    if (c->json)
        printf("]\n");
    rd_kafka_event_destroy(ev);
    return rc;
}

/* Add the partitions --topic names (T or T:0,1) to @pl; -1 after an error. */
static int add_topic(const struct cli *c, struct raw_conn *rc, const char *spec,
                     rd_kafka_topic_partition_list_t *pl)
{
    char topic[256];
    const char *colon = strchr(spec, ':');
    size_t tl = colon ? (size_t)(colon - spec) : strlen(spec);
    snprintf(topic, sizeof(topic), "%.*s", (int)tl, spec);
    const char *names[1] = {topic};
    struct kafka_metadata_response md;
    if (raw_metadata(rc, names, 1, &md))
        return -1;
    int16_t code = md.n_topics == 1 ? md.topics[0].error_code : 3;
    if (code) {
        cli_err("%s: %s: %s", topic, cli_kerr_name(code),
                code == 3 ? "the topic does not exist" : "metadata error");
        return -1;
    }
    int32_t np = md.topics[0].n_partitions;
    if (!colon) {
        for (int32_t p = 0; p < np; p++)
            rd_kafka_topic_partition_list_add(pl, topic, p);
        return 0;
    }
    char *list = strdup(colon + 1), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t p;
        if (cli_parse_i64(tok, &p) || p < 0 || p >= np) {
            cli_err("%s: no partition '%s' (the topic has %d)", topic, tok, np);
            free(list);
            return -1;
        }
        rd_kafka_topic_partition_list_add(pl, topic, (int32_t)p);
    }
    free(list);
    return 0;
}

static int group_reset(struct cli *c, rd_kafka_t *rk, struct group_args *a)
{
    if (a->n_names != 1)
        return cli_usage_err("name exactly one group");
    if (a->nspec != 1)
        return cli_usage_err("give exactly one of --to-earliest, --to-latest, --to-offset, "
                             "--to-datetime, --shift-by");
    if (!a->n_topics == !a->all_topics)
        return cli_usage_err("give --topic T (repeatable) or --all-topics");
    const char *g = a->names[0];
    const char *gl[1] = {g};
    rd_kafka_event_t *ev = describe(c, rk, gl, 1);
    if (!ev)
        return CLI_EXIT_FAIL;
    size_t n;
    const rd_kafka_ConsumerGroupDescription_t **ds = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    rd_kafka_consumer_group_state_t st =
        n == 1 ? rd_kafka_ConsumerGroupDescription_state(ds[0]) : RD_KAFKA_CONSUMER_GROUP_STATE_DEAD;
    const rd_kafka_error_t *e = n == 1 ? rd_kafka_ConsumerGroupDescription_error(ds[0]) : NULL;
    int rc = CLI_EXIT_FAIL;
    rd_kafka_topic_partition_list_t *cur = NULL, *plan = NULL;
    struct raw_conn *raw = NULL;
    if (e) {
        char b[512];
        cli_err("%s: %s", g, cli_kerr(rd_kafka_error_code(e), rd_kafka_error_string(e), b,
                                      sizeof(b)));
        goto out;
    }
    if (st != RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY && st != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD) {
        cli_err("%s: offsets can only be reset while the group is inactive, but it is %s with "
                "%zu members; stop them first",
                g, rd_kafka_consumer_group_state_name(st),
                rd_kafka_ConsumerGroupDescription_member_count(ds[0]));
        goto out;
    }
    if (!(cur = committed(c, rk, g)))
        goto out;
    plan = rd_kafka_topic_partition_list_new(16);
    if (a->all_topics) {
        for (int i = 0; i < cur->cnt; i++)
            rd_kafka_topic_partition_list_add(plan, cur->elems[i].topic, cur->elems[i].partition);
    } else {
        if (raw_open(c, &raw))
            goto out;
        for (int i = 0; i < a->n_topics; i++)
            if (add_topic(c, raw, a->topics[i], plan))
                goto out;
    }
    if (a->spec == SPEC_DATETIME) {
        for (int i = 0; i < plan->cnt; i++)
            plan->elems[i].offset = a->value;
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, plan, c->timeout_ms);
        if (err) {
            char b[512];
            cli_err("%s: offsets for %lld: %s", g, (long long)a->value,
                    cli_kerr(err, NULL, b, sizeof(b)));
            goto out;
        }
    }
    for (int i = 0; i < plan->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &plan->elems[i];
        int64_t lo, hi;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, c->timeout_ms);
        if (err) {
            char b[512];
            cli_err("%s: %s [%d]: %s", g, tp->topic, tp->partition, cli_kerr(err, NULL, b, sizeof(b)));
            goto out;
        }
        rd_kafka_topic_partition_t *ct = rd_kafka_topic_partition_list_find(cur, tp->topic,
                                                                            tp->partition);
        int64_t now = ct && ct->offset >= 0 ? ct->offset : hi;
        int64_t to;
        switch (a->spec) {
        case SPEC_EARLIEST: to = lo; break;
        case SPEC_LATEST: to = hi; break;
        case SPEC_OFFSET: to = a->value; break;
        case SPEC_SHIFT: to = now + a->value; break;
        case SPEC_DATETIME: to = tp->err || tp->offset < 0 ? hi : tp->offset; break;
        default: to = now; break;
        }
        tp->err = 0;
        tp->offset = to < lo ? lo : to > hi ? hi : to;
    }
    if (a->execute) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *o =
            cli_admin_options(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, c);
        rd_kafka_AlterConsumerGroupOffsets_t *alt = rd_kafka_AlterConsumerGroupOffsets_new(g, plan);
        rd_kafka_AlterConsumerGroupOffsets(rk, &alt, 1, o, q);
        rd_kafka_event_t *aev =
            cli_admin_wait(q, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, c->timeout_ms);
        bool ok = aev != NULL;
        if (aev) {
            size_t ng;
            const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
                rd_kafka_event_AlterConsumerGroupOffsets_result(aev), &ng);
            const rd_kafka_error_t *ge = ng == 1 ? rd_kafka_group_result_error(gr[0]) : NULL;
            char b[512];
            if (ge) {
                cli_err("%s: %s", g, cli_kerr(rd_kafka_error_code(ge), rd_kafka_error_string(ge),
                                              b, sizeof(b)));
                ok = false;
            }
            const rd_kafka_topic_partition_list_t *rp =
                ng == 1 ? rd_kafka_group_result_partitions(gr[0]) : NULL;
            for (int i = 0; rp && i < rp->cnt; i++)
                if (rp->elems[i].err) {
                    cli_err("%s: %s [%d]: %s", g, rp->elems[i].topic, rp->elems[i].partition,
                            cli_kerr(rp->elems[i].err, NULL, b, sizeof(b)));
                    ok = false;
                }
            rd_kafka_event_destroy(aev);
        }
        rd_kafka_AlterConsumerGroupOffsets_destroy(alt);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_queue_destroy(q);
        if (!ok)
            goto out;
    }
    if (c->json) {
        printf("{\"group\":");
        json_str(stdout, g, -1);
        printf(",\"executed\":%s,\"partitions\":", a->execute ? "true" : "false");
    }
    struct out *out = out_new(c, 4, "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET");
    for (int i = 0; i < plan->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &plan->elems[i];
        char p[16], o[24];
        snprintf(p, sizeof(p), "%d", tp->partition);
        snprintf(o, sizeof(o), "%lld", (long long)tp->offset);
        out_row(out);
        out_str(out, "topic", tp->topic);
        out_int(out, "partition", tp->partition);
        out_int(out, "new_offset", tp->offset);
        out_cells(out, g, tp->topic, p, o);
    }
    out_end(out, "}\n");
    if (!a->execute && !c->json)
        fprintf(stderr, "Dry run: nothing changed; add --execute to apply.\n");
    rc = CLI_EXIT_OK;
out:
    raw_close(raw);
    if (cur)
        rd_kafka_topic_partition_list_destroy(cur);
    if (plan)
        rd_kafka_topic_partition_list_destroy(plan);
    rd_kafka_event_destroy(ev);
    return rc;
}

static int group_delete(struct cli *c, rd_kafka_t *rk, struct group_args *a)
{
    if (a->n_names == 0)
        return cli_usage_err("name at least one group");
    rd_kafka_DeleteGroup_t **dg = calloc((size_t)a->n_names, sizeof(*dg));
    for (int i = 0; i < a->n_names; i++)
        dg[i] = rd_kafka_DeleteGroup_new(a->names[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS, c);
    rd_kafka_DeleteGroups(rk, dg, (size_t)a->n_names, o, q);
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DELETEGROUPS_RESULT, c->timeout_ms);
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr =
            rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
        rc = CLI_EXIT_OK;
        struct out *out = out_new(c, 0);
        for (size_t i = 0; i < n; i++) {
            const char *g = rd_kafka_group_result_name(gr[i]);
            const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[i]);
            if (e) {
                char b[512];
                cli_err("%s: %s", g, cli_kerr(rd_kafka_error_code(e), rd_kafka_error_string(e), b,
                                              sizeof(b)));
                rc = CLI_EXIT_FAIL;
            } else if (!c->json) {
                printf("Deleted group %s.\n", g);
            }
            out_row(out);
            out_str(out, "group", g);
            out_str(out, "error", e ? rd_kafka_error_name(e) : NULL);
        }
        out_end(out, "\n");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < a->n_names; i++)
        rd_kafka_DeleteGroup_destroy(dg[i]);
    free(dg);
    return rc;
}

int cli_group_main(struct cli *c, int argc, char **argv)
{
    int help = cli_noun_help(argc, argv, group_usage);
    if (help >= 0)
        return help;
    /* The APIs each verb's librdkafka calls need: librdkafka 2.0.2 can abort
     * in DescribeConsumerGroups against a broker without DescribeGroups, so
     * the broker is asked first. */
    static const struct {
        const char *verb, *alias;
        int (*fn)(struct cli *, rd_kafka_t *, struct group_args *);
        int16_t apis[4];
        int n_apis;
    } verbs[] = {
        {"list", "ls", group_list, {16 /* ListGroups */}, 1},
        {"describe", NULL, group_describe,
         {10 /* FindCoordinator */, 15 /* DescribeGroups */, 9 /* OffsetFetch */}, 3},
        {"reset-offsets", "seek", group_reset,
         {10, 15, 9, 8 /* OffsetCommit */}, 4},
        {"delete", NULL, group_delete, {10, 42 /* DeleteGroups */}, 2},
    };
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(argv[1], verbs[i].verb) && !(verbs[i].alias && !strcmp(argv[1], verbs[i].alias)))
            continue;
        cli_set_cmd("group", verbs[i].verb);
        struct group_args a = {0};
        int r = parse(argc - 1, argv + 1, &a);
        if (r >= 0)
            return r;
        /* Fail fast, with one line, when no bootstrap server answers. */
        struct raw_conn *probe;
        if (raw_open(c, &probe))
            return CLI_EXIT_FAIL;
        r = raw_require_apis(probe, verbs[i].apis, verbs[i].n_apis);
        raw_close(probe);
        if (r)
            return CLI_EXIT_FAIL;
        rd_kafka_t *rk = cli_admin_new(c);
        if (!rk)
            return CLI_EXIT_FAIL;
        r = verbs[i].fn(c, rk, &a);
        rd_kafka_destroy(rk);
        return r;
    }
    return cli_usage_err("unknown verb '%s'; verbs: list, describe, reset-offsets, delete",
                         argv[1]);
}
