"""The `weir` command-line tool (cli/, docs/operations.md) end to end against a
coordinator and three brokers (tests/support/cluster.py), compared with what
kafka-python's admin client and consumer see. Every subprocess has a timeout;
the cluster fixture stops every process it started.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402

try:
    import kafka
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.structs import OffsetAndMetadata, TopicPartition
except ImportError:  # pragma: no cover - reported by deps.require below
    kafka = None

TIMEOUT = 60


def weir_bin():
    return weir_cluster.binary("cli/weir")


def need_kafka_python():
    deps.require(kafka is not None, "kafka-python is not installed",
                 "apt-get install python3-kafka (deploy/install-deps.sh)")


def run(c, *args, stdin=None, timeout=TIMEOUT, bootstrap=None, check=True):
    """weir with -b; returns CompletedProcess (text)."""
    argv = [weir_bin(), "-b", bootstrap or c.bootstrap()] + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout,
                       text=isinstance(stdin, str) or stdin is None)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(argv), p.returncode, p.stderr))
    return p


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(request, brokers=3,
                                    broker_overrides={"replica.lag.time.max.ms": "3000"})


def admin(c):
    return KafkaAdminClient(bootstrap_servers=c.bootstrap(), request_timeout_ms=20000)


# ---- topics -----------------------------------------------------------------


def test_topic_create_describe_alter_delete_match_kafka_python_admin(cluster):
    need_kafka_python()
    out = run(cluster, "topic", "create", "orders", "-p", "3", "-r", "2",
              "-c", "retention.ms=86400000", "--config", "cleanup.policy=compact").stdout
    assert out == "Created topic orders.\n"
    cluster.wait_topic("orders", partitions=3)

    desc = json.loads(run(cluster, "topic", "describe", "orders", "--format", "json").stdout)
    assert len(desc) == 1 and desc[0]["topic"] == "orders"
    assert desc[0]["partition_count"] == 3 and desc[0]["replication_factor"] == 2
    assert desc[0]["configs"] == {"retention.ms": "86400000", "cleanup.policy": "compact"}

    a = admin(cluster)
    try:
        theirs = {p["partition"]: p for p in a.describe_topics(["orders"])[0]["partitions"]}
        for p in desc[0]["partitions"]:
            t = theirs[p["partition"]]
            assert p["leader"] == t["leader"]
            assert p["replicas"] == t["replicas"]
            assert sorted(p["isr"]) == sorted(t["isr"])
            assert p["offline_replicas"] == [] and p["leader_epoch"] >= 0
        cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "orders")])
        entries = {e[0]: e[1] for e in cfg[0].resources[0][4]}
        assert entries["retention.ms"] == "86400000"
        assert entries["cleanup.policy"] == "compact"

        text = run(cluster, "topic", "describe", "orders").stdout.splitlines()
        assert text[0].startswith("Topic: orders\tPartitionCount: 3\tReplicationFactor: 2\tConfigs: ")
        assert "retention.ms=86400000" in text[0]
        assert len(text) == 4 and all("\tLeaderEpoch: " in l and "\tIsr: " in l for l in text[1:])

        listed = json.loads(run(cluster, "topic", "list", "--format", "json").stdout)
        assert {"name": "orders", "partitions": 3, "replication_factor": 2,
                "internal": False} in listed

        assert run(cluster, "topic", "alter", "orders", "--partitions", "5").returncode == 0
        wait_for(lambda: len(a.describe_topics(["orders"])[0]["partitions"]) == 5, 20,
                 "kafka-python to see 5 partitions")

        # --if-not-exists / --if-exists make the repeat a success
        assert run(cluster, "topic", "create", "orders", "--if-not-exists").returncode == 0
        p = run(cluster, "topic", "create", "orders", check=False)
        assert p.returncode == 1 and "TOPIC_ALREADY_EXISTS" in p.stderr

        assert run(cluster, "topic", "delete", "orders").stdout == "Deleted topic orders.\n"
        wait_for(lambda: "orders" not in a.list_topics(), 20, "kafka-python to lose the topic")
        assert run(cluster, "topic", "delete", "orders", "--if-exists").returncode == 0
    finally:
        a.close()


def test_describe_filters_show_only_unhealthy_partitions(cluster):
    run(cluster, "topic", "create", "f", "-p", "2", "-r", "3")
    cluster.wait_topic("f", partitions=2)
    assert run(cluster, "topic", "describe", "--under-replicated-partitions").stdout == ""
    cluster.kill9_broker(3)

    def urp():
        return run(cluster, "topic", "describe", "--under-replicated-partitions").stdout
    wait_for(lambda: urp().count("\tTopic: f\t") == 2, 30, "2 under-replicated partitions")
    cluster.restart_broker(3)
    wait_for(lambda: urp() == "", 60, "the ISR to be full again")


# ---- produce and consume ----------------------------------------------------


def test_produce_file_with_keys_and_headers_consumes_back_byte_identical(cluster, tmp_path):
    run(cluster, "topic", "create", "lines", "-p", "1", "-r", "3")
    cluster.wait_topic("lines", partitions=1)
    lines = ["user%d:value %d with spaces, tabs\tand ünïcödé é 🙂" % (i, i) for i in range(2000)]
    lines += ["k:", "emptykey-next:", ":no key", "a:b:c"]
    src = tmp_path / "in.txt"
    src.write_bytes(("\n".join(lines) + "\n").encode())
    p = run(cluster, "produce", "lines", "--file", str(src), "--key-separator", ":",
            "-H", "source=test", "--header", "run=1", "--acks", "all", "--idempotent")
    assert p.stdout == ""
    out = run(cluster, "consume", "lines", "--from-beginning", "-n", str(len(lines)),
              "--print-key", "--key-separator", ":", stdin=None)
    assert out.stdout.encode() == src.read_bytes()

    recs = [json.loads(l) for l in run(cluster, "consume", "lines", "--offset", "earliest",
                                       "-n", "3", "--format", "json").stdout.splitlines()]
    assert [r["offset"] for r in recs] == [0, 1, 2]
    assert recs[0]["key"] == "user0" and recs[0]["value"].startswith("value 0 with")
    assert recs[0]["headers"] == [{"key": "source", "value": "test"}, {"key": "run", "value": "1"}]
    assert recs[0]["topic"] == "lines" and recs[0]["partition"] == 0 and recs[0]["timestamp"] > 0

    # --print-offset / --print-headers, and a start offset
    one = run(cluster, "consume", "lines", "-P", "0", "-o", "5", "-n", "1", "--print-offset",
              "--print-headers", "--print-key").stdout
    assert one == "Partition:0\tOffset:5\tsource:test,run:1\tuser5\t" + lines[5].split(":", 1)[1] + "\n"


def test_produce_reports_a_line_without_separator_and_exits_nonzero(cluster):
    run(cluster, "topic", "create", "sep", "-p", "1", "-r", "1")
    cluster.wait_topic("sep", partitions=1)
    p = run(cluster, "produce", "sep", "-K", ":", stdin="a:1\nnokey\nb:2\n", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == "weir: produce: line 2: no key separator ':' found"
    out = run(cluster, "consume", "sep", "--from-beginning", "-n", "2", "--print-key").stdout
    assert out == "a\t1\nb\t2\n"


def test_consume_by_timestamp(cluster):
    run(cluster, "topic", "create", "ts", "-p", "1", "-r", "1")
    cluster.wait_topic("ts", partitions=1)
    run(cluster, "produce", "ts", stdin="old1\nold2\n")
    time.sleep(0.05)
    mark = int(time.time() * 1000)
    time.sleep(0.05)
    run(cluster, "produce", "ts", stdin="new1\n")
    out = run(cluster, "consume", "ts", "-o", "@%d" % mark, "-n", "1").stdout
    assert out == "new1\n"


# ---- groups -----------------------------------------------------------------


def commit(c, group, topic, offsets):
    """Commit {partition: offset} for @group without joining it (simple commit)."""
    cons = kafka.KafkaConsumer(bootstrap_servers=c.bootstrap(), group_id=group,
                               enable_auto_commit=False)
    try:
        cons.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()})
    finally:
        cons.close()


def test_group_describe_shows_lag_after_a_partial_commit(cluster):
    need_kafka_python()
    run(cluster, "topic", "create", "lag", "-p", "2", "-r", "2")
    cluster.wait_topic("lag", partitions=2)
    run(cluster, "produce", "lag", "-P", "0", stdin="".join("a%d\n" % i for i in range(10)))
    run(cluster, "produce", "lag", "-P", "1", stdin="".join("b%d\n" % i for i in range(4)))
    commit(cluster, "billing", "lag", {0: 7, 1: 4})
    doc = json.loads(run(cluster, "group", "describe", "billing", "--format", "json").stdout)
    parts = {p["partition"]: p for p in doc[0]["partitions"]}
    assert doc[0]["state"] == "Empty"
    assert (parts[0]["current_offset"], parts[0]["log_end_offset"], parts[0]["lag"]) == (7, 10, 3)
    assert (parts[1]["current_offset"], parts[1]["log_end_offset"], parts[1]["lag"]) == (4, 4, 0)
    text = run(cluster, "group", "describe", "billing").stdout.splitlines()
    header = [l for l in text if l.startswith("GROUP ")][0].split()
    assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                      "CONSUMER-ID", "HOST", "CLIENT-ID"]
    rows = [l.split() for l in text if l.startswith("billing ")]
    assert [r[:6] for r in rows] == [["billing", "lag", "0", "7", "10", "3"],
                                     ["billing", "lag", "1", "4", "4", "0"]]
    listed = json.loads(run(cluster, "group", "list", "--format", "json").stdout)
    assert any(g["group"] == "billing" for g in listed)


def test_reset_offsets_execute_moves_the_group_and_a_consumer_starts_there(cluster):
    need_kafka_python()
    run(cluster, "topic", "create", "rs", "-p", "1", "-r", "2")
    cluster.wait_topic("rs", partitions=1)
    run(cluster, "produce", "rs", stdin="".join("m%d\n" % i for i in range(20)))
    commit(cluster, "rsg", "rs", {0: 15})
    dry = run(cluster, "group", "reset-offsets", "rsg", "--topic", "rs", "--to-offset", "4")
    assert dry.stdout.split("\n")[1].split() == ["rsg", "rs", "0", "4"]
    assert "Dry run" in dry.stderr
    cur = json.loads(run(cluster, "group", "describe", "rsg", "--format", "json").stdout)
    assert cur[0]["partitions"][0]["current_offset"] == 15
    run(cluster, "group", "reset-offsets", "rsg", "--topic", "rs", "--to-offset", "4", "--execute")
    out = run(cluster, "consume", "rs", "-g", "rsg", "-n", "2", "--print-offset").stdout
    assert out == "Partition:0\tOffset:4\tm4\nPartition:0\tOffset:5\tm5\n"
    after = json.loads(run(cluster, "group", "describe", "rsg", "--format", "json").stdout)
    assert after[0]["partitions"][0]["current_offset"] == 6  # committed on the way out
    shift = json.loads(run(cluster, "group", "reset-offsets", "rsg", "--topic", "rs",
                           "--shift-by", "-100", "--format", "json").stdout)
    assert shift["partitions"][0]["new_offset"] == 0 and shift["executed"] is False
    assert run(cluster, "group", "delete", "rsg").stdout == "Deleted group rsg.\n"


def test_sigterm_commits_what_was_printed_and_leaves_the_group(cluster):
    need_kafka_python()
    run(cluster, "topic", "create", "st", "-p", "1", "-r", "2")
    cluster.wait_topic("st", partitions=1)
    run(cluster, "produce", "st", stdin="".join("r%d\n" % i for i in range(7)))
    p = subprocess.Popen([weir_bin(), "-b", cluster.bootstrap(), "consume", "st", "-g", "stg",
                          "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(60, p.kill)  # readline() below must not block forever
    watchdog.start()
    try:
        got = [p.stdout.readline() for _ in range(7)]
        assert got == [b"r%d\n" % i for i in range(7)]
        p.terminate()
        assert p.wait(timeout=20) == 0
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "Processed a total of 7 messages" in p.stderr.read().decode()
    doc = json.loads(run(cluster, "group", "describe", "stg", "--format", "json").stdout)
    assert doc[0]["state"] == "Empty" and doc[0]["members"] == 0
    assert doc[0]["partitions"][0]["current_offset"] == 7 and doc[0]["partitions"][0]["lag"] == 0


# ---- cluster ----------------------------------------------------------------


def test_cluster_health_unhealthy_when_a_broker_is_killed_and_healthy_when_back(cluster):
    run(cluster, "topic", "create", "h", "-p", "3", "-r", "3")
    cluster.wait_topic("h", partitions=3)
    ok = run(cluster, "cluster", "health")
    assert "Healthy:                          true" in ok.stdout
    info = json.loads(run(cluster, "cluster", "info", "--format", "json").stdout)
    assert [b["id"] for b in info["brokers"]] == [1, 2, 3]
    assert all(b["state"] == "up" and b["host"] == "127.0.0.1" for b in info["brokers"])
    assert info["controller_id"] in (1, 2, 3) and len(info["cluster_id"]) == 22

    cluster.kill9_broker(2)

    def unhealthy():
        p = run(cluster, "cluster", "health", "--format", "json", check=False)
        return p.returncode == 1 and 2 in json.loads(p.stdout)["nodes_down"]
    wait_for(unhealthy, 30, "cluster health to report broker 2 down")
    p = run(cluster, "cluster", "health", check=False)
    assert p.returncode == 1 and "Healthy:                          false" in p.stdout
    assert "Nodes down:                       [2]" in p.stdout
    p = run(cluster, "cluster", "health", "--exit-when-healthy", "--timeout", "2", check=False)
    assert p.returncode == 1 and "not healthy after 2 s" in p.stderr

    cluster.restart_broker(2)
    p = run(cluster, "cluster", "health", "--exit-when-healthy", "--timeout", "60", timeout=90)
    assert "Healthy:                          true" in p.stdout


# ---- error paths and JSON ---------------------------------------------------

UNKNOWN_TOPIC_CMDS = [
    ["topic", "describe", "ghost"],
    ["topic", "alter", "ghost", "--partitions", "4"],
    ["topic", "delete", "ghost"],
    ["produce", "ghost"],
    ["consume", "ghost", "-n", "1"],
    ["config", "describe", "--topic", "ghost"],
    ["config", "set", "--topic", "ghost", "retention.ms=1"],
    ["config", "delete", "--topic", "ghost", "retention.ms"],
]

ALL_CMDS = UNKNOWN_TOPIC_CMDS + [
    ["topic", "create", "x"], ["topic", "list"], ["group", "list"], ["group", "describe", "g"],
    ["group", "delete", "g"], ["group", "reset-offsets", "g", "--topic", "x", "--to-earliest"],
    ["config", "describe", "--broker", "1"], ["cluster", "info"], ["cluster", "health"],
]


def one_line(p):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("weir: "), p.stderr
    return lines[0]


@pytest.mark.parametrize("cmd", UNKNOWN_TOPIC_CMDS, ids=lambda c: " ".join(c[:2]))
def test_unknown_topic_is_one_line_and_nonzero(cluster, cmd):
    p = run(cluster, *cmd, stdin="x\n" if cmd[0] == "produce" else None, check=False, timeout=30)
    assert p.returncode == 1
    assert "ghost" in one_line(p) and "UNKNOWN_TOPIC_OR_PARTITION" in p.stderr


@pytest.mark.parametrize("cmd", ALL_CMDS, ids=lambda c: " ".join(c[:2]))
def test_unreachable_bootstrap_server_is_one_line_and_nonzero(cmd):
    port = weir_cluster.free_port()
    argv = [weir_bin(), "--bootstrap-server", "127.0.0.1:%d" % port] + cmd
    t0 = time.time()
    p = subprocess.run(argv, input="x\n", capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    line = one_line(p)
    assert "cannot connect to any bootstrap server" in line and str(port) in line
    assert time.time() - t0 < 10


@pytest.mark.parametrize("cmd", ALL_CMDS, ids=lambda c: " ".join(c[:2]))
def test_invalid_flag_is_one_line_and_exit_2(cmd):
    p = subprocess.run([weir_bin()] + cmd + ["--no-such-flag"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2
    assert "unknown flag '--no-such-flag'" in one_line(p)


def test_help_on_every_command_has_an_example():
    for cmd in (["--help"], ["topic", "--help"], ["topic", "create", "--help"], ["produce", "--help"],
                ["consume", "--help"], ["group", "--help"], ["config", "--help"],
                ["cluster", "--help"]):
        p = subprocess.run([weir_bin()] + cmd, capture_output=True, text=True, timeout=10)
        assert p.returncode == 0 and "Example" in p.stdout and "weir " in p.stdout, cmd


def test_version_of_the_cli_broker_and_coordinator():
    """--version: the project's release and the git revision they were built from,
    the same in the three programs, exit 0 (no cluster needed)."""
    with open(os.path.join(weir_cluster.ROOT, "meson.build")) as f:
        release = re.search(r"version : '([^']+)'", f.read()).group(1)
    revisions = set()
    for rel, name in (("cli/weir", "weir"), ("broker/weir-broker", "weir-broker"),
                      ("coordinator/weir-coordinator", "weir-coordinator")):
        r = subprocess.run([weir_cluster.binary(rel), "--version"], capture_output=True,
                           text=True, timeout=TIMEOUT)
        assert r.returncode == 0 and r.stderr == ""
        m = re.fullmatch(r"(\S+) (\S+) \(git (\S+)\)\n", r.stdout)
        assert m, r.stdout
        assert m.group(1) == name and m.group(2) == release
        assert re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?|unknown|\S+-g[0-9a-f]+(-dirty)?",
                            m.group(3)), m.group(3)
        revisions.add(m.group(3))
    assert len(revisions) == 1, revisions
    # Also after the global flags, like every other word.
    r = subprocess.run([weir_bin(), "-b", "127.0.0.1:1", "--version"], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout.startswith("weir %s (git " % release)


def test_global_flags_before_or_after_the_command_words_and_env(cluster):
    run(cluster, "topic", "create", "g1", "-p", "1", "-r", "1")
    after = subprocess.run([weir_bin(), "topic", "list", "--format", "json", "-b",
                            cluster.bootstrap()], capture_output=True, text=True, timeout=30)
    env = dict(os.environ, WEIR_BROKERS=cluster.bootstrap())
    by_env = subprocess.run([weir_bin(), "--format=json", "topic", "list"], capture_output=True,
                            text=True, timeout=30, env=env)
    assert json.loads(after.stdout) == json.loads(by_env.stdout)
    assert any(t["name"] == "g1" for t in json.loads(after.stdout))
    bad = run(cluster, "-X", "no.such.setting=1", "topic", "create", "g2", check=False)
    assert bad.returncode == 1 and "no.such.setting" in one_line(bad)


def test_json_output_parses(cluster):
    run(cluster, "topic", "create", "j", "-p", "2", "-r", "2", "-c", "retention.ms=1000000")
    cluster.wait_topic("j", partitions=2)
    docs = [
        run(cluster, "--format", "json", "topic", "create", "j2").stdout,
        run(cluster, "topic", "list", "--format", "json").stdout,
        run(cluster, "topic", "describe", "j", "--format", "json").stdout,
        run(cluster, "produce", "j", "--format", "json", stdin='{"a": 1}\n"quoted\\"\n').stdout,
        run(cluster, "config", "describe", "--topic", "j", "--format", "json").stdout,
        run(cluster, "config", "set", "--topic", "j", "retention.ms=2000000",
            "--format", "json").stdout,
        run(cluster, "cluster", "info", "--format", "json").stdout,
        run(cluster, "cluster", "health", "--format", "json").stdout,
        run(cluster, "topic", "delete", "j2", "--format", "json").stdout,
    ]
    parsed = [json.loads(d) for d in docs]
    assert parsed[3]["records"] == 2 and parsed[3]["failed"] == 0
    assert {"name": "retention.ms", "value": "1000000", "source": "DYNAMIC_TOPIC_CONFIG",
            "read_only": False, "sensitive": False} in parsed[4]["configs"]
    assert parsed[7]["healthy"] is True
    recs = [json.loads(l) for l in run(cluster, "consume", "j", "--from-beginning", "-n", "2",
                                       "--format", "json").stdout.splitlines()]
    assert sorted(r["value"] for r in recs) == ['"quoted\\"', '{"a": 1}']
    # bytes that are not UTF-8 still give valid JSON
    run(cluster, "topic", "create", "jb", "-p", "1", "-r", "1")
    cluster.wait_topic("jb", partitions=1)
    run(cluster, "produce", "jb", stdin=b"\xff\xfe bin\n")
    last = run(cluster, "consume", "jb", "-o", "earliest", "-n", "1", "--format", "json")
    assert json.loads(last.stdout)["value"] == "\u00ff\u00fe bin"


def test_config_set_describe_delete_topic_and_broker_default(cluster):
    run(cluster, "topic", "create", "cf", "-p", "1", "-r", "1")
    cluster.wait_topic("cf", partitions=1)
    assert run(cluster, "config", "set", "--topic", "cf", "retention.ms=5000",
               "segment.bytes=1048576").stdout == "Completed updating config for topic cf.\n"
    rows = [l.split() for l in run(cluster, "config", "describe", "--topic", "cf").stdout.splitlines()]
    assert rows[0] == ["NAME", "VALUE", "SOURCE"]
    assert ["retention.ms", "5000", "DYNAMIC_TOPIC_CONFIG"] in rows
    run(cluster, "config", "delete", "--topic", "cf", "retention.ms")
    rows = run(cluster, "config", "describe", "--topic", "cf").stdout
    assert "retention.ms" not in rows and "segment.bytes" in rows
    p = run(cluster, "config", "set", "--topic", "cf", "no.such.key=1", check=False)
    assert p.returncode == 1 and "INVALID_CONFIG" in one_line(p)
    run(cluster, "config", "set", "--broker-default", "log.retention.ms=604800001")
    d = json.loads(run(cluster, "config", "describe", "--broker", "1", "--all",
                       "--format", "json").stdout)
    assert any(e["name"] == "log.retention.ms" and e["value"] == "604800001" for e in d["configs"])


# ---- the terminal -----------------------------------------------------------


def test_progress_line_on_a_terminal_and_not_when_piped(cluster, tmp_path):
    tmux = shutil.which("tmux")
    deps.require(tmux is not None, "tmux is not installed", "apt-get install tmux "
                 "(deploy/install-deps.sh)")
    run(cluster, "topic", "create", "big", "-p", "3", "-r", "1")
    cluster.wait_topic("big", partitions=3)
    # an input that takes ~3 s to arrive: longer than the one second before the line shows
    gen = tmp_path / "gen.py"
    gen.write_text("import sys, time\n"
                   "for i in range(30):\n"
                   "    sys.stdout.write(''.join('record %d-%d\\n' % (i, j) for j in range(5000)))\n"
                   "    sys.stdout.flush(); time.sleep(0.1)\n")
    done = tmp_path / "done"
    piped = tmp_path / "piped.txt"
    sock = "weir-cli-test-%d" % os.getpid()
    cmd = ("python3 %s | %s -b %s produce big; echo rc=$? > %s; "
           "python3 %s | %s -b %s produce big > %s 2>&1; echo rc=$? >> %s; sleep 30"
           % (gen, weir_bin(), cluster.bootstrap(), done, gen, weir_bin(), cluster.bootstrap(),
              piped, done))
    subprocess.run([tmux, "-L", sock, "new-session", "-d", "-x", "200", "-y", "20", cmd],
                   check=True, timeout=10)
    try:
        wait_for(lambda: done.exists() and done.read_text().count("rc=") == 2, 60,
                 "both produces to finish")
        screen = subprocess.run([tmux, "-L", sock, "capture-pane", "-p"], capture_output=True,
                                text=True, timeout=10).stdout
    finally:
        subprocess.run([tmux, "-L", sock, "kill-server"], timeout=10)
    assert done.read_text() == "rc=0\nrc=0\n"
    line = [l for l in screen.splitlines() if l.startswith("weir produce: ")]
    assert line, screen
    assert "150000 records" in line[-1] and " MB, " in line[-1] and "MB/s" in line[-1]
    assert piped.read_text() == ""
    got = run(cluster, "cluster", "info", "--format", "json").stdout
    assert json.loads(got)["partitions"] >= 3
