"""Integration tests: dynamic broker configs (AlterConfigs and
IncrementalAlterConfigs on BROKER resources).

A value set for the cluster default (empty resource name) or for one broker
goes through the coordinator, is durable, reaches every broker by the watch
and applies without a restart: topics without an override lose old data on
the brokers whose effective log.retention.ms says so. DescribeConfigs reports
where each value comes from, with synonyms in Kafka's order.

One cluster (a coordinator and two brokers, retention checked every 200 ms,
retired segments unlinked at once) serves the module; each test leaves the
dynamic configs it set removed.
"""

import os
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402
from test_broker_configs import describe_configs_raw  # noqa: E402

RES_TOPIC, RES_BROKER = 2, 4
OP_SET, OP_DELETE = 0, 1
KERR_INVALID_CONFIG = 40
SRC_TOPIC, SRC_DYN_BROKER, SRC_DYN_DEFAULT, SRC_STATIC, SRC_DEFAULT = 1, 2, 3, 4, 5
HOUR_MS = 3600 * 1000


@pytest.fixture(scope="module")
def cluster(request):
    yield from weir_cluster.started(request, brokers=2, broker_overrides={
        "log.retention.check.interval.ms": "200",
        "log.segment.delete.delay.ms": "0",
    })


# ---- helpers ------------------------------------------------------------------------


def wait_for(cond, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("%s not reached within %.0f s" % (what, timeout))


def create_on(c, name, broker, config=None):
    """A one-partition topic whose only replica is @broker."""
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    fs = adm.create_topics([NewTopic(name, num_partitions=1, replica_assignment=[[broker]],
                                    config=config or {})],
                           request_timeout=10)
    for f in fs.values():
        assert f.result(15) is None
    c.wait_topic(name)


def produce_old(c, topic, n, age_ms=2 * HOUR_MS):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": c.bootstrap(), "linger.ms": 0, "acks": "all"})
    errors = []
    ts = int(time.time() * 1000) - age_ms
    for _ in range(n):
        p.produce(topic, b"old", timestamp=ts, on_delivery=lambda err, msg: errors.append(err))
        p.flush(15)
    assert errors == [None] * n


def watermarks(c, topic):
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "wm"})
    try:
        return cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        cons.close()


def first_segment(c, bid, topic):
    return os.path.exists(os.path.join(c.log_dir(bid), "%s-0" % topic,
                                       "00000000000000000000.log"))


def incremental(c, resources, validate_only=False, via=1):
    """IncrementalAlterConfigs v0: [(type, name, [(key, op, value)])] ->
    [(error, message, type, name)]."""
    body = struct.pack(">i", len(resources))
    for rtype, rname, ops in resources:
        body += struct.pack(">b", rtype) + kafka_raw._string(rname) + struct.pack(">i", len(ops))
        for k, op, v in ops:
            body += kafka_raw._string(k) + struct.pack(">b", op) + kafka_raw._string(v)
    body += struct.pack(">?", validate_only)
    conn = kafka_raw.Conn(*c.addr(via))
    try:
        r = conn.response(conn.request(44, 0, body))
        r.take(">i")
        out = r.array(lambda: (r.take(">h"), r.string(), r.take(">b"), r.string()))
        assert r.p == len(r.d)
        return out
    finally:
        conn.close()


def set_default(c, key, value):
    op = OP_DELETE if value is None else OP_SET
    res = incremental(c, [(RES_BROKER, "", [(key, op, value)])])
    assert res[0][0] == 0, res


def broker_entry(c, bid, key, synonyms=False):
    """DescribeConfigs v2 of broker @bid's @key, asked of that broker."""
    conn = kafka_raw.Conn(*c.addr(bid))
    try:
        out = describe_configs_raw(conn, 2, [(RES_BROKER, str(bid), [key])],
                                   include_synonyms=synonyms)
    finally:
        conn.close()
    assert out[0][0] == 0, out
    return out[0][4][key]


def topic_entry(c, bid, topic, key):
    conn = kafka_raw.Conn(*c.addr(bid))
    try:
        out = describe_configs_raw(conn, 2, [(RES_TOPIC, topic, [key])], include_synonyms=True)
    finally:
        conn.close()
    assert out[0][0] == 0, out
    return out[0][4][key]


# ---- tests -----------------------------------------------------------------------


def test_cluster_default_retention_reaches_every_broker_without_restart(cluster):
    create_on(cluster, "dd-1", 1)
    create_on(cluster, "dd-2", 2)
    create_on(cluster, "dd-keep", 1, {"retention.ms": "-1"})
    for t in ("dd-1", "dd-2", "dd-keep"):
        produce_old(cluster, t, 3)
    time.sleep(0.8)  # four retention checks on the 7-day static default
    for t in ("dd-1", "dd-2", "dd-keep"):
        assert watermarks(cluster, t) == (0, 3), t
    pids = {bid: p.pid for bid, p in cluster.brokers.items()}
    set_default(cluster, "log.retention.ms", str(HOUR_MS))
    try:
        wait_for(lambda: watermarks(cluster, "dd-1") == (3, 3), what="retention on broker 1")
        wait_for(lambda: watermarks(cluster, "dd-2") == (3, 3), what="retention on broker 2")
        assert not first_segment(cluster, 1, "dd-1")
        assert not first_segment(cluster, 2, "dd-2")
        # The topic override still wins.
        time.sleep(0.6)
        assert watermarks(cluster, "dd-keep") == (0, 3)
        assert first_segment(cluster, 1, "dd-keep")
        # Same processes: nothing restarted.
        assert {bid: p.pid for bid, p in cluster.brokers.items()} == pids
        e = topic_entry(cluster, 1, "dd-1", "retention.ms")
        assert (e["value"], e["source"]) == (str(HOUR_MS), SRC_DYN_DEFAULT)
        assert e["synonyms"][0] == ("log.retention.ms", str(HOUR_MS), SRC_DYN_DEFAULT)
        assert e["synonyms"][-1][2] == SRC_DEFAULT
    finally:
        set_default(cluster, "log.retention.ms", None)


def test_describing_the_cluster_default_lists_only_the_dynamic_defaults(cluster):
    """Kafka answers the empty broker name with the dynamic cluster defaults
    that are set, not with some broker's whole configuration."""
    def describe_default(keys=None):
        conn = kafka_raw.Conn(*cluster.addr(1))
        try:
            out = describe_configs_raw(conn, 2, [(RES_BROKER, "", keys)], include_synonyms=True)
        finally:
            conn.close()
        assert out[0][0] == 0, out
        return out[0][4]

    assert describe_default() == {}
    set_default(cluster, "log.segment.bytes", str(8 << 20))
    try:
        got = wait_for(lambda: describe_default() or None, what="the default in the describe")
        assert set(got) == {"log.segment.bytes"}, got
        e = got["log.segment.bytes"]
        assert (e["value"], e["source"]) == (str(8 << 20), SRC_DYN_DEFAULT)
        assert e["synonyms"][0] == ("log.segment.bytes", str(8 << 20), SRC_DYN_DEFAULT)
        assert e["synonyms"][-1][2] == SRC_DEFAULT
        assert describe_default(["log.retention.ms"]) == {}
    finally:
        set_default(cluster, "log.segment.bytes", None)
    wait_for(lambda: describe_default() == {}, what="the default removed")


def test_per_broker_value_beats_the_cluster_default_and_removal_falls_back(cluster):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    create_on(cluster, "pb-1", 1)
    create_on(cluster, "pb-2", 2)
    adm = KafkaAdminClient(bootstrap_servers=cluster.bootstrap(), request_timeout_ms=10000)
    try:
        # kafka-python: AlterConfigs on broker 1 (keeps its data forever).
        adm.alter_configs([ConfigResource(ConfigResourceType.BROKER, "1",
                                          configs={"log.retention.ms": "-1"})])
    finally:
        adm.close()
    try:
        wait_for(lambda: broker_entry(cluster, 1, "log.retention.ms")["value"] == "-1",
                 what="per-broker value")
        set_default(cluster, "log.retention.ms", str(HOUR_MS))
        for t in ("pb-1", "pb-2"):
            produce_old(cluster, t, 3)
        wait_for(lambda: watermarks(cluster, "pb-2") == (3, 3), what="default on broker 2")
        time.sleep(0.6)
        assert watermarks(cluster, "pb-1") == (0, 3)

        e = broker_entry(cluster, 1, "log.retention.ms", synonyms=True)
        assert (e["value"], e["source"], e["read_only"]) == ("-1", SRC_DYN_BROKER, False)
        assert e["synonyms"][:2] == [("log.retention.ms", "-1", SRC_DYN_BROKER),
                                     ("log.retention.ms", str(HOUR_MS), SRC_DYN_DEFAULT)]
        # Kafka's order: every level of log.retention.ms, then .minutes, then .hours.
        names = [s[0] for s in e["synonyms"]]
        assert names.index("log.retention.hours") > names.index("log.retention.ms")
        assert e["synonyms"][-1] == ("log.retention.hours", "168", SRC_DEFAULT)
        e2 = broker_entry(cluster, 2, "log.retention.ms")
        assert (e2["value"], e2["source"]) == (str(HOUR_MS), SRC_DYN_DEFAULT)
        # Static and default sources are still reported for untouched keys.
        e3 = broker_entry(cluster, 1, "log.retention.check.interval.ms")
        assert (e3["value"], e3["source"], e3["read_only"]) == ("200", SRC_STATIC, True)

        # confluent-kafka: removing broker 1's value (AlterConfigs replaces the
        # broker's dynamic set) falls back to the cluster default.
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.admin import ConfigResource as CR

        cadm = AdminClient({"bootstrap.servers": cluster.bootstrap()})
        fs = cadm.alter_configs([CR(CR.Type.BROKER, "1",
                                    set_config={"log.segment.bytes": "1048576"})])
        for f in fs.values():
            f.result(15)
        wait_for(lambda: watermarks(cluster, "pb-1") == (3, 3), what="fallback to the default")
        e = broker_entry(cluster, 1, "log.retention.ms")
        assert (e["value"], e["source"]) == (str(HOUR_MS), SRC_DYN_DEFAULT)
        e = broker_entry(cluster, 1, "log.segment.bytes")
        assert (e["value"], e["source"]) == ("1048576", SRC_DYN_BROKER)
    finally:
        incremental(cluster, [(RES_BROKER, "1", [("log.segment.bytes", OP_DELETE, None),
                                                 ("log.retention.ms", OP_DELETE, None)])])
        set_default(cluster, "log.retention.ms", None)
    e = broker_entry(cluster, 1, "log.retention.ms")
    assert e["source"] == SRC_DEFAULT


@pytest.mark.parametrize("name,key,value", [
    ("", "broker.id", "7"),
    ("1", "log.dirs", "/tmp/elsewhere"),
    ("", "log.retention.check.interval.ms", "1000"),
    ("", "no.such.key", "1"),
    ("", "log.segment.bytes", "10"),
    ("1", "unclean.leader.election.enable", "true"),
])
def test_static_unknown_or_invalid_keys_are_refused_naming_the_key(cluster, name, key, value):
    res = incremental(cluster, [(RES_BROKER, name, [(key, OP_SET, value)])])
    assert res[0][0] == KERR_INVALID_CONFIG, res
    assert key in res[0][1]


def test_confluent_alter_configs_refuses_a_static_key(cluster):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    adm = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    fs = adm.alter_configs([ConfigResource(ConfigResource.Type.BROKER, "2",
                                           set_config={"broker.id": "9"})])
    with pytest.raises(KafkaException) as ei:
        for f in fs.values():
            f.result(15)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "broker.id" in ei.value.args[0].str()


def test_validate_only_changes_nothing(cluster):
    create_on(cluster, "vo", 2)
    produce_old(cluster, "vo", 2)
    res = incremental(cluster, [(RES_BROKER, "", [("log.retention.ms", OP_SET, "1")])],
                      validate_only=True)
    assert res[0][0] == 0, res
    time.sleep(0.8)
    assert watermarks(cluster, "vo") == (0, 2)
    assert broker_entry(cluster, 2, "log.retention.ms")["source"] == SRC_DEFAULT
    # And a refused value is refused in validate_only mode too.
    res = incremental(cluster, [(RES_BROKER, "", [("log.retention.ms", OP_SET, "x")])],
                      validate_only=True)
    assert res[0][0] == KERR_INVALID_CONFIG


def test_dynamic_config_survives_a_coordinator_kill9(cluster):
    set_default(cluster, "log.retention.bytes", "987654321")
    try:
        wait_for(lambda: broker_entry(cluster, 2, "log.retention.bytes")["value"] == "987654321")
        cluster.kill9_coordinator()
        cluster.restart_coordinator()
        # A broker started afresh learns its state from the restarted coordinator.
        cluster.restart_broker(2)
        e = wait_for(lambda: broker_entry(cluster, 2, "log.retention.bytes"), timeout=30)
        assert (e["value"], e["source"]) == ("987654321", SRC_DYN_DEFAULT)
    finally:
        wait_for(lambda: incremental(cluster, [(RES_BROKER, "", [("log.retention.bytes",
                                                                   OP_DELETE, None)])])[0][0]
                 == 0, timeout=30, what="removal after the restart")


def test_dynamic_min_insync_replicas_refuses_acks_all_without_restart(cluster):
    from confluent_kafka import KafkaError, Producer

    create_on(cluster, "mi", 1)

    def produce_err():
        p = Producer({"bootstrap.servers": cluster.bootstrap(), "linger.ms": 0, "acks": "all",
                      "message.send.max.retries": 0})
        errs = []
        p.produce("mi", b"x", on_delivery=lambda err, msg: errs.append(err))
        p.flush(15)
        return errs[0]

    assert produce_err() is None
    set_default(cluster, "min.insync.replicas", "2")
    try:
        wait_for(lambda: broker_entry(cluster, 1, "min.insync.replicas")["value"] == "2")
        err = produce_err()
        assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, err
    finally:
        set_default(cluster, "min.insync.replicas", None)
    wait_for(lambda: broker_entry(cluster, 1, "min.insync.replicas")["source"] == SRC_DEFAULT)
    assert produce_err() is None
