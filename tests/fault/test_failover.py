"""Broker-failure scenarios (issue 5; reliability.md sections 1.5 and 4.3).

Each test starts a coordinator and 3 brokers, creates a topic with 3 partitions,
RF=3 and min.insync.replicas=2, runs the checker (an acks=all producer at a few
hundred values/s and a consumer reading alongside), injects one fault, heals it
and then requires: zero lost, unexpected, conflicting or misplaced values; every
replica back in the ISR; and every replica's log identical byte for byte below
the high watermark. Processes are stopped by PID and namespaces deleted, also on
failure; each test has an overall time bound (SIGALRM).

WEIR_SOAK=N runs every scenario N times with randomized timing (which partition,
kill/stop moments, durations), one line per run and a summary; WEIR_SOAK_SEED
fixes the seed. Unset (CI), each scenario runs once with fixed timing.
"""

import contextlib
import os
import random
import signal
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import checker as weir_checker  # noqa: E402
import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402
import logcmp  # noqa: E402

TOPIC = "fault"
PARTITIONS = 3
SESSION_S = 6.0  # coordinator session.timeout.ms below
LAG_S = 3.0  # broker replica.lag.time.max.ms below
COORD_OVERRIDES = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
BROKER_OVERRIDES = {"replica.lag.time.max.ms": 3000}
# Longest produce gap allowed on a partition whose leader is killed with -9. The
# issue's target is 2 s: the coordinator fences a broker whose connection closed
# after session.disconnect.timeout.ms (500 ms), elects and pushes the new leader
# (one fsync and one round trip), and librdkafka refetches metadata after
# NOT_LEADER / connection refused (fast refresh 250 ms, retry backoff 100 ms): about
# 1 s nominal. 1 s more for the sanitizer build on a shared 2-core machine.
GAP_BOUND_S = float(os.environ.get("WEIR_FAULT_GAP_S", "3.0"))
RATE = 300  # values/s
RUN_BOUND_S = 100  # one run of one scenario, setup and verification included

SOAK = int(os.environ.get("WEIR_SOAK") or 0)
RUNS = max(SOAK, 1)
SEED = int(os.environ.get("WEIR_SOAK_SEED") or time.time_ns() % 1000000)


# ---- helpers ------------------------------------------------------------------


class Run:
    """Timing choices of one run: fixed in CI, random in soak mode."""

    def __init__(self, i):
        self.rnd = random.Random(SEED * 1000 + i) if SOAK else None
        self.injections = 0

    def uniform(self, lo, hi, default):
        return self.rnd.uniform(lo, hi) if self.rnd else default

    def choice(self, seq, default):
        return self.rnd.choice(list(seq)) if self.rnd else default


@pytest.fixture(autouse=True)
def time_bound():
    """Fail a test that runs longer than its bound instead of hanging the suite."""
    bound = RUN_BOUND_S * RUNS

    def expired(signum, frame):
        raise TimeoutError("scenario exceeded its %d s bound" % bound)

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(bound)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def wait_until(pred, timeout, what, step=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as e:  # noqa: BLE001 - a broker may be down: retry
            last = e
        else:
            if last:
                return last
        time.sleep(step)
    raise AssertionError("%s not within %.0f s (last: %r)" % (what, timeout, last))


def metadata(c):
    """{partition: {"leader", "leader_epoch", "replicas", "isr"}} from a live broker."""
    last = None
    for b in sorted(c.brokers):
        p = c.brokers[b]
        if not p.running() or p.paused:
            continue
        try:
            conn = kafka_raw.Conn(*c.addr(b), timeout=3)
            try:
                t = kafka_raw.metadata_v9(conn, [TOPIC])["topics"][TOPIC]
            finally:
                conn.close()
            return {x["partition"]: x for x in t["partitions"]}
        except Exception as e:  # noqa: BLE001
            last = e
    raise RuntimeError("no broker answered Metadata: %r" % last)


def full_isr(c):
    md = metadata(c)
    ok = len(md) == PARTITIONS and all(
        x["leader"] >= 0 and sorted(x["isr"]) == sorted(x["replicas"]) and len(x["isr"]) == 3
        for x in md.values())
    return md if ok else None


def create_topic(c):
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    fs = adm.create_topics([NewTopic(TOPIC, PARTITIONS, 3,
                                     config={"min.insync.replicas": "2"})])
    for f in fs.values():
        f.result(15)
    wait_until(lambda: full_isr(c), 15, "topic %s with 3 in-sync replicas per partition" % TOPIC)


@contextlib.contextmanager
def fault_cluster(request, netns=False):
    ns = None
    if netns:
        why = weir_cluster.Netns.available()
        deps.require(why is None, "network namespaces unavailable (%s)" % why,
                     "run as root (CAP_SYS_ADMIN and CAP_NET_ADMIN) with iproute2 installed "
                     "(deploy/install-deps.sh)")
        ns = weir_cluster.Netns(["coordinator", 1, 2, 3]).start()
    c = None
    failed_before = request.session.testsfailed
    ok = False
    try:
        c = weir_cluster.Cluster(brokers=3, broker_overrides=BROKER_OVERRIDES,
                                 coordinator_overrides=COORD_OVERRIDES, netns=ns)
        c.start()
        create_topic(c)
        yield c
        ok = True
    finally:
        # Every process started, restarted ones included, must have exited 0 on
        # SIGTERM, or -9 when the scenario killed it on purpose.
        problems = []
        try:
            if c is not None:
                problems = c.finish(failed=not ok or request.session.testsfailed != failed_before)
        finally:
            if ns is not None:
                ns.close()
                assert not ns.leftovers(), "namespaces/links left: %r" % ns.leftovers()
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def verify(c, ch, label, run, extra="", after=None):
    """Heal checks: analysis, ISR back to full, replicas identical below the HW;
    @after(result) adds the scenario's own must-be-empty findings."""
    r = ch.finish()
    dead = [p.name for p in c.brokers.values() if not p.running()]
    assert not dead, "%s: crashed: %s\n%s" % (label, dead, c.tails())
    md = wait_until(lambda: full_isr(c), 20, "every replica back in the ISR")
    diffs = []
    for p in range(PARTITIONS):
        hw = r["hw"].get(p, 0)
        dirs = {b: logcmp.partition_dir(c.log_dir(b), TOPIC, p) for b in md[p]["replicas"]}
        ends = logcmp.wait_caught_up(dirs, hw, 15)
        diffs += ["p%d: %s" % (p, d) for d in logcmp.compare(dirs, hw)]
        if not all(e >= hw for e in ends.values()):
            diffs.append("p%d: replicas did not catch up to HW %d: %r" % (p, hw, ends))
    line = "%s run %d/%d: injections=%d %s logcmp=%s%s" % (
        label, run[0] + 1, RUNS, run[1].injections, ch.summary(r),
        "ok" if not diffs else "DIFF", (" " + extra) if extra else "")
    print(line)
    problems = ch.violations(r) + diffs + (after(r) if after else [])
    assert not problems, "%s: %s\n%s" % (label, problems, c.tails())
    return r


def scenario(request, label, body, netns=False, after=None, producer_conf=None):
    """Run @body RUNS times, each on a fresh cluster, and print a summary."""
    injections = 0
    t0 = time.monotonic()
    for i in range(RUNS):
        run = Run(i)
        if SOAK:
            print("%s run %d/%d: seed %d" % (label, i + 1, RUNS, SEED))
        with fault_cluster(request, netns=netns) as c:
            ch = weir_checker.Checker(c.bootstrap(), TOPIC, PARTITIONS, rate=RATE,
                                      producer_conf=producer_conf).start()
            try:
                assert ch.wait_oks(100, 15), "no produce succeeded before the fault"
                extra = body(c, ch, run) or ""
                verify(c, ch, label, (i, run), extra, after)
            finally:
                ch.abort()
        injections += run.injections
    print("%s summary: runs=%d injections=%d violations=0 seed=%s time=%.1fs" %
          (label, RUNS, injections, SEED if SOAK else "fixed", time.monotonic() - t0))


def raw_produce(addr, p, value, acks, timeout_ms=2000, before_send=None):
    """One Produce v3 of @value to TOPIC/@p with its own request timeout: the error code
    answered, or "no answer: ..." when the connection fails or stays silent."""
    body = struct.pack(">h", -1) + struct.pack(">hi", acks, timeout_ms)  # no transactional id
    body += struct.pack(">i", 1) + struct.pack(">h", len(TOPIC)) + TOPIC.encode()
    batch = kafka_raw.record_batch([value.encode()])
    body += struct.pack(">ii", 1, p) + struct.pack(">i", len(batch)) + batch
    try:
        conn = kafka_raw.Conn(*addr, timeout=timeout_ms / 1000.0 + 5)
    except OSError as e:
        return "no answer: %r" % e
    try:
        if before_send:
            conn.request(18, 0, b"")  # ApiVersions v0 queued while the broker is stopped
            before_send()
            conn.response(conn.corr)
        r = conn.response(conn.request(0, 3, body))
        topics = r.array(lambda: (r.string(), r.array(lambda: r.take(">ihqq"))))
        return topics[0][1][0][1]
    except OSError as e:
        return "no answer: %r" % e
    finally:
        conn.close()


def leader_of(c, p):
    return metadata(c)[p]["leader"]


# ---- scenarios -----------------------------------------------------------------


def test_1_kill_leader(request):
    """kill -9 a partition's leader, restart it: a new leader takes writes within the bound."""
    gaps = []

    def body(c, ch, run):
        p = run.choice(range(PARTITIONS), 0)
        victim = leader_of(c, p)
        time.sleep(run.uniform(0.5, 3, 1))
        t_kill = time.monotonic()
        c.kill9_broker(victim)
        run.injections += 1
        wait_until(lambda: leader_of(c, p) not in (victim, -1), 10, "a new leader of p%d" % p)
        assert ch.wait_oks(30, 10, partition=p), "no produce to p%d after the failover" % p
        time.sleep(max(0.0, run.uniform(1, 5, 3) - (time.monotonic() - t_kill)))
        c.start_broker(victim)
        wait_until(lambda: full_isr(c), 20, "broker %d back in the ISR" % victim)
        assert ch.wait_oks(30, 10, partition=p)
        gap = ch.max_gap(p, t_kill - 0.2, time.monotonic())
        gaps.append(gap)
        assert gap <= GAP_BOUND_S, "p%d had no successful produce for %.2f s (bound %.1f s)" % (
            p, gap, GAP_BOUND_S)
        return "p=%d victim=%d max_gap=%.2fs" % (p, victim, gap)

    scenario(request, "kill-leader", body)
    print("kill-leader max gap over %d runs: %.2f s (bound %.1f s)" % (
        len(gaps), max(gaps), GAP_BOUND_S))


def test_2_kill_follower(request):
    """kill -9 a follower; it leaves the ISR, restarts, catches up and rejoins."""

    def body(c, ch, run):
        p = run.choice(range(PARTITIONS), 0)
        md = metadata(c)[p]
        victim = run.choice([b for b in md["replicas"] if b != md["leader"]],
                            [b for b in md["replicas"] if b != md["leader"]][0])
        c.kill9_broker(victim)
        run.injections += 1
        t_kill = time.monotonic()
        wait_until(lambda: victim not in metadata(c)[p]["isr"], LAG_S + 3,
                   "broker %d out of p%d's ISR" % (victim, p))
        shrink = time.monotonic() - t_kill
        assert ch.wait_oks(30, 10, partition=p), "p%d takes no writes with 2 replicas" % p
        time.sleep(run.uniform(0.5, 5, 1.5))
        c.start_broker(victim)
        t_up = time.monotonic()
        wait_until(lambda: victim in metadata(c)[p]["isr"], 15,
                   "broker %d back in p%d's ISR" % (victim, p), step=0.05)
        rejoin = time.monotonic() - t_up
        # HW = min LEO over the ISR: a member whose log ends below it joined too early
        t_hw = time.monotonic()
        hw = ch.watermarks(time.monotonic() + 10).get(p, 0)
        t_hw = time.monotonic() - t_hw
        end = logcmp.log_end(logcmp.read_batches(
            logcmp.partition_dir(c.log_dir(victim), TOPIC, p)))
        assert end >= hw, "broker %d rejoined p%d's ISR with its log at %d, below HW %d" % (
            victim, p, end, hw)
        return "p=%d victim=%d isr_shrink=%.2fs rejoin=%.2fs leo=%d hw=%d (ListOffsets %.1fs)" % (
            p, victim, shrink, rejoin, end, hw, t_hw)

    scenario(request, "kill-follower", body)


def test_3_kill_two_of_three(request):
    """kill -9 two brokers: no acks=all produce succeeds; restart both: nothing lost."""

    def body(c, ch, run):
        victims = sorted(run.rnd.sample([1, 2, 3], 2)) if run.rnd else [1, 2]
        t_kill = time.monotonic()
        for v in victims:
            c.kill9_broker(v)
            run.injections += 1
        survivor = ({1, 2, 3} - set(victims)).pop()
        # C7 directly: a raw acks=all produce to the survivor is refused or times out
        md = wait_until(lambda: (lambda m: m if any(x["leader"] == survivor for x in m.values())
                                 else None)(metadata(c)), SESSION_S + 2,
                        "broker %d leading a partition" % survivor)
        p = min(q for q, x in md.items() if x["leader"] == survivor)
        # Once the coordinator has fenced both (ISR = the survivor alone, below
        # min.insync.replicas=2), acks=all is refused before anything is appended.
        wait_until(lambda: metadata(c)[p]["isr"] == [survivor], SESSION_S + 2,
                   "the ISR of p%d to shrink to broker %d" % (p, survivor))
        probe = "probe-%d" % run.injections
        ch.register(probe, p)
        err = raw_produce(c.addr(survivor), p, probe, acks=-1)
        assert err == 19, (
            "acks=all produce to p%d with 2 of 3 brokers down: error %r, want "
            "NOT_ENOUGH_REPLICAS (19)" % (p, err))
        down = run.uniform(3, 6, 4)
        time.sleep(max(0.0, down - (time.monotonic() - t_kill)))
        t_up = time.monotonic()
        # Acks may still land until the dead brokers leave the ISRs: the coordinator fences
        # a broker 500 ms after its connection closes (session.disconnect.timeout.ms), and
        # a record on both the survivor and the second victim is legitimately committed
        # when the first victim's removal leaves ISR = {survivor, second victim} (seen in
        # a run: one ack 0.5 s after the kill). 1 s of slack after that; then none.
        oks = ch.oks_between(t_kill + 1.5, t_up)
        errs = ch.errors_between(t_kill, t_up)
        assert oks == 0, "%d acks=all produces succeeded with 2 of 3 brokers down: %s" % (
            oks, ["p%d@%d %s %.2fs after the kill (sent %.2fs before the report)" %
                  (q, off, v, t - t_kill, lat)
                  for t, q, off, v, lat in ch.oks_detail(t_kill + 1.5, t_up)[:5]])
        for v in victims:
            c.start_broker(v)
        wait_until(lambda: full_isr(c), 25, "all replicas back in the ISR")
        assert ch.wait_oks(100, 15), "produces do not resume after the restart"
        return "victims=%s down=%.1fs errors_while_down=%d probe_p%d=%r" % (
            victims, t_up - t_kill, len(errs), p, err)

    scenario(request, "kill-two", body)


def pause_leader_long(c, ch, run):
    """Scenario 4's fault (also run with an idempotent producer, test 11)."""
    p = run.choice(range(PARTITIONS), 0)
    before = metadata(c)[p]
    victim = before["leader"]
    c.pause_broker(victim)
    run.injections += 1
    t_stop = time.monotonic()
    md = wait_until(lambda: (lambda m: m if m["leader"] not in (victim, -1) else None)(
        metadata(c)[p]), SESSION_S + 6, "a new leader of p%d while %d is stopped" % (p, victim))
    assert md["leader_epoch"] > before["leader_epoch"], (before, md)
    assert ch.wait_oks(30, 10, partition=p), "the new leader of p%d takes no writes" % p
    time.sleep(max(0.0, run.uniform(2 * SESSION_S, 2.5 * SESSION_S, 2 * SESSION_S) -
                   (time.monotonic() - t_stop)))
    # the zombie, right after SIGCONT, before or while it hears of the new epoch:
    # even acks=1 must be refused (its lease ran out during the stop)
    probe = "zombie-%d" % p
    ch.register(probe, p)
    err = raw_produce(c.addr(victim), p, probe, acks=1,
                      before_send=lambda: c.resume_broker(victim))
    c.resume_broker(victim)  # in case the probe could not even connect
    assert err != 0, "the old leader %d acknowledged a produce to p%d after SIGCONT " \
        "(epoch %d is over)" % (victim, p, before["leader_epoch"])
    wait_until(lambda: full_isr(c), 20, "broker %d back in the ISR" % victim)
    return "p=%d victim=%d epoch %d->%d stopped=%.1fs zombie_produce_error=%r" % (
        p, victim, before["leader_epoch"], md["leader_epoch"], time.monotonic() - t_stop, err)


def test_4_pause_leader_past_session(request):
    """SIGSTOP the leader beyond the session timeout: a new leader takes writes; on
    SIGCONT the zombie acknowledges nothing for its old epoch, truncates and rejoins."""

    scenario(request, "pause-leader-long", pause_leader_long)


def test_5_pause_leader_short(request):
    """SIGSTOP the leader for less than the session timeout: no leader change, no loss."""

    def body(c, ch, run):
        p = run.choice(range(PARTITIONS), 0)
        before = metadata(c)[p]
        victim = before["leader"]
        c.pause_broker(victim)
        run.injections += 1
        pause = run.uniform(1, 3, 2)
        time.sleep(pause)
        c.resume_broker(victim)
        after = metadata(c)[p]
        assert (after["leader"], after["leader_epoch"]) == (victim, before["leader_epoch"]), (
            "leader of p%d changed after a %.1f s pause: %r -> %r" % (p, pause, before, after))
        assert ch.wait_oks(30, 10, partition=p)
        return "p=%d victim=%d pause=%.1fs epoch=%d" % (p, victim, pause, after["leader_epoch"])

    scenario(request, "pause-leader-short", body)


def rolling_restart(c, ch, run):
    """Scenario 6's fault (also run with an idempotent producer, test 12)."""
    order = [1, 2, 3]
    if run.rnd:
        run.rnd.shuffle(order)
    gaps = []
    for b in order:
        t = time.monotonic()
        code = c.term_broker(b)
        run.injections += 1
        assert code == 0, "broker %d exited %r on SIGTERM" % (b, code)
        time.sleep(run.uniform(0, 2, 0.5))
        c.start_broker(b)
        wait_until(lambda: full_isr(c), 20, "broker %d back in the ISR" % b)
        assert ch.wait_oks(30, 10)
        gaps.append(max(ch.max_gap(p, t, time.monotonic()) for p in range(PARTITIONS)))
    return "order=%s max_gap=%.2fs" % (order, max(gaps))


def no_failure(r):
    if r["failed"] or r["unknown"]:
        return ["%d failed and %d unreported produces during a rolling restart (%s)" %
                (r["failed"], r["unknown"], r["error_names"])]
    return []


def test_6_rolling_restart(request):
    """SIGTERM every broker in turn (controlled shutdown): no failed produce at all."""
    scenario(request, "rolling-restart", rolling_restart, after=no_failure)


def test_7_coordinator_restart(request):
    """kill -9 the coordinator: leaders keep serving; after its restart a leader's
    failure is still handled."""

    def body(c, ch, run):
        c.kill9_coordinator()
        run.injections += 1
        t_kill = time.monotonic()
        out = run.uniform(2, 4, 3)
        time.sleep(out)
        served = [ch.oks_between(t_kill + 0.5, time.monotonic(), p) for p in range(PARTITIONS)]
        assert all(served), "partitions stopped serving without the coordinator: oks=%r" % served
        c.restart_coordinator()
        wait_until(lambda: full_isr(c), 20, "cluster whole after the coordinator restart")
        p = run.choice(range(PARTITIONS), 0)
        victim = leader_of(c, p)
        c.kill9_broker(victim)
        run.injections += 1
        wait_until(lambda: leader_of(c, p) not in (victim, -1), SESSION_S + 4,
                   "a new leader of p%d after the coordinator restart" % p)
        assert ch.wait_oks(30, 10, partition=p)
        c.start_broker(victim)
        wait_until(lambda: full_isr(c), 20, "broker %d back in the ISR" % victim)
        return "outage=%.1fs oks_during=%s then p=%d victim=%d" % (out, served, p, victim)

    scenario(request, "coordinator-restart", body)


def partition_leader(c, ch, run):
    """Scenario 8's fault (also run with an idempotent producer, test 13)."""
    p = run.choice(range(PARTITIONS), 0)
    md = metadata(c)
    leader = md[p]["leader"]
    followers = [b for b in md[p]["replicas"] if b != leader]
    for f in followers:
        c.netns.cut(leader, f)
    # The window starts once every link is cut: cutting runs commands per link,
    # slow on a loaded machine, and acks of writes replicated before the last
    # cut are legitimate.
    t_cut = time.monotonic()
    run.injections += 1
    hold = run.uniform(LAG_S + 3, LAG_S + 6, LAG_S + 3)
    time.sleep(hold)
    t_heal = time.monotonic()
    oks_p = ch.oks_between(t_cut + 0.5, t_heal, p)
    others = {q: ch.oks_between(t_cut + LAG_S + 1.5, t_heal, q) for q in range(PARTITIONS)
              if md[q]["leader"] != leader}
    c.netns.heal()
    assert oks_p == 0, "p%d acknowledged %d writes with its followers cut off" % (p, oks_p)
    assert all(others.values()), "partitions not led by %d stalled: %r" % (leader, others)
    wait_until(lambda: full_isr(c), 25, "every replica back in the ISR after the heal")
    assert ch.wait_oks(30, 10, partition=p)
    return "p=%d leader=%d cut=%.1fs oks_others=%r" % (p, leader, hold, others)


def test_8_partition_leader_from_followers(request):
    """Namespaces: cut the leader's links to its followers (coordinator links kept):
    its partition refuses acks=all once the ISR is short, the others keep going;
    heal: everything converges, nothing lost."""

    scenario(request, "partition-leader", partition_leader, netns=True)


def exactly_once(r):
    """Architecture invariant 9 for an idempotent producer: nothing duplicated or
    reordered in any partition, and every message delivered."""
    out = []
    for k in ("duplicated", "out_of_order"):
        if r[k]:
            out.append("%s=%d (e.g. %s)" % (k, len(r[k]), r[k][:5]))
    if r["failed"] or r["unknown"]:
        out.append("failed=%d unknown=%d: an idempotent producer should deliver all "
                   "(errors %r)" % (r["failed"], r["unknown"], r["error_names"]))
    return out


IDEMPOTENT = {"enable.idempotence": True}


def test_9_idempotent_producer_kill_leader(request):
    """An idempotent librdkafka producer (enable.idempotence=true) through a kill -9
    of a leader: besides the heal checks, nothing duplicated or reordered in any
    partition (architecture invariant 9) and every message delivered."""

    def body(c, ch, run):
        p = run.choice(range(PARTITIONS), 1)
        victim = leader_of(c, p)
        time.sleep(run.uniform(0.5, 3, 1))
        c.kill9_broker(victim)
        run.injections += 1
        wait_until(lambda: leader_of(c, p) not in (victim, -1), 10, "a new leader of p%d" % p)
        assert ch.wait_oks(30, 10, partition=p), "no produce to p%d after the failover" % p
        time.sleep(run.uniform(1, 4, 2))
        c.start_broker(victim)
        wait_until(lambda: full_isr(c), 20, "broker %d back in the ISR" % victim)
        assert ch.wait_oks(30, 10, partition=p)
        return "p=%d victim=%d" % (p, victim)

    scenario(request, "idempotent-kill-leader", body, after=exactly_once,
             producer_conf={"enable.idempotence": True})


def test_10_idempotent_producer_retries_after_timeouts(request):
    """SIGSTOP both followers of a partition for 2 s (less than the lag bound, so
    the ISR stays) while an idempotent producer with a 1 s request timeout writes
    to it: the leader appends, the HW cannot move, acks=all answers
    REQUEST_TIMED_OUT and librdkafka resends batches that are already in the log.
    Each resend must be recognised (original offset, appended once): nothing
    duplicated or out of order, everything delivered."""

    def body(c, ch, run):
        p = run.choice(range(PARTITIONS), 2)
        md = metadata(c)[p]
        followers = [b for b in md["replicas"] if b != md["leader"]]
        for _ in range(2):
            time.sleep(run.uniform(0.3, 1.5, 0.5))
            for b in followers:
                c.pause_broker(b)
            run.injections += 1
            time.sleep(2.0)
            for b in followers:
                c.resume_broker(b)
            assert ch.wait_oks(30, 10, partition=p), "no produce to p%d after the pause" % p
        return "p=%d followers=%s" % (p, followers)

    def exactly_once(r):
        out = []
        for k in ("duplicated", "out_of_order"):
            if r[k]:
                out.append("%s=%d (e.g. %s)" % (k, len(r[k]), r[k][:5]))
        if r["failed"] or r["unknown"]:
            out.append("failed=%d unknown=%d (errors %r)" % (r["failed"], r["unknown"],
                                                           r["error_names"]))
        return out

    scenario(request, "idempotent-retries", body, after=exactly_once,
             producer_conf={"enable.idempotence": True, "request.timeout.ms": 1000})


def test_11_idempotent_producer_pause_leader_past_session(request):
    """Scenario 4 (SIGSTOP the leader past the session timeout, a new leader, the
    zombie refused and truncated) with an idempotent producer: the batches in
    flight to the stopped leader are resent to the new one, which holds the
    producer state it followed: nothing duplicated, reordered or lost."""
    # librdkafka's idempotent producer keeps a partition's batches in order: it
    # moves to the new leader only once the requests in flight to the stopped
    # one have timed out (socket.timeout.ms, 60 s by default, capped by the
    # message timeout: longer than the scenario's 10 s for the new leader).
    scenario(request, "idempotent-pause-leader-long", pause_leader_long, after=exactly_once,
             producer_conf=dict(IDEMPOTENT, **{"socket.timeout.ms": 3000}))


def test_12_idempotent_producer_rolling_restart(request):
    """Scenario 6 (SIGTERM and restart each broker in turn) with an idempotent
    producer: every restarted broker rebuilds its producer states (snapshots plus
    the log) and each leadership move keeps them: exactly once, all delivered."""
    scenario(request, "idempotent-rolling-restart", rolling_restart, after=exactly_once,
             producer_conf=IDEMPOTENT)


def test_13_idempotent_producer_partition_leader_from_followers(request):
    """Scenario 8 (network namespaces made by the test; the leader cut from its
    followers, then healed) with an idempotent producer: exactly once, all
    delivered."""
    scenario(request, "idempotent-partition-leader", partition_leader, netns=True,
             after=exactly_once, producer_conf=IDEMPOTENT)
