#!/usr/bin/env python3
"""bench_cli: `weir produce` and `weir consume` against kcat, same cluster, same
file, same run (tests/bench/README.md). Target: weir / kcat >= 0.9 both ways.

    WEIR_BUILD_DIR=build tests/bench/bench_cli.py                 # 1 GiB, 1 run
    WEIR_BUILD_DIR=build tests/bench/bench_cli.py --size 256M --runs 3 --rf 3

It starts a coordinator and three brokers on free ports (tests/support/cluster.py),
writes a file of --size bytes of text lines (--line bytes each, incompressible
printable characters), then per run: `weir produce T --file F` and
`kcat -P -l F` into two fresh topics of --partitions partitions (acks=all,
no compression: both tools' defaults), then `weir consume T --from-beginning -n N`
and `kcat -C -o beginning -e -q` of those topics to /dev/null. The median of the
runs is reported. Needs about (1 + 2 x rf) x size of free disk; the data and the
cluster are removed at exit.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * mult[s[-1].upper()]) if s[-1].upper() in mult else int(s)


def make_file(path, size, line):
    """Lines of @line bytes (newline included) of random printable text; a 16 MiB
    block repeated, which is incompressible enough for no-compression runs."""
    import random
    rnd = random.Random(12)
    alphabet = bytes(range(33, 127))
    per = line - 1
    block_lines = max(1, (16 << 20) // line)
    block = b"".join(bytes(rnd.choices(alphabet, k=per)) + b"\n" for _ in range(block_lines))
    lines = 0
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = block[:(min(left, len(block)) // line) * line] or block[:line]
            f.write(chunk)
            left -= len(chunk)
            lines += len(chunk) // line
    return lines


def timed(argv, **kw):
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=kw.pop("stdout", subprocess.DEVNULL),
                       stderr=subprocess.PIPE, timeout=kw.pop("timeout", 1800), **kw)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(argv[:4]), p.returncode,
                                                 p.stderr.decode(errors="replace")[-500:]))
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=size_arg, default=1 << 30, help="file size (default 1G)")
    ap.add_argument("--line", type=int, default=200, help="bytes per line (default 200)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--rf", type=int, default=1, help="replication factor (default 1)")
    ap.add_argument("--dir", default=None, help="where the file and the cluster live")
    a = ap.parse_args()
    weir = weir_cluster.binary("cli/weir")
    kcat = shutil.which("kcat")
    if not kcat:
        raise SystemExit("kcat is not installed (deploy/install-deps.sh)")
    root = tempfile.mkdtemp(prefix="weir-bench-cli-", dir=a.dir)
    need = a.size * (1 + 2 * a.rf) * 1.1
    free = shutil.disk_usage(root).free
    if free < need:
        shutil.rmtree(root)
        raise SystemExit("needs %.1f GiB free in %s, has %.1f" % (need / 2**30, root, free / 2**30))
    data = os.path.join(root, "input.txt")
    c = None
    try:
        n = make_file(data, a.size, a.line)
        mb = os.path.getsize(data) / 1e6
        os.mkdir(os.path.join(root, "cluster"))
        c = weir_cluster.Cluster(brokers=3, root=os.path.join(root, "cluster")).start()
        b = c.bootstrap()
        res = {"weir produce": [], "kcat -P": [], "weir consume": [], "kcat -C": []}
        for r in range(a.runs):
            tw, tk = "bw%d" % r, "bk%d" % r
            for t in (tw, tk):
                timed([weir, "-b", b, "topic", "create", t, "-p", str(a.partitions),
                       "-r", str(a.rf)])
                c.wait_topic(t, partitions=a.partitions)
            res["weir produce"].append(timed([weir, "-b", b, "produce", tw, "--file", data]))
            res["kcat -P"].append(timed([kcat, "-P", "-b", b, "-t", tk, "-l", data]))
            res["weir consume"].append(timed([weir, "-b", b, "consume", tw, "--from-beginning",
                                              "-n", str(n)]))
            res["kcat -C"].append(timed([kcat, "-C", "-b", b, "-t", tk, "-o", "beginning",
                                         "-e", "-q"]))
            for t in (tw, tk):
                timed([weir, "-b", b, "topic", "delete", t])
        med = {k: statistics.median(v) for k, v in res.items()}
        print("bench_cli: %.0f MB, %d lines of %d B, %d partitions, RF %d, %d run(s), median"
              % (mb, n, a.line, a.partitions, a.rf, a.runs))
        for k, v in med.items():
            print("  %-13s %7.2f s  %8.1f MB/s  %9.0f records/s" % (k, v, mb / v, n / v))
        print("  ratio produce weir/kcat: %.2f   consume weir/kcat: %.2f   (target >= 0.9)"
              % (med["kcat -P"] / med["weir produce"], med["kcat -C"] / med["weir consume"]))
    finally:
        if c:
            c.stop_all()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
