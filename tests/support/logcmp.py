"""logcmp: compare the replicas of a partition byte for byte up to the high watermark.

Reads the segment files <log.dirs>/<topic>-<p>/<20-digit base>.log of each broker
directly (record batch v2: 8-byte base offset, 4-byte length, then length bytes,
of which the last-offset delta sits at byte 23 of the batch), in base-offset order.
A torn batch at the end of the active segment (a write in progress) ends the scan.
Batches whose base offset is below the HW must be identical on every replica;
followers copy the leader's batches unchanged, partition leader epoch included.
"""

import glob
import os
import struct
import time


def read_batches(part_dir):
    """[(base_offset, last_offset, bytes)] of every whole batch, in file order."""
    out = []
    for path in sorted(glob.glob(os.path.join(part_dir, "*.log"))):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + 12 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if length < 49 or pos + 12 + length > len(data):
                break  # torn tail or preallocated zeros
            last = base + struct.unpack_from(">i", data, pos + 23)[0]
            out.append((base, last, data[pos:pos + 12 + length]))
            pos += 12 + length
    return out


def partition_dir(log_dir, topic, partition):
    return os.path.join(log_dir, "%s-%d" % (topic, partition))


def log_end(batches):
    return batches[-1][1] + 1 if batches else 0


def compare(replica_dirs, hw):
    """Differences between replicas below @hw: a list of strings, empty if identical.

    @replica_dirs: {name: partition directory}. Every replica must hold every batch
    with base offset < hw, byte for byte the same, and nothing else below hw.
    """
    logs = {name: [b for b in read_batches(d) if b[0] < hw] for name, d in replica_dirs.items()}
    diffs = []
    names = sorted(logs, key=str)
    ref_name = names[0]
    ref = logs[ref_name]
    for name in names:
        end = log_end(logs[name])
        if end < hw:
            diffs.append("%s ends at %d, below HW %d" % (name, end, hw))
    for name in names[1:]:
        other = logs[name]
        if len(other) != len(ref):
            diffs.append("%s has %d batches below HW %d, %s has %d" %
                         (name, len(other), hw, ref_name, len(ref)))
        for a, b in zip(ref, other):
            if a[2] != b[2]:
                diffs.append("batch at offset %d (%s) differs from offset %d (%s)" %
                             (a[0], ref_name, b[0], name))
                break
    return diffs


def wait_caught_up(replica_dirs, hw, timeout):
    """Wait until every replica's log reaches @hw; returns {name: log end} at the end."""
    deadline = time.monotonic() + timeout
    while True:
        ends = {n: log_end(read_batches(d)) for n, d in replica_dirs.items()}
        if all(e >= hw for e in ends.values()) or time.monotonic() >= deadline:
            return ends
        time.sleep(0.2)
