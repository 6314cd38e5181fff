/* bench_compaction: how fast the log cleaner compacts, against how fast the same
 * bytes read sequentially, in the same run; and the memory the clean costs.
 *
 *   bench_compaction [--mb N] [--keys K] [--value-bytes B] [--batch R]
 *                    [--codec none|gzip|snappy|lz4|zstd] [--dedupe BYTES] [--dir D]
 *
 * Writes N MiB of batches of R records (key "key-<i mod K>", B-byte values) into a
 * fresh log with 8 MiB segments, rolls, then: (1) reads every segment file once
 * with 1 MiB read(2)s (the raw sequential read; the files are in the page cache
 * from writing them, and so they are for the cleaner), (2) cleans the log with
 * cleaner_clean_sync() (map pass, rewrite, fsyncs, swap). Prints MB/s for both,
 * their ratio, the bytes and records kept, and the peak RSS growth during the
 * clean (VmHWM after resetting it through /proc/self/clear_refs, minus VmRSS
 * before). */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/storage/cleaner.h"
#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/fsutil.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A field of /proc/self/status in KiB, or -1. */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_compaction: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

int main(int argc, char **argv)
{
    int64_t mb = 64, keys = 100000, dedupe = 128LL << 20;
    int vbytes = 100, per_batch = 100;
    const char *codec_name_arg = "none", *dir_arg = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mb"))
            mb = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--keys"))
            keys = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--value-bytes"))
            vbytes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            per_batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--codec"))
            codec_name_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--dedupe"))
            dedupe = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir_arg = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    enum codec_type codec;
    if (codec_from_name(codec_name_arg, &codec) < 0) {
        fprintf(stderr, "unknown codec %s\n", codec_name_arg);
        return 2;
    }
    char tmpl[] = "/tmp/bench-compaction.XXXXXX";
    char dir[4096];
    if (dir_arg)
        snprintf(dir, sizeof(dir), "%s", dir_arg);
    else if (!mkdtemp(tmpl))
        die("mkdtemp", errno);
    else
        snprintf(dir, sizeof(dir), "%s/log-0", tmpl);

    struct fdcache *fc;
    struct plog *log;
    struct plog_config cfg;
    plog_config_defaults(&cfg);
    cfg.segment_bytes = 8 << 20;
    cfg.cleanup_compact = true;
    cfg.cleanup_delete = false;
    int rc = fdcache_new(256, &fc);
    if (rc == 0)
        rc = plog_open(dir, &cfg, fc, 0, -1, 1700000000000LL, &log, NULL);
    if (rc < 0)
        die("open", rc);

    /* Write. */
    char *val = malloc((size_t)vbytes);
    memset(val, 'v', (size_t)vbytes);
    buf_writer w, z;
    buf_writer_init(&w);
    buf_writer_init(&z);
    int64_t written = 0, rec = 0, ts = 1700000000000LL;
    while (written < mb << 20) {
        struct batch_builder b;
        buf_writer_reset(&w);
        batch_builder_begin(&b, &w, ts);
        for (int i = 0; i < per_batch; i++, rec++) {
            char k[32];
            int kl = snprintf(k, sizeof(k), "key-%" PRId64, rec % keys);
            batch_builder_add(&b, ts, k, kl, val, vbytes, NULL, 0);
        }
        batch_builder_finish(&b);
        uint8_t *data = w.data;
        size_t len = w.len;
        if (codec != CODEC_NONE) {
            buf_writer_reset(&z);
            if ((rc = batch_recompress(w.data, w.len, codec, 1 << 30, &z)) < 0)
                die("compress", rc);
            data = z.data;
            len = z.len;
        }
        if ((rc = plog_append(log, data, len, PLOG_APPEND_ASSIGN_OFFSETS, 0, ts, NULL)) < 0)
            die("append", rc);
        written += (int64_t)len;
    }
    /* One batch in a fresh active segment: everything else is cleanable. */
    plog_flush_sync(log);
    {
        /* Appended "eight days later": past segment.ms, so the segment rolls. */
        struct batch_builder b;
        buf_writer_reset(&w);
        batch_builder_begin(&b, &w, ts);
        batch_builder_add(&b, ts, "tail", 4, "x", 1, NULL, 0);
        batch_builder_finish(&b);
        int64_t later = ts + 8LL * 24 * 3600 * 1000;
        if ((rc = plog_append(log, w.data, w.len, PLOG_APPEND_ASSIGN_OFFSETS, 0, later, NULL)) < 0)
            die("append", rc);
    }
    plog_set_high_watermark(log, plog_log_end_offset(log));
    int64_t log_bytes = plog_size_bytes(log);

    /* Raw sequential read of the same files. */
    char pattern[4200];
    snprintf(pattern, sizeof(pattern), "%s/*.log", dir);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        die("glob", ENOENT);
    char *rbuf = malloc(1 << 20);
    double t0 = now_s();
    int64_t raw = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int fd = open(g.gl_pathv[i], O_RDONLY);
        ssize_t n;
        while (fd >= 0 && (n = read(fd, rbuf, 1 << 20)) > 0)
            raw += n;
        if (fd >= 0)
            close(fd);
    }
    double raw_s = now_s() - t0;
    globfree(&g);
    free(rbuf);

    /* Clean. */
    long rss0 = status_kib("VmRSS");
    int cr = open("/proc/self/clear_refs", O_WRONLY);
    bool hwm_reset = cr >= 0 && write(cr, "5", 1) == 1;
    if (cr >= 0)
        close(cr);
    struct cleaner_stats st;
    t0 = now_s();
    if ((rc = cleaner_clean_sync(log, 0, ts, dedupe, &st)) < 0)
        die("clean", rc);
    double clean_s = now_s() - t0;
    long hwm = status_kib("VmHWM");

    double raw_mbs = (double)raw / (1 << 20) / raw_s;
    double clean_mbs = (double)st.bytes_read / (1 << 20) / clean_s;
    printf("log: %.1f MiB in %" PRId64 " records, %" PRId64 " keys, %d-byte values, %d per batch, "
           "codec %s\n",
           (double)log_bytes / (1 << 20), rec, keys, vbytes, per_batch, codec_name(codec));
    printf("raw sequential read: %.1f MiB in %.3f s = %.0f MiB/s\n", (double)raw / (1 << 20), raw_s,
           raw_mbs);
    printf("clean: %.1f MiB in %.3f s = %.0f MiB/s (%.3f of raw read), %.2f M records/s\n",
           (double)st.bytes_read / (1 << 20), clean_s, clean_mbs, clean_mbs / raw_mbs,
           (double)st.records_read / clean_s / 1e6);
    printf("kept: %" PRId64 " of %" PRId64 " records, %.2f MiB written, %" PRId64
           " keys in the map%s; segments %d -> %d\n",
           st.records_kept, st.records_read, (double)st.bytes_written / (1 << 20), st.map_keys,
           st.map_full ? " (map full: a prefix cleaned)" : "", st.segments_before,
           st.segments_after);
    if (hwm_reset && rss0 > 0 && hwm > 0)
        printf("cleaner memory: peak RSS %ld KiB during the clean, %ld KiB above before "
               "(dedupe buffer %" PRId64 " KiB, touched as keys land)\n",
               hwm, hwm - rss0, dedupe >> 10);
    else
        printf("cleaner memory: VmHWM %ld KiB (could not reset it)\n", hwm);

    plog_close(log);
    fdcache_free(fc);
    buf_writer_deinit(&w);
    buf_writer_deinit(&z);
    free(val);
    if (!dir_arg)
        fsutil_remove_tree(tmpl);
    return 0;
}
