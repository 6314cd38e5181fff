"""Operator logs (docs/operations.md, "Logs"): with log.format=json every line
of the coordinator and the brokers is one JSON object with ts, level, component
and msg, and each event that matters to an operator is one line carrying its
topic, partition, epoch and offset fields: topic created and deleted, a config
change (keys, not secret values), a consumer group's rebalance, a follower
killed with kill -9 (fenced, ISR shrink), restarted (recovery, registration, ISR
expand), the leader killed (leader change), a torn tail cut by recovery and a
divergent log truncated to the new leader's, and many role changes at once
summed up in a few lines.

Real coordinator and brokers on free ports (tests/support/cluster.py), driven
with kafka-python and raw Kafka requests (tests/support/kafka_raw.py).
"""

import json
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402

try:
    import kafka
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
except ImportError:
    kafka = None

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LEVELS = {"error", "warn", "info", "debug", "trace"}


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(
        request, brokers=3,
        broker_overrides={"log.format": "json", "replica.lag.time.max.ms": "2000",
                          "offsets.topic.num.partitions": "1",
                          "group.initial.rebalance.delay.ms": "0"},
        coordinator_overrides={"log.format": "json", "offsets.topic.num.partitions": "1"})


def lines(path):
    """Every line of a log as a dict; each must be one JSON object with the four
    standard members."""
    out = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                obj = json.loads(raw)
            except ValueError:
                raise AssertionError("%s: not JSON: %r" % (path, raw))
            assert isinstance(obj, dict), raw
            assert TS.match(obj["ts"]), raw
            assert obj["level"] in LEVELS, raw
            assert isinstance(obj["component"], str) and isinstance(obj["msg"], str), raw
            out.append(obj)
    return out


def events(c, name, who=None, **match):
    """The @name event lines of @who (a broker id, "coordinator", or None for
    every process) whose fields equal @match."""
    procs = [c.coordinator] + [p for _, p in sorted(c.brokers.items())]
    if who == "coordinator":
        procs = [c.coordinator]
    elif who is not None:
        procs = [c.brokers[who]]
    found = []
    for p in procs:
        for e in lines(p.log_path):
            if e.get("event") == name and all(e.get(k) == v for k, v in match.items()):
                found.append(e)
    return found


def wait_events(c, name, who=None, n=1, timeout=20.0, **match):
    deadline = time.monotonic() + timeout
    while True:
        got = events(c, name, who, **match)
        if len(got) >= n:
            return got
        assert time.monotonic() < deadline, "no %s %r line within %.0f s:\n%s" % (
            name, match, timeout, c.tails(15))
        time.sleep(0.1)


def partition_md(c, topic, p=0, via=None):
    alive = [b for b in sorted(c.brokers) if c.brokers[b].running()]
    conn = kafka_raw.Conn(*c.addr(via or alive[0]))
    try:
        parts = kafka_raw.metadata_v9(conn, [topic])["topics"][topic]["partitions"]
        return [q for q in parts if q["partition"] == p][0]
    finally:
        conn.close()


def wait_md(c, topic, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        md = partition_md(c, topic)
        if pred(md):
            return md
        assert time.monotonic() < deadline, "metadata of %s: %r" % (topic, md)
        time.sleep(0.1)


def produce(c, bid, topic, n):
    conn = kafka_raw.Conn(*c.addr(bid))
    try:
        for i in range(n):
            err, _ = conn.produce(topic, 0, kafka_raw.record_batch([b"v%d" % i]), acks=-1)
            assert err == 0
    finally:
        conn.close()


def need_kafka_python():
    deps.require(kafka is not None, "kafka-python is not installed",
                 "apt-get install python3-kafka (deploy/install-deps.sh)")


def test_operator_events_are_one_json_line_each_with_their_fields(cluster):
    need_kafka_python()
    c = cluster

    # Topic created: one line at the coordinator; one leader and two followers.
    c.create_topic("ev", 1, 3)
    (created,) = events(c, "topic_created", "coordinator", topic="ev")
    assert created["partitions"] == 1 and created["replication_factor"] == 3
    assert created["component"] == "coordinator" and created["level"] == "info"
    md = partition_md(c, "ev")
    leader, epoch0 = md["leader"], md["leader_epoch"]
    (lead,) = wait_events(c, "became_leader", leader, topic="ev", partition=0)
    assert lead["epoch"] == epoch0 and lead["offset"] == 0
    assert len(events(c, "became_leader", None, topic="ev")) == 1
    assert len(wait_events(c, "became_follower", None, n=2, topic="ev", partition=0)) == 2
    produce(c, leader, "ev", 20)

    # A consumer group's rebalance: one line per generation with its members and
    # protocol; leaving empties the group.
    consumer = kafka.KafkaConsumer("ev", bootstrap_servers=c.bootstrap(), group_id="og",
                                   auto_offset_reset="earliest", consumer_timeout_ms=15000)
    try:
        got = 0
        for _ in consumer:
            got += 1
            if got == 20:
                break
        consumer.commit()
    finally:
        consumer.close()
    (reb,) = events(c, "group_rebalanced", None, group="og")
    assert reb["generation"] == 1 and reb["members"] == 1
    assert reb["protocol"] in ("range", "roundrobin") and reb["protocol_type"] == "consumer"
    assert len(events(c, "group_rebalance_started", None, group="og", generation=0)) == 1
    wait_events(c, "member_removed", None, group="og", reason="left")
    wait_events(c, "group_empty", None, group="og", generation=2)

    # A config change names its keys.
    adm = KafkaAdminClient(bootstrap_servers=c.bootstrap())
    try:
        adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "ev",
                                          configs={"retention.ms": "3600000"})])
    finally:
        adm.close()
    (cfg,) = wait_events(c, "config_changed", "coordinator", topic="ev")
    assert cfg["keys"] == "retention.ms" and cfg["resource"] == "topic"
    assert "retention.ms=3600000" in cfg["msg"]

    # kill -9 a follower: it is fenced, and the leader shrinks the ISR once.
    follower = [b for b in md["replicas"] if b != leader][0]
    c.kill9_broker(follower)
    (fenced,) = wait_events(c, "broker_fenced", "coordinator", broker=follower)
    assert fenced["reason"] in ("connection_closed", "session_expired")
    (shrink,) = wait_events(c, "isr_shrink", leader, topic="ev", partition=0)
    assert str(follower) not in shrink["isr"].split(",")
    assert shrink["epoch"] == epoch0 and shrink["offset"] == 20
    time.sleep(1.0)
    assert len(events(c, "isr_shrink", None, topic="ev")) == 1

    # Restarted: one recovery line for this start, registration with a new
    # epoch, and the leader adds it back to the ISR once.
    c.restart_broker(follower)
    rec = events(c, "recovery", follower)
    assert len(rec) == 2  # the first start and this one
    assert rec[-1]["logs"] >= 1 and rec[-1]["records"] >= 20 and rec[-1]["elapsed_ms"] >= 0
    regs = events(c, "broker_registered", "coordinator", broker=follower)
    assert len(regs) == 2 and regs[1]["epoch"] > regs[0]["epoch"]
    (expand,) = wait_events(c, "isr_expand", leader, topic="ev", partition=0)
    assert str(follower) in expand["isr"].split(",") and expand["epoch"] == epoch0
    wait_md(c, "ev", lambda m: len(m["isr"]) == 3)
    time.sleep(1.0)
    assert len(events(c, "isr_expand", None, topic="ev")) == 1

    # kill -9 the leader: exactly one broker becomes leader, in a later epoch.
    c.kill9_broker(leader)
    md2 = wait_md(c, "ev", lambda m: m["leader"] not in (-1, leader))
    (newlead,) = wait_events(c, "became_leader", md2["leader"], topic="ev", partition=0,
                             epoch=md2["leader_epoch"])
    assert md2["leader_epoch"] > epoch0 and newlead["offset"] == 20
    time.sleep(1.0)
    assert len(events(c, "became_leader", None, topic="ev", epoch=md2["leader_epoch"])) == 1
    c.restart_broker(leader)

    # Topic deleted: one line at the coordinator.
    conn = kafka_raw.Conn(*c.addr(md2["leader"]))
    try:
        conn.delete_topics(["ev"])
    finally:
        conn.close()
    wait_events(c, "topic_deleted", "coordinator", topic="ev")
    # ... and one log_deleted line per replica, on its broker.
    deleted = wait_events(c, "log_deleted", None, n=3, topic="ev", partition=0)
    assert len(deleted) == 3 and {e["reason"] for e in deleted} == {"topic_deleted"}
    assert len(events(c, "topic_deleted", "coordinator", topic="ev")) == 1
    assert len(events(c, "topic_created", "coordinator", topic="ev")) == 1


def test_many_role_changes_are_summed_up_in_a_few_lines(cluster):
    """180 replicas take up a role at once: each broker writes at most 20 of them
    one by one (per 10 s) and sums up the rest in partitions_changed lines."""
    c = cluster
    c.create_topic("wide", 60, 3)

    def taken_up():
        summaries = [e for b in c.brokers for e in events(c, "partitions_changed", b)]
        per_part = [e for b in c.brokers for n in ("became_leader", "became_follower")
                    for e in events(c, n, b, topic="wide")]
        return summaries, per_part, sum(e["leaders"] + e["followers"] for e in summaries)

    deadline = time.monotonic() + 20
    while True:
        summaries, per_part, summed = taken_up()
        if summed + len(per_part) >= 180:
            break
        assert time.monotonic() < deadline, "%d summed, %d lines" % (summed, len(per_part))
        time.sleep(0.2)
    assert summed + len(per_part) == 180
    assert summaries and len(per_part) <= 3 * 20
    for b in c.brokers:
        lines_b = [e for n in ("became_leader", "became_follower")
                   for e in events(c, n, b, topic="wide")]
        assert len(lines_b) <= 20
        assert len(events(c, "partitions_changed", b)) <= 5


def test_truncations_on_recovery_and_after_divergence_are_one_line_each(cluster):
    """The leader takes 5 acks=1 records its paused followers never see and is
    killed; a follower becomes leader at offset 20. The old leader restarts with
    a torn tail (junk appended to its segment): recovery cuts it (one
    recovery_truncated line), then it truncates its log to the new leader's
    (one log_truncated line, from 25 to where the new leader's epoch starts)."""
    c = cluster
    c.create_topic("div", 1, 3)
    md = partition_md(c, "div")
    old = md["leader"]
    produce(c, old, "div", 20)
    wait_md(c, "div", lambda m: len(m["isr"]) == 3)
    followers = [b for b in md["replicas"] if b != old]
    for b in followers:
        c.pause_broker(b)
    try:
        conn = kafka_raw.Conn(*c.addr(old))
        try:
            for i in range(5):
                assert conn.produce("div", 0, kafka_raw.record_batch([b"x%d" % i]),
                                    acks=1) == (0, 20 + i)
        finally:
            conn.close()
        c.kill9_broker(old)
    finally:
        for b in followers:
            c.resume_broker(b)
    md2 = wait_md(c, "div", lambda m: m["leader"] in followers)
    assert md2["leader_epoch"] > md["leader_epoch"]

    seg = sorted(f for f in os.listdir(os.path.join(c.log_dir(old), "div-0"))
                 if f.endswith(".log"))[-1]
    with open(os.path.join(c.log_dir(old), "div-0", seg), "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x19" + b"\xff" * 40)  # a torn batch
    c.restart_broker(old)
    (cut,) = wait_events(c, "recovery_truncated", old, topic="div", partition=0)
    assert cut["level"] == "warn" and cut["offset"] == 25 and cut["bytes"] == 48
    # The new leader's epoch starts at its log end when it took over: 20, or 21
    # when a fetch answer that was under way when it was paused still landed.
    (lead,) = events(c, "became_leader", md2["leader"], topic="div", epoch=md2["leader_epoch"])
    assert lead["offset"] in (20, 21)
    (trunc,) = wait_events(c, "log_truncated", old, topic="div", partition=0)
    assert trunc["from"] == 25 and trunc["to"] == lead["offset"]
    assert trunc["reason"] == "diverged"
    assert trunc["epoch"] == md2["leader_epoch"] and trunc["leader"] == md2["leader"]
    time.sleep(1.0)
    # Once each on the old leader (the other follower may cut a record it got
    # from a fetch answer under way when it was paused: its own line).
    assert len(events(c, "log_truncated", old, topic="div")) == 1
    assert len(events(c, "recovery_truncated", None, topic="div")) == 1
