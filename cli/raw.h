/* raw: one Kafka request/response over a plain socket, encoded and decoded by
 * the project's generated codec (broker/kafka/kafka_codec.h).
 *
 * Only for what librdkafka 2.0.2 does not expose: Metadata with leader epochs
 * and offline replicas, DescribeCluster, IncrementalAlterConfigs. One blocking
 * connection to the first bootstrap server that answers; requests go one at a
 * time. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "broker/kafka/kafka_msgs.h"

struct cli;
struct raw_conn;

/* Connect to the first reachable bootstrap server of @c. Prints one error line
 * naming every address tried and returns -errno when none answers. */
int raw_open(const struct cli *c, struct raw_conn **ret);
/* Connect to one broker (DescribeLogDirs is answered per broker). Errors as
 * raw_open(). */
int raw_open_addr(const struct cli *c, const char *host, int port, struct raw_conn **ret);
void raw_close(struct raw_conn *rc); /* NULL-safe */

/* Send @req (the generated request struct of @api_key) at @version and decode
 * the response into @ret_resp. The decoded response borrows from a buffer the
 * connection owns until the next raw_call() or raw_close(). Errors: -errno of
 * the socket, -ETIMEDOUT, codec errors; one error line is printed. */
int raw_call(struct raw_conn *rc, int16_t api_key, int16_t version, const void *req,
             void *ret_resp);

/* Metadata v9 for @topics (NULL with n 0: every topic), without auto-creating. */
int raw_metadata(struct raw_conn *rc, const char *const *topics, int n,
                 struct kafka_metadata_response *ret);

/* A NUL-terminated copy of a decoded string in a static rotating buffer (good
 * for a few uses within one printf). */
const char *raw_str(buf_slice s);

/* Whether a TCP connection to @host:@port opens within @timeout_ms. */
bool raw_probe(const char *host, int port, int timeout_ms);

/* 0 when the broker @rc talks to advertises every API in @keys (ApiVersions);
 * otherwise one error line naming the first missing API and -ENOTSUP. Used
 * before librdkafka calls whose failure against an older broker is worse than
 * a clear refusal. */
int raw_require_apis(struct raw_conn *rc, const int16_t *keys, int n);
