/* api_describe_log_dirs: DescribeLogDirs v0-4 (API key 35). Answers, for each
 * of the broker's log directories (log.dirs, in configuration order), the
 * partition replicas it holds with their size — the sum of the segment files'
 * sizes, as Kafka's Log.size — and their offset lag. As Kafka's
 * ReplicaManager.describeLogDirs:
 *   - a null topics filter means every partition; otherwise only the named
 *     partitions that are present are answered (absent ones are left out);
 *   - offset_lag is max(high watermark - log end offset, 0) for a replica the
 *     broker hosts; Weir has no future replicas (no intra-broker moves), so
 *     is_future_key is always false;
 *   - v4 adds the file system's total and usable bytes of each dir (statvfs;
 *     a dir whose statvfs fails answers KAFKA_STORAGE_ERROR with -1 sizes).
 * The answer is built synchronously from the logs' in-memory sizes; statvfs
 * is a metadata call that does not touch the disk's data. */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "broker/storage/storage_config.h"
#include "common/kerr.h"
#include "common/log.h"

/* One hosted log that passed the filter. */
struct ld_entry {
    const char *topic; /* borrowed from the log manager for the request's span */
    int32_t partition;
    size_t dir;
    int64_t size;
    int64_t lag;
};

struct ld_collect {
    struct kreq *req;
    const struct kafka_describe_log_dirs_request *m;
    struct logmgr *lm;
    const char *const *dirs;
    size_t ndirs;
    struct ld_entry *entries;
    size_t n, cap;
};

static bool ld_wanted(const struct kafka_describe_log_dirs_request *m, const char *topic,
                      int32_t partition)
{
    if (m->n_topics < 0)
        return true;
    size_t tlen = strlen(topic);
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_describe_log_dirs_request_topic *t = &m->topics[i];
        if (t->topic.len < 0 || (size_t)t->topic.len != tlen ||
            memcmp(t->topic.ptr, topic, tlen) != 0)
            continue;
        for (int32_t j = 0; j < t->n_partitions; j++)
            if (t->partitions[j] == partition)
                return true;
    }
    return false;
}

static void ld_visit(void *arg, const char *topic, int32_t partition, struct plog *log)
{
    struct ld_collect *c = arg;
    if (c->n == c->cap || !ld_wanted(c->m, topic, partition))
        return;
    const char *dir = logmgr_log_dir(c->lm, topic, partition);
    size_t d = 0;
    while (d < c->ndirs && !(dir && strcmp(dir, c->dirs[d]) == 0))
        d++;
    if (d == c->ndirs)
        return; /* not in a configured dir: cannot happen, leave it out */
    int64_t lag = plog_high_watermark(log) - plog_log_end_offset(log);
    struct ld_entry *e = &c->entries[c->n++];
    e->topic = topic;
    e->partition = partition;
    e->dir = d;
    e->size = plog_size_bytes(log);
    e->lag = lag > 0 ? lag : 0;
}

static int ld_cmp(const void *a, const void *b)
{
    const struct ld_entry *x = a, *y = b;
    if (x->dir != y->dir)
        return x->dir < y->dir ? -1 : 1;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

/* Fill @res with the entries [@from, @to) of one dir, grouped by topic. */
static int ld_fill_dir(struct kreq *req, const struct ld_entry *es, size_t from, size_t to,
                       struct kafka_describe_log_dirs_response_result *res)
{
    int32_t ntopics = 0;
    for (size_t i = from; i < to; i++)
        if (i == from || strcmp(es[i].topic, es[i - 1].topic) != 0)
            ntopics++;
    res->n_topics = ntopics;
    res->topics = api_alloc(req, (size_t)ntopics, sizeof(*res->topics));
    if (ntopics > 0 && !res->topics)
        return -1;
    int32_t t = -1;
    for (size_t i = from; i < to;) {
        size_t j = i;
        while (j < to && strcmp(es[j].topic, es[i].topic) == 0)
            j++;
        struct kafka_describe_log_dirs_response_topic *rt = &res->topics[++t];
        rt->name = api_slice(es[i].topic);
        rt->n_partitions = (int32_t)(j - i);
        rt->partitions = api_alloc(req, j - i, sizeof(*rt->partitions));
        if (!rt->partitions)
            return -1;
        for (size_t k = i; k < j; k++) {
            struct kafka_describe_log_dirs_response_partition *p = &rt->partitions[k - i];
            p->partition_index = es[k].partition;
            p->partition_size = es[k].size;
            p->offset_lag = es[k].lag;
            p->is_future_key = false;
        }
        i = j;
    }
    return 0;
}

static void ld_dir_space(const char *dir, struct kafka_describe_log_dirs_response_result *res)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0) {
        log_warn("kafka", "DescribeLogDirs: statvfs %s failed: %m", dir);
        res->error_code = KERR_KAFKA_STORAGE_ERROR;
        return;
    }
    res->total_bytes = (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
    res->usable_bytes = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

void api_describe_log_dirs_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_describe_log_dirs_request *m = body;
    struct kafka_describe_log_dirs_response resp;
    kafka_describe_log_dirs_response_init(&resp);

    struct ld_collect c = {.req = req, .m = m, .lm = b->lm};
    if (storage_config_log_dirs(b->cfg, &c.dirs, &c.ndirs) != 0) {
        /* The broker started with these settings, so this is a bug. */
        resp.error_code = KERR_UNKNOWN_SERVER_ERROR;
        kreq_reply(req, &resp, NULL, NULL);
        return;
    }
    c.cap = logmgr_count(b->lm);
    c.entries = api_alloc(req, c.cap, sizeof(*c.entries));
    if (c.cap > 0 && !c.entries)
        goto oom;
    logmgr_foreach(b->lm, ld_visit, &c);
    if (c.n > 1)
        qsort(c.entries, c.n, sizeof(*c.entries), ld_cmp);

    resp.n_results = (int32_t)c.ndirs;
    resp.results = api_alloc(req, c.ndirs, sizeof(*resp.results));
    if (!resp.results)
        goto oom;
    size_t at = 0;
    for (size_t d = 0; d < c.ndirs; d++) {
        struct kafka_describe_log_dirs_response_result *res = &resp.results[d];
        size_t from = at;
        while (at < c.n && c.entries[at].dir == d)
            at++;
        res->log_dir = api_slice(c.dirs[d]);
        res->total_bytes = -1;
        res->usable_bytes = -1;
        if (ld_fill_dir(req, c.entries, from, at, res) != 0)
            goto oom;
        if (req->hdr.api_version >= 4)
            ld_dir_space(c.dirs[d], res);
    }
    kreq_reply(req, &resp, NULL, NULL);
    return;
oom:
    kreq_close(req);
}
