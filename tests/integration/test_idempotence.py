"""The idempotent producer (docs/idempotence.md): InitProducerId, the leader's
sequence checks on Produce, and the producer state surviving restarts and
leader changes.

Real coordinator and three brokers on free ports (tests/support/cluster.py).
Raw requests (tests/support/kafka_raw.py) drive the exact batches a retrying
producer sends; confluent-kafka (librdkafka) with enable.idempotence=true is
the real client. The librdkafka run through a leader kill -9 is in
tests/fault/test_failover.py.
"""

import glob
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59
INVALID_REQUEST = 42
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
BLOCK = 1000


def make_cluster(request, **kw):
    c = weir_cluster.Cluster(brokers=3, **kw)
    c.start()
    return c


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(request, brokers=3, broker_overrides={"replica.lag.time.max.ms": "2000"})


def wait_for(what, fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def partition_md(c, topic, p):
    for b in sorted(b for b in c.brokers if c.brokers[b].running()):
        try:
            conn = kafka_raw.Conn(*c.addr(b))
        except OSError:
            continue
        try:
            parts = kafka_raw.metadata_v9(conn, [topic])["topics"][topic]["partitions"]
            return [q for q in parts if q["partition"] == p][0]
        finally:
            conn.close()
    raise AssertionError("no broker answers")


def leader_conn(c, topic, p=0):
    leader = wait_for("a leader", lambda: partition_md(c, topic, p)["leader"] > 0 or None)
    leader = partition_md(c, topic, p)["leader"]
    return leader, kafka_raw.Conn(*c.addr(leader))


def log_end(conn, topic, p=0, want=None):
    """The latest offset (the HW); with @want, waits until the HW got there
    (acks=1 answers before the followers have the batch)."""
    def get():
        err, _ts, off = kafka_raw.list_offsets(conn, topic, p, -1)
        assert err == 0
        return off
    if want is not None:
        deadline = time.monotonic() + 10
        while get() < want and time.monotonic() < deadline:
            time.sleep(0.05)
    return get()


def read_all(conn, topic, p=0):
    """Every (offset, value) below the HW, from the leader @conn."""
    out = []
    off = 0
    while True:
        err, hw, _lso, _start, recs = kafka_raw.fetch_v12(conn, topic, p, off)
        assert err == 0, err
        vals = kafka_raw.batch_values(recs)
        vals = [(o, v) for o, v in vals if o >= off]
        out += vals
        if vals:
            off = vals[-1][0] + 1
        if off >= hw:
            return out
        if not vals:
            time.sleep(0.05)


def batch(pid, epoch, seq, values, attributes=0):
    return kafka_raw.record_batch(values, producer_id=pid, producer_epoch=epoch,
                                  base_sequence=seq, attributes=attributes)


# ---- InitProducerId ---------------------------------------------------------------


def test_init_producer_id_hands_out_distinct_ids_from_per_broker_blocks(cluster):
    seen = set()
    for bid in (1, 2, 3):
        conn = kafka_raw.Conn(*cluster.addr(bid))
        try:
            for version in (0, 1, 2, 3, 4):
                err, pid, epoch = conn.init_producer_id(version=version)
                assert err == 0 and epoch == 0, (version, err, pid, epoch)
                assert pid >= 0 and pid not in seen
                seen.add(pid)
        finally:
            conn.close()
    # Each broker draws from its own block of 1000.
    assert len({pid // BLOCK for pid in seen}) == 3


def test_init_producer_id_reinit_gets_a_fresh_id_and_transactional_ids_are_refused(cluster):
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        err, pid, epoch = conn.init_producer_id()
        assert (err, epoch) == (0, 0)
        # KIP-360 re-initialisation with the current (id, epoch): a fresh id
        # (as Kafka for non-transactional producers), never a bump that a second
        # sender of the same pair (@platformatic/kafka sends (0, 0)) would share.
        seen = {pid}
        for version in (3, 4, 3):
            err, p, e = conn.init_producer_id(producer_id=pid, producer_epoch=0, version=version)
            assert err == 0 and e == 0 and p not in seen, (p, e, seen)
            seen.add(p)
        # An id never issued gets a fresh one too.
        err, other, epoch = conn.init_producer_id(producer_id=10 ** 15, producer_epoch=3)
        assert err == 0 and other not in (pid, 10 ** 15) and epoch == 0
        for version in (0, 1, 4):
            err, p, e = conn.init_producer_id(transactional_id="txn-1", version=version)
            assert (err, p, e) == (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, -1)
    finally:
        conn.close()


def test_producer_id_blocks_survive_a_coordinator_kill(cluster):
    conn = kafka_raw.Conn(*cluster.addr(1))
    err, first, _ = conn.init_producer_id()
    conn.close()
    assert err == 0
    cluster.kill9_coordinator()
    cluster.restart_coordinator()
    # Broker 2 has no block yet: the restarted coordinator must not hand out
    # broker 1's again.
    conn = kafka_raw.Conn(*cluster.addr(2))
    try:
        def get():
            r = conn.init_producer_id()
            return r if r[0] == 0 else None
        _, pid, _ = wait_for("a producer id after the restart", get)
        assert pid // BLOCK != first // BLOCK
    finally:
        conn.close()


# ---- Produce checks ---------------------------------------------------------------------


def test_retried_batch_is_answered_with_its_original_offset_and_appended_once(cluster):
    cluster.create_topic("retry", 1, 3)
    _leader, conn = leader_conn(cluster, "retry")
    try:
        err, pid, epoch = conn.init_producer_id()
        assert err == 0
        b0 = batch(pid, epoch, 0, [b"a", b"b", b"c"])
        b1 = batch(pid, epoch, 3, [b"d"])
        assert conn.produce("retry", 0, b0, acks=-1) == (0, 0)
        assert conn.produce("retry", 0, b1, acks=-1) == (0, 3)
        # Retries, in any order, of any of the last batches: original offsets.
        assert conn.produce("retry", 0, b1, acks=-1) == (0, 3)
        assert conn.produce("retry", 0, b0, acks=1) == (0, 0)
        assert log_end(conn, "retry", want=4) == 4
        # Five more batches: the first two are then older than the last five.
        for i in range(5):
            assert conn.produce("retry", 0, batch(pid, epoch, 4 + i, [b"x%d" % i]))[0] == 0
        assert conn.produce("retry", 0, batch(pid, epoch, 8, [b"x4"])) == (0, 8)
        assert conn.produce("retry", 0, b1)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert log_end(conn, "retry", want=9) == 9
        assert [v for _, v in read_all(conn, "retry")] == \
            [b"a", b"b", b"c", b"d"] + [b"x%d" % i for i in range(5)]
    finally:
        conn.close()


def test_bad_sequences_epochs_ids_and_transactions_are_refused_without_append(cluster):
    cluster.create_topic("bad", 1, 3)
    _leader, conn = leader_conn(cluster, "bad")
    try:
        err, pid, _ = conn.init_producer_id()
        assert conn.produce("bad", 0, batch(pid, 0, 0, [b"one"])) == (0, 0)
        # A sequence jump.
        assert conn.produce("bad", 0, batch(pid, 0, 2, [b"gap"]))[0] == \
            OUT_OF_ORDER_SEQUENCE_NUMBER
        # A new epoch (librdkafka bumps it itself after a sequence gap) starts
        # at sequence 0 and fences the old one.
        assert conn.produce("bad", 0, batch(pid, 1, 5, [b"late"]))[0] == \
            OUT_OF_ORDER_SEQUENCE_NUMBER
        assert conn.produce("bad", 0, batch(pid, 1, 0, [b"two"])) == (0, 1)
        assert conn.produce("bad", 0, batch(pid, 0, 1, [b"old"]))[0] == INVALID_PRODUCER_EPOCH
        # A producer id no broker ever issued.
        assert conn.produce("bad", 0, batch(10 ** 12, 0, 0, [b"forged"]))[0] == \
            UNKNOWN_PRODUCER_ID
        # A transactional batch: transactions are not served.
        assert conn.produce("bad", 0, batch(pid, 1, 1, [b"txn"], attributes=0x10))[0] == \
            INVALID_REQUEST
        assert log_end(conn, "bad", want=2) == 2
        assert [v for _, v in read_all(conn, "bad")] == [b"one", b"two"]
        # The producer goes on where it was.
        assert conn.produce("bad", 0, batch(pid, 1, 1, [b"three"])) == (0, 2)
    finally:
        conn.close()


def test_new_leader_recognises_retries_after_leader_kill(cluster):
    cluster.create_topic("fail", 1, 3)
    leader, conn = leader_conn(cluster, "fail")
    err, pid, _ = conn.init_producer_id()
    b0 = batch(pid, 0, 0, [b"a", b"b"])
    b1 = batch(pid, 0, 2, [b"c"])
    assert conn.produce("fail", 0, b0, acks=-1) == (0, 0)
    assert conn.produce("fail", 0, b1, acks=-1) == (0, 2)
    conn.close()
    # acks=all: both followers hold the batches, and kept the producer state
    # as they appended them (one rebuild each, at the first idempotent batch).
    before = {b: rebuild_count(cluster, b) for b in (1, 2, 3) if b != leader}
    assert all(n == 1 for n in before.values()), before
    cluster.kill9_broker(leader)
    wait_for("a new leader", lambda: partition_md(cluster, "fail", 0)["leader"] not in (-1, leader))
    new, conn = leader_conn(cluster, "fail")
    try:
        assert new != leader
        def retry():
            r = conn.produce("fail", 0, b1, acks=-1)
            return r if r[0] == 0 else None
        assert wait_for("the retry to be accepted", retry) == (0, 2)
        # The new leader answered from the state it followed: no rebuild on
        # its event loop at the first produce.
        assert rebuild_count(cluster, new) == before[new], (rebuild_count(cluster, new), before)
        assert conn.produce("fail", 0, b0, acks=-1) == (0, 0)
        assert conn.produce("fail", 0, batch(pid, 0, 4, [b"gap"]))[0] == \
            OUT_OF_ORDER_SEQUENCE_NUMBER
        assert conn.produce("fail", 0, batch(pid, 0, 3, [b"d"]), acks=-1) == (0, 3)
        assert [v for _, v in read_all(conn, "fail")] == [b"a", b"b", b"c", b"d"]
    finally:
        conn.close()


def rebuild_count(c, broker):
    """How many producer-state rebuilds broker @broker logged."""
    with open(os.path.join(c.root, "broker-%d.log" % broker)) as f:
        return sum("producer state rebuilt from" in line for line in f)


def rebuilt_lines(c):
    """How broker 1's producer-state rebuilds started, in order."""
    out = []
    with open(os.path.join(c.root, "broker-1.log")) as f:
        for line in f:
            if "producer state rebuilt from the snapshot" in line:
                out.append("snapshot")
            elif "producer state rebuilt from the log" in line:
                out.append("log")
    return out


def test_state_is_rebuilt_from_snapshots_after_a_restart(request):
    failed_before = request.session.testsfailed
    c = weir_cluster.Cluster(brokers=1, broker_overrides={"log.segment.bytes": "1024"})
    c.start()
    try:
        c.create_topic("snap", 1, 1)
        conn = kafka_raw.Conn(*c.addr(1))
        err, pid, _ = conn.init_producer_id()
        batches = [batch(pid, 0, i, [b"v%03d" % i + b"." * 100]) for i in range(40)]
        for i, b in enumerate(batches):
            assert conn.produce("snap", 0, b) == (0, i)
        conn.close()
        pdir = os.path.join(c.log_dir(1), "snap-0")
        # Written and pruned to the two newest by a worker job: for a moment
        # after a write there are three.
        wait_for("two snapshots", lambda: 1 <= len(glob.glob(os.path.join(pdir, "*.snapshot")))
                 <= 2)
        c.restart_broker(1)
        c.wait_topic("snap", 1)
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            assert conn.produce("snap", 0, batches[-1]) == (0, 39)
            assert rebuilt_lines(c) == ["log", "snapshot"], rebuilt_lines(c)
            assert conn.produce("snap", 0, batches[-5]) == (0, 35)
            assert conn.produce("snap", 0, batches[-6])[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
            assert conn.produce("snap", 0, batch(pid, 0, 40, [b"next"])) == (0, 40)
        finally:
            conn.close()
        # A corrupt snapshot is dropped and the state rebuilt from the log.
        c.term_broker(1)
        for s in glob.glob(os.path.join(pdir, "*.snapshot")):
            with open(s, "r+b") as f:
                f.seek(30)
                f.write(b"\xff\xfe")
        c.start_broker(1)
        c.wait_topic("snap", 1)
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            assert conn.produce("snap", 0, batch(pid, 0, 40, [b"next"])) == (0, 40)
            assert conn.produce("snap", 0, batches[-1]) == (0, 39)
            assert conn.produce("snap", 0, batches[-6])[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
            assert conn.produce("snap", 0, batch(pid, 0, 41, [b"more"])) == (0, 41)
            assert rebuilt_lines(c) == ["log", "snapshot", "log"], rebuilt_lines(c)
        finally:
            conn.close()
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


def test_followers_write_snapshots_at_segment_roll(request):
    failed_before = request.session.testsfailed
    c = weir_cluster.Cluster(brokers=3, broker_overrides={"log.segment.bytes": "1024"})
    c.start()
    try:
        c.create_topic("fsnap", 1, 3)
        leader, conn = leader_conn(c, "fsnap")
        try:
            err, pid, _ = conn.init_producer_id()
            for i in range(40):
                b = batch(pid, 0, i, [b"v%03d" % i + b"." * 100])
                assert conn.produce("fsnap", 0, b, acks=-1) == (0, i)
        finally:
            conn.close()
        # Every replica, followers too, snapshots at its own rolls (written on
        # the worker pool, so wait for them).
        def snaps(b):
            return sorted(glob.glob(os.path.join(c.log_dir(b), "fsnap-0", "*.snapshot")))
        def temps(b):
            return glob.glob(os.path.join(c.log_dir(b), "fsnap-0", "*.tmp*"))
        # A write in progress shows as a temp file: wait until the jobs are done
        # (each leaves its snapshot renamed into place and no temp behind).
        for b in (1, 2, 3):
            wait_for("snapshots on broker %d, no write in progress" % b,
                     lambda: 1 <= len(snaps(b)) <= 2 and not temps(b))
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


def test_expired_producer_state_is_forgotten(request):
    failed_before = request.session.testsfailed
    c = weir_cluster.Cluster(brokers=1, broker_overrides={"producer.id.expiration.ms": "1500"})
    c.start()
    try:
        c.create_topic("exp", 1, 1)
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            err, pid, _ = conn.init_producer_id()
            b0 = batch(pid, 0, 0, [b"a"])
            assert conn.produce("exp", 0, b0) == (0, 0)
            assert conn.produce("exp", 0, b0) == (0, 0)  # still known: a duplicate
            time.sleep(2.6)
            # Forgotten (as Kafka after producer.id.expiration.ms): the same
            # batch is now new, and any sequence may start the producer again.
            assert conn.produce("exp", 0, b0) == (0, 1)
        finally:
            conn.close()
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


# ---- real clients ---------------------------------------------------------------------


def test_confluent_kafka_idempotent_producer_produces_and_reads_back(cluster):
    import confluent_kafka as ck  # a dependency (deploy/install-deps.sh), never a skip
    cluster.create_topic("idem", 3, 3)
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap(), "enable.idempotence": True,
                     "linger.ms": 5})
    errors = []

    def dr(err, _msg):
        if err is not None:
            errors.append(err)

    n = 3000
    for i in range(n):
        p.produce("idem", value=b"%d" % i, partition=i % 3, on_delivery=dr)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert errors == []
    for part in range(3):
        _l, conn = leader_conn(cluster, "idem", part)
        try:
            got = [int(v) for _, v in read_all(conn, "idem", part)]
        finally:
            conn.close()
        assert got == list(range(part, n, 3))
