"""Cluster identity and stray data (architecture safety rule 7).

A broker's log directories belong to one cluster and one broker id
(meta.properties); a broker refuses, changing nothing on disk, a directory of
another broker id or a coordinator of another cluster. A coordinator gets its
cluster id once, when its data directory is formatted, and refuses a wiped one
unless told to format it. A partition directory holds its topic id
(partition.metadata); a replica is deleted only when metadata of our cluster
removed it, and a directory the metadata does not know is set aside as
"-stray" with its bytes.

Real coordinator and brokers on free ports (tests/support/cluster.py).
"""

import glob
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

ID_RE = r"[A-Za-z0-9_-]{22}"


@pytest.fixture
def make_cluster(request):
    made = []

    def make(**kw):
        c = weir_cluster.Cluster(**kw)
        made.append(c)
        c.start()
        return c

    failed_before = request.session.testsfailed
    yield make
    for c in made:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


# ---- helpers ------------------------------------------------------------------------


def tree_digest(root):
    """Every directory, file name, mode and byte under @root, as one digest."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        h.update(b"D" + os.path.relpath(dirpath, root).encode() + b"\0")
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            h.update(b"F" + os.path.relpath(p, root).encode() + b"\0%o\0" % st.st_mode)
            with open(p, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def read_props(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, sep, v = line.partition("=")
            if not sep:
                k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
    return out


def coordinator_cluster_id(c):
    return read_props(os.path.join(c.root, "coordinator", "meta.properties"))["cluster.id"]


def leader_of(c, topic, partition):
    conn = kafka_raw.Conn(*c.addr(min(c.brokers)))
    try:
        parts = kafka_raw.metadata_v9(conn, [topic])["topics"][topic]["partitions"]
        return [p for p in parts if p["partition"] == partition][0]["leader"]
    finally:
        conn.close()


def produce(c, bid, topic, values, partition=0):
    """acks=all to the partition's leader (@bid is only a hint for readers)."""
    conn = kafka_raw.Conn(*c.addr(leader_of(c, topic, partition)))
    try:
        err, _ = conn.produce(topic, partition, kafka_raw.record_batch(values), acks=-1)
        assert err == 0, "produce: error %d" % err
    finally:
        conn.close()


def create_topic_v7(c, bid, name, partitions, rf):
    """CreateTopics v7 (flexible): returns the topic id the coordinator chose, in
    Kafka's text form (22 characters of unpadded base64url)."""
    import base64

    conn = kafka_raw.Conn(*c.addr(bid))
    try:
        conn.corr += 1
        hdr = struct.pack(">hhi", 19, 7, conn.corr) + kafka_raw._string("pytest") + b"\x00"
        nb = name.encode()
        body = kafka_raw._uvarint(2)  # one topic
        body += kafka_raw._uvarint(len(nb) + 1) + nb + struct.pack(">ih", partitions, rf)
        body += kafka_raw._uvarint(1) + kafka_raw._uvarint(1) + b"\x00"  # assignments, configs, tags
        body += struct.pack(">ib", 10000, 0) + b"\x00"  # timeout, validate_only, tags
        msg = hdr + body
        conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", conn.recv_exact(4))[0]
        r = kafka_raw.FlexReader(conn.recv_exact(size))
        assert r.take(">i") == conn.corr
        r.tags()
        r.take(">i")  # throttle
        assert r.uvarint() == 2, "one topic in the answer"
        assert r.cstring() == name
        tid = r.d[r.p:r.p + 16]
        r.p += 16
        err = r.take(">h")
        assert err == 0, "CreateTopics v7: error %d" % err
    finally:
        conn.close()
    c.wait_topic(name, partitions)
    return base64.urlsafe_b64encode(tid).decode().rstrip("=")


def delete_topic(c, bid, name):
    conn = kafka_raw.Conn(*c.addr(bid))
    try:
        assert conn.delete_topics([name]) == {name: 0}
    finally:
        conn.close()


def wait_for(what, fn, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def run_refused(argv, log_path, timeout=20):
    """Run a process that must refuse to start: returns (exit code, its log)."""
    with open(log_path, "wb") as log:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                           timeout=timeout)
    with open(log_path, errors="replace") as f:
        text = f.read()
    assert b" ready: " not in p.stdout, "it started: %r" % p.stdout
    return p.returncode, text


def broker_argv(c, bid, log_dir):
    """Broker @bid's command line with log.dirs=@log_dir (the last override wins)."""
    return c._broker_proc(bid).argv + ["--override", "log.dirs=%s" % log_dir]


def stop_brokers(c):
    for bid, p in sorted(c.brokers.items()):
        assert p.stop() == 0


def segment_bytes(log_dir):
    """{partition dir/file: digest} of the segment files (.log) of every partition."""
    out = {}
    for path in glob.glob(os.path.join(log_dir, "*", "*.log")):
        with open(path, "rb") as f:
            out[os.path.relpath(path, log_dir)] = hashlib.sha256(f.read()).hexdigest()
    return out


# ---- the broker's identity --------------------------------------------------------------


def test_log_dirs_get_meta_properties_of_the_cluster_and_broker(make_cluster):
    c = make_cluster(brokers=2)
    cid = coordinator_cluster_id(c)
    assert re.fullmatch(ID_RE, cid)
    dir_ids = set()
    for bid in (1, 2):
        mp = read_props(os.path.join(c.log_dir(bid), "meta.properties"))
        assert mp["cluster.id"] == cid
        assert mp["node.id"] == str(bid)
        assert mp["version"] == "1"
        assert re.fullmatch(ID_RE, mp["directory.id"])
        dir_ids.add(mp["directory.id"])
    assert len(dir_ids) == 2
    # Kafka clients see the same cluster id.
    conn = kafka_raw.Conn(*c.addr(1))
    try:
        assert kafka_raw.metadata_v9(conn)["cluster_id"] == cid
    finally:
        conn.close()


def test_broker_refuses_a_coordinator_of_another_cluster_and_changes_nothing(make_cluster):
    c = make_cluster(brokers=1)
    old_id = coordinator_cluster_id(c)
    create_topic_v7(c, 1, "keep", 1, 1)
    produce(c, 1, "keep", [b"a", b"b", b"c"])
    stop_brokers(c)
    # The coordinator's directory is replaced by a new cluster's.
    c.coordinator.stop()
    shutil.rmtree(os.path.join(c.root, "coordinator"))
    c.restart_coordinator()
    new_id = coordinator_cluster_id(c)
    assert new_id != old_id

    before = tree_digest(c.log_dir(1))
    code, text = run_refused(broker_argv(c, 1, c.log_dir(1)), os.path.join(c.root, "refused.log"))
    assert code not in (0, None) and code > 0, "exit %r" % code
    line = [ln for ln in text.splitlines() if old_id in ln and new_id in ln]
    assert line, "no line names both cluster ids:\n" + text
    assert c.log_dir(1) in line[0], line[0]
    assert tree_digest(c.log_dir(1)) == before, "the broker changed its log dir"


def test_broker_refuses_a_log_dir_of_another_broker_id(make_cluster):
    c = make_cluster(brokers=2)
    create_topic_v7(c, 1, "mine", 2, 2)
    produce(c, 1, "mine", [b"x"] * 5)
    stop_brokers(c)
    before = tree_digest(c.log_dir(1))
    # Broker 2 pointed at broker 1's directory.
    code, text = run_refused(broker_argv(c, 2, c.log_dir(1)), os.path.join(c.root, "refused.log"))
    assert code > 0, "exit %r" % code
    line = [ln for ln in text.splitlines() if "broker 1" in ln and "broker.id 2" in ln]
    assert line and c.log_dir(1) in line[0], "no line names both ids and the dir:\n" + text
    assert tree_digest(c.log_dir(1)) == before, "the broker changed the directory"
    # Its own directory, and the coordinator, are still fine.
    c.start_broker(1)
    c.start_broker(2)


def test_wiped_coordinator_refuses_and_brokers_refuse_its_new_cluster(make_cluster):
    c = make_cluster(brokers=2)
    old_id = coordinator_cluster_id(c)
    create_topic_v7(c, 1, "precious", 2, 2)
    produce(c, 1, "precious", [b"p%d" % i for i in range(20)])
    produce(c, 1, "precious", [b"q%d" % i for i in range(20)], partition=1)
    segs = {b: segment_bytes(c.log_dir(b)) for b in (1, 2)}
    assert all(len(s) == 2 for s in segs.values()), segs

    # The coordinator's data is lost while the brokers run.
    c.coordinator.stop()
    shutil.rmtree(os.path.join(c.root, "coordinator"))
    cargv = c._coordinator_proc(format_if_empty=False).argv
    code, text = run_refused(cargv, os.path.join(c.root, "coordinator-refused.log"))
    assert code > 0 and "is not formatted" in text, text
    assert not os.path.exists(os.path.join(c.root, "coordinator")), "it created the data dir"

    # Formatted anew: a new cluster. The running brokers refuse it and stop.
    c.restart_coordinator(format_if_empty=True)
    new_id = coordinator_cluster_id(c)
    assert new_id != old_id
    for b in (1, 2):
        p = c.brokers[b]
        try:
            p.popen.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail("broker %d still runs against another cluster" % b)
        assert p.popen.returncode > 0
        p.stop()
        with open(p.log_path, errors="replace") as f:
            text = f.read()
        assert any(old_id in ln and new_id in ln for ln in text.splitlines()), text[-3000:]
        assert "deleted log" not in text and "set aside" not in text
        c.started.remove(p)  # its non-zero exit is the point of this test
        # Nothing was deleted: every segment still holds its bytes.
        assert segment_bytes(c.log_dir(b)) == segs[b]
        # And a restart is refused too.
        code, text = run_refused(broker_argv(c, b, c.log_dir(b)),
                                 os.path.join(c.root, "refused-%d.log" % b))
        assert code > 0 and old_id in text and new_id in text
        assert segment_bytes(c.log_dir(b)) == segs[b]
    del c.brokers[1], c.brokers[2]


# ---- topic ids and stray data ------------------------------------------------------------


def test_partition_metadata_holds_the_topic_id_and_recreation_is_a_new_topic(make_cluster):
    c = make_cluster(brokers=2)
    tid = create_topic_v7(c, 1, "ids", 2, 2)
    produce(c, 1, "ids", [b"old"] * 3)
    for b in (1, 2):
        for p in (0, 1):
            with open(os.path.join(c.log_dir(b), "ids-%d" % p, "partition.metadata")) as f:
                assert f.read() == "version: 0\ntopic_id: %s\n" % tid

    delete_topic(c, 1, "ids")
    tid2 = create_topic_v7(c, 1, "ids", 2, 2)
    assert tid2 != tid
    for b in (1, 2):
        d = c.log_dir(b)
        wait_for("broker %d's new log" % b, lambda: os.path.exists(
            os.path.join(d, "ids-0", "partition.metadata")) and read_props(
            os.path.join(d, "ids-0", "partition.metadata")).get("topic_id") == tid2)
        # The old topic's data was deleted (the deletion was seen), not set aside
        # and not served as the new topic's.
        assert not glob.glob(os.path.join(d, "ids-*-stray"))
    conn = kafka_raw.Conn(*c.addr(1))
    try:
        leader = kafka_raw.metadata_v9(conn, ["ids"])["topics"]["ids"]["partitions"]
    finally:
        conn.close()
    for p in leader:
        lc = kafka_raw.Conn(*c.addr(p["leader"]))
        try:
            err, _ts, end = kafka_raw.list_offsets(lc, "ids", p["partition"], -1)
            assert err == 0 and end == 0, "re-created topic has old data: %d" % end
        finally:
            lc.close()


def test_deleted_topics_replicas_are_removed(make_cluster):
    c = make_cluster(brokers=2)
    create_topic_v7(c, 1, "gone", 1, 2)
    produce(c, 1, "gone", [b"z"] * 4)
    for b in (1, 2):
        assert os.path.isdir(os.path.join(c.log_dir(b), "gone-0"))
    delete_topic(c, 1, "gone")
    for b in (1, 2):
        d = c.log_dir(b)
        wait_for("gone-0 removed on broker %d" % b,
                 lambda: not glob.glob(os.path.join(d, "gone-0*")))
        with open(c.brokers[b].log_path, errors="replace") as f:
            assert "deleted log gone-0" in f.read()


def test_log_dir_unknown_to_the_metadata_is_set_aside_with_its_bytes(make_cluster):
    c = make_cluster(brokers=1)
    create_topic_v7(c, 1, "real", 1, 1)
    produce(c, 1, "real", [b"r%d" % i for i in range(10)])
    stop_brokers(c)
    # A copy of a real log under a name the metadata has never heard of.
    ghost = os.path.join(c.log_dir(1), "ghost-0")
    shutil.copytree(os.path.join(c.log_dir(1), "real-0"), ghost)
    before = tree_digest(ghost)
    c.start_broker(1)
    d = c.log_dir(1)
    strays = wait_for("ghost-0 set aside", lambda: glob.glob(os.path.join(d, "ghost-0.*-stray")))
    assert len(strays) == 1 and not os.path.exists(ghost)
    assert tree_digest(strays[0]) == before, "the stray directory lost bytes"
    with open(c.brokers[1].log_path, errors="replace") as f:
        text = f.read()
    assert "ghost-0" in text and "set aside" in text
    assert os.path.isdir(os.path.join(d, "real-0")), "the real log was touched"

    # A restart keeps it, untouched, and says so.
    c.restart_broker(1)
    assert glob.glob(os.path.join(d, "ghost-0.*-stray")) == strays
    assert tree_digest(strays[0]) == before
    with open(c.brokers[1].log_path, errors="replace") as f:
        assert "kept stray log directory" in f.read()


def test_replica_of_a_topic_deleted_while_the_broker_was_away_is_set_aside(make_cluster):
    c = make_cluster(brokers=2)
    create_topic_v7(c, 1, "away", 1, 2)
    produce(c, 1, "away", [b"w"] * 6)
    wait_for("broker 2 has the records", lambda: segment_bytes(c.log_dir(2)) ==
             segment_bytes(c.log_dir(1)))
    assert c.brokers[2].stop() == 0
    replica = os.path.join(c.log_dir(2), "away-0")
    before = tree_digest(replica)
    delete_topic(c, 1, "away")
    c.start_broker(2)
    d = c.log_dir(2)
    strays = wait_for("away-0 set aside", lambda: glob.glob(os.path.join(d, "away-0.*-stray")))
    assert len(strays) == 1
    # Kept byte for byte, except what the broker's own shutdown wrote before
    # (nothing inside the partition directory changes when it is renamed).
    assert tree_digest(strays[0]) == before
