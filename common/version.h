/* version: the release version and the git revision a program was built from,
 * for `weir-broker --version`, `weir-coordinator --version` and `weir --version`.
 *
 * The version is meson's project version; the revision is `git describe
 * --always --dirty` of the source tree at build time (meson's vcs_tag, refreshed
 * on every build, rewritten only when it changed), or "unknown" when the sources
 * are not a git checkout (a release tarball). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

/* "0.1.0" */
const char *version_string(void);
/* "f0361e7a1b2c" or "f0361e7a1b2c-dirty" or "unknown" */
const char *version_revision(void);
/* Print "@prog VERSION (git REVISION)\n" to @f. */
void version_print(FILE *f, const char *prog);
/* True when argv[1..] asks for the version (--version or -V) before any "--". */
bool version_requested(int argc, char **argv);
