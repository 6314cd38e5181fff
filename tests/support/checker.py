"""checker: a produce/consume history and its analysis, for the fault tests.

A producer thread (confluent_kafka, acks=all, librdkafka's default retries, a
bounded message.timeout.ms) sends unique values "p<k>-<seq>" round-robin over
the partitions at a steady rate and records every attempt: partition, sequence,
and the outcome from its delivery report (ok with the offset, or failed with the
error). A consumer thread reads alongside from offset 0 of every partition
(assign(), no group). After the faults heal, finish() flushes the producer,
takes each partition's high watermark (ListOffsets latest), drains the consumer
up to it and analyses:

  lost          acknowledged (ok) but never read                      (must be 0)
  unexpected    read but never sent                                    (must be 0)
  conflicts     one (partition, offset) read with two values           (must be 0)
  misplaced     ok at offset X but never read at X (nor anywhere)      (must be 0)
  ok_no_offset  ok without an offset (reported): librdkafka's idempotent producer
                acknowledges a batch whose request timed out when a later batch of
                the partition succeeds ("implicitly acked by subsequent batch
                success", rd_kafka_dr_implicit_ack) and gives those messages no
                offset (msg.offset() is None). They are held to no-loss, not to
                misplaced: there is no acknowledged offset to compare with.
  duplicated    one value read at two offsets (retries without idempotence; reported)
  out_of_order  a value read after a later sequence of the same partition (reported)
  failed_read   a failed send that was read anyway (indeterminate with retries; reported)

A failed delivery is indeterminate, not a proof that nothing was written: with
retries an earlier attempt may have been appended (Jepsen's "info"). So only
the acknowledged values are held to the no-loss rule. Values never reported
(still pending at the end) are counted as unknown; the test's own raw probes
(register()) never get a report and are not.

summary() is one line: "sent=N ok=N failed=N unknown=N read=N lost=0 ...".
"""

import collections
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

MESSAGE_TIMEOUT_MS = 20000


class Checker:
    def __init__(self, bootstrap, topic, partitions, rate=300, tag="p0", producer_conf=None):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.tag = tag
        self.producer_conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "linger.ms": 5,
            "retry.backoff.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000,
            "reconnect.backoff.max.ms": 500,
        }
        self.producer_conf.update(producer_conf or {})
        self.lock = threading.Lock()
        self.sent = {}  # value -> [partition, seq, state, offset, error, t_send]
        self.ok_times = collections.defaultdict(list)  # partition -> [t of each ok report]
        self.err_times = collections.defaultdict(list)  # partition -> [(t, error name)]
        self.ok_log = []  # (t, partition, offset, value, seconds since produce()) per ok
        self.reads = {}  # (partition, offset) -> value
        self.conflicts = []
        self.next_offset = collections.defaultdict(int)  # partition -> after last read
        self.stop_produce = threading.Event()
        self.stop_consume = threading.Event()
        self.aborting = False
        self.errors = []  # exceptions from the threads
        self.t0 = time.monotonic()
        self.hw = {}
        self.pthread = threading.Thread(target=self._produce_loop, name="checker-produce",
                                        daemon=True)
        self.cthread = threading.Thread(target=self._consume_loop, name="checker-consume",
                                        daemon=True)

    # ---- threads -------------------------------------------------------------

    def start(self):
        self.pthread.start()
        self.cthread.start()
        return self

    def _on_delivery(self, err, msg):
        now = time.monotonic()
        v = msg.value().decode()
        with self.lock:
            rec = self.sent[v]
            if err is None:
                rec[2], rec[3] = "ok", msg.offset()
                self.ok_times[rec[0]].append(now)
                self.ok_log.append((now, rec[0], msg.offset(), v, now - rec[5]))
            else:
                rec[2], rec[4] = "failed", err.name()
                self.err_times[rec[0]].append((now, err.name()))

    def _produce_loop(self):
        try:
            p = Producer(self.producer_conf)
            seq = 0
            interval = 1.0 / self.rate
            next_t = time.monotonic()
            while not self.stop_produce.is_set():
                part = seq % self.partitions
                v = "%s-%d" % (self.tag, seq)
                with self.lock:
                    self.sent[v] = [part, seq, "pending", None, None, time.monotonic()]
                while True:
                    try:
                        p.produce(self.topic, v.encode(), partition=part,
                                  on_delivery=self._on_delivery)
                        break
                    except BufferError:
                        p.poll(0.05)
                seq += 1
                next_t += interval
                delay = next_t - time.monotonic()
                p.poll(max(delay, 0))
                if delay < -1.0:  # fell behind (a stall): do not burst to catch up
                    next_t = time.monotonic()
            if self.aborting:  # cleanup after a failure: do not wait out the timeouts
                p.purge()
                p.flush(2)
            else:
                p.flush(MESSAGE_TIMEOUT_MS / 1000.0 + 5)
        except Exception as e:  # noqa: BLE001 - reported by finish()
            self.errors.append("producer: %r" % e)

    def _consume_loop(self):
        try:
            c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "weir-checker",
                          "enable.auto.commit": False, "auto.offset.reset": "earliest",
                          "enable.partition.eof": False,
                          "topic.metadata.refresh.interval.ms": 1000,
                          "reconnect.backoff.max.ms": 500})
            c.assign([TopicPartition(self.topic, i, 0) for i in range(self.partitions)])
            self.consumer = c
            while not self.stop_consume.is_set():
                for m in c.consume(500, 0.2):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self.err_times[-1].append((time.monotonic(), m.error().name()))
                        continue
                    key = (m.partition(), m.offset())
                    v = m.value().decode(errors="replace")
                    with self.lock:
                        old = self.reads.get(key)
                        if old is not None and old != v:
                            self.conflicts.append((key, old, v))
                        self.reads[key] = v
                        self.next_offset[m.partition()] = max(self.next_offset[m.partition()],
                                                              m.offset() + 1)
            c.close()
        except Exception as e:  # noqa: BLE001
            self.errors.append("consumer: %r" % e)

    # ---- during the run ------------------------------------------------------

    def register(self, value, partition):
        """Note a value the test sends itself (a raw probe): never lost, never unexpected."""
        with self.lock:
            self.sent[value] = [partition, -1, "pending", None, None, time.monotonic()]

    def ok_count(self, partition=None):
        with self.lock:
            if partition is None:
                return sum(len(t) for t in self.ok_times.values())
            return len(self.ok_times[partition])

    def oks_between(self, t_from, t_to, partition=None):
        """Successful delivery reports received in [t_from, t_to] (time.monotonic())."""
        with self.lock:
            parts = [partition] if partition is not None else list(self.ok_times)
            return sum(1 for p in parts for t in self.ok_times[p] if t_from <= t <= t_to)

    def oks_detail(self, t_from, t_to):
        """[(t, partition, offset, value, latency)] of the oks reported in [t_from, t_to]."""
        with self.lock:
            return [x for x in self.ok_log if t_from <= x[0] <= t_to]

    def errors_between(self, t_from, t_to, partition=None):
        with self.lock:
            parts = [partition] if partition is not None else list(self.err_times)
            return [e for p in parts for t, e in self.err_times[p] if t_from <= t <= t_to]

    def wait_oks(self, n, timeout, partition=None):
        """Wait until @n more successful deliveries arrive; True if they did."""
        start = self.ok_count(partition)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ok_count(partition) >= start + n:
                return True
            time.sleep(0.05)
        return False

    def max_gap(self, partition, t_from, t_to):
        """Longest interval in [t_from, t_to] with no successful delivery to @partition."""
        with self.lock:
            ts = sorted(t for t in self.ok_times[partition] if t_from <= t <= t_to)
        points = [t_from] + ts + [t_to]
        return max(b - a for a, b in zip(points, points[1:]))

    # ---- the end ---------------------------------------------------------------

    def finish(self, drain_timeout=30.0):
        """Stop producing, wait for every report, drain the consumer to the HW, analyse."""
        self.stop_produce.set()
        self.pthread.join(MESSAGE_TIMEOUT_MS / 1000.0 + 15)
        if self.pthread.is_alive():
            self.errors.append("producer thread did not stop")
        deadline = time.monotonic() + drain_timeout
        self.hw = self.watermarks(deadline)
        while time.monotonic() < deadline:
            with self.lock:
                done = all(self.next_offset[p] >= self.hw.get(p, 0) for p in self.hw)
            if done:
                break
            time.sleep(0.1)
        self.stop_consume.set()
        self.cthread.join(10)
        return self.analyse()

    def watermarks(self, deadline):
        """{partition: high watermark} from ListOffsets latest, retried until @deadline.

        A failed query gets a fresh client: librdkafka does not refetch metadata after a
        NOT_LEADER answer to a watermark query, so one client would keep asking the old
        leader after a leader change."""
        out = {}
        last = {}
        while len(out) < self.partitions and time.monotonic() < deadline:
            c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "weir-checker-hw",
                          "enable.auto.commit": False})
            try:
                for p in range(self.partitions):
                    if p in out:
                        continue
                    try:
                        _, hi = c.get_watermark_offsets(TopicPartition(self.topic, p),
                                                        timeout=3, cached=False)
                        out[p] = hi
                    except Exception as e:  # noqa: BLE001 - leader moving: retry
                        last[p] = e
            finally:
                c.close()
            if len(out) < self.partitions:
                time.sleep(0.2)
        if len(out) < self.partitions:
            self.errors.append("no high watermark (ListOffsets latest) for partitions %s: %r" %
                               (sorted(set(range(self.partitions)) - set(out)), last))
        return out

    def analyse(self):
        with self.lock:
            sent = dict(self.sent)
            reads = dict(self.reads)
        by_value = collections.defaultdict(list)
        for (p, off), v in reads.items():
            by_value[v].append((p, off))
        # Raw probes (register(), seq -1) get no delivery report: not "unknown".
        states = collections.Counter(r[2] for r in sent.values() if r[1] >= 0)
        lost = sorted(v for v, r in sent.items() if r[2] == "ok" and v not in by_value)
        unexpected = sorted(v for v in by_value if v not in sent)
        misplaced = sorted(v for v, r in sent.items()
                           if r[2] == "ok" and r[3] is not None and v in by_value and
                           (r[0], r[3]) not in by_value[v])
        ok_no_offset = sorted(v for v, r in sent.items() if r[2] == "ok" and r[3] is None)
        # value: acknowledged (partition, offset) and where it was read instead
        misplaced_detail = ["%s acked p%d@%s read at %s" % (v, sent[v][0], sent[v][3],
                                                            sorted(by_value[v]))
                            for v in misplaced]
        duplicated = sorted(v for v, locs in by_value.items() if len(locs) > 1)
        failed_read = sorted(v for v, r in sent.items() if r[2] == "failed" and v in by_value)
        out_of_order = []
        per_part = collections.defaultdict(list)
        for (p, off), v in reads.items():
            if v in sent:
                per_part[p].append((off, sent[v][1], v))
        for p, rows in per_part.items():
            top = -1
            for off, seq, v in sorted(rows):
                if seq < top:
                    out_of_order.append(v)
                top = max(top, seq)
        self.result = {
            "sent": len(sent), "ok": states["ok"], "failed": states["failed"],
            "unknown": states["pending"], "read": len(reads), "lost": lost,
            "unexpected": unexpected, "conflicts": list(self.conflicts), "misplaced": misplaced,
            "misplaced_detail": misplaced_detail, "ok_no_offset": ok_no_offset,
            "duplicated": duplicated, "out_of_order": out_of_order, "failed_read": failed_read,
            "errors": list(self.errors), "hw": dict(self.hw),
            "error_names": dict(collections.Counter(
                e for lst in self.err_times.values() for _, e in lst)),
        }
        return self.result

    def summary(self, r=None):
        r = r or self.result
        n = lambda k: len(r[k])  # noqa: E731
        s = ("sent=%d ok=%d failed=%d unknown=%d read=%d lost=%d unexpected=%d conflicts=%d "
             "misplaced=%d duplicated=%d out_of_order=%d failed_read=%d ok_no_offset=%d" %
             (r["sent"], r["ok"], r["failed"], r["unknown"], r["read"], n("lost"),
              n("unexpected"), n("conflicts"), n("misplaced"), n("duplicated"),
              n("out_of_order"), n("failed_read"), n("ok_no_offset")))
        if r["error_names"]:
            s += " errors=" + ",".join("%s:%d" % kv for kv in sorted(r["error_names"].items()))
        if r["errors"]:
            s += " checker_errors=%r" % r["errors"]
        return s

    def violations(self, r=None):
        """The must-be-zero findings, with a few examples each; empty if none."""
        r = r or self.result
        out = []
        for k in ("lost", "unexpected", "conflicts", "errors"):
            if r[k]:
                out.append("%s=%d (e.g. %s)" % (k, len(r[k]), r[k][:5]))
        if r["misplaced"]:
            out.append("misplaced=%d (e.g. %s)" % (len(r["misplaced"]), r["misplaced_detail"][:5]))
        if r["ok"] == 0:
            out.append("no produce succeeded at all")
        return out

    def abort(self):
        """Stop both threads without analysis (cleanup after a failure)."""
        self.aborting = True
        self.stop_produce.set()
        self.stop_consume.set()
        for t in (self.pthread, self.cthread):
            if t.ident is not None:
                t.join(MESSAGE_TIMEOUT_MS / 1000.0 + 15)
