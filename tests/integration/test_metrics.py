"""/metrics and /health on metrics.listener (common/httpd.c, common/metrics.c).

Real coordinator and brokers on free ports (tests/support/cluster.py gives every
process a metrics port), scraped over HTTP and parsed with Debian's
python3-prometheus-client, the parser Prometheus' own Python tooling uses.
Bad clients on the HTTP listener — unknown paths and methods, huge headers,
200 slowloris connections — are answered or closed within bounds while the
broker keeps serving Kafka produce and fetch.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
from deps import require  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - depends on the machine
    text_string_to_metric_families = None

SESSION_S = 6.0  # the harness's session.timeout.ms


def need_parser():
    require(text_string_to_metric_families is not None,
            "python3-prometheus-client is not installed",
            "apt-get install python3-prometheus-client (deploy/install-deps.sh)")


def get(url, method="GET", timeout=10):
    """(status, headers, body text) — also for 4xx/5xx answers."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def scrape(c, name):
    """{(metric name, frozenset(labels)): value} of one process, after checking the
    text parses and no family repeats its header."""
    status, headers, body = get(c.metrics_url(name))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    types = [l.split()[2] for l in body.splitlines() if l.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "a family's header repeats"
    samples = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, "duplicate series %r" % (key,)
            samples[key] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out after %.0f s waiting for %s" % (timeout,
                                                                                       what)
        time.sleep(0.1)


def started_cluster(request, **kwargs):
    c = weir_cluster.Cluster(**kwargs)
    failed_before = request.session.testsfailed
    c.start()

    def fin():
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)
    request.addfinalizer(fin)
    return c


@pytest.fixture
def cluster2(request):
    return started_cluster(request, brokers=2,
                           broker_overrides={"metrics.request.timeout.ms": "2000"})


def test_both_processes_serve_metrics_the_prometheus_parser_reads(cluster2):
    need_parser()
    c = cluster2
    for name, role in (("coordinator", "coordinator"), (1, "broker"), (2, "broker")):
        s = scrape(c, name)
        info = [k for k in s if k[0] == "weir_build_info"]
        assert len(info) == 1
        labels = dict(info[0][1])
        assert labels["role"] == role and labels["version"] and labels["revision"]
        assert value(s, "process_resident_memory_bytes") > 1e6
        assert value(s, "process_open_fds") > 3
        assert value(s, "weir_uptime_seconds") > 0
        assert value(s, "weir_event_loop_lag_seconds_count") is not None
        assert value(s, "weir_event_loop_lag_seconds_bucket", le="+Inf") == \
            value(s, "weir_event_loop_lag_seconds_count")
        # Counting its own earlier scrape: the second one sees the first.
        again = scrape(c, name)
        assert value(again, "weir_metrics_scrapes_total") >= 1
        assert value(again, "weir_http_requests_total") >= 2

    s = scrape(c, "coordinator")
    assert value(s, "weir_coordinator_brokers", state="registered") == 2
    assert value(s, "weir_coordinator_brokers", state="fenced") == 0
    assert value(s, "weir_coordinator_watch_subscribers") >= 2
    assert value(s, "weir_coordinator_metadata_offset") >= 2
    assert value(s, "weir_coordinator_metadata_fsync_seconds_count") >= 1
    assert value(s, "weir_coordinator_rpc_requests_total", method="RegisterBroker") >= 2
    wait_for("a heartbeat counted", lambda: value(scrape(c, "coordinator"),
                                                  "weir_coordinator_rpc_requests_total",
                                                  method="Heartbeat") >= 1, 5)

    # One CreateTopics call, counted once, and its records make the offset move.
    before = s
    c.create_topic("metrics-t", 3, 2)
    c.wait_topic("metrics-t", 3)
    after = wait_for("the topic in the coordinator's metrics",
                     lambda: (lambda a: a if value(a, "weir_coordinator_partitions") >= 3
                              else None)(scrape(c, "coordinator")), 10)
    assert value(after, "weir_coordinator_rpc_requests_total", method="CreateTopics") == \
        value(before, "weir_coordinator_rpc_requests_total", method="CreateTopics") + 1
    assert value(after, "weir_coordinator_topics") == value(before, "weir_coordinator_topics") + 1
    assert value(after, "weir_coordinator_metadata_offset") > \
        value(before, "weir_coordinator_metadata_offset")


def test_concurrent_scrapes_share_one_collection(cluster2):
    need_parser()
    c = cluster2
    c.create_topic("conc-t", 8, 2)
    before = scrape(c, 1)
    results = []

    def one():
        status, headers, body = get(c.metrics_url(1), timeout=20)
        results.append((status, body))
    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 30
    for status, body in results:
        assert status == 200
        fams = list(text_string_to_metric_families(body))
        assert any(f.name == "weir_build_info" for f in fams)
    after = scrape(c, 1)
    # Every request was answered from a scrape; requests that arrived while one
    # ran shared it, so there are at most as many scrapes as requests.
    done = value(after, "weir_metrics_scrapes_total") - value(before, "weir_metrics_scrapes_total")
    assert 1 <= done <= 31


def test_health_ok_and_http_errors_are_answered(cluster2):
    c = cluster2
    for name in ("coordinator", 1):
        assert get(c.metrics_url(name, "/health"))[0] == 200
        assert get(c.metrics_url(name, "/health"))[2] == "ok\n"
        status, _, body = get(c.metrics_url(name, "/health"), method="HEAD")
        assert status == 200 and body == ""
        assert get(c.metrics_url(name, "/nope"))[0] == 404
        assert get(c.metrics_url(name, "/metrics/extra"))[0] == 404
        status, headers, _ = get(c.metrics_url(name, "/metrics"), method="POST")
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        assert get(c.metrics_url(name, "/health"), method="DELETE")[0] == 405
        # A query string is not part of the path.
        assert get(c.metrics_url(name, "/health?verbose=1"))[0] == 200
    # Closed connections stop counting against metrics.max.connections (64) at
    # once: 150 requests in a row, each on its own connection, all answered.
    for _ in range(150):
        assert get(c.metrics_url(1, "/health"))[0] == 200


def raw_exchange(addr, data, timeout):
    """Send @data, read until the server closes or @timeout: (bytes read, closed)."""
    s = socket.create_connection(addr, timeout=timeout)
    deadline = time.monotonic() + timeout
    got = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            return got, True
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                return got, True
            if not chunk:
                return got, True
            got += chunk
        return got, False
    finally:
        s.close()


def test_huge_headers_are_refused_and_bounded(cluster2):
    c = cluster2
    addr = ("127.0.0.1", c.metrics_ports[1])
    # 64 KiB of headers against an 8 KiB cap: an error status or a closed
    # connection, promptly, never a 200.
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + \
        b"".join(b"X-Junk-%d: %s\r\n" % (i, b"a" * 1000) for i in range(64)) + b"\r\n"
    t0 = time.monotonic()
    got, closed = raw_exchange(addr, big, timeout=5)
    assert closed, "the connection stayed open after oversized headers"
    assert time.monotonic() - t0 < 4
    assert not got.startswith(b"HTTP/1.1 200"), got[:200]
    if got:
        assert got.split(b" ")[1][:1] == b"4", got[:200]
    # One header line longer than the cap, never terminated.
    got, closed = raw_exchange(addr, b"GET /health HTTP/1.1\r\nX: " + b"b" * 20000, timeout=5)
    assert closed and not got.startswith(b"HTTP/1.1 200")
    # A body on a GET beyond the body cap.
    got, closed = raw_exchange(
        addr, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
        b"z" * 100000, timeout=5)
    assert not got.startswith(b"HTTP/1.1 200")
    # Garbage instead of a request line.
    got, closed = raw_exchange(addr, b"\x16\x03\x01 not http at all\r\n\r\n", timeout=5)
    assert closed and not got.startswith(b"HTTP/1.1 200")
    # The listener still serves.
    assert get(c.metrics_url(1, "/health"))[0] == 200


def produce_fetch_loop(c, stop, results):
    """Produce and read back one record at a time until @stop; count round trips."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 0})
    cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "unused",
                     "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    cons.assign([TopicPartition("slow-t", 0, 0)])
    n = 0
    try:
        while not stop.is_set():
            errs = []
            p.produce("slow-t", value=b"v%d" % n, partition=0,
                      on_delivery=lambda e, m: errs.append(e))
            p.flush(10)
            assert errs == [None], errs
            deadline = time.monotonic() + 10
            while True:
                m = cons.poll(0.5)
                if m is not None and not m.error():
                    assert m.value() == b"v%d" % n
                    break
                assert time.monotonic() < deadline, "fetch did not return record %d" % n
            n += 1
            results["round_trips"] = n
    except Exception as e:  # reported by the test
        results["error"] = repr(e)
    finally:
        cons.close()


def test_slowloris_connections_are_closed_and_kafka_keeps_serving(cluster2):
    c = cluster2
    c.create_topic("slow-t", 1, 2)
    c.wait_topic("slow-t", 1)
    addr = ("127.0.0.1", c.metrics_ports[1])
    timeout_s = 2.0  # metrics.request.timeout.ms of the fixture

    stop = threading.Event()
    results = {}
    kafka = threading.Thread(target=produce_fetch_loop, args=(c, stop, results), daemon=True)
    kafka.start()
    socks = []
    try:
        wait_for("the Kafka loop's first round trip", lambda: results.get("round_trips")
                 or results.get("error"), 20)
        before = results.get("round_trips", 0)
        t0 = time.monotonic()
        for _ in range(200):
            s = socket.create_connection(addr, timeout=5)
            s.setblocking(False)
            socks.append(s)
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100
        closed_at = {}
        i = 0
        # One byte a second on every connection until each is closed by the
        # server, or far past the timeout.
        while len(closed_at) < len(socks) and time.monotonic() - t0 < timeout_s + 8:
            for k, s in enumerate(socks):
                if k in closed_at:
                    continue
                try:
                    data = s.recv(4096)
                    if data == b"":
                        closed_at[k] = time.monotonic() - t0
                        continue
                    assert not data.startswith(b"HTTP/1.1 200"), data[:100]
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[k] = time.monotonic() - t0
                    continue
                try:
                    s.send(request[i:i + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[k] = time.monotonic() - t0
            i += 1
            time.sleep(1.0)
        assert len(closed_at) == 200, "%d of 200 slowloris connections still open" % (
            200 - len(closed_at))
        # Over metrics.max.connections (64) closed at once; the rest at the
        # request timeout, none much later.
        assert max(closed_at.values()) < timeout_s + 3, sorted(closed_at.values())[-5:]
        assert "error" not in results, results["error"]
        assert results["round_trips"] > before + 3, results
    finally:
        stop.set()
        kafka.join(30)
        for s in socks:
            s.close()
    assert "error" not in results, results["error"]
    # The server counted them and still answers.
    status, _, body = get(c.metrics_url(1))
    assert status == 200
    assert 'weir_http_connections_closed_total{reason="timeout"}' in body
    refused = [l for l in body.splitlines()
               if l.startswith('weir_http_connections_closed_total{reason="refused"}')]
    assert refused and float(refused[0].split()[-1]) >= 200 - 64


def test_health_503_while_the_coordinator_is_away(cluster2):
    c = cluster2
    assert get(c.metrics_url(1, "/health"))[0] == 200
    c.kill9_coordinator()
    # The broker keeps serving HTTP and says why it is not ready once its
    # lease runs out (session.timeout.ms after the last accepted heartbeat).
    t0 = time.monotonic()
    status, body = wait_for("broker 1 unhealthy",
                            lambda: (lambda r: (r[0], r[2]) if r[0] == 503 else None)(
                                get(c.metrics_url(1, "/health"))), SESSION_S + 6)
    assert time.monotonic() - t0 > 1.0, "unhealthy before the session could have run out"
    assert body.endswith("\n") and body.count("\n") == 1
    assert "coordinator" in body, body
    c.restart_coordinator()
    wait_for("broker 1 healthy again",
             lambda: get(c.metrics_url(1, "/health"))[0] == 200, 30)
    assert get(c.metrics_url("coordinator", "/health"))[0] == 200


def test_coordinator_counts_a_killed_broker_as_fenced(cluster2):
    need_parser()
    c = cluster2
    c.create_topic("fence-t", 2, 2)
    c.wait_topic("fence-t", 2)
    before = scrape(c, "coordinator")
    assert value(before, "weir_coordinator_brokers", state="fenced") == 0
    c.kill9_broker(2)
    after = wait_for("broker 2 fenced in the metrics",
                     lambda: (lambda s: s if value(s, "weir_coordinator_brokers",
                                                   state="fenced") == 1 else None)(
                         scrape(c, "coordinator")), SESSION_S + 6)
    assert value(after, "weir_coordinator_brokers", state="registered") == 1
    fencings = sum(v for (n, _), v in after.items()
                   if n == "weir_coordinator_broker_fencings_total")
    fencings_before = sum(v for (n, _), v in before.items()
                          if n == "weir_coordinator_broker_fencings_total")
    assert fencings == fencings_before + 1
    # Broker 2 led one of the partitions (leaders are spread): it moved to 1.
    assert value(after, "weir_coordinator_leader_elections_total") > \
        value(before, "weir_coordinator_leader_elections_total")
    assert value(after, "weir_coordinator_offline_partitions") == 0
    assert value(after, "weir_coordinator_under_replicated_partitions") >= 2
    c.start_broker(2)
    wait_for("broker 2 registered again",
             lambda: value(scrape(c, "coordinator"), "weir_coordinator_brokers",
                           state="registered") == 2, 20)


def test_bad_metrics_listener_is_refused_at_start():
    binary = weir_cluster.binary("coordinator/weir-coordinator")
    with tempfile.TemporaryDirectory(prefix="weir-it-") as d:
        r = subprocess.run([binary, "--format-if-empty", "--override", "data.dir=" + d,
                            "--override", "listeners=127.0.0.1:0",
                            "--override", "metrics.listener=nonsense"],
                           capture_output=True, timeout=20)
        assert r.returncode == 2
        assert b"metrics.listener" in r.stderr
        # A port already taken: a clear error naming the key, exit 1.
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            r = subprocess.run([binary, "--format-if-empty", "--override", "data.dir=" + d,
                                "--override", "listeners=127.0.0.1:0",
                                "--override", "metrics.listener=127.0.0.1:%d" %
                                taken.getsockname()[1]],
                               capture_output=True, timeout=20)
        finally:
            taken.close()
        assert r.returncode == 1
        assert b"metrics.listener" in r.stderr, r.stderr[-500:]
