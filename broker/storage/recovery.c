/* recovery: plog_open() — find the segments of a log directory, remove leftovers,
 * and re-validate whatever may not have reached the disk.
 *
 * The recovery point splits the log. Below it everything was fsynced (log and
 * index files alike, see plog_flush_prepare()), so those segments only get cheap
 * index sanity checks (size, first and last entry), and a rebuild from the log when
 * they fail. From the segment holding the recovery point on, the log is read
 * sequentially in PLOG_SCAN_BUF chunks and every batch at or after the recovery
 * point is checked (framing, offsets, CRC); batches below it in that segment get
 * framing and offset checks only. A corrupt byte below the recovery point is
 * therefore not detected here, by design: that data was durable, and reading it all
 * on every start would make restarts as slow as the log is long. The log is cut at
 * the first bad or torn batch and later segments are deleted. Scanned segments get
 * fresh indexes.
 *
 * After a clean shutdown (recovery point == log end) no batch is scanned: the
 * active segment's end is found by walking headers from its last index entry. */
#include "broker/storage/plog.h"

#include <ctype.h>
#include <stdio.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/storage/index.h"
#include "broker/storage/plog_internal.h"
#include "common/fsutil.h"

struct dir_entry {
    int64_t base;
    int kind;
    int64_t size;
};

/* A segment's file sizes as the directory listing saw them (-1: not there), in
 * log->segs order: the index checks at open read sizes from here rather than
 * opening the files, and an empty segment's files are not opened at all (a
 * broker restarting with 10,000 empty logs opened 30,000 files for nothing). */
struct listed {
    int64_t size[SEG_KINDS];
};

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), m = strlen(suffix);
    return n > m && strcmp(name + n - m, suffix) == 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct dir_entry *x = a, *y = b;
    if (x->base != y->base)
        return x->base < y->base ? -1 : 1;
    return x->kind - y->kind;
}

/* "<20 digits>.<log|index|timeindex>": 1 with base and kind, 0 for a name that
 * is not a segment file at all, -EBADMSG for a segment-like name that is invalid. */
static int parse_name(const char *name, int64_t *ret_base, int *ret_kind)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    int kind = -1;
    for (int k = 0; k < SEG_KINDS; k++)
        if (strcmp(dot, seg_suffix[k]) == 0)
            kind = k;
    if (kind < 0)
        return 0;
    if (dot - name != 20)
        return -EBADMSG;
    int64_t v = 0;
    for (const char *c = name; c < dot; c++) {
        if (!isdigit((unsigned char)*c) || v > (INT64_MAX - 9) / 10)
            return -EBADMSG;
        v = v * 10 + (*c - '0');
    }
    *ret_base = v;
    *ret_kind = kind;
    return 1;
}

/* The last offset of the batches in the .log swap file @path, walking headers
 * (@base - 1 when it holds none). -EBADMSG when the file is not whole batches from
 * @base on: the cleaner fsyncs a swap before naming it, so such a file was never
 * committed and is dropped as a stray. */
static int swap_last_offset(const char *path, int64_t base, int64_t *ret)
{
    int64_t last = base - 1, pos = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -errno;
    }
    uint8_t hb[BATCH_HEADER_SIZE];
    struct batch_header h;
    while (pos + BATCH_HEADER_SIZE <= st.st_size) {
        if (fsutil_pread_all(fd, hb, sizeof(hb), pos) < 0 ||
            batch_parse_header(hb, sizeof(hb), &h) < 0 ||
            seg_check_header(&h, pos, st.st_size) < 0 || h.base_offset < base ||
            h.base_offset <= last)
            break;
        last = batch_last_offset(&h);
        pos += batch_total_size(&h);
    }
    close(fd);
    if (pos != st.st_size)
        return -EBADMSG;
    *ret = last;
    return 0;
}

/* Finish the swaps a crash interrupted (the cleaner's protocol, cleaner.h): a
 * "<X>.log.swap" holds the cleaned replacement of every segment whose base lies in
 * [X, its last offset]. Those segments' files (whatever of them is left) are
 * removed, and the swap renamed to "<X>.log"; its index files are rebuilt by the
 * checks that follow. Leftover ".cleaned" files and index ".swap" files without a
 * log swap are removed afterwards as strays. */
static int complete_swaps(struct plog *log, struct plog_recovery_info *info)
{
    DIR *d = opendir(log->dir);
    if (!d)
        return -errno;
    int dfd = dirfd(d);
    struct dirent *de;
    int64_t *bases = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (!has_suffix(name, ".log.swap") || strlen(name) != 20 + strlen(".log.swap"))
            continue;
        int64_t base = 0;
        bool ok = true;
        for (int i = 0; i < 20; i++) {
            ok &= isdigit((unsigned char)name[i]) != 0;
            base = base * 10 + (name[i] - '0');
        }
        if (!ok)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            int64_t *nb = realloc(bases, nc * sizeof(*nb));
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            bases = nb;
            cap = nc;
        }
        bases[n++] = base;
    }
    for (size_t i = 0; i < n; i++) {
        char swap[4096], final[4096];
        if ((rc = seg_path(log, bases[i], SEG_LOG, ".swap", swap, sizeof(swap))) < 0 ||
            (rc = seg_path(log, bases[i], SEG_LOG, NULL, final, sizeof(final))) < 0)
            goto out;
        int64_t last = -1;
        if (swap_last_offset(swap, bases[i], &last) < 0)
            continue; /* not a committed swap: removed below as a stray */
        if (last < bases[i])
            last = bases[i];
        /* Remove the replaced segments: every segment file with a base in range. */
        rewinddir(d);
        while ((de = readdir(d))) {
            int64_t b;
            int kind;
            if (parse_name(de->d_name, &b, &kind) == 1 && b >= bases[i] && b <= last &&
                unlinkat(dfd, de->d_name, 0) == 0)
                info->stray_files_removed++;
        }
        if (rename(swap, final) < 0) {
            rc = -errno;
            goto out;
        }
        info->swaps_completed++;
    }
    if (n > 0)
        rc = fsutil_fsync_dir(log->dir);
out:
    free(bases);
    closedir(d);
    return rc;
}

/* List the directory: delete leftovers and orphan index files, and build the
 * segment list (sizes from stat). Interrupted swaps are completed first; the
 * listing finds them, so a log without one (nearly all: a broker restarting
 * with 10,000 logs lists each directory once, not twice). */
static int load_dir(struct plog *log, struct plog_recovery_info *info, bool swaps_done,
                    struct listed **ret_listed)
{
    static const char *const stray[] = {".deleted", ".tmp", ".cleaned", ".swap"};
    struct dir_entry *ents = NULL;
    struct listed *listed = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    DIR *d = opendir(log->dir);
    if (!d)
        return -errno;
    int dfd = dirfd(d);
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (!swaps_done && has_suffix(name, ".log.swap")) {
            /* Strays removed so far are not part of any swap (complete_swaps
             * uses the log swap alone). */
            closedir(d);
            free(ents);
            if ((rc = complete_swaps(log, info)) < 0)
                return rc;
            return load_dir(log, info, true, ret_listed);
        }
        bool is_stray = false;
        for (size_t i = 0; i < sizeof(stray) / sizeof(stray[0]); i++)
            is_stray |= has_suffix(name, stray[i]);
        if (is_stray) {
            if (unlinkat(dfd, name, 0) == 0)
                info->stray_files_removed++;
            continue;
        }
        struct dir_entry e;
        int r = parse_name(name, &e.base, &e.kind);
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r == 0)
            continue;
        struct stat st;
        if (fstatat(dfd, name, &st, 0) < 0) {
            rc = -errno;
            goto out;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = -EBADMSG;
            goto out;
        }
        e.size = st.st_size;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            struct dir_entry *ne = realloc(ents, nc * sizeof(*ne));
            if (!ne) {
                rc = -ENOMEM;
                goto out;
            }
            ents = ne;
            cap = nc;
        }
        ents[n++] = e;
        errno = 0;
    }
    if (errno) {
        rc = -errno;
        goto out;
    }
    if (n > 1)
        qsort(ents, n, sizeof(*ents), cmp_entry);
    if (n > 0 && !(listed = malloc(n * sizeof(*listed)))) { /* n >= segments */
        rc = -ENOMEM;
        goto out;
    }

    for (size_t i = 0; i < n;) {
        size_t j = i;
        bool has_log = false;
        int64_t size = 0;
        struct listed l;
        for (int k = 0; k < SEG_KINDS; k++)
            l.size[k] = -1;
        for (; j < n && ents[j].base == ents[i].base; j++) {
            l.size[ents[j].kind] = ents[j].size;
            if (ents[j].kind == SEG_LOG) {
                has_log = true;
                size = ents[j].size;
            }
        }
        if (has_log) {
            struct segment *seg = seg_new(ents[i].base, log->now_ms);
            if (!seg || plog_segs_append(log, seg) < 0) {
                seg_free(seg);
                rc = -ENOMEM;
                goto out;
            }
            seg->size = size;
            listed[log->nsegs - 1] = l;
        } else {
            for (size_t k = i; k < j; k++) {
                char path[4096];
                if (seg_path(log, ents[k].base, (enum seg_kind)ents[k].kind, NULL, path,
                             sizeof(path)) == 0 &&
                    unlink(path) == 0)
                    info->stray_files_removed++;
            }
        }
        i = j;
    }
out:
    free(ents);
    closedir(d);
    if (rc == 0)
        *ret_listed = listed;
    else
        free(listed);
    return rc;
}

struct index_tails {
    struct index_entry idx_last;
    struct timeindex_entry tidx_last;
    int64_t idx_n;
    int64_t tidx_n;
};

/* Read entry @i of an index file of @es-byte entries. */
static int read_entry(struct plog *log, struct segment *seg, enum seg_kind kind, int64_t i,
                      size_t es, void *ret)
{
    struct seg_file *f;
    int rc = seg_acquire(log, seg, kind, 0, &f);
    if (rc < 0)
        return rc;
    rc = fsutil_pread_all(seg_file_fd(f), ret, es, i * (int64_t)es);
    seg_file_unref(f);
    return rc;
}

static int file_size(struct plog *log, struct segment *seg, enum seg_kind kind, int64_t *ret)
{
    struct seg_file *f;
    struct stat st;
    int rc = seg_acquire(log, seg, kind, 0, &f);
    if (rc < 0)
        return rc;
    rc = fstat(seg_file_fd(f), &st) < 0 ? -errno : 0;
    seg_file_unref(f);
    if (rc == 0)
        *ret = st.st_size;
    return rc;
}

/* Cheap sanity checks of a segment's two index files (Kafka's, plus the first
 * entry): whole entries, offsets in [base, @end_limit), positions inside the log,
 * first <= last. A missing file is created empty and fails when the log is not.
 * 1 and the tails when they look fine, 0 when they need a rebuild. */
static int check_indexes(struct plog *log, struct segment *seg, int64_t end_limit,
                         const struct listed *l, struct index_tails *ret)
{
    struct index_tails t = {0};
    uint8_t e[TIMEINDEX_ENTRY_SIZE];
    int64_t sz = l->size[SEG_INDEX];
    if ((sz < 0 && file_size(log, seg, SEG_INDEX, &sz) < 0) || sz % INDEX_ENTRY_SIZE != 0)
        return 0;
    t.idx_n = sz / INDEX_ENTRY_SIZE;
    if (t.idx_n > INT32_MAX || (t.idx_n == 0 && seg->size > 0))
        return 0;
    if (t.idx_n > 0) {
        struct index_entry first;
        if (read_entry(log, seg, SEG_INDEX, t.idx_n - 1, INDEX_ENTRY_SIZE, e) < 0)
            return 0;
        index_entry_decode(e, &t.idx_last);
        if (read_entry(log, seg, SEG_INDEX, 0, INDEX_ENTRY_SIZE, e) < 0)
            return 0;
        index_entry_decode(e, &first);
        if (first.rel < 0 || first.pos != 0 || t.idx_last.pos >= seg->size ||
            first.rel > t.idx_last.rel || first.pos > t.idx_last.pos ||
            seg->base + t.idx_last.rel >= end_limit)
            return 0;
    }

    sz = l->size[SEG_TIMEINDEX];
    if ((sz < 0 && file_size(log, seg, SEG_TIMEINDEX, &sz) < 0) || sz % TIMEINDEX_ENTRY_SIZE != 0)
        return 0;
    t.tidx_n = sz / TIMEINDEX_ENTRY_SIZE;
    if (t.tidx_n > INT32_MAX || (t.tidx_n == 0 && seg->size > 0))
        return 0;
    if (t.tidx_n > 0) {
        struct timeindex_entry first;
        if (read_entry(log, seg, SEG_TIMEINDEX, t.tidx_n - 1, TIMEINDEX_ENTRY_SIZE, e) < 0)
            return 0;
        timeindex_entry_decode(e, &t.tidx_last);
        if (read_entry(log, seg, SEG_TIMEINDEX, 0, TIMEINDEX_ENTRY_SIZE, e) < 0)
            return 0;
        timeindex_entry_decode(e, &first);
        if (first.rel < 0 || first.ts > t.tidx_last.ts || first.rel > t.tidx_last.rel ||
            seg->base + t.tidx_last.rel >= end_limit)
            return 0;
    }
    *ret = t;
    return 1;
}

static void apply_tails(struct segment *seg, const struct index_tails *t)
{
    seg->idx_n = (int32_t)t->idx_n;
    seg->idx_last_pos = t->idx_n > 0 ? t->idx_last.pos : -1;
    seg->tidx_n = (int32_t)t->tidx_n;
    seg->tidx_last_ts = t->tidx_n > 0 ? t->tidx_last.ts : -1;
    seg->max_ts = seg->tidx_last_ts;
    seg->max_ts_offset = t->tidx_n > 0 ? seg->base + t->tidx_last.rel : -1;
    seg->tidx_last_pos = seg->size;
}

static void note_cut(struct plog_recovery_info *info, int64_t bytes, int64_t at)
{
    info->truncated_bytes += bytes;
    if (info->truncated_at < 0 || at < info->truncated_at)
        info->truncated_at = at;
}

static int cut_log(struct plog *log, struct segment *seg, int64_t size)
{
    struct seg_file *f;
    int rc = seg_acquire(log, seg, SEG_LOG, 0, &f);
    if (rc < 0)
        return rc;
    rc = ftruncate(seg_file_fd(f), size) < 0 ? -errno : 0;
    seg_file_unref(f);
    return rc;
}

/* Rebuild the indexes of a segment below the recovery point from its headers. */
static int rebuild_clean(struct plog *log, size_t i, struct plog_recovery_info *info)
{
    struct segment *seg = log->segs[i];
    struct seg_scan_opts o = {
        .crc_from = INT64_MAX,
        .offset_limit = i + 1 < log->nsegs ? log->segs[i + 1]->base : INT64_MAX,
        .rebuild_index = true,
    };
    struct seg_scan_result res;
    int rc = seg_scan(log, seg, &o, &res);
    if (rc < 0)
        return rc;
    info->indexes_rebuilt += 2;
    if (res.bad) {
        /* Durable data that does not parse: keep what precedes it. Later segments
         * stay; they were durable too. */
        if ((rc = cut_log(log, seg, res.valid_size)) < 0)
            return rc;
        note_cut(info, res.file_size - res.valid_size, res.next_offset);
    }
    return 0;
}

/* Whether the segment holding the recovery point has nothing at or after it and
 * consistent indexes: then it needs no scan. 1 and its end offset, or 0. */
static int clean_at_rp(struct plog *log, size_t s, int64_t rp, const struct listed *l,
                       int64_t *ret_end)
{
    struct segment *seg = log->segs[s];
    int64_t limit = s + 1 < log->nsegs ? log->segs[s + 1]->base : INT64_MAX;
    struct index_tails t;
    if (check_indexes(log, seg, limit, l, &t) != 1)
        return 0;
    apply_tails(seg, &t);
    if (seg->size == 0) {
        /* Nothing to read: clean unless an index names an entry (the .index
         * cannot here, check_indexes refuses it for an empty log). */
        if (t.tidx_n > 0)
            return 0;
        *ret_end = seg->base;
        return 1;
    }

    struct seg_file *f;
    struct seg_reader r;
    struct batch_header h;
    uint8_t buf[PLOG_WALK_BUF];
    int64_t pos, end = seg->base;
    int ok = 0;
    if (seg_acquire(log, seg, SEG_LOG, 0, &f) < 0)
        return 0;
    seg_reader_init(&r, seg_file_fd(f), seg->size, buf, sizeof(buf));
    seg_lookup_offset(log, seg, &r, rp, &pos);
    int rc;
    while ((rc = seg_reader_header(&r, pos, &h)) == 1) {
        if (batch_last_offset(&h) >= rp || h.base_offset < end)
            goto out;
        end = batch_last_offset(&h) + 1;
        pos += batch_total_size(&h);
    }
    if (rc < 0 || end > limit)
        goto out;
    /* Index entries past the end were written after the last flush. */
    if ((t.idx_n > 0 && seg->base + t.idx_last.rel >= end) ||
        (t.tidx_n > 0 && seg->base + t.tidx_last.rel >= end))
        goto out;
    /* The last time entry is the segment's max timestamp (flush and close write
     * it); check it against its batch before trusting it. */
    if (t.tidx_n > 0) {
        int64_t at;
        if (seg_find_batch(log, seg, &r, seg->base + t.tidx_last.rel, &at, &h, NULL) != 1 ||
            h.base_offset != seg->base + t.tidx_last.rel || h.max_timestamp != t.tidx_last.ts)
            goto out;
    }
    if (seg->size > 0) {
        if (seg_reader_header(&r, 0, &h) != 1)
            goto out;
        seg->first_ts = h.max_timestamp;
    }
    *ret_end = end;
    ok = 1;
out:
    seg_file_unref(f);
    return ok;
}

/* Drop segments from @from on (after a cut), counting what they held. */
static void delete_from(struct plog *log, size_t from, struct plog_recovery_info *info)
{
    for (size_t j = from; j < log->nsegs; j++) {
        info->truncated_bytes += log->segs[j]->size;
        info->segments_deleted++;
        seg_unlink_files(log, log->segs[j]);
        seg_free(log->segs[j]);
    }
    if (from < log->nsegs)
        log->dir_dirty = true;
    log->nsegs = from;
}

static int recover(struct plog *log, int64_t rp, const struct listed *listed,
                   struct plog_recovery_info *info)
{
    bool all = rp <= log->segs[0]->base;
    size_t s = all ? 0 : plog_seg_floor(log, rp);
    int64_t end = log->segs[0]->base;
    int rc;

    for (size_t i = 0; i < s; i++) {
        struct segment *seg = log->segs[i];
        struct index_tails t;
        if (check_indexes(log, seg, log->segs[i + 1]->base, &listed[i], &t) == 1)
            apply_tails(seg, &t);
        else if ((rc = rebuild_clean(log, i, info)) < 0)
            return rc;
    }

    size_t from = s;
    if (!all && clean_at_rp(log, s, rp, &listed[s], &end) == 1)
        from = s + 1;
    for (size_t i = from; i < log->nsegs; i++) {
        struct segment *seg = log->segs[i];
        struct seg_scan_opts o = {
            .crc_from = all ? INT64_MIN : rp,
            .offset_limit = i + 1 < log->nsegs ? log->segs[i + 1]->base : INT64_MAX,
            .rebuild_index = true,
        };
        struct seg_scan_result res;
        if ((rc = seg_scan(log, seg, &o, &res)) < 0)
            return rc;
        info->indexes_rebuilt += 2;
        if (res.crc_checked > 0 || res.bad)
            info->segments_scanned++;
        end = res.next_offset;
        if (res.bad) {
            if ((rc = cut_log(log, seg, res.valid_size)) < 0)
                return rc;
            note_cut(info, res.file_size - res.valid_size, res.next_offset);
            delete_from(log, i + 1, info);
            break;
        }
    }
    log->leo = end < plog_active(log)->base ? plog_active(log)->base : end;
    return 0;
}

int plog_open(const char *dir, const struct plog_config *cfg, struct fdcache *fc,
              int64_t recovery_point, int64_t log_start_offset, int64_t now_ms, struct plog **ret,
              struct plog_recovery_info *ret_info)
{
    struct plog_recovery_info info = {.truncated_at = -1};
    struct plog *log;
    int rc;
    if (!dir || !cfg || !fc)
        return -EINVAL;
    /* An existing directory (every log at start-up) needs no mkdir of each
     * prefix: those fail with EEXIST, but each takes the parent directory's
     * lock, ~60 us a log on this loaded ext4 with 10,000 logs in one dir. */
    struct stat dst;
    if ((stat(dir, &dst) < 0 || !S_ISDIR(dst.st_mode)) && (rc = fsutil_mkdirs(dir, 0755)) < 0)
        return rc;
    if (!(log = calloc(1, sizeof(*log))))
        return -ENOMEM;
    if (!(log->dir = strdup(dir))) {
        free(log);
        return -ENOMEM;
    }
    log->cfg = *cfg;
    log->fc = fc;
    log->now_ms = now_ms;

    struct listed *listed = NULL;
    if ((rc = load_dir(log, &info, false, &listed)) < 0)
        goto fail;
    info.segments = (int32_t)log->nsegs;

    if (log->nsegs == 0) {
        free(listed);
        log->leo = log_start_offset > 0 ? log_start_offset : 0;
        if ((rc = plog_roll(log, now_ms)) < 0)
            goto fail;
    } else {
        rc = recover(log, recovery_point, listed, &info);
        free(listed);
        if (rc < 0)
            goto fail;
    }

    log->log_start = log->segs[0]->base;
    if (log_start_offset > log->log_start)
        log->log_start = log_start_offset;
    if (log->log_start > log->leo) {
        /* The durable start is past everything that survived: start empty there. */
        int64_t start = log->log_start;
        info.segments_deleted += (int32_t)log->nsegs;
        if ((rc = plog_truncate_fully(log, start)) < 0)
            goto fail;
    }

    struct segment *active = plog_active(log);
    active->created_ms = now_ms;
    active->tidx_last_pos = active->size;
    log->size_bytes = 0;
    for (size_t i = 0; i < log->nsegs; i++)
        log->size_bytes += log->segs[i]->size;
    log->recovery_point = recovery_point;
    if (log->recovery_point < log->segs[0]->base)
        log->recovery_point = log->segs[0]->base;
    if (log->recovery_point > log->leo)
        log->recovery_point = log->leo;
    /* Unknown until the caller sets it (from the HW checkpoint, or replication):
     * the log start keeps retention from deleting anything meanwhile. */
    log->hw = log->log_start;

    *ret = log;
    if (ret_info)
        *ret_info = info;
    return 0;
fail:
    plog_free_struct(log);
    return rc;
}
