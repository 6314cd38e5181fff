"""Integration tests of weir-broker's size and scale limits: 1 MiB messages,
message.max.bytes enforcement, and a topic with 1,000 partitions.

A coordinator and three brokers run as real processes on free ports
(tests/support/cluster.py); clients are confluent-kafka (librdkafka) and raw
sockets (tests/support/kafka_raw.py).
"""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

import confluent_kafka as ck  # noqa: E402

MIB = 1 << 20
# Broker limit for these tests: a 1 MiB value plus batch/record overhead fits.
BROKER_MESSAGE_MAX = 2 * MIB
ERR_MESSAGE_TOO_LARGE = 10


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(request, brokers=3, broker_overrides={
        "message.max.bytes": str(BROKER_MESSAGE_MAX)})


def create_topic(c, name, partitions, timeout=20):
    conn = kafka_raw.Conn(*c.addr(min(c.brokers)), timeout=timeout)
    try:
        assert conn.create_topic(name, partitions, timeout_ms=timeout * 1000) == 0
    finally:
        conn.close()
    deadline = time.monotonic() + timeout
    for b in sorted(c.brokers):
        conn = kafka_raw.Conn(*c.addr(b), timeout=timeout)
        try:
            while True:
                t = conn.metadata([name])["topics"].get(name)
                if t and len(t["partitions"]) == partitions and \
                        all(p["leader"] >= 0 for p in t["partitions"]):
                    break
                assert time.monotonic() < deadline, "broker %d does not see %s" % (b, name)
                time.sleep(0.05)
        finally:
            conn.close()


def batch_of_size(total):
    """A one-record batch of exactly @total bytes, offset and length fields included."""
    n = total - 80
    for _ in range(8):
        b = kafka_raw.record_batch([b"m" * n])
        if len(b) == total:
            return b
        n += total - len(b)
    raise AssertionError("no batch of exactly %d bytes" % total)


def producer(c, **extra):
    conf = {"bootstrap.servers": c.bootstrap(), "message.max.bytes": 4 * MIB,
            "linger.ms": 5, "acks": "all", "enable.idempotence": False,
            "api.version.request": True}
    conf.update(extra)
    return ck.Producer(conf)


def consumer(c, **extra):
    conf = {"bootstrap.servers": c.bootstrap(), "group.id": "weir-limits",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "fetch.max.bytes": 8 * MIB, "max.partition.fetch.bytes": 4 * MIB,
            "receive.message.max.bytes": 16 * MIB, "fetch.wait.max.ms": 100}
    conf.update(extra)
    return ck.Consumer(conf)


def produce_all(p, msgs, timeout=30):
    """Produce (topic, partition, key, value) tuples; return the delivery results."""
    results = []

    def cb(err, msg):
        results.append((err, msg.partition(), msg.offset(), msg.value()))

    for topic, part, key, value in msgs:
        while True:
            try:
                p.produce(topic, value=value, key=key, partition=part, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
    deadline = time.monotonic() + timeout
    while len(results) < len(msgs) and time.monotonic() < deadline:
        p.poll(0.1)
    assert p.flush(5) == 0
    assert len(results) == len(msgs)
    return results


def test_one_mib_messages_round_trip(cluster):
    create_topic(cluster, "big", 1)
    values = [bytes([65 + i]) * MIB for i in range(3)]
    p = producer(cluster, **{"linger.ms": 0})
    res = produce_all(p, [("big", 0, b"k%d" % i, v) for i, v in enumerate(values)])
    assert [r[0] for r in res] == [None] * 3, res[:1]
    assert sorted(r[2] for r in res) == [0, 1, 2]

    cons = consumer(cluster)
    try:
        cons.assign([ck.TopicPartition("big", 0, 0)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append((m.offset(), m.key(), m.value()))
        assert [g[0] for g in got] == [0, 1, 2]
        assert [g[1] for g in got] == [b"k0", b"k1", b"k2"]
        assert all(g[2] == values[g[0]] for g in got)
    finally:
        cons.close()


def test_batch_above_message_max_bytes_is_rejected_with_message_too_large(cluster):
    create_topic(cluster, "limit", 1)
    conn = kafka_raw.Conn(*cluster.addr(min(cluster.brokers)), timeout=20)
    try:
        # A batch just above the broker limit: MESSAGE_TOO_LARGE, nothing appended.
        big = kafka_raw.record_batch([b"x" * (BROKER_MESSAGE_MAX + 16)])
        lid = conn.metadata(["limit"])["topics"]["limit"]["partitions"][0]["leader"]
    finally:
        conn.close()
    conn = kafka_raw.Conn(*cluster.addr(lid), timeout=20)
    try:
        err, _ = conn.produce("limit", 0, big)
        assert err == ERR_MESSAGE_TOO_LARGE
        # The limit is on the whole batch (log overhead included), as in Kafka:
        # one byte over is refused, exactly at the limit is accepted.
        assert conn.produce("limit", 0, batch_of_size(BROKER_MESSAGE_MAX + 1))[0] == \
            ERR_MESSAGE_TOO_LARGE
        err, base = conn.produce("limit", 0, batch_of_size(BROKER_MESSAGE_MAX))
        # Offset 0: the rejected batches left nothing behind.
        assert (err, base) == (0, 0)
        err, base = conn.produce("limit", 0, kafka_raw.record_batch([b"y" * 1000]))
        assert (err, base) == (0, 1)
    finally:
        conn.close()

    # The same through librdkafka: the delivery report carries MSG_SIZE_TOO_LARGE.
    p = producer(cluster, **{"linger.ms": 0, "message.max.bytes": 8 * MIB})
    res = produce_all(p, [("limit", 0, None, b"z" * (BROKER_MESSAGE_MAX + 1024))])
    err = res[0][0]
    assert err is not None
    assert err.code() == ck.KafkaError.MSG_SIZE_TOO_LARGE, err


def test_thousand_partition_topic_produce_and_read_every_partition(cluster):
    n = 1000
    t0 = time.monotonic()
    create_topic(cluster, "wide", n)
    conn = kafka_raw.Conn(*cluster.addr(min(cluster.brokers)), timeout=20)
    try:
        parts = conn.metadata(["wide"])["topics"]["wide"]["partitions"]
    finally:
        conn.close()
    plist = parts
    assert sorted(p["partition"] for p in plist) == list(range(n))
    leaders = [p["leader"] for p in plist]
    assert set(leaders) == {1, 2, 3}
    # Placement spreads leadership: no broker leads much more than its share.
    assert max(leaders.count(b) for b in (1, 2, 3)) <= n // 3 + 34

    p = producer(cluster)
    res = produce_all(p, [("wide", i, None, b"value-%d" % i) for i in range(n)])
    bad = [r for r in res if r[0] is not None]
    assert not bad, bad[:5]
    assert sorted(r[1] for r in res) == list(range(n))
    assert all(r[2] == 0 for r in res)

    cons = consumer(cluster, **{"group.id": "weir-wide"})
    try:
        cons.assign([ck.TopicPartition("wide", i, 0) for i in range(n)])
        got = {}
        deadline = time.monotonic() + 25
        while len(got) < n and time.monotonic() < deadline:
            for m in cons.consume(num_messages=500, timeout=0.5):
                assert m.error() is None, m.error()
                assert m.partition() not in got, "duplicate from partition %d" % m.partition()
                got[m.partition()] = (m.offset(), m.value())
        assert len(got) == n, "missing partitions: %r" % sorted(set(range(n)) - set(got))[:10]
        for i in range(n):
            assert got[i] == (0, b"value-%d" % i)
    finally:
        cons.close()
    assert time.monotonic() - t0 < 60
