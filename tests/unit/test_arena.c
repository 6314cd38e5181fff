/* Tests for common/arena: alignment and non-overlap of allocations, the cap on
 * held memory (including chunks trimmed near it and overflowing array sizes),
 * dedicated chunks for large allocations, reset keeping one chunk, and the
 * string/memory copies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/arena.h"

static void test_arena_allocations_are_aligned_and_disjoint(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 256, 0);
    static const size_t aligns[] = {1, 2, 4, 8, 16, 32, 64};
    unsigned char *ptrs[70];
    size_t sizes[70];
    for (size_t i = 0; i < 70; i++) {
        size_t al = aligns[i % 7];
        sizes[i] = 1 + (i * 7) % 23;
        ptrs[i] = arena_alloc(&a, sizes[i], al);
        assert_non_null(ptrs[i]);
        assert_int_equal((uintptr_t)ptrs[i] % al, 0);
        memset(ptrs[i], (int)i, sizes[i]);
    }
    /* Every block still holds its own pattern: nothing overlapped. */
    for (size_t i = 0; i < 70; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(ptrs[i][j], (unsigned char)i);
    /* align 0 means max_align_t */
    void *p = arena_alloc(&a, 3, 0);
    assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
    arena_deinit(&a);
}

static void test_arena_cap_bounds_reserved_memory(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024, 10000);
    size_t got = 0;
    for (;;) {
        void *p = arena_alloc(&a, 100, 4);
        if (!p)
            break;
        got += 100;
        assert_true(arena_reserved(&a) <= 10000);
    }
    /* Close to the cap, not far below it: trimmed chunks use what is left. */
    assert_true(got >= 9000);
    assert_true(got <= 10000);
    assert_true(arena_reserved(&a) <= 10000);
    void *q;
    assert_int_equal(arena_alloc_array(&a, 10, 100, 8, &q), -EMSGSIZE);
    arena_deinit(&a);
}

static void test_arena_single_allocation_over_cap_fails(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024, 4096);
    assert_null(arena_alloc(&a, 4097, 1));
    assert_int_equal(arena_reserved(&a), 0);
    assert_non_null(arena_alloc(&a, 4096, 1));
    assert_null(arena_alloc(&a, 1, 1));
    arena_deinit(&a);
}

static void test_arena_alloc_array_checks_overflow_and_zeroes(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0, 0); /* uncapped */
    void *p = (void *)1;
    assert_int_equal(arena_alloc_array(&a, 0, 16, 8, &p), 0);
    assert_null(p);
    p = (void *)1;
    assert_int_equal(arena_alloc_array(&a, SIZE_MAX / 2, 4, 8, &p), -EMSGSIZE);
    assert_ptr_equal(p, (void *)1); /* untouched on error */
    assert_int_equal(arena_alloc_array(&a, SIZE_MAX, SIZE_MAX, 8, &p), -EMSGSIZE);

    /* Dirty memory, reset, and the reused memory comes back zeroed. */
    unsigned char *d = arena_alloc(&a, 512, 1);
    memset(d, 0xff, 512);
    arena_reset(&a);
    unsigned char *z;
    assert_int_equal(arena_alloc_array(&a, 128, 4, 4, (void **)&z), 0);
    for (size_t i = 0; i < 512; i++)
        assert_int_equal(z[i], 0);
    arena_deinit(&a);
}

static void test_arena_large_allocation_keeps_head_chunk_in_use(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024, 0);
    char *s1 = arena_alloc(&a, 16, 1);
    char *big = arena_alloc(&a, 5000, 8);
    char *s2 = arena_alloc(&a, 16, 1);
    assert_non_null(s1);
    assert_non_null(big);
    assert_non_null(s2);
    /* s2 follows s1 in the same chunk: the big block did not replace it. */
    assert_ptr_equal(s2, s1 + 16);
    assert_int_equal(arena_reserved(&a), 1024 + 5000);
    memset(big, 1, 5000);
    arena_deinit(&a);
}

static void test_arena_reset_keeps_one_chunk_and_forgets_the_rest(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 512, 0);
    for (int i = 0; i < 20; i++)
        assert_non_null(arena_alloc(&a, 100, 8));
    assert_non_null(arena_alloc(&a, 4000, 8));
    assert_true(arena_reserved(&a) > 512);
    assert_true(arena_used(&a) >= 2000 + 4000);
    arena_reset(&a);
    assert_int_equal(arena_reserved(&a), 512);
    assert_int_equal(arena_used(&a), 0);
    /* Small requests after the reset are served by the kept chunk. */
    assert_non_null(arena_alloc(&a, 200, 8));
    assert_non_null(arena_alloc(&a, 200, 8));
    assert_int_equal(arena_reserved(&a), 512);
    arena_reset(&a);
    arena_reset(&a);
    arena_deinit(&a);
    arena_deinit(&a); /* twice is harmless */
    arena_deinit(NULL);
}

static void test_arena_reset_on_empty_arena(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 64, 100);
    arena_reset(&a);
    assert_int_equal(arena_reserved(&a), 0);
    assert_non_null(arena_alloc(&a, 10, 1));
    arena_deinit(&a);
}

static void test_arena_copies(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 128, 0);
    char *s = arena_strdup(&a, "weir");
    assert_string_equal(s, "weir");
    char *t = arena_strndup(&a, "broker-1", 6);
    assert_string_equal(t, "broker");
    char *u = arena_strndup(&a, "ab", 10);
    assert_string_equal(u, "ab");
    char *e = arena_strdup(&a, "");
    assert_string_equal(e, "");
    unsigned char raw[5] = {0, 1, 2, 0, 4};
    unsigned char *m = arena_memdup(&a, raw, sizeof(raw));
    assert_memory_equal(m, raw, sizeof(raw));
    assert_non_null(arena_memdup(&a, raw, 0));
    arena_deinit(&a);
}

static void test_arena_copies_fail_over_cap(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 16, 16);
    assert_null(arena_strdup(&a, "this string is longer than sixteen bytes"));
    assert_non_null(arena_strdup(&a, "short"));
    arena_deinit(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_allocations_are_aligned_and_disjoint),
        cmocka_unit_test(test_arena_cap_bounds_reserved_memory),
        cmocka_unit_test(test_arena_single_allocation_over_cap_fails),
        cmocka_unit_test(test_arena_alloc_array_checks_overflow_and_zeroes),
        cmocka_unit_test(test_arena_large_allocation_keeps_head_chunk_in_use),
        cmocka_unit_test(test_arena_reset_keeps_one_chunk_and_forgets_the_rest),
        cmocka_unit_test(test_arena_reset_on_empty_arena),
        cmocka_unit_test(test_arena_copies),
        cmocka_unit_test(test_arena_copies_fail_over_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
