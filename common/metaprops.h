/* metaprops: the identity files that tie data on disk to one cluster.
 *
 *   <dir>/meta.properties      Kafka's format: version, cluster.id, node.id (version 1)
 *                              or broker.id (version 0), directory.id. Written once,
 *                              when a coordinator data dir is formatted or a broker
 *                              log dir is first used; read at every start.
 *   <log>/partition.metadata   KIP-516: "version: 0" and "topic_id: <id>" lines.
 *
 * Ids (cluster, directory, topic) are UUIDs written as Kafka writes them: 22
 * characters of unpadded base64url.
 *
 * Writes go through fsutil_write_atomic() (temporary file, fsync, rename, fsync
 * of the directory) and so block: call them off the event loop, or at start-up.
 * Nothing here logs; errors come back as -errno with a message in @err. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METAPROPS_FILE      "meta.properties"
#define METAPROPS_PART_FILE "partition.metadata"
#define METAPROPS_UUID_LEN  16
#define METAPROPS_ID_CHARS  22 /* base64url of 16 bytes, unpadded */
#define METAPROPS_ID_BUF    (METAPROPS_ID_CHARS + 1)

struct metaprops {
    int version; /* 0 (broker.id) or 1 (node.id) */
    char cluster_id[METAPROPS_ID_BUF];
    int32_t node_id;                     /* node.id or broker.id; -1 when absent */
    char directory_id[METAPROPS_ID_BUF]; /* "" when absent */
};

/* A random version-4 UUID as a Kafka id (never starting with '-', which a
 * command line would read as an option, as Kafka avoids). */
void metaprops_random_id(char out[METAPROPS_ID_BUF]);
/* The id of 16 bytes; and back: -EINVAL unless @s is 22 base64url characters
 * that decode to exactly 16 bytes. */
void metaprops_id_encode(const uint8_t uuid[METAPROPS_UUID_LEN], char out[METAPROPS_ID_BUF]);
int metaprops_id_decode(const char *s, uint8_t ret_uuid[METAPROPS_UUID_LEN]);
bool metaprops_id_valid(const char *s);

/* Read @dir/meta.properties. -ENOENT when the file does not exist; -EINVAL
 * (with @err) when it is not a valid meta.properties: no or bad version,
 * cluster.id missing or not an id, node.id and broker.id disagreeing or not
 * numbers, a bad directory.id. Other -errno for I/O errors. */
int metaprops_read(const char *dir, struct metaprops *ret, char *err, size_t errlen);
/* Write @dir/meta.properties atomically and durably (version 1: node.id; the
 * directory.id is written when set). */
int metaprops_write(const char *dir, const struct metaprops *mp);

/* Read @log_dir/partition.metadata: the topic id. -ENOENT when absent, -EINVAL
 * when malformed (version other than 0, topic_id missing or not an id). */
int metaprops_part_read(const char *log_dir, uint8_t ret_topic_id[METAPROPS_UUID_LEN]);
/* Write it. @durable: fsync the file and @log_dir (else only write and rename:
 * for a new log whose directory is fsynced by its first flush). */
int metaprops_part_write(const char *log_dir, const uint8_t topic_id[METAPROPS_UUID_LEN],
                         bool durable);
