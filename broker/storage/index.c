/* index: offset and time index entry codecs and pread-based binary search over an
 * index that may be partly on disk and partly in memory. */
#include "broker/storage/index.h"

#include <errno.h>
#include <string.h>

#include "common/buf.h"
#include "common/fsutil.h"

/* The last steps of a search read one page of entries at once. */
#define INDEX_PAGE 4096

void index_entry_encode(void *p, int32_t rel, int32_t pos)
{
    buf_store_be32(p, (uint32_t)rel);
    buf_store_be32((uint8_t *)p + 4, (uint32_t)pos);
}

void index_entry_decode(const void *p, struct index_entry *ret)
{
    ret->rel = (int32_t)buf_load_be32(p);
    ret->pos = (int32_t)buf_load_be32((const uint8_t *)p + 4);
}

void timeindex_entry_encode(void *p, int64_t ts, int32_t rel)
{
    buf_store_be64(p, (uint64_t)ts);
    buf_store_be32((uint8_t *)p + 8, (uint32_t)rel);
}

void timeindex_entry_decode(const void *p, struct timeindex_entry *ret)
{
    ret->ts = (int64_t)buf_load_be64(p);
    ret->rel = (int32_t)buf_load_be32((const uint8_t *)p + 8);
}

static size_t entry_size(enum index_key key)
{
    return key == TIMEINDEX_KEY_TS || key == TIMEINDEX_KEY_REL ? TIMEINDEX_ENTRY_SIZE
                                                               : INDEX_ENTRY_SIZE;
}

static int64_t entry_key(enum index_key key, const uint8_t *e)
{
    switch (key) {
    case INDEX_KEY_REL:
        return (int32_t)buf_load_be32(e);
    case INDEX_KEY_POS:
        return (int32_t)buf_load_be32(e + 4);
    case TIMEINDEX_KEY_TS:
        return (int64_t)buf_load_be64(e);
    case TIMEINDEX_KEY_REL:
        return (int32_t)buf_load_be32(e + 8);
    }
    return 0;
}

/* Copy entries [first, first + n) into @out. */
static int read_range(const struct index_view *v, int64_t first, int64_t n, uint8_t *out)
{
    size_t es = entry_size(v->key);
    if (first < v->disk_n) {
        int64_t dn = v->disk_n - first < n ? v->disk_n - first : n;
        int r = fsutil_pread_all(v->fd, out, (size_t)dn * es, first * (int64_t)es);
        if (r < 0)
            return r;
        out += dn * es;
        first += dn;
        n -= dn;
    }
    if (n > 0)
        memcpy(out, v->mem + (size_t)(first - v->disk_n) * es, (size_t)n * es);
    return 0;
}

int index_view_read(const struct index_view *v, int64_t i, void *ret)
{
    if (i < 0 || i >= index_view_count(v))
        return -ERANGE;
    return read_range(v, i, 1, ret);
}

static int goes_left(int64_t k, int64_t target, int inclusive)
{
    return inclusive ? k <= target : k < target;
}

int index_view_rank(const struct index_view *v, int64_t target, int inclusive, int64_t *ret)
{
    size_t es = entry_size(v->key);
    int64_t page_n = INDEX_PAGE / (int64_t)es;
    int64_t lo = 0, hi = index_view_count(v);
    uint8_t e[INDEX_PAGE];
    int r;

    /* Invariant: entries below lo go left, entries at or above hi do not. */
    while (hi - lo > page_n) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((r = read_range(v, mid, 1, e)) < 0)
            return r;
        if (goes_left(entry_key(v->key, e), target, inclusive))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (hi > lo) {
        if ((r = read_range(v, lo, hi - lo, e)) < 0)
            return r;
        int64_t n = hi - lo, a = 0, b = n;
        while (a < b) {
            int64_t mid = a + (b - a) / 2;
            if (goes_left(entry_key(v->key, e + (size_t)mid * es), target, inclusive))
                a = mid + 1;
            else
                b = mid;
        }
        lo += a;
    }
    *ret = lo;
    return 0;
}
