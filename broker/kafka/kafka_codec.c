/* kafka_codec: request/response headers, the API table lookup and the generic
 * (api_key, version) -> generated decoder/encoder dispatch. The per-message code
 * lives in the generated kafka_msgs.c. */
#include "broker/kafka/kafka_codec.h"

#include <errno.h>
#include <string.h>

#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/kafka_prim.h"
#include "common/arena.h"

const struct kafka_api_info *kafka_api_lookup(int16_t api_key)
{
    /* The table is sorted by key and short; a binary search keeps the hot
     * path (every request) independent of how many APIs get added. */
    size_t lo = 0, hi = kafka_api_table_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int16_t k = kafka_api_table[mid].api_key;
        if (k == api_key)
            return &kafka_api_table[mid];
        if (k < api_key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool kafka_api_has_version(const struct kafka_api_info *api, int16_t version)
{
    return api && version >= api->min_version && version <= api->max_version;
}

bool kafka_api_is_flexible(const struct kafka_api_info *api, int16_t version)
{
    return version >= api->first_flexible;
}

/* ---- headers ---------------------------------------------------------------- */

int kafka_request_header_version(int16_t api_key, int16_t api_version)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    if (!kafka_api_has_version(api, api_version))
        return -1;
    return kafka_api_is_flexible(api, api_version) ? 2 : 1;
}

int kafka_response_header_version(int16_t api_key, int16_t api_version)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    if (!kafka_api_has_version(api, api_version))
        return -1;
    if (api_key == KAFKA_API_API_VERSIONS)
        return 0;
    return kafka_api_is_flexible(api, api_version) ? 1 : 0;
}

int kafka_request_header_decode(buf_reader *r, struct kafka_request_header *ret)
{
    buf_reader copy = *r;
    struct kafka_request_header h;
    int rc;
    if ((rc = buf_read_i16(&copy, &h.api_key)) < 0 ||
        (rc = buf_read_i16(&copy, &h.api_version)) < 0 ||
        (rc = buf_read_i32(&copy, &h.correlation_id)) < 0 ||
        (rc = buf_read_string(&copy, true, INT16_MAX, &h.client_id)) < 0)
        return rc;
    h.header_version = 1;
    if (kafka_request_header_version(h.api_key, h.api_version) == 2) {
        if ((rc = buf_skip_tagged_fields(&copy)) < 0)
            return rc;
        h.header_version = 2;
    }
    *r = copy;
    *ret = h;
    return 0;
}

int kafka_request_header_encode(buf_writer *w, const struct kafka_request_header *h)
{
    int hv = kafka_request_header_version(h->api_key, h->api_version);
    if (hv < 0)
        return -ENOTSUP;
    if (h->client_id.len < -1 || (h->client_id.len > 0 && !h->client_id.ptr))
        return -EINVAL;
    buf_write_i16(w, h->api_key);
    buf_write_i16(w, h->api_version);
    buf_write_i32(w, h->correlation_id);
    buf_write_string(w, (const char *)h->client_id.ptr, h->client_id.len);
    if (hv == 2)
        buf_write_empty_tagged_fields(w);
    return buf_writer_error(w);
}

int kafka_response_header_encode(buf_writer *w, int16_t api_key, int16_t api_version,
                                 int32_t correlation_id)
{
    int hv = kafka_response_header_version(api_key, api_version);
    if (hv < 0)
        return -ENOTSUP;
    buf_write_i32(w, correlation_id);
    if (hv == 1)
        buf_write_empty_tagged_fields(w);
    return buf_writer_error(w);
}

int kafka_response_header_decode(buf_reader *r, int16_t api_key, int16_t api_version,
                                 int32_t *ret_correlation_id)
{
    int hv = kafka_response_header_version(api_key, api_version);
    if (hv < 0)
        return -ENOTSUP;
    buf_reader copy = *r;
    int32_t corr;
    int rc = buf_read_i32(&copy, &corr);
    if (rc == 0 && hv == 1)
        rc = buf_skip_tagged_fields(&copy);
    if (rc < 0)
        return rc;
    *r = copy;
    *ret_correlation_id = corr;
    return 0;
}

/* ---- generic bodies --------------------------------------------------------- */

static int generic_decode(buf_reader *r, int16_t api_key, int16_t version, struct arena *arena,
                          void *ret, bool response)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    if (!kafka_api_has_version(api, version))
        return -ENOTSUP;
    size_t size = response ? api->response_size : api->request_size;
    /* Decode into scratch so *ret is only written on success; the scratch is
     * the size of one top-level struct and goes with the request's arena. */
    void *tmp = arena_alloc(arena, size, 0);
    if (!tmp)
        return -EMSGSIZE;
    buf_reader copy = *r;
    struct kafka_dec d = {&copy, arena, version, kafka_api_is_flexible(api, version)};
    int rc = response ? api->response_dec(&d, tmp) : api->request_dec(&d, tmp);
    if (rc < 0)
        return rc;
    memcpy(ret, tmp, size);
    *r = copy;
    return 0;
}

int kafka_request_decode(buf_reader *r, int16_t api_key, int16_t version, struct arena *arena,
                         void *ret)
{
    return generic_decode(r, api_key, version, arena, ret, false);
}

int kafka_response_decode(buf_reader *r, int16_t api_key, int16_t version, struct arena *arena,
                          void *ret)
{
    return generic_decode(r, api_key, version, arena, ret, true);
}

int kafka_request_encode(buf_writer *w, int16_t api_key, int16_t version, const void *msg)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    if (!kafka_api_has_version(api, version))
        return -ENOTSUP;
    struct kafka_enc e = {w, NULL, version, kafka_api_is_flexible(api, version)};
    return api->request_enc(&e, msg);
}

int kafka_response_encode(buf_writer *w, int16_t api_key, int16_t version, const void *msg,
                          const struct kafka_enc_hook *hook)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    if (!kafka_api_has_version(api, version))
        return -ENOTSUP;
    struct kafka_enc e = {w, hook, version, kafka_api_is_flexible(api, version)};
    return api->response_enc(&e, msg);
}

int kafka_request_init(int16_t api_key, void *msg)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    if (!api)
        return -ENOTSUP;
    api->request_init(msg);
    return 0;
}

int kafka_response_init(int16_t api_key, void *msg)
{
    const struct kafka_api_info *api = kafka_api_lookup(api_key);
    if (!api)
        return -ENOTSUP;
    api->response_init(msg);
    return 0;
}
