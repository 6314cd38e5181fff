/* arena: chunked bump allocation with a cap on the heap it may hold.
 *
 * Small allocations are carved from the head chunk; when it is full a new
 * regular chunk becomes the head. An allocation larger than a quarter of a
 * regular chunk gets a chunk of its own, linked behind the head, so the space
 * left in the head is not thrown away. Near the cap a chunk is trimmed to what
 * remains under the cap rather than refused outright.
 */
#include "common/arena.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* bytes in data[] */
    size_t pos;  /* bytes of data[] handed out */
    alignas(max_align_t) unsigned char data[];
};

#define ARENA_MAX_ALIGN 64u

void arena_init(struct arena *a, size_t chunk_size, size_t cap)
{
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK;
    a->cap = cap ? cap : SIZE_MAX;
    a->reserved = 0;
    a->used = 0;
}

static void free_chunks(struct arena_chunk *c)
{
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void arena_deinit(struct arena *a)
{
    if (!a)
        return;
    free_chunks(a->head);
    a->head = NULL;
    a->reserved = 0;
    a->used = 0;
}

void arena_reset(struct arena *a)
{
    struct arena_chunk *keep = NULL, **pp = &a->head;
    /* Keep one regular chunk: the common case of a connection serving small
     * requests then never goes back to malloc. */
    while (*pp) {
        struct arena_chunk *c = *pp;
        if (!keep && c->size == a->chunk_size) {
            keep = c;
            *pp = c->next;
            break;
        }
        pp = &c->next;
    }
    free_chunks(a->head);
    a->head = keep;
    a->reserved = 0;
    a->used = 0;
    if (keep) {
        keep->next = NULL;
        keep->pos = 0;
        a->reserved = keep->size;
    }
}

/* Offset in @c's data at which @align-aligned memory starts at or after pos. */
static size_t aligned_pos(const struct arena_chunk *c, size_t align)
{
    uintptr_t p = (uintptr_t)(c->data + c->pos);
    return c->pos + (size_t)((-p) & (uintptr_t)(align - 1));
}

/* Errors: -EMSGSIZE when @need does not fit under the cap, -ENOMEM. */
static struct arena_chunk *new_chunk(struct arena *a, size_t want, size_t need, int *err)
{
    assert(need <= want);
    size_t room = a->cap - a->reserved; /* reserved never exceeds cap */
    if (need > room || want > SIZE_MAX - sizeof(struct arena_chunk)) {
        *err = -EMSGSIZE;
        return NULL;
    }
    if (want > room)
        want = room;
    struct arena_chunk *c = malloc(sizeof(*c) + want);
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    c->next = NULL;
    c->size = want;
    c->pos = 0;
    a->reserved += want;
    return c;
}

/* The data[] start is max_align_t aligned; alignments above that need slack. */
static size_t slack_for(size_t align)
{
    return align > alignof(max_align_t) ? align - alignof(max_align_t) : 0;
}

static void *alloc_impl(struct arena *a, size_t size, size_t align, int *err)
{
    if (align == 0)
        align = alignof(max_align_t);
    assert((align & (align - 1)) == 0 && align <= ARENA_MAX_ALIGN);
    if (size == 0)
        size = 1;

    struct arena_chunk *c = a->head;
    if (c) {
        size_t off = aligned_pos(c, align);
        if (off <= c->size && c->size - off >= size) {
            a->used += off - c->pos + size;
            c->pos = off + size;
            return c->data + off;
        }
    }

    if (size > SIZE_MAX - ARENA_MAX_ALIGN) {
        *err = -EMSGSIZE;
        return NULL;
    }
    size_t need = size + slack_for(align);
    if (need > a->chunk_size / 4) {
        /* A dedicated chunk, kept behind the head so the head stays in use. */
        struct arena_chunk *big = new_chunk(a, need, need, err);
        if (!big)
            return NULL;
        if (c) {
            big->next = c->next;
            c->next = big;
        } else {
            a->head = big;
        }
        size_t off = aligned_pos(big, align);
        big->pos = off + size;
        a->used += off + size;
        return big->data + off;
    }

    struct arena_chunk *fresh = new_chunk(a, a->chunk_size, need, err);
    if (!fresh)
        return NULL;
    fresh->next = c;
    a->head = fresh;
    size_t off = aligned_pos(fresh, align);
    fresh->pos = off + size;
    a->used += off + size;
    return fresh->data + off;
}

void *arena_alloc(struct arena *a, size_t size, size_t align)
{
    int err;
    return alloc_impl(a, size, align, &err);
}

void *arena_zalloc(struct arena *a, size_t size, size_t align)
{
    void *p = arena_alloc(a, size, align);
    if (p)
        memset(p, 0, size);
    return p;
}

int arena_alloc_array(struct arena *a, size_t n, size_t size, size_t align, void **ret_ptr)
{
    if (n == 0) {
        *ret_ptr = NULL;
        return 0;
    }
    if (size != 0 && n > SIZE_MAX / size)
        return -EMSGSIZE;
    size_t total = n * size;
    int err = 0;
    void *p = alloc_impl(a, total, align, &err);
    if (!p)
        return err; /* -EMSGSIZE (the peer's fault) or -ENOMEM (ours) */
    memset(p, 0, total);
    *ret_ptr = p;
    return 0;
}

void *arena_memdup(struct arena *a, const void *p, size_t n)
{
    void *q = arena_alloc(a, n, 1);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    if (len == SIZE_MAX)
        return NULL;
    char *q = arena_alloc(a, len + 1, 1);
    if (!q)
        return NULL;
    memcpy(q, s, len);
    q[len] = '\0';
    return q;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, SIZE_MAX);
}

size_t arena_used(const struct arena *a)
{
    return a->used;
}

size_t arena_reserved(const struct arena *a)
{
    return a->reserved;
}
