"""Fencing under load (docs/scaling.md, coordinator/session.c) with real processes.

Three brokers that all go silent at once past the session timeout — what a big
create did to a loaded machine — lose one of them, not all three: the
coordinator fences one broker per session timeout unless a session is clearly
dead, and the others keep their sessions and epochs if they come back within
that interval. A broker whose connection closes is still fenced after
session.disconnect.timeout.ms whatever the interval.

Real coordinator and brokers on free ports (tests/support/cluster.py), with the
harness's session.timeout.ms of 6000 ms and heartbeats every 500 ms.
"""

import os
import re
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402

SESSION_S = 6.0
SILENT_FENCE = re.compile(r"broker (\d+) \(epoch \d+\) sent no heartbeat")
DISCONNECT_FENCE = re.compile(r"broker (\d+) \(epoch \d+\) did not return after its connection")
HELD = "not fencing another yet"


@pytest.fixture
def cluster(request):
    c = weir_cluster.Cluster(brokers=3)
    failed_before = request.session.testsfailed
    c.start()
    yield c
    problems = c.finish(failed=request.session.testsfailed != failed_before)
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def coordinator_log(c):
    with open(c.coordinator.log_path, "rb") as f:
        return f.read().decode(errors="replace")


def wait_for(what, pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("%s not within %.0f s" % (what, timeout))


def test_brokers_silent_together_are_fenced_one_per_session_timeout(cluster):
    c = cluster
    time.sleep(1.0)  # every broker has heartbeated on its registration connection
    for b in (1, 2, 3):
        c.pause_broker(b)
    t0 = time.monotonic()
    try:
        # The first fence comes at the session timeout (no metadata owed: no grace).
        first = wait_for("a fence", lambda: SILENT_FENCE.findall(coordinator_log(c)),
                         SESSION_S + 4)
        assert len(first) == 1, first
        wait_for("the others held back", lambda: HELD in coordinator_log(c), 2)
        # Still within the interval (and before the others are clearly dead).
        time.sleep(max(0.0, SESSION_S + 2.5 - (time.monotonic() - t0)))
        assert len(SILENT_FENCE.findall(coordinator_log(c))) == 1
    finally:
        for b in (1, 2, 3):
            c.resume_broker(b)
    # The two held brokers heartbeat again with their epochs; only the fenced one
    # registers anew. Past the end of the interval nobody else is fenced.
    fenced = int(first[0])
    time.sleep(max(0.0, 2 * SESSION_S + 3 - (time.monotonic() - t0)))
    log = coordinator_log(c)
    assert SILENT_FENCE.findall(log) == first, log[-3000:]
    reregistered = re.findall(r"registering broker (\d+) .* with epoch (\d+)", log)
    assert [int(b) for b, e in reregistered[3:]] == [fenced], reregistered


def test_a_closed_connection_fences_even_within_the_interval(cluster):
    c = cluster
    time.sleep(1.0)
    for b in (1, 2):
        c.pause_broker(b)
    try:
        first = wait_for("a fence", lambda: SILENT_FENCE.findall(coordinator_log(c)),
                         SESSION_S + 4)
        survivor = ({1, 2} - {int(first[0])}).pop()
        t_kill = time.monotonic()
        c.kill9_broker(3)  # its connection closes: fenced after 500 ms, interval or not
        wait_for("broker 3 fenced on its closed connection",
                 lambda: "3" in DISCONNECT_FENCE.findall(coordinator_log(c)), 3)
        assert time.monotonic() - t_kill < 3
        assert len(SILENT_FENCE.findall(coordinator_log(c))) == 1  # the survivor is held
    finally:
        for b in (1, 2):
            c.resume_broker(b)
    time.sleep(2)
    assert len(SILENT_FENCE.findall(coordinator_log(c))) == 1, survivor


# ---- heartbeats on their own thread (broker/heartbeat.c) ----------------------------
#
# test.loop.stall.ms makes a broker's event loop sleep that long on SIGUSR2: the
# loop is wedged, the heartbeat thread is not. Heartbeats stop once the loop has
# not turned for half the session timeout (3 s here), so a stall under the
# session timeout fences nobody, and a loop wedged for longer than the budget
# plus a session timeout is fenced as a silent broker.

BUSY_MS = 5500      # under the session timeout: never fenced
WEDGED_MS = 12000   # past budget (3 s) + session timeout (6 s): fenced


@pytest.fixture
def stall_cluster(request):
    c = weir_cluster.Cluster(brokers=3, per_broker_overrides={
        1: {"test.loop.stall.ms": str(BUSY_MS)},
        2: {"test.loop.stall.ms": str(WEDGED_MS)}})
    failed_before = request.session.testsfailed
    c.start()
    yield c
    problems = c.finish(failed=request.session.testsfailed != failed_before)
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def broker_log(c, bid):
    with open(c.brokers[bid].log_path, "rb") as f:
        return f.read().decode(errors="replace")


def test_a_busy_loop_is_not_fenced_and_a_wedged_one_is(stall_cluster):
    c = stall_cluster
    time.sleep(1.5)  # registered, heartbeating from the heartbeat thread
    t0 = time.monotonic()
    os.kill(c.brokers[1].pid, signal.SIGUSR2)
    os.kill(c.brokers[2].pid, signal.SIGUSR2)
    fenced = wait_for("the wedged broker fenced",
                      lambda: SILENT_FENCE.findall(coordinator_log(c)), 3.0 + SESSION_S + 4)
    fence_s = time.monotonic() - t0
    assert fenced == ["2"], fenced
    # Heartbeats went on for about half the session timeout (3 s, less one
    # 500 ms interval), then the session ran out (6 s).
    assert 3.0 + SESSION_S - 1.0 <= fence_s <= 3.0 + SESSION_S + 2.5, fence_s
    print("wedged broker fenced %.1f s after its loop stopped" % fence_s)
    assert "withholding heartbeats" in broker_log(c, 2)
    # Broker 2 wakes up, is refused and registers again; broker 1 was busy for
    # 5.5 s and kept its session (and epoch) throughout.
    wait_for("broker 2 registered again",
             lambda: "registering again" in broker_log(c, 2), WEDGED_MS / 1000 + 5)
    time.sleep(1.0)
    assert SILENT_FENCE.findall(coordinator_log(c)) == ["2"]
    assert "withholding heartbeats" in broker_log(c, 1)  # 5.5 s > the 3 s budget
    assert "turned again after a stall" in broker_log(c, 1)
    reregistered = re.findall(r"registering broker (\d+) .* with epoch (\d+)", coordinator_log(c))
    assert [int(b) for b, e in reregistered[3:]] == [2], reregistered
