"""Integration tests of weir-broker with the npm Kafka clients.

kafkajs 2.2.4 and @platformatic/kafka 1.35.0 (pinned in node/package.json and
node/package-lock.json) are installed with npm into $WEIR_BUILD_DIR/node-cache,
once per build tree: a later run reuses the install when the lock file and the
installed versions still match. Each test starts a coordinator and three brokers
(tests/support/cluster.py), runs one script from tests/integration/node/ that
creates a topic, produces keyed messages with headers and reads them back with
Fetch requests sent to each partition's leader WITHOUT a consumer group, and
checks the JSON the script prints.

Without node/npm, with a node too old for a client, or with the npm registry
unreachable before the first install, the tests skip with what is missing and how
to get it; under CI=true they fail instead (tests/support/deps.py).

The round-trip tests use no group: their point is the data path;
test_*_consumer_group run each client's group consumer (kafkajs_group.js,
platformatic_group.mjs: two members, every record once, describe/list, leave,
delete). The data path: CreateTopics, Metadata,
Produce, ListOffsets and Fetch as each client encodes and decodes them
(kafkajs: non-flexible Metadata v6 / Produce v7 / ListOffsets v3 / Fetch v11;
platformatic: flexible ApiVersions v3 / Metadata v9 / CreateTopics v7 /
Fetch v12, Produce v8, ListOffsets v5).
"""

import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402

NODE_SRC = os.path.join(HERE, "node")
STAMP = ".installed-from"
PINNED = {"kafkajs": "2.2.4", "@platformatic/kafka": "1.35.0"}
PLATFORMATIC_MIN_NODE = (20, 19, 4)
NPM_TIMEOUT = 240
OFFLINE_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ENETUNREACH", "ETIMEDOUT",
                  "ECONNRESET")
SCRIPT_TIMEOUT = 120
COUNT = 2000
PARTITIONS = 3


def node_version():
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, timeout=30).stdout
    return tuple(int(x) for x in out.decode().strip().lstrip("v").split(".")[:3])


def installed_version(cache, package):
    try:
        with open(os.path.join(cache, "node_modules", package, "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def manifest_digest():
    h = hashlib.sha256()
    for f in ("package.json", "package-lock.json"):
        with open(os.path.join(NODE_SRC, f), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def read_stamp(cache):
    try:
        with open(os.path.join(cache, STAMP)) as f:
            return f.read().strip()
    except OSError:
        return None


@pytest.fixture(scope="module")
def node_cache():
    """The npm install under the build tree, with the scripts copied next to
    node_modules (an .mjs file resolves packages from its own directory only)."""
    deps.require(node_version() is not None and shutil.which("npm") is not None,
                 "node or npm not on PATH",
                 "deploy/install-deps.sh installs them (Debian packages nodejs, npm)")
    cache = os.path.join(weir_cluster.build_dir(), "node-cache")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        # Two test runs on one build tree must not run npm in the same dir.
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Reuse the install when it was made from these very manifests (npm may
        # rewrite its copy of the lock file, so compare a stamp, not the files).
        digest = manifest_digest()
        fresh = read_stamp(cache) == digest and \
            all(installed_version(cache, p) == v for p, v in PINNED.items())
        if not fresh:
            try:
                os.unlink(os.path.join(cache, STAMP))
            except FileNotFoundError:
                pass
            for f in ("package.json", "package-lock.json"):
                shutil.copy(os.path.join(NODE_SRC, f), os.path.join(cache, f))
            try:
                p = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=cache,
                                   capture_output=True, timeout=NPM_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail("npm install did not finish within %d s" % NPM_TIMEOUT)
            err = p.stderr.decode(errors="replace")
            if p.returncode != 0 and any(code in err for code in OFFLINE_ERRORS):
                # An offline machine says nothing about the broker; any other
                # npm failure (bad pin, broken package) is a real failure.
                why = [ln for ln in err.splitlines() if any(c in ln for c in OFFLINE_ERRORS)]
                deps.require(False, "npm registry unreachable, cannot install %s (%s)" % (
                    ", ".join("%s %s" % pv for pv in PINNED.items()), why[0].strip()),
                    "run once with access to the npm registry (`npm config get registry`; "
                    "a proxy with `npm config set proxy`): the install is kept in %s and "
                    "reused offline" % cache)
            assert p.returncode == 0, "npm install failed (%d): %s" % (p.returncode, err[-2000:])
        for p, v in PINNED.items():
            assert installed_version(cache, p) == v, "%s is not %s in %s" % (p, v, cache)
        if not fresh:
            with open(os.path.join(cache, STAMP), "w") as f:
                f.write(digest + "\n")
        for f in os.listdir(NODE_SRC):
            if f.endswith((".js", ".mjs")):
                shutil.copy(os.path.join(NODE_SRC, f), os.path.join(cache, f))
    return cache


@pytest.fixture
def cluster(request):
    yield from weir_cluster.started(request, brokers=3)


def run_script(cache, script, c, topic):
    argv = ["node", script, c.bootstrap(), topic, str(COUNT), str(PARTITIONS)]
    try:
        p = subprocess.run(argv, cwd=cache, capture_output=True, timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s did not finish within %d s: %s" % (
            script, SCRIPT_TIMEOUT, (e.stderr or b"").decode(errors="replace")[-2000:]))
    assert p.returncode == 0, "%s failed (%d): %s" % (script, p.returncode,
                                                      p.stderr.decode(errors="replace")[-3000:])
    return json.loads(p.stdout)


def check_round_trip(res, origin):
    produced = res["produced"]
    assert len(produced) == COUNT
    consumed = {int(k): v for k, v in res["consumed"].items()}
    assert sorted(consumed) == list(range(PARTITIONS))
    # Fetch went to every partition's leader, and the leaders are spread over
    # all three brokers, so every broker served Produce and Fetch.
    assert sorted(v["leader"] for v in consumed.values()) == [1, 2, 3]

    high = {int(o["partition"]): int(o["high"]) for o in res["offsets"]}
    key_part = {}
    total = 0
    for part, v in consumed.items():
        msgs = v["messages"]
        total += len(msgs)
        assert msgs, "partition %d is empty" % part
        # Offsets dense from 0 to the high watermark ListOffsets reported.
        assert [m["offset"] for m in msgs] == list(range(len(msgs))), "offsets of %d" % part
        assert high[part] == len(msgs)
        # 4 KiB per-partition fetch limit against ~10 KiB batches: more than one
        # Fetch per partition, each returning at least one whole batch.
        assert v["fetches"] >= 2, "partition %d read in one fetch" % part
        for m in msgs:
            assert key_part.setdefault(m["key"], part) == part, "key %s split" % m["key"]
    assert total == COUNT

    for part, v in consumed.items():
        # Keys, values and headers intact and in produce order per partition.
        expected = [m for m in produced if key_part[m["key"]] == part]
        got = [{"key": m["key"], "value": m["value"], "headers": m["headers"]}
               for m in v["messages"]]
        assert got == expected, "partition %d differs from what was produced" % part
    assert all(m["headers"]["origin"] == origin for m in produced)

    for part, v in consumed.items():
        # A READ_COMMITTED Fetch at the end of the log waits (maxWaitTime
        # 300 ms, minBytes 1) and comes back empty with the unchanged high
        # watermark, and last stable offset = high watermark (no transactions).
        t = v["tail"]
        assert (t["errorCode"], t["records"], int(t["highWatermark"]),
                int(t["lastStableOffset"])) == (0, 0, high[part], high[part])
        assert t["elapsedMs"] >= 200, "idle fetch on %d returned at once" % part

    # The topic is deleted through the client's admin API and leaves Metadata.
    assert res["deleted"] is True

    # ListOffsets by a timestamp taken between the second and third send finds
    # the first record of the third send in every partition.
    third = {}
    for a in res["acks"]:
        if a["send"] == 2:
            third[a["partition"]] = int(a.get("baseOffset", a.get("offset")))
    assert {int(o["partition"]): int(o["offset"]) for o in res["byTime"]} == third

    # Acknowledged base offsets grow per partition and stay below the end.
    last = {}
    for a in res["acks"]:
        off = int(a.get("baseOffset", a.get("offset")))
        assert a.get("errorCode", 0) == 0
        assert off > last.get(a["partition"], -1)
        assert off < high[a["partition"]]
        last[a["partition"]] = off


def test_kafkajs_creates_produces_and_fetches_without_a_group(node_cache, cluster):
    res = run_script(node_cache, "kafkajs_roundtrip.js", cluster, "kafkajs-events")
    assert res["created"] is True
    check_round_trip(res, "kafkajs")


@pytest.fixture
def platformatic_cache(node_cache):
    """node_cache, on a node that @platformatic/kafka supports (checked before the
    cluster starts)."""
    have = node_version()
    deps.require(have >= PLATFORMATIC_MIN_NODE,
                 "@platformatic/kafka %s needs node >= %s, found %s" % (
                     PINNED["@platformatic/kafka"], ".".join(map(str, PLATFORMATIC_MIN_NODE)),
                     ".".join(map(str, have))),
                 "put a newer node first on PATH (nodejs.org or NodeSource packages; "
                 "Debian 12's nodejs is 18.x)")
    return node_cache


def test_platformatic_creates_produces_and_fetches_without_a_group(platformatic_cache, cluster):
    res = run_script(platformatic_cache, "platformatic_roundtrip.mjs", cluster,
                     "platformatic-events")
    assert res["created"] == [{"name": "platformatic-events", "partitions": PARTITIONS}]
    check_round_trip(res, "platformatic")
    # The batches come back with the codec they were produced with (none, gzip,
    # snappy, lz4): the broker stores them as sent and does not recompress.
    codecs = set()
    for v in res["consumed"].values():
        codecs.update(v["codecs"])
    assert codecs == {0, 1, 2, 3}


def test_kafkajs_idempotent_producer_produces_each_record_once(node_cache, cluster):
    """kafkajs with idempotent: true: InitProducerId v1, then Produce with the
    producer id and sequences; every record is in its partition exactly once
    and in order (read back with raw Fetch requests to the leaders)."""
    import kafka_raw

    res = run_script(node_cache, "kafkajs_idempotent.js", cluster, "kafkajs-idem")
    assert all(a.get("errorCode", 0) == 0 for a in res["acks"])
    high = {int(o["partition"]): int(o["high"]) for o in res["offsets"]}
    for part in range(PARTITIONS):
        conn = None
        for b in sorted(cluster.brokers):
            c = kafka_raw.Conn(*cluster.addr(b))
            md = kafka_raw.metadata_v9(c, ["kafkajs-idem"])["topics"]["kafkajs-idem"]
            leader = [q for q in md["partitions"] if q["partition"] == part][0]["leader"]
            c.close()
            conn = kafka_raw.Conn(*cluster.addr(leader))
            break
        got, off = [], 0
        try:
            while off < high[part]:
                err, _hw, _lso, _start, recs = kafka_raw.fetch_v12(conn, "kafkajs-idem", part, off)
                assert err == 0
                vals = [(o, v) for o, v in kafka_raw.batch_values(recs) if o >= off]
                got += [int(v) for _, v in vals]
                off = vals[-1][0] + 1 if vals else off
                # The batches carry a producer id (idempotent) and sequences.
                if recs:
                    assert struct.unpack_from(">q", recs, 43)[0] >= 0
        finally:
            conn.close()
        assert got == list(range(part, COUNT, PARTITIONS)), "partition %d" % part


def raw_leader_conn(cluster, topic, part):
    c = kafka_raw.Conn(*cluster.addr(sorted(cluster.brokers)[0]))
    try:
        md = kafka_raw.metadata_v9(c, [topic])["topics"][topic]
        leader = [q for q in md["partitions"] if q["partition"] == part][0]["leader"]
    finally:
        c.close()
    return kafka_raw.Conn(*cluster.addr(leader))


def test_platformatic_idempotent_producers_produce_once_and_retries_are_deduplicated(
        platformatic_cache, cluster):
    """Two @platformatic/kafka producers with idempotent: true, concurrently on the
    same partitions. Each asks InitProducerId with (0, 0) and must get its own
    id (with a bump of the given pair both got (0, 1) and each one's batches
    passed for the other's retries: acknowledged, never appended). Every value
    is in the log exactly once and in order per producer; the batches carry the
    producer ids; and each producer's last batch, sent again byte for byte as a
    retry would be, is answered with its original offset and not appended."""
    topic = "platformatic-idem"
    # Ids are issued from 0: take one from every broker's block first, so id 0
    # is issued and the producers' (0, 0) reaches the re-init path.
    for b in sorted(cluster.brokers):
        c = kafka_raw.Conn(*cluster.addr(b))
        try:
            assert c.init_producer_id()[0] == 0
        finally:
            c.close()
    res = run_script(platformatic_cache, "platformatic_idempotent.mjs", cluster, topic)
    pids = {name: int(v) for name, v in res["producers"].items()}
    assert pids["a"] != pids["b"] and min(pids.values()) >= 0, pids
    high = [int(h) for h in res["high"]]
    assert sum(high) == 2 * COUNT, high
    for part in range(PARTITIONS):
        conn = raw_leader_conn(cluster, topic, part)
        try:
            got, off, last_batch = [], 0, {}
            while off < high[part]:
                err, _hw, _lso, _start, recs = kafka_raw.fetch_v12(conn, topic, part, off)
                assert err == 0
                at = 0
                while at + 61 <= len(recs):
                    base, length = struct.unpack_from(">qi", recs, at)
                    size = 12 + length
                    if at + size > len(recs):
                        break
                    pid = struct.unpack_from(">q", recs, at + 43)[0]
                    assert pid in pids.values(), pid
                    last_batch[pid] = (base, recs[at:at + size])
                    at += size
                vals = [(o, v) for o, v in kafka_raw.batch_values(recs) if o >= off]
                got += [v.decode() for _, v in vals]
                off = vals[-1][0] + 1 if vals else off
            for name in ("a", "b"):
                mine = [int(v.split("-")[1]) for v in got if v.startswith(name + "-")]
                assert mine == list(range(part, COUNT, PARTITIONS)), (part, name)
            # Retries of each producer's last batch: the original offset, no append.
            for pid, (base, raw) in last_batch.items():
                assert conn.produce(topic, part, raw, acks=-1) == (0, base), (part, pid)
            err, hw, _lso, _start, _recs = kafka_raw.fetch_v12(conn, topic, part, high[part])
            assert (err, hw) == (0, high[part]), "p%d grew after the retries" % part
        finally:
            conn.close()



# ---- consumer groups (docs/consumer-groups.md) ------------------------------------------

GROUP_COUNT = 600


def run_group_script(cache, script, c, topic):
    argv = ["node", script, c.bootstrap(), topic, str(GROUP_COUNT), str(PARTITIONS + 1)]
    try:
        p = subprocess.run(argv, cwd=cache, capture_output=True, timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s did not finish within %d s: %s" % (
            script, SCRIPT_TIMEOUT, (e.stderr or b"").decode(errors="replace")[-2000:]))
    assert p.returncode == 0, "%s failed (%d): %s" % (script, p.returncode,
                                                      p.stderr.decode(errors="replace")[-3000:])
    return json.loads(p.stdout)


def check_group_run(res):
    # every record once, the partitions split between the two members
    assert sorted(res["seen"]) == list(range(GROUP_COUNT))
    a, b = res["partitionsByMember"]
    assert a and b and not set(a) & set(b)
    assert sorted(a + b) == list(range(PARTITIONS + 1))
    d = res["described"]
    assert d is not None, "the group never showed as Stable with two members"
    assert d["protocolType"] == "consumer"
    assert len(d["members"]) == 2
    assert all(m["clientHost"] == "/127.0.0.1" for m in d["members"])
    assert str(res["afterLeave"]).lower() == "empty"


def test_kafkajs_consumer_group(node_cache, cluster):
    res = run_group_script(node_cache, "kafkajs_group.js", cluster, "kafkajs-group")
    check_group_run(res)
    assert res["described"]["protocol"] == "RoundRobinAssigner"
    # a new member resumes from the committed offsets: nothing comes again
    assert res["joined"] is True
    assert res["again"] == []
    assert [g["protocolType"] for g in res["listed"]] == ["consumer"]


def test_platformatic_consumer_group(platformatic_cache, cluster):
    res = run_group_script(platformatic_cache, "platformatic_group.mjs", cluster,
                           "platformatic-group")
    check_group_run(res)
    assert [g["protocolType"] for g in res["listed"]] == ["consumer"]
    assert res["deleted"] is True
