/* epochcache: the leader-epoch cache of one partition replica, its strict
 * reader and atomic writer of Kafka's leader-epoch-checkpoint file, and
 * Kafka's endOffsetFor lookup used for log divergence (KIP-101, KIP-279). */
#include "broker/replica/epochcache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/storage/checkpoint.h"
#include "common/fsutil.h"

#define EPOCHCACHE_VERSION 0
/* The shortest entry line: "0 0\n". */
#define EC_MIN_LINE 4
/* The longest entry line: int32 digits, space, int64 digits, newline. */
#define EC_MAX_LINE (10 + 1 + 19 + 1)
/* Version line, count line (at most 6 digits), and every entry at full width. */
#define EC_MAX_FILE_BYTES (2 + 7 + (size_t)EPOCHCACHE_MAX_ENTRIES * EC_MAX_LINE)

struct epochcache {
    char *path;
    struct epochcache_entry *entries;
    size_t count;
    size_t durable;  /* entries on disk; < count only while in a batch */
    bool in_batch;
    /* What the file says when it differs from memory since the open dropped
     * entries (a rewrite pending in a batch), else NULL: a batch that ends
     * where the file already is writes nothing. */
    struct epochcache_entry *file;
    size_t file_count;
};

/* Parse the whole file into a malloc'd array (NULL when empty). -EBADMSG for
 * anything that is not a well-formed, ordered cache; -ENOMEM. */
static int ec_parse(const char *text, size_t len, struct epochcache_entry **ret_entries,
                    size_t *ret_count)
{
    struct checkpoint_cursor c = {text, text + len};
    int64_t version, count;
    int r;

    r = checkpoint_read_number(&c, '\n', INT32_MAX, &version);
    if (r < 0)
        return r;
    if (version != EPOCHCACHE_VERSION)
        return -EBADMSG;
    r = checkpoint_read_number(&c, '\n', EPOCHCACHE_MAX_ENTRIES, &count);
    if (r < 0)
        return r;
    /* A count the rest of the file cannot hold is refused before allocating. */
    if ((size_t)count > (size_t)(c.end - c.p) / EC_MIN_LINE)
        return -EBADMSG;

    struct epochcache_entry *entries = NULL;
    if (count > 0) {
        entries = calloc((size_t)count, sizeof(*entries));
        if (!entries)
            return -ENOMEM;
    }
    for (size_t i = 0; i < (size_t)count; i++) {
        int64_t epoch, offset;
        if (checkpoint_read_number(&c, ' ', INT32_MAX, &epoch) < 0 ||
            checkpoint_read_number(&c, '\n', INT64_MAX, &offset) < 0)
            goto bad;
        if (i > 0 && (epoch <= entries[i - 1].epoch || offset < entries[i - 1].start_offset))
            goto bad;
        entries[i].epoch = (int32_t)epoch;
        entries[i].start_offset = offset;
    }
    if (c.p != c.end)
        goto bad;
    *ret_entries = entries;
    *ret_count = (size_t)count;
    return 0;

bad:
    free(entries);
    return -EBADMSG;
}

/* The file's text for @n entries, malloc'd. -E2BIG, -ENOMEM. */
static int ec_format(const struct epochcache_entry *entries, size_t n, char **ret_buf,
                     size_t *ret_len)
{
    _Static_assert(EC_MAX_FILE_BYTES < SIZE_MAX / 2, "cap cannot overflow");
    if (n > EPOCHCACHE_MAX_ENTRIES)
        return -E2BIG;
    size_t cap = 32 + n * EC_MAX_LINE;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    size_t len = (size_t)snprintf(buf, cap, "%d\n%zu\n", EPOCHCACHE_VERSION, n);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%" PRId32 " %" PRId64 "\n", entries[i].epoch,
                                entries[i].start_offset);
    /* cap counted every field at full width, so nothing was cut. */
    *ret_buf = buf;
    *ret_len = len;
    return 0;
}

/* Write @n entries to the cache's file, replacing it atomically. */
/* The file now says what memory does. */
static void ec_file_is_memory(struct epochcache *c)
{
    free(c->file);
    c->file = NULL;
    c->file_count = 0;
}

static int ec_write_spare_unsynced(const struct epochcache *c, char **ret_spare);
static int ec_swap_in(const char *spare, const char *path);

/* Write @entries as @c's file, durably: the spare written and fsynced,
 * exchanged with the file, the directory fsynced. */
static int ec_write(struct epochcache *c, const struct epochcache_entry *entries, size_t n)
{
    struct epochcache view = {.path = c->path, .entries = (struct epochcache_entry *)entries,
                              .count = n};
    char *spare;
    int r = ec_write_spare_unsynced(&view, &spare);
    if (r < 0)
        return r;
    int fd = open(spare, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        r = -errno;
    else {
        if (fsync(fd) < 0)
            r = -errno;
        close(fd);
    }
    if (r == 0)
        r = ec_swap_in(spare, c->path);
    free(spare);
    if (r == 0) {
        char *dir = strdup(c->path);
        if (!dir)
            return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = '\0';
        r = fsutil_fsync_dir(slash ? dir : ".");
        free(dir);
    }
    if (r == 0)
        ec_file_is_memory(c);
    return r;
}

/* The file already says exactly what memory does: nothing to write. */
static bool ec_file_matches(const struct epochcache *c)
{
    return c->file && c->file_count == c->count &&
           (c->count == 0 || !memcmp(c->file, c->entries, c->count * sizeof(*c->entries)));
}

/* Make entries [@from, count) the whole cache, with the first one's start
 * raised to @first_start when that is higher. The file is written first and
 * memory changed only when that succeeded, so the two never disagree. */
static int ec_keep_range(struct epochcache *c, size_t from, int64_t first_start)
{
    size_t n = c->count - from;
    struct epochcache_entry *kept = NULL;
    if (n > 0) {
        kept = malloc(n * sizeof(*kept));
        if (!kept)
            return -ENOMEM;
        memcpy(kept, c->entries + from, n * sizeof(*kept));
        if (kept[0].start_offset < first_start)
            kept[0].start_offset = first_start;
    }
    int r = ec_write(c, kept, n);
    if (r < 0) {
        free(kept);
        return r;
    }
    free(c->entries);
    c->entries = kept;
    c->count = n;
    c->durable = c->count;
    return 0;
}

/* Add @c to @b (once); -ENOMEM leaves @b as it was. */
static int ec_batch_add(struct epochcache *c, struct epochcache_batch *b)
{
    if (c->in_batch)
        return 0;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct epochcache **v = realloc(b->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    c->in_batch = true;
    b->v[b->n++] = c;
    return 0;
}

int epochcache_open_batched(const char *dir, int64_t log_end_offset, struct epochcache **ret,
                            bool *ret_discarded, struct epochcache_batch *b)
{
    struct epochcache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    size_t plen = strlen(dir) + 1 + strlen(EPOCHCACHE_FILE) + 1;
    c->path = malloc(plen);
    if (!c->path) {
        free(c);
        return -ENOMEM;
    }
    snprintf(c->path, plen, "%s/%s", dir, EPOCHCACHE_FILE);

    bool discarded = false;
    uint8_t *data = NULL;
    size_t len = 0;
    int r = fsutil_read_file(c->path, EC_MAX_FILE_BYTES, &data, &len);
    if (r == -ENOENT) {
        r = 0;
    } else if (r == -EFBIG) {
        /* Larger than the largest valid file: it cannot parse. */
        discarded = true;
        r = 0;
    } else if (r == 0) {
        r = ec_parse((const char *)data, len, &c->entries, &c->count);
        free(data);
        if (r == -EBADMSG) {
            discarded = true;
            r = 0;
        }
    }
    if (r < 0)
        goto fail;
    /* Entries at or past the log end: an epoch whose records recovery cut off,
     * or one that never wrote any (a leadership of an empty log). */
    size_t keep = c->count;
    while (keep > 0 && c->entries[keep - 1].start_offset >= log_end_offset)
        keep--;
    bool rewrite = discarded || keep < c->count;
    if (rewrite && b && !discarded) {
        /* Keep what the file says: a leadership taken up again in the same
         * sweep (an empty log's epoch) may bring memory back to it. */
        if (!(c->file = malloc(c->count * sizeof(*c->file)))) {
            r = -ENOMEM;
            goto fail;
        }
        memcpy(c->file, c->entries, c->count * sizeof(*c->file));
        c->file_count = c->count;
    }
    c->count = c->durable = keep;
    if (rewrite) {
        /* Memory is what the file must say; until it does, the file holds
         * entries memory dropped, which a later open drops again. Nothing can
         * append to the log before the write: the caller commits @b first. */
        r = b ? ec_batch_add(c, b) : ec_write(c, c->entries, c->count);
        if (r < 0)
            goto fail;
    }

    *ret = c;
    if (ret_discarded)
        *ret_discarded = discarded;
    return 0;

fail:
    epochcache_free(c);
    return r;
}

int epochcache_open(const char *dir, int64_t log_end_offset, struct epochcache **ret,
                    bool *ret_discarded)
{
    return epochcache_open_batched(dir, log_end_offset, ret, ret_discarded, NULL);
}

void epochcache_free(struct epochcache *c)
{
    if (!c)
        return;
    free(c->entries);
    free(c->file);
    free(c->path);
    free(c);
}

int32_t epochcache_latest_epoch(const struct epochcache *c)
{
    return c->count > 0 ? c->entries[c->count - 1].epoch : EPOCHCACHE_UNDEFINED;
}

size_t epochcache_count(const struct epochcache *c)
{
    return c->count;
}

struct epochcache_entry epochcache_get(const struct epochcache *c, size_t i)
{
    return c->entries[i];
}

int epochcache_assign(struct epochcache *c, int32_t epoch, int64_t start_offset)
{
    if (epoch < 0 || start_offset < 0)
        return -EINVAL;
    if (epoch <= epochcache_latest_epoch(c))
        return 0;
    if (c->count > 0 && start_offset < c->entries[c->count - 1].start_offset)
        return -EINVAL;
    if (c->count >= EPOCHCACHE_MAX_ENTRIES)
        return -E2BIG;
    /* Grow first: if the write then fails the spare slot is harmless. */
    struct epochcache_entry *grown = realloc(c->entries, (c->count + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    c->entries = grown;
    c->entries[c->count] = (struct epochcache_entry){epoch, start_offset};
    int r = ec_write(c, c->entries, c->count + 1);
    if (r < 0)
        return r;
    c->count++;
    c->durable = c->count;
    return 0;
}

int epochcache_assign_batched(struct epochcache *c, int32_t epoch, int64_t start_offset,
                              struct epochcache_batch *b)
{
    if (epoch < 0 || start_offset < 0)
        return -EINVAL;
    if (epoch <= epochcache_latest_epoch(c))
        return 0;
    if (c->count > 0 && start_offset < c->entries[c->count - 1].start_offset)
        return -EINVAL;
    if (c->count >= EPOCHCACHE_MAX_ENTRIES)
        return -E2BIG;
    int r = ec_batch_add(c, b);
    if (r < 0)
        return r;
    struct epochcache_entry *grown = realloc(c->entries, (c->count + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM; /* (in @b: written as it is, harmless) */
    c->entries = grown;
    c->entries[c->count++] = (struct epochcache_entry){epoch, start_offset};
    return 0;
}

/* Write @c's content into its spare file (EPOCHCACHE_SPARE_SUFFIX beside the
 * file) without syncing; *ret_spare names it. The spare is the file's previous
 * inode, kept after a RENAME_EXCHANGE: rewriting it allocates no inode, which
 * costs about a millisecond per file on a busy, nearly full ext4 (thousands of
 * them when a broker takes up thousands of leaderships). */
static int ec_write_spare_unsynced(const struct epochcache *c, char **ret_spare)
{
    char *buf;
    size_t len;
    int r = ec_format(c->entries, c->count, &buf, &len);
    if (r < 0)
        return r;
    size_t slen = strlen(c->path) + sizeof(EPOCHCACHE_SPARE_SUFFIX);
    char *spare = malloc(slen);
    if (!spare) {
        free(buf);
        return -ENOMEM;
    }
    snprintf(spare, slen, "%s%s", c->path, EPOCHCACHE_SPARE_SUFFIX);
    int fd = open(spare, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
    } else {
        r = fsutil_pwrite_all(fd, buf, len, 0);
        if (r == 0 && ftruncate(fd, (off_t)len) < 0)
            r = -errno;
        if (close(fd) < 0 && r == 0 && errno != EINTR)
            r = -errno;
    }
    free(buf);
    if (r < 0) {
        free(spare);
        return r;
    }
    *ret_spare = spare;
    return 0;
}

/* Put the written spare in the file's place, atomically; the old file becomes
 * the spare. Without a file yet (or a file system without RENAME_EXCHANGE), a
 * plain rename. */
static int ec_swap_in(const char *spare, const char *path)
{
    if (renameat2(AT_FDCWD, spare, AT_FDCWD, path, RENAME_EXCHANGE) == 0)
        return 0;
    if (errno != ENOENT && errno != EINVAL)
        return -errno;
    return rename(spare, path) < 0 ? -errno : 0;
}

/* syncfs() of the file system holding @path's directory. */
static int ec_syncfs(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -errno;
    int r = syncfs(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* One cache on its own, as epochcache_assign would have; on failure its
 * batched entries leave memory. */
static bool ec_commit_one(struct epochcache *c)
{
    if (ec_file_matches(c) || ec_write(c, c->entries, c->count) == 0) {
        ec_file_is_memory(c);
        c->durable = c->count;
        return true;
    }
    c->count = c->durable;
    return false;
}

size_t epochcache_batch_commit(struct epochcache_batch *b)
{
    size_t failed = 0;
    if (b->n < EPOCHCACHE_BATCH_MIN) {
        for (size_t i = 0; i < b->n; i++)
            failed += !ec_commit_one(b->v[i]);
    } else {
        /* Per cache: its spare written, or nothing when the file already
         * says what memory does. */
        char **tmps = calloc(b->n, sizeof(*tmps));
        int r = tmps ? 0 : -ENOMEM;
        for (size_t i = 0; r == 0 && i < b->n; i++)
            if (!ec_file_matches(b->v[i]) && ec_write_spare_unsynced(b->v[i], &tmps[i]) < 0)
                tmps[i] = NULL; /* retried on its own below */
        /* The data of every spare, then every exchange, on disk. */
        if (r == 0)
            r = ec_syncfs(b->v[0]->path);
        for (size_t i = 0; r == 0 && i < b->n; i++)
            if (tmps[i] && ec_swap_in(tmps[i], b->v[i]->path) < 0) {
                free(tmps[i]);
                tmps[i] = NULL;
            }
        if (r == 0)
            r = ec_syncfs(b->v[0]->path);
        for (size_t i = 0; i < b->n; i++) {
            struct epochcache *c = b->v[i];
            if (r == 0 && (ec_file_matches(c) || tmps[i])) {
                ec_file_is_memory(c);
                c->durable = c->count;
            } else {
                failed += !ec_commit_one(c);
            }
            if (tmps)
                free(tmps[i]);
        }
        free(tmps);
    }
    for (size_t i = 0; i < b->n; i++)
        b->v[i]->in_batch = false;
    b->n = 0;
    return failed;
}

void epochcache_batch_deinit(struct epochcache_batch *b)
{
    if (!b)
        return;
    /* Uncommitted: as if every assignment had failed. */
    for (size_t i = 0; i < b->n; i++) {
        b->v[i]->count = b->v[i]->durable;
        b->v[i]->in_batch = false;
    }
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* Index of the first entry with an epoch above @epoch (count if none). */
static size_t ec_upper_bound(const struct epochcache *c, int32_t epoch)
{
    size_t lo = 0, hi = c->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->entries[mid].epoch <= epoch)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void epochcache_end_offset(const struct epochcache *c, int32_t requested_epoch,
                           int64_t log_end_offset, int32_t *ret_epoch, int64_t *ret_end_offset)
{
    if (requested_epoch == EPOCHCACHE_UNDEFINED || c->count == 0) {
        *ret_epoch = EPOCHCACHE_UNDEFINED;
        *ret_end_offset = EPOCHCACHE_UNDEFINED;
        return;
    }
    if (requested_epoch == epochcache_latest_epoch(c)) {
        *ret_epoch = requested_epoch;
        *ret_end_offset = log_end_offset;
        return;
    }
    size_t higher = ec_upper_bound(c, requested_epoch);
    if (higher == c->count) {
        /* Above every epoch this log knows: the caller is ahead of us. */
        *ret_epoch = EPOCHCACHE_UNDEFINED;
        *ret_end_offset = EPOCHCACHE_UNDEFINED;
        return;
    }
    /* Below the first epoch the requested epoch is echoed back: the log has no
     * older epoch to name, only the point where its own history starts. */
    *ret_epoch = higher == 0 ? requested_epoch : c->entries[higher - 1].epoch;
    *ret_end_offset = c->entries[higher].start_offset;
}

int epochcache_truncate_from_end(struct epochcache *c, int64_t offset)
{
    size_t keep = c->count;
    while (keep > 0 && c->entries[keep - 1].start_offset >= offset)
        keep--;
    if (keep == c->count)
        return 0;
    int r = ec_write(c, c->entries, keep);
    if (r < 0)
        return r;
    c->count = keep;
    c->durable = c->count;
    return 0;
}

int epochcache_truncate_from_start(struct epochcache *c, int64_t offset)
{
    if (c->count == 0)
        return 0;
    /* Entry i ends where entry i+1 starts; the latest never ends. */
    size_t from = 0;
    while (from + 1 < c->count && c->entries[from + 1].start_offset <= offset)
        from++;
    if (from == 0 && c->entries[0].start_offset >= offset)
        return 0;
    return ec_keep_range(c, from, offset);
}

int epochcache_clear(struct epochcache *c)
{
    int r = ec_write(c, NULL, 0);
    if (r < 0)
        return r;
    free(c->entries);
    c->entries = NULL;
    c->count = 0;
    c->durable = c->count;
    return 0;
}

int64_t epochcache_truncation_offset(const struct epochcache *c, int32_t leader_epoch,
                                     int64_t leader_end_offset, int64_t log_end_offset,
                                     bool *ret_final)
{
    int32_t fe;
    int64_t fend;
    bool final = true;
    int64_t target;
    epochcache_end_offset(c, leader_epoch, log_end_offset, &fe, &fend);
    if (fe == EPOCHCACHE_UNDEFINED || fend == EPOCHCACHE_UNDEFINED) {
        target = leader_end_offset < log_end_offset ? leader_end_offset : log_end_offset;
    } else if (fe != leader_epoch) {
        target = fend < log_end_offset ? fend : log_end_offset;
        final = false;
    } else {
        target = leader_end_offset < fend ? leader_end_offset : fend;
    }
    if (target < 0)
        target = 0;
    if (ret_final)
        *ret_final = final;
    return target;
}
