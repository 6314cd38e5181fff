"""Snapshot install in a quorum of three weir-coordinators
(docs/coordinator-quorum.md, "Snapshot install").

A voter that was down while the leader compacted its log past the voter's
position, and a voter whose data directory was replaced by an empty one
(formatted with the same cluster id), catch up from the leader's newest
metadata snapshot: afterwards their metadata logs hold the leader's records
from the snapshot on, new records reach them, and such a voter can lead.

Every process is started through tests/support/cluster.py's Proc on free ports
and stopped (or killed) by PID in the fixture's teardown.
"""

import glob
import os
import re
import shutil
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import deps  # noqa: E402
from test_coordinator_quorum import (AdminClient, Quorum, create_topic, has_topic,  # noqa: E402
                                     log_records, wait_for)

INSTALLED = re.compile(r"installed the snapshot at offset (\d+)")


class DebugQuorum(Quorum):
    def args(self, i, voters=None):
        extra = ["--override", "log.level=debug"] if os.environ.get("WEIR_QUORUM_DEBUG") else []
        return Quorum.args(self, i, voters) + extra


@pytest.fixture
def quorum(request):
    q = DebugQuorum()
    failed_before = request.session.testsfailed
    yield q
    problems = q.finish(failed=request.session.testsfailed != failed_before)
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def snapshots(data_dir):
    return sorted(int(os.path.basename(p)[len("snapshot-"):-len(".snap")])
                  for p in glob.glob(os.path.join(data_dir, "metadata", "snapshot-*.snap")))


def in_state(data_dir, name):
    """The topic is in the metadata log or in its newest snapshot (an image in
    protobuf, where names are plain bytes)."""
    if has_topic(data_dir, name):
        return True
    snaps = snapshots(data_dir)
    if not snaps:
        return False
    with open(os.path.join(data_dir, "metadata", "snapshot-%020d.snap" % snaps[-1]), "rb") as f:
        return name.encode() in f.read()


def installed_at(q, i):
    offs = [int(x) for x in INSTALLED.findall(q.log(i))]
    return offs[-1] if offs else None


def create_many(q, leader, prefix, n):
    bootstrap = q.start_broker(10, leader)
    for k in range(n):
        create_topic(bootstrap, "%s-%d" % (prefix, k))
    q.brokers[10].stop()
    del q.brokers[10]


def same_records_from(q, i, leader, start):
    """Voter i holds exactly the leader's records from @start to the leader's end."""
    mine, theirs = log_records(q.data(i)), log_records(q.data(leader))
    end = max(theirs) + 1
    if any(off not in mine or mine[off] != theirs[off] for off in range(start, end)):
        return False
    return all(off >= start for off in mine)


def catch_up_by_snapshot(q, victim, leader, prefix):
    s = wait_for("coordinator %d installing a snapshot" % victim,
                 lambda: installed_at(q, victim), 30)
    assert s in snapshots(q.data(victim)), "the installed snapshot is not the log's snapshot"
    wait_for("%s-last in coordinator %d's state" % (prefix, victim),
             lambda: in_state(q.data(victim), "%s-last" % prefix), 15)
    # Records committed after the install reach its log.
    create_topic(q.start_broker(11, leader), "%s-next" % prefix)
    q.brokers[11].stop()
    del q.brokers[11]
    wait_for("%s-next in coordinator %d's log" % (prefix, victim),
             lambda: has_topic(q.data(victim), "%s-next" % prefix), 15)
    # While records kept coming the leader may have compacted past the first
    # install: compare from the voter's last one.
    s = installed_at(q, victim)
    assert s in snapshots(q.data(victim))
    wait_for("coordinator %d's log equal to the leader's from offset %d" % (victim, s),
             lambda: same_records_from(q, victim, leader, s), 15)
    return s


def start_three(q):
    for i in (1, 2, 3):
        q.format(i)
    for i in (1, 2, 3):
        q.start(i)
    leader, term = wait_for("a leader", q.leader, 15)
    victim = next(i for i in (3, 2, 1) if i != leader)
    return leader, term, victim


def test_lagging_voter_installs_the_leaders_snapshot(quorum):
    deps.require(AdminClient is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka")
    q = quorum
    leader, term, victim = start_three(q)
    create_topic(q.start_broker(1, leader), "snap-first")
    wait_for("snap-first on coordinator %d" % victim, lambda: has_topic(q.data(victim), "snap-first"),
             10)
    q.brokers[1].stop()
    q.procs[victim].stop()
    behind = max(log_records(q.data(victim))) + 1

    # Enough records that the leader compacts past the stopped voter's end.
    create_many(q, leader, "snap-lag", 12)
    create_topic(q.start_broker(2, leader), "snap-lag-last")
    q.brokers[2].stop()
    assert max(snapshots(q.data(leader))) > behind + 8

    t0 = time.monotonic()
    q.start(victim)
    wait_for("coordinator %d installing a snapshot" % victim, lambda: installed_at(q, victim), 30)
    sys.stderr.write("snapshot installed %.2f s after the lagging voter's start\n"
                     % (time.monotonic() - t0))
    s = catch_up_by_snapshot(q, victim, leader, "snap-lag")
    assert s > behind
    assert "cannot install" not in q.log(victim)

    # The voter that installed the snapshot can lead: kill leaders until it does.
    down = None
    current = leader
    for round_ in range(4):
        if current == victim:
            break
        q.procs[current].kill()
        if down is not None:
            q.start(down)
        down = current
        current, term = wait_for("a new leader", lambda: q.leader(exclude=(down,),
                                                                  min_term=term + 1), 20)
    assert current == victim, "coordinator %d never led" % victim
    create_topic(q.start_broker(3, victim), "snap-after")
    others = [i for i in (1, 2, 3) if i not in (victim, down)]
    for i in [victim] + others:
        wait_for("snap-after in coordinator %d's log" % i,
                 lambda: has_topic(q.data(i), "snap-after"), 15)


def test_voter_with_an_empty_disk_catches_up(quorum):
    deps.require(AdminClient is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka")
    q = quorum
    leader, term, victim = start_three(q)
    create_many(q, leader, "empty", 10)
    create_topic(q.start_broker(1, leader), "empty-last")
    q.brokers[1].stop()
    wait_for("empty-last on coordinator %d" % victim, lambda: has_topic(q.data(victim), "empty-last"),
             10)

    # The machine is replaced: a new, empty data directory with the same cluster id.
    q.procs[victim].kill()
    shutil.rmtree(q.data(victim))
    q.format(victim)
    assert not has_topic(q.data(victim), "empty-last")
    q.start(victim)
    catch_up_by_snapshot(q, victim, leader, "empty")

    # It follows from there on.
    create_topic(q.start_broker(2, leader), "empty-after")
    wait_for("empty-after in coordinator %d's log" % victim,
             lambda: has_topic(q.data(victim), "empty-after"), 15)
