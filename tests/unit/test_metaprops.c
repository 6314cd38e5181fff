/* Tests for common/metaprops: ids as Kafka writes them, meta.properties in both
 * of Kafka's versions, and partition.metadata. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/metaprops.h"
#include "testutil.h"

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_ids_round_trip_and_bad_ones_are_refused(void **state)
{
    (void)state;
    uint8_t u[16], back[16];
    for (int i = 0; i < 16; i++)
        u[i] = (uint8_t)(0xf0 + i);
    char s[METAPROPS_ID_BUF];
    metaprops_id_encode(u, s);
    assert_int_equal(strlen(s), 22);
    assert_int_equal(metaprops_id_decode(s, back), 0);
    assert_memory_equal(u, back, 16);
    /* Kafka's example cluster id, and the all-zero UUID. */
    assert_true(metaprops_id_valid("MkU3OEVBNTcwNTJENDM2Qg"));
    assert_true(metaprops_id_valid("AAAAAAAAAAAAAAAAAAAAAA"));
    assert_false(metaprops_id_valid(""));
    assert_false(metaprops_id_valid("MkU3OEVBNTcwNTJENDM2Q"));   /* 21 */
    assert_false(metaprops_id_valid("MkU3OEVBNTcwNTJENDM2Qgg")); /* 23 */
    assert_false(metaprops_id_valid("MkU3OEVBNTcwNTJENDM2Q+"));  /* not base64url */
    assert_false(metaprops_id_valid("MkU3OEVBNTcwNTJENDM2QB"));  /* stray low bits */
    for (int i = 0; i < 200; i++) {
        metaprops_random_id(s);
        assert_true(metaprops_id_valid(s));
        assert_true(s[0] != '-');
        assert_int_equal(metaprops_id_decode(s, back), 0);
        assert_int_equal(back[6] >> 4, 4); /* version 4 */
    }
}

static void test_meta_properties_read_write(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("metaprops");
    struct metaprops mp;
    char err[256];
    assert_int_equal(metaprops_read(dir, &mp, err, sizeof(err)), -ENOENT);

    struct metaprops w = {.version = 1, .node_id = 7};
    snprintf(w.cluster_id, sizeof(w.cluster_id), "MkU3OEVBNTcwNTJENDM2Qg");
    metaprops_random_id(w.directory_id);
    assert_int_equal(metaprops_write(dir, &w), 0);
    assert_int_equal(metaprops_read(dir, &mp, err, sizeof(err)), 0);
    assert_int_equal(mp.version, 1);
    assert_int_equal(mp.node_id, 7);
    assert_string_equal(mp.cluster_id, w.cluster_id);
    assert_string_equal(mp.directory_id, w.directory_id);

    /* Kafka's ZooKeeper-mode file: version 0 with broker.id. */
    write_file(dir, METAPROPS_FILE,
               "#x\nversion=0\nbroker.id=3\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n");
    assert_int_equal(metaprops_read(dir, &mp, err, sizeof(err)), 0);
    assert_int_equal(mp.node_id, 3);
    assert_string_equal(mp.directory_id, "");

    const char *bad[] = {
        "cluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=1\n",            /* no version */
        "version=2\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=1\n", /* unknown version */
        "version=1\nnode.id=1\n",                                    /* no cluster */
        "version=1\ncluster.id=nope\nnode.id=1\n",                   /* bad cluster */
        "version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n",            /* no node */
        "version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=x\n", /* bad node */
        "version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=1\nbroker.id=2\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(dir, METAPROPS_FILE, bad[i]);
        err[0] = '\0';
        assert_int_equal(metaprops_read(dir, &mp, err, sizeof(err)), -EINVAL);
        assert_true(err[0] != '\0');
    }
    w.node_id = -1;
    assert_int_equal(metaprops_write(dir, &w), -EINVAL);
    testutil_rmtree(dir);
}

static void test_partition_metadata(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("partmeta");
    uint8_t id[16], got[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(i * 13);
    assert_int_equal(metaprops_part_read(dir, got), -ENOENT);
    assert_int_equal(metaprops_part_write(dir, id, true), 0);
    assert_int_equal(metaprops_part_read(dir, got), 0);
    assert_memory_equal(id, got, 16);
    char want[64], s[METAPROPS_ID_BUF];
    metaprops_id_encode(id, s);
    snprintf(want, sizeof(want), "version: 0\ntopic_id: %s\n", s);
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, METAPROPS_PART_FILE);
    FILE *f = fopen(path, "r");
    char buf[128] = "";
    assert_non_null(f);
    assert_true(fread(buf, 1, sizeof(buf) - 1, f) > 0);
    fclose(f);
    assert_string_equal(buf, want);
    write_file(dir, METAPROPS_PART_FILE, "version: 1\ntopic_id: MkU3OEVBNTcwNTJENDM2Qg\n");
    assert_int_equal(metaprops_part_read(dir, got), -EINVAL);
    write_file(dir, METAPROPS_PART_FILE, "version: 0\n");
    assert_int_equal(metaprops_part_read(dir, got), -EINVAL);
    assert_int_equal(metaprops_part_write(dir, id, false), 0);
    assert_int_equal(metaprops_part_read(dir, got), 0);
    testutil_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_round_trip_and_bad_ones_are_refused),
        cmocka_unit_test(test_meta_properties_read_write),
        cmocka_unit_test(test_partition_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
