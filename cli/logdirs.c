/* logdirs: DescribeLogDirs (API key 35) sent to each broker Metadata lists,
 * through the generated codec (librdkafka 2.0.2 has no DescribeLogDirs). */
#include "cli/logdirs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/out.h"
#include "cli/raw.h"

struct ld_broker {
    int32_t id;
    char *host;
    int32_t port;
};

void ld_rows_free(struct ld_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].dir);
        free(rows->v[i].topic);
    }
    free(rows->v);
    memset(rows, 0, sizeof(*rows));
}

static struct ld_row *ld_push(struct ld_rows *rows)
{
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 64;
        struct ld_row *v = realloc(rows->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        rows->v = v;
        rows->cap = cap;
    }
    struct ld_row *r = &rows->v[rows->n++];
    memset(r, 0, sizeof(*r));
    return r;
}

/* The request's filter: every partition of @topics, as Metadata @md lists them. */
static int ld_filter(const struct kafka_metadata_response *md,
                     struct kafka_describe_log_dirs_request *req)
{
    req->topics = calloc((size_t)md->n_topics + 1, sizeof(*req->topics));
    if (!req->topics)
        return -ENOMEM;
    req->n_topics = 0;
    for (int32_t i = 0; i < md->n_topics; i++) {
        const struct kafka_metadata_response_topic *t = &md->topics[i];
        if (t->error_code) {
            cli_err("topic %s: %s", raw_str(t->name), cli_kerr_name(t->error_code));
            return -ENOENT;
        }
        struct kafka_describe_log_dirs_request_topic *rt = &req->topics[req->n_topics++];
        rt->topic.len = t->name.len;
        rt->topic.ptr = (const uint8_t *)buf_slice_strdup(t->name);
        rt->partitions = calloc((size_t)t->n_partitions + 1, sizeof(int32_t));
        if (!rt->topic.ptr || !rt->partitions)
            return -ENOMEM;
        for (int32_t p = 0; p < t->n_partitions; p++)
            rt->partitions[p] = t->partitions[p].partition_index;
        rt->n_partitions = t->n_partitions;
    }
    return 0;
}

static void ld_filter_free(struct kafka_describe_log_dirs_request *req)
{
    for (int32_t i = 0; i < req->n_topics; i++) {
        free((void *)req->topics[i].topic.ptr);
        free(req->topics[i].partitions);
    }
    free(req->topics);
}

static int ld_ask(const struct cli *c, const struct ld_broker *b,
                  const struct kafka_describe_log_dirs_request *req, struct ld_rows *rows)
{
    struct raw_conn *rc;
    if (raw_open_addr(c, b->host, b->port, &rc))
        return 1;
    struct kafka_describe_log_dirs_response resp;
    int ret = 1;
    if (raw_call(rc, KAFKA_API_DESCRIBE_LOG_DIRS, 4, req, &resp))
        goto out;
    ret = -1;
    if (resp.error_code) {
        cli_err("DescribeLogDirs to broker %d: %s", (int)b->id, cli_kerr_name(resp.error_code));
        ret = 1;
        goto out;
    }
    for (int32_t d = 0; d < resp.n_results; d++) {
        const struct kafka_describe_log_dirs_response_result *res = &resp.results[d];
        bool any = false;
        for (int32_t t = 0; t < res->n_topics; t++) {
            for (int32_t p = 0; p < res->topics[t].n_partitions; p++) {
                const struct kafka_describe_log_dirs_response_partition *pp =
                    &res->topics[t].partitions[p];
                struct ld_row *r = ld_push(rows);
                if (!r)
                    goto out;
                r->broker = b->id;
                r->dir = buf_slice_strdup(res->log_dir);
                r->dir_error = res->error_code;
                r->topic = buf_slice_strdup(res->topics[t].name);
                r->partition = pp->partition_index;
                r->size = pp->partition_size;
                r->offset_lag = pp->offset_lag;
                r->is_future = pp->is_future_key;
                r->total_bytes = res->total_bytes;
                r->usable_bytes = res->usable_bytes;
                if (!r->dir || !r->topic)
                    goto out;
                any = true;
            }
        }
        if (!any) {
            struct ld_row *r = ld_push(rows);
            if (!r)
                goto out;
            r->broker = b->id;
            r->dir = buf_slice_strdup(res->log_dir);
            r->dir_error = res->error_code;
            r->partition = -1;
            r->size = -1;
            r->total_bytes = res->total_bytes;
            r->usable_bytes = res->usable_bytes;
            if (!r->dir)
                goto out;
        }
    }
    ret = 0;
out:
    if (ret < 0)
        cli_err("out of memory");
    raw_close(rc);
    return ret;
}

int ld_collect(const struct cli *c, const char *const *topics, int n_topics, struct ld_rows *ret,
               int *ret_unreachable)
{
    struct raw_conn *rc;
    if (raw_open(c, &rc))
        return -1;
    struct kafka_metadata_response md;
    struct kafka_describe_log_dirs_request req;
    kafka_describe_log_dirs_request_init(&req);
    req.n_topics = -1;
    struct ld_broker *bs = NULL;
    int nb = 0, unreachable = 0, r = -1;
    struct ld_rows rows = {0};
    if (raw_metadata(rc, topics, n_topics, &md))
        goto out;
    bs = calloc((size_t)md.n_brokers + 1, sizeof(*bs));
    if (!bs)
        goto out;
    for (int32_t i = 0; i < md.n_brokers; i++) {
        bs[nb].id = md.brokers[i].node_id;
        bs[nb].port = md.brokers[i].port;
        bs[nb].host = buf_slice_strdup(md.brokers[i].host);
        if (!bs[nb++].host)
            goto out;
    }
    if (topics && ld_filter(&md, &req))
        goto out;
    for (int i = 0; i < nb; i++) {
        int a = ld_ask(c, &bs[i], &req, &rows);
        if (a < 0)
            goto out;
        unreachable += a;
    }
    r = 0;
out:
    if (topics && req.topics)
        ld_filter_free(&req);
    for (int i = 0; i < nb; i++)
        free(bs[i].host);
    free(bs);
    raw_close(rc);
    if (r == 0) {
        *ret = rows;
        if (ret_unreachable)
            *ret_unreachable = unreachable;
    } else {
        ld_rows_free(&rows);
    }
    return r;
}

int64_t ld_size(const struct ld_rows *rows, int32_t broker, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < rows->n; i++) {
        const struct ld_row *r = &rows->v[i];
        if (r->broker == broker && r->topic && r->partition == partition &&
            !strcmp(r->topic, topic))
            return r->size;
    }
    return -1;
}

static int cmp_row(const void *a, const void *b)
{
    const struct ld_row *x = a, *y = b;
    if (x->broker != y->broker)
        return x->broker < y->broker ? -1 : 1;
    int c = strcmp(x->dir, y->dir);
    if (c)
        return c;
    c = strcmp(x->topic ? x->topic : "", y->topic ? y->topic : "");
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

int cli_cluster_log_dirs(struct cli *c, const char *topics_csv)
{
    char *copy = topics_csv ? strdup(topics_csv) : NULL, *save = NULL;
    const char *names[256];
    int n = 0;
    if (topics_csv && !copy)
        return CLI_EXIT_FAIL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        if (n == (int)(sizeof(names) / sizeof(names[0]))) {
            free(copy);
            return cli_usage_err("--topics names at most 256 topics");
        }
        names[n++] = t;
    }
    if (topics_csv && n == 0) {
        free(copy);
        return cli_usage_err("--topics needs at least one topic name");
    }
    struct ld_rows rows;
    int unreachable = 0;
    int r = ld_collect(c, topics_csv ? names : NULL, n, &rows, &unreachable);
    free(copy);
    if (r)
        return CLI_EXIT_FAIL;
    qsort(rows.v, rows.n, sizeof(*rows.v), cmp_row);
    struct out *o = out_new(c, 6, "BROKER", "DIR", "TOPIC", "PARTITION", "SIZE", "ERROR");
    for (size_t i = 0; i < rows.n; i++) {
        const struct ld_row *w = &rows.v[i];
        /* A dir without the requested partitions only shows when it has
         * nothing to show otherwise: its error, or its space in JSON. */
        if (!w->topic && !w->dir_error && !out_json(o))
            continue;
        char bid[16], part[16], size[24];
        snprintf(bid, sizeof(bid), "%d", (int)w->broker);
        snprintf(part, sizeof(part), "%d", (int)w->partition);
        snprintf(size, sizeof(size), "%lld", (long long)w->size);
        const char *err = w->dir_error ? cli_kerr_name(w->dir_error) : "";
        out_row(o);
        out_int(o, "broker", w->broker);
        out_str(o, "dir", w->dir);
        out_str(o, "topic", w->topic);
        out_int_or_null(o, "partition", w->topic ? w->partition : -1);
        out_int_or_null(o, "size", w->topic ? w->size : -1);
        out_int_or_null(o, "offset_lag", w->topic ? w->offset_lag : -1);
        out_bool(o, "is_future", w->is_future);
        out_int_or_null(o, "dir_total_bytes", w->total_bytes);
        out_int_or_null(o, "dir_usable_bytes", w->usable_bytes);
        out_str(o, "error", w->dir_error ? err : NULL);
        out_cells(o, bid, w->dir, w->topic ? w->topic : "-", w->topic ? part : "-",
                  w->topic ? size : "-", err);
    }
    out_end(o, "\n");
    ld_rows_free(&rows);
    return unreachable ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
