/* bench_codec: compression and decompression throughput of Weir's batch path
 * (common/codec.c through common/batch.c) against each library's own one-shot
 * API on the same bytes, in the same run.
 *
 *  - data: 1 KiB JSON-ish records (varied ids, names, amounts and text, so they
 *    compress like real payloads, about 3-6x) in uncompressed batches of at most
 *    16 KiB (15 records), built once with batch_builder before any timing;
 *  - Weir compress: batch_recompress(plain batch -> codec), as the leader does for
 *    a topic whose compression.type differs from the producer's;
 *    library: the one-shot compressor on the batch's records section
 *    (deflate with gzip framing and Z_FINISH, snappy_compress, LZ4F_compressFrame,
 *    ZSTD_compress) into a preallocated buffer;
 *  - Weir decompress: batch_check_records(compressed batch), as Produce validates
 *    a compressed batch (bounded decompression into a reused buffer plus a parse
 *    of every record); library: the one-shot decompressor (inflate with the output
 *    size known, snappy_uncompress, LZ4F_decompress, ZSTD_decompress) into a
 *    preallocated buffer of the known size.
 * MB/s are of uncompressed record bytes in both directions; each figure is the
 * median of the runs. See tests/bench/README.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "common/batch.h"
#include "common/buf.h"
#include "common/codec.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define BATCH_TARGET (16 * KiB)
#define RECORD_SIZE 1024
#define MAX_REPS 15

struct batchset {
    size_t n;
    uint8_t **data; /* whole batches */
    size_t *len;
    size_t record_bytes; /* sum of the records sections, uncompressed */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
    fprintf(stderr, "bench_codec: %s: %s\n", what, strerror(r < 0 ? -r : r));
    exit(1);
}

/* One JSON-ish record of exactly RECORD_SIZE bytes. */
static void make_record(char *out, uint32_t i, uint32_t *seed)
{
    static const char *const words[] = {"order",  "shipped", "pending", "refund", "customer",
                                        "priority", "express", "warehouse", "berlin", "lisbon",
                                        "paris",  "invoice", "payment", "card",    "weir"};
    uint32_t x = *seed;
    int n = snprintf(out, RECORD_SIZE,
                     "{\"id\":%u,\"user\":\"user-%05u\",\"amount\":%u.%02u,\"currency\":\"EUR\","
                     "\"status\":\"%s\",\"ts\":%u,\"note\":\"",
                     i, (x >> 3) % 100000u, (x >> 7) % 10000u, x % 100u, words[x % 15],
                     1700000000u + i);
    while (n < RECORD_SIZE - 3) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const char *w = words[x % 15];
        size_t wl = strlen(w);
        for (size_t k = 0; k <= wl && n < RECORD_SIZE - 3; k++)
            out[n++] = k < wl ? w[k] : ' ';
    }
    out[n++] = '"';
    out[n++] = '}';
    while (n < RECORD_SIZE)
        out[n++] = ' ';
    *seed = x;
}

static void build_plain(struct batchset *s, size_t total)
{
    size_t per = 15; /* 15 x ~1.03 KiB records: just under 16 KiB */
    size_t n = total / (per * RECORD_SIZE);
    if (n == 0)
        n = 1;
    s->n = n;
    s->data = calloc(n, sizeof(*s->data));
    s->len = calloc(n, sizeof(*s->len));
    if (!s->data || !s->len)
        die("calloc", ENOMEM);
    uint32_t seed = 2463534242u, id = 0;
    char rec[RECORD_SIZE];
    for (size_t b = 0; b < n; b++) {
        buf_writer w;
        struct batch_builder bb;
        buf_writer_init(&w);
        batch_builder_begin(&bb, &w, 1700000000000);
        for (size_t i = 0; i < per; i++) {
            make_record(rec, id++, &seed);
            int r = batch_builder_add(&bb, 1700000000000 + (int64_t)i, NULL, -1, rec, RECORD_SIZE,
                                      NULL, 0);
            if (r < 0)
                die("batch_builder_add", r);
        }
        int r = batch_builder_finish(&bb);
        if (r < 0)
            die("batch_builder_finish", r);
        if (w.len > BATCH_TARGET)
            die("batch larger than 16 KiB", EMSGSIZE);
        buf_writer_steal(&w, &s->data[b], &s->len[b]);
        s->record_bytes += s->len[b] - BATCH_HEADER_SIZE;
    }
}

static void set_free(struct batchset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->data[i]);
    free(s->data);
    free(s->len);
    memset(s, 0, sizeof(*s));
}

/* ---- the libraries' one-shot APIs ------------------------------------------- */

static size_t lib_bound(enum codec_type c, size_t n)
{
    switch (c) {
    case CODEC_GZIP:
        return compressBound((uLong)n) + 32;
    case CODEC_SNAPPY:
        return snappy_max_compressed_length(n);
    case CODEC_LZ4:
        return LZ4F_compressFrameBound(n, NULL);
    case CODEC_ZSTD:
        return ZSTD_compressBound(n);
    default:
        return n;
    }
}

static size_t lib_compress(enum codec_type c, const uint8_t *in, size_t n, uint8_t *out,
                           size_t cap)
{
    switch (c) {
    case CODEC_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            die("deflateInit2", ENOMEM);
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END)
            die("deflate", EIO);
        size_t len = cap - z.avail_out;
        deflateEnd(&z);
        return len;
    }
    case CODEC_SNAPPY: {
        size_t len = cap;
        if (snappy_compress((const char *)in, n, (char *)out, &len) != SNAPPY_OK)
            die("snappy_compress", EIO);
        return len;
    }
    case CODEC_LZ4: {
        size_t len = LZ4F_compressFrame(out, cap, in, n, NULL);
        if (LZ4F_isError(len))
            die("LZ4F_compressFrame", EIO);
        return len;
    }
    case CODEC_ZSTD: {
        size_t len = ZSTD_compress(out, cap, in, n, ZSTD_CLEVEL_DEFAULT);
        if (ZSTD_isError(len))
            die("ZSTD_compress", EIO);
        return len;
    }
    default:
        die("codec", EINVAL);
    }
    return 0;
}

static void lib_decompress(enum codec_type c, const uint8_t *in, size_t n, uint8_t *out,
                           size_t out_len)
{
    switch (c) {
    case CODEC_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
            die("inflateInit2", ENOMEM);
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)out_len;
        if (inflate(&z, Z_FINISH) != Z_STREAM_END)
            die("inflate", EIO);
        inflateEnd(&z);
        return;
    }
    case CODEC_SNAPPY: {
        size_t len = out_len;
        if (snappy_uncompress((const char *)in, n, (char *)out, &len) != SNAPPY_OK)
            die("snappy_uncompress", EIO);
        return;
    }
    case CODEC_LZ4: {
        LZ4F_dctx *d;
        if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
            die("LZ4F_createDecompressionContext", ENOMEM);
        size_t dst = out_len, src = n;
        size_t r = LZ4F_decompress(d, out, &dst, in, &src, NULL);
        if (LZ4F_isError(r) || r != 0 || dst != out_len)
            die("LZ4F_decompress", EIO);
        LZ4F_freeDecompressionContext(d);
        return;
    }
    case CODEC_ZSTD: {
        size_t r = ZSTD_decompress(out, out_len, in, n);
        if (ZSTD_isError(r) || r != out_len)
            die("ZSTD_decompress", EIO);
        return;
    }
    default:
        die("codec", EINVAL);
    }
}

/* ---- measurement ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct result {
    double weir_c, lib_c, weir_d, lib_d; /* MB/s */
    double ratio;                        /* uncompressed / compressed */
};

static void bench_codec(enum codec_type c, const struct batchset *plain, int reps,
                        struct result *ret)
{
    double wc[MAX_REPS], lc[MAX_REPS], wd[MAX_REPS], ld[MAX_REPS];
    double mb = (double)plain->record_bytes / 1e6;
    struct batchset z = {.n = plain->n};
    z.data = calloc(plain->n, sizeof(*z.data));
    z.len = calloc(plain->n, sizeof(*z.len));
    uint8_t *lib_out = malloc(lib_bound(c, BATCH_TARGET));
    uint8_t **lib_z = calloc(plain->n, sizeof(*lib_z));
    size_t *lib_zlen = calloc(plain->n, sizeof(*lib_zlen));
    uint8_t *plain_out = malloc(BATCH_TARGET);
    if (!z.data || !z.len || !lib_out || !lib_z || !lib_zlen || !plain_out)
        die("malloc", ENOMEM);
    size_t zbytes = 0;

    for (int rep = 0; rep < reps; rep++) {
        /* Weir: whole batches rewritten */
        buf_writer w;
        buf_writer_init(&w);
        double t0 = now_s();
        for (size_t i = 0; i < plain->n; i++) {
            buf_writer_reset(&w);
            int r = batch_recompress(plain->data[i], plain->len[i], c, 64 * MiB, &w);
            if (r < 0)
                die("batch_recompress", r);
            if (rep == 0) {
                z.data[i] = malloc(w.len);
                memcpy(z.data[i], w.data, w.len);
                z.len[i] = w.len;
                zbytes += w.len - BATCH_HEADER_SIZE;
            }
        }
        wc[rep] = mb / (now_s() - t0);
        buf_writer_deinit(&w);

        /* library one-shot on the same records sections */
        t0 = now_s();
        for (size_t i = 0; i < plain->n; i++) {
            size_t n = plain->len[i] - BATCH_HEADER_SIZE;
            size_t len = lib_compress(c, plain->data[i] + BATCH_HEADER_SIZE, n, lib_out,
                                      lib_bound(c, BATCH_TARGET));
            if (rep == 0) {
                lib_z[i] = malloc(len);
                memcpy(lib_z[i], lib_out, len);
                lib_zlen[i] = len;
            }
        }
        lc[rep] = mb / (now_s() - t0);

        /* Weir: Produce's validation of compressed batches */
        buf_writer scratch;
        buf_writer_init(&scratch);
        t0 = now_s();
        for (size_t i = 0; i < z.n; i++) {
            int r = batch_check_records(z.data[i], z.len[i], 64 * MiB, &scratch);
            if (r < 0)
                die("batch_check_records", r);
        }
        wd[rep] = mb / (now_s() - t0);
        buf_writer_deinit(&scratch);

        t0 = now_s();
        for (size_t i = 0; i < plain->n; i++)
            lib_decompress(c, lib_z[i], lib_zlen[i], plain_out,
                           plain->len[i] - BATCH_HEADER_SIZE);
        ld[rep] = mb / (now_s() - t0);
    }
    /* the library's output must be the same bytes Weir read */
    for (size_t i = 0; i < plain->n; i++) {
        lib_decompress(c, lib_z[i], lib_zlen[i], plain_out, plain->len[i] - BATCH_HEADER_SIZE);
        if (memcmp(plain_out, plain->data[i] + BATCH_HEADER_SIZE,
                   plain->len[i] - BATCH_HEADER_SIZE) != 0)
            die("library round trip differs", EIO);
    }
    ret->weir_c = median(wc, reps);
    ret->lib_c = median(lc, reps);
    ret->weir_d = median(wd, reps);
    ret->lib_d = median(ld, reps);
    ret->ratio = (double)plain->record_bytes / (double)zbytes;
    for (size_t i = 0; i < plain->n; i++) {
        free(lib_z[i]);
    }
    free(lib_z);
    free(lib_zlen);
    free(lib_out);
    free(plain_out);
    set_free(&z);
}

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
        return 0;
    switch (*end) {
    case 'k':
    case 'K':
        v *= 1024;
        break;
    case 'm':
    case 'M':
        v *= 1024 * 1024;
        break;
    case 'g':
    case 'G':
        v *= 1024.0 * 1024 * 1024;
        break;
    case '\0':
        break;
    default:
        return 0;
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    size_t total = 64 * MiB;
    int reps = 3;
    int opt;
    while ((opt = getopt(argc, argv, "b:r:h")) != -1) {
        switch (opt) {
        case 'b':
            total = parse_size(optarg);
            if (total < MiB || total > ((size_t)4 << 30)) {
                fprintf(stderr, "bench_codec: -b wants 1M..4G\n");
                return 2;
            }
            break;
        case 'r':
            reps = atoi(optarg);
            if (reps < 1 || reps > MAX_REPS) {
                fprintf(stderr, "bench_codec: -r wants 1..%d\n", MAX_REPS);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: %s [-b SIZE of records per codec] [-r RUNS]\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    struct batchset plain = {0};
    build_plain(&plain, total);
    printf("bench_codec: %zu batches of %zu B (15 x 1 KiB JSON-ish records), %.1f MB of "
           "records per codec, median of %d runs; MB/s of uncompressed bytes\n",
           plain.n, plain.len[0], (double)plain.record_bytes / 1e6, reps);
    printf("%-7s %6s | %10s %10s %6s | %10s %10s %6s\n", "codec", "ratio", "weir comp",
           "lib comp", "w/l", "weir dec", "lib dec", "w/l");
    static const enum codec_type codecs[] = {CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD};
    for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
        struct result res;
        bench_codec(codecs[i], &plain, reps, &res);
        printf("%-7s %5.2fx | %10.1f %10.1f %6.2f | %10.1f %10.1f %6.2f\n", codec_name(codecs[i]),
               res.ratio, res.weir_c, res.lib_c, res.weir_c / res.lib_c, res.weir_d, res.lib_d,
               res.weir_d / res.lib_d);
        fflush(stdout);
    }
    set_free(&plain);
    return 0;
}
