/* kstats: the Kafka front end's request metrics — requests per API and
 * version, errors per API and Kafka error name, latency per API.
 *
 * Plain counters updated on the event loop by dispatch (dispatch.c wires the
 * kserver observers to kstats_*); no allocation or lock after kstats_new().
 * Rows follow the dispatch table (one per served API), so the cardinality is
 * fixed: requests at most 26 APIs x their versions, errors only the (API,
 * error) pairs that occurred, one latency histogram per API.
 *
 * What counts:
 *   - a request: decoded and handed to its handler (requests for an API or
 *     version outside the table, or that do not decode, close the connection
 *     and count as rejected instead);
 *   - an error: every error code other than NONE in a response that was sent,
 *     each partition's, resource's and the top-level one (Kafka's
 *     errorCounts()); acks=0 produces have no response and count none;
 *   - latency: from the complete request frame to its response being handed
 *     to the socket, waits in purgatory (long-poll fetch, acks=all) and the
 *     wait behind earlier responses of the connection included — what the
 *     client sees, less the network; requests that close their connection
 *     instead of answering are not timed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

#define KSTATS_VERSIONS 16 /* versions 0..15 per API */
/* Error codes -1 (UNKNOWN_SERVER_ERROR) .. KSTATS_ERR_MAX each have a slot;
 * others share the last one (UNKNOWN_ERROR_CODE). */
#define KSTATS_ERR_MAX   127
#define KSTATS_ERR_SLOTS (KSTATS_ERR_MAX + 3)

struct kstats_api {
    int16_t api_key;
    uint64_t requests[KSTATS_VERSIONS];
    uint64_t errors[KSTATS_ERR_SLOTS];
    struct mhist latency;
};

struct kstats {
    struct kstats_api *api; /* n_api rows, in dispatch table order */
    size_t n_api;
    uint64_t rejected; /* requests that closed their connection unserved */
};

/* A row for each entry of the dispatch table. -ENOMEM. */
int kstats_new(struct kstats **ret);
void kstats_free(struct kstats *k); /* NULL-safe */

/* The row of @api_key, or NULL when the broker does not serve it. */
struct kstats_api *kstats_api_get(struct kstats *k, int16_t api_key);

/* The slot of error @code in kstats_api.errors, and back. */
size_t kstats_err_slot(int16_t code);
int16_t kstats_slot_err(size_t slot); /* the unknown slot gives INT16_MIN */

void kstats_request(struct kstats *k, int16_t api_key, int16_t version);
void kstats_rejected(struct kstats *k);
/* Count the error codes of @msg, the response struct of @api_key at @version. */
void kstats_response(struct kstats *k, int16_t api_key, int16_t version, const void *msg);
void kstats_done(struct kstats *k, int16_t api_key, int64_t elapsed_us);

/* metrics_collect_fn over a struct kstats (@ctx): weir_kafka_requests_total,
 * weir_kafka_request_errors_total, weir_kafka_request_duration_seconds,
 * weir_kafka_requests_rejected_total. */
int kstats_collect(struct mw *w, void *ctx, uint64_t *cursor);
