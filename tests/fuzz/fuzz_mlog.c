/* fuzz_mlog: metadata-log recovery (coordinator/mlog) on arbitrary directory
 * contents. The input becomes one or two segment files and optionally a snapshot
 * file in a fresh directory:
 *
 *   byte 0      flags: bit 0 a snapshot image is present, bit 1 small limits
 *               (records <= 256 bytes, segments roll at 512), bit 2 split the log
 *               image into two segment files
 *   bytes 1-2   snapshot image length (big-endian, clamped)
 *   bytes 3-4   where the log image splits (bit 2)
 *   rest        snapshot image, then the log image
 *
 * Files are named after the offset in their own header, so well-formed inputs
 * recover as written. Properties checked for every input:
 *  - mlog_open() returns 0 or -EBADMSG; on -EBADMSG not one file changed;
 *  - after recovery, every segment from the one holding the start offset on is a
 *    valid header plus whole records with valid CRCs and dense offsets, and the
 *    last one ends at the next offset: the torn or corrupt part is gone;
 *  - mlog_replay() yields exactly those records from the start offset on, dense;
 *  - one more append is durable across a reopen that finds the log clean. */
#include <errno.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "coordinator/mlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* The on-disk format, restated independently of mlog.c. */
#define SEG_MAGIC 0x574d4c47u
#define SEG_HDR   24
#define REC_HDR   16
#define MAX_FILES 8
#define MAX_RECS  20000

static char base_dir[256];
static char work_dir[300];

static void cleanup(void)
{
    if (base_dir[0])
        fsutil_remove_tree(base_dir);
}

static void init_dirs(void)
{
    if (base_dir[0])
        return;
    const char *root = getenv("WEIR_FUZZ_TMPDIR");
    if (!root || !*root)
        root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(base_dir, sizeof(base_dir), "%s/fuzz_mlog.XXXXXX", root);
    CHECK(mkdtemp(base_dir) != NULL);
    snprintf(work_dir, sizeof(work_dir), "%s/log", base_dir);
    atexit(cleanup);
}

static int64_t name_offset(const uint8_t *img, size_t len)
{
    if (len < 16)
        return 0;
    uint64_t v = buf_load_be64(img + 8);
    return v > (uint64_t)INT64_MAX ? 0 : (int64_t)v;
}

static void write_file(const char *prefix, int64_t n, const char *suffix, const uint8_t *p,
                       size_t len)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s%020lld%s", work_dir, prefix, (long long)n, suffix);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(len == 0 || fwrite(p, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

struct file_info {
    char name[128];
    int64_t size;
};

/* Names and sizes of the directory's files, sorted by name. */
static size_t list_files(struct file_info *out, size_t max)
{
    DIR *d = opendir(work_dir);
    CHECK(d != NULL);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t nl = strlen(de->d_name);
        CHECK(n < max && nl < sizeof(out[n].name));
        memcpy(out[n].name, de->d_name, nl + 1);
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", work_dir, out[n].name);
        struct stat st;
        CHECK(stat(path, &st) == 0);
        out[n].size = st.st_size;
        n++;
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(out[j - 1].name, out[j].name) > 0; j--) {
            struct file_info t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    }
    return n;
}

struct rec {
    int64_t offset;
    uint32_t len;
    uint32_t crc;
};

struct recs {
    struct rec r[MAX_RECS];
    size_t n;
};

static int on_replay(int64_t offset, const uint8_t *p, size_t len, void *ud)
{
    struct recs *rs = ud;
    CHECK(rs->n < MAX_RECS);
    if (rs->n > 0)
        CHECK(offset == rs->r[rs->n - 1].offset + 1);
    rs->r[rs->n++] = (struct rec){offset, (uint32_t)len, crc32c_update(0, p, len)};
    return 0;
}

/* Parse one segment file strictly: it must be entirely valid. Records at or after
 * @start go to @out. Returns the offset after its last record. */
static int64_t check_segment(const char *name, int64_t base, uint32_t max_rec, int64_t start,
                             struct recs *out)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", work_dir, name);
    uint8_t *p;
    size_t len;
    CHECK(fsutil_read_file(path, 1 << 24, &p, &len) == 0);
    CHECK(len >= SEG_HDR);
    CHECK(buf_load_be32(p) == SEG_MAGIC && buf_load_be32(p + 4) == 1);
    CHECK(buf_load_be64(p + 8) == (uint64_t)base && buf_load_be32(p + 16) == 0);
    CHECK(buf_load_be32(p + 20) == crc32c_update(0, p, 20));
    size_t pos = SEG_HDR;
    int64_t expected = base;
    while (pos < len) {
        CHECK(len - pos >= REC_HDR);
        uint32_t rlen = buf_load_be32(p + pos);
        CHECK(rlen <= max_rec && rlen <= len - pos - REC_HDR);
        CHECK((int64_t)buf_load_be64(p + pos + 8) == expected);
        uint32_t crc = crc32c_update(0, p + pos, 4);
        crc = crc32c_update(crc, p + pos + 8, 8);
        crc = crc32c_update(crc, p + pos + REC_HDR, rlen);
        CHECK(crc == buf_load_be32(p + pos + 4));
        if (expected >= start) {
            CHECK(out->n < MAX_RECS);
            out->r[out->n++] =
                (struct rec){expected, rlen, crc32c_update(0, p + pos + REC_HDR, rlen)};
        }
        expected++;
        pos += REC_HDR + rlen;
    }
    free(p);
    return expected;
}

/* The recovered directory: segments from the one holding @start on chain densely
 * to @next; their records from @start on are @replayed. */
static void check_recovered(int64_t start, int64_t next, uint32_t max_rec,
                            const struct recs *replayed)
{
    struct file_info files[MAX_FILES * 2];
    size_t n = list_files(files, MAX_FILES * 2);
    int64_t bases[MAX_FILES * 2];
    const char *names[MAX_FILES * 2];
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned long long v;
        char tail[8];
        if (sscanf(files[i].name, "metadata-%20llu%7s", &v, tail) == 2 &&
            strcmp(tail, ".log") == 0 && strlen(files[i].name) == 33) {
            bases[ns] = (int64_t)v;
            names[ns++] = files[i].name;
        }
    }
    CHECK(ns > 0);
    size_t k = 0;
    while (k + 1 < ns && bases[k + 1] <= start)
        k++;
    static struct recs found;
    found.n = 0;
    int64_t expected = bases[k];
    for (size_t i = k; i < ns; i++) {
        CHECK(bases[i] == expected);
        expected = check_segment(names[i], bases[i], max_rec, start, &found);
    }
    CHECK(expected == next);
    CHECK(found.n == replayed->n);
    for (size_t i = 0; i < found.n; i++) {
        CHECK(found.r[i].offset == replayed->r[i].offset);
        CHECK(found.r[i].len == replayed->r[i].len);
        CHECK(found.r[i].crc == replayed->r[i].crc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5 || size > 256 * 1024)
        return 0;
    init_dirs();
    fsutil_remove_tree(work_dir);
    CHECK(fsutil_mkdirs(work_dir, 0755) == 0);

    uint8_t flags = data[0];
    size_t snap_len = buf_load_be16(data + 1);
    size_t split = buf_load_be16(data + 3);
    const uint8_t *rest = data + 5;
    size_t rest_len = size - 5;
    if (!(flags & 1))
        snap_len = 0;
    if (snap_len > rest_len)
        snap_len = rest_len;
    const uint8_t *snap = rest;
    const uint8_t *img = rest + snap_len;
    size_t img_len = rest_len - snap_len;

    if (flags & 1)
        write_file("snapshot-", name_offset(snap, snap_len), ".snap", snap, snap_len);
    if ((flags & 4) && split < img_len) {
        write_file("metadata-", name_offset(img, split), ".log", img, split);
        int64_t second = name_offset(img + split, img_len - split);
        if (second != name_offset(img, split))
            write_file("metadata-", second, ".log", img + split, img_len - split);
    } else if (img_len > 0 || !(flags & 1)) {
        write_file("metadata-", name_offset(img, img_len), ".log", img, img_len);
    }

    struct mlog_options o;
    mlog_options_defaults(&o);
    if (flags & 2) {
        o.max_record_bytes = 256;
        o.max_pending_bytes = 4096;
        o.segment_bytes = 512;
        o.max_snapshot_bytes = 4096;
    }

    struct file_info before[MAX_FILES], after[MAX_FILES];
    size_t nbefore = list_files(before, MAX_FILES);

    struct mlog *log = NULL;
    struct mlog_recovery_info info;
    int r = mlog_open(work_dir, &o, &log, &info);
    CHECK(r == 0 || r == -EBADMSG);
    if (r < 0) {
        /* Refusing to start must leave everything as it was. */
        size_t nafter = list_files(after, MAX_FILES);
        CHECK(nafter == nbefore);
        for (size_t i = 0; i < nafter; i++)
            CHECK(strcmp(after[i].name, before[i].name) == 0 && after[i].size == before[i].size);
        return 0;
    }

    int64_t next = mlog_next_offset(log);
    CHECK(next == info.next_offset && next == mlog_durable_offset(log));
    const uint8_t *sd;
    size_t sl;
    int64_t so;
    int64_t start = 0;
    if (mlog_recovered_snapshot(log, &sd, &sl, &so) == 0) {
        CHECK(so == info.snapshot_offset && so <= next);
        start = so;
    } else {
        CHECK(info.snapshot_offset == -1);
    }
    static struct recs replayed;
    replayed.n = 0;
    CHECK(mlog_replay(log, on_replay, &replayed) == 0);
    CHECK((int64_t)replayed.n == info.replay_records);
    CHECK(replayed.n == 0 || replayed.r[0].offset == start);
    CHECK(start + (int64_t)replayed.n == next);
    check_recovered(start, next, o.max_record_bytes, &replayed);

    /* One more record, then a reopen must find a clean log that holds it. */
    int64_t off = -1;
    r = mlog_append_sync(log, "fuzz", 4, &off);
    mlog_close(log);
    if (next == INT64_MAX) {
        CHECK(r == -EOVERFLOW);
        return 0;
    }
    CHECK(r == 0 && off == next);
    r = mlog_open(work_dir, &o, &log, &info);
    CHECK(r == 0);
    CHECK(info.damage == MLOG_DAMAGE_NONE && info.next_offset == next + 1);
    replayed.n = 0;
    CHECK(mlog_replay(log, on_replay, &replayed) == 0);
    CHECK(replayed.n > 0);
    struct rec *last = &replayed.r[replayed.n - 1];
    CHECK(last->offset == next && last->len == 4 && last->crc == crc32c_update(0, "fuzz", 4));
    mlog_close(log);
    return 0;
}
