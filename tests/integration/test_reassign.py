"""Partition reassignment (KIP-455) and leader elections on request (KIP-460)
through Kafka's own APIs: AlterPartitionReassignments, ListPartitionReassignments
and ElectLeaders, driven by kafkajs's admin client (node/kafkajs_reassign.js,
the last test) and otherwise sent raw (tests/support/kafka_raw.py; neither
Debian Python client library has them), with a confluent-kafka acks=all
producer and a consumer running alongside (tests/support/checker.py) where data
must survive the move.

Real coordinator and brokers on free ports (tests/support/cluster.py); moves are
kept in progress by pausing the adding broker (SIGSTOP) for less than the
session timeout.
"""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REPLICA_ASSIGNMENT = 39
PREFERRED_LEADER_NOT_AVAILABLE = 80
ELECTION_NOT_NEEDED = 84
NO_REASSIGNMENT_IN_PROGRESS = 85

BROKER = {"replica.lag.time.max.ms": "2000"}

try:
    import confluent_kafka
except ImportError:  # pragma: no cover - reported by need_clients()
    confluent_kafka = None


def need_clients():
    deps.require(confluent_kafka is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka (deploy/install-deps.sh)")


@pytest.fixture
def cluster(request):
    need_clients()
    yield from weir_cluster.started(request, brokers=3, broker_overrides=BROKER)


@pytest.fixture
def cluster_no_rebalance(request):
    need_clients()
    yield from weir_cluster.started(request, brokers=3, broker_overrides=BROKER,
                                    coordinator_overrides={"auto.leader.rebalance.enable": "false"})


def wait_for(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def live(c):
    return min(b for b, p in c.brokers.items() if p.running() and not getattr(p, "paused", False))


def call(c, fn, *args, via=None, **kw):
    conn = kafka_raw.Conn(*c.addr(via or live(c)), timeout=40)
    try:
        return fn(conn, *args, **kw)
    finally:
        conn.close()


def parts(c, topic, via=None):
    """{partition: metadata v9 partition} as broker @via sees it."""
    md = call(c, kafka_raw.metadata_v9, [topic], via=via)
    return {q["partition"]: q for q in md["topics"][topic]["partitions"]}


def create_assigned(c, name, assignment, configs=None):
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    fs = adm.create_topics([NewTopic(name, len(assignment), replica_assignment=assignment, config=configs or {})],
                           request_timeout=10)
    for f in fs.values():
        assert f.result(15) is None
    c.wait_topic(name, len(assignment))


def produce_some(c, topic, n_parts, per_part, size=100, chk=None):
    """Data to move, acks=all; registered with @chk (a Checker) when given, so
    its consumer expects these values too."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 20})
    for i in range(per_part):
        for q in range(n_parts):
            v = b"%d-%d-" % (q, i) + b"x" * size
            if chk is not None:
                chk.register(v.decode(), q)
            while True:
                try:
                    p.produce(topic, v, partition=q)
                    break
                except BufferError:
                    p.poll(0.05)
    assert p.flush(60) == 0


def moving(c, topic=None):
    err, out = call(c, kafka_raw.list_partition_reassignments, None)
    assert err == 0
    return {k: v for k, v in out.items() if topic is None or k[0] == topic}


def settled(c, topic, want):
    """Every broker's metadata shows replicas and ISR == @want {p: [ids]}."""
    for b, proc in c.brokers.items():
        if not proc.running():
            continue
        ps = parts(c, topic, via=b)
        for p, reps in want.items():
            if ps[p]["replicas"] != reps or sorted(ps[p]["isr"]) != sorted(reps):
                return False
    return True


def topic_dirs(c, bid, topic):
    """The live replica directories of @topic on broker @bid (set-aside
    "-stray" ones are not replicas)."""
    d = c.log_dir(bid)
    if not os.path.isdir(d):
        return []
    return sorted(x for x in os.listdir(d)
                  if x.startswith(topic + "-") and x[len(topic) + 1:].isdigit())


def test_move_with_acks_all_producer_loses_nothing_and_removes_old_replicas(cluster):
    from checker import Checker

    c = cluster
    create_assigned(c, "mv", [[1, 2], [2, 1], [1, 2]], {"min.insync.replicas": "1"})
    chk = Checker(c.bootstrap(), "mv", 3, rate=200)
    produce_some(c, "mv", 3, 2000, chk=chk)
    chk.start()
    try:
        chk.wait_oks(100, 20)
        target = {0: [2, 3], 1: [3, 2], 2: [2, 3]}
        err, msg, res = call(c, kafka_raw.alter_partition_reassignments,
                             {("mv", p): r for p, r in target.items()})
        assert err == 0, msg
        assert all(v[0] == 0 for v in res.values()), res
        wait_for("the moves to complete", lambda: not moving(c, "mv"), 60)
        wait_for("every broker to see the new replicas and ISR", lambda: settled(c, "mv", target))
        chk.wait_oks(chk.ok_count() + 200, 30)
    finally:
        r = chk.finish()
    assert not chk.violations(r), chk.summary(r)
    # Broker 1 holds no replica any more: its directories are deleted.
    wait_for("broker 1 to delete its replicas", lambda: topic_dirs(c, 1, "mv") == [])
    assert topic_dirs(c, 3, "mv") == ["mv-0", "mv-1", "mv-2"]
    ps = parts(c, "mv")
    assert [ps[p]["leader"] for p in range(3)] == [2, 3, 2] or all(
        ps[p]["leader"] in target[p] for p in range(3))


def test_cancel_mid_move_returns_to_the_original_replicas(cluster):
    c = cluster
    create_assigned(c, "cx", [[1, 2]])
    produce_some(c, "cx", 1, 500)
    c.pause_broker(3)  # the adding broker cannot catch up
    try:
        err, _, res = call(c, kafka_raw.alter_partition_reassignments, {("cx", 0): [2, 3]})
        assert err == 0 and res[("cx", 0)][0] == 0, res
        assert moving(c, "cx") == {("cx", 0): ([1, 2, 3], [3], [1])}
        ps = parts(c, "cx")
        assert ps[0]["replicas"] == [1, 2, 3] and sorted(ps[0]["isr"]) == [1, 2]
        err, _, res = call(c, kafka_raw.alter_partition_reassignments, {("cx", 0): None})
        assert res[("cx", 0)][0] == 0, res
        assert moving(c, "cx") == {}
        ps = parts(c, "cx")
        assert ps[0]["replicas"] == [1, 2] and sorted(ps[0]["isr"]) == [1, 2]
        err, _, res = call(c, kafka_raw.alter_partition_reassignments, {("cx", 0): None})
        assert res[("cx", 0)][0] == NO_REASSIGNMENT_IN_PROGRESS, res
    finally:
        c.resume_broker(3)
    wait_for("broker 3 to delete the cancelled replica", lambda: topic_dirs(c, 3, "cx") == [])


def test_leader_killed_mid_move_then_move_completes_without_loss(cluster):
    from checker import Checker

    c = cluster
    create_assigned(c, "lk", [[1, 2]], {"min.insync.replicas": "1"})
    chk = Checker(c.bootstrap(), "lk", 1, rate=200).start()
    try:
        chk.wait_oks(200, 20)
        c.pause_broker(3)
        try:
            err, _, res = call(c, kafka_raw.alter_partition_reassignments, {("lk", 0): [2, 3]})
            assert res[("lk", 0)][0] == 0, res
            c.kill9_broker(1)  # the leader, being removed
            # The target ISR wins: broker 2 leads, the move is still on.
            wait_for("broker 2 to lead", lambda: parts(c, "lk", via=2)[0]["leader"] == 2)
            assert ("lk", 0) in moving(c, "lk")
        finally:
            c.resume_broker(3)
        wait_for("the move to complete", lambda: not moving(c, "lk"), 60)
        wait_for("replicas [2, 3] in sync", lambda: settled(c, "lk", {0: [2, 3]}))
        chk.wait_oks(chk.ok_count() + 200, 30)
    finally:
        r = chk.finish()
    assert not chk.violations(r), chk.summary(r)
    # Broker 1 comes back: the metadata no longer assigns it the replica, which
    # it never saw removed, so the log is set aside (-stray), never served.
    c.start_broker(1)
    wait_for("broker 1 to drop the removed replica", lambda: topic_dirs(c, 1, "lk") == [])


def test_adding_replica_killed_mid_move_catches_up_after_restart(cluster):
    from checker import Checker

    c = cluster
    create_assigned(c, "ak", [[1, 2]], {"min.insync.replicas": "1"})
    chk = Checker(c.bootstrap(), "ak", 1, rate=200)
    produce_some(c, "ak", 1, 3000, chk=chk)
    chk.start()
    try:
        chk.wait_oks(100, 20)
        c.pause_broker(3)
        err, _, res = call(c, kafka_raw.alter_partition_reassignments, {("ak", 0): [2, 3]})
        assert res[("ak", 0)][0] == 0, res
        c.kill9_broker(3)  # the new replica dies mid-move (paused: never caught up)
        time.sleep(1)
        assert moving(c, "ak") == {("ak", 0): ([1, 2, 3], [3], [1])}
        assert sorted(parts(c, "ak")[0]["isr"]) == [1, 2]
        c.start_broker(3)  # same disk; registers again once its old session ends
        wait_for("the move to complete", lambda: not moving(c, "ak"), 60)
        wait_for("replicas [2, 3] in sync", lambda: settled(c, "ak", {0: [2, 3]}))
        chk.wait_oks(chk.ok_count() + 200, 30)
    finally:
        r = chk.finish()
    assert not chk.violations(r), chk.summary(r)


def test_coordinator_restart_mid_move_keeps_and_finishes_it(cluster):
    c = cluster
    create_assigned(c, "cr", [[1, 2], [2, 1]])
    produce_some(c, "cr", 2, 300)
    c.pause_broker(3)
    try:
        err, _, res = call(c, kafka_raw.alter_partition_reassignments,
                           {("cr", 0): [3, 2], ("cr", 1): [2, 3]})
        assert all(v[0] == 0 for v in res.values()), res
        c.kill9_coordinator()
        c.restart_coordinator()
        assert set(moving(c, "cr")) == {("cr", 0), ("cr", 1)}
    finally:
        c.resume_broker(3)
    wait_for("the moves to complete", lambda: not moving(c, "cr"), 60)
    wait_for("new replicas in sync", lambda: settled(c, "cr", {0: [3, 2], 1: [2, 3]}))


def test_elect_preferred_leader_after_leadership_moved_away(cluster_no_rebalance):
    c = cluster_no_rebalance
    create_assigned(c, "el", [[1, 2]])
    c.restart_broker(1)  # controlled shutdown: broker 2 takes over
    wait_for("broker 1 back in the ISR", lambda: sorted(parts(c, "el")[0]["isr"]) == [1, 2])
    assert parts(c, "el")[0]["leader"] == 2
    err, res = call(c, kafka_raw.elect_leaders, {"el": [0], "nope": [0]}, version=2)
    assert err == 0
    assert res[("el", 0)] == (0, None), res
    assert res[("nope", 0)][0] == UNKNOWN_TOPIC_OR_PARTITION
    wait_for("broker 1 to lead", lambda: parts(c, "el")[0]["leader"] == 1)
    # Again: nothing to do, in every version.
    for v in (0, 1, 2):
        _, res = call(c, kafka_raw.elect_leaders, {"el": [0]}, version=v)
        assert res[("el", 0)][0] == ELECTION_NOT_NEEDED, (v, res)
    # Unclean on a partition with a leader: not needed either.
    _, res = call(c, kafka_raw.elect_leaders, {"el": [0]}, election_type=1, version=1)
    assert res[("el", 0)][0] == ELECTION_NOT_NEEDED
    # The preferred replica down: not available.
    c.term_broker(1)
    wait_for("broker 2 to lead", lambda: parts(c, "el")[0]["leader"] == 2)
    _, res = call(c, kafka_raw.elect_leaders, {"el": [0]})
    assert res[("el", 0)][0] == PREFERRED_LEADER_NOT_AVAILABLE
    assert "not" in res[("el", 0)][1]
    c.start_broker(1)


def test_auto_leader_rebalance_returns_leadership_to_the_preferred_replica(request):
    need_clients()
    for enabled in ("true", "false"):
        gen = weir_cluster.started(request, brokers=2, broker_overrides=BROKER,
                                   coordinator_overrides={
                                       "auto.leader.rebalance.enable": enabled,
                                       "leader.imbalance.check.interval.seconds": "1",
                                       "leader.imbalance.per.broker.percentage": "0"})
        c = next(gen)
        try:
            create_assigned(c, "ab", [[1, 2]])
            # A reorder completes at once and leaves broker 1 leading while 2
            # is now the preferred replica.
            _, _, res = call(c, kafka_raw.alter_partition_reassignments, {("ab", 0): [2, 1]})
            assert res[("ab", 0)][0] == 0
            assert parts(c, "ab")[0]["replicas"] == [2, 1]
            if enabled == "true":
                wait_for("the rebalance to move leadership to 2",
                         lambda: parts(c, "ab")[0]["leader"] == 2, 10)
            else:
                time.sleep(3)
                assert parts(c, "ab")[0]["leader"] == 1
        finally:
            next(gen, None)


def test_bad_reassignments_are_refused_per_partition_and_move_nothing(cluster):
    c = cluster
    create_assigned(c, "bad", [[1, 2], [2, 3]])
    before = parts(c, "bad")
    err, _, res = call(c, kafka_raw.alter_partition_reassignments, {
        ("bad", 0): [1, 9],         # unknown broker
        ("bad", 1): [3, 3],         # duplicate
        ("bad", 7): [1, 2],         # unknown partition
        ("nope", 0): [1, 2],        # unknown topic
    })
    assert err == 0
    assert res[("bad", 0)][0] == INVALID_REPLICA_ASSIGNMENT and "broker 9" in res[("bad", 0)][1]
    assert res[("bad", 1)][0] == INVALID_REPLICA_ASSIGNMENT and "twice" in res[("bad", 1)][1]
    assert res[("bad", 7)][0] == UNKNOWN_TOPIC_OR_PARTITION
    assert res[("nope", 0)][0] == UNKNOWN_TOPIC_OR_PARTITION
    _, _, res = call(c, kafka_raw.alter_partition_reassignments, {("bad", 0): []})
    assert res[("bad", 0)][0] == INVALID_REPLICA_ASSIGNMENT and "empty" in res[("bad", 0)][1]
    assert moving(c) == {}
    after = parts(c, "bad")
    for p in (0, 1):
        assert after[p]["replicas"] == before[p]["replicas"]
        assert after[p]["leader_epoch"] == before[p]["leader_epoch"]
    # Growing the RF onto registered brokers is allowed (as Kafka does).
    _, _, res = call(c, kafka_raw.alter_partition_reassignments, {("bad", 0): [1, 2, 3]})
    assert res[("bad", 0)][0] == 0
    wait_for("RF 3", lambda: settled(c, "bad", {0: [1, 2, 3]}))


def test_replacement_broker_with_empty_disk_re_replicates(cluster):
    import shutil

    c = cluster
    create_assigned(c, "rp", [[1, 2], [2, 1]], {"min.insync.replicas": "1"})
    produce_some(c, "rp", 2, 1000)
    c.kill9_broker(2)
    shutil.rmtree(c.log_dir(2))  # a new machine: empty disk, same broker.id
    wait_for("broker 1 to lead both", lambda: all(
        q["leader"] == 1 for q in parts(c, "rp", via=1).values()), 20)
    c.start_broker(2)
    wait_for("broker 2 back in both ISRs",
             lambda: all(sorted(q["isr"]) == [1, 2] for q in parts(c, "rp", via=1).values()), 40)
    for p in (0, 1):
        d1 = os.path.join(c.log_dir(1), "rp-%d" % p)
        d2 = os.path.join(c.log_dir(2), "rp-%d" % p)
        wait_for("rp-%d replicated" % p, lambda: sum(
            os.path.getsize(os.path.join(d2, f)) for f in os.listdir(d2) if f.endswith(".log"))
            == sum(os.path.getsize(os.path.join(d1, f)) for f in os.listdir(d1)
                   if f.endswith(".log")))
    assert os.path.exists(os.path.join(c.log_dir(2), "meta.properties"))


# ---- a real Kafka admin client ---------------------------------------------------

from test_node_clients import node_cache  # noqa: E402,F401 - the npm install fixture


def test_kafkajs_admin_moves_partitions(node_cache, cluster):  # noqa: F811
    import json
    import subprocess

    argv = ["node", "kafkajs_reassign.js", cluster.bootstrap(), "kjs-move"]
    try:
        p = subprocess.run(argv, cwd=node_cache, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        pytest.fail("kafkajs_reassign.js did not finish: %s" %
                    (e.stderr or b"").decode(errors="replace")[-2000:])
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    res = json.loads(p.stdout)
    assert [q["replicas"] for q in res["after"]] == [[2, 3], [3, 2]]
    assert all(sorted(q["isr"]) == [2, 3] for q in res["after"])
    # What kafkajs listed while the move ran carried the adding and removing sets.
    listed = [q for snap in res["seen"] for t in snap for q in t["partitions"]]
    for q in listed:
        assert q["addingReplicas"] == [3] and q["removingReplicas"] == [1], q
    assert res["refused"] is not None, "a target with an unknown broker was accepted"
    assert [e["type"] for e in res["refused"]["errors"]] == ["INVALID_REPLICA_ASSIGNMENT"], \
        res["refused"]
    wait_for("broker 1 to delete its replicas", lambda: topic_dirs(cluster, 1, "kjs-move") == [])
