/* props: a Java .properties parser (the format of Kafka's server.properties).
 *
 * Supported as java.util.Properties.load() does: comment lines starting with '#'
 * or '!' (after optional whitespace); the key ends at the first unescaped '=', ':'
 * or whitespace; separators "key=value", "key: value", "key value"; leading
 * whitespace of the value is dropped; a line ending in an odd number of
 * backslashes continues on the next line (whose leading whitespace is dropped);
 * escapes \t \n \r \f \\ \uXXXX (emitted as UTF-8), and "\c" = c for any other c.
 * Blank lines are skipped. A later duplicate key is reported again (the caller
 * decides; the config registry keeps the last). Malformed input (a bad \u escape,
 * a NUL byte) is an error naming the line. */
#pragma once

#include <stddef.h>

/* Caps on untrusted input: one logical entry (after joining continuation lines)
 * and a whole file. Larger input is rejected (-EINVAL "entry too long", -EFBIG). */
#define PROPS_MAX_ENTRY (1u << 20)
#define PROPS_MAX_FILE  (16u << 20)

/* Called once per key with NUL-terminated key and value (valid only during the
 * call) and the 1-based line number where the entry starts. A nonzero return
 * stops parsing and is returned by props_parse() (and @err is left alone: the
 * callback reports its own error). */
typedef int (*props_entry_fn)(void *userdata, const char *key, const char *value, int line);

/* Parses @len bytes of @text. On a syntax error returns -EINVAL and writes a
 * message such as "line 7: invalid \\u escape" into @err (may be NULL). */
int props_parse(const char *text, size_t len, props_entry_fn fn, void *userdata, char *err,
                size_t errlen);
/* Reads and parses a file; errors mention the path. -errno on I/O errors. */
int props_parse_file(const char *path, props_entry_fn fn, void *userdata, char *err, size_t errlen);
