/* fuzz_kafka_conn: a Kafka connection's inbound byte stream, taken the way
 * broker/kafka/server.c takes it — framing with kserver_frame_check(), the
 * request header with kafka_request_header_decode(), then the routing and body
 * decoding of dispatch_request() (dispatch_find, version range, codec decode in a
 * capped per-request arena) — without sockets or handlers.
 *
 * Input: the bytes a client wrote on one connection (the corpus holds streams
 * captured from kcat and confluent-kafka). The stream is consumed twice: once
 * as one read, once in reads of pseudo-random sizes (1 byte up to a few KiB),
 * as TCP may deliver it. Properties checked besides "no crash, no sanitizer
 * report, bounded memory":
 *  - the framing never hands out a request longer than what is buffered, and
 *    asks for more bytes only when the size is valid and the request incomplete;
 *  - how the stream is split into reads changes nothing: the same requests,
 *    with the same outcome, end the connection at the same point;
 *  - a request the broker would serve decodes only with the documented errors,
 *    and never reads past its frame. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_codec.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/arena.h"
#include "common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* Small, so that the size check's reject path is reachable from short inputs;
 * real brokers use socket.request.max.bytes (100 MiB by default). */
#define MAX_REQUEST_BYTES (1 << 20)
#define MAX_EVENTS        4096

enum outcome {
    OUT_SERVED = 1,      /* decoded and handed to a handler */
    OUT_VERSIONS_UNSUP,  /* ApiVersions answered UNSUPPORTED_VERSION */
    OUT_CLOSE_UNKNOWN,   /* unknown API or version: close */
    OUT_CLOSE_UNDECODED, /* body does not decode: close */
    OUT_CLOSE_HEADER,    /* malformed header: close */
    OUT_CLOSE_SIZE,      /* bad size prefix: close */
};

struct trace {
    uint32_t ev[MAX_EVENTS]; /* outcome << 24 | api key bits, per request */
    size_t n;
    size_t consumed; /* bytes taken from the stream */
    bool closed;
};

static void record(struct trace *t, enum outcome o, int16_t key)
{
    if (t->n < MAX_EVENTS)
        t->ev[t->n] = ((uint32_t)o << 24) | (uint16_t)key;
    t->n++;
}

/* One request, as dispatch_request() routes and decodes it. Returns true when
 * the connection stays open. */
static bool handle_frame(struct trace *t, const uint8_t *frame, size_t len)
{
    buf_reader rd;
    buf_reader_init(&rd, frame, len);
    struct kafka_request_header hdr;
    int rc = kafka_request_header_decode(&rd, &hdr);
    if (rc != 0) {
        CHECK(rc == -ENODATA || rc == -EBADMSG || rc == -EMSGSIZE);
        record(t, OUT_CLOSE_HEADER, 0);
        return false;
    }
    CHECK(rd.pos <= len);
    int16_t key = hdr.api_key, ver = hdr.api_version;
    const struct dispatch_entry *e = dispatch_find(key);
    const struct kafka_api_info *api = kafka_api_lookup(key);
    bool known = e && api && ver >= e->min_version && ver <= e->max_version &&
                 kafka_api_has_version(api, ver);
    if (!known) {
        bool versions = key == KAFKA_API_API_VERSIONS;
        record(t, versions ? OUT_VERSIONS_UNSUP : OUT_CLOSE_UNKNOWN, key);
        return versions;
    }
    /* The header's flexibility must match the version it names. */
    CHECK(hdr.header_version == kafka_request_header_version(key, ver));

    struct arena a;
    size_t cap = 8 * len + 64 * 1024;
    arena_init(&a, 0, cap);
    bool open = false;
    void *body = arena_zalloc(&a, api->request_size, 8);
    CHECK(body);
    size_t before = rd.pos;
    rc = kafka_request_decode(&rd, key, ver, &a, body);
    if (rc == 0) {
        CHECK(rd.pos >= before && rd.pos <= len);
        record(t, OUT_SERVED, key);
        open = true;
    } else {
        CHECK(rc == -ENODATA || rc == -EBADMSG || rc == -EMSGSIZE || rc == -ENOMEM);
        CHECK(rd.pos == before);
        record(t, OUT_CLOSE_UNDECODED, key);
    }
    CHECK(arena_reserved(&a) <= cap);
    arena_deinit(&a);
    return open;
}

/* conn_read_cb's loop over what is buffered; returns the bytes it consumed. */
static size_t drain(struct trace *t, const uint8_t *buf, size_t avail)
{
    size_t at = 0;
    while (!t->closed) {
        size_t left = avail - at;
        if (left < 4)
            break;
        size_t flen = 0;
        int rc = kserver_frame_check(buf + at, left, MAX_REQUEST_BYTES, &flen);
        int32_t declared = (int32_t)buf_load_be32(buf + at);
        if (rc == -EMSGSIZE) {
            CHECK(declared < 0 || declared > MAX_REQUEST_BYTES);
            record(t, OUT_CLOSE_SIZE, 0);
            t->closed = true;
            break;
        }
        CHECK(declared >= 0 && declared <= MAX_REQUEST_BYTES);
        if (rc == -EAGAIN) {
            CHECK(left - 4 < (size_t)declared);
            break;
        }
        CHECK(rc == 0 && flen == (size_t)declared && flen <= left - 4);
        /* A copy of exactly the frame, as the server mallocs one: ASan sees any
         * read past it. */
        uint8_t *frame = malloc(flen ? flen : 1);
        CHECK(frame);
        memcpy(frame, buf + at + 4, flen);
        at += 4 + flen;
        if (!handle_frame(t, frame, flen))
            t->closed = true;
        free(frame);
    }
    return at;
}

/* Feed the stream in reads of the given sizes; the "input buffer" holds what
 * was read but not yet consumed, as the bufferevent's does. */
static void run(struct trace *t, const uint8_t *data, size_t size, bool split)
{
    memset(t, 0, sizeof(*t));
    uint32_t rng = (uint32_t)size * 2654435761u + 1;
    size_t start = 0, end = 0;
    while (end < size && !t->closed) {
        size_t step = size - end;
        if (split) {
            rng = rng * 1103515245u + 12345u;
            uint32_t x = rng >> 16;
            step = (x & 3) == 0 ? 1 : (x & 3) == 1 ? (x % 7) + 1 : (x % 4096) + 1;
            if (step > size - end)
                step = size - end;
        }
        end += step;
        start += drain(t, data + start, end - start);
        t->consumed = start;
    }
}

static struct trace whole, pieces;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(&whole, data, size, false);
    run(&pieces, data, size, true);
    CHECK(whole.n == pieces.n);
    CHECK(whole.closed == pieces.closed);
    CHECK(whole.consumed == pieces.consumed);
    size_t n = whole.n < MAX_EVENTS ? whole.n : MAX_EVENTS;
    CHECK(memcmp(whole.ev, pieces.ev, n * sizeof(whole.ev[0])) == 0);
    return 0;
}
