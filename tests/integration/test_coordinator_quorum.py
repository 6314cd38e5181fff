"""A quorum of three weir-coordinators on 127.0.0.1 (docs/coordinator-quorum.md).

A create-topic through a broker is answered once a majority has it, and its
record reaches all three metadata logs; kill -9 of the leader elects a new one,
which commits the next create-topic; the old leader restarts and catches up.
Voters whose lists disagree, and a node.id not in the list, are refused.

Every process is started through tests/support/cluster.py's Proc on free ports
and stopped (or killed) by PID in the fixture's teardown.
"""

import base64
import glob
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402

try:
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # pragma: no cover - reported by deps.require
    AdminClient = None

LEADER = re.compile(r"became the coordinator leader in term (\d+)")


def log_records(data_dir):
    """Every record payload in a coordinator's metadata log, by offset
    (docs/metadata-log.md: 24-byte segment header, then u32 len | u32 crc |
    i64 offset | payload)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(data_dir, "metadata", "metadata-*.log"))):
        with open(path, "rb") as f:
            b = f.read()
        at = 24
        while at + 16 <= len(b):
            ln, _, off = struct.unpack(">IIq", b[at:at + 16])
            if at + 16 + ln > len(b):
                break
            out[off] = b[at + 16:at + 16 + ln]
            at += 16 + ln
    return out


def wait_for(what, pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("%s not within %.0f s" % (what, timeout))


class Quorum:
    def __init__(self, n=3, voters=None):
        self.root = tempfile.mkdtemp(prefix="weir-quorum-")
        self.ports = {i: weir_cluster.free_port() for i in range(1, n + 1)}
        self.voters = voters or ",".join("%d@127.0.0.1:%d" % (i, p)
                                         for i, p in sorted(self.ports.items()))
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        self.procs = {}
        self.started = []
        self.brokers = {}
        self.broker_ports = {}

    def data(self, i):
        return os.path.join(self.root, "c%d" % i)

    def args(self, i, voters=None):
        return ["--override", "node.id=%d" % i,
                "--override", "listeners=127.0.0.1:%d" % self.ports[i],
                "--override", "data.dir=%s" % self.data(i),
                "--override", "coordinator.quorum.voters=%s" % (voters or self.voters),
                "--override", "session.timeout.ms=6000",
                "--override", "heartbeat.interval.ms=500",
                # snapshots (and the quorum log's compaction) on every few records
                "--override", "metadata.snapshot.interval.records=4"]

    def format(self, i, voters=None):
        import subprocess
        argv = [weir_cluster.binary("coordinator/weir-coordinator"), "format",
                "--cluster-id", self.cluster_id] + self.args(i, voters)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=20)

    def start(self, i, voters=None):
        argv = [weir_cluster.binary("coordinator/weir-coordinator")] + self.args(i, voters)
        p = weir_cluster.Proc("coordinator-%d" % i, argv,
                              os.path.join(self.root, "coordinator-%d.log" % i))
        self.procs[i] = p
        self.started.append(p)
        p.start()
        return p

    def log(self, i):
        with open(self.procs[i].log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def leader(self, exclude=(), min_term=1):
        """The running voter that most recently became leader at >= min_term."""
        best = None
        for i, p in self.procs.items():
            if i in exclude or not p.running():
                continue
            terms = [int(t) for t in LEADER.findall(self.log(i))]
            if terms and max(terms) >= min_term and (best is None or max(terms) > best[1]):
                best = (i, max(terms))
        return best

    def start_broker(self, bid, coordinator):
        port = self.broker_ports.setdefault(bid, weir_cluster.free_port())
        argv = [weir_cluster.binary("broker/weir-broker"),
                "--override", "broker.id=%d" % bid,
                "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % port,
                "--override", "log.dirs=%s" % os.path.join(self.root, "broker-%d" % bid),
                "--override", "coordinator.connect=127.0.0.1:%d" % self.ports[coordinator]]
        p = weir_cluster.Proc("broker-%d" % bid, argv,
                              os.path.join(self.root, "broker-%d.log" % bid))
        self.brokers[bid] = p
        self.started.append(p)
        p.start()
        return "127.0.0.1:%d" % port

    def finish(self, failed):
        for p in reversed(self.started):
            if p.running():
                p.stop()
        problems = [x for x in (p.exit_problem() for p in self.started) if x]
        if failed or problems:
            tails = "\n".join("---- %s ----\n%s" % (p.name, p.tail(40)) for p in self.started)
            sys.stderr.write("quorum test directory %s\n%s\n" % (self.root, tails))
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        return problems


@pytest.fixture
def quorum(request):
    q = Quorum()
    failed_before = request.session.testsfailed
    yield q
    problems = q.finish(failed=request.session.testsfailed != failed_before)
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def create_topic(bootstrap, name):
    adm = AdminClient({"bootstrap.servers": bootstrap})
    fs = adm.create_topics([NewTopic(name, 1, 1)], request_timeout=15)
    for f in fs.values():
        assert f.result(20) is None


def has_topic(data_dir, name):
    needle = name.encode()
    return any(needle in rec for rec in log_records(data_dir).values())


def test_quorum_commits_fails_over_and_catches_up(quorum):
    deps.require(AdminClient is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka")
    q = quorum
    for i in (1, 2, 3):
        q.format(i)
    for i in (1, 2, 3):
        q.start(i)
    first, term = wait_for("a leader", q.leader, 15)

    # A create-topic through a broker registered with the leader.
    create_topic(q.start_broker(1, first), "quorum-a")
    for i in (1, 2, 3):
        wait_for("quorum-a in coordinator %d's log" % i, lambda: has_topic(q.data(i), "quorum-a"),
                 10)
    q.brokers[1].stop()

    # kill -9 the leader: the others elect a new one, which commits.
    q.procs[first].kill()
    t0 = time.monotonic()
    second, term2 = wait_for("a new leader", lambda: q.leader(exclude=(first,),
                                                               min_term=term + 1), 15)
    elected_s = time.monotonic() - t0
    assert second != first and term2 > term
    create_topic(q.start_broker(2, second), "quorum-b")
    for i in (1, 2, 3):
        if i != first:
            wait_for("quorum-b in coordinator %d's log" % i,
                     lambda: has_topic(q.data(i), "quorum-b"), 10)
    assert not has_topic(q.data(first), "quorum-b")

    # The old leader restarts as a follower and catches up from the leader.
    q.start(first)
    wait_for("the old leader catching up", lambda: has_topic(q.data(first), "quorum-b"), 15)
    # Snapshots let old segments go: compare the offsets all three still hold.
    logs = [log_records(q.data(i)) for i in (1, 2, 3)]
    common = set(logs[0]) & set(logs[1]) & set(logs[2])
    assert common
    for off in sorted(common):
        assert logs[0][off] == logs[1][off] == logs[2][off], "logs differ at offset %d" % off
    sys.stderr.write("new leader elected %.2f s after kill -9\n" % elected_s)


def test_voter_lists_that_disagree_are_refused(quorum):
    q = quorum
    other = "1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d" % (
        q.ports[1], q.ports[2], weir_cluster.free_port())
    q.format(1)
    q.format(2, voters=other)
    q.start(1)
    q.start(2, voters=other)
    # Both ends stop as soon as one message crosses, naming the other list.
    for i in (1, 2):
        wait_for("coordinator %d exiting" % i, lambda: not q.procs[i].running(), 15)
        assert q.procs[i].popen.returncode != 0
        assert "coordinator.quorum.voters and the cluster id must be the same" in q.log(i)
        q.started.remove(q.procs[i])  # its non-zero exit is the point of the test


def test_node_id_not_in_the_voter_list_is_refused(quorum):
    import subprocess
    q = quorum
    argv = [weir_cluster.binary("coordinator/weir-coordinator"), "--override", "node.id=4",
            "--override", "listeners=127.0.0.1:%d" % q.ports[1],
            "--override", "data.dir=%s" % q.data(1),
            "--override", "coordinator.quorum.voters=%s" % q.voters]
    r = subprocess.run(argv, capture_output=True, timeout=20)
    assert r.returncode != 0
    assert b"'node.id' 4 is not in 'coordinator.quorum.voters'" in r.stderr
