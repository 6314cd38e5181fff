/* test_raft_store: a voter's durable Raft state besides the metadata log —
 * term, vote and term starts survive a reopen, the tail is cut where a new
 * leader's entries conflict, a torn end is cut, a tail covered by the metadata
 * log is emptied, and damage that loses entries is refused; a snapshot
 * install resets the tail and the term starts, and one interrupted by a crash
 * is finished or forgotten by the next start. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "coordinator/raft_store.h"
#include "tests/unit/testutil.h"

static struct craft_entry ent(int64_t term, const char *s)
{
    return (struct craft_entry){.term = term, .data = (uint8_t *)s, .len = strlen(s)};
}

static struct craft_store *reopen(const char *dir, int64_t log_next,
                                  struct craft_store_recovered *rec)
{
    struct craft_store *s = NULL;
    char err[512] = "";
    int r = craft_store_open(dir, log_next, &s, rec, err, sizeof(err));
    if (r < 0)
        fail_msg("open: %s (%s)", strerror(-r), err);
    return s;
}

static void tail_path(const char *dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, CRAFT_STORE_TAIL_FILE);
}

static void test_empty_store_opens_at_term_zero(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store_recovered rec;
    struct craft_store *s = reopen(dir, 1, &rec);
    assert_int_equal(rec.term, 0);
    assert_int_equal(rec.vote, 0);
    assert_int_equal(rec.n_tail, 0);
    assert_int_equal(craft_store_term_of(s, 0), 0);
    assert_int_equal(craft_store_tail_end(s), 1);
    craft_store_free(s);
    fsutil_remove_tree(dir);
    free(dir);
}

static void test_state_and_tail_survive_reopen(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store_recovered rec;
    struct craft_store *s = reopen(dir, 1, &rec);
    struct craft_entry e[] = {ent(2, ""), ent(2, "a"), ent(3, "bb"), ent(3, "ccc")};
    assert_int_equal(craft_store_write_sync(s, true, 3, 2, 1, e, 4), 0);
    assert_int_equal(craft_store_term_of(s, 0), 0);
    assert_int_equal(craft_store_term_of(s, 2), 2);
    assert_int_equal(craft_store_term_of(s, 3), 3);
    craft_store_free(s);

    s = reopen(dir, 1, &rec);
    assert_int_equal(rec.term, 3);
    assert_int_equal(rec.vote, 2);
    assert_int_equal(rec.n_tail, 4);
    assert_int_equal(rec.tail[0].term, 2);
    assert_int_equal(rec.tail[0].len, 0);
    assert_int_equal(rec.tail[3].term, 3);
    assert_memory_equal(rec.tail[3].data, "ccc", 3);
    craft_store_recovered_free(&rec);
    /* Entries 1 and 2 reached the metadata log meanwhile. */
    craft_store_free(s);
    s = reopen(dir, 3, &rec);
    assert_int_equal(rec.n_tail, 2);
    assert_memory_equal(rec.tail[0].data, "bb", 2);
    craft_store_recovered_free(&rec);
    craft_store_free(s);
    fsutil_remove_tree(dir);
    free(dir);
}

static void test_conflicting_entries_replace_the_tail(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store_recovered rec;
    struct craft_store *s = reopen(dir, 1, &rec);
    struct craft_entry a[] = {ent(1, "x"), ent(1, "y"), ent(1, "z")};
    assert_int_equal(craft_store_write_sync(s, true, 1, 1, 1, a, 3), 0);
    /* A new leader of term 2 overwrites from offset 2 on. */
    struct craft_entry b[] = {ent(2, "Y")};
    assert_int_equal(craft_store_write_sync(s, true, 2, 0, 2, b, 1), 0);
    assert_int_equal(craft_store_tail_end(s), 3);
    assert_int_equal(craft_store_term_of(s, 2), 2);
    assert_int_equal(craft_store_term_of(s, 1), 1);
    /* Outside the tail: refused. */
    assert_int_equal(craft_store_write_sync(s, false, 0, 0, 5, b, 1), -EINVAL);
    craft_store_free(s);
    s = reopen(dir, 1, &rec);
    assert_int_equal(rec.n_tail, 2);
    assert_int_equal(rec.tail[1].term, 2);
    assert_memory_equal(rec.tail[1].data, "Y", 1);
    assert_int_equal(rec.vote, 0);
    craft_store_recovered_free(&rec);
    craft_store_free(s);
    fsutil_remove_tree(dir);
    free(dir);
}

static void test_torn_tail_is_cut(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store_recovered rec;
    struct craft_store *s = reopen(dir, 0, &rec);
    struct craft_entry a[] = {ent(1, "one"), ent(1, "two")};
    assert_int_equal(craft_store_write_sync(s, true, 1, 1, 0, a, 2), 0);
    craft_store_free(s);
    char path[4300];
    tail_path(dir, path, sizeof(path));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 1), 0); /* the second record torn */
    s = reopen(dir, 0, &rec);
    assert_int_equal(rec.n_tail, 1);
    assert_true(rec.tail_dropped_bytes > 0);
    craft_store_recovered_free(&rec);
    craft_store_free(s);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 16 + 3);
    fsutil_remove_tree(dir);
    free(dir);
}

static void test_tail_covered_by_the_log_is_emptied(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store_recovered rec;
    struct craft_store *s = reopen(dir, 1, &rec);
    struct craft_entry a[] = {ent(1, "aaaa"), ent(1, "bbbb")};
    assert_int_equal(craft_store_write_sync(s, true, 1, 1, 1, a, 2), 0);
    craft_store_log_durable(s, 3);
    struct craft_entry b[] = {ent(1, "c")};
    assert_int_equal(craft_store_write_sync(s, false, 0, 0, 3, b, 1), 0);
    craft_store_free(s);
    char path[4300];
    tail_path(dir, path, sizeof(path));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 16 + 1);
    s = reopen(dir, 3, &rec);
    assert_int_equal(rec.n_tail, 1);
    assert_int_equal(rec.tail[0].term, 1);
    craft_store_recovered_free(&rec);
    craft_store_free(s);
    fsutil_remove_tree(dir);
    free(dir);
}

static void test_lost_entries_and_corrupt_state_are_refused(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store_recovered rec;
    struct craft_store *s = reopen(dir, 5, &rec);
    struct craft_entry a[] = {ent(1, "x")};
    assert_int_equal(craft_store_write_sync(s, true, 1, 1, 5, a, 1), 0);
    craft_store_free(s);
    /* The metadata log ends at 3: offsets 3 and 4 are nowhere. */
    char err[512] = "";
    assert_int_equal(craft_store_open(dir, 3, &s, &rec, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "rebuild this voter"));
    /* A flipped byte in the state file. */
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", dir, CRAFT_STORE_STATE_FILE);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 10), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, 10), 1);
    close(fd);
    assert_int_equal(craft_store_open(dir, 5, &s, &rec, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "corrupt"));
    fsutil_remove_tree(dir);
    free(dir);
}

/* A voter that lags: entries 1..4 in the tail (terms 1, 1, 2, 2) over a log
 * that ends at 1, in term 3. */
static struct craft_store *lagging_store(const char *dir)
{
    struct craft_store_recovered rec;
    struct craft_store *s = reopen(dir, 1, &rec);
    craft_store_recovered_free(&rec);
    struct craft_entry e[] = {ent(1, "a"), ent(1, "b"), ent(2, "c"), ent(2, "d")};
    assert_int_equal(craft_store_write_sync(s, true, 3, 0, 1, e, 4), 0);
    return s;
}

static void test_snapshot_install_resets_tail_and_term_starts(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store *s = lagging_store(dir);
    /* The leader's snapshot at 20, its last entry in term 3: nothing of the
     * tail survives. */
    assert_int_equal(craft_store_install_begin(s, 20, 3), 0);
    assert_int_equal(craft_store_install_end(s, 20, 3, true), 0);
    assert_int_equal(craft_store_tail_end(s), 20);
    assert_int_equal(craft_store_term_of(s, 19), 3);
    /* The leader's entries follow from the snapshot on. */
    struct craft_entry e[] = {ent(3, "x"), ent(3, "y")};
    assert_int_equal(craft_store_write_sync(s, false, 3, 0, 20, e, 2), 0);
    craft_store_free(s);

    struct craft_store_recovered rec;
    s = reopen(dir, 20, &rec); /* the metadata log starts at the snapshot */
    assert_int_equal(rec.term, 3);
    assert_int_equal(rec.n_tail, 2);
    assert_int_equal(rec.tail[0].term, 3);
    assert_memory_equal(rec.tail[1].data, "y", 1);
    assert_int_equal(craft_store_term_of(s, 19), 3);
    craft_store_recovered_free(&rec);
    craft_store_free(s);
    fsutil_remove_tree(dir);
    free(dir);
}

static void test_snapshot_install_keeps_a_matching_tail(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store *s = lagging_store(dir);
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, CRAFT_STORE_STATE_FILE);
    uint8_t *before, *after;
    size_t lb, la;
    assert_int_equal(fsutil_read_file(path, 1 << 20, &before, &lb), 0);
    /* Entry 3 has term 2 here too: entry 4 stays, nothing is written. */
    assert_int_equal(craft_store_install_begin(s, 4, 2), 0);
    assert_int_equal(fsutil_read_file(path, 1 << 20, &after, &la), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(after, before, lb);
    assert_int_equal(craft_store_install_end(s, 4, 2, true), 0);
    assert_int_equal(craft_store_tail_end(s), 5);
    craft_store_free(s);
    struct craft_store_recovered rec;
    s = reopen(dir, 4, &rec);
    assert_int_equal(rec.n_tail, 1);
    assert_memory_equal(rec.tail[0].data, "d", 1);
    assert_int_equal(rec.tail[0].term, 2);
    craft_store_recovered_free(&rec);
    craft_store_free(s);
    free(before);
    free(after);
    fsutil_remove_tree(dir);
    free(dir);
}

/* A crash between recording the install and finishing it: the metadata log
 * decides. Not switched (it still ends before the snapshot): the install is
 * forgotten and the old tail and terms are intact. Switched: it is finished. */
static void test_interrupted_snapshot_install_is_finished_or_forgotten(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp("rstore");
    struct craft_store *s = lagging_store(dir);
    /* Entry 3 has term 2, the snapshot says term 3 for entry 19: recorded. */
    assert_int_equal(craft_store_install_begin(s, 20, 3), 0);
    craft_store_free(s); /* crash before mlog_install_snapshot's rename */

    struct craft_store_recovered rec;
    s = reopen(dir, 1, &rec);
    assert_int_equal(rec.n_tail, 4);
    assert_int_equal(rec.tail[3].term, 2);
    assert_int_equal(craft_store_term_of(s, 19), 2);
    craft_store_recovered_free(&rec);
    /* Forgotten for good: a later start with a longer log does not apply it. */
    craft_store_free(s);
    s = reopen(dir, 1, &rec);
    craft_store_recovered_free(&rec);

    assert_int_equal(craft_store_install_begin(s, 20, 3), 0);
    craft_store_free(s); /* crash after the rename */
    s = reopen(dir, 20, &rec);
    assert_int_equal(rec.n_tail, 0);
    assert_int_equal(craft_store_tail_end(s), 20);
    assert_int_equal(craft_store_term_of(s, 19), 3);
    assert_int_equal(craft_store_term_of(s, 2), 1);
    craft_store_recovered_free(&rec);
    struct craft_entry e[] = {ent(3, "x")};
    assert_int_equal(craft_store_write_sync(s, false, 3, 0, 20, e, 1), 0);
    craft_store_free(s);
    s = reopen(dir, 20, &rec);
    assert_int_equal(rec.n_tail, 1);
    craft_store_recovered_free(&rec);

    /* A record with a corrupt CRC refuses to start, like any state file. */
    assert_int_equal(craft_store_install_begin(s, 30, 3), 0);
    craft_store_free(s);
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, CRAFT_STORE_STATE_FILE);
    uint8_t *b;
    size_t len;
    assert_int_equal(fsutil_read_file(path, 1 << 20, &b, &len), 0);
    b[len - 8] ^= 1;
    assert_int_equal(fsutil_write_atomic(path, b, len), 0);
    free(b);
    char err[512] = "";
    assert_int_equal(craft_store_open(dir, 20, &s, &rec, err, sizeof(err)), -EBADMSG);
    fsutil_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_store_opens_at_term_zero),
        cmocka_unit_test(test_state_and_tail_survive_reopen),
        cmocka_unit_test(test_conflicting_entries_replace_the_tail),
        cmocka_unit_test(test_torn_tail_is_cut),
        cmocka_unit_test(test_tail_covered_by_the_log_is_emptied),
        cmocka_unit_test(test_lost_entries_and_corrupt_state_are_refused),
        cmocka_unit_test(test_snapshot_install_resets_tail_and_term_starts),
        cmocka_unit_test(test_snapshot_install_keeps_a_matching_tail),
        cmocka_unit_test(test_interrupted_snapshot_install_is_finished_or_forgotten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
