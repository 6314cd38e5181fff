/* service_write: the coordinator's write path. A record goes: applied to the
 * speculative state and appended to the metadata log (svc_write) -> durable,
 * in offset order (on_durable): applied to the committed state, pushed to
 * watchers, waiting replies and parked mutations released (service_wait.c),
 * a snapshot started when one is due. A log that fails stops the service
 * from acknowledging anything (svc_fatal). */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kerr.h"
#include "common/log.h"
#include "common/rpc.h"
#include "coordinator/mlog.h"
#include "coordinator/session.h"
#include "coordinator/watch.h"

static void on_durable(struct mlog *log, int64_t offset, int status, void *ud);

/* ---- failure ---------------------------------------------------------------------- */

void svc_fatal(struct coord_service *svc, const char *fmt, ...)
{
    if (svc->failed)
        return;
    svc->failed = true;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_error("coordinator", "%s; no further change will be acknowledged", why);
    svc_wait_fail_all(svc, RPC_INTERNAL, "coordinator failed: metadata log unavailable");
    if (svc->opts.on_fatal)
        svc->opts.on_fatal(svc->opts.fatal_ud, why);
}

/* ---- appending -------------------------------------------------------------------- */

int svc_inflight_push(struct coord_service *svc, int64_t offset, uint8_t *data, size_t len)
{
    if (svc->q_n == svc->q_cap) {
        size_t cap = svc->q_cap ? svc->q_cap * 2 : 64;
        struct inflight *q = malloc(cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < svc->q_n; i++)
            q[i] = svc->q[(svc->q_head + i) % svc->q_cap];
        free(svc->q);
        svc->q = q;
        svc->q_cap = cap;
        svc->q_head = 0;
    }
    svc->q[(svc->q_head + svc->q_n) % svc->q_cap] = (struct inflight){offset, data, len};
    svc->q_n++;
    svc->unflushed_bytes += len;
    return 0;
}

int svc_write(struct coord_service *svc, struct cstate_records *recs, int64_t *ret_last)
{
    if (svc->failed)
        return -EIO;
    if (!svc_leads(svc))
        return -ENOTCONN; /* leadership just lost: nothing was applied */
    for (size_t i = 0; i < recs->n; i++)
        if (recs->v[i].len > svc->cfg->max_record_bytes)
            return -EMSGSIZE;
    int64_t last = -1;
    for (size_t i = 0; i < recs->n; i++) {
        struct cstate_record *rec = &recs->v[i];
        int64_t off = svc_next_offset(svc);
        char why[256] = "";
        int r = cstate_apply_bytes(svc->spec, off, rec->data, rec->len, why, sizeof(why));
        if (r < 0) {
            char desc[256];
            cstate_record_format_bytes(rec->data, rec->len, desc, sizeof(desc));
            log_error("coordinator",
                      "internal error: record %s does not apply at offset %" PRId64 ": %s", desc,
                      off, why[0] ? why : strerror(-r));
            if (last >= 0 && ret_last)
                *ret_last = last;
            return r == -ENOMEM ? r : -EINVAL;
        }
        int64_t got = -1;
        if (svc->quorum)
            r = craft_node_propose(svc->quorum, rec->data, rec->len, &got);
        else
            r = mlog_append(svc->log, rec->data, rec->len, on_durable, svc, &got);
        if (r == 0 && got != off)
            r = -EPROTO;
        if (r == 0)
            r = svc_inflight_push(svc, off, rec->data, rec->len);
        if (r < 0) {
            svc_fatal(svc, "cannot append to the metadata log at offset %" PRId64 ": %s", off,
                      strerror(-r));
            return -EIO;
        }
        rec->data = NULL; /* now owned by the in-flight queue */
        last = off;
    }
    if (last >= 0 && ret_last)
        *ret_last = last;
    return 0;
}

void svc_write_internal(struct coord_service *svc, const char *what)
{
    if (svc->recs.n == 0)
        return;
    size_t n = svc->recs.n;
    int r = svc_write(svc, &svc->recs, NULL);
    if (r < 0 && r != -EIO)
        log_error("coordinator", "%s: cannot write %zu records: %s", what, n, strerror(-r));
    cstate_records_clear(&svc->recs);
}

void svc_write_item(struct coord_service *svc, int r, struct cctl_error *err, bool write)
{
    if (r < 0) {
        svc_err_internal(err, r);
        cstate_records_clear(&svc->recs);
        return;
    }
    if (err->code != KERR_NONE || !write) {
        cstate_records_clear(&svc->recs);
        return;
    }
    r = svc_write(svc, &svc->recs, NULL);
    if (r == -EMSGSIZE)
        svc_err_set(err, KERR_POLICY_VIOLATION,
                    "the change needs a metadata record larger than %" PRIu32 " bytes",
                    svc->cfg->max_record_bytes);
    else if (r < 0)
        svc_err_internal(err, r);
    cstate_records_clear(&svc->recs);
}

/* ---- durable ---------------------------------------------------------------------- */

static void on_snapshot(struct mlog *log, int64_t offset, int status, void *ud)
{
    (void)log;
    (void)ud;
    if (status == 0)
        log_info("coordinator", "snapshot written at metadata offset %" PRId64, offset);
    else if (status != -ECANCELED)
        log_warn("coordinator", "snapshot at metadata offset %" PRId64 " failed: %s", offset,
                 strerror(-status));
}

static void maybe_snapshot(struct coord_service *svc)
{
    if (svc->failed || !mlog_snapshot_due(svc->log))
        return;
    int r = svc_image_get(svc);
    if (r == 0)
        r = mlog_write_snapshot(svc->log, svc_committed_offset(svc) + 1, svc->img, svc->img_len,
                                on_snapshot, svc);
    if (r == 0 && svc->quorum)
        craft_node_snapshot_taken(svc->quorum, svc_committed_offset(svc) + 1, svc->img,
                                  svc->img_len);
    if (r < 0 && r != -EBUSY)
        log_warn("coordinator", "cannot start a snapshot at metadata offset %" PRId64 ": %s",
                 svc_committed_offset(svc) + 1, strerror(-r));
}

bool svc_inflight_pop(struct coord_service *svc, int64_t offset, struct inflight *ret)
{
    if (svc->q_n == 0 || svc->q[svc->q_head].offset != offset)
        return false;
    *ret = svc->q[svc->q_head];
    svc->q_head = (svc->q_head + 1) % svc->q_cap;
    svc->q_n--;
    svc->unflushed_bytes -= ret->len;
    return true;
}

void svc_commit_record(struct coord_service *svc, int64_t offset, uint8_t *data, size_t len)
{
    svc_metrics_note_durable(svc, data, len);
    char why[256] = "";
    int r = cstate_apply_bytes(svc->committed, offset, data, len, why, sizeof(why));
    if (r < 0) {
        free(data);
        svc_fatal(svc,
                  "internal error: durable record at offset %" PRId64
                  " does not apply to the committed state: %s",
                  offset, why[0] ? why : strerror(-r));
        return;
    }
    svc_image_invalidate(svc);
    watch_hub_publish(svc->watch, offset, data, len);
    csession_pushed(svc->sessions, offset, len);
    svc_wait_durable(svc);
    maybe_snapshot(svc);
    svc_maybe_ready(svc);
}

static void on_durable(struct mlog *log, int64_t offset, int status, void *ud)
{
    (void)log;
    struct coord_service *svc = ud;
    if (svc->failed)
        return;
    if (status < 0) {
        svc_fatal(svc, "metadata log failed at offset %" PRId64 ": %s", offset, strerror(-status));
        return;
    }
    struct inflight rec;
    if (!svc_inflight_pop(svc, offset, &rec)) {
        svc_fatal(svc, "internal error: durable offset %" PRId64 " is not the oldest in flight",
                  offset);
        return;
    }
    svc_commit_record(svc, offset, rec.data, rec.len);
}

void svc_write_deinit(struct coord_service *svc)
{
    for (size_t i = 0; i < svc->q_n; i++)
        free(svc->q[(svc->q_head + i) % svc->q_cap].data);
    free(svc->q);
    svc->q = NULL;
    svc->q_n = 0;
}
