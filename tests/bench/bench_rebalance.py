#!/usr/bin/python3
"""bench_rebalance: how long a consumer group is stopped by a rebalance.

A coordinator and three brokers (from $WEIR_BUILD_DIR), a topic with two
partitions per member (RF3), a producer writing one record to every partition
every 20 ms, and --members confluent-kafka (librdkafka) consumers of one group
(range assignor: eager, every member gives up its partitions). Measured, for a
member that leaves with close() (LeaveGroup) and for one SIGKILLed (its own
process; the group notices at session.timeout.ms):

  time from the leave / kill to the moment every remaining member has received
  a record under its new assignment.

    WEIR_BUILD_DIR=build/normal /usr/bin/python3 tests/bench/bench_rebalance.py \\
        [--members 3 30] [--heartbeat-ms 500] [--session-ms 6000]

What bounds it: after a LeaveGroup the others learn of the rebalance on their
next Heartbeat (heartbeat.interval.ms), rejoin, the JoinGroup completes when
the last one is in, then SyncGroup waits for the group record to reach the HW
of its RF3 __consumer_offsets partition, then each member fetches its committed
offsets and its first records (fetch.wait.max.ms). A SIGKILL adds the session
timeout before the coordinator removes the dead member.
"""
import argparse
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import confluent_kafka  # noqa: E402

GROUP = "bench-rebalance"
CHILD = r"""
import sys, confluent_kafka
c = confluent_kafka.Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
    "auto.offset.reset": "latest", "session.timeout.ms": int(sys.argv[4]),
    "heartbeat.interval.ms": int(sys.argv[5]), "partition.assignment.strategy": "range"})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
"""


class Member(threading.Thread):
    def __init__(self, conf, topic):
        super().__init__(daemon=True)
        self.c = confluent_kafka.Consumer(conf)
        self.topic = topic
        self.assigned_at = 0.0
        self.first_after_assign = None
        self.parts = 0
        self.stop = threading.Event()

    def on_assign(self, consumer, parts):
        self.assigned_at = time.monotonic()
        self.first_after_assign = None
        self.parts = len(parts)

    def on_revoke(self, consumer, parts):
        self.parts = 0

    def run(self):
        self.c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stop.is_set():
            m = self.c.poll(0.05)
            if m is not None and not m.error() and self.first_after_assign is None:
                self.first_after_assign = time.monotonic()
        self.c.close()


def producer_loop(c, topic, partitions, stop):
    p = confluent_kafka.Producer({"bootstrap.servers": c.bootstrap(), "linger.ms": 0})
    while not stop.is_set():
        for i in range(partitions):
            p.produce(topic, value=b"x", partition=i)
        p.poll(0)
        time.sleep(0.02)
    p.flush(10)


def wait(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise SystemExit("timed out: " + what)
        time.sleep(0.02)


def resumed_after(members, t0, timeout):
    """Seconds from @t0 until every member got a record after an assignment made after t0."""
    def done():
        return all(m.assigned_at > t0 and m.first_after_assign is not None for m in members)
    wait("every member consuming again", done, timeout)
    return max(m.first_after_assign for m in members) - t0


def run(n, args):
    c = weir_cluster.Cluster(brokers=3)
    c.start()
    stop = threading.Event()
    members = []
    child = None
    try:
        topic = "bench-rebalance-%d" % n
        partitions = 2 * (n + 1)
        c.create_topic(topic, partitions, 3)
        prod = threading.Thread(target=producer_loop, args=(c, topic, partitions, stop),
                                daemon=True)
        prod.start()
        conf = {"bootstrap.servers": c.bootstrap(), "group.id": GROUP + str(n),
                "auto.offset.reset": "latest", "session.timeout.ms": args.session_ms,
                "heartbeat.interval.ms": args.heartbeat_ms,
                "partition.assignment.strategy": "range"}
        members = [Member(conf, topic) for _ in range(n)]
        # one more member in a process of its own, to SIGKILL
        child = subprocess.Popen([sys.executable, "-c", CHILD, c.bootstrap(), GROUP + str(n),
                                  topic, str(args.session_ms), str(args.heartbeat_ms)])
        for m in members:
            m.start()
        wait("all %d members assigned" % (n + 1),
             lambda: sum(m.parts for m in members) == partitions - 2 and
             all(m.first_after_assign for m in members), 120)
        time.sleep(2)
        # SIGKILL the member in its own process
        t0 = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait()
        kill_s = resumed_after(members, t0, 120)
        time.sleep(2)
        # a member leaves (LeaveGroup)
        leaving = members.pop()
        t0 = time.monotonic()
        leaving.stop.set()
        leaving.join(timeout=30)
        leave_s = resumed_after(members, t0, 120)
        return leave_s, kill_s
    finally:
        stop.set()
        for m in members:
            m.stop.set()
        for m in members:
            m.join(timeout=30)
        if child and child.poll() is None:
            child.kill()
        c.finish(failed=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, nargs="+", default=[3, 30])
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--session-ms", type=int, default=6000)
    args = ap.parse_args()
    print("members  leave->all consuming (s)  SIGKILL->all consuming (s)  "
          "[heartbeat %d ms, session %d ms]" % (args.heartbeat_ms, args.session_ms))
    for n in args.members:
        leave_s, kill_s = run(n, args)
        print("%7d  %25.2f  %27.2f" % (n, leave_s, kill_s), flush=True)


if __name__ == "__main__":
    main()
