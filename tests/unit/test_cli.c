/* Tests for cli/: the helpers every command shares (util.c: JSON strings,
 * tables, key=value, integers, datetimes) and raw.c, the one request/response
 * helper over the generated codec, against a fake broker thread on 127.0.0.1
 * that decodes what it gets and answers with canned bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/kafka/kafka_codec.h"
#include "broker/kafka/kafka_msgs.h"
#include "cli/cli.h"
#include "cli/raw.h"
#include "common/arena.h"
#include "common/buf.h"

static char *json_of(const char *s, ssize_t len)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    json_str(f, s, len);
    fclose(f);
    return out;
}

static void test_json_str_escapes_and_keeps_utf8(void **state)
{
    char *j = json_of("a\"b\\c\n\t\r\x01 ünï 🙂", -1);
    assert_string_equal(j, "\"a\\\"b\\\\c\\n\\t\\r\\u0001 ünï 🙂\"");
    free(j);
    j = json_of(NULL, -1);
    assert_string_equal(j, "null");
    free(j);
    /* embedded NUL with an explicit length */
    j = json_of("x\0y", 3);
    assert_string_equal(j, "\"x\\u0000y\"");
    free(j);
}

static void test_json_str_writes_invalid_utf8_as_code_points(void **state)
{
    /* a lone continuation byte, a truncated sequence, an overlong encoding and
     * a surrogate are not UTF-8: each byte becomes \u00XX, the output valid JSON */
    char *j = json_of("\xff\x80 \xe2\x82 \xc0\xaf \xed\xa0\x80", -1);
    assert_string_equal(j, "\"\\u00ff\\u0080 \\u00e2\\u0082 \\u00c0\\u00af "
                           "\\u00ed\\u00a0\\u0080\"");
    free(j);
}

static void test_split_kv(void **state)
{
    char *k;
    const char *v;
    assert_int_equal(cli_split_kv("retention.ms=1=2", &k, &v), 0);
    assert_string_equal(k, "retention.ms");
    assert_string_equal(v, "1=2");
    free(k);
    assert_int_equal(cli_split_kv("a=", &k, &v), 0);
    assert_string_equal(v, "");
    free(k);
    assert_int_equal(cli_split_kv("noequals", &k, &v), -EINVAL);
    assert_int_equal(cli_split_kv("=value", &k, &v), -EINVAL);
}

static void test_parse_i64(void **state)
{
    int64_t v = 5;
    assert_int_equal(cli_parse_i64("-100", &v), 0);
    assert_int_equal(v, -100);
    assert_int_equal(cli_parse_i64("9223372036854775807", &v), 0);
    assert_int_equal(v, INT64_MAX);
    v = 5;
    assert_int_equal(cli_parse_i64("9223372036854775808", &v), -EINVAL);
    assert_int_equal(cli_parse_i64("12x", &v), -EINVAL);
    assert_int_equal(cli_parse_i64("", &v), -EINVAL);
    assert_int_equal(v, 5); /* untouched on failure */
}

static void test_parse_datetime(void **state)
{
    int64_t ms;
    assert_int_equal(cli_parse_datetime("1970-01-01T00:00:00", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(cli_parse_datetime("2026-01-01T00:00:00.5Z", &ms), 0);
    assert_int_equal(ms, 1767225600500LL);
    assert_int_equal(cli_parse_datetime("2026-01-01T02:00:00.123+02:00", &ms), 0);
    assert_int_equal(ms, 1767225600123LL);
    assert_int_equal(cli_parse_datetime("2025-12-31T23:00:00-01:00", &ms), 0);
    assert_int_equal(ms, 1767225600000LL);
    assert_int_equal(cli_parse_datetime("2026-01-01", &ms), -EINVAL);
    assert_int_equal(cli_parse_datetime("2026-01-01T00:00:00 junk", &ms), -EINVAL);
}

static void test_table_aligns_columns(void **state)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    struct table *t = table_new(3, "GROUP", "LAG", "CLIENT-ID");
    table_row(t, "billing-long", "3", "c1");
    table_row(t, "g", NULL, "client-2");
    table_print(t, f);
    table_free(t);
    table_free(NULL);
    fclose(f);
    assert_string_equal(out, "GROUP         LAG  CLIENT-ID\n"
                             "billing-long  3    c1\n"
                             "g                  client-2\n");
    free(out);
}

/* What @fn printed on stdout while it ran, as a malloc'd string. */
static char *stdout_of(void (*fn)(const struct cli *), const struct cli *c)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    fn(c);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    long n = ftell(tmp);
    assert_true(n >= 0);
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    rewind(tmp);
    assert_int_equal(fread(s, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return s;
}

/* Two rows with every kind of member, and a nested empty listing. */
static void print_listing(const struct cli *c)
{
    struct out *o = out_new(c, 2, "NAME", "LAG");
    out_row(o);
    out_str(o, "name", "a\"b");
    out_int_or_null(o, "lag", 7);
    out_bool(o, "simple", true);
    out_cells(o, "a\"b", "7");
    out_row(o);
    out_strn(o, "name", "xyz", 2);
    out_int_or_null(o, "lag", -1);
    out_str(o, "host", NULL);
    out_raw(o, "ids", "[1,2]");
    out_raw(o, "parts", NULL);
    struct out *inner = out_new(c, 0);
    out_end(inner, "");
    out_cells(o, "xy", "-");
    out_end(o, "\n");
}

static void test_out_listing_as_json_and_as_table(void **state)
{
    struct cli c = {.json = true};
    char *s = stdout_of(print_listing, &c);
    assert_string_equal(s, "[{\"name\":\"a\\\"b\",\"lag\":7,\"simple\":true},"
                           "{\"name\":\"xy\",\"lag\":null,\"host\":null,\"ids\":[1,2],"
                           "\"parts\":[]}]\n");
    free(s);
    c.json = false;
    s = stdout_of(print_listing, &c);
    assert_string_equal(s, "NAME  LAG\n"
                           "a\"b   7\n"
                           "xy    -\n");
    free(s);
}

static void print_empty(const struct cli *c)
{
    out_end(out_new(c, 1, "NAME"), "}\n");
}

static void test_out_empty_listing(void **state)
{
    struct cli c = {.json = true};
    char *s = stdout_of(print_empty, &c);
    assert_string_equal(s, "[]}\n");
    free(s);
    c.json = false;
    s = stdout_of(print_empty, &c);
    assert_string_equal(s, "NAME\n");
    free(s);
}

/* ---- raw.c against a fake broker ---------------------------------------- */

enum fake_mode { FAKE_OK, FAKE_WRONG_CORRELATION, FAKE_TRUNCATED, FAKE_CLOSE };

struct fake {
    int lfd, port;
    enum fake_mode mode;
    pthread_t th;
    /* what the request said */
    int16_t api_key, api_version;
    bool auto_create;
    char topic[64];
    char client_id[16];
};

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        assert_true(r > 0);
        b += r;
        n -= (size_t)r;
    }
}

static void *fake_main(void *arg)
{
    struct fake *fk = arg;
    int fd = accept(fk->lfd, NULL, NULL);
    assert_true(fd >= 0);
    uint8_t szb[4];
    read_all(fd, szb, 4);
    uint32_t size = ntohl(*(uint32_t *)szb);
    uint8_t *req = malloc(size);
    read_all(fd, req, size);
    buf_reader r;
    buf_reader_init(&r, req, size);
    struct kafka_request_header h;
    assert_int_equal(kafka_request_header_decode(&r, &h), 0);
    fk->api_key = h.api_key;
    fk->api_version = h.api_version;
    snprintf(fk->client_id, sizeof(fk->client_id), "%.*s", h.client_id.len,
             (const char *)h.client_id.ptr);
    struct arena a;
    arena_init(&a, 4096, 1 << 20);
    struct kafka_metadata_request m;
    assert_int_equal(kafka_request_decode(&r, h.api_key, h.api_version, &a, &m), 0);
    assert_int_equal(buf_reader_remaining(&r), 0);
    fk->auto_create = m.allow_auto_topic_creation;
    if (m.n_topics == 1)
        snprintf(fk->topic, sizeof(fk->topic), "%.*s", m.topics[0].name.len,
                 (const char *)m.topics[0].name.ptr);
    if (fk->mode == FAKE_CLOSE) {
        close(fd);
        goto out;
    }

    int32_t replicas[3] = {1, 2, 3}, isr[2] = {1, 2}, offline[1] = {3};
    struct kafka_metadata_response_partition part = {
        .partition_index = 0, .leader_id = 1, .leader_epoch = 7,
        .n_replica_nodes = 3, .replica_nodes = replicas,
        .n_isr_nodes = 2, .isr_nodes = isr,
        .n_offline_replicas = 1, .offline_replicas = offline,
    };
    struct kafka_metadata_response_topic topic = {
        .name = {(const uint8_t *)"orders", 6}, .n_partitions = 1, .partitions = &part,
        .topic_authorized_operations = INT32_MIN,
    };
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp);
    resp.cluster_id = (buf_slice){(const uint8_t *)"cid", 3};
    resp.controller_id = 1;
    resp.n_topics = 1;
    resp.topics = &topic;
    buf_writer w;
    buf_writer_init(&w);
    buf_write_i32(&w, 0);
    int32_t corr = h.correlation_id + (fk->mode == FAKE_WRONG_CORRELATION);
    assert_int_equal(kafka_response_header_encode(&w, h.api_key, h.api_version, corr), 0);
    assert_int_equal(kafka_response_encode(&w, h.api_key, h.api_version, &resp, NULL), 0);
    size_t body = w.len - 4;
    if (fk->mode == FAKE_TRUNCATED)
        w.len -= 5; /* a size prefix that says what the bytes say, minus a tail */
    *(uint32_t *)w.data = htonl((uint32_t)(fk->mode == FAKE_TRUNCATED ? body - 5 : body));
    write_all(fd, w.data, w.len);
    buf_writer_deinit(&w);
    close(fd);
out:
    arena_deinit(&a);
    free(req);
    return NULL;
}

static void fake_start(struct fake *fk, enum fake_mode mode)
{
    memset(fk, 0, sizeof(*fk));
    fk->mode = mode;
    fk->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fk->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fk->lfd, 1), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fk->lfd, (struct sockaddr *)&sa, &sl);
    fk->port = ntohs(sa.sin_port);
    pthread_create(&fk->th, NULL, fake_main, fk);
}

static void fake_stop(struct fake *fk)
{
    pthread_join(fk->th, NULL);
    close(fk->lfd);
}

static int metadata_from(struct fake *fk, struct raw_conn **ret_rc,
                         struct kafka_metadata_response *md)
{
    char brokers[128];
    /* an unreachable first address is skipped */
    snprintf(brokers, sizeof(brokers), "127.0.0.1:1,PLAINTEXT://127.0.0.1:%d", fk->port);
    struct cli c = {.brokers = brokers, .timeout_ms = 5000};
    assert_int_equal(raw_open(&c, ret_rc), 0);
    const char *names[1] = {"orders"};
    return raw_metadata(*ret_rc, names, 1, md);
}

static void test_raw_metadata_round_trip(void **state)
{
    struct fake fk;
    fake_start(&fk, FAKE_OK);
    struct raw_conn *rc;
    struct kafka_metadata_response md;
    assert_int_equal(metadata_from(&fk, &rc, &md), 0);
    fake_stop(&fk);
    assert_int_equal(fk.api_key, KAFKA_API_METADATA);
    assert_int_equal(fk.api_version, 9);
    assert_false(fk.auto_create); /* the CLI never creates topics by asking */
    assert_string_equal(fk.topic, "orders");
    assert_string_equal(fk.client_id, "weir");
    assert_int_equal(md.n_topics, 1);
    assert_string_equal(raw_str(md.topics[0].name), "orders");
    assert_string_equal(raw_str(md.cluster_id), "cid");
    const struct kafka_metadata_response_partition *p = &md.topics[0].partitions[0];
    assert_int_equal(p->leader_epoch, 7);
    assert_int_equal(p->n_isr_nodes, 2);
    assert_int_equal(p->n_offline_replicas, 1);
    assert_int_equal(p->offline_replicas[0], 3);
    raw_close(rc);
    raw_close(NULL);
}

static void test_raw_refuses_bad_responses(void **state)
{
    static const enum fake_mode modes[] = {FAKE_WRONG_CORRELATION, FAKE_TRUNCATED, FAKE_CLOSE};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct fake fk;
        fake_start(&fk, modes[i]);
        struct raw_conn *rc;
        struct kafka_metadata_response md;
        assert_true(metadata_from(&fk, &rc, &md) < 0);
        fake_stop(&fk);
        raw_close(rc);
    }
}

static void test_raw_open_fails_when_nothing_answers(void **state)
{
    struct cli c = {.brokers = "127.0.0.1:1,localhost:2", .timeout_ms = 1000};
    struct raw_conn *rc = (void *)0x1;
    assert_true(raw_open(&c, &rc) < 0);
    assert_ptr_equal(rc, (void *)0x1); /* not written on failure */
    assert_false(raw_probe("127.0.0.1", 1, 500));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_str_escapes_and_keeps_utf8),
        cmocka_unit_test(test_json_str_writes_invalid_utf8_as_code_points),
        cmocka_unit_test(test_split_kv),
        cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_parse_datetime),
        cmocka_unit_test(test_table_aligns_columns),
        cmocka_unit_test(test_out_listing_as_json_and_as_table),
        cmocka_unit_test(test_out_empty_listing),
        cmocka_unit_test(test_raw_metadata_round_trip),
        cmocka_unit_test(test_raw_refuses_bad_responses),
        cmocka_unit_test(test_raw_open_fails_when_nothing_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
