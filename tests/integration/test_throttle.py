"""Replication throttles (Kafka's leader./follower.replication.throttled.rate
and *.replication.throttled.replicas) on a partition move.

A partition with BIG_MIB of data on broker 1 is moved to [1, 3] through
AlterPartitionReassignments (tests/support/kafka_raw.py) with both rates set to
RATE_MIB MiB/s by IncrementalAlterConfigs (broker 1's leader rate, broker 3's
follower rate) and the partition listed as throttled ("0:1" leader side, "0:3"
follower side). The catch-up rate is measured from the growth of broker 3's
copy of the partition directory, sampled every 0.5 s. Alongside:
- partition 1 of the same topic, not listed, moves at full speed at the same
  time;
- an acks=all producer to another topic keeps its latency (p99 within 3 x its
  idle p99, or 150 ms on a loaded machine) once the unlisted partition is done;
- deleting the rates (IncrementalAlterConfigs DELETE) lets the move finish at
  full speed.

Real coordinator and brokers on free ports (tests/support/cluster.py).
"""

import os
import statistics
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, HERE)

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402
from test_broker_configs import describe_configs_raw  # noqa: E402
from test_dynamic_broker_configs import incremental  # noqa: E402

try:
    import confluent_kafka
except ImportError:  # pragma: no cover - reported by need_clients()
    confluent_kafka = None

MIB = 1 << 20
RATE_MIB = 10
BIG_MIB = 128    # the throttled partition
SMALL_MIB = 64   # the partition that is not listed
RES_TOPIC, RES_BROKER = 2, 4
OP_SET, OP_DELETE = 0, 1
LEADER_RATE = "leader.replication.throttled.rate"
FOLLOWER_RATE = "follower.replication.throttled.rate"
LEADER_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"


def need_clients():
    deps.require(confluent_kafka is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka (deploy/install-deps.sh)")


@pytest.fixture
def cluster(request):
    need_clients()
    yield from weir_cluster.started(request, brokers=3,
                                    broker_overrides={"replica.lag.time.max.ms": "5000"})


# ---- helpers (tests/bench/bench_reassign.py uses them too) -------------------------


def create_assigned(c, name, assignment, configs=None):
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    fs = adm.create_topics([NewTopic(name, len(assignment), replica_assignment=assignment,
                                     config=configs or {})], request_timeout=10)
    for f in fs.values():
        assert f.result(15) is None
    c.wait_topic(name, len(assignment))


def fill(c, topic, partition, mib, value_kib=256):
    """@mib MiB of incompressible values into @partition, acks=1."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "1", "linger.ms": 5,
                  "batch.size": 1000000, "queue.buffering.max.kbytes": 262144,
                  "compression.type": "none"})
    block = os.urandom(4 * MIB)
    size = value_kib * 1024
    errors = []
    for i in range(mib * 1024 // value_kib):
        off = (i * size) % (len(block) - size)
        while True:
            try:
                p.produce(topic, block[off:off + size], partition=partition,
                          on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    assert not errors, errors[:3]


def dir_bytes(c, bid, topic, partition):
    """Bytes of record data in broker @bid's copy of the partition (its .log files)."""
    d = os.path.join(c.log_dir(bid), "%s-%d" % (topic, partition))
    total = 0
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return 0
    for n in names:
        if n.endswith(".log"):
            try:
                total += os.path.getsize(os.path.join(d, n))
            except FileNotFoundError:
                pass
    return total


def reassign(c, moves, via=1):
    conn = kafka_raw.Conn(*c.addr(via), timeout=40)
    try:
        err, msg, out = kafka_raw.alter_partition_reassignments(conn, moves)
    finally:
        conn.close()
    assert err == 0, msg
    assert all(code == 0 for code, _ in out.values()), out


def moving(c, via=1):
    conn = kafka_raw.Conn(*c.addr(via), timeout=40)
    try:
        err, out = kafka_raw.list_partition_reassignments(conn, None)
    finally:
        conn.close()
    assert err == 0
    return out


def set_configs(c, resources):
    res = incremental(c, resources)
    assert all(r[0] == 0 for r in res), res


def throttle(c, topic, leader, follower, rate):
    """Kafka's throttle for moving a single-replica partition 0 from @leader to
    [@leader, @follower]: rates on both brokers, the replicas listed."""
    set_configs(c, [(RES_BROKER, str(leader), [(LEADER_RATE, OP_SET, str(rate))]),
                    (RES_BROKER, str(follower), [(FOLLOWER_RATE, OP_SET, str(rate))]),
                    (RES_TOPIC, topic, [(LEADER_REPLICAS, OP_SET, "0:%d" % leader),
                                        (FOLLOWER_REPLICAS, OP_SET, "0:%d" % follower)])])


def unthrottle(c, leader, follower):
    set_configs(c, [(RES_BROKER, str(leader), [(LEADER_RATE, OP_DELETE, None)]),
                    (RES_BROKER, str(follower), [(FOLLOWER_RATE, OP_DELETE, None)])])


class Sampler:
    """Samples a size function every @period seconds on a thread: [(t, bytes)]."""

    def __init__(self, fn, period=0.5):
        self.fn, self.period, self.samples = fn, period, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.fn()))
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return self.samples


def rate_between(samples, t0, t1):
    """Bytes/s between the samples closest after @t0 and before @t1."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    assert len(inside) >= 2, "too few samples"
    (ta, ba), (tb, bb) = inside[0], inside[-1]
    return (bb - ba) / (tb - ta)


class LatencyProbe:
    """An acks=all producer sending one small record every 20 ms to @topic on a
    thread; latencies in seconds."""

    def __init__(self, c, topic):
        from confluent_kafka import Producer

        self.p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 0})
        self.topic, self.lat, self.errors = topic, [], []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()

            def done(err, msg, t0=t0):
                if err:
                    self.errors.append(err)
                else:
                    self.lat.append(time.monotonic() - t0)

            self.p.produce(self.topic, b"x" * 100, on_delivery=done)
            self.p.poll(0)
            self._stop.wait(0.02)
            self.p.poll(0)

    def take(self):
        """The latencies so far, and start afresh."""
        if self.p is not None:
            self.p.flush(10)
        out, self.lat = self.lat, []
        return out

    def stop(self):
        self._stop.set()
        self._t.join(5)
        self.p.flush(10)
        self.p = None  # closes its connections before the brokers stop


def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * 0.99))] if v else float("nan")


# ---- tests -------------------------------------------------------------------------


def test_describe_and_validation_of_throttle_configs(cluster):
    """The keys are accepted, refused when malformed, and reported."""
    create_assigned(cluster, "cfg", [[1]])
    throttle(cluster, "cfg", 1, 2, 5 * MIB)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        out = describe_configs_raw(conn, 2, [(RES_TOPIC, "cfg", [LEADER_REPLICAS, FOLLOWER_REPLICAS]),
                                             (RES_BROKER, "1", [LEADER_RATE])])
    finally:
        conn.close()
    text = repr(out)
    assert "'0:1'" in text and "'0:2'" in text and "'%d'" % (5 * MIB) in text, text
    bad = incremental(cluster, [(RES_TOPIC, "cfg", [(LEADER_REPLICAS, OP_SET, "0-1")])])
    assert bad[0][0] == 40 and "partition:broker" in bad[0][1], bad
    bad = incremental(cluster, [(RES_BROKER, "1", [(LEADER_RATE, OP_SET, "0")])])
    assert bad[0][0] == 40, bad
    unthrottle(cluster, 1, 2)


@pytest.mark.parametrize("side", ["leader", "follower"])
def test_each_side_alone_holds_the_rate(cluster, side):
    """Only the leader's rate, or only the follower's, set: either side alone
    keeps the catch-up at its limit (the other side's replica list is set but
    its rate is not)."""
    c = cluster
    create_assigned(c, "t", [[1]])
    fill(c, "t", 0, 48)
    rate = 4 * MIB
    broker, key = (1, LEADER_RATE) if side == "leader" else (3, FOLLOWER_RATE)
    set_configs(c, [(RES_BROKER, str(broker), [(key, OP_SET, str(rate))]),
                    (RES_TOPIC, "t", [(LEADER_REPLICAS, OP_SET, "0:1"),
                                      (FOLLOWER_REPLICAS, OP_SET, "0:3")])])
    t_start = time.monotonic()
    sampler = Sampler(lambda: dir_bytes(c, 3, "t", 0))
    reassign(c, {("t", 0): [1, 3]})
    time.sleep(7)
    t_end = time.monotonic()
    samples = sampler.stop()
    measured = rate_between(samples, t_start + 1.0, t_end)
    print("%s-only throttle: %.2f MiB/s (limit %.0f)" % (side, measured / MIB, rate / MIB))
    assert abs(measured - rate) <= 0.2 * rate, (measured / MIB, samples)
    set_configs(c, [(RES_BROKER, str(broker), [(key, OP_DELETE, None)])])
    deadline = time.monotonic() + 60
    while moving(c):
        assert time.monotonic() < deadline, moving(c)
        time.sleep(0.1)


def test_throttled_move_holds_the_rate_and_others_do_not_slow(cluster):
    c = cluster
    create_assigned(c, "big", [[1], [1]])
    create_assigned(c, "other", [[1, 2]])
    fill(c, "big", 0, BIG_MIB)
    fill(c, "big", 1, SMALL_MIB)
    rate = RATE_MIB * MIB
    throttle(c, "big", 1, 3, rate)

    probe = LatencyProbe(c, "other")
    try:
        time.sleep(1)
        probe.take()  # the first sends wait for metadata and connections
        time.sleep(3)
        base = probe.take()

        t_start = time.monotonic()
        sampler = Sampler(lambda: dir_bytes(c, 3, "big", 0))
        small = Sampler(lambda: dir_bytes(c, 3, "big", 1))
        reassign(c, {("big", 0): [1, 3], ("big", 1): [1, 3]})
        # The unlisted partition moves at full speed in the first second or
        # so; the latency that counts is the throttled move's alone.
        time.sleep(2)
        probe.take()
        time.sleep(7)
        during = probe.take()
        t_mid = time.monotonic()

        # The rates are off: the rest of partition 0 at full speed.
        unthrottle(c, 1, 3)
        t_off = time.monotonic()
        deadline = t_off + 60
        while moving(c):
            assert time.monotonic() < deadline, "move did not finish: %r" % moving(c)
            time.sleep(0.1)
        t_done = time.monotonic()
        samples = sampler.stop()
        small_samples = small.stop()
    finally:
        probe.stop()

    # Throttled: from 1 s after the start (the first second may carry one
    # second's worth at once) to when the rates were deleted.
    measured = rate_between(samples, t_start + 1.0, t_mid)
    print("throttled catch-up %.2f MiB/s (limit %d MiB/s)" % (measured / MIB, RATE_MIB))
    assert abs(measured - rate) <= 0.2 * rate, (measured / MIB, samples)

    # Partition 1, not listed, moved at full speed meanwhile.
    small_end = next((t for t, b in small_samples if b >= SMALL_MIB * MIB), None)
    assert small_end is not None, small_samples[-5:]
    small_rate = SMALL_MIB * MIB / (small_end - t_start)
    print("unlisted partition %.1f MiB/s" % (small_rate / MIB))
    assert small_rate > 3 * rate

    # After DELETE: what was left, at full speed.
    left = BIG_MIB * MIB - [b for t, b in samples if t <= t_off][-1]
    assert left > 16 * MIB, "too little left to measure"
    after = left / (t_done - t_off)
    print("after unthrottle %.1f MiB/s (%.1f MiB in %.2f s)" % (after / MIB, left / MIB,
                                                                 t_done - t_off))
    assert after > 3 * rate

    # The producer to the unthrottled topic kept its latency.
    assert not probe.errors, probe.errors[:3]
    b99, d99 = p99(base), p99(during)
    print("producer p99 %.1f ms before, %.1f ms during the throttled move" % (b99 * 1e3,
                                                                             d99 * 1e3))
    assert len(during) > 100
    assert d99 < max(0.15, 3 * b99), (b99, d99)
    assert dir_bytes(c, 3, "big", 0) == dir_bytes(c, 1, "big", 0)
