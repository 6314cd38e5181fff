/* plan: the reassignment planner (see plan.h).
 *
 * Four passes over the partitions in (topic, partition) order, on broker
 * positions (brokers sorted by id):
 *   1. keep: every current replica stays, except one on a broker outside the
 *      set, a second copy on one broker, or one that would leave the partition
 *      on fewer racks than it can span; those slots become holes;
 *   2. fill: each hole takes the least loaded broker not yet in the partition,
 *      a new rack first;
 *   3. balance: while the most and least loaded brokers differ by two or more,
 *      move one replica from a most loaded to a least loaded broker, from the
 *      partition where that helps the topic's own spread most, a follower
 *      before a leader and a replica just placed before one that has data;
 *   4. leaders: while a broker leads two or more partitions more than another
 *      replica of one of them, that replica goes first.
 * Each move in pass 3 takes one replica above a broker's share to one below it,
 * so no replica moves that balance does not need. */
#include "cli/plan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct planner {
    size_t nb, np;
    int32_t *ids; /* broker ids, sorted */
    int *rack;    /* rack number of each broker position; -1 when racks are off */
    int nracks;
    size_t *order; /* partitions in (topic, partition) order */
    int *topic;    /* topic number of each partition (input index) */
    int ntopics;
    size_t *off; /* first slot of each partition (input index) */
    int *slot;   /* broker position per slot, -1 = hole */
    bool *kept;  /* the slot's broker already has the data */
    long *load, *leads;
    long *tload, *tleads; /* per topic and broker: [topic * nb + b] */
};

static const struct plan_part *g_parts; /* for the qsort comparator only */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_part(const void *a, const void *b)
{
    const struct plan_part *x = &g_parts[*(const size_t *)a], *y = &g_parts[*(const size_t *)b];
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

static int broker_pos(const struct planner *pl, int32_t id)
{
    const int32_t *p = bsearch(&id, pl->ids, pl->nb, sizeof(id), cmp_i32);
    return p ? (int)(p - pl->ids) : -1;
}

static int rf_of(const struct plan_part *parts, size_t i)
{
    return parts[i].n_replicas;
}

static int span_needed(const struct planner *pl, int rf)
{
    return pl->nracks < rf ? pl->nracks : rf;
}

static bool part_has(const struct planner *pl, size_t i, int rf, int b)
{
    for (int r = 0; r < rf; r++)
        if (pl->slot[pl->off[i] + (size_t)r] == b)
            return true;
    return false;
}

/* Distinct racks of partition @i if slot @skip held broker @with instead
 * (@skip -1: as it is). */
static int racks_with(const struct planner *pl, size_t i, int rf, int skip, int with)
{
    int seen[64], n = 0;
    for (int r = 0; r < rf; r++) {
        int b = r == skip ? with : pl->slot[pl->off[i] + (size_t)r];
        if (b < 0)
            continue;
        int rk = pl->rack[b];
        bool dup = false;
        for (int k = 0; k < n && !dup; k++)
            dup = seen[k] == rk;
        if (!dup && n < 64)
            seen[n++] = rk;
    }
    return n;
}

/* Whether a replica of partition @i other than slot @skip is on @b's rack. */
static bool rack_taken(const struct planner *pl, size_t i, int rf, int skip, int b)
{
    for (int r = 0; r < rf; r++) {
        int o = pl->slot[pl->off[i] + (size_t)r];
        if (r != skip && o >= 0 && pl->rack[o] == pl->rack[b])
            return true;
    }
    return false;
}

static void place(struct planner *pl, size_t i, size_t s, int b)
{
    pl->slot[s] = b;
    pl->load[b]++;
    pl->tload[(size_t)pl->topic[i] * pl->nb + (size_t)b]++;
}

static void unplace(struct planner *pl, size_t i, size_t s)
{
    int b = pl->slot[s];
    pl->load[b]--;
    pl->tload[(size_t)pl->topic[i] * pl->nb + (size_t)b]--;
    pl->slot[s] = -1;
}

/* Pass 1. */
static void keep(struct planner *pl, const struct plan_part *parts)
{
    for (size_t k = 0; k < pl->np; k++) {
        size_t i = pl->order[k];
        int rf = rf_of(parts, i);
        int dups_allowed = rf - span_needed(pl, rf);
        for (int r = 0; r < rf; r++) {
            size_t s = pl->off[i] + (size_t)r;
            int b = broker_pos(pl, parts[i].replicas[r]);
            if (b < 0 || part_has(pl, i, r, b))
                continue;
            if (pl->nracks > 0 && rack_taken(pl, i, rf, r, b)) {
                /* its rack is already there */
                if (dups_allowed == 0)
                    continue;
                dups_allowed--;
            }
            place(pl, i, s, b);
            pl->kept[s] = true;
        }
    }
}

/* Lexicographic order of two three-part keys. */
static bool key_less(const long *x, const long *y)
{
    for (int k = 0; k < 3; k++)
        if (x[k] != y[k])
            return x[k] < y[k];
    return false;
}

/* Pass 2. */
static void fill(struct planner *pl, const struct plan_part *parts)
{
    for (size_t k = 0; k < pl->np; k++) {
        size_t i = pl->order[k];
        int rf = rf_of(parts, i);
        for (int r = 0; r < rf; r++) {
            size_t s = pl->off[i] + (size_t)r;
            if (pl->slot[s] >= 0)
                continue;
            int best = -1;
            long best_key[3] = {0};
            for (size_t b = 0; b < pl->nb; b++) {
                if (part_has(pl, i, rf, (int)b))
                    continue;
                long key[3] = {pl->nracks > 0 && rack_taken(pl, i, rf, r, (int)b), pl->load[b],
                               pl->tload[(size_t)pl->topic[i] * pl->nb + b]};
                if (best < 0 || key_less(key, best_key)) {
                    best = (int)b;
                    memcpy(best_key, key, sizeof(key));
                }
            }
            /* rf <= nb, so a broker not in the partition always exists */
            place(pl, i, s, best);
        }
    }
}

/* The best slot to move from broker @a to broker @b, or -1. */
static long best_move(const struct planner *pl, const struct plan_part *parts, int a, int b,
                      size_t *ret_i)
{
    long best = -1;
    long best_score = 0;
    for (size_t k = 0; k < pl->np; k++) {
        size_t i = pl->order[k];
        int rf = rf_of(parts, i);
        if (part_has(pl, i, rf, b))
            continue;
        for (int r = 0; r < rf; r++) {
            size_t s = pl->off[i] + (size_t)r;
            if (pl->slot[s] != a)
                continue;
            if (pl->nracks > 0) {
                int now = racks_with(pl, i, rf, -1, -1), after = racks_with(pl, i, rf, r, b);
                if (after < now && after < span_needed(pl, rf))
                    continue;
            }
            size_t t = (size_t)pl->topic[i] * pl->nb;
            long score = (pl->tload[t + (size_t)a] - pl->tload[t + (size_t)b]) * 4 + (r != 0) * 2 +
                         !pl->kept[s];
            if (best < 0 || score > best_score) {
                best = (long)s;
                best_score = score;
                *ret_i = i;
            }
        }
    }
    return best;
}

static int cmp_load_desc_ctx(const long *load, int x, int y)
{
    if (load[x] != load[y])
        return load[x] > load[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* Brokers by load, most loaded first (ties: lower id first). */
static void by_load(const long *load, int *pos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pos[i] = (int)i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp_load_desc_ctx(load, pos[j - 1], pos[j]) > 0; j--) {
            int t = pos[j];
            pos[j] = pos[j - 1];
            pos[j - 1] = t;
        }
}

/* Pass 3. */
static int balance(struct planner *pl, const struct plan_part *parts, size_t total)
{
    int *pos = malloc(pl->nb * sizeof(*pos));
    if (!pos)
        return -ENOMEM;
    for (size_t iter = 0; iter < total * 2; iter++) {
        by_load(pl->load, pos, pl->nb);
        bool moved = false;
        for (size_t x = 0; x < pl->nb && !moved; x++) {
            int a = pos[x];
            for (size_t y = pl->nb; y-- > x + 1 && !moved;) {
                int b = pos[y];
                if (pl->load[a] - pl->load[b] < 2)
                    break;
                size_t i = 0;
                long s = best_move(pl, parts, a, b, &i);
                if (s < 0)
                    continue;
                unplace(pl, i, (size_t)s);
                place(pl, i, (size_t)s, b);
                pl->kept[s] = false;
                moved = true;
            }
        }
        if (!moved)
            break;
    }
    free(pos);
    return 0;
}

/* Pass 4: reorder so that preferred leaders spread. */
static int balance_leaders(struct planner *pl, const struct plan_part *parts)
{
    for (size_t k = 0; k < pl->np; k++) {
        size_t i = pl->order[k];
        int b = pl->slot[pl->off[i]];
        pl->leads[b]++;
        pl->tleads[(size_t)pl->topic[i] * pl->nb + (size_t)b]++;
    }
    int *pos = malloc(pl->nb * sizeof(*pos));
    if (!pos)
        return -ENOMEM;
    for (size_t iter = 0; iter < pl->np * 2; iter++) {
        by_load(pl->leads, pos, pl->nb);
        bool moved = false;
        for (size_t x = 0; x < pl->nb && !moved; x++) {
            int a = pos[x];
            long best_score = 0;
            size_t best_i = 0;
            int best_r = -1;
            for (size_t k = 0; k < pl->np; k++) {
                size_t i = pl->order[k];
                size_t o = pl->off[i];
                if (pl->slot[o] != a)
                    continue;
                size_t t = (size_t)pl->topic[i] * pl->nb;
                for (int r = 1; r < rf_of(parts, i); r++) {
                    int b = pl->slot[o + (size_t)r];
                    if (pl->leads[a] - pl->leads[b] < 2)
                        continue;
                    long score = (pl->leads[a] - pl->leads[b]) * 1000 +
                                 (pl->tleads[t + (size_t)a] - pl->tleads[t + (size_t)b]);
                    if (best_r < 0 || score > best_score) {
                        best_score = score;
                        best_i = i;
                        best_r = r;
                    }
                }
            }
            if (best_r < 0)
                continue;
            size_t o = pl->off[best_i], t = (size_t)pl->topic[best_i] * pl->nb;
            int b = pl->slot[o + (size_t)best_r];
            /* b goes first; the others keep their order */
            memmove(&pl->slot[o + 1], &pl->slot[o], (size_t)best_r * sizeof(int));
            pl->slot[o] = b;
            pl->leads[a]--;
            pl->leads[b]++;
            pl->tleads[t + (size_t)a]--;
            pl->tleads[t + (size_t)b]++;
            moved = true;
        }
        if (!moved)
            break;
    }
    free(pos);
    return 0;
}

static void planner_free(struct planner *pl)
{
    free(pl->ids);
    free(pl->rack);
    free(pl->order);
    free(pl->topic);
    free(pl->off);
    free(pl->slot);
    free(pl->kept);
    free(pl->load);
    free(pl->leads);
    free(pl->tload);
    free(pl->tleads);
}

/* Rack numbers (sorted by name) when every broker has a rack. */
static void setup_racks(struct planner *pl, const struct plan_broker *brokers, size_t nb)
{
    bool all = true;
    for (size_t i = 0; i < nb; i++)
        all = all && brokers[i].rack && brokers[i].rack[0];
    for (size_t i = 0; i < nb; i++)
        pl->rack[i] = -1;
    if (!all)
        return;
    for (size_t i = 0; i < nb; i++) {
        /* the rack's number: how many distinct rack names sort before it */
        int n = 0;
        for (size_t j = 0; j < nb; j++) {
            bool seen = false;
            for (size_t k = 0; k < j && !seen; k++)
                seen = strcmp(brokers[k].rack, brokers[j].rack) == 0;
            if (!seen && strcmp(brokers[j].rack, brokers[i].rack) < 0)
                n++;
        }
        pl->rack[broker_pos(pl, brokers[i].id)] = n;
        if (n + 1 > pl->nracks)
            pl->nracks = n + 1;
    }
}

int plan_generate(const struct plan_broker *brokers, size_t n_brokers,
                  const struct plan_part *parts, size_t n_parts, int32_t *ret_replicas)
{
    if (n_brokers == 0)
        return -EINVAL;
    struct planner pl = {.nb = n_brokers, .np = n_parts};
    size_t total = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].n_replicas < 1 || (size_t)parts[i].n_replicas > n_brokers ||
            parts[i].n_replicas > 64)
            return -EINVAL;
        total += (size_t)parts[i].n_replicas;
    }
    pl.ids = malloc(n_brokers * sizeof(*pl.ids));
    pl.rack = malloc(n_brokers * sizeof(*pl.rack));
    pl.order = malloc((n_parts + 1) * sizeof(*pl.order));
    pl.topic = malloc((n_parts + 1) * sizeof(*pl.topic));
    pl.off = malloc((n_parts + 1) * sizeof(*pl.off));
    pl.slot = malloc((total + 1) * sizeof(*pl.slot));
    pl.kept = calloc(total + 1, sizeof(*pl.kept));
    pl.load = calloc(n_brokers, sizeof(*pl.load));
    pl.leads = calloc(n_brokers, sizeof(*pl.leads));
    int r = -ENOMEM;
    if (!pl.ids || !pl.rack || !pl.order || !pl.topic || !pl.off || !pl.slot || !pl.kept ||
        !pl.load || !pl.leads)
        goto out;
    r = -EINVAL;
    for (size_t i = 0; i < n_brokers; i++)
        pl.ids[i] = brokers[i].id;
    qsort(pl.ids, n_brokers, sizeof(*pl.ids), cmp_i32);
    for (size_t i = 1; i < n_brokers; i++)
        if (pl.ids[i] == pl.ids[i - 1])
            goto out;
    setup_racks(&pl, brokers, n_brokers);

    size_t o = 0;
    for (size_t i = 0; i < n_parts; i++) {
        pl.order[i] = i;
        pl.off[i] = o;
        o += (size_t)parts[i].n_replicas;
    }
    for (size_t s = 0; s < total; s++)
        pl.slot[s] = -1;
    g_parts = parts;
    qsort(pl.order, n_parts, sizeof(*pl.order), cmp_part);
    for (size_t k = 0; k < n_parts; k++) {
        if (k > 0 && cmp_part(&pl.order[k - 1], &pl.order[k]) == 0)
            goto out;
        if (k > 0 && strcmp(parts[pl.order[k - 1]].topic, parts[pl.order[k]].topic) != 0)
            pl.ntopics++;
        pl.topic[pl.order[k]] = pl.ntopics;
    }
    pl.ntopics++;
    r = -ENOMEM;
    pl.tload = calloc((size_t)pl.ntopics * n_brokers, sizeof(*pl.tload));
    pl.tleads = calloc((size_t)pl.ntopics * n_brokers, sizeof(*pl.tleads));
    if (!pl.tload || !pl.tleads)
        goto out;

    keep(&pl, parts);
    fill(&pl, parts);
    r = balance(&pl, parts, total);
    if (r == 0)
        r = balance_leaders(&pl, parts);
    if (r == 0)
        for (size_t s = 0; s < total; s++)
            ret_replicas[s] = pl.ids[pl.slot[s]];
out:
    planner_free(&pl);
    return r;
}

size_t plan_count_moves(const struct plan_part *parts, size_t n_parts, const int32_t *proposed)
{
    size_t moves = 0, o = 0;
    for (size_t i = 0; i < n_parts; i++) {
        for (int r = 0; r < parts[i].n_replicas; r++) {
            bool had = false;
            for (int k = 0; k < parts[i].n_replicas && !had; k++)
                had = parts[i].replicas[k] == proposed[o + (size_t)r];
            moves += !had;
        }
        o += (size_t)parts[i].n_replicas;
    }
    return moves;
}
