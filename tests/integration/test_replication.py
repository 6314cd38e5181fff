"""Replication seen from a Kafka client: acks=all waits for the ISR, the high
watermark bounds what consumers see, min.insync.replicas refuses before
appending, a parked acks=all times out, OffsetForLeaderEpoch answers from the
leader-epoch cache, a Fetch that claims to be a replica is refused, and closing
a connection cancels its parked acks=all produce and fetch.

Real coordinator and brokers on free ports (tests/support/cluster.py); the
broker-failure scenarios with continuous producers are in tests/fault/.
"""

import os
import signal
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

NOT_ENOUGH_REPLICAS = 19
REQUEST_TIMED_OUT = 7


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(request, brokers=3, broker_overrides={"replica.lag.time.max.ms": "2000"})


def partition_md(c, topic, p, via=None):
    """Metadata v9 of one partition: leader, leader_epoch, replicas, isr, offline."""
    conn = kafka_raw.Conn(*c.addr(via or min(b for b in c.brokers if c.brokers[b].running())))
    try:
        parts = kafka_raw.metadata_v9(conn, [topic])["topics"][topic]["partitions"]
        return [q for q in parts if q["partition"] == p][0]
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


def latest(c, b, topic, p):
    conn = kafka_raw.Conn(*c.addr(b))
    try:
        err, _ts, off = kafka_raw.list_offsets(conn, topic, p, -1)
        assert err == 0
        return off
    finally:
        conn.close()


def segment_bytes(c, b, topic, p):
    d = os.path.join(c.root, "broker-%d" % b, "%s-%d" % (topic, p))
    return b"".join(open(os.path.join(d, f), "rb").read()
                    for f in sorted(os.listdir(d)) if f.endswith(".log"))


def test_acks_all_is_answered_once_every_isr_member_has_the_batch(cluster):
    cluster.create_topic("r3", 1, 3, {"min.insync.replicas": "2"})
    part = partition_md(cluster, "r3", 0)
    assert sorted(part["replicas"]) == [1, 2, 3] and sorted(part["isr"]) == [1, 2, 3]
    leader = part["leader"]
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        for i in range(5):
            assert conn.produce("r3", 0, kafka_raw.record_batch([b"rec-%d" % i]),
                                acks=-1) == (0, i)
    finally:
        conn.close()
    # The acknowledgement came after the HW passed the batch, i.e. after every
    # ISR member had it: the followers' logs hold the same bytes already.
    leader_log = segment_bytes(cluster, leader, "r3", 0)
    assert leader_log.count(b"rec-") == 5
    for b in cluster.brokers:
        assert segment_bytes(cluster, b, "r3", 0) == leader_log, "broker %d differs" % b
    assert latest(cluster, leader, "r3", 0) == 5


def test_min_insync_refuses_before_appending_and_freezes_the_hw(cluster):
    cluster.create_topic("mi3", 1, 3, {"min.insync.replicas": "3"})
    part = partition_md(cluster, "mi3", 0)
    leader = part["leader"]
    follower = [b for b in part["replicas"] if b != leader][0]
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        assert conn.produce("mi3", 0, kafka_raw.record_batch([b"a"]), acks=-1) == (0, 0)
    finally:
        conn.close()
    cluster.kill9_broker(follower)
    wait_for("the ISR to lose broker %d" % follower,
             lambda: follower not in partition_md(cluster, "mi3", 0, via=leader)["isr"])
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        assert conn.produce("mi3", 0, kafka_raw.record_batch([b"b"]), acks=-1)[0] == \
            NOT_ENOUGH_REPLICAS
        # refused before the append: the acks=1 record takes offset 1
        assert conn.produce("mi3", 0, kafka_raw.record_batch([b"c"]), acks=1) == (0, 1)
    finally:
        conn.close()
    # ISR 2 < min.insync 3: the HW stays where it was, consumers do not see "c"
    time.sleep(0.5)
    assert latest(cluster, leader, "mi3", 0) == 1
    cluster.start_broker(follower)
    wait_for("broker %d to rejoin the ISR" % follower,
             lambda: len(partition_md(cluster, "mi3", 0, via=leader)["isr"]) == 3)
    wait_for("the HW to pass the acks=1 record", lambda: latest(cluster, leader, "mi3", 0) == 2)


def test_acks_all_times_out_when_followers_do_not_fetch(cluster):
    cluster.create_topic("slow", 1, 3, {"min.insync.replicas": "2"})
    part = partition_md(cluster, "slow", 0)
    leader = part["leader"]
    followers = [b for b in part["replicas"] if b != leader]
    for b in followers:
        os.kill(cluster.brokers[b].pid, signal.SIGSTOP)
    try:
        conn = kafka_raw.Conn(*cluster.addr(leader))
        try:
            body = kafka_raw._string(None) + struct.pack(">hi", -1, 800)  # acks=all, 800 ms
            batch = kafka_raw.record_batch([b"parked"])
            body += struct.pack(">i", 1) + kafka_raw._string("slow")
            body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
            t0 = time.monotonic()
            r = conn.response(conn.request(0, 3, body))
            waited = time.monotonic() - t0
            topics = r.array(lambda: (r.string(), r.array(lambda: r.take(">ihqq"))))
            assert topics[0][1][0][1] == REQUEST_TIMED_OUT
            assert 0.7 <= waited < 5.0, waited
            # other requests on the same connection were not blocked meanwhile
            assert conn.metadata(["slow"])["topics"]["slow"]["partitions"][0]["leader"] == leader
        finally:
            conn.close()
    finally:
        for b in followers:
            os.kill(cluster.brokers[b].pid, signal.SIGCONT)


def test_offset_for_leader_epoch_after_a_leader_change(cluster):
    cluster.create_topic("ep", 1, 3, {"min.insync.replicas": "2"})
    part = partition_md(cluster, "ep", 0)
    first = part["leader"]
    conn = kafka_raw.Conn(*cluster.addr(first))
    try:
        for i in range(3):
            assert conn.produce("ep", 0, kafka_raw.record_batch([b"e0-%d" % i]), acks=-1)[0] == 0
    finally:
        conn.close()
    cluster.brokers[first].stop()  # controlled shutdown: leadership moves
    part = wait_for("a new leader", lambda: (lambda p: p if p["leader"] not in (first, -1)
                                              else None)(partition_md(cluster, "ep", 0)))
    second, epoch = part["leader"], part["leader_epoch"]
    assert epoch >= 1
    conn = kafka_raw.Conn(*cluster.addr(second))
    try:
        wait_for("the new leader to take writes", lambda: conn.produce(
            "ep", 0, kafka_raw.record_batch([b"e1"]), acks=-1)[0] == 0)

        def ofle(leader_epoch, current=-1):
            # OffsetForLeaderEpoch v3: replica_id, [topic [partition current epoch]]
            body = struct.pack(">i", -1) + struct.pack(">i", 1) + kafka_raw._string("ep")
            body += struct.pack(">i", 1) + struct.pack(">iii", 0, current, leader_epoch)
            r = conn.response(conn.request(23, 3, body))
            r.take(">i")  # throttle
            topics = r.array(lambda: (r.string(), r.array(lambda: r.take(">hiiq"))))
            err, p, ep, end = topics[0][1][0]
            return err, ep, end

        # epoch 0 (the first leader's) ends where the new epoch starts: offset 3
        assert ofle(0) == (0, 0, 3)
        assert ofle(epoch) == (0, epoch, latest_leo(cluster, second))
        assert ofle(0, current=epoch + 5)[0] == 75  # UNKNOWN_LEADER_EPOCH
    finally:
        conn.close()


def latest_leo(c, b):
    return latest(c, b, "ep", 0)


def test_a_fetch_that_claims_to_be_a_replica_is_refused(cluster):
    cluster.create_topic("nrep", 1, 3)
    leader = partition_md(cluster, "nrep", 0)["leader"]
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        body = kafka_raw.fetch_body("nrep", 0, 0, max_wait_ms=0)
        body = struct.pack(">i", 2) + body[4:]  # replica_id 2 instead of -1
        conn.request(1, 4, body)
        assert conn.is_closed()
    finally:
        conn.close()
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:  # the broker itself is fine
        assert conn.produce("nrep", 0, kafka_raw.record_batch([b"x"]), acks=-1) == (0, 0)
    finally:
        conn.close()


@pytest.mark.parametrize("unclean", [False, True])
def test_a_partition_without_a_live_isr_member_stays_offline_unless_unclean(cluster, unclean):
    """Clean: offline and refusing writes. Unclean: the stale replica leads,
    and the old leader truncates its divergent tail by leader epoch when it
    returns."""
    configs = {"min.insync.replicas": "1"}
    if unclean:
        configs["unclean.leader.election.enable"] = "true"
    cluster.create_topic("uc", 1, 2, configs)
    part = partition_md(cluster, "uc", 0)
    leader = part["leader"]
    follower = [b for b in part["replicas"] if b != leader][0]
    other = [b for b in cluster.brokers if b not in part["replicas"]][0]
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        assert conn.produce("uc", 0, kafka_raw.record_batch([b"both"]), acks=-1) == (0, 0)
    finally:
        conn.close()
    cluster.kill9_broker(follower)
    wait_for("the ISR to shrink to the leader",
             lambda: partition_md(cluster, "uc", 0, via=other)["isr"] == [leader])
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:  # acks=all with min.insync 1: the leader alone is enough
        assert conn.produce("uc", 0, kafka_raw.record_batch([b"leader-only"]), acks=-1) == (0, 1)
    finally:
        conn.close()
    cluster.kill9_broker(leader)
    cluster.start_broker(follower)  # its log lacks offset 1
    if not unclean:
        wait_for("the partition to go offline",
                 lambda: partition_md(cluster, "uc", 0, via=other)["leader"] == -1)
        time.sleep(1.0)  # and it stays so: the stale follower is not elected
        part = partition_md(cluster, "uc", 0, via=other)
        assert part["leader"] == -1 and part["isr"] == [leader]
        conn = kafka_raw.Conn(*cluster.addr(follower))
        try:
            assert conn.produce("uc", 0, kafka_raw.record_batch([b"x"]), acks=-1)[0] in (5, 6)
        finally:
            conn.close()
    else:
        part = wait_for("the stale follower to be elected",
                        lambda: (lambda q: q if q["leader"] == follower else None)(
                            partition_md(cluster, "uc", 0, via=other)))
        assert part["isr"] == [follower]
        conn = kafka_raw.Conn(*cluster.addr(follower))
        try:  # data loss by choice: the new leader continues from its own log end
            res = wait_for("the new leader to take writes", lambda: (lambda r: r if r[0] == 0
                                                                    else None)(conn.produce(
                "uc", 0, kafka_raw.record_batch([b"after"]), acks=-1)))
            assert res == (0, 1)
        finally:
            conn.close()
        # The old leader comes back with "leader-only" at offset 1 in epoch 0;
        # the new leader's epoch 0 ends at 1, so it truncates there (by epoch,
        # KIP-101) and copies "after": both logs end up byte-identical.
        old_log = segment_bytes(cluster, leader, "uc", 0)
        assert b"leader-only" in old_log
        cluster.start_broker(leader)
        wait_for("the old leader to rejoin the ISR",
                 lambda: sorted(partition_md(cluster, "uc", 0, via=other)["isr"]) ==
                 sorted([leader, follower]))
        wait_for("identical logs", lambda: segment_bytes(cluster, leader, "uc", 0) ==
                 segment_bytes(cluster, follower, "uc", 0))
        new_log = segment_bytes(cluster, leader, "uc", 0)
        assert b"leader-only" not in new_log and b"after" in new_log and b"both" in new_log
        ec = open(os.path.join(cluster.root, "broker-%d" % leader, "uc-0",
                               "leader-epoch-checkpoint")).read().split("\n")
        # epoch 0 from 0, then the unclean leader's epoch from offset 1 (and maybe
        # the old leader's own epoch later, once it is the preferred leader again)
        entries = [tuple(map(int, line.split())) for line in ec[2:2 + int(ec[1])]]
        assert ec[0] == "0" and entries[0] == (0, 0) and entries[1][1] == 1, ec


def test_parked_acks_all_fail_fast_when_the_isr_shrinks_below_min_insync(cluster):
    cluster.create_topic("shrink", 1, 3, {"min.insync.replicas": "2"})
    part = partition_md(cluster, "shrink", 0)
    leader = part["leader"]
    followers = [b for b in part["replicas"] if b != leader]
    for b in followers:
        os.kill(cluster.brokers[b].pid, signal.SIGSTOP)
    try:
        conn = kafka_raw.Conn(*cluster.addr(leader), timeout=30)
        try:
            body = kafka_raw._string(None) + struct.pack(">hi", -1, 20000)  # acks=all, 20 s
            batch = kafka_raw.record_batch([b"parked"])
            body += struct.pack(">i", 1) + kafka_raw._string("shrink")
            body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
            t0 = time.monotonic()
            r = conn.response(conn.request(0, 3, body))
            waited = time.monotonic() - t0
            topics = r.array(lambda: (r.string(), r.array(lambda: r.take(">ihqq"))))
            # replica.lag.time.max.ms=2000: the ISR shrinks to the leader alone,
            # below min.insync.replicas, and the parked produce is answered
            # NOT_ENOUGH_REPLICAS_AFTER_APPEND then, not at its 20 s timeout.
            assert topics[0][1][0][1] == 20
            assert waited < 8.0, waited
        finally:
            conn.close()
        assert partition_md(cluster, "shrink", 0, via=leader)["isr"] == [leader]
    finally:
        for b in followers:
            os.kill(cluster.brokers[b].pid, signal.SIGCONT)


def test_closing_a_connection_cancels_its_parked_produce_and_fetch():
    # Own cluster: debug logs show the cancellation, and the default
    # replica.lag.time.max.ms keeps the stopped followers in the ISR meanwhile.
    c = weir_cluster.Cluster(brokers=3, broker_overrides={"log.level": "debug"})
    c.start()
    ok = False
    followers = []
    try:
        c.create_topic("gone", 1, 3, {"min.insync.replicas": "2"})
        leader = partition_md(c, "gone", 0)["leader"]
        followers = [b for b in partition_md(c, "gone", 0)["replicas"] if b != leader]
        for b in followers:
            os.kill(c.brokers[b].pid, signal.SIGSTOP)
        conn = kafka_raw.Conn(*c.addr(leader))
        peer = "%s:%d" % conn.sock.getsockname()[:2]
        body = kafka_raw._string(None) + struct.pack(">hi", -1, 60000)  # acks=all, 60 s
        batch = kafka_raw.record_batch([b"orphan"])
        body += struct.pack(">i", 1) + kafka_raw._string("gone")
        body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
        conn.request(0, 3, body)
        # HW 0: nothing visible at offset 0, so the fetch parks too (60 s).
        conn.request(1, 4, kafka_raw.fetch_body("gone", 0, 0, max_wait_ms=60000))
        time.sleep(0.5)
        conn.close()
        log = os.path.join(c.root, "broker-%d.log" % leader)
        line = "connection from %s closed: 2 waits cancelled" % peer
        wait_for("the cancellation log line",
                 lambda: line in open(log, errors="replace").read(), timeout=10)
        for b in followers:
            os.kill(c.brokers[b].pid, signal.SIGCONT)
        followers = []
        # The purgatories carry on: a new acks=all produce parks and is answered
        # when the HW passes it; the orphaned record kept offset 0.
        conn = kafka_raw.Conn(*c.addr(leader), timeout=20)
        try:
            assert conn.produce("gone", 0, kafka_raw.record_batch([b"next"]), acks=-1) == (0, 1)
        finally:
            conn.close()
        ok = True
    finally:
        for b in followers:
            os.kill(c.brokers[b].pid, signal.SIGCONT)
        codes = c.stop_all()
        if not ok:
            print("\nlogs kept in %s\n%s" % (c.root, c.tails()))
        else:
            c.cleanup()
    assert all(v in (0, None) for v in codes.values()), codes
