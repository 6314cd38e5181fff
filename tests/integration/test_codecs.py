"""The four compression codecs and the topic config compression.type
(docs/compression.md).

Each codec is produced by librdkafka (confluent-kafka) and by kafka-python and
read back byte-identical by both; the stored batches are inspected in the
partition's .log files (codec = attribute bits 0-2) on the leader and the
follower. A topic whose compression.type names a codec stores that codec
whatever the producer sent; "uncompressed" stores plain batches. Compression
bombs, a zstd frame claiming 4 GiB, corrupt frames and a record count that the
compressed records do not match are produced raw (tests/support/kafka_raw.py)
and answered CORRUPT_MESSAGE with the log unchanged; a record inside a
compressed batch with a timestamp out of range is INVALID_TIMESTAMP.

One cluster (a coordinator and two brokers) serves the module; each test uses
its own topics, replicated on both brokers.
"""

import glob
import gzip
import json
import os
import random
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402
import kafka_raw  # noqa: E402

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODECS = ["gzip", "snappy", "lz4", "zstd"]
CORRUPT_MESSAGE = 2
INVALID_TIMESTAMP = 32
N_RECORDS = 400


@pytest.fixture(scope="module")
def cluster(request):
    yield from weir_cluster.started(request, brokers=2)


# ---- helpers ------------------------------------------------------------------------


def require_python_codec(codec):
    import kafka.codec as kc

    have = {"gzip": kc.has_gzip, "snappy": kc.has_snappy, "lz4": kc.has_lz4,
            "zstd": kc.has_zstd}[codec]()
    pkg = {"gzip": "python3 (zlib)", "snappy": "python3-snappy", "lz4": "python3-lz4",
           "zstd": "python3-zstandard"}[codec]
    deps.require(have, "kafka-python cannot use %s (%s missing)" % (codec, pkg),
                 "deploy/install-deps.sh installs it")


def create(c, name, config=None):
    c.create_topic(name, 1, 2, config or {})


def records(seed, n=N_RECORDS):
    """(key, value) pairs: JSON-ish values of varied size, some null keys."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        doc = {"id": i, "user": "user-%d" % rnd.randrange(1000), "amount": rnd.random() * 1000,
               "note": "x" * rnd.randrange(0, 900), "tags": [rnd.choice("abcdef")
                                                              for _ in range(5)]}
        key = None if i % 10 == 0 else ("key-%d" % (i % 37)).encode()
        out.append((key, json.dumps(doc).encode()))
    return out


def produce_librdkafka(c, topic, recs, codec, idempotent=False):
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 20,
            "batch.num.messages": 50, "compression.type": codec or "none",
            "enable.idempotence": idempotent}
    p = Producer(conf)
    errors = []

    def cb(err, _msg):
        if err is not None:
            errors.append(err)

    for k, v in recs:
        p.produce(topic, v, key=k, partition=0, headers=[("h", b"hv"), ("n", b"")],
                  on_delivery=cb)
    assert p.flush(30) == 0, "undelivered messages"
    assert errors == []


def produce_kafka_python(c, topic, recs, codec):
    import kafka

    p = kafka.KafkaProducer(bootstrap_servers=c.bootstrap(), acks="all", linger_ms=20,
                            compression_type=codec, batch_size=16384, retries=5,
                            max_in_flight_requests_per_connection=1)
    try:
        futs = [p.send(topic, value=v, key=k, partition=0) for k, v in recs]
        p.flush(30)
        for f in futs:
            f.get(timeout=30)
    finally:
        p.close(10)


def consume_librdkafka(c, topic, n, timeout=30.0):
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "codec-" + topic,
                     "enable.auto.commit": False})
    try:
        cons.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            out.append((m.offset(), m.key(), m.value(), m.headers()))
        return out
    finally:
        cons.close()


def consume_kafka_python(c, topic, n, timeout=30.0):
    import kafka

    cons = kafka.KafkaConsumer(bootstrap_servers=c.bootstrap(), group_id=None,
                               enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        tp = kafka.TopicPartition(topic, 0)
        cons.assign([tp])
        cons.seek(tp, 0)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for recs in cons.poll(timeout_ms=500).values():
                out.extend((r.offset, r.key, r.value) for r in recs)
        return out
    finally:
        cons.close()


def stored_batches(c, bid, topic):
    """[(base offset, codec id, record count)] of every whole batch in the
    partition's .log files on broker @bid."""
    out = []
    for path in sorted(glob.glob(os.path.join(c.log_dir(bid), "%s-0" % topic, "*.log"))):
        with open(path, "rb") as f:
            data = f.read()
        p = 0
        while p + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, p)
            if length <= 0 or p + 12 + length > len(data):
                break
            attrs = struct.unpack_from(">h", data, p + 21)[0]
            count = struct.unpack_from(">i", data, p + 57)[0]
            out.append((base, attrs & 7, count))
            p += 12 + length
    return out


def wait_stored(c, topic, n, timeout=15.0):
    """Batches of both replicas once each holds @n records."""
    deadline = time.monotonic() + timeout
    while True:
        got = {b: stored_batches(c, b, topic) for b in (1, 2)}
        if all(sum(x[2] for x in bs) >= n for bs in got.values()):
            return got
        assert time.monotonic() < deadline, "replicas hold %s" % {
            b: sum(x[2] for x in bs) for b, bs in got.items()}
        time.sleep(0.1)


def assert_read_back(c, topic, recs, with_headers):
    got = consume_librdkafka(c, topic, len(recs))
    assert [(o, k, v) for o, k, v, _h in got] == [(i, k, v) for i, (k, v) in enumerate(recs)]
    if with_headers:
        assert all(h == [("h", b"hv"), ("n", b"")] for _o, _k, _v, h in got)
    got = consume_kafka_python(c, topic, len(recs))
    assert got == [(i, k, v) for i, (k, v) in enumerate(recs)]


def assert_codec_stored(c, topic, codec, n):
    stored = wait_stored(c, topic, n)
    for bid, batches in stored.items():
        # lz4 from librdkafka too: it sends LZ4 only to a broker that advertises
        # FindCoordinator v0 (kafka-clients.md P2)
        assert {x[1] for x in batches} == {CODEC_IDS[codec]}, (bid, batches[:5])
    # replicas hold the same batches
    assert stored[1] == stored[2]


# ---- each codec, each client --------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_librdkafka_codec_read_back_by_both_clients(cluster, codec):
    require_python_codec(codec)
    topic = "rdk-" + codec
    create(cluster, topic)
    recs = records(1)
    produce_librdkafka(cluster, topic, recs, codec)
    assert_read_back(cluster, topic, recs, with_headers=True)
    assert_codec_stored(cluster, topic, codec, len(recs))


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_codec_read_back_by_both_clients(cluster, codec):
    require_python_codec(codec)
    topic = "kpy-" + codec
    create(cluster, topic)
    recs = records(2)
    produce_kafka_python(cluster, topic, recs, codec)
    assert_read_back(cluster, topic, recs, with_headers=False)
    assert_codec_stored(cluster, topic, codec, len(recs))


# ---- compression.type ---------------------------------------------------------------


def test_topic_zstd_stores_zstd_whatever_the_producer_sent(cluster):
    require_python_codec("zstd")
    topic = "force-zstd"
    create(cluster, topic, {"compression.type": "zstd"})
    recs = records(3, 100)
    chunks = [recs[i:i + 20] for i in range(0, 100, 20)]
    produce_librdkafka(cluster, topic, chunks[0], None)
    produce_librdkafka(cluster, topic, chunks[1], "gzip")
    produce_librdkafka(cluster, topic, chunks[2], "snappy", idempotent=True)
    produce_kafka_python(cluster, topic, chunks[3], "lz4")
    produce_kafka_python(cluster, topic, chunks[4], "zstd")
    stored = wait_stored(cluster, topic, 100)
    for bid, batches in stored.items():
        assert {x[1] for x in batches} == {CODEC_IDS["zstd"]}, (bid, batches)
    assert stored[1] == stored[2]
    got = consume_librdkafka(cluster, topic, 100)
    assert [(k, v) for _o, k, v, _h in got] == recs
    assert [o for o, _k, _v, _h in got] == list(range(100))
    assert [(k, v) for _o, k, v in consume_kafka_python(cluster, topic, 100)] == recs


def test_topic_uncompressed_stores_plain_batches(cluster):
    topic = "force-none"
    create(cluster, topic, {"compression.type": "uncompressed"})
    recs = records(4, 60)
    produce_librdkafka(cluster, topic, recs[:30], "gzip")
    produce_kafka_python(cluster, topic, recs[30:], "gzip")
    stored = wait_stored(cluster, topic, 60)
    for bid, batches in stored.items():
        assert {x[1] for x in batches} == {0}, (bid, batches)
    got = consume_librdkafka(cluster, topic, 60)
    assert [(k, v) for _o, k, v, _h in got] == recs


def test_altered_compression_type_applies_to_later_batches(cluster):
    from confluent_kafka.admin import AdminClient, ConfigResource

    topic = "alter-codec"
    create(cluster, topic)
    recs = records(5, 40)
    produce_librdkafka(cluster, topic, recs[:20], "snappy")
    adm = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    fs = adm.alter_configs([ConfigResource("TOPIC", topic,
                                           set_config={"compression.type": "gzip"})])
    for f in fs.values():
        assert f.result(15) is None
    # every broker applies it once its metadata has it: produce until gzip shows
    deadline = time.monotonic() + 15
    while True:
        batch = kafka_raw.record_batch([b"probe"])
        leader = leader_of(cluster, topic)
        conn = kafka_raw.Conn(*cluster.addr(leader))
        try:
            err, _base = conn.produce(topic, 0, batch)
        finally:
            conn.close()
        assert err == 0
        if stored_batches(cluster, leader, topic)[-1][1] == CODEC_IDS["gzip"]:
            break
        assert time.monotonic() < deadline, "compression.type=gzip not applied"
        time.sleep(0.2)
    produce_librdkafka(cluster, topic, recs[20:], "lz4")
    batches = stored_batches(cluster, leader, topic)
    assert batches[0][1] == CODEC_IDS["snappy"]
    assert batches[-1][1] == CODEC_IDS["gzip"]
    got = consume_librdkafka(cluster, topic, sum(b[2] for b in batches))
    values = [v for _o, _k, v, _h in got]
    assert values[:20] == [v for _k, v in recs[:20]]
    assert values[-20:] == [v for _k, v in recs[20:]]


def test_broker_compression_type_is_the_default_for_topics():
    """The broker key compression.type applies to topics without their own, and
    DescribeConfigs reports it as the topic's (static broker) default."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

    c = weir_cluster.Cluster(brokers=1, broker_overrides={"compression.type": "lz4"})
    c.start()
    try:
        c.create_topic("inherits", 1, 1)
        c.create_topic("own", 1, 1, {"compression.type": "producer"})
        conn = kafka_raw.Conn(*c.addr(1))
        try:
            for topic in ("inherits", "own"):
                err, base = conn.produce(topic, 0, kafka_raw.record_batch([b"v1", b"v2"]))
                assert (err, base) == (0, 0)
        finally:
            conn.close()
        assert [x[1] for x in stored_batches_one(c, 1, "inherits")] == [CODEC_IDS["lz4"]]
        assert [x[1] for x in stored_batches_one(c, 1, "own")] == [0]
        adm = AdminClient({"bootstrap.servers": c.bootstrap()})
        fs = adm.describe_configs([ConfigResource("TOPIC", "inherits")], request_timeout=10)
        for f in fs.values():
            entry = f.result(15)["compression.type"]
            assert entry.value == "lz4"
            assert entry.source == ConfigSource.STATIC_BROKER_CONFIG.value
        got = consume_kafka_python(c, "inherits", 2)
        assert [v for _o, _k, v in got] == [b"v1", b"v2"]
    finally:
        problems = c.finish(failed=False)
    assert not problems, "processes exited badly:\n" + "\n".join(problems)


def stored_batches_one(c, bid, topic, n=2, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = stored_batches(c, bid, topic)
        if sum(x[2] for x in got) >= n:
            return got
        assert time.monotonic() < deadline, got
        time.sleep(0.05)


# ---- bad compressed batches ---------------------------------------------------------


def leader_of(c, topic):
    conn = kafka_raw.Conn(*c.addr(1))
    try:
        return conn.metadata([topic])["topics"][topic]["partitions"][0]["leader"]
    finally:
        conn.close()


def compressed_batch(values, codec, payload_fn=None, count=None):
    """A magic-2 batch of @values compressed with @codec; @payload_fn may replace
    the compressed records section, @count the record count in the header."""
    plain = kafka_raw.record_batch(values)
    records_section = plain[61:]
    payload = payload_fn(records_section) if payload_fn else compress(codec, records_section)
    n = len(values) if count is None else count
    attrs = CODEC_IDS[codec]
    after_crc = struct.pack(">h", attrs) + struct.pack(">i", n - 1) + plain[27:57] + \
        struct.pack(">i", n) + payload
    head = struct.pack(">ibI", -1, 2, kafka_raw.crc32c(after_crc))
    return struct.pack(">qi", 0, len(head) + len(after_crc)) + head + after_crc


def compress(codec, data):
    if codec == "gzip":
        return gzip.compress(data)
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(codec)


def one_huge_record(size):
    """The records section of one record whose value is @size zero bytes."""
    body = b"\x00" + kafka_raw._varint(0) + kafka_raw._varint(0) + kafka_raw._varint(-1) + \
        kafka_raw._varint(size)
    tail = kafka_raw._varint(0)
    return kafka_raw._varint(len(body) + size + len(tail)) + body, tail


def gzip_bomb(_records):
    """100 MiB of record bytes (past the 64 MiB bound), about 100 KiB compressed."""
    head, tail = one_huge_record(100 << 20)
    co = __import__("zlib").compressobj(9, 8, 16 + 15)
    out = co.compress(head)
    zeros = bytes(1 << 20)
    for _ in range(100):
        out += co.compress(zeros)
    return out + co.compress(tail) + co.flush()


def zstd_bomb(_records):
    import zstandard

    head, tail = one_huge_record(100 << 20)
    co = zstandard.ZstdCompressor().compressobj()
    out = co.compress(head)
    zeros = bytes(1 << 20)
    for _ in range(100):
        out += co.compress(zeros)
    return out + co.compress(tail) + co.flush()


def zstd_claiming_4gib(_records):
    """A zstd frame header saying 4 GiB of content (1 MiB window), then RLE blocks."""
    frame = bytes([0x28, 0xB5, 0x2F, 0xFD, 0xC0, 10 << 3]) + struct.pack("<Q", 4 << 30)
    for i in range(64):
        hdr = (131072 << 3) | (1 << 1) | (1 if i == 63 else 0)
        frame += struct.pack("<I", hdr)[:3] + b"\x00"
    return frame


def truncated(codec):
    return lambda recs: compress(codec, recs)[:-7]


def garbage(_records):
    return bytes(random.Random(9).randrange(256) for _ in range(300))


@pytest.mark.parametrize("name,codec,payload_fn,count", [
    ("gzip-bomb", "gzip", gzip_bomb, 1),
    ("zstd-bomb", "zstd", zstd_bomb, 1),
    ("zstd-4gib-claim", "zstd", zstd_claiming_4gib, 1),
    ("gzip-truncated", "gzip", truncated("gzip"), None),
    ("zstd-truncated", "zstd", truncated("zstd"), None),
    ("gzip-garbage", "gzip", garbage, None),
    ("zstd-count-mismatch", "zstd", None, 4),
])
def test_bad_compressed_batch_is_corrupt_message_and_log_unchanged(cluster, name, codec,
                                                                   payload_fn, count):
    require_python_codec(codec)
    topic = "bad-" + name
    create(cluster, topic)
    leader = leader_of(cluster, topic)
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        # something valid first, so "unchanged" means more than "empty"
        err, base = conn.produce(topic, 0, compressed_batch([b"ok1", b"ok2"], codec), version=7)
        assert (err, base) == (0, 0)
        before = stored_batches(cluster, leader, topic)
        sizes = {p: os.path.getsize(p) for p in glob.glob(
            os.path.join(cluster.log_dir(leader), topic + "-0", "*.log"))}
        batch = compressed_batch([b"a", b"b", b"c"], codec, payload_fn, count)
        assert len(batch) < 1 << 20  # under message.max.bytes: only the content is bad
        err, _ = conn.produce(topic, 0, batch, version=7)
        assert err == CORRUPT_MESSAGE
        # the broker carries on: the log is as it was, and the next batch lands
        assert stored_batches(cluster, leader, topic) == before
        assert {p: os.path.getsize(p) for p in sizes} == sizes
        err, base = conn.produce(topic, 0, compressed_batch([b"ok3"], codec), version=7)
        assert (err, base) == (0, 2)
    finally:
        conn.close()
    got = consume_librdkafka(cluster, topic, 3)
    assert [v for _o, _k, v, _h in got] == [b"ok1", b"ok2", b"ok3"]


def test_record_timestamps_inside_compressed_batches_are_checked(cluster):
    """message.timestamp.difference.max.ms looks at every record, also inside a
    compressed batch whose first and max timestamps are in range."""
    topic = "ts-inside"
    create(cluster, topic, {"message.timestamp.difference.max.ms": "3600000"})
    now = int(time.time() * 1000)
    day = 24 * 3600 * 1000
    leader = leader_of(cluster, topic)
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        ok = batch_with_deltas([0, 1, 2], now, "gzip")
        bad = batch_with_deltas([0, -day, 2], now, "gzip")  # the middle record is a day old
        assert conn.produce(topic, 0, bad, version=7)[0] == INVALID_TIMESTAMP
        assert conn.produce(topic, 0, ok, version=7) == (0, 0)
    finally:
        conn.close()


def batch_with_deltas(deltas, base_ts, codec):
    """A compressed batch of len(@deltas) records with these timestamp deltas;
    base and max timestamps are the first and largest."""
    recs = b""
    for i, d in enumerate(deltas):
        body = b"\x00" + kafka_raw._varint(d) + kafka_raw._varint(i) + kafka_raw._varint(-1) + \
            kafka_raw._varint(1) + b"v" + kafka_raw._varint(0)
        recs += kafka_raw._varint(len(body)) + body
    payload = compress(codec, recs)
    n = len(deltas)
    after_crc = struct.pack(">hiqqqhii", CODEC_IDS[codec], n - 1, base_ts, base_ts + max(deltas),
                            -1, -1, -1, n) + payload
    head = struct.pack(">ibI", -1, 2, kafka_raw.crc32c(after_crc))
    return struct.pack(">qi", 0, len(head) + len(after_crc)) + head + after_crc


def test_batches_of_one_request_share_the_bound(cluster):
    """Each of 70 gzip batches decompresses to 1 MiB (fine alone); together they
    pass the 64 MiB bound of one partition in one request: CORRUPT_MESSAGE,
    nothing appended. 60 of them fit."""

    def mib_of_zeros(_records):
        head, tail = one_huge_record((1 << 20) - 64)
        return gzip.compress(head + bytes((1 << 20) - 64) + tail)

    topic = "bound-sum"
    create(cluster, topic)
    one = compressed_batch([b"x"], "gzip", mib_of_zeros, 1)
    leader = leader_of(cluster, topic)
    conn = kafka_raw.Conn(*cluster.addr(leader))
    try:
        assert conn.produce(topic, 0, one * 70)[0] == CORRUPT_MESSAGE
        assert stored_batches(cluster, leader, topic) == []
        assert conn.produce(topic, 0, one * 60) == (0, 0)
    finally:
        conn.close()
    assert sum(x[2] for x in wait_stored(cluster, topic, 60)[leader]) == 60
