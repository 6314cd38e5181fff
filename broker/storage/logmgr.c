/* logmgr: the broker's set of partition logs across its log directories — start-up
 * recovery from checkpoints, creation and deletion, and the background flush,
 * checkpoint and retention policies (blocking parts on the worker pool). */
#include "broker/storage/logmgr.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/storage/checkpoint.h"
#include "broker/storage/cleaner.h"
#include "broker/storage/segment.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/metaprops.h"
#include "common/wpool.h"

#define LM_LOCK_FILE     ".lock"
#define LM_DELETE_SUFFIX "-delete"
#define LM_STRAY_SUFFIX  "-stray"
#define LM_NAME_MAX      255

enum lm_cp_kind {
    LM_CP_RECOVERY = 0,
    LM_CP_START = 1,
    LM_CP_HW = 2,
    LM_CP_CLEANER = 3,
    LM_CP_KINDS = 4,
};

static const char *const lm_cp_file[LM_CP_KINDS] = {
    CHECKPOINT_RECOVERY_POINT_FILE,
    CHECKPOINT_LOG_START_OFFSET_FILE,
    CHECKPOINT_REPLICATION_OFFSET_FILE,
    CHECKPOINT_CLEANER_OFFSET_FILE,
};

enum lm_timer {
    LM_TIMER_FLUSH,
    LM_TIMER_RECOVERY_CP,
    LM_TIMER_START_CP,
    LM_TIMER_RETENTION,
    LM_TIMER_HW_CP,
    LM_TIMER_CLEANER,
    LM_TIMERS,
};

/* One log. Reference-counted because flush jobs in flight outlive a deletion: the
 * table holds one reference, every job one more; a job finishing on an entry
 * whose log is closed (log == NULL) hands NULL to plog_flush_job_finish(). */
struct lm_log {
    char *topic;
    int32_t partition;
    uint32_t hash;
    struct plog *log;
    size_t dir;
    int refs;
    bool flushing;       /* a flush job is in flight */
    bool flush_again;    /* another flush was asked for meanwhile */
    bool parent_synced;  /* the log's directory entry (and partition.metadata) is durable */
    bool has_topic_id;   /* partition.metadata names the topic id */
    bool cleaning;       /* a cleaner job is in flight */
    int64_t first_dirty; /* the cleaner's checkpoint: clean below this; -1 = never cleaned */
    uint8_t topic_id[METAPROPS_UUID_LEN];
    struct plog_recovery_info recovery;
    struct lm_log *name_next; /* chain in by_name */
    struct lm_log *ptr_next;  /* chain in by_ptr */
    struct lm_log *prev, *next;
};

struct lm_dir {
    char *path;
    int lock_fd;
    size_t nlogs;
    size_t npending; /* logs of batches in flight that were placed here */
    bool cp_busy[LM_CP_KINDS];  /* a write of this checkpoint is in flight */
    bool cp_dirty[LM_CP_KINDS]; /* and another was asked for meanwhile */
};

struct logmgr {
    struct event_base *base;
    struct wpool *pool;
    struct fdcache *fc;
    struct lm_dir *dirs;
    size_t ndirs;
    struct plog_config log_config;
    bool startup_retention_off;
    int64_t intervals[LM_TIMERS];
    struct event *timers[LM_TIMERS];
    int64_t (*now_fn)(void *arg);
    void *now_arg;
    logmgr_event_fn on_event;
    void *event_arg;

    struct lm_log **by_name;
    struct lm_log **by_ptr;
    size_t nbuckets; /* power of two */
    size_t count;
    struct lm_log *head, *tail;

    struct lm_unlink_job *delayed; /* retired segments waiting out file.delete.delay.ms */
    bool cleaner_enable;
    int cleaner_threads;
    int cleaner_running;
    int64_t cleaner_dedupe_bytes; /* per job: the buffer size over the threads */
    bool cleaner_cp_used;         /* some log was cleaned or checkpointed: keep the file */
    bool stopping;                /* no new background work (shutdown or free under way) */
    bool shut_down;
    struct logmgr_counters counters;
};

/* ---- small helpers ------------------------------------------------------------- */

static char *lm_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void lm_report(const struct logmgr *m, enum logmgr_event_type type, const char *topic,
                      int32_t partition, const char *path, int err,
                      const struct plog_recovery_info *recovery)
{
    log_debug("storage", "logmgr event %d: %s-%" PRId32 " %s: %d", (int)type, topic ? topic : "-",
              partition, path ? path : "-", err);
    if (!m->on_event)
        return;
    struct logmgr_event ev = {
        .type = type,
        .topic = topic,
        .partition = topic ? partition : -1,
        .path = path,
        .err = err,
        .recovery = recovery,
    };
    m->on_event(m->event_arg, &ev);
}

int64_t logmgr_now_ms(const struct logmgr *mgr)
{
    return mgr->now_fn ? mgr->now_fn(mgr->now_arg) : clock_wall_ms();
}

void logmgr_options_defaults(struct logmgr_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    plog_config_defaults(&opts->log_config);
    opts->max_open_files = 0;
    opts->recovery_checkpoint_interval_ms = 60000;
    opts->start_offset_checkpoint_interval_ms = 60000;
    opts->retention_check_interval_ms = 300000;
    opts->hw_checkpoint_interval_ms = 5000;
    opts->flush_scheduler_interval_ms = INT64_MAX;
    opts->cleaner_enable = true;
    opts->cleaner_threads = 1;
    opts->cleaner_dedupe_buffer_size = 128LL << 20;
    opts->cleaner_backoff_ms = 15000;
}

int logmgr_default_max_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return LOGMGR_MAX_OPEN_FILES_DEFAULT_CAP;
    rlim_t half = rl.rlim_cur / 2;
    if (half < 64)
        return 64;
    if (half > LOGMGR_MAX_OPEN_FILES_DEFAULT_CAP)
        return LOGMGR_MAX_OPEN_FILES_DEFAULT_CAP;
    return (int)half;
}

static long long lm_rlim(rlim_t v)
{
    return v == RLIM_INFINITY ? -1 : (long long)v;
}

int logmgr_raise_fd_limit(struct logmgr_fd_limit *ret)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    struct logmgr_fd_limit out = {
        .soft_before = lm_rlim(rl.rlim_cur), .soft = lm_rlim(rl.rlim_cur), .hard = lm_rlim(rl.rlim_max)};
    if (rl.rlim_cur != rl.rlim_max) {
        struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            out.soft = lm_rlim(rl.rlim_max);
        else
            out.err = -errno;
    }
    *ret = out;
    return 0;
}

/* ---- names ------------------------------------------------------------------- */

int logmgr_parse_dir_name(const char *name, size_t *ret_topic_len, int32_t *ret_partition)
{
    const char *dash = strrchr(name, '-');
    if (!dash)
        return -EINVAL;
    const char *p = dash + 1;
    size_t digits = strlen(p);
    if (digits == 0 || digits > 10 || (digits > 1 && p[0] == '0'))
        return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (p[i] - '0');
    }
    if (v > INT32_MAX)
        return -EINVAL;
    size_t tlen = (size_t)(dash - name);
    if (!checkpoint_topic_valid(name, tlen))
        return -EINVAL;
    *ret_topic_len = tlen;
    *ret_partition = (int32_t)v;
    return 0;
}

/* "<topic>-<partition>.<id><suffix>", as Kafka and logmgr_delete() (suffix
 * "-delete") or logmgr_set_aside() ("-stray") name them. */
static bool lm_is_renamed_dir(const char *name, const char *suffix)
{
    size_t len = strlen(name);
    size_t slen = strlen(suffix);
    if (len <= slen || strcmp(name + len - slen, suffix) != 0)
        return false;
    const char *dot = memrchr(name, '.', len - slen);
    if (!dot)
        return false;
    const char *id = dot + 1, *id_end = name + len - slen;
    if (id == id_end || id_end - id > 64)
        return false;
    for (const char *q = id; q < id_end; q++) {
        bool alnum =
            (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z');
        if (!alnum)
            return false;
    }
    /* The part before the dot ends in "-<digits>". */
    const char *q = dot;
    while (q > name && q[-1] >= '0' && q[-1] <= '9')
        q--;
    return q < dot && q > name + 1 && q[-1] == '-';
}

static uint64_t lm_unique_id(void)
{
    static uint64_t seq;
    uint64_t v;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = (uint64_t)clock_mono_ns() * 0x9e3779b97f4a7c15ULL;
    return v ^ ++seq;
}

static bool lm_is_delete_dir(const char *name)
{
    return lm_is_renamed_dir(name, LM_DELETE_SUFFIX);
}

/* Kafka's delete-dir (or stray-dir, @kind) name, with the topic shortened so the
 * name fits in 255 bytes. */
static void lm_renamed_name(const char *topic, int32_t partition, const char *kind, char *buf,
                            size_t buflen)
{
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "-%" PRId32 ".%016" PRIx64 "%s", partition, lm_unique_id(),
             kind);
    size_t tlen = strlen(topic), slen = strlen(suffix);
    if (tlen > LM_NAME_MAX - slen)
        tlen = LM_NAME_MAX - slen;
    assert(buflen > tlen + slen);
    memcpy(buf, topic, tlen);
    memcpy(buf + tlen, suffix, slen + 1);
}

static void lm_delete_name(const char *topic, int32_t partition, char *buf, size_t buflen)
{
    lm_renamed_name(topic, partition, LM_DELETE_SUFFIX, buf, buflen);
}

/* fsync what makes a new log's existence durable: its partition.metadata (when
 * there is one), its directory, and the entry in the log dir @parent. */
static int lm_sync_new_log(const char *parent, const char *logdir)
{
    char path[4200];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", logdir, METAPROPS_PART_FILE) >= sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        int r = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
            return r;
    } else if (errno != ENOENT) {
        return -errno;
    }
    int r = fsutil_fsync_dir(logdir);
    return r < 0 ? r : fsutil_fsync_dir(parent);
}

/* ---- the table of logs --------------------------------------------------------- */

static uint32_t lm_hash_name(const char *topic, int32_t partition)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)topic; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    uint32_t part = (uint32_t)partition;
    for (int i = 0; i < 4; i++) {
        h ^= (part >> (8 * i)) & 0xffu;
        h *= 16777619u;
    }
    return h;
}

static uint32_t lm_hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static struct lm_log *lm_find(const struct logmgr *m, const char *topic, int32_t partition)
{
    if (!m->by_name)
        return NULL;
    uint32_t h = lm_hash_name(topic, partition);
    for (struct lm_log *e = m->by_name[h & (m->nbuckets - 1)]; e; e = e->name_next) {
        if (e->hash == h && e->partition == partition && strcmp(e->topic, topic) == 0)
            return e;
    }
    return NULL;
}

static struct lm_log *lm_find_ptr(const struct logmgr *m, const struct plog *log)
{
    if (!m->by_ptr || !log)
        return NULL;
    for (struct lm_log *e = m->by_ptr[lm_hash_ptr(log) & (m->nbuckets - 1)]; e; e = e->ptr_next) {
        if (e->log == log)
            return e;
    }
    return NULL;
}

static void lm_ptr_insert(struct logmgr *m, struct lm_log *e)
{
    size_t b = lm_hash_ptr(e->log) & (m->nbuckets - 1);
    e->ptr_next = m->by_ptr[b];
    m->by_ptr[b] = e;
}

static void lm_ptr_remove(struct logmgr *m, struct lm_log *e)
{
    struct lm_log **pp = &m->by_ptr[lm_hash_ptr(e->log) & (m->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->ptr_next;
    if (*pp)
        *pp = e->ptr_next;
    e->ptr_next = NULL;
}

static int lm_table_grow(struct logmgr *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
    struct lm_log **by_name = calloc(n, sizeof(*by_name));
    struct lm_log **by_ptr = calloc(n, sizeof(*by_ptr));
    if (!by_name || !by_ptr) {
        free(by_name);
        free(by_ptr);
        return -ENOMEM;
    }
    free(m->by_name);
    free(m->by_ptr);
    m->by_name = by_name;
    m->by_ptr = by_ptr;
    m->nbuckets = n;
    for (struct lm_log *e = m->head; e; e = e->next) {
        size_t b = e->hash & (n - 1);
        e->name_next = by_name[b];
        by_name[b] = e;
        if (e->log)
            lm_ptr_insert(m, e);
    }
    return 0;
}

/* Takes ownership of @topic. */
static int lm_insert(struct logmgr *m, char *topic, int32_t partition, size_t dir, struct plog *log,
                     struct lm_log **ret)
{
    if (m->count + 1 > m->nbuckets) {
        int r = lm_table_grow(m);
        if (r < 0)
            return r;
    }
    struct lm_log *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->topic = topic;
    e->partition = partition;
    e->hash = lm_hash_name(topic, partition);
    e->log = log;
    e->dir = dir;
    e->refs = 1;
    size_t b = e->hash & (m->nbuckets - 1);
    e->name_next = m->by_name[b];
    m->by_name[b] = e;
    lm_ptr_insert(m, e);
    e->prev = m->tail;
    if (m->tail)
        m->tail->next = e;
    else
        m->head = e;
    m->tail = e;
    m->count++;
    m->dirs[dir].nlogs++;
    *ret = e;
    return 0;
}

static void lm_unref(struct lm_log *e)
{
    if (--e->refs > 0)
        return;
    free(e->topic);
    free(e);
}

/* Take @e out of the table (its log must already be closed or unlinked from
 * by_ptr) and drop the table's reference. */
static void lm_remove(struct logmgr *m, struct lm_log *e)
{
    struct lm_log **pp = &m->by_name[e->hash & (m->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->name_next;
    if (*pp)
        *pp = e->name_next;
    if (e->prev)
        e->prev->next = e->next;
    else
        m->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        m->tail = e->prev;
    e->prev = e->next = NULL;
    m->count--;
    m->dirs[e->dir].nlogs--;
    lm_unref(e);
}

/* ---- background jobs: removing files ------------------------------------------- */

struct lm_rmtree_job {
    struct logmgr *m;
    char *path;
    const char *parent; /* fsync first to make the rename durable; borrowed, may be NULL */
    char *topic;        /* the deleted log, NULL for a stale dir found at start-up */
    int32_t partition;
    int result;
};

static void lm_rmtree_work(void *arg)
{
    struct lm_rmtree_job *j = arg;
    int r = 0;
    if (j->parent)
        r = fsutil_fsync_dir(j->parent);
    int r2 = fsutil_remove_tree(j->path);
    j->result = r < 0 ? r : r2;
}

static void lm_rmtree_done(void *arg)
{
    struct lm_rmtree_job *j = arg;
    if (j->result < 0) {
        j->m->counters.remove_errors++;
        lm_report(j->m, LOGMGR_EVENT_REMOVE_FAILED, j->topic, j->partition, j->path, j->result,
                  NULL);
    } else if (j->topic) {
        j->m->counters.logs_deleted++;
    }
    free(j->path);
    free(j->topic);
    free(j);
}

/* Takes ownership of @path and @topic. On failure the tree stays; the next start
 * removes it as a stale delete dir. */
static int lm_rmtree_submit(struct logmgr *m, char *path, const char *parent, char *topic,
                            int32_t partition)
{
    struct lm_rmtree_job *j = calloc(1, sizeof(*j));
    int r = -ENOMEM;
    if (j) {
        j->m = m;
        j->path = path;
        j->parent = parent;
        j->topic = topic;
        j->partition = partition;
        r = wpool_submit(m->pool, lm_rmtree_work, lm_rmtree_done, j);
        if (r == 0)
            return 0;
    }
    m->counters.remove_errors++;
    lm_report(m, LOGMGR_EVENT_REMOVE_FAILED, topic, partition, path, r, NULL);
    free(j);
    free(path);
    free(topic);
    return r;
}

struct lm_unlink_job {
    struct logmgr *m;
    struct event *timer;                 /* while delayed */
    struct lm_unlink_job *dprev, *dnext; /* in m->delayed while delayed */
    char **paths;
    size_t count;
    size_t files;    /* unlinked */
    size_t segments; /* of which .log files */
    int result;
    size_t failed; /* index of the first failure */
};

static bool lm_is_log_file(const char *path)
{
    static const char suffix[] = ".log.deleted";
    size_t n = strlen(path), s = sizeof(suffix) - 1;
    return n >= s && strcmp(path + n - s, suffix) == 0;
}

static void lm_unlink_work(void *arg)
{
    struct lm_unlink_job *j = arg;
    for (size_t i = 0; i < j->count; i++) {
        if (unlink(j->paths[i]) < 0 && errno != ENOENT) {
            if (j->result == 0) {
                j->result = -errno;
                j->failed = i;
            }
            continue;
        }
        j->files++;
        if (lm_is_log_file(j->paths[i]))
            j->segments++;
    }
}

static void lm_delayed_unlink(struct logmgr *m, struct lm_unlink_job *j)
{
    if (j->dprev)
        j->dprev->dnext = j->dnext;
    else
        m->delayed = j->dnext;
    if (j->dnext)
        j->dnext->dprev = j->dprev;
    j->dprev = j->dnext = NULL;
    event_free(j->timer);
    j->timer = NULL;
}

static void lm_unlink_done(void *arg);

static void lm_unlink_delay_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lm_unlink_job *j = arg;
    struct logmgr *m = j->m;
    lm_delayed_unlink(m, j);
    if (!m->stopping && wpool_submit(m->pool, lm_unlink_work, lm_unlink_done, j) == 0)
        return;
    /* The files keep their ".deleted" names; plog_open() removes them at the
     * next start. */
    m->counters.remove_errors++;
    lm_report(m, LOGMGR_EVENT_REMOVE_FAILED, NULL, -1, j->paths[0], -ENOMEM, NULL);
    plog_paths_free(j->paths, j->count);
    free(j);
}

/* Unlink @j's files after @delay_ms (file.delete.delay.ms), as Kafka does, so
 * that a reader that found a segment just before it was retired can still
 * finish. -ENOMEM when the timer cannot be set: the caller unlinks at once. */
static int lm_unlink_delay(struct logmgr *m, struct lm_unlink_job *j, int64_t delay_ms)
{
    if (!m->base)
        return -ENOTSUP;
    if (delay_ms > LOGMGR_TIMER_MAX_MS)
        delay_ms = LOGMGR_TIMER_MAX_MS;
    j->timer = evtimer_new(m->base, lm_unlink_delay_cb, j);
    if (!j->timer)
        return -ENOMEM;
    struct timeval tv = {.tv_sec = (time_t)(delay_ms / 1000),
                         .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000};
    if (event_add(j->timer, &tv) < 0) {
        event_free(j->timer);
        j->timer = NULL;
        return -ENOMEM;
    }
    j->dnext = m->delayed;
    if (m->delayed)
        m->delayed->dprev = j;
    m->delayed = j;
    return 0;
}

/* At shutdown: the delayed files keep their ".deleted" names and plog_open()
 * removes them at the next start, as Kafka does. */
static void lm_delayed_drop(struct logmgr *m)
{
    while (m->delayed) {
        struct lm_unlink_job *j = m->delayed;
        lm_delayed_unlink(m, j);
        plog_paths_free(j->paths, j->count);
        free(j);
    }
}

static void lm_unlink_done(void *arg)
{
    struct lm_unlink_job *j = arg;
    j->m->counters.files_deleted += j->files;
    j->m->counters.segments_deleted += j->segments;
    if (j->result < 0) {
        j->m->counters.remove_errors++;
        lm_report(j->m, LOGMGR_EVENT_REMOVE_FAILED, NULL, -1, j->paths[j->failed], j->result, NULL);
    }
    plog_paths_free(j->paths, j->count);
    free(j);
}

/* ---- background jobs: flushing -------------------------------------------------- */

struct lm_flush_job {
    struct logmgr *m;
    struct lm_log *e; /* one reference */
    struct plog_flush_job *job;
    const char *parent; /* also fsync this dir (a new log's entry); borrowed, may be NULL */
    char *logdir;       /* with @parent: the log's own directory (owned) */
    int result;
};

static void lm_flush_work(void *arg)
{
    struct lm_flush_job *f = arg;
    f->result = plog_flush_job_run(f->job);
    if (f->result == 0 && f->parent)
        f->result = lm_sync_new_log(f->parent, f->logdir);
}

static int lm_flush_start(struct logmgr *m, struct lm_log *e);

static void lm_flush_done(void *arg)
{
    struct lm_flush_job *f = arg;
    struct logmgr *m = f->m;
    struct lm_log *e = f->e;

    plog_flush_job_finish(e->log, f->job, f->result);
    e->flushing = false;
    if (f->result == 0) {
        m->counters.flushes_done++;
        if (f->parent)
            e->parent_synced = true;
    } else {
        m->counters.flush_errors++;
        if (e->log)
            lm_report(m, LOGMGR_EVENT_FLUSH_FAILED, e->topic, e->partition, plog_dir(e->log),
                      f->result, NULL);
    }
    bool again = e->flush_again;
    e->flush_again = false;
    free(f->logdir);
    free(f);
    if (again && e->log)
        lm_flush_start(m, e);
    lm_unref(e);
}

static int lm_flush_start(struct logmgr *m, struct lm_log *e)
{
    if (m->stopping || !e->log)
        return 0;
    if (e->flushing) {
        e->flush_again = true;
        return 0;
    }
    struct plog_flush_job *job = NULL;
    int r = plog_flush_prepare(e->log, &job);
    if (r < 0) {
        m->counters.flush_errors++;
        lm_report(m, LOGMGR_EVENT_FLUSH_FAILED, e->topic, e->partition, plog_dir(e->log), r, NULL);
        return r;
    }
    if (!job)
        return 0;
    struct lm_flush_job *f = calloc(1, sizeof(*f));
    if (!f) {
        plog_flush_job_finish(e->log, job, -ENOMEM);
        return -ENOMEM;
    }
    f->m = m;
    f->e = e;
    f->job = job;
    if (!e->parent_synced) {
        f->parent = m->dirs[e->dir].path;
        f->logdir = strdup(plog_dir(e->log));
    }
    r = f->parent && !f->logdir ? -ENOMEM : wpool_submit(m->pool, lm_flush_work, lm_flush_done, f);
    if (r < 0) {
        plog_flush_job_finish(e->log, job, r);
        free(f->logdir);
        free(f);
        return r;
    }
    e->refs++;
    e->flushing = true;
    m->counters.flushes_started++;
    return 0;
}

/* ---- checkpoints ----------------------------------------------------------------- */

static int64_t lm_cp_offset(const struct lm_log *e, int kind)
{
    switch (kind) {
    case LM_CP_RECOVERY:
        return plog_recovery_point(e->log);
    case LM_CP_START:
        return plog_log_start_offset(e->log);
    case LM_CP_CLEANER:
        return plog_get_config(e->log)->cleanup_compact ? e->first_dirty : -1;
    default:
        return plog_high_watermark(e->log);
    }
}

static void lm_cp_count_written(struct logmgr *m, int kind)
{
    if (kind == LM_CP_RECOVERY)
        m->counters.recovery_checkpoints_written++;
    else if (kind == LM_CP_START)
        m->counters.start_offset_checkpoints_written++;
    else if (kind == LM_CP_CLEANER)
        m->counters.cleaner_checkpoints_written++;
    else
        m->counters.hw_checkpoints_written++;
}

/* Collect the entries of every dir with want[dir] set, in one pass over the logs.
 * Topics are borrowed from the table: use the arrays before any log is removed. */
static int lm_cp_collect(const struct logmgr *m, int kind, const bool *want,
                         struct checkpoint_entry **arrays, size_t *counts)
{
    for (size_t d = 0; d < m->ndirs; d++) {
        arrays[d] = NULL;
        counts[d] = 0;
        if (want[d] && m->dirs[d].nlogs > 0) {
            arrays[d] = malloc(m->dirs[d].nlogs * sizeof(**arrays));
            if (!arrays[d]) {
                for (size_t k = 0; k < d; k++)
                    free(arrays[k]);
                return -ENOMEM;
            }
        }
    }
    for (const struct lm_log *e = m->head; e; e = e->next) {
        if (!want[e->dir] || !e->log)
            continue;
        int64_t off = lm_cp_offset(e, kind);
        if (off < 0)
            continue;
        arrays[e->dir][counts[e->dir]++] = (struct checkpoint_entry){
            .topic = e->topic,
            .partition = e->partition,
            .offset = off,
        };
    }
    return 0;
}

struct lm_cp_job {
    struct logmgr *m;
    size_t dir;
    int kind;
    char *path;
    char *data;
    size_t len;
    int result;
};

static void lm_cp_start(struct logmgr *m, int kind, size_t only_dir);

static void lm_cp_work(void *arg)
{
    struct lm_cp_job *j = arg;
    j->result = fsutil_write_atomic(j->path, j->data, j->len);
}

static void lm_cp_done(void *arg)
{
    struct lm_cp_job *j = arg;
    struct logmgr *m = j->m;
    struct lm_dir *d = &m->dirs[j->dir];
    d->cp_busy[j->kind] = false;
    if (j->result == 0) {
        lm_cp_count_written(m, j->kind);
    } else {
        m->counters.checkpoint_errors++;
        lm_report(m, LOGMGR_EVENT_CHECKPOINT_FAILED, NULL, -1, j->path, j->result, NULL);
    }
    size_t dir = j->dir;
    int kind = j->kind;
    free(j->path);
    free(j->data);
    free(j);
    if (d->cp_dirty[kind]) {
        d->cp_dirty[kind] = false;
        lm_cp_start(m, kind, dir);
    }
}

/* Write checkpoint @kind of every dir (only_dir == SIZE_MAX) or of one dir,
 * asynchronously. A dir whose write is still in flight is marked dirty and
 * written again when that one completes, so writes of one file never overlap. */
static void lm_cp_start(struct logmgr *m, int kind, size_t only_dir)
{
    if (m->stopping)
        return;
    bool *want = calloc(m->ndirs, sizeof(*want));
    struct checkpoint_entry **arrays = calloc(m->ndirs, sizeof(*arrays));
    size_t *counts = calloc(m->ndirs, sizeof(*counts));
    bool any = false;
    if (!want || !arrays || !counts)
        goto nomem;
    for (size_t d = 0; d < m->ndirs; d++) {
        if (only_dir != SIZE_MAX && d != only_dir)
            continue;
        if (m->dirs[d].cp_busy[kind]) {
            m->dirs[d].cp_dirty[kind] = true;
            continue;
        }
        want[d] = true;
        any = true;
    }
    if (!any)
        goto out;
    if (lm_cp_collect(m, kind, want, arrays, counts) < 0)
        goto nomem;
    for (size_t d = 0; d < m->ndirs; d++) {
        if (!want[d])
            continue;
        char *path = lm_join(m->dirs[d].path, lm_cp_file[kind]);
        struct lm_cp_job *j = calloc(1, sizeof(*j));
        int r = (path && j) ? checkpoint_format(arrays[d], counts[d], &j->data, &j->len) : -ENOMEM;
        if (r == 0) {
            j->m = m;
            j->dir = d;
            j->kind = kind;
            j->path = path;
            r = wpool_submit(m->pool, lm_cp_work, lm_cp_done, j);
            if (r == 0) {
                m->dirs[d].cp_busy[kind] = true;
                continue;
            }
            free(j->data);
        }
        m->counters.checkpoint_errors++;
        lm_report(m, LOGMGR_EVENT_CHECKPOINT_FAILED, NULL, -1, path ? path : m->dirs[d].path, r,
                  NULL);
        free(path);
        free(j);
    }
    for (size_t d = 0; d < m->ndirs; d++)
        free(arrays[d]);
    goto out;
nomem:
    m->counters.checkpoint_errors++;
    lm_report(m, LOGMGR_EVENT_CHECKPOINT_FAILED, NULL, -1, NULL, -ENOMEM, NULL);
out:
    free(want);
    free(arrays);
    free(counts);
}

/* Blocking: write checkpoint @kind of every dir on this thread (shutdown). */
static int lm_cp_write_sync(struct logmgr *m, int kind)
{
    bool *want = malloc(m->ndirs * sizeof(*want));
    struct checkpoint_entry **arrays = calloc(m->ndirs, sizeof(*arrays));
    size_t *counts = calloc(m->ndirs, sizeof(*counts));
    int first = 0;
    if (!want || !arrays || !counts) {
        first = -ENOMEM;
        goto out;
    }
    for (size_t d = 0; d < m->ndirs; d++)
        want[d] = true;
    first = lm_cp_collect(m, kind, want, arrays, counts);
    if (first < 0)
        goto out;
    for (size_t d = 0; d < m->ndirs; d++) {
        char *path = lm_join(m->dirs[d].path, lm_cp_file[kind]);
        int r = path ? checkpoint_write(path, arrays[d], counts[d]) : -ENOMEM;
        if (r == 0) {
            lm_cp_count_written(m, kind);
        } else {
            m->counters.checkpoint_errors++;
            lm_report(m, LOGMGR_EVENT_CHECKPOINT_FAILED, NULL, -1, path ? path : m->dirs[d].path, r,
                      NULL);
            if (first == 0)
                first = r;
        }
        free(path);
        free(arrays[d]);
    }
out:
    free(want);
    free(arrays);
    free(counts);
    return first;
}

void logmgr_run_recovery_checkpoint(struct logmgr *mgr)
{
    lm_cp_start(mgr, LM_CP_RECOVERY, SIZE_MAX);
}

void logmgr_run_start_offset_checkpoint(struct logmgr *mgr)
{
    lm_cp_start(mgr, LM_CP_START, SIZE_MAX);
}

void logmgr_run_hw_checkpoint(struct logmgr *mgr)
{
    lm_cp_start(mgr, LM_CP_HW, SIZE_MAX);
}

/* ---- flush scheduler and retention ---------------------------------------------- */

void logmgr_run_flush_scheduler(struct logmgr *mgr)
{
    if (mgr->stopping)
        return;
    int64_t now = logmgr_now_ms(mgr);
    for (struct lm_log *e = mgr->head; e; e = e->next) {
        if (e->log && !e->flushing && plog_flush_due(e->log, now))
            lm_flush_start(mgr, e);
    }
}

/* Unlink the ".deleted" files @paths (taken) of @e's log after its
 * file.delete.delay.ms, on the worker pool. */
static void lm_retire_paths(struct logmgr *mgr, struct lm_log *e, char **paths, size_t n)
{
    struct lm_unlink_job *j = calloc(1, sizeof(*j));
    if (j) {
        j->m = mgr;
        j->paths = paths;
        j->count = n;
        int64_t delay = plog_get_config(e->log)->file_delete_delay_ms;
        if (delay > 0 && lm_unlink_delay(mgr, j, delay) == 0)
            return;
        if (wpool_submit(mgr->pool, lm_unlink_work, lm_unlink_done, j) == 0)
            return;
    }
    /* The files keep their ".deleted" names; plog_open() removes them at the
     * next start. */
    mgr->counters.remove_errors++;
    lm_report(mgr, LOGMGR_EVENT_REMOVE_FAILED, e->topic, e->partition, paths[0], -ENOMEM, NULL);
    plog_paths_free(paths, n);
    free(j);
}

void logmgr_run_retention(struct logmgr *mgr)
{
    if (mgr->stopping)
        return;
    int64_t now = logmgr_now_ms(mgr);
    mgr->counters.retention_runs++;
    for (struct lm_log *e = mgr->head; e; e = e->next) {
        if (!e->log)
            continue;
        char **paths = NULL;
        size_t n = 0;
        int r = plog_enforce_retention(e->log, now, &paths, &n);
        if (r < 0) {
            lm_report(mgr, LOGMGR_EVENT_RETENTION_FAILED, e->topic, e->partition, plog_dir(e->log),
                      r, NULL);
            continue;
        }
        if (n == 0) {
            if (paths)
                plog_paths_free(paths, 0);
            continue;
        }
        lm_retire_paths(mgr, e, paths, n);
    }
}

/* ---- the log cleaner ------------------------------------------------------------- */

struct lm_clean_job {
    struct logmgr *m;
    struct lm_log *e; /* one reference */
    struct cleaner_job *job;
    int result;
};

static void lm_clean_work(void *arg)
{
    struct lm_clean_job *c = arg;
    c->result = cleaner_job_run(c->job);
}

static void lm_clean_done(void *arg)
{
    struct lm_clean_job *c = arg;
    struct logmgr *m = c->m;
    struct lm_log *e = c->e;
    struct cleaner_stats st;
    char **paths = NULL;
    size_t n = 0;
    memset(&st, 0, sizeof(st));
    int r = cleaner_job_finish(e->log, c->job, c->result, &paths, &n, &st);
    e->cleaning = false;
    m->cleaner_running--;
    free(c);
    if (r == 0) {
        m->counters.cleans_done++;
        m->counters.cleaner_bytes_read += (uint64_t)st.bytes_read;
        m->counters.cleaner_bytes_written += (uint64_t)st.bytes_written;
        e->first_dirty = st.clean_upto;
        m->cleaner_cp_used = true;
        log_debug("storage",
                  "cleaned %s-%" PRId32 " up to %" PRId64 ": %" PRId64 " -> %" PRId64
                  " bytes, %" PRId64 " of %" PRId64 " records kept, %" PRId64 " keys%s",
                  e->topic, e->partition, st.clean_upto, st.bytes_read, st.bytes_written,
                  st.records_kept, st.records_read, st.map_keys,
                  st.map_full ? " (offset map full: a prefix was cleaned)" : "");
        if (n > 0 && e->log)
            lm_retire_paths(m, e, paths, n);
        else
            plog_paths_free(paths, n);
        lm_cp_start(m, LM_CP_CLEANER, e->dir);
    } else if (r != -ESTALE && r != -ENOENT) {
        m->counters.clean_errors++;
        if (e->log)
            lm_report(m, LOGMGR_EVENT_CLEAN_FAILED, e->topic, e->partition, plog_dir(e->log), r,
                      NULL);
    }
    bool more = r == 0;
    lm_unref(e);
    /* Cleaned something: another log may be due (Kafka's threads back off only
     * when there is nothing to clean). */
    if (more)
        logmgr_run_cleaner(m);
}

void logmgr_run_cleaner(struct logmgr *mgr)
{
    if (mgr->stopping || !mgr->cleaner_enable)
        return;
    int64_t now = logmgr_now_ms(mgr);
    while (mgr->cleaner_running < mgr->cleaner_threads) {
        /* The dirtiest due log; one past max.compaction.lag.ms first. */
        struct lm_log *best = NULL;
        double best_ratio = -1.0;
        for (struct lm_log *e = mgr->head; e; e = e->next) {
            if (!e->log || e->cleaning || !plog_get_config(e->log)->cleanup_compact)
                continue;
            /* A truncation below the checkpoint (a follower) makes the rest dirty. */
            if (e->first_dirty > plog_log_end_offset(e->log))
                e->first_dirty = plog_log_end_offset(e->log);
            struct cleaner_estimate est;
            cleaner_estimate(e->log, e->first_dirty, now, &est);
            if (!cleaner_due(e->log, &est))
                continue;
            double ratio = est.max_lag_due ? 2.0 : est.dirty_ratio;
            if (ratio > best_ratio) {
                best = e;
                best_ratio = ratio;
            }
        }
        if (!best)
            return;
        struct cleaner_job *job = NULL;
        struct lm_clean_job *c = calloc(1, sizeof(*c));
        int r =
            c ? cleaner_prepare(best->log, best->first_dirty, now, mgr->cleaner_dedupe_bytes, &job)
              : -ENOMEM;
        if (r == 0 && !job) {
            free(c);
            return; /* due by estimate, but no whole segment to clean yet */
        }
        if (r == 0) {
            c->m = mgr;
            c->e = best;
            c->job = job;
            r = wpool_submit(mgr->pool, lm_clean_work, lm_clean_done, c);
        }
        if (r < 0) {
            cleaner_job_free(job);
            free(c);
            mgr->counters.clean_errors++;
            lm_report(mgr, LOGMGR_EVENT_CLEAN_FAILED, best->topic, best->partition,
                      plog_dir(best->log), r, NULL);
            return;
        }
        best->refs++;
        best->cleaning = true;
        mgr->cleaner_running++;
        mgr->counters.cleans_started++;
    }
}

/* ---- timers ---------------------------------------------------------------------- */

static void lm_flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    logmgr_run_flush_scheduler(arg);
}

static void lm_recovery_cp_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    logmgr_run_recovery_checkpoint(arg);
}

static void lm_start_cp_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    logmgr_run_start_offset_checkpoint(arg);
}

static void lm_retention_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    logmgr_run_retention(arg);
}

static void lm_hw_cp_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    logmgr_run_hw_checkpoint(arg);
}

static void lm_cleaner_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    logmgr_run_cleaner(arg);
}

static const event_callback_fn lm_timer_cbs[LM_TIMERS] = {
    [LM_TIMER_FLUSH] = lm_flush_timer_cb,       [LM_TIMER_RECOVERY_CP] = lm_recovery_cp_timer_cb,
    [LM_TIMER_START_CP] = lm_start_cp_timer_cb, [LM_TIMER_RETENTION] = lm_retention_timer_cb,
    [LM_TIMER_HW_CP] = lm_hw_cp_timer_cb,       [LM_TIMER_CLEANER] = lm_cleaner_timer_cb,
};

static int lm_timers_start(struct logmgr *m)
{
    for (int i = 0; i < LM_TIMERS; i++) {
        int64_t ms = m->intervals[i];
        if (ms <= 0 || ms > LOGMGR_TIMER_MAX_MS)
            continue;
        m->timers[i] = event_new(m->base, -1, EV_PERSIST, lm_timer_cbs[i], m);
        if (!m->timers[i])
            return -ENOMEM;
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)(ms % 1000) * 1000};
        if (event_add(m->timers[i], &tv) < 0)
            return -ENOMEM;
    }
    return 0;
}

static void lm_timers_stop(struct logmgr *m)
{
    for (int i = 0; i < LM_TIMERS; i++) {
        if (m->timers[i]) {
            event_free(m->timers[i]);
            m->timers[i] = NULL;
        }
    }
}

/* ---- start-up ----------------------------------------------------------------------- */

static int lm_cp_entry_cmp(const void *a, const void *b)
{
    const struct checkpoint_entry *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return 0;
}

/* The offset checkpointed for a log, or @dflt. A topic-partition listed twice (never
 * written so, but possible in a hand-edited file) gets its smallest offset: for a
 * recovery point that is the safe choice. */
static int64_t lm_cp_lookup(const struct checkpoint_entry *sorted, size_t n, const char *topic,
                            int32_t partition, int64_t dflt)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(sorted[mid].topic, topic);
        if (c == 0)
            c = sorted[mid].partition < partition ? -1 : sorted[mid].partition > partition;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && sorted[lo].partition == partition && strcmp(sorted[lo].topic, topic) == 0)
        return sorted[lo].offset;
    return dflt;
}

struct lm_cp_table {
    struct checkpoint_entry *entries;
    size_t count;
};

static int lm_cp_load(struct logmgr *m, const char *dir, int kind, struct lm_cp_table *t,
                      struct logmgr_open_stats *st)
{
    t->entries = NULL;
    t->count = 0;
    char *path = lm_join(dir, lm_cp_file[kind]);
    if (!path)
        return -ENOMEM;
    int r = checkpoint_read(path, &t->entries, &t->count);
    if (r == -ENOENT) {
        st->checkpoints_missing++;
        r = 0;
    } else if (r == -EBADMSG || r == -EFBIG) {
        st->checkpoints_corrupt++;
        lm_report(m, LOGMGR_EVENT_CHECKPOINT_CORRUPT, NULL, -1, path, r, NULL);
        r = 0;
    } else if (r < 0) {
        lm_report(m, LOGMGR_EVENT_OPEN_FAILED, NULL, -1, path, r, NULL);
    } else if (t->count > 1) {
        qsort(t->entries, t->count, sizeof(*t->entries), lm_cp_entry_cmp);
    }
    free(path);
    return r;
}

static int lm_lock_dir(struct logmgr *m, struct lm_dir *d)
{
    char *path = lm_join(d->path, LM_LOCK_FILE);
    if (!path)
        return -ENOMEM;
    int r = 0;
    int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
    } else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(fd);
    } else {
        d->lock_fd = fd;
    }
    if (r < 0)
        lm_report(m, LOGMGR_EVENT_OPEN_FAILED, NULL, -1, path, r, NULL);
    free(path);
    return r;
}

static int lm_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the log directories in @dir, sorted; stale delete dirs are handed to
 * the pool and other entries reported. */
static int lm_scan_dir(struct logmgr *m, struct lm_dir *d, char ***ret_names, size_t *ret_count,
                       struct logmgr_open_stats *st)
{
    /* Checkpoint temps of a process that crashed mid-write. */
    int stale = fsutil_remove_stale_temps(d->path);
    if (stale > 0)
        log_info("logmgr", "%s: removed %d temporary file(s) left by an earlier process", d->path,
                 stale);
    DIR *dh = opendir(d->path);
    if (!dh) {
        int r = -errno;
        lm_report(m, LOGMGR_EVENT_OPEN_FAILED, NULL, -1, d->path, r, NULL);
        return r;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(dh))) {
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        bool is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat sb;
            is_dir = fstatat(dirfd(dh), name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
        }
        if (!is_dir)
            continue; /* checkpoints, .lock, meta.properties, ... */
        if (lm_is_delete_dir(name)) {
            st->stale_delete_dirs++;
            char *path = lm_join(d->path, name);
            if (!path) {
                r = -ENOMEM;
                break;
            }
            lm_report(m, LOGMGR_EVENT_STALE_DELETE_DIR, NULL, -1, path, 0, NULL);
            lm_rmtree_submit(m, path, NULL, NULL, -1);
            continue;
        }
        if (lm_is_renamed_dir(name, LM_STRAY_SUFFIX)) {
            /* Set aside by an earlier run: kept, never opened, for the operator
             * (docs/operations.md). */
            st->stray_dirs++;
            char *path = lm_join(d->path, name);
            lm_report(m, LOGMGR_EVENT_STRAY_DIR, NULL, -1, path ? path : name, 0, NULL);
            free(path);
            continue;
        }
        size_t tlen;
        int32_t partition;
        if (logmgr_parse_dir_name(name, &tlen, &partition) < 0) {
            st->ignored_entries++;
            char *path = lm_join(d->path, name);
            lm_report(m, LOGMGR_EVENT_IGNORED_ENTRY, NULL, -1, path ? path : name, 0, NULL);
            free(path);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) {
                r = -ENOMEM;
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(name))) {
            r = -ENOMEM;
            break;
        }
        n++;
    }
    if (r == 0 && errno != 0) {
        r = -errno;
        lm_report(m, LOGMGR_EVENT_OPEN_FAILED, NULL, -1, d->path, r, NULL);
    }
    closedir(dh);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return r;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), lm_name_cmp);
    *ret_names = names;
    *ret_count = n;
    return 0;
}

static void lm_stats_add(struct logmgr_open_stats *st, const struct plog_recovery_info *ri)
{
    st->logs++;
    st->segments += ri->segments;
    st->segments_scanned += ri->segments_scanned;
    st->indexes_rebuilt += ri->indexes_rebuilt;
    if (ri->truncated_bytes > 0 || ri->segments_deleted > 0)
        st->logs_truncated++;
    st->truncated_bytes += ri->truncated_bytes;
    st->segments_deleted += ri->segments_deleted;
    st->stray_files_removed += ri->stray_files_removed;
}

static int lm_open_log(struct logmgr *m, size_t di, const char *name, size_t tlen,
                       int32_t partition, const struct lm_cp_table *cps, int64_t now,
                       struct logmgr_open_stats *st)
{
    struct lm_dir *d = &m->dirs[di];
    char *path = lm_join(d->path, name);
    char *topic = strndup(name, tlen);
    int r;
    if (!path || !topic) {
        r = -ENOMEM;
        goto fail;
    }
    if (lm_find(m, topic, partition)) {
        r = -EEXIST;
        lm_report(m, LOGMGR_EVENT_OPEN_FAILED, topic, partition, path, r, NULL);
        goto fail;
    }
    int64_t rp =
        lm_cp_lookup(cps[LM_CP_RECOVERY].entries, cps[LM_CP_RECOVERY].count, topic, partition, 0);
    int64_t so =
        lm_cp_lookup(cps[LM_CP_START].entries, cps[LM_CP_START].count, topic, partition, -1);
    struct plog *log;
    struct plog_recovery_info info;
    memset(&info, 0, sizeof(info));
    struct plog_config cfg = m->log_config;
    if (m->startup_retention_off) {
        cfg.retention_ms = -1;
        cfg.retention_bytes = -1;
    }
    r = plog_open(path, &cfg, m->fc, rp, so, now, &log, &info);
    if (r < 0) {
        lm_report(m, LOGMGR_EVENT_OPEN_FAILED, topic, partition, path, r, NULL);
        goto fail;
    }
    /* Kafka: a restarted replica starts its HW from the checkpoint, bounded by
     * its log (plog clamps); without one it stays at the log start. */
    int64_t hw = lm_cp_lookup(cps[LM_CP_HW].entries, cps[LM_CP_HW].count, topic, partition, -1);
    if (hw >= 0)
        plog_set_high_watermark(log, hw);
    int64_t clean =
        lm_cp_lookup(cps[LM_CP_CLEANER].entries, cps[LM_CP_CLEANER].count, topic, partition, -1);
    struct lm_log *e;
    r = lm_insert(m, topic, partition, di, log, &e);
    if (r < 0) {
        plog_close(log);
        goto fail;
    }
    e->parent_synced = true;
    e->first_dirty = clean;
    e->recovery = info;
    /* No or a malformed partition.metadata (a log from before topic ids, or a
     * crash before the new log's first flush): the topic id is unknown, and the
     * broker decides what the log is (logmgr_set_topic_id()). */
    e->has_topic_id = metaprops_part_read(path, e->topic_id) == 0;
    lm_stats_add(st, &info);
    lm_report(m, LOGMGR_EVENT_LOG_OPENED, e->topic, partition, path, 0, &e->recovery);
    free(path);
    return 0;
fail:
    free(path);
    free(topic);
    return r;
}

static int lm_open_dir(struct logmgr *m, size_t di, int64_t now, struct logmgr_open_stats *st)
{
    struct lm_dir *d = &m->dirs[di];
    int r = fsutil_mkdirs(d->path, 0755);
    if (r < 0) {
        lm_report(m, LOGMGR_EVENT_OPEN_FAILED, NULL, -1, d->path, r, NULL);
        return r;
    }
    r = lm_lock_dir(m, d);
    if (r < 0)
        return r;

    struct lm_cp_table cps[LM_CP_KINDS] = {{0}};
    char **names = NULL;
    size_t n = 0;
    for (int k = 0; k < LM_CP_KINDS && r == 0; k++) {
        /* The cleaner's file exists only where a log was compacted: its absence
         * is not a missing checkpoint. */
        struct logmgr_open_stats ignore;
        memset(&ignore, 0, sizeof(ignore));
        r = lm_cp_load(m, d->path, k, &cps[k], k == LM_CP_CLEANER ? &ignore : st);
        if (k == LM_CP_CLEANER && cps[k].count > 0)
            m->cleaner_cp_used = true;
    }
    if (r == 0)
        r = lm_scan_dir(m, d, &names, &n, st);
    for (size_t i = 0; i < n; i++) {
        size_t tlen;
        int32_t partition;
        if (r == 0 && logmgr_parse_dir_name(names[i], &tlen, &partition) == 0)
            r = lm_open_log(m, di, names[i], tlen, partition, cps, now, st);
        free(names[i]);
    }
    free(names);
    for (int k = 0; k < LM_CP_KINDS; k++)
        checkpoint_entries_free(cps[k].entries, cps[k].count);
    return r;
}

int logmgr_new(struct event_base *base, struct wpool *pool, const struct logmgr_options *opts,
               struct logmgr **ret, struct logmgr_open_stats *ret_stats)
{
    if (!base || !pool || !opts || !opts->dirs || opts->ndirs == 0)
        return -EINVAL;
    for (size_t i = 0; i < opts->ndirs; i++) {
        if (!opts->dirs[i] || !opts->dirs[i][0])
            return -EINVAL;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(opts->dirs[i], opts->dirs[k]) == 0)
                return -EINVAL;
        }
    }
    int64_t t0 = clock_mono_ms();
    struct logmgr *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->base = base;
    m->pool = pool;
    m->log_config = opts->log_config;
    m->startup_retention_off = opts->startup_retention_off;
    m->intervals[LM_TIMER_FLUSH] = opts->flush_scheduler_interval_ms;
    m->intervals[LM_TIMER_RECOVERY_CP] = opts->recovery_checkpoint_interval_ms;
    m->intervals[LM_TIMER_START_CP] = opts->start_offset_checkpoint_interval_ms;
    m->intervals[LM_TIMER_RETENTION] = opts->retention_check_interval_ms;
    m->intervals[LM_TIMER_HW_CP] = opts->hw_checkpoint_interval_ms;
    m->cleaner_enable = opts->cleaner_enable;
    m->cleaner_threads = opts->cleaner_threads > 0 ? opts->cleaner_threads : 1;
    m->cleaner_dedupe_bytes = opts->cleaner_dedupe_buffer_size / m->cleaner_threads;
    /* Kafka's cleaner threads poll every log.cleaner.backoff.ms when idle. */
    m->intervals[LM_TIMER_CLEANER] = opts->cleaner_enable ? opts->cleaner_backoff_ms : 0;
    m->now_fn = opts->now_ms;
    m->now_arg = opts->now_arg;
    m->on_event = opts->on_event;
    m->event_arg = opts->event_arg;

    int r = -ENOMEM;
    m->dirs = calloc(opts->ndirs, sizeof(*m->dirs));
    if (!m->dirs)
        goto fail;
    m->ndirs = opts->ndirs;
    for (size_t i = 0; i < m->ndirs; i++)
        m->dirs[i].lock_fd = -1;
    for (size_t i = 0; i < m->ndirs; i++) {
        if (!(m->dirs[i].path = strdup(opts->dirs[i])))
            goto fail;
    }
    r = lm_table_grow(m);
    if (r < 0)
        goto fail;
    int max_open =
        opts->max_open_files > 0 ? opts->max_open_files : logmgr_default_max_open_files();
    r = fdcache_new(max_open, &m->fc);
    if (r < 0)
        goto fail;

    struct logmgr_open_stats st;
    memset(&st, 0, sizeof(st));
    st.dirs = (int32_t)m->ndirs;
    int64_t now = logmgr_now_ms(m);
    for (size_t i = 0; i < m->ndirs; i++) {
        r = lm_open_dir(m, i, now, &st);
        if (r < 0)
            goto fail;
    }
    r = lm_timers_start(m);
    if (r < 0)
        goto fail;
    st.elapsed_ms = clock_mono_ms() - t0;
    if (ret_stats)
        *ret_stats = st;
    *ret = m;
    return 0;
fail:
    logmgr_free(m);
    return r;
}

/* Close every log without flushing and empty the table. Background jobs must have
 * completed (wpool_drain), so the table holds the last reference of each entry. */
static void lm_close_all(struct logmgr *m)
{
    while (m->head) {
        struct lm_log *e = m->head;
        if (e->log) {
            lm_ptr_remove(m, e);
            plog_close(e->log);
            e->log = NULL;
        }
        lm_remove(m, e);
    }
}

int logmgr_shutdown(struct logmgr *mgr)
{
    if (mgr->shut_down)
        return 0;
    mgr->stopping = true;
    lm_timers_stop(mgr);
    lm_delayed_drop(mgr);
    wpool_drain(mgr->pool);

    int first = 0;
    for (struct lm_log *e = mgr->head; e; e = e->next) {
        int r = plog_flush_sync(e->log);
        if (r == 0 && !e->parent_synced)
            r = lm_sync_new_log(mgr->dirs[e->dir].path, plog_dir(e->log));
        if (r < 0) {
            mgr->counters.flush_errors++;
            lm_report(mgr, LOGMGR_EVENT_FLUSH_FAILED, e->topic, e->partition, plog_dir(e->log), r,
                      NULL);
            if (first == 0)
                first = r;
            continue;
        }
        e->parent_synced = true;
    }
    /* A log whose flush failed kept its old recovery point, so the checkpoints
     * written now are still truthful. */
    for (int k = 0; k < LM_CP_KINDS; k++) {
        if (k == LM_CP_CLEANER && !mgr->cleaner_cp_used)
            continue;
        int r = lm_cp_write_sync(mgr, k);
        if (r < 0 && first == 0)
            first = r;
    }
    lm_close_all(mgr);
    mgr->shut_down = true;
    return first;
}

void logmgr_free(struct logmgr *mgr)
{
    if (!mgr)
        return;
    mgr->stopping = true;
    lm_timers_stop(mgr);
    lm_delayed_drop(mgr);
    if (mgr->pool)
        wpool_drain(mgr->pool);
    if (mgr->by_name)
        lm_close_all(mgr);
    free(mgr->by_name);
    free(mgr->by_ptr);
    for (size_t i = 0; i < mgr->ndirs; i++) {
        if (mgr->dirs[i].lock_fd >= 0)
            close(mgr->dirs[i].lock_fd);
        free(mgr->dirs[i].path);
    }
    free(mgr->dirs);
    fdcache_free(mgr->fc);
    free(mgr);
}

/* ---- logs ------------------------------------------------------------------------- */

const struct plog_config *logmgr_default_config(const struct logmgr *mgr)
{
    return &mgr->log_config;
}

struct plog *logmgr_get(struct logmgr *mgr, const char *topic, int32_t partition)
{
    struct lm_log *e = lm_find(mgr, topic, partition);
    return e ? e->log : NULL;
}

/* The dir a new log goes to: the one holding the fewest logs, counting those of
 * batches in flight (first dir on ties). */
static size_t lm_pick_dir(const struct logmgr *m)
{
    size_t di = 0;
    for (size_t i = 1; i < m->ndirs; i++) {
        if (m->dirs[i].nlogs + m->dirs[i].npending < m->dirs[di].nlogs + m->dirs[di].npending)
            di = i;
    }
    return di;
}

int logmgr_create(struct logmgr *mgr, const char *topic, int32_t partition, const uint8_t *topic_id,
                  const struct plog_config *cfg, struct plog **ret)
{
    if (mgr->shut_down || mgr->stopping)
        return -ESHUTDOWN;
    if (!topic || !checkpoint_topic_valid(topic, strlen(topic)) || partition < 0)
        return -EINVAL;
    if (lm_find(mgr, topic, partition))
        return -EEXIST;
    size_t di = lm_pick_dir(mgr);
    char name[LM_NAME_MAX + 32];
    snprintf(name, sizeof(name), "%s-%" PRId32, topic, partition);
    char *path = lm_join(mgr->dirs[di].path, name);
    char *tcopy = strdup(topic);
    int r = -ENOMEM;
    if (!path || !tcopy)
        goto out;
    bool made = mkdir(path, 0755) == 0;
    if (!made && errno != EEXIST) {
        r = -errno;
        goto out;
    }
    /* Written before the log exists, so a log never lacks it; made durable with
     * the directory by the log's first flush (lm_sync_new_log). */
    if (topic_id && (r = metaprops_part_write(path, topic_id, false)) < 0) {
        if (made)
            rmdir(path);
        goto out;
    }
    struct plog *log;
    struct plog_recovery_info info;
    memset(&info, 0, sizeof(info));
    r = plog_open(path, cfg ? cfg : &mgr->log_config, mgr->fc, 0, -1, logmgr_now_ms(mgr), &log,
                  &info);
    if (r < 0) {
        if (made) {
            char pm[4200];
            snprintf(pm, sizeof(pm), "%s/%s", path, METAPROPS_PART_FILE);
            unlink(pm);
            rmdir(path); /* best effort: only succeeds while still empty */
        }
        goto out;
    }
    struct lm_log *e;
    r = lm_insert(mgr, tcopy, partition, di, log, &e);
    if (r < 0) {
        plog_close(log);
        goto out;
    }
    tcopy = NULL;
    e->recovery = info;
    if (topic_id) {
        e->has_topic_id = true;
        memcpy(e->topic_id, topic_id, METAPROPS_UUID_LEN);
    }
    /* The new directory's entry in the log dir is fsynced by the log's first flush,
     * before its recovery point can move. */
    e->parent_synced = false;
    mgr->counters.logs_created++;
    *ret = log;
out:
    free(path);
    free(tcopy);
    return r;
}

struct lm_batch_job {
    struct logmgr *m;
    struct logmgr_new_log *logs;
    size_t n;
    size_t *dir;  /* per log: the dir it was placed in */
    char **path;  /* per log: its directory, NULL when the name is not legal */
    bool *made;   /* per log: the worker created the directory */
    logmgr_batch_fn done;
    void *ud;
};

/* Worker: the directory, partition.metadata and empty first-segment files of
 * each log, so that plog_open() on the loop only opens files. An existing
 * directory is left alone (plog_open() or -EEXIST decides on the loop). */
static void lm_batch_work(void *arg)
{
    struct lm_batch_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        struct logmgr_new_log *l = &j->logs[i];
        l->result = 0;
        if (!j->path[i]) {
            l->result = -EINVAL;
            continue;
        }
        if (mkdir(j->path[i], 0755) < 0) {
            l->result = errno == EEXIST ? 0 : -errno;
            continue;
        }
        j->made[i] = true;
        if (l->has_topic_id && (l->result = metaprops_part_write(j->path[i], l->topic_id, false)) < 0)
            continue;
        char f[4200];
        for (int k = 0; k < SEG_KINDS && l->result == 0; k++) {
            snprintf(f, sizeof(f), "%s/%020d%s", j->path[i], 0, seg_suffix[k]);
            int fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd < 0)
                l->result = -errno;
            else
                close(fd);
        }
    }
}

/* Best effort: what the worker made for a log that will not be opened. */
static void lm_batch_undo(const char *path)
{
    char f[4200];
    for (int k = 0; k < SEG_KINDS; k++) {
        snprintf(f, sizeof(f), "%s/%020d%s", path, 0, seg_suffix[k]);
        unlink(f);
    }
    snprintf(f, sizeof(f), "%s/%s", path, METAPROPS_PART_FILE);
    unlink(f);
    rmdir(path);
}

static void lm_batch_done(void *arg)
{
    struct lm_batch_job *j = arg;
    struct logmgr *m = j->m;
    for (size_t i = 0; i < j->n; i++) {
        struct logmgr_new_log *l = &j->logs[i];
        m->dirs[j->dir[i]].npending--;
        if (l->result == 0 && (m->shut_down || m->stopping))
            l->result = -ESHUTDOWN;
        if (l->result == 0 && lm_find(m, l->topic, l->partition))
            l->result = -EEXIST;
        char *tcopy = NULL;
        struct plog *log = NULL;
        struct plog_recovery_info info;
        memset(&info, 0, sizeof(info));
        if (l->result == 0 && !(tcopy = strdup(l->topic)))
            l->result = -ENOMEM;
        if (l->result == 0)
            l->result = plog_open(j->path[i], &l->cfg, m->fc, 0, -1, logmgr_now_ms(m), &log, &info);
        struct lm_log *e;
        if (l->result == 0 && (l->result = lm_insert(m, tcopy, l->partition, j->dir[i], log, &e)) < 0)
            plog_close(log);
        if (l->result == 0) {
            tcopy = NULL;
            e->recovery = info;
            e->has_topic_id = l->has_topic_id;
            memcpy(e->topic_id, l->topic_id, METAPROPS_UUID_LEN);
            e->parent_synced = false; /* fsynced by the first flush, as logmgr_create() */
            m->counters.logs_created++;
        } else if (j->made[i] && l->result != -ESHUTDOWN) {
            lm_batch_undo(j->path[i]);
        }
        free(tcopy);
    }
    j->done(j->ud, j->logs, j->n);
    for (size_t i = 0; i < j->n; i++)
        free(j->path[i]);
    free(j->path);
    free(j->dir);
    free(j->made);
    free(j);
}

int logmgr_create_batch(struct logmgr *mgr, struct logmgr_new_log *logs, size_t n,
                        logmgr_batch_fn done, void *ud)
{
    if (mgr->shut_down || mgr->stopping)
        return -ESHUTDOWN;
    struct lm_batch_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    size_t placed = 0; /* logs counted in a dir's npending so far */
    j->m = mgr;
    j->logs = logs;
    j->n = n;
    j->done = done;
    j->ud = ud;
    j->dir = calloc(n ? n : 1, sizeof(*j->dir));
    j->path = calloc(n ? n : 1, sizeof(*j->path));
    j->made = calloc(n ? n : 1, sizeof(*j->made));
    if (!j->dir || !j->path || !j->made)
        goto oom;
    for (; placed < n; placed++) {
        size_t i = placed;
        const char *t = logs[i].topic;
        j->dir[i] = lm_pick_dir(mgr);
        if (t && checkpoint_topic_valid(t, strlen(t)) && logs[i].partition >= 0) {
            char name[LM_NAME_MAX + 32];
            snprintf(name, sizeof(name), "%s-%" PRId32, t, logs[i].partition);
            if (!(j->path[i] = lm_join(mgr->dirs[j->dir[i]].path, name)))
                goto oom;
        } /* else path stays NULL: -EINVAL */
        mgr->dirs[j->dir[i]].npending++; /* lm_batch_done decrements every log */
    }
    if (wpool_submit(mgr->pool, lm_batch_work, lm_batch_done, j) < 0)
        goto oom;
    return 0;
oom:
    for (size_t i = 0; j->path && i < n; i++) {
        if (i < placed)
            mgr->dirs[j->dir[i]].npending--;
        free(j->path[i]);
    }
    free(j->path);
    free(j->dir);
    free(j->made);
    free(j);
    return -ENOMEM;
}

int logmgr_delete(struct logmgr *mgr, const char *topic, int32_t partition)
{
    if (mgr->shut_down || mgr->stopping)
        return -ESHUTDOWN;
    struct lm_log *e = lm_find(mgr, topic, partition);
    if (!e || !e->log)
        return -ENOENT;
    struct lm_dir *d = &mgr->dirs[e->dir];
    size_t di = e->dir;
    char name[LM_NAME_MAX + 32];
    char *old = strdup(plog_dir(e->log));
    lm_delete_name(topic, partition, name, sizeof(name));
    char *newpath = lm_join(d->path, name);
    char *tcopy = strdup(topic);
    if (!old || !newpath || !tcopy) {
        free(old);
        free(newpath);
        free(tcopy);
        return -ENOMEM;
    }
    struct plog_config cfg = *plog_get_config(e->log);
    int64_t rp = plog_recovery_point(e->log);
    int64_t so = plog_log_start_offset(e->log);

    /* Close first: the log may still reach its files by path (pending index
     * entries are written on close). */
    lm_ptr_remove(mgr, e);
    plog_close(e->log);
    e->log = NULL;
    if (rename(old, newpath) < 0) {
        int r = -errno;
        struct plog *log;
        if (plog_open(old, &cfg, mgr->fc, rp, so, logmgr_now_ms(mgr), &log, NULL) == 0) {
            e->log = log;
            lm_ptr_insert(mgr, e);
        } else {
            lm_remove(mgr, e);
        }
        free(old);
        free(newpath);
        free(tcopy);
        return r;
    }
    free(old);
    lm_remove(mgr, e);
    lm_rmtree_submit(mgr, newpath, d->path, tcopy, partition);
    /* Drop the log from the dir's checkpoints soon, so a new log of the same name
     * is not recovered from this one's recovery point. */
    lm_cp_start(mgr, LM_CP_RECOVERY, di);
    lm_cp_start(mgr, LM_CP_START, di);
    return 0;
}

struct lm_dirsync_job {
    struct logmgr *m;
    const char *dir; /* borrowed: the manager's dir path */
    int result;
};

static void lm_dirsync_work(void *arg)
{
    struct lm_dirsync_job *j = arg;
    j->result = fsutil_fsync_dir(j->dir);
}

static void lm_dirsync_done(void *arg)
{
    struct lm_dirsync_job *j = arg;
    if (j->result < 0) {
        j->m->counters.remove_errors++;
        lm_report(j->m, LOGMGR_EVENT_REMOVE_FAILED, NULL, -1, j->dir, j->result, NULL);
    }
    free(j);
}

int logmgr_set_aside(struct logmgr *mgr, const char *topic, int32_t partition, char *ret_path,
                     size_t len)
{
    if (mgr->shut_down || mgr->stopping)
        return -ESHUTDOWN;
    struct lm_log *e = lm_find(mgr, topic, partition);
    if (!e || !e->log)
        return -ENOENT;
    struct lm_dir *d = &mgr->dirs[e->dir];
    size_t di = e->dir;
    char name[LM_NAME_MAX + 32];
    lm_renamed_name(topic, partition, LM_STRAY_SUFFIX, name, sizeof(name));
    char *old = strdup(plog_dir(e->log));
    char *newpath = lm_join(d->path, name);
    if (!old || !newpath) {
        free(old);
        free(newpath);
        return -ENOMEM;
    }
    struct plog_config cfg = *plog_get_config(e->log);
    int64_t rp = plog_recovery_point(e->log);
    int64_t so = plog_log_start_offset(e->log);
    /* Closed first, as for a deletion: pending index entries reach the files. */
    lm_ptr_remove(mgr, e);
    plog_close(e->log);
    e->log = NULL;
    int r = 0;
    if (rename(old, newpath) < 0) {
        r = -errno;
        struct plog *log;
        if (plog_open(old, &cfg, mgr->fc, rp, so, logmgr_now_ms(mgr), &log, NULL) == 0) {
            e->log = log;
            lm_ptr_insert(mgr, e);
        } else {
            lm_remove(mgr, e);
        }
    } else {
        lm_remove(mgr, e);
        if (ret_path && len > 0)
            snprintf(ret_path, len, "%s", newpath);
        /* The rename made durable off the loop; were it lost in a crash, the next
         * start would find the log again and set it aside again. */
        struct lm_dirsync_job *j = calloc(1, sizeof(*j));
        if (j) {
            j->m = mgr;
            j->dir = d->path;
            if (wpool_submit(mgr->pool, lm_dirsync_work, lm_dirsync_done, j) < 0)
                free(j);
        }
        lm_cp_start(mgr, LM_CP_RECOVERY, di);
        lm_cp_start(mgr, LM_CP_START, di);
    }
    free(old);
    free(newpath);
    return r;
}

int logmgr_topic_id(const struct logmgr *mgr, const char *topic, int32_t partition,
                    uint8_t ret[METAPROPS_UUID_LEN])
{
    const struct lm_log *e = lm_find(mgr, topic, partition);
    if (!e || !e->log)
        return -ENOENT;
    if (!e->has_topic_id)
        return -ENODATA;
    memcpy(ret, e->topic_id, METAPROPS_UUID_LEN);
    return 0;
}

int logmgr_set_topic_id(struct logmgr *mgr, const char *topic, int32_t partition,
                        const uint8_t topic_id[METAPROPS_UUID_LEN])
{
    struct lm_log *e = lm_find(mgr, topic, partition);
    if (!e || !e->log)
        return -ENOENT;
    int r = metaprops_part_write(plog_dir(e->log), topic_id, false);
    if (r < 0)
        return r;
    e->has_topic_id = true;
    memcpy(e->topic_id, topic_id, METAPROPS_UUID_LEN);
    /* Durable with the next flush, like a new log's. */
    e->parent_synced = false;
    return 0;
}

int logmgr_after_append(struct logmgr *mgr, struct plog *log, const struct plog_append_info *info)
{
    struct lm_log *e = lm_find_ptr(mgr, log);
    if (!e)
        return -ENOENT;
    if ((info && info->rolled) || plog_flush_due(log, logmgr_now_ms(mgr)))
        return lm_flush_start(mgr, e);
    return 0;
}

int logmgr_append(struct logmgr *mgr, struct plog *log, void *data, size_t len, unsigned flags,
                  int32_t leader_epoch, struct plog_append_info *ret_info)
{
    struct plog_append_info info;
    int r = plog_append(log, data, len, flags, leader_epoch, logmgr_now_ms(mgr), &info);
    if (r < 0)
        return r;
    /* The append itself succeeded; a failure to start a flush is reported through
     * the event callback and retried by the next append or the scheduler. */
    logmgr_after_append(mgr, log, &info);
    if (ret_info)
        *ret_info = info;
    return 0;
}

int logmgr_flush_async(struct logmgr *mgr, struct plog *log)
{
    struct lm_log *e = lm_find_ptr(mgr, log);
    if (!e)
        return -ENOENT;
    return lm_flush_start(mgr, e);
}

int logmgr_recovery_info(const struct logmgr *mgr, const char *topic, int32_t partition,
                         struct plog_recovery_info *ret)
{
    const struct lm_log *e = lm_find(mgr, topic, partition);
    if (!e)
        return -ENOENT;
    *ret = e->recovery;
    return 0;
}

size_t logmgr_count(const struct logmgr *mgr)
{
    return mgr->count;
}

void logmgr_foreach(struct logmgr *mgr, logmgr_visit_fn fn, void *arg)
{
    for (struct lm_log *e = mgr->head; e; e = e->next) {
        if (e->log)
            fn(arg, e->topic, e->partition, e->log);
    }
}

const char *logmgr_log_dir(const struct logmgr *mgr, const char *topic, int32_t partition)
{
    const struct lm_log *e = lm_find(mgr, topic, partition);
    return e ? mgr->dirs[e->dir].path : NULL;
}

size_t logmgr_dir_log_count(const struct logmgr *mgr, size_t index)
{
    return index < mgr->ndirs ? mgr->dirs[index].nlogs : 0;
}

struct fdcache *logmgr_fdcache(struct logmgr *mgr)
{
    return mgr->fc;
}

void logmgr_get_counters(const struct logmgr *mgr, struct logmgr_counters *ret)
{
    *ret = mgr->counters;
}
