/* Tests for common/utf8: every length of well-formed sequence, and each kind of
 * ill-formed one (stray continuation, truncation, overlong forms, surrogates,
 * past U+10FFFF, bytes that never start a sequence). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/utf8.h"

static size_t len_of(const char *s)
{
    return utf8_seq_len((const unsigned char *)s, strlen(s));
}

static void test_utf8_well_formed_sequences(void **state)
{
    (void)state;
    assert_int_equal(len_of("a"), 1);
    assert_int_equal(len_of("\x7f"), 1);
    assert_int_equal(len_of("\xc2\x80"), 2);          /* U+0080 */
    assert_int_equal(len_of("\xc3\xa9z"), 2);         /* é, then more */
    assert_int_equal(len_of("\xe0\xa0\x80"), 3);      /* U+0800 */
    assert_int_equal(len_of("\xe2\x82\xac"), 3);      /* € */
    assert_int_equal(len_of("\xef\xbf\xbd"), 3);      /* U+FFFD */
    assert_int_equal(len_of("\xf0\x90\x80\x80"), 4);  /* U+10000 */
    assert_int_equal(len_of("\xf4\x8f\xbf\xbf"), 4);  /* U+10FFFF */
}

static void test_utf8_ill_formed_sequences(void **state)
{
    (void)state;
    assert_int_equal(len_of("\x80"), 0);              /* stray continuation */
    assert_int_equal(len_of("\xbf"), 0);
    assert_int_equal(len_of("\xc3"), 0);              /* truncated */
    assert_int_equal(len_of("\xe2\x82"), 0);
    assert_int_equal(len_of("\xf0\x9f\x98"), 0);
    assert_int_equal(len_of("\xe2\x28\xa1"), 0);      /* not a continuation */
    assert_int_equal(len_of("\xc0\xaf"), 0);          /* overlong '/' */
    assert_int_equal(len_of("\xc1\xbf"), 0);
    assert_int_equal(len_of("\xe0\x9f\xbf"), 0);      /* overlong U+07FF */
    assert_int_equal(len_of("\xf0\x8f\xbf\xbf"), 0);  /* overlong U+FFFF */
    assert_int_equal(len_of("\xed\xa0\x80"), 0);      /* surrogate U+D800 */
    assert_int_equal(len_of("\xed\xbf\xbf"), 0);      /* surrogate U+DFFF */
    assert_int_equal(len_of("\xf4\x90\x80\x80"), 0);  /* U+110000 */
    assert_int_equal(len_of("\xf8\x88\x80\x80\x80"), 0);
    assert_int_equal(len_of("\xfe"), 0);
    assert_int_equal(len_of("\xff"), 0);
    /* The length bound is honoured even when the bytes go on. */
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_well_formed_sequences),
        cmocka_unit_test(test_utf8_ill_formed_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
