"""Integration tests: segment.jitter.ms and index.interval.bytes take effect.

Both change when a partition rolls a segment, which an operator sees as the
segment files in the partition directories (leader and follower):

- segment.jitter.ms subtracts a per-segment jitter in [0, jitter) from
  segment.ms. Kafka draws it at random; Weir derives it from a hash of the
  partition directory and the segment's base offset (broker/storage/plog.c,
  roll_limit_ms), so the test computes the exact age at which each replica must
  roll and checks the roll happens after it and not before.
- index.interval.bytes spaces the sparse index entries: with a tiny
  segment.index.bytes, an entry per batch fills the index and rolls the segment
  after a few batches, while a large interval writes one entry and never rolls.
"""

import glob
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster(request):
    yield from weir_cluster.started(request, brokers=2)


def create(c, name, config):
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    fs = adm.create_topics([NewTopic(name, 1, 2, config=config)], request_timeout=10)
    for f in fs.values():
        assert f.result(15) is None
    c.wait_topic(name)


def produce_each(c, topic, values):
    """Each value as its own batch, acks=all (both replicas appended it)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": c.bootstrap(), "linger.ms": 0, "acks": "all"})
    errors = []
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, msg: errors.append(err))
        assert p.flush(15) == 0
    assert errors == [None] * len(values)


def log_files(c, bid, topic):
    return sorted(glob.glob(os.path.join(c.log_dir(bid), "%s-0" % topic, "*.log")))


def roll_limit_ms(partition_dir, base_offset, segment_ms, jitter_ms):
    """plog.c's roll_limit_ms: segment.ms less an FNV-1a hash of the partition
    directory and the base offset, modulo the jitter."""
    if jitter_ms <= 0 or segment_ms <= 1:
        return segment_ms
    jitter_ms = min(jitter_ms, segment_ms)
    h = 1469598103934665603
    for b in partition_dir.encode() + base_offset.to_bytes(8, "little", signed=True):
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return segment_ms - h % jitter_ms


def test_segment_jitter_rolls_each_replica_at_its_jittered_age(cluster):
    # segment.ms of a minute: without jitter nothing rolls during this test.
    # With up to a minute of jitter, pick a topic name whose first segment must
    # roll between 2 and 6 s of age on both replicas.
    segment_ms = jitter_ms = 60 * 1000
    name, limits = None, None
    for i in range(200000):
        cand = "jitter-%d" % i
        lim = {bid: roll_limit_ms(os.path.join(cluster.log_dir(bid), cand + "-0"), 0,
                                  segment_ms, jitter_ms) for bid in cluster.brokers}
        if all(2000 <= v <= 6000 for v in lim.values()):
            name, limits = cand, lim
            break
    assert name, "no topic name with a short jittered roll found"
    create(cluster, name, {"segment.ms": str(segment_ms), "segment.jitter.ms": str(jitter_ms)})
    t0 = time.monotonic()
    produce_each(cluster, name, [b"first"])
    # A segment rolls on the first append after its age passed the limit.
    # Before the earliest limit (less a margin for the first batch's timestamp
    # being taken before t0 on the broker): nothing rolls.
    while time.monotonic() - t0 < min(limits.values()) / 1000.0 - 0.5:
        produce_each(cluster, name, [b"early"])
        for bid in cluster.brokers:
            assert len(log_files(cluster, bid, name)) == 1, (bid, limits)
        time.sleep(0.3)
    deadline = t0 + max(limits.values()) / 1000.0 + 10
    while time.monotonic() < deadline:
        produce_each(cluster, name, [b"late"])
        if all(len(log_files(cluster, bid, name)) == 2 for bid in cluster.brokers):
            break
        time.sleep(0.3)
    for bid in cluster.brokers:
        assert len(log_files(cluster, bid, name)) == 2, (bid, limits)


def test_segment_jitter_zero_keeps_segment_ms(cluster):
    # The same hour without jitter: no roll at all within a few seconds.
    create(cluster, "jitter-none", {"segment.ms": str(3600 * 1000), "segment.jitter.ms": "0"})
    for _ in range(10):
        produce_each(cluster, "jitter-none", [b"x"])
        time.sleep(0.3)
    for bid in cluster.brokers:
        assert len(log_files(cluster, bid, "jitter-none")) == 1


@pytest.mark.parametrize("interval,rolls", [("0", True), ("1048576", False)])
def test_index_interval_bytes_spaces_the_index_entries(cluster, interval, rolls):
    # segment.index.bytes=24 holds three offset-index entries. With an entry
    # per batch (interval 0) eight batches fill it twice over and roll; with a
    # 1 MiB interval only the first batch of the segment gets one and the
    # segment never rolls.
    name = "interval-%s" % interval
    create(cluster, name, {"segment.index.bytes": "24", "index.interval.bytes": interval})
    produce_each(cluster, name, [b"i" * 10] * 8)
    for bid in cluster.brokers:
        n = len(log_files(cluster, bid, name))
        assert (n >= 3) if rolls else (n == 1), (bid, n)
