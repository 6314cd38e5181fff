/* test_broker_metrics: the broker's metric aggregation (bm_fold), the request
 * counters (kstats) and their exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/broker_metrics.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/kstats.h"
#include "common/kerr.h"
#include "common/metrics.h"

static struct repl_part_view view(bool leader, int32_t n_replicas, int32_t n_isr, int32_t min_isr,
                                  int64_t lag, int64_t size)
{
    struct repl_part_view v = {
        .topic = "t",
        .has_log = true,
        .leader = leader,
        .n_replicas = n_replicas,
        .n_isr = n_isr,
        .min_isr = min_isr,
        .max_follower_lag = leader ? lag : -1,
        .log_size_bytes = size,
    };
    v.traffic.bytes_in = 100;
    v.traffic.records_in = 10;
    v.traffic.bytes_out = 50;
    v.traffic.records_out = 5;
    v.traffic.repl_bytes_out = 200;
    return v;
}

static void test_fold_sums_topic_and_counts_broker(void **state)
{
    (void)state;
    struct bm_topic_acc t;
    struct bm_totals tot = {0};
    bm_topic_acc_init(&t);
    assert_int_equal(t.max_follower_lag, -1);
    struct repl_part_view a = view(true, 3, 3, 2, 7, 1000);  /* healthy leader */
    struct repl_part_view b = view(true, 3, 2, 2, 40, 2000); /* under-replicated, at min ISR */
    struct repl_part_view c = view(true, 3, 1, 2, 90, 10);   /* under min ISR */
    struct repl_part_view d = view(false, 3, 3, 2, 0, 5);    /* follower */
    bm_fold(&t, &tot, &a);
    bm_fold(&t, &tot, &b);
    bm_fold(&t, &tot, &c);
    bm_fold(&t, &tot, &d);
    assert_int_equal(t.traffic.bytes_in, 400);
    assert_int_equal(t.traffic.records_in, 40);
    assert_int_equal(t.traffic.bytes_out, 200);
    assert_int_equal(t.traffic.records_out, 20);
    assert_int_equal(t.traffic.repl_bytes_out, 800);
    assert_int_equal(t.log_size_bytes, 3015);
    assert_int_equal(t.replicas, 4);
    assert_int_equal(t.leaders, 3);
    assert_int_equal(t.max_follower_lag, 90);
    assert_int_equal(tot.replicas, 4);
    assert_int_equal(tot.leaders, 3);
    assert_int_equal(tot.under_replicated, 2);
    assert_int_equal(tot.under_min_isr, 1);
    assert_int_equal(tot.at_min_isr, 1);
    assert_int_equal(tot.max_follower_lag, 90);
}

static void test_fold_follower_only_topic_has_no_lag(void **state)
{
    (void)state;
    struct bm_topic_acc t;
    struct bm_totals tot = {0};
    bm_topic_acc_init(&t);
    struct repl_part_view d = view(false, 3, 1, 2, 0, 5);
    bm_fold(&t, &tot, &d);
    assert_int_equal(t.max_follower_lag, -1); /* no series for it */
    assert_int_equal(tot.under_replicated, 0); /* the leader reports it */
    assert_int_equal(tot.under_min_isr, 0);
}

static void test_err_slots_round_trip(void **state)
{
    (void)state;
    for (int c = -1; c <= KSTATS_ERR_MAX; c++)
        assert_int_equal(kstats_slot_err(kstats_err_slot((int16_t)c)), c);
    assert_int_equal(kstats_err_slot(-2), KSTATS_ERR_SLOTS - 1);
    assert_int_equal(kstats_err_slot(KSTATS_ERR_MAX + 1), KSTATS_ERR_SLOTS - 1);
    assert_int_equal(kstats_slot_err(KSTATS_ERR_SLOTS - 1), INT16_MIN);
}

/* Each partition's error counts, NONE does not; the top-level one too. */
static void test_response_errors_counted_per_partition(void **state)
{
    (void)state;
    struct kstats *k;
    assert_int_equal(kstats_new(&k), 0);
    struct kafka_produce_response_partition parts[3] = {
        {.index = 0, .error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION},
        {.index = 1, .error_code = KERR_NONE},
        {.index = 2, .error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION},
    };
    struct kafka_produce_response_topic topic = {.n_partition_responses = 3,
                                                 .partition_responses = parts};
    struct kafka_produce_response resp;
    kafka_produce_response_init(&resp);
    resp.n_responses = 1;
    resp.responses = &topic;
    kstats_response(k, KAFKA_API_PRODUCE, 8, &resp);
    struct kstats_api *a = kstats_api_get(k, KAFKA_API_PRODUCE);
    assert_non_null(a);
    assert_int_equal(a->errors[kstats_err_slot(KERR_UNKNOWN_TOPIC_OR_PARTITION)], 2);
    assert_int_equal(a->errors[kstats_err_slot(KERR_NONE)], 0);

    struct kafka_fetch_response fr;
    kafka_fetch_response_init(&fr);
    fr.error_code = KERR_FETCH_SESSION_ID_NOT_FOUND;
    kstats_response(k, KAFKA_API_FETCH, 6, &fr); /* no top-level error before v7 */
    kstats_response(k, KAFKA_API_FETCH, 7, &fr);
    a = kstats_api_get(k, KAFKA_API_FETCH);
    assert_int_equal(a->errors[kstats_err_slot(KERR_FETCH_SESSION_ID_NOT_FOUND)], 1);
    kstats_free(k);
}

static char *scrape(struct metrics *m)
{
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(metrics_scrape_sync(m, out), 0);
    size_t n = evbuffer_get_length(out);
    char *s = malloc(n + 1);
    evbuffer_remove(out, s, n);
    s[n] = 0;
    evbuffer_free(out);
    return s;
}

static void test_kstats_exposition(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct metrics *m;
    struct kstats *k;
    assert_int_equal(metrics_new(base, &m), 0);
    assert_int_equal(kstats_new(&k), 0);
    assert_int_equal(metrics_register(m, kstats_collect, k), 0);
    kstats_request(k, KAFKA_API_METADATA, 9);
    kstats_request(k, KAFKA_API_METADATA, 9);
    kstats_request(k, KAFKA_API_METADATA, 1);
    kstats_request(k, 999, 0); /* not served: ignored */
    kstats_rejected(k);
    kstats_done(k, KAFKA_API_METADATA, 150);
    kstats_done(k, KAFKA_API_METADATA, 20000000);
    struct kstats_api *a = kstats_api_get(k, KAFKA_API_METADATA);
    a->errors[kstats_err_slot(KERR_UNKNOWN_TOPIC_OR_PARTITION)] = 4;
    a->errors[kstats_err_slot(120)] = 1; /* codes the table does not name share a series */
    a->errors[kstats_err_slot(1000)] = 2;
    char *s = scrape(m);
    assert_non_null(strstr(s, "weir_kafka_requests_total{api=\"Metadata\",version=\"9\"} 2\n"));
    assert_non_null(strstr(s, "weir_kafka_requests_total{api=\"Metadata\",version=\"1\"} 1\n"));
    assert_non_null(strstr(s, "weir_kafka_request_errors_total{api=\"Metadata\","
                              "error=\"UNKNOWN_TOPIC_OR_PARTITION\"} 4\n"));
    assert_non_null(strstr(s, "weir_kafka_request_errors_total{api=\"Metadata\","
                              "error=\"UNKNOWN_ERROR_CODE\"} 3\n"));
    assert_non_null(strstr(s, "weir_kafka_request_duration_seconds_count{api=\"Metadata\"} 2\n"));
    assert_non_null(strstr(s, "weir_kafka_requests_rejected_total 1\n"));
    assert_null(strstr(s, "api=\"Produce\""));
    free(s);
    metrics_free(m);
    kstats_free(k);
    event_base_free(base);
}

/* A broker without its modules yet (start-up): every collector still answers. */
static void test_broker_collectors_without_modules(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct metrics *m;
    struct kstats *k;
    struct broker_ctx b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(metrics_new(base, &m), 0);
    assert_int_equal(kstats_new(&k), 0);
    b.kstats = k;
    struct broker_metrics *bm;
    assert_int_equal(broker_metrics_new(&b, NULL, NULL, &bm), 0);
    assert_int_equal(broker_metrics_register(bm, m), 0);
    char *s = scrape(m);
    assert_non_null(strstr(s, "weir_kafka_requests_rejected_total 0\n"));
    free(s);
    broker_metrics_unregister(bm, m);
    metrics_free(m);
    broker_metrics_free(bm);
    kstats_free(k);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_sums_topic_and_counts_broker),
        cmocka_unit_test(test_fold_follower_only_topic_has_no_lag),
        cmocka_unit_test(test_err_slots_round_trip),
        cmocka_unit_test(test_response_errors_counted_per_partition),
        cmocka_unit_test(test_kstats_exposition),
        cmocka_unit_test(test_broker_collectors_without_modules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
