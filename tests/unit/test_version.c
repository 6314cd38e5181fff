/* Tests for common/version: the version is the project's, the revision is a
 * git revision or "unknown", version_print writes one line in the form the
 * deployment tooling parses, and --version is found before "--" only. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/version.h"

static void test_version_strings(void **state)
{
    (void)state;
    const char *v = version_string();
    int a, b, c;
    char extra;
    assert_int_equal(sscanf(v, "%d.%d.%d%c", &a, &b, &c, &extra), 3);
    const char *rev = version_revision();
    assert_non_null(rev);
    if (strcmp(rev, "unknown") != 0) {
        size_t hex = strspn(rev, "0123456789abcdef");
        assert_true(hex >= 7);
        assert_true(rev[hex] == '\0' || strcmp(rev + hex, "-dirty") == 0);
    }
}

static void test_version_print_one_line(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    version_print(f, "weir-broker");
    fclose(f);
    char want[256];
    snprintf(want, sizeof(want), "weir-broker %s (git %s)\n", version_string(),
             version_revision());
    assert_string_equal(buf, want);
    free(buf);
}

static void test_version_requested(void **state)
{
    (void)state;
    char *a1[] = {"weir-broker", "--version", NULL};
    char *a2[] = {"weir-broker", "--config", "x", "-V", NULL};
    char *a3[] = {"weir", "produce", "--", "--version", NULL};
    char *a4[] = {"weir-coordinator", "--config", "x", NULL};
    char *a5[] = {"weir-broker", "--versionx", NULL};
    assert_true(version_requested(2, a1));
    assert_true(version_requested(4, a2));
    assert_false(version_requested(4, a3));
    assert_false(version_requested(3, a4));
    assert_false(version_requested(2, a5));
    assert_false(version_requested(1, a1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_strings),
        cmocka_unit_test(test_version_print_one_line),
        cmocka_unit_test(test_version_requested),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
