"""Brokers follow the coordinator quorum (issue 14; docs/coordinator-quorum.md,
"Brokers").

Three weir-coordinator voters and three brokers whose coordinator.connect lists
all three. acks=all producers (retries on, every delivery checked) and a
consumer group run while the test

- kills the quorum leader with -9: the largest gap between acknowledged
  deliveries stays under 2 s, nothing acknowledged is lost (everything is
  consumed back and compared), no broker is fenced or registers again, the group
  keeps consuming, and a create-topic then succeeds through the new leader;
- SIGSTOPs the leader past the election timeout and resumes it: a new leader is
  elected, the old one steps down (it logs the higher term it met), and the
  brokers keep serving produce and a create-topic.

Figures are printed (run with -s). Each test is bounded by SIGALRM (120 s);
processes are started and stopped by PID through tests/support/cluster.py.
"""

import os
import re
import signal
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402

try:
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # pragma: no cover - reported by deps.require
    Producer = None

TOPIC = "qf"
PARTITIONS = 3
STALL_BOUND_S = float(os.environ.get("WEIR_QUORUM_STALL_S", "2.0"))
RATE = 200  # values/s
TEST_BOUND_S = 120
BROKER_OVERRIDES = {"replica.lag.time.max.ms": 3000}


@pytest.fixture
def time_bound():
    def expired(signum, frame):
        raise TimeoutError("test ran over %d s" % TEST_BOUND_S)
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_BOUND_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def qc(request, time_bound):
    deps.require(Producer is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka")
    yield from weir_cluster.started(request, brokers=3, coordinators=3,
                                    broker_overrides=BROKER_OVERRIDES)


def create_topic(c, name, partitions=PARTITIONS, rf=3, timeout=20.0):
    """CreateTopics through the brokers, retried while the quorum settles
    (NOT_CONTROLLER reaches the client as a retriable error)."""
    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    deadline = time.monotonic() + timeout
    while True:
        fs = adm.create_topics([NewTopic(name, partitions, rf,
                                         config={"min.insync.replicas": "2"})],
                               request_timeout=10)
        try:
            for f in fs.values():
                f.result(15)
            break
        except Exception as e:  # noqa: BLE001 - any failure is retried until the deadline
            if "TOPIC_ALREADY_EXISTS" in str(e):
                break
            assert time.monotonic() < deadline, "create %s: %s" % (name, e)
            time.sleep(0.2)
    c.wait_topic(name, partitions, timeout=15)


class Load:
    """An acks=all producer at RATE values/s and a consumer group, each on a
    thread. Every delivery report is checked; acked values and their times are
    kept to find the largest gap between acknowledgements."""

    def __init__(self, c):
        self.c = c
        self.stop = threading.Event()
        self.acked = {}  # value -> monotonic time of its delivery report
        self.ack_times = []
        self.errors = []
        self.consumed = set()
        self.consume_times = []
        self.sent = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._produce, daemon=True),
                        threading.Thread(target=self._consume, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _produce(self):
        p = Producer({"bootstrap.servers": self.c.bootstrap(), "acks": "all",
                      "enable.idempotence": True, "retries": 1000000,
                      "message.timeout.ms": 60000, "linger.ms": 5,
                      "topic.metadata.refresh.interval.ms": 1000})

        def report(err, msg):
            now = time.monotonic()
            with self.lock:
                if err is not None:
                    self.errors.append(str(err))
                else:
                    v = msg.value().decode()
                    self.acked[v] = now
                    self.ack_times.append(now)

        i = 0
        t0 = time.monotonic()
        while not self.stop.is_set():
            v = "v%07d" % i
            try:
                p.produce(TOPIC, value=v.encode(), on_delivery=report)
                i += 1
            except BufferError:
                pass
            p.poll(0)
            delay = t0 + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.sent = i
        left = p.flush(60)
        if left:
            with self.lock:
                self.errors.append("%d values not delivered after flush" % left)

    def _consume(self):
        cons = Consumer({"bootstrap.servers": self.c.bootstrap(), "group.id": "qf-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True,
                         "session.timeout.ms": 10000})
        cons.subscribe([TOPIC])
        try:
            while not self.stop.is_set():
                m = cons.poll(0.2)
                if m is None or m.error():
                    continue
                with self.lock:
                    self.consumed.add(m.value().decode())
                    self.consume_times.append(time.monotonic())
        finally:
            cons.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)

    def max_gap(self, since, until):
        """The largest gap between acknowledgements within [since, until]."""
        with self.lock:
            ts = sorted(t for t in self.ack_times if since <= t <= until)
        if not ts:
            return float("inf")
        edges = [since] + ts + [until]
        return max(b - a for a, b in zip(edges, edges[1:]))

    def consumed_after(self, t):
        with self.lock:
            return sum(1 for x in self.consume_times if x > t)


def read_back(c):
    """Every value in the topic, by a fresh consumer from the beginning."""
    cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "qf-verify",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "enable.partition.eof": True})
    cons.subscribe([TOPIC])
    got, eof = set(), set()
    deadline = time.monotonic() + 30
    try:
        while len(eof) < PARTITIONS and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            eof.discard(m.partition())
            got.add(m.value().decode())
    finally:
        cons.close()
    assert len(eof) == PARTITIONS, "read-back did not reach the end of every partition"
    return got


def broker_log(c, bid):
    with open(c.brokers[bid].log_path, "rb") as f:
        return f.read().decode(errors="replace")


def check_no_fencing(c):
    """No broker was fenced by any voter, and each registered exactly once."""
    for i in c.coordinators:
        log = c.coordinator_log(i)
        assert "broker_fenced" not in log and "fencing it" not in log, \
            "coordinator %d fenced a broker:\n%s" % (i, "\n".join(
                l for l in log.splitlines() if "fenc" in l))
    regs = {}
    for bid in c.brokers:
        regs[bid] = len(re.findall(r"registered broker %d with epoch" % bid, broker_log(c, bid)))
        assert regs[bid] == 1, "broker %d registered %d times" % (bid, regs[bid])
        assert "registering again" not in broker_log(c, bid)
    return regs


def moves(c):
    return {bid: len(re.findall(r"talking to coordinator", broker_log(c, bid)))
            for bid in c.brokers}


def test_kill9_quorum_leader_under_load(qc):
    c = qc
    create_topic(c, TOPIC)
    load = Load(c).start()
    time.sleep(4)
    with load.lock:
        before = len(load.acked)
    assert before > 0, "nothing acknowledged before the fault"

    leader = c.coordinator_leader()
    term = c.coordinator_term(leader)
    t_kill = time.monotonic()
    c.kill9_coordinator(leader)
    new = c.coordinator_leader(timeout=15, exclude=(leader,), min_term=term + 1)
    t_elected = time.monotonic() - t_kill
    time.sleep(6)
    t_end = time.monotonic()
    load.finish()
    gap = load.max_gap(t_kill - 1.0, t_end)
    consumed_after = load.consumed_after(t_kill + 1.0)

    # A metadata change goes through the new leader.
    t0 = time.monotonic()
    create_topic(c, "qf-after", partitions=1, rf=3)
    create_s = time.monotonic() - t0

    assert not load.errors, "delivery errors: %r" % load.errors[:5]
    got = read_back(c)
    lost = sorted(set(load.acked) - got)
    regs = check_no_fencing(c)
    mv = moves(c)
    print("\nkill -9 of coordinator leader %d (term %d): coordinator %d leads after %.2f s; "
          "largest acks=all produce gap %.3f s (bound %.1f s); %d sent, %d acked, %d read "
          "back, %d lost; group consumed %d values after the kill; create-topic via the new "
          "leader %.2f s; registrations %r; broker moves %r"
          % (leader, term, new, t_elected, gap, STALL_BOUND_S, load.sent, len(load.acked),
             len(got), len(lost), consumed_after, create_s, regs, mv))
    assert not lost, "acknowledged values lost: %r" % lost[:10]
    assert gap < STALL_BOUND_S, "produce stalled %.3f s" % gap
    assert consumed_after > 0, "the consumer group stopped consuming"
    assert all(n >= 1 for bid, n in mv.items()), "a broker did not move: %r" % mv


def test_sigstop_quorum_leader_steps_down(qc):
    c = qc
    create_topic(c, TOPIC)
    load = Load(c).start()
    time.sleep(3)
    leader = c.coordinator_leader()
    term = c.coordinator_term(leader)
    t_stop = time.monotonic()
    c.pause_coordinator(leader)
    new = c.coordinator_leader(timeout=15, exclude=(leader,), min_term=term + 1)
    t_elected = time.monotonic() - t_stop
    time.sleep(max(0.0, 4.0 - (time.monotonic() - t_stop)))  # well past the election timeout
    c.resume_coordinator(leader)
    t_resume = time.monotonic()
    new_term = c.coordinator_term(new)

    # The old leader must step down: no second leader. It learns the newer term
    # from the others and answers brokers NOT_CONTROLLER from then on.
    def stepped_down():
        return c.coordinator_term(leader) == term and \
            "no longer the coordinator leader" in c.coordinator_log(leader)
    deadline = time.monotonic() + 10
    while not stepped_down():
        assert time.monotonic() < deadline, "the resumed leader did not step down:\n" + \
            "\n".join(c.coordinator_log(leader).splitlines()[-20:])
        time.sleep(0.1)
    assert c.coordinator_leader(timeout=5) == new
    time.sleep(3)
    t_end = time.monotonic()
    load.finish()
    create_topic(c, "qf-after-stop", partitions=1, rf=3)
    assert not load.errors, "delivery errors: %r" % load.errors[:5]
    gap = load.max_gap(t_stop - 1.0, t_end)
    got = read_back(c)
    lost = sorted(set(load.acked) - got)
    regs = check_no_fencing(c)
    print("\nSIGSTOP of coordinator leader %d (term %d): coordinator %d leads (term %d) after "
          "%.2f s; resumed after %.1f s and stepped down; largest produce gap %.3f s; "
          "%d acked, %d lost; registrations %r; broker moves %r"
          % (leader, term, new, new_term, t_elected, t_resume - t_stop, gap, len(load.acked),
             len(lost), regs, moves(c)))
    assert not lost, "acknowledged values lost: %r" % lost[:10]
    assert gap < STALL_BOUND_S, "produce stalled %.3f s" % gap
