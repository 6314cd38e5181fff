"""Integration tests of DescribeConfigs (32) and DescribeCluster (60).

One cluster (a coordinator and two brokers, with a broker-level retention
override so that derived topic defaults have a visible source) serves every
test of this module; each test uses its own topic names.
"""

import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import kafka_raw  # noqa: E402

RETENTION_BYTES = "123456789"  # broker-level log.retention.bytes, see the fixture
SRC_TOPIC, SRC_STATIC, SRC_DEFAULT = 1, 4, 5


@pytest.fixture(scope="module")
def cluster(request):
    yield from weir_cluster.started(request, brokers=2, broker_overrides={"log.retention.bytes": RETENTION_BYTES})


def create_with_retention(c, name, retention_ms):
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient({"bootstrap.servers": c.bootstrap()})
    fs = adm.create_topics([NewTopic(name, 1, 1, config={"retention.ms": retention_ms})],
                           request_timeout=10)
    for f in fs.values():
        assert f.result(15) is None
    c.wait_topic(name)


# ---- raw requests ----------------------------------------------------------------


def describe_configs_raw(conn, version, resources, include_synonyms=False):
    """DescribeConfigs v0-2 (not flexible). @resources: [(type, name, keys or None)].
    Returns [(error, message, type, name, {key: entry})]."""
    body = struct.pack(">i", len(resources))
    for rtype, rname, keys in resources:
        body += struct.pack(">b", rtype) + kafka_raw._string(rname)
        if keys is None:
            body += struct.pack(">i", -1)
        else:
            body += struct.pack(">i", len(keys)) + b"".join(kafka_raw._string(k) for k in keys)
    if version >= 1:
        body += struct.pack(">?", include_synonyms)
    r = conn.response(conn.request(32, version, body))
    r.take(">i")  # throttle

    def config():
        e = {"name": r.string(), "value": r.string(), "read_only": r.take(">?")}
        if version == 0:
            e["is_default"] = r.take(">?")
        else:
            e["source"] = r.take(">b")
        e["sensitive"] = r.take(">?")
        if version >= 1:
            e["synonyms"] = r.array(lambda: (r.string(), r.string(), r.take(">b")))
        return e

    def result():
        err = r.take(">h")
        msg = r.string()
        rtype = r.take(">b")
        rname = r.string()
        entries = r.array(config)
        return err, msg, rtype, rname, {e["name"]: e for e in entries}

    out = r.array(result)
    assert r.p == len(r.d), "%d trailing bytes" % (len(r.d) - r.p)
    return out


def describe_cluster_raw(conn, version, include_ops=False, endpoint_type=1):
    """DescribeCluster v0-1 (flexible: request header v2, response header v1)."""
    conn.corr += 1
    hdr = struct.pack(">hhi", 60, version, conn.corr) + kafka_raw._string("pytest") + b"\x00"
    body = struct.pack(">?", include_ops)
    if version >= 1:
        body += struct.pack(">b", endpoint_type)
    body += b"\x00"
    msg = hdr + body
    conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", conn.recv_exact(4))[0]
    data = conn.recv_exact(size)
    r = kafka_raw.FlexReader(data)
    assert r.take(">i") == conn.corr
    r.tags()
    out = {"throttle": r.take(">i"), "error": r.take(">h"), "message": r.cstring()}
    if version >= 1:
        out["endpoint_type"] = r.take(">b")
    out["cluster_id"] = r.cstring()
    out["controller"] = r.take(">i")

    def broker():
        b = (r.take(">i"), r.cstring(), r.take(">i"), r.cstring())
        r.tags()
        return b

    out["brokers"] = {b[0]: (b[1], b[2]) for b in r.carray(broker)}
    out["ops"] = r.take(">i")
    r.tags()
    assert r.p == len(data), "%d trailing bytes" % (len(data) - r.p)
    return out


# ---- tests -----------------------------------------------------------------------


def test_api_versions_advertises_describe_configs_and_describe_cluster(cluster):
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        err, keys = conn.api_versions()
    finally:
        conn.close()
    assert err == 0
    assert keys[32] == (0, 2)
    assert keys[60] == (0, 1)


def test_confluent_describe_configs_topic_shows_override_and_defaults(cluster):
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

    create_with_retention(cluster, "cfg-ck", "3600000")
    adm = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    res = ConfigResource(ConfigResource.Type.TOPIC, "cfg-ck")
    entries = adm.describe_configs([res], request_timeout=10)[res].result(15)
    ret = entries["retention.ms"]
    assert ret.value == "3600000"
    assert ret.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not ret.is_default
    # Every topic-level key the coordinator accepts is listed.
    for key in ("cleanup.policy", "retention.bytes", "segment.bytes", "min.insync.replicas",
                "unclean.leader.election.enable", "max.message.bytes",
                "message.timestamp.type"):
        assert key in entries, key
    assert entries["cleanup.policy"].value == "delete"
    assert entries["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value
    # Derived from the broker's log.retention.bytes override.
    assert entries["retention.bytes"].value == RETENTION_BYTES
    assert entries["retention.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert not any(e.is_sensitive for e in entries.values())


def test_confluent_describe_configs_broker_registry(cluster):
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

    adm = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    res = ConfigResource(ConfigResource.Type.BROKER, "2")
    entries = adm.describe_configs([res], request_timeout=10)[res].result(15)
    assert entries["broker.id"].value == "2"
    assert entries["broker.id"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert entries["log.retention.bytes"].value == RETENTION_BYTES
    assert entries["log.retention.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert not entries["log.retention.bytes"].is_default
    assert entries["num.partitions"].value == "1"
    assert entries["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value
    assert entries["num.partitions"].is_default


def test_kafka_python_describe_configs_topic_and_broker(cluster):
    import kafka
    from kafka.admin import ConfigResource, ConfigResourceType

    create_with_retention(cluster, "cfg-kp", "7200000")
    adm = kafka.KafkaAdminClient(bootstrap_servers=cluster.bootstrap(), request_timeout_ms=10000)
    try:
        resps = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg-kp"),
                                      ConfigResource(ConfigResourceType.BROKER, "1")])
    finally:
        adm.close()
    results = [res for resp in resps for res in resp.resources]
    by_type = {res[2]: res for res in results}
    assert set(by_type) == {2, 4}
    err, _msg, _t, name, entries = by_type[2]
    assert (err, name) == (0, "cfg-kp")
    topic = {e[0]: e for e in entries}
    assert topic["retention.ms"][1] == "7200000"
    assert topic["retention.ms"][3] == SRC_TOPIC  # config_source (v1+)
    err, _msg, _t, name, entries = by_type[4]
    assert (err, name) == (0, "1")
    broker = {e[0]: e for e in entries}
    assert broker["broker.id"][1] == "1"


def test_describe_configs_unknown_topic_and_unknown_resource_type(cluster):
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        out = describe_configs_raw(conn, 1, [(2, "no-such-topic", None), (99, "x", None)])
    finally:
        conn.close()
    assert [(o[0], o[2], o[3], o[4]) for o in out] == [(3, 2, "no-such-topic", {}),
                                                       (42, 99, "x", {})]


def test_describe_configs_v0_is_default_and_key_filter(cluster):
    create_with_retention(cluster, "cfg-v0", "1000")
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        out = describe_configs_raw(conn, 0, [(2, "cfg-v0", ["retention.ms", "segment.bytes",
                                                            "not.a.key"])])
    finally:
        conn.close()
    err, _msg, _t, _n, entries = out[0]
    assert err == 0
    assert set(entries) == {"retention.ms", "segment.bytes"}
    assert entries["retention.ms"]["value"] == "1000"
    assert entries["retention.ms"]["is_default"] is False
    assert entries["segment.bytes"]["value"] == "1073741824"
    assert entries["segment.bytes"]["is_default"] is True


def test_describe_configs_synonyms_and_other_broker(cluster):
    create_with_retention(cluster, "cfg-syn", "5000")
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        out = describe_configs_raw(conn, 2, [(2, "cfg-syn", ["retention.ms", "retention.bytes"]),
                                             (4, "1", ["broker.id"]), (4, "2", None),
                                             (4, "", ["broker.id"])],
                                   include_synonyms=True)
    finally:
        conn.close()
    topic, self_broker, other, cluster_default = out
    syn = topic[4]["retention.ms"]["synonyms"]
    assert syn[0] == ("retention.ms", "5000", SRC_TOPIC)
    assert syn[-1][0] == "log.retention.ms" and syn[-1][2] == SRC_DEFAULT
    syn = topic[4]["retention.bytes"]["synonyms"]
    assert syn[0] == ("log.retention.bytes", RETENTION_BYTES, SRC_STATIC)
    assert self_broker[0] == 0 and self_broker[4]["broker.id"]["value"] == "1"
    assert self_broker[4]["broker.id"]["read_only"] is True
    assert other[0] == 42 and "broker 2" in other[1] and other[4] == {}
    # The empty name is the cluster default: only dynamic defaults, none set here.
    assert cluster_default[0] == 0 and cluster_default[4] == {}


@pytest.mark.parametrize("version", [0, 1])
def test_describe_cluster_matches_metadata(cluster, version):
    conn = kafka_raw.Conn(*cluster.addr(2))
    try:
        md = kafka_raw.metadata_v9(conn)
        dc = describe_cluster_raw(conn, version)
        dc_ops = describe_cluster_raw(conn, version, include_ops=True)
    finally:
        conn.close()
    assert dc["error"] == 0 and dc["message"] is None
    assert dc["cluster_id"] == md["cluster_id"] and dc["cluster_id"]
    assert dc["controller"] == md["controller"]
    assert dc["brokers"] == md["brokers"]
    assert set(dc["brokers"]) == {1, 2}
    assert dc["ops"] == -2147483648
    # What the served APIs exercise (Kafka's AclOperation bits): CREATE (5,
    # CreateTopics), DESCRIBE (8, DescribeCluster), DESCRIBE_CONFIGS (10),
    # ALTER_CONFIGS (11, AlterConfigs), IDEMPOTENT_WRITE (12, InitProducerId);
    # not ALTER (7) or CLUSTER_ACTION (9), whose APIs are not served.
    want = (1 << 5) | (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12)
    assert dc_ops["ops"] == want
    assert md["cluster_ops"] == -2147483648
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        assert kafka_raw.metadata_v9(conn, include_cluster_ops=True)["cluster_ops"] == want
    finally:
        conn.close()
    if version >= 1:
        assert dc["endpoint_type"] == 1


def test_describe_cluster_v1_controller_endpoint_type_is_refused(cluster):
    conn = kafka_raw.Conn(*cluster.addr(1))
    try:
        dc = describe_cluster_raw(conn, 1, endpoint_type=2)
    finally:
        conn.close()
    assert dc["error"] == 114  # MISMATCHED_ENDPOINT_TYPE
    assert dc["brokers"] == {}
