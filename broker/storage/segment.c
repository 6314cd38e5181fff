/* segment: a segment's files, its sparse indexes (kept in step with appends,
 * searched with pread, rebuilt from the log), batch-header walks and the
 * sequential validating scan that recovery runs. */
#include "broker/storage/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/storage/index.h"
#include "broker/storage/plog_internal.h"
#include "common/crc32c.h"
#include "common/fsutil.h"

const char *const seg_suffix[SEG_KINDS] = {".log", ".index", ".timeindex"};

struct segment *seg_new(int64_t base, int64_t now_ms)
{
    struct segment *seg = calloc(1, sizeof(*seg));
    if (!seg)
        return NULL;
    seg->base = base;
    seg->max_ts = -1;
    seg->max_ts_offset = -1;
    seg->first_ts = SEG_TS_NONE;
    seg->created_ms = now_ms;
    seg->idx_last_pos = -1;
    seg->tidx_last_ts = -1;
    return seg;
}

void seg_free(struct segment *seg)
{
    if (!seg)
        return;
    for (int k = 0; k < SEG_KINDS; k++)
        fdcache_release_slot(&seg->files[k]);
    free(seg->pend);
    free(seg);
}

int seg_path(const struct plog *log, int64_t base, enum seg_kind kind, const char *extra, char *buf,
             size_t n)
{
    int r = snprintf(buf, n, "%s/%020lld%s%s", log->dir, (long long)base, seg_suffix[kind],
                     extra ? extra : "");
    if (r < 0 || (size_t)r >= n)
        return -ENAMETOOLONG;
    return 0;
}

int seg_acquire(struct plog *log, struct segment *seg, enum seg_kind kind, int extra_oflags,
                struct seg_file **ret)
{
    char path[4096];
    if (!seg->files[kind]) {
        int r = seg_path(log, seg->base, kind, NULL, path, sizeof(path));
        if (r < 0)
            return r;
    }
    /* A lost index file is recreated empty (it is only an accelerator); a lost
     * .log is an error. */
    int oflags = O_RDWR | extra_oflags | (kind == SEG_LOG ? 0 : O_CREAT);
    return fdcache_acquire(log->fc, &seg->files[kind], path, oflags, ret);
}

int seg_create_files(struct plog *log, struct segment *seg)
{
    for (int k = 0; k < SEG_KINDS; k++) {
        struct seg_file *f;
        int r = seg_acquire(log, seg, (enum seg_kind)k, O_CREAT | O_TRUNC, &f);
        if (r < 0)
            return r;
        seg_file_unref(f);
    }
    return 0;
}

int seg_unlink_files(struct plog *log, struct segment *seg)
{
    int err = 0;
    for (int k = 0; k < SEG_KINDS; k++) {
        char path[4096];
        fdcache_release_slot(&seg->files[k]);
        int r = seg_path(log, seg->base, (enum seg_kind)k, NULL, path, sizeof(path));
        if (r == 0 && unlink(path) < 0 && errno != ENOENT)
            r = -errno;
        if (r < 0 && err == 0)
            err = r;
    }
    return err;
}

/* ---- batch headers -------------------------------------------------------------- */

void seg_reader_init(struct seg_reader *r, int fd, int64_t limit, void *buf, size_t cap)
{
    r->fd = fd;
    r->limit = limit;
    r->buf = buf;
    r->cap = cap;
    r->off = 0;
    r->len = 0;
    r->last_total = 0;
}

int seg_check_header(const struct batch_header *h, int64_t pos, int64_t limit)
{
    if (h->length < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD || h->magic != BATCH_MAGIC_V2 ||
        h->base_offset < 0 || h->last_offset_delta < 0 ||
        h->base_offset > INT64_MAX - 1 - h->last_offset_delta || batch_total_size(h) > limit - pos)
        return -EBADMSG;
    return 0;
}

/* pread until @n bytes or end of file; the number of bytes read. */
static int64_t pread_upto(int fd, void *buf, size_t n, int64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (uint8_t *)buf + got, n - got, off + (int64_t)got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (int64_t)got;
}

int seg_reader_header(struct seg_reader *r, int64_t pos, struct batch_header *ret)
{
    if (pos == r->limit)
        return 0;
    if (pos > r->limit || r->limit - pos < BATCH_HEADER_SIZE)
        return -EBADMSG;
    if (pos < r->off || pos + BATCH_HEADER_SIZE > r->off + (int64_t)r->len) {
        /* Read ahead over small batches; past a big one only its header, so a fetch
         * of large batches does not copy the data it will sendfile. */
        int64_t want = r->last_total > (int64_t)r->cap / 4 ? BATCH_HEADER_SIZE : (int64_t)r->cap;
        if (want > r->limit - pos)
            want = r->limit - pos;
        int64_t got = pread_upto(r->fd, r->buf, (size_t)want, pos);
        if (got < 0)
            return (int)got;
        r->off = pos;
        r->len = (size_t)got;
        if (got < BATCH_HEADER_SIZE)
            return -EBADMSG; /* the file is shorter than the segment thinks */
    }
    struct batch_header h;
    int rc = batch_parse_header(r->buf + (pos - r->off), BATCH_HEADER_SIZE, &h);
    if (rc < 0)
        return rc;
    if ((rc = seg_check_header(&h, pos, r->limit)) < 0)
        return rc;
    r->last_total = batch_total_size(&h);
    *ret = h;
    return 1;
}

int seg_walk_to(struct seg_reader *r, int64_t pos, int64_t offset, int64_t *ret_pos,
                struct batch_header *ret_h, int64_t *ret_end)
{
    struct batch_header h;
    for (;;) {
        int rc = seg_reader_header(r, pos, &h);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            *ret_pos = pos;
            return 0;
        }
        if (batch_last_offset(&h) >= offset) {
            *ret_pos = pos;
            *ret_h = h;
            return 1;
        }
        if (ret_end)
            *ret_end = batch_last_offset(&h) + 1;
        pos += batch_total_size(&h);
    }
}

/* ---- index maintenance ---------------------------------------------------------- */

static struct seg_pending *pending(struct segment *seg)
{
    if (!seg->pend)
        seg->pend = calloc(1, sizeof(*seg->pend));
    return seg->pend;
}

static void add_time_entry(struct plog *log, struct segment *seg, int64_t pos)
{
    struct seg_pending *p = pending(seg);
    if (p && p->tidx_n * TIMEINDEX_ENTRY_SIZE + TIMEINDEX_ENTRY_SIZE > SEG_PEND_TIDX_BYTES) {
        seg_write_pending(log, seg, false);
        p = pending(seg);
    }
    if (!p)
        return;
    timeindex_entry_encode(p->tidx + p->tidx_n * TIMEINDEX_ENTRY_SIZE, seg->max_ts,
                           (int32_t)(seg->max_ts_offset - seg->base));
    p->tidx_n++;
    seg->tidx_n++;
    seg->tidx_last_ts = seg->max_ts;
    seg->tidx_last_pos = pos;
}

void seg_index_batch(struct plog *log, struct segment *seg, int64_t pos,
                     const struct batch_header *h)
{
    int64_t interval = log->cfg.index_interval_bytes;
    if (pos == 0)
        seg->first_ts = h->max_timestamp;
    if (h->max_timestamp > seg->max_ts) {
        seg->max_ts = h->max_timestamp;
        seg->max_ts_offset = h->base_offset;
    }
    if (pos > INT32_MAX)
        return; /* positions must fit the index; the segment rolls before this */

    if ((seg->idx_n == 0 || pos - seg->idx_last_pos >= interval) &&
        seg->idx_n < plog_index_max_entries(log, INDEX_ENTRY_SIZE)) {
        struct seg_pending *p = pending(seg);
        if (p && p->idx_n * INDEX_ENTRY_SIZE + INDEX_ENTRY_SIZE > SEG_PEND_IDX_BYTES) {
            seg_write_pending(log, seg, false);
            p = pending(seg);
        }
        if (p) {
            index_entry_encode(p->idx + p->idx_n * INDEX_ENTRY_SIZE,
                               (int32_t)(h->base_offset - seg->base), (int32_t)pos);
            p->idx_n++;
            seg->idx_n++;
            seg->idx_last_pos = pos;
        }
    }
    if (seg->max_ts > seg->tidx_last_ts &&
        (seg->tidx_n == 0 || pos - seg->tidx_last_pos >= interval) &&
        seg->tidx_n < plog_index_max_entries(log, TIMEINDEX_ENTRY_SIZE))
        add_time_entry(log, seg, pos);
}

/* Write @n pending entries of @es bytes after the @disk_n already in the file. On
 * failure cut the file back so it holds whole, valid entries only. */
static int write_entries(struct plog *log, struct segment *seg, enum seg_kind kind,
                         const uint8_t *data, int64_t n, size_t es, int64_t disk_n)
{
    struct seg_file *f;
    int r = seg_acquire(log, seg, kind, 0, &f);
    if (r < 0)
        return r;
    r = fsutil_pwrite_all(seg_file_fd(f), data, (size_t)n * es, disk_n * (int64_t)es);
    if (r < 0 && ftruncate(seg_file_fd(f), disk_n * (int64_t)es) < 0) {
        /* Leave it: a torn entry makes the next open rebuild the index. */
    }
    seg_file_unref(f);
    return r;
}

int seg_write_pending(struct plog *log, struct segment *seg, bool final_ts)
{
    if (final_ts && seg->max_ts > seg->tidx_last_ts && seg->size <= INT32_MAX)
        add_time_entry(log, seg, seg->size);
    struct seg_pending *p = seg->pend;
    if (!p)
        return 0;
    int err = 0;
    if (p->idx_n) {
        int64_t disk_n = seg->idx_n - p->idx_n;
        int r = write_entries(log, seg, SEG_INDEX, p->idx, p->idx_n, INDEX_ENTRY_SIZE, disk_n);
        if (r < 0) {
            seg->idx_n = (int32_t)disk_n;
            err = r;
        }
    }
    if (p->tidx_n) {
        int64_t disk_n = seg->tidx_n - p->tidx_n;
        int r = write_entries(log, seg, SEG_TIMEINDEX, p->tidx, p->tidx_n, TIMEINDEX_ENTRY_SIZE,
                              disk_n);
        if (r < 0) {
            seg->tidx_n = (int32_t)disk_n;
            if (err == 0)
                err = r;
        }
    }
    free(p);
    seg->pend = NULL;
    return err;
}

/* A view over one of the segment's indexes; *@ret_f holds the file when entries
 * are on disk (release with seg_file_unref, NULL-safe). */
static int open_view(struct plog *log, struct segment *seg, enum seg_kind kind, enum index_key key,
                     struct index_view *v, struct seg_file **ret_f)
{
    struct seg_pending *p = seg->pend;
    int64_t n = kind == SEG_INDEX ? seg->idx_n : seg->tidx_n;
    int64_t mem_n = !p ? 0 : kind == SEG_INDEX ? p->idx_n : p->tidx_n;
    v->fd = -1;
    v->disk_n = n - mem_n;
    v->mem = !p ? NULL : kind == SEG_INDEX ? p->idx : p->tidx;
    v->mem_n = mem_n;
    v->key = key;
    *ret_f = NULL;
    if (v->disk_n > 0) {
        int r = seg_acquire(log, seg, kind, 0, ret_f);
        if (r < 0)
            return r;
        v->fd = seg_file_fd(*ret_f);
    }
    return 0;
}

int seg_lookup_offset(struct plog *log, struct segment *seg, struct seg_reader *r, int64_t offset,
                      int64_t *ret_pos)
{
    *ret_pos = 0;
    if (seg->idx_n == 0 || offset <= seg->base)
        return 0;
    int64_t rel = offset - seg->base > INT32_MAX ? INT32_MAX : offset - seg->base;
    struct index_view v;
    struct seg_file *f;
    int64_t k;
    uint8_t e[INDEX_ENTRY_SIZE];
    if (open_view(log, seg, SEG_INDEX, INDEX_KEY_REL, &v, &f) < 0)
        return 0; /* no usable index: walk from the start */
    int rc = index_view_rank(&v, rel, 1, &k);
    if (rc == 0 && k > 0)
        rc = index_view_read(&v, k - 1, e);
    seg_file_unref(f);
    if (rc < 0 || k == 0)
        return 0;

    struct index_entry ie;
    struct batch_header h;
    index_entry_decode(e, &ie);
    if (ie.pos < 0 || ie.pos >= seg->size || ie.rel < 0)
        return 0;
    if (seg_reader_header(r, ie.pos, &h) == 1 && h.base_offset == seg->base + ie.rel)
        *ret_pos = ie.pos;
    return 0;
}

int seg_find_batch(struct plog *log, struct segment *seg, struct seg_reader *r, int64_t offset,
                   int64_t *ret_pos, struct batch_header *ret_h, int64_t *ret_end)
{
    int64_t pos;
    int rc = seg_lookup_offset(log, seg, r, offset, &pos);
    if (rc < 0)
        return rc;
    return seg_walk_to(r, pos, offset, ret_pos, ret_h, ret_end);
}

int seg_lookup_time(struct plog *log, struct segment *seg, struct seg_reader *r, int64_t ts,
                    int64_t *ret_pos)
{
    *ret_pos = 0;
    if (seg->tidx_n == 0)
        return 0;
    struct index_view v;
    struct seg_file *f;
    int64_t k;
    uint8_t e[TIMEINDEX_ENTRY_SIZE];
    if (open_view(log, seg, SEG_TIMEINDEX, TIMEINDEX_KEY_TS, &v, &f) < 0)
        return 0;
    int rc = index_view_rank(&v, ts, 1, &k);
    if (rc == 0 && k > 0)
        rc = index_view_read(&v, k - 1, e);
    seg_file_unref(f);
    if (rc < 0 || k == 0)
        return 0;

    /* The entry is trusted only if its batch really is where the max first reached
     * its timestamp: then every earlier batch is older than ts. */
    struct timeindex_entry te;
    struct batch_header h;
    int64_t pos;
    timeindex_entry_decode(e, &te);
    if (te.rel < 0)
        return 0;
    if (seg_find_batch(log, seg, r, seg->base + te.rel, &pos, &h, NULL) == 1 &&
        h.base_offset == seg->base + te.rel && h.max_timestamp == te.ts)
        *ret_pos = pos;
    return 0;
}

/* Keep the first entries of an index file whose key is below @target. */
static int cut_index(struct plog *log, struct segment *seg, enum seg_kind kind, enum index_key key,
                     int64_t target, int64_t *ret_n, uint8_t *ret_last)
{
    struct index_view v;
    struct seg_file *f;
    size_t es = kind == SEG_INDEX ? INDEX_ENTRY_SIZE : TIMEINDEX_ENTRY_SIZE;
    int64_t k = 0;
    int rc = open_view(log, seg, kind, key, &v, &f);
    if (rc == 0)
        rc = index_view_rank(&v, target, 0, &k);
    if (rc == 0 && k > 0)
        rc = index_view_read(&v, k - 1, ret_last);
    if (rc == 0 && f && ftruncate(seg_file_fd(f), k * (int64_t)es) < 0)
        rc = -errno;
    seg_file_unref(f);
    if (rc < 0) {
        /* Unreadable: start the index afresh (a sparser index is still valid). */
        char path[4096];
        k = 0;
        if (seg_path(log, seg->base, kind, NULL, path, sizeof(path)) == 0 &&
            truncate(path, 0) < 0) {
            /* The next open sees the mismatch and rebuilds. */
        }
    }
    *ret_n = k;
    return 0;
}

int seg_truncate(struct plog *log, struct segment *seg, int64_t pos, int64_t cut_offset)
{
    struct seg_file *f;
    int rc;
    seg_write_pending(log, seg, false);
    if ((rc = seg_acquire(log, seg, SEG_LOG, 0, &f)) < 0)
        return rc;
    if (ftruncate(seg_file_fd(f), pos) < 0) {
        rc = -errno;
        seg_file_unref(f);
        return rc;
    }
    seg->size = pos;

    uint8_t last[TIMEINDEX_ENTRY_SIZE];
    int64_t n;
    cut_index(log, seg, SEG_INDEX, INDEX_KEY_POS, pos, &n, last);
    seg->idx_n = (int32_t)n;
    if (n > 0) {
        struct index_entry ie;
        index_entry_decode(last, &ie);
        seg->idx_last_pos = ie.pos;
    } else {
        seg->idx_last_pos = -1;
    }
    cut_index(log, seg, SEG_TIMEINDEX, TIMEINDEX_KEY_REL, cut_offset - seg->base, &n, last);
    seg->tidx_n = (int32_t)n;
    struct timeindex_entry te = {.ts = -1, .rel = -1};
    if (n > 0)
        timeindex_entry_decode(last, &te);
    seg->tidx_last_ts = te.ts;
    seg->tidx_last_pos = pos;

    if (pos == 0) {
        seg->max_ts = -1;
        seg->max_ts_offset = -1;
        seg->first_ts = SEG_TS_NONE;
    } else if (seg->max_ts < 0 || seg->max_ts_offset >= cut_offset) {
        /* The batch with the max is gone: the last surviving time entry is the max
         * up to its batch; walk the headers after it for the rest. */
        uint8_t buf[PLOG_WALK_BUF];
        struct seg_reader r;
        struct batch_header h;
        int64_t at = 0;
        seg_reader_init(&r, seg_file_fd(f), pos, buf, sizeof(buf));
        seg->max_ts = -1;
        seg->max_ts_offset = -1;
        if (te.rel >= 0 && seg_find_batch(log, seg, &r, seg->base + te.rel, &at, &h, NULL) == 1 &&
            h.base_offset == seg->base + te.rel && h.max_timestamp == te.ts) {
            seg->max_ts = te.ts;
            seg->max_ts_offset = h.base_offset;
        } else {
            at = 0;
        }
        while (seg_reader_header(&r, at, &h) == 1) {
            if (h.max_timestamp > seg->max_ts) {
                seg->max_ts = h.max_timestamp;
                seg->max_ts_offset = h.base_offset;
            }
            at += batch_total_size(&h);
        }
    }
    seg_file_unref(f);
    return 0;
}

/* ---- sequential validating scan ------------------------------------------------- */

/* batch_validate() for a batch too large for the scan buffer: the same header
 * checks, and the CRC computed chunk by chunk. */
static int validate_large(int fd, uint8_t *buf, size_t cap, int64_t pos,
                          const struct batch_header *h)
{
    int64_t total = batch_total_size(h);
    int codec = h->attributes & BATCH_ATTR_COMPRESSION_MASK;
    if (h->record_count < 1 || (int64_t)h->record_count > (int64_t)h->last_offset_delta + 1 ||
        codec > BATCH_COMPRESSION_ZSTD)
        return -EBADMSG;
    if (codec == BATCH_COMPRESSION_NONE && (int64_t)h->record_count * 7 > total - BATCH_HEADER_SIZE)
        return -EBADMSG;
    uint32_t crc = 0;
    int64_t at = pos + BATCH_OFF_ATTRIBUTES, end = pos + total;
    while (at < end) {
        size_t n = end - at < (int64_t)cap ? (size_t)(end - at) : cap;
        int64_t got = pread_upto(fd, buf, n, at);
        if (got < 0)
            return (int)got;
        if ((size_t)got < n)
            return -EBADMSG;
        crc = crc32c_update(crc, buf, n);
        at += (int64_t)n;
    }
    return crc == h->crc ? 0 : -EILSEQ;
}

int seg_scan(struct plog *log, struct segment *seg, const struct seg_scan_opts *o,
             struct seg_scan_result *ret)
{
    struct seg_file *lf = NULL;
    struct stat st;
    uint8_t *buf = NULL;
    int rc = seg_acquire(log, seg, SEG_LOG, 0, &lf);
    if (rc < 0)
        return rc;
    int fd = seg_file_fd(lf);
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    int64_t file_size = st.st_size;
    size_t cap = file_size < (int64_t)PLOG_SCAN_BUF ? (size_t)file_size : PLOG_SCAN_BUF;
    if (cap < 65536)
        cap = 65536;
    if (!(buf = malloc(cap))) {
        rc = -ENOMEM;
        goto out;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    if (o->rebuild_index) {
        free(seg->pend);
        seg->pend = NULL;
        seg->idx_n = seg->tidx_n = 0;
        seg->idx_last_pos = -1;
        seg->tidx_last_ts = -1;
        for (int k = SEG_INDEX; k <= SEG_TIMEINDEX; k++) {
            struct seg_file *f;
            if ((rc = seg_acquire(log, seg, (enum seg_kind)k, 0, &f)) < 0)
                goto out;
            if (ftruncate(seg_file_fd(f), 0) < 0)
                rc = -errno;
            seg_file_unref(f);
            if (rc < 0)
                goto out;
        }
    }
    seg->max_ts = -1;
    seg->max_ts_offset = -1;
    seg->first_ts = SEG_TS_NONE;

    struct seg_scan_result res = {.next_offset = seg->base, .file_size = file_size};
    int64_t pos = 0, boff = 0, blen = 0, expected = seg->base;
    while (pos < file_size) {
        struct batch_header h;
        if (pos + BATCH_HEADER_SIZE > boff + blen) {
            int64_t want = file_size - pos < (int64_t)cap ? file_size - pos : (int64_t)cap;
            if ((blen = pread_upto(fd, buf, (size_t)want, pos)) < 0) {
                rc = (int)blen;
                goto out;
            }
            boff = pos;
            if (blen < BATCH_HEADER_SIZE) {
                res.bad = true;
                break;
            }
        }
        if (batch_parse_header(buf + (pos - boff), BATCH_HEADER_SIZE, &h) < 0 ||
            seg_check_header(&h, pos, file_size) < 0) {
            res.bad = true;
            break;
        }
        int64_t last = batch_last_offset(&h), total = batch_total_size(&h);
        if (h.base_offset < expected || last >= o->offset_limit || last - seg->base > INT32_MAX) {
            res.bad = true;
            break;
        }
        if (last >= o->crc_from) {
            if (total <= (int64_t)cap) {
                if (pos + total > boff + blen) {
                    int64_t want = file_size - pos < (int64_t)cap ? file_size - pos : (int64_t)cap;
                    if ((blen = pread_upto(fd, buf, (size_t)want, pos)) < 0) {
                        rc = (int)blen;
                        goto out;
                    }
                    boff = pos;
                }
                if (pos + total > boff + blen ||
                    batch_validate(buf + (pos - boff), (size_t)total, 0, NULL) < 0) {
                    res.bad = true;
                    break;
                }
            } else {
                blen = 0; /* the buffer is reused as scratch */
                if (validate_large(fd, buf, cap, pos, &h) < 0) {
                    res.bad = true;
                    break;
                }
            }
            res.crc_checked++;
        }
        if (o->rebuild_index) {
            seg_index_batch(log, seg, pos, &h);
        } else {
            if (pos == 0)
                seg->first_ts = h.max_timestamp;
            if (h.max_timestamp > seg->max_ts) {
                seg->max_ts = h.max_timestamp;
                seg->max_ts_offset = h.base_offset;
            }
        }
        expected = last + 1;
        res.next_offset = expected;
        res.batches++;
        pos += total;
    }
    res.valid_size = pos;
    seg->size = pos;
    seg->tidx_last_pos = pos;
    if (o->rebuild_index)
        seg_write_pending(log, seg, true);
    *ret = res;
    rc = 0;
out:
    free(buf);
    seg_file_unref(lf);
    return rc;
}
