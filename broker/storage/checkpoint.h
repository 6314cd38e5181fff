/* checkpoint: Kafka's offset checkpoint files, one per log directory.
 *
 * Format (text, every line ends in '\n'):
 *   0                        version
 *   N                        number of entries
 *   <topic> <partition> <offset>   N times, single spaces
 *
 * Kafka keeps three of these per log dir with the names below; their layout is
 * identical, so Kafka's tools read ours and ours reads Kafka's.
 *
 * Reading is strict: anything other than exactly that (another version, a count
 * that disagrees with the lines, a number with a sign, spaces or overflow, a topic
 * name Kafka would refuse, blank or extra lines, a missing final newline) is
 * -EBADMSG. Size and entry count are capped before anything is allocated.
 * Writing replaces the file atomically (fsutil_write_atomic) and blocks: call it
 * off the event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The number reader of Kafka's checkpoint-style text files (also the leader
 * epoch checkpoint): a cursor that never runs past @end, and an unsigned decimal
 * of at most @max ending at the character @term (consumed). Digits only, no
 * sign, no spaces, no leading zeros. -EBADMSG. */
struct checkpoint_cursor {
    const char *p;
    const char *end;
};
int checkpoint_read_number(struct checkpoint_cursor *c, char term, int64_t max, int64_t *ret);

#define CHECKPOINT_RECOVERY_POINT_FILE   "recovery-point-offset-checkpoint"
#define CHECKPOINT_LOG_START_OFFSET_FILE "log-start-offset-checkpoint"
/* Kafka's high watermark checkpoint (ReplicaManager's highWatermarkCheckpoints). */
#define CHECKPOINT_REPLICATION_OFFSET_FILE "replication-offset-checkpoint"
/* The log cleaner's: per compacted log, the offset below which it is clean. */
#define CHECKPOINT_CLEANER_OFFSET_FILE "cleaner-offset-checkpoint"

#define CHECKPOINT_VERSION 0
/* Kafka's limit for a topic name. */
#define CHECKPOINT_TOPIC_MAX 249
/* Caps for reading: a file larger than this or declaring more entries is refused
 * (-EFBIG / -EBADMSG) before its entries are allocated. 64 MiB holds well over a
 * million entries with typical topic names. */
#define CHECKPOINT_MAX_FILE_BYTES (64 * 1024 * 1024)
#define CHECKPOINT_MAX_ENTRIES    (4 * 1024 * 1024)

struct checkpoint_entry {
    char *topic; /* NUL-terminated; owned by the array from checkpoint_read/parse */
    int32_t partition;
    int64_t offset;
};

/* True when @name (of @len bytes) is a legal Kafka topic name: 1..249 characters
 * from [a-zA-Z0-9._-], and neither "." nor "..". */
bool checkpoint_topic_valid(const char *name, size_t len);

/* Parse the @len bytes of @text. On success *ret_entries is a malloc'd array of
 * *ret_count entries (NULL when the count is 0), freed with checkpoint_entries_free().
 * Duplicate topic-partitions are returned as they appear (a caller that builds a
 * map keeps the last, as Kafka does). Errors: -EBADMSG, -ENOMEM. */
int checkpoint_parse(const char *text, size_t len, struct checkpoint_entry **ret_entries,
                     size_t *ret_count);

/* Read and parse the file at @path. -ENOENT when it does not exist, -EFBIG when it
 * is larger than CHECKPOINT_MAX_FILE_BYTES, otherwise as checkpoint_parse(). */
int checkpoint_read(const char *path, struct checkpoint_entry **ret_entries, size_t *ret_count);

void checkpoint_entries_free(struct checkpoint_entry *entries, size_t count); /* NULL-safe */

/* Render @count entries (borrowed) into a malloc'd buffer (*ret_len bytes, not
 * NUL-terminated but with room for one). Cheap and non-blocking: the log manager
 * renders on the event loop and writes on a worker. -EINVAL when an entry has an
 * invalid topic, a negative partition or a negative offset (the file must stay
 * readable by checkpoint_parse()). */
int checkpoint_format(const struct checkpoint_entry *entries, size_t count, char **ret_data,
                      size_t *ret_len);

/* checkpoint_format() + fsutil_write_atomic(). Blocks (fsync). */
int checkpoint_write(const char *path, const struct checkpoint_entry *entries, size_t count);
