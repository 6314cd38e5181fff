"""The high watermark survives restarts and bounds what may be deleted.

- replication-offset-checkpoint: every replica's HW is written every
  replica.high.watermark.checkpoint.interval.ms; after kill -9 of every replica a
  restarted leader serves from its checkpointed HW (not its log start, not its
  log end).
- DeleteRecords (API 21): the leader raises its log start (-1: the HW; above the
  HW: OFFSET_OUT_OF_RANGE), the answer waits until every ISR member has raised
  its own, and carries the low watermark; followers follow.
- Retention never deletes a segment holding the HW or anything above it.

Real coordinator and brokers on 127.0.0.1 (tests/support/cluster.py). Neither
confluent-kafka 1.7 nor kafka-python 2.0 has delete_records on this Debian, so
DeleteRecords goes through tests/support/kafka_raw.py.
"""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7

HW_FILE = "replication-offset-checkpoint"
START_FILE = "log-start-offset-checkpoint"


@pytest.fixture
def make_cluster(request):
    made = []

    def make(**overrides):
        c = weir_cluster.Cluster(brokers=3, broker_overrides=overrides)
        made.append(c)
        c.start()
        return c

    failed_before = request.session.testsfailed
    yield make
    for c in made:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


def running(c):
    return [b for b in sorted(c.brokers) if c.brokers[b].running()]


def partition_md(c, topic, p, via=None):
    conn = kafka_raw.Conn(*c.addr(via or running(c)[0]))
    try:
        parts = kafka_raw.metadata_v9(conn, [topic])["topics"][topic]["partitions"]
        return [q for q in parts if q["partition"] == p][0]
    finally:
        conn.close()


def wait_for(what, fn, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def list_offset(c, b, topic, p, ts):
    """(error, offset) of ListOffsets latest (-1) or earliest (-2) on broker @b."""
    conn = kafka_raw.Conn(*c.addr(b))
    try:
        err, _ts, off = kafka_raw.list_offsets(conn, topic, p, ts)
        return err, off
    finally:
        conn.close()


def delete_records(c, b, topic, p, offset, timeout_ms=5000, version=1):
    conn = kafka_raw.Conn(*c.addr(b))
    try:
        return kafka_raw.delete_records(conn, topic, p, offset, timeout_ms, version)
    finally:
        conn.close()


def checkpoint_offset(c, b, name, topic, p):
    """The offset broker @b's checkpoint file @name holds for topic-p, or None."""
    path = os.path.join(c.log_dir(b), name)
    try:
        lines = open(path).read().split("\n")
    except FileNotFoundError:
        return None
    assert lines[0] == "0" and int(lines[1]) == len(lines) - 3 and lines[-1] == ""
    for line in lines[2:-1]:
        t, part, off = line.split(" ")
        if t == topic and int(part) == p:
            return int(off)
    return None


def produce(c, b, topic, values, acks):
    conn = kafka_raw.Conn(*c.addr(b))
    try:
        out = []
        for v in values:
            err, off = conn.produce(topic, 0, kafka_raw.record_batch([v]), acks=acks)
            assert err == 0, "produce %r: error %d" % (v, err)
            out.append(off)
        return out
    finally:
        conn.close()


def consume_all(c, topic, idle_s=2.0, timeout_s=20.0):
    """Everything a confluent-kafka consumer reads from the beginning:
    [(offset, value)], after @idle_s without a new record."""
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "hw-test",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "topic.metadata.refresh.interval.ms": 500,
                     "reconnect.backoff.max.ms": 200})
    try:
        cons.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING
        got = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            m = cons.poll(0.2)
            if m is None or m.error():
                continue
            got.append((m.offset(), m.value()))
            last = time.monotonic()
        return got
    finally:
        cons.close()


def segment_values(c, b, topic, p):
    """(offset, value) of every record in broker @b's segment files, and the
    segments' base offsets."""
    d = os.path.join(c.log_dir(b), "%s-%d" % (topic, p))
    logs = sorted(f for f in os.listdir(d) if f.endswith(".log"))
    data = b"".join(open(os.path.join(d, f), "rb").read() for f in logs)
    return kafka_raw.batch_values(data), [int(f[:-4]) for f in logs]


def test_restarted_replicas_start_from_the_checkpointed_hw(make_cluster):
    c = make_cluster(**{"replica.high.watermark.checkpoint.interval.ms": "200"})
    c.create_topic("hwr", 1, 3, {"min.insync.replicas": "2"})
    part = partition_md(c, "hwr", 0)
    leader = part["leader"]
    followers = [b for b in part["replicas"] if b != leader]
    acked = [b"acked-%d" % i for i in range(20)]
    assert produce(c, leader, "hwr", acked, acks=-1) == list(range(20))
    # Every replica checkpoints HW 20 within the interval.
    for b in part["replicas"]:
        wait_for("broker %d's HW checkpoint" % b,
                 lambda: checkpoint_offset(c, b, HW_FILE, "hwr", 0) == 20, 5)
    # Records the HW never passes: the followers are stopped (still in the ISR).
    for b in followers:
        c.pause_broker(b)
    produce(c, leader, "hwr", [b"above-hw-%d" % i for i in range(5)], acks=1)
    assert list_offset(c, leader, "hwr", 0, -1) == (0, 20)
    time.sleep(0.6)  # a checkpoint or two more: still 20
    assert checkpoint_offset(c, leader, HW_FILE, "hwr", 0) == 20

    # kill -9 every replica, the leader last, so that it stays the last ISR member.
    for b in followers:
        c.kill9_broker(b)
    wait_for("the ISR to shrink to the leader",
             lambda: partition_md(c, "hwr", 0, via=leader)["isr"] == [leader])
    c.kill9_broker(leader)

    # The leader comes back alone: ISR 1 < min.insync 2 freezes its HW, so what it
    # serves is exactly the HW it started from.
    c.start_broker(leader)

    def serving():
        err, off = list_offset(c, leader, "hwr", 0, -1)
        return (err, off) if err == 0 else None

    assert wait_for("the restarted leader to serve", serving) == (0, 20)
    got = consume_all(c, "hwr")
    assert [o for o, _ in got] == list(range(20))
    assert [v for _, v in got] == acked  # every acknowledged record, nothing above
    assert list_offset(c, leader, "hwr", 0, -1) == (0, 20)

    # The followers come back: they start from their own checkpoints, catch up,
    # rejoin, and the HW moves on.
    for b in followers:
        c.start_broker(b)
    for b in followers:
        wait_for("broker %d to keep its checkpointed HW" % b,
                 lambda: (checkpoint_offset(c, b, HW_FILE, "hwr", 0) or 0) >= 20, 5)
    wait_for("the ISR to grow back",
             lambda: sorted(partition_md(c, "hwr", 0, via=leader)["isr"]) ==
             sorted(part["replicas"]), 20)
    wait_for("the HW to pass the records written while it was held",
             lambda: list_offset(c, leader, "hwr", 0, -1) == (0, 25))


def test_delete_records_raises_the_log_start_on_every_replica(make_cluster):
    c = make_cluster(**{"log.flush.start.offset.checkpoint.interval.ms": "200",
                        "replica.high.watermark.checkpoint.interval.ms": "200"})
    c.create_topic("dr", 1, 3)
    c.create_topic("dr1", 1, 1)
    part = partition_md(c, "dr", 0)
    leader = part["leader"]
    followers = [b for b in part["replicas"] if b != leader]
    produce(c, leader, "dr", [b"v-%d" % i for i in range(30)], acks=-1)
    assert list_offset(c, leader, "dr", 0, -1) == (0, 30)

    # Errors first: not the leader, unknown partition, beyond the HW, negative.
    assert delete_records(c, followers[0], "dr", 0, 5)[0] == NOT_LEADER_OR_FOLLOWER
    assert delete_records(c, leader, "nosuch", 0, 5)[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert delete_records(c, leader, "dr", 7, 5)[0] == UNKNOWN_TOPIC_OR_PARTITION
    # Kafka never lets a client trim an internal topic (committed offsets live there).
    assert delete_records(c, leader, "__consumer_offsets", 0, 0)[0] == INVALID_TOPIC_EXCEPTION
    assert delete_records(c, leader, "dr", 0, 31) == (OFFSET_OUT_OF_RANGE, -1)
    assert delete_records(c, leader, "dr", 0, -5) == (OFFSET_OUT_OF_RANGE, -1)
    assert list_offset(c, leader, "dr", 0, -2) == (0, 0)

    # v1, then v0 and the flexible v2: the answer comes once every ISR member has
    # raised its log start, and carries that low watermark.
    assert delete_records(c, leader, "dr", 0, 10, version=1) == (0, 10)
    assert list_offset(c, leader, "dr", 0, -2) == (0, 10)
    assert delete_records(c, leader, "dr", 0, 11, version=0) == (0, 11)
    assert delete_records(c, leader, "dr", 0, 12, version=2) == (0, 12)
    assert delete_records(c, leader, "dr", 0, 3) == (0, 12)  # lower: nothing to do
    got = consume_all(c, "dr")
    assert [o for o, _ in got] == list(range(12, 30))
    assert got[0][1] == b"v-12"

    # The followers raised theirs (their log-start-offset-checkpoint says so).
    for b in followers:
        wait_for("broker %d's log start" % b,
                 lambda: checkpoint_offset(c, b, START_FILE, "dr", 0) == 12, 5)

    # A stopped ISR member holds the answer until the request's timeout.
    c.pause_broker(followers[1])
    t0 = time.monotonic()
    assert delete_records(c, leader, "dr", 0, 14, timeout_ms=800) == (REQUEST_TIMED_OUT, -1)
    assert time.monotonic() - t0 >= 0.7
    assert list_offset(c, leader, "dr", 0, -2) == (0, 14)  # the leader did raise it
    c.resume_broker(followers[1])

    # Single replica: answered at once.
    produce(c, partition_md(c, "dr1", 0)["leader"], "dr1", [b"x"] * 3, acks=-1)
    assert delete_records(c, partition_md(c, "dr1", 0)["leader"], "dr1", 0, -1) == (0, 3)

    # A leader change: the new leader's earliest offset is the raised one.
    assert c.term_broker(leader) == 0
    new_leader = wait_for("a new leader",
                          lambda: (lambda l: l if l in followers else None)(
                              partition_md(c, "dr", 0)["leader"]))
    wait_for("the new leader to serve",
             lambda: list_offset(c, new_leader, "dr", 0, -2)[0] == 0)
    assert list_offset(c, new_leader, "dr", 0, -2) == (0, 14)
    c.start_broker(leader)
    wait_for("the old leader to rejoin",
             lambda: sorted(partition_md(c, "dr", 0)["isr"]) == sorted(part["replicas"]), 20)

    # -1 deletes up to the HW (on whoever leads now: the preferred replica takes
    # leadership back once it is in the ISR again).
    now_leader = partition_md(c, "dr", 0)["leader"]
    wait_for("the leader to serve", lambda: list_offset(c, now_leader, "dr", 0, -2) == (0, 14))
    produce(c, now_leader, "dr", [b"w-%d" % i for i in range(5)], acks=-1)
    assert delete_records(c, now_leader, "dr", 0, -1) == (0, 35)
    assert list_offset(c, now_leader, "dr", 0, -2) == (0, 35)
    assert list_offset(c, now_leader, "dr", 0, -1) == (0, 35)
    for b in part["replicas"]:
        if b != now_leader:
            wait_for("broker %d's log start at the HW" % b,
                     lambda: checkpoint_offset(c, b, START_FILE, "dr", 0) == 35, 5)


def test_retention_keeps_segments_above_the_hw(make_cluster):
    c = make_cluster(**{"log.retention.ms": "1000",
                        "log.retention.check.interval.ms": "200",
                        "log.segment.bytes": "1024"})
    c.create_topic("ret", 1, 3, {"min.insync.replicas": "2"})
    part = partition_md(c, "ret", 0)
    leader = part["leader"]
    followers = [b for b in part["replicas"] if b != leader]
    pad = b"." * 300
    produce(c, leader, "ret", [b"c-%d" % i + pad for i in range(10)], acks=-1)
    for b in followers:
        c.pause_broker(b)  # the HW cannot advance: they are in the ISR and silent
    held = [b"h-%d" % i + pad for i in range(10)]
    assert produce(c, leader, "ret", held, acks=1) == list(range(10, 20))
    _, bases = segment_values(c, leader, "ret", 0)
    assert len(bases) >= 6  # about three batches a segment

    # Everything is older than log.retention.ms soon; the segments wholly below
    # HW 10 go, the ones holding offset 10 and above stay.
    wait_for("retention below the HW",
             lambda: list_offset(c, leader, "ret", 0, -2)[1] > 0, 10)
    time.sleep(1.5)  # several more retention runs
    assert list_offset(c, leader, "ret", 0, -1) == (0, 10)
    vals, bases = segment_values(c, leader, "ret", 0)
    assert [v for o, v in vals if o >= 10] == held
    start = list_offset(c, leader, "ret", 0, -2)[1]
    assert 0 < start <= 10
    assert bases[0] == start and bases[0] <= 10
    for b in followers:
        c.resume_broker(b)
    # Once the HW passes them, they may go too.
    wait_for("the HW to advance", lambda: list_offset(c, leader, "ret", 0, -1) == (0, 20), 20)
    wait_for("retention up to the HW",
             lambda: list_offset(c, leader, "ret", 0, -2)[1] > 10, 10)
