#!/usr/bin/python3
"""bench_reassign: how fast a partition move copies data, against a plain TCP
copy of the same bytes over the same loopback in the same run, and what a move
does to producers' latency with and without a replication throttle
(docs/reassignment.md, Throttles).

    WEIR_BUILD_DIR=build /usr/bin/python3 tests/bench/bench_reassign.py                # 1 GiB
    WEIR_BUILD_DIR=build /usr/bin/python3 tests/bench/bench_reassign.py --size 512M --throttle 50M

A coordinator and three brokers on free ports (tests/support/cluster.py). A
topic of --partitions partitions, all on broker 1, gets --size bytes of
incompressible records; then:
1. unthrottled move to broker 2 (AlterPartitionReassignments), timed from the
   request until ListPartitionReassignments is empty;
2. the same bytes (broker 1's segment files) sent over a loopback TCP socket
   with sendfile() and written by the receiver to a file next to the brokers'
   data (the floor a move cannot beat: read, send, receive, write);
3. a move from broker 2 to broker 3 with --throttle bytes/s on both brokers and
   the partitions listed, for --throttle-secs, then the rates are deleted.
An acks=all producer sends a 100-byte record every 20 ms to a topic on brokers
[1, 2] throughout; its p99 is reported idle, during the unthrottled move and
during the throttled one. Needs about 3 x size of free disk (checked first);
everything is removed at exit.
"""

import argparse
import os
import shutil
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cluster as weir_cluster  # noqa: E402
import test_throttle as tt  # noqa: E402

MIB = 1 << 20


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * mult[s[-1].upper()]) if s[-1].upper() in mult else int(s)


def wait_moved(c, timeout=600):
    deadline = time.monotonic() + timeout
    while tt.moving(c):
        if time.monotonic() > deadline:
            raise SystemExit("move did not finish in %d s" % timeout)
        time.sleep(0.05)
    return time.monotonic()


def tcp_copy(files, out_path):
    """Seconds to send @files over a loopback TCP connection (sendfile) to a
    receiver that writes them to @out_path."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    total = sum(os.path.getsize(f) for f in files)
    got = [0]

    def receive():
        conn, _ = srv.accept()
        with conn, open(out_path, "wb") as out:
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            while True:
                n = conn.recv_into(buf)
                if n == 0:
                    break
                out.write(view[:n])
                got[0] += n

    t = threading.Thread(target=receive)
    t.start()
    t0 = time.monotonic()
    with socket.create_connection(srv.getsockname()) as s:
        for f in files:
            with open(f, "rb") as fh:
                s.sendfile(fh)
    t.join()
    dt = time.monotonic() - t0
    srv.close()
    assert got[0] == total, (got[0], total)
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=size_arg, default=1 << 30)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--throttle", type=size_arg, default=50 * MIB, help="bytes/s")
    ap.add_argument("--throttle-secs", type=float, default=10.0)
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="a broker key for every broker (e.g. replica.fetch.max.bytes=8388608)")
    a = ap.parse_args()

    root = os.environ.get("TMPDIR", "/tmp")
    free = shutil.disk_usage(root).free
    if free < 3 * a.size + (1 << 30):
        raise SystemExit("need %.1f GiB free in %s, have %.1f: use --size" %
                         ((3 * a.size + (1 << 30)) / (1 << 30), root, free / (1 << 30)))
    per = a.size // a.partitions // MIB
    size = per * MIB * a.partitions
    topic = "move"
    c = weir_cluster.Cluster(brokers=3,
                             broker_overrides=dict(o.split("=", 1) for o in a.override))
    c.start()
    try:
        try:
            tt.create_assigned(c, topic, [[1]] * a.partitions)
            tt.create_assigned(c, "probe", [[1, 2]])
            t0 = time.monotonic()
            for q in range(a.partitions):
                tt.fill(c, topic, q, per)
            print("filled %d MiB in %d partitions in %.1f s" % (size // MIB, a.partitions,
                                                                time.monotonic() - t0))
            probe = tt.LatencyProbe(c, "probe")
            time.sleep(1)
            probe.take()
            time.sleep(4)
            idle = probe.take()

            # 1. unthrottled move 1 -> 2
            t0 = time.monotonic()
            tt.reassign(c, {(topic, q): [2] for q in range(a.partitions)})
            move_s = wait_moved(c) - t0
            unthrottled = probe.take()

            # 2. the same bytes over a plain TCP stream
            files = []
            for q in range(a.partitions):
                d = os.path.join(c.log_dir(2), "%s-%d" % (topic, q))
                files += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".log")]
            copied = sum(os.path.getsize(f) for f in files)
            out = os.path.join(c.root, "tcp-copy.bin")
            tcp_s = tcp_copy(files, out)
            os.unlink(out)

            # 3. throttled move 2 -> 3
            rate = a.throttle
            parts = ",".join("%d:2" % q for q in range(a.partitions))
            fparts = ",".join("%d:3" % q for q in range(a.partitions))
            tt.set_configs(c, [
                (tt.RES_BROKER, "2", [(tt.LEADER_RATE, tt.OP_SET, str(rate))]),
                (tt.RES_BROKER, "3", [(tt.FOLLOWER_RATE, tt.OP_SET, str(rate))]),
                (tt.RES_TOPIC, topic, [(tt.LEADER_REPLICAS, tt.OP_SET, parts),
                                       (tt.FOLLOWER_REPLICAS, tt.OP_SET, fparts)])])
            probe.take()
            sampler = tt.Sampler(lambda: sum(tt.dir_bytes(c, 3, topic, q)
                                             for q in range(a.partitions)))
            t0 = time.monotonic()
            tt.reassign(c, {(topic, q): [3] for q in range(a.partitions)})
            time.sleep(a.throttle_secs)
            t1 = time.monotonic()
            throttled = probe.take()
            tt.unthrottle(c, 2, 3)
            wait_moved(c)
            samples = sampler.stop()
            probe.stop()
            thr_rate = tt.rate_between(samples, t0 + 1.0, t1)
        except BaseException:
            print(c.tails(20), file=sys.stderr)
            raise
    finally:
        c.stop_all()
        c.cleanup()

    print("data moved: %d MiB in %d partitions (%d bytes of segments)" %
          (size // MIB, a.partitions, copied))
    print("unthrottled move:   %7.2f s  %7.1f MiB/s" % (move_s, copied / MIB / move_s))
    print("plain TCP copy:     %7.2f s  %7.1f MiB/s" % (tcp_s, copied / MIB / tcp_s))
    print("move / TCP copy time ratio: %.2f" % (move_s / tcp_s))
    print("throttled move at %.0f MiB/s limit: measured %.2f MiB/s (%.1f%% of the limit)" %
          (rate / MIB, thr_rate / MIB, 100.0 * thr_rate / rate))
    print("producer p99 (acks=all, RF 2 on brokers 1,2): idle %.1f ms, unthrottled move "
          "%.1f ms, throttled move %.1f ms (n = %d, %d, %d)" %
          (tt.p99(idle) * 1e3, tt.p99(unthrottled) * 1e3, tt.p99(throttled) * 1e3,
           len(idle), len(unthrottled), len(throttled)))
    if probe.errors:
        print("producer errors: %r" % probe.errors[:5])


if __name__ == "__main__":
    main()
