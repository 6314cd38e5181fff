/* pstates: per-log producer states for the leader's produce path, kept in
 * step with the log lazily (see pstates.h). */
#include "broker/replica/pstates.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "broker/replica/pstate.h"
#include "broker/storage/plog.h"
#include "common/batch.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/wpool.h"

#define SCAN_CHUNK      (1 << 20)
/* Log bytes a check may scan before it hands the rest to the loader, and the
 * loader's bytes per turn of the event loop (a few ms of reading each). */
#define SYNC_SCAN_BYTES  (1 << 20)
#define LOAD_SLICE_BYTES (4 << 20)
#define EXPIRE_EVERY_MS 1000
#define SNAPSHOTS_KEPT  2

struct pentry {
    struct plog *log; /* valid while the entry exists (pstates_forget before it
                       * goes); with id, a log allocated later at the same
                       * address is another entry */
    uint64_t id;            /* unique per entry, never reused */
    struct pstate *ps;
    int64_t end;       /* the log end offset the state reflects; -1: none */
    uint32_t tail_crc; /* CRC of the batch ending at end - 1; 0 when end is 0 */
    int64_t last_expire_ms;
    int32_t leader_epoch;       /* the epoch it was last brought up to date at as leader */
    uint32_t truncations;       /* bumped by pstates_truncated: a snapshot job older is stale */
    bool snap_inflight;         /* a snapshot job of this log is on the worker pool */
    bool loading;               /* the loader is scanning [end, log end) in slices */
    bool load_from_snapshot;    /* for the log line when loaded */
    int64_t load_from;
    int64_t load_started_ms; /* monotonic */
    uint64_t load_batches;   /* scanned_batches when the rebuild began */
    struct snap_job *snap_next; /* the newest roll's snapshot, waiting for that job */
};

struct pstates {
    int64_t expiration_ms;
    struct wpool *pool;
    struct event *load_ev; /* the loader's turn: active while an entry is loading */
    size_t sync_scan_bytes, load_slice_bytes;
    int jobs;         /* snapshot jobs whose done has not run */
    uint64_t next_id; /* of the next entry */
    struct pentry *v; /* sorted by log pointer */
    size_t n, cap;
    struct pstates_stats st;
};

/* A snapshot written on the worker pool: encoded on the loop (no I/O),
 * written durably and the old ones pruned on a worker, so the loop never
 * waits for the disk. */
struct snap_job {
    struct pstates *pss;
    const struct plog *log; /* identity only: the log may be gone by done */
    uint64_t entry_id;      /* the entry it was made for (forgotten: none matches) */
    uint32_t truncations;
    int64_t offset;
    uint8_t *buf;
    size_t len;
    int rc;
    char dir[];
};

static void snap_job_free(struct snap_job *j)
{
    if (!j)
        return;
    free(j->buf);
    free(j);
}

static void load_turn(evutil_socket_t fd, short what, void *arg);

int pstates_new(struct event_base *base, int64_t expiration_ms, struct wpool *pool,
                struct pstates **ret)
{
    struct pstates *pss = calloc(1, sizeof(*pss));
    if (!pss)
        return -ENOMEM;
    pss->load_ev = evtimer_new(base, load_turn, pss);
    if (!pss->load_ev) {
        free(pss);
        return -ENOMEM;
    }
    pss->expiration_ms = expiration_ms;
    pss->pool = pool;
    pss->sync_scan_bytes = SYNC_SCAN_BYTES;
    pss->load_slice_bytes = LOAD_SLICE_BYTES;
    *ret = pss;
    return 0;
}

void pstates_set_scan_budget(struct pstates *pss, size_t sync_bytes, size_t slice_bytes)
{
    pss->sync_scan_bytes = sync_bytes;
    pss->load_slice_bytes = slice_bytes;
}

void pstates_free(struct pstates *pss)
{
    if (!pss)
        return;
    /* Snapshot jobs' done functions use the registry. */
    if (pss->jobs > 0)
        wpool_drain(pss->pool);
    for (size_t i = 0; i < pss->n; i++) {
        pstate_free(pss->v[i].ps);
        snap_job_free(pss->v[i].snap_next);
    }
    event_free(pss->load_ev);
    free(pss->v);
    free(pss);
}

void pstates_get_stats(const struct pstates *pss, struct pstates_stats *ret)
{
    *ret = pss->st;
}

static size_t lower(const struct pstates *pss, const struct plog *log)
{
    size_t lo = 0, hi = pss->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)pss->v[mid].log < (uintptr_t)log)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct pentry *find(struct pstates *pss, const struct plog *log)
{
    size_t i = lower(pss, log);
    return i < pss->n && pss->v[i].log == log ? &pss->v[i] : NULL;
}

static struct pentry *add(struct pstates *pss, struct plog *log)
{
    if (pss->n == pss->cap) {
        size_t cap = pss->cap ? pss->cap * 2 : 16;
        struct pentry *v = realloc(pss->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        pss->v = v;
        pss->cap = cap;
    }
    struct pstate *ps;
    if (pstate_new(&ps) < 0)
        return NULL;
    size_t i = lower(pss, log);
    memmove(&pss->v[i + 1], &pss->v[i], (pss->n - i) * sizeof(*pss->v));
    pss->n++;
    struct pentry *e = &pss->v[i];
    memset(e, 0, sizeof(*e));
    e->log = log;
    e->id = ++pss->next_id;
    e->ps = ps;
    e->end = -1;
    e->leader_epoch = -1;
    return e;
}

/* The CRC of the batch of @log ending exactly at @offset - 1 into *ret
 * (0 for offset 0). -ESTALE when no batch ends there (truncated, retained
 * away, or never), -errno on read errors. */
static int tail_crc_at(struct plog *log, int64_t offset, uint32_t *ret)
{
    if (offset == 0) {
        *ret = 0;
        return 0;
    }
    if (offset - 1 < plog_log_start_offset(log) || offset > plog_log_end_offset(log))
        return -ESTALE;
    struct plog_read_result rr;
    int r = plog_read(log, offset - 1, offset, 1, true, &rr);
    if (r < 0)
        return r == -ERANGE ? -ESTALE : r;
    uint8_t hdr[BATCH_HEADER_SIZE];
    struct batch_header h;
    if (rr.length < BATCH_HEADER_SIZE)
        r = -ESTALE;
    if (r == 0)
        r = fsutil_pread_all(seg_file_fd(rr.file), hdr, sizeof(hdr), rr.position);
    if (r == 0 &&
        (batch_parse_header(hdr, sizeof(hdr), &h) != 0 || batch_last_offset(&h) != offset - 1))
        r = -ESTALE;
    seg_file_unref(rr.file);
    if (r == 0)
        *ret = h.crc;
    return r;
}

/* Feed the batches of [@from, log end) to @e's state, reading at most about
 * @budget bytes: 0 when it reached the log end, 1 when it stopped early (e->end
 * and e->tail_crc then say how far it got), -errno. */
static int scan(struct pstates *pss, struct pentry *e, struct plog *log, int64_t from,
                size_t budget)
{
    int64_t end = plog_log_end_offset(log);
    int64_t off = from < plog_log_start_offset(log) ? plog_log_start_offset(log) : from;
    size_t done = 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int r = 0;
    uint32_t tail = e->tail_crc;
    while (off < end) {
        if (done >= budget) {
            free(buf);
            e->end = off;
            e->tail_crc = tail;
            return 1;
        }
        struct plog_read_result rr;
        size_t want = budget - done < SCAN_CHUNK ? budget - done : SCAN_CHUNK;
        r = plog_read(log, off, end, (int32_t)want, true, &rr); /* min one batch */
        if (r < 0)
            break;
        if (rr.length <= 0) {
            seg_file_unref(rr.file);
            break;
        }
        if ((size_t)rr.length > cap) {
            uint8_t *nb = realloc(buf, (size_t)rr.length);
            if (!nb) {
                seg_file_unref(rr.file);
                r = -ENOMEM;
                break;
            }
            buf = nb;
            cap = (size_t)rr.length;
        }
        r = fsutil_pread_all(seg_file_fd(rr.file), buf, (size_t)rr.length, rr.position);
        seg_file_unref(rr.file);
        if (r == 0)
            r = pstate_load(e->ps, buf, (size_t)rr.length);
        if (r < 0)
            break;
        /* The CRC of the last whole batch read. */
        size_t at = 0;
        while ((size_t)rr.length - at >= BATCH_HEADER_SIZE) {
            struct batch_header h;
            if (batch_parse_header(buf + at, (size_t)rr.length - at, &h) != 0 || h.length < 0 ||
                (uint64_t)batch_total_size(&h) > (size_t)rr.length - at)
                break;
            tail = h.crc;
            pss->st.scanned_batches++;
            at += (size_t)batch_total_size(&h);
        }
        if (rr.next_offset <= off) {
            r = -EIO; /* no progress: do not spin */
            break;
        }
        off = rr.next_offset;
        done += (size_t)rr.length;
    }
    free(buf);
    if (r < 0)
        return r;
    e->end = end;
    e->tail_crc = tail;
    return 0;
}

struct snap_check {
    struct plog *log;
};

static bool snap_tail_ok(void *ud, int64_t offset, uint32_t tail_crc)
{
    struct snap_check *c = ud;
    uint32_t crc;
    return tail_crc_at(c->log, offset, &crc) == 0 && crc == tail_crc;
}

/* The loader's next turn, after the loop has polled: a zero timeout, not
 * event_active (which libevent would run again in the same pass, before any
 * socket is read). */
static void schedule_load(struct pstates *pss)
{
    static const struct timeval now = {0, 0};
    if (!evtimer_pending(pss->load_ev, NULL))
        evtimer_add(pss->load_ev, &now);
}

static void start_loading(struct pstates *pss, struct pentry *e)
{
    if (!e->loading) {
        e->loading = true;
        e->load_started_ms = clock_mono_ms();
        pss->st.deferred_loads++;
    }
    schedule_load(pss);
}

/* Bring @e up to date with @log (see the header): 0 when it is, 1 when the
 * rest is left to the loader (e->loading), -errno. At most about
 * sync_scan_bytes of the log are read here; the snapshot file (a few dozen
 * bytes per producer) is read whole. */
static int sync_entry(struct pstates *pss, struct pentry *e, struct plog *log, int32_t leader_epoch)
{
    if (e->loading)
        return 1;
    int64_t end = plog_log_end_offset(log);
    /* Leading at the same epoch since the last check, only this path appended
     * and nothing truncated: the common case costs no I/O. */
    if (e->end >= 0 && e->end == end && e->leader_epoch == leader_epoch)
        return 0;
    e->leader_epoch = leader_epoch;
    uint32_t crc;
    if (e->end >= 0 && e->end <= end && tail_crc_at(log, e->end, &crc) == 0 && crc == e->tail_crc) {
        if (e->end == end)
            return 0;
        int r = scan(pss, e, log, e->end, pss->sync_scan_bytes);
        if (r == 1)
            start_loading(pss, e);
        return r;
    }
    /* Rebuild: the newest snapshot the log still matches, then the rest. */
    pss->st.rebuilds++;
    struct snap_check c = {log};
    int64_t at = -1;
    int r = pstate_snapshot_load(e->ps, plog_dir(log), end, snap_tail_ok, &c, &at);
    if (r < 0)
        return r;
    bool from_snapshot = at >= 0;
    if (at >= 0) {
        pss->st.snapshot_loads++;
        if ((r = tail_crc_at(log, at, &e->tail_crc)) < 0)
            return r;
    } else {
        e->tail_crc = 0;
        at = plog_log_start_offset(log);
        if (at > 0) {
            /* No batch of the state is older than the log start, but the
             * tail check needs a batch boundary: take whatever ends there. */
            if (tail_crc_at(log, at, &e->tail_crc) < 0)
                e->tail_crc = 0;
        }
    }
    e->end = at;
    e->load_from = at;
    e->load_from_snapshot = from_snapshot;
    e->load_batches = pss->st.scanned_batches;
    r = scan(pss, e, log, at, pss->sync_scan_bytes);
    if (r < 0) {
        e->end = -1;
        return r;
    }
    if (r == 1) {
        start_loading(pss, e);
        return 1;
    }
    log_info("pstates",
             "%s: producer state rebuilt from %s %" PRId64 " (%" PRIu64
             " batches read, %zu producers)",
             plog_dir(log), from_snapshot ? "the snapshot at" : "the log from", e->load_from,
             pss->st.scanned_batches - e->load_batches, pstate_count(e->ps));
    return 0;
}

/* The loader: one turn of the event loop scans about load_slice_bytes of the
 * loading entries' logs, then yields (the event is made active again) so that
 * produce, fetch and heartbeats run in between. Appends meanwhile only extend
 * what is left to scan. */
static void load_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pstates *pss = arg;
    size_t budget = pss->load_slice_bytes;
    bool more = false;
    for (size_t i = 0; i < pss->n; i++) {
        struct pentry *e = &pss->v[i];
        if (!e->loading)
            continue;
        if (budget == 0) {
            more = true;
            break;
        }
        int64_t from = e->end;
        int r = scan(pss, e, e->log, from, budget);
        if (r < 0) {
            log_warn("pstates", "%s: loading the producer state failed: %s", plog_dir(e->log),
                     strerror(-r));
            pstate_clear(e->ps);
            e->end = -1;
            e->loading = false;
            continue;
        }
        budget = r == 1 ? 0 : budget / 2; /* a finished one leaves room for the next */
        if (r == 1) {
            more = true;
            continue;
        }
        e->loading = false;
        log_info("pstates",
                 "%s: producer state rebuilt from %s %" PRId64 " (%" PRIu64
                 " batches read, %zu producers) in %" PRId64 " ms, in slices",
                 plog_dir(e->log), e->load_from_snapshot ? "the snapshot at" : "the log from",
                 e->load_from, pss->st.scanned_batches - e->load_batches, pstate_count(e->ps),
                 clock_mono_ms() - e->load_started_ms);
    }
    if (more)
        schedule_load(pss);
}

bool pstates_loading(const struct pstates *pss, const struct plog *log)
{
    size_t i = lower(pss, log);
    return i < pss->n && pss->v[i].log == log && pss->v[i].loading;
}

int16_t pstates_check(struct pstates *pss, struct plog *log, int32_t leader_epoch,
                      const uint8_t *data, size_t len, bool *ret_dup, int64_t *ret_first_offset,
                      int64_t *ret_last_offset)
{
    *ret_dup = false;
    /* Most record sets carry no producer id: one header walk and out. */
    bool any = false;
    for (size_t at = 0; len - at >= BATCH_HEADER_SIZE;) {
        struct batch_header h;
        if (batch_parse_header(data + at, len - at, &h) != 0 || h.length < 0)
            break;
        any |= h.producer_id >= 0;
        at += (size_t)batch_total_size(&h);
        if (at > len)
            break;
    }
    if (!any)
        return KERR_NONE;
    struct pentry *e = find(pss, log);
    if (!e && !(e = add(pss, log)))
        return KERR_KAFKA_STORAGE_ERROR; /* out of memory: refuse rather than risk duplicates */
    int r = sync_entry(pss, e, log, leader_epoch);
    if (r < 0) {
        log_warn("pstates", "%s: rebuilding producer state failed: %s", plog_dir(log),
                 strerror(-r));
        pstate_clear(e->ps);
        e->end = -1;
        return KERR_KAFKA_STORAGE_ERROR;
    }
    if (r == 1) {
        /* Being loaded in slices: nothing appended, a retriable error (the
         * client retries the same sequence after its backoff). */
        pss->st.refused_loading++;
        return KERR_NOT_ENOUGH_REPLICAS;
    }
    int64_t now = clock_wall_ms();
    if (now - e->last_expire_ms >= EXPIRE_EVERY_MS) {
        e->last_expire_ms = now;
        pstate_expire(e->ps, now, pss->expiration_ms);
    }
    /* Each batch in order; a later batch of the same producer in this very
     * request must continue the earlier one. */
    struct batch_header prev = {.producer_id = -1};
    for (size_t at = 0; len - at >= BATCH_HEADER_SIZE;) {
        struct batch_header h;
        if (batch_parse_header(data + at, len - at, &h) != 0 || h.length < 0)
            break;
        at += (size_t)batch_total_size(&h);
        if (h.producer_id < 0)
            continue;
        if (prev.producer_id == h.producer_id) {
            if (h.producer_epoch != prev.producer_epoch ||
                h.base_sequence != pstate_seq_add(prev.base_sequence, prev.last_offset_delta + 1))
                return KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
            prev = h;
            continue;
        }
        bool dup = false;
        struct pstate_batch orig;
        int16_t err = pstate_check(e->ps, &h, &dup, &orig);
        if (err)
            return err;
        if (dup) {
            /* As Kafka: the first duplicate answers for the whole append. */
            *ret_dup = true;
            *ret_first_offset = orig.first_offset;
            *ret_last_offset = orig.last_offset;
            return KERR_NONE;
        }
        prev = h;
    }
    return KERR_NONE;
}

static bool any_producer_id(const uint8_t *data, size_t len)
{
    for (size_t at = 0; len - at >= BATCH_HEADER_SIZE;) {
        struct batch_header h;
        if (batch_parse_header(data + at, len - at, &h) != 0 || h.length < 0)
            return false;
        if (h.producer_id >= 0)
            return true;
        at += (size_t)batch_total_size(&h);
        if (at > len)
            return false;
    }
    return false;
}

static void snap_work(void *arg)
{
    struct snap_job *j = arg;
    j->rc = pstate_snapshot_write_bytes(j->dir, j->offset, j->buf, j->len);
    /* One job per log at a time, so pruning cannot race another write here. */
    if (j->rc == 0)
        pstate_snapshot_retain(j->dir, SNAPSHOTS_KEPT);
}

static void snap_done(void *arg);

/* Queue @j (owned) on the pool. */
static void snap_submit_job(struct pstates *pss, struct pentry *e, struct snap_job *j)
{
    int r = wpool_submit(pss->pool, snap_work, snap_done, j);
    if (r < 0) {
        if (r != -ESHUTDOWN)
            log_warn("pstates", "%s: producer snapshot at %" PRId64 " not written: %s", j->dir,
                     j->offset, strerror(-r));
        snap_job_free(j);
        return;
    }
    pss->jobs++;
    e->snap_inflight = true;
}

static void snap_done(void *arg)
{
    struct snap_job *j = arg;
    struct pstates *pss = j->pss;
    struct pentry *e = find(pss, j->log);
    if (e && e->id != j->entry_id)
        e = NULL; /* forgotten, and another log now has the address */
    pss->jobs--;
    if (j->rc == 0 && e && e->truncations != j->truncations) {
        /* Truncated while the job ran: the snapshot may describe cut batches.
         * (The tail check would reject it too, unless the log regrew the same
         * tail batch.) Small file: unlinked here. */
        pstate_snapshot_delete(j->dir, j->offset);
    } else if (j->rc == 0) {
        pss->st.snapshots_written++;
    } else if (j->rc != -ENOENT) { /* ENOENT: the partition was deleted meanwhile */
        log_warn("pstates", "%s: writing producer snapshot at %" PRId64 " failed: %s", j->dir,
                 j->offset, strerror(-j->rc));
    }
    snap_job_free(j);
    if (!e)
        return;
    e->snap_inflight = false;
    if (e->snap_next) {
        struct snap_job *next = e->snap_next;
        e->snap_next = NULL;
        snap_submit_job(pss, e, next);
    }
}

/* Snapshot @e's state (as of e->end) on the pool; one job per log at a time,
 * a roll meanwhile replaces the one waiting. */
static void snapshot_submit(struct pstates *pss, struct pentry *e, struct plog *log)
{
    const char *dir = plog_dir(log);
    size_t dl = strlen(dir) + 1;
    struct snap_job *j = calloc(1, sizeof(*j) + dl);
    int r = j ? pstate_snapshot_encode(e->ps, e->end, e->tail_crc, &j->buf, &j->len) : -ENOMEM;
    if (r < 0) {
        free(j);
        log_warn("pstates", "%s: producer snapshot at %" PRId64 " not written: %s", dir, e->end,
                 strerror(-r));
        return;
    }
    memcpy(j->dir, dir, dl);
    j->pss = pss;
    j->log = log;
    j->entry_id = e->id;
    j->truncations = e->truncations;
    j->offset = e->end;
    if (e->snap_inflight) {
        /* The disk is behind the rolls: only the newest waiting one is kept. */
        if (e->snap_next)
            pss->st.snapshots_skipped++;
        snap_job_free(e->snap_next);
        e->snap_next = j;
        return;
    }
    snap_submit_job(pss, e, j);
}

/* Record the batches just appended at @e->end (snapshot first when the append
 * rolled a segment: the state then is the state as of the new segment's base). */
static void apply(struct pstates *pss, struct pentry *e, struct plog *log, const uint8_t *data,
                  size_t len, const struct plog_append_info *info)
{
    if (info->rolled && info->first_offset > 0)
        snapshot_submit(pss, e, log);
    uint32_t tail = e->tail_crc;
    for (size_t at = 0; len - at >= BATCH_HEADER_SIZE;) {
        struct batch_header h;
        if (batch_parse_header(data + at, len - at, &h) != 0 || h.length < 0)
            break;
        if (pstate_update(e->ps, &h) < 0) {
            e->end = -1;
            return;
        }
        tail = h.crc;
        at += (size_t)batch_total_size(&h);
    }
    e->end = info->last_offset + 1;
    e->tail_crc = tail;
}

void pstates_appended(struct pstates *pss, struct plog *log, const uint8_t *data, size_t len,
                      const struct plog_append_info *info)
{
    struct pentry *e = find(pss, log);
    if (!e)
        return; /* no idempotent producer here yet: a later rebuild reads the log */
    if (e->end != info->first_offset)
        return; /* behind: the next check catches up from e->end */
    apply(pss, e, log, data, len, info);
}

void pstates_followed(struct pstates *pss, struct plog *log, const uint8_t *data, size_t len,
                      const struct plog_append_info *info)
{
    struct pentry *e = find(pss, log);
    if (e && e->end == info->first_offset) {
        apply(pss, e, log, data, len, info); /* the common case: no I/O but a roll's snapshot */
        return;
    }
    if (!e) {
        /* Logs without idempotent producers cost nothing. */
        if (!any_producer_id(data, len))
            return;
        if (!(e = add(pss, log))) {
            log_warn("pstates", "%s: out of memory for the producer state", plog_dir(log));
            return; /* the first produce as leader rebuilds */
        }
    }
    /* New here (first idempotent batch since start) or out of step: catch up
     * from the log, which already holds these bytes. */
    int r = sync_entry(pss, e, log, -1);
    if (r < 0) {
        log_warn("pstates", "%s: following the producer state failed: %s", plog_dir(log),
                 strerror(-r));
        pstate_clear(e->ps);
        e->end = -1;
    }
}

void pstates_truncated(struct pstates *pss, struct plog *log)
{
    struct pentry *e = find(pss, log);
    int64_t end = plog_log_end_offset(log);
    /* Snapshots above the new end describe batches that are gone; the tail
     * CRC would also reject them, but only once the log grew past them. */
    int d = pstate_snapshot_delete_above(plog_dir(log), end);
    if (d < 0 && d != -ENOENT)
        log_warn("pstates", "%s: deleting producer snapshots above %" PRId64 ": %s", plog_dir(log),
                 end, strerror(-d));
    if (!e)
        return;
    e->truncations++;
    e->loading = false; /* what it had scanned may be cut: start over */
    snap_job_free(e->snap_next); /* describes cut batches */
    e->snap_next = NULL;
    /* Batches of the state may be gone, and with them older ones the state no
     * longer holds (last five per producer) and epoch bumps: rebuild from the
     * newest snapshot still valid plus the log after it, as Kafka does. */
    e->end = -1;
    int r = sync_entry(pss, e, log, -1);
    if (r < 0) {
        log_warn("pstates", "%s: rebuilding the producer state after a truncation failed: %s",
                 plog_dir(log), strerror(-r));
        pstate_clear(e->ps);
        e->end = -1;
    }
}

void pstates_forget(struct pstates *pss, const struct plog *log)
{
    size_t i = lower(pss, log);
    if (i >= pss->n || pss->v[i].log != log)
        return;
    struct pentry *e = &pss->v[i];
    pstate_free(e->ps);
    snap_job_free(e->snap_next);
    /* A job in flight finds no entry with its id when it is done. */
    memmove(&pss->v[i], &pss->v[i + 1], (pss->n - i - 1) * sizeof(*pss->v));
    pss->n--;
}
