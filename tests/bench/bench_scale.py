#!/usr/bin/python3
"""bench_scale: the scale curve of issue 16 — what a 3-broker cluster does when
one CreateTopics puts N partition replicas on every broker.

For each count in --replicas (replicas per broker; with RF 3 on 3 brokers that
is also the partition count of the big topic), on a fresh cluster
(coordinator + 3 weir-brokers from $WEIR_BUILD_DIR, session.timeout.ms=6000):

  - a producer writes to another topic ("steady", 3 partitions, RF 3, acks=all,
    one 100-byte record per request, back to back) the whole time; reported:
    the longest a single produce took (the stall) and the produce rate;
  - CreateTopics "big" with N partitions, RF 3; reported: the time until the
    answer (create), until every broker's Metadata shows a leader for every
    partition (leaders) and until every broker has made its N log directories
    (logs);
  - Metadata for all topics from each broker, 5 times: the slowest (metadata);
  - each broker's RSS, open descriptors and CPU % over 5 idle seconds;
  - fenced: the coordinator's "sent no heartbeat ... fencing it" lines (fenced
    for silence) during the whole run, restarts included;
  - loop lag: the broker and coordinator "event loop" lines (a callback or loop
    turn that kept the loop busy past 100 ms) and the longest one;
  - failover: kill -9 of broker 3, time until no partition names it as leader;
    controlled shutdown (SIGTERM) of broker 2, time until no partition names it
    (skipped with --no-failover);
  - delete: DeleteTopics "big", time until its directories are gone.

    WEIR_BUILD_DIR=build/normal /usr/bin/python3 tests/bench/bench_scale.py \
        [--replicas 1000,3000,10000] [--no-failover] [--keep]

The figures depend on the machine's load: say what else ran when you quote them.
"""
import argparse
import os
import re
import signal
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

STEADY = "steady"
BIG = "big"


def leaders(conn, topics=None):
    md = conn.metadata(topics)
    return md["topics"]


class Producer(threading.Thread):
    """acks=all produce to partition 0 of STEADY, one record at a time, measuring
    each request; follows the leader when it moves."""

    def __init__(self, cl):
        super().__init__(daemon=True)
        self.cl = cl
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.max_s = 0.0
            self.count = 0
            self.errors = 0
            self.t0 = time.monotonic()

    def snapshot(self):
        with self.lock:
            return self.max_s, self.count, self.errors, time.monotonic() - self.t0

    def _leader_conn(self):
        for b in sorted(self.cl.brokers):
            if not self.cl.brokers[b].running():
                continue
            try:
                c = kafka_raw.Conn(*self.cl.addr(b), timeout=5)
                t = c.metadata([STEADY])["topics"][STEADY]
                c.close()
                lead = t["partitions"][0]["leader"] if t["partitions"] else -1
                if lead in self.cl.brokers and self.cl.brokers[lead].running():
                    return kafka_raw.Conn(*self.cl.addr(lead), timeout=30)
            except (OSError, ConnectionError, AssertionError, KeyError):
                pass
        return None

    def run(self):
        batch = kafka_raw.record_batch([b"x" * 100])
        conn = None
        while not self.stop.is_set():
            if conn is None:
                conn = self._leader_conn()
                if conn is None:
                    time.sleep(0.05)
                    continue
            t = time.monotonic()
            try:
                err, _ = conn.produce(STEADY, 0, batch, acks=-1)
            except (OSError, ConnectionError, AssertionError):
                err = -1
            d = time.monotonic() - t
            with self.lock:
                self.max_s = max(self.max_s, d)
                if err == 0:
                    self.count += 1
                else:
                    self.errors += 1
            if err != 0:
                conn.close()
                conn = None


def proc_stats(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return rss, fds


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def big_topics(n):
    """The big topics for @n replicas per broker: one up to 10,000 partitions,
    else ceil(n / 10,000) topics sharing them (30,000 = 3 x 10,000 at RF 3)."""
    k = (n + 9999) // 10000
    if k == 1:
        return {BIG: n}
    return {"%s-%d" % (BIG, i): n // k + (1 if i < n % k else 0) for i in range(k)}


def wait_leaders(cl, bigs, exclude=None, timeout=120.0):
    """Seconds until every running broker shows a leader (not @exclude) for all
    partitions of the topics in @bigs ({topic: partitions}); None on timeout."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    for b in sorted(cl.brokers):
        if not cl.brokers[b].running() or b == exclude:
            continue
        while True:
            try:
                c = kafka_raw.Conn(*cl.addr(b), timeout=10)
                md = c.metadata(list(bigs))["topics"]
                c.close()
                if all(md.get(t) and len(md[t]["partitions"]) == n and all(
                        p["leader"] >= 0 and p["leader"] != exclude
                        for p in md[t]["partitions"]) for t, n in bigs.items()):
                    break
            except (OSError, ConnectionError, AssertionError):
                pass
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
    return time.monotonic() - t0


def count_logs(cl, b, bigs):
    return sum(1 for d in os.listdir(cl.log_dir(b))
               if d.rsplit("-", 1)[0] in bigs and not d.endswith(("-delete", "-stray")))


def metadata_ms(cl, rounds=5):
    worst = 0.0
    for b in sorted(cl.brokers):
        if not cl.brokers[b].running():
            continue
        c = kafka_raw.Conn(*cl.addr(b), timeout=30)
        for _ in range(rounds):
            # Until the last byte of the answer: Python's parsing of 10,000
            # partitions is not the broker's time.
            t = time.monotonic()
            c.request(3, 1, struct.pack(">i", -1))
            size = struct.unpack(">i", c.recv_exact(4))[0]
            c.recv_exact(size)
            worst = max(worst, time.monotonic() - t)
        c.close()
    return worst * 1000


def log_lines(path, pattern):
    try:
        with open(path, errors="replace") as f:
            return [l.rstrip() for l in f if re.search(pattern, l)]
    except FileNotFoundError:
        return []


def max_lag_ms(lines):
    worst = 0
    for l in lines:
        m = re.search(r"busy for (\d+) ms", l)
        if m:
            worst = max(worst, int(m.group(1)))
    return worst


def replica_parts(conn, bid, topics):
    """{topic: [(partition, leader, isr)]} of the partitions @bid replicates."""
    md = conn.metadata(topics)["topics"]
    return {t: [(p["partition"], p["leader"], p["isr"]) for p in md[t]["partitions"]
                if bid in p["replicas"]] for t in topics}


def restart_broker_timed(cl, bid, topics, how, timeout=120.0):
    """Stop broker @bid (how: "term" = SIGTERM, a controlled shutdown and a
    clean exit; "kill" = kill -9), start it again and measure from the start
    of the new process:

      ready_s   its ready line (registered, metadata synced);
      isr_s     another broker's Metadata shows it in the ISR of every
                partition it replicates (every replica taken up and caught up);
      serving_s then an acks=all produce succeeded on a partition it
                replicates (the HW passes only once it fetched the record),
                and one on a partition it leads if it leads any;
      lag_ms    the longest "event loop busy" line of the new process until
                then (0: no callback over 100 ms).
    """
    other = min(b for b in cl.brokers if b != bid and cl.brokers[b].running())
    if how == "term":
        cl.term_broker(bid, timeout=60)
    else:
        cl.kill9_broker(bid)
    log_path = cl.brokers[bid].log_path
    log_off = os.path.getsize(log_path)
    res = {}
    t0 = time.monotonic()
    cl.start_broker(bid)
    res["ready_s"] = time.monotonic() - t0
    deadline = t0 + timeout
    oc = kafka_raw.Conn(*cl.addr(other), timeout=30)
    try:
        while True:
            parts = replica_parts(oc, bid, topics)
            if all(bid in isr for ps in parts.values() for _, _, isr in ps):
                break
            if time.monotonic() > deadline:
                return res
            time.sleep(0.05)
        res["isr_s"] = time.monotonic() - t0
        batch = kafka_raw.record_batch([b"r" * 100])
        t = topics[0]
        targets = [min(parts[t], key=lambda x: x[1] != bid)]  # one it leads, if any
        targets += [next(x for x in parts[t] if x[1] != bid)]
        for p, leader, _ in targets:
            while True:
                try:
                    c = kafka_raw.Conn(*cl.addr(leader), timeout=10)
                    err, _ = c.produce(t, p, batch, acks=-1)
                    c.close()
                except (OSError, ConnectionError, AssertionError):
                    err = -1
                if err == 0:
                    break
                if time.monotonic() > deadline:
                    return res
                time.sleep(0.05)
        res["serving_s"] = time.monotonic() - t0
    finally:
        oc.close()
        with open(log_path, errors="replace") as f:
            f.seek(log_off)
            res["lag_ms"] = max_lag_ms([l for l in f if "event loop busy" in l])
    return res


def one_run(n, failover, restart, keep):
    cl = weir_cluster.Cluster(brokers=3)
    res = {"replicas": n}
    prod = None
    try:
        cl.start()
        c = kafka_raw.Conn(*cl.addr(1), timeout=60)
        assert c.create_topic(STEADY, 3, 3) == 0
        cl.wait_topic(STEADY, 3)
        prod = Producer(cl)
        prod.start()
        time.sleep(2)
        prod.reset()

        bigs = big_topics(n)
        t0 = time.monotonic()
        res["create_err"] = 0
        for t, parts in bigs.items():
            err = c.create_topic(t, parts, 3, timeout_ms=60000)
            res["create_err"] = res["create_err"] or err
        res["create_s"] = time.monotonic() - t0
        c.close()
        wl = wait_leaders(cl, bigs, timeout=180)
        res["leaders_s"] = None if wl is None else res["create_s"] + wl
        # Leaders in the metadata are the coordinator's word; the logs exist
        # once every broker made its N directories.
        while time.monotonic() - t0 < 600:
            if all(count_logs(cl, b, bigs) >= n for b in cl.brokers):
                res["logs_s"] = time.monotonic() - t0
                break
            time.sleep(0.2)
        time.sleep(1)
        res["stall_ms"], cnt, errs, dur = prod.snapshot()
        res["stall_ms"] *= 1000
        res["produce_rate"] = cnt / dur
        res["produce_errors"] = errs
        res["metadata_ms"] = metadata_ms(cl)

        pids = {b: cl.brokers[b].pid for b in cl.brokers}
        prod.stop.set()
        prod.join(30)
        time.sleep(1)
        t_before = {b: cpu_ticks(p) for b, p in pids.items()}
        time.sleep(5)
        hz = os.sysconf("SC_CLK_TCK")
        res["idle_cpu_pct"] = max((cpu_ticks(p) - t_before[b]) / hz / 5 * 100
                                  for b, p in pids.items())
        stats = [proc_stats(p) for p in pids.values()]
        res["rss_mib"] = max(s[0] for s in stats)
        res["fds"] = max(s[1] for s in stats)

        if restart:
            for how in ("term", "kill"):
                r = restart_broker_timed(cl, 3, list(bigs), how)
                for k, v in r.items():
                    res["%s_%s" % (how, k)] = v
        if failover:
            t0 = time.monotonic()
            cl.kill9_broker(3)
            wl = wait_leaders(cl, bigs, exclude=3, timeout=60)
            res["failover_s"] = wl
            t0 = time.monotonic()
            os.kill(cl.brokers[2].pid, signal.SIGTERM)
            wl = wait_leaders(cl, bigs, exclude=2, timeout=60)
            res["ctrl_shutdown_s"] = wl
            cl.term_broker(2, timeout=30)
            cl.start_broker(2)
            cl.start_broker(3)

        c = kafka_raw.Conn(*cl.addr(1), timeout=60)
        t0 = time.monotonic()
        res["delete_err"] = 0
        for t, e in c.delete_topics(list(bigs), timeout_ms=60000).items():
            res["delete_err"] = res["delete_err"] or e
        c.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = sum(count_logs(cl, b, bigs) for b in cl.brokers)
            if left == 0:
                break
            time.sleep(0.1)
        res["delete_s"] = time.monotonic() - t0 if left == 0 else None

        # Fenced for silence; the killed broker's fencing (its connection
        # closed) and a controlled shutdown's ("is exiting") are the test.
        fence = log_lines(os.path.join(cl.root, "coordinator.log"), r"sent no heartbeat.*fencing it")
        res["fenced"] = len(fence)
        lag = []
        for name in ["coordinator"] + ["broker-%d" % b for b in cl.brokers]:
            lag += log_lines(os.path.join(cl.root, name + ".log"), r"event loop busy")
        res["lag_lines"] = len(lag)
        res["max_lag_ms"] = max_lag_ms(lag)
    finally:
        if prod is not None:
            prod.stop.set()
        if keep:
            os.environ["WEIR_KEEP_LOGS"] = "1"
        cl.finish(failed=keep)
        res["root"] = cl.root
    return res


COLS = [("replicas", "%d"), ("create_s", "%.2f"), ("leaders_s", "%.2f"), ("logs_s", "%.1f"), ("stall_ms", "%.0f"),
        ("produce_rate", "%.0f"), ("metadata_ms", "%.0f"), ("idle_cpu_pct", "%.1f"),
        ("rss_mib", "%d"), ("fds", "%d"), ("fenced", "%d"), ("max_lag_ms", "%d"),
        ("term_ready_s", "%.2f"), ("term_isr_s", "%.2f"), ("term_serving_s", "%.2f"),
        ("term_lag_ms", "%d"), ("kill_ready_s", "%.2f"), ("kill_isr_s", "%.2f"),
        ("kill_serving_s", "%.2f"), ("kill_lag_ms", "%d"),
        ("failover_s", "%.2f"), ("ctrl_shutdown_s", "%.2f"), ("delete_s", "%.2f")]


def fmt(v, f):
    return "-" if v is None else f % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", default="1000,3000,10000")
    ap.add_argument("--no-failover", action="store_true")
    ap.add_argument("--no-restart", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the logs of every run")
    a = ap.parse_args()
    print(" ".join("%14s" % c for c, _ in COLS))
    for n in [int(x) for x in a.replicas.split(",")]:
        r = one_run(n, not a.no_failover, not a.no_restart, a.keep)
        print(" ".join("%14s" % fmt(r.get(c), f) for c, f in COLS), flush=True)
        if a.keep:
            print("  logs: %s" % r["root"], flush=True)


if __name__ == "__main__":
    main()
