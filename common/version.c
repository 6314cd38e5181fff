/* version: see version.h. The two strings come from version_gen.h, which meson
 * writes from version_gen.h.in with vcs_tag (common/meson.build). */
#include "common/version.h"

#include <string.h>

#include "version_gen.h"

const char *version_string(void)
{
    return WEIR_VERSION;
}

const char *version_revision(void)
{
    return WEIR_GIT_REVISION[0] ? WEIR_GIT_REVISION : "unknown";
}

void version_print(FILE *f, const char *prog)
{
    fprintf(f, "%s %s (git %s)\n", prog, version_string(), version_revision());
}

bool version_requested(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0)
            return true;
    }
    return false;
}
