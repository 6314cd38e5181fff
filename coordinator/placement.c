/* placement: the broker arrangement and the replica assignment described in
 * placement.h. */
#include "coordinator/placement.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/meta/state.h"

struct slot {
    int32_t id;
    uint32_t rack; /* index into the sorted rack names */
    const char *rack_name;
};

static bool has_rack(const struct cplace_broker *b)
{
    return b->rack && *b->rack;
}

static int cmp_id(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_rack_then_id(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    int c = strcmp(x->rack_name, y->rack_name);
    return c ? c : cmp_id(a, b);
}

/* Build the arranged list (see placement.h). *ret_racks is 0 when placement is
 * not rack-aware. */
static int arrange(const struct cplace_broker *brokers, size_t n, struct slot **ret,
                   uint32_t *ret_racks)
{
    if (n == 0 || n > INT32_MAX)
        return -EINVAL;
    struct slot *v = calloc(n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    bool racks = true;
    for (size_t i = 0; i < n; i++) {
        v[i].id = brokers[i].id;
        v[i].rack_name = has_rack(&brokers[i]) ? brokers[i].rack : "";
        racks = racks && has_rack(&brokers[i]);
    }
    qsort(v, n, sizeof(*v), racks ? cmp_rack_then_id : cmp_id);
    for (size_t i = 1; i < n; i++) {
        if (v[i].id == v[i - 1].id) {
            free(v);
            return -EINVAL;
        }
    }
    if (!racks) {
        *ret = v;
        *ret_racks = 0;
        return 0;
    }
    /* Number the racks and find where each one's run starts in @v. */
    uint32_t n_racks = 0;
    size_t *run = malloc((n + 1) * sizeof(*run));
    struct slot *out = malloc(n * sizeof(*out));
    if (!run || !out) {
        free(v);
        free(run);
        free(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(v[i].rack_name, v[i - 1].rack_name))
            run[n_racks++] = i;
        v[i].rack = n_racks - 1;
    }
    run[n_racks] = n;
    /* Round i takes the i-th broker of every rack that still has one. */
    size_t k = 0;
    for (size_t round = 0; k < n; round++)
        for (uint32_t r = 0; r < n_racks; r++)
            if (run[r] + round < run[r + 1])
                out[k++] = v[run[r] + round];
    free(v);
    free(run);
    *ret = out;
    *ret_racks = n_racks;
    return 0;
}

int cplace_index_of(const struct cplace_broker *brokers, size_t n_brokers, int32_t id,
                    uint32_t *ret_index)
{
    struct slot *list;
    uint32_t n_racks;
    int rc = arrange(brokers, n_brokers, &list, &n_racks);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    for (size_t i = 0; i < n_brokers; i++) {
        if (list[i].id == id) {
            *ret_index = (uint32_t)i;
            rc = 0;
            break;
        }
    }
    free(list);
    return rc;
}

int cplace_assign(const struct cplace_broker *brokers, size_t n_brokers,
                  const struct cplace_request *req, int32_t *ret_replicas)
{
    if (req->rf < 1 || (size_t)req->rf > n_brokers || req->n_parts < 0 ||
        req->first_partition < 0 || req->n_parts > INT32_MAX - req->first_partition)
        return -EINVAL;
    struct slot *list;
    uint32_t n_racks;
    int rc = arrange(brokers, n_brokers, &list, &n_racks);
    if (rc < 0)
        return rc;
    uint64_t n = n_brokers;
    /* Per-partition scratch: which list positions and racks are taken. */
    bool *used = calloc(n, sizeof(*used));
    bool *rack_used = calloc(n_racks ? n_racks : 1, sizeof(*rack_used));
    if (!used || !rack_used) {
        free(list);
        free(used);
        free(rack_used);
        return -ENOMEM;
    }
    int32_t *out = ret_replicas;
    for (int32_t i = 0; i < req->n_parts; i++) {
        uint64_t p = (uint64_t)req->first_partition + (uint64_t)i;
        uint64_t first = (p + req->start) % n;
        uint64_t shift = (uint64_t)req->start + p / n;
        *out++ = list[first].id;
        if (req->rf == 1)
            continue;
        memset(used, 0, n * sizeof(*used));
        memset(rack_used, 0, (n_racks ? n_racks : 1) * sizeof(*rack_used));
        used[first] = true;
        uint32_t racks_taken = 0;
        if (n_racks) {
            rack_used[list[first].rack] = true;
            racks_taken = 1;
        }
        /* Followers walk the other n-1 positions starting at a shifted offset;
         * with racks, a position whose rack is taken waits until all are. */
        uint64_t k = 0;
        for (int32_t j = 1; j < req->rf; j++) {
            for (;; k++) {
                uint64_t pos = (first + 1 + (shift * (n_racks ? n_racks : 1) + k) % (n - 1)) % n;
                if (used[pos])
                    continue;
                if (n_racks && rack_used[list[pos].rack] && racks_taken < n_racks)
                    continue;
                used[pos] = true;
                if (n_racks && !rack_used[list[pos].rack]) {
                    rack_used[list[pos].rack] = true;
                    racks_taken++;
                }
                *out++ = list[pos].id;
                k++;
                break;
            }
        }
    }
    free(list);
    free(used);
    free(rack_used);
    return 0;
}

int cplace_live_brokers(const struct cstate *s, struct cplace_broker **ret, size_t *ret_n)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_brokers; i++)
        n += s->brokers[i].state == CSTATE_BROKER_REGISTERED;
    struct cplace_broker *v = NULL;
    if (n && !(v = calloc(n, sizeof(*v))))
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < s->n_brokers; i++) {
        if (s->brokers[i].state != CSTATE_BROKER_REGISTERED)
            continue;
        v[k].id = s->brokers[i].id;
        v[k].rack = s->brokers[i].rack;
        k++;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}
