/* weir: the operator's command-line tool. main() takes the global options out
 * of argv wherever they stand (before or after the command words), then hands
 * the rest to the noun's entry point. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/reassign.h"
#include "common/version.h"

static const char usage[] =
    "Usage: weir [GLOBAL FLAGS] NOUN VERB [ARGS] [FLAGS]\n"
    "\n"
    "A Kafka client for operators: topics, produce, consume, consumer groups,\n"
    "configs and cluster health. Works against Weir and any Kafka cluster.\n"
    "\n"
    "Commands:\n"
    "  topic create|list|describe|alter|delete   manage topics\n"
    "  produce TOPIC                             write lines from stdin or a file\n"
    "  consume TOPIC                             print records\n"
    "  group list|describe|reset-offsets|delete  consumer groups and their lag\n"
    "  config describe|set|delete                topic and broker configs\n"
    "  cluster info|health                       brokers, controller, partition health\n"
    "  cluster rebalance|decommission|recommission  spread replicas, empty a broker\n"
    "  reassign generate|execute|verify|cancel|list move partitions with a plan\n"
    "\n"
    "Global flags (before or after the command words):\n"
    "  -b, --bootstrap-server HOST:PORT[,...]  brokers to start from (env WEIR_BROKERS;\n"
    "                                          default localhost:9092)\n"
    "  -X key=value                            librdkafka setting (repeatable), e.g.\n"
    "                                          -X security.protocol=ssl\n"
    "      --format text|json                  output format (json: one document)\n"
    "      --request-timeout-ms MS             admin request timeout (default 30000)\n"
    "  -h, --help                              help; 'weir NOUN --help' for a command\n"
    "      --version                           the version and git revision\n"
    "\n"
    "Example:\n"
    "  weir -b localhost:9092 topic create orders -p 6 -r 3 -c retention.ms=86400000\n"
    "\n"
    "Exit status: 0 when everything requested succeeded, 1 when anything failed,\n"
    "2 for a usage error.\n";

/* Takes a global flag at argv[*i]; returns 1 if it was one, 0 if not, -1 on a
 * missing value. */
static int take_global(struct cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *val = NULL;
    enum { NONE, BOOT, XPROP, FORMAT, TIMEOUT } which = NONE;
    static const struct {
        const char *name;
        int which;
    } longs[] = {{"--bootstrap-server", BOOT},
                 {"--brokers", BOOT},
                 {"--format", FORMAT},
                 {"--request-timeout-ms", TIMEOUT}};
    for (size_t k = 0; k < sizeof(longs) / sizeof(longs[0]); k++) {
        size_t l = strlen(longs[k].name);
        if (strncmp(a, longs[k].name, l) == 0 && (a[l] == 0 || a[l] == '=')) {
            which = longs[k].which;
            val = a[l] == '=' ? a + l + 1 : NULL;
        }
    }
    if (which == NONE && a[0] == '-' && (a[1] == 'b' || a[1] == 'X')) {
        which = a[1] == 'b' ? BOOT : XPROP;
        val = a[2] ? a + 2 : NULL;
    }
    if (which == NONE)
        return 0;
    if (!val) {
        if (*i + 1 >= argc)
            return -1;
        val = argv[++*i];
    }
    switch (which) {
    case BOOT:
        c->brokers = val;
        break;
    case XPROP:
        if (c->n_xprops == CLI_MAX_X)
            return -1;
        c->xprops[c->n_xprops++] = val;
        break;
    case FORMAT:
        c->format = val;
        break;
    case TIMEOUT:
        c->timeout_ms = atoi(val);
        break;
    default:
        break;
    }
    return 1;
}

int main(int argc, char **argv)
{
    struct cli c = {.brokers = getenv("WEIR_BROKERS"), .format = "text", .timeout_ms = 30000};
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    int n = 0;
    if (!rest)
        return CLI_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                rest[n++] = argv[i++];
            break;
        }
        /* after 'reassign', --brokers is generate's broker id list, not the
         * old alias of --bootstrap-server */
        bool brokers_ids = n > 0 && strcmp(rest[0], "reassign") == 0 &&
                           strncmp(argv[i], "--brokers", 9) == 0 &&
                           (argv[i][9] == 0 || argv[i][9] == '=');
        int r = brokers_ids ? 0 : take_global(&c, argc, argv, &i);
        if (r < 0) {
            cli_usage_err("%s needs a value", argv[i]);
            return CLI_EXIT_USAGE;
        }
        if (r == 0)
            rest[n++] = argv[i];
    }
    if (!c.brokers || !*c.brokers)
        c.brokers = "localhost:9092";
    if (strcmp(c.format, "json") == 0)
        c.json = true;
    else if (strcmp(c.format, "text") != 0)
        return cli_usage_err("--format must be text or json, not '%s'", c.format);
    if (c.timeout_ms <= 0)
        return cli_usage_err("--request-timeout-ms must be a positive number of milliseconds");

    if (n > 0 && strcmp(rest[0], "--version") == 0) {
        puts(WEIR_VERSION_LINE("weir"));
        free(rest);
        return CLI_EXIT_OK;
    }
    if (n == 0 || strcmp(rest[0], "--help") == 0 || strcmp(rest[0], "-h") == 0 ||
        strcmp(rest[0], "help") == 0) {
        fputs(usage, n == 0 ? stderr : stdout);
        free(rest);
        return n == 0 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    static const struct {
        const char *noun;
        int (*main)(struct cli *, int, char **);
    } nouns[] = {
        {"topic", cli_topic_main},     {"produce", cli_produce_main},
        {"consume", cli_consume_main}, {"group", cli_group_main},
        {"config", cli_config_main},   {"cluster", cli_cluster_main},
        {"reassign", cli_reassign_main},
    };
    int rc = -1;
    for (size_t k = 0; k < sizeof(nouns) / sizeof(nouns[0]); k++)
        if (strcmp(rest[0], nouns[k].noun) == 0) {
            cli_cmd_name = nouns[k].noun;
            rc = nouns[k].main(&c, n, rest);
        }
    if (rc < 0)
        rc = cli_usage_err("unknown command '%s'; commands: topic, produce, consume, group, "
                           "config, cluster, reassign",
                           rest[0]);
    fflush(stdout);
    free(rest);
    return rc;
}
