/* cluster: `weir cluster info|health`. DescribeCluster (brokers, racks,
 * endpoints, controller) and Metadata v9 (leaders, ISR, offline replicas) go
 * through the generated codec; librdkafka 2.0.2 has neither in that detail.
 * Healthy, as rpk defines it: a controller, every known broker answering, every
 * partition with a leader; Weir adds no under-replicated partitions. */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/logdirs.h"
#include "cli/raw.h"
#include "cli/reassign.h"

static const char cluster_usage[] =
    "Usage: weir cluster VERB [FLAGS]\n"
    "\n"
    "  info     cluster id, controller, brokers (id, host, port, rack, state) and the\n"
    "           counts of under-replicated, under-min-ISR and offline partitions\n"
    "  health   Healthy: true|false and why; exit status 1 when unhealthy\n"
    "           -w, --watch               print again every --interval seconds (2)\n"
    "           -e, --exit-when-healthy   wait until healthy (with --timeout S: exit 1\n"
    "                                     if it is not healthy within S seconds)\n"
    "  log-dirs every broker's log dirs and the size of each partition replica\n"
    "           in them (DescribeLogDirs), as BROKER DIR TOPIC PARTITION SIZE ERROR;\n"
    "           --format json adds offset_lag, is_future and each dir's total and\n"
    "           usable bytes\n"
    "           --topics a,b              only these topics' partitions\n"
    "  rebalance     plan over every broker and every topic (__consumer_offsets too)\n"
    "                and start the moves: the step after adding a broker\n"
    "  decommission  --broker N: mark broker N decommissioned (new topics and\n"
    "                partitions skip it) and move every replica off it\n"
    "  recommission  --broker N: clear the mark; new replicas may land there again\n"
    "           --throttle B/S   replication throttle for the moves (rebalance,\n"
    "                            decommission); removed when --wait sees them done\n"
    "           --wait           wait until the moves are done (progress on a\n"
    "                            terminal; --timeout S bounds it)\n"
    "\n"
    "Examples:\n"
    "  weir cluster info\n"
    "  weir cluster health\n"
    "  weir cluster health --exit-when-healthy --timeout 60 && echo ready\n"
    "  weir cluster log-dirs --topics orders --format json\n"
    "  weir cluster rebalance --wait\n"
    "  weir cluster decommission --broker 2 --wait --timeout 600\n";

static const struct option cluster_opts[] = {
    {"watch", no_argument, NULL, 'w'},
    {"exit-when-healthy", no_argument, NULL, 'e'},
    {"timeout", required_argument, NULL, 'T'},
    {"interval", required_argument, NULL, 'i'},
    {"throttle", required_argument, NULL, 'r'},
    {"wait", no_argument, NULL, 'W'},
    {"broker", required_argument, NULL, 'B'},
    {"topics", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {0},
};

#define MAX_NODES 1024
#define MAX_LIST 64 /* partitions named per category; the counts are exact */

struct node {
    int32_t id;
    char host[256];
    int32_t port;
    char rack[64];
    bool has_rack, listed, answering;
};

struct plist {
    int count;
    char names[MAX_LIST][300];
};

struct health {
    char cluster_id[64];
    int32_t controller;
    struct node nodes[MAX_NODES];
    int n_nodes;
    int topics, partitions;
    struct plist leaderless, urp, under_min_isr;
};

static void plist_add(struct plist *l, const char *topic, int32_t p)
{
    if (l->count < MAX_LIST)
        snprintf(l->names[l->count], sizeof(l->names[0]), "%s/%d", topic, p);
    l->count++;
}

static struct node *node_get(struct health *h, int32_t id)
{
    for (int i = 0; i < h->n_nodes; i++)
        if (h->nodes[i].id == id)
            return &h->nodes[i];
    if (h->n_nodes == MAX_NODES)
        return NULL;
    struct node *n = &h->nodes[h->n_nodes++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    return n;
}

static int cmp_node(const void *a, const void *b)
{
    const struct node *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* min.insync.replicas of every topic in @md (by index), 1 when unknown. */
static int min_isr(struct raw_conn *rc, char (*names)[256], int n, int *ret)
{
    for (int i = 0; i < n; i++)
        ret[i] = 1;
    if (n == 0)
        return 0;
    struct kafka_describe_configs_request_resource *res = calloc((size_t)n, sizeof(*res));
    buf_slice key = {(const uint8_t *)"min.insync.replicas", 19};
    for (int i = 0; i < n; i++) {
        res[i].resource_type = 2;
        res[i].resource_name = (buf_slice){(const uint8_t *)names[i], (int32_t)strlen(names[i])};
        res[i].n_configuration_keys = 1;
        res[i].configuration_keys = &key;
    }
    struct kafka_describe_configs_request req;
    kafka_describe_configs_request_init(&req);
    req.n_resources = n;
    req.resources = res;
    struct kafka_describe_configs_response resp;
    int r = raw_call(rc, KAFKA_API_DESCRIBE_CONFIGS, 1, &req, &resp);
    free(res);
    if (r)
        return r;
    for (int32_t i = 0; i < resp.n_results; i++) {
        const struct kafka_describe_configs_response_result *rr = &resp.results[i];
        for (int k = 0; k < n; k++) {
            if (strcmp(raw_str(rr->resource_name), names[k]))
                continue;
            for (int32_t j = 0; j < rr->n_configs; j++)
                if (!strcmp(raw_str(rr->configs[j].name), "min.insync.replicas") &&
                    rr->configs[j].value.len > 0)
                    ret[k] = atoi(raw_str(rr->configs[j].value));
        }
    }
    return 0;
}

/* Fill @h; 0 or -1 after an error line. */
static int gather(const struct cli *c, struct health *h)
{
    memset(h, 0, sizeof(*h));
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return -1;
    int ret = -1;
    struct kafka_describe_cluster_request dreq;
    struct kafka_describe_cluster_response dresp;
    kafka_describe_cluster_request_init(&dreq);
    if (raw_call(rc, KAFKA_API_DESCRIBE_CLUSTER, 0, &dreq, &dresp))
        goto out;
    if (dresp.error_code) {
        cli_err("DescribeCluster: %s: %s", cli_kerr_name(dresp.error_code),
                dresp.error_message.len > 0 ? raw_str(dresp.error_message) : "refused");
        goto out;
    }
    snprintf(h->cluster_id, sizeof(h->cluster_id), "%s", raw_str(dresp.cluster_id));
    h->controller = dresp.controller_id;
    for (int32_t i = 0; i < dresp.n_brokers; i++) {
        const struct kafka_describe_cluster_response_broker *b = &dresp.brokers[i];
        struct node *n = node_get(h, b->broker_id);
        if (!n)
            break;
        n->listed = true;
        snprintf(n->host, sizeof(n->host), "%s", raw_str(b->host));
        n->port = b->port;
        n->has_rack = b->rack.len >= 0;
        snprintf(n->rack, sizeof(n->rack), "%s", raw_str(b->rack));
    }
    struct kafka_metadata_response md;
    if (raw_metadata(rc, NULL, 0, &md))
        goto out;
    /* Copy what the next call would invalidate. */
    int nt = md.n_topics;
    char (*names)[256] = calloc((size_t)nt + 1, sizeof(*names));
    int *mins = calloc((size_t)nt + 1, sizeof(*mins));
    struct part { int t; int32_t p, leader, nrep, nisr; } *parts = NULL;
    size_t np = 0;
    for (int i = 0; i < nt; i++) {
        snprintf(names[i], sizeof(names[i]), "%s", raw_str(md.topics[i].name));
        np += (size_t)md.topics[i].n_partitions;
    }
    parts = calloc(np + 1, sizeof(*parts));
    size_t k = 0;
    for (int i = 0; i < nt; i++) {
        const struct kafka_metadata_response_topic *t = &md.topics[i];
        if (t->error_code)
            continue;
        h->topics++;
        for (int32_t p = 0; p < t->n_partitions; p++) {
            const struct kafka_metadata_response_partition *pp = &t->partitions[p];
            parts[k++] = (struct part){i, pp->partition_index, pp->leader_id,
                                       pp->n_replica_nodes, pp->n_isr_nodes};
            for (int32_t r = 0; r < pp->n_replica_nodes; r++)
                node_get(h, pp->replica_nodes[r]);
        }
    }
    if (min_isr(rc, names, nt, mins) == 0) {
        for (size_t j = 0; j < k; j++) {
            h->partitions++;
            if (parts[j].leader < 0)
                plist_add(&h->leaderless, names[parts[j].t], parts[j].p);
            if (parts[j].nisr < parts[j].nrep)
                plist_add(&h->urp, names[parts[j].t], parts[j].p);
            if (parts[j].nisr < mins[parts[j].t])
                plist_add(&h->under_min_isr, names[parts[j].t], parts[j].p);
        }
        ret = 0;
    }
    free(parts);
    free(names);
    free(mins);
    qsort(h->nodes, (size_t)h->n_nodes, sizeof(h->nodes[0]), cmp_node);
    for (int i = 0; i < h->n_nodes; i++)
        h->nodes[i].answering = h->nodes[i].listed &&
                                raw_probe(h->nodes[i].host, h->nodes[i].port, 2000);
out:
    raw_close(rc);
    return ret;
}

static const char *node_state(const struct node *n)
{
    return !n->listed ? "down" : n->answering ? "up" : "unreachable";
}

/* The unhealthy reasons into @r (at most 4); returns their count. */
static int reasons(const struct health *h, const char **r)
{
    int n = 0;
    bool down = false;
    for (int i = 0; i < h->n_nodes; i++)
        down |= !h->nodes[i].answering;
    if (h->controller < 0)
        r[n++] = "no_controller";
    if (down)
        r[n++] = "nodes_down";
    if (h->leaderless.count)
        r[n++] = "leaderless_partitions";
    if (h->urp.count)
        r[n++] = "under_replicated_partitions";
    return n;
}

static void print_list_text(const char *label, const struct plist *l)
{
    char head[64];
    snprintf(head, sizeof(head), "%s (%d):", label, l->count);
    printf("%-34s[", head);
    for (int i = 0; i < l->count && i < MAX_LIST; i++)
        printf("%s%s", i ? " " : "", l->names[i]);
    printf("%s]\n", l->count > MAX_LIST ? " ..." : "");
}

static void print_list_json(const char *key, const struct plist *l)
{
    printf(",\"%s_count\":%d,\"%s\":[", key, l->count, key);
    for (int i = 0; i < l->count && i < MAX_LIST; i++) {
        printf("%s", i ? "," : "");
        json_str(stdout, l->names[i], -1);
    }
    printf("]");
}

static void print_json(const struct health *h)
{
    const char *r[4];
    int nr = reasons(h, r);
    printf("{\"cluster_id\":");
    json_str(stdout, h->cluster_id, -1);
    printf(",\"controller_id\":%d,\"healthy\":%s,\"unhealthy_reasons\":[", h->controller,
           nr ? "false" : "true");
    for (int i = 0; i < nr; i++)
        printf("%s\"%s\"", i ? "," : "", r[i]);
    printf("],\"brokers\":[");
    for (int i = 0; i < h->n_nodes; i++) {
        const struct node *n = &h->nodes[i];
        printf("%s{\"id\":%d,\"host\":", i ? "," : "", n->id);
        json_str(stdout, n->listed ? n->host : NULL, -1);
        printf(",\"port\":");
        n->listed ? printf("%d", n->port) : printf("null");
        printf(",\"rack\":");
        json_str(stdout, n->has_rack ? n->rack : NULL, -1);
        printf(",\"state\":\"%s\"}", node_state(n));
    }
    printf("],\"nodes_down\":[");
    for (int i = 0, k = 0; i < h->n_nodes; i++)
        if (!h->nodes[i].answering)
            printf("%s%d", k++ ? "," : "", h->nodes[i].id);
    printf("],\"topics\":%d,\"partitions\":%d", h->topics, h->partitions);
    print_list_json("leaderless_partitions", &h->leaderless);
    print_list_json("under_replicated_partitions", &h->urp);
    print_list_json("under_min_isr_partitions", &h->under_min_isr);
    printf("}\n");
}

static int cluster_info(struct cli *c)
{
    struct health h;
    if (gather(c, &h))
        return CLI_EXIT_FAIL;
    if (c->json) {
        print_json(&h);
        return CLI_EXIT_OK;
    }
    printf("CLUSTER\n=======\nid:          %s\ncontroller:  %d\n\nBROKERS\n=======\n",
           h.cluster_id, h.controller);
    struct table *t = table_new(5, "ID", "HOST", "PORT", "RACK", "STATE");
    for (int i = 0; i < h.n_nodes; i++) {
        const struct node *n = &h.nodes[i];
        char id[16], port[16];
        snprintf(id, sizeof(id), "%d%s", n->id, n->id == h.controller ? "*" : "");
        snprintf(port, sizeof(port), n->listed ? "%d" : "-", n->port);
        table_row(t, id, n->listed ? n->host : "-", port, n->has_rack ? n->rack : "-",
                  node_state(n));
    }
    table_print(t, stdout);
    table_free(t);
    printf("\nPARTITIONS\n==========\ntopics:            %d\npartitions:        %d\n"
           "under-replicated:  %d\nunder-min-ISR:     %d\noffline:           %d\n",
           h.topics, h.partitions, h.urp.count, h.under_min_isr.count, h.leaderless.count);
    return CLI_EXIT_OK;
}

static void print_health_text(const struct health *h)
{
    const char *r[4];
    int nr = reasons(h, r);
    printf("CLUSTER HEALTH OVERVIEW\n=======================\n");
    printf("%-34s%s\n", "Healthy:", nr ? "false" : "true");
    printf("%-34s[", "Unhealthy reasons:");
    for (int i = 0; i < nr; i++)
        printf("%s%s", i ? " " : "", r[i]);
    printf("]\n%-34s%d\n%-34s[", "Controller ID:", h->controller, "All nodes:");
    for (int i = 0; i < h->n_nodes; i++)
        printf("%s%d", i ? " " : "", h->nodes[i].id);
    printf("]\n%-34s[", "Nodes down:");
    for (int i = 0, k = 0; i < h->n_nodes; i++)
        if (!h->nodes[i].answering)
            printf("%s%d", k++ ? " " : "", h->nodes[i].id);
    printf("]\n");
    print_list_text("Leaderless partitions", &h->leaderless);
    print_list_text("Under-replicated partitions", &h->urp);
    print_list_text("Under-min-ISR partitions", &h->under_min_isr);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cluster_health(struct cli *c, bool watch, bool until_healthy, double timeout,
                          double interval)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double start = now_s();
    struct health *h = malloc(sizeof(*h));
    int rc = CLI_EXIT_FAIL;
    for (bool first = true; !stop; first = false) {
        const char *r[4];
        int ok = gather(c, h);
        bool healthy = ok == 0 && reasons(h, r) == 0;
        if (ok == 0 && (watch || !until_healthy || healthy)) {
            if (!first && !c->json)
                putchar('\n');
            c->json ? print_json(h) : print_health_text(h);
            fflush(stdout);
        }
        if (!watch && !until_healthy) {
            rc = ok == 0 && healthy ? CLI_EXIT_OK : CLI_EXIT_FAIL;
            break;
        }
        if (until_healthy && healthy) {
            rc = CLI_EXIT_OK;
            break;
        }
        if (timeout > 0 && now_s() - start >= timeout) {
            cli_err("not healthy after %.0f s", timeout);
            if (ok == 0 && !watch)
                c->json ? print_json(h) : print_health_text(h);
            break;
        }
        for (double t0 = now_s(); !stop && now_s() - t0 < interval;)
            usleep(50000);
    }
    free(h);
    return rc;
}

int cli_cluster_main(struct cli *c, int argc, char **argv)
{
    int help = cli_noun_help(argc, argv, cluster_usage);
    if (help >= 0)
        return help;
    const char *verb = argv[1];
    bool move = !strcmp(verb, "rebalance") || !strcmp(verb, "decommission");
    bool recom = !strcmp(verb, "recommission");
    bool logdirs = !strcmp(verb, "log-dirs");
    if (strcmp(verb, "info") && strcmp(verb, "health") && !move && !recom && !logdirs)
        return cli_usage_err("unknown verb '%s'; verbs: info, health, log-dirs, rebalance, "
                             "decommission, recommission",
                             verb);
    cli_set_cmd("cluster", verb);
    bool watch = false, until = false, wait = false;
    int64_t timeout = 0, interval = 2, throttle = 0, broker = -1;
    const char *topics = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    argc--;
    argv++;
    while ((ch = getopt_long(argc, argv, ":weh", cluster_opts, NULL)) != -1) {
        switch (ch) {
        case 'w': watch = true; break;
        case 'e': until = true; break;
        case 'T':
            if (cli_parse_i64(optarg, &timeout) || timeout < 1)
                return cli_usage_err("--timeout must be a positive number of seconds");
            break;
        case 'i':
            if (cli_parse_i64(optarg, &interval) || interval < 1)
                return cli_usage_err("--interval must be a positive number of seconds");
            break;
        case 'r':
            if (cli_parse_i64(optarg, &throttle) || throttle < 1)
                return cli_usage_err("--throttle must be a positive number of bytes per second");
            break;
        case 'W': wait = true; break;
        case 't': topics = optarg; break;
        case 'B':
            if (cli_parse_i64(optarg, &broker) || broker < 0 || broker > INT32_MAX)
                return cli_usage_err("--broker must be a broker id");
            break;
        case 'h': fputs(cluster_usage, stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_err("%s needs a value", argv[optind - 1]);
        default: return cli_usage_err("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_err("unexpected argument '%s'", argv[optind]);
    if (topics && !logdirs)
        return cli_usage_err("--topics is for 'log-dirs'");
    if (logdirs) {
        if (watch || until || wait || throttle || timeout || broker >= 0)
            return cli_usage_err("log-dirs takes only --topics");
        return cli_cluster_log_dirs(c, topics);
    }
    if (recom) {
        if (watch || until || wait || throttle || timeout)
            return cli_usage_err("recommission takes only --broker N");
        if (broker < 0)
            return cli_usage_err("--broker N is required");
        return cli_cluster_recommission(c, (int32_t)broker);
    }
    if (move) {
        if (watch || until)
            return cli_usage_err("--watch and --exit-when-healthy are for 'health'");
        if (timeout && !wait)
            return cli_usage_err("--timeout goes with --wait");
        if ((broker >= 0) != !strcmp(verb, "decommission"))
            return cli_usage_err(broker >= 0 ? "--broker is for 'decommission'"
                                             : "--broker N is required");
        return cli_cluster_move(c, verb, (int32_t)broker, throttle, wait, (double)timeout);
    }
    if (throttle || wait || broker >= 0)
        return cli_usage_err("--throttle, --wait and --broker are for rebalance, decommission and "
                             "recommission");
    if (!strcmp(verb, "info")) {
        if (watch || until || timeout)
            return cli_usage_err("--watch, --exit-when-healthy and --timeout are for 'health'");
        return cluster_info(c);
    }
    if (timeout && !until)
        return cli_usage_err("--timeout goes with --exit-when-healthy");
    return cluster_health(c, watch, until, (double)timeout, (double)interval);
}
