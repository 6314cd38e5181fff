/* kerr: Kafka's error codes, one table for every handler, log line and tool.
 *
 * The codes are response data (int16_t on the wire), never C return values
 * (conventions.md, rule 3). Use the enum's names in code and kerr_name() in
 * logs, so neither a handler nor an operator ever meets a bare number. The
 * list itself is data: common/kerr_list.h, in Kafka's order, with Kafka's
 * names, retriable flags and default messages (as org.apache.kafka.common.
 * protocol.Errors). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kerr {
#define KERR(code, name, retriable, message) KERR_##name = (code),
#include "common/kerr_list.h"
#undef KERR
};

struct kerr_info {
    int16_t code;
    const char *name;    /* Kafka's name: "NOT_LEADER_OR_FOLLOWER" */
    bool retriable;      /* a client may retry the same request */
    const char *message; /* Kafka's default message; "" for NONE */
};

/* The entry for @code, or NULL for a code Kafka does not define (or one newer
 * than this table). */
const struct kerr_info *kerr_lookup(int16_t code);

/* Kafka's name of @code; "UNKNOWN_ERROR_CODE" for a code not in the table. */
const char *kerr_name(int16_t code);

/* Kafka's default message for @code; a generic sentence for an unknown one. */
const char *kerr_message(int16_t code);

/* Whether Kafka treats @code as retriable; false for an unknown code. */
bool kerr_retriable(int16_t code);

/* "NAME (code)" into @buf (always NUL-terminated, truncated to @len), for a
 * log line or a CLI error line; returns @buf. An unknown code prints as
 * "UNKNOWN_ERROR_CODE (code)". */
const char *kerr_describe(int16_t code, char *buf, size_t len);
