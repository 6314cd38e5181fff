"""Fault-suite session setup: turn SIGTERM (tests/run.sh's `timeout`) into an interrupt.

Without this, a SIGTERM ends pytest at once and the tests' finally blocks never run:
namespaces and veths made by a scenario would outlive it (the weir processes also get
the SIGTERM, from `timeout` signalling the whole process group). As an interrupt,
the running scenario unwinds through its cleanup first.
"""

import signal


def _interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _interrupt)
