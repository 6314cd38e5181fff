/* api_versions: ApiVersions v0-3, generated from the dispatch table. */
#include <string.h>

#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/kerr.h"

void api_versions_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp);
    struct kafka_api_versions_response_api_version *keys =
        api_alloc(req, dispatch_table_len, sizeof(*keys));
    if (!keys) {
        kreq_close(req);
        return;
    }
    for (size_t i = 0; i < dispatch_table_len; i++) {
        keys[i].api_key = dispatch_table[i].api_key;
        keys[i].min_version = dispatch_table[i].min_version;
        keys[i].max_version = dispatch_table[i].max_version;
    }
    resp.api_keys = keys;
    resp.n_api_keys = (int32_t)dispatch_table_len;
    kreq_reply(req, &resp, NULL, NULL);
}

void api_versions_unsupported(struct kreq *req)
{
    /* Kafka does not parse the body: a v0 answer with our ApiVersions range,
     * which is what clients fall back on. */
    const struct dispatch_entry *e = dispatch_find(KAFKA_API_API_VERSIONS);
    struct kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp);
    struct kafka_api_versions_response_api_version key = {.api_key = KAFKA_API_API_VERSIONS,
                                                          .min_version = e->min_version,
                                                          .max_version = e->max_version};
    resp.error_code = KERR_UNSUPPORTED_VERSION;
    resp.api_keys = &key;
    resp.n_api_keys = 1;
    req->reply_version = 0;
    kreq_reply(req, &resp, NULL, NULL);
}
