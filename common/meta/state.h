/* state: the cluster metadata model and the records that change it.
 *
 * The state is brokers (sorted by id) and topics (in creation order, indexed by
 * name and by UUID) with their partitions. It changes only through
 * cstate_apply(): one metadata record (proto/metadata.proto) at a time, at a
 * strictly increasing metadata offset. Apply is total and atomic: a record that
 * does not fit the state (unknown topic, stale epoch, leader outside the ISR, ...)
 * is rejected with -EINVAL and a reason, and the state is left exactly as it was,
 * so replaying a log always yields the same state. Nothing here reads a clock,
 * does I/O or draws random numbers.
 *
 * Which records to write is the controller's business (coordinator/controller.h);
 * this module checks structure (leader in ISR, ISR within replicas, epochs moving
 * forward, leaders not fenced), not policy.
 *
 * Callers read the structures below directly; only state.c writes them. Pointers
 * to brokers, topics and partitions stay valid until the next cstate_apply().
 *
 * Memory: a partition is 40 bytes with its replica and ISR lists stored inline
 * when they hold at most CSTATE_INLINE_IDS ids together (RF 3 with a full ISR),
 * so 100,000 partitions cost about 4 MB plus their topics. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct Weir__Meta__MetadataRecord;

#define CSTATE_UUID_LEN           16
#define CSTATE_MAX_TOPIC_NAME     249
#define CSTATE_MAX_REPLICAS       64      /* per list: replicas, ISR, adding, removing */
#define CSTATE_MAX_PARTITIONS     1000000 /* per topic */
#define CSTATE_MAX_ENDPOINTS      16
#define CSTATE_MAX_CONFIGS        128 /* overrides per topic */
#define CSTATE_MAX_CONFIG_NAME    255
#define CSTATE_MAX_CONFIG_VALUE   4096
#define CSTATE_MAX_STRING         255 /* hosts, listener names, racks, cluster id */
#define CSTATE_INLINE_IDS         6
#define CSTATE_MAX_PRODUCER_IDS   1000000 /* ids per ProducerIds block */
#define CSTATE_MAX_BROKER_CONFIGS 4096    /* dynamic broker config entries, all scopes */
#define CSTATE_CLUSTER_DEFAULT    (-1)    /* broker id of the cluster-wide dynamic default */

enum cstate_broker_state {
    /* Live session, eligible for leadership and ISR membership. */
    CSTATE_BROKER_REGISTERED = 1,
    /* Session ended (expired or closed): the epoch is dead. Comes back only by
     * registering again, with a new epoch. */
    CSTATE_BROKER_FENCED = 2,
    /* Live session, leaving: keeps leaderships it could not hand over, gets no
     * new ones and joins no ISR. */
    CSTATE_BROKER_CONTROLLED_SHUTDOWN = 3,
};

struct cstate_endpoint {
    char *listener; /* NULL for an unset replication endpoint */
    char *host;
    int32_t port;
    char *security_protocol; /* may be "" */
};

struct cstate_broker {
    int32_t id;
    enum cstate_broker_state state;
    int64_t epoch;
    uint8_t incarnation[CSTATE_UUID_LEN];
    char *rack; /* NULL: none */
    struct cstate_endpoint *endpoints;
    uint32_t n_endpoints;
    struct cstate_endpoint replication; /* host NULL: none */
};

/* Replicas, ISR, adding and removing replicas are stored back to back in one id
 * array (inline when short). Use the accessors. */
struct cstate_partition {
    int32_t leader; /* -1: offline */
    int32_t leader_epoch;
    int32_t partition_epoch;
    uint8_t n_replicas;
    uint8_t n_isr;
    uint8_t n_adding;
    uint8_t n_removing;
    union {
        int32_t inl[CSTATE_INLINE_IDS];
        int32_t *heap;
    } ids;
};

struct cstate_config_entry {
    char *name;
    char *value;
};

struct cstate_topic {
    char *name;
    uint8_t id[CSTATE_UUID_LEN];
    struct cstate_config_entry *configs; /* overrides, sorted by name */
    uint32_t n_configs;
    int32_t n_parts;
    struct cstate_partition *parts;
    struct cstate_topic *prev, *next; /* creation order */
};

/* A dynamic broker config value: one broker's, or the cluster default's when
 * broker_id is CSTATE_CLUSTER_DEFAULT. */
struct cstate_broker_config {
    int32_t broker_id;
    char *name;
    char *value;
};

struct cstate_tindex {
    struct cstate_topic **slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

struct cstate {
    char *cluster_id; /* NULL until the bootstrap record */
    int64_t offset;   /* metadata offset of the last applied record, -1: none */
    int64_t next_broker_epoch;
    /* The first producer id not yet handed out (ProducerIds records); ids
     * below it were issued to some broker. */
    int64_t next_producer_id;
    struct cstate_broker *brokers; /* sorted by id */
    size_t n_brokers;
    size_t cap_brokers;
    /* Dynamic broker configs, sorted by broker id then name (BrokerConfig
     * records). Kept apart from the brokers: Kafka lets a value be set for a
     * broker id that has not registered yet. */
    struct cstate_broker_config *broker_configs;
    size_t n_broker_configs;
    struct cstate_topic *first_topic, *last_topic;
    size_t n_topics;
    uint64_t n_partitions; /* over all topics */
    struct cstate_tindex by_name, by_id;
};

/* ---- lifecycle and lookups ------------------------------------------------- */

/* An empty state: no cluster id, offset -1, next broker epoch 1. -ENOMEM. */
int cstate_new(struct cstate **ret);
void cstate_free(struct cstate *s);

const struct cstate_broker *cstate_broker(const struct cstate *s, int32_t id);
/* Registered, not fenced and not shutting down: may lead and join ISRs. */
bool cstate_broker_eligible(const struct cstate *s, int32_t id);
const struct cstate_topic *cstate_topic_by_name(const struct cstate *s, const char *name);
const struct cstate_topic *cstate_topic_by_id(const struct cstate *s,
                                              const uint8_t id[CSTATE_UUID_LEN]);
/* The topic's override for @name, or NULL. */
const char *cstate_topic_config(const struct cstate_topic *t, const char *name);
/* The dynamic value of @name for @broker_id (CSTATE_CLUSTER_DEFAULT: the
 * cluster default) as set, without falling back, or NULL. */
const char *cstate_broker_config(const struct cstate *s, int32_t broker_id, const char *name);
const char *cstate_broker_state_name(enum cstate_broker_state st);

static inline const int32_t *cstate_part_ids_(const struct cstate_partition *p)
{
    size_t n = (size_t)p->n_replicas + p->n_isr + p->n_adding + p->n_removing;
    return n <= CSTATE_INLINE_IDS ? p->ids.inl : p->ids.heap;
}
static inline const int32_t *cstate_part_replicas(const struct cstate_partition *p)
{
    return cstate_part_ids_(p);
}
static inline const int32_t *cstate_part_isr(const struct cstate_partition *p)
{
    return cstate_part_ids_(p) + p->n_replicas;
}
static inline const int32_t *cstate_part_adding(const struct cstate_partition *p)
{
    return cstate_part_ids_(p) + p->n_replicas + p->n_isr;
}
static inline const int32_t *cstate_part_removing(const struct cstate_partition *p)
{
    return cstate_part_ids_(p) + p->n_replicas + p->n_isr + p->n_adding;
}
bool cstate_part_is_replica(const struct cstate_partition *p, int32_t id);
bool cstate_part_in_isr(const struct cstate_partition *p, int32_t id);

/* A valid topic name: 1..249 characters of [a-zA-Z0-9._-], not "." or "..". */
bool cstate_topic_name_valid(const char *name);

/* ---- records ----------------------------------------------------------------- */

/* Packed MetadataRecords in the order they are to be appended and applied. The
 * list owns its buffers. */
struct cstate_record {
    uint8_t *data;
    size_t len;
};
struct cstate_records {
    struct cstate_record *v;
    size_t n, cap;
};

void cstate_records_init(struct cstate_records *r);
void cstate_records_deinit(struct cstate_records *r); /* NULL-safe */
void cstate_records_clear(struct cstate_records *r);  /* keeps the array */
/* Drop the records after the first @n. */
void cstate_records_truncate(struct cstate_records *r, size_t n);
/* Pack @rec and append it. -ENOMEM. */
int cstate_records_add(struct cstate_records *r, const struct Weir__Meta__MetadataRecord *rec);

/* Apply one record at metadata @offset, which must be greater than s->offset.
 * 0; -EINVAL when the record does not fit the state (reason in @errbuf, may be
 * NULL); -ENOMEM. On any error the state is unchanged. */
int cstate_apply(struct cstate *s, int64_t offset, const struct Weir__Meta__MetadataRecord *rec,
                 char *errbuf, size_t errlen);
/* Decode a packed record and apply it; -EBADMSG when it does not decode. */
int cstate_apply_bytes(struct cstate *s, int64_t offset, const uint8_t *data, size_t len,
                       char *errbuf, size_t errlen);
/* One line describing a record, for logs and the simulation's verbose mode. */
void cstate_record_format(const struct Weir__Meta__MetadataRecord *rec, char *buf, size_t len);
/* Decode and describe; "<undecodable>" when it does not decode. */
void cstate_record_format_bytes(const uint8_t *data, size_t len, char *buf, size_t buflen);

/* ---- snapshots, equality, invariants -------------------------------------------- */

/* Serialize the whole state as a MetadataImage (see metadata.proto). The caller
 * frees *ret_data with free(). -ENOMEM. */
int cstate_snapshot_encode(const struct cstate *s, uint8_t **ret_data, size_t *ret_len);
/* Rebuild a state from an image. Every length, count and id is checked as in
 * cstate_apply(); -EBADMSG for bytes that are not an image, -EINVAL for an
 * image whose content does not hold together (reason in @errbuf), -ENOMEM. */
int cstate_snapshot_decode(const uint8_t *data, size_t len, struct cstate **ret, char *errbuf,
                           size_t errlen);

/* Deep equality, including topic order. On a difference, describes the first
 * one in @why (may be NULL). */
bool cstate_equal(const struct cstate *a, const struct cstate *b, char *why, size_t whylen);

/* Check the invariants every state built by the controller holds: brokers sorted
 * with unique epochs below next_broker_epoch, indexes consistent, and per
 * partition: non-empty duplicate-free replicas; non-empty ISR within them; leader
 * -1 or in the ISR and not fenced; a broker that is not eligible (fenced, shutting
 * down or unknown) in an ISR only as its last member. 0 or -EINVAL with the first
 * violation in @why. */
int cstate_check(const struct cstate *s, char *why, size_t whylen);
