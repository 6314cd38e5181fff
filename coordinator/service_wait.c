/* service_wait: the coordinator's two waits, both released by the committed
 * offset moving (svc_wait_durable(), called once per durable record):
 *
 *  - held replies (pend_*): a call's answer, packed, until every record it
 *    wrote or read is durable — so nothing is acknowledged that a crash could
 *    still take back;
 *  - parked mutations (park_*): mutating calls, in arrival order, while too
 *    many appended bytes are not yet durable — so a burst cannot queue
 *    unbounded memory in the log.
 *
 * Everything about waiting lives here and in struct svc_waits, so that moving
 * both onto a shared delayed-operation queue is a change to this file. */
#include "coordinator/service_internal.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>

#include "common/rpc.h"

/* A reply held until the committed offset reaches wait_offset, packed so the
 * response tree built on the handler's stack can go. */
struct pending {
    struct pending *next;
    int64_t wait_offset;
    struct rpc_call *call;
    const ProtobufCMessageDescriptor *desc;
    uint8_t *packed;
    size_t len;
};

/* A mutating call waiting for the unflushed bytes to drop. */
struct parked {
    struct parked *next;
    struct rpc_call *call;
    const ProtobufCMessage *req;
};

/* ---- held replies ------------------------------------------------------------------ */

void svc_reply(struct coord_service *svc, struct rpc_call *call, const ProtobufCMessage *resp,
               int64_t wait_offset)
{
    struct svc_waits *w = &svc->waits;
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
    p->wait_offset = wait_offset;
    p->call = call;
    p->desc = resp->descriptor;
    p->packed = packed;
    p->len = len;
    /* Offsets only grow as calls are handled, so the list stays sorted. */
    assert(!w->pend_tail || w->pend_tail->wait_offset <= wait_offset);
    if (w->pend_tail)
        w->pend_tail->next = p;
    else
        w->pend_head = p;
    w->pend_tail = p;
}

static void complete_pending(struct coord_service *svc)
{
    struct svc_waits *w = &svc->waits;
    int64_t c = svc_committed_offset(svc);
    while (w->pend_head && w->pend_head->wait_offset <= c) {
        struct pending *p = w->pend_head;
        w->pend_head = p->next;
        if (!w->pend_head)
            w->pend_tail = NULL;
        ProtobufCMessage *m = protobuf_c_message_unpack(p->desc, NULL, p->len, p->packed);
        if (m) {
            rpc_call_reply(p->call, m);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            rpc_call_fail(p->call, RPC_INTERNAL, "out of memory");
        }
        free(p->packed);
        free(p);
    }
}

/* ---- parked mutations ------------------------------------------------------------- */

bool svc_park(struct coord_service *svc, struct rpc_call *call, const ProtobufCMessage *req)
{
    struct svc_waits *w = &svc->waits;
    if (!w->park_head && svc->unflushed_bytes < svc->opts.max_unflushed_bytes)
        return false;
    struct parked *p = calloc(1, sizeof(*p));
    if (!p) {
        rpc_call_fail(call, RPC_INTERNAL, "out of memory");
        return true;
    }
    p->call = call;
    p->req = req;
    if (w->park_tail)
        w->park_tail->next = p;
    else
        w->park_head = p;
    w->park_tail = p;
    return true;
}

/* Run from the event loop, not from the durable callback: the mutations it
 * processes append records of their own. */
static void on_unpark(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_service *svc = arg;
    struct svc_waits *w = &svc->waits;
    while (w->park_head && !svc->failed && !svc->stopping &&
           svc->unflushed_bytes < svc->opts.max_unflushed_bytes) {
        struct parked *p = w->park_head;
        w->park_head = p->next;
        if (!w->park_head)
            w->park_tail = NULL;
        struct rpc_call *call = p->call;
        const ProtobufCMessage *req = p->req;
        free(p);
        svc_mutation_process(svc, call, req);
    }
}

void svc_park_fail_all(struct coord_service *svc, int status, const char *text)
{
    struct svc_waits *w = &svc->waits;
    while (w->park_head) {
        struct parked *p = w->park_head;
        w->park_head = p->next;
        rpc_call_fail(p->call, status, text);
        free(p);
    }
    w->park_tail = NULL;
}

/* ---- both ------------------------------------------------------------------------- */

void svc_wait_durable(struct coord_service *svc)
{
    complete_pending(svc);
    if (svc->waits.park_head && svc->unflushed_bytes < svc->opts.max_unflushed_bytes)
        event_active(svc->waits.unpark_ev, EV_TIMEOUT, 0);
}

void svc_wait_fail_all(struct coord_service *svc, int status, const char *text)
{
    struct svc_waits *w = &svc->waits;
    while (w->pend_head) {
        struct pending *p = w->pend_head;
        w->pend_head = p->next;
        rpc_call_fail(p->call, status, text);
        free(p->packed);
        free(p);
    }
    w->pend_tail = NULL;
    svc_park_fail_all(svc, status, text);
}

int svc_wait_init(struct coord_service *svc)
{
    svc->waits.unpark_ev = event_new(svc->base, -1, 0, on_unpark, svc);
    return svc->waits.unpark_ev ? 0 : -ENOMEM;
}

void svc_wait_deinit(struct coord_service *svc)
{
    svc_wait_fail_all(svc, RPC_SHUTTING_DOWN, "coordinator is stopping");
    if (svc->waits.unpark_ev)
        event_free(svc->waits.unpark_ev);
    svc->waits.unpark_ev = NULL;
}
