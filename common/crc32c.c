/* crc32c: CRC-32C in software (slicing-by-8) and with the SSE4.2 crc32
 * instruction, chosen once at run time.
 *
 * The hardware path runs three independent crc32 streams over three adjacent
 * blocks, because one stream is bound by the instruction's 3-cycle latency while
 * the CPU can retire one per cycle. The three partial CRCs are then joined with a
 * "shift" (the effect of appending a block of zero bytes), which is linear over
 * GF(2) and so is a lookup in four 256-entry tables per block size.
 *
 * Internally the CRC register is kept un-inverted; the public functions apply the
 * usual pre- and post-inversion so results chain.
 */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_X86 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t sw_table[8][256];
static bool hw_ok;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static inline uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void sw_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
        sw_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            sw_table[t][i] = (sw_table[t - 1][i] >> 8) ^ sw_table[0][sw_table[t - 1][i] & 0xff];
}

static uint32_t sw_raw(uint32_t r, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = r ^ load_le32(p);
        uint32_t hi = load_le32(p + 4);
        r = sw_table[7][lo & 0xff] ^ sw_table[6][(lo >> 8) & 0xff] ^
            sw_table[5][(lo >> 16) & 0xff] ^ sw_table[4][lo >> 24] ^ sw_table[3][hi & 0xff] ^
            sw_table[2][(hi >> 8) & 0xff] ^ sw_table[1][(hi >> 16) & 0xff] ^ sw_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        r = (r >> 8) ^ sw_table[0][(r ^ *p++) & 0xff];
    return r;
}

#ifdef CRC32C_HAVE_X86

/* Block sizes of the 3-way loop: a long one for bulk data and a short one so
 * that mid-sized buffers (a record batch) also get the parallel streams. */
#define HW_LONG  4096
#define HW_SHORT 256

static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];

__attribute__((target("sse4.2"))) static uint32_t hw_zeros(uint32_t r, size_t n)
{
    uint64_t c = r;
    for (size_t i = 0; i < n / 8; i++)
        c = _mm_crc32_u64(c, 0);
    return (uint32_t)c;
}

/* tbl[k][b] = register after feeding @n zero bytes to a register holding b << 8k. */
__attribute__((target("sse4.2"))) static void shift_init(uint32_t tbl[4][256], size_t n)
{
    uint32_t basis[32];
    for (int i = 0; i < 32; i++)
        basis[i] = hw_zeros(1u << i, n);
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                if (b & (1 << j))
                    v ^= basis[8 * k + j];
            tbl[k][b] = v;
        }
}

static inline uint32_t shift(const uint32_t tbl[4][256], uint32_t r)
{
    return tbl[0][r & 0xff] ^ tbl[1][(r >> 8) & 0xff] ^ tbl[2][(r >> 16) & 0xff] ^ tbl[3][r >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Three streams over [p, p+blk), [p+blk, p+2blk), [p+2blk, p+3blk), joined as
 * shift(shift(a) ^ b) ^ c. */
__attribute__((target("sse4.2"))) static inline uint32_t
hw_3way(uint32_t r, const uint8_t *p, size_t blk, const uint32_t tbl[4][256])
{
    uint64_t c0 = r, c1 = 0, c2 = 0;
    const uint8_t *end = p + blk;
    do {
        c0 = _mm_crc32_u64(c0, load64(p));
        c1 = _mm_crc32_u64(c1, load64(p + blk));
        c2 = _mm_crc32_u64(c2, load64(p + 2 * blk));
        p += 8;
    } while (p < end);
    uint32_t x = shift(tbl, (uint32_t)c0) ^ (uint32_t)c1;
    return shift(tbl, x) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t hw_raw(uint32_t r, const uint8_t *p, size_t n)
{
    /* Aligned 8-byte loads avoid split cache lines in the hot loops. */
    while (n > 0 && ((uintptr_t)p & 7)) {
        r = _mm_crc32_u8(r, *p++);
        n--;
    }
    while (n >= 3 * HW_LONG) {
        r = hw_3way(r, p, HW_LONG, shift_long);
        p += 3 * HW_LONG;
        n -= 3 * HW_LONG;
    }
    while (n >= 3 * HW_SHORT) {
        r = hw_3way(r, p, HW_SHORT, shift_short);
        p += 3 * HW_SHORT;
        n -= 3 * HW_SHORT;
    }
    uint64_t c = r;
    while (n >= 8) {
        c = _mm_crc32_u64(c, load64(p));
        p += 8;
        n -= 8;
    }
    r = (uint32_t)c;
    while (n--)
        r = _mm_crc32_u8(r, *p++);
    return r;
}

#endif /* CRC32C_HAVE_X86 */

static void crc32c_init(void)
{
    sw_init();
#ifdef CRC32C_HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        shift_init(shift_long, HW_LONG);
        shift_init(shift_short, HW_SHORT);
        hw_ok = true;
    }
#endif
}

static inline void ensure_init(void)
{
    pthread_once(&init_once, crc32c_init);
}

bool crc32c_hw_available(void)
{
    ensure_init();
    return hw_ok;
}

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    ensure_init();
    return ~sw_raw(~crc, data, len);
}

uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    ensure_init();
#ifdef CRC32C_HAVE_X86
    if (hw_ok)
        return ~hw_raw(~crc, data, len);
#endif
    /* Contract violation (no SSE4.2); answer correctly rather than fault. */
    return ~sw_raw(~crc, data, len);
}

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
    ensure_init();
#ifdef CRC32C_HAVE_X86
    if (hw_ok)
        return ~hw_raw(~crc, data, len);
#endif
    return ~sw_raw(~crc, data, len);
}
