"""deps: a test that cannot run here skips, and says why; under CI=true it fails.

A test that needs something this machine lacks (node, the npm registry, permission
to make network namespaces ...) calls require(ok, missing, install). On a developer
machine that is a skip whose reason names what is missing and how to install it
(tests/run.sh counts and lists skips). Under CI=true it is a failure: CI machines
install everything (deploy/install-deps.sh), and a suite that skipped there would
look the same as one that ran.

Use pytest.skip directly only for reasons that are not about the machine.
"""

import os

import pytest


def in_ci():
    """True when $CI says this is a CI machine (CI=true, as CI systems set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(ok, missing, install):
    """Go on if @ok; else skip, or fail under CI=true. @missing says what is not here
    ("node >= 20.19.4 (found 18.19.0)"), @install how to get it."""
    __tracebackhide__ = True  # pytest reports the caller's line, not this one
    if ok:
        return
    why = "%s; %s" % (missing, install)
    if in_ci():
        pytest.fail("%s [CI=true: a missing dependency fails instead of skipping]" % why,
                    pytrace=False)
    pytest.skip(why)
