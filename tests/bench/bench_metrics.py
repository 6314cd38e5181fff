#!/usr/bin/python3
"""bench_metrics: what a /metrics scrape costs a broker with 10,000 partitions
(issue 12: "scraping must not block the event loop for longer than a few
hundred microseconds with 10,000 partitions").

On a fresh cluster (coordinator + --brokers weir-brokers from $WEIR_BUILD_DIR):

  - CreateTopics "big" with --partitions partitions (RF 1 by default: every
    replica's state on one broker); with --group, a consumer group commits
    offsets on every partition, so the broker also exports one lag series per
    partition — the largest family there is;
  - a producer writes one 100-byte record per request (acks=1) to "steady"
    on broker 1 the whole time, measuring each request;
  - idle window (--idle seconds, nothing scraped), then a window as long in
    which broker 1 is scraped back to back, or every --interval seconds (at
    least --scrapes times), then
    one scrape of the coordinator.

Reported, for the idle window and the scrape window of the same run: the
producer's slowest request and its 99th percentile, and the event-loop stall
(the largest bucket of weir_event_loop_lag_seconds that gained ticks in the
window: millisecond resolution); for the scrapes: wall time and size of each
answer, loop turns per scrape, and the longest single turn in wall and CPU
time (weir_metrics_scrape_slice_max_seconds).

    WEIR_BUILD_DIR=build/normal /usr/bin/python3 tests/bench/bench_metrics.py \
        [--partitions 10000] [--brokers 1] [--scrapes 10] [--idle 10] [--interval S] \
        [--no-group]

The figures depend on the machine's load: say what else ran when you quote them.
"""
import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

BIG = "big"
STEADY = "steady"


class Producer(threading.Thread):
    """acks=1 produce of one record at a time to STEADY/0, each request timed."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.addr = addr
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.lat = []
        self.errors = 0

    def take(self):
        with self.lock:
            lat, self.lat = self.lat, []
            errors, self.errors = self.errors, 0
        return lat, errors

    def run(self):
        conn = kafka_raw.Conn(*self.addr, timeout=30)
        batch = kafka_raw.record_batch([b"x" * 100])
        while not self.stop.is_set():
            t = time.monotonic()
            err, _ = conn.produce(STEADY, 0, batch, acks=1)
            d = time.monotonic() - t
            with self.lock:
                self.lat.append(d)
                self.errors += err != 0
        conn.close()


def fetch(url):
    t = time.monotonic()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    return time.monotonic() - t, body


def scrape_loop(url, seconds, at_least, interval, q):
    times, sizes, body = [], [], b""
    t_end = time.monotonic() + seconds
    while len(times) < at_least or time.monotonic() < t_end:
        d, body = fetch(url)
        times.append(d)
        sizes.append(len(body))
        if interval > d:
            time.sleep(interval - d)
    q.put((times, sizes, body))


def samples(body, name):
    """{label text: value} of the samples of @name ("" for no labels)."""
    out = {}
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            key, _, v = line.rpartition(" ")
            out[key[len(name):]] = float(v)
    return out


def lag_buckets(body):
    return {k: v for k, v in samples(body, "weir_event_loop_lag_seconds_bucket").items()}


def stall_bound(before, after):
    """The smallest bucket bound that holds every tick gained between two scrapes:
    the longest loop stall in between, rounded up to a power of two of ms."""
    def le(k):
        v = k.split('le="')[1].split('"')[0]
        return float("inf") if v == "+Inf" else float(v)
    total = after['{le="+Inf"}'] - before['{le="+Inf"}']
    for k in sorted(after, key=le):
        if after[k] - before.get(k, 0) >= total:
            return le(k)
    return float("inf")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def wait_leaders(cl, topic, n, timeout=300):
    deadline = time.monotonic() + timeout
    for b in sorted(cl.brokers):
        c = kafka_raw.Conn(*cl.addr(b), timeout=60)
        while True:
            t = c.metadata([topic])["topics"].get(topic)
            if t and len(t["partitions"]) == n and all(p["leader"] >= 0 for p in t["partitions"]):
                break
            assert time.monotonic() < deadline, "leaders of %s not within %d s" % (topic, timeout)
            time.sleep(0.5)
        c.close()


def commit_all(cl, n):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": cl.bootstrap(), "group.id": "bench-metrics",
                  "enable.auto.commit": False})
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                c.commit(offsets=[TopicPartition(BIG, p, 0) for p in range(n)],
                         asynchronous=False)
                return
            except Exception as e:  # the offsets topic is still being created or loaded
                if time.monotonic() > deadline:
                    raise
                print("commit: %s; retrying" % e)
                time.sleep(1)
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--partitions", type=int, default=10000)
    ap.add_argument("--brokers", type=int, default=1)
    ap.add_argument("--scrapes", type=int, default=10)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=0.0,
                    help="seconds from one scrape's start to the next (0: back to back)")
    ap.add_argument("--no-group", action="store_true")
    args = ap.parse_args()

    cl = weir_cluster.Cluster(brokers=args.brokers,
                              coordinator_overrides={"offsets.topic.replication.factor": "1",
                                                     "offsets.topic.num.partitions": "1"})
    cl.start()
    try:
        c = kafka_raw.Conn(*cl.addr(1), timeout=120)
        assert c.create_topic(STEADY, 1, 1) == 0
        t0 = time.monotonic()
        assert c.create_topic(BIG, args.partitions, 1, timeout_ms=120000) == 0
        c.close()
        wait_leaders(cl, STEADY, 1)
        wait_leaders(cl, BIG, args.partitions)
        print("created %d partitions in %.1f s" % (args.partitions, time.monotonic() - t0))
        if not args.no_group:
            t0 = time.monotonic()
            commit_all(cl, args.partitions)
            print("committed offsets of group bench-metrics on %d partitions in %.1f s" %
                  (args.partitions, time.monotonic() - t0))
        steady_leader = kafka_raw.Conn(*cl.addr(1)).metadata([STEADY])["topics"][STEADY][
            "partitions"][0]["leader"]
        url = cl.metrics_url(steady_leader)
        prod = Producer(cl.addr(steady_leader))
        prod.start()
        time.sleep(1.0)
        prod.take()

        # Idle window: the same producer, nobody scraping.
        _, b0 = fetch(url)
        prod.take()
        time.sleep(args.idle)
        idle_lat, idle_err = prod.take()
        _, b1 = fetch(url)
        idle_stall = stall_bound(lag_buckets(b0), lag_buckets(b1))

        # Scrape window, as long as the idle one: back-to-back scrapes of the
        # producer's broker (at least --scrapes of them), from another process
        # so the producer's timings do not wait for this one's interpreter.
        q = multiprocessing.Queue()
        scraper = multiprocessing.Process(target=scrape_loop,
                                          args=(url, args.idle, args.scrapes, args.interval, q))
        prod.take()
        scraper.start()
        times, sizes, body = q.get(timeout=args.idle + 600)
        scraper.join(30)
        scrape_lat, scrape_err = prod.take()
        _, b2 = fetch(url)
        scrape_stall = stall_bound(lag_buckets(b1), lag_buckets(b2))
        # Turns and scrapes counted between the b1 and b2 snapshots: the
        # scrapes of the window (plus b1's tail and b2's head, about one).
        d_slices = samples(b2, "weir_metrics_scrape_slices_total")[""] - \
            samples(b1, "weir_metrics_scrape_slices_total")[""]
        d_scrapes = samples(b2, "weir_metrics_scrapes_total")[""] - \
            samples(b1, "weir_metrics_scrapes_total")[""]
        slice_max = samples(b2, "weir_metrics_scrape_slice_max_seconds")
        series = sum(1 for l in body.decode().splitlines() if l and not l.startswith("#"))
        lag_series = len(samples(body, "weir_consumer_group_lag_records"))
        cd, cbody = fetch(cl.metrics_url("coordinator"))
        prod.stop.set()
        prod.join(30)

        print()
        print("broker /metrics, %d partitions: %d bytes, %d samples (%d group-lag series)" %
              (args.partitions, statistics.median(sizes), series, lag_series))
        print("  scrape wall time: min %.1f ms, median %.1f ms, max %.1f ms over %d scrapes" %
              (min(times) * 1e3, statistics.median(times) * 1e3, max(times) * 1e3, len(times)))
        print("  loop turns per scrape: %.0f; longest turn: %.0f us wall, %.0f us CPU" %
              (d_slices / max(1, d_scrapes), slice_max.get('{clock="wall"}', 0) * 1e6,
               slice_max.get('{clock="cpu"}', 0) * 1e6))
        print("coordinator /metrics: %d bytes in %.1f ms" % (len(cbody), cd * 1e3))
        print()
        print("%-26s %10s %10s %10s %8s %14s" % ("window", "requests", "p99 ms", "max ms", "errors",
                                                 "loop stall <="))
        for name, lat, err, stall in (("idle (%.0f s)" % args.idle, idle_lat, idle_err,
                                       idle_stall),
                                      ("%d scrapes %s" % (len(times), "back to back" if not args.interval
                                                          else "every %g s" % args.interval),
                                       scrape_lat, scrape_err,
                                       scrape_stall)):
            print("%-26s %10d %10.2f %10.2f %8d %11.0f ms" %
                  (name, len(lat), pct(lat, 0.99) * 1e3, max(lat) * 1e3 if lat else 0, err,
                   stall * 1e3))
    finally:
        cl.stop_all()
        cl.cleanup()


if __name__ == "__main__":
    main()
