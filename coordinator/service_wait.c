/* service_wait: the coordinator's two waits, both released by the committed
 * offset moving (svc_wait_durable(), called once per durable record), both
 * operations in one purgatory (common/purgatory.h) under a key each:
 *
 *  - held replies (KEY_DURABLE): a call's answer, packed, until every record
 *    it wrote or read is durable — so nothing is acknowledged that a crash
 *    could still take back. Offsets only grow as calls are handled, so the
 *    watchers are in wait-offset order and an ordered check stops at the
 *    first one not yet durable;
 *  - parked mutations (KEY_ROOM): mutating calls, in arrival order, while too
 *    many appended bytes are not yet durable — so a burst cannot queue
 *    unbounded memory in the log. They are released from the event loop, not
 *    from the durable callback, because each one appends records of its own.
 *
 * Neither has a timeout: a held reply's records are in the log already and
 * will be answered (the RPC layer drops the answer of a call whose connection
 * closed); a parked mutation is answered or failed when the coordinator stops
 * or fails. */
#include "coordinator/service_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>

#include "common/purgatory.h"
#include "common/rpc.h"

enum { KEY_DURABLE = 1, KEY_ROOM = 2 };

/* svc_wait_fail_all()'s reason: fail with waits.fail_status / fail_text. */
#define REASON_FAIL PURG_REASON_USER

/* A reply held until the committed offset reaches wait_offset, packed so the
 * response tree built on the handler's stack can go. */
struct pending {
    struct purg_op op; /* first: the op is the struct */
    struct coord_service *svc;
    int64_t wait_offset;
    struct rpc_call *call;
    const ProtobufCMessageDescriptor *desc;
    uint8_t *packed;
    size_t len;
};

/* A mutating call waiting for the unflushed bytes to drop. */
struct parked {
    struct purg_op op;
    struct coord_service *svc;
    struct rpc_call *call;
    const ProtobufCMessage *req;
};

static bool room(const struct coord_service *svc)
{
    return svc->unflushed_bytes < svc->opts.max_unflushed_bytes;
}

/* How a wait that did not complete normally ends for its caller. */
static void fail_call(struct coord_service *svc, struct rpc_call *call, int reason)
{
    if (reason == REASON_FAIL)
        rpc_call_fail(call, svc->waits.fail_status, svc->waits.fail_text);
    else
        rpc_call_fail(call, RPC_SHUTTING_DOWN, "coordinator is stopping");
}

/* ---- held replies ------------------------------------------------------------------ */

static bool pending_try(struct purg_op *op)
{
    struct pending *p = (struct pending *)op;
    return p->wait_offset <= svc_committed_offset(p->svc);
}

static void pending_done(struct purg_op *op, int reason)
{
    struct pending *p = (struct pending *)op;
    if (reason == PURG_COMPLETED) {
        ProtobufCMessage *m = protobuf_c_message_unpack(p->desc, NULL, p->len, p->packed);
        if (m) {
            rpc_call_reply(p->call, m);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            rpc_call_fail(p->call, RPC_INTERNAL, "out of memory");
        }
    } else {
        fail_call(p->svc, p->call, reason);
    }
    free(p->packed);
    free(p);
}

void svc_reply(struct coord_service *svc, struct rpc_call *call, const ProtobufCMessage *resp,
               int64_t wait_offset)
{
    if (svc->failed) {
        rpc_call_fail(call, RPC_INTERNAL, "coordinator failed: metadata log unavailable");
        return;
    }
    if (wait_offset <= svc_committed_offset(svc)) {
        rpc_call_reply(call, resp);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    size_t len = protobuf_c_message_get_packed_size(resp);
    uint8_t *packed = malloc(len ? len : 1);
    if (!p || !packed) {
        free(p);
        free(packed);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return;
    }
    protobuf_c_message_pack(resp, packed);
    purg_op_init(&p->op, pending_try, pending_done, NULL);
    p->svc = svc;
    p->wait_offset = wait_offset;
    p->call = call;
    p->desc = resp->descriptor;
    p->packed = packed;
    p->len = len;
    const uint64_t key = KEY_DURABLE;
    if (purg_watch(svc->waits.pg, &p->op, &key, 1, PURG_NO_TIMEOUT) < 0) {
        free(packed);
        free(p);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
    }
}

/* ---- parked mutations ------------------------------------------------------------- */

static bool parked_try(struct purg_op *op)
{
    struct parked *p = (struct parked *)op;
    return !p->svc->failed && !p->svc->stopping && room(p->svc);
}

static void parked_done(struct purg_op *op, int reason)
{
    struct parked *p = (struct parked *)op;
    struct coord_service *svc = p->svc;
    struct rpc_call *call = p->call;
    const ProtobufCMessage *req = p->req;
    free(p);
    if (reason == PURG_COMPLETED)
        svc_mutation_process(svc, call, req); /* appends: the next try sees the bytes */
    else
        fail_call(svc, call, reason);
}

bool svc_park(struct coord_service *svc, struct rpc_call *call, const ProtobufCMessage *req)
{
    if (purg_key_count(svc->waits.pg, KEY_ROOM) == 0 && room(svc))
        return false;
    struct parked *p = calloc(1, sizeof(*p));
    if (!p) {
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return true;
    }
    purg_op_init(&p->op, parked_try, parked_done, NULL);
    p->svc = svc;
    p->call = call;
    p->req = req;
    /* Behind those already waiting, without trying first: arrival order. */
    const uint64_t key = KEY_ROOM;
    if (purg_watch(svc->waits.pg, &p->op, &key, 1, PURG_NO_TIMEOUT) < 0) {
        free(p);
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
    }
    return true;
}

static void on_unpark(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_service *svc = arg;
    purg_check_ordered(svc->waits.pg, KEY_ROOM);
}

void svc_park_fail_all(struct coord_service *svc, int status, const char *text)
{
    svc->waits.fail_status = status;
    svc->waits.fail_text = text;
    purg_complete_key(svc->waits.pg, KEY_ROOM, REASON_FAIL);
}

/* ---- both ------------------------------------------------------------------------- */

void svc_wait_durable(struct coord_service *svc)
{
    purg_check_ordered(svc->waits.pg, KEY_DURABLE);
    if (purg_key_count(svc->waits.pg, KEY_ROOM) > 0 && room(svc))
        event_active(svc->waits.unpark_ev, EV_TIMEOUT, 0);
}

void svc_wait_fail_all(struct coord_service *svc, int status, const char *text)
{
    svc->waits.fail_status = status;
    svc->waits.fail_text = text;
    purg_complete_key(svc->waits.pg, KEY_DURABLE, REASON_FAIL);
    purg_complete_key(svc->waits.pg, KEY_ROOM, REASON_FAIL);
}

int svc_wait_init(struct coord_service *svc)
{
    int r = purg_new(svc->base, "coordinator", &svc->waits.pg);
    if (r < 0)
        return r;
    svc->waits.unpark_ev = event_new(svc->base, -1, 0, on_unpark, svc);
    return svc->waits.unpark_ev ? 0 : -ENOMEM;
}

void svc_wait_deinit(struct coord_service *svc)
{
    if (svc->waits.pg) {
        svc_wait_fail_all(svc, RPC_SHUTTING_DOWN, "coordinator is stopping");
        purg_free(svc->waits.pg); /* nothing left; would complete with SHUTDOWN */
        svc->waits.pg = NULL;
    }
    if (svc->waits.unpark_ev)
        event_free(svc->waits.unpark_ev);
    svc->waits.unpark_ev = NULL;
}
