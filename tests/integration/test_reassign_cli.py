"""`weir reassign generate|execute|verify|cancel|list` and `weir cluster
rebalance|decommission` against a real coordinator and four brokers
(tests/support/cluster.py), with a confluent-kafka acks=all producer and a
consumer running during the moves (tests/support/checker.py); the cluster's
state is read back with raw Metadata v9 and ListPartitionReassignments
(tests/support/kafka_raw.py).
"""

import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402

pytestmark = pytest.mark.timeout(240)

BROKER = {"replica.lag.time.max.ms": "2000"}
TIMEOUT = 120

try:
    import confluent_kafka
except ImportError:  # pragma: no cover - reported by need_clients()
    confluent_kafka = None


@pytest.fixture
def cluster(request):
    """Brokers 1-3 started; the tests start broker 4 when they need it."""
    deps.require(confluent_kafka is not None, "confluent-kafka is not installed",
                 "apt-get install python3-confluent-kafka (deploy/install-deps.sh)")
    yield from weir_cluster.started(request, brokers=3, broker_overrides=BROKER)


def weir(c, *args, check=True, timeout=TIMEOUT):
    argv = [weir_cluster.binary("cli/weir"), "-b", c.bootstrap()] + list(args)
    p = subprocess.run(argv, capture_output=True, timeout=timeout, text=True)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s%s" % (" ".join(argv), p.returncode, p.stdout,
                                                     p.stderr))
    return p


def wait_for(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def metadata(c):
    b = min(b for b, p in c.brokers.items() if p.running())
    conn = kafka_raw.Conn(*c.addr(b), timeout=30)
    try:
        return conn.metadata()
    finally:
        conn.close()


def assignment(c, topics):
    md = metadata(c)["topics"]
    return {(t, p["partition"]): p for t in topics for p in md[t]["partitions"]}


def moving(c):
    b = min(b for b, p in c.brokers.items() if p.running())
    conn = kafka_raw.Conn(*c.addr(b), timeout=30)
    try:
        err, out = kafka_raw.list_partition_reassignments(conn, None)
    finally:
        conn.close()
    assert err == 0
    return out


def create(c, name, parts, rf):
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    for f in adm.create_topics([NewTopic(name, parts, rf)], request_timeout=10).values():
        assert f.result(15) is None
    c.wait_topic(name, parts)


def produce(c, topic, n, size=200, partitions=1, chk=None):
    """@n records over @partitions, acks=all; registered with @chk (a Checker)
    so that its consumer holds them to the no-loss rule too."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 20})
    for i in range(n):
        v = b"%d-" % i + b"x" * size
        if chk is not None:
            chk.register(v.decode(), i % partitions)
        while True:
            try:
                p.produce(topic, v, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


def replica_dirs(c, bid, topics):
    d = c.log_dir(bid)
    if not os.path.isdir(d):
        return []
    return sorted(x for x in os.listdir(d)
                  if any(x.startswith(t + "-") and x[len(t) + 1:].isdigit() for t in topics))


def write_plan(tmp_path, name, partitions):
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "partitions": partitions}))
    return str(path)


def test_rebalance_onto_a_new_broker_then_decommission(cluster, tmp_path):
    from checker import Checker

    c = cluster
    topics = ["ra", "rb"]
    create(c, "ra", 8, 3)
    create(c, "rb", 4, 2)
    chk = Checker(c.bootstrap(), "ra", 8, rate=150)
    produce(c, "ra", 3000, partitions=8, chk=chk)
    produce(c, "rb", 1000, partitions=4)
    c.start_broker(4)
    wait_for("broker 4 in the metadata", lambda: 4 in metadata(c)["brokers"])
    chk.start()
    try:
        chk.wait_oks(100, 30)
        out = weir(c, "cluster", "rebalance", "--throttle", "50000000", "--wait", "--timeout", "90")
        assert "Moved" in out.stdout and "Throttles removed." in out.stdout, out.stdout
        assert not moving(c)
        assert "leader.replication.throttled.rate" not in configs(c, "--broker", "4")
        # every topic counts (__consumer_offsets too, if the checker's
        # consumer created it): broker 4 holds and leads a quarter, within one
        every = list(metadata(c)["topics"])
        a = assignment(c, every)
        total = sum(len(p["replicas"]) for p in a.values())
        on4 = sum(4 in p["replicas"] for p in a.values())
        assert abs(on4 - total / 4) <= 1, (on4, total)
        assert abs(sum(p["replicas"][0] == 4 for p in a.values()) - len(a) / 4) <= 1
        wait_for("ISRs full", lambda: all(sorted(p["isr"]) == sorted(p["replicas"])
                                          for p in assignment(c, every).values()), 60)
        # --wait ends with a preferred leader election: broker 4 leads its share
        led4 = sum(p["leader"] == 4 for p in assignment(c, every).values())
        assert abs(led4 - len(a) / 4) <= 1, (led4, len(a))
        chk.wait_oks(chk.ok_count() + 200, 30)

        out = weir(c, "cluster", "decommission", "--broker", "2", "--wait", "--timeout", "90")
        assert "Moved" in out.stdout, out.stdout
        a = assignment(c, every)
        assert not any(2 in p["replicas"] for p in a.values()), a
        loads = [sum(b in p["replicas"] for p in a.values()) for b in (1, 3, 4)]
        assert max(loads) - min(loads) <= 1, loads
        wait_for("broker 2 to delete its replicas", lambda: replica_dirs(c, 2, topics) == [], 60)
        chk.wait_oks(chk.ok_count() + 200, 30)
    finally:
        r = chk.finish()
    assert not chk.violations(r), chk.summary(r)

    # a topic created now gets no replica on broker 2, and a rebalance keeps it empty
    create(c, "late", 12, 2)
    assert not any(2 in p["replicas"] for p in assignment(c, ["late"]).values())
    desc = weir(c, "config", "describe", "--broker", "2").stdout
    assert "broker.decommissioned" in desc and "true" in desc, desc
    weir(c, "cluster", "rebalance", "--wait", "--timeout", "60")
    assert not any(2 in p["replicas"] for p in assignment(c, list(metadata(c)["topics"])).values())

    # recommission: new topics may use broker 2 again; a rebalance moves replicas onto it
    out = weir(c, "cluster", "recommission", "--broker", "2")
    assert "Broker 2 takes new replicas again" in out.stdout
    create(c, "later", 12, 2)
    assert any(2 in p["replicas"] for p in assignment(c, ["later"]).values())
    weir(c, "cluster", "rebalance", "--wait", "--timeout", "90")
    every = list(metadata(c)["topics"])
    a = assignment(c, every)
    loads = [sum(b in p["replicas"] for p in a.values()) for b in (1, 2, 3, 4)]
    assert max(loads) - min(loads) <= 1, loads


def test_generate_execute_verify_list_cancel_with_a_plan_file(cluster, tmp_path):
    c = cluster
    create(c, "pf", 4, 2)
    produce(c, "pf", 2000)
    c.start_broker(4)
    wait_for("broker 4 in the metadata", lambda: 4 in metadata(c)["brokers"])
    before = {k: p["replicas"] for k, p in assignment(c, ["pf"]).items()}

    out = weir(c, "reassign", "generate", "--brokers", "1,2,3,4", "--topics", "pf")
    text = out.stdout
    assert text.startswith("Current partition replica assignment\n"), text
    cur_s, prop_s = text.split("\n\nProposed partition reassignment configuration\n")
    current = json.loads(cur_s.split("\n", 1)[1])
    proposed = json.loads(prop_s)
    assert proposed["version"] == 1 and proposed["partitions"], proposed
    for e in current["partitions"]:
        assert before[(e["topic"], e["partition"])] == e["replicas"]
    # 8 replicas over 4 brokers: broker 4 gets 2, and only those move
    after = dict(before)
    for e in proposed["partitions"]:
        after[(e["topic"], e["partition"])] = e["replicas"]
    assert sum(4 in r for r in after.values()) == 2
    moved = sum(len(set(after[k]) - set(before[k])) for k in before)
    assert moved == 2, (before, after)

    js = json.loads(weir(c, "--format", "json", "reassign", "generate", "--brokers",
                         "1,2,3,4", "--topics", "pf").stdout)
    assert js["proposed"] == proposed and js["current"] == current
    assert js["replicas_moved"] == 2

    plan = tmp_path / "plan.json"
    plan.write_text(prop_s)
    out = weir(c, "reassign", "execute", "--plan", str(plan))
    assert "Save this to use as the --plan option during rollback" in out.stdout
    assert "Started the reassignment of" in out.stdout
    wait_for("the moves to complete", lambda: not moving(c), 60)
    out = weir(c, "reassign", "verify", "--plan", str(plan))
    assert out.stdout.count("is completed.") == len(proposed["partitions"]), out.stdout
    vj = json.loads(weir(c, "--format", "json", "reassign", "verify", "--plan", str(plan)).stdout)
    assert {e["status"] for e in vj} == {"done"}

    # a move kept in progress (broker 3 paused) is listed and cancelled
    key = sorted(k for k, r in after.items() if 3 not in r)[0]
    target = [x for x in after[key] if x != 1][:1] + [3]
    if len(set(target)) < 2:
        target = [after[key][0], 3]
    c.pause_broker(3)
    try:
        mplan = write_plan(tmp_path, "m.json", [{"topic": key[0], "partition": key[1],
                                                 "replicas": target}])
        weir(c, "reassign", "execute", "--plan", mplan)
        listed = weir(c, "reassign", "list").stdout
        assert "pf" in listed and "ADDING" in listed, listed
        lj = json.loads(weir(c, "--format", "json", "reassign", "list").stdout)
        assert [(e["topic"], e["partition"]) for e in lj] == [key]
        assert 3 in lj[0]["adding_replicas"]
        v = weir(c, "reassign", "verify", "--plan", mplan, check=False)
        assert v.returncode == 1 and "still in progress" in v.stdout, v.stdout
        out = weir(c, "reassign", "cancel", "--plan", mplan)
        assert "Cancelled the reassignment of 1 partition" in out.stdout, out.stdout
        assert not moving(c)
        assert assignment(c, ["pf"])[key]["replicas"] == after[key]
        out = weir(c, "reassign", "cancel", "--all")
        assert "No partition of the cluster is being moved" in out.stdout
    finally:
        c.resume_broker(3)


def test_bad_plans_are_refused_and_nothing_moves(cluster, tmp_path):
    c = cluster
    create(c, "bad", 2, 2)
    before = {k: p["replicas"] for k, p in assignment(c, ["bad"]).items()}
    good = {"topic": "bad", "partition": 0, "replicas": [3, 1]}
    cases = {
        "unknown broker": ([good, {"topic": "bad", "partition": 1, "replicas": [1, 9]}],
                           "broker 9 is not a live registered broker"),
        "duplicate replica": ([good, {"topic": "bad", "partition": 1, "replicas": [2, 2]}],
                              "broker 2 is listed twice"),
        "empty replicas": ([good, {"topic": "bad", "partition": 1, "replicas": []}],
                           "empty replica list"),
        "unknown topic": ([good, {"topic": "nope", "partition": 0, "replicas": [1, 2]}],
                          "nope-0: UNKNOWN_TOPIC_OR_PARTITION: the topic does not exist"),
        "unknown partition": ([good, {"topic": "bad", "partition": 7, "replicas": [1, 2]}],
                              "bad-7: UNKNOWN_TOPIC_OR_PARTITION: the topic has no such partition"),
        "same partition twice": ([good, good], "bad-0 appears twice"),
    }
    for name, (partitions, msg) in cases.items():
        plan = write_plan(tmp_path, "p.json", partitions)
        p = weir(c, "reassign", "execute", "--plan", plan, check=False)
        assert p.returncode == 1, (name, p.stdout, p.stderr)
        assert msg in p.stderr, (name, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, (name, p.stderr)
        assert p.stderr.startswith("weir: reassign execute: "), p.stderr
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"version":1,"partitions":[{"topic":"bad",}]}')
    p = weir(c, "reassign", "execute", "--plan", str(bad_json), check=False)
    assert p.returncode == 1 and "line 1 column" in p.stderr and "malformed JSON" in p.stderr
    p = weir(c, "reassign", "execute", "--plan", str(tmp_path / "missing.json"), check=False)
    assert p.returncode == 1 and "missing.json" in p.stderr
    p = weir(c, "reassign", "generate", "--brokers", "1,2,9", check=False)
    assert p.returncode == 1 and "broker 9 is not a live registered broker" in p.stderr
    p = weir(c, "reassign", "generate", "--brokers", "1", "--topics", "bad", check=False)
    assert p.returncode == 1 and "only 1 brokers were given" in p.stderr
    p = weir(c, "reassign", "generate", "--brokers", "1,1", check=False)
    assert p.returncode == 2
    p = weir(c, "cluster", "decommission", "--broker", "9", check=False)
    assert p.returncode == 1 and "broker 9 is not a live registered broker" in p.stderr
    # a broker that is down is not planned around: its replicas would all move
    c.term_broker(3)
    p = weir(c, "cluster", "rebalance", check=False)
    assert p.returncode == 1 and "broker 3 holds replicas" in p.stderr, p.stderr
    c.start_broker(3)
    wait_for("broker 3 back", lambda: 3 in metadata(c)["brokers"])
    p = weir(c, "config", "set", "--broker-default", "broker.decommissioned=true", check=False)
    assert p.returncode == 1 and "per broker" in p.stderr, p.stderr
    assert not moving(c)
    assert {k: p["replicas"] for k, p in assignment(c, ["bad"]).items()} == before


def configs(c, *resource):
    out = weir(c, "--format", "json", "config", "describe", *resource).stdout
    return {e["name"]: e["value"] for e in json.loads(out)["configs"]}


def test_execute_with_a_throttle_sets_it_and_verify_removes_it(cluster, tmp_path):
    c = cluster
    create(c, "th", 2, 2)
    produce(c, "th", 20000, size=500, partitions=2)  # ~10 MB to copy
    a = assignment(c, ["th"])
    src = a[("th", 0)]["replicas"]
    dst = [b for b in (1, 2, 3) if b not in src][0]
    target = [src[0], dst]
    plan = write_plan(tmp_path, "th.json", [{"topic": "th", "partition": 0, "replicas": target}])
    out = weir(c, "reassign", "execute", "--plan", plan, "--throttle", "2000000")
    assert "Throttle set to 2000000 B/s" in out.stdout, out.stdout
    for b in (1, 2, 3):
        cfg = configs(c, "--broker", str(b))
        assert cfg["leader.replication.throttled.rate"] == "2000000", cfg
        assert cfg["follower.replication.throttled.rate"] == "2000000", cfg
    tcfg = configs(c, "--topic", "th")
    assert sorted(tcfg["leader.replication.throttled.replicas"].split(",")) == \
        sorted("0:%d" % b for b in src), tcfg
    assert tcfg["follower.replication.throttled.replicas"] == "0:%d" % dst, tcfg
    # at 2 MB/s the ~5 MB partition is still moving a second later
    time.sleep(1)
    v = weir(c, "reassign", "verify", "--plan", plan, check=False)
    assert v.returncode == 1 and "still in progress" in v.stdout, v.stdout
    assert "leader.replication.throttled.rate" in configs(c, "--broker", "1")
    wait_for("the throttled move", lambda: not moving(c), 60)
    v = weir(c, "reassign", "verify", "--plan", plan)
    assert "is completed." in v.stdout and "Throttles removed." in v.stdout, v.stdout
    for b in (1, 2, 3):
        assert "leader.replication.throttled.rate" not in configs(c, "--broker", str(b))
    tcfg = configs(c, "--topic", "th")
    assert "follower.replication.throttled.replicas" not in tcfg, tcfg
    assert assignment(c, ["th"])[("th", 0)]["replicas"] == target


def test_rebalance_wait_shows_bytes_caught_up_on_a_terminal_not_when_piped(cluster, tmp_path):
    import shutil

    tmux = shutil.which("tmux")
    deps.require(tmux is not None, "tmux is not installed", "apt-get install tmux "
                 "(deploy/install-deps.sh)")
    c = cluster
    create(c, "rp", 4, 1)
    produce(c, "rp", 8000, size=500, partitions=4)  # ~4 MB
    c.start_broker(4)
    wait_for("broker 4 in the metadata", lambda: 4 in metadata(c)["brokers"])
    weir_bin = weir_cluster.binary("cli/weir")
    done = tmp_path / "done"
    sock = "weir-rebalance-test-%d" % os.getpid()
    # A throttle keeps the move on screen for a few seconds (progress every second).
    cmd = ("%s -b %s cluster rebalance --throttle 300000 --wait --timeout 90; echo rc=$? > %s; "
           "sleep 60" % (weir_bin, c.bootstrap(), done))
    subprocess.run([tmux, "-L", sock, "new-session", "-d", "-x", "200", "-y", "30", cmd],
                   check=True, timeout=10)
    try:
        wait_for("the rebalance to finish", lambda: done.exists(), 100)
        screen = subprocess.run([tmux, "-L", sock, "capture-pane", "-p"], capture_output=True,
                                text=True, timeout=10).stdout
    finally:
        subprocess.run([tmux, "-L", sock, "kill-server"], timeout=10)
    assert done.read_text() == "rc=0\n", screen
    lines = [line for line in screen.splitlines() if line.startswith("moved ")]
    assert lines, screen
    last = lines[-1]
    assert " caught up " in last and "/s), " in last and "ETA 0s" in last, last
    # the last line counts every moved partition's bytes as caught up: X/X, X > 0
    have, want = last.split(" caught up ")[1].split(" (")[0].split("/")
    assert have == want and have not in ("0 B",), last
    # piped: no progress line at all
    p = weir(c, "cluster", "decommission", "--broker", "4", "--wait", "--timeout", "90")
    assert "Moved" in p.stdout, p.stdout
    assert "caught up" not in p.stderr and "moved " not in p.stderr, p.stderr
