"""Integration tests of deploy/weir-local.sh, the README's local quickstart.

The script runs against the already-built tree ($WEIR_BUILD_DIR, so it does not
build, and WEIR_SKIP_INSTALL=1) with free ports and a temporary data directory.
Every test stops the cluster in a finally, and as a last resort kills whatever
of our processes is left (checked by /proc/PID/cmdline).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import cluster as weir_cluster  # noqa: E402

SCRIPT = os.path.join(weir_cluster.ROOT, "deploy", "weir-local.sh")
SCRIPT_TIMEOUT = 120
KCAT_TIMEOUT = 60


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def is_ours(pid, data_dir):
    """Alive (not a zombie: those have no cmdline) and one of our servers of data_dir."""
    argv = cmdline(pid)
    return (len(argv) >= 3 and os.path.basename(argv[0]).decode() in
            ("weir-broker", "weir-coordinator") and
            any(a.decode(errors="replace").startswith(data_dir + "/") for a in argv[1:]))


class Local:
    """One data directory and set of ports; run(...) runs the script on them."""

    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="weir-quickstart-")
        ports = set()
        while len(ports) < 8:
            ports.add(weir_cluster.free_port())
        ports = sorted(ports)
        self.coord_port = ports[0]
        self.kafka_ports = ports[1:4]
        self.metrics_ports = ports[4:]  # brokers 1-3, then the coordinator
        self.bootstrap = ",".join("127.0.0.1:%d" % p for p in self.kafka_ports)
        self.seen_pids = set()

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_LOCAL_")}
        env.update(WEIR_SKIP_INSTALL="1",
                   WEIR_BUILD_DIR=weir_cluster.build_dir(),
                   WEIR_LOCAL_DATA=self.data,
                   WEIR_LOCAL_COORD_PORT=str(self.coord_port),
                   WEIR_LOCAL_KAFKA_PORTS=" ".join(str(p) for p in self.kafka_ports),
                   WEIR_LOCAL_METRICS_PORTS=" ".join(str(p) for p in self.metrics_ports),
                   WEIR_LOCAL_TIMEOUT="30")
        return env

    def run(self, *args):
        p = subprocess.run(["bash", SCRIPT] + list(args), env=self.env(), capture_output=True,
                           timeout=SCRIPT_TIMEOUT, stdin=subprocess.DEVNULL)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        self._remember_pids()
        return p.returncode, out

    def _remember_pids(self):
        for name in os.listdir(self.data):
            if name.endswith(".pid"):
                try:
                    with open(os.path.join(self.data, name)) as f:
                        self.seen_pids.add(int(f.read().strip()))
                except (OSError, ValueError):
                    pass

    def status(self):
        """{name: (state, pid)} from `status`, and its exit code."""
        rc, out = self.run("status")
        rows = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) == 4 and f[0] in ("coordinator", "broker-1", "broker-2", "broker-3"):
                rows[f[0]] = (f[1], None if f[2] == "-" else int(f[2]))
        return rc, rows, out

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.data)):
            if name.endswith(".log"):
                with open(os.path.join(self.data, name), "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-20:]
                out.append("---- %s ----\n%s" % (name, "\n".join(tail)))
        return "\n".join(out)

    def teardown(self):
        try:
            self.run("stop")
        except Exception:
            pass
        self._remember_pids()
        for pid in self.seen_pids:
            if is_ours(pid, self.data):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture
def local():
    loc = Local()
    try:
        yield loc
    finally:
        loc.teardown()


def kcat(*args, stdin=None):
    p = subprocess.run(["kcat"] + list(args), input=stdin, capture_output=True,
                       timeout=KCAT_TIMEOUT)
    assert p.returncode == 0, "kcat %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                            p.stderr.decode(errors="replace"))
    return p.stdout


def test_start_status_produce_consume_stop(local):
    rc, out = local.run("start")
    assert rc == 0, out + local.logs()
    assert "weir-coordinator ready: node 1 listening on 127.0.0.1:%d" % local.coord_port in out
    for bid, port in enumerate(local.kafka_ports, 1):
        assert "weir-broker ready: broker %d kafka 127.0.0.1:%d" % (bid, port) in out, out
    assert "kcat -P -b %s" % local.bootstrap in out
    assert "KafkaProducer" in out and "/usr/bin/python3" in out
    weir = os.path.join(weir_cluster.build_dir(), "cli", "weir")
    assert "%s -b %s produce demo" % (weir, local.bootstrap) in out
    assert "%s -b %s cluster health" % (weir, local.bootstrap) in out
    assert "stop" in out
    # /health and /metrics of every process, on the ports the banner names
    assert "curl -s 127.0.0.1:%d/health" % local.metrics_ports[0] in out
    for port in local.metrics_ports:
        def health():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        deadline = time.monotonic() + 30
        while not health():
            assert time.monotonic() < deadline, "no healthy /health on %d" % port
            time.sleep(0.2)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            assert b"weir_build_info" in r.read()

    rc, rows, out = local.status()
    assert rc == 0, out
    assert sorted(rows) == ["broker-1", "broker-2", "broker-3", "coordinator"], out
    assert all(state == "running" for state, _ in rows.values()), out
    pids = [pid for _, pid in rows.values()]
    assert len(set(pids)) == 4
    for pid in pids:
        assert is_ours(pid, local.data), "pid %d is not one of our servers: %r" % (pid, cmdline(pid))
    assert "127.0.0.1:%d" % local.kafka_ports[1] in out

    # A second start while it is up says so, succeeds, and starts nothing new.
    rc, out = local.run("start")
    assert rc == 0, out
    assert "already running" in out
    rc, rows2, _ = local.status()
    assert rc == 0 and {n: p for n, (_, p) in rows2.items()} == \
        {n: p for n, (_, p) in rows.items()}

    # The printed bootstrap list works for a real client.
    msgs = [b"quickstart-%d" % i for i in range(5)]
    kcat("-P", "-b", local.bootstrap, "-t", "quickstart", stdin=b"\n".join(msgs) + b"\n")
    got = kcat("-C", "-b", local.bootstrap, "-t", "quickstart", "-o", "beginning", "-e",
               "-q", "-c", str(len(msgs)))
    assert got.split(b"\n")[:len(msgs)] == msgs

    # ... and so do the banner's weir commands.
    for args, stdin in ((["topic", "create", "demo", "-p", "3", "-r", "3"], None),
                        (["produce", "demo"], b"hello\n"),
                        (["cluster", "health"], None)):
        p = subprocess.run([weir, "-b", local.bootstrap] + args, input=stdin,
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
    p = subprocess.run([weir, "-b", local.bootstrap, "consume", "demo", "--from-beginning",
                        "-n", "1"], capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == b"hello\n", p.stderr

    rc, out = local.run("stop")
    assert rc == 0, out
    for pid in pids:
        assert not is_ours(pid, local.data), "pid %d still running after stop" % pid
    assert not [n for n in os.listdir(local.data) if n.endswith(".pid")]
    # The brokers shut down in order (controlled shutdown), before the coordinator.
    assert out.index("stopping broker-1") < out.index("stopping coordinator")

    rc, rows, out = local.status()
    assert rc == 3, out
    assert all(state == "stopped" for state, _ in rows.values()) and len(rows) == 4, out

    # Stopping a stopped cluster is fine.
    rc, out = local.run("stop")
    assert rc == 0, out


def test_start_fails_clearly_when_a_port_is_taken(local):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", local.kafka_ports[1]))
        holder.listen(1)
        rc, out = local.run("start")
        assert rc == 1, out
        assert "port %d" % local.kafka_ports[1] in out and "already in use" in out, out
    finally:
        holder.close()
    # Nothing was started: no PID files, no processes.
    assert not [n for n in os.listdir(local.data) if n.endswith(".pid")]
    assert not [p for p in local.seen_pids if is_ours(p, local.data)]


def test_stale_pid_file_of_another_process_is_never_signalled(local):
    other = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(local.data, "broker-1.pid"), "w") as f:
            f.write("%d\n" % other.pid)
        rc, rows, out = local.status()
        assert rc == 3, out
        assert rows["broker-1"][0] == "stopped", out
        rc, out = local.run("stop")
        assert rc == 0, out
        time.sleep(0.2)
        assert other.poll() is None, "stop signalled a process that is not ours"
    finally:
        other.kill()
        other.wait()
