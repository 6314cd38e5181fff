/* Tests for broker/kafka's codec (kafka_codec.c, kafka_prim.c and the code
 * gen_kafka.py generates from the schemas):
 *  - the API table against the advertised-version table of the client reference;
 *  - request/response header versions and header decoding;
 *  - for every API, every version, request and response: random structs valid at
 *    that version survive encode -> decode -> compare, re-encode byte-identically;
 *  - every proper prefix of those encodings is refused, the reader untouched;
 *  - golden byte sequences written by hand from the protocol guide, so a bug
 *    shared by encoder and decoder cannot hide behind the round trip;
 *  - hostile counts and sizes fail without large allocations (arena cap);
 *  - tagged fields: unknown skipped, order and size enforced, defaults elided;
 *  - out-of-band records for sendfile. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/kafka_codec.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/kafka_msgs_test.h"
#include "common/arena.h"
#include "common/buf.h"

/* Big enough for any generated top-level struct. */
#define MSG_MAX 512

static buf_slice S(const char *s)
{
    buf_slice b = {(const uint8_t *)s, (int32_t)strlen(s)};
    return b;
}

static void assert_slice_str(buf_slice s, const char *want)
{
    assert_int_equal(s.len, (int32_t)strlen(want));
    assert_memory_equal(s.ptr, want, strlen(want));
}

static void assert_bytes(const buf_writer *w, const void *want, size_t n)
{
    assert_int_equal(buf_writer_error(w), 0);
    assert_int_equal(w->len, n);
    assert_memory_equal(w->data, want, n);
}

/* ---- the table -------------------------------------------------------------- */

struct expect_api {
    int16_t key, min, max, flex;
};

/* kafka-clients.md section 2: advertised min/max and Kafka's first flexible
 * version (Fetch starts at 4: message-set v0/v1 are not implemented). */
static const struct expect_api expected_apis[] = {
    {0, 0, 8, 9},  {1, 4, 12, 12}, {2, 0, 5, 6},  {3, 0, 9, 9},  {8, 0, 8, 8},
    {9, 0, 8, 6},  {10, 0, 4, 3},  {11, 0, 6, 6}, {12, 0, 4, 4}, {13, 0, 4, 4},
    {14, 0, 4, 4}, {15, 0, 5, 5},  {16, 0, 4, 3}, {18, 0, 3, 3}, {19, 0, 7, 5},
    {20, 0, 6, 4}, {21, 0, 2, 2},  {22, 0, 4, 2}, {23, 0, 4, 4}, {32, 0, 2, 4},
    {33, 0, 2, 2}, {35, 0, 4, 2}, {37, 0, 1, 2},  {42, 0, 2, 2}, {43, 0, 2, 2}, {44, 0, 1, 1}, {45, 0, 0, 0},
    {46, 0, 0, 0}, {47, 0, 0, 1},  {60, 0, 1, 0},
};

static void test_api_table_matches_reference_versions(void **state)
{
    (void)state;
    size_t n = sizeof(expected_apis) / sizeof(expected_apis[0]);
    assert_int_equal(kafka_api_table_len, n);
    for (size_t i = 0; i < n; i++) {
        const struct expect_api *x = &expected_apis[i];
        const struct kafka_api_info *api = kafka_api_lookup(x->key);
        assert_non_null(api);
        assert_ptr_equal(api, &kafka_api_table[i]); /* sorted by key */
        assert_int_equal(api->api_key, x->key);
        assert_int_equal(api->min_version, x->min);
        assert_int_equal(api->max_version, x->max);
        assert_int_equal(api->first_flexible, x->flex);
        assert_true(api->request_size <= MSG_MAX);
        assert_true(api->response_size <= MSG_MAX);
        assert_non_null(api->name);
    }
    assert_null(kafka_api_lookup(4));
    assert_null(kafka_api_lookup(-1));
    assert_null(kafka_api_lookup(1000));
    assert_string_equal(kafka_api_lookup(KAFKA_API_PRODUCE)->name, "Produce");
}

static void test_header_versions_follow_first_flexible(void **state)
{
    (void)state;
    assert_int_equal(kafka_request_header_version(KAFKA_API_METADATA, 8), 1);
    assert_int_equal(kafka_request_header_version(KAFKA_API_METADATA, 9), 2);
    assert_int_equal(kafka_response_header_version(KAFKA_API_METADATA, 8), 0);
    assert_int_equal(kafka_response_header_version(KAFKA_API_METADATA, 9), 1);
    assert_int_equal(kafka_request_header_version(KAFKA_API_PRODUCE, 8), 1);
    assert_int_equal(kafka_request_header_version(KAFKA_API_DESCRIBE_CLUSTER, 0), 2);
    assert_int_equal(kafka_response_header_version(KAFKA_API_DESCRIBE_CLUSTER, 0), 1);
    /* ApiVersions: request header follows the rule, response header never. */
    assert_int_equal(kafka_request_header_version(KAFKA_API_API_VERSIONS, 3), 2);
    assert_int_equal(kafka_response_header_version(KAFKA_API_API_VERSIONS, 3), 0);
    assert_int_equal(kafka_response_header_version(KAFKA_API_API_VERSIONS, 0), 0);
    /* unknown API or version */
    assert_int_equal(kafka_request_header_version(4, 0), -1);
    assert_int_equal(kafka_request_header_version(KAFKA_API_FETCH, 3), -1);
    assert_int_equal(kafka_request_header_version(KAFKA_API_FETCH, 13), -1);
    assert_int_equal(kafka_response_header_version(KAFKA_API_API_VERSIONS, 4), -1);
}

/* ---- round trips ------------------------------------------------------------ */

/* encode(m) -> decode -> equal(m) -> encode again gives the same bytes. Returns
 * the encoding in *ret (caller frees) for further use. */
static void round_trip_one(const struct kafka_api_info *api, int16_t v, bool response,
                           const void *m, struct arena *a, uint8_t **ret, size_t *ret_len)
{
    const struct kafka_test_api *t = kafka_test_lookup(api->api_key);
    buf_writer w;
    buf_writer_init(&w);
    int rc = response ? kafka_response_encode(&w, api->api_key, v, m, NULL)
                      : kafka_request_encode(&w, api->api_key, v, m);
    if (rc != 0)
        fail_msg("%s v%d %s: encode failed: %d", api->name, v, response ? "response" : "request",
                 rc);
    assert_int_equal(buf_writer_error(&w), 0);

    _Alignas(max_align_t) uint8_t back[MSG_MAX];
    buf_reader r;
    buf_reader_init(&r, w.data, w.len);
    rc = response ? kafka_response_decode(&r, api->api_key, v, a, back)
                  : kafka_request_decode(&r, api->api_key, v, a, back);
    if (rc != 0)
        fail_msg("%s v%d %s: decode failed: %d", api->name, v, response ? "response" : "request",
                 rc);
    assert_int_equal(buf_reader_remaining(&r), 0);
    bool eq = response ? t->response_equal(m, back, v) : t->request_equal(m, back, v);
    if (!eq)
        fail_msg("%s v%d %s: decoded struct differs", api->name, v,
                 response ? "response" : "request");

    buf_writer w2;
    buf_writer_init(&w2);
    rc = response ? kafka_response_encode(&w2, api->api_key, v, back, NULL)
                  : kafka_request_encode(&w2, api->api_key, v, back);
    assert_int_equal(rc, 0);
    assert_int_equal(w2.len, w.len);
    assert_memory_equal(w2.data, w.data, w.len);
    buf_writer_deinit(&w2);
    assert_int_equal(buf_writer_steal(&w, ret, ret_len), 0);
}

/* Every proper prefix must fail, leave the reader alone and not write *ret. */
static void truncations_fail(const struct kafka_api_info *api, int16_t v, bool response,
                             const uint8_t *data, size_t len, struct arena *a)
{
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
        assert_non_null(copy);
        memcpy(copy, data, cut);
        buf_reader r;
        buf_reader_init(&r, copy, cut);
        _Alignas(max_align_t) uint8_t out[MSG_MAX];
        memset(out, 0xa5, sizeof(out));
        int rc = response ? kafka_response_decode(&r, api->api_key, v, a, out)
                          : kafka_request_decode(&r, api->api_key, v, a, out);
        if (rc != -ENODATA)
            fail_msg("%s v%d %s cut at %zu of %zu: %d", api->name, v,
                     response ? "response" : "request", cut, len, rc);
        assert_int_equal(r.pos, 0);
        for (size_t i = 0; i < sizeof(out); i++)
            assert_int_equal(out[i], 0xa5);
        free(copy);
        arena_reset(a);
    }
}

static void round_trip_api(const struct kafka_api_info *api, bool response, int seeds,
                           bool truncate)
{
    const struct kafka_test_api *t = kafka_test_lookup(api->api_key);
    assert_non_null(t);
    struct arena fill_arena, dec_arena;
    arena_init(&fill_arena, 0, 0);
    arena_init(&dec_arena, 0, 0);
    for (int16_t v = api->min_version; v <= api->max_version; v++) {
        for (int seed = 0; seed < seeds; seed++) {
            uint64_t rng = 0x1234567ull * (uint64_t)(seed + 1) + (uint64_t)v * 977 +
                           (uint64_t)api->api_key * 131 + response;
            _Alignas(max_align_t) uint8_t m[MSG_MAX];
            if (response)
                t->response_fill(m, v, &fill_arena, &rng);
            else
                t->request_fill(m, v, &fill_arena, &rng);
            uint8_t *enc;
            size_t len;
            round_trip_one(api, v, response, m, &dec_arena, &enc, &len);
            if (truncate)
                truncations_fail(api, v, response, enc, len, &dec_arena);
            free(enc);
            arena_reset(&fill_arena);
            arena_reset(&dec_arena);
        }
        /* The all-defaults struct round-trips too. */
        _Alignas(max_align_t) uint8_t d[MSG_MAX];
        assert_int_equal(response ? kafka_response_init(api->api_key, d)
                                  : kafka_request_init(api->api_key, d),
                         0);
        uint8_t *enc;
        size_t len;
        round_trip_one(api, v, response, d, &dec_arena, &enc, &len);
        free(enc);
        arena_reset(&dec_arena);
    }
    arena_deinit(&fill_arena);
    arena_deinit(&dec_arena);
}

static void test_every_request_version_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < kafka_api_table_len; i++)
        round_trip_api(&kafka_api_table[i], false, 200, false);
}

static void test_every_response_version_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < kafka_api_table_len; i++)
        round_trip_api(&kafka_api_table[i], true, 200, false);
}

static void test_every_truncation_is_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < kafka_api_table_len; i++) {
        round_trip_api(&kafka_api_table[i], false, 4, true);
        round_trip_api(&kafka_api_table[i], true, 4, true);
    }
}

/* ---- golden bytes ----------------------------------------------------------- */

static void test_golden_api_versions_v0_request_with_header(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x12,             /* api_key 18 */
        0x00, 0x00,             /* api_version 0 */
        0x00, 0x00, 0x00, 0x2a, /* correlation_id 42 */
        0x00, 0x07, 'r',  'd',  'k', 'a', 'f', 'k', 'a',
        /* v0 body: empty */
    };
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_request_header h;
    assert_int_equal(kafka_request_header_decode(&r, &h), 0);
    assert_int_equal(h.api_key, 18);
    assert_int_equal(h.api_version, 0);
    assert_int_equal(h.correlation_id, 42);
    assert_int_equal(h.header_version, 1);
    assert_slice_str(h.client_id, "rdkafka");
    struct arena a;
    arena_init(&a, 0, 4096);
    struct kafka_api_versions_request req;
    assert_int_equal(kafka_api_versions_request_decode(&r, 0, &a, &req), 0);
    assert_int_equal(buf_reader_remaining(&r), 0);

    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_request_header_encode(&w, &h), 0);
    assert_int_equal(kafka_api_versions_request_encode(&w, 0, &req), 0);
    assert_bytes(&w, in, sizeof(in));
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

static void test_golden_api_versions_v0_response(void **state)
{
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x07,             /* response header v0: correlation_id 7 */
        0x00, 0x00,                         /* error_code */
        0x00, 0x00, 0x00, 0x02,             /* api_keys: 2 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x08, /* Produce 0-8 */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, /* ApiVersions 0-3 */
    };
    struct kafka_api_versions_response m;
    kafka_api_versions_response_init(&m);
    struct kafka_api_versions_response_api_version keys[2] = {{0, 0, 8}, {18, 0, 3}};
    m.n_api_keys = 2;
    m.api_keys = keys;
    m.throttle_time_ms = 99; /* not in v0: must not be written */
    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_response_header_encode(&w, KAFKA_API_API_VERSIONS, 0, 7), 0);
    assert_int_equal(kafka_api_versions_response_encode(&w, 0, &m, NULL), 0);
    assert_bytes(&w, want, sizeof(want));

    struct arena a;
    arena_init(&a, 0, 4096);
    buf_reader r;
    buf_reader_init(&r, want, sizeof(want));
    int32_t corr;
    assert_int_equal(kafka_response_header_decode(&r, KAFKA_API_API_VERSIONS, 0, &corr), 0);
    assert_int_equal(corr, 7);
    struct kafka_api_versions_response back;
    assert_int_equal(kafka_api_versions_response_decode(&r, 0, &a, &back), 0);
    assert_int_equal(back.n_api_keys, 2);
    assert_int_equal(back.api_keys[1].api_key, 18);
    assert_int_equal(back.api_keys[1].max_version, 3);
    assert_int_equal(back.throttle_time_ms, 0); /* default */
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

static void test_golden_api_versions_v3_request_compact_strings_and_tags(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, /* key 18, v3, corr 1 */
        0x00, 0x03, 'c',  'l',  'i',                    /* client_id: int16 length even in v2 */
        0x00,                                           /* header tag buffer: none */
        0x05, 'w',  'e',  'i',  'r',                    /* compact string len+1 */
        0x04, '1',  '.',  '0',                          /* compact string */
        0x01, 0x07, 0x02, 0xaa, 0xbb,                   /* body tags: unknown tag 7, 2 bytes */
    };
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_request_header h;
    assert_int_equal(kafka_request_header_decode(&r, &h), 0);
    assert_int_equal(h.header_version, 2);
    assert_slice_str(h.client_id, "cli");
    assert_int_equal(r.pos, 14);
    struct arena a;
    arena_init(&a, 0, 4096);
    struct kafka_api_versions_request req;
    assert_int_equal(kafka_api_versions_request_decode(&r, 3, &a, &req), 0);
    assert_int_equal(buf_reader_remaining(&r), 0);
    assert_slice_str(req.client_software_name, "weir");
    assert_slice_str(req.client_software_version, "1.0");

    /* Re-encoding drops the unknown tagged field. */
    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_api_versions_request_encode(&w, 3, &req), 0);
    static const uint8_t body[] = {0x05, 'w', 'e', 'i', 'r', 0x04, '1', '.', '0', 0x00};
    assert_bytes(&w, body, sizeof(body));
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

static void test_golden_api_versions_v3_response_with_tagged_field(void **state)
{
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00,                                     /* error_code */
        0x02,                                           /* compact array: 1 element */
        0x00, 0x03, 0x00, 0x00, 0x00, 0x09, 0x00,       /* Metadata 0-9, no tags */
        0x00, 0x00, 0x00, 0x00,                         /* throttle_time_ms */
        0x01,                                           /* one tagged field */
        0x01, 0x08,                                     /* tag 1 finalized_features_epoch */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, /* 256 */
    };
    struct kafka_api_versions_response m;
    kafka_api_versions_response_init(&m);
    assert_int_equal(m.finalized_features_epoch, -1);
    struct kafka_api_versions_response_api_version key = {3, 0, 9};
    m.n_api_keys = 1;
    m.api_keys = &key;
    m.finalized_features_epoch = 256;
    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_api_versions_response_encode(&w, 3, &m, NULL), 0);
    assert_bytes(&w, want, sizeof(want));

    /* At the default the tagged field is not written at all. */
    m.finalized_features_epoch = -1;
    buf_writer_reset(&w);
    assert_int_equal(kafka_api_versions_response_encode(&w, 3, &m, NULL), 0);
    assert_int_equal(w.len, sizeof(want) - 10);
    assert_int_equal(w.data[w.len - 1], 0x00);

    struct arena a;
    arena_init(&a, 0, 4096);
    buf_reader r;
    buf_reader_init(&r, want, sizeof(want));
    struct kafka_api_versions_response back;
    assert_int_equal(kafka_api_versions_response_decode(&r, 3, &a, &back), 0);
    assert_int_equal(back.finalized_features_epoch, 256);
    assert_int_equal(back.n_supported_features, 0);
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

static void test_golden_metadata_v1_null_topics_and_v0_empty(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 4096);
    static const uint8_t v1_all[] = {0xff, 0xff, 0xff, 0xff};
    buf_reader r;
    buf_reader_init(&r, v1_all, sizeof(v1_all));
    struct kafka_metadata_request req;
    assert_int_equal(kafka_metadata_request_decode(&r, 1, &a, &req), 0);
    assert_int_equal(req.n_topics, -1);
    assert_null(req.topics);
    assert_true(req.allow_auto_topic_creation); /* v4+ field keeps its default */

    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_metadata_request_encode(&w, 1, &req), 0);
    assert_bytes(&w, v1_all, sizeof(v1_all));
    /* v0 has no null array: encoding refuses, decoding refuses */
    buf_writer_reset(&w);
    assert_int_equal(kafka_metadata_request_encode(&w, 0, &req), -EINVAL);
    buf_reader_init(&r, v1_all, sizeof(v1_all));
    assert_int_equal(kafka_metadata_request_decode(&r, 0, &a, &req), -EBADMSG);
    assert_int_equal(r.pos, 0);

    static const uint8_t v0_two[] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 'a', 0x00, 0x02, 'b', 'c'};
    buf_reader_init(&r, v0_two, sizeof(v0_two));
    assert_int_equal(kafka_metadata_request_decode(&r, 0, &a, &req), 0);
    assert_int_equal(req.n_topics, 2);
    assert_slice_str(req.topics[0].name, "a");
    assert_slice_str(req.topics[1].name, "bc");
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

/* DescribeLogDirs as Kafka's DescribeLogDirsRequest/Response.json: v2+
 * flexible, top-level error_code from v3, total/usable bytes from v4. */
static void test_golden_describe_log_dirs_v1_and_v4(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 4096);
    /* v2 request, null topics (every partition): compact null, no tags */
    static const uint8_t v2_all[] = {0x00, 0x00};
    buf_reader r;
    buf_reader_init(&r, v2_all, sizeof(v2_all));
    struct kafka_describe_log_dirs_request req;
    assert_int_equal(kafka_describe_log_dirs_request_decode(&r, 2, &a, &req), 0);
    assert_int_equal(req.n_topics, -1);

    struct kafka_describe_log_dirs_response_partition part = {
        .partition_index = 1, .partition_size = 5, .offset_lag = 0, .is_future_key = false};
    struct kafka_describe_log_dirs_response_topic topic = {
        .name = S("t"), .n_partitions = 1, .partitions = &part};
    struct kafka_describe_log_dirs_response_result res = {
        .log_dir = S("/d"), .n_topics = 1, .topics = &topic, .total_bytes = 100,
        .usable_bytes = 50};
    struct kafka_describe_log_dirs_response resp;
    kafka_describe_log_dirs_response_init(&resp);
    resp.n_results = 1;
    resp.results = &res;
    static const uint8_t v4[] = {
        0, 0, 0, 0, /* throttle */ 0, 0, /* error_code */ 2, /* results */
        0, 0, 3, '/', 'd', /* error, log_dir */ 2, 2, 't', /* topics, name */
        2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* partition */
        0, /* topic tags */ 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 50, 0, /* result */
        0};
    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_describe_log_dirs_response_encode(&w, 4, &resp, NULL), 0);
    assert_bytes(&w, v4, sizeof(v4));
    /* v1: no error_code, no sizes of the dir, classic strings and arrays */
    static const uint8_t v1[] = {
        0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, '/', 'd', 0, 0, 0, 1, 0, 1, 't',
        0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    buf_writer_reset(&w);
    assert_int_equal(kafka_describe_log_dirs_response_encode(&w, 1, &resp, NULL), 0);
    assert_bytes(&w, v1, sizeof(v1));
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

static void test_golden_metadata_v9_request(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x01, 0x00, /* key 3, v9, corr 256 */
        0xff, 0xff,                                     /* client_id null */
        0x00,                                           /* header tags */
        0x03,                                           /* topics: compact array of 2 */
        0x04, 'f',  'o',  'o',  0x00,                   /* name, topic tags */
        0x01, 0x00,                                     /* name "", topic tags */
        0x00,                                           /* allow_auto_topic_creation */
        0x01,                                           /* include_cluster_authorized_ops */
        0x00,                                           /* include_topic_authorized_ops */
        0x00,                                           /* body tags */
    };
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_request_header h;
    assert_int_equal(kafka_request_header_decode(&r, &h), 0);
    assert_int_equal(h.correlation_id, 256);
    assert_int_equal(h.client_id.len, -1);
    assert_int_equal(h.header_version, 2);
    struct arena a;
    arena_init(&a, 0, 4096);
    struct kafka_metadata_request req;
    assert_int_equal(kafka_metadata_request_decode(&r, 9, &a, &req), 0);
    assert_int_equal(buf_reader_remaining(&r), 0);
    assert_int_equal(req.n_topics, 2);
    assert_slice_str(req.topics[0].name, "foo");
    assert_slice_str(req.topics[1].name, "");
    assert_false(req.allow_auto_topic_creation);
    assert_true(req.include_cluster_authorized_operations);
    assert_false(req.include_topic_authorized_operations);

    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_request_header_encode(&w, &h), 0);
    assert_int_equal(kafka_metadata_request_encode(&w, 9, &req), 0);
    assert_bytes(&w, in, sizeof(in));
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

static void test_golden_produce_v7_request(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x05,    /* Produce v7, corr 5 */
        0x00, 0x01, 'p',                                   /* client_id "p", no header tags */
        0xff, 0xff,                                        /* transactional_id null */
        0xff, 0xff,                                        /* acks -1 */
        0x00, 0x00, 0x75, 0x30,                            /* timeout_ms 30000 */
        0x00, 0x00, 0x00, 0x01,                            /* topic_data: 1 */
        0x00, 0x04, 't',  'e',  's',  't',                 /* name */
        0x00, 0x00, 0x00, 0x01,                            /* partition_data: 1 */
        0x00, 0x00, 0x00, 0x03,                            /* index 3 */
        0x00, 0x00, 0x00, 0x05, 1,    2,    3,    4,    5, /* records: 5 bytes, opaque here */
    };
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_request_header h;
    assert_int_equal(kafka_request_header_decode(&r, &h), 0);
    assert_int_equal(h.api_key, 0);
    assert_int_equal(h.api_version, 7);
    assert_int_equal(h.header_version, 1);
    struct arena a;
    arena_init(&a, 0, 4096);
    struct kafka_produce_request req;
    assert_int_equal(kafka_produce_request_decode(&r, 7, &a, &req), 0);
    assert_int_equal(buf_reader_remaining(&r), 0);
    assert_int_equal(req.transactional_id.len, -1);
    assert_int_equal(req.acks, -1);
    assert_int_equal(req.timeout_ms, 30000);
    assert_int_equal(req.n_topic_data, 1);
    assert_slice_str(req.topic_data[0].name, "test");
    assert_int_equal(req.topic_data[0].n_partition_data, 1);
    assert_int_equal(req.topic_data[0].partition_data[0].index, 3);
    buf_slice rec = req.topic_data[0].partition_data[0].records;
    assert_int_equal(rec.len, 5);
    /* borrowed from the input, not copied */
    assert_ptr_equal(rec.ptr, in + sizeof(in) - 5);

    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_request_header_encode(&w, &h), 0);
    assert_int_equal(kafka_produce_request_encode(&w, 7, &req), 0);
    assert_bytes(&w, in, sizeof(in));
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

static void test_golden_fetch_v12_response_tagged_partition_fields(void **state)
{
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x00,                /* throttle_time_ms */
        0x00, 0x00,                            /* error_code */
        0x00, 0x00, 0x00, 0x00,                /* session_id */
        0x02,                                  /* responses: 1 */
        0x02, 't',                             /* topic "t" */
        0x02,                                  /* partitions: 1 */
        0x00, 0x00, 0x00, 0x01,                /* partition_index */
        0x00, 0x00,                            /* error_code */
        0,    0,    0,    0,    0, 0, 0, 0x0a, /* high_watermark 10 */
        0,    0,    0,    0,    0, 0, 0, 0x0a, /* last_stable_offset 10 */
        0,    0,    0,    0,    0, 0, 0, 0x00, /* log_start_offset 0 */
        0x00,                                  /* aborted_transactions: null */
        0xff, 0xff, 0xff, 0xff,                /* preferred_read_replica -1 */
        0x03, 0xde, 0xad,                      /* records: 2 bytes */
        0x01,                                  /* one tagged field: */
        0x01, 0x09,                            /* tag 1 current_leader, 9 bytes */
        0x00, 0x00, 0x00, 0x02,                /*   leader_id 2 */
        0x00, 0x00, 0x00, 0x05,                /*   leader_epoch 5 */
        0x00,                                  /*   its tags */
        0x00,                                  /* topic tags */
        0x00,                                  /* body tags */
    };
    struct kafka_fetch_response m;
    kafka_fetch_response_init(&m);
    struct kafka_fetch_response_topic topic = {0};
    struct kafka_fetch_response_partition part;
    memset(&part, 0, sizeof(part));
    part.partition_index = 1;
    part.high_watermark = 10;
    part.last_stable_offset = 10;
    part.log_start_offset = 0;
    part.diverging_epoch.epoch = -1;
    part.diverging_epoch.end_offset = -1;
    part.current_leader.leader_id = 2;
    part.current_leader.leader_epoch = 5;
    part.snapshot_id.end_offset = -1;
    part.snapshot_id.epoch = -1;
    part.n_aborted_transactions = -1;
    part.preferred_read_replica = -1;
    static const uint8_t recs[] = {0xde, 0xad};
    part.records.ptr = recs;
    part.records.len = 2;
    topic.topic = S("t");
    topic.n_partitions = 1;
    topic.partitions = &part;
    m.n_responses = 1;
    m.responses = &topic;
    buf_writer w;
    buf_writer_init(&w);
    assert_int_equal(kafka_fetch_response_encode(&w, 12, &m, NULL), 0);
    assert_bytes(&w, want, sizeof(want));

    struct arena a;
    arena_init(&a, 0, 4096);
    buf_reader r;
    buf_reader_init(&r, want, sizeof(want));
    struct kafka_fetch_response back;
    assert_int_equal(kafka_fetch_response_decode(&r, 12, &a, &back), 0);
    const struct kafka_fetch_response_partition *bp = &back.responses[0].partitions[0];
    assert_int_equal(bp->current_leader.leader_id, 2);
    assert_int_equal(bp->current_leader.leader_epoch, 5);
    assert_int_equal(bp->diverging_epoch.epoch, -1); /* absent: default */
    assert_int_equal(bp->snapshot_id.end_offset, -1);
    assert_int_equal(bp->n_aborted_transactions, -1);
    buf_writer_deinit(&w);
    arena_deinit(&a);
}

/* ---- hostile input ---------------------------------------------------------- */

static void test_huge_array_count_with_short_body_fails_before_allocating(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 1 << 20);
    static const uint8_t in[] = {0x7f, 0xff, 0xff, 0xff, 0x00, 0x01, 'x'};
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_metadata_request req;
    assert_int_equal(kafka_metadata_request_decode(&r, 1, &a, &req), -ENODATA);
    assert_int_equal(arena_used(&a), 0);

    /* Produce: INT32_MAX partitions inside one topic */
    static const uint8_t p[] = {0xff, 0xff, 0x00, 0x01, 0,    0,    0,    0, 0, 0, 0, 1,
                                0x00, 0x01, 't',  0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    buf_reader_init(&r, p, sizeof(p));
    struct kafka_produce_request preq;
    assert_int_equal(kafka_produce_request_decode(&r, 3, &a, &preq), -ENODATA);
    assert_true(arena_reserved(&a) <= 8192);
    arena_deinit(&a);
}

static void test_compact_count_max_varint_is_refused(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 1 << 20);
    /* uvarint 0xffffffff: count 0xfffffffe, beyond any int32 cap */
    static const uint8_t in[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x00, 0x00};
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_metadata_request req;
    assert_int_equal(kafka_metadata_request_decode(&r, 9, &a, &req), -EMSGSIZE);
    assert_int_equal(arena_used(&a), 0);
    /* a varint running past 32 bits is malformed */
    static const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0x7f, 0x00};
    buf_reader_init(&r, bad, sizeof(bad));
    assert_int_equal(kafka_metadata_request_decode(&r, 9, &a, &req), -EBADMSG);
    arena_deinit(&a);
}

static void test_tagged_field_size_2_31_is_refused(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 1 << 20);
    static const uint8_t in[] = {
        0x01, 0x01,                               /* two empty compact strings */
        0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x08, /* 1 field, tag 0, size 2^31 */
        0x00, 0x00,
    };
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_api_versions_request req;
    assert_int_equal(kafka_api_versions_request_decode(&r, 3, &a, &req), -ENODATA);
    /* a tag count larger than the bytes could hold */
    static const uint8_t many[] = {0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    buf_reader_init(&r, many, sizeof(many));
    assert_int_equal(kafka_api_versions_request_decode(&r, 3, &a, &req), -ENODATA);
    assert_int_equal(arena_used(&a), 0);
    arena_deinit(&a);
}

static void test_arena_cap_stops_amplification(void **state)
{
    (void)state;
    /* 1000 topics of two bytes each pass the "fits in what remains" check, but
     * each becomes a 16-byte struct: a 4 KiB arena refuses, a bigger one takes it. */
    size_t len = 4 + 1000 * 2;
    uint8_t *in = calloc(1, len);
    assert_non_null(in);
    buf_store_be32(in, 1000);
    struct arena a;
    arena_init(&a, 0, 4096);
    buf_reader r;
    buf_reader_init(&r, in, len);
    struct kafka_metadata_request req;
    assert_int_equal(kafka_metadata_request_decode(&r, 1, &a, &req), -EMSGSIZE);
    assert_int_equal(r.pos, 0);
    assert_true(arena_reserved(&a) <= 4096);
    arena_deinit(&a);
    arena_init(&a, 0, 64 * 1024);
    assert_int_equal(kafka_metadata_request_decode(&r, 1, &a, &req), 0);
    assert_int_equal(req.n_topics, 1000);
    assert_int_equal(req.topics[999].name.len, 0);
    arena_deinit(&a);
    free(in);
}

static void test_null_in_non_nullable_string_is_refused(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 4096);
    static const uint8_t in[] = {0x00, 0x00, 0x00, 0x01, 0xff, 0xff};
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_metadata_request req;
    assert_int_equal(kafka_metadata_request_decode(&r, 1, &a, &req), -EBADMSG);
    /* negative lengths other than -1 */
    static const uint8_t neg[] = {0x00, 0x00, 0x00, 0x01, 0xff, 0xfe};
    buf_reader_init(&r, neg, sizeof(neg));
    assert_int_equal(kafka_metadata_request_decode(&r, 1, &a, &req), -EBADMSG);
    /* but transactional_id may be null and records too */
    static const uint8_t prod[] = {0xff, 0xff, 0x00, 0x01, 0,    0,    0,    0,    0,
                                   0,    0,    1,    0x00, 0x01, 't',  0,    0,    0,
                                   1,    0,    0,    0,    0,    0xff, 0xff, 0xff, 0xff};
    buf_reader_init(&r, prod, sizeof(prod));
    struct kafka_produce_request preq;
    assert_int_equal(kafka_produce_request_decode(&r, 3, &a, &preq), 0);
    assert_int_equal(preq.topic_data[0].partition_data[0].records.len, -1);
    arena_deinit(&a);
}

static void test_tagged_fields_order_and_size_are_enforced(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 4096);
    struct kafka_api_versions_response m;
    buf_reader r;
    /* error_code, empty api_keys, throttle, then tags */
    static const uint8_t out_of_order[] = {0, 0, 0x01, 0, 0, 0, 0, 0x02, 0x05, 0x00, 0x01, 0x00};
    buf_reader_init(&r, out_of_order, sizeof(out_of_order));
    assert_int_equal(kafka_api_versions_response_decode(&r, 3, &a, &m), -EBADMSG);
    /* tag 1 (int64) declared with 4 bytes: malformed, not truncated */
    static const uint8_t short_field[] = {0, 0, 0x01, 0, 0, 0, 0, 0x01, 0x01, 0x04, 0, 0, 0, 1};
    buf_reader_init(&r, short_field, sizeof(short_field));
    assert_int_equal(kafka_api_versions_response_decode(&r, 3, &a, &m), -EBADMSG);
    /* tag 3 (bool) declared with 2 bytes: one left over */
    static const uint8_t long_field[] = {0, 0, 0x01, 0, 0, 0, 0, 0x01, 0x03, 0x02, 1, 0};
    buf_reader_init(&r, long_field, sizeof(long_field));
    assert_int_equal(kafka_api_versions_response_decode(&r, 3, &a, &m), -EBADMSG);
    /* tag 3 right, unknown tag 9 skipped */
    static const uint8_t ok[] = {0, 0, 0x01, 0, 0, 0, 0, 0x02, 0x03, 0x01, 1, 0x09, 0x01, 0x77};
    buf_reader_init(&r, ok, sizeof(ok));
    assert_int_equal(kafka_api_versions_response_decode(&r, 3, &a, &m), 0);
    assert_true(m.zk_migration_ready);
    assert_int_equal(buf_reader_remaining(&r), 0);
    arena_deinit(&a);
}

static void test_request_header_of_unknown_api_is_still_read(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x7f, 0x00, 0x00, 0x05, 0, 0, 0, 9, 0x00, 0x00, 0xee};
    buf_reader r;
    buf_reader_init(&r, in, sizeof(in));
    struct kafka_request_header h;
    assert_int_equal(kafka_request_header_decode(&r, &h), 0);
    assert_int_equal(h.api_key, 0x7f00);
    assert_int_equal(h.correlation_id, 9);
    assert_int_equal(h.header_version, 1);
    assert_int_equal(h.client_id.len, 0);
    assert_int_equal(r.pos, 10);
    struct arena a;
    arena_init(&a, 0, 4096);
    uint8_t out[MSG_MAX];
    assert_int_equal(kafka_request_decode(&r, h.api_key, 5, &a, out), -ENOTSUP);
    /* ApiVersions v4 (newer than us): the caller answers UNSUPPORTED_VERSION */
    static const uint8_t av4[] = {0x00, 0x12, 0x00, 0x04, 0, 0, 0, 1, 0xff, 0xff};
    buf_reader_init(&r, av4, sizeof(av4));
    assert_int_equal(kafka_request_header_decode(&r, &h), 0);
    assert_false(kafka_api_has_version(kafka_api_lookup(h.api_key), h.api_version));
    assert_int_equal(kafka_request_decode(&r, h.api_key, h.api_version, &a, out), -ENOTSUP);
    /* truncated headers */
    for (size_t cut = 0; cut < 10; cut++) {
        buf_reader_init(&r, in, cut);
        assert_int_equal(kafka_request_header_decode(&r, &h), -ENODATA);
        assert_int_equal(r.pos, 0);
    }
    /* a flexible header whose tag buffer is missing */
    static const uint8_t flex_cut[] = {0x00, 0x03, 0x00, 0x09, 0, 0, 0, 1, 0xff, 0xff};
    buf_reader_init(&r, flex_cut, sizeof(flex_cut));
    assert_int_equal(kafka_request_header_decode(&r, &h), -ENODATA);
    arena_deinit(&a);
}

/* ---- encoding errors and out-of-band records -------------------------------- */

static void test_encode_refuses_invalid_structs(void **state)
{
    (void)state;
    buf_writer w;
    buf_writer_init(&w);
    struct kafka_metadata_response m;
    kafka_metadata_response_init(&m);
    m.n_brokers = 2; /* but no array */
    assert_int_equal(kafka_metadata_response_encode(&w, 1, &m, NULL), -EINVAL);
    m.n_brokers = 0;
    struct kafka_metadata_response_topic t;
    memset(&t, 0, sizeof(t));
    t.name.ptr = NULL;
    t.name.len = -1; /* topic names are never null here */
    m.n_topics = 1;
    m.topics = &t;
    assert_int_equal(kafka_metadata_response_encode(&w, 1, &m, NULL), -EINVAL);
    /* rack is nullable from v1: a null rack is fine */
    struct kafka_metadata_response_broker b = {1, S("h"), 9092, {NULL, -1}};
    m.n_topics = 0;
    m.n_brokers = 1;
    m.brokers = &b;
    buf_writer_reset(&w);
    assert_int_equal(kafka_metadata_response_encode(&w, 1, &m, NULL), 0);
    /* unknown version */
    assert_int_equal(kafka_metadata_response_encode(&w, 10, &m, NULL), -ENOTSUP);
    assert_int_equal(kafka_response_encode(&w, 4, 0, &m, NULL), -ENOTSUP);
    buf_writer_deinit(&w);
}

struct splice_log {
    size_t offsets[4];
    const buf_slice *fields[4];
    int n;
};

static int log_splice(void *opaque, size_t offset, const buf_slice *field)
{
    struct splice_log *l = opaque;
    l->offsets[l->n] = offset;
    l->fields[l->n] = field;
    l->n++;
    return 0;
}

static void test_out_of_band_records_call_the_hook(void **state)
{
    (void)state;
    struct kafka_fetch_response m;
    kafka_fetch_response_init(&m);
    struct kafka_fetch_response_partition parts[2];
    for (int i = 0; i < 2; i++) {
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].partition_index = i;
        parts[i].diverging_epoch.epoch = -1;
        parts[i].diverging_epoch.end_offset = -1;
        parts[i].current_leader.leader_id = -1;
        parts[i].current_leader.leader_epoch = -1;
        parts[i].snapshot_id.end_offset = -1;
        parts[i].snapshot_id.epoch = -1;
        parts[i].records.ptr = NULL;
        parts[i].records.len = 1000 + i; /* lives in a log file */
    }
    struct kafka_fetch_response_topic topic = {S("t"), 2, parts};
    m.n_responses = 1;
    m.responses = &topic;

    for (int16_t v = 4; v <= 12; v++) {
        struct splice_log log = {.n = 0};
        struct kafka_enc_hook hook = {log_splice, &log};
        buf_writer w;
        buf_writer_init(&w);
        assert_int_equal(kafka_fetch_response_encode(&w, v, &m, &hook), 0);
        assert_int_equal(log.n, 2);
        assert_ptr_equal(log.fields[0], &parts[0].records);
        assert_ptr_equal(log.fields[1], &parts[1].records);
        /* the length prefix right before each splice point */
        if (v >= 12) {
            /* uvarint 1001 = 0xe9 0x07 */
            assert_int_equal(w.data[log.offsets[0] - 2], 0xe9);
            assert_int_equal(w.data[log.offsets[0] - 1], 0x07);
        } else {
            assert_int_equal(buf_load_be32(w.data + log.offsets[0] - 4), 1000);
            assert_int_equal(buf_load_be32(w.data + log.offsets[1] - 4), 1001);
        }
        /* Splicing the bytes in gives a message that decodes. */
        size_t total = w.len + 2001;
        uint8_t *full = malloc(total);
        assert_non_null(full);
        memcpy(full, w.data, log.offsets[0]);
        memset(full + log.offsets[0], 0x11, 1000);
        memcpy(full + log.offsets[0] + 1000, w.data + log.offsets[0],
               log.offsets[1] - log.offsets[0]);
        memset(full + log.offsets[1] + 1000, 0x22, 1001);
        memcpy(full + log.offsets[1] + 2001, w.data + log.offsets[1], w.len - log.offsets[1]);
        struct arena a;
        arena_init(&a, 0, 1 << 16);
        buf_reader r;
        buf_reader_init(&r, full, total);
        struct kafka_fetch_response back;
        assert_int_equal(kafka_fetch_response_decode(&r, v, &a, &back), 0);
        assert_int_equal(buf_reader_remaining(&r), 0);
        assert_int_equal(back.responses[0].partitions[1].records.len, 1001);
        assert_int_equal(back.responses[0].partitions[1].records.ptr[0], 0x22);
        arena_deinit(&a);
        free(full);

        /* without a hook it is a caller bug */
        buf_writer_reset(&w);
        assert_int_equal(kafka_fetch_response_encode(&w, v, &m, NULL), -EINVAL);
        buf_writer_deinit(&w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_table_matches_reference_versions),
        cmocka_unit_test(test_header_versions_follow_first_flexible),
        cmocka_unit_test(test_every_request_version_round_trips),
        cmocka_unit_test(test_every_response_version_round_trips),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_golden_api_versions_v0_request_with_header),
        cmocka_unit_test(test_golden_api_versions_v0_response),
        cmocka_unit_test(test_golden_api_versions_v3_request_compact_strings_and_tags),
        cmocka_unit_test(test_golden_api_versions_v3_response_with_tagged_field),
        cmocka_unit_test(test_golden_metadata_v1_null_topics_and_v0_empty),
        cmocka_unit_test(test_golden_metadata_v9_request),
        cmocka_unit_test(test_golden_describe_log_dirs_v1_and_v4),
        cmocka_unit_test(test_golden_produce_v7_request),
        cmocka_unit_test(test_golden_fetch_v12_response_tagged_partition_fields),
        cmocka_unit_test(test_huge_array_count_with_short_body_fails_before_allocating),
        cmocka_unit_test(test_compact_count_max_varint_is_refused),
        cmocka_unit_test(test_tagged_field_size_2_31_is_refused),
        cmocka_unit_test(test_arena_cap_stops_amplification),
        cmocka_unit_test(test_null_in_non_nullable_string_is_refused),
        cmocka_unit_test(test_tagged_fields_order_and_size_are_enforced),
        cmocka_unit_test(test_request_header_of_unknown_api_is_still_read),
        cmocka_unit_test(test_encode_refuses_invalid_structs),
        cmocka_unit_test(test_out_of_band_records_call_the_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
