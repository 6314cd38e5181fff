/* raft_store: a voter's term, vote, term starts and uncommitted tail (see
 * raft_store.h for the files and the write protocol). */
#include "coordinator/raft_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/fsutil.h"
#include "common/wpool.h"

#define STATE_MAGIC    0x57515354u /* "WQST" */
#define STATE_VERSION  1
#define STATE_VERSION_INSTALL 2 /* with a snapshot install under way */
#define STATE_MAX      (1u << 20)
#define TAIL_HDR       16
#define TAIL_MAX_BYTES ((size_t)1 << 30)
#define TAIL_MAX_REC   ((uint32_t)64 << 20)
#define PATH_MAX_LEN   4200

struct term_start {
    int64_t term;
    int64_t start;
};

struct job {
    struct craft_store *s;
    /* state file: NULL when unchanged */
    uint8_t *state;
    size_t state_len;
    /* tail: cut at cut_pos, then write buf there */
    int64_t cut_pos;
    uint8_t *buf;
    size_t len;
    bool tail_touched;
    int status;
    craft_store_done_fn cb;
    void *ud;
};

struct craft_store {
    char state_path[PATH_MAX_LEN];
    int tail_fd;
    int64_t term;
    int32_t vote;
    struct term_start *starts;
    size_t n_starts, cap_starts;
    /* A snapshot install under way (install_offset > 0): the metadata log is
     * being replaced by a snapshot at install_offset whose last entry has
     * install_term. Persisted with the old starts before the switch. */
    int64_t install_offset, install_term;
    /* tail index: entry tail_first + i starts at pos[i]; pos[n] = end */
    int64_t tail_first;
    int64_t *pos;
    size_t n_pos, cap_pos; /* n_pos = entries + 1 */
    int64_t log_durable;
    bool busy;
    int error;
    struct job *running;
};

/* ---- term starts ------------------------------------------------------------------ */

int64_t craft_store_term_of(const struct craft_store *s, int64_t offset)
{
    int64_t t = 0;
    for (size_t i = 0; i < s->n_starts && s->starts[i].start <= offset; i++)
        t = s->starts[i].term;
    return t;
}

static int starts_push(struct craft_store *s, int64_t term, int64_t start)
{
    if (s->n_starts == s->cap_starts) {
        size_t cap = s->cap_starts ? s->cap_starts * 2 : 8;
        struct term_start *v = realloc(s->starts, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->starts = v;
        s->cap_starts = cap;
    }
    s->starts[s->n_starts++] = (struct term_start){term, start};
    return 0;
}

/* Account for entries written from @from on; true if the starts changed. */
static int starts_update(struct craft_store *s, int64_t from, const struct craft_entry *e, size_t n,
                         bool *ret_changed)
{
    bool changed = false;
    while (s->n_starts > 0 && s->starts[s->n_starts - 1].start >= from) {
        s->n_starts--;
        changed = true;
    }
    int64_t prev = craft_store_term_of(s, from - 1);
    for (size_t i = 0; i < n; i++) {
        if (e[i].term != prev) {
            int r = starts_push(s, e[i].term, from + (int64_t)i);
            if (r < 0)
                return r;
            prev = e[i].term;
            changed = true;
        }
    }
    *ret_changed = changed;
    return 0;
}

static int state_encode(const struct craft_store *s, uint8_t **ret, size_t *ret_len)
{
    bool inst = s->install_offset > 0;
    size_t len = 4 + 4 + 8 + 4 + 4 + s->n_starts * 16 + (inst ? 16 : 0) + 4;
    uint8_t *b = malloc(len);
    if (!b)
        return -ENOMEM;
    uint8_t *p = b;
    buf_store_be32(p, STATE_MAGIC), p += 4;
    buf_store_be32(p, inst ? STATE_VERSION_INSTALL : STATE_VERSION), p += 4;
    buf_store_be64(p, (uint64_t)s->term), p += 8;
    buf_store_be32(p, (uint32_t)s->vote), p += 4;
    buf_store_be32(p, (uint32_t)s->n_starts), p += 4;
    for (size_t i = 0; i < s->n_starts; i++) {
        buf_store_be64(p, (uint64_t)s->starts[i].term), p += 8;
        buf_store_be64(p, (uint64_t)s->starts[i].start), p += 8;
    }
    if (inst) {
        buf_store_be64(p, (uint64_t)s->install_offset), p += 8;
        buf_store_be64(p, (uint64_t)s->install_term), p += 8;
    }
    buf_store_be32(p, crc32c_update(0, b, (size_t)(p - b)));
    *ret = b;
    *ret_len = len;
    return 0;
}

static int state_decode(struct craft_store *s, const uint8_t *b, size_t len, char *err,
                        size_t errlen)
{
    uint32_t version = len >= 8 ? buf_load_be32(b + 4) : 0;
    size_t extra = version == STATE_VERSION_INSTALL ? 16 : 0;
    if (len < 28 + extra || buf_load_be32(b) != STATE_MAGIC ||
        (version != STATE_VERSION && version != STATE_VERSION_INSTALL)) {
        snprintf(err, errlen, "%s: not a quorum state file (bad magic or version)", s->state_path);
        return -EBADMSG;
    }
    uint32_t n = buf_load_be32(b + 20);
    if (n > (len - 28 - extra) / 16 || len != 28 + extra + (size_t)n * 16 ||
        buf_load_be32(b + len - 4) != crc32c_update(0, b, len - 4)) {
        snprintf(err, errlen, "%s: corrupt (length or CRC)", s->state_path);
        return -EBADMSG;
    }
    s->term = (int64_t)buf_load_be64(b + 8);
    s->vote = (int32_t)buf_load_be32(b + 16);
    for (uint32_t i = 0; i < n; i++) {
        int64_t t = (int64_t)buf_load_be64(b + 24 + i * 16);
        int64_t st = (int64_t)buf_load_be64(b + 32 + i * 16);
        if (t <= 0 || t > s->term || st < 0 ||
            (s->n_starts &&
             (t <= s->starts[s->n_starts - 1].term || st <= s->starts[s->n_starts - 1].start))) {
            snprintf(err, errlen, "%s: term starts out of order", s->state_path);
            return -EBADMSG;
        }
        int r = starts_push(s, t, st);
        if (r < 0)
            return r;
    }
    if (extra) {
        s->install_offset = (int64_t)buf_load_be64(b + 24 + (size_t)n * 16);
        s->install_term = (int64_t)buf_load_be64(b + 32 + (size_t)n * 16);
        if (s->install_offset <= 0 || s->install_term < 0 || s->install_term > s->term) {
            snprintf(err, errlen, "%s: corrupt snapshot install record", s->state_path);
            return -EBADMSG;
        }
    }
    return 0;
}

/* The term starts once the metadata log starts at a snapshot at @offset whose
 * last entry has @term and no entry from @offset - 1 on is kept: every start
 * from offset - 1 on, and every later term than @term, belongs to entries that
 * are gone. */
static int starts_install(struct craft_store *s, int64_t offset, int64_t term)
{
    while (s->n_starts > 0 && (s->starts[s->n_starts - 1].start >= offset - 1 ||
                               s->starts[s->n_starts - 1].term >= term))
        s->n_starts--;
    if (term > 0 && craft_store_term_of(s, offset - 1) != term)
        return starts_push(s, term, offset - 1);
    return 0;
}

/* ---- tail index ------------------------------------------------------------------- */

static int pos_reserve(struct craft_store *s, size_t need)
{
    if (need <= s->cap_pos)
        return 0;
    size_t cap = s->cap_pos ? s->cap_pos * 2 : 64;
    while (cap < need)
        cap *= 2;
    int64_t *v = realloc(s->pos, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    s->pos = v;
    s->cap_pos = cap;
    return 0;
}

int64_t craft_store_tail_end(const struct craft_store *s)
{
    return s->tail_first + (int64_t)s->n_pos - 1;
}

static void frame(uint8_t *p, int64_t offset, const struct craft_entry *e)
{
    uint8_t off_be[8];
    buf_store_be64(off_be, (uint64_t)offset);
    uint32_t crc = crc32c_update(0, off_be, 8);
    crc = crc32c_update(crc, e->data, e->len);
    buf_store_be32(p, (uint32_t)e->len);
    buf_store_be32(p + 4, crc);
    memcpy(p + 8, off_be, 8);
    if (e->len)
        memcpy(p + TAIL_HDR, e->data, e->len);
}

/* ---- open ------------------------------------------------------------------------- */

static int load_tail(struct craft_store *s, const char *path, int64_t log_next,
                     struct craft_store_recovered *rec, char *err, size_t errlen)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r = fsutil_read_file(path, TAIL_MAX_BYTES, &data, &len);
    if (r == -ENOENT) {
        len = 0;
        r = 0;
    }
    if (r < 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
        return r;
    }
    size_t at = 0, keep_from = 0;
    int64_t expect = -1;
    bool started = false;
    s->tail_first = log_next;
    s->n_pos = 1;
    if ((r = pos_reserve(s, 1)) < 0)
        goto out;
    s->pos[0] = 0;
    while (len - at >= TAIL_HDR) {
        uint32_t rl = buf_load_be32(data + at);
        if (rl > TAIL_MAX_REC || rl > len - at - TAIL_HDR)
            break;
        int64_t off = (int64_t)buf_load_be64(data + at + 8);
        uint32_t crc = crc32c_update(0, data + at + 8, 8);
        crc = crc32c_update(crc, data + at + TAIL_HDR, rl);
        if (crc != buf_load_be32(data + at + 4) || (expect >= 0 && off != expect))
            break;
        expect = off + 1;
        if (off < log_next) { /* already in the metadata log */
            at += TAIL_HDR + rl;
            keep_from = at;
            continue;
        }
        if (!started) {
            if (off != log_next) {
                snprintf(err, errlen,
                         "%s starts at offset %lld but the metadata log ends at %lld: entries "
                         "in between are lost; rebuild this voter from the leader",
                         path, (long long)off, (long long)log_next);
                r = -EBADMSG;
                goto out;
            }
            started = true;
            s->pos[0] = (int64_t)at;
        }
        struct craft_entry *v = realloc(rec->tail, (rec->n_tail + 1) * sizeof(*v));
        if (!v || pos_reserve(s, s->n_pos + 1) < 0) {
            if (v)
                rec->tail = v;
            r = -ENOMEM;
            goto out;
        }
        rec->tail = v;
        struct craft_entry *e = &rec->tail[rec->n_tail];
        e->len = rl;
        e->term = craft_store_term_of(s, off);
        e->data = NULL;
        if (rl) {
            e->data = malloc(rl);
            if (!e->data) {
                r = -ENOMEM;
                goto out;
            }
            memcpy(e->data, data + at + TAIL_HDR, rl);
        }
        rec->n_tail++;
        at += TAIL_HDR + rl;
        s->pos[s->n_pos++] = (int64_t)at;
    }
    if (!started)
        s->pos[0] = (int64_t)keep_from;
    if (at < len) {
        /* A torn or corrupt end: nothing after it was acknowledged. */
        rec->tail_dropped_bytes = (int64_t)(len - at);
        if (ftruncate(s->tail_fd, (off_t)at) < 0 || fdatasync(s->tail_fd) < 0) {
            r = -errno;
            snprintf(err, errlen, "%s: cannot cut the torn end: %s", path, strerror(-r));
        }
    }
out:
    free(data);
    return r;
}

static int state_write(struct craft_store *s)
{
    uint8_t *b = NULL;
    size_t len = 0;
    int r = state_encode(s, &b, &len);
    if (r == 0)
        r = fsutil_write_atomic(s->state_path, b, len);
    free(b);
    return r;
}

/* Empty the tail file at @offset: what it held is below the metadata log's
 * start or was cut away with the entries before the snapshot. */
static int tail_reset(struct craft_store *s, int64_t offset)
{
    if (ftruncate(s->tail_fd, 0) < 0 || fdatasync(s->tail_fd) < 0)
        return -errno;
    if (pos_reserve(s, 1) < 0)
        return -ENOMEM;
    s->tail_first = offset;
    s->n_pos = 1;
    s->pos[0] = 0;
    return 0;
}

/* A snapshot install was under way when the voter stopped: finish it if the
 * metadata log was switched (it starts at or after the snapshot), else forget it. */
static int install_recover(struct craft_store *s, int64_t log_next, char *err, size_t errlen)
{
    int r = 0;
    if (log_next >= s->install_offset) {
        r = starts_install(s, s->install_offset, s->install_term);
        if (r == 0)
            r = tail_reset(s, log_next);
    }
    s->install_offset = s->install_term = 0;
    if (r == 0)
        r = state_write(s);
    if (r < 0)
        snprintf(err, errlen, "%s: cannot finish an interrupted snapshot install: %s",
                 s->state_path, strerror(-r));
    return r;
}

int craft_store_open(const char *dir, int64_t log_next, struct craft_store **ret,
                     struct craft_store_recovered *ret_rec, char *err, size_t errlen)
{
    memset(ret_rec, 0, sizeof(*ret_rec));
    struct craft_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->tail_fd = -1;
    char tail_path[PATH_MAX_LEN];
    if ((size_t)snprintf(s->state_path, sizeof(s->state_path), "%s/%s", dir,
                         CRAFT_STORE_STATE_FILE) >= sizeof(s->state_path) ||
        (size_t)snprintf(tail_path, sizeof(tail_path), "%s/%s", dir, CRAFT_STORE_TAIL_FILE) >=
            sizeof(tail_path)) {
        snprintf(err, errlen, "directory name too long");
        free(s);
        return -ENAMETOOLONG;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    int r = fsutil_read_file(s->state_path, STATE_MAX, &data, &len);
    if (r == 0)
        r = state_decode(s, data, len, err, errlen);
    else if (r == -ENOENT)
        r = 0;
    else
        snprintf(err, errlen, "%s: cannot read: %s", s->state_path, strerror(-r));
    free(data);
    if (r == 0) {
        s->tail_fd = open(tail_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->tail_fd < 0) {
            r = -errno;
            snprintf(err, errlen, "%s: cannot open: %s", tail_path, strerror(-r));
        }
    }
    if (r == 0 && s->install_offset > 0)
        r = install_recover(s, log_next, err, errlen);
    if (r == 0)
        r = load_tail(s, tail_path, log_next, ret_rec, err, errlen);
    if (r < 0) {
        craft_store_recovered_free(ret_rec);
        craft_store_free(s);
        return r;
    }
    s->log_durable = log_next;
    ret_rec->term = s->term;
    ret_rec->vote = s->vote;
    *ret = s;
    return 0;
}

void craft_store_recovered_free(struct craft_store_recovered *rec)
{
    for (size_t i = 0; i < rec->n_tail; i++)
        free(rec->tail[i].data);
    free(rec->tail);
    rec->tail = NULL;
    rec->n_tail = 0;
}

void craft_store_free(struct craft_store *s)
{
    if (!s)
        return;
    /* A running job owns its buffers and finishes through its done callback,
     * which the pool runs before it is freed; the caller frees the pool first. */
    if (s->tail_fd >= 0)
        close(s->tail_fd);
    free(s->starts);
    free(s->pos);
    free(s);
}

void craft_store_log_durable(struct craft_store *s, int64_t offset)
{
    if (offset > s->log_durable)
        s->log_durable = offset;
}

bool craft_store_busy(const struct craft_store *s)
{
    return s->busy;
}

/* ---- writing ---------------------------------------------------------------------- */

static void job_work(void *arg)
{
    struct job *j = arg;
    int r = 0;
    if (j->state)
        r = fsutil_write_atomic(j->s->state_path, j->state, j->state_len);
    if (r == 0 && j->tail_touched) {
        if (ftruncate(j->s->tail_fd, (off_t)j->cut_pos) < 0)
            r = -errno;
        if (r == 0 && j->len)
            r = fsutil_pwrite_all(j->s->tail_fd, j->buf, j->len, j->cut_pos);
        if (r == 0 && fdatasync(j->s->tail_fd) < 0)
            r = -errno;
    }
    j->status = r;
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct craft_store *s = j->s;
    s->busy = false;
    s->running = NULL;
    if (j->status < 0 && !s->error)
        s->error = j->status;
    craft_store_done_fn cb = j->cb;
    void *ud = j->ud;
    int status = j->status;
    free(j->state);
    free(j->buf);
    free(j);
    if (cb)
        cb(s, status, ud);
}

/* Build the job and update the in-memory view (starts, tail index) as if it
 * had been written: the view is what the next write builds on. */
static int job_prepare(struct craft_store *s, bool hard_dirty, int64_t term, int32_t vote,
                       int64_t from, const struct craft_entry *e, size_t n, struct job **ret)
{
    if (s->error)
        return -EIO;
    if (s->busy)
        return -EBUSY;
    int64_t end = craft_store_tail_end(s);
    if (n > 0 && (from < s->tail_first || from > end))
        return -EINVAL;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->s = s;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += TAIL_HDR + e[i].len;
    if (n > 0) {
        j->buf = malloc(len ? len : 1);
        if (!j->buf || pos_reserve(s, (size_t)(from - s->tail_first) + n + 1) < 0)
            goto nomem;
    }
    struct term_start *saved = NULL;
    size_t saved_n = s->n_starts;
    if (saved_n) {
        saved = malloc(saved_n * sizeof(*saved));
        if (!saved)
            goto nomem;
        memcpy(saved, s->starts, saved_n * sizeof(*saved));
    }
    bool starts_changed = false;
    int r = n > 0 ? starts_update(s, from, e, n, &starts_changed) : 0;
    int64_t old_term = s->term;
    int32_t old_vote = s->vote;
    if (hard_dirty) {
        s->term = term;
        s->vote = vote;
    }
    if (r == 0 && (hard_dirty || starts_changed))
        r = state_encode(s, &j->state, &j->state_len);
    if (r < 0) {
        memcpy(s->starts, saved, saved_n * sizeof(*saved));
        s->n_starts = saved_n;
        s->term = old_term;
        s->vote = old_vote;
        free(saved);
        free(j->buf);
        free(j->state);
        free(j);
        return r;
    }
    free(saved);
    if (n > 0) {
        j->tail_touched = true;
        if (s->log_durable >= from) {
            /* Everything before @from is in the metadata log: start afresh. */
            s->tail_first = from;
            s->n_pos = 1;
            s->pos[0] = 0;
        } else {
            s->n_pos = (size_t)(from - s->tail_first) + 1;
        }
        j->cut_pos = s->pos[s->n_pos - 1];
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            frame(j->buf + at, from + (int64_t)i, &e[i]);
            at += TAIL_HDR + e[i].len;
            s->pos[s->n_pos++] = j->cut_pos + (int64_t)at;
        }
        j->len = len;
    }
    *ret = j;
    return 0;
nomem:
    free(j->buf);
    free(j);
    return -ENOMEM;
}

int craft_store_submit(struct craft_store *s, struct wpool *pool, bool hard_dirty, int64_t term,
                       int32_t vote, int64_t from, const struct craft_entry *entries, size_t n,
                       craft_store_done_fn cb, void *ud)
{
    struct job *j;
    int r = job_prepare(s, hard_dirty, term, vote, from, entries, n, &j);
    if (r < 0)
        return r;
    j->cb = cb;
    j->ud = ud;
    s->busy = true;
    s->running = j;
    r = wpool_submit(pool, job_work, job_done, j);
    if (r < 0) {
        /* The view already moved on: the store cannot be trusted any more. */
        s->busy = false;
        s->running = NULL;
        s->error = -EIO;
        free(j->state);
        free(j->buf);
        free(j);
    }
    return r;
}

int craft_store_write_sync(struct craft_store *s, bool hard_dirty, int64_t term, int32_t vote,
                           int64_t from, const struct craft_entry *entries, size_t n)
{
    struct job *j;
    int r = job_prepare(s, hard_dirty, term, vote, from, entries, n, &j);
    if (r < 0)
        return r;
    s->busy = true;
    job_work(j);
    r = j->status;
    job_done(j);
    return r;
}

/* ---- snapshot install ------------------------------------------------------------- */

/* The tail already holds entry @offset - 1 with @term: the entries from the
 * snapshot on stay valid and nothing on disk changes. */
static bool install_keeps_tail(const struct craft_store *s, int64_t offset, int64_t term)
{
    return craft_store_tail_end(s) >= offset && craft_store_term_of(s, offset - 1) == term;
}

int craft_store_install_begin(struct craft_store *s, int64_t offset, int64_t term)
{
    if (s->error)
        return -EIO;
    if (s->busy)
        return -EBUSY;
    if (offset <= 0 || term < 0 || term > s->term)
        return -EINVAL;
    if (install_keeps_tail(s, offset, term))
        return 0;
    s->install_offset = offset;
    s->install_term = term;
    int r = state_write(s);
    if (r < 0) {
        s->install_offset = s->install_term = 0;
        s->error = r;
    }
    return r;
}

int craft_store_install_end(struct craft_store *s, int64_t offset, int64_t term, bool switched)
{
    if (s->error)
        return -EIO;
    if (s->busy)
        return -EBUSY;
    if (switched && offset > s->log_durable)
        s->log_durable = offset;
    if (s->install_offset != offset)
        return 0; /* the tail was kept: nothing was recorded */
    int r = 0;
    if (switched) {
        r = tail_reset(s, offset);
        if (r == 0)
            r = starts_install(s, offset, term);
    }
    s->install_offset = s->install_term = 0;
    if (r == 0)
        r = state_write(s);
    if (r < 0)
        s->error = r;
    return r;
}
