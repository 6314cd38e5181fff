"""kafka_raw: a tiny hand-written Kafka wire client for tests.

Only what the integration tests need to poke a broker directly: framing,
request header v1, and a few non-flexible request/response versions
(ApiVersions v0, Metadata v1, CreateTopics v0, Produce v3). Independent of the
broker's C codec on purpose, so a bug there is not mirrored here.
"""

import socket
import struct
import time

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _varint(n):
    n = (n << 1) ^ (n >> 63)  # zig-zag
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def record_batch(values, key=None, timestamp_ms=None, producer_id=-1, producer_epoch=-1,
                 base_sequence=-1, attributes=0):
    """One uncompressed magic-2 batch holding @values (bytes), base offset 0;
    idempotent when @producer_id >= 0 (attributes 0x10: transactional)."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    recs = bytearray()
    for i, v in enumerate(values):
        body = bytearray()
        body += b"\x00"  # attributes
        body += _varint(0)  # timestamp delta
        body += _varint(i)  # offset delta
        if key is None:
            body += _varint(-1)
        else:
            body += _varint(len(key)) + key
        body += _varint(len(v)) + v
        body += _varint(0)  # headers
        recs += _varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", attributes, len(values) - 1, ts, ts, producer_id,
                            producer_epoch, base_sequence, len(values))
    after_crc += bytes(recs)
    crc = crc32c(after_crc)
    head = struct.pack(">ibI", -1, 2, crc)  # partition leader epoch, magic, crc
    batch_len = len(head) + len(after_crc)
    return struct.pack(">qi", 0, batch_len) + head + after_crc


class Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)
        self.p += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.d[self.p:self.p + n].decode()
        self.p += n
        return s

    def array(self, fn):
        n = self.take(">i")
        return [fn() for _ in range(max(n, 0))]


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.corr = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def request(self, api_key, version, body, client_id="pytest"):
        self.corr += 1
        hdr = struct.pack(">hhi", api_key, version, self.corr) + _string(client_id)
        msg = hdr + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        return self.corr

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def response(self, corr):
        size = struct.unpack(">i", self.recv_exact(4))[0]
        data = self.recv_exact(size)
        got = struct.unpack_from(">i", data, 0)[0]
        assert got == corr, "correlation id %d, expected %d" % (got, corr)
        return Reader(data[4:])

    def is_closed(self, wait=5.0):
        """True when the broker closes the connection within @wait seconds."""
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    # ---- APIs -----------------------------------------------------------------

    def api_versions(self, version=0):
        r = self.response(self.request(18, version, b""))
        err = r.take(">h")
        keys = r.array(lambda: r.take(">hhh"))
        return err, {k: (lo, hi) for k, lo, hi in keys}

    def metadata(self, topics=None):
        body = struct.pack(">i", -1) if topics is None else (
            struct.pack(">i", len(topics)) + b"".join(_string(t) for t in topics))
        r = self.response(self.request(3, 1, body))
        brokers = r.array(lambda: (r.take(">i"), r.string(), r.take(">i"), r.string()))
        controller = r.take(">i")

        def partition():
            err, idx, leader = r.take(">hii")
            replicas = r.array(lambda: r.take(">i"))
            isr = r.array(lambda: r.take(">i"))
            return {"error": err, "partition": idx, "leader": leader, "replicas": replicas,
                    "isr": isr}

        def topic():
            err = r.take(">h")
            name = r.string()
            internal = r.take(">b")
            parts = r.array(partition)
            return name, {"error": err, "internal": internal, "partitions": parts}

        topics_out = dict(r.array(topic))
        return {"brokers": {b[0]: (b[1], b[2]) for b in brokers}, "controller": controller,
                "topics": topics_out}

    def create_topic(self, name, partitions, replication=1, timeout_ms=10000,
                     validate_only=None):
        """Error code of CreateTopics v0 (v1 when @validate_only is given)."""
        body = struct.pack(">i", 1) + _string(name) + struct.pack(">ih", partitions, replication)
        body += struct.pack(">ii", 0, 0)  # assignments, configs
        body += struct.pack(">i", timeout_ms)
        version = 0
        if validate_only is not None:
            version = 1
            body += struct.pack(">b", 1 if validate_only else 0)
        r = self.response(self.request(19, version, body))
        if version == 0:
            res = r.array(lambda: (r.string(), r.take(">h")))
        else:
            res = r.array(lambda: (r.string(), r.take(">h"), r.string())[:2])
        return dict(res)[name]

    def delete_topics(self, names, timeout_ms=10000):
        """{name: error} of DeleteTopics v1."""
        body = struct.pack(">i", len(names)) + b"".join(_string(n) for n in names)
        body += struct.pack(">i", timeout_ms)
        r = self.response(self.request(20, 1, body))
        r.take(">i")
        return dict(r.array(lambda: (r.string(), r.take(">h"))))

    def create_partitions(self, name, count, timeout_ms=10000, validate_only=False):
        """Error code of CreatePartitions v0."""
        body = struct.pack(">i", 1) + _string(name) + struct.pack(">ii", count, -1)
        body += struct.pack(">ib", timeout_ms, 1 if validate_only else 0)
        r = self.response(self.request(37, 0, body))
        r.take(">i")
        res = r.array(lambda: (r.string(), r.take(">h"), r.string()))
        return res[0][1]

    def init_producer_id(self, transactional_id=None, producer_id=-1, producer_epoch=-1,
                         version=4):
        """InitProducerId: v0/v1 classic, v2+ flexible (header v2). Returns
        (error, producer_id, producer_epoch)."""
        if version < 2:
            body = _string(transactional_id) + struct.pack(">i", 60000)
            r = self.response(self.request(22, version, body))
            _thr, err, pid, epoch = r.take(">ihqh")
            return err, pid, epoch
        if transactional_id is None:
            body = _uvarint(0)
        else:
            b = transactional_id.encode()
            body = _uvarint(len(b) + 1) + b
        body += struct.pack(">i", 60000)
        if version >= 3:
            body += struct.pack(">qh", producer_id, producer_epoch)
        body += _uvarint(0)  # tagged fields
        self.corr += 1
        hdr = struct.pack(">hhi", 22, version, self.corr) + _string("pytest") + _uvarint(0)
        msg = hdr + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", self.recv_exact(4))[0]
        data = self.recv_exact(size)
        r = FlexReader(data)
        assert r.take(">i") == self.corr
        r.tags()
        _thr, err, pid, epoch = r.take(">ihqh")
        return err, pid, epoch

    def produce(self, topic, partition, batch, acks=1, version=3):
        body = _string(None) if version >= 3 else b""  # transactional id: v3+
        body += struct.pack(">hi", acks, 10000)
        body += struct.pack(">i", 1) + _string(topic)
        body += struct.pack(">i", 1) + struct.pack(">i", partition)
        body += struct.pack(">i", len(batch)) + batch
        corr = self.request(0, version, body)
        if acks == 0:
            return None
        r = self.response(corr)
        topics = r.array(lambda: (r.string(), r.array(lambda: r.take(">ihqq"))))
        _, parts = topics[0]
        idx, err, base, _ts = parts[0]
        return err, base


def fetch_body(topic, partition, offset, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20):
    """A Fetch v4 request body for one partition."""
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)
    body += struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes)
    return body


def parse_fetch_v4(r):
    """{(topic, partition): (error, high_watermark, records bytes)} of a Fetch v4 answer."""
    r.take(">i")  # throttle
    out = {}

    def partition(topic):
        idx, err, hw, _lso = r.take(">ihqq")
        n = r.take(">i")
        for _ in range(max(n, 0)):
            r.take(">qq")
        size = r.take(">i")
        data = b""
        if size > 0:
            data = r.d[r.p:r.p + size]
            r.p += size
        out[(topic, idx)] = (err, hw, data)

    def topic():
        name = r.string()
        r.array(lambda: partition(name))

    r.array(topic)
    return out


def batch_values(data):
    """Values of the records of uncompressed batches in @data, with their offsets."""
    out = []
    p = 0
    while p + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, p)
        end = p + 12 + length
        if end > len(data):
            break  # a partial batch at the end of a fetch
        count = struct.unpack_from(">i", data, p + 57)[0]
        q = p + 61
        for _ in range(count):
            _len, q = _read_varint(data, q)
            q += 1  # attributes
            _ts, q = _read_varint(data, q)
            off_delta, q = _read_varint(data, q)
            klen, q = _read_varint(data, q)
            q += max(klen, 0)
            vlen, q = _read_varint(data, q)
            value = data[q:q + vlen]
            q += max(vlen, 0)
            hcount, q = _read_varint(data, q)
            for _ in range(hcount):
                hk, q = _read_varint(data, q)
                q += hk
                hv, q = _read_varint(data, q)
                q += max(hv, 0)
            out.append((base + off_delta, value))
        p = end
    return out


def _read_varint(data, p):
    shift = 0
    n = 0
    while True:
        b = data[p]
        p += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return (n >> 1) ^ -(n & 1), p


def list_offsets(conn, topic, partition, timestamp):
    """(error, timestamp, offset) of ListOffsets v1 for one partition."""
    body = struct.pack(">i", -1) + struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iq", partition, timestamp)
    r = conn.response(conn.request(2, 1, body))
    topics = r.array(lambda: (r.string(), r.array(lambda: r.take(">ihqq"))))
    _, err, ts, off = topics[0][1][0]
    return err, ts, off


# ---- flexible versions (KIP-482), for Metadata v9 --------------------------------


def _uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_uvarint(data, p):
    shift = n = 0
    while True:
        b = data[p]
        p += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, p


class FlexReader(Reader):
    def uvarint(self):
        n, self.p = _read_uvarint(self.d, self.p)
        return n

    def cstring(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.d[self.p:self.p + n].decode()
        self.p += n
        return s

    def carray(self, fn):
        n = self.uvarint() - 1
        return [fn() for _ in range(max(n, 0))]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.p += self.uvarint()


def metadata_v9(conn, topics=None, include_cluster_ops=False):
    """Metadata v9 (flexible): request header v2, response header v1."""
    conn.corr += 1
    hdr = struct.pack(">hhi", 3, 9, conn.corr) + _string("pytest") + b"\x00"
    if topics is None:
        body = _uvarint(0)
    else:
        body = _uvarint(len(topics) + 1)
        for t in topics:
            b = t.encode()
            body += _uvarint(len(b) + 1) + b + b"\x00"
    # allow auto-create, include cluster / topic authorized ops, tags
    body += b"\x01" + (b"\x01" if include_cluster_ops else b"\x00") + b"\x00" + b"\x00"
    msg = hdr + body
    conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", conn.recv_exact(4))[0]
    data = conn.recv_exact(size)
    r = FlexReader(data)
    assert r.take(">i") == conn.corr
    r.tags()  # response header v1
    r.take(">i")  # throttle

    def broker():
        b = (r.take(">i"), r.cstring(), r.take(">i"), r.cstring())
        r.tags()
        return b

    brokers = r.carray(broker)
    cluster_id = r.cstring()
    controller = r.take(">i")

    def partition():
        err, idx, leader, epoch = r.take(">hiii")
        replicas = r.carray(lambda: r.take(">i"))
        isr = r.carray(lambda: r.take(">i"))
        r.carray(lambda: r.take(">i"))
        r.tags()
        return {"error": err, "partition": idx, "leader": leader, "leader_epoch": epoch,
                "replicas": replicas, "isr": isr}

    def topic():
        err = r.take(">h")
        name = r.cstring()
        r.take(">b")
        parts = r.carray(partition)
        r.take(">i")
        r.tags()
        return name, {"error": err, "partitions": parts}

    topics_out = dict(r.carray(topic))
    cluster_ops = r.take(">i")
    r.tags()
    assert r.p == len(data), "%d trailing bytes" % (len(data) - r.p)
    return {"brokers": {b[0]: (b[1], b[2]) for b in brokers}, "cluster_id": cluster_id,
            "controller": controller, "topics": topics_out, "cluster_ops": cluster_ops}


def fetch_v12(conn, topic, partition, offset, max_wait_ms=0, isolation=1):
    """Fetch v12 (flexible) of one partition: (error, hw, lso, log_start, records)."""
    conn.corr += 1
    hdr = struct.pack(">hhi", 1, 12, conn.corr) + _string("pytest") + b"\x00"
    t = topic.encode()
    body = struct.pack(">iiiibii", -1, max_wait_ms, 1, 1 << 20, isolation, 0, -1)
    body += _uvarint(2) + _uvarint(len(t) + 1) + t
    body += _uvarint(2) + struct.pack(">iiqiqi", partition, -1, offset, -1, -1, 1 << 20) + b"\x00"
    body += b"\x00"  # topic tags
    body += _uvarint(1)  # forgotten topics: empty
    body += _uvarint(1)  # rack id ""
    body += b"\x00"
    msg = hdr + body
    conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", conn.recv_exact(4))[0]
    data = conn.recv_exact(size)
    r = FlexReader(data)
    assert r.take(">i") == conn.corr
    r.tags()
    r.take(">i")  # throttle
    assert r.take(">h") == 0
    r.take(">i")  # session id
    out = []

    def part():
        idx, err, hw, lso, start = r.take(">ihqqq")
        r.carray(lambda: (r.take(">qq"), r.tags()))
        r.take(">i")  # preferred read replica
        n = r.uvarint() - 1
        recs = b""
        if n > 0:
            recs = r.d[r.p:r.p + n]
            r.p += n
        r.tags()
        out.append((err, hw, lso, start, recs))

    def top():
        r.cstring()
        r.carray(part)
        r.tags()

    r.carray(top)
    r.tags()
    assert r.p == len(data), "%d trailing bytes" % (len(data) - r.p)
    return out[0]


def delete_records(conn, topic, partition, offset, timeout_ms=5000, version=1):
    """DeleteRecords (API 21) of one partition: (error, low_watermark). v0-1 classic,
    v2 flexible (request header v2, response header v1)."""
    t = topic.encode()
    if version < 2:
        body = struct.pack(">i", 1) + _string(topic)
        body += struct.pack(">i", 1) + struct.pack(">iq", partition, offset)
        body += struct.pack(">i", timeout_ms)
        r = conn.response(conn.request(21, version, body))
        r.take(">i")  # throttle
        topics = r.array(lambda: (r.string(), r.array(lambda: r.take(">iqh"))))
        assert r.p == len(r.d), "%d trailing bytes" % (len(r.d) - r.p)
        _, low, err = topics[0][1][0]
        return err, low
    conn.corr += 1
    hdr = struct.pack(">hhi", 21, version, conn.corr) + _string("pytest") + b"\x00"
    body = _uvarint(2) + _uvarint(len(t) + 1) + t
    body += _uvarint(2) + struct.pack(">iq", partition, offset) + b"\x00"
    body += b"\x00"  # topic tags
    body += struct.pack(">i", timeout_ms) + b"\x00"
    msg = hdr + body
    conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", conn.recv_exact(4))[0]
    data = conn.recv_exact(size)
    r = FlexReader(data)
    assert r.take(">i") == conn.corr
    r.tags()
    r.take(">i")  # throttle
    out = []

    def part():
        out.append(r.take(">iqh"))
        r.tags()

    def top():
        r.cstring()
        r.carray(part)
        r.tags()

    r.carray(top)
    r.tags()
    assert r.p == len(data), "%d trailing bytes" % (len(data) - r.p)
    _, low, err = out[0]
    return err, low


# ---- reassignment and elections (KIP-455, KIP-460) --------------------------------
# Neither Debian client library has them (confluent-kafka 1.7, kafka-python 2.0).


def _cstring(s):
    if s is None:
        return b"\x00"
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def _cint32s(v):
    if v is None:
        return b"\x00"
    return _uvarint(len(v) + 1) + b"".join(struct.pack(">i", x) for x in v)


def flex_call(conn, api_key, version, body):
    """One flexible request (header v2) and its response (header v1): a
    FlexReader over the body."""
    conn.corr += 1
    hdr = struct.pack(">hhi", api_key, version, conn.corr) + _string("pytest") + b"\x00"
    msg = hdr + body
    conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", conn.recv_exact(4))[0]
    r = FlexReader(conn.recv_exact(size))
    assert r.take(">i") == conn.corr
    r.tags()
    return r


def alter_partition_reassignments(conn, moves, timeout_ms=30000):
    """AlterPartitionReassignments v0. @moves: {(topic, partition): [replicas] or
    None (cancel)}. Returns (error_code, error_message, {(topic, p): (code, msg)})."""
    by_topic = {}
    for (t, p), reps in moves.items():
        by_topic.setdefault(t, []).append((p, reps))
    body = struct.pack(">i", timeout_ms) + _uvarint(len(by_topic) + 1)
    for t, parts in by_topic.items():
        body += _cstring(t) + _uvarint(len(parts) + 1)
        for p, reps in parts:
            body += struct.pack(">i", p) + _cint32s(reps) + b"\x00"
        body += b"\x00"
    body += b"\x00"
    r = flex_call(conn, 45, 0, body)
    r.take(">i")
    err, msg = r.take(">h"), r.cstring()
    out = {}

    def topic():
        name = r.cstring()

        def part():
            p, code, m = r.take(">i"), r.take(">h"), r.cstring()
            r.tags()
            out[(name, p)] = (code, m)

        r.carray(part)
        r.tags()

    r.carray(topic)
    return err, msg, out


def list_partition_reassignments(conn, topics=None, timeout_ms=30000):
    """ListPartitionReassignments v0. @topics: {topic: [partitions]} or None
    (all). Returns (error_code, {(topic, p): (replicas, adding, removing)})."""
    body = struct.pack(">i", timeout_ms)
    if topics is None:
        body += b"\x00"
    else:
        body += _uvarint(len(topics) + 1)
        for t, ps in topics.items():
            body += _cstring(t) + _cint32s(ps) + b"\x00"
    body += b"\x00"
    r = flex_call(conn, 46, 0, body)
    r.take(">i")
    err, _msg = r.take(">h"), r.cstring()
    out = {}

    def ints():
        return r.carray(lambda: r.take(">i"))

    def topic():
        name = r.cstring()

        def part():
            p = r.take(">i")
            out[(name, p)] = (ints(), ints(), ints())
            r.tags()

        r.carray(part)
        r.tags()

    r.carray(topic)
    return err, out


def elect_leaders(conn, partitions, election_type=0, version=2, timeout_ms=30000):
    """ElectLeaders v0-2. @partitions: {topic: [partitions]} or None (all).
    Returns (error_code or None for v0, {(topic, p): (code, msg)})."""
    if version >= 2:
        body = struct.pack(">b", election_type)
        if partitions is None:
            body += b"\x00"
        else:
            body += _uvarint(len(partitions) + 1)
            for t, ps in partitions.items():
                body += _cstring(t) + _cint32s(ps) + b"\x00"
        body += struct.pack(">i", timeout_ms) + b"\x00"
        r = flex_call(conn, 43, version, body)
        r.take(">i")
        err = r.take(">h")
        out = {}

        def topic():
            name = r.cstring()

            def part():
                p, code, m = r.take(">i"), r.take(">h"), r.cstring()
                r.tags()
                out[(name, p)] = (code, m)

            r.carray(part)
            r.tags()

        r.carray(topic)
        return err, out
    body = struct.pack(">b", election_type) if version == 1 else b""
    if partitions is None:
        body += struct.pack(">i", -1)
    else:
        body += struct.pack(">i", len(partitions))
        for t, ps in partitions.items():
            body += _string(t) + struct.pack(">i", len(ps)) + b"".join(
                struct.pack(">i", x) for x in ps)
    body += struct.pack(">i", timeout_ms)
    r = conn.response(conn.request(43, version, body))
    r.take(">i")
    err = r.take(">h") if version == 1 else None
    out = {}

    def topic():
        name = r.string()

        def part():
            p, code, m = r.take(">i"), r.take(">h"), r.string()
            out[(name, p)] = (code, m)

        r.array(part)

    r.array(topic)
    return err, out
