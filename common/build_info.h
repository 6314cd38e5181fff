/* build_info: what this binary was built from, for weir_build_info and
 * --version output. */
#pragma once

extern const char build_version[];  /* the project version, e.g. "0.1.0" */
extern const char build_revision[]; /* `git describe --always --dirty`, or "unknown" */
