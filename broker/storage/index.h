/* index: the on-disk entry formats of a segment's sparse offset index (.index) and
 * time index (.timeindex), and searches over them that read only the entries they
 * probe (pread; no mmap, no loading whole files).
 *
 * Both are Kafka's formats, big-endian:
 *   .index      int32 offset - segment base, int32 file position of that batch
 *   .timeindex  int64 max timestamp so far, int32 offset - segment base of the batch
 *               where the segment's max timestamp first reached that value
 * Keys never decrease along a file (offsets, positions, timestamps). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define INDEX_ENTRY_SIZE     8
#define TIMEINDEX_ENTRY_SIZE 12

struct index_entry {
    int32_t rel; /* offset - segment base */
    int32_t pos; /* file position of the batch */
};

struct timeindex_entry {
    int64_t ts;
    int32_t rel;
};

void index_entry_encode(void *p, int32_t rel, int32_t pos);
void index_entry_decode(const void *p, struct index_entry *ret);
void timeindex_entry_encode(void *p, int64_t ts, int32_t rel);
void timeindex_entry_decode(const void *p, struct timeindex_entry *ret);

/* Which field of an entry a search compares. */
enum index_key {
    INDEX_KEY_REL,     /* .index offset */
    INDEX_KEY_POS,     /* .index position */
    TIMEINDEX_KEY_TS,  /* .timeindex timestamp */
    TIMEINDEX_KEY_REL, /* .timeindex offset */
};

/* An index whose first @disk_n entries are in file @fd and whose next @mem_n
 * entries are in @mem (an active segment's entries not written yet). @fd may be -1
 * when @disk_n is 0. */
struct index_view {
    int fd;
    int64_t disk_n;
    const uint8_t *mem;
    int64_t mem_n;
    enum index_key key;
};

static inline int64_t index_view_count(const struct index_view *v)
{
    return v->disk_n + v->mem_n;
}

/* Copy entry @i (< count) into @ret (INDEX_ENTRY_SIZE or TIMEINDEX_ENTRY_SIZE
 * bytes). -ENODATA if the file is shorter than @disk_n says. */
int index_view_read(const struct index_view *v, int64_t i, void *ret);

/* The number of leading entries whose key is < @target, or <= @target when
 * @inclusive: a binary search that needs the keys not to decrease. The floor entry
 * (greatest key <= target) is therefore at result - 1 with @inclusive. About
 * log2(n / 512) + 1 preads. */
int index_view_rank(const struct index_view *v, int64_t target, int inclusive, int64_t *ret);
