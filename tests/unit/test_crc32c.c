/* Tests for common/crc32c: published CRC-32C check vectors (RFC 3720 B.4),
 * chaining, and agreement of the hardware and software paths on every length and
 * alignment the 3-way hardware loop treats differently. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

struct impl {
    const char *name;
    crc_fn fn;
};

/* Implementations available on this machine; the hardware one only with SSE4.2. */
static size_t impls(struct impl out[3])
{
    size_t n = 0;
    out[n++] = (struct impl){"sw", crc32c_sw};
    out[n++] = (struct impl){"update", crc32c_update};
    if (crc32c_hw_available())
        out[n++] = (struct impl){"hw", crc32c_hw};
    return n;
}

static void test_crc32c_known_vectors(void **state)
{
    (void)state;
    uint8_t zeros[32], ones[32], asc[32], desc[32];
    memset(zeros, 0, sizeof(zeros));
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++) {
        asc[i] = (uint8_t)i;
        desc[i] = (uint8_t)(31 - i);
    }
    struct impl im[3];
    size_t n = impls(im);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(im[i].fn(0, "123456789", 9), 0xE3069283u);
        assert_int_equal(im[i].fn(0, zeros, 32), 0x8A9136AAu);
        assert_int_equal(im[i].fn(0, ones, 32), 0x62A8AB43u);
        assert_int_equal(im[i].fn(0, asc, 32), 0x46DD794Eu);
        assert_int_equal(im[i].fn(0, desc, 32), 0x113FDB5Cu);
        assert_int_equal(im[i].fn(0, "", 0), 0u);
        assert_int_equal(im[i].fn(0x12345678u, NULL, 0), 0x12345678u);
    }
}

static void fill_random(uint8_t *p, size_t n, uint64_t *seed)
{
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(*seed >> 56);
    }
}

static void test_crc32c_chaining_equals_whole(void **state)
{
    (void)state;
    enum { N = 40000 };
    uint8_t *buf = malloc(N);
    assert_non_null(buf);
    uint64_t seed = 1;
    fill_random(buf, N, &seed);
    struct impl im[3];
    size_t n = impls(im);
    for (size_t i = 0; i < n; i++) {
        uint32_t whole = im[i].fn(0, buf, N);
        /* Split points that cross the hardware loop's block boundaries. */
        size_t splits[] = {0, 1, 7, 8, 255, 768, 769, 4096, 12288, 12289, 20000, N};
        for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
            size_t k = splits[s];
            uint32_t c = im[i].fn(0, buf, k);
            c = im[i].fn(c, buf + k, N - k);
            assert_int_equal(c, whole);
        }
        /* Many small pieces, as a record batch is checksummed field by field. */
        uint32_t c = 0;
        for (size_t off = 0; off < N;) {
            size_t len = 1 + (off * 7919) % 61;
            if (len > N - off)
                len = N - off;
            c = im[i].fn(c, buf + off, len);
            off += len;
        }
        assert_int_equal(c, whole);
    }
    assert_int_equal(crc32c_update(crc32c_update(0, "1234", 4), "56789", 5), 0xE3069283u);
    free(buf);
}

static void test_crc32c_hw_matches_sw_all_lengths_and_alignments(void **state)
{
    (void)state;
    if (!crc32c_hw_available()) {
        print_message("no SSE4.2: hardware path not tested\n");
        skip();
    }
    enum { MAXLEN = 4096 };
    uint8_t *buf = malloc(MAXLEN + 16);
    assert_non_null(buf);
    uint64_t seed = 42;
    fill_random(buf, MAXLEN + 16, &seed);
    for (size_t len = 0; len <= MAXLEN; len++) {
        for (size_t mis = 0; mis < 8; mis++) {
            /* Test every misalignment for short and block-edge lengths, a few for
             * the rest, to stay fast under sanitizers. */
            if (len > 64 && mis % 3 != 0 && len % 256 > 8)
                continue;
            uint32_t init = (uint32_t)(len * 2654435761u);
            uint32_t s = crc32c_sw(init, buf + mis, len);
            uint32_t h = crc32c_hw(init, buf + mis, len);
            if (s != h)
                fail_msg("len %zu misalign %zu: sw %08x hw %08x", len, mis, s, h);
        }
    }
    /* Lengths around the long 3-way block (3 * 4096) and beyond. */
    enum { BIG = 3 * 4096 * 3 + 777 };
    uint8_t *big = malloc(BIG + 8);
    assert_non_null(big);
    fill_random(big, BIG + 8, &seed);
    size_t lens[] = {12287, 12288, 12289, 12288 + 768, 24576 + 767, BIG};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (size_t mis = 0; mis < 8; mis += 3)
            assert_int_equal(crc32c_hw(~0u, big + mis, lens[i]),
                             crc32c_sw(~0u, big + mis, lens[i]));
    free(big);
    free(buf);
}

static void test_crc32c_single_bit_flip_changes_crc(void **state)
{
    (void)state;
    enum { N = 10000 };
    uint8_t *buf = calloc(1, N);
    assert_non_null(buf);
    uint32_t base = crc32c_update(0, buf, N);
    for (size_t bit = 0; bit < N * 8; bit += 997) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_not_equal(crc32c_update(0, buf, N), base);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(crc32c_update(0, buf, N), base);
    free(buf);
}

/* Not an assertion: prints throughput so regressions are visible in test logs. */
static void test_crc32c_throughput_report(void **state)
{
    (void)state;
    enum { MB = 64 };
    size_t n = (size_t)MB << 20;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    uint64_t seed = 7;
    fill_random(buf, n, &seed);
    struct impl im[3];
    size_t k = impls(im);
    uint32_t first = 0;
    for (size_t i = 0; i < k; i++) {
        int64_t t0 = clock_mono_ns();
        uint32_t c = im[i].fn(0, buf, n);
        int64_t dt = clock_mono_ns() - t0;
        if (dt <= 0)
            dt = 1;
        print_message("crc32c %-6s %6.0f MB/s over %d MiB\n", im[i].name,
                      (double)n / 1e6 / ((double)dt / 1e9), MB);
        if (i == 0)
            first = c;
        assert_int_equal(c, first);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_vectors),
        cmocka_unit_test(test_crc32c_chaining_equals_whole),
        cmocka_unit_test(test_crc32c_hw_matches_sw_all_lengths_and_alignments),
        cmocka_unit_test(test_crc32c_single_bit_flip_changes_crc),
        cmocka_unit_test(test_crc32c_throughput_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
