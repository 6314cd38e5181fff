/* produce: `weir produce TOPIC` — one record per input line, after
 * kafka-console-producer.sh (parse.key/key.separator as --key-separator). Waits
 * for every delivery; any failed delivery makes the exit status 1. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/raw.h"

static const char produce_usage[] =
    "Usage: weir produce TOPIC [FLAGS]\n"
    "\n"
    "Writes one record per line of stdin (or --file); waits until every record is\n"
    "acknowledged. On a terminal, inputs that take longer than a second show a\n"
    "progress line (records, MB, rate) on stderr.\n"
    "\n"
    "  -f, --file PATH            read PATH instead of stdin\n"
    "  -K, --key-separator SEP    each line is KEY SEP VALUE (Kafka's parse.key=true,\n"
    "                             key.separator); a line without SEP is an error\n"
    "  -P, --partition N          write to partition N (default: the partitioner)\n"
    "      --acks all|-1|0|1      acknowledgement level (default all)\n"
    "  -z, --compression CODEC    none, gzip, snappy, lz4, zstd (default none)\n"
    "  -H, --header KEY=VALUE     add this header to every record (repeatable)\n"
    "      --idempotent           idempotent producer (no duplicates on retry)\n"
    "\n"
    "Examples:\n"
    "  printf 'user1:hello\\nuser2:world\\n' | weir produce orders --key-separator :\n"
    "  weir produce orders --file events.txt -z zstd -H source=import\n";

enum { OPT_ACKS = 1000, OPT_IDEMPOTENT };

static const struct option produce_opts[] = {
    {"file", required_argument, NULL, 'f'},
    {"key-separator", required_argument, NULL, 'K'},
    {"partition", required_argument, NULL, 'P'},
    {"acks", required_argument, NULL, OPT_ACKS},
    {"compression", required_argument, NULL, 'z'},
    {"compression-codec", required_argument, NULL, 'z'},
    {"header", required_argument, NULL, 'H'},
    {"idempotent", no_argument, NULL, OPT_IDEMPOTENT},
    {"help", no_argument, NULL, 'h'},
    {0},
};

#define MAX_HEADERS 64

struct produce_state {
    uint64_t delivered, failed;
    char first_error[512];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct produce_state *st = opaque;
    if (m->err) {
        if (st->failed++ == 0) {
            char b[400];
            snprintf(st->first_error, sizeof(st->first_error), "%s",
                     cli_kerr(m->err, rd_kafka_message_errstr(m), b, sizeof(b)));
        }
    } else {
        st->delivered++;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(uint64_t recs, uint64_t bytes, double secs, bool final)
{
    double mb = (double)bytes / 1e6;
    fprintf(stderr, "\rweir produce: %llu records, %.1f MB, %.1f MB/s, %.0f records/s%s",
            (unsigned long long)recs, mb, secs > 0 ? mb / secs : 0.0,
            secs > 0 ? (double)recs / secs : 0.0, final ? "\n" : "   ");
}

/* Produce one line; retries while the local queue is full. 0 or -1. */
static int produce_line(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const char *topic,
                        int32_t partition, const char *line, size_t len, const char *ksep,
                        size_t ksep_len, const char *const *hk, const char *const *hv, int nh,
                        uint64_t lineno)
{
    const char *key = NULL, *val = line;
    size_t klen = 0, vlen = len;
    if (ksep) {
        const char *s = memmem(line, len, ksep, ksep_len);
        if (!s) {
            cli_err("line %llu: no key separator '%s' found", (unsigned long long)lineno, ksep);
            return -1;
        }
        key = line;
        klen = (size_t)(s - line);
        val = s + ksep_len;
        vlen = len - klen - ksep_len;
    }
    for (;;) {
        rd_kafka_resp_err_t err;
        if (nh == 0) {
            err = rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)val, vlen, key,
                                   klen, NULL)
                      ? rd_kafka_last_error()
                      : RD_KAFKA_RESP_ERR_NO_ERROR;
        } else {
            rd_kafka_headers_t *hdrs = rd_kafka_headers_new((size_t)nh);
            for (int i = 0; i < nh; i++)
                rd_kafka_header_add(hdrs, hk[i], -1, hv[i], -1);
            err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_VALUE((void *)val, vlen),
                                    RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_HEADERS(hdrs),
                                    RD_KAFKA_V_END);
            if (err)
                rd_kafka_headers_destroy(hdrs);
        }
        if (!err)
            return 0;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 10);
            continue;
        }
        char b[512];
        cli_err("line %llu: %s", (unsigned long long)lineno, cli_kerr(err, NULL, b, sizeof(b)));
        return -1;
    }
}

/* 0 if @topic exists (and @partition is in range), else -1 after an error line. */
static int check_topic(const struct cli *c, const char *topic, int32_t partition)
{
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return -1;
    struct kafka_metadata_response md;
    const char *names[1] = {topic};
    int r = raw_metadata(rc, names, 1, &md);
    if (r == 0 && (md.n_topics != 1 || md.topics[0].error_code)) {
        int16_t code = md.n_topics == 1 ? md.topics[0].error_code : 3;
        cli_err("%s: %s: %s", topic, cli_kerr_name(code),
                code == 3 ? "the topic does not exist" : "metadata error");
        r = -1;
    } else if (r == 0 && partition >= md.topics[0].n_partitions) {
        cli_err("%s: partition %d does not exist (the topic has %d)", topic, partition,
                md.topics[0].n_partitions);
        r = -1;
    }
    raw_close(rc);
    return r;
}

int cli_produce_main(struct cli *c, int argc, char **argv)
{
    const char *file = NULL, *ksep = NULL, *acks = "all", *compression = NULL;
    const char *hk[MAX_HEADERS], *hv[MAX_HEADERS];
    char *hkeys[MAX_HEADERS];
    int nh = 0;
    int64_t partition = RD_KAFKA_PARTITION_UA;
    bool idempotent = false;
    optind = 1;
    opterr = 0;
    int ch, rc = CLI_EXIT_FAIL;
    while ((ch = getopt_long(argc, argv, ":f:K:P:z:H:h", produce_opts, NULL)) != -1) {
        switch (ch) {
        case 'f': file = optarg; break;
        case 'K':
            if (!*optarg)
                return cli_usage_err("--key-separator must not be empty");
            ksep = optarg;
            break;
        case 'P':
            if (cli_parse_i64(optarg, &partition) || partition < 0 || partition > INT32_MAX)
                return cli_usage_err("--partition must be a partition number, not '%s'", optarg);
            break;
        case OPT_ACKS:
            if (strcmp(optarg, "all") && strcmp(optarg, "-1") && strcmp(optarg, "0") &&
                strcmp(optarg, "1"))
                return cli_usage_err("--acks must be all, -1, 0 or 1, not '%s'", optarg);
            acks = optarg;
            break;
        case 'z': compression = optarg; break;
        case 'H': {
            char *k;
            const char *v;
            if (cli_split_kv(optarg, &k, &v))
                return cli_usage_err("--header %s: expected key=value", optarg);
            if (nh == MAX_HEADERS)
                return cli_usage_err("at most %d headers", MAX_HEADERS);
            hkeys[nh] = k;
            hk[nh] = k;
            hv[nh++] = v;
            break;
        }
        case OPT_IDEMPOTENT: idempotent = true; break;
        case 'h': fputs(produce_usage, stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_err("%s needs a value", argv[optind - 1]);
        default: return cli_usage_err("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_err("name exactly one topic");
    const char *topic = argv[optind];

    int fd = STDIN_FILENO;
    if (file && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
        cli_err("%s: %s", file, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (check_topic(c, topic, (int32_t)partition))
        goto out_fd;

    char errstr[512];
    struct produce_state st = {0};
    rd_kafka_conf_t *conf = cli_conf(c);
    if (!conf)
        goto out_fd;
    if (rd_kafka_conf_set(conf, "acks", acks, errstr, sizeof(errstr)) ||
        (compression &&
         rd_kafka_conf_set(conf, "compression.codec", compression, errstr, sizeof(errstr))) ||
        (idempotent &&
         rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)))) {
        cli_err("%s", errstr);
        rd_kafka_conf_destroy(conf);
        goto out_fd;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        cli_err("cannot create the producer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        goto out_fd;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

    bool tty = isatty(STDERR_FILENO), shown = false;
    double start = now_s(), last = start;
    uint64_t lines = 0, bytes = 0, bad = 0;
    size_t cap = 1 << 20, have = 0, ksep_len = ksep ? strlen(ksep) : 0;
    char *buf = malloc(cap);
    bool eof = false;
    while (!eof || have) {
        if (!eof) {
            if (have == cap) {
                char *nb = realloc(buf, cap * 2);
                if (!nb) {
                    cli_err("a line longer than %zu bytes", cap);
                    bad++;
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            ssize_t n = read(fd, buf + have, cap - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                cli_err("%s: %s", file ? file : "stdin", strerror(errno));
                bad++;
                break;
            }
            if (n == 0)
                eof = true;
            have += (size_t)n;
        }
        size_t pos = 0;
        for (;;) {
            char *nl = memchr(buf + pos, '\n', have - pos);
            size_t end;
            if (nl)
                end = (size_t)(nl - buf);
            else if (eof && pos < have)
                end = have; /* a last line without a newline */
            else
                break;
            lines++;
            bytes += end - pos;
            if (produce_line(rk, rkt, topic, (int32_t)partition, buf + pos, end - pos, ksep,
                             ksep_len, hk, hv, nh, lines))
                bad++;
            pos = nl ? end + 1 : end;
            if ((lines & 1023) == 0) {
                rd_kafka_poll(rk, 0);
                double t = now_s();
                if (tty && t - start > 1.0 && t - last > 0.25) {
                    progress(lines, bytes, t - start, false);
                    shown = true;
                    last = t;
                }
            }
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        if (eof && have == 0)
            break;
    }
    free(buf);
    while (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_poll(rk, 100);
        double t = now_s();
        if (tty && t - start > 1.0 && t - last > 0.25) {
            progress(lines, bytes, t - start, false);
            shown = true;
            last = t;
        }
    }
    double secs = now_s() - start;
    if (shown)
        progress(lines, bytes, secs, true);
    if (st.failed)
        cli_err("%s: %llu of %llu records were not delivered; first failure: %s", topic,
                (unsigned long long)st.failed, (unsigned long long)(st.failed + st.delivered),
                st.first_error);
    if (c->json) {
        printf("{\"topic\":");
        json_str(stdout, topic, -1);
        printf(",\"records\":%llu,\"bytes\":%llu,\"failed\":%llu,\"seconds\":%.3f}\n",
               (unsigned long long)st.delivered, (unsigned long long)bytes,
               (unsigned long long)(st.failed + bad), secs);
    }
    rc = st.failed || bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
out_fd:
    if (fd != STDIN_FILENO)
        close(fd);
    for (int i = 0; i < nh; i++)
        free(hkeys[i]);
    return rc;
}
