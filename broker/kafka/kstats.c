/* kstats: request, error and latency counters of the Kafka front end. */
#include "broker/kafka/kstats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_codec.h"
#include "common/kerr.h"

int kstats_new(struct kstats **ret)
{
    struct kstats *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->api = calloc(dispatch_table_len, sizeof(*k->api));
    if (!k->api) {
        free(k);
        return -ENOMEM;
    }
    k->n_api = dispatch_table_len;
    for (size_t i = 0; i < k->n_api; i++)
        k->api[i].api_key = dispatch_table[i].api_key;
    *ret = k;
    return 0;
}

void kstats_free(struct kstats *k)
{
    if (!k)
        return;
    free(k->api);
    free(k);
}

struct kstats_api *kstats_api_get(struct kstats *k, int16_t api_key)
{
    const struct dispatch_entry *e = dispatch_find(api_key);
    if (!e)
        return NULL;
    size_t i = (size_t)(e - dispatch_table);
    return i < k->n_api ? &k->api[i] : NULL;
}

size_t kstats_err_slot(int16_t code)
{
    if (code < -1 || code > KSTATS_ERR_MAX)
        return KSTATS_ERR_SLOTS - 1;
    return (size_t)(code + 1);
}

int16_t kstats_slot_err(size_t slot)
{
    if (slot >= KSTATS_ERR_SLOTS - 1)
        return INT16_MIN;
    return (int16_t)((int)slot - 1);
}

void kstats_request(struct kstats *k, int16_t api_key, int16_t version)
{
    struct kstats_api *a = kstats_api_get(k, api_key);
    if (a && version >= 0 && version < KSTATS_VERSIONS)
        a->requests[version]++;
}

void kstats_rejected(struct kstats *k)
{
    k->rejected++;
}

static void count_error(void *opaque, int16_t code)
{
    struct kstats_api *a = opaque;
    if (code != KERR_NONE)
        a->errors[kstats_err_slot(code)]++;
}

void kstats_response(struct kstats *k, int16_t api_key, int16_t version, const void *msg)
{
    struct kstats_api *a = kstats_api_get(k, api_key);
    if (a)
        kafka_response_errors(api_key, version, msg, count_error, a);
}

void kstats_done(struct kstats *k, int16_t api_key, int64_t elapsed_us)
{
    struct kstats_api *a = kstats_api_get(k, api_key);
    if (a)
        mhist_observe_us(&a->latency, elapsed_us);
}

static const char *api_name(int16_t key)
{
    const struct kafka_api_info *info = kafka_api_lookup(key);
    return info ? info->name : "Unknown";
}

/* A few hundred samples at most (APIs x versions, errors seen, 26 histograms):
 * written in one turn, no cursor needed. */
int kstats_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    struct kstats *k = ctx;
    (void)cursor;
    char ver[8];
    mw_family(w, "weir_kafka_requests_total", MW_COUNTER,
              "Kafka requests handed to their handler, by API and version.");
    for (size_t i = 0; i < k->n_api; i++) {
        const struct kstats_api *a = &k->api[i];
        for (int v = 0; v < KSTATS_VERSIONS; v++) {
            if (!a->requests[v])
                continue;
            snprintf(ver, sizeof(ver), "%d", v);
            mw_sample(w, (double)a->requests[v], "api", api_name(a->api_key), "version", ver,
                      NULL);
        }
    }
    mw_family(w, "weir_kafka_request_errors_total", MW_COUNTER,
              "Error codes other than NONE in Kafka responses sent, by API and Kafka error "
              "name; each partition's or resource's error counts once.");
    for (size_t i = 0; i < k->n_api; i++) {
        const struct kstats_api *a = &k->api[i];
        /* Codes the table does not name share one series. */
        uint64_t unknown = 0;
        for (size_t s = 0; s < KSTATS_ERR_SLOTS; s++) {
            if (!a->errors[s])
                continue;
            int16_t code = kstats_slot_err(s);
            if (code == INT16_MIN || !kerr_lookup(code)) {
                unknown += a->errors[s];
                continue;
            }
            mw_sample(w, (double)a->errors[s], "api", api_name(a->api_key), "error",
                      kerr_name(code), NULL);
        }
        if (unknown)
            mw_sample(w, (double)unknown, "api", api_name(a->api_key), "error",
                      "UNKNOWN_ERROR_CODE", NULL);
    }
    mw_family(w, "weir_kafka_request_duration_seconds", MW_HISTOGRAM,
              "Time from a complete Kafka request to its response handed to the socket "
              "(purgatory waits included), by API.");
    for (size_t i = 0; i < k->n_api; i++)
        if (k->api[i].latency.count)
            mw_hist(w, &k->api[i].latency, "api", api_name(k->api[i].api_key), NULL);
    mw_family(w, "weir_kafka_requests_rejected_total", MW_COUNTER,
              "Kafka requests that closed their connection unserved: an API or version the "
              "broker does not serve, or a body that does not decode.");
    mw_sample(w, (double)k->rejected, NULL);
    return 0;
}
