/* weir-config-docs: docs/configuration.md, generated from the config registries
 * so that the page cannot drift from the code: the broker's keys
 * (broker/broker_config.c and broker/storage/storage_config.c), the
 * coordinator's (coordinator/coord_config.c) and the topic keys
 * (common/topic_config.c).
 *
 *   weir-config-docs                 print the page
 *   weir-config-docs --check FILE    exit 1 (with a hint) when FILE differs
 *
 * meson test `config_docs_current` runs the check against docs/configuration.md. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/storage/storage_config.h"
#include "common/config.h"
#include "common/dyncfg.h"
#include "common/topic_config.h"
#include "coordinator/coord_config.h"

static const char *type_name(enum config_type t)
{
    switch (t) {
    case CONFIG_BOOL:
        return "boolean";
    case CONFIG_INT:
        return "integer";
    case CONFIG_DOUBLE:
        return "double";
    case CONFIG_STRING:
        return "string";
    case CONFIG_LIST:
        return "list";
    }
    return "?";
}

static const char *topic_type_name(enum topic_config_type t)
{
    switch (t) {
    case TOPIC_CONFIG_BOOL:
        return "boolean";
    case TOPIC_CONFIG_INT:
        return "int";
    case TOPIC_CONFIG_LONG:
        return "long";
    case TOPIC_CONFIG_RATIO:
        return "double in [0, 1]";
    case TOPIC_CONFIG_STRING:
        return "string";
    case TOPIC_CONFIG_LIST:
        return "list";
    case TOPIC_CONFIG_REPLICAS:
        return "replica list";
    }
    return "?";
}

/* Markdown table cell: '|' would end the cell. */
static void cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else
            fputc(*s, f);
    }
}

static void bound(FILE *f, int64_t v)
{
    if (v == INT64_MAX)
        fputs("max", f);
    else if (v == INT64_MIN)
        fputs("min", f);
    else if (v == INT32_MAX)
        fputs("2^31-1", f);
    else if (v == INT32_MIN)
        fputs("-2^31", f);
    else
        fprintf(f, "%lld", (long long)v);
}

static void choices(FILE *f, const char *const *c)
{
    for (size_t i = 0; c[i]; i++)
        fprintf(f, "%s`%s`", i ? ", " : "", c[i]);
}

/* Whether the table of @coordinator's keys marks @name dynamic: the broker's
 * dynamic keys, and in the coordinator's table the cluster-wide ones it acts
 * on itself. */
static const char *dynamic_mark(const char *name, bool coordinator)
{
    const struct dyncfg_key *k = dyncfg_find(name);
    if (!k || (coordinator && !k->cluster_only))
        return "";
    return k->cluster_only ? " (dynamic, cluster default only)" : " (dynamic)";
}

static void registry_table(FILE *f, const struct config_def *defs, size_t n, bool coordinator)
{
    fputs("| key | type | default | values | what it does |\n", f);
    fputs("|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < n; i++) {
        const struct config_def *d = &defs[i];
        fprintf(f, "| `%s`%s | %s | ", d->name, dynamic_mark(d->name, coordinator),
                type_name(d->type));
        if (d->default_value)
            fprintf(f, "`%s`", d->default_value[0] ? d->default_value : "\"\"");
        else
            fputs("null", f);
        fputs(" | ", f);
        if (d->type == CONFIG_INT && (d->min || d->max)) {
            fputs("[", f);
            bound(f, d->min);
            fputs(", ", f);
            bound(f, d->max);
            fputs("]", f);
        } else if (d->type == CONFIG_DOUBLE && (d->dmin != 0 || d->dmax != 0)) {
            fprintf(f, "[%g, %g]", d->dmin, d->dmax);
        } else if (d->type == CONFIG_STRING && d->choices) {
            choices(f, d->choices);
        }
        fputs(" | ", f);
        cell(f, d->doc ? d->doc : "");
        fputs(" |\n", f);
    }
}

static void topic_table(FILE *f)
{
    fputs("| key | type | Kafka default | broker key for the default | values | what it does |\n",
          f);
    fputs("|---|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < topic_config_ndefs; i++) {
        const struct topic_config_def *d = &topic_config_defs[i];
        fprintf(f, "| `%s` | %s | `%s` | `%s` | ", d->name, topic_type_name(d->type),
                d->kafka_default, d->broker_key ? d->broker_key : "(none)");
        if (d->type == TOPIC_CONFIG_INT || d->type == TOPIC_CONFIG_LONG) {
            fputs("[", f);
            bound(f, d->min);
            fputs(", ", f);
            bound(f, d->max);
            fputs("]", f);
        } else if (d->choices) {
            /* Only what is accepted; refused values are in the doc column. */
            bool first = true;
            for (size_t k = 0; d->choices[k]; k++) {
                bool refused = false;
                for (size_t r = 0; d->refused && d->refused[r]; r++)
                    refused |= !strcmp(d->refused[r], d->choices[k]);
                if (refused)
                    continue;
                fprintf(f, "%s`%s`", first ? "" : ", ", d->choices[k]);
                first = false;
            }
        } else if (d->type == TOPIC_CONFIG_REPLICAS) {
            fputs("`*`, or `partition:broker` pairs separated by commas", f);
        }
        fputs(" | ", f);
        cell(f, d->doc);
        if (d->refused) {
            fputs(" Refused: ", f);
            choices(f, d->refused);
            fputs(" (", f);
            cell(f, d->refused_why);
            fputs(").", f);
        }
        fputs(" |\n", f);
    }
}

static int generate(FILE *f)
{
    struct config_def *bdefs;
    size_t nb;
    if (storage_config_defs_combine(broker_config_defs, broker_config_ndefs, &bdefs, &nb) < 0)
        return -ENOMEM;
    fputs("# Configuration\n\n"
          "<!-- Generated by tools/config_docs.c from the config registries; do not edit.\n"
          "     Regenerate: build/normal/tools/weir-config-docs > docs/configuration.md\n"
          "     (meson test config_docs_current fails while this file is stale). -->\n\n"
          "Weir reads Java-properties files with Kafka's key names and defaults wherever\n"
          "Kafka has the key. Each program takes `--config FILE` and any number of\n"
          "`--override key=value`. Unknown keys in a file are warned about; on the command\n"
          "line they are errors; an invalid value stops the program with a message naming\n"
          "the key.\n\n"
          "**Dynamic?** Keys marked *(dynamic)* can also be set at run time, as in Kafka,\n"
          "with AlterConfigs / IncrementalAlterConfigs on a BROKER resource: for one broker\n"
          "(resource name = its id) or as the cluster default (empty resource name). The\n"
          "coordinator stores the value in the metadata log and every broker applies it\n"
          "from the watch without a restart. Precedence: topic override > dynamic value for\n"
          "the broker > dynamic cluster default > the properties file or `--override` >\n"
          "the default; DescribeConfigs reports which one is in effect\n"
          "(DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG,\n"
          "DEFAULT_CONFIG). `unclean.leader.election.enable` acts in the coordinator's\n"
          "elections, so it takes only a cluster default. Every other broker and\n"
          "coordinator key is static: read at start, refused by AlterConfigs with\n"
          "INVALID_CONFIG, reported read-only. Topic keys are dynamic: CreateTopics sets\n"
          "them, AlterConfigs / IncrementalAlterConfigs change them, and every broker applies\n"
          "a change from the coordinator's watch without a restart.\n\n",
          f);
    fputs("## weir-broker\n\n", f);
    registry_table(f, bdefs, nb, false);
    free(bdefs);
    fputs("\n## weir-coordinator\n\n", f);
    registry_table(f, coord_config_defs, coord_config_ndefs, true);
    fputs("\n## Topic keys (dynamic)\n\n"
          "Set per topic; a topic without an override uses the broker key named in the\n"
          "fourth column when the broker declares it (as DescribeConfigs shows), else\n"
          "Kafka's default. Keys not listed here are refused with INVALID_CONFIG, and so\n"
          "are the values listed as refused: Weir does not accept a setting it would\n"
          "ignore. The compaction keys take effect on topics whose cleanup.policy\n"
          "includes `compact` (docs/compaction.md); on a `cleanup.policy=delete` topic\n"
          "they are stored and reported but read by nothing, as in Kafka.\n\n",
          f);
    topic_table(f);
    return ferror(f) ? -EIO : 0;
}

static int read_file(const char *path, char **ret, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (err) {
        free(buf);
        return err;
    }
    *ret = buf;
    *ret_len = len;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 1)
        return generate(stdout) < 0 ? 1 : 0;
    if (argc != 3 || strcmp(argv[1], "--check") != 0) {
        fprintf(stderr, "usage: weir-config-docs [--check FILE]\n");
        return 2;
    }
    char *want = NULL, *have = NULL;
    size_t want_len = 0, have_len = 0;
    FILE *m = open_memstream(&want, &want_len);
    if (!m || generate(m) < 0 || fclose(m) != 0) {
        fprintf(stderr, "weir-config-docs: out of memory\n");
        return 1;
    }
    int r = read_file(argv[2], &have, &have_len);
    if (r < 0) {
        fprintf(stderr, "weir-config-docs: %s: %s\n", argv[2], strerror(-r));
        free(want);
        return 1;
    }
    bool same = have_len == want_len && memcmp(have, want, want_len) == 0;
    if (!same) {
        /* Name the first line that differs, to save a diff. */
        size_t i = 0, line = 1;
        while (i < have_len && i < want_len && have[i] == want[i])
            line += have[i++] == '\n';
        fprintf(stderr,
                "%s is stale (first difference on line %zu): regenerate it with\n"
                "  weir-config-docs > %s\n",
                argv[2], line, argv[2]);
    }
    free(want);
    free(have);
    return same ? 0 : 1;
}
