/* consume: `weir consume TOPIC` — prints records, after
 * kafka-console-consumer.sh. Without --group it assigns the partitions itself
 * (nothing is committed); with --group it joins the group, commits as it goes
 * and, on Ctrl-C or SIGTERM, commits what it printed and leaves the group. */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/raw.h"

static const char consume_usage[] =
    "Usage: weir consume TOPIC [FLAGS]\n"
    "\n"
    "Prints records as they arrive until Ctrl-C/SIGTERM or --max-messages.\n"
    "\n"
    "      --from-beginning        start at the earliest offset (with --group: only\n"
    "                              when the group has no committed offset)\n"
    "  -o, --offset WHERE          earliest, latest (default), N, or @TIMESTAMP_MS\n"
    "  -P, --partition N           read only partition N (not with --group)\n"
    "  -g, --group GROUP           consume as a member of GROUP, committing offsets\n"
    "  -n, --max-messages N        exit after N records\n"
    "      --timeout-ms MS         exit when no record arrived for MS milliseconds\n"
    "      --print-key             KEY<separator>VALUE (separator: --key-separator, TAB)\n"
    "      --print-offset          Partition:P<TAB>Offset:O<TAB> before each record\n"
    "      --print-headers         k:v,k:v<TAB> (or NO_HEADERS) before the key\n"
    "  -K, --key-separator SEP     separator after the key (default TAB)\n"
    "      --format text|json      json: one object per line with topic, partition,\n"
    "                              offset, timestamp, key, value, headers\n"
    "      --isolation-level LEVEL read_uncommitted (default) or read_committed\n"
    "\n"
    "Examples:\n"
    "  weir consume orders --from-beginning --print-key -n 10\n"
    "  weir consume orders -g billing --format json\n"
    "  weir consume orders -P 0 -o @1767225600000\n";

enum {
    OPT_FROM_BEGINNING = 1000,
    OPT_PRINT_KEY,
    OPT_PRINT_OFFSET,
    OPT_PRINT_HEADERS,
    OPT_ISOLATION,
    OPT_TIMEOUT,
};

static const struct option consume_opts[] = {
    {"from-beginning", no_argument, NULL, OPT_FROM_BEGINNING},
    {"offset", required_argument, NULL, 'o'},
    {"partition", required_argument, NULL, 'P'},
    {"group", required_argument, NULL, 'g'},
    {"max-messages", required_argument, NULL, 'n'},
    {"num", required_argument, NULL, 'n'},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"print-key", no_argument, NULL, OPT_PRINT_KEY},
    {"print-offset", no_argument, NULL, OPT_PRINT_OFFSET},
    {"print-headers", no_argument, NULL, OPT_PRINT_HEADERS},
    {"key-separator", required_argument, NULL, 'K'},
    {"isolation-level", required_argument, NULL, OPT_ISOLATION},
    {"help", no_argument, NULL, 'h'},
    {0},
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

struct consume_opts {
    bool print_key, print_offset, print_headers, json;
    const char *ksep;
};

static void print_text(const struct consume_opts *o, const rd_kafka_message_t *m)
{
    if (o->print_offset)
        printf("Partition:%d\tOffset:%lld\t", m->partition, (long long)m->offset);
    if (o->print_headers) {
        rd_kafka_headers_t *h = NULL;
        const char *name;
        const void *val;
        size_t vlen;
        if (rd_kafka_message_headers(m, &h) || !h || rd_kafka_header_cnt(h) == 0) {
            fputs("NO_HEADERS", stdout);
        } else {
            for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &vlen); i++) {
                printf("%s%s:", i ? "," : "", name);
                if (val)
                    fwrite(val, 1, vlen, stdout);
                else
                    fputs("null", stdout);
            }
        }
        putchar('\t');
    }
    if (o->print_key) {
        if (m->key)
            fwrite(m->key, 1, m->key_len, stdout);
        else
            fputs("null", stdout);
        fputs(o->ksep, stdout);
    }
    if (m->payload)
        fwrite_unlocked(m->payload, 1, m->len, stdout);
    else
        fputs_unlocked("null", stdout);
    putchar_unlocked('\n');
}

static void print_json(const rd_kafka_message_t *m)
{
    printf("{\"topic\":");
    json_str(stdout, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    printf(",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"key\":", m->partition,
           (long long)m->offset, (long long)ts);
    json_str(stdout, m->key, m->key ? (ssize_t)m->key_len : -1);
    printf(",\"value\":");
    json_str(stdout, m->payload, m->payload ? (ssize_t)m->len : -1);
    printf(",\"headers\":[");
    rd_kafka_headers_t *h = NULL;
    if (!rd_kafka_message_headers(m, &h) && h) {
        const char *name;
        const void *val;
        size_t vlen;
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &vlen); i++) {
            printf("%s{\"key\":", i ? "," : "");
            json_str(stdout, name, -1);
            printf(",\"value\":");
            json_str(stdout, val, val ? (ssize_t)vlen : -1);
            putchar('}');
        }
    }
    printf("]}\n");
}

/* Partition count of @topic, or -1 after an error line. With @group, also
 * whether the cluster serves group membership at all. */
static int32_t topic_partitions(const struct cli *c, const char *topic, bool group)
{
    static const int16_t group_apis[] = {10 /* FindCoordinator */, 11 /* JoinGroup */,
                                         14 /* SyncGroup */, 12 /* Heartbeat */,
                                         8 /* OffsetCommit */, 9 /* OffsetFetch */};
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return -1;
    if (group && raw_require_apis(rc, group_apis, 6)) {
        raw_close(rc);
        return -1;
    }
    struct kafka_metadata_response md;
    const char *names[1] = {topic};
    int32_t n = -1;
    if (raw_metadata(rc, names, 1, &md) == 0) {
        int16_t code = md.n_topics == 1 ? md.topics[0].error_code : 3;
        if (code)
            cli_err("%s: %s: %s", topic, cli_kerr_name(code),
                    code == 3 ? "the topic does not exist" : "metadata error");
        else
            n = md.topics[0].n_partitions;
    }
    raw_close(rc);
    return n;
}

int cli_consume_main(struct cli *c, int argc, char **argv)
{
    struct consume_opts o = {.ksep = "\t", .json = c->json};
    const char *offset = NULL, *group = NULL, *isolation = NULL;
    int64_t partition = -1, max = -1, timeout_ms = -1;
    bool from_beginning = false;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":o:P:g:n:K:h", consume_opts, NULL)) != -1) {
        switch (ch) {
        case OPT_FROM_BEGINNING: from_beginning = true; break;
        case 'o': offset = optarg; break;
        case 'P':
            if (cli_parse_i64(optarg, &partition) || partition < 0 || partition > INT32_MAX)
                return cli_usage_err("--partition must be a partition number, not '%s'", optarg);
            break;
        case 'g': group = optarg; break;
        case 'n':
            if (cli_parse_i64(optarg, &max) || max < 1)
                return cli_usage_err("--max-messages must be a positive number, not '%s'",
                                     optarg);
            break;
        case OPT_TIMEOUT:
            if (cli_parse_i64(optarg, &timeout_ms) || timeout_ms < 1 || timeout_ms > INT32_MAX)
                return cli_usage_err("--timeout-ms must be a positive number, not '%s'", optarg);
            break;
        case OPT_PRINT_KEY: o.print_key = true; break;
        case OPT_PRINT_OFFSET: o.print_offset = true; break;
        case OPT_PRINT_HEADERS: o.print_headers = true; break;
        case 'K': o.ksep = optarg; break;
        case OPT_ISOLATION:
            if (strcmp(optarg, "read_committed") && strcmp(optarg, "read_uncommitted"))
                return cli_usage_err("--isolation-level must be read_committed or "
                                     "read_uncommitted, not '%s'", optarg);
            isolation = optarg;
            break;
        case 'h': fputs(consume_usage, stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_err("%s needs a value", argv[optind - 1]);
        default: return cli_usage_err("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_err("name exactly one topic");
    const char *topic = argv[optind];
    int64_t start = from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
    bool at_time = false;
    if (offset) {
        if (from_beginning)
            return cli_usage_err("--offset and --from-beginning exclude each other");
        if (!strcmp(offset, "earliest") || !strcmp(offset, "beginning"))
            start = RD_KAFKA_OFFSET_BEGINNING;
        else if (!strcmp(offset, "latest") || !strcmp(offset, "end"))
            start = RD_KAFKA_OFFSET_END;
        else if (offset[0] == '@' && !cli_parse_i64(offset + 1, &start) && start >= 0)
            at_time = true;
        else if (cli_parse_i64(offset, &start) || start < 0)
            return cli_usage_err("--offset must be earliest, latest, an offset or @timestamp_ms, "
                                 "not '%s'", offset);
        if (group && (at_time || start >= 0))
            return cli_usage_err("with --group, --offset can only be earliest or latest (the "
                                 "group's committed offsets decide; see 'weir group "
                                 "reset-offsets')");
    }
    if (group && partition >= 0)
        return cli_usage_err("--partition and --group exclude each other");

    int32_t nparts = topic_partitions(c, topic, group != NULL);
    if (nparts < 0)
        return CLI_EXIT_FAIL;
    if (partition >= nparts) {
        cli_err("%s: partition %lld does not exist (the topic has %d)", topic,
                (long long)partition, nparts);
        return CLI_EXIT_FAIL;
    }

    char errstr[512];
    rd_kafka_conf_t *conf = cli_conf(c);
    if (!conf)
        return CLI_EXIT_FAIL;
    if ((group && (rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
                   rd_kafka_conf_set(conf, "auto.offset.reset",
                                     start == RD_KAFKA_OFFSET_BEGINNING ? "earliest" : "latest",
                                     errstr, sizeof(errstr)))) ||
        (isolation &&
         rd_kafka_conf_set(conf, "isolation.level", isolation, errstr, sizeof(errstr)))) {
        cli_err("%s", errstr);
        rd_kafka_conf_destroy(conf);
        return CLI_EXIT_FAIL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        cli_err("cannot create the consumer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return CLI_EXIT_FAIL;
    }

    /* With a group: the high-level consumer, which joins, commits and leaves.
     * Without one: the simple consumer reading every partition into one queue in
     * batches, as kcat -C does; no group coordinator is involved. */
    int rc = CLI_EXIT_OK;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(nparts);
    rd_kafka_queue_t *q = NULL;
    rd_kafka_topic_t *rkt = NULL;
    if (group) {
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_add(tl, topic, RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(rk, tl);
    } else {
        for (int32_t p = 0; p < nparts; p++)
            if (partition < 0 || p == partition)
                rd_kafka_topic_partition_list_add(tl, topic, p)->offset = start;
        if (at_time)
            err = rd_kafka_offsets_for_times(rk, tl, c->timeout_ms);
        q = rd_kafka_queue_new(rk);
        rkt = rd_kafka_topic_new(rk, topic, NULL);
        for (int i = 0; !err && i < tl->cnt; i++) {
            /* A timestamp after the last record: start at the end. */
            int64_t off = tl->elems[i].offset < 0 && at_time ? RD_KAFKA_OFFSET_END
                                                              : tl->elems[i].offset;
            if (tl->elems[i].err)
                err = tl->elems[i].err;
            else if (rd_kafka_consume_start_queue(rkt, tl->elems[i].partition, off, q))
                err = rd_kafka_last_error();
        }
    }
    if (err) {
        char b[512];
        cli_err("%s: %s", topic, cli_kerr(err, NULL, b, sizeof(b)));
        rd_kafka_topic_partition_list_destroy(tl);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        if (q)
            rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!isatty(STDOUT_FILENO))
        setvbuf(stdout, NULL, _IOFBF, 1 << 20);

    int64_t count = 0;
    struct timespec last, now;
    clock_gettime(CLOCK_MONOTONIC, &last);
    rd_kafka_message_t *batch[1024];
    while (!stop && (max < 0 || count < max)) {
        ssize_t n;
        if (group) {
            batch[0] = rd_kafka_consumer_poll(rk, 100);
            n = batch[0] ? 1 : 0;
        } else {
            size_t want = max < 0 || max - count > 1024 ? 1024 : (size_t)(max - count);
            n = rd_kafka_consume_batch_queue(q, 100, batch, want);
            if (n < 0)
                n = 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (n == 0) {
            if (timeout_ms > 0 && (now.tv_sec - last.tv_sec) * 1000 +
                                          (now.tv_nsec - last.tv_nsec) / 1000000 >= timeout_ms)
                break;
            /* Caught up: show what is buffered (a pipe's reader sees records
             * as they come, a fast copy still gets big writes). */
            fflush(stdout);
            continue;
        }
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !stop) {
                    char b[512];
                    cli_err("%s [%d]: %s", topic, m->partition,
                            cli_kerr(m->err, rd_kafka_message_errstr(m), b, sizeof(b)));
                    /* Errors that retrying cannot cure end the command. */
                    if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                        m->err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
                        m->err == RD_KAFKA_RESP_ERR__FATAL ||
                        m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                        m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
                        m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
                        rc = CLI_EXIT_FAIL;
                        stop = 1;
                    }
                }
            } else if (max < 0 || count < max) {
                last = now;
                if (o.json)
                    print_json(m);
                else
                    print_text(&o, m);
                count++;
            }
            rd_kafka_message_destroy(m);
        }
    }
    fflush(stdout);
    rd_kafka_topic_partition_list_destroy(tl);
    if (group) {
        /* Commits what was printed (auto-commit of the stored offsets) and
         * leaves the group before the session times out. */
        err = rd_kafka_consumer_close(rk);
        if (err) {
            char b[512];
            cli_err("%s: leaving group %s: %s", topic, group, cli_kerr(err, NULL, b, sizeof(b)));
            rc = CLI_EXIT_FAIL;
        }
    } else {
        for (int32_t p = 0; p < nparts; p++)
            if (partition < 0 || p == partition)
                rd_kafka_consume_stop(rkt, p);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_queue_destroy(q);
    }
    rd_kafka_destroy(rk);
    fprintf(stderr, "Processed a total of %lld messages\n", (long long)count);
    return rc;
}
