/* arena: a per-request bump allocator.
 *
 * Everything a request needs while it is decoded and handled (arrays of decoded
 * structs, copies of names, response scratch) comes from one arena and is freed
 * in one go when the response has been written: arena_reset() for the next
 * request on the same connection, arena_deinit() when the connection closes.
 *
 * Memory is taken from the heap in chunks. The arena has a cap on the total size
 * of its chunks, so a hostile request whose counts pass the "fits in the bytes
 * that remain" checks can still not make the process allocate without bound: the
 * allocation that would cross the cap fails, the request is refused.
 *
 * Not thread-safe; an arena belongs to one connection or request. */
#pragma once

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head; /* chunk being filled; older chunks follow */
    size_t chunk_size;        /* size of a regular chunk (bigger requests get their own) */
    size_t cap;               /* limit on the sum of all chunk sizes */
    size_t reserved;          /* sum of all chunk sizes now held */
    size_t used;              /* bytes handed out since init/reset, padding included */
};

#define ARENA_DEFAULT_CHUNK 4096u

/* Set up an empty arena; nothing is allocated until the first arena_alloc().
 * @chunk_size 0 means ARENA_DEFAULT_CHUNK; @cap 0 means no cap (SIZE_MAX). */
void arena_init(struct arena *a, size_t chunk_size, size_t cap);
/* Free every chunk. NULL-safe; the arena may be arena_init()ed again. */
void arena_deinit(struct arena *a);
/* Forget every allocation but keep the first chunk for reuse, so a connection
 * serving small requests allocates once. Pointers handed out become invalid. */
void arena_reset(struct arena *a);

/* @size bytes aligned to @align (a power of two, at most 64; 0 means the
 * alignment of max_align_t). The memory is not zeroed. Returns NULL when the
 * cap would be exceeded or malloc fails; size 0 returns a valid unique pointer. */
void *arena_alloc(struct arena *a, size_t size, size_t align);
/* As arena_alloc(), zeroed. */
void *arena_zalloc(struct arena *a, size_t size, size_t align);
/* An array of @n elements of @size bytes, zeroed, with the multiplication
 * checked. Errors: -EMSGSIZE over the cap or on overflow, -ENOMEM if malloc
 * failed. *ret_ptr is written only on success (NULL when @n is 0). */
int arena_alloc_array(struct arena *a, size_t n, size_t size, size_t align, void **ret_ptr);
/* NUL-terminated copies. NULL when out of memory or over the cap. */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);

/* Bytes handed out since init/reset, and bytes of heap held. */
size_t arena_used(const struct arena *a);
size_t arena_reserved(const struct arena *a);
