"""cluster: start a weir-coordinator and N weir-brokers for integration tests.

Every process gets free ports on 127.0.0.1 and a fresh data directory under a
temporary root, is started with its stdout on a pipe (the one "ready" line) and
its stderr in a log file, and is stopped by PID: SIGTERM with a deadline, then
SIGKILL. Nothing is left running, also when a test fails (use the cluster as a
context manager, or call stop_all()). Logs stay in the root for failed tests;
tails() returns the end of every log for the failure report.

Every process a cluster started must exit 0 on SIGTERM, including the ones a test
restarted or replaced along the way: a sanitizer report makes a process exit
non-zero, and that fails the test. exit_problems() lists the ones that did not;
a process the test killed on purpose (kill9_*: SIGKILL) is expected to die so.
Fixtures end with finish(), which stops everything, keeps the logs when
something failed and returns those problems for the fixture to assert on.

Set $WEIR_KEEP_LOGS=1 to keep every test's directory. Binaries come from $WEIR_BUILD_DIR (a meson build tree), default build-main.

For fault tests: pause/resume a process (SIGSTOP/SIGCONT by PID), extra
coordinator and per-broker overrides, and Netns, which puts every process in its
own network namespace (veth pairs to a bridge in a namespace of its own, and one
veth back to the test's namespace so clients route to the brokers).
"""

import base64
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# coordinator/raft_node.c logs this when a voter takes the quorum leadership
LEADER_LINE = re.compile(r"became the coordinator leader in term (\d+)")


def build_dir():
    d = os.environ.get("WEIR_BUILD_DIR") or os.path.join(ROOT, "build-main")
    return os.path.abspath(d)


def binary(rel):
    path = os.path.join(build_dir(), rel)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError("%s not built (set WEIR_BUILD_DIR to a meson build tree)" % path)
    return path


_handed_out = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port to listen on, free now and below the kernel's ephemeral range.

    bind(0) hands out ephemeral ports, the same range outgoing connections take
    their source ports from: between this call and the server's bind, a
    client's connection (the brokers' own, to the coordinator and each other)
    could take the port and the server then exits with "address in use". A
    port below the range is only ever taken by another listener, and bind()
    checks that."""
    low = min(_ephemeral_low(), 65536)
    lo, hi = (10000, low - 1) if low > 12000 else (1024, 65535)
    for _ in range(200):
        port = random.randint(lo, hi)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.popen = None
        self.ready_line = None
        self.paused = False
        self.killed = False  # SIGKILLed on purpose by the test: -9 is its expected end
        self.term_timeout = None  # seconds it ignored SIGTERM for before stop() killed it

    def start(self, timeout=READY_TIMEOUT):
        log = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=log,
                                          stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.ready_line = self._wait_ready(timeout)
        return self.ready_line

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.popen.stdout.fileno()
        buf = b""
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError("%s exited with %d before it was ready" %
                                   (self.name, self.popen.returncode))
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
                if b"\n" in buf:
                    line = buf.split(b"\n", 1)[0].decode(errors="replace")
                    if " ready: " not in line:
                        raise RuntimeError("%s printed %r instead of a ready line" %
                                           (self.name, line))
                    return line
        self._sigkill()
        raise TimeoutError("%s not ready within %.0f s" % (self.name, timeout))

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, SIGKILL if needed. Returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            if self.paused:  # a stopped process would not see the SIGTERM
                self.resume()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.term_timeout = timeout
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.popen.stdout.close()
        return self.popen.returncode

    def kill(self):
        """SIGKILL on purpose (a kill -9 scenario): its -9 exit is not a problem. A process
        that had already exited keeps its own exit code (a crash is still one)."""
        if self._sigkill():
            self.killed = True

    def _sigkill(self):
        """SIGKILL if still running; True if the signal was sent."""
        if self.popen is None:
            return False
        sent = False
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            sent = True
            self.popen.wait()
        self.popen.stdout.close()
        return sent

    def exit_problem(self):
        """None if it exited as it should (0, or -9 after kill()), else why not."""
        if self.popen is None:
            return None
        rc = self.popen.poll()
        if rc is None:
            return "%s (pid %d): still running" % (self.name, self.popen.pid)
        if self.term_timeout is not None:
            return "%s (pid %d): still running %.0f s after SIGTERM, killed (log %s)" % (
                self.name, self.popen.pid, self.term_timeout, self.log_path)
        if rc == 0 or (self.killed and rc == -signal.SIGKILL):
            return None
        if rc < 0:
            try:
                how = "killed by %s" % signal.Signals(-rc).name
            except ValueError:
                how = "killed by signal %d" % -rc
        else:
            how = "exited with %d" % rc
        return "%s (pid %d): %s (log %s)" % (self.name, self.popen.pid, how, self.log_path)

    def pause(self):
        """SIGSTOP by PID (a GC-like pause: sockets stay open, nothing is answered)."""
        os.kill(self.popen.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGCONT)
        self.paused = False

    def tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(data[-lines:])


class Cluster:
    """Coordinators and brokers 1..n. Use as a context manager.

    API (stable: other tests build on it):

    Cluster(brokers=3, coordinators=1, ...)
        coordinators=1: one weir-coordinator, exactly as before (self.coordinator,
        self.coord_port, name "coordinator" for host()/metrics_url()/Netns).
        coordinators=3 (or 5): a quorum. Voters 1..k, each formatted with
        `weir-coordinator format --cluster-id <self.cluster_id>` and started with
        coordinator.quorum.voters naming all of them; brokers get every voter in
        coordinator.connect (host:port,host:port,...). Voter i is named
        "coordinator-i" (host(), metrics_url(), a Netns must hold those names).
    self.coordinators    {i: Proc} of the voters (for k=1: {1: self.coordinator})
    self.coord_ports     {i: port}; coord_port is coord_ports[1]
    coord_name(i)        "coordinator" (k=1) or "coordinator-i"
    coordinator_connect() the brokers' coordinator.connect value
    coordinator_leader(timeout=15, exclude=(), min_term=1)
        the voter id leading now: among running, not paused voters, the one whose
        log has the highest "became the coordinator leader in term N" (terms are
        unique to a leader, so a deposed leader's older line never wins); waits
        up to @timeout for one at >= @min_term. Returns the id (1 for k=1).
    coordinator_term(i)  the highest term voter i logged leading (0: never)
    kill9_coordinator(i=1), pause_coordinator(i=1), resume_coordinator(i=1),
    restart_coordinator(i=1, format_if_empty=True)
        by PID; restart keeps the port and data directory (a voter is not
        formatted again).
    coordinator_log(i=1) the text of voter i's log.
    """

    def __init__(self, brokers=3, broker_overrides=None, root=None, coordinator_overrides=None,
                 per_broker_overrides=None, netns=None, coordinators=1):
        """coordinator_overrides: extra coordinator --override keys (after the defaults, so
        they win; for every voter); per_broker_overrides: {bid: {key: value}} after
        broker_overrides; netns: a started Netns holding the coordinator names
        (coord_name(i)) and every broker id; coordinators: 1, or the voters of a quorum."""
        assert coordinators >= 1
        self.n = brokers
        self.k = coordinators
        self.root = root or tempfile.mkdtemp(prefix="weir-it-")
        self.broker_overrides = dict(broker_overrides or {})
        self.coordinator_overrides = dict(coordinator_overrides or {})
        self.per_broker_overrides = {b: dict(o) for b, o in (per_broker_overrides or {}).items()}
        self.netns = netns
        self.coord_ports = {i: free_port() for i in range(1, coordinators + 1)}
        self.coord_port = self.coord_ports[1]
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        self.coordinator = None
        self.coordinators = {}
        self.brokers = {}
        self.ports = {}
        # metrics.listener of every process (a coordinator name or a broker id): /metrics, /health
        self.metrics_ports = {}
        self.started = []  # every Proc started, also those since restarted or replaced

    # ---- processes ----------------------------------------------------------

    def coord_name(self, i=1):
        return "coordinator" if self.k == 1 else "coordinator-%d" % i

    def _coordinator_args(self, i):
        name = self.coord_name(i)
        data = os.path.join(self.root, "coordinator" if self.k == 1 else "coordinator-%d" % i)
        argv = ["--override", "node.id=%d" % i,
                "--override", "listeners=%s:%d" % (self.host(name), self.coord_ports[i]),
                "--override", "data.dir=%s" % data,
                "--override", "session.timeout.ms=6000",
                "--override", "heartbeat.interval.ms=500",
                "--override", "metrics.listener=%s:%d" % (
                    self.host(name), self.metrics_ports.setdefault(name, free_port()))]
        if self.k > 1:
            argv += ["--override", "coordinator.quorum.voters=%s" % ",".join(
                "%d@%s:%d" % (j, self.host(self.coord_name(j)), p)
                for j, p in sorted(self.coord_ports.items()))]
        for k, v in self.coordinator_overrides.items():
            argv += ["--override", "%s=%s" % (k, v)]
        return argv

    def _format_voter(self, i):
        """`weir-coordinator format --cluster-id` for voter i (the same id for all)."""
        argv = self._ns_prefix(self.coord_name(i)) + [
            binary("coordinator/weir-coordinator"), "format", "--cluster-id",
            self.cluster_id] + self._coordinator_args(i)
        log = open(os.path.join(self.root, "coordinator-%d-format.log" % i), "ab")
        try:
            subprocess.run(argv, check=True, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                           timeout=30)
        finally:
            log.close()

    def _coordinator_proc(self, format_if_empty=True, i=1):
        """The single coordinator formats an empty data directory on its first start
        (--format-if-empty); without it an unformatted directory is refused. Quorum
        voters are formatted by start() (_format_voter) instead."""
        argv = [binary("coordinator/weir-coordinator")]
        if format_if_empty and self.k == 1:
            argv.append("--format-if-empty")
        argv += self._coordinator_args(i)
        name = self.coord_name(i)
        argv = self._ns_prefix(name) + argv
        return Proc(name, argv, os.path.join(self.root, "%s.log" % name))

    def coordinator_connect(self):
        return ",".join("%s:%d" % (self.host(self.coord_name(i)), p)
                        for i, p in sorted(self.coord_ports.items()))

    def _broker_proc(self, bid):
        port = self.ports.setdefault(bid, free_port())
        argv = [binary("broker/weir-broker"),
                "--override", "broker.id=%d" % bid,
                "--override", "listeners=PLAINTEXT://%s:%d" % (self.host(bid), port),
                "--override", "log.dirs=%s" % self.log_dir(bid),
                "--override", "coordinator.connect=%s" % self.coordinator_connect(),
                "--override", "metrics.listener=%s:%d" % (
                    self.host(bid), self.metrics_ports.setdefault(bid, free_port()))]
        for k, v in self.broker_overrides.items():
            argv += ["--override", "%s=%s" % (k, v)]
        for k, v in self.per_broker_overrides.get(bid, {}).items():
            argv += ["--override", "%s=%s" % (k, v)]
        argv = self._ns_prefix(bid) + argv
        return Proc("broker-%d" % bid, argv, os.path.join(self.root, "broker-%d.log" % bid))

    def start(self):
        try:
            if self.k > 1:
                for i in sorted(self.coord_ports):
                    self._format_voter(i)
            for i in sorted(self.coord_ports):
                p = self._coordinator_proc(i=i)
                self.coordinators[i] = p
                self.started.append(p)
                p.start()
            self.coordinator = self.coordinators[1]
            if self.k > 1:
                self.coordinator_leader()
            for bid in range(1, self.n + 1):
                self.start_broker(bid)
        except Exception:
            self.stop_all()
            raise
        return self

    def start_broker(self, bid):
        p = self._broker_proc(bid)
        self.brokers[bid] = p
        self.started.append(p)
        p.start()
        return p

    def kill9_broker(self, bid):
        self.brokers[bid].kill()

    def restart_broker(self, bid):
        old = self.brokers.get(bid)
        if old is not None and old.running():
            old.stop()
        return self.start_broker(bid)

    def pause_broker(self, bid):
        self.brokers[bid].pause()

    def resume_broker(self, bid):
        self.brokers[bid].resume()

    def term_broker(self, bid, timeout=STOP_TIMEOUT):
        """SIGTERM (controlled shutdown), SIGKILL after @timeout. Returns the exit code."""
        return self.brokers[bid].stop(timeout)

    def kill9_coordinator(self, i=1):
        self.coordinators[i].kill()

    def pause_coordinator(self, i=1):
        """SIGSTOP voter @i (sockets stay open, nothing is answered)."""
        self.coordinators[i].pause()

    def resume_coordinator(self, i=1):
        self.coordinators[i].resume()

    def restart_coordinator(self, i=1, format_if_empty=True):
        """Start coordinator @i again on the same port and data directory (stopped
        with SIGTERM first if it runs)."""
        old = self.coordinators.get(i)
        if old is not None and old.running():
            old.stop()
        p = self._coordinator_proc(format_if_empty, i=i)
        self.coordinators[i] = p
        if i == 1:
            self.coordinator = p
        self.started.append(p)
        p.start()
        return p

    def coordinator_log(self, i=1):
        try:
            with open(self.coordinators[i].log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def coordinator_term(self, i):
        terms = [int(t) for t in LEADER_LINE.findall(self.coordinator_log(i))]
        return max(terms) if terms else 0

    def coordinator_leader(self, timeout=15.0, exclude=(), min_term=1):
        """The id of the voter leading now (see the class doc); 1 for a single
        coordinator. AssertionError when none within @timeout."""
        if self.k == 1:
            return 1
        deadline = time.monotonic() + timeout
        while True:
            best = None
            for i, p in self.coordinators.items():
                if i in exclude or not p.running() or p.paused:
                    continue
                t = self.coordinator_term(i)
                if t >= min_term and (best is None or t > best[1]):
                    best = (i, t)
            # A paused or dead voter may have led in a later term: only a
            # leader above every term logged anywhere is the current one.
            top = max((self.coordinator_term(i) for i in self.coordinators), default=0)
            if best is not None and best[1] >= top:
                return best[0]
            assert time.monotonic() < deadline, "no coordinator leader within %.0f s" % timeout
            time.sleep(0.05)

    def stop_all(self):
        """Stop every process (brokers first). Returns {name: exit code}."""
        codes = {}
        for bid, p in sorted(self.brokers.items()):
            try:
                codes[p.name] = p.stop()
            except Exception:
                p._sigkill()
        for i, p in sorted(self.coordinators.items()):
            try:
                codes[p.name] = p.stop()
            except Exception:
                p._sigkill()
        return codes

    def exit_problems(self):
        """One line per process started here that did not end as it should: exit 0 on
        SIGTERM, or -9 when the test killed it on purpose. Covers processes since
        restarted or replaced, and ones a test put in self.brokers itself."""
        procs = list(self.started)
        for p in list(self.brokers.values()) + list(self.coordinators.values()):
            if p is not None and all(p is not q for q in procs):
                procs.append(p)
        return [why for why in (p.exit_problem() for p in procs) if why]

    def finish(self, failed):
        """Fixture teardown: stop every process, then remove the data and logs unless
        @failed (the test failed) or a process exited badly; in those cases print
        where they are and their tails. Returns exit_problems() to assert on.
        Processes a test paused with SIGSTOP are resumed first, so they can
        answer SIGTERM."""
        for proc in list(self.brokers.values()) + list(self.coordinators.values()):
            if proc is not None and proc.running():
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.stop_all()
        problems = self.exit_problems()
        if failed or problems:
            print("\nlogs kept in %s\n%s" % (self.root, self.tails()))
        else:
            self.cleanup()
        return problems

    def cleanup(self):
        """Remove the data and logs (kept when $WEIR_KEEP_LOGS is set)."""
        if os.environ.get("WEIR_KEEP_LOGS"):
            return
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- addresses and diagnostics ------------------------------------------

    def host(self, name):
        """The address process @name ("coordinator" or a broker id) listens on."""
        return self.netns.addr(name) if self.netns is not None else "127.0.0.1"

    def _ns_prefix(self, name):
        return ["ip", "netns", "exec", self.netns.ns(name)] if self.netns is not None else []

    def metrics_url(self, name, path="/metrics"):
        """http://host:port/path of process @name's metrics.listener ("coordinator"
        or a broker id)."""
        return "http://%s:%d%s" % (self.host(name), self.metrics_ports[name], path)

    def log_dir(self, bid):
        return os.path.join(self.root, "broker-%d" % bid)

    def bootstrap(self):
        return ",".join("%s:%d" % (self.host(b), self.ports[b]) for b in sorted(self.brokers))

    def addr(self, bid):
        return (self.host(bid), self.ports[bid])

    def create_topic(self, name, partitions, rf, configs=None):
        """CreateTopics through confluent-kafka's admin client (with @configs), then
        wait until every running broker sees a leader for each partition."""
        from confluent_kafka.admin import AdminClient, NewTopic

        adm = AdminClient({"bootstrap.servers": self.bootstrap()})
        fs = adm.create_topics([NewTopic(name, partitions, rf, config=configs or {})],
                               request_timeout=10)
        for f in fs.values():
            assert f.result(15) is None
        self.wait_topic(name, partitions)

    def wait_topic(self, name, partitions=None, timeout=10.0):
        """Wait until every running broker's metadata shows @name (with @partitions
        partitions, when given) and a leader for each partition: the brokers'
        watches may lag the one that answered a CreateTopics by a moment."""
        import kafka_raw

        deadline = time.monotonic() + timeout
        for b in sorted(b for b, p in self.brokers.items() if p.running()):
            conn = kafka_raw.Conn(*self.addr(b))
            try:
                while True:
                    t = conn.metadata()["topics"].get(name)
                    if t and t["partitions"] and \
                            (partitions is None or len(t["partitions"]) == partitions) and \
                            all(p["leader"] >= 0 for p in t["partitions"]):
                        break
                    assert time.monotonic() < deadline, "broker %d does not see %s" % (b, name)
                    time.sleep(0.02)
            finally:
                conn.close()

    def tails(self, lines=30):
        out = []
        procs = [p for _, p in sorted(self.coordinators.items())] + \
            [p for _, p in sorted(self.brokers.items())]
        for p in procs:
            out.append("---- %s (%s) ----\n%s" % (p.name, p.log_path, p.tail(lines)))
        return "\n".join(out)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop_all()
        return False


def started(request, **kwargs):
    """The body of a pytest fixture: `yield from cluster.started(request, ...)`
    yields a started Cluster(**kwargs); at teardown it stops every process and
    fails the test when one exited badly (a sanitizer report makes a process
    exit non-zero on SIGTERM; those killed on purpose are expected to)."""
    failed_before = request.session.testsfailed
    c = Cluster(**kwargs)
    c.start()
    try:
        yield c
    finally:
        problems = c.finish(failed=request.session.testsfailed != failed_before)
        assert not problems, "processes exited badly:\n" + "\n".join(problems)


def _ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=10, check=check)


class Netns:
    """One network namespace per process name, joined by a bridge in a namespace of its own.

    Addresses are 10.213.S.N/24 with a random S not routed here yet; the test's own
    namespace gets 10.213.S.254 on a veth to the bridge, so clients in the test process
    reach every listener. cut(a, b) drops traffic between two names (blackhole routes,
    both directions) without touching their other links; heal() removes every
    cut. close() deletes everything it created, also after a partial start.
    """

    def __init__(self, names):
        self.names = list(names)
        self.tag = "weirf%04x" % random.randrange(1 << 16)
        self.bridge_ns = self.tag + "-br"
        self.host_if = self.tag + "h"
        self.subnet = None
        self.created = []  # namespaces, for close()
        self.host_link = False
        self.cuts = set()

    def ns(self, name):
        return "%s-%s" % (self.tag, name)

    def addr(self, name):
        return "%s.%d" % (self.subnet, self.names.index(name) + 1)

    def _if(self, name):
        return "%s-%d" % (self.tag, self.names.index(name) + 1)

    @staticmethod
    def available():
        """None if namespaces can be made here, else the reason."""
        probe = "w4probe%d" % os.getpid()
        try:
            r = _ip("netns", "add", probe, check=False)
        except (OSError, subprocess.SubprocessError) as e:
            return "ip netns add: %s" % e
        if r.returncode != 0:
            return "ip netns add failed: %s" % r.stderr.decode(errors="replace").strip()
        _ip("netns", "del", probe, check=False)
        return None

    def start(self):
        try:
            routes = _ip("-4", "route", "show", "table", "all").stdout.decode()
            for _ in range(50):
                s = "10.213.%d" % random.randrange(1, 250)
                if (s + ".") not in routes:
                    self.subnet = s
                    break
            assert self.subnet, "no free 10.213.x.0/24 subnet"
            _ip("netns", "add", self.bridge_ns)
            self.created.append(self.bridge_ns)
            br = ["netns", "exec", self.bridge_ns, "ip"]
            _ip(*br, "link", "add", "br0", "type", "bridge")
            _ip(*br, "link", "set", "br0", "up")
            _ip(*br, "link", "set", "lo", "up")
            for name in self.names:
                ns, ifn = self.ns(name), self._if(name)
                _ip("netns", "add", ns)
                self.created.append(ns)
                # both ends are created in the test's namespace, then moved
                _ip("link", "add", ifn, "type", "veth", "peer", "name", ifn + "b")
                _ip("link", "set", ifn, "netns", ns)
                _ip("link", "set", ifn + "b", "netns", self.bridge_ns)
                _ip(*br, "link", "set", ifn + "b", "master", "br0")
                _ip(*br, "link", "set", ifn + "b", "up")
                n = ["netns", "exec", ns, "ip"]
                _ip(*n, "link", "set", "lo", "up")
                _ip(*n, "addr", "add", self.addr(name) + "/24", "dev", ifn)
                _ip(*n, "link", "set", ifn, "up")
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.host_if + "b")
            self.host_link = True
            _ip("link", "set", self.host_if + "b", "netns", self.bridge_ns)
            _ip(*br, "link", "set", self.host_if + "b", "master", "br0")
            _ip(*br, "link", "set", self.host_if + "b", "up")
            _ip("addr", "add", self.subnet + ".254/24", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
        except Exception:
            self.close()
            raise
        return self

    def cut(self, a, b):
        """Drop every packet between @a and @b: a blackhole route to the other on each side.

        No packet filter is loadable here (tc classifiers and nft are missing), and routes
        do the job: established connections lose their packets silently (the route cache
        is revalidated), new connects fail at once, and other links are untouched."""
        for x, y in ((a, b), (b, a)):
            _ip("-n", self.ns(x), "route", "add", "blackhole", self.addr(y) + "/32")
            self.cuts.add((x, y))

    def heal(self):
        for x, y in sorted(self.cuts, key=str):
            _ip("-n", self.ns(x), "route", "del", "blackhole", self.addr(y) + "/32", check=False)
        self.cuts.clear()

    def close(self):
        """Delete every namespace and veth made here (veths die with their namespace)."""
        if self.host_link:
            _ip("link", "del", self.host_if, check=False)
            self.host_link = False
        for ns in reversed(self.created):
            _ip("netns", "del", ns, check=False)
        self.created = []

    def leftovers(self):
        """Namespaces or links of this instance still present (for the cleanup assert)."""
        out = [n for n in _ip("netns", "list").stdout.decode().split() if n.startswith(self.tag)]
        links = _ip("-o", "link", "show").stdout.decode()
        if self.host_if in links:
            out.append(self.host_if)
        return out
