"""Committed offsets in a replicated __consumer_offsets (docs/consumer-groups.md,
"Offsets and __consumer_offsets"): FindCoordinator, OffsetCommit, OffsetFetch and
OffsetDelete against a coordinator and three brokers (tests/support/cluster.py).

FindCoordinator is checked against Kafka's own mapping computed here in Python;
kafka-python (python3-kafka) and confluent-kafka commit and fetch offsets in
assign() mode and in groups; failures: a consumer killed with SIGKILL, the
broker coordinating a group killed with SIGKILL while three members consume,
every broker restarted. Exact error codes are checked with raw requests
(tests/support/kafka_raw.py). Every wait is bounded; the cluster fixture stops
every process it started.
"""

import os
import signal
import struct
import subprocess
import sys
import textwrap
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
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata
except ImportError:  # pragma: no cover - reported by deps.require below
    kafka = None
try:
    import confluent_kafka
except ImportError:  # pragma: no cover
    confluent_kafka = None

NONE = 0
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
UNKNOWN_TOPIC_OR_PARTITION = 3
GROUP_ID_NOT_FOUND = 69
OFFSETS_PARTITIONS = 10


def need_clients():
    deps.require(kafka is not None, "kafka-python is not installed",
                 "apt-get install python3-kafka (deploy/install-deps.sh)")
    deps.require(confluent_kafka is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka (deploy/install-deps.sh)")


def make_cluster(request, **overrides):
    o = {"offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
         "group.initial.rebalance.delay.ms": "0"}
    o.update(overrides)
    return weir_cluster.Cluster(brokers=3, broker_overrides=o)


@pytest.fixture
def cluster(request):
    need_clients()
    failed_before = request.session.testsfailed
    c = make_cluster(request)
    c.start()
    try:
        yield c
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


def wait_for(what, fn, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(interval)


def java_hash(s):
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h


def kafka_partition_for(group, partitions):
    """Kafka's GroupMetadataManager.partitionFor: Utils.abs(hashCode) % count."""
    h = java_hash(group)
    h = h - (1 << 32) if h >= (1 << 31) else h  # as a Java int
    return (0 if h == -(1 << 31) else abs(h)) % partitions


# ---- raw requests ------------------------------------------------------------------


def _s(v):
    return kafka_raw._string(v)


def find_coordinator_v1(conn, key, key_type=0):
    r = conn.response(conn.request(10, 1, _s(key) + struct.pack(">b", key_type)))
    r.take(">i")  # throttle
    err = r.take(">h")
    msg = r.string()
    node = r.take(">i")
    host = r.string()
    port = r.take(">i")
    return err, msg, node, host, port


def find_coordinator_v0(conn, key):
    r = conn.response(conn.request(10, 0, _s(key)))
    return r.take(">h"), r.take(">i"), r.string(), r.take(">i")


def _cstr(s):
    if s is None:
        return kafka_raw._uvarint(0)
    b = s.encode()
    return kafka_raw._uvarint(len(b) + 1) + b


def find_coordinator_v4(conn, keys, key_type=0):
    """Flexible: request header v2 (tagged fields), response header v1."""
    conn.corr += 1
    hdr = struct.pack(">hhi", 10, 4, conn.corr) + _s("pytest") + b"\x00"
    body = struct.pack(">b", key_type) + kafka_raw._uvarint(len(keys) + 1) + \
        b"".join(_cstr(k) for k in keys) + b"\x00"
    msg = hdr + body
    conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", conn.recv_exact(4))[0]
    data = conn.recv_exact(size)
    r = kafka_raw.FlexReader(data[4:])
    r.tags()
    r.take(">i")

    def coord():
        key = r.cstring()
        node = r.take(">i")
        host = r.cstring()
        port = r.take(">i")
        err = r.take(">h")
        msg = r.cstring()
        r.tags()
        return {"key": key, "node": node, "host": host, "port": port, "error": err, "msg": msg}

    return r.carray(coord)


def offset_commit_v2(conn, group, topics, generation=-1, member="", retention_ms=-1):
    """@topics: {name: [(partition, offset, metadata)]} -> {(name, partition): error}"""
    body = _s(group) + struct.pack(">i", generation) + _s(member) + struct.pack(">q", retention_ms)
    body += struct.pack(">i", len(topics))
    for name, parts in topics.items():
        body += _s(name) + struct.pack(">i", len(parts))
        for p, off, md in parts:
            body += struct.pack(">iq", p, off) + _s(md)
    r = conn.response(conn.request(8, 2, body))
    out = {}
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            p = r.take(">i")
            out[(name, p)] = r.take(">h")
    return out


def offset_fetch_v2(conn, group, topics=None):
    """@topics: {name: [partition]} or None (all) -> (error, {(name, p): (offset, md, err)})"""
    if topics is None:
        body = _s(group) + struct.pack(">i", -1)
    else:
        body = _s(group) + struct.pack(">i", len(topics))
        for name, parts in topics.items():
            body += _s(name) + struct.pack(">i", len(parts)) + \
                b"".join(struct.pack(">i", p) for p in parts)
    r = conn.response(conn.request(9, 2, body))
    out = {}
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            p = r.take(">i")
            off = r.take(">q")
            md = r.string()
            out[(name, p)] = (off, md, r.take(">h"))
    return r.take(">h"), out


def offset_delete_v0(conn, group, topics):
    body = _s(group) + struct.pack(">i", len(topics))
    for name, parts in topics.items():
        body += _s(name) + struct.pack(">i", len(parts)) + \
            b"".join(struct.pack(">i", p) for p in parts)
    r = conn.response(conn.request(47, 0, body))
    err = r.take(">h")
    r.take(">i")
    out = {}
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            p = r.take(">i")
            out[(name, p)] = r.take(">h")
    return err, out


def coordinator_of(c, group, timeout=30.0):
    """(node, host, port) once FindCoordinator answers without error."""
    def ask():
        for b, p in c.brokers.items():
            if not p.running():
                continue
            conn = kafka_raw.Conn(*c.addr(b))
            try:
                err, _, node, host, port = find_coordinator_v1(conn, group)
            finally:
                conn.close()
            return (node, host, port) if err == NONE else None
        return None
    return wait_for("the coordinator of " + group, ask, timeout)


def coordinator_conn(c, group):
    node, host, port = coordinator_of(c, group)
    return node, kafka_raw.Conn(host, port, timeout=30)


def commit_until_ok(c, group, topics, **kw):
    """Commit through the group's coordinator, retrying while it is loading / moving."""
    def go():
        try:
            node, conn = coordinator_conn(c, group)
        except OSError:
            return None  # a coordinator that just died: metadata catches up
        try:
            res = offset_commit_v2(conn, group, topics, **kw)
        finally:
            conn.close()
        return res if all(e == NONE for e in res.values()) else None
    return wait_for("a commit for " + group, go, 30.0, 0.2)


def fetch_until_ok(c, group, topics=None):
    def go():
        try:
            _, conn = coordinator_conn(c, group)
        except OSError:
            return None
        try:
            err, res = offset_fetch_v2(conn, group, topics)
        finally:
            conn.close()
        return [res] if err == NONE else None  # {} is an answer too
    return wait_for("offsets of " + group, go, 30.0, 0.2)[0]


# ---- FindCoordinator -----------------------------------------------------------------


def test_find_coordinator_follows_kafkas_mapping(request):
    need_clients()
    failed_before = request.session.testsfailed
    c = weir_cluster.Cluster(brokers=3)  # the default offsets.topic.num.partitions (50)
    c.start()
    try:
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            # the first request creates the topic; COORDINATOR_NOT_AVAILABLE meanwhile
            assert find_coordinator_v0(conn, "first")[0] in (NONE, COORDINATOR_NOT_AVAILABLE)
            c.wait_topic("__consumer_offsets", 50, timeout=30)
            meta = conn.metadata(["__consumer_offsets"])["topics"]["__consumer_offsets"]
            leaders = {p["partition"]: p["leader"] for p in meta["partitions"]}
            groups = ["g%d" % i for i in range(40)] + ["orders-consumers", "Ω-group", "𝄞clef",
                                                       "polygenelubricants"]
            for g in groups:
                want = leaders[kafka_partition_for(g, 50)]
                err, msg, node, host, port = wait_for(
                    "FindCoordinator " + g, lambda: (lambda a: a if a[0] == NONE else None)(
                        find_coordinator_v1(conn, g)))
                assert node == want, (g, node, want)
                assert (host, port) == c.addr(node)
            # "polygenelubricants".hashCode() is Integer.MIN_VALUE: Utils.abs gives 0
            assert java_hash("polygenelubricants") == 0x80000000
            assert kafka_partition_for("polygenelubricants", 50) == 0
            # v4 batches keys; TRANSACTION keys are refused with a message
            got = find_coordinator_v4(conn, ["g1", "g2", "g3"])
            assert [x["key"] for x in got] == ["g1", "g2", "g3"]
            for x in got:
                assert x["error"] == NONE and x["node"] == leaders[kafka_partition_for(x["key"], 50)]
            txn = find_coordinator_v4(conn, ["tx"], key_type=1)
            assert txn[0]["error"] == COORDINATOR_NOT_AVAILABLE
            assert "transactions" in txn[0]["msg"]
            err, msg, _, _, _ = find_coordinator_v1(conn, "tx", key_type=1)
            assert err == COORDINATOR_NOT_AVAILABLE and "transactions" in msg
        finally:
            conn.close()
        # created as the issue asks: compacted, RF 3
        from confluent_kafka.admin import AdminClient, ConfigResource
        adm = AdminClient({"bootstrap.servers": c.bootstrap()})
        res = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets")
        cfg = list(adm.describe_configs([res]).values())[0].result(15)
        assert cfg["cleanup.policy"].value == "compact"
        md = adm.list_topics(timeout=10).topics["__consumer_offsets"]
        assert all(len(p.replicas) == 3 for p in md.partitions.values())
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "\n".join(problems)


def test_offsets_topic_replication_capped_by_live_brokers(request):
    need_clients()
    failed_before = request.session.testsfailed
    c = weir_cluster.Cluster(brokers=1, broker_overrides={"offsets.topic.num.partitions": "3"})
    c.start()
    try:
        coordinator_of(c, "solo")
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            meta = conn.metadata(["__consumer_offsets"])["topics"]["__consumer_offsets"]
            assert all(len(p["replicas"]) == 1 for p in meta["partitions"])
        finally:
            conn.close()
        with open(c.brokers[1].log_path) as f:
            assert "offsets.topic.replication.factor 3 is more than the 1 live brokers" in f.read()
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "\n".join(problems)


# ---- commit and fetch ----------------------------------------------------------------


def test_simple_commits_kafka_python_and_confluent(cluster):
    c = cluster
    c.create_topic("t", 3, 3)
    # kafka-python, assign() mode (generation -1, no member id)
    kc = kafka.KafkaConsumer(bootstrap_servers=c.bootstrap(), group_id="kp",
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition("t", p) for p in range(3)]
        kc.assign(tps)
        kc.commit({tps[0]: OffsetAndMetadata(42, "first"), tps[2]: OffsetAndMetadata(7, "")})
        assert kc.committed(tps[0]) == 42
        assert kc.committed(tps[1]) is None
        assert kc.committed(tps[2]) == 7
        kc.commit({tps[0]: OffsetAndMetadata(43, "again")})
        assert kc.committed(tps[0]) == 43
    finally:
        kc.close()
    # confluent-kafka (librdkafka: OffsetCommit / OffsetFetch at its newest versions)
    cc = confluent_kafka.Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "ck",
                                   "enable.auto.commit": False})
    try:
        # (python3-confluent-kafka 1.7 has no metadata on TopicPartition)
        parts = [confluent_kafka.TopicPartition("t", p, 100 + p) for p in range(3)]
        cc.assign(parts)
        res = cc.commit(offsets=parts, asynchronous=False)
        assert all(p.error is None for p in res)
        got = cc.committed([confluent_kafka.TopicPartition("t", p) for p in range(3)], timeout=15)
        assert [p.offset for p in got] == [100, 101, 102]
    finally:
        cc.close()
    # a raw OffsetFetch with null topics lists every committed offset of the group
    res = fetch_until_ok(c, "kp")
    assert res == {("t", 0): (43, "again", NONE), ("t", 2): (7, "", NONE)}


def test_commit_errors_unknown_topic_and_large_metadata(cluster):
    c = cluster
    c.create_topic("known", 1, 3)
    node, conn = coordinator_conn(c, "errs")
    try:
        def commit():
            r = offset_commit_v2(conn, "errs", {
                "known": [(0, 5, "ok"), (9, 1, "")],
                "no-such-topic": [(0, 1, "")],
                "big": [],
            })
            return r if r[("known", 0)] not in (15, 14) else None
        res = wait_for("commit", commit)
        assert res[("known", 0)] == NONE
        assert res[("known", 9)] == UNKNOWN_TOPIC_OR_PARTITION
        assert res[("no-such-topic", 0)] == UNKNOWN_TOPIC_OR_PARTITION
        res = offset_commit_v2(conn, "errs", {"known": [(0, 6, "x" * 4097)]})
        assert res[("known", 0)] == OFFSET_METADATA_TOO_LARGE
        err, got = offset_fetch_v2(conn, "errs", {"known": [0, 1]})
        assert err == NONE
        assert got[("known", 0)] == (5, "ok", NONE)  # the refused commits changed nothing
        assert got[("known", 1)] == (-1, "", NONE)
    finally:
        conn.close()
    # a broker that does not coordinate the group says so
    other = next(b for b in c.brokers if b != node)
    conn = kafka_raw.Conn(*c.addr(other))
    try:
        assert offset_commit_v2(conn, "errs", {"known": [(0, 5, "")]})[("known", 0)] == \
            NOT_COORDINATOR
        assert offset_fetch_v2(conn, "errs", {"known": [0]})[0] == NOT_COORDINATOR
    finally:
        conn.close()


def test_offset_delete_and_expiry(request):
    need_clients()
    failed_before = request.session.testsfailed
    c = make_cluster(request, **{"offsets.retention.check.interval.ms": "300"})
    c.start()
    try:
        c.create_topic("d", 2, 3)
        commit_until_ok(c, "del", {"d": [(0, 10, ""), (1, 11, "")]})
        _, conn = coordinator_conn(c, "del")
        try:
            err, res = offset_delete_v0(conn, "del", {"d": [0], "gone": [0]})
            assert err == NONE
            assert res == {("d", 0): NONE, ("gone", 0): UNKNOWN_TOPIC_OR_PARTITION}
            assert offset_fetch_v2(conn, "del", {"d": [0, 1]})[1] == {
                ("d", 0): (-1, "", NONE), ("d", 1): (11, "", NONE)}
        finally:
            conn.close()
        # a group that does not exist, asked of its own coordinator ("del"'s may
        # be another broker: it would answer NOT_COORDINATOR)
        _, conn = coordinator_conn(c, "nobody")
        try:
            assert offset_delete_v0(conn, "nobody", {"d": [0]})[0] == GROUP_ID_NOT_FOUND
        finally:
            conn.close()
        # OffsetCommit v2's retention_time_ms becomes an expire timestamp (value v1);
        # the group has no members, so the check removes the offsets with tombstones
        commit_until_ok(c, "exp", {"d": [(0, 3, "")]}, retention_ms=1000)
        assert fetch_until_ok(c, "exp") == {("d", 0): (3, "", NONE)}
        wait_for("expiry", lambda: fetch_until_ok(c, "exp") == {}, timeout=20)
        # the tombstone is replicated: a restarted coordinator still has nothing
        node, _, _ = coordinator_of(c, "exp")
        c.restart_broker(node)
        assert fetch_until_ok(c, "exp") == {}
        assert fetch_until_ok(c, "del") == {("d", 1): (11, "", NONE)}
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "\n".join(problems)


def test_offsets_expire_from_when_the_group_became_empty(request):
    """KIP-211 expiry (test.offsets.retention.ms, a testing-only key, stands in
    for offsets.retention.minutes): while a consumer is in the group, the offsets
    of its subscribed topic stay however old; an offset of a topic it does not
    subscribe to expires from its commit; after the member leaves, the clock
    starts at the time the group became Empty, and that time survives a kill -9
    of the coordinator (the new one reads it from the group record)."""
    need_clients()
    failed_before = request.session.testsfailed
    retention = 8.0
    c = make_cluster(request, **{"offsets.retention.check.interval.ms": "200",
                                 "test.offsets.retention.ms": str(int(retention * 1000))})
    c.start()
    cons = None
    try:
        c.create_topic("subbed", 1, 3)
        c.create_topic("other", 1, 3)
        group = "kip211"
        # a simple commit of a topic the group's members will not subscribe to
        commit_until_ok(c, group, {"other": [(0, 4, "")]})
        cons = confluent_kafka.Consumer({"bootstrap.servers": c.bootstrap(), "group.id": group,
                                         "enable.auto.commit": False,
                                         "session.timeout.ms": 6000})
        cons.subscribe(["subbed"])
        deadline = time.monotonic() + 60
        while not cons.assignment():
            assert time.monotonic() < deadline, "no assignment"
            cons.poll(0.2)
        cons.commit(offsets=[confluent_kafka.TopicPartition("subbed", 0, 7)], asynchronous=False)
        committed = time.monotonic()
        # Stable: "other" (unsubscribed) expires from its commit, "subbed" stays
        while True:
            cons.poll(0.2)
            got = fetch_until_ok(c, group)
            if ("other", 0) not in got:
                break
            assert time.monotonic() < deadline, got
        assert got == {("subbed", 0): (7, "", NONE)}, got
        # the subscribed topic's offset outlives the retention while the member stays
        while time.monotonic() < committed + retention + 2:
            cons.poll(0.2)
        assert fetch_until_ok(c, group) == {("subbed", 0): (7, "", NONE)}
        cons.close()  # LeaveGroup: Empty now
        cons = None
        empty = time.monotonic()
        # from the Empty time, not from the (older than retention) commit
        node, _, _ = coordinator_of(c, group)
        c.kill9_broker(node)
        assert fetch_until_ok(c, group) == {("subbed", 0): (7, "", NONE)}
        assert coordinator_of(c, group)[0] != node
        assert time.monotonic() < empty + retention - 1, "the move took too long to tell"
        wait_for("expiry after the group became empty",
                 lambda: fetch_until_ok(c, group) == {}, timeout=retention + 20)
        assert time.monotonic() >= empty + retention - 1
    finally:
        if cons is not None:
            cons.close()
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "\n".join(problems)


# ---- failures ----------------------------------------------------------------------

CONSUMER = textwrap.dedent("""
    import sys, time
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata
    bootstrap, topic, group, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=6000, heartbeat_interval_ms=1000)
    seen = 0
    while seen < n:
        for tp, recs in c.poll(timeout_ms=500).items():
            for r in recs:
                seen += 1
                if seen == n:
                    # the position is past the whole poll: commit this record's
                    c.commit({tp: OffsetAndMetadata(r.offset + 1, "")})
                    print("committed", r.offset + 1, flush=True)
                    break
    while True:
        time.sleep(1)
""")


def produce(c, topic, n, partition=None):
    """@n records, every one acknowledged (acks=all) or the test fails here.

    kafka-python's default is retries=0 and send() only returns a future, so a
    retriable error used to drop records silently: right after CreateTopics the
    metadata can name a leader that has not taken up its leadership yet
    (NOT_LEADER_OR_FOLLOWER, as Kafka answers before its LeaderAndIsr arrives);
    under ASan that window is wide enough to lose a whole batch, and a test
    then waited for records that were never written."""
    p = kafka.KafkaProducer(bootstrap_servers=c.bootstrap(), acks="all", retries=20,
                            retry_backoff_ms=100, max_in_flight_requests_per_connection=1)
    try:
        futures = [p.send(topic, value=b"v%d" % i, partition=partition) for i in range(n)]
        p.flush(timeout=60)
        for f in futures:
            f.get(timeout=1)  # raises the record's error
    finally:
        p.close(timeout=10)


def test_sigkilled_consumer_new_member_resumes_from_commit(cluster):
    c = cluster
    c.create_topic("k", 1, 3)
    produce(c, "k", 100, partition=0)
    proc = subprocess.Popen([sys.executable, "-c", CONSUMER, c.bootstrap(), "k", "gk", "37"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = [None]
        t = threading.Thread(target=lambda: line.__setitem__(0, proc.stdout.readline()))
        t.start()
        t.join(timeout=60)
        assert line[0] and line[0].split() == [b"committed", b"37"], line[0]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    kc = kafka.KafkaConsumer("k", bootstrap_servers=c.bootstrap(), group_id="gk",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=6000)
    try:
        first = None
        deadline = time.monotonic() + 60
        while first is None and time.monotonic() < deadline:
            for _, recs in kc.poll(timeout_ms=500).items():
                first = recs[0].offset
        assert first == 37
    finally:
        kc.close()


def test_coordinator_sigkill_group_moves_and_keeps_commits(cluster):
    """Three members consume a 6-partition RF3 topic and commit; the broker
    coordinating their group is killed with SIGKILL; the group moves to the new
    leader of its offsets partition, the commits made before are there, and
    consumption continues to the end."""
    c = cluster
    c.create_topic("orders", 6, 3)
    total = 3000
    produce(c, "orders", total)
    group = "movers"
    stop = threading.Event()
    seen = {}
    lock = threading.Lock()
    errors = []

    def member(i):
        try:
            kc = kafka.KafkaConsumer("orders", bootstrap_servers=c.bootstrap(), group_id=group,
                                     auto_offset_reset="earliest", enable_auto_commit=False,
                                     session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                     max_poll_records=50)
            try:
                while not stop.is_set():
                    got = kc.poll(timeout_ms=300)
                    with lock:
                        for tp, recs in got.items():
                            for r in recs:
                                seen.setdefault((tp.partition, r.offset), 0)
                                seen[(tp.partition, r.offset)] += 1
                    if got:
                        try:
                            kc.commit()
                        except kafka.errors.KafkaError:
                            pass  # the rebalance / the move: the next commit covers it
                    time.sleep(0.05)
            finally:
                kc.close(autocommit=False)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for("some progress", lambda: len(seen) >= 600, timeout=60)
        node, _, _ = coordinator_of(c, group)
        before = fetch_until_ok(c, group)
        assert before, "nothing committed before the kill"
        c.kill9_broker(node)
        after = fetch_until_ok(c, group)  # from the new coordinator
        new_node, _, _ = coordinator_of(c, group)
        assert new_node != node
        for k, (off, _, _) in before.items():
            assert after[k][0] >= off, (k, off, after[k])
        produce(c, "orders", 600)
        try:
            wait_for("every record consumed", lambda: len(seen) >= total + 600, timeout=90)
        except AssertionError:
            with lock:
                per = {}
                for p, _ in seen:
                    per[p] = per.get(p, 0) + 1
            raise AssertionError("consumed %d of %d records; per partition %s"
                                 % (len(seen), total + 600, sorted(per.items())))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    # the final commits cover everything
    final = fetch_until_ok(c, group)
    assert sum(off for off, _, _ in final.values()) == total + 600


def test_offsets_survive_restart_of_every_broker(cluster):
    c = cluster
    c.create_topic("r", 2, 3)
    commit_until_ok(c, "rg", {"r": [(0, 5, "five"), (1, 6, "six")]})
    commit_until_ok(c, "rg2", {"r": [(0, 9, "")]})
    for b in sorted(c.brokers):
        c.term_broker(b)
    for b in sorted(c.brokers):
        c.start_broker(b)
    assert fetch_until_ok(c, "rg") == {("r", 0): (5, "five", NONE), ("r", 1): (6, "six", NONE)}
    assert fetch_until_ok(c, "rg2") == {("r", 0): (9, "", NONE)}


def test_offsets_topic_stays_bounded_under_a_commit_loop(request):
    """A commit loop rewrites the same keys: with cleanup.policy=compact the
    log cleaner keeps the partition's size bounded, and the latest commits
    survive cleaning and a reload."""
    need_clients()
    failed_before = request.session.testsfailed
    c = make_cluster(request, **{"offsets.topic.num.partitions": "1",
                                 "log.cleaner.backoff.ms": "200"})
    c.start()
    try:
        c.create_topic("loop", 4, 3)
        commit_until_ok(c, "looper", {"loop": [(p, 0, "") for p in range(4)]})
        from confluent_kafka.admin import AdminClient, ConfigResource
        adm = AdminClient({"bootstrap.servers": c.bootstrap()})
        res = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets",
                             set_config={"cleanup.policy": "compact", "segment.bytes": "65536",
                                         "min.cleanable.dirty.ratio": "0.01"})
        list(adm.alter_configs([res]).values())[0].result(15)
        node, conn = coordinator_conn(c, "looper")
        try:
            for i in range(4000):
                offset_commit_v2(conn, "looper", {"loop": [(p, i, "m" * 64) for p in range(4)]})
            err, _, end = kafka_raw.list_offsets(conn, "__consumer_offsets", 0, -1)
            assert err == NONE and end >= 16000  # 16,000 records of ~110 bytes written
        finally:
            conn.close()
        d = os.path.join(c.log_dir(node), "__consumer_offsets-0")

        def size():
            return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                       if f.endswith(".log"))
        # ~2 MB uncompacted (the cleaner may have run during the loop already)
        wait_for("__consumer_offsets-0 compacted", lambda: size() < 512 * 1024, timeout=60,
                 interval=0.5)
        want = {("loop", p): (3999, "m" * 64, NONE) for p in range(4)}
        assert fetch_until_ok(c, "looper") == want
        # a compacted log (offset gaps) loads like any other
        c.kill9_broker(node)
        assert fetch_until_ok(c, "looper") == want
        c.start_broker(node)
        assert fetch_until_ok(c, "looper") == want
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "\n".join(problems)


# ---- with groups (membership from h-groups) --------------------------------------

ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25


def test_group_member_commits_are_checked(cluster):
    """OffsetCommit goes through groups_validate_commit(): a member's commit at
    its generation is stored; a stale generation and a simple (assign-mode)
    commit while the group has members are refused and store nothing."""
    c = cluster
    c.create_topic("m", 1, 3)
    node, conn = coordinator_conn(c, "members")
    try:
        def join():
            body = _s("members") + struct.pack(">i", 10000) + _s("") + _s("consumer") + \
                struct.pack(">i", 1) + _s("range") + struct.pack(">i", 4) + b"meta"
            r = conn.response(conn.request(11, 0, body))
            err, gen = r.take(">h"), r.take(">i")
            r.string()
            r.string()
            member = r.string()
            return (err, gen, member) if err == NONE else None
        err, gen, member = wait_for("join", join)
        body = _s("members") + struct.pack(">i", gen) + _s(member) + struct.pack(">i", 1) + \
            _s(member) + struct.pack(">i", 0)
        r = conn.response(conn.request(14, 0, body))
        assert r.take(">h") == NONE
        assert offset_commit_v2(conn, "members", {"m": [(0, 5, "")]}, generation=gen,
                                member=member) == {("m", 0): NONE}
        assert offset_commit_v2(conn, "members", {"m": [(0, 6, "")]}, generation=gen + 1,
                                member=member) == {("m", 0): ILLEGAL_GENERATION}
        assert offset_commit_v2(conn, "members", {"m": [(0, 7, "")]}) == \
            {("m", 0): UNKNOWN_MEMBER_ID}
        assert offset_fetch_v2(conn, "members", {"m": [0]}) == (NONE, {("m", 0): (5, "", NONE)})
    finally:
        conn.close()


def test_confluent_group_commits_and_a_new_consumer_resumes(cluster):
    c = cluster
    c.create_topic("cg", 2, 3)
    produce(c, "cg", 200)
    conf = {"bootstrap.servers": c.bootstrap(), "group.id": "cgroup",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": 6000}
    cons = confluent_kafka.Consumer(conf)
    got = 0
    try:
        cons.subscribe(["cg"])
        deadline = time.monotonic() + 60
        while got < 120 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None or m.error():
                continue
            got += 1
            if got == 120:
                cons.commit(message=m, asynchronous=False)
        assert got == 120
        committed = {tp.partition: tp.offset for tp in cons.committed(
            [confluent_kafka.TopicPartition("cg", p) for p in range(2)], timeout=15)}
    finally:
        cons.close()  # LeaveGroup: the next member does not wait for a session timeout
    # only the partition of the committed message has a commit; the other one
    # restarts from the beginning
    cons = confluent_kafka.Consumer(conf)
    try:
        cons.subscribe(["cg"])
        firsts = {}
        deadline = time.monotonic() + 60
        while len(firsts) < 2 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None or m.error():
                continue
            firsts.setdefault(m.partition(), m.offset())
        for p in range(2):
            want = committed[p] if committed[p] >= 0 else 0
            assert firsts.get(p, want) == want, (p, firsts, committed)
        assert firsts
    finally:
        cons.close()


def test_loading_in_one_batch_slices_after_coordinator_kill(request):
    """offsets.load.buffer.size=1 makes every loading step read one batch: a new
    coordinator loads hundreds of commit batches, turn by turn, and has the last."""
    need_clients()
    failed_before = request.session.testsfailed
    c = make_cluster(request, **{"offsets.load.buffer.size": "1"})
    c.start()
    try:
        c.create_topic("l", 3, 3)
        commit_until_ok(c, "loader", {"l": [(0, 0, "")]})
        node, conn = coordinator_conn(c, "loader")
        try:
            for i in range(400):
                res = offset_commit_v2(conn, "loader", {"l": [(i % 3, i, "i%d" % i)]})
                assert res == {("l", i % 3): NONE}
        finally:
            conn.close()
        c.kill9_broker(node)
        want = {("l", i % 3): (i, "i%d" % i, NONE) for i in (397, 398, 399)}
        assert fetch_until_ok(c, "loader") == want
        c.start_broker(node)
        assert fetch_until_ok(c, "loader") == want
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "\n".join(problems)
