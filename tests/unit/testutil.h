/* testutil: helpers shared by the unit tests (temporary directories). */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fsutil.h"

/* Create a fresh directory under $WEIR_TEST_TMPDIR (set by meson) or /tmp and
 * return its malloc'd path. Aborts on failure: a test cannot run without it. */
static inline char *testutil_mkdtemp(const char *name)
{
    const char *base = getenv("WEIR_TEST_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if (fsutil_mkdirs(base, 0755) < 0)
        abort();
    size_t n = strlen(base) + strlen(name) + 16;
    char *path = malloc(n);
    if (!path)
        abort();
    snprintf(path, n, "%s/%s.XXXXXX", base, name);
    if (!mkdtemp(path))
        abort();
    return path;
}

/* Remove the tree and free the path. NULL-safe. */
static inline void testutil_rmtree(char *path)
{
    if (!path)
        return;
    fsutil_remove_tree(path);
    free(path);
}
