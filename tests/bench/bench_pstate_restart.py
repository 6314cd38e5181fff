#!/usr/bin/python3
"""bench_pstate_restart: how long a restarted broker takes to answer its first
idempotent produce, with and without the producer snapshots.

One broker (coordinator + weir-broker from $WEIR_BUILD_DIR), one partition of
RF 1 with log.segment.bytes = --segment-mib. --producers producer ids (from
InitProducerId) write --log-mib MiB round-robin in batches of one --batch-kib
KiB record each (raw Produce v3, acks=1). Then, twice:

  with snapshots:    SIGTERM, start, first produce
  without snapshots: SIGTERM, delete <partition>/*.snapshot, start, first produce

"first produce" is a resend of the last batch written: the broker must rebuild
the partition's producer state (from the newest snapshot plus the log after it,
or from the whole log) before it can answer it as a duplicate (its original
offset). Reported: the time from the start of the process to that answer, the
start-up part (until the broker printed its ready line) and the broker's own
"producer state rebuilt" line. The log is read from the page cache both times
(the machine's caches are not dropped).

    WEIR_BUILD_DIR=build/normal /usr/bin/python3 tests/bench/bench_pstate_restart.py \
        [--log-mib 1024] [--producers 1000] [--segment-mib 128] [--batch-kib 256]

CRCs of the generated batches come from common/crc32c.c, compiled into a
temporary shared object (cc), since Python has no CRC-32C.
"""
import argparse
import ctypes
import glob
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

TOPIC = "pstate-bench"


def load_crc32c(tmp):
    so = os.path.join(tmp, "crc32c.so")
    subprocess.run(["cc", "-O2", "-msse4.2", "-shared", "-fPIC", "-I", ROOT,
                    os.path.join(ROOT, "common", "crc32c.c"), "-o", so, "-lpthread"],
                   check=True)
    lib = ctypes.CDLL(so)
    lib.crc32c_update.restype = ctypes.c_uint32
    lib.crc32c_update.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
    return lib


class Batches:
    """A template batch of one record of @size bytes; each copy gets its own
    producer id, sequence and CRC."""

    def __init__(self, crc, size):
        self.crc = crc
        self.tmpl = bytearray(kafka_raw.record_batch([b"x" * size], producer_id=0,
                                                     producer_epoch=0, base_sequence=0))

    def make(self, pid, seq):
        b = self.tmpl
        struct.pack_into(">qhi", b, 43, pid, 0, seq)
        tail = bytes(b[21:])
        struct.pack_into(">I", b, 17, self.crc.crc32c_update(0, tail, len(tail)))
        return bytes(b)


def rebuilt_line(c, since):
    with open(os.path.join(c.root, "broker-1.log"), errors="replace") as f:
        lines = [ln.strip() for ln in f if "producer state rebuilt" in ln]
    return lines[since:], len(lines)


def restart_and_probe(c, last, expect_offset, drop_snapshots, seen):
    c.term_broker(1)
    pdir = os.path.join(c.log_dir(1), TOPIC + "-0")
    snaps = sorted(glob.glob(os.path.join(pdir, "*.snapshot")))
    if drop_snapshots:
        for s in snaps:
            os.unlink(s)
    t0 = time.monotonic()
    c.start_broker(1)
    t_ready = time.monotonic() - t0
    deadline = time.monotonic() + 600
    while True:
        try:
            conn = kafka_raw.Conn(*c.addr(1), timeout=600)
            try:
                r = conn.produce(TOPIC, 0, last, acks=1)
            finally:
                conn.close()
            if r[0] == 0:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "no answer to the first produce"
        time.sleep(0.01)
    t_first = time.monotonic() - t0
    assert r == (0, expect_offset), "the resend was not answered as a duplicate: %r" % (r,)
    lines, n = rebuilt_line(c, seen)
    return t_ready, t_first, len(snaps), lines, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log-mib", type=int, default=1024)
    ap.add_argument("--producers", type=int, default=1000)
    ap.add_argument("--segment-mib", type=int, default=128)
    ap.add_argument("--batch-kib", type=int, default=256)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-pstate-")
    c = None
    try:
        crc = load_crc32c(tmp)
        os.mkdir(os.path.join(tmp, "cluster"))
        c = weir_cluster.Cluster(brokers=1, root=os.path.join(tmp, "cluster"), broker_overrides={
            "log.segment.bytes": str(a.segment_mib << 20)})
        c.start()
        c.create_topic(TOPIC, 1, 1)
        conn = kafka_raw.Conn(*c.addr(1), timeout=60)
        pids = []
        for _ in range(a.producers):
            err, pid, _ = conn.init_producer_id()
            assert err == 0
            pids.append(pid)
        gen = Batches(crc, (a.batch_kib << 10) - 100)
        n = max(a.producers, (a.log_mib << 10) // a.batch_kib)
        seqs = {}
        t0 = time.monotonic()
        last = None
        for i in range(n):
            pid = pids[i % len(pids)]
            seq = seqs.get(pid, 0)
            seqs[pid] = seq + 1
            last = gen.make(pid, seq)
            err, off = conn.produce(TOPIC, 0, last, acks=1)
            assert err == 0 and off == i, (err, off, i)
        conn.close()
        t_write = time.monotonic() - t0
        size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(
            c.log_dir(1), TOPIC + "-0", "*.log")))
        print("log: %d batches, %.0f MiB in %d segments, %d producers, written in %.1f s" % (
            n, size / 1048576.0, len(glob.glob(os.path.join(c.log_dir(1), TOPIC + "-0", "*.log"))),
            len(pids), t_write))
        _, seen = rebuilt_line(c, 0)
        res = {}
        for label, drop in (("with snapshots", False), ("without snapshots", True)):
            ready, first, nsnap, lines, seen = restart_and_probe(c, last, n - 1, drop, seen)
            res[label] = first
            print("%-18s start-up (ready line) %6.3f s, first idempotent produce answered "
                  "after %7.3f s (%d snapshot files %s)" % (
                      label, ready, first, nsnap, "deleted" if drop else "kept"))
            for ln in lines:
                print("    broker: %s" % ln[ln.find("producer state"):])
        print("ratio without/with snapshots: %.1fx" % (
            res["without snapshots"] / res["with snapshots"]))
    finally:
        if c is not None:
            c.finish(failed=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
