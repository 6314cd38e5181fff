/* cli: what every `weir` command shares — the global options, librdkafka
 * handles built from them, one-line errors; the printing is in out.h.
 *
 * Each noun lives in its own file (topic.c, produce.c, consume.c, group.c,
 * config.c, cluster.c) and exports one cli_<noun>_main(). Commands return the
 * process exit status: 0 when every requested item succeeded, 1 when any failed,
 * 2 for a usage error. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include "cli/out.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_MAX_X 64

struct cli {
    const char *brokers;             /* --bootstrap-server / WEIR_BROKERS */
    const char *xprops[CLI_MAX_X];   /* -X key=value, borrowed from argv */
    int n_xprops;
    bool json;                       /* --format json */
    const char *format;              /* --format as given (consume also knows text) */
    int timeout_ms;                  /* admin request timeout */
};

/* The command words for error messages ("topic create"); set by main. */
extern const char *cli_cmd_name;

/* Sets cli_cmd_name to "<noun> <verb>". */
void cli_set_cmd(const char *noun, const char *verb);
/* A noun called with no verb (usage on stderr, CLI_EXIT_USAGE) or with --help /
 * -h (usage on stdout, CLI_EXIT_OK); -1 when there is a verb to run. */
int cli_noun_help(int argc, char **argv, const char *usage);

/* One line on stderr: "weir: <cmd>: <message>". */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: the line above plus a hint to --help; returns CLI_EXIT_USAGE. */
int cli_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "NAME: message" for a librdkafka error code plus an optional message. */
const char *cli_kerr(rd_kafka_resp_err_t err, const char *msg, char *buf, size_t len);
/* Kafka's error name for a wire error code ("UNKNOWN_TOPIC_OR_PARTITION"). */
const char *cli_kerr_name(int16_t code);

/* A librdkafka configuration with bootstrap.servers, the -X settings and a
 * quiet logger; NULL after printing the error. */
rd_kafka_conf_t *cli_conf(const struct cli *c);
/* A producer handle used for admin calls (and produce); NULL after printing. */
rd_kafka_t *cli_admin_new(const struct cli *c);
/* Wait for one admin result event of @type on @q; NULL after printing a
 * timeout. The caller destroys the event. */
rd_kafka_event_t *cli_admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type, int timeout_ms);
/* Admin options with the request timeout set. */
rd_kafka_AdminOptions_t *cli_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
                                           const struct cli *c);

/* Parse "key=value" into a new key (malloc) and a pointer to the value inside
 * @kv; -EINVAL without '='. */
int cli_split_kv(const char *kv, char **ret_key, const char **ret_value);
/* Parse an integer; -EINVAL for trailing junk or overflow. */
int cli_parse_i64(const char *s, int64_t *ret);
/* "YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm|-hh:mm]" (UTC without a zone) to
 * milliseconds since the epoch; -EINVAL otherwise. */
int cli_parse_datetime(const char *s, int64_t *ret);

/* Noun entry points: argv[0] is the noun. */
int cli_topic_main(struct cli *c, int argc, char **argv);
int cli_produce_main(struct cli *c, int argc, char **argv);
int cli_consume_main(struct cli *c, int argc, char **argv);
int cli_group_main(struct cli *c, int argc, char **argv);
int cli_config_main(struct cli *c, int argc, char **argv);
int cli_cluster_main(struct cli *c, int argc, char **argv);
