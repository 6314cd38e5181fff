/* fuzz_recovery: plog_open() on an arbitrary segment image, then everything read
 * back. Input layout:
 *   byte 0      flags: bit 0 write an .index image, bit 1 a .timeindex image,
 *               bit 2 use byte 3 as the recovery point (else 0)
 *   byte 1      .index image length in 8-byte entries
 *   byte 2      .timeindex image length in 12-byte entries
 *   byte 3      recovery point (with bit 2)
 *   then the index images (as long as the input allows), then the .log image.
 * A recovery point promises that everything below it was fsynced, i.e. is a valid
 * prefix of batches. The target keeps that promise: it uses byte 3 only when the
 * log image really starts with valid, increasing batches up to it, else 0.
 * Properties checked for every input:
 *  - plog_open succeeds (the directory is valid; only contents are garbage);
 *  - reads from the start to the end return whole batches that pass batch_validate
 *    (CRC), with strictly increasing offsets, the first holding the offset asked
 *    for, and cover everything up to the log end;
 *  - offset lookups by time return an offset inside the log;
 *  - an append continues at the log end and reads back; after a reopen with the
 *    recovery point at the end nothing is cut and the same end offset comes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/fsutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_recovery: check failed: %s (line %d)\n", #cond, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct fdcache *fc;
static char root[4096];

static void write_file(const char *dir, const char *name, const uint8_t *d, size_t n)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK(fsutil_pwrite_all(fd, d, n, 0) == 0);
    close(fd);
}

static void cleanup(void)
{
    fsutil_remove_tree(root);
}

static void init(void)
{
    if (fc)
        return;
    CHECK(fdcache_new(16, &fc) == 0);
    const char *base = getenv("WEIR_FUZZ_TMPDIR");
    struct stat st;
    if (!base)
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof(root), "%s/fuzz_recovery.XXXXXX", base);
    CHECK(mkdtemp(root) != NULL);
    atexit(cleanup);
}

/* Whether @log starts with valid batches holding the offsets from 0 up to @rp
 * contiguously (what appends that were fsynced up to the recovery point leave). */
static bool valid_prefix(const uint8_t *log, size_t len, int64_t rp)
{
    size_t pos = 0;
    int64_t next = 0;
    while (next < rp) {
        struct batch_header h;
        if (batch_validate(log + pos, len - pos, 0, &h) < 0 || h.base_offset != next)
            return false;
        next = batch_last_offset(&h) + 1;
        pos += (size_t)batch_total_size(&h);
    }
    return true;
}

/* Read everything from the start to the end. */
static void read_back(struct plog *log)
{
    int64_t off = plog_log_start_offset(log), prev_last = -1;
    int32_t max_bytes = 700;
    while (off < plog_log_end_offset(log)) {
        struct plog_read_result rr;
        CHECK(plog_read(log, off, INT64_MAX, max_bytes, true, &rr) == 0);
        if (rr.length == 0) {
            /* only possible when nothing is left in the log at or past off */
            CHECK(rr.file == NULL);
            return;
        }
        uint8_t *b = malloc((size_t)rr.length);
        CHECK(b);
        CHECK(fsutil_pread_all(seg_file_fd(rr.file), b, (size_t)rr.length, rr.position) == 0);
        size_t pos = 0;
        bool first = true;
        while (pos < (size_t)rr.length) {
            struct batch_header h;
            CHECK(batch_parse_header(b + pos, (size_t)rr.length - pos, &h) == 0);
            CHECK(h.magic == BATCH_MAGIC_V2 && h.length >= 49);
            CHECK(batch_total_size(&h) <= (int64_t)((size_t)rr.length - pos));
            CHECK(batch_validate(b + pos, (size_t)rr.length - pos, 0, NULL) == 0);
            CHECK(h.base_offset > prev_last);
            if (first) {
                CHECK(h.base_offset == rr.first_offset);
                CHECK(batch_last_offset(&h) >= off);
            }
            first = false;
            prev_last = batch_last_offset(&h);
            pos += (size_t)batch_total_size(&h);
        }
        CHECK(rr.next_offset == prev_last + 1);
        CHECK(rr.next_offset > off);
        free(b);
        seg_file_unref(rr.file);
        off = rr.next_offset;
        max_bytes = max_bytes * 3 / 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size < 4)
        return 0;
    uint8_t flags = data[0];
    size_t idx_len = (flags & 1) ? (size_t)data[1] * 8 : 0;
    size_t tidx_len = (flags & 2) ? (size_t)data[2] * 12 : 0;
    int64_t rp = (flags & 4) ? data[3] : 0;
    const uint8_t *p = data + 4, *end = data + size;
    if (idx_len > (size_t)(end - p))
        idx_len = (size_t)(end - p);
    const uint8_t *idx = p;
    p += idx_len;
    if (tidx_len > (size_t)(end - p))
        tidx_len = (size_t)(end - p);
    const uint8_t *tidx = p;
    p += tidx_len;

    if (rp > 0 && !valid_prefix(p, (size_t)(end - p), rp))
        rp = 0;

    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/log", root);
    CHECK(fsutil_remove_tree(dir) == 0);
    CHECK(fsutil_mkdirs(dir, 0755) == 0);
    write_file(dir, "00000000000000000000.log", p, (size_t)(end - p));
    if (flags & 1)
        write_file(dir, "00000000000000000000.index", idx, idx_len);
    if (flags & 2)
        write_file(dir, "00000000000000000000.timeindex", tidx, tidx_len);

    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.index_interval_bytes = 64;
    struct plog *log;
    struct plog_recovery_info info;
    CHECK(plog_open(dir, &cfg, fc, rp, -1, 1000, &log, &info) == 0);
    int64_t leo = plog_log_end_offset(log);
    CHECK(leo >= 0 && plog_log_start_offset(log) <= leo);
    CHECK(plog_recovery_point(log) <= leo);
    CHECK(info.truncated_bytes >= 0 && info.truncated_bytes <= (int64_t)size);
    CHECK(plog_size_bytes(log) <= (int64_t)(end - p));
    read_back(log);

    int64_t o, ts;
    int r = plog_offset_for_timestamp(log, 1000, &o, &ts);
    CHECK(r == 0 || r == -ENOENT);
    if (r == 0)
        CHECK(o >= plog_log_start_offset(log) && o < leo);

    /* The recovered log takes appends at its end. */
    buf_writer w;
    struct batch_builder b;
    buf_writer_init(&w);
    CHECK(batch_builder_begin(&b, &w, 2000) == 0);
    CHECK(batch_builder_add(&b, 2000, "k", 1, "v", 1, NULL, 0) == 0);
    CHECK(batch_builder_finish(&b) == 0);
    struct plog_append_info ai;
    r = plog_append(log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 1, 2000, &ai);
    buf_writer_deinit(&w);
    if (r == 0) {
        CHECK(ai.first_offset == leo);
        struct plog_read_result rr;
        CHECK(plog_read(log, leo, INT64_MAX, 1, true, &rr) == 0);
        CHECK(rr.first_offset == leo && rr.next_offset == leo + 1);
        seg_file_unref(rr.file);
        leo++;
    } else {
        /* only a relative offset overflow can refuse it */
        CHECK(r == -EINVAL);
    }
    plog_close(log);

    CHECK(plog_open(dir, &cfg, fc, leo, -1, 1000, &log, &info) == 0);
    CHECK(plog_log_end_offset(log) == leo);
    CHECK(info.truncated_at == -1);
    plog_close(log);
    CHECK(fdcache_open_count(fc) == 0);
    return 0;
}
