/* service_metrics: what the coordinator exports on /metrics — brokers by
 * state, the metadata log (offsets, fsync latency, volume), sessions fenced,
 * leader elections, watch subscribers and RPC requests by method — and its
 * /health answer. */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/metrics.h"
#include "coordinator/mlog.h"
#include "coordinator/session.h"
#include "coordinator/watch.h"
#include "coordinator.pb-c.h"
#include "metadata.pb-c.h"

/* The first byte of a MetadataRecord whose oneof holds a PartitionChangeRecord:
 * field 9, length-delimited. The record has no other field, so anything else
 * is another kind of record, and a big CreateTopic is not unpacked twice. */
#define SVC_PARTITION_CHANGE_TAG ((9u << 3) | 2u)

void svc_metrics_note_durable(struct coord_service *svc, const uint8_t *data, size_t len)
{
    if (len == 0 || data[0] != SVC_PARTITION_CHANGE_TAG)
        return;
    Weir__Meta__MetadataRecord *rec = weir__meta__metadata_record__unpack(NULL, len, data);
    if (!rec)
        return; /* cstate_apply_bytes() reports it */
    if (rec->record_case == WEIR__META__METADATA_RECORD__RECORD_PARTITION_CHANGE) {
        const Weir__Meta__PartitionChangeRecord *pc = rec->partition_change;
        const struct cstate_topic *t = NULL;
        if (pc->topic_id.len == CSTATE_UUID_LEN)
            t = cstate_topic_by_id(svc->committed, pc->topic_id.data);
        if (t && pc->partition >= 0 && pc->partition < t->n_parts) {
            const struct cstate_partition *p = &t->parts[pc->partition];
            if (pc->leader != p->leader) {
                if (pc->leader >= 0)
                    svc->ctr.leader_elections++;
                else
                    svc->ctr.leaders_lost++;
            }
        }
    }
    weir__meta__metadata_record__free_unpacked(rec, NULL);
}

static void collect_brokers(struct mw *w, const struct cstate *s)
{
    size_t by_state[4] = {0};
    for (size_t i = 0; i < s->n_brokers; i++) {
        unsigned st = (unsigned)s->brokers[i].state;
        if (st < 4)
            by_state[st]++;
    }
    mw_family(w, "weir_coordinator_brokers", MW_GAUGE,
              "Brokers known to the committed metadata, by state (fenced: session ended, "
              "epoch dead).");
    mw_sample(w, (double)by_state[CSTATE_BROKER_REGISTERED], "state", "registered", NULL);
    mw_sample(w, (double)by_state[CSTATE_BROKER_FENCED], "state", "fenced", NULL);
    mw_sample(w, (double)by_state[CSTATE_BROKER_CONTROLLED_SHUTDOWN], "state",
              "controlled_shutdown", NULL);
}

static void collect_partitions(struct mw *w, const struct cstate *s)
{
    uint64_t offline = 0, under_replicated = 0;
    for (const struct cstate_topic *t = s->first_topic; t; t = t->next) {
        for (int32_t i = 0; i < t->n_parts; i++) {
            const struct cstate_partition *p = &t->parts[i];
            offline += p->leader < 0;
            under_replicated += p->n_isr < p->n_replicas;
        }
    }
    mw_family(w, "weir_coordinator_topics", MW_GAUGE, "Topics in the committed metadata.");
    mw_sample(w, (double)s->n_topics, NULL);
    mw_family(w, "weir_coordinator_partitions", MW_GAUGE, "Partitions in the committed metadata.");
    mw_sample(w, (double)s->n_partitions, NULL);
    mw_family(w, "weir_coordinator_offline_partitions", MW_GAUGE,
              "Partitions with no leader in the committed metadata.");
    mw_sample(w, (double)offline, NULL);
    mw_family(w, "weir_coordinator_under_replicated_partitions", MW_GAUGE,
              "Partitions whose ISR is smaller than their replica set, as the coordinator "
              "records it.");
    mw_sample(w, (double)under_replicated, NULL);
}

static void collect_log(struct mw *w, struct coord_service *svc)
{
    mw_family(w, "weir_coordinator_metadata_offset", MW_GAUGE,
              "Offset of the last durable (committed) metadata record.");
    mw_sample(w, (double)svc_committed_offset(svc), NULL);
    mw_family(w, "weir_coordinator_metadata_next_offset", MW_GAUGE,
              "Offset the next appended metadata record gets.");
    mw_sample(w, (double)mlog_next_offset(svc->log), NULL);
    mw_family(w, "weir_coordinator_metadata_snapshot_offset", MW_GAUGE,
              "Offset of the newest metadata snapshot (-1: none).");
    mw_sample(w, (double)mlog_snapshot_offset(svc->log), NULL);
    mw_family(w, "weir_coordinator_metadata_unflushed_bytes", MW_GAUGE,
              "Appended metadata record bytes not yet durable.");
    mw_sample(w, (double)svc->unflushed_bytes, NULL);

    struct mlog_stats st;
    mlog_get_stats(svc->log, &st);
    mw_family(w, "weir_coordinator_metadata_records_total", MW_COUNTER,
              "Metadata records made durable since start.");
    mw_sample(w, (double)st.records, NULL);
    mw_family(w, "weir_coordinator_metadata_bytes_total", MW_COUNTER,
              "Framed metadata log bytes written since start.");
    mw_sample(w, (double)st.bytes, NULL);
    mw_family(w, "weir_coordinator_metadata_flushes_total", MW_COUNTER,
              "Flush groups (one write and one fdatasync each) since start.");
    mw_sample(w, (double)st.groups, NULL);
    mw_family(w, "weir_coordinator_metadata_snapshots_total", MW_COUNTER,
              "Metadata snapshots written since start.");
    mw_sample(w, (double)st.snapshots, NULL);
    mw_family(w, "weir_coordinator_metadata_fsync_seconds", MW_HISTOGRAM,
              "Latency of the fdatasync that makes each flush group of metadata records "
              "durable.");
    mw_hist(w, mlog_fsync_histogram(svc->log), NULL);
    mw_family(w, "weir_coordinator_failed", MW_GAUGE,
              "1 when the metadata log failed and the coordinator stopped acknowledging "
              "changes.");
    mw_sample(w, svc->failed ? 1 : 0, NULL);
}

static void collect_activity(struct mw *w, struct coord_service *svc)
{
    const struct svc_counters *c = &svc->ctr;
    mw_family(w, "weir_coordinator_broker_fencings_total", MW_COUNTER,
              "Broker sessions the coordinator ended, by reason: expired (no heartbeat within "
              "session.timeout.ms), dead (silent a further timeout), disconnected (its "
              "connection closed and it did not return).");
    mw_sample(w, (double)c->fenced_expired, "reason", "expired", NULL);
    mw_sample(w, (double)c->fenced_dead, "reason", "dead", NULL);
    mw_sample(w, (double)c->fenced_disconnect, "reason", "disconnected", NULL);
    mw_family(w, "weir_coordinator_session_expirations_total", MW_COUNTER,
              "Broker sessions fenced because their heartbeats stopped (expired or dead).");
    mw_sample(w, (double)(c->fenced_expired + c->fenced_dead), NULL);
    mw_family(w, "weir_coordinator_sessions", MW_GAUGE, "Live broker sessions.");
    mw_sample(w, (double)csession_count(svc->sessions), NULL);
    mw_family(w, "weir_coordinator_leader_elections_total", MW_COUNTER,
              "Committed partition leader changes to a new leader (elections, preferred-leader "
              "moves, controlled shutdown hand-overs).");
    mw_sample(w, (double)c->leader_elections, NULL);
    mw_family(w, "weir_coordinator_leaders_lost_total", MW_COUNTER,
              "Committed partition changes that left a partition with no leader (offline).");
    mw_sample(w, (double)c->leaders_lost, NULL);

    mw_family(w, "weir_coordinator_watch_subscribers", MW_GAUGE,
              "Brokers and tools subscribed to metadata pushes.");
    mw_sample(w, (double)watch_hub_subscribers(svc->watch), NULL);
    struct watch_stats ws;
    watch_hub_get_stats(svc->watch, &ws);
    mw_family(w, "weir_coordinator_watch_pushes_total", MW_COUNTER,
              "Metadata records pushed to subscribers, over all subscribers.");
    mw_sample(w, (double)ws.records_pushed, NULL);
    mw_family(w, "weir_coordinator_watch_images_total", MW_COUNTER,
              "Full metadata images sent to subscribers that were too far behind.");
    mw_sample(w, (double)ws.images_sent, NULL);
    mw_family(w, "weir_coordinator_watch_disconnects_total", MW_COUNTER,
              "Subscribers dropped because they stopped reading pushes.");
    mw_sample(w, (double)ws.disconnected, NULL);

    mw_family(w, "weir_coordinator_rpc_requests_total", MW_COUNTER,
              "Coordinator RPC requests received, by method.");
    const ProtobufCServiceDescriptor *d = &weir__coord__coordinator__descriptor;
    for (unsigned i = 0; i < COORD_M_COUNT && i < d->n_methods; i++)
        mw_sample(w, (double)c->rpc[i], "method", d->methods[i].name, NULL);
}

static int svc_collect(struct mw *w, void *ctx, uint64_t *cursor)
{
    (void)cursor;
    struct coord_service *svc = ctx;
    collect_brokers(w, svc->committed);
    collect_partitions(w, svc->committed);
    collect_log(w, svc);
    collect_activity(w, svc);
    return 0;
}

int coord_service_register_metrics(struct coord_service *svc, struct metrics *m)
{
    return metrics_register(m, svc_collect, svc);
}

bool coord_service_health(const struct coord_service *svc, char *reason, size_t len)
{
    if (svc->failed) {
        snprintf(reason, len, "metadata log failed: not acknowledging changes (restart needed)");
        return false;
    }
    if (svc->stopping) {
        snprintf(reason, len, "shutting down");
        return false;
    }
    if (svc->ready_pending || svc_committed_offset(svc) < 0) {
        snprintf(reason, len, "starting: metadata log not yet durable");
        return false;
    }
    return true;
}
