/* group_records: Kafka's __consumer_offsets records for group metadata —
 * GroupMetadataKey (key version 2: the group id) and GroupMetadataValue
 * (written at version 3, read at versions 0-3), as Kafka's
 * GroupMetadataManager lays them out (non-flexible, big-endian, int16 string
 * lengths), so Kafka's own tools read what Weir writes. Also the consumer
 * protocol's Subscription topics, for OffsetDelete's subscription check. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

struct arena;

#define GREC_KEY_GROUP_METADATA 2
#define GREC_VALUE_VERSION 3

struct grec_member {
    buf_slice member_id;
    buf_slice instance_id; /* len -1: none */
    buf_slice client_id;
    buf_slice client_host;
    int32_t rebalance_timeout_ms;
    int32_t session_timeout_ms;
    buf_slice subscription; /* the selected protocol's metadata */
    buf_slice assignment;
};

struct grec_value {
    buf_slice protocol_type;
    int32_t generation;
    buf_slice protocol; /* len -1: none */
    buf_slice leader;   /* len -1: none */
    int64_t state_timestamp;
    int32_t n_members;
    struct grec_member *members;
};

/* Appends the key (int16 2, string group) to @w; errors are sticky in @w. */
void grec_key_encode(buf_writer *w, const char *group_id);
/* Appends the value at version 3 to @w. */
void grec_value_encode(buf_writer *w, const struct grec_value *v);
/* A group-metadata key: 0 with @ret_group borrowing @key's bytes; -EBADMSG
 * for a malformed key, -ENOENT for another key version (offset commits). */
int grec_key_decode(buf_slice key, buf_slice *ret_group);
/* A value of versions 0-3; members from @arena, slices borrow @value.
 * -EBADMSG (malformed, unknown version) or -ENOMEM. */
int grec_value_decode(buf_slice value, struct arena *arena, struct grec_value *ret);
/* Whether consumer-protocol Subscription metadata (any version) names @topic;
 * false for metadata that does not decode. */
bool grec_subscription_names(buf_slice metadata, const char *topic);
/* The same, telling malformed metadata apart: 1 names @topic, 0 does not,
 * -EBADMSG does not decode (Kafka then knows no subscribed topics). */
int grec_subscription_find(buf_slice metadata, const char *topic);
