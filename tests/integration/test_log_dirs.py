"""DescribeLogDirs (API key 35) against a real cluster: kafka-python 2.0.2's
admin client (Debian python3-kafka has no describe_log_dirs() yet, so the
request is declared with kafka-python's own protocol types and sent through
KafkaAdminClient's connection), and `weir cluster log-dirs`. The sizes each
broker reports must equal the sum of the partition's segment (.log) files on
its disk.
"""

import glob
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402

pytestmark = pytest.mark.timeout(120)

try:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.protocol.api import Request, Response
    from kafka.protocol.types import Array, Boolean, Int16, Int32, Int64, Schema, String
except ImportError:  # pragma: no cover - reported by the fixture
    KafkaAdminClient = None

if KafkaAdminClient is not None:
    class DescribeLogDirsResponse_v0(Response):
        API_KEY = 35
        API_VERSION = 0
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            ("results", Array(
                ("error_code", Int16),
                ("log_dir", String("utf-8")),
                ("topics", Array(
                    ("name", String("utf-8")),
                    ("partitions", Array(
                        ("partition_index", Int32),
                        ("partition_size", Int64),
                        ("offset_lag", Int64),
                        ("is_future_key", Boolean))))))))

    class DescribeLogDirsResponse_v1(Response):
        API_KEY = 35
        API_VERSION = 1
        SCHEMA = DescribeLogDirsResponse_v0.SCHEMA

    class DescribeLogDirsRequest_v0(Request):
        API_KEY = 35
        API_VERSION = 0
        RESPONSE_TYPE = DescribeLogDirsResponse_v0
        SCHEMA = Schema(
            ("topics", Array(
                ("topic", String("utf-8")),
                ("partitions", Array(Int32)))))

    class DescribeLogDirsRequest_v1(Request):
        API_KEY = 35
        API_VERSION = 1
        RESPONSE_TYPE = DescribeLogDirsResponse_v1
        SCHEMA = DescribeLogDirsRequest_v0.SCHEMA


@pytest.fixture
def cluster(request):
    deps.require(KafkaAdminClient is not None, "kafka-python is not installed",
                 "apt-get install python3-kafka (deploy/install-deps.sh)")
    yield from weir_cluster.started(request, brokers=3)


def on_disk(c, bid, topic, partition):
    pattern = os.path.join(c.log_dir(bid), "%s-%d" % (topic, partition), "*.log")
    return sum(os.path.getsize(p) for p in glob.glob(pattern))


def describe(admin, bid, topics, version):
    cls = DescribeLogDirsRequest_v0 if version == 0 else DescribeLogDirsRequest_v1
    f = admin._send_request_to_node(bid, cls(topics=topics))
    admin._wait_for_futures([f])
    return f.value


def sizes(resp):
    """{(log_dir, topic, partition): (size, lag, future)}"""
    out = {}
    for err, log_dir, topics in resp.results:
        assert err == 0
        for name, parts in topics:
            for p, size, lag, future in parts:
                out[(log_dir, name, p)] = (size, lag, future)
    return out


def test_describe_log_dirs_sizes_match_segment_files(cluster):
    cluster.create_topic("ld-a", 3, 3)
    cluster.create_topic("ld-b", 1, 2)
    prod = KafkaProducer(bootstrap_servers=cluster.bootstrap(), acks="all", retries=5,
                         max_in_flight_requests_per_connection=1)
    futs = [prod.send("ld-a", value=b"x" * 100, partition=i % 3) for i in range(300)]
    futs += [prod.send("ld-b", value=b"y" * 1000, partition=0) for i in range(50)]
    prod.flush(30)
    for f in futs:
        f.get(timeout=1)
    prod.close()
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap(), api_version=(2, 4, 0))
    try:
        deadline = time.monotonic() + 30
        for bid in sorted(cluster.brokers):
            for version in (0, 1):
                while True:
                    got = sizes(describe(admin, bid, None, version))
                    want = {}
                    for (d, t, p) in got:
                        assert d == cluster.log_dir(bid)
                    for t, n in (("ld-a", 3), ("ld-b", 1)):
                        for p in range(n):
                            if os.path.isdir(os.path.join(cluster.log_dir(bid), "%s-%d" % (t, p))):
                                want[(cluster.log_dir(bid), t, p)] = (on_disk(cluster, bid, t, p), 0, False)
                    mine = {k: v for k, v in got.items() if k[1] in ("ld-a", "ld-b")}
                    # Followers catch up asynchronously: retry until equal.
                    if mine == want or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                assert mine == want, (bid, version)
                assert all(v[0] > 0 for v in mine.values())
        # Every partition of ld-a is on all three brokers.
        assert len([k for k in sizes(describe(admin, 1, None, 0)) if k[1] == "ld-a"]) == 3
        # The filter: only the named partitions that exist here.
        got = sizes(describe(admin, 1, [("ld-a", [1, 7]), ("nope", [0])], 1))
        assert [(t, p) for (_, t, p) in got] == [("ld-a", 1)]
        got = sizes(describe(admin, 1, [], 0))
        assert got == {}
    finally:
        admin.close()


def weir(*args, timeout=30):
    return subprocess.run([weir_cluster.binary("cli/weir")] + list(args), capture_output=True,
                          text=True, timeout=timeout)


def test_weir_cluster_log_dirs_table_and_json(cluster):
    cluster.create_topic("ld-cli", 2, 3)
    cluster.create_topic("ld-other", 1, 1)
    prod = KafkaProducer(bootstrap_servers=cluster.bootstrap(), acks="all", retries=5,
                         max_in_flight_requests_per_connection=1)
    futs = [prod.send("ld-cli", value=b"z" * 200, partition=i % 2) for i in range(100)]
    prod.flush(30)
    for f in futs:
        f.get(timeout=1)
    prod.close()
    b = ["--bootstrap-server", cluster.bootstrap()]
    deadline = time.monotonic() + 30
    while True:
        res = weir("cluster", "log-dirs", "--topics", "ld-cli", "--format", "json", *b)
        assert res.returncode == 0, res.stderr
        rows = json.loads(res.stdout)
        want = sorted((bid, cluster.log_dir(bid), "ld-cli", p, on_disk(cluster, bid, "ld-cli", p))
                      for bid in sorted(cluster.brokers) for p in range(2))
        got = sorted((r["broker"], r["dir"], r["topic"], r["partition"], r["size"]) for r in rows)
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == want
    for r in rows:
        assert r["offset_lag"] == 0 and r["is_future"] is False and r["error"] is None
        assert r["dir_total_bytes"] >= r["dir_usable_bytes"] > 0
    res = weir("cluster", "log-dirs", *b)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["BROKER", "DIR", "TOPIC", "PARTITION", "SIZE", "ERROR"]
    assert any(line.split()[2:4] == ["ld-other", "0"] for line in lines[1:])
    assert len([line for line in lines[1:] if line.split()[2] == "ld-cli"]) == 6
    res = weir("cluster", "log-dirs", "--topics", "no-such-topic", *b)
    assert res.returncode == 1 and "no-such-topic" in res.stderr
    res = weir("cluster", "log-dirs", "--broker", "1", *b)
    assert res.returncode == 2
