/* pstate: per-partition idempotent-producer state — entries sorted by
 * producer id in one array (ids are handed out in increasing blocks, so a new
 * producer is almost always appended at the end), the leader's checks, the
 * rebuild from log bytes, expiry and snapshot files. See pstate.h. */
#include "broker/replica/pstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/kerr.h"

struct pstate {
    struct pstate_entry *v;
    size_t n, cap;
};

int pstate_new(struct pstate **ret)
{
    struct pstate *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return -ENOMEM;
    *ret = ps;
    return 0;
}

void pstate_free(struct pstate *ps)
{
    if (!ps)
        return;
    free(ps->v);
    free(ps);
}

void pstate_clear(struct pstate *ps)
{
    ps->n = 0;
}

size_t pstate_count(const struct pstate *ps)
{
    return ps->n;
}

const struct pstate_entry *pstate_at(const struct pstate *ps, size_t i)
{
    return i < ps->n ? &ps->v[i] : NULL;
}

/* Index of the first entry with id >= @pid. */
static size_t lower_bound(const struct pstate *ps, int64_t pid)
{
    size_t lo = 0, hi = ps->n;
    if (ps->n && ps->v[ps->n - 1].producer_id < pid)
        return ps->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ps->v[mid].producer_id < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct pstate_entry *pstate_find(const struct pstate *ps, int64_t producer_id)
{
    size_t i = lower_bound(ps, producer_id);
    return i < ps->n && ps->v[i].producer_id == producer_id ? &ps->v[i] : NULL;
}

static struct pstate_entry *get_or_add(struct pstate *ps, int64_t pid)
{
    size_t i = lower_bound(ps, pid);
    if (i < ps->n && ps->v[i].producer_id == pid)
        return &ps->v[i];
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 8;
        struct pstate_entry *v = realloc(ps->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        ps->v = v;
        ps->cap = cap;
    }
    memmove(&ps->v[i + 1], &ps->v[i], (ps->n - i) * sizeof(*ps->v));
    ps->n++;
    struct pstate_entry *e = &ps->v[i];
    memset(e, 0, sizeof(*e));
    e->producer_id = pid;
    e->epoch = -1;
    e->last_timestamp = INT64_MIN;
    return e;
}

int32_t pstate_seq_add(int32_t seq, int32_t n)
{
    if (seq > INT32_MAX - n)
        return n - (INT32_MAX - seq) - 1;
    return seq + n;
}

static int32_t batch_last_seq(const struct batch_header *h)
{
    return pstate_seq_add(h->base_sequence, h->last_offset_delta);
}

int16_t pstate_check(const struct pstate *ps, const struct batch_header *h, bool *ret_dup,
                     struct pstate_batch *ret_orig)
{
    *ret_dup = false;
    if (h->producer_epoch < 0 || h->base_sequence < 0)
        return KERR_INVALID_RECORD;
    const struct pstate_entry *e = pstate_find(ps, h->producer_id);
    if (!e || e->epoch < 0)
        return KERR_NONE; /* no state: any sequence starts it (Kafka >= 2.5) */
    if (h->producer_epoch < e->epoch)
        return KERR_INVALID_PRODUCER_EPOCH;
    if (h->producer_epoch > e->epoch)
        return h->base_sequence == 0 ? KERR_NONE : KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    int32_t last = batch_last_seq(h);
    for (unsigned i = 0; i < e->n_batches; i++) {
        const struct pstate_batch *b = &e->batches[i];
        if (b->first_seq == h->base_sequence && b->last_seq == last) {
            *ret_dup = true;
            *ret_orig = *b;
            return KERR_NONE;
        }
    }
    if (e->n_batches == 0)
        return KERR_NONE;
    int32_t want = pstate_seq_add(e->batches[e->n_batches - 1].last_seq, 1);
    return h->base_sequence == want ? KERR_NONE : KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
}

int pstate_update(struct pstate *ps, const struct batch_header *h)
{
    if (h->producer_id < 0 || (h->attributes & BATCH_ATTR_CONTROL))
        return 0;
    struct pstate_entry *e = get_or_add(ps, h->producer_id);
    if (!e)
        return -ENOMEM;
    if (h->producer_epoch != e->epoch) {
        /* A new epoch starts a new sequence space: the old batches can no
         * longer be retried (their epoch is fenced). */
        e->epoch = h->producer_epoch;
        e->n_batches = 0;
    }
    if (e->n_batches == PSTATE_BATCHES) {
        memmove(&e->batches[0], &e->batches[1], (PSTATE_BATCHES - 1) * sizeof(e->batches[0]));
        e->n_batches--;
    }
    struct pstate_batch *b = &e->batches[e->n_batches++];
    b->first_seq = h->base_sequence;
    b->last_seq = batch_last_seq(h);
    b->first_offset = h->base_offset;
    b->last_offset = batch_last_offset(h);
    if (h->max_timestamp > e->last_timestamp)
        e->last_timestamp = h->max_timestamp;
    return 0;
}

int pstate_load(struct pstate *ps, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t at = 0;
    while (len - at >= BATCH_HEADER_SIZE) {
        struct batch_header h;
        if (batch_parse_header(p + at, len - at, &h) != 0 || h.length < 0)
            break;
        int64_t total = batch_total_size(&h);
        if ((uint64_t)total > len - at || total < BATCH_HEADER_SIZE)
            break;
        if (h.magic == BATCH_MAGIC_V2) {
            int r = pstate_update(ps, &h);
            if (r < 0)
                return r;
        }
        at += (size_t)total;
    }
    return 0;
}

size_t pstate_expire(struct pstate *ps, int64_t now_ms, int64_t expiration_ms)
{
    size_t out = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const struct pstate_entry *e = &ps->v[i];
        if (e->last_timestamp != INT64_MIN && now_ms - e->last_timestamp >= expiration_ms)
            continue;
        if (out != i)
            ps->v[out] = ps->v[i];
        out++;
    }
    size_t removed = ps->n - out;
    ps->n = out;
    return removed;
}

/* ---- snapshots ------------------------------------------------------------------------ */

#define SNAP_MAGIC       "WPS1"
#define SNAP_HEADER      (4 + 4 + 8 + 4 + 4)
#define SNAP_ENTRY_FIXED (8 + 8 + 2 + 1)
#define SNAP_BATCH       (4 + 4 + 8 + 8)
#define SNAP_MAX_BYTES   (256u << 20)
#define SNAP_NAME_DIGITS 20

static int snap_path(const char *dir, int64_t offset, char **ret)
{
    size_t n = strlen(dir) + SNAP_NAME_DIGITS + sizeof(PSTATE_SNAPSHOT_SUFFIX) + 2;
    char *p = malloc(n);
    if (!p)
        return -ENOMEM;
    snprintf(p, n, "%s/%020" PRId64 PSTATE_SNAPSHOT_SUFFIX, dir, offset);
    *ret = p;
    return 0;
}

int pstate_snapshot_encode(const struct pstate *ps, int64_t offset, uint32_t tail_crc,
                           uint8_t **ret_buf, size_t *ret_len)
{
    size_t size = SNAP_HEADER;
    for (size_t i = 0; i < ps->n; i++)
        size += SNAP_ENTRY_FIXED + (size_t)ps->v[i].n_batches * SNAP_BATCH;
    uint8_t *buf = malloc(size);
    if (!buf)
        return -ENOMEM;
    uint8_t *p = buf + 8;
    buf_store_be64(p, (uint64_t)offset);
    buf_store_be32(p + 8, tail_crc);
    buf_store_be32(p + 12, (uint32_t)ps->n);
    p += 16;
    for (size_t i = 0; i < ps->n; i++) {
        const struct pstate_entry *e = &ps->v[i];
        buf_store_be64(p, (uint64_t)e->producer_id);
        buf_store_be64(p + 8, (uint64_t)e->last_timestamp);
        buf_store_be16(p + 16, (uint16_t)e->epoch);
        p[18] = e->n_batches;
        p += SNAP_ENTRY_FIXED;
        for (unsigned j = 0; j < e->n_batches; j++) {
            const struct pstate_batch *b = &e->batches[j];
            buf_store_be32(p, (uint32_t)b->first_seq);
            buf_store_be32(p + 4, (uint32_t)b->last_seq);
            buf_store_be64(p + 8, (uint64_t)b->first_offset);
            buf_store_be64(p + 16, (uint64_t)b->last_offset);
            p += SNAP_BATCH;
        }
    }
    memcpy(buf, SNAP_MAGIC, 4);
    buf_store_be32(buf + 4, crc32c_update(0, buf + 8, size - 8));
    *ret_buf = buf;
    *ret_len = size;
    return 0;
}

int pstate_snapshot_write_bytes(const char *dir, int64_t offset, const uint8_t *buf, size_t len)
{
    char *path;
    int r = snap_path(dir, offset, &path);
    if (r < 0)
        return r;
    r = fsutil_write_atomic(path, buf, len);
    free(path);
    return r;
}

int pstate_snapshot_write(const struct pstate *ps, const char *dir, int64_t offset,
                          uint32_t tail_crc)
{
    uint8_t *buf;
    size_t len;
    int r = pstate_snapshot_encode(ps, offset, tail_crc, &buf, &len);
    if (r < 0)
        return r;
    r = pstate_snapshot_write_bytes(dir, offset, buf, len);
    free(buf);
    return r;
}

/* Parse a snapshot file's bytes into @ps (cleared first). -EBADMSG when
 * corrupt or not the offset its name says. */
static int snap_parse(struct pstate *ps, const uint8_t *d, size_t len, int64_t want_offset,
                      uint32_t *ret_tail_crc)
{
    pstate_clear(ps);
    if (len < SNAP_HEADER || memcmp(d, SNAP_MAGIC, 4) != 0)
        return -EBADMSG;
    if (buf_load_be32(d + 4) != crc32c_update(0, d + 8, len - 8))
        return -EBADMSG;
    if ((int64_t)buf_load_be64(d + 8) != want_offset)
        return -EBADMSG;
    *ret_tail_crc = buf_load_be32(d + 16);
    uint32_t count = buf_load_be32(d + 20);
    size_t at = SNAP_HEADER;
    if (count > (len - at) / SNAP_ENTRY_FIXED)
        return -EBADMSG;
    int64_t prev = -1;
    for (uint32_t i = 0; i < count; i++) {
        if (len - at < SNAP_ENTRY_FIXED)
            return -EBADMSG;
        int64_t pid = (int64_t)buf_load_be64(d + at);
        uint8_t nb = d[at + 18];
        if (pid <= prev || nb > PSTATE_BATCHES ||
            (len - at - SNAP_ENTRY_FIXED) < (size_t)nb * SNAP_BATCH)
            return -EBADMSG;
        prev = pid;
        struct pstate_entry *e = get_or_add(ps, pid);
        if (!e)
            return -ENOMEM;
        e->last_timestamp = (int64_t)buf_load_be64(d + at + 8);
        e->epoch = (int16_t)buf_load_be16(d + at + 16);
        e->n_batches = nb;
        at += SNAP_ENTRY_FIXED;
        for (unsigned j = 0; j < nb; j++) {
            struct pstate_batch *b = &e->batches[j];
            b->first_seq = (int32_t)buf_load_be32(d + at);
            b->last_seq = (int32_t)buf_load_be32(d + at + 4);
            b->first_offset = (int64_t)buf_load_be64(d + at + 8);
            b->last_offset = (int64_t)buf_load_be64(d + at + 16);
            at += SNAP_BATCH;
        }
    }
    return at == len ? 0 : -EBADMSG;
}

/* Snapshot offsets in @dir, sorted ascending, malloc'd. */
static int list_snaps(const char *dir, int64_t **ret, size_t *ret_n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int64_t *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strlen(name) != SNAP_NAME_DIGITS + strlen(PSTATE_SNAPSHOT_SUFFIX) ||
            strcmp(name + SNAP_NAME_DIGITS, PSTATE_SNAPSHOT_SUFFIX) != 0)
            continue;
        int64_t off = 0;
        bool ok = true;
        for (int i = 0; i < SNAP_NAME_DIGITS && ok; i++) {
            if (name[i] < '0' || name[i] > '9' || off > (INT64_MAX - 9) / 10)
                ok = false;
            else
                off = off * 10 + (name[i] - '0');
        }
        if (!ok)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            int64_t *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        v[n++] = off;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    for (size_t i = 1; i < n; i++) /* few files: insertion sort */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *ret = v;
    *ret_n = n;
    return 0;
}

static void unlink_snap(const char *dir, int64_t off)
{
    char *path;
    if (snap_path(dir, off, &path) == 0) {
        unlink(path);
        free(path);
    }
}

void pstate_snapshot_delete(const char *dir, int64_t offset)
{
    unlink_snap(dir, offset);
}

int pstate_snapshot_load(struct pstate *ps, const char *dir, int64_t max_offset,
                         pstate_tail_check_fn check, void *ud, int64_t *ret_offset)
{
    /* Snapshot temps of a process that crashed mid-write (ours may be in
     * progress on a worker thread and are left alone). */
    int stale = fsutil_remove_stale_temps(dir);
    if (stale > 0)
        log_info("pstate", "%s: removed %d temporary snapshot file(s) left by an earlier process",
                 dir, stale);
    int64_t *v;
    size_t n;
    int rc = list_snaps(dir, &v, &n);
    if (rc < 0)
        return rc;
    pstate_clear(ps);
    *ret_offset = -1;
    for (size_t i = n; i-- > 0;) {
        if (v[i] > max_offset)
            continue;
        char *path;
        if ((rc = snap_path(dir, v[i], &path)) < 0)
            break;
        uint8_t *data = NULL;
        size_t len = 0;
        rc = fsutil_read_file(path, SNAP_MAX_BYTES, &data, &len);
        free(path);
        uint32_t tail_crc = 0;
        if (rc == 0)
            rc = snap_parse(ps, data, len, v[i], &tail_crc);
        free(data);
        if (rc == -ENOMEM)
            break;
        if (rc == 0 && check && !check(ud, v[i], tail_crc))
            rc = -ESTALE;
        if (rc == 0) {
            *ret_offset = v[i];
            break;
        }
        /* Corrupt or unreadable: drop it; an older one (or the log) will do. */
        unlink_snap(dir, v[i]);
        pstate_clear(ps);
        rc = 0;
    }
    free(v);
    if (rc < 0)
        pstate_clear(ps);
    return rc;
}

int pstate_snapshot_delete_above(const char *dir, int64_t offset)
{
    int64_t *v;
    size_t n;
    int rc = list_snaps(dir, &v, &n);
    if (rc < 0)
        return rc;
    int del = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] > offset) {
            unlink_snap(dir, v[i]);
            del++;
        }
    free(v);
    return del;
}

int pstate_snapshot_retain(const char *dir, int keep_newest)
{
    int64_t *v;
    size_t n;
    int rc = list_snaps(dir, &v, &n);
    if (rc < 0)
        return rc;
    int del = 0;
    for (size_t i = 0; i + (size_t)keep_newest < n; i++) {
        unlink_snap(dir, v[i]);
        del++;
    }
    free(v);
    return del;
}
