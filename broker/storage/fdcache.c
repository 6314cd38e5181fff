/* fdcache: the process-wide LRU of open segment files, and the reference-counted
 * seg_file handles that readers hold while they sendfile from a segment.
 *
 * A seg_file exists only while its descriptor is open. Its owner (a segment) keeps
 * a pointer to it in a "slot"; the cache clears that slot when it evicts the file,
 * so a segment that is not being read costs no descriptor and no memory here.
 * References count users (readers, and plog code while it uses the fd); the
 * owner's slot is not a reference. A file with references is never evicted; when
 * every cached file is referenced the cache goes over its cap rather than fail, and
 * trims back as references are dropped. A file whose owner let go (segment deleted
 * or log closed) is closed on its last unref, so a reader can finish sending a
 * segment that retention removed meanwhile.
 *
 * Not thread-safe: every plog sharing a cache runs on the same thread. */
#include "broker/storage/segment.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct seg_file {
    struct fdcache *fc;     /* NULL once the cache was freed under a reader */
    struct seg_file **slot; /* the owner's pointer to us, NULL when it let go */
    struct seg_file *prev;  /* LRU neighbours: prev is more recently used */
    struct seg_file *next;
    int fd;
    int refs;
};

struct fdcache {
    int max_open;
    int open;              /* seg_files on the list, i.e. open descriptors */
    struct seg_file *head; /* most recently used */
    struct seg_file *tail;
};

static void lru_unlink(struct fdcache *fc, struct seg_file *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        fc->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        fc->tail = f->prev;
    f->prev = f->next = NULL;
}

static void lru_push_front(struct fdcache *fc, struct seg_file *f)
{
    f->prev = NULL;
    f->next = fc->head;
    if (fc->head)
        fc->head->prev = f;
    fc->head = f;
    if (!fc->tail)
        fc->tail = f;
}

static void file_destroy(struct seg_file *f)
{
    if (f->fc) {
        lru_unlink(f->fc, f);
        f->fc->open--;
    }
    if (f->slot)
        *f->slot = NULL;
    close(f->fd);
    free(f);
}

/* Close least recently used unreferenced files until at most @limit are open. */
static void trim(struct fdcache *fc, int limit)
{
    struct seg_file *f = fc->tail;
    while (fc->open > limit && f) {
        struct seg_file *prev = f->prev;
        if (f->refs == 0)
            file_destroy(f);
        f = prev;
    }
}

int fdcache_new(int max_open, struct fdcache **ret)
{
    struct fdcache *fc = calloc(1, sizeof(*fc));
    if (!fc)
        return -ENOMEM;
    fc->max_open = max_open < 8 ? 8 : max_open;
    *ret = fc;
    return 0;
}

void fdcache_free(struct fdcache *fc)
{
    if (!fc)
        return;
    struct seg_file *f = fc->head;
    while (f) {
        struct seg_file *next = f->next;
        if (f->refs == 0) {
            file_destroy(f);
        } else {
            /* A reader still sends from it: it closes on the last unref. */
            lru_unlink(fc, f);
            fc->open--;
            f->fc = NULL;
            if (f->slot)
                *f->slot = NULL;
            f->slot = NULL;
        }
        f = next;
    }
    free(fc);
}

int fdcache_open_count(const struct fdcache *fc)
{
    return fc ? fc->open : 0;
}

int fdcache_max_open(const struct fdcache *fc)
{
    return fc->max_open;
}

int fdcache_acquire(struct fdcache *fc, struct seg_file **slot, const char *path, int oflags,
                    struct seg_file **ret)
{
    struct seg_file *f = *slot;
    if (f) {
        assert(f->fc == fc);
        lru_unlink(fc, f);
        lru_push_front(fc, f);
        f->refs++;
        *ret = f;
        return 0;
    }

    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    trim(fc, fc->max_open - 1);
    int fd = open(path, oflags | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        /* The process is out of descriptors: give back every idle one we hold. */
        trim(fc, 0);
        fd = open(path, oflags | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        int err = -errno;
        free(f);
        return err;
    }
    f->fc = fc;
    f->slot = slot;
    f->fd = fd;
    f->refs = 1;
    lru_push_front(fc, f);
    fc->open++;
    *slot = f;
    *ret = f;
    return 0;
}

void fdcache_release_slot(struct seg_file **slot)
{
    struct seg_file *f = *slot;
    if (!f)
        return;
    *slot = NULL;
    f->slot = NULL;
    if (f->refs == 0)
        file_destroy(f);
}

struct seg_file *seg_file_ref(struct seg_file *f)
{
    assert(f && f->refs > 0);
    f->refs++;
    return f;
}

void seg_file_unref(struct seg_file *f)
{
    if (!f)
        return;
    assert(f->refs > 0);
    if (--f->refs > 0)
        return;
    if (!f->slot || !f->fc) {
        file_destroy(f);
        return;
    }
    if (f->fc->open > f->fc->max_open)
        trim(f->fc, f->fc->max_open);
}

int seg_file_fd(const struct seg_file *f)
{
    return f->fd;
}
