#!/usr/bin/python3
"""bench_groups: offset commits through an RF3 __consumer_offsets, with the same
run's acks=all produce latency beside them.

A coordinator and three brokers (from $WEIR_BUILD_DIR). --clients connections to
the coordinator of their own group each send --ops synchronous OffsetCommit v2
requests of --parts partitions (one request in flight per connection; a commit is
answered once the HW of its __consumer_offsets partition passes it). Then the
same connections, to the leader of one partition of an RF3 topic, send --ops
acks=all Produce v3 requests of one ~100-byte record each: the same replication
path, the same wait. Reported for both: requests/s over all clients, p50 / p99 /
max latency; and the ratio of the commit's p99 to the produce's p99.

    WEIR_BUILD_DIR=build/normal /usr/bin/python3 tests/bench/bench_groups.py \\
        [--clients 4] [--ops 2000] [--parts 5]

Raw requests (tests/support/kafka_raw.py) keep the client's own cost small and
the same for both sides.
"""
import argparse
import os
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402
import test_offsets as T  # noqa: E402  (raw OffsetCommit / FindCoordinator helpers)

TOPIC = "bench-groups"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def run_clients(n, fn):
    lat = [[] for _ in range(n)]
    errs = []

    def worker(i):
        try:
            fn(i, lat[i])
        except Exception as e:  # reported after the run
            errs.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=600)
    el = time.monotonic() - t0
    if errs:
        raise errs[0]
    return el, [x for l in lat for x in l]


def report(name, el, lat):
    print("%-22s %8.0f req/s   p50 %6.2f ms   p99 %6.2f ms   max %6.2f ms   (%d requests)" %
          (name, len(lat) / el, pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3, max(lat) * 1e3,
           len(lat)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--parts", type=int, default=5)
    a = ap.parse_args()
    c = weir_cluster.Cluster(brokers=3, broker_overrides={"offsets.topic.num.partitions": "10"})
    c.start()
    try:
        c.create_topic(TOPIC, max(a.parts, 1), 3)
        groups = ["bench-%d" % i for i in range(a.clients)]
        for g in groups:  # creates __consumer_offsets, waits for loading
            T.commit_until_ok(c, g, {TOPIC: [(0, 0, "")]})

        def commits(i, lat):
            _, conn = T.coordinator_conn(c, groups[i])
            try:
                for k in range(a.ops):
                    parts = [(p, k, "") for p in range(a.parts)]
                    t0 = time.monotonic()
                    res = T.offset_commit_v2(conn, groups[i], {TOPIC: parts})
                    lat.append(time.monotonic() - t0)
                    assert all(e == 0 for e in res.values()), res
            finally:
                conn.close()

        meta = kafka_raw.Conn(*c.addr(1))
        try:
            leader = meta.metadata([TOPIC])["topics"][TOPIC]["partitions"]
            leader = {p["partition"]: p["leader"] for p in leader}[0]
        finally:
            meta.close()
        batch = kafka_raw.record_batch([b"x" * 100])

        def produces(i, lat):
            conn = kafka_raw.Conn(*c.addr(leader))
            try:
                for _ in range(a.ops):
                    t0 = time.monotonic()
                    err = conn.produce(TOPIC, 0, batch, acks=-1)
                    lat.append(time.monotonic() - t0)
                    assert err[0] == 0, err
            finally:
                conn.close()

        ce, cl = run_clients(a.clients, commits)
        pe, pl = run_clients(a.clients, produces)
        print("bench_groups: %d clients x %d requests; commits of %d partitions; "
              "RF3, 3 brokers on one machine" % (a.clients, a.ops, a.parts))
        report("OffsetCommit (RF3)", ce, cl)
        report("Produce acks=all (RF3)", pe, pl)
        print("commit p99 / produce p99 = %.2f" % (pct(cl, 0.99) / pct(pl, 0.99)))
    finally:
        c.finish(failed=False)


if __name__ == "__main__":
    main()
