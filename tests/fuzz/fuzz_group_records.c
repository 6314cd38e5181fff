/* fuzz_group_records: GroupMetadataValue records as a new coordinator reads
 * them from __consumer_offsets (broker/group/group_records.c, groups_replay).
 *
 * Input: the bytes are a GroupMetadataValue. Properties: decoding fails only
 * with -EBADMSG; a value that decodes re-encodes (at version 3) to bytes that
 * decode to the same group; and groups_replay() of the value (under a valid
 * key) builds a group that describes, heartbeats and frees without a sanitizer
 * report. gstore is a stub here (the link seam of tests/unit/test_groups.c). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/group/group_records.h"
#include "broker/group/groups.h"
#include "broker/group/gstore.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/kerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

int32_t gstore_partition_for(const struct gstore *gs, const char *group_id)
{
    (void)gs;
    (void)group_id;
    return 0;
}
int16_t gstore_coordinator_check(struct gstore *gs, const char *group_id)
{
    (void)gs;
    (void)group_id;
    return KERR_NONE;
}
int16_t gstore_append(struct gstore *gs, const char *group_id, buf_slice key, buf_slice value,
                      gstore_done_fn done, void *ud)
{
    (void)gs, (void)group_id, (void)key, (void)value, (void)done, (void)ud;
    return KERR_NOT_COORDINATOR; /* refused: @done is never called */
}
int16_t gstore_delete_group_offsets(struct gstore *gs, const char *group_id, gstore_done_fn done,
                                    void *ud)
{
    (void)gs, (void)group_id, (void)done, (void)ud;
    return KERR_NOT_COORDINATOR;
}
bool gstore_group_has_offsets(const struct gstore *gs, const char *group_id)
{
    (void)gs;
    (void)group_id;
    return false;
}

static int64_t fixed_now(void *ud)
{
    (void)ud;
    return 1000;
}

static bool slice_eq(buf_slice a, buf_slice b)
{
    if (a.len != b.len)
        return false;
    return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1 << 20))
        return 0;
    struct arena a;
    arena_init(&a, 4096, 8 * size + 65536);
    buf_slice val = {data, (int32_t)size};
    struct grec_value v;
    int rc = grec_value_decode(val, &a, &v);
    if (rc < 0) {
        CHECK(rc == -EBADMSG || rc == -ENOMEM);
        arena_deinit(&a);
        return 0;
    }
    buf_writer w;
    buf_writer_init(&w);
    grec_value_encode(&w, &v);
    if (buf_writer_error(&w) == 0) {
        struct grec_value v2;
        CHECK(grec_value_decode((buf_slice){w.data, (int32_t)w.len}, &a, &v2) == 0);
        CHECK(v2.generation == v.generation && v2.n_members == v.n_members);
        CHECK(slice_eq(v2.protocol_type, v.protocol_type) && slice_eq(v2.protocol, v.protocol) &&
              slice_eq(v2.leader, v.leader));
        for (int32_t i = 0; i < v.n_members; i++) {
            CHECK(slice_eq(v2.members[i].member_id, v.members[i].member_id));
            CHECK(slice_eq(v2.members[i].instance_id, v.members[i].instance_id));
            CHECK(slice_eq(v2.members[i].subscription, v.members[i].subscription));
            CHECK(slice_eq(v2.members[i].assignment, v.members[i].assignment));
            CHECK(v2.members[i].session_timeout_ms == v.members[i].session_timeout_ms);
        }
    }
    buf_writer_deinit(&w);

    struct groups_options o = {.min_session_timeout_ms = 1, .max_session_timeout_ms = INT32_MAX,
                               .now_ms = fixed_now};
    struct groups *g;
    CHECK(groups_new(&o, &g) == 0);
    static const uint8_t key[] = {0, 2, 0, 1, 'g'};
    groups_replay(g, 0, (buf_slice){key, sizeof(key)}, val);
    struct groups_description d;
    groups_describe(g, "g", &d);
    for (int32_t i = 0; i < d.n_members; i++)
        (void)groups_heartbeat(g, "g", v.generation, d.members[i].member_id, NULL);
    groups_tick(g);
    groups_free(g);
    arena_deinit(&a);
    return 0;
}
