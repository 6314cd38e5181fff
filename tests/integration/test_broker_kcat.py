"""Integration tests of weir-broker with kcat (librdkafka) and raw sockets.

A coordinator and three brokers run as real processes on free ports
(tests/support/cluster.py); every test stops every process it started, also on
failure, and prints the tails of their logs when it fails.
"""

import json
import os
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

KCAT_TIMEOUT = 60


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(request, brokers=3)


def kcat(*args, stdin=None):
    p = subprocess.run(["kcat"] + list(args), input=stdin, capture_output=True,
                       timeout=KCAT_TIMEOUT)
    assert p.returncode == 0, "kcat %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                            p.stderr.decode(errors="replace"))
    return p.stdout


def create_topic(c, name, partitions):
    """Create through broker 1, then wait until every broker's metadata shows the
    topic with a leader for each partition (the other brokers' watches may lag
    the one that answered by a moment)."""
    conn = kafka_raw.Conn(*c.addr(min(c.brokers)))
    try:
        assert conn.create_topic(name, partitions) == 0
    finally:
        conn.close()
    c.wait_topic(name, partitions)


def test_kcat_metadata_lists_every_broker_and_the_topic(cluster):
    create_topic(cluster, "orders", 3)
    md = json.loads(kcat("-L", "-J", "-b", cluster.bootstrap(), "-t", "orders"))
    assert sorted(b["id"] for b in md["brokers"]) == [1, 2, 3]
    for b in md["brokers"]:
        assert b["name"] == "127.0.0.1:%d" % cluster.ports[b["id"]]
    topics = {t["topic"]: t for t in md["topics"]}
    parts = topics["orders"]["partitions"]
    assert sorted(p["partition"] for p in parts) == [0, 1, 2]
    # Three partitions over three brokers: every broker leads one.
    assert sorted(p["leader"] for p in parts) == [1, 2, 3]
    assert md["controllerid"] in (1, 2, 3)


def test_kcat_round_trip_of_keyed_messages_with_headers(cluster):
    create_topic(cluster, "events", 3)
    n = 10000
    lines = ["key-%d:value-%d-%s" % (i % 37, i, "x" * (i % 50)) for i in range(n)]
    kcat("-P", "-b", cluster.bootstrap(), "-t", "events", "-K", ":", "-H", "trace=abc",
         "-H", "origin=pytest", stdin=("\n".join(lines) + "\n").encode())
    out = kcat("-C", "-b", cluster.bootstrap(), "-t", "events", "-o", "beginning", "-e", "-q",
               "-f", "%p|%o|%k|%s|%h\n")
    got = [line.split("|") for line in out.decode().splitlines() if line]
    assert len(got) == n
    by_part = {}
    key_part = {}
    for part, off, key, value, headers in got:
        assert headers == "trace=abc,origin=pytest"
        by_part.setdefault(int(part), []).append((int(off), key, value))
        # The same key always lands on the same partition.
        assert key_part.setdefault(key, part) == part
    assert sorted(by_part) == [0, 1, 2]
    produced = [tuple(line.split(":", 1)) for line in lines]
    for part, msgs in by_part.items():
        assert [m[0] for m in msgs] == list(range(len(msgs))), "offsets of partition %d" % part
        # In produce order within each partition.
        expected = [kv for kv in produced if key_part[kv[0]] == str(part)]
        assert [(m[1], m[2]) for m in msgs] == expected


def test_bad_size_prefixes_close_the_connection_while_others_keep_working(cluster):
    host, port = cluster.addr(2)
    good = kafka_raw.Conn(host, port)
    try:
        for prefix in (-1, -2147483648, 0x7FFFFFFF):
            bad = kafka_raw.Conn(host, port)
            try:
                bad.send_raw(struct.pack(">i", prefix) + b"\x00" * 16)
                assert bad.is_closed(), "size prefix %d did not close the connection" % prefix
            finally:
                bad.close()
            err, keys = good.api_versions(0)
            assert err == 0 and keys[18] == (0, 3)
    finally:
        good.close()


def test_unknown_api_versions_version_gets_unsupported_version_and_the_range(cluster):
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        err, keys = conn.api_versions(version=99)
        assert err == 35
        assert keys == {18: (0, 3)}
        err, keys = conn.api_versions(version=0)
        assert err == 0
        assert keys[0] == (0, 8) and keys[1] == (4, 12) and keys[3] == (0, 9)
    finally:
        conn.close()


def test_produce_v2_is_refused_by_closing_the_connection(cluster):
    create_topic(cluster, "old", 1)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        conn.produce("old", 0, kafka_raw.record_batch([b"v"]), version=2, acks=0)
        assert conn.is_closed()
    finally:
        conn.close()


def test_only_the_leader_accepts_produce_others_answer_not_leader(cluster):
    create_topic(cluster, "routed", 9)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        md = conn.metadata(["routed"])
    finally:
        conn.close()
    parts = md["topics"]["routed"]["partitions"]
    assert len(parts) == 9
    conns = {b: kafka_raw.Conn(*cluster.addr(b)) for b in (1, 2, 3)}
    try:
        for p in parts:
            for b, c in conns.items():
                err, base = c.produce("routed", p["partition"],
                                      kafka_raw.record_batch([b"a", b"b"]))
                # Metadata names a new topic's leaders as soon as the broker asked
                # has the record; the leader itself may take the partition up a
                # loop turn or two later (sliced take-up) and answers a retriable
                # NOT_LEADER_OR_FOLLOWER / LEADER_NOT_AVAILABLE meanwhile, as
                # Kafka's brokers do before they process the leadership change.
                deadline = time.monotonic() + 10
                while b == p["leader"] and err in (5, 6) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    err, base = c.produce("routed", p["partition"],
                                          kafka_raw.record_batch([b"a", b"b"]))
                if b == p["leader"]:
                    assert err == 0, "leader %d of partition %d: error %d" % (
                        b, p["partition"], err)
                    assert base == 0
                else:
                    assert err == 6, "broker %d for partition %d: error %d" % (
                        b, p["partition"], err)
        # A corrupt batch (bad CRC) is refused; the connection keeps working.
        leader = parts[0]["leader"]
        batch = bytearray(kafka_raw.record_batch([b"zzz"]))
        batch[-1] ^= 0xFF
        err, _ = conns[leader].produce("routed", 0, bytes(batch))
        assert err == 2
        err, base = conns[leader].produce("routed", 0, kafka_raw.record_batch([b"c"]))
        assert err == 0 and base == 2
        err, _ = conns[leader].produce("nosuch-topic-x", 0, kafka_raw.record_batch([b"c"]))
        assert err in (3, 5)
    finally:
        for c in conns.values():
            c.close()


def test_pipelined_responses_come_in_request_order_and_acks0_gets_none(cluster):
    create_topic(cluster, "pipe", 1)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        md = conn.metadata(["pipe"])
        leader = md["topics"]["pipe"]["partitions"][0]["leader"]
    finally:
        conn.close()
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        expected = []
        # A parked fetch (nothing to read yet) first: later, faster answers must
        # wait behind it.
        expected.append(("fetch", conn.request(1, 4, kafka_raw.fetch_body("pipe", 0, 0, 300))))
        for i in range(20):
            expected.append(("versions", conn.request(18, 0, b"")))
            conn.produce("pipe", 0, kafka_raw.record_batch([b"silent-%d" % i]), acks=0)
        expected.append(("versions", conn.request(18, 0, b"")))
        for kind, corr in expected:
            r = conn.response(corr)  # asserts the correlation id
            if kind == "fetch":
                parts = kafka_raw.parse_fetch_v4(r)
                assert parts[("pipe", 0)][0] == 0
        # acks=0 produced data is there although nothing answered it.
        corr = conn.request(1, 4, kafka_raw.fetch_body("pipe", 0, 0, 0))
        parts = kafka_raw.parse_fetch_v4(conn.response(corr))
        err, hw, data = parts[("pipe", 0)]
        assert err == 0 and hw == 20
        assert [v for _, v in kafka_raw.batch_values(data)] == [b"silent-%d" % i
                                                              for i in range(20)]
    finally:
        conn.close()


def test_long_poll_fetch_wakes_on_produce(cluster):
    import time

    create_topic(cluster, "poll", 1)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        leader = conn.metadata(["poll"])["topics"]["poll"]["partitions"][0]["leader"]
    finally:
        conn.close()
    consumer = kafka_raw.Conn(*cluster.addr(leader))
    producer = kafka_raw.Conn(*cluster.addr(leader))
    try:
        t0 = time.monotonic()
        corr = consumer.request(1, 4, kafka_raw.fetch_body("poll", 0, 0, max_wait_ms=8000))
        time.sleep(0.3)
        assert producer.produce("poll", 0, kafka_raw.record_batch([b"wake"])) == (0, 0)
        parts = kafka_raw.parse_fetch_v4(consumer.response(corr))
        elapsed = time.monotonic() - t0
        assert elapsed < 5, "fetch waited %.1f s instead of waking on the append" % elapsed
        err, hw, data = parts[("poll", 0)]
        assert err == 0 and hw == 1
        assert kafka_raw.batch_values(data) == [(0, b"wake")]
        # Out of range offsets are an error, not a wait.
        corr = consumer.request(1, 4, kafka_raw.fetch_body("poll", 0, 5, max_wait_ms=8000))
        parts = kafka_raw.parse_fetch_v4(consumer.response(corr))
        assert parts[("poll", 0)][0] == 1
    finally:
        consumer.close()
        producer.close()


def test_acknowledged_messages_survive_kill9_and_restart(cluster):
    create_topic(cluster, "durable", 3)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        parts = conn.metadata(["durable"])["topics"]["durable"]["partitions"]
    finally:
        conn.close()
    leaders = {p["partition"]: p["leader"] for p in parts}
    victim = leaders[0]
    acked = []
    conns = {b: kafka_raw.Conn(*cluster.addr(b)) for b in set(leaders.values())}
    try:
        for i in range(300):
            part = i % 3
            value = b"m-%d" % i
            if i == 150:
                cluster.kill9_broker(victim)
                conns[victim].close()
            if i >= 150 and leaders[part] == victim:
                continue
            err, base = conns[leaders[part]].produce("durable", part,
                                                     kafka_raw.record_batch([value]))
            assert err == 0
            acked.append((part, value))
    finally:
        for c in conns.values():
            c.close()
    cluster.restart_broker(victim)
    out = kcat("-C", "-b", cluster.bootstrap(), "-t", "durable", "-o", "beginning", "-e", "-q",
               "-f", "%p|%s\n")
    got = [tuple(line.split("|")) for line in out.decode().splitlines() if line]
    want = [(str(p), v.decode()) for p, v in acked]
    for part in ("0", "1", "2"):
        assert [g for g in got if g[0] == part] == [w for w in want if w[0] == part]


def test_idle_connections_are_closed():
    c = weir_cluster.Cluster(brokers=1, broker_overrides={"connections.max.idle.ms": "400"})
    c.start()
    try:
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            assert conn.api_versions(0)[0] == 0
            assert conn.is_closed(wait=5.0)
        finally:
            conn.close()
    finally:
        problems = c.finish(failed=False)  # logs kept if a process exited badly
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def test_admin_requests_are_forwarded_and_seen_in_metadata_at_once(cluster):
    import time

    conn = kafka_raw.Conn(*cluster.addr(3))
    try:
        # validate_only checks but creates nothing.
        assert conn.create_topic("admin-t", 3, validate_only=True) == 0
        assert "admin-t" not in conn.metadata()["topics"]
        assert conn.create_topic("admin-t", 3, validate_only=False) == 0
        assert conn.create_topic("admin-t", 3) == 36  # TOPIC_ALREADY_EXISTS
        # -1: the broker defaults (num.partitions=1).
        assert conn.create_topic("admin-default", -1, replication=-1) == 0
        md = conn.metadata(["admin-t", "admin-default"])
        assert len(md["topics"]["admin-t"]["partitions"]) == 3
        assert len(md["topics"]["admin-default"]["partitions"]) == 1
        assert conn.create_partitions("admin-t", 5) == 0
        assert len(conn.metadata(["admin-t"])["topics"]["admin-t"]["partitions"]) == 5
        assert conn.create_partitions("admin-t", 2) == 37  # INVALID_PARTITIONS
        cluster.wait_topic("admin-t", 5)
        # Data, then deletion: every broker drops its logs of the topic.
        for p in conn.metadata(["admin-t"])["topics"]["admin-t"]["partitions"]:
            leader = kafka_raw.Conn(*cluster.addr(p["leader"]))
            try:
                assert leader.produce("admin-t", p["partition"],
                                      kafka_raw.record_batch([b"x"]))[0] == 0
            finally:
                leader.close()
        dirs = [os.path.join(cluster.root, "broker-%d" % b) for b in (1, 2, 3)]
        assert any(d.startswith("admin-t-") for b in dirs for d in os.listdir(b))
        assert conn.delete_topics(["admin-t", "nosuch"]) == {"admin-t": 0, "nosuch": 3}
        assert "admin-t" not in conn.metadata()["topics"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = [d for b in dirs for d in os.listdir(b) if d.startswith("admin-t")]
            if not left:
                break
            time.sleep(0.1)
        assert not left, "logs of the deleted topic remain: %r" % left
    finally:
        conn.close()


def test_list_offsets_earliest_latest_and_by_timestamp(cluster):
    create_topic(cluster, "times", 1)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        leader = conn.metadata(["times"])["topics"]["times"]["partitions"][0]["leader"]
    finally:
        conn.close()
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        assert kafka_raw.list_offsets(conn, "times", 0, -1) == (0, -1, 0)
        for i, ts in enumerate((1000, 2000, 3000)):
            batch = kafka_raw.record_batch([b"a", b"b"], timestamp_ms=ts)
            assert conn.produce("times", 0, batch) == (0, 2 * i)
        assert kafka_raw.list_offsets(conn, "times", 0, -2)[2] == 0
        assert kafka_raw.list_offsets(conn, "times", 0, -1)[2] == 6
        assert kafka_raw.list_offsets(conn, "times", 0, 1500) == (0, 2000, 2)
        assert kafka_raw.list_offsets(conn, "times", 0, 9999) == (0, -1, -1)
        assert kafka_raw.list_offsets(conn, "times", 7, -1)[0] == 3
    finally:
        conn.close()


def test_metadata_auto_creates_only_when_enabled():
    for enabled, want in (("true", 0), ("false", 3)):
        c = weir_cluster.Cluster(brokers=1,
                                 broker_overrides={"auto.create.topics.enable": enabled,
                                                   "num.partitions": "2"})
        c.start()
        try:
            conn = kafka_raw.Conn(*c.addr(1))
            try:
                t = conn.metadata(["auto-made"])["topics"]["auto-made"]
                assert t["error"] == want
                if enabled == "true":
                    assert len(t["partitions"]) == 2
                    assert all(p["leader"] == 1 for p in t["partitions"])
            finally:
                conn.close()
        finally:
            problems = c.finish(failed=False)  # logs kept if a process exited badly
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


def test_produce_errors_too_large_and_bad_acks():
    c = weir_cluster.Cluster(brokers=1, broker_overrides={"message.max.bytes": "2000"})
    c.start()
    try:
        create_topic(c, "limits", 1)
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            big = kafka_raw.record_batch([b"x" * 3000])
            assert conn.produce("limits", 0, big)[0] == 10  # MESSAGE_TOO_LARGE
            small = kafka_raw.record_batch([b"y" * 100])
            assert conn.produce("limits", 0, small, acks=2)[0] == 21  # INVALID_REQUIRED_ACKS
            assert conn.produce("limits", 0, small, acks=-1) == (0, 0)
            assert conn.produce("limits", 0, b"\x00" * 30)[0] == 2  # CORRUPT_MESSAGE
            assert conn.produce("limits", 0, small, acks=1) == (0, 1)
        finally:
            conn.close()
    finally:
        problems = c.finish(failed=False)  # logs kept if a process exited badly
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def test_in_flight_cap_pauses_reading_but_keeps_order():
    c = weir_cluster.Cluster(brokers=1, broker_overrides={"queued.max.requests": "2"})
    c.start()
    try:
        create_topic(c, "capped", 1)
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            corrs = [conn.request(1, 4, kafka_raw.fetch_body("capped", 0, 0, 300))]
            corrs += [conn.request(18, 0, b"") for _ in range(30)]
            corrs.append(conn.request(1, 4, kafka_raw.fetch_body("capped", 0, 0, 100)))
            corrs += [conn.request(3, 1, struct.pack(">i", -1)) for _ in range(10)]
            for corr in corrs:
                conn.response(corr)  # asserts order by correlation id
        finally:
            conn.close()
    finally:
        problems = c.finish(failed=False)  # logs kept if a process exited badly
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def test_broker_keeps_serving_without_the_coordinator_and_rejoins(cluster):
    create_topic(cluster, "steady", 1)
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        leader = conn.metadata(["steady"])["topics"]["steady"]["partitions"][0]["leader"]
    finally:
        conn.close()
    cluster.kill9_coordinator()
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        for i in range(5):
            assert conn.produce("steady", 0, kafka_raw.record_batch([b"v%d" % i])) == (0, i)
        md = conn.metadata()
        assert sorted(md["brokers"]) == [1, 2, 3]
        assert md["topics"]["steady"]["partitions"][0]["leader"] == leader
        cluster.restart_coordinator()
        # After the coordinator is back, admin requests work through the broker.
        import time
        deadline = time.monotonic() + 15
        err = None
        while time.monotonic() < deadline:
            err = conn.create_topic("after-restart", 2)
            if err == 0:
                break
            time.sleep(0.2)
        assert err == 0
        assert len(conn.metadata(["after-restart"])["topics"]["after-restart"]["partitions"]) == 2
        assert conn.produce("steady", 0, kafka_raw.record_batch([b"last"])) == (0, 5)
    finally:
        conn.close()


def test_unread_responses_pause_reading_until_the_client_catches_up():
    c = weir_cluster.Cluster(brokers=1, broker_overrides={"log.level": "debug"})
    c.start()
    try:
        create_topic(c, "bulk", 1)
        conn = kafka_raw.Conn(*c.addr(1), timeout=30)
        try:
            value = b"z" * (256 * 1024)
            for i in range(8):
                assert conn.produce("bulk", 0, kafka_raw.record_batch([value])) == (0, i)
            # 48 fetches of ~0.75 MiB each, sent before reading anything: more
            # unsent output than the broker buffers per connection.
            corrs = [conn.request(1, 4, kafka_raw.fetch_body("bulk", 0, 0, 0, 1, 1 << 20))
                     for _ in range(48)]
            for corr in corrs:
                parts = kafka_raw.parse_fetch_v4(conn.response(corr))
                err, hw, data = parts[("bulk", 0)]
                assert err == 0 and hw == 8 and len(data) >= 3 * len(value)
            assert conn.api_versions(0)[0] == 0
            with open(c.brokers[1].log_path) as f:
                assert "pausing reads" in f.read()
        finally:
            conn.close()
    finally:
        problems = c.finish(failed=False)  # logs kept if a process exited badly
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compressed_batches_round_trip(cluster, codec):
    topic = "z-" + codec
    create_topic(cluster, topic, 3)
    lines = ["k%d:%s-%d-%s" % (i % 7, codec, i, "abc" * (i % 20)) for i in range(500)]
    kcat("-P", "-b", cluster.bootstrap(), "-t", topic, "-K", ":", "-z", codec,
         stdin=("\n".join(lines) + "\n").encode())
    out = kcat("-C", "-b", cluster.bootstrap(), "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%k:%s\n")
    got = out.decode().splitlines()
    assert sorted(got) == sorted(lines)
    # Stored as it came: the log holds compressed batches (attributes codec bits).
    codes = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    found = set()
    for b in (1, 2, 3):
        d = os.path.join(cluster.root, "broker-%d" % b)
        for entry in os.listdir(d):
            if not entry.startswith(topic + "-"):
                continue
            seg = os.path.join(d, entry, "00000000000000000000.log")
            with open(seg, "rb") as f:
                data = f.read()
            p = 0
            while p + 61 <= len(data):
                length = struct.unpack_from(">i", data, p + 8)[0]
                found.add(struct.unpack_from(">h", data, p + 21)[0] & 7)
                p += 12 + length
    # lz4 included: librdkafka 2.0.2 sends LZ4 only when FindCoordinator v0 is
    # advertised (kafka-clients.md P2), which it now is.
    assert found == {codes[codec]}


def test_malformed_frames_close_only_their_connection(cluster):
    host, port = cluster.addr(1)
    good = kafka_raw.Conn(host, port)
    try:
        frames = [
            struct.pack(">i", 3) + b"\x00\x12\x00",  # truncated header
            struct.pack(">i", 10) + struct.pack(">hhih", 999, 0, 7, -1),  # unknown API key
            struct.pack(">i", 10) + struct.pack(">hhih", 3, 42, 7, -1),  # unsupported version
            # Produce v3 whose body is garbage.
            struct.pack(">i", 18) + struct.pack(">hhih", 0, 3, 7, -1) + b"\xff" * 8,
        ]
        for frame in frames:
            bad = kafka_raw.Conn(host, port)
            try:
                bad.send_raw(frame)
                assert bad.is_closed(), "frame %r did not close the connection" % frame
            finally:
                bad.close()
            assert good.api_versions(0)[0] == 0
    finally:
        good.close()


def test_zookeeper_connect_is_an_alias_and_bad_config_exits_2():
    c = weir_cluster.Cluster(brokers=0)
    c.start()
    try:
        port = weir_cluster.free_port()
        argv = [weir_cluster.binary("broker/weir-broker"),
                "--override", "broker.id=7",
                "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % port,
                "--override", "log.dirs=%s" % os.path.join(c.root, "b7"),
                "--override", "zookeeper.connect=127.0.0.1:%d" % c.coord_port]
        p = weir_cluster.Proc("broker-7", argv, os.path.join(c.root, "broker-7.log"))
        c.brokers[7] = p
        c.ports[7] = port
        line = p.start()
        assert line.startswith("weir-broker ready: broker 7 kafka 127.0.0.1:%d (registered, epoch "
                               % port)
        with open(p.log_path) as f:
            assert "zookeeper.connect is deprecated" in f.read()
        bad = subprocess.run([weir_cluster.binary("broker/weir-broker"),
                              "--override", "no.such.key=1"], capture_output=True, timeout=10)
        assert bad.returncode == 2
        assert b"no.such.key" in bad.stderr
    finally:
        problems = c.finish(failed=False)  # logs kept if a process exited badly
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def test_flexible_metadata_v9_lists_brokers_and_partitions(cluster):
    create_topic(cluster, "flex", 3)
    conn = kafka_raw.Conn(*cluster.addr(2))
    try:
        md = kafka_raw.metadata_v9(conn, ["flex"])
        assert sorted(md["brokers"]) == [1, 2, 3]
        assert md["cluster_id"] and md["controller"] == 1
        parts = md["topics"]["flex"]["partitions"]
        assert sorted(p["leader"] for p in parts) == [1, 2, 3]
        assert all(p["replicas"] == [p["leader"]] and p["isr"] == [p["leader"]] for p in parts)
        everything = kafka_raw.metadata_v9(conn)
        assert "flex" in everything["topics"]
    finally:
        conn.close()
    leader = parts[0]["leader"]
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        for i in range(3):
            assert conn.produce("flex", 0, kafka_raw.record_batch([b"f%d" % i, b"g%d" % i])) \
                == (0, 2 * i)
        err, hw, lso, start, recs = kafka_raw.fetch_v12(conn, "flex", 0, 3)
        assert (err, hw, lso, start) == (0, 6, 6, 0)
        # Whole batches: the one holding offset 3 starts at 2.
        assert kafka_raw.batch_values(recs) == [(2, b"f1"), (3, b"g1"), (4, b"f2"), (5, b"g2")]
        assert kafka_raw.fetch_v12(conn, "flex", 0, 7)[0] == 1
    finally:
        conn.close()


def test_kafka_python_admin_produce_assign_consume_and_delete(cluster):
    import kafka
    from kafka.admin import NewPartitions, NewTopic

    adm = kafka.KafkaAdminClient(bootstrap_servers=cluster.bootstrap(), request_timeout_ms=10000)
    try:
        res = adm.create_topics([NewTopic("kp", 6, 1)])
        assert [e[1] for e in res.topic_errors] == [0]
        cluster.wait_topic("kp", 6)
        prod = kafka.KafkaProducer(bootstrap_servers=cluster.bootstrap(), acks=1)
        try:
            for i in range(100):
                prod.send("kp", key=b"k%d" % (i % 5), value=b"v%d" % i)
                prod.send("kp", value=b"u%d" % i)
            prod.flush(timeout=30)
        finally:
            prod.close(timeout=10)
        cons = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap(),
                                   consumer_timeout_ms=5000, auto_offset_reset="earliest",
                                   enable_auto_commit=False, group_id=None)
        try:
            cons.assign([kafka.TopicPartition("kp", i) for i in range(6)])
            cons.seek_to_beginning()
            got = sorted(m.value for m in cons)
        finally:
            cons.close()
        assert got == sorted([b"v%d" % i for i in range(100)] + [b"u%d" % i for i in range(100)])
        res = adm.create_partitions({"kp": NewPartitions(8)})
        assert [e[1] for e in res.topic_errors] == [0]
        cluster.wait_topic("kp", 8)
        res = adm.delete_topics(["kp"])
        assert [e[1] for e in res.topic_error_codes] == [0]
    finally:
        adm.close()


def test_confluent_kafka_acks_all_offsets_for_times_and_assign(cluster):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    for f in adm.create_topics([NewTopic("ck", 3, 1)], request_timeout=10).values():
        assert f.result(15) is None
    cluster.wait_topic("ck", 3)
    reports = []
    prod = ck.Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all"})
    for i in range(300):
        prod.produce("ck", key=b"k%d" % (i % 7), value=b"v%d" % i, timestamp=100000 + i,
                     on_delivery=lambda err, msg: reports.append((err, msg.partition(),
                                                                  msg.offset(), msg.value())))
    assert prod.flush(30) == 0
    assert len(reports) == 300 and not [r for r in reports if r[0] is not None]
    # offsets_for_times: the first offset per partition with timestamp >= 100150.
    want = {}
    for _, part, off, value in sorted(reports, key=lambda r: (r[1], r[2])):
        if int(value[1:]) >= 150 and part not in want:
            want[part] = off
    cons = ck.Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "unused",
                        "enable.auto.commit": False})
    try:
        tps = cons.offsets_for_times([ck.TopicPartition("ck", p, 100150) for p in range(3)],
                                     timeout=10)
        assert {t.partition: t.offset for t in tps} == want
        cons.assign([ck.TopicPartition("ck", p, 0) for p in range(3)])
        got = []
        import time
        deadline = time.monotonic() + 20
        while len(got) < 300 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.partition(), m.offset(), m.value()))
        # seek back within partition 0 and read the same records again from there
        p0 = sorted((o, v) for p, o, v in got if p == 0)
        mid = p0[len(p0) // 2][0]
        cons.seek(ck.TopicPartition("ck", 0, mid))
        again = []
        deadline = time.monotonic() + 20
        while len(again) < len(p0) - len(p0) // 2 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None and m.partition() == 0:
                again.append((m.offset(), m.value()))
    finally:
        cons.close()
    assert sorted(got) == sorted((r[1], r[2], r[3]) for r in reports)
    assert again == p0[len(p0) // 2:]
    for f in adm.delete_topics(["ck"], request_timeout=10).values():
        assert f.result(15) is None
