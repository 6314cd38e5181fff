/* lag: committed offset, log end offset and lag per partition of a group. */
#include "broker/group/lag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/group/offset_map.h"
#include "broker/kafka/dispatch.h"
#include "broker/replica/repl.h"
#include "broker/replicas.h"
#include "broker/storage/logmgr.h"
#include "broker/storage/plog.h"
#include "common/kerr.h"

int64_t lag_of(int64_t committed, int64_t log_end)
{
    if (committed < 0 || log_end < 0)
        return -1;
    return log_end > committed ? log_end - committed : 0;
}

void lag_entry_row(const struct omap_entry *e, const struct lag_source *src, struct lag_row *ret)
{
    ret->topic = e->topic;
    ret->partition = e->partition;
    ret->committed = e->offset;
    ret->log_end = src && src->log_end ? src->log_end(src->ud, e->topic, e->partition) : -1;
    ret->lag = lag_of(ret->committed, ret->log_end);
}

static int row_cmp(const void *a, const void *b)
{
    const struct lag_row *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

int lag_group(const struct omap *m, const char *group, const struct lag_source *src,
              struct lag_row **ret_rows, size_t *ret_n)
{
    return lag_group_rows(omap_group(m, group), src, ret_rows, ret_n);
}

int lag_group_rows(const struct omap_group *g, const struct lag_source *src,
                   struct lag_row **ret_rows, size_t *ret_n)
{
    size_t n = g ? g->n : 0;
    struct lag_row *rows = NULL;
    if (n) {
        rows = calloc(n, sizeof(*rows));
        if (!rows)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        lag_entry_row(&g->entries[i], src, &rows[i]);
    if (n > 1)
        qsort(rows, n, sizeof(*rows), row_cmp);
    *ret_rows = rows;
    *ret_n = n;
    return 0;
}

int64_t lag_total(const struct lag_row *rows, size_t n)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].lag > 0)
            sum += rows[i].lag;
    return sum;
}

static int64_t broker_log_end(void *ud, const char *topic, int32_t partition)
{
    struct broker_ctx *b = ud;
    struct replicas_leader l;
    if (replicas_lookup(b->reps, topic, partition, -1, &l) == KERR_NONE)
        return l.high_watermark;
    /* a follower's HW trails the leader's by at most one fetch */
    struct plog *log = logmgr_get(b->lm, topic, partition);
    return log ? plog_high_watermark(log) : -1;
}

struct lag_source lag_broker_source(struct broker_ctx *b)
{
    struct lag_source s = {.log_end = broker_log_end, .ud = b};
    return s;
}
