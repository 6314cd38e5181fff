"""Consumer groups (docs/consumer-groups.md): the membership APIs with real
clients against a coordinator and three brokers (tests/support/cluster.py).
Every wait is bounded (wait_for, subprocess timeouts); the cluster fixture
stops every process it started.

kafka-python (python3-kafka 2.0.2) is the tutorial consumer, the three-member
group that shares six partitions and takes over from a member that leaves, and
the admin client; confluent-kafka (librdkafka) runs the range, roundrobin and
cooperative-sticky assignors and static membership; kcat -G is a balanced
consumer. Bad input is sent raw (tests/support/kafka_raw.py) so the exact
error code is checked.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402

try:
    import kafka
    from kafka.admin import KafkaAdminClient
except ImportError:  # pragma: no cover - reported by deps.require below
    kafka = None
try:
    import confluent_kafka
    from confluent_kafka.admin import AdminClient
except ImportError:  # pragma: no cover
    confluent_kafka = None

NONE = 0
UNKNOWN_SERVER_ERROR = -1
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69


def need_kafka_python():
    deps.require(kafka is not None, "kafka-python is not installed",
                 "apt-get install python3-kafka (deploy/install-deps.sh)")


def need_confluent():
    deps.require(confluent_kafka is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka (deploy/install-deps.sh)")


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(request, brokers=3)


def wait_for(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def produce_json(c, topic, values):
    # retries: a leadership not yet taken up right after CreateTopics answers
    # NOT_LEADER_OR_FOLLOWER (kafka-python's default retries=0 drops the
    # batch); every record's future is checked so none is lost silently.
    p = kafka.KafkaProducer(bootstrap_servers=c.bootstrap(), acks="all", retries=20,
                            retry_backoff_ms=100, max_in_flight_requests_per_connection=1,
                            value_serializer=lambda v: json.dumps(v).encode())
    try:
        futures = [p.send(topic, v) for v in values]
        p.flush(timeout=60)
        for f in futures:
            f.get(timeout=1)
    finally:
        p.close(timeout=10)


# ---- kafka-python --------------------------------------------------------------------


def test_tutorial_consumer_reads_ten_dicts_exactly_once(cluster):
    need_kafka_python()
    cluster.create_topic("orders", 1, 3)
    orders = [{"order": i, "item": "widget-%d" % i} for i in range(10)]
    produce_json(cluster, "orders", orders)
    consumer = kafka.KafkaConsumer("orders", bootstrap_servers=cluster.bootstrap(), group_id="g1",
                                   auto_offset_reset="earliest",
                                   value_deserializer=lambda v: json.loads(v),
                                   consumer_timeout_ms=15000)
    try:
        got = []
        for msg in consumer:
            got.append(msg.value)
            if len(got) == 10:
                break
        assert got == orders
        consumer.commit()
        # nothing more arrives: each dict exactly once
        extra = consumer.poll(timeout_ms=2000)
        assert not any(extra.values())
    finally:
        consumer.close()


class Member(threading.Thread):
    """A kafka-python group member that polls, records what it read and commits
    synchronously after each poll, until told to stop."""

    def __init__(self, c, topic, group, name):
        super().__init__(daemon=True)
        self.name_ = name
        self.consumer = kafka.KafkaConsumer(
            topic, bootstrap_servers=c.bootstrap(), group_id=group, client_id=name,
            auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=500,
            session_timeout_ms=10000, heartbeat_interval_ms=1000)
        self.seen = []
        self.uncommitted = []  # read, then the commit failed: may be read again
        self.stop = threading.Event()
        self.error = None
        self.lock = threading.Lock()

    def run(self):
        try:
            while not self.stop.is_set():
                batches = self.consumer.poll(timeout_ms=200)
                got = [int(m.value) for recs in batches.values() for m in recs]
                if not got:
                    continue
                with self.lock:
                    self.seen.extend(got)
                try:
                    self.consumer.commit()
                except kafka.errors.CommitFailedError:
                    self.uncommitted.extend(got)
        except Exception as e:  # surfaced by the test
            self.error = e

    def assignment(self):
        return sorted(tp.partition for tp in self.consumer.assignment())

    def count(self):
        with self.lock:
            return len(self.seen)

    def close(self):
        self.stop.set()
        self.join(timeout=30)
        self.consumer.close()


def test_three_members_share_six_partitions_and_take_over(cluster):
    need_kafka_python()
    n = 30000
    cluster.create_topic("t6", 6, 3)
    # retries and checked futures: see produce_json()
    p = kafka.KafkaProducer(bootstrap_servers=cluster.bootstrap(), acks="all", linger_ms=5,
                            retries=20, retry_backoff_ms=100,
                            max_in_flight_requests_per_connection=1)
    sent = [p.send("t6", key=str(i).encode(), value=str(i).encode()) for i in range(n // 2)]
    p.flush(timeout=60)
    for f in sent:
        f.get(timeout=1)
    members = [Member(cluster, "t6", "g3", "m%d" % i) for i in range(3)]
    for m in members:
        m.start()
    try:
        wait_for("three members with two partitions each",
                 lambda: all(len(m.assignment()) == 2 for m in members), timeout=60)
        parts = sorted(x for m in members for x in m.assignment())
        assert parts == [0, 1, 2, 3, 4, 5]
        wait_for("the first half consumed", lambda: sum(m.count() for m in members) >= n // 2,
                 timeout=60)
        # one member leaves (LeaveGroup on close); the two others take its partitions over
        leaving = members.pop()
        leaving.close()
        sent = [p.send("t6", key=str(i).encode(), value=str(i).encode())
                for i in range(n // 2, n)]
        p.flush(timeout=60)
        for f in sent:
            f.get(timeout=1)
        wait_for("two members with three partitions each",
                 lambda: sorted(len(m.assignment()) for m in members) == [3, 3], timeout=60)
        wait_for("everything consumed",
                 lambda: len(set(leaving.seen + [x for m in members for x in m.seen])) >= n,
                 timeout=120)
        for m in members:
            assert m.error is None, m.error
        everything = leaving.seen + [x for m in members for x in m.seen]
        assert set(everything) == set(range(n))
        # exactly once, except what was read and then could not be committed
        dup = {x for x in everything if everything.count(x) > 1} if len(everything) != n else set()
        allowed = set(leaving.uncommitted + [x for m in members for x in m.uncommitted])
        assert dup <= allowed, sorted(dup - allowed)[:20]
    finally:
        p.close(timeout=10)
        for m in members:
            m.close()


def test_admin_lists_describes_and_deletes_groups(cluster):
    need_kafka_python()
    need_confluent()
    cluster.create_topic("adm", 2, 3)
    produce_json(cluster, "adm", [{"i": i} for i in range(4)])
    consumer = kafka.KafkaConsumer("adm", bootstrap_servers=cluster.bootstrap(), group_id="gadm",
                                   client_id="adm-client", auto_offset_reset="earliest",
                                   consumer_timeout_ms=10000)
    try:
        wait_for("a message", lambda: consumer.poll(timeout_ms=500) or None)
        consumer.commit()
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap())
        try:
            listed = wait_for("gadm listed", lambda: [g for g in admin.list_consumer_groups()
                                                      if g[0] == "gadm"])
            assert listed == [("gadm", "consumer")]
            [desc] = admin.describe_consumer_groups(["gadm"])
            assert desc.state == "Stable"
            assert desc.protocol_type == "consumer"
            assert desc.protocol == "range"
            assert len(desc.members) == 1
            m = desc.members[0]
            assert m.client_id == "adm-client"
            assert m.client_host == "/127.0.0.1"
            assert m.member_id.startswith("adm-client-")
            ca = AdminClient({"bootstrap.servers": cluster.bootstrap()})
            groups = [g for g in ca.list_groups(timeout=10) if g.id == "gadm"]
            assert len(groups) == 1
            assert groups[0].state == "Stable"
            assert groups[0].protocol == "range"
            assert [mm.client_id for mm in groups[0].members] == ["adm-client"]
            # a group with members cannot be deleted
            res = dict(admin.delete_consumer_groups(["gadm"]))
            assert res["gadm"].errno == NON_EMPTY_GROUP
            consumer.close()
            consumer = None
            wait_for("gadm empty", lambda: admin.describe_consumer_groups(["gadm"])[0].state
                     == "Empty")
            res = dict(admin.delete_consumer_groups(["gadm"]))
            assert res["gadm"].errno == NONE
            assert "gadm" not in [g[0] for g in admin.list_consumer_groups()]
            res = dict(admin.delete_consumer_groups(["gadm"]))
            assert res["gadm"].errno == GROUP_ID_NOT_FOUND
        finally:
            admin.close()
    finally:
        if consumer is not None:
            consumer.close()


# ---- confluent-kafka -----------------------------------------------------------------


def ck_consumer(c, group, **extra):
    conf = {"bootstrap.servers": c.bootstrap(), "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}
    conf.update(extra)
    return confluent_kafka.Consumer(conf)


def ck_produce(c, topic, n, start=0):
    p = confluent_kafka.Producer({"bootstrap.servers": c.bootstrap(), "acks": "all"})
    for i in range(start, start + n):
        p.produce(topic, key=str(i), value=str(i))
    assert p.flush(30) == 0


def ck_poll_all(consumers, want, timeout=60.0):
    """Poll every consumer (in turn) until @want distinct values arrived; returns
    {index: [values]}."""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + timeout
    while len(set(v for vs in got.values() for v in vs)) < want:
        assert time.monotonic() < deadline, "consumed %d of %d" % (
            len(set(v for vs in got.values() for v in vs)), want)
        for i, c in enumerate(consumers):
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            got[i].append(int(m.value()))
            c.commit(message=m, asynchronous=False)
    return got


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_confluent_assignors(cluster, assignor):
    need_confluent()
    topic = "ck-" + assignor
    cluster.create_topic(topic, 4, 3)
    ck_produce(cluster, topic, 400)
    consumers = [ck_consumer(cluster, "gck-" + assignor, **{"partition.assignment.strategy": assignor})
                 for _ in range(2)]
    try:
        for c in consumers:
            c.subscribe([topic])
        got = ck_poll_all(consumers, 400)
        everything = [v for vs in got.values() for v in vs]
        assert sorted(everything) == list(range(400))  # exactly once
        wait_for("two partitions each",
                 lambda: (all(c.poll(0.1) is None for c in consumers) and
                          sorted(len(c.assignment()) for c in consumers) == [2, 2]))
    finally:
        for c in consumers:
            c.close()


def test_static_member_restart_keeps_partitions_without_rebalance(cluster):
    need_confluent()
    cluster.create_topic("st", 4, 3)
    ck_produce(cluster, "st", 40)
    revoked = {"a": 0, "b": 0}

    def on_revoke(name):
        def cb(consumer, parts):
            revoked[name] += 1
        return cb

    def start(name):
        c = ck_consumer(cluster, "gst", **{"group.instance.id": "inst-" + name,
                                          "session.timeout.ms": 30000})
        c.subscribe(["st"], on_revoke=on_revoke(name))
        return c

    a, b = start("a"), start("b")
    try:
        def settled():
            for c in (a, b):
                c.poll(0.2)
            return sorted(len(c.assignment()) for c in (a, b)) == [2, 2]
        wait_for("two static members with two partitions each", settled, timeout=60)
        before_a = sorted(tp.partition for tp in a.assignment())
        revoked_b = revoked["b"]
        a.close()  # a static member sends no LeaveGroup
        a = start("a")

        def back():
            for c in (a, b):
                c.poll(0.2)
            return len(a.assignment()) == 2
        wait_for("a has its partitions again", back, timeout=60)
        assert sorted(tp.partition for tp in a.assignment()) == before_a
        for _ in range(10):
            b.poll(0.2)
        assert revoked["b"] == revoked_b, "b's partitions were revoked: a rebalance happened"
    finally:
        a.close()
        b.close()


# ---- kcat ------------------------------------------------------------------------------


def test_kcat_balanced_consumer(cluster):
    kcat = shutil.which("kcat")
    deps.require(kcat is not None, "kcat is not installed", "apt-get install kcat")
    need_confluent()
    cluster.create_topic("kc", 3, 3)
    ck_produce(cluster, "kc", 30)
    out = subprocess.run([kcat, "-b", cluster.bootstrap(), "-G", "gkcat", "-o", "beginning",
                          "-e", "-q", "-f", "%s\\n", "kc"],
                         capture_output=True, timeout=90)
    assert out.returncode == 0, out.stderr.decode()
    values = sorted(int(x) for x in out.stdout.decode().split())
    assert values == list(range(30))


# ---- bad input, raw ----------------------------------------------------------------------


def s(x):
    b = x.encode()
    return struct.pack(">h", len(b)) + b


def by(b):
    return struct.pack(">i", len(b)) + b


def coordinator(c, group):
    conn = kafka_raw.Conn(*c.addr(1))
    try:
        def ask():
            r = conn.response(conn.request(10, 0, s(group)))
            err, _node, host, port = r.take(">h"), r.take(">i"), r.string(), r.take(">i")
            return (host, port) if err == 0 else None
        addr = wait_for("a coordinator for " + group, ask)
    finally:
        conn.close()
    # FindCoordinator names the leader of the group's offsets partition as soon
    # as the metadata does; until that broker has taken the partition up it
    # answers COORDINATOR_LOAD_IN_PROGRESS (as Kafka's does while loading).
    # Tests that check other errors wait for the load to finish first.
    loaded = kafka_raw.Conn(*addr)
    try:
        def ready():
            r = loaded.response(loaded.request(15, 0, struct.pack(">i", 1) + s(group)))
            assert r.take(">i") == 1
            return r.take(">h") != 14
        wait_for("the coordinator of " + group + " to load", ready)
    finally:
        loaded.close()
    return addr


def rbytes(r):
    n = r.take(">i")
    b = r.d[r.p:r.p + max(n, 0)]
    r.p += max(n, 0)
    return b


def join_v0(conn, group, member, session_ms=10000, protocols=(("range", b"meta"),),
            ptype="consumer"):
    body = s(group) + struct.pack(">i", session_ms) + s(member) + s(ptype)
    body += struct.pack(">i", len(protocols)) + b"".join(s(n) + by(m) for n, m in protocols)
    return conn.request(11, 0, body)


def join_answer(conn, corr):
    r = conn.response(corr)
    err, gen, _proto, leader, member = (r.take(">h"), r.take(">i"), r.string(), r.string(),
                                       r.string())
    members = r.array(lambda: (r.string(), rbytes(r)))
    return err, gen, leader, member, members


def sync_v0(conn, group, gen, member, assignments):
    body = s(group) + struct.pack(">i", gen) + s(member)
    body += struct.pack(">i", len(assignments)) + b"".join(s(m) + by(a) for m, a in assignments)
    r = conn.response(conn.request(14, 0, body))
    err = r.take(">h")
    return err, rbytes(r)


def heartbeat_v0(conn, group, gen, member):
    r = conn.response(conn.request(12, 0, s(group) + struct.pack(">i", gen) + s(member)))
    return r.take(">h")


def test_bad_group_input_gets_kafkas_errors(cluster):
    group = "gbad"
    host, port = coordinator(cluster, group)
    conn = kafka_raw.Conn(host, port, timeout=30)
    try:
        assert join_answer(conn, join_v0(conn, group, "", protocols=()))[0] == \
            INCONSISTENT_GROUP_PROTOCOL
        assert join_answer(conn, join_v0(conn, group, "", session_ms=1000))[0] == \
            INVALID_SESSION_TIMEOUT
        assert join_answer(conn, join_v0(conn, group, "", session_ms=1800001))[0] == \
            INVALID_SESSION_TIMEOUT
        # a leader and a follower; the follower's assignments are ignored
        conn2 = kafka_raw.Conn(host, port, timeout=30)
        try:
            c1 = join_v0(conn, group, "")
            c2 = join_v0(conn2, group, "")
            e1, gen, leader, m1, members = join_answer(conn, c1)
            e2, gen2, _, m2, _ = join_answer(conn2, c2)
            assert (e1, e2) == (NONE, NONE) and gen == gen2 == 1
            assert leader == m1 and len(members) == 2

            results = {}
            t = threading.Thread(daemon=True, target=lambda: results.update(
                f=sync_v0(conn2, group, gen, m2, [(m1, b"bogus"), (m2, b"bogus")])))
            t.start()
            time.sleep(0.3)
            assert sync_v0(conn, group, gen, m1, [(m1, b"for-1"), (m2, b"for-2")]) == \
                (NONE, b"for-1")
            t.join(timeout=30)
            assert results["f"] == (NONE, b"for-2")
            assert heartbeat_v0(conn, group, gen + 5, m1) == ILLEGAL_GENERATION
            assert heartbeat_v0(conn, group, gen, "nobody") == UNKNOWN_MEMBER_ID
            assert heartbeat_v0(conn, group, gen, m2) == NONE
        finally:
            conn2.close()
    finally:
        conn.close()


def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout(cluster):
    """Kafka's pending-sync timeout: a member that joined but sends no SyncGroup
    is removed once the rebalance timeout (JoinGroup v0: the session timeout,
    here 10 s) has passed since the join completed, even while it heartbeats,
    and the group rebalances so its partitions do not stay unconsumed."""
    group = "gnosync"
    host, port = coordinator(cluster, group)
    conn = kafka_raw.Conn(host, port, timeout=30)
    conn2 = kafka_raw.Conn(host, port, timeout=30)
    try:
        c1 = join_v0(conn, group, "")
        c2 = join_v0(conn2, group, "")
        e1, gen, leader, m1, members = join_answer(conn, c1)
        e2, gen2, _, m2, _ = join_answer(conn2, c2)
        joined = time.monotonic()
        assert (e1, e2) == (NONE, NONE) and gen == gen2 and len(members) == 2
        assert leader == m1
        assert sync_v0(conn, group, gen, m1, [(m1, b"p0"), (m2, b"p1")]) == (NONE, b"p0")
        # m2 heartbeats but never syncs
        removed = None
        while time.monotonic() < joined + 30:
            h1, h2 = heartbeat_v0(conn, group, gen, m1), heartbeat_v0(conn2, group, gen, m2)
            if h2 != NONE:
                removed = time.monotonic() - joined
                assert h2 == UNKNOWN_MEMBER_ID
                assert heartbeat_v0(conn, group, gen, m1) == REBALANCE_IN_PROGRESS
                break
            assert h1 == NONE
            time.sleep(0.5)
        assert removed is not None, "the member that never synced is still in the group"
        assert 9.0 <= removed <= 20.0, removed  # 10 s rebalance timeout, and the checks' time
        # the remaining member rejoins alone
        e, gen3, leader, m, members = join_answer(conn, join_v0(conn, group, m1))
        assert e == NONE and gen3 == gen + 1 and leader == m1 and len(members) == 1
    finally:
        conn2.close()
        conn.close()


def test_huge_member_metadata_is_refused_not_fatal(cluster):
    group = "ghuge"
    host, port = coordinator(cluster, group)
    conn = kafka_raw.Conn(host, port, timeout=30)
    try:
        blob = b"\x00" * (10 << 20)
        e, gen, leader, m, members = join_answer(conn, join_v0(conn, group, "",
                                                               protocols=(("range", blob),)))
        assert e == NONE and leader == m
        # the group record could never fit a batch of __consumer_offsets: Kafka's
        # MESSAGE_TOO_LARGE answer for the sync
        assert sync_v0(conn, group, gen, m, [(m, b"x")])[0] == UNKNOWN_SERVER_ERROR
        assert heartbeat_v0(conn, group, gen, m) == REBALANCE_IN_PROGRESS
    finally:
        conn.close()
    # the broker is fine: a normal group still works
    conn = kafka_raw.Conn(host, port, timeout=30)
    try:
        e, gen, leader, m, _ = join_answer(conn, join_v0(conn, "gfine", ""))
        assert e in (NONE, 16)  # NOT_COORDINATOR when gfine lives elsewhere
    finally:
        conn.close()


def leave_v0(conn, group, member):
    r = conn.response(conn.request(13, 0, s(group) + s(member)))
    return r.take(">h")


def test_empty_group_whose_offsets_expired_leaves_list_groups(request):
    """Kafka's cleanupGroupMetadata: once an Empty group's last committed offset
    expired, the group itself goes (a tombstone), so ListGroups stops naming it."""
    need_kafka_python()
    from test_offsets import offset_commit_v2
    failed_before = request.session.testsfailed
    c = weir_cluster.Cluster(brokers=3, broker_overrides={
        "offsets.retention.check.interval.ms": "300",
        "group.initial.rebalance.delay.ms": "0",
    })
    c.start()
    try:
        c.create_topic("gexp-t", 1, 3)
        host, port = coordinator(c, "gexp")
        conn = kafka_raw.Conn(host, port)
        try:
            def joined():
                a = join_answer(conn, join_v0(conn, "gexp", "", session_ms=6000))
                return a if a[0] == 0 else None
            _, gen, _, member, _ = wait_for("joined", joined)
            assert sync_v0(conn, "gexp", gen, member, [(member, b"")])[0] == 0
            assert offset_commit_v2(conn, "gexp", {"gexp-t": [(0, 5, "")]}, generation=gen,
                                    member=member, retention_ms=1500) == {("gexp-t", 0): 0}
            admin = KafkaAdminClient(bootstrap_servers=c.bootstrap())
            try:
                def listed():
                    return "gexp" in [g[0] for g in admin.list_consumer_groups()]
                assert listed()
                assert leave_v0(conn, "gexp", member) == 0
                # Empty now, with an offset that expires 1.5 s after its commit.
                wait_for("gexp gone from ListGroups", lambda: not listed(), timeout=20)
            finally:
                admin.close()
        finally:
            conn.close()
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)
