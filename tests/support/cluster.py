"""cluster: start a weir-coordinator and N weir-brokers for integration tests.

Every process gets free ports on 127.0.0.1 and a fresh data directory under a
temporary root, is started with its stdout on a pipe (the one "ready" line) and
its stderr in a log file, and is stopped by PID: SIGTERM with a deadline, then
SIGKILL. Nothing is left running, also when a test fails (use the cluster as a
context manager, or call stop_all()). Logs stay in the root for failed tests;
tails() returns the end of every log for the failure report.

Set $WEIR_KEEP_LOGS=1 to keep every test's directory. Binaries come from $WEIR_BUILD_DIR (a meson build tree), default build-main.
"""

import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def build_dir():
    d = os.environ.get("WEIR_BUILD_DIR") or os.path.join(ROOT, "build-main")
    return os.path.abspath(d)


def binary(rel):
    path = os.path.join(build_dir(), rel)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError("%s not built (set WEIR_BUILD_DIR to a meson build tree)" % path)
    return path


def free_port():
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
        self.kill()
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
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.popen.stdout.close()
        return self.popen.returncode

    def kill(self):
        if self.popen is None:
            return
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self.popen.stdout.close()

    def tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(data[-lines:])


class Cluster:
    """A coordinator and brokers 1..n. Use as a context manager."""

    def __init__(self, brokers=3, broker_overrides=None, root=None):
        self.n = brokers
        self.root = root or tempfile.mkdtemp(prefix="weir-it-")
        self.broker_overrides = dict(broker_overrides or {})
        self.coord_port = free_port()
        self.coordinator = None
        self.brokers = {}
        self.ports = {}

    # ---- processes ----------------------------------------------------------

    def _coordinator_proc(self):
        argv = [binary("coordinator/weir-coordinator"),
                "--override", "node.id=1",
                "--override", "listeners=127.0.0.1:%d" % self.coord_port,
                "--override", "data.dir=%s" % os.path.join(self.root, "coordinator"),
                "--override", "session.timeout.ms=6000",
                "--override", "heartbeat.interval.ms=500"]
        return Proc("coordinator", argv, os.path.join(self.root, "coordinator.log"))

    def _broker_proc(self, bid):
        port = self.ports.setdefault(bid, free_port())
        argv = [binary("broker/weir-broker"),
                "--override", "broker.id=%d" % bid,
                "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % port,
                "--override", "log.dirs=%s" % os.path.join(self.root, "broker-%d" % bid),
                "--override", "coordinator.connect=127.0.0.1:%d" % self.coord_port]
        for k, v in self.broker_overrides.items():
            argv += ["--override", "%s=%s" % (k, v)]
        return Proc("broker-%d" % bid, argv, os.path.join(self.root, "broker-%d.log" % bid))

    def start(self):
        try:
            self.coordinator = self._coordinator_proc()
            self.coordinator.start()
            for bid in range(1, self.n + 1):
                self.start_broker(bid)
        except Exception:
            self.stop_all()
            raise
        return self

    def start_broker(self, bid):
        p = self._broker_proc(bid)
        self.brokers[bid] = p
        p.start()
        return p

    def kill9_broker(self, bid):
        self.brokers[bid].kill()

    def restart_broker(self, bid):
        old = self.brokers.get(bid)
        if old is not None and old.running():
            old.stop()
        return self.start_broker(bid)

    def kill9_coordinator(self):
        self.coordinator.kill()

    def restart_coordinator(self):
        """Start the coordinator again on the same port and data directory."""
        if self.coordinator is not None and self.coordinator.running():
            self.coordinator.stop()
        self.coordinator = self._coordinator_proc()
        self.coordinator.start()
        return self.coordinator

    def stop_all(self):
        """Stop every process (brokers first). Returns {name: exit code}."""
        codes = {}
        for bid, p in sorted(self.brokers.items()):
            try:
                codes[p.name] = p.stop()
            except Exception:
                p.kill()
        if self.coordinator is not None:
            try:
                codes["coordinator"] = self.coordinator.stop()
            except Exception:
                self.coordinator.kill()
        return codes

    def cleanup(self):
        """Remove the data and logs (kept when $WEIR_KEEP_LOGS is set)."""
        if os.environ.get("WEIR_KEEP_LOGS"):
            return
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- addresses and diagnostics ------------------------------------------

    def bootstrap(self):
        return ",".join("127.0.0.1:%d" % self.ports[b] for b in sorted(self.brokers))

    def addr(self, bid):
        return ("127.0.0.1", self.ports[bid])

    def tails(self, lines=30):
        out = []
        procs = ([self.coordinator] if self.coordinator else []) + \
            [p for _, p in sorted(self.brokers.items())]
        for p in procs:
            out.append("---- %s (%s) ----\n%s" % (p.name, p.log_path, p.tail(lines)))
        return "\n".join(out)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop_all()
        return False
