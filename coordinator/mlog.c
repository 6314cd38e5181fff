/* mlog: the metadata log's files, recovery, group commit and snapshots.
 *
 * Ownership between threads: one flush job and one snapshot job may run on the
 * worker pool at a time. The flush job touches only the in-flight group and the
 * "writer" fields (fd, active_bytes), which the loop thread leaves alone while
 * flush_busy is set; the snapshot job touches only its own job struct. Both read
 * the immutable dir, dirfd and opts. Handing a job over through wpool orders the
 * memory accesses. */
#include "coordinator/mlog.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/wpool.h"

#define SEG_MAGIC      0x574d4c47u /* "WMLG" */
#define SNAP_MAGIC     0x574d534eu /* "WMSN" */
#define FORMAT_VERSION 1u
#define SEG_HDR_LEN    24
#define REC_HDR_LEN    16
#define SNAP_HDR_LEN   32
#define READ_CHUNK     (64 * 1024)
#define NAME_MAX_LEN   64
/* A directory with more entries than this is not a metadata log. */
#define MAX_DIR_ENTRIES 100000
/* Group buffers larger than this are freed after their flush, not kept. */
#define KEEP_GROUP_BYTES (4u << 20)

static const char seg_prefix[] = "metadata-";
static const char seg_suffix[] = ".log";
static const char snap_prefix[] = "snapshot-";
static const char snap_suffix[] = ".snap";

struct mlog_waiter {
    int64_t offset;
    mlog_done_fn cb;
    void *ud;
};

/* Records queued for one flush: framed bytes ready to write, and who to tell. */
struct mlog_group {
    uint8_t *data;
    size_t len, cap;
    struct mlog_waiter *w;
    size_t n, wcap;
    int64_t first;     /* offset of the first record */
    int64_t roll_base; /* start a new segment at this offset first; -1 = no */
    bool rolled;       /* worker: the new segment exists */
    int status;        /* worker: 0 or the write / fsync error */
};

struct mlog_snapref {
    int64_t offset;
    bool corrupt;
};

struct mlog_snapjob {
    int64_t offset;
    uint8_t *image; /* header + payload */
    size_t image_len;
    mlog_done_fn cb;
    void *ud;
    int64_t *del_segs; /* oldest first */
    size_t n_del_segs;
    int64_t *del_snaps;
    size_t n_del_snaps;
    bool *seg_gone, *snap_gone; /* worker: unlinked (or already absent) */
    int status;
    bool queued;  /* waiting until the records below offset are durable */
    bool running; /* submitted to the pool */
};

struct mlog {
    /* fdatasync of each flush group, observed on the worker thread */
    struct mhist fsync_hist;
    /* immutable after open */
    char *dir;
    int dirfd; /* also holds the flock */
    struct mlog_options opts;
    struct event_base *base;
    struct wpool *pool;

    /* loop thread */
    int64_t *segs; /* base offsets, ascending; the last is the active segment */
    size_t nsegs, segs_cap;
    struct mlog_snapref *snaps; /* ascending */
    size_t nsnaps, snaps_cap;
    int64_t next_offset;
    int64_t durable_offset;
    int64_t newest_snapshot;
    struct mlog_group groups[2];
    struct mlog_group *pending, *inflight;
    bool flush_busy;
    bool roll_requested;
    bool snap_active; /* snap holds a job, queued or running */
    struct mlog_snapjob snap;
    int failed;
    bool closing;
    bool replay_closed; /* an append or snapshot happened: mlog_replay() no longer applies */
    uint8_t *rec_snap;
    size_t rec_snap_len;
    int64_t rec_snap_offset;
    size_t replay_first_seg;
    int64_t replay_start, replay_end;
    struct mlog_stats stats;

    /* writer: the flush job's while flush_busy, else the loop thread's */
    int fd; /* active segment, write-only */
    int64_t active_bytes;
};

/* ---- names and small helpers ---------------------------------------------- */

static void seg_name(char *buf, int64_t base)
{
    snprintf(buf, NAME_MAX_LEN, "%s%020" PRId64 "%s", seg_prefix, base, seg_suffix);
}

static void snap_name(char *buf, int64_t offset)
{
    snprintf(buf, NAME_MAX_LEN, "%s%020" PRId64 "%s", snap_prefix, offset, snap_suffix);
}

/* "<prefix><20 digits><suffix>" -> the number; false for anything else. */
static bool parse_name(const char *name, const char *prefix, const char *suffix, int64_t *ret)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    if (strlen(name) != pl + 20 + sl || strncmp(name, prefix, pl) != 0 ||
        strcmp(name + pl + 20, suffix) != 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < 20; i++) {
        char c = name[pl + i];
        if (c < '0' || c > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *ret = (int64_t)v;
    return true;
}

static int sync_fd(int fd, bool data_only)
{
    while ((data_only ? fdatasync(fd) : fsync(fd)) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int segs_push(struct mlog *log, int64_t base)
{
    int r = grow((void **)&log->segs, &log->segs_cap, log->nsegs + 1, sizeof(*log->segs));
    if (r < 0)
        return r;
    log->segs[log->nsegs++] = base;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_snapref(const void *a, const void *b)
{
    return cmp_i64(&((const struct mlog_snapref *)a)->offset,
                   &((const struct mlog_snapref *)b)->offset);
}

static uint32_t record_crc(uint32_t len, int64_t offset, const void *payload)
{
    uint8_t b[12];
    buf_store_be32(b, len);
    buf_store_be64(b + 4, (uint64_t)offset);
    uint32_t crc = crc32c_update(0, b, sizeof(b));
    return crc32c_update(crc, payload, len);
}

static void seg_header_encode(uint8_t *h, int64_t base)
{
    buf_store_be32(h, SEG_MAGIC);
    buf_store_be32(h + 4, FORMAT_VERSION);
    buf_store_be64(h + 8, (uint64_t)base);
    buf_store_be32(h + 16, 0); /* flags, reserved */
    buf_store_be32(h + 20, crc32c_update(0, h, 20));
}

static bool seg_header_valid(const uint8_t *h, int64_t base)
{
    return buf_load_be32(h) == SEG_MAGIC && buf_load_be32(h + 4) == FORMAT_VERSION &&
           buf_load_be64(h + 8) == (uint64_t)base && buf_load_be32(h + 16) == 0 &&
           buf_load_be32(h + 20) == crc32c_update(0, h, 20);
}

const char *mlog_damage_name(enum mlog_damage d)
{
    switch (d) {
    case MLOG_DAMAGE_NONE:
        return "none";
    case MLOG_DAMAGE_TORN:
        return "torn";
    case MLOG_DAMAGE_BAD_CRC:
        return "bad-crc";
    case MLOG_DAMAGE_TOO_LONG:
        return "too-long";
    case MLOG_DAMAGE_NOT_DENSE:
        return "not-dense";
    case MLOG_DAMAGE_BAD_HEADER:
        return "bad-header";
    }
    return "unknown";
}

void mlog_options_defaults(struct mlog_options *opts)
{
    opts->segment_bytes = 64 << 20;
    opts->max_record_bytes = 8u << 20;
    opts->max_snapshot_bytes = 1ull << 30;
    opts->max_pending_bytes = 64u << 20;
    opts->snapshot_interval_records = 10000;
}

static bool options_valid(const struct mlog_options *o)
{
    return o->segment_bytes >= SEG_HDR_LEN && o->max_record_bytes >= 1 &&
           o->max_record_bytes <= (1u << 30) && o->max_snapshot_bytes >= 1 &&
           o->max_snapshot_bytes <= ((uint64_t)SIZE_MAX - SNAP_HDR_LEN) / 2 &&
           o->max_pending_bytes >= (size_t)o->max_record_bytes + REC_HDR_LEN &&
           o->snapshot_interval_records >= 1;
}

/* ---- streaming record reader ------------------------------------------------ */

/* Reads one segment sequentially through a buffer that only grows to fit the
 * largest record actually met, after its length was checked against the cap and
 * against the bytes the file still holds. */
struct rreader {
    int fd;
    int64_t size; /* file size */
    int64_t pos;  /* file position of buf[start] */
    uint8_t *buf;
    size_t cap, start, end;
    size_t peak;
};

struct rrec {
    int64_t pos; /* file position of the record header */
    int64_t offset;
    const uint8_t *data;
    uint32_t len;
};

enum rstat { RS_OK, RS_EOF, RS_TORN, RS_BAD_CRC, RS_TOO_LONG };

static void rr_reset(struct rreader *r, int fd, int64_t size, int64_t pos)
{
    r->fd = fd;
    r->size = size;
    r->pos = pos;
    r->start = r->end = 0;
}

/* Make @need bytes available at buf[start]; the caller checked that the file holds
 * them. */
static int rr_fill(struct rreader *r, size_t need)
{
    if (r->end - r->start >= need)
        return 0;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap < need) {
        size_t ncap = need > READ_CHUNK ? need : READ_CHUNK;
        uint8_t *p = realloc(r->buf, ncap);
        if (!p)
            return -ENOMEM;
        r->buf = p;
        r->cap = ncap;
        if (ncap > r->peak)
            r->peak = ncap;
    }
    while (r->end < need) {
        int64_t file_left = r->size - (r->pos + (int64_t)r->end);
        size_t want = r->cap - r->end;
        if (file_left <= 0)
            return -ENODATA; /* the file shrank under us */
        if ((uint64_t)file_left < want)
            want = (size_t)file_left;
        ssize_t n = pread(r->fd, r->buf + r->end, want, r->pos + (off_t)r->end);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ENODATA;
        r->end += (size_t)n;
    }
    return 0;
}

/* Next record. RS_OK and RS_BAD_CRC consume it (rec describes it); RS_TORN and
 * RS_TOO_LONG leave the position at the bad record (rec->pos). Negative: I/O. */
static int rr_next(struct rreader *r, uint32_t max_len, struct rrec *rec, enum rstat *st)
{
    int64_t avail = r->size - r->pos;
    rec->pos = r->pos;
    if (avail <= 0) {
        *st = RS_EOF;
        return 0;
    }
    if (avail < REC_HDR_LEN) {
        *st = RS_TORN;
        return 0;
    }
    int rc = rr_fill(r, REC_HDR_LEN);
    if (rc < 0)
        return rc;
    const uint8_t *h = r->buf + r->start;
    uint32_t len = buf_load_be32(h);
    uint32_t crc = buf_load_be32(h + 4);
    int64_t offset = (int64_t)buf_load_be64(h + 8);
    if (len > max_len) {
        *st = RS_TOO_LONG;
        return 0;
    }
    if ((int64_t)len > avail - REC_HDR_LEN) {
        *st = RS_TORN;
        return 0;
    }
    rc = rr_fill(r, REC_HDR_LEN + (size_t)len);
    if (rc < 0)
        return rc;
    rec->offset = offset;
    rec->data = r->buf + r->start + REC_HDR_LEN;
    rec->len = len;
    *st = record_crc(len, offset, rec->data) == crc ? RS_OK : RS_BAD_CRC;
    r->start += REC_HDR_LEN + (size_t)len;
    r->pos += REC_HDR_LEN + (int64_t)len;
    return 0;
}

/* Open a segment for reading and check its header. 1 = header torn or invalid
 * (*ret_fd still set when the file could be opened), 0 = fine. */
static int seg_open_read(struct mlog *log, int64_t base, int *ret_fd, int64_t *ret_size)
{
    char name[NAME_MAX_LEN];
    seg_name(name, base);
    int fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    uint8_t h[SEG_HDR_LEN];
    int rc = 1;
    if (st.st_size >= SEG_HDR_LEN) {
        rc = fsutil_pread_all(fd, h, sizeof(h), 0);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        rc = seg_header_valid(h, base) ? 0 : 1;
    }
    *ret_fd = fd;
    *ret_size = st.st_size;
    return rc;
}

/* ---- recovery ----------------------------------------------------------------- */

static int list_dir(struct mlog *log)
{
    int fd = dup(log->dirfd);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = -errno;
        close(fd);
        return e;
    }
    rewinddir(d);
    int rc = 0;
    size_t entries = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (++entries > MAX_DIR_ENTRIES) {
            rc = -E2BIG;
            break;
        }
        int64_t v;
        if (parse_name(de->d_name, seg_prefix, seg_suffix, &v)) {
            rc = segs_push(log, v);
        } else if (parse_name(de->d_name, snap_prefix, snap_suffix, &v)) {
            rc = grow((void **)&log->snaps, &log->snaps_cap, log->nsnaps + 1, sizeof(*log->snaps));
            if (rc == 0)
                log->snaps[log->nsnaps++] = (struct mlog_snapref){v, false};
        } else if (strncmp(de->d_name, snap_prefix, strlen(snap_prefix)) == 0 &&
                   strstr(de->d_name, ".snap.tmp.") != NULL) {
            /* An interrupted fsutil_write_atomic(): never renamed, never valid. */
            unlinkat(log->dirfd, de->d_name, 0);
        }
        if (rc < 0)
            break;
    }
    closedir(d);
    if (rc < 0)
        return rc;
    if (log->nsegs > 1)
        qsort(log->segs, log->nsegs, sizeof(*log->segs), cmp_i64);
    if (log->nsnaps > 1)
        qsort(log->snaps, log->nsnaps, sizeof(*log->snaps), cmp_snapref);
    return 0;
}

/* Load and validate one snapshot. 0 = valid (payload returned), 1 = corrupt,
 * negative = out of memory. Read errors count as corruption: an older snapshot
 * may still be readable. */
static int snap_load_file(struct mlog *log, const char *name, int64_t offset, uint8_t **ret_data,
                          size_t *ret_len)
{
    int fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    int result = 1;
    uint8_t *data = NULL;
    struct stat st;
    uint8_t h[SNAP_HDR_LEN];
    if (fstat(fd, &st) < 0 || st.st_size < SNAP_HDR_LEN ||
        fsutil_pread_all(fd, h, sizeof(h), 0) < 0)
        goto out;
    uint64_t plen = buf_load_be64(h + 16);
    if (buf_load_be32(h) != SNAP_MAGIC || buf_load_be32(h + 4) != FORMAT_VERSION ||
        buf_load_be64(h + 8) != (uint64_t)offset ||
        buf_load_be32(h + 28) != crc32c_update(0, h, 28) || plen > log->opts.max_snapshot_bytes ||
        plen != (uint64_t)st.st_size - SNAP_HDR_LEN)
        goto out;
    data = malloc(plen ? (size_t)plen : 1);
    if (!data) {
        result = -ENOMEM;
        goto out;
    }
    if (fsutil_pread_all(fd, data, (size_t)plen, SNAP_HDR_LEN) < 0 ||
        crc32c_update(0, data, (size_t)plen) != buf_load_be32(h + 24))
        goto out;
    *ret_data = data;
    *ret_len = (size_t)plen;
    data = NULL;
    result = 0;
out:
    free(data);
    close(fd);
    return result;
}

static int snap_load(struct mlog *log, int64_t offset, uint8_t **ret_data, size_t *ret_len)
{
    char name[NAME_MAX_LEN];
    snap_name(name, offset);
    return snap_load_file(log, name, offset, ret_data, ret_len);
}

struct scan {
    size_t first;     /* index of the first segment scanned */
    size_t cut_seg;   /* segment where the log was cut; nsegs if it was not */
    int64_t cut_pos;  /* file position of the cut; 0 = the whole file goes */
    int64_t end;      /* offset after the last valid record */
    int64_t replay;   /* valid records at or after the start offset */
    int64_t cut_size; /* size of the cut file */
};

/* Count well-framed, CRC-valid records from @pos on (diagnostics only). */
static int count_valid_from(struct mlog *log, struct rreader *r, int fd, int64_t size, int64_t pos,
                            int64_t *count)
{
    rr_reset(r, fd, size, pos);
    for (;;) {
        struct rrec rec;
        enum rstat st;
        int rc = rr_next(r, log->opts.max_record_bytes, &rec, &st);
        if (rc < 0)
            return rc;
        if (st == RS_OK)
            (*count)++;
        else if (st != RS_BAD_CRC)
            return 0;
    }
}

/* Validate the log from the segment holding @start on. Reads only. */
static int scan_log(struct mlog *log, int64_t start, struct scan *sc,
                    struct mlog_recovery_info *info, struct rreader *r)
{
    size_t k = 0;
    while (k + 1 < log->nsegs && log->segs[k + 1] <= start)
        k++;
    sc->first = k;
    sc->cut_seg = log->nsegs;
    sc->cut_pos = 0;
    sc->replay = 0;
    sc->cut_size = 0;
    int64_t expected = log->segs[k];
    int rc = 0;
    int fd = -1;
    size_t i;
    for (i = k; i < log->nsegs; i++) {
        int64_t size = 0;
        if (log->segs[i] != expected) {
            info->damage = MLOG_DAMAGE_NOT_DENSE;
            break;
        }
        rc = seg_open_read(log, log->segs[i], &fd, &size);
        if (rc < 0)
            return rc;
        sc->cut_size = size;
        if (rc == 1) {
            info->damage = size < SEG_HDR_LEN ? MLOG_DAMAGE_TORN : MLOG_DAMAGE_BAD_HEADER;
            rc = 0;
            break;
        }
        rr_reset(r, fd, size, SEG_HDR_LEN);
        for (;;) {
            struct rrec rec;
            enum rstat st;
            rc = rr_next(r, log->opts.max_record_bytes, &rec, &st);
            if (rc < 0)
                goto out;
            if (st == RS_EOF)
                break;
            if (st == RS_OK && rec.offset == expected && expected < INT64_MAX) {
                if (expected >= start)
                    sc->replay++;
                expected++;
                continue;
            }
            info->damage = st == RS_OK        ? MLOG_DAMAGE_NOT_DENSE
                           : st == RS_BAD_CRC ? MLOG_DAMAGE_BAD_CRC
                           : st == RS_TORN    ? MLOG_DAMAGE_TORN
                                              : MLOG_DAMAGE_TOO_LONG;
            sc->cut_seg = i;
            sc->cut_pos = rec.pos;
            /* Diagnostics: what intact records does the cut take with it? */
            if (st == RS_OK || st == RS_BAD_CRC) {
                if (st == RS_OK)
                    info->dropped_valid_records++;
                rc = count_valid_from(log, r, fd, size, r->pos, &info->dropped_valid_records);
                if (rc < 0)
                    goto out;
            }
            break;
        }
        close(fd);
        fd = -1;
        if (sc->cut_seg != log->nsegs)
            break;
    }
    if (i < log->nsegs && sc->cut_seg == log->nsegs) {
        /* Cut at the start of segment i (gap or bad header): the whole file goes. */
        sc->cut_seg = i;
        sc->cut_pos = 0;
        if (fd >= 0) {
            close(fd);
            fd = -1;
        }
        if (info->damage == MLOG_DAMAGE_NOT_DENSE) {
            struct stat st;
            char name[NAME_MAX_LEN];
            seg_name(name, log->segs[i]);
            sc->cut_size = fstatat(log->dirfd, name, &st, 0) == 0 ? st.st_size : 0;
        }
    }
    sc->end = expected;
    if (sc->cut_seg < log->nsegs) {
        info->truncated_at = expected;
        info->dropped_bytes = sc->cut_size - sc->cut_pos;
        if (sc->cut_pos == 0 && sc->cut_size >= SEG_HDR_LEN &&
            info->damage == MLOG_DAMAGE_NOT_DENSE) {
            /* A whole segment after a gap: its records are intact but unreachable. */
            int64_t size;
            rc = seg_open_read(log, log->segs[sc->cut_seg], &fd, &size);
            if (rc == 0)
                rc = count_valid_from(log, r, fd, size, SEG_HDR_LEN, &info->dropped_valid_records);
            if (rc == 1)
                rc = 0;
            if (fd >= 0)
                close(fd);
            fd = -1;
            if (rc < 0)
                return rc;
        }
        for (size_t j = sc->cut_seg + 1; j < log->nsegs; j++) {
            int64_t size = 0;
            rc = seg_open_read(log, log->segs[j], &fd, &size);
            if (rc < 0)
                return rc;
            info->dropped_bytes += size;
            if (rc == 0)
                rc = count_valid_from(log, r, fd, size, SEG_HDR_LEN, &info->dropped_valid_records);
            close(fd);
            fd = -1;
            if (rc < 0)
                return rc;
            rc = 0;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int unlink_seg(struct mlog *log, int64_t base)
{
    char name[NAME_MAX_LEN];
    seg_name(name, base);
    if (unlinkat(log->dirfd, name, 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Create a segment holding just its header, durable (file and directory). */
static int create_segment(int dirfd, int64_t base, int *ret_fd)
{
    char name[NAME_MAX_LEN];
    seg_name(name, base);
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    uint8_t h[SEG_HDR_LEN];
    seg_header_encode(h, base);
    int rc = fsutil_pwrite_all(fd, h, sizeof(h), 0);
    if (rc == 0)
        rc = sync_fd(fd, false);
    if (rc == 0)
        rc = sync_fd(dirfd, false);
    if (rc < 0) {
        close(fd);
        unlinkat(dirfd, name, 0);
        return rc;
    }
    *ret_fd = fd;
    return 0;
}

static int open_active(struct mlog *log)
{
    char name[NAME_MAX_LEN];
    seg_name(name, log->segs[log->nsegs - 1]);
    int fd = openat(log->dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    log->fd = fd;
    log->active_bytes = st.st_size;
    return 0;
}

static int recover(struct mlog *log, struct mlog_recovery_info *info)
{
    memset(info, 0, sizeof(*info));
    info->newest_corrupt_snapshot = -1;
    info->snapshot_offset = -1;
    info->truncated_at = -1;

    int rc = list_dir(log);
    if (rc < 0)
        return rc;
    info->segments_found = (int32_t)log->nsegs;
    info->snapshots_found = (int32_t)log->nsnaps;

    /* Newest valid snapshot first; the rest are fallbacks. */
    int64_t start = -1;
    for (size_t i = log->nsnaps; i-- > 0;) {
        uint8_t *data = NULL;
        size_t len = 0;
        int64_t off = log->snaps[i].offset;
        rc = snap_load(log, off, &data, &len);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            log->snaps[i].corrupt = true;
            info->snapshots_corrupt++;
            if (info->newest_corrupt_snapshot < 0)
                info->newest_corrupt_snapshot = off;
            log_debug("mlog", "%s: snapshot %" PRId64 " is corrupt", log->dir, off);
            continue;
        }
        if (log->nsegs > 0 && off < log->segs[0]) {
            /* The log after it is gone; older snapshots are even further away. */
            free(data);
            return -EBADMSG;
        }
        log->rec_snap = data;
        log->rec_snap_len = len;
        log->rec_snap_offset = off;
        start = off;
        break;
    }
    if (start < 0) {
        /* The empty state is a starting point only for a log that begins at 0,
         * or for a directory that never held anything. */
        if (log->nsegs > 0 ? log->segs[0] != 0 : log->nsnaps > 0)
            return -EBADMSG;
        start = 0;
    }
    info->snapshot_offset = log->rec_snap ? start : -1;
    log->newest_snapshot = log->rec_snap ? start : -1;

    struct rreader r = {.fd = -1};
    struct scan sc = {0};
    int64_t end = start;
    if (log->nsegs > 0) {
        rc = scan_log(log, start, &sc, info, &r);
        info->read_buffer_peak = r.peak;
        free(r.buf);
        if (rc < 0)
            return rc;
        end = sc.end;
    }

    /* Decided; now change the files. */
    bool dir_changed = false;
    if (end < start) {
        /* The snapshot covers records the log lost. Keep no segment with a hole
         * before the snapshot: a later fallback to an older snapshot must fail
         * rather than replay across the hole. */
        info->log_behind_snapshot = true;
        for (size_t i = 0; i < log->nsegs; i++) {
            rc = unlink_seg(log, log->segs[i]);
            if (rc < 0)
                return rc;
            info->segments_removed++;
        }
        log->nsegs = 0;
        dir_changed = true;
        sc.first = 0;
        sc.replay = 0;
        end = start;
    } else if (log->nsegs > 0 && sc.cut_seg < log->nsegs) {
        if (sc.cut_pos >= SEG_HDR_LEN) {
            char name[NAME_MAX_LEN];
            seg_name(name, log->segs[sc.cut_seg]);
            int fd = openat(log->dirfd, name, O_WRONLY | O_CLOEXEC);
            if (fd < 0)
                return -errno;
            rc = ftruncate(fd, sc.cut_pos) < 0 ? -errno : sync_fd(fd, false);
            close(fd);
            if (rc < 0)
                return rc;
        }
        size_t keep = sc.cut_pos >= SEG_HDR_LEN ? sc.cut_seg + 1 : sc.cut_seg;
        for (size_t i = log->nsegs; i-- > keep;) {
            rc = unlink_seg(log, log->segs[i]);
            if (rc < 0)
                return rc;
            info->segments_removed++;
            dir_changed = true;
        }
        log->nsegs = keep;
    }
    info->replay_records = sc.replay;
    info->next_offset = end;
    log->next_offset = log->durable_offset = end;
    log->replay_start = start;
    log->replay_end = end;

    if (log->nsegs == 0 || log->nsegs <= sc.first) {
        /* No scanned segment is left to append to: a new one starts at the end. */
        rc = create_segment(log->dirfd, end, &log->fd);
        if (rc < 0)
            return rc;
        log->active_bytes = SEG_HDR_LEN;
        rc = segs_push(log, end);
        if (rc < 0)
            return rc;
        sc.first = log->nsegs - 1;
        dir_changed = false; /* create_segment synced the directory */
    } else {
        rc = open_active(log);
        if (rc < 0)
            return rc;
    }
    log->replay_first_seg = sc.first;
    if (dir_changed) {
        rc = sync_fd(log->dirfd, false);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- open / close --------------------------------------------------------------- */

int mlog_open(const char *dir, const struct mlog_options *opts, struct mlog **ret,
              struct mlog_recovery_info *ret_info)
{
    struct mlog_options o;
    if (opts)
        o = *opts;
    else
        mlog_options_defaults(&o);
    if (!options_valid(&o))
        return -EINVAL;
    int rc = fsutil_mkdirs(dir, 0755);
    /* A directory made just now must itself survive a crash. */
    if (rc == 0)
        rc = fsutil_fsync_parent(dir);
    if (rc < 0)
        return rc;
    struct mlog *log = calloc(1, sizeof(*log));
    if (!log)
        return -ENOMEM;
    log->opts = o;
    log->fd = -1;
    log->newest_snapshot = -1;
    log->rec_snap_offset = -1;
    log->pending = &log->groups[0];
    log->inflight = &log->groups[1];
    log->dirfd = -1;
    log->dir = strdup(dir);
    if (!log->dir) {
        free(log);
        return -ENOMEM;
    }
    log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->dirfd < 0) {
        rc = -errno;
        goto fail;
    }
    if (flock(log->dirfd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto fail;
    }
    struct mlog_recovery_info info;
    rc = recover(log, &info);
    if (rc < 0)
        goto fail;
    *ret = log;
    if (ret_info)
        *ret_info = info;
    return 0;
fail:
    mlog_close(log);
    return rc;
}

static void group_free(struct mlog_group *g)
{
    free(g->data);
    free(g->w);
}

static void snapjob_clear(struct mlog_snapjob *j)
{
    free(j->image);
    free(j->del_segs);
    free(j->del_snaps);
    free(j->seg_gone);
    free(j->snap_gone);
    memset(j, 0, sizeof(*j));
}

static void fail_pending(struct mlog *log, int status);

void mlog_close(struct mlog *log)
{
    if (!log)
        return;
    log->closing = true;
    if (log->pool) {
        while (log->flush_busy || (log->snap_active && log->snap.running))
            wpool_drain(log->pool);
    }
    fail_pending(log, -ECANCELED);
    if (log->snap_active) {
        struct mlog_snapjob j = log->snap;
        memset(&log->snap, 0, sizeof(log->snap));
        log->snap_active = false;
        if (j.cb)
            j.cb(log, j.offset, -ECANCELED, j.ud);
        snapjob_clear(&j);
    }
    if (log->fd >= 0)
        close(log->fd);
    if (log->dirfd >= 0)
        close(log->dirfd); /* releases the flock */
    group_free(&log->groups[0]);
    group_free(&log->groups[1]);
    free(log->segs);
    free(log->snaps);
    free(log->rec_snap);
    free(log->dir);
    free(log);
}

void mlog_recovery_describe(const struct mlog_recovery_info *info, char *buf, size_t len)
{
    if (len == 0)
        return;
    char snap[64];
    if (info->snapshot_offset >= 0)
        snprintf(snap, sizeof(snap), "snapshot at %" PRId64, info->snapshot_offset);
    else
        snprintf(snap, sizeof(snap), "no snapshot");
    int n = snprintf(
        buf, len,
        "%s, %" PRId64 " records to replay, next offset %" PRId64 ", %d segments, %d snapshots",
        snap, info->replay_records, info->next_offset, info->segments_found, info->snapshots_found);
    if (n < 0 || (size_t)n >= len)
        return;
    if (info->snapshots_corrupt > 0) {
        int m = snprintf(buf + n, len - (size_t)n,
                         "; %d corrupt snapshots skipped (newest at %" PRId64 ")",
                         info->snapshots_corrupt, info->newest_corrupt_snapshot);
        if (m < 0 || (size_t)m >= len - (size_t)n)
            return;
        n += m;
    }
    if (info->damage != MLOG_DAMAGE_NONE) {
        int m = snprintf(buf + n, len - (size_t)n,
                         "; log cut at offset %" PRId64 " (%s): %" PRId64
                         " bytes and %d segment files dropped, %" PRId64
                         " intact records after the cut",
                         info->truncated_at, mlog_damage_name(info->damage), info->dropped_bytes,
                         info->segments_removed, info->dropped_valid_records);
        if (m < 0 || (size_t)m >= len - (size_t)n)
            return;
        n += m;
    }
    if (info->log_behind_snapshot)
        snprintf(buf + n, len - (size_t)n,
                 "; log ended before the snapshot, restarted at the snapshot offset");
}

/* ---- recovered state ---------------------------------------------------------- */

int mlog_recovered_snapshot(const struct mlog *log, const uint8_t **ret_data, size_t *ret_len,
                            int64_t *ret_offset)
{
    if (!log->rec_snap)
        return -ENOENT;
    *ret_data = log->rec_snap;
    *ret_len = log->rec_snap_len;
    *ret_offset = log->rec_snap_offset;
    return 0;
}

void mlog_release_recovered_snapshot(struct mlog *log)
{
    free(log->rec_snap);
    log->rec_snap = NULL;
    log->rec_snap_len = 0;
}

int mlog_replay(struct mlog *log, mlog_replay_fn fn, void *ud)
{
    if (log->replay_closed)
        return -EINVAL;
    if (log->replay_end <= log->replay_start)
        return 0;
    struct rreader r = {.fd = -1};
    int64_t expected = log->segs[log->replay_first_seg];
    int rc = 0;
    for (size_t i = log->replay_first_seg; i < log->nsegs && expected < log->replay_end; i++) {
        int fd = -1;
        int64_t size;
        if (log->segs[i] != expected) {
            rc = -EBADMSG;
            break;
        }
        rc = seg_open_read(log, log->segs[i], &fd, &size);
        if (rc != 0) {
            if (fd >= 0)
                close(fd);
            rc = rc > 0 ? -EBADMSG : rc;
            break;
        }
        rr_reset(&r, fd, size, SEG_HDR_LEN);
        while (rc == 0 && expected < log->replay_end) {
            struct rrec rec;
            enum rstat st;
            rc = rr_next(&r, log->opts.max_record_bytes, &rec, &st);
            if (rc < 0 || st == RS_EOF)
                break;
            if (st != RS_OK || rec.offset != expected) {
                rc = -EBADMSG;
                break;
            }
            if (expected >= log->replay_start)
                rc = fn(rec.offset, rec.data, rec.len, ud);
            expected++;
        }
        close(fd);
        if (rc != 0)
            break;
    }
    free(r.buf);
    if (rc == 0 && expected != log->replay_end)
        rc = -EBADMSG;
    return rc;
}

int mlog_attach(struct mlog *log, struct event_base *base, struct wpool *pool)
{
    if (log->pool)
        return -EALREADY;
    log->base = base;
    log->pool = pool;
    return 0;
}

/* ---- group commit ------------------------------------------------------------- */

static int group_add(struct mlog_group *g, int64_t offset, const void *rec, size_t len,
                     mlog_done_fn cb, void *ud)
{
    int rc = grow((void **)&g->data, &g->cap, g->len + REC_HDR_LEN + len, 1);
    if (rc == 0)
        rc = grow((void **)&g->w, &g->wcap, g->n + 1, sizeof(*g->w));
    if (rc < 0)
        return rc;
    uint8_t *h = g->data + g->len;
    buf_store_be32(h, (uint32_t)len);
    buf_store_be32(h + 4, record_crc((uint32_t)len, offset, rec));
    buf_store_be64(h + 8, (uint64_t)offset);
    if (len)
        memcpy(h + REC_HDR_LEN, rec, len);
    if (g->n == 0)
        g->first = offset;
    g->len += REC_HDR_LEN + len;
    g->w[g->n++] = (struct mlog_waiter){offset, cb, ud};
    return 0;
}

static void group_reset(struct mlog_group *g)
{
    g->len = 0;
    g->n = 0;
    if (g->cap > KEEP_GROUP_BYTES) {
        free(g->data);
        g->data = NULL;
        g->cap = 0;
    }
}

/* Make the pending group the in-flight one and decide whether it rolls. */
static void flush_prepare(struct mlog *log)
{
    struct mlog_group *g = log->pending;
    log->pending = log->inflight;
    log->inflight = g;
    g->roll_base = -1;
    g->rolled = false;
    g->status = 0;
    bool active_has_records = log->active_bytes > SEG_HDR_LEN;
    if (active_has_records && (log->roll_requested || log->active_bytes >= log->opts.segment_bytes))
        g->roll_base = g->first;
    if (!active_has_records)
        log->roll_requested = false;
    log->flush_busy = true;
}

static void flush_unprepare(struct mlog *log)
{
    struct mlog_group *g = log->inflight;
    log->inflight = log->pending;
    log->pending = g;
    log->flush_busy = false;
}

/* Worker: roll if asked, then one write and one fdatasync for the whole group. */
static void flush_work(void *arg)
{
    struct mlog *log = arg;
    struct mlog_group *g = log->inflight;
    int rc = 0;
    if (g->roll_base >= 0) {
        int fd;
        rc = create_segment(log->dirfd, g->roll_base, &fd);
        if (rc == 0) {
            /* The old segment was fdatasynced with its last group. */
            close(log->fd);
            log->fd = fd;
            log->active_bytes = SEG_HDR_LEN;
            g->rolled = true;
        }
    }
    if (rc == 0)
        rc = fsutil_pwrite_all(log->fd, g->data, g->len, log->active_bytes);
    if (rc == 0) {
        int64_t t0 = clock_mono_us();
        rc = sync_fd(log->fd, true);
        mhist_observe_us_atomic(&log->fsync_hist, clock_mono_us() - t0);
    }
    if (rc == 0)
        log->active_bytes += (int64_t)g->len;
    g->status = rc;
}

static int flush_submit(struct mlog *log);
static void snapshot_kick(struct mlog *log);

/* Run every callback of @log->pending with @status and empty it. */
static void fail_pending(struct mlog *log, int status)
{
    struct mlog_group *g = log->pending;
    /* Callbacks may append; with the log failed or closing, that fails. */
    for (size_t i = 0; i < g->n; i++) {
        if (g->w[i].cb)
            g->w[i].cb(log, g->w[i].offset, status, g->w[i].ud);
    }
    group_reset(g);
}

static void set_failed(struct mlog *log, int err)
{
    if (!log->failed)
        log->failed = err < 0 ? err : -EIO;
    log_debug("mlog", "%s: log failed: %s", log->dir, strerror(-log->failed));
}

/* Loop thread: account for the group, run its callbacks, start the next one. */
static int flush_finish(struct mlog *log)
{
    struct mlog_group *g = log->inflight;
    int status = g->status;
    if (g->rolled) {
        int rc = segs_push(log, g->roll_base);
        if (rc < 0 && status == 0)
            status = rc; /* the segment list no longer matches the directory */
        log->stats.rolls++;
        log->roll_requested = false;
    }
    if (status == 0) {
        log->durable_offset = g->first + (int64_t)g->n;
        log->stats.records += (int64_t)g->n;
        log->stats.groups++;
        log->stats.bytes += (int64_t)g->len;
        if ((int64_t)g->n > log->stats.max_group_records)
            log->stats.max_group_records = (int64_t)g->n;
    } else {
        set_failed(log, status);
    }
    /* flush_busy stays set while callbacks run, so appends made from them queue
     * behind this group instead of reusing its buffers. */
    for (size_t i = 0; i < g->n; i++) {
        if (g->w[i].cb)
            g->w[i].cb(log, g->w[i].offset, status, g->w[i].ud);
    }
    group_reset(g);
    log->flush_busy = false;
    if (log->failed) {
        fail_pending(log, -EIO);
    } else if (log->pending->n > 0 && !log->closing && log->pool) {
        int rc = flush_submit(log);
        if (rc < 0) {
            set_failed(log, rc);
            fail_pending(log, rc);
        }
    }
    snapshot_kick(log);
    return status;
}

static void flush_done(void *arg)
{
    flush_finish(arg);
}

static int flush_submit(struct mlog *log)
{
    flush_prepare(log);
    int rc = wpool_submit(log->pool, flush_work, flush_done, log);
    if (rc < 0)
        flush_unprepare(log);
    return rc;
}

static int append_check(const struct mlog *log, size_t len)
{
    if (log->closing)
        return -ESHUTDOWN;
    if (log->failed)
        return -EIO;
    if (len > log->opts.max_record_bytes)
        return -EMSGSIZE;
    if (log->next_offset == INT64_MAX)
        return -EOVERFLOW;
    return 0;
}

int mlog_append(struct mlog *log, const void *rec, size_t len, mlog_done_fn cb, void *ud,
                int64_t *ret_offset)
{
    if (!log->pool)
        return -EINVAL;
    int rc = append_check(log, len);
    if (rc < 0)
        return rc;
    if (log->pending->len + REC_HDR_LEN + len > log->opts.max_pending_bytes)
        return -EAGAIN;
    int64_t offset = log->next_offset;
    rc = group_add(log->pending, offset, rec, len, cb, ud);
    if (rc < 0)
        return rc;
    if (!log->flush_busy) {
        /* Idle means nothing else was pending: undoing is just emptying. */
        rc = flush_submit(log);
        if (rc < 0) {
            group_reset(log->pending);
            return rc;
        }
    }
    log->next_offset++;
    log->replay_closed = true;
    if (ret_offset)
        *ret_offset = offset;
    return 0;
}

int mlog_append_sync(struct mlog *log, const void *rec, size_t len, int64_t *ret_offset)
{
    int rc = append_check(log, len);
    if (rc < 0)
        return rc;
    if (log->flush_busy)
        return -EBUSY;
    assert(log->pending->n == 0);
    int64_t offset = log->next_offset;
    rc = group_add(log->pending, offset, rec, len, NULL, NULL);
    if (rc < 0)
        return rc;
    log->next_offset++;
    log->replay_closed = true;
    flush_prepare(log);
    flush_work(log);
    rc = flush_finish(log);
    if (rc < 0)
        return rc;
    if (ret_offset)
        *ret_offset = offset;
    return 0;
}

int mlog_sync(struct mlog *log)
{
    while (log->pool && (log->flush_busy || (log->snap_active && log->snap.running)))
        wpool_drain(log->pool);
    return log->failed;
}

/* ---- snapshots -------------------------------------------------------------------- */

static int snapjob_prepare(struct mlog *log, int64_t offset, const void *data, size_t len,
                           mlog_done_fn cb, void *ud)
{
    if (log->closing)
        return -ESHUTDOWN;
    if (log->failed)
        return -EIO;
    if (log->snap_active)
        return -EBUSY;
    if (offset < 0 || offset > log->next_offset || offset <= log->newest_snapshot)
        return -EINVAL;
    if (len > log->opts.max_snapshot_bytes)
        return -EMSGSIZE;
    struct mlog_snapjob *j = &log->snap;
    memset(j, 0, sizeof(*j));
    j->image = malloc(SNAP_HDR_LEN + len);
    if (!j->image)
        return -ENOMEM;
    uint8_t *h = j->image;
    buf_store_be32(h, SNAP_MAGIC);
    buf_store_be32(h + 4, FORMAT_VERSION);
    buf_store_be64(h + 8, (uint64_t)offset);
    buf_store_be64(h + 16, (uint64_t)len);
    buf_store_be32(h + 24, crc32c_update(0, data, len));
    buf_store_be32(h + 28, crc32c_update(0, h, 28));
    if (len)
        memcpy(h + SNAP_HDR_LEN, data, len);
    j->image_len = SNAP_HDR_LEN + len;
    j->offset = offset;
    j->cb = cb;
    j->ud = ud;
    return 0;
}

/* Retention, decided when the job starts: keep the new snapshot and the newest
 * valid one below it (the fallback), and the log from that fallback on. Segments
 * only ever get added meanwhile, so the choice stays safe. */
static int snapjob_plan_deletions(struct mlog *log)
{
    struct mlog_snapjob *j = &log->snap;
    int64_t prev = -1;
    for (size_t i = 0; i < log->nsnaps; i++) {
        if (!log->snaps[i].corrupt && log->snaps[i].offset < j->offset)
            prev = log->snaps[i].offset;
    }
    size_t nd = 0;
    while (prev >= 0 && nd + 1 < log->nsegs && log->segs[nd + 1] <= prev)
        nd++;
    size_t ns = 0;
    for (size_t i = 0; i < log->nsnaps; i++) {
        const struct mlog_snapref *s = &log->snaps[i];
        if (s->offset < prev || (s->corrupt && s->offset < j->offset))
            ns++;
    }
    j->del_segs = calloc(nd + 1, sizeof(*j->del_segs));
    j->seg_gone = calloc(nd + 1, sizeof(*j->seg_gone));
    j->del_snaps = calloc(ns + 1, sizeof(*j->del_snaps));
    j->snap_gone = calloc(ns + 1, sizeof(*j->snap_gone));
    if (!j->del_segs || !j->seg_gone || !j->del_snaps || !j->snap_gone)
        return -ENOMEM;
    for (size_t i = 0; i < nd; i++)
        j->del_segs[i] = log->segs[i];
    j->n_del_segs = nd;
    ns = 0;
    for (size_t i = 0; i < log->nsnaps; i++) {
        const struct mlog_snapref *s = &log->snaps[i];
        if (s->offset < prev || (s->corrupt && s->offset < j->offset))
            j->del_snaps[ns++] = s->offset;
    }
    j->n_del_snaps = ns;
    return 0;
}

static void snap_work(void *arg)
{
    struct mlog *log = arg;
    struct mlog_snapjob *j = &log->snap;
    char name[NAME_MAX_LEN];
    snap_name(name, j->offset);
    size_t plen = strlen(log->dir) + 1 + strlen(name) + 1;
    char *path = malloc(plen);
    if (!path) {
        j->status = -ENOMEM;
        return;
    }
    snprintf(path, plen, "%s/%s", log->dir, name);
    j->status = fsutil_write_atomic(path, j->image, j->image_len);
    free(path);
    if (j->status < 0)
        return;
    /* Oldest segment first, so a crash part-way leaves a log without holes. */
    bool any = false;
    for (size_t i = 0; i < j->n_del_segs; i++) {
        seg_name(name, j->del_segs[i]);
        j->seg_gone[i] = unlinkat(log->dirfd, name, 0) == 0 || errno == ENOENT;
        if (!j->seg_gone[i])
            break;
        any = true;
    }
    for (size_t i = 0; i < j->n_del_snaps; i++) {
        snap_name(name, j->del_snaps[i]);
        j->snap_gone[i] = unlinkat(log->dirfd, name, 0) == 0 || errno == ENOENT;
        any = any || j->snap_gone[i];
    }
    /* Not needed for correctness (a file that comes back is deleted next time),
     * but it keeps the directory as described. */
    if (any)
        sync_fd(log->dirfd, false);
}

static int snap_finish(struct mlog *log)
{
    struct mlog_snapjob j = log->snap;
    memset(&log->snap, 0, sizeof(log->snap));
    log->snap_active = false;
    int status = j.status;
    if (status == 0) {
        log->stats.snapshots++;
        size_t w = 0;
        for (size_t i = 0; i < log->nsegs; i++) {
            bool gone = false;
            for (size_t k = 0; k < j.n_del_segs; k++)
                gone = gone || (j.seg_gone[k] && j.del_segs[k] == log->segs[i]);
            if (gone)
                log->stats.segments_deleted++;
            else
                log->segs[w++] = log->segs[i];
        }
        log->nsegs = w;
        w = 0;
        for (size_t i = 0; i < log->nsnaps; i++) {
            bool gone = log->snaps[i].offset == j.offset; /* replaced below */
            for (size_t k = 0; k < j.n_del_snaps; k++) {
                if (j.snap_gone[k] && j.del_snaps[k] == log->snaps[i].offset) {
                    gone = true;
                    log->stats.snapshots_deleted++;
                }
            }
            if (!gone)
                log->snaps[w++] = log->snaps[i];
        }
        log->nsnaps = w;
        int rc = grow((void **)&log->snaps, &log->snaps_cap, log->nsnaps + 1, sizeof(*log->snaps));
        if (rc == 0) {
            log->snaps[log->nsnaps++] = (struct mlog_snapref){j.offset, false};
            qsort(log->snaps, log->nsnaps, sizeof(*log->snaps), cmp_snapref);
        }
        /* Without the entry the new snapshot is merely not chosen as a fallback
         * for retention; it is on disk all the same. */
        log->newest_snapshot = j.offset;
    }
    if (j.cb)
        j.cb(log, j.offset, status, j.ud);
    snapjob_clear(&j);
    return status;
}

static void snap_done(void *arg)
{
    snap_finish(arg);
}

/* Start the queued snapshot once the records it covers are durable. */
static void snapshot_kick(struct mlog *log)
{
    struct mlog_snapjob *j = &log->snap;
    if (!log->snap_active || !j->queued)
        return;
    int rc = 0;
    if (log->failed || log->closing) {
        rc = log->failed ? -EIO : -ECANCELED;
    } else if (log->durable_offset >= j->offset) {
        rc = snapjob_plan_deletions(log);
        if (rc == 0) {
            /* Set before the worker may see the job. */
            j->queued = false;
            j->running = true;
            rc = wpool_submit(log->pool, snap_work, snap_done, log);
            if (rc == 0)
                return;
            j->running = false;
        }
    } else {
        return;
    }
    j->status = rc;
    snap_finish(log);
}

int mlog_write_snapshot(struct mlog *log, int64_t offset, const void *data, size_t len,
                        mlog_done_fn cb, void *ud)
{
    if (!log->pool)
        return -EINVAL;
    int rc = snapjob_prepare(log, offset, data, len, cb, ud);
    if (rc < 0)
        return rc;
    struct mlog_snapjob *j = &log->snap;
    log->snap_active = true;
    if (log->durable_offset >= offset) {
        j->running = true;
        rc = snapjob_plan_deletions(log);
        if (rc == 0)
            rc = wpool_submit(log->pool, snap_work, snap_done, log);
        if (rc < 0) {
            snapjob_clear(j);
            log->snap_active = false;
            return rc;
        }
    } else {
        j->queued = true;
    }
    log->roll_requested = true;
    log->replay_closed = true;
    return 0;
}

int mlog_write_snapshot_sync(struct mlog *log, int64_t offset, const void *data, size_t len)
{
    if (offset > log->durable_offset && offset <= log->next_offset)
        return -EBUSY;
    int rc = snapjob_prepare(log, offset, data, len, NULL, NULL);
    if (rc < 0)
        return rc;
    rc = snapjob_plan_deletions(log);
    if (rc < 0) {
        snapjob_clear(&log->snap);
        return rc;
    }
    log->snap_active = true;
    log->snap.running = true;
    log->roll_requested = true;
    log->replay_closed = true;
    snap_work(log);
    return snap_finish(log);
}

bool mlog_snapshot_due(const struct mlog *log)
{
    int64_t since = log->newest_snapshot > 0 ? log->newest_snapshot : 0;
    return !log->failed && !log->closing && !log->snap_active &&
           log->next_offset - since >= log->opts.snapshot_interval_records;
}

/* ---- accessors -------------------------------------------------------------------- */

int64_t mlog_next_offset(const struct mlog *log)
{
    return log->next_offset;
}

int64_t mlog_durable_offset(const struct mlog *log)
{
    return log->durable_offset;
}

int64_t mlog_snapshot_offset(const struct mlog *log)
{
    return log->newest_snapshot;
}

int mlog_error(const struct mlog *log)
{
    return log->failed;
}

const char *mlog_dir(const struct mlog *log)
{
    return log->dir;
}

void mlog_get_stats(const struct mlog *log, struct mlog_stats *ret)
{
    *ret = log->stats;
}

const struct mhist *mlog_fsync_histogram(const struct mlog *log)
{
    return &log->fsync_hist;
}

/* ---- replacing the log by a received snapshot ------------------------------------- */

int mlog_install_snapshot(struct mlog *log, const char *tmp_name, int64_t offset,
                          uint8_t **ret_image, size_t *ret_len)
{
    if (log->closing)
        return -ESHUTDOWN;
    if (log->failed)
        return -EIO;
    if (strncmp(tmp_name, snap_prefix, strlen(snap_prefix)) != 0 ||
        !strstr(tmp_name, ".snap.tmp.") || strchr(tmp_name, '/') || offset < log->next_offset)
        return -EINVAL;
    if (log->flush_busy || log->pending->n > 0 || (log->snap_active && log->snap.running))
        return -EBUSY;
    uint8_t *image = NULL;
    size_t image_len = 0;
    int rc = snap_load_file(log, tmp_name, offset, &image, &image_len);
    if (rc != 0)
        return rc < 0 ? rc : -EBADMSG;
    /* The received file must be durable before its name makes it the log. */
    int fd = openat(log->dirfd, tmp_name, O_RDONLY | O_CLOEXEC);
    rc = fd < 0 ? -errno : sync_fd(fd, false);
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        free(image);
        return rc;
    }
    if (log->snap_active) { /* queued below the new start: it would cover nothing */
        struct mlog_snapjob j = log->snap;
        memset(&log->snap, 0, sizeof(log->snap));
        log->snap_active = false;
        if (j.cb)
            j.cb(log, j.offset, -ECANCELED, j.ud);
        snapjob_clear(&j);
    }

    /* The switch: from the rename on, recovery starts from this snapshot and
     * finds every segment behind it (log_behind_snapshot), so a crash at any
     * later point ends in the new state. */
    char name[NAME_MAX_LEN];
    snap_name(name, offset);
    if (renameat(log->dirfd, tmp_name, log->dirfd, name) < 0) {
        rc = -errno;
        free(image);
        return rc;
    }
    rc = sync_fd(log->dirfd, false);
    /* What the switch left behind: every segment (all below the snapshot) and
     * every other snapshot (older, or of a history this voter no longer has). */
    if (log->fd >= 0) {
        close(log->fd);
        log->fd = -1;
    }
    for (size_t i = 0; rc == 0 && i < log->nsegs; i++) {
        rc = unlink_seg(log, log->segs[i]);
        if (rc == 0)
            log->stats.segments_deleted++;
    }
    for (size_t i = 0; rc == 0 && i < log->nsnaps; i++) {
        if (log->snaps[i].offset == offset)
            continue;
        char old[NAME_MAX_LEN];
        snap_name(old, log->snaps[i].offset);
        if (unlinkat(log->dirfd, old, 0) < 0 && errno != ENOENT)
            rc = -errno;
        else
            log->stats.snapshots_deleted++;
    }
    log->nsegs = 0;
    log->nsnaps = 0;
    if (rc == 0)
        rc = create_segment(log->dirfd, offset, &log->fd); /* syncs the directory */
    if (rc == 0)
        rc = segs_push(log, offset);
    if (rc == 0)
        rc = grow((void **)&log->snaps, &log->snaps_cap, 1, sizeof(*log->snaps));
    if (rc < 0) {
        /* On disk the switch is done; recovery finishes the rest. */
        set_failed(log, rc);
        free(image);
        return rc;
    }
    log->snaps[log->nsnaps++] = (struct mlog_snapref){offset, false};
    log->active_bytes = SEG_HDR_LEN;
    log->roll_requested = false;
    log->next_offset = log->durable_offset = offset;
    log->newest_snapshot = offset;
    log->replay_closed = true;
    free(log->rec_snap);
    log->rec_snap = NULL;
    log->rec_snap_len = 0;
    log->stats.snapshots++;
    *ret_image = image;
    *ret_len = image_len;
    return 0;
}

int mlog_open_snapshot(struct mlog *log, int *ret_fd, int64_t *ret_offset, uint64_t *ret_size)
{
    if (log->newest_snapshot <= 0)
        return -ENOENT;
    char name[NAME_MAX_LEN];
    snap_name(name, log->newest_snapshot);
    int fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *ret_fd = fd;
    *ret_offset = log->newest_snapshot;
    *ret_size = (uint64_t)st.st_size;
    return 0;
}
