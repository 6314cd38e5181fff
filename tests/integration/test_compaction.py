"""Integration tests: log compaction (cleanup.policy=compact) on a real cluster.

A coordinator and two brokers, the cleaner looking for work every 200 ms and
retired segments unlinked at once. Topics use small segments (segment.bytes)
that also roll by age (segment.ms), and min.cleanable.dirty.ratio=0.01 so that
any dirty segment is cleaned. Producers are confluent-kafka (librdkafka), with
compression.type set per codec; consumers read from the beginning and see each
key's latest value. The cleaner's progress is read from the brokers'
cleaner-offset-checkpoint files, as an operator would.
"""

import glob
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

KEYS = 1000
UPDATES = 100000
ROLL_MS = 1000


@pytest.fixture(scope="module")
def cluster(request):
    yield from weir_cluster.started(request, brokers=2, broker_overrides={
        "log.cleaner.backoff.ms": "200",
        "log.segment.delete.delay.ms": "0",
    })


# ---- helpers ------------------------------------------------------------------------


def topic_config(**extra):
    cfg = {
        "cleanup.policy": "compact",
        "segment.bytes": "65536",
        "segment.ms": str(ROLL_MS),
        "min.cleanable.dirty.ratio": "0.01",
    }
    cfg.update({k.replace("_", "."): v for k, v in extra.items()})
    return cfg


def leader_of(c, topic):
    conn = kafka_raw.Conn(*c.addr(min(b for b, p in c.brokers.items() if p.running())))
    try:
        return conn.metadata()["topics"][topic]["partitions"][0]["leader"]
    finally:
        conn.close()


def producer(c, codec="none", acks="all"):
    import confluent_kafka as ck  # a dependency (deploy/install-deps.sh), never a skip

    return ck.Producer({"bootstrap.servers": c.bootstrap(), "compression.type": codec,
                        "linger.ms": 20, "acks": acks, "batch.num.messages": 500,
                        "enable.idempotence": False})


def produce_all(p, topic, items):
    """Produce (key, value) pairs and wait for every delivery; returns the errors."""
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for k, v in items:
        while True:
            try:
                p.produce(topic, key=k, value=v, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    return errors


def roll(c, topic, p):
    """Age the active segment past segment.ms and append one record, so that
    everything produced so far lies below the active segment."""
    time.sleep(ROLL_MS / 1000.0 + 0.3)
    assert produce_all(p, topic, [(b"roll", b"roll")]) == []


def consume_all(c, topic, timeout=30):
    """Every record of partition 0 from the beginning: [(offset, key, value)]."""
    import confluent_kafka as ck

    cons = ck.Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "cmp-%s-%f" % (
        topic, time.time()), "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        cons.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == ck.KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(m.error())
            out.append((m.offset(), m.key(), m.value()))
        raise AssertionError("consumer did not reach the end of %s" % topic)
    finally:
        cons.close()


def cleaner_offset(c, bid, topic):
    path = os.path.join(c.log_dir(bid), "cleaner-offset-checkpoint")
    try:
        with open(path) as f:
            for line in f.read().splitlines()[2:]:
                t, part, off = line.split(" ")
                if t == topic and part == "0":
                    return int(off)
    except FileNotFoundError:
        pass
    return -1


def active_base(c, bid, topic):
    logs = glob.glob(os.path.join(c.log_dir(bid), "%s-0" % topic, "*.log"))
    return max(int(os.path.basename(p)[:20]) for p in logs)


def log_bytes(c, bid, topic):
    return sum(os.path.getsize(p)
               for p in glob.glob(os.path.join(c.log_dir(bid), "%s-0" % topic, "*.log")))


def wait_cleaned(c, bid, topic, upto, timeout=60):
    """Until broker @bid's cleaner checkpoint for @topic reaches @upto."""
    deadline = time.monotonic() + timeout
    while cleaner_offset(c, bid, topic) < upto:
        assert time.monotonic() < deadline, "broker %d did not clean %s up to %d (at %d)\n%s" % (
            bid, topic, upto, cleaner_offset(c, bid, topic), c.tails())
        time.sleep(0.1)


def updates():
    for i in range(UPDATES):
        k = i % KEYS
        yield (b"key-%d" % k, b"%d:%d" % (k, i))


def latest_values():
    want = {}
    for i in range(UPDATES - KEYS, UPDATES):
        want[b"key-%d" % (i % KEYS)] = b"%d:%d" % (i % KEYS, i)
    return want


# ---- tests --------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compacted_topic_keeps_latest_value_per_key(cluster, codec):
    topic = "compacted-%s" % codec
    cluster.create_topic(topic, 1, 2, topic_config())
    p = producer(cluster, codec)
    assert produce_all(p, topic, updates()) == []
    roll(cluster, topic, p)
    leader = leader_of(cluster, topic)
    upto = active_base(cluster, leader, topic)
    wait_cleaned(cluster, leader, topic, upto)
    # The cleaner runs while the producer does, so compare with what was
    # produced: keys and values alone, before any record or batch overhead.
    raw = sum(len(k) + len(v) for k, v in updates())
    after = log_bytes(cluster, leader, topic)
    assert after * 20 < raw, (raw, after)

    records = consume_all(cluster, topic)
    seen = {}
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    for o, k, v in records:
        if o < upto:
            assert k not in seen, "two records of %r below the active segment" % k
        seen[k] = v
    want = latest_values()
    want[b"roll"] = b"roll"
    assert seen == want
    # The latest value of key-k is at its original offset.
    for o, k, v in records:
        if k != b"roll":
            assert o == int(v.split(b":")[1])
    # The follower cleaned its own copy too (replicas compact independently).
    follower = 3 - leader
    wait_cleaned(cluster, follower, topic, upto)


def test_keyless_records_refused(cluster):
    import confluent_kafka as ck

    cluster.create_topic("compacted-keyless", 1, 2, topic_config())
    p = producer(cluster)
    errors = produce_all(p, "compacted-keyless", [(None, b"no key")])
    assert len(errors) == 1 and errors[0].code() == ck.KafkaError.INVALID_RECORD, errors
    assert produce_all(p, "compacted-keyless", [(b"k", b"with key")]) == []


def test_tombstones_disappear_after_delete_retention(cluster):
    topic = "compacted-tomb"
    cluster.create_topic(topic, 1, 2, topic_config(delete_retention_ms="2000"))
    p = producer(cluster)
    assert produce_all(p, topic, [(b"k%d" % i, b"v%d" % i) for i in range(20)]) == []
    assert produce_all(p, topic, [(b"k%d" % i, None) for i in range(10)]) == []
    roll(cluster, topic, p)
    leader = leader_of(cluster, topic)
    first = active_base(cluster, leader, topic)
    wait_cleaned(cluster, leader, topic, first)
    recs = consume_all(cluster, topic)
    tombs = {k for _, k, v in recs if v is None}
    assert tombs == {b"k%d" % i for i in range(10)}  # kept until the horizon
    assert {k for _, k, v in recs if v is not None} >= {b"k%d" % i for i in range(10, 20)}

    # Past delete.retention.ms, the next clean (it needs new dirty data) drops them.
    time.sleep(2.2)
    assert produce_all(p, topic, [(b"other", b"x")]) == []
    roll(cluster, topic, p)
    second = active_base(cluster, leader, topic)
    wait_cleaned(cluster, leader, topic, second)
    recs = consume_all(cluster, topic)
    assert not [k for _, k, v in recs if v is None]
    keys = {k for _, k, _ in recs}
    assert not keys & {b"k%d" % i for i in range(10)}
    assert keys >= {b"k%d" % i for i in range(10, 20)}


def test_follower_catches_up_from_a_compacted_leader(cluster):
    """A follower that was down while its leader compacted fetches across the
    leader's offset gaps, and serves the same records once it leads."""
    topic = "compacted-follow"
    cluster.create_topic(topic, 1, 2, topic_config())
    leader = leader_of(cluster, topic)
    follower = 3 - leader
    p = producer(cluster, acks="1")
    assert produce_all(p, topic, [(b"a%d" % (i % 50), b"%d" % i) for i in range(2000)]) == []
    cluster.term_broker(follower)
    try:
        assert produce_all(p, topic, [(b"a%d" % (i % 50), b"%d" % i)
                                      for i in range(2000, 20000)]) == []
        roll(cluster, topic, p)
        upto = active_base(cluster, leader, topic)
        wait_cleaned(cluster, leader, topic, upto)
        want = consume_all(cluster, topic)
        assert len(want) < 200
    finally:
        cluster.start_broker(follower)
    # Back in the ISR: then the follower holds everything the leader has.
    deadline = time.monotonic() + 60
    while True:
        conn = kafka_raw.Conn(*cluster.addr(leader))
        try:
            part = conn.metadata()["topics"][topic]["partitions"][0]
        finally:
            conn.close()
        if sorted(part["isr"]) == [1, 2]:
            break
        assert time.monotonic() < deadline, "follower did not rejoin the ISR\n" + cluster.tails()
        time.sleep(0.2)
    cluster.term_broker(leader)
    try:
        deadline = time.monotonic() + 30
        while leader_of(cluster, topic) != follower:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        got = consume_all(cluster, topic)
        latest = {}
        for _, k, v in want:
            latest[k] = v
        mine = {}
        for _, k, v in got:
            mine[k] = v
        assert mine == latest
    finally:
        cluster.start_broker(leader)
