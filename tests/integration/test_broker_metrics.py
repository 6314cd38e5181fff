"""The broker's /metrics (broker/broker_metrics.c, broker/kafka/kstats.c,
docs/metrics.md) against a coordinator and three brokers: counters move by
exactly what the test sent, the exposition parses with Prometheus' own parser
(python3-prometheus-client), the under-replicated count follows a follower's
kill -9 and return, and group lag matches `weir group describe`. Every wait is
bounded; the cluster fixture stops every process it started.
"""

import glob
import json
import os
import struct
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - reported by deps.require below
    text_string_to_metric_families = None

try:
    import kafka
    from kafka.structs import OffsetAndMetadata, TopicPartition
except ImportError:  # pragma: no cover
    kafka = None

TIMEOUT = 60
LAG_MS = 2000  # replica.lag.time.max.ms: a dead follower leaves the ISR quickly


def need_deps():
    deps.require(text_string_to_metric_families is not None,
                 "python3-prometheus-client is not installed",
                 "apt-get install python3-prometheus-client (deploy/install-deps.sh)")
    deps.require(kafka is not None, "kafka-python is not installed",
                 "apt-get install python3-kafka (deploy/install-deps.sh)")


@pytest.fixture
def cluster(request):
    ports = {b: weir_cluster.free_port() for b in (1, 2, 3)}
    gen = weir_cluster.started(
        request, brokers=3,
        broker_overrides={"replica.lag.time.max.ms": str(LAG_MS)},
        per_broker_overrides={b: {"metrics.listener": "127.0.0.1:%d" % p}
                              for b, p in ports.items()})
    c = next(gen)
    c.metrics_ports = ports
    yield c
    for _ in gen:
        pass


def scrape(c, bid):
    """{(name, frozenset(labels)): value} of broker @bid, parsed by prometheus_client."""
    url = "http://127.0.0.1:%d/metrics" % c.metrics_ports[bid]
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, "duplicate series %s" % (key,)
            out[key] = s.value
    return out


def val(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))


def leader_of(c, topic, partition=0):
    conn = kafka_raw.Conn(*c.addr(1))
    try:
        t = conn.metadata([topic])["topics"][topic]
        return [p for p in t["partitions"] if p["partition"] == partition][0]["leader"]
    finally:
        conn.close()


def log_bytes(c, bid, topic, partition=0):
    return sum(os.path.getsize(f) for f in
               glob.glob(os.path.join(c.log_dir(bid), "%s-%d" % (topic, partition), "*.log")))


def test_produce_and_consume_move_topic_counters_by_exact_amounts(cluster):
    need_deps()
    cluster.create_topic("bytes", 1, 3)
    leader = leader_of(cluster, "bytes")
    before = scrape(cluster, leader)
    n, size = 200, 100
    prod = kafka.KafkaProducer(bootstrap_servers=cluster.bootstrap(), acks="all",
                               linger_ms=5, retries=5, max_in_flight_requests_per_connection=1)
    futs = [prod.send("bytes", value=bytes([65 + i % 26]) * size, partition=0) for i in range(n)]
    prod.flush(TIMEOUT)
    for f in futs:
        f.get(timeout=1)  # a dropped record would make every count below wrong
    prod.close(TIMEOUT)
    stored = log_bytes(cluster, leader, "bytes")
    assert stored > n * size  # batches add headers
    mid = scrape(cluster, leader)
    assert val(mid, "weir_topic_records_in_total", topic="bytes") - \
        val(before, "weir_topic_records_in_total", topic="bytes") == n
    assert val(mid, "weir_topic_bytes_in_total", topic="bytes") - \
        val(before, "weir_topic_bytes_in_total", topic="bytes") == stored
    assert val(mid, "weir_topic_log_size_bytes", topic="bytes") == stored
    # Followers got every byte (the ISR of 3 acknowledged acks=all).
    assert val(mid, "weir_topic_replication_bytes_out_total", topic="bytes") == 2 * stored

    cons = kafka.KafkaConsumer("bytes", bootstrap_servers=cluster.bootstrap(),
                               auto_offset_reset="earliest", enable_auto_commit=False,
                               consumer_timeout_ms=5000)
    got = 0
    deadline = time.time() + TIMEOUT
    while got < n and time.time() < deadline:
        got += sum(len(v) for v in cons.poll(timeout_ms=500).values())
    cons.close()
    assert got == n
    after = scrape(cluster, leader)
    assert val(after, "weir_topic_records_out_total", topic="bytes") - \
        val(mid, "weir_topic_records_out_total", topic="bytes") == n
    assert val(after, "weir_topic_bytes_out_total", topic="bytes") - \
        val(mid, "weir_topic_bytes_out_total", topic="bytes") == stored


def test_raw_produce_and_fetch_count_exact_batch_bytes(cluster):
    need_deps()
    cluster.create_topic("raw", 1, 1)
    leader = leader_of(cluster, "raw")
    batch = kafka_raw.record_batch([b"v%03d" % i for i in range(7)])
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        before = scrape(cluster, leader)
        for _ in range(3):
            err, _ = conn.produce("raw", 0, batch, acks=1)
            assert err == 0
        r = conn.response(conn.request(1, 4, kafka_raw.fetch_body("raw", 0, 0, max_wait_ms=0)))
        data = kafka_raw.parse_fetch_v4(r)
    finally:
        conn.close()
    after = scrape(cluster, leader)
    d = lambda name: val(after, name, topic="raw") - val(before, name, topic="raw")  # noqa: E731
    assert d("weir_topic_records_in_total") == 21
    assert d("weir_topic_bytes_in_total") == 3 * len(batch)
    assert d("weir_topic_records_out_total") == 21
    assert d("weir_topic_bytes_out_total") == 3 * len(batch)
    assert data  # the fetch returned the batches


def test_request_counters_move_by_the_requests_sent(cluster):
    need_deps()
    conn = kafka_raw.Conn(*cluster.addr(2))
    try:
        before = scrape(cluster, 2)
        for _ in range(5):
            conn.metadata()  # Metadata v1
        for _ in range(3):
            conn.api_versions(version=2)
        after = scrape(cluster, 2)
    finally:
        conn.close()
    d = lambda name, **l: val(after, name, **l) - val(before, name, **l)  # noqa: E731
    assert d("weir_kafka_requests_total", api="Metadata", version="1") == 5
    assert d("weir_kafka_requests_total", api="ApiVersions", version="2") == 3
    assert d("weir_kafka_request_duration_seconds_count", api="Metadata") == 5
    assert val(after, "weir_kafka_request_duration_seconds_bucket", api="Metadata",
               le="+Inf") == val(after, "weir_kafka_request_duration_seconds_count",
                                 api="Metadata")
    assert val(after, "weir_kafka_connections") >= 1


def test_errors_are_counted_by_kafka_name(cluster):
    need_deps()
    conn = kafka_raw.Conn(*cluster.addr(3))
    try:
        before = scrape(cluster, 3)
        err, _ = conn.produce("no-such-topic", 0, kafka_raw.record_batch([b"x"]), acks=1)
        assert err == 3  # UNKNOWN_TOPIC_OR_PARTITION
        after = scrape(cluster, 3)
    finally:
        conn.close()
    assert val(after, "weir_kafka_request_errors_total", api="Produce",
               error="UNKNOWN_TOPIC_OR_PARTITION") - \
        val(before, "weir_kafka_request_errors_total", api="Produce",
            error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    assert val(after, "weir_kafka_requests_total", api="Produce", version="3") - \
        val(before, "weir_kafka_requests_total", api="Produce", version="3") == 1


def test_under_replicated_follows_a_killed_follower(cluster):
    need_deps()
    cluster.create_topic("urp", 1, 3, configs={"min.insync.replicas": "2"})
    leader = leader_of(cluster, "urp")
    follower = [b for b in (1, 2, 3) if b != leader][0]
    start = scrape(cluster, leader)
    assert val(start, "weir_under_replicated_partitions") == 0
    cluster.kill9_broker(follower)
    wait_for(lambda: val(scrape(cluster, leader), "weir_under_replicated_partitions") >= 1,
             30, "the leader to report an under-replicated partition")
    m = scrape(cluster, leader)
    assert val(m, "weir_isr_shrinks_total") > val(start, "weir_isr_shrinks_total")
    assert val(m, "weir_under_min_isr_partitions") == 0  # 2 of 3 left, min 2
    # What the dead follower misses is its lag.
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        err, _ = conn.produce("urp", 0, kafka_raw.record_batch([b"m%d" % i for i in range(5)]),
                              acks=1)
        assert err == 0
    finally:
        conn.close()
    m = scrape(cluster, leader)
    assert val(m, "weir_topic_follower_max_lag_records", topic="urp") >= 5
    assert val(m, "weir_follower_max_lag_records") >= 5
    cluster.start_broker(follower)
    wait_for(lambda: val(scrape(cluster, leader), "weir_under_replicated_partitions") == 0,
             30, "the partition to be fully replicated again")
    end = scrape(cluster, leader)
    assert val(end, "weir_isr_expands_total") > val(start, "weir_isr_expands_total")
    assert val(end, "weir_topic_follower_max_lag_records", topic="urp") == 0


def test_group_lag_matches_weir_group_describe(cluster):
    need_deps()
    # RF 3 on 3 brokers: the coordinating broker hosts both partitions (it only
    # knows the end of the partitions it hosts; docs/metrics.md).
    cluster.create_topic("lagt", 2, 3)
    prod = kafka.KafkaProducer(bootstrap_servers=cluster.bootstrap(), acks="all", retries=5,
                               max_in_flight_requests_per_connection=1)
    futs = [prod.send("lagt", value=b"a%d" % i, partition=0) for i in range(10)]
    futs += [prod.send("lagt", value=b"b%d" % i, partition=1) for i in range(4)]
    prod.flush(TIMEOUT)
    for f in futs:
        f.get(timeout=1)
    prod.close(TIMEOUT)
    cons = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap(), group_id="lagg",
                               enable_auto_commit=False)
    try:
        cons.commit({TopicPartition("lagt", 0): OffsetAndMetadata(7, ""),
                     TopicPartition("lagt", 1): OffsetAndMetadata(1, "")})
    finally:
        cons.close()
    p = subprocess.run([weir_cluster.binary("cli/weir"), "-b", cluster.bootstrap(), "group",
                        "describe", "lagg", "--format", "json"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    cli = {r["partition"]: r["lag"] for r in json.loads(p.stdout)[0]["partitions"]}
    assert cli == {0: 3, 1: 3}

    def from_metrics():
        lags = {}
        for b in (1, 2, 3):
            m = scrape(cluster, b)
            for (name, labels), v in m.items():
                lab = dict(labels)
                if name == "weir_consumer_group_lag_records" and lab.get("group") == "lagg":
                    assert lab["topic"] == "lagt"
                    assert int(lab["partition"]) not in lags, "two brokers report lagg"
                    lags[int(lab["partition"])] = int(v)
        return lags
    # The coordinator's HW view may trail the commit by a fetch.
    wait_for(lambda: from_metrics() == cli, 10, "group lag in /metrics to match the CLI")


def test_partition_walk_spans_loop_turns_and_concurrent_scrapes(cluster):
    """1,200 partitions: the walk (BM_PARTS_PER_TURN = 250) resumes inside the
    topic on later loop turns; scrapes running at once each get the whole
    picture, with no series twice."""
    need_deps()
    cluster.create_topic("wide", 1200, 1)

    def led_everywhere():
        return sum(val(scrape(cluster, b), "weir_topic_leaders", topic="wide")
                   for b in (1, 2, 3)) == 1200
    # Brokers make new logs in batches on their worker pool.
    wait_for(led_everywhere, TIMEOUT, "every broker to lead its share of the logs")
    import threading
    results, errors = {}, []

    def one(b, k):
        try:
            results[(b, k)] = scrape(cluster, b)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(b, k)) for b in (1, 2, 3) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors, errors
    for k in range(3):
        hosted = sum(val(results[(b, k)], "weir_topic_replicas", topic="wide") for b in (1, 2, 3))
        led = sum(val(results[(b, k)], "weir_topic_leaders", topic="wide") for b in (1, 2, 3))
        assert (hosted, led) == (1200, 1200)
    m = scrape(cluster, 1)
    assert val(m, "weir_offline_partitions") == 0
    assert val(m, "weir_metrics_scrape_slices_total") > val(m, "weir_metrics_scrapes_total")

    # A group committed on all 1,200 partitions: its rows span turns too, and
    # the coordinating broker reports the partitions it hosts, each once.
    cons = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap(), group_id="wideg",
                               enable_auto_commit=False)
    try:
        cons.commit({TopicPartition("wide", p): OffsetAndMetadata(0, "") for p in range(1200)})
    finally:
        cons.close()
    rows, sums, hosted = {}, {}, {}
    for b in (1, 2, 3):
        m = scrape(cluster, b)
        hosted[b] = val(m, "weir_topic_replicas", topic="wide")
        for (name, labels), v in m.items():
            lab = dict(labels)
            if lab.get("group") != "wideg":
                continue
            if name == "weir_consumer_group_lag_records":
                rows.setdefault(b, set()).add(int(lab["partition"]))
                assert v == 0
            elif name == "weir_consumer_group_lag_sum_records":
                sums[b] = v
    assert len(rows) == 1 and len(sums) == 1, "one broker coordinates wideg"
    (coord, parts), = rows.items()
    assert len(parts) == hosted[coord] and sums[coord] == 0
