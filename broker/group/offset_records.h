/* offset_records: Kafka's __consumer_offsets records for committed offsets —
 * OffsetCommitKey (key versions 0 and 1: group, topic, partition) and
 * OffsetCommitValue (read at versions 0-3; written at version 3, or at
 * version 1 when the commit carries an explicit expire timestamp, as Kafka's
 * GroupMetadataManager does), non-flexible, big-endian, int16 string lengths,
 * so Kafka's own tools read what Weir writes. */
#pragma once

#include <stdint.h>

#include "common/buf.h"

#define OREC_KEY_VERSION 1

struct orec_key {
    buf_slice group;
    buf_slice topic;
    int32_t partition;
};

struct orec_value {
    int64_t offset;
    int32_t leader_epoch; /* -1: unknown (always for values below version 3) */
    buf_slice metadata;   /* never null once decoded ("" for a null string) */
    int64_t commit_timestamp;
    int64_t expire_timestamp; /* -1: none (only version 1 carries one) */
};

/* Appends the key at version 1 to @w; errors are sticky in @w. */
void orec_key_encode(buf_writer *w, const char *group, const char *topic, int32_t partition);
/* Appends the value: version 1 when @v->expire_timestamp >= 0, else version 3. */
void orec_value_encode(buf_writer *w, const struct orec_value *v);
/* The key's version (any key of __consumer_offsets starts with it), or -EBADMSG. */
int orec_key_version(buf_slice key);
/* An offset-commit key (versions 0/1): 0 with slices borrowing @key; -ENOENT
 * for another key version (group metadata), -EBADMSG when malformed. */
int orec_key_decode(buf_slice key, struct orec_key *ret);
/* A value of versions 0-3, slices borrowing @value. -EBADMSG. */
int orec_value_decode(buf_slice value, struct orec_value *ret);
