/* fuzz_kafka_request: the generated Kafka message decoders on arbitrary bytes.
 *
 * Input: byte 0 picks the API (index into the codec's table, modulo its size),
 * byte 1 the version (modulo the API's version count, from its minimum), byte 2
 * the mode: bit 0 set decodes a response body instead of a request body (the
 * CLI is a Kafka client), bit 1 set first parses a request header from the
 * rest. The remaining bytes are the body.
 *
 * Besides "no crash, no sanitizer report, bounded memory" (the arena is capped
 * at 8x the input + 64 KiB) it checks properties that must hold for every input:
 *  - errors are only the documented ones, and a failed decode leaves the reader
 *    where it was;
 *  - whatever decodes re-encodes; the re-encoding decodes to an equal struct
 *    (compared field by field at that version), consuming all of it, and encoding
 *    that struct again gives the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/kafka_codec.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/kafka_msgs_test.h"
#include "common/arena.h"
#include "common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() is a crash to libFuzzer and to the replay test alike */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define MSG_MAX 512

static int documented_error(int rc)
{
    return rc == -ENODATA || rc == -EBADMSG || rc == -EMSGSIZE;
}

static int decode(buf_reader *r, int16_t key, int16_t v, bool response, struct arena *a, void *m)
{
    return response ? kafka_response_decode(r, key, v, a, m)
                    : kafka_request_decode(r, key, v, a, m);
}

static int encode(buf_writer *w, int16_t key, int16_t v, bool response, const void *m)
{
    return response ? kafka_response_encode(w, key, v, m, NULL)
                    : kafka_request_encode(w, key, v, m);
}

static void check_body(const struct kafka_api_info *api, int16_t v, bool response,
                       const uint8_t *body, size_t len, struct arena *a)
{
    const struct kafka_test_api *t = kafka_test_lookup(api->api_key);
    CHECK(t);
    _Alignas(max_align_t) uint8_t m1[MSG_MAX], m2[MSG_MAX];
    CHECK(api->request_size <= MSG_MAX && api->response_size <= MSG_MAX);

    buf_reader r;
    buf_reader_init(&r, body, len);
    int rc = decode(&r, api->api_key, v, response, a, m1);
    if (rc < 0) {
        CHECK(documented_error(rc));
        CHECK(r.pos == 0);
        return;
    }
    CHECK(r.pos <= len);

    buf_writer w1, w2;
    buf_writer_init(&w1);
    buf_writer_init(&w2);
    /* A decoded struct is valid at its version, so it must encode. */
    CHECK(encode(&w1, api->api_key, v, response, m1) == 0);
    /* Unknown tagged fields are dropped and defaults elided, so the encoding can
     * only be shorter than what was consumed. */
    CHECK(w1.len <= r.pos);

    buf_reader r2;
    buf_reader_init(&r2, w1.data ? w1.data : (const uint8_t *)"", w1.len);
    CHECK(decode(&r2, api->api_key, v, response, a, m2) == 0);
    CHECK(buf_reader_remaining(&r2) == 0);
    CHECK(response ? t->response_equal(m1, m2, v) : t->request_equal(m1, m2, v));

    CHECK(encode(&w2, api->api_key, v, response, m2) == 0);
    CHECK(w2.len == w1.len);
    CHECK(w1.len == 0 || memcmp(w1.data, w2.data, w1.len) == 0);
    buf_writer_deinit(&w1);
    buf_writer_deinit(&w2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const struct kafka_api_info *api = &kafka_api_table[data[0] % kafka_api_table_len];
    int span = api->max_version - api->min_version + 1;
    int16_t v = (int16_t)(api->min_version + data[1] % span);
    bool response = data[2] & 1;
    bool with_header = data[2] & 2;
    const uint8_t *body = data + 3;
    size_t len = size - 3;

    struct arena a;
    size_t cap = 8 * size + 64 * 1024;
    arena_init(&a, 0, cap);

    if (with_header) {
        buf_reader r;
        buf_reader_init(&r, body, len);
        struct kafka_request_header h;
        int rc = kafka_request_header_decode(&r, &h);
        if (rc < 0) {
            CHECK(documented_error(rc));
            CHECK(r.pos == 0);
            arena_deinit(&a);
            return 0;
        }
        CHECK(h.header_version == 1 || h.header_version == 2);
        CHECK(h.client_id.len >= -1);
        /* The header names the body's API; unknown ones end here, as a
         * broker would close the connection or answer UNSUPPORTED_VERSION. */
        const struct kafka_api_info *named = kafka_api_lookup(h.api_key);
        if (!kafka_api_has_version(named, h.api_version)) {
            CHECK(h.header_version == 1);
            arena_deinit(&a);
            return 0;
        }
        CHECK(h.header_version == kafka_request_header_version(h.api_key, h.api_version));
        /* Re-encoding the header gives what was read, minus unknown tags. */
        buf_writer w;
        buf_writer_init(&w);
        CHECK(kafka_request_header_encode(&w, &h) == 0);
        CHECK(w.len <= r.pos);
        CHECK(memcmp(w.data, body, h.header_version == 2 ? w.len - 1 : w.len) == 0);
        buf_writer_deinit(&w);
        api = named;
        v = h.api_version;
        body += r.pos;
        len -= r.pos;
    }

    check_body(api, v, response, body, len, &a);
    CHECK(arena_reserved(&a) <= cap);
    arena_deinit(&a);
    return 0;
}
