/* cleaner: log compaction. See cleaner.h for the design; recovery.c finishes a
 * swap a crash interrupted. */
#include "broker/storage/cleaner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/storage/index.h"
#include "broker/storage/plog_internal.h"
#include "common/batch.h"
#include "common/codec.h"
#include "common/crc32c.h"
#include "common/fsutil.h"

#define CLEANER_READ_BUF (1u << 20)
#define CLEANER_WRITE_FLUSH (1u << 20)
#define MAP_ENTRY_BYTES 16
#define MAP_LOAD_PCT 90

/* ---- offset map ------------------------------------------------------------------ */

struct cleaner_map {
    uint64_t *hash; /* 0 = empty slot */
    int64_t *off;
    int64_t slots;
    int64_t n;
    int64_t max; /* entries allowed */
};

/* 64-bit FNV-1a with a final avalanche (splitmix64's), never 0. */
static uint64_t key_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

struct cleaner_map *cleaner_map_new(int64_t bytes)
{
    int64_t slots = bytes / MAP_ENTRY_BYTES;
    if (slots < 16)
        slots = 16;
    struct cleaner_map *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->hash = calloc((size_t)slots, sizeof(*m->hash));
    m->off = malloc((size_t)slots * sizeof(*m->off));
    if (!m->hash || !m->off) {
        cleaner_map_free(m);
        return NULL;
    }
    m->slots = slots;
    m->max = slots * MAP_LOAD_PCT / 100;
    if (m->max < 1)
        m->max = 1;
    return m;
}

void cleaner_map_free(struct cleaner_map *m)
{
    if (!m)
        return;
    free(m->hash);
    free(m->off);
    free(m);
}

static int64_t map_slot(const struct cleaner_map *m, uint64_t h)
{
    int64_t i = (int64_t)(h % (uint64_t)m->slots);
    while (m->hash[i] && m->hash[i] != h)
        i = i + 1 == m->slots ? 0 : i + 1;
    return i;
}

bool cleaner_map_put(struct cleaner_map *m, const void *key, size_t len, int64_t offset)
{
    uint64_t h = key_hash(key, len);
    int64_t i = map_slot(m, h);
    if (!m->hash[i]) {
        if (m->n >= m->max)
            return false;
        m->hash[i] = h;
        m->n++;
    }
    m->off[i] = offset;
    return true;
}

int64_t cleaner_map_get(const struct cleaner_map *m, const void *key, size_t len)
{
    int64_t i = map_slot(m, key_hash(key, len));
    return m->hash[i] ? m->off[i] : -1;
}

int64_t cleaner_map_size(const struct cleaner_map *m)
{
    return m->n;
}

/* ---- producer ids: the last batch of each ------------------------------------------ */

struct pid_table {
    int64_t *pid; /* -1 = empty */
    int64_t *last_base;
    size_t cap, n;
};

static int pid_slot(const struct pid_table *t, int64_t pid)
{
    size_t i = (size_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ULL) >> 7) & (t->cap - 1);
    while (t->pid[i] != -1 && t->pid[i] != pid)
        i = (i + 1) & (t->cap - 1);
    return (int)i;
}

static int pid_note(struct pid_table *t, int64_t pid, int64_t base)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        struct pid_table nt = {.cap = nc};
        nt.pid = malloc(nc * sizeof(*nt.pid));
        nt.last_base = malloc(nc * sizeof(*nt.last_base));
        if (!nt.pid || !nt.last_base) {
            free(nt.pid);
            free(nt.last_base);
            return -ENOMEM;
        }
        memset(nt.pid, 0xff, nc * sizeof(*nt.pid));
        for (size_t i = 0; i < t->cap; i++)
            if (t->pid[i] != -1) {
                int s = pid_slot(&nt, t->pid[i]);
                nt.pid[s] = t->pid[i];
                nt.last_base[s] = t->last_base[i];
            }
        nt.n = t->n;
        free(t->pid);
        free(t->last_base);
        *t = nt;
    }
    int s = pid_slot(t, pid);
    if (t->pid[s] == -1) {
        t->pid[s] = pid;
        t->n++;
    }
    t->last_base[s] = base;
    return 0;
}

static bool pid_is_last(const struct pid_table *t, int64_t pid, int64_t base)
{
    if (!t->cap)
        return false;
    int s = pid_slot(t, pid);
    return t->pid[s] == pid && t->last_base[s] == base;
}

/* ---- the job ------------------------------------------------------------------------- */

struct cl_seg {
    int64_t base;
    int64_t size;
};

struct cl_group {
    size_t first, count; /* job segments */
    int64_t base;
    bool changed;        /* some batch was dropped or rewritten */
    bool swapped;        /* its .swap files exist */
    bool first_swapped;  /* finish swapped it in */
    /* The cleaned segment's summary, for struct segment. */
    int64_t size;
    int64_t max_ts, max_ts_offset, first_ts;
    int64_t idx_last_pos, tidx_last_pos, tidx_last_ts;
    int32_t idx_n, tidx_n;
};

struct cleaner_job {
    char *dir;
    struct cl_seg *segs;
    size_t nsegs;
    struct cl_group *groups;
    size_t ngroups;
    int64_t first_dirty;
    int64_t upto; /* first uncleanable offset */
    int64_t now_ms;
    int64_t delete_retention_ms;
    int64_t dedupe_bytes;
    int32_t index_interval;
    int32_t max_idx_entries;
    int32_t max_tidx_entries;
    size_t decompress_bound;
    uint64_t trunc_gen;
    struct cleaner_stats stats;

    /* Work state (worker thread). */
    struct cleaner_map *map;
    struct pid_table pids;
    buf_writer scratch; /* decompressed records */
    buf_writer recs;    /* rewritten records section */
    buf_writer zrecs;   /* ... compressed */
    buf_writer batch;   /* one rewritten batch */
};

static int job_path(const struct cleaner_job *job, int64_t base, enum seg_kind kind,
                    const char *extra, char *buf, size_t n)
{
    int r = snprintf(buf, n, "%s/%020lld%s%s", job->dir, (long long)base, seg_suffix[kind],
                     extra ? extra : "");
    return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

static void unlink_group_files(const struct cleaner_job *job, const struct cl_group *g)
{
    static const char *const extras[] = {".cleaned", ".swap"};
    for (int k = 0; k < SEG_KINDS; k++)
        for (size_t e = 0; e < 2; e++) {
            char path[4096];
            if (job_path(job, g->base, (enum seg_kind)k, extras[e], path, sizeof(path)) == 0)
                (void)unlink(path);
        }
}

void cleaner_job_free(struct cleaner_job *job)
{
    if (!job)
        return;
    for (size_t i = 0; i < job->ngroups; i++)
        unlink_group_files(job, &job->groups[i]);
    cleaner_map_free(job->map);
    free(job->pids.pid);
    free(job->pids.last_base);
    buf_writer_deinit(&job->scratch);
    buf_writer_deinit(&job->recs);
    buf_writer_deinit(&job->zrecs);
    buf_writer_deinit(&job->batch);
    free(job->groups);
    free(job->segs);
    free(job->dir);
    free(job);
}

/* ---- choosing ------------------------------------------------------------------------ */

static int64_t seg_end(const struct plog *log, size_t i)
{
    return i + 1 < log->nsegs ? log->segs[i + 1]->base : log->leo;
}

static int64_t first_uncleanable(const struct plog *log, int64_t now_ms)
{
    int64_t upto = plog_active(log)->base;
    if (log->hw < upto)
        upto = log->hw;
    int64_t lag = log->cfg.min_compaction_lag_ms;
    if (lag > 0) {
        for (size_t i = 0; i + 1 < log->nsegs && log->segs[i]->base < upto; i++) {
            struct segment *s = log->segs[i];
            if (s->max_ts >= 0 && s->max_ts > now_ms - lag) {
                upto = s->base;
                break;
            }
        }
    }
    return upto;
}

void cleaner_estimate(struct plog *log, int64_t first_dirty, int64_t now_ms,
                      struct cleaner_estimate *ret)
{
    struct cleaner_estimate e = {0};
    if (first_dirty < log->log_start)
        first_dirty = log->log_start;
    e.first_dirty = first_dirty;
    e.first_uncleanable = first_uncleanable(log, now_ms);
    int64_t oldest_dirty_ts = -1;
    for (size_t i = 0; i + 1 < log->nsegs; i++) {
        struct segment *s = log->segs[i];
        if (s->base >= e.first_uncleanable)
            break;
        if (seg_end(log, i) <= first_dirty) {
            e.clean_bytes += s->size;
        } else {
            e.dirty_bytes += s->size;
            if (oldest_dirty_ts < 0 && s->size > 0)
                oldest_dirty_ts = s->first_ts != SEG_TS_NONE ? s->first_ts : s->max_ts;
        }
    }
    if (first_dirty >= e.first_uncleanable)
        e.dirty_bytes = 0;
    int64_t total = e.clean_bytes + e.dirty_bytes;
    e.dirty_ratio = total > 0 ? (double)e.dirty_bytes / (double)total : 0.0;
    int64_t max_lag = log->cfg.max_compaction_lag_ms;
    e.max_lag_due = e.dirty_bytes > 0 && max_lag < INT64_MAX && oldest_dirty_ts >= 0 &&
                    now_ms - oldest_dirty_ts > max_lag;
    *ret = e;
}

bool cleaner_due(const struct plog *log, const struct cleaner_estimate *e)
{
    if (!log->cfg.cleanup_compact || e->dirty_bytes <= 0)
        return false;
    return e->dirty_ratio >= log->cfg.min_cleanable_ratio || e->max_lag_due;
}

int cleaner_prepare(struct plog *log, int64_t first_dirty, int64_t now_ms, int64_t dedupe_bytes,
                    struct cleaner_job **ret)
{
    struct cleaner_estimate e;
    *ret = NULL;
    cleaner_estimate(log, first_dirty, now_ms, &e);
    if (e.dirty_bytes <= 0)
        return 0;

    size_t n = 0;
    while (n + 1 < log->nsegs && log->segs[n]->base < e.first_uncleanable)
        n++;
    if (n == 0)
        return 0;
    struct cleaner_job *job = calloc(1, sizeof(*job));
    if (!job)
        return -ENOMEM;
    job->dir = strdup(log->dir);
    job->segs = calloc(n, sizeof(*job->segs));
    job->groups = calloc(n, sizeof(*job->groups));
    if (!job->dir || !job->segs || !job->groups) {
        cleaner_job_free(job);
        return -ENOMEM;
    }
    job->nsegs = n;
    for (size_t i = 0; i < n; i++) {
        job->segs[i].base = log->segs[i]->base;
        job->segs[i].size = log->segs[i]->size;
    }
    /* Groups of consecutive segments that fit one segment (Kafka's
     * groupSegmentsBySize): bytes within segment_bytes, offsets within the
     * index's int32 range. */
    int64_t limit = plog_segment_limit(log);
    for (size_t i = 0; i < n;) {
        struct cl_group *g = &job->groups[job->ngroups++];
        g->first = i;
        g->base = job->segs[i].base;
        int64_t bytes = job->segs[i].size;
        size_t j = i + 1;
        while (j < n && bytes + job->segs[j].size <= limit &&
               seg_end(log, j) - 1 - g->base <= INT32_MAX) {
            bytes += job->segs[j].size;
            j++;
        }
        g->count = j - i;
        i = j;
    }
    job->first_dirty = e.first_dirty;
    job->upto = e.first_uncleanable;
    job->now_ms = now_ms;
    job->delete_retention_ms = log->cfg.delete_retention_ms;
    job->dedupe_bytes = dedupe_bytes;
    job->index_interval = log->cfg.index_interval_bytes;
    job->max_idx_entries = plog_index_max_entries(log, INDEX_ENTRY_SIZE);
    job->max_tidx_entries = plog_index_max_entries(log, TIMEINDEX_ENTRY_SIZE);
    job->decompress_bound = batch_decompress_bound(limit);
    job->trunc_gen = log->trunc_gen;
    buf_writer_init(&job->scratch);
    buf_writer_init(&job->recs);
    buf_writer_init(&job->zrecs);
    buf_writer_init(&job->batch);
    *ret = job;
    return 0;
}

/* ---- reading segments ---------------------------------------------------------------- */

struct cl_reader {
    int fd;
    int64_t size; /* bytes of the segment (as recorded; the file may not be longer) */
    int64_t pos;  /* file offset of the next batch */
    uint8_t *buf;
    size_t cap;
    int64_t buf_off; /* file offset of buf[0] */
    size_t len;
};

static int reader_open(struct cl_reader *r, const struct cleaner_job *job, const struct cl_seg *s)
{
    char path[4096];
    int rc = job_path(job, s->base, SEG_LOG, NULL, path, sizeof(path));
    if (rc < 0)
        return rc;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return -errno;
    r->size = s->size;
    r->pos = 0;
    r->buf_off = 0;
    r->len = 0;
    if (!r->buf) {
        if (!(r->buf = malloc(CLEANER_READ_BUF))) {
            close(r->fd);
            return -ENOMEM;
        }
        r->cap = CLEANER_READ_BUF;
    }
    return 0;
}

static void reader_close(struct cl_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

/* Make [pos, pos + want) available in the buffer. */
static int reader_fill(struct cl_reader *r, size_t want)
{
    if (r->pos >= r->buf_off && r->pos + (int64_t)want <= r->buf_off + (int64_t)r->len)
        return 0;
    if (want > r->cap) {
        uint8_t *nb = malloc(want);
        if (!nb)
            return -ENOMEM;
        free(r->buf);
        r->buf = nb;
        r->cap = want;
    }
    int64_t left = r->size - r->pos;
    size_t get = left < (int64_t)r->cap ? (size_t)left : r->cap;
    if (get < want)
        return -EBADMSG;
    int rc = fsutil_pread_all(r->fd, r->buf, get, r->pos);
    if (rc < 0)
        return rc;
    r->buf_off = r->pos;
    r->len = get;
    return 0;
}

/* The next whole batch: 1 with a pointer into the buffer, 0 at the end. */
static int reader_next(struct cl_reader *r, const uint8_t **ret, struct batch_header *h)
{
    if (r->pos >= r->size)
        return 0;
    int rc = reader_fill(r, BATCH_HEADER_SIZE);
    if (rc < 0)
        return rc;
    const uint8_t *p = r->buf + (r->pos - r->buf_off);
    if (batch_parse_header(p, BATCH_HEADER_SIZE, h) < 0 || seg_check_header(h, r->pos, r->size) < 0)
        return -EBADMSG;
    size_t total = (size_t)batch_total_size(h);
    if ((rc = reader_fill(r, total)) < 0)
        return rc;
    *ret = r->buf + (r->pos - r->buf_off);
    r->pos += (int64_t)total;
    return 1;
}

/* The records section of a batch, decompressed into job->scratch if needed. */
static int batch_records(struct cleaner_job *job, const uint8_t *b, const struct batch_header *h,
                         struct batch_record_iter *it)
{
    size_t total = (size_t)batch_total_size(h);
    if (batch_compression(h) == BATCH_COMPRESSION_NONE)
        return batch_records_begin(b, total, it);
    buf_writer_reset(&job->scratch);
    int rc = batch_decompress_records(b, total, job->decompress_bound, &job->scratch);
    if (rc < 0)
        return rc;
    batch_records_begin_raw(job->scratch.data, job->scratch.len, h->record_count, it);
    return 0;
}

/* ---- pass 1 and 2: producers and the offset map ------------------------------------- */

static int scan_segments(struct cleaner_job *job, struct cl_reader *r)
{
    int64_t map_end = job->upto;
    bool mapping = true;
    for (size_t i = 0; i < job->nsegs; i++) {
        const struct cl_seg *s = &job->segs[i];
        int64_t end = i + 1 < job->nsegs ? job->segs[i + 1].base : INT64_MAX;
        bool dirty = end > job->first_dirty && mapping;
        int rc = reader_open(r, job, s);
        if (rc < 0)
            return rc;
        const uint8_t *b;
        struct batch_header h;
        while ((rc = reader_next(r, &b, &h)) == 1) {
            if (h.producer_id >= 0 && (rc = pid_note(&job->pids, h.producer_id, h.base_offset)) < 0)
                break;
            if (!dirty || !mapping || batch_last_offset(&h) < job->first_dirty ||
                (h.attributes & BATCH_ATTR_CONTROL))
                continue;
            if (batch_last_offset(&h) >= job->upto) {
                mapping = false;
                continue;
            }
            struct batch_record_iter it;
            struct batch_record rec;
            if ((rc = batch_records(job, b, &h, &it)) < 0)
                break;
            while ((rc = batch_records_next(&it, &rec)) == 1) {
                if (rec.key.len < 0)
                    continue;
                if (!cleaner_map_put(job->map, rec.key.ptr, (size_t)rec.key.len,
                                     h.base_offset + rec.offset_delta)) {
                    /* Full: this batch and everything after stay dirty. */
                    mapping = false;
                    map_end = h.base_offset;
                    job->stats.map_full = true;
                    break;
                }
            }
            if (rc < 0)
                break;
            rc = 0;
        }
        reader_close(r);
        if (rc < 0)
            return rc;
    }
    if (map_end <= job->first_dirty)
        return -ENOBUFS; /* not even one batch fits log.cleaner.dedupe.buffer.size */
    job->stats.clean_upto = map_end;
    job->stats.map_keys = cleaner_map_size(job->map);
    return 0;
}

/* ---- pass 3: rewriting ---------------------------------------------------------------- */

static int write_record(buf_writer *w, const struct batch_record *rec, int64_t ts_delta)
{
    uint8_t tmp[64];
    buf_writer hw;
    /* Everything but the length prefix, measured first. */
    buf_writer_init_fixed(&hw, tmp, sizeof(tmp));
    buf_write_i8(&hw, rec->attributes);
    buf_write_varlong(&hw, ts_delta);
    buf_write_varint(&hw, rec->offset_delta);
    buf_write_varint(&hw, rec->key.len);
    size_t head1 = hw.len;
    uint8_t tmp2[16];
    buf_writer vw;
    buf_writer_init_fixed(&vw, tmp2, sizeof(tmp2));
    buf_write_varint(&vw, rec->value.len);
    uint8_t tmp3[8];
    buf_writer cw;
    buf_writer_init_fixed(&cw, tmp3, sizeof(tmp3));
    buf_write_varint(&cw, rec->header_count);
    if (buf_writer_error(&hw) || buf_writer_error(&vw) || buf_writer_error(&cw))
        return -EINVAL;
    size_t body = head1 + (rec->key.len > 0 ? (size_t)rec->key.len : 0) + vw.len +
                  (rec->value.len > 0 ? (size_t)rec->value.len : 0) + cw.len +
                  (size_t)rec->headers.len;
    buf_write_varint(w, (int32_t)body);
    buf_write_raw(w, tmp, head1);
    if (rec->key.len > 0)
        buf_write_raw(w, rec->key.ptr, (size_t)rec->key.len);
    buf_write_raw(w, tmp2, vw.len);
    if (rec->value.len > 0)
        buf_write_raw(w, rec->value.ptr, (size_t)rec->value.len);
    buf_write_raw(w, tmp3, cw.len);
    if (rec->headers.len > 0)
        buf_write_raw(w, rec->headers.ptr, (size_t)rec->headers.len);
    return buf_writer_error(w);
}

/* Whether a record survives. */
static bool keep_record(const struct cleaner_job *job, const struct batch_header *h,
                        const struct batch_record *rec, bool *tombstone)
{
    *tombstone = false;
    if (rec->key.len < 0)
        return false;
    int64_t offset = h->base_offset + rec->offset_delta;
    int64_t latest = cleaner_map_get(job->map, rec->key.ptr, (size_t)rec->key.len);
    if (latest >= 0 && offset < latest)
        return false;
    if (rec->value.len < 0) {
        if ((h->attributes & BATCH_ATTR_DELETE_HORIZON) && job->now_ms >= h->base_timestamp)
            return false;
        *tombstone = true;
    }
    return true;
}

/* Filter one batch. 1 with the batch to write in *@out / *@out_len (the original
 * bytes or job->batch), 0 when it is dropped. */
static int filter_batch(struct cleaner_job *job, const uint8_t *b, const struct batch_header *h,
                        const uint8_t **out, size_t *out_len, bool *changed)
{
    size_t total = (size_t)batch_total_size(h);
    *out = b;
    *out_len = total;
    job->stats.records_read += h->record_count;
    if ((h->attributes & BATCH_ATTR_CONTROL) ||
        (h->producer_id >= 0 && pid_is_last(&job->pids, h->producer_id, h->base_offset))) {
        job->stats.records_kept += h->record_count;
        return 1;
    }
    struct batch_record_iter it;
    struct batch_record rec;
    int rc = batch_records(job, b, h, &it);
    if (rc < 0)
        return rc;
    bool has_horizon = h->attributes & BATCH_ATTR_DELETE_HORIZON;
    int64_t base_ts = h->base_timestamp;
    /* First pass: count what stays. */
    int32_t kept = 0;
    bool tomb_kept = false, tomb;
    while ((rc = batch_records_next(&it, &rec)) == 1) {
        if (keep_record(job, h, &rec, &tomb)) {
            kept++;
            tomb_kept |= tomb;
        }
    }
    if (rc < 0)
        return rc;
    job->stats.records_kept += kept;
    if (kept == h->record_count && (!tomb_kept || has_horizon))
        return 1;
    *changed = true;
    if (kept == 0)
        return 0;

    int16_t attrs = h->attributes;
    int64_t new_base_ts = base_ts;
    if (tomb_kept && !has_horizon) {
        attrs |= BATCH_ATTR_DELETE_HORIZON;
        new_base_ts = job->now_ms > INT64_MAX - job->delete_retention_ms
                          ? INT64_MAX
                          : job->now_ms + job->delete_retention_ms;
    }
    int64_t max_ts = -1;
    buf_writer_reset(&job->recs);
    if ((rc = batch_records(job, b, h, &it)) < 0)
        return rc;
    while ((rc = batch_records_next(&it, &rec)) == 1) {
        if (!keep_record(job, h, &rec, &tomb))
            continue;
        int64_t ts = base_ts + rec.timestamp_delta;
        if (ts > max_ts)
            max_ts = ts;
        if ((rc = write_record(&job->recs, &rec, ts - new_base_ts)) < 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    if (h->attributes & BATCH_ATTR_TIMESTAMP_LOG_APPEND)
        max_ts = h->max_timestamp;

    const buf_writer *section = &job->recs;
    enum batch_compression codec = batch_compression(h);
    if (codec != BATCH_COMPRESSION_NONE) {
        buf_writer_reset(&job->zrecs);
        if ((rc = codec_compress((enum codec_type)codec, CODEC_LEVEL_DEFAULT, job->recs.data,
                                 job->recs.len, &job->zrecs)) < 0)
            return rc;
        section = &job->zrecs;
    }
    buf_writer *w = &job->batch;
    buf_writer_reset(w);
    buf_write_i64(w, h->base_offset);
    buf_write_i32(w, (int32_t)(BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD + section->len));
    buf_write_i32(w, h->partition_leader_epoch);
    buf_write_i8(w, BATCH_MAGIC_V2);
    buf_write_u32(w, 0); /* CRC, below */
    buf_write_i16(w, attrs);
    buf_write_i32(w, h->last_offset_delta);
    buf_write_i64(w, new_base_ts);
    buf_write_i64(w, max_ts);
    buf_write_i64(w, h->producer_id);
    buf_write_i16(w, h->producer_epoch);
    buf_write_i32(w, h->base_sequence);
    buf_write_i32(w, kept);
    buf_write_raw(w, section->data, section->len);
    if ((rc = buf_writer_error(w)) < 0)
        return rc;
    if (w->len - BATCH_LOG_OVERHEAD > INT32_MAX)
        return -EMSGSIZE;
    buf_writer_patch_u32(w, BATCH_OFF_CRC,
                         crc32c_update(0, w->data + BATCH_OFF_ATTRIBUTES, w->len - BATCH_OFF_ATTRIBUTES));
    *out = w->data;
    *out_len = w->len;
    return 1;
}

/* The output of one group: buffered appends to the three .cleaned files, and the
 * index bookkeeping seg_index_batch() does for an appended batch. */
struct cl_out {
    int fd[SEG_KINDS];
    buf_writer w[SEG_KINDS];
    int64_t flushed[SEG_KINDS];
};

static int out_flush(struct cl_out *o, int k)
{
    int rc = buf_writer_error(&o->w[k]);
    if (rc == 0 && o->w[k].len > 0)
        rc = fsutil_pwrite_all(o->fd[k], o->w[k].data, o->w[k].len, o->flushed[k]);
    if (rc == 0) {
        o->flushed[k] += (int64_t)o->w[k].len;
        buf_writer_reset(&o->w[k]);
    }
    return rc;
}

static void add_time_entry(struct cleaner_job *job, struct cl_group *g, struct cl_out *o,
                           int64_t pos)
{
    if (g->tidx_n >= job->max_tidx_entries)
        return;
    uint8_t e[TIMEINDEX_ENTRY_SIZE];
    timeindex_entry_encode(e, g->max_ts, (int32_t)(g->max_ts_offset - g->base));
    buf_write_raw(&o->w[SEG_TIMEINDEX], e, sizeof(e));
    g->tidx_n++;
    g->tidx_last_ts = g->max_ts;
    g->tidx_last_pos = pos;
}

static int out_batch(struct cleaner_job *job, struct cl_group *g, struct cl_out *o,
                     const uint8_t *data, size_t len)
{
    struct batch_header h;
    batch_parse_header(data, len, &h);
    int64_t pos = g->size;
    if (pos == 0)
        g->first_ts = h.max_timestamp;
    if (h.max_timestamp > g->max_ts) {
        g->max_ts = h.max_timestamp;
        g->max_ts_offset = h.base_offset;
    }
    if ((g->idx_n == 0 || pos - g->idx_last_pos >= job->index_interval) &&
        g->idx_n < job->max_idx_entries && pos <= INT32_MAX) {
        uint8_t e[INDEX_ENTRY_SIZE];
        index_entry_encode(e, (int32_t)(h.base_offset - g->base), (int32_t)pos);
        buf_write_raw(&o->w[SEG_INDEX], e, sizeof(e));
        g->idx_n++;
        g->idx_last_pos = pos;
    }
    if (g->max_ts > g->tidx_last_ts &&
        (g->tidx_n == 0 || pos - g->tidx_last_pos >= job->index_interval))
        add_time_entry(job, g, o, pos);
    buf_write_raw(&o->w[SEG_LOG], data, len);
    g->size += (int64_t)len;
    job->stats.bytes_written += (int64_t)len;
    if (o->w[SEG_LOG].len >= CLEANER_WRITE_FLUSH)
        return out_flush(o, SEG_LOG);
    return buf_writer_error(&o->w[SEG_LOG]);
}

static int clean_group(struct cleaner_job *job, struct cl_group *g, struct cl_reader *r)
{
    struct cl_out o;
    int rc = 0;
    for (int k = 0; k < SEG_KINDS; k++) {
        o.fd[k] = -1;
        o.flushed[k] = 0;
        buf_writer_init(&o.w[k]);
    }
    g->size = 0;
    g->max_ts = -1;
    g->max_ts_offset = -1;
    g->first_ts = SEG_TS_NONE;
    g->idx_last_pos = -1;
    g->tidx_last_pos = 0;
    g->tidx_last_ts = -1;
    g->idx_n = g->tidx_n = 0;
    g->changed = g->count > 1;
    for (int k = 0; k < SEG_KINDS; k++) {
        char path[4096];
        if ((rc = job_path(job, g->base, (enum seg_kind)k, ".cleaned", path, sizeof(path))) < 0)
            goto out;
        o.fd[k] = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (o.fd[k] < 0) {
            rc = -errno;
            goto out;
        }
    }
    for (size_t i = g->first; i < g->first + g->count; i++) {
        if ((rc = reader_open(r, job, &job->segs[i])) < 0)
            goto out;
        job->stats.bytes_read += job->segs[i].size;
        const uint8_t *b, *nb;
        size_t nlen;
        struct batch_header h;
        while ((rc = reader_next(r, &b, &h)) == 1) {
            if ((rc = filter_batch(job, b, &h, &nb, &nlen, &g->changed)) < 0)
                break;
            if (rc == 1 && (rc = out_batch(job, g, &o, nb, nlen)) < 0)
                break;
        }
        reader_close(r);
        if (rc < 0)
            goto out;
    }
    if (!g->changed)
        goto out; /* a single segment with nothing to drop: leave it be */
    if (g->max_ts > g->tidx_last_ts)
        add_time_entry(job, g, &o, g->size);
    g->tidx_last_pos = g->size;
    for (int k = 0; k < SEG_KINDS && rc == 0; k++)
        if ((rc = out_flush(&o, k)) == 0 && fsync(o.fd[k]) < 0)
            rc = -errno;
    if (rc < 0)
        goto out;
    /* Index files first, the .log last: a .log.swap is the commit point. */
    static const enum seg_kind order[] = {SEG_INDEX, SEG_TIMEINDEX, SEG_LOG};
    for (size_t i = 0; i < SEG_KINDS; i++) {
        char from[4096], to[4096];
        if ((rc = job_path(job, g->base, order[i], ".cleaned", from, sizeof(from))) < 0 ||
            (rc = job_path(job, g->base, order[i], ".swap", to, sizeof(to))) < 0)
            goto out;
        if (rename(from, to) < 0) {
            rc = -errno;
            goto out;
        }
    }
    g->swapped = true;
out:
    for (int k = 0; k < SEG_KINDS; k++) {
        if (o.fd[k] >= 0)
            close(o.fd[k]);
        buf_writer_deinit(&o.w[k]);
    }
    if (!g->swapped)
        unlink_group_files(job, g);
    return rc;
}

int cleaner_job_run(struct cleaner_job *job)
{
    struct cl_reader r = {.fd = -1};
    int rc;
    if (!(job->map = cleaner_map_new(job->dedupe_bytes)))
        return -ENOMEM;
    if ((rc = scan_segments(job, &r)) < 0)
        goto out;
    job->stats.segments_before = (int32_t)job->nsegs;
    bool any = false;
    for (size_t i = 0; i < job->ngroups; i++) {
        if ((rc = clean_group(job, &job->groups[i], &r)) < 0)
            goto out;
        any |= job->groups[i].swapped;
    }
    if (any)
        rc = fsutil_fsync_dir(job->dir);
out:
    reader_close(&r);
    free(r.buf);
    /* The map is only needed while running: give its memory back now. */
    cleaner_map_free(job->map);
    job->map = NULL;
    return rc;
}

/* ---- swapping in ---------------------------------------------------------------------- */

static struct segment *group_segment(const struct cleaner_job *job, const struct cl_group *g)
{
    struct segment *s = seg_new(g->base, job->now_ms);
    if (!s)
        return NULL;
    s->size = g->size;
    s->max_ts = g->max_ts;
    s->max_ts_offset = g->max_ts_offset;
    s->first_ts = g->first_ts;
    s->idx_n = g->idx_n;
    s->idx_last_pos = g->idx_last_pos;
    s->tidx_n = g->tidx_n;
    s->tidx_last_ts = g->tidx_last_ts;
    s->tidx_last_pos = g->size;
    return s;
}

int cleaner_job_finish(struct plog *log, struct cleaner_job *job, int result, char ***ret_paths,
                       size_t *ret_count, struct cleaner_stats *ret_stats)
{
    *ret_paths = NULL;
    *ret_count = 0;
    int rc = result;
    if (!log)
        rc = -ENOENT;
    /* The recorded segments must still be the log's first ones, unchanged. */
    if (rc == 0 && (log->trunc_gen != job->trunc_gen || log->nsegs <= job->nsegs))
        rc = -ESTALE;
    for (size_t i = 0; rc == 0 && i < job->nsegs; i++)
        if (log->segs[i]->base != job->segs[i].base || log->segs[i]->size != job->segs[i].size)
            rc = -ESTALE;
    size_t nswap = 0;
    for (size_t i = 0; rc == 0 && i < job->ngroups; i++)
        nswap += job->groups[i].swapped;
    if (rc < 0 || nswap == 0) {
        if (rc == 0 && ret_stats) {
            job->stats.segments_after = job->stats.segments_before;
            *ret_stats = job->stats;
        }
        cleaner_job_free(job);
        return rc;
    }

    struct segment **nsegs = calloc(log->segs_cap, sizeof(*nsegs));
    struct segment **fresh = calloc(job->ngroups, sizeof(*fresh));
    char **paths = calloc(job->nsegs * SEG_KINDS, sizeof(*paths));
    rc = nsegs && fresh && paths ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < job->ngroups; i++)
        if (job->groups[i].swapped && !(fresh[i] = group_segment(job, &job->groups[i])))
            rc = -ENOMEM;
    if (rc < 0) {
        if (fresh)
            for (size_t i = 0; i < job->ngroups; i++)
                seg_free(fresh[i]);
        free(fresh);
        free(nsegs);
        free(paths);
        cleaner_job_free(job);
        return rc;
    }

    size_t n = 0, np = 0;
    for (size_t gi = 0; gi < job->ngroups; gi++) {
        struct cl_group *g = &job->groups[gi];
        if (!g->swapped) {
            for (size_t i = g->first; i < g->first + g->count; i++)
                nsegs[n++] = log->segs[i];
            continue;
        }
        for (size_t i = g->first; i < g->first + g->count; i++) {
            plog_retire_segment(log, log->segs[i], paths, &np);
            log->size_bytes -= log->segs[i]->size;
            seg_free(log->segs[i]);
        }
        static const enum seg_kind order[] = {SEG_INDEX, SEG_TIMEINDEX, SEG_LOG};
        for (size_t k = 0; k < SEG_KINDS; k++) {
            char from[4096], to[4096];
            if (job_path(job, g->base, order[k], ".swap", from, sizeof(from)) == 0 &&
                job_path(job, g->base, order[k], NULL, to, sizeof(to)) == 0 &&
                rename(from, to) < 0 && rc == 0)
                rc = -errno;
        }
        g->swapped = false; /* the files are the log's now */
        g->first_swapped = true;
        log->size_bytes += fresh[gi]->size;
        nsegs[n++] = fresh[gi];
    }
    for (size_t i = job->nsegs; i < log->nsegs; i++)
        nsegs[n++] = log->segs[i];
    free(log->segs);
    log->segs = nsegs;
    log->nsegs = n;
    log->dir_dirty = true;
    log->rc_valid = false;
    free(fresh);

    job->stats.segments_after = 0;
    for (size_t i = 0; i < job->ngroups; i++)
        job->stats.segments_after += job->groups[i].first_swapped ? 1 : (int32_t)job->groups[i].count;
    if (ret_stats)
        *ret_stats = job->stats;
    cleaner_job_free(job);
    *ret_paths = paths;
    *ret_count = np;
    return rc;
}

int cleaner_clean_sync(struct plog *log, int64_t first_dirty, int64_t now_ms,
                       int64_t dedupe_bytes, struct cleaner_stats *ret_stats)
{
    struct cleaner_job *job;
    struct cleaner_stats st = {.clean_upto = first_dirty};
    int rc = cleaner_prepare(log, first_dirty, now_ms, dedupe_bytes, &job);
    if (rc < 0 || !job) {
        if (ret_stats)
            *ret_stats = st;
        return rc;
    }
    rc = cleaner_job_run(job);
    char **paths;
    size_t np;
    rc = cleaner_job_finish(log, job, rc, &paths, &np, &st);
    for (size_t i = 0; i < np; i++)
        (void)unlink(paths[i]);
    plog_paths_free(paths, np);
    if (ret_stats)
        *ret_stats = st;
    return rc;
}
