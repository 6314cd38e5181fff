/* plog: a partition replica's log at run time — append (offset assignment, leader
 * epoch stamping, rolling), fetch-style reads, lookups by time, truncation, the
 * log start offset, retention and flushing. Opening and crash recovery live in
 * recovery.c. */
#include "broker/storage/plog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/storage/index.h"
#include "broker/storage/plog_internal.h"
#include "common/fsutil.h"

/* Segments one flush job covers at most (three descriptors each). */
#define PLOG_FLUSH_MAX_SEGMENTS 32

/* plog_offset_for_timestamp() reads a batch into memory to find the record; larger
 * batches are answered at batch granularity, as compressed ones are. */
#define PLOG_TIME_LOOKUP_MAX_BATCH (16 << 20)

void plog_config_defaults(struct plog_config *cfg)
{
    cfg->segment_bytes = 1LL << 30;
    cfg->roll_ms = 168LL * 3600 * 1000;
    cfg->roll_jitter_ms = 0;
    cfg->index_interval_bytes = 4096;
    cfg->max_index_bytes = 10 << 20;
    cfg->retention_ms = 168LL * 3600 * 1000;
    cfg->retention_bytes = -1;
    cfg->flush_interval_messages = INT64_MAX;
    cfg->flush_interval_ms = INT64_MAX;
    cfg->file_delete_delay_ms = 0;
    cfg->cleanup_delete = true;
    cfg->cleanup_compact = false;
    cfg->min_cleanable_ratio = 0.5;
    cfg->delete_retention_ms = 86400000;
    cfg->min_compaction_lag_ms = 0;
    cfg->max_compaction_lag_ms = INT64_MAX;
}

/* ---- internal helpers shared with recovery.c ----------------------------------- */

size_t plog_seg_floor(const struct plog *log, int64_t offset)
{
    size_t lo = 0, hi = log->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : lo - 1;
}

int plog_segs_append(struct plog *log, struct segment *seg)
{
    if (log->nsegs == log->segs_cap) {
        size_t cap = log->segs_cap ? log->segs_cap * 2 : 8;
        struct segment **s = realloc(log->segs, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        log->segs = s;
        log->segs_cap = cap;
    }
    log->segs[log->nsegs++] = seg;
    return 0;
}

int64_t plog_segment_limit(const struct plog *log)
{
    return log->cfg.segment_bytes < INT32_MAX ? log->cfg.segment_bytes : INT32_MAX;
}

int32_t plog_index_max_entries(const struct plog *log, size_t entry_size)
{
    int32_t n = log->cfg.max_index_bytes / (int32_t)entry_size;
    return n < 1 ? 1 : n;
}

void plog_free_struct(struct plog *log)
{
    if (!log)
        return;
    for (size_t i = 0; i < log->nsegs; i++)
        seg_free(log->segs[i]);
    free(log->segs);
    free(log->dir);
    free(log);
}

int plog_roll(struct plog *log, int64_t now_ms)
{
    if (log->nsegs > 0) {
        struct segment *old = plog_active(log);
        if (old->base == log->leo)
            return 0; /* still empty: nothing to roll */
        seg_write_pending(log, old, true);
    }
    struct segment *seg = seg_new(log->leo, now_ms);
    if (!seg)
        return -ENOMEM;
    int r = seg_create_files(log, seg);
    if (r == 0)
        r = plog_segs_append(log, seg);
    if (r < 0) {
        seg_unlink_files(log, seg);
        seg_free(seg);
        return r;
    }
    log->dir_dirty = true;
    return 0;
}

/* ---- accessors ------------------------------------------------------------------ */

void plog_set_config(struct plog *log, const struct plog_config *cfg)
{
    log->cfg = *cfg;
}

const struct plog_config *plog_get_config(const struct plog *log)
{
    return &log->cfg;
}

const char *plog_dir(const struct plog *log)
{
    return log->dir;
}

int64_t plog_log_start_offset(const struct plog *log)
{
    return log->log_start;
}

int64_t plog_log_end_offset(const struct plog *log)
{
    return log->leo;
}

int64_t plog_high_watermark(const struct plog *log)
{
    return log->hw;
}

void plog_set_high_watermark(struct plog *log, int64_t hw)
{
    if (hw > log->leo)
        hw = log->leo;
    if (hw < log->log_start)
        hw = log->log_start;
    log->hw = hw;
}

int64_t plog_recovery_point(const struct plog *log)
{
    return log->recovery_point;
}

int64_t plog_size_bytes(const struct plog *log)
{
    return log->size_bytes;
}

int32_t plog_segment_count(const struct plog *log)
{
    return (int32_t)log->nsegs;
}

int64_t plog_active_segment_base(const struct plog *log)
{
    return plog_active(log)->base;
}

void plog_close(struct plog *log)
{
    if (!log)
        return;
    if (log->nsegs > 0)
        seg_write_pending(log, plog_active(log), true);
    plog_free_struct(log);
}

/* ---- append --------------------------------------------------------------------- */

/* The age limit of @seg: roll_ms less the segment's jitter. Kafka draws the
 * jitter at random per segment; a hash of the log's directory and the segment's
 * base offset spreads partitions just as well and gives the same answer after a
 * restart. */
static int64_t roll_limit_ms(const struct plog *log, const struct segment *seg)
{
    int64_t roll = log->cfg.roll_ms, max_jitter = log->cfg.roll_jitter_ms;
    if (max_jitter <= 0 || roll <= 1)
        return roll;
    if (max_jitter > roll)
        max_jitter = roll;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = log->dir; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    for (int i = 0; i < 8; i++)
        h = (h ^ (uint8_t)((uint64_t)seg->base >> (8 * i))) * 1099511628211ULL;
    return roll - (int64_t)(h % (uint64_t)max_jitter);
}

static bool roll_due(const struct plog *log, const struct segment *seg, int64_t len,
                     int64_t last_offset, int64_t max_ts, int64_t now_ms)
{
    if (seg->size == 0)
        return false;
    if (seg->size + len > plog_segment_limit(log))
        return true;
    /* Age as Kafka measures it: by record time once the segment has a timestamped
     * batch, so replayed old data does not roll a segment per append. */
    int64_t roll_ms = roll_limit_ms(log, seg);
    if (seg->first_ts >= 0) {
        if (max_ts - seg->first_ts > roll_ms)
            return true;
    } else if (now_ms - seg->created_ms > roll_ms) {
        return true;
    }
    if (seg->idx_n >= plog_index_max_entries(log, INDEX_ENTRY_SIZE) ||
        seg->tidx_n >= plog_index_max_entries(log, TIMEINDEX_ENTRY_SIZE))
        return true;
    return last_offset - seg->base > INT32_MAX;
}

int plog_append(struct plog *log, void *data, size_t len, unsigned flags, int32_t leader_epoch,
                int64_t now_ms, struct plog_append_info *ret_info)
{
    uint8_t *p = data;
    bool assign = flags & PLOG_APPEND_ASSIGN_OFFSETS;
    struct batch_header h;
    int64_t next = log->leo, max_ts = -1, records = 0, first_offset = log->leo;
    int32_t batches = 0;
    size_t pos;

    if (!data || len == 0)
        return -EINVAL;
    if (now_ms > log->now_ms)
        log->now_ms = now_ms;

    /* Framing and offsets first, so a bad request changes nothing. */
    for (pos = 0; pos < len; pos += (size_t)batch_total_size(&h)) {
        if (len - pos < BATCH_HEADER_SIZE || batch_parse_header(p + pos, len - pos, &h) < 0)
            return -EINVAL;
        if (h.length < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD || h.magic != BATCH_MAGIC_V2 ||
            h.last_offset_delta < 0 || (uint64_t)h.length > len - pos - BATCH_LOG_OVERHEAD)
            return -EINVAL;
        if (batch_total_size(&h) > plog_segment_limit(log))
            return -EMSGSIZE;
        if (!assign) {
            /* Gaps are fine (a compacted leader), going backwards is not. */
            if (h.base_offset < next)
                return -EINVAL;
            if (batches == 0)
                first_offset = h.base_offset;
            next = h.base_offset;
        }
        if (next > INT64_MAX - 1 - h.last_offset_delta)
            return -EINVAL;
        next += (int64_t)h.last_offset_delta + 1;
        records += h.record_count > 0 ? h.record_count : 0;
        if (h.max_timestamp > max_ts)
            max_ts = h.max_timestamp;
        batches++;
    }

    struct segment *seg = plog_active(log);
    bool rolled = false;
    if (roll_due(log, seg, (int64_t)len, next - 1, max_ts, now_ms)) {
        int r = plog_roll(log, now_ms);
        if (r < 0)
            return r;
        seg = plog_active(log);
        rolled = true;
    }
    if (next - 1 - seg->base > INT32_MAX)
        return -EINVAL; /* more offsets than one segment can index */

    int64_t off = log->leo;
    for (pos = 0; pos < len; pos += (size_t)batch_total_size(&h)) {
        batch_parse_header(p + pos, len - pos, &h);
        if (assign)
            batch_set_base_offset(p + pos, off);
        if (leader_epoch >= 0)
            batch_set_partition_leader_epoch(p + pos, leader_epoch);
        off += (int64_t)h.last_offset_delta + 1;
    }

    struct seg_file *f;
    int r = seg_acquire(log, seg, SEG_LOG, 0, &f);
    if (r < 0)
        return r;
    r = fsutil_pwrite_all(seg_file_fd(f), p, len, seg->size);
    if (r < 0) {
        /* Cut back whatever part of the write landed: the log stays as it was. */
        if (ftruncate(seg_file_fd(f), seg->size) < 0 && r == 0)
            r = -errno;
        seg_file_unref(f);
        return r;
    }
    seg_file_unref(f);

    for (pos = 0; pos < len; pos += (size_t)batch_total_size(&h)) {
        batch_parse_header(p + pos, len - pos, &h);
        seg_index_batch(log, seg, seg->size + (int64_t)pos, &h);
    }
    seg->size += (int64_t)len;
    log->size_bytes += (int64_t)len;
    int64_t first = assign ? log->leo : first_offset;
    log->leo = next;
    if (log->unflushed_msgs == 0 && log->oldest_unflushed_ms == 0)
        log->oldest_unflushed_ms = now_ms;
    if (log->first_since_prepare_ms == 0)
        log->first_since_prepare_ms = now_ms;
    log->unflushed_msgs += records;

    if (ret_info) {
        ret_info->first_offset = first;
        ret_info->last_offset = next - 1;
        ret_info->max_timestamp = max_ts;
        ret_info->batches = batches;
        ret_info->records = (int32_t)(records > INT32_MAX ? INT32_MAX : records);
        ret_info->rolled = rolled;
    }
    return 0;
}

/* ---- read ----------------------------------------------------------------------- */

int plog_read(struct plog *log, int64_t offset, int64_t max_offset, int32_t max_bytes, bool min_one,
              struct plog_read_result *ret)
{
    struct plog_read_result res = {
        .file = NULL, .position = 0, .length = 0, .first_offset = offset, .next_offset = offset};
    if (offset < log->log_start || offset > log->leo)
        return -ERANGE;
    if (offset == log->leo || offset >= max_offset) {
        *ret = res;
        return 0;
    }

    /* A consumer reading on from where its last fetch ended skips the index. */
    size_t i = plog_seg_floor(log, offset);
    int64_t hint = -1;
    if (log->rc_valid && log->rc_next == offset) {
        size_t j = plog_seg_floor(log, log->rc_base);
        if (log->segs[j]->base == log->rc_base && log->rc_pos <= log->segs[j]->size) {
            i = j;
            hint = log->rc_pos;
        }
    }

    uint8_t buf[PLOG_WALK_BUF];
    for (; i < log->nsegs; i++, hint = -1) {
        struct segment *seg = log->segs[i];
        struct seg_file *f;
        struct seg_reader r;
        struct batch_header h;
        int64_t at;
        int rc;
        if (seg->size == 0)
            continue;
        if ((rc = seg_acquire(log, seg, SEG_LOG, 0, &f)) < 0)
            return rc;
        seg_reader_init(&r, seg_file_fd(f), seg->size, buf, sizeof(buf));
        if (hint >= 0)
            rc = seg_walk_to(&r, hint, offset, &at, &h, NULL);
        else
            rc = seg_find_batch(log, seg, &r, offset, &at, &h, NULL);
        if (rc <= 0) {
            seg_file_unref(f);
            if (rc < 0)
                return rc;
            continue; /* nothing at or after @offset here: go on in the next one */
        }

        int64_t total = batch_total_size(&h);
        if (h.base_offset >= max_offset || (total > max_bytes && !min_one)) {
            seg_file_unref(f);
            break;
        }
        int64_t start = at, end = at + total, next = batch_last_offset(&h) + 1;
        res.first_offset = h.base_offset;
        while (seg_reader_header(&r, end, &h) == 1) {
            if (h.base_offset >= max_offset || end - start + batch_total_size(&h) > max_bytes)
                break;
            end += batch_total_size(&h);
            next = batch_last_offset(&h) + 1;
        }
        res.file = f;
        res.position = start;
        res.length = end - start;
        res.next_offset = next;
        log->rc_valid = true;
        log->rc_next = next;
        log->rc_base = seg->base;
        log->rc_pos = end;
        break;
    }
    *ret = res;
    return 0;
}

/* The first record at or after @ts in the batch at @pos: 1 and the answer, 0 if
 * the batch has none (its maxTimestamp lied). */
static int resolve_record(int fd, int64_t pos, const struct batch_header *h, int64_t ts,
                          int64_t log_start, int64_t *ret_offset, int64_t *ret_ts)
{
    int64_t total = batch_total_size(h);
    if (batch_compression(h) != BATCH_COMPRESSION_NONE ||
        (h->attributes & BATCH_ATTR_TIMESTAMP_LOG_APPEND) || total > PLOG_TIME_LOOKUP_MAX_BATCH) {
        *ret_offset = h->base_offset > log_start ? h->base_offset : log_start;
        *ret_ts = h->max_timestamp;
        return 1;
    }
    uint8_t *b = malloc((size_t)total);
    if (!b)
        return -ENOMEM;
    struct batch_record_iter it;
    struct batch_record rec;
    int rc = fsutil_pread_all(fd, b, (size_t)total, pos);
    if (rc == 0)
        rc = batch_validate(b, (size_t)total, 0, NULL);
    if (rc == 0)
        rc = batch_records_begin(b, (size_t)total, &it);
    while (rc == 0 && (rc = batch_records_next(&it, &rec)) == 1) {
        int64_t t = (int64_t)((uint64_t)h->base_timestamp + (uint64_t)rec.timestamp_delta);
        int64_t o = h->base_offset + rec.offset_delta;
        /* Record deltas come from the producer: never answer outside the batch. */
        if (rec.offset_delta < 0 || o > batch_last_offset(h))
            o = h->base_offset;
        if (t >= ts && o >= log_start) {
            *ret_offset = o;
            *ret_ts = t;
            break;
        }
        rc = 0;
    }
    free(b);
    if (rc < 0)
        return rc == -ENODATA || rc == -EILSEQ ? -EBADMSG : rc;
    return rc;
}

int plog_offset_for_timestamp(struct plog *log, int64_t timestamp, int64_t *ret_offset,
                              int64_t *ret_timestamp)
{
    uint8_t buf[PLOG_WALK_BUF];
    for (size_t i = 0; i < log->nsegs; i++) {
        struct segment *seg = log->segs[i];
        if (seg->size == 0 || seg->max_ts < timestamp)
            continue;
        if (i + 1 < log->nsegs && log->segs[i + 1]->base <= log->log_start)
            continue;
        struct seg_file *f;
        struct seg_reader r;
        struct batch_header h;
        int64_t pos;
        int rc = seg_acquire(log, seg, SEG_LOG, 0, &f);
        if (rc < 0)
            return rc;
        seg_reader_init(&r, seg_file_fd(f), seg->size, buf, sizeof(buf));
        seg_lookup_time(log, seg, &r, timestamp, &pos);
        while ((rc = seg_reader_header(&r, pos, &h)) == 1) {
            if (batch_last_offset(&h) >= log->log_start && h.max_timestamp >= timestamp) {
                int64_t o = 0, t = 0;
                rc = resolve_record(seg_file_fd(f), pos, &h, timestamp, log->log_start, &o, &t);
                if (rc == 1 && (o < log->log_start || o >= log->leo))
                    rc = -EBADMSG; /* offsets outside the log: corrupt below the recovery point */
                if (rc == 1) {
                    seg_file_unref(f);
                    *ret_offset = o;
                    *ret_timestamp = t;
                    return 0;
                }
                if (rc < 0)
                    break;
            }
            pos += batch_total_size(&h);
        }
        seg_file_unref(f);
        if (rc < 0)
            return rc;
    }
    return -ENOENT;
}

/* ---- truncation and the start offset -------------------------------------------- */

/* Forget the segments from index @from on, deleting their files. */
static void drop_tail_segments(struct plog *log, size_t from)
{
    for (size_t i = from; i < log->nsegs; i++) {
        log->size_bytes -= log->segs[i]->size;
        seg_unlink_files(log, log->segs[i]);
        seg_free(log->segs[i]);
    }
    if (from < log->nsegs)
        log->dir_dirty = true;
    log->nsegs = from;
}

static void after_truncation(struct plog *log)
{
    if (log->recovery_point > log->leo)
        log->recovery_point = log->leo;
    if (log->log_start > log->leo)
        log->log_start = log->leo;
    if (log->hw > log->leo)
        log->hw = log->leo;
    if (log->hw < log->log_start)
        log->hw = log->log_start;
    log->rc_valid = false;
    log->trunc_gen++;
}

int plog_truncate_to(struct plog *log, int64_t offset, int64_t *ret_log_end)
{
    if (offset >= log->leo) {
        if (ret_log_end)
            *ret_log_end = log->leo;
        return 0;
    }
    if (offset < log->log_start || offset < log->segs[0]->base) {
        int r = plog_truncate_fully(log, offset);
        if (r == 0 && ret_log_end)
            *ret_log_end = log->leo;
        return r;
    }

    size_t i = plog_seg_floor(log, offset);
    struct segment *seg = log->segs[i];
    struct seg_file *f;
    struct seg_reader r;
    struct batch_header h;
    uint8_t buf[PLOG_WALK_BUF];
    int64_t pos, end = seg->base;
    int rc = seg_acquire(log, seg, SEG_LOG, 0, &f);
    if (rc < 0)
        return rc;
    seg_reader_init(&r, seg_file_fd(f), seg->size, buf, sizeof(buf));
    rc = seg_find_batch(log, seg, &r, offset, &pos, &h, &end);
    seg_file_unref(f);
    if (rc < 0)
        return rc;

    /* Later segments go first, so a crash in between leaves a prefix of the log. */
    drop_tail_segments(log, i + 1);
    int64_t new_leo;
    if (rc == 1) {
        int64_t old_size = seg->size;
        if ((rc = seg_truncate(log, seg, pos, h.base_offset)) < 0)
            return rc;
        log->size_bytes -= old_size - seg->size;
        new_leo = h.base_offset < offset ? h.base_offset : offset;
    } else {
        new_leo = end < offset ? end : offset;
    }
    log->leo = new_leo;
    after_truncation(log);
    if (ret_log_end)
        *ret_log_end = log->leo;
    return 0;
}

int plog_truncate_fully(struct plog *log, int64_t offset)
{
    if (offset < 0)
        return -EINVAL;
    drop_tail_segments(log, 0); /* pending index entries die with their files */
    log->size_bytes = 0;
    log->leo = offset;
    log->log_start = offset;
    log->recovery_point = offset;
    log->dir_dirty = true;
    after_truncation(log);

    /* The log must always have an active segment; keep the summary even if its
     * files cannot be created, so later calls report the file-system error. */
    struct segment *seg = seg_new(offset, log->now_ms);
    if (!seg)
        return -ENOMEM;
    int r = plog_segs_append(log, seg);
    if (r < 0) {
        seg_free(seg);
        return r;
    }
    return seg_create_files(log, seg);
}

int plog_raise_start_offset(struct plog *log, int64_t offset)
{
    /* Kafka: the log start never passes the high watermark, so a consumer can
     * always read from it, and nothing uncommitted is declared deleted. */
    if (offset > log->hw)
        return -ERANGE;
    if (offset > log->log_start)
        log->log_start = offset;
    return 0;
}

/* ---- retention ------------------------------------------------------------------ */

/* The segment's largest timestamp, or its file's mtime when it has none (Kafka). */
static int64_t seg_largest_ts(struct plog *log, struct segment *seg)
{
    if (seg->max_ts >= 0)
        return seg->max_ts;
    struct seg_file *f;
    struct stat st;
    if (seg_acquire(log, seg, SEG_LOG, 0, &f) < 0)
        return INT64_MAX; /* unknown: keep it */
    int rc = fstat(seg_file_fd(f), &st);
    seg_file_unref(f);
    if (rc < 0)
        return INT64_MAX;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

void plog_paths_free(char **paths, size_t count)
{
    if (!paths)
        return;
    for (size_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
}

/* Rename a segment's files to "<name>.deleted", appending the new names to
 * @paths. A file that cannot be renamed is unlinked here instead. */
int plog_retire_segment(struct plog *log, struct segment *seg, char **paths, size_t *n)
{
    for (int k = 0; k < SEG_KINDS; k++) {
        char from[4096], to[4096];
        fdcache_release_slot(&seg->files[k]);
        if (seg_path(log, seg->base, (enum seg_kind)k, NULL, from, sizeof(from)) < 0 ||
            seg_path(log, seg->base, (enum seg_kind)k, ".deleted", to, sizeof(to)) < 0)
            return -ENAMETOOLONG;
        if (rename(from, to) < 0) {
            if (errno != ENOENT)
                (void)unlink(from);
            continue;
        }
        if (!(paths[*n] = strdup(to))) {
            (void)unlink(to);
            continue;
        }
        (*n)++;
    }
    return 0;
}

int plog_enforce_retention(struct plog *log, int64_t now_ms, char ***ret_paths, size_t *ret_count)
{
    size_t n = log->nsegs, k = 0;
    if (now_ms > log->now_ms)
        log->now_ms = now_ms;

    /* A compact-only log keeps its segments; the cleaner shrinks them. */
    if (log->cfg.cleanup_delete && log->cfg.retention_ms >= 0) {
        while (k < n && log->segs[k]->size > 0 &&
               now_ms - seg_largest_ts(log, log->segs[k]) > log->cfg.retention_ms)
            k++;
    }
    if (log->cfg.cleanup_delete && log->cfg.retention_bytes >= 0) {
        int64_t diff = log->size_bytes - log->cfg.retention_bytes;
        for (size_t j = 0; j < k; j++)
            diff -= log->segs[j]->size;
        for (size_t j = k; j + 1 < n && diff - log->segs[j]->size >= 0; j++) {
            diff -= log->segs[j]->size;
            k = j + 1;
        }
    }
    size_t j = 0;
    while (j + 1 < n && log->segs[j + 1]->base <= log->log_start)
        j++;
    if (j + 1 == n && log->log_start >= log->leo && log->segs[j]->size > 0)
        j = n;
    if (j > k)
        k = j;
    /* Only segments wholly below the high watermark may go (Kafka's
     * deletableSegments): a segment holding uncommitted records may still be
     * needed by a follower or become the committed history. */
    size_t below_hw = 0;
    while (below_hw < k) {
        int64_t upper = below_hw + 1 < n ? log->segs[below_hw + 1]->base : log->leo;
        if (upper > log->hw)
            break;
        below_hw++;
    }
    k = below_hw;

    if (k == 0) {
        *ret_paths = NULL;
        *ret_count = 0;
        return 0;
    }
    char **paths = calloc(k * SEG_KINDS, sizeof(*paths));
    if (!paths)
        return -ENOMEM;
    if (k == n) {
        /* Everything goes: start the empty active segment the log must keep. */
        int r = plog_roll(log, now_ms);
        if (r < 0) {
            free(paths);
            return r;
        }
    }
    size_t np = 0;
    for (size_t i = 0; i < k; i++) {
        struct segment *seg = log->segs[i];
        plog_retire_segment(log, seg, paths, &np);
        log->size_bytes -= seg->size;
        seg_free(seg);
    }
    memmove(log->segs, log->segs + k, (log->nsegs - k) * sizeof(*log->segs));
    log->nsegs -= k;
    log->dir_dirty = true;
    int64_t first = log->segs[0]->base;
    if (log->log_start < first)
        log->log_start = first;
    if (log->recovery_point < first)
        log->recovery_point = first;
    if (log->rc_valid && log->rc_base < first)
        log->rc_valid = false;
    *ret_paths = paths;
    *ret_count = np;
    return 0;
}

/* ---- flushing ------------------------------------------------------------------- */

struct plog_flush_job {
    int64_t target;
    int64_t msgs;
    uint64_t trunc_gen;
    bool dir;
    int nfds;
    int fds[]; /* the directory's first when dir */
};

bool plog_flush_due(const struct plog *log, int64_t now_ms)
{
    if (log->unflushed_msgs <= 0)
        return false;
    if (log->unflushed_msgs >= log->cfg.flush_interval_messages)
        return true;
    return log->oldest_unflushed_ms > 0 &&
           now_ms - log->oldest_unflushed_ms >= log->cfg.flush_interval_ms;
}

int64_t plog_unflushed_messages(const struct plog *log)
{
    return log->unflushed_msgs;
}

static void job_free(struct plog_flush_job *job)
{
    if (!job)
        return;
    for (int i = 0; i < job->nfds; i++)
        close(job->fds[i]);
    free(job);
}

int plog_flush_prepare(struct plog *log, struct plog_flush_job **ret)
{
    size_t from =
        log->recovery_point >= log->leo ? log->nsegs : plog_seg_floor(log, log->recovery_point);
    if (from == log->nsegs && !log->dir_dirty) {
        *ret = NULL;
        return 0;
    }
    /* Bound the descriptors one job holds: after many rolls without a flush, the
     * backlog is flushed a batch of segments at a time. */
    size_t to =
        log->nsegs - from > PLOG_FLUSH_MAX_SEGMENTS ? from + PLOG_FLUSH_MAX_SEGMENTS : log->nsegs;
    size_t max = 1 + (to - from) * SEG_KINDS;
    struct plog_flush_job *job = calloc(1, sizeof(*job) + max * sizeof(int));
    if (!job)
        return -ENOMEM;
    int rc = 0;
    if (log->dir_dirty) {
        int fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            job_free(job);
            return -errno;
        }
        job->fds[job->nfds++] = fd;
        job->dir = true;
    }
    for (size_t i = from; i < to && rc == 0; i++) {
        struct segment *seg = log->segs[i];
        /* The final time entry makes the max timestamp recoverable at this point. */
        seg_write_pending(log, seg, i + 1 == log->nsegs);
        for (int k = 0; k < SEG_KINDS && rc == 0; k++) {
            struct seg_file *f;
            if ((rc = seg_acquire(log, seg, (enum seg_kind)k, 0, &f)) < 0)
                break;
            int fd = fcntl(seg_file_fd(f), F_DUPFD_CLOEXEC, 0);
            if (fd < 0)
                rc = -errno;
            else
                job->fds[job->nfds++] = fd;
            seg_file_unref(f);
        }
    }
    if (rc < 0) {
        job_free(job);
        return rc;
    }
    job->trunc_gen = log->trunc_gen;
    log->dir_dirty = false;
    if (to < log->nsegs) {
        job->target = log->segs[to]->base;
        job->msgs = 0; /* the unflushed count is per log: settled by the last job */
    } else {
        job->target = log->leo;
        job->msgs = log->unflushed_msgs;
        log->first_since_prepare_ms = 0;
    }
    *ret = job;
    return 0;
}

int plog_flush_job_run(struct plog_flush_job *job)
{
    int err = 0;
    for (int i = 0; i < job->nfds; i++) {
        int r = (i == 0 && job->dir) ? fsync(job->fds[i]) : fdatasync(job->fds[i]);
        if (r < 0 && err == 0)
            err = -errno;
    }
    return err;
}

void plog_flush_job_finish(struct plog *log, struct plog_flush_job *job, int result)
{
    if (!job)
        return;
    if (log) {
        if (result < 0) {
            if (job->dir)
                log->dir_dirty = true;
        } else {
            /* After a truncation the captured files no longer describe the log's
             * prefix up to target, so the recovery point stays. */
            if (job->trunc_gen == log->trunc_gen && job->target > log->recovery_point)
                log->recovery_point = job->target < log->leo ? job->target : log->leo;
            log->unflushed_msgs -= job->msgs;
            if (log->unflushed_msgs <= 0) {
                log->unflushed_msgs = 0;
                log->oldest_unflushed_ms = 0;
            } else {
                log->oldest_unflushed_ms = log->first_since_prepare_ms;
            }
        }
    }
    job_free(job);
}

int plog_flush_sync(struct plog *log)
{
    for (;;) {
        struct plog_flush_job *job;
        int r = plog_flush_prepare(log, &job);
        if (r < 0 || !job)
            return r;
        bool last = job->target == log->leo;
        r = plog_flush_job_run(job);
        plog_flush_job_finish(log, job, r);
        if (r < 0 || last)
            return r;
    }
}
