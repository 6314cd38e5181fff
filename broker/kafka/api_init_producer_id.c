/* api_init_producer_id: InitProducerId v0-4 for idempotent (non-transactional)
 * producers, and the broker's block of producer ids (pidalloc_*).
 *
 * Every broker answers (clients send it to any broker; Kafka's
 * FindCoordinator is not needed without a transactional id). A fresh producer
 * gets the next id of the broker's current block with epoch 0; when the block
 * is used up, requests queue (in arrival order) while one AllocateProducerIds
 * call fetches the next block from the coordinator, which answers once the
 * block is durable. The queue is answered when the local metadata has caught
 * up with that record, so the produce path's "was this id ever issued" check
 * (api_produce.c) already knows the new ids.
 *
 * KIP-360 (v3+): a producer that sends its current (producer_id, epoch) gets a
 * fresh id, as Kafka answers every non-transactional request: nothing proves
 * the sender owns that pair (@platformatic/kafka sends (0, 0) on every first
 * init), and bumping it would give two producers the same id and epoch, so
 * one's batches would be taken for the other's retries and dropped. A fresh id
 * restarts the producer's sequences just as a bump would.
 *
 * A transactional id is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
 * transactions are not served yet, and clients treat that code as fatal, so
 * the application fails at once with a clear cause instead of retrying
 * COORDINATOR_NOT_AVAILABLE forever (the broker logs why). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_config.h"
#include "broker/coordclient.h"
#include "broker/kafka/dispatch.h"
#include "broker/kafka/kafka_msgs.h"
#include "broker/kafka/server.h"
#include "common/kerr.h"
#include "common/log.h"
#include "common/meta/state.h"
#include "coordinator.pb-c.h"
#include "methods.h"

#define ALLOC_TIMEOUT_MS 10000

struct pid_waiter {
    struct kreq *req;
    struct kafka_init_producer_id_response *resp;
    struct pid_waiter *next;
};

struct pidalloc {
    struct broker_ctx *b;
    int64_t next, end;     /* the current block: [next, end) */
    bool fetching;         /* an AllocateProducerIds call or its metadata wait */
    bool closed;           /* pidalloc_shutdown: answer nothing more */
    int64_t pending_first; /* the block being fetched */
    int32_t pending_count;
    struct pid_waiter *head, **tail;
};

int pidalloc_new(struct broker_ctx *b, struct pidalloc **ret)
{
    struct pidalloc *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->b = b;
    p->tail = &p->head;
    *ret = p;
    return 0;
}

static void fetch_block(struct pidalloc *p);

/* Answer the queue: with @error, or from the block while it lasts (then
 * fetch the next block for the rest). */
static void answer_all(struct pidalloc *p, int16_t error)
{
    while (p->head && (error || p->next < p->end)) {
        struct pid_waiter *w = p->head;
        p->head = w->next;
        if (!p->head)
            p->tail = &p->head;
        if (error) {
            w->resp->error_code = error;
            w->resp->producer_id = -1;
            w->resp->producer_epoch = -1;
        } else {
            w->resp->producer_id = p->next++;
            w->resp->producer_epoch = 0;
        }
        kreq_reply(w->req, w->resp, NULL, NULL); /* frees w with the arena */
    }
    if (p->head && !p->closed)
        fetch_block(p);
}

void pidalloc_shutdown(struct pidalloc *p)
{
    if (!p)
        return;
    p->closed = true;
    answer_all(p, KERR_COORDINATOR_NOT_AVAILABLE);
}

void pidalloc_free(struct pidalloc *p)
{
    if (!p)
        return;
    pidalloc_shutdown(p);
    free(p);
}

static void on_caught_up(void *ud, int result)
{
    struct pidalloc *p = ud;
    (void)result; /* even after a timeout the block is ours and durable */
    p->fetching = false;
    if (p->closed)
        return;
    p->next = p->pending_first;
    p->end = p->pending_first + p->pending_count;
    answer_all(p, 0);
}

static void on_block(int status, const struct ProtobufCMessage *msg, const char *errmsg, void *ud)
{
    struct pidalloc *p = ud;
    if (p->closed) {
        p->fetching = false;
        return;
    }
    const Weir__Coord__AllocateProducerIdsResponse *r =
        (const Weir__Coord__AllocateProducerIdsResponse *)msg;
    if (status != 0 || !r || r->error_code || r->first_id < 0 || r->count <= 0) {
        log_warn("kafka", "cannot get producer ids from the coordinator: %s",
                 status != 0 ? (errmsg ? errmsg : "call failed")
                 : r && r->error_message && r->error_message[0]
                     ? r->error_message
                     : kerr_name(r ? (int16_t)r->error_code : 0));
        p->fetching = false;
        answer_all(p, KERR_COORDINATOR_NOT_AVAILABLE);
        return;
    }
    p->pending_first = r->first_id;
    p->pending_count = r->count;
    log_info("kafka", "producer ids %" PRId64 "..%" PRId64 " from the coordinator", r->first_id,
             r->first_id + r->count - 1);
    if (coordclient_wait_offset(p->b->cc, r->metadata_offset, ALLOC_TIMEOUT_MS, on_caught_up, p) <
        0)
        on_caught_up(p, 0);
}

static void fetch_block(struct pidalloc *p)
{
    if (p->fetching)
        return;
    if (!coordclient_registered(p->b->cc)) {
        answer_all(p, KERR_COORDINATOR_NOT_AVAILABLE);
        return;
    }
    Weir__Coord__AllocateProducerIdsRequest req = WEIR__COORD__ALLOCATE_PRODUCER_IDS_REQUEST__INIT;
    req.broker_id = p->b->s->broker_id;
    req.broker_epoch = coordclient_broker_epoch(p->b->cc);
    p->fetching = true;
    if (coordclient_call(p->b->cc, COORD_M_ALLOCATE_PRODUCER_IDS, &req.base, ALLOC_TIMEOUT_MS,
                         on_block, p) < 0) {
        p->fetching = false;
        answer_all(p, KERR_COORDINATOR_NOT_AVAILABLE);
    }
}

void api_init_producer_id_handle(struct broker_ctx *b, struct kreq *req, void *body)
{
    struct kafka_init_producer_id_request *m = body;
    struct kafka_init_producer_id_response *resp = api_alloc(req, 1, sizeof(*resp));
    struct pid_waiter *w = api_alloc(req, 1, sizeof(*w));
    if (!resp || !w) {
        kreq_close(req);
        return;
    }
    kafka_init_producer_id_response_init(resp);
    resp->producer_id = -1;
    resp->producer_epoch = -1;
    if (m->transactional_id.len >= 0) {
        log_warn("kafka",
                 "InitProducerId from %s with transactional id '%.*s': transactions are not "
                 "supported, answering TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
                 kreq_peer(req),
                 (int)(m->transactional_id.len > 200 ? 200 : m->transactional_id.len),
                 m->transactional_id.ptr ? (const char *)m->transactional_id.ptr : "");
        resp->error_code = KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        kreq_reply(req, resp, NULL, NULL);
        return;
    }
    struct pidalloc *p = b->pids;
    if (p->closed) {
        resp->error_code = KERR_COORDINATOR_NOT_AVAILABLE;
        kreq_reply(req, resp, NULL, NULL);
        return;
    }
    if (p->next < p->end && !p->head) {
        resp->producer_id = p->next++;
        resp->producer_epoch = 0;
        kreq_reply(req, resp, NULL, NULL);
        return;
    }
    w->req = req;
    w->resp = resp;
    *p->tail = w;
    p->tail = &w->next;
    fetch_block(p);
}
